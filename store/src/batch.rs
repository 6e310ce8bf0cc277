//! Group commit: many callers' appends share one transaction, and each caller is answered only after
//! the commit that holds its events (ARCHITECTURE.md, "How the known hard problems are handled",
//! "Group commit").
//!
//! The planning step is pure so its rules (idempotency before version checks, several appends to one
//! stream in one batch, rejections recorded without events) are unit-tested without a database; the SQL
//! backends only fetch the facts it needs and write the rows it returns.

use std::collections::{HashMap, HashSet};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::StoreError;
use crate::types::{
    AppendOutcome, AppendRequest, CommandRecord, EventMetadata, Position, Timestamp,
};

/// A queued append and the channel its caller waits on.
pub(crate) struct Pending {
    pub(crate) request: AppendRequest,
    pub(crate) reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// A row to insert into the events table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventRow {
    pub(crate) position: Position,
    pub(crate) stream_id: String,
    pub(crate) version: u64,
    pub(crate) event_id: Uuid,
    pub(crate) event_type: String,
    pub(crate) schema_version: u32,
    pub(crate) payload: serde_json::Value,
    pub(crate) metadata: EventMetadata,
}

/// Everything one batch transaction writes, and what each caller is told after the commit.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) outcomes: Vec<Result<AppendOutcome, StoreError>>,
    pub(crate) events: Vec<EventRow>,
    /// Final version and last position of every stream the batch touches.
    pub(crate) streams: Vec<(String, u64, Position)>,
    pub(crate) commands: Vec<CommandRecord>,
    pub(crate) new_head: Position,
}

/// The command ids and stream ids a batch needs facts about.
pub(crate) fn lookups(batch: &[&AppendRequest]) -> (Vec<Uuid>, Vec<String>, Vec<Uuid>) {
    let mut command_ids: Vec<Uuid> = batch
        .iter()
        .filter_map(|r| r.command.as_ref().map(|c| c.command_id))
        .collect();
    command_ids.sort_unstable();
    command_ids.dedup();
    let mut streams: Vec<String> = batch.iter().map(|r| r.stream_id.clone()).collect();
    streams.sort_unstable();
    streams.dedup();
    let event_ids = batch
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.event_id))
        .collect();
    (command_ids, streams, event_ids)
}

/// Checks a request's own shape before it is queued.
pub(crate) fn validate(request: &AppendRequest) -> Result<(), StoreError> {
    if request.stream_id.is_empty() || request.stream_id.len() > 200 {
        return Err(StoreError::InvalidRequest(
            "stream id must be 1 to 200 bytes".into(),
        ));
    }
    match &request.command {
        Some(c) if c.rejection.is_some() && !request.events.is_empty() => Err(
            StoreError::InvalidRequest("a rejected command cannot carry events".into()),
        ),
        None if request.events.is_empty() => Err(StoreError::InvalidRequest(
            "an append without a command must carry events".into(),
        )),
        _ => Ok(()),
    }
}

/// Decides, in queue order, what each request of a batch does.
///
/// `known_commands` are the command records already stored; `versions` the current version and last
/// position of each stream that exists; `stored_event_ids` the batch's event ids that are stored
/// already; `head` the last committed position.
pub(crate) fn plan(
    batch: &[&AppendRequest],
    mut known_commands: HashMap<Uuid, CommandRecord>,
    mut stored_event_ids: HashSet<Uuid>,
    mut versions: HashMap<String, (u64, Position)>,
    head: Position,
    now: Timestamp,
) -> Plan {
    let mut plan = Plan {
        new_head: head,
        ..Plan::default()
    };
    let mut touched: Vec<String> = Vec::new();
    for request in batch {
        // Idempotency comes first: a retried command gets its first outcome whatever the stream's
        // version is now.
        if let Some(record) = request
            .command
            .as_ref()
            .and_then(|c| known_commands.get(&c.command_id))
        {
            plan.outcomes
                .push(Ok(AppendOutcome::Duplicate(record.clone())));
            continue;
        }
        let (actual, last_position) = versions.get(&request.stream_id).copied().unwrap_or((0, 0));
        // Event ids are unique store-wide; refusing here keeps one bad request from failing the
        // whole batch's transaction on the unique index.
        let mut own_ids = HashSet::new();
        if request
            .events
            .iter()
            .any(|e| stored_event_ids.contains(&e.event_id) || !own_ids.insert(e.event_id))
        {
            plan.outcomes.push(Err(StoreError::InvalidRequest(
                "an event id in this append is already stored".into(),
            )));
            continue;
        }
        if !request.expected.matches(actual) {
            plan.outcomes.push(Err(StoreError::WrongExpectedVersion {
                stream_id: request.stream_id.clone(),
                expected: request.expected,
                actual,
            }));
            continue;
        }
        stored_event_ids.extend(own_ids);
        let first_position = plan.new_head + 1;
        let mut version = actual;
        for event in &request.events {
            version += 1;
            plan.new_head += 1;
            plan.events.push(EventRow {
                position: plan.new_head,
                stream_id: request.stream_id.clone(),
                version,
                event_id: event.event_id,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                payload: event.payload.clone(),
                metadata: event.metadata.clone(),
            });
        }
        let appended = !request.events.is_empty();
        let (first, last) = if appended {
            (first_position, plan.new_head)
        } else {
            (plan.new_head, plan.new_head)
        };
        if appended {
            versions.insert(request.stream_id.clone(), (version, plan.new_head));
            touched.push(request.stream_id.clone());
        } else {
            versions.insert(request.stream_id.clone(), (actual, last_position));
        }
        if let Some(command) = &request.command {
            let record = command.record(
                &request.stream_id,
                (version, first, last),
                request.events.len(),
                now,
            );
            known_commands.insert(command.command_id, record.clone());
            plan.commands.push(record);
        }
        plan.outcomes.push(Ok(AppendOutcome::Appended {
            stream_version: version,
            first_position: first,
            last_position: last,
            recorded_at: now,
        }));
    }
    touched.sort_unstable();
    touched.dedup();
    plan.streams = touched
        .into_iter()
        .map(|s| {
            let (v, p) = versions[&s];
            (s, v, p)
        })
        .collect();
    plan
}

/// One outcome per request of a batch, in order, and the new head; `Err` if nothing committed.
pub(crate) type BatchResult =
    Result<(Vec<Result<AppendOutcome, StoreError>>, Position), StoreError>;

/// A backend's half of group commit: run one transaction for a batch.
pub(crate) trait BatchWriter: Send + 'static {
    /// Writes a batch in one transaction and returns one outcome per request (in order) and the new
    /// head. An `Err` means the transaction did not commit and nothing of the batch is stored.
    fn write_batch(
        &mut self,
        batch: &[&AppendRequest],
    ) -> impl std::future::Future<Output = BatchResult> + Send;

    /// Whether a failed transaction may have failed because of what one request carries (the
    /// database refused a value, e.g. Postgres' `jsonb` refusing `\u0000`), rather than because
    /// the database could not do the work at all. Such a batch is retried in parts, so the
    /// request at fault fails alone.
    fn refused_data(&self, error: &StoreError) -> bool;
}

/// The error a database answered with, if it answered: its `code()` is Postgres' SQLSTATE or
/// SQLite's extended result code.
pub(crate) fn database_error(error: &StoreError) -> Option<&dyn sqlx::error::DatabaseError> {
    let StoreError::Database { cause, .. } = error else {
        return None;
    };
    match cause.as_ref().downcast_ref::<sqlx::Error>()? {
        sqlx::Error::Database(db) => Some(db.as_ref()),
        _ => None,
    }
}

/// Whether the writer's last commit failed because the database could not take it (disk full,
/// connection lost): a read still works then, so a health check must ask the writer.
pub(crate) type WriteHealth = std::sync::Arc<std::sync::Mutex<Option<String>>>;

/// The group commit's instruments: how long a batch transaction takes and how much it carries.
struct CommitMetrics {
    duration: opentelemetry::metrics::Histogram<f64>,
    appends: opentelemetry::metrics::Histogram<u64>,
    events: opentelemetry::metrics::Histogram<u64>,
}

static COMMIT_METRICS: std::sync::LazyLock<CommitMetrics> = std::sync::LazyLock::new(|| {
    let meter = crate::telemetry::meter();
    let sizes = vec![
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0,
    ];
    CommitMetrics {
        duration: meter
            .f64_histogram("quire.store.commit.duration")
            .with_unit("s")
            .with_description("Time to commit one group-commit batch")
            .with_boundaries(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
            .build(),
        appends: meter
            .u64_histogram("quire.store.commit.appends")
            .with_description("Appends (commands) committed together in one batch")
            .with_boundaries(sizes.clone())
            .build(),
        events: meter
            .u64_histogram("quire.store.commit.events")
            .with_description("Events committed together in one batch")
            .with_boundaries(sizes)
            .build(),
    }
});

/// Runs the writer: takes whatever is queued (up to `max_batch`), commits it, answers each caller.
pub(crate) async fn run_writer<W: BatchWriter>(
    mut writer: W,
    mut queue: mpsc::Receiver<Pending>,
    max_batch: usize,
    head_tx: watch::Sender<Position>,
    health: WriteHealth,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(max_batch);
    while let Some(first) = queue.recv().await {
        let mut events = first.request.events.len();
        batch.push(first);
        take_ready(&mut queue, &mut batch, &mut events, max_batch);
        linger(&mut queue, &mut batch, &mut events, max_batch).await;
        // Callers that gave up (dropped their receiver) still get their events written: the write may
        // be a retry's first half, and idempotency makes the retry safe either way.
        let requests: Vec<&AppendRequest> = batch.iter().map(|p| &p.request).collect();
        let started = std::time::Instant::now();
        let outcomes = commit(&mut writer, &requests, &head_tx).await;
        drop(requests);
        let metrics = &*COMMIT_METRICS;
        metrics
            .duration
            .record(started.elapsed().as_secs_f64(), &[]);
        metrics.appends.record(batch.len() as u64, &[]);
        metrics.events.record(events as u64, &[]);
        let failure = outcomes.iter().find_map(|o| match o {
            Err(StoreError::Unavailable(reason)) => Some(reason.clone()),
            _ => None,
        });
        let committed = outcomes.iter().any(Result::is_ok);
        if let Ok(mut health) = health.lock() {
            match failure {
                Some(reason) if !committed => *health = Some(reason),
                _ => *health = None,
            }
        }
        for (pending, outcome) in batch.drain(..).zip(outcomes) {
            let _ = pending.reply.send(outcome);
        }
    }
}

/// Commits a batch and returns one outcome per request, in order, raising the head as it commits.
///
/// One request must not fail the others: when the database refuses the batch's transaction for
/// what may be one request's data ([`BatchWriter::refused_data`]), the batch is split in halves
/// and each half committed on its own, recursively, so the request at fault ends up alone and
/// fails with its error while every other commits (one bad request in n costs about 2·log2(n)
/// transactions). Halves commit left to right, so a request still follows the requests queued
/// before it (a second append to a stream sees the first). Retrying is safe: a refused
/// transaction committed nothing, and a failure the database did not answer (connection lost, it
/// may have committed) is not a refusal, so it fails the batch as it stands.
async fn commit<W: BatchWriter>(
    writer: &mut W,
    requests: &[&AppendRequest],
    head_tx: &watch::Sender<Position>,
) -> Vec<Result<AppendOutcome, StoreError>> {
    let mut outcomes: Vec<Option<Result<AppendOutcome, StoreError>>> =
        std::iter::repeat_with(|| None)
            .take(requests.len())
            .collect();
    // Parts still to commit; the next one is last.
    let mut parts: Vec<std::ops::Range<usize>> = Vec::new();
    parts.push(0..requests.len());
    while let Some(part) = parts.pop() {
        let size = part.len();
        let span = tracing::debug_span!("store.group_commit", size);
        match writer
            .write_batch(&requests[part.clone()])
            .instrument(span)
            .await
        {
            Ok((committed, head)) => {
                head_tx.send_if_modified(|h| {
                    if head > *h {
                        *h = head;
                        true
                    } else {
                        false
                    }
                });
                for (slot, outcome) in outcomes[part].iter_mut().zip(committed) {
                    *slot = Some(outcome);
                }
            }
            Err(error) if size > 1 && writer.refused_data(&error) => {
                tracing::warn!(%error, size, "the database refused a group commit; committing its halves apart");
                let middle = part.start + size / 2;
                parts.push(middle..part.end);
                parts.push(part.start..middle);
            }
            Err(error) => {
                let error = if writer.refused_data(&error) {
                    // Alone, the request is what the database refused: it is invalid, not the
                    // store unwell, and retrying it would fail again.
                    StoreError::InvalidRequest(format!("the database refused this append: {error}"))
                } else {
                    error
                };
                tracing::warn!(%error, size, "group commit failed");
                for slot in &mut outcomes[part] {
                    *slot = Some(Err(error.clone()));
                }
            }
        }
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.expect("every part of the batch was committed or failed"))
        .collect()
}

/// Lets callers that are about to append join the batch before it commits.
///
/// Right after a commit, the callers it acknowledged are waking up to send their next append; taking
/// only the first few arrivals would commit a tiny batch and make all the others wait a whole commit
/// for it. So the writer yields while new requests keep arriving, which costs a lone writer a few
/// microseconds and lets a busy store commit full batches. The total wait is capped.
async fn linger(
    queue: &mut mpsc::Receiver<Pending>,
    batch: &mut Vec<Pending>,
    events: &mut usize,
    max_batch: usize,
) {
    const MAX_LINGER: std::time::Duration = std::time::Duration::from_millis(2);
    let start = std::time::Instant::now();
    let mut quiet_rounds = 0;
    while !full(batch.len(), *events, max_batch) && start.elapsed() < MAX_LINGER && quiet_rounds < 2
    {
        tokio::task::yield_now().await;
        let before = batch.len();
        take_ready(queue, batch, events, max_batch);
        quiet_rounds = if batch.len() == before {
            quiet_rounds + 1
        } else {
            0
        };
    }
}

/// The most events one group commit carries (a little more when the last append crosses it).
/// Appends count against `max_batch`, but a bulk import's appends hold a whole entity's events
/// each: without this bound a batch of them held hundreds of thousands of events, copied three
/// times on their way into the database (measured: 400 MB for a goodbooks import).
const MAX_BATCH_EVENTS: usize = 16_384;

fn full(appends: usize, events: usize, max_batch: usize) -> bool {
    appends >= max_batch || events >= MAX_BATCH_EVENTS
}

/// Moves what is queued now into `batch`, until it is full.
fn take_ready(
    queue: &mut mpsc::Receiver<Pending>,
    batch: &mut Vec<Pending>,
    events: &mut usize,
    max_batch: usize,
) {
    while !full(batch.len(), *events, max_batch) {
        match queue.try_recv() {
            Ok(pending) => {
                *events += pending.request.events.len();
                batch.push(pending);
            }
            Err(_) => break,
        }
    }
}

/// The front half shared by the SQL backends: validate, queue, wait for the commit.
pub(crate) async fn submit(
    queue: &mpsc::Sender<Pending>,
    request: AppendRequest,
) -> Result<AppendOutcome, StoreError> {
    validate(&request)?;
    let (reply, rx) = oneshot::channel();
    queue
        .send(Pending { request, reply })
        .await
        .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
    rx.await
        .map_err(|_| StoreError::Unavailable("writer dropped the request".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExpectedVersion;
    use crate::types::{CommandResult, NewEvent, PendingCommand};

    fn event(n: u32) -> NewEvent {
        NewEvent {
            event_id: Uuid::new_v4(),
            event_type: "Thing".into(),
            schema_version: 1,
            payload: serde_json::json!({ "n": n }),
            metadata: EventMetadata::default(),
        }
    }

    fn request(
        stream: &str,
        expected: ExpectedVersion,
        events: u32,
        cmd: Option<Uuid>,
    ) -> AppendRequest {
        AppendRequest {
            stream_id: stream.into(),
            expected,
            events: (0..events).map(event).collect(),
            command: cmd.map(|command_id| PendingCommand {
                command_id,
                fingerprint: None,
                rejection: None,
            }),
        }
    }

    #[tokio::test]
    async fn a_group_commit_stops_taking_appends_once_it_holds_enough_events() {
        let (tx, mut rx) = mpsc::channel(8);
        for stream in ["a", "b", "c"] {
            let (reply, _) = oneshot::channel();
            let request = request(stream, ExpectedVersion::NoStream, 10_000, None);
            tx.send(Pending { request, reply }).await.unwrap();
        }
        let (mut batch, mut events) = (Vec::new(), 0);
        take_ready(&mut rx, &mut batch, &mut events, 512);
        assert_eq!(batch.len(), 2, "the second append crossed the bound");
        assert_eq!(events, 20_000);
        let (mut next, mut next_events) = (Vec::new(), 0);
        take_ready(&mut rx, &mut next, &mut next_events, 512);
        assert_eq!(next.len(), 1, "the rest waits for the next commit");
    }

    #[test]
    fn positions_follow_the_head_and_versions_follow_the_stream() {
        let a = request("a", ExpectedVersion::NoStream, 2, None);
        let b = request("b", ExpectedVersion::Exact(3), 1, None);
        let versions = HashMap::from([("b".to_string(), (3, 7))]);
        let plan = plan(&[&a, &b], HashMap::new(), HashSet::new(), versions, 10, 0);
        assert_eq!(plan.new_head, 13);
        let got: Vec<_> = plan
            .events
            .iter()
            .map(|e| (e.stream_id.as_str(), e.version, e.position))
            .collect();
        assert_eq!(got, vec![("a", 1, 11), ("a", 2, 12), ("b", 4, 13)]);
        assert_eq!(
            plan.streams,
            vec![("a".to_string(), 2, 12), ("b".to_string(), 4, 13)]
        );
    }

    #[test]
    fn two_appends_to_one_stream_in_one_batch_see_each_other() {
        let first = request("s", ExpectedVersion::NoStream, 1, None);
        let second = request("s", ExpectedVersion::Exact(1), 1, None);
        let stale = request("s", ExpectedVersion::Exact(1), 1, None);
        let plan = plan(
            &[&first, &second, &stale],
            HashMap::new(),
            HashSet::new(),
            HashMap::new(),
            0,
            0,
        );
        assert!(matches!(
            plan.outcomes[0],
            Ok(AppendOutcome::Appended {
                stream_version: 1,
                ..
            })
        ));
        assert!(matches!(
            plan.outcomes[1],
            Ok(AppendOutcome::Appended {
                stream_version: 2,
                ..
            })
        ));
        assert!(matches!(
            plan.outcomes[2],
            Err(StoreError::WrongExpectedVersion { actual: 2, .. })
        ));
        assert_eq!(plan.events.len(), 2);
    }

    #[test]
    fn a_known_command_is_a_duplicate_whatever_the_version() {
        let id = Uuid::new_v4();
        let record = CommandRecord {
            command_id: id,
            stream_id: "s".into(),
            fingerprint: None,
            result: CommandResult::Accepted {
                stream_version: 1,
                first_position: 1,
                last_position: 1,
                event_count: 1,
            },
            recorded_at: 0,
        };
        let retry = request("s", ExpectedVersion::NoStream, 1, Some(id));
        let versions = HashMap::from([("s".to_string(), (5, 9))]);
        let plan = plan(
            &[&retry],
            HashMap::from([(id, record.clone())]),
            HashSet::new(),
            versions,
            9,
            0,
        );
        assert_eq!(plan.outcomes.len(), 1);
        assert!(matches!(&plan.outcomes[0], Ok(AppendOutcome::Duplicate(r)) if *r == record));
        assert!(plan.events.is_empty() && plan.commands.is_empty());
    }

    #[test]
    fn the_same_command_twice_in_one_batch_appends_once() {
        let id = Uuid::new_v4();
        let a = request("s", ExpectedVersion::NoStream, 1, Some(id));
        let b = request("s", ExpectedVersion::NoStream, 1, Some(id));
        let plan = plan(
            &[&a, &b],
            HashMap::new(),
            HashSet::new(),
            HashMap::new(),
            0,
            0,
        );
        assert_eq!(plan.events.len(), 1);
        assert_eq!(plan.commands.len(), 1);
        assert!(matches!(plan.outcomes[1], Ok(AppendOutcome::Duplicate(_))));
    }

    #[test]
    fn a_rejection_records_the_command_and_appends_nothing() {
        let id = Uuid::new_v4();
        let mut r = request("s", ExpectedVersion::Exact(2), 0, Some(id));
        r.command.as_mut().unwrap().rejection = Some(serde_json::json!({ "code": "nope" }));
        let versions = HashMap::from([("s".to_string(), (2, 4))]);
        let plan = plan(&[&r], HashMap::new(), HashSet::new(), versions, 4, 0);
        assert!(plan.events.is_empty());
        assert!(plan.streams.is_empty());
        assert_eq!(plan.new_head, 4);
        assert!(matches!(
            plan.commands[0].result,
            CommandResult::Rejected { .. }
        ));
    }

    #[test]
    fn a_stored_event_id_fails_only_its_own_request() {
        let bad = request("a", ExpectedVersion::NoStream, 1, None);
        let good = request("b", ExpectedVersion::NoStream, 1, None);
        let stored = HashSet::from([bad.events[0].event_id]);
        let plan = plan(&[&bad, &good], HashMap::new(), stored, HashMap::new(), 0, 0);
        assert!(matches!(
            plan.outcomes[0],
            Err(StoreError::InvalidRequest(_))
        ));
        assert!(matches!(
            plan.outcomes[1],
            Ok(AppendOutcome::Appended {
                first_position: 1,
                ..
            })
        ));
        assert_eq!(plan.events.len(), 1);
    }

    /// A writer that refuses, as a database would refuse a value, every batch holding a request
    /// to the stream "bad", and fails every batch with `down` set as an unreachable database
    /// would; it commits everything else, recording the batches it saw.
    struct FakeWriter {
        head: Position,
        down: bool,
        batches: Vec<Vec<String>>,
    }

    impl FakeWriter {
        fn new() -> Self {
            Self {
                head: 0,
                down: false,
                batches: Vec::new(),
            }
        }
    }

    fn refused() -> StoreError {
        StoreError::Database {
            context: "writing batch",
            cause: std::sync::Arc::new(std::io::Error::other("unsupported value")),
        }
    }

    impl BatchWriter for FakeWriter {
        async fn write_batch(&mut self, batch: &[&AppendRequest]) -> BatchResult {
            self.batches
                .push(batch.iter().map(|r| r.stream_id.clone()).collect());
            if self.down {
                return Err(StoreError::Unavailable("connection refused".into()));
            }
            if batch.iter().any(|r| r.stream_id == "bad") {
                return Err(refused());
            }
            let outcomes = batch
                .iter()
                .map(|r| {
                    let first = self.head + 1;
                    self.head += r.events.len() as u64;
                    Ok(AppendOutcome::Appended {
                        stream_version: r.events.len() as u64,
                        first_position: first,
                        last_position: self.head,
                        recorded_at: 0,
                    })
                })
                .collect();
            Ok((outcomes, self.head))
        }

        fn refused_data(&self, error: &StoreError) -> bool {
            matches!(error, StoreError::Database { .. })
        }
    }

    fn streams(names: &[&str]) -> Vec<AppendRequest> {
        names
            .iter()
            .map(|name| request(name, ExpectedVersion::Any, 1, None))
            .collect()
    }

    #[tokio::test]
    async fn a_refused_request_fails_alone_and_the_rest_of_its_batch_commits_in_order() {
        let names: Vec<String> = (0..16).map(|i| format!("s{i}")).collect();
        let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
        names[11] = "bad";
        let requests = streams(&names);
        let requests: Vec<&AppendRequest> = requests.iter().collect();
        let mut writer = FakeWriter::new();
        let (head_tx, head_rx) = watch::channel(0);
        let outcomes = commit(&mut writer, &requests, &head_tx).await;
        for (i, outcome) in outcomes.iter().enumerate() {
            if i == 11 {
                assert!(
                    matches!(outcome, Err(StoreError::InvalidRequest(m)) if m.contains("unsupported value")),
                    "{outcome:?}"
                );
            } else {
                assert!(
                    matches!(outcome, Ok(AppendOutcome::Appended { .. })),
                    "{i}: {outcome:?}"
                );
            }
        }
        // Queue order is commit order: positions rise with the index, skipping the refused one.
        let firsts: Vec<u64> = outcomes
            .iter()
            .filter_map(|o| match o {
                Ok(AppendOutcome::Appended { first_position, .. }) => Some(*first_position),
                _ => None,
            })
            .collect();
        assert_eq!(firsts, (1..=15).collect::<Vec<u64>>());
        assert_eq!(*head_rx.borrow(), 15);
        // The whole batch, then halves down to the refused request: 1 + 2 per level of 16.
        assert_eq!(writer.batches.len(), 1 + 2 * 4, "{:?}", writer.batches);
        assert!(writer.batches.contains(&vec!["bad".to_string()]));
        assert_eq!(writer.batches[1].len(), 8, "the good half commits whole");
    }

    #[tokio::test]
    async fn a_lone_refused_request_is_invalid_and_a_batch_that_could_not_be_written_is_not_split()
    {
        let requests = streams(&["bad"]);
        let requests: Vec<&AppendRequest> = requests.iter().collect();
        let mut writer = FakeWriter::new();
        let (head_tx, _) = watch::channel(0);
        let outcomes = commit(&mut writer, &requests, &head_tx).await;
        assert!(matches!(outcomes[0], Err(StoreError::InvalidRequest(_))));
        assert_eq!(writer.batches.len(), 1);

        let requests = streams(&["a", "bad", "c", "d"]);
        let requests: Vec<&AppendRequest> = requests.iter().collect();
        let mut writer = FakeWriter::new();
        writer.down = true;
        let outcomes = commit(&mut writer, &requests, &head_tx).await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Err(StoreError::Unavailable(_)))),
            "{outcomes:?}"
        );
        assert_eq!(writer.batches.len(), 1, "nothing is retried");
    }

    /// Commits unless its shared switch says the database is down.
    struct SwitchedWriter {
        down: std::sync::Arc<std::sync::atomic::AtomicBool>,
        inner: FakeWriter,
    }

    impl BatchWriter for SwitchedWriter {
        async fn write_batch(&mut self, batch: &[&AppendRequest]) -> BatchResult {
            self.inner.down = self.down.load(std::sync::atomic::Ordering::SeqCst);
            self.inner.write_batch(batch).await
        }

        fn refused_data(&self, error: &StoreError) -> bool {
            self.inner.refused_data(error)
        }
    }

    #[tokio::test]
    async fn the_writer_reports_failing_commits_until_one_succeeds() {
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let writer = SwitchedWriter {
            down: down.clone(),
            inner: FakeWriter::new(),
        };
        let health = WriteHealth::default();
        let (queue, rx) = mpsc::channel(8);
        let (head_tx, _) = watch::channel(0);
        tokio::spawn(run_writer(writer, rx, 8, head_tx, health.clone()));
        let append = |name: &str| {
            let (reply, answer) = oneshot::channel();
            let pending = Pending {
                request: request(name, ExpectedVersion::Any, 1, None),
                reply,
            };
            let queue = queue.clone();
            async move {
                queue.send(pending).await.unwrap();
                answer.await.unwrap()
            }
        };
        assert!(matches!(append("a").await, Err(StoreError::Unavailable(_))));
        assert!(health.lock().unwrap().is_some(), "a failing writer says so");
        down.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(append("b").await.is_ok());
        assert!(
            health.lock().unwrap().is_none(),
            "healthy again after a commit"
        );
    }

    #[tokio::test]
    async fn two_refused_requests_each_fail_alone() {
        let requests = streams(&["bad", "a", "b", "c", "d", "bad", "e"]);
        let requests: Vec<&AppendRequest> = requests.iter().collect();
        let mut writer = FakeWriter::new();
        let (head_tx, _) = watch::channel(0);
        let outcomes = commit(&mut writer, &requests, &head_tx).await;
        let failed: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| o.is_err())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(failed, vec![0, 5]);
    }

    #[test]
    fn validation_refuses_a_rejection_with_events_and_an_empty_append_without_a_command() {
        let mut r = request("s", ExpectedVersion::Any, 1, Some(Uuid::new_v4()));
        r.command.as_mut().unwrap().rejection = Some(serde_json::json!({}));
        assert!(validate(&r).is_err());
        assert!(validate(&request("s", ExpectedVersion::Any, 0, None)).is_err());
        assert!(validate(&request("", ExpectedVersion::Any, 1, None)).is_err());
    }
}

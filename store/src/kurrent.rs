//! The KurrentDB (formerly EventStoreDB) backend, over the official gRPC client (`eventstore` 4).
//!
//! KurrentDB is itself an event store, so this adapter maps Quire's port onto its native streams
//! instead of keeping tables of its own. The decisions, and where KurrentDB differs from the SQL
//! backends, are:
//!
//! * **Connection.** `kurrentdb://…` and `esdb://…` URLs are accepted; a `kurrentdb` scheme is
//!   rewritten to `esdb` because the client parses EventStoreDB connection strings, for example
//!   `kurrentdb://admin:changeit@localhost:2113?tls=false`. The user must be allowed to read `$all`
//!   and system streams (an admin by default ACLs), since the global log and stream listing need both.
//!   The database should be dedicated to Quire: every non-system stream is taken to be a Quire stream.
//! * **Stream versions.** Quire versions count events (a new stream is at version 0, its first event
//!   is version 1) while KurrentDB revisions number events from 0, so version = revision + 1.
//!   `ExpectedVersion::NoStream` and `Exact(0)` become `ExpectedRevision::NoStream`, `Exact(n)` becomes
//!   `ExpectedRevision::Exact(n - 1)` and `Any` stays `Any`. A wrong-expected-version answer carries
//!   the stream's current revision, which becomes `actual` (revision + 1, or 0 for no stream).
//! * **Events.** The event type is Quire's `event_type`, the data is the JSON payload, the event id is
//!   Quire's `event_id`, and the custom metadata is `{"schema_version": n, "meta": <EventMetadata>}`.
//!   KurrentDB deduplicates appends on event ids at the expected position, which is what makes a
//!   retried append idempotent (see below). Unlike the SQL backends, a reused event id is therefore
//!   not refused: an append whose ids match the events already at that position succeeds without
//!   writing anything.
//! * **Global positions.** A Quire [`Position`] is the event's commit position in the transaction
//!   log. Positions are byte offsets, so they are far from dense: gaps between consecutive events are
//!   normal and callers must only compare them, never count with them. Every gRPC append is an
//!   implicit transaction whose events each get commit position = prepare position = their own log
//!   offset, so positions are unique, and `$all` is read in commit order, so a reader that has seen
//!   position `p` never later finds a new event at or before `p` (the port's "no skipped events"
//!   property holds). Reads of a single stream come from the index, which does not know commit
//!   positions (the server reports `u64::MAX`); there the prepare position, which is the same offset
//!   for these events, is used instead. `read_all(after, …)` resumes `$all` at `(after, after)`, which
//!   is only meaningful for positions this store handed out (an event's offset), never for positions
//!   from another backend.
//! * **System events.** `read_all`, `head` and the head watch skip KurrentDB's own events (stream or
//!   event type starting with `$`) and this adapter's bookkeeping streams (`quire-commands-…`), so the
//!   global log holds domain events only. Appending to such stream ids is refused.
//! * **Idempotency.** KurrentDB cannot write two streams atomically, so a command's outcome is a
//!   separate event (type `CommandRecorded`) in the stream `quire-commands-<command id>`, written after
//!   the domain events with `ExpectedRevision::NoStream`. An append first looks that stream up and
//!   answers [`AppendOutcome::Duplicate`] when it exists; when recording loses a race (the stream
//!   appeared meanwhile) the first writer's record is returned as the duplicate. A crash between the
//!   domain events and the record leaves events without a record: the retry finds no record and
//!   re-decides. If it re-sends the same events at the same expected version, KurrentDB's event-id
//!   dedupe turns the re-append into a no-op success (Quire's actors derive event ids from the command
//!   id, so a retried command produces the same ids), and the record is then written; if it re-decides
//!   on the new state instead, it sees its own events applied and proceeds from there. Either way no
//!   event is stored twice.
//! * **Streams listing.** KurrentDB has no cheap index of stream names. [`EventStore::streams`] reads
//!   the `$streams` system projection (one link event per stream), filters and sorts the names, then
//!   reads the last event of each stream on the page. That costs a full read of `$streams` per call,
//!   which is acceptable for operator tooling; without system projections it fails with a
//!   configuration error rather than pretending there are no streams.
//! * **Stats.** Only the head is known cheaply; event, stream and command counts, counts by type and
//!   the size on disk are reported as 0, empty and `None`.
//! * **Head watch.** Own appends bump the watch directly; a background task subscribed to `$all` (from
//!   its end, system events filtered out on the server) bumps it for other processes' commits and
//!   resubscribes with backoff when the subscription fails.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use es::StreamPosition;
use eventstore as es;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::batch;
use crate::codec::{decode_metadata, decode_result, encode_metadata, encode_result};
use crate::types::{
    AppendOutcome, AppendRequest, CommandRecord, EventMetadata, ExpectedVersion, NewEvent,
    Position, RecordedEvent, StoreStats, StreamInfo, Timestamp, now_micros,
};
use crate::{EventStore, StoreError};

const BACKEND: &str = "kurrentdb";

/// The prefix of the streams that hold command outcomes.
const COMMANDS_PREFIX: &str = "quire-commands-";

/// The event type of a command outcome.
const COMMAND_EVENT_TYPE: &str = "CommandRecorded";

/// The system projection stream with one link event per stream.
const STREAMS_STREAM: &str = "$streams";

/// How many `$all` events one backward read fetches while looking for the head.
const HEAD_PAGE: usize = 64;

/// How many `$streams` links one read fetches while listing streams.
const STREAMS_PAGE: usize = 4096;

/// The first and the longest wait before the head subscription is retried.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// An event store backed by a KurrentDB server (or cluster).
pub struct KurrentStore {
    client: es::Client,
    head: watch::Sender<Position>,
    follower: tokio::task::AbortHandle,
}

/// The custom metadata stored with every domain event.
#[derive(Serialize, Deserialize)]
struct StoredMetadata {
    schema_version: u32,
    #[serde(default)]
    meta: serde_json::Value,
}

/// The data of a `CommandRecorded` event. Fields are never renamed in place: stored events live
/// forever.
#[derive(Serialize, Deserialize)]
struct StoredCommand {
    stream_id: String,
    #[serde(default)]
    fingerprint: Option<String>,
    outcome: serde_json::Value,
    recorded_at: Timestamp,
}

/// What a successful settling of a request did to its stream.
struct Settled {
    stream_version: u64,
    first_position: Position,
    last_position: Position,
    appended: bool,
}

impl KurrentStore {
    /// Connects to the server a `kurrentdb://` or `esdb://` URL names and starts following its head.
    ///
    /// The first head read doubles as a connectivity check, so a wrong address or credentials fail
    /// here rather than on the first append.
    #[tracing::instrument(name = "store.connect", skip_all, fields(backend = BACKEND))]
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        // The URL may carry a password, so errors describe the problem without echoing it.
        let settings = connection_string(url)
            .parse::<es::ClientSettings>()
            .map_err(|e| {
                StoreError::Config(format!(
                    "invalid KurrentDB connection string: {}",
                    e.message()
                ))
            })?;
        let client = es::Client::new(settings)
            .map_err(|e| StoreError::Config(format!("creating the KurrentDB client: {e}")))?;
        let head_now = read_head(&client).await?;
        let (head, _) = watch::channel(head_now);
        let follower = tokio::spawn(follow_head(client.clone(), head.clone())).abort_handle();
        Ok(Self {
            client,
            head,
            follower,
        })
    }

    /// Appends a request's events and works out their versions and positions.
    async fn append_events(&self, request: &AppendRequest) -> Result<Settled, StoreError> {
        let events = request
            .events
            .iter()
            .map(to_event_data)
            .collect::<Result<Vec<_>, _>>()?;
        let options = es::AppendToStreamOptions::default()
            .expected_revision(expected_revision(request.expected));
        let written = match self
            .client
            .append_to_stream(request.stream_id.as_str(), &options, events)
            .await
        {
            Ok(written) => written,
            Err(es::Error::WrongExpectedVersion { current, .. }) => {
                return Err(StoreError::WrongExpectedVersion {
                    stream_id: request.stream_id.clone(),
                    expected: request.expected,
                    actual: version_of(current),
                });
            }
            Err(e) => return Err(StoreError::db("appending events")(e)),
        };
        let count = request.events.len() as u64;
        let stream_version = written.next_expected_version + 1;
        let (first_position, last_position) = self
            .positions_of(
                &request.stream_id,
                stream_version.saturating_sub(count),
                count,
                written.position,
            )
            .await;
        Ok(Settled {
            stream_version,
            first_position,
            last_position,
            appended: true,
        })
    }

    /// The positions of the first and last of `count` events starting at revision `first_revision`.
    ///
    /// The write result alone is not enough: it names one position for the whole append, and none
    /// at all when the server deduplicated the events. Reading the events back gives each its own.
    /// A failed read-back must not fail an append that is already durable, so it falls back to the
    /// write result's position.
    async fn positions_of(
        &self,
        stream_id: &str,
        first_revision: u64,
        count: u64,
        written: es::Position,
    ) -> (Position, Position) {
        let options = es::ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(first_revision))
            .max_count(count as usize);
        match read_stream_events(&self.client, stream_id, &options).await {
            Ok(Some(events)) if events.len() as u64 == count => {
                let mut positions = events
                    .iter()
                    .filter_map(original)
                    .map(|e| position_of(e.position));
                let first = positions.next();
                let last = positions.last().or(first);
                if let (Some(first), Some(last)) = (first, last) {
                    return (first, last);
                }
            }
            Ok(_) => {
                tracing::warn!(stream = stream_id, "appended events not found on read-back");
            }
            Err(error) => {
                tracing::warn!(stream = stream_id, %error, "reading appended events back failed");
            }
        }
        let p = position_of(written);
        (p, p)
    }

    /// Settles a request without events (a rejection or an accepted no-op): checks the expected
    /// version and reports the stream's version and the head.
    ///
    /// The check cannot be atomic with the command record that follows, so a concurrent writer may
    /// move the stream in between; that is harmless because nothing is appended to the stream.
    async fn settle_without_events(&self, request: &AppendRequest) -> Result<Settled, StoreError> {
        let actual = self
            .stream_info(&request.stream_id)
            .await?
            .map_or(0, |info| info.version);
        if !request.expected.matches(actual) {
            return Err(StoreError::WrongExpectedVersion {
                stream_id: request.stream_id.clone(),
                expected: request.expected,
                actual,
            });
        }
        let head = read_head(&self.client).await?;
        Ok(Settled {
            stream_version: actual,
            first_position: head,
            last_position: head,
            appended: false,
        })
    }

    /// Writes a command's outcome; returns the first writer's record when another got there first.
    async fn record_command(
        &self,
        record: &CommandRecord,
    ) -> Result<Option<CommandRecord>, StoreError> {
        let stored = StoredCommand {
            stream_id: record.stream_id.clone(),
            fingerprint: record.fingerprint.clone(),
            outcome: encode_result(&record.result),
            recorded_at: record.recorded_at,
        };
        // A fresh event id, not one derived from the command: KurrentDB would treat a second record
        // with the same id as an idempotent success and hide that another writer recorded first.
        let event = es::EventData::json(COMMAND_EVENT_TYPE, &stored)
            .map_err(StoreError::db("encoding command outcome"))?
            .id(Uuid::new_v4());
        let options =
            es::AppendToStreamOptions::default().expected_revision(es::ExpectedRevision::NoStream);
        match self
            .client
            .append_to_stream(command_stream(record.command_id), &options, event)
            .await
        {
            Ok(_) => Ok(None),
            Err(es::Error::WrongExpectedVersion { .. }) => {
                match self.read_command(record.command_id).await? {
                    Some(first) => Ok(Some(first)),
                    None => Err(StoreError::Corrupt(format!(
                        "command stream {} exists but holds no record",
                        command_stream(record.command_id)
                    ))),
                }
            }
            Err(e) => Err(StoreError::db("recording command outcome")(e)),
        }
    }

    async fn read_command(&self, command_id: Uuid) -> Result<Option<CommandRecord>, StoreError> {
        let options = es::ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Start)
            .max_count(1);
        let events = read_stream_events(&self.client, &command_stream(command_id), &options)
            .await
            .map_err(StoreError::db("reading command outcome"))?;
        events
            .as_deref()
            .and_then(|events| events.first())
            .and_then(original)
            .map(|e| decode_command(command_id, e))
            .transpose()
    }

    /// A stream's version, last position and last write time, or `None` if it does not exist.
    async fn stream_info(&self, stream_id: &str) -> Result<Option<StreamInfo>, StoreError> {
        let options = es::ReadStreamOptions::default()
            .position(StreamPosition::End)
            .max_count(1);
        let events = read_stream_events(&self.client, stream_id, &options)
            .await
            .map_err(StoreError::db("reading stream version"))?;
        Ok(events
            .as_deref()
            .and_then(|events| events.first())
            .and_then(original)
            .map(|e| StreamInfo {
                stream_id: stream_id.to_string(),
                version: e.revision + 1,
                last_position: position_of(e.position),
                updated_at: recorded_at(e),
            }))
    }
}

impl Drop for KurrentStore {
    fn drop(&mut self) {
        // The follower holds a client clone and a watch sender; without this it would keep a
        // subscription open for the life of the process.
        self.follower.abort();
    }
}

#[async_trait]
impl EventStore for KurrentStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    #[tracing::instrument(name = "store.append", skip_all, fields(backend = "kurrentdb", stream = %request.stream_id, events = request.events.len()))]
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        batch::validate(&request)?;
        if is_reserved_stream(&request.stream_id) {
            return Err(StoreError::InvalidRequest(format!(
                "stream ids starting with '$' or '{COMMANDS_PREFIX}' are reserved in KurrentDB"
            )));
        }
        // Idempotency comes first, as in the SQL backends: a retried command gets its first outcome
        // whatever the stream's version is now.
        if let Some(command) = &request.command
            && let Some(record) = self.read_command(command.command_id).await?
        {
            return Ok(AppendOutcome::Duplicate(record));
        }
        let settled = if request.events.is_empty() {
            self.settle_without_events(&request).await?
        } else {
            match self.append_events(&request).await {
                Ok(settled) => settled,
                Err(error @ StoreError::WrongExpectedVersion { .. }) => {
                    // A concurrent retry of the same command may have moved the stream and recorded
                    // the outcome between our lookup and our append; its record is the answer.
                    if let Some(command) = &request.command
                        && let Some(record) = self.read_command(command.command_id).await?
                    {
                        return Ok(AppendOutcome::Duplicate(record));
                    }
                    return Err(error);
                }
                Err(error) => return Err(error),
            }
        };
        if settled.appended {
            let last = settled.last_position;
            self.head.send_if_modified(|h| bump(h, last));
        }
        // The server stamps the events itself; this is when their append returned, close to it.
        let recorded_at = now_micros();
        if let Some(command) = &request.command {
            let record = command.record(
                &request.stream_id,
                (
                    settled.stream_version,
                    settled.first_position,
                    settled.last_position,
                ),
                request.events.len(),
                recorded_at,
            );
            if let Some(first) = self.record_command(&record).await? {
                return Ok(AppendOutcome::Duplicate(first));
            }
        }
        Ok(AppendOutcome::Appended {
            stream_version: settled.stream_version,
            first_position: settled.first_position,
            last_position: settled.last_position,
            recorded_at,
        })
    }

    #[tracing::instrument(name = "store.read_stream", skip(self), fields(backend = "kurrentdb"))]
    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Version `after_version + 1` is revision `after_version`, and the read starts there.
        let options = es::ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(after_version))
            .max_count(limit);
        let events = read_stream_events(&self.client, stream_id, &options)
            .await
            .map_err(StoreError::db("reading stream"))?
            .unwrap_or_default();
        events
            .iter()
            .filter_map(original)
            .map(from_recorded)
            .collect()
    }

    #[tracing::instrument(
        name = "store.read_all",
        level = "debug",
        skip(self),
        fields(backend = "kurrentdb")
    )]
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        // System and bookkeeping events are skipped client-side, so one page may hold none of the
        // events asked for; reading on until `limit` events or the end of `$all` keeps a subscriber
        // from stalling behind a run of system events.
        let page = limit.clamp(HEAD_PAGE, STREAMS_PAGE);
        let mut cursor = (after > 0).then_some(es::Position {
            commit: after,
            prepare: after,
        });
        loop {
            let start = cursor.map_or(StreamPosition::Start, StreamPosition::Position);
            let options = es::ReadAllOptions::default()
                .position(start)
                .forwards()
                .max_count(page);
            let events = read_all_events(&self.client, &options)
                .await
                .map_err(StoreError::db("reading global log"))?;
            let mut advanced = false;
            for e in events.iter().filter_map(original) {
                // A forward read of `$all` includes the event at its start position.
                if cursor.is_some_and(|c| e.position <= c) {
                    continue;
                }
                cursor = Some(e.position);
                advanced = true;
                if is_bookkeeping(e) || position_of(e.position) <= after {
                    continue;
                }
                out.push(from_recorded(e)?);
                if out.len() == limit {
                    return Ok(out);
                }
            }
            if events.len() < page || !advanced {
                return Ok(out);
            }
        }
    }

    #[tracing::instrument(name = "store.head", skip(self), fields(backend = "kurrentdb"))]
    async fn head(&self) -> Result<Position, StoreError> {
        let head = read_head(&self.client).await?;
        self.head.send_if_modified(|h| bump(h, head));
        Ok(head)
    }

    fn head_watch(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }

    fn observe_head(&self, position: Position) {
        crate::raise_head(&self.head, position);
    }

    #[tracing::instrument(name = "store.command", skip(self), fields(backend = "kurrentdb"))]
    async fn command(&self, command_id: Uuid) -> Result<Option<CommandRecord>, StoreError> {
        self.read_command(command_id).await
    }

    #[tracing::instrument(name = "store.streams", skip(self), fields(backend = "kurrentdb"))]
    async fn streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // `$streams` is in creation order, so every link is read and the names sorted here.
        let mut names = BTreeSet::new();
        let mut from = 0u64;
        loop {
            let options = es::ReadStreamOptions::default()
                .forwards()
                .position(StreamPosition::Position(from))
                .max_count(STREAMS_PAGE);
            let Some(links) = read_stream_events(&self.client, STREAMS_STREAM, &options)
                .await
                .map_err(StoreError::db("reading $streams"))?
            else {
                return Err(StoreError::Config(
                    "listing streams needs the $streams system projection, and this KurrentDB \
                     server has no $streams stream: run it with system projections enabled \
                     (--run-projections=System --start-standard-projections=true)"
                        .into(),
                ));
            };
            for link in links.iter().filter_map(original) {
                from = link.revision + 1;
                let Some(name) = linked_stream(&link.data) else {
                    continue;
                };
                if name.starts_with(prefix)
                    && after.is_none_or(|a| name > a)
                    && !is_reserved_stream(name)
                {
                    names.insert(name.to_string());
                }
            }
            if links.len() < STREAMS_PAGE {
                break;
            }
        }
        let mut out = Vec::new();
        for name in names {
            if out.len() == limit {
                break;
            }
            // A listed stream that no longer reads (deleted) is left out rather than failing.
            if let Some(info) = self.stream_info(&name).await? {
                out.push(info);
            }
        }
        Ok(out)
    }

    #[tracing::instrument(name = "store.stats", skip(self), fields(backend = "kurrentdb"))]
    async fn stats(&self) -> Result<StoreStats, StoreError> {
        // Counting events, streams or commands would mean reading the whole of `$all`, so only the
        // head is reported and the rest stays at its "unknown" default.
        Ok(StoreStats {
            backend: BACKEND.into(),
            head: self.head().await?,
            ..StoreStats::default()
        })
    }
}

/// Rewrites a `kurrentdb` scheme to the `esdb` scheme the client parses.
fn connection_string(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("kurrentdb+discover://") {
        format!("esdb+discover://{rest}")
    } else if let Some(rest) = url.strip_prefix("kurrentdb://") {
        format!("esdb://{rest}")
    } else {
        url.to_string()
    }
}

fn expected_revision(expected: ExpectedVersion) -> es::ExpectedRevision {
    match expected {
        ExpectedVersion::Any => es::ExpectedRevision::Any,
        ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => es::ExpectedRevision::NoStream,
        ExpectedVersion::Exact(version) => es::ExpectedRevision::Exact(version - 1),
    }
}

fn version_of(current: es::CurrentRevision) -> u64 {
    match current {
        es::CurrentRevision::Current(revision) => revision + 1,
        es::CurrentRevision::NoStream => 0,
    }
}

/// The Quire position of an event: its commit position, or its prepare position where the server
/// does not know the commit position (reads of one stream report `u64::MAX`).
fn position_of(position: es::Position) -> Position {
    if position.commit == u64::MAX {
        position.prepare
    } else {
        position.commit
    }
}

fn command_stream(command_id: Uuid) -> String {
    format!("{COMMANDS_PREFIX}{command_id}")
}

/// Stream ids Quire must not append to: KurrentDB's system streams and this adapter's own.
fn is_reserved_stream(stream_id: &str) -> bool {
    stream_id.starts_with('$') || stream_id.starts_with(COMMANDS_PREFIX)
}

/// Whether an event is KurrentDB's or this adapter's bookkeeping rather than a domain event.
fn is_bookkeeping(event: &es::RecordedEvent) -> bool {
    is_reserved_stream(&event.stream_id) || event.event_type.starts_with('$')
}

/// The event a read returned: the link itself for an unresolved link, else the event.
fn original(resolved: &es::ResolvedEvent) -> Option<&es::RecordedEvent> {
    resolved.link.as_ref().or(resolved.event.as_ref())
}

/// The stream a `$streams` link points at; link data reads `<revision>@<stream id>`.
fn linked_stream(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data)
        .ok()?
        .split_once('@')
        .map(|(_, stream)| stream)
}

/// Raises the watched head, never lowering it: the subscription and own appends race, and a late
/// notification must not move the head backwards.
fn bump(h: &mut Position, now: Position) -> bool {
    if now > *h {
        *h = now;
        true
    } else {
        false
    }
}

fn to_event_data(event: &NewEvent) -> Result<es::EventData, StoreError> {
    let custom = StoredMetadata {
        schema_version: event.schema_version,
        meta: encode_metadata(&event.metadata),
    };
    es::EventData::json(&event.event_type, &event.payload)
        .map_err(StoreError::db("encoding event payload"))?
        .id(event.event_id)
        .metadata_as_json(&custom)
        .map_err(StoreError::db("encoding event metadata"))
}

/// The commit time in microseconds: the server's `created` metadata is in 100 ns ticks since the
/// Unix epoch, finer than the client's own (whole seconds) `created` field, which is the fallback.
fn recorded_at(event: &es::RecordedEvent) -> Timestamp {
    event
        .metadata
        .get("created")
        .and_then(|ticks| ticks.parse::<i64>().ok())
        .map(|ticks| ticks / 10)
        .unwrap_or_else(|| event.created.timestamp_micros())
}

fn from_recorded(event: &es::RecordedEvent) -> Result<RecordedEvent, StoreError> {
    let payload = serde_json::from_slice(&event.data).map_err(|e| {
        StoreError::Corrupt(format!(
            "payload of {}@{}: {e}",
            event.revision, event.stream_id
        ))
    })?;
    // Events written by other tools may lack Quire's metadata; they read as schema 1 with empty
    // metadata rather than failing every reader of the log.
    let (schema_version, metadata) = if event.custom_metadata.is_empty() {
        (1, EventMetadata::default())
    } else {
        let stored: StoredMetadata =
            serde_json::from_slice(&event.custom_metadata).map_err(|e| {
                StoreError::Corrupt(format!(
                    "metadata of {}@{}: {e}",
                    event.revision, event.stream_id
                ))
            })?;
        let metadata = if stored.meta.is_null() {
            EventMetadata::default()
        } else {
            decode_metadata(stored.meta)?
        };
        (stored.schema_version, metadata)
    };
    Ok(RecordedEvent {
        position: position_of(event.position),
        stream_id: event.stream_id.clone(),
        version: event.revision + 1,
        event_id: event.id,
        event_type: event.event_type.clone(),
        schema_version,
        payload,
        metadata,
        recorded_at: recorded_at(event),
    })
}

fn decode_command(
    command_id: Uuid,
    event: &es::RecordedEvent,
) -> Result<CommandRecord, StoreError> {
    let stored: StoredCommand = serde_json::from_slice(&event.data)
        .map_err(|e| StoreError::Corrupt(format!("command record {command_id}: {e}")))?;
    Ok(CommandRecord {
        command_id,
        stream_id: stored.stream_id,
        fingerprint: stored.fingerprint,
        result: decode_result(stored.outcome)?,
        recorded_at: stored.recorded_at,
    })
}

/// Reads a stream to the end of the read, or `None` if the stream does not exist.
async fn read_stream_events(
    client: &es::Client,
    stream_id: &str,
    options: &es::ReadStreamOptions,
) -> Result<Option<Vec<es::ResolvedEvent>>, es::Error> {
    let mut read = match client.read_stream(stream_id, options).await {
        Ok(read) => read,
        Err(es::Error::ResourceNotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    loop {
        // The server reports a missing stream as the first message of the read, not as a failed call.
        match read.next().await {
            Ok(Some(event)) => out.push(event),
            Ok(None) => return Ok(Some(out)),
            Err(es::Error::ResourceNotFound) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

async fn read_all_events(
    client: &es::Client,
    options: &es::ReadAllOptions,
) -> Result<Vec<es::ResolvedEvent>, es::Error> {
    let mut read = client.read_all(options).await?;
    let mut out = Vec::new();
    while let Some(event) = read.next().await? {
        out.push(event);
    }
    Ok(out)
}

/// The position of the last domain event in `$all`, or 0 when there is none.
async fn read_head(client: &es::Client) -> Result<Position, StoreError> {
    let mut cursor: Option<es::Position> = None;
    loop {
        let options = match cursor {
            None => es::ReadAllOptions::default().position(StreamPosition::End),
            Some(c) => es::ReadAllOptions::default()
                .position(StreamPosition::Position(c))
                .backwards(),
        }
        .max_count(HEAD_PAGE);
        let events = read_all_events(client, &options)
            .await
            .map_err(StoreError::db("reading head position"))?;
        let mut advanced = false;
        for e in events.iter().filter_map(original) {
            // A backward read starts strictly before its position; the check guards against a server
            // that includes it.
            if cursor.is_some_and(|c| e.position >= c) {
                continue;
            }
            cursor = Some(e.position);
            advanced = true;
            if !is_bookkeeping(e) {
                return Ok(position_of(e.position));
            }
        }
        if events.len() < HEAD_PAGE || !advanced {
            return Ok(0);
        }
    }
}

/// Follows `$all` from its end and raises the head watch on every domain event, resubscribing with
/// exponential backoff when the subscription fails.
async fn follow_head(client: es::Client, head: watch::Sender<Position>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let options = es::SubscribeToAllOptions::default()
            .position(StreamPosition::End)
            .filter(es::SubscriptionFilter::on_event_type().exclude_system_events());
        let mut subscription = client.subscribe_to_all(&options).await;
        loop {
            match subscription.next_subscription_event().await {
                Ok(es::SubscriptionEvent::Confirmed(_)) => {
                    backoff = MIN_BACKOFF;
                    // Commits made while unsubscribed are not replayed from the end, so the head is
                    // read once per (re)subscription to catch up with them.
                    match read_head(&client).await {
                        Ok(now) => {
                            head.send_if_modified(|h| bump(h, now));
                        }
                        Err(error) => {
                            tracing::warn!(%error, "reading the KurrentDB head after subscribing failed");
                        }
                    }
                }
                Ok(es::SubscriptionEvent::EventAppeared(resolved)) => {
                    if let Some(event) = original(&resolved).filter(|e| !is_bookkeeping(e)) {
                        let now = position_of(event.position);
                        head.send_if_modified(|h| bump(h, now));
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(
                        %error,
                        retry_in_ms = backoff.as_millis() as u64,
                        "KurrentDB head subscription failed; resubscribing"
                    );
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CommandResult;

    #[test]
    fn kurrentdb_urls_become_esdb_connection_strings() {
        assert_eq!(
            connection_string("kurrentdb://admin:changeit@localhost:2113?tls=false"),
            "esdb://admin:changeit@localhost:2113?tls=false"
        );
        assert_eq!(
            connection_string("kurrentdb+discover://cluster:2113"),
            "esdb+discover://cluster:2113"
        );
        assert_eq!(
            connection_string("esdb://localhost:2113?tls=false"),
            "esdb://localhost:2113?tls=false"
        );
        assert!(
            connection_string("kurrentdb://localhost:2113?tls=false")
                .parse::<es::ClientSettings>()
                .is_ok()
        );
    }

    #[test]
    fn versions_are_revisions_plus_one() {
        assert_eq!(
            expected_revision(ExpectedVersion::Any),
            es::ExpectedRevision::Any
        );
        assert_eq!(
            expected_revision(ExpectedVersion::NoStream),
            es::ExpectedRevision::NoStream
        );
        assert_eq!(
            expected_revision(ExpectedVersion::Exact(0)),
            es::ExpectedRevision::NoStream
        );
        assert_eq!(
            expected_revision(ExpectedVersion::Exact(3)),
            es::ExpectedRevision::Exact(2)
        );
        assert_eq!(version_of(es::CurrentRevision::NoStream), 0);
        assert_eq!(version_of(es::CurrentRevision::Current(0)), 1);
        assert_eq!(version_of(es::CurrentRevision::Current(4)), 5);
    }

    #[test]
    fn stream_reads_fall_back_to_the_prepare_position() {
        let all = es::Position {
            commit: 42,
            prepare: 42,
        };
        let indexed = es::Position {
            commit: u64::MAX,
            prepare: 42,
        };
        assert_eq!(position_of(all), 42);
        assert_eq!(position_of(indexed), 42);
    }

    #[test]
    fn system_and_command_streams_are_reserved() {
        assert!(is_reserved_stream("$streams"));
        assert!(is_reserved_stream(&command_stream(Uuid::nil())));
        assert!(!is_reserved_stream("book-1"));
    }

    #[test]
    fn streams_links_name_their_stream() {
        assert_eq!(linked_stream(b"0@book-1"), Some("book-1"));
        assert_eq!(linked_stream(b"0@user@example"), Some("user@example"));
        assert_eq!(linked_stream(b"garbage"), None);
    }

    #[test]
    fn the_head_only_moves_forward() {
        let mut h = 10;
        assert!(!bump(&mut h, 5));
        assert_eq!(h, 10);
        assert!(bump(&mut h, 11));
        assert_eq!(h, 11);
    }

    #[test]
    fn command_records_round_trip() {
        let result = CommandResult::Accepted {
            stream_version: 2,
            first_position: 100,
            last_position: 180,
            event_count: 2,
        };
        let stored = StoredCommand {
            stream_id: "book-1".into(),
            fingerprint: Some("fp".into()),
            outcome: encode_result(&result),
            recorded_at: 7,
        };
        let json = serde_json::to_value(&stored).unwrap();
        let back: StoredCommand = serde_json::from_value(json).unwrap();
        assert_eq!(back.stream_id, "book-1");
        assert_eq!(back.fingerprint.as_deref(), Some("fp"));
        assert_eq!(decode_result(back.outcome).unwrap(), result);
    }
}

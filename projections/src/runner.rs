//! The projection runner: one task per projection, each a checkpointed consumer of the global log.
//!
//! A task reads a batch after its checkpoint, applies it in one read-model transaction that starts
//! by reading (and locking) the stored checkpoint and ends by moving it, then reads on. When caught
//! up it waits for the store's head watch (or a poll interval, for commits of other nodes). A batch
//! with none of the events the projection reads (`apply::reads`: a review for the users
//! projection, say) needs no transaction: the checkpoint moves in memory, where waiters see it,
//! and is stored at most every 250 ms and before the runner waits or stops. The projection's
//! tables are then as of that position all the same, since those events do not touch them; a
//! restart merely reads them again. A failing batch (an undecodable event, a database error) is recorded in the checkpoint row and
//! logged, then retried with backoff; nothing is skipped.

use std::time::Duration;

use quire_store::{DynEventStore, EventBatch, RecordedEvent};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::apply::{Target, apply_batch, reads};
use crate::db::Arg;
use crate::{ProjectionName, ReadModelError, ReadModels};

/// The longest retry delay while storage is unavailable (the database down or unreachable, the
/// disk full): an outage ends by itself, and the projection should resume within seconds of it,
/// since writes wait for their read model.
const OUTAGE_BACKOFF: Duration = Duration::from_secs(2);

/// How often a checkpoint moved only in memory (over batches the projection does not read) is
/// stored: often enough that `/status` and a restart see it soon, rarely enough that the events of
/// other projections cost this one no writes.
const STORE_SKIPPED_EVERY: Duration = Duration::from_millis(250);

/// The most links a `projection.apply` span carries to the spans that wrote its events.
const MAX_LINKS: usize = 32;

/// How far each projection is behind the head of the log, in events, as this node last saw it.
static LAG: std::sync::LazyLock<opentelemetry::metrics::Gauge<u64>> =
    std::sync::LazyLock::new(|| {
        quire_store::telemetry::meter()
            .u64_gauge("quire.projection.lag")
            .with_description("Events in the log that a projection has not applied yet")
            .build()
    });

/// Tuning for the runner.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The most events one transaction applies. Near the head batches are as small as what is
    /// new; catching up, each is a whole shared block of the log (`quire_store::tail`), which
    /// every projection of the node applies from one read.
    pub batch_size: usize,
    /// The longest wait before reading the log again without a wake-up.
    pub poll_interval: Duration,
    /// The first retry delay after a failure; it doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            batch_size: quire_store::tail::BLOCK_EVENTS as usize,
            poll_interval: Duration::from_millis(500),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// The running projections; [`shutdown`](Self::shutdown) stops them between batches.
pub struct ProjectionsHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ProjectionsHandle {
    /// Stops every projection task after its current batch and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "projection task failed");
            }
        }
    }
}

/// Starts one task per projection, consuming `store` into `read`.
pub fn spawn(store: DynEventStore, read: ReadModels, options: RunnerOptions) -> ProjectionsHandle {
    let (stop, stopped) = watch::channel(false);
    let tasks = ProjectionName::ALL
        .into_iter()
        .map(|projection| {
            let runner = Runner {
                store: store.clone(),
                read: read.clone(),
                options: options.clone(),
                target: Target::live(projection),
                stopped: stopped.clone(),
            };
            tokio::spawn(runner.run())
        })
        .collect();
    ProjectionsHandle { stop, tasks }
}

/// Starts the task of one projection, as a cluster node does for the projections whose lease it
/// holds.
pub fn spawn_one(
    store: DynEventStore,
    read: ReadModels,
    options: RunnerOptions,
    projection: ProjectionName,
) -> ProjectionsHandle {
    let (stop, stopped) = watch::channel(false);
    let runner = Runner {
        store,
        read,
        options,
        target: Target::live(projection),
        stopped,
    };
    ProjectionsHandle {
        stop,
        tasks: vec![tokio::spawn(runner.run())],
    }
}

/// Where a step left the projection: its new checkpoint, and whether the batch was skipped (none
/// of its events read, the checkpoint moved in memory only).
struct Step {
    position: u64,
    skipped: bool,
}

struct Runner {
    store: DynEventStore,
    read: ReadModels,
    options: RunnerOptions,
    target: Target,
    stopped: watch::Receiver<bool>,
}

impl Runner {
    fn name(&self) -> &'static str {
        self.target.projection.as_str()
    }

    /// Sleeps for `duration` unless asked to stop first; returns whether to go on.
    async fn pause(&mut self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.stopped.wait_for(|s| *s) => false,
            _ = tokio::time::sleep(duration) => true,
        }
    }

    async fn run(mut self) {
        let _here = self.read.running_here(self.target.projection);
        let mut head = self.store.head_watch();
        let mut backoff = self.options.initial_backoff;
        let mut after: Option<u64> = None;
        let mut prefetched = None;
        // Whether the last step failed (and so may have left its error in the checkpoint row).
        let mut failed = false;
        // A checkpoint moved past batches this projection does not read, not yet stored.
        let mut unstored: Option<u64> = None;
        let mut stored_at = tokio::time::Instant::now();
        tracing::info!(projection = self.name(), "projection started");
        while !*self.stopped.borrow() {
            // Mark the head as seen before reading, so a commit after the read still wakes us.
            head.borrow_and_update();
            let stepped = after.is_some();
            let step = match after {
                None => self
                    .read
                    .stored_checkpoint(self.target.projection)
                    .await
                    .map(|position| {
                        Some(Step {
                            position,
                            skipped: false,
                        })
                    }),
                Some(position) => self.step(position, &mut prefetched).await,
            };
            if failed && stepped && step.is_ok() {
                // Recovered (the database is back, say) with maybe nothing new to apply, which
                // would otherwise leave the old error in the checkpoint row for `/status`.
                self.read.db().set_failing(self.target.projection, None);
                match self.read.clear_error(&self.target).await {
                    Ok(()) => failed = false,
                    Err(error) => {
                        tracing::warn!(projection = self.name(), error = %error.chain(), "cannot clear the projection's recorded error");
                    }
                }
            }
            if let Ok(Some(Step { position, skipped })) = step {
                if skipped {
                    unstored = Some(position);
                } else {
                    unstored = None;
                    stored_at = tokio::time::Instant::now();
                }
            }
            if unstored.is_some() && stored_at.elapsed() >= STORE_SKIPPED_EVERY {
                self.store_skipped(&mut unstored).await;
                stored_at = tokio::time::Instant::now();
            }
            let step = step.map(|s| s.map(|s| s.position));
            if let Ok(Some(position)) = step {
                let lag = head.borrow().saturating_sub(position);
                LAG.record(
                    lag,
                    &[opentelemetry::KeyValue::new("projection", self.name())],
                );
            }
            match step {
                Ok(Some(position)) => {
                    let moved = after != Some(position);
                    after = Some(position);
                    backoff = self.options.initial_backoff;
                    if moved {
                        continue;
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    let message = error.chain();
                    self.read.db().note(&error);
                    self.read
                        .db()
                        .set_failing(self.target.projection, Some(message.clone()));
                    failed = true;
                    let outage = error.is_unavailable();
                    if outage {
                        backoff = backoff.min(OUTAGE_BACKOFF);
                    }
                    tracing::error!(projection = self.name(), error = %message, retry_in = ?backoff, "projection batch failed");
                    if let Err(record) = self.read.record_error(&self.target, &message).await {
                        tracing::error!(projection = self.name(), error = %record.chain(), "cannot record projection error");
                    }
                    // Re-read the checkpoint before retrying: it is the truth, not our memory.
                    after = None;
                    prefetched = None;
                    if !self.pause(backoff).await {
                        break;
                    }
                    let cap = if outage {
                        self.options.max_backoff.min(OUTAGE_BACKOFF)
                    } else {
                        self.options.max_backoff
                    };
                    backoff = (backoff * 2).min(cap);
                    continue;
                }
            }
            // Caught up: store a checkpoint moved in memory, then wait for a commit, the poll
            // interval, or the stop signal.
            if unstored.is_some() {
                self.store_skipped(&mut unstored).await;
                stored_at = tokio::time::Instant::now();
            }
            let poll = self.options.poll_interval;
            tokio::select! {
                _ = self.stopped.wait_for(|s| *s) => break,
                _ = head.changed() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
        self.store_skipped(&mut unstored).await;
        tracing::info!(projection = self.name(), "projection stopped");
    }

    /// Stores a checkpoint moved in memory only; on failure it stays pending (the next batch the
    /// projection reads stores its own checkpoint anyway).
    async fn store_skipped(&self, unstored: &mut Option<u64>) {
        let Some(position) = *unstored else {
            return;
        };
        match self.read.store_checkpoint(&self.target, position).await {
            Ok(()) => *unstored = None,
            Err(error) => {
                tracing::warn!(projection = self.name(), error = %error.chain(), "cannot store the checkpoint");
            }
        }
    }

    /// Applies the next batch after `after`; `Ok(Some(p))` is the new checkpoint, `Ok(None)` means
    /// the log had nothing new. While a batch is applied the next one is read, so catching up keeps
    /// both databases busy; a prefetched batch is only a hint (the transaction skips whatever the
    /// stored checkpoint already covers).
    async fn step(
        &self,
        after: u64,
        prefetched: &mut Option<EventBatch>,
    ) -> Result<Option<Step>, ReadModelError> {
        let events = match prefetched.take() {
            Some(events) if events.first().is_some_and(|e| e.position > after) => events,
            _ => self.read_after(after).await?,
        };
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(None);
        };
        // Nothing here for this projection: no transaction, the checkpoint moves in memory (and
        // is stored soon after). Waiters see it move at once.
        if !events.iter().any(|e| reads(self.target.projection, e)) {
            self.read.advance(self.target.projection, last);
            return Ok(Some(Step {
                position: last,
                skipped: true,
            }));
        }
        // The apply is caused by the requests that wrote these events, not part of them: it links
        // to the spans that wrote them (the first few: a catch-up batch holds hundreds).
        let span = tracing::info_span!(
            "projection.apply",
            projection = self.name(),
            events = events.len(),
            first = events[0].position,
            last,
            otel.kind = "consumer",
        );
        for event in events
            .iter()
            .filter(|e| reads(self.target.projection, e))
            .take(MAX_LINKS)
        {
            quire_store::telemetry::link(&span, event.metadata.traceparent.as_deref());
        }
        let (applied, next) = tokio::join!(
            self.read.apply_live(&self.target, &events).instrument(span),
            self.read_after(last)
        );
        match applied {
            Ok(position) => {
                *prefetched = next.ok().filter(|n| !n.is_empty());
                Ok(Some(Step {
                    position,
                    skipped: false,
                }))
            }
            Err(error) => {
                if let ReadModelError::Decode { position, .. } = &error
                    && events[0].position < *position
                {
                    // Apply what precedes the undecodable event, so the projection stops right
                    // before it, then report it.
                    let before = events.partition_point(|e| e.position < *position);
                    self.read
                        .apply_live(&self.target, &events[..before])
                        .await?;
                }
                Err(error)
            }
        }
    }

    async fn read_after(&self, after: u64) -> Result<EventBatch, ReadModelError> {
        self.store
            .read_all_shared(after, self.options.batch_size)
            .await
            .map_err(ReadModelError::Store)
    }
}

impl ReadModels {
    /// A projection's stored checkpoint (which also moves this process's watch of it).
    pub async fn stored_checkpoint(
        &self,
        projection: ProjectionName,
    ) -> Result<u64, ReadModelError> {
        let statuses = self.statuses().await?;
        let position = statuses
            .iter()
            .find(|s| s.name == projection)
            .map_or(0, |s| s.position);
        self.advance(projection, position);
        Ok(position)
    }

    /// Applies a batch to the live tables in one transaction; returns the new checkpoint.
    #[tracing::instrument(skip_all, fields(projection = target.projection.as_str(), events = events.len()))]
    pub(crate) async fn apply_live(
        &self,
        target: &Target,
        events: &[RecordedEvent],
    ) -> Result<u64, ReadModelError> {
        let mut tx = self.db().begin().await?;
        let position = apply_batch(&mut tx, target, events).await?;
        tx.commit().await?;
        self.tables_changed(target.projection);
        self.advance(target.projection, position);
        Ok(position)
    }

    /// Stores a checkpoint the runner moved in memory over batches the projection does not read.
    /// It never moves a stored checkpoint back.
    async fn store_checkpoint(&self, target: &Target, position: u64) -> Result<(), ReadModelError> {
        let mut tx = self.db().begin().await?;
        tx.exec(
            "storing a skipped checkpoint",
            "UPDATE rm_checkpoints SET position = $2, updated_at = $3 \
             WHERE projection = $1 AND position < $2",
            &[
                Arg::Text(target.checkpoint.clone()),
                Arg::I64(position as i64),
                Arg::I64(quire_store::now_micros()),
            ],
        )
        .await?;
        tx.commit().await
    }

    /// Clears the error a projection recorded, once it applies again.
    async fn clear_error(&self, target: &Target) -> Result<(), ReadModelError> {
        let mut tx = self.db().begin().await?;
        tx.exec(
            "clearing projection error",
            "UPDATE rm_checkpoints SET last_error = NULL, last_error_at = NULL \
             WHERE projection = $1 AND last_error IS NOT NULL",
            &[Arg::Text(target.checkpoint.clone())],
        )
        .await?;
        tx.commit().await
    }

    /// Stores the error a projection is stuck on, for `statuses`.
    async fn record_error(&self, target: &Target, message: &str) -> Result<(), ReadModelError> {
        let mut tx = self.db().begin().await?;
        tx.exec(
            "recording projection error",
            "UPDATE rm_checkpoints SET last_error = $2, last_error_at = $3 WHERE projection = $1",
            &[
                Arg::Text(target.checkpoint.clone()),
                Arg::Text(message.to_string()),
                Arg::I64(quire_store::now_micros()),
            ],
        )
        .await?;
        tx.commit().await
    }
}

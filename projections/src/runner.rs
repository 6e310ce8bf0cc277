//! The projection runner: one task per projection, each a checkpointed consumer of the global log.
//!
//! A task reads a batch after its checkpoint, applies it in one read-model transaction that starts
//! by reading (and locking) the stored checkpoint and ends by moving it, then reads on. When caught
//! up it waits for the store's head watch (or a poll interval, for commits of other nodes). A
//! failing batch (an undecodable event, a database error) is recorded in the checkpoint row and
//! logged, then retried with backoff; nothing is skipped.

use std::time::Duration;

use quire_store::{DynEventStore, RecordedEvent};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::apply::{Target, apply_batch};
use crate::db::Arg;
use crate::{ProjectionName, ReadModelError, ReadModels};

/// The longest retry delay while storage is unavailable (the database down or unreachable, the
/// disk full): an outage ends by itself, and the projection should resume within seconds of it,
/// since writes wait for their read model.
const OUTAGE_BACKOFF: Duration = Duration::from_secs(2);

/// Tuning for the runner.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The most events one transaction applies.
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
            batch_size: 500,
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
        let mut head = self.store.head_watch();
        let mut backoff = self.options.initial_backoff;
        let mut after: Option<u64> = None;
        let mut prefetched = None;
        // Whether the last step failed (and so may have left its error in the checkpoint row).
        let mut failed = false;
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
                    .map(Some),
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
            // Caught up: wait for a commit, the poll interval, or the stop signal.
            let poll = self.options.poll_interval;
            tokio::select! {
                _ = self.stopped.wait_for(|s| *s) => break,
                _ = head.changed() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
        tracing::info!(projection = self.name(), "projection stopped");
    }

    /// Applies the next batch after `after`; `Ok(Some(p))` is the new checkpoint, `Ok(None)` means
    /// the log had nothing new. While a batch is applied the next one is read, so catching up keeps
    /// both databases busy; a prefetched batch is only a hint (the transaction skips whatever the
    /// stored checkpoint already covers).
    async fn step(
        &self,
        after: u64,
        prefetched: &mut Option<Vec<RecordedEvent>>,
    ) -> Result<Option<u64>, ReadModelError> {
        let events = match prefetched.take() {
            Some(events) if events.first().is_some_and(|e| e.position > after) => events,
            _ => self.read_after(after).await?,
        };
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(None);
        };
        let (applied, next) = tokio::join!(
            self.read.apply_live(&self.target, &events),
            self.read_after(last)
        );
        match applied {
            Ok(position) => {
                *prefetched = next.ok().filter(|n| !n.is_empty());
                Ok(Some(position))
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

    async fn read_after(&self, after: u64) -> Result<Vec<RecordedEvent>, ReadModelError> {
        self.store
            .read_all(after, self.options.batch_size)
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
        self.advance(target.projection, position);
        Ok(position)
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

//! Quire's read models: checkpointed projections of the event log, on SQLite (embedded) or Postgres.
//!
//! Each projection ([`ProjectionName`]: `books`, `reviews`, `users`, `interactions`, `lending`)
//! consumes the global log in batches and applies each batch in one read-model transaction that
//! also moves its checkpoint, after reading that checkpoint under a lock, so events another runner
//! or a rebuild already applied are skipped and handlers only need to be idempotent for the
//! replays an operator asks for (ARCHITECTURE.md, "Projections are at-least-once"). See
//! [`runner::spawn`] for the runner, [`rebuild::rebuild`] for rebuild-aside-then-swap,
//! [`ReadModels`] for the queries the API uses, and [`recommendations`] for storing, training and
//! serving recommendation models.
//!
//! Files by concern: `name` (the projections' names), `decode` (stored events to domain events),
//! `apply` (the batch transaction and the books, reviews, users and lending handlers),
//! `interactions` (that projection's handler and queries), `query` and `views` (the queries and
//! what they return), `lending` (circulation's rows and queries), `club` (the book club's), `cursor` (the page cursors'
//! codec), `db` (one SQL text on both backends).

mod apply;
mod club;
mod cursor;
mod db;
mod decode;
mod error;
mod interactions;
mod lending;
mod name;
mod query;
pub mod rebuild;
pub mod recommendations;
pub mod runner;
mod social;
mod store;
mod summaries;
mod users_cache;
mod views;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use club::{BallotRow, ClubMemberRow, ClubRow, NominationRow, ReplyRow, RoundRow, ThreadRow};
pub use error::{ReadModelError, WaitError};
pub use interactions::InteractionRow;
pub use lending::{
    CopyRow, HoldQuery, HoldRow, HoldStatus, LoanQuery, LoanRow, LoanStatus, LoanStatusFilter,
};
pub use name::{ProjectionName, UnknownProjection};
pub use rebuild::{RebuildProgress, RebuildReport, rebuild};
pub use recommendations::{
    CatalogBook, HYBRID, ModelStamp, Recommender, RecsOptions, StoredModel, StoredModelSummary,
    TrainError, TrainOptions, TrainReport,
};
pub use runner::{ProjectionsHandle, RunnerOptions, spawn, spawn_one};
pub use social::{ActivityKind, ActivityRow, FollowRow, SocialRecommendation};
pub use store::{
    BestsellerQuery, BestsellerRow, OrderLineRow, OrderRow, OrderRowStatus, SalesWindow, StockRow,
};
pub use summaries::{SummariesView, SummaryJob, SummaryKind};
pub use views::{
    BookQuery, BookSort, BookView, Credentials, Page, PageRequest, ProjectionStatus, RatingStats,
    ReviewView, UserView,
};

use crate::db::{Arg, Db, with_read_pool};

/// How to open the read models.
#[derive(Debug, Clone)]
pub struct ReadModelOptions {
    /// Open without migrating and refuse writes (for `quire projections status` on a live system).
    pub read_only: bool,
    /// Connections for queries.
    pub connections: u32,
}

impl Default for ReadModelOptions {
    fn default() -> Self {
        Self {
            read_only: false,
            connections: 8,
        }
    }
}

/// The read-model database and the local runners' checkpoint watches. Cheap to clone.
#[derive(Clone)]
pub struct ReadModels {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    /// One per projection, in [`ProjectionName::ALL`] order; moved after each local commit.
    checkpoints: Vec<watch::Sender<u64>>,
    /// One per projection: how many runners of it this process has (0 or 1 outside a handover).
    /// A projection run here moves its watch itself, so waiting for it needs no database polls.
    running: Vec<std::sync::atomic::AtomicUsize>,
    /// Users rows for authentication, while the users projection runs here.
    users: users_cache::UsersCache,
}

/// Marks a projection as run by this process while it lives.
pub(crate) struct RunningHere {
    models: ReadModels,
    projection: ProjectionName,
}

impl Drop for RunningHere {
    fn drop(&mut self) {
        self.models.inner.running[self.projection.index()]
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl std::fmt::Debug for ReadModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModels")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl ReadModels {
    /// Opens the read models a URL names: `postgres://…` (tables prefixed `rm_`, possibly in the
    /// event store's database) or else a SQLite file path (a file of its own, e.g. `data/read.db`).
    /// Migrates unless read-only.
    ///
    /// Read models are derived from the log, so a SQLite file found damaged when opened for
    /// writing is moved aside (`read.db.damaged-<UTC time>`) and replaced by a fresh one that the
    /// projections fill again from position 0.
    #[tracing::instrument(skip_all, fields(read_only = options.read_only))]
    pub async fn open(url: &str, options: ReadModelOptions) -> Result<Self, ReadModelError> {
        let db = Db::open(url, options.read_only, options.connections).await?;
        let models = Self::with_db(db);
        for status in models.statuses().await? {
            models.advance(status.name, status.position);
        }
        Ok(models)
    }

    fn with_db(db: Db) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                checkpoints: ProjectionName::ALL
                    .iter()
                    .map(|_| watch::channel(0).0)
                    .collect(),
                running: ProjectionName::ALL
                    .iter()
                    .map(|_| std::sync::atomic::AtomicUsize::new(0))
                    .collect(),
                users: users_cache::UsersCache::default(),
            }),
        }
    }

    /// Records that this process runs `projection` until the guard is dropped.
    pub(crate) fn running_here(&self, projection: ProjectionName) -> RunningHere {
        self.inner.running[projection.index()].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        RunningHere {
            models: self.clone(),
            projection,
        }
    }

    /// A projection's tables changed (a batch committed, a rebuild swapped in).
    pub(crate) fn tables_changed(&self, projection: ProjectionName) {
        if projection == ProjectionName::Users {
            self.inner.users.changed();
        }
    }

    /// The users cache, when this process runs the users projection (else reads go to the
    /// database).
    pub(crate) fn users_cache(&self) -> Option<&users_cache::UsersCache> {
        self.is_run_here(ProjectionName::Users)
            .then_some(&self.inner.users)
    }

    fn is_run_here(&self, projection: ProjectionName) -> bool {
        self.inner.running[projection.index()].load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    /// "sqlite" or "postgres".
    pub fn backend(&self) -> &'static str {
        match self.inner.db.backend() {
            db::Backend::Sqlite => "sqlite",
            db::Backend::Postgres => "postgres",
        }
    }

    /// Records that a projection's checkpoint reached `position` (never moves it back).
    pub(crate) fn advance(&self, projection: ProjectionName, position: u64) {
        quire_store::raise_head(&self.inner.checkpoints[projection.index()], position);
    }

    /// Records that another node's runner committed `projection`'s checkpoint at `position` (a
    /// cluster notification), so [`wait_for`](Self::wait_for) returns without waiting for its next
    /// poll. It must only be called with a checkpoint the read-model database already reflects
    /// (committed, or moved over events the projection does not read).
    pub fn observe_checkpoint(&self, projection: ProjectionName, position: u64) {
        self.advance(projection, position);
    }

    /// A receiver of a projection's checkpoint as this process knows it (moved by the local runner
    /// and by [`wait_for`](Self::wait_for)'s polls).
    pub fn checkpoint_watch(&self, projection: ProjectionName) -> watch::Receiver<u64> {
        self.inner.checkpoints[projection.index()].subscribe()
    }

    /// Waits until every projection has applied the log up to `position`.
    ///
    /// Wakes on the local runners' commits and also polls the checkpoint table every 25 ms, because
    /// the runner advancing them may live in another process or node.
    #[tracing::instrument(skip(self))]
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), WaitError> {
        self.wait_for_projections(&ProjectionName::ALL, position, timeout)
            .await
    }

    /// Waits until the given projections have applied the log up to `position`; a write uses it
    /// to wait only for the read model its answer comes from, so one stuck projection does not
    /// slow every write.
    #[tracing::instrument(skip(self))]
    pub async fn wait_for_projections(
        &self,
        projections: &[ProjectionName],
        position: u64,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut receivers: Vec<watch::Receiver<u64>> = projections
            .iter()
            .map(|p| self.inner.checkpoints[p.index()].subscribe())
            .collect();
        loop {
            let local = receivers
                .iter_mut()
                .map(|r| *r.borrow_and_update())
                .min()
                .unwrap_or(0);
            if local >= position {
                return Ok(());
            }
            // Projections run by this process move their watches themselves: polling the
            // database for them would only cost it a query per waiter every 25 ms.
            if projections.iter().all(|p| self.is_run_here(*p)) {
                if tokio::time::Instant::now() >= deadline {
                    return Err(WaitError::Timeout { reached: local });
                }
                let changed = futures::future::select_all(
                    receivers.iter_mut().map(|r| Box::pin(r.changed())),
                );
                tokio::select! {
                    _ = changed => {}
                    _ = tokio::time::sleep_until(deadline) => {}
                }
                continue;
            }
            let stored = self.statuses().await.map_err(WaitError::ReadModel)?;
            for status in &stored {
                self.advance(status.name, status.position);
            }
            let reached = projections
                .iter()
                .map(|p| *self.inner.checkpoints[p.index()].borrow())
                .min()
                .unwrap_or(0)
                .max(local);
            if reached >= position {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(WaitError::Timeout { reached });
            }
            let changed =
                futures::future::select_all(receivers.iter_mut().map(|r| Box::pin(r.changed())));
            let poll = tokio::time::Instant::now() + Duration::from_millis(25);
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(poll.min(deadline)) => {}
            }
        }
    }

    /// Every projection's checkpoint and last error, in [`ProjectionName::ALL`] order.
    #[tracing::instrument(skip_all)]
    pub async fn statuses(&self) -> Result<Vec<ProjectionStatus>, ReadModelError> {
        type Row = (String, i64, Option<String>, Option<i64>, i64);
        let args: Vec<Arg> = ProjectionName::ALL
            .iter()
            .map(|p| Arg::Text(p.as_str().to_string()))
            .collect();
        // One placeholder per projection (a rebuild's shadow checkpoint rows are left out).
        let placeholders: Vec<String> = (1..=args.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT projection, position, last_error, last_error_at, updated_at \
             FROM rm_checkpoints WHERE projection IN ({})",
            placeholders.join(", ")
        );
        let rows: Vec<Row> = with_read_pool!(self.db(), pool => {
            db::bind_args!(sqlx::query_as::<_, Row>(&sql), &args)
                .fetch_all(pool)
                .await
                .map_err(ReadModelError::db("reading checkpoints"))
        })?;
        let mut out: Vec<ProjectionStatus> = rows
            .into_iter()
            .map(|(name, position, last_error, last_error_at, updated_at)| {
                let name: ProjectionName = name.parse().map_err(|e: UnknownProjection| {
                    ReadModelError::Corrupt(format!("checkpoint row: {e}"))
                })?;
                // A local runner that cannot write (a full disk) cannot record its error either.
                let (last_error, last_error_at) = match (last_error, self.db().failing(name)) {
                    (None, Some((message, at))) => (Some(message), Some(at)),
                    (stored, _) => (stored, last_error_at),
                };
                Ok(ProjectionStatus {
                    name,
                    position: position as u64,
                    last_error,
                    last_error_at,
                    updated_at,
                })
            })
            .collect::<Result<_, ReadModelError>>()?;
        out.sort_by_key(|s| s.name);
        Ok(out)
    }

    /// Whether this process has seen the read-model database report damage ("database disk
    /// image is malformed"), and what it said. Such a database is not trusted again until it is
    /// replaced: at the next start (SQLite) or by `quire projections rebuild --all`.
    pub fn damage(&self) -> Option<String> {
        self.db().damage()
    }

    /// The lowest checkpoint: every projection has applied the log up to here.
    pub async fn min_position(&self) -> Result<u64, ReadModelError> {
        let statuses = self.statuses().await?;
        if statuses.len() < ProjectionName::ALL.len() {
            return Ok(0);
        }
        Ok(statuses.iter().map(|s| s.position).min().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};
    use std::path::Path;

    use super::*;

    /// Creates read models at `path` and closes them with everything in the main file; returns
    /// the pages of the checkpoint table and its indexes.
    async fn create(path: &Path) -> Vec<i64> {
        let db = Db::open(&path.display().to_string(), false, 1)
            .await
            .unwrap();
        let db::Pools::Sqlite {
            write: Some(write),
            read,
        } = &db.pools
        else {
            unreachable!("a writable SQLite database")
        };
        let pages: Vec<i64> = sqlx::query_scalar(
            "SELECT rootpage FROM sqlite_master WHERE tbl_name = 'rm_checkpoints'",
        )
        .fetch_all(write)
        .await
        .unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(write)
            .await
            .unwrap();
        read.close().await;
        write.close().await;
        pages
    }

    /// Garbage over the given pages (the schema stays readable, the data does not).
    fn damage(path: &Path, pages: &[i64]) {
        let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        for page in pages {
            assert!(*page > 1);
            file.seek(SeekFrom::Start((*page as u64 - 1) * 4096))
                .unwrap();
            file.write_all(&[0xa5; 4096]).unwrap();
        }
        file.sync_all().unwrap();
    }

    #[tokio::test]
    async fn damage_met_by_a_query_is_remembered_for_status() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read.db");
        let pages = create(&path).await;
        damage(&path, &pages);
        // Read-only: opened without the check at start, as `quire projections status` does.
        let db = Db::open(&path.display().to_string(), true, 1)
            .await
            .unwrap();
        let read = ReadModels::with_db(db);
        assert!(read.damage().is_none());
        let error = read.statuses().await.unwrap_err();
        assert!(error.is_corrupt(), "{}", error.chain());
        assert!(!error.is_unavailable());
        assert!(
            read.damage().unwrap().contains("malformed"),
            "{:?}",
            read.damage()
        );
    }

    #[tokio::test]
    async fn a_damaged_file_is_moved_aside_and_replaced_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read.db");
        let pages = create(&path).await;
        damage(&path, &pages);
        let read = ReadModels::open(&path.display().to_string(), ReadModelOptions::default())
            .await
            .unwrap();
        let statuses = read.statuses().await.unwrap();
        assert_eq!(statuses.len(), ProjectionName::ALL.len());
        assert!(statuses.iter().all(|s| s.position == 0));
        assert!(read.damage().is_none());
        let aside: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.starts_with("read.db.damaged-") && !n.ends_with("-wal") && !n.ends_with("-shm")
            })
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        let kept = std::fs::read(dir.path().join(&aside[0])).unwrap();
        let at = (pages[0] as usize - 1) * 4096;
        assert_eq!(kept[at], 0xa5, "the damaged file is kept as it was");
    }

    #[tokio::test]
    async fn a_sound_file_is_kept_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read.db");
        create(&path).await;
        ReadModels::open(&path.display().to_string(), ReadModelOptions::default())
            .await
            .unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("damaged")), "{names:?}");
    }
}

//! The event store port: append with an expected version, read streams and the global log, subscribe.
//!
//! Backends (adapters) live in their own modules and all pass the same contract suite
//! (`tests/contract.rs`): SQLite (embedded default), Postgres, and KurrentDB behind the `kurrentdb` feature.
//! The store is the only source of truth in Quire; everything else (read models, NATS messages) is
//! re-derivable from it.

mod batch;
mod codec;
mod error;
#[cfg(feature = "kurrentdb")]
pub mod kurrent;
pub mod postgres;
mod redact;
pub mod sqlite;
mod subscribe;
pub mod tail;
pub mod telemetry;
pub mod testing;
mod types;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;
use uuid::Uuid;

pub use error::{StorageFault, StoreError};
pub use redact::{redact_url, redact_url_credentials};
pub use subscribe::{Subscription, subscribe};
pub use types::{
    AppendOutcome, AppendRequest, CommandRecord, CommandResult, EventBatch, EventMetadata,
    ExpectedVersion, NewEvent, PendingCommand, Position, RecordedEvent, StoreStats, StreamInfo,
    Timestamp, now_micros,
};

/// A shared, dynamically dispatched event store.
pub type DynEventStore = Arc<dyn EventStore>;

/// The event store port.
///
/// Positions in the global log start at 1 and are assigned in commit order, so a reader that has seen
/// position `p` will never later discover an event at a position `<= p`: a checkpoint "up to `p`"
/// never skips a transaction that commits late.
/// Stream versions count the events in a stream: a new stream is at version 0, its first event has
/// version 1.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// A short backend name for logs and `quire events stats` ("sqlite", "postgres", "kurrentdb").
    fn backend(&self) -> &'static str;

    /// Appends events to one stream atomically if the stream is at the expected version.
    ///
    /// When the request carries a command record, the append is idempotent on its command id: a command
    /// id that was recorded before returns [`AppendOutcome::Duplicate`] with the first outcome and
    /// appends nothing, whatever the expected version. A request with no events and a rejected command
    /// record only records the rejection. The call returns only after the events are durably committed.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError>;

    /// Reads up to `limit` events of a stream whose version is greater than `after_version`.
    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads up to `limit` events of the global log whose position is greater than `after`.
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// [`read_all`](Self::read_all) for readers that only look at the events: readers of one
    /// process catching up on the same stretch of the log then share one read and decode of it
    /// (the SQL backends' [`tail`] cache), where each would otherwise read and hold its own copy.
    /// The answer is what `read_all` would give, or a prefix of it.
    async fn read_all_shared(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<EventBatch, StoreError> {
        self.read_all(after, limit).await.map(EventBatch::from)
    }

    /// The position of the last committed event (0 for an empty store).
    async fn head(&self) -> Result<Position, StoreError>;

    /// A receiver that changes whenever this process (or, where the backend can tell, another
    /// process) commits new events. It is a wake-up hint: readers must still read the log.
    fn head_watch(&self) -> watch::Receiver<Position>;

    /// Tells the store that another node committed events up to `position` (a cluster
    /// notification), so [`head_watch`](Self::head_watch) wakes at once. A hint only: it never
    /// lowers the head, and readers still read the log, so a lost or early hint loses nothing.
    fn observe_head(&self, position: Position) {
        let _ = position;
    }

    /// Why the last commit failed, while writes keep failing for want of the database (disk
    /// full, connection lost); `None` once a commit succeeds. Reads may still work then, so a
    /// health check asks this too.
    fn write_failure(&self) -> Option<String> {
        None
    }

    /// The recorded outcome of a command, if that command id was seen before.
    async fn command(&self, command_id: Uuid) -> Result<Option<CommandRecord>, StoreError>;

    /// Streams whose id starts with `prefix`, ordered by id, after `after` (for paging).
    async fn streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>, StoreError>;

    /// Counts for operators.
    async fn stats(&self) -> Result<StoreStats, StoreError>;
}

/// Reads a whole stream, page by page.
pub async fn read_stream_to_end(
    store: &dyn EventStore,
    stream_id: &str,
    after_version: u64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    const PAGE: usize = 1000;
    let mut out = Vec::new();
    let mut after = after_version;
    loop {
        let page = store.read_stream(stream_id, after, PAGE).await?;
        let full = page.len() == PAGE;
        if let Some(last) = page.last() {
            after = last.version;
        }
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// Opens the store a URL names: `postgres://…` or `postgresql://…` selects Postgres, `sqlite://PATH`
/// or a plain file path selects SQLite, and `kurrentdb://…`/`esdb://…` selects KurrentDB when the
/// feature is compiled in.
pub async fn open(url: &str, options: StoreOptions) -> Result<DynEventStore, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(tail_cached(Arc::new(
            postgres::PostgresStore::connect(url, options).await?,
        )))
    } else if url.starts_with("kurrentdb://") || url.starts_with("esdb://") {
        #[cfg(feature = "kurrentdb")]
        {
            Ok(Arc::new(kurrent::KurrentStore::connect(url).await?))
        }
        #[cfg(not(feature = "kurrentdb"))]
        {
            Err(StoreError::Config(
                "this build has no kurrentdb adapter: rebuild with --features kurrentdb".into(),
            ))
        }
    } else {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        Ok(tail_cached(Arc::new(
            sqlite::SqliteStore::open(std::path::Path::new(path), options).await?,
        )))
    }
}

/// Events of the log's tail kept in memory for the process's readers ([`tail`]).
pub const TAIL_CACHE_EVENTS: usize = 8192;

/// A SQL store behind the shared tail cache: its positions are gap-free and in commit order, which
/// the cache relies on.
fn tail_cached(store: DynEventStore) -> DynEventStore {
    Arc::new(tail::TailCached::new(store, TAIL_CACHE_EVENTS))
}

/// Tuning shared by the SQL backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The most append requests one group-commit transaction takes.
    pub max_batch: usize,
    /// Connections in the read pool.
    pub read_connections: u32,
    /// Open read-only: no writer task, no migrations (for `quire events` on a live store).
    pub read_only: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_batch: 512,
            read_connections: 8,
            read_only: false,
        }
    }
}

/// Moves a position watch (a log head, a checkpoint) forward to `position`, never back; true
/// when it moved.
pub fn raise_head(head: &watch::Sender<Position>, position: Position) -> bool {
    head.send_if_modified(|h| {
        if position > *h {
            *h = position;
            true
        } else {
            false
        }
    })
}

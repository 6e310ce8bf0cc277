//! A read-through cache of the log's tail, shared by every reader of one process.
//!
//! A node runs eight projections, the search indexer and the live-update hub, each a reader of the
//! global log. After every commit all of them wake and ask for the same few new events: without
//! this cache the database served each of those reads itself (nine queries returning the same
//! JSON payloads per commit batch, and as many "nothing new" queries after), which under write
//! load cost the database more than the writes did.
//!
//! The cache keeps a contiguous window of recently read events, filled only from what the store
//! returned (never from what was appended, so an event is cached exactly as stored). Positions are
//! gap-free and assigned in commit order in the SQL backends, so a read that returned position `b`
//! proves every position up to `b` is committed: serving `(after, b]` from the window is what the
//! database would have said, or a prefix of it (a reader then reads on from the window's end, as
//! after any short batch).
//!
//! Reads at the window's end go through one fetch at a time: the first reader after a commit reads
//! the database, the others find the events it brought. A read that just found nothing new is
//! remembered briefly, until the head moves. Plain reads far behind the window (a rebuild) go
//! straight to the database, in parallel, and are not cached.
//!
//! **Catching up together.** A node started on a long log (after an import, a restore, a rebuild
//! of every read model) has all its readers far behind the head at once, and each used to read and
//! decode the whole log itself: nine decodes of every event, which on a small machine took more CPU
//! than applying them. Readers that take shared batches ([`EventStore::read_all_shared`]) of a
//! stretch of the log that is wholly committed are served from aligned *blocks* of
//! [`BLOCK_EVENTS`] positions: the first reader of a block reads it from the database, readers
//! arriving meanwhile wait for that read, and the last [`BLOCKS`] blocks stay in memory for the
//! readers a little behind. Nobody copies the events: each reader holds a slice of the block. A
//! reader further behind than that reads the block again, which costs a read, not correctness.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    AppendOutcome, AppendRequest, CommandRecord, DynEventStore, EventBatch, EventStore, Position,
    RecordedEvent, StoreError, StoreStats, StreamInfo,
};

/// How long "nothing after the window" is believed without a new head.
const EMPTY_TTL: Duration = Duration::from_millis(20);

/// Positions per shared catch-up block: block `k` holds `(k * BLOCK_EVENTS, (k + 1) * BLOCK_EVENTS]`.
/// Large enough that a projection applies a block in one transaction (per-transaction costs
/// dominated smaller batches), small enough that [`BLOCKS`] of them stay well under the memory a
/// node is allowed.
pub const BLOCK_EVENTS: u64 = 8192;

/// Catch-up blocks kept after their readers moved on, for readers a little behind the first.
const BLOCKS: usize = 4;

/// One block: read once by whoever asks first, shared by everyone who asks meanwhile.
type BlockCell = Arc<tokio::sync::OnceCell<Arc<[RecordedEvent]>>>;

/// The catch-up blocks, most recently used last.
#[derive(Default)]
struct Blocks {
    cells: VecDeque<(u64, BlockCell)>,
    reads: u64,
    shared: u64,
}

impl Blocks {
    /// Block `k`'s cell, made if absent; it becomes the most recently used, and the least recently
    /// used beyond [`BLOCKS`] are dropped (a reader still holding one keeps its events alive).
    fn cell(&mut self, k: u64) -> BlockCell {
        let cell = match self.cells.iter().position(|(b, _)| *b == k) {
            Some(i) => {
                self.shared += 1;
                self.cells
                    .remove(i)
                    .map(|(_, cell)| cell)
                    .unwrap_or_default()
            }
            None => BlockCell::default(),
        };
        self.cells.push_back((k, cell.clone()));
        while self.cells.len() > BLOCKS {
            self.cells.pop_front();
        }
        cell
    }

    fn forget(&mut self, k: u64) {
        self.cells.retain(|(b, _)| *b != k);
    }
}

/// An event store whose `read_all` of recent positions is served from memory.
pub struct TailCached {
    inner: DynEventStore,
    /// The inner store's head, read on every `read_all` (one subscription, not one per read).
    head: watch::Receiver<Position>,
    capacity: usize,
    window: Mutex<Window>,
    /// One database fetch at the window's end at a time.
    fetching: tokio::sync::Mutex<()>,
    blocks: Mutex<Blocks>,
}

#[derive(Default)]
struct Window {
    /// Contiguous events, oldest first.
    events: VecDeque<RecordedEvent>,
    /// When a read after the window's last position last came back empty.
    empty_at: Option<(Position, Instant)>,
    hits: u64,
    misses: u64,
}

impl Window {
    fn first(&self) -> Option<Position> {
        self.events.front().map(|e| e.position)
    }

    fn last(&self) -> Option<Position> {
        self.events.back().map(|e| e.position)
    }

    /// The cached events after `after`, up to `limit`; `None` when the window does not hold
    /// `after + 1`.
    fn serve(&self, after: Position, limit: usize) -> Option<Vec<RecordedEvent>> {
        let (first, last) = (self.first()?, self.last()?);
        if after + 1 < first || after >= last {
            return None;
        }
        let start = (after + 1 - first) as usize;
        Some(
            self.events
                .iter()
                .skip(start)
                .take(limit)
                .cloned()
                .collect(),
        )
    }

    /// Adds what a read of `(after, …]` returned.
    fn fill(&mut self, after: Position, read: &[RecordedEvent], capacity: usize) {
        let Some(first_read) = read.first().map(|e| e.position) else {
            return;
        };
        // Only a read that starts where it was asked to proves there is no gap before it.
        if first_read != after + 1 {
            return;
        }
        let contiguous = read
            .windows(2)
            .all(|pair| pair[1].position == pair[0].position + 1);
        if !contiguous {
            return;
        }
        match self.last() {
            Some(last) if first_read <= last + 1 && first_read >= self.first().unwrap_or(0) => {
                let new = read.iter().filter(|e| e.position > last);
                self.events.extend(new.cloned());
            }
            _ => {
                self.events.clear();
                self.events.extend(read.iter().cloned());
            }
        }
        while self.events.len() > capacity {
            self.events.pop_front();
        }
    }
}

impl TailCached {
    /// Wraps `inner`, keeping up to `capacity` recent events. Only for stores whose positions are
    /// gap-free and in commit order (the SQL backends).
    pub fn new(inner: DynEventStore, capacity: usize) -> Self {
        Self {
            head: inner.head_watch(),
            inner,
            capacity: capacity.max(1),
            window: Mutex::new(Window::default()),
            fetching: tokio::sync::Mutex::new(()),
            blocks: Mutex::new(Blocks::default()),
        }
    }

    /// Reads served from memory and from the database so far.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        let w = self.window.lock().expect("tail window lock");
        (w.hits, w.misses)
    }

    /// Catch-up blocks read from the database, and block reads served by a read another reader
    /// made.
    pub fn block_reads_and_shares(&self) -> (u64, u64) {
        let b = self.blocks.lock().expect("tail blocks lock");
        (b.reads, b.shared)
    }

    /// Serves `(after, …]` from the block holding `after + 1`, if that block is wholly committed
    /// as far as this process knows; `None` sends the reader the usual way.
    async fn serve_block(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Option<EventBatch>, StoreError> {
        let k = after / BLOCK_EVENTS;
        let (start, end) = (k * BLOCK_EVENTS, (k + 1) * BLOCK_EVENTS);
        if end > *self.head.borrow() {
            return Ok(None);
        }
        let cell = self.blocks.lock().expect("tail blocks lock").cell(k);
        let events = cell
            .get_or_try_init(|| async {
                self.blocks.lock().expect("tail blocks lock").reads += 1;
                let read = self.inner.read_all(start, BLOCK_EVENTS as usize).await?;
                Ok::<_, StoreError>(Arc::<[RecordedEvent]>::from(read))
            })
            .await?
            .clone();
        // What the database answered is a valid read of `(start, …]` whatever it holds, so it
        // serves this reader; only a whole, gap-free block is kept for the next ones.
        let whole = events.len() == BLOCK_EVENTS as usize
            && events.first().is_some_and(|e| e.position == start + 1)
            && events.last().is_some_and(|e| e.position == end);
        if !whole {
            self.blocks.lock().expect("tail blocks lock").forget(k);
        }
        let from = events.partition_point(|e| e.position <= after);
        if from == events.len() {
            return Ok(None);
        }
        Ok(Some(EventBatch::slice(events, from..from + limit)))
    }

    /// Serves `(after, …]` from the window, or says it cannot.
    fn cached(&self, after: Position, limit: usize) -> Cached {
        let head = *self.head.borrow();
        let mut w = self.window.lock().expect("tail window lock");
        if let Some(events) = w.serve(after, limit) {
            w.hits += 1;
            return Cached::Events(events);
        }
        match (w.first(), w.last()) {
            (Some(first), _) if after + 1 < first => Cached::Behind,
            (_, last) => {
                // Nothing new a moment ago, and no commit heard of since.
                if let Some((at, when)) = w.empty_at
                    && at == after
                    && head <= after
                    && when.elapsed() < EMPTY_TTL
                    && last.is_none_or(|l| l <= after)
                {
                    w.hits += 1;
                    return Cached::Events(Vec::new());
                }
                Cached::AtEnd
            }
        }
    }
}

enum Cached {
    Events(Vec<RecordedEvent>),
    /// Before the window: read the database directly.
    Behind,
    /// At (or past) the window's end: fetch, one reader at a time.
    AtEnd,
}

#[async_trait]
impl EventStore for TailCached {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.inner.append(request).await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner
            .read_stream(stream_id, after_version, limit)
            .await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        match self.cached(after, limit) {
            Cached::Events(events) => return Ok(events),
            Cached::Behind => {
                self.window.lock().expect("tail window lock").misses += 1;
                return self.inner.read_all(after, limit).await;
            }
            Cached::AtEnd => {}
        }
        let _one = self.fetching.lock().await;
        // Another reader may have fetched these while this one waited.
        if let Cached::Events(events) = self.cached(after, limit) {
            return Ok(events);
        }
        let read = self.inner.read_all(after, limit).await?;
        let mut w = self.window.lock().expect("tail window lock");
        w.misses += 1;
        if read.is_empty() {
            w.empty_at = Some((after, Instant::now()));
        } else {
            w.empty_at = None;
            w.fill(after, &read, self.capacity);
        }
        Ok(read)
    }

    async fn read_all_shared(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<EventBatch, StoreError> {
        if limit == 0 {
            return Ok(EventBatch::default());
        }
        if let Some(batch) = self.serve_block(after, limit).await? {
            return Ok(batch);
        }
        self.read_all(after, limit).await.map(EventBatch::from)
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.inner.head().await
    }

    fn head_watch(&self) -> watch::Receiver<Position> {
        self.inner.head_watch()
    }

    fn observe_head(&self, position: Position) {
        self.inner.observe_head(position);
    }

    fn write_failure(&self) -> Option<String> {
        self.inner.write_failure()
    }

    async fn command(&self, command_id: Uuid) -> Result<Option<CommandRecord>, StoreError> {
        self.inner.command(command_id).await
    }

    async fn streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>, StoreError> {
        self.inner.streams(prefix, after, limit).await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: Position) -> RecordedEvent {
        RecordedEvent {
            position,
            stream_id: format!("book-{position}"),
            version: 1,
            event_id: Uuid::from_u128(u128::from(position)),
            event_type: "BookAdded".into(),
            schema_version: 1,
            payload: serde_json::json!({"n": position}),
            metadata: Default::default(),
            recorded_at: position as i64,
        }
    }

    fn events(range: std::ops::RangeInclusive<Position>) -> Vec<RecordedEvent> {
        range.map(event).collect()
    }

    fn positions(events: &[RecordedEvent]) -> Vec<Position> {
        events.iter().map(|e| e.position).collect()
    }

    #[test]
    fn serves_what_a_read_brought_and_nothing_it_did_not_see() {
        let mut w = Window::default();
        assert!(w.serve(0, 10).is_none(), "an empty window serves nothing");
        w.fill(10, &events(11..=15), 100);
        assert_eq!(
            positions(&w.serve(10, 10).unwrap()),
            vec![11, 12, 13, 14, 15]
        );
        assert_eq!(positions(&w.serve(12, 2).unwrap()), vec![13, 14]);
        assert!(w.serve(15, 10).is_none(), "after the window: ask the store");
        assert!(w.serve(9, 10).is_none(), "before the window: ask the store");
        // A read that continues the window extends it; one that overlaps adds only what is new.
        w.fill(15, &events(16..=17), 100);
        w.fill(16, &events(17..=18), 100);
        assert_eq!(
            positions(&w.serve(10, 100).unwrap()),
            (11..=18).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_read_that_does_not_start_where_asked_is_not_cached() {
        let mut w = Window::default();
        // Asked after 10, got 12…: position 11 was not seen, so nothing proves there is no gap.
        w.fill(10, &events(12..=13), 100);
        assert!(w.serve(11, 10).is_none());
        let mut gapped = events(21..=22);
        gapped.push(event(24));
        w.fill(20, &gapped, 100);
        assert!(
            w.serve(20, 10).is_none(),
            "a batch with a gap is not cached"
        );
    }

    #[test]
    fn catch_up_blocks_are_shared_while_recent_and_dropped_after() {
        let mut b = Blocks::default();
        let first = b.cell(0);
        assert!(
            Arc::ptr_eq(&first, &b.cell(0)),
            "a block asked again is the same read"
        );
        for k in 1..=BLOCKS as u64 {
            b.cell(k);
        }
        assert!(
            !Arc::ptr_eq(&first, &b.cell(0)),
            "the least recently used block beyond the bound is dropped"
        );
        let kept: Vec<u64> = b.cells.iter().map(|(k, _)| *k).collect();
        assert_eq!(kept.len(), BLOCKS);
        assert_eq!(
            kept.last(),
            Some(&0),
            "the block just asked is the most recent"
        );
        b.forget(0);
        assert!(b.cells.iter().all(|(k, _)| *k != 0));
    }

    #[test]
    fn a_read_far_from_the_window_replaces_it_and_the_window_keeps_its_capacity() {
        let mut w = Window::default();
        w.fill(0, &events(1..=5), 4);
        assert_eq!(
            positions(&w.serve(0, 10).unwrap_or_default()),
            Vec::<u64>::new()
        );
        assert_eq!(positions(&w.serve(1, 10).unwrap()), vec![2, 3, 4, 5]);
        w.fill(100, &events(101..=102), 4);
        assert!(w.serve(3, 10).is_none());
        assert_eq!(positions(&w.serve(100, 10).unwrap()), vec![101, 102]);
    }
}

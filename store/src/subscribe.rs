//! Subscriptions to the global log: catch up from a position, then follow live, with no gaps.
//!
//! A subscription only ever reads the log (`read_all`), so it sees exactly what was committed, in
//! position order. The head watch wakes it early; a poll interval bounds the wait when a wake-up was
//! lost (another node's commit whose notification did not arrive).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::watch;

use crate::{DynEventStore, Position, RecordedEvent, StoreError};

/// How many events one read of the log fetches.
const PAGE: usize = 512;

/// A live reader of the global log.
pub struct Subscription {
    store: DynEventStore,
    after: Position,
    buffer: VecDeque<RecordedEvent>,
    head: watch::Receiver<Position>,
    poll: Duration,
}

/// Subscribes to every event after position `after`.
pub fn subscribe(store: DynEventStore, after: Position) -> Subscription {
    let head = store.head_watch();
    Subscription {
        store,
        after,
        buffer: VecDeque::new(),
        head,
        poll: Duration::from_millis(500),
    }
}

impl Subscription {
    /// Sets the longest wait before the log is read again without a wake-up.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The position of the last event handed out.
    pub fn position(&self) -> Position {
        self.after
    }

    /// The next event, waiting for one to be committed if the subscriber is caught up.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.after = event.position;
                return Ok(event);
            }
            self.fill().await?;
        }
    }

    /// Up to `max` events at once (at least one), waiting if caught up.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        while self.buffer.is_empty() {
            self.fill().await?;
        }
        let n = max.max(1).min(self.buffer.len());
        let out: Vec<RecordedEvent> = self.buffer.drain(..n).collect();
        if let Some(last) = out.last() {
            self.after = last.position;
        }
        Ok(out)
    }

    /// Events already committed, without waiting: `None` when caught up.
    pub async fn try_next(&mut self) -> Result<Option<RecordedEvent>, StoreError> {
        if self.buffer.is_empty() {
            self.read().await?;
        }
        Ok(self.buffer.pop_front().inspect(|e| self.after = e.position))
    }

    async fn read(&mut self) -> Result<(), StoreError> {
        // Mark the current head as seen before reading, so a commit that lands after the read
        // still wakes the wait below.
        self.head.borrow_and_update();
        let from = self.buffer.back().map_or(self.after, |e| e.position);
        let page = self.store.read_all(from, PAGE).await?;
        debug_assert!(page.windows(2).all(|w| w[0].position < w[1].position));
        self.buffer.extend(page);
        Ok(())
    }

    async fn fill(&mut self) -> Result<(), StoreError> {
        self.read().await?;
        if self.buffer.is_empty() {
            tokio::select! {
                changed = self.head.changed() => {
                    if changed.is_err() {
                        // The store was dropped; fall back to polling until the caller stops.
                        tokio::time::sleep(self.poll).await;
                    }
                }
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        Ok(())
    }
}

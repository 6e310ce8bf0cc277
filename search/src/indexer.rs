//! Feeding the index from the event log: the node's indexer task and the full rebuild.
//!
//! Book events (added, updated, removed, summary set) change the book's document; review events
//! mark its rating figures stale, which are then read from the rating statistics the `reviews`
//! read model keeps ([`RatingsSource`]) rather than recounted here: an edited or deleted review
//! does not carry the rating it replaces, and the read model already folds them. A batch's
//! documents and the position it reached are committed together, so the index never covers
//! events it has not applied, nor applies one twice after a restart.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use quire_domain::DomainEvent;
use quire_domain::book::BookEvent;
use quire_store::{DynEventStore, RecordedEvent};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::SearchError;
use crate::engine::{SearchEngine, create_generation, publish};
use crate::index::{BookDoc, SearchIndex};

/// Indexing threads of a rebuild (a live node's indexer uses one).
const BULK_THREADS: usize = 2;

/// The segments an index may have before an idle indexer merges them into one.
pub const MAX_SEGMENTS: usize = 4;

/// A book's rating figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BookRatings {
    pub count: u64,
    pub average: f64,
}

/// Where rating figures come from.
#[async_trait]
pub trait RatingsSource: Send + Sync + 'static {
    /// The figures of `book_ids` (absent: no ratings), reflecting the log at least up to
    /// `position` where the source can wait for it.
    async fn ratings(
        &self,
        book_ids: &[String],
        position: u64,
    ) -> Result<HashMap<String, BookRatings>, String>;
}

/// No rating figures (every book unrated): for tools that index without read models.
#[derive(Debug, Clone, Copy)]
pub struct NoRatings;

#[async_trait]
impl RatingsSource for NoRatings {
    async fn ratings(
        &self,
        _book_ids: &[String],
        _position: u64,
    ) -> Result<HashMap<String, BookRatings>, String> {
        Ok(HashMap::new())
    }
}

/// Tuning of the indexer.
#[derive(Debug, Clone)]
pub struct IndexerOptions {
    /// Events read per batch.
    pub batch: usize,
    /// The longest wait before reading the log again without a wake-up (other nodes' commits).
    pub poll: Duration,
    /// While catching up, commit at least this often (each commit makes what it covers
    /// searchable and durable).
    pub commit_every: Duration,
}

impl Default for IndexerOptions {
    fn default() -> Self {
        Self {
            batch: 2_000,
            poll: Duration::from_millis(500),
            commit_every: Duration::from_secs(2),
        }
    }
}

/// The running indexer; [`shutdown`](Self::shutdown) stops it between batches.
pub struct IndexerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl IndexerHandle {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the search indexer task failed");
        }
    }
}

/// Starts the node's indexer: catches the live generation up with the log, then follows it, and
/// switches to a rebuilt generation when one is published.
pub fn spawn(
    engine: Arc<SearchEngine>,
    store: DynEventStore,
    ratings: Arc<dyn RatingsSource>,
    options: IndexerOptions,
) -> IndexerHandle {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(engine, store, ratings, options, stopped));
    IndexerHandle { stop, task }
}

async fn run(
    engine: Arc<SearchEngine>,
    store: DynEventStore,
    ratings: Arc<dyn RatingsSource>,
    options: IndexerOptions,
    mut stopped: watch::Receiver<bool>,
) {
    let mut head = store.head_watch();
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stopped.borrow() {
            return;
        }
        match step(&engine, &store, &*ratings, &options).await {
            Ok(true) => {
                backoff = Duration::from_millis(100);
                continue;
            }
            Ok(false) => {
                backoff = Duration::from_millis(100);
                // Caught up: a good moment to merge the small segments the batches left.
                let index = engine.index();
                match tokio::task::spawn_blocking(move || index.compact(MAX_SEGMENTS)).await {
                    Ok(Ok(true)) => tracing::debug!("search: merged the index's segments"),
                    Ok(Ok(false)) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "search: merging segments failed"),
                    Err(error) => tracing::warn!(%error, "search: the merge task failed"),
                }
                tokio::select! {
                    _ = head.changed() => {}
                    _ = tokio::time::sleep(options.poll) => {}
                    _ = stopped.changed() => {}
                }
            }
            Err(error) => {
                tracing::error!(%error, "search indexer: retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// One round: switch to a published rebuild if there is one, then apply what the log has past
/// the live position. `Ok(true)` when there may be more to read at once.
async fn step(
    engine: &SearchEngine,
    store: &DynEventStore,
    ratings: &dyn RatingsSource,
    options: &IndexerOptions,
) -> Result<bool, SearchError> {
    if let Some(rebuilt) = engine.rebuilt()? {
        let rebuilt = Arc::new(rebuilt);
        let position = catch_up(&rebuilt, store, ratings, options, None, &|_| {}).await?;
        let rebuilt = Arc::try_unwrap(rebuilt)
            .map_err(|_| SearchError::Task("a rebuilt index is still shared".into()))?;
        engine.swap(rebuilt, position);
        return Ok(true);
    }
    let index = engine.index();
    let from = engine.position().max(index.position()?);
    let events = store.read_all_shared(from, options.batch).await?;
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(false);
    };
    let changed = apply(&index, &events, ratings, None).await?;
    if changed {
        commit(&index, last).await?;
    } else if last - index.position()? >= 50_000 {
        // Nothing to index for a long stretch: record the position so a restart skips it.
        commit(&index, last).await?;
    }
    engine.advance(last);
    // A shared batch may end at a block boundary short of `batch`: only an empty read says the
    // log is exhausted.
    Ok(true)
}

/// Applies the log from the index's position up to the store's head, committing along the way;
/// returns the position reached.
async fn catch_up(
    index: &Arc<SearchIndex>,
    store: &DynEventStore,
    ratings: &dyn RatingsSource,
    options: &IndexerOptions,
    mut bulk: Option<&mut HashSet<String>>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<u64, SearchError> {
    let mut position = index.position()?;
    let mut last_commit = Instant::now();
    let mut dirty = false;
    let mut next = store.read_all_shared(position, options.batch).await?;
    while let Some(last) = next.last().map(|e| e.position) {
        let events = std::mem::take(&mut next);
        let (applied, fetched) = tokio::join!(
            apply(index, &events, ratings, bulk.as_deref_mut()),
            store.read_all_shared(last, options.batch)
        );
        dirty |= applied?;
        next = fetched?;
        position = last;
        if last_commit.elapsed() >= options.commit_every {
            commit(index, position).await?;
            dirty = false;
            last_commit = Instant::now();
        }
        progress(position);
    }
    if dirty || index.position()? < position {
        commit(index, position).await?;
    }
    Ok(position)
}

async fn commit(index: &Arc<SearchIndex>, position: u64) -> Result<(), SearchError> {
    let index = index.clone();
    tokio::task::spawn_blocking(move || index.commit(position))
        .await
        .map_err(|e| SearchError::Task(e.to_string()))?
}

/// What one event does to a book's document.
enum Change {
    Added(BookDoc),
    Updated(quire_domain::book::BookChanges),
    Removed,
    Summary(String),
    Reviewed,
}

/// Applies a batch (not committed); returns whether any document changed. In `bulk` mode (a
/// rebuild) review events only note their book in the set, whose figures are read once at the
/// end, instead of rewriting a book's document for every batch that reviews it.
async fn apply(
    index: &Arc<SearchIndex>,
    events: &[RecordedEvent],
    ratings: &dyn RatingsSource,
    bulk: Option<&mut HashSet<String>>,
) -> Result<bool, SearchError> {
    let mut changes: Vec<(String, Change)> = Vec::new();
    for event in events {
        let Some(book_id) = event.stream_id.strip_prefix("book-") else {
            continue;
        };
        if let Some(change) = decode(event, book_id)? {
            changes.push((book_id.to_string(), change));
        }
    }
    if let Some(reviewed) = bulk {
        changes.retain(|(id, change)| {
            let review = matches!(change, Change::Reviewed);
            if review || matches!(change, Change::Added(_)) {
                reviewed.insert(id.clone());
            }
            !review
        });
    }
    if changes.is_empty() {
        return Ok(false);
    }
    let rated: Vec<String> = changes
        .iter()
        .filter(|(_, c)| matches!(c, Change::Reviewed))
        .map(|(id, _)| id.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let last = events.last().map_or(0, |e| e.position);
    let figures = if rated.is_empty() {
        HashMap::new()
    } else {
        ratings
            .ratings(&rated, last)
            .await
            .map_err(SearchError::Ratings)?
    };
    let index = index.clone();
    tokio::task::spawn_blocking(move || write(&index, changes, &rated, &figures))
        .await
        .map_err(|e| SearchError::Task(e.to_string()))??;
    Ok(true)
}

fn write(
    index: &SearchIndex,
    changes: Vec<(String, Change)>,
    rated: &[String],
    figures: &HashMap<String, BookRatings>,
) -> Result<(), SearchError> {
    // Each touched book's document as the batch leaves it (`None`: not in the catalogue), and
    // the books first added by this batch: a `BookAdded` opens its stream, so such a book is in
    // no committed document yet, and needs neither a lookup nor a delete (what makes a rebuild
    // fast: it is nearly all additions).
    let mut docs: HashMap<String, Option<BookDoc>> = HashMap::new();
    let mut new_books: HashSet<String> = HashSet::new();
    let mut order: Vec<String> = Vec::new();
    for (id, change) in changes {
        if !docs.contains_key(&id) {
            let current = if matches!(change, Change::Added(_)) {
                new_books.insert(id.clone());
                None
            } else {
                index.get(&id)?
            };
            docs.insert(id.clone(), current);
            order.push(id.clone());
        }
        let doc = docs.get_mut(&id).expect("inserted above");
        match change {
            Change::Added(added) => *doc = Some(added),
            Change::Updated(c) => {
                if let Some(d) = doc.as_mut() {
                    if let Some(title) = c.title {
                        d.title = title.as_str().to_string();
                    }
                    if let Some(authors) = c.authors {
                        d.authors = authors.iter().map(|a| a.as_str().to_string()).collect();
                    }
                    if let Some(genres) = c.genres {
                        d.genres = genres.iter().map(|g| g.as_str().to_string()).collect();
                    }
                    if let Some(year) = c.year_published {
                        d.year = year.map(|y| y.value());
                    }
                    if let Some(isbn) = c.isbn {
                        d.isbn = isbn.map(|i| i.as_str().to_string());
                    }
                    if let Some(description) = c.description {
                        d.description = description.map(|d| d.as_str().to_string());
                    }
                }
            }
            Change::Removed => *doc = None,
            Change::Summary(text) => {
                if let Some(d) = doc.as_mut() {
                    d.summary = Some(text);
                }
            }
            Change::Reviewed => {}
        }
    }
    for id in rated {
        if let Some(Some(doc)) = docs.get_mut(id) {
            let r = figures.get(id).copied().unwrap_or_default();
            doc.ratings_count = r.count;
            doc.rating_average = r.average;
        }
    }
    for id in order {
        match (&docs[&id], new_books.contains(&id)) {
            (Some(doc), true) => index.add(doc)?,
            (Some(doc), false) => index.upsert(doc)?,
            (None, true) => {}
            (None, false) => index.delete(&id),
        }
    }
    Ok(())
}

fn decode(event: &RecordedEvent, book_id: &str) -> Result<Option<Change>, SearchError> {
    // Reviews only matter for their counts: no need to decode their text.
    if matches!(
        event.event_type.as_str(),
        "ReviewPosted" | "ReviewEdited" | "ReviewDeleted"
    ) {
        return Ok(Some(Change::Reviewed));
    }
    if !matches!(
        event.event_type.as_str(),
        "BookAdded" | "BookUpdated" | "BookRemoved" | "BookSummarySet"
    ) {
        return Ok(None);
    }
    let mut payload = std::borrow::Cow::Borrowed(&event.payload);
    // The seed design's `BookAdded` v1 kept the book id only in the stream name.
    if event.event_type == "BookAdded"
        && event.schema_version == 1
        && event.payload.get("book_id").is_none_or(Value::is_null)
        && let Value::Object(map) = payload.to_mut()
    {
        map.insert("book_id".into(), Value::String(book_id.to_string()));
    }
    let decoded = BookEvent::from_stored(&event.event_type, event.schema_version, &payload)
        .map_err(|e| SearchError::Decode {
            position: event.position,
            reason: e.to_string(),
        })?;
    Ok(match decoded {
        BookEvent::BookAdded {
            title,
            authors,
            genres,
            year_published,
            isbn,
            description,
            ..
        } => Some(Change::Added(BookDoc {
            book_id: book_id.to_string(),
            title: title.as_str().to_string(),
            authors: authors.iter().map(|a| a.as_str().to_string()).collect(),
            genres: genres.iter().map(|g| g.as_str().to_string()).collect(),
            year: year_published.map(|y| y.value()),
            isbn: isbn.map(|i| i.as_str().to_string()),
            description: description.map(|d| d.as_str().to_string()),
            ..BookDoc::default()
        })),
        BookEvent::BookUpdated(changes) => Some(Change::Updated(changes)),
        BookEvent::BookRemoved => Some(Change::Removed),
        BookEvent::BookSummarySet { summary, .. } => {
            Some(Change::Summary(summary.as_str().to_string()))
        }
        _ => None,
    })
}

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    /// The generation written.
    pub generation: std::path::PathBuf,
    pub position: u64,
    pub books: u64,
    pub elapsed: Duration,
    pub size_bytes: u64,
}

/// Rebuilds the index under `root` from the whole log into a new generation and publishes it;
/// a running node switches to it once it has caught it up. Safe while nodes serve searches.
pub async fn rebuild(
    root: &std::path::Path,
    store: &DynEventStore,
    ratings: &dyn RatingsSource,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<RebuildReport, SearchError> {
    let started = Instant::now();
    std::fs::create_dir_all(root).map_err(|e| SearchError::io(root, e))?;
    let index = Arc::new(create_generation(root, BULK_THREADS)?);
    let options = IndexerOptions {
        batch: 5_000,
        commit_every: Duration::from_secs(3600),
        ..IndexerOptions::default()
    };
    let mut rated = HashSet::new();
    let position = catch_up(&index, store, ratings, &options, Some(&mut rated), progress).await?;
    // The rating figures of every book, read once now that the log is replayed.
    let rated: Vec<String> = rated.into_iter().collect();
    let mut changed = false;
    for chunk in rated.chunks(5_000) {
        let figures = ratings
            .ratings(chunk, position)
            .await
            .map_err(SearchError::Ratings)?;
        if figures.is_empty() {
            continue;
        }
        let target = index.clone();
        tokio::task::spawn_blocking(move || {
            for (id, r) in figures {
                if let Some(mut doc) = target.get(&id)? {
                    doc.ratings_count = r.count;
                    doc.rating_average = r.average;
                    target.upsert(&doc)?;
                }
            }
            Ok::<_, SearchError>(())
        })
        .await
        .map_err(|e| SearchError::Task(e.to_string()))??;
        changed = true;
    }
    if changed {
        commit(&index, position).await?;
    }
    let index = Arc::try_unwrap(index)
        .map_err(|_| SearchError::Task("the rebuilt index is still shared".into()))?;
    let report = RebuildReport {
        generation: index.dir().to_path_buf(),
        position,
        books: index.len(),
        elapsed: started.elapsed(),
        size_bytes: index.size_bytes(),
    };
    // The writer's lock goes with the index, so a node can open the generation.
    drop(index);
    publish(root, &report.generation)?;
    Ok(report)
}

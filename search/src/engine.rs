//! The node's search engine: the live generation of the index, how far into the log it is, and
//! the switch to a rebuilt generation.
//!
//! Generations live side by side under the search directory (`gen-000001`, `gen-000002`, …) and
//! the file `CURRENT` names the live one. A rebuild (`quire projections rebuild search`, in this
//! process or another) fills a new generation from the whole log, then replaces `CURRENT`
//! (written aside and renamed, so it is never half-written). The node's indexer notices, opens
//! the new generation, catches it up and swaps it in under the readers: a search runs against
//! the old generation or the complete new one, never an empty one. The old directory is deleted
//! once swapped out.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::index::SearchIndex;
use crate::query::{SearchRequest, SearchResults, Suggestion, Weights};
use crate::{SearchError, SearchIndex as Index};

const CURRENT: &str = "CURRENT";

/// The live index of this node and its position in the log. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct SearchEngine {
    root: PathBuf,
    live: RwLock<Arc<SearchIndex>>,
    position: watch::Sender<u64>,
    weights: Weights,
}

impl SearchEngine {
    /// Opens the live generation under `root`, creating the first one if there is none, and a
    /// new empty one (to be filled from the log) if the live one was written by another schema
    /// version.
    pub fn open(root: &Path) -> Result<Arc<Self>, SearchError> {
        std::fs::create_dir_all(root).map_err(|e| SearchError::io(root, e))?;
        let index = match current_generation(root)? {
            Some(name) => match SearchIndex::open(&root.join(&name)) {
                Ok(index) => index,
                Err(SearchError::Schema { found, expected }) => {
                    tracing::warn!(
                        found,
                        expected,
                        "the search index was written by another version: starting a new one"
                    );
                    new_generation(root)?
                }
                Err(other) => return Err(other),
            },
            None => new_generation(root)?,
        };
        let position = index.position()?;
        Ok(Arc::new(Self {
            root: root.to_path_buf(),
            live: RwLock::new(Arc::new(index)),
            position: watch::channel(position).0,
            weights: Weights::default(),
        }))
    }

    /// Opens the index under `base`, or, when another process holds it (several nodes sharing
    /// one data directory), under the first of `base-2`, `base-3`, … that no process holds. A
    /// node restarting finds its index again; a dead process's lock is released with it.
    pub fn open_free(base: &Path) -> Result<Arc<Self>, SearchError> {
        const SLOTS: u32 = 32;
        for slot in 1..=SLOTS {
            let root = if slot == 1 {
                base.to_path_buf()
            } else {
                let mut name = base.file_name().unwrap_or_default().to_os_string();
                name.push(format!("-{slot}"));
                base.with_file_name(name)
            };
            match Self::open(&root) {
                Err(SearchError::Index(tantivy::TantivyError::LockFailure(
                    tantivy::directory::error::LockError::LockBusy,
                    _,
                ))) => continue,
                other => return other,
            }
        }
        Err(SearchError::Corrupt(format!(
            "every one of {SLOTS} search index directories beside {} is in use",
            base.display()
        )))
    }

    /// The search directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The live generation.
    pub fn index(&self) -> Arc<SearchIndex> {
        self.live.read().expect("search generation lock").clone()
    }

    /// The last log position the live index reflects.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// A receiver of [`position`](Self::position).
    pub fn position_watch(&self) -> watch::Receiver<u64> {
        self.position.subscribe()
    }

    pub(crate) fn advance(&self, position: u64) {
        self.position.send_if_modified(|p| {
            if position > *p {
                *p = position;
                true
            } else {
                false
            }
        });
    }

    /// Waits until the index reflects the log up to `position`; `Err(reached)` on timeout.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), u64> {
        let mut watch = self.position.subscribe();
        let reached = tokio::time::timeout(timeout, watch.wait_for(|p| *p >= position)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(self.position()),
        }
    }

    /// Runs a search on the live generation.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResults, SearchError> {
        self.index().search(request, &self.weights)
    }

    /// Suggestions for the search box.
    pub fn suggest(&self, q: &str, limit: usize) -> Result<Vec<Suggestion>, SearchError> {
        self.index().suggest(q, limit)
    }

    /// If `CURRENT` names another generation than the live one (a rebuild finished), opens it
    /// and returns it, to be caught up and then [`swap`](Self::swap)ped in.
    pub(crate) fn rebuilt(&self) -> Result<Option<SearchIndex>, SearchError> {
        let Some(name) = current_generation(&self.root)? else {
            return Ok(None);
        };
        let live = self.index();
        if live.dir() == self.root.join(&name) {
            return Ok(None);
        }
        Ok(Some(SearchIndex::open(&self.root.join(name))?))
    }

    /// Makes `index` the live generation and deletes the one it replaces.
    pub(crate) fn swap(&self, index: SearchIndex, position: u64) {
        let old = {
            let mut live = self.live.write().expect("search generation lock");
            std::mem::replace(&mut *live, Arc::new(index))
        };
        // The position may move back if the rebuilt generation is behind the old one for a
        // moment; the indexer catches it up before it is swapped, so it is not.
        self.position.send_replace(position);
        tracing::info!(old = %old.dir().display(), "search: switched to a rebuilt index");
        let dir = old.dir().to_path_buf();
        drop(old);
        // Readers holding the old generation keep its files open (mmap) until they finish.
        if let Err(error) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(%error, dir = %dir.display(), "search: could not delete an old index");
        }
    }
}

/// The name in `CURRENT`, if any.
fn current_generation(root: &Path) -> Result<Option<String>, SearchError> {
    let path = root.join(CURRENT);
    match std::fs::read_to_string(&path) {
        Ok(name) => {
            let name = name.trim().to_string();
            Ok((!name.is_empty() && root.join(&name).is_dir()).then_some(name))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SearchError::io(&path, e)),
    }
}

/// Creates the next generation's directory (not yet live) and opens it.
pub(crate) fn create_generation(root: &Path, threads: usize) -> Result<Index, SearchError> {
    let next = std::fs::read_dir(root)
        .map_err(|e| SearchError::io(root, e))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("gen-"))
                .and_then(|n| n.parse::<u32>().ok())
        })
        .max()
        .unwrap_or(0)
        + 1;
    SearchIndex::open_with_threads(&root.join(format!("gen-{next:06}")), threads)
}

/// Makes the generation in `dir` the live one for the next open and for running indexers.
pub(crate) fn publish(root: &Path, dir: &Path) -> Result<(), SearchError> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| SearchError::Corrupt(format!("bad generation {}", dir.display())))?;
    let tmp = root.join(format!("{CURRENT}.tmp"));
    std::fs::write(&tmp, name).map_err(|e| SearchError::io(&tmp, e))?;
    std::fs::rename(&tmp, root.join(CURRENT)).map_err(|e| SearchError::io(root, e))?;
    Ok(())
}

fn new_generation(root: &Path) -> Result<Index, SearchError> {
    let index = create_generation(root, 1)?;
    publish(root, index.dir())?;
    Ok(index)
}

/// Where a node's index stands, read without opening it for writing (a running node holds the
/// writer).
#[derive(Debug, Clone)]
pub struct IndexStatus {
    /// The live generation's directory name.
    pub generation: String,
    pub position: u64,
    pub books: u64,
    pub bytes: u64,
    /// Segments in the last commit: an idle indexer merges more than a few into one.
    pub segments: usize,
}

/// The status of the live generation under `root`, if there is one.
pub fn peek(root: &Path) -> Result<Option<IndexStatus>, SearchError> {
    let Some(name) = current_generation(root)? else {
        return Ok(None);
    };
    let dir = root.join(&name);
    let index = tantivy::Index::open_in_dir(&dir)?;
    let metas = index.load_metas()?;
    let segments = metas.segments.len();
    let position = metas
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|p| p["position"].as_u64())
        .unwrap_or(0);
    let books = index.reader()?.searcher().num_docs();
    let bytes = std::fs::read_dir(&dir)
        .map_err(|e| SearchError::io(&dir, e))?
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(Some(IndexStatus {
        generation: name,
        position,
        books,
        bytes,
        segments,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BookDoc;

    fn book(id: &str, title: &str) -> BookDoc {
        BookDoc {
            book_id: id.into(),
            title: title.into(),
            authors: vec!["Frank Herbert".into()],
            ..BookDoc::default()
        }
    }

    #[test]
    fn an_index_keeps_its_position_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let engine = SearchEngine::open(dir.path()).unwrap();
        assert_eq!(engine.position(), 0);
        let index = engine.index();
        index.upsert(&book("a", "Dune")).unwrap();
        index.commit(42).unwrap();
        drop((index, engine));
        let engine = SearchEngine::open(dir.path()).unwrap();
        assert_eq!(engine.position(), 42);
        assert_eq!(engine.index().get("a").unwrap().unwrap().title, "Dune");
        assert_eq!(peek(dir.path()).unwrap().unwrap().books, 1);
    }

    #[test]
    fn a_second_process_on_the_same_directory_gets_a_directory_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("search");
        let first = SearchEngine::open_free(&base).unwrap();
        let second = SearchEngine::open_free(&base).unwrap();
        assert_eq!(first.root(), base);
        assert_eq!(second.root(), dir.path().join("search-2"));
        drop(first);
        // Freed: the next one to open takes it again.
        let third = SearchEngine::open_free(&base).unwrap();
        assert_eq!(third.root(), base);
    }

    #[test]
    fn a_published_generation_is_swapped_in_and_the_old_one_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let engine = SearchEngine::open(dir.path()).unwrap();
        let old = engine.index().dir().to_path_buf();
        let rebuilt = create_generation(dir.path(), 1).unwrap();
        rebuilt.upsert(&book("b", "Dune Messiah")).unwrap();
        rebuilt.commit(7).unwrap();
        let new_dir = rebuilt.dir().to_path_buf();
        drop(rebuilt);
        assert!(engine.rebuilt().unwrap().is_none(), "not published yet");
        publish(dir.path(), &new_dir).unwrap();
        let opened = engine.rebuilt().unwrap().expect("published");
        engine.swap(opened, 7);
        assert_eq!(engine.index().dir(), new_dir);
        assert_eq!(engine.position(), 7);
        assert!(!old.exists());
    }
}

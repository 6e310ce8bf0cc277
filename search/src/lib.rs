//! Quire's catalogue search: a tantivy index kept as a projection of the event log.
//!
//! Every API node keeps its own index in its data directory ([`SearchEngine`]), fed by the book
//! events of the shared log ([`indexer`]) and checkpointed in the index's own commits, so it
//! survives restarts and catches up on start. Queries forgive typos, complete the last word as
//! it is typed, honour quoted phrases, recognise ISBNs and count facets ([`query`]). A rebuild
//! writes a new generation beside the live one and switches to it when complete, so searches
//! never see a half-built index ([`engine`]). ARCHITECTURE.md, "Search", has the design and the
//! measured quality.

pub mod engine;
pub mod eval;
mod facets;
mod highlight;
pub mod index;
pub mod indexer;
pub mod isbn;
pub mod query;
mod terms;
pub mod text;

use std::path::{Path, PathBuf};

pub use engine::SearchEngine;
pub use highlight::Highlights;
pub use index::{BookDoc, SearchIndex};
pub use indexer::{BookRatings, IndexerOptions, NoRatings, RatingsSource};
pub use query::{FacetCount, Facets, Hit, SearchRequest, SearchResults, Sort, Suggestion, Weights};

/// Why the index could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("search index directory: {0}")]
    Directory(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("the search index has schema version {found}, this build writes {expected}")]
    Schema { found: u32, expected: u32 },
    #[error("the search index is damaged: {0}")]
    Corrupt(String),
    #[error("reading the event log for the search index: {0}")]
    Store(#[from] quire_store::StoreError),
    #[error("an event the search index cannot read at position {position}: {reason}")]
    Decode { position: u64, reason: String },
    #[error("reading rating counts for the search index: {0}")]
    Ratings(String),
    #[error("the search index task stopped: {0}")]
    Task(String),
}

impl SearchError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

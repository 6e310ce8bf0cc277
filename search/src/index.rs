//! One generation of the index: a tantivy index in a directory of its own, with the log position
//! it covers stored in its commit payload, so the index and its checkpoint are one atomic commit.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::TermQuery;
use tantivy::schema::{
    FAST, Facet, FacetOptions, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions, Value,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::SearchError;
use crate::text::{ANALYZER, analyzer, normalized, tokens, without_series};

/// Bumped whenever the schema or what is indexed changes: an index of another version is rebuilt.
pub(crate) const SCHEMA_VERSION: u32 = 2;

/// The memory the writer may buffer before it flushes a segment.
const WRITER_HEAP: usize = 64 << 20;

/// A book as the index holds it: what a hit shows, and what reindexing a changed book starts from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BookDoc {
    pub book_id: String,
    pub title: String,
    pub authors: Vec<String>,
    pub genres: Vec<String>,
    pub year: Option<i32>,
    pub isbn: Option<String>,
    pub description: Option<String>,
    pub summary: Option<String>,
    /// Ratings from reviews, and their average (0 when none).
    pub ratings_count: u64,
    pub rating_average: f64,
}

impl BookDoc {
    /// The popularity tie-breaker: grows with the log of the ratings count.
    pub(crate) fn popularity(&self) -> f64 {
        (1.0 + self.ratings_count as f64).ln()
    }

    /// A Bayesian average (10 ratings of 3.5 as the prior), so one 5-star rating does not top the
    /// "best rated" sort.
    pub(crate) fn bayesian_rating(&self) -> f64 {
        let n = self.ratings_count as f64;
        (n * self.rating_average + 10.0 * 3.5) / (n + 10.0)
    }

    /// The decade facet value ("1990s").
    pub(crate) fn decade(&self) -> Option<String> {
        self.year.map(|y| format!("{}s", y.div_euclid(10) * 10))
    }
}

/// The schema's fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub id: Field,
    pub source: Field,
    pub title: Field,
    pub series: Field,
    pub title_key: Field,
    pub authors: Field,
    pub author_key: Field,
    pub genres: Field,
    pub genre_key: Field,
    pub genre_first: Field,
    pub description: Field,
    pub isbn: Field,
    pub genre_facet: Field,
    pub author_facet: Field,
    pub decade_facet: Field,
    pub year: Field,
    pub popularity: Field,
    pub rating: Field,
    pub title_len: Field,
    /// Title and author words together: the one dictionary a typo's automaton walks.
    pub words: Field,
}

pub(crate) fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = |positions: bool| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(if positions {
                    IndexRecordOption::WithFreqsAndPositions
                } else {
                    IndexRecordOption::WithFreqs
                }),
        )
    };
    let fields = Fields {
        id: b.add_text_field("id", STRING),
        source: b.add_text_field("source", STORED),
        title: b.add_text_field("title", text(true)),
        series: b.add_text_field("series", text(true)),
        title_key: b.add_text_field("title_key", STRING),
        authors: b.add_text_field("authors", text(true)),
        author_key: b.add_text_field("author_key", STRING),
        genres: b.add_text_field("genres", text(false)),
        genre_key: b.add_text_field("genre_key", STRING),
        genre_first: b.add_text_field("genre_first", STRING),
        description: b.add_text_field("description", text(true)),
        isbn: b.add_text_field("isbn", STRING),
        genre_facet: b.add_facet_field("genre_facet", FacetOptions::default()),
        author_facet: b.add_facet_field("author_facet", FacetOptions::default()),
        decade_facet: b.add_facet_field("decade_facet", FacetOptions::default()),
        year: b.add_i64_field("year", INDEXED | FAST),
        popularity: b.add_f64_field("popularity", FAST),
        rating: b.add_f64_field("rating", FAST),
        title_len: b.add_u64_field("title_len", FAST),
        words: b.add_text_field(
            "words",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(ANALYZER)
                    .set_index_option(IndexRecordOption::Basic),
            ),
        ),
    };
    (b.build(), fields)
}

/// The commit payload: the last log position the generation applied.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    position: u64,
    schema: u32,
}

/// One generation of the index, open for reading and writing.
pub struct SearchIndex {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    pub(crate) fields: Fields,
    writer: Mutex<IndexWriter<TantivyDocument>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens the index in `dir`, creating an empty one if there is none. An index written with
    /// another schema version is an error ([`SearchError::Schema`]): the caller starts a new
    /// generation instead.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        Self::open_with_threads(dir, 1)
    }

    /// [`open`](Self::open) with `threads` indexing threads (a rebuild uses more than the one of
    /// a live node, whose batches are small).
    pub fn open_with_threads(dir: &Path, threads: usize) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
        let (schema, fields) = schema();
        let mmap = tantivy::directory::MmapDirectory::open(dir)?;
        let index = Index::open_or_create(mmap, schema)?;
        index.tokenizers().register(ANALYZER, analyzer());
        let writer = index.writer_with_num_threads(threads.max(1), WRITER_HEAP * threads.max(1))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let opened = Self {
            dir: dir.to_path_buf(),
            index,
            reader,
            fields,
            writer: Mutex::new(writer),
        };
        if let Some(payload) = opened.payload()?
            && payload.schema != SCHEMA_VERSION
        {
            return Err(SearchError::Schema {
                found: payload.schema,
                expected: SCHEMA_VERSION,
            });
        }
        Ok(opened)
    }

    /// The directory the generation lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn payload(&self) -> Result<Option<Payload>, SearchError> {
        let metas = self.index.load_metas()?;
        Ok(metas
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok()))
    }

    /// The last log position this generation applied (0 for a new one).
    pub fn position(&self) -> Result<u64, SearchError> {
        Ok(self.payload()?.map_or(0, |p| p.position))
    }

    /// Books in the committed index.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether the committed index holds no book.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn searcher(&self) -> tantivy::Searcher {
        self.reader.searcher()
    }

    /// The indexed book, as of the last commit.
    pub fn get(&self, book_id: &str) -> Result<Option<BookDoc>, SearchError> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(
            Term::from_field_text(self.fields.id, book_id),
            IndexRecordOption::Basic,
        );
        let top = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        match top.first() {
            Some((_, address)) => Ok(Some(self.source(&searcher, *address)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn source(
        &self,
        searcher: &tantivy::Searcher,
        address: tantivy::DocAddress,
    ) -> Result<BookDoc, SearchError> {
        let doc: TantivyDocument = searcher.doc(address)?;
        let json = doc
            .get_first(self.fields.source)
            .and_then(|v| v.as_str())
            .ok_or_else(|| SearchError::Corrupt("a document without its source".into()))?;
        serde_json::from_str(json).map_err(|e| SearchError::Corrupt(e.to_string()))
    }

    /// Replaces (or adds) a book; visible after the next [`commit`](Self::commit).
    pub fn upsert(&self, book: &BookDoc) -> Result<(), SearchError> {
        let writer = self.writer.lock().expect("search writer poisoned");
        writer.delete_term(Term::from_field_text(self.fields.id, &book.book_id));
        writer.add_document(self.document(book))?;
        Ok(())
    }

    /// Adds a book known not to be in the index yet (its first event); visible after the next
    /// [`commit`](Self::commit).
    pub fn add(&self, book: &BookDoc) -> Result<(), SearchError> {
        let writer = self.writer.lock().expect("search writer poisoned");
        writer.add_document(self.document(book))?;
        Ok(())
    }

    /// Removes a book; gone after the next [`commit`](Self::commit).
    pub fn delete(&self, book_id: &str) {
        let writer = self.writer.lock().expect("search writer poisoned");
        writer.delete_term(Term::from_field_text(self.fields.id, book_id));
    }

    /// Commits what was written with the log position it covers, and makes it visible to
    /// searches.
    pub fn commit(&self, position: u64) -> Result<(), SearchError> {
        let mut writer = self.writer.lock().expect("search writer poisoned");
        let mut prepared = writer.prepare_commit()?;
        let payload = serde_json::to_string(&Payload {
            position,
            schema: SCHEMA_VERSION,
        })
        .expect("payload serialises");
        prepared.set_payload(&payload);
        prepared.commit()?;
        drop(writer);
        self.reader.reload()?;
        Ok(())
    }

    /// Segments the committed index is split into: a search visits every one.
    pub fn segments(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    /// Merges every segment into one, when there are more than `max`, and waits for it: a node
    /// following the log commits small batches, each a segment, and a search's cost (term
    /// dictionary walks for fuzzy and prefix matches, per segment) grows with their number.
    /// Returns whether it merged.
    pub fn compact(&self, max: usize) -> Result<bool, SearchError> {
        let ids = self.index.searchable_segment_ids()?;
        if ids.len() <= max {
            return Ok(false);
        }
        let merge = {
            let mut writer = self.writer.lock().expect("search writer poisoned");
            writer.merge(&ids)
        };
        merge.wait()?;
        self.reader.reload()?;
        Ok(true)
    }

    /// Disk space the generation's files take.
    pub fn size_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    fn document(&self, book: &BookDoc) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, &book.book_id);
        doc.add_text(
            f.source,
            serde_json::to_string(book).expect("a book serialises"),
        );
        // The title people type, and apart from it the series note goodreads titles carry
        // ("(The Lord of the Rings, #1)"), which matches with less weight.
        let bare = without_series(&book.title);
        doc.add_text(f.title, bare);
        doc.add_text(f.words, bare);
        // Words written with inner punctuation also match typed without it: "11/22/63" as
        // "112263", "Post-American" as "postamerican".
        let joined = crate::text::joined_words(bare);
        if !joined.is_empty() {
            doc.add_text(f.title, joined.join(" "));
            doc.add_text(f.words, joined.join(" "));
        }
        doc.add_text(f.title_key, normalized(bare));
        if bare != book.title {
            doc.add_text(f.series, &book.title[bare.len()..]);
            doc.add_text(f.title_key, normalized(&book.title));
        }
        for author in &book.authors {
            doc.add_text(f.authors, author);
            doc.add_text(f.words, author);
            doc.add_text(f.author_key, normalized(author));
            doc.add_facet(f.author_facet, Facet::from_path([author.as_str()]));
        }
        if let Some(first) = book.genres.first() {
            doc.add_text(f.genre_first, normalized(first));
        }
        for genre in &book.genres {
            doc.add_text(f.genres, genre);
            doc.add_text(f.genre_key, normalized(genre));
            doc.add_facet(f.genre_facet, Facet::from_path([genre.as_str()]));
        }
        if let Some(description) = &book.description {
            doc.add_text(f.description, description);
        }
        if let Some(isbn) = &book.isbn {
            for form in crate::isbn::index_forms(isbn) {
                doc.add_text(f.isbn, form);
            }
        }
        if let Some(year) = book.year {
            doc.add_i64(f.year, i64::from(year));
        }
        if let Some(decade) = book.decade() {
            doc.add_facet(f.decade_facet, Facet::from_path([decade.as_str()]));
        }
        doc.add_f64(f.popularity, book.popularity());
        doc.add_f64(f.rating, book.bayesian_rating());
        doc.add_u64(f.title_len, tokens(bare).len().max(1) as u64);
        doc
    }
}

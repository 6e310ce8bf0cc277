//! Turning what a person typed into a ranked, faceted page of books.
//!
//! **Matching.** Each query token may match a title, author, genre or description token exactly,
//! with typos (one edit from 4 letters, two from 8), or, for the last token while the person is
//! still typing, as a prefix. Every token must match somewhere; when no book matches them all,
//! the query is retried requiring one token fewer, down to half of them (as Typesense drops
//! tokens).
//! Quoted phrases must match as phrases. A query that is an ISBN (either form, any hyphens)
//! looks the ISBN up first.
//!
//! **Ranking.** Each token scores the best of its matches, weighted by the token's rarity in
//! titles (capped), by field (title > author > genre > description) and by match kind (exact >
//! prefix > one typo > two typos). Bonuses go to a title equal to the whole query and to the
//! tokens appearing in the title as a phrase. Popularity (the log of the ratings count) breaks
//! near-ties, and titles much longer than the query lose a little.

use std::ops::Bound;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, DisjunctionMaxQuery, Occur, PhrasePrefixQuery,
    PhraseQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, DocId, Order, Score, Searcher, SegmentReader, Term};

use crate::SearchError;
use crate::facets::FacetCounter;
use crate::highlight::{Highlights, highlight};
use crate::index::{BookDoc, Fields, SearchIndex};
use crate::terms::{
    TermsQuery, TypoWords, Typos, completions, most_frequent, starts_any, typo_prefix_words,
};
use crate::text::{normalized, tokens, typo_budget};

/// The most hits a page may hold.
pub const MAX_LIMIT: usize = 100;
/// How deep paging may go: beyond it, a narrower query is the answer.
pub const MAX_OFFSET: usize = 1_000;
/// Facet values returned per facet.
const FACET_VALUES: usize = 10;
/// The most tokens a query is read for.
const MAX_TOKENS: usize = 12;

/// The weights of the ranking. Exposed so `quire search eval` can report them; the defaults were
/// chosen on generated goodbooks queries (ARCHITECTURE.md, "Search").
#[derive(Debug, Clone, Copy)]
pub struct Weights {
    pub title: f32,
    pub author: f32,
    pub genre: f32,
    pub series: f32,
    pub description: f32,
    pub prefix: f32,
    pub typo1: f32,
    pub typo2: f32,
    /// The most a token's rarity may weigh, and the least.
    pub idf_cap: f32,
    pub idf_floor: f32,
    /// Bonus for a title equal to the query, as a share of the query's weight.
    pub exact_title: f32,
    /// Bonus for a query that names a genre of the book, and more if it is the book's main one.
    pub genre_exact: f32,
    pub genre_first: f32,
    /// Bonus for a title that starts with the query as typed.
    pub title_start: f32,
    /// Bonus for the tokens in order in the title.
    pub phrase: f32,
    /// Popularity's share of the query's weight, at the most popular book.
    pub popularity: f32,
    /// The cost of each title token beyond the query's (log-scaled), as a share of its weight.
    pub length: f32,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            title: 1.0,
            author: 0.9,
            genre: 0.6,
            series: 0.4,
            description: 0.3,
            prefix: 0.85,
            typo1: 0.7,
            typo2: 0.5,
            idf_cap: 6.0,
            idf_floor: 0.5,
            exact_title: 0.5,
            title_start: 0.3,
            genre_exact: 0.6,
            genre_first: 0.15,
            phrase: 0.3,
            popularity: 0.15,
            length: 0.2,
        }
    }
}

impl Weights {
    /// Sets one weight by its field name (`popularity=0.2`), for trying others in an evaluation.
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("{assignment:?} is not name=value"))?;
        let value: f32 = value
            .trim()
            .parse()
            .map_err(|_| format!("{value:?} is not a number"))?;
        let slot = match name.trim() {
            "title" => &mut self.title,
            "author" => &mut self.author,
            "genre" => &mut self.genre,
            "series" => &mut self.series,
            "description" => &mut self.description,
            "prefix" => &mut self.prefix,
            "typo1" => &mut self.typo1,
            "typo2" => &mut self.typo2,
            "idf_cap" => &mut self.idf_cap,
            "idf_floor" => &mut self.idf_floor,
            "exact_title" => &mut self.exact_title,
            "genre_exact" => &mut self.genre_exact,
            "genre_first" => &mut self.genre_first,
            "title_start" => &mut self.title_start,
            "phrase" => &mut self.phrase,
            "popularity" => &mut self.popularity,
            "length" => &mut self.length,
            other => return Err(format!("no weight named {other:?}")),
        };
        *slot = value;
        Ok(())
    }
}

/// How results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Relevance,
    /// Best rated first (a Bayesian average, so a single 5 does not win).
    Rating,
    /// Newest first.
    Year,
}

/// A search.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub q: String,
    /// Only books of this genre (exact, case-insensitive).
    pub genre: Option<String>,
    /// Only books by this author (the full name, case-insensitive).
    pub author: Option<String>,
    pub year_from: Option<i32>,
    pub year_to: Option<i32>,
    pub sort: Sort,
    pub limit: usize,
    pub offset: usize,
    /// Count genre, decade and author facets over the whole result.
    pub facets: bool,
    /// Mark the matched words in titles, authors and descriptions.
    pub highlight: bool,
}

/// A facet value and how many books of the result have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

/// Facet counts over the whole result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facets {
    pub genre: Vec<FacetCount>,
    pub decade: Vec<FacetCount>,
    pub author: Vec<FacetCount>,
}

/// One book found.
#[derive(Debug, Clone)]
pub struct Hit {
    pub book: BookDoc,
    pub score: f32,
    pub highlights: Option<Highlights>,
}

/// A page of results.
#[derive(Debug, Clone)]
pub struct SearchResults {
    /// Books matching (all of them, not just this page).
    pub total: u64,
    pub hits: Vec<Hit>,
    pub facets: Option<Facets>,
    /// How the query matched: `isbn`, `all` (every token), `partial` (some dropped), `browse`
    /// (no query text).
    pub matched: &'static str,
    /// Tokens the query required, after any were dropped.
    pub required_tokens: usize,
}

/// A suggestion for the search box.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// `title` or `author`.
    pub kind: &'static str,
    pub text: String,
    /// The book, for a title.
    pub book_id: Option<String>,
    /// The text with the typed part marked.
    pub highlighted: String,
}

/// What the query text was read as.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    /// Unquoted tokens, in order.
    pub tokens: Vec<String>,
    /// Whether the last token may be a prefix (the text does not end with a space or a quote).
    pub last_is_prefix: bool,
    /// Quoted phrases, as tokens.
    pub phrases: Vec<Vec<String>>,
}

pub(crate) fn parse(q: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let mut last_segment_unquoted = false;
    for (i, segment) in q.split('"').enumerate() {
        if i % 2 == 1 {
            let phrase = tokens(segment);
            if !phrase.is_empty() {
                parsed.phrases.push(phrase);
            }
            last_segment_unquoted = false;
        } else {
            parsed.tokens.extend(tokens(segment));
            last_segment_unquoted = !segment.is_empty();
        }
    }
    parsed.tokens.truncate(MAX_TOKENS);
    parsed.last_is_prefix = last_segment_unquoted
        && !q.ends_with(char::is_whitespace)
        && parsed.tokens.last().is_some_and(|t| !t.is_empty());
    parsed
}

impl SearchIndex {
    /// Runs a search against the last commit.
    #[tracing::instrument(skip_all, fields(q = %request.q))]
    pub fn search(
        &self,
        request: &SearchRequest,
        weights: &Weights,
    ) -> Result<SearchResults, SearchError> {
        let searcher = self.searcher();
        let f = self.fields;
        let filters = filters(&f, request);
        let parsed = parse(&request.q);

        if let Some(forms) = crate::isbn::isbn_forms(&request.q) {
            let isbn: Vec<Box<dyn Query>> =
                forms.iter().map(|form| term_query(f.isbn, form)).collect();
            let query = with_filters(Box::new(DisjunctionMaxQuery::new(isbn)), &filters);
            let results = self.run(&searcher, &*query, request, &parsed, weights, (1, "isbn"))?;
            if results.total > 0 {
                return Ok(results);
            }
        }

        if parsed.tokens.is_empty() && parsed.phrases.is_empty() {
            let query = with_filters(Box::new(AllQuery), &filters);
            return self.run(&searcher, &*query, request, &parsed, weights, (0, "browse"));
        }
        let n = parsed.tokens.len();
        // The titles that start with the query as typed, the shortest first (a bonus, and a way
        // for the word being typed to match however rare its completion).
        let title_starts = if parsed.tokens.is_empty() {
            Vec::new()
        } else {
            prefix_terms(&searcher, f.title_key, &parsed.tokens.join(" "))?
        };
        let clauses = token_clauses(&searcher, &f, &parsed, &title_starts, weights)?;
        let total_weight: f32 = clauses.iter().map(|(_, w)| w).sum::<f32>().max(1.0);
        let mut required = n;
        loop {
            let query = build(
                &f,
                &parsed,
                &clauses,
                required,
                (total_weight, &title_starts),
                weights,
                &filters,
            );
            let matched = if required == n { "all" } else { "partial" };
            let results = self.run(&searcher, &*query, request, &parsed, weights, (n, matched))?;
            // At least half the words must match: a query most of whose words match nothing
            // finds nothing rather than whatever shares one common word with it.
            if results.total > 0 || required <= n.div_ceil(2) {
                return Ok(SearchResults {
                    required_tokens: required,
                    ..results
                });
            }
            required -= 1;
        }
    }

    fn run(
        &self,
        searcher: &Searcher,
        query: &dyn Query,
        request: &SearchRequest,
        parsed: &Parsed,
        weights: &Weights,
        (query_tokens, matched): (usize, &'static str),
    ) -> Result<SearchResults, SearchError> {
        let limit = request.limit.clamp(1, MAX_LIMIT);
        let offset = request.offset.min(MAX_OFFSET);
        let top = TopDocs::with_limit(limit).and_offset(offset);
        let (addresses, total, facets): (Vec<(f32, DocAddress)>, u64, Option<Facets>) =
            match request.sort {
                Sort::Relevance => {
                    let scored = top.tweak_score(tweak(*weights, query_tokens));
                    collect(searcher, query, scored, request.facets)?
                }
                Sort::Rating => {
                    let by = top.order_by_fast_field::<f64>("rating", Order::Desc);
                    let (docs, total, facets) = collect(searcher, query, by, request.facets)?;
                    (
                        docs.into_iter()
                            .map(|(v, a)| (v.unwrap_or(0.0) as f32, a))
                            .collect(),
                        total,
                        facets,
                    )
                }
                Sort::Year => {
                    let by = top.order_by_fast_field::<i64>("year", Order::Desc);
                    let (docs, total, facets) = collect(searcher, query, by, request.facets)?;
                    (
                        docs.into_iter()
                            .map(|(v, a)| (v.unwrap_or(i64::MIN) as f32, a))
                            .collect(),
                        total,
                        facets,
                    )
                }
            };
        let mut hits = Vec::with_capacity(addresses.len());
        for (score, address) in addresses {
            let book = self.source(searcher, address)?;
            let highlights = request.highlight.then(|| highlight(&book, parsed));
            hits.push(Hit {
                book,
                score,
                highlights,
            });
        }
        Ok(SearchResults {
            total,
            hits,
            facets,
            matched,
            required_tokens: query_tokens,
        })
    }

    /// Titles and authors that start with what was typed (the last token as a prefix, the ones
    /// before it exact or with typos), most popular first.
    #[tracing::instrument(skip_all, fields(q = %q))]
    pub fn suggest(&self, q: &str, limit: usize) -> Result<Vec<Suggestion>, SearchError> {
        let mut parsed = parse(q);
        parsed.phrases.clear();
        if parsed.tokens.is_empty() {
            return Ok(Vec::new());
        }
        parsed.last_is_prefix = true;
        let searcher = self.searcher();
        let f = self.fields;
        let limit = limit.clamp(1, 20);
        let weights = Weights::default();
        let mut out: Vec<Suggestion> = Vec::new();
        // Each token's typos once, for both fields (as search does: a word no title or author
        // holds as typed).
        let mut typos = Vec::with_capacity(parsed.tokens.len());
        for token in &parsed.tokens {
            let unknown = searcher.doc_freq(&Term::from_field_text(f.title, token))? == 0
                && searcher.doc_freq(&Term::from_field_text(f.authors, token))? == 0;
            typos.push(TokenTypos::new(&searcher, &f, token, unknown)?);
        }
        for (kind, field) in [("title", f.title), ("author", f.authors)] {
            let mut clauses = Vec::new();
            for (i, (token, typos)) in parsed.tokens.iter().zip(&mut typos).enumerate() {
                let last = i + 1 == parsed.tokens.len();
                let variants = variants(&searcher, field, token, last, typos, 1.0, &weights)?;
                clauses.push((
                    Occur::Must,
                    Box::new(DisjunctionMaxQuery::new(variants)) as Box<dyn Query>,
                ));
            }
            let query = BooleanQuery::new(clauses);
            let top =
                TopDocs::with_limit(limit * 3).tweak_score(tweak(weights, parsed.tokens.len()));
            for (_, address) in searcher.search(&query, &top)? {
                let book = self.source(&searcher, address)?;
                let texts: Vec<String> = if kind == "title" {
                    vec![book.title.clone()]
                } else {
                    book.authors
                        .iter()
                        .filter(|a| crate::highlight::matches_all(a, &parsed))
                        .cloned()
                        .collect()
                };
                for text in texts {
                    if out.iter().any(|s| s.kind == kind && s.text == text) {
                        continue;
                    }
                    let highlighted = crate::highlight::mark(&text, &parsed, None);
                    out.push(Suggestion {
                        kind,
                        book_id: (kind == "title").then(|| book.book_id.clone()),
                        text,
                        highlighted,
                    });
                }
            }
        }
        // Interleave: the best titles first, authors after, within the limit.
        let (titles, authors): (Vec<_>, Vec<_>) = out.into_iter().partition(|s| s.kind == "title");
        let author_share = authors
            .len()
            .min(limit / 3)
            .max(limit.saturating_sub(titles.len()));
        let mut result: Vec<Suggestion> = titles
            .into_iter()
            .take(limit - author_share.min(limit))
            .collect();
        result.extend(authors.into_iter().take(limit - result.len()));
        Ok(result)
    }
}

/// Ranked documents, the total and the facets of one search.
type Collected<K> = (Vec<(K, DocAddress)>, u64, Option<Facets>);

/// A token's clause and its weight.
type TokenClause = (Box<dyn Query>, f32);

/// Runs `top` with a count and (when asked) the facet collectors.
fn collect<C, K>(
    searcher: &Searcher,
    query: &dyn Query,
    top: C,
    with_facets: bool,
) -> Result<Collected<K>, SearchError>
where
    C: tantivy::collector::Collector<Fruit = Vec<(K, DocAddress)>>,
{
    if !with_facets {
        let (docs, count) = searcher.search(query, &(top, Count))?;
        return Ok((docs, count as u64, None));
    }
    let facet = |name: &'static str| FacetCounter::new(name, FACET_VALUES);
    let (docs, count, (genre, decade, author)) = searcher.search(
        query,
        &(
            top,
            Count,
            (
                facet("genre_facet"),
                facet("decade_facet"),
                facet("author_facet"),
            ),
        ),
    )?;
    let values = |counts: Vec<(String, u64)>| -> Vec<FacetCount> {
        counts
            .into_iter()
            .map(|(value, count)| FacetCount { value, count })
            .collect()
    };
    let mut decades = values(decade);
    decades.sort_by(|a, b| b.value.cmp(&a.value));
    Ok((
        docs,
        count as u64,
        Some(Facets {
            genre: values(genre),
            decade: decades,
            author: values(author),
        }),
    ))
}

/// The relevance sort key: the text score, plus popularity, minus a little for titles much
/// longer than the query.
fn tweak(
    weights: Weights,
    query_tokens: usize,
) -> impl Fn(&SegmentReader) -> Box<dyn Fn(DocId, Score) -> Score> + Send + Sync + 'static {
    move |segment: &SegmentReader| {
        let fast = segment.fast_fields();
        let popularity = fast
            .f64("popularity")
            .map(|c| c.first_or_default_col(0.0))
            .ok();
        let title_len = fast
            .u64("title_len")
            .map(|c| c.first_or_default_col(1))
            .ok();
        let n = query_tokens as f32;
        Box::new(move |doc: DocId, score: Score| {
            if n == 0.0 {
                // Browsing: by popularity alone.
                return popularity.as_ref().map_or(0.0, |p| p.get_val(doc) as f32);
            }
            // The score's own scale: about one per matched token of average weight.
            let scale = score.max(1.0);
            let pop = popularity.as_ref().map_or(0.0, |p| p.get_val(doc) as f32) / 10.0;
            let extra = title_len
                .as_ref()
                .map_or(0.0, |t| (t.get_val(doc) as f32 - n).max(0.0));
            score + scale * (weights.popularity * pop - weights.length * extra.ln_1p())
        })
    }
}

fn term_query(field: Field, text: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, text),
        IndexRecordOption::Basic,
    ))
}

fn constant(query: Box<dyn Query>, score: f32) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(query, score))
}

/// The most words a prefix stands for (the most frequent ones), and the most dictionary entries
/// read to find them: a one- or two-letter prefix would otherwise stand for thousands of words.
const PREFIX_EXPANSIONS: usize = 100;
const PREFIX_SCAN: usize = 20_000;

/// The words of `field` that start with `prefix`, most frequent first, at most
/// [`PREFIX_EXPANSIONS`] (as Typesense and Meilisearch bound theirs).
fn prefix_terms(searcher: &Searcher, field: Field, prefix: &str) -> Result<Vec<Term>, SearchError> {
    let mut found: std::collections::HashMap<Vec<u8>, u64> = std::collections::HashMap::new();
    completions(searcher, field, prefix, PREFIX_SCAN, |word, df| {
        *found.entry(word.to_vec()).or_default() += df;
    })?;
    // The most frequent first; among equals (every whole title is one), the shortest: the
    // completion closest to what was typed.
    Ok(most_frequent(found, PREFIX_EXPANSIONS)
        .iter()
        .map(|word| Term::from_field_text(field, word))
        .collect())
}

/// The words a token may have meant: its typos (for a word no title or author holds as typed),
/// and, while it is being typed and nothing starts with it, what it may become with a typo. Both
/// are read once for every field, from the dictionary of title and author words, the second only
/// if asked.
struct TokenTypos<'a> {
    words: Option<TypoWords>,
    searcher: &'a Searcher,
    field: Field,
    token: &'a str,
    prefix: Option<Vec<String>>,
}

impl<'a> TokenTypos<'a> {
    /// `unknown`: no title or author holds the token as typed, so look for its typos.
    fn new(
        searcher: &'a Searcher,
        f: &Fields,
        token: &'a str,
        unknown: bool,
    ) -> Result<Self, SearchError> {
        // Only a word no title or author holds is looked up for typos: building its automata
        // and walking the dictionary is most of a query's cost.
        let words = match unknown.then(|| Typos::for_word(token)).flatten() {
            Some(typos) => Some(typos.words(searcher, f.words)?),
            None => None,
        };
        Ok(Self {
            words,
            searcher,
            field: f.words,
            token,
            prefix: None,
        })
    }

    /// What the token may become with a typo, if it is still being typed. Nothing when a title
    /// or author word starts with it as typed or is one edit from it: then that is what is
    /// being typed, and walking the dictionary for mistyped prefixes would only add noise (and
    /// is a large part of such a query's cost).
    fn prefix(&mut self) -> Result<&[String], SearchError> {
        if self.prefix.is_none() {
            let near = self.words.as_ref().is_some_and(|w| !w.one.is_empty());
            self.prefix = Some(
                if near || starts_any(self.searcher, self.field, self.token)? {
                    Vec::new()
                } else {
                    typo_prefix_words(self.searcher, self.field, self.token)?
                },
            );
        }
        Ok(self.prefix.as_deref().unwrap_or_default())
    }
}

/// The ways one token may match one field, each with its constant score. Typos are tried only
/// for a word no title or author holds as typed (as Typesense does by default): a word that
/// exists is very likely meant, and looking for typos walks the term dictionaries, which on a
/// large catalogue is most of a query's cost. `typos` are the words the token may have meant.
fn variants(
    searcher: &Searcher,
    field: Field,
    token: &str,
    last_is_prefix: bool,
    typos: &mut TokenTypos<'_>,
    field_weight: f32,
    w: &Weights,
) -> Result<Vec<Box<dyn Query>>, SearchError> {
    let mut out = vec![constant(term_query(field, token), field_weight)];
    if last_is_prefix && !token.is_empty() {
        let completions = prefix_terms(searcher, field, token)?;
        if !completions.is_empty() {
            out.push(constant(
                Box::new(TermsQuery::new(field, &completions)),
                field_weight * w.prefix,
            ));
        } else if typo_budget(token) >= 1 && token.chars().count() >= 5 {
            // Nothing starts with it: maybe a typo in what is being typed.
            let words = typos.prefix()?;
            if !words.is_empty() {
                out.push(constant(
                    Box::new(TermsQuery::words(field, words)),
                    field_weight * w.typo2,
                ));
            }
        }
    }
    if let Some(found) = &typos.words {
        for (words, weight) in [(&found.one, w.typo1), (&found.two, w.typo2)] {
            if !words.is_empty() {
                out.push(constant(
                    Box::new(TermsQuery::words(field, words)),
                    field_weight * weight,
                ));
            }
        }
    }
    Ok(out)
}

/// Each token's clause (the best of its matches across fields) and the token's weight.
fn token_clauses(
    searcher: &Searcher,
    f: &Fields,
    parsed: &Parsed,
    title_starts: &[Term],
    w: &Weights,
) -> Result<Vec<TokenClause>, SearchError> {
    let docs = searcher.num_docs().max(1) as f32;
    let mut out = Vec::with_capacity(parsed.tokens.len());
    for (i, token) in parsed.tokens.iter().enumerate() {
        let last = parsed.last_is_prefix && i + 1 == parsed.tokens.len();
        let df = searcher.doc_freq(&Term::from_field_text(f.title, token))? as f32;
        // Typos, for a word no title or author holds as typed: one automaton, one walk of the
        // dictionary of both fields' words.
        let unknown =
            df == 0.0 && searcher.doc_freq(&Term::from_field_text(f.authors, token))? == 0;
        let mut typos = TokenTypos::new(searcher, f, token, unknown)?;
        let idf = (1.0 + (docs - df + 0.5) / (df + 0.5)).ln();
        let weight = idf.clamp(w.idf_floor, w.idf_cap);
        let mut disjuncts = Vec::new();
        disjuncts.extend(variants(
            searcher,
            f.title,
            token,
            last,
            &mut typos,
            weight * w.title,
            w,
        )?);
        disjuncts.extend(variants(
            searcher,
            f.authors,
            token,
            last,
            &mut typos,
            weight * w.author,
            w,
        )?);
        // The series note: exact words only (as typed, the last one a prefix); its typos are
        // not worth the term-dictionary walks.
        disjuncts.push(constant(term_query(f.series, token), weight * w.series));
        if last {
            let completions = prefix_terms(searcher, f.series, token)?;
            if !completions.is_empty() {
                disjuncts.push(constant(
                    Box::new(TermsQuery::new(f.series, &completions)),
                    weight * w.series * w.prefix,
                ));
            }
        }
        // The word being typed also matches in a title that starts with the whole query: a
        // one-letter prefix stands for too many words to expand them all ("Last Chance S").
        if last && !title_starts.is_empty() {
            disjuncts.push(constant(
                Box::new(TermsQuery::new(f.title_key, title_starts)),
                weight * w.title * w.prefix,
            ));
        }
        disjuncts.push(constant(term_query(f.genres, token), weight * w.genre));
        disjuncts.push(constant(
            term_query(f.description, token),
            weight * w.description,
        ));
        out.push((
            Box::new(DisjunctionMaxQuery::new(disjuncts)) as Box<dyn Query>,
            weight,
        ));
    }
    Ok(out)
}

/// The whole query: `required` of the token clauses, the phrases, the bonuses and the filters.
fn build(
    f: &Fields,
    parsed: &Parsed,
    clauses: &[TokenClause],
    required: usize,
    (total_weight, title_starts): (f32, &[Term]),
    w: &Weights,
    filters: &[Box<dyn Query>],
) -> Box<dyn Query> {
    let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    if !clauses.is_empty() {
        let tokens: Vec<Box<dyn Query>> = clauses.iter().map(|(q, _)| q.box_clone()).collect();
        must.push((
            Occur::Must,
            Box::new(BooleanQuery::union_with_minimum_required_clauses(
                tokens, required,
            )),
        ));
    }
    for phrase in &parsed.phrases {
        let in_field = |field: Field| -> Box<dyn Query> {
            if phrase.len() == 1 {
                term_query(field, &phrase[0])
            } else {
                Box::new(PhraseQuery::new(
                    phrase
                        .iter()
                        .map(|t| Term::from_field_text(field, t))
                        .collect(),
                ))
            }
        };
        let fields = [f.title, f.authors, f.description];
        let scored: Vec<Box<dyn Query>> = fields
            .iter()
            .zip([w.title, w.author, w.description])
            .map(|(&field, weight)| constant(in_field(field), weight * phrase.len() as f32))
            .collect();
        must.push((Occur::Must, Box::new(DisjunctionMaxQuery::new(scored))));
    }
    // Bonuses: the whole query is the title; the tokens appear in order in the title.
    if !parsed.tokens.is_empty() {
        let whole = parsed.tokens.join(" ");
        must.push((
            Occur::Should,
            constant(
                term_query(f.title_key, &whole),
                w.exact_title * total_weight,
            ),
        ));
        if !title_starts.is_empty() {
            must.push((
                Occur::Should,
                constant(
                    Box::new(TermsQuery::new(f.title_key, title_starts)),
                    w.title_start * total_weight,
                ),
            ));
        }
        // Genres named in the query, whole or as a run of its words ("young adult fantasy"
        // names two), each worth its share of the query's words.
        let n = parsed.tokens.len();
        for start in 0..n {
            for end in start + 1..=(start + 3).min(n) {
                let span = parsed.tokens[start..end].join(" ");
                let share = (end - start) as f32 / n as f32;
                for (field, weight) in
                    [(f.genre_key, w.genre_exact), (f.genre_first, w.genre_first)]
                {
                    must.push((
                        Occur::Should,
                        constant(term_query(field, &span), weight * share * total_weight),
                    ));
                }
            }
        }
        if parsed.tokens.len() >= 2 {
            let terms: Vec<Term> = parsed
                .tokens
                .iter()
                .map(|t| Term::from_field_text(f.title, t))
                .collect();
            let phrase: Box<dyn Query> = if parsed.last_is_prefix {
                Box::new(PhrasePrefixQuery::new(terms))
            } else {
                Box::new(PhraseQuery::new(terms))
            };
            must.push((Occur::Should, constant(phrase, w.phrase * total_weight)));
        }
    }
    for filter in filters {
        must.push((Occur::Must, constant(filter.box_clone(), 0.0)));
    }
    Box::new(BooleanQuery::new(must))
}

/// The filter clauses of a request.
fn filters(f: &Fields, request: &SearchRequest) -> Vec<Box<dyn Query>> {
    let mut out: Vec<Box<dyn Query>> = Vec::new();
    if let Some(genre) = request.genre.as_deref().filter(|g| !g.trim().is_empty()) {
        out.push(term_query(f.genre_key, &normalized(genre)));
    }
    if let Some(author) = request.author.as_deref().filter(|a| !a.trim().is_empty()) {
        out.push(term_query(f.author_key, &normalized(author)));
    }
    if request.year_from.is_some() || request.year_to.is_some() {
        let bound = |year: Option<i32>| match year {
            Some(y) => Bound::Included(Term::from_field_i64(f.year, i64::from(y))),
            None => Bound::Unbounded,
        };
        out.push(Box::new(RangeQuery::new(
            bound(request.year_from),
            bound(request.year_to),
        )));
    }
    out
}

fn with_filters(query: Box<dyn Query>, filters: &[Box<dyn Query>]) -> Box<dyn Query> {
    if filters.is_empty() {
        return query;
    }
    let mut clauses = vec![(Occur::Must, query)];
    for filter in filters {
        clauses.push((Occur::Must, constant(filter.box_clone(), 0.0)));
    }
    Box::new(BooleanQuery::new(clauses))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titled(id: &str, title: &str) -> BookDoc {
        BookDoc {
            book_id: id.into(),
            title: title.into(),
            authors: vec!["Some Author".into()],
            ..BookDoc::default()
        }
    }

    /// Typos are looked for among the words that share the typed first letter first; a
    /// mistyped first letter is still forgiven, but only when nothing else fits, and below a
    /// word that kept it.
    #[test]
    fn a_mistyped_first_letter_is_forgiven_last() {
        let dir = tempfile::tempdir().unwrap();
        let index = SearchIndex::open(dir.path()).unwrap();
        index.upsert(&titled("m", "The Mountain")).unwrap();
        index.upsert(&titled("f", "The Fountain")).unwrap();
        index.upsert(&titled("s", "Silmarillion")).unwrap();
        index.commit(1).unwrap();
        let ids = |q: &str| -> Vec<String> {
            let request = SearchRequest {
                q: q.into(),
                limit: 10,
                ..SearchRequest::default()
            };
            index
                .search(&request, &Weights::default())
                .unwrap()
                .hits
                .into_iter()
                .map(|h| h.book.book_id)
                .collect()
        };
        // "mointain" is one edit from "mountain", which keeps the first letter: only it.
        assert_eq!(ids("mointain "), ["m"]);
        // "zilmarillion": nothing starting with "z" is near, so the first letter is the typo.
        assert_eq!(ids("zilmarillion "), ["s"]);
        // "bountain": one edit from both, neither keeping the "b": both, as two typos.
        let both = ids("bountain ");
        assert_eq!(both.len(), 2, "{both:?}");
    }

    #[test]
    fn queries_are_read_into_tokens_phrases_and_a_prefix() {
        let p = parse("tolkien \"the two towers\" ret");
        assert_eq!(p.tokens, ["tolkien", "ret"]);
        assert_eq!(p.phrases, [vec!["the", "two", "towers"]]);
        assert!(p.last_is_prefix);
        assert!(!parse("dune ").last_is_prefix);
        assert!(!parse("\"dune\"").last_is_prefix);
        assert!(parse("").tokens.is_empty());
    }
}

//! `GET /search` and `GET /search/suggest`: the catalogue search box, answered from this node's
//! index ([`quire_search`]). Public, like the catalogue.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use quire_search::{SearchEngine, SearchRequest, Sort};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{issued_token, next_link};
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{CONSISTENCY_TOKEN, Query};

/// The longest query text read.
const MAX_QUERY_CHARS: usize = 256;
/// The default page size.
const DEFAULT_LIMIT: usize = 20;

/// `GET /search` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// What was typed: words (typos forgiven, the last one completed as a prefix), `"quoted
    /// phrases"`, or an ISBN. Empty: browse by the filters, most popular first.
    pub q: Option<String>,
    /// Only books of this genre.
    pub genre: Option<String>,
    /// Only books by this author (the full name, as the `author` facet gives it).
    pub author: Option<String>,
    /// Only books published in or after this year.
    pub year_from: Option<i32>,
    /// Only books published in or before this year.
    pub year_to: Option<i32>,
    /// `relevance` (default), `rating` (best rated first) or `year` (newest first).
    pub sort: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Count facets (default true).
    pub facets: Option<bool>,
    /// Mark matched words in `highlights` (default true).
    pub highlight: Option<bool>,
}

/// A book's rating figures.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HitRating {
    pub average: f64,
    pub count: u64,
}

/// Matched words marked with `<mark>` in HTML-escaped text.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HitHighlights {
    pub title: String,
    pub authors: Vec<String>,
    pub description: Option<String>,
}

/// One book found, with the catalogue's fields.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SearchHit {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub book_id: String,
    pub title: String,
    /// The first author (the seed field).
    pub author: String,
    pub authors: Vec<String>,
    /// The first genre (the seed field).
    pub genre: Option<String>,
    pub genres: Vec<String>,
    pub year_published: Option<i32>,
    pub isbn: Option<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub rating: HitRating,
    pub score: f32,
    pub highlights: Option<HitHighlights>,
}

/// A facet value and its count.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FacetValue {
    pub value: String,
    pub count: u64,
}

/// Facet counts over the whole result.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SearchFacets {
    pub genre: Vec<FacetValue>,
    /// "1990s", newest first.
    pub decade: Vec<FacetValue>,
    pub author: Vec<FacetValue>,
}

/// A page of search results.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SearchPage {
    pub query: String,
    /// Books matching, on every page.
    pub total: u64,
    /// `all` (every word matched), `partial` (no book matched every word, so some were
    /// dropped), `isbn`, or `browse` (no query text).
    pub matched: &'static str,
    pub items: Vec<SearchHit>,
    pub facets: Option<SearchFacets>,
    pub next_cursor: Option<String>,
    /// The log position the index reflected.
    pub position: u64,
}

/// `GET /search/suggest` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SuggestParams {
    /// What has been typed so far.
    pub q: String,
    /// How many suggestions, 1 to 20 (default 8).
    #[param(minimum = 1, maximum = 20)]
    pub limit: Option<usize>,
}

/// A completion for the search box.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SuggestionDto {
    /// `title` or `author`.
    pub kind: &'static str,
    pub text: String,
    #[schema(format = Uuid)]
    pub book_id: Option<String>,
    /// The text, HTML-escaped, with the typed part marked.
    pub highlighted: String,
}

/// Suggestions for the search box.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Suggestions {
    pub query: String,
    pub suggestions: Vec<SuggestionDto>,
}

fn engine(state: &AppState) -> Result<Arc<SearchEngine>, ApiError> {
    state.search.clone().ok_or_else(|| {
        ApiError::unavailable("search_unavailable", "this node keeps no search index", 5)
    })
}

/// Waits for the index to reach the request's consistency token, if it has one.
async fn index_your_writes(
    state: &AppState,
    engine: &SearchEngine,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if let Some(position) = issued_token(state, headers).await?
        && let Err(reached) = engine
            .wait_for(position, state.config.consistency_timeout)
            .await
    {
        return Err(ApiError::unavailable(
            "search_index_behind",
            format!(
                "the search index has not yet reached the requested consistency token (it is at {reached}); retry shortly"
            ),
            1,
        ));
    }
    Ok(())
}

/// A cursor names the offset of the next page and the query it belongs to, so one cursor cannot
/// page through another query's results.
fn encode_cursor(offset: usize, fingerprint: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("s1:{offset}:{fingerprint:016x}"))
}

fn decode_cursor(cursor: &str, fingerprint: u64) -> Result<usize, ApiError> {
    let bad = || ApiError::bad_request("invalid_cursor", "the pagination cursor is not valid");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = text.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("s1"), Some(offset), Some(print), None) if print == format!("{fingerprint:016x}") => {
            offset.parse().map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// FNV-1a over the parameters that shape the result.
fn fingerprint(params: &SearchParams) -> u64 {
    let text = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        params.q, params.genre, params.author, params.year_from, params.year_to, params.sort
    );
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Searches the catalogue: typo-tolerant words, the last one completed as a prefix, quoted
/// phrases, ISBNs (either form); filters by genre, author and years; facet counts over the whole
/// result; matched words highlighted. Honours `Consistency-Token`: a book written with that
/// token is found.
#[utoipa::path(
    get, path = "/search", tag = "search",
    params(SearchParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = SearchPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The index is behind the consistency token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.search", skip_all)]
pub(crate) async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<SearchParams>,
) -> Result<Response, ApiError> {
    let engine = engine(&state)?;
    let q = params.q.clone().unwrap_or_default();
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("q must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let sort = match params.sort.as_deref() {
        None | Some("relevance") => Sort::Relevance,
        Some("rating") => Sort::Rating,
        Some("year") => Sort::Year,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("sort must be relevance, rating or year, not {other:?}"),
            ));
        }
    };
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=quire_search::query::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "limit must be between 1 and {}",
                quire_search::query::MAX_LIMIT
            ),
        ));
    }
    if let (Some(from), Some(to)) = (params.year_from, params.year_to)
        && from > to
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "year_from must not be after year_to",
        ));
    }
    let print = fingerprint(&params);
    let offset = match params.cursor.as_deref() {
        Some(cursor) => decode_cursor(cursor, print)?,
        None => 0,
    };
    if offset > quire_search::query::MAX_OFFSET {
        return Err(ApiError::bad_request(
            "invalid_cursor",
            "results can be paged through the first 1,000 books; narrow the query",
        ));
    }
    index_your_writes(&state, &engine, &headers).await?;
    let request = SearchRequest {
        q: q.clone(),
        genre: params.genre.clone(),
        author: params.author.clone(),
        year_from: params.year_from,
        year_to: params.year_to,
        sort,
        limit,
        offset,
        facets: params.facets.unwrap_or(true),
        highlight: params.highlight.unwrap_or(true),
    };
    let position = engine.position();
    // On the request's own worker thread: a search is bounded (12 words, 100 expansions a
    // word, 1,000 deep) and takes a fraction of a millisecond on a catalogue of goodbooks' size.
    // Handing it to a blocking thread and back cost more than that and doubled the p99 under
    // load (ARCHITECTURE.md, "Search").
    let results = engine
        .search(&request)
        .map_err(|e| ApiError::internal("running a search", &e))?;
    let next = offset + results.hits.len();
    let next_cursor = (results.hits.len() == limit
        && (next as u64) < results.total
        && next <= quire_search::query::MAX_OFFSET)
        .then(|| encode_cursor(next, print));
    let page = SearchPage {
        query: q,
        total: results.total,
        matched: results.matched,
        items: results.hits.into_iter().map(hit).collect(),
        facets: results.facets.map(|f| {
            let values = |v: Vec<quire_search::FacetCount>| {
                v.into_iter()
                    .map(|c| FacetValue {
                        value: c.value,
                        count: c.count,
                    })
                    .collect()
            };
            SearchFacets {
                genre: values(f.genre),
                decade: values(f.decade),
                author: values(f.author),
            }
        }),
        next_cursor,
        position,
    };
    let query: Vec<(&str, String)> = [
        ("q", params.q),
        ("genre", params.genre),
        ("author", params.author),
        ("year_from", params.year_from.map(|y| y.to_string())),
        ("year_to", params.year_to.map(|y| y.to_string())),
        ("sort", params.sort),
        ("limit", params.limit.map(|l| l.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let mut headers = next_link("/search", &query, page.next_cursor.as_deref());
    headers.insert(&CONSISTENCY_TOKEN, HeaderValue::from(position));
    Ok((StatusCode::OK, headers, axum::Json(page)).into_response())
}

fn hit(h: quire_search::Hit) -> SearchHit {
    let b = h.book;
    SearchHit {
        id: b.book_id.clone(),
        book_id: b.book_id,
        title: b.title,
        author: b.authors.first().cloned().unwrap_or_default(),
        authors: b.authors,
        genre: b.genres.first().cloned(),
        genres: b.genres,
        year_published: b.year,
        isbn: b.isbn,
        summary: b.summary,
        description: b.description,
        rating: HitRating {
            average: (b.rating_average * 100.0).round() / 100.0,
            count: b.ratings_count,
        },
        score: h.score,
        highlights: h.highlights.map(|x| HitHighlights {
            title: x.title,
            authors: x.authors,
            description: x.description,
        }),
    }
}

/// Completions for the search box: titles and authors matching what has been typed (the last
/// word as a prefix), most popular first.
#[utoipa::path(
    get, path = "/search/suggest", tag = "search",
    params(SuggestParams),
    responses(
        (status = 200, body = Suggestions),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.search.suggest", skip_all)]
pub(crate) async fn suggest(
    State(state): State<AppState>,
    Query(params): Query<SuggestParams>,
) -> Result<Response, ApiError> {
    let engine = engine(&state)?;
    if params.q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("q must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let limit = params.limit.unwrap_or(8);
    if !(1..=20).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 20",
        ));
    }
    // On the worker thread, as a search is.
    let suggestions = engine
        .suggest(&params.q, limit)
        .map_err(|e| ApiError::internal("suggesting", &e))?;
    Ok(axum::Json(Suggestions {
        query: params.q,
        suggestions: suggestions
            .into_iter()
            .map(|s| SuggestionDto {
                kind: s.kind,
                text: s.text,
                book_id: s.book_id,
                highlighted: s.highlighted,
            })
            .collect(),
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_belong_to_their_query() {
        let params = |q: &str| SearchParams {
            q: Some(q.into()),
            genre: None,
            author: None,
            year_from: None,
            year_to: None,
            sort: None,
            limit: None,
            cursor: None,
            facets: None,
            highlight: None,
        };
        let cursor = encode_cursor(40, fingerprint(&params("dune")));
        assert_eq!(
            decode_cursor(&cursor, fingerprint(&params("dune"))).unwrap(),
            40
        );
        assert!(decode_cursor(&cursor, fingerprint(&params("emma"))).is_err());
        assert!(decode_cursor("garbage", 0).is_err());
    }
}

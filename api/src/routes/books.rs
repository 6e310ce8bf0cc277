//! `/books`: the catalogue (add, list, read, update, remove), a book's history and its state at a
//! past time.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quire_actors::Command;
use quire_domain::Principal;
use quire_domain::book::{Book, BookCommand, BookEvent};
use quire_domain::ids::{BookId, ReviewId};
use quire_domain::values::{AuthorName, Description, Genre, Isbn, SummaryText, Title, Year};
use quire_domain::{Aggregate, DomainEvent};
use quire_projections::{BookQuery, BookSort, ProjectionName};
use uuid::Uuid;

use super::{accepted, dispatch, next_link, page, read_your_writes, settle, write_headers};
use crate::AppState;
use crate::auth::ClientAddr;
use crate::dto::{
    AsOfParams, BookChanges, BookDto, BookList, BookListParams, HistoryEntry, HistoryList, NewBook,
    PageParams, rfc3339,
};
use crate::error::{ApiError, Problem, Validation};
use crate::extract::{Json, PathId, Query, User, command_id, etag, idempotency_key, if_match};

/// Where summaries typed in by people come from.
const EDITOR_SOURCE: &str = "editor";

/// Adds a book (admins).
#[utoipa::path(
    post, path = "/books", tag = "books",
    request_body = NewBook,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the same response and write nothing new")),
    responses(
        (status = 201, description = "Added; `ETag` is its version, `Consistency-Token` the log position", body = BookDto),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.books.create", skip_all)]
pub(crate) async fn create(
    State(state): State<AppState>,
    User(principal): User,
    headers: HeaderMap,
    Json(body): Json<NewBook>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let mut v = Validation::default();
    let title = v.field("title", Title::parse(body.title));
    let authors = merge_one_and_many(
        &mut v,
        "author",
        body.author,
        body.authors,
        AuthorName::parse,
    );
    let genres = merge_one_and_many(&mut v, "genre", body.genre, body.genres, Genre::parse);
    let year_published = body
        .year_published
        .and_then(|y| v.field("year_published", Year::parse(y)));
    let isbn = body.isbn.and_then(|i| v.field("isbn", Isbn::parse(i)));
    let description = body
        .description
        .and_then(|d| v.field("description", Description::parse(d)));
    let summary = body
        .summary
        .and_then(|s| v.field("summary", SummaryText::parse(s)));
    if authors.as_ref().is_some_and(Vec::is_empty) {
        v.fail("author", "a book needs at least one author");
    }
    v.finish()?;
    let (Some(title), Some(authors), Some(genres)) = (title, authors, genres) else {
        unreachable!("validation passed")
    };

    let command_id = command_id(&principal, "POST /books", key.as_deref());
    let book_id = match key {
        Some(_) => BookId::from_uuid(Uuid::new_v5(&command_id, b"book")),
        None => BookId::new(),
    };
    let mut outcome = dispatch(
        &state,
        &principal,
        command_id,
        None,
        Command::Book {
            book_id,
            command: BookCommand::AddBook {
                book_id,
                title,
                authors,
                genres,
                year_published,
                isbn,
                description,
            },
        },
    )
    .await?;
    if let Some(summary) = summary {
        outcome = set_summary(&state, &principal, command_id, book_id, summary).await?;
    }
    let location = format!("/books/{book_id}");
    respond_with_book(
        &state,
        book_id,
        &outcome,
        StatusCode::CREATED,
        Some(&location),
    )
    .await
}

/// Records an editor's summary as the request's second command, its id derived from the first's.
async fn set_summary(
    state: &AppState,
    principal: &quire_domain::Principal,
    command_id: Uuid,
    book_id: BookId,
    summary: SummaryText,
) -> Result<quire_actors::CommandOutcome, ApiError> {
    dispatch(
        state,
        principal,
        Uuid::new_v5(&command_id, b"summary"),
        None,
        Command::Book {
            book_id,
            command: BookCommand::SetSummary {
                summary,
                source: EDITOR_SOURCE.to_string(),
                provenance: None,
            },
        },
    )
    .await
}

/// Answers a write with the book as the read model now shows it.
async fn respond_with_book(
    state: &AppState,
    book_id: BookId,
    outcome: &quire_actors::CommandOutcome,
    status: StatusCode,
    location: Option<&str>,
) -> Result<Response, ApiError> {
    if !settle(state, ProjectionName::Books, outcome.last_position).await? {
        return Ok(accepted(book_id.to_string(), outcome, location));
    }
    let mut headers = write_headers(outcome, location);
    let Some(book) = state.read.book(book_id).await? else {
        // Removed by a later command between the write and this read.
        return Err(ApiError::new(
            StatusCode::GONE,
            "book_removed",
            "book was removed",
        ));
    };
    // A later write may already have moved the book on: its ETag is what the body shows.
    if let Ok(value) = etag(book.version).parse() {
        headers.insert(header::ETAG, value);
    }
    Ok((status, headers, axum::Json(BookDto::from(book))).into_response())
}

/// Takes the single-value seed field and the list field together.
fn merge_one_and_many<T: PartialEq>(
    v: &mut Validation,
    field: &str,
    one: Option<String>,
    many: Option<Vec<String>>,
    parse: impl Fn(String) -> Result<T, quire_domain::values::ValueError>,
) -> Option<Vec<T>> {
    let mut out = Vec::new();
    let mut ok = true;
    if let Some(one) = one {
        match v.field(field, parse(one)) {
            Some(value) => out.push(value),
            None => ok = false,
        }
    }
    for (i, raw) in many.into_iter().flatten().enumerate() {
        match v.field(&format!("{field}s[{i}]"), parse(raw)) {
            Some(value) if !out.contains(&value) => out.push(value),
            Some(_) => {}
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// Lists books, filtered and sorted, a page at a time.
#[utoipa::path(
    get, path = "/books", tag = "books",
    params(BookListParams, ("Consistency-Token" = Option<u64>, Header, description = "Wait until the read models reflect this write")),
    responses(
        (status = 200, description = "A page; `Link` points at the next", body = BookList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.books.list", skip_all)]
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<BookListParams>,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let (sort, descending) = parse_sort(params.sort.as_deref())?;
    let genre = match &params.genre {
        Some(raw) => Some(
            Genre::parse(raw.clone())
                .map_err(|e| ApiError::bad_request("invalid_query", format!("genre: {e}")))?
                .to_string(),
        ),
        None => None,
    };
    let query = BookQuery {
        author: params.author.clone(),
        genre,
        year: params.year,
        sort,
        descending,
        page: page(params.limit, params.cursor.clone())?,
    };
    let result = state.read.list_books(&query).await?;
    let mut echo = Vec::new();
    for (name, value) in [
        ("author", params.author),
        ("genre", params.genre),
        ("year", params.year.map(|y| y.to_string())),
        ("sort", params.sort),
        ("limit", params.limit.map(|l| l.to_string())),
    ] {
        if let Some(value) = value {
            echo.push((name, value));
        }
    }
    let link = next_link("/books", &echo, result.next_cursor.as_deref());
    Ok((
        link,
        axum::Json(BookList {
            books: result.items.into_iter().map(BookDto::from).collect(),
            next_cursor: result.next_cursor,
        }),
    )
        .into_response())
}

fn parse_sort(sort: Option<&str>) -> Result<(BookSort, bool), ApiError> {
    let raw = sort.unwrap_or("title");
    let (descending, name) = match raw.strip_prefix('-') {
        Some(name) => (true, name),
        None => (false, raw),
    };
    let sort = match name {
        "title" => BookSort::Title,
        "year" => BookSort::Year,
        "rating" => BookSort::Rating,
        "added" => BookSort::Added,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "sort must be title, year, rating or added, optionally prefixed with '-'",
            ));
        }
    };
    Ok((sort, descending))
}

/// One book; with `as_of`, the book as it was at that time.
#[utoipa::path(
    get, path = "/books/{id}", tag = "books",
    params(("id" = String, Path, format = Uuid), AsOfParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, description = "The book; `ETag` is its version", body = BookDto),
        (status = 304, description = "Unchanged since the `If-None-Match` version"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The book was removed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`as_of` would fold more of the book's events than the caller may", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.books.get", skip_all, fields(book_id = %book_id))]
pub(crate) async fn get(
    State(state): State<AppState>,
    PathId(book_id): PathId<BookId>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Query(params): Query<AsOfParams>,
) -> Result<Response, ApiError> {
    if let Some(as_of) = params.as_of {
        // Only here does who asks matter (staff may fold longer histories), so only here are
        // credentials checked.
        let caller = state.auth.authenticate(&headers, client).await?;
        return as_of_time(&state, &caller, book_id, &as_of).await;
    }
    read_your_writes(&state, &headers).await?;
    let Some(book) = state.read.book(book_id).await? else {
        return Err(missing_book(&state, book_id).await);
    };
    let tag = etag(book.version);
    // `*` matches any current representation (RFC 9110 §13.1.2): the book exists, so it matches.
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim() == "*"
                || v.split(',')
                    .any(|t| t.trim().trim_start_matches("W/") == tag)
        });
    let mut out = HeaderMap::new();
    if let Ok(value) = tag.parse() {
        out.insert(header::ETAG, value);
    }
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    Ok((out, axum::Json(BookDto::from(book))).into_response())
}

/// 404 for a book that never existed, 410 for one that was removed.
pub(crate) async fn missing_book(state: &AppState, book_id: BookId) -> ApiError {
    match state.read.book_removed(book_id).await {
        Ok(true) => ApiError::new(StatusCode::GONE, "book_removed", "book was removed"),
        Ok(false) => ApiError::not_found("book"),
        Err(error) => error.into(),
    }
}

/// Events read from the store at a time while folding.
const FOLD_PAGE: usize = 500;

/// Folds the book's events recorded up to `as_of`, reading page by page and stopping at the first
/// later event; refuses (422 `history_too_long`) rather than fold more than the caller's limit.
async fn as_of_time(
    state: &AppState,
    caller: &Principal,
    book_id: BookId,
    as_of: &str,
) -> Result<Response, ApiError> {
    let at = time::OffsetDateTime::parse(as_of, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            ApiError::bad_request(
                "invalid_query",
                format!("as_of must be an RFC 3339 time: {e}"),
            )
        })?;
    let cutoff = (at.unix_timestamp_nanos() / 1000) as i64;
    let limit = if caller.is_privileged() {
        state.as_of_limits.staff
    } else {
        state.as_of_limits.public
    };
    let stream = book_id.stream_id();
    let mut book = Book::default();
    let mut version = 0;
    let mut folded = 0;
    let mut any = false;
    'read: loop {
        // Never read more than one event past what may be folded: that one tells "too long".
        let want = FOLD_PAGE.min(limit - folded + 1);
        let page = state
            .store
            .read_stream(&stream, version, want)
            .await
            .map_err(|e| ApiError::store("reading a book stream", &e))?;
        let last_page = page.len() < want;
        for stored in &page {
            any = true;
            if stored.recorded_at > cutoff {
                break 'read;
            }
            if folded == limit {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "history_too_long",
                    format!(
                        "the book had more than {limit} events by {as_of}, more than one \
                         request may fold; page through /books/{book_id}/history instead"
                    ),
                ));
            }
            let event = <Book as Aggregate>::Event::from_stored(
                &stored.event_type,
                stored.schema_version,
                &stored.payload,
            )
            .map_err(|e| ApiError::internal("decoding a book event", &e))?;
            book.apply(&event);
            version = stored.version;
            folded += 1;
        }
        if last_page {
            break;
        }
    }
    if book.is_removed() {
        return Err(ApiError::new(
            StatusCode::GONE,
            "book_removed",
            format!("book had been removed by {as_of}"),
        ));
    }
    let dto = BookDto::from_aggregate(&book, version).ok_or_else(|| {
        if any {
            ApiError::not_found(&format!("book at {as_of}"))
        } else {
            ApiError::not_found("book")
        }
    })?;
    Ok(([(header::ETAG, etag(version))], axum::Json(dto)).into_response())
}

/// Updates a book (admins). Absent fields stay; `null` clears optional ones. Honours `If-Match`.
#[utoipa::path(
    put, path = "/books/{id}", tag = "books",
    request_body = BookChanges,
    params(("id" = String, Path, format = Uuid), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses(
        (status = 200, body = BookDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The book changed since that ETag", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.books.update", skip_all, fields(book_id = %book_id))]
pub(crate) async fn update(
    State(state): State<AppState>,
    User(principal): User,
    PathId(book_id): PathId<BookId>,
    headers: HeaderMap,
    Json(body): Json<BookChanges>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let mut v = Validation::default();
    let title = body.title.and_then(|t| v.field("title", Title::parse(t)));
    let authors = if body.author.is_some() || body.authors.is_some() {
        merge_one_and_many(
            &mut v,
            "author",
            body.author,
            body.authors,
            AuthorName::parse,
        )
    } else {
        None
    };
    let genres = if body.genre.is_some() || body.genres.is_some() {
        merge_one_and_many(&mut v, "genre", body.genre, body.genres, Genre::parse)
    } else {
        None
    };
    let year_published = body
        .year_published
        .map(|y| y.and_then(|y| v.field("year_published", Year::parse(y))));
    let isbn = body
        .isbn
        .map(|i| i.and_then(|i| v.field("isbn", Isbn::parse(i))));
    let description = body
        .description
        .map(|d| d.and_then(|d| v.field("description", Description::parse(d))));
    let summary = body
        .summary
        .and_then(|s| v.field("summary", SummaryText::parse(s)));
    v.finish()?;

    let key = idempotency_key(&headers)?;
    let command_id = command_id(&principal, &format!("PUT /books/{book_id}"), key.as_deref());
    let mut outcome = dispatch(
        &state,
        &principal,
        command_id,
        expected,
        Command::Book {
            book_id,
            command: BookCommand::UpdateBook {
                title,
                authors,
                genres,
                year_published,
                isbn,
                description,
            },
        },
    )
    .await?;
    if let Some(summary) = summary {
        outcome = set_summary(&state, &principal, command_id, book_id, summary).await?;
    }
    respond_with_book(&state, book_id, &outcome, StatusCode::OK, None).await
}

/// Removes a book (admins). Its history is kept. Honours `If-Match`.
#[utoipa::path(
    delete, path = "/books/{id}", tag = "books",
    params(("id" = String, Path, format = Uuid), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 204, description = "Removed; `Consistency-Token` is the log position"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.books.delete", skip_all, fields(book_id = %book_id))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    User(principal): User,
    PathId(book_id): PathId<BookId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let key = idempotency_key(&headers)?;
    let command_id = command_id(
        &principal,
        &format!("DELETE /books/{book_id}"),
        key.as_deref(),
    );
    let outcome = dispatch(
        &state,
        &principal,
        command_id,
        expected,
        Command::Book {
            book_id,
            command: BookCommand::RemoveBook,
        },
    )
    .await?;
    settle(&state, ProjectionName::Books, outcome.last_position).await?;
    Ok((StatusCode::NO_CONTENT, write_headers(&outcome, None)).into_response())
}

/// The book's events, oldest first: what happened, who did it, when. The words of reviews
/// deleted since, and review summaries made before a deletion, are left out (`redacted`).
#[utoipa::path(
    get, path = "/books/{id}/history", tag = "books",
    params(("id" = String, Path, format = Uuid), PageParams),
    responses(
        (status = 200, body = HistoryList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The reviews read model is behind the book: what to redact is not known yet", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.books.history", skip_all, fields(book_id = %book_id))]
pub(crate) async fn history(
    State(state): State<AppState>,
    PathId(book_id): PathId<BookId>,
    Query(params): Query<PageParams>,
) -> Result<Response, ApiError> {
    let request = page(params.limit, params.cursor)?;
    let after = match &request.cursor {
        Some(cursor) => cursor.parse::<u64>().map_err(|_| {
            ApiError::bad_request("invalid_cursor", "the pagination cursor is not valid")
        })?,
        None => 0,
    };
    let limit = request.limit as usize;
    let events = state
        .store
        .read_stream(&book_id.stream_id(), after, limit + 1)
        .await
        .map_err(|e| ApiError::store("reading a book's history", &e))?;
    if events.is_empty() && after == 0 {
        return Err(ApiError::not_found("book"));
    }
    let more = events.len() > limit;
    let mut events = events;
    events.truncate(limit);
    let erase = Erasures::of_page(&state, book_id, &events).await?;
    let entries: Vec<HistoryEntry> = events
        .into_iter()
        .map(|e| {
            let (schema_version, data, redacted) = erase.apply(&e);
            HistoryEntry {
                version: e.version,
                position: e.position,
                event_type: e.event_type,
                schema_version,
                recorded_at: rfc3339(e.recorded_at),
                actor: e.metadata.actor,
                command_id: e.metadata.command_id,
                correlation_id: e.metadata.correlation_id,
                traceparent: e.metadata.traceparent,
                data,
                redacted,
            }
        })
        .collect();
    let next_cursor = more
        .then(|| entries.last().map(|e| e.version.to_string()))
        .flatten();
    let link = next_link(
        &format!("/books/{book_id}/history"),
        &[("limit", request.limit.to_string())],
        next_cursor.as_deref(),
    );
    Ok((
        link,
        axum::Json(HistoryList {
            events: entries,
            next_cursor,
        }),
    )
        .into_response())
}

/// What must be taken out of a page of a book's history: the words of the reviews deleted by now
/// (not by the time of the event), and the review summaries made before a deletion, which may
/// quote a deleted review (an extractive summary copies sentences).
struct Erasures {
    deleted: HashSet<ReviewId>,
    /// The stream version of the latest review deletion.
    last_deletion: Option<u64>,
}

impl Erasures {
    async fn of_page(
        state: &AppState,
        book_id: BookId,
        events: &[quire_store::RecordedEvent],
    ) -> Result<Self, ApiError> {
        let mut reviews = Vec::new();
        let mut summaries = false;
        for e in events {
            match e.event_type.as_str() {
                "ReviewPosted" | "ReviewEdited" => {
                    if let Some(id) = decode(e).and_then(|event| event.review_id()) {
                        reviews.push(id);
                    }
                }
                "ReviewSummarySet" => summaries = true,
                _ => {}
            }
        }
        if reviews.is_empty() && !summaries {
            return Ok(Self {
                deleted: HashSet::new(),
                last_deletion: None,
            });
        }
        // The deletions come from the reviews read model; first it must have seen every event the
        // book's stream holds now, or a deletion committed a moment ago would be missed and the
        // words shown. Usually it has; if it cannot catch up in time the answer is 503, never the
        // words.
        let stream = book_id.stream_id();
        let head = state
            .store
            .streams(&stream, None, 1)
            .await
            .map_err(|e| ApiError::store("reading a book stream's head", &e))?
            .into_iter()
            .find(|info| info.stream_id == stream);
        if let Some(head) = head {
            state
                .read
                .wait_for_projections(
                    &[ProjectionName::Reviews],
                    head.last_position,
                    state.config.consistency_timeout,
                )
                .await?;
        }
        let deleted = state.read.deleted_reviews(book_id, &reviews).await?;
        let last_deletion = if summaries {
            state.read.last_review_deletion(book_id).await?
        } else {
            None
        };
        Ok(Self {
            deleted,
            last_deletion,
        })
    }

    /// The schema version and payload to show for `event`, and whether words were taken out. An
    /// event to redact that cannot be read is shown without its payload rather than as stored.
    fn apply(&self, event: &quire_store::RecordedEvent) -> (u32, serde_json::Value, bool) {
        let as_stored = (event.schema_version, event.payload.clone(), false);
        match event.event_type.as_str() {
            "ReviewPosted" | "ReviewEdited" => match decode(event) {
                Some(decoded) => match decoded.review_id() {
                    Some(id) if self.deleted.contains(&id) => {
                        let erased = decoded.without_review_text();
                        (erased.schema_version(), erased.to_payload(), true)
                    }
                    _ => as_stored,
                },
                None => (event.schema_version, serde_json::Value::Null, true),
            },
            "ReviewSummarySet" => match decode(event) {
                Some(BookEvent::ReviewSummarySet { provenance, .. })
                    if self
                        .last_deletion
                        .is_some_and(|deleted| deleted > provenance.covers_version) =>
                {
                    // The facts of the summary stay; its text, possibly quoting, goes.
                    let mut payload = event.payload.clone();
                    if let Some(summary) = payload.get_mut("summary") {
                        *summary = serde_json::Value::String(String::new());
                    }
                    (event.schema_version, payload, true)
                }
                Some(_) => as_stored,
                None => (event.schema_version, serde_json::Value::Null, true),
            },
            _ => as_stored,
        }
    }
}

/// A stored book event, decoded; `None` if it cannot be.
fn decode(event: &quire_store::RecordedEvent) -> Option<BookEvent> {
    BookEvent::from_stored(&event.event_type, event.schema_version, &event.payload).ok()
}

//! `/books/{id}/text`: a book's full text. The bytes go to the text store (content-addressed,
//! outside the event log); the book's stream records the hash, size and source (`BookTextSet`),
//! which makes the book summary due again, now made from the text.
//!
//! A `PUT` stores the text first and then records it: once the reply is 2xx both are durable. A
//! crash in between leaves a stored text no event refers to, which the next identical upload finds.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quire_actors::Command;
use quire_domain::book::{BookCommand, BookText, MAX_TEXT_SOURCE_CHARS, valid_text_source};
use quire_domain::ids::BookId;
use serde::Deserialize;

use super::books::missing_book;
use super::{dispatch, read_your_writes, write_headers};
use crate::AppState;
use crate::dto::{AttachedText, BookTextDto};
use crate::error::{ApiError, Problem};
use crate::extract::{
    PathId, Query, User, command_id, idempotency_key, is_plain_text, not_utf8, read_limited,
};

/// `PUT /books/{id}/text` options.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TextSource {
    /// Where the text came from (`upload` when absent), e.g. `gutenberg:84`: 1 to 200 characters
    /// on one line.
    source: Option<String>,
}

/// The text store, or 503 on a node without one.
fn store(state: &AppState) -> Result<&quire_texts::TextStore, ApiError> {
    state.texts.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "texts_unavailable",
            "this node keeps no book texts ([texts] is not set up)",
            30,
        )
    })
}

/// The 503 for a text store that failed; the cause goes to the log, not to the client.
fn store_failed(context: &str, error: &quire_texts::TextStoreError) -> ApiError {
    tracing::error!(error = %error, "{context}");
    ApiError::unavailable(
        "text_store_unavailable",
        "the text store could not be reached; try again",
        5,
    )
}

/// Attaches a full text to a book (admins): the body is the text itself, `text/plain` UTF-8, up to
/// `texts.max_bytes`. Attaching the text the book already has is a no-op.
#[utoipa::path(
    put, path = "/books/{id}/text", tag = "books",
    params(
        ("id" = String, Path, format = Uuid),
        TextSource,
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the same response and write nothing new"),
    ),
    request_body(content = String, content_type = "text/plain", description = "The book's full text, UTF-8"),
    responses(
        (status = 200, description = "Attached; `Consistency-Token` is the log position of the write", body = AttachedText),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.books.text.put", skip_all, fields(book_id = %book_id))]
pub(crate) async fn put(
    State(state): State<AppState>,
    PathId(book_id): PathId<BookId>,
    User(principal): User,
    Query(params): Query<TextSource>,
    request: Request,
) -> Result<Response, ApiError> {
    // Refused before a byte is read or stored: only the catalogue's editors attach texts.
    if !principal.is_privileged() {
        return Err(ApiError::forbidden("only admins may attach texts"));
    }
    let texts = store(&state)?;
    let headers = request.headers().clone();
    let key = idempotency_key(&headers)?;
    if !is_plain_text(&headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the text itself as text/plain (UTF-8)",
        ));
    }
    let source = params.source.unwrap_or_else(|| "upload".to_owned());
    if !valid_text_source(&source) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "source must be 1 to {MAX_TEXT_SOURCE_CHARS} characters on one line, without \
                 surrounding spaces"
            ),
        ));
    }
    // A missing or removed book is told before its text is stored.
    if state.read.book(book_id).await?.is_none() {
        return Err(missing_book(&state, book_id).await);
    }
    let bytes = read_limited(&headers, request.into_body(), state.text_limit, "the text").await?;
    let chars = {
        let text = std::str::from_utf8(&bytes).map_err(|e| not_utf8("text", e))?;
        if text.trim().is_empty() {
            return Err(ApiError::invalid_fields(vec![crate::error::FieldError {
                field: "text".into(),
                message: "the text must not be empty".into(),
            }]));
        }
        text.chars().count() as u64
    };
    let stored = texts
        .put(bytes.into())
        .await
        .map_err(|e| store_failed("storing a book text", &e))?;
    let text = BookText {
        sha256: stored.sha256,
        bytes: stored.bytes,
        source,
    };
    let outcome = dispatch(
        &state,
        &principal,
        command_id(&principal, "PUT /books/{id}/text", key.as_deref()),
        None,
        Command::Book {
            book_id,
            command: BookCommand::SetText { text: text.clone() },
        },
    )
    .await?;
    tracing::info!(sha256 = %text.sha256, bytes = text.bytes, written = stored.written, "book text attached");
    Ok((
        StatusCode::OK,
        write_headers(&outcome, None),
        axum::Json(AttachedText {
            book_id,
            text: BookTextDto::from(text),
            chars,
            version: outcome.stream_version,
        }),
    )
        .into_response())
}

/// A book's full text (admins), `text/plain; charset=utf-8`; its `ETag` is the text's SHA-256.
#[utoipa::path(
    get, path = "/books/{id}/text", tag = "books",
    params(("id" = String, Path, format = Uuid), ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, description = "The text", body = String, content_type = "text/plain"),
        (status = 304, description = "Unchanged since the `If-None-Match` hash"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book, or it has no text", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.books.text.get", skip_all, fields(book_id = %book_id))]
pub(crate) async fn get(
    State(state): State<AppState>,
    PathId(book_id): PathId<BookId>,
    User(principal): User,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Texts may be under copyright: attaching one is not publishing it.
    if !principal.is_privileged() {
        return Err(ApiError::forbidden(
            "only admins may read books' full texts",
        ));
    }
    let texts = store(&state)?;
    read_your_writes(&state, &headers).await?;
    let Some(book) = state.read.book(book_id).await? else {
        return Err(missing_book(&state, book_id).await);
    };
    let Some(text) = book.text else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_text",
            "the book has no full text",
        ));
    };
    let tag = format!("\"{}\"", text.sha256);
    let mut out = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        out.insert(header::ETAG, value);
    }
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    let bytes = texts
        .get(&text.sha256)
        .await
        .map_err(|e| store_failed("reading a book text", &e))?
        .ok_or_else(|| {
            tracing::error!(sha256 = %text.sha256, location = %texts.location(), "a recorded book text is missing from the text store");
            ApiError::unavailable(
                "text_missing",
                "the book's text is recorded but not in the text store",
                60,
            )
        })?;
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok((out, bytes).into_response())
}

/// Detaches a book's full text (admins). The stored bytes stay in the text store, where another
/// book may share them.
#[utoipa::path(
    delete, path = "/books/{id}/text", tag = "books",
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 204, description = "Detached"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book, or it has no text", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.books.text.delete", skip_all, fields(book_id = %book_id))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    PathId(book_id): PathId<BookId>,
    User(principal): User,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let outcome = dispatch(
        &state,
        &principal,
        command_id(&principal, "DELETE /books/{id}/text", key.as_deref()),
        None,
        Command::Book {
            book_id,
            command: BookCommand::RemoveText,
        },
    )
    .await?;
    Ok((StatusCode::NO_CONTENT, write_headers(&outcome, None)).into_response())
}

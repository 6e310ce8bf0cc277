//! The routes, one module per resource, and what their handlers share: dispatching commands,
//! waiting for read models, and the headers of write responses.

pub(crate) mod auth;
pub(crate) mod books;
pub(crate) mod club;
pub(crate) mod club_page;
pub(crate) mod lending;
pub(crate) mod recommendations;
pub(crate) mod reviews;
pub(crate) mod search;
pub(crate) mod social;
pub(crate) mod status;
pub(crate) mod store;
pub(crate) mod summaries;
pub(crate) mod texts;
pub(crate) mod users;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quire_actors::lending::Origin;
use quire_actors::{Command, CommandEnvelope, CommandOutcome};
use quire_domain::Principal;
use quire_domain::ids::BookId;
use quire_projections::{PageRequest, ProjectionName};
use serde::Serialize;
use uuid::Uuid;

use crate::AppState;
use crate::dto::Accepted;
use crate::error::ApiError;
use crate::extract::{CONSISTENCY_TOKEN, command_id, consistency_token, etag, idempotency_key};

/// The default page size.
const DEFAULT_LIMIT: u32 = 20;
/// The largest page size.
const MAX_LIMIT: u32 = 100;

/// Sends one command through the bus.
pub(crate) async fn dispatch(
    state: &AppState,
    principal: &Principal,
    command_id: Uuid,
    expected_version: Option<u64>,
    command: Command,
) -> Result<CommandOutcome, ApiError> {
    let mut envelope = CommandEnvelope::new(principal.clone(), command).with_command_id(command_id);
    envelope.expected_version = expected_version;
    envelope.traceparent = crate::trace::current();
    Ok(state.bus.dispatch(envelope).await?)
}

/// Sends one command through the bus, its id derived from the caller, the route and the request's
/// `Idempotency-Key` (no expected version).
pub(crate) async fn dispatch_keyed(
    state: &AppState,
    caller: &Principal,
    route: &str,
    headers: &HeaderMap,
    command: Command,
) -> Result<CommandOutcome, ApiError> {
    let key = idempotency_key(headers)?;
    dispatch(
        state,
        caller,
        command_id(caller, route, key.as_deref()),
        None,
        command,
    )
    .await
}

/// The member whose page a `user_id` query parameter names: the caller's own by default; only
/// admins may name someone else (`forbidden` is the message for a member who does).
pub(crate) fn target_user(
    caller: &Principal,
    user_id: Option<&str>,
    forbidden: &str,
) -> Result<quire_domain::ids::UserId, ApiError> {
    let user = match user_id {
        None => caller
            .user_id
            .ok_or_else(|| ApiError::bad_request("invalid_query", "user_id is required"))?,
        Some(text) => text
            .parse::<quire_domain::ids::UserId>()
            .map_err(|_| ApiError::bad_request("invalid_query", "user_id must be a UUID"))?,
    };
    if caller.user_id != Some(user) && !caller.is_privileged() {
        return Err(ApiError::forbidden(forbidden));
    }
    Ok(user)
}

/// Waits for the read model a write's answer comes from to reflect it (the others may lag: a
/// later read presenting the consistency token waits for all). `Ok(false)` when it did not within
/// the write timeout: the write is durable all the same.
pub(crate) async fn settle(
    state: &AppState,
    projection: ProjectionName,
    position: u64,
) -> Result<bool, ApiError> {
    match state
        .read
        .wait_for_projections(&[projection], position, state.config.write_wait)
        .await
    {
        Ok(()) => Ok(true),
        Err(quire_projections::WaitError::Timeout { reached }) => {
            tracing::warn!(
                projection = projection.as_str(),
                position,
                reached,
                "a read model lags behind a write"
            );
            Ok(false)
        }
        Err(other) => Err(other.into()),
    }
}

/// Honours a read's consistency token: waits until the read models have caught up with it.
pub(crate) async fn read_your_writes(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if let Some(position) = issued_token(state, headers).await? {
        state
            .read
            .wait_for(position, state.config.consistency_timeout)
            .await?;
    }
    Ok(())
}

/// The request's consistency token, if it has one this deployment could have issued (one
/// beyond the log's head is a 400).
pub(crate) async fn issued_token(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<u64>, ApiError> {
    if let Some(position) = consistency_token(headers)? {
        // A token beyond the log's head was never issued by this deployment: waiting cannot help.
        // The head this process has seen settles almost every token without a query; only one
        // beyond it (maybe written through another node a moment ago) asks the store.
        let seen = *state.store.head_watch().borrow();
        if position > seen {
            let head = state
                .store
                .head()
                .await
                .map_err(|e| ApiError::store("reading the event store head", &e))?;
            if position > head {
                return Err(ApiError::bad_request(
                    "invalid_consistency_token",
                    format!(
                        "the Consistency-Token {position} is ahead of the event log (at {head})"
                    ),
                ));
            }
        }
        return Ok(Some(position));
    }
    Ok(None)
}

/// The headers of a write's response: the entity version and the consistency token.
pub(crate) fn write_headers(outcome: &CommandOutcome, location: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&etag(outcome.stream_version)) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(&CONSISTENCY_TOKEN, HeaderValue::from(outcome.last_position));
    if let Some(location) = location
        && let Ok(value) = HeaderValue::from_str(location)
    {
        headers.insert(header::LOCATION, value);
    }
    headers
}

/// A write whose read model lagged: 202 with what is known, the write being durable.
pub(crate) fn accepted(id: String, outcome: &CommandOutcome, location: Option<&str>) -> Response {
    (
        StatusCode::ACCEPTED,
        write_headers(outcome, location),
        axum::Json(Accepted {
            id,
            status: "accepted",
            version: outcome.stream_version,
            consistency_token: outcome.last_position,
        }),
    )
        .into_response()
}

/// Answers a write with what `read_back` reads from `projection` once that read model shows the
/// write (`status`, the write headers and the body), or 202 with what is known when it lagged
/// (`read_back` is then not run).
pub(crate) async fn settled_reply<T: Serialize>(
    state: &AppState,
    projection: ProjectionName,
    id: String,
    location: Option<&str>,
    outcome: &CommandOutcome,
    status: StatusCode,
    read_back: impl Future<Output = Result<T, ApiError>>,
) -> Result<Response, ApiError> {
    if !settle(state, projection, outcome.last_position).await? {
        return Ok(accepted(id, outcome, location));
    }
    let body = read_back.await?;
    Ok((status, write_headers(outcome, location), axum::Json(body)).into_response())
}

/// The request's origin for a process of `quire_actors` (lending, orders): its command id from
/// the caller, the route and the `Idempotency-Key`, if any.
pub(crate) fn origin(
    caller: &Principal,
    route: &str,
    headers: &HeaderMap,
) -> Result<Origin, ApiError> {
    let key = idempotency_key(headers)?;
    Ok(Origin {
        principal: caller.clone(),
        command_id: command_id(caller, route, key.as_deref()),
        traceparent: crate::trace::current(),
        keyed: key.is_some(),
    })
}

/// An id the request mints: derived from the command id under an `Idempotency-Key` (so a retry
/// names the same loan, hold or order), fresh otherwise.
pub(crate) fn minted(origin: &Origin, what: &str) -> Option<Uuid> {
    origin
        .keyed
        .then(|| Uuid::new_v5(&origin.command_id, what.as_bytes()))
}

/// Only staff (admins) may go on.
pub(crate) fn ensure_staff(caller: &Principal) -> Result<(), ApiError> {
    if caller.is_privileged() {
        Ok(())
    } else {
        Err(ApiError::forbidden("only staff (admins) can do this"))
    }
}

/// A book in the catalogue (it exists and was not removed): one that may lend or sell.
pub(crate) async fn ensure_book(state: &AppState, book_id: BookId) -> Result<(), ApiError> {
    match state.read.book(book_id).await? {
        Some(_) => Ok(()),
        None => Err(books::missing_book(state, book_id).await),
    }
}

/// A page request from query parameters.
pub(crate) fn page(limit: Option<u32>, cursor: Option<String>) -> Result<PageRequest, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    Ok(PageRequest { cursor, limit })
}

/// A `Link: <…>; rel="next"` header for the next page, keeping the other query parameters
/// (`application/x-www-form-urlencoded`, as the `Query` extractor reads them).
pub(crate) fn next_link(path: &str, query: &[(&str, String)], next: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(cursor) = next {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in query.iter().filter(|(k, _)| *k != "cursor") {
            pairs.append_pair(k, v);
        }
        pairs.append_pair("cursor", cursor);
        let link = format!("<{path}?{}>; rel=\"next\"", pairs.finish());
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.insert(header::LINK, value);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_encode_the_query_and_drop_the_old_cursor() {
        let query = [
            ("genres", "science fiction,sci-fi & more".to_string()),
            ("cursor", "old".to_string()),
            ("limit", "5".to_string()),
        ];
        let headers = next_link("/books", &query, Some("eyJzIjoi-_"));
        let link = headers[header::LINK].to_str().unwrap();
        assert_eq!(
            link,
            "</books?genres=science+fiction%2Csci-fi+%26+more&limit=5&cursor=eyJzIjoi-_>; \
             rel=\"next\""
        );
        assert!(next_link("/books", &query, None).is_empty());
    }
}

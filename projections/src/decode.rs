//! Decoding the global log's events for the handlers: which entity a stream belongs to, and the
//! domain event a stored one stands for (upcast through the domain). A failure is a
//! [`ReadModelError::Decode`] naming the event, which stops its projection right before it.

use std::borrow::Cow;

use quire_domain::DomainEvent;
use quire_domain::book::BookEvent;
use quire_domain::club::ClubEvent;
use quire_domain::ids::{BookId, ClubId, ThreadId, UserId};
use quire_domain::lending::LendingEvent;
use quire_domain::thread::ThreadEvent;
use quire_domain::user::UserEvent;
use quire_store::RecordedEvent;
use serde_json::Value;

use crate::ReadModelError;

/// The event types of a book stream that are about one of its reviews.
pub(crate) const REVIEW_TYPES: [&str; 3] = ["ReviewPosted", "ReviewEdited", "ReviewDeleted"];

fn decode_error(event: &RecordedEvent, reason: impl Into<String>) -> ReadModelError {
    ReadModelError::Decode {
        position: event.position,
        stream_id: event.stream_id.clone(),
        event_type: event.event_type.clone(),
        reason: reason.into(),
    }
}

/// The book a `book-…` stream belongs to, or `None` for other streams.
pub(crate) fn book_of(event: &RecordedEvent) -> Result<Option<String>, ReadModelError> {
    let Some(id) = event.stream_id.strip_prefix("book-") else {
        return Ok(None);
    };
    let id: BookId = id
        .parse()
        .map_err(|e: quire_domain::ids::IdParseError| decode_error(event, e.to_string()))?;
    Ok(Some(id.to_string()))
}

/// The user a `user-…` stream belongs to, or `None` for other streams.
pub(crate) fn user_of(event: &RecordedEvent) -> Result<Option<String>, ReadModelError> {
    let Some(id) = event.stream_id.strip_prefix("user-") else {
        return Ok(None);
    };
    let id: UserId = id
        .parse()
        .map_err(|e: quire_domain::ids::IdParseError| decode_error(event, e.to_string()))?;
    Ok(Some(id.to_string()))
}

/// The book a `lending-…` stream (the book's circulation) belongs to, or `None` for other streams.
pub(crate) fn lending_book_of(event: &RecordedEvent) -> Result<Option<String>, ReadModelError> {
    let Some(id) = event.stream_id.strip_prefix("lending-") else {
        return Ok(None);
    };
    let id: BookId = id
        .parse()
        .map_err(|e: quire_domain::ids::IdParseError| decode_error(event, e.to_string()))?;
    Ok(Some(id.to_string()))
}

/// Decodes a book event, upcasting through the domain; a `BookAdded` v1 payload without a
/// `book_id` gets it from the stream id first, as the seed design kept it only there.
pub(crate) fn decode_book(
    event: &RecordedEvent,
    book_id: &str,
) -> Result<BookEvent, ReadModelError> {
    let mut payload = Cow::Borrowed(&event.payload);
    if event.event_type == "BookAdded"
        && event.schema_version == 1
        && event.payload.get("book_id").is_none_or(Value::is_null)
        && let Value::Object(map) = payload.to_mut()
    {
        map.insert("book_id".into(), Value::String(book_id.to_string()));
    }
    BookEvent::from_stored(&event.event_type, event.schema_version, &payload)
        .map_err(|e| decode_error(event, e.to_string()))
}

/// Decodes a user event, upcasting through the domain.
pub(crate) fn decode_user(event: &RecordedEvent) -> Result<UserEvent, ReadModelError> {
    UserEvent::from_stored(&event.event_type, event.schema_version, &event.payload)
        .map_err(|e| decode_error(event, e.to_string()))
}

/// Decodes a lending event, upcasting through the domain.
pub(crate) fn decode_lending(event: &RecordedEvent) -> Result<LendingEvent, ReadModelError> {
    LendingEvent::from_stored(&event.event_type, event.schema_version, &event.payload)
        .map_err(|e| decode_error(event, e.to_string()))
}

/// The club a `club-…` stream belongs to, or `None` for other streams.
pub(crate) fn club_of(event: &RecordedEvent) -> Result<Option<String>, ReadModelError> {
    let Some(id) = event.stream_id.strip_prefix("club-") else {
        return Ok(None);
    };
    let id: ClubId = id
        .parse()
        .map_err(|e: quire_domain::ids::IdParseError| decode_error(event, e.to_string()))?;
    Ok(Some(id.to_string()))
}

/// The thread a `thread-…` stream belongs to, or `None` for other streams.
pub(crate) fn thread_of(event: &RecordedEvent) -> Result<Option<String>, ReadModelError> {
    let Some(id) = event.stream_id.strip_prefix("thread-") else {
        return Ok(None);
    };
    let id: ThreadId = id
        .parse()
        .map_err(|e: quire_domain::ids::IdParseError| decode_error(event, e.to_string()))?;
    Ok(Some(id.to_string()))
}

/// Decodes a club event, upcasting through the domain.
pub(crate) fn decode_club(event: &RecordedEvent) -> Result<ClubEvent, ReadModelError> {
    ClubEvent::from_stored(&event.event_type, event.schema_version, &event.payload)
        .map_err(|e| decode_error(event, e.to_string()))
}

/// Decodes a thread event, upcasting through the domain.
pub(crate) fn decode_thread(event: &RecordedEvent) -> Result<ThreadEvent, ReadModelError> {
    ThreadEvent::from_stored(&event.event_type, event.schema_version, &event.payload)
        .map_err(|e| decode_error(event, e.to_string()))
}

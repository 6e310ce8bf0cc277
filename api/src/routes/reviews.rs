//! `/books/{id}/reviews` and `/books/{id}/summary`: reviews, ratings and their aggregate.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use quire_actors::Command;
use quire_domain::book::BookCommand;
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_domain::user::User as Member;
use quire_domain::values::{Rating, ReviewText};
use quire_domain::{Aggregate, DomainEvent, Principal, Role};
use quire_projections::ProjectionName;
use uuid::Uuid;

use super::books::missing_book;
use super::{accepted, dispatch, next_link, page, read_your_writes, settle, write_headers};
use crate::AppState;
use crate::dto::{
    NewReview, PageParams, ProvenanceDto, RatingDto, ReviewChanges, ReviewDto, ReviewList,
    SummaryDto, rfc3339,
};
use crate::error::{ApiError, Problem, Validation};
use crate::extract::{Json, PathId, Query, User, command_id, idempotency_key};

/// Posts the caller's review of a book: one per member per book.
#[utoipa::path(
    post, path = "/books/{id}/reviews", tag = "reviews",
    request_body = NewReview,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = ReviewDto),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book, or (admins) no such user", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The book was removed, or (admins) the user deactivated", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The member already reviewed this book", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.reviews.create", skip_all, fields(book_id = %book_id))]
pub(crate) async fn create(
    State(state): State<AppState>,
    User(caller): User,
    PathId(book_id): PathId<BookId>,
    headers: HeaderMap,
    Json(body): Json<NewReview>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let mut v = Validation::default();
    let rating = match u8::try_from(body.rating) {
        Ok(stars) => v.field("rating", Rating::parse(stars)),
        Err(_) => {
            v.fail(
                "rating",
                "rating must be between 1 and 5, got out-of-range number",
            );
            None
        }
    };
    let text = v.field(
        "review_text",
        ReviewText::parse(body.review_text.unwrap_or_default()),
    );
    v.finish()?;
    let (Some(rating), Some(text)) = (rating, text) else {
        unreachable!("validation passed")
    };
    // Members review as themselves; an admin may record a review on a member's behalf.
    let principal = match body.user_id {
        None => caller.clone(),
        Some(user_id) if caller.is_user(user_id) => caller.clone(),
        Some(user_id) if caller.role == Role::Admin => {
            // An admin who just deactivated the user and presents that write's token is answered
            // from read models that show it.
            read_your_writes(&state, &headers).await?;
            ensure_active_user(&state, user_id).await?;
            Principal::member(user_id)
        }
        Some(_) => {
            return Err(ApiError::forbidden(
                "members can only post their own reviews",
            ));
        }
    };
    let command_id = command_id(
        &caller,
        &format!("POST /books/{book_id}/reviews"),
        key.as_deref(),
    );
    let review_id = match key {
        Some(_) => ReviewId::from_uuid(Uuid::new_v5(&command_id, b"review")),
        None => ReviewId::new(),
    };
    let review_text = text.as_str().to_owned();
    let outcome = dispatch(
        &state,
        &principal,
        command_id,
        None,
        Command::Book {
            book_id,
            command: BookCommand::PostReview {
                review_id,
                rating,
                text,
            },
        },
    )
    .await?;
    let location = format!("/books/{book_id}/reviews/{review_id}");
    // The answer waits for the reviews read model, so a reader without the token sees the review
    // too (the documented behaviour), but is made from what was recorded rather than read back:
    // a review's row is exactly the event (its times are the event's), and the read was one more
    // database round trip per review.
    if !settle(&state, ProjectionName::Reviews, outcome.last_position).await? {
        return Ok(accepted(review_id.to_string(), &outcome, Some(&location)));
    }
    let review = match (principal.user_id, outcome.recorded_at) {
        (Some(member), at) if at > 0 => ReviewDto {
            id: review_id,
            book_id,
            user_id: member,
            rating: rating.value(),
            review_text,
            created_at: rfc3339(at),
            updated_at: rfc3339(at),
        },
        // An outcome from a node that does not report the time: read the row.
        _ => state
            .read
            .review(book_id, review_id)
            .await?
            .map(ReviewDto::from)
            .ok_or_else(|| {
                ApiError::new(StatusCode::GONE, "review_deleted", "review was deleted")
            })?,
    };
    Ok((
        StatusCode::CREATED,
        write_headers(&outcome, Some(&location)),
        axum::Json(review),
    )
        .into_response())
}

/// Refuses a review on behalf of a user who never registered (404) or was deactivated (410),
/// the rule the user's own aggregate applies to their interactions. A book's stream cannot see
/// users, so it is checked here: in the users read model, or, when that has not seen the user yet
/// (registered a moment ago), in the user's stream. A deactivation racing the post can still land
/// just after the check, as it could just after the post.
async fn ensure_active_user(state: &AppState, user_id: UserId) -> Result<(), ApiError> {
    let active = match state.read.user_for_check(user_id).await? {
        Some(user) => Some(user.active),
        None => {
            let stored = quire_store::read_stream_to_end(&*state.store, &user_id.stream_id(), 0)
                .await
                .map_err(|e| ApiError::internal("reading a user stream", &e))?;
            let mut user = Member::default();
            for event in &stored {
                let event = <Member as Aggregate>::Event::from_stored(
                    &event.event_type,
                    event.schema_version,
                    &event.payload,
                )
                .map_err(|e| ApiError::internal("decoding a user event", &e))?;
                user.apply(&event);
            }
            user.exists().then(|| user.is_active())
        }
    };
    match active {
        Some(true) => Ok(()),
        Some(false) => Err(ApiError::new(
            StatusCode::GONE,
            "user_deactivated",
            "user has been deactivated",
        )),
        None => Err(ApiError::not_found("user")),
    }
}

/// The reviews of a book, newest first.
#[utoipa::path(
    get, path = "/books/{id}/reviews", tag = "reviews",
    params(("id" = String, Path, format = Uuid), PageParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = ReviewList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.reviews.list", skip_all, fields(book_id = %book_id))]
pub(crate) async fn list(
    State(state): State<AppState>,
    PathId(book_id): PathId<BookId>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let request = page(params.limit, params.cursor)?;
    if state.read.book(book_id).await?.is_none() {
        return Err(missing_book(&state, book_id).await);
    }
    let result = state.read.reviews(book_id, &request).await?;
    let link = next_link(
        &format!("/books/{book_id}/reviews"),
        &[("limit", request.limit.to_string())],
        result.next_cursor.as_deref(),
    );
    Ok((
        link,
        axum::Json(ReviewList {
            reviews: result.items.into_iter().map(ReviewDto::from).collect(),
            next_cursor: result.next_cursor,
        }),
    )
        .into_response())
}

/// The book's summary and aggregated rating (average, count, distribution).
#[utoipa::path(
    get, path = "/books/{id}/summary", tag = "reviews",
    params(("id" = String, Path, format = Uuid), ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = SummaryDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.books.summary", skip_all, fields(book_id = %book_id))]
pub(crate) async fn summary(
    State(state): State<AppState>,
    PathId(book_id): PathId<BookId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let Some(book) = state.read.book(book_id).await? else {
        return Err(missing_book(&state, book_id).await);
    };
    let stats = state.read.rating_stats(book_id).await?;
    let rating = RatingDto::from(&stats);
    let summaries = state.read.summaries(book_id).await?;
    // The summary text comes from the same row read as its provenance: the book read above is
    // an earlier read, and a summary projected between the two would pair new provenance with
    // old text.
    let (
        summary,
        summary_source,
        summary_provenance,
        summary_stale,
        review_summary,
        review_summary_provenance,
        review_summary_stale,
    ) = match summaries {
        Some(s) => (
            s.summary,
            s.summary_source,
            s.summary_provenance.map(ProvenanceDto::from),
            s.summary_stale,
            s.review_summary,
            s.review_summary_provenance.map(ProvenanceDto::from),
            s.review_summary_stale,
        ),
        None => (
            book.summary,
            book.summary_source,
            None,
            false,
            None,
            None,
            false,
        ),
    };
    // A review summary made before a review was deleted may quote it (an extractive one copies
    // sentences): until the summary worker makes a new one, it is not shown.
    let (review_summary, review_summary_stale) = match &review_summary_provenance {
        Some(p) if review_summary.is_some() => {
            let last_deletion = state.read.last_review_deletion(book_id).await?;
            if last_deletion.is_some_and(|deleted| deleted > p.covers_version) {
                (None, true)
            } else {
                (review_summary, review_summary_stale)
            }
        }
        _ => (review_summary, review_summary_stale),
    };
    Ok(axum::Json(SummaryDto {
        book_id,
        title: book.title,
        summary,
        summary_source,
        average_rating: rating.average,
        review_count: rating.count,
        rating,
        summary_provenance,
        summary_stale,
        review_summary,
        review_summary_provenance,
        review_summary_stale,
    })
    .into_response())
}

/// One review.
#[utoipa::path(
    get, path = "/books/{id}/reviews/{review_id}", tag = "reviews",
    params(("id" = String, Path, format = Uuid), ("review_id" = String, Path, format = Uuid), ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = ReviewDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The review was deleted", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.reviews.get", skip_all)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path((book_id, review_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (book_id, review_id) = parse_ids(&book_id, &review_id)?;
    read_your_writes(&state, &headers).await?;
    let Some(review) = state.read.review(book_id, review_id).await? else {
        let deleted = state.read.deleted_reviews(book_id, &[review_id]).await?;
        return Err(if deleted.contains(&review_id) {
            ApiError::new(StatusCode::GONE, "review_deleted", "review was deleted")
        } else {
            ApiError::not_found("review")
        });
    };
    Ok(axum::Json(ReviewDto::from(review)).into_response())
}

fn parse_ids(book_id: &str, review_id: &str) -> Result<(BookId, ReviewId), ApiError> {
    let book_id = book_id
        .parse::<BookId>()
        .map_err(|_| ApiError::not_found("book"))?;
    let review_id = review_id
        .parse::<ReviewId>()
        .map_err(|_| ApiError::not_found("review"))?;
    Ok((book_id, review_id))
}

/// Changes the caller's own review: absent fields stay.
#[utoipa::path(
    put, path = "/books/{id}/reviews/{review_id}", tag = "reviews",
    request_body = ReviewChanges,
    params(("id" = String, Path, format = Uuid), ("review_id" = String, Path, format = Uuid)),
    responses(
        (status = 200, body = ReviewDto),
        (status = 403, description = "Not the review's author", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.reviews.update", skip_all)]
pub(crate) async fn update(
    State(state): State<AppState>,
    User(caller): User,
    Path((book_id, review_id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<ReviewChanges>,
) -> Result<Response, ApiError> {
    let (book_id, review_id) = parse_ids(&book_id, &review_id)?;
    let mut v = Validation::default();
    let rating = match body.rating.map(u8::try_from) {
        None => None,
        Some(Ok(stars)) => v.field("rating", Rating::parse(stars)),
        Some(Err(_)) => {
            v.fail("rating", "rating must be between 1 and 5");
            None
        }
    };
    let text = body
        .review_text
        .and_then(|t| v.field("review_text", ReviewText::parse(t)));
    v.finish()?;
    let key = idempotency_key(&headers)?;
    let command_id = command_id(
        &caller,
        &format!("PUT /books/{book_id}/reviews/{review_id}"),
        key.as_deref(),
    );
    let outcome = dispatch(
        &state,
        &caller,
        command_id,
        None,
        Command::Book {
            book_id,
            command: BookCommand::EditReview {
                review_id,
                rating,
                text,
            },
        },
    )
    .await?;
    if !settle(&state, ProjectionName::Reviews, outcome.last_position).await? {
        return Ok(accepted(review_id.to_string(), &outcome, None));
    }
    let review = state
        .read
        .review(book_id, review_id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::GONE, "review_deleted", "review was deleted"))?;
    Ok((
        write_headers(&outcome, None),
        axum::Json(ReviewDto::from(review)),
    )
        .into_response())
}

/// Deletes a review (its author or an admin).
#[utoipa::path(
    delete, path = "/books/{id}/reviews/{review_id}", tag = "reviews",
    params(("id" = String, Path, format = Uuid), ("review_id" = String, Path, format = Uuid)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.reviews.delete", skip_all)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    User(caller): User,
    Path((book_id, review_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (book_id, review_id) = parse_ids(&book_id, &review_id)?;
    let key = idempotency_key(&headers)?;
    let command_id = command_id(
        &caller,
        &format!("DELETE /books/{book_id}/reviews/{review_id}"),
        key.as_deref(),
    );
    let outcome = dispatch(
        &state,
        &caller,
        command_id,
        None,
        Command::Book {
            book_id,
            command: BookCommand::DeleteReview { review_id },
        },
    )
    .await?;
    settle(&state, ProjectionName::Reviews, outcome.last_position).await?;
    Ok((StatusCode::NO_CONTENT, write_headers(&outcome, None)).into_response())
}

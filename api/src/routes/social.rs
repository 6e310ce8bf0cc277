//! The social side: following members (`/users/{id}/following/…`, and the `follow`/`unfollow`
//! paths of other designs), followers and following lists, activity privacy, and the caller's
//! feed (`/feed`). Social recommendations are `GET /recommendations?strategy=social`
//! (`routes::recommendations`).
//!
//! Follows and privacy are commands to the member's own `User` entity, answered once the `social`
//! read model shows them; whether the followee exists is checked here, in the users read model
//! (another stream). Privacy is applied when reading: a private member's activity is left out of
//! every feed.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use quire_actors::{Command, CommandOutcome};
use quire_domain::Principal;
use quire_domain::ids::UserId;
use quire_domain::user::UserCommand;
use quire_projections::{ActivityRow, FollowRow, ProjectionName};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    accepted, dispatch_keyed, next_link, page, read_your_writes, settle, target_user, write_headers,
};
use crate::AppState;
use crate::dto::{PageParams, rfc3339};
use crate::error::{ApiError, Problem};
use crate::extract::{Json, PathId, Query, User};

/// Whom to follow or unfollow, for `POST /users/{id}/follow` and `/unfollow`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FollowRequest {
    /// The member to follow (or stop following).
    #[schema(value_type = String, format = Uuid)]
    pub user_id: String,
}

/// A follow: who follows whom, since when.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FollowDto {
    #[schema(value_type = String, format = Uuid)]
    pub follower_id: UserId,
    #[schema(value_type = String, format = Uuid)]
    pub followee_id: UserId,
    /// The followee's name.
    pub name: Option<String>,
    pub username: Option<String>,
    /// RFC 3339.
    pub since: String,
}

/// A member in a followers or following list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FollowListItem {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    pub name: Option<String>,
    pub username: Option<String>,
    /// When the follow was recorded (RFC 3339).
    pub since: String,
}

impl From<FollowRow> for FollowListItem {
    fn from(row: FollowRow) -> Self {
        Self {
            user_id: row.user_id,
            name: row.name,
            username: row.username,
            since: rfc3339(row.since),
        }
    }
}

/// A page of followers or followees, most recent follow first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FollowList {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    pub items: Vec<FollowListItem>,
    pub next_cursor: Option<String>,
}

/// Whether a member's activity is private.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PrivacyRequest {
    /// `true`: the member's reviews, ratings and likes stay out of feeds and social
    /// recommendations.
    pub activity_private: bool,
}

/// A member's privacy setting.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PrivacyDto {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    pub activity_private: bool,
}

/// `GET /feed` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FeedParams {
    /// Whose feed: the caller's by default; only admins may read someone else's.
    pub user_id: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// What a feed item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ActivityType {
    Review,
    Rating,
    Like,
}

/// One item of a feed: a review, a rating or a like by someone the member follows.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FeedItem {
    #[serde(rename = "type")]
    pub kind: ActivityType,
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    pub user_name: Option<String>,
    #[schema(value_type = String, format = Uuid)]
    pub book_id: quire_domain::ids::BookId,
    pub book_title: Option<String>,
    /// The stars of a review or a rating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub review_id: Option<quire_domain::ids::ReviewId>,
    /// The start of the review's text (up to 200 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_text: Option<String>,
    /// When it happened (RFC 3339).
    pub at: String,
    /// Its position in the event log: the feed is newest first by it.
    pub position: i64,
}

impl From<ActivityRow> for FeedItem {
    fn from(row: ActivityRow) -> Self {
        Self {
            kind: match row.kind {
                quire_projections::ActivityKind::Review => ActivityType::Review,
                quire_projections::ActivityKind::Rating => ActivityType::Rating,
                quire_projections::ActivityKind::Like => ActivityType::Like,
            },
            user_id: row.user_id,
            user_name: row.user_name.or(row.username),
            book_id: row.book_id,
            book_title: row.book_title,
            rating: row.rating,
            review_id: row.review_id,
            review_text: row.excerpt,
            at: rfc3339(row.at),
            position: row.position,
        }
    }
}

/// A page of a member's feed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Feed {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    pub items: Vec<FeedItem>,
    pub next_cursor: Option<String>,
}

/// The member whose account a path names, if the caller may act on it (themself or an admin).
fn own_account(caller: &Principal, user: UserId) -> Result<(), ApiError> {
    if caller.is_user_or_privileged(user) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "members follow, unfollow and change privacy for themselves only",
        ))
    }
}

fn followee_id(raw: &str) -> Result<UserId, ApiError> {
    raw.parse().map_err(|_| user_not_found())
}

fn user_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "user_not_found", "user not found")
}

/// Checks that a user exists in the users read model (deactivated members count as gone).
async fn existing_user(state: &AppState, user: UserId) -> Result<(), ApiError> {
    match state.read.user(user).await? {
        Some(view) if view.active => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::GONE,
            "user_deactivated",
            "the user has been deactivated",
        )),
        None => Err(user_not_found()),
    }
}

async fn send(
    state: &AppState,
    caller: &Principal,
    user_id: UserId,
    route: &str,
    headers: &HeaderMap,
    command: UserCommand,
) -> Result<CommandOutcome, ApiError> {
    dispatch_keyed(
        state,
        caller,
        route,
        headers,
        Command::User { user_id, command },
    )
    .await
}

async fn do_follow(
    state: &AppState,
    caller: &Principal,
    user: UserId,
    followee: UserId,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    own_account(caller, user)?;
    read_your_writes(state, headers).await?;
    existing_user(state, followee).await?;
    let outcome = send(
        state,
        caller,
        user,
        &format!("PUT /users/{user}/following/{followee}"),
        headers,
        UserCommand::Follow { followee },
    )
    .await?;
    if !settle(state, ProjectionName::Social, outcome.last_position).await? {
        return Ok(accepted(followee.to_string(), &outcome, None));
    }
    let follow = state
        .read
        .follow(user, followee)
        .await?
        .ok_or_else(|| ApiError::not_found("follow"))?;
    // 201 when this request made the follow, 200 when the member already followed.
    let status = if outcome.event_count > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/users/{user}/following/{followee}");
    Ok((
        status,
        write_headers(&outcome, Some(&location)),
        axum::Json(FollowDto {
            follower_id: user,
            followee_id: followee,
            name: follow.name,
            username: follow.username,
            since: rfc3339(follow.since),
        }),
    )
        .into_response())
}

async fn do_unfollow(
    state: &AppState,
    caller: &Principal,
    user: UserId,
    followee: UserId,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    own_account(caller, user)?;
    let outcome = send(
        state,
        caller,
        user,
        &format!("DELETE /users/{user}/following/{followee}"),
        headers,
        UserCommand::Unfollow { followee },
    )
    .await?;
    if !settle(state, ProjectionName::Social, outcome.last_position).await? {
        return Ok(accepted(followee.to_string(), &outcome, None));
    }
    Ok((StatusCode::NO_CONTENT, write_headers(&outcome, None)).into_response())
}

/// Follows a member (the member themself, or an admin for them). Following someone already
/// followed changes nothing (200); a new follow is 201.
#[utoipa::path(
    put, path = "/users/{id}/following/{followee_id}", tag = "social",
    params(
        ("id" = String, Path, format = Uuid, description = "The follower"),
        ("followee_id" = String, Path, format = Uuid),
        ("Idempotency-Key" = Option<String>, Header),
    ),
    responses(
        (status = 200, description = "Already followed", body = FollowDto),
        (status = 201, description = "Followed", body = FollowDto),
        (status = 202, description = "Recorded; the read model has not caught up yet", body = crate::dto::Accepted),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Someone else's account", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`user_not_found`: no such followee (or follower)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The followee or the follower was deactivated", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`cannot_follow_self`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.social.follow", skip_all)]
pub(crate) async fn follow(
    State(state): State<AppState>,
    User(caller): User,
    Path((id, followee)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let user: UserId = id.parse().map_err(|_| user_not_found())?;
    do_follow(&state, &caller, user, followee_id(&followee)?, &headers).await
}

/// Stops following a member (the member themself, or an admin for them); a no-op for someone not
/// followed.
#[utoipa::path(
    delete, path = "/users/{id}/following/{followee_id}", tag = "social",
    params(
        ("id" = String, Path, format = Uuid, description = "The follower"),
        ("followee_id" = String, Path, format = Uuid),
        ("Idempotency-Key" = Option<String>, Header),
    ),
    responses(
        (status = 204, description = "Not following (any more)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.social.unfollow", skip_all)]
pub(crate) async fn unfollow(
    State(state): State<AppState>,
    User(caller): User,
    Path((id, followee)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let user: UserId = id.parse().map_err(|_| user_not_found())?;
    do_unfollow(&state, &caller, user, followee_id(&followee)?, &headers).await
}

fn body_user(body: &FollowRequest) -> Result<UserId, ApiError> {
    body.user_id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "user_id must be a UUID",
        )
    })
}

/// Follows a member: `PUT /users/{id}/following/{followee_id}` for clients of other designs.
#[utoipa::path(
    post, path = "/users/{id}/follow", tag = "social",
    request_body = FollowRequest,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, description = "Already followed", body = FollowDto),
        (status = 201, description = "Followed", body = FollowDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`cannot_follow_self`, or a malformed `user_id`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.social.follow_post", skip_all)]
pub(crate) async fn follow_post(
    State(state): State<AppState>,
    User(caller): User,
    PathId(user): PathId<UserId>,
    headers: HeaderMap,
    Json(body): Json<FollowRequest>,
) -> Result<Response, ApiError> {
    let followee = body_user(&body)?;
    do_follow(&state, &caller, user, followee, &headers).await
}

/// Stops following a member: `DELETE /users/{id}/following/{followee_id}` for clients of other
/// designs.
#[utoipa::path(
    post, path = "/users/{id}/unfollow", tag = "social",
    request_body = FollowRequest,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 204, description = "Not following (any more)"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.social.unfollow_post", skip_all)]
pub(crate) async fn unfollow_post(
    State(state): State<AppState>,
    User(caller): User,
    PathId(user): PathId<UserId>,
    headers: HeaderMap,
    Json(body): Json<FollowRequest>,
) -> Result<Response, ApiError> {
    let followee = body_user(&body)?;
    do_unfollow(&state, &caller, user, followee, &headers).await
}

async fn follow_page(
    state: &AppState,
    user: UserId,
    headers: &HeaderMap,
    params: PageParams,
    followers: bool,
) -> Result<Response, ApiError> {
    let request = page(params.limit, params.cursor)?;
    read_your_writes(state, headers).await?;
    if state.read.user(user).await?.is_none() {
        return Err(user_not_found());
    }
    let result = if followers {
        state.read.followers(user, &request).await?
    } else {
        state.read.following(user, &request).await?
    };
    let path = format!(
        "/users/{user}/{}",
        if followers { "followers" } else { "following" }
    );
    let link = next_link(
        &path,
        &[("limit", request.limit.to_string())],
        result.next_cursor.as_deref(),
    );
    Ok((
        link,
        axum::Json(FollowList {
            user_id: user,
            items: result.items.into_iter().map(Into::into).collect(),
            next_cursor: result.next_cursor,
        }),
    )
        .into_response())
}

/// Who follows a member, most recent first (any signed-in caller).
#[utoipa::path(
    get, path = "/users/{id}/followers", tag = "social",
    params(("id" = String, Path, format = Uuid), PageParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = FollowList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.social.followers", skip_all)]
pub(crate) async fn followers(
    State(state): State<AppState>,
    User(_caller): User,
    PathId(user): PathId<UserId>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Response, ApiError> {
    follow_page(&state, user, &headers, params, true).await
}

/// Whom a member follows, most recent first (any signed-in caller).
#[utoipa::path(
    get, path = "/users/{id}/following", tag = "social",
    params(("id" = String, Path, format = Uuid), PageParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = FollowList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.social.following", skip_all)]
pub(crate) async fn following(
    State(state): State<AppState>,
    User(_caller): User,
    PathId(user): PathId<UserId>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Response, ApiError> {
    follow_page(&state, user, &headers, params, false).await
}

/// Makes a member's activity private (out of feeds and social recommendations) or public again
/// (the member themself, or an admin).
#[utoipa::path(
    put, path = "/users/{id}/privacy", tag = "social",
    request_body = PrivacyRequest,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = PrivacyDto),
        (status = 202, description = "Recorded; the read model has not caught up yet", body = crate::dto::Accepted),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.social.privacy", skip_all)]
pub(crate) async fn set_privacy(
    State(state): State<AppState>,
    User(caller): User,
    PathId(user): PathId<UserId>,
    headers: HeaderMap,
    Json(body): Json<PrivacyRequest>,
) -> Result<Response, ApiError> {
    own_account(&caller, user)?;
    let outcome = send(
        &state,
        &caller,
        user,
        &format!("PUT /users/{user}/privacy"),
        &headers,
        UserCommand::SetActivityPrivacy {
            private: body.activity_private,
        },
    )
    .await?;
    if !settle(&state, ProjectionName::Social, outcome.last_position).await? {
        return Ok(accepted(user.to_string(), &outcome, None));
    }
    let activity_private = state.read.activity_private(user).await?;
    Ok((
        write_headers(&outcome, None),
        axum::Json(PrivacyDto {
            user_id: user,
            activity_private,
        }),
    )
        .into_response())
}

/// A member's privacy setting (the member themself, or an admin).
#[utoipa::path(
    get, path = "/users/{id}/privacy", tag = "social",
    params(("id" = String, Path, format = Uuid), ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = PrivacyDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.social.get_privacy", skip_all)]
pub(crate) async fn get_privacy(
    State(state): State<AppState>,
    User(caller): User,
    PathId(user): PathId<UserId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    own_account(&caller, user)?;
    read_your_writes(&state, &headers).await?;
    if state.read.user(user).await?.is_none() {
        return Err(user_not_found());
    }
    let activity_private = state.read.activity_private(user).await?;
    Ok(axum::Json(PrivacyDto {
        user_id: user,
        activity_private,
    })
    .into_response())
}

/// The caller's feed: the reviews, ratings and likes of the members they follow, newest first.
/// Members who keep their activity private are left out. Admins may read anyone's (`user_id`).
#[utoipa::path(
    get, path = "/feed", tag = "social",
    params(FeedParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = Feed),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`read_model_behind`: the Consistency-Token was not reached in time", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.social.feed", skip_all)]
pub(crate) async fn feed(
    State(state): State<AppState>,
    User(caller): User,
    headers: HeaderMap,
    Query(params): Query<FeedParams>,
) -> Result<Response, ApiError> {
    let user = target_user(
        &caller,
        params.user_id.as_deref(),
        "members read their own feed only",
    )?;
    let request = page(params.limit, params.cursor)?;
    read_your_writes(&state, &headers).await?;
    let result = state.read.feed(user, &request).await?;
    let mut query = Vec::new();
    if params.user_id.is_some() {
        query.push(("user_id", user.to_string()));
    }
    query.push(("limit", request.limit.to_string()));
    let link = next_link("/feed", &query, result.next_cursor.as_deref());
    Ok((
        link,
        axum::Json(Feed {
            user_id: user,
            items: result.items.into_iter().map(Into::into).collect(),
            next_cursor: result.next_cursor,
        }),
    )
        .into_response())
}

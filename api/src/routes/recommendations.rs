//! `POST /interactions` (likes, views and ratings from members) and `GET /recommendations`: the
//! HTTP side of recommendations. The pages come from the read side's
//! [`Recommender`](quire_projections::recommendations::Recommender); this module maps them, and
//! the reasons a page cannot be served, onto the wire.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use quire_actors::Command;
use quire_domain::ids::{BookId, UserId};
use quire_domain::user::{Interaction, UserCommand};
use quire_domain::values::Rating;
use quire_projections::ProjectionName;
use quire_projections::recommendations::{self as recs, RecsError, RecsRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    accepted, dispatch, next_link, page, read_your_writes, settle, target_user, write_headers,
};
use crate::AppState;
use crate::error::{ApiError, Problem, Validation};
use crate::extract::{Json, Query, User, command_id, consistency_token, idempotency_key};

/// What a member did with a book.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewInteraction {
    #[schema(value_type = String, format = Uuid)]
    pub(crate) book_id: String,
    /// `like`, `unlike`, `view` or `rate`.
    pub action: String,
    /// The rating, 1 to 5, for `rate`; absent otherwise.
    pub value: Option<i64>,
    /// Whose interaction: the caller by default; admins may record one for any member.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<String>,
}

/// A member's signals on one book after the interaction.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InteractionDto {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    #[schema(value_type = String, format = Uuid)]
    pub book_id: BookId,
    /// The action recorded.
    pub action: &'static str,
    /// Their review's rating, else a rating given without a review.
    pub rating: Option<u8>,
    pub liked: bool,
    pub views: u32,
}

/// `GET /recommendations` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RecommendationParams {
    /// Whose recommendations: the caller by default; only admins may ask for someone else's.
    pub user_id: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only books in these genres (comma-separated).
    pub genres: Option<String>,
    /// `blended` (the default: the trained model, or cold start) or `social` (books the people
    /// the member follows liked or rated 4 or 5, most of them first).
    pub strategy: Option<String>,
}

/// Why a recommendation was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReasonCode {
    BecauseRated,
    BecauseLiked,
    BecauseViewed,
    PopularInGenre,
    HighlyRated,
    /// Nobody has rated it yet; it is in a genre the member favours or asked for.
    InGenre,
    /// Nobody has rated it yet.
    NewInCatalogue,
    /// People the member follows liked it or rated it 4 or 5 (`strategy=social`).
    LikedByFollowing,
}

impl From<recs::ReasonCode> for ReasonCode {
    fn from(code: recs::ReasonCode) -> Self {
        match code {
            recs::ReasonCode::BecauseRated => Self::BecauseRated,
            recs::ReasonCode::BecauseLiked => Self::BecauseLiked,
            recs::ReasonCode::BecauseViewed => Self::BecauseViewed,
            recs::ReasonCode::PopularInGenre => Self::PopularInGenre,
            recs::ReasonCode::HighlyRated => Self::HighlyRated,
            recs::ReasonCode::InGenre => Self::InGenre,
            recs::ReasonCode::NewInCatalogue => Self::NewInCatalogue,
        }
    }
}

/// One recommended book.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct Recommendation {
    #[schema(value_type = String, format = Uuid)]
    pub book_id: BookId,
    pub title: String,
    pub genres: Vec<String>,
    pub score: f32,
    /// Readable: "because you rated Dune", "popular in fantasy".
    pub reason: String,
    pub reason_code: ReasonCode,
    /// The member's book that explains a collaborative recommendation.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub because_book_id: Option<BookId>,
    /// How many of the people the member follows liked it or rated it 4 or 5 (when any did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub followees_liked: Option<u32>,
    /// "liked by 3 people you follow", beside the item's own reason in the blended list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub social_reason: Option<String>,
    /// Up to three of those people's names (`strategy=social`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liked_by: Option<Vec<String>>,
}

impl From<recs::Recommendation> for Recommendation {
    fn from(r: recs::Recommendation) -> Self {
        Self {
            book_id: r.book_id,
            title: r.title,
            genres: r.genres,
            score: r.score,
            reason: r.reason,
            reason_code: r.reason_code.into(),
            because_book_id: r.because_book_id,
            followees_liked: None,
            social_reason: None,
            liked_by: None,
        }
    }
}

/// Which ranking a page comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Strategy {
    Collaborative,
    ColdStart,
    /// What the people the member follows liked (`strategy=social`).
    Social,
}

impl From<recs::Strategy> for Strategy {
    fn from(strategy: recs::Strategy) -> Self {
        match strategy {
            recs::Strategy::Collaborative => Self::Collaborative,
            recs::Strategy::ColdStart => Self::ColdStart,
        }
    }
}

/// The model a page was ranked with.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct ModelInfo {
    pub version: u64,
    /// The stored model's format (`hybrid`: ALS, item-item and popularity blended).
    pub algorithm: String,
    /// The blend served, chosen on the data: e.g.
    /// `0.75 bm25(k1 5, b 1, 400 nn) + 0.20 als(alpha 30, λ 0.05, 64 f) + 0.05 popularity`.
    pub chosen: String,
    /// The chosen blend's NDCG@10 on the validation split it was chosen on (absent when the
    /// parameters were fixed by configuration).
    pub validation_ndcg: Option<f64>,
    /// Microseconds since the epoch.
    pub trained_at: i64,
    /// The event-log position whose interactions it was trained on.
    pub covers_position: u64,
}

impl From<recs::ModelInfo> for ModelInfo {
    fn from(m: recs::ModelInfo) -> Self {
        Self {
            version: m.version,
            algorithm: m.algorithm,
            chosen: m.chosen,
            validation_ndcg: m.validation_ndcg,
            trained_at: m.trained_at,
            covers_position: m.covers_position,
        }
    }
}

/// One page of recommendations.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct RecsPage {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    pub strategy: Strategy,
    pub items: Vec<Recommendation>,
    pub next_cursor: Option<String>,
    pub model: Option<ModelInfo>,
}

impl From<recs::RecsPage> for RecsPage {
    fn from(page: recs::RecsPage) -> Self {
        Self {
            user_id: page.user_id,
            strategy: page.strategy.into(),
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
            model: page.model.map(Into::into),
        }
    }
}

/// A page that cannot be served, as a problem: a cursor this API did not issue is 400, one from a
/// model that has since been replaced is 409 (its ranking no longer exists).
fn recs_error(error: RecsError) -> ApiError {
    match error {
        RecsError::BadCursor => {
            ApiError::bad_request("invalid_cursor", "the pagination cursor is not valid")
        }
        stale @ RecsError::StaleCursor { .. } => {
            ApiError::new(StatusCode::CONFLICT, "stale_cursor", stale.to_string())
        }
        RecsError::Read(e) => e.into(),
    }
}

/// Records a like, an unlike, a view or a rating (without a review) of a book by a member. Likes
/// and ratings are state (liking twice is one like); every view counts, so send an
/// `Idempotency-Key` when retrying one.
#[utoipa::path(
    post, path = "/interactions", tag = "recommendations",
    request_body = NewInteraction,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = InteractionDto),
        (status = 202, description = "Recorded; the read model has not caught up yet", body = crate::dto::Accepted),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The book was removed, or the member deactivated", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.interactions.create", skip_all)]
pub(crate) async fn create(
    State(state): State<AppState>,
    User(caller): User,
    headers: HeaderMap,
    Json(body): Json<NewInteraction>,
) -> Result<Response, ApiError> {
    let mut v = Validation::default();
    let book_id = match body.book_id.parse::<BookId>() {
        Ok(id) => Some(id),
        Err(_) => {
            v.fail("book_id", "book_id must be a UUID");
            None
        }
    };
    let user_id = match body.user_id.as_deref().map(str::parse::<UserId>) {
        None => caller.user_id,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            v.fail("user_id", "user_id must be a UUID");
            None
        }
    };
    let interaction = match (body.action.as_str(), body.value) {
        ("like", None) => Some(Interaction::Like),
        ("unlike", None) => Some(Interaction::Unlike),
        ("view", None) => Some(Interaction::View),
        ("rate", Some(value)) => match u8::try_from(value) {
            Ok(value) => v
                .field("value", Rating::parse(value))
                .map(|rating| Interaction::Rate { rating }),
            Err(_) => {
                v.fail("value", format!("value must be from 1 to 5, got {value}"));
                None
            }
        },
        ("rate", None) => {
            v.fail("value", "a rate interaction needs a value from 1 to 5");
            None
        }
        ("like" | "unlike" | "view", Some(_)) => {
            v.fail(
                "value",
                format!("a {} interaction takes no value", body.action),
            );
            None
        }
        (other, _) => {
            v.fail(
                "action",
                format!("action must be like, unlike, view or rate, not {other:?}"),
            );
            None
        }
    };
    v.finish()?;
    let (Some(book_id), Some(interaction)) = (book_id, interaction) else {
        unreachable!("validation failed above");
    };
    let Some(user_id) = user_id else {
        return Err(ApiError::forbidden("only members record interactions"));
    };
    read_your_writes(&state, &headers).await?;
    if state.read.book(book_id).await?.is_none() {
        // 410 for a removed book, as every other route answers.
        return Err(super::books::missing_book(&state, book_id).await);
    }
    let key = idempotency_key(&headers)?;
    let command_id = command_id(
        &caller,
        &format!("POST /interactions {user_id}"),
        key.as_deref(),
    );
    let outcome = dispatch(
        &state,
        &caller,
        command_id,
        None,
        Command::User {
            user_id,
            command: UserCommand::RecordInteraction {
                book_id,
                interaction,
            },
        },
    )
    .await?;
    if !settle(&state, ProjectionName::Interactions, outcome.last_position).await? {
        return Ok(accepted(user_id.to_string(), &outcome, None));
    }
    let row = state
        .read
        .user_interactions(user_id)
        .await?
        .into_iter()
        .find(|r| r.book_id == book_id);
    let dto = InteractionDto {
        user_id,
        book_id,
        action: interaction.action(),
        rating: row.as_ref().and_then(|r| r.rating),
        liked: row.as_ref().is_some_and(|r| r.liked),
        views: row.as_ref().map_or(0, |r| r.views),
    };
    Ok((
        StatusCode::OK,
        write_headers(&outcome, None),
        axum::Json(dto),
    )
        .into_response())
}

/// A member's recommendations, page by page: collaborative (ALS) once they have rated, liked or
/// viewed books, else by their favourite genres and Bayesian-average rating. Each item says why;
/// items that people the member follows liked also say how many (`followees_liked`,
/// `social_reason`). Books the member rated or liked are left out. Pages are stable for one model
/// version. `strategy=social` ranks instead the books the people the member follows liked or
/// rated 4 or 5, by how many of them did, then their average rating, then title.
#[utoipa::path(
    get, path = "/recommendations", tag = "recommendations",
    params(RecommendationParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = RecsPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The cursor's model was replaced", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.recommendations", skip_all)]
pub(crate) async fn list(
    State(state): State<AppState>,
    User(caller): User,
    headers: HeaderMap,
    Query(params): Query<RecommendationParams>,
) -> Result<Response, ApiError> {
    let user_id = target_user(
        &caller,
        params.user_id.as_deref(),
        "members see their own recommendations only",
    )?;
    let social = match params.strategy.as_deref() {
        None | Some("blended") => false,
        Some("social") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("strategy must be blended or social, not {other:?}"),
            ));
        }
    };
    let page = page(params.limit, params.cursor.clone())?;
    read_your_writes(&state, &headers).await?;
    let user = state
        .read
        .user(user_id)
        .await?
        .filter(|u| u.active)
        .ok_or_else(|| ApiError::not_found("user"))?;
    let genres: Vec<String> = params
        .genres
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_lowercase)
        .collect();
    if social {
        return social_page(&state, user_id, &genres, page, &params).await;
    }
    let request = RecsRequest {
        user: user_id,
        favourite_genres: user.favourite_genres,
        genres,
        limit: page.limit as usize,
        cursor: page.cursor,
        consistency: consistency_token(&headers)?,
    };
    let mut result = RecsPage::from(
        state
            .recommender
            .recommend(&request)
            .await
            .map_err(recs_error)?,
    );
    // Annotate, never re-rank: the items that people the member follows liked say so.
    let books: Vec<BookId> = result.items.iter().map(|r| r.book_id).collect();
    let liked = state.read.followees_who_liked(user_id, &books).await?;
    for item in &mut result.items {
        if let Some(&n) = liked.get(&item.book_id) {
            item.followees_liked = Some(n);
            item.social_reason = Some(liked_by_following(n));
        }
    }
    let mut query = vec![("user_id", user_id.to_string())];
    if let Some(limit) = params.limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(genres) = params.genres {
        query.push(("genres", genres));
    }
    let links = next_link("/recommendations", &query, result.next_cursor.as_deref());
    Ok((links, axum::Json(result)).into_response())
}

/// "liked by 3 people you follow".
fn liked_by_following(n: u32) -> String {
    if n == 1 {
        "liked by 1 person you follow".to_string()
    } else {
        format!("liked by {n} people you follow")
    }
}

/// A page of `strategy=social`: books the people the member follows liked or rated 4 or 5.
async fn social_page(
    state: &AppState,
    user_id: UserId,
    genres: &[String],
    page: quire_projections::PageRequest,
    params: &RecommendationParams,
) -> Result<Response, ApiError> {
    // Genres as the catalogue stores them ("Science Fiction" is "science-fiction").
    let genres: Vec<String> = genres
        .iter()
        .map(|g| {
            quire_domain::values::Genre::parse(g.as_str())
                .map(quire_domain::values::Genre::into_inner)
                .unwrap_or_else(|_| g.clone())
        })
        .collect();
    let result = state
        .read
        .social_recommendations(user_id, &genres, &page)
        .await?;
    let items = result
        .items
        .into_iter()
        .map(|r| Recommendation {
            book_id: r.book_id,
            title: r.title,
            genres: r.genres,
            score: r.followees as f32,
            reason: liked_by_following(r.followees),
            reason_code: ReasonCode::LikedByFollowing,
            because_book_id: None,
            followees_liked: Some(r.followees),
            social_reason: None,
            liked_by: Some(r.followee_names),
        })
        .collect();
    let body = RecsPage {
        user_id,
        strategy: Strategy::Social,
        items,
        next_cursor: result.next_cursor,
        model: None,
    };
    let mut query = vec![
        ("user_id", user_id.to_string()),
        ("strategy", "social".to_string()),
    ];
    if let Some(limit) = params.limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(genres) = &params.genres {
        query.push(("genres", genres.clone()));
    }
    let links = next_link("/recommendations", &query, body.next_cursor.as_deref());
    Ok((links, axum::Json(body)).into_response())
}

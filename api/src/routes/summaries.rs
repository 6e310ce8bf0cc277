//! `POST /generate-summary`: a summary of posted content, made synchronously by the configured
//! summarizer (extractive by default, or the local model), with the same guardrails as the
//! summaries the platform keeps for its books.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use quire_summarize::{BookFacts, Subject, SummaryRequest};
use serde::Deserialize;

use crate::AppState;
use crate::dto::{GenerateSummary, GeneratedSummary};
use crate::error::{ApiError, Problem, Validation};
use crate::extract::{Json, Query, User, is_plain_text, not_utf8, read_limited};

/// The book facts of a `text/plain` request, as query parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TextParams {
    title: Option<String>,
    author: Option<String>,
    genre: Option<String>,
    year_published: Option<i32>,
}

/// What to summarize: a JSON body (the seed shape), or the text itself as `text/plain` (a whole
/// novel posted as it is, read once into one buffer as it streams in, and refused as soon as it
/// passes the limit) with the book facts in the query.
pub(crate) struct SummaryInput(GenerateSummary);

impl FromRequest<AppState> for SummaryInput {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_plain_text(req.headers()) {
            let Json(body) = Json::<GenerateSummary>::from_request(req, state).await?;
            return Ok(Self(body));
        }
        let (mut parts, body) = req.into_parts();
        let Query(params) = Query::<TextParams>::from_request_parts(&mut parts, state).await?;
        // Characters are at most four bytes of UTF-8: more bytes than that are over the limit
        // whatever they hold.
        let max_bytes = state.config.generate_limit.saturating_mul(4);
        let bytes = read_limited(&parts.headers, body, max_bytes, "the text").await?;
        let content = String::from_utf8(bytes).map_err(|e| not_utf8("content", e.utf8_error()))?;
        Ok(Self(GenerateSummary {
            content: Some(content),
            text: None,
            title: params.title,
            author: params.author,
            genre: params.genre,
            year_published: params.year_published,
        }))
    }
}

/// Summarizes the posted content (members and admins): JSON, or a whole text as `text/plain`.
#[utoipa::path(
    post, path = "/generate-summary", tag = "summaries",
    request_body(
        description = "JSON, or the text itself as `text/plain` with the book facts (`title`, `author`, `genre`, `year_published`) in the query.",
        content(
            (GenerateSummary = "application/json"),
            (String = "text/plain"),
        )
    ),
    responses(
        (status = 200, body = GeneratedSummary),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.summaries.generate", skip_all)]
pub(crate) async fn generate(
    State(state): State<AppState>,
    User(_caller): User,
    SummaryInput(body): SummaryInput,
) -> Result<Response, ApiError> {
    let mut v = Validation::default();
    let content = body.content.or(body.text).unwrap_or_default();
    let chars = content.chars().count();
    let limit = state.config.generate_limit;
    if content.trim().is_empty() {
        v.fail("content", "content must not be empty");
    } else if chars > limit {
        v.fail(
            "content",
            format!("content has {chars} characters; the limit is {limit}"),
        );
    }
    v.finish()?;
    let book = body.title.map(|title| BookFacts {
        title,
        authors: body.author.into_iter().collect(),
        genres: body.genre.into_iter().collect(),
        year: body.year_published,
    });
    let subject = if book.is_some() {
        Subject::Book
    } else {
        Subject::Text
    };
    let summary = state
        .summarizer
        .summarize(SummaryRequest {
            subject,
            book,
            text: Some(content),
            reviews: Vec::new(),
        })
        .await;
    Ok(axum::Json(GeneratedSummary::from(summary)).into_response())
}

//! `POST /generate-summary`: a summary of posted content, made synchronously by the configured
//! summarizer (extractive by default, or the local model), with the same guardrails as the
//! summaries the platform keeps for its books.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use quire_summarize::{BookFacts, Subject, SummaryRequest};

use crate::AppState;
use crate::dto::{GenerateSummary, GeneratedSummary};
use crate::error::{ApiError, Problem, Validation};
use crate::extract::{Json, User};

/// Summarizes the posted content (members and admins).
#[utoipa::path(
    post, path = "/generate-summary", tag = "summaries",
    request_body = GenerateSummary,
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
    Json(body): Json<GenerateSummary>,
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

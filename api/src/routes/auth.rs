//! `POST /auth/token`: trades a username and password (JSON body or HTTP Basic) for a bearer token.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::dto::{TokenRequest, TokenResponse};
use crate::error::{ApiError, Problem};

/// Issues a bearer token.
#[utoipa::path(
    post, path = "/auth/token", tag = "auth",
    request_body(content = Option<TokenRequest>, description = "Or send the credentials with HTTP Basic and no body"),
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("basic" = []))
)]
#[tracing::instrument(name = "http.auth.token", skip_all)]
pub(crate) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (user_id, role) = if body.iter().all(u8::is_ascii_whitespace) {
        let principal = state.auth.authenticate(&headers).await?;
        match principal.user_id {
            Some(id) => (id, principal.role),
            None => {
                return Err(ApiError::unauthorized(
                    "send a username and password, as JSON or with HTTP Basic",
                ));
            }
        }
    } else {
        let request: TokenRequest = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("expected {{\"username\", \"password\"}}: {e}"),
            )
        })?;
        state
            .auth
            .login(&request.username, &request.password)
            .await?
    };
    let issued = state.auth.issue_token(user_id);
    Ok(axum::Json(TokenResponse {
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        user_id,
        role: role.as_str().to_string(),
    })
    .into_response())
}

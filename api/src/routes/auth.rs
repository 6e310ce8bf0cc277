//! `POST /auth/token`: trades a username and password (JSON body or HTTP Basic) for a bearer token.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::auth::ClientAddr;
use crate::dto::{TokenRequest, TokenResponse};
use crate::error::{ApiError, Problem};

/// Issues a bearer token. It stops working when it expires, when the account is deactivated,
/// and when the user's password changes or their sessions are revoked. Failed logins are
/// throttled per account and per client address: 429 `too_many_attempts` with `Retry-After`.
#[utoipa::path(
    post, path = "/auth/token", tag = "auth",
    request_body(content = Option<TokenRequest>, description = "Or send the credentials with HTTP Basic and no body"),
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins for the account or from the address", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many password checks at once", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("basic" = []))
)]
#[tracing::instrument(name = "http.auth.token", skip_all)]
pub(crate) async fn token(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let login = if body.iter().all(u8::is_ascii_whitespace) {
        state
            .auth
            .authenticate_login(&headers, client)
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized("send a username and password, as JSON or with HTTP Basic")
            })?
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
            .login(&request.username, &request.password, client)
            .await?
    };
    let issued = state.auth.issue_token(&login);
    Ok(axum::Json(TokenResponse {
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        user_id: login.user_id,
        role: login.role.as_str().to_string(),
    })
    .into_response())
}

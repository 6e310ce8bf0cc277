//! Extractors whose rejections are problems, and the request headers the API understands.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use quire_domain::Principal;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;

/// The consistency token: a global log position. Writes answer with it; reads that present it
/// wait until the read models have reached it (read-your-writes).
pub static CONSISTENCY_TOKEN: HeaderName = HeaderName::from_static("consistency-token");
/// The client's idempotency key for a `POST`.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// A JSON body; malformed JSON, wrong types, unknown fields and oversized bodies become problems.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match rejection {
        JsonRejection::JsonDataError(_) => "invalid_body",
        JsonRejection::JsonSyntaxError(_) => "malformed_json",
        JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        _ => "unreadable_body",
    };
    // serde's message names the field and the expected type, which is what the client needs.
    ApiError::new(status, code, rejection.body_text())
}

/// Query parameters; unknown or ill-typed parameters become a 400 problem.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_problem(&rejection)),
        }
    }
}

fn query_problem(rejection: &QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_query", rejection.body_text())
}

/// A path parameter that must parse; a malformed id is a 404, since no such resource exists.
pub struct PathId<T>(pub T);

impl<T, S> FromRequestParts<S> for PathId<T>
where
    T: std::str::FromStr + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::not_found("resource"))?;
        raw.parse()
            .map(Self)
            .map_err(|_| ApiError::not_found("resource"))
    }
}

/// Who is calling: an authenticated user, or anonymous when no credentials were sent.
/// Wrong credentials are a 401, never silently anonymous.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Self(principal.clone()));
        }
        let client = crate::auth::client_address(
            &parts.extensions,
            &parts.headers,
            &state.config.trusted_proxies,
        );
        let principal = state.auth.authenticate(&parts.headers, client).await?;
        parts.extensions.insert(principal.clone());
        Ok(Self(principal))
    }
}

/// A caller who must be logged in.
pub struct User(pub Principal);

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        if principal.user_id.is_none() {
            return Err(ApiError::unauthorized("this endpoint needs credentials"));
        }
        Ok(Self(principal))
    }
}

/// The consistency token a read presents, if any.
pub fn consistency_token(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(&CONSISTENCY_TOKEN) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_consistency_token",
                "the Consistency-Token header must be a position returned by a write",
            )
        })
}

/// The `Idempotency-Key` of a request, if any: 1 to 255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(&IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
            )
        })?;
    Ok(Some(key.to_string()))
}

/// The namespace of command ids derived from idempotency keys.
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x0c5f_6a1e_2b47_4d90_9e83_71aa_4f02_c6d5);

/// The command id of a request: derived from its idempotency key (scoped to the caller and the
/// route, so two clients' keys never collide), or fresh when the client sent none.
pub fn command_id(principal: &Principal, route: &str, key: Option<&str>) -> Uuid {
    match key {
        None => Uuid::now_v7(),
        Some(key) => {
            let caller = principal
                .user_id
                .map_or_else(|| "anonymous".to_string(), |u| u.to_string());
            Uuid::new_v5(
                &IDEMPOTENCY_NAMESPACE,
                format!("{caller}\n{route}\n{key}").as_bytes(),
            )
        }
    }
}

/// The entity version an `If-Match` header asks for: `None` without the header or for `*`.
/// An entity tag this API never issued cannot match, so it is a 412.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "version_mismatch",
                "If-Match must be an ETag this API returned, such as \"3\"",
            )
        })
}

/// The `ETag` of an entity version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// Whether a request's body is declared `text/plain` (any charset parameter; UTF-8 is checked when
/// it is read).
pub(crate) fn is_plain_text(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        })
}

/// Reads a request body of at most `max_bytes` into one buffer as it streams in (413
/// `body_too_large`, naming `what`, past the limit).
///
/// It reads up to the limit, as axum's own limit reads a JSON body: refusing on a declared length
/// alone, before reading, leaves the client writing into a closed connection (it sees a broken
/// pipe, not the 413). The declared length only sizes the buffer.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: axum::body::Body,
    max_bytes: usize,
    what: &str,
) -> Result<Vec<u8>, ApiError> {
    use futures::StreamExt;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(max_bytes));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "unreadable_body",
                e.to_string(),
            )
        })?;
        if bytes.len() + chunk.len() > max_bytes {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("{what} is over {max_bytes} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The 422 for a body that is not UTF-8, on `field`.
pub(crate) fn not_utf8(field: &str, error: std::str::Utf8Error) -> ApiError {
    ApiError::invalid_fields(vec![crate::error::FieldError {
        field: field.into(),
        message: format!("the text is not UTF-8 (at byte {})", error.valid_up_to()),
    }])
}

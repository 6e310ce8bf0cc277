//! The one API error type: every failure leaves as an RFC 9457 `application/problem+json` body.
//!
//! Internal failures are logged where they are converted (with their context) and reach the
//! client only as a generic problem, so no database or file detail leaks.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quire_actors::{CommandError, RejectionKind};
use quire_domain::values::ValueError;
use quire_projections::{ReadModelError, WaitError};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The `Retry-After` of a storage outage: long enough not to hammer a database that is coming
/// back, short enough that a client resumes soon after it does.
const STORAGE_RETRY_AFTER_SECS: u64 = 2;

/// An RFC 9457 problem, as sent to clients.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type; relative to the API's base URL.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// A stable machine-readable code, e.g. `review_already_exists`.
    pub code: String,
    /// The fields that failed validation, when that is the problem.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name as the client sent it.
    pub field: String,
    /// Why it is invalid.
    pub message: String,
}

/// An API failure on its way to becoming a problem response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    detail: String,
    errors: Vec<FieldError>,
    retry_after: Option<u64>,
    www_authenticate: bool,
}

impl ApiError {
    /// A problem with a status, a stable code and a message for the client.
    pub fn new(status: StatusCode, code: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            www_authenticate: false,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 404: no such resource.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 401: credentials are missing or wrong; tells the client how to authenticate.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        error.www_authenticate = true;
        error
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 422 with the fields that failed validation.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            detail,
        );
        error.errors = errors;
        error
    }

    /// 503 with a `Retry-After` hint.
    pub fn unavailable(code: &str, detail: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut error = Self::new(StatusCode::SERVICE_UNAVAILABLE, code, detail);
        error.retry_after = Some(retry_after_secs);
        error
    }

    /// 429 with a `Retry-After` hint.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests from this client; slow down",
        );
        error.retry_after = Some(retry_after_secs);
        error
    }

    /// 503 `storage_unavailable`: the event store or the read models cannot be reached or cannot
    /// take the work now (down, unreachable, out of connections or disk). Logs the cause; the
    /// client learns only that retrying later may succeed.
    pub fn storage_unavailable(context: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(context, error = %cause, "storage unavailable");
        Self::unavailable(
            "storage_unavailable",
            "the service's storage is unavailable; retry later",
            STORAGE_RETRY_AFTER_SECS,
        )
    }

    /// The same problem under another stable code (e.g. a 401 that says `token_revoked`).
    pub fn with_code(mut self, code: &str) -> Self {
        self.code = code.to_string();
        self
    }

    /// The same problem with a `Retry-After` hint.
    pub fn with_retry_after(mut self, retry_after_secs: u64) -> Self {
        self.retry_after = Some(retry_after_secs);
        self
    }

    /// 500: logs the cause with its context; the client learns only that it failed.
    pub fn internal(context: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(context, error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to handle the request; it has been logged",
        )
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    fn title(&self) -> String {
        self.status
            .canonical_reason()
            .unwrap_or("Error")
            .to_string()
    }

    /// The problem body this error sends.
    pub fn problem(&self) -> Problem {
        Problem {
            type_uri: format!("/problems/{}", self.code.replace('_', "-")),
            title: self.title(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.clone(),
            errors: self.errors.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is left unread, so this connection cannot carry another
            // request; saying so keeps a client from sending its next request into it.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="quire", charset="UTF-8", Bearer"#),
            );
        }
        response
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Rejected(rejection) => {
                let status = match rejection.kind {
                    RejectionKind::NotFound => StatusCode::NOT_FOUND,
                    RejectionKind::Conflict => StatusCode::CONFLICT,
                    RejectionKind::Forbidden => StatusCode::FORBIDDEN,
                    RejectionKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
                    RejectionKind::Gone => StatusCode::GONE,
                    RejectionKind::Precondition => StatusCode::PRECONDITION_FAILED,
                    // A kind from a newer node: still a refusal of this request, not a failure.
                    RejectionKind::Other(_) => StatusCode::UNPROCESSABLE_ENTITY,
                };
                Self::new(status, rejection.code, rejection.message)
            }
            CommandError::KeyReused(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different request",
            ),
            CommandError::Contention { .. } => Self::unavailable(
                "contention",
                "the resource is changing too fast; retry with the same Idempotency-Key",
                1,
            ),
            CommandError::Unavailable(reason) => {
                tracing::warn!(%reason, "command not delivered");
                Self::unavailable(
                    "unavailable",
                    "the command could not be delivered; retry with the same Idempotency-Key",
                    1,
                )
            }
            CommandError::Store(error) => error.into(),
            other => Self::internal("executing command", &other),
        }
    }
}

impl From<quire_store::StoreError> for ApiError {
    fn from(error: quire_store::StoreError) -> Self {
        if error.is_unavailable() {
            Self::storage_unavailable("using the event store", &error)
        } else {
            Self::internal("using the event store", &error)
        }
    }
}

impl ApiError {
    /// An event-store failure while `context`: 503 with `Retry-After` when the store is
    /// unavailable (the request may succeed later), 500 otherwise; logged either way.
    pub fn store(context: &str, error: &quire_store::StoreError) -> Self {
        if error.is_unavailable() {
            Self::storage_unavailable(context, error)
        } else {
            Self::internal(context, error)
        }
    }
}

impl From<ReadModelError> for ApiError {
    fn from(error: ReadModelError) -> Self {
        match error {
            ReadModelError::InvalidCursor => {
                Self::bad_request("invalid_cursor", "the pagination cursor is not valid")
            }
            other if other.is_unavailable() => {
                Self::storage_unavailable("querying read models", &other.chain())
            }
            other => Self::internal("querying read models", &other.chain()),
        }
    }
}

impl From<WaitError> for ApiError {
    fn from(error: WaitError) -> Self {
        match error {
            WaitError::Timeout { reached } => Self::unavailable(
                "read_model_behind",
                format!(
                    "the read models have not yet reached the requested consistency token (they are at {reached}); retry shortly"
                ),
                1,
            ),
            // Through the read-model mapping, so the log shows the database's own error.
            WaitError::ReadModel(error) => error.into(),
            // `WaitError` is non-exhaustive.
            other => Self::internal("waiting for read models", &other),
        }
    }
}

/// Collects value errors under the client's field names.
#[derive(Default)]
pub struct Validation {
    errors: Vec<FieldError>,
}

impl Validation {
    /// Parses one field, remembering its error.
    pub fn field<T>(&mut self, name: &str, result: Result<T, ValueError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.errors.push(FieldError {
                    field: name.to_string(),
                    message: error.to_string(),
                });
                None
            }
        }
    }

    /// Records a rule that failed.
    pub fn fail(&mut self, name: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: name.to_string(),
            message: message.into(),
        });
    }

    /// The 422 error if any field failed.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use quire_actors::Rejection;

    use super::*;

    #[test]
    fn unavailable_storage_is_a_503_with_retry_after() {
        let errors = [
            ApiError::from(CommandError::Store(quire_store::StoreError::Unavailable(
                "connecting: refused".into(),
            ))),
            ApiError::from(quire_store::StoreError::Unavailable(
                "writer stopped".into(),
            )),
            ApiError::from(ReadModelError::Store(quire_store::StoreError::Unavailable(
                "reading global log: refused".into(),
            ))),
        ];
        for error in errors {
            assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(error.code(), "storage_unavailable");
            let response = error.into_response();
            assert!(response.headers().contains_key(header::RETRY_AFTER));
        }
        let other = ApiError::from(quire_store::StoreError::Corrupt("x".into()));
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn rejections_map_onto_statuses_by_kind() {
        let cases = [
            (RejectionKind::NotFound, StatusCode::NOT_FOUND),
            (RejectionKind::Conflict, StatusCode::CONFLICT),
            (RejectionKind::Forbidden, StatusCode::FORBIDDEN),
            (RejectionKind::Invalid, StatusCode::UNPROCESSABLE_ENTITY),
            (RejectionKind::Gone, StatusCode::GONE),
            (RejectionKind::Precondition, StatusCode::PRECONDITION_FAILED),
            (
                RejectionKind::Other("expired".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ];
        for (kind, status) in cases {
            let error = ApiError::from(CommandError::Rejected(Rejection {
                code: "some_code".into(),
                kind: kind.clone(),
                message: "refused".into(),
            }));
            assert_eq!(error.status(), status, "{kind}");
            assert_eq!(error.code(), "some_code");
        }
    }
}

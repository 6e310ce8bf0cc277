//! `GET /status`: the seed's status shape plus the health of the event store and read models.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// The service's status.
#[derive(Serialize, ToSchema)]
pub(crate) struct Status {
    #[schema(example = "quire")]
    service: &'static str,
    /// `running`, or `degraded` when a backend is failing.
    #[schema(example = "running")]
    status: &'static str,
    /// RFC 3339.
    timestamp: String,
    version: &'static str,
    event_store: StoreHealth,
    read_models: ReadModelHealth,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct StoreHealth {
    backend: &'static str,
    healthy: bool,
    head_position: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ReadModelHealth {
    backend: &'static str,
    healthy: bool,
    projections: Vec<ProjectionHealth>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ProjectionHealth {
    name: String,
    position: u64,
    /// Events of the log not yet applied.
    lag: Option<u64>,
    /// Set while the projection is failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The service's status.
#[utoipa::path(
    get, path = "/status", tag = "operations",
    responses(
        (status = 200, body = Status),
        (status = 503, description = "A backend is failing", body = Status),
    )
)]
#[tracing::instrument(name = "http.status", skip_all)]
pub(crate) async fn status(State(state): State<AppState>) -> Response {
    let head = state.store.head().await;
    let timestamp = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    if let Err(error) = &head {
        tracing::warn!(%error, "status: event store unhealthy");
    }
    let statuses = state.read.statuses().await;
    if let Err(error) = &statuses {
        tracing::warn!(%error, "status: read models unhealthy");
    }
    let head_position = head.as_ref().ok().copied();
    let projections: Vec<ProjectionHealth> = statuses
        .as_ref()
        .map(|list| {
            list.iter()
                .map(|p| ProjectionHealth {
                    name: p.name.to_string(),
                    position: p.position,
                    lag: head_position.map(|h| h.saturating_sub(p.position)),
                    // The client learns that a projection fails, not the internal text.
                    error: p
                        .last_error
                        .as_ref()
                        .map(|_| "projection failing; see logs".into()),
                })
                .collect()
        })
        .unwrap_or_default();
    let healthy = head.is_ok() && statuses.is_ok();
    // A failing projection leaves the node able to take writes and serve (older) reads: it is
    // degraded, not down, so the code stays 200 and the body says which projection fails.
    let projection_failing = projections.iter().any(|p| p.error.is_some());
    let body = Status {
        service: "quire",
        status: if healthy && !projection_failing {
            "running"
        } else {
            "degraded"
        },
        timestamp,
        version: env!("CARGO_PKG_VERSION"),
        event_store: StoreHealth {
            backend: state.store.backend(),
            healthy: head.is_ok(),
            head_position,
            error: head.is_err().then(|| "event store unreachable".to_string()),
        },
        read_models: ReadModelHealth {
            backend: state.read.backend(),
            healthy: statuses.is_ok(),
            projections,
        },
    };
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

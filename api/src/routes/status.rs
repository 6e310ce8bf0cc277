//! `GET /status`: the seed's status shape plus the health of the event store and read models.
//!
//! Each backend is probed with a bound, so a database that is down or unreachable makes the
//! answer "degraded" within [`PROBE_TIMEOUT`] rather than after the pools' and the network's own
//! timeouts. Nothing is cached: once the database is back, the next call says so.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// How long `/status` waits for each backend (probed at the same time).
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

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
    /// Why the read models are unhealthy: unreachable, or their database is damaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
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
    let (head, statuses) = tokio::join!(
        tokio::time::timeout(PROBE_TIMEOUT, state.store.head()),
        tokio::time::timeout(PROBE_TIMEOUT, state.read.statuses()),
    );
    let head = head.unwrap_or_else(|_| {
        Err(quire_store::StoreError::Unavailable(format!(
            "no answer within {PROBE_TIMEOUT:?}"
        )))
    });
    let statuses = statuses.map_err(|_| format!("no answer within {PROBE_TIMEOUT:?}"));
    let timestamp = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    // Reads may work while writes fail (a full disk): the writer's last commit says so.
    let head = match (head, state.store.write_failure()) {
        (Ok(_), Some(reason)) => Err(quire_store::StoreError::Unavailable(format!(
            "the last commit failed: {reason}"
        ))),
        (head, _) => head,
    };
    if let Err(error) = &head {
        tracing::warn!(%error, "status: event store unhealthy");
    }
    let statuses = match statuses {
        Ok(Ok(list)) => Ok(list),
        Ok(Err(error)) => Err(error.chain()),
        Err(timeout) => Err(timeout),
    };
    if let Err(error) = &statuses {
        tracing::warn!(%error, "status: read models unhealthy");
    }
    let damage = state.read.damage();
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
    let read_healthy = statuses.is_ok() && damage.is_none();
    let healthy = head.is_ok() && read_healthy;
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
            healthy: read_healthy,
            projections,
            error: if damage.is_some() {
                Some(
                    "read-model database damaged; restart the node or run `quire projections \
                     rebuild --all` (see logs)"
                        .into(),
                )
            } else {
                statuses
                    .is_err()
                    .then(|| "read models unreachable".to_string())
            },
        },
    };
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

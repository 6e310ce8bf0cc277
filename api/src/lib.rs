//! The HTTP API: routes and DTOs only. Writes go through the command bus, reads through read models
//! (the catalog, review and user endpoints arrive with the read side); today it serves `GET /status`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use quire_actors::CommandBus;
use quire_store::DynEventStore;
use serde::Serialize;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: DynEventStore,
    pub bus: Arc<dyn CommandBus>,
}

/// The application's router; tests drive it directly or over a socket.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/status", get(status))
        .with_state(state)
}

/// The seed's status shape plus backend health.
#[derive(Serialize)]
struct Status {
    service: &'static str,
    status: &'static str,
    timestamp: String,
    version: &'static str,
    event_store: StoreHealth,
}

#[derive(Serialize)]
struct StoreHealth {
    backend: &'static str,
    healthy: bool,
    head_position: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[tracing::instrument(name = "http.status", skip_all)]
async fn status(State(state): State<AppState>) -> Response {
    let head = state.store.head().await;
    let timestamp = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let healthy = head.is_ok();
    if let Err(error) = &head {
        tracing::warn!(%error, "status: event store unhealthy");
    }
    let body = Status {
        service: "quire",
        status: if healthy { "running" } else { "degraded" },
        timestamp,
        version: env!("CARGO_PKG_VERSION"),
        event_store: StoreHealth {
            backend: state.store.backend(),
            healthy,
            head_position: head.as_ref().ok().copied(),
            // The client learns that the store is failing, not the internal error text.
            error: (!healthy).then(|| "event store unreachable".to_string()),
        },
    };
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn status_reports_running_and_the_backend() {
        let dir = tempfile::tempdir().unwrap();
        let store = quire_store::open(
            &dir.path().join("events.db").display().to_string(),
            quire_store::StoreOptions::default(),
        )
        .await
        .unwrap();
        let bus = Arc::new(quire_actors::LocalBus::new(
            store.clone(),
            quire_actors::ActorConfig::default(),
        ));
        let response = app(AppState { store, bus })
            .oneshot(Request::get("/status").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["service"], "quire");
        assert_eq!(json["status"], "running");
        assert_eq!(json["event_store"]["backend"], "sqlite");
        assert_eq!(json["event_store"]["head_position"], 0);
        assert!(
            time::OffsetDateTime::parse(
                json["timestamp"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()
        );
    }
}

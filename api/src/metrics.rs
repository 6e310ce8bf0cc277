//! HTTP metrics and `GET /metrics`.
//!
//! Every request's duration is recorded by route template, method and status (the
//! `http.server.request.duration` histogram of OpenTelemetry's HTTP conventions). Where the node
//! exports metrics is the process's business (`[telemetry]`): OTLP to a collector, and the text a
//! Prometheus scraper reads from `GET /metrics`, rendered by [`Render`].

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;

use crate::AppState;
use crate::error::ApiError;

/// Renders the node's metrics in the Prometheus text format.
pub type Render = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

static DURATION: LazyLock<Histogram<f64>> = LazyLock::new(|| {
    quire_store::telemetry::meter()
        .f64_histogram("http.server.request.duration")
        .with_unit("s")
        .with_description("Time to answer an HTTP request, until the response head")
        .with_boundaries(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
            5.0, 10.0,
        ])
        .build()
});

/// The route template a request matched (`/books/{book_id}`), or `unmatched`: never the path
/// itself, whose ids would make a series per book.
pub(crate) fn route<B>(request: &axum::http::Request<B>) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
}

/// The middleware recording each request's duration.
pub(crate) async fn record(request: Request, next: Next) -> Response {
    let route = route(&request).to_owned();
    // Methods outside the standard set are one series, as the HTTP conventions ask.
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "_OTHER",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    DURATION.record(
        started.elapsed().as_secs_f64(),
        &[
            KeyValue::new("http.route", route),
            KeyValue::new("http.request.method", method),
            KeyValue::new(
                "http.response.status_code",
                i64::from(response.status().as_u16()),
            ),
        ],
    );
    response
}

/// `GET /metrics`: the node's metrics for a Prometheus scraper.
pub(crate) async fn scrape(State(state): State<AppState>) -> Result<Response, ApiError> {
    let Some(render) = state.metrics.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "metrics are not served on this node (set [telemetry] prometheus = true)",
        ));
    };
    let text = tokio::task::spawn_blocking(move || render())
        .await
        .map_err(|e| ApiError::internal("rendering metrics", &e))?
        .map_err(|e| ApiError::internal("rendering metrics", &e))?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

//! Trace context: the W3C `traceparent` of each request (the client's, or a fresh one) travels
//! with its commands into the stored events' metadata, so an event can be tied to its request
//! (`quire_store::telemetry` explains how the spans are joined when OpenTelemetry is on).

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    static TRACEPARENT: String;
}

/// The middleware: the request's span continues a valid incoming `traceparent` (its trace id kept)
/// or starts a trace; its `traceparent` goes to the commands and back on the response.
pub(crate) async fn propagate(request: Request, next: Next) -> Response {
    let traceparent = quire_store::telemetry::traceparent(&tracing::Span::current())
        .unwrap_or_else(|| {
            // Telemetry off: a new span id of our own in the caller's trace, or a new trace.
            let incoming = request
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .filter(|v| quire_store::telemetry::valid(v));
            quire_actors::new_traceparent(incoming)
        });
    tracing::Span::current().record("trace_id", &traceparent[3..35]);
    let mut response = TRACEPARENT
        .scope(traceparent.clone(), next.run(request))
        .await;
    if let Ok(value) = HeaderValue::from_str(&traceparent) {
        response.headers_mut().insert("traceparent", value);
    }
    response
}

/// The request's `traceparent`, inside a handler.
pub(crate) fn current() -> Option<String> {
    TRACEPARENT.try_with(Clone::clone).ok()
}

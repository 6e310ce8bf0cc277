//! Trace context: the W3C `traceparent` of each request (the client's, or a fresh one) travels
//! with its commands into the stored events' metadata, so an event can be tied to its request.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    static TRACEPARENT: String;
}

/// The middleware: adopts a valid incoming `traceparent` (keeping its trace id) or starts a trace,
/// and echoes it on the response.
pub(crate) async fn propagate(request: Request, next: Next) -> Response {
    let incoming = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid(v))
        .map(str::to_owned);
    // A new span (ours) in the caller's trace, or a new trace.
    let traceparent = quire_actors::new_traceparent(incoming.as_deref());
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

/// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, ids not all zero.
fn valid(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    value.len() == 55
        && parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn only_well_formed_traceparents_are_adopted() {
        assert!(valid(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!valid(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid("garbage"));
    }
}

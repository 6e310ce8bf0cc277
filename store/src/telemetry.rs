//! Telemetry shared by every crate: trace context across tasks, processes and the log, and the
//! meter that instruments are made from.
//!
//! A W3C `traceparent` travels with every command (in the envelope, in a NATS header) and is kept
//! in the metadata of the events the command wrote. When OpenTelemetry is on (the `[telemetry]`
//! settings), each hop makes its span a child of the `traceparent` it received and passes its own
//! span on, so one trace runs from the HTTP request through the bus and the actor to the store
//! append; projections link the span that applies an event to the span that wrote it. When it is
//! off these helpers do nothing, and the `traceparent` is carried as it was received.

use opentelemetry::Context;
use opentelemetry::metrics::Meter;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The meter of Quire's instruments. Instruments made before the process installs its meter
/// provider (at start-up, from `[telemetry]`) record nothing, so make them on first use.
pub fn meter() -> Meter {
    opentelemetry::global::meter("quire")
}

/// Whether `value` is a well-formed version-00 `traceparent`:
/// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, neither id all zeros.
pub fn valid(value: &str) -> bool {
    parse(value).is_some()
}

/// The remote span a `traceparent` names, if it is well formed.
pub fn parse(value: &str) -> Option<SpanContext> {
    let bytes = value.as_bytes();
    if value.len() != 55
        || !value.is_ascii()
        || !value.starts_with("00-")
        || bytes[35] != b'-'
        || bytes[52] != b'-'
    {
        return None;
    }
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let (trace, span, flags) = (&value[3..35], &value[36..52], &value[53..55]);
    if !(hex(trace) && hex(span) && hex(flags)) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let context = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// The `traceparent` of `context`.
pub fn format(context: &SpanContext) -> String {
    format!(
        "00-{:032x}-{:016x}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

/// Makes `span` a child of the span `traceparent` names (another task's or another process's).
/// Call it before the span is first entered: a started span keeps the parent it started with.
pub fn adopt(span: &Span, traceparent: Option<&str>) {
    if let Some(remote) = traceparent.and_then(parse) {
        // Without the OpenTelemetry layer (telemetry off) there is nothing to parent.
        let _ = span.set_parent(Context::new().with_remote_span_context(remote));
    }
}

/// Links `span` to the span `traceparent` names, for work caused by it but not part of it (a
/// projection applying events that requests wrote).
pub fn link(span: &Span, traceparent: Option<&str>) {
    if let Some(remote) = traceparent.and_then(parse) {
        span.add_link(remote);
    }
}

/// The `traceparent` of `span` itself, when OpenTelemetry is on and the span is enabled.
pub fn traceparent(span: &Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| format(&span_context))
}

/// The `traceparent` to send on from inside `Span::current()`: the current span's own when
/// OpenTelemetry is on, otherwise `received` unchanged.
pub fn pass_on(received: Option<String>) -> Option<String> {
    traceparent(&Span::current()).or(received)
}

#[cfg(test)]
mod tests {
    use super::{format, parse, valid};

    #[test]
    fn only_well_formed_traceparents_are_read() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = parse(value).expect("well formed");
        assert_eq!(format(&context), value);
        assert!(context.is_remote() && context.is_sampled());
        assert!(!valid(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!valid(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"
        ));
        assert!(!valid(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid(
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01"
        ));
        assert!(!valid(
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid("garbage"));
        assert!(!valid(&format!(
            "00-{}-00f067aa0ba902b7-01",
            "é".repeat(16)
        )));
        assert!(!valid(""));
    }
}

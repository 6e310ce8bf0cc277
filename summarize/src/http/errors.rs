//! How a server's failures are read and worded: error bodies, excerpts of them, and error
//! chains, with no secrets (the client scrubs those) and within a bounded length.

use serde_json::Value;
use tokio::time::{Instant, timeout_at};

use crate::GenerateError;

/// Whether a 400 body says the prompt does not fit the model's context (llama.cpp server, vLLM,
/// OpenAI-compatible servers, and our own `serve` word it differently).
pub(super) fn context_overflow(body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    body.contains("context")
        && ["exceed", "too long", "maximum", "allows", "larger than"]
            .iter()
            .any(|w| body.contains(w))
}

/// `error` with `suffix` added to its message (how many attempts were made, say).
pub(super) fn append(error: GenerateError, suffix: &str) -> GenerateError {
    match error {
        GenerateError::Unavailable(m) => GenerateError::Unavailable(m + suffix),
        GenerateError::InvalidResponse(m) => GenerateError::InvalidResponse(m + suffix),
        GenerateError::Model(m) => GenerateError::Model(m + suffix),
        other => other,
    }
}

/// The error's message and its causes, `: `-separated.
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// The most of an error body quoted in an error.
const EXCERPT_CHARS: usize = 300;

/// Reads a little of an error response: the `error` message of a JSON body, else its text.
pub(super) async fn read_excerpt(response: &mut reqwest::Response, deadline: Instant) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < 16 * 1024 {
        match timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| error_message(&v))
        .unwrap_or_else(|| text.into_owned());
    let collapsed = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > EXCERPT_CHARS {
        let cut: String = collapsed.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    } else {
        collapsed
    }
}

/// The message in `{"error": "…"}`, `{"error": {"message": "…"}}` or `{"message": "…"}`.
pub(super) fn error_message(value: &Value) -> Option<String> {
    match value.get("error") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => Some(match o.get("message") {
            Some(Value::String(s)) => s.clone(),
            _ => Value::Object(o.clone()).to_string(),
        }),
        Some(Value::Null) | None => match value.get("message") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        },
        Some(other) => Some(other.to_string()),
    }
}

/// The start of `text`, at most 200 characters, to quote in an error.
pub(super) fn excerpt(text: &str) -> String {
    if text.chars().count() > 200 {
        let cut: String = text.chars().take(200).collect();
        format!("{cut}…")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_overflow_bodies_are_recognised() {
        for body in [
            r#"{"error":{"message":"the request exceeds the available context size, try increasing it"}}"#,
            r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens"}"#,
            r#"{"error":{"message":"the prompt has 4128 tokens; the model's context allows 4096"}}"#,
        ] {
            assert!(context_overflow(body), "{body}");
        }
        for body in [
            r#"{"error":"model not found"}"#,
            r#"{"error":"invalid context id"}"#,
            "",
        ] {
            assert!(!context_overflow(body), "{body}");
        }
    }
}

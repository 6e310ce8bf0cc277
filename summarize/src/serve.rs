//! A model server: any [`TextGenerator`] behind the OpenAI-compatible and Ollama chat APIs.
//!
//! [`router`] serves
//!
//! - `POST /v1/chat/completions`: OpenAI chat completions; with `"stream": true` as server-sent
//!   events (`chat.completion.chunk` objects, a usage chunk when
//!   `"stream_options": {"include_usage": true}`, then `data: [DONE]`), otherwise one
//!   `chat.completion` JSON object;
//! - `POST /api/chat`: Ollama's chat; streaming (the default, as in Ollama) as newline-delimited
//!   JSON ending with a `"done": true` object carrying `done_reason` and token counts, or one JSON
//!   object with `"stream": false`;
//! - `GET /v1/models` and `GET /api/tags`: the one model served.
//!
//! [`TextGenerator::generate`] returns a whole reply, so a streamed response is sent once the
//! reply is complete, cut into pieces of one word each (a word with the whitespace after it; the
//! pieces concatenate to the exact reply). The time to the first streamed piece is therefore the
//! whole generation time: a client's first-token timeout must allow for it.
//!
//! The `model` field of requests is not checked: whatever is asked, the one model answers, and
//! responses name it. Defaults follow each API: `temperature` 1.0 (OpenAI) or 0.8 (Ollama), seed
//! 0, and at most the tokens left in the context when `max_tokens`/`num_predict` is absent.
//! Errors are answered in each API's shape (`{"error": {"message", "type", "code"}}` or
//! `{"error": "…"}`): a prompt too long or a malformed request is `400`, an unavailable model
//! `503`, a model failure `500`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    ChatMessage, ChatRequest, ChatRole, FinishReason, GenerateError, Generation, Repetition,
    TextGenerator,
};

/// The routes of a model server for `generator`, named `model_name` in responses.
pub fn router(generator: Arc<dyn TextGenerator>, model_name: String) -> Router {
    let state = Arc::new(Served {
        generator,
        model: model_name,
        next_id: AtomicU64::new(1),
    });
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/models", get(openai_models))
        .route("/api/chat", post(ollama_chat))
        .route("/api/tags", get(ollama_tags))
        .with_state(state)
}

struct Served {
    generator: Arc<dyn TextGenerator>,
    model: String,
    next_id: AtomicU64,
}

impl Served {
    /// Fills in defaults and generates.
    async fn generate(
        &self,
        messages: Vec<ChatMessage>,
        max_tokens: Option<i64>,
        temperature: f32,
        seed: u64,
        repeat_penalty: Option<f32>,
    ) -> Result<Generation, GenerateError> {
        let max_tokens = match max_tokens {
            Some(n) if n > 0 => n as usize,
            _ => {
                let prompt: usize = messages
                    .iter()
                    .map(|m| self.generator.count_tokens(&m.content))
                    .sum();
                self.generator
                    .context_window()
                    .saturating_sub(prompt)
                    .max(1)
            }
        };
        self.generator
            .generate(ChatRequest {
                messages,
                max_tokens,
                temperature,
                seed,
                repetition: Repetition {
                    penalty: repeat_penalty.filter(|p| *p > 0.0).unwrap_or(1.0),
                    ..Repetition::OFF
                },
            })
            .await
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn status_of(error: &GenerateError) -> StatusCode {
    match error {
        GenerateError::PromptTooLong { .. } => StatusCode::BAD_REQUEST,
        GenerateError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        GenerateError::InvalidResponse(_) => StatusCode::BAD_GATEWAY,
        GenerateError::Model(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn finish_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

/// The reply in pieces of one word each, with the whitespace that follows it (leading whitespace
/// goes with the first word); the pieces concatenate to `text`.
fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut seen_word = false;
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else {
            if in_space && seen_word {
                out.push(&text[start..i]);
                start = i;
            }
            in_space = false;
            seen_word = true;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// A message's text: a string, or the text parts of an array of content parts.
fn content_text(content: &Value) -> Result<String, String> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("")),
        other => Err(format!("unsupported message content: {other}")),
    }
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

fn messages(wire: Vec<WireMessage>) -> Result<Vec<ChatMessage>, String> {
    if wire.is_empty() {
        return Err("messages must not be empty".into());
    }
    wire.into_iter()
        .map(|m| {
            let role = match m.role.as_str() {
                "system" | "developer" => ChatRole::System,
                "user" => ChatRole::User,
                "assistant" => ChatRole::Assistant,
                other => return Err(format!("unsupported message role {other:?}")),
            };
            Ok(ChatMessage {
                role,
                content: content_text(&m.content)?,
            })
        })
        .collect()
}

fn with_type(body: impl Into<Body>, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn streamed(parts: Vec<String>, content_type: &'static str) -> Response {
    let body = Body::from_stream(futures::stream::iter(
        parts.into_iter().map(Ok::<_, Infallible>),
    ));
    let mut response = with_type(body, content_type);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

// ---- OpenAI ----

#[derive(Deserialize)]
struct OpenAiRequest {
    messages: Vec<WireMessage>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    max_completion_tokens: Option<i64>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    seed: Option<u64>,
    /// llama.cpp's name for the repetition penalty.
    #[serde(default)]
    repeat_penalty: Option<f32>,
    /// vLLM's name for it.
    #[serde(default)]
    repetition_penalty: Option<f32>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

fn openai_error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    let body = json!({ "error": { "message": message, "type": kind, "code": code } });
    (status, with_type(body.to_string(), "application/json")).into_response()
}

fn openai_generate_error(error: &GenerateError) -> Response {
    let status = status_of(error);
    let (kind, code) = match error {
        GenerateError::PromptTooLong { .. } => {
            ("invalid_request_error", Some("context_length_exceeded"))
        }
        GenerateError::Unavailable(_) => ("unavailable_error", None),
        _ => ("server_error", None),
    };
    openai_error(status, &error.to_string(), kind, code)
}

async fn openai_chat(State(served): State<Arc<Served>>, body: Bytes) -> Response {
    let request: OpenAiRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return openai_error(
                StatusCode::BAD_REQUEST,
                &format!("invalid request body: {e}"),
                "invalid_request_error",
                None,
            );
        }
    };
    let messages = match messages(request.messages) {
        Ok(messages) => messages,
        Err(e) => {
            return openai_error(StatusCode::BAD_REQUEST, &e, "invalid_request_error", None);
        }
    };
    let generation = match served
        .generate(
            messages,
            request.max_completion_tokens.or(request.max_tokens),
            request.temperature.unwrap_or(1.0),
            request.seed.unwrap_or(0),
            request.repeat_penalty.or(request.repetition_penalty),
        )
        .await
    {
        Ok(generation) => generation,
        Err(e) => return openai_generate_error(&e),
    };
    let id = format!(
        "chatcmpl-{}",
        served.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let created = unix_seconds();
    let usage = json!({
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "total_tokens": generation.prompt_tokens + generation.completion_tokens,
    });
    let finish = finish_name(generation.finish_reason);
    if !request.stream {
        let body = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": served.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": generation.text },
                "finish_reason": finish,
            }],
            "usage": usage,
        });
        return with_type(body.to_string(), "application/json");
    }
    let chunk = |delta: Value, finish_reason: Option<&str>| {
        let chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": served.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish_reason }],
        });
        format!("data: {chunk}\n\n")
    };
    let mut events = vec![chunk(json!({ "role": "assistant", "content": "" }), None)];
    for piece in pieces(&generation.text) {
        events.push(chunk(json!({ "content": piece }), None));
    }
    events.push(chunk(json!({}), Some(finish)));
    if request.stream_options.is_some_and(|o| o.include_usage) {
        let last = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": served.model,
            "choices": [],
            "usage": usage,
        });
        events.push(format!("data: {last}\n\n"));
    }
    events.push("data: [DONE]\n\n".to_string());
    streamed(events, "text/event-stream")
}

async fn openai_models(State(served): State<Arc<Served>>) -> Response {
    let body = json!({
        "object": "list",
        "data": [{ "id": served.model, "object": "model", "created": 0, "owned_by": "quire" }],
    });
    with_type(body.to_string(), "application/json")
}

// ---- Ollama ----

#[derive(Deserialize)]
struct OllamaRequest {
    messages: Vec<WireMessage>,
    /// Ollama streams unless told not to.
    #[serde(default = "yes")]
    stream: bool,
    #[serde(default)]
    options: OllamaOptions,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
struct OllamaOptions {
    #[serde(default)]
    num_predict: Option<i64>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    repeat_penalty: Option<f32>,
}

fn ollama_error(status: StatusCode, message: &str) -> Response {
    let body = json!({ "error": message });
    (status, with_type(body.to_string(), "application/json")).into_response()
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

async fn ollama_chat(State(served): State<Arc<Served>>, body: Bytes) -> Response {
    let request: OllamaRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return ollama_error(
                StatusCode::BAD_REQUEST,
                &format!("invalid request body: {e}"),
            );
        }
    };
    let messages = match messages(request.messages) {
        Ok(messages) => messages,
        Err(e) => return ollama_error(StatusCode::BAD_REQUEST, &e),
    };
    let generation = match served
        .generate(
            messages,
            request.options.num_predict,
            request.options.temperature.unwrap_or(0.8),
            request.options.seed.unwrap_or(0),
            request.options.repeat_penalty,
        )
        .await
    {
        Ok(generation) => generation,
        Err(e) => return ollama_error(status_of(&e), &e.to_string()),
    };
    let created_at = rfc3339_now();
    let nanos = |d: std::time::Duration| d.as_nanos() as u64;
    let final_fields = |content: &str| {
        json!({
            "model": served.model,
            "created_at": created_at,
            "message": { "role": "assistant", "content": content },
            "done": true,
            "done_reason": finish_name(generation.finish_reason),
            "total_duration": nanos(generation.elapsed),
            "load_duration": 0,
            "prompt_eval_count": generation.prompt_tokens,
            "prompt_eval_duration": nanos(generation.prefill),
            "eval_count": generation.completion_tokens,
            "eval_duration": nanos(generation.elapsed.saturating_sub(generation.prefill)),
        })
    };
    if !request.stream {
        return with_type(
            final_fields(&generation.text).to_string(),
            "application/json",
        );
    }
    let mut lines: Vec<String> = pieces(&generation.text)
        .into_iter()
        .map(|piece| {
            let line = json!({
                "model": served.model,
                "created_at": created_at,
                "message": { "role": "assistant", "content": piece },
                "done": false,
            });
            format!("{line}\n")
        })
        .collect();
    lines.push(format!("{}\n", final_fields("")));
    streamed(lines, "application/x-ndjson")
}

async fn ollama_tags(State(served): State<Arc<Served>>) -> Response {
    let body = json!({
        "models": [{ "name": served.model, "model": served.model, "size": 0 }],
    });
    with_type(body.to_string(), "application/json")
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_are_words_with_their_whitespace() {
        assert_eq!(
            pieces("Hello big  world.\n"),
            ["Hello ", "big  ", "world.\n"]
        );
        assert_eq!(pieces("  lead"), ["  lead"]);
        assert_eq!(pieces(""), Vec::<&str>::new());
        assert_eq!(pieces("one"), ["one"]);
        assert_eq!(pieces("é è"), ["é ", "è"]);
    }
}

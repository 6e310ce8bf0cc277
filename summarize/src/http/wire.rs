//! The JSON on the wire: the request bodies and the response chunks of the OpenAI-compatible
//! and Ollama chat APIs (only the fields read; servers add more).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Api, HttpOptions};
use crate::{ChatRequest, FinishReason};

/// The body of one streamed chat request in `options.api`'s protocol.
pub(super) fn request_body(options: &HttpOptions, request: &ChatRequest) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| json!({ "role": m.role, "content": m.content }))
        .collect();
    match options.api {
        Api::OpenAi => json!({
            "model": options.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
            "stream": true,
            "stream_options": { "include_usage": true },
        }),
        Api::Ollama => json!({
            "model": options.model,
            "messages": messages,
            "stream": true,
            "options": {
                "num_predict": request.max_tokens,
                "temperature": request.temperature,
                "seed": request.seed,
            },
        }),
    }
}

/// `length` means `max_tokens` was reached; anything else (`stop`, `eos`, …) is a stop.
pub(super) fn finish_reason(reason: &str) -> FinishReason {
    if reason == "length" {
        FinishReason::Length
    } else {
        FinishReason::Stop
    }
}

#[derive(Deserialize)]
pub(super) struct OpenAiChunk {
    #[serde(default)]
    pub(super) choices: Vec<OpenAiChoice>,
    #[serde(default)]
    pub(super) usage: Option<Usage>,
}

#[derive(Deserialize)]
pub(super) struct OpenAiChoice {
    #[serde(default)]
    pub(super) delta: Option<Delta>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Delta {
    #[serde(default)]
    pub(super) content: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct OpenAiCompletion {
    #[serde(default)]
    pub(super) choices: Vec<OpenAiMessageChoice>,
    #[serde(default)]
    pub(super) usage: Option<Usage>,
}

#[derive(Deserialize)]
pub(super) struct OpenAiMessageChoice {
    #[serde(default)]
    pub(super) message: Option<Delta>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Usage {
    #[serde(default)]
    pub(super) prompt_tokens: Option<usize>,
    #[serde(default)]
    pub(super) completion_tokens: Option<usize>,
}

#[derive(Deserialize)]
pub(super) struct OllamaChunk {
    #[serde(default)]
    pub(super) message: Option<Delta>,
    #[serde(default)]
    pub(super) done: bool,
    #[serde(default)]
    pub(super) done_reason: Option<String>,
    #[serde(default)]
    pub(super) prompt_eval_count: Option<usize>,
    #[serde(default)]
    pub(super) eval_count: Option<usize>,
}

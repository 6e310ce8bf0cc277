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
    let penalty = request.repetition.penalty;
    let mut body = match options.api {
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
    };
    // Sent only when asked for: a server that does not know the field then never sees it.
    if penalty != 1.0 {
        match options.api {
            Api::OpenAi => {
                body["repeat_penalty"] = json!(penalty);
                body["repetition_penalty"] = json!(penalty);
            }
            Api::Ollama => body["options"]["repeat_penalty"] = json!(penalty),
        }
    }
    body
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChatMessage, Repetition};

    fn request(repetition: Repetition) -> ChatRequest {
        ChatRequest {
            messages: vec![ChatMessage::user("hello")],
            max_tokens: 8,
            temperature: 0.0,
            seed: 1,
            repetition,
        }
    }

    #[test]
    fn the_repetition_penalty_goes_out_under_each_servers_name_only_when_set() {
        let openai = HttpOptions::new("http://127.0.0.1:1", Api::OpenAi, "m");
        let ollama = HttpOptions::new("http://127.0.0.1:1", Api::Ollama, "m");
        let off = request(Repetition::OFF);
        assert!(request_body(&openai, &off).get("repeat_penalty").is_none());
        assert!(
            request_body(&ollama, &off)["options"]
                .get("repeat_penalty")
                .is_none()
        );

        let on = request(Repetition::SUMMARY);
        let body = request_body(&openai, &on);
        assert_eq!(body["repeat_penalty"], json!(Repetition::SUMMARY.penalty));
        assert_eq!(
            body["repetition_penalty"],
            json!(Repetition::SUMMARY.penalty)
        );
        let body = request_body(&ollama, &on);
        assert_eq!(
            body["options"]["repeat_penalty"],
            json!(Repetition::SUMMARY.penalty)
        );
    }
}

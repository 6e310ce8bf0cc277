//! Quire's summary engine.
//!
//! - [`TextGenerator`]: a Llama-family chat model, in process (GGUF through candle) or behind a
//!   local OpenAI-compatible / Ollama server.
//! - The extractive summarizer (TextRank, no model, deterministic): the default, the first pass that
//!   fits a long text into a model's context, and the fallback when a model's output fails checks.
//! - Guardrails on what goes into a prompt and what comes out of a model.

pub mod extractive;
pub mod gguf;
pub mod guard;
pub mod http;
pub mod pipeline;
pub mod serve;

pub use pipeline::{
    BookFacts, ReviewInput, Subject, Summarizer, SummarizerOptions, Summary, SummaryRequest,
};

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Who says a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: ChatRole::System,
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: ChatRole::User,
            content: content.into(),
        }
    }
}

/// One chat completion to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// The most tokens to generate.
    pub max_tokens: usize,
    /// 0 means greedy (deterministic).
    pub temperature: f32,
    /// Sampling seed, for reproducible output when `temperature > 0`.
    pub seed: u64,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn (end-of-turn token or the server's `stop`).
    Stop,
    /// `max_tokens` was reached.
    Length,
}

/// A generated reply and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub finish_reason: FinishReason,
    /// Time to process the prompt (to the first generated token).
    pub prefill: Duration,
    /// Total time.
    pub elapsed: Duration,
}

/// Which backend and model produced something (recorded as provenance with each summary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// `extractive`, `gguf`, `openai` or `ollama`.
    pub backend: String,
    /// The model's name or file (empty for the extractive backend).
    pub model: String,
}

/// Why a model could not generate.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// The prompt does not fit the model's context with room to answer.
    #[error("the prompt has {tokens} tokens; the model's context allows {limit}")]
    PromptTooLong { tokens: usize, limit: usize },
    /// The model server could not be reached, or kept failing, or timed out.
    #[error("model unavailable: {0}")]
    Unavailable(String),
    /// The server answered something that is not a completion.
    #[error("invalid model response: {0}")]
    InvalidResponse(String),
    /// The model file or the inference failed.
    #[error("model error: {0}")]
    Model(String),
}

/// A Llama-family chat model.
#[async_trait]
pub trait TextGenerator: Send + Sync + 'static {
    /// Backend and model, for provenance.
    fn info(&self) -> BackendInfo;
    /// Tokens the model attends to: prompt and reply together.
    fn context_window(&self) -> usize;
    /// Tokens in `text` (exact for the in-process model; an estimate for a server's).
    fn count_tokens(&self, text: &str) -> usize;
    /// Generates the assistant's reply to `request`.
    async fn generate(&self, request: ChatRequest) -> Result<Generation, GenerateError>;
}

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
    /// How hard to steer away from repeating what was just generated.
    #[serde(default)]
    pub repetition: Repetition,
}

/// Steers generation away from loops: small models summarizing a long text otherwise tend to
/// repeat one or two sentences until the token limit.
///
/// The in-process model applies both parts to the tokens it has generated (not to the prompt: a
/// summary should reuse the source's names). HTTP backends send the penalty under the names
/// llama.cpp (`repeat_penalty`), vLLM (`repetition_penalty`) and Ollama (`options.repeat_penalty`)
/// read; those servers have no n-gram ban, and the output checks still catch what gets through.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Repetition {
    /// Divides a positive logit (multiplies a negative one) of each token among the last
    /// `window` generated; 1 turns it off.
    pub penalty: f32,
    /// Generated tokens the penalty looks back over.
    pub window: usize,
    /// Forbids any token that would complete an n-gram of this many tokens already generated;
    /// 0 turns it off.
    pub no_repeat_ngram: usize,
}

impl Repetition {
    /// No steering: the model's own distribution.
    pub const OFF: Self = Self {
        penalty: 1.0,
        window: 64,
        no_repeat_ngram: 0,
    };

    /// What the summarizer asks for: a mild penalty, and no 6-token run twice (about four words;
    /// a character's full name is shorter).
    pub const SUMMARY: Self = Self {
        penalty: 1.15,
        window: 64,
        no_repeat_ngram: 6,
    };

    /// Whether this changes anything.
    pub fn is_off(&self) -> bool {
        self.penalty == 1.0 && self.no_repeat_ngram == 0
    }

    /// Adjusts `logits` for the tokens `generated` so far.
    pub fn apply(&self, logits: &mut [f32], generated: &[u32]) {
        if self.penalty != 1.0 && self.penalty > 0.0 {
            let mut recent: Vec<u32> =
                generated[generated.len().saturating_sub(self.window)..].to_vec();
            recent.sort_unstable();
            recent.dedup();
            for token in recent {
                if let Some(logit) = logits.get_mut(token as usize) {
                    *logit = if *logit > 0.0 {
                        *logit / self.penalty
                    } else {
                        *logit * self.penalty
                    };
                }
            }
        }
        let n = self.no_repeat_ngram;
        if n > 0 && generated.len() >= n {
            let prefix = &generated[generated.len() + 1 - n..];
            for window in generated.windows(n) {
                if window[..n - 1] == *prefix
                    && let Some(logit) = logits.get_mut(window[n - 1] as usize)
                {
                    *logit = f32::NEG_INFINITY;
                }
            }
        }
    }
}

impl Default for Repetition {
    fn default() -> Self {
        Self::OFF
    }
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

#[cfg(test)]
mod tests {
    use super::Repetition;

    #[test]
    fn off_changes_nothing() {
        let mut logits = vec![1.0, -1.0, 2.0, 0.5];
        Repetition::OFF.apply(&mut logits, &[0, 1, 2, 0, 1, 2]);
        assert_eq!(logits, vec![1.0, -1.0, 2.0, 0.5]);
        assert!(Repetition::OFF.is_off());
        assert!(!Repetition::SUMMARY.is_off());
    }

    #[test]
    fn the_penalty_lowers_recent_tokens_whatever_their_sign() {
        let r = Repetition {
            penalty: 2.0,
            window: 3,
            no_repeat_ngram: 0,
        };
        let mut logits = vec![4.0, -4.0, 4.0, 4.0];
        // Token 0 is outside the window of the last three; 1 and 2 are inside (2 twice,
        // penalized once).
        r.apply(&mut logits, &[0, 1, 2, 2]);
        assert_eq!(logits, vec![4.0, -8.0, 2.0, 4.0]);
    }

    #[test]
    fn an_ngram_cannot_be_completed_twice() {
        let r = Repetition {
            penalty: 1.0,
            window: 64,
            no_repeat_ngram: 3,
        };
        // "5 6 7 ... 5 6" → 7 would repeat the 3-gram "5 6 7"; 8 after "6 8"? not yet seen.
        let mut logits = vec![0.0; 10];
        r.apply(&mut logits, &[5, 6, 7, 1, 5, 6]);
        assert_eq!(logits[7], f32::NEG_INFINITY);
        assert!(logits.iter().enumerate().all(|(t, l)| t == 7 || *l == 0.0));
        // Too short to hold a repeated n-gram: nothing banned.
        let mut logits = vec![0.0; 10];
        r.apply(&mut logits, &[5, 6]);
        assert!(logits.iter().all(|l| *l == 0.0));
    }
}

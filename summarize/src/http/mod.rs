//! A [`TextGenerator`] behind a local model server, over HTTP.
//!
//! Two wire protocols:
//!
//! - [`Api::OpenAi`]: `POST {base}/v1/chat/completions` with `"stream": true`, answered with
//!   server-sent events (`data: {chunk}` … `data: [DONE]`). llama.cpp's `llama-server`, vLLM and
//!   Ollama's OpenAI-compatible endpoint all speak it. The request also asks for
//!   `"stream_options": {"include_usage": true}` so that servers which support it report token
//!   counts; servers that don't ignore the field.
//! - [`Api::Ollama`]: Ollama's native `POST {base}/api/chat`, answered with newline-delimited JSON.
//!
//! Robustness:
//!
//! - Three timeouts: to connect, to the first generated token (from sending the request: the
//!   server's queueing and prompt processing), and in total (the whole [`TextGenerator::generate`]
//!   call, including waiting for a free slot, retries and backoff). Keep-alive comments do not
//!   count as a first token.
//! - Retries with exponential backoff and jitter on connection errors, timeouts, `408`, `429` and
//!   `5xx`, but only before the first token arrived: once text has streamed, a failure is returned
//!   as an error (a retry would silently duplicate the work and could produce a different text).
//!   A `Retry-After` header (in seconds) lengthens the wait.
//! - At most `max_concurrency` requests are in flight at once, so a CPU-bound local server is not
//!   flooded; callers beyond that wait for a slot.
//! - The API key is sent as `Authorization: Bearer …`, marked sensitive, never logged, and
//!   scrubbed from error messages. URLs in errors and logs carry no credentials or query.
//!
//! A server that ignores `"stream": true` and answers one JSON object is understood too (a
//! `chat.completion`, or Ollama's single `"done": true` object).
//!
//! Token counts come from the server when it reports them. Otherwise the prompt is estimated by
//! [`HttpGenerator::count_tokens`] and the completion by the number of streamed content pieces
//! (llama.cpp and Ollama stream one token per piece).

mod errors;
mod options;
mod retry;
mod stream;
mod wire;

pub use options::{Api, HttpConfigError, HttpOptions};

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};
use tracing::Instrument;

use crate::{BackendInfo, ChatRequest, FinishReason, GenerateError, Generation, TextGenerator};
use errors::{append, context_overflow, error_chain, error_message, excerpt, read_excerpt};
use options::{endpoint_url, redact_url};
use retry::{Failure, backoff, retry_after};
use stream::{StreamError, StreamState};
use wire::{OpenAiCompletion, finish_reason, request_body};

/// A chat model behind an OpenAI-compatible or Ollama server.
pub struct HttpGenerator {
    client: reqwest::Client,
    options: HttpOptions,
    /// Where requests go (may carry credentials in its userinfo).
    endpoint: Url,
    /// `endpoint` without credentials, query or fragment: for errors and logs.
    shown_endpoint: String,
    permits: Arc<Semaphore>,
}

impl fmt::Debug for HttpGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpGenerator")
            .field("endpoint", &self.shown_endpoint)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl HttpGenerator {
    /// Checks the options and builds the HTTP client (no request is sent).
    pub fn new(options: HttpOptions) -> Result<Self, HttpConfigError> {
        if options.max_concurrency == 0 {
            return Err(HttpConfigError::NoConcurrency);
        }
        if options.context_window == 0 {
            return Err(HttpConfigError::NoContext);
        }
        if let Some(key) = &options.api_key
            && reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).is_err()
        {
            return Err(HttpConfigError::ApiKey);
        }
        let endpoint = endpoint_url(&options.base_url, options.api)?;
        if options.api_key.is_some()
            && (!endpoint.username().is_empty() || endpoint.password().is_some())
        {
            return Err(HttpConfigError::TwoCredentials);
        }
        let shown_endpoint = redact_url(endpoint.as_str());
        let client = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| HttpConfigError::Client(error_chain(&e.without_url())))?;
        let permits = Arc::new(Semaphore::new(options.max_concurrency));
        Ok(Self {
            client,
            options,
            endpoint,
            shown_endpoint,
            permits,
        })
    }

    /// The options this generator was built with.
    pub fn options(&self) -> &HttpOptions {
        &self.options
    }

    /// The URL requests go to, without credentials.
    pub fn endpoint(&self) -> &str {
        &self.shown_endpoint
    }

    /// Replaces the API key (or the URL's password) wherever it might have been echoed back.
    fn scrub(&self, mut message: String) -> String {
        let secrets = [self.options.api_key.as_deref(), self.endpoint.password()];
        for secret in secrets.into_iter().flatten() {
            if !secret.is_empty() && message.contains(secret) {
                message = message.replace(secret, "[redacted]");
            }
        }
        message
    }

    fn scrub_error(&self, error: GenerateError) -> GenerateError {
        match error {
            GenerateError::Unavailable(m) => GenerateError::Unavailable(self.scrub(m)),
            GenerateError::InvalidResponse(m) => GenerateError::InvalidResponse(self.scrub(m)),
            GenerateError::Model(m) => GenerateError::Model(self.scrub(m)),
            other => other,
        }
    }

    /// One request to the server.
    async fn attempt(
        &self,
        body: &[u8],
        deadline: Instant,
        prompt_tokens_estimate: usize,
    ) -> Result<Generation, Failure> {
        let _permit = match timeout_at(deadline, self.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => {
                return Err(Failure::fatal(GenerateError::Unavailable(
                    "the generator is shut down".into(),
                )));
            }
            Err(_elapsed) => {
                return Err(Failure::fatal(GenerateError::Unavailable(format!(
                    "timed out after {:?} waiting for a free slot for {} (max_concurrency {})",
                    self.options.total_timeout, self.shown_endpoint, self.options.max_concurrency
                ))));
            }
        };
        let sent = Instant::now();
        let first_token_deadline = (sent + self.options.first_token_timeout).min(deadline);
        let mut builder = self
            .client
            .post(self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                reqwest::header::ACCEPT,
                match self.options.api {
                    Api::OpenAi => "text/event-stream",
                    Api::Ollama => "application/x-ndjson",
                },
            )
            .body(body.to_vec());
        if let Some(key) = &self.options.api_key {
            builder = builder.bearer_auth(key);
        }

        let mut response = match timeout_at(first_token_deadline, builder.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                let what = if e.is_connect() {
                    "cannot connect to"
                } else if e.is_timeout() {
                    "timed out connecting to"
                } else {
                    "request failed to"
                };
                return Err(Failure::retryable(GenerateError::Unavailable(format!(
                    "{what} {}: {}",
                    self.shown_endpoint,
                    error_chain(&e.without_url())
                ))));
            }
            Err(_elapsed) => return Err(self.timeout_before_first_token(deadline, sent)),
        };

        let status = response.status();
        tracing::Span::current().record("status", status.as_u16());
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            let excerpt = read_excerpt(&mut response, first_token_deadline).await;
            let message = format!(
                "POST {} answered {status}{}",
                self.shown_endpoint,
                if excerpt.is_empty() {
                    String::new()
                } else {
                    format!(": {excerpt}")
                }
            );
            let retry = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT
                || status.is_server_error();
            return Err(if retry {
                Failure {
                    error: GenerateError::Unavailable(message),
                    retryable: true,
                    retry_after,
                }
            } else if status == StatusCode::BAD_REQUEST && context_overflow(&excerpt) {
                // Our token count is an estimate; the server's tokenizer counted more. The
                // summarizer retries with fewer passages.
                Failure::fatal(GenerateError::PromptTooLong {
                    tokens: prompt_tokens_estimate,
                    limit: self.options.context_window,
                })
            } else {
                Failure::fatal(GenerateError::InvalidResponse(message))
            });
        }

        let json_body = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if json_body && self.options.api == Api::OpenAi {
            // A server that does not stream answered with one whole completion.
            return self
                .whole_completion(response, sent, first_token_deadline, prompt_tokens_estimate)
                .await;
        }

        let mut stream = StreamState::new(self.options.api);
        loop {
            let first = stream.first_token_at.is_none();
            let limit = if first {
                first_token_deadline
            } else {
                deadline
            };
            let chunk = match timeout_at(limit, response.chunk()).await {
                Ok(Ok(chunk)) => chunk,
                Ok(Err(e)) => {
                    let cause = error_chain(&e.without_url());
                    return Err(if first {
                        Failure::retryable(GenerateError::Unavailable(format!(
                            "the response from {} broke off before the first token: {cause}",
                            self.shown_endpoint
                        )))
                    } else {
                        Failure::fatal(GenerateError::Unavailable(format!(
                            "the response from {} broke off after {} streamed pieces \
                             (not retried): {cause}",
                            self.shown_endpoint, stream.pieces
                        )))
                    });
                }
                Err(_elapsed) => {
                    return Err(if first {
                        self.timeout_before_first_token(deadline, sent)
                    } else {
                        Failure::fatal(GenerateError::Unavailable(format!(
                            "{} timed out after {:?} in total, {} pieces streamed",
                            self.shown_endpoint, self.options.total_timeout, stream.pieces
                        )))
                    });
                }
            };
            let done = match chunk {
                Some(bytes) => stream.push(&bytes),
                None => stream.finish(),
            }
            .map_err(|e| {
                Failure::fatal(match e {
                    StreamError::Invalid(m) => GenerateError::InvalidResponse(format!(
                        "{} streamed {m}",
                        self.shown_endpoint
                    )),
                    StreamError::Server(m) => GenerateError::InvalidResponse(format!(
                        "{} reported an error mid-stream: {m}",
                        self.shown_endpoint
                    )),
                })
            })?;
            if done {
                break;
            }
        }
        let Some(finish_reason) = stream.finish_reason else {
            return Err(Failure::fatal(GenerateError::InvalidResponse(format!(
                "the response from {} ended without finishing the completion ({} pieces \
                 streamed)",
                self.shown_endpoint, stream.pieces
            ))));
        };
        let now = Instant::now();
        let prefill = stream.first_token_at.unwrap_or(now) - sent;
        Ok(Generation {
            prompt_tokens: stream.prompt_tokens.unwrap_or(prompt_tokens_estimate),
            completion_tokens: stream.completion_tokens.unwrap_or(stream.pieces),
            text: stream.text,
            finish_reason,
            prefill,
            // Replaced by the whole call's time in `generate`.
            elapsed: now - sent,
        })
    }

    /// Reads a non-streamed OpenAI `chat.completion` (nothing of it arrives before it is
    /// complete, so all of it falls under the first-token timeout).
    async fn whole_completion(
        &self,
        mut response: reqwest::Response,
        sent: Instant,
        first_token_deadline: Instant,
        prompt_tokens_estimate: usize,
    ) -> Result<Generation, Failure> {
        let mut body = Vec::new();
        loop {
            match timeout_at(first_token_deadline, response.chunk()).await {
                Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    return Err(Failure::retryable(GenerateError::Unavailable(format!(
                        "the response from {} broke off: {}",
                        self.shown_endpoint,
                        error_chain(&e.without_url())
                    ))));
                }
                Err(_elapsed) => {
                    return Err(self.timeout_before_first_token(first_token_deadline, sent));
                }
            }
        }
        let invalid = |what: String| {
            Failure::fatal(GenerateError::InvalidResponse(format!(
                "{} answered {what}",
                self.shown_endpoint
            )))
        };
        let text = String::from_utf8_lossy(&body);
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            invalid(format!(
                "JSON that does not parse ({e}): {}",
                excerpt(&text)
            ))
        })?;
        if value.get("error").is_some_and(|e| !e.is_null()) {
            return Err(invalid(format!(
                "an error: {}",
                error_message(&value).unwrap_or_else(|| excerpt(&text))
            )));
        }
        let completion: OpenAiCompletion = serde_json::from_value(value).map_err(|e| {
            invalid(format!(
                "an unexpected completion ({e}): {}",
                excerpt(&text)
            ))
        })?;
        let choice =
            completion.choices.into_iter().next().ok_or_else(|| {
                invalid(format!("a completion without choices: {}", excerpt(&text)))
            })?;
        let content = choice.message.and_then(|m| m.content).unwrap_or_default();
        let elapsed = sent.elapsed();
        Ok(Generation {
            prompt_tokens: completion
                .usage
                .as_ref()
                .and_then(|u| u.prompt_tokens)
                .unwrap_or(prompt_tokens_estimate),
            completion_tokens: completion
                .usage
                .as_ref()
                .and_then(|u| u.completion_tokens)
                .unwrap_or_else(|| estimate_tokens(&content)),
            text: content,
            finish_reason: choice
                .finish_reason
                .as_deref()
                .map_or(FinishReason::Stop, finish_reason),
            prefill: elapsed,
            elapsed,
        })
    }

    fn timeout_before_first_token(&self, deadline: Instant, sent: Instant) -> Failure {
        if Instant::now() >= deadline {
            Failure::fatal(GenerateError::Unavailable(format!(
                "{} timed out after {:?} in total before the first token",
                self.shown_endpoint, self.options.total_timeout
            )))
        } else {
            Failure::retryable(GenerateError::Unavailable(format!(
                "{} sent no token within {:?} (first-token timeout; waited {:?})",
                self.shown_endpoint,
                self.options.first_token_timeout,
                sent.elapsed()
            )))
        }
    }
}

#[async_trait]
impl TextGenerator for HttpGenerator {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            backend: self.options.api.backend_name().to_string(),
            model: self.options.model.clone(),
        }
    }

    fn context_window(&self) -> usize {
        self.options.context_window
    }

    /// An estimate: one token per four characters, rounded up (the server's tokenizer is not
    /// available locally; Llama-family tokenizers average 3.5–4.5 characters per token on
    /// English prose).
    fn count_tokens(&self, text: &str) -> usize {
        estimate_tokens(text)
    }

    async fn generate(&self, request: ChatRequest) -> Result<Generation, GenerateError> {
        let start = Instant::now();
        let deadline = start + self.options.total_timeout;
        // Each message costs a few template tokens besides its text.
        let prompt_tokens: usize = request
            .messages
            .iter()
            .map(|m| estimate_tokens(&m.content) + 4)
            .sum();
        if prompt_tokens >= self.options.context_window {
            return Err(GenerateError::PromptTooLong {
                tokens: prompt_tokens,
                limit: self.options.context_window,
            });
        }
        let body = serde_json::to_vec(&request_body(&self.options, &request))
            .map_err(|e| GenerateError::InvalidResponse(format!("cannot encode request: {e}")))?;

        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let span = tracing::info_span!(
                "llm_request",
                backend = self.options.api.backend_name(),
                model = %self.options.model,
                url = %self.shown_endpoint,
                attempt,
                messages = request.messages.len(),
                max_tokens = request.max_tokens,
                status = tracing::field::Empty,
            );
            let outcome = self
                .attempt(&body, deadline, prompt_tokens)
                .instrument(span.clone())
                .await;
            match outcome {
                Ok(mut generation) => {
                    generation.elapsed = start.elapsed();
                    span.in_scope(|| {
                        tracing::info!(
                            prompt_tokens = generation.prompt_tokens,
                            completion_tokens = generation.completion_tokens,
                            prefill_ms = generation.prefill.as_millis() as u64,
                            elapsed_ms = generation.elapsed.as_millis() as u64,
                            "completion received"
                        );
                    });
                    return Ok(generation);
                }
                Err(failure) => {
                    let error = self.scrub_error(failure.error);
                    if !failure.retryable || attempt > self.options.max_retries {
                        span.in_scope(|| tracing::warn!(%error, "model request failed"));
                        return Err(if failure.retryable && attempt > 1 {
                            append(error, &format!(" (after {attempt} attempts)"))
                        } else {
                            error
                        });
                    }
                    let wait = backoff(self.options.initial_backoff, attempt, failure.retry_after);
                    if Instant::now() + wait >= deadline {
                        span.in_scope(|| tracing::warn!(%error, "model request failed"));
                        return Err(append(
                            error,
                            &format!(
                                " (after {attempt} attempts; no time left for another within \
                                 {:?})",
                                self.options.total_timeout
                            ),
                        ));
                    }
                    span.in_scope(|| {
                        tracing::warn!(
                            %error,
                            retry_in_ms = wait.as_millis() as u64,
                            "model request failed; retrying"
                        );
                    });
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// One token per four characters, rounded up.
fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_estimate_rounds_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(estimate_tokens("ééééé"), 2);
    }
}

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

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};
use tracing::Instrument;

use crate::{BackendInfo, ChatRequest, FinishReason, GenerateError, Generation, TextGenerator};

/// Which wire protocol the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI-compatible chat completions with server-sent events (llama.cpp, vLLM, Ollama's
    /// `/v1`).
    OpenAi,
    /// Ollama's native `/api/chat` with newline-delimited JSON.
    Ollama,
}

impl Api {
    /// The backend's name in [`BackendInfo`].
    pub fn backend_name(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Ollama => "ollama",
        }
    }
}

/// How to reach a model server.
#[derive(Clone)]
pub struct HttpOptions {
    /// The server's root, e.g. `http://127.0.0.1:8080` (llama.cpp) or `http://127.0.0.1:11434`
    /// (Ollama). For [`Api::OpenAi`] a trailing `/v1` is accepted too.
    pub base_url: String,
    pub api: Api,
    /// The model name sent with each request (vLLM and Ollama pick the model by it).
    pub model: String,
    /// Sent as `Authorization: Bearer …`; never logged.
    pub api_key: Option<String>,
    /// The longest to wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// The longest from sending a request to its first generated token.
    pub first_token_timeout: Duration,
    /// The longest one `generate` call may take, queueing and retries included.
    pub total_timeout: Duration,
    /// Retries after the first attempt (before any token arrived).
    pub max_retries: u32,
    /// The wait before the first retry; it doubles with each further retry (plus jitter).
    pub initial_backoff: Duration,
    /// The most requests in flight at once (at least 1).
    pub max_concurrency: usize,
    /// The model's context in tokens (prompt and reply), as configured on the server.
    pub context_window: usize,
}

impl HttpOptions {
    /// Options with defaults suited to a local CPU server: 5 s to connect, 2 min to the first
    /// token, 10 min in total, 3 retries from 500 ms, 2 requests at once, a 4096-token context.
    pub fn new(base_url: impl Into<String>, api: Api, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api,
            model: model.into(),
            api_key: None,
            connect_timeout: Duration::from_secs(5),
            first_token_timeout: Duration::from_secs(120),
            total_timeout: Duration::from_secs(600),
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_concurrency: 2,
            context_window: 4096,
        }
    }
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("base_url", &redact_url_str(&self.base_url))
            .field("api", &self.api)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("connect_timeout", &self.connect_timeout)
            .field("first_token_timeout", &self.first_token_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("max_retries", &self.max_retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_concurrency", &self.max_concurrency)
            .field("context_window", &self.context_window)
            .finish()
    }
}

/// Options that cannot work.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpConfigError {
    #[error("invalid model server URL {url:?}: {reason}")]
    BaseUrl { url: String, reason: String },
    #[error("max_concurrency must be at least 1")]
    NoConcurrency,
    #[error("context_window must be at least 1")]
    NoContext,
    #[error("the API key cannot be sent as an HTTP header (it has control characters)")]
    ApiKey,
    #[error(
        "both an API key and credentials in the URL: only one can be sent (as the Authorization \
         header)"
    )]
    TwoCredentials,
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

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
        let shown_endpoint = redact_url(&endpoint);
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

    fn request_body(&self, request: &ChatRequest) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| json!({ "role": m.role, "content": m.content }))
            .collect();
        match self.options.api {
            Api::OpenAi => json!({
                "model": self.options.model,
                "messages": messages,
                "max_tokens": request.max_tokens,
                "temperature": request.temperature,
                "seed": request.seed,
                "stream": true,
                "stream_options": { "include_usage": true },
            }),
            Api::Ollama => json!({
                "model": self.options.model,
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

    /// The wait before retry number `retry` (1-based): `initial_backoff * 2^(retry-1)`, capped at
    /// a minute, plus up to half of it again at random; at least what `Retry-After` asked for.
    fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let base = self
            .options
            .initial_backoff
            .saturating_mul(1u32 << (retry - 1).min(16))
            .min(Duration::from_secs(60));
        let jitter = base.mul_f64(random_fraction() / 2.0);
        let wait = base + jitter;
        match retry_after {
            Some(asked) => wait.max(asked.min(Duration::from_secs(60))),
            None => wait,
        }
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
        let body = serde_json::to_vec(&self.request_body(&request))
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
                    let wait = self.backoff(attempt, failure.retry_after);
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
/// Whether a 400 body says the prompt does not fit the model's context (llama.cpp server, vLLM,
/// OpenAI-compatible servers, and our own `serve` word it differently).
fn context_overflow(body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    body.contains("context")
        && ["exceed", "too long", "maximum", "allows", "larger than"]
            .iter()
            .any(|w| body.contains(w))
}

fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

fn append(error: GenerateError, suffix: &str) -> GenerateError {
    match error {
        GenerateError::Unavailable(m) => GenerateError::Unavailable(m + suffix),
        GenerateError::InvalidResponse(m) => GenerateError::InvalidResponse(m + suffix),
        GenerateError::Model(m) => GenerateError::Model(m + suffix),
        other => other,
    }
}

/// A failed attempt and whether another may follow.
struct Failure {
    error: GenerateError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Failure {
    fn retryable(error: GenerateError) -> Self {
        Self {
            error,
            retryable: true,
            retry_after: None,
        }
    }

    fn fatal(error: GenerateError) -> Self {
        Self {
            error,
            retryable: false,
            retry_after: None,
        }
    }
}

/// A number in `[0, 1)`, random enough for jitter (std's per-process random hash keys).
fn random_fraction() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// The error's message and its causes, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
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
async fn read_excerpt(response: &mut reqwest::Response, deadline: Instant) -> String {
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
fn error_message(value: &Value) -> Option<String> {
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

fn endpoint_url(base_url: &str, api: Api) -> Result<Url, HttpConfigError> {
    let bad = |reason: String| HttpConfigError::BaseUrl {
        url: redact_url_str(base_url),
        reason,
    };
    let url = Url::parse(base_url.trim()).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "the scheme must be http or https, not {}",
            url.scheme()
        )));
    }
    if url.host().is_none() {
        return Err(bad("no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a base URL takes no query or fragment".into()));
    }
    let root = url.path().trim_end_matches('/');
    let path = match api {
        Api::OpenAi if root.ends_with("/v1") => format!("{root}/chat/completions"),
        Api::OpenAi => format!("{root}/v1/chat/completions"),
        Api::Ollama => format!("{root}/api/chat"),
    };
    let mut endpoint = url;
    endpoint.set_path(&path);
    Ok(endpoint)
}

/// The URL without user, password, query or fragment.
fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

fn redact_url_str(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(parsed) => redact_url(&parsed),
        Err(_) => "(unparseable URL)".to_string(),
    }
}

#[derive(Debug, PartialEq)]
enum StreamError {
    /// Not the protocol.
    Invalid(String),
    /// The server reported an error in the stream.
    Server(String),
}

/// The completion as it streams in.
struct StreamState {
    api: Api,
    sse: SseDecoder,
    lines: LineSplitter,
    text: String,
    /// Content pieces received (non-empty deltas).
    pieces: usize,
    first_token_at: Option<Instant>,
    finish_reason: Option<FinishReason>,
    prompt_tokens: Option<usize>,
    completion_tokens: Option<usize>,
}

impl StreamState {
    fn new(api: Api) -> Self {
        Self {
            api,
            sse: SseDecoder::default(),
            lines: LineSplitter::default(),
            text: String::new(),
            pieces: 0,
            first_token_at: None,
            finish_reason: None,
            prompt_tokens: None,
            completion_tokens: None,
        }
    }

    /// Takes in bytes off the wire; `Ok(true)` once the completion is complete.
    fn push(&mut self, bytes: &[u8]) -> Result<bool, StreamError> {
        self.lines.push(bytes);
        self.drain(false)
    }

    /// The response ended; `Ok(true)` as the stream is over either way.
    fn finish(&mut self) -> Result<bool, StreamError> {
        self.drain(true)?;
        Ok(true)
    }

    fn drain(&mut self, at_end: bool) -> Result<bool, StreamError> {
        while let Some(line) = self.lines.next_line(at_end) {
            let done = match self.api {
                Api::OpenAi => match self.sse.line(&line) {
                    Some(event) => self.openai_event(event)?,
                    None => false,
                },
                Api::Ollama => self.ollama_line(&line)?,
            };
            if done {
                return Ok(true);
            }
        }
        if at_end && self.api == Api::OpenAi {
            // A last event without its blank line.
            if let Some(event) = self.sse.line("") {
                return self.openai_event(event);
            }
        }
        Ok(false)
    }

    fn content(&mut self, piece: &str) {
        if !piece.is_empty() {
            if self.first_token_at.is_none() {
                self.first_token_at = Some(Instant::now());
            }
            self.pieces += 1;
            self.text.push_str(piece);
        }
    }

    fn openai_event(&mut self, event: SseEvent) -> Result<bool, StreamError> {
        if event.data.trim() == "[DONE]" {
            return Ok(true);
        }
        let value: Value = serde_json::from_str(&event.data).map_err(|e| {
            StreamError::Invalid(format!(
                "an event that is not JSON ({e}): {}",
                excerpt(&event.data)
            ))
        })?;
        if event.event.as_deref() == Some("error")
            || value.get("error").is_some_and(|e| !e.is_null())
        {
            return Err(StreamError::Server(
                error_message(&value).unwrap_or_else(|| excerpt(&event.data)),
            ));
        }
        let chunk: OpenAiChunk = serde_json::from_value(value).map_err(|e| {
            StreamError::Invalid(format!(
                "an unexpected chunk ({e}): {}",
                excerpt(&event.data)
            ))
        })?;
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(piece) = choice.delta.and_then(|d| d.content) {
                self.content(&piece);
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(finish_reason(&reason));
            }
        }
        if let Some(usage) = chunk.usage {
            self.prompt_tokens = usage.prompt_tokens.or(self.prompt_tokens);
            self.completion_tokens = usage.completion_tokens.or(self.completion_tokens);
        }
        Ok(false)
    }

    fn ollama_line(&mut self, line: &str) -> Result<bool, StreamError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(false);
        }
        let value: Value = serde_json::from_str(line).map_err(|e| {
            StreamError::Invalid(format!("a line that is not JSON ({e}): {}", excerpt(line)))
        })?;
        if value.get("error").is_some_and(|e| !e.is_null()) {
            return Err(StreamError::Server(
                error_message(&value).unwrap_or_else(|| excerpt(line)),
            ));
        }
        let chunk: OllamaChunk = serde_json::from_value(value).map_err(|e| {
            StreamError::Invalid(format!("an unexpected line ({e}): {}", excerpt(line)))
        })?;
        if let Some(piece) = chunk.message.and_then(|m| m.content) {
            self.content(&piece);
        }
        if chunk.done {
            self.finish_reason = Some(
                chunk
                    .done_reason
                    .as_deref()
                    .map_or(FinishReason::Stop, finish_reason),
            );
            self.prompt_tokens = chunk.prompt_eval_count;
            self.completion_tokens = chunk.eval_count;
            return Ok(true);
        }
        Ok(false)
    }
}

/// `length` means `max_tokens` was reached; anything else (`stop`, `eos`, …) is a stop.
fn finish_reason(reason: &str) -> FinishReason {
    if reason == "length" {
        FinishReason::Length
    } else {
        FinishReason::Stop
    }
}

fn excerpt(text: &str) -> String {
    if text.chars().count() > 200 {
        let cut: String = text.chars().take(200).collect();
        format!("{cut}…")
    } else {
        text.to_string()
    }
}

#[derive(Deserialize)]
struct OpenAiChunk {
    #[serde(default)]
    choices: Vec<OpenAiChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct OpenAiChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiCompletion {
    #[serde(default)]
    choices: Vec<OpenAiMessageChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct OpenAiMessageChoice {
    #[serde(default)]
    message: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<usize>,
    #[serde(default)]
    completion_tokens: Option<usize>,
}

#[derive(Deserialize)]
struct OllamaChunk {
    #[serde(default)]
    message: Option<Delta>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<usize>,
    #[serde(default)]
    eval_count: Option<usize>,
}

/// Splits bytes into lines ended by `\n`, `\r\n` or `\r`, across chunk boundaries (a multi-byte
/// character split between chunks is decoded whole).
#[derive(Default)]
struct LineSplitter {
    buffer: Vec<u8>,
    /// Where to resume looking for a line end.
    scanned: usize,
}

impl LineSplitter {
    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete line; at the end of the stream also the unterminated rest.
    fn next_line(&mut self, at_end: bool) -> Option<String> {
        let found = self.buffer[self.scanned..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .map(|i| i + self.scanned);
        let (line_end, next) = match found {
            Some(i) if self.buffer[i] == b'\n' => (i, i + 1),
            Some(i) => match self.buffer.get(i + 1) {
                Some(b'\n') => (i, i + 2),
                Some(_) => (i, i + 1),
                // A `\r` at the end: wait to see whether `\n` follows.
                None if at_end => (i, i + 1),
                None => {
                    self.scanned = i;
                    return None;
                }
            },
            None if at_end && !self.buffer.is_empty() => (self.buffer.len(), self.buffer.len()),
            None => {
                self.scanned = self.buffer.len();
                return None;
            }
        };
        let line = String::from_utf8_lossy(&self.buffer[..line_end]).into_owned();
        self.buffer.drain(..next);
        self.scanned = 0;
        Some(line)
    }
}

/// One server-sent event.
#[derive(Debug, PartialEq)]
struct SseEvent {
    event: Option<String>,
    data: String,
}

/// Assembles server-sent events from lines (the `text/event-stream` rules: `field: value` lines,
/// `:` comments, a blank line ends an event; `data` lines join with `\n`).
#[derive(Default)]
struct SseDecoder {
    event: Option<String>,
    data: Option<String>,
}

impl SseDecoder {
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            return data.map(|data| SseEvent { event, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
        None
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

    fn events(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut lines = LineSplitter::default();
        let mut sse = SseDecoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            lines.push(chunk);
            while let Some(line) = lines.next_line(false) {
                out.extend(sse.line(&line));
            }
        }
        while let Some(line) = lines.next_line(true) {
            out.extend(sse.line(&line));
        }
        out.extend(sse.line(""));
        out
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn sse_events_split_anywhere_decode_the_same() {
        let wire = ": keep-alive\r\n\r\ndata: {\"a\":\"é\"}\r\n\r\nevent: error\ndata: x\ndata: y\n\ndata:z\r\rdata: [DONE]\n\n";
        let whole = events(&[wire.as_bytes()]);
        assert_eq!(data(&whole), ["{\"a\":\"é\"}", "x\ny", "z", "[DONE]"]);
        assert_eq!(whole[1].event.as_deref(), Some("error"));
        // Every split point, including inside `é` and between `\r` and `\n`.
        let bytes = wire.as_bytes();
        for cut in 0..bytes.len() {
            let split = events(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(split, whole, "cut at {cut}");
        }
        let single: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(events(&single), whole);
    }

    #[test]
    fn the_last_event_without_a_blank_line_still_counts() {
        assert_eq!(data(&events(&[b"data: [DONE]"])), ["[DONE]"]);
    }

    #[test]
    fn openai_stream_accumulates_content_finish_and_usage() {
        let mut state = StreamState::new(Api::OpenAi);
        let wire = concat!(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\" world\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"ignored\"}}]}\n\n",
        );
        assert_eq!(state.push(wire.as_bytes()), Ok(true));
        assert_eq!(state.text, "Hello world");
        assert_eq!(state.pieces, 2);
        assert_eq!(state.finish_reason, Some(FinishReason::Length));
        assert_eq!(state.prompt_tokens, Some(7));
        assert_eq!(state.completion_tokens, Some(2));
    }

    #[test]
    fn errors_in_the_stream_are_reported() {
        let mut state = StreamState::new(Api::OpenAi);
        assert_eq!(
            state.push(b"data: {\"error\":{\"message\":\"out of memory\"}}\n\n"),
            Err(StreamError::Server("out of memory".into()))
        );
        let mut state = StreamState::new(Api::OpenAi);
        assert!(matches!(
            state.push(b"data: nope\n\n"),
            Err(StreamError::Invalid(_))
        ));
        let mut state = StreamState::new(Api::Ollama);
        assert_eq!(
            state.push(b"{\"error\":\"model not loaded\"}\n"),
            Err(StreamError::Server("model not loaded".into()))
        );
    }

    #[test]
    fn ollama_lines_across_chunks() {
        let mut state = StreamState::new(Api::Ollama);
        let wire = "{\"message\":{\"role\":\"assistant\",\"content\":\"Hé\"},\"done\":false}\r\n\n{\"message\":{\"role\":\"assistant\",\"content\":\"llo\"},\"done\":false}\n{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":5,\"eval_count\":2}";
        let bytes = wire.as_bytes();
        for cut in 0..bytes.len() {
            let mut state2 = StreamState::new(Api::Ollama);
            let first = state2.push(&bytes[..cut]).unwrap();
            let done = first || state2.push(&bytes[cut..]).unwrap() || state2.finish().unwrap();
            assert!(done);
            assert_eq!(state2.text, "Héllo", "cut at {cut}");
            assert_eq!(state2.finish_reason, Some(FinishReason::Stop));
            assert_eq!(state2.prompt_tokens, Some(5));
            assert_eq!(state2.completion_tokens, Some(2));
        }
        assert_eq!(state.push(bytes), Ok(false));
        assert_eq!(state.finish(), Ok(true));
        assert_eq!(state.text, "Héllo");
    }

    #[test]
    fn endpoints_and_redaction() {
        let url = endpoint_url("http://u:secret@127.0.0.1:8080/", Api::OpenAi).unwrap();
        assert_eq!(
            url.as_str(),
            "http://u:secret@127.0.0.1:8080/v1/chat/completions"
        );
        assert_eq!(
            redact_url(&url),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        let url = endpoint_url("http://localhost:8000/v1", Api::OpenAi).unwrap();
        assert_eq!(url.as_str(), "http://localhost:8000/v1/chat/completions");
        let url = endpoint_url("http://localhost:11434", Api::Ollama).unwrap();
        assert_eq!(url.as_str(), "http://localhost:11434/api/chat");
        assert!(endpoint_url("ftp://x", Api::Ollama).is_err());
        assert!(endpoint_url("http://x/?key=1", Api::Ollama).is_err());
        let err = endpoint_url("http://u:hunter2@x/?key=1", Api::Ollama).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn token_estimate_rounds_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(estimate_tokens("ééééé"), 2);
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        let mut options = HttpOptions::new("http://127.0.0.1:1", Api::OpenAi, "m");
        options.initial_backoff = Duration::from_millis(100);
        let generator = HttpGenerator::new(options).unwrap();
        for retry in 1..=4 {
            let base = Duration::from_millis(100 * (1 << (retry - 1)));
            let wait = generator.backoff(retry, None);
            assert!(wait >= base && wait <= base + base / 2, "{retry}: {wait:?}");
        }
        assert!(generator.backoff(1, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
        assert!(generator.backoff(40, None) <= Duration::from_secs(90));
    }
}

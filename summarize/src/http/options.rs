//! How to reach a model server: the options, their checks, and the endpoint URL they make.

use std::fmt;
use std::time::Duration;

use reqwest::Url;

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
            .field("base_url", &redact_url(&self.base_url))
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

/// The chat endpoint under `base_url` for `api`, after checking that `base_url` is a plain
/// http(s) server root.
pub(super) fn endpoint_url(base_url: &str, api: Api) -> Result<Url, HttpConfigError> {
    let bad = |reason: String| HttpConfigError::BaseUrl {
        url: redact_url(base_url),
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

/// `url` without user, password, query or fragment, for errors and logs: credentials ride in the
/// userinfo or the query (`?api_key=…`), and neither is needed to tell which server was meant.
pub(super) fn redact_url(url: &str) -> String {
    let Ok(mut shown) = Url::parse(url.trim()) else {
        return "(unparseable URL)".to_string();
    };
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_redaction() {
        let url = endpoint_url("http://u:secret@127.0.0.1:8080/", Api::OpenAi).unwrap();
        assert_eq!(
            url.as_str(),
            "http://u:secret@127.0.0.1:8080/v1/chat/completions"
        );
        assert_eq!(
            redact_url(url.as_str()),
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
    fn redaction_drops_credentials_query_and_fragment() {
        assert_eq!(
            redact_url(" https://user:pw@example.test:8443/v1?api_key=k&x=1#frag "),
            "https://example.test:8443/v1"
        );
        assert_eq!(redact_url("http://user@h/"), "http://h/");
        assert_eq!(redact_url("not a url"), "(unparseable URL)");
        let options = HttpOptions::new("http://u:hunter2@h/?token=t0ken", Api::Ollama, "m");
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("t0ken"),
            "{shown}"
        );
    }
}

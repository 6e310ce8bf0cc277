//! The HTTP backend against real servers over real sockets: the crate's own model server
//! (`serve::router`) wrapping a small deterministic model, and hand-written axum routes that
//! inject faults (split events, failures, slowness, errors).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use quire_summarize::http::{Api, HttpGenerator, HttpOptions};
use quire_summarize::serve;
use quire_summarize::{
    BackendInfo, ChatMessage, ChatRequest, ChatRole, FinishReason, GenerateError, Generation,
    Repetition, TextGenerator,
};
use serde_json::{Value, json};

/// A stand-in for the model (the client and server under test are real): replies
/// `Summary: ` and the first `max_tokens - 1` words of the last user message.
struct EchoModel {
    context_window: usize,
}

#[async_trait]
impl TextGenerator for EchoModel {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            backend: "echo".into(),
            model: "echo-1".into(),
        }
    }

    fn context_window(&self) -> usize {
        self.context_window
    }

    fn count_tokens(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }

    async fn generate(&self, request: ChatRequest) -> Result<Generation, GenerateError> {
        let prompt_tokens: usize = request
            .messages
            .iter()
            .map(|m| self.count_tokens(&m.content))
            .sum();
        if prompt_tokens >= self.context_window {
            return Err(GenerateError::PromptTooLong {
                tokens: prompt_tokens,
                limit: self.context_window,
            });
        }
        let last = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == ChatRole::User)
            .map(|m| m.content.as_str())
            .unwrap_or("");
        let words: Vec<&str> = last.split_whitespace().collect();
        let room = request.max_tokens.saturating_sub(1);
        let taken = words.len().min(room);
        let finish_reason = if taken < words.len() {
            FinishReason::Length
        } else {
            FinishReason::Stop
        };
        Ok(Generation {
            text: format!("Summary: {}", words[..taken].join(" ")),
            prompt_tokens,
            completion_tokens: taken + 1,
            finish_reason,
            prefill: Duration::from_millis(1),
            elapsed: Duration::from_millis(2),
        })
    }
}

fn echo_router(context_window: usize) -> Router {
    serve::router(Arc::new(EchoModel { context_window }), "echo-1".into())
}

/// Serves `router` on a fresh local port; returns its base URL.
async fn spawn(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

fn options(base_url: &str, api: Api) -> HttpOptions {
    HttpOptions {
        base_url: base_url.to_string(),
        api,
        model: "echo-1".into(),
        api_key: None,
        connect_timeout: Duration::from_secs(2),
        first_token_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        max_retries: 3,
        initial_backoff: Duration::from_millis(20),
        max_concurrency: 4,
        context_window: 4096,
    }
}

fn client(options: HttpOptions) -> HttpGenerator {
    HttpGenerator::new(options).unwrap()
}

fn request(text: &str, max_tokens: usize) -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::system("Summarize the text."),
            ChatMessage::user(text),
        ],
        max_tokens,
        temperature: 0.0,
        seed: 7,
        repetition: Repetition::OFF,
    }
}

const TEXT: &str = "The quick brown fox jumps over the lazy dog";

// ---- Canned responses for the fault-injection routes ----

fn sse_event(value: Value) -> String {
    format!("data: {value}\n\n")
}

/// A complete OpenAI stream: a role chunk, one chunk per piece, the finish, usage, `[DONE]`.
fn openai_stream(pieces: &[&str]) -> String {
    let mut wire =
        sse_event(json!({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}));
    for piece in pieces {
        wire += &sse_event(
            json!({"choices":[{"index":0,"delta":{"content":piece},"finish_reason":null}]}),
        );
    }
    wire += &sse_event(json!({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}));
    wire += &sse_event(
        json!({"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":pieces.len()}}),
    );
    wire + "data: [DONE]\n\n"
}

fn sse_response(body: impl Into<Body>) -> Response {
    ([(header::CONTENT_TYPE, "text/event-stream")], body.into()).into_response()
}

/// A body sent as `chunks`, each flushed on its own after a short pause.
fn chunked_body(chunks: Vec<Vec<u8>>) -> Body {
    Body::from_stream(futures::stream::iter(chunks).then(|chunk| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok::<_, Infallible>(Bytes::from(chunk))
    }))
}

// ---- End to end through serve::router ----

#[tokio::test]
async fn openai_api_end_to_end() {
    let base = spawn(echo_router(4096)).await;
    let generator = client(options(&base, Api::OpenAi));
    assert_eq!(
        generator.info(),
        BackendInfo {
            backend: "openai".into(),
            model: "echo-1".into()
        }
    );
    assert_eq!(generator.context_window(), 4096);
    assert_eq!(generator.count_tokens("abcdefghi"), 3);

    let generation = generator.generate(request(TEXT, 100)).await.unwrap();
    assert_eq!(generation.text, format!("Summary: {TEXT}"));
    assert_eq!(generation.finish_reason, FinishReason::Stop);
    assert_eq!(generation.prompt_tokens, 3 + 9);
    assert_eq!(generation.completion_tokens, 10);
    assert!(generation.prefill <= generation.elapsed);
    assert!(generation.elapsed > Duration::ZERO);

    let generation = generator.generate(request(TEXT, 4)).await.unwrap();
    assert_eq!(generation.text, "Summary: The quick brown");
    assert_eq!(generation.finish_reason, FinishReason::Length);
    assert_eq!(generation.completion_tokens, 4);

    // A base URL ending in /v1, as OpenAI clients are often configured, works too.
    let generator = client(options(&format!("{base}/v1/"), Api::OpenAi));
    let generation = generator
        .generate(request("hello there", 100))
        .await
        .unwrap();
    assert_eq!(generation.text, "Summary: hello there");
}

#[tokio::test]
async fn ollama_api_end_to_end() {
    let base = spawn(echo_router(4096)).await;
    let generator = client(options(&base, Api::Ollama));
    assert_eq!(generator.info().backend, "ollama");
    assert_eq!(generator.info().model, "echo-1");

    let generation = generator.generate(request(TEXT, 100)).await.unwrap();
    assert_eq!(generation.text, format!("Summary: {TEXT}"));
    assert_eq!(generation.finish_reason, FinishReason::Stop);
    assert_eq!(generation.prompt_tokens, 12);
    assert_eq!(generation.completion_tokens, 10);

    let generation = generator.generate(request(TEXT, 3)).await.unwrap();
    assert_eq!(generation.text, "Summary: The quick");
    assert_eq!(generation.finish_reason, FinishReason::Length);
}

#[tokio::test]
async fn the_servers_errors_reach_the_client() {
    // The model's context holds 5 words: the server answers 400 saying so, the client does not
    // retry, and reports the prompt as too long (the summarizer then asks with fewer passages).
    let base = spawn(echo_router(5)).await;
    for api in [Api::OpenAi, Api::Ollama] {
        let error = client(options(&base, api))
            .generate(request(TEXT, 100))
            .await
            .unwrap_err();
        assert!(
            matches!(error, GenerateError::PromptTooLong { limit: 4096, .. }),
            "{api:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn the_server_speaks_both_wire_formats() {
    let base = spawn(echo_router(4096)).await;
    let http = reqwest::Client::new();

    let models: Value = http
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "echo-1");

    // OpenAI, not streamed.
    let body = json!({"model":"whatever","messages":[{"role":"user","content":"a b c"}],"max_tokens":10,"stream":false});
    let response = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "echo-1");
    assert_eq!(completion["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "Summary: a b c"
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(completion["usage"]["prompt_tokens"], 3);
    assert_eq!(completion["usage"]["completion_tokens"], 4);
    assert_eq!(completion["usage"]["total_tokens"], 7);

    // OpenAI, streamed: the exact SSE shape.
    let body = json!({"model":"m","messages":[{"role":"user","content":"a b"}],"stream":true});
    let response = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events[0]["object"], "chat.completion.chunk");
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, "Summary: a b");
    let last = events.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(last.get("usage").is_none(), "usage only when asked for");

    // Ollama, not streamed.
    let body = json!({"model":"m","messages":[{"role":"user","content":"x y z"}],"stream":false,"options":{"num_predict":2}});
    let reply: Value = http
        .post(format!("{base}/api/chat"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["message"]["content"], "Summary: x");
    assert_eq!(reply["done"], true);
    assert_eq!(reply["done_reason"], "length");
    assert_eq!(reply["prompt_eval_count"], 3);
    assert_eq!(reply["eval_count"], 2);

    // Ollama streams by default: NDJSON ending with done.
    let body = json!({"model":"m","messages":[{"role":"user","content":"x y"}]});
    let response = http
        .post(format!("{base}/api/chat"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/x-ndjson"
    );
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 2);
    let streamed: String = lines
        .iter()
        .filter_map(|l| l["message"]["content"].as_str())
        .collect();
    assert_eq!(streamed, "Summary: x y");
    assert_eq!(lines.last().unwrap()["done"], true);
    assert!(lines[..lines.len() - 1].iter().all(|l| l["done"] == false));

    // Malformed requests get each API's error shape.
    let response = http
        .post(format!("{base}/v1/chat/completions"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let response = http
        .post(format!("{base}/api/chat"))
        .json(&json!({"messages":[{"role":"wizard","content":"x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("wizard"));
}

// ---- Stream framing ----

#[tokio::test]
async fn sse_events_split_across_chunks_with_comments_and_crlf() {
    let mut wire = String::from(": keep-alive\r\n\r\n");
    wire += &openai_stream(&["Héllo", " wörld", " ✓"]).replace("\n", "\r\n");
    // A comment between events, and one event with a bare-LF ending mixed in.
    wire = wire.replacen("\r\n\r\ndata:", "\r\n\r\n: ping\r\n\r\ndata:", 2);
    let bytes = wire.into_bytes();
    // Chunks of 7 bytes split lines, `\r\n` pairs and multi-byte characters.
    let chunks: Vec<Vec<u8>> = bytes.chunks(7).map(<[u8]>::to_vec).collect();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let chunks = chunks.clone();
            async move { sse_response(chunked_body(chunks)) }
        }),
    );
    let base = spawn(app).await;
    let generation = client(options(&base, Api::OpenAi))
        .generate(request(TEXT, 100))
        .await
        .unwrap();
    assert_eq!(generation.text, "Héllo wörld ✓");
    assert_eq!(generation.finish_reason, FinishReason::Stop);
    assert_eq!(generation.prompt_tokens, 11);
    assert_eq!(generation.completion_tokens, 3);
}

#[tokio::test]
async fn ndjson_lines_split_across_chunks() {
    let mut wire = String::new();
    for piece in ["Grüße", ", ", "wörld"] {
        wire += &json!({"model":"m","message":{"role":"assistant","content":piece},"done":false})
            .to_string();
        wire += "\r\n";
    }
    wire += &json!({"model":"m","message":{"role":"assistant","content":""},"done":true,
        "done_reason":"length","prompt_eval_count":21,"eval_count":3})
    .to_string();
    // No newline after the last line.
    let chunks: Vec<Vec<u8>> = wire.as_bytes().chunks(5).map(<[u8]>::to_vec).collect();
    let app = Router::new().route(
        "/api/chat",
        post(move || {
            let chunks = chunks.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/x-ndjson")],
                    chunked_body(chunks),
                )
            }
        }),
    );
    let base = spawn(app).await;
    let generation = client(options(&base, Api::Ollama))
        .generate(request(TEXT, 100))
        .await
        .unwrap();
    assert_eq!(generation.text, "Grüße, wörld");
    assert_eq!(generation.finish_reason, FinishReason::Length);
    assert_eq!(generation.prompt_tokens, 21);
    assert_eq!(generation.completion_tokens, 3);
}

#[tokio::test]
async fn a_server_that_does_not_stream_is_understood() {
    // `serve` answers `"stream": false` with one JSON object; relay that whatever is asked.
    let upstream = spawn(echo_router(4096)).await;
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post({
                let upstream = upstream.clone();
                move |body: axum::Json<Value>| {
                    unstreamed(upstream.clone(), "/v1/chat/completions", body)
                }
            }),
        )
        .route(
            "/api/chat",
            post(move |body: axum::Json<Value>| unstreamed(upstream.clone(), "/api/chat", body)),
        );
    let base = spawn(app).await;
    for api in [Api::OpenAi, Api::Ollama] {
        let generation = client(options(&base, api))
            .generate(request(TEXT, 3))
            .await
            .unwrap();
        assert_eq!(generation.text, "Summary: The quick", "{api:?}");
        assert_eq!(generation.finish_reason, FinishReason::Length);
        assert_eq!(generation.prompt_tokens, 12);
        assert_eq!(generation.completion_tokens, 3);
    }
}

async fn unstreamed(
    upstream: String,
    path: &str,
    axum::Json(mut body): axum::Json<Value>,
) -> Response {
    body["stream"] = json!(false);
    let response = reqwest::Client::new()
        .post(format!("{upstream}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        [(header::CONTENT_TYPE, "application/json")],
        response.text().await.unwrap(),
    )
        .into_response()
}

#[tokio::test]
async fn a_stream_that_ends_unfinished_is_invalid() {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            sse_response(sse_event(json!({"choices":[{"delta":{"content":"half"}}]})))
        }),
    );
    let base = spawn(app).await;
    let error = client(options(&base, Api::OpenAi))
        .generate(request(TEXT, 100))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, GenerateError::InvalidResponse(m) if m.contains("without finishing")),
        "{error:?}"
    );
}

// ---- Retries ----

#[tokio::test]
async fn retries_429_and_503_then_succeeds() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                match n {
                    1 => (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response(),
                    2 => (StatusCode::SERVICE_UNAVAILABLE, "loading model").into_response(),
                    _ => sse_response(openai_stream(&["fine"])),
                }
            }
        }),
    );
    let base = spawn(app).await;
    let generation = client(options(&base, Api::OpenAi))
        .generate(request(TEXT, 100))
        .await
        .unwrap();
    assert_eq!(generation.text, "fine");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn gives_up_after_max_retries() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let app = Router::new().route(
        "/api/chat",
        post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"error":"server busy"}"#,
                )
            }
        }),
    );
    let base = spawn(app).await;
    let mut opts = options(&base, Api::Ollama);
    opts.max_retries = 2;
    let error = client(opts).generate(request(TEXT, 100)).await.unwrap_err();
    let GenerateError::Unavailable(message) = &error else {
        panic!("{error:?}");
    };
    assert!(message.contains("503"), "{message}");
    assert!(message.contains("server busy"), "{message}");
    assert!(message.contains("3 attempts"), "{message}");
    assert!(message.contains(&format!("{base}/api/chat")), "{message}");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn connection_refused_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut opts = options(&format!("http://{addr}"), Api::OpenAi);
    opts.max_retries = 1;
    let started = Instant::now();
    let error = client(opts).generate(request(TEXT, 100)).await.unwrap_err();
    assert!(
        matches!(&error, GenerateError::Unavailable(m) if m.contains("cannot connect") && m.contains("2 attempts")),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn no_retry_once_a_token_has_streamed() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                let first = sse_event(json!({"choices":[{"delta":{"content":"Once"}}]}));
                let parts: Vec<Result<Bytes, std::io::Error>> = vec![
                    Ok(Bytes::from(first)),
                    Err(std::io::Error::other("model crashed")),
                ];
                // The error aborts the chunked body: the connection drops mid-stream.
                let body = Body::from_stream(futures::stream::iter(parts).then(|part| async {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    part
                }));
                sse_response(body)
            }
        }),
    );
    let base = spawn(app).await;
    let error = client(options(&base, Api::OpenAi))
        .generate(request(TEXT, 100))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, GenerateError::Unavailable(m) if m.contains("broke off after 1 streamed pieces")),
        "{error:?}"
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_broken_response_before_the_first_token_is_retried() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n == 1 {
                    let parts: Vec<Result<Bytes, std::io::Error>> = vec![
                        Ok(Bytes::from_static(b": keep-alive\n\n")),
                        Err(std::io::Error::other("crashed")),
                    ];
                    sse_response(Body::from_stream(futures::stream::iter(parts)))
                } else {
                    sse_response(openai_stream(&["second", " time"]))
                }
            }
        }),
    );
    let base = spawn(app).await;
    let generation = client(options(&base, Api::OpenAi))
        .generate(request(TEXT, 100))
        .await
        .unwrap();
    assert_eq!(generation.text, "second time");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

// ---- Timeouts ----

#[tokio::test]
async fn first_token_timeout_counts_keep_alives_as_nothing() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                // Headers at once, then only keep-alive comments.
                let pings = futures::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((
                        Ok::<_, Infallible>(Bytes::from_static(b": keep-alive\n\n")),
                        (),
                    ))
                });
                sse_response(Body::from_stream(pings))
            }
        }),
    );
    let base = spawn(app).await;
    let mut opts = options(&base, Api::OpenAi);
    opts.first_token_timeout = Duration::from_millis(300);
    opts.max_retries = 1;
    let started = Instant::now();
    let error = client(opts).generate(request(TEXT, 100)).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(&error, GenerateError::Unavailable(m) if m.contains("first-token timeout")),
        "{error:?}"
    );
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "a first-token timeout is retried"
    );
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn first_token_timeout_when_the_server_never_answers() {
    let app = Router::new().route(
        "/api/chat",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "too late"
        }),
    );
    let base = spawn(app).await;
    let mut opts = options(&base, Api::Ollama);
    opts.first_token_timeout = Duration::from_millis(200);
    opts.max_retries = 0;
    let started = Instant::now();
    let error = client(opts).generate(request(TEXT, 100)).await.unwrap_err();
    assert!(
        matches!(&error, GenerateError::Unavailable(m) if m.contains("first-token timeout")),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn total_timeout_while_streaming_is_not_retried() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                let tokens = futures::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let event = sse_event(json!({"choices":[{"delta":{"content":"la"}}]}));
                    Some((Ok::<_, Infallible>(Bytes::from(event)), ()))
                });
                sse_response(Body::from_stream(tokens))
            }
        }),
    );
    let base = spawn(app).await;
    let mut opts = options(&base, Api::OpenAi);
    opts.total_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let error = client(opts).generate(request(TEXT, 100)).await.unwrap_err();
    assert!(
        matches!(&error, GenerateError::Unavailable(m) if m.contains("in total")),
        "{error:?}"
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

// ---- Errors ----

#[tokio::test]
async fn a_4xx_error_body_surfaces_without_retry() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    StatusCode::NOT_FOUND,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"error":{"message":"The model `echo-1` does not exist.","type":"NotFoundError","code":404}}"#,
                )
            }
        }),
    );
    let base = spawn(app).await;
    let error = client(options(&base, Api::OpenAi))
        .generate(request(TEXT, 100))
        .await
        .unwrap_err();
    let GenerateError::InvalidResponse(message) = &error else {
        panic!("{error:?}");
    };
    assert!(message.contains("404"), "{message}");
    assert!(
        message.contains("The model `echo-1` does not exist."),
        "{message}"
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_api_key_is_a_bearer_header_and_never_in_errors() {
    const KEY: &str = "sk-test-0123456789abcdef";
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |headers: HeaderMap| {
            let auth = headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            log.lock().unwrap().push(auth.clone());
            // A careless server echoing the credentials back.
            async move {
                (
                    StatusCode::UNAUTHORIZED,
                    format!(r#"{{"error":"invalid credentials: {auth}"}}"#),
                )
            }
        }),
    );
    let base = spawn(app).await;
    let mut opts = options(&base, Api::OpenAi);
    opts.api_key = Some(KEY.into());
    assert!(!format!("{opts:?}").contains(KEY));
    let generator = client(opts);
    assert!(!format!("{generator:?}").contains(KEY));
    let error = generator.generate(request(TEXT, 100)).await.unwrap_err();
    assert_eq!(seen.lock().unwrap().as_slice(), [format!("Bearer {KEY}")]);
    let message = error.to_string();
    assert!(
        matches!(error, GenerateError::InvalidResponse(_)),
        "{error:?}"
    );
    assert!(message.contains("401"), "{message}");
    assert!(
        message.contains("invalid credentials: Bearer [redacted]"),
        "{message}"
    );
    assert!(!message.contains(KEY), "{message}");

    // Credentials in the URL go as Basic auth and stay out of errors and debug output.
    let with_userinfo = base.replace("http://", "http://admin:hunter2@");
    let opts = options(&with_userinfo, Api::OpenAi);
    assert!(!format!("{opts:?}").contains("hunter2"));
    let generator = client(opts.clone());
    assert_eq!(generator.endpoint(), format!("{base}/v1/chat/completions"));
    let message = generator
        .generate(request(TEXT, 100))
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("invalid credentials: Basic"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert_eq!(seen.lock().unwrap().len(), 2);

    // Both at once cannot be sent.
    let mut both = opts;
    both.api_key = Some(KEY.into());
    let error = HttpGenerator::new(both).unwrap_err().to_string();
    assert!(error.contains("both an API key and credentials"), "{error}");
    assert!(
        !error.contains(KEY) && !error.contains("hunter2"),
        "{error}"
    );
}

#[tokio::test]
async fn a_prompt_beyond_the_context_is_refused_before_sending() {
    let mut opts = options("http://127.0.0.1:9", Api::OpenAi);
    opts.context_window = 16;
    let error = client(opts)
        .generate(request(&"word ".repeat(40), 10))
        .await
        .unwrap_err();
    assert!(
        matches!(error, GenerateError::PromptTooLong { limit: 16, .. }),
        "{error:?}"
    );
}

// ---- Concurrency ----

#[tokio::test]
async fn concurrency_is_bounded() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, peak) = (in_flight.clone(), most.clone());
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let (now, peak) = (now.clone(), peak.clone());
            async move {
                let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(current, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                sse_response(openai_stream(&["ok"]))
            }
        }),
    );
    let base = spawn(app).await;
    let mut opts = options(&base, Api::OpenAi);
    opts.max_concurrency = 3;
    let generator = Arc::new(client(opts));
    let calls = (0..10).map(|_| {
        let generator = generator.clone();
        tokio::spawn(async move { generator.generate(request(TEXT, 100)).await })
    });
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap().unwrap().text, "ok");
    }
    let peak = most.load(Ordering::SeqCst);
    assert!(peak <= 3, "{peak} requests in flight at once");
    assert!(peak >= 2, "the calls ran one at a time ({peak})");
}

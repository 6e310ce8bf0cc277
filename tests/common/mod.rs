//! Helpers of the black-box server tests: a store per test (SQLite in a temp dir, or a fresh
//! Postgres database), the `quire serve` process, and a small HTTP client for the API.

#![allow(dead_code, unreachable_pub, reason = "each test binary uses a subset")]

pub mod cluster;
pub mod lending;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-secret-pw";

/// How long a server may take to print its listening line (debug builds, Postgres migrations).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The `quire` binary with a clean environment.
pub fn quire() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quire"));
    for (key, _) in std::env::vars() {
        if key.starts_with("QUIRE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where a test's data lives: always a temp data dir (SQLite files, token secret), plus a fresh
/// Postgres database for the Postgres backend.
pub struct Store {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub args: Vec<String>,
}

impl Store {
    /// Fails loudly when Postgres is unreachable (see `quire_store::testing`).
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = vec!["--data-dir".to_string(), dir.path().display().to_string()];
        if backend == Backend::Postgres {
            let url = quire_store::testing::fresh_postgres_database().await;
            args.push("--database-url".into());
            args.push(url);
        }
        Self { backend, dir, args }
    }

    /// A `quire` command pointed at this store.
    pub fn command(&self) -> Command {
        let mut cmd = quire();
        cmd.args(&self.args);
        cmd
    }

    /// Runs a `quire` tool on this store to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run quire")
    }

    /// The events a `quire events …` tool prints as JSON lines (`args` ask for `--json`).
    pub fn events(&self, args: &[&str]) -> Vec<Value> {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "quire {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| serde_json::from_str(line).expect("event JSON line"))
            .collect()
    }

    /// The event types of a stream, in order (`quire events show --json`).
    pub fn event_types(&self, stream: &str) -> Vec<String> {
        self.events(&["events", "show", stream, "--limit", "100000", "--json"])
            .iter()
            .map(|event| {
                event["event_type"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no event_type: {event}"))
                    .to_string()
            })
            .collect()
    }
}

/// A running `quire serve`; killed (SIGKILL) when dropped if still running.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub pid: u32,
}

impl Server {
    /// Starts `quire serve --listen 127.0.0.1:0` on `store` with an admin and no rate limit, and
    /// waits for its "quire listening on …" line.
    pub fn start(store: &Store, extra: &[&str]) -> Self {
        Self::start_with_env(store, extra, &[])
    }

    /// [`start`](Self::start) with more environment variables (settings such as
    /// `QUIRE_SUMMARIES__DEBOUNCE_SECS`).
    pub fn start_with_env(store: &Store, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = store
            .command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
            .env("QUIRE_ADMIN_USER", ADMIN)
            .env("QUIRE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("QUIRE_API__RATE_LIMIT_PER_SECOND", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start quire serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Keeps draining stdout so the server never writes to a closed pipe.
        std::thread::spawn(move || {
            let mut first = true;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if first {
                    let _ = tx.send(line);
                    first = false;
                }
            }
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(error) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "quire serve printed no listening line within {START_TIMEOUT:?} ({error}); exit status: {status:?}"
                );
            }
        };
        let url = line
            .trim()
            .strip_prefix("quire listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        let pid = child.id();
        Self {
            child: Some(child),
            url,
            pid,
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("server is running");
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap");
        assert!(!status.success(), "a SIGKILLed server cannot exit 0");
    }

    /// SIGTERM, then waits (with a deadline) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is running");
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("quire did not stop within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The consistency token of a write response.
pub fn consistency_token(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("consistency-token")
        .unwrap_or_else(|| panic!("no Consistency-Token on {}", response.url()))
        .to_str()
        .unwrap()
        .parse()
        .expect("numeric consistency token")
}

/// A client of one server.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self::with_client(base, reqwest::Client::new())
    }

    /// A client whose requests give up after `timeout` (a node may be killed mid-request).
    pub fn with_timeout(base: &str, timeout: Duration) -> Self {
        Self::with_client(
            base,
            reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("HTTP client"),
        )
    }

    pub fn with_client(base: &str, http: reqwest::Client) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn admin(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.basic_auth(ADMIN, Some(ADMIN_PASSWORD))
    }

    /// Adds a book as the admin; returns its id and the write's consistency token.
    pub async fn create_book(&self, title: &str) -> (String, u64) {
        let response = self
            .admin(self.http.post(self.url("/books")))
            .json(&json!({
                "title": title,
                "author": "Mary Shelley",
                "genre": "gothic",
                "year_published": 1818,
            }))
            .send()
            .await
            .expect("POST /books");
        let status = response.status();
        let token = consistency_token(&response);
        let body: Value = response.json().await.expect("book JSON");
        assert!(status.is_success(), "POST /books: {status} {body}");
        (body["id"].as_str().expect("book id").to_string(), token)
    }

    /// Enrols a patron (a member without a login) as the admin; returns the user id.
    pub async fn enrol_patron(&self, name: &str) -> String {
        let response = self
            .admin(self.http.post(self.url("/users")))
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("POST /users");
        let status = response.status();
        let body: Value = response.json().await.expect("user JSON");
        assert!(status.is_success(), "POST /users: {status} {body}");
        body["id"].as_str().expect("user id").to_string()
    }

    /// Signs a member up (no credentials); returns the user id and the consistency token.
    pub async fn sign_up(&self, username: &str, password: &str) -> (String, u64) {
        let response = self
            .http
            .post(self.url("/users"))
            .json(&json!({ "name": username, "username": username, "password": password }))
            .send()
            .await
            .expect("POST /users");
        let status = response.status();
        let token = consistency_token(&response);
        let body: Value = response.json().await.expect("user JSON");
        assert!(status.is_success(), "sign-up: {status} {body}");
        (body["id"].as_str().expect("user id").to_string(), token)
    }

    /// The admin posts a review on a member's behalf.
    pub async fn review_for(
        &self,
        book: &str,
        user_id: &str,
        rating: u8,
    ) -> reqwest::Result<reqwest::Response> {
        self.admin(self.http.post(self.url(&format!("/books/{book}/reviews"))))
            .json(&json!({
                "rating": rating,
                "review_text": format!("review by {user_id}"),
                "user_id": user_id,
            }))
            .send()
            .await
    }

    /// GETs JSON, presenting a consistency token if given.
    pub async fn get(&self, path: &str, token: Option<u64>) -> (StatusCode, Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.header("Consistency-Token", token.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// GETs JSON as the admin.
    pub async fn admin_get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .admin(self.http.get(self.url(path)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Every review of a book (all pages).
    pub async fn all_reviews(&self, book: &str, token: Option<u64>) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/books/{book}/reviews?limit=100&cursor={c}"),
                None => format!("/books/{book}/reviews?limit=100"),
            };
            let (status, body) = self.get(&path, token).await;
            assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
            out.extend(body["reviews"].as_array().expect("reviews").iter().cloned());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(urlencode(c)),
                None => return out,
            }
        }
    }

    /// How many books `GET /books` lists (all pages).
    pub async fn try_count_books(&self) -> Result<usize, String> {
        let mut count = 0;
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/books?limit=100&cursor={c}"),
                None => "/books?limit=100".to_string(),
            };
            let response = self
                .http
                .get(self.url(&path))
                .send()
                .await
                .map_err(|e| format!("GET {path}: {e}"))?;
            let status = response.status();
            let body: Value = response
                .json()
                .await
                .map_err(|e| format!("GET {path}: {status}: {e}"))?;
            if status != StatusCode::OK {
                return Err(format!("GET {path}: {status} {body}"));
            }
            count += body["books"].as_array().map_or(0, Vec::len);
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(urlencode(c)),
                None => return Ok(count),
            }
        }
    }
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Polls `check` until it returns `Some`, or panics with `what` at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

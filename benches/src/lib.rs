//! Shared benchmark helpers: timed concurrent loops, latency histograms, result tables.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// One measured scenario.
pub struct Measurement {
    pub name: String,
    pub ops: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Measurement {
    pub fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// A row: name, ops, ops/s, p50, p99 (latencies in microseconds).
    pub fn row(&self) -> String {
        format!(
            "{:<58} {:>9} {:>11.0} {:>9.2} {:>9.2}",
            self.name,
            self.ops,
            self.per_second(),
            self.latency.value_at_quantile(0.50) as f64 / 1e6,
            self.latency.value_at_quantile(0.99) as f64 / 1e6,
        )
    }
}

/// Prints the header that goes with [`Measurement::row`].
pub fn header() {
    println!(
        "{:<58} {:>9} {:>11} {:>9} {:>9}",
        "scenario", "ops", "ops/s", "p50 ms", "p99 ms"
    );
    println!("{}", "-".repeat(100));
}

/// A latency histogram in nanoseconds, from 1 µs to a minute.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("histogram")
}

/// Runs `op(worker, i)` from `workers` concurrent tasks for `duration`, timing each call.
/// `op` returns how many units (events, rows) the call completed.
pub async fn run_for<F, Fut>(name: &str, workers: usize, duration: Duration, op: F) -> Measurement
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let op = Arc::new(op);
    let hist = Arc::new(Mutex::new(histogram()));
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let op = op.clone();
            let hist = hist.clone();
            tokio::spawn(async move {
                let mut local = histogram();
                let mut done = 0u64;
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    done += op(w, i).await;
                    local.saturating_record(t.elapsed().as_nanos() as u64);
                    i += 1;
                }
                hist.lock().await.add(local).expect("merge histogram");
                done
            })
        })
        .collect();
    let mut ops = 0;
    for t in tasks {
        ops += t.await.expect("worker");
    }
    let elapsed = start.elapsed();
    let Ok(latency) = Arc::try_unwrap(hist) else {
        unreachable!("every worker has finished and dropped its handle");
    };
    let latency = latency.into_inner();
    Measurement {
        name: name.to_string(),
        ops,
        elapsed,
        latency,
    }
}

/// Seconds per scenario: `QUIRE_BENCH_SECONDS` (default 5).
pub fn scenario_duration() -> Duration {
    let secs = std::env::var("QUIRE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(5.0);
    Duration::from_secs_f64(secs)
}

/// Resident memory of this process in bytes (Linux), for memory figures.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Where a benchmarked node keeps its data.
#[derive(Clone)]
pub enum Data {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

/// The admin every benchmarked node creates; its password.
pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "bench-password-1";

/// One node, started by `Application::build` as `quire serve` starts one.
pub struct Node {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub read: quire_projections::ReadModels,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts a node on `data` with the benchmarks' settings (no rate limit, no background
/// summaries, which would compete with the measured requests), then `configure`'s changes.
pub async fn start_node(data: &Data, configure: impl FnOnce(&mut quire::config::Settings)) -> Node {
    use quire::config::{Secret, Settings};
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().expect("address"),
        admin_user: Some(ADMIN.into()),
        admin_password: Some(Secret::new(PASSWORD)),
        ..Settings::default()
    };
    match data {
        Data::Sqlite(dir) => settings.data_dir = dir.clone(),
        Data::Postgres(url) => settings.database_url = Some(Secret::new(url.clone())),
    }
    settings.api.rate_limit_per_second = 0.0;
    settings.api.token_secret = Some(Secret::new(
        "the benchmarks' token secret, 32 characters or more",
    ));
    settings.summaries.auto = false;
    configure(&mut settings);
    let app = quire::Application::build(settings)
        .await
        .expect("start the node");
    let base = format!("http://{}", app.local_addr().expect("HTTP address"));
    let read = app.read_models().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Node {
        base,
        read,
        stop,
        task,
    }
}

impl Node {
    /// Stops the node and waits for its shutdown.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        self.task.await.expect("node task").expect("node");
    }
}

/// A client for many concurrent requests to one node: up to `idle` pooled connections.
pub fn client(idle: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(idle)
        .build()
        .expect("client")
}

/// Trades `username`'s password ([`PASSWORD`]) for a bearer token.
pub async fn bearer_token(http: &reqwest::Client, base: &str, username: &str) -> String {
    let response = http
        .post(format!("{base}/auth/token"))
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await
        .expect("token");
    assert!(response.status().is_success(), "{}", response.status());
    let body: Value = response.json().await.expect("token JSON");
    body["access_token"].as_str().expect("token").to_string()
}

/// POSTs `body` to `path` as the admin (`admin` is its bearer token), asserts that the node
/// created something, and returns its id.
pub async fn create(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    path: &str,
    body: &Value,
) -> String {
    let response = http
        .post(format!("{base}{path}"))
        .bearer_auth(admin)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "POST {path}: {status} {text}");
    let created: Value = serde_json::from_str(&text).expect("JSON body");
    created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("POST {path}: no id in {created}"))
        .to_string()
}

/// The body of a `POST /books` of the benchmarks' books.
pub fn book_json(title: &str) -> Value {
    json!({
        "title": title,
        "author": "Mark Twain",
        "genre": "adventure",
        "year_published": 1876,
    })
}

/// Adds a book titled `title` as the admin; returns its id.
pub async fn add_book(http: &reqwest::Client, base: &str, admin: &str, title: &str) -> String {
    create(http, base, admin, "/books", &book_json(title)).await
}

/// Enrols a patron (a member without a login) named `name` as the admin; returns the user id.
pub async fn enrol_patron(http: &reqwest::Client, base: &str, admin: &str, name: &str) -> String {
    create(http, base, admin, "/users", &json!({ "name": name })).await
}

/// A domain event as the benchmarks append it straight to a store: a fresh id, stamped now, by the
/// system.
pub fn system_event<E: quire_domain::DomainEvent>(event: &E) -> quire_store::NewEvent {
    quire_store::NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: event.event_type().into(),
        schema_version: event.schema_version(),
        payload: event.to_payload(),
        metadata: quire_store::EventMetadata {
            actor: Some("system".into()),
            occurred_at: quire_store::now_micros(),
            ..quire_store::EventMetadata::default()
        },
    }
}

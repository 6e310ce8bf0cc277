//! Lending over real sockets: the node is started in-process by `Application::build`, as
//! `quire serve` starts one (rate limit and background summaries off, writes wait up to 5 s for
//! the read models as by default), and driven with reqwest from many tasks. Per backend (SQLite
//! in a temp dir, Postgres in a fresh database):
//!
//! - borrows: 64 clients work through a fixed list of distinct (book, member) pairs, one per
//!   copy, with `POST /books/{book_id}/borrow/{user_id}` as the admin (staff lend to patrons);
//!   then the same pairs are returned with `POST /books/{book_id}/return/{user_id}`. By default
//!   10,000 books each have one registered barcode copy (as a library that registers its stock)
//!   and 2,000 patrons borrow 5 books each (the default `lending.max_loans`), so nearly every
//!   borrow succeeds; the statuses are counted, refusals by their problem `code`;
//! - one popular book: 10 registered copies, 200 patrons released at once to borrow it; the time
//!   until the last answer, the latencies, and whether exactly 10 got a 201 and 190 a 409.
//!
//! All requests carry the admin's bearer token (an HMAC check, no password hash per request).
//!
//! Run: `cargo bench -p quire-benches --bench lending`. Sizes: `LENDING_BENCH_BOOKS` (10000),
//! `LENDING_BENCH_MEMBERS` (books / 5; `lending.max_loans` is raised if each member must borrow
//! more than 5), `LENDING_BENCH_CLIENTS` (64), `LENDING_BENCH_COPIES` (`registered`, or
//! `implicit`: books without copies, lending as their one implicit copy),
//! `LENDING_BENCH_POPULAR_COPIES` (10), `LENDING_BENCH_POPULAR_MEMBERS` (200). A smoke run:
//! `-- --quick` or `LENDING_BENCH_QUICK=1` (500 books). `QUIRE_BENCH_ONLY=sqlite` or `postgres`
//! picks a backend.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;
use quire_benches::{ADMIN, Data, Measurement, PASSWORD, header, start_node};
use serde_json::{Value, json};

/// Concurrent clients of the setup requests (books, copies, patrons).
const SETUP_CLIENTS: usize = 64;

/// The sizes of a run, from the environment.
#[derive(Clone, Copy)]
struct Sizes {
    books: usize,
    members: usize,
    clients: usize,
    max_loans: u32,
    registered: bool,
    popular_copies: usize,
    popular_members: usize,
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(raw) => raw
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number (it is {raw:?})")),
        Err(_) => default,
    }
}

impl Sizes {
    fn from_env() -> Self {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var("LENDING_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let default_loans = quire_actors::lending::LendingPolicy::default().max_loans as usize;
        let books = env_usize("LENDING_BENCH_BOOKS", if quick { 500 } else { 10_000 }).max(1);
        let members = env_usize("LENDING_BENCH_MEMBERS", books.div_ceil(default_loans)).max(1);
        let max_loans = books.div_ceil(members).max(default_loans);
        let registered = match std::env::var("LENDING_BENCH_COPIES").as_deref() {
            Ok("implicit") => false,
            Ok("registered") | Err(_) => true,
            Ok(other) => panic!("LENDING_BENCH_COPIES must be registered or implicit ({other:?})"),
        };
        Self {
            books,
            members,
            clients: env_usize("LENDING_BENCH_CLIENTS", 64).max(1),
            max_loans: u32::try_from(max_loans).expect("max_loans fits u32"),
            registered,
            popular_copies: env_usize("LENDING_BENCH_POPULAR_COPIES", 10),
            popular_members: env_usize("LENDING_BENCH_POPULAR_MEMBERS", 200),
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("histogram")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .expect("client")
}

/// Trades the admin's password for a bearer token (the only password hash of the run).
async fn admin_token(http: &reqwest::Client, base: &str) -> String {
    let response = http
        .post(format!("{base}/auth/token"))
        .json(&json!({ "username": ADMIN, "password": PASSWORD }))
        .send()
        .await
        .expect("token");
    assert!(response.status().is_success(), "{}", response.status());
    let body: Value = response.json().await.expect("token JSON");
    body["access_token"].as_str().expect("token").to_string()
}

/// A status, with the problem `code` of a refusal: `201`, `409 copy_unavailable`.
async fn outcome(response: reqwest::Response) -> String {
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        return status.as_u16().to_string();
    }
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_string))
        .unwrap_or_default();
    format!("{} {code}", status.as_u16())
}

/// Runs `op(i)` for every `i` in `0..jobs` from `clients` concurrent tasks (each takes the next
/// job), timing each call and counting the outcomes it returns.
async fn drive<F, Fut>(
    name: &str,
    clients: usize,
    jobs: usize,
    op: F,
) -> (Measurement, BTreeMap<String, u64>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = String> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (op, next) = (op.clone(), next.clone());
            tokio::spawn(async move {
                let mut latency = histogram();
                let mut outcomes = BTreeMap::<String, u64>::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= jobs {
                        break;
                    }
                    let t = Instant::now();
                    let outcome = op(i).await;
                    latency.saturating_record(t.elapsed().as_nanos() as u64);
                    *outcomes.entry(outcome).or_default() += 1;
                }
                (latency, outcomes)
            })
        })
        .collect();
    let mut latency = histogram();
    let mut outcomes = BTreeMap::new();
    for t in tasks {
        let (l, o) = t.await.expect("client task");
        latency.add(l).expect("merge histogram");
        for (k, v) in o {
            *outcomes.entry(k).or_default() += v;
        }
    }
    let measurement = Measurement {
        name: name.to_string(),
        ops: jobs as u64,
        elapsed: start.elapsed(),
        latency,
    };
    (measurement, outcomes)
}

fn print_outcomes(outcomes: &BTreeMap<String, u64>) {
    let listed: Vec<String> = outcomes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("    answers: {}", listed.join(", "));
}

/// Asserts that a setup request succeeded; returns its JSON body.
async fn created(response: reqwest::Response, what: &str) -> Value {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "{what}: {status} {body}");
    serde_json::from_str(&body).expect("JSON body")
}

/// Runs setup requests from `SETUP_CLIENTS` tasks; prints how fast; returns the ids.
async fn setup<F, Fut>(name: &str, jobs: usize, op: F) -> Vec<String>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = String> + Send + 'static,
{
    let ids = Arc::new(std::sync::Mutex::new(vec![String::new(); jobs]));
    let sink = ids.clone();
    let op = Arc::new(op);
    let (m, _) = drive(name, SETUP_CLIENTS, jobs, move |i| {
        let (op, sink) = (op.clone(), sink.clone());
        async move {
            let id = op(i).await;
            sink.lock().expect("ids")[i] = id;
            String::new()
        }
    })
    .await;
    println!(
        "{:<58} {:>9} {:>11.0}   (setup, {SETUP_CLIENTS} clients)",
        m.name,
        m.ops,
        m.per_second()
    );
    let Ok(ids) = Arc::try_unwrap(ids) else {
        unreachable!("every setup task has finished");
    };
    ids.into_inner().expect("ids")
}

async fn add_books(
    backend: &str,
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    n: usize,
    label: &'static str,
) -> Vec<String> {
    let (http, base, admin) = (http.clone(), base.to_string(), admin.to_string());
    setup(&format!("{backend}: POST /books"), n, move |i| {
        let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
        async move {
            let response = http
                .post(format!("{base}/books"))
                .bearer_auth(&admin)
                .json(&json!({
                    "title": format!("{label}, vol. {i}"),
                    "author": "Mark Twain",
                    "genre": "adventure",
                    "year_published": 1876,
                }))
                .send()
                .await
                .expect("POST /books");
            created(response, "POST /books").await["id"]
                .as_str()
                .expect("book id")
                .to_string()
        }
    })
    .await
}

/// Registers one copy per entry of `books` (a book may appear more than once).
async fn add_copies(
    backend: &str,
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    books: Arc<Vec<String>>,
    prefix: &'static str,
) {
    let (http, base, admin) = (http.clone(), base.to_string(), admin.to_string());
    let n = books.len();
    setup(
        &format!("{backend}: POST /books/{{id}}/copies"),
        n,
        move |i| {
            let (http, base, admin, book) =
                (http.clone(), base.clone(), admin.clone(), books[i].clone());
            async move {
                let response = http
                    .post(format!("{base}/books/{book}/copies"))
                    .bearer_auth(&admin)
                    .json(&json!({ "barcode": format!("{prefix}{i:08}") }))
                    .send()
                    .await
                    .expect("POST copies");
                created(response, "POST /books/{id}/copies").await["id"]
                    .as_str()
                    .expect("copy id")
                    .to_string()
            }
        },
    )
    .await;
}

/// Enrols `n` patrons (members without a login) as the admin; returns their ids.
async fn enrol_patrons(
    backend: &str,
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    n: usize,
    label: &'static str,
) -> Vec<String> {
    let (http, base, admin) = (http.clone(), base.to_string(), admin.to_string());
    setup(&format!("{backend}: POST /users (patrons)"), n, move |i| {
        let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
        async move {
            let response = http
                .post(format!("{base}/users"))
                .bearer_auth(&admin)
                .json(&json!({ "name": format!("{label} {i}") }))
                .send()
                .await
                .expect("POST /users");
            created(response, "POST /users").await["id"]
                .as_str()
                .expect("user id")
                .to_string()
        }
    })
    .await
}

/// Borrows, then returns, one copy of every book, `clients` at a time.
async fn circulation(backend: &str, http: &reqwest::Client, base: &str, admin: &str, s: Sizes) {
    let books = Arc::new(add_books(backend, http, base, admin, s.books, "Tom Sawyer").await);
    if s.registered {
        add_copies(backend, http, base, admin, books.clone(), "TS-").await;
    }
    let members = Arc::new(enrol_patrons(backend, http, base, admin, s.members, "Patron").await);
    // Pair i: book i for member i % members. A member's pairs are `members` jobs apart, so
    // the clients rarely work for one member at once.
    let pair = {
        let (books, members) = (books.clone(), members.clone());
        move |i: usize| (books[i].clone(), members[i % members.len()].clone())
    };
    let clients = s.clients;
    for (verb, expected) in [("borrow", "201"), ("return", "200")] {
        let (http, base, admin, pair) = (
            http.clone(),
            base.to_string(),
            admin.to_string(),
            pair.clone(),
        );
        let name = format!("{backend}: POST /books/{{id}}/{verb}/{{user}}, {clients} clients");
        let (m, outcomes) = drive(&name, clients, books.len(), move |i| {
            let (book, member) = pair(i);
            let url = format!("{base}/books/{book}/{verb}/{member}");
            let (http, admin) = (http.clone(), admin.clone());
            async move {
                let response = http
                    .post(url)
                    .bearer_auth(admin)
                    .send()
                    .await
                    .expect("POST lending");
                outcome(response).await
            }
        })
        .await;
        println!("{}", m.row());
        print_outcomes(&outcomes);
        let ok = outcomes.get(expected).copied().unwrap_or(0);
        if ok != m.ops {
            println!(
                "    WARNING: {} of {} {verb}s answered something other than {expected}",
                m.ops - ok,
                m.ops
            );
        }
    }
}

/// `members` patrons released at once to borrow one book of `copies` copies.
async fn popular(backend: &str, http: &reqwest::Client, base: &str, admin: &str, s: Sizes) {
    let scope = format!("{backend} (popular book)");
    let book = add_books(&scope, http, base, admin, 1, "Huckleberry Finn").await[0].clone();
    let copies = Arc::new(vec![book.clone(); s.popular_copies]);
    add_copies(&scope, http, base, admin, copies, "HF-").await;
    let members = enrol_patrons(&scope, http, base, admin, s.popular_members, "Reader").await;
    // Warm one connection per racer, so the race measures the node, not TCP handshakes.
    let warm: Vec<_> = (0..members.len())
        .map(|_| {
            let request = http.get(format!("{base}/books/{book}")).send();
            async move {
                let _ = request.await.expect("GET book").bytes().await;
            }
        })
        .collect();
    futures::future::join_all(warm).await;

    let gate = Arc::new(tokio::sync::Barrier::new(members.len() + 1));
    let racers: Vec<_> = members
        .iter()
        .map(|member| {
            let url = format!("{base}/books/{book}/borrow/{member}");
            let (http, admin, gate) = (http.clone(), admin.to_string(), gate.clone());
            tokio::spawn(async move {
                gate.wait().await;
                let t = Instant::now();
                let response = http
                    .post(url)
                    .bearer_auth(admin)
                    .send()
                    .await
                    .expect("POST borrow");
                let answer = outcome(response).await;
                (t.elapsed(), answer)
            })
        })
        .collect();
    gate.wait().await;
    let start = Instant::now();
    let mut latency = histogram();
    let mut outcomes = BTreeMap::<String, u64>::new();
    for racer in racers {
        let (took, answer) = racer.await.expect("racer");
        latency.saturating_record(took.as_nanos() as u64);
        *outcomes.entry(answer).or_default() += 1;
    }
    let settled = start.elapsed();
    let n = members.len();
    let name = format!(
        "{backend}: {n} borrow one book of {} copies at once",
        s.popular_copies
    );
    let m = Measurement {
        name,
        ops: n as u64,
        elapsed: settled,
        latency,
    };
    println!("{}", m.row());
    println!(
        "    settled in {:.2} ms (release -> last answer); max latency {:.2} ms",
        settled.as_secs_f64() * 1e3,
        m.latency.max() as f64 / 1e6
    );
    print_outcomes(&outcomes);
    let lent = outcomes.get("201").copied().unwrap_or(0);
    let refused: u64 = outcomes
        .iter()
        .filter(|(k, _)| k.starts_with("409"))
        .map(|(_, v)| v)
        .sum();
    let want_lent = s.popular_copies.min(n) as u64;
    let want_refused = n as u64 - want_lent;
    println!("    201: {lent} (want {want_lent}), 409: {refused} (want {want_refused})");
    if lent != want_lent || refused != want_refused {
        println!(
            "    WARNING: expected exactly {want_lent} x 201 and {want_refused} x 409, got {lent} x 201 and {refused} x 409"
        );
    }
    let availability: Value = http
        .get(format!("{base}/books/{book}/availability"))
        .bearer_auth(admin)
        .send()
        .await
        .expect("GET availability")
        .json()
        .await
        .expect("availability JSON");
    let on_loan = availability["on_loan"].as_array().map_or(0, Vec::len);
    println!(
        "    availability after: copies_total {}, copies_available {}, on_loan {on_loan}",
        availability["copies_total"], availability["copies_available"]
    );
    if on_loan as u64 != want_lent || availability["copies_available"] != json!(0) {
        println!("    WARNING: the availability does not show every copy lent exactly once");
    }
}

async fn scenarios(backend: &str, data: Data, sizes: Sizes) {
    let server = start_node(&data, |s| {
        s.api.write_wait_ms = 5_000;
        s.lending.max_loans = sizes.max_loans;
    })
    .await;
    let http = client();
    let admin = admin_token(&http, &server.base).await;
    circulation(backend, &http, &server.base, &admin, sizes).await;
    popular(backend, &http, &server.base, &admin, sizes).await;
    server.shutdown().await;
}

#[tokio::main]
async fn main() {
    let sizes = Sizes::from_env();
    let only = std::env::var("QUIRE_BENCH_ONLY").unwrap_or_default();
    let copies = if sizes.registered {
        "one registered barcode copy each"
    } else {
        "no registered copies, each lends as its one implicit copy"
    };
    println!(
        "Lending benchmark: {} books ({copies}), {} patrons x up to {} loans, {} clients; \
         popular book: {} registered copies, {} patrons at once",
        sizes.books,
        sizes.members,
        sizes.max_loans,
        sizes.clients,
        sizes.popular_copies,
        sizes.popular_members,
    );
    println!(
        "reqwest over loopback to an in-process node, admin bearer token; 201/200 = durable and \
         in the lending read model"
    );
    header();
    if only.is_empty() || "sqlite".contains(only.as_str()) {
        let dir = tempfile::tempdir().expect("temp dir");
        scenarios("sqlite", Data::Sqlite(dir.path().to_path_buf()), sizes).await;
    }
    if only.is_empty() || "postgres".contains(only.as_str()) {
        let pg = quire_store::testing::fresh_postgres_database().await;
        scenarios("postgres", Data::Postgres(pg), sizes).await;
    }
    println!("(latencies are whole HTTP round trips; ops are requests)");
}

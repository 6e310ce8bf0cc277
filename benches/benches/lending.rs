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

use quire_benches::{
    ADMIN, Data, Measurement, bearer_token, book_json, client, create, header, histogram,
    start_node,
};
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

/// Sends a lending request; its status, with the problem `code` of a refusal: `201`,
/// `409 copy_unavailable`.
async fn outcome(request: reqwest::RequestBuilder) -> String {
    let response = request.send().await.expect("POST lending");
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

/// The node under test as its admin reaches it: the client, the base URL, the bearer token.
#[derive(Clone)]
struct Staff {
    http: reqwest::Client,
    base: String,
    admin: String,
}

impl Staff {
    /// A POST to `path` as the admin, not sent yet.
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
    }
}

/// Creates `jobs` resources as the admin from `SETUP_CLIENTS` tasks, `request(i)` giving the
/// path and the JSON body of the i-th POST; prints how fast; returns the ids.
async fn setup<F>(name: &str, staff: &Staff, jobs: usize, request: F) -> Vec<String>
where
    F: Fn(usize) -> (String, Value) + Send + Sync + 'static,
{
    let ids = Arc::new(std::sync::Mutex::new(vec![String::new(); jobs]));
    let sink = ids.clone();
    let staff = staff.clone();
    let request = Arc::new(request);
    let (m, _) = drive(name, SETUP_CLIENTS, jobs, move |i| {
        let (staff, sink) = (staff.clone(), sink.clone());
        let (path, body) = request(i);
        async move {
            let id = create(&staff.http, &staff.base, &staff.admin, &path, &body).await;
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

async fn add_books(backend: &str, staff: &Staff, n: usize, label: &'static str) -> Vec<String> {
    let name = format!("{backend}: POST /books");
    setup(&name, staff, n, move |i| {
        (
            "/books".to_string(),
            book_json(&format!("{label}, vol. {i}")),
        )
    })
    .await
}

/// Registers one copy per entry of `books` (a book may appear more than once).
async fn add_copies(backend: &str, staff: &Staff, books: Arc<Vec<String>>, prefix: &'static str) {
    let name = format!("{backend}: POST /books/{{id}}/copies");
    setup(&name, staff, books.len(), move |i| {
        let path = format!("/books/{}/copies", books[i]);
        (path, json!({ "barcode": format!("{prefix}{i:08}") }))
    })
    .await;
}

/// Enrols `n` patrons (members without a login) as the admin; returns their ids.
async fn enrol_patrons(backend: &str, staff: &Staff, n: usize, label: &'static str) -> Vec<String> {
    let name = format!("{backend}: POST /users (patrons)");
    setup(&name, staff, n, move |i| {
        (
            "/users".to_string(),
            json!({ "name": format!("{label} {i}") }),
        )
    })
    .await
}

/// Borrows, then returns, one copy of every book, `clients` at a time.
async fn circulation(backend: &str, staff: &Staff, s: Sizes) {
    let books = Arc::new(add_books(backend, staff, s.books, "Tom Sawyer").await);
    if s.registered {
        add_copies(backend, staff, books.clone(), "TS-").await;
    }
    let members = Arc::new(enrol_patrons(backend, staff, s.members, "Patron").await);
    // Pair i: book i for member i % members. A member's pairs are `members` jobs apart, so
    // the clients rarely work for one member at once.
    let pair = {
        let (books, members) = (books.clone(), members.clone());
        move |i: usize| (books[i].clone(), members[i % members.len()].clone())
    };
    let clients = s.clients;
    for (verb, expected) in [("borrow", "201"), ("return", "200")] {
        let (staff, pair) = (staff.clone(), pair.clone());
        let name = format!("{backend}: POST /books/{{id}}/{verb}/{{user}}, {clients} clients");
        let (m, outcomes) = drive(&name, clients, books.len(), move |i| {
            let (book, member) = pair(i);
            let request = staff.post(&format!("/books/{book}/{verb}/{member}"));
            async move { outcome(request).await }
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
async fn popular(backend: &str, staff: &Staff, s: Sizes) {
    let scope = format!("{backend} (popular book)");
    let book = add_books(&scope, staff, 1, "Huckleberry Finn").await[0].clone();
    let copies = Arc::new(vec![book.clone(); s.popular_copies]);
    add_copies(&scope, staff, copies, "HF-").await;
    let members = enrol_patrons(&scope, staff, s.popular_members, "Reader").await;
    // Warm one connection per racer, so the race measures the node, not TCP handshakes.
    let warm: Vec<_> = (0..members.len())
        .map(|_| {
            let request = staff
                .http
                .get(format!("{}/books/{book}", staff.base))
                .send();
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
            let path = format!("/books/{book}/borrow/{member}");
            let (staff, gate) = (staff.clone(), gate.clone());
            tokio::spawn(async move {
                gate.wait().await;
                let t = Instant::now();
                let answer = outcome(staff.post(&path)).await;
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
    let availability: Value = staff
        .http
        .get(format!("{}/books/{book}/availability", staff.base))
        .bearer_auth(&staff.admin)
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
    let http = client(512);
    let staff = Staff {
        admin: bearer_token(&http, &server.base, ADMIN).await,
        base: server.base.clone(),
        http,
    };
    circulation(backend, &staff, sizes).await;
    popular(backend, &staff, sizes).await;
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

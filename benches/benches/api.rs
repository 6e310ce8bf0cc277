//! The HTTP API over real sockets: the node is started in-process by `Application::build`, as
//! `quire serve` starts one (rate limit and background summaries off), and driven with reqwest
//! from many tasks. Per backend (SQLite in a temp dir, Postgres in a fresh
//! database):
//!
//! - `GET /books/{id}` throughput and latency at concurrency 32 over 1,000 books;
//! - durable `POST /books/{id}/reviews` (each 201 is fsynced and projected) from 64 members;
//! - write → read-model lag: the node restarted on the same data with `write_wait` 0, so the same
//!   POST answers 202 right after the commit; then the time until `ReadModels::wait_for` sees every projection
//!   pass the write's position (loaded, 16 writers), and until a plain `GET /books/{id}` without
//!   a consistency token first shows the new version (one writer, polling).
//!
//! Run: `cargo bench -p quire-benches --bench api` (QUIRE_BENCH_SECONDS per timed scenario,
//! default 5; QUIRE_BENCH_ONLY=<text> to pick scenarios, e.g. `sqlite` or `postgres`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use quire_benches::{
    ADMIN, Data, PASSWORD, add_book, bearer_token, client, enrol_patron, header, histogram,
    run_for, scenario_duration, start_node,
};
use serde_json::{Value, json};

const BOOKS: usize = 1_000;
const READERS: usize = 32;
const MEMBERS: usize = 64;
const LAG_WRITERS: usize = 16;

/// Bearer tokens of the admin and of `n` members who sign up over HTTP.
async fn tokens(http: &reqwest::Client, base: &str, n: usize) -> (String, Vec<String>) {
    let admin = bearer_token(http, base, ADMIN).await;
    let mut tasks = Vec::new();
    for m in 0..n {
        let (http, base) = (http.clone(), base.to_string());
        tasks.push(tokio::spawn(async move {
            let username = format!("member{m}");
            let response = http
                .post(format!("{base}/users"))
                .json(&json!({ "name": username, "username": username, "password": PASSWORD }))
                .send()
                .await
                .expect("sign up");
            assert!(response.status().is_success(), "{}", response.status());
            bearer_token(&http, &base, &username).await
        }));
    }
    let mut members = Vec::new();
    for t in tasks {
        members.push(t.await.expect("member"));
    }
    (admin, members)
}

/// Enrols `n` patrons (members without a login) as the admin; returns their ids.
async fn enrol_patrons(http: &reqwest::Client, base: &str, admin: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(enrol_patron(http, base, admin, &format!("Patron {i}")).await);
    }
    ids
}

/// Adds `BOOKS` books from `READERS` tasks; prints how fast.
async fn add_books(backend: &str, http: &reqwest::Client, base: &str, admin: &str) -> Vec<String> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..READERS {
        let (http, base, admin) = (http.clone(), base.to_string(), admin.to_string());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (c..BOOKS).step_by(READERS) {
                let title = format!("The Adventures of Tom Sawyer, vol. {i}");
                ids.push(add_book(&http, &base, &admin, &title).await);
            }
            ids
        }));
    }
    let mut books = Vec::new();
    for t in tasks {
        books.extend(t.await.expect("adder"));
    }
    let elapsed = start.elapsed();
    println!(
        "{:<58} {:>9} {:>11.0}   (setup, {READERS} admin clients, 201 = durable + projected)",
        format!("{backend}: POST /books"),
        books.len(),
        books.len() as f64 / elapsed.as_secs_f64()
    );
    books
}

fn print_lag(name: &str, samples: u64, hist: &Histogram<u64>) {
    println!(
        "{:<58} {:>9} {:>11}   lag p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        name,
        samples,
        "",
        hist.value_at_quantile(0.50) as f64 / 1e6,
        hist.value_at_quantile(0.99) as f64 / 1e6,
        hist.max() as f64 / 1e6,
    );
}

async fn scenarios(backend: &str, data: Data, wanted: &dyn Fn(&str) -> bool) {
    let server = start_node(&data, |s| s.api.write_wait_ms = 5_000).await;
    let http = client(256);
    let (admin, members) = tokens(&http, &server.base, MEMBERS).await;
    let books = Arc::new(add_books(backend, &http, &server.base, &admin).await);
    let base = server.base.clone();

    let name = format!("{backend}: GET /books/{{id}}, {READERS} clients, {BOOKS} books");
    if wanted(&name) {
        let (http, base, books) = (http.clone(), base.clone(), books.clone());
        let m = run_for(&name, READERS, scenario_duration(), move |w, i| {
            let url = format!(
                "{base}/books/{}",
                books[(w * 7_919 + i as usize * 31) % books.len()]
            );
            let http = http.clone();
            async move {
                let response = http.get(url).send().await.expect("GET book");
                assert_eq!(response.status(), reqwest::StatusCode::OK);
                let _ = response.bytes().await.expect("body");
                1
            }
        })
        .await;
        println!("{}", m.row());
    }

    // Each member reviews books in its own order; one review per member per book.
    let name = format!("{backend}: POST /books/{{id}}/reviews, {MEMBERS} members (201 = durable)");
    if wanted(&name) {
        let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (http, base, books, members) = (
            http.clone(),
            base.clone(),
            books.clone(),
            Arc::new(members.clone()),
        );
        let late = accepted.clone();
        let m = run_for(&name, MEMBERS, scenario_duration(), move |w, i| {
            assert!(
                (i as usize) < books.len(),
                "member {w} ran out of books to review"
            );
            let url = format!(
                "{base}/books/{}/reviews",
                books[(w * 13 + i as usize) % books.len()]
            );
            let (http, token, late) = (http.clone(), members[w].clone(), late.clone());
            async move {
                let response = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({ "rating": (i % 5) + 1, "review_text": "a lively book" }))
                    .send()
                    .await
                    .expect("POST review");
                let status = response.status();
                if status == reqwest::StatusCode::ACCEPTED {
                    late.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                assert!(
                    status.is_success(),
                    "POST review: {status} {}",
                    response.text().await.unwrap_or_default()
                );
                1
            }
        })
        .await;
        println!("{}", m.row());
        let late = accepted.load(std::sync::atomic::Ordering::Relaxed);
        if late > 0 {
            println!("    ({late} answered 202: the read models lagged more than 5 s)");
        }
    }

    // The lag scenarios need writes answered right after the commit: the same data, restarted
    // with write_wait 0.
    server.shutdown().await;
    let server = start_node(&data, |s| s.api.write_wait_ms = 0).await;
    let base = server.base.clone();
    // Patrons to review for (an admin may post for an enrolled user only): each lag writer has
    // its own, and moves to another after reviewing every book, so no pair repeats.
    let patrons = Arc::new(enrol_patrons(&http, &base, &admin, LAG_WRITERS * 4 + 4).await);

    // Lag under load: writers whose POST answers right after the commit, then wait_for.
    let name = format!("{backend}: write -> read-model lag (wait_for), {LAG_WRITERS} writers");
    if wanted(&name) {
        let patrons = patrons.clone();
        let lag = Arc::new(Mutex::new(histogram()));
        let (http, eager, books, read, admin) = (
            http.clone(),
            server.base.clone(),
            books.clone(),
            server.read.clone(),
            admin.clone(),
        );
        let samples = lag.clone();
        let m = run_for(&name, LAG_WRITERS, scenario_duration(), move |w, i| {
            let url = format!(
                "{eager}/books/{}/reviews",
                books[(w * 61 + i as usize * 17) % books.len()]
            );
            let patron =
                patrons[(w + LAG_WRITERS * (i as usize / books.len())) % (LAG_WRITERS * 4)].clone();
            let (http, read, admin, samples) =
                (http.clone(), read.clone(), admin.clone(), samples.clone());
            async move {
                // A fresh patron per review, posted by the admin: no one reviews a book twice.
                let response = http
                    .post(url)
                    .bearer_auth(admin)
                    .json(&json!({
                        "rating": 4,
                        "review_text": "lag probe",
                        "user_id": patron,
                    }))
                    .send()
                    .await
                    .expect("POST review");
                let answered = Instant::now();
                assert!(response.status().is_success(), "{}", response.status());
                let position: u64 = response.headers()["consistency-token"]
                    .to_str()
                    .expect("token")
                    .parse()
                    .expect("numeric token");
                read.wait_for(position, Duration::from_secs(30))
                    .await
                    .expect("read models catch up");
                samples
                    .lock()
                    .expect("lag histogram")
                    .saturating_record(answered.elapsed().as_nanos() as u64);
                1
            }
        })
        .await;
        println!("{}", m.row());
        let hist = lag.lock().expect("lag histogram");
        print_lag(
            "    202 -> every projection past its position",
            hist.len(),
            &hist,
        );
    }

    // Lag as a client sees it: one writer, then GET /books/{id} without a token until the book
    // shows the write's version.
    let name = format!("{backend}: write -> visible on GET /books/{{id}} (1 writer, polling)");
    if wanted(&name) {
        let mut hist = histogram();
        let mut polls = 0u64;
        let deadline = Instant::now() + scenario_duration();
        let mut i = 0usize;
        while Instant::now() < deadline {
            let book = &books[(i * 37) % books.len()];
            i += 1;
            let response = http
                .post(format!("{}/books/{book}/reviews", server.base))
                .bearer_auth(&admin)
                .json(&json!({
                    "rating": 2,
                    "review_text": "visibility probe",
                    "user_id": patrons[LAG_WRITERS * 4 + (i - 1) / books.len()],
                }))
                .send()
                .await
                .expect("POST review");
            let answered = Instant::now();
            assert!(response.status().is_success(), "{}", response.status());
            let version: u64 = response.headers()["etag"]
                .to_str()
                .expect("etag")
                .trim_matches('"')
                .parse()
                .expect("numeric etag");
            loop {
                polls += 1;
                let got: Value = http
                    .get(format!("{base}/books/{book}"))
                    .send()
                    .await
                    .expect("GET book")
                    .json()
                    .await
                    .expect("book JSON");
                if got["version"].as_u64().unwrap_or(0) >= version {
                    break;
                }
                assert!(
                    answered.elapsed() < Duration::from_secs(30),
                    "write never became visible"
                );
            }
            hist.saturating_record(answered.elapsed().as_nanos() as u64);
        }
        println!("{name}");
        print_lag(
            &format!(
                "    202 -> first GET showing it ({:.1} GETs each)",
                polls as f64 / hist.len().max(1) as f64
            ),
            hist.len(),
            &hist,
        );
    }
    server.shutdown().await;
}

#[tokio::main]
async fn main() {
    let only = std::env::var("QUIRE_BENCH_ONLY").unwrap_or_default();
    let wanted = move |name: &str| name.contains(only.as_str());
    println!(
        "HTTP API benchmark: {:.0} s per timed scenario, reqwest over loopback, in-process server",
        scenario_duration().as_secs_f64()
    );
    header();
    if wanted("sqlite") || !wanted("postgres") {
        let dir = tempfile::tempdir().expect("temp dir");
        scenarios("sqlite", Data::Sqlite(dir.path().to_path_buf()), &wanted).await;
    }
    if wanted("postgres") || !wanted("sqlite") {
        let pg = quire_store::testing::fresh_postgres_database().await;
        scenarios("postgres", Data::Postgres(pg), &wanted).await;
    }
    println!("(latencies are whole HTTP round trips; ops are requests)");
}

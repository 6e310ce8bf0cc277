//! Catalogue search: building the index from the log, query latency in process at scale, and
//! latency over HTTP with 8 clients on goodbooks-10k.
//!
//! - **Synthetic catalogue** (`SEARCH_BENCH_BOOKS`, default 1,000,000): books with titles of
//!   two to six words drawn from a 20,000-word made-up vocabulary (Zipf-skewed, so common words
//!   are common), one to three authors of 50,000, genres of 30, years and ISBNs, appended as
//!   `BookAdded` events to a SQLite event store. Then `quire_search::indexer::rebuild` reads
//!   the whole log into a new index generation (books/s, index size), the segments are merged
//!   as an idle node merges them, and 2,000 generated
//!   known-item queries (exact, one and two typos, prefixes, author and title word,
//!   lowercase, ISBN) run one after another in process with facets and highlights: p50, p99,
//!   and MRR@10 as a check that the answers are right at that size.
//! - **goodbooks-10k over HTTP** (when `QUIRE_GOODBOOKS_DIR` names the dataset): a SQLite node
//!   started as `quire serve` starts one; the 10,000 books are added through `POST /books`,
//!   then 8 clients send about 35,000 generated queries, the classes shuffled together
//!   (`GET /search?q=…&limit=10`, facets and highlights on) for `SEARCH_BENCH_SECS` (20):
//!   requests/s, p50, p99, p99.9; then `wrk` sends the same queries over 8 connections (when it
//!   is installed).
//!
//! Run: `cargo bench -p quire-benches --bench search`; `-- --quick` for 100,000 books and 5 s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use quire_benches::{ADMIN, Data, bearer_token, client, histogram, start_node, system_event};
use quire_domain::book::BookEvent;
use quire_domain::ids::BookId;
use quire_domain::values::{AuthorName, Genre, Isbn, Title, Year};
use quire_search::eval::{self, EvalBook, Rng};
use quire_search::{BookDoc, SearchRequest, Weights};
use quire_store::{AppendRequest, ExpectedVersion};
use serde_json::json;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

/// A number below `n`, skewed towards small values, roughly like word frequencies.
fn zipf(rng: &mut Rng, n: usize) -> usize {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
}

/// A pronounceable made-up word of 2 to 4 syllables.
fn word(rng: &mut Rng) -> String {
    const ONSETS: [&str; 16] = [
        "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "br",
    ];
    const VOWELS: [&str; 8] = ["a", "e", "i", "o", "u", "ai", "ou", "ea"];
    let syllables = 2 + rng.below(3);
    let mut w = String::new();
    for _ in 0..syllables {
        w.push_str(ONSETS[rng.below(ONSETS.len())]);
        w.push_str(VOWELS[rng.below(VOWELS.len())]);
    }
    if rng.below(2) == 0 {
        w.push_str(["n", "r", "s", "th", "nd"][rng.below(5)]);
    }
    w
}

fn capitalised(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn isbn13(n: u64) -> String {
    let body = format!("978{:09}", n % 1_000_000_000);
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

fn synthetic(books: usize) -> Vec<EvalBook> {
    let mut rng = Rng::new(7);
    let vocabulary: Vec<String> = (0..20_000).map(|_| word(&mut rng)).collect();
    let authors: Vec<String> = (0..50_000)
        .map(|_| {
            format!(
                "{} {}",
                capitalised(&word(&mut rng)),
                capitalised(&word(&mut rng))
            )
        })
        .collect();
    const GENRES: [&str; 30] = [
        "fantasy",
        "fiction",
        "romance",
        "mystery",
        "thriller",
        "horror",
        "history",
        "biography",
        "poetry",
        "classics",
        "science-fiction",
        "young-adult",
        "children",
        "humor",
        "memoir",
        "philosophy",
        "science",
        "travel",
        "cooking",
        "art",
        "music",
        "religion",
        "business",
        "psychology",
        "politics",
        "sports",
        "graphic-novels",
        "paranormal",
        "contemporary",
        "historical-fiction",
    ];
    (0..books)
        .map(|i| {
            let words = 2 + rng.below(5);
            let title = (0..words)
                .map(|_| capitalised(&vocabulary[zipf(&mut rng, vocabulary.len())]))
                .collect::<Vec<_>>()
                .join(" ");
            let genres: Vec<String> = (0..1 + rng.below(3))
                .map(|_| GENRES[zipf(&mut rng, GENRES.len())].to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let counts = genres.iter().map(|g| (g.clone(), 100)).collect();
            EvalBook {
                doc: BookDoc {
                    book_id: BookId::new().to_string(),
                    title,
                    authors: (0..1 + rng.below(2).min(rng.below(3)))
                        .map(|_| authors[zipf(&mut rng, authors.len())].clone())
                        .collect(),
                    genres,
                    year: Some(1900 + rng.below(125) as i32),
                    isbn: Some(isbn13(i as u64 * 7_919)),
                    ..BookDoc::default()
                },
                genre_counts: counts,
            }
        })
        .collect()
}

fn added(book: &BookDoc) -> quire_store::NewEvent {
    let event = BookEvent::BookAdded {
        book_id: book.book_id.parse().expect("book id"),
        title: Title::parse(book.title.clone()).expect("title"),
        authors: book
            .authors
            .iter()
            .map(|a| AuthorName::parse(a.clone()).expect("author"))
            .collect(),
        genres: book
            .genres
            .iter()
            .map(|g| Genre::parse(g.clone()).expect("genre"))
            .collect(),
        year_published: book.year.map(|y| Year::parse(y).expect("year")),
        isbn: book.isbn.clone().map(|i| Isbn::parse(i).expect("isbn")),
        description: None,
    };
    system_event(&event)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn synthetic_scenario(books: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = quire_store::open(
        &dir.path().join("events.db").display().to_string(),
        quire_store::StoreOptions::default(),
    )
    .await
    .expect("store");
    let catalogue = synthetic(books);
    let started = Instant::now();
    futures::stream::iter(catalogue.iter())
        .map(|b| {
            let store = store.clone();
            async move {
                let id: BookId = b.doc.book_id.parse().expect("book id");
                store
                    .append(AppendRequest {
                        stream_id: id.stream_id(),
                        expected: ExpectedVersion::NoStream,
                        events: vec![added(&b.doc)],
                        command: None,
                    })
                    .await
                    .expect("append");
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    println!(
        "synthetic: {books} BookAdded events appended in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let root = dir.path().join("search");
    let report = quire_search::indexer::rebuild(&root, &store, &quire_search::NoRatings, &|_| {})
        .await
        .expect("rebuild");
    let secs = report.elapsed.as_secs_f64();
    println!(
        "synthetic: rebuild of {} books from the log in {secs:.1} s: {:.0} books/s, index {:.1} MB \
         ({:.0} bytes/book)",
        report.books,
        report.books as f64 / secs,
        report.size_bytes as f64 / 1e6,
        report.size_bytes as f64 / report.books.max(1) as f64
    );

    let engine = quire_search::SearchEngine::open(&root).expect("open index");
    // What a node does once caught up: merge the rebuild's segments.
    let (segments, started) = (engine.index().segments(), Instant::now());
    engine.index().compact(4).expect("merge");
    println!(
        "synthetic: merging the {segments} segments into {} took {:.1} s (a node does it when idle)",
        engine.index().segments(),
        started.elapsed().as_secs_f64()
    );
    let queries = eval::generate(&catalogue, 2_000 / 7 + 1, 0, 11);
    let index = engine.index();
    let weights = Weights::default();
    // Warm the page cache and the term dictionaries as a serving node would be.
    for q in queries.iter().take(200) {
        let _ = index.search(
            &SearchRequest {
                q: q.text.clone(),
                limit: 10,
                facets: true,
                highlight: true,
                ..SearchRequest::default()
            },
            &weights,
        );
    }
    let ranked = eval::run_queries(&queries, |q| {
        index
            .search(
                &SearchRequest {
                    q: q.to_string(),
                    limit: 10,
                    facets: true,
                    highlight: true,
                    ..SearchRequest::default()
                },
                &weights,
            )
            .map(|r| r.hits.into_iter().map(|h| h.book.book_id).collect())
            .unwrap_or_default()
    });
    let figures = eval::score(&queries, &ranked);
    let mut times: Vec<f64> = ranked.iter().map(|r| r.1.as_secs_f64() * 1e3).collect();
    times.sort_by(f64::total_cmp);
    println!(
        "synthetic: {} queries in process (facets, highlights): p50 {:.2} ms, p99 {:.2} ms, max \
         {:.2} ms; MRR@10 {:.3}",
        queries.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or(0.0),
        figures[0].mrr10
    );
    for f in &figures[1..] {
        println!(
            "synthetic:   {:<13} MRR@10 {:.3}  p99 {:.2} ms",
            f.class, f.mrr10, f.p99_ms
        );
    }
}

async fn goodbooks_scenario(dir: &std::path::Path, secs: u64) {
    let books = quire::goodbooks_eval_books(dir).expect("goodbooks-10k");
    let data_dir = tempfile::tempdir().expect("temp dir");
    let node = start_node(&Data::Sqlite(data_dir.path().to_path_buf()), |_| {}).await;
    let http = client(64);
    let token = bearer_token(&http, &node.base, ADMIN).await;
    let started = Instant::now();
    let last = futures::stream::iter(books.iter())
        .map(|b| {
            let (http, base, token) = (http.clone(), node.base.clone(), token.clone());
            async move {
                let response = http
                    .post(format!("{base}/books"))
                    .bearer_auth(&token)
                    .json(&json!({
                        "title": b.doc.title, "authors": b.doc.authors, "genres": b.doc.genres,
                        "year_published": b.doc.year, "isbn": b.doc.isbn,
                    }))
                    .send()
                    .await
                    .expect("POST /books");
                // A book the API refuses (a year it cannot hold) is left out.
                response
                    .headers()
                    .get("consistency-token")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .unwrap_or(0)
            }
        })
        .buffer_unordered(64)
        .fold(0u64, |a, b| async move { a.max(b) })
        .await;
    // The index has everything once a search with the last token answers.
    let ready = http
        .get(format!("{}/search?q=the", node.base))
        .header("Consistency-Token", last.to_string())
        .send()
        .await
        .expect("search");
    assert!(ready.status().is_success());
    println!(
        "goodbooks over HTTP: {} books added and indexed in {:.1} s",
        books.len(),
        started.elapsed().as_secs_f64()
    );

    // Measure the steady state: an indexer that has caught up first merges the many small
    // segments of the load, as it would once after any bulk import.
    let search_dir = data_dir.path().join("search");
    let settling = Instant::now();
    while quire_search::engine::peek(&search_dir)
        .ok()
        .flatten()
        .is_none_or(|s| s.segments > quire_search::indexer::MAX_SEGMENTS)
    {
        assert!(
            settling.elapsed() < Duration::from_secs(120),
            "the index did not merge its segments"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    if let Ok(Some(status)) = quire_search::engine::peek(&search_dir) {
        println!(
            "goodbooks over HTTP: index of {} books in {} segment(s), {:.1} MB",
            status.books,
            status.segments,
            status.bytes as f64 / 1e6
        );
    }
    // About 35,000 queries, the classes shuffled together: enough that a run barely repeats
    // one, so what is measured is searching, not what the process kept from an earlier
    // request.
    let mut queries: Vec<String> = eval::generate(&books, 5_000, 0, 5)
        .into_iter()
        .map(|q| q.text)
        .collect();
    let mut rng = Rng::new(17);
    for i in (1..queries.len()).rev() {
        queries.swap(i, rng.below(i + 1));
    }
    let distinct = queries
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    println!(
        "goodbooks over HTTP: {} queries ({distinct} distinct), 7 classes shuffled",
        queries.len()
    );
    let queries = Arc::new(queries);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (http, base, queries) = (http.clone(), node.base.clone(), queries.clone());
            tokio::spawn(async move {
                let mut latency = histogram();
                let mut i = w * queries.len() / 8;
                while Instant::now() < deadline {
                    let q = &queries[i % queries.len()];
                    i += 1;
                    let started = Instant::now();
                    let response = http
                        .get(format!("{base}/search"))
                        .query(&[("q", q.as_str()), ("limit", "10")])
                        .send()
                        .await
                        .expect("GET /search");
                    assert!(response.status().is_success());
                    let _ = response.bytes().await.expect("body");
                    latency
                        .record(started.elapsed().as_nanos() as u64)
                        .expect("record");
                }
                latency
            })
        })
        .collect();
    let mut all = histogram();
    for w in workers {
        all.add(w.await.expect("worker")).expect("merge");
    }
    println!(
        "goodbooks over HTTP, 8 clients, {secs} s: {:.0} searches/s, p50 {:.2} ms, p99 {:.2} ms, \
         p99.9 {:.2} ms",
        all.len() as f64 / secs as f64,
        all.value_at_quantile(0.5) as f64 / 1e6,
        all.value_at_quantile(0.99) as f64 / 1e6,
        all.value_at_quantile(0.999) as f64 / 1e6
    );
    wrk_scenario(&node.base, &queries, secs);
    node.shutdown().await;
}

/// The same queries from `wrk` (8 connections, 2 threads), a load generator in a process of its
/// own that spends far less CPU per request than the in-process clients above: on a small
/// machine the clients' share of the CPU is part of every latency measured.
fn wrk_scenario(base: &str, queries: &[String], secs: u64) {
    let paths: Vec<String> = queries
        .iter()
        .map(|q| {
            let url = reqwest::Url::parse_with_params(
                &format!("{base}/search"),
                &[("q", q.as_str()), ("limit", "10")],
            )
            .expect("search URL");
            format!("{}?{}", url.path(), url.query().unwrap_or_default())
        })
        .collect();
    let script = tempfile::NamedTempFile::new().expect("temp file");
    let lua = format!(
        "paths = {{ {} }}\ncounter = 0\nrequest = function()\n  counter = counter + 1\n  \
         return wrk.format(\"GET\", paths[(counter % #paths) + 1])\nend\n",
        paths
            .iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::fs::write(script.path(), lua).expect("writing the wrk script");
    let output = std::process::Command::new("wrk")
        .args(["-t2", "-c8", &format!("-d{secs}s"), "--latency", "-s"])
        .arg(script.path())
        .arg(base)
        .output();
    let Ok(output) = output else {
        println!("goodbooks over HTTP with wrk: skipped (wrk is not installed)");
        return;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| "?".into())
    };
    println!(
        "goodbooks over HTTP, wrk 8 connections, {secs} s: {} searches/s, p50 {}, p90 {}, p99 {} \
         ({} non-2xx)",
        field("Requests/sec:"),
        field("50%"),
        field("90%"),
        field("99%"),
        field("Non-2xx or 3xx responses:").replace('?', "0"),
    );
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let books = env_usize(
        "SEARCH_BENCH_BOOKS",
        if quick { 100_000 } else { 1_000_000 },
    );
    let secs = env_usize("SEARCH_BENCH_SECS", if quick { 5 } else { 20 }) as u64;
    if let Ok(dir) = std::env::var("QUIRE_GOODBOOKS_DIR") {
        goodbooks_scenario(std::path::Path::new(&dir), secs).await;
    } else {
        println!(
            "goodbooks over HTTP: skipped (set QUIRE_GOODBOOKS_DIR to the goodbooks-10k directory)"
        );
    }
    synthetic_scenario(books).await;
}

//! Projection throughput: a full `rebuild` of each projection (and a runner catching up from zero)
//! over a log shaped like the goodbooks import (one `BookAdded` per 100 `ReviewPosted`), on SQLite
//! and Postgres, in events of the log per second.
//!
//! Run: `cargo bench -p quire-benches --bench projections` (QUIRE_BENCH_EVENTS events, default
//! 200,000; QUIRE_TEST_POSTGRES_URL for the server; QUIRE_BENCH_ONLY=sqlite|postgres picks a backend).
//!
//! Measured on the 2-core development machine (other builds running), release profile, log events/s:
//!
//! | events | backend  | catch-up (3 at once) | rebuild books | rebuild reviews | rebuild users |
//! |--------|----------|----------------------|---------------|-----------------|---------------|
//! | 200k   | SQLite   | 36k                  | 103k          | 70k             | 190k          |
//! | 200k   | Postgres | 41k                  | 93k           | 66k             | 276k          |
//! | 1M     | SQLite   | 34k                  | 92k           | 48k             | 153k          |
//! | 1M     | Postgres | 25k                  | 78k           | 44k             | 178k          |
//!
//! Reading the next batch while applying the current one doubled the Postgres reviews rebuild
//! (29k → 66k at 200k events) and raised SQLite's (44k → 70k).

use std::time::{Duration, Instant};

use futures::StreamExt;
use quire_benches::system_event;
use quire_domain::book::BookEvent;
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_domain::values::{AuthorName, Genre, Rating, ReviewText, Title, Year};
use quire_projections::{ReadModelOptions, ReadModels, RunnerOptions};
use quire_store::{AppendRequest, DynEventStore, ExpectedVersion, NewEvent};

/// Reviews per book, as in goodbooks-10k (about 6M ratings over 10k books; the import here keeps
/// the proportion of books to reviews, not the size).
const REVIEWS_PER_BOOK: usize = 100;

/// One book's stream: its `BookAdded` and up to `REVIEWS_PER_BOOK` reviews.
fn book_stream(b: usize, reviews: usize) -> (BookId, Vec<NewEvent>) {
    let id = BookId::new();
    let mut events = vec![system_event(&BookEvent::BookAdded {
        book_id: id,
        title: Title::parse(format!("Book number {b}")).unwrap(),
        authors: vec![AuthorName::parse(format!("Author {}", b % 997)).unwrap()],
        genres: vec![Genre::parse(["fiction", "fantasy", "history"][b % 3]).unwrap()],
        year_published: Some(Year::parse(1900 + (b % 120) as i32).unwrap()),
        isbn: None,
        description: None,
    })];
    for r in 0..reviews {
        events.push(system_event(&BookEvent::ReviewPosted {
            review_id: ReviewId::new(),
            member_id: UserId::new(),
            rating: Rating::parse((r % 5 + 1) as u8).unwrap(),
            text: ReviewText::parse(format!("review {r}: a fine book, well paced")).unwrap(),
        }));
    }
    (id, events)
}

/// Appends `total` events, one append per book stream, 16 appends in flight.
async fn fill(store: &DynEventStore, total: usize) -> Duration {
    let started = Instant::now();
    let books = total.div_ceil(REVIEWS_PER_BOOK + 1);
    futures::stream::iter(0..books)
        .map(|b| {
            let store = store.clone();
            let reviews = (total - b * (REVIEWS_PER_BOOK + 1)).min(REVIEWS_PER_BOOK + 1) - 1;
            async move {
                let (id, events) = book_stream(b, reviews);
                store
                    .append(AppendRequest {
                        stream_id: id.stream_id(),
                        expected: ExpectedVersion::NoStream,
                        events,
                        command: None,
                    })
                    .await
                    .expect("append");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    started.elapsed()
}

async fn scenario(backend: &str, store: DynEventStore, read_url: &str, events: usize) {
    let filled = fill(&store, events).await;
    let head = store.head().await.expect("head");
    println!(
        "{backend}: {head} events appended in {:.1} s",
        filled.as_secs_f64()
    );
    let read = ReadModels::open(read_url, ReadModelOptions::default())
        .await
        .expect("read models");

    // A runner catching up from an empty read model: every projection at once.
    let started = Instant::now();
    let runner = quire_projections::spawn(store.clone(), read.clone(), RunnerOptions::default());
    read.wait_for(head, Duration::from_secs(3600))
        .await
        .expect("catch up");
    runner.shutdown().await;
    let elapsed = started.elapsed();
    println!(
        "{:<58} {:>9} {:>11.0} {:>9.2}",
        format!("{backend}: runner catch-up, every projection concurrently"),
        head,
        head as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );

    for name in quire_projections::ProjectionName::ALL {
        let report = quire_projections::rebuild(&store, &read, name, &|_| {})
            .await
            .expect("rebuild");
        println!(
            "{:<58} {:>9} {:>11.0} {:>9.2}",
            format!("{backend}: rebuild {name}"),
            report.events,
            report.events_per_sec,
            report.elapsed.as_secs_f64()
        );
    }
    let stats = read.statuses().await.expect("statuses");
    assert!(
        stats
            .iter()
            .all(|s| s.position == head && s.last_error.is_none())
    );
}

#[tokio::main]
async fn main() {
    let events: usize = std::env::var("QUIRE_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let only = std::env::var("QUIRE_BENCH_ONLY").unwrap_or_default();
    println!(
        "projections benchmark: {events} events, one BookAdded per {REVIEWS_PER_BOOK} ReviewPosted"
    );
    println!(
        "{:<58} {:>9} {:>11} {:>9}",
        "scenario", "events", "events/s", "seconds"
    );
    println!("{}", "-".repeat(90));
    let dir = tempfile::tempdir().expect("temp dir");
    if "sqlite".contains(only.as_str()) {
        let store = quire_store::open(
            &dir.path().join("events.db").display().to_string(),
            Default::default(),
        )
        .await
        .expect("sqlite store");
        let read = dir.path().join("read.db").display().to_string();
        scenario("sqlite", store, &read, events).await;
    }
    if "postgres".contains(only.as_str()) {
        let url = quire_store::testing::fresh_postgres_database().await;
        let store = quire_store::open(&url, Default::default())
            .await
            .expect("postgres store");
        scenario("postgres", store, &url, events).await;
    }
    println!("(events/s counts every event of the log read by the projection)");
}

//! Command round trips through entity actors on the in-process bus: one hot entity (every command on
//! the same book, so they queue on one actor and one stream) and 10,000 entities (commands spread over
//! 10k books, so 10k live actors), on SQLite and Postgres, with the memory the live actors take.
//!
//! Run: `cargo bench -p quire-benches --bench actors` (QUIRE_BENCH_SECONDS per timed scenario, default
//! 5; QUIRE_BENCH_ONLY=<text> to pick scenarios).

use std::sync::Arc;
use std::time::Instant;

use quire_actors::{ActorConfig, Command, CommandBus, CommandEnvelope, LocalBus};
use quire_benches::{header, rss_bytes, run_for, scenario_duration};
use quire_domain::Principal;
use quire_domain::book::BookCommand;
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_domain::values::{AuthorName, Rating, ReviewText, Title};
use quire_store::StoreOptions;

const ENTITIES: usize = 10_000;
const CLIENTS: usize = 64;
const LONG_STREAM: usize = 10_000;

fn add_book(book_id: BookId) -> Command {
    Command::Book {
        book_id,
        command: BookCommand::AddBook {
            book_id,
            title: Title::parse("The Adventures of Tom Sawyer").unwrap(),
            authors: vec![AuthorName::parse("Mark Twain").unwrap()],
            genres: vec![],
            year_published: None,
            isbn: None,
            description: None,
        },
    }
}

fn review(book_id: BookId, i: u64) -> Command {
    Command::Book {
        book_id,
        command: BookCommand::PostReview {
            review_id: ReviewId::new(),
            rating: Rating::parse((i % 5) as u8 + 1).unwrap(),
            text: ReviewText::parse("a lively book with a memorable fence-painting scene").unwrap(),
        },
    }
}

async fn scenarios(backend: &str, url: &str, wanted: &dyn Fn(&str) -> bool) {
    let store = quire_store::open(url, StoreOptions::default())
        .await
        .expect("open store");
    let bus = Arc::new(LocalBus::new(store, ActorConfig::default()));
    let admin = Principal::admin(UserId::new());

    let name = format!("{backend}: hot entity, {CLIENTS} clients");
    if wanted(&name) {
        let hot = BookId::new();
        bus.dispatch(CommandEnvelope::new(admin.clone(), add_book(hot)))
            .await
            .expect("add hot book");
        let b = bus.clone();
        let m = run_for(&name, CLIENTS, scenario_duration(), move |_, i| {
            let bus = b.clone();
            async move {
                bus.dispatch(CommandEnvelope::new(
                    Principal::member(UserId::new()),
                    review(hot, i),
                ))
                .await
                .expect("review");
                1
            }
        })
        .await;
        println!("{}", m.row());
    }

    let name = format!("{backend}: {ENTITIES} entities, {CLIENTS} clients");
    if wanted(&name) {
        let books: Arc<Vec<BookId>> = Arc::new((0..ENTITIES).map(|_| BookId::new()).collect());
        let rss_before = rss_bytes().unwrap_or(0);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let (bus, books, admin) = (bus.clone(), books.clone(), admin.clone());
            tasks.push(tokio::spawn(async move {
                for b in books.iter().skip(c).step_by(CLIENTS) {
                    bus.dispatch(CommandEnvelope::new(admin.clone(), add_book(*b)))
                        .await
                        .expect("add book");
                }
            }));
        }
        for t in tasks {
            t.await.expect("client");
        }
        let created = start.elapsed();
        let (live, _) = bus.live_actors();
        let rss_after = rss_bytes().unwrap_or(0);
        println!(
            "{:<58} {:>9} {:>11.0}   (first command per entity: spawn + empty load; {} live actors, \
             +{:.1} MiB RSS, {:.1} KiB per actor)",
            format!("{backend}: create {ENTITIES} entities"),
            ENTITIES,
            ENTITIES as f64 / created.as_secs_f64(),
            live,
            (rss_after.saturating_sub(rss_before)) as f64 / 1048576.0,
            (rss_after.saturating_sub(rss_before)) as f64 / 1024.0 / live.max(1) as f64,
        );
        let (b, bk) = (bus.clone(), books.clone());
        let m = run_for(&name, CLIENTS, scenario_duration(), move |c, i| {
            let bus = b.clone();
            let book = bk[(c + i as usize * CLIENTS) % bk.len()];
            async move {
                bus.dispatch(CommandEnvelope::new(
                    Principal::member(UserId::new()),
                    review(book, i),
                ))
                .await
                .expect("review");
                1
            }
        })
        .await;
        println!("{}", m.row());
    }
    let name = format!("{backend}: cold load of a book with {LONG_STREAM} reviews");
    if wanted(&name) {
        // Whether snapshots are needed: how long a passivated entity with a long history takes to
        // come back (its first command replays the whole stream).
        let book = BookId::new();
        bus.dispatch(CommandEnvelope::new(admin.clone(), add_book(book)))
            .await
            .expect("add book");
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let bus = bus.clone();
            tasks.push(tokio::spawn(async move {
                for i in (c..LONG_STREAM).step_by(CLIENTS) {
                    bus.dispatch(CommandEnvelope::new(
                        Principal::member(UserId::new()),
                        review(book, i as u64),
                    ))
                    .await
                    .expect("review");
                }
            }));
        }
        for t in tasks {
            t.await.expect("client");
        }
        let fresh = LocalBus::new(
            quire_store::open(url, StoreOptions::default())
                .await
                .expect("reopen store"),
            ActorConfig::default(),
        );
        let start = Instant::now();
        fresh
            .dispatch(CommandEnvelope::new(
                Principal::member(UserId::new()),
                review(book, 0),
            ))
            .await
            .expect("first command after load");
        println!(
            "{:<58} {:>9} {:>11.0}   (first command {:.1} ms, including the replay)",
            name,
            LONG_STREAM + 1,
            (LONG_STREAM + 1) as f64 / start.elapsed().as_secs_f64(),
            start.elapsed().as_secs_f64() * 1000.0
        );
    }
    bus.shutdown(std::time::Duration::from_secs(10)).await;
}

#[tokio::main]
async fn main() {
    let only = std::env::var("QUIRE_BENCH_ONLY").unwrap_or_default();
    let wanted = move |name: &str| name.contains(only.as_str());
    println!(
        "actor benchmark: {:.0} s per timed scenario, in-process bus, durable appends",
        scenario_duration().as_secs_f64()
    );
    header();
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = dir.path().join("events.db").display().to_string();
    scenarios("sqlite", &sqlite, &wanted).await;
    let pg = quire_store::testing::fresh_postgres_database().await;
    scenarios("postgres", &pg, &wanted).await;
    println!("(ops are commands; each appends one event and its command record)");
}

//! Entity actors over real stores (SQLite and Postgres): round trips, idempotency across restarts,
//! invariants under concurrency (also across two "nodes" sharing a store), passivation races, panics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use quire_actors::{
    ActorConfig, Command, CommandBus, CommandEnvelope, CommandError, Entities, LocalBus,
    RejectionKind,
};
use quire_domain::book::BookCommand;
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_domain::values::{AuthorName, Rating, ReviewText, Title};
use quire_domain::{
    Aggregate, CommandContext, DomainError, DomainEvent, ErrorKind, EventDecodeError, Principal,
};
use quire_store::{DynEventStore, StoreOptions};
use serde::{Deserialize, Serialize};

enum Harness {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Harness {
    async fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().unwrap())
    }
    async fn postgres() -> Self {
        Self::Postgres(quire_store::testing::fresh_postgres_database().await)
    }
    async fn open(&self) -> DynEventStore {
        let url = match self {
            Self::Sqlite(dir) => dir.path().join("events.db").display().to_string(),
            Self::Postgres(url) => url.clone(),
        };
        quire_store::open(&url, StoreOptions::default())
            .await
            .unwrap()
    }
}

fn admin() -> Principal {
    Principal::admin(UserId::new())
}

fn add_book(book_id: BookId) -> Command {
    Command::Book {
        book_id,
        command: BookCommand::AddBook {
            book_id,
            title: Title::parse("Frankenstein").unwrap(),
            authors: vec![AuthorName::parse("Mary Shelley").unwrap()],
            genres: vec![],
            year_published: None,
            isbn: None,
            description: None,
        },
    }
}

fn post_review(book_id: BookId, stars: u8) -> Command {
    Command::Book {
        book_id,
        command: BookCommand::PostReview {
            review_id: ReviewId::new(),
            rating: Rating::parse(stars).unwrap(),
            text: ReviewText::parse("a thoughtful read").unwrap(),
        },
    }
}

async fn events_in(store: &DynEventStore, stream: &str) -> usize {
    store.read_stream(stream, 0, 10_000).await.unwrap().len()
}

async fn a_command_round_trips_through_an_actor(h: Harness) {
    let store = h.open().await;
    let bus = LocalBus::new(store.clone(), ActorConfig::default());
    let book = BookId::new();
    let out = bus
        .dispatch(CommandEnvelope::new(admin(), add_book(book)))
        .await
        .unwrap();
    assert_eq!(out.stream_id, format!("book-{book}"));
    assert_eq!(out.stream_version, 1);
    assert_eq!(out.event_count, 1);
    assert!(!out.replayed);
    let member = UserId::new();
    let out = bus
        .dispatch(CommandEnvelope::new(
            Principal::member(member),
            post_review(book, 4),
        ))
        .await
        .unwrap();
    assert_eq!(out.stream_version, 2);
    let stored = store.read_stream(&out.stream_id, 0, 10).await.unwrap();
    assert_eq!(stored[1].event_type, "ReviewPosted");
    assert_eq!(stored[1].metadata.command_id, Some(out.command_id));
    assert_eq!(stored[1].metadata.actor, Some(member.to_string()));
}

async fn a_retried_command_gets_the_first_outcome_even_after_a_restart(h: Harness) {
    let book = BookId::new();
    let envelope = CommandEnvelope::new(admin(), add_book(book));
    let first = {
        let store = h.open().await;
        let bus = LocalBus::new(store.clone(), ActorConfig::default());
        let first = bus.dispatch(envelope.clone()).await.unwrap();
        let again = bus.dispatch(envelope.clone()).await.unwrap();
        assert!(again.replayed);
        assert_eq!(
            (again.stream_version, again.last_position),
            (first.stream_version, first.last_position)
        );
        bus.shutdown(Duration::from_secs(5)).await;
        first
    };
    let store = h.open().await;
    let bus = LocalBus::new(store.clone(), ActorConfig::default());
    let after_restart = bus.dispatch(envelope).await.unwrap();
    assert!(after_restart.replayed);
    assert_eq!(after_restart.last_position, first.last_position);
    assert_eq!(events_in(&store, &format!("book-{book}")).await, 1);
}

async fn a_rejection_is_replayed_even_when_the_command_would_now_succeed(h: Harness) {
    let store = h.open().await;
    let bus = LocalBus::new(store.clone(), ActorConfig::default());
    let book = BookId::new();
    let review = CommandEnvelope::new(Principal::member(UserId::new()), post_review(book, 5));
    let Err(CommandError::Rejected(first)) = bus.dispatch(review.clone()).await else {
        panic!("a review of a missing book must be rejected");
    };
    assert_eq!(first.code, "not_found");
    bus.dispatch(CommandEnvelope::new(admin(), add_book(book)))
        .await
        .unwrap();
    let Err(CommandError::Rejected(again)) = bus.dispatch(review).await else {
        panic!("the retried command must get its first outcome");
    };
    assert_eq!(again, first);
    assert_eq!(events_in(&store, &format!("book-{book}")).await, 1);
}

async fn a_reused_command_id_with_other_content_is_refused(h: Harness) {
    let store = h.open().await;
    let bus = LocalBus::new(store, ActorConfig::default());
    let book = BookId::new();
    let envelope = CommandEnvelope::new(admin(), add_book(book));
    bus.dispatch(envelope.clone()).await.unwrap();
    let mut other = envelope.clone();
    other.command = post_review(book, 3);
    assert!(matches!(
        bus.dispatch(other).await,
        Err(CommandError::KeyReused(_))
    ));
    // The same command under the same key from someone else is not given the first outcome either.
    let mut impostor = envelope.clone();
    impostor.principal = admin();
    assert!(matches!(
        bus.dispatch(impostor).await,
        Err(CommandError::KeyReused(_))
    ));
}

/// One review per member per book, with many concurrent requests split over two nodes that share
/// the store (so the expected-version check and conflict retries are exercised, not just the actor's
/// serial mailbox).
async fn one_review_per_member_per_book_under_concurrency(h: Harness) {
    let store = h.open().await;
    let config = ActorConfig {
        max_conflict_retries: 50,
        ..ActorConfig::default()
    };
    let nodes = [
        LocalBus::new(store.clone(), config.clone()),
        LocalBus::new(h.open().await, config),
    ];
    let book = BookId::new();
    nodes[0]
        .dispatch(CommandEnvelope::new(admin(), add_book(book)))
        .await
        .unwrap();
    let members: Vec<UserId> = (0..4).map(|_| UserId::new()).collect();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let bus = nodes[i % 2].clone();
        let member = members[i % members.len()];
        tasks.push(tokio::spawn(async move {
            bus.dispatch(CommandEnvelope::new(
                Principal::member(member),
                post_review(book, (i % 5) as u8 + 1),
            ))
            .await
        }));
    }
    let (mut accepted, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(CommandError::Rejected(r)) if r.code == "review_already_exists" => refused += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(accepted, members.len());
    assert_eq!(refused, 64 - members.len());
    assert_eq!(
        events_in(&store, &format!("book-{book}")).await,
        1 + members.len()
    );
}

/// Passivation races (ARCHITECTURE.md, "How the known hard problems are handled"): actors
/// passivate after 1 ms idle while commands keep arriving; none is lost.
async fn passivation_never_loses_a_command(h: Harness) {
    let store = h.open().await;
    let bus = LocalBus::new(
        store.clone(),
        ActorConfig {
            idle_timeout: Duration::from_millis(1),
            idle_check: Duration::from_millis(1),
            max_conflict_retries: 5,
        },
    );
    let books: Vec<BookId> = (0..8).map(|_| BookId::new()).collect();
    for b in &books {
        bus.dispatch(CommandEnvelope::new(admin(), add_book(*b)))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let bus = bus.clone();
        let book = books[i as usize % books.len()];
        tasks.push(tokio::spawn(async move {
            // Spread arrivals so some land just as an actor decides it is idle.
            tokio::time::sleep(Duration::from_micros((i * 397) % 3000)).await;
            bus.dispatch(CommandEnvelope::new(
                Principal::member(UserId::new()),
                post_review(book, 3),
            ))
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("every command is answered");
    }
    let mut total = 0;
    for b in &books {
        total += events_in(&store, &format!("book-{b}")).await;
    }
    assert_eq!(total, books.len() + 200);
    // And idle actors do go away.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(bus.live_actors(), (0, 0));
}

/// A test aggregate whose `decide` panics on request, to check the actor survives it.
#[derive(Debug, Clone, Default)]
struct Counter {
    value: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum CounterCommand {
    Add(u64),
    Panic,
}

#[derive(Debug, Clone, PartialEq)]
struct Added(u64);

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl DomainError for Never {
    fn code(&self) -> &'static str {
        "never"
    }
    fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}

impl DomainEvent for Added {
    fn event_type(&self) -> &'static str {
        "Added"
    }
    fn schema_version(&self) -> u32 {
        1
    }
    fn to_payload(&self) -> serde_json::Value {
        serde_json::json!({ "n": self.0 })
    }
    fn from_stored(_: &str, _: u32, payload: &serde_json::Value) -> Result<Self, EventDecodeError> {
        Ok(Added(payload["n"].as_u64().unwrap_or_default()))
    }
}

impl Aggregate for Counter {
    type Command = CounterCommand;
    type Event = Added;
    type Error = Never;
    const CATEGORY: &'static str = "counter";
    fn decide(&self, command: &CounterCommand, _: &CommandContext) -> Result<Vec<Added>, Never> {
        match command {
            CounterCommand::Add(n) => Ok(vec![Added(*n)]),
            CounterCommand::Panic => panic!("decide exploded"),
        }
    }
    fn apply(&mut self, event: &Added) {
        self.value += event.0;
    }
}

async fn a_panicking_handler_fails_only_its_command(h: Harness) {
    let store = h.open().await;
    let counters = Entities::<Counter>::new(store.clone(), ActorConfig::default());
    counters
        .execute("c1", CommandEnvelope::new(admin(), CounterCommand::Add(2)))
        .await
        .unwrap();
    let err = counters
        .execute("c1", CommandEnvelope::new(admin(), CounterCommand::Panic))
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::HandlerPanicked(ref m) if m.contains("exploded")));
    let out = counters
        .execute("c1", CommandEnvelope::new(admin(), CounterCommand::Add(3)))
        .await
        .unwrap();
    assert_eq!(out.stream_version, 2, "state reloaded after the panic");
}

/// Commands on one entity through two nodes: conflicts are retried inside, never leaked.
async fn version_conflicts_between_nodes_do_not_reach_callers(h: Harness) {
    let config = ActorConfig {
        max_conflict_retries: 100,
        ..ActorConfig::default()
    };
    let a = Entities::<Counter>::new(h.open().await, config.clone());
    let b = Entities::<Counter>::new(h.open().await, config);
    let done = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            node.execute("hot", CommandEnvelope::new(admin(), CounterCommand::Add(1)))
                .await
                .unwrap();
            done.fetch_add(1, Ordering::Relaxed);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let store = h.open().await;
    assert_eq!(events_in(&store, "counter-hot").await, 40);
    assert_eq!(done.load(Ordering::Relaxed), 40);
}

/// Events are stored forever: a stream whose first event is `BookAdded` v1 (the seed design's single
/// `author`/`genre`) still loads, upcast to v2, and takes new commands.
async fn an_entity_with_old_event_versions_loads_and_takes_commands(h: Harness) {
    let store = h.open().await;
    let book = BookId::new();
    let stream = format!("book-{book}");
    store
        .append(quire_store::testing::append(
            &stream,
            quire_store::ExpectedVersion::NoStream,
            vec![quire_store::NewEvent {
                event_id: uuid::Uuid::new_v4(),
                event_type: "BookAdded".into(),
                schema_version: 1,
                payload: serde_json::json!({
                    "book_id": book.to_string(),
                    "title": "Pride and Prejudice",
                    "author": "Jane Austen",
                    "genre": "Classics",
                    "year_published": 1813,
                }),
                metadata: quire_store::EventMetadata::default(),
            }],
        ))
        .await
        .unwrap();
    let bus = LocalBus::new(store.clone(), ActorConfig::default());
    // The upcast book exists (the review is accepted) and has its one author.
    let out = bus
        .dispatch(CommandEnvelope::new(
            Principal::member(UserId::new()),
            post_review(book, 5),
        ))
        .await
        .unwrap();
    assert_eq!(out.stream_version, 2);
    // Adding it again is refused as a duplicate: the v1 event was understood as the book's creation.
    let Err(CommandError::Rejected(r)) = bus
        .dispatch(CommandEnvelope::new(admin(), add_book(book)))
        .await
    else {
        panic!("the upcast book must already exist");
    };
    assert_eq!(r.code, "already_exists");
}

/// An event type this code does not know makes the entity fail loudly, not load half a state.
async fn an_unknown_stored_event_fails_the_command_and_writes_nothing(h: Harness) {
    let store = h.open().await;
    let book = BookId::new();
    let stream = format!("book-{book}");
    store
        .append(quire_store::testing::append(
            &stream,
            quire_store::ExpectedVersion::NoStream,
            vec![quire_store::testing::event("BookTeleported", 1)],
        ))
        .await
        .unwrap();
    let bus = LocalBus::new(store.clone(), ActorConfig::default());
    let err = bus
        .dispatch(CommandEnvelope::new(
            Principal::member(UserId::new()),
            post_review(book, 5),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Corrupt { .. }), "{err}");
    assert_eq!(events_in(&store, &stream).await, 1);
}

async fn a_stale_expected_version_is_refused_even_when_another_node_wrote(h: Harness) {
    let store = h.open().await;
    let node_a = LocalBus::new(store.clone(), ActorConfig::default());
    let node_b = LocalBus::new(store.clone(), ActorConfig::default());
    let book = BookId::new();
    node_a
        .dispatch(CommandEnvelope::new(admin(), add_book(book)))
        .await
        .unwrap();
    // Node A's actor now holds version 1 in memory; node B moves the book to version 2.
    node_b
        .dispatch(CommandEnvelope::new(
            Principal::member(UserId::new()),
            post_review(book, 5),
        ))
        .await
        .unwrap();
    let stale = CommandEnvelope::new(admin(), remove_book(book)).with_expected_version(1);
    match node_a.dispatch(stale.clone()).await {
        Err(CommandError::Rejected(r)) => {
            assert_eq!(r.code, "version_mismatch");
            assert_eq!(r.kind, RejectionKind::Precondition);
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    // The retry gets the same refusal, and nothing was written.
    assert!(matches!(
        node_a.dispatch(stale).await,
        Err(CommandError::Rejected(_))
    ));
    assert_eq!(events_in(&store, &format!("book-{book}")).await, 2);
    // Node A has not seen version 2 yet, but a command expecting it succeeds there.
    let current = CommandEnvelope::new(admin(), remove_book(book)).with_expected_version(2);
    let out = node_a.dispatch(current).await.unwrap();
    assert_eq!(out.stream_version, 3);
}

fn remove_book(book_id: BookId) -> Command {
    Command::Book {
        book_id,
        command: BookCommand::RemoveBook,
    }
}

macro_rules! on_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Harness::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Harness::postgres().await).await;
                }
            )*
        }
    };
}

on_backends!(
    a_command_round_trips_through_an_actor,
    a_retried_command_gets_the_first_outcome_even_after_a_restart,
    a_rejection_is_replayed_even_when_the_command_would_now_succeed,
    a_reused_command_id_with_other_content_is_refused,
    one_review_per_member_per_book_under_concurrency,
    passivation_never_loses_a_command,
    a_panicking_handler_fails_only_its_command,
    version_conflicts_between_nodes_do_not_reach_callers,
    an_entity_with_old_event_versions_loads_and_takes_commands,
    an_unknown_stored_event_fails_the_command_and_writes_nothing,
    a_stale_expected_version_is_refused_even_when_another_node_wrote,
);

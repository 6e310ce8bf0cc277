//! The event store contract: one suite, run against every backend (SQLite and Postgres here; the
//! KurrentDB adapter runs its own copy where a server is reachable).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use quire_store::testing::{append, event, with_command};
use quire_store::{
    AppendOutcome, CommandResult, DynEventStore, ExpectedVersion, PendingCommand, StoreError,
    StoreOptions, subscribe,
};
use uuid::Uuid;

/// A backend under test, reopenable to check durability across restarts.
enum Harness {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Harness {
    async fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    async fn postgres() -> Self {
        Self::Postgres(quire_store::testing::fresh_postgres_database().await)
    }

    fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => dir.path().join("events.db").display().to_string(),
            Self::Postgres(url) => url.clone(),
        }
    }

    async fn open(&self) -> DynEventStore {
        quire_store::open(&self.url(), StoreOptions::default())
            .await
            .expect("open store")
    }

    /// The backend alone, without the process's shared tail cache.
    async fn open_backend(&self) -> DynEventStore {
        match self {
            Self::Sqlite(_) => std::sync::Arc::new(
                quire_store::sqlite::SqliteStore::open(
                    std::path::Path::new(&self.url()),
                    StoreOptions::default(),
                )
                .await
                .expect("open sqlite store"),
            ),
            Self::Postgres(url) => std::sync::Arc::new(
                quire_store::postgres::PostgresStore::connect(url, StoreOptions::default())
                    .await
                    .expect("open postgres store"),
            ),
        }
    }
}

async fn appends_and_reads_a_stream(h: Harness) {
    let store = h.open().await;
    let events = vec![event("A", 1), event("B", 2), event("C", 3)];
    let out = store
        .append(append("book-1", ExpectedVersion::NoStream, events.clone()))
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            AppendOutcome::Appended {
                stream_version: 3,
                first_position: 1,
                last_position: 3,
                ..
            }
        ),
        "{out:?}"
    );
    let read = store.read_stream("book-1", 0, 100).await.unwrap();
    assert_eq!(read.len(), 3);
    for (i, (stored, sent)) in read.iter().zip(&events).enumerate() {
        assert_eq!(stored.version, i as u64 + 1);
        assert_eq!(stored.position, i as u64 + 1);
        assert_eq!(stored.stream_id, "book-1");
        assert_eq!(stored.event_id, sent.event_id);
        assert_eq!(stored.event_type, sent.event_type);
        assert_eq!(stored.payload, sent.payload);
        assert_eq!(stored.metadata, sent.metadata);
        assert!(stored.recorded_at > 0);
    }
    let tail = store.read_stream("book-1", 2, 100).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].version, 3);
    assert!(
        store
            .read_stream("book-2", 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_stale_expected_version_is_refused_and_writes_nothing(h: Harness) {
    let store = h.open().await;
    store
        .append(append("s", ExpectedVersion::NoStream, vec![event("A", 1)]))
        .await
        .unwrap();
    let err = store
        .append(append("s", ExpectedVersion::NoStream, vec![event("A", 2)]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WrongExpectedVersion { actual: 1, .. }),
        "{err}"
    );
    let err = store
        .append(append("s", ExpectedVersion::Exact(5), vec![event("A", 2)]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongExpectedVersion { .. }));
    assert_eq!(store.read_stream("s", 0, 10).await.unwrap().len(), 1);
    assert_eq!(store.head().await.unwrap(), 1);
    store
        .append(append("s", ExpectedVersion::Exact(1), vec![event("A", 2)]))
        .await
        .unwrap();
    assert_eq!(store.head().await.unwrap(), 2);
}

async fn a_retried_command_returns_its_first_outcome_and_appends_nothing(h: Harness) {
    let id = Uuid::new_v4();
    {
        let store = h.open().await;
        let first = store
            .append(with_command(
                append("s", ExpectedVersion::NoStream, vec![event("A", 1)]),
                id,
            ))
            .await
            .unwrap();
        assert!(matches!(
            first,
            AppendOutcome::Appended {
                stream_version: 1,
                ..
            }
        ));
        let retry = store
            .append(with_command(
                append("s", ExpectedVersion::NoStream, vec![event("A", 1)]),
                id,
            ))
            .await
            .unwrap();
        let AppendOutcome::Duplicate(record) = retry else {
            panic!("expected a duplicate, got {retry:?}");
        };
        assert_eq!(record.command_id, id);
        assert_eq!(record.fingerprint.as_deref(), Some("fp"));
        assert_eq!(
            record.result,
            CommandResult::Accepted {
                stream_version: 1,
                first_position: 1,
                last_position: 1,
                event_count: 1
            }
        );
    }
    // Across a restart the same id is still known.
    let store = h.open().await;
    let retry = store
        .append(with_command(
            append("s", ExpectedVersion::Exact(1), vec![event("A", 2)]),
            id,
        ))
        .await
        .unwrap();
    assert!(matches!(retry, AppendOutcome::Duplicate(_)));
    assert_eq!(store.read_stream("s", 0, 10).await.unwrap().len(), 1);
    assert!(store.command(id).await.unwrap().is_some());
    assert!(store.command(Uuid::new_v4()).await.unwrap().is_none());
}

async fn a_rejection_is_recorded_without_events(h: Harness) {
    let store = h.open().await;
    let id = Uuid::new_v4();
    let error = serde_json::json!({ "code": "book_removed", "message": "book was removed" });
    let mut request = append("s", ExpectedVersion::NoStream, vec![]);
    request.command = Some(PendingCommand {
        command_id: id,
        fingerprint: None,
        rejection: Some(error.clone()),
    });
    store.append(request.clone()).await.unwrap();
    assert_eq!(store.head().await.unwrap(), 0);
    let record = store.command(id).await.unwrap().expect("recorded");
    assert_eq!(record.result, CommandResult::Rejected { error });
    let again = store.append(request).await.unwrap();
    assert!(matches!(again, AppendOutcome::Duplicate(r) if r == record));
}

async fn concurrent_appends_at_one_version_have_exactly_one_winner(h: Harness) {
    let store = h.open().await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(append(
                        "hot",
                        ExpectedVersion::NoStream,
                        vec![event("A", i)],
                    ))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(AppendOutcome::Appended { .. }) => won += 1,
            Err(StoreError::WrongExpectedVersion { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.read_stream("hot", 0, 100).await.unwrap().len(), 1);
}

/// Skipped events (commit order must equal position order): many concurrent writers (several store
/// instances, as several nodes would be), one subscriber; every event is seen exactly once and in
/// position order.
async fn a_subscriber_sees_every_event_of_concurrent_writers_once_in_order(h: Harness) {
    const NODES: usize = 3;
    const WRITERS_PER_NODE: usize = 8;
    const EVENTS_PER_WRITER: u64 = 40;
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(h.open().await);
    }
    let reader = h.open().await;
    let total = (NODES * WRITERS_PER_NODE) as u64 * EVENTS_PER_WRITER;
    let collector = tokio::spawn(async move {
        let mut sub = subscribe(reader, 0).with_poll_interval(Duration::from_millis(50));
        let mut seen = Vec::new();
        while (seen.len() as u64) < total {
            let batch = tokio::time::timeout(Duration::from_secs(30), sub.next_batch(100))
                .await
                .expect("subscriber stalled")
                .unwrap();
            seen.extend(batch);
        }
        seen
    });
    let mut writers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for w in 0..WRITERS_PER_NODE {
            let store = node.clone();
            writers.push(tokio::spawn(async move {
                let stream = format!("w-{n}-{w}");
                for v in 0..EVENTS_PER_WRITER {
                    store
                        .append(append(
                            &stream,
                            ExpectedVersion::Exact(v),
                            vec![event("E", v)],
                        ))
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    let seen = collector.await.unwrap();
    assert_eq!(seen.len() as u64, total);
    for (i, e) in seen.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1, "positions are dense and ordered");
    }
    let mut per_stream: HashMap<&str, u64> = HashMap::new();
    for e in &seen {
        let last = per_stream.entry(&e.stream_id).or_default();
        assert_eq!(e.version, *last + 1, "stream order kept in {}", e.stream_id);
        *last = e.version;
    }
    let ids: HashSet<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len() as u64, total, "no event seen twice");
}

/// Readers of one process catching up on a long log together (a node started after an import):
/// each gets exactly the log from its own checkpoint on, in order and as stored, whatever batch
/// size it asks for and wherever it starts relative to the shared blocks; and the blocks are read
/// from the database once for all of them, not once per reader.
async fn readers_catching_up_together_share_one_read_and_see_the_log_exactly(h: Harness) {
    use quire_store::tail::{BLOCK_EVENTS, TailCached};
    let store = h.open().await;
    // Two whole blocks and a part of a third, in appends of 500 events.
    let total = 2 * BLOCK_EVENTS + 1_500;
    let mut version = 0;
    while version < total {
        let n = 500.min(total - version);
        let events = (version..version + n).map(|v| event("E", v)).collect();
        store
            .append(append("log-1", ExpectedVersion::Exact(version), events))
            .await
            .unwrap();
        version += n;
    }
    let mut expected: Vec<quire_store::RecordedEvent> = Vec::new();
    loop {
        let after = expected.last().map_or(0, |e| e.position);
        let page = store.read_all(after, 1_000).await.unwrap();
        if page.is_empty() {
            break;
        }
        expected.extend(page);
    }
    assert_eq!(expected.len() as u64, total);

    let shared = std::sync::Arc::new(TailCached::new(h.open_backend().await, 1_024));
    // Starts at, just before and just after block boundaries; batches smaller and larger than a
    // block.
    let readers: Vec<(u64, usize)> = vec![
        (0, BLOCK_EVENTS as usize),
        (0, BLOCK_EVENTS as usize),
        (0, 700),
        (1, BLOCK_EVENTS as usize),
        (BLOCK_EVENTS - 1, 3_000),
        (BLOCK_EVENTS, BLOCK_EVENTS as usize),
        (BLOCK_EVENTS + 17, 10_000),
    ];
    let tasks: Vec<_> = readers
        .into_iter()
        .map(|(start, limit)| {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut after = start;
                loop {
                    let batch = quire_store::EventStore::read_all_shared(&*shared, after, limit)
                        .await
                        .unwrap();
                    assert!(batch.len() <= limit, "a batch never exceeds its limit");
                    let Some(last) = batch.last().map(|e| e.position) else {
                        break;
                    };
                    seen.extend(batch.iter().cloned());
                    after = last;
                }
                (start, seen)
            })
        })
        .collect();
    for task in tasks {
        let (start, seen) = task.await.unwrap();
        assert_eq!(
            seen,
            expected[start as usize..],
            "a reader from {start} sees the log after it, exactly"
        );
    }
    let (reads, shares) = shared.block_reads_and_shares();
    assert_eq!(
        reads, 2,
        "each whole block is read once for all the readers, not once each"
    );
    assert!(shares > 0, "readers found blocks another reader read");
}

async fn the_head_watch_moves_when_events_commit(h: Harness) {
    let store = h.open().await;
    let mut watch = store.head_watch();
    let before = *watch.borrow_and_update();
    store
        .append(append("s", ExpectedVersion::NoStream, vec![event("A", 1)]))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .expect("head watch did not move")
        .unwrap();
    assert!(*watch.borrow() > before);
}

async fn a_stored_event_id_is_refused_alone(h: Harness) {
    let store = h.open().await;
    let e = event("A", 1);
    store
        .append(append("a", ExpectedVersion::NoStream, vec![e.clone()]))
        .await
        .unwrap();
    let err = store
        .append(append("b", ExpectedVersion::NoStream, vec![e]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)), "{err}");
    store
        .append(append("c", ExpectedVersion::NoStream, vec![event("A", 2)]))
        .await
        .unwrap();
    assert_eq!(store.head().await.unwrap(), 2);
}

async fn streams_and_stats_describe_the_store(h: Harness) {
    let store = h.open().await;
    for id in ["book-b", "book-a", "user-a", "book_%"] {
        store
            .append(append(
                id,
                ExpectedVersion::NoStream,
                vec![event("Added", 1)],
            ))
            .await
            .unwrap();
    }
    store
        .append(append(
            "book-a",
            ExpectedVersion::Exact(1),
            vec![event("Changed", 2)],
        ))
        .await
        .unwrap();
    let books = store.streams("book-", None, 10).await.unwrap();
    let ids: Vec<_> = books.iter().map(|s| s.stream_id.as_str()).collect();
    assert_eq!(ids, vec!["book-a", "book-b"]);
    assert_eq!(books[0].version, 2);
    assert_eq!(books[0].last_position, 5);
    let page = store.streams("book-", Some("book-a"), 10).await.unwrap();
    assert_eq!(page.len(), 1);
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.events, 5);
    assert_eq!(stats.streams, 4);
    assert_eq!(stats.head, 5);
    assert_eq!(stats.by_type[0], ("Added".to_string(), 4));
}

async fn a_read_only_store_reads_a_live_store_and_refuses_writes(h: Harness) {
    let store = h.open().await;
    store
        .append(append("s", ExpectedVersion::NoStream, vec![event("A", 1)]))
        .await
        .unwrap();
    let reader = quire_store::open(
        &h.url(),
        StoreOptions {
            read_only: true,
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(reader.read_all(0, 10).await.unwrap().len(), 1);
    let err = reader
        .append(append("t", ExpectedVersion::NoStream, vec![event("A", 1)]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly));
    // The reader's head watch moves with the writer's later commits (no receiver existed when the
    // reader opened, which must not stop its watcher), and its subscription follows them.
    let mut watch = reader.head_watch();
    watch.borrow_and_update();
    let mut sub = subscribe(reader, 1).with_poll_interval(Duration::from_secs(60));
    store
        .append(append("s", ExpectedVersion::Exact(1), vec![event("A", 2)]))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .expect("the read-only head watch moved")
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("follower saw the commit")
        .unwrap();
    assert_eq!(next.position, 2);
}

/// A payload this backend's database refuses to store: Postgres' `jsonb` cannot hold NUL
/// (`\u0000`, "unsupported Unicode escape sequence"); SQLite's JSON functions, which the batch
/// insert reads its rows with, refuse nesting deeper than 1000.
fn refused_payload(h: &Harness) -> serde_json::Value {
    match h {
        Harness::Postgres(_) => serde_json::json!({ "text": "one \u{0} two" }),
        Harness::Sqlite(_) => {
            let mut nested = serde_json::json!(1);
            for _ in 0..1500 {
                nested = serde_json::json!([nested]);
            }
            nested
        }
    }
}

/// One append whose data the database refuses must not fail the others committed with it: 30
/// writers' appends and one refused append are queued together (on a one-thread runtime, so they
/// are all queued before the writer task runs and form one batch), round after round. Every good
/// append commits; the refused one fails alone, as an invalid request, and stores nothing.
async fn an_append_the_database_refuses_fails_alone_and_its_batch_commits(h: Harness) {
    const WRITERS: u64 = 30;
    const ROUNDS: u64 = 4;
    let store = h.open().await;
    for round in 0..ROUNDS {
        let mut appends: Vec<_> = (0..WRITERS)
            .map(|w| {
                store.append(append(
                    &format!("w-{w}"),
                    ExpectedVersion::Exact(round),
                    vec![event("E", round)],
                ))
            })
            .collect();
        let mut refused = event("Poison", round);
        refused.payload = refused_payload(&h);
        let bad_stream = format!("bad-{round}");
        appends.insert(
            WRITERS as usize / 2,
            store.append(append(
                &bad_stream,
                ExpectedVersion::NoStream,
                vec![refused],
            )),
        );
        let mut outcomes = futures::future::join_all(appends).await;
        let bad = outcomes.remove(WRITERS as usize / 2);
        for (w, outcome) in outcomes.into_iter().enumerate() {
            assert!(
                matches!(
                    outcome,
                    Ok(AppendOutcome::Appended { stream_version, .. }) if stream_version == round + 1
                ),
                "round {round}, writer {w}: {outcome:?}"
            );
        }
        assert!(
            matches!(bad, Err(StoreError::InvalidRequest(_))),
            "round {round}: {bad:?}"
        );
        assert!(
            store
                .read_stream(&bad_stream, 0, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
    let total = WRITERS * ROUNDS;
    assert_eq!(store.head().await.unwrap(), total);
    let all = store.read_all(0, total as usize + 10).await.unwrap();
    assert_eq!(all.len() as u64, total);
    assert!(all.iter().all(|e| e.event_type == "E"));
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1, "positions stay dense");
    }
}

mod refused_data {
    // A one-thread runtime, so that every append of a round is queued before the writer runs.
    #[tokio::test(flavor = "current_thread")]
    async fn sqlite() {
        super::an_append_the_database_refuses_fails_alone_and_its_batch_commits(
            super::Harness::sqlite().await,
        )
        .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn postgres() {
        super::an_append_the_database_refuses_fails_alone_and_its_batch_commits(
            super::Harness::postgres().await,
        )
        .await;
    }
}

/// A rolling upgrade or a rollback starts an older node on a store a newer one has migrated: the
/// migrations it does not know are tolerated (they are additive), and it works as before.
async fn a_store_migrated_by_a_newer_release_still_opens(h: Harness) {
    let store = h.open().await;
    store
        .append(append(
            "book-1",
            ExpectedVersion::NoStream,
            vec![event("A", 1)],
        ))
        .await
        .unwrap();
    drop(store);
    let newer = "INSERT INTO _sqlx_migrations \
                 (version, description, success, checksum, execution_time) \
                 VALUES (99999999999999, 'a newer release', TRUE, X'00', 0)";
    match &h {
        Harness::Sqlite(_) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", h.url()))
                .await
                .unwrap();
            sqlx::query(newer).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Harness::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query(&newer.replace("X'00'", "'\\x00'::bytea"))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
    let store = h.open().await;
    store
        .append(append(
            "book-1",
            ExpectedVersion::Exact(1),
            vec![event("B", 2)],
        ))
        .await
        .unwrap();
    assert_eq!(store.read_stream("book-1", 0, 10).await.unwrap().len(), 2);
}

macro_rules! contract {
    ($backend:ident: $($test:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Harness::$backend().await).await;
                }
            )*
        }
    };
}

macro_rules! contract_all {
    ($($test:ident),* $(,)?) => {
        contract!(sqlite: $($test),*);
        contract!(postgres: $($test),*);
    };
}

contract_all!(
    appends_and_reads_a_stream,
    a_stale_expected_version_is_refused_and_writes_nothing,
    a_retried_command_returns_its_first_outcome_and_appends_nothing,
    a_rejection_is_recorded_without_events,
    concurrent_appends_at_one_version_have_exactly_one_winner,
    a_subscriber_sees_every_event_of_concurrent_writers_once_in_order,
    the_head_watch_moves_when_events_commit,
    a_stored_event_id_is_refused_alone,
    streams_and_stats_describe_the_store,
    a_read_only_store_reads_a_live_store_and_refuses_writes,
    a_store_migrated_by_a_newer_release_still_opens,
    readers_catching_up_together_share_one_read_and_see_the_log_exactly,
);

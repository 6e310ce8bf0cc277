//! The NATS command bus, leases and notifications against a real NATS (JetStream) and Postgres.
//!
//! NATS comes from `QUIRE_TEST_NATS_URL` (default `nats://127.0.0.1:4222`); each test has its own
//! cluster name, hence its own subjects and lease bucket.

mod common;

use common::{cluster_config, nats_client};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use quire_actors::cluster::{
    self, ClusterConfig, ClusterError, LeaseManager, LeaseOwner, NatsBus, NodeInfo, Notifications,
    PartitionServer, Resource, Role,
};
use quire_actors::{
    ActorConfig, Command, CommandBus, CommandEnvelope, CommandError, LocalBus, RejectionKind,
};
use quire_domain::Principal;
use quire_domain::book::BookCommand;
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_domain::values::{AuthorName, Rating, ReviewText, Title};
use quire_store::{DynEventStore, StoreOptions};

/// Deletes a test's lease bucket (only the lease test creates one).
async fn remove_bucket(name: &str) {
    cluster::remove_bucket(
        &nats_client("cleanup").await,
        &cluster_config(name, "cleanup"),
    )
    .await
    .expect("delete the test's bucket");
}

fn cluster_name() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}

async fn postgres() -> DynEventStore {
    let url = quire_store::testing::fresh_postgres_database().await;
    quire_store::open(&url, StoreOptions::default())
        .await
        .unwrap()
}

fn add_book(book_id: BookId) -> CommandEnvelope<Command> {
    CommandEnvelope::new(
        Principal::admin(UserId::new()),
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
        },
    )
}

fn review_by_new_member(book_id: BookId) -> CommandEnvelope<Command> {
    CommandEnvelope::new(
        Principal::member(UserId::new()),
        Command::Book {
            book_id,
            command: BookCommand::PostReview {
                review_id: ReviewId::new(),
                rating: Rating::parse(4).unwrap(),
                text: ReviewText::parse("a thoughtful read").unwrap(),
            },
        },
    )
}

/// Two nodes that *both* serve the book's partition (what a paused node that lost its lease looks
/// like): the store's expected-version check still serializes their writes, and nothing is lost,
/// duplicated or refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_serving_one_partition_still_write_each_command_once() {
    let name = cluster_name();
    let url = quire_store::testing::fresh_postgres_database().await;
    // Two nodes: each its own pool, group-commit writer, actors and NATS connection.
    let store_a = quire_store::open(&url, StoreOptions::default())
        .await
        .unwrap();
    let store_b = quire_store::open(&url, StoreOptions::default())
        .await
        .unwrap();
    let book = BookId::new();
    let partition = cluster::partition_of(&book.stream_id(), 8);
    let mut servers = Vec::new();
    for (node, store) in [("a", store_a.clone()), ("b", store_b.clone())] {
        let server = PartitionServer::new(
            nats_client(node).await,
            cluster_config(&name, node),
            LocalBus::new(store, ActorConfig::default()),
        );
        server.start(partition).await.unwrap();
        servers.push(server);
    }
    let bus = NatsBus::new(nats_client("api").await, cluster_config(&name, "api"));
    bus.dispatch(add_book(book)).await.unwrap();

    let commands: Vec<_> = (0..60).map(|_| review_by_new_member(book)).collect();
    let results = futures::future::join_all(commands.iter().cloned().map(|c| {
        let bus = bus.clone();
        async move { bus.dispatch(c).await }
    }))
    .await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    let events = store_a
        .read_stream(&book.stream_id(), 0, 1000)
        .await
        .unwrap();
    assert_eq!(events.len(), 61, "one event per command");
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=61).collect::<Vec<_>>());

    // A retry of any of them (same command id) is answered from the record, appending nothing.
    let again = bus.dispatch(commands[7].clone()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(
        store_a
            .read_stream(&book.stream_id(), 0, 1000)
            .await
            .unwrap()
            .len(),
        61
    );
    for server in servers {
        server.stop_all().await;
    }
}

/// One node on a fresh database serving all 8 partitions.
async fn serve_everything(cluster: &str, node: &str) -> PartitionServer {
    let server = PartitionServer::new(
        nats_client(node).await,
        cluster_config(cluster, node),
        LocalBus::new(postgres().await, ActorConfig::default()),
    );
    for p in 0..8 {
        server.start(p).await.unwrap();
    }
    server
}

/// A domain refusal crosses the wire as the same refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_cross_the_wire_unchanged() {
    let name = cluster_name();
    let server = serve_everything(&name, "a").await;
    let bus = NatsBus::new(nats_client("api").await, cluster_config(&name, "api"));
    let book = BookId::new();
    bus.dispatch(add_book(book)).await.unwrap();
    match bus.dispatch(add_book(book)).await {
        Err(CommandError::Rejected(r)) => assert_eq!(r.kind, RejectionKind::Conflict, "{r:?}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    // With nobody serving, the bus gives up at its deadline with a retryable error.
    server.stop_all().await;
    let mut short = cluster_config(&name, "api");
    short.request_timeout = Duration::from_millis(600);
    let impatient = NatsBus::new(nats_client("api2").await, short);
    match impatient.dispatch(add_book(BookId::new())).await {
        Err(CommandError::Unavailable(reason)) => assert!(reason.contains("partition"), "{reason}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

/// Records which resources a node works on.
#[derive(Default)]
struct Recorder {
    working: Mutex<HashSet<Resource>>,
    acquisitions: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl LeaseOwner for Recorder {
    async fn acquired(&self, resource: &Resource) -> Result<(), ClusterError> {
        self.acquisitions
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let fresh = self.working.lock().unwrap().insert(resource.clone());
        assert!(fresh, "{resource} acquired twice");
        Ok(())
    }
    async fn released(&self, resource: &Resource) {
        self.working.lock().unwrap().remove(resource);
    }
}

fn node_info(config: &ClusterConfig) -> NodeInfo {
    NodeInfo {
        node_id: config.node_id.clone(),
        roles: vec![Role::Actors, Role::Projections],
        partitions: config.partitions,
        http: None,
        version: "test".into(),
        started_at: 0,
    }
}

async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Leases spread over nodes, never overlap, move to a joining node, and expire from a crashed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_spread_rebalance_and_expire() {
    let name = cluster_name();
    let resources: Vec<Resource> = (0..8)
        .map(Resource::Partition)
        .chain(["books", "reviews", "users"].map(|p| Resource::Projection(p.into())))
        .chain([Resource::Worker("summaries".into())])
        .collect();
    let start = |node: &'static str| {
        let name = name.clone();
        let resources = resources.clone();
        async move {
            let recorder = Arc::new(Recorder::default());
            let config = cluster_config(&name, node);
            let manager = LeaseManager::start(
                nats_client(node).await,
                config.clone(),
                node_info(&config),
                resources,
                recorder.clone(),
            )
            .await
            .unwrap();
            (recorder, manager)
        }
    };
    let count = |r: &Recorder| r.working.lock().unwrap().len();

    let (a, manager_a) = start("a").await;
    eventually("node a to take everything", Duration::from_secs(10), || {
        count(&a) == 12
    })
    .await;

    let (b, manager_b) = start("b").await;
    eventually("a rebalance onto node b", Duration::from_secs(15), || {
        count(&b) >= 3 && count(&a) + count(&b) == 12
    })
    .await;
    let overlap: Vec<_> = a
        .working
        .lock()
        .unwrap()
        .intersection(&b.working.lock().unwrap())
        .cloned()
        .collect();
    assert!(overlap.is_empty(), "two nodes work on {overlap:?}");

    // Node a crashes (no release): its leases expire and b takes them over.
    let crashed = tokio::time::Instant::now();
    manager_a.abort();
    eventually("node b to take over", Duration::from_secs(15), || {
        count(&b) == 12
    })
    .await;
    let took = crashed.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "leases of a crashed node must expire, not vanish ({took:?})"
    );

    // A graceful leave hands everything back at once.
    let (c, manager_c) = start("c").await;
    eventually("a rebalance onto node c", Duration::from_secs(15), || {
        count(&c) >= 3
    })
    .await;
    manager_b.shutdown().await;
    assert_eq!(count(&b), 0, "a leaving node stops all its work");
    eventually("node c to take everything", Duration::from_secs(10), || {
        count(&c) == 12
    })
    .await;
    manager_c.shutdown().await;
    remove_bucket(&name).await;
}

/// A node's appends wake the other nodes' head watches through NATS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_announce_the_new_head() {
    let name = cluster_name();
    let writer = serve_everything(&name, "w").await;
    let announcer = Notifications::new(nats_client("w2").await, cluster_config(&name, "w"));
    let _publishing = announcer.publish_head(writer.appended());

    let seen = Arc::new(Mutex::new(0u64));
    let listener = Notifications::new(nats_client("r").await, cluster_config(&name, "r"));
    let recorded = seen.clone();
    let _listening = listener
        .on_head(move |p| {
            let mut seen = recorded.lock().unwrap();
            *seen = (*seen).max(p);
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let bus = NatsBus::new(nats_client("api").await, cluster_config(&name, "api"));
    let outcome = bus.dispatch(add_book(BookId::new())).await.unwrap();
    eventually("the head notification", Duration::from_secs(5), || {
        *seen.lock().unwrap() >= outcome.last_position
    })
    .await;
    writer.stop_all().await;
}

/// A NATS that lost its JetStream state (the bucket deleted under a running node): the node stops
/// the work whose leases it can no longer renew, recreates the bucket and takes the leases again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_bucket_is_recreated_and_its_leases_retaken() {
    let name = cluster_name();
    let resources: Vec<Resource> = (0..8).map(Resource::Partition).collect();
    let recorder = Arc::new(Recorder::default());
    let config = cluster_config(&name, "a");
    let manager = LeaseManager::start(
        nats_client("a").await,
        config.clone(),
        node_info(&config),
        resources,
        recorder.clone(),
    )
    .await
    .unwrap();
    let count = |r: &Recorder| r.working.lock().unwrap().len();
    eventually("the leases", Duration::from_secs(10), || {
        count(&recorder) == 8
    })
    .await;
    assert_eq!(manager.held().borrow().len(), 8);

    remove_bucket(&name).await;
    // Renewals fail; the node stops that work, recreates the bucket and takes the leases again.
    eventually("the leases to be retaken", Duration::from_secs(15), || {
        recorder
            .acquisitions
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 16
            && count(&recorder) == 8
    })
    .await;
    let view = cluster::read_view(&nats_client("status").await, &config)
        .await
        .unwrap();
    let owned = view
        .leases
        .iter()
        .filter(|l| l.owner.as_deref() == Some("a"))
        .count();
    assert_eq!(
        owned, 8,
        "the recreated bucket holds the leases again: {view:?}"
    );
    manager.shutdown().await;
    remove_bucket(&name).await;
}

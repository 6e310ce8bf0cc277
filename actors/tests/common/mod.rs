//! Helpers of the actor tests: a real store in a temp dir with a local bus on it, the event types
//! of a stream, and the NATS connection of the cluster tests.

#![allow(dead_code, unreachable_pub, reason = "each test binary uses a subset")]

use std::time::Duration;

use quire_actors::cluster::{self, ClusterConfig, NatsOptions};
use quire_actors::{ActorConfig, LocalBus};
use quire_store::{DynEventStore, StoreOptions};

/// A SQLite store in a temp dir (kept as long as the setup) and a local bus over it.
pub struct Setup {
    _dir: tempfile::TempDir,
    pub store: DynEventStore,
    pub bus: LocalBus,
}

pub async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("events.db").display().to_string();
    let store = quire_store::open(&url, StoreOptions::default())
        .await
        .unwrap();
    let bus = LocalBus::new(store.clone(), ActorConfig::default());
    Setup {
        _dir: dir,
        store,
        bus,
    }
}

/// The types of the events in `stream`, in order.
pub async fn events(store: &DynEventStore, stream: &str) -> Vec<String> {
    quire_store::read_stream_to_end(&**store, stream, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

/// NATS at `QUIRE_TEST_NATS_URL` (default `nats://127.0.0.1:4222`).
pub fn nats() -> NatsOptions {
    NatsOptions {
        url: std::env::var("QUIRE_TEST_NATS_URL")
            .unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        ..NatsOptions::default()
    }
}

pub async fn nats_client(name: &str) -> async_nats::Client {
    let options = nats();
    cluster::connect(&options, name).await.unwrap_or_else(|e| {
        panic!(
            "NATS is not reachable at {} ({e}); start it (ops/services.sh) or set QUIRE_TEST_NATS_URL",
            options.url
        )
    })
}

/// A cluster of 8 partitions with short leases, for tests.
pub fn cluster_config(cluster: &str, node: &str) -> ClusterConfig {
    let mut config = ClusterConfig::new(cluster, node);
    config.partitions = 8;
    config.lease_ttl = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(10);
    config
}

//! Several `quire serve` nodes as one cluster over NATS (JetStream) on one Postgres database.
//!
//! NATS comes from `QUIRE_TEST_NATS_URL` (default `nats://127.0.0.1:4222`, with JetStream),
//! Postgres as for every Postgres test (`quire_store::testing`). Each cluster has its own name
//! (and lease bucket) and database, so tests share the services.

use std::time::Duration;

use serde_json::Value;

use super::{Api, Backend, Server, Store, eventually};

/// How long a node's HTTP client waits for an answer unless a test says otherwise.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The shared NATS: `QUIRE_TEST_NATS_URL`, or a local server.
pub fn nats_url() -> String {
    std::env::var("QUIRE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Fails loudly when NATS is not there, rather than letting nodes time out obscurely.
pub fn require_nats(url: &str) {
    let addr = url
        .trim_start_matches("nats://")
        .split(',')
        .next()
        .unwrap()
        .to_string();
    std::net::TcpStream::connect_timeout(
        &addr
            .parse()
            .unwrap_or_else(|e| panic!("QUIRE_TEST_NATS_URL {url}: {e}")),
        Duration::from_secs(2),
    )
    .unwrap_or_else(|e| {
        panic!("NATS is not reachable at {url} ({e}); start it (ops/services.sh) or set QUIRE_TEST_NATS_URL")
    });
}

fn cluster_name() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}

/// One node's process and the id it has in the cluster.
pub struct Node {
    pub id: String,
    pub server: Server,
    pub api: Api,
}

/// Nodes of one cluster on one fresh Postgres database, all with the same settings.
pub struct Cluster {
    pub store: Store,
    pub name: String,
    pub nats: String,
    /// More flags for nodes and `cluster status` (TLS).
    pub extra: Vec<String>,
    /// Settings (environment variables) of every node started.
    pub env: Vec<(String, String)>,
    /// How long the nodes' HTTP clients wait for an answer.
    pub client_timeout: Duration,
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// A cluster on `nats` without nodes yet.
    pub async fn new(nats: String) -> Self {
        Self {
            store: Store::new(Backend::Postgres).await,
            name: cluster_name(),
            nats,
            extra: Vec::new(),
            env: Vec::new(),
            client_timeout: CLIENT_TIMEOUT,
            nodes: Vec::new(),
        }
    }

    /// A cluster of `ids` on the shared NATS, formed and balanced.
    pub async fn started(ids: &[&str]) -> Self {
        Self::started_with(ids, &[], CLIENT_TIMEOUT).await
    }

    /// [`started`](Self::started) with `env` settings on every node and clients that wait
    /// `client_timeout` for an answer.
    pub async fn started_with(
        ids: &[&str],
        env: &[(&str, &str)],
        client_timeout: Duration,
    ) -> Self {
        let nats = nats_url();
        require_nats(&nats);
        let mut cluster = Self::new(nats).await;
        cluster.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cluster.client_timeout = client_timeout;
        for id in ids {
            cluster.start_node(id);
        }
        cluster.wait_until_formed(ids.len()).await;
        cluster
    }

    /// The index in `nodes` of the node `id`.
    pub fn index_of(&self, id: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn node_args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["--nats-url", &self.nats, "--cluster", &self.name]
            .map(String::from)
            .to_vec();
        args.extend(self.extra.iter().cloned());
        args
    }

    pub fn start_node(&mut self, id: &str) {
        let mut args = self.node_args();
        args.extend(["--node-id".to_string(), id.to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let server = Server::start_with_env(&self.store, &args, &env);
        let api = Api::with_timeout(&server.url, self.client_timeout);
        self.nodes.push(Node {
            id: id.to_string(),
            server,
            api,
        });
    }

    /// Stops the nodes and deletes the cluster's lease bucket from the shared NATS.
    pub async fn remove(mut self) {
        for node in &mut self.nodes {
            if node.server.is_running() {
                node.server.kill9();
            }
        }
        let options = quire_actors::cluster::NatsOptions {
            url: self.nats.clone(),
            ..Default::default()
        };
        let config = quire_actors::cluster::ClusterConfig::new(&self.name, "test");
        let client = quire_actors::cluster::connect(&options, "test-cleanup")
            .await
            .expect("NATS for cleanup");
        quire_actors::cluster::remove_bucket(&client, &config)
            .await
            .expect("delete the test's bucket");
    }

    pub fn apis(&self) -> Vec<Api> {
        self.nodes.iter().map(|n| n.api.clone()).collect()
    }

    /// `quire cluster status --json`.
    pub fn status(&self) -> Value {
        let mut args = vec!["cluster".to_string(), "status".into(), "--json".into()];
        args.extend(self.node_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = self.store.run(&args);
        assert!(
            output.status.success(),
            "cluster status failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("cluster status JSON")
    }

    /// Waits until `nodes` nodes are live, each holds partitions, and every partition,
    /// projection and worker (the scheduler included) has an owner.
    pub async fn wait_until_formed(&self, nodes: usize) -> Value {
        eventually("the cluster to form", Duration::from_secs(90), || async {
            let status = self.status();
            let live = status["nodes"].as_array().cloned().unwrap_or_default();
            // Formed and rebalanced: every node serves a share of the partitions.
            let formed = live.len() == nodes
                && live
                    .iter()
                    .all(|n| n["partitions"].as_array().is_some_and(|p| !p.is_empty()))
                && status["unowned_partitions"]
                    .as_array()
                    .is_some_and(Vec::is_empty)
                && status["projections"]
                    .as_array()
                    .is_some_and(|p| p.iter().all(|p| p["owner"].is_string()))
                // One of each worker (summaries, trainer, scheduler) for the whole cluster, each on some node.
                && status["workers"].as_array().is_some_and(|w| {
                    let names: Vec<&str> = w.iter().filter_map(|w| w["name"].as_str()).collect();
                    names == ["recs-trainer", "scheduler", "summaries"] && w.iter().all(|w| w["owner"].is_string())
                });
            formed.then_some(status)
        })
        .await
    }

    /// The node id owning the partition of `book`.
    pub fn owner_of_book(status: &Value, book: &str) -> String {
        let partitions = status["partitions"].as_u64().unwrap() as u32;
        let partition = quire_actors::cluster::partition_of(&format!("book-{book}"), partitions);
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| {
                n["partitions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p.as_u64() == Some(u64::from(partition)))
            })
            .map(|n| n["node_id"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no owner of partition {partition}: {status}"))
    }
}

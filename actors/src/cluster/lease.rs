//! Leases in JetStream KV: which node owns which partition and which projection.
//!
//! One bucket per cluster (`quire_<cluster>`), whose stream keeps one message per key and drops
//! messages older than the lease TTL (`max_age`). So a key that is not rewritten within the TTL
//! disappears: that is how the leases and the membership records of a dead node expire, measured by
//! the NATS server's clock alone.
//!
//! - `node.<id>`: each node's heartbeat ([`NodeInfo`]), rewritten every tick.
//! - `partition.<p>`, `projection.<name>` and `worker.<name>`: a lease, created with `create`
//!   (fails if held) and renewed with `update` at the revision the holder last wrote (fails if
//!   anyone else wrote).
//!
//! Who *should* own a resource is rendezvous hashing over the live nodes with the right role, so
//! every node computes the same answer and a join or leave moves only its share. A node takes a free
//! resource it should own at once, and any resource left free for two ticks (its designated owner
//! may be dead but not yet expired); it hands a resource to its designated owner by releasing it,
//! at most one per tick, so a join rebalances gradually.
//!
//! A node without NATS is a cluster of one: [`LeaseManager::solo`] grants it every resource at
//! start and releases them at shutdown, through the same [`LeaseOwner`] calls, so a single node
//! starts and stops its work by the same code as a cluster node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{ClusterConfig, ClusterError};

/// Something one node at a time works on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Resource {
    /// A command partition: its node runs the commands of the entities that hash to it.
    Partition(u32),
    /// A projection, by the name its checkpoint is stored under.
    Projection(String),
    /// A background worker of which one runs per deployment (the summary worker, the trainer).
    Worker(String),
}

impl Resource {
    pub fn key(&self) -> String {
        match self {
            Self::Partition(p) => format!("partition.{p}"),
            Self::Projection(name) => format!("projection.{name}"),
            Self::Worker(name) => format!("worker.{name}"),
        }
    }

    /// The resource a bucket key names (`partition.3`, `projection.books`, `worker.summaries`).
    pub fn parse(key: &str) -> Option<Self> {
        if let Some(p) = key.strip_prefix("partition.") {
            return p.parse().ok().map(Self::Partition);
        }
        if let Some(name) = key.strip_prefix("projection.") {
            return Some(Self::Projection(name.to_string()));
        }
        key.strip_prefix("worker.")
            .map(|name| Self::Worker(name.to_string()))
    }

    /// The node role that works on this kind of resource.
    pub fn role(&self) -> Role {
        match self {
            Self::Partition(_) => Role::Actors,
            Self::Projection(_) | Self::Worker(_) => Role::Projections,
        }
    }
}

/// What a node does. A node without NATS has every role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Serves the HTTP API.
    Api,
    /// Runs the commands of the partitions it holds.
    Actors,
    /// Runs the projections and workers it holds.
    Projections,
}

impl Role {
    /// Every role, in the order they are listed.
    pub const ALL: [Role; 3] = [Role::Api, Role::Actors, Role::Projections];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Actors => "actors",
            Self::Projections => "projections",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown role {s:?}; the roles are api, actors, projections"))
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// A node's heartbeat record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node_id: String,
    pub roles: Vec<Role>,
    /// The partition count this node uses; every node must agree.
    pub partitions: u32,
    /// Where its HTTP API listens, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    pub version: String,
    /// Unix milliseconds.
    pub started_at: i64,
}

impl NodeInfo {
    fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseValue {
    node_id: String,
    /// Unix milliseconds of the acquisition.
    since: i64,
}

/// The work a node starts and stops as it gains and loses leases.
#[async_trait]
pub trait LeaseOwner: Send + Sync + 'static {
    /// The lease on `resource` was just acquired: start working on it. An error gives it back.
    async fn acquired(&self, resource: &Resource) -> Result<(), ClusterError>;
    /// The lease is being released or was lost: stop working on it, and return only when stopped.
    async fn released(&self, resource: &Resource);
}

/// One resource and its holder, in a [`ClusterView`].
#[derive(Debug, Clone, Serialize)]
pub struct ResourceOwner {
    pub resource: String,
    pub owner: Option<String>,
    /// Unix milliseconds since which the owner has held it.
    pub since: Option<i64>,
}

/// Nodes and leases as the bucket shows them now.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    pub nodes: Vec<NodeInfo>,
    pub leases: Vec<ResourceOwner>,
}

/// Creates the cluster's bucket if needed and opens it.
///
/// async-nats' `create_key_value` reads the account's limits first, and its decoding of that reply
/// fails against nats-server 2.9 (no `reserved_memory`/`reserved_storage`), so the bucket's stream
/// is created directly with the settings a KV bucket has, then opened as a bucket.
pub(crate) async fn open_bucket(
    client: &async_nats::Client,
    config: &ClusterConfig,
) -> Result<kv::Store, ClusterError> {
    let js = jetstream::new(client.clone());
    let bucket = config.bucket();
    let stream = jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(format!("Quire cluster {} nodes and leases", config.cluster)),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: config.lease_ttl,
        storage: jetstream::stream::StorageType::File,
        num_replicas: config.replicas.max(1),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    let mut created = js
        .get_or_create_stream(stream)
        .await
        .map_err(|e| ClusterError::Nats(format!("creating the lease bucket {bucket}: {e}")))?;
    if let Ok(info) = created.info().await
        && info.config.max_age != config.lease_ttl
    {
        tracing::warn!(
            bucket,
            bucket_ttl = ?info.config.max_age,
            configured = ?config.lease_ttl,
            "the lease bucket's TTL differs from this node's lease TTL; the bucket's wins"
        );
    }
    js.get_key_value(bucket.clone())
        .await
        .map_err(|e| ClusterError::Nats(format!("opening the lease bucket {bucket}: {e}")))
}

/// Deletes a cluster's lease bucket (a decommissioned cluster, or a test's). Nodes still running
/// would recreate it.
pub async fn remove_bucket(
    client: &async_nats::Client,
    config: &ClusterConfig,
) -> Result<(), ClusterError> {
    let js = jetstream::new(client.clone());
    let stream = format!("KV_{}", config.bucket());
    js.delete_stream(&stream)
        .await
        .map(|_| ())
        .map_err(|e| ClusterError::Nats(format!("deleting {stream}: {e}")))
}

/// Reads the nodes and leases of a cluster (for `quire cluster status`).
pub async fn read_view(
    client: &async_nats::Client,
    config: &ClusterConfig,
) -> Result<ClusterView, ClusterError> {
    let kv = open_bucket(client, config).await?;
    let keys = list_keys(&kv).await?;
    let mut nodes = Vec::new();
    let mut leases = Vec::new();
    for key in keys {
        let Some(entry) = live_entry(&kv, &key).await? else {
            continue;
        };
        if key.starts_with("node.") {
            if let Ok(node) = serde_json::from_slice::<NodeInfo>(&entry.value) {
                nodes.push(node);
            }
        } else if Resource::parse(&key).is_some() {
            let value = serde_json::from_slice::<LeaseValue>(&entry.value).ok();
            leases.push(ResourceOwner {
                resource: key,
                owner: value.as_ref().map(|v| v.node_id.clone()),
                since: value.map(|v| v.since),
            });
        }
    }
    nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    leases.sort_by(|a, b| Resource::parse(&a.resource).cmp(&Resource::parse(&b.resource)));
    Ok(ClusterView { nodes, leases })
}

async fn list_keys(kv: &kv::Store) -> Result<Vec<String>, ClusterError> {
    let mut keys = kv
        .keys()
        .await
        .map_err(|e| ClusterError::Nats(format!("listing lease keys: {e}")))?;
    // The listing is a consumer over the bucket's stream: a key written again while it runs (a
    // node's heartbeat, a lease renewal) comes a second time, so keys are collected as a set.
    let mut out = std::collections::BTreeSet::new();
    while let Some(key) = keys.next().await {
        out.insert(key.map_err(|e| ClusterError::Nats(format!("listing lease keys: {e}")))?);
    }
    Ok(out.into_iter().collect())
}

/// The key's current value, or `None` when absent, deleted or expired.
async fn live_entry(kv: &kv::Store, key: &str) -> Result<Option<kv::Entry>, ClusterError> {
    let entry = kv
        .entry(key)
        .await
        .map_err(|e| ClusterError::Nats(format!("reading {key}: {e}")))?;
    Ok(entry.filter(|e| e.operation == kv::Operation::Put))
}

/// Rendezvous (highest random weight) choice of the node for `resource` among `candidates`.
fn designated<'a>(resource: &Resource, candidates: &'a [String]) -> Option<&'a str> {
    let key = resource.key();
    candidates
        .iter()
        .max_by_key(|node| {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in node.as_bytes().iter().chain(b"/").chain(key.as_bytes()) {
                hash ^= u64::from(b);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
            // FNV's low bits mix poorly for similar inputs; finish with a splitmix64 round.
            hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            hash ^ (hash >> 31)
        })
        .map(String::as_str)
}

struct Held {
    revision: u64,
    /// When the last successful write of the lease was sent.
    renewed: Instant,
}

/// Takes, renews, hands over and gives up leases for this node.
pub struct LeaseManager {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    held: watch::Receiver<Vec<Resource>>,
}

impl LeaseManager {
    /// Joins the cluster: heartbeats `node`, and competes for `resources`, calling `owner` as
    /// leases come and go.
    pub async fn start(
        client: async_nats::Client,
        config: ClusterConfig,
        node: NodeInfo,
        resources: Vec<Resource>,
        owner: Arc<dyn LeaseOwner>,
    ) -> Result<Self, ClusterError> {
        let kv = open_bucket(&client, &config).await?;
        let kick = Arc::new(Notify::new());
        // Deletions (a node leaving, a lease handed over) are worth acting on before the next tick.
        let watcher = {
            let kv = kv.clone();
            let kick = kick.clone();
            tokio::spawn(async move {
                loop {
                    match kv.watch_all().await {
                        Ok(mut watch) => {
                            while let Some(Ok(entry)) = watch.next().await {
                                if entry.operation != kv::Operation::Put {
                                    kick.notify_one();
                                }
                            }
                        }
                        Err(error) => tracing::debug!(%error, "lease watch failed; retrying"),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        let (stop, stopped) = watch::channel(false);
        let (held_tx, held) = watch::channel(Vec::new());
        let state = Loop {
            client,
            kv,
            config,
            node,
            resources,
            owner,
            held: HashMap::new(),
            free_since: HashMap::new(),
            held_tx,
            kick,
        };
        let task = tokio::spawn(async move {
            state.run(stopped).await;
            watcher.abort();
        });
        Ok(Self { stop, task, held })
    }

    /// A cluster of one: holds every resource in `resources` from the start (acquired in order
    /// before this returns), retrying any whose start failed every second, and releases them in
    /// reverse order at [`shutdown`](Self::shutdown). No NATS is involved: nobody else competes.
    pub async fn solo(resources: Vec<Resource>, owner: Arc<dyn LeaseOwner>) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let (held_tx, held) = watch::channel(Vec::new());
        let mut taken: Vec<Resource> = Vec::new();
        let mut pending: Vec<Resource> = Vec::new();
        for resource in resources {
            match owner.acquired(&resource).await {
                Ok(()) => taken.push(resource),
                Err(error) => {
                    tracing::error!(%resource, %error, "starting work failed; retrying");
                    pending.push(resource);
                }
            }
        }
        let _ = held_tx.send(taken.clone());
        let task = tokio::spawn(async move {
            let mut retry = tokio::time::interval(Duration::from_secs(1));
            retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !*stopped.borrow_and_update() {
                tokio::select! {
                    changed = stopped.changed() => if changed.is_err() { break },
                    _ = retry.tick(), if !pending.is_empty() => {
                        let mut still = Vec::new();
                        for resource in pending.drain(..) {
                            match owner.acquired(&resource).await {
                                Ok(()) => taken.push(resource),
                                Err(error) => {
                                    tracing::debug!(%resource, %error, "starting work failed again");
                                    still.push(resource);
                                }
                            }
                        }
                        pending = still;
                        let _ = held_tx.send(taken.clone());
                    }
                }
            }
            while let Some(resource) = taken.pop() {
                owner.released(&resource).await;
                let _ = held_tx.send(taken.clone());
            }
        });
        Self { stop, task, held }
    }

    /// The resources this node holds now.
    pub fn held(&self) -> watch::Receiver<Vec<Resource>> {
        self.held.clone()
    }

    /// Stops at once without releasing anything, as a crash would: the leases expire after their
    /// TTL. (The work started by the owner is the caller's to stop.)
    pub fn abort(self) {
        self.task.abort();
    }

    /// Leaves the cluster: stops all work, releases every lease and the node record.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "lease manager failed");
        }
    }
}

struct Loop {
    client: async_nats::Client,
    kv: kv::Store,
    config: ClusterConfig,
    node: NodeInfo,
    resources: Vec<Resource>,
    owner: Arc<dyn LeaseOwner>,
    held: HashMap<Resource, Held>,
    /// Since when a resource has been seen free.
    free_since: HashMap<Resource, Instant>,
    held_tx: watch::Sender<Vec<Resource>>,
    kick: Arc<Notify>,
}

impl Loop {
    fn tick(&self) -> Duration {
        (self.config.lease_ttl / 4).max(Duration::from_millis(200))
    }

    fn node_key(&self) -> String {
        format!("node.{}", self.config.node_id)
    }

    fn lease_value(&self) -> bytes::Bytes {
        serde_json::to_vec(&LeaseValue {
            node_id: self.config.node_id.clone(),
            since: time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
        })
        .expect("lease values serialize")
        .into()
    }

    fn publish_held(&self) {
        let mut held: Vec<Resource> = self.held.keys().cloned().collect();
        held.sort();
        self.held_tx.send_replace(held);
    }

    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        tracing::info!(node = %self.config.node_id, roles = ?self.node.roles, "joining the cluster");
        loop {
            // A step must not hang on a NATS call that never answers (an ordered consumer across a
            // server restart): bounded by a lease TTL, and a timeout counts as a failure.
            let step = match tokio::time::timeout(self.config.lease_ttl, self.step()).await {
                Ok(result) => result,
                Err(_) => Err(ClusterError::Nats("cluster step timed out".into())),
            };
            if let Err(error) = step {
                tracing::warn!(error = %error, "cluster step failed; retrying");
                // The bucket may be gone (a NATS server that lost its JetStream state): recreate it.
                match open_bucket(&self.client, &self.config).await {
                    Ok(kv) => self.kv = kv,
                    Err(error) => tracing::debug!(%error, "cannot reopen the lease bucket yet"),
                }
            }
            self.expire_unrenewed().await;
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(self.tick()) => {}
                _ = self.kick.notified() => {}
            }
        }
        self.leave().await;
    }

    /// One round: heartbeat, renew, look at membership and leases, take and give.
    async fn step(&mut self) -> Result<(), ClusterError> {
        let heartbeat = serde_json::to_vec(&self.node).expect("node info serializes");
        self.kv
            .put(self.node_key(), heartbeat.into())
            .await
            .map_err(|e| ClusterError::Nats(format!("heartbeat: {e}")))?;
        self.renew().await;

        let nodes = self.live_nodes().await?;
        let disagree: Vec<&NodeInfo> = nodes
            .iter()
            .filter(|n| n.partitions != self.config.partitions)
            .collect();
        if !disagree.is_empty() {
            tracing::error!(
                partitions = self.config.partitions,
                others = ?disagree.iter().map(|n| (&n.node_id, n.partitions)).collect::<Vec<_>>(),
                "nodes disagree on the partition count; taking no new partitions until they agree"
            );
        }

        let mut handed_over = false;
        for resource in self.resources.clone() {
            let role = resource.role();
            let mut candidates: Vec<String> = nodes
                .iter()
                .filter(|n| n.has_role(role) && n.partitions == self.config.partitions)
                .map(|n| n.node_id.clone())
                .collect();
            if !candidates.contains(&self.config.node_id) {
                candidates.push(self.config.node_id.clone());
            }
            let mine = designated(&resource, &candidates) == Some(self.config.node_id.as_str());

            if self.held.contains_key(&resource) {
                if !mine && !handed_over {
                    // Its designated owner is alive: hand it over (one per tick).
                    handed_over = true;
                    self.release(&resource, true).await;
                }
                continue;
            }
            if matches!(resource, Resource::Partition(_)) && !disagree.is_empty() {
                continue;
            }
            let free = live_entry(&self.kv, &resource.key()).await?.is_none();
            if !free {
                self.free_since.remove(&resource);
                continue;
            }
            // Left free for two ticks, its designated node is not coming (dead, not yet expired,
            // or it disagrees): anyone takes it.
            let since = *self
                .free_since
                .entry(resource.clone())
                .or_insert_with(Instant::now);
            if mine || since.elapsed() >= self.tick() * 2 {
                self.acquire(&resource).await;
            }
        }
        Ok(())
    }

    async fn live_nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let mut nodes = Vec::new();
        for key in list_keys(&self.kv).await? {
            if !key.starts_with("node.") {
                continue;
            }
            if let Some(entry) = live_entry(&self.kv, &key).await?
                && let Ok(node) = serde_json::from_slice::<NodeInfo>(&entry.value)
            {
                nodes.push(node);
            }
        }
        Ok(nodes)
    }

    async fn acquire(&mut self, resource: &Resource) {
        let sent = Instant::now();
        match self.kv.create(resource.key(), self.lease_value()).await {
            Ok(revision) => {
                self.free_since.remove(resource);
                self.held.insert(
                    resource.clone(),
                    Held {
                        revision,
                        renewed: sent,
                    },
                );
                if let Err(error) = self.owner.acquired(resource).await {
                    tracing::error!(%resource, %error, "could not start work on a leased resource; giving it back");
                    self.release(resource, false).await;
                    return;
                }
                tracing::info!(%resource, node = %self.config.node_id, "lease acquired");
                self.publish_held();
            }
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                tracing::debug!(%resource, "lease taken by another node first");
            }
            Err(error) => tracing::warn!(%resource, %error, "could not take a lease"),
        }
    }

    /// Renews every held lease at the revision this node last wrote.
    async fn renew(&mut self) {
        let value = self.lease_value();
        let mut lost = Vec::new();
        for (resource, held) in &mut self.held {
            let sent = Instant::now();
            match self
                .kv
                .update(resource.key(), value.clone(), held.revision)
                .await
            {
                Ok(revision) => {
                    held.revision = revision;
                    held.renewed = sent;
                }
                Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    // It expired (this node was too slow) and someone else may have it now.
                    lost.push(resource.clone());
                }
                Err(error) => {
                    tracing::warn!(%resource, %error, "could not renew a lease");
                }
            }
        }
        for resource in lost {
            tracing::warn!(%resource, node = %self.config.node_id, "lease lost");
            self.held.remove(&resource);
            self.owner.released(&resource).await;
            self.publish_held();
        }
    }

    /// Stops work whose lease could not be renewed for almost a TTL: another node may take it
    /// any moment now.
    async fn expire_unrenewed(&mut self) {
        let margin = self.tick();
        let limit = self.config.lease_ttl.saturating_sub(margin);
        let stale: Vec<Resource> = self
            .held
            .iter()
            .filter(|(_, h)| h.renewed.elapsed() >= limit)
            .map(|(r, _)| r.clone())
            .collect();
        for resource in stale {
            tracing::warn!(%resource, "lease not renewed in time; stopping work on it");
            self.held.remove(&resource);
            self.owner.released(&resource).await;
            self.publish_held();
        }
    }

    /// Stops work on `resource`, then deletes the lease if this node still holds it.
    async fn release(&mut self, resource: &Resource, handover: bool) {
        self.owner.released(resource).await;
        if let Some(held) = self.held.remove(resource)
            && let Err(error) = self
                .kv
                .delete_expect_revision(resource.key(), Some(held.revision))
                .await
        {
            tracing::debug!(%resource, %error, "lease already gone when released");
        }
        if handover {
            tracing::info!(%resource, node = %self.config.node_id, "lease handed over");
        }
        self.publish_held();
    }

    async fn leave(&mut self) {
        tracing::info!(node = %self.config.node_id, "leaving the cluster");
        let held: Vec<Resource> = self.held.keys().cloned().collect();
        for resource in held {
            self.release(&resource, false).await;
        }
        if let Err(error) = self.kv.delete(self.node_key()).await {
            tracing::debug!(%error, "could not remove the node record");
        }
    }
}

/// The resources a node with `roles` competes for: every partition (actors), every named
/// projection and worker (projections).
pub fn resources(
    partitions: u32,
    projections: &[&str],
    workers: &[&str],
    roles: &[Role],
) -> Vec<Resource> {
    let mut out = Vec::new();
    if roles.contains(&Role::Actors) {
        out.extend((0..partitions).map(Resource::Partition));
    }
    if roles.contains(&Role::Projections) {
        out.extend(
            projections
                .iter()
                .map(|p| Resource::Projection((*p).into())),
        );
        out.extend(workers.iter().map(|w| Resource::Worker((*w).into())));
    }
    out
}

/// Counts of resources per designated owner, to check the spread in tests.
#[cfg(test)]
fn spread(resources: &[Resource], nodes: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in resources {
        *counts
            .entry(designated(r, nodes).unwrap().to_string())
            .or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    /// Records what it was asked to start and stop; fails the first start of `flaky`.
    #[derive(Default)]
    struct Journal {
        log: Mutex<Vec<String>>,
        failed_once: Mutex<bool>,
    }

    #[async_trait]
    impl LeaseOwner for Journal {
        async fn acquired(&self, resource: &Resource) -> Result<(), ClusterError> {
            if resource.key() == "worker.flaky" {
                let mut failed = self.failed_once.lock().unwrap();
                if !*failed {
                    *failed = true;
                    return Err(ClusterError::Config("not yet".into()));
                }
            }
            self.log.lock().unwrap().push(format!("+{resource}"));
            Ok(())
        }
        async fn released(&self, resource: &Resource) {
            self.log.lock().unwrap().push(format!("-{resource}"));
        }
    }

    #[tokio::test]
    async fn a_cluster_of_one_holds_everything_retries_failures_and_releases_in_reverse() {
        let journal = Arc::new(Journal::default());
        let resources = resources(4, &["books", "users"], &["flaky"], &[Role::Projections]);
        let leases = LeaseManager::solo(resources, journal.clone()).await;
        assert_eq!(
            *journal.log.lock().unwrap(),
            ["+projection.books", "+projection.users"],
            "no partitions without the actors role; the failing worker is not held yet"
        );
        let mut held = leases.held();
        tokio::time::timeout(Duration::from_secs(5), held.wait_for(|h| h.len() == 3))
            .await
            .expect("the failed start is retried")
            .unwrap();
        leases.shutdown().await;
        assert_eq!(
            *journal.log.lock().unwrap(),
            [
                "+projection.books",
                "+projection.users",
                "+worker.flaky",
                "-worker.flaky",
                "-projection.users",
                "-projection.books"
            ]
        );
    }

    use super::*;

    #[test]
    fn rendezvous_spreads_and_moves_only_a_leavers_share() {
        let partitions: Vec<Resource> = (0..64).map(Resource::Partition).collect();
        let three: Vec<String> = ["node-a", "node-b", "node-c"].map(String::from).to_vec();
        let counts = spread(&partitions, &three);
        assert!(
            counts.values().all(|&c| (12..=32).contains(&c)),
            "{counts:?}"
        );
        let two: Vec<String> = ["node-a", "node-b"].map(String::from).to_vec();
        for r in &partitions {
            let before = designated(r, &three).unwrap();
            let after = designated(r, &two).unwrap();
            if before != "node-c" {
                assert_eq!(before, after, "{r} moved though its node stayed");
            }
        }
    }

    #[test]
    fn resource_keys_round_trip() {
        for r in [
            Resource::Partition(7),
            Resource::Projection("books".into()),
            Resource::Worker("summaries".into()),
        ] {
            assert_eq!(Resource::parse(&r.key()), Some(r));
        }
        assert_eq!(Resource::parse("node.x"), None);
    }
}

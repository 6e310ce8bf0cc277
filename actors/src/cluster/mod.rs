//! Many Quire nodes over NATS: one writer per entity across nodes, and NATS as transport only
//! (ARCHITECTURE.md, "How the known hard problems are handled").
//!
//! - **Transport**: [`NatsBus`] sends each command as a NATS request to the subject of its entity's
//!   partition, `quire.<cluster>.cmd.<p>`, with the command id and trace context in headers, and
//!   retries (same command id) until a node answers or the deadline passes.
//! - **One writer per entity**: a node answers a partition's subject only while it holds that
//!   partition's lease in JetStream KV ([`LeaseManager`]). Leases expire when their holder stops
//!   renewing them and are handed over when nodes join or leave. The event store's expected-version
//!   check stays the final guard: a paused node that lost its lease cannot overwrite anything.
//! - **NATS is transport, not truth**: commands are plain request/reply (nothing is stored in NATS),
//!   leases only decide who *tries* to write, and the "new events up to P" notifications only wake
//!   readers early. Everything is re-derivable from the event store.

mod bus;
mod lease;
mod notify;
mod partition;
mod server;
mod wire;

use std::path::PathBuf;
use std::time::Duration;

pub use bus::NatsBus;
pub use lease::{
    ClusterView, LeaseManager, LeaseOwner, NodeInfo, Resource, ResourceOwner, Role, read_view,
    remove_bucket, resources,
};
pub use notify::Notifications;
pub use partition::partition_of;
pub use server::PartitionServer;

/// How to reach NATS.
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// One or more server URLs, comma-separated (`nats://host:4222`, `tls://host:4222`).
    pub url: String,
    /// A `.creds` file (JWT and NKey seed) for decentralized auth.
    pub credentials_file: Option<PathBuf>,
    /// PEM CA bundle that signs the servers' certificates (implies TLS).
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate and key, for servers that verify clients.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Refuse plaintext connections.
    pub require_tls: bool,
}

/// Who this node is in which cluster, and the cluster's shape.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Subject and bucket namespace, so several clusters (or test runs) can share a NATS.
    pub cluster: String,
    /// Unique per node.
    pub node_id: String,
    /// Number of command partitions; must be the same on every node (checked at join).
    pub partitions: u32,
    /// A lease not renewed for this long expires and may be taken by another node.
    pub lease_ttl: Duration,
    /// How long a command may take end to end, retries included, before the bus gives up.
    pub request_timeout: Duration,
    /// JetStream replicas of the lease bucket (3 in production).
    pub replicas: usize,
}

impl ClusterConfig {
    pub fn new(cluster: impl Into<String>, node_id: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            node_id: node_id.into(),
            partitions: 32,
            lease_ttl: Duration::from_secs(4),
            request_timeout: Duration::from_secs(10),
            replicas: 1,
        }
    }

    /// Checks names that end up in subjects and bucket names.
    pub fn validate(&self) -> Result<(), String> {
        let token = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !token(&self.cluster) {
            return Err(format!(
                "cluster name {:?} must be 1-64 characters of [A-Za-z0-9_-]",
                self.cluster
            ));
        }
        if !token(&self.node_id) {
            return Err(format!(
                "node id {:?} must be 1-64 characters of [A-Za-z0-9_-]",
                self.node_id
            ));
        }
        if !(1..=4096).contains(&self.partitions) {
            return Err("partitions must be between 1 and 4096".into());
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return Err("the lease TTL must be at least 1 s".into());
        }
        Ok(())
    }

    pub(crate) fn command_subject(&self, partition: u32) -> String {
        format!("quire.{}.cmd.{partition}", self.cluster)
    }

    pub(crate) fn head_subject(&self) -> String {
        format!("quire.{}.head", self.cluster)
    }

    pub(crate) fn checkpoint_subject(&self, projection: &str) -> String {
        format!("quire.{}.checkpoint.{projection}", self.cluster)
    }

    /// The JetStream KV bucket holding nodes and leases.
    pub fn bucket(&self) -> String {
        format!("quire_{}", self.cluster)
    }
}

/// Connects to NATS: named connection, TLS and credentials as configured, unlimited reconnects.
/// The first connection must succeed (a node that cannot reach NATS at start-up should say so).
pub async fn connect(
    options: &NatsOptions,
    name: &str,
) -> Result<async_nats::Client, ClusterError> {
    let mut connect = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None)
        // A node's commands wait for their reply under their own deadline.
        .request_timeout(None)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("connected to NATS"),
                async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS"),
                other => tracing::info!(event = %other, "NATS event"),
            }
        });
    if let Some(path) = &options.credentials_file {
        connect = connect.credentials_file(path).await.map_err(|e| {
            ClusterError::Config(format!("reading NATS credentials {}: {e}", path.display()))
        })?;
    }
    if let Some(ca) = &options.tls_ca {
        connect = connect.add_root_certificates(ca.clone()).require_tls(true);
    }
    match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => {
            connect = connect.add_client_certificate(cert.clone(), key.clone());
        }
        (None, None) => {}
        _ => {
            return Err(ClusterError::Config(
                "a NATS client certificate needs both its certificate and its key".into(),
            ));
        }
    }
    if options.require_tls {
        connect = connect.require_tls(true);
    }
    let servers: Vec<&str> = options.url.split(',').map(str::trim).collect();
    let addrs: Vec<async_nats::ServerAddr> = servers
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| ClusterError::Config(format!("NATS URL {:?}: {e}", options.url)))?;
    // Credentials in the URL (`nats://user:password@host`, `nats://token@host`).
    if let Some(addr) = addrs.iter().find(|a| a.username().is_some()) {
        let user = addr.username().unwrap_or_default().to_string();
        connect = match addr.password() {
            Some(password) => connect.user_and_password(user, password.to_string()),
            None => connect.token(user),
        };
    }
    connect.connect(addrs).await.map_err(|e| {
        ClusterError::Nats(format!(
            "connecting to NATS at {}: {e}",
            redact(&options.url)
        ))
    })
}

/// NATS server URLs (comma-separated) without their passwords or tokens, for logs. A NATS URL's
/// user name alone (`nats://token@host`) is a token, so it is hidden too.
pub fn redact(url: &str) -> String {
    url.split(',')
        .map(|u| quire_store::redact_url_credentials(u.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Cluster failures (configuration, NATS).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Nats(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_in_logs() {
        assert_eq!(
            redact("nats://user:secret@host:4222,nats://other:4222"),
            "nats://user:redacted@host:4222,nats://other:4222"
        );
        assert_eq!(
            redact("nats://s3cr3t-token@host:4222"),
            "nats://redacted@host:4222"
        );
    }

    #[test]
    fn names_that_would_break_subjects_are_refused() {
        assert!(ClusterConfig::new("prod", "node-1").validate().is_ok());
        assert!(ClusterConfig::new("a.b", "node-1").validate().is_err());
        assert!(ClusterConfig::new("prod", "node 1").validate().is_err());
        assert!(ClusterConfig::new("prod", "").validate().is_err());
    }
}

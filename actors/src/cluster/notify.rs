//! "New events up to position P" and "projection X reached P" notifications.
//!
//! They only wake readers early: the store's head watch and the read models' checkpoint watches are
//! hints that readers back with reads and polls, so a lost notification delays, never loses.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{ClusterConfig, ClusterError};

/// Publishes and subscribes to a cluster's notifications.
#[derive(Clone)]
pub struct Notifications {
    client: async_nats::Client,
    config: Arc<ClusterConfig>,
}

impl Notifications {
    pub fn new(client: async_nats::Client, config: ClusterConfig) -> Self {
        Self {
            client,
            config: Arc::new(config),
        }
    }

    /// Publishes every change of `positions` (coalesced: a burst sends the latest) as the log head.
    pub fn publish_head(&self, positions: watch::Receiver<u64>) -> JoinHandle<()> {
        publish_positions(self.client.clone(), self.config.head_subject(), positions)
    }

    /// Publishes every change of a projection's checkpoint.
    pub fn publish_checkpoint(
        &self,
        projection: &str,
        positions: watch::Receiver<u64>,
    ) -> JoinHandle<()> {
        publish_positions(
            self.client.clone(),
            self.config.checkpoint_subject(projection),
            positions,
        )
    }

    /// Calls `on_head` with every head position another node announces.
    pub async fn on_head(
        &self,
        on_head: impl Fn(u64) + Send + 'static,
    ) -> Result<JoinHandle<()>, ClusterError> {
        self.listen(self.config.head_subject(), move |_, p| on_head(p))
            .await
    }

    /// Calls `on_checkpoint(projection, position)` with every checkpoint another node announces.
    pub async fn on_checkpoint(
        &self,
        on_checkpoint: impl Fn(&str, u64) + Send + 'static,
    ) -> Result<JoinHandle<()>, ClusterError> {
        let prefix = self.config.checkpoint_subject("");
        self.listen(self.config.checkpoint_subject("*"), move |subject, p| {
            if let Some(name) = subject.strip_prefix(&prefix) {
                on_checkpoint(name, p);
            }
        })
        .await
    }

    /// Calls `f(subject, position)` for every position published on `subject` (may be a wildcard).
    async fn listen(
        &self,
        subject: String,
        f: impl Fn(&str, u64) + Send + 'static,
    ) -> Result<JoinHandle<()>, ClusterError> {
        let mut subscriber = self
            .client
            .subscribe(subject.clone())
            .await
            .map_err(|e| ClusterError::Nats(format!("subscribing to {subject}: {e}")))?;
        Ok(tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                if let Some(p) = parse(&message.payload) {
                    f(message.subject.as_str(), p);
                }
            }
        }))
    }
}

fn parse(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload).ok()?.trim().parse().ok()
}

/// Publishes each new value of `positions` to `subject`, as decimal text.
fn publish_positions(
    client: async_nats::Client,
    subject: String,
    mut positions: watch::Receiver<u64>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let position = *positions.borrow_and_update();
            if position > 0
                && let Err(error) = client
                    .publish(subject.clone(), position.to_string().into())
                    .await
            {
                tracing::debug!(%error, subject, "could not publish a notification");
            }
            if positions.changed().await.is_err() {
                return;
            }
        }
    })
}

//! The serving side: a node answers the command subjects of the partitions it holds leases on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use super::partition::partition_of;
use super::wire::{NODE, Reply, WireError};
use super::{ClusterConfig, ClusterError};
use crate::bus::{Command, CommandBus, LocalBus};
use crate::envelope::CommandEnvelope;

struct Serving {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Subscribes to leased partitions and runs their commands on this node's actors.
#[derive(Clone)]
pub struct PartitionServer {
    client: async_nats::Client,
    config: Arc<ClusterConfig>,
    bus: LocalBus,
    /// The highest global position this node's commands appended, for head notifications.
    appended: Arc<watch::Sender<u64>>,
    serving: Arc<Mutex<HashMap<u32, Serving>>>,
}

impl PartitionServer {
    pub fn new(client: async_nats::Client, config: ClusterConfig, bus: LocalBus) -> Self {
        Self {
            client,
            config: Arc::new(config),
            bus,
            appended: Arc::new(watch::channel(0).0),
            serving: Arc::default(),
        }
    }

    /// Changes to the last position this node appended (feed for "new events" notifications).
    pub fn appended(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Partitions this node answers now.
    pub fn partitions(&self) -> Vec<u32> {
        let mut p: Vec<u32> = self
            .serving
            .lock()
            .expect("serving lock poisoned")
            .keys()
            .copied()
            .collect();
        p.sort_unstable();
        p
    }

    /// Starts answering `partition`'s commands (call once its lease is held).
    pub async fn start(&self, partition: u32) -> Result<(), ClusterError> {
        let subject = self.config.command_subject(partition);
        // A plain subscription, not a queue group: should two nodes briefly both serve a partition
        // (a paused node that has not yet noticed its lease expired), each gets every command and
        // the live one answers; a queue group would send half of them to the paused node to time
        // out. Running a command twice is safe: the store records its id with its events, and the
        // expected-version check on append decides between the two writers.
        let subscriber = self
            .client
            .subscribe(subject.clone())
            .await
            .map_err(|e| ClusterError::Nats(format!("subscribing to {subject}: {e}")))?;
        let (stop, stopped) = oneshot::channel();
        let server = self.clone();
        let task = tokio::spawn(
            server
                .serve(partition, subscriber, stopped)
                .instrument(tracing::info_span!("partition", partition)),
        );
        let previous = self
            .serving
            .lock()
            .expect("serving lock poisoned")
            .insert(partition, Serving { stop, task });
        if let Some(previous) = previous {
            let _ = previous.stop.send(());
        }
        tracing::info!(partition, node = %self.config.node_id, "serving partition");
        Ok(())
    }

    /// Stops taking `partition`'s commands and waits (bounded) for those already taken to finish,
    /// so its lease can be handed over without two nodes writing at once.
    pub async fn stop(&self, partition: u32) {
        let serving = self
            .serving
            .lock()
            .expect("serving lock poisoned")
            .remove(&partition);
        if let Some(serving) = serving {
            let _ = serving.stop.send(());
            if let Err(error) = serving.task.await {
                tracing::error!(partition, %error, "partition task failed");
            }
            tracing::info!(partition, node = %self.config.node_id, "stopped serving partition");
        }
    }

    /// Stops every partition.
    pub async fn stop_all(&self) {
        for partition in self.partitions() {
            self.stop(partition).await;
        }
    }

    async fn serve(
        self,
        partition: u32,
        mut subscriber: async_nats::Subscriber,
        mut stopped: oneshot::Receiver<()>,
    ) {
        let mut running = JoinSet::new();
        loop {
            tokio::select! {
                message = subscriber.next() => match message {
                    Some(message) => {
                        running.spawn(self.clone().handle(partition, message));
                    }
                    None => {
                        tracing::warn!(partition, "partition subscription ended");
                        break;
                    }
                },
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = &mut stopped => {
                    // Unsubscribe, then answer what was already delivered to us: its senders wait.
                    if let Err(error) = subscriber.unsubscribe().await {
                        tracing::warn!(partition, %error, "unsubscribing");
                    }
                    let drain = async {
                        while let Some(message) = subscriber.next().await {
                            running.spawn(self.clone().handle(partition, message));
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
                    break;
                }
            }
        }
        let finish = async { while running.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.request_timeout, finish)
            .await
            .is_err()
        {
            tracing::warn!(
                partition,
                "commands still running after the partition was released"
            );
        }
    }

    async fn handle(self, partition: u32, message: async_nats::Message) {
        let Some(reply_to) = message.reply.clone() else {
            tracing::warn!(partition, "command without a reply subject ignored");
            return;
        };
        let reply = match serde_json::from_slice::<CommandEnvelope<Command>>(&message.payload) {
            Err(e) => Reply::Err {
                error: WireError::BadRequest {
                    message: format!("undecodable command: {e}"),
                },
            },
            Ok(envelope) => {
                let stream_id = envelope.command.stream_id();
                let owner = partition_of(&stream_id, self.config.partitions);
                if owner != partition {
                    Reply::Err {
                        error: WireError::BadRequest {
                            message: format!(
                                "{stream_id} belongs to partition {owner} here, not {partition}: nodes disagree on the partition count"
                            ),
                        },
                    }
                } else {
                    let span = tracing::info_span!(
                        "cluster.command",
                        partition,
                        command_id = %envelope.command_id,
                        stream = %stream_id,
                        traceparent = envelope.traceparent.as_deref().unwrap_or(""),
                        otel.kind = "server",
                    );
                    // A child of the sending node's dispatch span: one trace across the nodes.
                    quire_store::telemetry::adopt(&span, envelope.traceparent.as_deref());
                    match self.bus.dispatch(envelope).instrument(span).await {
                        Ok(outcome) => {
                            let last = outcome.last_position;
                            quire_store::raise_head(&self.appended, last);
                            Reply::Ok { outcome }
                        }
                        Err(error) => Reply::Err {
                            error: WireError::from_error(&error),
                        },
                    }
                }
            }
        };
        let payload = serde_json::to_vec(&reply).expect("replies serialize");
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(NODE, self.config.node_id.as_str());
        if let Err(error) = self
            .client
            .publish_with_headers(reply_to, headers, payload.into())
            .await
        {
            // The sender times out and asks again with the same command id.
            tracing::warn!(partition, %error, "could not send a command reply");
        }
    }
}

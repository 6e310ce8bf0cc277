//! The client side: commands leave this node as NATS requests to their entity's partition.

use std::sync::Arc;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_trait::async_trait;
use tokio::time::Instant;

use super::ClusterConfig;
use super::partition::partition_of;
use super::wire::{COMMAND_ID, NODE, Reply, TRACEPARENT};
use crate::bus::{Command, CommandBus};
use crate::envelope::{CommandEnvelope, CommandError, CommandOutcome};

/// Sends commands to whichever node holds their partition's lease, retrying with the same command
/// id (so a retry is answered from the store's record, never applied twice) until the deadline.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    config: Arc<ClusterConfig>,
}

impl NatsBus {
    pub fn new(client: async_nats::Client, config: ClusterConfig) -> Self {
        Self {
            client,
            config: Arc::new(config),
        }
    }

    /// The longest one attempt waits for its reply before asking again; shorter than a lease so
    /// a request lost with a dying node is re-sent to its successor.
    fn attempt_timeout(&self) -> Duration {
        (self.config.lease_ttl / 2).max(Duration::from_millis(500))
    }
}

#[async_trait]
impl CommandBus for NatsBus {
    #[tracing::instrument(name = "bus.dispatch", skip_all, fields(bus = "nats", command_id = %envelope.command_id, partition, attempts, otel.kind = "client"))]
    async fn dispatch(
        &self,
        mut envelope: CommandEnvelope<Command>,
    ) -> Result<CommandOutcome, CommandError> {
        // The owning node continues the trace from this span.
        envelope.traceparent = quire_store::telemetry::pass_on(envelope.traceparent.take());
        let partition = partition_of(&envelope.command.stream_id(), self.config.partitions);
        tracing::Span::current().record("partition", partition);
        let subject = self.config.command_subject(partition);
        let payload: bytes::Bytes = serde_json::to_vec(&envelope)
            .map_err(|e| CommandError::Unavailable(format!("encoding command: {e}")))?
            .into();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(COMMAND_ID, envelope.command_id.to_string().as_str());
        if let Some(traceparent) = &envelope.traceparent {
            headers.insert(TRACEPARENT, traceparent.as_str());
        }

        let deadline = Instant::now() + self.config.request_timeout;
        let mut backoff = Duration::from_millis(10);
        let mut attempts = 0u32;
        let mut last_problem = String::from("no attempt made");
        loop {
            let now = Instant::now();
            if now >= deadline {
                tracing::Span::current().record("attempts", attempts);
                return Err(CommandError::Unavailable(format!(
                    "no node answered for partition {partition} within {:?} ({attempts} attempts, last: {last_problem}); retry with the same command id",
                    self.config.request_timeout
                )));
            }
            attempts += 1;
            let request = async_nats::Request::new()
                .payload(payload.clone())
                .headers(headers.clone())
                .timeout(Some(self.attempt_timeout().min(deadline - now)));
            match self.client.send_request(subject.clone(), request).await {
                Ok(message) => {
                    tracing::Span::current().record("attempts", attempts);
                    let node = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(NODE))
                        .map_or_else(|| "?".to_string(), |v| v.to_string());
                    let result = match serde_json::from_slice::<Reply>(&message.payload) {
                        Ok(Reply::Ok { outcome }) => Ok(outcome),
                        Ok(Reply::Err { error }) => Err(error.into_error(&node)),
                        Err(e) => Err(CommandError::Unavailable(format!(
                            "undecodable reply from node {node}: {e}"
                        ))),
                    };
                    // Contention means two nodes wrote the entity at once (a lease changing
                    // hands): nothing was applied, so the same command is safe to send again.
                    if let Err(CommandError::Contention { .. }) = &result
                        && Instant::now() + backoff < deadline
                    {
                        last_problem = format!("contention reported by node {node}");
                        tracing::debug!(partition, attempts, "contention; re-sending");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_millis(250));
                        continue;
                    }
                    return result;
                }
                Err(error) => {
                    last_problem = error.to_string();
                    match error.kind() {
                        // The reply may have been lost with its node: ask again at once.
                        RequestErrorKind::TimedOut => {
                            tracing::debug!(
                                partition,
                                attempts,
                                "command request timed out; re-sending"
                            );
                        }
                        // Nobody holds the partition right now (a lease moving, a node dying):
                        // back off briefly and ask again.
                        _ => {
                            tracing::debug!(partition, attempts, error = %last_problem, "no node for partition yet");
                            let pause =
                                backoff.min(deadline.saturating_duration_since(Instant::now()));
                            tokio::time::sleep(pause).await;
                            backoff = (backoff * 2).min(Duration::from_millis(250));
                        }
                    }
                }
            }
        }
    }
}

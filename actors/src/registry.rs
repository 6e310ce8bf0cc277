//! The registry of one aggregate type's entities on this node: spawns an entity's actor on its first
//! command and sends it the entity's commands; idle actors passivate through the live-actor table
//! ([`Slots`]), which also keeps a command from being lost to a passivation race.

use std::sync::Arc;
use std::time::Duration;

use quire_domain::Aggregate;
use quire_store::DynEventStore;
use ractor::Actor;
use tokio::sync::oneshot;

use crate::entity::{ActorConfig, EntityActor, EntityArgs, EntityMsg, EntityRef};
use crate::envelope::{CommandEnvelope, CommandError, CommandOutcome};
use crate::slots::Slots;

/// Reads a registry's live actors while it exists.
pub(crate) type LiveCount = Box<dyn Fn() -> Option<usize> + Send + Sync>;

/// All entities of one aggregate type on this node.
pub struct Entities<A: Aggregate> {
    slots: Arc<Slots<EntityRef<A>>>,
    store: DynEventStore,
    config: ActorConfig,
}

impl<A: Aggregate> Clone for Entities<A> {
    fn clone(&self) -> Self {
        Self {
            slots: self.slots.clone(),
            store: self.store.clone(),
            config: self.config.clone(),
        }
    }
}

impl<A: Aggregate> Entities<A> {
    pub fn new(store: DynEventStore, config: ActorConfig) -> Self {
        Self {
            slots: Arc::new(Slots::new()),
            store,
            config,
        }
    }

    /// How many entity actors are live.
    pub fn live(&self) -> usize {
        self.slots.len()
    }

    /// [`live`](Self::live) for as long as the registry exists.
    pub(crate) fn live_weak(&self) -> LiveCount {
        let slots = std::sync::Arc::downgrade(&self.slots);
        Box::new(move || slots.upgrade().map(|s| s.len()))
    }

    /// Runs a command on the entity `key` (its id as text), starting its actor if needed.
    pub async fn execute(
        &self,
        key: &str,
        envelope: CommandEnvelope<A::Command>,
    ) -> Result<CommandOutcome, CommandError> {
        // Two attempts: the second covers an actor that died between lookup and send.
        for _ in 0..2 {
            let slot = self.slots.checkout(key);
            let actor = slot
                .actor()
                .get_or_try_init(|| async {
                    let args = EntityArgs {
                        key: key.to_string(),
                        store: self.store.clone(),
                        slots: self.slots.clone(),
                        slot: slot.clone(),
                        config: self.config.clone(),
                    };
                    Actor::spawn(None, EntityActor::<A>::new(), args)
                        .await
                        .map(|(actor, _)| actor)
                })
                .await;
            let actor = match actor {
                Ok(actor) => actor.clone(),
                Err(e) => {
                    slot.finished();
                    self.slots.forget(key, &slot);
                    return Err(CommandError::Unavailable(format!(
                        "starting entity actor: {e}"
                    )));
                }
            };
            let (reply, answer) = oneshot::channel();
            let message = EntityMsg::Execute {
                envelope: envelope.clone(),
                reply,
            };
            if actor.send_message(message).is_err() {
                // The actor stopped (it crashed, or the node is shutting down); drop its slot and
                // try once more with a fresh actor.
                slot.finished();
                self.slots.forget(key, &slot);
                continue;
            }
            return answer.await.unwrap_or_else(|_| {
                Err(CommandError::Unavailable(
                    "entity actor stopped before answering; retry with the same command id".into(),
                ))
            });
        }
        Err(CommandError::Unavailable(
            "entity actor could not be reached".into(),
        ))
    }

    /// Lets every live actor finish the commands it has queued, then stops it.
    pub async fn shutdown(&self, timeout: Duration) {
        let drains = self.slots.drain().into_iter().filter_map(|slot| {
            slot.actor()
                .get()
                .cloned()
                .map(|actor| async move { actor.drain_and_wait(Some(timeout)).await })
        });
        for result in futures::future::join_all(drains).await {
            if let Err(error) = result {
                tracing::warn!(%error, "entity actor did not drain in time");
            }
        }
    }
}

//! The registry of live entity actors: spawn on first command, passivate when idle, never lose a
//! command to a passivation race (BRIEF problem 4).
//!
//! The race: an actor decides to stop for idleness while a command is on its way to it. The registry
//! closes it with one counter per actor (`inflight`), changed only under the registry lock on the
//! sending side: a sender looks the actor up and increments the counter under the lock, then sends;
//! the actor decrements after replying. Passivation takes the same lock, and stops the actor only if
//! the counter is zero, removing it from the map in the same critical section. So either the sender
//! found the actor before passivation (the counter is non-zero and the actor stays), or after (the
//! actor is gone from the map and the sender starts a fresh one that reloads from the store).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quire_domain::Aggregate;
use quire_store::DynEventStore;
use ractor::{Actor, ActorRef};
use tokio::sync::{OnceCell, oneshot};

use crate::entity::{ActorConfig, EntityActor, EntityArgs, EntityMsg};
use crate::envelope::{CommandEnvelope, CommandError, CommandOutcome};

/// One live (or starting) actor and the count of commands sent to it and not yet answered.
pub(crate) struct Slot<A: Aggregate> {
    inflight: AtomicUsize,
    actor: OnceCell<ActorRef<EntityMsg<A>>>,
}

impl<A: Aggregate> Slot<A> {
    fn new() -> Self {
        Self {
            inflight: AtomicUsize::new(0),
            actor: OnceCell::new(),
        }
    }

    /// Called by the actor after answering a command.
    pub(crate) fn finished(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) struct Registry<A: Aggregate> {
    slots: Mutex<HashMap<String, Arc<Slot<A>>>>,
}

impl<A: Aggregate> Registry<A> {
    /// Stops the actor's slot if nothing is in flight; true when the actor must stop now.
    pub(crate) fn try_passivate(&self, key: &str, slot: &Arc<Slot<A>>) -> bool {
        let mut slots = self.slots.lock().expect("registry lock poisoned");
        if slot.inflight.load(Ordering::Acquire) != 0 {
            return false;
        }
        if slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(key);
        }
        true
    }

    /// Finds or creates the entity's slot and counts one more command in flight to it, under the
    /// lock that passivation takes too.
    fn checkout(&self, key: &str) -> Arc<Slot<A>> {
        let mut slots = self.slots.lock().expect("registry lock poisoned");
        let slot = slots
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(Slot::new()))
            .clone();
        slot.inflight.fetch_add(1, Ordering::AcqRel);
        slot
    }

    fn forget(&self, key: &str, slot: &Arc<Slot<A>>) {
        let mut slots = self.slots.lock().expect("registry lock poisoned");
        if slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(key);
        }
    }
}

/// All entities of one aggregate type on this node.
pub struct Entities<A: Aggregate> {
    registry: Arc<Registry<A>>,
    store: DynEventStore,
    config: ActorConfig,
}

impl<A: Aggregate> Clone for Entities<A> {
    fn clone(&self) -> Self {
        Self {
            registry: self.registry.clone(),
            store: self.store.clone(),
            config: self.config.clone(),
        }
    }
}

impl<A: Aggregate> Entities<A> {
    pub fn new(store: DynEventStore, config: ActorConfig) -> Self {
        Self {
            registry: Arc::new(Registry {
                slots: Mutex::new(HashMap::new()),
            }),
            store,
            config,
        }
    }

    /// How many entity actors are live.
    pub fn live(&self) -> usize {
        self.registry
            .slots
            .lock()
            .expect("registry lock poisoned")
            .len()
    }

    /// Runs a command on the entity `key` (its id as text), starting its actor if needed.
    pub async fn execute(
        &self,
        key: &str,
        envelope: CommandEnvelope<A::Command>,
    ) -> Result<CommandOutcome, CommandError> {
        // Two attempts: the second covers an actor that died between lookup and send.
        for _ in 0..2 {
            let slot = self.registry.checkout(key);
            let actor = slot
                .actor
                .get_or_try_init(|| async {
                    let args = EntityArgs {
                        key: key.to_string(),
                        store: self.store.clone(),
                        registry: self.registry.clone(),
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
                    self.registry.forget(key, &slot);
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
                self.registry.forget(key, &slot);
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
        let slots: Vec<_> = self
            .registry
            .slots
            .lock()
            .expect("registry lock poisoned")
            .drain()
            .collect();
        let drains = slots.into_iter().filter_map(|(_, slot)| {
            slot.actor
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

#[cfg(test)]
mod tests {
    use super::*;
    use quire_domain::book::Book;

    fn registry() -> Registry<Book> {
        Registry {
            slots: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn an_actor_with_a_command_on_its_way_does_not_passivate() {
        let r = registry();
        let slot = r.checkout("b1");
        // The command was counted before it was sent: passivation must refuse.
        assert!(!r.try_passivate("b1", &slot));
        slot.finished();
        assert!(r.try_passivate("b1", &slot));
    }

    #[test]
    fn a_sender_after_passivation_gets_a_fresh_actor() {
        let r = registry();
        let old = r.checkout("b1");
        old.finished();
        assert!(r.try_passivate("b1", &old));
        let new = r.checkout("b1");
        assert!(
            !Arc::ptr_eq(&old, &new),
            "the stopping actor is never reused"
        );
    }

    #[test]
    fn passivation_of_a_stale_slot_leaves_the_new_one_alone() {
        let r = registry();
        let old = r.checkout("b1");
        r.forget("b1", &old);
        let new = r.checkout("b1");
        old.finished();
        assert!(r.try_passivate("b1", &old));
        assert!(
            r.slots
                .lock()
                .unwrap()
                .get("b1")
                .is_some_and(|s| Arc::ptr_eq(s, &new))
        );
    }
}

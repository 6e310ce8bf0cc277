//! The table of live entity actors of one aggregate type, which never loses a command to a
//! passivation race (ARCHITECTURE.md, "How the known hard problems are handled", "Passivation
//! races").
//!
//! The race: an actor decides to stop for idleness while a command is on its way to it. The table
//! closes it with one counter per actor (`inflight`), changed only under the table's lock on the
//! sending side: a sender looks the actor up and increments the counter under the lock, then sends;
//! the actor decrements after replying. Passivation takes the same lock, and stops the actor only if
//! the counter is zero, removing it from the map in the same critical section. So either the sender
//! found the actor before passivation (the counter is non-zero and the actor stays), or after (the
//! actor is gone from the map and the sender starts a fresh one that reloads from the store).
//!
//! The table is generic over the actor handle `T` so that it depends on neither the entity actor
//! (which passivates through it) nor the registry (which spawns actors into it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// One live (or starting) actor and the count of commands sent to it and not yet answered.
pub(crate) struct Slot<T> {
    inflight: AtomicUsize,
    actor: OnceCell<T>,
}

impl<T> Slot<T> {
    fn new() -> Self {
        Self {
            inflight: AtomicUsize::new(0),
            actor: OnceCell::new(),
        }
    }

    /// The actor, set once by whoever starts it.
    pub(crate) fn actor(&self) -> &OnceCell<T> {
        &self.actor
    }

    /// Called by the actor after answering a command (and by a sender that could not deliver it).
    pub(crate) fn finished(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The slots of all live entities, by entity key.
pub(crate) struct Slots<T> {
    slots: Mutex<HashMap<String, Arc<Slot<T>>>>,
}

impl<T> Slots<T> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Stops the actor's slot if nothing is in flight; true when the actor must stop now.
    pub(crate) fn try_passivate(&self, key: &str, slot: &Arc<Slot<T>>) -> bool {
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
    pub(crate) fn checkout(&self, key: &str) -> Arc<Slot<T>> {
        let mut slots = self.slots.lock().expect("registry lock poisoned");
        let slot = slots
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(Slot::new()))
            .clone();
        slot.inflight.fetch_add(1, Ordering::AcqRel);
        slot
    }

    /// Drops the entity's slot if it is still `slot` (its actor failed to start or stopped).
    pub(crate) fn forget(&self, key: &str, slot: &Arc<Slot<T>>) {
        let mut slots = self.slots.lock().expect("registry lock poisoned");
        if slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(key);
        }
    }

    /// How many entities have a slot.
    pub(crate) fn len(&self) -> usize {
        self.slots.lock().expect("registry lock poisoned").len()
    }

    /// Empties the table, returning every slot it held.
    pub(crate) fn drain(&self) -> Vec<Arc<Slot<T>>> {
        self.slots
            .lock()
            .expect("registry lock poisoned")
            .drain()
            .map(|(_, slot)| slot)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_with_a_command_on_its_way_does_not_passivate() {
        let r = Slots::<()>::new();
        let slot = r.checkout("b1");
        // The command was counted before it was sent: passivation must refuse.
        assert!(!r.try_passivate("b1", &slot));
        slot.finished();
        assert!(r.try_passivate("b1", &slot));
    }

    #[test]
    fn a_sender_after_passivation_gets_a_fresh_actor() {
        let r = Slots::<()>::new();
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
        let r = Slots::<()>::new();
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

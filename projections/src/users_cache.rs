//! Users rows that writes check (is the member a review is posted for still active?), kept in
//! memory while the users projection runs in this process.
//!
//! An admin posting for a member read the member's row on every request: a database round trip
//! per review. A row is cached with the generation of the users tables it was read at; the runner
//! moves the generation after every batch it commits to them (and a rebuild after its swap), so a
//! deactivation is seen by the next check on this node exactly as when every check read the
//! table. The generation is read before the row, so a row read across a commit is already stale
//! when stored. Another node's write is seen once this node's projection applies it: such checks
//! race writes anyway. Authentication does not use the cache (a revocation must hold on every node
//! at once).
//!
//! Only a process that runs the users projection can know when its tables change; elsewhere every
//! read goes to the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use quire_domain::ids::UserId;

use crate::views::UserView;

/// Rows kept at most; past it the cache starts over (one member's rows are a few hundred bytes).
const MAX_ROWS: usize = 50_000;

#[derive(Default)]
pub(crate) struct UsersCache {
    generation: AtomicU64,
    by_id: Mutex<HashMap<UserId, (u64, Option<UserView>)>>,
}

impl UsersCache {
    /// The users tables changed (a batch committed, a rebuild swapped in).
    pub(crate) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The generation to store a row read from now on with.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn user(&self, id: UserId) -> Option<Option<UserView>> {
        let generation = self.generation();
        let rows = self.by_id.lock().expect("users cache lock");
        rows.get(&id)
            .filter(|(at, _)| *at == generation)
            .map(|(_, row)| row.clone())
    }

    pub(crate) fn store_user(&self, id: UserId, generation: u64, row: Option<UserView>) {
        let mut rows = self.by_id.lock().expect("users cache lock");
        if rows.len() >= MAX_ROWS {
            rows.clear();
        }
        rows.insert(id, (generation, row));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: UserId, active: bool) -> UserView {
        UserView {
            id,
            name: "Ann".into(),
            username: None,
            email: None,
            role: quire_domain::Role::Member,
            active,
            favourite_genres: Vec::new(),
            created_at: 0,
            version: 1,
            session_epoch: 0,
        }
    }

    #[test]
    fn a_row_is_served_until_the_tables_change() {
        let cache = UsersCache::default();
        let ann = UserId::new();
        assert!(cache.user(ann).is_none(), "nothing cached yet");
        cache.store_user(ann, cache.generation(), Some(row(ann, true)));
        assert!(cache.user(ann).unwrap().unwrap().active);
        cache.changed();
        assert!(
            cache.user(ann).is_none(),
            "a change to the users tables (a deactivation, say) is read again"
        );
    }

    #[test]
    fn a_row_read_across_a_change_is_stale_when_stored() {
        let cache = UsersCache::default();
        let ann = UserId::new();
        let before = cache.generation();
        cache.changed(); // committed while the row was being read
        cache.store_user(ann, before, Some(row(ann, true)));
        assert!(cache.user(ann).is_none());
    }
}

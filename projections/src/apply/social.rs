//! The `social` projection's handlers: follows (`rm_follows`) and activity privacy
//! (`rm_member_privacy`) from the users' streams, and the members' public activity
//! (`rm_activity`): reviews from the books' streams, ratings without a review and likes from the
//! users' streams.
//!
//! An activity row is keyed by `(book_id, kind, user_id)`: a member has at most one review, one
//! rating and one like per book. Book first, because the bulk of activity arrives book by book
//! (an import posts a book's reviews together) and so lands on neighbouring pages; the feed's
//! user-first index carries the key too.
//!
//! Every row records the global position of the last event applied to it and every change is
//! guarded by `position < event position` (inserts by `ON CONFLICT … WHERE`), so a replayed event
//! changes nothing. An unfollow, an unlike or a deleted review keeps its row, switched off, so a
//! replayed follow or like cannot bring it back; a deleted review's words leave the row. Privacy is
//! recorded, not applied: the queries leave private members' activity out, so switching it back
//! restores everything at once.
//!
//! New activity items (review posts, ratings, likes: the bulk of an import) are buffered and
//! written with one multi-row upsert; anything else that touches `rm_activity` flushes them first,
//! so the batch keeps log order.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use quire_domain::book::BookEvent;
use quire_domain::user::UserEvent;
use quire_store::RecordedEvent;
use serde_json::{Value, json};

use crate::ReadModelError;
use crate::db::{Arg, Tx, json_text};
use crate::decode::{REVIEW_TYPES, book_of, decode_book, decode_user, user_of};

/// The user events this projection reads; others are not decoded at all.
pub(super) const USER_TYPES: [&str; 6] = [
    "BookLiked",
    "BookUnliked",
    "BookRated",
    "UserFollowed",
    "UserUnfollowed",
    "ActivityPrivacyChanged",
];

/// The most characters of a review's text an activity item keeps.
pub(crate) const EXCERPT_CHARS: usize = 200;

/// The start of a review's text, cut at a character boundary with an ellipsis; `None` if empty.
fn excerpt(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match text.char_indices().nth(EXCERPT_CHARS) {
        None => Some(text.to_string()),
        Some((cut, _)) => Some(format!("{}…", text[..cut].trim_end())),
    }
}

/// An activity row's key: the book, the kind of item, the member.
type Key = (String, &'static str, String);

/// New or renewed activity items waiting for one multi-row upsert, in first-seen order; a later
/// item with the same key replaces the earlier one (an upsert sets every column, so only the last
/// one matters).
#[derive(Default)]
struct Upserts {
    rows: Vec<Value>,
    index: HashMap<Key, usize>,
}

impl Upserts {
    fn push(
        &mut self,
        (book, kind, user): Key,
        rating: Option<i64>,
        review_id: Option<String>,
        excerpt: Option<String>,
        event: &RecordedEvent,
    ) {
        let row = json!([
            book,
            kind,
            user,
            rating,
            review_id,
            excerpt,
            event.recorded_at,
            event.position as i64
        ]);
        match self.index.entry((book, kind, user)) {
            Entry::Occupied(at) => self.rows[*at.get()] = row,
            Entry::Vacant(slot) => {
                slot.insert(self.rows.len());
                self.rows.push(row);
            }
        }
    }

    async fn flush(&mut self, tx: &mut Tx, s: &str) -> Result<(), ReadModelError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        self.index.clear();
        let rows = Value::Array(std::mem::take(&mut self.rows));
        let b = tx.backend();
        let t = format!("rm_activity{s}");
        tx.exec(
            "projecting activity",
            &format!(
                "INSERT INTO {t} (book_id, kind, user_id, rating, review_id, excerpt, live, at, \
                 seq, position) SELECT j.value->>0, j.value->>1, j.value->>2, \
                 CAST(j.value->>3 AS BIGINT), j.value->>4, j.value->>5, TRUE, \
                 CAST(j.value->>6 AS BIGINT), CAST(j.value->>7 AS BIGINT), \
                 CAST(j.value->>7 AS BIGINT) FROM {} WHERE true \
                 ON CONFLICT (book_id, kind, user_id) DO UPDATE SET \
                 rating = excluded.rating, review_id = excluded.review_id, \
                 excerpt = excluded.excerpt, live = TRUE, at = excluded.at, seq = excluded.seq, \
                 position = excluded.position WHERE {t}.position < excluded.position",
                b.rows(1)
            ),
            &[Arg::Text(json_text(&rows))],
        )
        .await?;
        Ok(())
    }
}

/// Switches an activity item off (an unlike; a deleted review also loses its words). With
/// `review_id`, only if the row is still that review (a member who deleted a review and posted
/// another has the new one in the row).
async fn switch_off(
    tx: &mut Tx,
    s: &str,
    context: &'static str,
    (book, kind, user): Key,
    review_id: Option<String>,
    p: i64,
) -> Result<(), ReadModelError> {
    tx.exec(
        context,
        &format!(
            "UPDATE rm_activity{s} SET live = FALSE, excerpt = NULL, position = $4 \
             WHERE book_id = $1 AND kind = $2 AND user_id = $3 AND position < $4 \
             AND ($5 IS NULL OR review_id = $5)"
        ),
        &[
            Arg::Text(book),
            Arg::Text(kind.to_string()),
            Arg::Text(user),
            Arg::I64(p),
            Arg::OptText(review_id),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn apply(
    tx: &mut Tx,
    s: &str,
    events: &[&RecordedEvent],
) -> Result<(), ReadModelError> {
    let mut upserts = Upserts::default();
    for &event in events {
        let p = event.position as i64;
        let kind = event.event_type.as_str();
        if REVIEW_TYPES.contains(&kind) {
            let Some(book) = book_of(event)? else {
                continue;
            };
            match decode_book(event, &book)? {
                BookEvent::ReviewPosted {
                    review_id,
                    member_id,
                    rating,
                    text,
                } => {
                    upserts.push(
                        (book, "review", member_id.to_string()),
                        Some(i64::from(rating.value())),
                        Some(review_id.to_string()),
                        excerpt(text.as_str()),
                        event,
                    );
                }
                BookEvent::ReviewEdited {
                    review_id,
                    rating,
                    text,
                } => {
                    upserts.flush(tx, s).await?;
                    // The item keeps its place in feeds: an edit is not new activity. The event
                    // does not name the member, so the row is found among the book's reviews
                    // (a range of the key).
                    let excerpt = text.as_ref().map(|t| excerpt(t.as_str()));
                    tx.exec(
                        "projecting ReviewEdited",
                        &format!(
                            "UPDATE rm_activity{s} SET rating = COALESCE($2, rating), \
                             excerpt = CASE WHEN $3 THEN $4 ELSE excerpt END, position = $5 \
                             WHERE book_id = $6 AND kind = 'review' AND review_id = $1 AND live \
                             AND position < $5"
                        ),
                        &[
                            Arg::Text(review_id.to_string()),
                            Arg::OptI64(rating.map(|r| i64::from(r.value()))),
                            Arg::Bool(excerpt.is_some()),
                            Arg::OptText(excerpt.flatten()),
                            Arg::I64(p),
                            Arg::Text(book),
                        ],
                    )
                    .await?;
                }
                BookEvent::ReviewDeleted {
                    review_id,
                    member_id,
                    ..
                } => {
                    upserts.flush(tx, s).await?;
                    let key = (book, "review", member_id.to_string());
                    let review = Some(review_id.to_string());
                    switch_off(tx, s, "projecting ReviewDeleted", key, review, p).await?;
                }
                _ => unreachable!("only review events pass the type filter"),
            }
        } else if USER_TYPES.contains(&kind) {
            let Some(user) = user_of(event)? else {
                continue;
            };
            match decode_user(event)? {
                UserEvent::BookLiked { book_id } => {
                    upserts.push((book_id.to_string(), "like", user), None, None, None, event);
                }
                UserEvent::BookUnliked { book_id } => {
                    upserts.flush(tx, s).await?;
                    let key = (book_id.to_string(), "like", user);
                    switch_off(tx, s, "projecting BookUnliked", key, None, p).await?;
                }
                UserEvent::BookRated { book_id, rating } => {
                    // A new rating replaces the old one and is new activity.
                    upserts.push(
                        (book_id.to_string(), "rating", user),
                        Some(i64::from(rating.value())),
                        None,
                        None,
                        event,
                    );
                }
                UserEvent::UserFollowed { followee } => {
                    tx.exec(
                        "projecting UserFollowed",
                        &format!(
                            "INSERT INTO rm_follows{s} (follower_id, followee_id, active, since, \
                             seq, position) VALUES ($1, $2, TRUE, $3, $4, $4) \
                             ON CONFLICT (follower_id, followee_id) DO UPDATE SET active = TRUE, \
                             since = excluded.since, seq = excluded.seq, \
                             position = excluded.position \
                             WHERE rm_follows{s}.position < excluded.position"
                        ),
                        &[
                            Arg::Text(user),
                            Arg::Text(followee.to_string()),
                            Arg::I64(event.recorded_at),
                            Arg::I64(p),
                        ],
                    )
                    .await?;
                }
                UserEvent::UserUnfollowed { followee } => {
                    tx.exec(
                        "projecting UserUnfollowed",
                        &format!(
                            "UPDATE rm_follows{s} SET active = FALSE, position = $3 \
                             WHERE follower_id = $1 AND followee_id = $2 AND position < $3"
                        ),
                        &[
                            Arg::Text(user),
                            Arg::Text(followee.to_string()),
                            Arg::I64(p),
                        ],
                    )
                    .await?;
                }
                UserEvent::ActivityPrivacyChanged { private } => {
                    tx.exec(
                        "projecting ActivityPrivacyChanged",
                        &format!(
                            "INSERT INTO rm_member_privacy{s} (user_id, private, position) \
                             VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE SET \
                             private = excluded.private, position = excluded.position \
                             WHERE rm_member_privacy{s}.position < excluded.position"
                        ),
                        &[Arg::Text(user), Arg::Bool(private), Arg::I64(p)],
                    )
                    .await?;
                }
                _ => unreachable!("only social user events pass the type filter"),
            }
        }
    }
    upserts.flush(tx, s).await
}

#[cfg(test)]
mod tests {
    use super::{EXCERPT_CHARS, excerpt};

    #[test]
    fn excerpts_cut_long_texts_at_a_character() {
        assert_eq!(excerpt("  "), None);
        assert_eq!(excerpt(" Short. ").as_deref(), Some("Short."));
        let long = "é".repeat(EXCERPT_CHARS + 5);
        let cut = excerpt(&long).unwrap();
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
        let exact = "x".repeat(EXCERPT_CHARS);
        assert_eq!(excerpt(&exact).as_deref(), Some(exact.as_str()));
    }
}

//! The `social` projection's handlers: follows (`rm_follows`) and activity privacy
//! (`rm_member_privacy`) from the users' streams, and the members' public activity
//! (`rm_activity`): reviews from the books' streams, ratings without a review and likes from the
//! users' streams.
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

fn review_item(review_id: &str) -> String {
    format!("review:{review_id}")
}

fn rating_item(user: &str, book: &str) -> String {
    format!("rating:{user}:{book}")
}

fn like_item(user: &str, book: &str) -> String {
    format!("like:{user}:{book}")
}

/// New or renewed activity items waiting for one multi-row upsert, in first-seen order; a later
/// item with the same id replaces the earlier one (an upsert sets every column, so only the last
/// one matters).
#[derive(Default)]
struct Upserts {
    rows: Vec<Value>,
    index: HashMap<String, usize>,
}

impl Upserts {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        id: String,
        kind: &str,
        user: &str,
        book: &str,
        rating: Option<i64>,
        review_id: Option<String>,
        excerpt: Option<String>,
        event: &RecordedEvent,
    ) {
        let row = json!([
            id,
            kind,
            user,
            book,
            rating,
            review_id,
            excerpt,
            event.recorded_at,
            event.position as i64
        ]);
        match self.index.get(&id) {
            Some(&i) => self.rows[i] = row,
            None => {
                self.index.insert(id, self.rows.len());
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
                "INSERT INTO {t} (activity_id, kind, user_id, book_id, rating, review_id, \
                 excerpt, live, at, seq, position) SELECT j.value->>0, j.value->>1, \
                 j.value->>2, j.value->>3, CAST(j.value->>4 AS BIGINT), j.value->>5, \
                 j.value->>6, TRUE, CAST(j.value->>7 AS BIGINT), CAST(j.value->>8 AS BIGINT), \
                 CAST(j.value->>8 AS BIGINT) FROM {} WHERE true \
                 ON CONFLICT (activity_id) DO UPDATE SET kind = excluded.kind, \
                 user_id = excluded.user_id, book_id = excluded.book_id, \
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

/// Switches an activity item off (an unlike; a deleted review also loses its words).
async fn switch_off(
    tx: &mut Tx,
    s: &str,
    context: &'static str,
    id: String,
    p: i64,
) -> Result<(), ReadModelError> {
    tx.exec(
        context,
        &format!(
            "UPDATE rm_activity{s} SET live = FALSE, excerpt = NULL, position = $2 \
             WHERE activity_id = $1 AND position < $2"
        ),
        &[Arg::Text(id), Arg::I64(p)],
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
                    let review_id = review_id.to_string();
                    upserts.push(
                        review_item(&review_id),
                        "review",
                        &member_id.to_string(),
                        &book,
                        Some(i64::from(rating.value())),
                        Some(review_id),
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
                    // The item keeps its place in feeds: an edit is not new activity.
                    let excerpt = text.as_ref().map(|t| excerpt(t.as_str()));
                    tx.exec(
                        "projecting ReviewEdited",
                        &format!(
                            "UPDATE rm_activity{s} SET rating = COALESCE($2, rating), \
                             excerpt = CASE WHEN $3 THEN $4 ELSE excerpt END, position = $5 \
                             WHERE activity_id = $1 AND live AND position < $5"
                        ),
                        &[
                            Arg::Text(review_item(&review_id.to_string())),
                            Arg::OptI64(rating.map(|r| i64::from(r.value()))),
                            Arg::Bool(excerpt.is_some()),
                            Arg::OptText(excerpt.flatten()),
                            Arg::I64(p),
                        ],
                    )
                    .await?;
                }
                BookEvent::ReviewDeleted { review_id, .. } => {
                    upserts.flush(tx, s).await?;
                    let id = review_item(&review_id.to_string());
                    switch_off(tx, s, "projecting ReviewDeleted", id, p).await?;
                }
                _ => unreachable!("only review events pass the type filter"),
            }
        } else if USER_TYPES.contains(&kind) {
            let Some(user) = user_of(event)? else {
                continue;
            };
            match decode_user(event)? {
                UserEvent::BookLiked { book_id } => {
                    let book = book_id.to_string();
                    upserts.push(
                        like_item(&user, &book),
                        "like",
                        &user,
                        &book,
                        None,
                        None,
                        None,
                        event,
                    );
                }
                UserEvent::BookUnliked { book_id } => {
                    upserts.flush(tx, s).await?;
                    let id = like_item(&user, &book_id.to_string());
                    switch_off(tx, s, "projecting BookUnliked", id, p).await?;
                }
                UserEvent::BookRated { book_id, rating } => {
                    // A new rating replaces the old one and is new activity.
                    let book = book_id.to_string();
                    upserts.push(
                        rating_item(&user, &book),
                        "rating",
                        &user,
                        &book,
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

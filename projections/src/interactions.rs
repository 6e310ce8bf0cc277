//! The `interactions` projection: one row per member and book with what the recommender counts —
//! the rating of the member's review, a rating given without a review, a like, and the number of
//! views — and the queries training and serving make of it.
//!
//! Rows are keyed `(book_id, user_id)`: ratings arrive in bulk book by book (an import posts a
//! book's reviews together), so their rows land on neighbouring pages; a member's reads go through
//! the `(user_id, book_id)` index.
//!
//! A batch folds its events into one pending change per (member, book), in log order, and writes
//! them with two statements: an insert of the missing rows, then one update from the JSON list.
//! Like every projection, the batch commits together with the checkpoint it read under a lock.
//! View counts only add, so replays an operator asks for (a checkpoint reset) must not count twice:
//! every row records the global position of the last event applied to it, and an event at or
//! before that position is skipped for that row.

use std::collections::HashMap;

use quire_domain::book::BookEvent;
use quire_domain::ids::{BookId, UserId};
use quire_domain::user::UserEvent;
use quire_store::RecordedEvent;
use serde_json::{Value, json};

use crate::db::{Arg, Tx, json_text};
use crate::decode::{book_of, decode_book, decode_user, user_of};
use crate::{ProjectionName, ReadModelError, ReadModels};

/// The events this projection reads.
pub(crate) const TYPES: [&str; 7] = [
    "ReviewPosted",
    "ReviewEdited",
    "ReviewDeleted",
    "BookLiked",
    "BookUnliked",
    "BookViewed",
    "BookRated",
];

/// A pending change to one (member, book) row; `None` fields are left as they are.
#[derive(Default)]
struct Change {
    rating: Option<Option<i64>>,
    review: Option<Option<(String, i64)>>,
    liked: Option<bool>,
    views: i64,
    at: i64,
    position: i64,
}

/// The batch's pending changes, in first-touched order (so statements are deterministic), and
/// the position each touched row was last changed at before the batch.
#[derive(Default)]
struct Pending {
    order: Vec<(String, String)>,
    changes: HashMap<(String, String), Change>,
    stored: HashMap<(String, String), i64>,
}

impl Pending {
    /// The change for a row, or `None` if the row already has this event (a replay): every row
    /// records the global position of the last event applied to it, and events arrive in
    /// position order, so an event at or before it was applied before.
    fn touch(&mut self, user: String, book: String, event: &RecordedEvent) -> Option<&mut Change> {
        let key = (user, book);
        let position = event.position as i64;
        if self
            .stored
            .get(&key)
            .is_some_and(|stored| position <= *stored)
        {
            return None;
        }
        if !self.changes.contains_key(&key) {
            self.order.push(key.clone());
        }
        let change = self.changes.entry(key).or_default();
        change.at = event.recorded_at;
        change.position = position;
        Some(change)
    }

    /// The member whose pending review on `book` has `review_id`, if it was posted in this batch.
    fn reviewer(&self, book: &str, review_id: &str) -> Option<String> {
        self.changes.iter().find_map(|((user, b), change)| {
            let posted = change.review.as_ref()?.as_ref()?;
            (b == book && posted.0 == review_id).then(|| user.clone())
        })
    }
}

/// An event of the batch that this projection folds.
enum Op {
    /// A change to a known row.
    Row {
        user: String,
        book: String,
        change: fn(&mut Change, &Payload),
        payload: Payload,
    },
    /// A change to the row holding a review, found by the review's id.
    Review {
        book: String,
        review_id: String,
        rating: Option<i64>,
    },
}

/// What an [`Op::Row`] carries.
enum Payload {
    None,
    Rating(i64),
    Review(String, i64),
}

fn op(event: &RecordedEvent) -> Result<Option<Op>, ReadModelError> {
    if !TYPES.contains(&event.event_type.as_str()) {
        return Ok(None);
    }
    if let Some(book) = book_of(event)? {
        return Ok(match decode_book(event, &book)? {
            BookEvent::ReviewPosted {
                review_id,
                member_id,
                rating,
                ..
            } => Some(Op::Row {
                user: member_id.to_string(),
                book,
                change: |c, p| {
                    if let Payload::Review(id, rating) = p {
                        c.review = Some(Some((id.clone(), *rating)));
                    }
                },
                payload: Payload::Review(review_id.to_string(), i64::from(rating.value())),
            }),
            BookEvent::ReviewEdited {
                review_id,
                rating: Some(rating),
                ..
            } => Some(Op::Review {
                book,
                review_id: review_id.to_string(),
                rating: Some(i64::from(rating.value())),
            }),
            BookEvent::ReviewDeleted { review_id, .. } => Some(Op::Review {
                book,
                review_id: review_id.to_string(),
                rating: None,
            }),
            _ => None,
        });
    }
    let Some(user) = user_of(event)? else {
        return Ok(None);
    };
    let row = |book: BookId, change: fn(&mut Change, &Payload), payload| {
        Some(Op::Row {
            user: user.clone(),
            book: book.to_string(),
            change,
            payload,
        })
    };
    Ok(match decode_user(event)? {
        UserEvent::BookLiked { book_id } => {
            row(book_id, |c, _| c.liked = Some(true), Payload::None)
        }
        UserEvent::BookUnliked { book_id } => {
            row(book_id, |c, _| c.liked = Some(false), Payload::None)
        }
        UserEvent::BookViewed { book_id } => row(book_id, |c, _| c.views += 1, Payload::None),
        UserEvent::BookRated { book_id, rating } => row(
            book_id,
            |c, p| {
                if let Payload::Rating(r) = p {
                    c.rating = Some(Some(*r));
                }
            },
            Payload::Rating(i64::from(rating.value())),
        ),
        _ => None,
    })
}

pub(crate) async fn apply(
    tx: &mut Tx,
    s: &str,
    events: &[&RecordedEvent],
) -> Result<(), ReadModelError> {
    let mut ops = Vec::new();
    for &event in events {
        if let Some(op) = op(event)? {
            ops.push((event, op));
        }
    }
    if ops.is_empty() {
        return Ok(());
    }
    let keys: Vec<Value> = ops
        .iter()
        .filter_map(|(_, op)| match op {
            Op::Row { user, book, .. } => Some(json!([user, book])),
            Op::Review { .. } => None,
        })
        .collect();
    let mut pending = Pending {
        stored: stored_positions(tx, s, keys).await?,
        ..Pending::default()
    };
    for (event, op) in ops {
        match op {
            Op::Row {
                user,
                book,
                change,
                payload,
            } => {
                if let Some(c) = pending.touch(user, book, event) {
                    change(c, &payload);
                }
            }
            Op::Review {
                book,
                review_id,
                rating,
            } => {
                let Some(user) = reviewer(tx, s, &mut pending, &book, &review_id).await? else {
                    continue;
                };
                if let Some(c) = pending.touch(user, book, event) {
                    c.review = Some(rating.map(|r| (review_id, r)));
                }
            }
        }
    }
    flush(tx, s, pending).await
}

/// The position each existing row among `keys` (`[user, book]` pairs) was last changed at.
async fn stored_positions(
    tx: &mut Tx,
    s: &str,
    keys: Vec<Value>,
) -> Result<HashMap<(String, String), i64>, ReadModelError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let b = tx.backend();
    let rows = tx
        .fetch_pairs(
            "reading interaction positions",
            &format!(
                "SELECT i.user_id || ' ' || i.book_id, i.position FROM rm_interactions{s} i, {} \
                 WHERE i.user_id = j.value->>0 AND i.book_id = j.value->>1",
                b.rows(1)
            ),
            &[Arg::Text(json_text(&Value::Array(keys)))],
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(key, position)| {
            let (user, book) = key.split_once(' ')?;
            Some(((user.to_string(), book.to_string()), position))
        })
        .collect())
}

/// The member whose live review on `book` has `review_id`: from this batch, or from the table
/// (then the row's stored position is noted too).
async fn reviewer(
    tx: &mut Tx,
    s: &str,
    pending: &mut Pending,
    book: &str,
    review_id: &str,
) -> Result<Option<String>, ReadModelError> {
    if let Some(user) = pending.reviewer(book, review_id) {
        return Ok(Some(user));
    }
    let found = tx
        .fetch_pairs(
            "finding a review's member",
            &format!(
                "SELECT user_id, position FROM rm_interactions{s} \
                 WHERE book_id = $1 AND review_id = $2"
            ),
            &[
                Arg::Text(book.to_string()),
                Arg::Text(review_id.to_string()),
            ],
        )
        .await?
        .into_iter()
        .next();
    Ok(found.map(|(user, position)| {
        pending
            .stored
            .entry((user.clone(), book.to_string()))
            .or_insert(position);
        user
    }))
}

async fn flush(tx: &mut Tx, s: &str, pending: Pending) -> Result<(), ReadModelError> {
    if pending.order.is_empty() {
        return Ok(());
    }
    let Pending {
        order, mut changes, ..
    } = pending;
    let flag = |set: bool| i64::from(set);
    let rows: Vec<Value> = order
        .into_iter()
        .map(|key| {
            let c = changes
                .remove(&key)
                .expect("every ordered key has a change");
            let (review_set, review) = match c.review {
                Some(r) => (true, r),
                None => (false, None),
            };
            let (review_id, review_rating) = review.unzip();
            json!([
                key.0,
                key.1,
                flag(c.rating.is_some()),
                c.rating.flatten(),
                flag(review_set),
                review_id,
                review_rating,
                flag(c.liked.is_some()),
                flag(c.liked == Some(true)),
                c.views,
                c.at,
                c.position
            ])
        })
        .collect();
    let rows = json_text(&Value::Array(rows));
    let b = tx.backend();
    let t = format!("rm_interactions{s}");
    tx.exec(
        "adding interaction rows",
        &format!(
            "INSERT INTO {t} (user_id, book_id, liked, views, updated_at, position) \
             SELECT j.value->>0, j.value->>1, FALSE, 0, CAST(j.value->>10 AS BIGINT), \
             CAST(j.value->>11 AS BIGINT) FROM {} WHERE true \
             ON CONFLICT (book_id, user_id) DO NOTHING",
            b.rows(1)
        ),
        &[Arg::Text(rows.clone())],
    )
    .await?;
    let set = |n: usize, column: &str, value: &str| {
        format!(
            "{column} = CASE WHEN CAST(j.value->>{n} AS BIGINT) = 1 THEN {value} ELSE {t}.{column} END"
        )
    };
    tx.exec(
        "projecting interactions",
        &format!(
            "UPDATE {t} SET {}, {}, {}, {}, views = {t}.views + CAST(j.value->>9 AS BIGINT), \
             updated_at = CAST(j.value->>10 AS BIGINT), position = CAST(j.value->>11 AS BIGINT) \
             FROM {} WHERE {t}.user_id = j.value->>0 AND {t}.book_id = j.value->>1",
            set(2, "rating", "CAST(j.value->>3 AS BIGINT)"),
            set(4, "review_id", "j.value->>5"),
            set(4, "review_rating", "CAST(j.value->>6 AS BIGINT)"),
            set(7, "liked", "(CAST(j.value->>8 AS BIGINT) = 1)"),
            b.rows(1)
        ),
        &[Arg::Text(rows)],
    )
    .await?;
    Ok(())
}

/// What a member did with a book, as the recommender counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionRow {
    pub user_id: UserId,
    pub book_id: BookId,
    /// The review's rating if the member reviewed the book, else a rating given without a review.
    pub rating: Option<u8>,
    pub liked: bool,
    pub views: u32,
}

#[derive(sqlx::FromRow)]
struct Row {
    user_id: String,
    book_id: String,
    rating: Option<i64>,
    liked: bool,
    views: i64,
}

impl Row {
    fn into_row(self) -> Result<InteractionRow, ReadModelError> {
        let corrupt = |what: &str, v: &str| ReadModelError::Corrupt(format!("{what} {v}"));
        Ok(InteractionRow {
            user_id: self
                .user_id
                .parse()
                .map_err(|_| corrupt("user id", &self.user_id))?,
            book_id: self
                .book_id
                .parse()
                .map_err(|_| corrupt("book id", &self.book_id))?,
            rating: self.rating.and_then(|r| u8::try_from(r).ok()),
            liked: self.liked,
            views: u32::try_from(self.views.max(0)).unwrap_or(u32::MAX),
        })
    }
}

/// Live interactions only: with a signal left, of an active member, on a book in the catalogue.
const LIVE: &str = "FROM rm_interactions i JOIN rm_books b ON b.id = i.book_id AND NOT b.removed \
                    JOIN rm_users u ON u.id = i.user_id AND u.active \
                    WHERE (i.review_rating IS NOT NULL OR i.rating IS NOT NULL OR i.liked \
                    OR i.views > 0)";
const COLUMNS: &str = "i.user_id, i.book_id, COALESCE(i.review_rating, i.rating) AS rating, \
                       i.liked, i.views";

impl ReadModels {
    /// Every live interaction, and the position of the log they cover at least: the
    /// `interactions` checkpoint, read before the rows (rows may include a little more).
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn interaction_snapshot(&self) -> Result<(Vec<InteractionRow>, u64), ReadModelError> {
        let covers = self.stored_checkpoint(ProjectionName::Interactions).await?;
        let rows: Vec<Row> = self
            .fetch_all(
                "reading interactions",
                &format!("SELECT {COLUMNS} {LIVE}"),
                &[],
            )
            .await?;
        let mut rows = rows
            .into_iter()
            .map(Row::into_row)
            .collect::<Result<Vec<_>, _>>()?;
        // Sorted here rather than by the database: the table is keyed by book, and ordering a
        // million rows by member in SQL would look each one up through the member index.
        rows.sort_unstable_by_key(|r| (r.user_id, r.book_id));
        Ok((rows, covers))
    }

    /// A member's live interactions, by book.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn user_interactions(
        &self,
        user: UserId,
    ) -> Result<Vec<InteractionRow>, ReadModelError> {
        let rows: Vec<Row> = self
            .fetch_all(
                "reading a member's interactions",
                &format!("SELECT {COLUMNS} {LIVE} AND i.user_id = $1 ORDER BY i.book_id"),
                &[Arg::Text(user.to_string())],
            )
            .await?;
        rows.into_iter().map(Row::into_row).collect()
    }

    /// Whether any live interaction exists.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn has_interactions(&self) -> Result<bool, ReadModelError> {
        let rows: Vec<(i64,)> = self
            .fetch_all(
                "looking for interactions",
                &format!("SELECT CAST(1 AS BIGINT) {LIVE} LIMIT 1"),
                &[],
            )
            .await?;
        Ok(!rows.is_empty())
    }
}

//! The `reviews` projection's handlers: `rm_reviews` and each book's rating stats
//! (`rm_book_stats`), which move only by the rows a statement actually inserted or changed.
//! Review posts are buffered and inserted with one multi-row statement; an edit or a deletion
//! flushes them first, so the batch keeps log order.

use std::collections::HashMap;

use quire_domain::book::BookEvent;
use quire_store::RecordedEvent;
use serde_json::{Value, json};

use crate::ReadModelError;
use crate::db::{Arg, Tx, json_text};
use crate::decode::{REVIEW_TYPES, book_of, decode_book};

/// Per-book changes to the rating stats: count, sum, and the count of each rating 1..=5.
#[derive(Default)]
struct StatsDelta([i64; 7]);

impl StatsDelta {
    fn add(&mut self, rating: i64, sign: i64) {
        self.0[0] += sign;
        self.0[1] += sign * rating;
        if (1..=5).contains(&rating) {
            self.0[1 + rating as usize] += sign;
        }
    }
}

/// Inserts the pending review posts (one statement) and counts the inserted ones into `stats`.
async fn flush_posts(
    tx: &mut Tx,
    s: &str,
    posts: &mut Vec<Value>,
    stats: &mut HashMap<String, StatsDelta>,
) -> Result<(), ReadModelError> {
    if posts.is_empty() {
        return Ok(());
    }
    let b = tx.backend();
    let rows = Value::Array(std::mem::take(posts));
    let inserted = tx
        .fetch_pairs(
            "projecting ReviewPosted",
            &format!(
                "INSERT INTO rm_reviews{s} (id, book_id, member_id, rating, text, created_at, \
                 updated_at, deleted, version) SELECT j.value->>0, j.value->>1, j.value->>2, \
                 CAST(j.value->>3 AS BIGINT), j.value->>4, CAST(j.value->>5 AS BIGINT), \
                 CAST(j.value->>5 AS BIGINT), FALSE, CAST(j.value->>6 AS BIGINT) FROM {} \
                 WHERE true ON CONFLICT (id) DO NOTHING RETURNING book_id, rating",
                b.rows(1)
            ),
            &[Arg::Text(json_text(&rows))],
        )
        .await?;
    for (book_id, rating) in inserted {
        stats.entry(book_id).or_default().add(rating, 1);
    }
    Ok(())
}

/// The book and rating of a live review last changed before `version`, if any.
async fn review_before(
    tx: &mut Tx,
    s: &str,
    review_id: &str,
    version: i64,
) -> Result<Option<(String, i64)>, ReadModelError> {
    Ok(tx
        .fetch_pairs(
            "reading review",
            &format!(
                "SELECT book_id, rating FROM rm_reviews{s} \
                 WHERE id = $1 AND version < $2 AND NOT deleted"
            ),
            &[Arg::Text(review_id.to_string()), Arg::I64(version)],
        )
        .await?
        .into_iter()
        .next())
}

pub(super) async fn apply(
    tx: &mut Tx,
    s: &str,
    events: &[&RecordedEvent],
) -> Result<(), ReadModelError> {
    let mut posts: Vec<Value> = Vec::new();
    let mut stats: HashMap<String, StatsDelta> = HashMap::new();
    for &event in events {
        if !REVIEW_TYPES.contains(&event.event_type.as_str()) {
            continue;
        }
        let Some(book_id) = book_of(event)? else {
            continue;
        };
        let version = event.version as i64;
        let at = event.recorded_at;
        match decode_book(event, &book_id)? {
            BookEvent::ReviewPosted {
                review_id,
                member_id,
                rating,
                text,
            } => posts.push(json!([
                review_id.to_string(),
                book_id,
                member_id.to_string(),
                rating.value(),
                text.as_str(),
                at,
                version
            ])),
            BookEvent::ReviewEdited {
                review_id,
                rating,
                text,
            } => {
                flush_posts(tx, s, &mut posts, &mut stats).await?;
                let review_id = review_id.to_string();
                if let Some((book, old)) = review_before(tx, s, &review_id, version).await? {
                    let new = rating.map(|r| i64::from(r.value()));
                    tx.exec(
                        "projecting ReviewEdited",
                        &format!(
                            "UPDATE rm_reviews{s} SET rating = COALESCE($2, rating), \
                             text = COALESCE($3, text), updated_at = $4, version = $5 \
                             WHERE id = $1"
                        ),
                        &[
                            Arg::Text(review_id),
                            Arg::OptI64(new),
                            Arg::OptText(text.map(|t| t.into_inner())),
                            Arg::I64(at),
                            Arg::I64(version),
                        ],
                    )
                    .await?;
                    if let Some(new) = new.filter(|n| *n != old) {
                        let delta = stats.entry(book).or_default();
                        delta.add(old, -1);
                        delta.add(new, 1);
                    }
                }
            }
            BookEvent::ReviewDeleted { review_id, .. } => {
                // The row stays (its id, author and rating, for the stats and for 410s); the
                // member's words go, as they go from every public view of the book.
                flush_posts(tx, s, &mut posts, &mut stats).await?;
                let review_id = review_id.to_string();
                if let Some((book, old)) = review_before(tx, s, &review_id, version).await? {
                    tx.exec(
                        "projecting ReviewDeleted",
                        &format!(
                            "UPDATE rm_reviews{s} SET deleted = TRUE, text = '', \
                             updated_at = $2, version = $3 WHERE id = $1"
                        ),
                        &[Arg::Text(review_id), Arg::I64(at), Arg::I64(version)],
                    )
                    .await?;
                    stats.entry(book).or_default().add(old, -1);
                }
            }
            _ => unreachable!("only review events pass the type filter"),
        }
    }
    flush_posts(tx, s, &mut posts, &mut stats).await?;
    let rows: Vec<Value> = stats
        .into_iter()
        .filter(|(_, d)| d.0.iter().any(|n| *n != 0))
        .map(|(book, d)| {
            let [count, sum, r1, r2, r3, r4, r5] = d.0;
            json!([book, count, sum, r1, r2, r3, r4, r5])
        })
        .collect();
    if !rows.is_empty() {
        let b = tx.backend();
        let t = format!("rm_book_stats{s}");
        tx.exec(
            "updating rating stats",
            &format!(
                "INSERT INTO {t} (book_id, count, sum, r1, r2, r3, r4, r5) SELECT j.value->>0, \
                 CAST(j.value->>1 AS BIGINT), CAST(j.value->>2 AS BIGINT), \
                 CAST(j.value->>3 AS BIGINT), CAST(j.value->>4 AS BIGINT), \
                 CAST(j.value->>5 AS BIGINT), CAST(j.value->>6 AS BIGINT), \
                 CAST(j.value->>7 AS BIGINT) FROM {} WHERE true \
                 ON CONFLICT (book_id) DO UPDATE SET count = {t}.count + excluded.count, \
                 sum = {t}.sum + excluded.sum, r1 = {t}.r1 + excluded.r1, \
                 r2 = {t}.r2 + excluded.r2, r3 = {t}.r3 + excluded.r3, \
                 r4 = {t}.r4 + excluded.r4, r5 = {t}.r5 + excluded.r5",
                b.rows(1)
            ),
            &[Arg::Text(json_text(&Value::Array(rows)))],
        )
        .await?;
    }
    Ok(())
}

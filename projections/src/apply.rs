//! The projections' handlers: how events of the global log change the read-model tables.
//!
//! Every handler is idempotent, so that applying an event twice (at-least-once delivery, a
//! checkpoint reset, a rebuild racing the live runner) leaves the same state:
//! - rows carry the stream version of the last event applied to them, and every update is guarded
//!   by `version < event version`;
//! - reviews are inserted with `ON CONFLICT DO NOTHING`, and the per-book rating stats change only by
//!   the rows a statement actually inserted or changed, in the same transaction.
//!
//! A batch is applied with few statements: review posts (the bulk of an import) become one multi-row
//! insert whose `RETURNING` rows feed one multi-row stats upsert, and the version bumps that reviews
//! cause on their book become one multi-row update at the end of the batch.

use std::borrow::Cow;
use std::collections::HashMap;

use quire_domain::DomainEvent;
use quire_domain::book::BookEvent;
use quire_domain::ids::{BookId, UserId};
use quire_domain::user::UserEvent;
use quire_store::RecordedEvent;
use serde_json::{Value, json};

use crate::ReadModelError;
use crate::db::{Arg, Tx};

/// One of the projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Projection {
    Books,
    Reviews,
    Users,
    Interactions,
}

impl Projection {
    pub(crate) const ALL: [Projection; 4] =
        [Self::Books, Self::Reviews, Self::Users, Self::Interactions];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Books => "books",
            Self::Reviews => "reviews",
            Self::Users => "users",
            Self::Interactions => "interactions",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The position in [`crate::PROJECTIONS`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The tables this projection owns (and a rebuild replaces).
    pub(crate) fn tables(self) -> &'static [&'static str] {
        match self {
            Self::Books => &["rm_books", "rm_book_authors", "rm_book_genres"],
            Self::Reviews => &["rm_reviews", "rm_book_stats"],
            Self::Users => &["rm_users"],
            Self::Interactions => &["rm_interactions"],
        }
    }
}

/// Where a batch goes: the live tables, or a rebuild's shadow tables (`suffix`), each with its
/// own checkpoint row.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) projection: Projection,
    pub(crate) suffix: &'static str,
    pub(crate) checkpoint: String,
}

impl Target {
    pub(crate) fn live(projection: Projection) -> Self {
        Self {
            projection,
            suffix: "",
            checkpoint: projection.name().to_string(),
        }
    }
}

/// Applies the events after the target's checkpoint, inside `tx`, and moves the checkpoint to the
/// batch's last position. The checkpoint row is read (and in Postgres locked) first, so events that
/// another runner or a rebuild already applied are skipped. Returns the new checkpoint.
pub(crate) async fn apply_batch(
    tx: &mut Tx,
    target: &Target,
    events: &[RecordedEvent],
) -> Result<u64, ReadModelError> {
    let backend = tx.backend();
    let checkpoint = tx
        .fetch_i64(
            "locking checkpoint",
            backend.lock_checkpoint(),
            &[Arg::Text(target.checkpoint.clone())],
        )
        .await?
        .ok_or_else(|| {
            ReadModelError::Corrupt(format!("no checkpoint row for {}", target.checkpoint))
        })? as u64;
    let fresh: Vec<&RecordedEvent> = events.iter().filter(|e| e.position > checkpoint).collect();
    let Some(last) = fresh.last().map(|e| e.position) else {
        return Ok(checkpoint);
    };
    let s = target.suffix;
    match target.projection {
        Projection::Books => apply_books(tx, s, &fresh).await?,
        Projection::Reviews => apply_reviews(tx, s, &fresh).await?,
        Projection::Users => apply_users(tx, s, &fresh).await?,
        Projection::Interactions => crate::interactions::apply(tx, s, &fresh).await?,
    }
    tx.exec(
        "writing checkpoint",
        "UPDATE rm_checkpoints SET position = $2, updated_at = $3, last_error = NULL, \
         last_error_at = NULL WHERE projection = $1",
        &[
            Arg::Text(target.checkpoint.clone()),
            Arg::I64(last as i64),
            Arg::I64(quire_store::now_micros()),
        ],
    )
    .await?;
    Ok(last)
}

const REVIEW_TYPES: [&str; 3] = ["ReviewPosted", "ReviewEdited", "ReviewDeleted"];

fn decode_error(event: &RecordedEvent, reason: impl Into<String>) -> ReadModelError {
    ReadModelError::Decode {
        position: event.position,
        stream_id: event.stream_id.clone(),
        event_type: event.event_type.clone(),
        reason: reason.into(),
    }
}

/// The book a `book-…` stream belongs to, or `None` for other streams.
pub(crate) fn book_of(event: &RecordedEvent) -> Result<Option<String>, ReadModelError> {
    let Some(id) = event.stream_id.strip_prefix("book-") else {
        return Ok(None);
    };
    let id: BookId = id
        .parse()
        .map_err(|e: quire_domain::ids::IdParseError| decode_error(event, e.to_string()))?;
    Ok(Some(id.to_string()))
}

/// The user a `user-…` stream belongs to, or `None` for other streams.
pub(crate) fn user_of(event: &RecordedEvent) -> Result<Option<String>, ReadModelError> {
    let Some(id) = event.stream_id.strip_prefix("user-") else {
        return Ok(None);
    };
    let id: UserId = id
        .parse()
        .map_err(|e: quire_domain::ids::IdParseError| decode_error(event, e.to_string()))?;
    Ok(Some(id.to_string()))
}

/// Decodes a book event, upcasting through the domain; a `BookAdded` v1 payload without a
/// `book_id` gets it from the stream id first, as the seed design kept it only there.
pub(crate) fn decode_book(
    event: &RecordedEvent,
    book_id: &str,
) -> Result<BookEvent, ReadModelError> {
    let mut payload = Cow::Borrowed(&event.payload);
    if event.event_type == "BookAdded"
        && event.schema_version == 1
        && event.payload.get("book_id").is_none_or(Value::is_null)
        && let Value::Object(map) = payload.to_mut()
    {
        map.insert("book_id".into(), Value::String(book_id.to_string()));
    }
    BookEvent::from_stored(&event.event_type, event.schema_version, &payload)
        .map_err(|e| decode_error(event, e.to_string()))
}

pub(crate) fn decode_user(event: &RecordedEvent) -> Result<UserEvent, ReadModelError> {
    UserEvent::from_stored(&event.event_type, event.schema_version, &event.payload)
        .map_err(|e| decode_error(event, e.to_string()))
}

pub(crate) fn json_text(value: &Value) -> String {
    value.to_string()
}

/// Replaces the rows of an index table (`rm_book_authors`/`rm_book_genres`) for one book.
async fn replace_keys(
    tx: &mut Tx,
    table: &str,
    column: &str,
    book_id: &str,
    keys: Vec<String>,
) -> Result<(), ReadModelError> {
    let b = tx.backend();
    tx.exec(
        "clearing book index rows",
        &format!("DELETE FROM {table} WHERE book_id = $1"),
        &[Arg::Text(book_id.to_string())],
    )
    .await?;
    if keys.is_empty() {
        return Ok(());
    }
    tx.exec(
        "writing book index rows",
        &format!(
            "INSERT INTO {table} ({column}, book_id) SELECT DISTINCT j.value, $1 FROM {} \
             WHERE true ON CONFLICT DO NOTHING",
            b.texts(2)
        ),
        &[
            Arg::Text(book_id.to_string()),
            Arg::Text(json_text(&json!(keys))),
        ],
    )
    .await?;
    Ok(())
}

/// The key an author is found by: trimmed and lowercased (the API lowercases the query the same way).
pub(crate) fn author_key(author: &str) -> String {
    author.trim().to_lowercase()
}

async fn apply_books(
    tx: &mut Tx,
    s: &str,
    events: &[&RecordedEvent],
) -> Result<(), ReadModelError> {
    // Reviews only move their book's version and update time: coalesced per book, applied last.
    let mut bumps: HashMap<String, (i64, i64)> = HashMap::new();
    for &event in events {
        let Some(book_id) = book_of(event)? else {
            continue;
        };
        let version = event.version as i64;
        let at = event.recorded_at;
        if REVIEW_TYPES.contains(&event.event_type.as_str()) {
            let bump = bumps.entry(book_id).or_insert((version, at));
            *bump = (bump.0.max(version), bump.1.max(at));
            continue;
        }
        match decode_book(event, &book_id)? {
            BookEvent::BookAdded {
                book_id: _,
                title,
                authors,
                genres,
                year_published,
                isbn,
                description,
            } => {
                let authors: Vec<String> = authors.into_iter().map(|a| a.into_inner()).collect();
                let genres: Vec<String> = genres.into_iter().map(|g| g.into_inner()).collect();
                let changed = tx
                    .exec(
                        "projecting BookAdded",
                        &format!(
                            "INSERT INTO rm_books{s} (id, title, title_sort, authors, genres, \
                             year_published, isbn, description, summary, summary_source, removed, \
                             version, added_at, updated_at, content_version) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, FALSE, $9, $10, $10, $9) \
                             ON CONFLICT (id) DO UPDATE SET title = excluded.title, \
                             title_sort = excluded.title_sort, authors = excluded.authors, \
                             genres = excluded.genres, year_published = excluded.year_published, \
                             isbn = excluded.isbn, description = excluded.description, \
                             removed = FALSE, version = excluded.version, \
                             content_version = excluded.content_version, \
                             added_at = excluded.added_at, updated_at = excluded.updated_at \
                             WHERE rm_books{s}.version < excluded.version"
                        ),
                        &[
                            Arg::Text(book_id.clone()),
                            Arg::Text(title.as_str().to_string()),
                            Arg::Text(title.as_str().to_lowercase()),
                            Arg::Text(json_text(&json!(authors))),
                            Arg::Text(json_text(&json!(genres))),
                            Arg::OptI64(year_published.map(|y| i64::from(y.value()))),
                            Arg::OptText(isbn.map(|i| i.as_str().to_string())),
                            Arg::OptText(description.map(|d| d.into_inner())),
                            Arg::I64(version),
                            Arg::I64(at),
                        ],
                    )
                    .await?;
                if changed > 0 {
                    let keys = authors.iter().map(|a| author_key(a)).collect();
                    replace_keys(
                        tx,
                        &format!("rm_book_authors{s}"),
                        "author_key",
                        &book_id,
                        keys,
                    )
                    .await?;
                    replace_keys(tx, &format!("rm_book_genres{s}"), "genre", &book_id, genres)
                        .await?;
                }
            }
            BookEvent::BookUpdated(changes) => {
                let authors: Option<Vec<String>> = changes
                    .authors
                    .map(|a| a.into_iter().map(|a| a.into_inner()).collect());
                let genres: Option<Vec<String>> = changes
                    .genres
                    .map(|g| g.into_iter().map(|g| g.into_inner()).collect());
                let changed = tx
                    .exec(
                        "projecting BookUpdated",
                        &format!(
                            "UPDATE rm_books{s} SET title = COALESCE($2, title), \
                             title_sort = COALESCE($3, title_sort), \
                             authors = COALESCE($4, authors), genres = COALESCE($5, genres), \
                             year_published = CASE WHEN $6 THEN $7 ELSE year_published END, \
                             isbn = CASE WHEN $8 THEN $9 ELSE isbn END, \
                             description = CASE WHEN $10 THEN $11 ELSE description END, \
                             version = $12, updated_at = $13, content_version = $12 \
                             WHERE id = $1 AND version < $12"
                        ),
                        &[
                            Arg::Text(book_id.clone()),
                            Arg::OptText(changes.title.as_ref().map(|t| t.as_str().to_string())),
                            Arg::OptText(changes.title.as_ref().map(|t| t.as_str().to_lowercase())),
                            Arg::OptText(authors.as_ref().map(|a| json_text(&json!(a)))),
                            Arg::OptText(genres.as_ref().map(|g| json_text(&json!(g)))),
                            Arg::Bool(changes.year_published.is_some()),
                            Arg::OptI64(
                                changes
                                    .year_published
                                    .flatten()
                                    .map(|y| i64::from(y.value())),
                            ),
                            Arg::Bool(changes.isbn.is_some()),
                            Arg::OptText(changes.isbn.flatten().map(|i| i.as_str().to_string())),
                            Arg::Bool(changes.description.is_some()),
                            Arg::OptText(changes.description.flatten().map(|d| d.into_inner())),
                            Arg::I64(version),
                            Arg::I64(at),
                        ],
                    )
                    .await?;
                if changed > 0 {
                    if let Some(authors) = authors {
                        let keys = authors.iter().map(|a| author_key(a)).collect();
                        replace_keys(
                            tx,
                            &format!("rm_book_authors{s}"),
                            "author_key",
                            &book_id,
                            keys,
                        )
                        .await?;
                    }
                    if let Some(genres) = genres {
                        replace_keys(tx, &format!("rm_book_genres{s}"), "genre", &book_id, genres)
                            .await?;
                    }
                }
            }
            BookEvent::BookRemoved => {
                tx.exec(
                    "projecting BookRemoved",
                    &format!(
                        "UPDATE rm_books{s} SET removed = TRUE, version = $2, updated_at = $3 \
                         WHERE id = $1 AND version < $2"
                    ),
                    &[Arg::Text(book_id), Arg::I64(version), Arg::I64(at)],
                )
                .await?;
            }
            BookEvent::BookSummarySet {
                summary,
                source,
                provenance,
            } => {
                tx.exec(
                    "projecting BookSummarySet",
                    &format!(
                        "UPDATE rm_books{s} SET summary = $2, summary_source = $3, version = $4, \
                         updated_at = $5, summary_provenance = $6, summary_covers = $7 \
                         WHERE id = $1 AND version < $4"
                    ),
                    &[
                        Arg::Text(book_id),
                        Arg::Text(summary.into_inner()),
                        Arg::Text(source),
                        Arg::I64(version),
                        Arg::I64(at),
                        Arg::OptText(provenance.as_ref().map(|p| json_text(&json!(p)))),
                        Arg::OptI64(provenance.map(|p| p.covers_version as i64)),
                    ],
                )
                .await?;
            }
            BookEvent::ReviewSummarySet {
                summary,
                provenance,
            } => {
                tx.exec(
                    "projecting ReviewSummarySet",
                    &format!(
                        "UPDATE rm_books{s} SET review_summary = $2, review_summary_provenance = $3, \
                         review_summary_covers = $4, version = $5, updated_at = $6, \
                         review_summary_at = $6 \
                         WHERE id = $1 AND version < $5"
                    ),
                    &[
                        Arg::Text(book_id),
                        Arg::Text(summary.into_inner()),
                        Arg::Text(json_text(&json!(provenance))),
                        Arg::I64(provenance.covers_version as i64),
                        Arg::I64(version),
                        Arg::I64(at),
                    ],
                )
                .await?;
            }
            BookEvent::ReviewPosted { .. }
            | BookEvent::ReviewEdited { .. }
            | BookEvent::ReviewDeleted { .. } => {
                unreachable!("review events are handled by type name above")
            }
        }
    }
    if !bumps.is_empty() {
        let rows: Vec<Value> = bumps
            .into_iter()
            .map(|(id, (version, at))| json!([id, version, at]))
            .collect();
        let b = tx.backend();
        tx.exec(
            "moving book versions for reviews",
            &format!(
                "UPDATE rm_books{s} SET version = v.ver, updated_at = v.at, \
                 reviews_version = v.ver, reviews_changed_at = v.at FROM (SELECT \
                 j.value->>0 AS id, CAST(j.value->>1 AS BIGINT) AS ver, \
                 CAST(j.value->>2 AS BIGINT) AS at FROM {}) AS v \
                 WHERE rm_books{s}.id = v.id AND rm_books{s}.version < v.ver",
                b.rows(1)
            ),
            &[Arg::Text(json_text(&Value::Array(rows)))],
        )
        .await?;
    }
    Ok(())
}

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

async fn apply_reviews(
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
                flush_posts(tx, s, &mut posts, &mut stats).await?;
                let review_id = review_id.to_string();
                if let Some((book, old)) = review_before(tx, s, &review_id, version).await? {
                    tx.exec(
                        "projecting ReviewDeleted",
                        &format!(
                            "UPDATE rm_reviews{s} SET deleted = TRUE, updated_at = $2, \
                             version = $3 WHERE id = $1"
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

async fn apply_users(
    tx: &mut Tx,
    s: &str,
    events: &[&RecordedEvent],
) -> Result<(), ReadModelError> {
    for &event in events {
        let Some(user_id) = user_of(event)? else {
            continue;
        };
        let version = event.version as i64;
        let at = event.recorded_at;
        match decode_user(event)? {
            UserEvent::UserRegistered {
                user_id: _,
                name,
                username,
                email,
                role,
                password_hash,
            } => {
                let username = username.map(|u| u.into_inner());
                if let Some(taken) = &username {
                    // The username index is unique; a login claimed by another account (possible
                    // only across schema versions) must not wedge the projection.
                    let holders = tx
                        .fetch_texts(
                            "checking username",
                            &format!("SELECT id FROM rm_users{s} WHERE username = $1 AND id <> $2"),
                            &[Arg::Text(taken.clone()), Arg::Text(user_id.clone())],
                        )
                        .await?;
                    if let Some(holder) = holders.first() {
                        tracing::warn!(user = %user_id, %holder, "username already taken; projecting the user without one");
                    }
                }
                tx.exec(
                    "projecting UserRegistered",
                    &format!(
                        "INSERT INTO rm_users{s} (id, name, username, email, role, password_hash, \
                         favourite_genres, active, created_at, updated_at, version) \
                         VALUES ($1, $2, CASE WHEN EXISTS (SELECT 1 FROM rm_users{s} \
                         WHERE username = $3 AND id <> $1) THEN NULL ELSE $3 END, $4, $5, $6, \
                         '[]', TRUE, $7, $7, $8) \
                         ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                         username = excluded.username, email = excluded.email, \
                         role = excluded.role, password_hash = excluded.password_hash, \
                         favourite_genres = '[]', active = TRUE, created_at = excluded.created_at, \
                         updated_at = excluded.updated_at, version = excluded.version \
                         WHERE rm_users{s}.version < excluded.version"
                    ),
                    &[
                        Arg::Text(user_id),
                        Arg::Text(name.into_inner()),
                        Arg::OptText(username),
                        Arg::OptText(email.map(|e| e.into_inner())),
                        Arg::Text(role.as_str().to_string()),
                        Arg::OptText(password_hash.map(|h| h.into_inner())),
                        Arg::I64(at),
                        Arg::I64(version),
                    ],
                )
                .await?;
            }
            UserEvent::PreferencesChanged { favourite_genres } => {
                let genres: Vec<String> = favourite_genres
                    .into_iter()
                    .map(|g| g.into_inner())
                    .collect();
                tx.exec(
                    "projecting PreferencesChanged",
                    &format!(
                        "UPDATE rm_users{s} SET favourite_genres = $2, updated_at = $3, \
                         version = $4 WHERE id = $1 AND version < $4"
                    ),
                    &[
                        Arg::Text(user_id),
                        Arg::Text(json_text(&json!(genres))),
                        Arg::I64(at),
                        Arg::I64(version),
                    ],
                )
                .await?;
            }
            UserEvent::PasswordChanged { password_hash } => {
                tx.exec(
                    "projecting PasswordChanged",
                    &format!(
                        "UPDATE rm_users{s} SET password_hash = $2, updated_at = $3, \
                         version = $4 WHERE id = $1 AND version < $4"
                    ),
                    &[
                        Arg::Text(user_id),
                        Arg::Text(password_hash.into_inner()),
                        Arg::I64(at),
                        Arg::I64(version),
                    ],
                )
                .await?;
            }
            UserEvent::UserDeactivated => {
                tx.exec(
                    "projecting UserDeactivated",
                    &format!(
                        "UPDATE rm_users{s} SET active = FALSE, updated_at = $2, version = $3 \
                         WHERE id = $1 AND version < $3"
                    ),
                    &[Arg::Text(user_id), Arg::I64(at), Arg::I64(version)],
                )
                .await?;
            }
            // The interactions projection's.
            UserEvent::BookLiked { .. }
            | UserEvent::BookUnliked { .. }
            | UserEvent::BookViewed { .. }
            | UserEvent::BookRated { .. } => {}
        }
    }
    Ok(())
}

//! The `books` projection's handlers: one function per book event kind, writing `rm_books` and its
//! author and genre indexes. Review events only move their book's version and update time, which
//! are coalesced per book and written with one statement at the end of the batch.

use std::collections::HashMap;

use quire_domain::book::{BookChanges, BookEvent, BookText, SummaryProvenance};
use quire_domain::values::{AuthorName, Description, Genre, Isbn, SummaryText, Title, Year};
use quire_store::RecordedEvent;
use serde_json::{Value, json};

use crate::ReadModelError;
use crate::db::{Arg, Tx, json_text};
use crate::decode::{REVIEW_TYPES, book_of, decode_book};

/// The key an author is found by: trimmed and lowercased (the API lowercases the query the same way).
pub(crate) fn author_key(author: &str) -> String {
    author.trim().to_lowercase()
}

/// The row an event applies to: the table suffix (a rebuild's shadow tables, or none), the book,
/// and the event's stream version and time.
struct Stamp<'a> {
    s: &'a str,
    book_id: String,
    version: i64,
    at: i64,
}

/// The catalogue fields of a `BookAdded`.
struct NewBook {
    title: Title,
    authors: Vec<AuthorName>,
    genres: Vec<Genre>,
    year_published: Option<Year>,
    isbn: Option<Isbn>,
    description: Option<Description>,
}

pub(super) async fn apply(
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
        let decoded = decode_book(event, &book_id)?;
        let row = Stamp {
            s,
            book_id,
            version,
            at,
        };
        match decoded {
            BookEvent::BookAdded {
                book_id: _,
                title,
                authors,
                genres,
                year_published,
                isbn,
                description,
            } => {
                let book = NewBook {
                    title,
                    authors,
                    genres,
                    year_published,
                    isbn,
                    description,
                };
                book_added(tx, &row, book).await?;
            }
            BookEvent::BookUpdated(changes) => book_updated(tx, &row, changes).await?,
            BookEvent::BookRemoved => book_removed(tx, &row).await?,
            BookEvent::BookTextSet { text } => book_text(tx, &row, Some(text)).await?,
            BookEvent::BookTextRemoved => book_text(tx, &row, None).await?,
            BookEvent::BookSummarySet {
                summary,
                source,
                provenance,
            } => book_summary_set(tx, &row, summary, source, provenance).await?,
            BookEvent::ReviewSummarySet {
                summary,
                provenance,
            } => review_summary_set(tx, &row, summary, provenance).await?,
            BookEvent::ReviewPosted { .. }
            | BookEvent::ReviewEdited { .. }
            | BookEvent::ReviewDeleted { .. } => {
                unreachable!("review events are handled by type name above")
            }
        }
    }
    reviews_moved_versions(tx, s, bumps).await
}

async fn book_added(tx: &mut Tx, row: &Stamp<'_>, book: NewBook) -> Result<(), ReadModelError> {
    let Stamp {
        s,
        book_id,
        version,
        at,
    } = row;
    let authors: Vec<String> = book.authors.into_iter().map(|a| a.into_inner()).collect();
    let genres: Vec<String> = book.genres.into_iter().map(|g| g.into_inner()).collect();
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
                Arg::Text(book.title.as_str().to_string()),
                Arg::Text(book.title.as_str().to_lowercase()),
                Arg::Text(json_text(&json!(authors))),
                Arg::Text(json_text(&json!(genres))),
                Arg::OptI64(book.year_published.map(|y| i64::from(y.value()))),
                Arg::OptText(book.isbn.map(|i| i.as_str().to_string())),
                Arg::OptText(book.description.map(|d| d.into_inner())),
                Arg::I64(*version),
                Arg::I64(*at),
            ],
        )
        .await?;
    if changed > 0 {
        replace_authors(tx, row, &authors).await?;
        replace_genres(tx, row, genres).await?;
    }
    Ok(())
}

async fn book_updated(
    tx: &mut Tx,
    row: &Stamp<'_>,
    changes: BookChanges,
) -> Result<(), ReadModelError> {
    let Stamp {
        s,
        book_id,
        version,
        at,
    } = row;
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
                Arg::I64(*version),
                Arg::I64(*at),
            ],
        )
        .await?;
    if changed > 0 {
        if let Some(authors) = authors {
            replace_authors(tx, row, &authors).await?;
        }
        if let Some(genres) = genres {
            replace_genres(tx, row, genres).await?;
        }
    }
    Ok(())
}

async fn book_removed(tx: &mut Tx, row: &Stamp<'_>) -> Result<(), ReadModelError> {
    let s = row.s;
    tx.exec(
        "projecting BookRemoved",
        &format!(
            "UPDATE rm_books{s} SET removed = TRUE, version = $2, updated_at = $3 \
             WHERE id = $1 AND version < $2"
        ),
        &[
            Arg::Text(row.book_id.clone()),
            Arg::I64(row.version),
            Arg::I64(row.at),
        ],
    )
    .await?;
    Ok(())
}

/// A text attached (`Some`) or detached: a content change, so the book summary is due again.
async fn book_text(
    tx: &mut Tx,
    row: &Stamp<'_>,
    text: Option<BookText>,
) -> Result<(), ReadModelError> {
    let s = row.s;
    tx.exec(
        "projecting a book's text",
        &format!(
            "UPDATE rm_books{s} SET text_sha256 = $2, text_bytes = $3, text_source = $4, \
             version = $5, updated_at = $6, content_version = $5 \
             WHERE id = $1 AND version < $5"
        ),
        &[
            Arg::Text(row.book_id.clone()),
            Arg::OptText(text.as_ref().map(|t| t.sha256.clone())),
            Arg::OptI64(text.as_ref().map(|t| t.bytes as i64)),
            Arg::OptText(text.map(|t| t.source)),
            Arg::I64(row.version),
            Arg::I64(row.at),
        ],
    )
    .await?;
    Ok(())
}

async fn book_summary_set(
    tx: &mut Tx,
    row: &Stamp<'_>,
    summary: SummaryText,
    source: String,
    provenance: Option<SummaryProvenance>,
) -> Result<(), ReadModelError> {
    let s = row.s;
    tx.exec(
        "projecting BookSummarySet",
        &format!(
            "UPDATE rm_books{s} SET summary = $2, summary_source = $3, version = $4, \
             updated_at = $5, summary_provenance = $6, summary_covers = $7 \
             WHERE id = $1 AND version < $4"
        ),
        &[
            Arg::Text(row.book_id.clone()),
            Arg::Text(summary.into_inner()),
            Arg::Text(source),
            Arg::I64(row.version),
            Arg::I64(row.at),
            Arg::OptText(provenance.as_ref().map(|p| json_text(&json!(p)))),
            Arg::OptI64(provenance.map(|p| p.covers_version as i64)),
        ],
    )
    .await?;
    Ok(())
}

async fn review_summary_set(
    tx: &mut Tx,
    row: &Stamp<'_>,
    summary: SummaryText,
    provenance: SummaryProvenance,
) -> Result<(), ReadModelError> {
    let s = row.s;
    tx.exec(
        "projecting ReviewSummarySet",
        &format!(
            "UPDATE rm_books{s} SET review_summary = $2, review_summary_provenance = $3, \
             review_summary_covers = $4, version = $5, updated_at = $6, \
             review_summary_at = $6 \
             WHERE id = $1 AND version < $5"
        ),
        &[
            Arg::Text(row.book_id.clone()),
            Arg::Text(summary.into_inner()),
            Arg::Text(json_text(&json!(provenance))),
            Arg::I64(provenance.covers_version as i64),
            Arg::I64(row.version),
            Arg::I64(row.at),
        ],
    )
    .await?;
    Ok(())
}

/// Moves each reviewed book's version and update time to its newest review event of the batch
/// (`bumps`: book → (version, time)), in one statement.
async fn reviews_moved_versions(
    tx: &mut Tx,
    s: &str,
    bumps: HashMap<String, (i64, i64)>,
) -> Result<(), ReadModelError> {
    if bumps.is_empty() {
        return Ok(());
    }
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
    Ok(())
}

/// Replaces the book's rows in the author index with the keys of `authors`.
async fn replace_authors(
    tx: &mut Tx,
    row: &Stamp<'_>,
    authors: &[String],
) -> Result<(), ReadModelError> {
    let keys = authors.iter().map(|a| author_key(a)).collect();
    let table = format!("rm_book_authors{}", row.s);
    replace_keys(tx, &table, "author_key", &row.book_id, keys).await
}

/// Replaces the book's rows in the genre index.
async fn replace_genres(
    tx: &mut Tx,
    row: &Stamp<'_>,
    genres: Vec<String>,
) -> Result<(), ReadModelError> {
    let table = format!("rm_book_genres{}", row.s);
    replace_keys(tx, &table, "genre", &row.book_id, genres).await
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

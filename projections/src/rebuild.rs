//! Rebuilding a projection aside, then swapping it in.
//!
//! A rebuild creates shadow tables (`rm_books__rebuild`, …) with the live tables' schema, replays
//! the whole log into them under a shadow checkpoint (up to a short batch from the head), and then,
//! in one transaction, takes the live checkpoint's lock (so the live runner, in this process or
//! another, waits), applies what was committed meanwhile, drops the live tables, renames the
//! shadows into their place and sets the live checkpoint. Readers see the old tables until that commit and the complete new ones after it,
//! never a half-built model. The live runner then resumes from the swapped checkpoint, which it
//! re-reads inside its next transaction.

use std::time::{Duration, Instant};

use quire_store::{DynEventStore, RecordedEvent};

use crate::apply::{Target, apply_batch};
use crate::db::{Arg, Backend, Tx};
use crate::{ProjectionName, ReadModelError, ReadModels};

/// The suffix of shadow tables and of the shadow checkpoint's name.
const SUFFIX: &str = "__rebuild";

/// Events per replay transaction. Reviews of the real goodbooks log land on pages all over the
/// indexes, so bigger transactions write each dirty page fewer times: on its 1M events the reviews
/// rebuild went from 17.7k (2,000 per batch) to 21.6k events/s.
const BATCH: usize = 10_000;

/// How far a rebuild has come.
#[derive(Debug, Clone, Copy)]
pub struct RebuildProgress {
    /// The last position replayed into the shadow tables.
    pub position: u64,
    /// The store's head when last looked at.
    pub head: u64,
}

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    pub name: ProjectionName,
    /// Events read from the log (all of them, whether or not they concern the projection).
    pub events: u64,
    pub elapsed: Duration,
    pub events_per_sec: f64,
}

/// Rebuilds a projection from the whole log and swaps it in; safe while runners are live (in
/// this process or others). Run one rebuild of a projection at a time: a second one would replace
/// the first one's shadow tables.
#[tracing::instrument(skip(store, read, progress), fields(backend = read.backend()))]
pub async fn rebuild(
    store: &DynEventStore,
    read: &ReadModels,
    projection: ProjectionName,
    progress: &(dyn Fn(RebuildProgress) + Send + Sync),
) -> Result<RebuildReport, ReadModelError> {
    // A damaged database (one its check at open did not catch) is logged with what to do.
    rebuild_aside(store, read, projection, progress)
        .await
        .inspect_err(|error| read.db().note(error))
}

async fn rebuild_aside(
    store: &DynEventStore,
    read: &ReadModels,
    projection: ProjectionName,
    progress: &(dyn Fn(RebuildProgress) + Send + Sync),
) -> Result<RebuildReport, ReadModelError> {
    let name = projection.as_str();
    let started = Instant::now();
    let shadow = Target {
        projection,
        suffix: SUFFIX,
        checkpoint: format!("{name}{SUFFIX}"),
    };

    let mut tx = read.db().begin().await?;
    create_shadow(&mut tx, projection).await?;
    tx.exec(
        "creating rebuild checkpoint",
        "INSERT INTO rm_checkpoints (projection, position, updated_at) VALUES ($1, 0, $2) \
         ON CONFLICT (projection) DO UPDATE SET position = 0, updated_at = excluded.updated_at, \
         last_error = NULL, last_error_at = NULL",
        &[
            Arg::Text(shadow.checkpoint.clone()),
            Arg::I64(quire_store::now_micros()),
        ],
    )
    .await?;
    tx.commit().await?;

    // Replay, one transaction per batch, beside the live runner; the next batch is read while
    // the current one is applied.
    let mut position = 0;
    let mut events_read = 0u64;
    let mut head = store.head().await.map_err(ReadModelError::Store)?;
    let mut next = read_after(store, 0).await?;
    while let Some(last) = next.last().map(|e| e.position) {
        let events = std::mem::take(&mut next);
        events_read += events.len() as u64;
        let apply = async {
            let mut tx = read.db().begin().await?;
            let position = apply_batch(&mut tx, &shadow, &events).await?;
            tx.commit().await?;
            Ok::<_, ReadModelError>(position)
        };
        let (applied, fetched) = tokio::join!(apply, read_after(store, last));
        position = applied?;
        next = fetched?;
        if position >= head {
            head = store.head().await.map_err(ReadModelError::Store)?;
        }
        progress(RebuildProgress { position, head });
        // Near the head (a short batch): the rest is applied in the swap's one transaction.
        // Replaying on in a transaction per small batch could chase a busy writer for ever,
        // each commit taking longer than the writer's next append.
        if next.len() < BATCH {
            break;
        }
    }

    // Swap: under the live checkpoint's lock, catch up and replace the live tables.
    let mut tx = read.db().begin().await?;
    let live = tx
        .fetch_i64(
            "locking checkpoint",
            tx.backend().lock_checkpoint(),
            &[Arg::Text(name.to_string())],
        )
        .await?
        .unwrap_or(0) as u64;
    loop {
        let events = read_after(store, position).await?;
        if events.is_empty() {
            if position >= live {
                break;
            }
            // The live runner applied events this store does not show yet (a lagging replica):
            // swapping now would lose them.
            return Err(ReadModelError::Config(format!(
                "the event log ends at {position} but the live {name} projection is at {live}"
            )));
        }
        events_read += events.len() as u64;
        position = apply_batch(&mut tx, &shadow, &events).await?;
    }
    swap_tables(&mut tx, projection).await?;
    tx.exec(
        "setting swapped checkpoint",
        "UPDATE rm_checkpoints SET position = $2, updated_at = $3, last_error = NULL, \
         last_error_at = NULL WHERE projection = $1",
        &[
            Arg::Text(name.to_string()),
            Arg::I64(position as i64),
            Arg::I64(quire_store::now_micros()),
        ],
    )
    .await?;
    tx.exec(
        "removing rebuild checkpoint",
        "DELETE FROM rm_checkpoints WHERE projection = $1",
        &[Arg::Text(shadow.checkpoint.clone())],
    )
    .await?;
    tx.commit().await?;
    read.tables_changed(projection);
    read.advance(projection, position);
    progress(RebuildProgress {
        position,
        head: head.max(position),
    });

    let elapsed = started.elapsed();
    let report = RebuildReport {
        name: projection,
        events: events_read,
        elapsed,
        events_per_sec: events_read as f64 / elapsed.as_secs_f64().max(1e-9),
    };
    tracing::info!(projection = name, events = report.events, elapsed = ?report.elapsed, events_per_sec = report.events_per_sec, "projection rebuilt");
    Ok(report)
}

async fn read_after(
    store: &DynEventStore,
    position: u64,
) -> Result<Vec<RecordedEvent>, ReadModelError> {
    store
        .read_all(position, BATCH)
        .await
        .map_err(ReadModelError::Store)
}

/// Creates empty shadow tables with the live tables' current schema and indexes (copied from the
/// database, so later migrations carry over), dropping leftovers of an interrupted rebuild.
async fn create_shadow(tx: &mut Tx, projection: ProjectionName) -> Result<(), ReadModelError> {
    let tag = quire_store::now_micros();
    for table in projection.tables() {
        let shadow = format!("{table}{SUFFIX}");
        tx.script(
            "dropping leftover shadow table",
            &format!("DROP TABLE IF EXISTS {shadow}"),
        )
        .await?;
        match tx.backend() {
            Backend::Postgres => {
                tx.script(
                    "creating shadow table",
                    &format!("CREATE TABLE {shadow} (LIKE {table} INCLUDING ALL)"),
                )
                .await?;
            }
            Backend::Sqlite => {
                let statements = tx
                    .fetch_texts(
                        "reading table schema",
                        "SELECT sql FROM sqlite_master WHERE tbl_name = $1 AND sql IS NOT NULL \
                         ORDER BY type <> 'table'",
                        &[Arg::Text((*table).to_string())],
                    )
                    .await?;
                for sql in statements {
                    let ddl = shadow_ddl(&sql, &shadow, tag).ok_or_else(|| {
                        ReadModelError::Corrupt(format!("unexpected schema statement: {sql}"))
                    })?;
                    tx.script("creating shadow table", &ddl).await?;
                }
            }
        }
    }
    Ok(())
}

/// Rewrites a SQLite `CREATE TABLE`/`CREATE [UNIQUE] INDEX` statement of a live table for its
/// shadow. SQLite cannot rename indexes, so shadow indexes get names unique to this rebuild
/// (`<base>__r<tag>`), which they keep after the swap.
fn shadow_ddl(sql: &str, shadow: &str, tag: i64) -> Option<String> {
    let paren = sql.find('(')?;
    let head = &sql[..paren];
    let rest = &sql[paren..];
    let upper = head.to_ascii_uppercase();
    if upper.starts_with("CREATE TABLE") {
        return Some(format!("CREATE TABLE {shadow} {rest}"));
    }
    let unique = upper.starts_with("CREATE UNIQUE INDEX");
    if !unique && !upper.starts_with("CREATE INDEX") {
        return None;
    }
    let after_index = upper.find("INDEX")? + "INDEX".len();
    let on = upper.find(" ON ")?;
    let name = head[after_index..on]
        .trim()
        .trim_matches(['"', '`', '[', ']']);
    let base = name.split("__r").next().unwrap_or(name);
    let kind = if unique { "UNIQUE INDEX" } else { "INDEX" };
    Some(format!("CREATE {kind} {base}__r{tag} ON {shadow} {rest}"))
}

/// Replaces the live tables by their shadows (inside the caller's transaction).
async fn swap_tables(tx: &mut Tx, projection: ProjectionName) -> Result<(), ReadModelError> {
    for table in projection.tables() {
        tx.script("dropping live table", &format!("DROP TABLE {table}"))
            .await?;
        tx.script(
            "renaming shadow table",
            &format!("ALTER TABLE {table}{SUFFIX} RENAME TO {table}"),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::shadow_ddl;

    #[test]
    fn shadow_ddl_renames_tables_and_indexes() {
        assert_eq!(
            shadow_ddl(
                "CREATE TABLE \"rm_books\" (id TEXT)",
                "rm_books__rebuild",
                7
            )
            .unwrap(),
            "CREATE TABLE rm_books__rebuild (id TEXT)"
        );
        assert_eq!(
            shadow_ddl(
                "CREATE INDEX rm_books_title__r5 ON \"rm_books\" (title_sort, id)",
                "rm_books__rebuild",
                7
            )
            .unwrap(),
            "CREATE INDEX rm_books_title__r7 ON rm_books__rebuild (title_sort, id)"
        );
        assert_eq!(
            shadow_ddl(
                "CREATE UNIQUE INDEX u ON t (a) WHERE a IS NOT NULL",
                "t__rebuild",
                1
            )
            .unwrap(),
            "CREATE UNIQUE INDEX u__r1 ON t__rebuild (a) WHERE a IS NOT NULL"
        );
        assert!(shadow_ddl("CREATE VIEW v AS SELECT (1)", "x", 1).is_none());
    }
}

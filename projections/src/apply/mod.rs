//! The projections' handlers: how events of the global log change the read-model tables, one
//! module per projection (`books`, `reviews`, `users`, `lending`, `club`; the `interactions` handler lives
//! beside that projection's queries in [`crate::interactions`]), and the batch transaction they
//! run in.
//!
//! Every handler is idempotent, so that applying an event twice (at-least-once delivery, a
//! checkpoint reset, a rebuild racing the live runner) leaves the same state:
//! - rows carry the stream version of the last event applied to them, and every update is guarded
//!   by `version < event version` (rows fed by several streams, `interactions` and `lending`,
//!   carry the global position instead);
//! - reviews are inserted with `ON CONFLICT DO NOTHING`, and the per-book rating stats change only by
//!   the rows a statement actually inserted or changed, in the same transaction.
//!
//! A batch is applied with few statements: review posts (the bulk of an import) become one multi-row
//! insert whose `RETURNING` rows feed one multi-row stats upsert, and the version bumps that reviews
//! cause on their book become one multi-row update at the end of the batch.

pub(crate) mod books;
mod club;
mod lending;
mod reviews;
mod social;
mod store;
mod users;

use quire_store::RecordedEvent;

use crate::db::{Arg, Tx};
use crate::{ProjectionName, ReadModelError};

/// Where a batch goes: the live tables, or a rebuild's shadow tables (`suffix`), each with its
/// own checkpoint row.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) projection: ProjectionName,
    pub(crate) suffix: &'static str,
    pub(crate) checkpoint: String,
}

impl Target {
    pub(crate) fn live(projection: ProjectionName) -> Self {
        Self {
            projection,
            suffix: "",
            checkpoint: projection.as_str().to_string(),
        }
    }
}

/// Whether `projection` reads `event`: a superset of what its handler acts on, by stream and type
/// alone (no decoding). A batch none of whose events it reads needs no transaction: the runner
/// moves the projection's checkpoint in memory and stores it later (see `runner`).
pub(crate) fn reads(projection: ProjectionName, event: &RecordedEvent) -> bool {
    let stream = event.stream_id.as_str();
    let kind = event.event_type.as_str();
    match projection {
        ProjectionName::Books => stream.starts_with("book-"),
        ProjectionName::Reviews => crate::decode::REVIEW_TYPES.contains(&kind),
        ProjectionName::Users => stream.starts_with("user-"),
        ProjectionName::Interactions => crate::interactions::TYPES.contains(&kind),
        ProjectionName::Lending => {
            stream.starts_with("lending-") || lending::SLOT_TYPES.contains(&kind)
        }
        ProjectionName::Club => stream.starts_with("club-") || stream.starts_with("thread-"),
        ProjectionName::Social => {
            crate::decode::REVIEW_TYPES.contains(&kind) || social::USER_TYPES.contains(&kind)
        }
        ProjectionName::Store => stream.starts_with("stock-") || stream.starts_with("order-"),
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
        ProjectionName::Books => books::apply(tx, s, &fresh).await?,
        ProjectionName::Reviews => reviews::apply(tx, s, &fresh).await?,
        ProjectionName::Users => users::apply(tx, s, &fresh).await?,
        ProjectionName::Interactions => crate::interactions::apply(tx, s, &fresh).await?,
        ProjectionName::Lending => lending::apply(tx, s, &fresh).await?,
        ProjectionName::Club => club::apply(tx, s, &fresh).await?,
        ProjectionName::Social => social::apply(tx, s, &fresh).await?,
        ProjectionName::Store => store::apply(tx, s, &fresh).await?,
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

//! Import batches: a bulk import (goodbooks, …) is one batch with an id, recorded in its own
//! stream `import-{id}`, so operators can list what was imported and revert it.
//!
//! Every fact an import brings in is an ordinary event of its entity (a `BookAdded`, a
//! `ReviewPosted`, …) carrying the batch id as its correlation id; this stream only records the
//! batch itself: that it started, from what, that it finished, and that it was reverted. A revert
//! is itself a batch (kind `revert`) whose compensating events carry its own id; a revert cannot be
//! reverted, and an import is reverted at most once.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::{Aggregate, DomainError, DomainEvent, ErrorKind, EventDecodeError};
use crate::auth::CommandContext;
use crate::serde_util::{decode_payload, encode_payload};

/// What a batch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchKind {
    /// Brings facts in.
    Import,
    /// Takes an import's facts back out with compensating events.
    Revert,
}

impl fmt::Display for BatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Import => "import",
            Self::Revert => "revert",
        })
    }
}

/// The stream of batch `id`: "import-{id}".
pub fn stream_id(id: Uuid) -> String {
    format!("{}-{}", ImportBatch::CATEGORY, id.hyphenated())
}

/// What a batch has counted once it finished.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCounts {
    /// Streams the batch appended to.
    pub streams: u64,
    /// Events the batch appended (the run that finished it; earlier interrupted runs included).
    pub events: u64,
}

/// Commands on a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImportCommand {
    /// Opens the batch. Sent again by a re-run, it changes nothing.
    Start {
        kind: BatchKind,
        /// What is imported, e.g. "goodbooks-10k (all books, with ratings)".
        source: String,
        /// For a revert, the import it reverts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reverts: Option<Uuid>,
    },
    /// Records that every fact of the batch is stored.
    Complete { counts: BatchCounts },
    /// Records that revert batch `by` has taken this import's facts back out.
    MarkReverted { by: Uuid },
}

/// What happened to a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportEvent {
    ImportStarted {
        kind: BatchKind,
        source: String,
        reverts: Option<Uuid>,
    },
    ImportCompleted {
        counts: BatchCounts,
    },
    ImportReverted {
        by: Uuid,
    },
}

/// Why a batch command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// No batch with this id was started.
    #[error("no import batch with this id")]
    NotFound,
    /// The batch was started with another kind, source or target.
    #[error("the batch was started as {kind} of {from:?}")]
    StartedOtherwise { kind: BatchKind, from: String },
    /// A revert batch's facts are compensations: reverting them is refused.
    #[error("this batch is a revert; a revert cannot be reverted")]
    RevertOfRevert,
    /// The import was reverted already.
    #[error("this import was reverted by batch {by}")]
    AlreadyReverted { by: Uuid },
    /// Only the system (operators' tools) writes batches.
    #[error("only the system may record import batches")]
    Forbidden,
}

impl DomainError for ImportError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::StartedOtherwise { .. } => "batch_started_otherwise",
            Self::RevertOfRevert => "revert_of_revert",
            Self::AlreadyReverted { .. } => "already_reverted",
            Self::Forbidden => "forbidden",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            Self::StartedOtherwise { .. } | Self::AlreadyReverted { .. } => ErrorKind::Conflict,
            Self::RevertOfRevert => ErrorKind::Invalid,
            Self::Forbidden => ErrorKind::Forbidden,
        }
    }
}

/// A batch, folded from its stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportBatch {
    started: Option<(BatchKind, String, Option<Uuid>)>,
    completed: Option<BatchCounts>,
    reverted_by: Option<Uuid>,
}

impl ImportBatch {
    /// The batch's kind, source and (for a revert) target, once started.
    pub fn started(&self) -> Option<(BatchKind, &str, Option<Uuid>)> {
        self.started
            .as_ref()
            .map(|(kind, source, reverts)| (*kind, source.as_str(), *reverts))
    }

    /// The counts recorded when the batch finished; `None` while it has not.
    pub fn completed(&self) -> Option<&BatchCounts> {
        self.completed.as_ref()
    }

    /// The revert batch that took this import back, if any.
    pub fn reverted_by(&self) -> Option<Uuid> {
        self.reverted_by
    }

    /// Whether this import may be reverted now.
    pub fn check_revertible(&self) -> Result<(), ImportError> {
        match &self.started {
            None => Err(ImportError::NotFound),
            Some((BatchKind::Revert, ..)) => Err(ImportError::RevertOfRevert),
            Some(_) => match self.reverted_by {
                Some(by) => Err(ImportError::AlreadyReverted { by }),
                None => Ok(()),
            },
        }
    }
}

impl Aggregate for ImportBatch {
    type Command = ImportCommand;
    type Event = ImportEvent;
    type Error = ImportError;

    const CATEGORY: &'static str = "import";

    fn decide(
        &self,
        command: &ImportCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<ImportEvent>, ImportError> {
        if ctx.principal.role != crate::Role::System {
            return Err(ImportError::Forbidden);
        }
        match command {
            ImportCommand::Start {
                kind,
                source,
                reverts,
            } => match &self.started {
                None => Ok(vec![ImportEvent::ImportStarted {
                    kind: *kind,
                    source: source.clone(),
                    reverts: *reverts,
                }]),
                Some((k, s, r)) if k == kind && s == source && r == reverts => Ok(Vec::new()),
                Some((k, s, _)) => Err(ImportError::StartedOtherwise {
                    kind: *k,
                    from: s.clone(),
                }),
            },
            ImportCommand::Complete { counts } => {
                if self.started.is_none() {
                    return Err(ImportError::NotFound);
                }
                if self.completed.is_some() {
                    return Ok(Vec::new());
                }
                Ok(vec![ImportEvent::ImportCompleted {
                    counts: counts.clone(),
                }])
            }
            ImportCommand::MarkReverted { by } => {
                if self.reverted_by == Some(*by) {
                    return Ok(Vec::new());
                }
                self.check_revertible()?;
                Ok(vec![ImportEvent::ImportReverted { by: *by }])
            }
        }
    }

    fn apply(&mut self, event: &ImportEvent) {
        match event {
            ImportEvent::ImportStarted {
                kind,
                source,
                reverts,
            } => self.started = Some((*kind, source.clone(), *reverts)),
            ImportEvent::ImportCompleted { counts } => self.completed = Some(counts.clone()),
            ImportEvent::ImportReverted { by } => self.reverted_by = Some(*by),
        }
    }
}

const IMPORT_STARTED: &str = "ImportStarted";
const IMPORT_COMPLETED: &str = "ImportCompleted";
const IMPORT_REVERTED: &str = "ImportReverted";

#[derive(Serialize, Deserialize)]
struct ImportStartedV1 {
    kind: BatchKind,
    source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reverts: Option<Uuid>,
}

#[derive(Serialize, Deserialize)]
struct ImportCompletedV1 {
    streams: u64,
    events: u64,
}

#[derive(Serialize, Deserialize)]
struct ImportRevertedV1 {
    by: Uuid,
}

impl DomainEvent for ImportEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ImportStarted { .. } => IMPORT_STARTED,
            Self::ImportCompleted { .. } => IMPORT_COMPLETED,
            Self::ImportReverted { .. } => IMPORT_REVERTED,
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn to_payload(&self) -> serde_json::Value {
        match self {
            Self::ImportStarted {
                kind,
                source,
                reverts,
            } => encode_payload(&ImportStartedV1 {
                kind: *kind,
                source: source.clone(),
                reverts: *reverts,
            }),
            Self::ImportCompleted { counts } => encode_payload(&ImportCompletedV1 {
                streams: counts.streams,
                events: counts.events,
            }),
            Self::ImportReverted { by } => encode_payload(&ImportRevertedV1 { by: *by }),
        }
    }

    fn from_stored(
        event_type: &str,
        schema_version: u32,
        payload: &serde_json::Value,
    ) -> Result<Self, EventDecodeError> {
        match (event_type, schema_version) {
            (IMPORT_STARTED, 1) => {
                let v1: ImportStartedV1 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::ImportStarted {
                    kind: v1.kind,
                    source: v1.source,
                    reverts: v1.reverts,
                })
            }
            (IMPORT_COMPLETED, 1) => {
                let v1: ImportCompletedV1 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::ImportCompleted {
                    counts: BatchCounts {
                        streams: v1.streams,
                        events: v1.events,
                    },
                })
            }
            (IMPORT_REVERTED, 1) => {
                let v1: ImportRevertedV1 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::ImportReverted { by: v1.by })
            }
            (IMPORT_STARTED | IMPORT_COMPLETED | IMPORT_REVERTED, version) => {
                Err(EventDecodeError::unsupported_version(event_type, version))
            }
            _ => Err(EventDecodeError::unknown_type(event_type)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Principal;
    use crate::ids::UserId;

    fn system() -> CommandContext {
        CommandContext::new(Principal::system())
    }

    fn run(batch: &mut ImportBatch, command: ImportCommand) -> Result<usize, ImportError> {
        let events = batch.decide(&command, &system())?;
        for event in &events {
            let stored = ImportEvent::from_stored(
                event.event_type(),
                event.schema_version(),
                &event.to_payload(),
            )
            .expect("round trip");
            assert_eq!(&stored, event);
            batch.apply(event);
        }
        Ok(events.len())
    }

    fn start(kind: BatchKind, reverts: Option<Uuid>) -> ImportCommand {
        ImportCommand::Start {
            kind,
            source: "goodbooks-10k".into(),
            reverts,
        }
    }

    #[test]
    fn a_rerun_start_and_complete_record_nothing_more() {
        let mut batch = ImportBatch::default();
        assert_eq!(run(&mut batch, start(BatchKind::Import, None)), Ok(1));
        assert_eq!(run(&mut batch, start(BatchKind::Import, None)), Ok(0));
        let counts = BatchCounts {
            streams: 3,
            events: 9,
        };
        assert_eq!(
            run(
                &mut batch,
                ImportCommand::Complete {
                    counts: counts.clone()
                }
            ),
            Ok(1)
        );
        assert_eq!(
            run(&mut batch, ImportCommand::Complete { counts }),
            Ok(0),
            "a second completion changes nothing"
        );
        assert_eq!(
            run(
                &mut batch,
                ImportCommand::Start {
                    kind: BatchKind::Import,
                    source: "something else".into(),
                    reverts: None,
                }
            ),
            Err(ImportError::StartedOtherwise {
                kind: BatchKind::Import,
                from: "goodbooks-10k".into()
            })
        );
    }

    #[test]
    fn an_import_is_reverted_once_and_a_revert_never() {
        let by = Uuid::from_u128(7);
        let mut import = ImportBatch::default();
        assert_eq!(
            run(&mut import, ImportCommand::MarkReverted { by }),
            Err(ImportError::NotFound)
        );
        run(&mut import, start(BatchKind::Import, None)).unwrap();
        assert_eq!(import.check_revertible(), Ok(()));
        assert_eq!(run(&mut import, ImportCommand::MarkReverted { by }), Ok(1));
        assert_eq!(
            run(&mut import, ImportCommand::MarkReverted { by }),
            Ok(0),
            "the same revert, re-run"
        );
        assert_eq!(
            run(
                &mut import,
                ImportCommand::MarkReverted {
                    by: Uuid::from_u128(8)
                }
            ),
            Err(ImportError::AlreadyReverted { by })
        );

        let mut revert = ImportBatch::default();
        run(
            &mut revert,
            start(BatchKind::Revert, Some(Uuid::from_u128(1))),
        )
        .unwrap();
        assert_eq!(revert.check_revertible(), Err(ImportError::RevertOfRevert));
        assert_eq!(
            run(&mut revert, ImportCommand::MarkReverted { by }),
            Err(ImportError::RevertOfRevert)
        );
    }

    #[test]
    fn only_the_system_records_batches() {
        let batch = ImportBatch::default();
        let member = CommandContext::member(UserId::from_uuid(Uuid::from_u128(3)));
        assert_eq!(
            batch.decide(&start(BatchKind::Import, None), &member),
            Err(ImportError::Forbidden)
        );
    }
}

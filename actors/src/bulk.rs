//! Bulk writes: many commands for one entity decided by the domain and appended straight to the
//! store, without an actor, for imports and their reverts (ARCHITECTURE.md, "Bulk imports").
//!
//! The events are exactly those the entity's actor would append for the same commands (the same
//! `decide`, the same event ids derived from each command id, the same metadata), so the log reads
//! as if the commands had been sent one by one. What differs is the cost: one append per entity
//! (or per [`MAX_EVENTS_PER_APPEND`] events) instead of one per command, and no command records.
//! Idempotency comes from the log itself: a command whose id is on one of the stream's events is
//! not decided again, so re-running a bulk write appends nothing. A stream that another writer
//! moves meanwhile (a live server) fails the expected-version check; the write then reloads the
//! stream and decides again against what is there, as an actor does.

use std::collections::HashSet;

use quire_domain::{Aggregate, CommandContext, DomainError};
use quire_store::{AppendRequest, EventStore, ExpectedVersion, StoreError};
use uuid::Uuid;

use crate::entity::{fold_stream, to_new_event};
use crate::envelope::{CommandEnvelope, CommandError};

/// The most events one append carries (a little more when a command's events cross it); a longer
/// run of events goes in several appends.
pub const MAX_EVENTS_PER_APPEND: usize = 2_000;
/// How often a stream that keeps changing under the write is reloaded before giving up.
const ATTEMPTS: u32 = 5;

/// What became of one command of a bulk write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Decided into this many events (none when it changed nothing), appended by this write.
    New { events: u32 },
    /// Its events were already in the stream (an earlier run wrote them).
    Replayed,
    /// Refused with a code the caller counts as "already there".
    Present,
    /// Refused for another reason.
    Rejected { code: String, message: String },
}

/// The outcome of one stream's bulk write.
#[derive(Debug, Default, Clone)]
pub struct StreamWrite {
    /// One decision per command, in order.
    pub decisions: Vec<Decision>,
    /// The stream's version after the write.
    pub version: u64,
}

/// Decides `commands` (in order) against stream `stream_id` and appends their events.
///
/// `new_stream` says the caller expects the stream not to exist (a first import): the stream is
/// then not read first, and only if it does exist is it loaded and the commands decided again.
/// Refusals whose code is in `present_codes` count as `already_present`, others as `rejected`;
/// neither stops the other commands.
#[tracing::instrument(level = "debug", skip_all, fields(stream = stream_id, commands = commands.len()))]
pub async fn write_stream<A: Aggregate>(
    store: &dyn EventStore,
    stream_id: &str,
    commands: &[CommandEnvelope<A::Command>],
    new_stream: bool,
    present_codes: &[&str],
) -> Result<StreamWrite, CommandError> {
    let mut load = !new_stream;
    for _ in 0..ATTEMPTS {
        let mut aggregate = A::default();
        let mut done: HashSet<Uuid> = HashSet::new();
        let version = if load {
            fold_stream(store, stream_id, &mut aggregate, 0, |stored| {
                if let Some(id) = stored.metadata.command_id {
                    done.insert(id);
                }
            })
            .await?
        } else {
            0
        };
        let mut decisions = Vec::with_capacity(commands.len());
        // Chunks end between commands, so a command's events are never split between appends
        // (a reload after a chunk finds every command either whole or absent).
        let mut chunks: Vec<Vec<quire_store::NewEvent>> = vec![Vec::new()];
        for envelope in commands {
            if done.contains(&envelope.command_id) {
                decisions.push(Decision::Replayed);
                continue;
            }
            let ctx = CommandContext::new(envelope.principal.clone());
            match aggregate.decide(&envelope.command, &ctx) {
                Ok(decided) => {
                    decisions.push(Decision::New {
                        events: decided.len() as u32,
                    });
                    if chunks
                        .last()
                        .is_some_and(|c| c.len() >= MAX_EVENTS_PER_APPEND)
                    {
                        chunks.push(Vec::new());
                    }
                    let chunk = chunks.last_mut().expect("there is always a chunk");
                    for (index, event) in decided.iter().enumerate() {
                        aggregate.apply(event);
                        chunk.push(to_new_event(envelope, index, event));
                    }
                }
                Err(error) if present_codes.contains(&error.code()) => {
                    decisions.push(Decision::Present);
                }
                Err(error) => decisions.push(Decision::Rejected {
                    code: error.code().to_owned(),
                    message: error.to_string(),
                }),
            }
        }
        match append_all(store, stream_id, version, chunks).await {
            Ok(version) => return Ok(StreamWrite { decisions, version }),
            Err(StoreError::WrongExpectedVersion { .. }) => {
                // Another writer (or an earlier run) got there first: decide again on what is
                // stored. Chunks this attempt appended are found by their command ids.
                tracing::debug!(stream = stream_id, "the stream moved; reloading");
                load = true;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(CommandError::Contention {
        stream_id: stream_id.to_owned(),
        attempts: ATTEMPTS,
    })
}

/// Appends the chunks after `version`, one append each; returns the version reached.
async fn append_all(
    store: &dyn EventStore,
    stream_id: &str,
    mut version: u64,
    chunks: Vec<Vec<quire_store::NewEvent>>,
) -> Result<u64, StoreError> {
    for events in chunks.into_iter().filter(|c| !c.is_empty()) {
        let count = events.len() as u64;
        let expected = if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        };
        store
            .append(AppendRequest {
                stream_id: stream_id.to_owned(),
                expected,
                events,
                command: None,
            })
            .await?;
        version += count;
    }
    Ok(version)
}

/// Loads entity `stream_id`: its state and version (0 and the default state when it does not
/// exist).
pub async fn load<A: Aggregate>(
    store: &dyn EventStore,
    stream_id: &str,
) -> Result<(A, u64), CommandError> {
    load_seeing(store, stream_id, |_| {}).await
}

/// [`load`], showing each stored event (its position, time, metadata) to `seen` as it is applied.
pub async fn load_seeing<A: Aggregate>(
    store: &dyn EventStore,
    stream_id: &str,
    seen: impl FnMut(&quire_store::RecordedEvent),
) -> Result<(A, u64), CommandError> {
    let mut aggregate = A::default();
    let version = fold_stream(store, stream_id, &mut aggregate, 0, seen).await?;
    Ok((aggregate, version))
}

//! The values that cross the event store port.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A position in the global log; 0 means "before the first event".
pub type Position = u64;

/// Microseconds since the Unix epoch, UTC.
pub type Timestamp = i64;

/// What the writer expects the stream's version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check (used by tooling only; entity actors always state a version).
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream must be at exactly this version (0 is the same as `NoStream`).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `actual` satisfies the expectation.
    pub fn matches(self, actual: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == 0,
            Self::Exact(v) => v == actual,
        }
    }
}

/// Who and what caused an event; stored beside every event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The command that produced the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<Uuid>,
    /// The message (command or event id) that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The id shared by everything one original request caused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The user on whose behalf the command ran ("system" for engines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// When the command was decided, in microseconds since the epoch.
    #[serde(default)]
    pub occurred_at: Timestamp,
    /// W3C trace context (`traceparent`) of the request that caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: Position,
    pub stream_id: String,
    pub version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
    /// Commit time, microseconds since the epoch.
    pub recorded_at: Timestamp,
}

/// Events of the global log as one reader gets them: a slice of a shared, immutable read, so that
/// readers of one process catching up on the same stretch of the log can share one read and decode
/// of it ([`EventStore::read_all_shared`](crate::EventStore::read_all_shared)) instead of each
/// holding a copy.
#[derive(Debug, Clone, Default)]
pub struct EventBatch {
    events: std::sync::Arc<[RecordedEvent]>,
    range: std::ops::Range<usize>,
}

impl EventBatch {
    /// The events of `events` in `range` (clamped to it).
    pub fn slice(events: std::sync::Arc<[RecordedEvent]>, range: std::ops::Range<usize>) -> Self {
        let end = range.end.min(events.len());
        let start = range.start.min(end);
        Self {
            events,
            range: start..end,
        }
    }
}

impl From<Vec<RecordedEvent>> for EventBatch {
    fn from(events: Vec<RecordedEvent>) -> Self {
        let range = 0..events.len();
        Self {
            events: events.into(),
            range,
        }
    }
}

impl std::ops::Deref for EventBatch {
    type Target = [RecordedEvent];

    fn deref(&self) -> &[RecordedEvent] {
        &self.events[self.range.clone()]
    }
}

/// The outcome of a command as recorded for idempotency.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRecord {
    pub command_id: Uuid,
    pub stream_id: String,
    /// A digest of the command's content, so a reused id with different content can be told apart.
    pub fingerprint: Option<String>,
    pub result: CommandResult,
    pub recorded_at: Timestamp,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandResult {
    /// The command appended events (possibly none, for a no-op).
    Accepted {
        /// The stream version after the command.
        stream_version: u64,
        /// Positions of the first and last event; both are the head position for a no-op.
        first_position: Position,
        last_position: Position,
        event_count: u32,
    },
    /// The command was refused by the domain; `error` is the serialized domain error.
    Rejected { error: serde_json::Value },
}

/// An append request: one stream, an expected version, events, and optionally the command to record.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream_id: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    /// The command this append settles. With `Rejected` the request must carry no events.
    pub command: Option<PendingCommand>,
}

/// The command part of an append request; the store fills in positions and versions.
#[derive(Debug, Clone)]
pub struct PendingCommand {
    pub command_id: Uuid,
    pub fingerprint: Option<String>,
    /// `None` records acceptance; `Some(error)` records a rejection.
    pub rejection: Option<serde_json::Value>,
}

impl PendingCommand {
    /// The record this command leaves once its append settled at `stream_version`, with its events
    /// (if any) at `first_position..=last_position`.
    pub(crate) fn record(
        &self,
        stream_id: &str,
        (stream_version, first_position, last_position): (u64, Position, Position),
        event_count: usize,
        recorded_at: Timestamp,
    ) -> CommandRecord {
        let result = match &self.rejection {
            Some(error) => CommandResult::Rejected {
                error: error.clone(),
            },
            None => CommandResult::Accepted {
                stream_version,
                first_position,
                last_position,
                event_count: event_count as u32,
            },
        };
        CommandRecord {
            command_id: self.command_id,
            stream_id: stream_id.to_string(),
            fingerprint: self.fingerprint.clone(),
            result,
            recorded_at,
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    /// Committed; `first_position..=last_position` hold the new events.
    Appended {
        stream_version: u64,
        first_position: Position,
        last_position: Position,
        /// The commit time the new events carry as their `recorded_at`.
        recorded_at: Timestamp,
    },
    /// The command id was recorded before: nothing was appended, here is the first outcome.
    Duplicate(CommandRecord),
}

/// One stream's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub stream_id: String,
    pub version: u64,
    pub last_position: Position,
    pub updated_at: Timestamp,
}

/// Store-wide counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreStats {
    pub backend: String,
    pub events: u64,
    pub streams: u64,
    pub commands: u64,
    pub head: Position,
    /// Event counts by type, most frequent first.
    pub by_type: Vec<(String, u64)>,
    /// Size on disk in bytes, where the backend can tell.
    pub size_bytes: Option<u64>,
}

/// The current time in microseconds since the epoch.
pub fn now_micros() -> Timestamp {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000) as Timestamp
}

//! What travels with a command (ids, principal, trace context) and what comes back.

use std::fmt;

use quire_domain::{DomainError, ErrorKind, Principal};
use quire_store::{CommandRecord, CommandResult, Position, StoreError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A command with the facts every handler needs about where it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandEnvelope<C> {
    /// Idempotency key: the same id always yields the first outcome and appends nothing more.
    pub command_id: Uuid,
    /// Shared by everything one original request caused.
    pub correlation_id: Uuid,
    /// The message that caused this command, when it was caused by another message.
    pub causation_id: Option<Uuid>,
    /// On whose behalf the command runs.
    pub principal: Principal,
    /// W3C `traceparent` of the request, carried into the stored events.
    pub traceparent: Option<String>,
    /// The entity version the sender based the command on (HTTP `If-Match`); when set and the
    /// entity has moved on, the command is refused as `version_mismatch` and writes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    pub command: C,
}

impl<C> CommandEnvelope<C> {
    /// A new command with fresh ids, correlated with itself.
    pub fn new(principal: Principal, command: C) -> Self {
        let command_id = Uuid::now_v7();
        Self {
            command_id,
            correlation_id: command_id,
            causation_id: None,
            principal,
            traceparent: None,
            expected_version: None,
            command,
        }
    }

    /// Makes the command conditional on the entity still being at `version`.
    pub fn with_expected_version(mut self, version: u64) -> Self {
        self.expected_version = Some(version);
        self
    }

    /// Sets the idempotency key (for example from an `Idempotency-Key` header).
    pub fn with_command_id(mut self, command_id: Uuid) -> Self {
        if self.correlation_id == self.command_id {
            self.correlation_id = command_id;
        }
        self.command_id = command_id;
        self
    }

    /// Replaces the command, keeping ids and principal.
    pub fn map<D>(self, f: impl FnOnce(C) -> D) -> CommandEnvelope<D> {
        CommandEnvelope {
            command_id: self.command_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            principal: self.principal,
            traceparent: self.traceparent,
            expected_version: self.expected_version,
            command: f(self.command),
        }
    }
}

/// A W3C `traceparent` for a new span: in the trace of `parent` (a valid `traceparent`, keeping its
/// trace id and flags), or starting a new sampled trace.
pub fn new_traceparent(parent: Option<&str>) -> String {
    let span_id = &Uuid::new_v4().simple().to_string()[..16];
    match parent {
        Some(parent) if parent.len() == 55 => {
            format!("00-{}-{span_id}-{}", &parent[3..35], &parent[53..55])
        }
        _ => format!("00-{}-{span_id}-01", Uuid::new_v4().simple()),
    }
}

/// A successful command's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    pub command_id: Uuid,
    pub stream_id: String,
    /// The entity's version after the command (its `ETag`).
    pub stream_version: u64,
    /// Global positions of the events written; a read model at `last_position` reflects them.
    pub first_position: Position,
    pub last_position: Position,
    pub event_count: u32,
    /// True when this is the recorded outcome of an earlier identical command.
    pub replayed: bool,
    /// When the command was recorded: its events' `recorded_at`, microseconds since the epoch (0
    /// from a node that predates the field).
    #[serde(default)]
    pub recorded_at: i64,
}

/// A refusal by the domain, in a form that can be stored and replayed identically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Stable machine code, such as `review_already_exists`.
    pub code: String,
    /// The category, which adapters map onto transport status codes.
    pub kind: RejectionKind,
    pub message: String,
}

/// The category of a [`Rejection`]: the domain's [`ErrorKind`]s, plus [`RejectionKind::Precondition`],
/// which the entity actor adds itself.
///
/// Stored command outcomes and NATS replies carry it as its snake_case name (`"not_found"`,
/// `"precondition"`, ...), the string form it had before it was typed. A name this code does not
/// know (written by a newer node) decodes to [`RejectionKind::Other`] and keeps that name, so every
/// recorded outcome still replays, and re-encodes as it was stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RejectionKind {
    /// The entity (or a part of it) does not exist.
    NotFound,
    /// The command collides with the current state, e.g. something already exists.
    Conflict,
    /// The principal may not do this.
    Forbidden,
    /// The command itself is invalid whatever the state.
    Invalid,
    /// The entity existed but has been removed or deactivated.
    Gone,
    /// The entity was not at the version the command expected.
    Precondition,
    /// A kind this code does not know, by its stored name.
    Other(String),
}

impl RejectionKind {
    /// The stored and wire name, e.g. `"not_found"`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Forbidden => "forbidden",
            Self::Invalid => "invalid",
            Self::Gone => "gone",
            Self::Precondition => "precondition",
            Self::Other(name) => name,
        }
    }

    /// The kind stored under `name`; never fails (see [`RejectionKind::Other`]).
    pub fn from_name(name: &str) -> Self {
        match name {
            "not_found" => Self::NotFound,
            "conflict" => Self::Conflict,
            "forbidden" => Self::Forbidden,
            "invalid" => Self::Invalid,
            "gone" => Self::Gone,
            "precondition" => Self::Precondition,
            other => Self::Other(other.to_string()),
        }
    }
}

impl From<ErrorKind> for RejectionKind {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::NotFound => Self::NotFound,
            ErrorKind::Conflict => Self::Conflict,
            ErrorKind::Forbidden => Self::Forbidden,
            ErrorKind::Invalid => Self::Invalid,
            ErrorKind::Gone => Self::Gone,
        }
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RejectionKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RejectionKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(Self::from_name(&name))
    }
}

impl Rejection {
    /// The refusal of a command whose expected version is not the entity's.
    pub(crate) fn version_mismatch(expected: u64, actual: u64) -> Self {
        Self {
            code: "version_mismatch".to_string(),
            kind: RejectionKind::Precondition,
            message: format!("the entity is at version {actual}, not the expected {expected}"),
        }
    }

    pub(crate) fn from_domain(error: &impl DomainError) -> Self {
        Self {
            code: error.code().to_string(),
            kind: error.kind().into(),
            message: error.to_string(),
        }
    }
}

/// Why a command did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The domain refused the command (recorded: a retry gets the same refusal).
    #[error("command rejected: {}", .0.message)]
    Rejected(Rejection),
    /// The idempotency key was used before for a different command.
    #[error("command id {0} was already used for a different command")]
    KeyReused(Uuid),
    /// Other writers kept changing the entity; the command was not applied.
    #[error("entity {stream_id} kept changing under the command after {attempts} attempts")]
    Contention { stream_id: String, attempts: u32 },
    /// The handler panicked; the command was not applied and the entity reloads its state.
    #[error("command handler failed: {0}")]
    HandlerPanicked(String),
    /// The entity's stored events could not be decoded.
    #[error("entity {stream_id} cannot be loaded: {reason}")]
    Corrupt { stream_id: String, reason: String },
    /// The event store failed.
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    /// The command could not be delivered or its reply was lost; retry with the same command id.
    #[error("command not delivered: {0}")]
    Unavailable(String),
}

/// Turns a recorded outcome back into the reply the first attempt gave.
pub(crate) fn replay(record: &CommandRecord) -> Result<CommandOutcome, CommandError> {
    match &record.result {
        CommandResult::Accepted {
            stream_version,
            first_position,
            last_position,
            event_count,
        } => Ok(CommandOutcome {
            command_id: record.command_id,
            stream_id: record.stream_id.clone(),
            stream_version: *stream_version,
            first_position: *first_position,
            last_position: *last_position,
            event_count: *event_count,
            replayed: true,
            recorded_at: record.recorded_at,
        }),
        CommandResult::Rejected { error } => match serde_json::from_value(error.clone()) {
            Ok(rejection) => Err(CommandError::Rejected(rejection)),
            Err(e) => Err(CommandError::Corrupt {
                stream_id: record.stream_id.clone(),
                reason: format!("recorded rejection: {e}"),
            }),
        },
    }
}

/// A stable digest of who sent a command and what it says (FNV-1a over their JSON), to detect a
/// reused idempotency key: another command, or the same command from another principal, must not
/// receive the first one's recorded outcome.
///
/// `DefaultHasher` is not stable across Rust versions, and stored fingerprints must stay comparable
/// forever, hence this small fixed algorithm.
pub(crate) fn fingerprint<C: Serialize>(
    principal: &Principal,
    command: &C,
    expected_version: Option<u64>,
) -> String {
    // Without a precondition the digest keeps its original input, so stored fingerprints of
    // unconditional commands stay comparable.
    let bytes = match expected_version {
        None => serde_json::to_vec(&(principal, command)),
        Some(version) => serde_json::to_vec(&(principal, command, version)),
    }
    .expect("principals and commands serialize");
    format!("fnv1a64:{:016x}", fnv1a64(&bytes))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_and_cover_content_and_principal() {
        let system = Principal::system();
        let a = fingerprint(&system, &serde_json::json!({ "a": 1 }), None);
        assert_eq!(
            a,
            fingerprint(&system, &serde_json::json!({ "a": 1 }), None)
        );
        assert_ne!(
            a,
            fingerprint(&system, &serde_json::json!({ "a": 2 }), None)
        );
        assert_ne!(
            a,
            fingerprint(&system, &serde_json::json!({ "a": 1 }), Some(3))
        );
        let someone = Principal::member(quire_domain::ids::UserId::new());
        assert_ne!(
            a,
            fingerprint(&someone, &serde_json::json!({ "a": 1 }), None)
        );
    }

    #[test]
    fn the_fingerprint_algorithm_is_pinned() {
        // Stored fingerprints must never change meaning: FNV-1a 64 of the JSON `""`.
        assert_eq!(fnv1a64(b"\"\""), 0x07cc_7607_b494_9e25);
    }

    #[test]
    fn a_recorded_rejection_replays_as_the_same_rejection() {
        let rejection = Rejection {
            code: "book_removed".into(),
            kind: RejectionKind::Gone,
            message: "book was removed".into(),
        };
        let record = rejected_record(serde_json::to_value(&rejection).unwrap());
        match replay(&record) {
            Err(CommandError::Rejected(r)) => assert_eq!(r, rejection),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn rejected_record(error: serde_json::Value) -> CommandRecord {
        CommandRecord {
            command_id: Uuid::new_v4(),
            stream_id: "book-1".into(),
            fingerprint: None,
            result: CommandResult::Rejected { error },
            recorded_at: 0,
        }
    }

    #[test]
    fn rejections_recorded_with_a_string_kind_still_replay() {
        // The stored form from before the kind was typed: every name ever written, as written.
        let names = [
            ("not_found", RejectionKind::NotFound),
            ("conflict", RejectionKind::Conflict),
            ("forbidden", RejectionKind::Forbidden),
            ("invalid", RejectionKind::Invalid),
            ("gone", RejectionKind::Gone),
            ("precondition", RejectionKind::Precondition),
        ];
        for (name, kind) in names {
            let stored = serde_json::json!({
                "code": "some_code",
                "kind": name,
                "message": "refused",
            });
            match replay(&rejected_record(stored.clone())) {
                Err(CommandError::Rejected(r)) => {
                    assert_eq!(r.kind, kind);
                    // And it is written back byte for byte as before.
                    assert_eq!(serde_json::to_value(&r).unwrap(), stored);
                }
                other => panic!("{name}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn an_unknown_kind_replays_as_other_and_keeps_its_name() {
        let stored = serde_json::json!({
            "code": "too_late",
            "kind": "expired",
            "message": "a newer node's refusal",
        });
        match replay(&rejected_record(stored.clone())) {
            Err(CommandError::Rejected(r)) => {
                assert_eq!(r.kind, RejectionKind::Other("expired".into()));
                assert_eq!(serde_json::to_value(&r).unwrap(), stored);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn domain_kinds_and_the_version_precondition_keep_their_names() {
        let names: Vec<_> = [
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Forbidden,
            ErrorKind::Invalid,
            ErrorKind::Gone,
        ]
        .into_iter()
        .map(|kind| RejectionKind::from(kind).to_string())
        .collect();
        assert_eq!(
            names,
            ["not_found", "conflict", "forbidden", "invalid", "gone"]
        );
        let mismatch = serde_json::to_value(Rejection::version_mismatch(2, 3)).unwrap();
        assert_eq!(mismatch["kind"], "precondition");
        assert_eq!(mismatch["code"], "version_mismatch");
    }
}

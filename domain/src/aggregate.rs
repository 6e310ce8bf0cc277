//! The contracts every aggregate, event and domain error fulfils.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::CommandContext;

/// A consistency boundary: state rebuilt from events, deciding commands into new events.
///
/// `decide` must be a pure function of the state, the command and the context, because the entity
/// actor may retry it after reloading the stream; anything non-deterministic (ids, timestamps) has to
/// arrive inside the command.
pub trait Aggregate: Default + Clone + Send + Sync + Debug + 'static {
    /// The commands this aggregate accepts; serializable so they can be queued and recorded.
    type Command: Clone + Send + Sync + Debug + Serialize + DeserializeOwned + 'static;
    /// The facts this aggregate records.
    type Event: DomainEvent + Clone + Send + Sync + Debug + PartialEq + 'static;
    /// Why a command was refused.
    type Error: DomainError;

    /// Stream category; the stream id of an entity is "{CATEGORY}-{id}", e.g. `book-<uuid>`.
    const CATEGORY: &'static str;

    /// Checks a command against the current state and returns the events it causes.
    ///
    /// An empty vector means the command was accepted but changes nothing.
    fn decide(
        &self,
        command: &Self::Command,
        ctx: &CommandContext,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one event into the state; it cannot fail because the event already happened.
    fn apply(&mut self, event: &Self::Event);
}

/// An event with an explicit, versioned storage schema.
pub trait DomainEvent: Sized {
    /// The stored type name, e.g. "BookAdded".
    fn event_type(&self) -> &'static str;

    /// The schema version this code writes for the event's type.
    fn schema_version(&self) -> u32;

    /// The payload in the current schema version of the event's type.
    fn to_payload(&self) -> serde_json::Value;

    /// Decodes a stored event, upcasting older schema versions to the current shape.
    fn from_stored(
        event_type: &str,
        schema_version: u32,
        payload: &serde_json::Value,
    ) -> Result<Self, EventDecodeError>;
}

/// A refusal with a stable machine-readable code and a coarse category.
pub trait DomainError: std::error::Error + Send + Sync + 'static {
    /// A stable snake_case code, e.g. "review_already_exists"; clients may match on it.
    fn code(&self) -> &'static str;

    /// The category, which adapters map onto transport status codes.
    fn kind(&self) -> ErrorKind;
}

/// The category of a domain error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
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
}

/// Why a stored event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    /// No event of this aggregate has that type name.
    #[error("unknown event type {event_type:?}")]
    UnknownType { event_type: String },
    /// The type is known but this code cannot read that schema version (usually a newer one).
    #[error("unsupported schema version {version} of event type {event_type:?}")]
    UnsupportedVersion { event_type: String, version: u32 },
    /// The payload does not match the schema it claims.
    #[error("malformed payload of event type {event_type:?} version {version}: {reason}")]
    Malformed {
        event_type: String,
        version: u32,
        reason: String,
    },
}

impl EventDecodeError {
    /// Builds an [`EventDecodeError::UnknownType`].
    pub fn unknown_type(event_type: &str) -> Self {
        Self::UnknownType {
            event_type: event_type.to_owned(),
        }
    }

    /// Builds an [`EventDecodeError::UnsupportedVersion`].
    pub fn unsupported_version(event_type: &str, version: u32) -> Self {
        Self::UnsupportedVersion {
            event_type: event_type.to_owned(),
            version,
        }
    }

    /// Builds an [`EventDecodeError::Malformed`].
    pub fn malformed(event_type: &str, version: u32, reason: impl Into<String>) -> Self {
        Self::Malformed {
            event_type: event_type.to_owned(),
            version,
            reason: reason.into(),
        }
    }
}

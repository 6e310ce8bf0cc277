//! The stored encodings shared by the SQL backends: command outcomes as JSON.

use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::types::{CommandResult, Position};

/// The stored shape of a command outcome. Fields are never renamed in place: stored rows live forever.
#[derive(Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
enum StoredResult {
    Accepted {
        stream_version: u64,
        first_position: Position,
        last_position: Position,
        event_count: u32,
    },
    Rejected {
        error: serde_json::Value,
    },
}

pub(crate) fn encode_result(result: &CommandResult) -> serde_json::Value {
    let stored = match result.clone() {
        CommandResult::Accepted {
            stream_version,
            first_position,
            last_position,
            event_count,
        } => StoredResult::Accepted {
            stream_version,
            first_position,
            last_position,
            event_count,
        },
        CommandResult::Rejected { error } => StoredResult::Rejected { error },
    };
    serde_json::to_value(stored).expect("a command outcome always serializes")
}

pub(crate) fn decode_result(value: serde_json::Value) -> Result<CommandResult, StoreError> {
    let stored: StoredResult = serde_json::from_value(value)
        .map_err(|e| StoreError::Corrupt(format!("command outcome: {e}")))?;
    Ok(match stored {
        StoredResult::Accepted {
            stream_version,
            first_position,
            last_position,
            event_count,
        } => CommandResult::Accepted {
            stream_version,
            first_position,
            last_position,
            event_count,
        },
        StoredResult::Rejected { error } => CommandResult::Rejected { error },
    })
}

pub(crate) fn decode_metadata(
    value: serde_json::Value,
) -> Result<crate::EventMetadata, StoreError> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt(format!("event metadata: {e}")))
}

pub(crate) fn encode_metadata(metadata: &crate::EventMetadata) -> serde_json::Value {
    serde_json::to_value(metadata).expect("event metadata always serializes")
}

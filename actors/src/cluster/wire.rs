//! What a command and its outcome look like on the wire.

use quire_store::StoreError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{CommandError, CommandOutcome, Rejection};

/// Header with the command id (also inside the payload), for tracing and operators.
pub(crate) const COMMAND_ID: &str = "Quire-Command-Id";
/// W3C trace context header.
pub(crate) const TRACEPARENT: &str = "traceparent";
/// The node that answered, on replies.
pub(crate) const NODE: &str = "Quire-Node";

/// A node's answer to a command request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub(crate) enum Reply {
    Ok {
        outcome: CommandOutcome,
    },
    Err {
        #[serde(flatten)]
        error: WireError,
    },
}

/// [`CommandError`] in a form that crosses the network.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub(crate) enum WireError {
    Rejected {
        rejection: Rejection,
    },
    KeyReused {
        command_id: Uuid,
    },
    Contention {
        stream_id: String,
        attempts: u32,
    },
    HandlerPanicked {
        message: String,
    },
    Corrupt {
        stream_id: String,
        reason: String,
    },
    /// The answering node's event store is shutting down or unreachable.
    StoreUnavailable {
        message: String,
    },
    /// Anything else failed on the answering node; the command may be retried with its id.
    Unavailable {
        message: String,
    },
    /// The request could not be decoded.
    BadRequest {
        message: String,
    },
}

impl WireError {
    pub(crate) fn from_error(error: &CommandError) -> Self {
        match error {
            CommandError::Rejected(rejection) => Self::Rejected {
                rejection: rejection.clone(),
            },
            CommandError::KeyReused(id) => Self::KeyReused { command_id: *id },
            CommandError::Contention {
                stream_id,
                attempts,
            } => Self::Contention {
                stream_id: stream_id.clone(),
                attempts: *attempts,
            },
            CommandError::HandlerPanicked(message) => Self::HandlerPanicked {
                message: message.clone(),
            },
            CommandError::Corrupt { stream_id, reason } => Self::Corrupt {
                stream_id: stream_id.clone(),
                reason: reason.clone(),
            },
            CommandError::Store(StoreError::Unavailable(message)) => Self::StoreUnavailable {
                message: message.clone(),
            },
            other => Self::Unavailable {
                message: other.to_string(),
            },
        }
    }

    pub(crate) fn into_error(self, node: &str) -> CommandError {
        match self {
            Self::Rejected { rejection } => CommandError::Rejected(rejection),
            Self::KeyReused { command_id } => CommandError::KeyReused(command_id),
            Self::Contention {
                stream_id,
                attempts,
            } => CommandError::Contention {
                stream_id,
                attempts,
            },
            Self::HandlerPanicked { message } => CommandError::HandlerPanicked(message),
            Self::Corrupt { stream_id, reason } => CommandError::Corrupt { stream_id, reason },
            Self::StoreUnavailable { message } => CommandError::Store(StoreError::Unavailable(
                format!("on node {node}: {message}"),
            )),
            Self::Unavailable { message } | Self::BadRequest { message } => {
                CommandError::Unavailable(format!("node {node}: {message}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::RejectionKind;

    #[test]
    fn errors_survive_the_wire() {
        let rejection = Rejection {
            code: "book_removed".into(),
            kind: RejectionKind::Gone,
            message: "the book was removed".into(),
        };
        let reply = Reply::Err {
            error: WireError::from_error(&CommandError::Rejected(rejection.clone())),
        };
        let bytes = serde_json::to_vec(&reply).unwrap();
        let Reply::Err { error } = serde_json::from_slice(&bytes).unwrap() else {
            panic!("not an error")
        };
        match error.into_error("n1") {
            CommandError::Rejected(r) => assert_eq!(r, rejection),
            other => panic!("unexpected {other:?}"),
        }
        let unavailable = WireError::from_error(&CommandError::Store(StoreError::Unavailable(
            "closing".into(),
        )));
        assert!(matches!(
            unavailable.into_error("n1"),
            CommandError::Store(StoreError::Unavailable(m)) if m.contains("n1")
        ));
    }

    #[test]
    fn a_rejection_from_a_node_with_string_kinds_decodes() {
        // A reply as nodes sent it before the kind was typed, and one with a kind this node does
        // not know (from a newer node): both decode, the second as `Other`.
        for (kind, expected) in [
            ("precondition", RejectionKind::Precondition),
            ("expired", RejectionKind::Other("expired".into())),
        ] {
            let bytes = serde_json::to_vec(&serde_json::json!({
                "result": "err",
                "error": "rejected",
                "rejection": { "code": "c", "kind": kind, "message": "m" },
            }))
            .unwrap();
            let Reply::Err { error } = serde_json::from_slice(&bytes).unwrap() else {
                panic!("not an error")
            };
            match error.into_error("n1") {
                CommandError::Rejected(r) => assert_eq!(r.kind, expected),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

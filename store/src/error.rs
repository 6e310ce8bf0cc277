//! Event store errors.

use std::sync::Arc;

use crate::types::ExpectedVersion;

/// What can go wrong at the event store port.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream was not at the expected version (another writer got there first).
    #[error("stream {stream_id} is at version {actual}, expected {expected:?}")]
    WrongExpectedVersion {
        stream_id: String,
        expected: ExpectedVersion,
        actual: u64,
    },
    /// The request itself is malformed (for example a rejection that carries events).
    #[error("invalid append request: {0}")]
    InvalidRequest(String),
    /// The database failed; `context` says what the store was doing. The cause is part of the
    /// message rather than a chained source, so that neither logs nor `{:#}` print it twice.
    #[error("{context}: {cause}")]
    Database {
        context: &'static str,
        cause: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A stored row could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The store is shutting down or its writer has stopped.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// The store was configured wrongly.
    #[error("event store configuration: {0}")]
    Config(String),
    /// The store is open read-only.
    #[error("event store is open read-only")]
    ReadOnly,
}

impl StoreError {
    pub(crate) fn db<E>(context: &'static str) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |cause| Self::Database {
            context,
            cause: Arc::new(cause),
        }
    }
}

//! Read-model errors.

/// What can go wrong reading or maintaining the read models.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadModelError {
    /// A page cursor was not one this service issued for this query.
    #[error("invalid page cursor")]
    InvalidCursor,
    /// The read-model database failed; `context` says what was being done.
    #[error("{context}")]
    Database {
        context: &'static str,
        #[source]
        cause: sqlx::Error,
    },
    /// A stored event could not be decoded into a domain event.
    #[error("cannot decode event at position {position} ({event_type} in {stream_id}): {reason}")]
    Decode {
        position: u64,
        stream_id: String,
        event_type: String,
        reason: String,
    },
    /// Reading the event log failed.
    #[error("reading the event log")]
    Store(#[source] quire_store::StoreError),
    /// A stored read-model row holds a value this code cannot read.
    #[error("corrupt read-model data: {0}")]
    Corrupt(String),
    /// The read models were opened read-only.
    #[error("read models are open read-only")]
    ReadOnly,
    /// The read models were configured wrongly.
    #[error("read-model configuration: {0}")]
    Config(String),
}

impl ReadModelError {
    pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |cause| Self::Database { context, cause }
    }

    /// Whether the read-model database or the event log could not be reached or could not take
    /// the work now (down, unreachable, out of connections or disk, locked): retrying later may
    /// succeed, so the API answers 503 with Retry-After.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database { cause, .. } => {
                quire_store::StorageFault::of(cause) == quire_store::StorageFault::Unavailable
            }
            Self::Store(error) => error.is_unavailable(),
            _ => false,
        }
    }

    /// Whether the read-model database reported damaged pages or files ("database disk image is
    /// malformed"). Read models are derived from the log, so the cure is rebuilding them.
    pub fn is_corrupt(&self) -> bool {
        match self {
            Self::Database { cause, .. } => {
                quire_store::StorageFault::of(cause) == quire_store::StorageFault::Corrupt
            }
            _ => false,
        }
    }

    /// The error and its causes on one line, for logs and the checkpoint table.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            source = cause.source();
        }
        out
    }
}

/// Why [`crate::ReadModels::wait_for`] returned without the position being reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The projections did not all reach the position in time; `reached` is the lowest checkpoint.
    #[error("read models reached position {reached} before the timeout")]
    Timeout { reached: u64 },
    /// Reading the checkpoints failed.
    #[error("reading projection checkpoints")]
    ReadModel(#[source] ReadModelError),
}

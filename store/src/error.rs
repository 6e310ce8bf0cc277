//! Event store errors.

use std::sync::Arc;

use sqlx::error::DatabaseError as _;

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
    /// Wraps a database error. One that says the database cannot be reached or cannot take the
    /// work now (see [`StorageFault::Unavailable`]) becomes [`StoreError::Unavailable`], so that
    /// callers (the API, the cluster's wire) answer "retry later" rather than "failed".
    pub(crate) fn db<E>(context: &'static str) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |cause| {
            let fault = (&cause as &(dyn std::error::Error + 'static))
                .downcast_ref::<sqlx::Error>()
                .map_or(StorageFault::Other, StorageFault::of);
            if fault == StorageFault::Unavailable {
                Self::Unavailable(format!("{context}: {cause}"))
            } else {
                Self::Database {
                    context,
                    cause: Arc::new(cause),
                }
            }
        }
    }

    /// Whether the store could not be reached or could not take the work now (down, unreachable,
    /// out of connections or disk, locked, shutting down): retrying later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// What kind of failure a database error is, as far as a caller can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageFault {
    /// The database cannot be reached or cannot take the work now: connection refused or lost,
    /// no connection within the pool's acquire timeout, I/O errors, a full disk, a lock held past
    /// the busy timeout, a server shutting down or out of resources. Retrying later may succeed.
    Unavailable,
    /// The database's file or pages are damaged (SQLite "database disk image is malformed" or
    /// "file is not a database"; Postgres `XX001`/`XX002`).
    Corrupt,
    /// Anything else: a bug, a constraint, a bad query; retrying the same thing will not help.
    Other,
}

impl StorageFault {
    /// Classifies an error of sqlx (either backend).
    pub fn of(error: &sqlx::Error) -> Self {
        match error {
            // A protocol error is what a connection cut at the wrong moment, or a proxy in front
            // of a database that is gone, looks like (sqlx reads the closed socket's silence as
            // an unexpected reply).
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable,
            sqlx::Error::Database(db) => {
                if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                    let code = sqlite.code().and_then(|c| c.parse::<i32>().ok());
                    Self::of_sqlite(code.unwrap_or(0))
                } else if db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some()
                {
                    Self::of_sqlstate(db.code().as_deref().unwrap_or(""))
                } else {
                    Self::Other
                }
            }
            _ => Self::Other,
        }
    }

    /// By SQLite's (extended) result code: its low byte is the primary code.
    fn of_sqlite(code: i32) -> Self {
        match code & 0xff {
            // BUSY and LOCKED (past the busy timeout), NOMEM, IOERR, FULL, CANTOPEN, PROTOCOL.
            5 | 6 | 7 | 10 | 13 | 14 | 15 => Self::Unavailable,
            // CORRUPT, NOTADB.
            11 | 26 => Self::Corrupt,
            _ => Self::Other,
        }
    }

    /// By Postgres' SQLSTATE.
    fn of_sqlstate(state: &str) -> Self {
        match state {
            // admin_shutdown, crash_shutdown, cannot_connect_now.
            "57P01" | "57P02" | "57P03" => Self::Unavailable,
            "XX001" | "XX002" => Self::Corrupt,
            // Connection exceptions, insufficient resources (disk full, out of memory, too many
            // connections), system errors (I/O).
            s if s.starts_with("08") || s.starts_with("53") || s.starts_with("58") => {
                Self::Unavailable
            }
            _ => Self::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable_and_keep_their_context() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = StoreError::db("reading stream")(sqlx::Error::Io(refused));
        assert!(error.is_unavailable(), "{error:?}");
        assert!(error.to_string().contains("reading stream"), "{error}");
        assert!(StoreError::db("x")(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!StoreError::db("x")(sqlx::Error::RowNotFound).is_unavailable());
    }

    #[test]
    fn codes_classify() {
        assert_eq!(StorageFault::of_sqlite(13), StorageFault::Unavailable);
        // SQLITE_IOERR_WRITE is an extended IOERR.
        assert_eq!(StorageFault::of_sqlite(778), StorageFault::Unavailable);
        assert_eq!(StorageFault::of_sqlite(11), StorageFault::Corrupt);
        assert_eq!(StorageFault::of_sqlite(26), StorageFault::Corrupt);
        // SQLITE_CONSTRAINT_UNIQUE.
        assert_eq!(StorageFault::of_sqlite(2067), StorageFault::Other);
        assert_eq!(
            StorageFault::of_sqlstate("08006"),
            StorageFault::Unavailable
        );
        assert_eq!(
            StorageFault::of_sqlstate("53100"),
            StorageFault::Unavailable
        );
        assert_eq!(
            StorageFault::of_sqlstate("57P01"),
            StorageFault::Unavailable
        );
        assert_eq!(StorageFault::of_sqlstate("XX001"), StorageFault::Corrupt);
        assert_eq!(StorageFault::of_sqlstate("23505"), StorageFault::Other);
    }

    /// A real SQLite "database or disk is full", made by capping the file's page count.
    #[tokio::test]
    async fn a_full_sqlite_database_is_unavailable() {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (x BLOB)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("PRAGMA max_page_count = 3")
            .execute(&mut conn)
            .await
            .unwrap();
        let full = sqlx::query("INSERT INTO t VALUES (zeroblob(100000))")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert_eq!(StorageFault::of(&full), StorageFault::Unavailable, "{full}");
        assert!(StoreError::db("writing batch")(full).is_unavailable());
    }
}

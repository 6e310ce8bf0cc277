//! Test support shared by the crates' integration tests: a fresh Postgres database per test.
//!
//! Tests that need Postgres read its URL from `QUIRE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and fail loudly when it is unreachable: a missing
//! service is a broken environment, never a reason to skip.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The admin URL tests create their databases through.
pub fn postgres_admin_url() -> String {
    std::env::var("QUIRE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database with a unique name and returns its URL.
///
/// Databases are named `quire_t_<uuid>`; `.ci/run` drops leftovers before each run.
pub async fn fresh_postgres_database() -> String {
    let admin = postgres_admin_url();
    let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!(
            "postgres is required for this test and is unreachable at {admin} \
             (set QUIRE_TEST_POSTGRES_URL): {e}"
        )
    });
    let name = format!("quire_t_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
    let _ = conn.close().await;
    with_database(&admin, &name)
}

/// Replaces the database name in a Postgres URL, keeping its query string.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[host_start..].find('/') {
        Some(slash) => &base[..host_start + slash],
        None => base,
    };
    format!("{server}/{database}{query}")
}

/// An event for tests: a small JSON payload with non-ASCII text, and every metadata field set.
pub fn event(event_type: &str, n: u64) -> crate::NewEvent {
    crate::NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: event_type.into(),
        schema_version: 1,
        payload: serde_json::json!({ "n": n, "text": "naïve café" }),
        metadata: crate::EventMetadata {
            command_id: None,
            causation_id: Some(uuid::Uuid::new_v4()),
            correlation_id: Some(uuid::Uuid::new_v4()),
            actor: Some("user-1".into()),
            occurred_at: 1_700_000_000_000_000,
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        },
    }
}

/// An append of `events` to `stream_id` with no command record.
pub fn append(
    stream_id: &str,
    expected: crate::ExpectedVersion,
    events: Vec<crate::NewEvent>,
) -> crate::AppendRequest {
    crate::AppendRequest {
        stream_id: stream_id.into(),
        expected,
        events,
        command: None,
    }
}

/// The same append, recorded as the accepted command `command_id` (fingerprint `"fp"`).
pub fn with_command(
    mut request: crate::AppendRequest,
    command_id: uuid::Uuid,
) -> crate::AppendRequest {
    request.command = Some(crate::PendingCommand {
        command_id,
        fingerprint: Some("fp".into()),
        rejection: None,
    });
    request
}

#[cfg(test)]
mod tests {
    #[test]
    fn with_database_replaces_only_the_database() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://h", "x"), "postgres://h/x");
    }
}

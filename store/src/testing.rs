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

/// The S3-compatible server tests use: `QUIRE_TEST_S3_URL` (default `http://127.0.0.1:9090`, the
/// moto server `ops/services.sh` starts). Credentials come from `QUIRE_TEST_S3_ACCESS_KEY` /
/// `QUIRE_TEST_S3_SECRET_KEY` (default `test`/`test`, which moto accepts).
pub fn s3_test_url() -> String {
    std::env::var("QUIRE_TEST_S3_URL").unwrap_or_else(|_| "http://127.0.0.1:9090".into())
}

/// A place of its own in the test S3 server: the bucket `QUIRE_TEST_S3_BUCKET` if set (it must
/// exist), else `quire-test`, created here with an unsigned `PUT` (moto accepts it; a server
/// that wants signed requests needs `QUIRE_TEST_S3_BUCKET`), and a fresh key prefix. Fails loudly
/// when the server is unreachable.
pub async fn fresh_s3_location() -> crate::texts::S3Location {
    let endpoint = s3_test_url();
    let bucket = match std::env::var("QUIRE_TEST_S3_BUCKET") {
        Ok(bucket) => bucket,
        Err(_) => {
            let bucket = "quire-test".to_string();
            let url = format!("{}/{bucket}", endpoint.trim_end_matches('/'));
            let response = reqwest::Client::new()
                .put(&url)
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "an S3-compatible server is required for this test and is unreachable at \
                         {endpoint} (start it with ops/services.sh, or set QUIRE_TEST_S3_URL): {e}"
                    )
                });
            assert!(
                response.status().is_success(),
                "creating the test bucket at {url}: {}",
                response.status()
            );
            bucket
        }
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| "test".into());
    crate::texts::S3Location {
        bucket,
        prefix: format!("t-{}", uuid::Uuid::new_v4().simple()),
        endpoint: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        allow_http: endpoint.starts_with("http://"),
        access_key_id: Some(var("QUIRE_TEST_S3_ACCESS_KEY")),
        secret_access_key: Some(var("QUIRE_TEST_S3_SECRET_KEY")),
    }
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

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

//! TLS to Postgres is configured in the URL (`sslmode=require`, `verify-full` with
//! `sslrootcert=…`): the store's connections then run over TLS (rustls).

use quire_store::{AppendRequest, ExpectedVersion, StoreOptions};
use sqlx::Connection;

#[tokio::test]
async fn the_store_connects_over_tls_when_the_url_asks_for_it() {
    let url = quire_store::testing::fresh_postgres_database().await;
    let database = url.rsplit('/').next().unwrap().to_string();
    let store = quire_store::open(&format!("{url}?sslmode=require"), StoreOptions::default())
        .await
        .expect("the local server offers TLS (ssl = on); sslmode=require must connect");
    let outcome = store
        .append(AppendRequest {
            stream_id: "tls-1".into(),
            expected: ExpectedVersion::NoStream,
            events: vec![quire_store::testing::event("Checked", 1)],
            command: None,
        })
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        quire_store::AppendOutcome::Appended { .. }
    ));

    // Every connection the store holds to its database is encrypted.
    let mut admin = sqlx::PgConnection::connect(&quire_store::testing::postgres_admin_url())
        .await
        .unwrap();
    let (connections, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1",
    )
    .bind(&database)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(connections > 0);
    assert_eq!(encrypted, connections);
}

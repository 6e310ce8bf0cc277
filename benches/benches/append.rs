//! Appends per second, each single-event append acknowledged only after its durable commit, with 1
//! and 64 concurrent writers on SQLite and Postgres; beside them, on the same Postgres in the same run,
//! a plain loop of single-row INSERT + COMMIT and multi-row batched INSERTs of the same rows.
//!
//! Run: `cargo bench -p quire-benches --bench append` (QUIRE_BENCH_SECONDS per scenario, default 5;
//! QUIRE_TEST_POSTGRES_URL for the server; QUIRE_BENCH_ONLY=<text> runs the scenarios whose name
//! contains it).

use std::sync::Arc;

use quire_benches::{Measurement, header, run_for, scenario_duration};
use quire_store::{
    AppendRequest, DynEventStore, EventMetadata, ExpectedVersion, NewEvent, PendingCommand,
    StoreOptions,
};
use sqlx::Connection;
use uuid::Uuid;

fn event(i: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "ReviewPosted".into(),
        schema_version: 1,
        payload: serde_json::json!({
            "review_id": Uuid::now_v7(), "member_id": Uuid::now_v7(), "rating": 4,
            "text": format!("review number {i}: a fine book, well paced, would read again"),
        }),
        metadata: EventMetadata {
            command_id: Some(Uuid::now_v7()),
            actor: Some("bench".into()),
            occurred_at: quire_store::now_micros(),
            ..EventMetadata::default()
        },
    }
}

/// Each writer appends to its own stream, one event per append, with a command record (as actors do).
async fn store_scenario(store: DynEventStore, name: &str, writers: usize) -> Measurement {
    let run = Uuid::now_v7();
    run_for(name, writers, scenario_duration(), move |w, i| {
        let store = store.clone();
        async move {
            store
                .append(AppendRequest {
                    stream_id: format!("bench-{run}-{w}"),
                    expected: ExpectedVersion::Exact(i),
                    events: vec![event(i)],
                    command: Some(PendingCommand {
                        command_id: Uuid::now_v7(),
                        fingerprint: None,
                        rejection: None,
                    }),
                })
                .await
                .expect("append");
            1
        }
    })
    .await
}

async fn raw_postgres(url: &str) -> Vec<Measurement> {
    let mut setup = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_raw (id BIGSERIAL PRIMARY KEY, stream_id TEXT NOT NULL, \
         version BIGINT NOT NULL, payload JSONB NOT NULL)",
    )
    .execute(&mut setup)
    .await
    .expect("create table");
    let mut out = Vec::new();

    let conn = Arc::new(tokio::sync::Mutex::new(
        sqlx::PgConnection::connect(url).await.expect("connect"),
    ));
    out.push(
        run_for(
            "postgres raw: single-row INSERT + COMMIT loop (1 conn)",
            1,
            scenario_duration(),
            move |_, i| {
                let conn = conn.clone();
                async move {
                    let mut conn = conn.lock().await;
                    let mut tx = conn.begin().await.expect("begin");
                    sqlx::query(
                        "INSERT INTO bench_raw (stream_id, version, payload) VALUES ($1, $2, $3)",
                    )
                    .bind("raw")
                    .bind(i as i64)
                    .bind(event(i).payload)
                    .execute(&mut *tx)
                    .await
                    .expect("insert");
                    tx.commit().await.expect("commit");
                    1
                }
            },
        )
        .await,
    );

    let conn = Arc::new(tokio::sync::Mutex::new(
        sqlx::PgConnection::connect(url).await.expect("connect"),
    ));
    out.push(
        run_for(
            "postgres raw: 100-row batched INSERT + COMMIT (1 conn)",
            1,
            scenario_duration(),
            move |_, i| {
                let conn = conn.clone();
                async move {
                    let mut conn = conn.lock().await;
                    let rows: Vec<serde_json::Value> =
                        (0..100).map(|k| event(i * 100 + k).payload).collect();
                    let mut tx = conn.begin().await.expect("begin");
                    sqlx::query(
                        "INSERT INTO bench_raw (stream_id, version, payload) \
                         SELECT 'raw', v, p FROM UNNEST($1::bigint[], $2::jsonb[]) AS t(v, p)",
                    )
                    .bind((0..100).map(|k| (i * 100 + k) as i64).collect::<Vec<_>>())
                    .bind(rows)
                    .execute(&mut *tx)
                    .await
                    .expect("insert");
                    tx.commit().await.expect("commit");
                    100
                }
            },
        )
        .await,
    );
    out
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    println!(
        "append benchmark: {:.0} s per scenario, durable single-event appends",
        scenario_duration().as_secs_f64()
    );
    header();
    let only = std::env::var("QUIRE_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| name.contains(only.as_str());
    for writers in [1, 64] {
        if !wanted(&format!("sqlite store: {writers} writer(s)")) {
            continue;
        }
        let path = dir.path().join(format!("sqlite-{writers}.db"));
        let store = quire_store::open(&path.display().to_string(), StoreOptions::default())
            .await
            .expect("open sqlite");
        let m = store_scenario(
            store,
            &format!("sqlite store: {writers} writer(s)"),
            writers,
        )
        .await;
        println!("{}", m.row());
    }
    let url = quire_store::testing::fresh_postgres_database().await;
    for writers in [1, 64] {
        if !wanted(&format!("postgres store: {writers} writer(s)")) {
            continue;
        }
        let store = quire_store::open(&url, StoreOptions::default())
            .await
            .expect("open postgres");
        let m = store_scenario(
            store,
            &format!("postgres store: {writers} writer(s)"),
            writers,
        )
        .await;
        println!("{}", m.row());
    }
    if wanted("postgres raw") {
        for m in raw_postgres(&url).await {
            println!("{}", m.row());
        }
    }
    println!("(ops are events or rows; latencies are per append call or per transaction)");
}

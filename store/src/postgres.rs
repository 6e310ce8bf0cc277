//! The Postgres backend (sqlx), for scaled deployments where several nodes share one database.
//!
//! Skipped events (BRIEF problem 1): every batch transaction first locks the single `es_head` row and
//! holds that lock until it commits. Positions are therefore assigned in commit order with no gaps, and
//! a reader that polls "position > checkpoint" can never pass an event that becomes visible later. The
//! cost is that commits are serialized across nodes; group commit (many appends per transaction)
//! recovers the throughput (see `benches/benches/append.rs` for the measured figures).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::batch::{self, BatchWriter, Pending};
use crate::codec::{decode_metadata, decode_result, encode_metadata, encode_result};
use crate::types::{
    AppendOutcome, AppendRequest, CommandRecord, Position, RecordedEvent, StoreStats, StreamInfo,
    now_micros,
};
use crate::{EventStore, StoreError, StoreOptions};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The NOTIFY channel on which commits announce the new head position.
const CHANNEL: &str = "quire_es_head";

const EVENT_COLUMNS: &str = "position, stream_id, version, event_id, event_type, schema_version, payload, metadata, recorded_at";

/// An event store in a Postgres database.
pub struct PostgresStore {
    pool: PgPool,
    queue: Option<mpsc::Sender<Pending>>,
    head: watch::Sender<Position>,
    /// Background tasks run while this is alive.
    _alive: Arc<()>,
}

impl PostgresStore {
    /// Connects, migrates (unless read-only), starts the writer and the commit listener.
    #[tracing::instrument(skip_all)]
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let connect =
            PgConnectOptions::from_str(url).map_err(StoreError::db("parsing postgres url"))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.read_connections.max(1) + 1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await
            .map_err(StoreError::db("connecting to postgres"))?;
        if !options.read_only {
            MIGRATOR
                .run(&pool)
                .await
                .map_err(StoreError::db("migrating postgres event store"))?;
        }
        let head_now = read_head(&pool).await?;
        let (head, _) = watch::channel(head_now);

        // Other nodes' commits arrive as notifications; the subscription also polls, so a lost
        // notification (listener reconnecting) only delays a reader, never loses an event.
        let mut listener = PgListener::connect_with(&pool)
            .await
            .map_err(StoreError::db("starting commit listener"))?;
        listener
            .listen(CHANNEL)
            .await
            .map_err(StoreError::db("listening for commits"))?;
        let notified = head.clone();
        let alive = Arc::new(());
        let watching = Arc::downgrade(&alive);
        tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        if let Ok(p) = n.payload().parse::<u64>() {
                            notified.send_if_modified(|h| {
                                if p > *h {
                                    *h = p;
                                    true
                                } else {
                                    false
                                }
                            });
                        }
                    }
                    // The connection dropped and was re-established; notifications in between are
                    // lost, which the subscribers' polling covers.
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%error, "commit listener failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                // The task ends with the store, not with the watch's receivers, which come and go.
                if watching.strong_count() == 0 {
                    return;
                }
            }
        });

        let queue = (!options.read_only).then(|| {
            let (tx, rx) = mpsc::channel(options.max_batch * 4);
            let writer = PostgresWriter { pool: pool.clone() };
            tokio::spawn(batch::run_writer(
                writer,
                rx,
                options.max_batch,
                head.clone(),
            ));
            tx
        });
        Ok(Self {
            pool,
            queue,
            head,
            _alive: alive,
        })
    }

    /// The connection pool, for callers that keep read models in the same database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

async fn read_head(pool: &PgPool) -> Result<Position, StoreError> {
    let head: i64 = sqlx::query_scalar("SELECT position FROM es_head WHERE id = 1")
        .fetch_one(pool)
        .await
        .map_err(StoreError::db("reading head position"))?;
    Ok(head as Position)
}

fn event_from_row(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    Ok(RecordedEvent {
        position: row.get::<i64, _>("position") as u64,
        stream_id: row.get("stream_id"),
        version: row.get::<i64, _>("version") as u64,
        event_id: row.get("event_id"),
        event_type: row.get("event_type"),
        schema_version: row.get::<i32, _>("schema_version") as u32,
        payload: row.get("payload"),
        metadata: decode_metadata(row.get("metadata"))?,
        recorded_at: row.get("recorded_at"),
    })
}

fn command_from_row(row: &PgRow) -> Result<CommandRecord, StoreError> {
    Ok(CommandRecord {
        command_id: row.get("command_id"),
        stream_id: row.get("stream_id"),
        fingerprint: row.get("fingerprint"),
        result: decode_result(row.get("outcome"))?,
        recorded_at: row.get("recorded_at"),
    })
}

struct PostgresWriter {
    pool: PgPool,
}

impl PostgresWriter {
    async fn write(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        batch: &[&AppendRequest],
    ) -> Result<(Vec<Result<AppendOutcome, StoreError>>, Position), StoreError> {
        let (command_ids, stream_ids, event_ids) = batch::lookups(batch);
        // The head row lock, held to commit, orders all writers of this database (all nodes).
        let head: i64 = sqlx::query_scalar(
            "UPDATE es_head SET position = position WHERE id = 1 RETURNING position",
        )
        .fetch_one(&mut **tx)
        .await
        .map_err(StoreError::db("locking head position"))?;

        let mut known = HashMap::new();
        if !command_ids.is_empty() {
            for row in sqlx::query("SELECT * FROM es_commands WHERE command_id = ANY($1)")
                .bind(&command_ids)
                .fetch_all(&mut **tx)
                .await
                .map_err(StoreError::db("reading command outcomes"))?
            {
                let record = command_from_row(&row)?;
                known.insert(record.command_id, record);
            }
        }
        let mut versions = HashMap::new();
        for row in sqlx::query(
            "SELECT stream_id, version, last_position FROM es_streams WHERE stream_id = ANY($1)",
        )
        .bind(&stream_ids)
        .fetch_all(&mut **tx)
        .await
        .map_err(StoreError::db("reading stream versions"))?
        {
            versions.insert(
                row.get::<String, _>(0),
                (row.get::<i64, _>(1) as u64, row.get::<i64, _>(2) as u64),
            );
        }
        let stored_ids: HashSet<Uuid> = if event_ids.is_empty() {
            HashSet::new()
        } else {
            sqlx::query_scalar("SELECT event_id FROM es_events WHERE event_id = ANY($1)")
                .bind(&event_ids)
                .fetch_all(&mut **tx)
                .await
                .map_err(StoreError::db("checking event ids"))?
                .into_iter()
                .collect()
        };

        let now = now_micros();
        let plan = batch::plan(batch, known, stored_ids, versions, head as Position, now);

        if !plan.events.is_empty() {
            let e = &plan.events;
            sqlx::query(&format!(
                "INSERT INTO es_events ({EVENT_COLUMNS}) SELECT * FROM UNNEST(\
                 $1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::int[], \
                 $7::jsonb[], $8::jsonb[], $9::bigint[])"
            ))
            .bind(e.iter().map(|e| e.position as i64).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.stream_id.clone()).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.version as i64).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.event_id).collect::<Vec<_>>())
            .bind(e.iter().map(|e| e.event_type.clone()).collect::<Vec<_>>())
            .bind(
                e.iter()
                    .map(|e| e.schema_version as i32)
                    .collect::<Vec<_>>(),
            )
            .bind(e.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
            .bind(
                e.iter()
                    .map(|e| encode_metadata(&e.metadata))
                    .collect::<Vec<_>>(),
            )
            .bind(vec![now; e.len()])
            .execute(&mut **tx)
            .await
            .map_err(StoreError::db("inserting events"))?;
        }
        if !plan.streams.is_empty() {
            let s = &plan.streams;
            sqlx::query(
                "INSERT INTO es_streams (stream_id, version, last_position, updated_at) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) \
                 ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, \
                 last_position = EXCLUDED.last_position, updated_at = EXCLUDED.updated_at",
            )
            .bind(s.iter().map(|s| s.0.clone()).collect::<Vec<_>>())
            .bind(s.iter().map(|s| s.1 as i64).collect::<Vec<_>>())
            .bind(s.iter().map(|s| s.2 as i64).collect::<Vec<_>>())
            .bind(vec![now; s.len()])
            .execute(&mut **tx)
            .await
            .map_err(StoreError::db("updating stream versions"))?;
        }
        if !plan.commands.is_empty() {
            let c = &plan.commands;
            sqlx::query(
                "INSERT INTO es_commands (command_id, stream_id, fingerprint, outcome, recorded_at) \
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bigint[])",
            )
            .bind(c.iter().map(|c| c.command_id).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.stream_id.clone()).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.fingerprint.clone()).collect::<Vec<_>>())
            .bind(c.iter().map(|c| encode_result(&c.result)).collect::<Vec<_>>())
            .bind(vec![now; c.len()])
            .execute(&mut **tx)
            .await
            .map_err(StoreError::db("recording command outcomes"))?;
        }
        if plan.new_head != head as Position {
            sqlx::query("UPDATE es_head SET position = $1 WHERE id = 1")
                .bind(plan.new_head as i64)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::db("advancing head position"))?;
            // NOTIFY is delivered at commit, and only if the transaction commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(plan.new_head.to_string())
                .execute(&mut **tx)
                .await
                .map_err(StoreError::db("notifying commit"))?;
        }
        Ok((plan.outcomes, plan.new_head))
    }
}

impl BatchWriter for PostgresWriter {
    async fn write_batch(
        &mut self,
        batch: &[&AppendRequest],
    ) -> Result<(Vec<Result<AppendOutcome, StoreError>>, Position), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::db("beginning postgres transaction"))?;
        let result = self.write(&mut tx, batch).await?;
        tx.commit()
            .await
            .map_err(StoreError::db("committing postgres transaction"))?;
        Ok(result)
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    #[tracing::instrument(name = "store.append", skip_all, fields(backend = "postgres", stream = %request.stream_id, events = request.events.len()))]
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let queue = self.queue.as_ref().ok_or(StoreError::ReadOnly)?;
        batch::submit(queue, request).await
    }

    #[tracing::instrument(name = "store.read_stream", skip(self), fields(backend = "postgres"))]
    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM es_events WHERE stream_id = $1 AND version > $2 \
             ORDER BY version LIMIT $3"
        ))
        .bind(stream_id)
        .bind(after_version as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db("reading stream"))?;
        rows.iter().map(event_from_row).collect()
    }

    #[tracing::instrument(name = "store.read_all", skip(self), fields(backend = "postgres"))]
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM es_events WHERE position > $1 ORDER BY position LIMIT $2"
        ))
        .bind(after as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db("reading global log"))?;
        rows.iter().map(event_from_row).collect()
    }

    async fn head(&self) -> Result<Position, StoreError> {
        read_head(&self.pool).await
    }

    fn head_watch(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }

    #[tracing::instrument(name = "store.command", skip(self), fields(backend = "postgres"))]
    async fn command(&self, command_id: Uuid) -> Result<Option<CommandRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM es_commands WHERE command_id = $1")
            .bind(command_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::db("reading command outcome"))?;
        row.as_ref().map(command_from_row).transpose()
    }

    async fn streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT stream_id, version, last_position, updated_at FROM es_streams \
             WHERE starts_with(stream_id, $1) AND stream_id > $2 ORDER BY stream_id LIMIT $3",
        )
        .bind(prefix)
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db("listing streams"))?;
        Ok(rows
            .iter()
            .map(|r| StreamInfo {
                stream_id: r.get(0),
                version: r.get::<i64, _>(1) as u64,
                last_position: r.get::<i64, _>(2) as u64,
                updated_at: r.get(3),
            })
            .collect())
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM es_events")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::db("counting events"))?;
        let streams: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM es_streams")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::db("counting streams"))?;
        let commands: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM es_commands")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::db("counting commands"))?;
        let by_type: Vec<(String, i64)> = sqlx::query_as(
            "SELECT event_type, COUNT(*) AS n FROM es_events GROUP BY event_type ORDER BY n DESC, event_type",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db("counting event types"))?;
        let size: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(pg_total_relation_size(c)), 0)::bigint FROM \
             unnest(ARRAY['es_events', 'es_streams', 'es_commands']::regclass[]) AS c",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::db("measuring table sizes"))?;
        Ok(StoreStats {
            backend: "postgres".into(),
            events: events as u64,
            streams: streams as u64,
            commands: commands as u64,
            head: read_head(&self.pool).await?,
            by_type: by_type.into_iter().map(|(t, n)| (t, n as u64)).collect(),
            size_bytes: Some(size as u64),
        })
    }
}

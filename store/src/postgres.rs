//! The Postgres backend (sqlx), for scaled deployments where several nodes share one database.
//!
//! Skipped events (commit order must equal position order): every batch transaction first locks the
//! single `es_head` row and holds that lock until it commits. Positions are therefore assigned in
//! commit order with no gaps, and a reader that polls "position > checkpoint" can never pass an event
//! that becomes visible later. The cost is that commits are serialized across nodes; group commit
//! (many appends per transaction) recovers the throughput (see `benches/benches/append.rs` for the
//! measured figures).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Executor, Postgres, Row};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::batch::{self, BatchResult, BatchWriter, Pending};
use crate::codec::{decode_metadata, decode_result, encode_metadata, encode_result};
use crate::types::{
    AppendOutcome, AppendRequest, CommandRecord, Position, RecordedEvent, StoreStats, StreamInfo,
    now_micros,
};
use crate::{EventStore, StoreError, StoreOptions};

/// The event store's migrations. A newer release's migrations already applied are tolerated, so
/// that during a rolling upgrade (or a rollback) an older node still starts: migrations are
/// additive, and a release only drops what the release before it stopped using (README,
/// "Upgrading").
static MIGRATOR: std::sync::LazyLock<sqlx::migrate::Migrator> = std::sync::LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("./migrations/postgres");
    migrator.set_ignore_missing(true);
    migrator
});

/// The NOTIFY channel on which commits announce the new head position (also named in `WRITES`).
const CHANNEL: &str = "quire_es_head";

const EVENT_COLUMNS: &str = "position, stream_id, version, event_id, event_type, schema_version, payload, metadata, recorded_at";

/// How long a query waits for a pooled connection, opening one included. While the database is
/// down or unreachable every query meets this bound, so it is what a client waits before the
/// store answers "unavailable" (a 503 with Retry-After): short, yet far above a healthy wait.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the first connection at start may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An event store in a Postgres database.
pub struct PostgresStore {
    pool: PgPool,
    queue: Option<mpsc::Sender<Pending>>,
    head: watch::Sender<Position>,
    /// The writer's last commit failure, while it lasts.
    write_health: batch::WriteHealth,
    /// Background tasks run while this is alive.
    _alive: Arc<()>,
}

impl PostgresStore {
    /// Connects, migrates (unless read-only), starts the writer and the commit listener.
    #[tracing::instrument(skip_all)]
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let connect =
            PgConnectOptions::from_str(url).map_err(StoreError::db("parsing postgres url"))?;
        // One direct connection first: a pool only says "timed out", hiding why (refused, bad
        // password, no such database), which is what an operator needs to read. Bounded, so an
        // unreachable host fails the start instead of hanging on the OS's TCP timeout.
        tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&connect))
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "connecting to postgres: no answer within {CONNECT_TIMEOUT:?}"
                ))
            })?
            .map_err(StoreError::db("connecting to postgres"))?
            .close()
            .await
            .map_err(StoreError::db("connecting to postgres"))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.read_connections.max(1) + 1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
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
                            crate::raise_head(&notified, p);
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

        let write_health = batch::WriteHealth::default();
        let queue = (!options.read_only).then(|| {
            let (tx, rx) = mpsc::channel(options.max_batch * 4);
            let writer = PostgresWriter {
                pool: pool.clone(),
                conn: None,
            };
            tokio::spawn(batch::run_writer(
                writer,
                rx,
                options.max_batch,
                head.clone(),
                write_health.clone(),
            ));
            tx
        });
        Ok(Self {
            pool,
            queue,
            head,
            write_health,
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

/// The writer's own connection: batches run on it one at a time, four round trips each.
struct PostgresWriter {
    pool: PgPool,
    conn: Option<PoolConnection<Postgres>>,
}

/// The facts a batch needs, fetched in one call (see migration 0002 for why it is a function).
const LOOKUPS: &str = "SELECT commands, streams, stored FROM es_batch_facts($1, $2, $3)";

/// Every write of a batch in one statement: data-modifying CTEs always run to completion, and the
/// NOTIFY is delivered only if the transaction commits.
const WRITES: &str = "WITH ev AS ( \
    INSERT INTO es_events (position, stream_id, version, event_id, event_type, schema_version, \
        payload, metadata, recorded_at) \
    SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::int[], \
        $7::jsonb[], $8::json[], $9::bigint[])), \
st AS ( \
    INSERT INTO es_streams (stream_id, version, last_position, updated_at) \
    SELECT * FROM UNNEST($10::text[], $11::bigint[], $12::bigint[], $13::bigint[]) \
    ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, \
        last_position = EXCLUDED.last_position, updated_at = EXCLUDED.updated_at), \
cm AS ( \
    INSERT INTO es_commands (command_id, stream_id, fingerprint, outcome, recorded_at) \
    SELECT * FROM UNNEST($14::uuid[], $15::text[], $16::text[], $17::json[], $18::bigint[])), \
hd AS ( \
    UPDATE es_head SET position = $19 WHERE id = 1 AND position < $19) \
SELECT pg_notify('quire_es_head', $19::text) WHERE $19 > $20";

#[derive(serde::Deserialize)]
struct CommandRow {
    command_id: Uuid,
    stream_id: String,
    fingerprint: Option<String>,
    outcome: serde_json::Value,
    recorded_at: i64,
}

impl PostgresWriter {
    async fn write(conn: &mut PgConnection, batch: &[&AppendRequest]) -> BatchResult {
        let (command_ids, stream_ids, event_ids) = batch::lookups(batch);
        // Round trip 1: begin, and take the head row lock that orders all writers of this database
        // (all nodes) until commit. The simple-query protocol sends both statements at once. The
        // lookups must be a later statement: in READ COMMITTED each statement takes a fresh snapshot,
        // so they see everything committed before the lock was granted.
        let rows = (&mut *conn)
            .fetch_all("BEGIN; SELECT position FROM es_head WHERE id = 1 FOR UPDATE")
            .await
            .map_err(StoreError::db("beginning transaction and locking head"))?;
        let head: i64 = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("es_head has no row".into()))?
            .try_get(0)
            .map_err(StoreError::db("reading head position"))?;

        // Round trip 2: what the batch needs to know.
        let (commands, streams, stored): (serde_json::Value, serde_json::Value, Vec<Uuid>) =
            sqlx::query_as(LOOKUPS)
                .bind(&command_ids)
                .bind(&stream_ids)
                .bind(&event_ids)
                .fetch_one(&mut *conn)
                .await
                .map_err(StoreError::db("reading batch facts"))?;
        let commands: Vec<CommandRow> = serde_json::from_value(commands)
            .map_err(|e| StoreError::Corrupt(format!("command rows: {e}")))?;
        let mut known = HashMap::new();
        for c in commands {
            known.insert(
                c.command_id,
                CommandRecord {
                    command_id: c.command_id,
                    stream_id: c.stream_id,
                    fingerprint: c.fingerprint,
                    result: decode_result(c.outcome)?,
                    recorded_at: c.recorded_at,
                },
            );
        }
        let streams: Vec<(String, i64, i64)> = serde_json::from_value(streams)
            .map_err(|e| StoreError::Corrupt(format!("stream rows: {e}")))?;
        let versions: HashMap<String, (u64, Position)> = streams
            .into_iter()
            .map(|(id, v, p)| (id, (v as u64, p as u64)))
            .collect();
        let stored: HashSet<Uuid> = stored.into_iter().collect();

        let now = now_micros();
        let plan = batch::plan(batch, known, stored, versions, head as Position, now);

        // Round trip 3: every write.
        let (e, st, c) = (&plan.events, &plan.streams, &plan.commands);
        sqlx::query(WRITES)
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
            .bind(st.iter().map(|s| s.0.clone()).collect::<Vec<_>>())
            .bind(st.iter().map(|s| s.1 as i64).collect::<Vec<_>>())
            .bind(st.iter().map(|s| s.2 as i64).collect::<Vec<_>>())
            .bind(vec![now; st.len()])
            .bind(c.iter().map(|c| c.command_id).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.stream_id.clone()).collect::<Vec<_>>())
            .bind(c.iter().map(|c| c.fingerprint.clone()).collect::<Vec<_>>())
            .bind(
                c.iter()
                    .map(|c| encode_result(&c.result))
                    .collect::<Vec<_>>(),
            )
            .bind(vec![now; c.len()])
            .bind(plan.new_head as i64)
            .bind(head)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db("writing batch"))?;

        // Round trip 4: the durable commit; callers are answered only after it.
        (&mut *conn)
            .execute("COMMIT")
            .await
            .map_err(StoreError::db("committing batch"))?;
        Ok((plan.outcomes, plan.new_head))
    }
}

impl BatchWriter for PostgresWriter {
    async fn write_batch(&mut self, batch: &[&AppendRequest]) -> BatchResult {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(
                self.pool
                    .acquire()
                    .await
                    .map_err(StoreError::db("acquiring writer connection"))?,
            ),
        };
        let result = Self::write(conn, batch).await;
        if result.is_err() {
            // Leave no transaction open; a connection that cannot even roll back is replaced.
            if (&mut **conn).execute("ROLLBACK").await.is_err()
                && let Some(conn) = self.conn.take()
            {
                drop(conn.detach());
            }
        }
        result
    }

    /// Data exceptions (SQLSTATE class 22: `\u0000` in `jsonb`, NUL in `text`, an invalid
    /// value), integrity constraint violations (23) and program limits (54: a value too large
    /// to index or store) are about what a request carries.
    fn refused_data(&self, error: &StoreError) -> bool {
        batch::database_error(error)
            .and_then(|db| db.code())
            .is_some_and(|state| {
                ["22", "23", "54"]
                    .iter()
                    .any(|class| state.starts_with(class))
            })
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    fn write_failure(&self) -> Option<String> {
        self.write_health.lock().ok().and_then(|h| h.clone())
    }

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

    #[tracing::instrument(
        name = "store.read_all",
        level = "debug",
        skip(self),
        fields(backend = "postgres")
    )]
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

    fn observe_head(&self, position: Position) {
        crate::raise_head(&self.head, position);
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

//! The SQLite backend: the embedded default, one file in WAL mode with `synchronous=FULL`, so an
//! acknowledged append has been fsynced.
//!
//! One writer task owns the only write connection and commits batches (group commit); reads use a pool
//! of read-only connections, which WAL lets run beside the writer and beside other processes (the
//! `quire events` tools on a live data directory).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::batch::{self, BatchResult, BatchWriter, Pending};
use crate::codec::{decode_metadata, decode_result, encode_result};
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
    let mut migrator = sqlx::migrate!("./migrations/sqlite");
    migrator.set_ignore_missing(true);
    migrator
});

const EVENT_COLUMNS: &str = "position, stream_id, version, event_id, event_type, schema_version, payload, metadata, recorded_at";

/// An event store in one SQLite file.
pub struct SqliteStore {
    reads: SqlitePool,
    queue: Option<mpsc::Sender<Pending>>,
    head: watch::Sender<Position>,
    /// The writer's last commit failure, while it lasts.
    write_health: batch::WriteHealth,
    path: std::path::PathBuf,
    /// Background tasks run while this is alive.
    _alive: Arc<()>,
}

impl SqliteStore {
    /// Opens (creating if needed, unless read-only) the store at `path` and starts its writer.
    #[tracing::instrument(skip(options), fields(path = %path.display()))]
    pub async fn open(path: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        if !options.read_only {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(StoreError::db("creating data directory"))?;
            }
        } else if !path.exists() {
            return Err(StoreError::Config(format!(
                "no event store at {}",
                path.display()
            )));
        }
        let base = file_options(path)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Multi-row statements inside a transaction keep a statement journal so they can be
            // undone alone; in memory it costs no file writes (profiled: it was a visible share of
            // the writer's time).
            .pragma("temp_store", "memory");

        let queue = if options.read_only {
            None
        } else {
            // The writer's page cache holds the hot pages of the indexes it inserts into (event ids
            // are random, so their index is touched all over); with SQLite's default 2 MB, a bulk
            // import re-read index pages from the OS for most inserts (profiled: a tenth of the
            // writer's time). 32 MB is a bound, reached only as the log grows.
            let writer = base
                .clone()
                .create_if_missing(true)
                .pragma("cache_size", "-32768");
            let mut conn = SqliteConnection::connect_with(&writer)
                .await
                .map_err(StoreError::db("opening sqlite event store"))?;
            MIGRATOR
                .run(&mut conn)
                .await
                .map_err(StoreError::db("migrating sqlite event store"))?;
            Some(conn)
        };

        let reads = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .connect_with(base.read_only(true))
            .await
            .map_err(StoreError::db("opening sqlite read pool"))?;
        let head_now = read_head(&reads).await?;
        let (head, _) = watch::channel(head_now);

        let alive = Arc::new(());
        let write_health = batch::WriteHealth::default();
        let queue = queue.map(|conn| {
            let (tx, rx) = mpsc::channel(options.max_batch * 4);
            let writer = SqliteWriter { conn };
            tokio::spawn(batch::run_writer(
                writer,
                rx,
                options.max_batch,
                head.clone(),
                write_health.clone(),
            ));
            tx
        });
        if queue.is_none() {
            // A read-only store cannot be told of another process's commits; poll the head so
            // `head_watch` still moves for followers such as `quire events tail --follow`.
            let reads = reads.clone();
            let head = head.clone();
            let alive = Arc::downgrade(&alive);
            tokio::spawn(async move {
                // The task ends with the store (its liveness token), not with the watch's
                // receivers, which come and go.
                while alive.strong_count() > 0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if let Ok(now) = read_head(&reads).await {
                        head.send_if_modified(|h| std::mem::replace(h, now) != now);
                    }
                }
            });
        }
        Ok(Self {
            reads,
            queue,
            head,
            write_health,
            path: path.to_path_buf(),
            _alive: alive,
        })
    }
}

async fn read_head(pool: &SqlitePool) -> Result<Position, StoreError> {
    let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM es_events")
        .fetch_one(pool)
        .await
        .map_err(StoreError::db("reading head position"))?;
    Ok(head as Position)
}

fn event_from_row(row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
    let event_id: String = row.get("event_id");
    let payload: String = row.get("payload");
    let metadata: String = row.get("metadata");
    Ok(RecordedEvent {
        position: row.get::<i64, _>("position") as u64,
        stream_id: row.get("stream_id"),
        version: row.get::<i64, _>("version") as u64,
        event_id: Uuid::parse_str(&event_id)
            .map_err(|e| StoreError::Corrupt(format!("event id {event_id}: {e}")))?,
        event_type: row.get("event_type"),
        schema_version: row.get::<i64, _>("schema_version") as u32,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("event payload: {e}")))?,
        metadata: decode_metadata(
            serde_json::from_str(&metadata)
                .map_err(|e| StoreError::Corrupt(format!("event metadata: {e}")))?,
        )?,
        recorded_at: row.get("recorded_at"),
    })
}

fn command_from_row(row: &SqliteRow) -> Result<CommandRecord, StoreError> {
    let id: String = row.get("command_id");
    let outcome: String = row.get("outcome");
    Ok(CommandRecord {
        command_id: Uuid::parse_str(&id)
            .map_err(|e| StoreError::Corrupt(format!("command id {id}: {e}")))?,
        stream_id: row.get("stream_id"),
        fingerprint: row.get("fingerprint"),
        result: decode_result(
            serde_json::from_str(&outcome)
                .map_err(|e| StoreError::Corrupt(format!("command outcome: {e}")))?,
        )?,
        recorded_at: row.get("recorded_at"),
    })
}

struct SqliteWriter {
    conn: SqliteConnection,
}

/// The facts a batch needs, in one statement: the head, then known commands, stream versions and
/// stored event ids. Every statement the writer runs has a fixed text (lists travel as one JSON
/// argument read with `json_each`), so each is prepared once and cached, whatever the batch size.
const LOOKUPS: &str = "\
    SELECT 'h' AS kind, COALESCE(MAX(position), 0) AS a, NULL AS b, NULL AS c, NULL AS d, NULL AS e \
      FROM es_events \
    UNION ALL \
    SELECT 'c', command_id, stream_id, fingerprint, outcome, recorded_at FROM es_commands \
      WHERE command_id IN (SELECT value FROM json_each(?1)) \
    UNION ALL \
    SELECT 's', stream_id, version, last_position, NULL, NULL FROM es_streams \
      WHERE stream_id IN (SELECT value FROM json_each(?2)) \
    UNION ALL \
    SELECT 'e', event_id, NULL, NULL, NULL, NULL FROM es_events \
      WHERE event_id IN (SELECT value FROM json_each(?3))";

const INSERT_EVENTS: &str = "\
    INSERT INTO es_events (position, stream_id, version, event_id, event_type, schema_version, \
        payload, metadata, recorded_at) \
    SELECT value ->> '$[0]', value ->> '$[1]', value ->> '$[2]', value ->> '$[3]', value ->> '$[4]', \
        value ->> '$[5]', value -> '$[6]', value -> '$[7]', ?2 \
    FROM json_each(?1)";

const UPSERT_STREAMS: &str = "\
    INSERT INTO es_streams (stream_id, version, last_position, updated_at) \
    SELECT value ->> '$[0]', value ->> '$[1]', value ->> '$[2]', ?2 FROM json_each(?1) WHERE true \
    ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, \
        last_position = excluded.last_position, updated_at = excluded.updated_at";

const INSERT_COMMANDS: &str = "\
    INSERT INTO es_commands (command_id, stream_id, fingerprint, outcome, recorded_at) \
    SELECT value ->> '$[0]', value ->> '$[1]', value ->> '$[2]', value -> '$[3]', ?2 \
    FROM json_each(?1)";

impl SqliteWriter {
    async fn write(&mut self, batch: &[&AppendRequest]) -> BatchResult {
        let (command_ids, stream_ids, event_ids) = batch::lookups(batch);
        let conn = &mut self.conn;
        // IMMEDIATE takes the write lock now, so the head and versions read below cannot change
        // under us even if another process writes the same file.
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db("beginning sqlite transaction"))?;

        let ids = |v: &[Uuid]| {
            serde_json::Value::from(v.iter().map(Uuid::to_string).collect::<Vec<_>>()).to_string()
        };
        let rows = sqlx::query(LOOKUPS)
            .bind(ids(&command_ids))
            .bind(serde_json::Value::from(stream_ids).to_string())
            .bind(ids(&event_ids))
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::db("reading batch facts"))?;
        let mut head = 0u64;
        let mut known = HashMap::new();
        let mut versions = HashMap::new();
        let mut stored_ids = HashSet::new();
        for row in &rows {
            match row.get::<&str, _>(0) {
                "h" => head = row.get::<i64, _>(1) as u64,
                "c" => {
                    let id: String = row.get(1);
                    let outcome: String = row.get(4);
                    let record = CommandRecord {
                        command_id: Uuid::parse_str(&id)
                            .map_err(|e| StoreError::Corrupt(format!("command id {id}: {e}")))?,
                        stream_id: row.get(2),
                        fingerprint: row.get(3),
                        result: decode_result(
                            serde_json::from_str(&outcome).map_err(|e| {
                                StoreError::Corrupt(format!("command outcome: {e}"))
                            })?,
                        )?,
                        recorded_at: row.get(5),
                    };
                    known.insert(record.command_id, record);
                }
                "s" => {
                    versions.insert(
                        row.get::<String, _>(1),
                        (row.get::<i64, _>(2) as u64, row.get::<i64, _>(3) as u64),
                    );
                }
                _ => {
                    if let Ok(id) = Uuid::parse_str(row.get::<&str, _>(1)) {
                        stored_ids.insert(id);
                    }
                }
            }
        }

        let now = now_micros();
        let plan = batch::plan(batch, known, stored_ids, versions, head, now);

        if !plan.events.is_empty() {
            // Written straight to JSON text: no intermediate `Value` copy of every payload.
            let rows: Vec<_> = plan
                .events
                .iter()
                .map(|e| {
                    (
                        e.position,
                        &e.stream_id,
                        e.version,
                        e.event_id,
                        &e.event_type,
                        e.schema_version,
                        &e.payload,
                        &e.metadata,
                    )
                })
                .collect();
            let rows = serde_json::to_string(&rows).expect("event rows always serialize");
            sqlx::query(INSERT_EVENTS)
                .bind(rows)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::db("inserting events"))?;
        }
        if !plan.streams.is_empty() {
            let rows: Vec<serde_json::Value> = plan
                .streams
                .iter()
                .map(|(id, version, last)| serde_json::json!([id, version, last]))
                .collect();
            sqlx::query(UPSERT_STREAMS)
                .bind(serde_json::Value::from(rows).to_string())
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::db("updating stream versions"))?;
        }
        if !plan.commands.is_empty() {
            let rows: Vec<serde_json::Value> = plan
                .commands
                .iter()
                .map(|c| {
                    serde_json::json!([
                        c.command_id.to_string(),
                        c.stream_id,
                        c.fingerprint,
                        encode_result(&c.result),
                    ])
                })
                .collect();
            sqlx::query(INSERT_COMMANDS)
                .bind(serde_json::Value::from(rows).to_string())
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::db("recording command outcomes"))?;
        }
        sqlx::query("COMMIT")
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db("committing sqlite transaction"))?;
        Ok((plan.outcomes, plan.new_head))
    }
}

impl BatchWriter for SqliteWriter {
    async fn write_batch(&mut self, batch: &[&AppendRequest]) -> BatchResult {
        let result = self.write(batch).await;
        if result.is_err() {
            // Leave the connection clean for the next batch; a failed ROLLBACK (no transaction
            // open) is expected when BEGIN itself failed.
            let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
        }
        result
    }

    /// By primary result code: TOOBIG, CONSTRAINT, MISMATCH and RANGE are about what a request
    /// carries, and so is the generic SQLITE_ERROR when the JSON functions raise it (a payload
    /// nested deeper than they read). BUSY, IOERR, FULL and the like are the database, not the
    /// data.
    fn refused_data(&self, error: &StoreError) -> bool {
        let Some(db) = batch::database_error(error) else {
            return false;
        };
        match db.code().and_then(|code| code.parse::<i32>().ok()) {
            Some(code) => match code & 0xff {
                18 | 19 | 20 | 25 => true,
                1 => db.message().contains("JSON"),
                _ => false,
            },
            None => false,
        }
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    fn write_failure(&self) -> Option<String> {
        self.write_health.lock().ok().and_then(|h| h.clone())
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    #[tracing::instrument(name = "store.append", skip_all, fields(backend = "sqlite", stream = %request.stream_id, events = request.events.len()))]
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let queue = self.queue.as_ref().ok_or(StoreError::ReadOnly)?;
        batch::submit(queue, request).await
    }

    #[tracing::instrument(name = "store.read_stream", skip(self), fields(backend = "sqlite"))]
    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM es_events WHERE stream_id = ? AND version > ? \
             ORDER BY version LIMIT ?"
        ))
        .bind(stream_id)
        .bind(after_version as i64)
        .bind(limit as i64)
        .fetch_all(&self.reads)
        .await
        .map_err(StoreError::db("reading stream"))?;
        rows.iter().map(event_from_row).collect()
    }

    #[tracing::instrument(
        name = "store.read_all",
        level = "debug",
        skip(self),
        fields(backend = "sqlite")
    )]
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM es_events WHERE position > ? ORDER BY position LIMIT ?"
        ))
        .bind(after as i64)
        .bind(limit as i64)
        .fetch_all(&self.reads)
        .await
        .map_err(StoreError::db("reading global log"))?;
        rows.iter().map(event_from_row).collect()
    }

    async fn head(&self) -> Result<Position, StoreError> {
        read_head(&self.reads).await
    }

    fn head_watch(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }

    fn observe_head(&self, position: Position) {
        crate::raise_head(&self.head, position);
    }

    #[tracing::instrument(name = "store.command", skip(self), fields(backend = "sqlite"))]
    async fn command(&self, command_id: Uuid) -> Result<Option<CommandRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM es_commands WHERE command_id = ?")
            .bind(command_id.to_string())
            .fetch_optional(&self.reads)
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
        // A range scan on the primary key instead of LIKE, so '%' and '_' in ids are not patterns.
        let upper = format!("{prefix}\u{10FFFF}");
        let rows = sqlx::query(
            "SELECT stream_id, version, last_position, updated_at FROM es_streams \
             WHERE stream_id >= ? AND stream_id < ? AND stream_id > ? ORDER BY stream_id LIMIT ?",
        )
        .bind(prefix)
        .bind(upper)
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.reads)
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
        let (events, head): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COALESCE(MAX(position), 0) FROM es_events")
                .fetch_one(&self.reads)
                .await
                .map_err(StoreError::db("counting events"))?;
        let streams: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM es_streams")
            .fetch_one(&self.reads)
            .await
            .map_err(StoreError::db("counting streams"))?;
        let commands: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM es_commands")
            .fetch_one(&self.reads)
            .await
            .map_err(StoreError::db("counting commands"))?;
        let by_type: Vec<(String, i64)> = sqlx::query_as(
            "SELECT event_type, COUNT(*) AS n FROM es_events GROUP BY event_type ORDER BY n DESC, event_type",
        )
        .fetch_all(&self.reads)
        .await
        .map_err(StoreError::db("counting event types"))?;
        let size = ["", "-wal"]
            .iter()
            .filter_map(|suffix| {
                let mut p = self.path.clone().into_os_string();
                p.push(suffix);
                std::fs::metadata(p).ok().map(|m| m.len())
            })
            .sum();
        Ok(StoreStats {
            backend: "sqlite".into(),
            events: events as u64,
            streams: streams as u64,
            commands: commands as u64,
            head: head as u64,
            by_type: by_type.into_iter().map(|(t, n)| (t, n as u64)).collect(),
            size_bytes: Some(size),
        })
    }
}

/// Connection options for the SQLite file at `path`.
fn file_options(path: &Path) -> Result<SqliteConnectOptions, StoreError> {
    SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(StoreError::db("parsing sqlite path"))
}

/// Copies the SQLite event store at `from` to a new file `to`, consistently while writers run
/// (`VACUUM INTO` reads one snapshot: every committed event up to a point, nothing after), and
/// returns the head position the copy holds. `to` must not exist.
#[tracing::instrument(fields(from = %from.display(), to = %to.display()))]
pub async fn backup(from: &Path, to: &Path) -> Result<Position, StoreError> {
    if to.exists() {
        return Err(StoreError::Config(format!(
            "{} exists already: a backup never overwrites",
            to.display()
        )));
    }
    let options = file_options(from)?
        .read_only(true)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(StoreError::db("opening the event store to back up"))?;
    sqlx::query("VACUUM INTO ?1")
        .bind(to.display().to_string())
        .execute(&mut conn)
        .await
        .map_err(StoreError::db("copying the event store"))?;
    drop(conn);
    verify(to).await
}

/// Checks that `path` is a whole, uncorrupted SQLite event store (`PRAGMA integrity_check` and
/// the store's schema), puts it in WAL mode as the store runs it (`VACUUM INTO` writes a
/// rollback-journal file, which read-only connections could not then open), and returns its head
/// position.
pub async fn verify(path: &Path) -> Result<Position, StoreError> {
    let options = file_options(path)?
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Wal);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(StoreError::db("opening the event store file"))?;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .map_err(StoreError::db("checking the event store file"))?;
    if check != "ok" {
        return Err(StoreError::Corrupt(format!(
            "{} fails SQLite's integrity check: {check}",
            path.display()
        )));
    }
    let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM es_events")
        .fetch_one(&mut conn)
        .await
        .map_err(|_| {
            StoreError::Config(format!("{} is not a Quire event store", path.display()))
        })?;
    conn.close()
        .await
        .map_err(StoreError::db("closing the event store file"))?;
    Ok(head as Position)
}

//! The two read-model databases behind one small interface: pools, migrations, and transactions.
//!
//! Both backends run the same SQL text wherever the dialects agree (`$n` parameters work in both);
//! where they differ (set-returning JSON functions, locking), [`Backend`] supplies the fragment.
//! Lists travel to the database as one JSON argument, so multi-row statements have a fixed text and
//! are prepared once per connection.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Executor, Postgres, Sqlite};

use crate::{ProjectionName, ReadModelError};

/// How long a Postgres query waits for a pooled connection, opening one included. While the
/// database is down or unreachable every query meets this bound, so it is what a client waits
/// before the API answers 503 with Retry-After: short, yet far above a healthy wait.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the first Postgres connection at start may take.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which database holds the read models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A row source over the JSON array of arrays in parameter `n`; columns are `j.value->>k`.
    /// In Postgres it is `rm_rows` (migration 0010), which tells the planner a batch is a few rows,
    /// so joins with read-model tables go through their keys.
    pub(crate) fn rows(self, n: usize) -> String {
        match self {
            Self::Sqlite => format!("json_each(${n}) AS j"),
            Self::Postgres => format!("rm_rows(${n}::json) AS j(value)"),
        }
    }

    /// A row source over the JSON array of strings in parameter `n`; the column is `j.value`.
    pub(crate) fn texts(self, n: usize) -> String {
        match self {
            Self::Sqlite => format!("json_each(${n}) AS j"),
            Self::Postgres => format!("rm_texts(${n}::json) AS j(value)"),
        }
    }

    /// The statement that reads a checkpoint at the start of a transaction and locks it until commit
    /// (SQLite's `BEGIN IMMEDIATE` already holds the database's write lock).
    pub(crate) fn lock_checkpoint(self) -> &'static str {
        match self {
            Self::Sqlite => "SELECT position FROM rm_checkpoints WHERE projection = $1",
            Self::Postgres => {
                "SELECT position FROM rm_checkpoints WHERE projection = $1 FOR UPDATE"
            }
        }
    }
}

/// The pools, and what this process has learnt of the database's health from its errors.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pub(crate) pools: Pools,
    health: Arc<Health>,
}

/// What the errors of queries and runners said about the read-model database.
#[derive(Debug)]
struct Health {
    /// Set by the first error that says the database is damaged; a damaged file stays damaged
    /// until it is replaced (at the next start) or rebuilt.
    damage: Mutex<Option<String>>,
    /// The error each local runner's last batch failed with, in [`ProjectionName::ALL`] order;
    /// kept here too because a database that cannot be written cannot record it either.
    failing: Mutex<Vec<Option<(String, i64)>>>,
}

/// The pools.
#[derive(Debug, Clone)]
pub(crate) enum Pools {
    /// One write connection (SQLite has one writer; queuing on the pool beats its busy handler)
    /// and a pool of read-only connections. `write` is `None` when opened read-only.
    Sqlite {
        write: Option<SqlitePool>,
        read: SqlitePool,
    },
    Postgres {
        pool: PgPool,
        read_only: bool,
    },
}

/// A value bound to a statement parameter.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    I64(i64),
    OptI64(Option<i64>),
    F64(f64),
    Text(String),
    OptText(Option<String>),
    Bool(bool),
    Bytes(Vec<u8>),
}

/// A JSON value as the text argument that carries it (a list for [`Backend::rows`], a stored
/// JSON column).
pub(crate) fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

/// Binds `args` in order to a `sqlx::query`/`query_as`/`query_scalar` builder.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                $crate::db::Arg::I64(v) => query.bind(*v),
                $crate::db::Arg::OptI64(v) => query.bind(*v),
                $crate::db::Arg::F64(v) => query.bind(*v),
                $crate::db::Arg::Text(v) => query.bind(v.as_str()),
                $crate::db::Arg::OptText(v) => query.bind(v.as_deref()),
                $crate::db::Arg::Bool(v) => query.bind(*v),
                $crate::db::Arg::Bytes(v) => query.bind(v.as_slice()),
            };
        }
        query
    }};
}
pub(crate) use bind_args;

/// Runs `$body`, a `Result<_, ReadModelError>`, with `$pool` bound to the pool that serves reads,
/// whatever the backend; an error that says the database is damaged is remembered for `/status`.
macro_rules! with_read_pool {
    ($db:expr, $pool:ident => $body:expr) => {{
        let db: &$crate::db::Db = $db;
        let result = match &db.pools {
            $crate::db::Pools::Sqlite { read: $pool, .. } => $body,
            $crate::db::Pools::Postgres { pool: $pool, .. } => $body,
        };
        db.observe(result)
    }};
}
pub(crate) use with_read_pool;

/// Runs `$body` with `$conn` bound to the transaction's connection, whatever the backend.
macro_rules! with_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::db::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

/// A read-model write transaction.
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs one statement; returns the rows it changed.
    pub(crate) async fn exec(
        &mut self,
        context: &'static str,
        sql: &str,
        args: &[Arg],
    ) -> Result<u64, ReadModelError> {
        with_tx!(self, conn => {
            let done = bind_args!(sqlx::query(sql), args)
                .execute(conn)
                .await
                .map_err(ReadModelError::db(context))?;
            Ok(done.rows_affected())
        })
    }

    /// Runs one statement that returns `(text, integer)` rows.
    pub(crate) async fn fetch_pairs(
        &mut self,
        context: &'static str,
        sql: &str,
        args: &[Arg],
    ) -> Result<Vec<(String, i64)>, ReadModelError> {
        with_tx!(self, conn => {
            bind_args!(sqlx::query_as::<_, (String, i64)>(sql), args)
                .fetch_all(conn)
                .await
                .map_err(ReadModelError::db(context))
        })
    }

    /// Runs one statement that returns at most one integer.
    pub(crate) async fn fetch_i64(
        &mut self,
        context: &'static str,
        sql: &str,
        args: &[Arg],
    ) -> Result<Option<i64>, ReadModelError> {
        with_tx!(self, conn => {
            bind_args!(sqlx::query_scalar::<_, i64>(sql), args)
                .fetch_optional(conn)
                .await
                .map_err(ReadModelError::db(context))
        })
    }

    /// Runs one statement that returns text rows.
    pub(crate) async fn fetch_texts(
        &mut self,
        context: &'static str,
        sql: &str,
        args: &[Arg],
    ) -> Result<Vec<String>, ReadModelError> {
        with_tx!(self, conn => {
            bind_args!(sqlx::query_scalar::<_, String>(sql), args)
                .fetch_all(conn)
                .await
                .map_err(ReadModelError::db(context))
        })
    }

    /// Runs parameterless SQL, possibly several statements (DDL).
    pub(crate) async fn script(
        &mut self,
        context: &'static str,
        sql: &str,
    ) -> Result<(), ReadModelError> {
        with_tx!(self, conn => {
            conn.execute(sql).await.map_err(ReadModelError::db(context))?;
            Ok(())
        })
    }

    pub(crate) async fn commit(self) -> Result<(), ReadModelError> {
        match self {
            Self::Sqlite(tx) => tx.commit().await,
            Self::Postgres(tx) => tx.commit().await,
        }
        .map_err(ReadModelError::db("committing read-model transaction"))
    }
}

impl Db {
    fn new(pools: Pools) -> Self {
        Self {
            pools,
            health: Arc::new(Health {
                damage: Mutex::new(None),
                failing: Mutex::new(vec![None; ProjectionName::ALL.len()]),
            }),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Passes `result` through, remembering an error that says the database is damaged.
    pub(crate) fn observe<T>(
        &self,
        result: Result<T, ReadModelError>,
    ) -> Result<T, ReadModelError> {
        if let Err(error) = &result {
            self.note(error);
        }
        result
    }

    /// Remembers `error` if it says the database is damaged, and logs once what to do about it.
    pub(crate) fn note(&self, error: &ReadModelError) {
        if !error.is_corrupt() {
            return;
        }
        let mut damage = self.health.damage.lock().unwrap_or_else(|e| e.into_inner());
        if damage.is_some() {
            return;
        }
        let message = error.chain();
        let fix = match self.backend() {
            Backend::Sqlite => {
                "restart the node: at start it moves a damaged read-model file aside and rebuilds \
                 the read models from the event log (or stop it and run `quire projections \
                 rebuild --all`)"
            }
            Backend::Postgres => {
                "run `quire projections rebuild --all`, which replaces the read-model tables from \
                 the event log, then restart the node"
            }
        };
        tracing::error!(error = %message, fix, "the read-model database is damaged; its data is derived from the event log and can be rebuilt");
        *damage = Some(message);
    }

    /// What damage this process has seen, if any.
    pub(crate) fn damage(&self) -> Option<String> {
        self.health
            .damage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records how a local runner's last batch ended (`None`: it succeeded).
    pub(crate) fn set_failing(&self, projection: ProjectionName, failure: Option<String>) {
        let mut failing = self
            .health
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        failing[projection.index()] = failure.map(|m| (m, quire_store::now_micros()));
    }

    /// The error a local runner's last batch failed with, and when.
    pub(crate) fn failing(&self, projection: ProjectionName) -> Option<(String, i64)> {
        self.health
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())[projection.index()]
        .clone()
    }

    /// Begins a write transaction (SQLite: `BEGIN IMMEDIATE`, taking the write lock at once).
    pub(crate) async fn begin(&self) -> Result<Tx, ReadModelError> {
        let tx = self.begin_unobserved().await;
        self.observe(tx)
    }

    async fn begin_unobserved(&self) -> Result<Tx, ReadModelError> {
        match &self.pools {
            Pools::Sqlite { write, .. } => {
                let write = write.as_ref().ok_or(ReadModelError::ReadOnly)?;
                Ok(Tx::Sqlite(
                    write
                        .begin_with("BEGIN IMMEDIATE")
                        .await
                        .map_err(ReadModelError::db("beginning read-model transaction"))?,
                ))
            }
            Pools::Postgres { pool, read_only } => {
                if *read_only {
                    return Err(ReadModelError::ReadOnly);
                }
                // Read-model writes are batches keyed by primary key (at most a few hundred rows
                // joined with tables of up to millions): a nested loop over the key is always the
                // plan. Prepared statements keep the generic plan made while a table was small
                // (a hash join over all of it, measured growing to milliseconds per batch within
                // seconds of a load), so the other joins are ruled out for these transactions.
                Ok(Tx::Postgres(
                    pool.begin_with(
                        "BEGIN; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off",
                    )
                    .await
                    .map_err(ReadModelError::db("beginning read-model transaction"))?,
                ))
            }
        }
    }

    /// Opens the database a URL names and migrates it (unless read-only).
    pub(crate) async fn open(
        url: &str,
        read_only: bool,
        connections: u32,
    ) -> Result<Self, ReadModelError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            open_postgres(url, read_only, connections).await
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            open_sqlite(std::path::Path::new(path), read_only, connections).await
        }
    }
}

/// The migrations, in order: (version, description, SQL).
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "read models",
        include_str!("../migrations/sqlite/0001_read_models.sql"),
    ),
    (
        2,
        "summaries",
        include_str!("../migrations/sqlite/0002_summaries.sql"),
    ),
    (
        3,
        "interactions and recommendation models",
        include_str!("../migrations/sqlite/0003_interactions.sql"),
    ),
    (
        4,
        "user session epochs",
        include_str!("../migrations/sqlite/0004_user_sessions.sql"),
    ),
    (
        5,
        "lending: copies, loans and holds",
        include_str!("../migrations/sqlite/0005_lending.sql"),
    ),
    (
        6,
        "book club: clubs, members, rounds, nominations, ballots, threads and replies",
        include_str!("../migrations/sqlite/0006_club.sql"),
    ),
    (
        7,
        "social: follows, activity privacy and members' public activity",
        include_str!("../migrations/sqlite/0007_social.sql"),
    ),
    (
        8,
        "bookstore: stock, orders, order lines and sales buckets",
        include_str!("../migrations/sqlite/0008_store.sql"),
    ),
    (
        9,
        "book texts: the hash, size and source of a book's full text",
        include_str!("../migrations/sqlite/0009_book_texts.sql"),
    ),
    (
        11,
        "activity and interactions keyed by book first",
        include_str!("../migrations/sqlite/0011_keyed_by_book.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "read models",
        include_str!("../migrations/postgres/0001_read_models.sql"),
    ),
    (
        2,
        "summaries",
        include_str!("../migrations/postgres/0002_summaries.sql"),
    ),
    (
        3,
        "interactions and recommendation models",
        include_str!("../migrations/postgres/0003_interactions.sql"),
    ),
    (
        4,
        "user session epochs",
        include_str!("../migrations/postgres/0004_user_sessions.sql"),
    ),
    (
        5,
        "lending: copies, loans and holds",
        include_str!("../migrations/postgres/0005_lending.sql"),
    ),
    (
        6,
        "book club: clubs, members, rounds, nominations, ballots, threads and replies",
        include_str!("../migrations/postgres/0006_club.sql"),
    ),
    (
        7,
        "social: follows, activity privacy and members' public activity",
        include_str!("../migrations/postgres/0007_social.sql"),
    ),
    (
        8,
        "bookstore: stock, orders, order lines and sales buckets",
        include_str!("../migrations/postgres/0008_store.sql"),
    ),
    (
        9,
        "book texts: the hash, size and source of a book's full text",
        include_str!("../migrations/postgres/0009_book_texts.sql"),
    ),
    (
        10,
        "row sources that tell the planner a batch is small",
        include_str!("../migrations/postgres/0010_row_sources.sql"),
    ),
    (
        11,
        "activity and interactions keyed by book first",
        include_str!("../migrations/postgres/0011_keyed_by_book.sql"),
    ),
];

/// The table that records applied read-model migrations. It is not sqlx's `_sqlx_migrations`,
/// because in Postgres the event store may use that one in the same database.
const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS rm_migrations (\
    version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/// Serializes migrations of several processes on one Postgres database (an arbitrary constant).
const MIGRATION_LOCK: i64 = 0x7175_6972_655f_726d;

async fn open_sqlite(path: &Path, read_only: bool, connections: u32) -> Result<Db, ReadModelError> {
    if read_only {
        if !path.exists() {
            return Err(ReadModelError::Config(format!(
                "no read-model database at {}",
                path.display()
            )));
        }
    } else if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| ReadModelError::Config(format!("creating {}: {e}", parent.display())))?;
    }
    let base = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(ReadModelError::db("parsing sqlite path"))?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        // A rebuild's swap holds the write lock while it catches up; writers of other processes
        // wait for it rather than fail.
        .busy_timeout(Duration::from_secs(60))
        .pragma("temp_store", "memory");
    if !read_only {
        set_aside_if_damaged(path, &base).await?;
    }
    let write = if read_only {
        None
    } else {
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(120))
            // Every projection writes through this one connection, into indexes keyed by random
            // ids (user, book, review); with SQLite's default 2 MB page cache, catching up a large
            // log re-read index pages from the OS for most rows (profiled). 32 MB is a bound,
            // reached only by large read models.
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .pragma("cache_size", "-32768"),
            )
            .await
            .map_err(ReadModelError::db("opening sqlite read models"))?;
        let mut tx = Tx::Sqlite(
            write
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(ReadModelError::db("beginning migration"))?,
        );
        migrate(&mut tx, SQLITE_MIGRATIONS).await?;
        tx.commit().await?;
        Some(write)
    };
    let read = SqlitePoolOptions::new()
        .max_connections(connections.max(1))
        .connect_with(base.read_only(true))
        .await
        .map_err(ReadModelError::db("opening sqlite read pool"))?;
    Ok(Db::new(Pools::Sqlite { write, read }))
}

async fn open_postgres(url: &str, read_only: bool, connections: u32) -> Result<Db, ReadModelError> {
    let connect =
        PgConnectOptions::from_str(url).map_err(ReadModelError::db("parsing postgres url"))?;
    // One direct connection first: a pool only says "timed out", hiding why. Bounded, so an
    // unreachable host fails the start instead of hanging on the OS's TCP timeout.
    tokio::time::timeout(PG_CONNECT_TIMEOUT, PgConnection::connect_with(&connect))
        .await
        .map_err(|_| {
            ReadModelError::Config(format!(
                "connecting to postgres: no answer within {PG_CONNECT_TIMEOUT:?}"
            ))
        })?
        .map_err(ReadModelError::db("connecting to postgres"))?
        .close()
        .await
        .map_err(ReadModelError::db("connecting to postgres"))?;
    let pool = PgPoolOptions::new()
        .max_connections(connections.max(2))
        .acquire_timeout(PG_ACQUIRE_TIMEOUT)
        .connect_with(connect)
        .await
        .map_err(ReadModelError::db("connecting to postgres"))?;
    if !read_only {
        let mut tx = Tx::Postgres(
            pool.begin()
                .await
                .map_err(ReadModelError::db("beginning migration"))?,
        );
        tx.exec(
            "locking read-model migrations",
            "SELECT pg_advisory_xact_lock($1)",
            &[Arg::I64(MIGRATION_LOCK)],
        )
        .await?;
        migrate(&mut tx, POSTGRES_MIGRATIONS).await?;
        tx.commit().await?;
    }
    Ok(Db::new(Pools::Postgres { pool, read_only }))
}

/// Read models are derived from the event log, so a damaged read-model file is not repaired but
/// replaced: if SQLite cannot read it or `PRAGMA quick_check` finds damage, the file and its
/// `-wal`/`-shm` are moved aside (`read.db.damaged-<UTC time>`, kept for inspection) and the
/// caller creates a fresh one, whose checkpoints start at 0, so the projections replay the log.
/// Any other failure to check (a lock, a permission) is an error: only damage moves a file.
async fn set_aside_if_damaged(
    path: &Path,
    options: &SqliteConnectOptions,
) -> Result<(), ReadModelError> {
    if !path.exists() {
        return Ok(());
    }
    let Some(damage) = damage_of(options).await? else {
        return Ok(());
    };
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "read.db".into());
    let mut aside = path.with_file_name(format!("{name}.damaged-{stamp}"));
    let mut n = 1;
    while aside.exists() {
        n += 1;
        aside = path.with_file_name(format!("{name}.damaged-{stamp}-{n}"));
    }
    // The log and index first: a fresh file must never meet its predecessor's log.
    for suffix in ["-wal", "-shm", ""] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        if from.exists() {
            let to = PathBuf::from(format!("{}{suffix}", aside.display()));
            std::fs::rename(&from, &to).map_err(|e| {
                ReadModelError::Config(format!(
                    "moving the damaged read-model file {} aside: {e}",
                    from.display()
                ))
            })?;
        }
    }
    tracing::warn!(
        path = %path.display(),
        moved_to = %aside.display(),
        damage,
        "the read-model database was damaged: moved it aside and starting a fresh one, which the \
         projections rebuild from the event log (reads answer from it as they catch up)"
    );
    Ok(())
}

/// What SQLite finds wrong with the database `options` opens, if anything.
async fn damage_of(options: &SqliteConnectOptions) -> Result<Option<String>, ReadModelError> {
    let corrupt =
        |e: &sqlx::Error| quire_store::StorageFault::of(e) == quire_store::StorageFault::Corrupt;
    let mut conn = match SqliteConnection::connect_with(options).await {
        Ok(conn) => conn,
        Err(error) if corrupt(&error) => return Ok(Some(error.to_string())),
        Err(error) => return Err(ReadModelError::db("opening sqlite read models")(error)),
    };
    let found = sqlx::query_scalar::<_, String>("PRAGMA quick_check(5)")
        .fetch_all(&mut conn)
        .await;
    let _ = conn.close().await;
    match found {
        Ok(rows) if rows.iter().all(|r| r == "ok") => Ok(None),
        Ok(rows) => Ok(Some(rows.join("; "))),
        Err(error) if corrupt(&error) => Ok(Some(error.to_string())),
        Err(error) => Err(ReadModelError::db("checking sqlite read models")(error)),
    }
}

/// Applies the migrations not yet recorded, in the caller's transaction.
async fn migrate(tx: &mut Tx, migrations: &[(i64, &str, &str)]) -> Result<(), ReadModelError> {
    tx.script("creating read-model migrations table", MIGRATIONS_TABLE)
        .await?;
    let applied: Vec<(String, i64)> = tx
        .fetch_pairs(
            "reading applied read-model migrations",
            "SELECT description, version FROM rm_migrations",
            &[],
        )
        .await?;
    for (version, description, sql) in migrations {
        if applied.iter().any(|(_, v)| v == version) {
            continue;
        }
        tracing::info!(version, description, "applying read-model migration");
        tx.script("applying read-model migration", sql).await?;
        tx.exec(
            "recording read-model migration",
            "INSERT INTO rm_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
            &[
                Arg::I64(*version),
                Arg::Text((*description).to_string()),
                Arg::I64(quire_store::now_micros()),
            ],
        )
        .await?;
    }
    for name in crate::ProjectionName::ALL {
        tx.exec(
            "creating checkpoint",
            "INSERT INTO rm_checkpoints (projection, position, updated_at) VALUES ($1, 0, $2) \
             ON CONFLICT (projection) DO NOTHING",
            &[
                Arg::Text(name.as_str().to_string()),
                Arg::I64(quire_store::now_micros()),
            ],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::PgPoolOptions;
    use sqlx::sqlite::SqlitePoolOptions;

    use super::{Arg, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, Tx, migrate};

    /// A database migrated up to (not including) the re-keying by book, holding activity and
    /// interaction rows in the old layout; migrated on, the tables have the new keys and the
    /// social and interactions projections replay from the start, while the others stay.
    async fn rekeying_by_book_replays_its_projections(
        all: &[(i64, &str, &str)],
        mut begin: impl AsyncFnMut() -> Tx,
    ) {
        let before = all
            .iter()
            .position(|(v, _, _)| *v == 11)
            .expect("migration 11");
        let mut tx = begin().await;
        migrate(&mut tx, &all[..before]).await.unwrap();
        tx.exec(
            "old activity row",
            "INSERT INTO rm_activity (activity_id, kind, user_id, book_id, rating, review_id, \
             excerpt, live, at, seq, position) \
             VALUES ('rating:u:b', 'rating', 'u', 'b', 4, NULL, NULL, TRUE, 1, 7, 7)",
            &[],
        )
        .await
        .unwrap();
        tx.exec(
            "old interaction row",
            "INSERT INTO rm_interactions (user_id, book_id, rating, updated_at, position) \
             VALUES ('u', 'b', 4, 1, 7)",
            &[],
        )
        .await
        .unwrap();
        tx.exec(
            "old checkpoints",
            "UPDATE rm_checkpoints SET position = 7",
            &[],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();

        let mut tx = begin().await;
        migrate(&mut tx, all).await.unwrap();
        let positions = tx
            .fetch_pairs(
                "checkpoints",
                "SELECT projection, position FROM rm_checkpoints ORDER BY projection",
                &[],
            )
            .await
            .unwrap();
        for (projection, position) in &positions {
            let replays = ["social", "interactions"].contains(&projection.as_str());
            let expected = if replays { 0 } else { 7 };
            assert_eq!(*position, expected, "{projection}");
        }
        assert_eq!(positions.len(), crate::ProjectionName::ALL.len());
        let rows = tx
            .exec(
                "new activity row",
                "INSERT INTO rm_activity (book_id, kind, user_id, rating, live, at, seq, \
                 position) VALUES ($1, 'rating', 'u', 4, TRUE, 1, 7, 7)",
                &[Arg::Text("b".into())],
            )
            .await
            .unwrap();
        assert_eq!(
            rows, 1,
            "the old row is gone and the new key takes the item"
        );
        let rows = tx
            .exec(
                "new interaction row",
                "INSERT INTO rm_interactions (book_id, user_id, rating, updated_at, position) \
                 VALUES ('b', 'u', 4, 1, 7) ON CONFLICT (book_id, user_id) DO NOTHING",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows, 1, "the old interaction row is gone");
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn sqlite_rekeying_by_book_replays_its_projections() {
        let dir = tempfile::tempdir().unwrap();
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("r.db").display()
            ))
            .await
            .unwrap();
        rekeying_by_book_replays_its_projections(SQLITE_MIGRATIONS, async || {
            Tx::Sqlite(pool.begin().await.unwrap())
        })
        .await;
    }

    #[tokio::test]
    async fn postgres_rekeying_by_book_replays_its_projections() {
        let url = quire_store::testing::fresh_postgres_database().await;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        rekeying_by_book_replays_its_projections(POSTGRES_MIGRATIONS, async || {
            Tx::Postgres(pool.begin().await.unwrap())
        })
        .await;
    }
}

//! `quire backup --to FILE` and `quire restore --from FILE`: the embedded store's event log
//! copied while a server runs, and put back (README "Backups").
//!
//! The log is the truth; everything else in the data directory is derived from it (read models,
//! the search index) or outside it (book texts, content-addressed files that are never
//! rewritten). So a backup is one consistent copy of `events.db` (SQLite's `VACUUM INTO`, one
//! snapshot while writers go on), and a restore puts that file in place and sets the derived
//! state aside, so the next server start rebuilds it from the restored log instead of trusting
//! read models of another history.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::cli::events::format_time;
use crate::config::Settings;

#[derive(Args)]
pub(crate) struct BackupArgs {
    /// The file to write (a SQLite database); it must not exist.
    #[arg(long)]
    to: PathBuf,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct RestoreArgs {
    /// A file `quire backup` wrote.
    #[arg(long)]
    from: PathBuf,
    /// Replace the event store the data directory holds (it is kept beside, renamed). Stop its
    /// server first.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Done {
    file: String,
    /// The position of the last event the file holds.
    head: u64,
    bytes: u64,
    /// For a restore: what was set aside (the replaced store, read models, search index).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    set_aside: Vec<String>,
}

fn embedded_only(settings: &Settings, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.database_url.is_none(),
        "quire {what} is for the embedded (SQLite) store; back up PostgreSQL with pg_dump or the \
         database's point-in-time recovery (README, \"Backups\")"
    );
    Ok(())
}

fn report(done: &Done, json: bool, verb: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(done)?);
    } else {
        println!(
            "{verb} {}: events up to position {}, {} bytes",
            done.file, done.head, done.bytes
        );
        for path in &done.set_aside {
            println!("set aside: {path}");
        }
    }
    Ok(())
}

pub(crate) async fn backup(settings: &Settings, args: BackupArgs) -> anyhow::Result<()> {
    embedded_only(settings, "backup")?;
    let from = settings.data_dir.join("events.db");
    anyhow::ensure!(from.exists(), "no event store at {}", from.display());
    let head = quire_store::sqlite::backup(&from, &args.to)
        .await
        .with_context(|| format!("backing up {} to {}", from.display(), args.to.display()))?;
    let bytes = std::fs::metadata(&args.to)?.len();
    report(
        &Done {
            file: args.to.display().to_string(),
            head,
            bytes,
            set_aside: Vec::new(),
        },
        args.json,
        "wrote",
    )?;
    if !args.json {
        eprintln!(
            "book texts are not in the backup: copy {} too (its files are never rewritten)",
            settings.data_dir.join("texts").display()
        );
    }
    Ok(())
}

pub(crate) async fn restore(settings: &Settings, args: RestoreArgs) -> anyhow::Result<()> {
    embedded_only(settings, "restore")?;
    let head = quire_store::sqlite::verify(&args.from)
        .await
        .with_context(|| format!("checking {}", args.from.display()))?;
    settings.prepare_data_dir()?;
    let dir = &settings.data_dir;
    let target = dir.join("events.db");
    anyhow::ensure!(
        !target.exists() || args.force,
        "{} holds an event store: stop its server and pass --force to replace it (the old one is \
         kept beside it, renamed)",
        dir.display()
    );
    // Copied under a temporary name and renamed: the data directory holds either the old store
    // or the whole restored one, never half a file.
    let partial = dir.join("events.db.restoring");
    std::fs::copy(&args.from, &partial)
        .with_context(|| format!("copying {} into {}", args.from.display(), dir.display()))?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .context("syncing the restored store")?;
    let stamp = format_time(quire_store::now_micros()).replace(':', "");
    let mut set_aside = Vec::new();
    // The replaced store, and state derived from a history that is no longer the log.
    let mut files = vec!["events.db"];
    if settings.read_model_url() == dir.join("read.db").display().to_string() {
        files.push("read.db");
    }
    let mut derived: Vec<PathBuf> = files
        .iter()
        .flat_map(|name| ["", "-wal", "-shm"].map(|suffix| dir.join(format!("{name}{suffix}"))))
        .collect();
    derived.push(settings.search_dir());
    for path in derived.into_iter().filter(|p| p.exists()) {
        let aside = set_aside_name(&path, &stamp);
        std::fs::rename(&path, &aside)
            .with_context(|| format!("setting {} aside", path.display()))?;
        set_aside.push(aside.display().to_string());
    }
    std::fs::rename(&partial, &target).context("putting the restored store in place")?;
    let bytes = std::fs::metadata(&target)?.len();
    report(
        &Done {
            file: target.display().to_string(),
            head,
            bytes,
            set_aside,
        },
        args.json,
        "restored",
    )?;
    if !args.json {
        eprintln!(
            "read models and the search index rebuild from the restored log when a server starts"
        );
    }
    Ok(())
}

/// `events.db` → `events.db.replaced-<UTC time>`.
fn set_aside_name(path: &Path, stamp: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".replaced-{stamp}"));
    PathBuf::from(name)
}

//! `quire projections …`: where each projection stands, and rebuilding one from the event log.
//! A rebuild builds beside the live tables and swaps them in one transaction, so it is safe while
//! a server runs: readers see the old read model until the new one is complete.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Subcommand;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use quire_projections::{ProjectionName, ReadModels, RebuildProgress};
use serde_json::json;

use crate::config::{Settings, redact_url};

#[derive(Subcommand)]
pub(crate) enum ProjectionsCommand {
    /// Position, lag and last error of every projection.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a projection (or all) from the whole log, then swap it in atomically.
    Rebuild {
        /// The projection: books, reviews or users.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Rebuild every projection.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(settings: &Settings, command: ProjectionsCommand) -> anyhow::Result<()> {
    // A wrong name is the operator's mistake whatever the state of the stores: say so first.
    let named: Option<Target> = match &command {
        ProjectionsCommand::Rebuild {
            name: Some(name), ..
        } if name == SEARCH => Some(Target::Search),
        ProjectionsCommand::Rebuild {
            name: Some(name), ..
        } => Some(Target::Read(name.parse().map_err(|_| {
            anyhow::anyhow!(
                "unknown projection {name:?}; the projections are {}, {SEARCH}",
                ProjectionName::ALL.map(ProjectionName::as_str).join(", ")
            )
        })?)),
        _ => None,
    };
    if !matches!(command, ProjectionsCommand::Status { .. }) {
        settings.prepare_data_dir()?;
    }
    let url = settings.store_url();
    let store = quire_store::open(&url, settings.store_options(true))
        .await
        .with_context(|| format!("opening event store at {}", redact_url(&url)))?;
    let read_only = matches!(command, ProjectionsCommand::Status { .. });
    let read = super::open_read_models(settings, read_only).await?;
    match command {
        ProjectionsCommand::Status { json } => status(settings, &store, &read, json).await,
        ProjectionsCommand::Rebuild { all, json, .. } => {
            let targets: Vec<Target> = if all {
                ProjectionName::ALL
                    .into_iter()
                    .map(Target::Read)
                    .chain([Target::Search])
                    .collect()
            } else {
                vec![named.expect("clap requires a name without --all")]
            };
            for target in targets {
                match target {
                    Target::Read(name) => rebuild_one(&store, &read, name, json).await?,
                    Target::Search => rebuild_search(settings, &store, &read, json).await?,
                }
            }
            Ok(())
        }
    }
}

async fn status(
    settings: &Settings,
    store: &quire_store::DynEventStore,
    read: &ReadModels,
    json: bool,
) -> anyhow::Result<()> {
    let head = store.head().await.context("reading the event store head")?;
    let statuses = read.statuses().await.context("reading checkpoints")?;
    // This node's search index, if it has one.
    let search =
        quire_search::engine::peek(&settings.search_dir()).context("reading the search index")?;
    if json {
        let list: Vec<_> = statuses
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "position": s.position,
                    "lag": head.saturating_sub(s.position),
                    "last_error": s.last_error,
                    "last_error_at": s.last_error_at.map(crate::cli::events::format_time),
                })
            })
            .collect();
        let search = search.map(|s| {
            json!({
                "name": SEARCH,
                "position": s.position,
                "lag": head.saturating_sub(s.position),
                "books": s.books,
                "bytes": s.bytes,
                "segments": s.segments,
                "generation": s.generation,
            })
        });
        println!(
            "{}",
            json!({ "head": head, "projections": list, "search": search })
        );
        return Ok(());
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["projection", "position", "lag", "last error"]);
    for s in &statuses {
        table.add_row([
            s.name.to_string(),
            s.position.to_string(),
            head.saturating_sub(s.position).to_string(),
            match (&s.last_error, s.last_error_at) {
                (Some(error), Some(at)) => {
                    format!("{} ({error})", crate::cli::events::format_time(at))
                }
                (Some(error), None) => error.clone(),
                _ => "-".into(),
            },
        ]);
    }
    if let Some(s) = &search {
        table.add_row([
            SEARCH.to_string(),
            s.position.to_string(),
            head.saturating_sub(s.position).to_string(),
            format!(
                "- ({} books, {:.1} MB in {} segments, {} on this node)",
                s.books,
                s.bytes as f64 / 1e6,
                s.segments,
                s.generation
            ),
        ]);
    }
    println!("event store head: {head}");
    println!("{table}");
    Ok(())
}

async fn rebuild_one(
    store: &quire_store::DynEventStore,
    read: &ReadModels,
    name: ProjectionName,
    json: bool,
) -> anyhow::Result<()> {
    let head = store.head().await.context("reading the event store head")?;
    let (bar, progress) = reporter(name.as_str(), head, json);
    let report = quire_projections::rebuild(store, read, name, &progress)
        .await
        .with_context(|| format!("rebuilding projection {name}"))?;
    bar.finish_and_clear();
    if json {
        println!(
            "{}",
            json!({
                "name": report.name,
                "events": report.events,
                "elapsed_ms": report.elapsed.as_millis() as u64,
                "events_per_sec": report.events_per_sec,
            })
        );
    } else {
        println!(
            "rebuilt {}: {} events in {:.2}s ({:.0} events/s), swapped in",
            report.name,
            report.events,
            report.elapsed.as_secs_f64(),
            report.events_per_sec
        );
    }
    Ok(())
}

/// Rebuilds this node's search index into a new generation beside the live one and publishes
/// it; a running node switches to it after catching it up.
async fn rebuild_search(
    settings: &Settings,
    store: &quire_store::DynEventStore,
    read: &ReadModels,
    json: bool,
) -> anyhow::Result<()> {
    let head = store.head().await.context("reading the event store head")?;
    let (bar, progress) = reporter(SEARCH, head, json);
    let ratings = crate::search::ReadModelRatings(read.clone(), std::time::Duration::ZERO);
    let root = settings.search_dir();
    let report = quire_search::indexer::rebuild(&root, store, &ratings, &|position| {
        progress(RebuildProgress { position, head })
    })
    .await
    .with_context(|| format!("rebuilding the search index in {}", root.display()))?;
    bar.finish_and_clear();
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    if json {
        println!(
            "{}",
            json!({
                "name": SEARCH,
                "events": report.position,
                "books": report.books,
                "bytes": report.size_bytes,
                "elapsed_ms": report.elapsed.as_millis() as u64,
                "events_per_sec": report.position as f64 / secs,
                "books_per_sec": report.books as f64 / secs,
                "generation": report.generation,
            })
        );
    } else {
        println!(
            "rebuilt {SEARCH}: {} events, {} books in {:.2}s ({:.0} events/s), {:.1} MB, \
             published as {} (a running node switches to it)",
            report.position,
            report.books,
            secs,
            report.position as f64 / secs,
            report.size_bytes as f64 / 1e6,
            report.generation.display()
        );
    }
    Ok(())
}

/// A progress bar on a terminal, else a line per tenth of the log (none for `--json`).
fn reporter(
    name: &str,
    head: u64,
    json: bool,
) -> (ProgressBar, impl Fn(RebuildProgress) + Send + Sync) {
    let bar = if std::io::stderr().is_terminal() && !json {
        let bar = ProgressBar::new(head.max(1));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        bar
    } else {
        ProgressBar::hidden()
    };
    let report_every = (head / 10).max(1);
    let last_reported = std::sync::atomic::AtomicU64::new(0);
    let quiet = json;
    let name = name.to_string();
    let shown = bar.clone();
    let progress = move |p: RebuildProgress| {
        let bar = &shown;
        bar.set_length(p.head.max(1));
        bar.set_position(p.position);
        // Without a terminal, a line per tenth keeps logs informative.
        if bar.is_hidden() && !quiet {
            let last = last_reported.load(std::sync::atomic::Ordering::Relaxed);
            if p.position >= last + report_every || p.position == p.head {
                last_reported.store(p.position, std::sync::atomic::Ordering::Relaxed);
                eprintln!("{name}: {}/{} events", p.position, p.head);
            }
        }
    };
    (bar, progress)
}

/// The search index's name on the command line (it is not a read-model table: each API node
/// keeps its own, in its data directory).
const SEARCH: &str = "search";

/// What a rebuild replaces.
#[derive(Clone, Copy)]
enum Target {
    Read(ProjectionName),
    Search,
}

//! `quire projections …`: where each projection stands, and rebuilding one from the event log.
//! A rebuild builds beside the live tables and swaps them in one transaction, so it is safe while
//! a server runs: readers see the old read model until the new one is complete.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Subcommand;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use quire_projections::{ProjectionName, ReadModelOptions, ReadModels, RebuildProgress};
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
    let named: Option<ProjectionName> = match &command {
        ProjectionsCommand::Rebuild {
            name: Some(name), ..
        } => Some(name.parse().map_err(|_| {
            anyhow::anyhow!(
                "unknown projection {name:?}; the projections are {}",
                ProjectionName::ALL.map(ProjectionName::as_str).join(", ")
            )
        })?),
        _ => None,
    };
    if !matches!(command, ProjectionsCommand::Status { .. }) {
        settings.prepare_data_dir()?;
    }
    let url = settings.store_url();
    let store = quire_store::open(&url, settings.store_options(true))
        .await
        .with_context(|| format!("opening event store at {}", redact_url(&url)))?;
    let read_url = settings.read_model_url();
    let read_only = matches!(command, ProjectionsCommand::Status { .. });
    let read = ReadModels::open(
        &read_url,
        ReadModelOptions {
            read_only,
            ..ReadModelOptions::default()
        },
    )
    .await
    .with_context(|| format!("opening read models at {}", redact_url(&read_url)))?;
    match command {
        ProjectionsCommand::Status { json } => status(&store, &read, json).await,
        ProjectionsCommand::Rebuild { all, json, .. } => {
            let names: Vec<ProjectionName> = if all {
                ProjectionName::ALL.to_vec()
            } else {
                vec![named.expect("clap requires a name without --all")]
            };
            for name in names {
                rebuild_one(&store, &read, name, json).await?;
            }
            Ok(())
        }
    }
}

async fn status(
    store: &quire_store::DynEventStore,
    read: &ReadModels,
    json: bool,
) -> anyhow::Result<()> {
    let head = store.head().await.context("reading the event store head")?;
    let statuses = read.statuses().await.context("reading checkpoints")?;
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
        println!("{}", json!({ "head": head, "projections": list }));
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
    let progress = |p: RebuildProgress| {
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

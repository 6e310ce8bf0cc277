//! `quire events …`: read the event log for audits and replays. Opens the store read-only, so it is
//! safe beside a running server; tables for people by default, `--json` (one object per line for
//! `show` and `tail`) for scripts.

use anyhow::Context;
use clap::Subcommand;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use quire_store::{DynEventStore, RecordedEvent, StoreStats, StreamInfo, Timestamp};
use serde_json::json;

use crate::config::{Settings, redact_url};

#[derive(Subcommand)]
pub(crate) enum EventsCommand {
    /// List streams (entities) with their versions.
    Streams {
        /// Only streams whose id starts with this, e.g. `book-`.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Start after this stream id (paging).
        #[arg(long)]
        after: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show the events of one stream.
    Show {
        /// The stream id, e.g. `book-0193…`.
        stream: String,
        /// Show events after this version.
        #[arg(long, default_value_t = 0)]
        from_version: u64,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Print the global log from a position; `--follow` keeps printing new events.
    Tail {
        /// Print events after this global position.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Keep waiting for new events (stop with ctrl-c).
        #[arg(long)]
        follow: bool,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Counts: events, streams, commands, head position, events by type, size.
    Stats {
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(settings: &Settings, command: EventsCommand) -> anyhow::Result<()> {
    let url = settings.store_url();
    let store = quire_store::open(&url, settings.store_options(true))
        .await
        .with_context(|| format!("opening event store at {}", redact_url(&url)))?;
    match command {
        EventsCommand::Streams {
            prefix,
            after,
            limit,
            json,
        } => {
            let streams = store
                .streams(&prefix, after.as_deref(), limit)
                .await
                .context("listing streams")?;
            print_streams(&streams, json);
        }
        EventsCommand::Show {
            stream,
            from_version,
            limit,
            json,
        } => {
            let events = store
                .read_stream(&stream, from_version, limit)
                .await
                .with_context(|| format!("reading stream {stream}"))?;
            if events.is_empty() && !json {
                eprintln!("stream {stream} has no events after version {from_version}");
            }
            if json {
                for e in &events {
                    println!("{}", event_json(e));
                }
            } else {
                println!("{}", events_table(&events));
            }
        }
        EventsCommand::Tail {
            from,
            follow,
            limit,
            json,
        } => tail(store, from, follow, limit, json).await?,
        EventsCommand::Stats { json } => {
            let stats = store.stats().await.context("reading store statistics")?;
            print_stats(&stats, json);
        }
    }
    Ok(())
}

async fn tail(
    store: DynEventStore,
    from: u64,
    follow: bool,
    limit: Option<usize>,
    json: bool,
) -> anyhow::Result<()> {
    let mut sub = quire_store::subscribe(store, from);
    let mut printed = 0usize;
    loop {
        if limit.is_some_and(|l| printed >= l) {
            return Ok(());
        }
        let event = if follow {
            tokio::select! {
                e = sub.next() => e.context("reading the log")?,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        } else {
            match sub.try_next().await.context("reading the log")? {
                Some(e) => e,
                None => return Ok(()),
            }
        };
        if json {
            println!("{}", event_json(&event));
        } else {
            println!(
                "{:>10}  {}  {}@{}  {} v{}  {}",
                event.position,
                format_time(event.recorded_at),
                event.stream_id,
                event.version,
                event.event_type,
                event.schema_version,
                truncate(&event.payload.to_string(), 120)
            );
        }
        printed += 1;
    }
}

fn event_json(e: &RecordedEvent) -> serde_json::Value {
    json!({
        "position": e.position,
        "stream_id": e.stream_id,
        "version": e.version,
        "event_id": e.event_id,
        "event_type": e.event_type,
        "schema_version": e.schema_version,
        "recorded_at": format_time(e.recorded_at),
        "metadata": {
            "command_id": e.metadata.command_id,
            "causation_id": e.metadata.causation_id,
            "correlation_id": e.metadata.correlation_id,
            "actor": e.metadata.actor,
            "occurred_at": format_time(e.metadata.occurred_at),
            "traceparent": e.metadata.traceparent,
        },
        "payload": e.payload,
    })
}

fn events_table(events: &[RecordedEvent]) -> Table {
    let mut table = new_table();
    table.set_header(vec![
        "version",
        "position",
        "type",
        "recorded at",
        "actor",
        "command",
        "payload",
    ]);
    for e in events {
        table.add_row(vec![
            e.version.to_string(),
            e.position.to_string(),
            format!("{} v{}", e.event_type, e.schema_version),
            format_time(e.recorded_at),
            e.metadata.actor.clone().unwrap_or_default(),
            e.metadata
                .command_id
                .map(|c| c.to_string())
                .unwrap_or_default(),
            truncate(&e.payload.to_string(), 80),
        ]);
    }
    table
}

fn print_streams(streams: &[StreamInfo], json: bool) {
    if json {
        let rows: Vec<_> = streams
            .iter()
            .map(|s| {
                json!({
                    "stream_id": s.stream_id,
                    "version": s.version,
                    "last_position": s.last_position,
                    "updated_at": format_time(s.updated_at),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return;
    }
    let mut table = new_table();
    table.set_header(vec!["stream", "version", "last position", "updated at"]);
    for s in streams {
        table.add_row(vec![
            s.stream_id.clone(),
            s.version.to_string(),
            s.last_position.to_string(),
            format_time(s.updated_at),
        ]);
    }
    println!("{table}");
}

fn print_stats(stats: &StoreStats, json: bool) {
    if json {
        println!(
            "{:#}",
            json!({
                "backend": stats.backend,
                "events": stats.events,
                "streams": stats.streams,
                "commands": stats.commands,
                "head": stats.head,
                "size_bytes": stats.size_bytes,
                "by_type": stats.by_type.iter().map(|(t, n)| json!({"event_type": t, "count": n})).collect::<Vec<_>>(),
            })
        );
        return;
    }
    let mut table = new_table();
    table.add_row(vec!["backend".to_string(), stats.backend.clone()]);
    table.add_row(vec!["events".to_string(), stats.events.to_string()]);
    table.add_row(vec!["streams".to_string(), stats.streams.to_string()]);
    table.add_row(vec!["commands".to_string(), stats.commands.to_string()]);
    table.add_row(vec!["head position".to_string(), stats.head.to_string()]);
    if let Some(size) = stats.size_bytes {
        table.add_row(vec!["size".to_string(), human_bytes(size)]);
    }
    println!("{table}");
    if !stats.by_type.is_empty() {
        let mut types = new_table();
        types.set_header(vec!["event type", "count"]);
        for (t, n) in &stats.by_type {
            types.add_row(vec![t.clone(), n.to_string()]);
        }
        println!("{types}");
    }
}

pub(crate) fn new_table() -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table
}

/// Formats microseconds since the epoch as RFC 3339 UTC.
pub(crate) fn format_time(micros: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| micros.to_string())
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_utc() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_500_000), "1970-01-01T00:00:01.5Z");
    }

    #[test]
    fn long_payloads_are_cut_on_char_boundaries() {
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}

//! Import batches (ARCHITECTURE.md, "Bulk imports"): recording one, `quire import list` and
//! `quire import revert BATCH`.
//!
//! A batch's stream `import-{id}` says what was imported and how it ended; the facts themselves
//! are ordinary entity events whose correlation id is the batch id. A revert finds them by that
//! id in the log and answers each with the event a person undoing it would cause — the review
//! withdrawn, the book removed, the member deactivated — decided by the domain against the
//! entity's current state, so it works while a server is running and changes nothing that is
//! already undone.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use quire_actors::CommandEnvelope;
use quire_actors::bulk::{self, Decision};
use quire_domain::book::{Book, BookCommand, BookEvent};
use quire_domain::ids::{ReviewId, UserId};
use quire_domain::import::{self, BatchCounts, BatchKind, ImportBatch, ImportCommand};
use quire_domain::user::{User, UserCommand};
use quire_domain::{Aggregate, DomainEvent, Principal};
use quire_store::{EventStore, Position};
use serde::Serialize;
use uuid::Uuid;

use super::{Phase, PhaseStats, open_store, run_streams};
use crate::cli::events::{format_time, new_table};
use crate::config::Settings;

/// Refusals that mean the fact is undone already (by a person, or by an interrupted run).
const UNDONE: &[&str] = &[
    "review_deleted",
    "review_not_found",
    "book_removed",
    "user_deactivated",
    "not_found",
];

/// Events read from the log per page while looking for a batch's facts.
const SCAN_PAGE: usize = 5_000;

/// Sends one command to batch `id`'s stream; a refusal is an error.
async fn record(
    store: &dyn EventStore,
    id: Uuid,
    name: &str,
    command: ImportCommand,
) -> anyhow::Result<()> {
    let envelope = CommandEnvelope::new(Principal::system(), command)
        .with_command_id(Uuid::new_v5(&id, name.as_bytes()));
    let write =
        bulk::write_stream::<ImportBatch>(store, &import::stream_id(id), &[envelope], false, &[])
            .await
            .with_context(|| format!("recording import batch {id}"))?;
    match write.decisions.first() {
        Some(Decision::Rejected { message, .. }) => {
            anyhow::bail!("import batch {id}: {message}")
        }
        _ => Ok(()),
    }
}

/// Opens batch `id` (or finds it open: a re-run is the same batch).
pub(super) async fn start(
    store: &dyn EventStore,
    id: Uuid,
    kind: BatchKind,
    source: &str,
    reverts: Option<Uuid>,
) -> anyhow::Result<()> {
    let command = ImportCommand::Start {
        kind,
        source: source.to_owned(),
        reverts,
    };
    record(store, id, "start", command).await
}

/// Records that every fact of batch `id` is stored.
pub(super) async fn complete(
    store: &dyn EventStore,
    id: Uuid,
    streams: u64,
    events: u64,
) -> anyhow::Result<()> {
    let counts = BatchCounts { streams, events };
    record(store, id, "complete", ImportCommand::Complete { counts }).await
}

/// One batch as `quire import list` shows it.
#[derive(Debug, Serialize)]
struct BatchRow {
    batch: Uuid,
    kind: BatchKind,
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reverts: Option<Uuid>,
    started_at: String,
    /// `running` (or interrupted: re-run the import to finish it), `complete` or `reverted`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reverted_by: Option<Uuid>,
    streams: Option<u64>,
    events: Option<u64>,
}

pub(super) async fn list(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let prefix = format!("{}-", ImportBatch::CATEGORY);
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .streams(&prefix, after.as_deref(), 500)
            .await
            .context("listing import batches")?;
        let Some(last) = page.last() else { break };
        after = Some(last.stream_id.clone());
        for info in &page {
            let id: Uuid = info.stream_id[prefix.len()..]
                .parse()
                .with_context(|| format!("stream {} is not an import batch", info.stream_id))?;
            let (mut started_at, mut finished_at) = (None, None);
            let (batch, _) = bulk::load_seeing::<ImportBatch>(&*store, &info.stream_id, |e| {
                let at = Some(format_time(e.recorded_at));
                if e.version == 1 {
                    started_at = at;
                } else if e.event_type == "ImportCompleted" {
                    finished_at = at;
                }
            })
            .await
            .with_context(|| format!("reading {}", info.stream_id))?;
            let Some((kind, source, reverts)) = batch.started() else {
                continue;
            };
            rows.push(BatchRow {
                batch: id,
                kind,
                source: source.to_owned(),
                reverts,
                started_at: started_at.unwrap_or_default(),
                status: match (batch.reverted_by(), batch.completed()) {
                    (Some(_), _) => "reverted",
                    (None, Some(_)) => "complete",
                    (None, None) => "running",
                },
                finished_at,
                reverted_by: batch.reverted_by(),
                streams: batch.completed().map(|c| c.streams),
                events: batch.completed().map(|c| c.events),
            });
        }
    }
    rows.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no import batches");
        return Ok(());
    }
    let mut table = new_table();
    table.set_header(vec![
        "batch", "kind", "source", "started", "status", "streams", "events",
    ]);
    for row in &rows {
        let status = match (row.reverted_by, row.reverts) {
            (Some(by), _) => format!("reverted by {by}"),
            (None, Some(of)) => format!("{} (reverts {of})", row.status),
            (None, None) => row.status.to_owned(),
        };
        table.add_row(vec![
            row.batch.to_string(),
            row.kind.to_string(),
            row.source.clone(),
            row.started_at.clone(),
            status,
            row.streams.map_or_else(String::new, |n| n.to_string()),
            row.events.map_or_else(String::new, |n| n.to_string()),
        ]);
    }
    println!("{table}");
    Ok(())
}

#[derive(Args)]
pub(crate) struct RevertArgs {
    /// The import batch (`quire import list`; printed by the import).
    batch: Uuid,
    /// Streams written at once (at least 1).
    #[arg(long, default_value_t = 64, value_parser = super::at_least_one)]
    concurrency: usize,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// What a batch brought in, found in the log by its correlation id.
#[derive(Debug, Default)]
struct Found {
    /// Book streams the batch wrote to: whether it added the book, and the reviews it posted.
    books: BTreeMap<String, (bool, Vec<ReviewId>)>,
    /// Users the batch registered, by stream.
    users: BTreeMap<String, UserId>,
    /// User streams with events from elsewhere, and the actors of events from elsewhere.
    touched_streams: HashSet<String>,
    touched_actors: HashSet<String>,
    events_scanned: u64,
}

impl Found {
    fn user_did_something(&self, stream: &str, user: UserId) -> bool {
        self.touched_streams.contains(stream) || self.touched_actors.contains(&user.to_string())
    }
}

/// Reads the whole log once for the facts of `batch`; events of `revert` (an interrupted run of
/// this revert) count as neither the batch's nor anyone's activity.
async fn scan(store: &dyn EventStore, batch: Uuid, revert: Uuid) -> anyhow::Result<Found> {
    let mut found = Found::default();
    let mut after: Position = 0;
    loop {
        let page = store
            .read_all(after, SCAN_PAGE)
            .await
            .context("reading the log")?;
        let Some(last) = page.last() else { break };
        after = last.position;
        found.events_scanned += page.len() as u64;
        for stored in &page {
            let correlation = stored.metadata.correlation_id;
            if correlation == Some(revert) {
                continue;
            }
            if correlation != Some(batch) {
                if stored.stream_id.starts_with("user-") {
                    found.touched_streams.insert(stored.stream_id.clone());
                }
                if let Some(actor) = &stored.metadata.actor {
                    found.touched_actors.insert(actor.clone());
                }
                continue;
            }
            if stored.stream_id.starts_with("book-") {
                let entry = found.books.entry(stored.stream_id.clone()).or_default();
                match BookEvent::from_stored(
                    &stored.event_type,
                    stored.schema_version,
                    &stored.payload,
                ) {
                    Ok(BookEvent::BookAdded { .. }) => entry.0 = true,
                    Ok(BookEvent::ReviewPosted { review_id, .. }) => entry.1.push(review_id),
                    _ => {}
                }
            } else if stored.stream_id.starts_with("user-")
                && stored.event_type == "UserRegistered"
                && let Some(id) = stored.stream_id["user-".len()..].parse().ok()
            {
                found
                    .users
                    .insert(stored.stream_id.clone(), UserId::from_uuid(id));
            }
        }
    }
    Ok(found)
}

#[derive(Debug, Serialize)]
struct RevertSummary {
    batch: Uuid,
    revert: Uuid,
    events_scanned: u64,
    reviews: PhaseStats,
    books: PhaseStats,
    users: PhaseStats,
    /// Members the import registered who did something since, left active.
    users_kept: u64,
    events_appended: u64,
    elapsed_secs: f64,
    first_errors: Vec<String>,
}

pub(super) async fn revert(settings: &Settings, args: RevertArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = open_store(settings).await?;
    let batch = args.batch;
    let (import, version) = bulk::load::<ImportBatch>(&*store, &import::stream_id(batch))
        .await
        .with_context(|| format!("loading import batch {batch}"))?;
    anyhow::ensure!(
        version > 0,
        "no import batch {batch} (see `quire import list`)"
    );
    import
        .check_revertible()
        .with_context(|| format!("cannot revert batch {batch}"))?;
    let (_, source, _) = import.started().context("the batch was never started")?;
    let revert = Uuid::new_v5(&batch, b"revert");
    start(
        &*store,
        revert,
        BatchKind::Revert,
        &format!("revert of {source}"),
        Some(batch),
    )
    .await?;
    eprintln!("revert batch {revert} (of {batch})");
    let found = scan(&*store, batch, revert).await?;

    let command = |name: String, principal: Principal| {
        let mut envelope = CommandEnvelope::new(principal, ())
            .with_command_id(Uuid::new_v5(&revert, name.as_bytes()));
        envelope.correlation_id = revert;
        envelope
    };
    // Each book: its imported reviews withdrawn, then the book removed if the batch added it.
    let mut reviews_books = [PhaseStats::default(), PhaseStats::default()];
    let mut errors = Vec::new();
    let book_streams = found.books.iter().map(|(stream, (added, reviews))| {
        let mut commands: Vec<CommandEnvelope<BookCommand>> = reviews
            .iter()
            .map(|&review_id| {
                command(format!("delete-review:{review_id}"), Principal::system())
                    .map(|()| BookCommand::DeleteReview { review_id })
            })
            .collect();
        let removes = *added;
        if removes {
            commands.push(
                command(format!("remove-book:{stream}"), Principal::system())
                    .map(|()| BookCommand::RemoveBook),
            );
        }
        let reviews = reviews.len();
        (stream.clone(), commands, reviews)
    });
    let phase = Phase::new("books", found.books.len() as u64, UNDONE, false);
    run_streams::<Book>(
        &*store,
        phase,
        book_streams,
        args.concurrency,
        &mut reviews_books,
        &mut errors,
    )
    .await?;
    let (kept, to_deactivate): (Vec<_>, Vec<_>) = found
        .users
        .iter()
        .partition(|(stream, user)| found.user_did_something(stream, **user));
    let mut users = [PhaseStats::default(), PhaseStats::default()];
    let user_streams = to_deactivate.iter().map(|(stream, _)| {
        let commands = vec![
            command(format!("deactivate:{stream}"), Principal::system())
                .map(|()| UserCommand::Deactivate),
        ];
        ((*stream).clone(), commands, usize::MAX)
    });
    let phase = Phase::new("users", to_deactivate.len() as u64, UNDONE, false);
    run_streams::<User>(
        &*store,
        phase,
        user_streams,
        args.concurrency,
        &mut users,
        &mut errors,
    )
    .await?;
    let [reviews, books] = reviews_books;
    let [users, _] = users;
    let events_appended = reviews.events + books.events + users.events;
    let failed = reviews.failed + books.failed + users.failed;
    anyhow::ensure!(
        failed == 0,
        "{failed} compensations failed (first: {}); re-run the revert to finish it",
        errors.first().map_or("", String::as_str)
    );
    let streams = (found.books.len() + to_deactivate.len()) as u64;
    complete(&*store, revert, streams, events_appended).await?;
    record(
        &*store,
        batch,
        &format!("reverted-by:{revert}"),
        ImportCommand::MarkReverted { by: revert },
    )
    .await?;
    let summary = RevertSummary {
        batch,
        revert,
        events_scanned: found.events_scanned,
        reviews,
        books,
        users,
        users_kept: kept.len() as u64,
        events_appended,
        elapsed_secs: started.elapsed().as_secs_f64(),
        first_errors: errors,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let mut table = new_table();
        table.set_header(vec!["", "sent", "undone", "already undone", "events"]);
        for (name, p) in [
            ("reviews withdrawn", &summary.reviews),
            ("books removed", &summary.books),
            ("members deactivated", &summary.users),
        ] {
            table.add_row(vec![
                name.to_owned(),
                p.sent.to_string(),
                p.new.to_string(),
                p.already_present.to_string(),
                p.events.to_string(),
            ]);
        }
        println!("{table}");
        println!(
            "{} members kept (active since the import); {} events appended in {:.1} s",
            summary.users_kept, summary.events_appended, summary.elapsed_secs
        );
        for error in &summary.first_errors {
            println!("error: {error}");
        }
    }
    let rejected = summary.reviews.rejected + summary.books.rejected + summary.users.rejected;
    anyhow::ensure!(
        rejected == 0,
        "{rejected} compensations were refused (see the summary)"
    );
    Ok(())
}

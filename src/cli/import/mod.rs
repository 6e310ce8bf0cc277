//! `quire import …`: bulk imports.
//!
//! `goodbooks` decides each entity's commands with the domain and appends them straight to the
//! store (`quire_actors::bulk`), as one import batch (`batch.rs`, ARCHITECTURE.md "Bulk
//! imports"): the same events the commands would produce through the API, a fraction of the cost.
//! `gutenberg` (a few books with their texts) sends its commands through the bus like the API.
//!
//! Command ids derive from the data (UUIDv5), so running an import again appends nothing.

mod batch;
pub(crate) mod goodbooks;
pub(crate) mod gutenberg;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use quire_actors::bulk::{self, Decision};
use quire_actors::{Command, CommandBus, CommandEnvelope, CommandError, CommandOutcome, LocalBus};
use quire_domain::book::BookCommand;
use quire_domain::import::{self, BatchKind, ImportBatch};
use quire_domain::user::UserCommand;
use quire_domain::values::{PersonName, ReviewText};
use quire_domain::{Principal, Role};
use serde::Serialize;
use uuid::Uuid;

use crate::cli::events::new_table;
use crate::config::{Settings, redact_url};
use goodbooks::GbBook;

#[derive(Subcommand)]
pub(crate) enum ImportCommand {
    /// Import goodbooks-10k (books.csv, book_tags.csv, tags.csv, ratings.csv in DIR): books with
    /// their top genres, every rater as a patron without login, and their ratings as reviews.
    /// Safe to re-run: a second run changes nothing.
    Goodbooks(GoodbooksArgs),
    /// Import Project Gutenberg plain-text books (FILE…): each becomes a catalogue book (title and
    /// author from the Gutenberg header or title page) with its full text attached; the header
    /// and license are left out of the text. Safe to re-run.
    Gutenberg(GutenbergArgs),
    /// List the import batches in the log: what each imported, when, how much, and whether it
    /// was reverted.
    List {
        /// Print the batches as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Revert an import batch: append the compensating events (its reviews withdrawn, its books
    /// removed, its members deactivated unless they did anything since). The history keeps both;
    /// the revert is a batch of its own, which cannot be reverted. Safe on a live server, and to
    /// re-run after an interruption.
    Revert(batch::RevertArgs),
}

#[derive(Args)]
pub(crate) struct GutenbergArgs {
    /// The text files (UTF-8, e.g. `pg84.txt`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Attach the text to this existing book instead of adding one (one FILE only).
    #[arg(long)]
    book_id: Option<quire_domain::ids::BookId>,
    /// The title, when the file does not say it (one FILE only).
    #[arg(long)]
    title: Option<String>,
    /// The author, when the file does not say it (one FILE only).
    #[arg(long)]
    author: Option<String>,
    /// Genres of the books added (repeatable).
    #[arg(long = "genre")]
    genres: Vec<String>,
    /// Print what was imported as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// A count flag that must be at least 1: refused by name rather than silently raised.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Args)]
pub(crate) struct GoodbooksArgs {
    /// The directory holding the goodbooks-10k CSV files.
    dir: PathBuf,
    /// Commands in flight at once (at least 1).
    #[arg(long, default_value_t = 256, value_parser = at_least_one)]
    concurrency: usize,
    /// Import only the first N books of books.csv (and only their ratings and raters).
    #[arg(long)]
    limit_books: Option<usize>,
    /// Import books only: no raters, no ratings.
    #[arg(long)]
    no_ratings: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(settings: &Settings, command: ImportCommand) -> anyhow::Result<()> {
    match command {
        ImportCommand::Goodbooks(args) => import_goodbooks(settings, args).await,
        ImportCommand::Gutenberg(args) => import_gutenberg(settings, args).await,
        ImportCommand::List { json } => batch::list(settings, json).await,
        ImportCommand::Revert(args) => batch::revert(settings, args).await,
    }
}

/// Opens the configured event store for writing (creating the data directory if needed).
async fn open_store(settings: &Settings) -> anyhow::Result<quire_store::DynEventStore> {
    let url = settings.store_url();
    settings.prepare_data_dir()?;
    quire_store::open(&url, settings.store_options(false))
        .await
        .with_context(|| format!("opening event store at {}", redact_url(&url)))
}

/// How many rejected or failed commands are described in the summary.
const FIRST_ERRORS: usize = 5;
/// An import stops after this many failed commands: something is broken, not the data.
const MAX_FAILURES: u64 = 1000;
/// Attempts for a command that failed for a transient reason (store error, lost reply,
/// contention); the retry carries the same command id, so it can never apply twice.
const ATTEMPTS: u32 = 4;

/// What happened to one phase's commands.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct PhaseStats {
    sent: u64,
    /// Accepted now (events appended, or none when there was nothing to change).
    new: u64,
    /// Answered from the store's record of an earlier identical command.
    replayed: u64,
    /// Refused because the entity already existed (e.g. added through the API before).
    already_present: u64,
    /// Refused by the domain for another reason.
    rejected: u64,
    /// Not applied: store errors, reused command ids and the like.
    failed: u64,
    /// Events appended by this run.
    events: u64,
    elapsed_secs: f64,
}

impl PhaseStats {
    /// `n` commands answered from an earlier run.
    fn replayed(n: u64) -> Self {
        Self {
            sent: n,
            replayed: n,
            ..Self::default()
        }
    }

    fn count(&mut self, decision: &Decision) {
        match decision {
            Decision::New { events } => {
                self.new += 1;
                self.events += u64::from(*events);
            }
            Decision::Replayed => self.replayed += 1,
            Decision::Present => self.already_present += 1,
            Decision::Rejected { .. } => self.rejected += 1,
        }
    }
}

#[derive(Debug, Serialize)]
struct Summary {
    dataset: String,
    /// The import batch (`quire import list`, `quire import revert`).
    batch: String,
    backend: String,
    books: PhaseStats,
    users: PhaseStats,
    ratings: PhaseStats,
    books_skipped: Vec<String>,
    isbn: goodbooks::IsbnStats,
    rating_rows: goodbooks::RatingStats,
    commands: u64,
    events_appended: u64,
    read_secs: f64,
    elapsed_secs: f64,
    commands_per_sec: f64,
    first_errors: Vec<String>,
}

async fn import_goodbooks(settings: &Settings, args: GoodbooksArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = args.dir.clone();
    let (limit, with_ratings) = (args.limit_books, !args.no_ratings);
    let data = tokio::task::spawn_blocking(move || goodbooks::load(&dir, limit, with_ratings))
        .await
        .context("reading the dataset")??;
    let read_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "read {} books, {} raters, {} ratings from {} in {read_secs:.1} s",
        data.books.len(),
        data.users.len(),
        data.rating_stats.unique,
        args.dir.display()
    );

    let store = open_store(settings).await?;
    let backend = store.backend().to_string();
    let concurrency = args.concurrency;
    let mut errors = Vec::new();

    // The batch is named by what is imported, so a re-run is the same batch.
    let source = format!(
        "goodbooks-10k: {}, {}",
        args.limit_books.map_or_else(
            || "all books".to_owned(),
            |n| format!("the first {n} books")
        ),
        if with_ratings {
            "with raters and ratings"
        } else {
            "books only"
        }
    );
    let batch_id = goodbooks::derive(&format!("goodbooks:batch:{source}"));
    batch::start(&*store, batch_id, BatchKind::Import, &source, None).await?;
    eprintln!("import batch {batch_id} ({source})");
    // A finished batch holds every fact already: answer the re-run from its record instead of
    // reading every stream. (A reverted import stays reverted: its command ids are in the log.)
    let (recorded, _) = bulk::load::<ImportBatch>(&*store, &import::stream_id(batch_id))
        .await
        .context("reading the import batch")?;
    let finished = recorded.completed().is_some();
    if let Some(by) = recorded.reverted_by() {
        eprintln!("this import was reverted by batch {by}; its facts stay reverted");
    } else if finished {
        eprintln!("this import finished before: nothing to do");
    }

    let mut users = [PhaseStats::default(), PhaseStats::default()];
    let mut books_ratings = [PhaseStats::default(), PhaseStats::default()];
    if finished {
        users[0] = PhaseStats::replayed(data.users.len() as u64);
        books_ratings = [
            PhaseStats::replayed(data.books.len() as u64),
            PhaseStats::replayed(data.rating_stats.unique),
        ];
    } else {
        import_streams(
            &*store,
            &data,
            batch_id,
            concurrency,
            &mut users,
            &mut books_ratings,
            &mut errors,
        )
        .await?;
    }
    let [books, ratings] = books_ratings;
    let [users, _] = users;
    let events = books.events + users.events + ratings.events;
    let failed: u64 = [&books, &users, &ratings].iter().map(|p| p.failed).sum();
    if failed == 0 && !finished {
        batch::complete(
            &*store,
            batch_id,
            (data.books.len() + data.users.len()) as u64,
            events,
        )
        .await?;
    }
    drop(store);

    let elapsed_secs = started.elapsed().as_secs_f64();
    let commands = books.sent + users.sent + ratings.sent;
    let summary = Summary {
        dataset: args.dir.display().to_string(),
        batch: batch_id.to_string(),
        backend,
        events_appended: events,
        books,
        users,
        ratings,
        books_skipped: data.books_skipped,
        isbn: data.isbn,
        rating_rows: data.rating_stats,
        commands,
        read_secs,
        elapsed_secs,
        commands_per_sec: commands as f64 / (elapsed_secs - read_secs).max(1e-9),
        first_errors: errors,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    let bad: u64 = [&summary.books, &summary.users, &summary.ratings]
        .iter()
        .map(|p| p.rejected + p.failed)
        .sum();
    anyhow::ensure!(
        bad == 0,
        "{bad} commands were rejected or failed (see the summary)"
    );
    Ok(())
}

/// The namespace of the ids the Gutenberg importer derives. Fixed forever, like goodbooks'.
const GUTENBERG_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x9a41_2f6c_5b0e_4c3d_8e17_d2c4_61b9_03fa);

/// One imported Gutenberg file.
#[derive(Debug, Serialize)]
struct GutenbergImported {
    file: String,
    book_id: String,
    title: String,
    authors: Vec<String>,
    ebook: Option<u32>,
    sha256: String,
    bytes: u64,
    /// `added`, or `present` when the book was in the catalogue before.
    book: &'static str,
    /// `attached`, or `unchanged` when the book had this text already.
    text: &'static str,
}

async fn import_gutenberg(settings: &Settings, args: GutenbergArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.files.len() == 1
            || (args.book_id.is_none() && args.title.is_none() && args.author.is_none()),
        "--book-id, --title and --author name one book: give them with one FILE"
    );
    let genres = args
        .genres
        .iter()
        .map(|g| quire_domain::values::Genre::parse(g.clone()))
        .collect::<Result<Vec<_>, _>>()
        .context("--genre")?;
    let store = open_store(settings).await?;
    let texts = settings
        .text_store()
        .context("opening the book text store ([texts])")?;
    let bus = LocalBus::new(store.clone(), settings.actor_config());
    let mut imported = Vec::new();
    let mut result = Ok(());
    for file in &args.files {
        match import_gutenberg_file(&bus, &texts, &args, &genres, file).await {
            Ok(done) => imported.push(done),
            Err(error) => {
                result = Err(error.context(format!("importing {}", file.display())));
                break;
            }
        }
    }
    bus.shutdown(Duration::from_secs(settings.shutdown_timeout_secs))
        .await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&imported)?);
    } else if !imported.is_empty() {
        let mut table = new_table();
        table.set_header(vec![
            "file", "title", "author", "eBook", "book", "text", "bytes",
        ]);
        for i in &imported {
            table.add_row(vec![
                i.file.clone(),
                i.title.clone(),
                i.authors.join(", "),
                i.ebook.map_or_else(String::new, |n| n.to_string()),
                format!("{} ({})", i.book_id, i.book),
                format!("{}… ({})", &i.sha256[..12], i.text),
                i.bytes.to_string(),
            ]);
        }
        println!("{table}");
        eprintln!("texts are in {}", texts.location());
    }
    result
}

/// Reads one file, stores its text, adds its book (unless `--book-id`) and attaches the text. The
/// text is stored before the commands that record it, so a recorded text is always there.
async fn import_gutenberg_file(
    bus: &LocalBus,
    texts: &quire_texts::TextStore,
    args: &GutenbergArgs,
    genres: &[quire_domain::values::Genre],
    file: &std::path::Path,
) -> anyhow::Result<GutenbergImported> {
    let raw = tokio::fs::read(file)
        .await
        .with_context(|| format!("reading {}", file.display()))?;
    let raw = String::from_utf8(raw).context("the file is not UTF-8")?;
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let ebook_from_name = gutenberg::ebook_from_file_name(name);
    let parsed = tokio::task::spawn_blocking(move || gutenberg::parse(&raw)).await?;
    let ebook = parsed.ebook.or(ebook_from_name);
    let title = args
        .title
        .clone()
        .or(parsed.title)
        .context("no title found in the Gutenberg header or title page: pass --title")?;
    let authors = match &args.author {
        Some(author) => vec![author.clone()],
        None => parsed.authors,
    };
    anyhow::ensure!(
        !authors.is_empty(),
        "no author found in the Gutenberg header or title page: pass --author"
    );
    anyhow::ensure!(!parsed.body.trim().is_empty(), "the file holds no text");
    let catalogue_title = quire_domain::values::Title::parse(title.clone()).context("the title")?;
    let catalogue_authors = authors
        .iter()
        .map(|a| quire_domain::values::AuthorName::parse(a.clone()))
        .collect::<Result<Vec<_>, _>>()
        .context("the author")?;
    // Stored first (it is then found, not written, by a re-run): a recorded text is always there,
    // and its address names a file without an eBook number.
    let stored = texts
        .put(bytes::Bytes::from(parsed.body.into_bytes()))
        .await
        .context("storing the text")?;
    // The same eBook is the same book on every run; a file without a number is known by its text.
    let key = match ebook {
        Some(n) => format!("ebook:{n}"),
        None => format!("sha256:{}", stored.sha256),
    };
    let derive = |what: &str| {
        uuid::Uuid::new_v5(&GUTENBERG_NAMESPACE, format!("gutenberg:{what}").as_bytes())
    };
    let (book_id, book) = match args.book_id {
        Some(book_id) => (book_id, "present"),
        None => {
            let book_id = quire_domain::ids::BookId::from_uuid(derive(&format!("book:{key}")));
            let add = CommandEnvelope::new(
                Principal::system(),
                Command::Book {
                    book_id,
                    command: BookCommand::AddBook {
                        book_id,
                        title: catalogue_title,
                        authors: catalogue_authors,
                        genres: genres.to_vec(),
                        year_published: None,
                        isbn: None,
                        description: None,
                    },
                },
            )
            .with_command_id(derive(&format!("cmd:add-book:{key}")));
            let added = match dispatch_with_retry(bus, add).await.1 {
                // A replayed command was applied by an earlier run.
                Ok(outcome) if outcome.event_count > 0 && !outcome.replayed => "added",
                Ok(_) => "present",
                Err(CommandError::Rejected(r)) if r.code == "already_exists" => "present",
                Err(error) => return Err(anyhow::Error::new(error).context("adding the book")),
            };
            (book_id, added)
        }
    };
    let source = match ebook {
        Some(n) => format!("gutenberg:{n}"),
        None => "gutenberg".to_owned(),
    };
    let attach = CommandEnvelope::new(
        Principal::system(),
        Command::Book {
            book_id,
            command: BookCommand::SetText {
                text: quire_domain::book::BookText {
                    sha256: stored.sha256.clone(),
                    bytes: stored.bytes,
                    source,
                },
            },
        },
    )
    .with_command_id(derive(&format!("cmd:set-text:{book_id}:{}", stored.sha256)));
    let outcome = dispatch_with_retry(bus, attach)
        .await
        .1
        .context("attaching the text")?;
    Ok(GutenbergImported {
        file: file.display().to_string(),
        book_id: book_id.to_string(),
        title,
        authors,
        ebook,
        sha256: stored.sha256,
        bytes: stored.bytes,
        book,
        text: if outcome.event_count > 0 && !outcome.replayed {
            "attached"
        } else {
            "unchanged"
        },
    })
}

/// Writes the raters' streams, then each book's stream (the book and its ratings as reviews).
async fn import_streams(
    store: &dyn quire_store::EventStore,
    data: &goodbooks::Dataset,
    batch_id: Uuid,
    concurrency: usize,
    users: &mut [PhaseStats; 2],
    books_ratings: &mut [PhaseStats; 2],
    errors: &mut Vec<String>,
) -> anyhow::Result<()> {
    // Raters first: every review's author exists before the review.
    let user_streams = data.users.iter().map(|&id| {
        let stream = goodbooks::user_id(id).stream_id();
        (stream, vec![register_user(id, batch_id)], usize::MAX)
    });
    let phase = Phase::new("users", data.users.len() as u64, ALREADY_PRESENT, true);
    run_streams::<quire_domain::user::User>(store, phase, user_streams, concurrency, users, errors)
        .await?;
    // Each book's stream is written whole: the book, then its ratings as reviews.
    let book_streams = data.books.iter().zip(&data.ratings).map(|(book, ratings)| {
        let (stream, commands) = book_commands(book, ratings, batch_id);
        (stream, commands, 1)
    });
    let phase = Phase::new("books", data.books.len() as u64, ALREADY_PRESENT, true);
    run_streams::<quire_domain::book::Book>(
        store,
        phase,
        book_streams,
        concurrency,
        books_ratings,
        errors,
    )
    .await?;
    Ok(())
}

/// A goodbooks command: its id derives from `name`, and it is correlated with the batch, as
/// everything an import brings in is.
fn imported<C>(principal: Principal, command: C, name: &str, batch: Uuid) -> CommandEnvelope<C> {
    let mut envelope =
        CommandEnvelope::new(principal, command).with_command_id(goodbooks::derive(name));
    envelope.correlation_id = batch;
    envelope
}

/// A book's stream: the book, then its ratings as reviews by their members.
fn book_commands(
    book: &GbBook,
    ratings: &[(u32, quire_domain::values::Rating)],
    batch: Uuid,
) -> (String, Vec<CommandEnvelope<BookCommand>>) {
    let book_id = goodbooks::book_id(book.id);
    let mut commands = Vec::with_capacity(1 + ratings.len());
    commands.push(imported(
        Principal::system(),
        BookCommand::AddBook {
            book_id,
            title: book.title.clone(),
            authors: book.authors.clone(),
            genres: book.genres.clone(),
            year_published: book.year,
            isbn: book.isbn.clone(),
            description: None,
        },
        &format!("goodbooks:cmd:add-book:{}", book.id),
        batch,
    ));
    commands.extend(ratings.iter().map(|&(user, rating)| {
        imported(
            Principal::member(goodbooks::user_id(user)),
            BookCommand::PostReview {
                review_id: goodbooks::review_id(book.id, user),
                rating,
                text: ReviewText::empty(),
            },
            &format!("goodbooks:cmd:post-review:{}:{user}", book.id),
            batch,
        )
    }));
    (book_id.stream_id(), commands)
}

fn register_user(id: u32, batch: Uuid) -> CommandEnvelope<UserCommand> {
    let user_id = goodbooks::user_id(id);
    let name = PersonName::parse(format!("Goodbooks reader {id}")).expect("a valid name");
    imported(
        Principal::system(),
        UserCommand::Register {
            user_id,
            name,
            username: None,
            email: None,
            role: Role::Member,
            password_hash: None,
        },
        &format!("goodbooks:cmd:register-user:{id}"),
        batch,
    )
}

/// Rejection codes that mean "this is already there", not an error.
const ALREADY_PRESENT: &[&str] = &["already_exists", "review_already_exists", "review_id_taken"];

/// One pass of bulk writes: its name (for progress and errors), how many streams it writes,
/// the refusals that count as "already there", and whether its streams are expected to be new.
pub(crate) struct Phase {
    name: &'static str,
    streams: u64,
    present: &'static [&'static str],
    new_streams: bool,
}

impl Phase {
    pub(crate) fn new(
        name: &'static str,
        streams: u64,
        present: &'static [&'static str],
        new_streams: bool,
    ) -> Self {
        Self {
            name,
            streams,
            present,
            new_streams,
        }
    }
}

/// Writes each stream's commands straight to the store (`quire_actors::bulk`), `concurrency`
/// streams at a time; concurrent streams' appends share the store's group commits. A stream comes
/// with the index of its first command counted in `stats[1]`; those before count in `stats[0]`.
pub(crate) async fn run_streams<A: quire_domain::Aggregate>(
    store: &dyn quire_store::EventStore,
    phase: Phase,
    streams: impl Iterator<Item = (String, Vec<CommandEnvelope<A::Command>>, usize)>,
    concurrency: usize,
    stats: &mut [PhaseStats; 2],
    errors: &mut Vec<String>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let name = phase.name;
    let mut progress = Progress::new(name, phase.streams);
    let phase = &phase;
    let mut results = futures::stream::iter(streams)
        .map(|(stream_id, commands, split)| async move {
            let result = write_with_retry::<A>(store, &stream_id, &commands, phase).await;
            (stream_id, commands.len(), split, result)
        })
        .buffer_unordered(concurrency);
    while let Some((stream_id, sent, split, result)) = results.next().await {
        let slot = |index: usize| usize::from(index >= split);
        match result {
            Ok(write) => {
                for (index, decision) in write.decisions.iter().enumerate() {
                    let stats = &mut stats[slot(index)];
                    stats.sent += 1;
                    stats.count(decision);
                    if let Decision::Rejected { code, message } = decision
                        && errors.len() < FIRST_ERRORS
                    {
                        errors.push(format!("{name}: {stream_id}: {code}: {message}"));
                    }
                }
            }
            Err(error) => {
                for index in 0..sent {
                    stats[slot(index)].sent += 1;
                    stats[slot(index)].failed += 1;
                }
                if errors.len() < FIRST_ERRORS {
                    errors.push(format!("{name}: {stream_id}: {error}"));
                }
                let failed: u64 = stats.iter().map(|s| s.failed).sum();
                if failed >= MAX_FAILURES {
                    progress.finish();
                    anyhow::bail!(
                        "stopping after {failed} failed {name} commands; first: {}",
                        errors.first().map_or("", String::as_str)
                    );
                }
            }
        }
        progress.inc();
    }
    progress.finish();
    for stats in stats.iter_mut() {
        stats.elapsed_secs = started.elapsed().as_secs_f64();
    }
    Ok(())
}

/// One stream's bulk write, retried (it is idempotent) when the store failed for a transient
/// reason.
async fn write_with_retry<A: quire_domain::Aggregate>(
    store: &dyn quire_store::EventStore,
    stream_id: &str,
    commands: &[CommandEnvelope<A::Command>],
    phase: &Phase,
) -> Result<bulk::StreamWrite, CommandError> {
    let mut attempt = 1;
    loop {
        let new_stream = phase.new_streams && attempt == 1;
        let result =
            bulk::write_stream::<A>(store, stream_id, commands, new_stream, phase.present).await;
        let transient = matches!(
            result,
            Err(CommandError::Store(_) | CommandError::Contention { .. })
        );
        if !transient || attempt >= ATTEMPTS {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
        attempt += 1;
    }
}

async fn dispatch_with_retry(
    bus: &LocalBus,
    envelope: CommandEnvelope<Command>,
) -> (String, Result<CommandOutcome, CommandError>) {
    let stream_id = envelope.command.stream_id();
    let mut attempt = 1;
    loop {
        let result = bus.dispatch(envelope.clone()).await;
        let transient = matches!(
            result,
            Err(CommandError::Store(_)
                | CommandError::Unavailable(_)
                | CommandError::Contention { .. })
        );
        if !transient || attempt >= ATTEMPTS {
            return (stream_id, result);
        }
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
        attempt += 1;
    }
}

/// A progress bar on a terminal; otherwise a line on stderr at every 10 %, so logs show progress.
struct Progress {
    phase: &'static str,
    total: u64,
    done: u64,
    bar: Option<ProgressBar>,
    last_decile: u64,
}

impl Progress {
    fn new(phase: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:40}] {pos}/{len} {per_sec} eta {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(phase);
            bar
        });
        Self {
            phase,
            total,
            done: 0,
            bar,
            last_decile: 0,
        }
    }

    fn inc(&mut self) {
        self.done += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            return;
        }
        let decile = self.done * 10 / self.total.max(1);
        if decile > self.last_decile {
            self.last_decile = decile;
            eprintln!(
                "{}: {}/{} ({}%)",
                self.phase,
                self.done,
                self.total,
                decile * 10
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

fn print_summary(s: &Summary) {
    let mut table = new_table();
    table.set_header(vec![
        "phase",
        "sent",
        "new",
        "replayed",
        "already present",
        "rejected",
        "failed",
        "events",
        "seconds",
    ]);
    for (name, p) in [
        ("books", &s.books),
        ("users", &s.users),
        ("ratings", &s.ratings),
    ] {
        table.add_row(vec![
            name.to_string(),
            p.sent.to_string(),
            p.new.to_string(),
            p.replayed.to_string(),
            p.already_present.to_string(),
            p.rejected.to_string(),
            p.failed.to_string(),
            p.events.to_string(),
            format!("{:.1}", p.elapsed_secs),
        ]);
    }
    println!("{table}");
    let r = &s.rating_rows;
    let mut facts = new_table();
    for (k, v) in [
        ("backend", s.backend.clone()),
        (
            "books skipped (no title/author)",
            s.books_skipped.len().to_string(),
        ),
        (
            "ISBNs (from isbn13 / isbn10 / invalid / missing)",
            format!(
                "{} / {} / {} / {}",
                s.isbn.from_isbn13, s.isbn.from_isbn10, s.isbn.invalid, s.isbn.missing
            ),
        ),
        ("rating rows read", r.rows.to_string()),
        (
            "rating rows of books not imported",
            r.skipped_rows.to_string(),
        ),
        (
            "duplicated (book, user) pairs resolved (last row wins)",
            r.duplicate_pairs.to_string(),
        ),
        ("… of which conflicting", r.conflicting_pairs.to_string()),
        (
            "duplicate rows dropped",
            r.duplicate_rows_dropped.to_string(),
        ),
        ("commands", s.commands.to_string()),
        ("events appended", s.events_appended.to_string()),
        ("reading CSV", format!("{:.1} s", s.read_secs)),
        ("elapsed", format!("{:.1} s", s.elapsed_secs)),
        ("commands/s", format!("{:.0}", s.commands_per_sec)),
    ] {
        facts.add_row(vec![k.to_string(), v]);
    }
    println!("{facts}");
    for skipped in &s.books_skipped {
        println!("skipped book: {skipped}");
    }
    for error in &s.first_errors {
        println!("error: {error}");
    }
}

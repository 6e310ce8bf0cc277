//! The summary worker: makes the summaries the books read model says are due, and records each as
//! a command, so summaries are events like everything else, with their provenance. A book with a
//! full text is summarised from the text (read from the text store), else from its description.
//!
//! One worker runs per deployment (in a cluster, on the node holding the `summaries` lease). Its
//! commands have ids derived from the book, the kind, the version covered, the prompt version and
//! the backend, so a worker that dies mid-way and a successor that redoes the job write the summary
//! once. A job that fails waits (doubling, up to 10 minutes) before it is tried again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use quire_actors::{Command, CommandBus, CommandEnvelope, CommandError, RejectionKind};
use quire_domain::Principal;
use quire_domain::book::{BookCommand, SummaryProvenance};
use quire_domain::values::SummaryText;
use quire_projections::{
    BookView, PageRequest, ProjectionName, ReadModels, SummaryJob, SummaryKind,
};
use quire_summarize::{BookFacts, ReviewInput, Subject, Summarizer, SummaryRequest};
use quire_texts::TextStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Timing of the worker.
#[derive(Debug, Clone)]
pub(crate) struct JobOptions {
    /// Reviews must be quiet this long before their summary is remade.
    pub debounce: Duration,
    /// …unless the last review summary is older than this.
    pub max_wait: Duration,
    /// How often to look for due jobs without a wake-up.
    pub poll: Duration,
    /// Reviews given to a summary.
    pub max_reviews: u32,
}

impl Default for JobOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_secs(30),
            max_wait: Duration::from_secs(600),
            poll: Duration::from_secs(5),
            max_reviews: 100,
        }
    }
}

/// The running worker.
pub(crate) struct JobsHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl JobsHandle {
    /// Stops after the current job.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "summary worker failed");
        }
    }
}

pub(crate) fn spawn(
    read: ReadModels,
    bus: Arc<dyn CommandBus>,
    summarizer: Arc<Summarizer>,
    texts: TextStore,
    options: JobOptions,
) -> JobsHandle {
    let (stop, stopped) = watch::channel(false);
    let worker = Worker {
        read,
        bus,
        summarizer,
        texts,
        options,
        backoff: HashMap::new(),
    };
    JobsHandle {
        stop,
        task: tokio::spawn(worker.run(stopped)),
    }
}

struct Worker {
    read: ReadModels,
    bus: Arc<dyn CommandBus>,
    summarizer: Arc<Summarizer>,
    /// Books' full texts: a book summary is made from the text when the book has one.
    texts: TextStore,
    options: JobOptions,
    /// Failed jobs: when they may be tried again, and the last delay.
    backoff: HashMap<SummaryJob, (Instant, Duration)>,
}

impl Worker {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        let info = self.summarizer.info();
        tracing::info!(backend = %info.backend, model = %info.model, "summary worker started");
        // New books and reviews move the books checkpoint: look again at once.
        let mut books = self.read.checkpoint_watch(ProjectionName::Books);
        while !*stopped.borrow() {
            let worked = match self.round(&mut stopped).await {
                Ok(n) => n,
                Err(error) => {
                    tracing::warn!(error = %error, "finding due summaries failed");
                    0
                }
            };
            if worked > 0 {
                continue;
            }
            let changed = async {
                let _ = books.changed().await;
            };
            let woken = tokio::select! {
                stop = stopped.changed() => {
                    if stop.is_err() {
                        break;
                    }
                    false
                }
                _ = tokio::time::sleep(self.options.poll) => false,
                _ = changed => true,
            };
            if woken {
                // Let a burst of writes land before looking.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        tracing::info!("summary worker stopped");
    }

    /// Makes the due summaries; returns how many were attempted.
    async fn round(
        &mut self,
        stopped: &mut watch::Receiver<bool>,
    ) -> Result<usize, quire_projections::ReadModelError> {
        let now = quire_store::now_micros();
        let jobs = self
            .read
            .due_summary_jobs(
                now - self.options.debounce.as_micros() as i64,
                now - self.options.max_wait.as_micros() as i64,
                16,
            )
            .await?;
        let mut attempted = 0;
        for job in jobs {
            if *stopped.borrow() {
                break;
            }
            if self
                .backoff
                .get(&job)
                .is_some_and(|(until, _)| Instant::now() < *until)
            {
                continue;
            }
            attempted += 1;
            match self.make(job).await {
                Ok(()) => {
                    self.backoff.remove(&job);
                }
                Err(error) => {
                    let delay = self
                        .backoff
                        .get(&job)
                        .map_or(Duration::from_secs(5), |(_, d)| {
                            (*d * 2).min(Duration::from_secs(600))
                        });
                    tracing::warn!(book_id = %job.book_id, kind = job.kind.as_str(), %error, retry_in = ?delay, "summary job failed");
                    self.backoff.insert(job, (Instant::now() + delay, delay));
                }
            }
        }
        // Forget jobs that are no longer due (their book moved on or was summarized).
        if self.backoff.len() > 10_000 {
            self.backoff.retain(|_, (until, _)| Instant::now() < *until);
        }
        Ok(attempted)
    }

    /// What a book summary is made from: the full text when the book has one, else its
    /// description. A text the store cannot give is an error (the job is retried), not a reason
    /// to summarise the description instead: that summary would then be recorded as covering
    /// this version.
    async fn book_text(&self, book: &BookView) -> anyhow::Result<Option<String>> {
        let Some(text) = &book.text else {
            return Ok(book.description.clone());
        };
        let bytes = self
            .texts
            .get(&text.sha256)
            .await
            .with_context(|| format!("reading the text of book {}", book.id))?
            .with_context(|| {
                format!(
                    "the text of book {} ({}) is not in the text store at {}",
                    book.id,
                    text.sha256,
                    self.texts.location()
                )
            })?;
        let text = String::from_utf8(Vec::from(bytes))
            .with_context(|| format!("the text of book {} is not UTF-8", book.id))?;
        Ok(Some(text))
    }

    #[tracing::instrument(name = "summary.job", skip(self), fields(book_id = %job.book_id, kind = job.kind.as_str(), covers = job.covers_version))]
    async fn make(&self, job: SummaryJob) -> anyhow::Result<()> {
        let Some(book) = self.read.book(job.book_id).await? else {
            return Ok(());
        };
        let reviews = self
            .read
            .reviews(
                job.book_id,
                &PageRequest {
                    cursor: None,
                    limit: self.options.max_reviews,
                },
            )
            .await?
            .items
            .into_iter()
            .map(|r| ReviewInput {
                rating: r.rating,
                text: r.review_text,
            })
            .collect();
        let facts = BookFacts {
            title: book.title.clone(),
            authors: book.authors.clone(),
            genres: book.genres.clone(),
            year: book.year_published,
        };
        let request = match job.kind {
            SummaryKind::Book => SummaryRequest {
                subject: Subject::Book,
                book: Some(facts),
                text: self.book_text(&book).await?,
                reviews,
            },
            SummaryKind::Reviews => SummaryRequest {
                subject: Subject::Reviews,
                book: Some(facts),
                text: None,
                reviews,
            },
        };
        let summary = self.summarizer.summarize(request).await;
        // Model output may carry control characters, which summaries refuse like any text:
        // dropped here (line breaks and tabs kept) rather than failing the job.
        let text: String = summary
            .text
            .chars()
            .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
            .take(SummaryText::MAX_CHARS)
            .collect();
        let Ok(text) = SummaryText::parse(text) else {
            anyhow::bail!("the summarizer produced an empty summary");
        };
        let provenance = SummaryProvenance {
            backend: summary.backend.backend.clone(),
            model: summary.backend.model.clone(),
            prompt_version: summary.prompt_version.clone(),
            covers_version: job.covers_version,
            fallback_reason: summary.fallback_reason.clone(),
        };
        let command = match job.kind {
            SummaryKind::Book => BookCommand::SetSummary {
                summary: text,
                source: format!("{}:{}", provenance.backend, provenance.model)
                    .chars()
                    .take(quire_domain::book::MAX_SUMMARY_SOURCE_CHARS)
                    .collect(),
                provenance: Some(provenance.clone()),
            },
            SummaryKind::Reviews => BookCommand::SetReviewSummary {
                summary: text,
                provenance: provenance.clone(),
            },
        };
        let command_id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!(
                "quire:summary:{}:{}:{}:{}:{}:{}",
                job.book_id,
                job.kind.as_str(),
                job.covers_version,
                provenance.prompt_version,
                provenance.backend,
                provenance.model
            )
            .as_bytes(),
        );
        let mut envelope = CommandEnvelope::new(
            Principal::system(),
            Command::Book {
                book_id: job.book_id,
                command,
            },
        )
        .with_command_id(command_id);
        // Each job is a trace of its own; its events carry it like a request's.
        envelope.traceparent = Some(quire_actors::new_traceparent(None));
        match self.bus.dispatch(envelope).await {
            Ok(_) => {
                tracing::info!(backend = %provenance.backend, fallback = provenance.fallback_reason.is_some(), "summary recorded");
                Ok(())
            }
            // The book was removed meanwhile: nothing to summarize.
            Err(CommandError::Rejected(r))
                if matches!(r.kind, RejectionKind::Gone | RejectionKind::NotFound) =>
            {
                Ok(())
            }
            // A worker before this one recorded a summary of this version (its text may differ).
            Err(CommandError::KeyReused(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

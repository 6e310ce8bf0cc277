//! What the summary jobs read: a book's summaries with their provenance and staleness, and which
//! books need a summary made.
//!
//! The jobs are a view of the books read model: a book needs a book summary when it has none (or
//! a generated one older than its last content change), and a review summary when its reviews
//! changed after the last review summary — once they have been quiet for a debounce period, or
//! when the last review summary is older than a maximum wait (so a book reviewed non-stop still
//! gets one). Summaries written by editors are never replaced.

use quire_domain::book::SummaryProvenance;
use quire_domain::ids::BookId;

use crate::db::Arg;
use crate::{ReadModelError, ReadModels};

/// A book's summaries as the read model has them.
#[derive(Debug, Clone, PartialEq)]
pub struct SummariesView {
    pub summary: Option<String>,
    pub summary_source: Option<String>,
    pub summary_provenance: Option<SummaryProvenance>,
    /// A generated summary made before the book's last content change.
    pub summary_stale: bool,
    pub review_summary: Option<String>,
    pub review_summary_provenance: Option<SummaryProvenance>,
    /// Reviews changed after the review summary was made (or there is none yet).
    pub review_summary_stale: bool,
    pub content_version: u64,
    pub reviews_version: u64,
}

/// What to summarize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SummaryKind {
    Book,
    Reviews,
}

impl SummaryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Book => "book",
            Self::Reviews => "reviews",
        }
    }
}

/// A summary to make: of `kind`, covering the book as of `covers_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SummaryJob {
    pub book_id: BookId,
    pub kind: SummaryKind,
    pub covers_version: u64,
}

#[derive(sqlx::FromRow)]
struct SummariesRow {
    summary: Option<String>,
    summary_source: Option<String>,
    summary_provenance: Option<String>,
    summary_covers: Option<i64>,
    review_summary: Option<String>,
    review_summary_provenance: Option<String>,
    review_summary_covers: Option<i64>,
    content_version: i64,
    reviews_version: i64,
}

#[derive(sqlx::FromRow)]
struct DueRow {
    id: String,
    content_version: i64,
    reviews_version: i64,
    book_due: bool,
    reviews_due: bool,
}

impl ReadModels {
    /// A book's summaries, or `None` for a book not in the catalogue.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn summaries(&self, id: BookId) -> Result<Option<SummariesView>, ReadModelError> {
        let rows: Vec<SummariesRow> = self
            .fetch_all(
                "reading summaries",
                "SELECT summary, summary_source, summary_provenance, summary_covers, \
                 review_summary, review_summary_provenance, review_summary_covers, \
                 content_version, reviews_version FROM rm_books WHERE id = $1 AND NOT removed",
                &[Arg::Text(id.to_string())],
            )
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let parse = |json: Option<String>| -> Option<SummaryProvenance> {
            json.and_then(|j| serde_json::from_str(&j).ok())
        };
        Ok(Some(SummariesView {
            summary_stale: row
                .summary_covers
                .is_some_and(|covers| covers < row.content_version),
            review_summary_stale: row.reviews_version > 0
                && row
                    .review_summary_covers
                    .is_none_or(|covers| covers < row.reviews_version),
            summary: row.summary,
            summary_source: row.summary_source,
            summary_provenance: parse(row.summary_provenance),
            review_summary: row.review_summary,
            review_summary_provenance: parse(row.review_summary_provenance),
            content_version: row.content_version as u64,
            reviews_version: row.reviews_version as u64,
        }))
    }

    /// Up to `limit` summaries to make, oldest change first. Review summaries are due once reviews
    /// were quiet since `quiet_since`, or when the last one was made before `overdue_before`
    /// (microseconds since the epoch).
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn due_summary_jobs(
        &self,
        quiet_since: i64,
        overdue_before: i64,
        limit: u32,
    ) -> Result<Vec<SummaryJob>, ReadModelError> {
        let book_due = "(summary IS NULL OR summary_covers IS NOT NULL) \
                        AND COALESCE(summary_covers, -1) < content_version";
        let reviews_due = "reviews_version > COALESCE(review_summary_covers, 0) \
                           AND (reviews_changed_at <= $1 OR COALESCE(review_summary_at, 0) <= $2)";
        let rows: Vec<DueRow> = self
            .fetch_all(
                "finding due summaries",
                &format!(
                    "SELECT id, content_version, reviews_version, ({book_due}) AS book_due, \
                     ({reviews_due}) AS reviews_due FROM rm_books \
                     WHERE NOT removed AND (({book_due}) OR ({reviews_due})) \
                     ORDER BY updated_at, id LIMIT $3"
                ),
                &[
                    Arg::I64(quiet_since),
                    Arg::I64(overdue_before),
                    Arg::I64(i64::from(limit)),
                ],
            )
            .await?;
        let mut jobs = Vec::new();
        for row in rows {
            let book_id: BookId = row
                .id
                .parse()
                .map_err(|_| ReadModelError::Corrupt(format!("book id {}", row.id)))?;
            if row.book_due {
                jobs.push(SummaryJob {
                    book_id,
                    kind: SummaryKind::Book,
                    covers_version: row.content_version as u64,
                });
            }
            if row.reviews_due {
                jobs.push(SummaryJob {
                    book_id,
                    kind: SummaryKind::Reviews,
                    covers_version: row.reviews_version as u64,
                });
            }
        }
        Ok(jobs)
    }
}

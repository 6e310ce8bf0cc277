//! The book aggregate: a catalogue entry with its metadata, generated summary and member reviews.
//!
//! A book's stream holds its reviews too, because the rule "at most one live review per member per
//! book" can only be enforced where all of a book's reviews are seen together.

mod events;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainError, ErrorKind};
use crate::auth::{CommandContext, Principal};
use crate::ids::{BookId, ReviewId, UserId};
use crate::serde_util::double_option;
use crate::values::{
    AuthorName, Description, Genre, Isbn, Rating, ReviewText, SummaryText, Title, Year,
};

pub use events::{BookChanges, BookEvent, BookText, SummaryProvenance};

/// The longest summary source label, in characters.
pub const MAX_SUMMARY_SOURCE_CHARS: usize = 200;

/// The longest label of where a book's text came from (`upload`, `gutenberg:84`), in characters.
pub const MAX_TEXT_SOURCE_CHARS: usize = 200;

/// The most authors a book may list. Anthologies credit dozens of contributors (the largest in
/// goodbooks-10k lists 47); thousands are abuse, which every reader of the book would pay for.
pub const MAX_AUTHORS: usize = 50;

/// The most genres a book may have, counted after duplicates are dropped.
pub const MAX_GENRES: usize = 30;

/// Commands a book accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BookCommand {
    /// Adds a book to the catalogue (admin or system only): 1 to [`MAX_AUTHORS`] authors and at
    /// most [`MAX_GENRES`] genres.
    AddBook {
        book_id: BookId,
        title: Title,
        authors: Vec<AuthorName>,
        #[serde(default)]
        genres: Vec<Genre>,
        #[serde(default)]
        year_published: Option<Year>,
        #[serde(default)]
        isbn: Option<Isbn>,
        #[serde(default)]
        description: Option<Description>,
    },
    /// Patches a book (admin or system only). An absent field is left alone; for the optional
    /// metadata, `Some(None)` (JSON `null`) clears it. The lists have the bounds of `AddBook`.
    UpdateBook {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<Title>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authors: Option<Vec<AuthorName>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        genres: Option<Vec<Genre>>,
        #[serde(
            default,
            deserialize_with = "double_option",
            skip_serializing_if = "Option::is_none"
        )]
        year_published: Option<Option<Year>>,
        #[serde(
            default,
            deserialize_with = "double_option",
            skip_serializing_if = "Option::is_none"
        )]
        isbn: Option<Option<Isbn>>,
        #[serde(
            default,
            deserialize_with = "double_option",
            skip_serializing_if = "Option::is_none"
        )]
        description: Option<Option<Description>>,
    },
    /// Removes a book from the catalogue (admin or system only); its stream is kept.
    RemoveBook,
    /// Records a summary; `source` says what produced it, e.g. a model name, and `provenance`
    /// (for generated summaries) which backend, model and prompt, and which book version.
    SetSummary {
        summary: SummaryText,
        source: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provenance: Option<SummaryProvenance>,
    },
    /// Attaches the book's full text (admin or system only). The text itself is kept outside the
    /// log, addressed by its SHA-256 (see ARCHITECTURE.md, "Book texts"); the command carries only
    /// what the event records. Attaching the text the book already has, from the same source, is a
    /// no-op.
    SetText { text: BookText },
    /// Detaches the book's full text (admin or system only); the stored bytes are left to the
    /// text store, which may share them with another book.
    RemoveText,
    /// Records a generated summary of the book's reviews (system or admin).
    SetReviewSummary {
        summary: SummaryText,
        provenance: SummaryProvenance,
    },
    /// Posts the principal's review of the book.
    PostReview {
        review_id: ReviewId,
        rating: Rating,
        text: ReviewText,
    },
    /// Changes the principal's own review; absent fields are left alone.
    EditReview {
        review_id: ReviewId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rating: Option<Rating>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<ReviewText>,
    },
    /// Deletes a review (its author, an admin or the system).
    DeleteReview { review_id: ReviewId },
}

/// Why a book command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// The book was never added.
    #[error("book not found")]
    NotFound,
    /// The book was added before.
    #[error("book already exists")]
    AlreadyExists,
    /// The book was removed from the catalogue.
    #[error("book has been removed")]
    Removed,
    /// The principal may not do this.
    #[error("not allowed to {action}")]
    Forbidden { action: &'static str },
    /// No review with this id exists on the book.
    #[error("review {review_id} not found")]
    ReviewNotFound { review_id: ReviewId },
    /// The review was deleted.
    #[error("review {review_id} has been deleted")]
    ReviewDeleted { review_id: ReviewId },
    /// The member already has a live review of this book.
    #[error("member {member_id} already reviewed this book in review {review_id}")]
    ReviewAlreadyExists {
        member_id: UserId,
        review_id: ReviewId,
    },
    /// A review with this id was posted before (possibly deleted since).
    #[error("review id {review_id} is already taken")]
    ReviewIdTaken { review_id: ReviewId },
    /// Only the author may edit a review.
    #[error("only the author may change review {review_id}")]
    NotReviewAuthor { review_id: ReviewId },
    /// A book needs at least one author.
    #[error("a book needs at least one author")]
    MissingAuthors,
    /// More authors than a book may list.
    #[error("a book may list at most {max} authors, got {count}")]
    TooManyAuthors { count: usize, max: usize },
    /// More genres than a book may have.
    #[error("a book may have at most {max} genres, got {count}")]
    TooManyGenres { count: usize, max: usize },
    /// Reviews are posted by users; the principal has no user id.
    #[error("posting a review requires a signed-in user")]
    ReviewerRequired,
    /// The summary source label is blank, too long or not one line.
    #[error("summary source must be 1 to 200 characters on one line")]
    InvalidSummarySource,
    /// A text reference that cannot describe a stored text.
    #[error("invalid book text: {reason}")]
    InvalidText { reason: &'static str },
    /// The book has no full text to remove.
    #[error("the book has no full text")]
    NoText,
}

impl DomainError for BookError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Removed => "book_removed",
            Self::Forbidden { .. } => "forbidden",
            Self::ReviewNotFound { .. } => "review_not_found",
            Self::ReviewDeleted { .. } => "review_deleted",
            Self::ReviewAlreadyExists { .. } => "review_already_exists",
            Self::ReviewIdTaken { .. } => "review_id_taken",
            Self::NotReviewAuthor { .. } => "not_review_author",
            Self::MissingAuthors => "missing_authors",
            Self::TooManyAuthors { .. } => "too_many_authors",
            Self::TooManyGenres { .. } => "too_many_genres",
            Self::ReviewerRequired => "reviewer_required",
            Self::InvalidSummarySource => "invalid_summary_source",
            Self::InvalidText { .. } => "invalid_text",
            Self::NoText => "no_text",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound | Self::ReviewNotFound { .. } | Self::NoText => ErrorKind::NotFound,
            Self::AlreadyExists | Self::ReviewAlreadyExists { .. } | Self::ReviewIdTaken { .. } => {
                ErrorKind::Conflict
            }
            Self::Removed | Self::ReviewDeleted { .. } => ErrorKind::Gone,
            Self::Forbidden { .. } | Self::NotReviewAuthor { .. } => ErrorKind::Forbidden,
            Self::MissingAuthors
            | Self::TooManyAuthors { .. }
            | Self::TooManyGenres { .. }
            | Self::ReviewerRequired
            | Self::InvalidSummarySource
            | Self::InvalidText { .. } => ErrorKind::Invalid,
        }
    }
}

/// One review as the book knows it; deleted reviews are kept, without their text, so their ids
/// stay taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    id: ReviewId,
    member_id: UserId,
    rating: Rating,
    text: ReviewText,
    deleted: bool,
}

impl Review {
    /// The review's id.
    pub fn id(&self) -> ReviewId {
        self.id
    }

    /// The member who wrote it.
    pub fn member_id(&self) -> UserId {
        self.member_id
    }

    /// The current rating.
    pub fn rating(&self) -> Rating {
        self.rating
    }

    /// The current text; empty once the review is deleted.
    pub fn text(&self) -> &ReviewText {
        &self.text
    }

    /// Whether the review was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }
}

/// The book aggregate's state.
#[derive(Debug, Clone, Default)]
pub struct Book {
    id: Option<BookId>,
    removed: bool,
    title: Option<Title>,
    authors: Vec<AuthorName>,
    genres: Vec<Genre>,
    year_published: Option<Year>,
    isbn: Option<Isbn>,
    description: Option<Description>,
    summary: Option<SummaryText>,
    summary_source: Option<String>,
    summary_provenance: Option<SummaryProvenance>,
    review_summary: Option<SummaryText>,
    review_summary_provenance: Option<SummaryProvenance>,
    text: Option<BookText>,
    /// Events applied: the stream version.
    version: u64,
    /// The version of the last change to the book's own data (added, updated).
    content_version: u64,
    /// The version of the last change to its reviews.
    reviews_version: u64,
    reviews: BTreeMap<ReviewId, Review>,
    live_reviews: BTreeMap<UserId, ReviewId>,
}

impl Book {
    /// Whether the book was ever added (it may have been removed since).
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    /// The book's id, once added.
    pub fn id(&self) -> Option<BookId> {
        self.id
    }

    /// Whether the book was removed from the catalogue.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// The title, once added.
    pub fn title(&self) -> Option<&Title> {
        self.title.as_ref()
    }

    /// The authors, in order; never empty once added.
    pub fn authors(&self) -> &[AuthorName] {
        &self.authors
    }

    /// The genres, without duplicates, in order.
    pub fn genres(&self) -> &[Genre] {
        &self.genres
    }

    /// The publication year, if known.
    pub fn year_published(&self) -> Option<Year> {
        self.year_published
    }

    /// The ISBN, if known.
    pub fn isbn(&self) -> Option<&Isbn> {
        self.isbn.as_ref()
    }

    /// The description, if any.
    pub fn description(&self) -> Option<&Description> {
        self.description.as_ref()
    }

    /// The latest generated summary, if any.
    pub fn summary(&self) -> Option<&SummaryText> {
        self.summary.as_ref()
    }

    /// What produced the latest summary, if any.
    pub fn summary_source(&self) -> Option<&str> {
        self.summary_source.as_deref()
    }

    /// Where the latest summary came from, when it was generated.
    pub fn summary_provenance(&self) -> Option<&SummaryProvenance> {
        self.summary_provenance.as_ref()
    }

    /// The book's full text as the log records it (hash, size, source), if it has one.
    pub fn text(&self) -> Option<&BookText> {
        self.text.as_ref()
    }

    /// The latest summary of the reviews, and where it came from.
    pub fn review_summary(&self) -> Option<(&SummaryText, &SummaryProvenance)> {
        self.review_summary
            .as_ref()
            .zip(self.review_summary_provenance.as_ref())
    }

    /// The stream version after the last change to the book's own data.
    pub fn content_version(&self) -> u64 {
        self.content_version
    }

    /// The stream version after the last change to its reviews (0: never reviewed).
    pub fn reviews_version(&self) -> u64 {
        self.reviews_version
    }

    /// The live (not deleted) reviews, ordered by review id.
    pub fn reviews(&self) -> impl Iterator<Item = &Review> {
        self.reviews.values().filter(|review| !review.deleted)
    }

    /// Any review by id, deleted or not.
    pub fn review(&self, review_id: ReviewId) -> Option<&Review> {
        self.reviews.get(&review_id)
    }

    /// The member's live review of this book, if any.
    pub fn live_review_of(&self, member_id: UserId) -> Option<&Review> {
        self.live_reviews
            .get(&member_id)
            .and_then(|review_id| self.reviews.get(review_id))
    }

    /// The number of live reviews.
    pub fn review_count(&self) -> usize {
        self.live_reviews.len()
    }

    /// The mean rating of the live reviews, if there are any.
    pub fn average_rating(&self) -> Option<f64> {
        let count = self.review_count();
        if count == 0 {
            return None;
        }
        let total: u32 = self.reviews().map(|r| u32::from(r.rating.value())).sum();
        Some(f64::from(total) / count as f64)
    }

    /// Checks that the book can be changed: it exists and was not removed.
    fn ensure_live(&self) -> Result<(), BookError> {
        if !self.exists() {
            return Err(BookError::NotFound);
        }
        if self.removed {
            return Err(BookError::Removed);
        }
        Ok(())
    }

    /// Finds a live review, telling an unknown id apart from a deleted review.
    fn live_review(&self, review_id: ReviewId) -> Result<&Review, BookError> {
        match self.reviews.get(&review_id) {
            None => Err(BookError::ReviewNotFound { review_id }),
            Some(review) if review.deleted => Err(BookError::ReviewDeleted { review_id }),
            Some(review) => Ok(review),
        }
    }

    fn decide_update(
        &self,
        title: Option<&Title>,
        authors: Option<&Vec<AuthorName>>,
        genres: Option<&Vec<Genre>>,
        year_published: Option<Option<Year>>,
        isbn: Option<&Option<Isbn>>,
        description: Option<&Option<Description>>,
    ) -> Result<Vec<BookEvent>, BookError> {
        if let Some(authors) = authors {
            check_authors(authors)?;
        }
        let genres = genres.map(|g| dedup_genres(g.clone()));
        if let Some(genres) = &genres {
            check_genres(genres)?;
        }
        // Only fields that differ from the current state go into the event, so the event says
        // exactly what changed and a repeated update is a no-op.
        let changes = BookChanges {
            title: title.filter(|t| self.title.as_ref() != Some(*t)).cloned(),
            authors: authors.filter(|a| **a != self.authors).cloned(),
            genres: genres.filter(|g| *g != self.genres),
            year_published: year_published.filter(|y| *y != self.year_published),
            isbn: isbn.filter(|i| **i != self.isbn).cloned(),
            description: description.filter(|d| **d != self.description).cloned(),
        };
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![BookEvent::BookUpdated(changes)])
    }
}

/// Refuses principals that may not administer the catalogue.
fn require_privileged(principal: &Principal, action: &'static str) -> Result<(), BookError> {
    if principal.is_privileged() {
        Ok(())
    } else {
        Err(BookError::Forbidden { action })
    }
}

/// Checks a book's author list: 1 to [`MAX_AUTHORS`].
fn check_authors(authors: &[AuthorName]) -> Result<(), BookError> {
    if authors.is_empty() {
        return Err(BookError::MissingAuthors);
    }
    if authors.len() > MAX_AUTHORS {
        return Err(BookError::TooManyAuthors {
            count: authors.len(),
            max: MAX_AUTHORS,
        });
    }
    Ok(())
}

/// Checks a book's genres, without duplicates: at most [`MAX_GENRES`].
fn check_genres(genres: &[Genre]) -> Result<(), BookError> {
    if genres.len() > MAX_GENRES {
        return Err(BookError::TooManyGenres {
            count: genres.len(),
            max: MAX_GENRES,
        });
    }
    Ok(())
}

/// Whether a summary source label is 1 to [`MAX_SUMMARY_SOURCE_CHARS`] characters on one line.
fn valid_summary_source(source: &str) -> bool {
    valid_label(source, MAX_SUMMARY_SOURCE_CHARS)
}

/// Whether `label` is 1 to `max` characters on one line.
fn valid_label(label: &str, max: usize) -> bool {
    !label.is_empty() && label.chars().count() <= max && !label.chars().any(char::is_control)
}

/// Whether a text's source label is 1 to [`MAX_TEXT_SOURCE_CHARS`] characters on one line,
/// without surrounding spaces (the API checks it before storing any bytes).
pub fn valid_text_source(source: &str) -> bool {
    source.trim() == source && valid_label(source, MAX_TEXT_SOURCE_CHARS)
}

/// Checks what a `SetText` records: a SHA-256 in lowercase hex, a size, a one-line source.
fn check_text(text: &BookText) -> Result<(), BookError> {
    let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if text.sha256.len() != 64 || !text.sha256.chars().all(hex) {
        return Err(BookError::InvalidText {
            reason: "sha256 must be 64 lowercase hex digits",
        });
    }
    if text.bytes == 0 {
        return Err(BookError::InvalidText {
            reason: "a text must not be empty",
        });
    }
    if !valid_text_source(&text.source) {
        return Err(BookError::InvalidText {
            reason: "source must be 1 to 200 characters on one line, without surrounding spaces",
        });
    }
    Ok(())
}

/// Removes repeated genres, keeping the first occurrence of each.
fn dedup_genres(genres: Vec<Genre>) -> Vec<Genre> {
    let mut unique: Vec<Genre> = Vec::with_capacity(genres.len());
    for genre in genres {
        if !unique.contains(&genre) {
            unique.push(genre);
        }
    }
    unique
}

impl BookId {
    /// The id of the book's event stream, "book-{id}".
    pub fn stream_id(&self) -> String {
        format!("{}-{self}", Book::CATEGORY)
    }
}

impl Aggregate for Book {
    type Command = BookCommand;
    type Event = BookEvent;
    type Error = BookError;

    const CATEGORY: &'static str = "book";

    fn decide(
        &self,
        command: &BookCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<BookEvent>, BookError> {
        let principal = &ctx.principal;
        match command {
            BookCommand::AddBook {
                book_id,
                title,
                authors,
                genres,
                year_published,
                isbn,
                description,
            } => {
                require_privileged(principal, "add books")?;
                if self.exists() {
                    return Err(BookError::AlreadyExists);
                }
                check_authors(authors)?;
                let genres = dedup_genres(genres.clone());
                check_genres(&genres)?;
                Ok(vec![BookEvent::BookAdded {
                    book_id: *book_id,
                    title: title.clone(),
                    authors: authors.clone(),
                    genres,
                    year_published: *year_published,
                    isbn: isbn.clone(),
                    description: description.clone(),
                }])
            }
            BookCommand::UpdateBook {
                title,
                authors,
                genres,
                year_published,
                isbn,
                description,
            } => {
                require_privileged(principal, "update books")?;
                self.ensure_live()?;
                self.decide_update(
                    title.as_ref(),
                    authors.as_ref(),
                    genres.as_ref(),
                    *year_published,
                    isbn.as_ref(),
                    description.as_ref(),
                )
            }
            BookCommand::RemoveBook => {
                require_privileged(principal, "remove books")?;
                self.ensure_live()?;
                Ok(vec![BookEvent::BookRemoved])
            }
            BookCommand::SetSummary {
                summary,
                source,
                provenance,
            } => {
                require_privileged(principal, "set summaries")?;
                self.ensure_live()?;
                let source = source.trim();
                if !valid_summary_source(source) {
                    return Err(BookError::InvalidSummarySource);
                }
                // Re-running the summary engine with the same result must not grow the stream.
                if self.summary.as_ref() == Some(summary)
                    && self.summary_source() == Some(source)
                    && self.summary_provenance.as_ref() == provenance.as_ref()
                {
                    return Ok(Vec::new());
                }
                Ok(vec![BookEvent::BookSummarySet {
                    summary: summary.clone(),
                    source: source.to_owned(),
                    provenance: provenance.clone(),
                }])
            }
            BookCommand::SetText { text } => {
                require_privileged(principal, "attach texts")?;
                self.ensure_live()?;
                check_text(text)?;
                if self.text.as_ref() == Some(text) {
                    return Ok(Vec::new());
                }
                Ok(vec![BookEvent::BookTextSet { text: text.clone() }])
            }
            BookCommand::RemoveText => {
                require_privileged(principal, "remove texts")?;
                self.ensure_live()?;
                if self.text.is_none() {
                    return Err(BookError::NoText);
                }
                Ok(vec![BookEvent::BookTextRemoved])
            }
            BookCommand::SetReviewSummary {
                summary,
                provenance,
            } => {
                require_privileged(principal, "set summaries")?;
                self.ensure_live()?;
                if !valid_summary_source(provenance.backend.trim()) {
                    return Err(BookError::InvalidSummarySource);
                }
                if self.review_summary.as_ref() == Some(summary)
                    && self.review_summary_provenance.as_ref() == Some(provenance)
                {
                    return Ok(Vec::new());
                }
                Ok(vec![BookEvent::ReviewSummarySet {
                    summary: summary.clone(),
                    provenance: provenance.clone(),
                }])
            }
            BookCommand::PostReview {
                review_id,
                rating,
                text,
            } => {
                self.ensure_live()?;
                let member_id = principal.user_id.ok_or(BookError::ReviewerRequired)?;
                if self.reviews.contains_key(review_id) {
                    return Err(BookError::ReviewIdTaken {
                        review_id: *review_id,
                    });
                }
                if let Some(existing) = self.live_reviews.get(&member_id) {
                    return Err(BookError::ReviewAlreadyExists {
                        member_id,
                        review_id: *existing,
                    });
                }
                Ok(vec![BookEvent::ReviewPosted {
                    review_id: *review_id,
                    member_id,
                    rating: *rating,
                    text: text.clone(),
                }])
            }
            BookCommand::EditReview {
                review_id,
                rating,
                text,
            } => {
                self.ensure_live()?;
                let review = self.live_review(*review_id)?;
                // Not even an admin may put words in a member's mouth; admins delete instead.
                if !principal.is_user(review.member_id) {
                    return Err(BookError::NotReviewAuthor {
                        review_id: *review_id,
                    });
                }
                let rating = rating.filter(|r| *r != review.rating);
                let text = text.as_ref().filter(|t| **t != review.text).cloned();
                if rating.is_none() && text.is_none() {
                    return Ok(Vec::new());
                }
                Ok(vec![BookEvent::ReviewEdited {
                    review_id: *review_id,
                    rating,
                    text,
                }])
            }
            BookCommand::DeleteReview { review_id } => {
                self.ensure_live()?;
                let review = self.live_review(*review_id)?;
                if !principal.is_user_or_privileged(review.member_id) {
                    return Err(BookError::NotReviewAuthor {
                        review_id: *review_id,
                    });
                }
                Ok(vec![BookEvent::ReviewDeleted {
                    review_id: *review_id,
                    member_id: review.member_id,
                    deleted_by: principal.user_id,
                }])
            }
        }
    }

    fn apply(&mut self, event: &BookEvent) {
        self.version += 1;
        match event {
            // The text is content too: a new text makes the book's summary stale.
            BookEvent::BookAdded { .. }
            | BookEvent::BookUpdated(_)
            | BookEvent::BookTextSet { .. }
            | BookEvent::BookTextRemoved => {
                self.content_version = self.version;
            }
            BookEvent::ReviewPosted { .. }
            | BookEvent::ReviewEdited { .. }
            | BookEvent::ReviewDeleted { .. } => self.reviews_version = self.version,
            _ => {}
        }
        match event {
            BookEvent::BookAdded {
                book_id,
                title,
                authors,
                genres,
                year_published,
                isbn,
                description,
            } => {
                self.id = Some(*book_id);
                self.removed = false;
                self.title = Some(title.clone());
                self.authors = authors.clone();
                self.genres = genres.clone();
                self.year_published = *year_published;
                self.isbn = isbn.clone();
                self.description = description.clone();
            }
            BookEvent::BookUpdated(changes) => {
                if let Some(title) = &changes.title {
                    self.title = Some(title.clone());
                }
                if let Some(authors) = &changes.authors {
                    self.authors = authors.clone();
                }
                if let Some(genres) = &changes.genres {
                    self.genres = genres.clone();
                }
                if let Some(year_published) = changes.year_published {
                    self.year_published = year_published;
                }
                if let Some(isbn) = &changes.isbn {
                    self.isbn = isbn.clone();
                }
                if let Some(description) = &changes.description {
                    self.description = description.clone();
                }
            }
            BookEvent::BookRemoved => self.removed = true,
            BookEvent::BookTextSet { text } => self.text = Some(text.clone()),
            BookEvent::BookTextRemoved => self.text = None,
            BookEvent::BookSummarySet {
                summary,
                source,
                provenance,
            } => {
                self.summary = Some(summary.clone());
                self.summary_source = Some(source.clone());
                self.summary_provenance = provenance.clone();
            }
            BookEvent::ReviewSummarySet {
                summary,
                provenance,
            } => {
                self.review_summary = Some(summary.clone());
                self.review_summary_provenance = Some(provenance.clone());
            }
            BookEvent::ReviewPosted {
                review_id,
                member_id,
                rating,
                text,
            } => {
                self.reviews.insert(
                    *review_id,
                    Review {
                        id: *review_id,
                        member_id: *member_id,
                        rating: *rating,
                        text: text.clone(),
                        deleted: false,
                    },
                );
                self.live_reviews.insert(*member_id, *review_id);
            }
            BookEvent::ReviewEdited {
                review_id,
                rating,
                text,
            } => {
                if let Some(review) = self.reviews.get_mut(review_id) {
                    if let Some(rating) = rating {
                        review.rating = *rating;
                    }
                    if let Some(text) = text {
                        review.text = text.clone();
                    }
                }
            }
            BookEvent::ReviewDeleted {
                review_id,
                member_id,
                ..
            } => {
                if let Some(review) = self.reviews.get_mut(review_id) {
                    review.deleted = true;
                    // The member took their words back: nothing needs them any more (a deleted
                    // review can be neither edited nor shown), so the state does not keep them.
                    review.text = ReviewText::empty();
                }
                if self.live_reviews.get(member_id) == Some(review_id) {
                    self.live_reviews.remove(member_id);
                }
            }
        }
    }
}

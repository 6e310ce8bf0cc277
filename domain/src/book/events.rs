//! Book events and their stored schema, one private payload struct per type and version.
//!
//! The payload structs are the storage contract; the public enum can be refactored freely as long
//! as `to_payload` and `from_stored` keep mapping onto them. Reading an older version upcasts it
//! to the current variant here, so the aggregate and projections only ever see the current shape.

use serde::{Deserialize, Serialize};

use crate::aggregate::{DomainEvent, EventDecodeError};
use crate::ids::{BookId, ReviewId, UserId};
use crate::serde_util::{decode_payload, double_option, encode_payload};
use crate::values::{
    AuthorName, Description, Genre, Isbn, Rating, ReviewText, SummaryText, Title, Year,
};

const BOOK_ADDED: &str = "BookAdded";
const BOOK_UPDATED: &str = "BookUpdated";
const BOOK_REMOVED: &str = "BookRemoved";
const BOOK_SUMMARY_SET: &str = "BookSummarySet";
const REVIEW_SUMMARY_SET: &str = "ReviewSummarySet";
const BOOK_TEXT_SET: &str = "BookTextSet";
const BOOK_TEXT_REMOVED: &str = "BookTextRemoved";
const REVIEW_POSTED: &str = "ReviewPosted";
const REVIEW_EDITED: &str = "ReviewEdited";
const REVIEW_DELETED: &str = "ReviewDeleted";

/// Facts recorded in a book's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookEvent {
    /// The book entered the catalogue (schema version 2).
    BookAdded {
        book_id: BookId,
        title: Title,
        authors: Vec<AuthorName>,
        genres: Vec<Genre>,
        year_published: Option<Year>,
        isbn: Option<Isbn>,
        description: Option<Description>,
    },
    /// Some metadata changed; only the changed fields are present.
    BookUpdated(BookChanges),
    /// The book left the catalogue.
    BookRemoved,
    /// The book's full text was attached (or replaced); the text is stored outside the log.
    BookTextSet { text: BookText },
    /// The book's full text was detached.
    BookTextRemoved,
    /// A summary was set for the book (schema version 2: with provenance).
    BookSummarySet {
        summary: SummaryText,
        source: String,
        /// What generated it and which version of the book it covers (`None` for summaries
        /// written by editors, and for version 1 events).
        provenance: Option<SummaryProvenance>,
    },
    /// A summary of the book's reviews was generated.
    ReviewSummarySet {
        summary: SummaryText,
        provenance: SummaryProvenance,
    },
    /// A member reviewed the book.
    ReviewPosted {
        review_id: ReviewId,
        member_id: UserId,
        rating: Rating,
        text: ReviewText,
    },
    /// The author changed their review; only the changed fields are present.
    ReviewEdited {
        review_id: ReviewId,
        rating: Option<Rating>,
        text: Option<ReviewText>,
    },
    /// A review was deleted; `deleted_by` is `None` when an internal engine deleted it.
    ReviewDeleted {
        review_id: ReviewId,
        member_id: UserId,
        deleted_by: Option<UserId>,
    },
}

/// The fields a `BookUpdated` event changed.
///
/// `None` means unchanged. For the optional metadata (`year_published`, `isbn`, `description`),
/// `Some(None)` means the value was cleared. In the stored payload an unchanged field is absent and
/// a cleared field is an explicit `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookChanges {
    pub title: Option<Title>,
    pub authors: Option<Vec<AuthorName>>,
    pub genres: Option<Vec<Genre>>,
    pub year_published: Option<Option<Year>>,
    pub isbn: Option<Option<Isbn>>,
    pub description: Option<Option<Description>>,
}

impl BookChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.authors.is_none()
            && self.genres.is_none()
            && self.year_published.is_none()
            && self.isbn.is_none()
            && self.description.is_none()
    }
}

/// A book's full text as the log records it. The text itself is kept in a text store outside the
/// log (a directory, or S3-compatible object storage), addressed by `sha256`: a novel is megabytes,
/// which would make every replay of the book's stream read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookText {
    /// The SHA-256 of the UTF-8 text, in lowercase hex: its address in the text store, and proof
    /// that what is read back is what was attached.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Where it came from: `upload`, `gutenberg:84`, …
    pub source: String,
}

/// `BookTextSet` version 1.
#[derive(Serialize, Deserialize)]
struct BookTextSetV1 {
    sha256: String,
    bytes: u64,
    source: String,
}

/// `BookTextRemoved` version 1 carries nothing; the stream says which book.
#[derive(Serialize, Deserialize)]
struct BookTextRemovedV1 {}

/// `BookAdded` version 1, from the seed design: a single author and at most one genre, as plain
/// strings.
///
/// The seed payload did not carry the book id (it lived only in the stream name), so a reader
/// holding such a payload must insert `book_id` from the stream id before decoding.
#[derive(Deserialize)]
struct BookAddedV1 {
    #[serde(default)]
    book_id: Option<BookId>,
    title: Title,
    author: String,
    #[serde(default)]
    genre: Option<String>,
    #[serde(default)]
    year_published: Option<Year>,
    #[serde(default)]
    isbn: Option<Isbn>,
    #[serde(default)]
    description: Option<Description>,
}

/// `BookAdded` version 2: several authors and genres. Absent optional fields and `null` both mean
/// "unknown"; this code always writes them, as `null` when unknown.
#[derive(Serialize, Deserialize)]
struct BookAddedV2 {
    book_id: BookId,
    title: Title,
    authors: Vec<AuthorName>,
    genres: Vec<Genre>,
    #[serde(default)]
    year_published: Option<Year>,
    #[serde(default)]
    isbn: Option<Isbn>,
    #[serde(default)]
    description: Option<Description>,
}

/// `BookUpdated` version 1: an absent field is unchanged; `null` clears an optional field (and is
/// read as "unchanged" for the required ones, which cannot be cleared).
#[derive(Serialize, Deserialize)]
struct BookUpdatedV1 {
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
}

/// `BookRemoved` version 1 carries nothing; the stream says which book.
#[derive(Serialize, Deserialize)]
struct BookRemovedV1 {}

/// `BookSummarySet` version 1.
#[derive(Serialize, Deserialize)]
struct BookSummarySetV1 {
    summary: SummaryText,
    source: String,
}

/// `BookSummarySet` version 2 adds the provenance of generated summaries.
#[derive(Serialize, Deserialize)]
struct BookSummarySetV2 {
    summary: SummaryText,
    source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provenance: Option<ProvenanceV1>,
}

/// `ReviewSummarySet` version 1.
#[derive(Serialize, Deserialize)]
struct ReviewSummarySetV1 {
    summary: SummaryText,
    provenance: ProvenanceV1,
}

/// The stored form of [`SummaryProvenance`], version 1.
#[derive(Serialize, Deserialize)]
struct ProvenanceV1 {
    backend: String,
    model: String,
    prompt_version: String,
    covers_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fallback_reason: Option<String>,
}

impl From<&SummaryProvenance> for ProvenanceV1 {
    fn from(p: &SummaryProvenance) -> Self {
        Self {
            backend: p.backend.clone(),
            model: p.model.clone(),
            prompt_version: p.prompt_version.clone(),
            covers_version: p.covers_version,
            fallback_reason: p.fallback_reason.clone(),
        }
    }
}

impl From<ProvenanceV1> for SummaryProvenance {
    fn from(p: ProvenanceV1) -> Self {
        Self {
            backend: p.backend,
            model: p.model,
            prompt_version: p.prompt_version,
            covers_version: p.covers_version,
            fallback_reason: p.fallback_reason,
        }
    }
}

/// Where a generated summary came from, so a stale or outdated one can be found and regenerated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryProvenance {
    /// `extractive`, `gguf`, `openai`, `ollama`.
    pub backend: String,
    /// The model (file or server name).
    pub model: String,
    /// The summarizer's prompt version.
    pub prompt_version: String,
    /// The book's version the summary was made from: its content version for a book summary,
    /// its reviews version for a review summary. Later changes make the summary stale.
    pub covers_version: u64,
    /// Why the model's answer was replaced by the extractive one, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// `ReviewPosted` version 1.
#[derive(Serialize, Deserialize)]
struct ReviewPostedV1 {
    review_id: ReviewId,
    member_id: UserId,
    rating: Rating,
    text: ReviewText,
}

/// `ReviewEdited` version 1; an absent field was not changed.
#[derive(Serialize, Deserialize)]
struct ReviewEditedV1 {
    review_id: ReviewId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rating: Option<Rating>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<ReviewText>,
}

/// `ReviewDeleted` version 1; `deleted_by` is `null` when an internal engine deleted the review.
#[derive(Serialize, Deserialize)]
struct ReviewDeletedV1 {
    review_id: ReviewId,
    member_id: UserId,
    deleted_by: Option<UserId>,
}

impl BookEvent {
    /// The schema version written for `BookAdded`.
    pub const BOOK_ADDED_VERSION: u32 = 2;

    /// The review a review event (posted, edited, deleted) is about; `None` for the book's own
    /// events.
    pub fn review_id(&self) -> Option<ReviewId> {
        match self {
            Self::ReviewPosted { review_id, .. }
            | Self::ReviewEdited { review_id, .. }
            | Self::ReviewDeleted { review_id, .. } => Some(*review_id),
            _ => None,
        }
    }

    /// The event with the words a member wrote in a review taken out (the text becomes empty),
    /// for showing the event of a review that was deleted since. The facts stay: which review,
    /// whose, its rating, when. The result is still a valid event (an empty review text is one),
    /// so what erases stored payloads later can write it back and replays keep working. Events
    /// without a member's text are returned as they are.
    pub fn without_review_text(self) -> Self {
        match self {
            Self::ReviewPosted {
                review_id,
                member_id,
                rating,
                text: _,
            } => Self::ReviewPosted {
                review_id,
                member_id,
                rating,
                text: ReviewText::empty(),
            },
            Self::ReviewEdited {
                review_id,
                rating,
                text,
            } => Self::ReviewEdited {
                review_id,
                rating,
                // An edit that changed the text still says it did, without the words.
                text: text.map(|_| ReviewText::empty()),
            },
            other => other,
        }
    }
}

impl DomainEvent for BookEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::BookAdded { .. } => BOOK_ADDED,
            Self::BookUpdated(_) => BOOK_UPDATED,
            Self::BookRemoved => BOOK_REMOVED,
            Self::BookTextSet { .. } => BOOK_TEXT_SET,
            Self::BookTextRemoved => BOOK_TEXT_REMOVED,
            Self::BookSummarySet { .. } => BOOK_SUMMARY_SET,
            Self::ReviewSummarySet { .. } => REVIEW_SUMMARY_SET,
            Self::ReviewPosted { .. } => REVIEW_POSTED,
            Self::ReviewEdited { .. } => REVIEW_EDITED,
            Self::ReviewDeleted { .. } => REVIEW_DELETED,
        }
    }

    fn schema_version(&self) -> u32 {
        match self {
            Self::BookAdded { .. } => Self::BOOK_ADDED_VERSION,
            Self::BookSummarySet { .. } => 2,
            _ => 1,
        }
    }

    fn to_payload(&self) -> serde_json::Value {
        match self {
            Self::BookAdded {
                book_id,
                title,
                authors,
                genres,
                year_published,
                isbn,
                description,
            } => encode_payload(&BookAddedV2 {
                book_id: *book_id,
                title: title.clone(),
                authors: authors.clone(),
                genres: genres.clone(),
                year_published: *year_published,
                isbn: isbn.clone(),
                description: description.clone(),
            }),
            Self::BookUpdated(changes) => encode_payload(&BookUpdatedV1 {
                title: changes.title.clone(),
                authors: changes.authors.clone(),
                genres: changes.genres.clone(),
                year_published: changes.year_published,
                isbn: changes.isbn.clone(),
                description: changes.description.clone(),
            }),
            Self::BookRemoved => encode_payload(&BookRemovedV1 {}),
            Self::BookTextSet { text } => encode_payload(&BookTextSetV1 {
                sha256: text.sha256.clone(),
                bytes: text.bytes,
                source: text.source.clone(),
            }),
            Self::BookTextRemoved => encode_payload(&BookTextRemovedV1 {}),
            Self::BookSummarySet {
                summary,
                source,
                provenance,
            } => encode_payload(&BookSummarySetV2 {
                summary: summary.clone(),
                source: source.clone(),
                provenance: provenance.as_ref().map(ProvenanceV1::from),
            }),
            Self::ReviewSummarySet {
                summary,
                provenance,
            } => encode_payload(&ReviewSummarySetV1 {
                summary: summary.clone(),
                provenance: provenance.into(),
            }),
            Self::ReviewPosted {
                review_id,
                member_id,
                rating,
                text,
            } => encode_payload(&ReviewPostedV1 {
                review_id: *review_id,
                member_id: *member_id,
                rating: *rating,
                text: text.clone(),
            }),
            Self::ReviewEdited {
                review_id,
                rating,
                text,
            } => encode_payload(&ReviewEditedV1 {
                review_id: *review_id,
                rating: *rating,
                text: text.clone(),
            }),
            Self::ReviewDeleted {
                review_id,
                member_id,
                deleted_by,
            } => encode_payload(&ReviewDeletedV1 {
                review_id: *review_id,
                member_id: *member_id,
                deleted_by: *deleted_by,
            }),
        }
    }

    fn from_stored(
        event_type: &str,
        schema_version: u32,
        payload: &serde_json::Value,
    ) -> Result<Self, EventDecodeError> {
        let decode_error = |reason: &str| {
            EventDecodeError::malformed(event_type, schema_version, reason.to_owned())
        };
        match (event_type, schema_version) {
            (BOOK_ADDED, 1) => {
                let v1: BookAddedV1 = decode_payload(event_type, schema_version, payload)?;
                let book_id = v1.book_id.ok_or_else(|| {
                    decode_error("book_id is missing; insert it from the stream id before decoding")
                })?;
                let author = AuthorName::parse(v1.author)
                    .map_err(|error| decode_error(&error.to_string()))?;
                // The seed design stored a free-text genre, possibly blank for "none".
                let genres = match v1.genre.filter(|g| !g.trim().is_empty()) {
                    Some(genre) => {
                        vec![
                            Genre::parse(genre)
                                .map_err(|error| decode_error(&error.to_string()))?,
                        ]
                    }
                    None => Vec::new(),
                };
                Ok(Self::BookAdded {
                    book_id,
                    title: v1.title,
                    authors: vec![author],
                    genres,
                    year_published: v1.year_published,
                    isbn: v1.isbn,
                    description: v1.description,
                })
            }
            (BOOK_ADDED, 2) => {
                let v2: BookAddedV2 = decode_payload(event_type, schema_version, payload)?;
                if v2.authors.is_empty() {
                    return Err(decode_error("authors must not be empty"));
                }
                Ok(Self::BookAdded {
                    book_id: v2.book_id,
                    title: v2.title,
                    authors: v2.authors,
                    genres: v2.genres,
                    year_published: v2.year_published,
                    isbn: v2.isbn,
                    description: v2.description,
                })
            }
            (BOOK_UPDATED, 1) => {
                let v1: BookUpdatedV1 = decode_payload(event_type, schema_version, payload)?;
                if v1.authors.as_ref().is_some_and(Vec::is_empty) {
                    return Err(decode_error("authors must not be empty"));
                }
                Ok(Self::BookUpdated(BookChanges {
                    title: v1.title,
                    authors: v1.authors,
                    genres: v1.genres,
                    year_published: v1.year_published,
                    isbn: v1.isbn,
                    description: v1.description,
                }))
            }
            (BOOK_REMOVED, 1) => {
                let BookRemovedV1 {} = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::BookRemoved)
            }
            (BOOK_TEXT_SET, 1) => {
                let v1: BookTextSetV1 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::BookTextSet {
                    text: BookText {
                        sha256: v1.sha256,
                        bytes: v1.bytes,
                        source: v1.source,
                    },
                })
            }
            (BOOK_TEXT_REMOVED, 1) => {
                let BookTextRemovedV1 {} = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::BookTextRemoved)
            }
            (BOOK_SUMMARY_SET, 1) => {
                let v1: BookSummarySetV1 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::BookSummarySet {
                    summary: v1.summary,
                    source: v1.source,
                    provenance: None,
                })
            }
            (BOOK_SUMMARY_SET, 2) => {
                let v2: BookSummarySetV2 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::BookSummarySet {
                    summary: v2.summary,
                    source: v2.source,
                    provenance: v2.provenance.map(SummaryProvenance::from),
                })
            }
            (REVIEW_SUMMARY_SET, 1) => {
                let v1: ReviewSummarySetV1 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::ReviewSummarySet {
                    summary: v1.summary,
                    provenance: v1.provenance.into(),
                })
            }
            (REVIEW_POSTED, 1) => {
                let v1: ReviewPostedV1 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::ReviewPosted {
                    review_id: v1.review_id,
                    member_id: v1.member_id,
                    rating: v1.rating,
                    text: v1.text,
                })
            }
            (REVIEW_EDITED, 1) => {
                let v1: ReviewEditedV1 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::ReviewEdited {
                    review_id: v1.review_id,
                    rating: v1.rating,
                    text: v1.text,
                })
            }
            (REVIEW_DELETED, 1) => {
                let v1: ReviewDeletedV1 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::ReviewDeleted {
                    review_id: v1.review_id,
                    member_id: v1.member_id,
                    deleted_by: v1.deleted_by,
                })
            }
            (
                BOOK_ADDED | BOOK_UPDATED | BOOK_REMOVED | BOOK_TEXT_SET | BOOK_TEXT_REMOVED
                | BOOK_SUMMARY_SET | REVIEW_SUMMARY_SET | REVIEW_POSTED | REVIEW_EDITED
                | REVIEW_DELETED,
                version,
            ) => Err(EventDecodeError::unsupported_version(event_type, version)),
            _ => Err(EventDecodeError::unknown_type(event_type)),
        }
    }
}

//! The API's request and response bodies. They are the public contract (the seed field names
//! first: `author`, `genre`, `year_published`, `summary`, `review_text`, …), kept apart from the
//! domain's types and the stored event schema so each can evolve on its own terms.

use quire_domain::book::Book;
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_projections::{BookView, RatingStats, ReviewView, UserView};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Formats a store timestamp (microseconds since the epoch) as RFC 3339.
pub fn rfc3339(micros: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A book to add. `author`/`genre` (one each, as the seed designs send them) and
/// `authors`/`genres` (several) are both accepted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBook {
    #[schema(example = "Frankenstein", min_length = 1, max_length = 500)]
    pub title: String,
    #[schema(example = "Mary Shelley")]
    pub author: Option<String>,
    pub authors: Option<Vec<String>>,
    #[schema(example = "gothic")]
    pub genre: Option<String>,
    pub genres: Option<Vec<String>>,
    #[schema(example = 1818, minimum = -3000, maximum = 2100)]
    pub year_published: Option<i32>,
    #[schema(example = "9780143131847")]
    pub isbn: Option<String>,
    pub description: Option<String>,
    /// An editor's summary of the book.
    pub summary: Option<String>,
}

/// Changes to a book: an absent field stays as it is; `null` clears an optional field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookChanges {
    pub title: Option<String>,
    pub author: Option<String>,
    pub authors: Option<Vec<String>>,
    pub genre: Option<String>,
    pub genres: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i32>)]
    pub year_published: Option<Option<i32>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub isbn: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Replaces the editor's summary.
    pub summary: Option<String>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A book.
#[derive(Debug, Serialize, ToSchema)]
pub struct BookDto {
    #[schema(value_type = String, format = Uuid)]
    pub id: BookId,
    pub title: String,
    /// The first author (the seed designs' single-author field).
    pub author: Option<String>,
    pub authors: Vec<String>,
    /// The first genre (the seed designs' single-genre field).
    pub genre: Option<String>,
    pub genres: Vec<String>,
    pub year_published: Option<i32>,
    pub isbn: Option<String>,
    pub description: Option<String>,
    pub summary: Option<String>,
    /// What wrote the summary: `editor`, `extractive`, a model name…
    pub summary_source: Option<String>,
    pub average_rating: Option<f64>,
    pub rating_count: u64,
    /// The book's version; also its `ETag`.
    pub version: u64,
    pub added_at: Option<String>,
    pub updated_at: Option<String>,
    /// The book's full text, if it has one (read it at `/books/{id}/text`).
    pub text: Option<BookTextDto>,
}

/// What is known of a book's full text without reading it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BookTextDto {
    /// The SHA-256 of the UTF-8 text, lowercase hex; also the `ETag` of `/books/{id}/text`.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Where it came from: `upload`, `gutenberg:84`, …
    pub source: String,
}

impl From<quire_domain::book::BookText> for BookTextDto {
    fn from(text: quire_domain::book::BookText) -> Self {
        Self {
            sha256: text.sha256,
            bytes: text.bytes,
            source: text.source,
        }
    }
}

/// A full text attached to a book.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachedText {
    #[schema(value_type = String, format = Uuid)]
    pub book_id: BookId,
    #[serde(flatten)]
    pub text: BookTextDto,
    /// Its length in characters.
    pub chars: u64,
    /// The book's version after the write.
    pub version: u64,
}

impl From<BookView> for BookDto {
    fn from(view: BookView) -> Self {
        Self {
            id: view.id,
            author: view.authors.first().cloned(),
            genre: view.genres.first().cloned(),
            title: view.title,
            authors: view.authors,
            genres: view.genres,
            year_published: view.year_published,
            isbn: view.isbn,
            description: view.description,
            summary: view.summary,
            summary_source: view.summary_source,
            average_rating: view.rating.average.map(round2),
            rating_count: view.rating.count,
            version: view.version,
            added_at: Some(rfc3339(view.added_at)),
            updated_at: Some(rfc3339(view.updated_at)),
            text: view.text.map(BookTextDto::from),
        }
    }
}

impl BookDto {
    /// The book as a folded aggregate (for `?as_of=`), at `version`.
    pub fn from_aggregate(book: &Book, version: u64) -> Option<Self> {
        let id = book.id()?;
        let authors: Vec<String> = book.authors().iter().map(ToString::to_string).collect();
        let genres: Vec<String> = book.genres().iter().map(ToString::to_string).collect();
        Some(Self {
            id,
            title: book.title()?.to_string(),
            author: authors.first().cloned(),
            genre: genres.first().cloned(),
            authors,
            genres,
            year_published: book.year_published().map(|y| y.value()),
            isbn: book.isbn().map(ToString::to_string),
            description: book.description().map(ToString::to_string),
            summary: book.summary().map(ToString::to_string),
            summary_source: book.summary_source().map(ToString::to_string),
            average_rating: book.average_rating().map(round2),
            rating_count: book.review_count() as u64,
            version,
            added_at: None,
            updated_at: None,
            text: book.text().cloned().map(BookTextDto::from),
        })
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// A page of books.
#[derive(Debug, Serialize, ToSchema)]
pub struct BookList {
    pub books: Vec<BookDto>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Filters, order and page of `GET /books`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BookListParams {
    /// Books by this author (case-insensitive, exact name).
    pub author: Option<String>,
    /// Books in this genre.
    pub genre: Option<String>,
    /// Books published in this year.
    pub year: Option<i32>,
    /// `title`, `year`, `rating` or `added`; prefix `-` for descending. Default `title`.
    pub sort: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page request on its own.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `?as_of=` on `GET /books/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AsOfParams {
    /// An RFC 3339 time: the book as it was then, folded from its events. A book with more
    /// events by then than the caller may fold (1,000 unless staff) is 422 `history_too_long`.
    pub as_of: Option<String>,
}

/// A review to post. `rating` 1–5; `review_text` may be empty for a rating alone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    #[schema(example = 5, minimum = 1, maximum = 5)]
    pub rating: i64,
    #[serde(default, alias = "text")]
    pub review_text: Option<String>,
    /// The reviewer; must be the caller, unless an admin posts on a member's behalf.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<UserId>,
}

/// Changes to a review; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewChanges {
    #[schema(minimum = 1, maximum = 5)]
    pub rating: Option<i64>,
    #[serde(default, alias = "text")]
    pub review_text: Option<String>,
}

/// A review.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewDto {
    #[schema(value_type = String, format = Uuid)]
    pub id: ReviewId,
    #[schema(value_type = String, format = Uuid)]
    pub book_id: BookId,
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    pub rating: u8,
    pub review_text: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<ReviewView> for ReviewDto {
    fn from(view: ReviewView) -> Self {
        Self {
            id: view.id,
            book_id: view.book_id,
            user_id: view.user_id,
            rating: view.rating,
            review_text: view.review_text,
            created_at: rfc3339(view.created_at),
            updated_at: rfc3339(view.updated_at),
        }
    }
}

/// A page of reviews, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewList {
    pub reviews: Vec<ReviewDto>,
    pub next_cursor: Option<String>,
}

/// The aggregated rating of a book.
#[derive(Debug, Serialize, ToSchema)]
pub struct RatingDto {
    pub average: Option<f64>,
    pub count: u64,
    /// How many ratings of each star value, keys "1" to "5".
    #[schema(value_type = Object, example = json!({"1": 0, "2": 1, "3": 4, "4": 9, "5": 12}))]
    pub distribution: std::collections::BTreeMap<String, u64>,
}

impl From<&RatingStats> for RatingDto {
    fn from(stats: &RatingStats) -> Self {
        Self {
            average: stats.average.map(round2),
            count: stats.count,
            distribution: (1..=5)
                .map(|stars| (stars.to_string(), stats.distribution[stars - 1]))
                .collect(),
        }
    }
}

/// `GET /books/{id}/summary`: the book's summary and its aggregated rating.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryDto {
    #[schema(value_type = String, format = Uuid)]
    pub book_id: BookId,
    pub title: String,
    pub summary: Option<String>,
    pub summary_source: Option<String>,
    /// The average rating (also inside `rating`, for clients of the seed design).
    pub average_rating: Option<f64>,
    pub review_count: u64,
    pub rating: RatingDto,
    /// What generated `summary` (absent for an editor's summary).
    pub summary_provenance: Option<ProvenanceDto>,
    /// The book changed after its generated summary was made; a new one is on its way.
    pub summary_stale: bool,
    /// What the reviews say, summarized (absent until the first review summary is made).
    pub review_summary: Option<String>,
    pub review_summary_provenance: Option<ProvenanceDto>,
    /// Reviews changed after the review summary was made; a new one is on its way.
    pub review_summary_stale: bool,
}

/// Where a generated summary came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvenanceDto {
    /// `extractive`, `gguf`, `openai` or `ollama`.
    pub backend: String,
    pub model: String,
    pub prompt_version: String,
    /// The book version (its content, or its reviews) the summary covers.
    pub covers_version: u64,
    /// Why the model's answer was replaced by the extractive summary, if it was.
    pub fallback_reason: Option<String>,
}

impl From<quire_domain::book::SummaryProvenance> for ProvenanceDto {
    fn from(p: quire_domain::book::SummaryProvenance) -> Self {
        Self {
            backend: p.backend,
            model: p.model,
            prompt_version: p.prompt_version,
            covers_version: p.covers_version,
            fallback_reason: p.fallback_reason,
        }
    }
}

/// A user to create. Self-registration needs `username` and `password`; an admin may also enrol
/// a patron by `name` alone, or create admins.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(example = "Alice")]
    pub name: String,
    #[schema(example = "alice")]
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    /// `member` (default) or `admin` (admins only).
    pub role: Option<String>,
}

/// A new password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    pub password: String,
    /// The password being replaced: required when changing one's own password (not when an
    /// admin sets someone else's).
    #[serde(default)]
    pub current_password: Option<String>,
}

/// A user's favourite genres (replaces the list).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// Also accepted as `favorite_genres`.
    #[schema(example = json!(["fantasy", "science-fiction"]))]
    #[serde(alias = "favorite_genres")]
    pub favourite_genres: Vec<String>,
}

/// A user, as an admin or the user themself sees them.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    pub name: String,
    pub username: Option<String>,
    pub email: Option<String>,
    #[schema(example = "member")]
    pub role: String,
    pub active: bool,
    pub favourite_genres: Vec<String>,
    pub created_at: String,
    pub version: u64,
}

impl From<UserView> for UserDto {
    fn from(view: UserView) -> Self {
        Self {
            id: view.id,
            name: view.name,
            username: view.username,
            email: view.email,
            role: view.role.as_str().to_string(),
            active: view.active,
            favourite_genres: view.favourite_genres,
            created_at: rfc3339(view.created_at),
            version: view.version,
        }
    }
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserDto>,
    pub next_cursor: Option<String>,
}

/// Credentials for a bearer token (HTTP Basic on the request works too).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub username: String,
    pub password: String,
}

/// A bearer token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    pub role: String,
}

/// One event of a book's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// The book's version after this event.
    pub version: u64,
    /// Its position in the global log.
    pub position: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    /// When it was stored (RFC 3339).
    pub recorded_at: String,
    /// Who caused it: a user id, or `system`.
    pub actor: Option<String>,
    pub command_id: Option<uuid::Uuid>,
    pub correlation_id: Option<uuid::Uuid>,
    /// The W3C trace context of the request that caused it.
    pub traceparent: Option<String>,
    /// The event's stored payload; for a review deleted since (and for a review summary that
    /// may quote one), without the words: their text is empty and `redacted` is true.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Whether words a member has taken back were removed from `data`.
    pub redacted: bool,
}

/// A page of a book's history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryList {
    pub events: Vec<HistoryEntry>,
    pub next_cursor: Option<String>,
}

/// The answer to a write whose read model did not catch up in time: the write is durable.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub id: String,
    #[schema(example = "accepted")]
    pub status: &'static str,
    pub version: u64,
    pub consistency_token: u64,
}

/// `POST /generate-summary`: content to summarize, with optional book facts for context.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateSummary {
    /// The text to summarize (`text` is accepted too).
    pub content: Option<String>,
    pub text: Option<String>,
    /// When given, the content is summarized as this book's.
    pub title: Option<String>,
    pub author: Option<String>,
    pub genre: Option<String>,
    pub year_published: Option<i32>,
}

/// A generated summary and where it came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct GeneratedSummary {
    pub summary: String,
    /// `extractive`, `gguf`, `openai` or `ollama`.
    pub backend: String,
    pub model: String,
    pub prompt_version: String,
    /// Why the model's answer was not used (the summary is then extractive).
    pub fallback_reason: Option<String>,
    /// What the guardrails removed or redacted from the input.
    #[schema(value_type = Object)]
    pub guard: serde_json::Value,
    pub elapsed_ms: u64,
}

impl From<quire_summarize::Summary> for GeneratedSummary {
    fn from(s: quire_summarize::Summary) -> Self {
        Self {
            summary: s.text,
            backend: s.backend.backend,
            model: s.backend.model,
            prompt_version: s.prompt_version,
            fallback_reason: s.fallback_reason,
            guard: serde_json::to_value(&s.guard).unwrap_or_default(),
            elapsed_ms: s.elapsed.as_millis() as u64,
        }
    }
}

/// A loan (a checkout), in the shape library systems use (`checkout_date`, `due_date`,
/// `checkin_date`, `renewals_count`).
#[derive(Debug, Serialize, ToSchema)]
pub struct LoanDto {
    /// The loan id.
    pub id: String,
    pub book_id: String,
    pub user_id: String,
    /// The copy lent; absent while a borrow is still being completed.
    pub copy_id: Option<String>,
    pub barcode: Option<String>,
    /// `open`, `overdue`, `returned` or `lost` (`pending` while a borrow is being completed).
    #[schema(example = "open")]
    pub status: String,
    pub overdue: bool,
    pub checkout_date: Option<String>,
    pub due_date: String,
    pub checkin_date: Option<String>,
    pub renewals_count: u32,
}

/// A page of loans.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoanList {
    pub loans: Vec<LoanDto>,
    pub next_cursor: Option<String>,
}

/// A copy (an item) of a book.
#[derive(Debug, Serialize, ToSchema)]
pub struct CopyDto {
    pub id: String,
    pub book_id: String,
    /// Absent for the implicit copy of a book lent without registered copies.
    pub barcode: Option<String>,
    /// `available`, `on_loan`, `on_hold_shelf`, `lost` or `withdrawn`.
    #[schema(example = "available")]
    pub status: String,
    pub added_at: String,
}

/// The copies of a book.
#[derive(Debug, Serialize, ToSchema)]
pub struct CopyList {
    pub copies: Vec<CopyDto>,
}

/// A copy to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCopy {
    #[schema(example = "31234000123456", min_length = 1, max_length = 64)]
    pub barcode: String,
}

/// A lent copy in an availability answer (no borrower: availability is public).
#[derive(Debug, Serialize, ToSchema)]
pub struct CopyOnLoan {
    pub copy_id: String,
    pub barcode: Option<String>,
    pub due_date: String,
}

/// Whether a book can be borrowed now, and if not, when.
#[derive(Debug, Serialize, ToSchema)]
pub struct Availability {
    pub book_id: String,
    /// Copies in circulation (not lost or withdrawn); for a book without registered copies,
    /// the implicit copies it lends as.
    pub copies_total: u32,
    pub copies_available: u32,
    /// Whether a member could borrow now (a copy is free).
    pub available: bool,
    pub on_loan: Vec<CopyOnLoan>,
    /// Copies waiting on the hold shelf for members who placed holds.
    pub on_hold_shelf: u32,
    /// Members waiting for a copy.
    pub holds_waiting: u32,
    /// The earliest due date of the lent copies.
    pub next_due_date: Option<String>,
}

/// A hold (a request for the next free copy of a book).
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldDto {
    pub id: String,
    pub book_id: String,
    pub user_id: String,
    /// `waiting`, `ready` (a copy waits on the hold shelf), `fulfilled`, `cancelled`,
    /// `expired` (`pending` while being placed).
    #[schema(example = "waiting")]
    pub status: String,
    /// 1 for the first in the queue, while waiting or ready.
    pub priority: Option<u32>,
    pub placed_at: Option<String>,
    pub copy_id: Option<String>,
    /// Until when the copy waits on the hold shelf.
    pub expiration_date: Option<String>,
    pub loan_id: Option<String>,
}

/// A page of holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldList {
    pub holds: Vec<HoldDto>,
    pub next_cursor: Option<String>,
}

/// A hold to place; `user_id` defaults to the caller (staff may place holds for a member).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHold {
    pub book_id: String,
    pub user_id: Option<String>,
}

/// `GET /loans` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LoanParams {
    /// Whose loans (members: themselves, the default).
    pub user_id: Option<String>,
    pub book_id: Option<String>,
    /// `open` (includes overdue), `overdue` or `returned` (includes lost); all when absent.
    pub status: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `GET /holds` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HoldParams {
    /// Whose holds (members: themselves, the default).
    pub user_id: Option<String>,
    pub book_id: Option<String>,
    /// `active` (waiting or ready, the default) or `all`.
    pub status: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `GET /users/{id}/loans` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserLoanParams {
    /// `open`, `overdue` or `returned`; all when absent.
    pub status: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

// The book club.

/// `POST /vote` (seed): a plurality ballot for a book in the default club's current round.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteRequest {
    pub book_id: String,
    /// The voter: the caller (admins may vote for a member).
    pub user_id: String,
}

/// The answer to `POST /vote`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoteReply {
    #[schema(example = "Vote submitted successfully")]
    pub message: String,
    /// The book's votes now (first choices of the members' last ballots).
    pub votes: u32,
}

/// A book's votes in a round.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoteCount {
    pub book_id: String,
    pub title: Option<String>,
    pub votes: u32,
}

/// `GET /vote/status`: the default club's current round, most votes first.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoteStatus {
    pub status: Vec<VoteCount>,
}

/// A reply in the seed shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscussionReply {
    pub reply_id: String,
    /// The author's username (or name).
    pub author: Option<String>,
    pub author_id: String,
    pub content: String,
    pub created_at: String,
}

/// A discussion in the seed shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct Discussion {
    pub thread_id: String,
    pub title: String,
    /// The author's username (or name).
    pub author: Option<String>,
    pub author_id: String,
    pub created_at: String,
    /// The latest live replies (at most 50), oldest of them first.
    pub replies: Vec<DiscussionReply>,
    pub reply_count: u32,
}

/// `GET /discussions`: the default club's discussions, newest first (next page: `Link`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscussionList {
    pub discussions: Vec<Discussion>,
}

/// `POST /discussion` (seed).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDiscussion {
    pub title: String,
    /// The caller's username or user id (admins may post for a member).
    pub author: String,
    pub content: String,
}

/// The answer to `POST /discussion`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscussionCreated {
    #[schema(example = "Discussion created")]
    pub message: String,
    pub thread_id: String,
}

/// `POST /discussions/{thread_id}/reply` (seed).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDiscussionReply {
    /// The caller's username or user id (admins may post for a member).
    pub author: String,
    pub content: String,
}

/// The answer to `POST /discussions/{thread_id}/reply`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyPosted {
    #[schema(example = "Reply posted")]
    pub message: String,
    pub reply_id: String,
}

/// A club.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClubDto {
    pub id: String,
    pub name: String,
    /// `public` or `members_only`.
    pub visibility: String,
    pub owner_id: String,
    pub write_ins: bool,
    pub current_book: Option<String>,
    pub member_count: u32,
    pub created_at: String,
}

/// A page of clubs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClubList {
    pub clubs: Vec<ClubDto>,
    pub next_cursor: Option<String>,
}

/// A club to create; the caller owns it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClub {
    pub name: String,
    /// `public` (default) or `members_only`.
    pub visibility: Option<String>,
    /// Whether a plurality ballot may name a book nobody nominated (default false).
    pub write_ins: Option<bool>,
}

/// A member of a club.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClubMemberDto {
    pub user_id: String,
    pub username: Option<String>,
    pub name: Option<String>,
    /// `owner`, `moderator` or `member`.
    pub role: String,
    pub joined_at: String,
}

/// A page of members.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClubMemberList {
    pub members: Vec<ClubMemberDto>,
    pub next_cursor: Option<String>,
}

/// Who joins: the caller by default (moderators and staff may add anyone).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinClub {
    pub user_id: Option<String>,
}

/// A round to open (moderators and staff).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRound {
    /// `plurality` (default) or `ranked_choice`.
    pub method: Option<String>,
    /// RFC 3339.
    pub nominations_close: String,
    /// RFC 3339.
    pub voting_closes: String,
    /// Default 3.
    pub max_nominations_per_member: Option<u32>,
    /// Keep standings from members until the round closes (default false).
    pub hide_results: Option<bool>,
}

/// A nominated book.
#[derive(Debug, Serialize, ToSchema)]
pub struct NominationDto {
    pub book_id: String,
    pub title: Option<String>,
    pub nominated_by: String,
}

/// A voting round.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoundDto {
    pub round_id: String,
    /// `open` or `closed`.
    pub status: String,
    /// `plurality` or `ranked_choice`.
    pub method: String,
    pub opened_at: String,
    pub nominations_close: String,
    pub voting_closes: String,
    pub closed_at: Option<String>,
    pub hide_results: bool,
    pub nominations: Vec<NominationDto>,
    /// Most votes first (first choices); absent while results are hidden.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standings: Option<Vec<VoteCount>>,
    /// Present (true) while the round hides its results from the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results_hidden: Option<bool>,
    /// The caller's counted ballot, when signed in and a member who voted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub your_ballot: Option<Vec<String>>,
    pub winner: Option<String>,
    pub tie_break: Option<String>,
    /// The full count recorded at close.
    #[schema(value_type = Option<Object>)]
    pub tally: Option<serde_json::Value>,
}

/// A page of rounds, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoundList {
    pub rounds: Vec<RoundDto>,
    pub next_cursor: Option<String>,
}

/// A nomination to make in the current round.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNomination {
    pub book_id: String,
}

/// A ballot: `choices` in order (ranked choice: 1 to 3), or `book_id` for plurality.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BallotRequest {
    pub choices: Option<Vec<String>>,
    pub book_id: Option<String>,
}

/// A discussion thread.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadDto {
    pub id: String,
    pub club_id: String,
    pub title: String,
    pub author: Option<String>,
    pub author_id: String,
    pub content: Option<String>,
    pub book_id: Option<String>,
    pub chapter: Option<String>,
    pub spoiler: bool,
    pub created_at: String,
    pub edited_at: Option<String>,
    pub reply_count: u32,
}

/// A page of threads, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadList {
    pub threads: Vec<ThreadDto>,
    pub next_cursor: Option<String>,
}

/// A thread to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewThread {
    pub title: String,
    pub content: String,
    pub book_id: Option<String>,
    pub chapter: Option<String>,
    pub spoiler: Option<bool>,
}

/// A reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyDto {
    pub id: String,
    pub thread_id: String,
    pub author: Option<String>,
    pub author_id: String,
    /// Absent once deleted or removed.
    pub content: Option<String>,
    /// `live`, `deleted` or `removed`.
    pub status: String,
    pub created_at: String,
    pub edited_at: Option<String>,
}

/// A page of replies, in posting order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyList {
    pub replies: Vec<ReplyDto>,
    pub next_cursor: Option<String>,
}

/// A reply's text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyText {
    pub content: String,
}

/// A member to appoint as moderator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewModerator {
    pub user_id: String,
}

/// A thread's new title or opening text (absent: unchanged).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadEdit {
    pub title: Option<String>,
    pub content: Option<String>,
}

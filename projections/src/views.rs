//! What the queries take and return. Views derive `Debug` and `Clone` only: the API maps them onto
//! its own DTOs.

use quire_domain::Role;
use quire_domain::book::BookText;
use quire_domain::ids::{BookId, ReviewId, UserId};

use crate::ProjectionName;

/// A page request: an opaque cursor from the previous page (or `None` for the first) and the
/// page size (the API clamps it to 1..=100).
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub cursor: Option<String>,
    pub limit: u32,
}

/// One page of results; `next_cursor` is `None` on the last page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque, url-safe: the sort key and id of the last item (keyset pagination).
    pub next_cursor: Option<String>,
}

/// How books are listed; ties are broken by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BookSort {
    /// Case-insensitively by title.
    #[default]
    Title,
    /// By year of publication; books without one come last.
    Year,
    /// By average rating; unrated books come last.
    Rating,
    /// By when the book was added.
    Added,
}

/// A book listing query.
#[derive(Debug, Clone, Default)]
pub struct BookQuery {
    /// Books with an author of exactly this name, ignoring case.
    pub author: Option<String>,
    /// Books with this genre (normalized like the domain's `Genre`).
    pub genre: Option<String>,
    /// Books published in this year.
    pub year: Option<i32>,
    pub sort: BookSort,
    pub descending: bool,
    pub page: PageRequest,
}

/// Ratings of a book.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RatingStats {
    pub count: u64,
    /// `None` when the book has no ratings.
    pub average: Option<f64>,
    /// `distribution[0]` counts 1-star ratings, `distribution[4]` 5-star ones.
    pub distribution: [u64; 5],
}

/// A book as the catalogue shows it.
#[derive(Debug, Clone)]
pub struct BookView {
    pub id: BookId,
    pub title: String,
    pub authors: Vec<String>,
    pub genres: Vec<String>,
    pub year_published: Option<i32>,
    pub isbn: Option<String>,
    pub description: Option<String>,
    pub summary: Option<String>,
    pub summary_source: Option<String>,
    pub rating: RatingStats,
    /// The stream version of the last event of the book's stream (reviews included): an ETag.
    pub version: u64,
    /// Microseconds since the epoch.
    pub added_at: i64,
    pub updated_at: i64,
    /// The full text's hash, size and source, if the book has one (the text is in the text store).
    pub text: Option<BookText>,
}

/// A review of a book.
#[derive(Debug, Clone)]
pub struct ReviewView {
    pub id: ReviewId,
    pub book_id: BookId,
    pub user_id: UserId,
    pub rating: u8,
    pub review_text: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user as administrators see them (no password hash).
#[derive(Debug, Clone)]
pub struct UserView {
    pub id: UserId,
    pub name: String,
    pub username: Option<String>,
    pub email: Option<String>,
    pub role: Role,
    pub active: bool,
    pub favourite_genres: Vec<String>,
    pub created_at: i64,
    pub version: u64,
    /// The stream version of the last event that ended the user's sessions (0 if none): bearer
    /// tokens issued under an older epoch are revoked.
    pub session_epoch: u64,
}

/// What a login needs to know about a username.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user_id: UserId,
    pub password_hash: Option<String>,
    pub role: Role,
    pub active: bool,
    /// As [`UserView::session_epoch`].
    pub session_epoch: u64,
}

/// One projection's progress.
#[derive(Debug, Clone)]
pub struct ProjectionStatus {
    pub name: ProjectionName,
    /// The global-log position applied up to; lag is the store head minus this.
    pub position: u64,
    /// The error the projection is stuck on (cleared by the next successful batch).
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// When the checkpoint last moved, microseconds since the epoch.
    pub updated_at: i64,
}

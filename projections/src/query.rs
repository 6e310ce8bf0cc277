//! The queries the API codes against, with keyset pagination behind opaque cursors.

use std::collections::HashSet;

use quire_domain::Role;
use quire_domain::book::BookText;
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_domain::values::Genre;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use crate::apply::books::author_key;
use crate::cursor;
use crate::db::{Arg, bind_args, with_read_pool};
use crate::{
    BookQuery, BookSort, BookView, Credentials, Page, PageRequest, RatingStats, ReadModelError,
    ReadModels, ReviewView, UserView,
};

/// A cursor: which listing it belongs to, the last item's sort key, and its id.
#[derive(Serialize, Deserialize)]
pub(crate) struct Cursor {
    pub(crate) s: String,
    pub(crate) k: Value,
    pub(crate) id: String,
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        cursor::encode(self)
    }

    /// Decodes a cursor issued for the listing `listing`.
    pub(crate) fn decode(text: &str, listing: &str) -> Result<Self, ReadModelError> {
        cursor::decode::<Self>(text)
            .filter(|c| c.s == listing)
            .ok_or(ReadModelError::InvalidCursor)
    }
}

/// The average rating as SQL computes it, so the cursor's value compares equal to the row's.
const RATING: &str = "(CASE WHEN s.count > 0 THEN CAST(s.sum AS DOUBLE PRECISION) / s.count END)";

const BOOK_COLUMNS: &str = "b.id, b.title, b.title_sort, b.authors, b.genres, b.year_published, \
    b.isbn, b.description, b.summary, b.summary_source, b.version, b.added_at, b.updated_at, \
    b.text_sha256, b.text_bytes, b.text_source, \
    COALESCE(s.count, 0) AS r_count, COALESCE(s.sum, 0) AS r_sum, COALESCE(s.r1, 0) AS r1, \
    COALESCE(s.r2, 0) AS r2, COALESCE(s.r3, 0) AS r3, COALESCE(s.r4, 0) AS r4, \
    COALESCE(s.r5, 0) AS r5";

#[derive(sqlx::FromRow)]
struct BookRow {
    id: String,
    title: String,
    title_sort: String,
    authors: String,
    genres: String,
    year_published: Option<i64>,
    isbn: Option<String>,
    description: Option<String>,
    summary: Option<String>,
    summary_source: Option<String>,
    version: i64,
    added_at: i64,
    updated_at: i64,
    text_sha256: Option<String>,
    text_bytes: Option<i64>,
    text_source: Option<String>,
    r_count: i64,
    r_sum: i64,
    r1: i64,
    r2: i64,
    r3: i64,
    r4: i64,
    r5: i64,
    avg: Option<f64>,
}

#[derive(sqlx::FromRow)]
struct StatsRow {
    r_count: i64,
    r_sum: i64,
    r1: i64,
    r2: i64,
    r3: i64,
    r4: i64,
    r5: i64,
}

#[derive(sqlx::FromRow)]
struct ReviewRow {
    id: String,
    book_id: String,
    member_id: String,
    rating: i64,
    text: String,
    created_at: i64,
    updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    name: String,
    username: Option<String>,
    email: Option<String>,
    role: String,
    active: bool,
    favourite_genres: String,
    created_at: i64,
    version: i64,
    session_epoch: i64,
}

#[derive(sqlx::FromRow)]
struct CredentialsRow {
    id: String,
    password_hash: Option<String>,
    role: String,
    active: bool,
    session_epoch: i64,
}

pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> ReadModelError {
    ReadModelError::Corrupt(format!("{what}: {error}"))
}

/// The id `text` stands for; a stored one that does not parse is corrupt.
pub(crate) fn id<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, ReadModelError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| corrupt(what, e))
}

/// The optional id `text` stands for, as [`id`].
pub(crate) fn opt_id<T: std::str::FromStr>(
    what: &str,
    text: Option<&str>,
) -> Result<Option<T>, ReadModelError>
where
    T::Err: std::fmt::Display,
{
    text.map(|t| id(what, t)).transpose()
}

/// A stored count as a `u32`; a negative or oversized one is corrupt.
pub(crate) fn count(what: &str, n: i64) -> Result<u32, ReadModelError> {
    u32::try_from(n).map_err(|e| corrupt(what, e))
}

fn stats(count: i64, sum: i64, r: [i64; 5]) -> RatingStats {
    let count = count.max(0) as u64;
    RatingStats {
        count,
        average: (count > 0).then(|| sum as f64 / count as f64),
        distribution: r.map(|n| n.max(0) as u64),
    }
}

fn role(text: &str) -> Result<Role, ReadModelError> {
    match text {
        "admin" => Ok(Role::Admin),
        "member" => Ok(Role::Member),
        "system" => Ok(Role::System),
        other => Err(corrupt("role", other)),
    }
}

fn strings(json: &str) -> Result<Vec<String>, ReadModelError> {
    serde_json::from_str(json).map_err(|e| corrupt("string list", e))
}

impl BookRow {
    fn view(self) -> Result<BookView, ReadModelError> {
        Ok(BookView {
            id: self.id.parse().map_err(|e| corrupt("book id", e))?,
            title: self.title,
            authors: strings(&self.authors)?,
            genres: strings(&self.genres)?,
            year_published: self.year_published.map(|y| y as i32),
            isbn: self.isbn,
            description: self.description,
            summary: self.summary,
            summary_source: self.summary_source,
            rating: stats(
                self.r_count,
                self.r_sum,
                [self.r1, self.r2, self.r3, self.r4, self.r5],
            ),
            version: self.version as u64,
            added_at: self.added_at,
            updated_at: self.updated_at,
            text: match (self.text_sha256, self.text_bytes, self.text_source) {
                (Some(sha256), Some(bytes), Some(source)) => Some(BookText {
                    sha256,
                    bytes: bytes as u64,
                    source,
                }),
                _ => None,
            },
        })
    }
}

impl ReviewRow {
    fn view(self) -> Result<ReviewView, ReadModelError> {
        Ok(ReviewView {
            id: self.id.parse().map_err(|e| corrupt("review id", e))?,
            book_id: self.book_id.parse().map_err(|e| corrupt("book id", e))?,
            user_id: self.member_id.parse().map_err(|e| corrupt("user id", e))?,
            rating: self.rating as u8,
            review_text: self.text,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

impl UserRow {
    fn view(self) -> Result<UserView, ReadModelError> {
        Ok(UserView {
            id: self.id.parse().map_err(|e| corrupt("user id", e))?,
            name: self.name,
            username: self.username,
            email: self.email,
            role: role(&self.role)?,
            active: self.active,
            favourite_genres: strings(&self.favourite_genres)?,
            created_at: self.created_at,
            version: self.version as u64,
            session_epoch: self.session_epoch.max(0) as u64,
        })
    }
}

/// Appends `arg` and returns its placeholder.
pub(crate) fn param(args: &mut Vec<Arg>, arg: Arg) -> String {
    args.push(arg);
    format!("${}", args.len())
}

pub(crate) fn page_size(page: &PageRequest) -> usize {
    page.limit.clamp(1, 1000) as usize
}

/// The columns a `ReviewRow` reads.
const REVIEW_COLUMNS: &str = "id, book_id, member_id, rating, text, created_at, updated_at";
/// The columns a `UserRow` reads.
const USER_COLUMNS: &str = "id, name, username, email, role, active, favourite_genres, \
     created_at, version, session_epoch";

/// The integer key and the id of the page's cursor of `listing`, or `None` on the first page.
fn integer_cursor(
    page: &PageRequest,
    listing: &str,
) -> Result<Option<(i64, String)>, ReadModelError> {
    let Some(text) = &page.cursor else {
        return Ok(None);
    };
    let cursor = Cursor::decode(text, listing)?;
    let key = cursor.k.as_i64().ok_or(ReadModelError::InvalidCursor)?;
    Ok(Some((key, cursor.id)))
}

/// The key and id a cursor of `listing` carries, as arguments (placeholders), or `None` on the
/// first page.
pub(crate) fn cursor_args(
    args: &mut Vec<Arg>,
    page: &PageRequest,
    listing: &str,
) -> Result<Option<(String, String)>, ReadModelError> {
    Ok(integer_cursor(page, listing)?
        .map(|(key, id)| (param(args, Arg::I64(key)), param(args, Arg::Text(id)))))
}

/// The key a cursor of `listing` carries, as an argument (placeholder), for a listing whose key is
/// unique and so orders it alone; `None` on the first page.
pub(crate) fn cursor_key(
    args: &mut Vec<Arg>,
    page: &PageRequest,
    listing: &str,
) -> Result<Option<String>, ReadModelError> {
    Ok(integer_cursor(page, listing)?.map(|(key, _)| param(args, Arg::I64(key))))
}

/// The keyset condition of a listing ordered by `(created_at, id)`: the rows after the page's
/// cursor, in the listing's direction. Empty on the first page.
fn after_created_at(
    args: &mut Vec<Arg>,
    page: &PageRequest,
    listing: &str,
    descending: bool,
) -> Result<String, ReadModelError> {
    let Some((at, id)) = cursor_args(args, page, listing)? else {
        return Ok(String::new());
    };
    let op = if descending { "<" } else { ">" };
    Ok(format!(
        " AND (created_at {op} {at} OR (created_at = {at} AND id {op} {id}))"
    ))
}

/// Turns the `limit + 1` rows of a keyset query into a page: the extra row only says that there
/// is a next page, whose cursor is made from the last row kept.
pub(crate) fn into_page<R, V>(
    mut rows: Vec<R>,
    limit: usize,
    cursor_of: impl FnOnce(&R) -> Cursor,
    view: impl Fn(R) -> Result<V, ReadModelError>,
) -> Result<Page<V>, ReadModelError> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = match (more, rows.last()) {
        (true, Some(last)) => Some(cursor_of(last).encode()),
        _ => None,
    };
    Ok(Page {
        items: rows.into_iter().map(view).collect::<Result<_, _>>()?,
        next_cursor,
    })
}

impl ReadModels {
    pub(crate) async fn fetch_all<T>(
        &self,
        context: &'static str,
        sql: &str,
        args: &[Arg],
    ) -> Result<Vec<T>, ReadModelError>
    where
        T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        with_read_pool!(self.db(), pool => {
            bind_args!(sqlx::query_as::<_, T>(sql), args)
                .fetch_all(pool)
                .await
                .map_err(ReadModelError::db(context))
        })
    }

    /// The first row `sql` reads, if any.
    pub(crate) async fn fetch_optional<T>(
        &self,
        context: &'static str,
        sql: &str,
        args: &[Arg],
    ) -> Result<Option<T>, ReadModelError>
    where
        T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        Ok(self.fetch_all(context, sql, args).await?.into_iter().next())
    }

    /// A book, or `None` if it is unknown or removed.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn book(&self, id: BookId) -> Result<Option<BookView>, ReadModelError> {
        let sql = format!(
            "SELECT {BOOK_COLUMNS}, {RATING} AS avg FROM rm_books b \
             LEFT JOIN rm_book_stats s ON s.book_id = b.id WHERE b.id = $1 AND NOT b.removed"
        );
        self.fetch_optional::<BookRow>("reading book", &sql, &[Arg::Text(id.to_string())])
            .await?
            .map(BookRow::view)
            .transpose()
    }

    /// Whether the book existed and was removed.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn book_removed(&self, id: BookId) -> Result<bool, ReadModelError> {
        let rows: Vec<(bool,)> = self
            .fetch_all(
                "reading book",
                "SELECT removed FROM rm_books WHERE id = $1",
                &[Arg::Text(id.to_string())],
            )
            .await?;
        Ok(rows.first().is_some_and(|r| r.0))
    }

    /// Books matching the filters, in the requested order, one page at a time. Removed books are
    /// left out; the author filter matches any author exactly, ignoring case.
    #[tracing::instrument(skip_all, fields(backend = self.backend(), sort = ?q.sort))]
    pub async fn list_books(&self, q: &BookQuery) -> Result<Page<BookView>, ReadModelError> {
        let (key, nullable, name) = match q.sort {
            BookSort::Title => ("b.title_sort", false, "title"),
            BookSort::Year => ("b.year_published", true, "year"),
            BookSort::Rating => (RATING, true, "rating"),
            BookSort::Added => ("b.added_at", false, "added"),
        };
        let listing = format!("books:{name}:{}", if q.descending { "desc" } else { "asc" });
        let (op, dir) = if q.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let mut args = Vec::new();
        let mut sql = format!(
            "SELECT {BOOK_COLUMNS}, {RATING} AS avg FROM rm_books b \
             LEFT JOIN rm_book_stats s ON s.book_id = b.id WHERE NOT b.removed"
        );
        if let Some(author) = &q.author {
            let p = param(&mut args, Arg::Text(author_key(author)));
            sql += &format!(
                " AND b.id IN (SELECT book_id FROM rm_book_authors WHERE author_key = {p})"
            );
        }
        if let Some(genre) = &q.genre {
            let genre = Genre::parse(genre.as_str())
                .map(Genre::into_inner)
                .unwrap_or_else(|_| genre.trim().to_lowercase());
            let p = param(&mut args, Arg::Text(genre));
            sql += &format!(" AND b.id IN (SELECT book_id FROM rm_book_genres WHERE genre = {p})");
        }
        if let Some(year) = q.year {
            let p = param(&mut args, Arg::I64(i64::from(year)));
            sql += &format!(" AND b.year_published = {p}");
        }
        if let Some(text) = &q.page.cursor {
            let cursor = Cursor::decode(text, &listing)?;
            let id = param(&mut args, Arg::Text(cursor.id));
            if cursor.k.is_null() {
                if !nullable {
                    return Err(ReadModelError::InvalidCursor);
                }
                sql += &format!(" AND ({key} IS NULL AND b.id {op} {id})");
            } else {
                let value = match q.sort {
                    BookSort::Title => cursor.k.as_str().map(|s| Arg::Text(s.to_string())),
                    BookSort::Year | BookSort::Added => cursor.k.as_i64().map(Arg::I64),
                    BookSort::Rating => cursor.k.as_f64().map(Arg::F64),
                };
                let x = param(&mut args, value.ok_or(ReadModelError::InvalidCursor)?);
                let nulls = if nullable {
                    format!(" OR {key} IS NULL")
                } else {
                    String::new()
                };
                sql += &format!(" AND ({key} {op} {x} OR ({key} = {x} AND b.id {op} {id}){nulls})");
            }
        }
        let limit = page_size(&q.page);
        let nulls_last = if nullable {
            format!("{key} IS NULL, ")
        } else {
            String::new()
        };
        let n = param(&mut args, Arg::I64(limit as i64 + 1));
        sql += &format!(" ORDER BY {nulls_last}{key} {dir}, b.id {dir} LIMIT {n}");
        let rows: Vec<BookRow> = self.fetch_all("listing books", &sql, &args).await?;
        into_page(
            rows,
            limit,
            |last| Cursor {
                s: listing,
                k: match q.sort {
                    BookSort::Title => Value::from(last.title_sort.clone()),
                    BookSort::Year => last.year_published.map_or(Value::Null, Value::from),
                    BookSort::Rating => last.avg.map_or(Value::Null, Value::from),
                    BookSort::Added => Value::from(last.added_at),
                },
                id: last.id.clone(),
            },
            BookRow::view,
        )
    }

    /// A book's reviews, newest first, deleted ones left out.
    #[tracing::instrument(skip(self, page), fields(backend = self.backend()))]
    pub async fn reviews(
        &self,
        book: BookId,
        page: &PageRequest,
    ) -> Result<Page<ReviewView>, ReadModelError> {
        let listing = "reviews";
        let mut args = vec![Arg::Text(book.to_string())];
        let mut sql =
            format!("SELECT {REVIEW_COLUMNS} FROM rm_reviews WHERE book_id = $1 AND NOT deleted");
        sql += &after_created_at(&mut args, page, listing, true)?;
        let limit = page_size(page);
        let n = param(&mut args, Arg::I64(limit as i64 + 1));
        sql += &format!(" ORDER BY created_at DESC, id DESC LIMIT {n}");
        let rows: Vec<ReviewRow> = self.fetch_all("listing reviews", &sql, &args).await?;
        into_page(
            rows,
            limit,
            |last| Cursor {
                s: listing.into(),
                k: Value::from(last.created_at),
                id: last.id.clone(),
            },
            ReviewRow::view,
        )
    }

    /// One review of a book, or `None` if it is unknown or deleted.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn review(
        &self,
        book: BookId,
        review: ReviewId,
    ) -> Result<Option<ReviewView>, ReadModelError> {
        self.fetch_optional::<ReviewRow>(
            "reading review",
            &format!(
                "SELECT {REVIEW_COLUMNS} FROM rm_reviews \
                 WHERE id = $1 AND book_id = $2 AND NOT deleted"
            ),
            &[Arg::Text(review.to_string()), Arg::Text(book.to_string())],
        )
        .await?
        .map(ReviewRow::view)
        .transpose()
    }

    /// Which of `reviews` (reviews of `book`) were deleted: the API answers 410 for them and
    /// keeps their words out of the book's history. The read model keeps their rows, without text.
    #[tracing::instrument(skip_all, fields(backend = self.backend(), n = reviews.len()))]
    pub async fn deleted_reviews(
        &self,
        book: BookId,
        reviews: &[ReviewId],
    ) -> Result<HashSet<ReviewId>, ReadModelError> {
        if reviews.is_empty() {
            return Ok(HashSet::new());
        }
        // One parameter per id rather than a JSON list: ids compare against a column with its
        // own collation on Postgres, and a set-returning function's text would conflict with it.
        let mut args = vec![Arg::Text(book.to_string())];
        let list: Vec<String> = reviews
            .iter()
            .map(|r| param(&mut args, Arg::Text(r.to_string())))
            .collect();
        let sql = format!(
            "SELECT id FROM rm_reviews WHERE book_id = $1 AND deleted AND id IN ({})",
            list.join(", ")
        );
        let rows: Vec<(String,)> = self
            .fetch_all("reading deleted reviews", &sql, &args)
            .await?;
        rows.into_iter()
            .map(|(id,)| id.parse().map_err(|e| corrupt("review id", e)))
            .collect()
    }

    /// The stream version of the book's latest review deletion, if any: a review summary made
    /// from an earlier version may quote a review that is gone.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn last_review_deletion(&self, book: BookId) -> Result<Option<u64>, ReadModelError> {
        let rows: Vec<(Option<i64>,)> = self
            .fetch_all(
                "reading review deletions",
                "SELECT MAX(version) FROM rm_reviews WHERE book_id = $1 AND deleted",
                &[Arg::Text(book.to_string())],
            )
            .await?;
        Ok(rows.first().and_then(|r| r.0).map(|v| v as u64))
    }

    /// A book's rating stats (zeros for a book without ratings, or an unknown one).
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn rating_stats(&self, book: BookId) -> Result<RatingStats, ReadModelError> {
        let rows: Vec<StatsRow> = self
            .fetch_all(
                "reading rating stats",
                "SELECT count AS r_count, sum AS r_sum, r1, r2, r3, r4, r5 FROM rm_book_stats \
                 WHERE book_id = $1",
                &[Arg::Text(book.to_string())],
            )
            .await?;
        Ok(rows.first().map_or_else(RatingStats::default, |r| {
            stats(r.r_count, r.r_sum, [r.r1, r.r2, r.r3, r.r4, r.r5])
        }))
    }

    /// The ratings count and average of each of `books` that has ratings (the search index's
    /// popularity figures), read in pages of 500 ids.
    #[tracing::instrument(skip_all, fields(backend = self.backend(), books = books.len()))]
    pub async fn rating_figures(
        &self,
        books: &[String],
    ) -> Result<std::collections::HashMap<String, (u64, f64)>, ReadModelError> {
        #[derive(sqlx::FromRow)]
        struct FigureRow {
            book_id: String,
            r_count: i64,
            r_sum: i64,
        }
        let mut out = std::collections::HashMap::with_capacity(books.len());
        for page in books.chunks(500) {
            let placeholders: Vec<String> = (1..=page.len()).map(|i| format!("${i}")).collect();
            let args: Vec<Arg> = page.iter().map(|id| Arg::Text(id.clone())).collect();
            let rows: Vec<FigureRow> = self
                .fetch_all(
                    "reading rating figures",
                    &format!(
                        "SELECT book_id, count AS r_count, sum AS r_sum FROM rm_book_stats \
                         WHERE book_id IN ({}) AND count > 0",
                        placeholders.join(", ")
                    ),
                    &args,
                )
                .await?;
            for row in rows {
                let count = row.r_count.max(0) as u64;
                out.insert(row.book_id, (count, row.r_sum as f64 / count.max(1) as f64));
            }
        }
        Ok(out)
    }

    /// A user (deactivated ones included).
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn user(&self, id: UserId) -> Result<Option<UserView>, ReadModelError> {
        self.fetch_optional::<UserRow>(
            "reading user",
            &format!("SELECT {USER_COLUMNS} FROM rm_users WHERE id = $1"),
            &[Arg::Text(id.to_string())],
        )
        .await?
        .map(UserRow::view)
        .transpose()
    }

    /// [`user`](Self::user) for a check that races writes anyway (is the member a review is
    /// posted for still active?): from memory while this process runs the users projection and
    /// its tables have not changed since (see `users_cache`), else from the table. Authentication
    /// does not use it: a revocation must hold on every node at once, and another node's
    /// projection may not have applied it yet.
    pub async fn user_for_check(&self, id: UserId) -> Result<Option<UserView>, ReadModelError> {
        let Some(cache) = self.users_cache() else {
            return self.user(id).await;
        };
        if let Some(row) = cache.user(id) {
            return Ok(row);
        }
        let generation = cache.generation();
        let row = self.user(id).await?;
        cache.store_user(id, generation, row.clone());
        Ok(row)
    }

    /// Users in registration order.
    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn list_users(&self, page: &PageRequest) -> Result<Page<UserView>, ReadModelError> {
        let listing = "users";
        let mut args = Vec::new();
        let mut sql = format!("SELECT {USER_COLUMNS} FROM rm_users WHERE true");
        sql += &after_created_at(&mut args, page, listing, false)?;
        let limit = page_size(page);
        let n = param(&mut args, Arg::I64(limit as i64 + 1));
        sql += &format!(" ORDER BY created_at, id LIMIT {n}");
        let rows: Vec<UserRow> = self.fetch_all("listing users", &sql, &args).await?;
        into_page(
            rows,
            limit,
            |last| Cursor {
                s: listing.into(),
                k: Value::from(last.created_at),
                id: last.id.clone(),
            },
            UserRow::view,
        )
    }

    /// What a login needs for `username` (already normalized to lowercase).
    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn credentials(&self, username: &str) -> Result<Option<Credentials>, ReadModelError> {
        self.fetch_optional::<CredentialsRow>(
            "reading credentials",
            "SELECT id, password_hash, role, active, session_epoch FROM rm_users \
             WHERE username = $1",
            &[Arg::Text(username.to_string())],
        )
        .await?
        .map(|r| {
            Ok(Credentials {
                user_id: r.id.parse().map_err(|e| corrupt("user id", e))?,
                password_hash: r.password_hash,
                role: role(&r.role)?,
                active: r.active,
                session_epoch: r.session_epoch.max(0) as u64,
            })
        })
        .transpose()
    }

    /// Whether an active admin who can log in (has a password) exists besides `except`.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn another_active_admin(&self, except: UserId) -> Result<bool, ReadModelError> {
        let found: Vec<(String,)> = self
            .fetch_all(
                "looking for another admin",
                "SELECT id FROM rm_users WHERE role = 'admin' AND active \
                 AND password_hash IS NOT NULL AND id <> $1 LIMIT 1",
                &[Arg::Text(except.to_string())],
            )
            .await?;
        Ok(!found.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_other_listings() {
        let c = Cursor {
            s: "books:rating:asc".into(),
            k: Value::from(3.75),
            id: "x".into(),
        };
        let text = c.encode();
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let back = Cursor::decode(&text, "books:rating:asc").unwrap();
        assert_eq!(back.k.as_f64(), Some(3.75));
        assert!(matches!(
            Cursor::decode(&text, "books:title:asc"),
            Err(ReadModelError::InvalidCursor)
        ));
        assert!(matches!(
            Cursor::decode("!!", "users"),
            Err(ReadModelError::InvalidCursor)
        ));
    }
}

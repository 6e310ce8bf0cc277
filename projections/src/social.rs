//! The `social` read model's queries: who follows whom, a member's feed (the activity of the
//! people they follow), and books the people they follow liked or rated highly.
//!
//! The handlers are in `apply::social`. Privacy is applied here, at read time: a member whose
//! activity is private (`rm_member_privacy`) is left out of every feed and of social
//! recommendations, and switching back shows everything again. Names and titles come from the
//! `users` and `books` read models, the reader's own signals (to leave out what they already
//! know) from `interactions` and `lending`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use quire_domain::ids::{BookId, ReviewId, UserId};
use serde_json::{Value, json};

use crate::db::{Arg, json_text};
use crate::query::{
    Cursor, corrupt, count, cursor_args, cursor_key, id, into_page, opt_id, page_size, param,
};
use crate::{Page, PageRequest, ReadModelError, ReadModels};

/// A member in a followers or following list, with the names the users read model has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowRow {
    /// The follower (in a followers list) or the followee (in a following list).
    pub user_id: UserId,
    pub name: Option<String>,
    pub username: Option<String>,
    /// When the follow was recorded, microseconds since the epoch.
    pub since: i64,
}

/// What an activity item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityKind {
    /// A review posted (with its rating).
    Review,
    /// A rating given without a review.
    Rating,
    /// A like.
    Like,
}

impl ActivityKind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Review => "review",
            Self::Rating => "rating",
            Self::Like => "like",
        }
    }

    fn parse(text: &str) -> Result<Self, ReadModelError> {
        match text {
            "review" => Ok(Self::Review),
            "rating" => Ok(Self::Rating),
            "like" => Ok(Self::Like),
            other => Err(corrupt("activity kind", other)),
        }
    }
}

/// One item of a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    pub kind: ActivityKind,
    pub user_id: UserId,
    pub user_name: Option<String>,
    pub username: Option<String>,
    pub book_id: BookId,
    /// `None` if the catalogue does not know the book (yet).
    pub book_title: Option<String>,
    /// The review's or rating's stars.
    pub rating: Option<u8>,
    pub review_id: Option<ReviewId>,
    /// The start of a review's text.
    pub excerpt: Option<String>,
    /// When the activity was recorded, microseconds since the epoch.
    pub at: i64,
    /// The global log position of the event that made the item: newest first by it.
    pub position: i64,
}

/// A book the people a member follows liked or rated 4 or 5.
#[derive(Debug, Clone, PartialEq)]
pub struct SocialRecommendation {
    pub book_id: BookId,
    pub title: String,
    pub genres: Vec<String>,
    /// Distinct followees (with public activity) who liked it or rated it 4 or more.
    pub followees: u32,
    /// The average of those followees' ratings of it (each followee's highest), if any rated it.
    pub average_rating: Option<f64>,
    /// Up to three of those followees' names, alphabetically.
    pub followee_names: Vec<String>,
}

/// The most followee names a social recommendation carries.
const NAMES: usize = 3;

#[derive(sqlx::FromRow)]
struct StoredFollow {
    user_id: String,
    name: Option<String>,
    username: Option<String>,
    since: i64,
    seq: i64,
}

#[derive(sqlx::FromRow)]
struct StoredActivity {
    kind: String,
    user_id: String,
    user_name: Option<String>,
    username: Option<String>,
    book_id: String,
    book_title: Option<String>,
    rating: Option<i64>,
    review_id: Option<String>,
    excerpt: Option<String>,
    at: i64,
    seq: i64,
}

/// One followee's signals on one book.
#[derive(sqlx::FromRow)]
struct StoredSignal {
    book_id: String,
    user_id: String,
    name: Option<String>,
    username: Option<String>,
    rating: Option<i64>,
    title: String,
    title_sort: String,
    genres: String,
}

impl StoredFollow {
    fn row(self) -> Result<FollowRow, ReadModelError> {
        Ok(FollowRow {
            user_id: id("user id", &self.user_id)?,
            name: self.name,
            username: self.username,
            since: self.since,
        })
    }
}

impl StoredActivity {
    fn row(self) -> Result<ActivityRow, ReadModelError> {
        Ok(ActivityRow {
            kind: ActivityKind::parse(&self.kind)?,
            user_id: id("user id", &self.user_id)?,
            user_name: self.user_name,
            username: self.username,
            book_id: id("book id", &self.book_id)?,
            book_title: self.book_title,
            rating: self
                .rating
                .map(|r| u8::try_from(r).map_err(|e| corrupt("rating", e)))
                .transpose()?,
            review_id: opt_id("review id", self.review_id.as_deref())?,
            excerpt: self.excerpt,
            at: self.at,
            position: self.seq,
        })
    }
}

/// The keyset listings and their cursors' names.
const FOLLOWERS_LISTING: &str = "followers";
const FOLLOWING_LISTING: &str = "following";
const FEED_LISTING: &str = "feed";
const SOCIAL_LISTING: &str = "social_recs";

/// Active follows whose followee keeps their activity public, as a row source `f` joined to
/// `p` (the followee's privacy); `$1` is the follower.
const PUBLIC_FOLLOWEES: &str = "rm_follows f LEFT JOIN rm_member_privacy p \
    ON p.user_id = f.followee_id";
const PUBLIC_FOLLOWEES_WHERE: &str = "f.follower_id = $1 AND f.active \
    AND NOT COALESCE(p.private, FALSE)";

/// A followee's activity item that counts as a social signal: a like, or 4 or 5 stars.
const SIGNAL: &str = "(a.kind = 'like' OR a.rating >= 4)";

/// Where a social recommendation ranks: more followees first, then a higher average rating
/// (compared exactly, as fractions; none ranks last), then by title and id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rank {
    followees: i64,
    rating_sum: i64,
    ratings: i64,
    title_sort: String,
    book_id: String,
}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .followees
            .cmp(&self.followees)
            .then_with(|| match (self.ratings, other.ratings) {
                (0, 0) => Ordering::Equal,
                (0, _) => Ordering::Greater,
                (_, 0) => Ordering::Less,
                (n, m) => (other.rating_sum * n).cmp(&(self.rating_sum * m)),
            })
            .then_with(|| self.title_sort.cmp(&other.title_sort))
            .then_with(|| self.book_id.cmp(&other.book_id))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Rank {
    fn cursor(&self) -> Cursor {
        Cursor {
            s: SOCIAL_LISTING.into(),
            k: json!([
                self.followees,
                self.rating_sum,
                self.ratings,
                self.title_sort
            ]),
            id: self.book_id.clone(),
        }
    }

    fn from_cursor(text: &str) -> Result<Self, ReadModelError> {
        let cursor = Cursor::decode(text, SOCIAL_LISTING)?;
        let invalid = || ReadModelError::InvalidCursor;
        let k = cursor.k.as_array().ok_or_else(invalid)?;
        let int = |i: usize| k.get(i).and_then(Value::as_i64).ok_or_else(invalid);
        Ok(Self {
            followees: int(0)?,
            rating_sum: int(1)?,
            ratings: int(2)?,
            title_sort: k.get(3).and_then(Value::as_str).ok_or_else(invalid)?.into(),
            book_id: cursor.id,
        })
    }
}

/// One book's followees while a ranking is gathered.
struct Candidate {
    rank: Rank,
    title: String,
    genres: Vec<String>,
    names: Vec<String>,
}

impl ReadModels {
    /// Whether `follower` follows `followee` now, with the followee's names and since when.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn follow(
        &self,
        follower: UserId,
        followee: UserId,
    ) -> Result<Option<FollowRow>, ReadModelError> {
        let rows: Vec<StoredFollow> = self
            .fetch_all(
                "reading a follow",
                "SELECT f.followee_id AS user_id, u.name, u.username, f.since, f.seq \
                 FROM rm_follows f LEFT JOIN rm_users u ON u.id = f.followee_id \
                 WHERE f.follower_id = $1 AND f.followee_id = $2 AND f.active",
                &[
                    Arg::Text(follower.to_string()),
                    Arg::Text(followee.to_string()),
                ],
            )
            .await?;
        rows.into_iter().next().map(StoredFollow::row).transpose()
    }

    /// Who follows `user`, most recent follow first, one page at a time.
    #[tracing::instrument(skip(self, page), fields(backend = self.backend()))]
    pub async fn followers(
        &self,
        user: UserId,
        page: &PageRequest,
    ) -> Result<Page<FollowRow>, ReadModelError> {
        self.follow_list(user, page, "followee_id", "follower_id", FOLLOWERS_LISTING)
            .await
    }

    /// Whom `user` follows, most recent follow first, one page at a time.
    #[tracing::instrument(skip(self, page), fields(backend = self.backend()))]
    pub async fn following(
        &self,
        user: UserId,
        page: &PageRequest,
    ) -> Result<Page<FollowRow>, ReadModelError> {
        self.follow_list(user, page, "follower_id", "followee_id", FOLLOWING_LISTING)
            .await
    }

    async fn follow_list(
        &self,
        user: UserId,
        page: &PageRequest,
        by: &str,
        other: &str,
        listing: &str,
    ) -> Result<Page<FollowRow>, ReadModelError> {
        let mut args = vec![Arg::Text(user.to_string())];
        let mut sql = format!(
            "SELECT f.{other} AS user_id, u.name, u.username, f.since, f.seq \
             FROM rm_follows f LEFT JOIN rm_users u ON u.id = f.{other} \
             WHERE f.{by} = $1 AND f.active"
        );
        if let Some((seq, id)) = cursor_args(&mut args, page, listing)? {
            sql += &format!(" AND (f.seq < {seq} OR (f.seq = {seq} AND f.{other} < {id}))");
        }
        let limit = page_size(page);
        let n = param(&mut args, Arg::I64(limit as i64 + 1));
        sql += &format!(" ORDER BY f.seq DESC, f.{other} DESC LIMIT {n}");
        let rows: Vec<StoredFollow> = self.fetch_all("listing follows", &sql, &args).await?;
        into_page(
            rows,
            limit,
            |last| Cursor {
                s: listing.into(),
                k: Value::from(last.seq),
                id: last.user_id.clone(),
            },
            StoredFollow::row,
        )
    }

    /// Whether `user` keeps their activity private.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn activity_private(&self, user: UserId) -> Result<bool, ReadModelError> {
        let rows: Vec<(bool,)> = self
            .fetch_all(
                "reading activity privacy",
                "SELECT private FROM rm_member_privacy WHERE user_id = $1",
                &[Arg::Text(user.to_string())],
            )
            .await?;
        Ok(rows.first().is_some_and(|r| r.0))
    }

    /// The activity privacy rows of `users`: whether each keeps their activity private and the
    /// log position of the change that said so. Members who never changed it are absent.
    #[tracing::instrument(skip(self, users), fields(backend = self.backend(), users = users.len()))]
    pub async fn member_privacy(
        &self,
        users: &[UserId],
    ) -> Result<HashMap<UserId, (bool, u64)>, ReadModelError> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        let list: Vec<String> = users.iter().map(ToString::to_string).collect();
        let sql = format!(
            "SELECT p.user_id, p.private, p.position FROM rm_member_privacy p \
             WHERE p.user_id IN (SELECT j.value FROM {})",
            self.db().backend().texts(1)
        );
        let rows: Vec<(String, bool, i64)> = self
            .fetch_all(
                "reading activity privacy",
                &sql,
                &[Arg::Text(json_text(&Value::from(list)))],
            )
            .await?;
        rows.into_iter()
            .map(|(user, private, position)| {
                let position = u64::try_from(position).map_err(|e| corrupt("position", e))?;
                Ok((id("user id", &user)?, (private, position)))
            })
            .collect()
    }

    /// `user`'s feed: the reviews, ratings and likes of the people they follow, newest first,
    /// one page at a time. Members whose activity is private, deactivated members and removed
    /// books are left out.
    #[tracing::instrument(skip(self, page), fields(backend = self.backend()))]
    pub async fn feed(
        &self,
        user: UserId,
        page: &PageRequest,
    ) -> Result<Page<ActivityRow>, ReadModelError> {
        let mut args = vec![Arg::Text(user.to_string())];
        let mut sql = format!(
            "SELECT a.kind, a.user_id, u.name AS user_name, u.username, \
             a.book_id, b.title AS book_title, a.rating, a.review_id, a.excerpt, a.at, a.seq \
             FROM {PUBLIC_FOLLOWEES} \
             JOIN rm_activity a ON a.user_id = f.followee_id AND a.live \
             LEFT JOIN rm_users u ON u.id = a.user_id \
             LEFT JOIN rm_books b ON b.id = a.book_id \
             WHERE {PUBLIC_FOLLOWEES_WHERE} AND COALESCE(u.active, TRUE) \
             AND NOT COALESCE(b.removed, FALSE)"
        );
        // `seq` is the position of the event that made the item: unique, so the whole order.
        if let Some(seq) = cursor_key(&mut args, page, FEED_LISTING)? {
            sql += &format!(" AND a.seq < {seq}");
        }
        let limit = page_size(page);
        let n = param(&mut args, Arg::I64(limit as i64 + 1));
        sql += &format!(" ORDER BY a.seq DESC LIMIT {n}");
        let rows: Vec<StoredActivity> = self.fetch_all("reading a feed", &sql, &args).await?;
        into_page(
            rows,
            limit,
            |last| Cursor {
                s: FEED_LISTING.into(),
                k: Value::from(last.seq),
                id: String::new(),
            },
            StoredActivity::row,
        )
    }

    /// Books the people `user` follows liked or rated 4 or 5 (a review's rating or a rating
    /// without one), ranked by how many of them did, then by the average of their ratings, then
    /// by title. Books `user` already rated, reviewed, liked or borrowed, removed books and the
    /// activity of members who keep it private are left out; with `genres`, only books in one
    /// of them (as stored: lowercase, hyphenated) are kept. Keyset pages over that ranking.
    #[tracing::instrument(skip(self, genres, page), fields(backend = self.backend()))]
    pub async fn social_recommendations(
        &self,
        user: UserId,
        genres: &[String],
        page: &PageRequest,
    ) -> Result<Page<SocialRecommendation>, ReadModelError> {
        let after = page.cursor.as_deref().map(Rank::from_cursor).transpose()?;
        let sql = format!(
            "SELECT a.book_id, a.user_id, u.name, u.username, MAX(a.rating) AS rating, \
             b.title, b.title_sort, b.genres \
             FROM {PUBLIC_FOLLOWEES} \
             JOIN rm_activity a ON a.user_id = f.followee_id AND a.live \
             JOIN rm_books b ON b.id = a.book_id AND NOT b.removed \
             LEFT JOIN rm_users u ON u.id = a.user_id \
             WHERE {PUBLIC_FOLLOWEES_WHERE} AND COALESCE(u.active, TRUE) AND {SIGNAL} \
             AND NOT EXISTS (SELECT 1 FROM rm_interactions i WHERE i.user_id = $1 \
                 AND i.book_id = a.book_id \
                 AND (i.liked OR i.rating IS NOT NULL OR i.review_rating IS NOT NULL)) \
             AND NOT EXISTS (SELECT 1 FROM rm_activity o WHERE o.book_id = a.book_id \
                 AND o.kind IN ('review', 'rating', 'like') AND o.user_id = $1 AND o.live) \
             AND NOT EXISTS (SELECT 1 FROM rm_loans l WHERE l.user_id = $1 \
                 AND l.book_id = a.book_id AND l.checked_out_at IS NOT NULL) \
             GROUP BY a.book_id, a.user_id, u.name, u.username, b.title, b.title_sort, b.genres"
        );
        let signals: Vec<StoredSignal> = self
            .fetch_all(
                "reading social recommendations",
                &sql,
                &[Arg::Text(user.to_string())],
            )
            .await?;
        let mut books: BTreeMap<String, Candidate> = BTreeMap::new();
        for signal in signals {
            let candidate = books
                .entry(signal.book_id.clone())
                .or_insert_with(|| Candidate {
                    rank: Rank {
                        followees: 0,
                        rating_sum: 0,
                        ratings: 0,
                        title_sort: signal.title_sort.clone(),
                        book_id: signal.book_id.clone(),
                    },
                    title: signal.title.clone(),
                    genres: Vec::new(),
                    names: Vec::new(),
                });
            if candidate.rank.followees == 0 {
                candidate.genres =
                    serde_json::from_str(&signal.genres).map_err(|e| corrupt("genres", e))?;
            }
            candidate.rank.followees += 1;
            if let Some(rating) = signal.rating {
                candidate.rank.rating_sum += rating;
                candidate.rank.ratings += 1;
            }
            candidate.names.push(
                signal
                    .name
                    .or(signal.username)
                    .unwrap_or_else(|| signal.user_id.clone()),
            );
        }
        let mut ranked: Vec<Candidate> = books
            .into_values()
            .filter(|c| after.as_ref().is_none_or(|a| c.rank > *a))
            .filter(|c| genres.is_empty() || c.genres.iter().any(|g| genres.contains(g)))
            .collect();
        ranked.sort_by(|a, b| a.rank.cmp(&b.rank));
        let limit = page_size(page);
        into_page(
            ranked,
            limit,
            |last| last.rank.cursor(),
            |mut c| {
                c.names.sort();
                c.names.truncate(NAMES);
                Ok(SocialRecommendation {
                    book_id: id("book id", &c.rank.book_id)?,
                    title: c.title,
                    genres: c.genres,
                    followees: count("followees", c.rank.followees)?,
                    average_rating: (c.rank.ratings > 0)
                        .then(|| c.rank.rating_sum as f64 / c.rank.ratings as f64),
                    followee_names: c.names,
                })
            },
        )
    }

    /// For each of `books`, how many of the people `user` follows (with public activity) liked
    /// it or rated it 4 or 5; books none of them did are absent.
    #[tracing::instrument(skip(self, books), fields(backend = self.backend(), books = books.len()))]
    pub async fn followees_who_liked(
        &self,
        user: UserId,
        books: &[BookId],
    ) -> Result<HashMap<BookId, u32>, ReadModelError> {
        if books.is_empty() {
            return Ok(HashMap::new());
        }
        let list: Vec<String> = books.iter().map(ToString::to_string).collect();
        let sql = format!(
            "SELECT a.book_id, COUNT(DISTINCT a.user_id) AS n FROM {PUBLIC_FOLLOWEES} \
             JOIN rm_activity a ON a.user_id = f.followee_id AND a.live \
             LEFT JOIN rm_users u ON u.id = a.user_id \
             WHERE {PUBLIC_FOLLOWEES_WHERE} AND COALESCE(u.active, TRUE) AND {SIGNAL} \
             AND a.book_id IN (SELECT j.value FROM {}) GROUP BY a.book_id",
            self.db().backend().texts(2)
        );
        let rows: Vec<(String, i64)> = self
            .fetch_all(
                "counting followees' likes",
                &sql,
                &[
                    Arg::Text(user.to_string()),
                    Arg::Text(json_text(&Value::from(list))),
                ],
            )
            .await?;
        rows.into_iter()
            .map(|(book, n)| Ok((id("book id", &book)?, count("followees", n)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Rank;

    fn rank(followees: i64, rating_sum: i64, ratings: i64, title: &str) -> Rank {
        Rank {
            followees,
            rating_sum,
            ratings,
            title_sort: title.into(),
            book_id: format!("id-{title}"),
        }
    }

    #[test]
    fn more_followees_then_higher_average_then_title_rank_first() {
        let mut ranks = [
            rank(1, 4, 1, "a"),
            rank(2, 0, 0, "z"),
            rank(1, 0, 0, "b"),
            rank(1, 9, 2, "c"),
            rank(1, 5, 1, "d"),
            rank(1, 9, 2, "b"),
        ];
        ranks.sort();
        let order: Vec<&str> = ranks.iter().map(|r| r.title_sort.as_str()).collect();
        assert_eq!(order, ["z", "d", "b", "c", "a", "b"]);
        assert!(ranks[4] < ranks[5], "no average ranks after any average");
    }

    #[test]
    fn cursors_carry_the_whole_rank() {
        let r = rank(3, 13, 3, "dune");
        let text = r.cursor().encode();
        assert_eq!(Rank::from_cursor(&text).unwrap(), r);
        assert!(Rank::from_cursor("nonsense").is_err());
    }
}

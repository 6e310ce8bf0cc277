//! The `club` read model's queries: clubs and members, voting rounds with their nominations,
//! ballots and counts, discussion threads and replies, and what the club scheduler looks for
//! (open rounds whose voting closed, the next voting deadline).
//!
//! The handlers are in `apply::club`. Counts are derived from the ballot rows (one per member
//! per round, the member's last ballot), so they are always the sum of the ballots that count.

use quire_domain::ids::{BookId, ClubId, ReplyId, RoundId, ThreadId, UserId};
use serde_json::Value;

use crate::db::Arg;
use crate::query::{Cursor, corrupt, count, cursor_args, id, into_page, opt_id, page_size, param};
use crate::{Page, PageRequest, ReadModelError, ReadModels};

/// A club.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClubRow {
    pub club_id: ClubId,
    pub name: String,
    /// `public` or `members_only`.
    pub visibility: String,
    pub owner_id: UserId,
    pub write_ins: bool,
    /// The winner of the last round that had one.
    pub current_book: Option<BookId>,
    pub created_at: i64,
    /// Active members.
    pub member_count: u32,
}

/// A member of a club, with the user's names as the users read model has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClubMemberRow {
    pub user_id: UserId,
    /// `owner`, `moderator` or `member`.
    pub role: String,
    pub joined_at: i64,
    pub username: Option<String>,
    pub name: Option<String>,
}

/// A voting round. Times are microseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundRow {
    pub round_id: RoundId,
    pub club_id: ClubId,
    /// `open` or `closed`.
    pub status: String,
    /// `plurality` or `ranked_choice`.
    pub method: String,
    pub opened_at: i64,
    pub nominations_close: i64,
    pub voting_closes: i64,
    pub max_nominations: u32,
    pub hide_results: bool,
    pub closed_at: Option<i64>,
    pub winner: Option<BookId>,
    pub tie_break: Option<String>,
    /// The full count recorded at close (`{"method", "counts"}` or `{"method", "rounds"}`).
    pub tally: Option<Value>,
}

/// A nominated book, in nomination order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NominationRow {
    pub book_id: BookId,
    /// The book's title (`None` if the catalogue does not know it).
    pub title: Option<String>,
    pub nominated_by: UserId,
    pub at: i64,
    /// First-choice ballots naming the book.
    pub votes: u32,
}

/// A member's ballot (the last one they cast in the round).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BallotRow {
    pub member_id: UserId,
    pub choices: Vec<BookId>,
    pub cast_at: i64,
}

/// A discussion thread, with its author's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRow {
    pub thread_id: ThreadId,
    pub club_id: ClubId,
    pub title: String,
    pub author_id: UserId,
    pub author_username: Option<String>,
    pub author_name: Option<String>,
    /// The first post; `None` once the thread was removed.
    pub content: Option<String>,
    pub book_id: Option<BookId>,
    pub chapter: Option<String>,
    pub spoiler: bool,
    pub removed: bool,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    /// Live replies.
    pub reply_count: u32,
    /// The global position of the last event applied to the thread.
    pub last_position: i64,
}

/// A reply, with its author's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRow {
    pub reply_id: ReplyId,
    pub thread_id: ThreadId,
    pub author_id: UserId,
    pub author_username: Option<String>,
    pub author_name: Option<String>,
    /// `None` once deleted or removed.
    pub content: Option<String>,
    /// `live`, `deleted` or `removed`.
    pub status: String,
    pub created_at: i64,
    pub edited_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct StoredClub {
    club_id: String,
    name: String,
    visibility: String,
    owner_id: String,
    write_ins: bool,
    current_book: Option<String>,
    created_at: i64,
    seq: i64,
    member_count: i64,
}

#[derive(sqlx::FromRow)]
struct StoredMember {
    user_id: String,
    role: String,
    joined_at: i64,
    seq: i64,
    username: Option<String>,
    name: Option<String>,
}

#[derive(sqlx::FromRow)]
struct StoredRound {
    round_id: String,
    club_id: String,
    status: String,
    method: String,
    opened_at: i64,
    nominations_close: i64,
    voting_closes: i64,
    max_nominations: i64,
    hide_results: bool,
    closed_at: Option<i64>,
    winner: Option<String>,
    tie_break: Option<String>,
    tally: Option<String>,
    seq: i64,
}

#[derive(sqlx::FromRow)]
struct StoredNomination {
    book_id: String,
    title: Option<String>,
    member_id: String,
    at: i64,
    votes: i64,
}

#[derive(sqlx::FromRow)]
struct StoredBallot {
    member_id: String,
    choices: String,
    cast_at: i64,
}

#[derive(sqlx::FromRow)]
struct StoredThread {
    thread_id: String,
    club_id: String,
    title: String,
    author_id: String,
    username: Option<String>,
    name: Option<String>,
    content: Option<String>,
    book_id: Option<String>,
    chapter: Option<String>,
    spoiler: bool,
    removed: bool,
    created_at: i64,
    edited_at: Option<i64>,
    reply_count: i64,
    seq: i64,
    last_position: i64,
}

#[derive(sqlx::FromRow)]
struct StoredReply {
    reply_id: String,
    thread_id: String,
    author_id: String,
    username: Option<String>,
    name: Option<String>,
    content: Option<String>,
    status: String,
    created_at: i64,
    edited_at: Option<i64>,
    seq: i64,
}

impl StoredClub {
    fn row(self) -> Result<ClubRow, ReadModelError> {
        Ok(ClubRow {
            club_id: id("club id", &self.club_id)?,
            name: self.name,
            visibility: self.visibility,
            owner_id: id("user id", &self.owner_id)?,
            write_ins: self.write_ins,
            current_book: opt_id("book id", self.current_book.as_deref())?,
            created_at: self.created_at,
            member_count: count("member count", self.member_count)?,
        })
    }
}

impl StoredMember {
    fn row(self) -> Result<ClubMemberRow, ReadModelError> {
        Ok(ClubMemberRow {
            user_id: id("user id", &self.user_id)?,
            role: self.role,
            joined_at: self.joined_at,
            username: self.username,
            name: self.name,
        })
    }
}

impl StoredRound {
    fn row(self) -> Result<RoundRow, ReadModelError> {
        Ok(RoundRow {
            round_id: id("round id", &self.round_id)?,
            club_id: id("club id", &self.club_id)?,
            status: self.status,
            method: self.method,
            opened_at: self.opened_at,
            nominations_close: self.nominations_close,
            voting_closes: self.voting_closes,
            max_nominations: count("nomination limit", self.max_nominations)?,
            hide_results: self.hide_results,
            closed_at: self.closed_at,
            winner: opt_id("book id", self.winner.as_deref())?,
            tie_break: self.tie_break,
            tally: self
                .tally
                .map(|t| serde_json::from_str(&t).map_err(|e| corrupt("tally", e)))
                .transpose()?,
        })
    }
}

impl StoredNomination {
    fn row(self) -> Result<NominationRow, ReadModelError> {
        Ok(NominationRow {
            book_id: id("book id", &self.book_id)?,
            title: self.title,
            nominated_by: id("user id", &self.member_id)?,
            at: self.at,
            votes: count("votes", self.votes)?,
        })
    }
}

impl StoredBallot {
    fn row(self) -> Result<BallotRow, ReadModelError> {
        let choices: Vec<String> =
            serde_json::from_str(&self.choices).map_err(|e| corrupt("ballot", e))?;
        Ok(BallotRow {
            member_id: id("user id", &self.member_id)?,
            choices: choices
                .iter()
                .map(|c| id("book id", c))
                .collect::<Result<_, _>>()?,
            cast_at: self.cast_at,
        })
    }
}

impl StoredThread {
    fn row(self) -> Result<ThreadRow, ReadModelError> {
        Ok(ThreadRow {
            thread_id: id("thread id", &self.thread_id)?,
            club_id: id("club id", &self.club_id)?,
            title: self.title,
            author_id: id("user id", &self.author_id)?,
            author_username: self.username,
            author_name: self.name,
            content: self.content,
            book_id: opt_id("book id", self.book_id.as_deref())?,
            chapter: self.chapter,
            spoiler: self.spoiler,
            removed: self.removed,
            created_at: self.created_at,
            edited_at: self.edited_at,
            reply_count: count("reply count", self.reply_count)?,
            last_position: self.last_position,
        })
    }
}

impl StoredReply {
    fn row(self) -> Result<ReplyRow, ReadModelError> {
        Ok(ReplyRow {
            reply_id: id("reply id", &self.reply_id)?,
            thread_id: id("thread id", &self.thread_id)?,
            author_id: id("user id", &self.author_id)?,
            author_username: self.username,
            author_name: self.name,
            content: self.content,
            status: self.status,
            created_at: self.created_at,
            edited_at: self.edited_at,
        })
    }
}

const CLUBS: &str = "SELECT c.club_id, c.name, c.visibility, c.owner_id, c.write_ins, \
    c.current_book, c.created_at, c.seq, (SELECT COUNT(*) FROM rm_club_members m \
    WHERE m.club_id = c.club_id AND m.active) AS member_count FROM rm_clubs c";

const MEMBERS: &str = "SELECT m.user_id, m.role, m.joined_at, m.seq, u.username, u.name \
    FROM rm_club_members m LEFT JOIN rm_users u ON u.id = m.user_id";

const ROUNDS: &str = "SELECT r.round_id, r.club_id, r.status, r.method, r.opened_at, \
    r.nominations_close, r.voting_closes, r.max_nominations, r.hide_results, r.closed_at, \
    r.winner, r.tie_break, r.tally, r.seq FROM rm_club_rounds r";

const THREADS: &str = "SELECT t.thread_id, t.club_id, t.title, t.author_id, u.username, u.name, \
    t.content, t.book_id, t.chapter, t.spoiler, t.removed, t.created_at, t.edited_at, \
    t.reply_count, t.seq, t.last_position FROM rm_threads t LEFT JOIN rm_users u \
    ON u.id = t.author_id";

const REPLIES: &str = "SELECT r.reply_id, r.thread_id, r.author_id, u.username, u.name, \
    r.content, r.status, r.created_at, r.edited_at, r.seq FROM rm_thread_replies r \
    LEFT JOIN rm_users u ON u.id = r.author_id";

/// The keyset listings and their cursors' names.
const CLUB_LISTING: &str = "clubs";
const MEMBER_LISTING: &str = "club_members";
const ROUND_LISTING: &str = "rounds";
const THREAD_LISTING: &str = "threads";
const REPLY_LISTING: &str = "replies";

fn cursor(listing: &str, seq: i64, id: &str) -> Cursor {
    Cursor {
        s: listing.into(),
        k: Value::from(seq),
        id: id.to_string(),
    }
}

impl ReadModels {
    /// A club.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn club(&self, club: ClubId) -> Result<Option<ClubRow>, ReadModelError> {
        let rows: Vec<StoredClub> = self
            .fetch_all(
                "reading a club",
                &format!("{CLUBS} WHERE c.club_id = $1"),
                &[Arg::Text(club.to_string())],
            )
            .await?;
        rows.into_iter().next().map(StoredClub::row).transpose()
    }

    /// Clubs in creation order, one page at a time.
    #[tracing::instrument(skip_all, fields(backend = self.backend()))]
    pub async fn clubs(&self, page: &PageRequest) -> Result<Page<ClubRow>, ReadModelError> {
        let mut args = Vec::new();
        let mut sql = format!("{CLUBS} WHERE 1 = 1");
        if let Some((seq, id)) = cursor_args(&mut args, page, CLUB_LISTING)? {
            sql += &format!(" AND (c.seq > {seq} OR (c.seq = {seq} AND c.club_id > {id}))");
        }
        let limit = page_size(page);
        let n = param(&mut args, Arg::I64(limit as i64 + 1));
        sql += &format!(" ORDER BY c.seq, c.club_id LIMIT {n}");
        let rows: Vec<StoredClub> = self.fetch_all("listing clubs", &sql, &args).await?;
        into_page(
            rows,
            limit,
            |last| cursor(CLUB_LISTING, last.seq, &last.club_id),
            StoredClub::row,
        )
    }

    /// A current member of a club (`None` for a user who never joined or left).
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn club_member(
        &self,
        club: ClubId,
        user: UserId,
    ) -> Result<Option<ClubMemberRow>, ReadModelError> {
        let rows: Vec<StoredMember> = self
            .fetch_all(
                "reading a club member",
                &format!("{MEMBERS} WHERE m.club_id = $1 AND m.user_id = $2 AND m.active"),
                &[Arg::Text(club.to_string()), Arg::Text(user.to_string())],
            )
            .await?;
        rows.into_iter().next().map(StoredMember::row).transpose()
    }

    /// A club's current members in joining order, one page at a time.
    #[tracing::instrument(skip(self, page), fields(backend = self.backend()))]
    pub async fn club_members(
        &self,
        club: ClubId,
        page: &PageRequest,
    ) -> Result<Page<ClubMemberRow>, ReadModelError> {
        let mut args = vec![Arg::Text(club.to_string())];
        let mut sql = format!("{MEMBERS} WHERE m.club_id = $1 AND m.active");
        if let Some((seq, id)) = cursor_args(&mut args, page, MEMBER_LISTING)? {
            sql += &format!(" AND (m.seq > {seq} OR (m.seq = {seq} AND m.user_id > {id}))");
        }
        let limit = page_size(page);
        let n = param(&mut args, Arg::I64(limit as i64 + 1));
        sql += &format!(" ORDER BY m.seq, m.user_id LIMIT {n}");
        let rows: Vec<StoredMember> = self.fetch_all("listing club members", &sql, &args).await?;
        into_page(
            rows,
            limit,
            |last| cursor(MEMBER_LISTING, last.seq, &last.user_id),
            StoredMember::row,
        )
    }

    /// A round.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn round(&self, round: RoundId) -> Result<Option<RoundRow>, ReadModelError> {
        let rows: Vec<StoredRound> = self
            .fetch_all(
                "reading a round",
                &format!("{ROUNDS} WHERE r.round_id = $1"),
                &[Arg::Text(round.to_string())],
            )
            .await?;
        rows.into_iter().next().map(StoredRound::row).transpose()
    }

    /// The club's current round: the open one, else the last one; `None` before the first.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn current_round(&self, club: ClubId) -> Result<Option<RoundRow>, ReadModelError> {
        let rows: Vec<StoredRound> = self
            .fetch_all(
                "reading a club's current round",
                &format!(
                    "{ROUNDS} WHERE r.club_id = $1 \
                     ORDER BY CASE WHEN r.status = 'open' THEN 0 ELSE 1 END, r.seq DESC LIMIT 1"
                ),
                &[Arg::Text(club.to_string())],
            )
            .await?;
        rows.into_iter().next().map(StoredRound::row).transpose()
    }

    /// A club's rounds, newest first, one page at a time.
    #[tracing::instrument(skip(self, page), fields(backend = self.backend()))]
    pub async fn rounds(
        &self,
        club: ClubId,
        page: &PageRequest,
    ) -> Result<Page<RoundRow>, ReadModelError> {
        let mut args = vec![Arg::Text(club.to_string())];
        let mut sql = format!("{ROUNDS} WHERE r.club_id = $1");
        if let Some((seq, id)) = cursor_args(&mut args, page, ROUND_LISTING)? {
            sql += &format!(" AND (r.seq < {seq} OR (r.seq = {seq} AND r.round_id < {id}))");
        }
        let limit = page_size(page);
        let n = param(&mut args, Arg::I64(limit as i64 + 1));
        sql += &format!(" ORDER BY r.seq DESC, r.round_id DESC LIMIT {n}");
        let rows: Vec<StoredRound> = self.fetch_all("listing rounds", &sql, &args).await?;
        into_page(
            rows,
            limit,
            |last| cursor(ROUND_LISTING, last.seq, &last.round_id),
            StoredRound::row,
        )
    }

    /// A round's nominations in nomination order, each with its first-choice votes (counted
    /// from the members' last ballots).
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn nominations(&self, round: RoundId) -> Result<Vec<NominationRow>, ReadModelError> {
        let rows: Vec<StoredNomination> = self
            .fetch_all(
                "reading a round's nominations",
                "SELECT n.book_id, b.title, n.member_id, n.at, \
                 (SELECT COUNT(*) FROM rm_club_ballots v WHERE v.round_id = n.round_id \
                 AND v.first_choice = n.book_id) AS votes \
                 FROM rm_club_nominations n LEFT JOIN rm_books b ON b.id = n.book_id \
                 WHERE n.round_id = $1 ORDER BY n.seq, n.book_id",
                &[Arg::Text(round.to_string())],
            )
            .await?;
        rows.into_iter().map(StoredNomination::row).collect()
    }

    /// Every counted ballot of a round (each member's last), by member.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn ballots(&self, round: RoundId) -> Result<Vec<BallotRow>, ReadModelError> {
        let rows: Vec<StoredBallot> = self
            .fetch_all(
                "reading a round's ballots",
                "SELECT member_id, choices, cast_at FROM rm_club_ballots WHERE round_id = $1 \
                 ORDER BY member_id",
                &[Arg::Text(round.to_string())],
            )
            .await?;
        rows.into_iter().map(StoredBallot::row).collect()
    }

    /// A member's counted ballot in a round.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn ballot(
        &self,
        round: RoundId,
        member: UserId,
    ) -> Result<Option<BallotRow>, ReadModelError> {
        let rows: Vec<StoredBallot> = self
            .fetch_all(
                "reading a ballot",
                "SELECT member_id, choices, cast_at FROM rm_club_ballots \
                 WHERE round_id = $1 AND member_id = $2",
                &[Arg::Text(round.to_string()), Arg::Text(member.to_string())],
            )
            .await?;
        rows.into_iter().next().map(StoredBallot::row).transpose()
    }

    /// Open rounds whose voting closed at or before `now`, earliest first: the scheduler closes
    /// them.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn rounds_due(&self, now: i64, limit: u32) -> Result<Vec<RoundRow>, ReadModelError> {
        let rows: Vec<StoredRound> = self
            .fetch_all(
                "reading rounds due",
                &format!(
                    "{ROUNDS} WHERE r.status = 'open' AND r.voting_closes <= $1 \
                     ORDER BY r.voting_closes, r.round_id LIMIT $2"
                ),
                &[Arg::I64(now), Arg::I64(i64::from(limit))],
            )
            .await?;
        rows.into_iter().map(StoredRound::row).collect()
    }

    /// The earliest voting deadline of an open round, if any.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn next_round_deadline(&self) -> Result<Option<i64>, ReadModelError> {
        let rows: Vec<(Option<i64>,)> = self
            .fetch_all(
                "reading the next round deadline",
                "SELECT MIN(voting_closes) FROM rm_club_rounds WHERE status = 'open'",
                &[],
            )
            .await?;
        Ok(rows.into_iter().next().and_then(|(at,)| at))
    }

    /// A thread (removed ones included: the API answers 410 for them).
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn thread(&self, thread: ThreadId) -> Result<Option<ThreadRow>, ReadModelError> {
        let rows: Vec<StoredThread> = self
            .fetch_all(
                "reading a thread",
                &format!("{THREADS} WHERE t.thread_id = $1"),
                &[Arg::Text(thread.to_string())],
            )
            .await?;
        rows.into_iter().next().map(StoredThread::row).transpose()
    }

    /// A club's threads that were not removed, newest first, one page at a time.
    #[tracing::instrument(skip(self, page), fields(backend = self.backend()))]
    pub async fn threads(
        &self,
        club: ClubId,
        page: &PageRequest,
    ) -> Result<Page<ThreadRow>, ReadModelError> {
        let mut args = vec![Arg::Text(club.to_string())];
        let mut sql = format!("{THREADS} WHERE t.club_id = $1 AND NOT t.removed");
        if let Some((seq, id)) = cursor_args(&mut args, page, THREAD_LISTING)? {
            sql += &format!(" AND (t.seq < {seq} OR (t.seq = {seq} AND t.thread_id < {id}))");
        }
        let limit = page_size(page);
        let n = param(&mut args, Arg::I64(limit as i64 + 1));
        sql += &format!(" ORDER BY t.seq DESC, t.thread_id DESC LIMIT {n}");
        let rows: Vec<StoredThread> = self.fetch_all("listing threads", &sql, &args).await?;
        into_page(
            rows,
            limit,
            |last| cursor(THREAD_LISTING, last.seq, &last.thread_id),
            StoredThread::row,
        )
    }

    /// A thread's replies in posting order (deleted and removed ones keep their place, without
    /// text), one page at a time.
    #[tracing::instrument(skip(self, page), fields(backend = self.backend()))]
    pub async fn replies(
        &self,
        thread: ThreadId,
        page: &PageRequest,
    ) -> Result<Page<ReplyRow>, ReadModelError> {
        let mut args = vec![Arg::Text(thread.to_string())];
        let mut sql = format!("{REPLIES} WHERE r.thread_id = $1");
        if let Some((seq, id)) = cursor_args(&mut args, page, REPLY_LISTING)? {
            sql += &format!(" AND (r.seq > {seq} OR (r.seq = {seq} AND r.reply_id > {id}))");
        }
        let limit = page_size(page);
        let n = param(&mut args, Arg::I64(limit as i64 + 1));
        sql += &format!(" ORDER BY r.seq, r.reply_id LIMIT {n}");
        let rows: Vec<StoredReply> = self.fetch_all("listing replies", &sql, &args).await?;
        into_page(
            rows,
            limit,
            |last| cursor(REPLY_LISTING, last.seq, &last.reply_id),
            StoredReply::row,
        )
    }

    /// A thread's latest `limit` live replies, oldest of them first.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn latest_replies(
        &self,
        thread: ThreadId,
        limit: u32,
    ) -> Result<Vec<ReplyRow>, ReadModelError> {
        let rows: Vec<StoredReply> = self
            .fetch_all(
                "reading a thread's latest replies",
                &format!(
                    "{REPLIES} WHERE r.thread_id = $1 AND r.status = 'live' \
                     ORDER BY r.seq DESC, r.reply_id DESC LIMIT $2"
                ),
                &[Arg::Text(thread.to_string()), Arg::I64(i64::from(limit))],
            )
            .await?;
        let mut replies: Vec<ReplyRow> = rows
            .into_iter()
            .map(StoredReply::row)
            .collect::<Result<_, _>>()?;
        replies.reverse();
        Ok(replies)
    }

    /// A reply, whatever its status.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn reply(&self, reply: ReplyId) -> Result<Option<ReplyRow>, ReadModelError> {
        let rows: Vec<StoredReply> = self
            .fetch_all(
                "reading a reply",
                &format!("{REPLIES} WHERE r.reply_id = $1"),
                &[Arg::Text(reply.to_string())],
            )
            .await?;
        rows.into_iter().next().map(StoredReply::row).transpose()
    }
}

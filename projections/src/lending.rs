//! The `lending` read model's queries: a book's copies, loans and holds as the API lists them, and
//! what the lending deadline scheduler looks for (loans falling due, holds whose pickup deadline
//! passed, borrows and holds interrupted half-way, slots that ended loans and holds still hold).
//!
//! The handlers are in `apply::lending`. A borrow or a hold starts `pending` when the member's slot
//! is taken and becomes a loan or a queued hold only when the book's lending stream says so; the
//! member-facing listings leave pending and refused ones out, while the scheduler's queries find
//! the pending ones that never went on.

use quire_domain::ids::{BookId, CopyId, HoldId, LoanId, UserId};
use serde_json::Value;

use crate::db::Arg;
use crate::query::{Cursor, corrupt, count, cursor_args, id, into_page, opt_id, page_size, param};
use crate::{Page, PageRequest, ReadModelError, ReadModels};

/// Where a loan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoanStatus {
    /// The member's slot is taken; the book has not lent a copy yet.
    Pending,
    /// A copy is lent (overdue ones included).
    Open,
    Returned,
    /// Ended because the copy was declared lost.
    Lost,
    /// The book refused the borrow and the member's slot was given back.
    Refused,
}

impl LoanStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Open => "open",
            Self::Returned => "returned",
            Self::Lost => "lost",
            Self::Refused => "refused",
        }
    }

    fn from_stored(text: &str) -> Result<Self, ReadModelError> {
        [
            Self::Pending,
            Self::Open,
            Self::Returned,
            Self::Lost,
            Self::Refused,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| corrupt("loan status", text))
    }
}

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldStatus {
    /// The member's hold slot is taken; the book has not queued the hold yet.
    Pending,
    /// In the queue, waiting for a copy.
    Waiting,
    /// A copy is on the hold shelf for the member until `pickup_until`.
    Ready,
    /// The member borrowed the copy kept for them.
    Fulfilled,
    Cancelled,
    /// The pickup deadline passed.
    Expired,
    /// The book refused the hold and the member's slot was given back.
    Refused,
}

impl HoldStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Waiting => "waiting",
            Self::Ready => "ready",
            Self::Fulfilled => "fulfilled",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Refused => "refused",
        }
    }

    fn from_stored(text: &str) -> Result<Self, ReadModelError> {
        [
            Self::Pending,
            Self::Waiting,
            Self::Ready,
            Self::Fulfilled,
            Self::Cancelled,
            Self::Expired,
            Self::Refused,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| corrupt("hold status", text))
    }
}

/// A copy of a book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRow {
    pub copy_id: CopyId,
    pub book_id: BookId,
    /// `None` for an implicit copy (a book lent without registered copies).
    pub barcode: Option<String>,
    /// "available", "on_loan", "on_hold_shelf", "lost" or "withdrawn" (the domain's
    /// `CopyStatus::as_str`).
    pub status: String,
    /// The loan it is lent under, when on loan.
    pub loan_id: Option<LoanId>,
    /// The hold it is kept for, when on the hold shelf.
    pub hold_id: Option<HoldId>,
    /// When the copy was registered (commit time), microseconds since the epoch.
    pub added_at: i64,
}

/// A loan, or a borrow in progress (`Pending`) or refused. Times are microseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanRow {
    pub loan_id: LoanId,
    pub book_id: BookId,
    pub user_id: UserId,
    /// The copy lent; `None` until the loan opens.
    pub copy_id: Option<CopyId>,
    /// The lent copy's barcode (`None` for an implicit copy).
    pub barcode: Option<String>,
    pub status: LoanStatus,
    pub requested_at: i64,
    pub checked_out_at: Option<i64>,
    /// The current due date (moved by renewals); while pending, the one requested.
    pub due_at: i64,
    /// When the loan ended (returned, or the copy declared lost).
    pub returned_at: Option<i64>,
    pub renewals: u32,
    /// The book's lending stream recorded that the loan passed its due date.
    pub overdue: bool,
    /// The member's stream recorded it too (what blocks a member counts).
    pub member_flagged_overdue: bool,
    /// The member's loan slot is still taken by this loan.
    pub member_slot_held: bool,
    /// The `lending.implicit_copies` of the request (0 when the slot event was not seen).
    pub implicit_copies: u32,
}

/// A hold, or one in progress (`Pending`) or refused. Times are microseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRow {
    pub hold_id: HoldId,
    pub book_id: BookId,
    pub user_id: UserId,
    pub status: HoldStatus,
    pub requested_at: i64,
    pub placed_at: Option<i64>,
    /// The hold's place in its book's queue: the global log position of its `HoldPlaced`.
    pub queue_seq: Option<i64>,
    /// The copy on the hold shelf for it (kept after the hold ends, for the record).
    pub copy_id: Option<CopyId>,
    pub pickup_until: Option<i64>,
    /// When the hold was fulfilled, cancelled or expired.
    pub ended_at: Option<i64>,
    /// The loan that fulfilled it.
    pub loan_id: Option<LoanId>,
    /// The member's hold slot is still taken by this hold.
    pub member_slot_held: bool,
    pub implicit_copies: u32,
}

/// Which loans a [`LoanQuery`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoanStatusFilter {
    /// Open loans, overdue ones included.
    Open,
    /// Open loans that are overdue, recorded as such or past their due date at the query's `now`.
    Overdue,
    /// Ended loans: returned, or lost.
    Returned,
}

/// A loan listing, newest checkout first. Borrows in progress and refused ones are never listed;
/// without a status filter the listing holds open, returned and lost loans.
#[derive(Debug, Clone, Default)]
pub struct LoanQuery {
    pub user_id: Option<UserId>,
    pub book_id: Option<BookId>,
    pub status: Option<LoanStatusFilter>,
    /// The time [`LoanStatusFilter::Overdue`] compares due dates with, microseconds since the
    /// epoch (the read side reads no clock).
    pub now: i64,
    pub page: PageRequest,
}

/// A hold listing, in queue order. Holds in progress and refused ones are never listed.
#[derive(Debug, Clone, Default)]
pub struct HoldQuery {
    pub user_id: Option<UserId>,
    pub book_id: Option<BookId>,
    /// Only holds still in a queue: waiting, or ready on the hold shelf.
    pub active_only: bool,
    pub page: PageRequest,
}

#[derive(sqlx::FromRow)]
struct StoredCopy {
    copy_id: String,
    book_id: String,
    barcode: Option<String>,
    status: String,
    loan_id: Option<String>,
    hold_id: Option<String>,
    added_at: i64,
}

#[derive(sqlx::FromRow)]
struct StoredLoan {
    loan_id: String,
    book_id: String,
    user_id: String,
    copy_id: Option<String>,
    barcode: Option<String>,
    status: String,
    requested_at: i64,
    checked_out_at: Option<i64>,
    due_at: i64,
    returned_at: Option<i64>,
    renewals: i64,
    overdue: bool,
    member_flagged_overdue: bool,
    member_slot_held: bool,
    implicit_copies: i64,
}

#[derive(sqlx::FromRow)]
struct StoredHold {
    hold_id: String,
    book_id: String,
    user_id: String,
    status: String,
    requested_at: i64,
    placed_at: Option<i64>,
    queue_seq: Option<i64>,
    copy_id: Option<String>,
    pickup_until: Option<i64>,
    ended_at: Option<i64>,
    loan_id: Option<String>,
    member_slot_held: bool,
    implicit_copies: i64,
}

impl StoredCopy {
    fn row(self) -> Result<CopyRow, ReadModelError> {
        Ok(CopyRow {
            copy_id: id("copy id", &self.copy_id)?,
            book_id: id("book id", &self.book_id)?,
            barcode: self.barcode,
            status: self.status,
            loan_id: opt_id("loan id", self.loan_id.as_deref())?,
            hold_id: opt_id("hold id", self.hold_id.as_deref())?,
            added_at: self.added_at,
        })
    }
}

impl StoredLoan {
    fn row(self) -> Result<LoanRow, ReadModelError> {
        Ok(LoanRow {
            loan_id: id("loan id", &self.loan_id)?,
            book_id: id("book id", &self.book_id)?,
            user_id: id("user id", &self.user_id)?,
            copy_id: opt_id("copy id", self.copy_id.as_deref())?,
            barcode: self.barcode,
            status: LoanStatus::from_stored(&self.status)?,
            requested_at: self.requested_at,
            checked_out_at: self.checked_out_at,
            due_at: self.due_at,
            returned_at: self.returned_at,
            renewals: count("renewals", self.renewals)?,
            overdue: self.overdue,
            member_flagged_overdue: self.member_flagged_overdue,
            member_slot_held: self.member_slot_held,
            implicit_copies: count("implicit copies", self.implicit_copies)?,
        })
    }
}

impl StoredHold {
    fn row(self) -> Result<HoldRow, ReadModelError> {
        Ok(HoldRow {
            hold_id: id("hold id", &self.hold_id)?,
            book_id: id("book id", &self.book_id)?,
            user_id: id("user id", &self.user_id)?,
            status: HoldStatus::from_stored(&self.status)?,
            requested_at: self.requested_at,
            placed_at: self.placed_at,
            queue_seq: self.queue_seq,
            copy_id: opt_id("copy id", self.copy_id.as_deref())?,
            pickup_until: self.pickup_until,
            ended_at: self.ended_at,
            loan_id: opt_id("loan id", self.loan_id.as_deref())?,
            member_slot_held: self.member_slot_held,
            implicit_copies: count("implicit copies", self.implicit_copies)?,
        })
    }
}

const COPY_COLUMNS: &str = "copy_id, book_id, barcode, status, loan_id, hold_id, added_at";

/// A loan with its copy's barcode.
const LOANS: &str = "SELECT l.loan_id, l.book_id, l.user_id, l.copy_id, c.barcode, l.status, \
    l.requested_at, l.checked_out_at, l.due_at, l.returned_at, l.renewals, l.overdue, \
    l.member_flagged_overdue, l.member_slot_held, l.implicit_copies \
    FROM rm_loans l LEFT JOIN rm_copies c ON c.copy_id = l.copy_id";

const HOLDS: &str = "SELECT h.hold_id, h.book_id, h.user_id, h.status, h.requested_at, \
    h.placed_at, h.queue_seq, h.copy_id, h.pickup_until, h.ended_at, h.loan_id, \
    h.member_slot_held, h.implicit_copies FROM rm_holds h";

/// The statuses of holds still in their book's queue.
const ACTIVE_HOLD: &str = "h.status IN ('waiting', 'ready')";

/// The keyset listing of loans (newest checkout first) and its cursor's name.
const LOAN_LISTING: &str = "loans";
/// The keyset listing of holds (queue order) and its cursor's name.
const HOLD_LISTING: &str = "holds";

impl ReadModels {
    async fn loans_where(
        &self,
        context: &'static str,
        condition: &str,
        args: &[Arg],
    ) -> Result<Vec<LoanRow>, ReadModelError> {
        let rows: Vec<StoredLoan> = self
            .fetch_all(context, &format!("{LOANS} WHERE {condition}"), args)
            .await?;
        rows.into_iter().map(StoredLoan::row).collect()
    }

    async fn holds_where(
        &self,
        context: &'static str,
        condition: &str,
        args: &[Arg],
    ) -> Result<Vec<HoldRow>, ReadModelError> {
        let rows: Vec<StoredHold> = self
            .fetch_all(context, &format!("{HOLDS} WHERE {condition}"), args)
            .await?;
        rows.into_iter().map(StoredHold::row).collect()
    }

    /// A book's copies in registration order (the order checkouts take them in), lost and
    /// withdrawn ones included.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn copies_of_book(&self, book: BookId) -> Result<Vec<CopyRow>, ReadModelError> {
        let rows: Vec<StoredCopy> = self
            .fetch_all(
                "reading a book's copies",
                &format!(
                    "SELECT {COPY_COLUMNS} FROM rm_copies WHERE book_id = $1 ORDER BY seq, copy_id"
                ),
                &[Arg::Text(book.to_string())],
            )
            .await?;
        rows.into_iter().map(StoredCopy::row).collect()
    }

    /// A copy, of whichever book.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn copy(&self, copy: CopyId) -> Result<Option<CopyRow>, ReadModelError> {
        let rows: Vec<StoredCopy> = self
            .fetch_all(
                "reading a copy",
                &format!("SELECT {COPY_COLUMNS} FROM rm_copies WHERE copy_id = $1"),
                &[Arg::Text(copy.to_string())],
            )
            .await?;
        rows.into_iter().next().map(StoredCopy::row).transpose()
    }

    /// A loan, whatever its status (pending and refused borrows included).
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn loan(&self, loan: LoanId) -> Result<Option<LoanRow>, ReadModelError> {
        let rows = self
            .loans_where(
                "reading a loan",
                "l.loan_id = $1",
                &[Arg::Text(loan.to_string())],
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Loans matching the filters, newest checkout first (ties by loan id), one page at a time.
    #[tracing::instrument(skip_all, fields(backend = self.backend(), status = ?q.status))]
    pub async fn loans(&self, q: &LoanQuery) -> Result<Page<LoanRow>, ReadModelError> {
        let mut args = Vec::new();
        let status = match q.status {
            None => "l.status IN ('open', 'returned', 'lost')".to_string(),
            Some(LoanStatusFilter::Open) => "l.status = 'open'".to_string(),
            Some(LoanStatusFilter::Overdue) => {
                let now = param(&mut args, Arg::I64(q.now));
                format!("l.status = 'open' AND (l.overdue OR l.due_at <= {now})")
            }
            Some(LoanStatusFilter::Returned) => "l.status IN ('returned', 'lost')".to_string(),
        };
        // Every listed status comes from a `LoanOpened`, which sets the checkout time; the
        // condition keeps the keyset total should a row ever lack it.
        let mut sql = format!("{LOANS} WHERE {status} AND l.checked_out_at IS NOT NULL");
        if let Some(user) = q.user_id {
            let p = param(&mut args, Arg::Text(user.to_string()));
            sql += &format!(" AND l.user_id = {p}");
        }
        if let Some(book) = q.book_id {
            let p = param(&mut args, Arg::Text(book.to_string()));
            sql += &format!(" AND l.book_id = {p}");
        }
        if let Some((at, id)) = cursor_args(&mut args, &q.page, LOAN_LISTING)? {
            sql += &format!(
                " AND (l.checked_out_at < {at} OR (l.checked_out_at = {at} AND l.loan_id < {id}))"
            );
        }
        let limit = page_size(&q.page);
        let n = param(&mut args, Arg::I64(limit as i64 + 1));
        sql += &format!(" ORDER BY l.checked_out_at DESC, l.loan_id DESC LIMIT {n}");
        let rows: Vec<StoredLoan> = self.fetch_all("listing loans", &sql, &args).await?;
        into_page(
            rows,
            limit,
            |last| Cursor {
                s: LOAN_LISTING.into(),
                k: Value::from(last.checked_out_at.unwrap_or_default()),
                id: last.loan_id.clone(),
            },
            StoredLoan::row,
        )
    }

    /// The member's open loan of the book, if any (the domain allows one at a time).
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn open_loan_of(
        &self,
        user: UserId,
        book: BookId,
    ) -> Result<Option<LoanRow>, ReadModelError> {
        let rows = self
            .loans_where(
                "reading a member's open loan",
                "l.user_id = $1 AND l.book_id = $2 AND l.status = 'open' \
                 ORDER BY l.checked_out_at DESC, l.loan_id DESC LIMIT 1",
                &[Arg::Text(user.to_string()), Arg::Text(book.to_string())],
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// A hold, whatever its status (pending and refused ones included).
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn hold(&self, hold: HoldId) -> Result<Option<HoldRow>, ReadModelError> {
        let rows = self
            .holds_where(
                "reading a hold",
                "h.hold_id = $1",
                &[Arg::Text(hold.to_string())],
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Holds matching the filters, in queue order (ties by hold id), one page at a time.
    #[tracing::instrument(skip_all, fields(backend = self.backend(), active_only = q.active_only))]
    pub async fn holds(&self, q: &HoldQuery) -> Result<Page<HoldRow>, ReadModelError> {
        let mut args = Vec::new();
        let status = if q.active_only {
            ACTIVE_HOLD
        } else {
            "h.status NOT IN ('pending', 'refused')"
        };
        // Every listed status comes from a `HoldPlaced`, which sets the queue position.
        let mut sql = format!("{HOLDS} WHERE {status} AND h.queue_seq IS NOT NULL");
        if let Some(user) = q.user_id {
            let p = param(&mut args, Arg::Text(user.to_string()));
            sql += &format!(" AND h.user_id = {p}");
        }
        if let Some(book) = q.book_id {
            let p = param(&mut args, Arg::Text(book.to_string()));
            sql += &format!(" AND h.book_id = {p}");
        }
        if let Some((seq, id)) = cursor_args(&mut args, &q.page, HOLD_LISTING)? {
            sql += &format!(
                " AND (h.queue_seq > {seq} OR (h.queue_seq = {seq} AND h.hold_id > {id}))"
            );
        }
        let limit = page_size(&q.page);
        let n = param(&mut args, Arg::I64(limit as i64 + 1));
        sql += &format!(" ORDER BY h.queue_seq, h.hold_id LIMIT {n}");
        let rows: Vec<StoredHold> = self.fetch_all("listing holds", &sql, &args).await?;
        into_page(
            rows,
            limit,
            |last| Cursor {
                s: HOLD_LISTING.into(),
                k: Value::from(last.queue_seq.unwrap_or_default()),
                id: last.hold_id.clone(),
            },
            StoredHold::row,
        )
    }

    /// A book's active holds (waiting, or ready on the hold shelf) in queue order.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn hold_queue(&self, book: BookId) -> Result<Vec<HoldRow>, ReadModelError> {
        self.holds_where(
            "reading a book's hold queue",
            &format!("h.book_id = $1 AND {ACTIVE_HOLD} ORDER BY h.queue_seq, h.hold_id"),
            &[Arg::Text(book.to_string())],
        )
        .await
    }

    /// Open loans due at `now` that are not yet recorded overdue, earliest due first: the
    /// scheduler marks them overdue.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn loans_due(&self, now: i64, limit: u32) -> Result<Vec<LoanRow>, ReadModelError> {
        self.loans_where(
            "reading loans due",
            "l.status = 'open' AND l.overdue = FALSE AND l.due_at <= $1 \
             ORDER BY l.due_at, l.loan_id LIMIT $2",
            &[Arg::I64(now), Arg::I64(i64::from(limit))],
        )
        .await
    }

    /// Overdue loans the member's stream does not know are overdue yet (while the member's slot
    /// is still held by them), earliest due first: the scheduler flags them on the member.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn loans_to_flag_overdue(&self, limit: u32) -> Result<Vec<LoanRow>, ReadModelError> {
        self.loans_where(
            "reading loans to flag overdue",
            "l.status = 'open' AND l.overdue = TRUE AND NOT l.member_flagged_overdue \
             AND l.member_slot_held ORDER BY l.due_at, l.loan_id LIMIT $1",
            &[Arg::I64(i64::from(limit))],
        )
        .await
    }

    /// Ready holds whose pickup deadline is at or before `now`, earliest first: the scheduler
    /// expires them.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn holds_expired(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<HoldRow>, ReadModelError> {
        self.holds_where(
            "reading expired holds",
            "h.status = 'ready' AND h.pickup_until <= $1 \
             ORDER BY h.pickup_until, h.hold_id LIMIT $2",
            &[Arg::I64(now), Arg::I64(i64::from(limit))],
        )
        .await
    }

    /// Borrows that took the member's slot at or before `requested_before` and never opened a
    /// loan or gave the slot back (a process interrupted half-way), oldest first: the scheduler
    /// completes them with the stored request.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn stuck_borrows(
        &self,
        requested_before: i64,
        limit: u32,
    ) -> Result<Vec<LoanRow>, ReadModelError> {
        self.loans_where(
            "reading stuck borrows",
            "l.status = 'pending' AND l.requested_at <= $1 \
             ORDER BY l.requested_at, l.loan_id LIMIT $2",
            &[Arg::I64(requested_before), Arg::I64(i64::from(limit))],
        )
        .await
    }

    /// Holds that took the member's slot at or before `requested_before` and were never queued
    /// or refused, oldest first.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn stuck_holds(
        &self,
        requested_before: i64,
        limit: u32,
    ) -> Result<Vec<HoldRow>, ReadModelError> {
        self.holds_where(
            "reading stuck holds",
            "h.status = 'pending' AND h.requested_at <= $1 \
             ORDER BY h.requested_at, h.hold_id LIMIT $2",
            &[Arg::I64(requested_before), Arg::I64(i64::from(limit))],
        )
        .await
    }

    /// Ended loans (returned or lost) whose member slot was not given back yet, oldest end first.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn unreleased_loan_slots(&self, limit: u32) -> Result<Vec<LoanRow>, ReadModelError> {
        self.loans_where(
            "reading unreleased loan slots",
            "l.member_slot_held AND l.status IN ('returned', 'lost') \
             ORDER BY l.returned_at, l.loan_id LIMIT $1",
            &[Arg::I64(i64::from(limit))],
        )
        .await
    }

    /// Ended holds (fulfilled, cancelled or expired) whose member slot was not given back yet,
    /// oldest end first.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn unreleased_hold_slots(&self, limit: u32) -> Result<Vec<HoldRow>, ReadModelError> {
        self.holds_where(
            "reading unreleased hold slots",
            "h.member_slot_held AND h.status IN ('fulfilled', 'cancelled', 'expired') \
             ORDER BY h.ended_at, h.hold_id LIMIT $1",
            &[Arg::I64(i64::from(limit))],
        )
        .await
    }

    /// The next time a lending deadline passes: the earliest due date of an open loan not yet
    /// overdue, or pickup deadline of a ready hold; `None` when nothing is pending. The
    /// scheduler sleeps until then (or until new events).
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn next_lending_deadline(&self) -> Result<Option<i64>, ReadModelError> {
        let rows: Vec<(Option<i64>,)> = self
            .fetch_all(
                "reading the next lending deadline",
                "SELECT MIN(d.at) FROM (\
                 SELECT MIN(due_at) AS at FROM rm_loans WHERE status = 'open' AND overdue = FALSE \
                 UNION ALL \
                 SELECT MIN(pickup_until) AS at FROM rm_holds WHERE status = 'ready') d",
                &[],
            )
            .await?;
        Ok(rows.into_iter().next().and_then(|(at,)| at))
    }
}

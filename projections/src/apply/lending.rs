//! The `lending` projection's handlers: `rm_copies`, `rm_loans` and `rm_holds`.
//!
//! A loan or hold row is written from two streams: the member's (`LoanSlotTaken`, the slot a
//! borrow takes before it asks for a copy, and its release) and the book's lending stream
//! (`LoanOpened`, …). A stream version cannot order events of two streams, so every row records
//! the global position of the last event applied to it, and every write is guarded by
//! `position < event position`: events arrive in position order, so an event at or before the
//! row's position was applied before (a replay) and changes nothing. Conditional changes (a
//! refused borrow, a copy leaving the hold shelf) read only the row they change, which a replay
//! finds as it was when the event was first applied, so they decide the same way again.
//!
//! The member's slot event normally comes first and creates the row as `pending`; the lending
//! event that opens the loan or places the hold creates the row itself when the slot event was
//! never seen, so the circulation side never depends on it.

use quire_domain::lending::{LendingEvent, LoanEnd};
use quire_domain::user::UserEvent;
use quire_store::RecordedEvent;

use crate::ReadModelError;
use crate::db::{Arg, Tx};
use crate::decode::{decode_lending, decode_user, lending_book_of, user_of};

/// The event types of a user stream that concern circulation; the other user events are not
/// decoded at all.
pub(super) const SLOT_TYPES: [&str; 5] = [
    "LoanSlotTaken",
    "LoanSlotReleased",
    "LoanFlaggedOverdue",
    "HoldSlotTaken",
    "HoldSlotReleased",
];

/// Where and when an event applies: the table suffix, the event's global position (the rows'
/// guard, and the order of copies and of the hold queue) and its commit time.
struct Stamp<'a> {
    s: &'a str,
    position: i64,
    recorded_at: i64,
}

pub(super) async fn apply(
    tx: &mut Tx,
    s: &str,
    events: &[&RecordedEvent],
) -> Result<(), ReadModelError> {
    for &event in events {
        let stamp = Stamp {
            s,
            position: event.position as i64,
            recorded_at: event.recorded_at,
        };
        if let Some(book_id) = lending_book_of(event)? {
            apply_lending(tx, &stamp, book_id, decode_lending(event)?).await?;
        } else if SLOT_TYPES.contains(&event.event_type.as_str()) && user_of(event)?.is_some() {
            apply_member(tx, &stamp, decode_user(event)?).await?;
        }
    }
    Ok(())
}

/// An event of a book's lending stream (`lending-{book_id}`).
async fn apply_lending(
    tx: &mut Tx,
    at: &Stamp<'_>,
    book_id: String,
    event: LendingEvent,
) -> Result<(), ReadModelError> {
    let (s, p) = (at.s, Arg::I64(at.position));
    match event {
        LendingEvent::CopyAdded { copy_id, barcode } => {
            tx.exec(
                "projecting CopyAdded",
                &format!(
                    "INSERT INTO rm_copies{s} (copy_id, book_id, barcode, status, seq, added_at, \
                     position) VALUES ($1, $2, $3, 'available', $4, $5, $4) \
                     ON CONFLICT (copy_id) DO NOTHING"
                ),
                &[
                    Arg::Text(copy_id.to_string()),
                    Arg::Text(book_id),
                    Arg::OptText(barcode.map(|b| b.into_inner())),
                    p,
                    Arg::I64(at.recorded_at),
                ],
            )
            .await?;
        }
        LendingEvent::LoanOpened {
            loan_id,
            copy_id,
            member,
            at: opened_at,
            due_at,
        } => {
            // The loan's `at` is its request time (a checkout is decided when it is requested),
            // which stands in for the request of a slot event never seen.
            tx.exec(
                "projecting LoanOpened",
                &format!(
                    "INSERT INTO rm_loans{s} (loan_id, book_id, user_id, copy_id, status, \
                     requested_at, checked_out_at, due_at, position) \
                     VALUES ($1, $2, $3, $4, 'open', $5, $5, $6, $7) \
                     ON CONFLICT (loan_id) DO UPDATE SET copy_id = excluded.copy_id, \
                     status = 'open', checked_out_at = excluded.checked_out_at, \
                     due_at = excluded.due_at, position = excluded.position \
                     WHERE rm_loans{s}.position < excluded.position"
                ),
                &[
                    Arg::Text(loan_id.to_string()),
                    Arg::Text(book_id.clone()),
                    Arg::Text(member.to_string()),
                    Arg::Text(copy_id.to_string()),
                    Arg::I64(opened_at.as_micros()),
                    Arg::I64(due_at.as_micros()),
                    p.clone(),
                ],
            )
            .await?;
            // A lent copy is on no hold shelf: the hold it was kept for is fulfilled by this loan.
            tx.exec(
                "projecting LoanOpened",
                &format!(
                    "UPDATE rm_copies{s} SET status = 'on_loan', loan_id = $3, hold_id = NULL, \
                     position = $4 WHERE copy_id = $1 AND book_id = $2 AND position < $4"
                ),
                &[
                    Arg::Text(copy_id.to_string()),
                    Arg::Text(book_id),
                    Arg::Text(loan_id.to_string()),
                    p,
                ],
            )
            .await?;
        }
        LendingEvent::HoldFulfilled {
            hold_id, loan_id, ..
        } => {
            // The event carries no time; the loan that fulfils the hold was opened by the same
            // command, so its checkout time is when the hold ended (the commit time if that
            // loan is unknown here).
            tx.exec(
                "projecting HoldFulfilled",
                &format!(
                    "UPDATE rm_holds{s} SET status = 'fulfilled', loan_id = $2, \
                     ended_at = COALESCE((SELECT l.checked_out_at FROM rm_loans{s} l \
                     WHERE l.loan_id = $2), $3), position = $4 \
                     WHERE hold_id = $1 AND position < $4"
                ),
                &[
                    Arg::Text(hold_id.to_string()),
                    Arg::Text(loan_id.to_string()),
                    Arg::I64(at.recorded_at),
                    p.clone(),
                ],
            )
            .await?;
            clear_shelf(tx, at, &book_id, &hold_id.to_string(), false).await?;
        }
        LendingEvent::LoanEnded {
            loan_id,
            copy_id,
            at: ended_at,
            end,
            ..
        } => {
            tx.exec(
                "projecting LoanEnded",
                &format!(
                    "UPDATE rm_loans{s} SET status = $2, returned_at = $3, position = $4 \
                     WHERE loan_id = $1 AND position < $4"
                ),
                &[
                    Arg::Text(loan_id.to_string()),
                    Arg::Text(end.as_str().to_string()),
                    Arg::I64(ended_at.as_micros()),
                    p.clone(),
                ],
            )
            .await?;
            let copy_status = match end {
                LoanEnd::Returned => "available",
                LoanEnd::Lost => "lost",
            };
            tx.exec(
                "projecting LoanEnded",
                &format!(
                    "UPDATE rm_copies{s} SET status = $3, loan_id = NULL, position = $4 \
                     WHERE copy_id = $1 AND book_id = $2 AND position < $4"
                ),
                &[
                    Arg::Text(copy_id.to_string()),
                    Arg::Text(book_id),
                    Arg::Text(copy_status.to_string()),
                    p,
                ],
            )
            .await?;
        }
        LendingEvent::LoanRenewed {
            loan_id,
            due_at,
            renewals,
            ..
        } => {
            tx.exec(
                "projecting LoanRenewed",
                &format!(
                    "UPDATE rm_loans{s} SET due_at = $2, renewals = $3, position = $4 \
                     WHERE loan_id = $1 AND position < $4"
                ),
                &[
                    Arg::Text(loan_id.to_string()),
                    Arg::I64(due_at.as_micros()),
                    Arg::I64(i64::from(renewals)),
                    p,
                ],
            )
            .await?;
        }
        LendingEvent::LoanOverdue { loan_id, .. } => {
            tx.exec(
                "projecting LoanOverdue",
                &format!(
                    "UPDATE rm_loans{s} SET overdue = TRUE, position = $2 \
                     WHERE loan_id = $1 AND position < $2"
                ),
                &[Arg::Text(loan_id.to_string()), p],
            )
            .await?;
        }
        LendingEvent::HoldPlaced {
            hold_id,
            member,
            at: placed_at,
        } => {
            // The hold's `at` is its request time, as for `LoanOpened`.
            tx.exec(
                "projecting HoldPlaced",
                &format!(
                    "INSERT INTO rm_holds{s} (hold_id, book_id, user_id, status, requested_at, \
                     placed_at, queue_seq, position) \
                     VALUES ($1, $2, $3, 'waiting', $4, $4, $5, $5) \
                     ON CONFLICT (hold_id) DO UPDATE SET status = 'waiting', \
                     placed_at = excluded.placed_at, queue_seq = excluded.queue_seq, \
                     position = excluded.position \
                     WHERE rm_holds{s}.position < excluded.position"
                ),
                &[
                    Arg::Text(hold_id.to_string()),
                    Arg::Text(book_id),
                    Arg::Text(member.to_string()),
                    Arg::I64(placed_at.as_micros()),
                    p,
                ],
            )
            .await?;
        }
        LendingEvent::HoldReady {
            hold_id,
            copy_id,
            pickup_until,
            ..
        } => {
            tx.exec(
                "projecting HoldReady",
                &format!(
                    "UPDATE rm_holds{s} SET status = 'ready', copy_id = $2, pickup_until = $3, \
                     position = $4 WHERE hold_id = $1 AND position < $4"
                ),
                &[
                    Arg::Text(hold_id.to_string()),
                    Arg::Text(copy_id.to_string()),
                    Arg::I64(pickup_until.as_micros()),
                    p.clone(),
                ],
            )
            .await?;
            tx.exec(
                "projecting HoldReady",
                &format!(
                    "UPDATE rm_copies{s} SET status = 'on_hold_shelf', hold_id = $3, \
                     loan_id = NULL, position = $4 \
                     WHERE copy_id = $1 AND book_id = $2 AND position < $4"
                ),
                &[
                    Arg::Text(copy_id.to_string()),
                    Arg::Text(book_id),
                    Arg::Text(hold_id.to_string()),
                    p,
                ],
            )
            .await?;
        }
        LendingEvent::HoldCancelled {
            hold_id,
            at: ended_at,
            ..
        } => end_hold(tx, at, &book_id, hold_id.to_string(), "cancelled", ended_at).await?,
        LendingEvent::HoldExpired {
            hold_id,
            at: ended_at,
            ..
        } => end_hold(tx, at, &book_id, hold_id.to_string(), "expired", ended_at).await?,
        LendingEvent::CopyLost { copy_id, .. } => {
            copy_gone(tx, at, book_id, copy_id.to_string(), "lost").await?;
        }
        LendingEvent::CopyWithdrawn { copy_id, .. } => {
            copy_gone(tx, at, book_id, copy_id.to_string(), "withdrawn").await?;
        }
    }
    Ok(())
}

/// A hold cancelled or expired: the hold ends, and a copy kept on the shelf for it becomes
/// available (a following `HoldReady` of the same command passes it on to the next hold).
async fn end_hold(
    tx: &mut Tx,
    at: &Stamp<'_>,
    book_id: &str,
    hold_id: String,
    status: &'static str,
    ended_at: quire_domain::values::Timestamp,
) -> Result<(), ReadModelError> {
    let s = at.s;
    tx.exec(
        "projecting a hold's end",
        &format!(
            "UPDATE rm_holds{s} SET status = $2, ended_at = $3, position = $4 \
             WHERE hold_id = $1 AND position < $4"
        ),
        &[
            Arg::Text(hold_id.clone()),
            Arg::Text(status.to_string()),
            Arg::I64(ended_at.as_micros()),
            Arg::I64(at.position),
        ],
    )
    .await?;
    clear_shelf(tx, at, book_id, &hold_id, true).await
}

/// Takes the book's copy kept for `hold_id` off the hold shelf. With `release` the copy becomes
/// available (its hold ended); without, only the hold is forgotten (the copy was lent to the
/// hold's member, and `LoanOpened` already put it on loan).
async fn clear_shelf(
    tx: &mut Tx,
    at: &Stamp<'_>,
    book_id: &str,
    hold_id: &str,
    release: bool,
) -> Result<(), ReadModelError> {
    let s = at.s;
    let (set, only) = if release {
        ("status = 'available', ", " AND status = 'on_hold_shelf'")
    } else {
        ("", "")
    };
    tx.exec(
        "taking a copy off the hold shelf",
        &format!(
            "UPDATE rm_copies{s} SET {set}hold_id = NULL, position = $3 \
             WHERE book_id = $1 AND hold_id = $2{only} AND position < $3"
        ),
        &[
            Arg::Text(book_id.to_string()),
            Arg::Text(hold_id.to_string()),
            Arg::I64(at.position),
        ],
    )
    .await?;
    Ok(())
}

/// A copy lost or withdrawn: out of circulation, neither lent nor held.
async fn copy_gone(
    tx: &mut Tx,
    at: &Stamp<'_>,
    book_id: String,
    copy_id: String,
    status: &'static str,
) -> Result<(), ReadModelError> {
    let s = at.s;
    tx.exec(
        "projecting a copy's loss or withdrawal",
        &format!(
            "UPDATE rm_copies{s} SET status = $3, loan_id = NULL, hold_id = NULL, position = $4 \
             WHERE copy_id = $1 AND book_id = $2 AND position < $4"
        ),
        &[
            Arg::Text(copy_id),
            Arg::Text(book_id),
            Arg::Text(status.to_string()),
            Arg::I64(at.position),
        ],
    )
    .await?;
    Ok(())
}

/// A member's slot event (from their user stream).
async fn apply_member(tx: &mut Tx, at: &Stamp<'_>, event: UserEvent) -> Result<(), ReadModelError> {
    let (s, p) = (at.s, Arg::I64(at.position));
    match event {
        UserEvent::LoanSlotTaken { request } => {
            // Should the loan already be known from its lending stream, it keeps its status,
            // copy and due date, and only learns that the member's slot is held.
            tx.exec(
                "projecting LoanSlotTaken",
                &format!(
                    "INSERT INTO rm_loans{s} (loan_id, book_id, user_id, status, requested_at, \
                     due_at, implicit_copies, member_slot_held, position) \
                     VALUES ($1, $2, $3, 'pending', $4, $5, $6, TRUE, $7) \
                     ON CONFLICT (loan_id) DO UPDATE SET member_slot_held = TRUE, \
                     requested_at = excluded.requested_at, \
                     implicit_copies = excluded.implicit_copies, position = excluded.position \
                     WHERE rm_loans{s}.position < excluded.position"
                ),
                &[
                    Arg::Text(request.loan_id.to_string()),
                    Arg::Text(request.book_id.to_string()),
                    Arg::Text(request.member.to_string()),
                    Arg::I64(request.requested_at.as_micros()),
                    Arg::I64(request.due_at.as_micros()),
                    Arg::I64(i64::from(request.implicit_copies)),
                    p,
                ],
            )
            .await?;
        }
        UserEvent::LoanSlotReleased { loan_id } => {
            // A slot given back before any loan opened means the borrow was refused.
            tx.exec(
                "projecting LoanSlotReleased",
                &format!(
                    "UPDATE rm_loans{s} SET member_slot_held = FALSE, \
                     status = CASE WHEN status = 'pending' THEN 'refused' ELSE status END, \
                     position = $2 WHERE loan_id = $1 AND position < $2"
                ),
                &[Arg::Text(loan_id.to_string()), p],
            )
            .await?;
        }
        UserEvent::LoanFlaggedOverdue { loan_id } => {
            tx.exec(
                "projecting LoanFlaggedOverdue",
                &format!(
                    "UPDATE rm_loans{s} SET member_flagged_overdue = TRUE, position = $2 \
                     WHERE loan_id = $1 AND position < $2"
                ),
                &[Arg::Text(loan_id.to_string()), p],
            )
            .await?;
        }
        UserEvent::HoldSlotTaken { request } => {
            tx.exec(
                "projecting HoldSlotTaken",
                &format!(
                    "INSERT INTO rm_holds{s} (hold_id, book_id, user_id, status, requested_at, \
                     implicit_copies, member_slot_held, position) \
                     VALUES ($1, $2, $3, 'pending', $4, $5, TRUE, $6) \
                     ON CONFLICT (hold_id) DO UPDATE SET member_slot_held = TRUE, \
                     requested_at = excluded.requested_at, \
                     implicit_copies = excluded.implicit_copies, position = excluded.position \
                     WHERE rm_holds{s}.position < excluded.position"
                ),
                &[
                    Arg::Text(request.hold_id.to_string()),
                    Arg::Text(request.book_id.to_string()),
                    Arg::Text(request.member.to_string()),
                    Arg::I64(request.requested_at.as_micros()),
                    Arg::I64(i64::from(request.implicit_copies)),
                    p,
                ],
            )
            .await?;
        }
        UserEvent::HoldSlotReleased { hold_id } => {
            tx.exec(
                "projecting HoldSlotReleased",
                &format!(
                    "UPDATE rm_holds{s} SET member_slot_held = FALSE, \
                     status = CASE WHEN status = 'pending' THEN 'refused' ELSE status END, \
                     position = $2 WHERE hold_id = $1 AND position < $2"
                ),
                &[Arg::Text(hold_id.to_string()), p],
            )
            .await?;
        }
        // The users and interactions projections'.
        UserEvent::UserRegistered { .. }
        | UserEvent::PreferencesChanged { .. }
        | UserEvent::PasswordChanged { .. }
        | UserEvent::UserDeactivated
        | UserEvent::UserReactivated
        | UserEvent::SessionsRevoked
        | UserEvent::BookLiked { .. }
        | UserEvent::BookUnliked { .. }
        | UserEvent::BookViewed { .. }
        | UserEvent::BookRated { .. }
        | UserEvent::UserFollowed { .. }
        | UserEvent::UserUnfollowed { .. }
        | UserEvent::ActivityPrivacyChanged { .. } => {}
    }
    Ok(())
}

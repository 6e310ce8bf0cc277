//! Circulation: the copies of one book, their loans and the book's hold queue.
//!
//! One `Lending` aggregate per book (stream `lending-{book_id}`), apart from the book's own stream:
//! the catalogue entry and its reviews are public history, while who borrowed what is a patron's
//! private record, and a busy book's loans must not slow the replay of its reviews. Everything that
//! must hold between the copies of a book (one open loan per copy, a strict hold queue, the hold
//! shelf) is decided here, under the stream's expected version, so it holds across nodes without
//! a lock. What must hold per member (loan and hold limits, blocks) is the member's own aggregate
//! (`User`); the two are joined by the borrow process (see `ARCHITECTURE.md`, "Lending").
//!
//! Times arrive inside commands (the domain reads no clock); a command also carries the policy
//! values its decision needs, so a decision depends only on the stream and the command.

mod events;

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::{Aggregate, DomainError, ErrorKind};
use crate::auth::CommandContext;
use crate::ids::{BookId, CopyId, HoldId, LoanId, UserId};
use crate::values::{Barcode, Timestamp};

pub use events::{LendingEvent, LoanEnd};

/// Everything needed to open a loan, fixed when the member's slot is taken.
///
/// The member's `LoanSlotTaken` event stores it, so a borrow interrupted after that step can be
/// completed later with exactly the same `CheckOut` command (and so the same command id outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanRequest {
    pub loan_id: LoanId,
    pub book_id: BookId,
    pub member: UserId,
    pub requested_at: Timestamp,
    pub due_at: Timestamp,
    /// How many copies a book with no registered copies lends as (`lending.implicit_copies`).
    pub implicit_copies: u32,
}

/// Everything needed to place a hold, fixed when the member's hold slot is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRequest {
    pub hold_id: HoldId,
    pub book_id: BookId,
    pub member: UserId,
    pub requested_at: Timestamp,
    pub implicit_copies: u32,
}

/// The renewal rules of the lending policy, carried by `Renew`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalRules {
    /// How many times a loan may be renewed.
    pub max_renewals: u32,
    /// Days added to the due date by a renewal.
    pub period_days: u32,
    /// Refuse renewals while other members wait for the book.
    pub refuse_while_held: bool,
    /// A renewal is allowed only this many days before the due date, or any time when `None`.
    pub earliest_days_before_due: Option<u32>,
}

/// Commands a book's circulation accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LendingCommand {
    /// Registers a copy (staff). If members wait, the copy goes to the hold shelf for the first.
    AddCopy {
        copy_id: CopyId,
        barcode: Barcode,
        at: Timestamp,
        pickup_until: Timestamp,
    },
    /// Lends a copy: the one on the hold shelf for the member, else the first available one.
    CheckOut { request: LoanRequest },
    /// Takes a copy back. A waiting hold gets it on the hold shelf until `pickup_until`.
    Return {
        loan_id: LoanId,
        at: Timestamp,
        pickup_until: Timestamp,
    },
    /// Extends an open loan under the renewal rules.
    Renew {
        loan_id: LoanId,
        at: Timestamp,
        rules: RenewalRules,
    },
    /// Records that an open loan passed its due date (the scheduler).
    MarkOverdue { loan_id: LoanId, at: Timestamp },
    /// Joins the book's hold queue.
    PlaceHold { request: HoldRequest },
    /// Leaves the queue (the member or staff); a copy held for it passes on.
    CancelHold {
        hold_id: HoldId,
        at: Timestamp,
        pickup_until: Timestamp,
    },
    /// Ends a hold whose pickup deadline passed (the scheduler); its copy passes on.
    ExpireHold {
        hold_id: HoldId,
        at: Timestamp,
        pickup_until: Timestamp,
    },
    /// Declares a copy lost (staff); a loan of it ends as lost.
    MarkLost { copy_id: CopyId, at: Timestamp },
    /// Takes a copy out of circulation for good (staff); not while it is lent or held.
    WithdrawCopy { copy_id: CopyId, at: Timestamp },
}

/// Why a lending command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LendingError {
    /// Every copy is lent, held for someone, lost or withdrawn.
    #[error("no copy of this book is available")]
    CopyUnavailable,
    /// The member already has this book on loan.
    #[error("the member already has this book on loan")]
    AlreadyBorrowed,
    /// The loan is not open (never existed here, or ended).
    #[error("no open loan {loan_id} of this book")]
    NotOnLoan { loan_id: LoanId },
    /// A renewal rule refuses.
    #[error("renewal not allowed: {reason}")]
    RenewalNotAllowed { reason: &'static str },
    /// The member already waits for this book.
    #[error("the member already has a hold on this book")]
    HoldExists,
    /// A copy is available: borrow it instead.
    #[error("a copy is available now; borrow it instead of placing a hold")]
    HoldNotNeeded,
    /// No active hold with that id on this book.
    #[error("no active hold {hold_id} on this book")]
    HoldNotFound { hold_id: HoldId },
    /// No copy with that id in this book.
    #[error("no copy {copy_id} of this book")]
    CopyNotFound { copy_id: CopyId },
    /// Another copy of this book has the barcode.
    #[error("barcode {barcode} is already used by another copy of this book")]
    BarcodeTaken { barcode: String },
    /// The copy is lent or on the hold shelf.
    #[error("copy {copy_id} is {status}")]
    CopyInUse {
        copy_id: CopyId,
        status: &'static str,
    },
    /// The principal may not do this.
    #[error("not allowed to {action}")]
    Forbidden { action: &'static str },
}

impl DomainError for LendingError {
    fn code(&self) -> &'static str {
        match self {
            Self::CopyUnavailable => "copy_unavailable",
            Self::AlreadyBorrowed => "already_borrowed",
            Self::NotOnLoan { .. } => "not_on_loan",
            Self::RenewalNotAllowed { .. } => "renewal_not_allowed",
            Self::HoldExists => "hold_exists",
            Self::HoldNotNeeded => "hold_not_needed",
            Self::HoldNotFound { .. } => "hold_not_found",
            Self::CopyNotFound { .. } => "copy_not_found",
            Self::BarcodeTaken { .. } => "barcode_taken",
            Self::CopyInUse { .. } => "copy_in_use",
            Self::Forbidden { .. } => "forbidden",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::CopyUnavailable
            | Self::AlreadyBorrowed
            | Self::NotOnLoan { .. }
            | Self::RenewalNotAllowed { .. }
            | Self::HoldExists
            | Self::HoldNotNeeded
            | Self::BarcodeTaken { .. }
            | Self::CopyInUse { .. } => ErrorKind::Conflict,
            Self::HoldNotFound { .. } | Self::CopyNotFound { .. } => ErrorKind::NotFound,
            Self::Forbidden { .. } => ErrorKind::Forbidden,
        }
    }
}

/// Where a copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyStatus {
    Available,
    OnLoan(LoanId),
    OnHoldShelf(HoldId),
    Lost,
    Withdrawn,
}

impl CopyStatus {
    /// The status as the API and read models spell it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::OnLoan(_) => "on_loan",
            Self::OnHoldShelf(_) => "on_hold_shelf",
            Self::Lost => "lost",
            Self::Withdrawn => "withdrawn",
        }
    }
}

/// One copy in the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub barcode: Option<Barcode>,
    pub status: CopyStatus,
}

/// An open loan in the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loan {
    pub copy_id: CopyId,
    pub member: UserId,
    pub checked_out_at: Timestamp,
    pub due_at: Timestamp,
    pub renewals: u32,
    pub overdue: bool,
}

/// A hold in the queue: waiting, or ready with a copy on the shelf until a deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub hold_id: HoldId,
    pub member: UserId,
    pub placed_at: Timestamp,
    pub ready: Option<(CopyId, Timestamp)>,
}

/// The circulation state of one book.
#[derive(Debug, Clone, Default)]
pub struct Lending {
    /// Copies in registration order (the order checkouts take them in).
    copies: BTreeMap<u32, (CopyId, Copy)>,
    next_copy_slot: u32,
    loans: BTreeMap<LoanId, Loan>,
    ended_loans: HashSet<LoanId>,
    /// Active holds in queue order (the order their `HoldPlaced` events were recorded).
    queue: Vec<Hold>,
    ended_holds: HashSet<HoldId>,
}

/// The namespace of the ids of implicit copies (UUIDv5 of the book id); fixed forever.
const IMPLICIT_COPY_NAMESPACE: Uuid = Uuid::from_u128(0x3b9e_51c4_7a02_4f6d_9c1e_8d24_a6f0_7b13);

/// The id of a book's `n`th implicit copy (a book without registered copies lends as these).
pub fn implicit_copy_id(book_id: BookId, n: u32) -> CopyId {
    let mut name = book_id.as_uuid().as_bytes().to_vec();
    name.extend_from_slice(&n.to_be_bytes());
    CopyId::from_uuid(Uuid::new_v5(&IMPLICIT_COPY_NAMESPACE, &name))
}

impl BookId {
    /// The id of the book's lending stream, "lending-{id}".
    pub fn lending_stream_id(&self) -> String {
        format!("{}-{self}", Lending::CATEGORY)
    }
}

impl Lending {
    /// The copies, in registration order.
    pub fn copies(&self) -> impl Iterator<Item = (CopyId, &Copy)> {
        self.copies.values().map(|(id, copy)| (*id, copy))
    }

    /// The open loans.
    pub fn loans(&self) -> &BTreeMap<LoanId, Loan> {
        &self.loans
    }

    /// The active holds in queue order.
    pub fn queue(&self) -> &[Hold] {
        &self.queue
    }

    fn copy(&self, copy_id: CopyId) -> Option<&Copy> {
        self.copies
            .values()
            .find(|(id, _)| *id == copy_id)
            .map(|(_, copy)| copy)
    }

    fn copy_mut(&mut self, copy_id: CopyId) -> Option<&mut Copy> {
        self.copies
            .values_mut()
            .find(|(id, _)| *id == copy_id)
            .map(|(_, copy)| copy)
    }

    fn open_loan_of(&self, member: UserId) -> Option<LoanId> {
        self.loans
            .iter()
            .find(|(_, loan)| loan.member == member)
            .map(|(id, _)| *id)
    }

    fn hold_of(&self, member: UserId) -> Option<&Hold> {
        self.queue.iter().find(|hold| hold.member == member)
    }

    fn first_available(&self) -> Option<CopyId> {
        self.copies
            .values()
            .find(|(_, copy)| copy.status == CopyStatus::Available)
            .map(|(id, _)| *id)
    }

    /// Whether a request lends as implicit copies: only a book that never had a copy, and that
    /// nobody waits for (holds placed while it did not lend wait for a registered copy, in order).
    fn lends_implicitly(&self, implicit_copies: u32) -> bool {
        self.copies.is_empty() && self.queue.is_empty() && implicit_copies > 0
    }

    /// The implicit copies a request would register (see [`Self::lends_implicitly`]).
    fn implicit_copies(&self, book_id: BookId, count: u32) -> Vec<LendingEvent> {
        if !self.lends_implicitly(count) {
            return Vec::new();
        }
        (0..count)
            .map(|n| LendingEvent::CopyAdded {
                copy_id: implicit_copy_id(book_id, n),
                barcode: None,
            })
            .collect()
    }

    /// Where a copy that just came free goes: to the first waiting hold's shelf, or available.
    fn pass_on(
        &self,
        copy_id: CopyId,
        skipping: Option<HoldId>,
        pickup_until: Timestamp,
    ) -> Option<LendingEvent> {
        self.queue
            .iter()
            .find(|hold| hold.ready.is_none() && Some(hold.hold_id) != skipping)
            .map(|hold| LendingEvent::HoldReady {
                hold_id: hold.hold_id,
                member: hold.member,
                copy_id,
                pickup_until,
            })
    }

    fn decide_check_out(
        &self,
        request: &LoanRequest,
        ctx: &CommandContext,
    ) -> Result<Vec<LendingEvent>, LendingError> {
        if self.loans.contains_key(&request.loan_id) || self.ended_loans.contains(&request.loan_id)
        {
            return Ok(Vec::new());
        }
        if !ctx.principal.is_user_or_privileged(request.member) {
            return Err(LendingError::Forbidden {
                action: "borrow for another member",
            });
        }
        if self.open_loan_of(request.member).is_some() {
            return Err(LendingError::AlreadyBorrowed);
        }
        let mut events = self.implicit_copies(request.book_id, request.implicit_copies);
        let shelf = self
            .hold_of(request.member)
            .and_then(|hold| hold.ready.map(|(copy, _)| (hold.hold_id, copy)));
        let (copy_id, fulfils) = match shelf {
            Some((hold_id, copy)) => (copy, Some(hold_id)),
            None => {
                // Implicit copies just added are available; otherwise take the first free copy.
                // While members wait, no copy is free: each freed copy goes to the hold shelf.
                let fresh = events.iter().find_map(|event| match event {
                    LendingEvent::CopyAdded { copy_id, .. } => Some(*copy_id),
                    _ => None,
                });
                let copy = fresh.or_else(|| self.first_available());
                (copy.ok_or(LendingError::CopyUnavailable)?, None)
            }
        };
        events.push(LendingEvent::LoanOpened {
            loan_id: request.loan_id,
            copy_id,
            member: request.member,
            at: request.requested_at,
            due_at: request.due_at,
        });
        if let Some(hold_id) = fulfils {
            events.push(LendingEvent::HoldFulfilled {
                hold_id,
                member: request.member,
                loan_id: request.loan_id,
            });
        }
        Ok(events)
    }

    fn decide_return(
        &self,
        loan_id: LoanId,
        at: Timestamp,
        pickup_until: Timestamp,
        ctx: &CommandContext,
    ) -> Result<Vec<LendingEvent>, LendingError> {
        if self.ended_loans.contains(&loan_id) {
            return Ok(Vec::new());
        }
        let loan = self
            .loans
            .get(&loan_id)
            .ok_or(LendingError::NotOnLoan { loan_id })?;
        if !ctx.principal.is_user_or_privileged(loan.member) {
            return Err(LendingError::Forbidden {
                action: "return another member's loan",
            });
        }
        let mut events = vec![LendingEvent::LoanEnded {
            loan_id,
            copy_id: loan.copy_id,
            member: loan.member,
            at,
            end: LoanEnd::Returned,
        }];
        events.extend(self.pass_on(loan.copy_id, None, pickup_until));
        Ok(events)
    }

    fn decide_renew(
        &self,
        loan_id: LoanId,
        at: Timestamp,
        rules: &RenewalRules,
        ctx: &CommandContext,
    ) -> Result<Vec<LendingEvent>, LendingError> {
        let loan = self
            .loans
            .get(&loan_id)
            .ok_or(LendingError::NotOnLoan { loan_id })?;
        if !ctx.principal.is_user_or_privileged(loan.member) {
            return Err(LendingError::Forbidden {
                action: "renew another member's loan",
            });
        }
        let refuse = |reason| Err(LendingError::RenewalNotAllowed { reason });
        if loan.overdue || loan.due_at <= at {
            return refuse("the loan is overdue");
        }
        if loan.renewals >= rules.max_renewals {
            return refuse("no renewals left");
        }
        // Only members still waiting for a copy count: a hold whose copy is on the shelf
        // already is served, and this loan's copy would not go to it.
        if rules.refuse_while_held && self.queue.iter().any(|hold| hold.ready.is_none()) {
            return refuse("other members are waiting for this book");
        }
        if let Some(days) = rules.earliest_days_before_due {
            let earliest = Timestamp::from_micros(
                loan.due_at
                    .as_micros()
                    .saturating_sub(i64::from(days) * Timestamp::MICROS_PER_DAY),
            );
            if at < earliest {
                return refuse("too early to renew");
            }
        }
        Ok(vec![LendingEvent::LoanRenewed {
            loan_id,
            member: loan.member,
            at,
            due_at: loan.due_at.plus_days(rules.period_days),
            renewals: loan.renewals + 1,
        }])
    }

    fn decide_place_hold(
        &self,
        request: &HoldRequest,
        ctx: &CommandContext,
    ) -> Result<Vec<LendingEvent>, LendingError> {
        if self
            .queue
            .iter()
            .any(|hold| hold.hold_id == request.hold_id)
            || self.ended_holds.contains(&request.hold_id)
        {
            return Ok(Vec::new());
        }
        if !ctx.principal.is_user_or_privileged(request.member) {
            return Err(LendingError::Forbidden {
                action: "place holds for another member",
            });
        }
        if self.open_loan_of(request.member).is_some() {
            return Err(LendingError::AlreadyBorrowed);
        }
        if self.hold_of(request.member).is_some() {
            return Err(LendingError::HoldExists);
        }
        if self.lends_implicitly(request.implicit_copies) || self.first_available().is_some() {
            return Err(LendingError::HoldNotNeeded);
        }
        Ok(vec![LendingEvent::HoldPlaced {
            hold_id: request.hold_id,
            member: request.member,
            at: request.requested_at,
        }])
    }

    /// Ends an active hold (cancelled or expired) and passes its shelf copy on.
    fn end_hold(
        &self,
        hold: &Hold,
        at: Timestamp,
        pickup_until: Timestamp,
        expired: bool,
    ) -> Vec<LendingEvent> {
        let mut events = vec![if expired {
            LendingEvent::HoldExpired {
                hold_id: hold.hold_id,
                member: hold.member,
                at,
            }
        } else {
            LendingEvent::HoldCancelled {
                hold_id: hold.hold_id,
                member: hold.member,
                at,
            }
        }];
        if let Some((copy_id, _)) = hold.ready {
            events.extend(self.pass_on(copy_id, Some(hold.hold_id), pickup_until));
        }
        events
    }

    fn active_hold(&self, hold_id: HoldId) -> Option<&Hold> {
        self.queue.iter().find(|hold| hold.hold_id == hold_id)
    }
}

impl Aggregate for Lending {
    type Command = LendingCommand;
    type Event = LendingEvent;
    type Error = LendingError;

    const CATEGORY: &'static str = "lending";

    fn decide(
        &self,
        command: &LendingCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<LendingEvent>, LendingError> {
        let staff_only = |action| {
            if ctx.principal.is_privileged() {
                Ok(())
            } else {
                Err(LendingError::Forbidden { action })
            }
        };
        match command {
            LendingCommand::AddCopy {
                copy_id,
                barcode,
                at: _,
                pickup_until,
            } => {
                staff_only("register copies")?;
                if let Some(copy) = self.copy(*copy_id) {
                    return if copy.barcode.as_ref() == Some(barcode) {
                        Ok(Vec::new())
                    } else {
                        Err(LendingError::BarcodeTaken {
                            barcode: barcode.to_string(),
                        })
                    };
                }
                if self
                    .copies()
                    .any(|(_, copy)| copy.barcode.as_ref() == Some(barcode))
                {
                    return Err(LendingError::BarcodeTaken {
                        barcode: barcode.to_string(),
                    });
                }
                let mut events = vec![LendingEvent::CopyAdded {
                    copy_id: *copy_id,
                    barcode: Some(barcode.clone()),
                }];
                events.extend(self.pass_on(*copy_id, None, *pickup_until));
                Ok(events)
            }
            LendingCommand::CheckOut { request } => self.decide_check_out(request, ctx),
            LendingCommand::Return {
                loan_id,
                at,
                pickup_until,
            } => self.decide_return(*loan_id, *at, *pickup_until, ctx),
            LendingCommand::Renew { loan_id, at, rules } => {
                self.decide_renew(*loan_id, *at, rules, ctx)
            }
            LendingCommand::MarkOverdue { loan_id, at } => {
                staff_only("mark loans overdue")?;
                Ok(match self.loans.get(loan_id) {
                    Some(loan) if !loan.overdue && loan.due_at <= *at => {
                        vec![LendingEvent::LoanOverdue {
                            loan_id: *loan_id,
                            member: loan.member,
                            due_at: loan.due_at,
                        }]
                    }
                    _ => Vec::new(),
                })
            }
            LendingCommand::PlaceHold { request } => self.decide_place_hold(request, ctx),
            LendingCommand::CancelHold {
                hold_id,
                at,
                pickup_until,
            } => {
                if self.ended_holds.contains(hold_id) {
                    return Ok(Vec::new());
                }
                let hold = self
                    .active_hold(*hold_id)
                    .ok_or(LendingError::HoldNotFound { hold_id: *hold_id })?;
                if !ctx.principal.is_user_or_privileged(hold.member) {
                    return Err(LendingError::Forbidden {
                        action: "cancel another member's hold",
                    });
                }
                Ok(self.end_hold(hold, *at, *pickup_until, false))
            }
            LendingCommand::ExpireHold {
                hold_id,
                at,
                pickup_until,
            } => {
                staff_only("expire holds")?;
                Ok(match self.active_hold(*hold_id) {
                    Some(hold) if hold.ready.is_some_and(|(_, until)| until <= *at) => {
                        self.end_hold(hold, *at, *pickup_until, true)
                    }
                    _ => Vec::new(),
                })
            }
            LendingCommand::MarkLost { copy_id, at } => {
                staff_only("mark copies lost")?;
                let copy = self
                    .copy(*copy_id)
                    .ok_or(LendingError::CopyNotFound { copy_id: *copy_id })?;
                match copy.status {
                    CopyStatus::Lost | CopyStatus::Withdrawn => Ok(Vec::new()),
                    CopyStatus::OnHoldShelf(_) => Err(LendingError::CopyInUse {
                        copy_id: *copy_id,
                        status: "on the hold shelf; cancel its hold first",
                    }),
                    CopyStatus::Available => Ok(vec![LendingEvent::CopyLost {
                        copy_id: *copy_id,
                        at: *at,
                    }]),
                    CopyStatus::OnLoan(loan_id) => {
                        let loan = &self.loans[&loan_id];
                        Ok(vec![
                            LendingEvent::LoanEnded {
                                loan_id,
                                copy_id: *copy_id,
                                member: loan.member,
                                at: *at,
                                end: LoanEnd::Lost,
                            },
                            LendingEvent::CopyLost {
                                copy_id: *copy_id,
                                at: *at,
                            },
                        ])
                    }
                }
            }
            LendingCommand::WithdrawCopy { copy_id, at } => {
                staff_only("withdraw copies")?;
                let copy = self
                    .copy(*copy_id)
                    .ok_or(LendingError::CopyNotFound { copy_id: *copy_id })?;
                match copy.status {
                    CopyStatus::Withdrawn => Ok(Vec::new()),
                    CopyStatus::OnLoan(_) => Err(LendingError::CopyInUse {
                        copy_id: *copy_id,
                        status: "on loan",
                    }),
                    CopyStatus::OnHoldShelf(_) => Err(LendingError::CopyInUse {
                        copy_id: *copy_id,
                        status: "on the hold shelf",
                    }),
                    CopyStatus::Available | CopyStatus::Lost => {
                        Ok(vec![LendingEvent::CopyWithdrawn {
                            copy_id: *copy_id,
                            at: *at,
                        }])
                    }
                }
            }
        }
    }

    fn apply(&mut self, event: &LendingEvent) {
        match event {
            LendingEvent::CopyAdded { copy_id, barcode } => {
                self.copies.insert(
                    self.next_copy_slot,
                    (
                        *copy_id,
                        Copy {
                            barcode: barcode.clone(),
                            status: CopyStatus::Available,
                        },
                    ),
                );
                self.next_copy_slot += 1;
            }
            LendingEvent::LoanOpened {
                loan_id,
                copy_id,
                member,
                at,
                due_at,
            } => {
                if let Some(copy) = self.copy_mut(*copy_id) {
                    copy.status = CopyStatus::OnLoan(*loan_id);
                }
                self.loans.insert(
                    *loan_id,
                    Loan {
                        copy_id: *copy_id,
                        member: *member,
                        checked_out_at: *at,
                        due_at: *due_at,
                        renewals: 0,
                        overdue: false,
                    },
                );
            }
            LendingEvent::HoldFulfilled { hold_id, .. } => {
                self.queue.retain(|hold| hold.hold_id != *hold_id);
                self.ended_holds.insert(*hold_id);
            }
            LendingEvent::LoanEnded {
                loan_id,
                copy_id,
                end,
                ..
            } => {
                self.loans.remove(loan_id);
                self.ended_loans.insert(*loan_id);
                if let Some(copy) = self.copy_mut(*copy_id) {
                    copy.status = match end {
                        LoanEnd::Returned => CopyStatus::Available,
                        LoanEnd::Lost => CopyStatus::Lost,
                    };
                }
            }
            LendingEvent::LoanRenewed {
                loan_id,
                due_at,
                renewals,
                ..
            } => {
                if let Some(loan) = self.loans.get_mut(loan_id) {
                    loan.due_at = *due_at;
                    loan.renewals = *renewals;
                }
            }
            LendingEvent::LoanOverdue { loan_id, .. } => {
                if let Some(loan) = self.loans.get_mut(loan_id) {
                    loan.overdue = true;
                }
            }
            LendingEvent::HoldPlaced {
                hold_id,
                member,
                at,
            } => self.queue.push(Hold {
                hold_id: *hold_id,
                member: *member,
                placed_at: *at,
                ready: None,
            }),
            LendingEvent::HoldReady {
                hold_id,
                copy_id,
                pickup_until,
                ..
            } => {
                if let Some(hold) = self.queue.iter_mut().find(|h| h.hold_id == *hold_id) {
                    hold.ready = Some((*copy_id, *pickup_until));
                }
                if let Some(copy) = self.copy_mut(*copy_id) {
                    copy.status = CopyStatus::OnHoldShelf(*hold_id);
                }
            }
            LendingEvent::HoldCancelled { hold_id, .. }
            | LendingEvent::HoldExpired { hold_id, .. } => {
                if let Some(position) = self.queue.iter().position(|h| h.hold_id == *hold_id) {
                    let hold = self.queue.remove(position);
                    if let Some((copy_id, _)) = hold.ready
                        && let Some(copy) = self.copy_mut(copy_id)
                        && copy.status == CopyStatus::OnHoldShelf(*hold_id)
                    {
                        // A following `HoldReady` for the copy moves it on to the next hold.
                        copy.status = CopyStatus::Available;
                    }
                }
                self.ended_holds.insert(*hold_id);
            }
            LendingEvent::CopyLost { copy_id, .. } => {
                if let Some(copy) = self.copy_mut(*copy_id) {
                    copy.status = CopyStatus::Lost;
                }
            }
            LendingEvent::CopyWithdrawn { copy_id, .. } => {
                if let Some(copy) = self.copy_mut(*copy_id) {
                    copy.status = CopyStatus::Withdrawn;
                }
            }
        }
    }
}

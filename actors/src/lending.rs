//! The lending processes: the steps that join a member's slots (`User`) and a book's circulation
//! (`Lending`), which are separate entities with separate expected versions.
//!
//! A borrow takes the member's loan slot first (the member's limit and blocks hold under the
//! member's stream version), then asks the book for a copy (one open loan per copy holds under the
//! book's), and gives the slot back if the book refuses. A return ends the loan at the book, then
//! gives the slot back. Each step after the first has a command id derived from the loan or hold
//! id, and the slot event stores the whole request, so a process cut short by a crash is finished
//! by running the same steps again (the scheduler does, from the lending read model): the store
//! answers a step that already ran with its recorded outcome and appends nothing. See
//! `ARCHITECTURE.md`, "Lending", for the failure cases.

use quire_domain::DomainEvent;
use quire_domain::Principal;
use quire_domain::ids::{BookId, HoldId, LoanId, UserId};
use quire_domain::lending::{HoldRequest, LendingCommand, LoanRequest};
use quire_domain::user::{UserCommand, UserEvent};
use quire_domain::values::Timestamp;
use quire_store::{CommandRecord, CommandResult, EventStore};
use uuid::Uuid;

use crate::bus::{Command, CommandBus};
use crate::envelope::{CommandError, CommandOutcome};
use crate::process::Steps;

/// The member-side limits of the lending policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberLimits {
    pub max_loans: u32,
    pub max_holds: u32,
    /// Borrowing and holds are refused while this many loans are overdue (0: never).
    pub block_after_overdue: u32,
}

/// Where a process was started: the request's command id (its first step's id) and trace.
#[derive(Debug, Clone)]
pub struct Origin {
    pub principal: Principal,
    pub command_id: Uuid,
    pub traceparent: Option<String>,
    /// Whether the command id comes from an `Idempotency-Key`: a retry then gets the first
    /// attempt's recorded outcome, although the retry was stamped with another time.
    pub keyed: bool,
}

/// The id of an internal step of the process of `entity` (a loan or hold id).
pub fn step_id(entity: Uuid, step: &str) -> Uuid {
    Uuid::new_v5(&entity, step.as_bytes())
}

/// Runs the processes over a command bus.
pub struct LendingProcess<'a> {
    steps: Steps<'a>,
}

impl<'a> LendingProcess<'a> {
    /// Steps with no request behind them (the scheduler's).
    pub fn new(bus: &'a dyn CommandBus) -> Self {
        Self {
            steps: Steps::new(bus, None),
        }
    }

    /// Steps correlated with the request in `origin`; `store` answers keyed retries.
    pub fn for_request(
        bus: &'a dyn CommandBus,
        store: &'a dyn EventStore,
        origin: &Origin,
    ) -> Self {
        Self {
            steps: Steps::for_request(bus, Some(store), origin),
        }
    }

    /// The request a recorded slot step stored (`LoanSlotTaken`/`HoldSlotTaken`), read back
    /// from the member's stream, so a keyed retry completes the first attempt's request.
    async fn recorded_slot(
        &self,
        record: &CommandRecord,
    ) -> Result<Option<UserEvent>, CommandError> {
        let (
            Some(store),
            CommandResult::Accepted {
                stream_version,
                event_count,
                ..
            },
        ) = (self.steps.store(), &record.result)
        else {
            return Ok(None);
        };
        let first = stream_version.saturating_sub(u64::from(*event_count));
        let events = store
            .read_stream(&record.stream_id, first, *event_count as usize)
            .await?;
        for stored in events {
            let event =
                UserEvent::from_stored(&stored.event_type, stored.schema_version, &stored.payload)
                    .map_err(|e| CommandError::Corrupt {
                        stream_id: record.stream_id.clone(),
                        reason: e.to_string(),
                    })?;
            if matches!(
                event,
                UserEvent::LoanSlotTaken { .. } | UserEvent::HoldSlotTaken { .. }
            ) {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    /// Borrows: takes the member's slot (the request's own command), then completes the borrow.
    #[tracing::instrument(name = "lending.borrow", skip_all, fields(loan_id = %request.loan_id, book_id = %request.book_id))]
    pub async fn borrow(
        &self,
        origin: &Origin,
        request: &LoanRequest,
        limits: MemberLimits,
    ) -> Result<(LoanRequest, CommandOutcome), CommandError> {
        let mut request = request.clone();
        let slot = self
            .steps
            .first_step(
                origin,
                Command::User {
                    user_id: request.member,
                    command: UserCommand::TakeLoanSlot {
                        request: request.clone(),
                        max_loans: limits.max_loans,
                        block_after_overdue: limits.block_after_overdue,
                    },
                },
            )
            .await?;
        // A replayed slot step was taken by an earlier or concurrent attempt with the same key,
        // stamped with another time: complete that attempt's request, not this one's, or the
        // checkout's id would be recorded with another request and refuse this attempt.
        if slot.replayed
            && let Some(record) = self.steps.recorded(origin).await?
            && let Some(UserEvent::LoanSlotTaken { request: first }) =
                self.recorded_slot(&record).await?
        {
            request = first;
        }
        let outcome = self.complete_borrow(&request).await?;
        Ok((request, outcome))
    }

    /// The rest of a borrow whose slot is taken: the checkout, and the slot back if refused.
    /// Idempotent: the scheduler runs it for borrows a crash interrupted.
    pub async fn complete_borrow(
        &self,
        request: &LoanRequest,
    ) -> Result<CommandOutcome, CommandError> {
        let checkout = self
            .steps
            .step(
                request.loan_id.as_uuid(),
                "check-out",
                Command::Lending {
                    book_id: request.book_id,
                    command: LendingCommand::CheckOut {
                        request: request.clone(),
                    },
                },
            )
            .await;
        released_if_refused(
            checkout,
            self.release_loan_slot(request.member, request.loan_id),
        )
        .await
    }

    /// Gives a member's loan slot back (after a refused checkout or an ended loan).
    pub async fn release_loan_slot(
        &self,
        member: UserId,
        loan_id: LoanId,
    ) -> Result<CommandOutcome, CommandError> {
        self.steps
            .step(
                loan_id.as_uuid(),
                "release-loan-slot",
                Command::User {
                    user_id: member,
                    command: UserCommand::ReleaseLoanSlot { loan_id },
                },
            )
            .await
    }

    /// Returns a loan (the request's own command), then gives the member's slot back. Answers
    /// the later of the two outcomes, whose position covers both.
    #[tracing::instrument(name = "lending.return", skip_all, fields(%loan_id, %book_id))]
    pub async fn return_loan(
        &self,
        origin: &Origin,
        book_id: BookId,
        loan_id: LoanId,
        member: UserId,
        at: Timestamp,
        pickup_until: Timestamp,
    ) -> Result<CommandOutcome, CommandError> {
        let returned = self
            .steps
            .first_step(
                origin,
                Command::Lending {
                    book_id,
                    command: LendingCommand::Return {
                        loan_id,
                        at,
                        pickup_until,
                    },
                },
            )
            .await?;
        let released = self.release_loan_slot(member, loan_id).await?;
        Ok(later(returned, released))
    }

    /// Places a hold: takes the member's hold slot (the request's own command), then joins the
    /// book's queue, giving the slot back if the book refuses.
    #[tracing::instrument(name = "lending.place_hold", skip_all, fields(hold_id = %request.hold_id, book_id = %request.book_id))]
    pub async fn place_hold(
        &self,
        origin: &Origin,
        request: &HoldRequest,
        limits: MemberLimits,
    ) -> Result<(HoldRequest, CommandOutcome), CommandError> {
        let mut request = request.clone();
        let slot = self
            .steps
            .first_step(
                origin,
                Command::User {
                    user_id: request.member,
                    command: UserCommand::TakeHoldSlot {
                        request: request.clone(),
                        max_holds: limits.max_holds,
                        block_after_overdue: limits.block_after_overdue,
                    },
                },
            )
            .await?;
        // As for a borrow: a replayed slot step completes the recorded attempt's request.
        if slot.replayed
            && let Some(record) = self.steps.recorded(origin).await?
            && let Some(UserEvent::HoldSlotTaken { request: first }) =
                self.recorded_slot(&record).await?
        {
            request = first;
        }
        let outcome = self.complete_hold(&request).await?;
        Ok((request, outcome))
    }

    /// A single-step request (renew, copies): run keyed like every first step.
    pub async fn single(
        &self,
        origin: &Origin,
        command: Command,
    ) -> Result<CommandOutcome, CommandError> {
        self.steps.first_step(origin, command).await
    }

    /// The rest of a hold whose slot is taken; idempotent like [`Self::complete_borrow`].
    pub async fn complete_hold(
        &self,
        request: &HoldRequest,
    ) -> Result<CommandOutcome, CommandError> {
        let placed = self
            .steps
            .step(
                request.hold_id.as_uuid(),
                "place-hold",
                Command::Lending {
                    book_id: request.book_id,
                    command: LendingCommand::PlaceHold {
                        request: request.clone(),
                    },
                },
            )
            .await;
        released_if_refused(
            placed,
            self.release_hold_slot(request.member, request.hold_id),
        )
        .await
    }

    /// Gives a member's hold slot back (the hold was refused, fulfilled, cancelled or expired).
    pub async fn release_hold_slot(
        &self,
        member: UserId,
        hold_id: HoldId,
    ) -> Result<CommandOutcome, CommandError> {
        self.steps
            .step(
                hold_id.as_uuid(),
                "release-hold-slot",
                Command::User {
                    user_id: member,
                    command: UserCommand::ReleaseHoldSlot { hold_id },
                },
            )
            .await
    }

    /// Cancels a hold (the request's own command), then gives the member's slot back.
    pub async fn cancel_hold(
        &self,
        origin: &Origin,
        book_id: BookId,
        hold_id: HoldId,
        member: UserId,
        at: Timestamp,
        pickup_until: Timestamp,
    ) -> Result<CommandOutcome, CommandError> {
        let cancelled = self
            .steps
            .first_step(
                origin,
                Command::Lending {
                    book_id,
                    command: LendingCommand::CancelHold {
                        hold_id,
                        at,
                        pickup_until,
                    },
                },
            )
            .await?;
        let released = self.release_hold_slot(member, hold_id).await?;
        Ok(later(cancelled, released))
    }

    /// Ends a hold whose pickup deadline passed and gives the member's slot back (the scheduler).
    pub async fn expire_hold(
        &self,
        book_id: BookId,
        hold_id: HoldId,
        member: UserId,
        at: Timestamp,
        pickup_until: Timestamp,
    ) -> Result<CommandOutcome, CommandError> {
        let expired = self
            .steps
            .step(
                hold_id.as_uuid(),
                "expire-hold",
                Command::Lending {
                    book_id,
                    command: LendingCommand::ExpireHold {
                        hold_id,
                        at,
                        pickup_until,
                    },
                },
            )
            .await?;
        if expired.event_count == 0 {
            return Ok(expired);
        }
        let released = self.release_hold_slot(member, hold_id).await?;
        Ok(later(expired, released))
    }

    /// Records that a loan passed `due_at` (the one the sender saw; a renewal since makes the
    /// book record nothing) and flags it on the member, whose blocks count overdue loans.
    pub async fn mark_overdue(
        &self,
        book_id: BookId,
        loan_id: LoanId,
        member: UserId,
        due_at: Timestamp,
        at: Timestamp,
    ) -> Result<CommandOutcome, CommandError> {
        let marked = self
            .steps
            .step(
                loan_id.as_uuid(),
                &format!("overdue-{}", due_at.as_micros()),
                Command::Lending {
                    book_id,
                    command: LendingCommand::MarkOverdue { loan_id, at },
                },
            )
            .await?;
        if marked.event_count == 0 {
            return Ok(marked);
        }
        let flagged = self.flag_overdue(member, loan_id).await?;
        Ok(later(marked, flagged))
    }

    /// Flags a loan the book recorded as overdue on the member.
    pub async fn flag_overdue(
        &self,
        member: UserId,
        loan_id: LoanId,
    ) -> Result<CommandOutcome, CommandError> {
        self.steps
            .step(
                loan_id.as_uuid(),
                "flag-overdue",
                Command::User {
                    user_id: member,
                    command: UserCommand::FlagLoanOverdue { loan_id },
                },
            )
            .await
    }
}

/// Passes a step's outcome on; a refusal first gives the member's slot back with `release`.
async fn released_if_refused(
    outcome: Result<CommandOutcome, CommandError>,
    release: impl Future<Output = Result<CommandOutcome, CommandError>>,
) -> Result<CommandOutcome, CommandError> {
    match outcome {
        Err(CommandError::Rejected(rejection)) => {
            release.await?;
            Err(CommandError::Rejected(rejection))
        }
        other => other,
    }
}

/// The outcome whose position is later (a reply's consistency token must cover both steps).
fn later(a: CommandOutcome, b: CommandOutcome) -> CommandOutcome {
    if b.last_position > a.last_position {
        b
    } else {
        a
    }
}

/// The lending policy (`[lending]` in the settings): the circulation rules every node applies
/// when it stamps a lending command. The values travel inside the commands, so a decision
/// depends only on the entity's stream and the command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LendingPolicy {
    /// Days a loan lasts.
    pub loan_days: u32,
    /// Open loans a member may have at once.
    pub max_loans: u32,
    /// Times a loan may be renewed.
    pub max_renewals: u32,
    /// Days a renewal adds to the due date.
    pub renewal_days: u32,
    /// Allow renewals while other members wait for the book (off: waiting members come first).
    pub renew_while_held: bool,
    /// Renewals only this many days before the due date ("no renewal before"); unset: any time.
    pub renew_days_before_due: Option<u32>,
    /// Holds a member may have at once.
    pub max_holds: u32,
    /// Days a copy waits on the hold shelf for its member.
    pub pickup_days: u32,
    /// Members with this many overdue loans may not borrow or place holds (0: never blocked).
    pub block_after_overdue: u32,
    /// A book with no registered copies lends as this many copies (0: such books do not lend).
    pub implicit_copies: u32,
    /// A borrow or hold whose steps were cut short (a crash) is completed by the scheduler
    /// once it is this old.
    pub resume_after_secs: u64,
}

impl Default for LendingPolicy {
    fn default() -> Self {
        Self {
            loan_days: 21,
            max_loans: 5,
            max_renewals: 2,
            renewal_days: 14,
            renew_while_held: false,
            renew_days_before_due: None,
            max_holds: 5,
            pickup_days: 7,
            block_after_overdue: 1,
            implicit_copies: 1,
            resume_after_secs: 30,
        }
    }
}

impl LendingPolicy {
    /// The member-side limits.
    pub fn limits(&self) -> MemberLimits {
        MemberLimits {
            max_loans: self.max_loans,
            max_holds: self.max_holds,
            block_after_overdue: self.block_after_overdue,
        }
    }

    /// The renewal rules.
    pub fn renewal_rules(&self) -> quire_domain::lending::RenewalRules {
        quire_domain::lending::RenewalRules {
            max_renewals: self.max_renewals,
            period_days: self.renewal_days,
            refuse_while_held: !self.renew_while_held,
            earliest_days_before_due: self.renew_days_before_due,
        }
    }

    /// The pickup deadline of a copy put on the hold shelf at `at`.
    pub fn pickup_until(&self, at: Timestamp) -> Timestamp {
        at.plus_days(self.pickup_days)
    }

    /// A loan request by `member` for `book_id` at `at`.
    pub fn loan_request(
        &self,
        loan_id: LoanId,
        book_id: BookId,
        member: UserId,
        at: Timestamp,
    ) -> LoanRequest {
        LoanRequest {
            loan_id,
            book_id,
            member,
            requested_at: at,
            due_at: at.plus_days(self.loan_days),
            implicit_copies: self.implicit_copies,
        }
    }

    /// A hold request by `member` for `book_id` at `at`.
    pub fn hold_request(
        &self,
        hold_id: HoldId,
        book_id: BookId,
        member: UserId,
        at: Timestamp,
    ) -> HoldRequest {
        HoldRequest {
            hold_id,
            book_id,
            member,
            requested_at: at,
            implicit_copies: self.implicit_copies,
        }
    }
}

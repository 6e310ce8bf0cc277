//! The deadline scheduler: turns "time passed" into commands (a loan went overdue, a hold's
//! pickup deadline passed) and finishes processes a crash cut short.
//!
//! One runs per deployment: it is the `scheduler` worker, leased like the summary worker, so a
//! cluster moves it on failover. It keeps no state of its own: every deadline lives in a read
//! model derived from the log (due dates and pickup deadlines in the `lending` projection), so it
//! survives restarts by reading them again, and a successor redoing a predecessor's tick records
//! nothing twice because every command it sends has an id derived from the entity and the
//! deadline. Time comes from an injectable [`Clock`](quire_actors::clock::Clock), so tests move
//! it instead of waiting. Each kind of deadline is a [`Deadlines`] source: lending, and the book
//! club (rounds closing at their voting deadline, the default club's monthly round).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use quire_actors::clock::DynClock;
use quire_actors::lending::{LendingPolicy, LendingProcess};
use quire_actors::store::{OrderFailure, OrderProcess};
use quire_actors::{Command, CommandBus, CommandEnvelope, CommandError, CommandOutcome};
use quire_domain::Principal;
use quire_domain::club::{ClubCommand, VotingMethod};
use quire_domain::ids::{ClubId, RoundId};
use quire_domain::lending::{HoldRequest, LoanRequest};
use quire_domain::values::Timestamp;
use quire_projections::ReadModels;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// How many due items one source handles per tick (the rest wait for the next tick).
const BATCH: u32 = 200;

/// A kind of deadline the scheduler serves.
#[async_trait]
pub(crate) trait Deadlines: Send + Sync + 'static {
    /// For logs.
    fn name(&self) -> &'static str;

    /// Sends the commands for everything due at `now`; returns how many items it handled.
    async fn run_due(&self, now: Timestamp) -> anyhow::Result<usize>;

    /// The earliest future deadline it knows, so the scheduler can sleep until then.
    async fn next_deadline(&self) -> anyhow::Result<Option<Timestamp>>;
}

/// Scheduler settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchedulerOptions {
    /// The longest sleep between ticks: also how soon a moved clock or a deadline made by
    /// another node is noticed.
    pub(crate) tick: Duration,
}

/// A running scheduler.
pub(crate) struct SchedulerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SchedulerHandle {
    /// Stops after the current tick.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the scheduler task failed");
        }
    }
}

/// Starts the scheduler over `sources`.
pub(crate) fn spawn(
    sources: Vec<Arc<dyn Deadlines>>,
    clock: DynClock,
    options: SchedulerOptions,
) -> SchedulerHandle {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        tracing::info!(
            tick_ms = options.tick.as_millis() as u64,
            "scheduler started"
        );
        loop {
            let now = clock.now();
            let mut next: Option<Timestamp> = None;
            for source in &sources {
                match source.run_due(now).await {
                    Ok(0) => {}
                    Ok(handled) => {
                        tracing::info!(source = source.name(), handled, "deadlines handled");
                    }
                    Err(error) => {
                        tracing::warn!(source = source.name(), error = %format!("{error:#}"), "a deadline tick failed; retrying next tick");
                    }
                }
                if let Ok(Some(deadline)) = source.next_deadline().await {
                    next = Some(next.map_or(deadline, |n| n.min(deadline)));
                }
            }
            let sleep = next
                .map(|deadline| {
                    let wait = deadline.as_micros().saturating_sub(clock.now().as_micros());
                    Duration::from_micros(u64::try_from(wait).unwrap_or(0))
                })
                .map_or(options.tick, |wait| wait.min(options.tick));
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = stopped.changed() => break,
            }
        }
        tracing::info!("scheduler stopped");
    });
    SchedulerHandle { stop, task }
}

/// Lending's deadlines: overdue loans, expired pickups, and borrows, holds and returns a crash
/// interrupted between their steps.
pub(crate) struct LendingDeadlines {
    pub(crate) read: ReadModels,
    pub(crate) bus: Arc<dyn CommandBus>,
    pub(crate) policy: LendingPolicy,
}

/// Whether a step's error means "nothing left to do" for the scheduler: a refusal (the process
/// already gave the slot back) or a command id recorded with other content (the step ran
/// before, stamped with another time).
fn settled(result: Result<CommandOutcome, CommandError>) -> anyhow::Result<()> {
    match result {
        Ok(_) | Err(CommandError::Rejected(_)) | Err(CommandError::KeyReused(_)) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Runs the step that acts on one deadline (`what`) in its own trace ([`deadline`]), and says
/// whether it is [`settled`].
async fn settle(
    what: &'static str,
    step: impl std::future::Future<Output = Result<CommandOutcome, CommandError>>,
) -> anyhow::Result<()> {
    settled(step.instrument(deadline(what)).await)
}

#[async_trait]
impl Deadlines for LendingDeadlines {
    fn name(&self) -> &'static str {
        "lending"
    }

    #[tracing::instrument(name = "scheduler.lending", skip_all, fields(now = now.as_micros()))]
    async fn run_due(&self, now: Timestamp) -> anyhow::Result<usize> {
        let process = LendingProcess::new(&*self.bus);
        let mut handled = 0;
        let resume_before = now.plus_seconds(-i64::try_from(self.policy.resume_after_secs)?);

        for loan in self.read.loans_due(now.as_micros(), BATCH).await? {
            handled += 1;
            settle(
                "loan_due",
                process.mark_overdue(
                    loan.book_id,
                    loan.loan_id,
                    loan.user_id,
                    Timestamp::from_micros(loan.due_at),
                    now,
                ),
            )
            .await?;
        }
        for loan in self.read.loans_to_flag_overdue(BATCH).await? {
            handled += 1;
            settle(
                "flag_overdue",
                process.flag_overdue(loan.user_id, loan.loan_id),
            )
            .await?;
        }
        for hold in self.read.holds_expired(now.as_micros(), BATCH).await? {
            handled += 1;
            settle(
                "hold_expired",
                process.expire_hold(
                    hold.book_id,
                    hold.hold_id,
                    hold.user_id,
                    now,
                    self.policy.pickup_until(now),
                ),
            )
            .await?;
        }
        for loan in self
            .read
            .stuck_borrows(resume_before.as_micros(), BATCH)
            .await?
        {
            handled += 1;
            tracing::info!(loan_id = %loan.loan_id, "completing an interrupted borrow");
            let request = LoanRequest {
                loan_id: loan.loan_id,
                book_id: loan.book_id,
                member: loan.user_id,
                requested_at: Timestamp::from_micros(loan.requested_at),
                due_at: Timestamp::from_micros(loan.due_at),
                implicit_copies: loan.implicit_copies,
            };
            settle("interrupted_borrow", process.complete_borrow(&request)).await?;
        }
        for hold in self
            .read
            .stuck_holds(resume_before.as_micros(), BATCH)
            .await?
        {
            handled += 1;
            tracing::info!(hold_id = %hold.hold_id, "completing an interrupted hold");
            let request = HoldRequest {
                hold_id: hold.hold_id,
                book_id: hold.book_id,
                member: hold.user_id,
                requested_at: Timestamp::from_micros(hold.requested_at),
                implicit_copies: hold.implicit_copies,
            };
            settle("interrupted_hold", process.complete_hold(&request)).await?;
        }
        for loan in self.read.unreleased_loan_slots(BATCH).await? {
            handled += 1;
            settle(
                "release_loan_slot",
                process.release_loan_slot(loan.user_id, loan.loan_id),
            )
            .await?;
        }
        for hold in self.read.unreleased_hold_slots(BATCH).await? {
            handled += 1;
            settle(
                "release_hold_slot",
                process.release_hold_slot(hold.user_id, hold.hold_id),
            )
            .await?;
        }
        Ok(handled)
    }

    async fn next_deadline(&self) -> anyhow::Result<Option<Timestamp>> {
        Ok(self
            .read
            .next_lending_deadline()
            .await?
            .map(Timestamp::from_micros))
    }
}

/// The bookstore's deadlines: orders a crash left between their steps. A pending order (its
/// request recorded, never placed nor refused) `resume_after_secs` old is completed with the
/// steps of its stored request (reserve, then place, or release and refuse: the same derived ids
/// as the interrupted process, so what ran is answered from the record); a cancelled order whose
/// copies were not all given back gets them released.
pub(crate) struct StoreDeadlines {
    pub(crate) read: ReadModels,
    pub(crate) bus: Arc<dyn CommandBus>,
    pub(crate) store: quire_store::DynEventStore,
    pub(crate) resume_after_secs: u64,
}

#[async_trait]
impl Deadlines for StoreDeadlines {
    fn name(&self) -> &'static str {
        "store"
    }

    #[tracing::instrument(name = "scheduler.store", skip_all, fields(now = now.as_micros()))]
    async fn run_due(&self, now: Timestamp) -> anyhow::Result<usize> {
        let process = OrderProcess::new(&*self.bus, &*self.store);
        let mut handled = 0;
        let resume_before = now.plus_seconds(-i64::try_from(self.resume_after_secs)?);
        for order in self
            .read
            .stuck_orders(resume_before.as_micros(), BATCH)
            .await?
        {
            handled += 1;
            tracing::info!(order_id = %order.order_id, "completing an interrupted order");
            // The stored request, as its first step recorded it (the read model's lines are
            // the same, but the stream is the record the steps' content must match).
            let request = match process.recorded_request(order.order_id).await? {
                Some(request) => request,
                None => continue,
            };
            match process
                .complete(&request)
                .instrument(deadline("interrupted_order"))
                .await
            {
                Ok(_) | Err(OrderFailure::Refused { .. }) => {}
                // One order that cannot be finished now must not hold up the others: it is
                // found again next tick.
                Err(OrderFailure::Command(error)) => {
                    if let Err(error) = settled(Err(error)) {
                        tracing::warn!(order_id = %order.order_id, error = %format!("{error:#}"), "an interrupted order could not be finished; retrying next tick");
                    }
                }
            }
        }
        for (order_id, book_id) in self.read.unreleased_cancelled_lines(BATCH).await? {
            handled += 1;
            settle("release_order_lines", process.release(order_id, book_id)).await?;
        }
        Ok(handled)
    }

    async fn next_deadline(&self) -> anyhow::Result<Option<Timestamp>> {
        // Interrupted orders are found by the regular tick.
        Ok(None)
    }
}

/// The default club's monthly round for the month of `now`: its id (`v5(club_id, "YYYY-MM")`),
/// when nominations close (the 21st, 00:00 UTC; a round opened on or after the 21st takes
/// nominations for one more day, but never past the vote's close) and when voting closes (the 1st
/// of the next month, 00:00 UTC).
pub(crate) fn monthly_round(
    club_id: ClubId,
    now: Timestamp,
) -> anyhow::Result<(RoundId, Timestamp, Timestamp)> {
    use time::{Date, Month, OffsetDateTime, Time};
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now.as_micros()) * 1000)?;
    let micros = |date: Date| {
        Timestamp::from_micros(
            i64::try_from(
                date.with_time(Time::MIDNIGHT)
                    .assume_utc()
                    .unix_timestamp_nanos()
                    / 1000,
            )
            .unwrap_or(i64::MAX),
        )
    };
    let (year, month) = (at.year(), at.month());
    let round_id = RoundId::from_uuid(uuid::Uuid::new_v5(
        &club_id.as_uuid(),
        format!("{year:04}-{:02}", u8::from(month)).as_bytes(),
    ));
    let next = if month == Month::December {
        Date::from_calendar_date(year + 1, Month::January, 1)?
    } else {
        Date::from_calendar_date(year, month.next(), 1)?
    };
    let voting_closes = micros(next);
    let the_21st = micros(Date::from_calendar_date(year, month, 21)?);
    let nominations_close = if now < the_21st {
        the_21st
    } else {
        now.plus_days(1).min(voting_closes)
    };
    Ok((round_id, nominations_close, voting_closes))
}

/// Opens the default club's round for the month of `now` (with a command id derived from the
/// round), unless the read model shows that round already. Returns the log position written, if
/// anything. A refusal because another round is open, or the command recorded before with
/// another time, means there is nothing to do.
pub(crate) async fn open_monthly_round(
    read: &ReadModels,
    bus: &dyn CommandBus,
    club_id: ClubId,
    now: Timestamp,
) -> anyhow::Result<Option<u64>> {
    let (round_id, nominations_close, voting_closes) = monthly_round(club_id, now)?;
    if read.round(round_id).await?.is_some() {
        return Ok(None);
    }
    let envelope = CommandEnvelope::new(
        Principal::system(),
        Command::Club {
            club_id,
            command: ClubCommand::OpenRound {
                round_id,
                method: VotingMethod::Plurality,
                nominations_close,
                voting_closes,
                max_nominations_per_member: 3,
                hide_results: false,
                at: now,
            },
        },
    )
    .with_command_id(uuid::Uuid::new_v5(&round_id.as_uuid(), b"open"));
    match bus.dispatch(envelope).await {
        Ok(outcome) => Ok(Some(outcome.last_position)),
        Err(CommandError::Rejected(_)) | Err(CommandError::KeyReused(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The book club's deadlines: rounds whose voting closed are closed and counted (as the system,
/// with the command id `v5(round_id, "close")`), and, with `club.monthly_rounds`, the default
/// club gets its round for the month when none is open.
pub(crate) struct ClubDeadlines {
    pub(crate) read: ReadModels,
    pub(crate) bus: Arc<dyn CommandBus>,
    pub(crate) monthly_rounds: bool,
}

#[async_trait]
impl Deadlines for ClubDeadlines {
    fn name(&self) -> &'static str {
        "club"
    }

    #[tracing::instrument(name = "scheduler.club", skip_all, fields(now = now.as_micros()))]
    async fn run_due(&self, now: Timestamp) -> anyhow::Result<usize> {
        let mut handled = 0;
        for round in self.read.rounds_due(now.as_micros(), BATCH).await? {
            handled += 1;
            let envelope = CommandEnvelope::new(
                Principal::system(),
                Command::Club {
                    club_id: round.club_id,
                    command: ClubCommand::CloseRound {
                        round_id: round.round_id,
                        at: now,
                    },
                },
            )
            .with_command_id(uuid::Uuid::new_v5(&round.round_id.as_uuid(), b"close"));
            settle("close_round", self.bus.dispatch(envelope)).await?;
        }
        if self.monthly_rounds {
            let club = quire_api::DEFAULT_CLUB;
            let open = self
                .read
                .current_round(club)
                .await?
                .is_some_and(|r| r.status == "open");
            if !open
                && self.read.club(club).await?.is_some()
                && open_monthly_round(&self.read, &*self.bus, club, now)
                    .instrument(deadline("open_monthly_round"))
                    .await?
                    .is_some()
            {
                handled += 1;
            }
        }
        Ok(handled)
    }

    async fn next_deadline(&self) -> anyhow::Result<Option<Timestamp>> {
        Ok(self
            .read
            .next_round_deadline()
            .await?
            .map(Timestamp::from_micros))
    }
}

/// The span of one deadline the scheduler acts on (a loan fallen due, a round to close, an order
/// to finish): a trace of its own (`otel.kind = consumer`), since the poll that found it is not
/// traced (ARCHITECTURE.md, "Telemetry").
fn deadline(what: &'static str) -> tracing::Span {
    tracing::info_span!(parent: None, "scheduler.deadline", what, otel.kind = "consumer")
}

//! The bookstore's order process: the steps that join an order (`Order`) and the stock of each
//! book it names (`Stock`), which are separate entities with separate expected versions.
//!
//! Placing an order:
//! 1. `Request` on the order, with the request's own command id (from the `Idempotency-Key`, or
//!    fresh): the member, the lines and the time, recorded before anything is held.
//! 2. `Reserve` on each line's stock, in the order's line order, with id `v5(order_id,
//!    "reserve {book_id}")`. A reservation returns the book's price at that moment (read back
//!    from the recorded `StockReserved`).
//! 3. All reserved: `Place` on the order with those prices (id `v5(order_id, "place")`), placed
//!    at the request's time. A line refused (`out_of_stock`, `not_for_sale`): `Release` the lines
//!    reserved before it (id `v5(order_id, "release {book_id}")`), then `Refuse` the order (id
//!    `v5(order_id, "refuse")`), and answer the refusal.
//!
//! Cancelling: `Cancel` on the order (the request's own command id), then `Release` every line
//! (the same derived ids). Every step after the first follows from the recorded request and the
//! recorded reservations, so running the steps again, whoever does it (a keyed retry, the
//! scheduler finishing a process a crash cut short, both at once), records nothing twice and
//! reaches the same end. See `ARCHITECTURE.md`, "Bookstore", for the failure cases.

use quire_domain::DomainEvent;
use quire_domain::ids::{BookId, OrderId, UserId};
use quire_domain::store::{
    OrderCommand, OrderError, OrderEvent, OrderLine, PricedLine, StockCommand, StockEvent,
};
use quire_domain::values::{Currency, Timestamp};
use quire_store::{EventStore, RecordedEvent};

use crate::bus::{Command, CommandBus};
use crate::envelope::{CommandError, CommandOutcome, Rejection};
use crate::lending::Origin;
use crate::process::Steps;

/// What a member asks for: fixed by the order's first step, and read back from it on a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub order_id: OrderId,
    pub member: UserId,
    pub lines: Vec<OrderLine>,
    pub requested_at: Timestamp,
}

/// Why an order was not placed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OrderFailure {
    /// A line's stock refused it (`out_of_stock`, `not_for_sale`), or the lines' prices are in
    /// more than one currency (`book_id` is then `None`). Nothing is held: the lines reserved
    /// before were given back and the order records the refusal.
    #[error("order refused: {}", .rejection.message)]
    Refused {
        book_id: Option<BookId>,
        rejection: Rejection,
        /// The log position the undo reached: a read model there shows the copies given back.
        position: u64,
    },
    /// A step did not run: the request itself was refused (a rule of the order, another
    /// member's order), or storage or delivery failed (retry with the same key).
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Runs the order process over a command bus; `store` reads back what steps recorded.
pub struct OrderProcess<'a> {
    steps: Steps<'a>,
    store: &'a dyn EventStore,
}

impl<'a> OrderProcess<'a> {
    /// Steps with no request behind them (the scheduler's).
    pub fn new(bus: &'a dyn CommandBus, store: &'a dyn EventStore) -> Self {
        Self {
            steps: Steps::new(bus, Some(store)),
            store,
        }
    }

    /// Steps correlated with the request in `origin`.
    pub fn for_request(
        bus: &'a dyn CommandBus,
        store: &'a dyn EventStore,
        origin: &Origin,
    ) -> Self {
        Self {
            steps: Steps::for_request(bus, Some(store), origin),
            store,
        }
    }

    /// The events a step appended, read back from its stream (a replayed outcome names the
    /// first attempt's events).
    async fn events_of(
        &self,
        outcome: &CommandOutcome,
    ) -> Result<Vec<RecordedEvent>, CommandError> {
        if outcome.event_count == 0 {
            return Ok(Vec::new());
        }
        let after = outcome
            .stream_version
            .saturating_sub(u64::from(outcome.event_count));
        Ok(self
            .store
            .read_stream(&outcome.stream_id, after, outcome.event_count as usize)
            .await?)
    }

    /// The request an order's first step recorded.
    pub async fn recorded_request(
        &self,
        order_id: OrderId,
    ) -> Result<Option<OrderRequest>, CommandError> {
        let events = self.store.read_stream(&order_id.stream_id(), 0, 1).await?;
        for stored in events {
            let event =
                OrderEvent::from_stored(&stored.event_type, stored.schema_version, &stored.payload)
                    .map_err(|e| corrupt(&order_id.stream_id(), e))?;
            if let OrderEvent::OrderRequested {
                member,
                lines,
                requested_at,
            } = event
            {
                return Ok(Some(OrderRequest {
                    order_id,
                    member,
                    lines,
                    requested_at,
                }));
            }
        }
        Ok(None)
    }

    /// Places an order: records the request (the request's own command), then reserves every
    /// line and places the order, or gives back what was reserved and refuses it. Returns the
    /// request the order was placed for (a keyed retry's is the first attempt's) and the outcome
    /// whose position covers every step.
    #[tracing::instrument(name = "store.place_order", skip_all, fields(order_id = %request.order_id))]
    pub async fn place(
        &self,
        origin: &Origin,
        request: &OrderRequest,
    ) -> Result<(OrderRequest, CommandOutcome), OrderFailure> {
        let mut request = request.clone();
        let requested = self
            .steps
            .first_step(
                origin,
                Command::Order {
                    order_id: request.order_id,
                    command: OrderCommand::Request {
                        member: request.member,
                        lines: request.lines.clone(),
                        requested_at: request.requested_at,
                    },
                },
            )
            .await?;
        // A replayed request was made by an earlier or concurrent attempt with the same key,
        // stamped with another time: complete that one.
        if requested.replayed
            && let Some(first) = self.recorded_request(request.order_id).await?
        {
            request = first;
        }
        let placed = self.complete(&request).await?;
        Ok((request, later(requested, placed)))
    }

    /// The rest of a requested order: reserve, then place or undo. Idempotent: the scheduler
    /// runs it for orders a crash left pending.
    pub async fn complete(&self, request: &OrderRequest) -> Result<CommandOutcome, OrderFailure> {
        let order_id = request.order_id;
        let mut priced = Vec::with_capacity(request.lines.len());
        let mut currencies: Vec<Currency> = Vec::new();
        for (i, line) in request.lines.iter().enumerate() {
            match self.reserve(request, line).await {
                Ok((unit_price_cents, currency)) => {
                    priced.push(PricedLine {
                        book_id: line.book_id,
                        quantity: line.quantity,
                        unit_price_cents,
                    });
                    currencies.push(currency);
                }
                Err(CommandError::Rejected(rejection)) => {
                    let position = self
                        .undo(request, &request.lines[..i], Some(line.book_id), &rejection)
                        .await?;
                    return Err(OrderFailure::Refused {
                        book_id: Some(line.book_id),
                        rejection,
                        position,
                    });
                }
                Err(other) => return Err(other.into()),
            }
        }
        let currency = currencies.first().cloned().unwrap_or_default();
        if currencies.iter().any(|c| *c != currency) {
            let mut names: Vec<&str> = currencies.iter().map(Currency::as_str).collect();
            names.sort_unstable();
            names.dedup();
            let rejection = Rejection::from_domain(&OrderError::MixedCurrencies(names.join(", ")));
            let position = self.undo(request, &request.lines, None, &rejection).await?;
            return Err(OrderFailure::Refused {
                book_id: None,
                rejection,
                position,
            });
        }
        let placed = self
            .steps
            .step(
                order_id.as_uuid(),
                "place",
                Command::Order {
                    order_id,
                    command: OrderCommand::Place {
                        member: request.member,
                        lines: priced,
                        currency,
                        placed_at: request.requested_at,
                    },
                },
            )
            .await;
        match placed {
            Ok(outcome) => Ok(outcome),
            Err(CommandError::Rejected(rejection)) => {
                let position = self.undo(request, &request.lines, None, &rejection).await?;
                Err(OrderFailure::Refused {
                    book_id: None,
                    rejection,
                    position,
                })
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Reserves one line; returns the unit price and currency the reservation recorded.
    async fn reserve(
        &self,
        request: &OrderRequest,
        line: &OrderLine,
    ) -> Result<(u32, Currency), CommandError> {
        let outcome = self
            .steps
            .step(
                request.order_id.as_uuid(),
                &format!("reserve {}", line.book_id),
                Command::Stock {
                    book_id: line.book_id,
                    command: StockCommand::Reserve {
                        order_id: request.order_id,
                        member: request.member,
                        quantity: line.quantity,
                    },
                },
            )
            .await?;
        for stored in self.events_of(&outcome).await? {
            let event =
                StockEvent::from_stored(&stored.event_type, stored.schema_version, &stored.payload)
                    .map_err(|e| corrupt(&stored.stream_id, e))?;
            if let StockEvent::StockReserved {
                order_id,
                unit_price_cents,
                currency,
                ..
            } = event
                && order_id == request.order_id
            {
                return Ok((unit_price_cents, currency));
            }
        }
        // The reservation step always records its own `StockReserved`; a stock that answered
        // without one holds no reservation made by this process.
        Err(CommandError::Corrupt {
            stream_id: outcome.stream_id,
            reason: format!(
                "the reservation of order {} recorded no StockReserved",
                request.order_id
            ),
        })
    }

    /// Gives back the reservations of `lines` and records why the order was refused; returns
    /// the log position that covers both.
    async fn undo(
        &self,
        request: &OrderRequest,
        lines: &[OrderLine],
        book_id: Option<BookId>,
        rejection: &Rejection,
    ) -> Result<u64, CommandError> {
        let mut position = 0;
        for line in lines {
            let released = self.release(request.order_id, line.book_id).await?;
            position = position.max(released.last_position);
        }
        let refused = self
            .steps
            .step(
                request.order_id.as_uuid(),
                "refuse",
                Command::Order {
                    order_id: request.order_id,
                    command: OrderCommand::Refuse {
                        book_id,
                        code: rejection.code.clone(),
                    },
                },
            )
            .await;
        match refused {
            Ok(outcome) => Ok(position.max(outcome.last_position)),
            // An order that cannot be refused any more is not pending: nothing to record.
            Err(CommandError::Rejected(_)) => Ok(position),
            Err(other) => Err(other),
        }
    }

    /// Gives an order's reservation of one book back (a no-op when it holds none).
    pub async fn release(
        &self,
        order_id: OrderId,
        book_id: BookId,
    ) -> Result<CommandOutcome, CommandError> {
        self.steps
            .step(
                order_id.as_uuid(),
                &format!("release {book_id}"),
                Command::Stock {
                    book_id,
                    command: StockCommand::Release { order_id },
                },
            )
            .await
    }

    /// Cancels a placed order (the request's own command), then gives every line's copies
    /// back. Cancelling a cancelled order changes nothing (the releases replay).
    #[tracing::instrument(name = "store.cancel_order", skip_all, fields(%order_id))]
    pub async fn cancel(
        &self,
        origin: &Origin,
        order_id: OrderId,
        books: &[BookId],
        at: Timestamp,
    ) -> Result<CommandOutcome, CommandError> {
        let mut outcome = self
            .steps
            .first_step(
                origin,
                Command::Order {
                    order_id,
                    command: OrderCommand::Cancel { at },
                },
            )
            .await?;
        for book_id in books {
            let released = self.release(order_id, *book_id).await?;
            outcome = later(outcome, released);
        }
        Ok(outcome)
    }
}

fn corrupt(stream_id: &str, error: impl std::fmt::Display) -> CommandError {
    CommandError::Corrupt {
        stream_id: stream_id.to_string(),
        reason: error.to_string(),
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

//! A member's order: requested, then placed with its prices or refused; a placed order may be
//! cancelled once.

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainError, ErrorKind};
use crate::auth::CommandContext;
use crate::ids::{BookId, UserId};
use crate::values::{Currency, Timestamp};

use super::events::OrderEvent;
use super::{OrderLine, PricedLine, check_lines};

/// Commands an order accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderCommand {
    /// Records what a member asks for (the member, or staff for them): the first step of the
    /// order process. Asking again with the same content is a no-op.
    Request {
        member: UserId,
        lines: Vec<OrderLine>,
        requested_at: Timestamp,
    },
    /// Places the requested order with the prices its reservations returned, all in one
    /// currency (a step of the process, once every line is reserved).
    Place {
        member: UserId,
        lines: Vec<PricedLine>,
        currency: Currency,
        placed_at: Timestamp,
    },
    /// Ends a requested order that could not be placed (a step of the process, after its
    /// reservations were given back): which book refused it, and the refusal's code.
    Refuse {
        book_id: Option<BookId>,
        code: String,
    },
    /// Cancels a placed order (its member or staff); cancelling a cancelled order is a no-op.
    Cancel { at: Timestamp },
}

/// Why an order command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// The lines break a rule (count, duplicates).
    #[error("{0}")]
    InvalidOrder(String),
    /// The order's lines are priced in more than one currency: the order process refuses such
    /// an order (with this error) before placing it, as `Place` carries one currency.
    #[error("the books of one order must be priced in one currency; found {0}")]
    MixedCurrencies(String),
    /// No order with this id was requested.
    #[error("no such order")]
    NotFound,
    /// The order was requested before with other content.
    #[error("this order was already requested with other lines")]
    AlreadyRequested,
    /// The command needs an order in another status.
    #[error("the order is {status}; {need}")]
    WrongStatus {
        status: &'static str,
        need: &'static str,
    },
    /// The principal may not do this.
    #[error("not allowed to {action}")]
    Forbidden { action: &'static str },
}

impl DomainError for OrderError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidOrder(_) => "invalid_order",
            Self::MixedCurrencies(_) => "mixed_currencies",
            Self::NotFound => "order_not_found",
            Self::AlreadyRequested => "order_exists",
            Self::WrongStatus {
                status: "pending", ..
            } => "order_pending",
            Self::WrongStatus { .. } => "order_not_placed",
            Self::Forbidden { .. } => "forbidden",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidOrder(_) | Self::MixedCurrencies(_) => ErrorKind::Invalid,
            Self::NotFound => ErrorKind::NotFound,
            Self::AlreadyRequested | Self::WrongStatus { .. } => ErrorKind::Conflict,
            Self::Forbidden { .. } => ErrorKind::Forbidden,
        }
    }
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderStatus {
    /// Not requested.
    #[default]
    None,
    /// Requested; its lines are being reserved.
    Pending,
    Placed,
    /// A line could not be reserved; no copies are held for it.
    Refused,
    Cancelled,
}

impl OrderStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Pending => "pending",
            Self::Placed => "placed",
            Self::Refused => "refused",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One order.
#[derive(Debug, Clone, Default)]
pub struct Order {
    status: OrderStatus,
    member: Option<UserId>,
    requested: Vec<OrderLine>,
    requested_at: Option<Timestamp>,
    placed: Vec<PricedLine>,
    placed_at: Option<Timestamp>,
}

impl Order {
    /// Where the order stands.
    pub fn status(&self) -> OrderStatus {
        self.status
    }

    /// Whose order it is, once requested.
    pub fn member(&self) -> Option<UserId> {
        self.member
    }

    /// The lines as requested.
    pub fn requested(&self) -> &[OrderLine] {
        &self.requested
    }

    /// When it was requested.
    pub fn requested_at(&self) -> Option<Timestamp> {
        self.requested_at
    }

    /// The priced lines, once placed.
    pub fn lines(&self) -> &[PricedLine] {
        &self.placed
    }

    /// When it was placed.
    pub fn placed_at(&self) -> Option<Timestamp> {
        self.placed_at
    }

    fn wrong_status(&self, need: &'static str) -> OrderError {
        OrderError::WrongStatus {
            status: self.status.as_str(),
            need,
        }
    }

    fn decide_place(
        &self,
        member: UserId,
        lines: &[PricedLine],
        currency: &Currency,
        placed_at: Timestamp,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        match self.status {
            OrderStatus::None => return Err(OrderError::NotFound),
            OrderStatus::Placed if self.placed == lines => return Ok(Vec::new()),
            OrderStatus::Pending => {}
            _ => return Err(self.wrong_status("only a pending order can be placed")),
        }
        let same_lines = lines.len() == self.requested.len()
            && lines
                .iter()
                .zip(&self.requested)
                .all(|(p, r)| p.book_id == r.book_id && p.quantity == r.quantity);
        if Some(member) != self.member || !same_lines {
            return Err(OrderError::InvalidOrder(
                "the lines placed are not the lines requested".into(),
            ));
        }
        Ok(vec![OrderEvent::OrderPlaced {
            member,
            lines: lines.to_vec(),
            currency: currency.clone(),
            total_cents: lines.iter().map(PricedLine::subtotal_cents).sum(),
            placed_at,
        }])
    }
}

impl Aggregate for Order {
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    const CATEGORY: &'static str = "order";

    fn decide(
        &self,
        command: &OrderCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        match command {
            OrderCommand::Request {
                member,
                lines,
                requested_at,
            } => {
                if self.status != OrderStatus::None {
                    let same = self.member == Some(*member)
                        && self.requested == *lines
                        && self.requested_at == Some(*requested_at);
                    return if same {
                        Ok(Vec::new())
                    } else {
                        Err(OrderError::AlreadyRequested)
                    };
                }
                if !ctx.principal.is_user_or_privileged(*member) {
                    return Err(OrderError::Forbidden {
                        action: "order for another member",
                    });
                }
                check_lines(lines.iter().map(|l| &l.book_id)).map_err(OrderError::InvalidOrder)?;
                Ok(vec![OrderEvent::OrderRequested {
                    member: *member,
                    lines: lines.clone(),
                    requested_at: *requested_at,
                }])
            }
            OrderCommand::Place {
                member,
                lines,
                currency,
                placed_at,
            } => {
                if !ctx.principal.is_privileged() {
                    return Err(OrderError::Forbidden {
                        action: "place orders (the order process does)",
                    });
                }
                self.decide_place(*member, lines, currency, *placed_at)
            }
            OrderCommand::Refuse { book_id, code } => {
                if !ctx.principal.is_privileged() {
                    return Err(OrderError::Forbidden {
                        action: "refuse orders (the order process does)",
                    });
                }
                match self.status {
                    OrderStatus::None => Err(OrderError::NotFound),
                    OrderStatus::Refused => Ok(Vec::new()),
                    OrderStatus::Pending => Ok(vec![OrderEvent::OrderRefused {
                        book_id: *book_id,
                        code: code.clone(),
                    }]),
                    _ => Err(self.wrong_status("only a pending order can be refused")),
                }
            }
            OrderCommand::Cancel { at } => {
                let Some(member) = self.member else {
                    return Err(OrderError::NotFound);
                };
                if !ctx.principal.is_user_or_privileged(member) {
                    return Err(OrderError::Forbidden {
                        action: "cancel another member's order",
                    });
                }
                match self.status {
                    OrderStatus::Cancelled => Ok(Vec::new()),
                    OrderStatus::Placed => Ok(vec![OrderEvent::OrderCancelled {
                        by: ctx.principal.user_id,
                        at: *at,
                    }]),
                    OrderStatus::Pending => {
                        Err(self
                            .wrong_status("it is still being placed; cancel it once it is placed"))
                    }
                    _ => Err(self.wrong_status("only a placed order can be cancelled")),
                }
            }
        }
    }

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::OrderRequested {
                member,
                lines,
                requested_at,
            } => {
                self.status = OrderStatus::Pending;
                self.member = Some(*member);
                self.requested = lines.clone();
                self.requested_at = Some(*requested_at);
            }
            OrderEvent::OrderPlaced {
                lines, placed_at, ..
            } => {
                self.status = OrderStatus::Placed;
                self.placed = lines.clone();
                self.placed_at = Some(*placed_at);
            }
            OrderEvent::OrderRefused { .. } => self.status = OrderStatus::Refused,
            OrderEvent::OrderCancelled { .. } => self.status = OrderStatus::Cancelled,
        }
    }
}

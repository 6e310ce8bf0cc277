//! Bookstore events and their stored schema, one private payload struct per type and version.

use serde::{Deserialize, Serialize};

use crate::aggregate::{DomainEvent, EventDecodeError};
use crate::ids::{BookId, OrderId, UserId};
use crate::serde_util::{decode_payload, encode_payload};
use crate::values::{Currency, PriceCents, Quantity, Timestamp};

use super::{OrderLine, PricedLine};

/// Facts recorded in a book's stock stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StockEvent {
    /// The book's price (from now on).
    PriceSet {
        price_cents: PriceCents,
        currency: Currency,
    },
    /// How many copies are left (`None`: untracked).
    StockSet { tracked: Option<u32> },
    /// Copies added to a tracked stock.
    Restocked { added: u32 },
    /// An order reserved copies at this unit price.
    StockReserved {
        order_id: OrderId,
        quantity: Quantity,
        unit_price_cents: u32,
        currency: Currency,
    },
    /// An order's reservation was given back (refused or cancelled order).
    StockReleased {
        order_id: OrderId,
        quantity: Quantity,
    },
}

/// Facts recorded in an order's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEvent {
    /// A member asked for these books.
    OrderRequested {
        member: UserId,
        lines: Vec<OrderLine>,
        requested_at: Timestamp,
    },
    /// Every line was reserved: the order stands, at these prices.
    OrderPlaced {
        member: UserId,
        lines: Vec<PricedLine>,
        currency: Currency,
        total_cents: u64,
        placed_at: Timestamp,
    },
    /// A line could not be reserved (`book_id`, with the refusal's `code`); nothing is held.
    OrderRefused {
        book_id: Option<BookId>,
        code: String,
    },
    /// The member (or staff, `by`) cancelled the placed order.
    OrderCancelled { by: Option<UserId>, at: Timestamp },
}

const PRICE_SET: &str = "PriceSet";
const STOCK_SET: &str = "StockSet";
const RESTOCKED: &str = "Restocked";
const STOCK_RESERVED: &str = "StockReserved";
const STOCK_RELEASED: &str = "StockReleased";
const ORDER_REQUESTED: &str = "OrderRequested";
const ORDER_PLACED: &str = "OrderPlaced";
const ORDER_REFUSED: &str = "OrderRefused";
const ORDER_CANCELLED: &str = "OrderCancelled";

/// `PriceSet` version 1.
#[derive(Serialize, Deserialize)]
struct PriceSetV1 {
    price_cents: PriceCents,
    currency: Currency,
}

/// `StockSet` version 1.
#[derive(Serialize, Deserialize)]
struct StockSetV1 {
    tracked: Option<u32>,
}

/// `Restocked` version 1.
#[derive(Serialize, Deserialize)]
struct RestockedV1 {
    added: u32,
}

/// `StockReserved` version 1.
#[derive(Serialize, Deserialize)]
struct StockReservedV1 {
    order_id: OrderId,
    quantity: Quantity,
    unit_price_cents: u32,
    currency: Currency,
}

/// `StockReleased` version 1.
#[derive(Serialize, Deserialize)]
struct StockReleasedV1 {
    order_id: OrderId,
    quantity: Quantity,
}

/// A requested line, stored.
#[derive(Serialize, Deserialize)]
struct LineV1 {
    book_id: BookId,
    quantity: Quantity,
}

/// A priced line, stored.
#[derive(Serialize, Deserialize)]
struct PricedLineV1 {
    book_id: BookId,
    quantity: Quantity,
    unit_price_cents: u32,
}

/// `OrderRequested` version 1.
#[derive(Serialize, Deserialize)]
struct OrderRequestedV1 {
    member: UserId,
    lines: Vec<LineV1>,
    requested_at: Timestamp,
}

/// `OrderPlaced` version 1.
#[derive(Serialize, Deserialize)]
struct OrderPlacedV1 {
    member: UserId,
    lines: Vec<PricedLineV1>,
    currency: Currency,
    total_cents: u64,
    placed_at: Timestamp,
}

/// `OrderRefused` version 1.
#[derive(Serialize, Deserialize)]
struct OrderRefusedV1 {
    #[serde(default)]
    book_id: Option<BookId>,
    code: String,
}

/// `OrderCancelled` version 1.
#[derive(Serialize, Deserialize)]
struct OrderCancelledV1 {
    #[serde(default)]
    by: Option<UserId>,
    at: Timestamp,
}

impl DomainEvent for StockEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::PriceSet { .. } => PRICE_SET,
            Self::StockSet { .. } => STOCK_SET,
            Self::Restocked { .. } => RESTOCKED,
            Self::StockReserved { .. } => STOCK_RESERVED,
            Self::StockReleased { .. } => STOCK_RELEASED,
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn to_payload(&self) -> serde_json::Value {
        match self.clone() {
            Self::PriceSet {
                price_cents,
                currency,
            } => encode_payload(&PriceSetV1 {
                price_cents,
                currency,
            }),
            Self::StockSet { tracked } => encode_payload(&StockSetV1 { tracked }),
            Self::Restocked { added } => encode_payload(&RestockedV1 { added }),
            Self::StockReserved {
                order_id,
                quantity,
                unit_price_cents,
                currency,
            } => encode_payload(&StockReservedV1 {
                order_id,
                quantity,
                unit_price_cents,
                currency,
            }),
            Self::StockReleased { order_id, quantity } => {
                encode_payload(&StockReleasedV1 { order_id, quantity })
            }
        }
    }

    fn from_stored(
        event_type: &str,
        schema_version: u32,
        payload: &serde_json::Value,
    ) -> Result<Self, EventDecodeError> {
        let (t, v, p) = (event_type, schema_version, payload);
        match (event_type, schema_version) {
            (PRICE_SET, 1) => {
                let e: PriceSetV1 = decode_payload(t, v, p)?;
                Ok(Self::PriceSet {
                    price_cents: e.price_cents,
                    currency: e.currency,
                })
            }
            (STOCK_SET, 1) => {
                let e: StockSetV1 = decode_payload(t, v, p)?;
                Ok(Self::StockSet { tracked: e.tracked })
            }
            (RESTOCKED, 1) => {
                let e: RestockedV1 = decode_payload(t, v, p)?;
                Ok(Self::Restocked { added: e.added })
            }
            (STOCK_RESERVED, 1) => {
                let e: StockReservedV1 = decode_payload(t, v, p)?;
                Ok(Self::StockReserved {
                    order_id: e.order_id,
                    quantity: e.quantity,
                    unit_price_cents: e.unit_price_cents,
                    currency: e.currency,
                })
            }
            (STOCK_RELEASED, 1) => {
                let e: StockReleasedV1 = decode_payload(t, v, p)?;
                Ok(Self::StockReleased {
                    order_id: e.order_id,
                    quantity: e.quantity,
                })
            }
            (PRICE_SET | STOCK_SET | RESTOCKED | STOCK_RESERVED | STOCK_RELEASED, version) => {
                Err(EventDecodeError::unsupported_version(event_type, version))
            }
            _ => Err(EventDecodeError::unknown_type(event_type)),
        }
    }
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::OrderRequested { .. } => ORDER_REQUESTED,
            Self::OrderPlaced { .. } => ORDER_PLACED,
            Self::OrderRefused { .. } => ORDER_REFUSED,
            Self::OrderCancelled { .. } => ORDER_CANCELLED,
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn to_payload(&self) -> serde_json::Value {
        match self.clone() {
            Self::OrderRequested {
                member,
                lines,
                requested_at,
            } => encode_payload(&OrderRequestedV1 {
                member,
                lines: lines
                    .into_iter()
                    .map(|l| LineV1 {
                        book_id: l.book_id,
                        quantity: l.quantity,
                    })
                    .collect(),
                requested_at,
            }),
            Self::OrderPlaced {
                member,
                lines,
                currency,
                total_cents,
                placed_at,
            } => encode_payload(&OrderPlacedV1 {
                member,
                lines: lines
                    .into_iter()
                    .map(|l| PricedLineV1 {
                        book_id: l.book_id,
                        quantity: l.quantity,
                        unit_price_cents: l.unit_price_cents,
                    })
                    .collect(),
                currency,
                total_cents,
                placed_at,
            }),
            Self::OrderRefused { book_id, code } => {
                encode_payload(&OrderRefusedV1 { book_id, code })
            }
            Self::OrderCancelled { by, at } => encode_payload(&OrderCancelledV1 { by, at }),
        }
    }

    fn from_stored(
        event_type: &str,
        schema_version: u32,
        payload: &serde_json::Value,
    ) -> Result<Self, EventDecodeError> {
        let (t, v, p) = (event_type, schema_version, payload);
        match (event_type, schema_version) {
            (ORDER_REQUESTED, 1) => {
                let e: OrderRequestedV1 = decode_payload(t, v, p)?;
                Ok(Self::OrderRequested {
                    member: e.member,
                    lines: e
                        .lines
                        .into_iter()
                        .map(|l| OrderLine {
                            book_id: l.book_id,
                            quantity: l.quantity,
                        })
                        .collect(),
                    requested_at: e.requested_at,
                })
            }
            (ORDER_PLACED, 1) => {
                let e: OrderPlacedV1 = decode_payload(t, v, p)?;
                Ok(Self::OrderPlaced {
                    member: e.member,
                    lines: e
                        .lines
                        .into_iter()
                        .map(|l| PricedLine {
                            book_id: l.book_id,
                            quantity: l.quantity,
                            unit_price_cents: l.unit_price_cents,
                        })
                        .collect(),
                    currency: e.currency,
                    total_cents: e.total_cents,
                    placed_at: e.placed_at,
                })
            }
            (ORDER_REFUSED, 1) => {
                let e: OrderRefusedV1 = decode_payload(t, v, p)?;
                Ok(Self::OrderRefused {
                    book_id: e.book_id,
                    code: e.code,
                })
            }
            (ORDER_CANCELLED, 1) => {
                let e: OrderCancelledV1 = decode_payload(t, v, p)?;
                Ok(Self::OrderCancelled { by: e.by, at: e.at })
            }
            (ORDER_REQUESTED | ORDER_PLACED | ORDER_REFUSED | ORDER_CANCELLED, version) => {
                Err(EventDecodeError::unsupported_version(event_type, version))
            }
            _ => Err(EventDecodeError::unknown_type(event_type)),
        }
    }
}

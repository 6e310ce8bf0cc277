//! A book's price and stock, and the reservations orders hold on it.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainError, ErrorKind};
use crate::auth::CommandContext;
use crate::ids::{OrderId, UserId};
use crate::values::{Currency, PriceCents, Quantity};

use super::events::StockEvent;

/// The most copies a tracked stock counts.
pub const MAX_STOCK: u32 = 1_000_000;

/// Commands a book's stock accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StockCommand {
    /// Sets the book's price (staff). Orders placed from now on are priced at it; placed ones
    /// keep theirs.
    SetPrice {
        price_cents: PriceCents,
        #[serde(default)]
        currency: Currency,
    },
    /// Sets how many copies are left to sell (staff); `None`: untracked, as many as are ordered.
    SetStock { tracked: Option<u32> },
    /// Adds copies to a tracked stock (staff).
    Restock { add: u32 },
    /// Reserves copies for an order (a step of the order process): refused when the book has no
    /// price or fewer copies are left than asked for. Once per order: again is a no-op.
    Reserve {
        order_id: OrderId,
        member: UserId,
        quantity: Quantity,
    },
    /// Gives an order's reservation back (the order was refused or cancelled); a no-op when the
    /// order holds none (never reserved, or released already).
    Release { order_id: OrderId },
}

/// Why a stock command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    /// The book has no price: it is not for sale.
    #[error("this book has no price yet: it is not for sale")]
    NotForSale,
    /// Fewer copies are left than the order asks for.
    #[error("only {available} left (asked for {requested})")]
    OutOfStock { available: u32, requested: u32 },
    /// Copies can be added only to a tracked stock.
    #[error("this book's stock is not tracked; set a stock before restocking")]
    Untracked,
    /// A stock count out of range.
    #[error("{0}")]
    InvalidStock(String),
    /// The principal may not do this.
    #[error("not allowed to {action}")]
    Forbidden { action: &'static str },
}

impl StockError {
    /// The copies left that an `out_of_stock` refusal's message names, read back from a
    /// recorded refusal (whose typed form is gone: only its code and message are stored).
    pub fn available_in(message: &str) -> Option<u32> {
        let rest = message.strip_prefix("only ")?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }
}

impl DomainError for StockError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotForSale => "not_for_sale",
            Self::OutOfStock { .. } => "out_of_stock",
            Self::Untracked => "stock_untracked",
            Self::InvalidStock(_) => "invalid_stock",
            Self::Forbidden { .. } => "forbidden",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotForSale | Self::OutOfStock { .. } | Self::Untracked => ErrorKind::Conflict,
            Self::InvalidStock(_) => ErrorKind::Invalid,
            Self::Forbidden { .. } => ErrorKind::Forbidden,
        }
    }
}

/// The stock of one book.
#[derive(Debug, Clone, Default)]
pub struct Stock {
    price: Option<(PriceCents, Currency)>,
    /// Copies left when tracked; `None`: untracked (as many as are ordered).
    available: Option<u32>,
    /// Reservations held, by order.
    reserved: HashMap<OrderId, Quantity>,
    /// Orders whose reservation was given back.
    released: HashSet<OrderId>,
}

impl Stock {
    /// The price and its currency, once set.
    pub fn price(&self) -> Option<(PriceCents, &Currency)> {
        self.price
            .as_ref()
            .map(|(cents, currency)| (*cents, currency))
    }

    /// Copies left, when tracked.
    pub fn available(&self) -> Option<u32> {
        self.available
    }

    /// The copies an order holds, if it holds a reservation.
    pub fn reservation(&self, order_id: OrderId) -> Option<Quantity> {
        self.reserved.get(&order_id).copied()
    }
}

fn check_count(what: &str, n: u32) -> Result<(), StockError> {
    if n > MAX_STOCK {
        return Err(StockError::InvalidStock(format!(
            "{what} must be at most {MAX_STOCK}, got {n}"
        )));
    }
    Ok(())
}

impl Aggregate for Stock {
    type Command = StockCommand;
    type Event = StockEvent;
    type Error = StockError;

    const CATEGORY: &'static str = "stock";

    fn decide(
        &self,
        command: &StockCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<StockEvent>, StockError> {
        let staff_only = |action| {
            if ctx.principal.is_privileged() {
                Ok(())
            } else {
                Err(StockError::Forbidden { action })
            }
        };
        match command {
            StockCommand::SetPrice {
                price_cents,
                currency,
            } => {
                staff_only("set prices")?;
                if self.price() == Some((*price_cents, currency)) {
                    return Ok(Vec::new());
                }
                Ok(vec![StockEvent::PriceSet {
                    price_cents: *price_cents,
                    currency: currency.clone(),
                }])
            }
            StockCommand::SetStock { tracked } => {
                staff_only("set stock")?;
                if let Some(n) = tracked {
                    check_count("stock", *n)?;
                }
                if self.available == *tracked {
                    return Ok(Vec::new());
                }
                Ok(vec![StockEvent::StockSet { tracked: *tracked }])
            }
            StockCommand::Restock { add } => {
                staff_only("restock")?;
                if *add == 0 {
                    return Err(StockError::InvalidStock(
                        "a restock adds at least 1 copy".into(),
                    ));
                }
                let available = self.available.ok_or(StockError::Untracked)?;
                check_count("stock after the restock", available.saturating_add(*add))?;
                Ok(vec![StockEvent::Restocked { added: *add }])
            }
            StockCommand::Reserve {
                order_id,
                member,
                quantity,
            } => {
                if self.reserved.contains_key(order_id) || self.released.contains(order_id) {
                    return Ok(Vec::new());
                }
                if !ctx.principal.is_user_or_privileged(*member) {
                    return Err(StockError::Forbidden {
                        action: "order for another member",
                    });
                }
                let (price, currency) = self.price.as_ref().ok_or(StockError::NotForSale)?;
                if let Some(available) = self.available
                    && available < quantity.value()
                {
                    return Err(StockError::OutOfStock {
                        available,
                        requested: quantity.value(),
                    });
                }
                Ok(vec![StockEvent::StockReserved {
                    order_id: *order_id,
                    quantity: *quantity,
                    unit_price_cents: price.value(),
                    currency: currency.clone(),
                }])
            }
            StockCommand::Release { order_id } => {
                staff_only("release reservations")?;
                Ok(match self.reserved.get(order_id) {
                    Some(quantity) => vec![StockEvent::StockReleased {
                        order_id: *order_id,
                        quantity: *quantity,
                    }],
                    None => Vec::new(),
                })
            }
        }
    }

    fn apply(&mut self, event: &StockEvent) {
        match event {
            StockEvent::PriceSet {
                price_cents,
                currency,
            } => self.price = Some((*price_cents, currency.clone())),
            StockEvent::StockSet { tracked } => self.available = *tracked,
            StockEvent::Restocked { added } => {
                self.available = self.available.map(|n| n.saturating_add(*added));
            }
            StockEvent::StockReserved {
                order_id, quantity, ..
            } => {
                self.reserved.insert(*order_id, *quantity);
                self.available = self.available.map(|n| n.saturating_sub(quantity.value()));
            }
            StockEvent::StockReleased { order_id, quantity } => {
                self.reserved.remove(order_id);
                self.released.insert(*order_id);
                self.available = self.available.map(|n| n.saturating_add(quantity.value()));
            }
        }
    }
}

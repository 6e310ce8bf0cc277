//! The bookstore: a book's price and stock (`Stock`), and members' orders (`Order`).
//!
//! **`Stock` (stream `stock-{book_id}`)** is kept apart from the book's own stream: a
//! bestseller's sales must not lengthen the replay of its reviews, and the catalogue entry's
//! history is public while who bought what is not. It holds the price (set by staff), whether
//! stock is tracked and how many copies are left, and the reservations orders made. Two orders
//! for the last copy are serialized by the stream's expected version: one reserves it, the other
//! is refused with `out_of_stock` ("only 0 left").
//!
//! **`Order` (stream `order-{order_id}`)** records the member's request (books and quantities,
//! with the time it was made), then either the placed order with the prices its reservations
//! returned, or the refusal that ended it; a placed order may be cancelled once.
//!
//! The two are joined by the order process (`quire_actors::store`, and `ARCHITECTURE.md`,
//! "Bookstore"): request, reserve every line at its book's stock, then place the order with the
//! reserved prices, or give the reservations back and record the refusal. Every step after the
//! request has a command id derived from the order, and every step's content follows from the
//! recorded request and the recorded reservations, so running the steps again (a keyed retry,
//! the scheduler completing a process a crash cut short) records nothing twice.
//!
//! Times arrive inside commands: the domain reads no clock.

mod events;
mod order;
mod stock;

use serde::{Deserialize, Serialize};

use crate::ids::{BookId, OrderId};
use crate::values::Quantity;

pub use events::{OrderEvent, StockEvent};
pub use order::{Order, OrderCommand, OrderError, OrderStatus};
pub use stock::{MAX_STOCK, Stock, StockCommand, StockError};

/// The most lines one order may have.
pub const MAX_ORDER_LINES: usize = 50;

/// One line of an order as the member asks for it: a book and how many copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub book_id: BookId,
    pub quantity: Quantity,
}

/// One line of a placed order: the book, how many copies, and the unit price its reservation
/// returned (the book's price when the order was placed; later price changes do not touch it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    pub book_id: BookId,
    pub quantity: Quantity,
    pub unit_price_cents: u32,
}

impl PricedLine {
    /// Quantity times unit price, in cents.
    pub fn subtotal_cents(&self) -> u64 {
        u64::from(self.quantity.value()) * u64::from(self.unit_price_cents)
    }
}

impl BookId {
    /// The id of the book's stock stream, "stock-{id}".
    pub fn stock_stream_id(&self) -> String {
        format!("{}-{self}", <Stock as crate::Aggregate>::CATEGORY)
    }
}

impl OrderId {
    /// The id of the order's event stream, "order-{id}".
    pub fn stream_id(&self) -> String {
        format!("{}-{self}", <Order as crate::Aggregate>::CATEGORY)
    }
}

/// Checks the lines of an order: 1 to [`MAX_ORDER_LINES`] lines, each book once (quantities
/// are checked by [`Quantity`] itself). Returns why not, for a refusal or a 422.
pub fn check_lines<'a>(books: impl IntoIterator<Item = &'a BookId>) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    let mut count = 0;
    for book in books {
        count += 1;
        if !seen.insert(*book) {
            return Err(format!(
                "book {book} appears in more than one line; order it once with the total quantity"
            ));
        }
    }
    if !(1..=MAX_ORDER_LINES).contains(&count) {
        return Err(format!(
            "an order has 1 to {MAX_ORDER_LINES} lines, this one has {count}"
        ));
    }
    Ok(())
}

//! The `store` read model's queries: a book's price and stock, orders with their lines, a
//! member's orders, bestsellers over a rolling window, and what the scheduler looks for (orders a
//! crash left pending, reservations of cancelled orders not yet given back).
//!
//! The handlers are in `apply::store`. An order starts `pending` when it is requested and becomes
//! `placed` or `refused` when the order process ends; listings show placed and cancelled orders
//! only, while the scheduler's queries find the pending ones that never went on.

use quire_domain::ids::{BookId, OrderId, UserId};
use quire_domain::values::Genre;
use serde_json::Value;

use crate::db::Arg;
use crate::query::{Cursor, corrupt, count, cursor_args, id, into_page, opt_id, page_size, param};
use crate::{Page, PageRequest, ReadModelError, ReadModels};

/// Microseconds in an hour: a sales bucket is an order's `placed_at` divided by this, rounded
/// down.
pub(crate) const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// A book's price and stock. A book never priced has no row: not for sale, untracked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockRow {
    pub book_id: BookId,
    /// `None` until staff set a price: the book is not for sale.
    pub price_cents: Option<u32>,
    pub currency: Option<String>,
    /// Whether copies are counted; untracked stock sells as many as are ordered.
    pub tracked: bool,
    /// Copies left, when tracked.
    pub available: Option<u32>,
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderRowStatus {
    /// Requested; its lines are being reserved (or a crash interrupted that).
    Pending,
    Placed,
    /// A line could not be reserved; nothing is held.
    Refused,
    Cancelled,
}

impl OrderRowStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Placed => "placed",
            Self::Refused => "refused",
            Self::Cancelled => "cancelled",
        }
    }

    fn from_stored(text: &str) -> Result<Self, ReadModelError> {
        [Self::Pending, Self::Placed, Self::Refused, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| corrupt("order status", text))
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLineRow {
    pub book_id: BookId,
    pub quantity: u32,
    /// The unit price its reservation returned; `None` until reserved.
    pub unit_price_cents: Option<u32>,
    /// Copies were reserved for the line.
    pub reserved: bool,
    /// The reservation was given back (a refused or cancelled order).
    pub released: bool,
}

/// An order with its lines, in line order. Times are microseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub status: OrderRowStatus,
    /// Set once placed.
    pub currency: Option<String>,
    pub total_cents: u64,
    pub requested_at: i64,
    pub placed_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    /// For a refused order: the book that refused it and the refusal's code.
    pub refused_book_id: Option<BookId>,
    pub refusal_code: Option<String>,
    pub lines: Vec<OrderLineRow>,
}

/// How far back bestsellers count sales: rolling, to the hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SalesWindow {
    /// The last 24 hours.
    Day,
    /// The last 7 days.
    #[default]
    Week,
    /// The last 30 days.
    Month,
    /// Every sale.
    All,
}

impl SalesWindow {
    /// The name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::All => "all",
        }
    }

    /// The window a name stands for.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Day, Self::Week, Self::Month, Self::All]
            .into_iter()
            .find(|w| w.as_str() == text)
    }

    /// The first hour bucket the window counts at `now` (µs), or `None` for every bucket.
    fn first_bucket(self, now: i64) -> Option<i64> {
        let hours = match self {
            Self::Day => 24,
            Self::Week => 7 * 24,
            Self::Month => 30 * 24,
            Self::All => return None,
        };
        Some(
            now.saturating_sub(hours * MICROS_PER_HOUR)
                .div_euclid(MICROS_PER_HOUR),
        )
    }
}

/// A bestseller list query.
#[derive(Debug, Clone, Default)]
pub struct BestsellerQuery {
    pub window: SalesWindow,
    /// Books with this genre (normalized like the domain's `Genre`).
    pub genre: Option<String>,
    pub limit: u32,
    /// The time the window ends at, microseconds since the epoch (the read side reads no clock).
    pub now: i64,
}

/// A book's net sales in a window: units of orders placed in it that still stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestsellerRow {
    pub book_id: BookId,
    pub title: String,
    pub authors: Vec<String>,
    pub genres: Vec<String>,
    pub units: u64,
    pub revenue_cents: u64,
}

#[derive(sqlx::FromRow)]
struct StoredStock {
    book_id: String,
    price_cents: Option<i64>,
    currency: Option<String>,
    tracked: bool,
    available: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct StoredOrder {
    order_id: String,
    member_id: String,
    status: String,
    currency: Option<String>,
    total_cents: i64,
    requested_at: i64,
    placed_at: Option<i64>,
    cancelled_at: Option<i64>,
    refused_book_id: Option<String>,
    refusal_code: Option<String>,
}

#[derive(sqlx::FromRow)]
struct StoredLine {
    order_id: String,
    book_id: String,
    quantity: i64,
    unit_price_cents: Option<i64>,
    reserved: bool,
    released: bool,
}

#[derive(sqlx::FromRow)]
struct StoredBestseller {
    book_id: String,
    title: String,
    authors: String,
    genres: String,
    net_units: i64,
    net_revenue: i64,
}

impl StoredStock {
    fn row(self) -> Result<StockRow, ReadModelError> {
        Ok(StockRow {
            book_id: id("book id", &self.book_id)?,
            price_cents: self.price_cents.map(|p| count("price", p)).transpose()?,
            currency: self.currency,
            tracked: self.tracked,
            available: self.available.map(|n| count("stock", n)).transpose()?,
        })
    }
}

impl StoredLine {
    fn row(self) -> Result<OrderLineRow, ReadModelError> {
        Ok(OrderLineRow {
            book_id: id("book id", &self.book_id)?,
            quantity: count("quantity", self.quantity)?,
            unit_price_cents: self
                .unit_price_cents
                .map(|p| count("unit price", p))
                .transpose()?,
            reserved: self.reserved,
            released: self.released,
        })
    }
}

impl StoredOrder {
    fn row(self, lines: Vec<OrderLineRow>) -> Result<OrderRow, ReadModelError> {
        Ok(OrderRow {
            order_id: id("order id", &self.order_id)?,
            user_id: id("user id", &self.member_id)?,
            status: OrderRowStatus::from_stored(&self.status)?,
            currency: self.currency,
            total_cents: u64::try_from(self.total_cents).map_err(|e| corrupt("total", e))?,
            requested_at: self.requested_at,
            placed_at: self.placed_at,
            cancelled_at: self.cancelled_at,
            refused_book_id: opt_id("book id", self.refused_book_id.as_deref())?,
            refusal_code: self.refusal_code,
            lines,
        })
    }
}

fn strings(json: &str) -> Result<Vec<String>, ReadModelError> {
    serde_json::from_str(json).map_err(|e| corrupt("string list", e))
}

const ORDERS: &str = "SELECT order_id, member_id, status, currency, total_cents, requested_at, \
    placed_at, cancelled_at, refused_book_id, refusal_code FROM rm_orders";

/// The keyset listing of a member's orders (newest placed first) and its cursor's name.
const ORDER_LISTING: &str = "orders";

impl ReadModels {
    /// A book's price and stock; `None` for a book never priced nor stocked.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn stock(&self, book: BookId) -> Result<Option<StockRow>, ReadModelError> {
        self.fetch_optional::<StoredStock>(
            "reading stock",
            "SELECT book_id, price_cents, currency, tracked, available FROM rm_stock \
             WHERE book_id = $1",
            &[Arg::Text(book.to_string())],
        )
        .await?
        .map(StoredStock::row)
        .transpose()
    }

    /// The orders of rows read by `condition`, each with its lines (one query for all lines).
    async fn orders_where(
        &self,
        context: &'static str,
        sql: &str,
        args: &[Arg],
    ) -> Result<Vec<OrderRow>, ReadModelError> {
        let orders: Vec<StoredOrder> = self.fetch_all(context, sql, args).await?;
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let mut line_args = Vec::new();
        let list: Vec<String> = orders
            .iter()
            .map(|o| param(&mut line_args, Arg::Text(o.order_id.clone())))
            .collect();
        let lines: Vec<StoredLine> = self
            .fetch_all(
                "reading order lines",
                &format!(
                    "SELECT order_id, book_id, quantity, unit_price_cents, reserved, released \
                     FROM rm_order_lines WHERE order_id IN ({}) ORDER BY order_id, line_no",
                    list.join(", ")
                ),
                &line_args,
            )
            .await?;
        let mut by_order: std::collections::HashMap<String, Vec<OrderLineRow>> = Default::default();
        for line in lines {
            let order_id = line.order_id.clone();
            by_order.entry(order_id).or_default().push(line.row()?);
        }
        orders
            .into_iter()
            .map(|o| {
                let lines = by_order.remove(&o.order_id).unwrap_or_default();
                o.row(lines)
            })
            .collect()
    }

    /// An order with its lines, whatever its status.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn order(&self, order: OrderId) -> Result<Option<OrderRow>, ReadModelError> {
        let rows = self
            .orders_where(
                "reading an order",
                &format!("{ORDERS} WHERE order_id = $1"),
                &[Arg::Text(order.to_string())],
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// A member's placed and cancelled orders, newest placed first (ties by order id), one
    /// page at a time. Pending and refused ones are never listed.
    #[tracing::instrument(skip(self, page), fields(backend = self.backend()))]
    pub async fn orders_of(
        &self,
        member: UserId,
        page: &PageRequest,
    ) -> Result<Page<OrderRow>, ReadModelError> {
        let mut args = vec![Arg::Text(member.to_string())];
        let mut sql = format!(
            "{ORDERS} WHERE member_id = $1 AND status IN ('placed', 'cancelled') \
             AND placed_at IS NOT NULL"
        );
        if let Some((at, id)) = cursor_args(&mut args, page, ORDER_LISTING)? {
            sql += &format!(" AND (placed_at < {at} OR (placed_at = {at} AND order_id < {id}))");
        }
        let limit = page_size(page);
        let n = param(&mut args, Arg::I64(limit as i64 + 1));
        sql += &format!(" ORDER BY placed_at DESC, order_id DESC LIMIT {n}");
        let rows = self.orders_where("listing orders", &sql, &args).await?;
        into_page(
            rows,
            limit,
            |last| Cursor {
                s: ORDER_LISTING.into(),
                k: Value::from(last.placed_at.unwrap_or_default()),
                id: last.order_id.to_string(),
            },
            Ok,
        )
    }

    /// The books with the most net units sold in the window (orders placed in it, less those
    /// cancelled), most first; ties by revenue, then title, then id. Removed books, and books
    /// whose sales in the window were all cancelled, are left out.
    #[tracing::instrument(skip_all, fields(backend = self.backend(), window = q.window.as_str()))]
    pub async fn bestsellers(
        &self,
        q: &BestsellerQuery,
    ) -> Result<Vec<BestsellerRow>, ReadModelError> {
        let mut args = Vec::new();
        let mut sql = "SELECT b.id AS book_id, b.title, b.authors, b.genres, \
             CAST(SUM(x.units) AS BIGINT) AS net_units, \
             CAST(SUM(x.revenue_cents) AS BIGINT) AS net_revenue \
             FROM rm_sales_buckets x JOIN rm_books b ON b.id = x.book_id WHERE NOT b.removed"
            .to_string();
        if let Some(first) = q.window.first_bucket(q.now) {
            let p = param(&mut args, Arg::I64(first));
            sql += &format!(" AND x.bucket_hour >= {p}");
        }
        if let Some(genre) = &q.genre {
            let genre = Genre::parse(genre.as_str())
                .map(Genre::into_inner)
                .unwrap_or_else(|_| genre.trim().to_lowercase());
            let p = param(&mut args, Arg::Text(genre));
            sql += &format!(" AND b.id IN (SELECT book_id FROM rm_book_genres WHERE genre = {p})");
        }
        let n = param(&mut args, Arg::I64(i64::from(q.limit.clamp(1, 1000))));
        sql += &format!(
            " GROUP BY b.id, b.title, b.title_sort, b.authors, b.genres \
             HAVING SUM(x.units) > 0 \
             ORDER BY net_units DESC, net_revenue DESC, b.title_sort, b.id LIMIT {n}"
        );
        let rows: Vec<StoredBestseller> =
            self.fetch_all("reading bestsellers", &sql, &args).await?;
        rows.into_iter()
            .map(|r| {
                Ok(BestsellerRow {
                    book_id: id("book id", &r.book_id)?,
                    title: r.title,
                    authors: strings(&r.authors)?,
                    genres: strings(&r.genres)?,
                    units: u64::try_from(r.net_units).map_err(|e| corrupt("units", e))?,
                    revenue_cents: u64::try_from(r.net_revenue.max(0))
                        .map_err(|e| corrupt("revenue", e))?,
                })
            })
            .collect()
    }

    /// Orders requested at or before `requested_before` that were never placed nor refused (a
    /// process a crash interrupted), oldest first: the scheduler completes them.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn stuck_orders(
        &self,
        requested_before: i64,
        limit: u32,
    ) -> Result<Vec<OrderRow>, ReadModelError> {
        self.orders_where(
            "reading stuck orders",
            &format!(
                "{ORDERS} WHERE status = 'pending' AND requested_at <= $1 \
                 ORDER BY requested_at, order_id LIMIT $2"
            ),
            &[Arg::I64(requested_before), Arg::I64(i64::from(limit))],
        )
        .await
    }

    /// Lines of cancelled orders whose reservation was not given back yet (a cancel a crash cut
    /// short): the scheduler releases them.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn unreleased_cancelled_lines(
        &self,
        limit: u32,
    ) -> Result<Vec<(OrderId, BookId)>, ReadModelError> {
        let rows: Vec<(String, String)> = self
            .fetch_all(
                "reading unreleased reservations",
                "SELECT l.order_id, l.book_id FROM rm_order_lines l \
                 JOIN rm_orders o ON o.order_id = l.order_id \
                 WHERE l.reserved AND NOT l.released AND o.status = 'cancelled' \
                 ORDER BY l.order_id, l.book_id LIMIT $1",
                &[Arg::I64(i64::from(limit))],
            )
            .await?;
        rows.into_iter()
            .map(|(order, book)| Ok((id("order id", &order)?, id("book id", &book)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_start_a_whole_number_of_hours_back() {
        let now = 1_700_000_000_000_000 + 1234;
        let hour = now / MICROS_PER_HOUR;
        assert_eq!(SalesWindow::Day.first_bucket(now), Some(hour - 24));
        assert_eq!(SalesWindow::Week.first_bucket(now), Some(hour - 168));
        assert_eq!(SalesWindow::Month.first_bucket(now), Some(hour - 720));
        assert_eq!(SalesWindow::All.first_bucket(now), None);
        assert_eq!(SalesWindow::parse("week"), Some(SalesWindow::Week));
        assert_eq!(SalesWindow::parse("year"), None);
    }
}

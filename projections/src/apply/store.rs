//! The `store` projection's handlers: prices and stock (`rm_stock`), orders and their lines
//! (`rm_orders`, `rm_order_lines`), and the hourly sales buckets (`rm_sales_buckets`).
//!
//! An order line is written from two streams: the order's (`OrderRequested` creates it,
//! `OrderPlaced` prices it) and its book's stock stream (`StockReserved`, `StockReleased`, which
//! say whether copies are held for it). A stream version cannot order events of two streams, so
//! every row records the global position of the last event applied to it and every write is
//! guarded by `position < event position`: events arrive in position order, so an event at or
//! before a row's position was applied before (a replay) and changes nothing.
//!
//! Buckets are counters many orders add to, so they carry no guard of their own: an order adds its
//! lines to its placing hour's bucket in the same statement chain that moves the order's row to
//! `placed`, and only when that row's guard let the event through; a cancel subtracts the same
//! lines from the same bucket only when it moved the row from `placed` to `cancelled`. The net is
//! the sales of orders placed in that hour that still stand.

use quire_domain::DomainEvent;
use quire_domain::ids::{BookId, OrderId};
use quire_domain::store::{OrderEvent, StockEvent};
use quire_store::RecordedEvent;

use crate::ReadModelError;
use crate::db::{Arg, Tx};
use crate::store::MICROS_PER_HOUR;

/// Where an event applies: the table suffix and the event's global position (the rows' guard).
struct Stamp<'a> {
    s: &'a str,
    position: i64,
}

fn decode_error(event: &RecordedEvent, reason: impl Into<String>) -> ReadModelError {
    ReadModelError::Decode {
        position: event.position,
        stream_id: event.stream_id.clone(),
        event_type: event.event_type.clone(),
        reason: reason.into(),
    }
}

/// The id in a `{prefix}{id}` stream, or `None` for other streams.
fn entity_of<T>(event: &RecordedEvent, prefix: &str) -> Result<Option<T>, ReadModelError>
where
    T: std::str::FromStr<Err = quire_domain::ids::IdParseError>,
{
    let Some(id) = event.stream_id.strip_prefix(prefix) else {
        return Ok(None);
    };
    id.parse()
        .map(Some)
        .map_err(|e: quire_domain::ids::IdParseError| decode_error(event, e.to_string()))
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
        };
        if let Some(book_id) = entity_of::<BookId>(event, "stock-")? {
            let decoded =
                StockEvent::from_stored(&event.event_type, event.schema_version, &event.payload)
                    .map_err(|e| decode_error(event, e.to_string()))?;
            apply_stock(tx, &stamp, book_id.to_string(), decoded).await?;
        } else if let Some(order_id) = entity_of::<OrderId>(event, "order-")? {
            let decoded =
                OrderEvent::from_stored(&event.event_type, event.schema_version, &event.payload)
                    .map_err(|e| decode_error(event, e.to_string()))?;
            apply_order(tx, &stamp, order_id.to_string(), decoded).await?;
        }
    }
    Ok(())
}

/// An event of a book's stock stream (`stock-{book_id}`).
async fn apply_stock(
    tx: &mut Tx,
    at: &Stamp<'_>,
    book_id: String,
    event: StockEvent,
) -> Result<(), ReadModelError> {
    let (s, p) = (at.s, Arg::I64(at.position));
    match event {
        StockEvent::PriceSet {
            price_cents,
            currency,
        } => {
            tx.exec(
                "projecting PriceSet",
                &format!(
                    "INSERT INTO rm_stock{s} (book_id, price_cents, currency, tracked, available, \
                     position) VALUES ($1, $2, $3, FALSE, NULL, $4) \
                     ON CONFLICT (book_id) DO UPDATE SET price_cents = excluded.price_cents, \
                     currency = excluded.currency, position = excluded.position \
                     WHERE rm_stock{s}.position < excluded.position"
                ),
                &[
                    Arg::Text(book_id),
                    Arg::I64(i64::from(price_cents.value())),
                    Arg::Text(currency.into_inner()),
                    p,
                ],
            )
            .await?;
        }
        StockEvent::StockSet { tracked } => {
            tx.exec(
                "projecting StockSet",
                &format!(
                    "INSERT INTO rm_stock{s} (book_id, price_cents, currency, tracked, available, \
                     position) VALUES ($1, NULL, NULL, $2, $3, $4) \
                     ON CONFLICT (book_id) DO UPDATE SET tracked = excluded.tracked, \
                     available = excluded.available, position = excluded.position \
                     WHERE rm_stock{s}.position < excluded.position"
                ),
                &[
                    Arg::Text(book_id),
                    Arg::Bool(tracked.is_some()),
                    Arg::OptI64(tracked.map(i64::from)),
                    p,
                ],
            )
            .await?;
        }
        StockEvent::Restocked { added } => {
            add_available(tx, at, &book_id, i64::from(added), "projecting Restocked").await?;
        }
        StockEvent::StockReserved {
            order_id,
            quantity,
            unit_price_cents,
            ..
        } => {
            let quantity = i64::from(quantity.value());
            add_available(tx, at, &book_id, -quantity, "projecting StockReserved").await?;
            // The line exists from its order's request, which the process records first.
            tx.exec(
                "projecting StockReserved",
                &format!(
                    "INSERT INTO rm_order_lines{s} (order_id, book_id, line_no, quantity, \
                     unit_price_cents, reserved, released, position) \
                     VALUES ($1, $2, 0, $3, $4, TRUE, FALSE, $5) \
                     ON CONFLICT (order_id, book_id) DO UPDATE SET reserved = TRUE, \
                     unit_price_cents = COALESCE(rm_order_lines{s}.unit_price_cents, \
                     excluded.unit_price_cents), position = excluded.position \
                     WHERE rm_order_lines{s}.position < excluded.position"
                ),
                &[
                    Arg::Text(order_id.to_string()),
                    Arg::Text(book_id),
                    Arg::I64(quantity),
                    Arg::I64(i64::from(unit_price_cents)),
                    p,
                ],
            )
            .await?;
        }
        StockEvent::StockReleased { order_id, quantity } => {
            let quantity = i64::from(quantity.value());
            add_available(tx, at, &book_id, quantity, "projecting StockReleased").await?;
            tx.exec(
                "projecting StockReleased",
                &format!(
                    "UPDATE rm_order_lines{s} SET released = TRUE, position = $3 \
                     WHERE order_id = $1 AND book_id = $2 AND position < $3"
                ),
                &[Arg::Text(order_id.to_string()), Arg::Text(book_id), p],
            )
            .await?;
        }
    }
    Ok(())
}

/// Moves a tracked stock's count by `delta` (an untracked one only records the position).
async fn add_available(
    tx: &mut Tx,
    at: &Stamp<'_>,
    book_id: &str,
    delta: i64,
    context: &'static str,
) -> Result<(), ReadModelError> {
    let s = at.s;
    tx.exec(
        context,
        &format!(
            "UPDATE rm_stock{s} SET available = CASE WHEN tracked \
             THEN available + $2 ELSE available END, position = $3 \
             WHERE book_id = $1 AND position < $3"
        ),
        &[
            Arg::Text(book_id.to_string()),
            Arg::I64(delta),
            Arg::I64(at.position),
        ],
    )
    .await?;
    Ok(())
}

/// An event of an order's stream (`order-{order_id}`).
async fn apply_order(
    tx: &mut Tx,
    at: &Stamp<'_>,
    order_id: String,
    event: OrderEvent,
) -> Result<(), ReadModelError> {
    let (s, p) = (at.s, Arg::I64(at.position));
    match event {
        OrderEvent::OrderRequested {
            member,
            lines,
            requested_at,
        } => {
            // The first event of its stream: a conflict is a replay.
            let fresh = tx
                .exec(
                    "projecting OrderRequested",
                    &format!(
                        "INSERT INTO rm_orders{s} (order_id, member_id, status, requested_at, \
                         position) VALUES ($1, $2, 'pending', $3, $4) \
                         ON CONFLICT (order_id) DO NOTHING"
                    ),
                    &[
                        Arg::Text(order_id.clone()),
                        Arg::Text(member.to_string()),
                        Arg::I64(requested_at.as_micros()),
                        p.clone(),
                    ],
                )
                .await?;
            if fresh == 0 {
                return Ok(());
            }
            for (n, line) in lines.iter().enumerate() {
                tx.exec(
                    "projecting OrderRequested",
                    &format!(
                        "INSERT INTO rm_order_lines{s} (order_id, book_id, line_no, quantity, \
                         position) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (order_id, book_id) DO NOTHING"
                    ),
                    &[
                        Arg::Text(order_id.clone()),
                        Arg::Text(line.book_id.to_string()),
                        Arg::I64(n as i64),
                        Arg::I64(i64::from(line.quantity.value())),
                        p.clone(),
                    ],
                )
                .await?;
            }
        }
        OrderEvent::OrderPlaced {
            member,
            lines,
            currency,
            total_cents,
            placed_at,
        } => {
            let bucket = placed_at.as_micros().div_euclid(MICROS_PER_HOUR);
            let fresh = tx
                .exec(
                    "projecting OrderPlaced",
                    &format!(
                        "INSERT INTO rm_orders{s} (order_id, member_id, status, currency, \
                         total_cents, requested_at, placed_at, bucket_hour, position) \
                         VALUES ($1, $2, 'placed', $3, $4, $5, $5, $6, $7) \
                         ON CONFLICT (order_id) DO UPDATE SET status = 'placed', \
                         currency = excluded.currency, total_cents = excluded.total_cents, \
                         placed_at = excluded.placed_at, bucket_hour = excluded.bucket_hour, \
                         position = excluded.position \
                         WHERE rm_orders{s}.position < excluded.position"
                    ),
                    &[
                        Arg::Text(order_id.clone()),
                        Arg::Text(member.to_string()),
                        Arg::Text(currency.into_inner()),
                        Arg::I64(i64::try_from(total_cents).unwrap_or(i64::MAX)),
                        Arg::I64(placed_at.as_micros()),
                        Arg::I64(bucket),
                        p.clone(),
                    ],
                )
                .await?;
            if fresh == 0 {
                return Ok(());
            }
            for (n, line) in lines.iter().enumerate() {
                let quantity = i64::from(line.quantity.value());
                let price = i64::from(line.unit_price_cents);
                tx.exec(
                    "projecting OrderPlaced",
                    &format!(
                        "INSERT INTO rm_order_lines{s} (order_id, book_id, line_no, quantity, \
                         unit_price_cents, position) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (order_id, book_id) DO UPDATE SET \
                         unit_price_cents = excluded.unit_price_cents, \
                         position = excluded.position \
                         WHERE rm_order_lines{s}.position < excluded.position"
                    ),
                    &[
                        Arg::Text(order_id.clone()),
                        Arg::Text(line.book_id.to_string()),
                        Arg::I64(n as i64),
                        Arg::I64(quantity),
                        Arg::I64(price),
                        p.clone(),
                    ],
                )
                .await?;
                tx.exec(
                    "projecting OrderPlaced",
                    &format!(
                        "INSERT INTO rm_sales_buckets{s} (book_id, bucket_hour, units, \
                         revenue_cents) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (book_id, bucket_hour) DO UPDATE SET \
                         units = rm_sales_buckets{s}.units + excluded.units, \
                         revenue_cents = rm_sales_buckets{s}.revenue_cents + excluded.revenue_cents"
                    ),
                    &[
                        Arg::Text(line.book_id.to_string()),
                        Arg::I64(bucket),
                        Arg::I64(quantity),
                        Arg::I64(quantity * price),
                    ],
                )
                .await?;
            }
        }
        OrderEvent::OrderRefused { book_id, code } => {
            tx.exec(
                "projecting OrderRefused",
                &format!(
                    "UPDATE rm_orders{s} SET status = 'refused', refused_book_id = $2, \
                     refusal_code = $3, position = $4 WHERE order_id = $1 AND position < $4"
                ),
                &[
                    Arg::Text(order_id),
                    Arg::OptText(book_id.map(|b| b.to_string())),
                    Arg::Text(code),
                    p,
                ],
            )
            .await?;
        }
        OrderEvent::OrderCancelled {
            at: cancelled_at, ..
        } => {
            let fresh = tx
                .exec(
                    "projecting OrderCancelled",
                    &format!(
                        "UPDATE rm_orders{s} SET status = 'cancelled', cancelled_at = $2, \
                         position = $3 WHERE order_id = $1 AND status = 'placed' \
                         AND position < $3"
                    ),
                    &[
                        Arg::Text(order_id.clone()),
                        Arg::I64(cancelled_at.as_micros()),
                        p,
                    ],
                )
                .await?;
            if fresh == 0 {
                return Ok(());
            }
            // The order's lines leave the bucket of the hour it was placed in. (The `WHERE`
            // also tells SQLite that the `ON` after it starts the upsert, not a join.)
            tx.exec(
                "projecting OrderCancelled",
                &format!(
                    "INSERT INTO rm_sales_buckets{s} (book_id, bucket_hour, units, revenue_cents) \
                     SELECT l.book_id, o.bucket_hour, -l.quantity, \
                     -(l.quantity * COALESCE(l.unit_price_cents, 0)) \
                     FROM rm_order_lines{s} l JOIN rm_orders{s} o ON o.order_id = l.order_id \
                     WHERE l.order_id = $1 AND o.bucket_hour IS NOT NULL \
                     ON CONFLICT (book_id, bucket_hour) DO UPDATE SET \
                     units = rm_sales_buckets{s}.units + excluded.units, \
                     revenue_cents = rm_sales_buckets{s}.revenue_cents + excluded.revenue_cents"
                ),
                &[Arg::Text(order_id)],
            )
            .await?;
        }
    }
    Ok(())
}

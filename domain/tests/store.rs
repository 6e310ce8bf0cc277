//! Given/when/then tests for the bookstore's aggregates: a book's `Stock` (price, tracked stock,
//! reservations) and a member's `Order` (requested, placed or refused, cancelled), one rule per
//! test, their stored event schema, and the value types they use.

use quire_domain::ids::{BookId, OrderId, UserId};
use quire_domain::store::{
    MAX_ORDER_LINES, MAX_STOCK, Order, OrderCommand, OrderEvent, OrderLine, OrderStatus,
    PricedLine, Stock, StockCommand, StockError, StockEvent, check_lines,
};
use quire_domain::testing::{Given, assert_round_trips};
use quire_domain::values::{Currency, PriceCents, Quantity, Timestamp};
use quire_domain::{CommandContext, DomainEvent, EventDecodeError};
use serde_json::json;
use uuid::Uuid;

// Fixtures

fn book(n: u128) -> BookId {
    BookId::from_uuid(Uuid::from_u128(0xb00c + n))
}

fn order(n: u128) -> OrderId {
    OrderId::from_uuid(Uuid::from_u128(0x0de0 + n))
}

fn ada() -> UserId {
    UserId::from_uuid(Uuid::from_u128(0x5e01))
}

fn bob() -> UserId {
    UserId::from_uuid(Uuid::from_u128(0x5e02))
}

fn staff() -> CommandContext {
    CommandContext::admin(UserId::from_uuid(Uuid::from_u128(0x5e99)))
}

fn system() -> CommandContext {
    CommandContext::system()
}

fn q(n: u32) -> Quantity {
    Quantity::parse(n).unwrap()
}

fn cents(n: u32) -> PriceCents {
    PriceCents::parse(n).unwrap()
}

fn usd() -> Currency {
    Currency::usd()
}

fn at(hours: i64) -> Timestamp {
    Timestamp::from_micros(1_700_000_000_000_000 + hours * 3_600_000_000)
}

fn priced(n: u32) -> StockEvent {
    StockEvent::PriceSet {
        price_cents: cents(n),
        currency: usd(),
    }
}

fn reserve(o: u128, member: UserId, n: u32) -> StockCommand {
    StockCommand::Reserve {
        order_id: order(o),
        member,
        quantity: q(n),
    }
}

fn reserved(o: u128, n: u32, price: u32) -> StockEvent {
    StockEvent::StockReserved {
        order_id: order(o),
        quantity: q(n),
        unit_price_cents: price,
        currency: usd(),
    }
}

fn line(b: u128, n: u32) -> OrderLine {
    OrderLine {
        book_id: book(b),
        quantity: q(n),
    }
}

fn priced_line(b: u128, n: u32, price: u32) -> PricedLine {
    PricedLine {
        book_id: book(b),
        quantity: q(n),
        unit_price_cents: price,
    }
}

fn requested(lines: Vec<OrderLine>) -> OrderEvent {
    OrderEvent::OrderRequested {
        member: ada(),
        lines,
        requested_at: at(0),
    }
}

fn placed(lines: Vec<PricedLine>) -> OrderEvent {
    OrderEvent::OrderPlaced {
        member: ada(),
        total_cents: lines.iter().map(PricedLine::subtotal_cents).sum(),
        lines,
        currency: usd(),
        placed_at: at(0),
    }
}

// Stock: prices and counts

#[test]
fn staff_set_a_price_and_setting_it_again_changes_nothing() {
    let stock = Given::<Stock>::nothing()
        .when(
            StockCommand::SetPrice {
                price_cents: cents(1299),
                currency: usd(),
            },
            staff(),
        )
        .then_events(vec![priced(1299)]);
    assert_eq!(stock.price(), Some((cents(1299), &usd())));
    Given::<Stock>::events(vec![priced(1299)])
        .when(
            StockCommand::SetPrice {
                price_cents: cents(1299),
                currency: usd(),
            },
            staff(),
        )
        .then_no_events();
}

#[test]
fn members_cannot_set_prices_or_stock() {
    for command in [
        StockCommand::SetPrice {
            price_cents: cents(1),
            currency: usd(),
        },
        StockCommand::SetStock { tracked: Some(3) },
        StockCommand::Restock { add: 3 },
        StockCommand::Release { order_id: order(1) },
    ] {
        Given::<Stock>::nothing()
            .when(command, CommandContext::member(ada()))
            .then_error("forbidden");
    }
}

#[test]
fn the_currency_defaults_to_usd_on_the_wire() {
    let command: StockCommand =
        serde_json::from_value(json!({"type": "set_price", "price_cents": 500})).unwrap();
    assert_eq!(
        command,
        StockCommand::SetPrice {
            price_cents: cents(500),
            currency: usd()
        }
    );
}

#[test]
fn stock_is_set_tracked_or_untracked_and_bounded() {
    let stock = Given::<Stock>::nothing()
        .when(StockCommand::SetStock { tracked: Some(10) }, staff())
        .then_events(vec![StockEvent::StockSet { tracked: Some(10) }]);
    assert_eq!(stock.available(), Some(10));
    Given::<Stock>::events(vec![StockEvent::StockSet { tracked: Some(10) }])
        .when(StockCommand::SetStock { tracked: None }, staff())
        .then_events(vec![StockEvent::StockSet { tracked: None }]);
    Given::<Stock>::nothing()
        .when(
            StockCommand::SetStock {
                tracked: Some(MAX_STOCK + 1),
            },
            staff(),
        )
        .then_error("invalid_stock");
    // Untracked is the default: setting it again is no change.
    Given::<Stock>::nothing()
        .when(StockCommand::SetStock { tracked: None }, staff())
        .then_no_events();
}

#[test]
fn restocking_adds_to_a_tracked_stock_only() {
    let stock = Given::<Stock>::events(vec![StockEvent::StockSet { tracked: Some(2) }])
        .when(StockCommand::Restock { add: 5 }, staff())
        .then_events(vec![StockEvent::Restocked { added: 5 }]);
    assert_eq!(stock.available(), Some(7));
    Given::<Stock>::nothing()
        .when(StockCommand::Restock { add: 5 }, staff())
        .then_error("stock_untracked");
    Given::<Stock>::events(vec![StockEvent::StockSet { tracked: Some(2) }])
        .when(StockCommand::Restock { add: 0 }, staff())
        .then_error("invalid_stock");
}

// Stock: reservations

#[test]
fn a_reservation_takes_copies_at_the_current_price() {
    let stock = Given::<Stock>::events(vec![
        priced(1299),
        StockEvent::StockSet { tracked: Some(10) },
    ])
    .when(reserve(1, ada(), 3), system())
    .then_events(vec![reserved(1, 3, 1299)]);
    assert_eq!(stock.available(), Some(7));
    assert_eq!(stock.reservation(order(1)), Some(q(3)));
}

#[test]
fn a_book_without_a_price_is_not_for_sale() {
    Given::<Stock>::events(vec![StockEvent::StockSet { tracked: Some(10) }])
        .when(reserve(1, ada(), 1), system())
        .then_error("not_for_sale");
}

#[test]
fn an_untracked_stock_sells_any_quantity() {
    Given::<Stock>::events(vec![priced(500)])
        .when(reserve(1, ada(), 99), system())
        .then_events(vec![reserved(1, 99, 500)]);
}

#[test]
fn too_few_copies_refuse_and_say_how_many_are_left() {
    let error =
        Given::<Stock>::events(vec![priced(500), StockEvent::StockSet { tracked: Some(3) }])
            .when(reserve(1, ada(), 4), system())
            .then_error("out_of_stock");
    assert_eq!(
        error,
        StockError::OutOfStock {
            available: 3,
            requested: 4
        }
    );
    assert_eq!(error.to_string(), "only 3 left (asked for 4)");
    assert_eq!(StockError::available_in(&error.to_string()), Some(3));
    assert_eq!(StockError::available_in("something else"), None);
}

#[test]
fn the_last_copy_goes_to_one_order() {
    let stock =
        Given::<Stock>::events(vec![priced(500), StockEvent::StockSet { tracked: Some(1) }])
            .when(reserve(1, ada(), 1), system())
            .then_events(vec![reserved(1, 1, 500)]);
    assert_eq!(stock.available(), Some(0));
    let given = Given::<Stock>::events(vec![
        priced(500),
        StockEvent::StockSet { tracked: Some(1) },
        reserved(1, 1, 500),
    ]);
    assert_eq!(given.state().available(), Some(0));
    let error = given
        .when(reserve(2, bob(), 1), system())
        .then_error("out_of_stock");
    assert_eq!(error.to_string(), "only 0 left (asked for 1)");
}

#[test]
fn reserving_twice_for_one_order_is_a_no_op_even_after_its_release() {
    let history = vec![priced(500), reserved(1, 2, 500)];
    Given::<Stock>::events(history.clone())
        .when(reserve(1, ada(), 2), system())
        .then_no_events();
    let mut released = history;
    released.push(StockEvent::StockReleased {
        order_id: order(1),
        quantity: q(2),
    });
    Given::<Stock>::events(released)
        .when(reserve(1, ada(), 2), system())
        .then_no_events();
}

#[test]
fn members_reserve_only_for_themselves() {
    Given::<Stock>::events(vec![priced(500)])
        .when(reserve(1, bob(), 1), CommandContext::member(ada()))
        .then_error("forbidden");
    Given::<Stock>::events(vec![priced(500)])
        .when(reserve(1, ada(), 1), CommandContext::member(ada()))
        .then_events(vec![reserved(1, 1, 500)]);
}

#[test]
fn a_release_gives_the_copies_back_once() {
    let history = vec![
        priced(500),
        StockEvent::StockSet { tracked: Some(5) },
        reserved(1, 2, 500),
    ];
    let stock = Given::<Stock>::events(history.clone())
        .when(StockCommand::Release { order_id: order(1) }, system())
        .then_events(vec![StockEvent::StockReleased {
            order_id: order(1),
            quantity: q(2),
        }]);
    assert_eq!(stock.available(), Some(5));
    assert_eq!(stock.reservation(order(1)), None);
    let mut released = history;
    released.push(StockEvent::StockReleased {
        order_id: order(1),
        quantity: q(2),
    });
    Given::<Stock>::events(released)
        .when(StockCommand::Release { order_id: order(1) }, system())
        .then_no_events();
    // An order that never reserved holds nothing to give back.
    Given::<Stock>::events(vec![priced(500)])
        .when(StockCommand::Release { order_id: order(9) }, system())
        .then_no_events();
}

// Orders

fn request(lines: Vec<OrderLine>) -> OrderCommand {
    OrderCommand::Request {
        member: ada(),
        lines,
        requested_at: at(0),
    }
}

fn place(lines: Vec<PricedLine>) -> OrderCommand {
    OrderCommand::Place {
        member: ada(),
        lines,
        currency: usd(),
        placed_at: at(0),
    }
}

#[test]
fn a_member_requests_an_order_for_themselves() {
    let order = Given::<Order>::nothing()
        .when(
            request(vec![line(1, 2), line(2, 1)]),
            CommandContext::member(ada()),
        )
        .then_events(vec![requested(vec![line(1, 2), line(2, 1)])]);
    assert_eq!(order.status(), OrderStatus::Pending);
    assert_eq!(order.member(), Some(ada()));
    Given::<Order>::nothing()
        .when(request(vec![line(1, 2)]), CommandContext::member(bob()))
        .then_error("forbidden");
    Given::<Order>::nothing()
        .when(request(vec![line(1, 2)]), staff())
        .then_events(vec![requested(vec![line(1, 2)])]);
}

#[test]
fn an_order_has_one_to_fifty_lines_each_book_once() {
    Given::<Order>::nothing()
        .when(request(Vec::new()), CommandContext::member(ada()))
        .then_error("invalid_order");
    let many: Vec<OrderLine> = (0..=MAX_ORDER_LINES as u128).map(|b| line(b, 1)).collect();
    let error = Given::<Order>::nothing()
        .when(request(many), CommandContext::member(ada()))
        .then_error("invalid_order");
    assert!(error.to_string().contains("1 to 50 lines"), "{error}");
    let error = Given::<Order>::nothing()
        .when(
            request(vec![line(1, 1), line(2, 1), line(1, 3)]),
            CommandContext::member(ada()),
        )
        .then_error("invalid_order");
    assert!(error.to_string().contains("more than one line"), "{error}");
    let fifty: Vec<OrderLine> = (0..MAX_ORDER_LINES as u128).map(|b| line(b, 99)).collect();
    assert!(check_lines(fifty.iter().map(|l| &l.book_id)).is_ok());
}

#[test]
fn quantities_are_one_to_ninety_nine() {
    assert!(Quantity::parse(0).is_err());
    assert!(Quantity::parse(100).is_err());
    assert_eq!(Quantity::parse(99).unwrap().value(), 99);
    assert_eq!(Quantity::parse(0).unwrap_err().code(), "invalid_quantity");
    let line: Result<OrderLine, _> =
        serde_json::from_value(json!({"book_id": book(1), "quantity": 0}));
    assert!(line.is_err(), "a stored or wire quantity is checked too");
}

#[test]
fn prices_and_currencies_are_checked() {
    assert!(PriceCents::parse(PriceCents::MAX).is_ok());
    assert_eq!(
        PriceCents::parse(PriceCents::MAX + 1).unwrap_err().code(),
        "invalid_price"
    );
    assert_eq!(Currency::parse(" eur ").unwrap().as_str(), "EUR");
    for bad in ["", "US", "USDX", "U$D", "€€€"] {
        assert_eq!(
            Currency::parse(bad).unwrap_err().code(),
            "invalid_currency",
            "{bad:?}"
        );
    }
    assert_eq!(Currency::default().as_str(), "USD");
}

#[test]
fn requesting_again_with_the_same_content_is_a_no_op_and_other_content_conflicts() {
    let history = vec![requested(vec![line(1, 2)])];
    Given::<Order>::events(history.clone())
        .when(request(vec![line(1, 2)]), CommandContext::member(ada()))
        .then_no_events();
    Given::<Order>::events(history)
        .when(request(vec![line(1, 3)]), CommandContext::member(ada()))
        .then_error("order_exists");
}

#[test]
fn placing_records_the_reserved_prices_and_the_total() {
    let lines = vec![priced_line(1, 2, 1299), priced_line(2, 1, 500)];
    let order = Given::<Order>::events(vec![requested(vec![line(1, 2), line(2, 1)])])
        .when(place(lines.clone()), system())
        .then_events(vec![OrderEvent::OrderPlaced {
            member: ada(),
            lines: lines.clone(),
            currency: usd(),
            total_cents: 2 * 1299 + 500,
            placed_at: at(0),
        }]);
    assert_eq!(order.status(), OrderStatus::Placed);
    assert_eq!(order.lines(), lines.as_slice());
    // Again: a no-op.
    Given::<Order>::events(vec![
        requested(vec![line(1, 2), line(2, 1)]),
        placed(lines.clone()),
    ])
    .when(place(lines), system())
    .then_no_events();
}

#[test]
fn only_the_process_places_and_only_the_lines_requested() {
    Given::<Order>::events(vec![requested(vec![line(1, 2)])])
        .when(
            place(vec![priced_line(1, 2, 1)]),
            CommandContext::member(ada()),
        )
        .then_error("forbidden");
    Given::<Order>::events(vec![requested(vec![line(1, 2)])])
        .when(place(vec![priced_line(1, 3, 1)]), system())
        .then_error("invalid_order");
    Given::<Order>::nothing()
        .when(place(vec![priced_line(1, 3, 1)]), system())
        .then_error("order_not_found");
}

#[test]
fn a_refused_order_ends_and_cannot_be_placed() {
    let refused = OrderEvent::OrderRefused {
        book_id: Some(book(1)),
        code: "out_of_stock".into(),
    };
    let order = Given::<Order>::events(vec![requested(vec![line(1, 2)])])
        .when(
            OrderCommand::Refuse {
                book_id: Some(book(1)),
                code: "out_of_stock".into(),
            },
            system(),
        )
        .then_events(vec![refused.clone()]);
    assert_eq!(order.status(), OrderStatus::Refused);
    let history = vec![requested(vec![line(1, 2)]), refused];
    Given::<Order>::events(history.clone())
        .when(place(vec![priced_line(1, 2, 1)]), system())
        .then_error("order_not_placed");
    Given::<Order>::events(history.clone())
        .when(
            OrderCommand::Refuse {
                book_id: Some(book(1)),
                code: "out_of_stock".into(),
            },
            system(),
        )
        .then_no_events();
    Given::<Order>::events(history)
        .when(
            OrderCommand::Cancel { at: at(1) },
            CommandContext::member(ada()),
        )
        .then_error("order_not_placed");
}

#[test]
fn the_member_or_staff_cancel_a_placed_order_once() {
    let history = vec![
        requested(vec![line(1, 2)]),
        placed(vec![priced_line(1, 2, 700)]),
    ];
    let order = Given::<Order>::events(history.clone())
        .when(
            OrderCommand::Cancel { at: at(3) },
            CommandContext::member(ada()),
        )
        .then_events(vec![OrderEvent::OrderCancelled {
            by: Some(ada()),
            at: at(3),
        }]);
    assert_eq!(order.status(), OrderStatus::Cancelled);
    Given::<Order>::events(history.clone())
        .when(
            OrderCommand::Cancel { at: at(3) },
            CommandContext::member(bob()),
        )
        .then_error("forbidden");
    Given::<Order>::events(history.clone())
        .when(OrderCommand::Cancel { at: at(3) }, staff())
        .then_events(vec![OrderEvent::OrderCancelled {
            by: staff().principal.user_id,
            at: at(3),
        }]);
    let mut cancelled = history;
    cancelled.push(OrderEvent::OrderCancelled {
        by: Some(ada()),
        at: at(3),
    });
    Given::<Order>::events(cancelled)
        .when(
            OrderCommand::Cancel { at: at(4) },
            CommandContext::member(ada()),
        )
        .then_no_events();
}

#[test]
fn a_pending_order_cannot_be_cancelled_yet_and_an_unknown_one_is_not_found() {
    Given::<Order>::events(vec![requested(vec![line(1, 2)])])
        .when(
            OrderCommand::Cancel { at: at(1) },
            CommandContext::member(ada()),
        )
        .then_error("order_pending");
    Given::<Order>::nothing()
        .when(
            OrderCommand::Cancel { at: at(1) },
            CommandContext::member(ada()),
        )
        .then_error("order_not_found");
}

// Stored schema

#[test]
fn every_event_round_trips_through_its_stored_form() {
    for event in [
        priced(1),
        StockEvent::StockSet { tracked: None },
        StockEvent::StockSet { tracked: Some(0) },
        StockEvent::Restocked { added: 4 },
        reserved(1, 2, 3),
        StockEvent::StockReleased {
            order_id: order(1),
            quantity: q(2),
        },
    ] {
        assert_round_trips(&event);
    }
    for event in [
        requested(vec![line(1, 2)]),
        placed(vec![priced_line(1, 2, 3)]),
        OrderEvent::OrderRefused {
            book_id: None,
            code: "mixed_currencies".into(),
        },
        OrderEvent::OrderCancelled {
            by: None,
            at: at(1),
        },
    ] {
        assert_round_trips(&event);
    }
}

#[test]
fn stored_payloads_are_pinned() {
    let payload = reserved(1, 2, 1299).to_payload();
    assert_eq!(
        payload,
        json!({
            "order_id": order(1),
            "quantity": 2,
            "unit_price_cents": 1299,
            "currency": "USD",
        })
    );
    let payload = placed(vec![priced_line(1, 2, 1299)]).to_payload();
    assert_eq!(
        payload,
        json!({
            "member": ada(),
            "lines": [{"book_id": book(1), "quantity": 2, "unit_price_cents": 1299}],
            "currency": "USD",
            "total_cents": 2598,
            "placed_at": at(0),
        })
    );
}

#[test]
fn unknown_types_and_versions_are_refused() {
    assert!(matches!(
        StockEvent::from_stored("StockReserved", 2, &json!({})),
        Err(EventDecodeError::UnsupportedVersion { .. })
    ));
    assert!(matches!(
        OrderEvent::from_stored("OrderTeleported", 1, &json!({})),
        Err(EventDecodeError::UnknownType { .. })
    ));
    assert!(matches!(
        OrderEvent::from_stored("OrderPlaced", 1, &json!({"member": 1})),
        Err(EventDecodeError::Malformed { .. })
    ));
}

#[test]
fn stream_ids_name_their_category() {
    assert_eq!(book(1).stock_stream_id(), format!("stock-{}", book(1)));
    assert_eq!(order(1).stream_id(), format!("order-{}", order(1)));
}

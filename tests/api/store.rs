//! The bookstore over real HTTP on both backends: prices and stock set by staff, orders priced
//! from the catalogue when placed, refusals that name the book and what is left, cancels that
//! give copies back and take sales off the bestseller list, a hundred orders racing for the last
//! ten copies, keyed retries, processes a crash cut short (completed by a keyed retry or by the
//! scheduler), bestseller windows on a moved clock with their tie-breaks and genre filter, and a
//! member's orders page by page.

use std::time::Duration;

use futures::future::join_all;
use quire_actors::clock::Clock;
use quire_domain::ids::{BookId, OrderId, UserId};
use quire_domain::store::{OrderEvent, OrderLine, StockEvent};
use quire_domain::values::{Currency, Quantity};
use quire_domain::{DomainEvent, Principal};
use quire_store::{
    AppendRequest, EventMetadata, ExpectedVersion, NewEvent, PendingCommand, RecordedEvent,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::helpers::{
    ADMIN_PASSWORD, Backend, TestApp, assert_problem, count_of, created_id, eventually, header,
    json_of, on_backends, spawn_app, spawn_with_clock,
};

/// How long a test waits for the scheduler to act on a moved clock.
const SCHEDULER_WAIT: Duration = Duration::from_secs(15);

// Helpers

/// Adds a book with a genre as the admin; returns its id.
async fn add_book(app: &TestApp, title: &str, author: &str, genre: &str) -> String {
    let response = app
        .admin()
        .post(app.url("/books"))
        .json(&json!({"title": title, "author": author, "genre": genre}))
        .send()
        .await
        .unwrap();
    created_id(response).await
}

async fn put_price(app: &TestApp, book: &str, cents: u32) -> Value {
    let response = app
        .admin()
        .put(app.url(&format!("/books/{book}/price")))
        .json(&json!({ "price_cents": cents }))
        .send()
        .await
        .unwrap();
    json_of(response, StatusCode::OK).await
}

async fn put_stock(app: &TestApp, book: &str, stock: Option<u32>) -> Value {
    let response = app
        .admin()
        .put(app.url(&format!("/books/{book}/stock")))
        .json(&json!({ "stock": stock }))
        .send()
        .await
        .unwrap();
    json_of(response, StatusCode::OK).await
}

/// A book for sale at `cents`, with `stock` copies (untracked when `None`).
async fn for_sale(app: &TestApp, title: &str, cents: u32, stock: Option<u32>) -> String {
    let book = app.add_book(title).await;
    put_price(app, &book, cents).await;
    if stock.is_some() {
        put_stock(app, &book, stock).await;
    }
    book
}

async fn stock_of(app: &TestApp, book: &str) -> Value {
    app.get_json(&format!("/books/{book}/stock")).await
}

/// `POST /orders` with `lines` ([(book, quantity)]) for `user` with a bearer token.
async fn order<B: AsRef<str>>(
    app: &TestApp,
    token: &str,
    user: Option<&str>,
    lines: &[(B, u32)],
    key: Option<&str>,
) -> reqwest::Response {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(book, quantity)| json!({"book_id": book.as_ref(), "quantity": quantity}))
        .collect();
    let mut body = json!({ "lines": lines });
    if let Some(user) = user {
        body["user_id"] = json!(user);
    }
    let mut request = app.bearer(token).post(app.url("/orders")).json(&body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap()
}

/// `GET /orders/{id}` with a bearer token.
async fn get_order(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.bearer(token)
        .get(app.url(&format!("/orders/{id}")))
        .send()
        .await
        .unwrap()
}

/// `POST /orders/{id}/cancel` with a bearer token, under the `Idempotency-Key` `key` if any.
async fn cancel_order(
    app: &TestApp,
    token: &str,
    id: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .bearer(token)
        .post(app.url(&format!("/orders/{id}/cancel")));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap()
}

/// An order that must be placed: the order.
async fn placed(response: reqwest::Response) -> Value {
    let location = header(&response, "location");
    let body = json_of(response, StatusCode::CREATED).await;
    assert_eq!(
        location,
        format!("/orders/{}", body["id"].as_str().unwrap())
    );
    assert_eq!(body["status"], "placed");
    body
}

async fn stock_events(app: &TestApp, book: &str) -> Vec<RecordedEvent> {
    app.stream_events(&book.parse::<BookId>().unwrap().stock_stream_id())
        .await
}

async fn order_events(app: &TestApp, order: &str) -> Vec<RecordedEvent> {
    app.stream_events(&order.parse::<OrderId>().unwrap().stream_id())
        .await
}

async fn bestsellers(app: &TestApp, query: &str) -> Value {
    app.get_json(&format!("/bestsellers?{query}")).await
}

/// The titles of a bestseller answer, with their units, in rank order.
fn ranking(list: &Value) -> Vec<(String, u64)> {
    let items = list["items"].as_array().unwrap();
    for (n, item) in items.iter().enumerate() {
        assert_eq!(item["rank"], n + 1, "{list}");
    }
    items
        .iter()
        .map(|i| {
            (
                i["title"].as_str().unwrap().to_string(),
                i["units"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn ranked(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(t, u)| (t.to_string(), *u)).collect()
}

/// Appends `event` to `stream` as the command `command_id` recorded it: what a step that ran
/// before a crash leaves behind.
async fn append_step(app: &TestApp, stream: String, command_id: Uuid, event: &impl DomainEvent) {
    let version = app.stream_events(&stream).await.len() as u64;
    app.store
        .append(AppendRequest {
            stream_id: stream,
            expected: ExpectedVersion::Exact(version),
            events: vec![NewEvent {
                event_id: Uuid::new_v5(&command_id, &0u64.to_be_bytes()),
                event_type: event.event_type().to_string(),
                schema_version: event.schema_version(),
                payload: event.to_payload(),
                metadata: EventMetadata::default(),
            }],
            command: Some(PendingCommand {
                command_id,
                fingerprint: None,
                rejection: None,
            }),
        })
        .await
        .unwrap();
}

fn line(book: &str, quantity: u32) -> OrderLine {
    OrderLine {
        book_id: book.parse().unwrap(),
        quantity: Quantity::parse(quantity).unwrap(),
    }
}

/// Records what an order process leaves when it crashes right after reserving its first line:
/// the request (under `request_id`) and that line's reservation (under its step id).
async fn crash_after_first_reservation(
    app: &TestApp,
    order_id: OrderId,
    request_id: Uuid,
    member: &str,
    lines: &[(&str, u32)],
    price: u32,
    at: quire_domain::values::Timestamp,
) {
    append_step(
        app,
        order_id.stream_id(),
        request_id,
        &OrderEvent::OrderRequested {
            member: member.parse().unwrap(),
            lines: lines.iter().map(|(b, q)| line(b, *q)).collect(),
            requested_at: at,
        },
    )
    .await;
    let (book, quantity) = lines[0];
    append_step(
        app,
        book.parse::<BookId>().unwrap().stock_stream_id(),
        quire_actors::lending::step_id(order_id.as_uuid(), &format!("reserve {book}")),
        &StockEvent::StockReserved {
            order_id,
            quantity: Quantity::parse(quantity).unwrap(),
            unit_price_cents: price,
            currency: Currency::usd(),
        },
    )
    .await;
}

// Tests

async fn staff_set_prices_and_stock(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = app.add_book("Price Me").await;
    let fresh = stock_of(&app, &book).await;
    assert_eq!(
        fresh,
        json!({"book_id": book, "for_sale": false, "price_cents": null, "currency": null,
               "tracked": false, "available": null})
    );

    // Only staff.
    let (_, token) = app.member_token("shopper").await;
    let refused = app
        .bearer(&token)
        .put(app.url(&format!("/books/{book}/price")))
        .json(&json!({"price_cents": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    let anonymous = app
        .client
        .put(app.url(&format!("/books/{book}/stock")))
        .json(&json!({"stock": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // A price, its currency normalized; read back with the consistency token.
    let response = app
        .admin()
        .put(app.url(&format!("/books/{book}/price")))
        .json(&json!({"price_cents": 1299, "currency": "usd"}))
        .send()
        .await
        .unwrap();
    let token_header = header(&response, "consistency-token");
    let priced = json_of(response, StatusCode::OK).await;
    assert_eq!(priced["price_cents"], 1299);
    assert_eq!(priced["currency"], "USD");
    assert_eq!(priced["for_sale"], true);
    let read = app
        .client
        .get(app.url(&format!("/books/{book}/stock")))
        .header("consistency-token", token_header)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(read, StatusCode::OK).await, priced);

    // Stock: tracked, then untracked again.
    let tracked = put_stock(&app, &book, Some(10)).await;
    assert_eq!(
        (tracked["tracked"].clone(), tracked["available"].clone()),
        (json!(true), json!(10))
    );
    let restocked = app
        .admin()
        .post(app.url(&format!("/books/{book}/stock/restock")))
        .json(&json!({"add": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(restocked, StatusCode::OK).await["available"], 15);
    let zero = put_stock(&app, &book, Some(0)).await;
    assert_eq!(zero["for_sale"], false, "no copies left: not for sale");
    let untracked = put_stock(&app, &book, None).await;
    assert_eq!(untracked["tracked"], false);
    assert_eq!(untracked["available"], Value::Null);
    let untracked_restock = app
        .admin()
        .post(app.url(&format!("/books/{book}/stock/restock")))
        .json(&json!({"add": 5}))
        .send()
        .await
        .unwrap();
    assert_problem(untracked_restock, StatusCode::CONFLICT, "stock_untracked").await;

    // Setting the same price again records nothing.
    put_price(&app, &book, 1299).await;
    assert_eq!(count_of(&stock_events(&app, &book).await, "PriceSet"), 1);

    // Bad input, unknown books.
    for (path, body) in [
        ("price", json!({"price_cents": 100_000_001})),
        ("price", json!({"price_cents": 5, "currency": "dollars"})),
        ("price", json!({"price_cents": -5})),
        ("stock", json!({})),
        ("stock", json!({"stock": -1})),
        ("stock", json!({"stock": 1_000_001})),
    ] {
        let response = app
            .admin()
            .put(app.url(&format!("/books/{book}/{path}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}"
        );
    }
    let unknown = BookId::new();
    let response = app
        .client
        .get(app.url(&format!("/books/{unknown}/stock")))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app
        .admin()
        .put(app.url(&format!("/books/{unknown}/price")))
        .json(&json!({"price_cents": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
}

async fn orders_are_priced_from_the_catalogue_when_placed(backend: Backend) {
    let app = spawn_app(backend).await;
    let dune = for_sale(&app, "Dune", 1299, Some(5)).await;
    let emma = for_sale(&app, "Emma", 500, None).await;
    let (member, token) = app.member_token("reader").await;

    let first = placed(order(&app, &token, None, &[(&dune, 2), (&emma, 1)], None).await).await;
    assert_eq!(first["user_id"], member.id.as_str());
    assert_eq!(first["currency"], "USD");
    assert_eq!(first["total_cents"], 2 * 1299 + 500);
    assert_eq!(
        first["lines"],
        json!([
            {"book_id": dune, "quantity": 2, "unit_price_cents": 1299, "subtotal_cents": 2598},
            {"book_id": emma, "quantity": 1, "unit_price_cents": 500, "subtotal_cents": 500},
        ])
    );
    let placed_at = OffsetDateTime::parse(first["placed_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!(
        (OffsetDateTime::now_utc() - placed_at)
            .whole_seconds()
            .abs()
            < 60
    );
    assert_eq!(first["cancelled_at"], Value::Null);
    assert_eq!(stock_of(&app, &dune).await["available"], 3);

    // A new price applies to new orders only.
    put_price(&app, &dune, 1500).await;
    let id = first["id"].as_str().unwrap();
    let again = json_of(get_order(&app, &token, id).await, StatusCode::OK).await;
    assert_eq!(again, first, "a placed order keeps its prices");
    let second = placed(order(&app, &token, None, &[(&dune, 1)], None).await).await;
    assert_eq!(second["lines"][0]["unit_price_cents"], 1500);
    assert_eq!(second["total_cents"], 1500);

    // Out of stock: 409 naming the book and what is left; nothing is held.
    let refused = order(&app, &token, None, &[(&emma, 1), (&dune, 3)], None).await;
    let problem = assert_problem(refused, StatusCode::CONFLICT, "out_of_stock").await;
    assert_eq!(problem["book_id"], dune.as_str());
    assert_eq!(problem["available"], 2);
    assert_eq!(problem["requested"], 3);
    assert!(
        problem["detail"].as_str().unwrap().contains("only 2 left"),
        "{problem}"
    );
    let emma_events = stock_events(&app, &emma).await;
    assert_eq!(count_of(&emma_events, "StockReserved"), 2);
    assert_eq!(
        count_of(&emma_events, "StockReleased"),
        1,
        "the line reserved before the refusal was given back"
    );
    assert_eq!(stock_of(&app, &dune).await["available"], 2);

    // A book without a price is not for sale.
    let unpriced = app.add_book("Not Yet").await;
    let refused = order(&app, &token, None, &[(&unpriced, 1)], None).await;
    let problem = assert_problem(refused, StatusCode::CONFLICT, "not_for_sale").await;
    assert_eq!(problem["book_id"], unpriced.as_str());

    // Bad lines are 422 and name the line.
    let admin = app.token("admin", ADMIN_PASSWORD).await;
    let many: Vec<String> = (0..51).map(|_| BookId::new().to_string()).collect();
    let many: Vec<(&str, u32)> = many.iter().map(|b| (b.as_str(), 1)).collect();
    let unknown = BookId::new().to_string();
    for (lines, field) in [
        (Vec::new(), "lines"),
        (many, "lines"),
        (vec![(dune.as_str(), 0)], "lines[0].quantity"),
        (vec![(dune.as_str(), 100)], "lines[0].quantity"),
        (
            vec![(dune.as_str(), 1), (dune.as_str(), 2)],
            "lines[1].book_id",
        ),
        (
            vec![(emma.as_str(), 1), ("not-a-book", 1)],
            "lines[1].book_id",
        ),
        (vec![(unknown.as_str(), 1)], "lines[0].book_id"),
    ] {
        let response = order(&app, &token, None, &lines, None).await;
        let problem = assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }

    // Members order for themselves; admins for anyone.
    let other = app.signup("someone").await;
    let response = order(&app, &token, Some(other.id.as_str()), &[(&emma, 1)], None).await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    let for_other =
        placed(order(&app, &admin, Some(other.id.as_str()), &[(&emma, 1)], None).await).await;
    assert_eq!(for_other["user_id"], other.id.as_str());
    // Another member's order is nobody else's business.
    let response = get_order(&app, &token, for_other["id"].as_str().unwrap()).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
}

async fn a_cancel_gives_copies_back_and_takes_sales_off_the_list(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = for_sale(&app, "Returned Goods", 1000, Some(3)).await;
    let keeper = for_sale(&app, "Kept Goods", 1000, None).await;
    let (member, token) = app.member_token("changes-mind").await;

    let bought = placed(order(&app, &token, None, &[(&book, 2), (&keeper, 1)], None).await).await;
    assert_eq!(stock_of(&app, &book).await["available"], 1);
    let week = bestsellers(&app, "window=week").await;
    assert_eq!(
        ranking(&week),
        ranked(&[("Returned Goods", 2), ("Kept Goods", 1)])
    );
    assert_eq!(week["items"][0]["revenue_cents"], 2000);

    // Someone else may not cancel it.
    let id = bought["id"].as_str().unwrap();
    let (_, stranger) = app.member_token("stranger").await;
    let response = cancel_order(&app, &stranger, id, None).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;

    let cancel = || cancel_order(&app, &token, id, None);
    let cancelled = json_of(cancel().await, StatusCode::OK).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["cancelled_at"].is_string());
    assert_eq!(cancelled["total_cents"], bought["total_cents"]);
    assert_eq!(stock_of(&app, &book).await["available"], 3);
    assert_eq!(
        ranking(&bestsellers(&app, "window=week").await),
        Vec::<(String, u64)>::new(),
        "a cancelled order's sales leave every list"
    );
    assert_eq!(
        ranking(&bestsellers(&app, "window=all").await),
        Vec::<(String, u64)>::new()
    );

    // Again: 200, the same order, no new events.
    let events = (
        order_events(&app, id).await.len(),
        stock_events(&app, &book).await.len(),
    );
    let again = json_of(cancel().await, StatusCode::OK).await;
    assert_eq!(again, cancelled);
    assert_eq!(
        (
            order_events(&app, id).await.len(),
            stock_events(&app, &book).await.len()
        ),
        events
    );
    assert_eq!(
        count_of(&stock_events(&app, &book).await, "StockReleased"),
        1
    );

    // Staff may cancel anyone's order.
    let second = placed(order(&app, &token, None, &[(&book, 1)], None).await).await;
    let response = app
        .admin()
        .post(app.url(&format!(
            "/orders/{}/cancel",
            second["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(response, StatusCode::OK).await["status"],
        "cancelled"
    );
    assert_eq!(stock_of(&app, &book).await["available"], 3);

    // Rebuilt from the log (shadow tables, then a swap), the read model says the same.
    let third = placed(order(&app, &token, None, &[(&keeper, 4)], None).await).await;
    let path = format!("/orders/{}", third["id"].as_str().unwrap());
    let mine = format!("/users/{}/orders", member.id);
    let read = async || {
        let order = app.admin().get(app.url(&path)).send().await.unwrap();
        let orders = app.admin().get(app.url(&mine)).send().await.unwrap();
        (
            stock_of(&app, &book).await,
            stock_of(&app, &keeper).await,
            bestsellers(&app, "window=all").await,
            json_of(order, StatusCode::OK).await,
            json_of(orders, StatusCode::OK).await,
        )
    };
    let before = read().await;
    assert_eq!(
        ranking(&before.2),
        ranked(&[("Kept Goods", 4)]),
        "only the standing order counts"
    );
    quire_projections::rebuild(
        &app.store,
        &app.read,
        quire_projections::ProjectionName::Store,
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(read().await, before);
}

async fn a_hundred_orders_race_for_the_last_ten_copies(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = for_sale(&app, "Last Ten", 2500, Some(10)).await;
    let members = join_all((0..100).map(|i| {
        let app = &app;
        async move { app.enrol(&format!("Buyer {i}")).await }
    }))
    .await;
    let admin = app.token("admin", ADMIN_PASSWORD).await;

    let outcomes = join_all(members.iter().map(|member| {
        let (app, admin, book) = (&app, &admin, &book);
        async move {
            let response = order(app, admin, Some(member.as_str()), &[(book, 1)], None).await;
            if response.status() == StatusCode::CREATED {
                Some(placed(response).await)
            } else {
                let problem = assert_problem(response, StatusCode::CONFLICT, "out_of_stock").await;
                assert_eq!(problem["book_id"], book.as_str());
                assert_eq!(problem["available"], 0);
                None
            }
        }
    }))
    .await;
    let winners: Vec<&Value> = outcomes.iter().flatten().collect();
    assert_eq!(winners.len(), 10, "exactly the last ten copies are sold");
    assert_eq!(outcomes.iter().filter(|o| o.is_none()).count(), 90);
    let stock = stock_of(&app, &book).await;
    assert_eq!(stock["available"], 0);
    assert_eq!(stock["for_sale"], false);
    let events = stock_events(&app, &book).await;
    assert_eq!(count_of(&events, "StockReserved"), 10);
    assert_eq!(count_of(&events, "StockReleased"), 0);
    // Each winner's order is theirs, and the list counts ten.
    for (member, outcome) in members.iter().zip(&outcomes) {
        if let Some(order) = outcome {
            assert_eq!(order["user_id"], member.as_str());
        }
    }
    assert_eq!(
        ranking(&bestsellers(&app, "window=day").await),
        ranked(&[("Last Ten", 10)])
    );
}

async fn keyed_retries_give_the_same_order_and_no_new_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = for_sale(&app, "Once", 800, Some(20)).await;
    let (_, token) = app.member_token("careful").await;

    // Sequential retries.
    let first = placed(order(&app, &token, None, &[(&book, 2)], Some("order-1")).await).await;
    let head = app.head().await;
    let retry = placed(order(&app, &token, None, &[(&book, 2)], Some("order-1")).await).await;
    assert_eq!(retry, first, "the retry answers the first order");
    assert_eq!(app.head().await, head, "a retry appends nothing");
    let id = first["id"].as_str().unwrap();
    let events = order_events(&app, id).await;
    assert_eq!(
        events
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["OrderRequested", "OrderPlaced"]
    );
    assert_eq!(
        count_of(&stock_events(&app, &book).await, "StockReserved"),
        1
    );

    // Ten concurrent attempts with one key.
    let replies = join_all((0..10).map(|_| {
        let (app, token, book) = (&app, &token, &book);
        async move { placed(order(app, token, None, &[(book, 1)], Some("order-2")).await).await }
    }))
    .await;
    assert!(
        replies.iter().all(|reply| *reply == replies[0]),
        "{replies:#?}"
    );
    assert_eq!(
        count_of(&stock_events(&app, &book).await, "StockReserved"),
        2
    );
    assert_eq!(stock_of(&app, &book).await["available"], 17);

    // A refused keyed order replays its refusal, even once copies are back.
    let response = order(&app, &token, None, &[(&book, 18)], Some("order-3")).await;
    assert_problem(response, StatusCode::CONFLICT, "out_of_stock").await;
    put_stock(&app, &book, Some(50)).await;
    let response = order(&app, &token, None, &[(&book, 18)], Some("order-3")).await;
    let problem = assert_problem(response, StatusCode::CONFLICT, "out_of_stock").await;
    assert_eq!(problem["available"], 17, "the first attempt's answer");
    // A new key is a new order.
    placed(order(&app, &token, None, &[(&book, 18)], Some("order-4")).await).await;

    // A keyed cancel, repeated.
    let cancel = || cancel_order(&app, &token, id, Some("cancel-1"));
    let cancelled = json_of(cancel().await, StatusCode::OK).await;
    let head = app.head().await;
    assert_eq!(json_of(cancel().await, StatusCode::OK).await, cancelled);
    assert_eq!(app.head().await, head);
}

async fn interrupted_orders_are_finished_by_a_keyed_retry_or_the_scheduler(backend: Backend) {
    let (app, clock) = spawn_with_clock(backend).await;
    let plenty = for_sale(&app, "Plenty", 1000, Some(10)).await;
    let scarce = for_sale(&app, "Scarce", 700, Some(0)).await;
    let (member, token) = app.member_token("crashed").await;
    let user: UserId = member.id.parse().unwrap();
    let keyed = |key: &str| {
        let command_id = quire_api::extract::command_id(
            &Principal::member(user),
            &format!("POST /orders {user}"),
            Some(key),
        );
        (
            command_id,
            OrderId::from_uuid(Uuid::new_v5(&command_id, b"order")),
        )
    };

    // A crash after reserving the first line of an order whose second line is out of stock:
    // the retry with the key gives the reservation back and answers the refusal.
    let (request_id, order_id) = keyed("crash-1");
    let lines = [(plenty.as_str(), 2), (scarce.as_str(), 1)];
    crash_after_first_reservation(
        &app,
        order_id,
        request_id,
        &member.id,
        &lines,
        1000,
        clock.now(),
    )
    .await;
    eventually("the reservation shows", SCHEDULER_WAIT, async || {
        stock_of(&app, &plenty).await["available"] == 8
    })
    .await;
    let response = order(&app, &token, None, &lines, Some("crash-1")).await;
    let problem = assert_problem(response, StatusCode::CONFLICT, "out_of_stock").await;
    assert_eq!(problem["book_id"], scarce.as_str());
    assert_eq!(stock_of(&app, &plenty).await["available"], 10, "released");
    let events = stock_events(&app, &plenty).await;
    assert_eq!(count_of(&events, "StockReserved"), 1);
    assert_eq!(count_of(&events, "StockReleased"), 1);

    // The same crash where every line can be had: the retry places the order, with the
    // reservation made before the crash (no second one).
    put_stock(&app, &scarce, Some(5)).await;
    let (request_id, order_id) = keyed("crash-2");
    crash_after_first_reservation(
        &app,
        order_id,
        request_id,
        &member.id,
        &lines,
        1000,
        clock.now(),
    )
    .await;
    let finished = placed(order(&app, &token, None, &lines, Some("crash-2")).await).await;
    assert_eq!(finished["id"], order_id.to_string());
    assert_eq!(finished["total_cents"], 2 * 1000 + 700);
    assert_eq!(stock_of(&app, &plenty).await["available"], 8);
    assert_eq!(stock_of(&app, &scarce).await["available"], 4);

    // Nobody retries: once the request is older than `resume_after_secs`, the scheduler
    // completes it.
    let orphan = OrderId::new();
    crash_after_first_reservation(
        &app,
        orphan,
        Uuid::now_v7(),
        &member.id,
        &lines,
        1000,
        clock.now(),
    )
    .await;
    clock.advance_seconds(120);
    eventually(
        "the scheduler places the interrupted order",
        SCHEDULER_WAIT,
        async || {
            let response = get_order(&app, &token, &orphan.to_string()).await;
            let body: Value = response.json().await.unwrap();
            body["status"] == "placed"
        },
    )
    .await;
    assert_eq!(stock_of(&app, &plenty).await["available"], 6);
    assert_eq!(stock_of(&app, &scarce).await["available"], 3);

    // A cancel cut short before its releases: the scheduler gives the copies back.
    let bought = placed(order(&app, &token, None, &[(&plenty, 3)], None).await).await;
    let bought: OrderId = bought["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(stock_of(&app, &plenty).await["available"], 3);
    append_step(
        &app,
        bought.stream_id(),
        Uuid::now_v7(),
        &OrderEvent::OrderCancelled {
            by: Some(user),
            at: clock.now(),
        },
    )
    .await;
    eventually(
        "the scheduler releases the cancelled order's copies",
        SCHEDULER_WAIT,
        async || stock_of(&app, &plenty).await["available"] == 6,
    )
    .await;
}

async fn bestseller_windows_roll_with_the_clock(backend: Backend) {
    let (app, clock) = spawn_with_clock(backend).await;
    let mut books = Vec::new();
    for (title, genre, cents) in [
        ("Alpha", "fiction", 1000),
        ("Beta", "fiction", 2000),
        ("Gamma", "fiction", 1000),
        ("Epsilon", "fiction", 1000),
        ("Delta", "Poetry", 500),
    ] {
        let book = add_book(&app, title, &format!("{title} Author"), genre).await;
        put_price(&app, &book, cents).await;
        books.push(book);
    }
    let names: Vec<&str> = books.iter().map(String::as_str).collect();
    let [alpha, beta, gamma, epsilon, delta] = names[..] else {
        unreachable!()
    };
    let admin = app.token("admin", ADMIN_PASSWORD).await;
    let buyer = app.enrol("Buyer").await;
    let buy = async |lines: &[(&str, u32)]| {
        placed(order(&app, &admin, Some(buyer.as_str()), lines, None).await).await;
    };

    // Day 0: Alpha 3, Delta 2, and three books with one each: Beta (more revenue) first, then
    // Epsilon and Gamma (same revenue) by title.
    buy(&[(alpha, 2), (beta, 1), (delta, 2)]).await;
    buy(&[(alpha, 1), (gamma, 1), (epsilon, 1)]).await;
    let day0 = ranked(&[
        ("Alpha", 3),
        ("Delta", 2),
        ("Beta", 1),
        ("Epsilon", 1),
        ("Gamma", 1),
    ]);
    let week = bestsellers(&app, "").await;
    assert_eq!(week["window"], "week", "week is the default");
    assert_eq!(ranking(&week), day0);
    let top = &week["items"][0];
    assert_eq!(top["book_id"], alpha);
    assert_eq!(top["author"], "Alpha Author");
    assert_eq!(top["authors"], json!(["Alpha Author"]));
    assert_eq!(top["genres"], json!(["fiction"]));
    assert_eq!(top["revenue_cents"], 3000);
    assert_eq!(ranking(&bestsellers(&app, "window=day").await), day0);
    assert_eq!(
        ranking(&bestsellers(&app, "window=week&genre=poetry").await),
        ranked(&[("Delta", 2)])
    );
    assert_eq!(
        ranking(&bestsellers(&app, "window=week&limit=2").await),
        ranked(&[("Alpha", 3), ("Delta", 2)])
    );

    // Two days on: gone from the day's list, still in the week's.
    clock.advance_days(2);
    assert!(ranking(&bestsellers(&app, "window=day").await).is_empty());
    assert_eq!(ranking(&bestsellers(&app, "window=week").await), day0);
    buy(&[(gamma, 5)]).await;
    assert_eq!(
        ranking(&bestsellers(&app, "window=day").await),
        ranked(&[("Gamma", 5)])
    );
    assert_eq!(
        ranking(&bestsellers(&app, "window=week").await),
        ranked(&[
            ("Gamma", 6),
            ("Alpha", 3),
            ("Delta", 2),
            ("Beta", 1),
            ("Epsilon", 1)
        ])
    );

    // Eight days after the first orders: out of the week, in the month and in all time.
    clock.advance_days(6);
    assert_eq!(
        ranking(&bestsellers(&app, "window=week").await),
        ranked(&[("Gamma", 5)])
    );
    let all_time = ranked(&[
        ("Gamma", 6),
        ("Alpha", 3),
        ("Delta", 2),
        ("Beta", 1),
        ("Epsilon", 1),
    ]);
    assert_eq!(ranking(&bestsellers(&app, "window=month").await), all_time);
    assert_eq!(ranking(&bestsellers(&app, "window=all").await), all_time);

    // Forty days on: only all time remembers.
    clock.advance_days(32);
    assert!(ranking(&bestsellers(&app, "window=month").await).is_empty());
    assert_eq!(ranking(&bestsellers(&app, "window=all").await), all_time);

    // A removed book leaves the list.
    let removed = app
        .admin()
        .delete(app.url(&format!("/books/{gamma}")))
        .send()
        .await
        .unwrap();
    assert!(removed.status().is_success(), "{}", removed.status());
    assert_eq!(
        ranking(&bestsellers(&app, "window=all").await)[0],
        ("Alpha".to_string(), 3)
    );

    // Bad parameters.
    for query in ["window=year", "limit=0", "limit=101", "colour=red"] {
        let response = app
            .client
            .get(app.url(&format!("/bestsellers?{query}")))
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
}

async fn a_members_orders_come_newest_first_page_by_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = for_sale(&app, "Serial", 300, Some(5)).await;
    let (member, token) = app.member_token("regular").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let body = placed(order(&app, &token, None, &[(&book, 1)], None).await).await;
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    // A refused order is not listed.
    let response = order(&app, &token, None, &[(&book, 1)], None).await;
    assert_problem(response, StatusCode::CONFLICT, "out_of_stock").await;
    ids.reverse();

    let mut seen = Vec::new();
    let mut path = format!("/users/{}/orders?limit=2", member.id);
    let mut pages = 0;
    loop {
        let response = app.bearer(&token).get(app.url(&path)).send().await.unwrap();
        let link = response
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_string());
        let page = json_of(response, StatusCode::OK).await;
        pages += 1;
        for order in page["orders"].as_array().unwrap() {
            assert_eq!(order["status"], "placed");
            seen.push(order["id"].as_str().unwrap().to_string());
        }
        match link {
            Some(link) => {
                assert!(page["next_cursor"].is_string());
                let target = link
                    .strip_prefix('<')
                    .and_then(|l| l.split_once(">; rel=\"next\""))
                    .unwrap()
                    .0
                    .to_string();
                path = target;
            }
            None => {
                assert_eq!(page["next_cursor"], Value::Null);
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "newest first, each once");

    // Only the member and staff.
    let (_, other) = app.member_token("nosy").await;
    let response = app
        .bearer(&other)
        .get(app.url(&format!("/users/{}/orders", member.id)))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    let response = app
        .admin()
        .get(app.url(&format!("/users/{}/orders?limit=100", member.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(response, StatusCode::OK).await["orders"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let response = app
        .bearer(&token)
        .get(app.url(&format!("/users/{}/orders?cursor=nonsense", member.id)))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_cursor").await;
}

async fn the_openapi_document_lists_the_store_paths(backend: Backend) {
    let app = spawn_app(backend).await;
    let spec = app.get_json("/openapi.json").await;
    for (path, method) in [
        ("/books/{id}/price", "put"),
        ("/books/{id}/stock", "put"),
        ("/books/{id}/stock", "get"),
        ("/books/{id}/stock/restock", "post"),
        ("/orders", "post"),
        ("/orders/{id}", "get"),
        ("/orders/{id}/cancel", "post"),
        ("/users/{id}/orders", "get"),
        ("/bestsellers", "get"),
    ] {
        let operation = &spec["paths"][path][method];
        assert!(operation.is_object(), "missing {method} {path}");
        assert_eq!(operation["tags"], json!(["store"]), "{method} {path}");
    }
}

on_backends!(
    staff_set_prices_and_stock,
    orders_are_priced_from_the_catalogue_when_placed,
    a_cancel_gives_copies_back_and_takes_sales_off_the_list,
    a_hundred_orders_race_for_the_last_ten_copies,
    keyed_retries_give_the_same_order_and_no_new_events,
    interrupted_orders_are_finished_by_a_keyed_retry_or_the_scheduler,
    bestseller_windows_roll_with_the_clock,
    a_members_orders_come_newest_first_page_by_page,
    the_openapi_document_lists_the_store_paths,
);

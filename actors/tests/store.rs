//! The order process over a real store: orders placed at the reserved prices, refusals that give
//! every reservation back, crashes between steps finished by re-running the remaining steps with
//! their derived ids (nothing recorded twice), and the same process over the NATS command bus,
//! where the commands travel as JSON to the node that serves the entity's partition.

mod common;

use common::{cluster_config, events, nats_client, setup};

use quire_actors::cluster::{NatsBus, PartitionServer};
use quire_actors::lending::{Origin, step_id};
use quire_actors::store::{OrderFailure, OrderProcess, OrderRequest};
use quire_actors::{ActorConfig, Command, CommandBus, CommandEnvelope, LocalBus};
use quire_domain::Principal;
use quire_domain::ids::{BookId, OrderId, UserId};
use quire_domain::store::{OrderCommand, OrderLine, StockCommand};
use quire_domain::values::{Currency, PriceCents, Quantity, Timestamp};
use quire_store::StoreOptions;
use uuid::Uuid;

fn staff() -> Principal {
    Principal::admin(UserId::from_uuid(Uuid::from_u128(0xad)))
}

/// A book for sale at `cents` with `stock` copies (untracked when `None`).
async fn stocked(bus: &dyn CommandBus, cents: u32, stock: Option<u32>) -> BookId {
    let book_id = BookId::new();
    for command in [
        StockCommand::SetPrice {
            price_cents: PriceCents::parse(cents).unwrap(),
            currency: Currency::usd(),
        },
        StockCommand::SetStock { tracked: stock },
    ] {
        bus.dispatch(CommandEnvelope::new(
            staff(),
            Command::Stock { book_id, command },
        ))
        .await
        .unwrap();
    }
    book_id
}

fn origin(member: UserId, keyed: Option<&str>) -> Origin {
    Origin {
        principal: Principal::member(member),
        command_id: keyed.map_or_else(Uuid::now_v7, |key| {
            Uuid::new_v5(&Uuid::from_u128(0x0de2), key.as_bytes())
        }),
        traceparent: None,
        keyed: keyed.is_some(),
    }
}

fn request(member: UserId, lines: &[(BookId, u32)]) -> OrderRequest {
    OrderRequest {
        order_id: OrderId::new(),
        member,
        lines: lines
            .iter()
            .map(|(book_id, n)| OrderLine {
                book_id: *book_id,
                quantity: Quantity::parse(*n).unwrap(),
            })
            .collect(),
        requested_at: Timestamp::from_micros(1_800_000_000_000_000),
    }
}

#[tokio::test]
async fn an_order_is_placed_at_the_prices_its_reservations_returned() {
    let s = setup().await;
    let a = stocked(&s.bus, 1299, Some(3)).await;
    let b = stocked(&s.bus, 500, None).await;
    let member = UserId::new();
    let origin = origin(member, None);
    let process = OrderProcess::for_request(&s.bus, &*s.store, &origin);
    let request = request(member, &[(a, 2), (b, 1)]);
    let (placed, _) = process.place(&origin, &request).await.unwrap();
    assert_eq!(placed, request);
    assert_eq!(
        events(&s.store, &request.order_id.stream_id()).await,
        ["OrderRequested", "OrderPlaced"]
    );
    let stored = quire_store::read_stream_to_end(&*s.store, &request.order_id.stream_id(), 0)
        .await
        .unwrap();
    assert_eq!(stored[1].payload["total_cents"], 2 * 1299 + 500);
    assert_eq!(
        stored[1].payload["lines"][0]["unit_price_cents"],
        serde_json::json!(1299)
    );
    assert_eq!(
        events(&s.store, &a.stock_stream_id()).await,
        ["PriceSet", "StockSet", "StockReserved"]
    );
}

#[tokio::test]
async fn a_refused_line_gives_back_the_lines_reserved_before_it() {
    let s = setup().await;
    let a = stocked(&s.bus, 100, Some(5)).await;
    let b = stocked(&s.bus, 100, Some(1)).await;
    let member = UserId::new();
    let origin = origin(member, None);
    let process = OrderProcess::for_request(&s.bus, &*s.store, &origin);
    let request = request(member, &[(a, 2), (b, 2)]);
    match process.place(&origin, &request).await {
        Err(OrderFailure::Refused {
            book_id, rejection, ..
        }) => {
            assert_eq!(book_id, Some(b));
            assert_eq!(rejection.code, "out_of_stock");
            assert_eq!(rejection.message, "only 1 left (asked for 2)");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        events(&s.store, &a.stock_stream_id()).await,
        ["PriceSet", "StockSet", "StockReserved", "StockReleased"]
    );
    assert_eq!(
        events(&s.store, &request.order_id.stream_id()).await,
        ["OrderRequested", "OrderRefused"]
    );
}

#[tokio::test]
async fn every_crash_prefix_is_finished_by_running_the_rest_and_records_nothing_twice() {
    let s = setup().await;
    let a = stocked(&s.bus, 100, Some(5)).await;
    let b = stocked(&s.bus, 200, Some(5)).await;
    let member = UserId::new();
    let process = OrderProcess::new(&s.bus, &*s.store);

    // The request and the first reservation ran, then the node died.
    let request = request(member, &[(a, 1), (b, 1)]);
    let order_id = request.order_id;
    s.bus
        .dispatch(
            CommandEnvelope::new(
                Principal::member(member),
                Command::Order {
                    order_id,
                    command: OrderCommand::Request {
                        member,
                        lines: request.lines.clone(),
                        requested_at: request.requested_at,
                    },
                },
            )
            .with_command_id(Uuid::now_v7()),
        )
        .await
        .unwrap();
    s.bus
        .dispatch(
            CommandEnvelope::new(
                Principal::system(),
                Command::Stock {
                    book_id: a,
                    command: StockCommand::Reserve {
                        order_id,
                        member,
                        quantity: Quantity::parse(1).unwrap(),
                    },
                },
            )
            .with_command_id(step_id(order_id.as_uuid(), &format!("reserve {a}"))),
        )
        .await
        .unwrap();

    // What the scheduler runs, from the stored request; twice, as a successor would.
    let recorded = process.recorded_request(order_id).await.unwrap().unwrap();
    assert_eq!(recorded, request);
    let first = process.complete(&recorded).await.unwrap();
    let again = process.complete(&recorded).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.last_position, first.last_position);
    assert_eq!(
        events(&s.store, &a.stock_stream_id()).await,
        ["PriceSet", "StockSet", "StockReserved"],
        "the reservation made before the crash is the order's"
    );
    assert_eq!(
        events(&s.store, &order_id.stream_id()).await,
        ["OrderRequested", "OrderPlaced"]
    );

    // A cancel whose releases a crash cut short: releasing again gives each copy back once.
    let origin = origin(member, Some("cancel"));
    let cancelling = OrderProcess::for_request(&s.bus, &*s.store, &origin);
    cancelling
        .cancel(&origin, order_id, &[a], Timestamp::from_micros(1))
        .await
        .unwrap();
    cancelling
        .cancel(&origin, order_id, &[a, b], Timestamp::from_micros(2))
        .await
        .unwrap();
    process.release(order_id, b).await.unwrap();
    assert_eq!(
        events(&s.store, &b.stock_stream_id()).await,
        ["PriceSet", "StockSet", "StockReserved", "StockReleased"]
    );
    assert_eq!(
        events(&s.store, &order_id.stream_id()).await,
        ["OrderRequested", "OrderPlaced", "OrderCancelled"]
    );
}

#[tokio::test]
async fn a_keyed_retry_completes_the_first_attempts_request() {
    let s = setup().await;
    let a = stocked(&s.bus, 100, Some(5)).await;
    let member = UserId::new();
    let origin = origin(member, Some("k"));
    let process = OrderProcess::for_request(&s.bus, &*s.store, &origin);
    let first = request(member, &[(a, 1)]);
    let (placed, _) = process.place(&origin, &first).await.unwrap();
    // The retry was stamped later and minted nothing new: it answers the first request.
    let mut retry = first.clone();
    retry.requested_at = Timestamp::from_micros(first.requested_at.as_micros() + 5_000_000);
    let (again, outcome) = process.place(&origin, &retry).await.unwrap();
    assert_eq!(again, placed);
    assert!(outcome.replayed);
    assert_eq!(
        events(&s.store, &a.stock_stream_id()).await,
        ["PriceSet", "StockSet", "StockReserved"]
    );
}

/// Thirty orders for the last five copies, sent over NATS to a node on Postgres: stock and order
/// commands cross the wire, and the stock's actor still sells exactly five.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_race_for_the_last_copies_over_the_nats_bus() {
    let name = format!("t{}", Uuid::new_v4().simple());
    let url = quire_store::testing::fresh_postgres_database().await;
    let store = quire_store::open(&url, StoreOptions::default())
        .await
        .unwrap();
    let server = PartitionServer::new(
        nats_client("a").await,
        cluster_config(&name, "a"),
        LocalBus::new(store.clone(), ActorConfig::default()),
    );
    for p in 0..8 {
        server.start(p).await.unwrap();
    }
    let bus = NatsBus::new(nats_client("api").await, cluster_config(&name, "api"));
    let book = stocked(&bus, 999, Some(5)).await;

    let outcomes = futures::future::join_all((0..30).map(|_| {
        let (bus, store) = (bus.clone(), store.clone());
        async move {
            let member = UserId::new();
            let origin = origin(member, None);
            let process = OrderProcess::for_request(&bus, &*store, &origin);
            process.place(&origin, &request(member, &[(book, 1)])).await
        }
    }))
    .await;
    let mut placed = 0;
    for outcome in outcomes {
        match outcome {
            Ok(_) => placed += 1,
            Err(OrderFailure::Refused { rejection, .. }) => {
                assert_eq!(rejection.code, "out_of_stock", "{rejection:?}");
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(placed, 5);
    let stock = events(&store, &book.stock_stream_id()).await;
    assert_eq!(stock.iter().filter(|e| *e == "StockReserved").count(), 5);
    server.stop_all().await;
}

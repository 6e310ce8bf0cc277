//! The bookstore: prices and stock (staff), orders (members), and bestsellers (public).
//!
//! Orders run the order process of `quire_actors::store`: the request is recorded, each line
//! reserves copies at its book's stock (priced from the catalogue at that moment), then the order
//! is placed with those prices, or the reservations are given back and the refusal answered (409
//! `out_of_stock`, naming the book and how many copies are left). Writes answer once the `store`
//! read model shows them, like every other write; bestsellers are summed from its hourly sales
//! buckets over a rolling window that ends at the node's clock.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quire_actors::store::{OrderFailure, OrderProcess, OrderRequest};
use quire_actors::{Command, CommandError, CommandOutcome, Rejection};
use quire_domain::Principal;
use quire_domain::ids::{BookId, OrderId, UserId};
use quire_domain::store::{MAX_ORDER_LINES, MAX_STOCK, OrderLine, StockCommand, StockError};
use quire_domain::values::{Currency, PriceCents, Quantity};
use quire_projections::{
    BestsellerQuery, OrderRow, OrderRowStatus, ProjectionName, SalesWindow, StockRow,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    dispatch, ensure_book, ensure_staff, minted, next_link, origin, page, read_your_writes, settle,
    settled_reply,
};
use crate::AppState;
use crate::dto::rfc3339;
use crate::error::{ApiError, PROBLEM_JSON, Problem, Validation};
use crate::extract::{CONSISTENCY_TOKEN, Json, PathId, Query, User, command_id, idempotency_key};

/// The default number of bestsellers.
const DEFAULT_BESTSELLERS: u32 = 20;
/// The most bestsellers one request lists.
const MAX_BESTSELLERS: u32 = 100;

// DTOs

/// A book's price and stock.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StockDto {
    pub(crate) book_id: String,
    /// Whether the book can be ordered: it has a price (and, when tracked, copies left).
    pub(crate) for_sale: bool,
    /// `null` until staff set a price.
    #[schema(example = 1299)]
    pub(crate) price_cents: Option<u32>,
    #[schema(example = "USD")]
    pub(crate) currency: Option<String>,
    /// Whether copies are counted; an untracked book sells as many as are ordered.
    pub(crate) tracked: bool,
    /// Copies left (`null` when untracked).
    pub(crate) available: Option<u32>,
}

/// A price to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPrice {
    /// The price in cents (0 to 100 000 000).
    #[schema(example = 1299)]
    pub(crate) price_cents: u32,
    /// An ISO 4217 code; USD when absent.
    #[schema(example = "USD")]
    pub(crate) currency: Option<String>,
}

/// The stock to set: a number of copies left, or `null` for untracked (unlimited).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewStock {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, example = 10)]
    pub(crate) stock: Option<Option<u32>>,
}

/// Copies to add to a tracked stock.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Restock {
    #[schema(example = 5, minimum = 1)]
    pub(crate) add: u32,
}

/// A field that was sent, even as `null`, is `Some`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(deserializer).map(Some)
}

/// An order to place.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOrder {
    /// 1 to 50 lines, each book once.
    pub(crate) lines: Vec<NewOrderLine>,
    /// Whose order (admins only; members order for themselves).
    pub(crate) user_id: Option<String>,
}

/// One line of an order to place.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOrderLine {
    pub(crate) book_id: String,
    /// 1 to 99 copies.
    #[schema(example = 1, minimum = 1, maximum = 99)]
    pub(crate) quantity: u32,
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderDto {
    pub(crate) id: String,
    pub(crate) user_id: String,
    /// `placed` or `cancelled` (`pending` while it is being placed).
    #[schema(example = "placed")]
    pub(crate) status: String,
    pub(crate) lines: Vec<OrderLineDto>,
    /// The sum of the lines' subtotals.
    pub(crate) total_cents: u64,
    #[schema(example = "USD")]
    pub(crate) currency: Option<String>,
    /// RFC 3339; absent while pending.
    pub(crate) placed_at: Option<String>,
    pub(crate) cancelled_at: Option<String>,
}

/// A line of an order, at the price the book had when the order was placed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderLineDto {
    pub(crate) book_id: String,
    pub(crate) quantity: u32,
    pub(crate) unit_price_cents: Option<u32>,
    pub(crate) subtotal_cents: Option<u64>,
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderList {
    pub(crate) orders: Vec<OrderDto>,
    pub(crate) next_cursor: Option<String>,
}

/// `GET /users/{id}/orders` paging.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OrderListParams {
    #[param(minimum = 1, maximum = 100)]
    pub(crate) limit: Option<u32>,
    pub(crate) cursor: Option<String>,
}

/// `GET /bestsellers` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct BestsellerParams {
    /// `day`, `week` (the default), `month` or `all`: sales of orders placed in the last 24
    /// hours, 7 days or 30 days (to the hour), or ever.
    pub(crate) window: Option<String>,
    /// Only books with this genre.
    pub(crate) genre: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub(crate) limit: Option<u32>,
}

/// The bestseller list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Bestsellers {
    #[schema(example = "week")]
    pub(crate) window: String,
    pub(crate) genre: Option<String>,
    pub(crate) items: Vec<Bestseller>,
}

/// A book on the bestseller list: net units and revenue of orders placed in the window (less
/// the cancelled ones).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Bestseller {
    /// 1 for the best seller.
    pub(crate) rank: u32,
    pub(crate) book_id: String,
    pub(crate) title: String,
    /// The first author.
    pub(crate) author: Option<String>,
    pub(crate) authors: Vec<String>,
    pub(crate) genres: Vec<String>,
    pub(crate) units: u64,
    pub(crate) revenue_cents: u64,
}

fn stock_dto(book_id: BookId, row: Option<StockRow>) -> StockDto {
    let row = row.unwrap_or(StockRow {
        book_id,
        price_cents: None,
        currency: None,
        tracked: false,
        available: None,
    });
    StockDto {
        book_id: book_id.to_string(),
        for_sale: row.price_cents.is_some() && row.available.is_none_or(|n| n > 0),
        price_cents: row.price_cents,
        currency: row.currency,
        tracked: row.tracked,
        available: row.available,
    }
}

fn order_dto(row: OrderRow) -> OrderDto {
    OrderDto {
        id: row.order_id.to_string(),
        user_id: row.user_id.to_string(),
        status: row.status.as_str().to_string(),
        lines: row
            .lines
            .into_iter()
            .map(|l| OrderLineDto {
                book_id: l.book_id.to_string(),
                quantity: l.quantity,
                unit_price_cents: l.unit_price_cents,
                subtotal_cents: l
                    .unit_price_cents
                    .map(|p| u64::from(p) * u64::from(l.quantity)),
            })
            .collect(),
        total_cents: row.total_cents,
        currency: row.currency,
        placed_at: row.placed_at.map(rfc3339),
        cancelled_at: row.cancelled_at.map(rfc3339),
    }
}

// Helpers

/// Answers a stock write with the stock read back from the read model.
async fn stock_reply(
    state: &AppState,
    book_id: BookId,
    outcome: &CommandOutcome,
) -> Result<Response, ApiError> {
    let location = format!("/books/{book_id}/stock");
    settled_reply(
        state,
        ProjectionName::Store,
        book_id.to_string(),
        Some(&location),
        outcome,
        StatusCode::OK,
        async { Ok(stock_dto(book_id, state.read.stock(book_id).await?)) },
    )
    .await
}

/// Runs a staff command on a book's stock and answers with the stock.
async fn stock_command(
    state: &AppState,
    caller: &Principal,
    book_id: BookId,
    route: &str,
    headers: &HeaderMap,
    command: StockCommand,
) -> Result<Response, ApiError> {
    read_your_writes(state, headers).await?;
    ensure_book(state, book_id).await?;
    let key = idempotency_key(headers)?;
    let id = command_id(caller, route, key.as_deref());
    let outcome = dispatch(state, caller, id, None, Command::Stock { book_id, command }).await?;
    stock_reply(state, book_id, &outcome).await
}

/// Answers an order write with the order read back from the read model.
async fn order_reply(
    state: &AppState,
    order_id: OrderId,
    outcome: &CommandOutcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let location = format!("/orders/{order_id}");
    settled_reply(
        state,
        ProjectionName::Store,
        order_id.to_string(),
        Some(&location),
        outcome,
        status,
        async {
            let order = state
                .read
                .order(order_id)
                .await?
                .ok_or_else(|| ApiError::not_found("order"))?;
            Ok(order_dto(order))
        },
    )
    .await
}

/// The refusal of an order as a problem that names the book that refused it and, when it ran
/// out, how many copies are left (`book_id`, `available` and `requested` members).
fn refusal(book_id: Option<BookId>, rejection: Rejection, requested: Option<u32>) -> Response {
    let status = ApiError::from(CommandError::Rejected(rejection.clone())).status();
    let detail = match book_id {
        Some(book_id) => format!("book {book_id}: {}", rejection.message),
        None => rejection.message.clone(),
    };
    let problem = ApiError::new(status, rejection.code.clone(), detail).problem();
    let mut body = serde_json::to_value(&problem).unwrap_or_default();
    if let Some(members) = body.as_object_mut() {
        if let Some(book_id) = book_id {
            members.insert("book_id".into(), book_id.to_string().into());
        }
        if rejection.code == "out_of_stock"
            && let Some(available) = StockError::available_in(&rejection.message)
        {
            members.insert("available".into(), available.into());
            if let Some(requested) = requested {
                members.insert("requested".into(), requested.into());
            }
        }
    }
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

/// An order the caller may see: their own, or anyone's for staff. Refused orders (which hold
/// nothing) and other members' orders are not found.
async fn visible_order(
    state: &AppState,
    caller: &Principal,
    order_id: OrderId,
) -> Result<OrderRow, ApiError> {
    let order = state
        .read
        .order(order_id)
        .await?
        .filter(|o| o.status != OrderRowStatus::Refused)
        .ok_or_else(|| ApiError::not_found("order"))?;
    if !caller.is_user_or_privileged(order.user_id) {
        return Err(ApiError::not_found("order"));
    }
    Ok(order)
}

// Handlers

/// A book's price and stock (public).
#[utoipa::path(
    get, path = "/books/{id}/stock", tag = "store",
    params(("id" = String, Path, format = Uuid), ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = StockDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.store.stock", skip_all, fields(%book_id))]
pub(crate) async fn get_stock(
    State(state): State<AppState>,
    PathId(book_id): PathId<BookId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    ensure_book(&state, book_id).await?;
    let stock = state.read.stock(book_id).await?;
    Ok(axum::Json(stock_dto(book_id, stock)).into_response())
}

/// Sets a book's price (staff). Orders placed from now on pay it; placed orders keep theirs.
#[utoipa::path(
    put, path = "/books/{id}/price", tag = "store",
    request_body = NewPrice,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = StockDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.store.set_price", skip_all, fields(%book_id))]
pub(crate) async fn set_price(
    State(state): State<AppState>,
    User(caller): User,
    PathId(book_id): PathId<BookId>,
    headers: HeaderMap,
    Json(body): Json<NewPrice>,
) -> Result<Response, ApiError> {
    ensure_staff(&caller)?;
    let mut v = Validation::default();
    let price = v.field("price_cents", PriceCents::parse(body.price_cents));
    let currency = match body.currency {
        Some(raw) => v.field("currency", Currency::parse(raw)),
        None => Some(Currency::usd()),
    };
    v.finish()?;
    let (Some(price_cents), Some(currency)) = (price, currency) else {
        unreachable!("validation passed")
    };
    let route = format!("PUT /books/{book_id}/price");
    let command = StockCommand::SetPrice {
        price_cents,
        currency,
    };
    stock_command(&state, &caller, book_id, &route, &headers, command).await
}

/// Sets how many copies of a book are left to sell (staff); `{"stock": null}` stops counting
/// (untracked: unlimited).
#[utoipa::path(
    put, path = "/books/{id}/stock", tag = "store",
    request_body = NewStock,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = StockDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.store.set_stock", skip_all, fields(%book_id))]
pub(crate) async fn set_stock(
    State(state): State<AppState>,
    User(caller): User,
    PathId(book_id): PathId<BookId>,
    headers: HeaderMap,
    Json(body): Json<NewStock>,
) -> Result<Response, ApiError> {
    ensure_staff(&caller)?;
    let mut v = Validation::default();
    let tracked = match body.stock {
        None => {
            v.fail("stock", "stock is required: a number of copies, or null");
            None
        }
        Some(Some(n)) if n > MAX_STOCK => {
            v.fail("stock", format!("stock must be at most {MAX_STOCK}"));
            None
        }
        Some(tracked) => Some(tracked),
    };
    v.finish()?;
    let Some(tracked) = tracked else {
        unreachable!("validation passed")
    };
    let route = format!("PUT /books/{book_id}/stock");
    let command = StockCommand::SetStock { tracked };
    stock_command(&state, &caller, book_id, &route, &headers, command).await
}

/// Adds copies to a book's tracked stock (staff).
#[utoipa::path(
    post, path = "/books/{id}/stock/restock", tag = "store",
    request_body = Restock,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = StockDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`stock_untracked`: set a stock first", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.store.restock", skip_all, fields(%book_id))]
pub(crate) async fn restock(
    State(state): State<AppState>,
    User(caller): User,
    PathId(book_id): PathId<BookId>,
    headers: HeaderMap,
    Json(body): Json<Restock>,
) -> Result<Response, ApiError> {
    ensure_staff(&caller)?;
    let mut v = Validation::default();
    if !(1..=MAX_STOCK).contains(&body.add) {
        v.fail("add", format!("add must be between 1 and {MAX_STOCK}"));
    }
    v.finish()?;
    let route = format!("POST /books/{book_id}/stock/restock");
    let command = StockCommand::Restock { add: body.add };
    stock_command(&state, &caller, book_id, &route, &headers, command).await
}

/// Places an order (members for themselves; admins may name `user_id`): every line is reserved
/// at its book's current price, or nothing is.
#[utoipa::path(
    post, path = "/orders", tag = "store",
    request_body = NewOrder,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = OrderDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`out_of_stock` (with `book_id`, `available` and `requested`) or `not_for_sale` (with `book_id`): nothing was ordered", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad lines (count, quantity, a book twice, an unknown book) or `mixed_currencies`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.store.place_order", skip_all)]
pub(crate) async fn place_order(
    State(state): State<AppState>,
    User(caller): User,
    headers: HeaderMap,
    Json(body): Json<NewOrder>,
) -> Result<Response, ApiError> {
    let mut v = Validation::default();
    let user_id = match body.user_id.as_deref() {
        Some(raw) => {
            let parsed = raw.parse::<UserId>().ok();
            if parsed.is_none() {
                v.fail("user_id", "user_id must be a user id");
            }
            parsed
        }
        None => caller.user_id,
    };
    if !(1..=MAX_ORDER_LINES).contains(&body.lines.len()) {
        v.fail(
            "lines",
            format!(
                "an order has 1 to {MAX_ORDER_LINES} lines, this one has {}",
                body.lines.len()
            ),
        );
    }
    let mut lines = Vec::with_capacity(body.lines.len());
    for (i, line) in body.lines.iter().enumerate() {
        let book_id = line.book_id.parse::<BookId>().ok();
        if book_id.is_none() {
            v.fail(&format!("lines[{i}].book_id"), "book_id must be a book id");
        }
        let quantity = v.field(
            &format!("lines[{i}].quantity"),
            Quantity::parse(line.quantity),
        );
        if let Some(book_id) = book_id
            && lines.iter().any(|l: &OrderLine| l.book_id == book_id)
        {
            v.fail(
                &format!("lines[{i}].book_id"),
                format!(
                    "book {book_id} appears in more than one line; order it once with the total quantity"
                ),
            );
        } else if let (Some(book_id), Some(quantity)) = (book_id, quantity) {
            lines.push(OrderLine { book_id, quantity });
        }
    }
    v.finish()?;
    let Some(user_id) = user_id else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "user_id is required for callers who are not a member",
        ));
    };
    if !caller.is_user_or_privileged(user_id) {
        return Err(ApiError::forbidden(
            "members can only place orders for themselves",
        ));
    }
    read_your_writes(&state, &headers).await?;
    let mut v = Validation::default();
    for (i, line) in lines.iter().enumerate() {
        if state.read.book(line.book_id).await?.is_none() {
            let why = if state.read.book_removed(line.book_id).await? {
                "the book was removed from the catalogue"
            } else {
                "no such book"
            };
            v.fail(&format!("lines[{i}].book_id"), why);
        }
    }
    v.finish()?;
    let origin = origin(&caller, &format!("POST /orders {user_id}"), &headers)?;
    let order_id = minted(&origin, "order").map_or_else(OrderId::new, OrderId::from_uuid);
    let request = OrderRequest {
        order_id,
        member: user_id,
        lines,
        requested_at: state.clock.now(),
    };
    let process = OrderProcess::for_request(&*state.bus, &*state.store, &origin);
    match process.place(&origin, &request).await {
        Ok((request, outcome)) => {
            order_reply(&state, request.order_id, &outcome, StatusCode::CREATED).await
        }
        Err(OrderFailure::Refused {
            book_id,
            rejection,
            position,
        }) => {
            // The copies given back show in reads that follow (and in any presenting the token).
            settle(&state, ProjectionName::Store, position).await?;
            let requested = book_id.and_then(|b| {
                request
                    .lines
                    .iter()
                    .find(|l| l.book_id == b)
                    .map(|l| l.quantity.value())
            });
            let mut response = refusal(book_id, rejection, requested);
            response
                .headers_mut()
                .insert(&CONSISTENCY_TOKEN, HeaderValue::from(position));
            Ok(response)
        }
        Err(OrderFailure::Command(error)) => Err(error.into()),
    }
}

/// One order (its member or staff).
#[utoipa::path(
    get, path = "/orders/{id}", tag = "store",
    params(("id" = String, Path, format = Uuid), ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = OrderDto),
        (status = 404, description = "No such order, or another member's", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.store.get_order", skip_all, fields(%order_id))]
pub(crate) async fn get_order(
    State(state): State<AppState>,
    User(caller): User,
    PathId(order_id): PathId<OrderId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let order = visible_order(&state, &caller, order_id).await?;
    Ok(axum::Json(order_dto(order)).into_response())
}

/// Cancels an order (its member or staff): its copies go back to stock and its sales leave the
/// bestseller counts. Cancelling a cancelled order changes nothing.
#[utoipa::path(
    post, path = "/orders/{id}/cancel", tag = "store",
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = OrderDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`order_pending`: the order is still being placed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.store.cancel_order", skip_all, fields(%order_id))]
pub(crate) async fn cancel_order(
    State(state): State<AppState>,
    User(caller): User,
    PathId(order_id): PathId<OrderId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let order = visible_order(&state, &caller, order_id).await?;
    let origin = origin(
        &caller,
        &format!("POST /orders/{order_id}/cancel"),
        &headers,
    )?;
    let books: Vec<BookId> = order.lines.iter().map(|l| l.book_id).collect();
    let process = OrderProcess::for_request(&*state.bus, &*state.store, &origin);
    let outcome = process
        .cancel(&origin, order_id, &books, state.clock.now())
        .await?;
    order_reply(&state, order_id, &outcome, StatusCode::OK).await
}

/// A member's orders, newest first (the member themself or staff).
#[utoipa::path(
    get, path = "/users/{id}/orders", tag = "store",
    params(("id" = String, Path, format = Uuid), OrderListParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, description = "A page; `Link` points at the next", body = OrderList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.store.user_orders", skip_all, fields(%user_id))]
pub(crate) async fn user_orders(
    State(state): State<AppState>,
    User(caller): User,
    PathId(user_id): PathId<UserId>,
    headers: HeaderMap,
    Query(params): Query<OrderListParams>,
) -> Result<Response, ApiError> {
    if !caller.is_user_or_privileged(user_id) {
        return Err(ApiError::forbidden(
            "members can only list their own orders",
        ));
    }
    read_your_writes(&state, &headers).await?;
    let request = page(params.limit, params.cursor)?;
    let result = state.read.orders_of(user_id, &request).await?;
    let query = vec![("limit", request.limit.to_string())];
    let link = next_link(
        &format!("/users/{user_id}/orders"),
        &query,
        result.next_cursor.as_deref(),
    );
    Ok((
        link,
        axum::Json(OrderList {
            orders: result.items.into_iter().map(order_dto).collect(),
            next_cursor: result.next_cursor,
        }),
    )
        .into_response())
}

/// The bestsellers: books by net units sold (orders placed in the window, less cancelled ones),
/// then by revenue, then by title. Public.
#[utoipa::path(
    get, path = "/bestsellers", tag = "store",
    params(BestsellerParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = Bestsellers),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.store.bestsellers", skip_all)]
pub(crate) async fn bestsellers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<BestsellerParams>,
) -> Result<Response, ApiError> {
    let window = match params.window.as_deref() {
        None => SalesWindow::Week,
        Some(raw) => SalesWindow::parse(raw).ok_or_else(|| {
            ApiError::bad_request("invalid_query", "window must be day, week, month or all")
        })?,
    };
    let limit = params.limit.unwrap_or(DEFAULT_BESTSELLERS);
    if !(1..=MAX_BESTSELLERS).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_BESTSELLERS}"),
        ));
    }
    let genre = params.genre.filter(|g| !g.trim().is_empty());
    read_your_writes(&state, &headers).await?;
    let rows = state
        .read
        .bestsellers(&BestsellerQuery {
            window,
            genre: genre.clone(),
            limit,
            now: state.clock.now().as_micros(),
        })
        .await?;
    let items = rows
        .into_iter()
        .zip(1u32..)
        .map(|(row, rank)| Bestseller {
            rank,
            book_id: row.book_id.to_string(),
            title: row.title,
            author: row.authors.first().cloned(),
            authors: row.authors,
            genres: row.genres,
            units: row.units,
            revenue_cents: row.revenue_cents,
        })
        .collect();
    Ok(axum::Json(Bestsellers {
        window: window.as_str().to_string(),
        genre,
        items,
    })
    .into_response())
}

//! Lending: copies, loans, holds and availability.
//!
//! The seed paths (`POST /books/{book_id}/borrow/{user_id}`, `…/return/{user_id}`) and the richer
//! resources (`/books/{id}/copies`, `/books/{id}/availability`, `/loans`, `/holds`) run the
//! processes of `quire_actors::lending`: a borrow takes the member's slot, then a copy of the
//! book, and gives the slot back if the book refuses. Writes answer once the `lending` read model
//! shows them, like every other write.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use quire_actors::Command;
use quire_actors::lending::{LendingProcess, Origin};
use quire_domain::Principal;
use quire_domain::ids::{BookId, CopyId, HoldId, LoanId, UserId};
use quire_domain::lending::LendingCommand;
use quire_domain::values::{Barcode, Timestamp};
use quire_projections::{
    CopyRow, HoldQuery, HoldRow, HoldStatus, LoanQuery, LoanRow, LoanStatus, LoanStatusFilter,
    ProjectionName,
};
use uuid::Uuid;

use super::{
    ensure_book, ensure_staff, minted, next_link, origin, page, read_your_writes, settled_reply,
};
use crate::AppState;
use crate::dto::{
    Availability, CopyDto, CopyList, CopyOnLoan, HoldDto, HoldList, HoldParams, LoanDto, LoanList,
    LoanParams, NewCopy, NewHold, UserLoanParams, rfc3339,
};
use crate::error::{ApiError, Problem, Validation};
use crate::extract::{Json, PathId, Query, User};

fn parse<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found(what))
}

/// Members act for themselves; admins (library staff) for anyone.
fn ensure_self_or_staff(caller: &Principal, user_id: UserId, action: &str) -> Result<(), ApiError> {
    if caller.is_user_or_privileged(user_id) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "members can only {action} for themselves"
        )))
    }
}

fn loan_status(row: &LoanRow, now: Timestamp) -> (&'static str, bool) {
    let overdue = row.status == LoanStatus::Open && (row.overdue || row.due_at <= now.as_micros());
    let status = match row.status {
        LoanStatus::Open if overdue => "overdue",
        other => other.as_str(),
    };
    (status, overdue)
}

fn loan_dto(row: LoanRow, now: Timestamp) -> LoanDto {
    let (status, overdue) = loan_status(&row, now);
    LoanDto {
        id: row.loan_id.to_string(),
        book_id: row.book_id.to_string(),
        user_id: row.user_id.to_string(),
        copy_id: row.copy_id.map(|c| c.to_string()),
        barcode: row.barcode,
        status: status.to_string(),
        overdue,
        checkout_date: row.checked_out_at.map(rfc3339),
        due_date: rfc3339(row.due_at),
        checkin_date: row.returned_at.map(rfc3339),
        renewals_count: row.renewals,
    }
}

fn copy_dto(row: CopyRow) -> CopyDto {
    CopyDto {
        id: row.copy_id.to_string(),
        book_id: row.book_id.to_string(),
        barcode: row.barcode,
        status: row.status,
        added_at: rfc3339(row.added_at),
    }
}

fn hold_dto(row: HoldRow, priority: Option<u32>) -> HoldDto {
    HoldDto {
        id: row.hold_id.to_string(),
        book_id: row.book_id.to_string(),
        user_id: row.user_id.to_string(),
        status: row.status.as_str().to_string(),
        priority,
        placed_at: row.placed_at.map(rfc3339),
        copy_id: row.copy_id.map(|c| c.to_string()),
        expiration_date: row.pickup_until.map(rfc3339),
        loan_id: row.loan_id.map(|l| l.to_string()),
    }
}

/// A hold with its place in its book's queue (1 = next), while it is active.
async fn hold_with_priority(state: &AppState, row: HoldRow) -> Result<HoldDto, ApiError> {
    holds_with_priority(state, vec![row])
        .await
        .map(|mut dtos| dtos.remove(0))
}

/// Holds with their places in their books' queues, reading each book's queue once.
async fn holds_with_priority(
    state: &AppState,
    rows: Vec<HoldRow>,
) -> Result<Vec<HoldDto>, ApiError> {
    use std::collections::hash_map::Entry;
    let mut queues: std::collections::HashMap<BookId, Vec<HoldId>> = Default::default();
    let mut dtos = Vec::with_capacity(rows.len());
    for row in rows {
        let priority = if matches!(row.status, HoldStatus::Waiting | HoldStatus::Ready) {
            let queue = match queues.entry(row.book_id) {
                Entry::Occupied(queue) => queue.into_mut(),
                Entry::Vacant(slot) => {
                    let queue = state.read.hold_queue(row.book_id).await?;
                    slot.insert(queue.iter().map(|h| h.hold_id).collect())
                }
            };
            queue
                .iter()
                .position(|h| *h == row.hold_id)
                .and_then(|p| u32::try_from(p + 1).ok())
        } else {
            None
        };
        dtos.push(hold_dto(row, priority));
    }
    Ok(dtos)
}

/// Answers a lending write with the loan read back from the read model.
async fn loan_reply(
    state: &AppState,
    loan_id: LoanId,
    outcome: &quire_actors::CommandOutcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let location = format!("/loans/{loan_id}");
    settled_reply(
        state,
        ProjectionName::Lending,
        loan_id.to_string(),
        Some(&location),
        outcome,
        status,
        async {
            let loan = state
                .read
                .loan(loan_id)
                .await?
                .ok_or_else(|| ApiError::not_found("loan"))?;
            Ok(loan_dto(loan, state.clock.now()))
        },
    )
    .await
}

async fn hold_reply(
    state: &AppState,
    hold_id: HoldId,
    outcome: &quire_actors::CommandOutcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let location = format!("/holds/{hold_id}");
    settled_reply(
        state,
        ProjectionName::Lending,
        hold_id.to_string(),
        Some(&location),
        outcome,
        status,
        async {
            let hold = state
                .read
                .hold(hold_id)
                .await?
                .ok_or_else(|| ApiError::not_found("hold"))?;
            hold_with_priority(state, hold).await
        },
    )
    .await
}

async fn copy_reply(
    state: &AppState,
    copy_id: CopyId,
    outcome: &quire_actors::CommandOutcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    settled_reply(
        state,
        ProjectionName::Lending,
        copy_id.to_string(),
        None,
        outcome,
        status,
        async {
            let copy = state
                .read
                .copy(copy_id)
                .await?
                .ok_or_else(|| ApiError::not_found("copy"))?;
            Ok(copy_dto(copy))
        },
    )
    .await
}

/// Borrows a book for a member (the member themself, or staff): a copy is lent until the due
/// date of the lending policy. A book without registered copies lends as its implicit copies.
#[utoipa::path(
    post, path = "/books/{book_id}/borrow/{user_id}", tag = "lending",
    params(("book_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = LoanDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book or member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`copy_unavailable`, `already_borrowed`, `loan_limit_reached` or `member_blocked`", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The book was removed, or the member deactivated", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.lending.borrow", skip_all, fields(%book_id, %user_id))]
pub(crate) async fn borrow(
    State(state): State<AppState>,
    User(caller): User,
    Path((book_id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let book_id: BookId = parse(&book_id, "book")?;
    let user_id: UserId = parse(&user_id, "user")?;
    ensure_self_or_staff(&caller, user_id, "borrow")?;
    read_your_writes(&state, &headers).await?;
    ensure_book(&state, book_id).await?;
    let origin = origin(
        &caller,
        &format!("POST /books/{book_id}/borrow/{user_id}"),
        &headers,
    )?;
    let loan_id = minted(&origin, "loan").map_or_else(LoanId::new, LoanId::from_uuid);
    let request = state
        .lending
        .loan_request(loan_id, book_id, user_id, state.clock.now());
    let process = LendingProcess::for_request(&*state.bus, &*state.store, &origin);
    let (request, outcome) = process
        .borrow(&origin, &request, state.lending.limits())
        .await?;
    loan_reply(&state, request.loan_id, &outcome, StatusCode::CREATED).await
}

/// Returns the member's open loan of the book (the seed path).
#[utoipa::path(
    post, path = "/books/{book_id}/return/{user_id}", tag = "lending",
    params(("book_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = LoanDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_on_loan`: the member has no open loan of the book", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.lending.return_book", skip_all, fields(%book_id, %user_id))]
pub(crate) async fn return_book(
    State(state): State<AppState>,
    User(caller): User,
    Path((book_id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let book_id: BookId = parse(&book_id, "book")?;
    let user_id: UserId = parse(&user_id, "user")?;
    ensure_self_or_staff(&caller, user_id, "return loans")?;
    read_your_writes(&state, &headers).await?;
    let origin = origin(
        &caller,
        &format!("POST /books/{book_id}/return/{user_id}"),
        &headers,
    )?;
    // A keyed retry of a return that went through finds no open loan any more: the loan it
    // returned is the member's latest of the book.
    let loan = match state.read.open_loan_of(user_id, book_id).await? {
        Some(loan) => loan,
        None if origin.keyed => latest_loan(&state, user_id, book_id)
            .await?
            .ok_or_else(|| not_on_loan(book_id))?,
        None => return Err(not_on_loan(book_id)),
    };
    finish_return(&state, &origin, loan).await
}

fn not_on_loan(book_id: BookId) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "not_on_loan",
        format!("the member has no open loan of book {book_id}"),
    )
}

async fn latest_loan(
    state: &AppState,
    user_id: UserId,
    book_id: BookId,
) -> Result<Option<LoanRow>, ApiError> {
    let page = state
        .read
        .loans(&LoanQuery {
            user_id: Some(user_id),
            book_id: Some(book_id),
            status: None,
            now: state.clock.now().as_micros(),
            page: page(Some(1), None)?,
        })
        .await?;
    Ok(page.items.into_iter().next())
}

async fn finish_return(
    state: &AppState,
    origin: &Origin,
    loan: LoanRow,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let process = LendingProcess::for_request(&*state.bus, &*state.store, origin);
    let outcome = process
        .return_loan(
            origin,
            loan.book_id,
            loan.loan_id,
            loan.user_id,
            now,
            state.lending.pickup_until(now),
        )
        .await?;
    loan_reply(state, loan.loan_id, &outcome, StatusCode::OK).await
}

/// A loan the caller may see: their own, or anyone's for staff.
async fn visible_loan(
    state: &AppState,
    caller: &Principal,
    loan_id: LoanId,
) -> Result<LoanRow, ApiError> {
    let loan = state
        .read
        .loan(loan_id)
        .await?
        .filter(|l| !matches!(l.status, LoanStatus::Refused))
        .ok_or_else(|| ApiError::not_found("loan"))?;
    if !caller.is_user_or_privileged(loan.user_id) {
        // Someone else's loan is none of the caller's business, not even its existence.
        return Err(ApiError::not_found("loan"));
    }
    Ok(loan)
}

/// One loan (its member or staff).
#[utoipa::path(
    get, path = "/loans/{id}", tag = "lending",
    params(("id" = String, Path, format = Uuid), ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = LoanDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.lending.get_loan", skip_all, fields(%loan_id))]
pub(crate) async fn get_loan(
    State(state): State<AppState>,
    User(caller): User,
    PathId(loan_id): PathId<LoanId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let loan = visible_loan(&state, &caller, loan_id).await?;
    Ok(axum::Json(loan_dto(loan, state.clock.now())).into_response())
}

/// Returns a loan by its id (its member or staff).
#[utoipa::path(
    post, path = "/loans/{id}/return", tag = "lending",
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = LoanDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.lending.return_loan", skip_all, fields(%loan_id))]
pub(crate) async fn return_loan(
    State(state): State<AppState>,
    User(caller): User,
    PathId(loan_id): PathId<LoanId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let loan = visible_loan(&state, &caller, loan_id).await?;
    if loan.status == LoanStatus::Pending {
        return Err(not_on_loan(loan.book_id));
    }
    let origin = origin(&caller, &format!("POST /loans/{loan_id}/return"), &headers)?;
    finish_return(&state, &origin, loan).await
}

/// Renews a loan under the policy's renewal rules (its member or staff).
#[utoipa::path(
    post, path = "/loans/{id}/renewal", tag = "lending",
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = LoanDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`renewal_not_allowed` (no renewals left, overdue, others waiting, too early) or `not_on_loan`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.lending.renew", skip_all, fields(%loan_id))]
pub(crate) async fn renew(
    State(state): State<AppState>,
    User(caller): User,
    PathId(loan_id): PathId<LoanId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let loan = visible_loan(&state, &caller, loan_id).await?;
    let origin = origin(&caller, &format!("POST /loans/{loan_id}/renewal"), &headers)?;
    let process = LendingProcess::for_request(&*state.bus, &*state.store, &origin);
    let outcome = process
        .single(
            &origin,
            Command::Lending {
                book_id: loan.book_id,
                command: LendingCommand::Renew {
                    loan_id,
                    at: state.clock.now(),
                    rules: state.lending.renewal_rules(),
                },
            },
        )
        .await?;
    loan_reply(&state, loan_id, &outcome, StatusCode::OK).await
}

/// Whose loans or holds a list shows, from its `user_id` and `book_id` filters: members see
/// their own (the default for them), staff anyone's (everyone's by default).
fn list_scope(
    caller: &Principal,
    user_id: Option<&str>,
    book_id: Option<&str>,
    action: &str,
) -> Result<(Option<UserId>, Option<BookId>), ApiError> {
    let user_id = match user_id {
        Some(raw) => Some(
            raw.parse::<UserId>()
                .map_err(|_| ApiError::bad_request("invalid_query", "user_id must be a user id"))?,
        ),
        None if caller.is_privileged() => None,
        None => caller.user_id,
    };
    let book_id = book_id
        .map(|raw| {
            raw.parse::<BookId>()
                .map_err(|_| ApiError::bad_request("invalid_query", "book_id must be a book id"))
        })
        .transpose()?;
    match user_id {
        Some(user_id) => ensure_self_or_staff(caller, user_id, action)?,
        None => ensure_staff(caller)?,
    }
    Ok((user_id, book_id))
}

/// Parses the `status` filter of the loan lists.
fn loan_filter(status: Option<&str>) -> Result<Option<LoanStatusFilter>, ApiError> {
    match status {
        None | Some("all") => Ok(None),
        Some("open") => Ok(Some(LoanStatusFilter::Open)),
        Some("overdue") => Ok(Some(LoanStatusFilter::Overdue)),
        Some("returned") => Ok(Some(LoanStatusFilter::Returned)),
        Some(_) => Err(ApiError::bad_request(
            "invalid_query",
            "status must be open, overdue, returned or all",
        )),
    }
}

async fn list_loans(
    state: &AppState,
    path: &str,
    user_id: Option<UserId>,
    book_id: Option<BookId>,
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
) -> Result<Response, ApiError> {
    let filter = loan_filter(status.as_deref())?;
    let request = page(limit, cursor)?;
    let now = state.clock.now();
    let result = state
        .read
        .loans(&LoanQuery {
            user_id,
            book_id,
            status: filter,
            now: now.as_micros(),
            page: request.clone(),
        })
        .await?;
    let mut query = vec![("limit", request.limit.to_string())];
    if let Some(status) = status {
        query.push(("status", status));
    }
    if path == "/loans" {
        if let Some(user_id) = user_id {
            query.push(("user_id", user_id.to_string()));
        }
        if let Some(book_id) = book_id {
            query.push(("book_id", book_id.to_string()));
        }
    }
    let link = next_link(path, &query, result.next_cursor.as_deref());
    Ok((
        link,
        axum::Json(LoanList {
            loans: result.items.into_iter().map(|l| loan_dto(l, now)).collect(),
            next_cursor: result.next_cursor,
        }),
    )
        .into_response())
}

/// Loans, newest first: a member's own (the default for members), or anyone's for staff.
#[utoipa::path(
    get, path = "/loans", tag = "lending",
    params(LoanParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = LoanList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.lending.list_loans", skip_all)]
pub(crate) async fn loans(
    State(state): State<AppState>,
    User(caller): User,
    headers: HeaderMap,
    Query(params): Query<LoanParams>,
) -> Result<Response, ApiError> {
    let (user_id, book_id) = list_scope(
        &caller,
        params.user_id.as_deref(),
        params.book_id.as_deref(),
        "list loans",
    )?;
    read_your_writes(&state, &headers).await?;
    list_loans(
        &state,
        "/loans",
        user_id,
        book_id,
        params.status,
        params.limit,
        params.cursor,
    )
    .await
}

/// A member's loans, newest first (the member themself or staff).
#[utoipa::path(
    get, path = "/users/{id}/loans", tag = "lending",
    params(("id" = String, Path, format = Uuid), UserLoanParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = LoanList),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.lending.user_loans", skip_all, fields(%user_id))]
pub(crate) async fn user_loans(
    State(state): State<AppState>,
    User(caller): User,
    PathId(user_id): PathId<UserId>,
    headers: HeaderMap,
    Query(params): Query<UserLoanParams>,
) -> Result<Response, ApiError> {
    ensure_self_or_staff(&caller, user_id, "list loans")?;
    read_your_writes(&state, &headers).await?;
    list_loans(
        &state,
        &format!("/users/{user_id}/loans"),
        Some(user_id),
        None,
        params.status,
        params.limit,
        params.cursor,
    )
    .await
}

/// The copies of a book, in registration order, with their status.
#[utoipa::path(
    get, path = "/books/{id}/copies", tag = "lending",
    params(("id" = String, Path, format = Uuid), ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = CopyList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.lending.copies", skip_all, fields(%book_id))]
pub(crate) async fn copies(
    State(state): State<AppState>,
    PathId(book_id): PathId<BookId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    ensure_book(&state, book_id).await?;
    let copies = state.read.copies_of_book(book_id).await?;
    Ok(axum::Json(CopyList {
        copies: copies.into_iter().map(copy_dto).collect(),
    })
    .into_response())
}

/// Registers a copy of a book (staff). If members wait for the book, the copy goes to the hold
/// shelf for the first of them.
#[utoipa::path(
    post, path = "/books/{id}/copies", tag = "lending",
    request_body = NewCopy,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = CopyDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`barcode_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.lending.add_copy", skip_all, fields(%book_id))]
pub(crate) async fn add_copy(
    State(state): State<AppState>,
    User(caller): User,
    PathId(book_id): PathId<BookId>,
    headers: HeaderMap,
    Json(body): Json<NewCopy>,
) -> Result<Response, ApiError> {
    ensure_staff(&caller)?;
    let mut v = Validation::default();
    let barcode = v.field("barcode", Barcode::parse(body.barcode));
    v.finish()?;
    let Some(barcode) = barcode else {
        unreachable!("validation passed")
    };
    read_your_writes(&state, &headers).await?;
    ensure_book(&state, book_id).await?;
    let origin = origin(
        &caller,
        &format!("POST /books/{book_id}/copies {barcode}"),
        &headers,
    )?;
    // The copy id derives from the book and barcode, so registering one barcode twice is one
    // copy whichever node or retry does it.
    let copy_id = CopyId::from_uuid(Uuid::new_v5(
        &book_id.as_uuid(),
        format!("copy {barcode}").as_bytes(),
    ));
    let now = state.clock.now();
    let process = LendingProcess::for_request(&*state.bus, &*state.store, &origin);
    let outcome = process
        .single(
            &origin,
            Command::Lending {
                book_id,
                command: LendingCommand::AddCopy {
                    copy_id,
                    barcode,
                    at: now,
                    pickup_until: state.lending.pickup_until(now),
                },
            },
        )
        .await?;
    copy_reply(&state, copy_id, &outcome, StatusCode::CREATED).await
}

/// Withdraws a copy from circulation for good (staff); not while it is lent or on the shelf.
#[utoipa::path(
    delete, path = "/books/{id}/copies/{copy_id}", tag = "lending",
    params(("id" = String, Path, format = Uuid), ("copy_id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CopyDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`copy_in_use`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.lending.withdraw_copy", skip_all)]
pub(crate) async fn withdraw_copy(
    State(state): State<AppState>,
    User(caller): User,
    Path((book_id, copy_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    copy_command(&state, &caller, &book_id, &copy_id, &headers, "withdraw").await
}

/// Declares a copy lost (staff); a loan of it ends as lost and the member's slot is freed.
#[utoipa::path(
    post, path = "/books/{id}/copies/{copy_id}/lost", tag = "lending",
    params(("id" = String, Path, format = Uuid), ("copy_id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CopyDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`copy_in_use` (on the hold shelf)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.lending.mark_lost", skip_all)]
pub(crate) async fn mark_lost(
    State(state): State<AppState>,
    User(caller): User,
    Path((book_id, copy_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    copy_command(&state, &caller, &book_id, &copy_id, &headers, "lost").await
}

async fn copy_command(
    state: &AppState,
    caller: &Principal,
    book_id: &str,
    copy_id: &str,
    headers: &HeaderMap,
    action: &str,
) -> Result<Response, ApiError> {
    let book_id: BookId = parse(book_id, "book")?;
    let copy_id: CopyId = parse(copy_id, "copy")?;
    ensure_staff(caller)?;
    read_your_writes(state, headers).await?;
    let copy = state
        .read
        .copy(copy_id)
        .await?
        .filter(|c| c.book_id == book_id)
        .ok_or_else(|| ApiError::not_found("copy"))?;
    let origin = origin(
        caller,
        &format!("{action} /books/{book_id}/copies/{copy_id}"),
        headers,
    )?;
    let at = state.clock.now();
    let command = if action == "lost" {
        LendingCommand::MarkLost { copy_id, at }
    } else {
        LendingCommand::WithdrawCopy { copy_id, at }
    };
    let process = LendingProcess::for_request(&*state.bus, &*state.store, &origin);
    let mut outcome = process
        .single(&origin, Command::Lending { book_id, command })
        .await?;
    // A lost copy's loan ended: its member's slot is free again.
    if action == "lost"
        && let Some(loan_id) = copy.loan_id
        && let Some(loan) = state.read.loan(loan_id).await?
    {
        let released = process.release_loan_slot(loan.user_id, loan_id).await?;
        if released.last_position > outcome.last_position {
            outcome = released;
        }
    }
    copy_reply(state, copy_id, &outcome, StatusCode::OK).await
}

/// Whether a book can be borrowed now: free copies, lent copies with their due dates, the hold
/// shelf and the queue (no member ids: this is public).
#[utoipa::path(
    get, path = "/books/{id}/availability", tag = "lending",
    params(("id" = String, Path, format = Uuid), ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = Availability),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.lending.availability", skip_all, fields(%book_id))]
pub(crate) async fn availability(
    State(state): State<AppState>,
    PathId(book_id): PathId<BookId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    ensure_book(&state, book_id).await?;
    let copies = state.read.copies_of_book(book_id).await?;
    let queue = state.read.hold_queue(book_id).await?;
    let holds_waiting = count(queue.iter().filter(|h| h.status == HoldStatus::Waiting));
    if copies.is_empty() {
        // Never lent and no copies registered: it lends as its implicit copies.
        let total = state.lending.implicit_copies;
        return Ok(axum::Json(Availability {
            book_id: book_id.to_string(),
            copies_total: total,
            copies_available: total,
            available: total > 0,
            on_loan: Vec::new(),
            on_hold_shelf: 0,
            holds_waiting,
            next_due_date: None,
        })
        .into_response());
    }
    // The book's open loans, read page by page in one query each, not one per lent copy.
    let mut due: std::collections::HashMap<LoanId, i64> = Default::default();
    let mut cursor = None;
    loop {
        let result = state
            .read
            .loans(&LoanQuery {
                user_id: None,
                book_id: Some(book_id),
                status: Some(LoanStatusFilter::Open),
                now: state.clock.now().as_micros(),
                page: page(Some(100), cursor)?,
            })
            .await?;
        due.extend(result.items.iter().map(|l| (l.loan_id, l.due_at)));
        match result.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut on_loan = Vec::new();
    let mut due_dates = Vec::new();
    for copy in copies.iter().filter(|c| c.status == "on_loan") {
        if let Some(loan_id) = copy.loan_id
            && let Some(&due_at) = due.get(&loan_id)
        {
            due_dates.push(due_at);
            on_loan.push(CopyOnLoan {
                copy_id: copy.copy_id.to_string(),
                barcode: copy.barcode.clone(),
                due_date: rfc3339(due_at),
            });
        }
    }
    let in_circulation = count(
        copies
            .iter()
            .filter(|c| c.status != "lost" && c.status != "withdrawn"),
    );
    let copies_available = count(copies.iter().filter(|c| c.status == "available"));
    Ok(axum::Json(Availability {
        book_id: book_id.to_string(),
        copies_total: in_circulation,
        copies_available,
        available: copies_available > 0,
        on_loan,
        on_hold_shelf: count(copies.iter().filter(|c| c.status == "on_hold_shelf")),
        holds_waiting,
        next_due_date: due_dates.into_iter().min().map(rfc3339),
    })
    .into_response())
}

fn count<T>(items: impl Iterator<Item = T>) -> u32 {
    u32::try_from(items.count()).unwrap_or(u32::MAX)
}

/// Places a hold on a book (not a copy) for a member: they join its queue and get the next copy
/// that comes back, on the hold shelf until the pickup deadline.
#[utoipa::path(
    post, path = "/holds", tag = "lending",
    request_body = NewHold,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = HoldDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`hold_not_needed` (a copy is free), `hold_exists`, `already_borrowed`, `hold_limit_reached` or `member_blocked`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.lending.place_hold", skip_all)]
pub(crate) async fn place_hold(
    State(state): State<AppState>,
    User(caller): User,
    headers: HeaderMap,
    Json(body): Json<NewHold>,
) -> Result<Response, ApiError> {
    let mut v = Validation::default();
    let book_id = body.book_id.parse::<BookId>().ok();
    if book_id.is_none() {
        v.fail("book_id", "book_id must be a book id");
    }
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
    v.finish()?;
    let (Some(book_id), Some(user_id)) = (book_id, user_id) else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "user_id is required for callers who are not a member",
        ));
    };
    ensure_self_or_staff(&caller, user_id, "place holds")?;
    read_your_writes(&state, &headers).await?;
    ensure_book(&state, book_id).await?;
    let origin = origin(
        &caller,
        &format!("POST /holds {book_id} {user_id}"),
        &headers,
    )?;
    let hold_id = minted(&origin, "hold").map_or_else(HoldId::new, HoldId::from_uuid);
    let request = state
        .lending
        .hold_request(hold_id, book_id, user_id, state.clock.now());
    let process = LendingProcess::for_request(&*state.bus, &*state.store, &origin);
    let (request, outcome) = process
        .place_hold(&origin, &request, state.lending.limits())
        .await?;
    hold_reply(&state, request.hold_id, &outcome, StatusCode::CREATED).await
}

async fn visible_hold(
    state: &AppState,
    caller: &Principal,
    hold_id: HoldId,
) -> Result<HoldRow, ApiError> {
    let hold = state
        .read
        .hold(hold_id)
        .await?
        .filter(|h| !matches!(h.status, HoldStatus::Refused))
        .ok_or_else(|| ApiError::not_found("hold"))?;
    if !caller.is_user_or_privileged(hold.user_id) {
        return Err(ApiError::not_found("hold"));
    }
    Ok(hold)
}

/// One hold (its member or staff), with its place in the queue.
#[utoipa::path(
    get, path = "/holds/{id}", tag = "lending",
    params(("id" = String, Path, format = Uuid), ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = HoldDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.lending.get_hold", skip_all, fields(%hold_id))]
pub(crate) async fn get_hold(
    State(state): State<AppState>,
    User(caller): User,
    PathId(hold_id): PathId<HoldId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let hold = visible_hold(&state, &caller, hold_id).await?;
    Ok(axum::Json(hold_with_priority(&state, hold).await?).into_response())
}

/// Cancels a hold (its member or staff); a copy waiting on the shelf for it passes to the next.
#[utoipa::path(
    delete, path = "/holds/{id}", tag = "lending",
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = HoldDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.lending.cancel_hold", skip_all, fields(%hold_id))]
pub(crate) async fn cancel_hold(
    State(state): State<AppState>,
    User(caller): User,
    PathId(hold_id): PathId<HoldId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let hold = visible_hold(&state, &caller, hold_id).await?;
    let origin = origin(&caller, &format!("DELETE /holds/{hold_id}"), &headers)?;
    let now = state.clock.now();
    let process = LendingProcess::for_request(&*state.bus, &*state.store, &origin);
    let outcome = match hold.status {
        // A hold still being placed is not in the queue yet: the book answers `hold_not_found`.
        HoldStatus::Pending | HoldStatus::Waiting | HoldStatus::Ready => {
            process
                .cancel_hold(
                    &origin,
                    hold.book_id,
                    hold_id,
                    hold.user_id,
                    now,
                    state.lending.pickup_until(now),
                )
                .await?
        }
        _ => {
            return Ok(axum::Json(hold_with_priority(&state, hold).await?).into_response());
        }
    };
    hold_reply(&state, hold_id, &outcome, StatusCode::OK).await
}

/// Holds in queue order: a member's own (the default for members), or anyone's for staff.
#[utoipa::path(
    get, path = "/holds", tag = "lending",
    params(HoldParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = HoldList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.lending.list_holds", skip_all)]
pub(crate) async fn holds(
    State(state): State<AppState>,
    User(caller): User,
    headers: HeaderMap,
    Query(params): Query<HoldParams>,
) -> Result<Response, ApiError> {
    let (user_id, book_id) = list_scope(
        &caller,
        params.user_id.as_deref(),
        params.book_id.as_deref(),
        "list holds",
    )?;
    let active_only = match params.status.as_deref() {
        None | Some("active") => true,
        Some("all") => false,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "status must be active or all",
            ));
        }
    };
    read_your_writes(&state, &headers).await?;
    let request = page(params.limit, params.cursor)?;
    let result = state
        .read
        .holds(&HoldQuery {
            user_id,
            book_id,
            active_only,
            page: request.clone(),
        })
        .await?;
    let mut query = vec![("limit", request.limit.to_string())];
    if let Some(user_id) = user_id {
        query.push(("user_id", user_id.to_string()));
    }
    if let Some(book_id) = book_id {
        query.push(("book_id", book_id.to_string()));
    }
    if let Some(status) = params.status {
        query.push(("status", status));
    }
    let link = next_link("/holds", &query, result.next_cursor.as_deref());
    let holds = holds_with_priority(&state, result.items).await?;
    Ok((
        link,
        axum::Json(HoldList {
            holds,
            next_cursor: result.next_cursor,
        }),
    )
        .into_response())
}

//! Lending (circulation) over real HTTP on both backends: the seed's borrow and return paths, one
//! copy against a hundred concurrent borrowers, a member's loan limit under concurrency, keyed
//! retries, the hold queue and its pickup deadline, renewals, overdue loans and the blocks they
//! bring, registered copies (lost, withdrawn), authorization and input checks, and the OpenAPI
//! document. The deadline tests run a node on a `ManualClock` with a fast scheduler tick and move
//! the clock days ahead instead of waiting.

use std::time::Duration;

use futures::future::join_all;
use quire_domain::ids::{BookId, UserId};
use quire_store::RecordedEvent;
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{
    ADMIN_PASSWORD, Backend, Member, TestApp, assert_problem, count_of, eventually, header,
    json_of, on_backends, spawn_app, spawn_app_with, spawn_with_clock,
};

/// How long a test waits for the scheduler to act on a moved clock.
const SCHEDULER_WAIT: Duration = Duration::from_secs(10);

/// `POST /books/{book}/borrow/{user}` as the admin.
async fn borrow(app: &TestApp, book: &str, user: &str) -> reqwest::Response {
    app.admin()
        .post(app.url(&format!("/books/{book}/borrow/{user}")))
        .send()
        .await
        .unwrap()
}

/// A borrow that must succeed: the loan.
async fn borrowed(app: &TestApp, book: &str, user: &str) -> Value {
    created(borrow(app, book, user).await).await
}

/// The body of a `201 Created` answer.
async fn created(response: reqwest::Response) -> Value {
    json_of(response, StatusCode::CREATED).await
}

/// `GET path` as the admin, which must answer 200.
async fn admin_get(app: &TestApp, path: &str) -> Value {
    let response = app.admin().get(app.url(path)).send().await.unwrap();
    json_of(response, StatusCode::OK).await
}

/// The events of a book's lending stream, `lending-{book}`.
async fn lending_events(app: &TestApp, book: &str) -> Vec<RecordedEvent> {
    app.stream_events(&book.parse::<BookId>().unwrap().lending_stream_id())
        .await
}

/// The events of a member's stream, `user-{id}`.
async fn user_events(app: &TestApp, user: &str) -> Vec<RecordedEvent> {
    app.stream_events(&user.parse::<UserId>().unwrap().stream_id())
        .await
}

/// The ids of a loan list answer, in order.
fn loan_ids(list: &Value) -> Vec<&str> {
    list["loans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect()
}

fn instant(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().unwrap(), &Rfc3339).unwrap()
}

async fn the_seed_borrow_and_return_flow(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app
        .admin()
        .post(app.url("/users/"))
        .json(&json!({"name": "Alice"}))
        .send()
        .await
        .unwrap();
    let alice = created(alice).await["id"].as_str().unwrap().to_string();
    let book = app
        .admin()
        .post(app.url("/books/"))
        .json(&json!({"title": "1984", "author": "George Orwell"}))
        .send()
        .await
        .unwrap();
    let book = created(book).await["id"].as_str().unwrap().to_string();

    let response = borrow(&app, &book, &alice).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = header(&response, "location");
    let loan = created(response).await;
    let loan_id = loan["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/loans/{loan_id}"));
    assert!(loan["copy_id"].is_string(), "{loan}");
    assert_eq!(loan["status"], "open");
    assert_eq!(loan["book_id"], book.as_str());
    assert_eq!(loan["user_id"], alice.as_str());
    assert_eq!(loan["overdue"], false);
    assert_eq!(loan["renewals_count"], 0);
    assert_eq!(loan["checkin_date"], Value::Null);
    let lent_for = instant(&loan["due_date"]) - instant(&loan["checkout_date"]);
    assert_eq!(
        lent_for,
        time::Duration::days(21),
        "the default loan period"
    );

    // The same borrow again, and another member, are refused.
    assert_problem(
        borrow(&app, &book, &alice).await,
        StatusCode::CONFLICT,
        "already_borrowed",
    )
    .await;
    let bob = app.enrol("Bob").await;
    assert_problem(
        borrow(&app, &book, &bob).await,
        StatusCode::CONFLICT,
        "copy_unavailable",
    )
    .await;

    // Return with the trailing slash, as the seed writes it.
    let returned = app
        .admin()
        .post(app.url(&format!("/books/{book}/return/{alice}/")))
        .send()
        .await
        .unwrap();
    let returned = json_of(returned, StatusCode::OK).await;
    assert_eq!(returned["id"], loan_id.as_str());
    assert_eq!(returned["status"], "returned");
    assert!(returned["checkin_date"].is_string(), "{returned}");
    let again = app
        .admin()
        .post(app.url(&format!("/books/{book}/return/{alice}")))
        .send()
        .await
        .unwrap();
    assert_problem(again, StatusCode::CONFLICT, "not_on_loan").await;

    // Borrow again, on the trailing-slash path; return on the bare one.
    let second = app
        .admin()
        .post(app.url(&format!("/books/{book}/borrow/{alice}/")))
        .send()
        .await
        .unwrap();
    let second = created(second).await;
    assert_ne!(second["id"], loan["id"], "a new loan");
    assert_eq!(second["status"], "open");
    let returned = app
        .admin()
        .post(app.url(&format!("/books/{book}/return/{alice}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(returned, StatusCode::OK).await["status"],
        "returned"
    );
    let bobs = borrowed(&app, &book, &bob).await;
    assert_eq!(bobs["status"], "open");

    // Alice's history, newest first.
    let list = admin_get(&app, &format!("/loans?user_id={alice}")).await;
    assert_eq!(
        loan_ids(&list),
        [second["id"].as_str().unwrap(), loan_id.as_str()]
    );
    assert!(
        list["loans"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["status"] == "returned")
    );
}

async fn a_hundred_members_race_for_one_copy_and_one_wins(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = app.add_book("The Only Copy").await;
    let members = join_all((0..100).map(|i| {
        let app = &app;
        async move { app.enrol(&format!("Member {i}")).await }
    }))
    .await;
    let admin = app.token("admin", ADMIN_PASSWORD).await;

    let outcomes = join_all(members.iter().map(|member| {
        let (app, admin, book) = (&app, &admin, &book);
        async move {
            let response = app
                .bearer(admin)
                .post(app.url(&format!("/books/{book}/borrow/{member}")))
                .send()
                .await
                .unwrap();
            if response.status() == StatusCode::CREATED {
                Some(created(response).await)
            } else {
                assert_problem(response, StatusCode::CONFLICT, "copy_unavailable").await;
                None
            }
        }
    }))
    .await;
    let winners: Vec<(&String, &Value)> = members
        .iter()
        .zip(&outcomes)
        .filter_map(|(member, outcome)| outcome.as_ref().map(|loan| (member, loan)))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one borrow succeeds");
    let (winner, loan) = winners[0];
    assert_eq!(loan["user_id"], winner.as_str());

    let events = lending_events(&app, &book).await;
    assert_eq!(count_of(&events, "LoanOpened"), 1);
    let opened = events
        .iter()
        .find(|e| e.event_type == "LoanOpened")
        .unwrap();
    assert_eq!(opened.payload["member"], winner.as_str());

    let availability = app.get_json(&format!("/books/{book}/availability")).await;
    assert_eq!(availability["copies_total"], 1);
    assert_eq!(availability["copies_available"], 0);
    assert_eq!(availability["available"], false);
    assert_eq!(availability["on_loan"].as_array().unwrap().len(), 1);

    // Every member's loans agree: the winner has the open loan, nobody else has any, and every
    // refused borrow gave its member's slot back.
    let checks = join_all(members.iter().map(|member| {
        let app = &app;
        async move {
            let list = admin_get(app, &format!("/loans?user_id={member}")).await;
            let slots = user_events(app, member).await;
            (
                member,
                list,
                count_of(&slots, "LoanSlotTaken"),
                count_of(&slots, "LoanSlotReleased"),
            )
        }
    }))
    .await;
    for (member, list, taken, released) in checks {
        assert_eq!(taken, 1, "{member} took a slot once");
        if member == winner {
            assert_eq!(loan_ids(&list), [loan["id"].as_str().unwrap()]);
            assert_eq!(list["loans"][0]["status"], "open");
            assert_eq!(released, 0, "the winner holds their slot");
        } else {
            assert_eq!(loan_ids(&list), Vec::<&str>::new(), "{member}: {list}");
            assert_eq!(released, 1, "{member}'s slot was given back");
        }
    }
}

async fn a_member_at_the_loan_limit_is_refused_under_concurrency(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.lending.max_loans = 5).await;
    let member = app.enrol("Greedy Reader").await;
    let books = join_all((0..20).map(|i| {
        let app = &app;
        async move { app.add_book(&format!("Book {i:02}")).await }
    }))
    .await;
    let admin = app.token("admin", ADMIN_PASSWORD).await;

    let outcomes = join_all(books.iter().map(|book| {
        let (app, admin, member) = (&app, &admin, &member);
        async move {
            let response = app
                .bearer(admin)
                .post(app.url(&format!("/books/{book}/borrow/{member}")))
                .send()
                .await
                .unwrap();
            if response.status() == StatusCode::CREATED {
                Some(created(response).await)
            } else {
                assert_problem(response, StatusCode::CONFLICT, "loan_limit_reached").await;
                None
            }
        }
    }))
    .await;
    let mut lent: Vec<&str> = outcomes
        .iter()
        .flatten()
        .map(|loan| loan["book_id"].as_str().unwrap())
        .collect();
    assert_eq!(lent.len(), 5, "exactly the limit is lent");

    let open = admin_get(&app, &format!("/loans?user_id={member}&status=open")).await;
    let mut listed: Vec<&str> = open["loans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["book_id"].as_str().unwrap())
        .collect();
    lent.sort_unstable();
    listed.sort_unstable();
    assert_eq!(listed, lent);
    // A refused borrow stops at the member: the book's circulation never hears of it.
    for (book, outcome) in books.iter().zip(&outcomes) {
        let opened = count_of(&lending_events(&app, book).await, "LoanOpened");
        assert_eq!(opened, usize::from(outcome.is_some()), "{book}");
    }
}

async fn an_idempotency_key_makes_a_borrow_happen_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let member = app.enrol("Careful Reader").await;
    let book = app.add_book("Once Only").await;
    let keyed = |book: &str, member: &str, key: &'static str| {
        app.admin()
            .post(app.url(&format!("/books/{book}/borrow/{member}")))
            .header("idempotency-key", key)
            .send()
    };

    // Sequential retries.
    let first = created(keyed(&book, &member, "borrow-1").await.unwrap()).await;
    let retry = created(keyed(&book, &member, "borrow-1").await.unwrap()).await;
    assert_eq!(retry, first, "the retry answers the first loan");
    assert_eq!(
        count_of(&lending_events(&app, &book).await, "LoanOpened"),
        1
    );
    let list = admin_get(&app, &format!("/loans?user_id={member}")).await;
    assert_eq!(loan_ids(&list), [first["id"].as_str().unwrap()]);

    // Ten concurrent attempts with one key.
    let racer = app.enrol("Impatient Reader").await;
    let raced = app.add_book("Raced").await;
    let replies = join_all((0..10).map(|_| {
        let (raced, racer) = (&raced, &racer);
        async move { created(keyed(raced, racer, "borrow-2").await.unwrap()).await }
    }))
    .await;
    assert!(
        replies.iter().all(|reply| *reply == replies[0]),
        "{replies:#?}"
    );
    assert_eq!(
        count_of(&lending_events(&app, &raced).await, "LoanOpened"),
        1
    );
    assert_eq!(
        count_of(&user_events(&app, &racer).await, "LoanSlotTaken"),
        1
    );
    let list = admin_get(&app, &format!("/loans?user_id={racer}")).await;
    assert_eq!(loan_ids(&list), [replies[0]["id"].as_str().unwrap()]);

    // A refused keyed borrow replays its refusal, even once the copy is back.
    let late = app.enrol("Late Reader").await;
    let refused = keyed(&book, &late, "borrow-3").await.unwrap();
    assert_problem(refused, StatusCode::CONFLICT, "copy_unavailable").await;
    let returned = app
        .admin()
        .post(app.url(&format!("/books/{book}/return/{member}")))
        .send()
        .await
        .unwrap();
    assert_eq!(returned.status(), StatusCode::OK);
    let replayed = keyed(&book, &late, "borrow-3").await.unwrap();
    assert_problem(replayed, StatusCode::CONFLICT, "copy_unavailable").await;
    // A new key is a new request.
    let fresh = created(keyed(&book, &late, "borrow-4").await.unwrap()).await;
    assert_eq!(fresh["status"], "open");

    // Holds too: ten concurrent keyed attempts place one hold.
    let replies = join_all((0..10).map(|_| {
        let (app, book, member) = (&app, &book, &member);
        async move {
            let response = app
                .admin()
                .post(app.url("/holds"))
                .header("idempotency-key", "hold-1")
                .json(&json!({ "book_id": book, "user_id": member }))
                .send()
                .await
                .unwrap();
            created(response).await
        }
    }))
    .await;
    assert!(
        replies.iter().all(|reply| *reply == replies[0]),
        "{replies:#?}"
    );
    assert_eq!(replies[0]["status"], "waiting");
    assert_eq!(
        count_of(&lending_events(&app, &book).await, "HoldPlaced"),
        1
    );
    assert_eq!(
        count_of(&user_events(&app, &member).await, "HoldSlotTaken"),
        1
    );
}

async fn holds_queue_in_order_and_expire_after_the_pickup_window(backend: Backend) {
    let (app, clock) = spawn_with_clock(backend).await;
    let book = app.add_book("Much Wanted").await;
    let holder = app.enrol("Current Holder").await;
    let waiting = [
        app.signup("bea").await,
        app.signup("cal").await,
        app.signup("dee").await,
    ];
    let loan = borrowed(&app, &book, &holder).await;

    // Three members queue at once: three holds, strictly in the order the book recorded them.
    let placed = join_all(waiting.iter().map(|member| {
        let (app, book) = (&app, &book);
        async move {
            let response = app
                .as_user(member)
                .post(app.url("/holds"))
                .json(&json!({ "book_id": book }))
                .send()
                .await
                .unwrap();
            created(response).await
        }
    }))
    .await;
    for (member, hold) in waiting.iter().zip(&placed) {
        assert_eq!(hold["user_id"], member.id.as_str());
        assert_eq!(hold["status"], "waiting");
        assert!(hold["placed_at"].is_string(), "{hold}");
    }
    let recorded: Vec<String> = lending_events(&app, &book)
        .await
        .iter()
        .filter(|e| e.event_type == "HoldPlaced")
        .map(|e| e.payload["hold_id"].as_str().unwrap().to_string())
        .collect();
    let queue = admin_get(&app, &format!("/holds?book_id={book}")).await;
    let queue = queue["holds"].as_array().unwrap();
    let listed: Vec<String> = queue
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, recorded, "the queue is the order of placement");
    let priorities: Vec<&Value> = queue.iter().map(|h| &h["priority"]).collect();
    assert_eq!(priorities, [&json!(1), &json!(2), &json!(3)]);
    // Name the members by their place in the queue.
    let in_queue = |n: usize| -> (&Member, String) {
        let member = waiting
            .iter()
            .find(|m| queue[n]["user_id"] == m.id.as_str())
            .unwrap();
        (member, listed[n].clone())
    };
    let (first, first_hold) = in_queue(0);
    let (second, second_hold) = in_queue(1);
    let (third, third_hold) = in_queue(2);
    let own = app
        .as_user(second)
        .get(app.url("/holds"))
        .send()
        .await
        .unwrap();
    let own = json_of(own, StatusCode::OK).await;
    assert_eq!(own["holds"].as_array().unwrap().len(), 1);
    assert_eq!(own["holds"][0]["id"], second_hold.as_str());
    assert_eq!(own["holds"][0]["priority"], 2);

    // No second hold on one book, and none while a copy is free.
    let twice = app
        .as_user(first)
        .post(app.url("/holds"))
        .json(&json!({ "book_id": book }))
        .send()
        .await
        .unwrap();
    assert_problem(twice, StatusCode::CONFLICT, "hold_exists").await;
    let free = app.add_book("On The Shelf").await;
    let needless = app
        .as_user(first)
        .post(app.url("/holds"))
        .json(&json!({ "book_id": free }))
        .send()
        .await
        .unwrap();
    assert_problem(needless, StatusCode::CONFLICT, "hold_not_needed").await;

    // Waiting members come first: no renewal for the holder.
    let renewal = app
        .admin()
        .post(app.url(&format!("/loans/{}/renewal", loan["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_problem(renewal, StatusCode::CONFLICT, "renewal_not_allowed").await;

    // The copy comes back: it waits on the hold shelf for the first in the queue.
    let returned = app
        .admin()
        .post(app.url(&format!("/books/{book}/return/{holder}/")))
        .send()
        .await
        .unwrap();
    assert_eq!(returned.status(), StatusCode::OK);
    let ready = app
        .as_user(first)
        .get(app.url(&format!("/holds/{first_hold}")))
        .send()
        .await
        .unwrap();
    let ready = json_of(ready, StatusCode::OK).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["priority"], 1);
    assert_eq!(ready["copy_id"], loan["copy_id"]);
    let pickup = instant(&ready["expiration_date"]) - OffsetDateTime::now_utc();
    assert!(
        pickup > time::Duration::days(6) && pickup <= time::Duration::days(7),
        "{ready}"
    );
    let availability = app.get_json(&format!("/books/{book}/availability")).await;
    assert_eq!(availability["on_hold_shelf"], 1);
    assert_eq!(availability["copies_available"], 0);
    assert_eq!(availability["available"], false);
    assert_eq!(availability["holds_waiting"], 2);
    // The next in line cannot take the copy kept for the first.
    let jump = app
        .as_user(second)
        .post(app.url(&format!("/books/{book}/borrow/{}", second.id)))
        .send()
        .await
        .unwrap();
    assert_problem(jump, StatusCode::CONFLICT, "copy_unavailable").await;

    // The first never picks it up: past the pickup window, the scheduler passes it on.
    clock.advance_days(8);
    eventually(
        "the first hold expires and the second is ready",
        SCHEDULER_WAIT,
        async || {
            let a = admin_get(&app, &format!("/holds/{first_hold}")).await;
            let b = admin_get(&app, &format!("/holds/{second_hold}")).await;
            a["status"] == "expired" && b["status"] == "ready"
        },
    )
    .await;
    let expired = admin_get(&app, &format!("/holds/{first_hold}")).await;
    assert_eq!(expired["priority"], Value::Null);
    let next = admin_get(&app, &format!("/holds/{second_hold}")).await;
    assert_eq!(next["priority"], 1);
    assert!(instant(&next["expiration_date"]) > instant(&ready["expiration_date"]));
    assert_eq!(
        admin_get(&app, &format!("/holds/{third_hold}")).await["priority"],
        2
    );

    let fetched = app
        .as_user(second)
        .post(app.url(&format!("/books/{book}/borrow/{}", second.id)))
        .send()
        .await
        .unwrap();
    let fetched = created(fetched).await;
    assert_eq!(fetched["copy_id"], loan["copy_id"]);
    let fulfilled = admin_get(&app, &format!("/holds/{second_hold}")).await;
    assert_eq!(fulfilled["status"], "fulfilled");
    assert_eq!(fulfilled["loan_id"], fetched["id"]);
    let availability = app.get_json(&format!("/books/{book}/availability")).await;
    assert_eq!(availability["on_hold_shelf"], 0);
    assert_eq!(availability["on_loan"].as_array().unwrap().len(), 1);
    assert_eq!(availability["holds_waiting"], 1);

    // The last one gives up.
    let cancelled = app
        .as_user(third)
        .delete(app.url(&format!("/holds/{third_hold}")))
        .send()
        .await
        .unwrap();
    let cancelled = json_of(cancelled, StatusCode::OK).await;
    assert_eq!(cancelled["status"], "cancelled");
    let active = admin_get(&app, &format!("/holds?book_id={book}")).await;
    assert_eq!(active["holds"], json!([]));
    let all = admin_get(&app, &format!("/holds?book_id={book}&status=all")).await;
    let statuses: Vec<&str> = all["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["expired", "fulfilled", "cancelled"]);
}

async fn renewals_extend_the_due_date_up_to_the_limit(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = app.signup("renewer").await;
    let other = app.signup("nosy").await;
    let book = app.add_book("A Long Read").await;
    let loan = app
        .as_user(&reader)
        .post(app.url(&format!("/books/{book}/borrow/{}", reader.id)))
        .send()
        .await
        .unwrap();
    let loan = created(loan).await;
    let renewal = app.url(&format!("/loans/{}/renewal", loan["id"].as_str().unwrap()));

    // Somebody else's loan is not theirs to renew, nor to know of.
    let meddling = app
        .as_user(&other)
        .post(renewal.clone())
        .send()
        .await
        .unwrap();
    assert_problem(meddling, StatusCode::NOT_FOUND, "not_found").await;

    let mut due = instant(&loan["due_date"]);
    for n in 1..=2 {
        let renewed = app
            .as_user(&reader)
            .post(renewal.clone())
            .send()
            .await
            .unwrap();
        let renewed = json_of(renewed, StatusCode::OK).await;
        assert_eq!(renewed["renewals_count"], n);
        assert_eq!(renewed["status"], "open");
        assert_eq!(renewed["id"], loan["id"]);
        let moved = instant(&renewed["due_date"]);
        assert_eq!(moved - due, time::Duration::days(14), "{renewed}");
        due = moved;
    }
    let exhausted = app
        .as_user(&reader)
        .post(renewal.clone())
        .send()
        .await
        .unwrap();
    assert_problem(exhausted, StatusCode::CONFLICT, "renewal_not_allowed").await;
    let current = app
        .as_user(&reader)
        .get(app.url(&format!("/loans/{}", loan["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    let current = json_of(current, StatusCode::OK).await;
    assert_eq!(current["renewals_count"], 2);
    assert_eq!(instant(&current["due_date"]), due);
}

async fn an_overdue_loan_blocks_its_member_until_returned(backend: Backend) {
    let (app, clock) = spawn_with_clock(backend).await;
    let member = app.enrol("Forgetful Reader").await;
    let book = app.add_book("Overdue").await;
    let other = app.add_book("Next Read").await;
    let loan = borrowed(&app, &book, &member).await;
    let loan_id = loan["id"].as_str().unwrap().to_string();
    let overdue = admin_get(&app, "/loans?status=overdue").await;
    assert_eq!(overdue["loans"], json!([]));

    clock.advance_days(22);
    eventually(
        "the scheduler records the loan overdue",
        SCHEDULER_WAIT,
        async || {
            count_of(&lending_events(&app, &book).await, "LoanOverdue") == 1
                && count_of(&user_events(&app, &member).await, "LoanFlaggedOverdue") == 1
        },
    )
    .await;
    eventually(
        "the read model shows the overdue loan",
        SCHEDULER_WAIT,
        async || {
            let list = admin_get(&app, "/loans?status=overdue").await;
            loan_ids(&list) == [loan_id.as_str()]
        },
    )
    .await;
    let shown = admin_get(&app, &format!("/loans/{loan_id}")).await;
    assert_eq!(shown["status"], "overdue");
    assert_eq!(shown["overdue"], true);
    let open = admin_get(&app, &format!("/loans?user_id={member}&status=open")).await;
    assert_eq!(
        loan_ids(&open),
        [loan_id.as_str()],
        "overdue loans are open"
    );

    // Blocked: no borrowing, no holds, no renewal.
    assert_problem(
        borrow(&app, &other, &member).await,
        StatusCode::CONFLICT,
        "member_blocked",
    )
    .await;
    let hold = app
        .admin()
        .post(app.url("/holds"))
        .json(&json!({ "book_id": book, "user_id": member }))
        .send()
        .await
        .unwrap();
    assert_problem(hold, StatusCode::CONFLICT, "member_blocked").await;
    let renewal = app
        .admin()
        .post(app.url(&format!("/loans/{loan_id}/renewal")))
        .send()
        .await
        .unwrap();
    assert_problem(renewal, StatusCode::CONFLICT, "renewal_not_allowed").await;

    // Returning it lifts the block: the overdue flag leaves with the slot.
    let returned = app
        .admin()
        .post(app.url(&format!("/loans/{loan_id}/return")))
        .send()
        .await
        .unwrap();
    let returned = json_of(returned, StatusCode::OK).await;
    assert_eq!(returned["status"], "returned");
    assert_eq!(returned["overdue"], false);
    let overdue = admin_get(&app, "/loans?status=overdue").await;
    assert_eq!(overdue["loans"], json!([]));
    let next = borrowed(&app, &other, &member).await;
    assert_eq!(next["status"], "open");
}

async fn registered_copies_lend_get_lost_and_are_withdrawn(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.lending.max_loans = 1).await;
    let staff_only = app.signup("patron").await;
    let book = app.add_book("Two Copies").await;
    let add = |barcode: &str| {
        app.admin()
            .post(app.url(&format!("/books/{book}/copies")))
            .json(&json!({ "barcode": barcode }))
            .send()
    };

    let first = created(add("QUIRE-0001").await.unwrap()).await;
    assert_eq!(first["book_id"], book.as_str());
    assert_eq!(first["barcode"], "QUIRE-0001");
    assert_eq!(first["status"], "available");
    // Registering a barcode twice is the same copy (its id derives from book and barcode).
    let again = created(add("QUIRE-0001").await.unwrap()).await;
    assert_eq!(again["id"], first["id"]);
    let second = created(add("QUIRE-0002").await.unwrap()).await;
    assert_ne!(second["id"], first["id"]);
    let by_member = app
        .as_user(&staff_only)
        .post(app.url(&format!("/books/{book}/copies")))
        .json(&json!({ "barcode": "QUIRE-0003" }))
        .send()
        .await
        .unwrap();
    assert_problem(by_member, StatusCode::FORBIDDEN, "forbidden").await;
    let anonymous = app
        .client
        .post(app.url(&format!("/books/{book}/copies")))
        .json(&json!({ "barcode": "QUIRE-0003" }))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let blank = add("   ").await.unwrap();
    assert_problem(blank, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let copies = app.get_json(&format!("/books/{book}/copies")).await;
    let barcodes: Vec<&str> = copies["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["barcode"].as_str().unwrap())
        .collect();
    assert_eq!(barcodes, ["QUIRE-0001", "QUIRE-0002"]);

    // Two copies lend twice, in registration order; then none is left.
    let (m1, m2, m3) = (
        app.enrol("One").await,
        app.enrol("Two").await,
        app.enrol("Three").await,
    );
    let loan1 = borrowed(&app, &book, &m1).await;
    assert_eq!(loan1["copy_id"], first["id"]);
    assert_eq!(loan1["barcode"], "QUIRE-0001");
    let loan2 = borrowed(&app, &book, &m2).await;
    assert_eq!(loan2["copy_id"], second["id"]);
    assert_problem(
        borrow(&app, &book, &m3).await,
        StatusCode::CONFLICT,
        "copy_unavailable",
    )
    .await;
    let availability = app.get_json(&format!("/books/{book}/availability")).await;
    assert_eq!(availability["copies_total"], 2);
    assert_eq!(availability["copies_available"], 0);
    assert_eq!(availability["on_loan"].as_array().unwrap().len(), 2);
    assert!(availability["next_due_date"].is_string());

    // A lent copy cannot be withdrawn, but it can be lost: its loan ends and frees the slot.
    let copy_url = |copy: &Value| {
        app.url(&format!(
            "/books/{book}/copies/{}",
            copy["id"].as_str().unwrap()
        ))
    };
    let in_use = app.admin().delete(copy_url(&first)).send().await.unwrap();
    assert_problem(in_use, StatusCode::CONFLICT, "copy_in_use").await;
    let lost = app
        .admin()
        .post(format!("{}/lost", copy_url(&first)))
        .send()
        .await
        .unwrap();
    let lost = json_of(lost, StatusCode::OK).await;
    assert_eq!(lost["status"], "lost");
    let ended = admin_get(&app, &format!("/loans/{}", loan1["id"].as_str().unwrap())).await;
    assert_eq!(ended["status"], "lost");
    assert!(ended["checkin_date"].is_string(), "{ended}");
    let elsewhere = app.add_book("Something Else").await;
    let next = borrowed(&app, &elsewhere, &m1).await;
    assert_eq!(
        next["status"], "open",
        "the lost loan's slot was given back"
    );
    assert_problem(
        borrow(&app, &book, &m3).await,
        StatusCode::CONFLICT,
        "copy_unavailable",
    )
    .await;

    // Back on the shelf, the other copy can be withdrawn (again and again).
    let returned = app
        .admin()
        .post(app.url(&format!("/loans/{}/return", loan2["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(returned.status(), StatusCode::OK);
    for _ in 0..2 {
        let withdrawn = app.admin().delete(copy_url(&second)).send().await.unwrap();
        let withdrawn = json_of(withdrawn, StatusCode::OK).await;
        assert_eq!(withdrawn["status"], "withdrawn");
    }
    let by_member = app
        .as_user(&staff_only)
        .delete(copy_url(&second))
        .send()
        .await
        .unwrap();
    assert_problem(by_member, StatusCode::FORBIDDEN, "forbidden").await;
    let unknown = app
        .admin()
        .delete(app.url(&format!("/books/{book}/copies/{}", uuid::Uuid::now_v7())))
        .send()
        .await
        .unwrap();
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let copies = app.get_json(&format!("/books/{book}/copies")).await;
    let statuses: Vec<&str> = copies["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["lost", "withdrawn"]);
    let availability = app.get_json(&format!("/books/{book}/availability")).await;
    assert_eq!(availability["copies_total"], 0);
    assert_eq!(availability["available"], false);
    assert_problem(
        borrow(&app, &book, &m3).await,
        StatusCode::CONFLICT,
        "copy_unavailable",
    )
    .await;
}

async fn lending_checks_who_asks_and_what_for(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signup("ann").await;
    let ben = app.signup("ben").await;
    let book = app.add_book("Private Matters").await;

    // Members borrow for themselves only; staff for anyone; nobody anonymously.
    let for_other = app
        .as_user(&ann)
        .post(app.url(&format!("/books/{book}/borrow/{}", ben.id)))
        .send()
        .await
        .unwrap();
    assert_problem(for_other, StatusCode::FORBIDDEN, "forbidden").await;
    let anonymous = app
        .client
        .post(app.url(&format!("/books/{book}/borrow/{}", ann.id)))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let bens = borrowed(&app, &book, &ben.id).await;
    let bens_id = bens["id"].as_str().unwrap();

    // Another member's loan is invisible to them; their own list is theirs.
    let peek = app
        .as_user(&ann)
        .get(app.url(&format!("/loans/{bens_id}")))
        .send()
        .await
        .unwrap();
    assert_problem(peek, StatusCode::NOT_FOUND, "not_found").await;
    let return_others = app
        .as_user(&ann)
        .post(app.url(&format!("/loans/{bens_id}/return")))
        .send()
        .await
        .unwrap();
    assert_problem(return_others, StatusCode::NOT_FOUND, "not_found").await;
    let list_others = app
        .as_user(&ann)
        .get(app.url(&format!("/loans?user_id={}", ben.id)))
        .send()
        .await
        .unwrap();
    assert_problem(list_others, StatusCode::FORBIDDEN, "forbidden").await;
    let all_loans = app
        .as_user(&ann)
        .get(app.url(&format!("/loans?book_id={book}")))
        .send()
        .await
        .unwrap();
    let all_loans = json_of(all_loans, StatusCode::OK).await;
    assert_eq!(all_loans["loans"], json!([]), "a member lists their own");
    let own = app
        .as_user(&ben)
        .get(app.url(&format!("/users/{}/loans", ben.id)))
        .send()
        .await
        .unwrap();
    let own = json_of(own, StatusCode::OK).await;
    assert_eq!(loan_ids(&own), [bens_id]);
    let seen = app
        .as_user(&ben)
        .get(app.url(&format!("/loans/{bens_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(seen, StatusCode::OK).await["id"], bens_id);

    // Unknown, removed and malformed things.
    let nowhere = uuid::Uuid::now_v7();
    assert_problem(
        borrow(&app, &nowhere.to_string(), &ann.id).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let head = app.head().await;
    assert_problem(
        borrow(&app, &book, &UserId::new().to_string()).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(app.head().await, head, "an unknown member records nothing");
    let removed = app.add_book("Withdrawn From The Catalogue").await;
    let deleted = app
        .admin()
        .delete(app.url(&format!("/books/{removed}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let token = header(&deleted, "consistency-token");
    let gone = app
        .admin()
        .post(app.url(&format!("/books/{removed}/borrow/{}", ann.id)))
        .header("consistency-token", &token)
        .send()
        .await
        .unwrap();
    assert_problem(gone, StatusCode::GONE, "book_removed").await;
    let gone = app
        .client
        .get(app.url(&format!("/books/{removed}/availability")))
        .send()
        .await
        .unwrap();
    assert_problem(gone, StatusCode::GONE, "book_removed").await;
    for path in [
        format!("/books/not-a-book/borrow/{}", ann.id),
        format!("/books/{book}/borrow/not-a-user"),
        format!("/books/{book}/return/42/"),
        "/loans/not-a-loan/renewal".to_string(),
        "/loans/not-a-loan/return".to_string(),
    ] {
        let response = app.admin().post(app.url(&path)).send().await.unwrap();
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    for path in [
        "/loans/not-a-loan",
        "/holds/not-a-hold",
        "/books/not-a-book/availability",
        "/books/not-a-book/copies",
    ] {
        let response = app.admin().get(app.url(path)).send().await.unwrap();
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let unknown_loan = app
        .admin()
        .get(app.url(&format!("/loans/{nowhere}")))
        .send()
        .await
        .unwrap();
    assert_problem(unknown_loan, StatusCode::NOT_FOUND, "not_found").await;

    // Bad queries and bodies.
    for path in [
        "/loans?status=bogus",
        "/loans?user_id=nobody",
        "/loans?colour=red",
        "/holds?status=bogus",
    ] {
        let response = app.admin().get(app.url(path)).send().await.unwrap();
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
    let bad_hold = app
        .as_user(&ann)
        .post(app.url("/holds"))
        .json(&json!({ "book_id": "not-a-book" }))
        .send()
        .await
        .unwrap();
    assert_problem(
        bad_hold,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let hold_for_other = app
        .as_user(&ann)
        .post(app.url("/holds"))
        .json(&json!({ "book_id": book, "user_id": ben.id }))
        .send()
        .await
        .unwrap();
    assert_problem(hold_for_other, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn the_openapi_document_lists_the_lending_paths(backend: Backend) {
    let app = spawn_app(backend).await;
    let spec = app.get_json("/openapi.json").await;
    for (path, method) in [
        ("/books/{book_id}/borrow/{user_id}", "post"),
        ("/books/{book_id}/return/{user_id}", "post"),
        ("/books/{id}/copies", "get"),
        ("/books/{id}/copies", "post"),
        ("/books/{id}/copies/{copy_id}", "delete"),
        ("/books/{id}/copies/{copy_id}/lost", "post"),
        ("/books/{id}/availability", "get"),
        ("/loans", "get"),
        ("/loans/{id}", "get"),
        ("/loans/{id}/renewal", "post"),
        ("/loans/{id}/return", "post"),
        ("/users/{id}/loans", "get"),
        ("/holds", "get"),
        ("/holds", "post"),
        ("/holds/{id}", "get"),
        ("/holds/{id}", "delete"),
    ] {
        let operation = &spec["paths"][path][method];
        assert!(operation.is_object(), "missing {method} {path}");
        assert_eq!(operation["tags"], json!(["lending"]), "{method} {path}");
    }
    let borrow = &spec["paths"]["/books/{book_id}/borrow/{user_id}"]["post"];
    for status in ["201", "403", "404", "409", "410"] {
        assert!(
            borrow["responses"][status].is_object(),
            "borrow documents {status}"
        );
    }
}

on_backends!(
    the_seed_borrow_and_return_flow,
    a_hundred_members_race_for_one_copy_and_one_wins,
    a_member_at_the_loan_limit_is_refused_under_concurrency,
    an_idempotency_key_makes_a_borrow_happen_once,
    holds_queue_in_order_and_expire_after_the_pickup_window,
    renewals_extend_the_due_date_up_to_the_limit,
    an_overdue_loan_blocks_its_member_until_returned,
    registered_copies_lend_get_lost_and_are_withdrawn,
    lending_checks_who_asks_and_what_for,
    the_openapi_document_lists_the_lending_paths,
);

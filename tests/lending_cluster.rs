//! Lending across a cluster: three `quire serve` nodes over real NATS (JetStream) on one real
//! Postgres database, requests spread round-robin over the nodes' HTTP addresses.
//!
//! - 100 members race for the one copy of a book: exactly one loan opens, everyone else is told
//!   `copy_unavailable`, and the book's lending stream records one `LoanOpened`.
//! - One member with `lending.max_loans` 5 borrows 20 books at once: exactly 5 loans, 15
//!   `loan_limit_reached`.
//!
//! NATS comes from `QUIRE_TEST_NATS_URL` (default `nats://127.0.0.1:4222`, with JetStream),
//! Postgres as for every Postgres test (`quire_store::testing`). Each test uses its own cluster
//! name and database, so tests share the services.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Api;
use common::cluster::Cluster;
use reqwest::StatusCode;

/// The cluster tests run one at a time: three debug-build nodes each, on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The nodes of every test.
const NODES: [&str; 3] = ["n1", "n2", "n3"];
/// The nodes' clients wait up to a minute: a hundred racing borrows keep three debug-build nodes
/// busy.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Enrols `n` patrons, a few at a time, spread over the nodes.
async fn enrol(apis: &[Api], n: usize) -> Vec<String> {
    let mut members = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
        let batch = chunk.iter().map(|&i| {
            let api = apis[i % apis.len()].clone();
            async move { api.enrol_patron(&format!("Reader {i}")).await }
        });
        members.extend(futures::future::join_all(batch).await);
    }
    members
}

/// The admin borrows `book` for `member` through `api`: the status and the problem code (or
/// the loan id of a success).
async fn borrow(api: &Api, book: &str, member: &str) -> (StatusCode, String) {
    let (status, body) = api.borrow(book, member).await;
    let what = if status.is_success() {
        body["id"].as_str().unwrap_or_default().to_string()
    } else {
        body["code"].as_str().unwrap_or_default().to_string()
    };
    (status, what)
}

/// Tallies answers as "201", "409 copy_unavailable", ….
fn tally(answers: &[(StatusCode, String)]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (status, what) in answers {
        let key = if status.is_success() {
            status.as_u16().to_string()
        } else {
            format!("{} {what}", status.as_u16())
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_members_race_for_one_copy_over_three_nodes() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::started_with(&NODES, &[], CLIENT_TIMEOUT).await;
    let apis = cluster.apis();
    let (book, _) = apis[0].create_book("The Only Copy").await;
    apis[1].add_copy(&book, "ONLY-1").await;
    let members = enrol(&apis, 100).await;

    let started = std::time::Instant::now();
    let attempts = members.iter().enumerate().map(|(i, member)| {
        let (api, book, member) = (apis[i % 3].clone(), book.clone(), member.clone());
        tokio::spawn(async move { borrow(&api, &book, &member).await })
    });
    let mut answers = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        answers.push(attempt.await.expect("borrow task"));
    }
    eprintln!(
        "100 borrows of one copy over 3 nodes in {:?}: {:?}",
        started.elapsed(),
        tally(&answers)
    );
    let winners: Vec<_> = answers
        .iter()
        .enumerate()
        .filter(|(_, (s, _))| *s == StatusCode::CREATED)
        .collect();
    let refused = answers
        .iter()
        .filter(|(s, code)| *s == StatusCode::CONFLICT && code == "copy_unavailable")
        .count();
    assert_eq!(
        (winners.len(), refused),
        (1, 99),
        "exactly one loan, 99 copy_unavailable: {:?}",
        tally(&answers)
    );
    let (winner, (_, loan_id)) = winners[0];

    // The log: one loan opened, of the one copy, for the winner.
    let types = cluster.store.event_types(&format!("lending-{book}"));
    assert_eq!(
        types.iter().filter(|t| *t == "LoanOpened").count(),
        1,
        "lending-{book}: {types:?}"
    );
    // Every loser's slot was given back: each member stream that took a slot released it,
    // except the winner's.
    for (i, member) in members.iter().enumerate() {
        let types = cluster.store.event_types(&format!("user-{member}"));
        let taken = types.iter().filter(|t| *t == "LoanSlotTaken").count();
        let released = types.iter().filter(|t| *t == "LoanSlotReleased").count();
        let expected = if i == winner { (1, 0) } else { (1, 1) };
        assert_eq!((taken, released), expected, "user-{member}: {types:?}");
    }

    // The read side agrees, on every node.
    for api in &apis {
        let (status, copies) = api.get(&format!("/books/{book}/copies"), None).await;
        assert_eq!(status, StatusCode::OK, "{copies}");
        let copies = copies["copies"].as_array().unwrap();
        assert_eq!(copies.len(), 1, "{copies:?}");
        assert_eq!(copies[0]["status"], "on_loan", "{copies:?}");
        let (status, loans) = api
            .admin_get(&format!("/loans?book_id={book}&status=open"))
            .await;
        assert_eq!(status, StatusCode::OK, "{loans}");
        let loans = loans["loans"].as_array().unwrap();
        assert_eq!(loans.len(), 1, "{loans:?}");
        assert_eq!(loans[0]["id"], loan_id.as_str());
        assert_eq!(loans[0]["user_id"], members[winner].as_str());
        assert_eq!(loans[0]["copy_id"], copies[0]["id"]);
        let (status, availability) = api.get(&format!("/books/{book}/availability"), None).await;
        assert_eq!(status, StatusCode::OK, "{availability}");
        assert_eq!(availability["copies_available"], 0, "{availability}");
        assert_eq!(availability["available"], false, "{availability}");
    }
    cluster.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_member_borrowing_twenty_books_at_once_over_three_nodes_gets_five() {
    let _serial = SERIAL.lock().await;
    let cluster =
        Cluster::started_with(&NODES, &[("QUIRE_LENDING__MAX_LOANS", "5")], CLIENT_TIMEOUT).await;
    let apis = cluster.apis();
    let mut books = Vec::new();
    for i in 0..20 {
        books.push(apis[i % 3].create_book(&format!("Volume {i}")).await.0);
    }
    let member = apis[0].enrol_patron("Avid Reader").await;

    let attempts = books.iter().enumerate().map(|(i, book)| {
        let (api, book, member) = (apis[i % 3].clone(), book.clone(), member.clone());
        tokio::spawn(async move { borrow(&api, &book, &member).await })
    });
    let mut answers = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        answers.push(attempt.await.expect("borrow task"));
    }
    let counts = tally(&answers);
    eprintln!("20 borrows against a limit of 5 over 3 nodes: {counts:?}");
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let limited = answers
        .iter()
        .filter(|(s, code)| *s == StatusCode::CONFLICT && code == "loan_limit_reached")
        .count();
    assert_eq!((created, limited), (5, 15), "{counts:?}");

    // The member holds five loans, of five different books, and no more slots.
    let types = cluster.store.event_types(&format!("user-{member}"));
    let taken = types.iter().filter(|t| *t == "LoanSlotTaken").count();
    let released = types.iter().filter(|t| *t == "LoanSlotReleased").count();
    assert_eq!((taken, released), (5, 0), "user-{member}: {types:?}");
    for api in &apis {
        let (status, loans) = api
            .admin_get(&format!("/loans?user_id={member}&status=open&limit=100"))
            .await;
        assert_eq!(status, StatusCode::OK, "{loans}");
        let mut lent: Vec<&str> = loans["loans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["book_id"].as_str().unwrap())
            .collect();
        let mut won: Vec<&str> = books
            .iter()
            .zip(&answers)
            .filter(|(_, (s, _))| *s == StatusCode::CREATED)
            .map(|(b, _)| b.as_str())
            .collect();
        lent.sort_unstable();
        won.sort_unstable();
        assert_eq!(lent, won, "the open loans are the five acknowledged ones");
    }
    // A sixth borrow is still refused; after a return, one more goes through.
    let spare = books
        .iter()
        .zip(&answers)
        .find(|(_, (s, _))| *s != StatusCode::CREATED)
        .map(|(b, _)| b.clone())
        .unwrap();
    let (status, code) = borrow(&apis[2], &spare, &member).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "loan_limit_reached")
    );
    let returned = books
        .iter()
        .zip(&answers)
        .find(|(_, (s, _))| *s == StatusCode::CREATED)
        .map(|(b, _)| b.clone())
        .unwrap();
    let response = apis[1]
        .return_request(&returned, &member)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "return: {body}");
    let (status, _) = borrow(&apis[0], &spare, &member).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a returned loan frees its slot"
    );
    cluster.remove().await;
}

//! Lending survives kill -9 in the middle of a storm of borrows and returns, on SQLite and on
//! Postgres: the built `quire serve` binary, real sockets, real stores.
//!
//! Many clients borrow and return random (book, member) pairs while the server is killed with
//! SIGKILL (three times, restarting on the same data each time), so some borrows and returns are cut
//! between their steps (the member's slot taken but no copy asked for, a loan returned but its
//! slot not given back). After the last restart the deadline scheduler finishes them
//! (`lending.resume_after_secs` 1, a 100 ms tick), and then:
//!
//! - every acknowledged (2xx) loan exists, and every acknowledged return is `returned`;
//! - the open loans the members see are exactly the copies the books say are lent, and no copy is
//!   lent twice;
//! - every member's slots agree with their open loans: a member with k open loans borrows exactly
//!   `max_loans - k` more, so no slot is left held by an interrupted borrow or return.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Api, Backend, Server, Store, eventually};
use quire_projections::{ReadModelOptions, ReadModels};
use reqwest::StatusCode;
use serde_json::Value;

/// One storm at a time: each drives a debug-build server hard, and the machine may be small.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MEMBERS: usize = 40;
/// Books 0..10 have two registered copies, 10..20 one, 20..30 none (they lend as their one
/// implicit copy).
const BOOKS: usize = 30;
const MAX_LOANS: usize = 3;
const CLIENTS: usize = 12;
/// Storms, each ended by a kill -9.
const KILLS: usize = 3;

/// The settings of every server of the test: the scheduler resumes interrupted borrows after a
/// second and looks every 100 ms.
const ENV: [(&str, &str); 3] = [
    ("QUIRE_LENDING__RESUME_AFTER_SECS", "1"),
    ("QUIRE_SCHEDULER__TICK_MS", "100"),
    ("QUIRE_LENDING__MAX_LOANS", "3"),
];

/// A small deterministic generator (splitmix64), seeded per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What the clients were told.
#[derive(Default)]
struct Ledger {
    /// Acknowledged borrows: loan id → (book, member).
    borrowed: BTreeMap<String, (String, String)>,
    /// Loan ids of acknowledged returns.
    returned: BTreeSet<String>,
    /// Answers by status and problem code ("201", "409 copy_unavailable", …).
    answers: BTreeMap<String, usize>,
    /// Requests that got no answer (the server was killed, or not up yet).
    transport_errors: usize,
    /// Answers no client should ever get.
    unexpected: Vec<String>,
}

impl Ledger {
    fn acked(&self) -> (usize, usize) {
        (self.borrowed.len(), self.returned.len())
    }
}

/// An answer: the status and body, or `None` when there was none.
async fn send(request: reqwest::RequestBuilder) -> Option<(StatusCode, Value)> {
    let response = request.send().await.ok()?;
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    Some((status, body))
}

/// Records an answer; returns the loan id of a 2xx.
fn record(
    ledger: &Mutex<Ledger>,
    what: &str,
    answer: Option<(StatusCode, Value)>,
) -> Option<String> {
    let mut ledger = ledger.lock().unwrap();
    let Some((status, body)) = answer else {
        ledger.transport_errors += 1;
        return None;
    };
    let key = if status.is_success() {
        status.as_u16().to_string()
    } else {
        format!(
            "{} {}",
            status.as_u16(),
            body["code"].as_str().unwrap_or("?")
        )
    };
    *ledger.answers.entry(format!("{what} {key}")).or_default() += 1;
    let expected = status.is_success() || status == StatusCode::CONFLICT;
    if !expected {
        ledger.unexpected.push(format!("{what}: {status} {body}"));
    }
    if status.is_success() {
        let id = body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {status} without a loan id: {body}"));
        return Some(id.to_string());
    }
    None
}

/// One client: borrows random pairs, returns its own loans (and now and then a random pair),
/// until `stop`.
async fn client(
    api: Api,
    books: Arc<Vec<String>>,
    members: Arc<Vec<String>>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
) {
    // This client's acknowledged, not yet returned loans: (book, member).
    let mut mine: Vec<(String, String)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let roll = rng.below(10);
        if roll < 5 || (roll < 9 && mine.is_empty()) {
            let book = &books[rng.below(books.len())];
            let member = &members[rng.below(members.len())];
            let answer = send(api.borrow_request(book, member)).await;
            let no_answer = answer.is_none();
            if let Some(loan) = record(&ledger, "borrow", answer) {
                ledger
                    .lock()
                    .unwrap()
                    .borrowed
                    .insert(loan, (book.clone(), member.clone()));
                mine.push((book.clone(), member.clone()));
            }
            if no_answer {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } else {
            let (book, member) = if roll < 9 {
                mine.swap_remove(rng.below(mine.len()))
            } else {
                (
                    books[rng.below(books.len())].clone(),
                    members[rng.below(members.len())].clone(),
                )
            };
            let answer = send(api.return_request(&book, &member)).await;
            let no_answer = answer.is_none();
            if let Some(loan) = record(&ledger, "return", answer) {
                ledger.lock().unwrap().returned.insert(loan);
            }
            if no_answer {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// A client of `server` that gives up on a request after 30 s (the server may be killed
/// mid-request).
fn api_of(server: &Server) -> Api {
    Api::with_timeout(&server.url, Duration::from_secs(30))
}

/// The read models' URL of `store` (what `quire` derives from the same flags).
fn read_model_url(store: &Store) -> String {
    match store.args.iter().position(|a| a == "--database-url") {
        Some(i) => store.args[i + 1].clone(),
        None => store.dir.path().join("read.db").display().to_string(),
    }
}

/// Waits until the scheduler has finished every process the kills cut short: the lending read
/// model is caught up with the log and shows no pending borrow and no slot held by an ended loan,
/// three times in a row. Panics with what is still unfinished after two minutes.
async fn wait_until_settled(api: &Api, read: &ReadModels) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let mut calm = 0;
    loop {
        let (_, status) = api.get("/status", None).await;
        let caught_up = status["read_models"]["projections"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "lending"))
            .is_some_and(|p| p["lag"] == 0);
        let pending = read
            .stuck_borrows(i64::MAX, 10)
            .await
            .expect("stuck borrows");
        let unreleased = read
            .unreleased_loan_slots(10)
            .await
            .expect("unreleased loan slots");
        if caught_up && pending.is_empty() && unreleased.is_empty() {
            calm += 1;
            if calm >= 3 {
                return started.elapsed();
            }
        } else {
            calm = 0;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduler did not settle within 2 min of the restart: lending projection \
             caught up: {caught_up}; borrows still pending: {pending:?}; ended loans still \
             holding their member's slot: {unreleased:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the scheduler finished from the log: the `LoanOpened` and `LoanSlotReleased` events of
/// steps no request caused (a request's later steps carry its command id as their cause).
fn finished_by_scheduler(store: &Store) -> (usize, usize) {
    let (mut opened, mut released) = (0, 0);
    for event in store.events(&["events", "tail", "--json"]) {
        let metadata = &event["metadata"];
        // A first step is caused by itself; the store records no other cause for the
        // scheduler's steps either.
        if !metadata["causation_id"].is_null() && metadata["causation_id"] != metadata["command_id"]
        {
            continue;
        }
        match event["event_type"].as_str() {
            Some("LoanOpened") => opened += 1,
            Some("LoanSlotReleased") => released += 1,
            _ => {}
        }
    }
    (opened, released)
}

async fn storm_with_kills(backend: Backend) {
    let _serial = SERIAL.lock().await;
    let test_started = Instant::now();
    let store = Store::new(backend).await;
    let mut server = Server::start_with_env(&store, &[], &ENV);
    let mut api = api_of(&server);

    let mut books = Vec::new();
    for i in 0..BOOKS {
        let (book, _) = api.create_book(&format!("Storm {i}")).await;
        let copies = match i {
            0..10 => 2,
            10..20 => 1,
            _ => 0,
        };
        for c in 0..copies {
            api.add_copy(&book, &format!("S{i}-{c}")).await;
        }
        books.push(book);
    }
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        members.push(api.enrol_patron(&format!("Stormy {i}")).await);
    }
    let (books, members) = (Arc::new(books), Arc::new(members));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let seed = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap());
    eprintln!("{backend:?}: storm seed {seed:#x}");

    for round in 0..KILLS {
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let rng = Rng(seed ^ ((round * CLIENTS + c) as u64).wrapping_mul(0x2545_f491));
                tokio::spawn(client(
                    api.clone(),
                    books.clone(),
                    members.clone(),
                    ledger.clone(),
                    stop.clone(),
                    rng,
                ))
            })
            .collect();
        let before = ledger.lock().unwrap().acked();
        // Storm until this round has acknowledged a fair number of borrows and returns, then
        // kill while requests are in flight.
        eventually(
            "the storm to get going",
            Duration::from_secs(120),
            || async {
                let (borrowed, returned) = ledger.lock().unwrap().acked();
                (borrowed >= before.0 + 40 && returned >= before.1 + 15).then_some(())
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(
            Rng(seed.wrapping_add(round as u64)).below(400) as u64,
        ))
        .await;
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for task in clients {
            task.await.expect("client task");
        }
        let (borrowed, returned) = ledger.lock().unwrap().acked();
        eprintln!(
            "{backend:?}: kill -9 #{} after {} acknowledged borrows and {} returns in this round",
            round + 1,
            borrowed - before.0,
            returned - before.1
        );
        server = Server::start_with_env(&store, &[], &ENV);
        api = api_of(&server);
    }

    let read = ReadModels::open(
        &read_model_url(&store),
        ReadModelOptions {
            read_only: true,
            connections: 2,
        },
    )
    .await
    .expect("open the read models read-only");
    let settled = wait_until_settled(&api, &read).await;
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    eprintln!(
        "{backend:?}: settled {settled:?} after the last restart; {} acknowledged borrows, {} \
         returns, {} requests without an answer; answers {:?}",
        ledger.borrowed.len(),
        ledger.returned.len(),
        ledger.transport_errors,
        ledger.answers
    );
    assert!(
        ledger.unexpected.is_empty(),
        "answers other than 2xx and 409: {:?}",
        ledger.unexpected
    );

    // Every acknowledged loan exists; every acknowledged return is returned.
    for (loan, (book, member)) in &ledger.borrowed {
        let (status, body) = api.admin_get(&format!("/loans/{loan}")).await;
        assert_eq!(status, StatusCode::OK, "acknowledged loan {loan}: {body}");
        assert_eq!(body["book_id"], book.as_str(), "{body}");
        assert_eq!(body["user_id"], member.as_str(), "{body}");
        let expected: &[&str] = if ledger.returned.contains(loan) {
            &["returned"]
        } else {
            &["open", "returned"]
        };
        assert!(
            expected.contains(&body["status"].as_str().unwrap_or_default()),
            "loan {loan}: expected {expected:?}: {body}"
        );
    }
    for loan in &ledger.returned {
        let (status, body) = api.admin_get(&format!("/loans/{loan}")).await;
        assert_eq!(status, StatusCode::OK, "acknowledged return {loan}: {body}");
        assert_eq!(body["status"], "returned", "{body}");
    }

    // The members' open loans, each as its member sees it.
    let mut open: HashMap<String, Vec<Value>> = HashMap::new();
    for member in members.iter() {
        let (status, body) = api
            .admin_get(&format!("/loans?user_id={member}&status=open&limit=100"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let loans = body["loans"].as_array().unwrap().clone();
        assert!(loans.len() <= MAX_LOANS, "member {member}: {loans:?}");
        let distinct: BTreeSet<&str> = loans
            .iter()
            .map(|l| l["book_id"].as_str().unwrap())
            .collect();
        assert_eq!(distinct.len(), loans.len(), "one loan per book: {loans:?}");
        for loan in &loans {
            assert_eq!(loan["user_id"], member.as_str(), "{loan}");
            assert_eq!(loan["status"], "open", "{loan}");
        }
        open.insert(member.clone(), loans);
    }
    // No copy lent twice, and the lent copies are exactly the open loans' copies.
    let mut lent_by_loans: BTreeMap<String, String> = BTreeMap::new();
    for loan in open.values().flatten() {
        let copy = loan["copy_id"]
            .as_str()
            .unwrap_or_else(|| panic!("an open loan without a copy: {loan}"));
        let previous = lent_by_loans.insert(copy.to_string(), loan["book_id"].to_string());
        assert!(previous.is_none(), "copy {copy} is lent twice");
    }
    let mut lent_by_books: BTreeMap<String, String> = BTreeMap::new();
    for book in books.iter() {
        let (status, body) = api.get(&format!("/books/{book}/copies"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let copies = body["copies"].as_array().unwrap();
        let on_loan: Vec<&Value> = copies.iter().filter(|c| c["status"] == "on_loan").collect();
        for copy in &on_loan {
            lent_by_books.insert(
                copy["id"].as_str().unwrap().to_string(),
                copy["book_id"].to_string(),
            );
        }
        let (status, availability) = api.get(&format!("/books/{book}/availability"), None).await;
        assert_eq!(status, StatusCode::OK, "{availability}");
        let available = copies.iter().filter(|c| c["status"] == "available").count();
        assert_eq!(
            availability["copies_available"], available,
            "{availability}"
        );
        assert_eq!(
            availability["on_loan"].as_array().map(Vec::len),
            Some(on_loan.len()),
            "{availability}"
        );
    }
    assert_eq!(
        lent_by_loans, lent_by_books,
        "the copies on loan are exactly those of the members' open loans (each of its book)"
    );
    let (status, body) = api.admin_get("/loans?status=open&limit=100").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["loans"].as_array().unwrap().len(),
        lent_by_loans.len(),
        "the admin's list of open loans is the members' together"
    );

    // Every member's slots agree with their open loans: with k open, exactly MAX_LOANS - k more
    // borrows of fresh books go through, then `loan_limit_reached`.
    let mut fresh = Vec::new();
    for i in 0..MAX_LOANS {
        let (book, _) = api.create_book(&format!("Fresh {i}")).await;
        let adds = (0..MEMBERS).map(|c| {
            let (api, book) = (api.clone(), book.clone());
            async move { api.add_copy(&book, &format!("F{i}-{c}")).await }
        });
        futures::future::join_all(adds).await;
        fresh.push(book);
    }
    let checks = members.iter().map(|member| {
        let (api, fresh, member) = (api.clone(), fresh.clone(), member.clone());
        let k = open[&member].len();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for book in &fresh {
                let (status, body) = api.borrow(book, &member).await;
                // 201, or 202 should the read model lag: either way the loan was made.
                answers.push(if status.is_success() {
                    "borrowed".to_string()
                } else {
                    format!(
                        "{} {}",
                        status.as_u16(),
                        body["code"].as_str().unwrap_or("?")
                    )
                });
            }
            let expected: Vec<String> = (0..MAX_LOANS)
                .map(|i| {
                    if i < MAX_LOANS - k {
                        "borrowed".to_string()
                    } else {
                        "409 loan_limit_reached".to_string()
                    }
                })
                .collect();
            assert_eq!(
                answers, expected,
                "member {member} with {k} open loan(s): their slots disagree with their loans"
            );
            k
        })
    });
    let mut by_open = BTreeMap::new();
    for check in checks.collect::<Vec<_>>() {
        *by_open.entry(check.await.expect("slot check")).or_insert(0) += 1;
    }
    let (opened, released) = finished_by_scheduler(&store);
    eprintln!(
        "{backend:?}: the scheduler opened {opened} interrupted loan(s) and released {released} \
         slot(s); members by open loans {by_open:?}; the whole test took {:?}",
        test_started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_lending_survives_kill_9_in_a_storm() {
    storm_with_kills(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_lending_survives_kill_9_in_a_storm() {
    storm_with_kills(Backend::Postgres).await;
}

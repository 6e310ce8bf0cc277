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

use common::{Api, Backend, Server, Store, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The cluster tests run one at a time: three debug-build nodes each, on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn nats_url() -> String {
    std::env::var("QUIRE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Fails loudly when NATS is not there, rather than letting nodes time out obscurely.
fn require_nats(url: &str) {
    let addr = url
        .trim_start_matches("nats://")
        .split(',')
        .next()
        .unwrap()
        .to_string();
    std::net::TcpStream::connect_timeout(
        &addr
            .parse()
            .unwrap_or_else(|e| panic!("QUIRE_TEST_NATS_URL {url}: {e}")),
        Duration::from_secs(2),
    )
    .unwrap_or_else(|e| {
        panic!("NATS is not reachable at {url} ({e}); start it (ops/services.sh) or set QUIRE_TEST_NATS_URL")
    });
}

/// Nodes of one cluster on one fresh Postgres database, all with the same settings.
struct Cluster {
    store: Store,
    name: String,
    nats: String,
    servers: Vec<Server>,
    apis: Vec<Api>,
}

impl Cluster {
    /// Three nodes `n1`..`n3` with `env` settings, formed and balanced.
    async fn started(env: &[(&str, &str)]) -> Self {
        let nats = nats_url();
        require_nats(&nats);
        let mut cluster = Self {
            store: Store::new(Backend::Postgres).await,
            name: format!("t{}", uuid::Uuid::new_v4().simple()),
            nats,
            servers: Vec::new(),
            apis: Vec::new(),
        };
        for id in ["n1", "n2", "n3"] {
            let args = cluster.node_args();
            let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
            args.extend(["--node-id", id]);
            let server = Server::start_with_env(&cluster.store, &args, env);
            let api = Api::with_client(
                &server.url,
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap(),
            );
            cluster.servers.push(server);
            cluster.apis.push(api);
        }
        cluster.wait_until_formed().await;
        cluster
    }

    fn node_args(&self) -> Vec<String> {
        ["--nats-url", &self.nats, "--cluster", &self.name]
            .map(String::from)
            .to_vec()
    }

    /// `quire cluster status --json`.
    fn status(&self) -> Value {
        let mut args = vec!["cluster".to_string(), "status".into(), "--json".into()];
        args.extend(self.node_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = self.store.run(&args);
        assert!(
            output.status.success(),
            "cluster status failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("cluster status JSON")
    }

    /// Waits until the three nodes are live, each holds partitions, and every partition,
    /// projection and worker (the scheduler included) has an owner.
    async fn wait_until_formed(&self) {
        eventually("the cluster to form", Duration::from_secs(90), || async {
            let status = self.status();
            let live = status["nodes"].as_array().cloned().unwrap_or_default();
            let workers: Vec<&str> = status["workers"]
                .as_array()
                .map(|w| {
                    w.iter()
                        .filter(|w| w["owner"].is_string())
                        .filter_map(|w| w["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            let formed = live.len() == 3
                && live
                    .iter()
                    .all(|n| n["partitions"].as_array().is_some_and(|p| !p.is_empty()))
                && status["unowned_partitions"]
                    .as_array()
                    .is_some_and(Vec::is_empty)
                && status["projections"]
                    .as_array()
                    .is_some_and(|p| p.iter().all(|p| p["owner"].is_string()))
                && ["recs-trainer", "scheduler", "summaries"]
                    .iter()
                    .all(|name| workers.contains(name));
            formed.then_some(())
        })
        .await;
    }

    /// Stops the nodes and deletes the cluster's lease bucket from the shared NATS.
    async fn remove(mut self) {
        for server in &mut self.servers {
            if server.is_running() {
                server.kill9();
            }
        }
        let options = quire_actors::cluster::NatsOptions {
            url: self.nats.clone(),
            ..Default::default()
        };
        let config = quire_actors::cluster::ClusterConfig::new(&self.name, "test");
        let client = quire_actors::cluster::connect(&options, "test-cleanup")
            .await
            .expect("NATS for cleanup");
        quire_actors::cluster::remove_bucket(&client, &config)
            .await
            .expect("delete the test's bucket");
    }

    /// The event types of a stream, in order (`quire events show --json`).
    fn event_types(&self, stream: &str) -> Vec<String> {
        let output = self
            .store
            .run(&["events", "show", stream, "--limit", "100000", "--json"]);
        assert!(
            output.status.success(),
            "events show {stream} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let event: Value = serde_json::from_str(line).expect("event JSON line");
                event["event_type"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no event_type: {event}"))
                    .to_string()
            })
            .collect()
    }
}

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

/// Registers a copy of `book` with `barcode` (staff).
async fn add_copy(api: &Api, book: &str, barcode: &str) {
    let response = api
        .admin(api.http.post(api.url(&format!("/books/{book}/copies"))))
        .json(&json!({ "barcode": barcode }))
        .send()
        .await
        .expect("POST copies");
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(
        status,
        StatusCode::CREATED,
        "POST /books/{book}/copies: {body}"
    );
}

/// The admin borrows `book` for `member` through `api`: the status and the problem code (or
/// the loan id of a success).
async fn borrow(api: &Api, book: &str, member: &str) -> (StatusCode, String) {
    let response = api
        .admin(
            api.http
                .post(api.url(&format!("/books/{book}/borrow/{member}"))),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST borrow on {}: {e}", api.base));
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
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
    let cluster = Cluster::started(&[]).await;
    let apis = cluster.apis.clone();
    let (book, _) = apis[0].create_book("The Only Copy").await;
    add_copy(&apis[1], &book, "ONLY-1").await;
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
    let types = cluster.event_types(&format!("lending-{book}"));
    assert_eq!(
        types.iter().filter(|t| *t == "LoanOpened").count(),
        1,
        "lending-{book}: {types:?}"
    );
    // Every loser's slot was given back: each member stream that took a slot released it,
    // except the winner's.
    for (i, member) in members.iter().enumerate() {
        let types = cluster.event_types(&format!("user-{member}"));
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
        let response = api
            .admin(
                api.http
                    .get(api.url(&format!("/loans?book_id={book}&status=open"))),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let loans: Value = response.json().await.unwrap();
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
    let cluster = Cluster::started(&[("QUIRE_LENDING__MAX_LOANS", "5")]).await;
    let apis = cluster.apis.clone();
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
    let types = cluster.event_types(&format!("user-{member}"));
    let taken = types.iter().filter(|t| *t == "LoanSlotTaken").count();
    let released = types.iter().filter(|t| *t == "LoanSlotReleased").count();
    assert_eq!((taken, released), (5, 0), "user-{member}: {types:?}");
    for api in &apis {
        let response = api
            .admin(
                api.http
                    .get(api.url(&format!("/loans?user_id={member}&status=open&limit=100"))),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let loans: Value = response.json().await.unwrap();
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
        .admin(
            apis[1]
                .http
                .post(apis[1].url(&format!("/books/{returned}/return/{member}"))),
        )
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

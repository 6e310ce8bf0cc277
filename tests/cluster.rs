//! Several `quire serve` processes as one cluster: real NATS (JetStream), real Postgres, real HTTP.
//!
//! - Three nodes under load on the same books: every acknowledged write exists exactly once and no
//!   version conflict reaches a client.
//! - kill -9 of the node owning a loaded book: its partitions serve again within seconds on the
//!   others; nothing acknowledged is lost or duplicated.
//! - A NATS restart under load: nodes reconnect, nothing acknowledged is lost.
//!
//! NATS comes from `QUIRE_TEST_NATS_URL` (default `nats://127.0.0.1:4222`, with JetStream); the
//! restart test runs its own `nats-server` (`QUIRE_TEST_NATS_SERVER`, default `nats-server` on the
//! PATH or `/usr/sbin/nats-server`). Each test uses its own cluster name, so tests share a NATS.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{Api, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The cluster tests run one at a time: each drives several nodes hard, and on a 2-core machine
/// two at once starve each other's lease renewals.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the load generator saw.
#[derive(Default)]
struct Ledger {
    /// Titles whose update was acknowledged (2xx), per book.
    acked: BTreeMap<String, Vec<String>>,
    /// Non-2xx answers by status (retried with the same Idempotency-Key).
    refused: BTreeMap<u16, usize>,
    /// Transport errors (node gone, timeouts), retried.
    transport_errors: usize,
    /// Per book, the instants of acknowledgements.
    acked_at: HashMap<String, Vec<Instant>>,
}

/// Renames `book` to `title` with an Idempotency-Key, retrying the same key on any failure and on
/// other nodes until acknowledged; returns false if `deadline` passes first.
async fn update_until_acked(
    apis: &[Api],
    start: usize,
    book: &str,
    title: &str,
    ledger: &Mutex<Ledger>,
    deadline: Instant,
) -> bool {
    let key = uuid::Uuid::new_v4().to_string();
    let traceparent = format!(
        "00-{}-{}-01",
        uuid::Uuid::new_v4().simple(),
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    let mut node = start;
    while Instant::now() < deadline {
        let api = &apis[node % apis.len()];
        let result = api
            .admin(api.http.put(api.url(&format!("/books/{book}"))))
            .header("Idempotency-Key", &key)
            .header("traceparent", &traceparent)
            .json(&json!({ "title": title }))
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => {
                let mut ledger = ledger.lock().unwrap();
                ledger
                    .acked
                    .entry(book.to_string())
                    .or_default()
                    .push(title.to_string());
                ledger
                    .acked_at
                    .entry(book.to_string())
                    .or_default()
                    .push(Instant::now());
                return true;
            }
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                // Anything but "try again" is a bug: a conflict or a precondition must not leak.
                assert!(
                    status == StatusCode::SERVICE_UNAVAILABLE
                        || status == StatusCode::ACCEPTED
                        || status == StatusCode::BAD_GATEWAY,
                    "PUT /books/{book} on {}: {status} {body}",
                    api.base
                );
                *ledger
                    .lock()
                    .unwrap()
                    .refused
                    .entry(status.as_u16())
                    .or_default() += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => {
                ledger.lock().unwrap().transport_errors += 1;
                // That node may be gone: the next attempt goes to another.
                node += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    false
}

/// `clients` tasks renaming `books` round-robin through `apis` until `stop` is set.
fn spawn_load(
    apis: Vec<Api>,
    books: Vec<String>,
    clients: usize,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<usize>> {
    (0..clients)
        .map(|c| {
            let (apis, books, ledger, stop) =
                (apis.clone(), books.clone(), ledger.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let book = &books[(c + n) % books.len()];
                    let title = format!("title c{c} n{n}");
                    // Once stopped, an unacknowledged command still gets a minute to be acked.
                    let deadline = Instant::now() + Duration::from_secs(60);
                    assert!(
                        update_until_acked(&apis, c + n, book, &title, &ledger, deadline).await,
                        "an update was never acknowledged"
                    );
                    n += 1;
                }
                n
            })
        })
        .collect()
}

/// Stops the load; returns how many writes it had acknowledged.
async fn stop_load(
    stop: &std::sync::atomic::AtomicBool,
    load: Vec<tokio::task::JoinHandle<usize>>,
) -> usize {
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for task in load {
        total += task.await.expect("load task");
    }
    total
}

/// Checks, against the event log (each book's history), that every acknowledged title was stored
/// exactly once and that versions have no gaps; returns the number of events checked (the summary
/// worker's own events left out).
async fn assert_exactly_once(api: &Api, ledger: &Ledger) -> usize {
    let mut checked = 0;
    for (book, titles) in &ledger.acked {
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut versions = Vec::new();
        let mut summaries = 0;
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/books/{book}/history?limit=100&cursor={c}"),
                None => format!("/books/{book}/history?limit=100"),
            };
            let response = api
                .admin(api.http.get(api.url(&path)))
                .send()
                .await
                .expect("GET history");
            assert_eq!(response.status(), StatusCode::OK);
            let body: Value = response.json().await.unwrap();
            for event in body["events"].as_array().unwrap() {
                versions.push(event["version"].as_u64().unwrap());
                // The summary worker's events are not the load's.
                if event["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("SummarySet"))
                {
                    summaries += 1;
                }
                if let Some(title) = event["data"]["title"].as_str() {
                    *counts.entry(title.to_string()).or_default() += 1;
                }
            }
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, expected, "book {book}: versions have gaps");
        for title in titles {
            assert_eq!(
                counts.get(title).copied().unwrap_or(0),
                1,
                "book {book}: acknowledged title {title:?} is not stored exactly once"
            );
        }
        checked += versions.len() - summaries;
    }
    checked
}

async fn create_books(api: &Api, n: usize) -> Vec<String> {
    let mut books = Vec::new();
    for i in 0..n {
        let response = api
            .admin(api.http.post(api.url("/books")))
            .json(&json!({ "title": format!("book {i}"), "author": "Mary Shelley" }))
            .send()
            .await
            .expect("POST /books");
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "POST /books: {status} {body}");
        books.push(body["id"].as_str().unwrap().to_string());
    }
    books
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_write_the_same_books_exactly_once() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::started(&["n1", "n2", "n3"]).await;
    let status = cluster.status();
    let owners: Vec<&str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| !n["partitions"].as_array().unwrap().is_empty())
        .map(|n| n["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(owners.len(), 3, "every node holds partitions: {status}");

    let apis = cluster.apis();
    let books = create_books(&apis[0], 4).await;

    // 24 clients through all three nodes on 4 books: each book is written through every node.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = spawn_load(
        apis.clone(),
        books.clone(),
        24,
        ledger.clone(),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let total = stop_load(&stop, load).await;
    assert!(total > 100, "the load made only {total} writes");

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(
        ledger.refused.is_empty(),
        "no refusal (version conflict, contention, unavailability) may reach a client: {:?}",
        ledger.refused
    );
    let checked = assert_exactly_once(&apis[1], &ledger).await;
    assert_eq!(
        checked,
        4 + total,
        "one event per acknowledged write, no more"
    );

    // The trace context of a request travels with the command to the node that ran it.
    let (status, history) = apis[2]
        .get(&format!("/books/{}/history", books[0]), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        history["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "BookUpdated")
            .all(|e| e["traceparent"]
                .as_str()
                .is_some_and(|t| t.starts_with("00-"))),
        "updates carry their request's traceparent"
    );

    // One review per member per book, with the member's 24 attempts spread over the three nodes.
    let (member, _) = apis[0].sign_up("ada", "analytical-engine-1843").await;
    let book = &books[1];
    let attempts = (0..24).map(|i| {
        let api = apis[i % 3].clone();
        let book = book.clone();
        async move {
            api.http
                .post(api.url(&format!("/books/{book}/reviews")))
                .basic_auth("ada", Some("analytical-engine-1843"))
                .json(&json!({ "rating": 5, "review_text": format!("attempt {i}") }))
                .send()
                .await
                .expect("POST review")
                .status()
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 23), "{statuses:?}");
    let reviews = apis[2].all_reviews(book, None).await;
    let mine: Vec<_> = reviews
        .iter()
        .filter(|r| r["user_id"].as_str() == Some(member.as_str()))
        .collect();
    assert_eq!(mine.len(), 1, "exactly one review by the member");
    cluster.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_a_node_under_load_loses_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::started(&["n1", "n2", "n3"]).await;
    let apis = cluster.apis();
    let books = create_books(&apis[0], 9).await;
    // Every partition owned (a handover in progress leaves one briefly unowned).
    let status = cluster.wait_until_formed(3).await;
    // The victim owns the first book's partition, so the load certainly needs a failover.
    let victim_id = Cluster::owner_of_book(&status, &books[0]);
    let victim = cluster.index_of(&victim_id);
    let moved: Vec<String> = books
        .iter()
        .filter(|b| Cluster::owner_of_book(&status, b) == victim_id)
        .cloned()
        .collect();

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = spawn_load(
        apis.clone(),
        books.clone(),
        12,
        ledger.clone(),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.nodes[victim].server.kill9();
    let killed_at = Instant::now();
    // Wait until every book on the victim's partitions was written again, through the others.
    let recovered = eventually(
        "the victim's partitions to serve again",
        Duration::from_secs(30),
        || async {
            let ledger = ledger.lock().unwrap();
            let mut last = Duration::ZERO;
            for book in &moved {
                let first = ledger
                    .acked_at
                    .get(book)
                    .and_then(|at| at.iter().find(|t| **t > killed_at))?;
                last = last.max(first.duration_since(killed_at));
            }
            Some(last)
        },
    )
    .await;
    eprintln!(
        "failover: {} book(s) on {victim_id}'s partitions written again {recovered:?} after kill -9",
        moved.len()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let total = stop_load(&stop, load).await;

    let survivor = &apis[(victim + 1) % 3];
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    eprintln!(
        "kill -9 under load: {total} acknowledged writes, refusals {:?}, transport errors {}",
        ledger.refused, ledger.transport_errors
    );
    assert_exactly_once(survivor, &ledger).await;
    // Every book's read model agrees with its log, whoever runs the projections now.
    for book in &books {
        let (status, body) = survivor.get(&format!("/books/{book}"), None).await;
        assert_eq!(status, StatusCode::OK);
        let version = body["version"].as_u64().unwrap();
        let acked = ledger.acked.get(book).map_or(0, Vec::len) as u64;
        // Unacknowledged attempts may have been applied too (that is allowed), never fewer.
        assert!(
            version > acked,
            "book {book}: version {version} < {acked} acked + 1"
        );
    }
    let after = cluster.wait_until_formed(2).await;
    assert!(
        after["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["node_id"] != victim_id.as_str()),
        "the dead node left the membership: {after}"
    );
    cluster.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_node_that_lost_its_leases_does_not_win() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::started(&["n1", "n2", "n3"]).await;
    let apis = cluster.apis();
    let books = create_books(&apis[0], 6).await;
    // Every partition owned (a handover in progress leaves one briefly unowned).
    let status = cluster.wait_until_formed(3).await;
    let paused_id = Cluster::owner_of_book(&status, &books[0]);
    let paused = cluster.index_of(&paused_id);
    // Clients use the other two nodes' APIs; the paused node keeps only its actors' role in play.
    let others: Vec<Api> = cluster
        .nodes
        .iter()
        .filter(|n| n.id != paused_id)
        .map(|n| n.api.clone())
        .collect();

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = spawn_load(
        others.clone(),
        books.clone(),
        8,
        ledger.clone(),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    // SIGSTOP for longer than a lease: the others take its partitions while its NATS connection,
    // subscriptions and cached entity state stay as they were.
    let pid = cluster.nodes[paused].server.pid.to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Resumed, it finds its leases gone (and its cached state stale) while load goes on.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let total = stop_load(&stop, load).await;
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    eprintln!(
        "pause past the lease: {total} acknowledged writes, refusals {:?}, transport errors {}",
        ledger.refused, ledger.transport_errors
    );
    assert_exactly_once(&others[0], &ledger).await;
    assert!(
        cluster.nodes[paused].server.is_running(),
        "the paused node lives on"
    );
    // It rejoins as an ordinary member.
    cluster.wait_until_formed(3).await;
    cluster.remove().await;
}

/// A `nats-server` of the test's own, with JetStream in a temp dir, restartable on its port.
struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

impl NatsServer {
    fn binary() -> PathBuf {
        if let Ok(path) = std::env::var("QUIRE_TEST_NATS_SERVER") {
            return PathBuf::from(path);
        }
        for candidate in [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ] {
            if std::path::Path::new(candidate).exists() {
                return PathBuf::from(candidate);
            }
        }
        PathBuf::from("nats-server")
    }

    fn start() -> Self {
        Self::start_with(&[])
    }

    /// With more `nats-server` flags (TLS, auth).
    fn start_with(args: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new(Self::binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}); install nats-server or set QUIRE_TEST_NATS_SERVER",
                    Self::binary().display()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_restart_under_load_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let mut nats = NatsServer::start();
    let mut cluster = Cluster::new(nats.url()).await;
    for id in ["n1", "n2"] {
        cluster.start_node(id);
    }
    cluster.wait_until_formed(2).await;
    let apis = cluster.apis();
    let books = create_books(&apis[0], 6).await;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = spawn_load(apis.clone(), books.clone(), 8, ledger.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = ledger
        .lock()
        .unwrap()
        .acked
        .values()
        .map(Vec::len)
        .sum::<usize>();
    nats.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.spawn();
    let restarted = Instant::now();
    // Writes resume through the restarted NATS.
    let resumed = eventually(
        "writes to resume after the NATS restart",
        Duration::from_secs(60),
        || async {
            let ledger = ledger.lock().unwrap();
            let after = ledger
                .acked_at
                .values()
                .flatten()
                .filter(|t| **t > restarted)
                .count();
            (after >= books.len()).then(|| restarted.elapsed())
        },
    )
    .await;
    eprintln!("NATS restart: writes resumed {resumed:?} after nats-server was back");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let total = stop_load(&stop, load).await;
    assert!(
        before > 0 && total > before,
        "load ran before and after the restart"
    );
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    eprintln!(
        "NATS restart under load: {total} acknowledged writes, refusals {:?}, transport errors {}",
        ledger.refused, ledger.transport_errors
    );
    assert_exactly_once(&apis[0], &ledger).await;
    cluster.wait_until_formed(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_reach_nats_over_tls_with_credentials() {
    let _serial = SERIAL.lock().await;
    let certs = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("self-signed certificate");
    let cert = certs.path().join("nats-cert.pem");
    let key = certs.path().join("nats-key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let nats = NatsServer::start_with(&[
        "--tls",
        "--tlscert",
        cert,
        "--tlskey",
        key,
        "--user",
        "quire",
        "--pass",
        "nats-s3cret",
    ]);
    let url = format!("tls://quire:nats-s3cret@127.0.0.1:{}", nats.port);
    let mut cluster = Cluster::new(url.clone()).await;

    // Without the CA the server's certificate is refused, and the node says why.
    let refused = cluster
        .store
        .command()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--nats-url",
            &url,
            "--cluster",
            &cluster.name,
        ])
        .output()
        .expect("run quire serve");
    assert!(
        !refused.status.success(),
        "a node must not start on an unverified NATS"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("NATS") && stderr.to_lowercase().contains("certificate"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("nats-s3cret"),
        "the NATS password leaked into the logs: {stderr}"
    );

    cluster.extra = vec!["--nats-tls-ca".into(), cert.into()];
    cluster.start_node("n1");
    cluster.wait_until_formed(1).await;
    let api = cluster.nodes[0].api.clone();
    let books = create_books(&api, 1).await;
    let (status, body) = api.get(&format!("/books/{}", books[0]), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

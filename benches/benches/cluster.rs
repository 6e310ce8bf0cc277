//! Commands through NATS against the in-process bus, on the same Postgres, and failover after kill -9.
//!
//! - **Bus throughput**: 64 clients post reviews (each a durable append) over 1,000 books through
//!   (a) the in-process `LocalBus`, (b) `NatsBus` to one node serving every partition, (c) `NatsBus`
//!   to three nodes splitting the partitions. A "node" here is what `quire serve --roles actors`
//!   runs: its own store (pool and group-commit writer), entity actors and NATS connection; the three
//!   share this process and its two cores, so (c) measures the transport and the split, not extra
//!   hardware.
//! - **Failover**: three `quire serve` processes (the release binary) on a fresh database; 8 clients
//!   update books through the survivors; the node owning a watched book's partition is killed with
//!   SIGKILL; the figure is the time from the kill until that book's next acknowledged write. Three
//!   rounds.
//!
//! Run: `cargo build --release && cargo bench -p quire-benches --bench cluster`
//! (QUIRE_BENCH_SECONDS per timed scenario, default 5; QUIRE_BENCH_ONLY=<text> to pick scenarios;
//! NATS from QUIRE_BENCH_NATS_URL, default nats://127.0.0.1:4222; the binary from QUIRE_BENCH_BIN,
//! default target/release/quire).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quire_actors::cluster::{self, ClusterConfig, NatsBus, NatsOptions, PartitionServer};
use quire_actors::{ActorConfig, CommandBus, CommandEnvelope, LocalBus};
use quire_benches::{header, run_for, scenario_duration};
use quire_domain::Principal;
use quire_domain::book::BookCommand;
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_domain::values::{AuthorName, Rating, ReviewText, Title};
use quire_store::StoreOptions;
use serde_json::{Value, json};

const BOOKS: usize = 1_000;
const CLIENTS: usize = 64;
const PARTITIONS: u32 = 32;

fn nats_url() -> String {
    std::env::var("QUIRE_BENCH_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn add_book(book_id: BookId) -> quire_actors::Command {
    quire_actors::Command::Book {
        book_id,
        command: BookCommand::AddBook {
            book_id,
            title: Title::parse("Middlemarch").unwrap(),
            authors: vec![AuthorName::parse("George Eliot").unwrap()],
            genres: vec![],
            year_published: None,
            isbn: None,
            description: None,
        },
    }
}

fn review(book_id: BookId, i: u64) -> quire_actors::Command {
    quire_actors::Command::Book {
        book_id,
        command: BookCommand::PostReview {
            review_id: ReviewId::new(),
            rating: Rating::parse((i % 5) as u8 + 1).unwrap(),
            text: ReviewText::parse("a study of provincial life").unwrap(),
        },
    }
}

/// Runs the review load through `bus` and prints its row.
async fn measure(name: &str, bus: Arc<dyn CommandBus>, clients: usize) {
    let admin = Principal::admin(UserId::new());
    let books: Vec<BookId> = (0..BOOKS).map(|_| BookId::new()).collect();
    for chunk in books.chunks(100) {
        let adds = chunk
            .iter()
            .map(|b| bus.dispatch(CommandEnvelope::new(admin.clone(), add_book(*b))));
        for result in futures::future::join_all(adds).await {
            result.expect("add book");
        }
    }
    let books = Arc::new(books);
    let m = run_for(name, clients, scenario_duration(), move |w, i| {
        let bus = bus.clone();
        let books = books.clone();
        async move {
            let book = books[(w * 7919 + i as usize * 104_729) % books.len()];
            bus.dispatch(CommandEnvelope::new(
                Principal::member(UserId::new()),
                review(book, i),
            ))
            .await
            .expect("review");
            1
        }
    })
    .await;
    println!("{}", m.row());
}

/// `nodes` in-process nodes on `url`, splitting the partitions round-robin, and a bus to them.
async fn nats_nodes(url: &str, nodes: u32) -> (Arc<dyn CommandBus>, Vec<PartitionServer>) {
    let name = format!("bench{}", uuid::Uuid::new_v4().simple());
    let options = NatsOptions {
        url: nats_url(),
        ..NatsOptions::default()
    };
    let mut servers = Vec::new();
    for n in 0..nodes {
        let mut config = ClusterConfig::new(&name, format!("node{n}"));
        config.partitions = PARTITIONS;
        let store = quire_store::open(url, StoreOptions::default())
            .await
            .expect("open store");
        let client = cluster::connect(&options, &format!("bench-node{n}"))
            .await
            .expect("NATS is required (QUIRE_BENCH_NATS_URL)");
        let server =
            PartitionServer::new(client, config, LocalBus::new(store, ActorConfig::default()));
        for p in (0..PARTITIONS).filter(|p| p % nodes == n) {
            server.start(p).await.expect("serve partition");
        }
        servers.push(server);
    }
    let mut config = ClusterConfig::new(&name, "api");
    config.partitions = PARTITIONS;
    let client = cluster::connect(&options, "bench-api").await.expect("NATS");
    (Arc::new(NatsBus::new(client, config)), servers)
}

async fn throughput(wanted: &dyn Fn(&str) -> bool) {
    let name = format!("postgres: in-process bus, {CLIENTS} clients, reviews");
    if wanted(&name) {
        let url = quire_store::testing::fresh_postgres_database().await;
        let store = quire_store::open(&url, StoreOptions::default())
            .await
            .expect("open store");
        let bus = LocalBus::new(store, ActorConfig::default());
        measure(&name, Arc::new(bus.clone()), CLIENTS).await;
        bus.shutdown(Duration::from_secs(5)).await;
    }
    // Three nodes split the group commit three ways: with the same 64 clients each node's batches
    // are a third as large; 192 clients give each node the load one node had.
    for (nodes, clients) in [(1u32, CLIENTS), (3, CLIENTS), (3, 3 * CLIENTS)] {
        let name = format!("postgres: NATS bus, {nodes} node(s), {clients} clients, reviews");
        if wanted(&name) {
            let url = quire_store::testing::fresh_postgres_database().await;
            let (bus, servers) = nats_nodes(&url, nodes).await;
            measure(&name, bus, clients).await;
            for server in servers {
                server.stop_all().await;
            }
        }
    }
}

/// A `quire serve` process of the failover scenario.
struct Proc {
    child: Child,
    url: String,
}

fn start_node(bin: &str, db: &str, cluster: &str, id: &str, dir: &std::path::Path) -> Proc {
    let mut child = Command::new(bin)
        .args(["--data-dir"])
        .arg(dir)
        .args(["--database-url", db, "serve", "--listen", "127.0.0.1:0"])
        .args([
            "--nats-url",
            &nats_url(),
            "--cluster",
            cluster,
            "--node-id",
            id,
        ])
        .env("QUIRE_ADMIN_USER", "admin")
        .env("QUIRE_ADMIN_PASSWORD", "bench-password-1")
        .env("QUIRE_API__RATE_LIMIT_PER_SECOND", "0")
        .env("QUIRE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("running {bin} ({e}); build it with cargo build --release"));
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().expect("a listening line").expect("stdout");
    std::thread::spawn(move || for _ in lines {});
    let url = line
        .trim()
        .strip_prefix("quire listening on ")
        .expect("listening line")
        .to_string();
    Proc { child, url }
}

fn kill_all(procs: &mut [Proc]) {
    for p in procs {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
}

fn status(bin: &str, db: &str, cluster: &str) -> Value {
    let output = Command::new(bin)
        .args(["--database-url", db, "cluster", "status", "--json"])
        .args(["--nats-url", &nats_url(), "--cluster", cluster])
        .output()
        .expect("cluster status");
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

fn owner(status: &Value, book: &str) -> Option<String> {
    let partitions = status["partitions"].as_u64()? as u32;
    let p = u64::from(cluster::partition_of(&format!("book-{book}"), partitions));
    status["nodes"].as_array()?.iter().find_map(|n| {
        n["partitions"]
            .as_array()?
            .iter()
            .any(|x| x.as_u64() == Some(p))
            .then(|| n["node_id"].as_str().unwrap().to_string())
    })
}

/// One round, or `None` when the watched book's partition did not land on the node to kill.
async fn failover_round(bin: &str, round: usize) -> Option<Duration> {
    let db = quire_store::testing::fresh_postgres_database().await;
    let cluster = format!("benchfo{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let ids = ["n1", "n2", "n3"];
    let mut procs: Vec<Proc> = ids
        .iter()
        .map(|id| start_node(bin, &db, &cluster, id, dir.path()))
        .collect();
    // Formed and balanced.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(bin, &db, &cluster);
        let nodes = s["nodes"].as_array().cloned().unwrap_or_default();
        if nodes.len() == 3
            && nodes
                .iter()
                .all(|n| n["partitions"].as_array().is_some_and(|p| !p.is_empty()))
            && s["unowned_partitions"]
                .as_array()
                .is_some_and(Vec::is_empty)
        {
            break;
        }
        assert!(Instant::now() < deadline, "cluster did not form");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut books = Vec::new();
    for i in 0..8 {
        let response = http
            .post(format!("{}/books", procs[0].url))
            .basic_auth("admin", Some("bench-password-1"))
            .json(&json!({ "title": format!("book {i}"), "author": "George Eliot" }))
            .send()
            .await
            .expect("POST /books");
        let body: Value = response.json().await.unwrap();
        books.push(body["id"].as_str().unwrap().to_string());
    }
    // The watched book's owner must be n1, whose API no client uses; else try another round.
    let victim_id = owner(&status(bin, &db, &cluster), &books[0]).expect("owner");
    if victim_id != "n1" {
        kill_all(&mut procs);
        return None;
    }
    let survivors: Vec<String> = procs[1..].iter().map(|p| p.url.clone()).collect();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // (first attempt sent, acknowledged) of the watched book's writes.
    let acked = Arc::new(std::sync::Mutex::new(Vec::<(Instant, Instant)>::new()));
    let load: Vec<_> = (0..8)
        .map(|c| {
            let (http, survivors, books, stop, acked) = (
                http.clone(),
                survivors.clone(),
                books.clone(),
                stop.clone(),
                acked.clone(),
            );
            tokio::spawn(async move {
                let mut n = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Client 0 writes the watched book; the others spread over all books.
                    let book = if c == 0 {
                        &books[0]
                    } else {
                        &books[(c + n) % books.len()]
                    };
                    let key = uuid::Uuid::new_v4().to_string();
                    let sent = Instant::now();
                    loop {
                        let url = format!("{}/books/{book}", survivors[n % survivors.len()]);
                        let ok = http
                            .put(url)
                            .basic_auth("admin", Some("bench-password-1"))
                            .header("Idempotency-Key", &key)
                            .json(&json!({ "title": format!("c{c} n{n}") }))
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success());
                        if ok {
                            if c == 0 {
                                acked.lock().unwrap().push((sent, Instant::now()));
                            }
                            break;
                        }
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    n += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    procs[0].child.kill().expect("SIGKILL");
    let killed = Instant::now();
    let _ = procs[0].child.wait();
    // The first write of the watched book sent after the kill: it waits for the failover.
    let recovered = loop {
        if let Some((_, done)) = acked
            .lock()
            .unwrap()
            .iter()
            .find(|(sent, _)| *sent > killed)
        {
            break done.duration_since(killed);
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "no failover");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        let _ = task.await;
    }
    kill_all(&mut procs);
    println!(
        "failover round {round}: {victim_id} killed; a write to its partition sent after the kill was acknowledged {:.2} s after it",
        recovered.as_secs_f64()
    );
    Some(recovered)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let only = std::env::var("QUIRE_BENCH_ONLY").unwrap_or_default();
    let wanted = move |name: &str| name.contains(only.as_str());
    header();
    throughput(&wanted).await;
    if wanted("failover") {
        let bin = std::env::var("QUIRE_BENCH_BIN").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/quire").to_string()
        });
        let mut times = Vec::new();
        let mut round = 0;
        while times.len() < 3 {
            round += 1;
            assert!(
                round <= 30,
                "the watched book never landed on the node to kill"
            );
            if let Some(t) = failover_round(&bin, round).await {
                times.push(t);
            }
        }
        times.sort();
        println!(
            "failover after kill -9 (lease TTL 4 s): min {:.2} s, median {:.2} s, max {:.2} s",
            times[0].as_secs_f64(),
            times[1].as_secs_f64(),
            times[2].as_secs_f64()
        );
    }
}

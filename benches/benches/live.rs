//! Live updates: many WebSocket clients of one club on one node, replies appended at a steady
//! rate; how long from a reply's acknowledgement (its append returned) until every client has it,
//! how many messages arrived, and the memory each connection costs.
//!
//! `cargo bench -p quire-benches --bench live`. Scale with `QUIRE_LIVE_CLIENTS` (default 1000),
//! `QUIRE_LIVE_RATE` (replies per second, default 100) and `QUIRE_LIVE_SECONDS` (default 20).
//! The clients run in this process, so the memory figure (RSS delta / connections) counts the
//! client's side of each connection as well as the server's: an upper bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use quire_benches::{ADMIN, PASSWORD, histogram, rss_bytes};
use quire_domain::DomainEvent;
use quire_domain::club::{ClubEvent, Visibility};
use quire_domain::ids::{ClubId, ReplyId, ThreadId, UserId};
use quire_domain::thread::ThreadEvent;
use quire_domain::values::{ClubName, PostText, ThreadTitle, Timestamp, Username};
use quire_store::{AppendRequest, DynEventStore, EventMetadata, ExpectedVersion, NewEvent};
use tokio_tungstenite::tungstenite::Message;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now() -> Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros();
    Timestamp::from_micros(i64::try_from(micros).expect("time"))
}

async fn append<E: DomainEvent>(store: &DynEventStore, stream: &str, events: &[E]) {
    store
        .append(AppendRequest {
            stream_id: stream.to_string(),
            expected: ExpectedVersion::Any,
            events: events
                .iter()
                .map(|e| NewEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: e.event_type().into(),
                    schema_version: e.schema_version(),
                    payload: e.to_payload(),
                    metadata: EventMetadata::default(),
                })
                .collect(),
            command: None,
        })
        .await
        .expect("append");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let clients = env("QUIRE_LIVE_CLIENTS", 1000) as usize;
    let rate = env("QUIRE_LIVE_RATE", 100).max(1);
    let seconds = env("QUIRE_LIVE_SECONDS", 20);
    let replies = (rate * seconds) as usize;

    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = quire::config::Settings {
        listen: "127.0.0.1:0".parse().expect("address"),
        admin_user: Some(ADMIN.into()),
        admin_password: Some(quire::config::Secret::new(PASSWORD)),
        data_dir: dir.path().to_path_buf(),
        ..quire::config::Settings::default()
    };
    settings.api.rate_limit_per_second = 0.0;
    settings.summaries.auto = false;
    settings.http.max_connections_per_ip = clients + 100;
    settings.http.max_connections = clients + 100;
    let app = quire::Application::build(settings)
        .await
        .expect("start the node");
    let addr = app.local_addr().expect("HTTP address");
    let store = app.store().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    // A public club with one thread, by the admin.
    let admin = UserId::for_username(&Username::parse(ADMIN).expect("name"));
    let club = ClubId::new();
    append(
        &store,
        &club.stream_id(),
        &[ClubEvent::ClubCreated {
            club_id: club,
            name: ClubName::parse("Bench club").expect("name"),
            visibility: Visibility::Public,
            owner: admin,
            write_ins: true,
            at: now(),
        }],
    )
    .await;
    let thread = ThreadId::new();
    let stream = format!("thread-{thread}");
    append(
        &store,
        &stream,
        &[ThreadEvent::ThreadStarted {
            thread_id: thread,
            club_id: club,
            title: ThreadTitle::parse("Live").expect("title"),
            author: admin,
            content: PostText::parse("Go").expect("text"),
            book_id: None,
            chapter: None,
            spoiler: false,
            at: now(),
        }],
    )
    .await;

    // Per reply: how many clients have it, when the last one got it, when it was acknowledged.
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..replies).map(|_| AtomicU64::new(0)).collect());
    let done: Arc<Vec<OnceLock<Instant>>> =
        Arc::new((0..replies).map(|_| OnceLock::new()).collect());
    let resyncs = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));

    let rss_before = rss_bytes().unwrap_or(0);
    let url = format!("ws://{addr}/clubs/{club}/live");
    let mut tasks = Vec::with_capacity(clients);
    let connecting = Instant::now();
    for _ in 0..clients {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("connect");
        let (counts, done, resyncs, delivered) = (
            counts.clone(),
            done.clone(),
            resyncs.clone(),
            delivered.clone(),
        );
        let n = clients as u64;
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(frame)) = ws.next().await {
                let Message::Text(text) = frame else { continue };
                let message: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                if message["type"] == "resync" {
                    resyncs.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                let Some(i) = message["data"]["content"]
                    .as_str()
                    .and_then(|c| c.strip_prefix('r'))
                    .and_then(|c| c.parse::<usize>().ok())
                else {
                    continue;
                };
                delivered.fetch_add(1, Ordering::Relaxed);
                if counts[i].fetch_add(1, Ordering::AcqRel) + 1 == n {
                    let _ = done[i].set(Instant::now());
                }
            }
        }));
    }
    let connect_time = connecting.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected = rss_bytes().unwrap_or(0);

    // Replies at `rate` per second.
    let mut acked = Vec::with_capacity(replies);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let posting = Instant::now();
    for i in 0..replies {
        tick.tick().await;
        let event = ThreadEvent::ReplyPosted {
            reply_id: ReplyId::new(),
            author: admin,
            content: PostText::parse(format!("r{i}")).expect("text"),
            at: now(),
        };
        append(&store, &stream, &[event]).await;
        acked.push(Instant::now());
    }
    let posted_in = posting.elapsed();
    let deadline = Instant::now() + Duration::from_secs(15);
    while done.iter().any(|d| d.get().is_none()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_peak = rss_bytes().unwrap_or(0);

    let mut latency = histogram();
    let mut complete = 0;
    for (ack, done) in acked.iter().zip(done.iter()) {
        if let Some(at) = done.get() {
            complete += 1;
            let nanos = at.saturating_duration_since(*ack).as_nanos() as u64;
            latency.saturating_record(nanos.max(1_000));
        }
    }
    let per_connection = rss_connected.saturating_sub(rss_before) as f64 / clients as f64;
    println!(
        "live: {clients} WebSocket clients on one node (SQLite), {replies} replies at {rate}/s over {:.1} s (connect {:.1} s)",
        posted_in.as_secs_f64(),
        connect_time.as_secs_f64()
    );
    println!(
        "acknowledged -> delivered to all: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({complete}/{replies} replies reached every client)",
        latency.value_at_quantile(0.50) as f64 / 1e6,
        latency.value_at_quantile(0.99) as f64 / 1e6,
        latency.max() as f64 / 1e6,
    );
    println!(
        "delivered {} of {} messages; {} resyncs",
        delivered.load(Ordering::Relaxed),
        replies as u64 * clients as u64,
        resyncs.load(Ordering::Relaxed)
    );
    println!(
        "memory: RSS {:.1} MB before, {:.1} MB with the clients connected, {:.1} MB at the end; {:.1} KB per connection (server and in-process client together)",
        rss_before as f64 / 1e6,
        rss_connected as f64 / 1e6,
        rss_peak as f64 / 1e6,
        per_connection / 1024.0
    );
    for task in tasks {
        task.abort();
    }
    let _ = stop.send(());
    let _ = node.await;
}

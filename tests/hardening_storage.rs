//! Storage failures, driven through the built binary: a damaged SQLite read-model file is
//! replaced and rebuilt from the log (at start, and by `quire projections rebuild --all`), and a
//! Postgres outage (a TCP proxy the test cuts) answers 503 `storage_unavailable` with
//! `Retry-After` promptly, shows in `/status`, and ends by itself when the database is back.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{ADMIN, ADMIN_PASSWORD, Api, Backend, Server, Store, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a client may wait for a refusal while storage is down: "promptly", with room for a slow
/// machine, and far below the 30 s a pool's default acquire timeout would take.
const PROMPT: Duration = Duration::from_secs(5);

/// Writes books and reviews; returns what the read models then serve: every book and the reviews
/// of the reviewed book.
async fn write_some_data(api: &Api) -> (String, Value) {
    let mut books = Vec::new();
    for i in 0..30 {
        books.push(
            api.create_book(&format!("Frankenstein, volume {i}"))
                .await
                .0,
        );
    }
    let reviewed = books[0].clone();
    for i in 0..12 {
        let patron = api.enrol_patron(&format!("Patron {i}")).await;
        let response = api
            .review_for(&books[i % 3], &patron, (i % 5 + 1) as u8)
            .await
            .expect("POST review");
        assert!(response.status().is_success(), "{}", response.status());
    }
    let token = api.create_book("the last one").await.1;
    (reviewed, served(api, &books[0], Some(token)).await)
}

/// A node without background summaries, whose writes would change books between snapshots.
fn start(store: &Store) -> Server {
    Server::start_with_env(store, &[], &[("QUIRE_SUMMARIES__AUTO", "false")])
}

/// Stops a node with SIGTERM; it must exit cleanly.
fn stop(server: &mut Server) {
    let status = server.terminate();
    assert!(status.success(), "quire serve exited with {status}");
}

/// Runs a node that writes some data, then starts it once more and stops it, and returns what it
/// served. A node keeps recent read-model pages in read.db's write-ahead log; the second start
/// moves them into read.db itself (SQLite does so when the last connection closes, here the one
/// that checks the file), which is where a node that has run for a while keeps its data and where
/// the tests then damage it.
async fn served_by_a_node_that_ran(store: &Store) -> (String, Value) {
    let mut server = start(store);
    let api = Api::new(&server.url);
    let (book, before) = write_some_data(&api).await;
    stop(&mut server);
    let mut server = start(store);
    caught_up(&Api::new(&server.url)).await;
    stop(&mut server);
    (book, before)
}

/// Every book (all pages) and every review of `book`, as served.
async fn served(api: &Api, book: &str, token: Option<u64>) -> Value {
    let mut books = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/books?limit=100&cursor={}",
                url::form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
            ),
            None => "/books?limit=100".to_string(),
        };
        let (status, body) = api.get(&path, token).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        books.extend(body["books"].as_array().expect("books").iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    json!({ "books": books, "reviews": api.all_reviews(book, token).await })
}

/// Writes garbage over the middle half of a SQLite file's pages, as a failing disk or a stray
/// write would; the first page (header and schema) stays intact, so only reading the data finds
/// the damage.
fn damage(path: &Path) {
    const PAGE: u64 = 4096;
    let len = std::fs::metadata(path).expect("read.db exists").len();
    let pages = len / PAGE;
    assert!(pages >= 8, "read.db has only {pages} pages");
    let (from, to) = (pages / 4 * PAGE, pages * 3 / 4 * PAGE);
    let garbage: Vec<u8> = (from..to).map(|i| (i * 7919 % 251) as u8).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open read.db");
    file.seek(SeekFrom::Start(from)).unwrap();
    file.write_all(&garbage).unwrap();
    file.sync_all().unwrap();
}

/// The damaged files a start or a rebuild set aside in `dir`.
fn set_aside(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with("read.db.damaged-") && !n.ends_with("-wal") && !n.ends_with("-shm")
        })
        .collect()
}

/// Waits until `/status` says running with every projection at the head.
async fn caught_up(api: &Api) -> Value {
    eventually(
        "/status running and caught up",
        Duration::from_secs(60),
        || async {
            let (status, body) = api.get("/status", None).await;
            let lagging = body["read_models"]["projections"]
                .as_array()
                .is_none_or(|list| list.is_empty() || list.iter().any(|p| p["lag"] != 0));
            (status == StatusCode::OK && body["status"] == "running" && !lagging).then_some(body)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_read_db_is_set_aside_at_start_and_rebuilt_from_the_log() {
    let store = Store::new(Backend::Sqlite).await;
    let read_db = store.dir.path().join("read.db");
    let (book, before) = served_by_a_node_that_ran(&store).await;

    damage(&read_db);
    let mut server = start(&store);
    let api = Api::new(&server.url);
    caught_up(&api).await;
    assert_eq!(served(&api, &book, None).await, before);
    assert_eq!(
        set_aside(store.dir.path()).len(),
        1,
        "the damaged file is kept aside"
    );
    stop(&mut server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_rebuild_all_replaces_a_damaged_read_db() {
    let store = Store::new(Backend::Sqlite).await;
    let read_db = store.dir.path().join("read.db");
    let (book, before) = served_by_a_node_that_ran(&store).await;

    damage(&read_db);
    let out = store.run(&["projections", "rebuild", "--all"]);
    assert!(
        out.status.success(),
        "rebuild --all on a damaged read.db: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(set_aside(store.dir.path()).len(), 1);
    let status = store.run(&["projections", "status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let head = status["head"].as_u64().unwrap();
    assert!(head > 0);
    for projection in status["projections"].as_array().unwrap() {
        assert_eq!(projection["position"], head, "{status}");
    }

    let mut server = start(&store);
    let api = Api::new(&server.url);
    caught_up(&api).await;
    assert_eq!(served(&api, &book, None).await, before);
    stop(&mut server);
}

/// How the proxy fails while cut.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Down {
    /// Nothing listens: connections are refused, as when the database server is stopped.
    Refused,
    /// Connections are accepted and closed at once, as by a proxy whose database is gone.
    Reset,
}

/// A TCP proxy in front of Postgres that the test can cut (every open connection closed, new
/// ones refused or reset) and restore.
struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    down: watch::Sender<Option<Down>>,
    accepting: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            addr: listener.local_addr().unwrap(),
            target,
            down: watch::channel(None).0,
            accepting: std::sync::Mutex::new(None),
        };
        proxy.accept(listener);
        proxy
    }

    fn accept(&self, listener: TcpListener) {
        let (target, watching) = (self.target, self.down.subscribe());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut down = watching.clone();
                if down.borrow_and_update().is_some() {
                    drop(client);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = down.wait_for(|d| d.is_some()) => {}
                    }
                });
            }
        });
        *self.accepting.lock().unwrap() = Some(task);
    }

    /// The database URL `url` names, reached through this proxy.
    fn url(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.addr.port())).unwrap();
        url.to_string()
    }

    fn cut(&self, how: Down) {
        self.down.send_replace(Some(how));
        if how == Down::Refused {
            let task = self.accepting.lock().unwrap().take();
            if let Some(task) = task {
                task.abort();
            }
        }
    }

    async fn restore(&self) {
        let refusing = self.accepting.lock().unwrap().is_none();
        if refusing {
            // The aborted task drops its listener soon after; bind the same port again.
            let addr = self.addr;
            let listener = eventually(
                "the proxy's port again",
                Duration::from_secs(10),
                || async move { TcpListener::bind(addr).await.ok() },
            )
            .await;
            self.accept(listener);
        }
        self.down.send_replace(None);
    }
}

fn postgres_addr(url: &str) -> SocketAddr {
    let url = url::Url::parse(url).unwrap();
    let host = url.host_str().unwrap_or("127.0.0.1");
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", url.port().unwrap_or(5432))
        .parse()
        .expect("a Postgres address")
}

/// Sends a request and checks it is refused as "storage unavailable": a 503 problem with
/// `Retry-After`, within [`PROMPT`].
async fn assert_storage_unavailable(what: &str, request: reqwest::RequestBuilder) {
    let started = Instant::now();
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let elapsed = started.elapsed();
    let status = response.status();
    let retry_after = response.headers().get("retry-after").cloned();
    let content_type = response.headers().get("content-type").cloned();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(body["code"], "storage_unavailable", "{what}: {body}");
    assert!(retry_after.is_some(), "{what}: no Retry-After");
    assert_eq!(
        content_type.unwrap().to_str().unwrap(),
        "application/problem+json",
        "{what}"
    );
    assert!(elapsed < PROMPT, "{what} took {elapsed:?}");
}

/// `/status` answers promptly, 503 and degraded, with the unhealthy components marked.
async fn assert_degraded(api: &Api, store_down: bool, read_down: bool) {
    let started = Instant::now();
    let (status, body) = api.get("/status", None).await;
    let elapsed = started.elapsed();
    assert!(elapsed < PROMPT, "/status took {elapsed:?}");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["event_store"]["healthy"], !store_down, "{body}");
    assert_eq!(body["read_models"]["healthy"], !read_down, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_outage_is_a_prompt_503_and_the_node_recovers_by_itself() {
    let database = quire_store::testing::fresh_postgres_database().await;
    let target = postgres_addr(&database);
    // The event store and the read models reach the same database through proxies of their own,
    // so each can be cut alone.
    let (store_proxy, read_proxy) = (Proxy::start(target).await, Proxy::start(target).await);
    let dir = tempfile::tempdir().unwrap();
    let store = Store {
        backend: Backend::Postgres,
        args: vec![
            "--data-dir".into(),
            dir.path().display().to_string(),
            "--database-url".into(),
            store_proxy.url(&database),
        ],
        dir,
    };
    let read_url = read_proxy.url(&database);
    let server = Server::start_with_env(
        &store,
        &[],
        &[
            ("QUIRE_READ_MODEL_URL", &read_url),
            ("QUIRE_SUMMARIES__AUTO", "false"),
        ],
    );
    let api = Api::new(&server.url);
    let (book, _) = api.create_book("Dracula").await;
    let new_book = || {
        api.admin(api.http.post(api.url("/books"))).json(&json!({
            "title": "Carmilla", "author": "Sheridan Le Fanu", "genre": "gothic",
        }))
    };

    // The event store is down: writes are refused, reads of the read models still answer.
    store_proxy.cut(Down::Refused);
    assert_storage_unavailable("a write with the store down", new_book()).await;
    let (status, _) = api.get(&format!("/books/{book}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_degraded(&api, true, false).await;

    // The read models are down too.
    read_proxy.cut(Down::Reset);
    assert_storage_unavailable(
        "a read with the read models down",
        api.http.get(api.url(&format!("/books/{book}"))),
    )
    .await;
    assert_storage_unavailable("a write with everything down", new_book()).await;
    assert_degraded(&api, true, true).await;

    // Back: writes succeed again and `/status` says so, with no restart.
    store_proxy.restore().await;
    read_proxy.restore().await;
    eventually(
        "a write succeeds again",
        Duration::from_secs(30),
        || async {
            let response = new_book().send().await.ok()?;
            (response.status() == StatusCode::CREATED).then_some(())
        },
    )
    .await;
    caught_up(&api).await;

    // Cut under load: every request is answered, either done or refused as unavailable; none
    // fails as an internal error. A bearer token spares each request a password hash.
    let issued: Value = api
        .http
        .post(api.url("/auth/token"))
        .json(&json!({ "username": ADMIN, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .expect("a token for the admin")
        .json()
        .await
        .unwrap();
    let bearer = issued["access_token"].as_str().unwrap().to_string();
    let stop = watch::channel(false);
    let writers: Vec<_> = (0..6)
        .map(|_| {
            let api = api.clone();
            let stop = stop.1.clone();
            let bearer = bearer.clone();
            tokio::spawn(async move {
                let mut codes = Vec::new();
                while !*stop.borrow() {
                    let response = api
                        .http
                        .post(api.url("/books"))
                        .bearer_auth(&bearer)
                        .json(&json!({ "title": "Uncle Silas", "author": "Le Fanu", "genre": "gothic" }))
                        .send()
                        .await
                        .expect("the node answers");
                    let status = response.status();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    codes.push((status, body["code"].as_str().unwrap_or("").to_string()));
                }
                codes
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store_proxy.cut(Down::Reset);
    read_proxy.cut(Down::Refused);
    tokio::time::sleep(Duration::from_secs(3)).await;
    store_proxy.restore().await;
    read_proxy.restore().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.0.send_replace(true);
    let mut codes = Vec::new();
    for writer in writers {
        codes.extend(writer.await.unwrap());
    }
    let refused = codes
        .iter()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    for (status, code) in &codes {
        assert!(
            status.is_success() || (*status == StatusCode::SERVICE_UNAVAILABLE && !code.is_empty()),
            "{status} {code} among {codes:?}"
        );
    }
    assert!(refused > 0, "the cut refused nothing: {codes:?}");
    api.create_book("after the outage").await;
    caught_up(&api).await;
    drop(server);
}

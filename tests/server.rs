//! Black-box tests of `quire serve`: the built binary over real sockets, every scenario on SQLite
//! and on Postgres. Crash durability (SIGKILL), HTTPS, the projections CLI beside a live server,
//! and a graceful stop.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{ADMIN, Api, Backend, Server, Store, consistency_token, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

const MEMBER_PASSWORD: &str = "correct horse battery";
const BURST: usize = 50;

// ---------------------------------------------------------------------------------------------
// kill -9: a 2xx means durable

async fn survives_kill_9(backend: Backend) {
    let store = Store::new(backend).await;
    let mut server = Server::start(&store, &[]);
    let api = Api::new(&server.url);

    let (book, _) = api.create_book("Frankenstein").await;
    let (alice, _) = api.sign_up("alice", MEMBER_PASSWORD).await;
    let response = api
        .http
        .post(api.url(&format!("/books/{book}/reviews")))
        .basic_auth("alice", Some(MEMBER_PASSWORD))
        .json(&json!({ "rating": 4, "review_text": "The creature's story is the heart of it." }))
        .send()
        .await
        .expect("POST review");
    let status = response.status();
    let token = consistency_token(&response);
    let review: Value = response.json().await.unwrap();
    assert!(status.is_success(), "review: {status} {review}");

    server.kill9();
    let server = Server::start(&store, &[]);
    let api = Api::new(&server.url);

    let (status, got) = api.get(&format!("/books/{book}"), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["title"], "Frankenstein");
    assert_eq!(got["author"], "Mary Shelley");
    assert_eq!(got["rating_count"], 1, "{got}");

    let reviews = api.all_reviews(&book, Some(token)).await;
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(reviews[0]["user_id"], alice.as_str());
    assert_eq!(reviews[0]["rating"], 4);
    assert_eq!(
        reviews[0]["review_text"],
        "The creature's story is the heart of it."
    );

    let (status, summary) = api
        .get(&format!("/books/{book}/summary"), Some(token))
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["review_count"], 1, "{summary}");
    assert_eq!(summary["average_rating"], 4.0, "{summary}");
    assert_eq!(summary["rating"]["distribution"]["4"], 1, "{summary}");

    // The member can still log in, both ways.
    let response = api
        .http
        .post(api.url("/auth/token"))
        .json(&json!({ "username": "alice", "password": MEMBER_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let issued: Value = response.json().await.unwrap();
    assert_eq!(issued["user_id"], alice.as_str());
    let bearer = issued["access_token"].as_str().unwrap().to_string();
    let me: Value = api
        .http
        .get(api.url("/users/me"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .expect("GET /users/me with the bearer token")
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "alice");
    let response = api
        .http
        .get(api.url("/users/me"))
        .basic_auth("alice", Some(MEMBER_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // …and a wrong password is still refused.
    let response = api
        .http
        .get(api.url("/users/me"))
        .basic_auth("alice", Some("not the password"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_survive_kill_9() {
    survives_kill_9(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writes_survive_kill_9() {
    survives_kill_9(Backend::Postgres).await;
}

/// 50 members' reviews posted at once; SIGKILL as soon as all were answered 2xx; all 50 are there
/// after a restart. (The members are patrons enrolled by the admin, who posts on their behalf:
/// signing up 50 logins would mostly measure argon2 in a debug build.)
async fn burst_survives_kill_9(backend: Backend) {
    let store = Store::new(backend).await;
    let mut server = Server::start(&store, &[]);
    let api = Api::new(&server.url);
    let (book, _) = api.create_book("The Last Man").await;
    let mut members = Vec::new();
    for i in 0..BURST {
        members.push(api.enrol_patron(&format!("Reader {i}")).await);
    }

    let tasks: Vec<_> = members
        .iter()
        .enumerate()
        .map(|(i, member)| {
            let (api, book, member) = (api.clone(), book.clone(), member.clone());
            tokio::spawn(async move {
                let response = api
                    .review_for(&book, &member, (i % 5) as u8 + 1)
                    .await
                    .expect("POST review");
                let status = response.status();
                let token = consistency_token(&response);
                let body = response.text().await.unwrap_or_default();
                assert!(status.is_success(), "review {i}: {status} {body}");
                token
            })
        })
        .collect();
    let mut max_token = 0;
    for task in tasks {
        max_token = max_token.max(task.await.expect("review task"));
    }
    server.kill9();

    let server = Server::start(&store, &[]);
    let api = Api::new(&server.url);
    let reviews = api.all_reviews(&book, Some(max_token)).await;
    let reviewers: BTreeSet<String> = reviews
        .iter()
        .map(|r| r["user_id"].as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = members.into_iter().collect();
    assert_eq!(reviews.len(), BURST);
    assert_eq!(reviewers, expected);
    let (status, summary) = api
        .get(&format!("/books/{book}/summary"), Some(max_token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(summary["review_count"], BURST as u64, "{summary}");
    // Ratings 1..=5 ten times each.
    assert_eq!(summary["average_rating"], 3.0, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_burst_of_50_reviews_survives_kill_9() {
    burst_survives_kill_9(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_burst_of_50_reviews_survives_kill_9() {
    burst_survives_kill_9(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// HTTPS

async fn serves_https(backend: Backend) {
    let store = Store::new(backend).await;
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("self-signed certificate");
    let cert_pem = certified.cert.pem();
    let cert = store.dir.path().join("cert.pem");
    let key = store.dir.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();

    let mut server = Server::start(
        &store,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/status", server.url))
        .send()
        .await
        .expect("GET /status over HTTPS");
    assert_eq!(response.status(), StatusCode::OK);
    let status: Value = response.json().await.unwrap();
    assert_eq!(status["service"], "quire");
    let expected_backend = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(status["event_store"]["backend"], expected_backend);

    // A write and an authenticated read over TLS too.
    let api = Api::with_client(&server.url, client.clone());
    let (book, token) = api.create_book("Mathilda").await;
    let (status, got) = api.get(&format!("/books/{book}"), Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["title"], "Mathilda");

    // The same name by DNS name: the certificate is for "localhost" as well.
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let response = client
        .get(format!("https://localhost:{port}/status"))
        .send()
        .await
        .expect("GET /status via https://localhost");
    assert_eq!(response.status(), StatusCode::OK);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let http_url = server.url.replacen("https://", "http://", 1);
    let result = plain.get(format!("{http_url}/status")).send().await;
    assert!(
        result.is_err(),
        "plain HTTP to the HTTPS port must fail, got {:?}",
        result.map(|r| r.status())
    );
    // An untrusting client refuses the self-signed certificate.
    let result = reqwest::Client::new()
        .get(format!("{}/status", server.url))
        .send()
        .await;
    assert!(result.is_err(), "a client without the root must refuse");

    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_serves_https() {
    serves_https(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_serves_https() {
    serves_https(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// The projections CLI beside a live server

const BOOKS: usize = 12;
const PATRONS: usize = 16;

/// `quire projections status --json`, parsed.
async fn projection_status(store: &Arc<Store>) -> Value {
    let store = store.clone();
    let out = tokio::task::spawn_blocking(move || store.run(&["projections", "status", "--json"]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "projections status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "projections status --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Polls `projections status` until books, reviews and users have no lag.
async fn wait_for_no_lag(store: &Arc<Store>) -> Value {
    eventually("projection lag 0", Duration::from_secs(30), || async {
        let status = projection_status(store).await;
        let projections = status["projections"].as_array()?;
        let names: BTreeSet<&str> = projections
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        let all_there = ["books", "reviews", "users"]
            .iter()
            .all(|n| names.contains(n));
        let no_lag = projections.iter().all(|p| p["lag"] == 0);
        (all_there && no_lag).then_some(status)
    })
    .await
}

/// What the background writer confirmed (2xx), per book.
#[derive(Default)]
struct Written {
    reviews: HashMap<String, u64>,
    max_token: u64,
}

async fn rebuild_while_serving(backend: Backend) {
    let store = Arc::new(Store::new(backend).await);
    let server = Server::start(&store, &[]);
    let api = Api::new(&server.url);

    let mut books = Vec::new();
    for i in 0..BOOKS {
        books.push(api.create_book(&format!("Volume {i:02}")).await.0);
    }
    let mut patrons = Vec::new();
    for i in 0..PATRONS {
        patrons.push(api.enrol_patron(&format!("Patron {i}")).await);
    }
    // Each (patron, book) pair may review once: the first patrons review now, the rest during
    // the rebuilds.
    let mut pairs: Vec<(usize, usize)> = (0..PATRONS)
        .flat_map(|p| (0..BOOKS).map(move |b| (p, b)))
        .collect();
    pairs.reverse();
    let mut written = Written::default();
    for _ in 0..(2 * BOOKS) {
        let (p, b) = pairs.pop().unwrap();
        let response = api.review_for(&books[b], &patrons[p], 5).await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        written.max_token = written.max_token.max(consistency_token(&response));
        *written.reviews.entry(books[b].clone()).or_default() += 1;
    }

    let status = wait_for_no_lag(&store).await;
    assert!(
        status["head"].as_u64().unwrap() >= written.max_token,
        "{status}"
    );

    // The book with reviews to watch during the rebuild.
    let watched = books[0].clone();
    let watched_before = written.reviews[&watched];
    let books_before = api.try_count_books().await.expect("count books");
    assert_eq!(books_before, BOOKS);

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(tokio::sync::Mutex::new(written));
    let writer = {
        let (api, stop, written, books, patrons) = (
            api.clone(),
            stop.clone(),
            written.clone(),
            books.clone(),
            patrons.clone(),
        );
        tokio::spawn(async move {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Some((p, b)) = pairs.pop() else { break };
                match api.review_for(&books[b], &patrons[p], 3).await {
                    Ok(response) if response.status().is_success() => {
                        let token = consistency_token(&response);
                        let mut w = written.lock().await;
                        w.max_token = w.max_token.max(token);
                        *w.reviews.entry(books[b].clone()).or_default() += 1;
                    }
                    Ok(response) => errors.push(format!(
                        "POST review: {} {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    )),
                    Err(e) => errors.push(format!("POST review: {e}")),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            errors
        })
    };
    let reader = {
        let (api, stop, watched) = (api.clone(), stop.clone(), watched.clone());
        tokio::spawn(async move {
            let mut errors = Vec::new();
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match api.try_count_books().await {
                    Ok(n) if n >= books_before => {}
                    Ok(n) => errors.push(format!("GET /books listed {n} of {books_before} books")),
                    Err(e) => errors.push(e),
                }
                let (status, book) = api.get(&format!("/books/{watched}"), None).await;
                if status != StatusCode::OK {
                    errors.push(format!("GET /books/{watched}: {status} {book}"));
                }
                let (status, summary) = api.get(&format!("/books/{watched}/summary"), None).await;
                match summary["review_count"].as_u64() {
                    Some(n) if status == StatusCode::OK && n >= watched_before => {}
                    _ => errors.push(format!(
                        "GET /books/{watched}/summary: {status} {summary} (had {watched_before} reviews)"
                    )),
                }
                reads += 1;
            }
            (reads, errors)
        })
    };

    // Let the background traffic get going, then rebuild everything, then one projection.
    eventually("background writes", Duration::from_secs(30), || async {
        let w = written.lock().await;
        (w.reviews.values().sum::<u64>() >= 2 * BOOKS as u64 + 3).then_some(())
    })
    .await;
    for args in [
        &["projections", "rebuild", "--all"][..],
        &["projections", "rebuild", "books"][..],
        &["projections", "rebuild", "search"][..],
    ] {
        let store = store.clone();
        let out = tokio::task::spawn_blocking(move || store.run(args))
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "quire {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let swapped = if args[2] == "search" {
            "a running node switches to it"
        } else {
            "swapped in"
        };
        assert!(stdout.contains(swapped), "quire {args:?}: {stdout}");
    }
    // A few more writes after the last swap.
    let after_rebuild = written.lock().await.reviews.values().sum::<u64>();
    eventually(
        "writes after the rebuild",
        Duration::from_secs(30),
        || async {
            let w = written.lock().await;
            (w.reviews.values().sum::<u64>() >= after_rebuild + 3).then_some(())
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let during = written.lock().await.reviews.values().sum::<u64>();
    eprintln!(
        "{backend:?}: {} reviews written while the projections were rebuilt",
        during - 2 * BOOKS as u64
    );
    let write_errors = writer.await.unwrap();
    let (reads, read_errors) = reader.await.unwrap();
    assert!(write_errors.is_empty(), "writes failed: {write_errors:#?}");
    assert!(reads > 0, "the reader never completed a read");
    assert!(
        read_errors.is_empty(),
        "{} of {reads} read rounds went wrong during the rebuild: {:#?}",
        read_errors.len(),
        &read_errors[..read_errors.len().min(10)]
    );

    // Afterwards the read model matches what was written.
    let written = written.lock().await;
    let status = wait_for_no_lag(&store).await;
    assert!(
        status["head"].as_u64().unwrap() >= written.max_token,
        "{status}"
    );
    assert_eq!(api.try_count_books().await.unwrap(), BOOKS);
    // The search index the server switched to has every book.
    let (status, found) = api
        .get("/search?facets=false&limit=1", Some(written.max_token))
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["total"], BOOKS as u64, "{found}");
    let mut mismatches = Vec::new();
    for book in &books {
        let expected = written.reviews.get(book).copied().unwrap_or(0);
        let (status, summary) = api
            .get(&format!("/books/{book}/summary"), Some(written.max_token))
            .await;
        assert_eq!(status, StatusCode::OK, "{summary}");
        let listed = api.all_reviews(book, Some(written.max_token)).await.len() as u64;
        let (_, got) = api.get(&format!("/books/{book}"), None).await;
        if summary["review_count"] != expected
            || listed != expected
            || got["rating_count"] != expected
        {
            mismatches.push(format!(
                "book {book}: wrote {expected} reviews, summary says {}, list has {listed}, \
                 the book's rating_count is {}",
                summary["review_count"], got["rating_count"]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "read model differs from the writes after the rebuild:\n{}",
        mismatches.join("\n")
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_projections_rebuild_while_serving() {
    rebuild_while_serving(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_projections_rebuild_while_serving() {
    rebuild_while_serving(Backend::Postgres).await;
}

async fn unknown_projection_is_refused(backend: Backend) {
    let store = Store::new(backend).await;
    // Once with a server running on the store, so the read models exist.
    let server = Server::start(&store, &[]);
    let out = store.run(&["projections", "rebuild", "nope"]);
    assert!(!out.status.success(), "rebuilding 'nope' must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in ["nope", "books", "reviews", "users"] {
        assert!(
            stderr.contains(name),
            "stderr should name {name:?}: {stderr}"
        );
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rebuilding_an_unknown_projection_names_the_valid_ones() {
    unknown_projection_is_refused(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rebuilding_an_unknown_projection_names_the_valid_ones() {
    unknown_projection_is_refused(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// Graceful stop

async fn stops_gracefully(backend: Backend) {
    let store = Store::new(backend).await;
    let mut server = Server::start(&store, &[]);
    let api = Api::new(&server.url);
    let (book, token) = api.create_book("Valperga").await;
    let status = server.terminate();
    assert!(status.success(), "SIGTERM should exit 0, got {status}");
    assert!(!server.is_running());

    let mut server = Server::start(&store, &[]);
    let api = Api::new(&server.url);
    let (status, body) = api.get("/status", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "running");
    let (status, got) = api.get(&format!("/books/{book}"), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["title"], "Valperga");
    // The admin was not created twice, and still logs in.
    let response = api
        .admin(api.http.get(api.url("/users?limit=100")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let users: Value = response.json().await.unwrap();
    let admins = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["username"] == ADMIN)
        .count();
    assert_eq!(admins, 1, "{users}");
    // And a second SIGTERM stops it cleanly too.
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_stops_gracefully_on_sigterm_and_restarts() {
    stops_gracefully(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stops_gracefully_on_sigterm_and_restarts() {
    stops_gracefully(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// Private data

/// The log and the read models hold password hashes: the data directory is the user's alone
/// (0700) and the databases and their WAL files are 0600, also when they existed with wider modes.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_databases_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let store = Store::new(Backend::Sqlite).await;
    let dir = store.dir.path().to_path_buf();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut server = Server::start(&store, &[]);
    let api = Api::new(&server.url);
    api.create_book("Mathilda").await;
    assert_eq!(mode(&dir), 0o700);
    for file in [
        "events.db",
        "events.db-wal",
        "read.db",
        "read.db-wal",
        "token-secret",
    ] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    assert!(server.terminate().success());

    // Loosened by someone meanwhile: tightened again at the next start.
    std::fs::set_permissions(
        dir.join("events.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let mut server = Server::start(&store, &[]);
    assert_eq!(mode(&dir.join("events.db")), 0o600);
    assert!(server.terminate().success());
}

// ---------------------------------------------------------------------------------------------
// The configured admin

/// An operator who still configures `QUIRE_ADMIN_USER` wants that admin to exist and be active:
/// deactivated by another admin, it is reactivated at the next start (with its own password).
async fn a_deactivated_configured_admin_comes_back_at_restart(backend: Backend) {
    let store = Store::new(backend).await;
    let mut server = Server::start(&store, &[]);
    let api = Api::new(&server.url);
    let me: Value = api
        .admin(api.http.get(api.url("/users/me")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_id = me["id"].as_str().unwrap().to_string();
    let second = api
        .admin(api.http.post(api.url("/users")))
        .json(&json!({"name": "Second", "username": "second", "password": "second-password-1", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::CREATED);
    let removed = api
        .http
        .delete(api.url(&format!("/users/{admin_id}")))
        .basic_auth("second", Some("second-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let refused = api
        .admin(api.http.get(api.url("/users/me")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(server.terminate().success());

    let mut server = Server::start(&store, &[]);
    let api = Api::new(&server.url);
    let back = api
        .admin(api.http.get(api.url("/users/me")))
        .send()
        .await
        .unwrap();
    let status = back.status();
    assert_eq!(status, StatusCode::OK, "{}", back.text().await.unwrap());
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_deactivated_configured_admin_comes_back_at_restart() {
    a_deactivated_configured_admin_comes_back_at_restart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_deactivated_configured_admin_comes_back_at_restart() {
    a_deactivated_configured_admin_comes_back_at_restart(Backend::Postgres).await;
}

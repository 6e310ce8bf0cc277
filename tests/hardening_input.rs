//! Hostile input at the HTTP edge, on both backends: text with NUL and other control characters,
//! usernames that look like another user's, and books with thousands of authors or genres. Each
//! is refused with a 422 problem naming what is wrong, stores nothing, and costs honest writers
//! nothing (on Postgres one NUL in a group commit used to fail every append batched with it).
//!
//! Nodes are started by `Application::build`, as `quire serve` starts them.

use std::net::SocketAddr;

use futures::future::join_all;
use quire::Application;
use quire::config::{Secret, Settings};
use quire_store::DynEventStore;
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "admin-password-1";
const HONEST_WRITERS: usize = 30;
const NUL_ATTEMPTS: usize = 10;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

struct TestApp {
    addr: SocketAddr,
    client: reqwest::Client,
    store: DynEventStore,
    admin_token: String,
    _dir: tempfile::TempDir,
}

/// A signed-up member's bearer token. Writers authenticate with tokens (an HMAC check), so the
/// concurrent part of a test does no password hashing, which the node deliberately rations.
struct Member {
    token: String,
}

/// A node with its own data directory (and Postgres database), an admin, no rate limit and no
/// background summaries.
async fn spawn_app(backend: Backend) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_user: Some("admin".into()),
        admin_password: Some(Secret::new(ADMIN_PASSWORD)),
        ..Settings::default()
    };
    if let Backend::Postgres = backend {
        settings.database_url = Some(Secret::new(
            quire_store::testing::fresh_postgres_database().await,
        ));
    }
    settings.api.rate_limit_per_second = 0.0;
    settings.api.token_secret = Some(Secret::new("a test secret that is long enough!"));
    settings.summaries.auto = false;
    settings.validate().expect("test settings");
    let app = Application::build(settings)
        .await
        .expect("starting the node");
    let addr = app.local_addr().expect("the node serves HTTP");
    let store = app.store().clone();
    // The node serves until the test's runtime ends.
    tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::new();
    let admin_token = token(&client, addr, "admin", ADMIN_PASSWORD).await;
    TestApp {
        addr,
        client,
        store,
        admin_token,
        _dir: dir,
    }
}

async fn token(
    client: &reqwest::Client,
    addr: SocketAddr,
    username: &str,
    password: &str,
) -> String {
    let response = client
        .post(format!("http://{addr}/auth/token"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "token for {username}: {body}");
    body["access_token"].as_str().unwrap().to_string()
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.admin_token)
    }

    fn as_member(
        &self,
        member: &Member,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&member.token)
    }

    async fn add_book(&self, title: &str) -> String {
        let response = self
            .admin(reqwest::Method::POST, "/books")
            .json(&json!({"title": title, "author": "Someone", "description": "Plain."}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
    }

    async fn signup(&self, username: &str) -> Member {
        let password = format!("{username}-password");
        let response = self
            .client
            .post(self.url("/users"))
            .json(&json!({"name": username, "username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "signing up {username}"
        );
        Member {
            token: token(&self.client, self.addr, username, &password).await,
        }
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Every stored event's payload, as JSON text.
    async fn stored_payloads(&self) -> Vec<String> {
        let mut payloads = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.read_all(after, 1000).await.unwrap();
            let Some(last) = page.last() else {
                return payloads;
            };
            after = last.position;
            payloads.extend(page.iter().map(|e| e.payload.to_string()));
        }
    }
}

/// Checks a 422 validation problem that names `field`, and returns the problem.
async fn assert_invalid_field(response: reqwest::Response, field: &str) -> Value {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "{body}"
    );
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["code"], "validation_failed", "{body}");
    let errors = problem["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "{body}");
    assert!(errors.iter().all(|e| e["field"] == field), "{body}");
    problem
}

async fn assert_problem(response: reqwest::Response, status: StatusCode, code: &str) {
    let actual = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.text().await.unwrap();
    assert_eq!(actual, status, "{body}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "{body}"
    );
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["code"], code, "{body}");
}

// ---------------------------------------------------------------------------------------------
// NUL in text: refused at the edge, and honest writers unaffected

/// Honest members post and edit reviews while one client keeps sending review texts, book
/// descriptions and summaries with NUL (and other control characters) in them. Every honest write
/// succeeds; every NUL write is a 422 naming its field; no NUL reaches the store.
async fn nul_text_is_refused_and_costs_honest_writers_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = app.add_book("Dune").await;
    // One at a time: signing up and logging in hash passwords, which the node rations.
    let mut members = Vec::new();
    for i in 0..HONEST_WRITERS {
        members.push(app.signup(&format!("reader{i}")).await);
    }
    let attacker = app.signup("mallory").await;
    let response = app
        .as_member(
            &attacker,
            reqwest::Method::POST,
            &format!("/books/{book}/reviews"),
        )
        .json(&json!({"rating": 3, "review_text": "A fair review."}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let attacker_review = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let honest = members.iter().enumerate().map(|(i, member)| {
        let app = &app;
        let book = &book;
        async move {
            let text = format!("Review {i}.\nSecond line,\ttabbed.");
            let response = app
                .as_member(
                    member,
                    reqwest::Method::POST,
                    &format!("/books/{book}/reviews"),
                )
                .json(&json!({"rating": 4, "review_text": text}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, StatusCode::CREATED, "reader{i} posting: {body}");
            let review = body["id"].as_str().unwrap().to_string();
            for edit in 0..2 {
                let response = app
                    .as_member(
                        member,
                        reqwest::Method::PUT,
                        &format!("/books/{book}/reviews/{review}"),
                    )
                    .json(&json!({"review_text": format!("Review {i}, edit {edit}.")}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body = response.text().await.unwrap();
                assert_eq!(status, StatusCode::OK, "reader{i} editing: {body}");
            }
            review
        }
    });
    let hostile = async {
        for attempt in 0..NUL_ATTEMPTS {
            let response = app
                .as_member(
                    &attacker,
                    reqwest::Method::PUT,
                    &format!("/books/{book}/reviews/{attacker_review}"),
                )
                .json(&json!({"review_text": format!("bad\u{0}text {attempt}")}))
                .send()
                .await
                .unwrap();
            assert_invalid_field(response, "review_text").await;
            let response = app
                .admin(reqwest::Method::PUT, &format!("/books/{book}"))
                .json(&json!({"description": "null\u{0}byte"}))
                .send()
                .await
                .unwrap();
            assert_invalid_field(response, "description").await;
            let response = app
                .admin(reqwest::Method::PUT, &format!("/books/{book}"))
                .json(&json!({"summary": "escape \u{1b}[2J"}))
                .send()
                .await
                .unwrap();
            assert_invalid_field(response, "summary").await;
        }
        // A new review with NUL, by a member who has not reviewed the book yet.
        let newcomer_review = app
            .as_member(
                &attacker,
                reqwest::Method::POST,
                &format!("/books/{}/reviews", app.add_book("Emma").await),
            )
            .json(&json!({"rating": 5, "review_text": "\u{0}"}))
            .send()
            .await
            .unwrap();
        assert_invalid_field(newcomer_review, "review_text").await;
        let response = app
            .admin(reqwest::Method::POST, "/books")
            .json(&json!({"title": "Ulysses", "author": "James Joyce", "description": "a\u{0}b"}))
            .send()
            .await
            .unwrap();
        assert_invalid_field(response, "description").await;
    };
    let (reviews, ()) = tokio::join!(join_all(honest), hostile);

    for (i, review) in reviews.iter().enumerate() {
        let stored = app
            .get_json(&format!("/books/{book}/reviews/{review}"))
            .await;
        assert_eq!(
            stored["review_text"],
            format!("Review {i}, edit 1."),
            "{stored}"
        );
    }
    let attackers = app
        .get_json(&format!("/books/{book}/reviews/{attacker_review}"))
        .await;
    assert_eq!(attackers["review_text"], "A fair review.", "{attackers}");
    let dune = app.get_json(&format!("/books/{book}")).await;
    assert_eq!(dune["description"], "Plain.", "{dune}");
    assert!(dune["summary"].is_null(), "{dune}");
    // serde_json writes NUL and ESC as `\u0000` and `\u001b`.
    let payloads = app.stored_payloads().await;
    assert!(
        !payloads
            .iter()
            .any(|p| p.contains("\\u0000") || p.contains("\\u001b"))
    );
    assert!(!payloads.iter().any(|p| p.contains("Ulysses")));
}

/// A lone UTF-16 surrogate cannot become a Rust string: the body is malformed JSON.
async fn a_lone_surrogate_is_malformed_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = app.add_book("Dune").await;
    let member = app.signup("reader").await;
    let head = app.store.head().await.unwrap();
    let response = app
        .as_member(
            &member,
            reqwest::Method::POST,
            &format!("/books/{book}/reviews"),
        )
        .header("content-type", "application/json")
        .body(r#"{"rating": 4, "review_text": "half \ud800 a pair"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST, "malformed_json").await;
    assert_eq!(app.store.head().await.unwrap(), head);
}

// ---------------------------------------------------------------------------------------------
// Usernames that look like "admin"

async fn usernames_that_look_like_admin_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let head = app.store.head().await.unwrap();
    for lookalike in [
        "ａｄｍｉｎ",    // full-width
        "adm\u{200b}in", // zero-width space
        "\u{430}dmin",   // Cyrillic а
        "adm\u{456}n",   // Cyrillic і
        "\u{202e}nimda", // right-to-left override
    ] {
        let response = app
            .client
            .post(app.url("/users"))
            .json(&json!({"name": "Admin", "username": lookalike, "password": "a long password"}))
            .send()
            .await
            .unwrap();
        let problem = assert_invalid_field(response, "username").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("username must not contain"),
            "{problem}"
        );
        // Nor does the lookalike log in as the admin.
        let response = app
            .client
            .get(app.url("/users/me"))
            .basic_auth(lookalike, Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{lookalike:?}");
    }
    assert_eq!(app.store.head().await.unwrap(), head, "nothing was stored");
    // Case folds to the one account.
    let response = app
        .client
        .post(app.url("/users"))
        .json(&json!({"name": "Admin", "username": "ADMIN", "password": "a long password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    // Plain ASCII names, email addresses included, still sign up.
    app.signup("ada.lovelace+books@example.org").await;
}

// ---------------------------------------------------------------------------------------------
// Bounded author and genre lists

async fn books_with_thousands_of_authors_or_genres_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let head = app.store.head().await.unwrap();
    let authors: Vec<String> = (0..3_000).map(|i| format!("A{i}")).collect();
    let response = app
        .admin(reqwest::Method::POST, "/books")
        .json(&json!({"title": "Crowded", "authors": authors}))
        .send()
        .await
        .unwrap();
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_many_authors",
    )
    .await;
    let genres: Vec<String> = (0..5_000).map(|i| format!("g{i}")).collect();
    let response = app
        .admin(reqwest::Method::POST, "/books")
        .json(&json!({"title": "Crowded", "author": "A", "genres": genres}))
        .send()
        .await
        .unwrap();
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_many_genres",
    )
    .await;
    let book = app.add_book("Dune").await;
    let after_add = app.store.head().await.unwrap();
    assert_eq!(after_add, head + 1, "only the plain book was stored");
    let response = app
        .admin(reqwest::Method::PUT, &format!("/books/{book}"))
        .json(&json!({"genres": genres}))
        .send()
        .await
        .unwrap();
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_many_genres",
    )
    .await;
    assert_eq!(app.store.head().await.unwrap(), after_add);
    let fifty: Vec<String> = (0..50).map(|i| format!("Contributor {i}")).collect();
    let response = app
        .admin(reqwest::Method::PUT, &format!("/books/{book}"))
        .json(&json!({"authors": fifty}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "an anthology's authors fit"
    );
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    nul_text_is_refused_and_costs_honest_writers_nothing,
    a_lone_surrogate_is_malformed_json,
    usernames_that_look_like_admin_are_refused,
    books_with_thousands_of_authors_or_genres_are_refused,
);

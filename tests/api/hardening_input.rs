//! Hostile input at the HTTP edge, on both backends: text with NUL and other control characters,
//! usernames that look like another user's, and books with thousands of authors or genres. Each
//! is refused with a 422 problem naming what is wrong, stores nothing, and costs honest writers
//! nothing (on Postgres one NUL in a group commit used to fail every append batched with it).
//!
//! Nodes are started by `Application::build`, as `quire serve` starts them.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_PASSWORD, As, Backend, TestApp, assert_problem, created_id, on_backends, spawn_app,
};

const HONEST_WRITERS: usize = 30;
const NUL_ATTEMPTS: usize = 10;

/// A node whose admin and writers authenticate with bearer tokens (an HMAC check), so the
/// concurrent part of a test does no password hashing, which the node deliberately rations.
struct Node {
    app: TestApp,
    admin_token: String,
}

/// A signed-up member's bearer token.
struct Writer {
    token: String,
}

async fn spawn_node(backend: Backend) -> Node {
    let app = spawn_app(backend).await;
    let admin_token = app.token("admin", ADMIN_PASSWORD).await;
    Node { app, admin_token }
}

impl std::ops::Deref for Node {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl Node {
    /// The admin, by bearer token (`TestApp::admin` sends Basic credentials).
    fn admin(&self) -> As<'_> {
        self.app.bearer(&self.admin_token)
    }

    fn as_writer(&self, writer: &Writer) -> As<'_> {
        self.app.bearer(&writer.token)
    }

    /// Adds a book with the description "Plain." as the admin; returns its id.
    async fn add_book(&self, title: &str) -> String {
        let response = self
            .admin()
            .post(self.url("/books"))
            .json(&json!({"title": title, "author": "Someone", "description": "Plain."}))
            .send()
            .await
            .unwrap();
        created_id(response).await
    }

    /// Signs a member up and logs them in.
    async fn writer(&self, username: &str) -> Writer {
        let member = self.app.signup(username).await;
        Writer {
            token: self.app.token(&member.username, &member.password).await,
        }
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
    let problem = assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let errors = problem["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "{problem}");
    assert!(errors.iter().all(|e| e["field"] == field), "{problem}");
    problem
}

// ---------------------------------------------------------------------------------------------
// NUL in text: refused at the edge, and honest writers unaffected

/// Honest members post and edit reviews while one client keeps sending review texts, book
/// descriptions and summaries with NUL (and other control characters) in them. Every honest write
/// succeeds; every NUL write is a 422 naming its field; no NUL reaches the store.
async fn nul_text_is_refused_and_costs_honest_writers_nothing(backend: Backend) {
    let app = spawn_node(backend).await;
    let book = app.add_book("Dune").await;
    // One at a time: signing up and logging in hash passwords, which the node rations.
    let mut members = Vec::new();
    for i in 0..HONEST_WRITERS {
        members.push(app.writer(&format!("reader{i}")).await);
    }
    let attacker = app.writer("mallory").await;
    let response = app
        .as_writer(&attacker)
        .post(app.url(&format!("/books/{book}/reviews")))
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
                .as_writer(member)
                .post(app.url(&format!("/books/{book}/reviews")))
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
                    .as_writer(member)
                    .put(app.url(&format!("/books/{book}/reviews/{review}")))
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
                .as_writer(&attacker)
                .put(app.url(&format!("/books/{book}/reviews/{attacker_review}")))
                .json(&json!({"review_text": format!("bad\u{0}text {attempt}")}))
                .send()
                .await
                .unwrap();
            assert_invalid_field(response, "review_text").await;
            let response = app
                .admin()
                .put(app.url(&format!("/books/{book}")))
                .json(&json!({"description": "null\u{0}byte"}))
                .send()
                .await
                .unwrap();
            assert_invalid_field(response, "description").await;
            let response = app
                .admin()
                .put(app.url(&format!("/books/{book}")))
                .json(&json!({"summary": "escape \u{1b}[2J"}))
                .send()
                .await
                .unwrap();
            assert_invalid_field(response, "summary").await;
        }
        // A new review with NUL, by a member who has not reviewed the book yet.
        let newcomer_review = app
            .as_writer(&attacker)
            .post(app.url(&format!("/books/{}/reviews", app.add_book("Emma").await)))
            .json(&json!({"rating": 5, "review_text": "\u{0}"}))
            .send()
            .await
            .unwrap();
        assert_invalid_field(newcomer_review, "review_text").await;
        let response = app
            .admin()
            .post(app.url("/books"))
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
    let app = spawn_node(backend).await;
    let book = app.add_book("Dune").await;
    let member = app.writer("reader").await;
    let head = app.store.head().await.unwrap();
    let response = app
        .as_writer(&member)
        .post(app.url(&format!("/books/{book}/reviews")))
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
    let app = spawn_node(backend).await;
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
    app.writer("ada.lovelace+books@example.org").await;
}

// ---------------------------------------------------------------------------------------------
// Bounded author and genre lists

async fn books_with_thousands_of_authors_or_genres_are_refused(backend: Backend) {
    let app = spawn_node(backend).await;
    let head = app.store.head().await.unwrap();
    let authors: Vec<String> = (0..3_000).map(|i| format!("A{i}")).collect();
    let response = app
        .admin()
        .post(app.url("/books"))
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
        .admin()
        .post(app.url("/books"))
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
        .admin()
        .put(app.url(&format!("/books/{book}")))
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
        .admin()
        .put(app.url(&format!("/books/{book}")))
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

on_backends!(
    nul_text_is_refused_and_costs_honest_writers_nothing,
    a_lone_surrogate_is_malformed_json,
    usernames_that_look_like_admin_are_refused,
    books_with_thousands_of_authors_or_genres_are_refused,
);

//! Summaries in the event flow, against the built binary: a book added (or its description
//! changed) gets a summary, reviews changing get a review summary after the debounce, each with
//! provenance; a stale summary is visible and regenerated. Both backends, extractive summarizer.

mod common;

use std::time::Duration;

use common::{Api, Backend, Server, Store, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

const DESCRIPTION: &str = "Victor Frankenstein, a young scientist at Ingolstadt, builds a living \
    creature from dead matter. Horrified by what he has made, he abandons it. The creature, \
    rejected by everyone it meets, learns to speak and read by watching a family of cottagers. \
    It asks Victor for a companion, and when he destroys the half-made female, the creature kills \
    those he loves. Victor pursues it to the Arctic, where he dies aboard Robert Walton's ship.";

async fn summary(api: &Api, book: &str) -> Value {
    let (status, body) = api.get(&format!("/books/{book}/summary"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn summaries_follow_the_book(backend: Backend) {
    let store = Store::new(backend).await;
    let server = Server::start_with_env(&store, &[], &[("QUIRE_SUMMARIES__DEBOUNCE_SECS", "1")]);
    let api = Api::new(&server.url);
    let response = api
        .admin(api.http.post(api.url("/books")))
        .json(&json!({
            "title": "Frankenstein",
            "author": "Mary Shelley",
            "genre": "gothic",
            "year_published": 1818,
            "description": DESCRIPTION,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let book = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A new book gets a summary with its provenance.
    let first = eventually("the book summary", Duration::from_secs(30), || async {
        let body = summary(&api, &book).await;
        body["summary_provenance"].is_object().then_some(body)
    })
    .await;
    assert_eq!(first["summary_provenance"]["backend"], "extractive");
    assert_eq!(
        first["summary_provenance"]["prompt_version"],
        "quire-summary-v1"
    );
    assert_eq!(first["summary_provenance"]["covers_version"], 1);
    assert_eq!(first["summary_stale"], false);
    assert!(
        first["summary"].as_str().unwrap().contains("creature"),
        "{first}"
    );
    assert!(first["review_summary"].is_null());

    // Reviews (one with contact details) get a review summary after the debounce.
    let (member, _) = api.sign_up("reader", "a-long-password-1").await;
    let review = api
        .http
        .post(api.url(&format!("/books/{book}/reviews")))
        .basic_auth("reader", Some("a-long-password-1"))
        .json(&json!({
            "rating": 5,
            "review_text": "A haunting story about creation and responsibility. The creature is more human than its maker, and I cried at the end. Write to me at reader@example.com to discuss it."
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(review.status(), StatusCode::CREATED);
    let reviewed = eventually("the review summary", Duration::from_secs(30), || async {
        let body = summary(&api, &book).await;
        (body["review_summary"].is_string() && body["review_summary_stale"] == false)
            .then_some(body)
    })
    .await;
    let review_summary = reviewed["review_summary"].as_str().unwrap();
    assert!(review_summary.contains("creature"), "{reviewed}");
    assert!(
        !review_summary.contains("reader@example.com"),
        "PII in a summary: {reviewed}"
    );
    assert_eq!(
        reviewed["review_summary_provenance"]["backend"],
        "extractive"
    );
    assert_eq!(reviewed["review_count"], 1);
    let _ = member;

    // Changing the description makes the summary stale; the worker regenerates it.
    let update = api
        .admin(api.http.put(api.url(&format!("/books/{book}"))))
        .json(&json!({ "description": "Robert Walton writes to his sister from the Arctic about a stranger he rescued from the ice, Victor Frankenstein, who tells him how he created a creature and lost everyone he loved to it." }))
        .send()
        .await
        .unwrap();
    assert!(update.status().is_success());
    let regenerated = eventually("a regenerated summary", Duration::from_secs(30), || async {
        let body = summary(&api, &book).await;
        (body["summary_stale"] == false
            && body["summary_provenance"]["covers_version"].as_u64() > Some(1))
        .then_some(body)
    })
    .await;
    assert!(
        regenerated["summary"].as_str().unwrap().contains("Walton"),
        "{regenerated}"
    );

    // The summaries are events in the book's history.
    let (status, history) = api
        .get(&format!("/books/{book}/history?limit=100"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let types: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == "BookSummarySet").count(),
        2,
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| **t == "ReviewSummarySet").count(),
        1,
        "{types:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_summaries_follow_the_book() {
    summaries_follow_the_book(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_summaries_follow_the_book() {
    summaries_follow_the_book(Backend::Postgres).await;
}

/// A book imported with its full text is summarised from the text (here the opening of
/// *Frankenstein*, Project Gutenberg eBook #84): the summary covers the version that attached it.
async fn a_books_full_text_is_what_it_is_summarised_from(backend: Backend) {
    let store = Store::new(backend).await;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gutenberg/modern-header-pg84.txt");
    let out = store.run(&["import", "gutenberg", fixture.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let imported: Value = serde_json::from_slice(&out.stdout).unwrap();
    let book = imported[0]["book_id"].as_str().unwrap().to_string();
    assert_eq!(
        imported[0]["title"],
        "Frankenstein; Or, The Modern Prometheus"
    );

    let server = Server::start(&store, &[]);
    let api = Api::new(&server.url);
    let (status, shown) = api.get(&format!("/books/{book}"), None).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["text"]["source"], "gutenberg:84");
    let made = eventually(
        "the summary of the text",
        Duration::from_secs(30),
        || async {
            let body = summary(&api, &book).await;
            body["summary_provenance"].is_object().then_some(body)
        },
    )
    .await;
    assert_eq!(made["summary_provenance"]["covers_version"], 2, "{made}");
    let text = made["summary"].as_str().unwrap();
    assert!(text.contains("disaster"), "made from the text: {made}");
    assert!(!text.contains("Gutenberg"), "without the license: {made}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_books_full_text_is_what_it_is_summarised_from() {
    a_books_full_text_is_what_it_is_summarised_from(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_books_full_text_is_what_it_is_summarised_from() {
    a_books_full_text_is_what_it_is_summarised_from(Backend::Postgres).await;
}

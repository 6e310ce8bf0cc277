//! `/books/{id}/text`: a book's full text kept in the text store, its hash, size and source in the
//! book's stream; admins only; bad input refused with nothing stored or recorded. On both event
//! store backends with the local text store, and once with an S3-compatible one (the scaled shape).

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    Backend, TestApp, assert_problem, count_of, header, on_backends, spawn_app, spawn_app_with,
};

/// The opening of *Frankenstein* (Project Gutenberg eBook #84, public domain in the USA).
const TEXT: &str = "You will rejoice to hear that no disaster has accompanied the commencement \
    of an enterprise which you have regarded with such evil forebodings. I arrived here \
    yesterday, and my first task is to assure my dear sister of my welfare and increasing \
    confidence in the success of my undertaking. I am already far north of London, and as I \
    walk in the streets of Petersburgh, I feel a cold northern breeze play upon my cheeks — \
    which braces my nerves and fills me with delight.\n";

async fn put_text(
    app: &TestApp,
    book: &str,
    query: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    app.admin()
        .put(app.url(&format!("/books/{book}/text{query}")))
        .header("content-type", "text/plain; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The admin's `GET` (or `DELETE`) of the book's text, with an optional header.
async fn admin_text(
    app: &TestApp,
    method: reqwest::Method,
    book: &str,
    header: Option<(&str, &str)>,
) -> reqwest::Response {
    let url = app.url(&format!("/books/{book}/text"));
    let mut request = match method {
        reqwest::Method::DELETE => app.admin().delete(url),
        _ => app.admin().get(url),
    };
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

fn sha256(text: &str) -> String {
    quire_texts::TextStore::address_of(text.as_bytes())
}

async fn an_admin_attaches_reads_and_detaches_a_text(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = app.add_book("Frankenstein").await;

    let response = put_text(&app, &book, "?source=gutenberg:84", TEXT).await;
    assert_eq!(response.status(), StatusCode::OK);
    let token = header(&response, "consistency-token");
    let attached: Value = response.json().await.unwrap();
    assert_eq!(attached["sha256"], sha256(TEXT));
    assert_eq!(attached["bytes"], TEXT.len());
    assert_eq!(attached["chars"], TEXT.chars().count());
    assert_eq!(attached["source"], "gutenberg:84");

    // The event records the hash, size and source; the text itself is not in the log.
    let stream = format!("book-{book}");
    let events = app.stream_events(&stream).await;
    assert_eq!(count_of(&events, "BookTextSet"), 1);
    let set = events
        .iter()
        .find(|e| e.event_type == "BookTextSet")
        .unwrap();
    assert_eq!(set.payload["sha256"], sha256(TEXT));
    assert_eq!(set.payload["bytes"], TEXT.len());
    assert_eq!(set.payload["source"], "gutenberg:84");
    assert!(!set.payload.to_string().contains("Petersburgh"));

    // The book shows what it has; the text reads back byte for byte, its ETag the hash.
    let shown = app
        .client
        .get(app.url(&format!("/books/{book}")))
        .header("consistency-token", &token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(shown["text"]["sha256"], sha256(TEXT));
    assert_eq!(shown["text"]["source"], "gutenberg:84");
    let read = admin_text(&app, reqwest::Method::GET, &book, None).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(header(&read, "content-type"), "text/plain; charset=utf-8");
    let etag = header(&read, "etag");
    assert_eq!(etag, format!("\"{}\"", sha256(TEXT)));
    assert_eq!(read.text().await.unwrap(), TEXT);
    let unchanged = admin_text(
        &app,
        reqwest::Method::GET,
        &book,
        Some(("if-none-match", &etag)),
    )
    .await;
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);

    // The same text again records nothing new.
    let again = put_text(&app, &book, "?source=gutenberg:84", TEXT).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        count_of(&app.stream_events(&stream).await, "BookTextSet"),
        1
    );

    // Detached: the book has no text any more.
    let removed = admin_text(&app, reqwest::Method::DELETE, &book, None).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let token = header(&removed, "consistency-token");
    let gone = admin_text(
        &app,
        reqwest::Method::GET,
        &book,
        Some(("consistency-token", &token)),
    )
    .await;
    assert_problem(gone, StatusCode::NOT_FOUND, "no_text").await;
    let twice = admin_text(&app, reqwest::Method::DELETE, &book, None).await;
    assert_problem(twice, StatusCode::NOT_FOUND, "no_text").await;
}

async fn texts_are_for_admins_and_bad_input_changes_nothing(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.texts.max_bytes = 1024).await;
    let book = app.add_book("Frankenstein").await;
    let stream = format!("book-{book}");
    let before = app.stream_events(&stream).await.len();

    let (member, _) = app.member_token("walton").await;
    let refused = app
        .as_user(&member)
        .put(app.url(&format!("/books/{book}/text")))
        .header("content-type", "text/plain")
        .body(TEXT)
        .send()
        .await
        .unwrap();
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    let read = app
        .as_user(&member)
        .get(app.url(&format!("/books/{book}/text")))
        .send()
        .await
        .unwrap();
    assert_problem(read, StatusCode::FORBIDDEN, "forbidden").await;
    let anonymous = app
        .client
        .put(app.url(&format!("/books/{book}/text")))
        .header("content-type", "text/plain")
        .body(TEXT)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let json = app
        .admin()
        .put(app.url(&format!("/books/{book}/text")))
        .json(&serde_json::json!({"text": TEXT}))
        .send()
        .await
        .unwrap();
    assert_problem(
        json,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let too_large = put_text(&app, &book, "", TEXT.repeat(3)).await;
    assert_problem(too_large, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
    let not_utf8 = app
        .admin()
        .put(app.url(&format!("/books/{book}/text")))
        .header("content-type", "text/plain")
        .body(vec![b'a', 0xff, 0xfe, b'b'])
        .send()
        .await
        .unwrap();
    let problem = assert_problem(
        not_utf8,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "text", "{problem}");
    let blank = put_text(&app, &book, "", "  \n\n ").await;
    assert_problem(blank, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let bad_source = put_text(&app, &book, "?source=%20padded", TEXT).await;
    assert_problem(bad_source, StatusCode::BAD_REQUEST, "invalid_query").await;
    let unknown = put_text(&app, &book, "?sauce=x", TEXT).await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    let missing = put_text(&app, "0190b5c4-0000-7000-8000-000000000000", "", TEXT).await;
    assert_problem(missing, StatusCode::NOT_FOUND, "not_found").await;

    assert_eq!(
        app.stream_events(&stream).await.len(),
        before,
        "refused requests record nothing"
    );
    // …and store nothing: the text store directory holds no text.
    let texts = app.data_dir().join("texts");
    let stored = walk(&texts);
    assert!(stored.is_empty(), "nothing stored, found {stored:?}");
}

/// The files under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

async fn a_retried_upload_with_its_key_records_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = app.add_book("Frankenstein").await;
    let mut versions = Vec::new();
    for _ in 0..2 {
        let response = app
            .admin()
            .put(app.url(&format!("/books/{book}/text?source=upload")))
            .header("content-type", "text/plain")
            .header("idempotency-key", "frankenstein-text-1")
            .body(TEXT)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        versions.push(response.json::<Value>().await.unwrap()["version"].clone());
    }
    assert_eq!(versions[0], versions[1], "the retry gets the same outcome");
    assert_eq!(
        count_of(
            &app.stream_events(&format!("book-{book}")).await,
            "BookTextSet"
        ),
        1
    );
}

on_backends!(
    an_admin_attaches_reads_and_detaches_a_text,
    texts_are_for_admins_and_bad_input_changes_nothing,
    a_retried_upload_with_its_key_records_once,
);

/// The scaled shape: texts in S3-compatible object storage, events in Postgres.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn texts_live_in_s3_compatible_storage_when_scaled() {
    let location = quire_texts::testing::fresh_s3_location().await;
    let configured = location.clone();
    let app = spawn_app_with(Backend::Postgres, move |s| {
        let t = &mut s.texts;
        t.url = Some(format!("s3://{}/{}", configured.bucket, configured.prefix));
        t.endpoint = configured.endpoint;
        t.region = configured.region;
        t.allow_http = configured.allow_http;
        t.access_key_id = configured.access_key_id;
        t.secret_access_key = configured.secret_access_key.map(quire::config::Secret::new);
    })
    .await;
    let book = app.add_book("Frankenstein").await;
    let response = put_text(&app, &book, "", TEXT).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        walk(&app.data_dir().join("texts")).is_empty(),
        "not kept locally"
    );
    // In the bucket, read straight from it (as another node would)…
    let bucket = quire_texts::TextStore::s3(&location).unwrap();
    assert_eq!(
        bucket.get(&sha256(TEXT)).await.unwrap().as_deref(),
        Some(TEXT.as_bytes())
    );
    // …and through the API.
    let token = header(&response, "consistency-token");
    let read = admin_text(
        &app,
        reqwest::Method::GET,
        &book,
        Some(("consistency-token", &token)),
    )
    .await;
    assert_eq!(read.text().await.unwrap(), TEXT);
}

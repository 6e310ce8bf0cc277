//! Catalogue search over HTTP on both backends: a book is found the moment its write returns
//! (with the write's consistency token), through typos, prefixes, ISBNs and filters; an edit
//! and a removal show at once; pages and facets cover the whole result; a rebuild under reads
//! never serves an empty page.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_problem, header, on_backends, spawn_app};

on_backends!(
    a_book_is_found_as_soon_as_its_write_returns,
    filters_facets_sorts_and_pages_cover_the_whole_result,
    bad_search_parameters_are_problems,
    a_rebuild_under_reads_never_serves_an_empty_page
);

/// Adds a book as the admin; returns its id and the write's consistency token.
async fn add(app: &TestApp, book: Value) -> (String, String) {
    let response = app
        .admin()
        .post(app.url("/books"))
        .json(&book)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let token = header(&response, "consistency-token");
    let body: Value = response.json().await.unwrap();
    (body["id"].as_str().unwrap().to_string(), token)
}

async fn search(app: &TestApp, query: &str, token: Option<&str>) -> Value {
    let mut request = app.client.get(app.url(&format!("/search?{query}")));
    if let Some(token) = token {
        request = request.header("Consistency-Token", token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn titles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["title"].as_str().unwrap().to_string())
        .collect()
}

async fn a_book_is_found_as_soon_as_its_write_returns(backend: Backend) {
    let app = spawn_app(backend).await;
    add(
        &app,
        json!({"title": "The Modern Prometheus", "author": "Percy Shelley"}),
    )
    .await;
    let (id, token) = add(
        &app,
        json!({"title": "Frankenstein", "author": "Mary Shelley", "genre": "Gothic",
               "year_published": 1818, "isbn": "9780143131847",
               "description": "A young scientist creates a sapient creature."}),
    )
    .await;

    // A typo, with the write's token: found at once, with the seed fields and highlights.
    let page = search(&app, "q=frankenstien", Some(&token)).await;
    assert_eq!(page["total"], 1, "{page}");
    let hit = &page["items"][0];
    assert_eq!(hit["id"], id.as_str());
    assert_eq!(hit["book_id"], id.as_str());
    assert_eq!(hit["title"], "Frankenstein");
    assert_eq!(hit["author"], "Mary Shelley");
    assert_eq!(hit["genre"], "gothic");
    assert_eq!(hit["year_published"], 1818);
    assert_eq!(hit["highlights"]["title"], "<mark>Frankenstein</mark>");
    assert_eq!(
        page["facets"]["genre"],
        json!([{"value": "gothic", "count": 1}])
    );
    assert_eq!(
        page["facets"]["decade"],
        json!([{"value": "1810s", "count": 1}])
    );

    // As typed, the last word a prefix; an author's surname; a phrase; both ISBN forms.
    assert_eq!(
        titles(&search(&app, "q=franken", None).await),
        ["Frankenstein"]
    );
    let shelley = titles(&search(&app, "q=shelley", None).await);
    assert_eq!(shelley.len(), 2, "{shelley:?}");
    assert_eq!(
        titles(&search(&app, "q=%22sapient%20creature%22", None).await),
        ["Frankenstein"]
    );
    assert!(search(&app, "q=%22creature%20sapient%22", None).await["total"] == 0);
    for isbn in ["9780143131847", "0-14-313184-2", "014313184X"] {
        let page = search(&app, &format!("q={isbn}"), None).await;
        if isbn == "014313184X" {
            // Not a valid ISBN-10 (wrong check digit): read as words, matching nothing.
            assert_eq!(page["total"], 0, "{isbn}: {page}");
        } else {
            assert_eq!(page["matched"], "isbn", "{isbn}: {page}");
            assert_eq!(titles(&page), ["Frankenstein"], "{isbn}");
        }
    }

    // Suggestions for the search box, as typed: a prefix, and a typo in a title word.
    let suggest = |q: &str| {
        let request = app.client.get(app.url(&format!("/search/suggest?q={q}")));
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            body["suggestions"].as_array().unwrap().clone()
        }
    };
    let list = suggest("mary%20shel").await;
    assert!(
        list.iter()
            .any(|s| s["kind"] == "author" && s["text"] == "Mary Shelley"),
        "{list:?}"
    );
    let list = suggest("frankenstien").await;
    assert!(
        list.iter()
            .any(|s| s["kind"] == "title" && s["text"] == "Frankenstein"),
        "{list:?}"
    );

    // A review shows in the hit's rating figures.
    let review = app
        .admin()
        .post(app.url(&format!("/books/{id}/reviews")))
        .json(&json!({"rating": 4, "review_text": "Haunting."}))
        .send()
        .await
        .unwrap();
    assert_eq!(review.status(), StatusCode::CREATED);
    let token = header(&review, "consistency-token");
    let page = search(&app, "q=frankenstein", Some(&token)).await;
    assert_eq!(
        page["items"][0]["rating"],
        json!({"average": 4.0, "count": 1})
    );

    // An edit and a removal are searchable at once.
    let updated = app
        .admin()
        .put(app.url(&format!("/books/{id}")))
        .json(&json!({"title": "Frankenstein; or, The Modern Prometheus"}))
        .send()
        .await
        .unwrap();
    assert!(updated.status().is_success(), "{}", updated.status());
    let token = header(&updated, "consistency-token");
    let page = search(&app, "q=modern%20prometheus", Some(&token)).await;
    // Both titles hold every word; the one with fewer other words ranks first.
    assert_eq!(
        titles(&page),
        [
            "The Modern Prometheus",
            "Frankenstein; or, The Modern Prometheus"
        ],
        "{page}"
    );
    let removed = app
        .admin()
        .delete(app.url(&format!("/books/{id}")))
        .send()
        .await
        .unwrap();
    assert!(removed.status().is_success());
    let token = header(&removed, "consistency-token");
    let page = search(&app, "q=frankenstein", Some(&token)).await;
    assert_eq!(page["total"], 0, "{page}");
}

async fn filters_facets_sorts_and_pages_cover_the_whole_result(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut token = String::new();
    for i in 0..12 {
        let genre = if i % 3 == 0 { "horror" } else { "fantasy" };
        (_, token) = add(
            &app,
            json!({"title": format!("Dragon Tale {i}"), "author": format!("Author {}", i % 2),
                   "genre": genre, "year_published": 1990 + i}),
        )
        .await;
    }
    let all = search(&app, "q=dragon&limit=5", Some(&token)).await;
    assert_eq!(all["total"], 12);
    assert_eq!(
        all["facets"]["genre"],
        json!([{"value": "fantasy", "count": 8}, {"value": "horror", "count": 4}])
    );
    assert_eq!(
        all["facets"]["decade"][0],
        json!({"value": "2000s", "count": 2})
    );

    // Paging by cursor walks the whole result once.
    let mut seen = titles(&all);
    let mut cursor = all["next_cursor"].as_str().map(str::to_string);
    while let Some(next) = cursor {
        let page = search(&app, &format!("q=dragon&limit=5&cursor={next}"), None).await;
        seen.extend(titles(&page));
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 12);

    let horror = search(&app, "q=dragon&genre=Horror", None).await;
    assert_eq!(horror["total"], 4);
    let range = search(&app, "q=dragon&year_from=1995&year_to=1997&sort=year", None).await;
    assert_eq!(
        titles(&range),
        ["Dragon Tale 7", "Dragon Tale 6", "Dragon Tale 5"]
    );
    let by_author = search(&app, "author=author%201", None).await;
    assert_eq!(by_author["total"], 6);
    assert_eq!(by_author["matched"], "browse");
}

async fn bad_search_parameters_are_problems(backend: Backend) {
    let app = spawn_app(backend).await;
    for query in [
        "q=a&sort=popular",
        "q=a&limit=0",
        "q=a&limit=101",
        "q=a&year_from=2000&year_to=1990",
        "q=a&cursor=nonsense",
        "q=a&colour=blue",
    ] {
        let response = app
            .client
            .get(app.url(&format!("/search?{query}")))
            .send()
            .await
            .unwrap();
        let code = if query.contains("cursor") {
            "invalid_cursor"
        } else {
            "invalid_query"
        };
        assert_problem(response, StatusCode::BAD_REQUEST, code).await;
    }
    let ahead = app
        .client
        .get(app.url("/search?q=a"))
        .header("Consistency-Token", "999999999")
        .send()
        .await
        .unwrap();
    assert_problem(ahead, StatusCode::BAD_REQUEST, "invalid_consistency_token").await;
}

async fn a_rebuild_under_reads_never_serves_an_empty_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut token = String::new();
    let mut first = String::new();
    for i in 0..20 {
        let id;
        (id, token) = add(
            &app,
            json!({"title": format!("Whale Song {i}"), "author": "Ishmael"}),
        )
        .await;
        if i == 0 {
            first = id;
        }
    }
    // Reviews after the books: a rebuild reads their figures once, at the end.
    for rating in [5, 3] {
        let member = app.signup(&format!("reader{rating}")).await;
        let review = app
            .as_user(&member)
            .post(app.url(&format!("/books/{first}/reviews")))
            .json(&json!({"rating": rating, "review_text": "Vast."}))
            .send()
            .await
            .unwrap();
        assert_eq!(review.status(), StatusCode::CREATED);
        token = header(&review, "consistency-token");
    }
    assert_eq!(search(&app, "q=whale", Some(&token)).await["total"], 20);

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (client, url) = (app.client.clone(), app.url("/search?q=whale&facets=false"));
        let (stop, reads) = (stop.clone(), reads.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let page: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
                assert_eq!(page["total"], 20, "a read during the rebuild: {page}");
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let root = app.data_dir().join("search");
    let before: Vec<_> = generations(&root);
    let report = quire_search::indexer::rebuild(
        &root,
        &app.store,
        &quire::ReadModelRatings::new(app.read.clone(), Duration::ZERO),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.books, 20);
    // The node switches to the new generation and deletes the old one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while generations(&root) != [report.generation.clone()] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            generations(&root)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(before, generations(&root));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    reader.await.unwrap();
    assert!(reads.load(Ordering::Relaxed) > 0);

    // The rebuilt index has the reviews' figures, and goes on following the log.
    let page = search(&app, "q=%22whale%20song%200%22&limit=1", None).await;
    assert_eq!(
        page["items"][0]["rating"],
        json!({"average": 4.0, "count": 2}),
        "{page}"
    );
    let (_, token) = add(&app, json!({"title": "Whale Song 20", "author": "Ishmael"})).await;
    assert_eq!(search(&app, "q=whale", Some(&token)).await["total"], 21);
}

fn generations(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

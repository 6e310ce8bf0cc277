//! Interactions and recommendations against the built binary over HTTP, on both backends:
//! cold start by favourite genre and Bayesian average, a model trained by `quire recs train` and
//! swapped into the running server, collaborative pages with reasons that exclude rated and liked
//! books and stay stable across pages, the scheduled trainer, access rules, validation, retries
//! and concurrent interactions.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Api, Backend, Server, Store, consistency_token, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Adds a book in `genre` as the admin; returns its id.
async fn book(api: &Api, title: &str, genre: &str) -> String {
    let response = api
        .admin(api.http.post(api.url("/books")))
        .json(&json!({"title": title, "author": "Someone", "genre": genre}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The admin records an interaction for `user`; returns the response status and body.
async fn interact(
    api: &Api,
    user: &str,
    book: &str,
    action: &str,
    value: Option<u8>,
) -> (StatusCode, Value) {
    let mut body = json!({"book_id": book, "action": action, "user_id": user});
    if let Some(v) = value {
        body["value"] = json!(v);
    }
    let response = api
        .admin(api.http.post(api.url("/interactions")))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn recommendations(api: &Api, query: &str) -> (StatusCode, Value) {
    let response = api
        .admin(api.http.get(api.url(&format!("/recommendations?{query}"))))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn titles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_string())
        .collect()
}

async fn recommendations_from_events(backend: Backend) {
    let store = Store::new(backend).await;
    let server = Server::start_with_env(
        &store,
        &[],
        &[
            ("QUIRE_RECS__REFRESH_SECS", "1"),
            ("QUIRE_RECS__TRAIN_INTERVAL_SECS", "0"),
            // Twelve books: a few factors generalise, 64 would memorise.
            ("QUIRE_RECS__ALS__FACTORS", "4"),
        ],
    );
    let api = Api::new(&server.url);
    let mut fantasy = Vec::new();
    let mut history = Vec::new();
    for i in 0..6 {
        fantasy.push(book(&api, &format!("Fantasy {i}"), "fantasy").await);
        history.push(book(&api, &format!("History {i}"), "history").await);
    }
    let readers: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..12 {
            v.push(api.enrol_patron(&format!("Reader {i}")).await);
        }
        v
    };
    // Two tastes: readers 0-5 read fantasy, 6-11 history; each likes four of the six books of
    // their genre and gives one of them 3 stars, and everyone gives "History 5" 5 stars (it is
    // the best rated book).
    let mut pairs = HashSet::new();
    for (r, reader) in readers.iter().enumerate() {
        let shelf = if r < 6 { &fantasy } else { &history };
        for k in 0..4 {
            let b = &shelf[(r + k) % 6];
            let (status, body) = interact(&api, reader, b, "like", None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            pairs.insert((reader.clone(), b.clone()));
        }
        let response = api.review_for(&history[5], reader, 5).await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        pairs.insert((reader.clone(), history[5].clone()));
        if shelf[r % 6] != history[5] {
            let response = api.review_for(&shelf[r % 6], reader, 3).await.unwrap();
            assert!(response.status().is_success(), "{}", response.status());
        }
    }

    // A book nobody has rated, outside everyone's genres.
    let unrated = book(&api, "Verse 0", "poetry").await;

    // Cold start: a newcomer who prefers history gets history first, by rating (the American
    // spelling of the preference is accepted too).
    let (newcomer, _) = api.sign_up("newcomer", "a-long-password-1").await;
    let response = api
        .http
        .put(api.url(&format!("/users/{newcomer}/preferences")))
        .basic_auth("newcomer", Some("a-long-password-1"))
        .json(&json!({"favorite_genres": ["history"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let token = consistency_token(&response);
    // The newcomer's own page, read after their preferences.
    let newcomers_page = |limit: u32| {
        let request = api
            .http
            .get(api.url(&format!("/recommendations?limit={limit}")))
            .basic_auth("newcomer", Some("a-long-password-1"))
            .header("Consistency-Token", token.to_string());
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    let cold = newcomers_page(3).await;
    assert_eq!(cold["strategy"], "cold_start", "{cold}");
    assert_eq!(cold["items"][0]["title"], "History 5", "{cold}");
    assert_eq!(cold["items"][0]["reason"], "popular in history");
    assert!(
        titles(&cold).iter().all(|t| t.starts_with("History")),
        "{cold}"
    );
    assert!(cold["model"].is_null());
    // The whole cold-start list says only what is true of each book.
    let all = newcomers_page(100).await;
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 13, "{all}");
    let verse = items.iter().find(|i| i["book_id"] == unrated).unwrap();
    assert_eq!(verse["reason"], "new in the catalogue", "{all}");
    assert_eq!(verse["reason_code"], "new_in_catalogue", "{all}");
    assert!(
        items
            .iter()
            .all(|i| !i["reason"].as_str().unwrap().contains("from 0 ratings")),
        "{all}"
    );

    // Train with the operator command while the server runs; the server swaps the model in.
    let quire_json = |args: &[&str]| {
        let output = store
            .command()
            .args(args)
            .env("QUIRE_RECS__ALS__FACTORS", "4")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let report = quire_json(&["recs", "train", "--json"]);
    assert_eq!(report["version"], 1, "{report}");
    assert_eq!(report["users"], 12);
    assert_eq!(report["books"], 12);
    assert_eq!(report["interactions"], pairs.len(), "{report}");
    // The model was chosen on a validation split of those interactions, and says so; the stored
    // model keeps the record.
    assert!(
        report["model"].as_str().is_some_and(|m| !m.is_empty()),
        "{report}"
    );
    let models = quire_json(&["recs", "models", "--json"]);
    assert_eq!(models[0]["version"], 1, "{models}");
    assert_eq!(models[0]["params"]["model"], report["model"], "{models}");
    assert_eq!(
        models[0]["params"]["selection"]["data"]["users"], 12,
        "{models}"
    );
    assert!(
        report["selection"]["validation_ndcg"].is_number(),
        "{report}"
    );
    assert!(
        report["selection"]["candidates"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["family"] == "als")),
        "{report}"
    );

    // A new member likes two fantasy books: collaborative recommendations, folded in at once.
    let probe = api.enrol_patron("Probe").await;
    interact(&api, &probe, &fantasy[0], "like", None).await;
    let (status, _) = interact(&api, &probe, &fantasy[1], "rate", Some(5)).await;
    assert_eq!(status, StatusCode::OK);
    let page = eventually("the trained model", Duration::from_secs(30), || async {
        let (status, page) = recommendations(&api, &format!("user_id={probe}&limit=3")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        (page["model"]["version"] == 1).then_some(page)
    })
    .await;
    assert_eq!(page["strategy"], "collaborative", "{page}");
    let top = titles(&page);
    assert!(
        top.iter().take(2).all(|t| t.starts_with("Fantasy")),
        "{page}"
    );
    assert!(!top.contains(&"Fantasy 0".to_string()) && !top.contains(&"Fantasy 1".to_string()));
    let first = &page["items"][0];
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .starts_with("because you "),
        "{first}"
    );
    assert!(
        [fantasy[0].as_str(), fantasy[1].as_str()]
            .contains(&first["because_book_id"].as_str().unwrap()),
        "{first}"
    );

    // Paging: stable, no repeats, everything but the excluded books, with a Link header.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("user_id={probe}&limit=4&cursor={c}"),
            None => format!("user_id={probe}&limit=4"),
        };
        let response = api
            .admin(api.http.get(api.url(&format!("/recommendations?{query}"))))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let has_link = response.headers().contains_key("link");
        let page: Value = response.json().await.unwrap();
        seen.extend(titles(&page));
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert!(has_link);
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no repeats: {seen:?}");
    assert_eq!(
        seen.len(),
        10,
        "12 books less the 2 rated or liked: {seen:?}"
    );
    let (_, again) = recommendations(&api, &format!("user_id={probe}&limit=3")).await;
    assert_eq!(titles(&again), top, "the same model gives the same page");

    // Genre filter.
    let (_, only) = recommendations(&api, &format!("user_id={probe}&genres=history")).await;
    assert!(
        titles(&only).iter().all(|t| t.starts_with("History")),
        "{only}"
    );

    // Access: members see their own only.
    let response = api
        .http
        .get(api.url(&format!("/recommendations?user_id={probe}")))
        .basic_auth("newcomer", Some("a-long-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let (status, problem) = recommendations(&api, &format!("user_id={probe}&cursor=garbage")).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_cursor")),
        "{problem}"
    );

    // A newer model makes old collaborative cursors stale.
    let (_, page) = recommendations(&api, &format!("user_id={probe}&limit=2")).await;
    let old_cursor = page["next_cursor"].as_str().unwrap().to_string();
    let output = store
        .command()
        .args(["recs", "train", "--json"])
        .env("QUIRE_RECS__ALS__FACTORS", "4")
        .output()
        .unwrap();
    assert!(output.status.success());
    eventually("the second model", Duration::from_secs(30), || async {
        let (_, page) = recommendations(&api, &format!("user_id={probe}&limit=2")).await;
        (page["model"]["version"] == 2).then_some(())
    })
    .await;
    let (status, problem) = recommendations(
        &api,
        &format!("user_id={probe}&limit=2&cursor={old_cursor}"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    drop(server);
}

async fn interactions_are_validated_idempotent_and_concurrent(backend: Backend) {
    let store = Store::new(backend).await;
    let server = Server::start_with_env(&store, &[], &[("QUIRE_RECS__TRAIN_INTERVAL_SECS", "0")]);
    let api = Api::new(&server.url);
    let b = book(&api, "Dune", "science fiction").await;
    let (member, _) = api.sign_up("member", "a-long-password-1").await;
    let as_member =
        |request: reqwest::RequestBuilder| request.basic_auth("member", Some("a-long-password-1"));

    // Bad input: a clear problem, and nothing recorded.
    for (body, field) in [
        (json!({"book_id": b, "action": "rate", "value": 9}), "value"),
        (json!({"book_id": b, "action": "rate"}), "value"),
        (json!({"book_id": b, "action": "like", "value": 3}), "value"),
        (json!({"book_id": b, "action": "shout"}), "action"),
        (json!({"book_id": "nope", "action": "view"}), "book_id"),
    ] {
        let response = as_member(api.http.post(api.url("/interactions")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert!(problem.to_string().contains(field), "{problem}");
    }
    let response = as_member(api.http.post(api.url("/interactions")))
        .json(&json!({"book_id": uuid::Uuid::now_v7(), "action": "view"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // Members record their own interactions only.
    let other = api.enrol_patron("Other").await;
    let response = as_member(api.http.post(api.url("/interactions")))
        .json(&json!({"book_id": b, "action": "like", "user_id": other}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // A retried view with the same Idempotency-Key counts once.
    for _ in 0..3 {
        let response = as_member(api.http.post(api.url("/interactions")))
            .header("Idempotency-Key", "view-1")
            .json(&json!({"book_id": b, "action": "view"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["views"], 1, "{body}");
    }

    // Many concurrent requests: every view counts, a like is one like.
    let mut tasks = Vec::new();
    for i in 0..24 {
        let api = api.clone();
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            let action = if i % 2 == 0 { "view" } else { "like" };
            api.http
                .post(api.url("/interactions"))
                .basic_auth("member", Some("a-long-password-1"))
                .json(&json!({"book_id": b, "action": action}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().is_success());
    }
    let response = as_member(api.http.post(api.url("/interactions")))
        .json(&json!({"book_id": b, "action": "rate", "value": 4}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (
            body["views"].as_u64(),
            body["liked"].as_bool(),
            body["rating"].as_u64()
        ),
        (Some(13), Some(true), Some(4)),
        "{body}"
    );
    let (_, page) = recommendations(&api, &format!("user_id={member}")).await;
    assert!(
        page["items"].as_array().unwrap().is_empty(),
        "the only book is rated: {page}"
    );
    // A book added now shows up without a consistency token within about a second, though the
    // model and catalogue refresh only every 30 s here.
    book(&api, "Dune Messiah", "science fiction").await;
    eventually(
        "the new book in cold start",
        Duration::from_secs(10),
        || async {
            let (_, page) = recommendations(&api, &format!("user_id={member}")).await;
            titles(&page)
                .contains(&"Dune Messiah".to_string())
                .then_some(())
        },
    )
    .await;
    drop(server);
}

async fn the_schedule_trains_by_itself(backend: Backend) {
    let store = Store::new(backend).await;
    let server = Server::start_with_env(
        &store,
        &[],
        &[
            ("QUIRE_RECS__REFRESH_SECS", "1"),
            ("QUIRE_RECS__TRAIN_INTERVAL_SECS", "2"),
        ],
    );
    let api = Api::new(&server.url);
    let books = [
        book(&api, "A", "poetry").await,
        book(&api, "B", "poetry").await,
    ];
    let reader = api.enrol_patron("Reader").await;
    let (_, body) = interact(&api, &reader, &books[0], "like", None).await;
    assert_eq!(body["liked"], true);
    let last = api
        .admin(api.http.post(api.url("/interactions")))
        .json(&json!({"book_id": books[1], "action": "view", "user_id": reader}))
        .send()
        .await
        .unwrap();
    let token = consistency_token(&last);
    let model = eventually("a scheduled model", Duration::from_secs(60), || async {
        let (_, page) = recommendations(&api, &format!("user_id={reader}")).await;
        page["model"]["covers_position"]
            .as_u64()
            .filter(|covers| *covers >= token)
            .map(|_| page["model"].clone())
    })
    .await;
    assert_eq!(model["algorithm"], "hybrid");
    // One reader with two interactions: nothing to hold out, so the defaults are served.
    assert!(
        model["chosen"].as_str().is_some_and(|c| !c.is_empty()),
        "{model}"
    );
    assert!(model["validation_ndcg"].is_null(), "{model}");
    drop(server);
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await
            }
        }
    )*};
}

both!(
    recommendations_from_events,
    interactions_are_validated_idempotent_and_concurrent,
    the_schedule_trains_by_itself,
);

//! The book club over HTTP on both backends: the seed paths on the default club (`/vote`,
//! `/vote/status`, `/discussions`, `/discussion`, `/discussions/{id}/reply`), one counted ballot
//! per member under concurrency, rounds closed by the scheduler at their deadline (on a
//! `ManualClock`), deterministic tie-breaks that a rebuild of the read model reproduces,
//! members-only clubs, the main refusals' problem codes and the OpenAPI document.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use quire_actors::clock::ManualClock;
use quire_projections::ProjectionName;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, assert_problem, json_of, on_backends, spawn_app, spawn_app_with_clock,
};

/// Enrols a patron by name (admins), returning the user id.
async fn enrol(app: &TestApp, name: &str) -> String {
    let response = app
        .admin()
        .post(app.url("/users"))
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

async fn the_seed_vote_and_discussion_flow(backend: Backend) {
    let app = spawn_app(backend).await;
    let dune = app.add_book("Dune").await;
    let ann = app.signup("ann").await;
    let bob = app.signup("bob").await;

    // Ann votes (and is joined to the default club on the way).
    let vote = app
        .as_user(&ann)
        .post(app.url("/vote"))
        .json(&json!({"book_id": dune, "user_id": ann.id}))
        .send()
        .await
        .unwrap();
    let body = json_of(vote, StatusCode::OK).await;
    assert_eq!(
        body,
        json!({"message": "Vote submitted successfully", "votes": 1})
    );
    let vote = app
        .as_user(&bob)
        .post(app.url("/vote"))
        .json(&json!({"book_id": dune, "user_id": bob.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(vote, StatusCode::OK).await["votes"], 2);

    let status = app.get_json("/vote/status").await;
    assert_eq!(
        status,
        json!({"status": [{"book_id": dune, "title": "Dune", "votes": 2}]})
    );

    // A member votes only for themself; the book must exist.
    let other = app
        .as_user(&ann)
        .post(app.url("/vote"))
        .json(&json!({"book_id": dune, "user_id": bob.id}))
        .send()
        .await
        .unwrap();
    assert_problem(other, StatusCode::FORBIDDEN, "forbidden").await;
    let unknown = app
        .as_user(&ann)
        .post(app.url("/vote"))
        .json(&json!({"book_id": uuid::Uuid::now_v7(), "user_id": ann.id}))
        .send()
        .await
        .unwrap();
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;

    // Discussions.
    let created = app
        .as_user(&ann)
        .post(app.url("/discussion"))
        .json(&json!({"title": "Arrakis", "author": "ann", "content": "The spice must flow."}))
        .send()
        .await
        .unwrap();
    let created = json_of(created, StatusCode::CREATED).await;
    assert_eq!(created["message"], "Discussion created");
    let thread_id = created["thread_id"].as_str().unwrap().to_string();
    let as_bob = app
        .as_user(&ann)
        .post(app.url("/discussion"))
        .json(&json!({"title": "Forged", "author": "bob", "content": "not me"}))
        .send()
        .await
        .unwrap();
    assert_problem(as_bob, StatusCode::FORBIDDEN, "forbidden").await;

    let reply = app
        .as_user(&bob)
        .post(app.url(&format!("/discussions/{thread_id}/reply")))
        .json(&json!({"author": "bob", "content": "Fear is the mind-killer."}))
        .send()
        .await
        .unwrap();
    let reply = json_of(reply, StatusCode::CREATED).await;
    assert_eq!(reply["message"], "Reply posted");
    let reply_id = reply["reply_id"].as_str().unwrap().to_string();

    let list = app.get_json("/discussions").await;
    let discussions = list["discussions"].as_array().unwrap();
    assert_eq!(discussions.len(), 1);
    let d = &discussions[0];
    assert_eq!(d["thread_id"], thread_id.as_str());
    assert_eq!(d["title"], "Arrakis");
    assert_eq!(d["author"], "ann");
    assert_eq!(d["author_id"], ann.id.as_str());
    assert_eq!(d["reply_count"], 1);
    assert!(d["created_at"].is_string());
    let replies = d["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0]["reply_id"], reply_id.as_str());
    assert_eq!(replies[0]["author"], "bob");
    assert_eq!(replies[0]["author_id"], bob.id.as_str());
    assert_eq!(replies[0]["content"], "Fear is the mind-killer.");
    assert!(replies[0]["created_at"].is_string());

    // The richer view of the same club, and the reply's deletion blanks it.
    let club = app.get_json("/clubs/default").await;
    assert_eq!(club["visibility"], "public");
    assert_eq!(club["write_ins"], true);
    assert_eq!(club["owner_id"], app.admin_id.to_string());
    assert_eq!(club["member_count"], 3);
    let deleted = app
        .as_user(&bob)
        .delete(app.url(&format!("/threads/{thread_id}/replies/{reply_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let replies = app.get_json(&format!("/threads/{thread_id}/replies")).await;
    assert_eq!(replies["replies"][0]["status"], "deleted");
    assert!(replies["replies"][0]["content"].is_null());
    let list = app.get_json("/discussions").await;
    assert_eq!(list["discussions"][0]["reply_count"], 0);
    assert_eq!(list["discussions"][0]["replies"], json!([]));
}

async fn a_hundred_members_each_have_one_counted_ballot(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.add_book("First").await;
    let second = app.add_book("Second").await;
    let mut members = Vec::new();
    for n in 0..100 {
        members.push(enrol(&app, &format!("Patron {n}")).await);
    }
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for member in &members {
        for book in [&first, &second] {
            let (app, member, book) = (app.clone(), member.clone(), book.clone());
            tasks.push(tokio::spawn(async move {
                let response = app
                    .admin()
                    .post(app.url("/vote"))
                    .json(&json!({"book_id": book, "user_id": member}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body = response.text().await.unwrap();
                assert_eq!(status, StatusCode::OK, "{body}");
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }

    // The last ballot each member's stream accepted is the one that counts.
    let events = quire_store::read_stream_to_end(
        &*app.store,
        &format!("club-{}", quire_api::DEFAULT_CLUB),
        0,
    )
    .await
    .unwrap();
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for event in events.iter().filter(|e| e.event_type == "BallotCast") {
        last.insert(
            event.payload["member"].as_str().unwrap().to_string(),
            event.payload["choices"][0].as_str().unwrap().to_string(),
        );
    }
    assert_eq!(last.len(), 100);
    let mut expected: HashMap<String, u64> = HashMap::new();
    for book in last.values() {
        *expected.entry(book.clone()).or_default() += 1;
    }
    let status = app.get_json("/vote/status").await;
    let counts: HashMap<String, u64> = status["status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["book_id"].as_str().unwrap().to_string(),
                s["votes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts.values().sum::<u64>(), 100, "{status}");
    for (book, n) in &expected {
        assert_eq!(counts.get(book), Some(n), "{status}");
    }
    let votes: Vec<u64> = status["status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["votes"].as_u64().unwrap())
        .collect();
    assert!(votes.windows(2).all(|w| w[0] >= w[1]), "most votes first");
}

/// Polls `path` until `done` holds (10 s at most).
async fn eventually(app: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let value = app.get_json(path).await;
        if done(&value) {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never got there: {}", app.get_json(path).await);
}

async fn a_round_closes_at_its_deadline(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_with_clock(backend, clock.clone(), |s| s.scheduler.tick_ms = 50).await;
    let book = app.add_book("Winner").await;
    let ann = enrol(&app, "Ann").await;
    let vote = app
        .admin()
        .post(app.url("/vote"))
        .json(&json!({"book_id": book, "user_id": ann}))
        .send()
        .await
        .unwrap();
    assert_eq!(vote.status(), StatusCode::OK);
    let current = app.get_json("/clubs/default/rounds/current").await;
    assert_eq!(current["status"], "open");
    assert_eq!(current["standings"][0]["votes"], 1);
    let round_id = current["round_id"].as_str().unwrap().to_string();

    // Past the first of next month: the scheduler closes the round and counts it.
    clock.advance_days(32);
    let rounds = eventually(&app, "/clubs/default/rounds", |v| {
        v["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["round_id"] == round_id.as_str() && r["status"] == "closed")
    })
    .await;
    let closed = rounds["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["round_id"] == round_id.as_str())
        .unwrap();
    assert_eq!(closed["winner"], book.as_str());
    assert!(closed["tie_break"].is_null());
    assert_eq!(closed["tally"]["counts"][0]["votes"], 1);
    let club = app.get_json("/clubs/default").await;
    assert_eq!(club["current_book"], book.as_str());
    // The next month's round opens by itself.
    eventually(&app, "/clubs/default/rounds/current", |v| {
        v["status"] == "open" && v["round_id"] != round_id.as_str()
    })
    .await;
}

async fn a_tie_is_broken_the_same_way_after_a_rebuild(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.add_book("Alpha").await;
    let b = app.add_book("Beta").await;
    let ann = enrol(&app, "Ann").await;
    let bob = enrol(&app, "Bob").await;
    for (member, book) in [(&ann, &b), (&bob, &a)] {
        let vote = app
            .admin()
            .post(app.url("/vote"))
            .json(&json!({"book_id": book, "user_id": member}))
            .send()
            .await
            .unwrap();
        assert_eq!(vote.status(), StatusCode::OK);
    }
    let closed = app
        .admin()
        .post(app.url("/clubs/default/rounds/current/close"))
        .send()
        .await
        .unwrap();
    let closed = json_of(closed, StatusCode::OK).await;
    assert_eq!(closed["status"], "closed");
    // Beta was nominated first (Ann's write-in): ties break by nomination order.
    assert_eq!(closed["winner"], b.as_str(), "{closed}");
    let tie_break = closed["tie_break"].as_str().unwrap().to_string();
    assert!(!tie_break.is_empty());

    quire_projections::rebuild(&app.store, &app.read, ProjectionName::Club, &|_| {})
        .await
        .unwrap();
    let rounds = app.get_json("/clubs/default/rounds").await;
    let round = rounds["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["round_id"] == closed["round_id"])
        .unwrap()
        .clone();
    assert_eq!(round["winner"], b.as_str());
    assert_eq!(round["tie_break"], tie_break.as_str());
    assert_eq!(round["tally"], closed["tally"]);
}

async fn members_only_clubs_refuse_outsiders(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signup("ann").await;
    let eve = app.signup("eve").await;
    let created = app
        .as_user(&ann)
        .post(app.url("/clubs"))
        .json(&json!({"name": "Secret readers", "visibility": "members_only"}))
        .send()
        .await
        .unwrap();
    let club = json_of(created, StatusCode::CREATED).await;
    let id = club["id"].as_str().unwrap().to_string();
    let thread = app
        .as_user(&ann)
        .post(app.url(&format!("/clubs/{id}/threads")))
        .json(&json!({"title": "Welcome", "content": "Members only."}))
        .send()
        .await
        .unwrap();
    let thread = json_of(thread, StatusCode::CREATED).await;
    let thread_id = thread["id"].as_str().unwrap();

    for path in [
        format!("/clubs/{id}/threads"),
        format!("/clubs/{id}/members"),
        format!("/clubs/{id}/rounds"),
        format!("/threads/{thread_id}"),
    ] {
        let refused = app.as_user(&eve).get(app.url(&path)).send().await.unwrap();
        assert_problem(refused, StatusCode::FORBIDDEN, "not_a_member").await;
    }
    let post = app
        .as_user(&eve)
        .post(app.url(&format!("/clubs/{id}/threads")))
        .json(&json!({"title": "Hi", "content": "let me in"}))
        .send()
        .await
        .unwrap();
    assert_problem(post, StatusCode::FORBIDDEN, "not_a_member").await;
    let reply = app
        .as_user(&eve)
        .post(app.url(&format!("/threads/{thread_id}/replies")))
        .json(&json!({"content": "let me in"}))
        .send()
        .await
        .unwrap();
    assert_problem(reply, StatusCode::FORBIDDEN, "not_a_member").await;
    let join = app
        .as_user(&eve)
        .post(app.url(&format!("/clubs/{id}/members")))
        .send()
        .await
        .unwrap();
    assert_problem(join, StatusCode::FORBIDDEN, "forbidden").await;

    // The owner adds her; then she reads.
    let added = app
        .as_user(&ann)
        .post(app.url(&format!("/clubs/{id}/members")))
        .json(&json!({"user_id": eve.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let threads = app
        .as_user(&eve)
        .get(app.url(&format!("/clubs/{id}/threads")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(threads, StatusCode::OK).await["threads"][0]["author"],
        "ann"
    );
}

async fn refusals_carry_stable_problem_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = app.add_book("Book").await;
    let ann = app.signup("ann").await;
    // Only moderators open and close rounds.
    let close = app
        .as_user(&ann)
        .post(app.url("/clubs/default/rounds/current/close"))
        .send()
        .await
        .unwrap();
    assert_problem(close, StatusCode::FORBIDDEN, "forbidden").await;
    // One round at a time.
    let second = app
        .admin()
        .post(app.url("/clubs/default/rounds"))
        .json(&json!({"nominations_close": "2999-01-01T00:00:00Z", "voting_closes": "2999-02-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_problem(second, StatusCode::CONFLICT, "round_open").await;
    // A ranked ballot's shape.
    let join = app
        .as_user(&ann)
        .post(app.url("/clubs/default/members"))
        .send()
        .await
        .unwrap();
    assert_eq!(join.status(), StatusCode::CREATED);
    let ballot = app
        .as_user(&ann)
        .put(app.url("/clubs/default/rounds/current/ballot"))
        .json(&json!({"choices": [book, book]}))
        .send()
        .await
        .unwrap();
    assert_problem(ballot, StatusCode::UNPROCESSABLE_ENTITY, "invalid_ballot").await;
    // Nominating twice.
    let nominate = || {
        app.as_user(&ann)
            .post(app.url("/clubs/default/rounds/current/nominations"))
            .json(&json!({"book_id": book}))
            .send()
    };
    assert_eq!(nominate().await.unwrap().status(), StatusCode::CREATED);
    assert_problem(
        nominate().await.unwrap(),
        StatusCode::CONFLICT,
        "already_nominated",
    )
    .await;
    // Text limits come from the domain's value types.
    let empty = app
        .as_user(&ann)
        .post(app.url("/discussion"))
        .json(&json!({"title": "  ", "author": "ann", "content": "x"}))
        .send()
        .await
        .unwrap();
    let problem =
        assert_problem(empty, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "title");
    // Unknown club and thread; the owner cannot leave.
    let missing = app.client.get(app.url("/clubs/nope")).send().await.unwrap();
    assert_problem(missing, StatusCode::NOT_FOUND, "club_not_found").await;
    let thread = app
        .as_user(&ann)
        .post(app.url(&format!("/discussions/{}/reply", uuid::Uuid::now_v7())))
        .json(&json!({"author": "ann", "content": "hello?"}))
        .send()
        .await
        .unwrap();
    assert_problem(thread, StatusCode::NOT_FOUND, "thread_not_found").await;
    let owner = app
        .admin()
        .delete(app.url(&format!("/clubs/default/members/{}", app.admin_id)))
        .send()
        .await
        .unwrap();
    assert_problem(owner, StatusCode::CONFLICT, "owner_cannot_leave").await;
    // Anonymous writes need credentials.
    let anonymous = app
        .client
        .post(app.url("/vote"))
        .json(&json!({"book_id": book, "user_id": ann.id}))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn the_openapi_document_lists_the_club_paths(backend: Backend) {
    let app = spawn_app(backend).await;
    let spec = app.get_json("/openapi.json").await;
    for (path, method) in [
        ("/vote", "post"),
        ("/vote/status", "get"),
        ("/discussions", "get"),
        ("/discussion", "post"),
        ("/discussions/{thread_id}/reply", "post"),
        ("/clubs", "get"),
        ("/clubs", "post"),
        ("/clubs/{id}", "get"),
        ("/clubs/{id}/members", "get"),
        ("/clubs/{id}/members", "post"),
        ("/clubs/{id}/members/{user_id}", "delete"),
        ("/clubs/{id}/rounds", "get"),
        ("/clubs/{id}/rounds", "post"),
        ("/clubs/{id}/rounds/current", "get"),
        ("/clubs/{id}/rounds/current/nominations", "post"),
        ("/clubs/{id}/rounds/current/ballot", "put"),
        ("/clubs/{id}/rounds/current/close", "post"),
        ("/clubs/{id}/threads", "get"),
        ("/clubs/{id}/threads", "post"),
        ("/threads/{id}", "get"),
        ("/threads/{id}/replies", "get"),
        ("/threads/{id}/replies", "post"),
        ("/threads/{id}/replies/{reply_id}", "put"),
        ("/threads/{id}/replies/{reply_id}", "delete"),
    ] {
        let operation = &spec["paths"][path][method];
        assert!(operation.is_object(), "missing {method} {path}");
        assert_eq!(operation["tags"], json!(["club"]), "{method} {path}");
    }
}

/// The owner appoints a moderator, who may then remove another member's reply and the thread;
/// the author edits their thread; an ordinary member may do neither.
async fn moderators_remove_and_authors_edit(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signup("ann").await;
    let bob = app.signup("bob").await;
    let cyd = app.signup("cyd").await;
    let thread = app
        .as_user(&ann)
        .post(app.url("/discussion"))
        .json(&json!({"title": "Chapter one", "author": "ann", "content": "Thoughts?"}))
        .send()
        .await
        .unwrap();
    let thread_id = json_of(thread, StatusCode::CREATED).await["thread_id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = app
        .as_user(&bob)
        .post(app.url(&format!("/discussions/{thread_id}/reply")))
        .json(&json!({"author": "bob", "content": "Spoilers ahead"}))
        .send()
        .await
        .unwrap();
    let reply_id = json_of(reply, StatusCode::CREATED).await["reply_id"]
        .as_str()
        .unwrap()
        .to_string();

    // The author edits the thread; someone else may not.
    let edit = app
        .as_user(&ann)
        .put(app.url(&format!("/threads/{thread_id}")))
        .json(&json!({"title": "Chapter one (spoilers)"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(edit, StatusCode::OK).await["title"],
        "Chapter one (spoilers)"
    );
    let forged = app
        .as_user(&bob)
        .put(app.url(&format!("/threads/{thread_id}")))
        .json(&json!({"title": "Mine now"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // Cyd is an ordinary member: no removing others' replies.
    let join = app
        .as_user(&cyd)
        .post(app.url("/clubs/default/members"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(join.status().is_success(), "{}", join.status());
    let delete = app
        .as_user(&cyd)
        .delete(app.url(&format!("/threads/{thread_id}/replies/{reply_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    let appoint = app
        .as_user(&cyd)
        .post(app.url("/clubs/default/moderators"))
        .json(&json!({"user_id": cyd.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(appoint.status(), StatusCode::FORBIDDEN);

    // The owner (the admin) appoints Cyd, who removes Bob's reply and then the thread.
    let appoint = app
        .admin()
        .post(app.url("/clubs/default/moderators"))
        .json(&json!({"user_id": cyd.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(appoint.status(), StatusCode::NO_CONTENT);
    let remove = app
        .as_user(&cyd)
        .delete(app.url(&format!("/threads/{thread_id}/replies/{reply_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(remove.status(), StatusCode::NO_CONTENT);
    let removed = app
        .as_user(&cyd)
        .delete(app.url(&format!("/threads/{thread_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let gone = app
        .client
        .get(app.url(&format!("/threads/{thread_id}")))
        .send()
        .await
        .unwrap();
    assert_problem(gone, StatusCode::GONE, "thread_removed").await;

    // Demoted again, Cyd may no longer moderate.
    let demote = app
        .admin()
        .delete(app.url(&format!("/clubs/default/moderators/{}", cyd.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(demote.status(), StatusCode::NO_CONTENT);
}

/// RFC 3339 of the clock's now plus `days` (and a minute, so "now" is safely before it).
fn days_from(clock: &ManualClock, days: u32) -> String {
    use quire_actors::clock::Clock;
    let micros = clock.now().plus_days(days).plus_seconds(60).as_micros();
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A members' club votes by ranked choice with hidden results: members see no standings until
/// the close, staff do; the instant runoff transfers the eliminated book's ballots.
async fn ranked_choice_with_hidden_results(backend: Backend) {
    let clock = ManualClock::new();
    let app = spawn_app_with_clock(backend, clock.clone(), |_| {}).await;
    let (a, b, c) = (
        app.add_book("Alpha").await,
        app.add_book("Beta").await,
        app.add_book("Gamma").await,
    );
    let owner = app.signup("ann").await;
    let others = [
        app.signup("bob").await,
        app.signup("cyd").await,
        app.signup("dee").await,
        app.signup("eve").await,
    ];
    let created = app
        .as_user(&owner)
        .post(app.url("/clubs"))
        .json(&json!({"name": "Runoff readers"}))
        .send()
        .await
        .unwrap();
    let club = json_of(created, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for member in &others {
        let join = app
            .as_user(member)
            .post(app.url(&format!("/clubs/{club}/members")))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(join.status().is_success(), "{}", join.status());
    }
    let opened = app
        .as_user(&owner)
        .post(app.url(&format!("/clubs/{club}/rounds")))
        .json(&json!({
            "method": "ranked_choice",
            "nominations_close": days_from(&clock, 1),
            "voting_closes": days_from(&clock, 2),
            "hide_results": true,
        }))
        .send()
        .await
        .unwrap();
    assert!(opened.status().is_success(), "{}", opened.status());
    for book in [&a, &b, &c] {
        let nominated = app
            .as_user(&owner)
            .post(app.url(&format!("/clubs/{club}/rounds/current/nominations")))
            .json(&json!({"book_id": book}))
            .send()
            .await
            .unwrap();
        assert!(nominated.status().is_success(), "{}", nominated.status());
    }
    // Voting opens when nominations close.
    clock.advance_days(1);
    clock.advance_seconds(120);
    let ballots = [
        (&owner, vec![&a, &b]),
        (&others[0], vec![&b, &a]),
        (&others[1], vec![&c, &b]),
        (&others[2], vec![&a]),
        (&others[3], vec![&b, &c]),
    ];
    for (member, choices) in ballots {
        let cast = app
            .as_user(member)
            .put(app.url(&format!("/clubs/{club}/rounds/current/ballot")))
            .json(&json!({ "choices": choices }))
            .send()
            .await
            .unwrap();
        assert!(cast.status().is_success(), "{}", cast.status());
    }
    let seen_by_member = app
        .as_user(&others[0])
        .get(app.url(&format!("/clubs/{club}/rounds/current")))
        .send()
        .await
        .unwrap();
    let seen_by_member = json_of(seen_by_member, StatusCode::OK).await;
    assert_eq!(seen_by_member["results_hidden"], true, "{seen_by_member}");
    assert!(seen_by_member.get("standings").is_none_or(Value::is_null));
    assert_eq!(seen_by_member["your_ballot"], json!([b, a]));
    let seen_by_staff = app
        .admin()
        .get(app.url(&format!("/clubs/{club}/rounds/current")))
        .send()
        .await
        .unwrap();
    let seen_by_staff = json_of(seen_by_staff, StatusCode::OK).await;
    assert!(seen_by_staff["standings"].is_array(), "{seen_by_staff}");

    // First choices: Alpha 2, Beta 2, Gamma 1 of 5: no majority. Gamma is eliminated and its
    // ballot moves to Beta: Beta 3 of 5 wins.
    let closed = app
        .as_user(&owner)
        .post(app.url(&format!("/clubs/{club}/rounds/current/close")))
        .send()
        .await
        .unwrap();
    let closed = json_of(closed, StatusCode::OK).await;
    assert_eq!(closed["winner"], b.as_str(), "{closed}");
    let rounds = closed["tally"]["rounds"].as_array().expect("runoff rounds");
    assert_eq!(rounds.len(), 2, "{closed}");
}

on_backends!(
    the_seed_vote_and_discussion_flow,
    a_hundred_members_each_have_one_counted_ballot,
    a_round_closes_at_its_deadline,
    a_tie_is_broken_the_same_way_after_a_rebuild,
    members_only_clubs_refuse_outsiders,
    refusals_carry_stable_problem_codes,
    the_openapi_document_lists_the_club_paths,
    moderators_remove_and_authors_edit,
    ranked_choice_with_hidden_results,
);

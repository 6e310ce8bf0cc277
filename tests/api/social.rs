//! The social side over HTTP on both backends: following and unfollowing (idempotent, refusals
//! with their problem codes, the `follow`/`unfollow` paths of other designs), followers and
//! following pages, the feed (content, order, paging, privacy switched on and off, read-your-writes
//! with a Consistency-Token), social recommendations on a small hand-built graph with a known
//! order, the blended list's annotation, and 50 concurrent follows of one pair.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, Member, TestApp, assert_problem, header, interact, json_of, on_backends, review,
    set_following, spawn_app,
};

/// `who` follows `whom` with `PUT /users/{id}/following/{followee_id}`.
async fn follow(app: &TestApp, who: &Member, whom: &Member) -> reqwest::Response {
    set_following(app, who, whom, true).await
}

/// A GET as `who`, presenting `token` if any; the body of a 200.
async fn get_as(app: &TestApp, who: &Member, path: &str, token: Option<&str>) -> Value {
    let mut request = app.as_user(who).get(app.url(path));
    if let Some(token) = token {
        request = request.header("consistency-token", token);
    }
    json_of(request.send().await.unwrap(), StatusCode::OK).await
}

fn ids(page: &Value, field: &str) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[field].as_str().unwrap().to_string())
        .collect()
}

async fn following_and_unfollowing_members(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signup("ann").await;
    let ben = app.signup("ben").await;
    let cat = app.signup("cat").await;
    let dan = app.signup("dan").await;

    // A new follow is 201 with the follow; following again is 200 and appends nothing.
    let first = follow(&app, &ann, &ben).await;
    assert_eq!(
        header(&first, "location"),
        format!("/users/{}/following/{}", ann.id, ben.id)
    );
    let body = json_of(first, StatusCode::CREATED).await;
    assert_eq!(body["follower_id"], ann.id.as_str());
    assert_eq!(body["followee_id"], ben.id.as_str());
    assert_eq!(body["name"], "ben");
    assert_eq!(body["username"], "ben");
    assert!(body["since"].as_str().unwrap().ends_with('Z'), "{body}");
    let head = app.head().await;
    let again = json_of(follow(&app, &ann, &ben).await, StatusCode::OK).await;
    assert_eq!(again["since"], body["since"], "the first follow stands");
    assert_eq!(app.head().await, head, "a second follow appends nothing");

    // The seed-style paths of other designs.
    let posted = app
        .as_user(&ann)
        .post(app.url(&format!("/users/{}/follow", ann.id)))
        .json(&json!({"user_id": cat.id}))
        .send()
        .await
        .unwrap();
    json_of(posted, StatusCode::CREATED).await;
    // An admin follows for a member.
    let by_admin = app
        .admin()
        .put(app.url(&format!("/users/{}/following/{}", ann.id, dan.id)))
        .send()
        .await
        .unwrap();
    json_of(by_admin, StatusCode::CREATED).await;
    json_of(follow(&app, &cat, &ben).await, StatusCode::CREATED).await;

    // Refusals, each writing nothing.
    let head = app.head().await;
    let own = follow(&app, &ann, &ann).await;
    assert_problem(own, StatusCode::UNPROCESSABLE_ENTITY, "cannot_follow_self").await;
    let nobody = app
        .as_user(&ann)
        .put(app.url(&format!(
            "/users/{}/following/{}",
            ann.id,
            uuid::Uuid::new_v4()
        )))
        .send()
        .await
        .unwrap();
    assert_problem(nobody, StatusCode::NOT_FOUND, "user_not_found").await;
    let not_an_id = app
        .as_user(&ann)
        .put(app.url(&format!("/users/{}/following/not-a-user", ann.id)))
        .send()
        .await
        .unwrap();
    assert_problem(not_an_id, StatusCode::NOT_FOUND, "user_not_found").await;
    let for_someone_else = follow(&app, &ann, &cat).await;
    assert_eq!(for_someone_else.status(), StatusCode::OK, "ann follows cat");
    let hijack = app
        .as_user(&ben)
        .put(app.url(&format!("/users/{}/following/{}", ann.id, ben.id)))
        .send()
        .await
        .unwrap();
    assert_problem(hijack, StatusCode::FORBIDDEN, "forbidden").await;
    let hijack = app
        .as_user(&ben)
        .delete(app.url(&format!("/users/{}/following/{}", ann.id, ben.id)))
        .send()
        .await
        .unwrap();
    assert_problem(hijack, StatusCode::FORBIDDEN, "forbidden").await;
    let anonymous = app
        .client
        .put(app.url(&format!("/users/{}/following/{}", ann.id, ben.id)))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let malformed = app
        .as_user(&ann)
        .post(app.url(&format!("/users/{}/follow", ann.id)))
        .json(&json!({"user_id": "ben"}))
        .send()
        .await
        .unwrap();
    assert_problem(malformed, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    assert_eq!(app.head().await, head, "refusals append nothing");

    // Following: newest first, paged with Link headers and no gaps.
    let first = app
        .as_user(&cat)
        .get(app.url(&format!("/users/{}/following?limit=2", ann.id)))
        .send()
        .await
        .unwrap();
    let link = header(&first, "link");
    assert!(
        link.contains("rel=\"next\"") && link.contains("limit=2"),
        "{link}"
    );
    let first = json_of(first, StatusCode::OK).await;
    assert_eq!(ids(&first, "user_id"), [dan.id.as_str(), cat.id.as_str()]);
    assert_eq!(first["items"][0]["name"], "dan");
    assert!(first["items"][0]["since"].is_string());
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get_as(
        &app,
        &cat,
        &format!("/users/{}/following?limit=2&cursor={cursor}", ann.id),
        None,
    )
    .await;
    assert_eq!(ids(&second, "user_id"), [ben.id.as_str()]);
    assert!(second["next_cursor"].is_null());
    let followers = get_as(&app, &ann, &format!("/users/{}/followers", ben.id), None).await;
    assert_eq!(
        ids(&followers, "user_id"),
        [cat.id.as_str(), ann.id.as_str()]
    );
    let bad_cursor = app
        .as_user(&ann)
        .get(app.url(&format!("/users/{}/followers?cursor=zzz", ben.id)))
        .send()
        .await
        .unwrap();
    assert_problem(bad_cursor, StatusCode::BAD_REQUEST, "invalid_cursor").await;
    let unknown = app
        .as_user(&ann)
        .get(app.url(&format!("/users/{}/followers", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_problem(unknown, StatusCode::NOT_FOUND, "user_not_found").await;

    // Unfollow: 204, and again 204 without an event; the other design's path too.
    let gone = app
        .as_user(&ann)
        .delete(app.url(&format!("/users/{}/following/{}", ann.id, ben.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let token = header(&gone, "consistency-token");
    let head = app.head().await;
    let again = app
        .as_user(&ann)
        .delete(app.url(&format!("/users/{}/following/{}", ann.id, ben.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.head().await, head, "unfollowing again appends nothing");
    let posted = app
        .as_user(&ann)
        .post(app.url(&format!("/users/{}/unfollow", ann.id)))
        .json(&json!({"user_id": cat.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::NO_CONTENT);
    let following = get_as(
        &app,
        &ann,
        &format!("/users/{}/following", ann.id),
        Some(&token),
    )
    .await;
    assert_eq!(ids(&following, "user_id"), [dan.id.as_str()]);
    let followers = get_as(&app, &ann, &format!("/users/{}/followers", ben.id), None).await;
    assert_eq!(ids(&followers, "user_id"), [cat.id.as_str()]);

    // Following again after unfollowing is a new follow; an Idempotency-Key replays its answer.
    let keyed = || {
        app.as_user(&ann)
            .put(app.url(&format!("/users/{}/following/{}", ann.id, ben.id)))
            .header("idempotency-key", "follow-ben-again")
            .send()
    };
    let first = keyed().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let head = app.head().await;
    let replay = keyed().await.unwrap();
    assert_eq!(
        replay.status(),
        StatusCode::CREATED,
        "the first answer again"
    );
    assert_eq!(app.head().await, head);

    // The OpenAPI document lists the social paths.
    let spec = app.get_json("/openapi.json").await;
    for path in [
        "/users/{id}/following/{followee_id}",
        "/users/{id}/follow",
        "/users/{id}/unfollow",
        "/users/{id}/followers",
        "/users/{id}/following",
        "/users/{id}/privacy",
        "/feed",
    ] {
        assert!(spec["paths"].get(path).is_some(), "missing {path}");
    }
    assert!(spec["paths"]["/users/{id}/following/{followee_id}"]["delete"].is_object());
}

async fn the_feed_shows_followees_activity_newest_first_and_honours_privacy(backend: Backend) {
    let app = spawn_app(backend).await;
    let dune = app.add_book("Dune").await;
    let emma = app.add_book("Emma").await;
    let ubik = app.add_book("Ubik").await;
    let ann = app.signup("ann").await;
    let ben = app.signup("ben").await;
    let cat = app.signup("cat").await;
    let dan = app.signup("dan").await;
    for whom in [&ben, &cat] {
        json_of(follow(&app, &ann, whom).await, StatusCode::CREATED).await;
    }

    let long = "A desert planet, spice and prophecy. ".repeat(10);
    let (ben_review, _) = review(&app, &ben, &dune, 5, &long).await;
    interact(&app, &cat, &emma, "like", None).await;
    review(&app, &dan, &dune, 2, "Not for me.").await; // Dan is not followed.
    let token = interact(&app, &ben, &ubik, "rate", Some(3)).await;

    let feed = get_as(&app, &ann, "/feed", Some(&token)).await;
    assert_eq!(feed["user_id"], ann.id.as_str());
    let items = feed["items"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["type"].as_str().unwrap(),
                i["user_name"].as_str().unwrap(),
                i["book_title"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("rating", "ben", "Ubik"),
            ("like", "cat", "Emma"),
            ("review", "ben", "Dune")
        ]
    );
    assert_eq!(items[0]["rating"], 3);
    assert!(items[1].get("rating").is_none(), "a like has no rating");
    let posted = &items[2];
    assert_eq!(posted["review_id"], ben_review.as_str());
    assert_eq!(posted["book_id"], dune.as_str());
    assert_eq!(posted["user_id"], ben.id.as_str());
    assert_eq!(posted["rating"], 5);
    let excerpt = posted["review_text"].as_str().unwrap();
    assert!(
        excerpt.starts_with("A desert planet") && excerpt.ends_with('…'),
        "{excerpt}"
    );
    assert!(excerpt.chars().count() <= 201);
    assert!(posted["at"].as_str().unwrap().ends_with('Z'));
    let positions: Vec<i64> = items
        .iter()
        .map(|i| i["position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|p| p[0] > p[1]), "{positions:?}");

    // Pages of two, linked.
    let first = app
        .as_user(&ann)
        .get(app.url("/feed?limit=2"))
        .send()
        .await
        .unwrap();
    assert!(header(&first, "link").contains("cursor="));
    let first = json_of(first, StatusCode::OK).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get_as(&app, &ann, &format!("/feed?limit=2&cursor={cursor}"), None).await;
    assert_eq!(ids(&second, "type"), ["review"]);
    assert!(second["next_cursor"].is_null());

    // Only one's own feed, unless an admin.
    let other = app
        .as_user(&ben)
        .get(app.url(&format!("/feed?user_id={}", ann.id)))
        .send()
        .await
        .unwrap();
    assert_problem(other, StatusCode::FORBIDDEN, "forbidden").await;
    let by_admin = app
        .admin()
        .get(app.url(&format!("/feed?user_id={}", ann.id)))
        .send()
        .await
        .unwrap();
    let by_admin = json_of(by_admin, StatusCode::OK).await;
    assert_eq!(by_admin["items"].as_array().unwrap().len(), 3);
    assert!(
        get_as(&app, &dan, "/feed", None).await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Ben goes private: his activity leaves Ann's feed; back public, it returns.
    let hijack = app
        .as_user(&cat)
        .put(app.url(&format!("/users/{}/privacy", ben.id)))
        .json(&json!({"activity_private": true}))
        .send()
        .await
        .unwrap();
    assert_problem(hijack, StatusCode::FORBIDDEN, "forbidden").await;
    let private = app
        .as_user(&ben)
        .put(app.url(&format!("/users/{}/privacy", ben.id)))
        .json(&json!({"activity_private": true}))
        .send()
        .await
        .unwrap();
    let token = header(&private, "consistency-token");
    let body = json_of(private, StatusCode::OK).await;
    assert_eq!(body, json!({"user_id": ben.id, "activity_private": true}));
    let shown = get_as(&app, &ben, &format!("/users/{}/privacy", ben.id), None).await;
    assert_eq!(shown["activity_private"], true);
    let feed = get_as(&app, &ann, "/feed", Some(&token)).await;
    assert_eq!(ids(&feed, "user_id"), [cat.id.as_str()]);
    let public = app
        .as_user(&ben)
        .put(app.url(&format!("/users/{}/privacy", ben.id)))
        .json(&json!({"activity_private": false}))
        .send()
        .await
        .unwrap();
    let token = header(&public, "consistency-token");
    json_of(public, StatusCode::OK).await;
    let feed = get_as(&app, &ann, "/feed", Some(&token)).await;
    assert_eq!(feed["items"].as_array().unwrap().len(), 3);

    // Read-your-writes: a review posted a moment ago is at the top of a feed read with its token.
    let (cat_review, token) = review(&app, &cat, &ubik, 4, "Reality bends.").await;
    let feed = get_as(&app, &ann, "/feed?limit=1", Some(&token)).await;
    assert_eq!(feed["items"][0]["review_id"], cat_review.as_str());
    assert_eq!(feed["items"][0]["review_text"], "Reality bends.");

    // A deleted review leaves the feed, words and all.
    let deleted = app
        .as_user(&cat)
        .delete(app.url(&format!("/books/{ubik}/reviews/{cat_review}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let token = header(&deleted, "consistency-token");
    let feed = get_as(&app, &ann, "/feed", Some(&token)).await;
    assert!(!feed.to_string().contains("Reality bends"), "{feed}");
    assert_eq!(feed["items"].as_array().unwrap().len(), 3);
}

/// A follows B, C and D; B and C like X, D rates Y 5, B rates Z 3, B likes W, which A rated:
/// the social list is X (2 people) then Y (1); Z (3 stars) and W (A's own) are not in it.
async fn social_recommendations_rank_a_small_graph(backend: Backend) {
    let app = spawn_app(backend).await;
    let x = app.add_book("Xenogenesis").await;
    let y = app.add_book("Yellowface").await;
    let z = app.add_book("Zami").await;
    let w = app.add_book("Wool").await;
    let a = app.signup("ann").await;
    let b = app.signup("ben").await;
    let c = app.signup("cat").await;
    let d = app.signup("dan").await;
    for whom in [&b, &c, &d] {
        json_of(follow(&app, &a, whom).await, StatusCode::CREATED).await;
    }
    interact(&app, &b, &x, "like", None).await;
    interact(&app, &c, &x, "like", None).await;
    interact(&app, &d, &y, "rate", Some(5)).await;
    interact(&app, &b, &z, "rate", Some(3)).await;
    interact(&app, &b, &w, "like", None).await;
    let token = interact(&app, &a, &w, "rate", Some(4)).await;

    let social = get_as(&app, &a, "/recommendations?strategy=social", Some(&token)).await;
    assert_eq!(social["strategy"], "social");
    assert_eq!(social["user_id"], a.id.as_str());
    assert!(social["model"].is_null());
    assert_eq!(ids(&social, "book_id"), [x.as_str(), y.as_str()]);
    let top = &social["items"][0];
    assert_eq!(top["title"], "Xenogenesis");
    assert_eq!(top["reason"], "liked by 2 people you follow");
    assert_eq!(top["reason_code"], "liked_by_following");
    assert_eq!(top["followees_liked"], 2);
    assert_eq!(top["liked_by"], json!(["ben", "cat"]));
    assert_eq!(social["items"][1]["reason"], "liked by 1 person you follow");
    assert!(social["next_cursor"].is_null());

    // Keyset pages of one.
    let first = app
        .as_user(&a)
        .get(app.url("/recommendations?strategy=social&limit=1"))
        .send()
        .await
        .unwrap();
    let link = header(&first, "link");
    assert!(link.contains("strategy=social"), "{link}");
    let first = json_of(first, StatusCode::OK).await;
    assert_eq!(ids(&first, "book_id"), [x.as_str()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get_as(
        &app,
        &a,
        &format!("/recommendations?strategy=social&limit=1&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(ids(&second, "book_id"), [y.as_str()]);
    assert!(second["next_cursor"].is_null());

    let unknown = app
        .as_user(&a)
        .get(app.url("/recommendations?strategy=psychic"))
        .send()
        .await
        .unwrap();
    assert_problem(unknown, StatusCode::BAD_REQUEST, "invalid_query").await;

    // The blended list keeps its ranking and says which books people A follows liked.
    let blended = get_as(&app, &a, "/recommendations?limit=100", Some(&token)).await;
    assert_ne!(blended["strategy"], "social");
    let order = ids(&blended, "book_id");
    assert!(!order.contains(&w), "A rated Wool");
    assert!(
        order.contains(&x) && order.contains(&y) && order.contains(&z),
        "{blended}"
    );
    for item in blended["items"].as_array().unwrap() {
        let id = item["book_id"].as_str().unwrap();
        let expected = if id == x {
            Some(2)
        } else if id == y {
            Some(1)
        } else {
            None
        };
        assert_eq!(item["followees_liked"].as_u64(), expected, "{item}");
        match expected {
            Some(n) => assert_eq!(
                item["social_reason"],
                format!(
                    "liked by {n} {} you follow",
                    if n == 1 { "person" } else { "people" }
                )
            ),
            None => assert!(item.get("social_reason").is_none(), "{item}"),
        }
        assert_ne!(item["reason_code"], "liked_by_following");
    }
    let explicit = get_as(
        &app,
        &a,
        "/recommendations?limit=100&strategy=blended",
        None,
    )
    .await;
    assert_eq!(ids(&explicit, "book_id"), order);
    // Without the follows, the same ranking and no annotations.
    let mut token = String::new();
    for whom in [&b, &c, &d] {
        let gone = app
            .as_user(&a)
            .delete(app.url(&format!("/users/{}/following/{}", a.id, whom.id)))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), StatusCode::NO_CONTENT);
        token = header(&gone, "consistency-token");
    }
    let alone = get_as(&app, &a, "/recommendations?limit=100", Some(&token)).await;
    assert_eq!(ids(&alone, "book_id"), order);
    assert!(!alone.to_string().contains("followees_liked"), "{alone}");
    let social = get_as(&app, &a, "/recommendations?strategy=social", None).await;
    assert!(social["items"].as_array().unwrap().is_empty());
}

/// 50 concurrent follows of the same pair: one follow, one event, one 201.
async fn concurrent_follows_of_one_pair_make_one_follow(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signup("ann").await;
    let ben = app.signup("ben").await;
    let url = app.url(&format!("/users/{}/following/{}", ann.id, ben.id));
    // Bearer tokens: 50 password checks at once would queue behind the hashing bound.
    let token = app.token(&ann.username, &ann.password).await;
    let requests = (0..50).map(|_| app.bearer(&token).put(url.clone()).send());
    let statuses: Vec<StatusCode> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::OK),
        "{statuses:?}"
    );
    let stream = format!("user-{}", ann.id);
    let events = app.store.read_stream(&stream, 0, 1000).await.unwrap();
    let follows = events
        .iter()
        .filter(|e| e.event_type == "UserFollowed")
        .count();
    assert_eq!(follows, 1);
    let following = get_as(&app, &ann, &format!("/users/{}/following", ann.id), None).await;
    assert_eq!(ids(&following, "user_id"), [ben.id.as_str()]);
    let followers = get_as(&app, &ben, &format!("/users/{}/followers", ben.id), None).await;
    assert_eq!(ids(&followers, "user_id"), [ann.id.as_str()]);
}

on_backends!(
    following_and_unfollowing_members,
    the_feed_shows_followees_activity_newest_first_and_honours_privacy,
    social_recommendations_rank_a_small_graph,
    concurrent_follows_of_one_pair_make_one_follow,
);

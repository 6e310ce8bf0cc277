//! Over real HTTP on both backends, nodes started by `Application::build`: reviews on behalf of
//! users who do not exist or were deactivated, the words of deleted reviews kept out of every
//! public read (history, `as_of`, the review, the review summary), the bound on the events one
//! `as_of` read folds, and the 304/410 answers the README promises.

use quire_domain::DomainEvent;
use quire_domain::book::{BookEvent, SummaryProvenance};
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_domain::values::{Rating, ReviewText, SummaryText};
use quire_store::{AppendOutcome, AppendRequest, EventMetadata, ExpectedVersion, NewEvent};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, Member, TestApp, assert_problem, created_id, header, on_backends, spawn_app,
};

impl TestApp {
    /// Posts the member's review and returns its id.
    async fn review(&self, member: &Member, book: &str, rating: u8, text: &str) -> String {
        let response = self
            .as_user(member)
            .post(self.url(&format!("/books/{book}/reviews")))
            .json(&json!({"rating": rating, "review_text": text}))
            .send()
            .await
            .unwrap();
        created_id(response).await
    }

    /// Appends book events straight to the store, as a command would, and returns the position
    /// reached: the tests use it to write what no endpoint writes (a review summary) or to grow a
    /// book's history fast.
    async fn append_to_book(&self, book: &str, events: Vec<BookEvent>) -> u64 {
        let outcome = self
            .store
            .append(AppendRequest {
                stream_id: book.parse::<BookId>().unwrap().stream_id(),
                expected: ExpectedVersion::Any,
                events: events
                    .iter()
                    .map(|e| NewEvent {
                        event_id: uuid::Uuid::new_v4(),
                        event_type: e.event_type().into(),
                        schema_version: e.schema_version(),
                        payload: e.to_payload(),
                        metadata: EventMetadata::default(),
                    })
                    .collect(),
                command: None,
            })
            .await
            .unwrap();
        match outcome {
            AppendOutcome::Appended { last_position, .. } => last_position,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Waits until the clock has certainly moved past the last write's timestamp, so a time taken
/// now falls strictly between two writes.
async fn tick() {
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
}

async fn an_admin_cannot_review_for_unknown_or_deactivated_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = app.add_book("Parable of the Sower").await;
    let path = format!("/books/{book}/reviews");
    let head = app.head().await;

    let nobody = UserId::new();
    let unknown = app
        .admin()
        .post(app.url(&path))
        .json(&json!({"rating": 1, "review_text": "ghost", "user_id": nobody}))
        .send()
        .await
        .unwrap();
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;

    let lauren = app.signup("lauren").await;
    let deactivated = app
        .admin()
        .delete(app.url(&format!("/users/{}", lauren.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(deactivated.status(), StatusCode::NO_CONTENT);
    let head_after_deactivation = app.head().await;
    assert!(head_after_deactivation > head);
    let gone = app
        .admin()
        .post(app.url(&path))
        .header(
            "consistency-token",
            header(&deactivated, "consistency-token"),
        )
        .json(&json!({"rating": 1, "review_text": "ghost", "user_id": lauren.id}))
        .send()
        .await
        .unwrap();
    assert_problem(gone, StatusCode::GONE, "user_deactivated").await;
    assert_eq!(
        app.head().await,
        head_after_deactivation,
        "a refused review appends nothing"
    );
    let summary = app.get_json(&format!("/books/{book}/summary")).await;
    assert_eq!(summary["review_count"], 0, "{summary}");
    assert_eq!(summary["average_rating"], Value::Null, "{summary}");

    // On behalf of an active member it still works, also for one who signed up a moment ago.
    let olamina = app.signup("olamina").await;
    let posted = app
        .admin()
        .post(app.url(&path))
        .json(&json!({"rating": 4, "review_text": "Earthseed", "user_id": olamina.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::CREATED);
    let review: Value = posted.json().await.unwrap();
    assert_eq!(review["user_id"], olamina.id.as_str());
}

async fn deleted_review_words_leave_every_public_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = app.add_book("Frankenstein").await;
    let secret = "my phone is 555-0100, call me";
    let victor = app.signup("victor").await;
    let elizabeth = app.signup("elizabeth").await;
    let review = app.review(&victor, &book, 2, secret).await;
    let kept = app
        .review(&elizabeth, &book, 5, "A kept review stays visible")
        .await;
    // A review summary made while the review was live, quoting it (as an extractive one would).
    let summarized = app
        .append_to_book(
            &book,
            vec![BookEvent::ReviewSummarySet {
                summary: SummaryText::parse(format!("Readers say: {secret}")).unwrap(),
                provenance: SummaryProvenance {
                    backend: "extractive".into(),
                    model: "textrank".into(),
                    prompt_version: "1".into(),
                    covers_version: 3,
                    fallback_reason: None,
                },
            }],
        )
        .await;
    let before: Value = app
        .client
        .get(app.url(&format!("/books/{book}/summary")))
        .header("consistency-token", summarized.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        before["review_summary"].as_str().unwrap().contains(secret),
        "{before}"
    );
    let history = app
        .client
        .get(app.url(&format!("/books/{book}/history")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        history.contains(secret),
        "live words are history: {history}"
    );
    tick().await;
    let while_live = now_rfc3339();
    tick().await;

    let deleted = app
        .as_user(&victor)
        .delete(app.url(&format!("/books/{book}/reviews/{review}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let token = header(&deleted, "consistency-token");

    // The history keeps every fact and none of the words.
    let raw = app
        .client
        .get(app.url(&format!("/books/{book}/history")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!raw.contains("555-0100"), "{raw}");
    let history: Value = serde_json::from_str(&raw).unwrap();
    let events = history["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "BookAdded",
            "ReviewPosted",
            "ReviewPosted",
            "ReviewSummarySet",
            "ReviewDeleted"
        ]
    );
    let posted = &events[1];
    assert_eq!(posted["data"]["review_id"], review.as_str());
    assert_eq!(posted["data"]["member_id"], victor.id.as_str());
    assert_eq!(posted["data"]["rating"], 2);
    assert_eq!(posted["data"]["text"], "");
    assert_eq!(posted["redacted"], true);
    assert_eq!(events[2]["data"]["review_id"], kept.as_str());
    assert_eq!(events[2]["data"]["text"], "A kept review stays visible");
    assert_eq!(events[2]["redacted"], false);
    assert_eq!(events[3]["data"]["summary"], "");
    assert_eq!(events[3]["data"]["provenance"]["covers_version"], 3);
    assert_eq!(events[3]["redacted"], true);
    assert_eq!(events[4]["data"]["review_id"], review.as_str());
    assert_eq!(events[0]["redacted"], false);
    // Page by page too: the deletion on a later page still hides the words on this one.
    let first_page: Value = app
        .get_json(&format!("/books/{book}/history?limit=2"))
        .await;
    assert_eq!(first_page["events"][1]["data"]["text"], "");
    assert_eq!(first_page["events"][1]["redacted"], true);

    // The book as it was while the review was live: its rating counted, its words nowhere.
    let then = app
        .client
        .get(app.url(&format!("/books/{book}")))
        .query(&[("as_of", &while_live)])
        .send()
        .await
        .unwrap();
    assert_eq!(then.status(), StatusCode::OK);
    let then = then.text().await.unwrap();
    assert!(!then.contains("555-0100"), "{then}");
    let then: Value = serde_json::from_str(&then).unwrap();
    assert_eq!(then["rating_count"], 2, "{then}");

    // The review itself is gone, and so is the summary that quoted it.
    let review_read = app
        .client
        .get(app.url(&format!("/books/{book}/reviews/{review}")))
        .header("consistency-token", &token)
        .send()
        .await
        .unwrap();
    assert_problem(review_read, StatusCode::GONE, "review_deleted").await;
    let summary = app
        .client
        .get(app.url(&format!("/books/{book}/summary")))
        .header("consistency-token", &token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!summary.contains("555-0100"), "{summary}");
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["review_summary"], Value::Null);
    assert_eq!(summary["review_summary_stale"], true);
    assert_eq!(summary["review_count"], 1);
    let list = app
        .get_json(&format!("/books/{book}/reviews"))
        .await
        .to_string();
    assert!(!list.contains("555-0100"), "{list}");
}

async fn as_of_folds_a_bounded_number_of_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = app.add_book("Middlemarch").await;
    tick().await;
    let early = now_rfc3339();
    tick().await;
    // A thousand reviews on top of the book's first event: one more event than the public may
    // fold in one request.
    let reviews: Vec<BookEvent> = (0..1000)
        .map(|i| BookEvent::ReviewPosted {
            review_id: ReviewId::new(),
            member_id: UserId::new(),
            rating: Rating::parse(1 + (i % 5) as u8).unwrap(),
            text: ReviewText::empty(),
        })
        .collect();
    let position = app.append_to_book(&book, reviews).await;
    tick().await;
    let late = now_rfc3339();

    let anonymous = app
        .client
        .get(app.url(&format!("/books/{book}")))
        .query(&[("as_of", &late)])
        .send()
        .await
        .unwrap();
    assert_problem(
        anonymous,
        StatusCode::UNPROCESSABLE_ENTITY,
        "history_too_long",
    )
    .await;
    let member = app.signup("dorothea").await;
    let as_member = app
        .as_user(&member)
        .get(app.url(&format!("/books/{book}")))
        .query(&[("as_of", &late)])
        .send()
        .await
        .unwrap();
    assert_problem(
        as_member,
        StatusCode::UNPROCESSABLE_ENTITY,
        "history_too_long",
    )
    .await;

    // Staff may fold more.
    let staff = app
        .admin()
        .get(app.url(&format!("/books/{book}")))
        .query(&[("as_of", &late)])
        .send()
        .await
        .unwrap();
    assert_eq!(staff.status(), StatusCode::OK);
    let staff: Value = staff.json().await.unwrap();
    assert_eq!(staff["rating_count"], 1000);
    assert_eq!(staff["version"], 1001);

    // The bound counts the events up to the time asked: the past before the flood is public.
    let then = app
        .client
        .get(app.url(&format!("/books/{book}")))
        .query(&[("as_of", &early)])
        .send()
        .await
        .unwrap();
    assert_eq!(then.status(), StatusCode::OK);
    let then: Value = then.json().await.unwrap();
    assert_eq!(then["version"], 1);
    assert_eq!(then["rating_count"], 0);

    // The history stays readable, a page at a time; the current book too.
    let page: Value = app
        .get_json(&format!("/books/{book}/history?limit=100&cursor=900"))
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 100);
    let now: Value = app
        .client
        .get(app.url(&format!("/books/{book}")))
        .header("consistency-token", position.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(now["rating_count"], 1000);
}

async fn if_none_match_star_matches_an_existing_book(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = app.add_book("Beloved").await;
    let star = app
        .client
        .get(app.url(&format!("/books/{book}")))
        .header("if-none-match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(star.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&star, "etag"), "\"1\"");
    let other = app
        .client
        .get(app.url(&format!("/books/{book}")))
        .header("if-none-match", "\"7\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    let missing = app
        .client
        .get(app.url(&format!("/books/{}", BookId::new())))
        .header("if-none-match", "*")
        .send()
        .await
        .unwrap();
    assert_problem(missing, StatusCode::NOT_FOUND, "not_found").await;
}

async fn interactions_with_a_removed_book_are_gone(backend: Backend) {
    let app = spawn_app(backend).await;
    let book = app.add_book("Jane Eyre").await;
    let jane = app.signup("jane").await;
    let removed = app
        .admin()
        .delete(app.url(&format!("/books/{book}")))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let head = app.head().await;
    for action in ["like", "view"] {
        let response = app
            .as_user(&jane)
            .post(app.url("/interactions"))
            .header("consistency-token", header(&removed, "consistency-token"))
            .json(&json!({"book_id": book, "action": action}))
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::GONE, "book_removed").await;
    }
    let unknown = app
        .as_user(&jane)
        .post(app.url("/interactions"))
        .json(&json!({"book_id": BookId::new(), "action": "like"}))
        .send()
        .await
        .unwrap();
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        app.head().await,
        head,
        "a refused interaction appends nothing"
    );
}

on_backends!(
    an_admin_cannot_review_for_unknown_or_deactivated_users,
    deleted_review_words_leave_every_public_read,
    as_of_folds_a_bounded_number_of_events,
    if_none_match_star_matches_an_existing_book,
    interactions_with_a_removed_book_are_gone,
);

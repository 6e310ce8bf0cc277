//! The member's feed live over real sockets (`GET /feed/live` WebSocket, `GET /feed/events`
//! SSE), end to end on both backends: follows, reviews, ratings, likes and privacy go in through
//! the REST API and come out of the node's one live hub as `GET /feed` items with their log
//! positions: a followee's activity in order and nobody else's, a resume from a position without
//! gap or duplicate, a follow mid-stream starting someone's items and a followee going private
//! stopping theirs (live and on a resume from before both), and SSE's `Last-Event-ID`.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{
    self, Backend, Member, TestApp, assert_problem, header, on_backends, open_sse, set_following,
    spawn_app,
};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(15);

async fn follow(app: &TestApp, who: &Member, whom: &Member) -> u64 {
    let response = set_following(app, who, whom, true).await;
    assert!(response.status().is_success(), "{}", response.status());
    header(&response, "consistency-token").parse().unwrap()
}

async fn unfollow(app: &TestApp, who: &Member, whom: &Member) {
    let response = set_following(app, who, whom, false).await;
    assert!(response.status().is_success(), "{}", response.status());
}

async fn set_private(app: &TestApp, who: &Member, private: bool) {
    let response = app
        .as_user(who)
        .put(app.url(&format!("/users/{}/privacy", who.id)))
        .json(&json!({"activity_private": private}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// `who` likes, or rates (`value`), a book; returns the write's position.
async fn interact(app: &TestApp, who: &Member, book: &str, action: &str, value: Option<u8>) -> u64 {
    helpers::interact(app, who, book, action, value)
        .await
        .parse()
        .unwrap()
}

/// `who` reviews a book; returns the review's id and the write's position.
async fn review(app: &TestApp, who: &Member, book: &str, rating: u8, text: &str) -> (String, u64) {
    let (id, token) = helpers::review(app, who, book, rating, text).await;
    (id, token.parse().unwrap())
}

/// A feed WebSocket, signed in with `?access_token=` (as browsers do).
async fn connect(app: &TestApp, who: &Member, query: &str) -> Ws {
    let token = app.token(&who.username, &who.password).await;
    let sep = if query.is_empty() { "?" } else { "&" };
    let url = format!(
        "ws://{}/feed/live{query}{sep}access_token={token}",
        app.addr
    );
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// A feed WebSocket, signed in with the `Authorization` header.
async fn connect_with_header(app: &TestApp, who: &Member, query: &str) -> Ws {
    let token = app.token(&who.username, &who.password).await;
    let mut request = format!("ws://{}/feed/live{query}", app.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The next text message as JSON; `None` when the server closed the socket.
async fn next_message(ws: &mut Ws) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time");
        match frame {
            None | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("{error}"),
        }
    }
}

async fn next_n(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next_message(ws).await.expect("the socket stays open"));
    }
    out
}

/// `(type, user_name, book_title, position)` of each item.
fn summary(items: &[Value]) -> Vec<(String, String, String, u64)> {
    items
        .iter()
        .map(|i| {
            (
                i["type"].as_str().unwrap().to_string(),
                i["user_name"].as_str().unwrap().to_string(),
                i["book_title"].as_str().unwrap().to_string(),
                i["position"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn item(kind: &str, user: &str, book: &str, position: u64) -> (String, String, String, u64) {
    (kind.into(), user.into(), book.into(), position)
}

async fn a_followee_s_review_rating_and_like_arrive_in_order_and_resume_without_gap(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let dune = app.add_book("Dune").await;
    let emma = app.add_book("Emma").await;
    let ubik = app.add_book("Ubik").await;
    let ann = app.signup("ann").await;
    let ben = app.signup("ben").await;
    let dan = app.signup("dan").await;
    follow(&app, &ann, &ben).await;

    // Credentials are required: a feed is a member's own.
    let anonymous = app
        .client
        .get(app.url("/feed/events"))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let mut ws = connect(&app, &ann, "").await;
    let (review_id, reviewed) = review(&app, &ben, &dune, 5, "Spice and sand.").await;
    review(&app, &dan, &dune, 2, "Not for me.").await; // Dan is not followed.
    interact(&app, &dan, &emma, "like", None).await;
    let rated = interact(&app, &ben, &ubik, "rate", Some(4)).await;
    let liked = interact(&app, &ben, &emma, "like", None).await;
    let items = next_n(&mut ws, 3).await;
    assert_eq!(
        summary(&items),
        [
            item("review", "ben", "Dune", reviewed),
            item("rating", "ben", "Ubik", rated),
            item("like", "ben", "Emma", liked),
        ]
    );
    let posted = &items[0];
    assert_eq!(posted["review_id"], review_id.as_str());
    assert_eq!(posted["user_id"], ben.id.as_str());
    assert_eq!(posted["book_id"], dune.as_str());
    assert_eq!(posted["rating"], 5);
    assert_eq!(posted["review_text"], "Spice and sand.");
    assert!(posted["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(items[1]["rating"], 4);
    assert!(items[2].get("rating").is_none(), "a like has no rating");
    ws.close(None).await.unwrap();
    drop(ws);

    // The same items as `GET /feed` shows them, newest first.
    let feed: Value = app
        .as_user(&ann)
        .get(app.url("/feed"))
        .header("consistency-token", liked.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut listed: Vec<Value> = feed["items"].as_array().unwrap().clone();
    listed.reverse();
    assert_eq!(listed, items, "the live items are the feed's items");

    // Resume after the first item: the rest, then what is written while the socket opens and
    // after, each once.
    let books: Vec<String> = {
        let mut books = Vec::new();
        for i in 0..10 {
            books.push(app.add_book(&format!("Book {i}")).await);
        }
        books
    };
    let mut expected = vec![(rated, "rating"), (liked, "like")];
    for book in &books[..5] {
        expected.push((interact(&app, &ben, book, "rate", Some(3)).await, "rating"));
    }
    let query = format!("?after={reviewed}");
    let opening = connect(&app, &ann, &query);
    let writing = async {
        let mut written = Vec::new();
        for book in &books[5..] {
            written.push((interact(&app, &ben, book, "like", None).await, "like"));
            interact(&app, &dan, book, "like", None).await;
        }
        written
    };
    let (mut ws, written) = tokio::join!(opening, writing);
    expected.extend(written);
    let resumed = next_n(&mut ws, expected.len()).await;
    let got: Vec<(u64, &str)> = resumed
        .iter()
        .map(|i| (i["position"].as_u64().unwrap(), i["type"].as_str().unwrap()))
        .collect();
    assert_eq!(got, expected, "no gap, no duplicate, in order");
    let last = interact(&app, &ben, &dune, "like", None).await;
    let next = next_message(&mut ws).await.unwrap();
    assert_eq!(next["position"].as_u64(), Some(last), "{next}");
}

async fn a_follow_mid_stream_starts_items_and_going_private_stops_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let dune = app.add_book("Dune").await;
    let emma = app.add_book("Emma").await;
    let ubik = app.add_book("Ubik").await;
    let ann = app.signup("ann").await;
    let ben = app.signup("ben").await;
    let cat = app.signup("cat").await;
    let dan = app.signup("dan").await;
    let before = follow(&app, &ann, &ben).await;

    let mut ws = connect_with_header(&app, &ann, "").await;
    interact(&app, &cat, &dune, "like", None).await; // Not followed yet.
    follow(&app, &ann, &cat).await;
    let cat_liked = interact(&app, &cat, &emma, "like", None).await;
    set_private(&app, &ben, true).await;
    interact(&app, &ben, &ubik, "rate", Some(5)).await; // Private now.
    let cat_rated = interact(&app, &cat, &ubik, "rate", Some(2)).await;
    unfollow(&app, &ann, &cat).await;
    interact(&app, &cat, &dune, "rate", Some(1)).await; // Unfollowed.
    follow(&app, &ann, &dan).await;
    let dan_liked = interact(&app, &dan, &dune, "like", None).await;
    set_private(&app, &ben, false).await;
    let ben_liked = interact(&app, &ben, &dune, "like", None).await;
    let expected = [
        item("like", "cat", "Emma", cat_liked),
        item("rating", "cat", "Ubik", cat_rated),
        item("like", "dan", "Dune", dan_liked),
        item("like", "ben", "Dune", ben_liked),
    ];
    assert_eq!(summary(&next_n(&mut ws, 4).await), expected);

    // A resume from before all of it replays exactly the same, folded from the log.
    let mut resumed = connect(&app, &ann, &format!("?after={before}")).await;
    assert_eq!(summary(&next_n(&mut resumed, 4).await), expected);
    // And both stay live.
    let last = interact(&app, &dan, &emma, "like", None).await;
    for ws in [&mut ws, &mut resumed] {
        let next = next_message(ws).await.unwrap();
        assert_eq!(next["position"].as_u64(), Some(last), "{next}");
    }
}

/// The SSE frames `(id, data)` of a response, as they arrive.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    async fn open(app: &TestApp, who: &Member, last_event_id: Option<u64>) -> Self {
        let token = app.token(&who.username, &who.password).await;
        let request = app.client.get(app.url("/feed/events")).bearer_auth(token);
        let response = open_sse(request, last_event_id).await;
        Self {
            response,
            buffer: String::new(),
        }
    }

    async fn next(&mut self) -> (u64, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut data) = (None, None);
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str(v.trim()).unwrap());
                    }
                }
                if let (Some(id), Some(data)) = (id, data) {
                    return (id, data);
                }
                continue; // a keep-alive comment
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("an event in time")
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

async fn an_sse_feed_resumes_with_last_event_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let dune = app.add_book("Dune").await;
    let emma = app.add_book("Emma").await;
    let ann = app.signup("ann").await;
    let ben = app.signup("ben").await;
    follow(&app, &ann, &ben).await;

    let mut events = SseReader::open(&app, &ann, None).await;
    let first = interact(&app, &ben, &dune, "rate", Some(4)).await;
    let second = interact(&app, &ben, &emma, "like", None).await;
    let (id, data) = events.next().await;
    assert_eq!((id, data["type"].as_str()), (first, Some("rating")));
    assert_eq!(data["position"].as_u64(), Some(first));
    let (id, later) = events.next().await;
    assert_eq!(id, second);
    drop(events);

    let mut resumed = SseReader::open(&app, &ann, Some(first)).await;
    assert_eq!(resumed.next().await, (second, later));
    let third = interact(&app, &ben, &emma, "rate", Some(5)).await;
    let (id, data) = resumed.next().await;
    assert_eq!((id, data["type"].as_str()), (third, Some("rating")));
}

on_backends!(
    a_followee_s_review_rating_and_like_arrive_in_order_and_resume_without_gap,
    a_follow_mid_stream_starts_items_and_going_private_stops_them,
    an_sse_feed_resumes_with_last_event_id,
);

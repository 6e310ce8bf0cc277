//! Live updates over real sockets (`GET /clubs/{id}/live` WebSocket, `GET /clubs/{id}/events`
//! SSE), end to end: clubs, threads, members, replies and ballots go in through the REST API
//! (`POST /clubs`, `POST /clubs/{id}/threads`, `POST /clubs/{id}/members`,
//! `POST /discussions/{thread_id}/reply`, `POST /discussion`, `POST /vote`) as the admin or a
//! signed-up member, and come out of the hub: resuming from a position without gap or
//! duplicate, across two nodes on one database, a client too slow to keep up, members-only
//! clubs, ballots with their standings, and the `default` alias.

use std::fmt::Display;
use std::time::{Duration, Instant};

use futures::StreamExt;
use quire_domain::ids::{ClubId, ThreadId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    ADMIN_PASSWORD, Backend, Member, TestApp, assert_problem, on_backends, open_sse, spawn_app,
    spawn_app_with, spawn_node_on,
};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(15);

/// Someone who writes through the HTTP API of one node with a bearer token (cheap to clone, so
/// a background task can post too).
#[derive(Clone)]
struct Poster {
    client: reqwest::Client,
    base: String,
    token: String,
    /// What `author` says in the seed reply shape: a username.
    author: String,
    /// Sent as `Consistency-Token`: a node that did not take the write this depends on (a
    /// thread started through another node) waits until its read models have it.
    after: Option<u64>,
}

impl Poster {
    async fn admin(app: &TestApp) -> Self {
        Self::with_token(app, "admin", app.token("admin", ADMIN_PASSWORD).await)
    }

    async fn member(app: &TestApp, member: &Member) -> Self {
        let token = app.token(&member.username, &member.password).await;
        Self::with_token(app, &member.username, token)
    }

    fn with_token(app: &TestApp, author: &str, token: String) -> Self {
        Self {
            client: app.client.clone(),
            base: format!("http://{}", app.addr),
            token,
            author: author.to_string(),
            after: None,
        }
    }

    /// The same poster on another node, reading at least up to `after`.
    fn on(&self, app: &TestApp, after: u64) -> Self {
        Self {
            client: app.client.clone(),
            base: format!("http://{}", app.addr),
            after: Some(after),
            ..self.clone()
        }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        match self.after {
            Some(after) => request.header("consistency-token", after.to_string()),
            None => request,
        }
    }

    fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .delete(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// `POST /discussions/{thread}/reply`; returns the reply's id and the write's log position
    /// (its `Consistency-Token`).
    async fn reply(&self, thread: ThreadId, text: &str) -> (String, u64) {
        let response = self
            .post(&format!("/discussions/{thread}/reply"))
            .json(&json!({"author": self.author, "content": text}))
            .send()
            .await
            .unwrap();
        let (body, position) = created(response).await;
        assert_eq!(body["message"], "Reply posted");
        (body["reply_id"].as_str().unwrap().to_string(), position)
    }
}

/// The body and `Consistency-Token` of a `201 Created` answer.
async fn created(response: reqwest::Response) -> (Value, u64) {
    answered(response, StatusCode::CREATED).await
}

async fn answered(response: reqwest::Response, expected: StatusCode) -> (Value, u64) {
    let status = response.status();
    let position = response
        .headers()
        .get("consistency-token")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let body = response.text().await.unwrap();
    assert_eq!(status, expected, "{body}");
    (
        serde_json::from_str(&body).unwrap(),
        position.expect("a Consistency-Token"),
    )
}

/// A club the poster creates (`POST /clubs`, so they own it) with a thread
/// (`POST /clubs/{id}/threads`); returns both ids and the thread's log position.
async fn club_with_thread(poster: &Poster, visibility: &str) -> (ClubId, ThreadId, u64) {
    let response = poster
        .post("/clubs")
        .json(&json!({"name": "Readers", "visibility": visibility, "write_ins": true}))
        .send()
        .await
        .unwrap();
    let (club, _) = created(response).await;
    assert_eq!(club["visibility"], visibility);
    let club: ClubId = club["id"].as_str().unwrap().parse().unwrap();
    let response = poster
        .post(&format!("/clubs/{club}/threads"))
        .json(&json!({"title": "Chapter one", "content": "What did you think?"}))
        .send()
        .await
        .unwrap();
    let (thread, position) = created(response).await;
    assert_eq!(thread["club_id"], club.to_string());
    (
        club,
        thread["id"].as_str().unwrap().parse().unwrap(),
        position,
    )
}

fn ws_url(app: &TestApp, club: impl Display, query: &str) -> String {
    format!("ws://{}/clubs/{club}/live{query}", app.addr)
}

async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next text message as JSON; `None` when the server closed the socket.
async fn next_message<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Option<Value>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
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

/// The next message of type `kind`, and the types of those before it.
async fn next_of_type(ws: &mut Ws, kind: &str) -> (Value, Vec<String>) {
    let mut skipped = Vec::new();
    loop {
        let message = next_message(ws).await.expect("the socket stays open");
        if message["type"] == kind {
            return (message, skipped);
        }
        skipped.push(message["type"].as_str().unwrap().to_string());
    }
}

fn assert_replies_in_order(messages: &[Value], expected: &[String], after: u64) {
    let contents: Vec<&str> = messages
        .iter()
        .map(|m| m["data"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, expected, "exactly the replies, in order");
    let mut last = after;
    for message in messages {
        assert_eq!(message["type"], "reply_posted", "{message}");
        let position = message["position"].as_u64().unwrap();
        assert!(position > last, "positions increase: {message}");
        last = position;
    }
}

/// Posts `n` replies named `{prefix} {i}`: half before `resume` runs, half while it does.
async fn post_around<F, Fut, T>(
    poster: &Poster,
    thread: ThreadId,
    prefix: &str,
    n: usize,
    resume: F,
) -> (Vec<String>, T)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let texts: Vec<String> = (0..n).map(|i| format!("{prefix} {i}")).collect();
    for text in &texts[..n / 2] {
        poster.reply(thread, text).await;
    }
    let rest = texts[n / 2..].to_vec();
    let poster = poster.clone();
    let posting = tokio::spawn(async move {
        for text in rest {
            poster.reply(thread, &text).await;
        }
    });
    let resumed = resume().await;
    posting.await.unwrap();
    (texts, resumed)
}

async fn a_websocket_client_resumes_from_its_position_without_gap_or_duplicate(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = Poster::admin(&app).await;
    let (club, thread, _) = club_with_thread(&admin, "public").await;
    let mut ws = connect(&ws_url(&app, club, "")).await;
    let (reply_id, written_at) = admin.reply(thread, "first").await;
    let first = next_message(&mut ws).await.unwrap();
    assert_eq!(first["type"], "reply_posted");
    assert_eq!(first["club_id"], club.to_string());
    assert_eq!(first["data"]["thread_id"], thread.to_string());
    assert_eq!(first["data"]["author_id"], app.admin_id.to_string());
    assert_eq!(first["data"]["content"], "first");
    assert_eq!(first["data"]["reply_id"], reply_id.as_str());
    assert!(first["data"]["created_at"].is_string());
    let p = first["position"].as_u64().unwrap();
    assert_eq!(
        p, written_at,
        "the position is the write's Consistency-Token"
    );
    ws.close(None).await.unwrap();
    drop(ws);

    let url = ws_url(&app, club, &format!("?after={p}"));
    let (texts, mut ws) = post_around(&admin, thread, "reply", 50, || connect(&url)).await;
    let mut messages = Vec::new();
    for _ in 0..50 {
        messages.push(next_message(&mut ws).await.unwrap());
    }
    assert_replies_in_order(&messages, &texts, p);
    // Live from here on, nothing repeated.
    admin.reply(thread, "after").await;
    let next = next_message(&mut ws).await.unwrap();
    assert_eq!(next["data"]["content"], "after", "{next}");
}

/// The SSE frames `(id, event, data)` of a response, as they arrive.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    async fn next(&mut self) -> Option<(Option<String>, Option<String>, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, None, None);
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(v.trim().to_string());
                    }
                }
                if let Some(data) = data {
                    return Some((id, event, serde_json::from_str(&data).unwrap()));
                }
                continue; // a keep-alive comment
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("an event in time")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

async fn sse(app: &TestApp, club: impl Display, last_event_id: Option<u64>) -> SseReader {
    let request = app.client.get(app.url(&format!("/clubs/{club}/events")));
    let response = open_sse(request, last_event_id).await;
    SseReader {
        response,
        buffer: String::new(),
    }
}

async fn an_sse_client_resumes_with_last_event_id_without_gap_or_duplicate(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signup("ann").await;
    let owner = Poster::member(&app, &ann).await;
    let (club, thread, _) = club_with_thread(&owner, "public").await;
    let mut events = sse(&app, club, None).await;
    owner.reply(thread, "first").await;
    let (id, _, first) = events.next().await.unwrap();
    assert_eq!(first["type"], "reply_posted");
    assert_eq!(first["data"]["author_id"], ann.id.as_str());
    let p = first["position"].as_u64().unwrap();
    assert_eq!(id, Some(p.to_string()), "the SSE id is the position");
    drop(events);

    let (texts, mut events) =
        post_around(&owner, thread, "reply", 50, || sse(&app, club, Some(p))).await;
    let mut messages = Vec::new();
    for _ in 0..50 {
        let (id, _, message) = events.next().await.unwrap();
        assert_eq!(id.unwrap(), message["position"].to_string());
        messages.push(message);
    }
    assert_replies_in_order(&messages, &texts, p);
    owner.reply(thread, "after").await;
    let (_, _, next) = events.next().await.unwrap();
    assert_eq!(next["data"]["content"], "after", "{next}");
    // `?after=` works as well as the header.
    let mut again = app
        .client
        .get(app.url(&format!(
            "/clubs/{club}/events?after={}",
            messages[48]["position"]
        )))
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    while !buffer.contains("reply 49") {
        let chunk = tokio::time::timeout(WAIT, again.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(!buffer.contains("reply 48"), "{buffer}");
}

/// Postgres only: replies accepted by a second node reach a client of the first, live and when
/// it resumes.
async fn replies_posted_to_another_node_reach_clients_of_this_one(backend: Backend) {
    if matches!(backend, Backend::Sqlite) {
        return;
    }
    let app = spawn_app(backend).await;
    let other = spawn_node_on(app.database_url.clone(), |_| {}).await;
    let here = Poster::admin(&app).await;
    let (club, thread, started) = club_with_thread(&here, "public").await;
    // The same admin, writing through the other node once its read models have the thread.
    let there = Poster::admin(&other).await.on(&other, started);
    let mut ws = connect(&ws_url(&app, club, "")).await;
    let mut events = sse(&app, club, None).await;
    let started = Instant::now();
    let (reply_id, _) = there.reply(thread, "from the other node").await;
    let live = next_message(&mut ws).await.unwrap();
    assert_eq!(live["data"]["content"], "from the other node");
    assert_eq!(live["data"]["reply_id"], reply_id.as_str());
    let (_, _, over_sse) = events.next().await.unwrap();
    assert_eq!(over_sse, live);
    let p = live["position"].as_u64().unwrap();
    eprintln!("cross-node delivery took {:?}", started.elapsed());
    drop(ws);
    drop(events);

    let url = ws_url(&app, club, &format!("?after={p}"));
    let (texts, mut ws) = post_around(&there, thread, "remote", 50, || connect(&url)).await;
    let mut messages = Vec::new();
    for _ in 0..50 {
        messages.push(next_message(&mut ws).await.unwrap());
    }
    assert_replies_in_order(&messages, &texts, p);
    let (texts, mut events) = post_around(&there, thread, "sse", 10, || {
        sse(&app, club, Some(messages[49]["position"].as_u64().unwrap()))
    })
    .await;
    let mut over_sse = Vec::new();
    for _ in 0..10 {
        over_sse.push(events.next().await.unwrap().2);
    }
    assert_replies_in_order(
        &over_sse,
        &texts,
        messages[49]["position"].as_u64().unwrap(),
    );
}

async fn a_client_that_does_not_read_gets_a_resync_and_nobody_waits_for_it(backend: Backend) {
    // A small per-connection buffer, so few replies overflow it; and a send timeout far beyond
    // the test's length, so the server never drops the stalled socket before it can send the
    // resync this test reads (however loaded the machine is).
    let app = spawn_app_with(backend, |settings| {
        settings.live.buffer = 16;
        settings.live.send_timeout_secs = 600;
    })
    .await;
    let admin = Poster::admin(&app).await;
    let (club, thread, _) = club_with_thread(&admin, "public").await;
    // A slow client: a small receive window and no reads until the end.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(ws_url(&app, club, ""), stream)
        .await
        .unwrap();
    let mut fast = connect(&ws_url(&app, club, "")).await;
    // ~10 MB of replies: more than the slow client's buffer (16 messages) and both sockets'
    // kernel buffers (at most ~4 MB, ~105 of these replies). Each reply is one HTTP request, so
    // the replies are few and large (40 KB of four-byte characters, near the 10,000-character
    // limit), and the slow client reads once it has surely fallen behind (the fast one has 200).
    let total = 250;
    let slow_reads_at = 200;
    let body = "\u{1F4DA}".repeat(9_990);
    let posting = {
        let admin = admin.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            for i in 0..total {
                admin.reply(thread, &format!("{i} {body}")).await;
            }
            eprintln!("posted {total} replies in {:?}", started.elapsed());
        })
    };
    // The fast client gets everything while the slow one sits there (if it too falls behind
    // for a moment, it resumes where the resync says, as any client does).
    let mut last_fast = 0;
    let mut resyncs = 0;
    let mut i = 0;
    let mut slow_read = None;
    while i < total {
        if i == slow_reads_at && slow_read.is_none() {
            slow_read = Some(read_until_resync(&mut slow).await);
        }
        let Some(message) = next_message(&mut fast).await else {
            panic!("closed without a resync")
        };
        if message["type"] == "resync" {
            resyncs += 1;
            assert!(next_message(&mut fast).await.is_none());
            let after = message["position"].as_u64().unwrap();
            fast = connect(&ws_url(&app, club, &format!("?after={after}"))).await;
            continue;
        }
        assert_eq!(message["type"], "reply_posted");
        assert!(
            message["data"]["content"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{i} ")),
            "in order"
        );
        last_fast = message["position"].as_u64().unwrap();
        i += 1;
    }
    eprintln!("the fast client resynced {resyncs} times");
    posting.await.unwrap();
    // The server still answers.
    let status = app.client.get(app.url("/status")).send().await.unwrap();
    assert_eq!(status.status(), StatusCode::OK);

    // The slow client read: a prefix of the replies, then a resync at the last one it got, then
    // the close.
    let (delivered, last, resync) = slow_read.expect("the slow client read");
    assert_eq!(resync["position"].as_u64().unwrap(), last, "{resync}");
    assert!(delivered < total, "the slow client fell behind");
    assert!(next_message(&mut slow).await.is_none(), "then closed");
    // It resumes from the resync's position and catches up.
    let mut resumed = connect(&ws_url(&app, club, &format!("?after={last}"))).await;
    let mut caught_up = last;
    while caught_up < last_fast {
        let message = next_message(&mut resumed).await.unwrap();
        let position = message["position"].as_u64().unwrap();
        assert!(position > caught_up);
        caught_up = position;
    }
    assert_eq!(caught_up, last_fast);
}

/// What a slow client reads: replies in order up to a resync; returns how many, the last one's
/// position and the resync.
async fn read_until_resync(
    slow: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> (usize, u64, Value) {
    let mut delivered = 0;
    let mut last = 0;
    loop {
        let message = next_message(slow).await.expect("a resync before the close");
        if message["type"] == "resync" {
            return (delivered, last, message);
        }
        assert_eq!(message["type"], "reply_posted");
        let position = message["position"].as_u64().unwrap();
        assert!(position > last);
        last = position;
        delivered += 1;
    }
}

fn upgrade_request(app: &TestApp, club: impl Display) -> reqwest::RequestBuilder {
    app.client
        .get(app.url(&format!("/clubs/{club}/live")))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
}

async fn a_members_only_club_refuses_non_members_before_the_upgrade(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = Poster::admin(&app).await;
    let (club, thread, _) = club_with_thread(&admin, "members_only").await;
    let member = app.signup("member").await;
    // The owner adds the member (a members-only club's moderators add members).
    let added = admin
        .post(&format!("/clubs/{club}/members"))
        .json(&json!({"user_id": member.id}))
        .send()
        .await
        .unwrap();
    created(added).await;
    let stranger = app.signup("stranger").await;
    let stranger_token = app.token(&stranger.username, &stranger.password).await;

    let refused = upgrade_request(&app, club)
        .bearer_auth(&stranger_token)
        .send()
        .await
        .unwrap();
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    let refused = upgrade_request(&app, club)
        .query(&[("access_token", &stranger_token)])
        .send()
        .await
        .unwrap();
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    let anonymous = upgrade_request(&app, club).send().await.unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let sse = app
        .bearer(&stranger_token)
        .get(app.url(&format!("/clubs/{club}/events")))
        .send()
        .await
        .unwrap();
    assert_problem(sse, StatusCode::FORBIDDEN, "forbidden").await;
    // Nor may the stranger post there.
    let stranger_posts = Poster::member(&app, &stranger)
        .await
        .post(&format!("/discussions/{thread}/reply"))
        .json(&json!({"author": "stranger", "content": "let me in"}))
        .send()
        .await
        .unwrap();
    assert_problem(stranger_posts, StatusCode::FORBIDDEN, "not_a_member").await;
    let unknown = upgrade_request(&app, ClubId::new()).send().await.unwrap();
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let not_an_upgrade = app
        .client
        .get(app.url(&format!("/clubs/{}/live", ClubId::new())))
        .send()
        .await
        .unwrap();
    assert_problem(not_an_upgrade, StatusCode::NOT_FOUND, "not_found").await;

    // The member (with a browser's `access_token`) and staff get in.
    let member_token = app.token(&member.username, &member.password).await;
    let mut ws = connect(&ws_url(
        &app,
        club,
        &format!("?access_token={member_token}"),
    ))
    .await;
    let admin_token = app.token("admin", ADMIN_PASSWORD).await;
    let mut staff = connect(&ws_url(&app, club, &format!("?access_token={admin_token}"))).await;
    let as_member = Poster::member(&app, &member).await;
    as_member.reply(thread, "members only").await;
    let posted = next_message(&mut ws).await.unwrap();
    assert_eq!(posted["data"]["content"], "members only");
    assert_eq!(posted["data"]["author_id"], member.id.as_str());
    assert_eq!(
        next_message(&mut staff).await.unwrap()["data"]["content"],
        "members only"
    );
    // A member who leaves is cut off.
    let left = as_member
        .delete(&format!("/clubs/{club}/members/{}", member.id))
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), StatusCode::NO_CONTENT);
    let cut = next_message(&mut ws).await.unwrap();
    assert_eq!(cut["type"], "access_revoked", "{cut}");
    assert!(next_message(&mut ws).await.is_none());
    let left = next_message(&mut staff).await.unwrap();
    assert_eq!(left["type"], "member_left");
    assert_eq!(left["data"]["member_id"], member.id);
}

/// `POST /vote {book_id, user_id}` as a member.
async fn vote(app: &TestApp, member: &Member, book: &str) -> (Value, u64) {
    let response = app
        .as_user(member)
        .post(app.url("/vote"))
        .json(&json!({"book_id": book, "user_id": member.id}))
        .send()
        .await
        .unwrap();
    answered(response, StatusCode::OK).await
}

async fn a_ballot_cast_through_post_vote_reaches_subscribers_with_its_standings(backend: Backend) {
    let app = spawn_app(backend).await;
    let dune = app.add_book("Dune").await;
    let ann = app.signup("ann").await;
    let bob = app.signup("bob").await;
    let club: ClubId = app.get_json("/clubs/default").await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(club, quire_api::DEFAULT_CLUB);
    let round = app.get_json("/clubs/default/rounds/current").await;
    assert_eq!(round["status"], "open");
    let round_id = round["round_id"].as_str().unwrap().to_string();
    let mut ws = connect(&ws_url(&app, club, "")).await;

    // Ann joins the default club on the way, and her write-in nominates the book.
    let (voted, written_at) = vote(&app, &ann, &dune).await;
    assert_eq!(voted["votes"], 1);
    let (cast, before) = next_of_type(&mut ws, "ballot_cast").await;
    assert_eq!(before, ["member_joined", "book_nominated"], "{cast}");
    assert_eq!(cast["club_id"], club.to_string());
    assert_eq!(cast["position"], written_at, "{cast}");
    assert_eq!(cast["data"]["round_id"], round_id.as_str());
    assert!(cast["data"]["cast_at"].is_string());
    let standings = &cast["data"]["standings"];
    assert_eq!(standings["method"], "plurality", "{cast}");
    assert_eq!(
        standings["counts"],
        json!([{"book_id": dune, "votes": 1}]),
        "{cast}"
    );
    // Who voted for what is not sent.
    assert!(!cast.to_string().contains(&ann.id), "{cast}");

    let (voted, _) = vote(&app, &bob, &dune).await;
    assert_eq!(voted["votes"], 2);
    let (cast, before) = next_of_type(&mut ws, "ballot_cast").await;
    assert_eq!(before, ["member_joined"], "{cast}");
    assert_eq!(
        cast["data"]["standings"]["counts"],
        json!([{"book_id": dune, "votes": 2}]),
        "{cast}"
    );
    assert!(!cast.to_string().contains(&bob.id), "{cast}");
    // The REST view agrees.
    let round = app.get_json("/clubs/default/rounds/current").await;
    assert_eq!(round["standings"][0]["votes"], 2);
}

async fn the_default_alias_names_the_default_club_for_live_updates(backend: Backend) {
    let app = spawn_app(backend).await;
    let ann = app.signup("ann").await;
    let club = quire_api::DEFAULT_CLUB.to_string();
    let mut ws = connect(&ws_url(&app, "default", "")).await;
    let mut events = sse(&app, "default", None).await;

    // A discussion on the seed path (the default club), then a reply to it.
    let as_ann = Poster::member(&app, &ann).await;
    let response = as_ann
        .post("/discussion")
        .json(&json!({"title": "Arrakis", "author": "ann", "content": "The spice must flow."}))
        .send()
        .await
        .unwrap();
    let (discussion, _) = created(response).await;
    let thread: ThreadId = discussion["thread_id"].as_str().unwrap().parse().unwrap();
    let (reply_id, _) = as_ann.reply(thread, "Fear is the mind-killer.").await;

    let (started, before) = next_of_type(&mut ws, "thread_started").await;
    assert_eq!(before, ["member_joined"], "{started}");
    assert_eq!(started["club_id"], club.as_str());
    assert_eq!(started["data"]["thread_id"], thread.to_string());
    assert_eq!(started["data"]["title"], "Arrakis");
    assert_eq!(started["data"]["author_id"], ann.id.as_str());
    let reply = next_message(&mut ws).await.unwrap();
    assert_eq!(reply["type"], "reply_posted", "{reply}");
    assert_eq!(reply["club_id"], club.as_str());
    assert_eq!(reply["data"]["reply_id"], reply_id.as_str());
    // SSE on the alias sees the same messages.
    let mut over_sse = Vec::new();
    for _ in 0..3 {
        over_sse.push(events.next().await.unwrap().2);
    }
    assert_eq!(over_sse[1], started);
    assert_eq!(over_sse[2], reply);
    // And resuming on the alias works as on the id.
    let p = started["position"].as_u64().unwrap();
    let mut resumed = connect(&ws_url(&app, "default", &format!("?after={p}"))).await;
    assert_eq!(next_message(&mut resumed).await.unwrap(), reply);
    let mut resumed = sse(&app, "default", Some(p)).await;
    assert_eq!(resumed.next().await.unwrap().2, reply);
}

on_backends!(
    a_websocket_client_resumes_from_its_position_without_gap_or_duplicate,
    an_sse_client_resumes_with_last_event_id_without_gap_or_duplicate,
    replies_posted_to_another_node_reach_clients_of_this_one,
    a_client_that_does_not_read_gets_a_resync_and_nobody_waits_for_it,
    a_members_only_club_refuses_non_members_before_the_upgrade,
    a_ballot_cast_through_post_vote_reaches_subscribers_with_its_standings,
    the_default_alias_names_the_default_club_for_live_updates,
);

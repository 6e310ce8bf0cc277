//! The book club page is live in a real browser: headless Chromium opens `/club` from a running
//! `quire serve`, a member signs in through the page's form, and then, with the page left open,
//! a vote cast and a reply posted through the API show up in its DOM: the standings move and the
//! reply appears, with no reload and no fetch of the round or the discussions (the page learns
//! both from its WebSocket).
//!
//! The page stays open under the DevTools protocol (`--remote-debugging-port`), which the test
//! speaks over a WebSocket to read the DOM and drive the form. Chromium comes from
//! `QUIRE_TEST_CHROMIUM` (default `/usr/bin/chromium`); without it this test fails, as
//! `docs_browser` does: a missing browser is a broken environment.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Api, Backend, Server, Store};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// How long the page may take to show something (a debug server, a cold browser).
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Chromium, killed when dropped.
struct Browser {
    child: Child,
    /// `ws://127.0.0.1:PORT/devtools/browser/…`
    devtools: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn start(profile: &std::path::Path) -> Self {
        let chromium =
            std::env::var("QUIRE_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            std::path::Path::new(&chromium).exists(),
            "this test needs Chromium at {chromium} (install Debian's chromium, or set QUIRE_TEST_CHROMIUM)"
        );
        let mut child = Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                // A page in the background must not have its timers throttled.
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run chromium");
        // Chromium announces its DevTools endpoint on stderr; keep draining it afterwards.
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.trim().strip_prefix("DevTools listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let devtools = match rx.recv_timeout(PAGE_TIMEOUT) {
            Ok(url) => url,
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium announced no DevTools endpoint ({error})");
            }
        };
        Self { child, devtools }
    }

    /// A DevTools session on the browser's first page.
    async fn page(&self) -> Page {
        let http_base = self
            .devtools
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .map(|host| format!("http://{host}"))
            .unwrap_or_else(|| panic!("unexpected DevTools endpoint {}", self.devtools));
        let targets: Value = reqwest::get(format!("{http_base}/json/list"))
            .await
            .expect("GET /json/list")
            .json()
            .await
            .expect("targets JSON");
        let url = targets
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page target: {targets}"))
            .to_string();
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect to the page's DevTools");
        Page { ws, next_id: 0 }
    }
}

/// One page under the DevTools protocol.
struct Page {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Page {
    /// Calls a DevTools method; events arriving meanwhile are skipped.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params});
        self.ws
            .send(Message::text(request.to_string()))
            .await
            .expect("send to DevTools");
        loop {
            let message = tokio::time::timeout(PAGE_TIMEOUT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("DevTools did not answer {method}"))
                .expect("DevTools connection ended")
                .expect("DevTools message");
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if answer["id"] != id {
                continue;
            }
            if let Some(error) = answer.get("error") {
                panic!("{method} failed: {error}");
            }
            return answer["result"].clone();
        }
    }

    /// Evaluates `expression` in the page; its value (JSON).
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is truthy in the page; panics with `what` and the page's text.
    async fn wait_for(&mut self, what: &str, expression: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PAGE_TIMEOUT;
        loop {
            let value = self.eval(expression).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if tokio::time::Instant::now() >= deadline {
                let text = self
                    .eval("document.body ? document.body.innerText : '(no body)'")
                    .await;
                let state = self
                    .eval("JSON.stringify(document.body ? document.body.dataset : {})")
                    .await;
                panic!(
                    "timed out after {PAGE_TIMEOUT:?} waiting for {what}\npage state: {state}\npage text:\n{}",
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A member's credentials.
struct Member {
    id: String,
    username: &'static str,
    password: &'static str,
}

impl Member {
    async fn sign_up(api: &Api, username: &'static str, password: &'static str) -> Self {
        let (id, _) = api.sign_up(username, password).await;
        Self {
            id,
            username,
            password,
        }
    }

    fn auth(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.basic_auth(self.username, Some(self.password))
    }

    /// `POST /vote` for this member; the answer's body.
    async fn vote(&self, api: &Api, book_id: &str) -> Value {
        let response = self
            .auth(api.http.post(api.url("/vote")))
            .json(&json!({"book_id": book_id, "user_id": self.id}))
            .send()
            .await
            .expect("POST /vote");
        let status = response.status();
        let body: Value = response.json().await.expect("vote JSON");
        assert_eq!(status, StatusCode::OK, "POST /vote: {body}");
        body
    }
}

impl Member {
    /// `POST /discussions/{thread}/reply` as this member; the reply's id.
    async fn reply(&self, api: &Api, thread: &str, content: &str) -> String {
        let response = self
            .auth(
                api.http
                    .post(api.url(&format!("/discussions/{thread}/reply"))),
            )
            .json(&json!({"author": self.username, "content": content}))
            .send()
            .await
            .expect("POST /discussions/{id}/reply");
        let status = response.status();
        let posted: Value = response.json().await.expect("reply JSON");
        assert_eq!(status, StatusCode::CREATED, "reply: {posted}");
        posted["reply_id"].as_str().expect("reply_id").to_string()
    }
}

/// Records the page's WebSocket connections (`__liveUrls`, `__sockets`) and, while
/// `__blockLive` is set, points new ones at a path that refuses them: the test can cut the page
/// off and keep it off. Installed before the page's own script runs.
const SOCKET_RECORDER: &str = r#"(() => {
    const Native = window.WebSocket;
    window.__liveUrls = [];
    window.__sockets = [];
    window.__blockLive = false;
    function Recorded(url, protocols) {
        window.__liveUrls.push(String(url));
        const target = window.__blockLive ? String(url).replace('/live', '/live-blocked') : url;
        const socket = protocols === undefined ? new Native(target) : new Native(target, protocols);
        window.__sockets.push(socket);
        return socket;
    }
    Recorded.prototype = Native.prototype;
    window.WebSocket = Recorded;
})();"#;

/// The reply the page shows in `thread` with `reply_id`: its text, or `null`.
fn reply_shown(thread: &str, reply_id: &str) -> String {
    format!(
        r#"(() => {{
            const li = document.querySelector('article.thread[data-thread-id="{thread}"] li.reply[data-reply-id="{reply_id}"]');
            return li ? li.innerText : null;
        }})()"#
    )
}

/// Makes sure the default club has an open round: the scheduler's monthly one, or one the admin
/// opens.
async fn open_round(api: &Api) {
    let (status, round) = api.get("/clubs/default/rounds/current", None).await;
    if status == StatusCode::OK && round["status"] == "open" {
        return;
    }
    let now = time::OffsetDateTime::now_utc();
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let response = api
        .admin(api.http.post(api.url("/clubs/default/rounds")))
        .json(&json!({
            "method": "plurality",
            "nominations_close": rfc3339(now + time::Duration::hours(1)),
            "voting_closes": rfc3339(now + time::Duration::hours(2)),
        }))
        .send()
        .await
        .expect("POST /clubs/default/rounds");
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    // 409: the scheduler opened the month's round meanwhile.
    assert!(
        status.is_success() || status == StatusCode::CONFLICT,
        "opening a round: {status} {body}"
    );
    let (status, round) = api.get("/clubs/default/rounds/current", None).await;
    assert!(
        status == StatusCode::OK && round["status"] == "open",
        "no open round: {status} {round}"
    );
}

/// The vote count the page shows for a book (`null` when it shows none).
fn votes_shown(book_id: &str) -> String {
    format!(
        r#"(() => {{
            const n = document.querySelector('#standings li[data-book-id="{book_id}"] .standing-votes');
            return n ? Number(n.dataset.votes) : null;
        }})()"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_club_page_shows_votes_and_replies_live_without_reload() {
    let store = Store::new(Backend::Sqlite).await;
    let server = Server::start(&store, &[]);
    let api = Api::new(&server.url);

    let reader = Member::sign_up(&api, "reader", "reader-password-1").await;
    let voter = Member::sign_up(&api, "voter", "voter-password-1").await;
    let poster = Member::sign_up(&api, "poster", "poster-password-1").await;
    let (dune, _) = api.create_book("Dune <b>&amp;</b> Sons").await;
    let (emma, _) = api.create_book("Emma").await;
    open_round(&api).await;

    // Before the page opens: a vote each for two write-ins (1–1), and a discussion.
    reader.vote(&api, &dune).await;
    voter.vote(&api, &emma).await;
    let response = poster
        .auth(api.http.post(api.url("/discussion")))
        .json(&json!({
            "title": "First impressions",
            "author": poster.username,
            "content": "What did everyone think of the opening?",
        }))
        .send()
        .await
        .expect("POST /discussion");
    let status = response.status();
    let created: Value = response.json().await.expect("discussion JSON");
    assert_eq!(status, StatusCode::CREATED, "POST /discussion: {created}");
    let thread = created["thread_id"]
        .as_str()
        .expect("thread_id")
        .to_string();

    // The page, signed in as the reader through its form.
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::start(profile.path());
    let mut page = browser.page().await;
    page.call("Page.enable", json!({})).await;
    page.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({"source": SOCKET_RECORDER}),
    )
    .await;
    page.call(
        "Page.navigate",
        json!({"url": format!("{}/club", server.url)}),
    )
    .await;
    page.wait_for(
        "the page to load the round and discussions",
        "document.body && document.body.dataset.loaded === 'true'",
    )
    .await;
    page.eval(&format!(
        r#"(() => {{
            document.getElementById('signin-username').value = '{}';
            document.getElementById('signin-password').value = '{}';
            document.getElementById('signin-form').requestSubmit();
            return true;
        }})()"#,
        reader.username, reader.password
    ))
    .await;
    page.wait_for(
        "the sign-in to show the reader's ballot",
        &format!(
            "!document.getElementById('signed-in').hidden && \
             document.querySelector('#ballot li[data-book-id=\"{dune}\"]') !== null && \
             document.body.dataset.liveState === 'live'"
        ),
    )
    .await;
    assert_eq!(
        page.eval(&votes_shown(&dune)).await,
        json!(1),
        "the standings before"
    );
    assert_eq!(page.eval(&votes_shown(&emma)).await, json!(1));
    // The title went in as text, not markup.
    let title = page
        .eval(&format!(
            "document.querySelector('#standings li[data-book-id=\"{dune}\"] .standing-title').textContent"
        ))
        .await;
    assert_eq!(title, json!("Dune <b>&amp;</b> Sons"));
    assert_eq!(
        page.eval("document.querySelectorAll('#standings b').length")
            .await,
        json!(0)
    );
    page.wait_for(
        "the discussion",
        &format!("document.querySelector('article.thread[data-thread-id=\"{thread}\"]') !== null"),
    )
    .await;
    // A sign of this very document: a reload or navigation would lose it. From here on the
    // page's fetches are recorded.
    page.eval(
        r#"(() => {
            window.__sameDocument = 'still here';
            window.__fetched = [];
            const fetch = window.fetch;
            window.fetch = function (url, options) {
                window.__fetched.push(String(url));
                return fetch.apply(this, arguments);
            };
            return true;
        })()"#,
    )
    .await;
    let position_before = page
        .eval("Number(document.body.dataset.livePosition)")
        .await;

    // Through the API, with the page open: a second vote for Dune and a reply.
    let answer = voter.vote(&api, &dune).await;
    assert_eq!(answer["votes"], 2, "{answer}");
    page.wait_for(
        "the standings to move to Dune 2, Emma 0",
        &format!(
            "{} === 2 && ({} ?? 0) === 0",
            votes_shown(&dune),
            votes_shown(&emma)
        ),
    )
    .await;
    let text = page
        .eval("document.getElementById('standings').innerText")
        .await;
    assert!(
        text.as_str().unwrap_or_default().contains("2 votes"),
        "the count is visible: {text}"
    );
    // Most votes first.
    let first = page
        .eval("document.querySelector('#standings li').dataset.bookId")
        .await;
    assert_eq!(first, json!(dune));

    let reply_text = "Loved the <i>worldbuilding</i> — and the spice!";
    let reply_id = poster.reply(&api, &thread, reply_text).await;
    let shown = page
        .wait_for(
            "the reply to appear in its thread",
            &reply_shown(&thread, &reply_id),
        )
        .await;
    let shown = shown.as_str().unwrap_or_default();
    assert!(shown.contains(reply_text), "the reply's text: {shown:?}");
    assert!(
        shown.contains(poster.username),
        "the reply's author: {shown:?}"
    );
    assert_eq!(
        page.eval("document.querySelectorAll('.replies i').length")
            .await,
        json!(0),
        "the reply went in as text"
    );

    // Live, not reloaded: the same document, and neither the round nor the discussions were
    // fetched again; the updates came over the WebSocket, whose position moved on.
    assert_eq!(
        page.eval("window.__sameDocument").await,
        json!("still here")
    );
    let fetched = page.eval("window.__fetched").await;
    assert_eq!(fetched, json!([]), "the page fetched {fetched}");
    let position_after = page
        .eval("Number(document.body.dataset.livePosition)")
        .await;
    assert!(
        position_after.as_u64() > position_before.as_u64(),
        "the live position moved: {position_before} -> {position_after}"
    );

    // Cut off, the page misses nothing: while its socket is down (and kept down) a vote and a
    // reply go through the API and do not show; once it may reconnect, it resumes after the last
    // position it had and catches up.
    let position = position_after.as_u64().expect("a position");
    page.eval(
        "window.__blockLive = true; window.__sockets[window.__sockets.length - 1].close(); true",
    )
    .await;
    page.wait_for(
        "the page to notice it is offline",
        "document.body.dataset.liveState !== 'live'",
    )
    .await;
    poster.vote(&api, &emma).await;
    let missed = poster
        .reply(&api, &thread, "Posted while you were away")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        page.eval(&format!("{} ?? 0", votes_shown(&emma))).await,
        json!(0),
        "a page that is offline cannot have seen the vote"
    );
    page.eval("window.__blockLive = false; true").await;
    page.wait_for(
        "the page to catch up after reconnecting",
        &format!(
            "{} === 1 && {} !== null && document.body.dataset.liveState === 'live'",
            votes_shown(&emma),
            reply_shown(&thread, &missed)
        ),
    )
    .await;
    let urls = page.eval("window.__liveUrls").await;
    let last = urls
        .as_array()
        .and_then(|u| u.last())
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        last.contains(&format!("after={position}")),
        "the page resumed after its last position {position}: {urls}"
    );
    assert!(
        urls.as_array().is_some_and(|u| u.len() >= 3),
        "connected, was refused, reconnected: {urls}"
    );
    assert_eq!(
        page.eval("window.__fetched").await,
        json!([]),
        "caught up from the socket alone"
    );

    // The page's own vote button: the reader moves their vote to Emma.
    page.eval(&format!(
        "document.querySelector('#nominations button.vote-button[data-book-id=\"{emma}\"]').click()"
    ))
    .await;
    page.wait_for(
        "the reader's vote to move to Emma",
        &format!(
            "{} === 1 && {} === 2 && \
             document.querySelector('#ballot li[data-book-id=\"{emma}\"]') !== null && \
             document.querySelector('#ballot li[data-book-id=\"{dune}\"]') === null",
            votes_shown(&dune),
            votes_shown(&emma)
        ),
    )
    .await;
    let (_, status) = api.get("/vote/status", None).await;
    let counts: Vec<(String, u64)> = status["status"]
        .as_array()
        .expect("status")
        .iter()
        .map(|c| {
            (
                c["book_id"].as_str().unwrap().to_string(),
                c["votes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        counts.contains(&(dune.clone(), 1)) && counts.contains(&(emma.clone(), 2)),
        "the API agrees: {status}"
    );
    assert_eq!(
        page.eval("window.__sameDocument").await,
        json!("still here")
    );
    drop(page);
    drop(browser);
    drop(server);
}

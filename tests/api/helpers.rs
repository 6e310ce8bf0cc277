//! `spawn_app`: a real node on 127.0.0.1:0, started by `Application::build` exactly as `quire serve`
//! starts one, with its own SQLite files or Postgres database and an admin, plus a client; and the
//! checks every test module of this binary shares (`assert_problem`, `header`, `on_backends!`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quire::Application;
use quire::config::{Secret, Settings};
use quire_actors::clock::ManualClock;
use quire_domain::ids::UserId;
use quire_domain::values::Username;
use quire_store::{DynEventStore, RecordedEvent};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

pub(crate) const ADMIN_PASSWORD: &str = "admin-password-1";
/// Every node gets this secret, so a token one node issues is good on another on the same
/// database.
const TOKEN_SECRET: &str = "a test secret that is long enough!";

pub(crate) struct TestApp {
    pub(crate) addr: SocketAddr,
    pub(crate) client: reqwest::Client,
    pub(crate) store: DynEventStore,
    pub(crate) read: quire_projections::ReadModels,
    /// The event store URL of a Postgres node, for a second node on the same database.
    pub(crate) database_url: Option<String>,
    pub(crate) admin_id: UserId,
    _dir: tempfile::TempDir,
}

pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) username: String,
    pub(crate) password: String,
}

pub(crate) async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// A node with the test's settings: its own data directory (and Postgres database), port 0, an
/// admin, no rate limit and no background summaries (they would append to books under the
/// tests' feet); `configure` changes anything else.
pub(crate) async fn spawn_app_with(
    backend: Backend,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(quire_store::testing::fresh_postgres_database().await),
    };
    spawn_node_on(database_url, configure).await
}

/// A node as [`spawn_app_with`] starts one, on `database_url`: another node's Postgres database,
/// or SQLite files of its own when `None`.
pub(crate) async fn spawn_node_on(
    database_url: Option<String>,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn_node_with_clock(
        database_url,
        std::sync::Arc::new(quire_actors::clock::SystemClock),
        configure,
    )
    .await
}

/// A request builder factory with fixed credentials.
pub(crate) struct As<'a> {
    app: &'a TestApp,
    credentials: Credentials,
}

enum Credentials {
    Basic { username: String, password: String },
    Bearer(String),
}

macro_rules! verb {
    ($name:ident) => {
        pub(crate) fn $name(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
            let request = self.app.client.$name(url);
            match &self.credentials {
                Credentials::Basic { username, password } => {
                    request.basic_auth(username, Some(password))
                }
                Credentials::Bearer(token) => request.bearer_auth(token),
            }
        }
    };
}

impl As<'_> {
    verb!(get);
    verb!(post);
    verb!(put);
    verb!(delete);
}

impl TestApp {
    /// The node's data directory (its SQLite files and search index).
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn admin(&self) -> As<'_> {
        As {
            app: self,
            credentials: Credentials::Basic {
                username: "admin".into(),
                password: ADMIN_PASSWORD.into(),
            },
        }
    }

    pub(crate) fn as_user(&self, member: &Member) -> As<'_> {
        As {
            app: self,
            credentials: Credentials::Basic {
                username: member.username.clone(),
                password: member.password.clone(),
            },
        }
    }

    /// Requests with `Authorization: Bearer token`.
    pub(crate) fn bearer(&self, token: &str) -> As<'_> {
        As {
            app: self,
            credentials: Credentials::Bearer(token.into()),
        }
    }

    /// Logs in with `POST /auth/token` and returns the bearer token.
    pub(crate) async fn token(&self, username: &str, password: &str) -> String {
        let response = self
            .client
            .post(self.url("/auth/token"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        access_token(response).await
    }

    /// Appends an event no projection can decode to a book stream: the books projection stops
    /// right before it (and reports the error), so the read models never reach its position.
    pub(crate) async fn stall_read_models(&self) -> u64 {
        self.stall_projection_of("book").await
    }

    /// Appends an undecodable event to a new stream of `category` ("book" stalls the books and
    /// reviews projections, "user" the users projection) and returns its position.
    pub(crate) async fn stall_projection_of(&self, category: &str) -> u64 {
        let outcome = self
            .store
            .append(quire_store::AppendRequest {
                stream_id: format!("{category}-{}", uuid::Uuid::now_v7()),
                expected: quire_store::ExpectedVersion::NoStream,
                events: vec![quire_store::NewEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: "BookTeleported".into(),
                    schema_version: 1,
                    payload: json!({}),
                    metadata: quire_store::EventMetadata::default(),
                }],
                command: None,
            })
            .await
            .unwrap();
        match outcome {
            quire_store::AppendOutcome::Appended { last_position, .. } => last_position,
            other => panic!("unexpected {other:?}"),
        }
    }

    pub(crate) async fn head(&self) -> u64 {
        self.store.head().await.unwrap()
    }

    pub(crate) async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Adds a book as the admin and waits until reads show it; returns its id.
    pub(crate) async fn add_book(&self, title: &str) -> String {
        let response = self
            .admin()
            .post(self.url("/books"))
            .json(&json!({"title": title, "author": "Someone"}))
            .send()
            .await
            .unwrap();
        created_id(response).await
    }

    /// Enrols a patron without login as the admin (the seed's `POST /users/ {"name"}`); returns
    /// their id.
    pub(crate) async fn enrol(&self, name: &str) -> String {
        let response = self
            .admin()
            .post(self.url("/users/"))
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        created_id(response).await
    }

    /// The events of `stream`, read straight from the store.
    pub(crate) async fn stream_events(&self, stream: &str) -> Vec<RecordedEvent> {
        quire_store::read_stream_to_end(&*self.store, stream, 0)
            .await
            .unwrap()
    }

    /// Signs a member up and logs them in: the member and their bearer token.
    pub(crate) async fn member_token(&self, username: &str) -> (Member, String) {
        let member = self.signup(username).await;
        let token = self.token(&member.username, &member.password).await;
        (member, token)
    }

    /// Signs a member up.
    pub(crate) async fn signup(&self, username: &str) -> Member {
        let password = format!("{username}-password");
        let response = self
            .client
            .post(self.url("/users"))
            .json(&json!({"name": username, "username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        Member {
            id: body["id"].as_str().unwrap().to_string(),
            username: username.to_string(),
            password,
        }
    }
}

/// The bearer token of a successful `POST /auth/token` answer.
pub(crate) async fn access_token(response: reqwest::Response) -> String {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// The body of an answer that must have `status`.
pub(crate) async fn json_of(response: reqwest::Response, status: StatusCode) -> Value {
    let actual = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(actual, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// `who` follows `whom` (`PUT /users/{id}/following/{followee_id}`) or stops (`DELETE`).
pub(crate) async fn set_following(
    app: &TestApp,
    who: &Member,
    whom: &Member,
    follow: bool,
) -> reqwest::Response {
    let url = app.url(&format!("/users/{}/following/{}", who.id, whom.id));
    let request = if follow {
        app.as_user(who).put(url)
    } else {
        app.as_user(who).delete(url)
    };
    request.send().await.unwrap()
}

/// `who` likes, or rates (`value`), a book through `POST /interactions`; returns the write's
/// Consistency-Token.
pub(crate) async fn interact(
    app: &TestApp,
    who: &Member,
    book: &str,
    action: &str,
    value: Option<u8>,
) -> String {
    let mut body = json!({"book_id": book, "action": action});
    if let Some(v) = value {
        body["value"] = json!(v);
    }
    let response = app
        .as_user(who)
        .post(app.url("/interactions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    header(&response, "consistency-token")
}

/// `who` reviews a book; returns the review's id and the write's Consistency-Token.
pub(crate) async fn review(
    app: &TestApp,
    who: &Member,
    book: &str,
    rating: u8,
    text: &str,
) -> (String, String) {
    let response = app
        .as_user(who)
        .post(app.url(&format!("/books/{book}/reviews")))
        .json(&json!({"rating": rating, "review_text": text}))
        .send()
        .await
        .unwrap();
    let token = header(&response, "consistency-token");
    let body = json_of(response, StatusCode::CREATED).await;
    (body["id"].as_str().unwrap().to_string(), token)
}

/// Opens a Server-Sent Events stream (`Last-Event-ID: last_event_id` if any): a `200` of
/// `text/event-stream`.
pub(crate) async fn open_sse(
    request: reqwest::RequestBuilder,
    last_event_id: Option<u64>,
) -> reqwest::Response {
    let request = match last_event_id {
        Some(id) => request.header("last-event-id", id.to_string()),
        None => request,
    };
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    response
}

/// How many of `events` are of `event_type`.
pub(crate) fn count_of(events: &[RecordedEvent], event_type: &str) -> usize {
    events.iter().filter(|e| e.event_type == event_type).count()
}

/// Waits (at most `within`) until `check` holds, asking again every 50 ms.
pub(crate) async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `id` of a `201 Created` answer.
pub(crate) async fn created_id(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

/// A response header that must be there, as text.
pub(crate) fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
        .to_string()
}

/// Checks an RFC 9457 problem: status, media type, stable code and the standard members; returns
/// it for checks of its own.
pub(crate) async fn assert_problem(
    response: reqwest::Response,
    status: StatusCode,
    code: &str,
) -> Value {
    let actual = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.text().await.unwrap();
    assert_eq!(actual, status, "{body}");
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "{body}"
    );
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["code"], code, "{body}");
    assert_eq!(problem["status"], status.as_u16());
    assert!(
        problem["title"].is_string()
            && problem["detail"].is_string()
            && problem["type"].is_string()
    );
    problem
}

/// `on_backends!(test_a, test_b)`: a `#[tokio::test]` per backend for each `async fn
/// test(backend: Backend)` of the calling module, as `sqlite::test_a`, `postgres::test_a`, ….
macro_rules! on_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
}
pub(crate) use on_backends;

/// [`spawn_app_with`] on a node whose lending commands and deadline scheduler read `clock` (a
/// test moves a [`quire_actors::clock::ManualClock`] instead of waiting days).
pub(crate) async fn spawn_app_with_clock(
    backend: Backend,
    clock: quire_actors::clock::DynClock,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(quire_store::testing::fresh_postgres_database().await),
    };
    spawn_node_with_clock(database_url, clock, configure).await
}

/// [`spawn_node_on`] started by `Application::build_with_clock`.
pub(crate) async fn spawn_node_with_clock(
    database_url: Option<String>,
    clock: quire_actors::clock::DynClock,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_user: Some("admin".into()),
        admin_password: Some(Secret::new(ADMIN_PASSWORD)),
        ..Settings::default()
    };
    settings.database_url = database_url.clone().map(Secret::new);
    settings.api.rate_limit_per_second = 0.0;
    settings.api.token_secret = Some(Secret::new(TOKEN_SECRET));
    settings.summaries.auto = false;
    configure(&mut settings);
    settings.validate().expect("test settings");
    let app = Application::build_with_clock(settings, clock)
        .await
        .expect("starting the node");
    let addr = app.local_addr().expect("the node serves HTTP");
    let store = app.store().clone();
    let read = app.read_models().clone();
    // The node serves until the test's runtime ends.
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        store,
        read,
        database_url,
        admin_id: UserId::for_username(&Username::parse("admin").unwrap()),
        _dir: dir,
    }
}

/// A node on a manual clock whose scheduler looks at the deadlines every 50 ms.
pub(crate) async fn spawn_with_clock(backend: Backend) -> (TestApp, Arc<ManualClock>) {
    let clock = ManualClock::new();
    let app = spawn_app_with_clock(backend, clock.clone(), |s| s.scheduler.tick_ms = 50).await;
    (app, clock)
}

//! `spawn_app`: a real node on 127.0.0.1:0, started by `Application::build` exactly as `quire serve`
//! starts one, with its own SQLite files or Postgres database and an admin, plus a client.

use std::net::SocketAddr;

use quire::Application;
use quire::config::{Secret, Settings};
use quire_domain::ids::UserId;
use quire_domain::values::Username;
use quire_store::DynEventStore;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

pub(crate) const ADMIN_PASSWORD: &str = "admin-password-1";

pub(crate) struct TestApp {
    pub(crate) addr: SocketAddr,
    pub(crate) client: reqwest::Client,
    pub(crate) store: DynEventStore,
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
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_user: Some("admin".into()),
        admin_password: Some(Secret::new(ADMIN_PASSWORD)),
        ..Settings::default()
    };
    if let Backend::Postgres = backend {
        settings.database_url = Some(Secret::new(
            quire_store::testing::fresh_postgres_database().await,
        ));
    }
    settings.api.rate_limit_per_second = 0.0;
    settings.api.token_secret = Some(Secret::new("a test secret that is long enough!"));
    settings.summaries.auto = false;
    configure(&mut settings);
    settings.validate().expect("test settings");
    let app = Application::build(settings)
        .await
        .expect("starting the node");
    let addr = app.local_addr().expect("the node serves HTTP");
    let store = app.store().clone();
    // The node serves until the test's runtime ends.
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        store,
        admin_id: UserId::for_username(&Username::parse("admin").unwrap()),
        _dir: dir,
    }
}

/// A request builder factory with fixed credentials.
pub(crate) struct As<'a> {
    app: &'a TestApp,
    username: String,
    password: String,
}

macro_rules! verb {
    ($name:ident) => {
        pub(crate) fn $name(&self, url: String) -> reqwest::RequestBuilder {
            self.app
                .client
                .$name(url)
                .basic_auth(&self.username, Some(&self.password))
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
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn admin(&self) -> As<'_> {
        As {
            app: self,
            username: "admin".into(),
            password: ADMIN_PASSWORD.into(),
        }
    }

    pub(crate) fn as_user(&self, member: &Member) -> As<'_> {
        As {
            app: self,
            username: member.username.clone(),
            password: member.password.clone(),
        }
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
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
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

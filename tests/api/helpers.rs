//! `spawn_app`: a real server on 127.0.0.1:0 with its own SQLite files or Postgres database, the
//! projections runner, the actors and an admin, plus a client to talk to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quire_actors::{ActorConfig, Command, CommandBus, CommandEnvelope, LocalBus};
use quire_api::{ApiConfig, AppState, Authenticator, RateLimit};
use quire_domain::ids::UserId;
use quire_domain::user::UserCommand;
use quire_domain::values::{PersonName, Username};
use quire_domain::{Principal, Role};
use quire_projections::{ReadModelOptions, ReadModels, RunnerOptions};
use quire_store::{DynEventStore, StoreOptions};
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

pub(crate) async fn spawn_app_with(
    backend: Backend,
    configure: impl FnOnce(&mut ApiConfig),
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let (store_url, read_url) = match backend {
        Backend::Sqlite => (
            dir.path().join("events.db").display().to_string(),
            dir.path().join("read.db").display().to_string(),
        ),
        Backend::Postgres => {
            let url = quire_store::testing::fresh_postgres_database().await;
            (url.clone(), url)
        }
    };
    let store = quire_store::open(&store_url, StoreOptions::default())
        .await
        .unwrap();
    let read = ReadModels::open(&read_url, ReadModelOptions::default())
        .await
        .unwrap();
    // The runner lives as long as the test's runtime.
    std::mem::forget(quire_projections::spawn(
        store.clone(),
        read.clone(),
        RunnerOptions::default(),
    ));
    let bus = Arc::new(LocalBus::new(store.clone(), ActorConfig::default()));

    let username = Username::parse("admin").unwrap();
    let admin_id = UserId::for_username(&username);
    bus.dispatch(CommandEnvelope::new(
        Principal::system(),
        Command::User {
            user_id: admin_id,
            command: UserCommand::Register {
                user_id: admin_id,
                name: PersonName::parse("Admin").unwrap(),
                username: Some(username),
                email: None,
                role: Role::Admin,
                password_hash: Some(
                    quire_api::hash_password(ADMIN_PASSWORD, None)
                        .await
                        .unwrap(),
                ),
            },
        },
    ))
    .await
    .unwrap();

    let mut config = ApiConfig {
        rate_limit: RateLimit {
            per_second: 0.0,
            burst: 1,
        },
        ..ApiConfig::default()
    };
    configure(&mut config);
    let auth = Arc::new(Authenticator::new(
        store.clone(),
        read.clone(),
        b"a test secret that is long enough!",
        Duration::from_secs(600),
    ));
    let state = AppState::new(store.clone(), bus, read, auth, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            quire_api::app(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    TestApp {
        addr,
        client: reqwest::Client::new(),
        store,
        admin_id,
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

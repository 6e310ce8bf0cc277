//! The HTTP API: routes, DTOs, authentication, errors and the OpenAPI document. Writes go through
//! the command bus; reads come from the read models (or, for history and `as_of`, straight from
//! the event store). The crate holds no storage code of its own.

pub mod auth;
pub mod dto;
pub mod error;
pub mod extract;
pub mod live;
pub mod metrics;
mod openapi;
pub mod ratelimit;
mod routes;
mod trace;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use quire_actors::CommandBus;
use quire_actors::clock::{DynClock, SystemClock};
use quire_actors::lending::LendingPolicy;
use quire_projections::ReadModels;
use quire_store::DynEventStore;
use quire_summarize::{Summarizer, SummarizerOptions};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use crate::auth::{Authenticator, hash_password};
use crate::error::ApiError;
pub use crate::openapi::openapi;
pub use crate::ratelimit::{RateLimit, RateLimiter};
/// The default club: public, write-ins allowed, owned by the configured admin, created at node
/// start; the seed paths (`/vote`, `/discussions`, …) act on it and `/clubs/default` names it.
pub const DEFAULT_CLUB: quire_domain::ids::ClubId = quire_domain::ids::ClubId::from_uuid(
    uuid::Uuid::from_u128(0x0c1b_0000_0000_4000_8000_000d_efa0_1c1b),
);

// Served from the read side; re-exported so the binary wires them through the API crate.
pub use quire_projections::recommendations::{Recommender, RecsOptions};

/// Tunables of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The largest request body, in bytes (larger ones get 413).
    pub body_limit: usize,
    /// How long a read that presents a consistency token may wait for the read models.
    pub consistency_timeout: Duration,
    /// How long a write waits for the read models before answering 202 instead of 201/200.
    pub write_wait: Duration,
    /// Per-client request rate.
    pub rate_limit: RateLimit,
    /// Reverse proxies whose `X-Forwarded-For` names the client for rate limiting.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The most characters `POST /generate-summary` accepts.
    pub generate_limit: usize,
    /// Failed password checks an account may have before each further attempt must wait
    /// (exponentially longer); a client address gets a few times more.
    pub login_free_failures: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
            consistency_timeout: Duration::from_secs(5),
            write_wait: Duration::from_secs(5),
            rate_limit: RateLimit::default(),
            trusted_proxies: Vec::new(),
            generate_limit: 2_000_000,
            login_free_failures: auth::DEFAULT_LOGIN_FREE_FAILURES,
        }
    }
}

/// How many of a book's events one `GET /books/{id}?as_of=` may fold. Anyone may ask and a
/// member can grow a book's history by posting and deleting, so the work of one request is
/// bounded; past the bound the answer is 422 `history_too_long` (the history itself is paged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsOfLimits {
    /// For anonymous callers and members.
    pub public: usize,
    /// For admins and the system.
    pub staff: usize,
}

impl Default for AsOfLimits {
    fn default() -> Self {
        // About 20 ms of folding for the public (a 5,000-event fold measured 110 ms), and
        // staff's whole history of any book the import makes.
        Self {
            public: 1_000,
            staff: 100_000,
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: DynEventStore,
    pub bus: Arc<dyn CommandBus>,
    pub read: ReadModels,
    pub auth: Arc<Authenticator>,
    pub config: Arc<ApiConfig>,
    /// Makes summaries for `POST /generate-summary` (extractive unless a model is configured).
    pub summarizer: Arc<Summarizer>,
    /// Serves `GET /recommendations` from the newest trained model.
    pub recommender: Arc<Recommender>,
    /// The most events one `as_of` read folds.
    pub as_of_limits: AsOfLimits,
    /// The time lending commands are stamped with (injectable, so tests can move it).
    pub clock: DynClock,
    /// The circulation rules (`[lending]`).
    pub lending: Arc<LendingPolicy>,
    /// The node's live-update hub (`/clubs/{id}/live`, `/clubs/{id}/events`).
    pub live: live::Hub,
    /// The node's catalogue search index (`/search`); absent, searches answer 503.
    pub search: Option<Arc<quire_search::SearchEngine>>,
    /// Where books' full texts are kept (`/books/{id}/text`); absent, those answer 503.
    pub texts: Option<quire_texts::TextStore>,
    /// The largest text `PUT /books/{id}/text` accepts, in bytes.
    pub text_limit: usize,
    /// Renders the node's metrics for `GET /metrics` (Prometheus text); absent, it answers 404.
    pub metrics: Option<metrics::Render>,
    limiter: Arc<RateLimiter>,
}

impl AppState {
    /// Wires the state; the rate limiter follows `config.rate_limit`, the login throttle of
    /// `auth` `config.login_free_failures`.
    pub fn new(
        store: DynEventStore,
        bus: Arc<dyn CommandBus>,
        read: ReadModels,
        auth: Arc<Authenticator>,
        config: ApiConfig,
    ) -> Self {
        let limiter = Arc::new(RateLimiter::new(config.rate_limit));
        auth.set_login_free_failures(config.login_free_failures);
        let recommender = Arc::new(Recommender::new(read.clone(), RecsOptions::default()));
        let live = live::Hub::new(store.clone());
        Self {
            store,
            bus,
            read,
            auth,
            config: Arc::new(config),
            summarizer: Arc::new(Summarizer::extractive(SummarizerOptions::default())),
            recommender,
            as_of_limits: AsOfLimits::default(),
            clock: Arc::new(SystemClock),
            lending: Arc::new(LendingPolicy::default()),
            live,
            search: None,
            texts: None,
            text_limit: 8_000_000,
            metrics: None,
            limiter,
        }
    }

    /// Stamps lending commands with `clock`'s time.
    pub fn with_clock(mut self, clock: DynClock) -> Self {
        self.clock = clock;
        self
    }

    /// Answers `/search` from `engine` (the node's index).
    pub fn with_search(mut self, engine: Option<Arc<quire_search::SearchEngine>>) -> Self {
        self.search = engine;
        self
    }

    /// Keeps books' full texts in `texts`, refusing texts over `limit` bytes.
    pub fn with_texts(mut self, texts: quire_texts::TextStore, limit: usize) -> Self {
        self.texts = Some(texts);
        self.text_limit = limit;
        self
    }

    /// Serves live updates from `hub` (built with the node's `[live]` limits).
    pub fn with_live(mut self, hub: live::Hub) -> Self {
        self.live = hub;
        self
    }

    /// Lends under `policy`.
    pub fn with_lending_policy(mut self, policy: LendingPolicy) -> Self {
        self.lending = Arc::new(policy);
        self
    }

    /// Folds at most `limits` events per `as_of` read.
    pub fn with_as_of_limits(mut self, limits: AsOfLimits) -> Self {
        self.as_of_limits = limits;
        self
    }

    /// Uses `summarizer` for generated summaries.
    pub fn with_summarizer(mut self, summarizer: Arc<Summarizer>) -> Self {
        self.summarizer = summarizer;
        self
    }

    /// Serves recommendations with `recommender`.
    pub fn with_recommender(mut self, recommender: Arc<Recommender>) -> Self {
        self.recommender = recommender;
        self
    }
}

/// The application's router; tests drive it directly or over a socket. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so rate limits apply per client.
pub fn app(state: AppState) -> Router {
    // Both `/books` and `/books/` (one seed design used trailing slashes).
    let api = Router::new()
        .route("/status", get(routes::status::status))
        .route("/metrics", get(metrics::scrape))
        .route("/search", get(routes::search::search))
        .route("/search/suggest", get(routes::search::suggest))
        .route(
            "/books",
            get(routes::books::list).post(routes::books::create),
        )
        .route(
            "/books/",
            get(routes::books::list).post(routes::books::create),
        )
        .route(
            "/books/{id}",
            get(routes::books::get)
                .put(routes::books::update)
                .patch(routes::books::update)
                .delete(routes::books::delete),
        )
        .route("/books/{id}/history", get(routes::books::history))
        // The text reads its own body, up to `text_limit` bytes, as it streams in.
        .route(
            "/books/{id}/text",
            get(routes::texts::get)
                .put(routes::texts::put)
                .delete(routes::texts::delete),
        )
        .route(
            "/books/{id}/reviews",
            get(routes::reviews::list).post(routes::reviews::create),
        )
        .route(
            "/books/{id}/reviews/{review_id}",
            get(routes::reviews::get)
                .put(routes::reviews::update)
                .patch(routes::reviews::update)
                .delete(routes::reviews::delete),
        )
        .route("/books/{id}/summary", get(routes::reviews::summary))
        .route(
            "/users",
            get(routes::users::list).post(routes::users::create),
        )
        .route(
            "/users/",
            get(routes::users::list).post(routes::users::create),
        )
        .route("/users/me", get(routes::users::me))
        .route(
            "/users/{id}",
            get(routes::users::get).delete(routes::users::deactivate),
        )
        .route("/users/{id}/password", put(routes::users::change_password))
        .route(
            "/users/{id}/sessions/revoke",
            post(routes::users::revoke_sessions),
        )
        .route(
            "/users/{id}/preferences",
            put(routes::users::change_preferences),
        )
        .route("/users/{id}/loans", get(routes::lending::user_loans))
        // The bookstore: prices and stock, orders, bestsellers.
        .route(
            "/books/{id}/stock",
            get(routes::store::get_stock).put(routes::store::set_stock),
        )
        .route("/books/{id}/stock/restock", post(routes::store::restock))
        .route("/books/{id}/price", put(routes::store::set_price))
        .route("/orders", post(routes::store::place_order))
        .route("/orders/{id}", get(routes::store::get_order))
        .route("/orders/{id}/cancel", post(routes::store::cancel_order))
        .route("/users/{id}/orders", get(routes::store::user_orders))
        .route("/bestsellers", get(routes::store::bestsellers))
        // Social: follows, followers and following, activity privacy, the feed.
        .route(
            "/users/{id}/following/{followee_id}",
            put(routes::social::follow).delete(routes::social::unfollow),
        )
        .route("/users/{id}/follow", post(routes::social::follow_post))
        .route("/users/{id}/unfollow", post(routes::social::unfollow_post))
        .route("/users/{id}/followers", get(routes::social::followers))
        .route("/users/{id}/following", get(routes::social::following))
        .route(
            "/users/{id}/privacy",
            get(routes::social::get_privacy).put(routes::social::set_privacy),
        )
        .route("/feed", get(routes::social::feed))
        // The seed paths, with and without the trailing slash.
        .route(
            "/books/{book_id}/borrow/{user_id}",
            post(routes::lending::borrow),
        )
        .route(
            "/books/{book_id}/borrow/{user_id}/",
            post(routes::lending::borrow),
        )
        .route(
            "/books/{book_id}/return/{user_id}",
            post(routes::lending::return_book),
        )
        .route(
            "/books/{book_id}/return/{user_id}/",
            post(routes::lending::return_book),
        )
        .route(
            "/books/{id}/copies",
            get(routes::lending::copies).post(routes::lending::add_copy),
        )
        .route(
            "/books/{id}/copies/{copy_id}",
            delete(routes::lending::withdraw_copy),
        )
        .route(
            "/books/{id}/copies/{copy_id}/lost",
            post(routes::lending::mark_lost),
        )
        .route(
            "/books/{id}/availability",
            get(routes::lending::availability),
        )
        .route("/loans", get(routes::lending::loans))
        .route("/loans/{id}", get(routes::lending::get_loan))
        .route("/loans/{id}/renewal", post(routes::lending::renew))
        .route("/loans/{id}/return", post(routes::lending::return_loan))
        .route(
            "/holds",
            get(routes::lending::holds).post(routes::lending::place_hold),
        )
        .route(
            "/holds/{id}",
            get(routes::lending::get_hold).delete(routes::lending::cancel_hold),
        )
        // The book club: the seed paths on the default club, then clubs, rounds and threads.
        .route("/vote", post(routes::club::vote))
        .route("/vote/status", get(routes::club::vote_status))
        .route("/discussions", get(routes::club::discussions))
        .route("/discussion", post(routes::club::create_discussion))
        .route(
            "/discussions/{thread_id}/reply",
            post(routes::club::reply_to_discussion),
        )
        .route(
            "/clubs",
            get(routes::club::list_clubs).post(routes::club::create_club),
        )
        .route("/clubs/{id}", get(routes::club::get_club))
        .route(
            "/clubs/{id}/members",
            get(routes::club::list_members).post(routes::club::join),
        )
        .route("/clubs/{id}/members/{user_id}", delete(routes::club::leave))
        .route("/clubs/{id}/moderators", post(routes::club::add_moderator))
        .route(
            "/clubs/{id}/moderators/{user_id}",
            delete(routes::club::remove_moderator),
        )
        .route(
            "/clubs/{id}/rounds",
            get(routes::club::list_rounds).post(routes::club::open_round),
        )
        .route(
            "/clubs/{id}/rounds/current",
            get(routes::club::current_round),
        )
        .route(
            "/clubs/{id}/rounds/current/nominations",
            post(routes::club::nominate),
        )
        .route(
            "/clubs/{id}/rounds/current/ballot",
            put(routes::club::cast_ballot),
        )
        .route(
            "/clubs/{id}/rounds/current/close",
            post(routes::club::close_round),
        )
        .route(
            "/clubs/{id}/threads",
            get(routes::club::list_threads).post(routes::club::create_thread),
        )
        .route(
            "/threads/{id}",
            get(routes::club::get_thread)
                .put(routes::club::edit_thread)
                .delete(routes::club::remove_thread),
        )
        .route(
            "/threads/{id}/replies",
            get(routes::club::list_replies).post(routes::club::create_reply),
        )
        .route(
            "/threads/{id}/replies/{reply_id}",
            put(routes::club::edit_reply).delete(routes::club::delete_reply),
        )
        .route("/auth/token", post(routes::auth::token))
        .route("/clubs/{id}/live", get(live::websocket))
        .route("/clubs/{id}/events", get(live::events))
        .route("/feed/live", get(live::feed_websocket))
        .route("/feed/events", get(live::feed_events))
        .route("/interactions", post(routes::recommendations::create))
        .route("/recommendations", get(routes::recommendations::list))
        .route(
            "/generate-summary",
            // Its own body limit: content up to `generate_limit` characters of UTF-8 and JSON.
            post(routes::summaries::generate).layer(DefaultBodyLimit::max(
                state.config.generate_limit.saturating_mul(4) + 4096,
            )),
        )
        // The book club's page for browsers (HTML, script and styles served from the binary).
        .route("/club", get(routes::club_page::index))
        .route("/club/", get(routes::club_page::index))
        .route("/club/club.js", get(routes::club_page::script))
        .route("/club/club.css", get(routes::club_page::style))
        .merge(openapi::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::limit,
        ))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(axum::middleware::from_fn(trace::propagate))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn(metrics::record))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                // Layers of the router run after routing, so the route template is known.
                let route = metrics::route(request);
                let span = tracing::info_span!(
                    "http.request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    route,
                    trace_id = tracing::field::Empty,
                    otel.name = format!("{} {route}", request.method()),
                    otel.kind = "server",
                );
                // The caller's trace, when it sent one.
                quire_store::telemetry::adopt(
                    &span,
                    request
                        .headers()
                        .get("traceparent")
                        .and_then(|v| v.to_str().ok()),
                );
                span
            }),
        );
    api.with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on this endpoint"),
    )
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("handling a request", &"handler panicked").into_response()
}

//! Typed settings: defaults in code, then an optional TOML file, then `QUIRE_*` environment
//! variables, then command-line flags, each a figment layer over the one before. Values out of
//! range are load errors that name their key (nothing is silently clamped). Secrets are wrapped
//! so they never print.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use quire_actors::cluster::Role;
use quire_projections::{RecsOptions, TrainOptions};
use quire_recs::{AlsParams, ItemItemWeighting, Weights};
use serde::{Deserialize, Serialize};

/// Everything Quire can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the embedded backend keeps its files (`events.db`).
    pub data_dir: PathBuf,
    /// A Postgres URL (`postgres://…`) selects the scaled backend; empty means embedded SQLite.
    /// TLS to Postgres is set in the URL (`?sslmode=require`, `verify-full`, `sslrootcert=…`).
    pub database_url: Option<Secret>,
    /// Where the read models live: by default the Postgres database of the events, or
    /// `read.db` in the data directory for the embedded backend.
    pub read_model_url: Option<Secret>,
    /// With `admin_password`, creates this admin at start-up if no such user exists yet
    /// (`QUIRE_ADMIN_USER` / `QUIRE_ADMIN_PASSWORD`).
    pub admin_user: Option<String>,
    pub admin_password: Option<Secret>,
    /// The HTTP listen address.
    pub listen: SocketAddr,
    /// A `tracing` filter, e.g. `info` or `quire=debug,sqlx=warn`.
    pub log: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    pub actors: ActorSettings,
    pub store: StoreSettings,
    pub api: ApiSettings,
    pub tls: TlsSettings,
    /// Connections: timeouts, how many, and how large a request head may be.
    pub http: HttpSettings,
    pub cluster: ClusterSettings,
    pub summaries: SummarySettings,
    /// Recommendations: training schedule, ALS parameters, signal weights.
    pub recs: RecsSettings,
    /// `[lending]`: the circulation rules.
    pub lending: quire_actors::lending::LendingPolicy,
    /// `[scheduler]`: the deadline scheduler.
    pub scheduler: SchedulerSettings,
    /// `[live]`: the live-update hub's per-connection limits.
    pub live: LiveSettings,
    /// `[club]`: the default book club.
    pub club: ClubSettings,
    /// `[search]`: the node's catalogue search index.
    pub search: SearchSettings,
    /// `[texts]`: where books' full texts are kept (outside the event log).
    pub texts: TextSettings,
    /// `[telemetry]`: OpenTelemetry traces and metrics.
    pub telemetry: TelemetrySettings,
    /// How long shutdown waits for in-flight commands.
    pub shutdown_timeout_secs: u64,
}

/// `[telemetry]` settings: where a serving node sends its traces and metrics (ARCHITECTURE.md,
/// "Telemetry"). Nothing leaves the process unless `otlp_endpoint` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// An OpenTelemetry collector's OTLP/HTTP address, such as `http://otel-collector:4318`:
    /// spans go to `<endpoint>/v1/traces`, metrics to `<endpoint>/v1/metrics` (protobuf).
    /// Unset, nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of this node's telemetry (the node id is its `service.instance.id`).
    pub service_name: String,
    /// The share of new traces recorded, 0 to 1. A request that arrives in a trace follows its
    /// caller's decision.
    pub sampling_ratio: f64,
    /// How often spans and metrics are sent to the collector, in milliseconds.
    pub export_interval_ms: u64,
    /// Which spans are exported: a `tracing` filter, separate from `log`.
    pub spans: String,
    /// Serve `GET /metrics` in the Prometheus text format. Unset, a node of a cluster
    /// (`cluster.nats_url`) serves it and an embedded one does not: embedded, telemetry is off
    /// unless asked for.
    pub prometheus: Option<bool>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "quire".into(),
            sampling_ratio: 1.0,
            export_interval_ms: 5_000,
            spans: "info".into(),
            prometheus: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorSettings {
    pub idle_timeout_secs: u64,
    pub idle_check_secs: u64,
    pub max_conflict_retries: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// The largest request body, in bytes.
    pub body_limit_bytes: usize,
    /// How long a read presenting a consistency token waits for the read models.
    pub consistency_timeout_ms: u64,
    /// How long a write waits for the read models before answering 202.
    pub write_wait_ms: u64,
    /// Requests per second per client IP; 0 turns rate limiting off.
    pub rate_limit_per_second: f64,
    pub rate_limit_burst: u32,
    /// Reverse proxies (IP addresses) whose `X-Forwarded-For` identifies the client for rate
    /// limiting; empty means every peer address is a client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Lifetime of bearer tokens.
    pub token_ttl_secs: u64,
    /// Signs bearer tokens; every node of a cluster needs the same one. When unset, a random
    /// secret is kept in `<data_dir>/token-secret`.
    pub token_secret: Option<Secret>,
    /// Failed logins an account may have before each further attempt must wait (1 s, doubling
    /// up to 5 min); a client address gets 4 times as many. Counted per node.
    pub login_free_failures: u32,
    /// Events one `?as_of=` read may fold for the public and members (longer histories: 422
    /// `history_too_long`), and for admins.
    pub as_of_max_events: usize,
    pub as_of_max_events_staff: usize,
}

/// HTTPS: PEM files of the certificate chain and private key; both or neither.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// `[http]`: how connections are accepted and kept, before any request reaches the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// A connection must send a complete request head (and, with TLS, finish its handshake)
    /// within this; a new connection must start its first request within it too.
    pub header_read_timeout_secs: u64,
    /// A connection with no request running (or only requests waiting for a body that does not
    /// come) and no bytes moving for this long is closed. An HTTP/1 connection waiting for its
    /// next request is closed after `header_read_timeout_secs` already, if that is shorter.
    pub idle_timeout_secs: u64,
    /// Open connections at most; more are refused as they are accepted.
    pub max_connections: usize,
    /// Open connections per client address (an IPv6 client: per /64) at most; the API's trusted
    /// proxies have no share of their own, only the global limit.
    pub max_connections_per_ip: usize,
    /// The longest request target (path and query), in bytes; longer ones get 414.
    pub max_uri_bytes: usize,
    /// The largest header section, in bytes; larger ones get 431.
    pub max_header_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 10_000,
            max_connections_per_ip: 256,
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// Running as one node of many: commands travel over NATS to the node holding their entity's
/// partition lease. Without `nats_url` the node runs alone with an in-process command bus.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// NATS server URL(s), comma-separated (`nats://…`, `tls://…`).
    pub nats_url: Option<Secret>,
    /// A NATS `.creds` file (JWT + NKey seed).
    pub nats_credentials: Option<PathBuf>,
    /// PEM CA bundle for the NATS servers' certificates (turns TLS on).
    pub nats_tls_ca: Option<PathBuf>,
    /// PEM client certificate and key for NATS servers that verify clients.
    pub nats_tls_cert: Option<PathBuf>,
    pub nats_tls_key: Option<PathBuf>,
    /// Refuse to talk to NATS without TLS.
    pub nats_require_tls: bool,
    /// Namespace of the cluster's subjects and lease bucket.
    pub name: String,
    /// This node's id (default: host name and process id).
    pub node_id: Option<String>,
    /// What this node does: `api` (HTTP), `actors` (runs commands), `projections` (projections
    /// and workers). A list, or one comma-separated string (`QUIRE_CLUSTER__ROLES=api,actors`).
    #[serde(deserialize_with = "roles_list")]
    pub roles: Vec<Role>,
    /// Command partitions; the same on every node.
    pub partitions: u32,
    /// A lease not renewed for this long moves to another node.
    pub lease_ttl_ms: u64,
    /// How long the API waits for a command's node to answer, retries included.
    pub request_timeout_ms: u64,
    /// JetStream replicas of the lease bucket (3 on a production NATS cluster).
    pub replicas: usize,
}

impl ClusterSettings {
    pub(crate) fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Roles as a list or as one comma-separated string (what an environment variable can hold).
fn roles_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Role>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Roles {
        List(Vec<String>),
        Text(String),
    }
    let items = match Roles::deserialize(deserializer)? {
        Roles::List(items) => items,
        Roles::Text(text) => text.split(',').map(str::to_string).collect(),
    };
    let mut roles = items
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<Role>, String>>()
        .map_err(serde::de::Error::custom)?;
    roles.sort();
    roles.dedup();
    Ok(roles)
}

/// Who writes summaries: `extractive` (no model, the default), `gguf` (a model file run in this
/// process), or a local model server: `openai` (OpenAI-compatible: llama.cpp server, vLLM, Ollama's
/// `/v1`) or `ollama` (Ollama's native API).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummarySettings {
    pub backend: SummaryBackend,
    /// Make the due summaries (new or changed books, reviews that moved) in the background. Off,
    /// summaries come only from editors, `POST /generate-summary` and `quire summarize`.
    pub auto: bool,
    /// The GGUF file (`gguf`).
    pub model_path: Option<PathBuf>,
    /// Threads of the in-process model.
    pub threads: usize,
    /// The server's base URL (`openai`, `ollama`), e.g. `http://127.0.0.1:11434`.
    pub url: Option<String>,
    /// The model name the server knows (`openai`, `ollama`).
    pub model: Option<String>,
    pub api_key: Option<Secret>,
    /// The model's context in tokens (a server's must be told; a GGUF file's is read from it and
    /// capped by this).
    pub context_tokens: Option<usize>,
    /// Requests in flight to the model server at once.
    pub max_concurrency: usize,
    /// The longest one generation may take, retries included.
    pub timeout_secs: u64,
    /// Longest summary, in characters (900: about 150 words, a synopsis).
    pub summary_chars: usize,
    /// Tokens the model may generate per summary.
    pub max_tokens: usize,
    /// Parts a text too long for the model is cut into and summarized one by one before the
    /// synopsis (map-reduce); below 2, one prompt of its most salient sentences instead.
    pub sections: usize,
    /// Tokens of each part's salient sentences the model reads.
    pub section_tokens: usize,
    /// The most characters `POST /generate-summary` accepts (2,000,000: a whole novel; *Moby
    /// Dick* is 1.2 million).
    pub generate_max_chars: usize,
    /// Reviews must be quiet this long before their summary is remade…
    pub debounce_secs: u64,
    /// …unless the last review summary is older than this.
    pub max_wait_secs: u64,
}

/// The kinds of summary backend (`summaries.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SummaryBackend {
    /// TextRank over the text itself: no model.
    Extractive,
    /// A GGUF model file run in this process.
    Gguf,
    /// An OpenAI-compatible server (llama.cpp server, vLLM, Ollama's `/v1`).
    #[value(name = "openai")]
    OpenAi,
    /// Ollama's native API.
    Ollama,
}

impl std::fmt::Display for SummaryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Extractive => "extractive",
            Self::Gguf => "gguf",
            Self::OpenAi => "openai",
            Self::Ollama => "ollama",
        })
    }
}

/// `[search]` settings: the catalogue search index each API node keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSettings {
    /// Where the index lives; by default `<data_dir>/search`. The index is the node's own, fed
    /// from the shared log: a second node on the same data directory uses `search-2`, and so on.
    pub dir: Option<PathBuf>,
}

/// `[texts]` settings: the book text store. Texts are content-addressed by SHA-256; the log records
/// only hash, size and source (see ARCHITECTURE.md, "Book texts").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextSettings {
    /// `s3://bucket/prefix` for S3-compatible object storage, or a directory; by default
    /// `<data_dir>/texts`. Nodes of one deployment must share it.
    pub url: Option<String>,
    /// The S3-compatible service's URL when it is not AWS (MinIO, Ceph, …), e.g.
    /// `http://10.0.0.5:9000`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Allow an `http://` endpoint.
    pub allow_http: bool,
    /// S3 credentials; without them the standard AWS environment variables or the instance
    /// profile are used.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    /// The largest text `PUT /books/{id}/text` accepts, in bytes (8 MB: the longest novels are
    /// 3 to 4 MB of text).
    pub max_bytes: usize,
}

impl Default for TextSettings {
    fn default() -> Self {
        Self {
            url: None,
            endpoint: None,
            region: None,
            allow_http: false,
            access_key_id: None,
            secret_access_key: None,
            max_bytes: 8_000_000,
        }
    }
}

/// `[live]` settings: what one live connection (WebSocket or SSE) may cost the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveSettings {
    /// Messages a connection may have waiting before it counts as fallen behind (it is then sent
    /// `resync` and closed, and resumes from its position).
    pub buffer: usize,
    /// How long one socket write may take before the client counts as gone.
    pub send_timeout_secs: u64,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            buffer: quire_api::live::DEFAULT_BUFFER,
            send_timeout_secs: quire_api::live::DEFAULT_SEND_TIMEOUT.as_secs(),
        }
    }
}

/// `[scheduler]` settings: the deadline scheduler (one per deployment).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    /// The longest sleep between looks at the deadlines (it also wakes at the next one).
    pub tick_ms: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self { tick_ms: 1000 }
    }
}

/// `[club]` settings: the default book club.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClubSettings {
    /// The scheduler opens a voting round for the default club each month (id derived from the
    /// month, nominations until the 21st, voting until the 1st of the next month, UTC).
    pub monthly_rounds: bool,
}

impl Default for ClubSettings {
    fn default() -> Self {
        Self {
            monthly_rounds: true,
        }
    }
}

/// `[recs]` settings: the training schedule, ALS parameters, signal weights, serving.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecsSettings {
    /// Retrain this often (daily by default); 0 trains only on `quire recs train`.
    pub train_interval_secs: u64,
    /// How often API nodes look for a newer model.
    pub refresh_secs: u64,
    /// Training threads.
    pub threads: usize,
    /// The weight of the prior, in ratings, in the Bayesian average of cold start.
    pub prior_weight: f64,
    /// `auto` (the default): the trainer chooses the model and its parameters on a validation
    /// split of the interactions; `fixed`: it trains `als`, `item_item`, `neighbours` and
    /// `als_weight` as configured.
    pub model: RecsModel,
    /// How long `auto` may search (seconds); candidates beyond it are skipped and reported.
    pub selection_budget_secs: u64,
    /// Neighbours kept per book by the item-item half of the model (`auto`: the most it tries).
    pub neighbours: usize,
    /// `fixed`: the ALS share of the blend with item-item (0.3: the best on goodbooks).
    pub als_weight: f32,
    /// `fixed`: the item-item weighting.
    pub item_item: ItemItemWeighting,
    /// ALS parameters (`auto`: the factors, iterations and seed of its search).
    pub als: AlsParams,
    pub weights: Weights,
}

/// How the trainer picks the recommendation model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecsModel {
    Auto,
    Fixed,
}

impl Default for RecsSettings {
    fn default() -> Self {
        Self {
            train_interval_secs: 86_400,
            refresh_secs: 30,
            threads: 2,
            prior_weight: 25.0,
            model: RecsModel::Auto,
            selection_budget_secs: 60,
            neighbours: TrainOptions::default().neighbours,
            als_weight: TrainOptions::default().als_weight,
            item_item: ItemItemWeighting::default(),
            als: AlsParams::default(),
            weights: Weights::default(),
        }
    }
}

impl RecsSettings {
    pub fn training(&self) -> TrainOptions {
        TrainOptions {
            weights: self.weights.clone(),
            als: self.als.clone(),
            item_item: self.item_item,
            neighbours: self.neighbours,
            als_weight: self.als_weight,
            popularity_weight: 0.0,
            selection_budget: (self.model == RecsModel::Auto)
                .then(|| Duration::from_secs(self.selection_budget_secs)),
            threads: self.threads,
        }
    }

    pub fn serving(&self) -> RecsOptions {
        RecsOptions {
            refresh: Duration::from_secs(self.refresh_secs),
            prior_weight: self.prior_weight,
            weights: self.weights.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub max_batch: usize,
    pub read_connections: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("quire-data"),
            database_url: None,
            read_model_url: None,
            admin_user: None,
            admin_password: None,
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            log: "info".into(),
            log_format: LogFormat::Text,
            actors: ActorSettings {
                idle_timeout_secs: 300,
                idle_check_secs: 30,
                max_conflict_retries: 5,
            },
            store: StoreSettings {
                max_batch: 512,
                read_connections: 8,
            },
            api: ApiSettings {
                body_limit_bytes: 64 * 1024,
                consistency_timeout_ms: 5_000,
                write_wait_ms: 5_000,
                rate_limit_per_second: 200.0,
                rate_limit_burst: 400,
                trusted_proxies: Vec::new(),
                token_ttl_secs: 3_600,
                token_secret: None,
                login_free_failures: quire_api::auth::DEFAULT_LOGIN_FREE_FAILURES,
                as_of_max_events: quire_api::AsOfLimits::default().public,
                as_of_max_events_staff: quire_api::AsOfLimits::default().staff,
            },
            tls: TlsSettings::default(),
            http: HttpSettings::default(),
            cluster: ClusterSettings {
                nats_url: None,
                nats_credentials: None,
                nats_tls_ca: None,
                nats_tls_cert: None,
                nats_tls_key: None,
                nats_require_tls: false,
                name: "quire".into(),
                node_id: None,
                roles: Role::ALL.to_vec(),
                partitions: 32,
                lease_ttl_ms: 4_000,
                request_timeout_ms: 10_000,
                replicas: 1,
            },
            summaries: SummarySettings {
                backend: SummaryBackend::Extractive,
                auto: true,
                model_path: None,
                threads: 2,
                url: None,
                model: None,
                api_key: None,
                context_tokens: None,
                max_concurrency: 2,
                timeout_secs: 600,
                summary_chars: 900,
                max_tokens: 256,
                sections: 6,
                section_tokens: 480,
                generate_max_chars: 2_000_000,
                debounce_secs: 30,
                max_wait_secs: 600,
            },
            recs: RecsSettings::default(),
            lending: quire_actors::lending::LendingPolicy::default(),
            scheduler: SchedulerSettings::default(),
            live: LiveSettings::default(),
            telemetry: TelemetrySettings::default(),
            club: ClubSettings::default(),
            search: SearchSettings::default(),
            texts: TextSettings::default(),
            shutdown_timeout_secs: 10,
        }
    }
}

/// Flags that override the file and environment: the last figment layer. Only the flags given
/// are serialized, so an absent flag leaves the layers below it alone.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    pub tls: TlsOverrides,
    pub cluster: ClusterOverrides,
}

/// `--tls-cert`, `--tls-key`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TlsOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// The cluster flags, named as their `[cluster]` keys.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ClusterOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_credentials: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_tls_ca: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_tls_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Settings {
    /// Loads settings from defaults, `file` (or `quire.toml` in the working directory if it exists),
    /// the environment, then `overrides`, and checks them.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(
                    path.exists(),
                    "config file {} does not exist",
                    path.display()
                );
                figment = figment.merge(Toml::file(path));
            }
            None if Path::new("quire.toml").exists() => {
                figment = figment.merge(Toml::file("quire.toml"));
            }
            None => {}
        }
        let mut settings: Settings = figment
            .merge(
                Env::prefixed("QUIRE_")
                    .ignore(&["CONFIG"])
                    // Test and benchmark knobs share the prefix but are not settings.
                    .filter(|key| {
                        let key = key.as_str().to_ascii_lowercase();
                        !key.starts_with("test_") && !key.starts_with("bench_")
                    })
                    .split("__"),
            )
            .merge(Serialized::defaults(overrides))
            .extract()
            .context("reading configuration")?;
        // An empty URL (e.g. `QUIRE_DATABASE_URL=`) means "not set".
        let blank = |s: &Option<Secret>| s.as_ref().is_some_and(|u| u.expose().trim().is_empty());
        if blank(&settings.database_url) {
            settings.database_url = None;
        }
        if blank(&settings.read_model_url) {
            settings.read_model_url = None;
        }
        if blank(&settings.cluster.nats_url) {
            settings.cluster.nats_url = None;
        }
        if settings
            .telemetry
            .otlp_endpoint
            .as_ref()
            .is_some_and(|u| u.trim().is_empty())
        {
            settings.telemetry.otlp_endpoint = None;
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every setting, reporting all that are wrong at once, each by its key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut errors = Vec::new();
        let mut need = |ok: bool, message: String| {
            if !ok {
                errors.push(message);
            }
        };
        let at_least = |key: &str, value: u64, min: u64| {
            (
                value >= min,
                format!("{key} must be at least {min} (it is {value})"),
            )
        };
        for (ok, message) in [
            at_least(
                "api.body_limit_bytes",
                self.api.body_limit_bytes as u64,
                1024,
            ),
            at_least("api.token_ttl_secs", self.api.token_ttl_secs, 60),
            at_least("api.as_of_max_events", self.api.as_of_max_events as u64, 1),
            at_least(
                "api.as_of_max_events_staff",
                self.api.as_of_max_events_staff as u64,
                1,
            ),
            at_least(
                "api.login_free_failures",
                u64::from(self.api.login_free_failures),
                1,
            ),
            at_least(
                "http.header_read_timeout_secs",
                self.http.header_read_timeout_secs,
                1,
            ),
            at_least("http.idle_timeout_secs", self.http.idle_timeout_secs, 1),
            at_least("http.max_connections", self.http.max_connections as u64, 1),
            at_least(
                "http.max_connections_per_ip",
                self.http.max_connections_per_ip as u64,
                1,
            ),
            at_least("http.max_uri_bytes", self.http.max_uri_bytes as u64, 256),
            at_least(
                "http.max_header_bytes",
                self.http.max_header_bytes as u64,
                1024,
            ),
            at_least("store.max_batch", self.store.max_batch as u64, 1),
            at_least("texts.max_bytes", self.texts.max_bytes as u64, 1),
            at_least(
                "store.read_connections",
                u64::from(self.store.read_connections),
                1,
            ),
            at_least("actors.idle_check_secs", self.actors.idle_check_secs, 1),
            at_least(
                "cluster.request_timeout_ms",
                self.cluster.request_timeout_ms,
                100,
            ),
            at_least("cluster.lease_ttl_ms", self.cluster.lease_ttl_ms, 1000),
            at_least("cluster.replicas", self.cluster.replicas as u64, 1),
            at_least("cluster.partitions", u64::from(self.cluster.partitions), 1),
            at_least(
                "summaries.summary_chars",
                self.summaries.summary_chars as u64,
                100,
            ),
            at_least("summaries.max_tokens", self.summaries.max_tokens as u64, 16),
            at_least("summaries.threads", self.summaries.threads as u64, 1),
            at_least(
                "summaries.section_tokens",
                self.summaries.section_tokens as u64,
                64,
            ),
            at_least(
                "summaries.max_concurrency",
                self.summaries.max_concurrency as u64,
                1,
            ),
            at_least("summaries.timeout_secs", self.summaries.timeout_secs, 1),
            at_least(
                "summaries.generate_max_chars",
                self.summaries.generate_max_chars as u64,
                1,
            ),
            at_least("summaries.max_wait_secs", self.summaries.max_wait_secs, 1),
            at_least("recs.refresh_secs", self.recs.refresh_secs, 1),
            at_least("recs.threads", self.recs.threads as u64, 1),
            at_least("recs.neighbours", self.recs.neighbours as u64, 1),
            at_least(
                "recs.selection_budget_secs",
                self.recs.selection_budget_secs,
                1,
            ),
            at_least("lending.loan_days", u64::from(self.lending.loan_days), 1),
            at_least("lending.max_loans", u64::from(self.lending.max_loans), 1),
            at_least(
                "lending.pickup_days",
                u64::from(self.lending.pickup_days),
                1,
            ),
            at_least(
                "lending.resume_after_secs",
                self.lending.resume_after_secs,
                1,
            ),
            at_least("scheduler.tick_ms", self.scheduler.tick_ms, 10),
            at_least("live.buffer", self.live.buffer as u64, 1),
            at_least("live.send_timeout_secs", self.live.send_timeout_secs, 1),
        ] {
            need(ok, message);
        }
        let telemetry = &self.telemetry;
        need(
            (0.0..=1.0).contains(&telemetry.sampling_ratio),
            format!(
                "telemetry.sampling_ratio must be between 0 and 1 (it is {})",
                telemetry.sampling_ratio
            ),
        );
        need(
            telemetry.export_interval_ms >= 100,
            format!(
                "telemetry.export_interval_ms must be at least 100 (it is {})",
                telemetry.export_interval_ms
            ),
        );
        need(
            !telemetry.service_name.trim().is_empty(),
            "telemetry.service_name must not be empty".to_string(),
        );
        need(
            tracing_subscriber::EnvFilter::try_new(&telemetry.spans).is_ok(),
            format!(
                "telemetry.spans is not a tracing filter: {:?}",
                telemetry.spans
            ),
        );
        if let Some(endpoint) = &telemetry.otlp_endpoint {
            let ok = url::Url::parse(endpoint)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            need(
                ok,
                format!(
                    "telemetry.otlp_endpoint must be an http:// or https:// URL (it is {endpoint:?})"
                ),
            );
        }
        need(
            self.lending.implicit_copies <= 1000,
            format!(
                "lending.implicit_copies must be at most 1000 (it is {})",
                self.lending.implicit_copies
            ),
        );
        need(
            self.lending.renew_days_before_due != Some(0),
            "lending.renew_days_before_due must be at least 1 when set (at the due date a loan is overdue)"
                .to_string(),
        );
        need(
            self.lending.max_renewals == 0 || self.lending.renewal_days >= 1,
            "lending.renewal_days must be at least 1 when renewals are allowed".to_string(),
        );
        // hyper refuses longer targets itself, before the API's limit could apply.
        need(
            self.http.max_uri_bytes <= 65_534,
            format!(
                "http.max_uri_bytes must be at most 65534 (it is {})",
                self.http.max_uri_bytes
            ),
        );
        need(
            self.http.max_header_bytes <= 1024 * 1024,
            format!(
                "http.max_header_bytes must be at most 1048576 (it is {})",
                self.http.max_header_bytes
            ),
        );
        need(
            self.http.max_connections_per_ip <= self.http.max_connections,
            format!(
                "http.max_connections_per_ip must be at most http.max_connections ({} > {})",
                self.http.max_connections_per_ip, self.http.max_connections
            ),
        );
        need(
            self.cluster.partitions <= 4096,
            format!(
                "cluster.partitions must be at most 4096 (it is {})",
                self.cluster.partitions
            ),
        );
        need(
            self.api.rate_limit_per_second.is_finite() && self.api.rate_limit_per_second >= 0.0,
            format!(
                "api.rate_limit_per_second must be 0 (off) or more (it is {})",
                self.api.rate_limit_per_second
            ),
        );
        need(
            self.api.rate_limit_per_second == 0.0 || self.api.rate_limit_burst >= 1,
            "api.rate_limit_burst must be at least 1 when rate limiting is on".into(),
        );
        need(
            (0.0..=1.0).contains(&self.recs.als_weight),
            format!(
                "recs.als_weight must be between 0 and 1 (it is {})",
                self.recs.als_weight
            ),
        );
        need(
            self.recs.prior_weight.is_finite() && self.recs.prior_weight >= 0.0,
            format!(
                "recs.prior_weight must be 0 or more (it is {})",
                self.recs.prior_weight
            ),
        );
        if let Some(secret) = &self.api.token_secret {
            need(
                secret.expose().len() >= 32,
                "api.token_secret must be at least 32 characters".into(),
            );
        }
        let roles = &self.cluster.roles;
        need(
            !roles.is_empty(),
            "cluster.roles: a node needs at least one role".into(),
        );
        need(
            self.cluster.nats_url.is_some() || roles.len() == Role::ALL.len(),
            format!(
                "cluster.roles: a node with only some roles ({}) needs the others elsewhere: set --nats-url",
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        );
        need(
            self.tls.cert.is_some() == self.tls.key.is_some(),
            "TLS needs both a certificate and a key (--tls-cert and --tls-key)".into(),
        );
        match (&self.admin_user, &self.admin_password) {
            (Some(user), Some(password)) => {
                if let Err(error) = quire_domain::values::Username::parse_stored(user.clone()) {
                    errors.push(format!(
                        "admin_user (QUIRE_ADMIN_USER) is not a valid username: {error}"
                    ));
                }
                if let Err(message) = quire_api::auth::check_password_policy(password.expose()) {
                    errors.push(format!("admin_password (QUIRE_ADMIN_PASSWORD) {message}"));
                }
            }
            (None, None) => {}
            _ => errors.push("QUIRE_ADMIN_USER and QUIRE_ADMIN_PASSWORD go together".into()),
        }
        for (key, url) in [
            ("database_url", &self.database_url),
            ("read_model_url", &self.read_model_url),
        ] {
            if let Some(url) = url
                && let Err(message) = check_database_url(url.expose())
            {
                errors.push(format!("{key}: {message}"));
            }
        }
        let s = &self.summaries;
        match s.backend {
            SummaryBackend::OpenAi | SummaryBackend::Ollama => {
                if s.url.is_none() {
                    errors.push(format!(
                        "summaries.backend = \"{}\" needs summaries.url",
                        s.backend
                    ));
                }
                if s.model.is_none() {
                    errors.push(format!(
                        "summaries.backend = \"{}\" needs summaries.model",
                        s.backend
                    ));
                }
            }
            SummaryBackend::Gguf if s.model_path.is_none() => {
                errors.push("summaries.backend = \"gguf\" needs summaries.model_path".into());
            }
            _ => {}
        }
        match errors.len() {
            0 => Ok(()),
            1 => anyhow::bail!("configuration: {}", errors[0]),
            _ => anyhow::bail!("configuration:\n  - {}", errors.join("\n  - ")),
        }
    }

    /// Makes the data directory private to this user (0700) and everything this process creates
    /// from now on private too (umask 077, as database servers do): the log and the read models
    /// hold password hashes and members' data. Databases and their `-wal`/`-shm` files that exist
    /// with wider modes are tightened to 0600. Nothing else is created.
    pub(crate) fn prepare_data_dir(&self) -> anyhow::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
            let dir = &self.data_dir;
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let private = |path: &Path, mode: u32| {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("making {} private", path.display()))
            };
            private(dir, 0o700)?;
            for name in ["events.db", "read.db", "token-secret"] {
                for suffix in ["", "-wal", "-shm"] {
                    let path = dir.join(format!("{name}{suffix}"));
                    if path.exists() {
                        private(&path, 0o600)?;
                    }
                }
            }
        }
        #[cfg(not(unix))]
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating {}", self.data_dir.display()))?;
        Ok(())
    }

    /// The event store URL: the database URL, or the SQLite file in the data directory.
    pub(crate) fn store_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_string(),
            None => self.data_dir.join("events.db").display().to_string(),
        }
    }

    /// The read-model URL: explicit, else the events' Postgres database, else `read.db`.
    pub(crate) fn read_model_url(&self) -> String {
        match (&self.read_model_url, &self.database_url) {
            (Some(url), _) if !url.expose().trim().is_empty() => url.expose().to_string(),
            (_, Some(url)) => url.expose().to_string(),
            _ => self.data_dir.join("read.db").display().to_string(),
        }
    }

    /// Opens the book text store `[texts]` names: S3-compatible for an `s3://` URL, else a
    /// directory (by default `<data_dir>/texts`).
    pub(crate) fn text_store(&self) -> anyhow::Result<quire_texts::TextStore> {
        use quire_texts::{S3Location, TextStore};
        let t = &self.texts;
        let url = t.url.as_deref().map(str::trim).filter(|u| !u.is_empty());
        let store = match url {
            Some(url) if url.starts_with("s3://") => {
                let rest = &url["s3://".len()..];
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                TextStore::s3(&S3Location {
                    bucket: bucket.to_owned(),
                    prefix: prefix.to_owned(),
                    endpoint: t.endpoint.clone(),
                    region: t.region.clone(),
                    allow_http: t.allow_http,
                    access_key_id: t.access_key_id.clone(),
                    secret_access_key: t.secret_access_key.as_ref().map(|s| s.expose().to_owned()),
                })?
            }
            Some(dir) => TextStore::local(dir.strip_prefix("file://").unwrap_or(dir))?,
            None => TextStore::local(self.data_dir.join("texts"))?,
        };
        Ok(store)
    }

    /// The directory of this node's search index.
    pub(crate) fn search_dir(&self) -> PathBuf {
        self.search
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("search"))
    }

    pub(crate) fn scheduler_options(&self) -> crate::scheduler::SchedulerOptions {
        crate::scheduler::SchedulerOptions {
            tick: Duration::from_millis(self.scheduler.tick_ms),
        }
    }

    pub(crate) fn as_of_limits(&self) -> quire_api::AsOfLimits {
        quire_api::AsOfLimits {
            public: self.api.as_of_max_events,
            staff: self.api.as_of_max_events_staff,
        }
    }

    pub(crate) fn api_config(&self) -> quire_api::ApiConfig {
        quire_api::ApiConfig {
            body_limit: self.api.body_limit_bytes,
            consistency_timeout: Duration::from_millis(self.api.consistency_timeout_ms),
            write_wait: Duration::from_millis(self.api.write_wait_ms),
            rate_limit: quire_api::RateLimit {
                per_second: self.api.rate_limit_per_second,
                burst: self.api.rate_limit_burst,
            },
            trusted_proxies: self.api.trusted_proxies.clone(),
            generate_limit: self.summaries.generate_max_chars,
            login_free_failures: self.api.login_free_failures,
        }
    }

    pub(crate) fn store_options(&self, read_only: bool) -> quire_store::StoreOptions {
        quire_store::StoreOptions {
            max_batch: self.store.max_batch,
            read_connections: self.store.read_connections,
            read_only,
        }
    }

    /// The cluster this node joins, when NATS is configured.
    pub(crate) fn cluster_config(
        &self,
    ) -> Option<(
        quire_actors::cluster::NatsOptions,
        quire_actors::cluster::ClusterConfig,
    )> {
        let c = &self.cluster;
        let url = c.nats_url.as_ref()?;
        let nats = quire_actors::cluster::NatsOptions {
            url: url.expose().to_string(),
            credentials_file: c.nats_credentials.clone(),
            tls_ca: c.nats_tls_ca.clone(),
            tls_cert: c.nats_tls_cert.clone(),
            tls_key: c.nats_tls_key.clone(),
            require_tls: c.nats_require_tls,
        };
        let node_id = self.node_id();
        let mut config = quire_actors::cluster::ClusterConfig::new(c.name.clone(), node_id);
        config.partitions = c.partitions;
        config.lease_ttl = Duration::from_millis(c.lease_ttl_ms);
        config.request_timeout = Duration::from_millis(c.request_timeout_ms);
        config.replicas = c.replicas;
        Some((nats, config))
    }

    pub(crate) fn job_options(&self) -> crate::summary_jobs::JobOptions {
        crate::summary_jobs::JobOptions {
            debounce: Duration::from_secs(self.summaries.debounce_secs),
            max_wait: Duration::from_secs(self.summaries.max_wait_secs),
            ..crate::summary_jobs::JobOptions::default()
        }
    }

    pub(crate) fn actor_config(&self) -> quire_actors::ActorConfig {
        quire_actors::ActorConfig {
            idle_timeout: Duration::from_secs(self.actors.idle_timeout_secs),
            idle_check: Duration::from_secs(self.actors.idle_check_secs),
            max_conflict_retries: self.actors.max_conflict_retries,
        }
    }

    /// The settings as TOML with secrets redacted, for `quire config`.
    pub(crate) fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(&self.redacted()).expect("settings serialize as TOML")
    }

    /// The settings as JSON with secrets redacted.
    pub(crate) fn to_redacted_json(&self) -> serde_json::Value {
        serde_json::to_value(self.redacted()).expect("settings serialize")
    }

    fn redacted(&self) -> Settings {
        let mut s = self.clone();
        s.database_url = s.database_url.map(|u| Secret(redact_url(u.expose())));
        s.read_model_url = s.read_model_url.map(|u| Secret(redact_url(u.expose())));
        let hidden = || Secret("redacted".into());
        s.admin_password = s.admin_password.map(|_| hidden());
        s.api.token_secret = s.api.token_secret.map(|_| hidden());
        s.summaries.api_key = s.summaries.api_key.map(|_| hidden());
        s.texts.secret_access_key = s.texts.secret_access_key.map(|_| hidden());
        s.cluster.nats_url = s
            .cluster
            .nats_url
            .map(|u| Secret(quire_actors::cluster::redact(u.expose())));
        s
    }
}

impl Settings {
    /// Whether this node serves `GET /metrics` (`telemetry.prometheus`).
    pub(crate) fn serves_metrics(&self) -> bool {
        self.telemetry
            .prometheus
            .unwrap_or(self.cluster.nats_url.is_some())
    }

    /// This node's id: `cluster.node_id`, or one made of the host name and process id.
    pub(crate) fn node_id(&self) -> String {
        self.cluster.node_id.clone().unwrap_or_else(default_node_id)
    }
}

/// The host name and process id, reduced to the characters subjects allow.
fn default_node_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_else(|| "node".into());
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("{host}-{}", std::process::id())
}

/// A secret string: `Debug` never shows it.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Checks that a database setting is a URL Quire speaks. A typo (`postgress://`), another
/// database (`mysql://`) or libpq's `host=… password=…` form would otherwise be taken for a SQLite
/// file name and the node would start on an empty store; the message never repeats the value,
/// which may hold a password.
fn check_database_url(url: &str) -> Result<(), String> {
    const SPOKEN: &str = "postgres://, postgresql://, sqlite://PATH (or kurrentdb://)";
    let url = url.trim();
    if let Some((scheme, _)) = url.split_once("://") {
        return match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "sqlite" | "kurrentdb" | "esdb" => Ok(()),
            other => Err(format!(
                "unsupported scheme \"{other}://\"; Quire speaks {SPOKEN}"
            )),
        };
    }
    if url.contains('=') {
        return Err(format!(
            "looks like a libpq key=value string; give a URL instead ({SPOKEN}), \
             e.g. postgres://user:password@host:5432/db?sslmode=require"
        ));
    }
    Err(format!(
        "not a URL; Quire speaks {SPOKEN} (for the embedded backend, set data_dir instead)"
    ))
}

/// Connection strings for logs and `quire config`: the store's one redaction.
pub(crate) use quire_store::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let s = Secret("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn the_redacted_config_hides_the_database_password() {
        let mut settings = Settings {
            database_url: Some(Secret("postgres://u:hunter2@h/d".into())),
            admin_user: Some("root".into()),
            admin_password: Some(Secret("hunter2".into())),
            ..Settings::default()
        };
        settings.api.token_secret = Some(Secret("hunter2".into()));
        settings.cluster.nats_url = Some(Secret("nats://quire:hunter2@nats:4222".into()));
        assert!(!settings.to_redacted_toml().contains("hunter2"));
        assert!(!settings.to_redacted_json().to_string().contains("hunter2"));
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}

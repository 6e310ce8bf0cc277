//! Typed settings: defaults in code, then an optional TOML file, then `QUIRE_*` environment
//! variables, then command-line flags. Secrets are wrapped so they never print.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything Quire can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
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
    pub cluster: ClusterSettings,
    pub summaries: SummarySettings,
    /// Recommendations: training schedule, ALS parameters, signal weights.
    pub recs: crate::recs::RecsSettings,
    /// How long shutdown waits for in-flight commands.
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActorSettings {
    pub idle_timeout_secs: u64,
    pub idle_check_secs: u64,
    pub max_conflict_retries: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiSettings {
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
}

/// HTTPS: PEM files of the certificate chain and private key; both or neither.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSettings {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Running as one node of many: commands travel over NATS to the node holding their entity's
/// partition lease. Without `nats_url` the node runs alone with an in-process command bus.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterSettings {
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
    /// What this node does: `api` (HTTP), `actors` (runs commands), `projections`.
    pub roles: Vec<String>,
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
    pub(crate) const ROLES: [&'static str; 3] = ["api", "actors", "projections"];

    pub(crate) fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Who writes summaries: `extractive` (no model, the default), `gguf` (a model file run in this
/// process), or a local model server: `openai` (OpenAI-compatible: llama.cpp server, vLLM, Ollama's
/// `/v1`) or `ollama` (Ollama's native API).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SummarySettings {
    pub backend: String,
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
    /// Longest summary, in characters.
    pub summary_chars: usize,
    /// Tokens the model may generate per summary.
    pub max_tokens: usize,
    /// The most characters `POST /generate-summary` accepts.
    pub generate_max_chars: usize,
    /// Reviews must be quiet this long before their summary is remade…
    pub debounce_secs: u64,
    /// …unless the last review summary is older than this.
    pub max_wait_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreSettings {
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
            },
            tls: TlsSettings::default(),
            cluster: ClusterSettings {
                nats_url: None,
                nats_credentials: None,
                nats_tls_ca: None,
                nats_tls_cert: None,
                nats_tls_key: None,
                nats_require_tls: false,
                name: "quire".into(),
                node_id: None,
                roles: ClusterSettings::ROLES.map(String::from).to_vec(),
                partitions: 32,
                lease_ttl_ms: 4_000,
                request_timeout_ms: 10_000,
                replicas: 1,
            },
            summaries: SummarySettings {
                backend: "extractive".into(),
                model_path: None,
                threads: 2,
                url: None,
                model: None,
                api_key: None,
                context_tokens: None,
                max_concurrency: 2,
                timeout_secs: 600,
                summary_chars: 1_200,
                max_tokens: 256,
                generate_max_chars: 100_000,
                debounce_secs: 30,
                max_wait_secs: 600,
            },
            recs: crate::recs::RecsSettings::default(),
            shutdown_timeout_secs: 10,
        }
    }
}

/// Flags that override the file and environment.
#[derive(Debug, Default, Clone)]
pub(crate) struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub nats_url: Option<String>,
    pub nats_credentials: Option<PathBuf>,
    pub nats_tls_ca: Option<PathBuf>,
    pub nats_tls_cert: Option<PathBuf>,
    pub nats_tls_key: Option<PathBuf>,
    pub roles: Option<Vec<String>>,
    pub node_id: Option<String>,
    pub cluster: Option<String>,
}

impl Settings {
    /// Loads settings from defaults, `file` (or `quire.toml` in the working directory if it exists),
    /// the environment, then `overrides`.
    pub(crate) fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
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
            .extract()
            .context("reading configuration")?;
        if let Some(dir) = &overrides.data_dir {
            settings.data_dir = dir.clone();
        }
        if let Some(url) = &overrides.database_url {
            settings.database_url = Some(Secret(url.clone()));
        }
        if let Some(listen) = overrides.listen {
            settings.listen = listen;
        }
        if let Some(cert) = &overrides.tls_cert {
            settings.tls.cert = Some(cert.clone());
        }
        if let Some(key) = &overrides.tls_key {
            settings.tls.key = Some(key.clone());
        }
        let cluster = &mut settings.cluster;
        if let Some(url) = &overrides.nats_url {
            cluster.nats_url = Some(Secret(url.clone()));
        }
        if let Some(path) = &overrides.nats_credentials {
            cluster.nats_credentials = Some(path.clone());
        }
        if let Some(path) = &overrides.nats_tls_ca {
            cluster.nats_tls_ca = Some(path.clone());
        }
        if let Some(path) = &overrides.nats_tls_cert {
            cluster.nats_tls_cert = Some(path.clone());
        }
        if let Some(path) = &overrides.nats_tls_key {
            cluster.nats_tls_key = Some(path.clone());
        }
        if let Some(roles) = &overrides.roles {
            cluster.roles = roles.clone();
        }
        if let Some(id) = &overrides.node_id {
            cluster.node_id = Some(id.clone());
        }
        if let Some(name) = &overrides.cluster {
            cluster.name = name.clone();
        }
        if cluster
            .nats_url
            .as_ref()
            .is_some_and(|u| u.expose().trim().is_empty())
        {
            cluster.nats_url = None;
        }
        cluster.roles = cluster
            .roles
            .iter()
            .map(|r| r.trim().to_ascii_lowercase())
            .filter(|r| !r.is_empty())
            .collect();
        cluster.roles.sort();
        cluster.roles.dedup();
        for role in &cluster.roles {
            anyhow::ensure!(
                ClusterSettings::ROLES.contains(&role.as_str()),
                "unknown role {role:?}; the roles are {}",
                ClusterSettings::ROLES.join(", ")
            );
        }
        anyhow::ensure!(!cluster.roles.is_empty(), "a node needs at least one role");
        anyhow::ensure!(
            cluster.nats_url.is_some() || cluster.roles.len() == ClusterSettings::ROLES.len(),
            "a node with only some roles ({}) needs the others elsewhere: set --nats-url",
            cluster.roles.join(",")
        );
        anyhow::ensure!(
            settings.tls.cert.is_some() == settings.tls.key.is_some(),
            "TLS needs both a certificate and a key (--tls-cert and --tls-key)"
        );
        anyhow::ensure!(
            settings.admin_user.is_some() == settings.admin_password.is_some(),
            "QUIRE_ADMIN_USER and QUIRE_ADMIN_PASSWORD go together"
        );
        if settings
            .database_url
            .as_ref()
            .is_some_and(|u| u.expose().trim().is_empty())
        {
            settings.database_url = None;
        }
        Ok(settings)
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

    pub(crate) fn api_config(&self) -> quire_api::ApiConfig {
        quire_api::ApiConfig {
            body_limit: self.api.body_limit_bytes.max(1024),
            consistency_timeout: Duration::from_millis(self.api.consistency_timeout_ms),
            write_wait: Duration::from_millis(self.api.write_wait_ms),
            rate_limit: quire_api::RateLimit {
                per_second: self.api.rate_limit_per_second,
                burst: self.api.rate_limit_burst,
            },
            trusted_proxies: self.api.trusted_proxies.clone(),
            generate_limit: self.summaries.generate_max_chars.max(1),
        }
    }

    pub(crate) fn store_options(&self, read_only: bool) -> quire_store::StoreOptions {
        quire_store::StoreOptions {
            max_batch: self.store.max_batch.max(1),
            read_connections: self.store.read_connections.max(1),
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
        let node_id = c.node_id.clone().unwrap_or_else(default_node_id);
        let mut config = quire_actors::cluster::ClusterConfig::new(c.name.clone(), node_id);
        config.partitions = c.partitions;
        config.lease_ttl = Duration::from_millis(c.lease_ttl_ms);
        config.request_timeout = Duration::from_millis(c.request_timeout_ms.max(100));
        config.replicas = c.replicas.max(1);
        Some((nats, config))
    }

    pub(crate) fn job_options(&self) -> crate::summary_jobs::JobOptions {
        crate::summary_jobs::JobOptions {
            debounce: Duration::from_secs(self.summaries.debounce_secs),
            max_wait: Duration::from_secs(self.summaries.max_wait_secs.max(1)),
            ..crate::summary_jobs::JobOptions::default()
        }
    }

    pub(crate) fn actor_config(&self) -> quire_actors::ActorConfig {
        quire_actors::ActorConfig {
            idle_timeout: Duration::from_secs(self.actors.idle_timeout_secs),
            idle_check: Duration::from_secs(self.actors.idle_check_secs.max(1)),
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
        let hidden = || Secret("<redacted>".into());
        s.admin_password = s.admin_password.map(|_| hidden());
        s.api.token_secret = s.api.token_secret.map(|_| hidden());
        s.summaries.api_key = s.summaries.api_key.map(|_| hidden());
        s.cluster.nats_url = s
            .cluster
            .nats_url
            .map(|u| Secret(quire_actors::cluster::redact(u.expose())));
        s
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
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Hides the password of a URL (`scheme://user:password@host` and `password=` query parameters).
pub(crate) fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "<redacted>");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=<redacted>"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords_and_keep_the_rest() {
        assert_eq!(
            redact_url("postgres://quire:s3cr@t@db:5432/quire?sslmode=require"),
            "postgres://quire:<redacted>@db:5432/quire?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/quire?user=q&password=hunter2"),
            "postgres://db/quire?user=q&password=<redacted>"
        );
        assert_eq!(redact_url("postgres://q@db/quire"), "postgres://q@db/quire");
    }

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

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
        }
    }

    pub(crate) fn store_options(&self, read_only: bool) -> quire_store::StoreOptions {
        quire_store::StoreOptions {
            max_batch: self.store.max_batch.max(1),
            read_connections: self.store.read_connections.max(1),
            read_only,
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
        s
    }
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
        assert!(!settings.to_redacted_toml().contains("hunter2"));
        assert!(!settings.to_redacted_json().to_string().contains("hunter2"));
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}

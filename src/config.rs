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
    pub database_url: Option<Secret>,
    /// The HTTP listen address.
    pub listen: SocketAddr,
    /// A `tracing` filter, e.g. `info` or `quire=debug,sqlx=warn`.
    pub log: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    pub actors: ActorSettings,
    pub store: StoreSettings,
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
pub(crate) struct StoreSettings {
    pub max_batch: usize,
    pub read_connections: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("quire-data"),
            database_url: None,
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
            .merge(Env::prefixed("QUIRE_").ignore(&["CONFIG"]).split("__"))
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
        let settings = Settings {
            database_url: Some(Secret("postgres://u:hunter2@h/d".into())),
            ..Settings::default()
        };
        assert!(!settings.to_redacted_toml().contains("hunter2"));
        assert!(!settings.to_redacted_json().to_string().contains("hunter2"));
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}

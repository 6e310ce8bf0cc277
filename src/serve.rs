//! `quire serve`: wires the event store, the projections, the entity actors and the HTTP(S) API,
//! and shuts them down in order on SIGINT or SIGTERM (stop accepting requests, drain actors, stop
//! the projections, let the store finish writing).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use quire_actors::{Command, CommandBus, CommandEnvelope, CommandError, LocalBus};
use quire_api::{AppState, Authenticator};
use quire_domain::ids::UserId;
use quire_domain::user::UserCommand;
use quire_domain::values::{PersonName, Username};
use quire_domain::{Principal, Role};
use quire_projections::{ReadModelOptions, ReadModels, RunnerOptions};
use quire_store::DynEventStore;

use crate::config::{Settings, redact_url};

pub(crate) async fn run(settings: Settings) -> anyhow::Result<()> {
    let url = settings.store_url();
    tracing::info!(store = %redact_url(&url), "opening event store");
    let store = quire_store::open(&url, settings.store_options(false))
        .await
        .with_context(|| format!("opening event store at {}", redact_url(&url)))?;
    let head = store.head().await.context("reading event store head")?;
    let read_url = settings.read_model_url();
    tracing::info!(read_models = %redact_url(&read_url), "opening read models");
    let read = ReadModels::open(&read_url, ReadModelOptions::default())
        .await
        .with_context(|| format!("opening read models at {}", redact_url(&read_url)))?;
    let projections =
        quire_projections::spawn(store.clone(), read.clone(), RunnerOptions::default());
    let bus = LocalBus::new(store.clone(), settings.actor_config());
    bootstrap_admin(&settings, &store, head, &bus).await?;

    let secret = token_secret(&settings)?;
    let auth = Arc::new(Authenticator::new(
        store.clone(),
        read.clone(),
        &secret,
        Duration::from_secs(settings.api.token_ttl_secs.max(60)),
    ));
    let state = AppState::new(
        store.clone(),
        Arc::new(bus.clone()),
        read,
        auth,
        settings.api_config(),
    );
    let app = quire_api::app(state).into_make_service_with_connect_info::<SocketAddr>();
    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("binding {}", settings.listen))?;
    listener
        .set_nonblocking(true)
        .context("configuring the listener")?;
    let addr = listener.local_addr().context("reading listen address")?;

    match (&settings.tls.cert, &settings.tls.key) {
        (Some(cert), Some(key)) => {
            // sqlx's rustls already links ring; make it the process-wide provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "loading TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            tracing::info!(%addr, backend = store.backend(), head, tls = true, "quire is ready");
            // A line on stdout tells scripts and tests where to connect (useful with port 0).
            println!("quire listening on https://{addr}");
            let handle = axum_server::Handle::new();
            let shutdown = handle.clone();
            let grace = Duration::from_secs(settings.shutdown_timeout_secs);
            tokio::spawn(async move {
                shutdown_signal().await;
                shutdown.graceful_shutdown(Some(grace));
            });
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(app)
                .await
                .context("serving HTTPS")?;
        }
        _ => {
            tracing::info!(%addr, backend = store.backend(), head, "quire is ready");
            println!("quire listening on http://{addr}");
            let listener =
                tokio::net::TcpListener::from_std(listener).context("registering the listener")?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
                .context("serving HTTP")?;
        }
    }

    tracing::info!("shutting down: draining entity actors");
    bus.shutdown(Duration::from_secs(settings.shutdown_timeout_secs))
        .await;
    tracing::info!("stopping projections");
    projections.shutdown().await;
    drop(store);
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Creates the configured admin if no user has that username yet. The command id derives from
/// the username, so concurrent starts of several nodes create it once.
async fn bootstrap_admin(
    settings: &Settings,
    store: &DynEventStore,
    head: u64,
    bus: &LocalBus,
) -> anyhow::Result<()> {
    let (Some(user), Some(password)) = (&settings.admin_user, &settings.admin_password) else {
        if head == 0 {
            tracing::warn!(
                "the store is empty and no admin is configured: set QUIRE_ADMIN_USER and QUIRE_ADMIN_PASSWORD to create one"
            );
        }
        return Ok(());
    };
    let username =
        Username::parse(user.clone()).context("QUIRE_ADMIN_USER is not a valid username")?;
    quire_api::auth::check_password_policy(password.expose())
        .map_err(|message| anyhow::anyhow!("QUIRE_ADMIN_PASSWORD {message}"))?;
    let user_id = UserId::for_username(&username);
    let existing = store
        .read_stream(&user_id.stream_id(), 0, 1)
        .await
        .context("looking for the admin user")?;
    if !existing.is_empty() {
        tracing::debug!(username = %username, "admin user exists");
        return Ok(());
    }
    let password_hash = quire_api::hash_password(password.expose(), None)
        .await
        .map_err(|e| anyhow::anyhow!("hashing the admin password: {}", e.code()))?;
    let command_id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("quire:bootstrap-admin:{username}").as_bytes(),
    );
    let register = CommandEnvelope::new(
        Principal::system(),
        Command::User {
            user_id,
            command: UserCommand::Register {
                user_id,
                name: PersonName::parse(username.as_str()).context("admin display name")?,
                username: Some(username.clone()),
                email: None,
                role: Role::Admin,
                password_hash: Some(password_hash),
            },
        },
    )
    .with_command_id(command_id);
    match bus.dispatch(register).await {
        Ok(_) => {
            tracing::info!(username = %username, %user_id, "created the admin user");
            Ok(())
        }
        // Another node created it meanwhile (with another salt, hence another fingerprint).
        Err(CommandError::Rejected(r)) if r.code == "already_exists" => Ok(()),
        Err(CommandError::KeyReused(_)) => Ok(()),
        Err(error) => Err(error).context("creating the admin user"),
    }
}

/// The bearer-token signing secret: configured, or kept in the data directory.
fn token_secret(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &settings.api.token_secret {
        anyhow::ensure!(
            secret.expose().len() >= 32,
            "api.token_secret must be at least 32 characters"
        );
        return Ok(secret.expose().as_bytes().to_vec());
    }
    let path = settings.data_dir.join("token-secret");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return Ok(text.trim().as_bytes().to_vec());
    }
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let secret = quire_api::auth::random_secret();
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    if settings.database_url.is_some() {
        tracing::warn!(
            "no api.token_secret configured: bearer tokens are valid only on this node; set QUIRE_API__TOKEN_SECRET on every node of a cluster"
        );
    }
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received SIGINT"),
        _ = terminate => tracing::info!("received SIGTERM"),
    }
}

//! `quire serve`: wires the event store, the entity actors and the HTTP API, and shuts them down in
//! order on SIGINT or SIGTERM (stop accepting requests, drain actors, let the store finish writing).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use quire_actors::LocalBus;
use quire_api::AppState;

use crate::config::{Settings, redact_url};

pub(crate) async fn run(settings: Settings) -> anyhow::Result<()> {
    let url = settings.store_url();
    tracing::info!(store = %redact_url(&url), "opening event store");
    let store = quire_store::open(&url, settings.store_options(false))
        .await
        .with_context(|| format!("opening event store at {}", redact_url(&url)))?;
    let head = store.head().await.context("reading event store head")?;
    let bus = LocalBus::new(store.clone(), settings.actor_config());
    let state = AppState {
        store: store.clone(),
        bus: Arc::new(bus.clone()),
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr().context("reading listen address")?;
    tracing::info!(%addr, backend = store.backend(), head, "quire is ready");
    // A line on stdout tells scripts and tests where to connect (useful with port 0).
    println!("quire listening on http://{addr}");

    axum::serve(listener, quire_api::app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;

    tracing::info!("shutting down: draining entity actors");
    bus.shutdown(Duration::from_secs(settings.shutdown_timeout_secs))
        .await;
    drop(store);
    tracing::info!("stopped cleanly");
    Ok(())
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

//! Serving the API over HTTP or HTTPS (rustls) on the node's bound listener, until a stop signal,
//! with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use quire_store::DynEventStore;

use crate::app::Http;
use crate::config::Settings;

pub(crate) async fn serve(
    settings: &Settings,
    store: &DynEventStore,
    http: Http,
    head: u64,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Http {
        listener,
        addr,
        state,
        recommender,
    } = http;
    let refresh = recommender.spawn_refresh();
    let app = quire_api::app(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = match (&settings.tls.cert, &settings.tls.key) {
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
                stop.await;
                shutdown.graceful_shutdown(Some(grace));
            });
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(app)
                .await
                .context("serving HTTPS")
        }
        _ => {
            tracing::info!(%addr, backend = store.backend(), head, "quire is ready");
            println!("quire listening on http://{addr}");
            let listener =
                tokio::net::TcpListener::from_std(listener).context("registering the listener")?;
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
                .context("serving HTTP")
        }
    };
    refresh.abort();
    served
}

pub(crate) async fn shutdown_signal() {
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

//! Serving the API over HTTP or HTTPS (rustls) on the node's bound listener, until a stop signal,
//! with graceful shutdown.
//!
//! The accept loop is our own rather than `axum::serve`'s, for the controls a public listener
//! needs: a cap on open connections in all and per client (refused at accept, so a flood of idle
//! connections cannot exhaust the file descriptors), a header-read timeout, a TLS handshake
//! timeout and an idle timeout (`conn`), and problem documents for the refusals hyper makes itself
//! (`refusal`). The open-file limit is raised to its hard limit at start.

mod admission;
mod conn;
mod refusal;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto::Builder;
use quire_store::DynEventStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use self::admission::{Admission, Refused};
use self::conn::Limits;
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
    raise_open_file_limit(settings.http.max_connections);
    let tls = match (&settings.tls.cert, &settings.tls.key) {
        (Some(cert), Some(key)) => {
            // sqlx's rustls already links ring; make it the process-wide provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
            // Loads the PEM files and offers HTTP/2 and HTTP/1.1 by ALPN.
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "loading TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            Some(TlsAcceptor::from(config.get_inner()))
        }
        _ => None,
    };
    let listener = Listener {
        listener: TcpListener::from_std(listener).context("registering the listener")?,
        router: quire_api::app(state),
        limits: Arc::new(Limits::from(&settings.http)),
        admission: Admission::new(
            settings.http.max_connections,
            settings.http.max_connections_per_ip,
            &settings.api.trusted_proxies,
        ),
        tls,
    };
    let mut stop = std::pin::pin!(stop);
    // Polled once before the node says it is ready, so that a stop future that listens for
    // signals has its handlers in place: a SIGTERM sent on seeing the ready line stops the node
    // gracefully instead of killing it.
    if futures::poll!(stop.as_mut()).is_ready() {
        return Ok(());
    }
    let scheme = if listener.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%addr, backend = store.backend(), head, tls = listener.tls.is_some(), "quire is ready");
    // A line on stdout tells scripts and tests where to connect (useful with port 0).
    println!("quire listening on {scheme}://{addr}");
    let refresh = recommender.spawn_refresh();
    let served = listener
        .run(stop, Duration::from_secs(settings.shutdown_timeout_secs))
        .await;
    refresh.abort();
    served
}

/// The bound listener and what every connection is served with.
struct Listener {
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: Arc<Limits>,
    admission: Admission,
}

/// The accept loop's state.
struct Accepting {
    builder: Arc<Builder<TokioExecutor>>,
    /// Turns true when the server stops: connections then finish what they have and close.
    stopping: watch::Sender<bool>,
    connections: JoinSet<()>,
    /// What a plain-HTTP connection over the limits is told.
    busy: Vec<u8>,
    refusals: Throttled,
    accept_errors: Throttled,
}

impl Listener {
    /// Accepts connections until `stop`, then stops accepting, lets the open connections finish
    /// their requests for up to `grace`, and closes the rest.
    async fn run(
        self,
        mut stop: Pin<&mut impl Future<Output = ()>>,
        grace: Duration,
    ) -> anyhow::Result<()> {
        let mut state = Accepting {
            builder: Arc::new(conn::builder(&self.limits)),
            stopping: watch::Sender::new(false),
            connections: JoinSet::new(),
            busy: refusal::too_many_connections(),
            refusals: Throttled::default(),
            accept_errors: Throttled::default(),
        };
        loop {
            tokio::select! {
                () = stop.as_mut() => break,
                Some(ended) = state.connections.join_next(), if !state.connections.is_empty() => {
                    if let Err(error) = ended
                        && error.is_panic()
                    {
                        tracing::error!(%error, "a connection's task panicked");
                    }
                }
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => self.admit(stream, peer, &mut state),
                    Err(error) => {
                        if let Some(count) = state.accept_errors.due() {
                            tracing::warn!(%error, count, "accept error");
                        }
                        // Out of file descriptors or memory: retrying at once would spin; the
                        // connections closing meanwhile free some.
                        if is_resource_exhaustion(&error) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                },
            }
        }
        drop(self.listener);
        let Accepting {
            stopping,
            mut connections,
            ..
        } = state;
        let _ = stopping.send(true);
        if !connections.is_empty() {
            tracing::info!(
                open = connections.len(),
                "waiting for open connections to finish their requests"
            );
        }
        let drained = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                open = connections.len(),
                "connections still open after the shutdown timeout: closing them"
            );
            connections.shutdown().await;
        }
        Ok(())
    }

    /// Serves a new connection if the limits let it in; else closes it at once, so that its file
    /// descriptor is free again.
    fn admit(&self, stream: TcpStream, peer: SocketAddr, state: &mut Accepting) {
        let permit = match self.admission.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refused) => {
                if let Some(count) = state.refusals.due() {
                    let limit = match refused {
                        Refused::Full => "http.max_connections",
                        Refused::ClientFull => "http.max_connections_per_ip",
                    };
                    let open = self.admission.open();
                    tracing::warn!(client = %peer.ip(), limit, open, count, "connections refused");
                }
                // A plain-HTTP client is told why, without waiting on it; a TLS one cannot be.
                if self.tls.is_none() {
                    let _ = stream.try_write(&state.busy);
                }
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let (router, builder, limits, tls, stop) = (
            self.router.clone(),
            state.builder.clone(),
            self.limits.clone(),
            self.tls.clone(),
            state.stopping.subscribe(),
        );
        state.connections.spawn(async move {
            let _permit = permit;
            let Some(tls) = tls else {
                return conn::serve(stream, peer, router, &builder, limits, stop).await;
            };
            // The handshake has the header timeout to complete.
            match tokio::time::timeout(limits.header_read_timeout, tls.accept(stream)).await {
                Ok(Ok(stream)) => conn::serve(stream, peer, router, &builder, limits, stop).await,
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Out of file descriptors, buffers or memory, in the process or the system.
fn is_resource_exhaustion(error: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        matches!(
            Errno::from_io_error(error),
            Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)
        )
    }
    #[cfg(not(unix))]
    {
        error.kind() == std::io::ErrorKind::OutOfMemory
    }
}

/// Lets a warning out at most every few seconds, counting the times it was held back: a flood of
/// refusals or accept errors must not become a flood of log lines.
#[derive(Default)]
struct Throttled {
    last: Option<Instant>,
    /// Occurrences since the last warning, this one included.
    count: u64,
}

impl Throttled {
    const EVERY: Duration = Duration::from_secs(5);

    /// Counts an occurrence; `Some(occurrences)` when it is time to warn.
    fn due(&mut self) -> Option<u64> {
        self.count += 1;
        if self.last.is_some_and(|last| last.elapsed() < Self::EVERY) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.count))
    }
}

/// Raises the soft limit on open files to the hard limit: every connection holds one, and the
/// usual soft default (1024) is far below `http.max_connections`.
#[cfg(unix)]
fn raise_open_file_limit(max_connections: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = match (limit.current, limit.maximum) {
        (Some(current), Some(maximum)) if current < maximum => setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            },
        )
        .map(|()| Some(maximum)),
        // An unlimited hard limit: Linux still caps open files at fs.nr_open (2^20 by default).
        (Some(current), None) => Ok(setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(1 << 20),
                maximum: None,
            },
        )
        .map_or(Some(current), |()| Some(1 << 20))),
        (current, _) => Ok(current),
    };
    match raised {
        Ok(Some(open_files)) => {
            tracing::debug!(open_files, "open-file limit");
            // Headroom for the stores, the read models and the logs.
            let needed = max_connections as u64 + 256;
            if open_files < needed {
                tracing::warn!(
                    open_files,
                    max_connections,
                    "the open-file limit is below http.max_connections: connections will fail \
                     with \"too many open files\" before the limit refuses them; raise the hard \
                     limit (ulimit -Hn, LimitNOFILE=) or lower http.max_connections"
                );
            }
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}

#[cfg(not(unix))]
fn raise_open_file_limit(_max_connections: usize) {}

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

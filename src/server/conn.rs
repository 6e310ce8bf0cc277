//! One connection, HTTP/1.1 or HTTP/2 (plain or over TLS), from its first byte to its close: the
//! timeouts that free it when the client goes quiet, the size limits of a request head, and the
//! problem documents that replace hyper's empty refusals.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use quire_api::error::ApiError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

use super::refusal;
use crate::config::HttpSettings;

/// How long a connection may stay quiet and how large a request head may be.
#[derive(Debug, Clone)]
pub(super) struct Limits {
    /// For the request head (HTTP/1), the TLS handshake, and a new connection's first request.
    pub(super) header_read_timeout: Duration,
    /// For a connection with nothing running and no bytes moving.
    pub(super) idle_timeout: Duration,
    pub(super) max_uri_bytes: usize,
    pub(super) max_header_bytes: usize,
}

impl From<&HttpSettings> for Limits {
    fn from(http: &HttpSettings) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(http.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(http.idle_timeout_secs),
            max_uri_bytes: http.max_uri_bytes,
            max_header_bytes: http.max_header_bytes,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::from(&HttpSettings::default())
    }
}

impl Limits {
    /// hyper's own bound on a request head (its read buffer): twice what the API accepts, so a
    /// head a little over a limit still reaches [`Limits::refusal`] and is told which limit it
    /// broke; a larger one is refused by hyper (and that refusal rewritten as a problem). hyper
    /// accepts no less than 8 KiB.
    fn head_buffer(&self) -> usize {
        (2 * (self.max_uri_bytes + self.max_header_bytes)).max(8 * 1024)
    }

    /// The refusal of a request whose target or headers are over the limits.
    fn refusal<B>(&self, request: &Request<B>) -> Option<ApiError> {
        // The path and query: all of an HTTP/1 origin-form target, and HTTP/2's `:path`.
        let target = request
            .uri()
            .path_and_query()
            .map_or(0, |pq| pq.as_str().len());
        if target > self.max_uri_bytes {
            return Some(ApiError::new(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                format!(
                    "the request target is {target} bytes long; at most {} are accepted",
                    self.max_uri_bytes
                ),
            ));
        }
        // As on the wire: "name: value\r\n".
        let headers: usize = request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        (headers > self.max_header_bytes).then(|| {
            ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!(
                    "the request's header fields take {headers} bytes; at most {} are accepted",
                    self.max_header_bytes
                ),
            )
        })
    }
}

/// The connection builder every connection is served with.
pub(super) fn builder(limits: &Limits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    let head = limits.head_buffer();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(head);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(head).unwrap_or(u32::MAX));
    builder
}

/// Serves one connection until it ends, goes quiet for too long, or `stop` turns true (then it
/// finishes the requests it has, in HTTP/2 after a GOAWAY).
pub(super) async fn serve<IO>(
    io: IO,
    peer: SocketAddr,
    router: Router,
    builder: &Builder<TokioExecutor>,
    limits: Arc<Limits>,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: io,
        activity: activity.clone(),
        limits: limits.clone(),
        replacement: None,
    });
    let service = {
        let (activity, limits) = (activity.clone(), limits.clone());
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let (router, activity, limits) = (router.clone(), activity.clone(), limits.clone());
            async move {
                let _running = Running::start(&activity);
                if let Some(refusal) = limits.refusal(&request) {
                    return Ok::<_, Infallible>(refusal.into_response());
                }
                let (mut parts, body) = request.into_parts();
                // What the API's rate limiter identifies clients by.
                parts.extensions.insert(ConnectInfo(peer));
                let body = Body::new(WatchedBody {
                    inner: body,
                    activity,
                    waiting: false,
                });
                router.oneshot(Request::from_parts(parts, body)).await
            }
        })
    };
    // With upgrades: the WebSocket routes (`/clubs/{id}/live`) take the connection over.
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "connection closed on an error");
                }
                return;
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            () = quiet(&activity, &limits) => {
                tracing::debug!(%peer, "closing a quiet connection");
                return;
            }
        }
    }
}

/// What a connection is doing, as its watchdog sees it.
struct Activity {
    start: Instant,
    /// When a byte was last read or written, in milliseconds since `start`.
    last_ms: AtomicU64,
    /// Requests whose handlers run (until their response head is ready).
    running: AtomicUsize,
    /// Of those, the ones waiting for more of their body from the client.
    waiting_for_body: AtomicUsize,
    /// Requests received in all.
    requests: AtomicU64,
    /// Wakes the watchdog when a request starts or ends, or starts or stops waiting for its body:
    /// what can bring the deadline closer.
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            waiting_for_body: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// How long to wait before looking again, or `None` when the connection has been quiet too
    /// long: no request started within the header timeout of the connection's start (hyper
    /// enforces that for an HTTP/1 head; this also covers an HTTP/2 client, or one that stalls
    /// inside the HTTP/2 preface), or, after that, nothing running (or only handlers waiting for
    /// a body that does not come) and no byte moved for the idle timeout. A handler at work is
    /// never cut off.
    fn wait(&self, limits: &Limits) -> Option<Duration> {
        let running = self.running.load(Ordering::Relaxed);
        let waiting = self.waiting_for_body.load(Ordering::Relaxed);
        if running > waiting {
            return Some(limits.idle_timeout);
        }
        let deadline = if self.requests.load(Ordering::Relaxed) == 0 {
            limits.header_read_timeout
        } else {
            Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + limits.idle_timeout
        };
        deadline
            .checked_sub(self.start.elapsed())
            .filter(|left| !left.is_zero())
    }
}

/// Completes when the connection has been quiet for too long (see [`Activity::wait`]).
async fn quiet(activity: &Activity, limits: &Limits) {
    while let Some(wait) = activity.wait(limits) {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = activity.changed.notified() => {}
        }
    }
}

/// A running request, counted while it lives.
struct Running(Arc<Activity>);

impl Running {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.requests.fetch_add(1, Ordering::Relaxed);
        activity.running.fetch_add(1, Ordering::Relaxed);
        activity.changed.notify_one();
        Self(activity.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
        self.0.changed.notify_one();
    }
}

/// A request body that tells the watchdog while its handler waits for the client's bytes.
struct WatchedBody {
    inner: Incoming,
    activity: Arc<Activity>,
    waiting: bool,
}

impl WatchedBody {
    fn set_waiting(&mut self, waiting: bool) {
        if waiting != self.waiting {
            self.waiting = waiting;
            if waiting {
                self.activity
                    .waiting_for_body
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                self.activity
                    .waiting_for_body
                    .fetch_sub(1, Ordering::Relaxed);
            }
            self.activity.changed.notify_one();
        }
    }
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        this.set_waiting(polled.is_pending());
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.set_waiting(false);
    }
}

/// The connection's byte stream: notes when bytes move, and writes a problem document in place
/// of hyper's empty refusal of a request head it cannot parse.
struct Watched<IO> {
    inner: IO,
    activity: Arc<Activity>,
    limits: Arc<Limits>,
    /// The problem being written instead of hyper's refusal, and how much of it is out.
    replacement: Option<(Vec<u8>, usize)>,
}

impl<IO: AsyncWrite + Unpin> Watched<IO> {
    /// Writes what is left of the replacement.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, sent)) = &mut self.replacement {
            if *sent == bytes.len() {
                self.replacement = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
            self.activity.touch();
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` in place of hyper's refusal if it is one: the problem goes out instead, and
    /// hyper is told its bytes were written.
    fn replace(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Option<Poll<io::Result<usize>>> {
        let refused = refusal::hyper_refusal(buf)?;
        let problem = refusal::for_unparsed_head(refused.status, &self.limits);
        self.replacement = Some((refusal::response(&problem, refused.date, None), 0));
        // hyper flushes after writing, which finishes the replacement if this cannot.
        Some(match self.poll_replacement(cx) {
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            _ => Poll::Ready(Ok(buf.len())),
        })
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        if let Some(replaced) = this.replace(cx, buf) {
            return replaced;
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        // hyper writes a refusal's head as one buffer, with no body after it.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next())
            && let Some(replaced) = this.replace(cx, only)
        {
            return replaced;
        }
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..Limits::default()
        }
    }

    #[test]
    fn a_target_or_headers_over_the_limits_are_refused_by_name() {
        let limits = Limits {
            max_uri_bytes: 300,
            max_header_bytes: 1024,
            ..limits()
        };
        let ok = Request::get(format!("/books?q={}", "a".repeat(200)))
            .header("x-a", "b".repeat(900))
            .body(())
            .unwrap();
        assert!(limits.refusal(&ok).is_none());
        let long = Request::get(format!("/books?q={}", "a".repeat(300)))
            .body(())
            .unwrap();
        let refused = limits.refusal(&long).unwrap();
        assert_eq!(refused.status(), StatusCode::URI_TOO_LONG);
        assert_eq!(refused.code(), "uri_too_long");
        let large = Request::get("/books")
            .header("x-a", "b".repeat(1100))
            .body(())
            .unwrap();
        let refused = limits.refusal(&large).unwrap();
        assert_eq!(
            refused.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert_eq!(refused.code(), "headers_too_large");
    }

    #[test]
    fn a_connection_is_quiet_only_with_nothing_running() {
        let limits = limits();
        let activity = Arc::new(Activity::new());
        // A new connection has the header timeout to start a request.
        assert!(activity.wait(&limits).unwrap() <= limits.header_read_timeout);
        {
            let _running = Running::start(&activity);
            assert_eq!(activity.wait(&limits), Some(limits.idle_timeout));
            // A handler waiting for its body counts as quiet.
            activity.waiting_for_body.fetch_add(1, Ordering::Relaxed);
            let left = activity.wait(&limits).unwrap();
            assert!(left > Duration::from_secs(50), "{left:?}");
            activity.waiting_for_body.fetch_sub(1, Ordering::Relaxed);
        }
        let left = activity.wait(&limits).unwrap();
        assert!(left > Duration::from_secs(50), "{left:?}");
        assert!(left <= limits.idle_timeout);
        let expired = Limits {
            idle_timeout: Duration::ZERO,
            ..limits
        };
        assert_eq!(activity.wait(&expired), None);
    }
}

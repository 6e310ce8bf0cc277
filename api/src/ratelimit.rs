//! Per-client rate limiting: a token bucket per client IP address, answered with 429 problems.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

/// How fast each client may call; `per_second == 0` turns limiting off.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Sustained requests per second per client.
    pub per_second: f64,
    /// How many requests a client may make at once after being idle.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 200.0,
            burst: 400,
        }
    }
}

/// The buckets of all clients seen recently.
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Beyond this many clients, full (idle) buckets are forgotten.
const MAX_CLIENTS: usize = 100_000;

impl RateLimiter {
    /// A limiter for the given limit.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `client`; `Err(seconds)` says how long until one is available.
    fn take(&self, client: IpAddr) -> Result<(), u64> {
        if self.limit.per_second <= 0.0 {
            return Ok(());
        }
        let burst = f64::from(self.limit.burst.max(1));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= MAX_CLIENTS {
            let per_second = self.limit.per_second;
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < burst
            });
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * self.limit.per_second;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.limit.per_second;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

/// The client a request counts against: the peer, or, when the peer is one of the trusted
/// reverse proxies, the right-most `X-Forwarded-For` address that is not itself a trusted proxy
/// (addresses further left were written by the client and cannot be believed).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpAddr]) -> IpAddr {
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted_proxies.contains(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

/// The middleware: requests over the client's budget get a 429 with `Retry-After`.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let client = client_ip(peer, request.headers(), &state.config.trusted_proxies);
    match state.limiter.take(client) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => {
            tracing::debug!(%client, "rate limited");
            ApiError::too_many_requests(retry_after).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_waits_while_others_are_unaffected() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1.0,
            burst: 3,
        });
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        for _ in 0..3 {
            assert!(limiter.take(a).is_ok());
        }
        assert_eq!(limiter.take(a), Err(1));
        assert!(limiter.take(b).is_ok());
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let proxy = IpAddr::from([10, 0, 0, 9]);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        // From the trusted proxy: the address it saw connect (right-most), not the client's claim.
        assert_eq!(
            client_ip(proxy, &headers, &[proxy]),
            IpAddr::from([203, 0, 113, 7])
        );
        // From anyone else the header is ignored.
        let stranger = IpAddr::from([198, 51, 100, 1]);
        assert_eq!(client_ip(stranger, &headers, &[proxy]), stranger);
        // Chained proxies are skipped; no header leaves the proxy itself.
        let edge = IpAddr::from([10, 0, 0, 8]);
        headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.8".parse().unwrap());
        assert_eq!(
            client_ip(proxy, &headers, &[proxy, edge]),
            IpAddr::from([203, 0, 113, 7])
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
    }

    #[test]
    fn zero_per_second_turns_limiting_off() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 0.0,
            burst: 1,
        });
        let a = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..1000 {
            assert!(limiter.take(a).is_ok());
        }
    }
}

//! Per-client rate limiting: a token bucket per client IP address, answered with 429 problems.
//!
//! The buckets are spread over a few independently locked shards. A bucket that has refilled to
//! the burst is the same as no bucket, so such buckets are forgotten; each call examines at most
//! [`SWEEP_PER_CALL`] buckets of its shard for that, continuing round the shard where the previous
//! call stopped. A request's cost therefore does not grow with the number of clients tracked, and a
//! shard never holds many more buckets than it has clients that were active within the last
//! `burst / per_second` seconds.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
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

/// How many shards the buckets are spread over: concurrent requests of different clients
/// rarely wait for each other's lock.
const SHARDS: usize = 16;

/// How many buckets one call examines for forgetting; more than one, so that a shard sheds
/// refilled buckets faster than new clients can add them.
const SWEEP_PER_CALL: usize = 2;

/// The buckets of all clients seen recently.
pub struct RateLimiter {
    limit: RateLimit,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// The tokens the bucket holds at `now`, not capped at the burst.
    fn tokens_at(&self, now: Instant, per_second: f64) -> f64 {
        self.tokens + now.duration_since(self.updated).as_secs_f64() * per_second
    }
}

/// One shard's buckets: a vector (so the sweep can resume at a position) indexed by client.
#[derive(Default)]
struct Shard {
    index: HashMap<IpAddr, usize>,
    buckets: Vec<(IpAddr, Bucket)>,
    /// Where the next sweep starts.
    cursor: usize,
}

impl Shard {
    /// Forgets refilled buckets among the next [`SWEEP_PER_CALL`]; returns how many it examined.
    fn sweep(&mut self, now: Instant, per_second: f64, burst: f64) -> usize {
        let mut examined = 0;
        while examined < SWEEP_PER_CALL && !self.buckets.is_empty() {
            if self.cursor >= self.buckets.len() {
                self.cursor = 0;
            }
            examined += 1;
            let (client, bucket) = self.buckets[self.cursor];
            if bucket.tokens_at(now, per_second) >= burst {
                self.index.remove(&client);
                self.buckets.swap_remove(self.cursor);
                // The last bucket moved into the hole, where the sweep looks next.
                if let Some((moved, _)) = self.buckets.get(self.cursor) {
                    self.index.insert(*moved, self.cursor);
                }
            } else {
                self.cursor += 1;
            }
        }
        examined
    }

    /// The client's bucket, a full one if it has none.
    fn bucket(&mut self, client: IpAddr, now: Instant, burst: f64) -> &mut Bucket {
        let slot = *self.index.entry(client).or_insert_with(|| {
            self.buckets.push((
                client,
                Bucket {
                    tokens: burst,
                    updated: now,
                },
            ));
            self.buckets.len() - 1
        });
        &mut self.buckets[slot].1
    }
}

impl RateLimiter {
    /// A limiter for the given limit.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// Counts one request of `client`: `Err` is the 429 problem to answer with.
    fn check(&self, client: IpAddr) -> Result<(), ApiError> {
        self.take(client).map_err(ApiError::too_many_requests)
    }

    /// Takes a token for `client`; `Err(seconds)` says how long until one is available.
    fn take(&self, client: IpAddr) -> Result<(), u64> {
        self.take_at(client, Instant::now()).0
    }

    /// [`RateLimiter::take`] at `now`, also saying how many tracked buckets it examined for
    /// forgetting.
    fn take_at(&self, client: IpAddr, now: Instant) -> (Result<(), u64>, usize) {
        let per_second = self.limit.per_second;
        if per_second <= 0.0 {
            return (Ok(()), 0);
        }
        let burst = f64::from(self.limit.burst.max(1));
        let mut shard = self.shard(client).lock().expect("rate limiter lock");
        let examined = shard.sweep(now, per_second, burst);
        let bucket = shard.bucket(client, now, burst);
        bucket.tokens = bucket.tokens_at(now, per_second).min(burst);
        bucket.updated = now;
        let verdict = if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Err(wait.ceil().max(1.0) as u64)
        };
        (verdict, examined)
    }

    fn shard(&self, client: IpAddr) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one(client) as usize % self.shards.len()]
    }

    /// How many clients have a bucket.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().expect("rate limiter lock").buckets.len())
            .sum()
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
    match state.limiter.check(client) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            tracing::debug!(%client, "rate limited");
            error.into_response()
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

    #[test]
    fn a_limited_client_gets_a_429_problem_with_retry_after() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 0.5,
            burst: 1,
        });
        let a = IpAddr::from([10, 0, 0, 1]);
        assert!(limiter.check(a).is_ok());
        let error = limiter.check(a).expect_err("over the burst");
        assert_eq!(error.problem().code, "rate_limited");
        let response = error.into_response();
        assert_eq!(response.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        // One token at half a token per second: two seconds.
        assert_eq!(response.headers()["retry-after"], "2");
        assert_eq!(
            response.headers()["content-type"],
            crate::error::PROBLEM_JSON
        );
    }

    #[test]
    fn a_request_examines_a_bounded_number_of_buckets_however_many_clients_are_tracked() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1.0,
            burst: 3,
        });
        let start = Instant::now();
        let noisy = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..3 {
            assert!(limiter.take_at(noisy, start).0.is_ok());
        }
        // 100,000 other clients, all still active (their buckets are not full, so none may be
        // forgotten): each request examines at most a constant number of buckets.
        for n in 0..100_000u32 {
            let (verdict, examined) = limiter.take_at(IpAddr::from(n.to_be_bytes()), start);
            assert!(verdict.is_ok());
            assert!(examined <= SWEEP_PER_CALL, "examined {examined}");
        }
        assert_eq!(limiter.tracked(), 100_001);
        let (verdict, examined) = limiter.take_at(IpAddr::from([192, 0, 2, 1]), start);
        assert!(verdict.is_ok());
        assert!(examined <= SWEEP_PER_CALL);
        // The noisy client did not get a fresh bucket by hiding among them.
        assert_eq!(limiter.take_at(noisy, start).0, Err(1));
    }

    #[test]
    fn refilled_buckets_are_forgotten_as_clients_come_and_go() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1.0,
            burst: 1,
        });
        let start = Instant::now();
        // A new client every second: each earlier bucket has refilled by the time the next comes.
        for n in 0..10_000u32 {
            let now = start + std::time::Duration::from_secs(u64::from(n));
            assert!(
                limiter
                    .take_at(IpAddr::from(n.to_be_bytes()), now)
                    .0
                    .is_ok()
            );
            assert!(limiter.tracked() <= SHARDS, "{} tracked", limiter.tracked());
        }
        // A forgotten client starts again from a full bucket, as it would have refilled to.
        let later = start + std::time::Duration::from_secs(20_000);
        assert!(
            limiter
                .take_at(IpAddr::from(0u32.to_be_bytes()), later)
                .0
                .is_ok()
        );
    }
}

//! When a failed request is tried again, and how long to wait first (exponential backoff with
//! jitter, at least what `Retry-After` asks for).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::GenerateError;

/// A failed attempt and whether another may follow.
pub(super) struct Failure {
    pub(super) error: GenerateError,
    pub(super) retryable: bool,
    pub(super) retry_after: Option<Duration>,
}

impl Failure {
    pub(super) fn retryable(error: GenerateError) -> Self {
        Self {
            error,
            retryable: true,
            retry_after: None,
        }
    }

    pub(super) fn fatal(error: GenerateError) -> Self {
        Self {
            error,
            retryable: false,
            retry_after: None,
        }
    }
}

/// The wait before retry number `retry` (1-based): `initial_backoff * 2^(retry-1)`, capped at a
/// minute, plus up to half of it again at random; at least what `Retry-After` asked for.
pub(super) fn backoff(
    initial_backoff: Duration,
    retry: u32,
    retry_after: Option<Duration>,
) -> Duration {
    let base = initial_backoff
        .saturating_mul(1u32 << (retry - 1).min(16))
        .min(Duration::from_secs(60));
    let jitter = base.mul_f64(random_fraction() / 2.0);
    let wait = base + jitter;
    match retry_after {
        Some(asked) => wait.max(asked.min(Duration::from_secs(60))),
        None => wait,
    }
}

/// A number in `[0, 1)`, random enough for jitter (std's per-process random hash keys).
fn random_fraction() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The wait a `Retry-After` header asks for (its seconds form; an HTTP date is ignored).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter() {
        let initial = Duration::from_millis(100);
        for retry in 1..=4 {
            let base = Duration::from_millis(100 * (1 << (retry - 1)));
            let wait = backoff(initial, retry, None);
            assert!(wait >= base && wait <= base + base / 2, "{retry}: {wait:?}");
        }
        assert!(backoff(initial, 1, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
        assert!(backoff(initial, 40, None) <= Duration::from_secs(90));
    }
}

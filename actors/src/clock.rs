//! Time as command senders see it: the API stamps commands with it and the scheduler compares
//! deadlines with it. Injectable, so tests can move time instead of waiting for it.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use quire_domain::values::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Now, in microseconds since the epoch.
    fn now(&self) -> Timestamp;
}

/// A shared clock.
pub type DynClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let micros = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000;
        Timestamp::from_micros(i64::try_from(micros).unwrap_or(i64::MAX))
    }
}

/// A clock that runs with the system clock plus an offset that can be moved forward: time
/// passes normally, and a test can jump days ahead (due dates, pickup deadlines) at once.
#[derive(Debug, Default)]
pub struct ManualClock {
    offset_micros: AtomicI64,
}

impl ManualClock {
    /// A clock at the system's time.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance_seconds(&self, seconds: i64) {
        self.offset_micros
            .fetch_add(seconds.saturating_mul(1_000_000), Ordering::SeqCst);
    }

    /// Moves the clock forward by `days`.
    pub fn advance_days(&self, days: u32) {
        self.advance_seconds(i64::from(days) * 86_400);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let base = SystemClock.now().as_micros();
        Timestamp::from_micros(base.saturating_add(self.offset_micros.load(Ordering::SeqCst)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_forward_by_what_it_is_told() {
        let clock = ManualClock::new();
        let before = clock.now();
        clock.advance_days(2);
        let after = clock.now();
        assert!(after.as_micros() - before.as_micros() >= 2 * Timestamp::MICROS_PER_DAY);
    }
}

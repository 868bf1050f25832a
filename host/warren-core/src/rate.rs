//! A token bucket: what a host may spend at once and per second, for the
//! budgets that hold one tenant's use of something every tenant shares
//! (its log lines, `logline`; its service commands, in the supervisor).
//!
//! Guarantees: never more than `burst` spent at once, refilled at `rate`
//! a second; a refill too small for one unit waits (nothing is lost to
//! rounding); a clock that goes back refills nothing; no arithmetic
//! overflows, whatever the cost asked.

use std::time::{Duration, Instant};

/// One bucket (see the module doc). `Default` is an empty bucket of rate
/// and burst 0: build it with [`Bucket::new`].
#[derive(Debug, Default)]
pub struct Bucket {
    rate: u64,
    burst: u64,
    /// Spent, of `burst`; refilled from `at` on.
    spent: u64,
    at: Option<Instant>,
}

impl Bucket {
    /// A full bucket of `burst`, refilled at `rate` a second.
    pub const fn new(rate: u64, burst: u64) -> Self {
        Bucket {
            rate,
            burst,
            spent: 0,
            at: None,
        }
    }

    /// Takes `cost` at `now`: false (and nothing taken) past the burst.
    pub fn take(&mut self, cost: u64, now: Instant) -> bool {
        let since = self
            .at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        let refill = u64::try_from(since.as_micros()).unwrap_or(u64::MAX);
        let refill = refill.saturating_mul(self.rate) / 1_000_000;
        if refill > 0 || self.at.is_none() {
            self.spent = self.spent.saturating_sub(refill);
            self.at = Some(now);
        }
        if self.spent.saturating_add(cost) > self.burst {
            return false;
        }
        self.spent += cost;
        true
    }
}

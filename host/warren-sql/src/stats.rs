//! Pool counters and the `db:stats()` map (modules.md §1).
//!
//! Counters only grow; they are updated with relaxed atomics because they
//! are reported, never used for decisions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use warren_core::Value;

/// Counters kept by each database.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    waits: AtomicU64,
    wait_nanos: AtomicU64,
    idle_closed: AtomicU64,
    lifetime_closed: AtomicU64,
}

impl Counters {
    /// Records one call that had to wait `waited` for a connection.
    pub(crate) fn waited(&self, waited: Duration) {
        self.waits.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Records `n` idle connections closed over `max_idle`.
    pub(crate) fn idle_closed(&self, n: u64) {
        self.idle_closed.fetch_add(n, Ordering::Relaxed);
    }

    /// Records a connection replaced for passing `max_lifetime`.
    pub(crate) fn lifetime_closed(&self) {
        self.lifetime_closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// The pool's state at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub(crate) max_open: usize,
    pub(crate) open: usize,
    pub(crate) in_use: usize,
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn count(n: usize) -> Value {
    int(u64::try_from(n).unwrap_or(u64::MAX))
}

/// The stats map: `max_open_connections, open_connections, in_use, idle,
/// wait_count, wait_duration` (a duration string such as `"1.5ms"`),
/// `max_idle_closed, max_idle_time_closed, max_lifetime_closed`.
pub(crate) fn to_value(now: Snapshot, c: &Counters) -> Value {
    let nanos = c.wait_nanos.load(Ordering::Relaxed);
    let wait = warren_core::duration::format(i64::try_from(nanos).unwrap_or(i64::MAX));
    let entries = [
        ("max_open_connections", count(now.max_open)),
        ("open_connections", count(now.open)),
        ("in_use", count(now.in_use)),
        ("idle", count(now.open.saturating_sub(now.in_use))),
        ("wait_count", int(c.waits.load(Ordering::Relaxed))),
        ("wait_duration", Value::str(wait)),
        (
            "max_idle_closed",
            int(c.idle_closed.load(Ordering::Relaxed)),
        ),
        ("max_idle_time_closed", Value::Int(0)),
        (
            "max_lifetime_closed",
            int(c.lifetime_closed.load(Ordering::Relaxed)),
        ),
    ];
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::str(k), v))
            .collect(),
    )
}

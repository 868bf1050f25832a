//! A caller's room on its host: what the bytes its calls in flight hold
//! there (copied arguments, response bodies, query results) may take
//! together, and the host's `memory_total` they also count in.
//!
//! Every host module that holds bytes for a process takes them here, so
//! that one rule bounds them all: without it, each call could hold up to
//! the process's `memory_per_process` whatever its other calls held, and
//! none of it counted against the host.
//!
//! Guarantees: [`Room::try_take`] takes from both counts or from neither;
//! [`Room::give`] gives back what a take took (never below zero); a room
//! made [`Room::unbounded`] counts nothing and never refuses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::limits::HostQuota;

/// The counts a caller's host-held bytes are taken from.
#[derive(Clone, Debug)]
pub struct Room {
    /// What the caller's calls in flight hold (shared with them).
    held: Arc<AtomicU64>,
    /// The most `held` may reach.
    limit: u64,
    /// The caller's host, whose `memory_total` the bytes also count in.
    host: Option<Arc<HostQuota>>,
}

/// Why [`Room::try_take`] refused: nothing was taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomFull {
    /// With what the caller's calls in flight hold, the bytes pass its limit.
    #[error(
        "with the {held} bytes the caller's calls in flight hold that passes what it may hold ({limit} bytes)"
    )]
    Caller { held: u64, limit: u64 },
    /// The host's `memory_total` has no room for them.
    #[error("host '{host}' has no room left in its memory_total ({total} bytes)")]
    Host { host: String, total: u64 },
}

impl Room {
    /// The room of a caller whose calls in flight hold `held` and may hold
    /// `limit` bytes together, on `host`.
    pub fn new(held: Arc<AtomicU64>, limit: u64, host: Option<Arc<HostQuota>>) -> Room {
        Room { held, limit, host }
    }

    /// A room that counts nothing and never refuses (for callers that are
    /// not tenants: tools, benchmarks).
    pub fn unbounded() -> Room {
        Room::new(Arc::default(), u64::MAX, None)
    }

    /// The most the caller's calls may hold together.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Takes `n` bytes from the caller's count and its host's total, or
    /// nothing.
    pub fn try_take(&self, n: u64) -> Result<(), RoomFull> {
        let limit = self.limit;
        let taken = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|total| *total <= limit)
            });
        if let Err(held) = taken {
            return Err(RoomFull::Caller { held, limit });
        }
        if let Some(host) = &self.host
            && !host.reserve_memory(n)
        {
            self.held.fetch_sub(n, Ordering::AcqRel);
            return Err(RoomFull::Host {
                host: host.name.clone(),
                total: host.limits.memory_total,
            });
        }
        Ok(())
    }

    /// Gives back `n` bytes a [`Room::try_take`] took.
    pub fn give(&self, n: u64) {
        if n == 0 {
            return;
        }
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(n))
            });
        if let Some(host) = &self.host {
            host.release_memory(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(total: u64) -> Arc<HostQuota> {
        let mut quota = HostQuota::default();
        quota.limits.memory_total = total;
        quota.name = "h".into();
        Arc::new(quota)
    }

    #[test]
    fn a_take_counts_in_both_or_neither() {
        let quota = host(100);
        let held = Arc::new(AtomicU64::new(10));
        let room = Room::new(held.clone(), 50, Some(quota.clone()));
        room.try_take(30).expect("10 + 30 fits in 50");
        assert_eq!(
            room.try_take(20),
            Err(RoomFull::Caller {
                held: 40,
                limit: 50
            })
        );
        assert!(quota.reserve_memory(65));
        assert_eq!(
            room.try_take(8),
            Err(RoomFull::Host {
                host: "h".into(),
                total: 100
            })
        );
        assert_eq!(
            (held.load(Ordering::Acquire), quota.memory_used()),
            (40, 95)
        );
        room.give(30);
        assert_eq!(
            (held.load(Ordering::Acquire), quota.memory_used()),
            (10, 65)
        );
    }

    #[test]
    fn an_unbounded_room_never_refuses() {
        let room = Room::unbounded();
        room.try_take(u64::MAX / 2).expect("fits");
        room.try_take(u64::MAX / 2).expect("fits");
        room.give(u64::MAX);
        assert_eq!(room.limit(), u64::MAX);
    }
}

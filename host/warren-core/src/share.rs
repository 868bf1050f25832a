//! A fixed number of slots that every host of a runtime draws from (the
//! WebAssembly engine's pool of component instances), shared so that no
//! tenant can take them all.
//!
//! Without a share, one host with the default `max_processes` could hold
//! every slot of the pool with components that wait forever, and every
//! other host's components would fail to start. The rule: a host may take
//! a slot while it holds fewer than its fair share (the pool divided by
//! the runtime's hosts), and past that only while at least
//! [`RESERVE_DIVISOR`]th of the pool stays free after the take. The last
//! quarter of the pool is thus always left to hosts under their share; a
//! runtime with one host, or a pool nobody else uses, lends a host
//! everything but that quarter.
//!
//! Guarantees: a [`Slot`] is counted in both the pool and its host from
//! [`SharedSlots::take`] until it is dropped; a refusal changes nothing.
//! Hosts taking slots at the same moment may each see the other's take
//! only after it: the share can be passed by at most one slot per
//! concurrent taker, and the pool's capacity never.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::limits::HostQuota;

/// What fraction of the pool a host past its fair share must leave free:
/// with 4, the last quarter of the slots is kept for the other hosts.
pub const RESERVE_DIVISOR: u32 = 4;

/// A runtime-wide pool of `capacity` slots.
#[derive(Debug)]
pub struct SharedSlots {
    capacity: u32,
    used: AtomicU32,
}

/// Why [`SharedSlots::take`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareRefused {
    /// Every slot of the pool is taken.
    #[error("all {capacity} slots are taken")]
    Full {
        /// The pool's size.
        capacity: u32,
    },
    /// The host holds its share, and what is left is kept for the others.
    #[error(
        "host '{host}' holds {held} of the {capacity} slots, past its share of {share} (the pool over {hosts} hosts); the last {reserve} are kept for hosts under their share"
    )]
    Share {
        /// The host.
        host: String,
        /// What it holds.
        held: u32,
        /// The pool's size.
        capacity: u32,
        /// Its fair share.
        share: u32,
        /// The runtime's hosts.
        hosts: usize,
        /// The slots kept free.
        reserve: u32,
    },
}

/// One slot taken for a host; given back to the pool and the host when
/// dropped.
#[derive(Debug)]
pub struct Slot {
    pool: Arc<SharedSlots>,
    host: Arc<HostQuota>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.used.fetch_sub(1, Ordering::AcqRel);
        self.host.release_pooled();
    }
}

impl SharedSlots {
    /// A pool of `capacity` slots, none taken.
    pub fn new(capacity: u32) -> Arc<Self> {
        Arc::new(SharedSlots {
            capacity,
            used: AtomicU32::new(0),
        })
    }

    /// The pool's size.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Slots taken now.
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }

    /// Takes a slot for `host`, one of the runtime's `hosts`, under the
    /// rule the module gives.
    pub fn take(
        self: &Arc<Self>,
        host: &Arc<HostQuota>,
        hosts: usize,
    ) -> Result<Slot, ShareRefused> {
        let capacity = self.capacity;
        let divisor = u32::try_from(hosts.max(1)).unwrap_or(u32::MAX);
        let share = (capacity / divisor).max(1);
        let reserve = capacity / RESERVE_DIVISOR;
        let held = host.pooled();
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let free_after = capacity.checked_sub(used)?.checked_sub(1)?;
                (held < share || free_after >= reserve).then_some(used + 1)
            });
        match taken {
            Ok(_) => {
                host.admit_pooled();
                Ok(Slot {
                    pool: Arc::clone(self),
                    host: Arc::clone(host),
                })
            }
            Err(used) if used >= capacity => Err(ShareRefused::Full { capacity }),
            Err(_) => Err(ShareRefused::Share {
                host: host.name.clone(),
                held,
                capacity,
                share,
                hosts,
                reserve,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::HostLimits;

    fn host(name: &str) -> Arc<HostQuota> {
        Arc::new(HostQuota::new(name.into(), HostLimits::default(), false))
    }

    fn take_all(pool: &Arc<SharedSlots>, host: &Arc<HostQuota>, hosts: usize) -> Vec<Slot> {
        std::iter::from_fn(|| pool.take(host, hosts).ok()).collect()
    }

    #[test]
    fn one_host_of_two_leaves_the_last_quarter_to_the_other() {
        let pool = SharedSlots::new(100);
        let (a, b) = (host("a"), host("b"));
        let held = take_all(&pool, &a, 2);
        assert_eq!(held.len(), 75);
        assert!(matches!(
            pool.take(&a, 2),
            Err(ShareRefused::Share {
                held: 75,
                share: 50,
                reserve: 25,
                ..
            })
        ));
        let other = take_all(&pool, &b, 2);
        assert_eq!(other.len(), 25, "the other host gets the reserve");
        assert_eq!(
            pool.take(&b, 2).expect_err("the pool is full"),
            ShareRefused::Full { capacity: 100 }
        );
        assert_eq!((a.pooled(), b.pooled(), pool.used()), (75, 25, 100));
    }

    #[test]
    fn a_dropped_slot_goes_back_to_both_counts() {
        let pool = SharedSlots::new(8);
        let a = host("a");
        let mut held = take_all(&pool, &a, 2);
        assert_eq!(held.len(), 6);
        held.pop();
        assert_eq!((a.pooled(), pool.used()), (5, 5));
        assert!(pool.take(&a, 2).is_ok());
        drop(held);
        assert_eq!((a.pooled(), pool.used()), (0, 0));
    }

    #[test]
    fn a_host_under_its_share_takes_the_reserve_too() {
        let pool = SharedSlots::new(8);
        let (a, b) = (host("a"), host("b"));
        let _a = take_all(&pool, &a, 2);
        let b1 = pool.take(&b, 2).expect("under its share");
        let _b = take_all(&pool, &b, 2);
        assert_eq!(pool.used(), 8);
        drop(b1);
        // A is past its share and only one slot is free: refused, B not.
        assert!(matches!(pool.take(&a, 2), Err(ShareRefused::Share { .. })));
        assert!(pool.take(&b, 2).is_ok());
    }

    #[test]
    fn a_lone_host_takes_the_whole_pool() {
        let pool = SharedSlots::new(4);
        let a = host("a");
        assert_eq!(take_all(&pool, &a, 1).len(), 4);
    }
}

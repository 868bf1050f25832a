//! The runtime-wide map from live pids to the worker that owns them.
//!
//! Sharded so that workers on different cores rarely contend. A pid is in the
//! directory from the moment its spawn is accepted until its exit has been
//! processed, which is what makes "send to an exited pid is `NOT_FOUND`"
//! exact for the sender. Each pid also carries its mailbox depth, so a
//! sender on any worker can refuse to overfill it (`mailbox_limit`).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use rustc_hash::FxHashMap;

use crate::pid::Pid;

const SHARDS: usize = 32;

/// Messages sent to one process that it has not taken yet; shared by the
/// directory (for senders) and the owning core (for the front-end).
pub(crate) type Queued = Arc<AtomicU32>;

/// The owner of a live pid and its mailbox depth.
struct Slot {
    worker: usize,
    queued: Queued,
}

/// The outcome of trying to queue one message for a pid.
pub(crate) enum Admit {
    /// Counted; deliver it to this worker.
    Worker(usize),
    /// The mailbox holds `mailbox_limit` messages already.
    Full,
    /// The pid is not alive.
    Gone,
}

/// Counts one more message in `queued` unless it holds `limit` already.
pub(crate) fn admit(queued: &AtomicU32, limit: u32) -> bool {
    queued
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
}

/// Live pids and their worker index.
pub struct Directory {
    shards: Vec<Mutex<FxHashMap<Pid, Slot>>>,
}

impl Default for Directory {
    fn default() -> Self {
        Directory {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Directory {
    fn shard(&self, pid: Pid) -> std::sync::MutexGuard<'_, FxHashMap<Pid, Slot>> {
        let index = usize::try_from(pid.serial() % SHARDS as u64).unwrap_or(0);
        // A poisoned shard only means another thread panicked mid-insert; the
        // map itself is still consistent.
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `pid` lives on `worker` with mailbox depth `queued`.
    pub(crate) fn insert(&self, pid: Pid, worker: usize, queued: Queued) {
        self.shard(pid).insert(pid, Slot { worker, queued });
    }

    /// Counts a message for `pid` if its mailbox has room under `limit`.
    pub(crate) fn admit(&self, pid: Pid, limit: u32) -> Admit {
        match self.shard(pid).get(&pid) {
            None => Admit::Gone,
            Some(slot) if admit(&slot.queued, limit) => Admit::Worker(slot.worker),
            Some(_) => Admit::Full,
        }
    }

    /// Takes back one message counted by [`admit`](Self::admit).
    pub(crate) fn unadmit(&self, pid: Pid) {
        if let Some(slot) = self.shard(pid).get(&pid) {
            slot.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Forgets `pid` (it exited).
    pub fn remove(&self, pid: Pid) {
        self.shard(pid).remove(&pid);
    }

    /// The worker owning `pid`, if it is alive.
    pub fn get(&self, pid: Pid) -> Option<usize> {
        self.shard(pid).get(&pid).map(|slot| slot.worker)
    }

    /// Every live pid (a snapshot).
    pub fn pids(&self) -> Vec<Pid> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let map = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            out.extend(map.keys().copied());
        }
        out
    }

    /// How many processes are alive.
    pub fn len(&self) -> usize {
        (0..SHARDS)
            .map(|i| {
                self.shards[i]
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len()
            })
            .sum()
    }

    /// Whether no process is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

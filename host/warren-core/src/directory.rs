//! The runtime-wide map from live pids to the worker that owns them.
//!
//! Sharded so that workers on different cores rarely contend. A pid is in the
//! directory from the moment its spawn is accepted until its exit has been
//! processed, which is what makes "send to an exited pid is `NOT_FOUND`"
//! exact for the sender.

use std::sync::Mutex;

use rustc_hash::FxHashMap;

use crate::pid::Pid;

const SHARDS: usize = 32;

/// Live pids and their worker index.
pub struct Directory {
    shards: Vec<Mutex<FxHashMap<Pid, usize>>>,
}

impl Default for Directory {
    fn default() -> Self {
        Directory {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Directory {
    fn shard(&self, pid: Pid) -> std::sync::MutexGuard<'_, FxHashMap<Pid, usize>> {
        let index = usize::try_from(pid.serial() % SHARDS as u64).unwrap_or(0);
        // A poisoned shard only means another thread panicked mid-insert; the
        // map itself is still consistent.
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `pid` lives on `worker`.
    pub fn insert(&self, pid: Pid, worker: usize) {
        self.shard(pid).insert(pid, worker);
    }

    /// Forgets `pid` (it exited).
    pub fn remove(&self, pid: Pid) {
        self.shard(pid).remove(&pid);
    }

    /// The worker owning `pid`, if it is alive.
    pub fn get(&self, pid: Pid) -> Option<usize> {
        self.shard(pid).get(&pid).copied()
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

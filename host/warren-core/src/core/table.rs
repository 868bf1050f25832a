//! A worker's process table: its live processes' entries by pid, split
//! into [`SHARDS`] maps by pid serial.
//!
//! One map of a million entries grows by moving every entry into a table
//! twice its size at once: hundreds of megabytes allocated, page-faulted
//! and copied inside a single `process.spawn`, which stalled the worker for
//! over a second and made the stuck-code guard end the innocent process
//! that spawned. Split, each growth moves a sixty-fourth of the entries.

use rustc_hash::FxHashMap;

use crate::pid::Pid;

/// Maps in a table. Serials are handed out in sequence, so their low bits
/// spread processes evenly.
const SHARDS: usize = 64;

/// Entries of type `T` by pid (see the module docs).
pub(super) struct Table<T> {
    shards: Box<[FxHashMap<Pid, T>]>,
    len: usize,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            shards: (0..SHARDS).map(|_| FxHashMap::default()).collect(),
            len: 0,
        }
    }
}

fn shard(pid: &Pid) -> usize {
    // The remainder is below SHARDS: the cast cannot truncate.
    (pid.serial() % SHARDS as u64) as usize
}

impl<T> Table<T> {
    pub(super) fn get(&self, pid: &Pid) -> Option<&T> {
        self.shards[shard(pid)].get(pid)
    }

    pub(super) fn get_mut(&mut self, pid: &Pid) -> Option<&mut T> {
        self.shards[shard(pid)].get_mut(pid)
    }

    pub(super) fn contains_key(&self, pid: &Pid) -> bool {
        self.shards[shard(pid)].contains_key(pid)
    }

    /// Inserts `value` for `pid`, returning the entry it replaced.
    pub(super) fn insert(&mut self, pid: Pid, value: T) -> Option<T> {
        let old = self.shards[shard(&pid)].insert(pid, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub(super) fn remove(&mut self, pid: &Pid) -> Option<T> {
        let old = self.shards[shard(pid)].remove(pid);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Every entry, shard by shard.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&Pid, &mut T)> {
        self.shards.iter_mut().flat_map(|s| s.iter_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_counted_and_removed_across_shards() {
        let mut t = Table::default();
        let pids: Vec<Pid> = (0..1000).map(|s| Pid::new(0, s)).collect();
        for (i, pid) in pids.iter().enumerate() {
            assert!(t.insert(*pid, i).is_none());
        }
        assert_eq!(t.insert(pids[3], 33), Some(3), "a re-insert replaces");
        assert_eq!(t.len(), 1000);
        assert_eq!(t.get(&pids[999]), Some(&999));
        *t.get_mut(&pids[5]).expect("present") = 55;
        assert_eq!(t.remove(&pids[5]), Some(55));
        assert_eq!(t.remove(&pids[5]), None, "removed once");
        assert!(!t.contains_key(&pids[5]));
        assert!(t.contains_key(&pids[6]));
        assert_eq!(t.len(), 999);
        assert!(t.shards.iter().all(|s| s.len() >= 15), "spread over shards");
    }
}

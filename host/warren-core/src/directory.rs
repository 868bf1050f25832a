//! The runtime-wide map from live pids to the worker that owns them.
//!
//! Sharded so that workers on different cores rarely contend. A pid is in the
//! directory from the moment its spawn is accepted until its exit has been
//! processed, which is what makes "send to an exited pid is `NOT_FOUND`"
//! exact for the sender. Each pid also carries its mailbox depth, in
//! messages and in bytes, so a sender on any worker can refuse to overfill
//! it (`mailbox_limit`, [`HostLimits::mailbox_bytes`](crate::HostLimits::mailbox_bytes)).
//!
//! A pid can move to another worker once, before it starts: a burst's
//! children wait on their parent's worker until the burst is placed
//! (`core/burst.rs`). The move must not let a sender's later command
//! overtake its earlier one, so each pid counts the commands routed to
//! it ([`Directory::admit`], [`Directory::get`]; under the shard's lock,
//! as the move is): [`Directory::relocate`] moves it only when every one
//! of them has reached its worker, and a later one is routed to the new
//! worker. Counting more than were routed only keeps a pid where it is.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;

use crate::pid::Pid;

const SHARDS: usize = 32;

/// Messages sent to one process that it has not taken yet, and about
/// how many bytes they hold (`count | bytes << 32`, one word so both are
/// checked and counted in one step); shared by the directory (for
/// senders) and the owning core (for the front-end).
pub(crate) type Queued = Arc<AtomicU64>;

/// The owner of a live pid and its mailbox depth.
struct Slot {
    worker: usize,
    queued: Queued,
    /// Commands routed to `worker` for it (wrapping: only a burst's
    /// children, a few commands old, are ever compared).
    routed: u32,
}

/// The outcome of trying to queue one message for a pid.
pub(crate) enum Admit {
    /// Counted; deliver it to this worker.
    Worker(usize),
    /// The mailbox is full.
    Full(Full),
    /// The pid is not alive.
    Gone,
}

/// Which bound of a mailbox a message did not fit under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Full {
    /// It holds `mailbox_limit` messages.
    Messages,
    /// Its messages hold `mailbox_bytes` (the message would pass it).
    Bytes,
}

/// A mailbox's bounds: messages, and bytes those messages hold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub messages: u32,
    pub bytes: u32,
}

fn split(word: u64) -> (u32, u32) {
    // The low half is the count, the high half the bytes.
    #[expect(clippy::cast_possible_truncation, reason = "the halves of one word")]
    (word as u32, (word >> 32) as u32)
}

fn join(messages: u32, bytes: u32) -> u64 {
    u64::from(messages) | (u64::from(bytes) << 32)
}

/// Counts one more message of `bytes` in `queued` unless it holds
/// `bounds.messages` already, or it holds messages and this one would
/// take their bytes past `bounds.bytes` (a message always fits an empty
/// mailbox, whose bytes start again from nothing).
pub(crate) fn admit(queued: &AtomicU64, bounds: Bounds, bytes: u64) -> Result<(), Full> {
    let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
    let mut full = Full::Messages;
    queued
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
            with_one_more(word, bounds, bytes)
                .map_err(|f| full = f)
                .ok()
        })
        .map(|_| ())
        .map_err(|_| full)
}

/// Whether [`admit`] would count a message of `bytes` in `queued` now,
/// counting nothing.
pub(crate) fn fits(queued: &AtomicU64, bounds: Bounds, bytes: u64) -> bool {
    let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
    with_one_more(queued.load(Ordering::Acquire), bounds, bytes).is_ok()
}

/// The count `word` with one more message of `bytes`, or the bound it
/// would pass (see [`admit`]).
fn with_one_more(word: u64, bounds: Bounds, bytes: u32) -> Result<u64, Full> {
    let (n, held) = split(word);
    if n >= bounds.messages {
        return Err(Full::Messages);
    }
    let held = if n == 0 { 0 } else { held };
    if n > 0 && held.saturating_add(bytes) > bounds.bytes {
        return Err(Full::Bytes);
    }
    Ok(join(n + 1, held.saturating_add(bytes)))
}

/// Takes `n` messages holding about `bytes` off `queued` (an emptied
/// mailbox holds no bytes, whatever the estimate says).
pub(crate) fn release(queued: &AtomicU64, n: u32, bytes: u64) {
    let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
    let _ = queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
        let (count, held) = split(word);
        let count = count.saturating_sub(n);
        let held = if count == 0 {
            0
        } else {
            held.saturating_sub(bytes)
        };
        Some(join(count, held))
    });
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
        let slot = Slot {
            worker,
            queued,
            routed: 0,
        };
        self.shard(pid).insert(pid, slot);
    }

    /// Counts a message of `bytes` for `pid` if its mailbox has room
    /// under `bounds`.
    pub(crate) fn admit(&self, pid: Pid, bounds: Bounds, bytes: u64) -> Admit {
        match self.shard(pid).get_mut(&pid) {
            None => Admit::Gone,
            Some(slot) => match admit(&slot.queued, bounds, bytes) {
                Ok(()) => {
                    slot.routed = slot.routed.wrapping_add(1);
                    Admit::Worker(slot.worker)
                }
                Err(full) => Admit::Full(full),
            },
        }
    }

    /// Moves `pid` from worker `from` to worker `to` if exactly
    /// `arrived` commands were routed to it and it is still on `from`;
    /// whether it moved.
    pub(crate) fn relocate(&self, pid: Pid, from: usize, to: usize, arrived: usize) -> bool {
        let mut shard = self.shard(pid);
        let Some(slot) = shard.get_mut(&pid) else {
            return false;
        };
        let all_here = usize::try_from(slot.routed).is_ok_and(|n| n == arrived);
        if slot.worker != from || !all_here {
            return false;
        }
        slot.worker = to;
        true
    }

    /// Forgets `pid` (it exited).
    pub fn remove(&self, pid: Pid) {
        self.shard(pid).remove(&pid);
    }

    /// The worker owning `pid`, if it is alive, for a command routed
    /// there (counted: see the module docs).
    pub fn get(&self, pid: Pid) -> Option<usize> {
        self.shard(pid).get_mut(&pid).map(|slot| {
            slot.routed = slot.routed.wrapping_add(1);
            slot.worker
        })
    }

    /// The worker owning `pid`, if it is alive, routing nothing.
    pub(crate) fn owner(&self, pid: Pid) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `fits` answers as `admit` would, changing nothing, whatever the
    /// count, the bytes held and the message's size.
    #[test]
    fn fits_answers_as_admit_and_counts_nothing() {
        let bounds = Bounds {
            messages: 3,
            bytes: 100,
        };
        for n in 0..=4 {
            for held in [0, 40, 99, 100] {
                for bytes in [0, 1, 60, 101, u64::MAX] {
                    let queued = AtomicU64::new(join(n, held));
                    let fit = fits(&queued, bounds, bytes);
                    assert_eq!(queued.load(Ordering::Relaxed), join(n, held));
                    let admitted = admit(&queued, bounds, bytes).is_ok();
                    assert_eq!(fit, admitted, "{n} messages, {held} held, {bytes} more");
                }
            }
        }
        // The bounds bite: a full count, and bytes over the bound behind
        // other messages (an empty mailbox takes any size).
        assert!(!fits(&AtomicU64::new(join(3, 0)), bounds, 1));
        assert!(!fits(&AtomicU64::new(join(1, 40)), bounds, 61));
        assert!(fits(&AtomicU64::new(join(0, 0)), bounds, 1_000));
    }

    /// A pid moves only when every command routed to it has arrived
    /// where it was, and only from where it is; what is routed after the
    /// move goes to its new worker.
    #[test]
    fn a_pid_moves_only_with_nothing_on_its_way() {
        let dir = Directory::default();
        let pid = Pid::new(0, 7);
        let bounds = Bounds {
            messages: 10,
            bytes: 1_000,
        };
        dir.insert(pid, 0, Queued::default());
        assert!(dir.relocate(pid, 0, 1, 0), "nothing routed");
        assert_eq!(dir.owner(pid), Some(1));
        // Not from where it is not.
        assert!(!dir.relocate(pid, 0, 1, 0));
        assert!(matches!(dir.admit(pid, bounds, 10), Admit::Worker(1)));
        assert_eq!(dir.get(pid), Some(1));
        assert_eq!(dir.owner(pid), Some(1));
        // Two commands routed: one arrived is not enough.
        assert!(!dir.relocate(pid, 1, 0, 1));
        assert!(!dir.relocate(pid, 1, 0, 3));
        assert_eq!(dir.owner(pid), Some(1));
        assert!(dir.relocate(pid, 1, 0, 2));
        assert_eq!(dir.owner(pid), Some(0));
        // A refused admission routed nothing; a look-up by `owner` neither.
        let full = Pid::new(0, 8);
        dir.insert(full, 0, Queued::new(AtomicU64::new(join(10, 0))));
        assert!(matches!(
            dir.admit(full, bounds, 1),
            Admit::Full(Full::Messages)
        ));
        assert_eq!(dir.owner(full), Some(0));
        assert!(dir.relocate(full, 0, 1, 0));
        assert!(!dir.relocate(Pid::new(0, 9), 0, 1, 0), "no such pid");
    }
}

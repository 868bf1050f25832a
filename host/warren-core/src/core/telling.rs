//! Telling an exit to the processes linked to the exiting one and to its
//! watchers, a bounded number of them per turn of the worker's loop.
//!
//! One exit with 100,000 watchers, or a cascade through thousands of
//! processes all linked to one another, made every notification in the
//! exit's one call: its worker ran nothing else for 0.4–1.4 s, and the
//! processes of other hosts on it waited. An exit now tells at most
//! [`TELL_STEP`] processes at once; the rest are told [`TELL_STEP`] per
//! turn of the worker's loop ([`Core::tell_exits`]), between which the
//! worker runs its processes as usual.
//!
//! Guarantees: everyone is told, in the order the exit found them (links,
//! then watchers, then the processes it monitored, whose `watchers` sets
//! drop it); what the exiting process sent before it exited was queued
//! before any of this, so it still arrives first; exits are told in the
//! order they happened. A worker with an exit left to tell does not sleep.
//! The result copied to each follows [`fanout`](super::fanout)'s bound.

use std::collections::hash_map;
use std::collections::hash_set;

use super::Core;
use super::fanout::Fanout;
use crate::item::{Event, Exit, Item, LinkExit};
use crate::pid::Pid;
use crate::worker::Cmd;

/// Processes told of exits per turn of the worker's loop (and at the exit
/// itself): a turn's telling takes about a millisecond at most, where the
/// whole of one exit took up to 1.4 s.
pub(crate) const TELL_STEP: usize = 256;

/// What is left to tell of one exit.
pub(super) struct Telling {
    from: Pid,
    result: Exit,
    fanout: Fanout,
    links: hash_map::IntoKeys<Pid, bool>,
    watchers: hash_set::IntoIter<Pid>,
    watching: hash_set::IntoIter<Pid>,
}

impl Telling {
    /// The telling of `from`'s exit with `result` to its `peers`.
    pub(super) fn new(from: Pid, result: Exit, fanout: Fanout, peers: super::Peers) -> Self {
        Telling {
            from,
            result,
            fanout,
            links: peers.links.into_keys(),
            watchers: peers.watchers.into_iter(),
            watching: peers.watching.into_iter(),
        }
    }

    /// The next command, or `None` when everyone has been told.
    fn next_cmd(&mut self) -> Option<Cmd> {
        let from = self.from;
        if let Some(peer) = self.links.next() {
            let result = self.fanout.copy(&self.result);
            return Some(Cmd::LinkExit(peer, LinkExit { from, result }));
        }
        if let Some(watcher) = self.watchers.next() {
            let result = self.fanout.copy(&self.result);
            let event = Event::Exit { from, result };
            return Some(Cmd::Deliver(watcher, Item::Event(event)));
        }
        let target = self.watching.next()?;
        Some(Cmd::RemoveMonitor {
            target,
            watcher: from,
        })
    }
}

impl Core {
    /// Tells `telling` to at most `budget` processes; what is left of it
    /// is kept for the next turns. Returns what is left of `budget`.
    pub(super) fn tell(&mut self, mut telling: Telling, mut budget: usize) -> usize {
        while budget > 0 {
            let Some(cmd) = telling.next_cmd() else {
                return budget;
            };
            self.post(cmd);
            budget -= 1;
        }
        if telling.links.len() + telling.watchers.len() + telling.watching.len() > 0 {
            self.tellings.push_front(telling);
        }
        budget
    }

    /// Tells up to [`TELL_STEP`] processes of the exits left to tell,
    /// oldest first; the worker's loop calls it every turn.
    pub(crate) fn tell_exits(&mut self) {
        let mut budget = TELL_STEP;
        while budget > 0 {
            let Some(telling) = self.tellings.pop_front() else {
                return;
            };
            budget = self.tell(telling, budget);
        }
    }

    /// Whether an exit is left to tell (the worker must not sleep).
    pub(crate) fn telling(&self) -> bool {
        !self.tellings.is_empty()
    }
}

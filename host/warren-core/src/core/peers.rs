//! Links and monitors: a process's peers, and what they cost its host.
//!
//! A link is two halves, one in each process's `links`; a monitor is the
//! watcher's `watching` entry and the target's `watchers` entry. Either
//! may span workers: the half on the other side is added and removed by
//! a posted command.
//!
//! Guarantees: every relation is charged [`PEER_PAIR_BYTES`] to the
//! `memory_total` of the host of the process that made it, never to the
//! process it names (which may be another tenant's), and refused with
//! `RATE_LIMITED` when that host has no room, before anything is posted.
//! The charge lives with the maker's half (a link's `paid` flag, every
//! `watching` entry) and comes back when that half goes: unlink or
//! unmonitor (by either side), the other side's exit reaching it, or its
//! own exit ([`Peers::charged`]). A process that links over a half it
//! holds unpaid (the other side made the link) pays for its own half.
//!
//! An unlink is acknowledged by the other side ([`Cmd::UnlinkAck`]); until
//! then a link that side made before the unlink reached it is ignored,
//! so the two halves agree (a link made from both sides while one side
//! unlinked left that side a half the other no longer had).

use rustc_hash::{FxHashMap, FxHashSet};

use super::{Core, not_alive};
use crate::error::{ErrorKind, ProcError};
use crate::item::{Event, Item, LinkExit};
use crate::limits::PEER_PAIR_BYTES;
use crate::pid::Pid;
use crate::worker::Cmd;

/// A process's links and monitors, boxed: most processes have neither,
/// and inline they made every process's entry 48 bytes larger.
#[derive(Default)]
pub(super) struct Peers {
    /// The processes linked to it, each with whether this side made the
    /// link and pays for it (the other side's half is not charged).
    pub(super) links: FxHashMap<Pid, bool>,
    /// Who monitors it: a set, so a process monitoring it again holds one
    /// monitor (a loop of `monitor` calls grew a list by 8 bytes each).
    pub(super) watchers: FxHashSet<Pid>,
    /// What it monitors, until that one's EXIT event reaches it: its exit
    /// takes it off those targets' `watchers`. Without it a watcher that
    /// ended stayed in every set it was in for as long as the targets
    /// lived (200,000 short-lived processes monitoring 10 long-lived
    /// ones held 24 MB in the core, counted against no host). Each one is
    /// charged to this process's host.
    pub(super) watching: FxHashSet<Pid>,
    /// The processes it unlinked whose acknowledgement has not come back
    /// yet: a link they made before our unlink reached them is ignored
    /// when it arrives meanwhile (as Erlang's unlink ids do). Without it
    /// a link made from both sides while one side unlinked left that side
    /// a half the other no longer had, paid for by nobody.
    pub(super) unlinking: FxHashSet<Pid>,
    /// Which of `watching` an `exec` of this process waits on
    /// ([`Core::exec_waits_on`]): terminated if this process ends first,
    /// as a function call's callee is when its caller ends. Without it a
    /// terminated `exec` caller left its child running, and a recursive
    /// `exec` filled the host with a chain nobody waited on.
    pub(super) execs: FxHashSet<Pid>,
}

/// Entries a peer table keeps room for, however few it holds: shrinking
/// below this would reallocate a table that churns around a few entries.
const KEEP_ROOM: usize = 16;

impl Peers {
    /// Whether it holds nothing (its box may go).
    pub(super) fn is_empty(&self) -> bool {
        self.links.is_empty()
            && self.watchers.is_empty()
            && self.watching.is_empty()
            && self.unlinking.is_empty()
    }

    /// Gives back the room of tables that hold a quarter of it or less: a
    /// table never shrinks by itself, so 3,000 watchers that each made and
    /// dropped 3,000 relations kept 146 MB (monitors) to 402 MB (links)
    /// of host memory whose charge had been given back.
    pub(super) fn tidy(&mut self) {
        /// The room to shrink a table of `len` in `room` to, if any.
        fn spare(len: usize, room: usize) -> Option<usize> {
            (room > KEEP_ROOM && len * 4 <= room).then(|| (len * 2).max(KEEP_ROOM))
        }
        if let Some(n) = spare(self.links.len(), self.links.capacity()) {
            self.links.shrink_to(n);
        }
        if let Some(n) = spare(self.watchers.len(), self.watchers.capacity()) {
            self.watchers.shrink_to(n);
        }
        if let Some(n) = spare(self.watching.len(), self.watching.capacity()) {
            self.watching.shrink_to(n);
        }
        if let Some(n) = spare(self.unlinking.len(), self.unlinking.capacity()) {
            self.unlinking.shrink_to(n);
        }
    }

    /// The bytes its host was charged for the relations this side made.
    pub(super) fn charged(&self) -> u64 {
        let paid = self.links.values().filter(|paid| **paid).count() + self.watching.len();
        PEER_PAIR_BYTES.saturating_mul(paid as u64)
    }
}

impl Core {
    fn peers_of(&mut self, pid: Pid) -> Option<&mut Peers> {
        self.procs
            .get_mut(&pid)
            .and_then(|p| p.peers.as_deref_mut())
    }

    /// After a removal from `pid`'s peers: their tables' spare room given
    /// back, and the box itself once empty.
    pub(super) fn tidy_peers(&mut self, pid: Pid) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        match p.peers.as_deref_mut() {
            Some(peers) if peers.is_empty() => p.peers = None,
            Some(peers) => peers.tidy(),
            None => {}
        }
    }

    /// Charges `pairs` relations `me` makes to its host; `RATE_LIMITED`,
    /// naming the host, when its `memory_total` has no room for them.
    pub(super) fn charge_peers(&self, me: Pid, pairs: u64) -> Result<(), ProcError> {
        let quota = self.quota_of(me);
        if quota.reserve_memory(PEER_PAIR_BYTES * pairs) {
            return Ok(());
        }
        let why = format!(
            "host '{}' has no room left in its memory_total ({} bytes) for another link or \
             monitor",
            quota.name, quota.limits.memory_total
        );
        Err(ProcError::new(ErrorKind::RateLimited, why))
    }

    /// Gives back what [`Core::charge_peers`] took for `pairs` relations.
    pub(super) fn uncharge_peers(&self, me: Pid, pairs: u64) {
        self.quota_of(me).release_memory(PEER_PAIR_BYTES * pairs);
    }

    /// Posts `add`, the other half of a relation `me` makes with
    /// `target`, charging `me` for it unless it was `made` already (or
    /// `me` is not here): whether it was charged. `RATE_LIMITED` before
    /// anything is posted when `me`'s host has no room; `NOT_FOUND`, the
    /// charge given back, when `target` is gone.
    fn post_charged(
        &mut self,
        me: Pid,
        made: bool,
        target: Pid,
        add: Cmd,
    ) -> Result<bool, ProcError> {
        let new = !made && self.procs.contains_key(&me);
        if new {
            self.charge_peers(me, 1)?;
        }
        if !self.post(add) {
            if new {
                self.uncharge_peers(me, 1);
            }
            return Err(not_alive(target));
        }
        Ok(new)
    }

    /// Links `me` and `other`: an abnormal exit of either reaches the other.
    pub fn link(&mut self, me: Pid, other: Pid) -> Result<(), ProcError> {
        if me == other {
            return Ok(());
        }
        self.check_reach("link", me, other)?;
        // A half this side holds unpaid was made by the other side, which
        // may have dropped its own since (a link made from both sides while
        // one unlinks): linking now, this side pays for its half.
        let paid = self
            .peers_of(me)
            .is_some_and(|p| p.links.get(&other) == Some(&true));
        let add = Cmd::AddLink {
            target: other,
            peer: me,
        };
        let new = self.post_charged(me, paid, other, add)?;
        if let Some(p) = self.procs.get_mut(&me) {
            let half = p.peers().links.entry(other).or_insert(false);
            *half |= new;
        }
        Ok(())
    }

    /// Removes `pid`'s half of its link to `other`, giving back its charge
    /// if this side paid; whether there was one.
    pub(super) fn drop_link(&mut self, pid: Pid, other: Pid) -> bool {
        let Some(paid) = self.peers_of(pid).and_then(|p| p.links.remove(&other)) else {
            return false;
        };
        if paid {
            self.uncharge_peers(pid, 1);
        }
        self.tidy_peers(pid);
        true
    }

    /// Removes a link in both directions; refused, doing nothing, for a
    /// process out of reach (as every operation naming one).
    pub fn unlink(&mut self, me: Pid, other: Pid) -> Result<(), ProcError> {
        self.check_reach("unlink", me, other)?;
        self.drop_link(me, other);
        // Until `other` acknowledges, a link it made before this reached
        // it is ignored (see `Peers::unlinking`); set first, as a target
        // of this worker acknowledges within the post.
        if let Some(p) = self.procs.get_mut(&me) {
            p.peers().unlinking.insert(other);
        }
        let posted = self.post(Cmd::RemoveLink {
            target: other,
            peer: me,
        });
        if !posted {
            self.unlink_acked(me, other);
        }
        Ok(())
    }

    /// `peer`'s half of a link to `target` removed, here (its unlink), and
    /// acknowledged to `peer` even when `target` is gone.
    pub(super) fn remove_link_here(&mut self, target: Pid, peer: Pid) {
        self.drop_link(target, peer);
        self.post(Cmd::UnlinkAck {
            target: peer,
            peer: target,
        });
    }

    /// `peer` acknowledged `target`'s unlink: links it makes count again.
    pub(super) fn unlink_acked(&mut self, target: Pid, peer: Pid) {
        let Some(p) = self.procs.get_mut(&target) else {
            return;
        };
        if let Some(peers) = p.peers.as_deref_mut() {
            peers.unlinking.remove(&peer);
        }
        self.tidy_peers(target);
    }

    /// Makes `me` receive an EXIT event when `target` exits (its result
    /// included, so a host may monitor only what it may reach); a second
    /// monitor of the same target changes nothing.
    pub fn monitor(&mut self, me: Pid, target: Pid) -> Result<(), ProcError> {
        self.check_reach("monitor", me, target)?;
        let made = self
            .peers_of(me)
            .is_some_and(|p| p.watching.contains(&target));
        let add = Cmd::AddMonitor {
            target,
            watcher: me,
        };
        let new = self.post_charged(me, made, target, add)?;
        if new && let Some(p) = self.procs.get_mut(&me) {
            p.peers().watching.insert(target);
        }
        Ok(())
    }

    /// Marks `child`, which `me` monitors, as the process an `exec` of
    /// `me` waits on (see [`Peers::execs`]); nothing for a child `me` does
    /// not monitor (its EXIT already came).
    pub fn exec_waits_on(&mut self, me: Pid, child: Pid) {
        if let Some(p) = self.procs.get_mut(&me).and_then(|p| p.peers.as_deref_mut())
            && p.watching.contains(&child)
        {
            p.execs.insert(child);
        }
    }

    /// Takes `target` off what `pid` monitors, giving back its charge.
    pub(super) fn drop_watching(&mut self, pid: Pid, target: Pid) {
        if self.peers_of(pid).is_some_and(|p| {
            p.execs.remove(&target);
            p.watching.remove(&target)
        }) {
            self.uncharge_peers(pid, 1);
            self.tidy_peers(pid);
        }
    }

    /// Removes `me`'s monitor of `target` (monitoring it twice made one);
    /// refused, doing nothing, for a process out of reach.
    pub fn unmonitor(&mut self, me: Pid, target: Pid) -> Result<(), ProcError> {
        self.check_reach("unmonitor", me, target)?;
        self.drop_watching(me, target);
        self.post(Cmd::RemoveMonitor {
            target,
            watcher: me,
        });
        Ok(())
    }

    /// The other half of a link `peer` made to `target`, here; a target
    /// that is gone sends its EXIT back at once.
    pub(super) fn add_link_here(&mut self, target: Pid, peer: Pid) {
        match self.procs.get_mut(&target) {
            // Made before `target`'s unlink of it reached `peer`: that
            // unlink took `peer`'s half down, so this one is not made.
            Some(p)
                if p.peers
                    .as_deref()
                    .is_some_and(|x| x.unlinking.contains(&peer)) => {}
            // This side pays only if it made the link first itself.
            Some(p) => {
                p.peers().links.entry(peer).or_insert(false);
            }
            None => {
                let result = Err(not_alive(target));
                let signal = LinkExit {
                    from: target,
                    result,
                };
                self.post(Cmd::LinkExit(peer, signal));
            }
        }
    }

    /// The other half of a monitor `watcher` made of `target`, here; a
    /// target that is gone sends its EXIT event back at once.
    pub(super) fn add_monitor_here(&mut self, target: Pid, watcher: Pid) {
        match self.procs.get_mut(&target) {
            Some(p) => {
                p.peers().watchers.insert(watcher);
            }
            None => {
                let event = Event::Exit {
                    from: target,
                    result: Err(not_alive(target)),
                };
                self.post(Cmd::Deliver(watcher, Item::Event(event)));
            }
        }
    }

    /// Takes `watcher` off `target`'s watchers (the watcher's half and its
    /// charge went on its own side).
    pub(super) fn remove_monitor_here(&mut self, target: Pid, watcher: Pid) {
        if self
            .peers_of(target)
            .is_some_and(|p| p.watchers.remove(&watcher))
        {
            self.tidy_peers(target);
        }
    }

    /// A linked process's exit reaching `pid`: a failure ends `pid` too,
    /// or is a LINK_DOWN event if it traps links.
    pub(super) fn link_exit(&mut self, pid: Pid, signal: LinkExit) {
        if !self.drop_link(pid, signal.from) {
            return;
        }
        let Err(err) = signal.result else {
            return;
        };
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        if p.trap_links {
            let event = Event::LinkDown {
                from: signal.from,
                result: Err(err),
            };
            self.push_local(pid, Item::Event(event));
        } else {
            let reason = ProcError {
                message: format!("linked process {} failed: {}", signal.from, err.message),
                ..err
            };
            p.kill.get_or_insert_with(|| Box::new(reason));
            self.queue(pid);
        }
    }
}

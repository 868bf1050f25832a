//! A burst's children wait on their parent's worker until the burst is
//! placed, so a burst is split knowing its size.
//!
//! A Lua process cannot move once it runs (it is a coroutine of its
//! worker's VM), so where a child runs is decided before it starts. A
//! child decided as it is spawned cannot know how many siblings follow:
//! a ring of 503 placed in growing runs crossed workers 18 times a lap
//! and ran 10 % slower on two workers than on one. Here a child of a
//! process on a host of several workers is made known to the directory
//! on its parent's worker and waits, not started, in the burst (its
//! parent's spawns with no spawn by another process, and no exit, on
//! this worker in between). The burst is placed when its parent's
//! resumption ends (the front-end's next exchange, [`Core::between_batches`],
//! or the end of its run), when another process spawns here, or when a
//! process exits here: one block per worker, in spawn order, the first
//! where the parent's previous child went (see `placement`), against
//! the workers' loads before the burst. A ring crosses workers twice a
//! lap; eight pairs spread four and four; each preemption's share of a
//! fan-out of 10,000 spreads evenly.
//!
//! A child placed elsewhere moves with the commands that reached it while
//! it waited (messages, links, kills), which its new worker applies right
//! after making it and before any sent there since. It moves only when
//! every command routed to it has reached it
//! ([`Directory::relocate`](crate::directory::Directory::relocate)), so
//! no sender's later command overtakes its earlier one; otherwise it
//! starts where it waited.

use std::sync::atomic::Ordering::Relaxed;

use crate::Pid;
use crate::placement::{self, Home};
use crate::runtime::SpawnRequest;
use crate::worker::{Cmd, SpawnCmd};

use super::{Core, NO_CHILD};

impl Core {
    /// Whether a child of `parent` spawned by `req` waits for its burst:
    /// its parent runs here, and its host is this worker's, of several
    /// workers.
    pub(super) fn waits_for_burst(&self, parent: Pid, req: &SpawnRequest) -> bool {
        self.procs.contains_key(&parent)
            && self.shared.host_workers(self.host).len() > 1
            && self.quota().name == req.host
    }

    /// Places the children waiting in the current burst (see the module
    /// docs). Nothing to do costs one look.
    #[inline]
    pub(crate) fn place_burst(&mut self) {
        if !self.burst.waiting.is_empty() {
            self.place_waiting();
        }
    }

    fn place_waiting(&mut self) {
        let waiting = std::mem::take(&mut self.burst.waiting);
        let workers = self.shared.host_workers(self.host);
        let start = workers.start;
        let here = self.worker;
        let base: Vec<usize> = workers
            .clone()
            .map(|w| {
                let load = self.shared.workers[w].load.load(Relaxed);
                if w == here {
                    load.saturating_sub(waiting.len())
                } else {
                    load
                }
            })
            .collect();
        let run = placement::burst_run(waiting.len(), workers.len());
        let parent = self.burst.parent;
        for (turn, cmd) in waiting.into_iter().enumerate() {
            let last = parent
                .and_then(|p| self.procs.get(&p))
                .map_or(NO_CHILD, |p| p.last_child);
            let home = match last {
                NO_CHILD => Home::Parent(here),
                w => Home::Sibling {
                    worker: usize::from(w),
                    burst: &self.burst.placed,
                    run,
                },
            };
            let worker = placement::choose(workers.clone(), turn, home, |w| base[w - start]);
            self.count_child(parent, worker);
            self.start_or_move(cmd, worker);
        }
    }

    /// Counts a child of `parent`'s burst placed on `worker`.
    pub(super) fn count_child(&mut self, parent: Option<Pid>, worker: usize) {
        if let Some(n) = self.burst.placed.get_mut(worker) {
            *n = n.saturating_add(1);
        }
        if let Some(p) = parent.and_then(|p| self.procs.get_mut(&p)) {
            p.last_child = u16::try_from(worker).unwrap_or(NO_CHILD);
        }
    }

    /// Starts waiting child `cmd` here, or moves it to `worker` with the
    /// commands that came for it; it stays here when `worker` is this
    /// one or some command routed to it has not come yet.
    fn start_or_move(&mut self, mut cmd: SpawnCmd, worker: usize) {
        let pid = cmd.pid;
        let arrived = self.early.get(&pid).map_or(0, Vec::len);
        let directory = &self.shared.directory;
        if worker == self.worker || !directory.relocate(pid, self.worker, worker, arrived) {
            return self.apply(Cmd::Spawn(cmd));
        }
        let loads = &self.shared.workers;
        loads[self.worker].load.fetch_sub(1, Relaxed);
        loads[worker].load.fetch_add(1, Relaxed);
        cmd.carried = self.early.remove(&pid).unwrap_or_default();
        self.queue_for(worker, Cmd::Spawn(cmd));
    }
}

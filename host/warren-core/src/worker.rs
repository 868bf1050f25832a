//! Worker threads: each owns a [`Core`] and one instance of every front-end.
//!
//! A worker runs its ready processes, hands cross-worker commands over in
//! batches, and parks only when it has nothing to do, so a busy worker is
//! never woken per message; before it sleeps it watches its queue a while
//! ([`spin`]). Wake-ups cannot be lost: a sender that finds the worker asleep
//! unparks it after queueing, and the worker re-checks its queue after
//! announcing that it sleeps.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Instant;

use crate::core::Core;
use crate::error::ProcError;
use crate::frontend::Program;
use crate::item::{Item, LinkExit};
use crate::pid::Pid;
use crate::runtime::Shared;
use crate::value::Value;

mod spin;

use spin::{Peers, SpinPermits, Spinner};

/// Resumptions a front-end may make before the worker checks its queue and
/// timers again; bounds how long remote messages and timers wait behind a
/// busy front-end.
const RUN_BUDGET: u32 = 256;

/// The most commands a worker's outbox keeps room for once handed over
/// ([`Remote::hand_all`]): one burst of a million messages to another
/// worker does not leave its buffer held for the rest of the run.
const KEEP_CAPACITY: usize = 1024;

/// A new process for a worker.
pub(crate) struct SpawnCmd {
    pub pid: Pid,
    pub queued: crate::directory::Queued,
    pub frontend: usize,
    pub program: Arc<Program>,
    pub args: Vec<Value>,
    pub context: Value,
    pub held: crate::item::Held,
    pub link_to: Option<Pid>,
    pub monitored_by: Option<Pid>,
    /// The function call the process runs, if it is a callee.
    pub call: Option<Arc<crate::funcs::Call>>,
    /// Commands for it that reached the worker it waited on before it
    /// moved here (see `core/burst.rs`), applied in order right after it
    /// is made and before any that came here first.
    pub carried: Vec<Cmd>,
}

/// A command for the worker that owns the target process.
pub(crate) enum Cmd {
    Spawn(SpawnCmd),
    Deliver(Pid, Item),
    Kill(Pid, ProcError),
    LinkExit(Pid, LinkExit),
    AddLink {
        target: Pid,
        peer: Pid,
    },
    RemoveLink {
        target: Pid,
        peer: Pid,
    },
    /// `peer` took its half of a link down on `target`'s unlink.
    UnlinkAck {
        target: Pid,
        peer: Pid,
    },
    AddMonitor {
        target: Pid,
        watcher: Pid,
    },
    RemoveMonitor {
        target: Pid,
        watcher: Pid,
    },
}

impl Cmd {
    pub(crate) fn target(&self) -> Pid {
        match self {
            Cmd::Spawn(spawn) => spawn.pid,
            Cmd::Deliver(pid, _) | Cmd::Kill(pid, _) | Cmd::LinkExit(pid, _) => *pid,
            Cmd::AddLink { target, .. }
            | Cmd::RemoveLink { target, .. }
            | Cmd::UnlinkAck { target, .. }
            | Cmd::AddMonitor { target, .. }
            | Cmd::RemoveMonitor { target, .. } => *target,
        }
    }
}

/// The part of a worker other threads can reach.
#[derive(Default)]
pub(crate) struct Remote {
    /// Live processes placed on this worker (see `Shared::place`).
    pub(crate) load: AtomicUsize,
    /// Entries of the worker's timer heap, as its core last published.
    pub(crate) timers: AtomicUsize,
    queue: Mutex<Vec<Cmd>>,
    /// Set by every push, cleared by the worker before it takes the queue:
    /// what its spin before sleeping watches.
    pending: AtomicBool,
    sleeping: AtomicBool,
    /// Running processes or handing commands over: not watching its queue
    /// or sleeping (what an idle peer's watch asks, see [`spin`]).
    busy: AtomicBool,
    stop: AtomicBool,
    thread: OnceLock<Thread>,
}

impl Remote {
    /// Whether this worker runs, or has commands it has not taken yet (a
    /// sleeping worker just sent work is as good as busy).
    pub(crate) fn busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed) || self.pending.load(Ordering::Relaxed)
    }

    pub(crate) fn push_all(&self, cmds: impl IntoIterator<Item = Cmd>) {
        self.lock().extend(cmds);
        self.pending.store(true, Ordering::Release);
        self.wake_if_sleeping();
    }

    /// Moves all of `cmds` (a worker's outbox) onto the queue, leaving
    /// `cmds` empty. An empty queue and the outbox trade buffers instead,
    /// so the outbox keeps the capacity the queue's last taker left: a
    /// steady exchange between two workers allocates nothing.
    pub(crate) fn hand_all(&self, cmds: &mut Vec<Cmd>) {
        {
            let mut queue = self.lock();
            if queue.is_empty() {
                std::mem::swap(&mut *queue, cmds);
            } else {
                queue.append(cmds);
            }
        }
        if cmds.capacity() > KEEP_CAPACITY {
            *cmds = Vec::new();
        }
        self.pending.store(true, Ordering::Release);
        self.wake_if_sleeping();
    }

    /// Whether commands were pushed since the worker last took its queue.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Swaps the queued commands into `into` (empty) and clears `pending`
    /// first, so a push that comes after is seen by the next look.
    pub(crate) fn take_into(&self, into: &mut Vec<Cmd>) {
        self.pending.store(false, Ordering::Relaxed);
        std::mem::swap(into, &mut *self.lock());
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Cmd>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wake_if_sleeping(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst)
            && let Some(thread) = self.thread.get()
        {
            thread.unpark();
        }
    }
}

/// The body of worker thread `index`.
pub(crate) fn run(shared: Arc<Shared>, index: usize) {
    let remote = &shared.workers[index];
    // Set once, by this thread, before any other use.
    let _ = remote.thread.set(std::thread::current());
    let factories = shared.factories.clone();
    let core = Rc::new(RefCell::new(Core::new(
        index,
        shared.clone(),
        factories.len(),
    )));
    let mut frontends: Vec<_> = factories
        .iter()
        .enumerate()
        .map(|(i, f)| f.create(core.clone(), i))
        .collect();
    let mut spinner = Spinner::default();
    let peers = WorkerPeers {
        shared: &shared,
        index,
    };
    remote.busy.store(true, Ordering::Relaxed);
    // Front-ends that stopped on their budget with work still inside them.
    let mut unfinished = vec![false; frontends.len()];
    while !remote.stop.load(Ordering::SeqCst) {
        let mut c = core.borrow_mut();
        c.take_incoming();
        c.fire_timers(Instant::now());
        c.tell_exits();
        drop(c);
        for (i, frontend) in frontends.iter_mut().enumerate() {
            if unfinished[i] || core.borrow().has_ready(i) {
                unfinished[i] = frontend.run(RUN_BUDGET);
            }
        }
        let more = unfinished.iter().any(|u| *u);
        let mut c = core.borrow_mut();
        c.place_burst();
        for (worker, cmds) in c.outboxes() {
            shared.workers[worker].hand_all(cmds);
        }
        if more || c.any_ready() || c.telling() {
            continue;
        }
        let deadline = c.next_deadline();
        drop(c);
        remote.busy.store(false, Ordering::Relaxed);
        if !spinner.spin(remote, deadline, &peers) {
            park(remote, deadline);
            spinner.woke(remote.has_pending());
        }
        remote.busy.store(true, Ordering::Relaxed);
    }
    core.borrow_mut().shut_all_io();
    remote.busy.store(false, Ordering::Relaxed);
}

fn park(remote: &Remote, deadline: Option<Instant>) {
    remote.sleeping.store(true, Ordering::SeqCst);
    if !remote.lock().is_empty() || remote.stop.load(Ordering::SeqCst) {
        remote.sleeping.store(false, Ordering::SeqCst);
        return;
    }
    match deadline {
        Some(at) => {
            let now = Instant::now();
            if at > now {
                std::thread::park_timeout(at - now);
            }
        }
        None => std::thread::park(),
    }
    remote.sleeping.store(false, Ordering::SeqCst);
}

/// The other workers of worker `index`'s runtime, as its watch sees them.
struct WorkerPeers<'a> {
    shared: &'a Shared,
    index: usize,
}

impl WorkerPeers<'_> {
    fn busy_count(&self) -> usize {
        let others = self.shared.workers.iter().enumerate();
        others.filter(|(i, w)| *i != self.index && w.busy()).count()
    }
}

impl Peers for WorkerPeers<'_> {
    fn take_permit(&self) -> bool {
        SpinPermits::of_this_process().take(self.busy_count())
    }

    fn give_back(&self) {
        SpinPermits::of_this_process().give_back();
    }

    fn busy(&self) -> bool {
        self.busy_count() > 0
    }
}

#[cfg(test)]
mod tests;

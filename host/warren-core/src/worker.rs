//! Worker threads: each owns a [`Core`] and one instance of every front-end.
//!
//! A worker runs its ready processes, hands cross-worker commands over in
//! batches, and parks only when it has nothing to do, so a busy worker is
//! never woken per message; before it sleeps it watches its queue for a
//! few microseconds ([`SPIN`]), unless such watches have found nothing
//! lately. Wake-ups cannot be lost: a sender that finds the worker asleep
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

/// Resumptions a front-end may make before the worker checks its queue and
/// timers again; bounds how long remote messages and timers wait behind a
/// busy front-end.
const RUN_BUDGET: u32 = 256;

/// How long a worker with nothing to do watches its queue before it
/// sleeps. A command that arrives meanwhile (the reply of a process on
/// another worker, a host call's result) is taken without waking a
/// sleeping thread, which costs the sender a system call and this thread
/// tens of microseconds before it runs again (a message round trip
/// between two workers: 29-33 µs with a sleep at every hop, 12 µs with
/// this spin; 50 µs gained nothing more and slowed the WASM rows of
/// `warren-bench`, where a spinning worker competes for a core). Bounded
/// so that an idle worker gives its core back quickly.
const SPIN: std::time::Duration = std::time::Duration::from_micros(15);

/// Spins in a row that may find nothing before the worker stops spinning
/// for [`SPIN_REST`] sleeps: a worker whose commands come rarely (a timer,
/// an occasional request) does not burn a core it shares with others.
const SPIN_MISSES: u32 = 4;

/// Sleeps without a spin after [`SPIN_MISSES`] fruitless spins.
const SPIN_REST: u32 = 64;

/// A new process for a worker.
pub(crate) struct SpawnCmd {
    pub pid: Pid,
    pub queued: crate::directory::Queued,
    pub frontend: usize,
    pub program: Arc<Program>,
    pub args: Vec<Value>,
    pub context: Value,
    pub link_to: Option<Pid>,
    pub monitored_by: Option<Pid>,
    /// The function call the process runs, if it is a callee.
    pub call: Option<Arc<crate::funcs::Call>>,
}

/// A command for the worker that owns the target process.
pub(crate) enum Cmd {
    Spawn(SpawnCmd),
    Deliver(Pid, Item),
    Kill(Pid, ProcError),
    LinkExit(Pid, LinkExit),
    AddLink { target: Pid, peer: Pid },
    RemoveLink { target: Pid, peer: Pid },
    AddMonitor { target: Pid, watcher: Pid },
    RemoveMonitor { target: Pid, watcher: Pid },
}

impl Cmd {
    pub(crate) fn target(&self) -> Pid {
        match self {
            Cmd::Spawn(spawn) => spawn.pid,
            Cmd::Deliver(pid, _) | Cmd::Kill(pid, _) | Cmd::LinkExit(pid, _) => *pid,
            Cmd::AddLink { target, .. }
            | Cmd::RemoveLink { target, .. }
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
    stop: AtomicBool,
    thread: OnceLock<Thread>,
}

impl Remote {
    pub(crate) fn push_all(&self, cmds: impl IntoIterator<Item = Cmd>) {
        self.lock().extend(cmds);
        self.pending.store(true, Ordering::Release);
        self.wake_if_sleeping();
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
    let mut incoming = Vec::new();
    let mut spinner = Spinner::default();
    // Front-ends that stopped on their budget with work still inside them.
    let mut unfinished = vec![false; frontends.len()];
    while !remote.stop.load(Ordering::SeqCst) {
        remote.pending.store(false, Ordering::Relaxed);
        std::mem::swap(&mut incoming, &mut *remote.lock());
        let mut c = core.borrow_mut();
        for cmd in incoming.drain(..) {
            c.apply_incoming(cmd);
        }
        c.fire_timers(Instant::now());
        drop(c);
        for (i, frontend) in frontends.iter_mut().enumerate() {
            if unfinished[i] || core.borrow().has_ready(i) {
                unfinished[i] = frontend.run(RUN_BUDGET);
            }
        }
        let more = unfinished.iter().any(|u| *u);
        let mut c = core.borrow_mut();
        for (worker, cmds) in c.take_outbox() {
            shared.workers[worker].push_all(cmds);
        }
        if more || c.any_ready() {
            continue;
        }
        let deadline = c.next_deadline();
        drop(c);
        if spinner.spin(remote, deadline) {
            continue;
        }
        park(remote, deadline);
    }
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

/// Whether an idle worker spins before it sleeps (see [`SPIN`]).
#[derive(Default)]
struct Spinner {
    /// Fruitless spins in a row.
    misses: u32,
    /// Sleeps left without a spin.
    rest: u32,
}

impl Spinner {
    /// Watches `remote`'s queue for up to [`SPIN`] (or until `deadline`)
    /// unless resting; true when a command arrived or the worker stops.
    fn spin(&mut self, remote: &Remote, deadline: Option<Instant>) -> bool {
        if self.rest > 0 {
            self.rest -= 1;
            return false;
        }
        let start = Instant::now();
        if deadline.is_some_and(|at| at <= start) {
            return false; // a timer is due: nothing to wait for
        }
        let until = deadline.map_or(start + SPIN, |at| at.min(start + SPIN));
        loop {
            if remote.pending.load(Ordering::Acquire) || remote.stop.load(Ordering::Relaxed) {
                self.misses = 0;
                return true;
            }
            if Instant::now() >= until {
                self.misses += 1;
                if self.misses >= SPIN_MISSES {
                    self.misses = 0;
                    self.rest = SPIN_REST;
                }
                return false;
            }
            for _ in 0..32 {
                std::hint::spin_loop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spin_ends_on_a_pushed_command_and_rests_after_fruitless_ones() {
        let remote = Remote::default();
        let mut spinner = Spinner::default();
        // Nothing arrives: SPIN_MISSES watches, then SPIN_REST without one.
        for _ in 0..SPIN_MISSES {
            let start = Instant::now();
            assert!(!spinner.spin(&remote, None));
            assert!(start.elapsed() >= SPIN, "a watch lasts SPIN");
        }
        assert_eq!(spinner.rest, SPIN_REST);
        remote.push_all([Cmd::Kill(
            Pid::RUNTIME,
            ProcError::new(crate::ErrorKind::Internal, "x"),
        )]);
        for _ in 0..SPIN_REST {
            assert!(!spinner.spin(&remote, None), "resting: no watch");
        }
        // Rested: the next watch sees the pending command at once.
        assert!(spinner.spin(&remote, None));
        assert_eq!(spinner.misses, 0);
        // A due timer: nothing to watch for.
        remote.pending.store(false, Ordering::Relaxed);
        assert!(!spinner.spin(&remote, Some(Instant::now())));
    }
}

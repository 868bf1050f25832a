//! Function calls (`funcs`, modules.md §5): a call of a `function.lua`
//! entry runs as a short-lived process of that entry on the caller's host,
//! and its exit is the caller's result.
//!
//! A call is one of the caller's host calls (see [`crate::hostcall`]): it
//! counts against `max_ops_per_process` and `max_ops_per_host`, and its
//! result comes back as [`Item::Done`](crate::Item::Done). Nothing here
//! knows a language.
//!
//! Guarantees:
//! - the callee is an ordinary process of its own entry: its own grants,
//!   memory and CPU limits, counted against its host's `max_processes`;
//!   nothing passes from the caller but the copied arguments and context;
//! - at most [`Pool::size`] calls of one entry run at once; the others wait
//!   in arrival order, and a `static` pool refuses (`RATE_LIMITED`) a call
//!   beyond [`Pool::buffer`] waiting ones, before anything starts;
//! - a call ends exactly once: with the callee's exit, its timeout
//!   (`TIMEOUT`), or its abandonment (the caller exits or cancels it); in
//!   the last two cases the callee is killed, so nothing keeps running for
//!   a caller that no longer waits.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::error::{ErrorKind, ProcError};
use crate::hostcall::{OpResult, OpSlot, OpValue};
use crate::item::{Exit, Item};
use crate::pid::Pid;
use crate::runtime::{Shared, SpawnRequest};
use crate::value::Value;
use crate::worker::Cmd;

/// Calls of one entry at once in a `lazy` or `adaptive` pool without
/// `max_size` (Wippy's default).
pub const DEFAULT_MAX_SIZE: usize = 16;

/// Calls at once in a `static` pool without `workers` or `size` (Wippy's).
pub const DEFAULT_STATIC_WORKERS: usize = 8;

/// Waiting calls per worker of a `static` pool without `buffer` (Wippy's
/// `workers × 64`).
pub const STATIC_BUFFER_PER_WORKER: usize = 64;

/// How a function entry's calls are admitted (`pool.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// At most `max_size` at once; further calls wait.
    Lazy,
    /// As `Lazy` (compiled code is kept per worker anyway).
    Adaptive,
    /// `workers` at once, `buffer` waiting, then `RATE_LIMITED`.
    Static,
    /// Runs at once on the caller's worker, never queued.
    Inline,
}

impl PoolKind {
    /// The `pool.type` spelling.
    pub fn name(self) -> &'static str {
        match self {
            PoolKind::Lazy => "lazy",
            PoolKind::Adaptive => "adaptive",
            PoolKind::Static => "static",
            PoolKind::Inline => "inline",
        }
    }
}

/// A function entry's `pool:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    /// `pool.type`.
    pub kind: PoolKind,
    /// Calls that run at once.
    pub size: usize,
    /// Calls that may wait beyond those (only a `static` pool refuses more).
    pub buffer: usize,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            kind: PoolKind::Lazy,
            size: DEFAULT_MAX_SIZE,
            buffer: usize::MAX,
        }
    }
}

/// The application's function entries and their pools, shared with the
/// runtime through [`RuntimeBuilder::extension`](crate::RuntimeBuilder::extension).
#[derive(Default)]
pub struct Functions {
    gates: FxHashMap<String, Arc<Gate>>,
}

impl Functions {
    /// No functions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares entry `id` a function with `pool`.
    pub fn insert(&mut self, id: impl Into<String>, pool: Pool) {
        let gate = Gate {
            pool,
            state: Mutex::default(),
        };
        self.gates.insert(id.into(), Arc::new(gate));
    }

    /// Whether entry `id` is a function.
    pub fn contains(&self, id: &str) -> bool {
        self.gates.contains_key(id)
    }

    /// The pool of function `id`.
    pub fn pool(&self, id: &str) -> Option<Pool> {
        self.gates.get(id).map(|g| g.pool)
    }

    /// Calls of function `id` running and waiting now.
    pub fn load(&self, id: &str) -> Option<(usize, usize)> {
        Some(self.gates.get(id)?.load())
    }

    pub(crate) fn gate(&self, id: &str) -> Option<&Arc<Gate>> {
        self.gates.get(id)
    }
}

/// A call to start: what [`Core::call_function`](crate::Core::call_function) takes.
#[derive(Debug)]
pub struct FunctionCall {
    /// The function entry's id.
    pub entry: String,
    /// Its arguments, copied like a spawn's.
    pub args: Vec<Value>,
    /// What its `ctx` module reads (`Nil`: nothing).
    pub context: Value,
    /// When it is killed and the caller gets `TIMEOUT` (`None`: never).
    pub timeout: Option<Duration>,
}

/// One entry's admission: calls running and those waiting for a turn, per
/// host. A callee runs on its caller's host, so each host has the pool to
/// itself: with one pool for all, a tenant that kept 1,200 calls queued
/// behind its own busy workers made another tenant's call of a trivial
/// function wait 3.4 s (red team O).
pub(crate) struct Gate {
    pool: Pool,
    state: Mutex<FxHashMap<u16, Turns>>,
}

/// One host's calls of one entry.
#[derive(Default)]
struct Turns {
    running: usize,
    queue: VecDeque<Arc<Call>>,
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, FxHashMap<u16, Turns>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls running and waiting now, on every host.
    fn load(&self) -> (usize, usize) {
        let hosts = self.lock();
        hosts
            .values()
            .fold((0, 0), |(r, q), t| (r + t.running, q + t.queue.len()))
    }

    /// Takes a turn for a new call: `Ok(true)` runs it now, `Ok(false)`
    /// queued it. `RATE_LIMITED` from a full `static` pool.
    pub(crate) fn admit(&self, call: &Arc<Call>, entry: &str) -> Result<bool, ProcError> {
        if self.pool.kind == PoolKind::Inline {
            return Ok(true);
        }
        let mut hosts = self.lock();
        let turns = hosts.entry(call.caller.host()).or_default();
        if turns.running < self.pool.size {
            turns.running += 1;
            return Ok(true);
        }
        if turns.queue.len() >= self.pool.buffer {
            let (size, buffer) = (self.pool.size, self.pool.buffer);
            let mut err = ProcError::new(
                ErrorKind::RateLimited,
                format!(
                    "function '{entry}': its static pool runs {size} calls and holds {buffer} \
                     waiting ones already"
                ),
            );
            err.retryable = true;
            return Err(err);
        }
        turns.queue.push_back(call.clone());
        Ok(false)
    }

    /// Drops `call` from the queue (it ended while waiting).
    fn forget(&self, call: &Call) {
        let mut hosts = self.lock();
        if let Some(turns) = hosts.get_mut(&call.caller.host()) {
            turns.queue.retain(|c| !std::ptr::eq(Arc::as_ptr(c), call));
        }
    }

    /// Gives a finished call's turn (on `host`) to that host's next
    /// waiting call that was not abandoned meanwhile (returned, for the
    /// caller to start).
    pub(crate) fn release(&self, host: u16) -> Option<Arc<Call>> {
        if self.pool.kind == PoolKind::Inline {
            return None;
        }
        let mut hosts = self.lock();
        let turns = hosts.get_mut(&host)?;
        while let Some(next) = turns.queue.pop_front() {
            if next.is_waiting() {
                return Some(next);
            }
        }
        turns.running = turns.running.saturating_sub(1);
        if turns.running == 0 {
            hosts.remove(&host);
        }
        None
    }
}

/// Where a call stands.
enum Phase {
    /// Admitted, waiting for a turn; holds what the callee is spawned
    /// with, its bytes held against the caller's host's `memory_total`
    /// until it is spawned (whose own count then takes over) or dropped.
    /// Counted by no host, 4,096 queued calls of 1 MB arguments made the
    /// host hold 3.95 GB under a 64 MiB `memory_total` (red team Q).
    Waiting(SpawnRequest, crate::item::Reservation),
    /// Its callee runs.
    Running(Pid),
    /// Its callee could not be spawned; the error is yet to be delivered.
    Unstarted,
    /// Its result was delivered, or it was abandoned.
    Over,
}

/// One call in flight (shared by the caller's op table, the gate's queue,
/// the callee's process entry and the timeout task).
pub(crate) struct Call {
    pub(crate) caller: Pid,
    pub(crate) op: u64,
    /// The caller's worker, where the result is delivered.
    pub(crate) worker: usize,
    pub(crate) gate: Arc<Gate>,
    phase: Mutex<Phase>,
    /// The host's count of operations in flight, given back when it ends.
    slot: Mutex<Option<OpSlot>>,
    /// The timeout task, aborted when the call ends first.
    timer: Mutex<Option<tokio::task::AbortHandle>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Call {
    pub(crate) fn new(
        (caller, op, worker): (Pid, u64, usize),
        gate: Arc<Gate>,
        (req, held): (SpawnRequest, crate::item::Reservation),
        slot: OpSlot,
    ) -> Self {
        Call {
            caller,
            op,
            worker,
            gate,
            phase: Mutex::new(Phase::Waiting(req, held)),
            slot: Mutex::new(Some(slot)),
            timer: Mutex::default(),
        }
    }

    fn is_waiting(&self) -> bool {
        matches!(*lock(&self.phase), Phase::Waiting(..))
    }

    pub(crate) fn set_timer(&self, timer: tokio::task::AbortHandle) {
        *lock(&self.timer) = Some(timer);
    }

    /// The spawn request of a waiting call, leaving it running as `pid`
    /// (given by `spawn`); `None` if it was abandoned meanwhile.
    pub(crate) fn begin(
        &self,
        spawn: impl FnOnce(SpawnRequest) -> Result<Pid, ProcError>,
    ) -> Result<Option<Pid>, ProcError> {
        let mut phase = lock(&self.phase);
        let Phase::Waiting(..) = &*phase else {
            return Ok(None);
        };
        let Phase::Waiting(req, held) = std::mem::replace(&mut *phase, Phase::Over) else {
            return Ok(None);
        };
        // The spawn holds the arguments from here (`prepare_spawn`).
        drop(held);
        match spawn(req) {
            Ok(pid) => {
                *phase = Phase::Running(pid);
                Ok(Some(pid))
            }
            Err(err) => {
                *phase = Phase::Unstarted;
                Err(err)
            }
        }
    }

    /// Ends the call with `result`: the command that delivers it to the
    /// caller, or `None` if it had ended already. `kill` is called with
    /// the callee when one still runs (a timeout, an abandonment).
    pub(crate) fn end(&self, result: Option<OpResult>, kill: impl FnOnce(Pid)) -> Option<Cmd> {
        let previous = std::mem::replace(&mut *lock(&self.phase), Phase::Over);
        if matches!(previous, Phase::Over) {
            return None;
        }
        if let Some(timer) = lock(&self.timer).take() {
            timer.abort();
        }
        lock(&self.slot).take();
        match previous {
            Phase::Running(pid) => kill(pid),
            // Out of the queue now, so abandoned calls cannot pile up
            // behind a call that never ends.
            Phase::Waiting(..) => self.gate.forget(self),
            Phase::Unstarted | Phase::Over => {}
        }
        let result = result?;
        Some(Cmd::Deliver(
            self.caller,
            Item::Done {
                op: self.op,
                result,
            },
        ))
    }

    /// The result a callee's exit gives the caller.
    pub(crate) fn result_of(exit: Exit) -> OpResult {
        exit.map(OpValue::Value)
    }
}

/// The error a callee gets when its caller no longer waits.
pub(crate) fn abandoned() -> ProcError {
    ProcError::new(
        ErrorKind::Canceled,
        "function call canceled: its caller exited or canceled it",
    )
}

/// Kills `pid` from any thread.
pub(crate) fn kill(shared: &Shared, pid: Pid, reason: ProcError) {
    if let Some(worker) = shared.directory.get(pid) {
        shared.workers[worker].push_all([Cmd::Kill(pid, reason)]);
    }
}

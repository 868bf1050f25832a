//! The async host-call path: how a process waits on I/O without holding
//! its worker.
//!
//! A front-end turns a blocking module call (a query, a request) into a
//! closure that builds its future and hands it to
//! [`Core::start_op`](crate::Core::start_op). The future is built and
//! runs on one shared tokio runtime ([`io_runtime`]; blocking
//! drivers use its blocking pool, never a scheduler worker); only the
//! calling coroutine waits. Its [`OpResult`] comes back to the process's
//! worker as an [`Item::Done`](crate::Item::Done), like any other item, and
//! the front-end resumes the coroutine with it.
//!
//! Guarantees:
//! - every operation has a deadline: past it, it is dropped and completes
//!   with `TIMEOUT`; one whose work panics completes with `INTERNAL` (its
//!   caller is never left waiting); blocking work (a closure on the
//!   blocking lane, see
//!   [`Core::start_blocking_op`](crate::Core::start_blocking_op)) cannot be
//!   interrupted once running, so its caller gets `TIMEOUT` while it keeps
//!   its host slot until it returns; a queued call (see
//!   [`Core::start_queued_op`](crate::Core::start_queued_op)) is stopped
//!   as its driver allows and, dropped unrun, completes with `INTERNAL`;
//!   an operation's host slot is free before its caller hears of the
//!   result;
//! - a process has at most [`HostLimits::max_ops_per_process`] operations
//!   in flight and a host [`HostLimits::max_ops_per_host`]; the call that
//!   would start one more fails with `RATE_LIMITED` before any work;
//! - resources an operation creates (a transaction, a stream) live in the
//!   process's handle table, at most [`HostLimits::max_open_handles`] of
//!   them (and at most [`HostLimits::max_handles_per_host`] for all the
//!   processes of its host together, given back as handles close), looked
//!   up only by their owner, so a handle id is worthless to any other
//!   process;
//! - when a process exits, however it exits, its operations are aborted
//!   (their futures dropped, which interrupts the driver's work) and
//!   every handle is [`Resource::close`]d, before links and monitors hear
//!   of the exit.
//!
//! Nothing here is specific to a language: a component can be given the
//! same calls through the same path.
//!
//! [`HostLimits::max_ops_per_process`]: crate::HostLimits::max_ops_per_process
//! [`HostLimits::max_ops_per_host`]: crate::HostLimits::max_ops_per_host
//! [`HostLimits::max_open_handles`]: crate::HostLimits::max_open_handles
//! [`HostLimits::max_handles_per_host`]: crate::HostLimits::max_handles_per_host

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::error::{ErrorKind, ProcError};
use crate::value::Value;

/// Threads of the shared I/O runtime that poll futures. I/O-bound work
/// needs few: the drivers' blocking calls run on the blocking pool.
pub const IO_THREADS: usize = 2;

/// Most threads of the I/O runtime's blocking pool (what the drivers
/// block on; SQLite statements, file and variable calls have lanes of
/// their own, [`crate::lane`], fair between hosts). A flood of blocking
/// calls waits in tokio's queue instead of starting a thread each.
pub const IO_BLOCKING_THREADS: usize = 64;

/// What an operation completes with.
pub type OpResult = Result<OpValue, ProcError>;

/// The value of a completed operation.
#[derive(Clone, Debug)]
pub enum OpValue {
    /// Plain data, converted for the process like a message payload.
    Value(Value),
    /// Plain data whose bytes stay counted (against the process's room,
    /// the host's `memory_total`) by `Keep` until the front-end has built
    /// it for the process: a finished response body waiting in the
    /// process's queue is still the process's memory.
    Kept(Value, Keep),
    /// A new resource for the process's handle table.
    Handle(Handle),
}

impl OpValue {
    /// The value, with what keeps it counted: `Some` for plain data.
    pub fn into_data(self) -> Result<(Value, Option<Keep>), Handle> {
        match self {
            OpValue::Value(v) => Ok((v, None)),
            OpValue::Kept(v, keep) => Ok((v, Some(keep))),
            OpValue::Handle(h) => Err(h),
        }
    }
}

/// Whatever keeps an operation's result counted while it waits for its
/// process (a body's hold on its room); the count is given back when the
/// last clone is dropped: once the process has the value, or with the
/// process's queue when it ends first.
#[derive(Clone)]
pub struct Keep(#[expect(dead_code, reason = "held for its Drop")] Arc<dyn Send + Sync>);

impl Keep {
    /// Keeps `guard` alive (and what it counts counted) until dropped.
    pub fn new<T: Send + Sync + 'static>(guard: T) -> Keep {
        Keep(Arc::new(guard))
    }
}

impl fmt::Debug for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keep")
    }
}

/// Something a process holds open on the host: a transaction, a stream.
pub trait Resource: Send + Sync + 'static {
    /// What it is, for messages (`transaction`, `stream`).
    fn kind(&self) -> &'static str;
    /// Ends it without waiting: rolls back, closes, drops connections.
    /// Idempotent; work it queues runs before any later use of the same
    /// connection.
    fn close(&self);
    /// The resource itself, for the module that made it.
    fn as_any(&self) -> &dyn Any;
}

/// A shared reference to a [`Resource`].
#[derive(Clone)]
pub struct Handle(pub Arc<dyn Resource>);

impl Handle {
    /// The resource as a `T`, if it is one.
    pub fn downcast<T: 'static>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref::<T>()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({})", self.0.kind())
    }
}

/// The shared runtime every operation runs on, started on first use and
/// kept for the life of the program (no runtime is ever dropped from one
/// of its own threads).
pub fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(IO_THREADS)
            .max_blocking_threads(IO_BLOCKING_THREADS)
            .thread_name("warren-io")
            // What its threads read is freed on a worker: see warren-alloc.
            .on_thread_start(warren_alloc::map_large_blocks_here)
            .enable_all()
            .build()
            .unwrap_or_else(|err| panic!("cannot start the I/O runtime: {err}"))
    })
}

/// The error of an operation past its deadline.
pub fn timed_out(what: &str, after: Duration) -> ProcError {
    let mut err = ProcError::new(
        ErrorKind::Timeout,
        format!("{what}: no result within {after:?}"),
    );
    err.retryable = true;
    err
}

/// A process's operations in flight and open handles (boxed in its core
/// entry: most processes never do I/O).
#[derive(Default)]
pub(crate) struct ProcIo {
    pub(crate) ops: FxHashMap<u64, OpRun>,
    pub(crate) handles: FxHashMap<u64, Handle>,
    pub(crate) next: u64,
    /// Bytes its calls in flight hold copied out of it (see [`Copied`]).
    pub(crate) copied: Arc<AtomicU64>,
}

/// Bytes a host call copied out of its process (SQL parameters, a file's
/// data, a request's body), counted in the process's total in flight
/// until the copy is dropped: when the call's work ends, or is dropped
/// unrun, even after the process itself is gone. Modules bound that total
/// by the process's `memory_per_process` (so 64 calls in flight cannot
/// make the host hold 64 copies of the process's largest string), and the
/// bytes are held against the host's `memory_total` as long (`charged`):
/// counted per process only, 60 processes that each queued 60 MB of SQL
/// parameters behind an open transaction and exited had the host hold
/// 3.5 GB under a 64 MiB `memory_total` (red team Q).
#[derive(Debug)]
pub struct Copied {
    counter: Arc<AtomicU64>,
    n: u64,
    /// The host whose `memory_total` holds the bytes, given back on drop.
    charged: Option<Arc<crate::limits::HostQuota>>,
}

impl Copied {
    /// Counts `n` more bytes in `counter` until dropped; `charged`, if
    /// any, has reserved them already and gets them back then.
    pub fn hold(
        counter: Arc<AtomicU64>,
        n: u64,
        charged: Option<Arc<crate::limits::HostQuota>>,
    ) -> Copied {
        counter.fetch_add(n, Ordering::AcqRel);
        Copied {
            counter,
            n,
            charged,
        }
    }
}

impl Drop for Copied {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.n, Ordering::AcqRel);
        if let Some(quota) = &self.charged {
            quota.release_memory(self.n);
        }
    }
}

/// How an operation in flight runs.
pub(crate) enum OpRun {
    /// A future on the I/O runtime, and its host slot.
    Task(tokio::task::AbortHandle, SharedSlot),
    /// A closure on the blocking lane.
    Blocking(BlockingRun),
    /// A blocking call past its deadline whose `TIMEOUT` is on its way to
    /// the process.
    Expired,
    /// A function call (its callee is a process).
    Call(Arc<crate::funcs::Call>),
}

impl OpRun {
    /// Stops it: the future is dropped, the callee killed.
    pub(crate) fn abort(self, shared: &crate::runtime::Shared) {
        match self {
            // The aborted future is dropped later, on the I/O runtime:
            // its slot is given back now, so a process that starts right
            // after this one ended is not refused for it.
            OpRun::Task(task, slot) => {
                task.abort();
                slot.release();
            }
            // A lane job only if it has not started (running work cannot be
            // interrupted); a queued call as its driver can (an SQLite
            // statement is interrupted). A late result is dropped.
            OpRun::Blocking(b) => b.task.stop(),
            OpRun::Expired => {}
            OpRun::Call(call) => {
                call.end(None, |pid| {
                    crate::funcs::kill(shared, pid, crate::funcs::abandoned());
                });
            }
        }
    }
}

/// A blocking operation in flight: its task and its deadline, kept by its
/// worker (see [`Core::start_blocking_op`](crate::Core::start_blocking_op)).
pub(crate) struct BlockingRun {
    pub(crate) task: Stopper,
    /// When the caller gets `TIMEOUT`.
    pub(crate) at: std::time::Instant,
    /// The operation, for the timeout's message.
    pub(crate) what: &'static str,
    /// How long it was given, for the timeout's message.
    pub(crate) deadline: Duration,
}

/// How a blocking operation is stopped.
pub(crate) enum Stopper {
    /// A job on the blocking lane: dropped unrun if not started.
    Lane(crate::lane::LaneHandle),
    /// A driver's own (see [`Core::start_queued_op`](crate::Core::start_queued_op)).
    Hook(Box<dyn Fn() + Send>),
}

impl Stopper {
    pub(crate) fn stop(&self) {
        match self {
            Stopper::Lane(task) => task.abort(),
            Stopper::Hook(stop) => stop(),
        }
    }
}

/// Hands the result of an operation started with
/// [`Core::start_queued_op`](crate::Core::start_queued_op) to its
/// process's worker, from whatever thread has it. Dropped without
/// [`OpDone::complete`] (its driver dropped the work unrun or panicked),
/// it completes the operation with `INTERNAL`, so no caller waits for a
/// result that will never come. The host slot is free before the caller
/// hears, as for every operation.
pub struct OpDone {
    pub(crate) slot: Option<OpSlot>,
    pub(crate) shared: Arc<crate::runtime::Shared>,
    pub(crate) worker: usize,
    pub(crate) me: crate::pid::Pid,
    pub(crate) op: u64,
    pub(crate) what: &'static str,
}

impl OpDone {
    /// Completes the operation with `result`.
    pub fn complete(mut self, result: OpResult) {
        self.deliver(result);
    }

    fn deliver(&mut self, result: OpResult) {
        if self.slot.take().is_none() {
            return;
        }
        let (me, op) = (self.me, self.op);
        let cmd = crate::worker::Cmd::Deliver(me, crate::item::Item::Done { op, result });
        self.shared.workers[self.worker].push_all([cmd]);
    }
}

impl Drop for OpDone {
    fn drop(&mut self) {
        if self.slot.is_some() {
            let message = format!("{}: the operation ended without a result", self.what);
            self.deliver(Err(ProcError::new(ErrorKind::Internal, message)));
        }
    }
}

impl fmt::Debug for OpDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpDone({} op {} of {})", self.what, self.op, self.me)
    }
}

impl ProcIo {
    /// Aborts every operation and closes every handle, giving the handles
    /// back to `quota` (its process's host's; the caller has dropped the
    /// blocking operations' deadlines).
    pub(crate) fn shut(self, shared: &crate::runtime::Shared, quota: &crate::limits::HostQuota) {
        for op in self.ops.into_values() {
            op.abort(shared);
        }
        quota.release_handles(self.handles.len());
        for handle in self.handles.into_values() {
            handle.0.close();
        }
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

/// Gives one slot of a host's operation count back when the operation's
/// task ends, completed or aborted.
pub(crate) struct OpSlot(pub(crate) Arc<crate::limits::HostQuota>);

impl Drop for OpSlot {
    fn drop(&mut self) {
        self.0.release_op();
    }
}

/// An [`OpSlot`] that either of its owners gives back, whichever comes
/// first: the task when its future ends, or its worker when it aborts the
/// task (the process cancelled the call or ended).
#[derive(Clone)]
pub(crate) struct SharedSlot(Arc<std::sync::Mutex<Option<OpSlot>>>);

impl SharedSlot {
    pub(crate) fn new(slot: OpSlot) -> Self {
        SharedSlot(Arc::new(std::sync::Mutex::new(Some(slot))))
    }

    /// Gives the slot back unless it already was.
    pub(crate) fn release(&self) {
        let slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        drop(slot);
    }
}

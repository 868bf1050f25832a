//! Runs a worker's WASM processes: each is a future (the component's `run`
//! on a wasmtime fiber) polled when the host has queued something for it.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};
use warren_core::share::ShareRefused;
use warren_core::{CoreRef, ErrorKind, Exit, Frontend, Item, Pid, ProcError, Program, Value};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::runtime::with_ambient_tokio_runtime;

use crate::host::from_wit_kind;
use crate::limiter::{ProcLimiter, QuotaExceeded};
use crate::payload::{decode, encode};
use crate::program::WasmProgram;
use crate::program::slice_ticks;
use crate::state::{ProcState, install_core};
use crate::wasi::StderrTail;

/// Most handles (channels, timers, WASI streams) one component may hold at
/// once: each is host memory outside its linear memory. Its own channels
/// and timers are also counted as its memory ([`HANDLE_BYTES`]); WASI's
/// (streams, pollables) only by this bound.
///
/// [`HANDLE_BYTES`]: crate::limiter::HANDLE_BYTES
pub const MAX_RESOURCES: usize = 10_000;

/// Bytes of host data one host call may lift out of a guest beyond its
/// host's `max_message_bytes` (wasmtime's "hostcall fuel": a list costs
/// the host size of its elements, so a list of payloads costs a `Vec`
/// header each on top of their bytes): the headers of the most payloads a
/// message may have, and as much again for names and other arguments.
/// Past it the call traps before the host builds the rest. Wasmtime's
/// default (128 MiB) let one `send` of five million one-byte payloads
/// build 200 MB of host vectors over 250 ms before the payload count was
/// checked.
pub const HOSTCALL_SLACK: usize =
    2 * warren_core::limits::MAX_PAYLOADS_PER_MESSAGE * size_of::<Vec<u8>>();

/// The least a host call may lift, whatever `max_message_bytes` is: WASI
/// calls (a file write) take buffers that are not messages.
pub const MIN_HOSTCALL_BYTES: usize = 4 << 20;

/// The hostcall fuel of a process on a host with `max_message_bytes`.
fn hostcall_fuel(max_message_bytes: usize) -> usize {
    max_message_bytes
        .max(MIN_HOSTCALL_BYTES)
        .saturating_add(HOSTCALL_SLACK)
}

/// A handle past [`MAX_RESOURCES`]: the trap that carries it ends the
/// process `RATE_LIMITED` naming the bound (wasmtime's own error said only
/// "resource table has no free keys").
#[derive(Debug, thiserror::Error)]
#[error(
    "too many handles: a component may hold at most {MAX_RESOURCES} channels, timers and \
     streams at once (MAX_RESOURCES)"
)]
pub struct TooManyHandles;

/// Why a handle could not be made, as a trap ([`TooManyHandles`] when the
/// table is full).
pub(crate) fn handle_error(e: wasmtime::component::ResourceTableError) -> wasmtime::Error {
    match e {
        wasmtime::component::ResourceTableError::Full => wasmtime::Error::new(TooManyHandles),
        other => wasmtime::Error::new(other),
    }
}

type ProcFuture = Pin<Box<dyn Future<Output = Exit>>>;

struct Proc {
    future: ProcFuture,
    /// Wakes the process when a WASI call finishes on another thread.
    waker: Waker,
    /// Time spent running it so far, against its host's `cpu_budget`.
    cpu: Duration,
}

pub(crate) struct WasmDriver {
    core: CoreRef,
    index: usize,
    procs: FxHashMap<Pid, Proc>,
    runnable: VecDeque<Pid>,
    queued: FxHashSet<Pid>,
    /// Odd while it polls components: the epoch ticker ticks only then.
    ticking: Arc<crate::ticker::Slot>,
}

impl WasmDriver {
    pub(crate) fn new(core: CoreRef, index: usize) -> Self {
        install_core(core.clone());
        WasmDriver {
            core,
            index,
            procs: FxHashMap::default(),
            runnable: VecDeque::new(),
            queued: FxHashSet::default(),
            ticking: crate::ticker::slot(),
        }
    }

    fn wake(&mut self, pid: Pid) {
        if self.queued.insert(pid) {
            self.runnable.push_back(pid);
        }
    }

    fn deliver(&mut self, pid: Pid, item: Item) {
        if let Item::Start { program, args, .. } = item {
            self.start(pid, &program, args);
            return;
        }
        if let Item::Kill(reason) = item {
            self.procs.remove(&pid);
            self.core.borrow_mut().exit(pid, Err(reason));
            return;
        }
        if !self.procs.contains_key(&pid) {
            return;
        }
        // The core files messages, events and timer fires in the mailbox
        // it keeps (`Core::with_mailbox`) and queues `Wake` for them;
        // components start no host calls yet (hostcall.rs), so a `Done`
        // has no waiter. Either way the process looks again.
        self.wake(pid);
    }

    fn start(&mut self, pid: Pid, program: &Arc<Program>, args: Vec<Value>) {
        let Some(code) = program.code.downcast_ref::<WasmProgram>() else {
            let err = ProcError::new(
                ErrorKind::Invalid,
                format!("entry {} is not a component", program.id),
            );
            self.core.borrow_mut().exit(pid, Err(err));
            return;
        };
        let quota = self.core.borrow().quota().clone();
        let (wasi, stderr) = match crate::wasi::WasiSlot::new(&code.grants, &quota, pid) {
            Ok(made) => made,
            Err(e) => {
                let err = ProcError::new(ErrorKind::Unavailable, format!("{}: {e}", program.id));
                self.core.borrow_mut().exit(pid, Err(err));
                return;
            }
        };
        // The host's share of the engine's pool, taken before anything
        // is instantiated: held by the future, so given back when the
        // process ends however it ends, after its store is dropped.
        let hosts = self.core.borrow().host_count();
        let slot = match &code.slots {
            Some(slots) => match slots.take(&quota, hosts) {
                Ok(slot) => Some(slot),
                Err(refused) => {
                    // A full pool is the engine's, as wasmtime's own refusal
                    // was; past its share, the host's quota.
                    let kind = match refused {
                        ShareRefused::Full { .. } => ErrorKind::Unavailable,
                        ShareRefused::Share { .. } => ErrorKind::RateLimited,
                    };
                    let why = format!(
                        "{}: cannot instantiate: instance pool: {refused}",
                        program.id
                    );
                    let mut err = ProcError::new(kind, why);
                    err.retryable = true;
                    self.core.borrow_mut().exit(pid, Err(err));
                    return;
                }
            },
            None => None,
        };
        let slice = slice_ticks(quota.limits.cpu_slice);
        // An entry's own `limits.memory` overrides its host's default.
        let max_memory = code
            .grants
            .memory
            .unwrap_or(quota.limits.memory_per_process);
        let state = ProcState {
            pid,
            next_timer: 0,
            wasi,
            table: resource_table(),
            limits: ProcLimiter::new(quota, max_memory),
        };
        let pre = code.pre.clone();
        let args: Vec<Vec<u8>> = args.iter().map(encode).collect();
        let future = async move {
            let _slot = slot; // dropped after the store (declared before it)
            let mut store = Store::new(pre.engine(), state);
            store.limiter(|s| &mut s.limits);
            let max_message = store.data().limits.quota().limits.max_message_bytes;
            store.set_hostcall_fuel(hostcall_fuel(max_message));
            // Past its slice a guest yields; its waker queues it again
            // behind the worker's other ready processes.
            store.set_epoch_deadline(slice);
            store.epoch_deadline_callback(move |_| Ok(UpdateDeadline::Yield(slice)));
            let instance = match pre.instantiate_async(&mut store).await {
                Ok(instance) => instance,
                Err(e) => return not_started(&e, &stderr),
            };
            let called = match instance.call_run(&mut store, &args).await {
                Ok(called) => called,
                Err(e) => return guest_ended(&e, &stderr),
            };
            match called {
                Ok(bytes) => {
                    // Measured before it is decoded: a decoded tree can be
                    // some 30 times its encoding (the core bounds the value).
                    let max = store.data().limits.quota().limits.max_message_bytes;
                    if bytes.len() > max {
                        let big = warren_core::error::one_too_large("a result", bytes.len(), max);
                        let why = format!("the process's result cannot be delivered: {big}");
                        return Err(ProcError::new(ErrorKind::Invalid, why));
                    }
                    decode(&bytes)
                        .map_err(|e| ProcError::new(ErrorKind::Invalid, format!("result: {e}")))
                }
                Err(e) => Err(ProcError {
                    kind: from_wit_kind(e.kind),
                    message: e.message,
                    retryable: e.retryable,
                    details: None,
                }),
            }
        };
        self.procs.insert(
            pid,
            Proc {
                future: Box::pin(future),
                waker: self.core.borrow().waker(pid),
                cpu: Duration::ZERO,
            },
        );
        self.wake(pid);
    }

    fn poll(&mut self, pid: Pid) {
        let Some(proc) = self.procs.get_mut(&pid) else {
            return;
        };
        let mut cx = Context::from_waker(&proc.waker);
        let started = Instant::now();
        // WASI calls that need an async runtime (file streams, clocks) get
        // wasmtime-wasi's shared one; they wake the process when done. A
        // host call that panics ends this process only, never the worker.
        let polled = catch_unwind(AssertUnwindSafe(|| {
            with_ambient_tokio_runtime(|| proc.future.as_mut().poll(&mut cx))
        }));
        proc.cpu += started.elapsed();
        let exit = match polled {
            Ok(Poll::Pending) => match self.core.borrow().quota().cpu_budget_exceeded(proc.cpu) {
                Some(reason) => Err(reason),
                None => return,
            },
            Ok(Poll::Ready(exit)) => exit,
            Err(panic) => Err(host_panic(panic.as_ref())),
        };
        self.procs.remove(&pid);
        self.core.borrow_mut().exit(pid, exit);
    }
}

/// How a process whose component could not be instantiated ends: a
/// memory or table whose initial size its quota refuses ends it as any
/// later growth would (`RATE_LIMITED`, not worth a retry); a start
/// function that traps or exits, as a trap or an exit; anything else,
/// most often the engine's instance pool being full, as `UNAVAILABLE`,
/// worth a retry later.
fn not_started(e: &wasmtime::Error, stderr: &StderrTail) -> Exit {
    if e.is::<QuotaExceeded>() || e.is::<I32Exit>() || e.is::<wasmtime::Trap>() {
        return guest_ended(e, stderr);
    }
    let mut err = ProcError::new(ErrorKind::Unavailable, format!("cannot instantiate: {e:#}"));
    err.retryable = true;
    Err(err)
}

/// How a process ends when its component stops with an error: past a
/// memory quota, `RATE_LIMITED` naming the limit; after `wasi:cli/exit`,
/// normally for status 0 and as a failure naming the status otherwise;
/// anything else is a trap (`INTERNAL`). A failure's message ends with the
/// last lines the guest wrote to stderr (a Rust panic, or the error a
/// `main` returning `Err` printed before it exited with status 1).
fn guest_ended(e: &wasmtime::Error, stderr: &StderrTail) -> Exit {
    if let Some(quota) = e.downcast_ref::<QuotaExceeded>() {
        return Err(quota.reason());
    }
    // A handle past the table's cap, made by this crate or by
    // wasmtime-wasi's own code (a file, a stream), ends it the same way.
    let wasi_full = matches!(
        e.downcast_ref::<wasmtime::component::ResourceTableError>(),
        Some(wasmtime::component::ResourceTableError::Full)
    );
    if e.downcast_ref::<TooManyHandles>().is_some() || wasi_full {
        return Err(ProcError::new(
            ErrorKind::RateLimited,
            TooManyHandles.to_string(),
        ));
    }
    let (kind, what) = match e.downcast_ref::<I32Exit>() {
        Some(I32Exit(0)) => return Ok(Value::Nil),
        Some(I32Exit(status)) => (
            ErrorKind::Internal,
            format!("exited with status {status} (wasi:cli/exit)"),
        ),
        None => (ErrorKind::Internal, format!("trap: {e:#}")),
    };
    let message = match stderr.text() {
        Some(said) => format!("{what} (guest stderr: {said})"),
        None => what,
    };
    Err(ProcError::new(kind, message))
}

/// A process's handle table, capped at [`MAX_RESOURCES`].
fn resource_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    table
}

fn host_panic(panic: &(dyn std::any::Any + Send)) -> ProcError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into());
    ProcError::new(
        ErrorKind::Internal,
        format!("a host call of this component failed: {what}"),
    )
}

impl Frontend for WasmDriver {
    fn run(&mut self, budget: u32) -> bool {
        loop {
            let item = self.core.borrow_mut().next_item(self.index);
            let Some((pid, item)) = item else { break };
            self.deliver(pid, item);
        }
        if self.runnable.is_empty() {
            return false;
        }
        self.ticking.enter();
        for _ in 0..budget {
            let Some(pid) = self.runnable.pop_front() else {
                break;
            };
            self.queued.remove(&pid);
            self.poll(pid);
            // What the step queued for an idle worker goes now, and
            // what was sent here comes in, not after the whole budget.
            self.core.borrow_mut().between_batches();
        }
        self.ticking.leave();
        !self.runnable.is_empty()
    }
}

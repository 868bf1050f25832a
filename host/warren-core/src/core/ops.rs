//! The [`Core`] side of the async host-call path (see
//! [`crate::hostcall`]): starting operations under the process's and the
//! host's limits, delivering their results, and the handle table.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use super::{Core, not_alive};
use crate::error::{ErrorKind, ProcError};
use crate::hostcall::{
    BlockingRun, Handle, OpDone, OpResult, OpRun, OpSlot, ProcIo, SharedSlot, Stopper, io_runtime,
    timed_out,
};
use crate::item::Item;
use crate::lane::blocking_lane;
use crate::pid::Pid;
use crate::worker::Cmd;

/// The result of an operation whose work panicked: `INTERNAL` naming it.
fn panicked(what: &str) -> ProcError {
    ProcError::new(
        ErrorKind::Internal,
        format!("{what}: the operation panicked"),
    )
}

pub(super) fn rate_limited(message: String) -> ProcError {
    let mut err = ProcError::new(ErrorKind::RateLimited, message);
    err.retryable = true;
    err
}

impl Core {
    /// Starts the future `make` builds for `me` on the I/O runtime; its
    /// result arrives as [`Item::Done`] with the returned id. Past
    /// `deadline` the future is dropped and the result is `TIMEOUT` naming
    /// `what`. `RATE_LIMITED` (nothing started) when `me` or its host has
    /// its limit of operations in flight.
    ///
    /// `make` runs on the I/O thread and its future is boxed there: an
    /// unpolled future is as large as its largest state (a SQLite query's
    /// is 4,320 B), and every move of it is a copy of that size, so handing
    /// over the closure (its captures only) keeps those copies off the
    /// worker that started the call. A panic in `make` or its future is an
    /// `INTERNAL` result, as for blocking work.
    pub fn start_op<M, F>(
        &mut self,
        me: Pid,
        what: &'static str,
        deadline: Duration,
        make: M,
    ) -> Result<u64, ProcError>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future<Output = OpResult> + Send + 'static,
    {
        let (slot, op) = self.admit_op(me, what)?;
        let slot = SharedSlot::new(slot);
        let kept = slot.clone();
        let (shared, worker) = (self.shared.clone(), self.worker);
        let task = io_runtime().spawn(async move {
            let fut = Box::pin(AssertUnwindSafe(async move { make().await }).catch_unwind());
            let result = match tokio::time::timeout(deadline, fut).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(panicked(what)),
                Err(_) => Err(timed_out(what, deadline)),
            };
            // The future is gone: its host slot is free before the caller
            // hears, so a next call it makes at once is not refused for it.
            slot.release();
            shared.workers[worker].push_all([Cmd::Deliver(me, Item::Done { op, result })]);
        });
        self.insert_op(me, op, OpRun::Task(task.abort_handle(), kept));
        Ok(op)
    }

    /// Runs `work` for `me` on the blocking lane
    /// ([`blocking_lane`], in turn with other hosts'
    /// calls); its result arrives as
    /// [`Item::Done`] with the returned id, handed from the lane's thread
    /// straight to this worker (no async task in between:
    /// two thread hand-offs per operation instead of four). Past
    /// `deadline` the caller gets `TIMEOUT` naming `what` from this
    /// worker's clock; work already running cannot be interrupted and
    /// keeps its host slot until it returns, so a host's stuck calls still
    /// count against `max_ops_per_host`. A panic in `work` is an
    /// `INTERNAL` result. Limits as [`Core::start_op`].
    pub fn start_blocking_op<F>(
        &mut self,
        me: Pid,
        what: &'static str,
        deadline: Duration,
        work: F,
    ) -> Result<u64, ProcError>
    where
        F: FnOnce() -> OpResult + Send + 'static,
    {
        let (slot, op) = self.admit_op(me, what)?;
        let (shared, worker) = (self.shared.clone(), self.worker);
        let task = blocking_lane().spawn(me.host(), move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(work))
                .unwrap_or_else(|_| Err(panicked(what)));
            drop(slot); // as in `start_op`: free before the caller hears
            shared.workers[worker].push_all([Cmd::Deliver(me, Item::Done { op, result })]);
        });
        let at = Instant::now() + deadline;
        self.op_deadlines.insert((at, me, op));
        let run = OpRun::Blocking(BlockingRun {
            task: Stopper::Lane(task),
            at,
            what,
            deadline,
        });
        self.insert_op(me, op, run);
        Ok(op)
    }

    /// Starts an operation whose driver runs it on a thread of its own
    /// and reports by calling [`OpDone::complete`] there (an SQLite
    /// entry's runner): `start` queues the work with the `OpDone` and
    /// returns how to stop it. The result goes from the driver's thread
    /// straight to this worker, with no task in between. Past `deadline`
    /// the caller gets `TIMEOUT` from this worker's clock and the work is
    /// stopped; so it is when `me` cancels it or ends. An `Err` from
    /// `start` (nothing queued) is the call's own error. Limits as
    /// [`Core::start_op`].
    pub fn start_queued_op<S>(
        &mut self,
        me: Pid,
        what: &'static str,
        deadline: Duration,
        start: S,
    ) -> Result<u64, ProcError>
    where
        S: FnOnce(OpDone) -> Result<Box<dyn Fn() + Send>, ProcError>,
    {
        let (slot, op) = self.admit_op(me, what)?;
        let done = OpDone {
            slot: Some(slot),
            shared: self.shared.clone(),
            worker: self.worker,
            me,
            op,
            what,
        };
        let stop = start(done)?;
        let at = Instant::now() + deadline;
        self.op_deadlines.insert((at, me, op));
        let run = OpRun::Blocking(BlockingRun {
            task: Stopper::Hook(stop),
            at,
            what,
            deadline,
        });
        self.insert_op(me, op, run);
        Ok(op)
    }

    /// Checks `me`'s and its host's limits of operations in flight and
    /// takes a host slot and an operation id; nothing is started.
    fn admit_op(&mut self, me: Pid, what: &'static str) -> Result<(OpSlot, u64), ProcError> {
        let quota = self.shared.quota(me.host()).clone();
        let p = self.procs.get_mut(&me).ok_or_else(|| not_alive(me))?;
        let io = p.io.get_or_insert_with(Box::default);
        let max = quota.limits.max_ops_per_process;
        if io.ops.len() >= max {
            let msg =
                format!("{what}: {me} already has max_ops_per_process ({max}) calls in flight");
            return Err(rate_limited(msg));
        }
        if !quota.admit_op() {
            let (host, max) = (&quota.name, quota.limits.max_ops_per_host);
            let msg = format!(
                "{what}: host '{host}' already has max_ops_per_host ({max}) calls in flight"
            );
            return Err(rate_limited(msg));
        }
        Ok((OpSlot(quota), io.next_id()))
    }

    /// Records `run` as `me`'s operation `op` (admitted by `admit_op`, so
    /// `me` is alive and has its I/O state).
    fn insert_op(&mut self, me: Pid, op: u64, run: OpRun) {
        match self.procs.get_mut(&me).and_then(|p| p.io.as_mut()) {
            Some(io) => {
                io.ops.insert(op, run);
            }
            None => self.forget_op(me, op, run),
        }
    }

    /// Drops what this worker keeps for `me`'s operation `op`, which has
    /// left its table (completed, cancelled, timed out or its process
    /// gone), and stops it.
    pub(crate) fn forget_op(&mut self, me: Pid, op: u64, run: OpRun) {
        if let OpRun::Blocking(b) = &run {
            self.op_deadlines.remove(&(b.at, me, op));
        }
        run.abort(&self.shared);
    }

    /// Completes the blocking operations whose deadline has passed with
    /// `TIMEOUT` (their late results are dropped when they arrive).
    pub(crate) fn expire_ops(&mut self, now: Instant) {
        while let Some(&(at, pid, op)) = self.op_deadlines.first() {
            if at > now {
                break;
            }
            self.op_deadlines.pop_first();
            let Some(io) = self.procs.get_mut(&pid).and_then(|p| p.io.as_mut()) else {
                continue;
            };
            // The timeout stands in for the result: the entry stays (as
            // `Expired`) until the front-end takes it, and the late
            // result finds none and is dropped.
            let Some(run @ OpRun::Blocking(_)) = io.ops.get_mut(&op) else {
                continue;
            };
            if let OpRun::Blocking(b) = std::mem::replace(run, OpRun::Expired) {
                let result = Err(timed_out(b.what, b.deadline));
                b.task.stop();
                self.push_local(pid, Item::Done { op, result });
            }
        }
    }

    /// Stops operation `op` of `me` (a dropped future, a killed callee);
    /// its result, if already on its way, is dropped by the worker before
    /// the front-end sees it. `false` if `me` has no such operation.
    pub fn cancel_op(&mut self, me: Pid, op: u64) -> bool {
        let run = self
            .procs
            .get_mut(&me)
            .and_then(|p| p.io.as_mut())
            .and_then(|io| io.ops.remove(&op));
        match run {
            Some(run) => {
                self.forget_op(me, op, run);
                true
            }
            None => false,
        }
    }

    /// The counter of the bytes `me`'s calls in flight hold copied out of
    /// it (see [`crate::Copied`]); a fresh one when `me` is gone (its
    /// call is refused when it asks for an operation).
    pub fn copied_counter(&mut self, me: Pid) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        match self.procs.get_mut(&me) {
            Some(p) => p.io.get_or_insert_with(Box::default).copied.clone(),
            None => std::sync::Arc::default(),
        }
    }

    /// Host calls `me` has in flight.
    pub fn ops_in_flight(&self, me: Pid) -> usize {
        self.io_of(me).map_or(0, |io| io.ops.len())
    }

    /// Puts `handle` in `me`'s handle table and returns its id. At
    /// `max_open_handles`, or when `me`'s host holds `max_handles_per_host`
    /// handles in all, the handle is closed and the result is
    /// `RATE_LIMITED`. The host's count is given back by
    /// [`Core::take_handle`] and when `me` ends.
    pub fn add_handle(&mut self, me: Pid, handle: Handle) -> Result<u64, ProcError> {
        let quota = self.shared.quota(me.host()).clone();
        let max = quota.limits.max_open_handles;
        let Some(p) = self.procs.get_mut(&me) else {
            handle.0.close();
            return Err(not_alive(me));
        };
        let io = p.io.get_or_insert_with(Box::default);
        if io.handles.len() >= max {
            let kind = handle.0.kind();
            handle.0.close();
            let msg = format!(
                "cannot open another {kind}: {me} already holds max_open_handles ({max}) handles"
            );
            return Err(rate_limited(msg));
        }
        if !quota.admit_handle() {
            let kind = handle.0.kind();
            handle.0.close();
            let (host, max) = (&quota.name, quota.limits.max_handles_per_host);
            let msg = format!(
                "cannot open another {kind}: host '{host}' already holds max_handles_per_host ({max}) handles"
            );
            return Err(rate_limited(msg));
        }
        let id = io.next_id();
        io.handles.insert(id, handle);
        Ok(id)
    }

    /// Handle `id` of `me`, if `me` holds it.
    pub fn handle(&self, me: Pid, id: u64) -> Option<Handle> {
        self.io_of(me).and_then(|io| io.handles.get(&id).cloned())
    }

    /// Takes handle `id` out of `me`'s table (the caller closes it).
    pub fn take_handle(&mut self, me: Pid, id: u64) -> Option<Handle> {
        let io = self.procs.get_mut(&me).and_then(|p| p.io.as_mut())?;
        let handle = io.handles.remove(&id)?;
        self.shared.quota(me.host()).release_handles(1);
        Some(handle)
    }

    /// Handles `me` holds open.
    pub fn open_handles(&self, me: Pid) -> usize {
        self.io_of(me).map_or(0, |io| io.handles.len())
    }

    /// The value of type `T` shared with
    /// [`RuntimeBuilder::extension`](crate::RuntimeBuilder::extension), if any.
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<std::sync::Arc<T>> {
        let value = self.shared.extensions.get(&std::any::TypeId::of::<T>())?;
        value.clone().downcast::<T>().ok()
    }

    fn io_of(&self, me: Pid) -> Option<&ProcIo> {
        self.procs.get(&me).and_then(|p| p.io.as_deref())
    }
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;

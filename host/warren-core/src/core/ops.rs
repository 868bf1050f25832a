//! The [`Core`] side of the async host-call path (see
//! [`crate::hostcall`]): starting operations under the process's and the
//! host's limits, delivering their results, and the handle table.

use std::future::Future;
use std::time::Duration;

use super::{Core, not_alive};
use crate::error::{ErrorKind, ProcError};
use crate::hostcall::{Handle, OpResult, OpRun, OpSlot, ProcIo, io_runtime, timed_out};
use crate::item::Item;
use crate::pid::Pid;
use crate::worker::Cmd;

pub(super) fn rate_limited(message: String) -> ProcError {
    let mut err = ProcError::new(ErrorKind::RateLimited, message);
    err.retryable = true;
    err
}

impl Core {
    /// Starts `fut` for `me` on the I/O runtime; its result arrives as
    /// [`Item::Done`] with the returned id. Past `deadline` the future is
    /// dropped and the result is `TIMEOUT` naming `what`. `RATE_LIMITED`
    /// (nothing started) when `me` or its host has its limit of operations
    /// in flight.
    pub fn start_op<F>(
        &mut self,
        me: Pid,
        what: &'static str,
        deadline: Duration,
        fut: F,
    ) -> Result<u64, ProcError>
    where
        F: Future<Output = OpResult> + Send + 'static,
    {
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
        let slot = OpSlot(quota);
        let op = io.next_id();
        let (shared, worker) = (self.shared.clone(), self.worker);
        let task = io_runtime().spawn(async move {
            let _slot = slot;
            let result = match tokio::time::timeout(deadline, fut).await {
                Ok(result) => result,
                Err(_) => Err(timed_out(what, deadline)),
            };
            shared.workers[worker].push_all([Cmd::Deliver(me, Item::Done { op, result })]);
        });
        io.ops.insert(op, OpRun::Task(task.abort_handle()));
        Ok(op)
    }

    /// Stops operation `op` of `me` (a dropped future, a killed callee);
    /// its result, if already on its way, is still delivered and the
    /// front-end ignores it. `false` if `me` has no such operation.
    pub fn cancel_op(&mut self, me: Pid, op: u64) -> bool {
        let run = self
            .procs
            .get_mut(&me)
            .and_then(|p| p.io.as_mut())
            .and_then(|io| io.ops.remove(&op));
        match run {
            Some(run) => {
                run.abort(&self.shared);
                true
            }
            None => false,
        }
    }

    /// Host calls `me` has in flight.
    pub fn ops_in_flight(&self, me: Pid) -> usize {
        self.io_of(me).map_or(0, |io| io.ops.len())
    }

    /// Puts `handle` in `me`'s handle table and returns its id. At
    /// `max_open_handles` the handle is closed and the result is
    /// `RATE_LIMITED`.
    pub fn add_handle(&mut self, me: Pid, handle: Handle) -> Result<u64, ProcError> {
        let max = self.shared.quota(me.host()).limits.max_open_handles;
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
        io.handles.remove(&id)
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

//! The [`Core`] side of function calls (see [`crate::funcs`]): admitting a
//! call, spawning its callee, and turning the callee's exit into the
//! caller's [`Item::Done`](crate::Item::Done).

use std::sync::Arc;

use super::{Core, not_alive};
use crate::error::{ErrorKind, ProcError};
use crate::funcs::{Call, FunctionCall, kill};
use crate::hostcall::{OpRun, OpSlot, io_runtime, timed_out};
use crate::item::{Exit, Reservation};
use crate::limits::{HostQuota, wire_size};
use crate::pid::Pid;
use crate::placement::Home;
use crate::runtime::SpawnRequest;
use crate::worker::Cmd;

impl Core {
    /// Whether entry `entry` is a function (runs only as a call).
    pub fn is_function(&self, entry: &str) -> bool {
        self.shared.functions().is_some_and(|f| f.contains(entry))
    }

    /// The bytes of arguments and context `me` may pass to function
    /// `entry`, or why it cannot be called: `NOT_FOUND` (no such entry),
    /// `INVALID` (not a `function.lua` entry). Asked before any argument
    /// is converted.
    pub fn function_budget(&self, me: Pid, entry: &str) -> Result<usize, ProcError> {
        if !self.is_function(entry) {
            return Err(match self.program(entry) {
                Some(_) => ProcError::new(
                    ErrorKind::Invalid,
                    format!("entry '{entry}' is not a function.lua entry"),
                ),
                None => ProcError::new(
                    ErrorKind::NotFound,
                    format!("function '{}' not found", crate::error::quoted_id(entry)),
                ),
            });
        }
        Ok(self.quota_of(me).limits.max_message_bytes)
    }

    /// Starts a call of a function for `me` (its grant to do so checked
    /// by the front-end). The callee's exit arrives as
    /// [`Item::Done`](crate::Item::Done) with the returned id: its result,
    /// or its error with the kind kept. `RATE_LIMITED` (nothing started)
    /// at `me`'s or its host's limit of operations, or from a full
    /// `static` pool.
    pub fn call_function(&mut self, me: Pid, call: FunctionCall) -> Result<u64, ProcError> {
        self.function_budget(me, &call.entry)?;
        let gate = self
            .shared
            .functions()
            .and_then(|f| f.gate(&call.entry))
            .cloned()
            .ok_or_else(|| ProcError::new(ErrorKind::NotFound, "no functions"))?;
        let quota = self.shared.quota(me.host()).clone();
        let mut req = SpawnRequest::new(call.entry.clone(), quota.name.clone(), call.args);
        req.context = call.context;
        req.function = true;
        let worker = self.worker;
        let p = self.procs.get_mut(&me).ok_or_else(|| not_alive(me))?;
        let io = p.io.get_or_insert_with(Box::default);
        let max = quota.limits.max_ops_per_process;
        if io.ops.len() >= max {
            return Err(super::ops::rate_limited(format!(
                "funcs.call: {me} already has max_ops_per_process ({max}) calls in flight"
            )));
        }
        if !quota.admit_op() {
            let (host, max) = (&quota.name, quota.limits.max_ops_per_host);
            return Err(super::ops::rate_limited(format!(
                "funcs.call: host '{host}' already has max_ops_per_host ({max}) calls in flight"
            )));
        }
        let held = match queued_bytes(&quota, &req) {
            Ok(held) => held,
            Err(err) => {
                quota.release_op();
                return Err(err);
            }
        };
        let op = io.next_id();
        let slot = OpSlot(quota);
        let state = Arc::new(Call::new((me, op, worker), gate.clone(), (req, held), slot));
        let now = gate.admit(&state, &call.entry)?;
        io.ops.insert(op, OpRun::Call(state.clone()));
        if let Some(after) = call.timeout {
            self.arm_call_timeout(&state, after);
        }
        if now {
            self.start_call(state);
        }
        Ok(op)
    }

    /// Past `after`, the call ends with `TIMEOUT` and its callee is killed.
    fn arm_call_timeout(&self, call: &Arc<Call>, after: std::time::Duration) {
        let (shared, c) = (self.shared.clone(), call.clone());
        let task = io_runtime().spawn(async move {
            tokio::time::sleep(after).await;
            let err = timed_out("funcs.call", after);
            let cmd = c.end(Some(Err(err.clone())), |pid| kill(&shared, pid, err));
            if let Some(cmd) = cmd {
                shared.workers[c.worker].push_all([cmd]);
            }
        });
        call.set_timer(task.abort_handle());
    }

    /// Spawns the callee of `call` (admitted, its turn taken), or ends it
    /// with the spawn's error and passes the turn on.
    fn start_call(&mut self, call: Arc<Call>) {
        let mut next = Some(call);
        while let Some(call) = next.take() {
            let (shared, here) = (self.shared.clone(), self.worker);
            let mut local = None;
            let begun = call.begin(|req| {
                let (mut cmd, worker) =
                    shared.prepare_spawn(req, Some(call.caller), Home::Parent(call.worker))?;
                cmd.call = Some(call.clone());
                let pid = cmd.pid;
                if worker == here {
                    // Applied below, before this worker reads its queue,
                    // where a kill from another thread would wait.
                    local = Some(cmd);
                } else {
                    // Pushed while the call's phase is locked: a kill
                    // (cancel, timeout, the caller's exit) from another
                    // thread sees the callee only once this returns, so
                    // it can never reach the worker before the spawn
                    // (it did, pushed after the lock: the kill found no
                    // process and the callee ran on).
                    shared.workers[worker].push_all([Cmd::Spawn(cmd)]);
                }
                Ok(pid)
            });
            match begun {
                Ok(Some(_)) => {
                    if let Some(cmd) = local {
                        self.apply(Cmd::Spawn(cmd));
                    }
                }
                // Abandoned while it waited: its turn goes on.
                Ok(None) => next = call.gate.release(call.caller.host()),
                Err(err) => {
                    if let Some(cmd) = call.end(Some(Err(err)), |_| {}) {
                        self.post(cmd);
                    }
                    next = call.gate.release(call.caller.host());
                }
            }
        }
    }

    /// A callee ended with `result`: its caller gets it (unless the call
    /// ended first) and its turn goes to the next waiting call.
    pub(super) fn call_exited(&mut self, call: &Arc<Call>, result: Exit) {
        if let Some(cmd) = call.end(Some(Call::result_of(result)), |_| {}) {
            self.post(cmd);
        }
        if let Some(next) = call.gate.release(call.caller.host()) {
            self.start_call(next);
        }
    }
}

/// The caller's host's `memory_total` held for what a call's callee is
/// spawned with while the call waits for its turn (see `funcs::Phase`);
/// `RATE_LIMITED` when the host has no room for it.
fn queued_bytes(quota: &Arc<HostQuota>, req: &SpawnRequest) -> Result<Reservation, ProcError> {
    let bytes = wire_size(&req.args) + wire_size(std::slice::from_ref(&req.context));
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    if !quota.reserve_memory(bytes) {
        let why = format!(
            "funcs.call: host '{}' has no room left in its memory_total ({} bytes) for a call's \
             {bytes} bytes of arguments",
            quota.name, quota.limits.memory_total
        );
        return Err(super::ops::rate_limited(why));
    }
    Ok(Reservation {
        quota: quota.clone(),
        bytes,
    })
}

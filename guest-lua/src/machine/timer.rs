//! `timer(me, id, ns)` and `cancel_timer(me, id)`: a process's timers
//! armed in and cancelled from its worker's timer heap in one C call
//! each, where the host callbacks they replace (`H.timer`,
//! `H.cancel_timer`) cost a `time.after` or `time.sleep` about 800
//! instructions apiece in the callback machinery alone.
//!
//! Guarantees: the core's own `start_timer` and `cancel_timer`, with the
//! same arguments the callbacks passed (a negative delay fires at once);
//! the kernel's integers only; raises, arming nothing, where the core is
//! not reachable (a VM without a host, or the core in use).

use std::ffi::c_int;
use std::time::Duration;

use super::fast;
use mlua::ffi::lua_State;

use super::raw::{self, CTX, uv};
use crate::host::pid_of;

/// Runs `f` on the core of this VM's host, raising where there is none
/// or it is in use.
///
/// # Safety
///
/// Called from a machine C function.
unsafe fn with_core(l: *mut lua_State, what: &str, f: impl FnOnce(&mut warren_core::Core)) {
    // SAFETY: the context, when there is one, is the VM's `Stepper`,
    // which outlives the VM's calls (as `send::lua_send1`); the borrow
    // ends before anything may raise.
    unsafe {
        let ctx = fast::touserdata(l, uv(CTX)).cast::<crate::step::Stepper>();
        let done = ctx.as_ref().is_some_and(|ctx| {
            ctx.core()
                .try_borrow_mut()
                .map(|mut core| f(&mut core))
                .is_ok()
        });
        if !done {
            raw::raise(l, 1, what, None);
        }
    }
}

/// The integer argument at `i` (0 for any other value: the kernel passes
/// integers).
///
/// # Safety
///
/// Called from a machine C function.
unsafe fn int_arg(l: *mut lua_State, i: c_int) -> i64 {
    // SAFETY: see above.
    unsafe { fast::tointeger(l, i) }
}

/// `timer(me, id, ns)`: arms timer `id` of process `me` to fire in `ns`
/// nanoseconds.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_timer(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        let (me, id, ns) = (int_arg(l, 1), int_arg(l, 2), int_arg(l, 3));
        let id = u64::try_from(id).unwrap_or(0);
        let delay = Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
        with_core(l, "timer: no core to arm it in", |core| {
            core.start_timer(pid_of(me), id, delay);
        });
        0
    }
}

/// `cancel_timer(me, id)`: cancels timer `id` of process `me`.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_cancel_timer(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        let (me, id) = (int_arg(l, 1), int_arg(l, 2));
        let id = u64::try_from(id).unwrap_or(0);
        with_core(l, "cancel_timer: no core to cancel it in", |core| {
            core.cancel_timer(pid_of(me), id);
        });
        0
    }
}

//! The worker VM's run queue: coroutine records ready to be resumed, each
//! with the (up to three) values it is resumed with, four consecutive
//! slots per entry of one table (no allocation per wake-up once it has
//! grown; moved with one fused call each way), and a head and tail kept in
//! a userdata.
//!
//! Guarantees: a wake-up writes its slots before it counts them, so a
//! memory error while the table grows (inside a process's resume, under
//! its ceiling) leaves the queue as it was; after [`room`] (which the
//! host-fed delivery makes before it takes a receiver off a channel), the
//! next wake-up allocates nothing and cannot fail.

use std::ffi::c_int;
use std::ptr;

use mlua::ffi::{self, lua_State};

use super::raw::{self, Key, RQ, STATE, uv};

/// The run queue's head and tail (1 and 0 when it is empty).
///
/// # Safety
///
/// Called from a machine C function (upvalue [`STATE`] is its userdata).
unsafe fn ends(l: *mut lua_State) -> *mut [i64; 2] {
    // SAFETY: see above; the userdata holds two integers (see `new_state`).
    unsafe { ffi::lua_touserdata(l, uv(STATE)).cast() }
}

/// The first slot of run-queue entry `n`.
fn slot(n: i64) -> i64 {
    4 * n - 3
}

/// Pushes the run queue's state: head 1, tail 0.
///
/// # Safety
///
/// `l` has room for one value.
pub(super) unsafe fn new_state(l: *mut lua_State) {
    // SAFETY: see above; a userdata is aligned for any Lua value, so for
    // two integers.
    unsafe {
        let p = ffi::lua_newuserdatauv(l, size_of::<[i64; 2]>(), 0).cast::<[i64; 2]>();
        p.write([1, 0]);
    }
}

/// Queues coroutine record `cr` (an absolute index) to be resumed with
/// the values at `vals` (0: nil), then counts it ready for its process
/// and clears its wait on a host-fed channel.
///
/// # Safety
///
/// Called from a machine C function with room for four values.
pub(super) unsafe fn wake(l: *mut lua_State, cr: c_int, vals: [c_int; 3]) {
    // SAFETY: see above; the writes after the slots are to fields that
    // exist (`ext` is only cleared when set; `nready` is made with `p`).
    unsafe {
        let e = ends(l);
        let t = (*e)[1] + 1;
        ffi::lua_pushvalue(l, cr);
        for v in vals {
            if v == 0 {
                ffi::lua_pushnil(l);
            } else {
                ffi::lua_pushvalue(l, v);
            }
        }
        raw::put(l, uv(RQ), slot(t), 4);
        (*e)[1] = t;
        raw::get(l, cr, Key::P);
        let p = ffi::lua_gettop(l);
        if raw::truthy(l, cr, Key::Ext) {
            ffi::lua_pushnil(l);
            raw::set(l, cr, Key::Ext);
            let n = raw::int(l, p, Key::Ext);
            raw::set_int(l, p, Key::Ext, n - 1);
        }
        let n = raw::int(l, p, Key::Nready);
        raw::set_int(l, p, Key::Nready, n + 1);
        raw::pop(l, 1);
    }
}

/// Makes the run queue's next slots exist (see the module's guarantees).
///
/// # Safety
///
/// As [`wake`].
pub(super) unsafe fn room(l: *mut lua_State) {
    // SAFETY: see above.
    unsafe {
        let t = (*ends(l))[1] + 1;
        for _ in 0..4 {
            ffi::lua_pushboolean(l, 0);
        }
        raw::put(l, uv(RQ), slot(t), 4);
    }
}

/// `wake(cr, a, b, c)`.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_wake(l: *mut lua_State) -> c_int {
    // SAFETY: see above; four arguments exist once the top is set.
    unsafe {
        raw::args(l, 4, 1, "wake");
        wake(l, 1, [2, 3, 4]);
        0
    }
}

/// `rq_next()`: the next coroutine record and its three values, taken off
/// the queue; nothing when it is empty. `resume_next` takes its wake-ups
/// with it; the kernel itself does not call it.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_next(l: *mut lua_State) -> c_int {
    // SAFETY: see above; clearing slots that exist never allocates.
    unsafe {
        let e = ends(l);
        let [h, t] = *e;
        if h > t {
            return 0;
        }
        raw::take(l, uv(RQ), slot(h), 4);
        *e = if h == t { [1, 0] } else { [h + 1, t] };
        4
    }
}

/// `rq_len()`: how many wake-ups are queued.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_len(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        let [h, t] = *ends(l);
        ffi::lua_pushinteger(l, t - h + 1);
        1
    }
}

/// `resume_next(limit, left)`: resumes wake-ups off the run queue, one
/// after another, each through the step (`crate::step`) with `current`
/// set to it meanwhile, in batches as the kernel's `run` makes them: the
/// `left` wake-ups of the current batch first, then, while fewer than
/// `limit` were taken and the host has no item for this VM, a new batch
/// of the wake-ups queued by then. It stops early at the first wake-up
/// whose outcome the kernel must finish (an error, a verdict, a
/// preemption, an end, a message whose delivery failed part-way, a
/// possible deadlock) and answers `n, left, cr, p, ok, verdict, r1, r2,
/// r3` for it (`n` the wake-ups taken, it included; `left` what remains
/// of its batch); else `n, 0`. Wake-ups whose process was gone, and
/// coroutines that now wait while their process can still be woken, need
/// nothing more: the kernel's Lua runs only for the others and between
/// batches that find host items.
///
/// # Safety
///
/// Called by Lua as a machine C closure; raises in a VM without a step.
pub(super) unsafe extern "C-unwind" fn lua_resume_next(l: *mut lua_State) -> c_int {
    // SAFETY: the context is the VM's `Stepper` (checked not null), which
    // outlives the VM's calls; the step runs on this stack above `p`.
    unsafe {
        let limit = ffi::lua_tointegerx(l, 1, ptr::null_mut());
        let mut left = ffi::lua_tointegerx(l, 2, ptr::null_mut());
        raw::reserve(l);
        let ctx = ffi::lua_touserdata(l, uv(raw::CTX)).cast::<crate::step::Stepper>();
        if ctx.is_null() {
            raw::raise(l, 1, "resume_next: no step in this VM", None);
        }
        let mut taken = 0;
        loop {
            if left <= 0 {
                if taken >= limit || (*ctx).has_items() {
                    break;
                }
                let [h, t] = *ends(l);
                left = t - h + 1;
                if left <= 0 {
                    break;
                }
            }
            raw::settop(l, 0);
            if lua_next(l) == 0 {
                left = 0;
                break;
            }
            left -= 1;
            taken += 1;
            if let Some(n) = resume_taken(l, &*ctx) {
                ffi::lua_pushinteger(l, taken);
                ffi::lua_insert(l, 1);
                ffi::lua_pushinteger(l, left);
                ffi::lua_insert(l, 2);
                return n + 2;
            }
        }
        raw::settop(l, 0);
        ffi::lua_pushinteger(l, taken);
        ffi::lua_pushinteger(l, left.max(0));
        2
    }
}

/// Resumes the wake-up `lua_next` left at 1..=4 (`cr` and its values).
/// `None` when nothing is left for the kernel; else the stack holds `cr,
/// p, ok, verdict, r1, r2, r3` (as many as the step answered) and the
/// count is returned.
///
/// # Safety
///
/// Called from [`lua_resume_next`], the wake-up at 1..=4 and nothing
/// above it; `stepper` is the VM's.
unsafe fn resume_taken(l: *mut lua_State, stepper: &crate::step::Stepper) -> Option<c_int> {
    // SAFETY: see above.
    unsafe {
        if !raw::truthy(l, 1, Key::Th) {
            return None;
        }
        raw::get(l, 1, Key::P); // 5
        let n = raw::int(l, 5, Key::Nready);
        raw::set_int(l, 5, Key::Nready, n - 1);
        set_current(l, 1);
        raw::get(l, 1, Key::Th); // 6: th
        ffi::lua_pushvalue(l, 5); // 7: p
        raw::get(l, 5, Key::Id); // 8: id
        for v in 2..=4 {
            ffi::lua_pushvalue(l, v); // 9..11
        }
        let nres = crate::step::step_at(l, stepper, uv(raw::TAKEN), 5);
        ffi::lua_pushnil(l);
        set_current(l, ffi::lua_gettop(l));
        raw::pop(l, 1);
        if settled(l, nres) {
            return None;
        }
        ffi::lua_rotate(l, 2, -3); // cr, p, results..., a, b, c
        raw::settop(l, 2 + nres);
        Some(2 + nres)
    }
}

/// Sets the kernel's `current` to the value at `v`.
///
/// # Safety
///
/// As [`wake`].
unsafe fn set_current(l: *mut lua_State, v: c_int) {
    // SAFETY: upvalue CURRENT is a Lua function whose first upvalue is
    // `current` (checked when the machine was built); it is shared by
    // every kernel closure that names it.
    unsafe {
        ffi::lua_pushvalue(l, v);
        ffi::lua_setupvalue(l, uv(raw::CURRENT), 1);
    }
}

/// Whether the step's `nres` results (from index 6 on, process record at
/// 5) leave nothing for the kernel: it yielded `BLOCK` with no verdict, no
/// delivery failed part-way, and its process is not deadlocked (it has a
/// ready coroutine, one waiting on the host, or none alive, or it ended).
///
/// # Safety
///
/// As [`wake`].
unsafe fn settled(l: *mut lua_State, nres: c_int) -> bool {
    // SAFETY: see above; reads only.
    unsafe {
        if nres < 3
            || ffi::lua_toboolean(l, 6) == 0
            || ffi::lua_type(l, 7) != ffi::LUA_TNIL
            || ffi::lua_rawequal(l, 8, uv(raw::BLOCK)) == 0
        {
            return false;
        }
        ffi::lua_rawgeti(l, uv(raw::LATE), raw::Late::Send as i64);
        let owed = raw::truthy(l, -1, Key::Owed);
        raw::pop(l, 1);
        if owed {
            return false;
        }
        !raw::truthy(l, 5, Key::Env)
            || raw::int(l, 5, Key::Nready) != 0
            || raw::int(l, 5, Key::Ext) != 0
            || raw::int(l, 5, Key::Live) <= 0
    }
}

/// `has_items()`: false when the host has certainly no item for this VM,
/// so the kernel need not ask `H.next` (true in a VM without a step).
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_has_items(l: *mut lua_State) -> c_int {
    // SAFETY: the context, when there is one, is the VM's `Stepper`.
    unsafe {
        let ctx = ffi::lua_touserdata(l, uv(raw::CTX)).cast::<crate::step::Stepper>();
        let has = ctx.is_null() || (*ctx).has_items();
        ffi::lua_pushboolean(l, c_int::from(has));
        1
    }
}

//! The worker VM's run queue: coroutine records ready to be resumed, each
//! with the (up to three) values it is resumed with, in four parallel
//! arrays (no allocation per wake-up once they have grown) and a head and
//! tail kept in a userdata.
//!
//! Guarantees: a wake-up writes its slots before it counts them, so a
//! memory error while an array grows (inside a process's resume, under its
//! ceiling) leaves the queue as it was; after `rq_room()`, the next wake-up
//! allocates nothing and cannot fail.

use std::ffi::c_int;

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
        ffi::lua_rawseti(l, uv(RQ[0]), t);
        for (arr, v) in RQ[1..].iter().zip(vals) {
            if v == 0 {
                ffi::lua_pushnil(l);
            } else {
                ffi::lua_pushvalue(l, v);
            }
            ffi::lua_rawseti(l, uv(*arr), t);
        }
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
        ffi::lua_pop(l, 1);
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
        for arr in RQ {
            ffi::lua_pushboolean(l, 0);
            ffi::lua_rawseti(l, uv(arr), t);
        }
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
        ffi::lua_settop(l, 4);
        if ffi::lua_type(l, 1) != ffi::LUA_TTABLE {
            raw::raise(l, 1, "wake: not a coroutine record", None);
        }
        wake(l, 1, [2, 3, 4]);
        0
    }
}

/// `rq_room()`.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_room(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        room(l);
        0
    }
}

/// `rq_next()`: the next coroutine record and its three values, taken off
/// the queue; nothing when it is empty.
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
        ffi::lua_checkstack(l, 5);
        for arr in RQ {
            ffi::lua_rawgeti(l, uv(arr), h);
            ffi::lua_pushnil(l);
            ffi::lua_rawseti(l, uv(arr), h);
        }
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

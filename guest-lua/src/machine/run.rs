//! The worker's entry into the VM: `run(budget)`, the kernel's run loop
//! in C for what a front-end run usually is (the host's items taken by
//! `drain`, the wake-ups they queued resumed by `resume_next`, until
//! none is left or the budget is spent), handing over to the kernel's Lua
//! loop (`bind_run`) at the first thing only Lua finishes: an item that
//! needs `handle`, a process to measure, a wake-up `resume_next` left to
//! `finish_one`, or a preempted coroutine to queue again.
//!
//! Guarantees: the same order of calls as the Lua loop it fronts, which
//! goes on from where this one stopped (no item is taken twice, no
//! wake-up skipped); between calls it keeps only integers in Rust.

use std::ffi::c_int;

use super::fast;
use mlua::ffi::{self, lua_State};

use super::raw::{self, LATE, Late, uv};
use super::{done, runq};

/// `bind_run(run_from, is_preempted)`: the kernel's Lua loop, called as
/// `run_from(budget, done, left, cr, p, ok, kind, r1, r2, r3)`, and a Lua
/// function whose first upvalue is the kernel's `preempted`.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn bind_run(l: *mut lua_State) -> c_int {
    // SAFETY: two functions, checked, into their slots.
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TFUNCTION);
        ffi::luaL_checktype(l, 2, ffi::LUA_TFUNCTION);
        fast::settop(l, 2);
        ffi::lua_rawseti(l, uv(LATE), Late::Preempted as i64);
        ffi::lua_rawseti(l, uv(LATE), Late::RunFrom as i64);
        0
    }
}

/// Whether the kernel holds a preempted coroutine to queue again (true,
/// so that the Lua loop is called, when `bind_run` has not run).
///
/// # Safety
///
/// Called from a machine C function after `bind_run`, with room for two
/// values.
unsafe fn preempted(l: *mut lua_State) -> bool {
    // SAFETY: the slot holds the kernel's function (bind_run checked it).
    unsafe {
        fast::rawgeti(l, uv(LATE), Late::Preempted as i64);
        if ffi::lua_getupvalue(l, -1, 1).is_null() {
            raw::pop(l, 1); // not bound: the Lua loop's call will say so
            return true;
        }
        let held = fast::toboolean(l, -1) != 0;
        raw::pop(l, 2);
        held
    }
}

/// `run(budget)`: true when the run stopped with work left (the budget
/// spent, or a preempted process to queue after the host's items), false
/// once nothing is left to run. See the module's documentation.
///
/// # Safety
///
/// Called by Lua (the host's call of the kernel) as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_run(l: *mut lua_State) -> c_int {
    // SAFETY: `drain` and `resume_next` are this closure set's functions,
    // called on this frame with their arguments as the whole stack, as
    // the Lua loop calls them; only integers live in Rust across them.
    unsafe {
        raw::reserve(l);
        let budget = fast::tointeger(l, 1);
        let (mut done, mut left) = (0, 0);
        if preempted(l) {
            return run_from(l, budget, done, 0, false);
        }
        loop {
            if left <= 0 {
                raw::settop(l, 0);
                done::lua_drain(l);
                left = fast::tointeger(l, -1);
                if left < 0 {
                    return run_from(l, budget, done, 0, false);
                }
                if left == 0 {
                    fast::pushboolean(l, 0);
                    return 1;
                }
            }
            raw::settop(l, 0);
            fast::pushinteger(l, budget - done);
            fast::pushinteger(l, left);
            let n = runq::lua_resume_next(l);
            done += fast::tointeger(l, 1);
            left = fast::tointeger(l, 2);
            if n > 2 {
                return run_from(l, budget, done, left, true);
            }
            if left <= 0 && done >= budget {
                fast::pushboolean(l, 1);
                return 1;
            }
        }
    }
}

/// Goes on in the kernel's Lua loop: `run_from(budget, done, left, cr,
/// p, ok, kind, r1, r2, r3)`, the last seven, with `outcome`, what
/// `resume_next` left on the stack above its counts, and answers what it
/// answers.
///
/// # Safety
///
/// As [`lua_run`], with the stack holding nothing else.
unsafe fn run_from(l: *mut lua_State, budget: i64, done: i64, left: i64, outcome: bool) -> c_int {
    // SAFETY: see above; the stack is made exactly the call's.
    unsafe {
        if outcome {
            raw::settop(l, 9); // n, left, cr, p, ok, kind, r1, r2, r3
            ffi::lua_rotate(l, 1, -2); // the counts on top, then off
            raw::settop(l, 7);
        } else {
            raw::settop(l, 0);
        }
        let args = fast::gettop(l);
        fast::rawgeti(l, uv(LATE), Late::RunFrom as i64);
        fast::pushinteger(l, budget);
        fast::pushinteger(l, done);
        fast::pushinteger(l, left);
        ffi::lua_rotate(l, 1, 4); // the function and counts below the outcome
        ffi::lua_call(l, args + 3, 1);
        1
    }
}

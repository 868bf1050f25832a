//! `channel.select(cases, nonblocking)` in C: the cases checked, each tried
//! in order without waiting, the default taken, else a waiter queued on
//! every case's channel and the kernel's `BLOCK` token yielded; the result
//! table made where the select ends.
//!
//! A case is a table the kernel made (`ch:case_receive()`,
//! `ch:case_send(v)`); what it stands for is the kernel's record
//! `CASE[case] = { s, send, v }` (the channel's state, whether it sends,
//! the value), which no process can reach. A select waits as one record
//! `sel = { done }` shared by a waiter `{ cr, sel, v }` per case (see
//! [`super::chan`]): the first wake-up claims it, the others are then
//! stale and skipped where they are queued.
//!
//! Guarantees: the semantics, errors and levels of the Lua `channel.select`
//! it replaces: every case is checked before any is tried (a bad case
//! raises with nothing done), cases are tried in their order, a send on a
//! closed channel raises at the caller, before or after a wait; the cases
//! table is read raw (its length and its `default` field: no metamethod
//! runs), at most [`MAX_CASES`] of them; the stack grows by one slot per
//! case, raising a memory error where it cannot.

use std::ffi::c_int;

use super::fast;
use mlua::ffi::{self, lua_State};

use super::chan::{self, RECEIVERS, SENDERS};
use super::raw::{self, BLOCK, CLOSED, Key, LATE, Late, uv};

/// Most cases one select may wait on: each is a waiter record in a
/// channel's queue, made per select, so a larger select would let one
/// call allocate without bound between two preemption points (the rule
/// of every front-end, `warren_core::limits::MAX_SELECT_CASES`).
const MAX_CASES: usize = warren_core::limits::MAX_SELECT_CASES;

/// `bind_select(CASE, CaseMT, resume_tick)`: the kernel's table of case
/// records, the metatable of cases, and its `resume_tick` (see
/// `chan::try_recv`).
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn bind_select(l: *mut lua_State) -> c_int {
    // SAFETY: two tables and a function, checked, into their slots.
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
        ffi::luaL_checktype(l, 2, ffi::LUA_TTABLE);
        ffi::luaL_checktype(l, 3, ffi::LUA_TFUNCTION);
        fast::settop(l, 3);
        ffi::lua_rawseti(l, uv(LATE), Late::ResumeTick as i64);
        ffi::lua_rawseti(l, uv(LATE), Late::CaseMt as i64);
        ffi::lua_rawseti(l, uv(LATE), Late::Case as i64);
        0
    }
}

/// Pushes a new case for channel state `s` (absolute), recorded in the
/// kernel's `CASE` as `{ s, send, v }` (`v` absolute, 0 for none), and
/// returns its index. May allocate.
///
/// # Safety
///
/// Called from a machine C function with room for four values.
unsafe fn new_case(l: *mut lua_State, s: c_int, send: bool, v: c_int) -> c_int {
    // SAFETY: fresh tables, written raw; the case's metatable is the
    // kernel's (locked: `__metatable = false`).
    unsafe {
        ffi::lua_createtable(l, 0, 0);
        let c = fast::gettop(l);
        fast::rawgeti(l, uv(LATE), Late::CaseMt as i64);
        ffi::lua_setmetatable(l, c);
        fast::rawgeti(l, uv(LATE), Late::Case as i64); // c + 1
        fast::pushvalue(l, c);
        ffi::lua_createtable(l, if send { 3 } else { 2 }, 0); // c + 3
        fast::pushvalue(l, s);
        ffi::lua_rawseti(l, c + 3, 1);
        fast::pushboolean(l, c_int::from(send));
        ffi::lua_rawseti(l, c + 3, 2);
        if v != 0 {
            fast::pushvalue(l, v);
            ffi::lua_rawseti(l, c + 3, 3);
        }
        ffi::lua_rawset(l, c + 1);
        raw::settop(l, c);
        c
    }
}

/// `ch:case_receive()`: the channel's receive case, made on first use and
/// kept in its state (`rcase`): it holds nothing of the call, so a
/// service's select loop makes no case tables. `CASE` is weak-keyed: the
/// channel, its state and its case are collected together.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn case_receive(l: *mut lua_State) -> c_int {
    // SAFETY: the state is the kernel's, read and written raw.
    unsafe {
        raw::reserve(l);
        raw::settop(l, 1);
        let s = chan::state_of(l);
        if raw::get(l, s, Key::Rcase) == ffi::LUA_TTABLE {
            return 1;
        }
        raw::pop(l, 1);
        let c = new_case(l, s, false, 0);
        fast::pushvalue(l, c);
        raw::set(l, s, Key::Rcase);
        1
    }
}

/// `ch:case_send(v)`: a send case of `v` on the channel, made per call.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn case_send(l: *mut lua_State) -> c_int {
    // SAFETY: as `case_receive`.
    unsafe {
        raw::reserve(l);
        raw::settop(l, 2);
        let s = chan::state_of(l);
        new_case(l, s, true, 2);
        1
    }
}

/// Raises "channel.select: case `i` is not a channel case" at the caller.
///
/// # Safety
///
/// As [`raw::raise`].
unsafe fn not_a_case(l: *mut lua_State, i: c_int) -> ! {
    // SAFETY: three values pushed and concatenated (a number converts).
    unsafe {
        ffi::luaL_where(l, 1);
        ffi::lua_pushstring(l, c"channel.select: case ".as_ptr());
        fast::pushinteger(l, ffi::lua_Integer::from(i));
        ffi::lua_pushstring(l, c" is not a channel case".as_ptr());
        ffi::lua_concat(l, 4);
        ffi::lua_error(l)
    }
}

/// Pushes the records of the `n` cases of the table at 1, in order, from
/// `base + 1`, raising on the first value that is not a case.
///
/// # Safety
///
/// As [`select`]; room for `n + 1` values made.
unsafe fn records(l: *mut lua_State, n: c_int) -> c_int {
    // SAFETY: raw reads of the cases table and of the kernel's CASE.
    unsafe {
        fast::rawgeti(l, uv(LATE), Late::Case as i64);
        let case = fast::gettop(l);
        for i in 1..=n {
            fast::rawgeti(l, 1, ffi::lua_Integer::from(i));
            if ffi::lua_rawget(l, case) != ffi::LUA_TTABLE {
                not_a_case(l, i);
            }
        }
        case
    }
}

/// Pushes field `i` of the case record at `rec` and returns its type.
///
/// # Safety
///
/// `rec` a table.
unsafe fn field(l: *mut lua_State, rec: c_int, i: ffi::lua_Integer) -> c_int {
    // SAFETY: a raw read.
    unsafe { fast::rawgeti(l, rec, i) }
}

/// Replaces everything above `base` with a new result table: `channel`
/// from `ch`, `value` from `v` (0: none) and `ok`. May allocate.
///
/// # Safety
///
/// As [`select`]; `ch` and `v` absolute and at or below the top.
unsafe fn result(l: *mut lua_State, base: c_int, ch: c_int, v: c_int, ok: bool) -> c_int {
    // SAFETY: a fresh table without a metatable, written raw.
    unsafe {
        ffi::lua_createtable(l, 0, 3);
        let t = fast::gettop(l);
        fast::pushvalue(l, ch);
        raw::set(l, t, Key::Channel);
        if v != 0 {
            fast::pushvalue(l, v);
            raw::set(l, t, Key::Value);
        }
        raw::set_bool(l, t, Key::Ok, ok);
        fast::replace(l, base + 1);
        raw::settop(l, base + 1);
        1
    }
}

/// Tries the case whose record is at `rec`: pushes its result table and
/// returns true when it is ready (a send done, a value or the channel's
/// end received).
///
/// # Safety
///
/// As [`select`].
unsafe fn try_case(l: *mut lua_State, rec: c_int) -> bool {
    // SAFETY: the record is the kernel's: its channel state at 1.
    unsafe {
        let top = fast::gettop(l);
        let send = {
            field(l, rec, 2);
            fast::toboolean(l, -1) != 0
        };
        field(l, rec, 1); // top + 2: the state
        let s = top + 2;
        raw::get(l, s, Key::Proxy); // top + 3
        let ready = if send {
            field(l, rec, 3);
            let sent = chan::try_send(l, s, top + 4, 1);
            if sent {
                result(l, top, top + 3, 0, true);
            }
            sent
        } else if chan::try_recv(l, s) {
            // top + 4, top + 5: the value and whether it is one.
            let ok = fast::toboolean(l, top + 5) != 0;
            result(l, top, top + 3, top + 4, ok);
            true
        } else {
            false
        };
        if !ready {
            raw::settop(l, top);
        }
        ready
    }
}

/// `channel.select(cases, nonblocking)`: the result table of the first
/// ready case, `{ default = true, ok = true }` when none is and the select
/// may not wait (a `default` field, or `nonblocking` true), else waits.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn select(l: *mut lua_State) -> c_int {
    // SAFETY: see the module's guarantees; the records pushed stay on the
    // stack for the whole call.
    unsafe {
        raw::reserve(l);
        raw::settop(l, 2);
        if fast::type_of(l, 1) != ffi::LUA_TTABLE {
            raw::raise(l, 1, "channel.select: expected a table of cases", None);
        }
        let len = ffi::lua_rawlen(l, 1);
        if len > MAX_CASES {
            raw::raise(l, 1, "channel.select: more than 4096 cases", None);
        }
        let n = c_int::try_from(len).unwrap_or(0);
        raw::room(l, n + 1);
        let base = records(l, n);
        raw::reserve(l); // the helpers' slots, above the records
        for k in 1..=n {
            if try_case(l, base + k) {
                fast::replace(l, 1);
                raw::settop(l, 1);
                return 1;
            }
        }
        let nonblocking = fast::type_of(l, 2) == ffi::LUA_TBOOLEAN && fast::toboolean(l, 2) != 0;
        if nonblocking || raw::truthy(l, 1, Key::Default) {
            raw::settop(l, 0);
            ffi::lua_createtable(l, 0, 2);
            raw::set_bool(l, 1, Key::Default, true);
            raw::set_bool(l, 1, Key::Ok, true);
            return 1;
        }
        wait(l, base, n)
    }
}

/// Queues a waiter for each of the `n` cases whose records follow `base`
/// and yields `BLOCK`; [`selected`] goes on when a case wakes it.
///
/// # Safety
///
/// As [`select`].
unsafe fn wait(l: *mut lua_State, base: c_int, n: c_int) -> c_int {
    // SAFETY: as `select`'s; every value below is the kernel's.
    unsafe {
        let cr = chan::waiter_here(l);
        ffi::lua_createtable(l, 0, 1);
        let sel = fast::gettop(l);
        raw::set_bool(l, sel, Key::Done, false);
        let mut ext = false;
        for k in 1..=n {
            let rec = base + k;
            let send = {
                field(l, rec, 2);
                fast::toboolean(l, -1) != 0
            };
            field(l, rec, 1);
            let s = sel + 2;
            ffi::lua_createtable(l, 0, 3);
            let w = sel + 3;
            fast::pushvalue(l, cr);
            raw::set(l, w, Key::Cr);
            fast::pushvalue(l, sel);
            raw::set(l, w, Key::Sel);
            if send {
                field(l, rec, 3);
                chan::push_queued(l, w + 1);
                raw::set(l, w, Key::V);
                raw::settop(l, w);
            }
            chan::side_push(l, s, w, if send { SENDERS } else { RECEIVERS });
            ext = ext || raw::truthy(l, s, Key::Ext);
            raw::settop(l, sel);
        }
        if ext {
            chan::wait_ext(l, cr);
        }
        // The cases' records (each holding its channel) stay on the
        // waiting coroutine's stack, below the resumed values: what sends
        // on a channel may hold it only weakly (time.after's timer,
        // kernel/time.lua), and the cases table itself may not be held.
        let kept = base + n;
        raw::settop(l, kept);
        fast::pushvalue(l, uv(BLOCK));
        ffi::lua_yieldk(
            l,
            1,
            ffi::lua_KContext::try_from(kept).unwrap_or(0),
            Some(selected),
        )
    }
}

/// Where a waiting select goes on, woken with `value, ok, channel` (the
/// kernel's `CLOSED` as the value when its send case's channel closed).
///
/// # Safety
///
/// Lua's continuation of [`wait`], `ctx` the count of values it kept.
unsafe extern "C-unwind" fn selected(
    l: *mut lua_State,
    _status: c_int,
    ctx: ffi::lua_KContext,
) -> c_int {
    // SAFETY: the stack holds the `ctx` values `wait` kept, then the
    // values it was resumed with.
    unsafe {
        raw::reserve(l);
        let kept = c_int::try_from(ctx).unwrap_or(0);
        let top = fast::gettop(l);
        ffi::lua_rotate(l, 1, top - kept); // the resumed values first
        raw::settop(l, top - kept);
        raw::settop(l, 3);
        if fast::rawequal(l, 1, uv(CLOSED)) != 0 {
            raw::raise(l, 1, "send on closed channel", None);
        }
        let ok = fast::toboolean(l, 2) != 0;
        result(l, 0, 3, 1, ok)
    }
}

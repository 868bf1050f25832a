//! The normal end of a coroutine, settled in C: what the kernel's
//! `finish_one` → `finished` (→ `exit_proc` → `close_all` → `H.exit`)
//! does when a coroutine returns, without those Lua frames and mlua's
//! callback for `H.exit`.
//!
//! [`end_normally`] takes a step's outcome only when it is the plain case:
//! the coroutine returned (it is dead), with no verdict against its
//! process, no delivery failed part-way, and either it was a coroutine of
//! the process's own that leaves the process runnable (no deadlock), or
//! it was the main one of a live process that did not return `nil, err`
//! (a failure, which the kernel words). Everything else, and anything it
//! cannot be sure of (the host's core in use, the conversion's field
//! names not made yet), is left to the kernel with nothing changed.
//!
//! Guarantees: the same writes as the kernel's Lua, in its order; none of
//! them allocates (each clears or sets a field the record has), so
//! nothing raises part-way; the result is copied under
//! `max_message_bytes` exactly as `H.exit` copies it; raw access only.

use std::ffi::c_int;

use super::fast;
use mlua::ffi::{self, lua_State};
use warren_core::{ErrorKind, ProcError, Value};

use super::raw::{self, Key, Late, TAKEN, uv};
use super::send::late;
use crate::convert::{Budget, Converter};
use crate::step::Stepper;

/// Stack positions of the step's outcome in `runq::resume_taken`.
const CR: c_int = 1;
const P: c_int = 5;
const OK: c_int = 6;
const VERDICT: c_int = 7;
const R1: c_int = 8;

/// Settles the end of the coroutine whose step answered `nres` values
/// (see the module doc) and returns true; false, with nothing changed,
/// when the kernel must.
///
/// # Safety
///
/// Called from `runq::resume_taken` after the step, with its layout: the
/// coroutine record at 1, the process record at 5, the step's `nres`
/// values from 6.
pub(super) unsafe fn end_normally(l: *mut lua_State, stepper: &Stepper, nres: c_int) -> bool {
    // SAFETY: see above.
    unsafe {
        if nres < 2
            || fast::has_room(l, 6) == 0
            || fast::toboolean(l, OK) == 0
            || fast::type_of(l, VERDICT) != ffi::LUA_TNIL
            || stepper.open_id().is_some()
            || !returned(l)
            || super::runq::owed(stepper)
        {
            return false;
        }
        raw::get(l, P, Key::Main);
        let main = fast::rawequal(l, -1, CR) != 0;
        raw::pop(l, 1);
        if main {
            exit_main(l, stepper, nres)
        } else {
            end_other(l)
        }
    }
}

/// Whether the coroutine of the record at [`CR`] returned: it is dead
/// (its status fine, nothing on its stack once its results were moved).
///
/// # Safety
///
/// As [`end_normally`].
unsafe fn returned(l: *mut lua_State) -> bool {
    // SAFETY: reads only.
    unsafe {
        raw::get(l, CR, Key::Th);
        let co = fast::tothread(l, -1);
        let dead = !co.is_null() && ffi::lua_status(co) == ffi::LUA_OK && fast::gettop(co) == 0;
        raw::pop(l, 1);
        dead
    }
}

/// `finished` for a coroutine other than the main one, unless the process
/// would then be deadlocked (every other coroutine waiting on something
/// only it could feed), which the kernel reports.
///
/// # Safety
///
/// As [`end_normally`].
unsafe fn end_other(l: *mut lua_State) -> bool {
    // SAFETY: writes to fields the records have; `crs[cr]` is set, so its
    // clearing allocates nothing.
    unsafe {
        let live = raw::int(l, P, Key::Live) - 1;
        if raw::truthy(l, P, Key::Env)
            && raw::int(l, P, Key::Nready) == 0
            && raw::int(l, P, Key::Ext) == 0
            && live > 0
        {
            return false;
        }
        raw::set_bool(l, CR, Key::Th, false);
        if raw::get(l, P, Key::Crs) == ffi::LUA_TTABLE {
            fast::pushvalue(l, CR);
            fast::pushnil(l);
            ffi::lua_rawset(l, -3);
        }
        raw::pop(l, 1);
        raw::set_int(l, P, Key::Live, live);
        true
    }
}

/// `finished` for the main coroutine: the process exits with its first
/// result, as `exit_proc(p, true, r1)` and `H.exit` do.
///
/// # Safety
///
/// As [`end_normally`].
unsafe fn exit_main(l: *mut lua_State, stepper: &Stepper, nres: c_int) -> bool {
    // SAFETY: see above; the copy raises nothing, and the writes after it
    // allocate nothing.
    unsafe {
        let (r1, r2) = (nres >= 3, nres >= 4);
        let r1_nil = !r1 || fast::type_of(l, R1) == ffi::LUA_TNIL;
        if r1_nil && r2 && fast::type_of(l, R1 + 1) != ffi::LUA_TNIL {
            return false; // `nil, err`: a failure
        }
        if !raw::truthy(l, P, Key::Env) || stepper.core().try_borrow_mut().is_err() {
            return false;
        }
        if !crate::convert::push_keys_made(l) {
            return false;
        }
        let keys = fast::gettop(l);
        let id = raw::int(l, P, Key::Id);
        let max = usize::try_from(stepper.max_message_bytes()).unwrap_or(usize::MAX);
        let result = if r1 {
            Converter::new(Budget::message(max))
                .convert_at(l, R1, keys, "result")
                .map_err(|e| ProcError::new(ErrorKind::Invalid, e.to_string()))
        } else {
            Ok(Value::Nil)
        };
        raw::settop(l, keys - 1);
        raw::set_bool(l, CR, Key::Th, false);
        raw::add_int(l, P, Key::Live, -1);
        forget(l, id);
        close_all(l);
        stepper.remove_account(id);
        if let Ok(mut core) = stepper.core().try_borrow_mut() {
            core.exit(crate::host::pid_of(id), result);
        }
        true
    }
}

/// `exit_proc`'s first writes: `p.env = false` (the process has ended),
/// and the process gone from `TAKEN`, `procs` and `bypid`.
///
/// # Safety
///
/// As [`end_normally`].
unsafe fn forget(l: *mut lua_State, id: i64) {
    // SAFETY: each key is present (the process is live), so clearing it
    // allocates nothing.
    unsafe {
        raw::set_bool(l, P, Key::Env, false);
        fast::pushvalue(l, P);
        fast::pushnil(l);
        ffi::lua_rawset(l, uv(TAKEN));
        let procs = late(l, Late::Procs);
        fast::pushnil(l);
        ffi::lua_rawseti(l, procs, id);
        let bypid = late(l, Late::Bypid);
        raw::get(l, P, Key::Pid);
        fast::pushnil(l);
        ffi::lua_rawset(l, bypid);
        raw::settop(l, procs - 1);
    }
}

/// `close_all(p)`: every coroutine of the process marked ended, and its
/// coroutines, timers, terminal wait and host operations forgotten.
///
/// # Safety
///
/// As [`end_normally`].
unsafe fn close_all(l: *mut lua_State) {
    // SAFETY: `th` is a field of every coroutine record; a traversal
    // that changes no key of the table it walks.
    unsafe {
        raw::get(l, P, Key::Main);
        raw::set_bool(l, -1, Key::Th, false);
        raw::pop(l, 1);
        if raw::get(l, P, Key::Crs) == ffi::LUA_TTABLE {
            let crs = fast::gettop(l);
            fast::pushnil(l);
            while ffi::lua_next(l, crs) != 0 {
                raw::pop(l, 1);
                if fast::type_of(l, -1) == ffi::LUA_TTABLE {
                    raw::set_bool(l, -1, Key::Th, false);
                }
            }
        }
        raw::pop(l, 1);
        for key in [Key::Crs, Key::Timers, Key::IoWait, Key::Ops] {
            clear(l, key);
        }
    }
}

/// `p[key] = nil` when `p` has the field (an absent one is left absent).
///
/// # Safety
///
/// As [`end_normally`].
unsafe fn clear(l: *mut lua_State, key: Key) {
    // SAFETY: clearing a present field allocates nothing.
    unsafe {
        if raw::truthy(l, P, key) {
            fast::pushnil(l);
            raw::set(l, P, key);
        }
    }
}

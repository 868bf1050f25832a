//! A message's accessors in C: `msg:topic()`, `msg:from()`,
//! `msg:payload()` and the payload's `data()`, the methods every receiver
//! calls on every message, without a Lua frame and a `rawget` call each.
//!
//! A message is the kernel's record `{ topic, from, n, payload1, ...,
//! payloadN }` with the kernel's `MsgMT`; a payload is `{ value }` with
//! `PayloadMT` (bound by the kernel: `raw::Late`), and `{ value, f =
//! format }` when it has an encoding. The methods are
//! reachable from any table a process hands them (`msg.topic(t)`), so
//! they read it raw and only as the Lua they replace did.
//!
//! Guarantees: raw reads only, no metamethod runs; a `self` that is not a
//! table raises as the Lua did (`rawget`'s argument error); `payload()`
//! allocates only its result, inside the caller's resume, and loops over
//! no count a process could forge (the kernel's Lua does, preemptibly).

use std::ffi::c_int;

use super::fast;
use mlua::ffi::{self, lua_State};

use super::raw::{self, Key, LATE, Late, uv};

/// Leaves `self` alone on the stack (`nil` when the call had none, as a
/// Lua method's parameter is) and raises the argument error
/// `rawget(self, ...)` raised in the Lua methods when it is not a table.
///
/// # Safety
///
/// Called from a machine C function.
unsafe fn check_self(l: *mut lua_State) {
    // SAFETY: see above; the text is made on the Lua stack (no Rust value
    // is alive across the raise), as `luaL_typeerror` makes it, with
    // rawget's name; a C function has no position to prefix.
    unsafe {
        raw::settop(l, 1);
        if fast::type_of(l, 1) != ffi::LUA_TTABLE {
            ffi::lua_pushfstring(
                l,
                c"bad argument #1 to 'rawget' (table expected, got %s)".as_ptr(),
                ffi::luaL_typename(l, 1),
            );
            ffi::lua_error(l);
        }
    }
}

/// `msg:topic()`: field 1.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn topic(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        check_self(l);
        fast::rawgeti(l, 1, 1);
        1
    }
}

/// `msg:from()`: field 2.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn from(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        check_self(l);
        fast::rawgeti(l, 1, 2);
        1
    }
}

/// `msg:payload()`: the payload of a one-payload message (the usual case),
/// made here. Any other count is left to the kernel's `payload_list(self)`
/// (a list of payloads, or the "expected a message" error): the count is
/// the table's, which any process can forge, and a loop over it must stay
/// in Lua, where the process's limits and its hook reach it.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn payload(l: *mut lua_State) -> c_int {
    // SAFETY: see above; `payload_list` was bound by the kernel (a
    // function) and raises only as the Lua method did.
    unsafe {
        check_self(l);
        fast::rawgeti(l, 1, 3);
        let one = ffi::lua_isinteger(l, 2) != 0 && fast::tointeger(l, 2) == 1;
        raw::settop(l, 1);
        if one {
            // `{ value }` with the payload metatable, in one call.
            let mt = match fast::rawgeti(l, uv(LATE), Late::PayloadMt as i64) {
                ffi::LUA_TTABLE => 2,
                _ => 0,
            };
            fast::rawgeti(l, 1, 4);
            raw::new_array(l, 1, mt);
            return 1;
        }
        fast::rawgeti(l, uv(LATE), Late::PayloadList as i64);
        fast::insert(l, 1);
        ffi::lua_call(l, 1, 1);
        1
    }
}

/// `payload:data()` (and `unmarshal()`): a payload with no format (every
/// message's) is its value as it is, read here; one with a format is
/// decoded by the kernel's `value_of(self)` (bound as
/// `Late::PayloadValue`), whose answers (the value, or `nil, err`) are
/// returned as they are.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn data(l: *mut lua_State) -> c_int {
    // SAFETY: see above; `value_of` was bound by the kernel (a function,
    // checked by `bind_start`) and raises only as the Lua method did.
    unsafe {
        check_self(l);
        if raw::get(l, 1, Key::Format) != ffi::LUA_TSTRING {
            fast::rawgeti(l, 1, 1);
            return 1;
        }
        raw::settop(l, 1);
        fast::rawgeti(l, uv(LATE), Late::PayloadValue as i64);
        fast::insert(l, 1);
        ffi::lua_call(l, 1, ffi::LUA_MULTRET);
        fast::gettop(l)
    }
}

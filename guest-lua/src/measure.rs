//! Native helpers of the kernel's measure of what a process holds
//! (`kernel/measure.lua`), for what Lua code cannot see.
//!
//! `H.identity(v)`: the identity of a collectable value, as a light
//! userdata holding its address. Lua compares strings by value, so
//! a set keyed by the strings themselves counted a thousand equal long
//! strings (each its own allocation: Lua interns only strings of at most
//! 40 bytes) as one: a process filling a table with
//! `string.rep("y", 4000)` was measured at a few MB while it held
//! hundreds, far past its `memory_per_process`, until the host's
//! `memory_total` ran out for every process.
//!
//! `H.proto_bytes(f)`: the bytes of Lua function `f`'s prototype (code,
//! constants, nested prototypes; `warren_protobytes`) and the prototype's
//! identity, shared by its closures; `0` for a C function. The walk could
//! not reach a prototype: 246 loaded closures each returning a megabyte
//! literal took a host's 256 MiB while measured at a few.
//!
//! `H.table_bytes(t)`: what table `t` has allocated (its header, array
//! part and node part), where the measure counted its live entries only:
//! a table emptied after holding 100,000 entries keeps its 2 MB of slots,
//! and 127 such tables took a host's 256 MiB while measured at 2 MiB.
//!
//! Guarantees: both read their argument raw (`lua_topointer`, the
//! table's sizes), run no metamethod and allocate nothing; `identity` of a
//! value that is not collectable is the value itself. An address names one
//! object only while it lives: the measure holds every value it has seen,
//! so none of them is freed and their addresses stay distinct meanwhile.

use std::ffi::{c_int, c_uint, c_void};

use mlua::ffi::{self, lua_State};

/// Bytes of a table's header (`Table` in `lobject.h`, 64-bit).
const TABLE_HEADER: i64 = 56;
/// Bytes of an array slot (a `TValue`).
const ARRAY_SLOT: i64 = 16;
/// Bytes of a hash node (a `TValue` and its key).
const NODE_SLOT: i64 = 32;

// The vendored Lua's table sizes (lwarren.h).
unsafe extern "C-unwind" {
    fn warren_protobytes(l: *mut lua_State, idx: c_int, id: *mut *const c_void) -> usize;
    fn warren_arraysize(l: *mut lua_State, idx: c_int) -> c_uint;
    fn warren_tableslots(l: *mut lua_State, idx: c_int) -> c_uint;
}

/// `H.identity(v)`.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(crate) unsafe extern "C-unwind" fn identity(l: *mut lua_State) -> c_int {
    // SAFETY: index 1 is read raw (a missing argument reads as none, whose
    // pointer is null); the light userdata needs no memory.
    unsafe {
        let p = ffi::lua_topointer(l, 1);
        if p.is_null() {
            ffi::lua_settop(l, 1);
        } else {
            ffi::lua_pushlightuserdata(l, p.cast_mut());
        }
        1
    }
}

/// `H.table_bytes(t)`: the bytes table `t` has allocated; raises for
/// anything but a table.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(crate) unsafe extern "C-unwind" fn table_bytes(l: *mut lua_State) -> c_int {
    // SAFETY: index 1 is checked to be a table before its sizes are read.
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
        let array = i64::from(warren_arraysize(l, 1));
        let nodes = i64::from(warren_tableslots(l, 1)) - array;
        ffi::lua_pushinteger(
            l,
            TABLE_HEADER + ARRAY_SLOT * array + NODE_SLOT * nodes.max(0),
        );
        1
    }
}

/// `H.proto_bytes(f)`: `bytes, id` of Lua function `f`'s prototype, or
/// `0` for anything else.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(crate) unsafe extern "C-unwind" fn proto_bytes(l: *mut lua_State) -> c_int {
    // SAFETY: index 1 is read raw; the id is an address, pushed as a light
    // userdata.
    unsafe {
        let mut id: *const c_void = std::ptr::null();
        let bytes = warren_protobytes(l, 1, &raw mut id);
        ffi::lua_pushinteger(l, i64::try_from(bytes).unwrap_or(i64::MAX));
        if id.is_null() {
            return 1;
        }
        ffi::lua_pushlightuserdata(l, id.cast_mut());
        2
    }
}

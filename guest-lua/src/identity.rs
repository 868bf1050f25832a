//! `H.identity(v)`: the identity of a collectable value, as a light
//! userdata holding its address, for the kernel's measure of what a
//! process holds (`kernel/measure.lua`). Lua compares strings by value, so
//! a set keyed by the strings themselves counted a thousand equal long
//! strings (each its own allocation: Lua interns only strings of at most
//! 40 bytes) as one: a process filling a table with
//! `string.rep("y", 4000)` was measured at a few MB while it held
//! hundreds, far past its `memory_per_process`, until the host's
//! `memory_total` ran out for every process.
//!
//! Guarantees: reads its argument raw (`lua_topointer`), runs no
//! metamethod and allocates nothing; a value that is not collectable comes
//! back as itself. An address names one object only while it lives: the
//! measure holds every value it has seen, so none of them is freed and
//! their addresses stay distinct meanwhile.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

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

//! Threads the kernel schedules: each process's coroutines, made by
//! `kthread(fn)` (what `coroutine.create(fn)` does) and told from every
//! other thread by `is_kthread(v)`, so that process code cannot resume or
//! close one with the `coroutine` library it is given.
//!
//! The mark is a byte of the thread itself (`wkernel`, the vendored Lua's
//! `warren_newkthread`): the weak-keyed table the kernel kept instead cost
//! an entry per coroutine, its rehashes, and a walk of all its entries in
//! every collection that touched it (about 500 instructions per process
//! spawned; a tree of a million processes held a million).
//!
//! Guarantees: a mark is set only on a thread made here, before any code
//! sees it, and is never cleared (an error or `coroutine.close` leaves
//! it); `is_kthread` reads a byte and runs nothing.

use std::ffi::c_int;

use super::fast;
use mlua::ffi::{self, lua_State};

unsafe extern "C-unwind" {
    fn warren_newkthread(l: *mut lua_State) -> *mut lua_State;
    fn warren_iskthread(l: *mut lua_State, idx: c_int) -> c_int;
}

/// `kthread(fn)`: a new coroutine running `fn`, marked as the kernel's.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(super) unsafe extern "C-unwind" fn lua_kthread(l: *mut lua_State) -> c_int {
    // SAFETY: the argument is checked to be a function (as
    // `coroutine.create` does) and is the only value on the stack when
    // `warren_newkthread` takes it.
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TFUNCTION);
        fast::settop(l, 1);
        warren_newkthread(l);
        1
    }
}

/// `is_kthread(v)`: whether `v` is a thread `kthread` made.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(super) unsafe extern "C-unwind" fn lua_is_kthread(l: *mut lua_State) -> c_int {
    // SAFETY: index 1 is valid or none; `warren_iskthread` reads it only.
    unsafe {
        let marked = warren_iskthread(l, 1);
        fast::pushboolean(l, marked);
        1
    }
}

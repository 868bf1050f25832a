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
use super::raw::Late;
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

/// Whether the running thread is one `kthread` made.
///
/// # Safety
///
/// Called from a C function with room for one value.
unsafe fn running_is_kthread(l: *mut lua_State) -> bool {
    // SAFETY: the pushed thread is read and popped.
    unsafe {
        ffi::lua_pushthread(l);
        let marked = warren_iskthread(l, -1) != 0;
        fast::pop(l, 1);
        marked
    }
}

/// `coroutine.yield(...)` as process code has it: Lua's, except in a
/// thread the kernel schedules (a process's main function, a function
/// given to `coroutine.spawn`), where no coroutine of the process waits
/// for the values. There it raises "attempt to yield from outside a
/// coroutine", which `pcall` catches, as Lua's yield in a main thread
/// does; the yield reached the kernel before, which ended the process
/// with that message and no place.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(super) unsafe extern "C-unwind" fn lua_user_yield(l: *mut lua_State) -> c_int {
    // SAFETY: `lua_yield` from a C function with its values on top, as
    // `coroutine.yield` does (it does not return here); the thread
    // `running_is_kthread` pushes fits in the LUA_MINSTACK slots every C
    // function gets above its arguments.
    unsafe {
        if running_is_kthread(l) {
            return outside(l);
        }
        ffi::lua_yield(l, fast::gettop(l))
    }
}

/// Raises the kernel's `INVALID` error "attempt to yield from outside a
/// coroutine" (what a process whose main yielded ended with), or that
/// text where the kernel's `mkerr` is not bound.
///
/// # Safety
///
/// Called from a machine C function; raises.
unsafe fn outside(l: *mut lua_State) -> c_int {
    const WHY: &std::ffi::CStr = c"attempt to yield from outside a coroutine";
    // SAFETY: `mkerr` is the kernel's function (a table back, raising
    // only a memory error); the stack has room (checked, or Lua's spare
    // slots for the plain error).
    unsafe {
        if ffi::lua_checkstack(l, 4) == 0 {
            return ffi::luaL_error(l, WHY.as_ptr());
        }
        super::send::late(l, Late::Mkerr);
        if ffi::lua_type(l, -1) != ffi::LUA_TFUNCTION {
            return ffi::luaL_error(l, WHY.as_ptr());
        }
        ffi::lua_pushstring(l, c"INVALID".as_ptr());
        ffi::lua_pushstring(l, WHY.as_ptr());
        ffi::lua_call(l, 2, 1);
        ffi::lua_error(l)
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

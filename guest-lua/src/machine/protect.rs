//! The `pcall` and `xpcall` a process is given: Lua's, except that two
//! errors pass through every protected call (the kernel's `no_oom`): a
//! memory error (the process is past its memory limit) and the error that
//! ends a process the hook doomed (past its CPU budget), so a process
//! cannot catch its own end and carry on; once a memory error was raised
//! in its run, any error passes (the kernel's `H.doomed`: a `__close`
//! handler that raises while the stack unwinds replaces the memory error).
//!
//! They were Lua wrappers (`no_oom(pcall(f, ...))`): two vararg calls, a
//! pcall of about 1,340 instructions where Lua's costs about 250. Here the
//! call is `lcorolib`'s own (`luaB_pcall`, `luaB_xpcall`: `lua_pcallk`
//! with a continuation, so the callee may yield, as a process's waits
//! do), and only a caught error goes to the kernel's check
//! (`bind_protect(check)`), which raises those two and returns for any
//! other.
//!
//! Guarantees: the results, the errors and the yields are Lua's `pcall`
//! and `xpcall`'s; the check runs only on an error, is the kernel's
//! function, and runs no metamethod of the caught value other than what
//! the Lua wrapper ran; nothing here allocates beyond what Lua's do.

use std::ffi::c_int;

use super::fast;
use mlua::ffi::{self, lua_State};

use super::raw::{self, LATE, Late, uv};

/// `bind_protect(check, names)`: the kernel's check of a caught error,
/// and the C functions a process gets in place of Lua's, by the names it
/// gets them under. Those go into the registry's table of loaded modules,
/// where `luaL_argerror` looks a C function up when its caller is C (a
/// `pcall(setmetatable, ...)`): their argument errors name them as Lua's
/// do ("bad argument #1 to 'setmetatable'"), not '?'. Processes never
/// reach that table (`require` is the kernel's).
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn bind_protect(l: *mut lua_State) -> c_int {
    // SAFETY: a function and a table, checked; the loaded-modules table
    // is Lua's own (made by `luaL_openlibs`), written raw.
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TFUNCTION);
        ffi::luaL_checktype(l, 2, ffi::LUA_TTABLE);
        fast::settop(l, 2);
        fast::pushvalue(l, 1);
        ffi::lua_rawseti(l, uv(LATE), Late::ErrorCheck as i64);
        if ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, c"_LOADED".as_ptr()) != ffi::LUA_TTABLE {
            return 0;
        }
        fast::pushnil(l);
        while ffi::lua_next(l, 2) != 0 {
            fast::pushvalue(l, -2); // the name
            fast::insert(l, -2);
            ffi::lua_rawset(l, 3);
        }
        0
    }
}

/// The end of a protected call (and its continuation after a yield), as
/// `lbaselib.c`'s `finishpcall`: the results after `true`, or `false` and
/// the error once the kernel's check let it through.
///
/// # Safety
///
/// Called by Lua as the continuation of a machine C closure (its upvalues
/// are the machine's), or by it.
unsafe extern "C-unwind" fn finish(
    l: *mut lua_State,
    status: c_int,
    extra: ffi::lua_KContext,
) -> c_int {
    // SAFETY: after an error the stack's top is the error value, with
    // room for three more (a C function has LUA_MINSTACK); the check is a
    // function (`bind_protect`) or absent, when any error passes.
    unsafe {
        if status != ffi::LUA_OK && status != ffi::LUA_YIELD {
            if fast::rawgeti(l, uv(LATE), Late::ErrorCheck as i64) == ffi::LUA_TFUNCTION {
                fast::pushvalue(l, -2);
                ffi::lua_call(l, 1, 0);
            } else {
                raw::pop(l, 1);
            }
            fast::pushboolean(l, 0);
            fast::pushvalue(l, -2);
            return 2;
        }
        fast::gettop(l) - c_int::try_from(extra).unwrap_or(0)
    }
}

/// `pcall(f, ...)`, as `luaB_pcall`.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_pcall(l: *mut lua_State) -> c_int {
    // SAFETY: as `luaB_pcall`; `luaL_checkany` raises before anything is
    // pushed.
    unsafe {
        ffi::luaL_checkany(l, 1);
        fast::pushboolean(l, 1); // the first result, without an error
        fast::insert(l, 1);
        let n = fast::gettop(l) - 2;
        let status = ffi::lua_pcallk(l, n, ffi::LUA_MULTRET, 0, 0, Some(finish));
        finish(l, status, 0)
    }
}

/// `xpcall(f, handler, ...)`, as `luaB_xpcall`: the check sees what the
/// handler made of the error, as the Lua wrapper did.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_xpcall(l: *mut lua_State) -> c_int {
    // SAFETY: as `luaB_xpcall`; `luaL_checktype` raises before anything
    // is pushed.
    unsafe {
        let n = fast::gettop(l);
        ffi::luaL_checktype(l, 2, ffi::LUA_TFUNCTION);
        fast::pushboolean(l, 1); // the first result
        fast::pushvalue(l, 1); // the function
        ffi::lua_rotate(l, 3, 2); // both below the function's arguments
        let status = ffi::lua_pcallk(l, n - 2, ffi::LUA_MULTRET, 2, 2, Some(finish));
        finish(l, status, 2)
    }
}

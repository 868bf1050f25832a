//! The kernel's `coroutine.resume`: the standard one, plus what preemption
//! needs to know.
//!
//! It behaves as Lua's `coroutine.resume` (same results, same errors) and
//! also keeps [`CURRENT`] (the innermost coroutine the thread runs, for
//! the watchdog's signal handler) and tells a preemption apart from a
//! plain `coroutine.yield()`: when the preemption hook yielded the
//! coroutine, the results are `true, PREEMPTED` (see [`marker`]) instead
//! of a bare `true`.

use std::cell::Cell;
use std::ffi::c_int;
use std::ptr;

use mlua::ffi::{self, lua_State};

use crate::watchdog::CURRENT;

thread_local! {
    /// The coroutine the preemption hook yielded last, until its resumer
    /// sees it.
    static PREEMPTED: Cell<*mut lua_State> = const { Cell::new(ptr::null_mut()) };
}

/// Its address is the light userdata `resume` returns for a preemption.
static MARKER: u8 = 0;

/// The value `resume` returns after `true` when the coroutine was
/// preempted. Process code never sees it: the kernel consumes it.
pub(crate) fn marker() -> mlua::LightUserData {
    mlua::LightUserData(ptr::from_ref(&MARKER).cast_mut().cast())
}

/// Records that the hook is yielding `l`.
pub(crate) fn preempting(l: *mut lua_State) {
    PREEMPTED.set(l);
}

/// `resume(co, ...)`, as `coroutine.resume`.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(crate) unsafe extern "C-unwind" fn resume(l: *mut lua_State) -> c_int {
    // SAFETY: `l` is the calling thread; every call below follows
    // lcorolib.c's `auxresume`. Nothing on this frame needs dropping when
    // `luaL_argerror` raises.
    unsafe {
        let co = ffi::lua_tothread(l, 1);
        if co.is_null() {
            ffi::luaL_argerror(l, 1, c"coroutine expected".as_ptr());
        }
        let narg = ffi::lua_gettop(l) - 1;
        if ffi::lua_checkstack(co, narg) == 0 {
            return fail(l, c"too many arguments to resume");
        }
        ffi::lua_xmove(l, co, narg);
        let outer = CURRENT.replace(co);
        let mut nres = 0;
        let status = ffi::lua_resume(co, l, narg, &raw mut nres);
        CURRENT.set(outer);
        if status != ffi::LUA_OK && status != ffi::LUA_YIELD {
            ffi::lua_pushboolean(l, 0);
            ffi::lua_xmove(co, l, 1); // the error
            return 2;
        }
        if status == ffi::LUA_YIELD && nres == 0 && PREEMPTED.replace(ptr::null_mut()) == co {
            ffi::lua_pushboolean(l, 1);
            ffi::lua_pushlightuserdata(l, marker().0);
            return 2;
        }
        if ffi::lua_checkstack(l, nres + 1) == 0 {
            ffi::lua_pop(co, nres);
            return fail(l, c"too many results to resume");
        }
        ffi::lua_pushboolean(l, 1);
        ffi::lua_xmove(co, l, nres);
        nres + 1
    }
}

/// Returns `false, message` from `resume`.
///
/// # Safety
///
/// `l` has room for two values (Lua guarantees a C function
/// `LUA_MINSTACK`).
unsafe fn fail(l: *mut lua_State, message: &std::ffi::CStr) -> c_int {
    // SAFETY: see above.
    unsafe {
        ffi::lua_pushboolean(l, 0);
        ffi::lua_pushstring(l, message.as_ptr());
    }
    2
}

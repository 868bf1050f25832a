//! The kernel's `traceback(msg, level)`, which makes an error object's
//! stack (`errors.new`, `errors.wrap`, `err:stack()`).
//!
//! It is `debug.traceback` without the search of every loaded module's
//! fields for a global name of each frame's function (the vendored Lua's
//! `warren_traceback`): that search was most of the cost of an error
//! object, 18 µs for `errors.new` at a shallow depth. Frames are named as
//! the calling code names them.
//!
//! Guarantees: the same text as `debug.traceback` but for those names; a
//! message that is neither a string nor nil is answered unchanged, as
//! `debug.traceback` does; runs no metamethod.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

unsafe extern "C-unwind" {
    fn warren_traceback(
        l: *mut lua_State,
        l1: *mut lua_State,
        msg: *const std::ffi::c_char,
        level: c_int,
    );
}

/// `traceback(msg, level)`: the running coroutine's traceback from
/// `level` (1, the caller of `traceback`, when absent), after `msg`.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(crate) unsafe extern "C-unwind" fn traceback(l: *mut lua_State) -> c_int {
    // SAFETY: reads of the arguments; `warren_traceback` pushes one string
    // and may raise only a memory error, with no Rust value alive.
    unsafe {
        let t = ffi::lua_type(l, 1);
        if t != ffi::LUA_TSTRING && t > ffi::LUA_TNIL {
            ffi::lua_settop(l, 1);
            return 1;
        }
        let msg = if t == ffi::LUA_TSTRING {
            ffi::lua_tolstring(l, 1, std::ptr::null_mut())
        } else {
            std::ptr::null()
        };
        let level = ffi::luaL_optinteger(l, 2, 1).clamp(0, i64::from(c_int::MAX));
        warren_traceback(l, l, msg, c_int::try_from(level).unwrap_or(1));
        1
    }
}

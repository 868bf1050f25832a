//! Read-only library tables: `freeze(t)` marks a table the kernel built
//! (a library such as `string`, `process` or `time`) read-only for good,
//! through the vendored Lua's `warren_freeze` (lwarren.h); and the
//! `setmetatable` a process is given.
//!
//! Processes of a VM share these tables, so none may change them. They
//! were empty proxies whose `__index` was the library: every
//! `string.format` a process read took a failed lookup, a metamethod
//! lookup and a second lookup (about 240 instructions, where a field
//! read is about 10). Frozen in place, the library's fields are read as
//! any table's, and the patched Lua refuses every write: an assignment
//! goes to the table's `__newindex` (the kernel's, which names the table
//! and raises), `rawset` and `setmetatable` raise.
//!
//! Guarantees: only the kernel reaches `freeze` (it is one of the
//! machine's functions, never in a process's environment); a frozen table
//! stays frozen; nothing here allocates or runs user code.

use std::ffi::c_int;

use super::fast;
use mlua::ffi::{self, lua_State};

unsafe extern "C-unwind" {
    fn warren_freeze(l: *mut lua_State, idx: c_int);
    // lauxlib's, which mlua-sys does not declare.
    fn luaL_typeerror(l: *mut lua_State, arg: c_int, tname: *const std::ffi::c_char) -> c_int;
}

/// `freeze(t)`: makes table `t` read-only; raises when `t` is no table.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(super) unsafe extern "C-unwind" fn lua_freeze(l: *mut lua_State) -> c_int {
    // SAFETY: the argument is checked to be a table before it is marked.
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
        warren_freeze(l, 1);
        0
    }
}

/// `setmetatable(t, mt)` as a process has it: Lua's (`luaB_setmetatable`:
/// a protected metatable, such as every library's and every kernel
/// object's, is never replaced), refusing first a metatable with a `__gc`
/// field (a finaliser would run in whichever process's turn the collector
/// found the table dead). It was a Lua wrapper that also looked the table
/// up in the kernel's set of read-only tables; each of those has a
/// protected metatable, and a frozen table refuses a new one in C too.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(super) unsafe extern "C-unwind" fn lua_setmetatable(l: *mut lua_State) -> c_int {
    // SAFETY: as `luaB_setmetatable`; the `__gc` field is read raw, and
    // the errors are raised before anything changes.
    unsafe {
        let t = fast::type_of(l, 2);
        if t == ffi::LUA_TTABLE {
            ffi::lua_pushstring(l, c"__gc".as_ptr());
            let gc = ffi::lua_rawget(l, 2);
            fast::pop(l, 1);
            if gc != ffi::LUA_TNIL {
                ffi::luaL_error(
                    l,
                    c"setmetatable: __gc metamethods are not available to processes".as_ptr(),
                );
            }
        }
        ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
        if t != ffi::LUA_TNIL && t != ffi::LUA_TTABLE {
            luaL_typeerror(l, 2, c"nil or table".as_ptr());
        }
        if ffi::luaL_getmetafield(l, 1, c"__metatable".as_ptr()) != ffi::LUA_TNIL {
            ffi::luaL_error(l, c"cannot change a protected metatable".as_ptr());
        }
        fast::settop(l, 2);
        ffi::lua_setmetatable(l, 1);
        1
    }
}

//! Read-only library tables: `freeze(t)` marks a table the kernel built
//! (a library such as `string`, `process` or `time`) read-only for good,
//! through the vendored Lua's `warren_freeze` (lwarren.h).
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

use mlua::ffi::{self, lua_State};

unsafe extern "C-unwind" {
    fn warren_freeze(l: *mut lua_State, idx: c_int);
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

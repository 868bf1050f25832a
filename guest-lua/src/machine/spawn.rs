//! The usual `process.spawn*(entry, host, ...)` in one C call.
//!
//! `spawn1(entry, host, link, monitor, ...)`, called by the kernel's
//! `process.spawn`, `spawn_linked`, `spawn_monitored` and
//! `spawn_linked_monitored` with their arguments, finds the spawning
//! process (the record of the kernel's `current` coroutine, as `send1`
//! does) and spawns as `H.spawn_plain` does ([`crate::plain::spawn_at`]):
//! it answers the child's pid, or `false, kind, message, retryable`, or
//! nothing when the kernel's Lua must act: outside a process, an entry or
//! host that is not a string (the Lua raises the argument error), or
//! arguments other than scalars and tables (`H.spawn` converts them). Nothing
//! was done before it answers nothing.
//!
//! Guarantees: raw reads of the kernel's own records, no metamethod, no
//! user code; the spawn itself is `H.spawn_plain`'s (the same checks in
//! the same order, the same budget and errors).

use std::ffi::c_int;

use super::fast;
use mlua::ffi::{self, lua_State};

use super::raw::{self, CTX, Key, uv};

/// `spawn1(entry, host, link, monitor, ...)`; see the module's
/// documentation.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_spawn1(l: *mut lua_State) -> c_int {
    // SAFETY: the context, when there is one, is the VM's `Stepper`, which
    // outlives the VM's calls; the arguments' types are checked first, and
    // what is pushed to find the spawner is cut before the spawn.
    unsafe {
        let ctx = fast::touserdata(l, uv(CTX)).cast::<crate::step::Stepper>();
        let n = fast::gettop(l);
        if ctx.is_null()
            || n < 4
            || fast::type_of(l, 1) != ffi::LUA_TSTRING
            || fast::type_of(l, 2) != ffi::LUA_TSTRING
        {
            return 0;
        }
        raw::reserve(l);
        if !raw::running(l) {
            raw::settop(l, n);
            return 0;
        }
        let me = raw::int(l, n + 2, Key::Id);
        raw::settop(l, n);
        fast::pushinteger(l, me);
        ffi::lua_rotate(l, 1, 1); // me, entry, host, link, monitor, ...
        crate::plain::spawn_at(l, &*ctx)
    }
}

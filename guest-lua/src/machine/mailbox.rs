//! `process.inbox()` and `process.events()` in one C call each: the
//! running process's host-fed channel, made on first use.
//!
//! `inbox1()` and `events1()` find the process (the record of the
//! kernel's `current` coroutine, as `send1` does) and answer the channel
//! its record holds at `inbox` / `events`, making it first when there is
//! none: the kernel's `chan_state(0, true)` (`{ ext = true, proxy }`, the
//! proxy a channel userdata made as `new_chan` makes it), an inbox with
//! `mb = p` (taking a message from it is reported), stored in the record.
//! They answer nothing when the kernel's Lua must act: outside a process
//! (its error names the caller), and for an inbox whose process has
//! messages waiting for it (`pending`), which the Lua moves into the new
//! inbox in order.
//!
//! Guarantees: raw access to the kernel's own records only, no metamethod,
//! no user code; the allocations are the ones the Lua made (a table and
//! a userdata), inside the caller's resume and under its memory limit; a
//! memory error part-way leaves the record without the channel (nothing
//! links the half-made one), as the Lua did.

use std::ffi::c_int;

use super::fast;
use mlua::ffi::{self, lua_State};

use super::raw::{self, CHAN_MT, Key, uv};

/// Room for the fields a new host-fed channel holds (`ext`, `proxy`,
/// `mb`, and `cap`'s slot left empty), as the kernel's constructor sized it.
const HOST_CHAN_FIELDS: c_int = 4;

/// Pushes a new host-fed channel state for process record `p` (`mb = p`
/// when `inbox`) and its proxy, and stores the state at `key` in `p`.
/// Returns the proxy's index.
///
/// # Safety
///
/// As [`raw::running`], with room for three values; `p` absolute.
unsafe fn make(l: *mut lua_State, p: c_int, key: Key, inbox: bool) -> c_int {
    // SAFETY: a new table and a new userdata, set raw, linked to the
    // record last.
    unsafe {
        ffi::lua_createtable(l, 0, HOST_CHAN_FIELDS);
        let s = fast::gettop(l);
        fast::pushboolean(l, 1);
        raw::set(l, s, Key::Ext);
        ffi::lua_newuserdatauv(l, 0, 1);
        let proxy = s + 1;
        fast::pushvalue(l, s);
        ffi::lua_setiuservalue(l, proxy, 1);
        fast::pushvalue(l, uv(CHAN_MT));
        ffi::lua_setmetatable(l, proxy);
        fast::pushvalue(l, proxy);
        raw::set(l, s, Key::Proxy);
        if inbox {
            fast::pushvalue(l, p);
            raw::set(l, s, Key::Mb);
        }
        fast::pushvalue(l, s);
        raw::set(l, p, key);
        proxy
    }
}

/// The channel of the running process at `key` (see the module's
/// documentation): 1 result, or 0 for the kernel's Lua.
///
/// # Safety
///
/// Called from a machine C function.
unsafe fn host_chan(l: *mut lua_State, key: Key) -> c_int {
    // SAFETY: see above; every read is raw and of the kernel's records.
    unsafe {
        raw::reserve(l);
        raw::settop(l, 0);
        if !raw::running(l) {
            return 0;
        }
        let p = fast::gettop(l);
        if raw::get(l, p, key) == ffi::LUA_TTABLE {
            raw::get(l, p + 1, Key::Proxy);
            return 1;
        }
        let inbox = matches!(key, Key::Inbox);
        if inbox && raw::truthy(l, p, Key::Pending) {
            return 0;
        }
        raw::settop(l, p);
        make(l, p, key, inbox);
        1
    }
}

/// `inbox1()`: the running process's inbox channel.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn inbox1(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe { host_chan(l, Key::Inbox) }
}

/// `events1()`: the running process's events channel.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn events1(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe { host_chan(l, Key::Events) }
}

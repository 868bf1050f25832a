//! A host call's value handed straight to the coroutine awaiting it: the
//! usual completion of `sql`, `fs`, `http_client` and every other host
//! call, without making the item into Lua values for the kernel's
//! `handle` first.
//!
//! `done_next()` looks at the host's next item for this VM. When it is
//! the value of an operation whose coroutine record waits in the kernel's
//! `procs[id].ops[op]` (as `await` left it), it takes the item, charges
//! the process for it and converts the value as `H.next` does, clears
//! `ops[op]`, wakes the coroutine with the value and answers `true`.
//! Anything else (an error result, a handle, a watcher function, a
//! process the kernel does not know, any other item) stays for
//! `handle(H.next())`, and it answers nothing.
//!
//! Guarantees: the writes and their order are those of the kernel's
//! `handle` for such an item; the item is taken only once the run queue
//! has room for the wake-up, so nothing after the take raises; the value
//! is built in a protected call, and one that cannot be built (out of
//! memory) ends the process, as in `H.next`; raw access only.

use std::ffi::c_int;

use mlua::Lua;
use mlua::ffi::{self, lua_State};
use warren_core::{ErrorKind, Pid, ProcError};

use super::raw::{self, CTX, Key, Late, uv};
use super::runq;
use super::send::late;

/// `done_next()`; see the module's documentation.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_done_next(l: *mut lua_State) -> c_int {
    // SAFETY: the context, when there is one, is the VM's `Stepper`, which
    // outlives the VM's calls; the Rust values alive across a call that
    // may raise (`runq::room`) are references and integers; the value
    // taken is alive only across the protected conversion.
    unsafe {
        raw::reserve(l);
        ffi::lua_settop(l, 0);
        let ctx = ffi::lua_touserdata(l, uv(CTX)).cast::<crate::step::Stepper>();
        if ctx.is_null() {
            return 0;
        }
        let ctx = &*ctx;
        let index = ctx.index();
        let next = ctx
            .core()
            .try_borrow()
            .ok()
            .and_then(|c| c.peek_done(index));
        let Some((pid, op)) = next else {
            return 0;
        };
        let (Ok(id), Ok(key)) = (i64::try_from(pid.as_u64()), i64::try_from(op)) else {
            return 0;
        };
        let procs = late(l, Late::Procs); // 1
        if ffi::lua_rawgeti(l, procs, id) != ffi::LUA_TTABLE // 2: p
            || raw::get(l, 2, Key::Ops) != ffi::LUA_TTABLE // 3: p.ops
            || ffi::lua_rawgeti(l, 3, key) != ffi::LUA_TTABLE
        // 4: the coroutine record (a function is a module's watcher)
        {
            return 0;
        }
        runq::room(l);
        let taken = match ctx.core().try_borrow_mut() {
            Ok(mut core) => core.take_done(index),
            Err(_) => None,
        };
        let Some((_, _, value)) = taken else {
            return 0;
        };
        let lua = Lua::get_or_init_from_ptr(l);
        let bytes = warren_core::limits::wire_size(std::slice::from_ref(&value));
        ctx.charge_received(lua, id, u64::try_from(bytes).unwrap_or(u64::MAX));
        let mt = late(l, Late::ErrorMt); // 5
        let built = crate::convert::push_protected(l, &value, mt); // 6
        drop(value);
        if !built {
            undeliverable(ctx, pid);
        } else {
            ffi::lua_pushnil(l);
            ffi::lua_rawseti(l, 3, key); // an existing key: no allocation
            runq::wake(l, 4, [6, 0, 0]);
        }
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// Ends `pid`, whose value could not be built, as `H.next` ends a process
/// whose item it cannot convert: it would otherwise wait forever.
fn undeliverable(ctx: &crate::step::Stepper, pid: Pid) {
    let message = "an item for this process could not be delivered: out of memory";
    tracing::error!(%pid, "{message}");
    let reason = ProcError::new(ErrorKind::Internal, message);
    if let Ok(mut core) = ctx.core().try_borrow_mut() {
        let _ = core.terminate(Pid::RUNTIME, pid, reason);
    }
}

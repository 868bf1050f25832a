//! A host call in C: the wait for it and its value handed straight to
//! the coroutine awaiting it, the usual path of `sql`, `fs`,
//! `http_client` and every other module's calls, without the kernel's Lua
//! frames (`call`, `await`, `block`) or making the item into Lua values
//! for the kernel's `handle` first.
//!
//! `call(start, ...)` is the kernel's `call`: it refuses (`nil`, an
//! `INVALID` error object, nothing started) where the code cannot be
//! suspended; otherwise it calls `start(...)`, the module's host function,
//! which answers `ok, op` or `false, kind, message, retryable`. A refusal
//! comes back as `nil` and the kernel's `mkerr(kind, message,
//! retryable)`; a started call has the running coroutine record wait in
//! `p.ops[op]`, counted as a wait on the host (`ext`), and yields the
//! kernel's `BLOCK`: the coroutine is resumed with the value, or `nil`
//! and an error, and `call` returns them.
//!
//! `done_next()` looks at the host's next item for this VM. When it is
//! the value of an operation whose coroutine record waits in the kernel's
//! `procs[id].ops[op]` (as `await` left it), it takes the item, charges
//! the process for it and converts the value as `H.next` does, clears
//! `ops[op]`, wakes the coroutine with the value and answers `true`.
//! Otherwise it hands over the usual message ([`super::inbox`]), start
//! ([`super::start`]) or exit event ([`super::event`]) the same way.
//! Anything else (an error result, a handle, a watcher function, a
//! process the kernel does not know, any other item) stays for
//! `handle(H.next())`, and it answers nothing. The kernel's `run` takes
//! items through `drain()`, which calls it while the host has items for
//! the VM.
//!
//! Guarantees: the writes and their order are those of the kernel's
//! `call`, `await` and `handle` for such an item (no Lua frame runs
//! between starting a call and registering its wait, so no preemption
//! can come between them either); the item is taken only once the run queue
//! has room for the wake-up, so nothing after the take raises; the value
//! is built in a protected call, and one that cannot be built (out of
//! memory) ends the process, as in `H.next`; raw access only.

use std::ffi::c_int;

use super::fast;
use mlua::ffi::{self, lua_State};
use warren_core::{ErrorKind, Pid, ProcError};

use super::chan::{CANNOT_WAIT, wait_ext};
use super::raw::{self, BLOCK, CTX, CURRENT, Key, Late, uv};
use super::runq;
use super::send::late;

/// `call(start, ...)`; see the module's documentation.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_call(l: *mut lua_State) -> c_int {
    // SAFETY: see `call`.
    unsafe { call(l, false) }
}

/// `call_as(start, ...)`: `call(start, id, entry, ...)` with the running
/// process's pid integer and entry id (the kernel's `entry_id()`), which
/// most host functions take first.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_call_as(l: *mut lua_State) -> c_int {
    // SAFETY: see `call`.
    unsafe { call(l, true) }
}

/// Puts the running process's pid integer and entry id (`p.id`,
/// `p.main.entry.id`, nil if missing) at 2 and 3, after `start` at 1 and
/// before its `n - 1` arguments; the coroutine record is at `n + 1`, the
/// top, and stays on top (at `n + 3`).
///
/// # Safety
///
/// As [`call`], with room for five more values.
unsafe fn insert_caller(l: *mut lua_State, n: c_int) {
    // SAFETY: raw reads of the kernel's records; nothing allocates.
    unsafe {
        raw::get(l, n + 1, Key::P); // n + 2
        raw::get(l, n + 2, Key::Id);
        fast::insert(l, 2); // the record and `p` move up one
        let p = n + 3;
        if raw::get(l, p, Key::Main) != ffi::LUA_TTABLE
            || raw::get(l, -1, Key::Entry) != ffi::LUA_TTABLE
        {
            fast::pushnil(l);
        } else {
            raw::get(l, -1, Key::Id);
        }
        fast::insert(l, 3); // now the record is at n + 3
        raw::settop(l, n + 3);
    }
}

/// The body of `call` and `call_as` (`as_caller`).
///
/// # Safety
///
/// Called from one of them.
unsafe fn call(l: *mut lua_State, as_caller: bool) -> c_int {
    // SAFETY: upvalue CURRENT is a Lua function whose first upvalue is the
    // kernel's `current` (checked when it was built); only integers are
    // alive across the calls that may raise (`start`, `mkerr`).
    unsafe {
        raw::reserve(l);
        let n = fast::gettop(l);
        if n < 1 || fast::type_of(l, 1) != ffi::LUA_TFUNCTION {
            raw::raise(l, 1, "call", Some(c": expected the host function to start"));
        }
        fast::push_upvalue1(l, uv(CURRENT));
        if fast::type_of(l, -1) != ffi::LUA_TTABLE {
            raw::raise(l, 1, "not inside a process", None);
        }
        if ffi::lua_isyieldable(l) == 0 || raw::truthy(l, -1, Key::Noyield) {
            raw::settop(l, 0);
            fast::pushnil(l);
            late(l, Late::Mkerr);
            ffi::lua_pushstring(l, c"INVALID".as_ptr());
            ffi::lua_pushlstring(l, CANNOT_WAIT.as_ptr().cast(), CANNOT_WAIT.len());
            ffi::lua_call(l, 2, 1);
            return 2;
        }
        let mut args = n - 1;
        if as_caller {
            insert_caller(l, n);
            args += 2;
        }
        fast::insert(l, 1); // 1: cr, 2: start, then its arguments
        ffi::lua_call(l, args, 4); // 2: ok, 3: op, 4: message, 5: retryable
        if fast::toboolean(l, 2) == 0 {
            late(l, Late::Mkerr);
            fast::insert(l, 3);
            ffi::lua_call(l, 3, 1); // 3: the error object
            fast::pushnil(l);
            fast::replace(l, 2);
            return 2;
        }
        raw::get(l, 1, Key::P); // 6
        if raw::get(l, 6, Key::Ops) != ffi::LUA_TTABLE {
            // 7: the process's first call makes its table of them.
            raw::pop(l, 1);
            ffi::lua_createtable(l, 0, 0);
            fast::pushvalue(l, -1);
            raw::set(l, 6, Key::Ops);
        }
        fast::pushvalue(l, 3);
        fast::pushvalue(l, 1);
        ffi::lua_rawset(l, 7);
        wait_ext(l, 1);
        raw::settop(l, 0);
        fast::pushvalue(l, uv(BLOCK));
        ffi::lua_yield(l, 1)
    }
}

/// What `drain()` answers when a process must be measured before anything
/// else runs: it was sent more than its limit between its resumes (its
/// id from `H.overdue()`).
const OVERDUE: ffi::lua_Integer = -2;

/// Items one `drain()` hands over at most before it answers how many
/// wake-ups are queued: a host's items are taken in turns with running
/// what they woke (and, through the core's rotation, with other ready
/// processes), so a flood into one process cannot hold its worker in
/// this loop. Unbounded, another host's sends to 50 readers kept a
/// worker here and its other processes waited 0.7–1.8 s.
const MOST_PER_DRAIN: u32 = 256;

/// `drain()`: the kernel's wait for items, in one C call. While the host
/// has an item for this VM (`has_items`), takes it as `done_next` does;
/// answers how many wake-ups the run queue holds once the host has none,
/// or -1 when the next item needs the kernel (`handle(H.next())`, after
/// which the kernel calls `drain` again), or [`OVERDUE`]. The loop it replaces made a C
/// call to `has_items` and one to `done_next` per item and one to
/// `rq_len`, interpreted, each time a worker entered the VM for an item.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_drain(l: *mut lua_State) -> c_int {
    // SAFETY: as `done_next`, called on this frame with nothing kept on
    // the stack between items; the context, when there is one, is the
    // VM's `Stepper`.
    unsafe {
        let mut taken = 0;
        loop {
            raw::settop(l, 0);
            let ctx = fast::touserdata(l, uv(CTX)).cast::<crate::step::Stepper>();
            if !ctx.is_null() && (*ctx).has_overdue() {
                fast::pushinteger(l, OVERDUE);
                return 1;
            }
            if taken >= MOST_PER_DRAIN || (!ctx.is_null() && !(*ctx).has_items()) {
                return runq::lua_len(l);
            }
            taken += 1;
            if done_next(l) == 0 {
                raw::settop(l, 0);
                fast::pushinteger(l, -1);
                return 1;
            }
        }
    }
}

/// `done_next`, for [`lua_drain`] (see the module's documentation): 1
/// result (`true`) when it handed the host's next item over, else none.
///
/// # Safety
///
/// Called from a machine C function, on a frame that keeps nothing on its
/// stack.
unsafe fn done_next(l: *mut lua_State) -> c_int {
    // SAFETY: the context, when there is one, is the VM's `Stepper`, which
    // outlives the VM's calls; the Rust values alive across a call that
    // may raise (`runq::room`) are references and integers; the value
    // taken is alive only across the protected conversion.
    unsafe {
        raw::reserve(l);
        raw::settop(l, 0);
        let ctx = fast::touserdata(l, uv(CTX)).cast::<crate::step::Stepper>();
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
            if super::inbox::msg_next(l, ctx)
                || super::start::start_next(l, ctx)
                || super::event::event_next(l, ctx)
                || super::fire::timer_next(l, ctx)
            {
                fast::pushboolean(l, 1);
                return 1;
            }
            return 0;
        };
        let (Ok(id), Ok(key)) = (i64::try_from(pid.as_u64()), i64::try_from(op)) else {
            return 0;
        };
        let procs = late(l, Late::Procs); // 1
        if fast::rawgeti(l, procs, id) != ffi::LUA_TTABLE // 2: p
            || raw::get(l, 2, Key::Ops) != ffi::LUA_TTABLE // 3: p.ops
            || fast::rawgeti(l, 3, key) != ffi::LUA_TTABLE
        // 4: the coroutine record (a function is a module's watcher)
        {
            return 0;
        }
        runq::room(l);
        let taken = match ctx.core().try_borrow_mut() {
            Ok(mut core) => core.take_done(index),
            Err(_) => None,
        };
        // `keep` keeps the value counted until it is built below.
        let Some((_, _, value, keep)) = taken else {
            return 0;
        };
        let lua = ctx.lua(l);
        let bytes = warren_core::limits::wire_size(std::slice::from_ref(&value));
        ctx.charge_received(lua, id, u64::try_from(bytes).unwrap_or(u64::MAX));
        let mt = late(l, Late::ErrorMt); // 5
        let built = crate::convert::push_protected(l, &value, mt); // 6
        warren_core::bufpool::recycle(value);
        drop(keep); // before anything below may raise: the process has it
        if !built {
            undeliverable(ctx, pid);
        } else {
            fast::pushnil(l);
            ffi::lua_rawseti(l, 3, key); // an existing key: no allocation
            runq::wake(l, 4, [6, 0, 0]);
        }
        fast::pushboolean(l, 1);
        1
    }
}

/// Ends `pid`, whose value could not be built, as `H.next` ends a process
/// whose item it cannot convert: it would otherwise wait forever.
pub(super) fn undeliverable(ctx: &crate::step::Stepper, pid: Pid) {
    let message = "an item for this process could not be delivered: out of memory";
    tracing::error!(%pid, "{message}");
    let reason = ProcError::new(ErrorKind::Internal, message);
    if let Ok(mut core) = ctx.core().try_borrow_mut() {
        let _ = core.terminate(Pid::RUNTIME, pid, reason);
    }
}

//! The exit of a monitored or trapped-linked process handed from the host
//! to the process told of it without `H.next`, for a process whose
//! `events` channel exists or which waits for that exit in
//! `process.exec`. mlua's callback frame, the event's conversion to a
//! list of Lua values, the kernel's `handle` and `on_event`, and
//! `time.now()` (another mlua call) were about a tenth of a monitored
//! spawn's instructions (`scripts/instructions spawnq`).
//!
//! `done_next()` (see [`super::done`]) tries this when the host's next
//! item is not a host call's value. Anything else (a cancel, a process
//! the kernel does not know, one that never asked for its events channel)
//! stays for `handle(H.next())`.
//!
//! Guarantees: what the kernel's `on_event` does for such an event: an
//! `exec` waiting for that process is woken with `true` and the value, or
//! `false` and the error object, and forgotten; otherwise `{ kind, from,
//! result = { value } or { error }, at }` goes through the events
//! channel's host-fed delivery (`deliver`), `at` a time value made as
//! `time.now()` makes one. An error object is made by the kernel's own
//! `mkerr` of the error's kind name, message, retryable flag and details.
//! The value and the error's parts are built in protected calls, and one
//! that cannot be built (out of memory) ends the process, as in `H.next`;
//! the tables, `mkerr` and the delivery may raise a memory error as the
//! kernel's would, with no Rust value that has a destructor alive (the
//! event is dropped once its parts are built); raw access only, no
//! metamethod, no user code.

use std::ffi::c_int;

use super::fast;
use mlua::ffi::{self, lua_State};
use warren_core::{Event, Pid};

use super::chan::deliver_at;
use super::done::undeliverable;
use super::raw::{self, Key, Late};
use super::runq;
use super::send::{late, push_proc};

/// What the host's next item is when it is such an event.
struct Peeked {
    pid: Pid,
    from: Pid,
    /// `EXIT` (a monitor's, or an exec's) rather than `LINK_DOWN`.
    exit: bool,
}

/// The event kinds as the kernel names them (`EVENT_KIND`).
const EXIT_KIND: &str = "pid.exit";
const LINK_DOWN_KIND: &str = "pid.link.down";

/// Hands over the host's next item when it is such an event (see the
/// module doc) and returns true; false, with the stack as it was, when it
/// is not.
///
/// # Safety
///
/// Called from a machine C function with `ctx` the VM's `Stepper` and
/// room reserved ([`raw::reserve`]).
pub(super) unsafe fn event_next(l: *mut lua_State, ctx: &crate::step::Stepper) -> bool {
    let index = ctx.index();
    let peeked = ctx.core().try_borrow().ok().and_then(|core| {
        let (pid, event) = core.peek_event(index)?;
        match event {
            Event::Exit { from, .. } => Some(Peeked {
                pid,
                from: *from,
                exit: true,
            }),
            Event::LinkDown { from, .. } => Some(Peeked {
                pid,
                from: *from,
                exit: false,
            }),
            Event::Cancel { .. } => None,
        }
    });
    let Some(Peeked { pid, from, exit }) = peeked else {
        return false;
    };
    let Ok(id) = i64::try_from(pid.as_u64()) else {
        return false;
    };
    // SAFETY: see above; until the item is taken the Rust values alive
    // across calls that may raise are integers and the sender's text (a
    // plain array); the event is alive only across the protected
    // conversions of its value or its error's parts (`push_error` drops
    // them before its call of `mkerr`).
    unsafe {
        let top = fast::gettop(l);
        let Some(p) = push_proc(l, id) else {
            return false;
        }; // top + 2
        let text = from.text();
        let text = text.as_bytes();
        ffi::lua_pushlstring(l, text.as_ptr().cast(), text.len()); // top + 3
        let from_at = top + 3;
        let waiter = top + 4;
        if !(exit && exec_waiter(l, p, from_at)) {
            raw::settop(l, from_at);
            fast::pushnil(l); // top + 4: no waiter
            if raw::get(l, p, Key::Events) != ffi::LUA_TTABLE {
                raw::settop(l, top);
                return false;
            } // top + 5: the events channel
        }
        runq::room(l);
        crate::machine::raw::room(l, 16);
        let mt = late(l, Late::ErrorMt);
        let value = mt + 1;
        let taken = ctx
            .core()
            .try_borrow_mut()
            .ok()
            .and_then(|mut c| c.take_event(index));
        let Some((pid, event)) = taken else {
            raw::settop(l, top);
            return false;
        };
        ctx.charge_received(ctx.lua(l), id, crate::quota::event_bytes(&event));
        let (Event::Exit { result, .. } | Event::LinkDown { result, .. }) = event else {
            raw::settop(l, top);
            return false;
        };
        let ok = result.is_ok();
        let built = match result {
            Ok(v) => crate::convert::push_protected(l, &v, mt),
            Err(err) => push_error(l, err, mt),
        };
        if !built {
            undeliverable(ctx, pid);
        } else if ffi::lua_isnil(l, waiter) == 0 {
            wake_exec(l, p, from_at, waiter, ok, value);
        } else {
            let kind = if exit { EXIT_KIND } else { LINK_DOWN_KIND };
            let field = if ok { Key::Value } else { Key::Error };
            deliver_event(l, waiter + 1, kind, from_at, field, value);
        }
        raw::settop(l, top);
        true
    }
}

/// Pushes `p.exec[from]`, the coroutine record of an `exec` waiting for
/// the process at `from`, and returns true; false (with what it pushed
/// left for the caller to drop) when none waits.
///
/// # Safety
///
/// As [`event_next`]; `p` and `from` absolute, `from` the top.
unsafe fn exec_waiter(l: *mut lua_State, p: c_int, from: c_int) -> bool {
    // SAFETY: see above.
    unsafe {
        if raw::get(l, p, Key::Exec) != ffi::LUA_TTABLE {
            return false;
        }
        fast::pushvalue(l, from);
        ffi::lua_rawget(l, -2) != ffi::LUA_TNIL && {
            fast::replace(l, from + 1);
            raw::settop(l, from + 1);
            true
        }
    }
}

/// Pushes the error object the kernel's `mkerr` makes of `err` (its
/// kind's name, its message, whether it is retryable, its details) and
/// returns true; false, with nothing pushed, when its parts could not be
/// built (out of memory). The parts are built in protected calls, and
/// the error and its parts are dropped before `mkerr` runs (it may
/// raise), so that no Rust string is alive then.
///
/// # Safety
///
/// As [`event_next`], with room for eight values; `mt` absolute.
unsafe fn push_error(l: *mut lua_State, err: warren_core::ProcError, mt: c_int) -> bool {
    let parts = [
        warren_core::Value::str(err.kind.name()),
        warren_core::Value::str(err.message),
        warren_core::Value::Bool(err.retryable),
        err.details.unwrap_or(warren_core::Value::Nil),
    ];
    // SAFETY: see above; `parts` (which holds all of `err` that needs
    // dropping) is dropped before `mkerr` is called.
    unsafe {
        let top = fast::gettop(l);
        late(l, Late::Mkerr);
        let built = parts
            .iter()
            .all(|part| crate::convert::push_protected(l, part, mt));
        drop(parts);
        if !built {
            raw::settop(l, top);
            return false;
        }
        ffi::lua_call(l, 4, 1);
        true
    }
}

/// As the kernel's `on_event` for a waiting `exec`: forgets it and wakes
/// it with `ok` and the value (an error object when not `ok`).
///
/// # Safety
///
/// As [`event_next`], with room for the wake-up made; indices absolute.
unsafe fn wake_exec(
    l: *mut lua_State,
    p: c_int,
    from: c_int,
    waiter: c_int,
    ok: bool,
    value: c_int,
) {
    // SAFETY: see above; `p.exec` is a table (`exec_waiter`) holding
    // `from`, so clearing it allocates nothing.
    unsafe {
        raw::get(l, p, Key::Exec);
        fast::pushvalue(l, from);
        fast::pushnil(l);
        ffi::lua_rawset(l, -3);
        fast::pushboolean(l, c_int::from(ok));
        let flag = fast::gettop(l);
        runq::wake(l, waiter, [flag, value, 0]);
    }
}

/// Delivers `{ kind, from, result = { [field] = value }, at }` to the
/// events channel at `s`, `at` the time now as `time.now()` makes it.
///
/// # Safety
///
/// As [`event_next`], with room for four values; indices absolute.
unsafe fn deliver_event(
    l: *mut lua_State,
    s: c_int,
    kind: &str,
    from: c_int,
    field: Key,
    value: c_int,
) {
    // SAFETY: see above; every table is new and has no metatable but the
    // time value's, set last.
    unsafe {
        let event = raw::clone_of(l, Late::EventTpl, 4);
        ffi::lua_pushlstring(l, kind.as_ptr().cast(), kind.len());
        raw::set(l, event, Key::Kind);
        fast::pushvalue(l, from);
        raw::set(l, event, Key::From);
        let result = if matches!(field, Key::Value) {
            Late::ValueTpl
        } else {
            Late::ErrorTpl
        };
        raw::clone_of(l, result, 1);
        fast::pushvalue(l, value);
        raw::set(l, event + 1, field);
        raw::set(l, event, Key::Result);
        raw::clone_of(l, Late::TimeTpl, 1);
        fast::pushinteger(l, crate::host::unix_nanos());
        raw::set(l, event + 1, Key::Ns);
        late(l, Late::TimeMt);
        ffi::lua_setmetatable(l, event + 1);
        raw::set(l, event, Key::At);
        deliver_at(l, s, event);
    }
}

//! The usual `process.send(pid, topic, payload)` in one C call: to a
//! process of this VM routed here, to any other pid sent by the host.
//!
//! `process.send` is [`lua_send`]: `send1(dest, topic[, v])` with its
//! arguments, and the kernel's Lua when that cannot decide. `send1` finds
//! the sender (the record of the kernel's `current` coroutine) and
//! the target (`bypid[dest]`). A child spawned here whose start is the
//! host's next item for this VM is started first and is then the
//! target (`start::start_for_send`). A pid of no process of this VM is the
//! host's: the message goes as `H.send_plain` sends it
//! ([`crate::plain::send_at`]), and `send1` answers as that does (`true`,
//! or `false, kind, message, retryable`). For a process of this VM it
//! copies `v` (as the kernel's copy: the same data model and size rules,
//! see [`crate::copy`]), and routes it as the kernel's `on_msg1` does: to
//! the channel listening on `topic`, else as a message record into the
//! inbox, else into the messages waiting for a subscriber, and answers
//! `true`. A receiver waiting on that channel takes it at once, counted
//! nowhere, when the host says its mailbox would have admitted it
//! (`Core::may_hand_over`: admitted and taken at once, the count would
//! not change); else the host admits it to the target's mailbox
//! (`mailbox_limit`) first.
//! A send of no payload (`process.send(pid, "stop")`) takes the same
//! path, its message carrying none. It answers nothing when the kernel's
//! Lua path must decide (arguments that are not two strings and at most
//! one payload, a call outside a process, a
//! registered name, a reserved topic, a payload only the Lua copy can
//! judge, a refusal of a local send): that path does the same checks again
//! and builds the error, and nothing was changed before it runs (a payload
//! the mailbox refused after it was copied comes as that copy, the same
//! data).
//!
//! Guarantees: the copy and the routing allocate under the sender's memory
//! limit; while a delivery is under way the step's owed mark names the
//! receiver ([`Stepper::set_owed`](crate::step::Stepper::set_owed)), so a
//! memory error part-way is reported as a message taken from its mailbox
//! (as in the Lua path); raw access only.

use std::ffi::c_int;

use super::fast;
use mlua::ffi::{self, lua_State};

use super::chan;
use super::raw::{self, CTX, Key, LATE, Late, uv};

/// Pushes what the kernel bound as `which`.
///
/// # Safety
///
/// Called from a machine C function with room for one value.
pub(super) unsafe fn late(l: *mut lua_State, which: Late) -> c_int {
    // SAFETY: see above.
    unsafe {
        fast::rawgeti(l, uv(LATE), which as i64);
        fast::gettop(l)
    }
}

/// Pushes the kernel's record of process `id` (`procs[id]`) and returns
/// its index; `None`, with the stack as it was, when the kernel has none.
///
/// # Safety
///
/// As [`late`], with room for two values.
pub(super) unsafe fn push_proc(l: *mut lua_State, id: i64) -> Option<c_int> {
    // SAFETY: see above.
    unsafe {
        let top = fast::gettop(l);
        let procs = late(l, Late::Procs);
        if fast::rawgeti(l, procs, id) != ffi::LUA_TTABLE {
            raw::settop(l, top);
            return None;
        }
        Some(top + 2)
    }
}

/// Pushes the copy of the payload at `v` and returns its wire size, or
/// returns `None` (leftovers above the top at the call) when only the Lua
/// copy can decide.
///
/// # Safety
///
/// As [`late`]; `v` absolute.
unsafe fn copy(l: *mut lua_State, v: c_int, max: i64) -> Option<u64> {
    // SAFETY: see above.
    unsafe {
        match fast::type_of(l, v) {
            ffi::LUA_TTABLE => {
                let error_mt = late(l, Late::ErrorMt);
                let bytes = crate::copy::copy_at(l, v, 0, max, error_mt)?;
                u64::try_from(bytes).ok()
            }
            ffi::LUA_TSTRING => {
                let bytes = (ffi::lua_rawlen(l, v) as u64).saturating_add(5);
                fast::pushvalue(l, v);
                (bytes <= max.max(0).cast_unsigned()).then_some(bytes)
            }
            ffi::LUA_TNUMBER => {
                fast::pushvalue(l, v);
                Some(9)
            }
            ffi::LUA_TBOOLEAN | ffi::LUA_TNIL => {
                fast::pushvalue(l, v);
                Some(1)
            }
            _ => None,
        }
    }
}

/// Whether the string at `topic` may not be sent on: it starts with `@`
/// (reserved for the runtime) or is longer than the core allows (the
/// kernel's Lua then says which, `limits::topic_refused`).
///
/// # Safety
///
/// As [`late`].
unsafe fn reserved(l: *mut lua_State, topic: c_int) -> bool {
    // SAFETY: a string's bytes, read while it is on the stack.
    unsafe {
        let mut len = 0;
        let s = ffi::lua_tolstring(l, topic, &raw mut len);
        s.is_null()
            || len > warren_core::limits::MAX_TOPIC_BYTES
            || (len > 0 && *s.cast::<u8>() == b'@')
    }
}

/// What the host said to a same-VM message ([`admit`]).
enum Admitted {
    /// Counted in the target's mailbox: deliver it here.
    Yes,
    /// Refused (or the host is busy): the kernel's Lua path decides.
    No,
    /// Items for the target wait in the host: send it through the host.
    Behind,
}

/// Asks the host to admit one more message, of `bytes` by wire size, to
/// the mailbox of process `id`.
fn admit(ctx: &crate::step::Stepper, id: i64, bytes: u64) -> Admitted {
    let Ok(mut core) = ctx.core().try_borrow_mut() else {
        return Admitted::No;
    };
    match core.admit_direct(crate::host::pid_of(id), counted(bytes)) {
        Ok(true) => Admitted::Yes,
        Ok(false) => Admitted::Behind,
        Err(_) => Admitted::No,
    }
}

/// Whether the host lets a message of `bytes` by wire size for process
/// `id` go straight to a receiver of it that waits (see
/// `Core::may_hand_over`); false when the core is busy.
fn may_hand_over(ctx: &crate::step::Stepper, id: i64, bytes: u64) -> bool {
    ctx.core()
        .try_borrow()
        .is_ok_and(|core| core.may_hand_over(crate::host::pid_of(id), counted(bytes)))
}

/// The size a message of `bytes` by wire size counts for in a mailbox.
fn counted(bytes: u64) -> u64 {
    bytes.saturating_add(warren_core::limits::PAYLOAD_OVERHEAD as u64)
}

/// `send1(dest, topic, ...)`; see the module's documentation.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_send1(l: *mut lua_State) -> c_int {
    // SAFETY: the context, when there is one, is the VM's `Stepper`, which
    // outlives the VM's calls; the arguments' types are checked first.
    unsafe {
        let ctx = fast::touserdata(l, uv(CTX)).cast::<crate::step::Stepper>();
        let args = fast::gettop(l);
        if ctx.is_null()
            || !(2..=3).contains(&args)
            || fast::type_of(l, 1) != ffi::LUA_TSTRING
            || fast::type_of(l, 2) != ffi::LUA_TSTRING
            || reserved(l, 2)
        {
            return 0;
        }
        raw::reserve(l);
        // No payload: slot 3 holds a nil that is not one (see `Payload`).
        let payload = if args == 3 {
            Payload::One(3)
        } else {
            Payload::None
        };
        raw::settop(l, 3);
        let ctx = &*ctx;
        match parties(l) {
            Parties::Local => {}
            // A child spawned here, not started yet, whose start is the
            // host's next item: started now, it takes this message direct.
            Parties::Remote(id) => {
                if !super::start::start_for_send(l, ctx, 1) || !started_target(l) {
                    return send_remote(l, ctx, id, args);
                }
            }
            Parties::Neither => return 0,
        }
        let mut bytes = 0;
        if payload != Payload::None {
            let Some(copied) = copy(l, 3, ctx.max_message_bytes()) else {
                return 0;
            };
            bytes = copied;
            fast::replace(l, 3); // the copy in place of the payload
            raw::settop(l, 5); // and the error metatable the copy used gone
        }
        let target = raw::int(l, 5, Key::Id);
        raw::get(l, 4, Key::Pid); // 6: the sender's pid
        let dest = dest_of(l, 5, 2); // 7: its channel (none for `pending`)
        // A receiver that waits for it takes it as it lands: counted
        // nowhere, as a message admitted and taken at once would be.
        let handed = hand_over(l, dest, 2, 6, payload, || may_hand_over(ctx, target, bytes));
        if handed == Handed::Yes {
            fast::pushboolean(l, 1);
            return 1;
        }
        match admit(ctx, target, bytes) {
            Admitted::Yes => {}
            Admitted::No => return 0,
            // Items for the target still wait in the core (messages sent
            // before it started): this one goes behind them, through the
            // core (the copy in the payload's place: the same data).
            Admitted::Behind => return send_remote(l, ctx, raw::int(l, 4, Key::Id), args),
        }
        // Owed until it lands: a memory error in `route` leaves the mark.
        ctx.set_owed(target);
        let item = item_for(l, dest, 2, 6, payload);
        match dest {
            // Nothing changed since `hand_over` saw no receiver there.
            Dest::Listen { s, .. } | Dest::Inbox(s) if handed == Handed::NoReceiver => {
                chan::buffer_at(l, s, item);
            }
            _ => deliver(l, 5, dest, item),
        }
        ctx.set_owed(0);
        fast::pushboolean(l, 1);
        1
    }
}

/// What a message carries, for [`route`]: exactly one payload (at this
/// index), or none (`process.send(dest, topic)`, a message whose
/// `payload()` is the empty payload, as the kernel's `on_msg` makes it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Payload {
    One(c_int),
    None,
}

/// `send1`'s send to pid `dest` (at 1) of no process of this VM, from
/// process `id`: as `H.send_plain` sends it, with the `args` arguments
/// `send1` was called with (2: no payload). Leaves the arguments as they
/// came when that answers nothing.
///
/// # Safety
///
/// As [`lua_send1`], with the arguments at 1..=3 (a nil at 3 when
/// `args` is 2) and room for four more values.
unsafe fn send_remote(
    l: *mut lua_State,
    ctx: &crate::step::Stepper,
    id: i64,
    args: c_int,
) -> c_int {
    // SAFETY: see above.
    unsafe {
        raw::settop(l, args);
        fast::pushinteger(l, id);
        ffi::lua_rotate(l, 1, 1); // me, dest, topic[, v]
        let n = crate::plain::send_at(l, ctx);
        if n == 0 {
            // Not plain: the arguments back as they were.
            raw::settop(l, args + 1);
            ffi::lua_rotate(l, 1, -1);
            raw::settop(l, args);
        }
        n
    }
}

/// `process.send(dest, topic, ...)`: [`lua_send1`], and when that cannot
/// decide, the kernel's Lua (`send_slow`, bound by `bind_send`) with the
/// arguments as they came (a payload that was copied before its mailbox
/// refused it comes as that copy: the same data, which the Lua copies
/// again). A refusal `send1` answered (`false, kind, message, retryable`)
/// is returned as the kernel's error, `nil, err`, as the Lua did.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_send(l: *mut lua_State) -> c_int {
    // SAFETY: `send1` leaves the arguments at 1..=3 when it answers
    // nothing (only above them otherwise); the kernel's functions are
    // bound (checked by `bind_send`, and `mkerr` by `bind`).
    unsafe {
        let top = fast::gettop(l);
        let n = lua_send1(l);
        if n > 0 {
            let first = fast::gettop(l) - n + 1;
            if fast::toboolean(l, first) != 0 {
                return n;
            }
            late(l, Late::Mkerr);
            ffi::lua_rotate(l, first + 1, 1); // false, mkerr, kind, message, retryable
            ffi::lua_call(l, n - 1, 1);
            fast::pushnil(l);
            fast::replace(l, first);
            return 2;
        }
        raw::settop(l, top);
        late(l, Late::SendSlow);
        fast::insert(l, 1);
        ffi::lua_callk(l, top, ffi::LUA_MULTRET, 0, Some(slow_done));
        fast::gettop(l)
    }
}

/// The continuation of `send_slow` (which may wait, as a host call does):
/// its results.
///
/// # Safety
///
/// Called by Lua as a continuation.
unsafe extern "C-unwind" fn slow_done(l: *mut lua_State, _: c_int, _: ffi::lua_KContext) -> c_int {
    // SAFETY: the results are the whole stack.
    unsafe { fast::gettop(l) }
}

/// `bind_send(send_slow)`: the kernel's Lua path of `process.send`.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn bind_send(l: *mut lua_State) -> c_int {
    // SAFETY: a function, checked, into its slot.
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TFUNCTION);
        fast::settop(l, 1);
        ffi::lua_rawseti(l, uv(LATE), Late::SendSlow as i64);
        0
    }
}

/// Who a `send1` is between (see [`parties`]).
enum Parties {
    /// Both records are pushed: the sender's at 4, the target's at 5.
    Local,
    /// The sender is process `id` and `dest` a pid of no process of this
    /// VM (another VM's, a component's, or none alive): the host's send.
    Remote(i64),
    /// Outside a process, or `dest` a registered name: the Lua path.
    Neither,
}

/// Finds the sender (the process record of the kernel's `current`
/// coroutine) and the target (`bypid[dest]`, dest at 1), leaving
/// leftovers above the top unless both are pushed.
///
/// # Safety
///
/// As [`late`], with room for three values.
unsafe fn parties(l: *mut lua_State) -> Parties {
    // SAFETY: see above; raw reads of the kernel's own tables and of the
    // string at 1.
    unsafe {
        if !raw::running(l) {
            return Parties::Neither;
        }
        fast::replace(l, 4);
        let mut len = 0;
        let dest = ffi::lua_tolstring(l, 1, &raw mut len);
        // Only a string as long as a pid's text may be one of `bypid`'s
        // keys: a longer one is not hashed (its hash reads every byte: a
        // 64 MiB destination held the worker 75 ms in C).
        if len <= warren_core::pid::TEXT_MAX {
            let bypid = late(l, Late::Bypid);
            fast::pushvalue(l, 1);
            if ffi::lua_rawget(l, bypid) == ffi::LUA_TTABLE {
                fast::replace(l, 5);
                return Parties::Local;
            }
        }
        if len > 0 && *dest.cast::<u8>() == b'<' {
            Parties::Remote(raw::int(l, 4, Key::Id))
        } else {
            Parties::Neither
        }
    }
}

/// After [`parties`] answered `Remote` and the target's start was taken
/// (`start::start_for_send`): puts the target's new record at 5, as
/// `parties` puts a local one, and answers true; false when it has none
/// (its start could not build its arguments). Out of line: `parties`,
/// called once, stays inlined in `send1`.
///
/// # Safety
///
/// As [`parties`], with the sender's record at 4.
#[inline(never)]
unsafe fn started_target(l: *mut lua_State) -> bool {
    // SAFETY: raw reads of the kernel's own table, the key a string.
    unsafe {
        raw::settop(l, 4);
        let bypid = late(l, Late::Bypid);
        fast::pushvalue(l, 1);
        if ffi::lua_rawget(l, bypid) == ffi::LUA_TTABLE {
            fast::replace(l, 5);
            return true;
        }
        raw::settop(l, 4);
        false
    }
}

/// Pushes the message record `{ topic, from, 1, v }`, or `{ topic,
/// from, 0 }` for no payload (the kernel's `MsgMT`).
///
/// # Safety
///
/// As [`late`]; indices absolute.
unsafe fn message(l: *mut lua_State, topic: c_int, from: c_int, v: Payload) -> c_int {
    // SAFETY: see above; the metatable, the slots, then the table of
    // them with it in the metatable's place.
    unsafe {
        let m = late(l, Late::MsgMt);
        fast::pushvalue(l, topic);
        fast::pushvalue(l, from);
        fast::pushinteger(l, i64::from(v != Payload::None));
        let n = if let Payload::One(v) = v {
            fast::pushvalue(l, v);
            4
        } else {
            3
        };
        raw::new_array(l, n, m);
        fast::replace(l, m);
        m
    }
}

/// Where [`route`] puts a message for a process record.
#[derive(Clone, Copy)]
enum Dest {
    /// A listen channel's state (pushed): it takes the payload itself, or
    /// the message record when it listens with `message = true` (`msgs`).
    Listen { s: c_int, msgs: bool },
    /// The inbox channel's state (pushed): it takes the message record.
    Inbox(c_int),
    /// No inbox yet (nothing pushed): the message record waits in the
    /// record's `pending` queue.
    Pending,
}

/// Finds where a message on `topic` goes in process record `p`, as the
/// kernel's `on_msg1` and `on_msg` do: the channel listening on `topic`,
/// else the inbox, else `pending`.
///
/// # Safety
///
/// As [`late`], with room for two values; indices absolute.
#[inline(always)]
unsafe fn dest_of(l: *mut lua_State, p: c_int, topic: c_int) -> Dest {
    // SAFETY: see above.
    unsafe {
        let top = fast::gettop(l);
        if raw::get(l, p, Key::Listens) == ffi::LUA_TTABLE {
            fast::pushvalue(l, topic);
            if ffi::lua_rawget(l, top + 1) == ffi::LUA_TTABLE {
                fast::replace(l, top + 1); // the channel for the listens
                let msgs = raw::truthy(l, top + 1, Key::Msgs);
                return Dest::Listen { s: top + 1, msgs };
            }
        }
        raw::settop(l, top);
        if raw::get(l, p, Key::Inbox) == ffi::LUA_TTABLE {
            return Dest::Inbox(top + 1);
        }
        raw::settop(l, top);
        Dest::Pending
    }
}

/// What `dest` is handed (its index): the message record `{ topic, from,
/// ... }`, or for a listen channel without `message = true` the payload
/// itself (not pushed), or for none an empty list.
///
/// # Safety
///
/// As [`late`]; indices absolute.
#[inline(always)]
unsafe fn item_for(l: *mut lua_State, dest: Dest, topic: c_int, from: c_int, v: Payload) -> c_int {
    // SAFETY: see above.
    unsafe {
        match (dest, v) {
            (Dest::Listen { msgs: false, .. }, Payload::One(v)) => v,
            (Dest::Listen { msgs: false, .. }, Payload::None) => {
                ffi::lua_createtable(l, 0, 0);
                fast::gettop(l)
            }
            _ => message(l, topic, from, v),
        }
    }
}

/// Delivers `item` to `dest` of process record `p`: to a receiver that
/// waits on its channel, else into the channel's buffer or `pending`.
///
/// # Safety
///
/// As [`late`]; indices absolute.
#[inline(always)]
unsafe fn deliver(l: *mut lua_State, p: c_int, dest: Dest, item: c_int) {
    // SAFETY: see above.
    unsafe {
        match dest {
            Dest::Listen { s, .. } | Dest::Inbox(s) => chan::deliver_at(l, s, item),
            Dest::Pending => {
                raw::q_of(l, p, Key::Pending);
                raw::q_push(l, fast::gettop(l), item);
            }
        }
    }
}

/// What [`hand_over`] did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handed {
    /// The message went to a receiver waiting for it.
    Yes,
    /// No receiver waits on its channel (nor was one woken).
    NoReceiver,
    /// Not handed: `allowed()` said no, every waiter was stale, or it
    /// goes to `pending`.
    No,
}

/// Hands a message of one payload or none to a receiver waiting on the
/// channel of `dest`, counting nothing taken (see [`chan::hand_to`]),
/// when one waits there and `allowed()` (asked only then) says so.
/// Otherwise, the stack as it was and nothing delivered, says why.
///
/// # Safety
///
/// As [`late`]; indices absolute.
#[inline(always)]
unsafe fn hand_over(
    l: *mut lua_State,
    dest: Dest,
    topic: c_int,
    from: c_int,
    v: Payload,
    allowed: impl FnOnce() -> bool,
) -> Handed {
    // SAFETY: see above; the item is made only for a waiting receiver.
    unsafe {
        let (Dest::Listen { s, .. } | Dest::Inbox(s)) = dest else {
            return Handed::No;
        };
        if !chan::receiver_waiting(l, s) {
            return Handed::NoReceiver;
        }
        if !allowed() {
            return Handed::No;
        }
        let top = fast::gettop(l);
        let item = item_for(l, dest, topic, from, v);
        let done = chan::hand_to(l, s, item);
        raw::settop(l, top);
        if done { Handed::Yes } else { Handed::No }
    }
}

/// Routes a message of one payload or none to process record `p` as the
/// kernel's `on_msg1` and `on_msg` do: a listen channel without
/// `message = true` gets the payload itself, or for none an empty list.
///
/// # Safety
///
/// As [`late`]; indices absolute.
pub(super) unsafe fn route(l: *mut lua_State, p: c_int, topic: c_int, from: c_int, v: Payload) {
    // SAFETY: see above.
    unsafe {
        let top = fast::gettop(l);
        let dest = dest_of(l, p, topic);
        let item = item_for(l, dest, topic, from, v);
        deliver(l, p, dest, item);
        raw::settop(l, top);
    }
}

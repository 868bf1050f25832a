//! A message from outside the VM handed straight to its process: the
//! usual message (one payload, or none), routed in C as a message from
//! the same VM is (`send1`'s [`route`]: a `listen` channel for its
//! topic, the inbox, or the messages waiting for one), without the
//! kernel's Lua frames (`handle`, `on_msg`, `on_msg1`) or making the item
//! into Lua values for `H.next` first.
//!
//! `done_next()` (see [`super::done`]) tries this when the host's next
//! item is not a host call's value. The message is taken only when the
//! kernel's `procs[id]` is the process; anything else (a process the
//! kernel does not know, a message with several payloads, one with none
//! on a runtime topic (`@...`), or a topic longer than [`TOPIC_INLINE`])
//! stays for `handle(H.next())`.
//!
//! Guarantees: what the kernel's `on_msg1` does for such a message, in
//! the same order: the process is charged for what it received, as in
//! `H.next`; the message record is `{ topic, from, 1, value }` (or
//! `{ topic, from, 0 }`) with the kernel's message metatable; it goes
//! through the channel's host-fed
//! delivery (`deliver`), which wakes a waiting receiver or buffers it.
//! The value is built in a protected call, and one that cannot be built
//! (out of memory) ends the process, as in `H.next`; the record and its
//! delivery may raise a memory error as the kernel's would, with no Rust
//! value that has a destructor alive (the topic and the sender's pid are
//! copied to the stack first); raw access only, no metamethod, no user
//! code.

use std::ffi::c_int;

use super::fast;
use crate::step::FROM_CACHE;
use mlua::ffi::{self, lua_State};

use super::done::undeliverable;
use super::raw::{self, Late};
use super::runq;
use super::send::{Payload, late, push_proc, route};

/// The longest topic handed over here (longer ones take `H.next`): the
/// topic is copied to a buffer on the stack so that nothing of Rust's
/// needs dropping when a push raises.
pub(super) const TOPIC_INLINE: usize = 64;

/// Delivers the host's next item when it is such a message (see the
/// module doc) and returns true; false, with the stack as it was, when it
/// is not.
///
/// # Safety
///
/// Called from a machine C function with `ctx` the VM's `Stepper` and
/// room reserved ([`raw::reserve`]).
pub(super) unsafe fn msg_next(l: *mut lua_State, ctx: &crate::step::Stepper) -> bool {
    let index = ctx.index();
    let mut buf = [0u8; TOPIC_INLINE];
    let peeked = ctx.core().try_borrow().ok().and_then(|core| {
        let (pid, m) = core.peek_msg(index)?;
        let topic = m.topic.as_bytes();
        if m.payloads.is_empty() && topic.first() == Some(&b'@') {
            return None; // the runtime's own topics (`@bus`) take `handle`
        }
        let len = topic.len();
        buf.get_mut(..len)?.copy_from_slice(topic);
        Some((pid, len))
    });
    let Some((pid, len)) = peeked else {
        return false;
    };
    let Ok(id) = i64::try_from(pid.as_u64()) else {
        return false;
    };
    let topic = &buf[..len];
    // SAFETY: see above; until the message is taken the Rust values alive
    // across calls that may raise are plain bytes and integers, and the
    // message itself is alive only across the protected conversion.
    unsafe {
        let top = fast::gettop(l);
        let Some(p) = push_proc(l, id) else {
            return false;
        }; // top + 2
        runq::room(l);
        let taken = ctx
            .core()
            .try_borrow_mut()
            .ok()
            .and_then(|mut c| c.take_msg(index));
        let Some((pid, msg)) = taken else {
            raw::settop(l, top);
            return false;
        };
        ctx.charge_received(ctx.lua(l), id, msg.wire_bytes());
        let mt = late(l, Late::ErrorMt); // top + 3
        let (built, payload) = match msg.payloads.first() {
            Some(v) => (
                crate::convert::push_payload(l, v, mt), // top + 4
                Payload::One(top + 4),
            ),
            None => {
                fast::pushnil(l); // top + 4: no payload
                (true, Payload::None)
            }
        };
        let from = msg.from;
        drop(msg);
        if !built {
            undeliverable(ctx, pid);
            raw::settop(l, top);
            return true;
        }
        push_topic(l, topic); // top + 5
        push_from(l, ctx, from); // top + 6
        route(l, p, top + 5, top + 6, payload);
        raw::settop(l, top);
        true
    }
}

/// Topics whose strings a VM keeps (`Late::LastTopic`), one slot each by
/// a hash of their bytes: a process that hears on a few topics from
/// another worker (Big's `ping` and `pong`, one after the other) made a
/// string for each message when only the last topic was kept.
const TOPIC_CACHE: usize = 8;

/// Pushes `topic`: the string kept in its slot of the `Late::LastTopic`
/// table when it is the same bytes, else a new one, kept there for the
/// next.
///
/// # Safety
///
/// As [`msg_next`], with room for three values; may raise a memory error
/// (nothing of Rust's needs dropping: `topic` is borrowed from a buffer
/// on the caller's stack).
unsafe fn push_topic(l: *mut lua_State, topic: &[u8]) {
    // SAFETY: see above; the table's slots hold nothing or strings the
    // machine put there (the table is the machine's own).
    unsafe {
        let hash = topic.iter().fold(topic.len(), |h, &b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        let at = i64::try_from(hash % TOPIC_CACHE).unwrap_or(0) + 1;
        let cache = cache_table(l, Late::LastTopic, TOPIC_CACHE);
        fast::rawgeti(l, cache, at);
        if raw::bytes_at(l, -1) == Some(topic) {
            fast::remove(l, cache);
            return;
        }
        raw::pop(l, 1);
        ffi::lua_pushlstring(l, topic.as_ptr().cast(), topic.len());
        fast::pushvalue(l, -1);
        ffi::lua_rawseti(l, cache, at);
        fast::remove(l, cache);
    }
}

/// Pushes the text of `from`: the string kept for it in its slot of the
/// `Late::LastFrom` table (see [`FROM_CACHE`]) when it is there, else a
/// new one, kept in that slot for the next.
///
/// # Safety
///
/// As [`push_topic`], with room for three values.
unsafe fn push_from(l: *mut lua_State, ctx: &crate::step::Stepper, from: warren_core::Pid) {
    // SAFETY: see above; the pid recorded in `ctx` is forgotten before
    // the slot changes and set only after its text is in it, so a raise
    // in between leaves a miss, never a wrong text.
    unsafe {
        let slot = usize::try_from(from.serial() % FROM_CACHE as u64).unwrap_or(0);
        let at = i64::try_from(slot).unwrap_or(0) + 1;
        let cache = cache_table(l, Late::LastFrom, FROM_CACHE);
        if ctx.cached_from(slot) == Some(from) {
            fast::rawgeti(l, cache, at);
            fast::remove(l, cache);
            return;
        }
        ctx.set_cached_from(slot, None);
        let text = from.text();
        let text = text.as_bytes();
        ffi::lua_pushlstring(l, text.as_ptr().cast(), text.len());
        fast::pushvalue(l, -1);
        ffi::lua_rawseti(l, cache, at);
        fast::remove(l, cache);
        ctx.set_cached_from(slot, Some(from));
    }
}

/// Pushes the table of kept strings in slot `which` (`Late::LastFrom`,
/// `Late::LastTopic`), made at its full size (`slots`) on first use, and
/// answers its index.
///
/// # Safety
///
/// As [`push_topic`]; may raise a memory error (the table's first use).
unsafe fn cache_table(l: *mut lua_State, which: Late, slots: usize) -> c_int {
    // SAFETY: see above; the slot holds nothing or the table made here.
    unsafe {
        let at = late(l, which);
        if fast::type_of(l, at) != ffi::LUA_TTABLE {
            raw::pop(l, 1);
            ffi::lua_createtable(l, c_int::try_from(slots).unwrap_or(0), 0);
            fast::pushvalue(l, -1);
            ffi::lua_rawseti(l, raw::uv(raw::LATE), which as i64);
        }
        fast::gettop(l)
    }
}

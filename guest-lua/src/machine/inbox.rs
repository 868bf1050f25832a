//! A message from outside the VM handed straight to its process: the
//! usual message (one payload), routed in C as a message from the same VM
//! is (`send1`'s [`route`]: a `listen` channel for its topic, the inbox,
//! or the messages waiting for one), without the kernel's Lua frames
//! (`handle`, `on_msg`, `on_msg1`) or making the item into Lua values for
//! `H.next` first.
//!
//! `done_next()` (see [`super::done`]) tries this when the host's next
//! item is not a host call's value. The message is taken only when the
//! kernel's `procs[id]` is the process; anything else (a process the
//! kernel does not know, a message with several payloads or a topic
//! longer than [`TOPIC_INLINE`]) stays for `handle(H.next())`.
//!
//! Guarantees: what the kernel's `on_msg1` does for such a message, in
//! the same order: the process is charged for what it received, as in
//! `H.next`; the message record is `{ topic, from, 1, value }` with the
//! kernel's message metatable; it goes through the channel's host-fed
//! delivery (`deliver`), which wakes a waiting receiver or buffers it.
//! The value is built in a protected call, and one that cannot be built
//! (out of memory) ends the process, as in `H.next`; the record and its
//! delivery may raise a memory error as the kernel's would, with no Rust
//! value that has a destructor alive (the topic and the sender's pid are
//! copied to the stack first); raw access only, no metamethod, no user
//! code.

use mlua::ffi::{self, lua_State};

use super::done::undeliverable;
use super::raw::{self, Late};
use super::runq;
use super::send::{late, push_proc, route};

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
        let top = ffi::lua_gettop(l);
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
        let built = crate::convert::push_payload(l, &msg.payloads[0], mt); // top + 4
        let from = msg.from.text();
        drop(msg);
        if !built {
            undeliverable(ctx, pid);
            raw::settop(l, top);
            return true;
        }
        ffi::lua_pushlstring(l, topic.as_ptr().cast(), topic.len()); // top + 5
        let from = from.as_bytes();
        ffi::lua_pushlstring(l, from.as_ptr().cast(), from.len()); // top + 6
        route(l, p, top + 5, top + 6, top + 4);
        raw::settop(l, top);
        true
    }
}

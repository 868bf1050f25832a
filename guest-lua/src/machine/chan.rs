//! Channels: the waiter queues, the non-blocking receive and send, the
//! host-fed delivery, and the blocking `receive`/`send` methods, which
//! yield the kernel's `BLOCK` token from C.
//!
//! A channel is a full userdata with the kernel's channel metatable
//! ([`raw::CHAN_MT`]; `new_chan`). Its state, the user value, is the
//! kernel's table (see `chan_state` in kernel/channels.lua): `buf` (a queue of
//! values, `NIL` for nil), `cap`, `sw` and `sq` (the oldest blocked
//! sender, then a queue of later ones: a select's `{ cr, sel, v }`, a
//! plain send's coroutine record itself with the value in its `v` while
//! it waits), `rw` and `rq` (the same for receivers; a plain receive
//! waits as its coroutine record itself), `closed`, `ext` (fed by the
//! host), `mb` (the process whose mailbox it is), `proxy` (the channel
//! itself), `rcase` (its receive case, which only the kernel's Lua reads).
//! A side's queue is made only when a second waiter of that side comes
//! ([`Side`]).
//!
//! Guarantees: the same semantics as the Lua they replace, in the same
//! order of writes (a memory error part-way leaves what the Lua left);
//! raw access only; a coroutine waits only where it can yield (checked
//! before it is queued as a waiter).

use std::ffi::c_int;

use super::fast;
use mlua::ffi::{self, lua_State};

use super::raw::{self, BLOCK, CHAN_MT, CLOSED, CTX, CURRENT, Key, NIL, TAKEN, uv};
use super::runq;

/// Pushes `w.cr or w`: the coroutine record of waiter `w`.
///
/// # Safety
///
/// Called from a machine C function; `w` absolute.
unsafe fn cr_of(l: *mut lua_State, w: c_int) {
    // SAFETY: see above.
    unsafe {
        if raw::get(l, w, Key::Cr) == ffi::LUA_TNIL {
            raw::pop(l, 1);
            fast::pushvalue(l, w);
        }
    }
}

/// What a waiter is: a coroutine record waiting as itself (a plain
/// receive or send: it has neither `cr` nor `sel`), or a select's record
/// `{ cr, sel, v }`. Claiming one tells which, so that waking it reads
/// neither field again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Waiter {
    Plain,
    Select,
}

/// Pushes the coroutine record of waiter `w` (absolute) of kind `kind`.
///
/// # Safety
///
/// As [`cr_of`].
unsafe fn push_cr(l: *mut lua_State, w: c_int, kind: Waiter) {
    // SAFETY: see above; a select's record always has its `cr`.
    unsafe {
        match kind {
            Waiter::Plain => fast::pushvalue(l, w),
            Waiter::Select => {
                raw::get(l, w, Key::Cr);
            }
        }
    }
}

/// Claims waiter `w` for a wake-up and says what it is, claiming its
/// select if it has one; `None` for a waiter that may not be woken (its
/// select completed elsewhere, or its process's code was replaced).
///
/// # Safety
///
/// As [`cr_of`].
unsafe fn claim(l: *mut lua_State, w: c_int) -> Option<Waiter> {
    // SAFETY: see above; `done` exists in every select record.
    unsafe {
        let kind = if raw::get(l, w, Key::Sel) == ffi::LUA_TTABLE {
            Waiter::Select
        } else {
            Waiter::Plain
        };
        let sel = fast::gettop(l);
        push_cr(l, w, kind);
        let dead = !raw::truthy(l, sel + 1, Key::Th);
        let ok = if dead {
            if kind == Waiter::Select {
                raw::set_bool(l, sel, Key::Done, true);
            }
            false
        } else if kind == Waiter::Plain {
            true
        } else if raw::truthy(l, sel, Key::Done) {
            false
        } else {
            raw::set_bool(l, sel, Key::Done, true);
            true
        };
        raw::settop(l, sel - 1);
        ok.then_some(kind)
    }
}

/// Whether waiter `w`'s select completed elsewhere.
///
/// # Safety
///
/// As [`cr_of`].
unsafe fn sel_done(l: *mut lua_State, w: c_int) -> bool {
    // SAFETY: see above.
    unsafe {
        let t = raw::get(l, w, Key::Sel);
        let done = t == ffi::LUA_TTABLE && raw::truthy(l, -1, Key::Done);
        raw::pop(l, 1);
        done
    }
}

/// Queues waiter `w` on queue `q`, first dropping completed selects at
/// its head, and every stale waiter when the queue is full
/// ([`raw::q_compact`]): a select that completes through another case
/// leaves its waiter here, and one live waiter at the head kept every
/// such waiter behind it (a select loop over the inbox and a timer, with
/// other coroutines waiting on the inbox, grew by one waiter per tick
/// until its process ran out of memory, and one pop then skipped
/// millions). May allocate.
///
/// # Safety
///
/// As [`cr_of`]; `q` and `w` absolute.
unsafe fn push_waiter(l: *mut lua_State, q: c_int, w: c_int) {
    // SAFETY: see above; `stale` restores the stack and never allocates
    // (it writes `done` on a select record, a field every one has).
    unsafe {
        while !raw::q_empty(l, q) {
            fast::rawgeti(l, q, raw::int(l, q, Key::H));
            let stale = sel_done(l, fast::gettop(l));
            raw::pop(l, 1);
            if !stale {
                break;
            }
            raw::q_pop(l, q);
            raw::pop(l, 1);
        }
        raw::q_compact(l, q, stale);
        raw::q_push(l, q, w);
    }
}

/// One side's waiters of a channel state: the oldest in a field of its
/// own (`rw`, `sw`), later ones in a queue (`rq`, `sq`, made on first
/// use). A channel usually has at most one waiter per side, which then
/// costs no queue. The field is filled only while the queue is empty and
/// refilled from the queue's head when it is taken, so it always holds
/// the oldest, and an empty field means no waiter of that side: the
/// common checks read one field.
#[derive(Clone, Copy)]
pub(super) struct Side {
    slot: Key,
    queue: Key,
}

/// The receivers of a channel.
pub(super) const RECEIVERS: Side = Side {
    slot: Key::Rw,
    queue: Key::Rq,
};

/// The blocked senders of a channel.
pub(super) const SENDERS: Side = Side {
    slot: Key::Sw,
    queue: Key::Sq,
};

/// Whether waiter `w` (absolute) will never be woken: its coroutine is
/// gone or its select completed elsewhere (marking a gone coroutine's
/// select done).
///
/// # Safety
///
/// As [`cr_of`].
unsafe fn stale(l: *mut lua_State, w: c_int) -> bool {
    // SAFETY: see above.
    unsafe {
        let top = fast::gettop(l);
        cr_of(l, w);
        let dead = !raw::truthy(l, top + 1, Key::Th);
        raw::pop(l, 1);
        let stale = dead || sel_done(l, w);
        if stale && raw::get(l, w, Key::Sel) == ffi::LUA_TTABLE {
            raw::set_bool(l, top + 1, Key::Done, true);
        }
        raw::settop(l, top);
        stale
    }
}

/// Adds waiter `w` to `side` of channel state `s`: into its field when
/// that is empty, or holds a stale waiter with nothing queued behind it;
/// else behind the others in its queue. May allocate (the queue).
///
/// # Safety
///
/// As [`push_waiter`].
pub(super) unsafe fn side_push(l: *mut lua_State, s: c_int, w: c_int, side: Side) {
    // SAFETY: see above.
    unsafe {
        let top = fast::gettop(l);
        let free = raw::get(l, s, side.slot) == ffi::LUA_TNIL;
        let has_queue = !free && raw::get(l, s, side.queue) == ffi::LUA_TTABLE;
        let queued = has_queue && !raw::q_empty(l, top + 2);
        if free || (!queued && stale(l, top + 1)) {
            fast::pushvalue(l, w);
            raw::set(l, s, side.slot);
        } else {
            if !has_queue {
                raw::settop(l, top + 1);
                raw::q_of(l, s, side.queue);
            }
            push_waiter(l, top + 2, w);
        }
        raw::settop(l, top);
    }
}

/// Pushes the waiter of `side` of channel state `s` that may be woken
/// next, taken off it (the queue's head taking its place), and says what
/// it is; pushes nil and answers `None` when there is none. Never
/// allocates: the field it refills exists.
///
/// # Safety
///
/// As [`cr_of`].
unsafe fn side_pop(l: *mut lua_State, s: c_int, side: Side) -> Option<Waiter> {
    // SAFETY: see above.
    unsafe {
        loop {
            if raw::get(l, s, side.slot) == ffi::LUA_TNIL {
                return None; // no waiter: the field's nil is the answer
            }
            let w = fast::gettop(l);
            if raw::get(l, s, side.queue) == ffi::LUA_TTABLE {
                raw::q_pop(l, w + 1);
            } else {
                fast::pushnil(l);
            }
            raw::set(l, s, side.slot);
            raw::settop(l, w);
            if let Some(kind) = claim(l, w) {
                return Some(kind);
            }
            raw::pop(l, 1);
        }
    }
}

/// Whether `side` of channel state `s` has a waiter (perhaps a stale one,
/// which popping skips).
///
/// # Safety
///
/// As [`cr_of`].
unsafe fn side_waiting(l: *mut lua_State, s: c_int, side: Side) -> bool {
    // SAFETY: see above.
    unsafe {
        let waiting = raw::get(l, s, side.slot) != ffi::LUA_TNIL;
        raw::pop(l, 1);
        waiting
    }
}

/// Wakes waiter `w` (absolute) of kind `kind` with `v` (0: nil) and
/// `ok`, and with the channel proxy of `s` when it waits in a select.
///
/// # Safety
///
/// As [`cr_of`].
unsafe fn wake_waiter(l: *mut lua_State, w: c_int, kind: Waiter, s: c_int, v: c_int, ok: bool) {
    // SAFETY: see above.
    unsafe {
        let top = fast::gettop(l);
        push_cr(l, w, kind);
        fast::pushboolean(l, c_int::from(ok));
        let proxy = if kind == Waiter::Select {
            raw::get(l, s, Key::Proxy);
            top + 3
        } else {
            0
        };
        runq::wake(l, top + 1, [v, top + 2, proxy]);
        raw::settop(l, top);
    }
}

/// Counts one message taken from the mailbox of process record `mb`,
/// to the core at once ([`Stepper::consumed`](crate::step::Stepper::consumed));
/// into the kernel's `TAKEN[mb]` only in a VM without a host (the
/// machine's own tests). A count per process in `TAKEN`, keyed by a
/// table and handed over when the step ended, cost a generic hash lookup
/// and store per message and another per step, more than the core's.
///
/// # Safety
///
/// As [`cr_of`]; may allocate (a first count in `TAKEN`).
unsafe fn note_taken(l: *mut lua_State, mb: c_int) {
    // SAFETY: the context, when there is one, is the VM's `Stepper`,
    // which outlives the VM's calls (as `send::lua_send1`).
    unsafe {
        let ctx = fast::touserdata(l, uv(CTX)).cast::<crate::step::Stepper>();
        if let Some(ctx) = ctx.as_ref() {
            ctx.consumed(raw::int(l, mb, Key::Id), 1);
            return;
        }
        let n = raw::int_at(l, uv(TAKEN), mb);
        raw::set_int_at(l, uv(TAKEN), mb, n + 1);
    }
}

/// Pushes the value of blocked sender `w` (as queued: `NIL` for nil) of
/// kind `kind`, and takes it off a coroutine record that waited as itself
/// (a plain send), so the record holds no payload once it is woken. Never
/// allocates.
///
/// # Safety
///
/// As [`cr_of`]; `w` absolute.
unsafe fn take_value(l: *mut lua_State, w: c_int, kind: Waiter) {
    // SAFETY: see above; clearing an existing field never allocates.
    unsafe {
        raw::get(l, w, Key::V);
        if kind == Waiter::Plain {
            fast::pushnil(l);
            raw::set(l, w, Key::V);
        }
    }
}

/// Replaces the value on top with nil when it is the `NIL` token.
///
/// # Safety
///
/// As [`cr_of`].
unsafe fn untoken(l: *mut lua_State) {
    // SAFETY: see above.
    unsafe {
        if fast::rawequal(l, -1, uv(NIL)) != 0 {
            raw::pop(l, 1);
            fast::pushnil(l);
        }
    }
}

/// Pushes the value at `v` for a queue: the `NIL` token for nil.
///
/// # Safety
///
/// As [`cr_of`].
pub(super) unsafe fn push_queued(l: *mut lua_State, v: c_int) {
    // SAFETY: see above.
    unsafe {
        if ffi::lua_isnil(l, v) != 0 {
            fast::pushvalue(l, uv(NIL));
        } else {
            fast::pushvalue(l, v);
        }
    }
}

/// Non-blocking receive from channel state `s`: pushes `value, ok` and
/// returns true when ready, pushes nothing and returns false otherwise.
///
/// # Safety
///
/// As [`cr_of`].
pub(super) unsafe fn try_recv(l: *mut lua_State, s: c_int) -> bool {
    // SAFETY: see above.
    unsafe {
        let top = fast::gettop(l);
        let buf = top + 1;
        if raw::get(l, s, Key::Buf) == ffi::LUA_TTABLE && !raw::q_empty(l, buf) {
            resume_tick(l, s);
            raw::q_pop(l, buf); // top + 2: the value
            if raw::get(l, s, Key::Mb) != ffi::LUA_TNIL {
                note_taken(l, top + 3);
            }
            raw::pop(l, 1);
            // A blocked sender's value takes the freed place (side_pop's
            // nil, when there is none, goes with the settop below).
            if let Some(kind) = side_pop(l, s, SENDERS) {
                let w = top + 3;
                take_value(l, w, kind);
                raw::q_push(l, buf, top + 4);
                raw::pop(l, 1);
                wake_waiter(l, w, kind, s, 0, true);
            }
            raw::settop(l, top + 2);
            untoken(l);
            fast::remove(l, buf);
            fast::pushboolean(l, 1);
            return true;
        }
        raw::settop(l, top);
        if let Some(kind) = side_pop(l, s, SENDERS) {
            let w = top + 1;
            wake_waiter(l, w, kind, s, 0, true);
            take_value(l, w, kind);
            untoken(l);
            fast::replace(l, top + 1);
            raw::settop(l, top + 1);
            fast::pushboolean(l, 1);
            return true;
        }
        raw::settop(l, top);
        if raw::truthy(l, s, Key::Closed) {
            fast::pushnil(l);
            fast::pushboolean(l, 0);
            return true;
        }
        false
    }
}

/// Before a value is taken from the buffer of channel state `s`: when it
/// is a ticker's, the kernel's `resume_tick(ticker)` re-arms the ticker if
/// its last fire found that value still unread and armed nothing (a
/// ticker nobody reads costs nothing: re-armed at every fire, one of 1 ns
/// kept a worker busy for nobody's account). Before the value is taken,
/// so a memory error there leaves the channel as it was.
///
/// # Safety
///
/// As [`cr_of`]; `s` absolute; may allocate and raise (the kernel's Lua).
unsafe fn resume_tick(l: *mut lua_State, s: c_int) {
    // SAFETY: see above; the function is the kernel's (`bind_select`).
    unsafe {
        if raw::get(l, s, Key::Tick) == ffi::LUA_TTABLE {
            fast::rawgeti(l, uv(raw::LATE), raw::Late::ResumeTick as i64);
            fast::insert(l, -2);
            ffi::lua_call(l, 1, 0);
        } else {
            raw::pop(l, 1);
        }
    }
}

/// Non-blocking send of the value at `v` on channel state `s`: true when
/// done. Raises at `level` on a closed channel.
///
/// # Safety
///
/// As [`cr_of`].
pub(super) unsafe fn try_send(l: *mut lua_State, s: c_int, v: c_int, level: c_int) -> bool {
    // SAFETY: see above.
    unsafe {
        if raw::truthy(l, s, Key::Closed) {
            raw::raise(l, level, "send on closed channel", None);
        }
        let top = fast::gettop(l);
        if let Some(kind) = side_pop(l, s, RECEIVERS) {
            wake_waiter(l, top + 1, kind, s, v, true);
            raw::settop(l, top);
            return true;
        }
        let has_buf = raw::get(l, s, Key::Buf) == ffi::LUA_TTABLE;
        let len = if has_buf { raw::q_len(l, top + 2) } else { 0 };
        let cap = raw::int(l, s, Key::Cap);
        let done = len < cap;
        if done {
            if !has_buf {
                raw::pop(l, 1);
                raw::q_of(l, s, Key::Buf);
            }
            push_queued(l, v);
            raw::q_push(l, top + 2, top + 3);
        }
        raw::settop(l, top);
        done
    }
}

/// Host-fed delivery of the value at `v` to channel state `s`: to a
/// waiting receiver, else into the buffer. Never blocks (the host's
/// queues bound it).
///
/// # Safety
///
/// As [`cr_of`].
pub(super) unsafe fn deliver_at(l: *mut lua_State, s: c_int, v: c_int) {
    // SAFETY: see above; `room` first, so that a receiver taken off the
    // channel is always woken.
    unsafe {
        if side_waiting(l, s, RECEIVERS) && hand_to(l, s, v) {
            // Taken as it arrived: the host counted it, so it is reported.
            let top = fast::gettop(l);
            if raw::get(l, s, Key::Mb) != ffi::LUA_TNIL {
                note_taken(l, top + 1);
            }
            raw::settop(l, top);
        } else {
            buffer_at(l, s, v);
        }
    }
}

/// Puts the value at `v` into the buffer of channel state `s`, where no
/// receiver waits (as [`deliver_at`] does then). May allocate.
///
/// # Safety
///
/// As [`cr_of`]; `s` and `v` absolute.
pub(super) unsafe fn buffer_at(l: *mut lua_State, s: c_int, v: c_int) {
    // SAFETY: see above.
    unsafe {
        let top = fast::gettop(l);
        raw::q_of(l, s, Key::Buf);
        push_queued(l, v);
        raw::q_push(l, top + 1, top + 2);
        raw::settop(l, top);
    }
}

/// Whether a receiver (perhaps a stale one, see [`side_pop`]) waits on
/// channel state `s`.
///
/// # Safety
///
/// As [`cr_of`].
pub(super) unsafe fn receiver_waiting(l: *mut lua_State, s: c_int) -> bool {
    // SAFETY: see above.
    unsafe { side_waiting(l, s, RECEIVERS) }
}

/// Hands the value at `v` to the receiver waiting on channel state `s`,
/// counting nothing taken ([`deliver_at`] reports the take of what the
/// host counted; the same-VM send that calls it directly counted nothing,
/// `Core::may_hand_over`). False, with nothing delivered, when every
/// waiter was stale (they are taken off).
///
/// # Safety
///
/// As [`cr_of`]; `s` and `v` absolute.
pub(super) unsafe fn hand_to(l: *mut lua_State, s: c_int, v: c_int) -> bool {
    // SAFETY: see above; `room` first, as in `deliver_at`.
    unsafe {
        let top = fast::gettop(l);
        runq::room(l);
        let kind = side_pop(l, s, RECEIVERS);
        if let Some(kind) = kind {
            wake_waiter(l, top + 1, kind, s, v, true);
        }
        raw::settop(l, top);
        kind.is_some()
    }
}

/// Pushes the channel state of the channel at index 1, raising "expected
/// a channel" (at the caller) when it is none.
///
/// # Safety
///
/// As [`cr_of`].
pub(super) unsafe fn state_of(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        if !raw::chan_state(l, 1) {
            let got = ffi::lua_typename(l, fast::type_of(l, 1));
            raw::raise(
                l,
                1,
                "expected a channel, got ",
                Some(std::ffi::CStr::from_ptr(got)),
            );
        }
        fast::gettop(l)
    }
}

/// The error of a wait where the coroutine cannot be suspended: its waiter,
/// left behind, would wake it out of whatever it waits on next (the
/// kernel's `CANNOT_WAIT`).
pub(super) const CANNOT_WAIT: &str = "this call waits, and the code making it cannot be suspended \
    (it runs inside a C function's callback, such as a table.sort comparator)";

/// Pushes the running coroutine record, raising where a wait cannot be:
/// outside a process, or where it could not be suspended: where Lua cannot
/// yield, or in a coroutine resumed from such code (`noyield`).
///
/// # Safety
///
/// As [`cr_of`].
pub(super) unsafe fn waiter_here(l: *mut lua_State) -> c_int {
    // SAFETY: see above; upvalue CURRENT is a Lua function whose first
    // upvalue is the kernel's `current` (checked when it was built).
    unsafe {
        fast::push_upvalue1(l, uv(CURRENT));
        if fast::type_of(l, -1) != ffi::LUA_TTABLE {
            raw::raise(l, 1, "not inside a process", None);
        }
        if ffi::lua_isyieldable(l) == 0 || raw::truthy(l, -1, Key::Noyield) {
            raw::raise(l, 1, CANNOT_WAIT, None);
        }
        fast::gettop(l)
    }
}

/// Marks coroutine record `cr` as waiting on a host-fed channel.
///
/// # Safety
///
/// As [`cr_of`]; may allocate (`cr.ext` is made on the first such wait).
pub(super) unsafe fn wait_ext(l: *mut lua_State, cr: c_int) {
    // SAFETY: see above.
    unsafe {
        raw::set_bool(l, cr, Key::Ext, true);
        raw::get(l, cr, Key::P);
        raw::add_int(l, fast::gettop(l), Key::Ext, 1);
        raw::pop(l, 1);
    }
}

/// `ch:receive()`: `value, ok`, waiting for a sender when none is ready.
/// A waiting receive is resumed with exactly `value, ok`, which it returns.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn receive(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        raw::reserve(l);
        raw::settop(l, 1);
        let s = state_of(l);
        if try_recv(l, s) {
            return 2;
        }
        let cr = waiter_here(l);
        side_push(l, s, cr, RECEIVERS);
        if raw::truthy(l, s, Key::Ext) {
            wait_ext(l, cr);
        }
        // The channel stays on the waiting coroutine's stack: what sends
        // on it may hold it only weakly (time.after's timer, kernel/time.lua).
        raw::settop(l, 1);
        fast::pushvalue(l, uv(BLOCK));
        ffi::lua_yield(l, 1)
    }
}

/// `ch:send(v)`: true, waiting for a receiver or buffer room when needed;
/// raises on a closed channel (also one closed while it waits).
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn send(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        raw::reserve(l);
        raw::settop(l, 2);
        let s = state_of(l);
        if try_send(l, s, 2, 1) {
            fast::pushboolean(l, 1);
            return 1;
        }
        // A plain send waits as its coroutine record, holding the value
        // in `v` until a receiver takes it (`take_value`).
        let cr = waiter_here(l);
        push_queued(l, 2);
        raw::set(l, cr, Key::V);
        side_push(l, s, cr, SENDERS);
        if raw::truthy(l, s, Key::Ext) {
            wait_ext(l, cr);
        }
        raw::settop(l, 0);
        fast::pushvalue(l, uv(BLOCK));
        ffi::lua_yieldk(l, 1, 0, Some(sent))
    }
}

/// Where a waiting send resumes: woken with `CLOSED` when its channel
/// closed, else with a plain wake-up.
///
/// # Safety
///
/// Lua's continuation of [`send`].
unsafe extern "C-unwind" fn sent(
    l: *mut lua_State,
    _status: c_int,
    _ctx: ffi::lua_KContext,
) -> c_int {
    // SAFETY: see above; the stack holds only the values it was resumed with.
    unsafe {
        if fast::gettop(l) >= 1 && fast::rawequal(l, 1, uv(CLOSED)) != 0 {
            raw::raise(l, 1, "send on closed channel", None);
        }
        raw::settop(l, 0);
        fast::pushboolean(l, 1);
        1
    }
}

/// `try_recv(s)`: `true, value, ok` when ready, else `false`.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_try_recv(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        raw::args(l, 1, 1, "try_recv");
        if try_recv(l, 1) {
            fast::pushboolean(l, 1);
            fast::replace(l, 1);
            return 3;
        }
        fast::pushboolean(l, 0);
        1
    }
}

/// `try_send(s, v, level)`: true when done; raises at `level` (of the
/// Lua function calling it) on a closed channel.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_try_send(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        raw::args(l, 3, 1, "try_send");
        // Lua's level counts from the Lua function's callee (this one):
        // `luaL_where`'s level 1 is the Lua function itself.
        let level = fast::tointeger(l, 3).clamp(1, 100);
        let done = try_send(l, 1, 2, c_int::try_from(level).unwrap_or(1));
        fast::pushboolean(l, c_int::from(done));
        1
    }
}

/// `deliver(s, v)`.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_deliver(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        raw::args(l, 2, 1, "deliver");
        deliver_at(l, 1, 2);
        0
    }
}

/// `rq_push(s, w)`: queues receiver `w` (a select's record).
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_rq_push(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        raw::args(l, 2, 2, "rq_push");
        side_push(l, 1, 2, RECEIVERS);
        0
    }
}

/// `rq_pop(s)`: the receiver to wake next, or nil.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_rq_pop(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        raw::args(l, 1, 1, "rq_pop");
        side_pop(l, 1, RECEIVERS);
        1
    }
}

/// `sq_push(s, w)`: queues blocked sender `w` (a select's record, its
/// value in `v`).
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_sq_push(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        raw::args(l, 2, 2, "sq_push");
        side_push(l, 1, 2, SENDERS);
        0
    }
}

/// `sq_pop(s)`: the blocked sender to wake next, or nil.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_sq_pop(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        raw::args(l, 1, 1, "sq_pop");
        side_pop(l, 1, SENDERS);
        1
    }
}

/// `new_chan(s)`: the channel of state `s` (a full userdata with the
/// channel metatable and `s` as its user value), also set as `s.proxy`.
/// May raise a memory error, before anything is set.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_new_chan(l: *mut lua_State) -> c_int {
    // SAFETY: see above; the userdata has one user value, set before it
    // is reachable from anything but this stack.
    unsafe {
        raw::args(l, 1, 1, "new_chan");
        ffi::lua_newuserdatauv(l, 0, 1);
        fast::pushvalue(l, 1);
        ffi::lua_setiuservalue(l, 2, 1);
        fast::pushvalue(l, uv(CHAN_MT));
        ffi::lua_setmetatable(l, 2);
        fast::pushvalue(l, 2);
        raw::set(l, 1, Key::Proxy);
        1
    }
}

/// `chan_of(v)`: the state of channel `v`, or nothing when `v` is not a
/// channel.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_chan_of(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        raw::args(l, 1, 0, "chan_of");
        c_int::from(raw::chan_state(l, 1))
    }
}

//! The worker VM's run queue: coroutine records ready to be resumed, each
//! with the (up to three) values it is resumed with, four consecutive
//! slots per entry of one table used as a ring buffer, its head, length
//! and capacity kept in a userdata. The table's array part is exactly the
//! ring (the vendored Lua's `warren_resizearray`), so every slot is an
//! array slot: a wake-up is four stores and no allocation once the ring
//! has grown, however long the queue stays non-empty (a queue kept as an
//! ever-advancing pair of ends put every slot past the first few into the
//! hash part: about 1,200 instructions a wake-up while it never emptied,
//! as when a spawner's children queue up to start).
//!
//! Guarantees: a wake-up that must grow the ring grows it before it
//! writes anything, so a memory error (inside a process's resume, under
//! its ceiling) leaves the queue as it was; after [`room`] (which the
//! host-fed delivery makes before it takes a receiver off a channel), the
//! next wake-up allocates nothing and cannot fail. A ring grown past
//! [`KEEP_ENTRIES`] is cut back to [`FIRST_ENTRIES`] when the queue
//! empties, so a burst does not keep its memory for the VM's life.

use std::ffi::{c_int, c_uint, c_void};

use super::fast;
use mlua::ffi::{self, lua_State};

use super::raw::{self, Key, RQ, STATE, uv};
use crate::quota::turn::Next;

/// The run queue's place in its table: entry `head` is the oldest, `len`
/// entries follow it (wrapping at `cap`, a power of two).
#[derive(Clone, Copy)]
struct Ring {
    head: i64,
    len: i64,
    cap: i64,
}

/// The machine's state (the userdata at upvalue [`STATE`]).
#[repr(C)]
struct RunState {
    /// The run queue's ring; first, so that [`ring`] points at the
    /// userdata itself.
    ring: Ring,
    /// The kernel's `current`, as `lua_upvalueid` names it (see
    /// [`set_current`]).
    current: *mut c_void,
}

/// Entries of the ring when the VM starts: a short queue never grows it.
const FIRST_ENTRIES: i64 = 64;

/// Entries a ring may keep when the queue empties; a larger one (after a
/// burst: a spawner's thousands of children queued to start) is cut back
/// to [`FIRST_ENTRIES`]. Above the size that bursts of a few hundred
/// reach, so a busy VM does not grow and cut its ring at every burst.
const KEEP_ENTRIES: i64 = 1024;

/// The run queue's ring.
///
/// # Safety
///
/// Called from a machine C function (upvalue [`STATE`] is its userdata).
unsafe fn ring(l: *mut lua_State) -> *mut Ring {
    // SAFETY: see above; the userdata is a `RunState` (see `new_state`),
    // whose first field this is.
    unsafe { fast::touserdata(l, uv(STATE)).cast() }
}

/// The id of the kernel's `current` upvalue (see [`RunState`]).
///
/// # Safety
///
/// As [`ring`].
unsafe fn current_id(l: *mut lua_State) -> *mut c_void {
    // SAFETY: see above.
    unsafe { (*fast::touserdata(l, uv(STATE)).cast::<RunState>()).current }
}

/// The first slot of the entry at ring position `pos`.
fn slot(pos: i64) -> i64 {
    4 * pos + 1
}

/// The ring position `n` entries after `pos`.
fn after(r: &Ring, pos: i64, n: i64) -> i64 {
    (pos + n) & (r.cap - 1)
}

/// Pushes the machine's state: an empty run queue, and `current`, the id
/// of the kernel's `current` upvalue.
///
/// # Safety
///
/// `l` has room for one value; `current` is `lua_upvalueid` of a Lua
/// closure's upvalue that every machine closure keeps alive.
pub(super) unsafe fn new_state(l: *mut lua_State, current: *mut c_void) {
    // SAFETY: see above; a userdata is aligned for any Lua value, so for
    // three integers and a pointer.
    unsafe {
        let p = ffi::lua_newuserdatauv(l, size_of::<RunState>(), 0).cast::<RunState>();
        p.write(RunState {
            ring: Ring {
                head: 0,
                len: 0,
                cap: FIRST_ENTRIES,
            },
            current,
        });
    }
}

/// Gives the table at `t` an array part of `entries` ring entries: false
/// (nothing changed) for a shrink that would drop a value.
///
/// # Safety
///
/// `t` an absolute index of a table; may raise a memory error, the table
/// as it was.
unsafe fn resize(l: *mut lua_State, t: c_int, entries: i64) -> bool {
    // SAFETY: see above.
    unsafe {
        let slots = c_uint::try_from(4 * entries).unwrap_or(c_uint::MAX);
        raw::resize_array(l, t, slots)
    }
}

/// Gives the (empty) run-queue table at `rq` the ring's first array part
/// ([`FIRST_ENTRIES`]).
///
/// # Safety
///
/// `rq` is an absolute index of a table.
pub(super) unsafe fn presize(l: *mut lua_State, rq: c_int) {
    // SAFETY: see above.
    unsafe {
        resize(l, rq, FIRST_ENTRIES);
    }
}

/// Doubles the full ring `r`: the table's array part first (a memory
/// error leaves everything as it was), then the entries that had wrapped
/// to its start moved past its old end, so the queue is in order again.
///
/// # Safety
///
/// Called from a machine C function with room for four values; `r` is
/// [`ring`].
unsafe fn grow(l: *mut lua_State, r: *mut Ring) {
    // SAFETY: see above; the moves are within the (new) array part.
    unsafe {
        let old = *r;
        resize(l, uv(RQ), 2 * old.cap); // a growth: always made
        for pos in 0..old.head {
            raw::take(l, uv(RQ), slot(pos), 4);
            raw::put(l, uv(RQ), slot(old.cap + pos), 4);
        }
        (*r).cap = 2 * old.cap;
    }
}

/// Queues coroutine record `cr` (an absolute index) to be resumed with
/// the values at `vals` (0: nil), then counts it ready for its process
/// and clears its wait on a host-fed channel.
///
/// # Safety
///
/// Called from a machine C function with room for four values.
pub(super) unsafe fn wake(l: *mut lua_State, cr: c_int, vals: [c_int; 3]) {
    // SAFETY: see above; the writes after the slots are to fields that
    // exist (`ext` is only cleared when set; `nready` is made with `p`).
    unsafe {
        room(l);
        let r = ring(l);
        let pos = after(&*r, (*r).head, (*r).len);
        fast::pushvalue(l, cr);
        for v in vals {
            if v == 0 {
                fast::pushnil(l);
            } else {
                fast::pushvalue(l, v);
            }
        }
        raw::put(l, uv(RQ), slot(pos), 4);
        (*r).len += 1;
        raw::get(l, cr, Key::P);
        let p = fast::gettop(l);
        if raw::truthy(l, cr, Key::Ext) {
            fast::pushnil(l);
            raw::set(l, cr, Key::Ext);
            raw::add_int(l, p, Key::Ext, -1);
        }
        raw::add_int(l, p, Key::Nready, 1);
        raw::pop(l, 1);
    }
}

/// Makes room for the next wake-up (see the module's guarantees).
///
/// # Safety
///
/// As [`wake`].
pub(super) unsafe fn room(l: *mut lua_State) {
    // SAFETY: see above.
    unsafe {
        let r = ring(l);
        if (*r).len == (*r).cap {
            grow(l, r);
        }
    }
}

/// `wake(cr, a, b, c)`.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_wake(l: *mut lua_State) -> c_int {
    // SAFETY: see above; four arguments exist once the top is set.
    unsafe {
        raw::args(l, 4, 1, "wake");
        wake(l, 1, [2, 3, 4]);
        0
    }
}

/// `rq_next()`: the next coroutine record and its three values, taken off
/// the queue; nothing when it is empty. `resume_next` takes its wake-ups
/// with it; the kernel itself does not call it.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_next(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe { take_next(l, ring(l)) }
}

/// `rq_next()` with the queue's ring at `r` (see [`ring`]).
///
/// # Safety
///
/// As [`lua_next`]; `r` is `ring(l)`.
unsafe fn take_next(l: *mut lua_State, r: *mut Ring) -> c_int {
    // SAFETY: see above; clearing slots that exist never allocates.
    unsafe {
        let at = *r;
        if at.len == 0 {
            return 0;
        }
        raw::take(l, uv(RQ), slot(at.head), 4);
        (*r).head = after(&at, at.head, 1);
        (*r).len = at.len - 1;
        trim(l, r);
        4
    }
}

/// Puts the wake-up on top (four values, popped) back at the head of the
/// queue, where [`take_next`] took it from: the ring has room for it (it
/// held it, or was cut back to its first size when that emptied it), so
/// nothing allocates.
///
/// # Safety
///
/// As [`wake`], right after `take_next` took the entry.
unsafe fn put_back(l: *mut lua_State, r: *mut Ring) {
    // SAFETY: see above.
    unsafe {
        let at = *r;
        let head = after(&at, at.head, at.cap - 1);
        raw::put(l, uv(RQ), slot(head), 4);
        (*r).head = head;
        (*r).len = at.len + 1;
    }
}

/// Moves the wake-up on top (four values, popped) to the back of the
/// queue, behind every other: `take_next` just took it, so the ring has
/// room and nothing allocates.
///
/// # Safety
///
/// As [`put_back`].
unsafe fn to_back(l: *mut lua_State, r: *mut Ring) {
    // SAFETY: see above.
    unsafe {
        let at = *r;
        raw::put(l, uv(RQ), slot(after(&at, at.head, at.len)), 4);
        (*r).len = at.len + 1;
    }
}

/// How many wake-ups the ring holds.
///
/// # Safety
///
/// `r` is the machine's ring.
unsafe fn queued(r: *mut Ring) -> usize {
    // SAFETY: see above.
    usize::try_from(unsafe { (*r).len }).unwrap_or(0)
}

/// Cuts an empty ring grown past [`KEEP_ENTRIES`] back to
/// [`FIRST_ENTRIES`] (its slots are all nil: nothing moves, and a smaller
/// array is a shrinking reallocation, which the allocator never refuses).
///
/// # Safety
///
/// As [`wake`].
unsafe fn trim(l: *mut lua_State, r: *mut Ring) {
    // SAFETY: see above.
    unsafe {
        if (*r).len == 0 && (*r).cap > KEEP_ENTRIES && resize(l, uv(RQ), FIRST_ENTRIES) {
            *r = Ring {
                head: 0,
                len: 0,
                cap: FIRST_ENTRIES,
            };
        }
    }
}

/// `rq_len()`: how many wake-ups are queued.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_len(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        fast::pushinteger(l, (*ring(l)).len);
        1
    }
}

/// `resume_next(limit, left)`: resumes wake-ups off the run queue, one
/// after another, each through the step (`crate::step`) with `current`
/// set to it meanwhile, in batches as the kernel's `run` makes them: the
/// `left` wake-ups of the current batch first, then, while fewer than
/// `limit` were taken and the host has no item for this VM, a new batch
/// of the wake-ups queued by then. It stops early at the first wake-up
/// whose outcome the kernel must finish (an error, a verdict, a
/// preemption, an end, a message whose delivery failed part-way, a
/// possible deadlock, a wake-up of a parked process, which it does not
/// resume: `ok` nil) and answers `n, left, cr, p, ok, verdict, r1, r2,
/// r3` for it (`n` the wake-ups taken, it included; `left` what remains
/// of its batch); else `n, 0`. Wake-ups whose process was gone, and
/// coroutines that now wait while their process can still be woken, need
/// nothing more: the kernel's Lua runs only for the others and between
/// batches that find host items.
///
/// **One account per run of a process.** A step whose coroutine waits
/// leaves its process's account open (see [`crate::step`]): the next
/// wake-up, if it is the same process's, runs in it; any other, and the
/// end of this call, closes it first. The verdict of a closed span that
/// is not fine (measure, end) is answered as that process's outcome
/// (`cr` its main coroutine's record, `verdict`, `BLOCK`); the wake-up
/// taken meanwhile is put back where it was, at the head of the queue.
///
/// # Safety
///
/// Called by Lua as a machine C closure; raises in a VM without a step.
pub(super) unsafe extern "C-unwind" fn lua_resume_next(l: *mut lua_State) -> c_int {
    // SAFETY: the context is the VM's `Stepper` (checked not null), which
    // outlives the VM's calls; the step runs on this stack above `p`.
    unsafe {
        let limit = fast::tointeger(l, 1);
        let mut left = fast::tointeger(l, 2);
        raw::reserve(l);
        let ctx = fast::touserdata(l, uv(raw::CTX)).cast::<crate::step::Stepper>();
        if ctx.is_null() {
            raw::raise(l, 1, "resume_next: no step in this VM", None);
        }
        let stepper = &*ctx;
        let at = Loop {
            ring: ring(l),
            block: fast::topointer(l, uv(raw::BLOCK)),
            current: current_id(l),
        };
        let mut taken = 0;
        let mut counted = 0;
        // Whether the last step settled plainly in this loop: the next one
        // then starts its run at the time that one's account closed.
        let mut chained = false;
        loop {
            if left <= 0 {
                if stepper.after_batch(taken - counted) {
                    chained = false; // the exchange with the core is no one's
                }
                counted = taken;
                if taken >= limit || stepper.has_items() {
                    break;
                }
                left = (*at.ring).len;
                if left <= 0 {
                    break;
                }
            }
            raw::settop(l, 0);
            if take_next(l, at.ring) == 0 {
                left = 0;
                break;
            }
            match resume_taken(l, stepper, &at, chained) {
                Taken::Settled(plain) => chained = plain,
                Taken::Moved(false) => {
                    chained = false;
                    left -= 1;
                    continue;
                }
                Taken::Moved(true) => {
                    // The run ends as a spent budget ends it: the worker
                    // fires its timers and takes its items, then runs again.
                    stepper.after_batch(taken - counted);
                    taken = taken.max(limit);
                    left = 0;
                    break;
                }
                Taken::Kernel(n) => {
                    stepper.count_resumed(taken + 1 - counted);
                    return answer(l, taken + 1, left - 1, n);
                }
                Taken::Put(n) => {
                    stepper.count_resumed(taken - counted);
                    return answer(l, taken, left, n);
                }
            }
            left -= 1;
            taken += 1;
        }
        raw::settop(l, 0);
        if let Some(n) = close_kept(l, stepper) {
            return answer(l, taken, left.max(0), n);
        }
        fast::pushinteger(l, taken);
        fast::pushinteger(l, left.max(0));
        2
    }
}

/// Puts `taken` and `left` before the `n` values of an outcome on the
/// stack and answers them all.
///
/// # Safety
///
/// As [`wake`], with the outcome's values the whole stack.
unsafe fn answer(l: *mut lua_State, taken: i64, left: i64, n: c_int) -> c_int {
    // SAFETY: see above.
    unsafe {
        fast::pushinteger(l, taken);
        fast::insert(l, 1);
        fast::pushinteger(l, left);
        fast::insert(l, 2);
        n + 2
    }
}

/// What [`lua_resume_next`] looks up once per call.
struct Loop {
    /// The run queue's ring ([`ring`]).
    ring: *mut Ring,
    /// The identity of the kernel's `BLOCK` (see [`waits`]).
    block: *const c_void,
    /// The id of the kernel's `current` upvalue (see [`set_current`]).
    current: *mut c_void,
}

/// What [`resume_taken`] did with the wake-up at 1..=4.
enum Taken {
    /// Nothing is left for the kernel; `true` when the step ended in a
    /// plain wait (no exit, nothing skipped), the step after it chained.
    Settled(bool),
    /// The kernel must finish its outcome, these many values on the stack.
    Kernel(c_int),
    /// Put back (not resumed): the kernel must first finish the outcome
    /// of the account the step before left open, these many values.
    Put(c_int),
    /// Moved to the back of the queue, not resumed: its process's turn
    /// took its slice (`quota/turn.rs`); `true` when the run must end,
    /// so that the worker fires its timers first.
    Moved(bool),
}

/// Resumes the wake-up `lua_next` took (`cr` and its values at 1..=4).
/// `Kernel(n)` leaves `cr, p, ok, verdict, r1, r2, r3` (as many as the
/// step answered) on the stack. `chained`: the step before it in this
/// loop settled plainly (see `Accounts::enter`).
///
/// # Safety
///
/// Called from [`lua_resume_next`], the wake-up at 1..=4 and nothing
/// above it; `stepper` is the VM's.
unsafe fn resume_taken(
    l: *mut lua_State,
    stepper: &crate::step::Stepper,
    at: &Loop,
    chained: bool,
) -> Taken {
    // SAFETY: see above.
    unsafe {
        if !raw::truthy(l, 1, Key::Th) {
            return Taken::Settled(false);
        }
        raw::get(l, 1, Key::P); // 5
        let id = raw::int(l, 5, Key::Id);
        let close = match stepper.open_id() {
            None => false,
            Some(open) if open == id => !room_to_resume(l),
            Some(_) => true,
        };
        if close {
            raw::settop(l, 4);
            if let Some(n) = close_kept(l, stepper) {
                // Back where it was; the ring has room, nothing allocates.
                ffi::lua_rotate(l, 1, n);
                put_back(l, at.ring);
                return Taken::Put(n);
            }
            raw::get(l, 1, Key::P); // 5
        }
        if stepper.parked(id) {
            return Taken::Kernel(hold(l));
        }
        if stepper.open_id().is_none() {
            let next = stepper.turn_next(id, queued(at.ring));
            if next != Next::Run {
                raw::settop(l, 4);
                to_back(l, at.ring);
                return Taken::Moved(next == Next::Yield);
            }
        }
        raw::add_int(l, 5, Key::Nready, -1);
        set_current(l, at, 1);
        raw::get(l, 1, Key::Th); // 6: th
        fast::pushvalue(l, 5); // 7: p
        fast::pushinteger(l, id); // 8: id
        for v in 2..=4 {
            fast::pushvalue(l, v); // 9..11
        }
        let keep = |_: *mut lua_State, co, nres| waits(co, nres, at.block);
        let quiet = |l: *mut lua_State| quiet(l, stepper);
        let nres = crate::step::step_at(l, stepper, 5, &keep, &quiet, chained);
        set_current(l, at, 0);
        if nres == crate::step::SETTLED || settled(l, stepper, nres, at.block) {
            return Taken::Settled(true);
        }
        if super::exit::end_normally(l, stepper, nres) {
            return Taken::Settled(false);
        }
        if stepper.open_id().is_some() {
            // A kept step the kernel must see after all (a send that
            // failed part-way, a possible deadlock): its account closes
            // now, its verdict in the step's answer.
            if let Some(measure) = stepper.close_open(stepper.lua(l)) {
                fast::pushboolean(l, c_int::from(measure));
                fast::replace(l, 7);
            }
        }
        ffi::lua_rotate(l, 2, -3); // cr, p, results..., a, b, c
        raw::settop(l, 2 + nres);
        Taken::Kernel(2 + nres)
    }
}

/// Leaves the wake-up at 1..=4 (its process record at 5), not resumed,
/// for the kernel to hold until its process's park ends: `cr, p, nil,
/// nil, a, b, c` (an outcome whose `ok` is nil). Its process still counts
/// it ready.
///
/// # Safety
///
/// As [`resume_taken`], with room for two values.
unsafe fn hold(l: *mut lua_State) -> c_int {
    // SAFETY: see above.
    unsafe {
        raw::settop(l, 5);
        ffi::lua_rotate(l, 2, 1); // cr, p, a, b, c
        fast::pushnil(l);
        fast::pushnil(l);
        ffi::lua_rotate(l, 3, 2); // cr, p, nil, nil, a, b, c
        7
    }
}

/// Whether the coroutine of the wake-up at 1 has stack room for the three
/// values it is resumed with: made if it must grow, in its process's
/// account (still open, under its ceiling: the process's own memory);
/// false if that fails, and the account must close before the step.
///
/// # Safety
///
/// As [`resume_taken`], with room for one value.
unsafe fn room_to_resume(l: *mut lua_State) -> bool {
    // SAFETY: see above; `lua_checkstack` never raises.
    unsafe {
        raw::get(l, 1, Key::Th);
        let th = fast::tothread(l, -1);
        let room = th.is_null() || fast::has_room(th, 3) != 0;
        raw::pop(l, 1);
        room
    }
}

/// Closes the account a step left open, if any. When its verdict is not
/// fine, pushes its process's outcome for the kernel — its main
/// coroutine's record (or the process record, should it have none), the
/// process record, `true`, the verdict, `BLOCK` — and returns the count;
/// `None` when nothing is left to do (also when the process has gone).
///
/// # Safety
///
/// As [`wake`], with room for five values.
unsafe fn close_kept(l: *mut lua_State, stepper: &crate::step::Stepper) -> Option<c_int> {
    // SAFETY: see above; raw reads of the kernel's `procs` table.
    unsafe {
        let id = stepper.open_id()?;
        let measure = stepper.close_open(stepper.lua(l))?;
        let top = fast::gettop(l);
        fast::rawgeti(l, uv(raw::LATE), raw::Late::Procs as i64);
        if fast::type_of(l, -1) != ffi::LUA_TTABLE || fast::rawgeti(l, -1, id) != ffi::LUA_TTABLE {
            raw::settop(l, top);
            return None;
        }
        fast::remove(l, top + 1); // p
        if raw::get(l, top + 1, Key::Main) != ffi::LUA_TTABLE {
            raw::pop(l, 1);
            fast::pushvalue(l, top + 1);
        }
        fast::insert(l, top + 1); // cr, p
        fast::pushboolean(l, 1);
        fast::pushboolean(l, c_int::from(measure));
        fast::pushvalue(l, uv(raw::BLOCK));
        Some(5)
    }
}

/// Whether coroutine `co` yielded the kernel's `BLOCK` (whose identity
/// is `block`) first of its `nres` values: it waits.
///
/// # Safety
///
/// `co` a suspended thread with `nres` values on top.
unsafe fn waits(co: *mut lua_State, nres: c_int, block: *const c_void) -> bool {
    // SAFETY: see above; reads only (a function's pointer is its identity,
    // and no other value has BLOCK's).
    unsafe { fast::topointer(co, -nres) == block }
}

/// Whether a send failed between its admission and its delivery (the
/// kernel must settle the host's count: the step's owed mark, see
/// [`Stepper::set_owed`](crate::step::Stepper::set_owed)).
pub(super) fn owed(stepper: &crate::step::Stepper) -> bool {
    stepper.owed() != 0
}

/// `owe(id)`: the kernel's Lua marks its own delivery to process `id`
/// under way (0: done), as [`super::send`] marks its own.
///
/// # Safety
///
/// Called by Lua as a machine C closure; raises in a VM without a step.
pub(super) unsafe extern "C-unwind" fn lua_owe(l: *mut lua_State) -> c_int {
    // SAFETY: the context, when not null, is the VM's `Stepper`, which
    // outlives the VM's calls.
    unsafe {
        let id = ffi::luaL_checkinteger(l, 1);
        match fast::touserdata(l, uv(raw::CTX))
            .cast::<crate::step::Stepper>()
            .as_ref()
        {
            Some(stepper) => stepper.set_owed(id),
            None => raw::raise(l, 1, "owe: no step in this VM", None),
        }
        0
    }
}

/// `take_owed()`: the record of the process a delivery was left owed to
/// (`procs[id]`), the mark cleared; nil when there is none (or that
/// process has no record any more).
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn lua_take_owed(l: *mut lua_State) -> c_int {
    // SAFETY: as `lua_owe`; a raw read of the kernel's `procs`.
    unsafe {
        let id = fast::touserdata(l, uv(raw::CTX))
            .cast::<crate::step::Stepper>()
            .as_ref()
            .map_or(0, crate::step::Stepper::take_owed);
        if id == 0 || super::send::push_proc(l, id).is_none() {
            fast::pushnil(l);
        }
        1
    }
}

/// Sets the kernel's `current` to the value at `v` (0: nil) through its
/// upvalue's id (the vendored Lua's `warren_setupvalid`; `lua_setupvalue`
/// found the closure, the upvalue and its name each time).
///
/// # Safety
///
/// As [`wake`].
unsafe fn set_current(l: *mut lua_State, at: &Loop, v: c_int) {
    // SAFETY: `at.current` names the first upvalue of the Lua function
    // at upvalue CURRENT, `current` (checked when the machine was
    // built), which every machine closure keeps alive.
    unsafe { warren_setupvalid(l, at.current, v) }
}

unsafe extern "C-unwind" {
    fn warren_setupvalid(l: *mut lua_State, id: *mut c_void, idx: c_int);
}

/// Whether the step's `nres` results (from index 6 on, process record at
/// 5) leave nothing for the kernel: it yielded `BLOCK` (whose identity is `block`) with no verdict, no
/// delivery failed part-way, and its process is not deadlocked (it has a
/// ready coroutine, one waiting on the host, or none alive, or it ended).
///
/// # Safety
///
/// As [`wake`].
unsafe fn settled(
    l: *mut lua_State,
    stepper: &crate::step::Stepper,
    nres: c_int,
    block: *const c_void,
) -> bool {
    // SAFETY: see above; reads only.
    unsafe {
        if nres < 3
            || fast::toboolean(l, 6) == 0
            || fast::type_of(l, 7) != ffi::LUA_TNIL
            || fast::topointer(l, 8) != block
        {
            return false;
        }
        quiet(l, stepper)
    }
}

/// Whether a step that waits leaves nothing for the kernel (see
/// [`settled`]): no delivery failed part-way, and its process (its record
/// at 5) is not deadlocked.
///
/// # Safety
///
/// As [`wake`].
unsafe fn quiet(l: *mut lua_State, stepper: &crate::step::Stepper) -> bool {
    // SAFETY: see above; reads only.
    unsafe {
        if owed(stepper) {
            return false;
        }
        // A ready coroutine first: a ping-pong's other side is queued.
        raw::int(l, 5, Key::Nready) != 0
            || !raw::truthy(l, 5, Key::Env)
            || raw::int(l, 5, Key::Ext) != 0
            || raw::int(l, 5, Key::Live) <= 0
    }
}

//! Raw access to the kernel's records from the machine's C functions: the
//! upvalue layout every one of them shares, field reads and writes by an
//! interned key, and the kernel's small FIFO queues.
//!
//! Guarantees: every access is raw (`lua_rawget`/`lua_rawset`), so no
//! metamethod runs; a write to a field that already exists never
//! allocates, and the functions that may allocate say so. The records
//! touched here are the kernel's own (no process can reach them).

use std::ffi::{c_int, c_uint};

use super::fast;
use mlua::ffi::{self, lua_State};

/// Upvalue 1: the run queue's head and tail (a two-integer userdata).
pub(super) const STATE: c_int = 1;
/// Upvalue 2: the run queue's table: entry `n` (from 1) is the coroutine
/// record and the three values it is resumed with, at `4n - 3 ..= 4n`.
pub(super) const RQ: c_int = 2;
/// The kernel's token for a `nil` held in a queue.
pub(super) const NIL: c_int = 3;
/// The kernel's token a waiting coroutine yields.
pub(super) const BLOCK: c_int = 4;
/// The token a blocked send is woken with when its channel closes.
pub(super) const CLOSED: c_int = 5;
/// The metatable of channels: a channel is a full userdata with it, its
/// state the first user value ([`chan_state`]).
pub(super) const CHAN_MT: c_int = 6;
/// Process record -> messages taken from its mailbox since its last step.
pub(super) const TAKEN: c_int = 7;
/// A kernel function whose first upvalue is the kernel's `current`.
pub(super) const CURRENT: c_int = 8;
/// What the kernel binds once it has made it (`bind`), in [`Late`] slots.
pub(super) const LATE: c_int = 9;
/// The VM's `Stepper` (a light userdata; null in a VM without one, where
/// `send1` always leaves the send to the Lua path).
pub(super) const CTX: c_int = 10;
/// The interned field names, in [`Key::ALL`] order, from this upvalue on.
const FIRST_KEY: c_int = 11;

/// The slots of upvalue [`LATE`].
#[derive(Clone, Copy)]
pub(super) enum Late {
    /// The metatable of error objects (a copy keeps it).
    ErrorMt = 1,
    /// The metatable of message records.
    MsgMt = 2,
    /// The kernel's process records by pid integer (`procs`).
    Procs = 4,
    /// The kernel's `mkerr(kind, message, retryable)`.
    Mkerr = 5,
    /// The metatable of payloads.
    PayloadMt = 6,
    /// The kernel's `payload_list(msg)`: `msg:payload()` for any count but 1.
    PayloadList = 7,
    /// The kernel's `start(id, pid, entry, ctx, ...)`.
    Start = 8,
    /// The host's entry tables by program (`H.entries`).
    Entries = 9,
    /// The metatable of time values.
    TimeMt = 10,
    /// The kernel's process records by pid string (`bypid`).
    Bypid = 11,
    /// The metatable of a process's globals (`ENV_MT`), bound by
    /// `bind_start` once the kernel has made it.
    EnvMt = 12,
    /// The kernel's `proc_main`, the bottom of a primed main coroutine.
    ProcMain = 13,
    /// Templates (see [`clone_of`]) of a process's record, its main
    /// coroutine's record and its globals, made by `bind_start`.
    ProcTpl = 14,
    CrTpl = 15,
    EnvTpl = 16,
    /// Templates of an event (`{ kind, from, result, at }`), its result
    /// (`{ value }` or `{ error }`) and its time (`{ ns }`).
    EventTpl = 17,
    ValueTpl = 18,
    ErrorTpl = 19,
    TimeTpl = 20,
    /// The kernel's `value_of(payload)`: a payload's value decoded from its
    /// format, for `payload:data()` (bound by `bind_start`).
    PayloadValue = 21,
    /// The senders' pid texts and the topics kept by slot for messages
    /// handed over from outside the VM (`inbox.rs`, tables of
    /// `FROM_CACHE` and `TOPIC_CACHE` slots): a process that hears from
    /// the same senders on a few topics gets both without a string made
    /// each time.
    LastFrom = 22,
    LastTopic = 23,
    /// The kernel's check of an error a process's `pcall` caught
    /// (`bind_protect`): raises the errors no protected call may keep.
    ErrorCheck = 24,
    /// The kernel's `send_slow(dest, topic, ...)`: `process.send` where
    /// its C call cannot decide (`bind_send`).
    SendSlow = 25,
    /// The kernel's `CASE`: a select case -> its record `{ s, send, v }`
    /// (`bind_select`).
    Case = 26,
    /// The metatable of select cases (`bind_select`).
    CaseMt = 27,
    /// The kernel's `resume_tick(ticker)`: re-arms a ticker whose last
    /// tick waited unread (`bind_select`'s third argument).
    ResumeTick = 28,
    /// The kernel's Lua run loop, going on from where the machine's
    /// `run` stopped, and a function whose first upvalue is the kernel's
    /// `preempted` (`bind_run`).
    RunFrom = 29,
    Preempted = 30,
}
/// The bytes of the string at `idx`, or `None` when it is not a string
/// (a number is not converted: the type is read first).
///
/// # Safety
///
/// `idx` is a valid index; the bytes are the string's own, valid while
/// it stays on the stack: the caller reads them before popping it.
pub(super) unsafe fn bytes_at<'a>(l: *mut lua_State, idx: c_int) -> Option<&'a [u8]> {
    // SAFETY: see above; a string's pointer and length come from Lua.
    unsafe {
        if fast::type_of(l, idx) != ffi::LUA_TSTRING {
            return None;
        }
        let mut len = 0;
        let p = ffi::lua_tolstring(l, idx, &mut len);
        Some(std::slice::from_raw_parts(p.cast::<u8>(), len))
    }
}

/// Upvalues before the keys.
pub(super) const LEADING: c_int = FIRST_KEY - 1;

/// A field the machine reads, by name; its interned name is an upvalue of
/// every machine function and is registered with the VM under its number.
#[derive(Clone, Copy)]
pub(super) enum Key {
    Buf,
    H,
    T,
    Sq,
    Rq,
    Rw,
    Sel,
    Done,
    Env,
    Cr,
    V,
    P,
    Ext,
    Nready,
    Mb,
    Closed,
    Cap,
    Proxy,
    Noyield,
    Id,
    Pid,
    Listens,
    Msgs,
    Inbox,
    Pending,
    Th,
    Live,
    Ops,
    Main,
    Entry,
    Events,
    Exec,
    Kind,
    From,
    Result,
    At,
    Value,
    Ns,
    Error,
    Crs,
    Timers,
    IoWait,
    Sw,
    /// A payload's format (`f`), read by `payload:data()`.
    Format,
    /// The fields of a select's result (`select.rs`), and the cases
    /// table's `default`.
    Channel,
    Ok,
    Default,
    /// A channel state's receive case (`case_receive`).
    Rcase,
    /// A ticker's channel state: its ticker (see `chan::try_recv`).
    Tick,
}

impl Key {
    /// Every key, in upvalue order (each at its discriminant).
    pub(super) const ALL: [Key; 49] = [
        Key::Buf,
        Key::H,
        Key::T,
        Key::Sq,
        Key::Rq,
        Key::Rw,
        Key::Sel,
        Key::Done,
        Key::Env,
        Key::Cr,
        Key::V,
        Key::P,
        Key::Ext,
        Key::Nready,
        Key::Mb,
        Key::Closed,
        Key::Cap,
        Key::Proxy,
        Key::Noyield,
        Key::Id,
        Key::Pid,
        Key::Listens,
        Key::Msgs,
        Key::Inbox,
        Key::Pending,
        Key::Th,
        Key::Live,
        Key::Ops,
        Key::Main,
        Key::Entry,
        Key::Events,
        Key::Exec,
        Key::Kind,
        Key::From,
        Key::Result,
        Key::At,
        Key::Value,
        Key::Ns,
        Key::Error,
        Key::Crs,
        Key::Timers,
        Key::IoWait,
        Key::Sw,
        Key::Format,
        Key::Channel,
        Key::Ok,
        Key::Default,
        Key::Rcase,
        Key::Tick,
    ];

    /// The field's name in the kernel's records.
    pub(super) fn name(self) -> &'static str {
        match self {
            Key::Buf => "buf",
            Key::H => "h",
            Key::T => "t",
            Key::Sq => "sq",
            Key::Rq => "rq",
            Key::Rw => "rw",
            Key::Sel => "sel",
            Key::Done => "done",
            Key::Env => "env",
            Key::Cr => "cr",
            Key::V => "v",
            Key::P => "p",
            Key::Ext => "ext",
            Key::Nready => "nready",
            Key::Mb => "mb",
            Key::Closed => "closed",
            Key::Cap => "cap",
            Key::Proxy => "proxy",
            Key::Noyield => "noyield",
            Key::Id => "id",
            Key::Pid => "pid",
            Key::Listens => "listens",
            Key::Msgs => "msgs",
            Key::Inbox => "inbox",
            Key::Pending => "pending",
            Key::Th => "th",
            Key::Live => "live",
            Key::Ops => "ops",
            Key::Main => "main",
            Key::Entry => "entry",
            Key::Events => "events",
            Key::Exec => "exec",
            Key::Kind => "kind",
            Key::From => "from",
            Key::Result => "result",
            Key::At => "at",
            Key::Value => "value",
            Key::Ns => "ns",
            Key::Error => "error",
            Key::Crs => "crs",
            Key::Timers => "timers",
            Key::IoWait => "io_wait",
            Key::Sw => "sw",
            Key::Format => "f",
            Key::Channel => "channel",
            Key::Ok => "ok",
            Key::Default => "default",
            Key::Rcase => "rcase",
            Key::Tick => "tick",
        }
    }
}

// Every key is in ALL at its own position: the last one is, and positions
// are distinct discriminants.
const _: () = assert!(Key::Tick as usize == Key::ALL.len() - 1);
// Every key has a number in the vendored Lua's table of keys
// (`WARREN_NKEYS` in lwarren.h).
const _: () = assert!(Key::ALL.len() <= 64);

/// Registers the name on top of the stack (popped) as `key` with the VM:
/// the vendored Lua's keys by number (`warren_setkey`), which the field
/// accessors below read. The builder registers every key and gives each
/// machine function all of them as upvalues, which keep them alive: a
/// key stays registered for as long as a function that reads it can run.
///
/// # Safety
///
/// A running state with a value on top.
pub(super) unsafe fn register_key(l: *mut lua_State, key: Key) {
    // SAFETY: see above; the value is popped either way.
    let ok = unsafe { warren_setkey(l, key as c_int) };
    debug_assert_eq!(ok, 1, "a key's name is a short string");
}

/// The pseudo-index of upvalue `n`.
#[inline(always)]
pub(super) fn uv(n: c_int) -> c_int {
    ffi::lua_upvalueindex(n)
}

/// Pushes the kernel's `current` coroutine record and, above it, its
/// process record, and returns true; false (leftovers above the top, at
/// most two) outside a process. Every machine function that acts for the
/// running process finds it here.
///
/// # Safety
///
/// Called from a machine C function with room for two values.
pub(super) unsafe fn running(l: *mut lua_State) -> bool {
    // SAFETY: see above; raw reads of the kernel's `current` record.
    unsafe {
        fast::push_upvalue1(l, uv(CURRENT));
        fast::type_of(l, -1) == ffi::LUA_TTABLE && get(l, -1, Key::P) == ffi::LUA_TTABLE
    }
}

/// Pushes the state of the channel at `idx` and returns true; when the
/// value there is not a channel (a userdata with the metatable at
/// [`CHAN_MT`]), pushes nothing and returns false. Runs no metamethod and
/// never allocates.
///
/// # Safety
///
/// Called from a machine C function with a free stack slot.
#[inline(always)]
pub(super) unsafe fn chan_state(l: *mut lua_State, idx: c_int) -> bool {
    // SAFETY: see above; `warren_tagged` only reads.
    unsafe { fast::tagged(l, idx, uv(CHAN_MT)) != 0 }
}

// The vendored Lua's fused raw field access (lwarren.h): one call per
// field, with the key's interned string read in place.
unsafe extern "C-unwind" {
    fn warren_rawint(l: *mut lua_State, idx: c_int, k: c_int) -> ffi::lua_Integer;
    fn warren_rawsetkint(l: *mut lua_State, idx: c_int, k: c_int, n: ffi::lua_Integer);
    fn warren_setkey(l: *mut lua_State, n: c_int) -> c_int;
    fn warren_qlen(l: *mut lua_State, idx: c_int, kh: c_int, kt: c_int) -> ffi::lua_Integer;
    fn warren_qpush(l: *mut lua_State, idx: c_int, v: c_int, kt: c_int) -> c_int;
    fn warren_qpop(l: *mut lua_State, idx: c_int, kh: c_int, kt: c_int, keep: c_uint) -> c_int;
    fn warren_rawtake(l: *mut lua_State, idx: c_int, at: ffi::lua_Integer, n: c_int);
    fn warren_rawput(l: *mut lua_State, idx: c_int, at: ffi::lua_Integer, n: c_int);
    fn warren_clonetable(l: *mut lua_State, idx: c_int);
    fn warren_newarray(l: *mut lua_State, n: c_int, mt: c_int);
    fn warren_arraysize(l: *mut lua_State, idx: c_int) -> c_uint;
    fn warren_resizearray(l: *mut lua_State, idx: c_int, n: c_uint) -> c_int;
}

/// Replaces the `n` values on top with a new table of them (its array
/// part, in order) whose metatable is the table at `mt` (absolute; 0 for
/// none): the vendored Lua's `warren_newarray`, one call where a table,
/// a `lua_rawseti` per slot and `lua_setmetatable` were. May raise a
/// memory error, the values left as they were.
///
/// # Safety
///
/// `n` values on the stack; `mt` 0 or the absolute index of a table
/// below them.
pub(super) unsafe fn new_array(l: *mut lua_State, n: c_int, mt: c_int) {
    // SAFETY: see above.
    unsafe { warren_newarray(l, n, mt) }
}

/// Pushes a new table shaped as the template the machine keeps as
/// `which`: the template's keys, layout and (placeholder) values, so that
/// each field the caller writes is an existing key (the vendored Lua's
/// `warren_clonetable`); an empty table with room for `fields` when no
/// template is bound yet. Returns its index. May raise a memory error.
///
/// # Safety
///
/// Called from a machine C function with room for two values.
pub(super) unsafe fn clone_of(l: *mut lua_State, which: Late, fields: c_int) -> c_int {
    // SAFETY: see above; a template is cloned only when it is a table.
    unsafe {
        if fast::rawgeti(l, uv(LATE), which as i64) == ffi::LUA_TTABLE {
            warren_clonetable(l, -1);
            fast::replace(l, -2);
        } else {
            pop(l, 1);
            ffi::lua_createtable(l, 0, fields);
        }
        fast::gettop(l)
    }
}

/// `lua_settop`, a cut that closes nothing done in place (the vendored
/// Lua's `warren_settop`).
///
/// # Safety
///
/// As `lua_settop`.
#[inline(always)]
pub(super) unsafe fn settop(l: *mut lua_State, idx: c_int) {
    // SAFETY: see above.
    unsafe { fast::settop(l, idx) }
}

/// `lua_pop`, through [`settop`].
///
/// # Safety
///
/// As `lua_pop`.
#[inline(always)]
pub(super) unsafe fn pop(l: *mut lua_State, n: c_int) {
    // SAFETY: see above.
    unsafe { fast::settop(l, -n - 1) }
}

/// Pushes `t[at] ..= t[at + n - 1]` and sets each to nil (never
/// allocates); `0 < n <= 8`.
///
/// # Safety
///
/// Called from a machine C function with room for `n` values; `t` a
/// table.
pub(super) unsafe fn take(l: *mut lua_State, t: c_int, at: i64, n: c_int) {
    // SAFETY: see above.
    unsafe { warren_rawtake(l, t, at, n) }
}

/// Pops the `n` values on top into `t[at] ..= t[at + n - 1]` (may
/// allocate); `0 < n <= 8`, `t` not a relative index.
///
/// # Safety
///
/// As [`take`], with the values on top.
pub(super) unsafe fn put(l: *mut lua_State, t: c_int, at: i64, n: c_int) {
    // SAFETY: see above.
    unsafe { warren_rawput(l, t, at, n) }
}

/// Pushes `t[key]` (raw) and returns its type. `t` is any valid index of
/// a table.
///
/// # Safety
///
/// Called from a machine C function with room for one value.
#[inline(always)]
pub(super) unsafe fn get(l: *mut lua_State, t: c_int, key: Key) -> c_int {
    // SAFETY: see above; `t` is a table (the caller's record).
    unsafe { fast::getn(l, t, key as c_int) }
}

/// `t[key] = <top>` (raw), popping the value (`t` counted with the value
/// on the stack, as `lua_rawset`). Allocates (and may raise a memory
/// error) only when `t` has no such field yet.
///
/// # Safety
///
/// As [`get`], with the value on top.
#[inline(always)]
pub(super) unsafe fn set(l: *mut lua_State, t: c_int, key: Key) {
    // SAFETY: see above.
    unsafe { fast::setn(l, t, key as c_int) }
}

/// Whether `t[key]` is neither nil nor false.
///
/// # Safety
///
/// As [`get`].
#[inline(always)]
pub(super) unsafe fn truthy(l: *mut lua_State, t: c_int, key: Key) -> bool {
    // SAFETY: see above; nothing is pushed.
    unsafe { fast::truthyn(l, t, key as c_int) }
}

/// `t[key]` as an integer (0 when it is not one).
///
/// # Safety
///
/// As [`get`].
#[inline(always)]
pub(super) unsafe fn int(l: *mut lua_State, t: c_int, key: Key) -> i64 {
    // SAFETY: see above; nothing is pushed.
    unsafe { fast::intn(l, t, key as c_int) }
}

/// `t[key] = n`; `t` not a relative index.
///
/// # Safety
///
/// As [`set`] (without the value); allocation-free when the field exists.
#[inline(always)]
pub(super) unsafe fn set_int(l: *mut lua_State, t: c_int, key: Key, n: i64) {
    // SAFETY: see above.
    unsafe { fast::setintn(l, t, key as c_int, n) }
}

/// `t[key] = int(t, key) + d` in one lookup; the new value. As
/// [`set_int`]: allocation-free when the field exists, and `t` not a
/// relative index.
///
/// # Safety
///
/// As [`set_int`].
#[inline(always)]
pub(super) unsafe fn add_int(l: *mut lua_State, t: c_int, key: Key, d: i64) -> i64 {
    // SAFETY: see above.
    unsafe { fast::addintn(l, t, key as c_int, d) }
}

/// `t[k]` as an integer (0 when it is not one), the key being the value
/// at index `k` (any type, as `lua_rawget`).
///
/// # Safety
///
/// As [`get`].
pub(super) unsafe fn int_at(l: *mut lua_State, t: c_int, k: c_int) -> i64 {
    // SAFETY: see above; nothing is pushed.
    unsafe { warren_rawint(l, t, k) }
}

/// `t[k] = n`, the key being the value at index `k`; `t` not a relative
/// index.
///
/// # Safety
///
/// As [`set_int`].
pub(super) unsafe fn set_int_at(l: *mut lua_State, t: c_int, k: c_int, n: i64) {
    // SAFETY: see above.
    unsafe { warren_rawsetkint(l, t, k, n) }
}

/// `t[key] = b`.
///
/// # Safety
///
/// As [`set`] (without the value).
#[inline(always)]
pub(super) unsafe fn set_bool(l: *mut lua_State, t: c_int, key: Key, b: bool) {
    // SAFETY: see above.
    unsafe {
        let t = fast::absindex(l, t);
        fast::pushboolean(l, c_int::from(b));
        set(l, t, key);
    }
}

// The kernel's FIFO queues (`qnew` in kernel/channels.lua): `{ false, h = 1, t = 0 }`,
// items at `h..=t`, both reset to 1, 0 when it empties.

/// Whether queue `q` holds no item.
///
/// # Safety
///
/// As [`get`], `q` a queue.
pub(super) unsafe fn q_empty(l: *mut lua_State, q: c_int) -> bool {
    // SAFETY: see above.
    unsafe { q_len(l, q) <= 0 }
}

/// Items in queue `q`.
///
/// # Safety
///
/// As [`get`], `q` a queue.
pub(super) unsafe fn q_len(l: *mut lua_State, q: c_int) -> i64 {
    // SAFETY: see above.
    unsafe { warren_qlen(l, q, Key::H as c_int, Key::T as c_int) }
}

/// Pushes the head of queue `q`, taken out of it (nil when it is empty).
/// Never allocates: a queue emptied with more than [`Q_KEEP`] slots is
/// cut back to [`Q_FIRST`], a shrinking reallocation, which the allocator
/// never refuses.
///
/// # Safety
///
/// As [`get`], `q` an absolute index of a queue.
pub(super) unsafe fn q_pop(l: *mut lua_State, q: c_int) {
    // SAFETY: see above; the writes are to fields and slots that exist
    // (the vendored Lua's `warren_qpop`).
    unsafe {
        if warren_qpop(l, q, Key::H as c_int, Key::T as c_int, Q_KEEP) != 0 {
            resize_array(l, q, Q_FIRST);
        }
    }
}

/// Appends the value at `v` to queue `q`: room first (it may allocate,
/// and a memory error then leaves the queue as it was), then the slot and
/// the count.
///
/// A queue's slots stay in its table's array part, so a push is a store
/// and never a `luaH_newkey`: when the tail reaches the end of the array,
/// the entries slide down to the start if they fill at most half of it
/// (the head has moved past as many slots as they fill, so each entry
/// slides once per as many pops), else the array doubles. A queue that
/// never empties (a server's inbox under steady load) no longer walks its
/// keys out of the array part, where every push went through the hash
/// part and its rehashes.
///
/// # Safety
///
/// As [`get`], `q` and `v` absolute indices.
pub(super) unsafe fn q_push(l: *mut lua_State, q: c_int, v: c_int) {
    // SAFETY: see above.
    unsafe {
        // The store itself when there is room (the vendored Lua's
        // `warren_qpush`), else room first as below.
        if warren_qpush(l, q, v, Key::T as c_int) != 0 {
            return;
        }
        let mut t = int(l, q, Key::T) + 1;
        let cap = i64::from(warren_arraysize(l, q));
        if t > cap {
            t = q_room(l, q, t, cap);
        }
        fast::pushvalue(l, v);
        ffi::lua_rawseti(l, q, t);
        set_int(l, q, Key::T, t);
    }
}

/// Drops the entries of queue `q` that `dead` says will never be used,
/// keeping the others in order from slot 1, when the next push would
/// need room; then, if what is left fills more than half the array,
/// doubles it. A compaction reads the whole queue, and the next one
/// comes only once half the array has been pushed again, so its cost is
/// at most two reads per push. A queue whose head stays alive (which
/// only pops past dead entries at the head ever dropped) holds at most
/// about twice its live entries instead of every dead one. May raise a
/// memory error in the doubling, the queue whole and compacted.
///
/// # Safety
///
/// As [`get`], `q` an absolute index of a queue, with room for four
/// values; `dead` is given the absolute index of an entry pushed on top,
/// leaves the stack as it found it, and never allocates or raises.
pub(super) unsafe fn q_compact(
    l: *mut lua_State,
    q: c_int,
    dead: unsafe fn(*mut lua_State, c_int) -> bool,
) {
    // SAFETY: see above; every write is to a slot of the array part that
    // exists (the kept entries move down, never past where they were).
    unsafe {
        let (h, t) = (int(l, q, Key::H), int(l, q, Key::T));
        let cap = i64::from(warren_arraysize(l, q));
        if t < cap {
            return; // room for the next push
        }
        let mut kept = 0;
        for i in h..=t {
            fast::rawgeti(l, q, i);
            if dead(l, fast::gettop(l)) {
                pop(l, 1);
            } else {
                kept += 1;
                ffi::lua_rawseti(l, q, kept);
            }
        }
        for i in kept + 1..=t {
            fast::pushnil(l);
            ffi::lua_rawseti(l, q, i);
        }
        set_int(l, q, Key::H, 1);
        set_int(l, q, Key::T, kept);
        if kept > cap / 2
            && let Ok(want) = c_uint::try_from(cap.saturating_mul(2))
        {
            resize_array(l, q, want); // a growth: always made
        }
    }
}

/// Gives the table at `t` an array part of exactly `slots` slots (the
/// vendored Lua's `warren_resizearray`): false, nothing changed, for a
/// shrink that would drop a value.
///
/// # Safety
///
/// `t` an absolute index of a table; may raise a memory error when it
/// grows, the table as it was.
pub(super) unsafe fn resize_array(l: *mut lua_State, t: c_int, slots: c_uint) -> bool {
    // SAFETY: see above.
    unsafe { warren_resizearray(l, t, slots) != 0 }
}

/// The slots a queue's array part first grows to.
const Q_FIRST: c_uint = 8;

/// The most slots an emptied queue keeps: a burst of messages does not
/// keep its memory in an idle process's inbox.
const Q_KEEP: c_uint = 64;

/// Makes slot `t` (past the array part's `cap` slots) free for the next
/// push of queue `q`, sliding its entries down or doubling its array (see
/// [`q_push`]), and returns the slot to push to. May raise a memory error
/// before anything changed.
///
/// # Safety
///
/// As [`q_push`].
unsafe fn q_room(l: *mut lua_State, q: c_int, t: i64, cap: i64) -> i64 {
    // SAFETY: see above; moves within slots that exist.
    unsafe {
        let h = int(l, q, Key::H);
        let len = t - h;
        if h > 1 && len <= cap / 2 {
            // [h, t) and [1, len] are apart (h > len), so each chunk is
            // taken (its old slots cleared) before any is overwritten.
            let mut done = 0;
            while done < len {
                let n = (len - done).min(8);
                let n32 = c_int::try_from(n).unwrap_or(8);
                take(l, q, h + done, n32);
                put(l, q, 1 + done, n32);
                done += n;
            }
            set_int(l, q, Key::H, 1);
            set_int(l, q, Key::T, len);
            return len + 1;
        }
        let want = cap.saturating_mul(2).max(i64::from(Q_FIRST)).max(t);
        if let Ok(want) = c_uint::try_from(want) {
            resize_array(l, q, want); // a growth: always made
        }
        t
    }
}

/// Pushes `s[key]`, a queue, making it first if `s` has none (allocates).
///
/// # Safety
///
/// As [`get`], `s` an absolute index.
pub(super) unsafe fn q_of(l: *mut lua_State, s: c_int, key: Key) {
    // SAFETY: see above.
    unsafe {
        if get(l, s, key) == ffi::LUA_TTABLE {
            return;
        }
        pop(l, 1);
        ffi::lua_createtable(l, 1, 2);
        let q = fast::gettop(l);
        fast::pushboolean(l, 0);
        ffi::lua_rawseti(l, q, 1);
        set_int(l, q, Key::H, 1);
        set_int(l, q, Key::T, 0);
        fast::pushvalue(l, q);
        set(l, s, key);
    }
}

/// Stack slots a machine function may use above its arguments (its
/// nested helpers push a few values each; a C function is only promised
/// `LUA_MINSTACK`, 20).
const SLOTS: c_int = 40;

/// Makes room for `n` more values on `l`'s stack, raising as [`reserve`]
/// does when it cannot grow (`luaL_checkstack` raised a plain "stack
/// overflow" run-time error for a failed reallocation too).
///
/// # Safety
///
/// `l` is a running thread, in a C function.
#[inline(always)]
pub(crate) unsafe fn room(l: *mut lua_State, n: c_int) {
    // SAFETY: as this function's.
    unsafe { fast::checkstack(l, n) }
}

/// Makes room for [`SLOTS`] values, raising when the stack cannot grow:
/// a memory error when it cannot be reallocated (a process at its memory
/// limit, which then ends with that reason: it was raised as a "stack
/// overflow" run-time error, `UNKNOWN`, when the limit happened to be
/// hit here), the usual overflow error past Lua's largest stack.
///
/// # Safety
///
/// Called first in a machine C function.
#[inline(always)]
pub(super) unsafe fn reserve(l: *mut lua_State) {
    // SAFETY: see above; either error needs only Lua's spare slots.
    unsafe { fast::checkstack(l, SLOTS) }
}

/// The prologue of a machine function the kernel calls with its own
/// records: reserves the stack, sets exactly `n` arguments and raises
/// (naming `what`) unless the first `tables` are tables.
///
/// # Safety
///
/// Called first in a machine C function.
pub(super) unsafe fn args(l: *mut lua_State, n: c_int, tables: c_int, what: &str) {
    // SAFETY: see above.
    unsafe {
        reserve(l);
        settop(l, n);
        if (1..=tables).any(|i| fast::type_of(l, i) != ffi::LUA_TTABLE) {
            raise(l, 1, what, Some(c": expected the kernel's records"));
        }
    }
}

/// Raises `msg` followed by `then` (when given) as Lua's
/// `error(msg .. then, level + 1)` would from the function at `level` (1:
/// the caller of this C function).
///
/// # Safety
///
/// Called from a machine C function, with no Rust value that has a
/// destructor alive in its callers (the error unwinds them).
pub(super) unsafe fn raise(
    l: *mut lua_State,
    level: c_int,
    msg: &str,
    then: Option<&std::ffi::CStr>,
) -> ! {
    // SAFETY: see above.
    unsafe {
        ffi::luaL_where(l, level);
        ffi::lua_pushlstring(l, msg.as_ptr().cast(), msg.len());
        let mut n = 2;
        if let Some(then) = then {
            ffi::lua_pushstring(l, then.as_ptr());
            n = 3;
        }
        ffi::lua_concat(l, n);
        ffi::lua_error(l)
    }
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    use super::*;

    /// Runs `f` on `lua`'s stack with the table `t` at index 1 and the
    /// names of [`Key::Env`], [`Key::V`], [`Key::H`] and [`Key::T`]
    /// registered, and returns what `f` pushed (one string).
    fn with_keys(lua: &Lua, t: &mlua::Table, f: impl FnOnce(*mut lua_State)) -> String {
        // SAFETY: the closure gets a state with the table at 1 and room
        // for the pushes below (LUA_MINSTACK).
        unsafe {
            lua.exec_raw::<String>(t.clone(), |l| {
                for key in [Key::Env, Key::V, Key::H, Key::T] {
                    let name = key.name();
                    ffi::lua_pushlstring(l, name.as_ptr().cast(), name.len());
                    register_key(l, key);
                }
                f(l);
                fast::replace(l, 1);
                fast::settop(l, 1);
            })
        }
        .expect("exec")
    }

    /// Asks for 100,000 stack slots (1.6 MB) the way a machine function
    /// reserves its room.
    unsafe extern "C-unwind" fn wants_room(l: *mut lua_State) -> c_int {
        // SAFETY: called by Lua as a C function.
        unsafe { fast::checkstack(l, 100_000) };
        0
    }

    /// Asks for more slots than any Lua stack may have.
    unsafe extern "C-unwind" fn wants_too_much(l: *mut lua_State) -> c_int {
        // SAFETY: as above.
        unsafe { fast::checkstack(l, 2_000_000) };
        0
    }

    #[test]
    fn a_stack_that_cannot_grow_raises_memory_or_overflow_not_a_plain_error() {
        let lua = Lua::new();
        // SAFETY: plain C functions that only grow the stack.
        let room = unsafe { lua.create_c_function(wants_room) }.expect("fn");
        let too_much = unsafe { lua.create_c_function(wants_too_much) }.expect("fn");
        room.call::<()>(()).expect("room when memory allows");
        let _ = lua.set_memory_limit(lua.used_memory() + (64 << 10));
        let err = room.call::<()>(()).expect_err("no memory for the stack");
        assert!(matches!(err, mlua::Error::MemoryError(_)), "{err:?}");
        let _ = lua.set_memory_limit(0);
        let err = too_much.call::<()>(()).expect_err("past the largest stack");
        assert!(err.to_string().contains("stack overflow"), "{err:?}");
    }

    /// Pushes `s` as a Lua string.
    unsafe fn push_str(l: *mut lua_State, s: &str) {
        // SAFETY: the caller's stack has room.
        unsafe { ffi::lua_pushlstring(l, s.as_ptr().cast(), s.len()) };
    }

    unsafe extern "C-unwind" fn clone_arg(l: *mut lua_State) -> c_int {
        // SAFETY: called by Lua with a table argument (checked).
        unsafe {
            ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
            warren_clonetable(l, 1);
            1
        }
    }

    /// A clone has its template's keys, values, array part and free
    /// slots, no metatable, and is its own table: writes to either do not
    /// reach the other, new keys grow it, and both survive collections in
    /// either collector mode with every value intact.
    #[test]
    fn a_cloned_table_is_an_independent_copy_of_its_template() {
        let lua = Lua::new();
        // SAFETY: `clone_arg` checks its argument.
        let f = unsafe { lua.create_c_function(clone_arg) }.expect("c function");
        lua.globals().set("clone", f).expect("set");
        let got: String = lua
            .load(
                r##"
                local long = string.rep("k", 60)
                local tpl = setmetatable({ 1, 2, 3, a = false, b = 0, [long] = "v", [2.5] = true,
                    nested = { x = 1 } }, { __index = function() error("ran") end })
                local out = {}
                for _, mode in ipairs({ "incremental", "generational" }) do
                    collectgarbage(mode)
                    local c = clone(tpl)
                    local same = getmetatable(c) == nil and #c == 3 and c.a == false and c.b == 0
                        and c[long] == "v" and c[2.5] == true and c.nested == tpl.nested
                    local n = 0
                    for k, v in pairs(c) do n = n + 1 if rawget(tpl, k) ~= v then same = false end end
                    c.a, c.b, c[1] = "x", 1, "y"
                    for i = 1, 100 do c["new" .. i] = i end -- rehashed past its size
                    collectgarbage()
                    local kept = tpl.a == false and tpl.b == 0 and tpl[1] == 1 and rawget(tpl, "new1") == nil
                    local grown = c.a == "x" and c.b == 1 and c[1] == "y" and c.new100 == 100 and c[long] == "v"
                    out[#out + 1] = table.concat({ tostring(same), n, tostring(kept), tostring(grown) }, ",")
                end
                return table.concat(out, " ")
                "##,
            )
            .eval()
            .expect("run");
        assert_eq!(got, "true,8,true,true true,8,true,true");
    }

    #[test]
    fn keys_by_number_read_and_write_the_named_fields_raw() {
        let lua = Lua::new();
        let t: mlua::Table = lua
            .load("return setmetatable({ env = 7 }, { __index = function() error('ran') end, __newindex = function() error('ran') end })")
            .eval()
            .expect("table");
        let seen = with_keys(&lua, &t, |l| unsafe {
            let dead = int(l, 1, Key::Env);
            let had_v = truthy(l, 1, Key::V);
            let v_type = get(l, 1, Key::V);
            fast::pop(l, 1);
            set_int(l, 1, Key::Env, dead + 1); // an existing field
            set_int(l, 1, Key::V, 40); // a new one
            push_str(l, "x");
            set(l, 1, Key::Env); // an integer replaced by a string
            let dead_type = get(l, 1, Key::Env);
            fast::pop(l, 1);
            let out = format!("{dead} {had_v} {v_type} {} {dead_type}", int(l, 1, Key::V));
            push_str(l, &out);
        });
        assert_eq!(
            seen,
            format!("7 false {} 40 {}", ffi::LUA_TNIL, ffi::LUA_TSTRING)
        );
        assert_eq!(t.raw_get::<String>("env").expect("env"), "x");
        assert_eq!(t.raw_get::<i64>("v").expect("v"), 40);
    }

    #[test]
    fn add_int_adds_in_place_and_reads_a_missing_or_other_field_as_zero() {
        let lua = Lua::new();
        let t: mlua::Table = lua
            .load("return setmetatable({ env = 7, v = 'x' }, { __index = function() error('ran') end, __newindex = function() error('ran') end })")
            .eval()
            .expect("table");
        let seen = with_keys(&lua, &t, |l| unsafe {
            let up = add_int(l, 1, Key::Env, 3);
            let down = add_int(l, 1, Key::Env, -11);
            let from_string = add_int(l, 1, Key::V, 5); // not an integer: 0
            let made = add_int(l, 1, Key::H, -2); // a new field
            let wrapped = add_int(l, 1, Key::T, i64::MAX);
            let wrapped = (wrapped, add_int(l, 1, Key::T, 1));
            let out = format!("{up} {down} {from_string} {made} {wrapped:?}");
            push_str(l, &out);
        });
        assert_eq!(seen, format!("10 -1 5 -2 ({}, {})", i64::MAX, i64::MIN));
        assert_eq!(t.raw_get::<i64>("env").expect("env"), -1);
        assert_eq!(t.raw_get::<i64>("h").expect("h"), -2);
    }

    #[test]
    fn a_queue_keeps_order_across_its_growth_and_resets_and_shrinks_when_emptied() {
        let lua = Lua::new();
        let q: mlua::Table = lua
            .load("return setmetatable({ false, h = 1, t = 0 }, { __index = function() error('ran') end, __newindex = function() error('ran') end })")
            .eval()
            .expect("queue");
        let seen = with_keys(&lua, &q, |l| unsafe {
            let mut out = Vec::new();
            // Pushes past the first slot grow it (the slow path), the
            // later ones are stores (the fused path); pops interleave.
            for round in 0..3 {
                for i in 0..100 {
                    fast::pushinteger(l, round * 1000 + i);
                    q_push(l, 1, fast::gettop(l));
                    fast::pop(l, 1);
                    if i % 3 == 0 {
                        q_pop(l, 1);
                        out.push(fast::tointeger(l, -1));
                        fast::pop(l, 1);
                    }
                }
                out.push(-q_len(l, 1));
                while !q_empty(l, 1) {
                    q_pop(l, 1);
                    out.push(fast::tointeger(l, -1));
                    fast::pop(l, 1);
                }
                q_pop(l, 1); // empty: nil
                out.push(i64::from(fast::type_of(l, -1) == ffi::LUA_TNIL));
                fast::pop(l, 1);
                out.push(i64::from(warren_arraysize(l, 1)));
            }
            let want = (0..3)
                .flat_map(|r: i64| {
                    let mut w: Vec<i64> = (0..34).map(|k| r * 1000 + k).collect();
                    w.push(-66);
                    w.extend((34..100).map(|k| r * 1000 + k));
                    w.extend([1, i64::from(Q_FIRST)]);
                    w
                })
                .collect::<Vec<_>>();
            push_str(l, &format!("{}", out == want));
        });
        assert_eq!(seen, "true");
        assert_eq!(q.raw_get::<i64>("h").expect("h"), 1);
        assert_eq!(q.raw_get::<i64>("t").expect("t"), 0);
    }

    #[test]
    fn only_short_strings_are_registered_and_an_unregistered_key_is_absent() {
        let lua = Lua::new();
        let t: mlua::Table = lua.load("return { [42] = 'n' }").eval().expect("table");
        let seen = with_keys(&lua, &t, |l| unsafe {
            fast::pushinteger(l, 42);
            let number = warren_setkey(l, Key::Cap as c_int);
            let long = "a name longer than Lua's forty-byte limit for short strings";
            push_str(l, long);
            let long_ok = warren_setkey(l, Key::Cap as c_int);
            push_str(l, "cap");
            let range = warren_setkey(l, 64);
            let top = fast::gettop(l);
            // Key::Cap was never registered: absent, and a write is dropped.
            let cap = get(l, 1, Key::Cap);
            fast::pop(l, 1);
            push_str(l, "dropped");
            set(l, 1, Key::Cap);
            let out = format!("{number} {long_ok} {range} {cap} {}", fast::gettop(l) - top);
            push_str(l, &out);
        });
        assert_eq!(seen, format!("0 0 0 {} 0", ffi::LUA_TNIL));
        assert_eq!(t.raw_len(), 0);
        assert_eq!(t.pairs::<mlua::Value, mlua::Value>().count(), 1);
    }
}

//! The measure of what a process holds, for `memory_per_process`: the walk
//! of everything it can reach that no other process shares, in C (it was
//! kernel Lua, ~530 ns an object: 95,000 held tables took 52 ms of its
//! worker at every measure, none of it preemptible).
//!
//! `measure(p, NOT_OWNED, CASE, TIMERS, HELD, WRAPPED, entry, source,
//! enough)`: `total, exact` — about how many bytes `p` holds, from its
//! record on: tables (what each has allocated), strings
//! (each by its address: equal long strings are each their own
//! allocation), channels (and their states), functions (their
//! prototypes, once each, and upvalues; not the kernel's own, whose chunk
//! name is `source`, nor anything in `NOT_OWNED`) and coroutines (every
//! frame's function and locals, varargs too; one not started, the
//! function and arguments on its stack), other userdata (their blocks
//! and an estimate of what they hold in the host's heap: a type value's
//! shape). What the kernel keeps for an object (`CASE`, `TIMERS`, `HELD`,
//! `WRAPPED`, weak tables keyed by it) is the object's. `entry` is never counted. Every frame of a
//! coroutine is read, one step each (`warren_nextframe`): a deep one is
//! bounded by what its frames count against `enough`. `exact` is false
//! only when the walk's work list could not grow.
//!
//! What it counts is what fooled the walk before: strings keyed by value
//! counted a thousand equal long strings (each its own allocation: Lua
//! interns only strings of at most 40 bytes) as one; a prototype (code,
//! constants, nested prototypes: `warren_protowalk`, each prototype once)
//! could not be reached (246 loaded closures each returning a megabyte
//! literal took a host's 256 MiB while measured at a few); counting a table's live
//! entries only missed the slots it keeps (127 tables emptied after
//! holding 100,000 entries took 256 MiB while measured at 2 MiB).
//!
//! Guarantees: reads every value raw (`lua_next`, `lua_rawget`, the real
//! metatable), so no metamethod runs; stops as soon as the count passes
//! `enough` (a process holding millions of objects cannot make its worker
//! walk them all); its work list is a Lua thread's stack (kernel memory,
//! between processes) and its seen set host memory, one entry per object
//! it keeps, bounded by what `enough` lets it count. Nothing it calls
//! after its work thread exists raises (the stack growths are checked,
//! not raised), so no Rust value is skipped by an error.

use std::ffi::{c_int, c_uint, c_void};

use super::fast;
use mlua::ffi::{self, lua_State};
use rustc_hash::FxHashSet;

use super::raw;

/// Bytes counted for a string besides its characters.
const SIZE_STRING: i64 = 24;
/// Bytes counted for a closure.
const SIZE_FUNCTION: i64 = 48;
/// Bytes counted for a full userdata besides its block: its header.
const SIZE_USERDATA: i64 = 48;
/// Bytes counted for what a userdata other than a channel holds in the
/// host's heap (a type value's shape: ~125 bytes each). Counted as
/// nothing, 360,000 type values made by instantiating a generic held
/// 45 MB of the host while their process was measured at 6 MB.
const SIZE_HOST_OBJECT: i64 = 128;
/// A thread: its `lua_State` (208) plus a stack of 28 slots (448) when
/// made, 45 or more while it runs, cut back when it waits
/// (`vendor/lua-src/WARREN.md`); counted as 1 KB (200 let a hoard of
/// coroutines be measured at a fifth of what it held).
const SIZE_THREAD: i64 = 1000;
/// A local of a frame: its stack slot.
const SIZE_LOCAL: i64 = 16;
/// A call frame: a `CallInfo` (64) and a few stack slots.
const SIZE_FRAME: i64 = 80;
/// An upvalue: its pointer in the closure (8) and the `UpVal` (40),
/// counted per closure.
const SIZE_UPVALUE: i64 = 48;

/// Bytes of a table's header (`Table` in `lobject.h`, 64-bit).
const TABLE_HEADER: i64 = 56;
/// Bytes of an array slot (a `TValue`).
const ARRAY_SLOT: i64 = 16;
/// Bytes of a hash node (a `TValue` and its key).
const NODE_SLOT: i64 = 32;

// The arguments, by index.
const P: c_int = 1;
const NOT_OWNED: c_int = 2;
const CASE: c_int = 3;
const TIMERS: c_int = 4;
const HELD: c_int = 5;
const WRAPPED: c_int = 6;
const ENTRY: c_int = 7;
const SOURCE: c_int = 8;
const ENOUGH: c_int = 9;
/// The work thread (made first).
const WORK: c_int = 10;

// The vendored Lua's sizes (lwarren.h).
unsafe extern "C-unwind" {
    fn warren_protowalk(
        l: *mut lua_State,
        idx: c_int,
        fresh: unsafe extern "C" fn(*mut c_void, *const c_void) -> c_int,
        ctx: *mut c_void,
    ) -> usize;
    fn warren_nextframe(l: *mut lua_State, ar: *mut ffi::lua_Debug) -> c_int;
    fn warren_tableslots(l: *mut lua_State, idx: c_int) -> c_uint;
    fn warren_arraysize(l: *mut lua_State, idx: c_int) -> c_uint;
}

/// `warren_protowalk`'s question: whether prototype `p` is new to the
/// seen set at `ctx` (which records it).
///
/// # Safety
///
/// `ctx` is a walk's `seen`, borrowed by nothing else meanwhile.
unsafe extern "C" fn fresh_proto(ctx: *mut c_void, p: *const c_void) -> c_int {
    // SAFETY: see above.
    let seen = unsafe { &mut *ctx.cast::<FxHashSet<usize>>() };
    c_int::from(seen.insert(p as usize))
}

/// A walk in progress.
struct Walk<'a> {
    /// The work list: values to look at, on top of its stack.
    work: *mut lua_State,
    /// How many values are on it.
    pending: c_int,
    /// Addresses of the objects kept (and of the prototypes counted).
    seen: FxHashSet<usize>,
    total: i64,
    exact: bool,
    /// The work list could not grow: the walk ends, not exact.
    full: bool,
    /// The kernel's chunk name: its functions are not looked into.
    kernel: &'a [u8],
}

/// `measure(...)`: see the module's documentation.
///
/// # Safety
///
/// Called by Lua as a machine C closure, by the kernel between processes.
pub(super) unsafe extern "C-unwind" fn lua_measure(l: *mut lua_State) -> c_int {
    // SAFETY: six tables are checked; the work thread stays at WORK (so
    // alive) for the walk; the source string stays at SOURCE.
    unsafe {
        raw::args(l, 9, 6, "measure");
        let enough = fast::tointeger(l, ENOUGH);
        let mut len = 0;
        let source = ffi::lua_tolstring(l, SOURCE, &raw mut len);
        let kernel = if source.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(source.cast::<u8>(), len)
        };
        let work = ffi::lua_newthread(l); // WORK; may raise: nothing to skip yet
        let mut walk = Walk {
            work,
            pending: 0,
            seen: FxHashSet::default(),
            total: 0,
            exact: true,
            full: false,
            kernel,
        };
        walk.seen.insert(fast::topointer(l, ENTRY) as usize);
        fast::pushvalue(l, P);
        walk.keep(l);
        walk.run(l, enough);
        let (total, exact) = (walk.total, walk.exact);
        drop(walk);
        raw::settop(l, 0);
        fast::pushinteger(l, total);
        fast::pushboolean(l, c_int::from(exact));
        2
    }
}

impl Walk<'_> {
    /// Looks at the values on the work list until it is empty or the count
    /// passes `enough`.
    ///
    /// # Safety
    ///
    /// As [`lua_measure`], the work thread at [`WORK`] and nothing above.
    unsafe fn run(&mut self, l: *mut lua_State, enough: i64) {
        // SAFETY: see above; each value is moved to index WORK + 1 and
        // everything from there is dropped after it is looked at.
        unsafe {
            while self.pending > 0 && self.total <= enough && !self.full {
                ffi::lua_xmove(self.work, l, 1);
                self.pending -= 1;
                let v = WORK + 1;
                match fast::type_of(l, v) {
                    ffi::LUA_TSTRING => {
                        let n = i64::try_from(ffi::lua_rawlen(l, v)).unwrap_or(i64::MAX);
                        self.total = self.total.saturating_add(SIZE_STRING + n);
                    }
                    ffi::LUA_TTABLE => self.table(l, v, enough),
                    ffi::LUA_TUSERDATA => {
                        let block = i64::try_from(ffi::lua_rawlen(l, v)).unwrap_or(i64::MAX);
                        self.total = self.total.saturating_add(SIZE_USERDATA + block);
                        if raw::chan_state(l, v) {
                            self.keep(l);
                        } else {
                            self.total += SIZE_HOST_OBJECT;
                        }
                    }
                    ffi::LUA_TFUNCTION => self.function(l, v),
                    ffi::LUA_TTHREAD => self.thread(l, v, enough),
                    _ => {}
                }
                raw::settop(l, WORK);
            }
        }
    }

    /// Takes the value on top of `l` onto the work list when it is an
    /// object not yet seen that no other process shares; pops it.
    ///
    /// # Safety
    ///
    /// As [`run`](Self::run), with a free slot on `l`.
    unsafe fn keep(&mut self, l: *mut lua_State) {
        // SAFETY: see above; reads raw; growing the work thread's stack is
        // checked (a failure ends the walk, not exact).
        unsafe {
            let t = fast::type_of(l, -1);
            let wanted = matches!(
                t,
                ffi::LUA_TTABLE
                    | ffi::LUA_TSTRING
                    | ffi::LUA_TFUNCTION
                    | ffi::LUA_TTHREAD
                    | ffi::LUA_TUSERDATA
            );
            let at = fast::topointer(l, -1) as usize;
            // Only tables and functions are ever marked NOT_OWNED.
            let shareable = matches!(t, ffi::LUA_TTABLE | ffi::LUA_TFUNCTION);
            if !wanted || self.seen.contains(&at) || (shareable && self.not_owned(l)) {
                raw::pop(l, 1);
                return;
            }
            if t == ffi::LUA_TSTRING {
                // A leaf: counted now, never queued, so a table of a
                // million strings does not fill the work list (a walk cut
                // short let its process grow past its limit).
                self.seen.insert(at);
                let n = i64::try_from(ffi::lua_rawlen(l, -1)).unwrap_or(i64::MAX);
                self.total = self.total.saturating_add(SIZE_STRING + n);
                raw::pop(l, 1);
                return;
            }
            if fast::has_room(self.work, 1) == 0 {
                raw::pop(l, 1);
                self.exact = false;
                self.full = true;
                return;
            }
            self.seen.insert(at);
            ffi::lua_xmove(l, self.work, 1);
            self.pending += 1;
        }
    }

    /// Whether the value on top is in the kernel's `NOT_OWNED`.
    ///
    /// # Safety
    ///
    /// As [`keep`](Self::keep), the value not nil.
    unsafe fn not_owned(&self, l: *mut lua_State) -> bool {
        // SAFETY: see above; a raw read.
        unsafe {
            fast::pushvalue(l, -1);
            let found = ffi::lua_rawget(l, NOT_OWNED) != ffi::LUA_TNIL;
            raw::pop(l, 1);
            found
        }
    }

    /// Adds `bytes` and keeps the value on top (see [`keep`](Self::keep)).
    ///
    /// # Safety
    ///
    /// As [`keep`](Self::keep).
    unsafe fn counted(&mut self, l: *mut lua_State, bytes: i64) {
        // SAFETY: see above.
        unsafe {
            self.total = self.total.saturating_add(bytes);
            self.keep(l);
        }
    }

    /// Keeps what kernel table `kt` holds for the value at `v`.
    ///
    /// # Safety
    ///
    /// As [`keep`](Self::keep), with two free slots.
    unsafe fn kept_for(&mut self, l: *mut lua_State, kt: c_int, v: c_int) {
        // SAFETY: see above; a raw read.
        unsafe {
            fast::pushvalue(l, v);
            ffi::lua_rawget(l, kt);
            self.keep(l);
        }
    }

    /// Looks at table `v`: what it has allocated, then (unless that passes
    /// `enough`) its keys, values, metatable and what the kernel keeps
    /// for it.
    ///
    /// # Safety
    ///
    /// As [`run`](Self::run), `v` the value looked at.
    unsafe fn table(&mut self, l: *mut lua_State, v: c_int, enough: i64) {
        // SAFETY: see above; `lua_next` keeps its key on top, and each
        // entry is copied before `keep` pops it.
        unsafe {
            let array = i64::from(warren_arraysize(l, v));
            let nodes = (i64::from(warren_tableslots(l, v)) - array).max(0);
            self.total += TABLE_HEADER + ARRAY_SLOT * array + NODE_SLOT * nodes;
            if self.total > enough {
                return;
            }
            fast::pushnil(l);
            while ffi::lua_next(l, v) != 0 {
                self.keep(l); // the value
                fast::pushvalue(l, -1);
                self.keep(l); // the key
            }
            // The kernel keeps records only for its own objects (a case,
            // a timer, a snapshot), each with a metatable no process can
            // change or remove.
            if ffi::lua_getmetatable(l, v) != 0 {
                self.keep(l);
                for kt in [CASE, TIMERS, HELD] {
                    self.kept_for(l, kt, v);
                }
            }
        }
    }

    /// Looks at function `v`: the coroutine a `coroutine.wrap` function
    /// drives, and, unless it is the kernel's, its prototype (once) and
    /// its upvalues.
    ///
    /// # Safety
    ///
    /// As [`table`](Self::table).
    unsafe fn function(&mut self, l: *mut lua_State, v: c_int) {
        // SAFETY: see above; `lua_getinfo(">S")` pops the copy it reads.
        unsafe {
            self.total += SIZE_FUNCTION;
            self.kept_for(l, WRAPPED, v);
            let mut ar: ffi::lua_Debug = std::mem::zeroed();
            fast::pushvalue(l, v);
            ffi::lua_getinfo(l, c">S".as_ptr(), &raw mut ar);
            let source = if ar.source.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(ar.source.cast::<u8>(), ar.srclen)
            };
            if source == self.kernel {
                return;
            }
            let seen = (&raw mut self.seen).cast::<c_void>();
            let bytes = warren_protowalk(l, v, fresh_proto, seen);
            let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
            self.total = self.total.saturating_add(bytes);
            let mut i = 1;
            while !ffi::lua_getupvalue(l, v, i).is_null() {
                self.counted(l, SIZE_UPVALUE);
                i += 1;
            }
        }
    }

    /// Looks at coroutine `v`: each frame's function and locals (varargs
    /// too: a coroutine suspended with a hundred strings passed as `...`
    /// held them unmeasured), or, for one that has not started, the
    /// function and arguments on its stack (a `coroutine.create`d or
    /// wrapped function never run held its upvalues unmeasured).
    ///
    /// # Safety
    ///
    /// As [`table`](Self::table).
    unsafe fn thread(&mut self, l: *mut lua_State, v: c_int, enough: i64) {
        // SAFETY: see above; values are pushed on `th` only after room
        // for them is checked, and moved to `l` at once.
        unsafe {
            self.total += SIZE_THREAD;
            let th = fast::tothread(l, v);
            if th.is_null() || th == l {
                return;
            }
            let mut ar: ffi::lua_Debug = std::mem::zeroed();
            if warren_nextframe(th, &raw mut ar) == 0 {
                self.unstarted(l, th);
                return;
            }
            loop {
                if fast::has_room(th, 1) == 0 {
                    self.exact = false;
                    return;
                }
                ffi::lua_getinfo(th, c"f".as_ptr(), &raw mut ar);
                ffi::lua_xmove(th, l, 1);
                self.counted(l, SIZE_FRAME);
                for dir in [1, -1] {
                    let mut i = dir;
                    while fast::has_room(th, 1) != 0
                        && !ffi::lua_getlocal(th, &raw const ar, i).is_null()
                    {
                        ffi::lua_xmove(th, l, 1);
                        self.counted(l, SIZE_LOCAL);
                        i += dir;
                    }
                }
                if self.full || self.total > enough || warren_nextframe(th, &raw mut ar) == 0 {
                    return;
                }
            }
        }
    }

    /// Looks at the values on the stack of coroutine `th`, which has no
    /// frame: one not started (its function and arguments) or finished.
    ///
    /// # Safety
    ///
    /// As [`thread`](Self::thread), `th` not `l`.
    unsafe fn unstarted(&mut self, l: *mut lua_State, th: *mut lua_State) {
        // SAFETY: see above.
        unsafe {
            for i in 1..=fast::gettop(th) {
                if fast::has_room(th, 1) == 0 {
                    self.exact = false;
                    return;
                }
                fast::pushvalue(th, i);
                ffi::lua_xmove(th, l, 1);
                self.counted(l, SIZE_LOCAL);
            }
        }
    }
}

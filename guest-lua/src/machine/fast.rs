//! Inline versions of the Lua C API calls the machine makes most: the
//! stack's top, pushes of nil, booleans, integers and copies, and reads of
//! a value's type and truth. A blocked channel receive made about a
//! hundred C API calls, sixty of them these; each is a call across the
//! language boundary that the compiler cannot inline (about fifteen
//! instructions), where the work is two to five.
//!
//! Each reads or writes the vendored Lua's structures directly, at the
//! offsets and tags `lwarren.c` asserts when Lua is built (a change of
//! Lua's layout fails that build, not these readers), and hands every case
//! it does not replicate to the C function: the registry, a light C
//! function's upvalues, a `settop` that grows the stack or reaches a
//! to-be-closed slot, a full userdata's memory.
//!
//! Here: the layout, where an index's value is, and the C fallbacks; the
//! accessors are in [`stack`] (top, pushes, moves, room), [`read`] (type,
//! truth, pointers, equality, userdata, upvalues) and [`field`] (the
//! kernel's records by key, array slots).
//!
//! Guarantees: each has its C counterpart's semantics (Lua's release
//! build, where `api_check` is off), tested against it for every kind of
//! index (`tests` below); a push needs the stack room its C counterpart
//! needs, which the machine's callers reserve as before; nothing here
//! allocates, raises, or runs a metamethod.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

// `lua_State`: the stack's top, the running call's `CallInfo`, the list of
// to-be-closed slots (each a `StkIdRel`, a pointer while nothing
// reallocates the stack).
const TOP: usize = 16;
const CI: usize = 32;
const TBCLIST: usize = 64;
// `CallInfo.func`: the running function's slot.
const CI_FUNC: usize = 0;
// A stack slot (`StackValue`, a `TValue`): its value, then its tag.
const SLOT: usize = 16;
const TAG: usize = 8;
// A C closure (`CClosure`): its upvalue count and its first upvalue.
const CCL_NUPVALUES: usize = 10;
const CCL_UPVALUE: usize = 32;
// `lua_State`: the global state, the end of the stack; `CallInfo.top`.
const L_G: usize = 24;
const STACK_LAST: usize = 40;
const CI_TOP: usize = 8;
// `global_State.warren_keys`: the interned names of the machine's keys.
const WARREN_KEYS: usize = 1416;
const NKEYS: usize = 64;
// A table: log2 of its hash part's size, the hash part; a hash node: its
// value (a `TValue`), its key's tag, the offset to the next node of its
// chain, its key; a string's hash.
const T_ALIMIT: usize = 12;
const T_ARRAY: usize = 16;
const T_FLAGS: usize = 10;
const T_LSIZENODE: usize = 11;
// A table's flags: read-only (`BITRO`), and its metamethod cache, which a
// write clears (`invalidateTMcache`).
const READ_ONLY: u8 = 1 << 6;
const TM_CACHE: u8 = 0x3f;
const T_NODE: usize = 24;
const NODE: usize = 24;
const N_KEY_TAG: usize = 9;
const N_NEXT: usize = 12;
const N_KEY: usize = 16;
const TS_HASH: usize = 12;
// A full userdata: its user-value count, metatable and user values (each
// a 16-byte `UValue`); where its memory starts without user values.
const U_NUVALUE: usize = 10;
const U_METATABLE: usize = 24;
const U_UV: usize = 40;
const U0_MEMORY: usize = 32;
// A Lua closure's prototype and upvalues (pointers to `UpVal`s); a
// prototype's upvalue count; an `UpVal`'s value (a pointer to the
// `TValue` it holds, open or closed).
const LCL_PROTO: usize = 24;
const LCL_UPVALS: usize = 32;
const PROTO_SIZEUPVALUES: usize = 16;
const UPVAL_V: usize = 16;
// Tags.
const LUA_CLOSURE: u8 = 0x46;
const USERDATA: u8 = 0x47;
const TABLE: u8 = 0x45;
const LIGHT_C_FUNCTION: u8 = 0x16;
const FLOAT: u8 = 0x13;
const COLLECTABLE: u8 = 0x40;
const SHORT_STRING: u8 = 0x44;
const THREAD: u8 = 0x48;
const VNIL: u8 = 0x00;
const VFALSE: u8 = 0x01;
const VTRUE: u8 = 0x11;
const VNUMINT: u8 = 0x03;
const VLIGHTUSERDATA: u8 = 0x02;
const CCLOSURE: u8 = 0x66;

/// Where an acceptable index's value is.
enum Slot {
    /// At this slot.
    At(*mut u8),
    /// Past the top, or an upvalue the closure does not have: Lua reads
    /// its shared nil there (`lua_type` answers `LUA_TNONE`).
    Absent,
    /// Left to the C function (the registry, index 0, a caller that is
    /// not a C closure).
    Slow,
}

/// The slot behind `l`'s top pointer.
///
/// # Safety
///
/// `l` is a live thread.
#[inline(always)]
unsafe fn top_at(l: *mut lua_State) -> *mut *mut u8 {
    // SAFETY: see above; `top` is a pointer-sized field at TOP.
    unsafe { l.cast::<u8>().add(TOP).cast() }
}

/// The running function's slot.
///
/// # Safety
///
/// `l` is a live thread with a call running.
#[inline(always)]
unsafe fn func(l: *mut lua_State) -> *mut u8 {
    // SAFETY: see above; `ci` points to the running call's record.
    unsafe {
        let ci = *l.cast::<u8>().add(CI).cast::<*const u8>();
        *ci.add(CI_FUNC).cast::<*mut u8>()
    }
}

/// Where index `idx` is, as `index2value` finds it.
///
/// # Safety
///
/// `l` is a live thread running a C function; `idx` acceptable.
#[inline(always)]
unsafe fn slot(l: *mut lua_State, idx: c_int) -> Slot {
    // SAFETY: see above; the pointers are the stack's and the running
    // closure's, in bounds for an acceptable index.
    unsafe {
        if idx > 0 {
            let o = func(l).add(idx as usize * SLOT);
            if o >= *top_at(l) {
                Slot::Absent
            } else {
                Slot::At(o)
            }
        } else if idx < 0 && idx > ffi::LUA_REGISTRYINDEX {
            Slot::At((*top_at(l)).sub(idx.unsigned_abs() as usize * SLOT))
        } else if idx < ffi::LUA_REGISTRYINDEX {
            let n = (ffi::LUA_REGISTRYINDEX - idx) as usize;
            let f = func(l);
            if *f.add(TAG) != CCLOSURE {
                return Slot::Slow;
            }
            let closure = *f.cast::<*mut u8>();
            if n <= usize::from(*closure.add(CCL_NUPVALUES)) {
                Slot::At(closure.add(CCL_UPVALUE + (n - 1) * SLOT))
            } else {
                Slot::Absent
            }
        } else {
            Slot::Slow
        }
    }
}

/// The stack slot of index `idx` (from either end), `None` for a
/// pseudo-index or 0.
///
/// # Safety
///
/// `l` is a live thread running a C function; `idx` acceptable.
#[inline(always)]
unsafe fn stack_slot(l: *mut lua_State, idx: c_int) -> Option<*mut u8> {
    // SAFETY: see above.
    unsafe {
        if idx > 0 {
            Some(func(l).add(idx as usize * SLOT))
        } else if idx < 0 && idx > ffi::LUA_REGISTRYINDEX {
            Some((*top_at(l)).sub(idx.unsigned_abs() as usize * SLOT))
        } else {
            None
        }
    }
}

/// Copies the value and tag of slot `from` to slot `to` (a stack slot,
/// or a table's array slot for a non-collectable value: no barrier).
///
/// # Safety
///
/// Both are live slots.
#[inline(always)]
unsafe fn copy_slot(from: *const u8, to: *mut u8) {
    // SAFETY: see above.
    unsafe {
        to.cast::<u64>()
            .write_unaligned(from.cast::<u64>().read_unaligned());
        *to.add(TAG) = *from.add(TAG);
    }
}

/// Pushes a copy of slot `from` (its value and tag; a stack slot needs
/// no barrier).
///
/// # Safety
///
/// `from` is a live slot other than the top; `l` has room for one more
/// value.
#[inline(always)]
unsafe fn push_copy(l: *mut lua_State, from: *const u8) {
    // SAFETY: see above.
    unsafe {
        let top = *top_at(l);
        copy_slot(from, top);
        *top_at(l) = top.add(SLOT);
    }
}

// The C functions every accessor falls back to.
unsafe extern "C-unwind" {
    fn warren_checkstack(l: *mut lua_State, n: c_int);
    fn warren_tagged(l: *mut lua_State, idx: c_int, mtidx: c_int) -> c_int;
    fn warren_setn(l: *mut lua_State, idx: c_int, n: c_int);
    fn warren_setintn(l: *mut lua_State, idx: c_int, n: c_int, v: ffi::lua_Integer);
    fn warren_addintn(
        l: *mut lua_State,
        idx: c_int,
        n: c_int,
        d: ffi::lua_Integer,
    ) -> ffi::lua_Integer;
    fn warren_getn(l: *mut lua_State, idx: c_int, n: c_int) -> c_int;
    fn warren_truthyn(l: *mut lua_State, idx: c_int, n: c_int) -> c_int;
    fn warren_intn(l: *mut lua_State, idx: c_int, n: c_int) -> ffi::lua_Integer;
}

mod field;
mod read;
mod stack;

pub(crate) use field::*;
pub(crate) use read::*;
pub(crate) use stack::*;

#[cfg(test)]
mod tests;

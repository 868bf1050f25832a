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
//! Guarantees: each has its C counterpart's semantics (Lua's release
//! build, where `api_check` is off), tested against it for every kind of
//! index (`tests` below); a push needs the stack room its C counterpart
//! needs, which the machine's callers reserve as before; nothing here
//! allocates, raises, or runs a metamethod.

use std::ffi::{c_int, c_void};

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

/// `lua_replace`: the value on top moved to stack index `idx`; an upvalue
/// or the registry (which need a write barrier) by Lua.
///
/// # Safety
///
/// As `lua_replace`.
#[inline(always)]
pub(crate) unsafe fn replace(l: *mut lua_State, idx: c_int) {
    // SAFETY: see above; a stack slot needs no barrier.
    unsafe {
        match stack_slot(l, idx) {
            Some(to) => {
                let top = (*top_at(l)).sub(SLOT);
                copy_slot(top, to);
                *top_at(l) = top;
            }
            None => ffi::lua_replace(l, idx),
        }
    }
}

/// `lua_insert`: the value on top moved to stack index `idx`, the values
/// from there up shifted one slot.
///
/// # Safety
///
/// As `lua_insert`.
#[inline(always)]
pub(crate) unsafe fn insert(l: *mut lua_State, idx: c_int) {
    // SAFETY: see above; every slot moved is below the top.
    unsafe {
        let Some(p) = stack_slot(l, idx) else {
            return ffi::lua_insert(l, idx);
        };
        let last = (*top_at(l)).sub(SLOT);
        let (value, tag) = (last.cast::<u64>().read_unaligned(), *last.add(TAG));
        let mut at = last;
        while at > p {
            copy_slot(at.sub(SLOT), at);
            at = at.sub(SLOT);
        }
        p.cast::<u64>().write_unaligned(value);
        *p.add(TAG) = tag;
    }
}

/// `lua_remove`: the value at stack index `idx` removed, the values above
/// it shifted down one slot.
///
/// # Safety
///
/// As `lua_remove`.
#[inline(always)]
pub(crate) unsafe fn remove(l: *mut lua_State, idx: c_int) {
    // SAFETY: see above; every slot moved is below the top.
    unsafe {
        let Some(mut at) = stack_slot(l, idx) else {
            return ffi::lua_remove(l, idx);
        };
        let top = (*top_at(l)).sub(SLOT);
        while at < top {
            copy_slot(at.add(SLOT), at);
            at = at.add(SLOT);
        }
        *top_at(l) = top;
    }
}

/// `lua_absindex`.
///
/// # Safety
///
/// As `lua_absindex`.
#[inline(always)]
pub(crate) unsafe fn absindex(l: *mut lua_State, idx: c_int) -> c_int {
    // SAFETY: see above.
    unsafe {
        if idx > 0 || idx <= ffi::LUA_REGISTRYINDEX {
            idx
        } else {
            gettop(l) + idx + 1
        }
    }
}

/// `lua_rawgeti`: an index in the table's array part (below `alimit`)
/// read in place; any other by Lua.
///
/// # Safety
///
/// As `lua_rawgeti`.
#[inline(always)]
pub(crate) unsafe fn rawgeti(l: *mut lua_State, idx: c_int, n: ffi::lua_Integer) -> c_int {
    // SAFETY: see above; the slot is within the array part.
    unsafe {
        if let Slot::At(o) = slot(l, idx)
            && *o.add(TAG) == TABLE
        {
            let t = o.cast::<*const u8>().read_unaligned();
            let limit = u64::from(t.add(T_ALIMIT).cast::<u32>().read_unaligned());
            let at = (n as u64).wrapping_sub(1);
            if at < limit {
                let array = t.add(T_ARRAY).cast::<*const u8>().read_unaligned();
                let v = array.add(at as usize * SLOT);
                let top = *top_at(l);
                if *v.add(TAG) & 0x0f == VNIL {
                    *top.add(TAG) = VNIL;
                } else {
                    copy_slot(v, top);
                }
                *top_at(l) = top.add(SLOT);
                return c_int::from(*top.add(TAG) & 0x0f);
            }
        }
        ffi::lua_rawgeti(l, idx, n)
    }
}

/// `lua_gettop`.
///
/// # Safety
///
/// As `lua_gettop`.
#[inline(always)]
pub(crate) unsafe fn gettop(l: *mut lua_State) -> c_int {
    // SAFETY: see above; both pointers are into the same stack.
    unsafe {
        let used = (*top_at(l)).offset_from(func(l).add(SLOT));
        c_int::try_from(used / SLOT as isize).unwrap_or(0)
    }
}

/// `lua_settop`: in place when it cuts (or keeps) the stack and closes
/// nothing, as the vendored Lua's `warren_settop`; by Lua otherwise.
///
/// # Safety
///
/// As `lua_settop`.
#[inline(always)]
pub(crate) unsafe fn settop(l: *mut lua_State, idx: c_int) {
    // SAFETY: see above; the new top is within the running call's slots.
    unsafe {
        let top = *top_at(l);
        let new = if idx >= 0 {
            func(l).add((idx as usize + 1) * SLOT)
        } else {
            top.sub((idx + 1).unsigned_abs() as usize * SLOT)
        };
        let tbc = *l.cast::<u8>().add(TBCLIST).cast::<*mut u8>();
        if new <= top && tbc < new {
            *top_at(l) = new;
            return;
        }
        ffi::lua_settop(l, idx);
    }
}

/// `lua_pop`.
///
/// # Safety
///
/// As `lua_pop`.
#[inline(always)]
pub(crate) unsafe fn pop(l: *mut lua_State, n: c_int) {
    // SAFETY: see above.
    unsafe { settop(l, -n - 1) }
}

/// Pushes a slot with `tag` (its value written by `value`, if any).
///
/// # Safety
///
/// `l` has room for one more value.
#[inline(always)]
unsafe fn push_tag(l: *mut lua_State, tag: u8) -> *mut u8 {
    // SAFETY: see above.
    unsafe {
        let top = *top_at(l);
        *top.add(TAG) = tag;
        *top_at(l) = top.add(SLOT);
        top
    }
}

/// `lua_pushnil`.
///
/// # Safety
///
/// As `lua_pushnil`.
#[inline(always)]
pub(crate) unsafe fn pushnil(l: *mut lua_State) {
    // SAFETY: see above.
    unsafe {
        push_tag(l, VNIL);
    }
}

/// `lua_pushboolean`.
///
/// # Safety
///
/// As `lua_pushboolean`.
#[inline(always)]
pub(crate) unsafe fn pushboolean(l: *mut lua_State, b: c_int) {
    // SAFETY: see above.
    unsafe {
        push_tag(l, if b != 0 { VTRUE } else { VFALSE });
    }
}

/// `lua_pushinteger`.
///
/// # Safety
///
/// As `lua_pushinteger`.
#[inline(always)]
pub(crate) unsafe fn pushinteger(l: *mut lua_State, n: ffi::lua_Integer) {
    // SAFETY: see above; an integer's value is the slot's first 8 bytes.
    unsafe {
        let at = push_tag(l, VNUMINT);
        at.cast::<ffi::lua_Integer>().write_unaligned(n);
    }
}

/// `lua_pushvalue`: the value and its tag copied (a stack slot needs no
/// barrier).
///
/// # Safety
///
/// As `lua_pushvalue`.
#[inline(always)]
pub(crate) unsafe fn pushvalue(l: *mut lua_State, idx: c_int) {
    // SAFETY: see above; source and destination are distinct slots (the
    // source is below the top or an upvalue).
    unsafe {
        match slot(l, idx) {
            Slot::At(o) => {
                let top = *top_at(l);
                top.cast::<u64>()
                    .write_unaligned(o.cast::<u64>().read_unaligned());
                *top.add(TAG) = *o.add(TAG);
                *top_at(l) = top.add(SLOT);
            }
            Slot::Absent => pushnil(l),
            Slot::Slow => ffi::lua_pushvalue(l, idx),
        }
    }
}

/// `lua_type`.
///
/// # Safety
///
/// As `lua_type`.
#[inline(always)]
pub(crate) unsafe fn type_of(l: *mut lua_State, idx: c_int) -> c_int {
    // SAFETY: see above.
    unsafe {
        match slot(l, idx) {
            Slot::At(o) => c_int::from(*o.add(TAG) & 0x0f),
            Slot::Absent => ffi::LUA_TNONE,
            Slot::Slow => ffi::lua_type(l, idx),
        }
    }
}

/// `lua_toboolean`.
///
/// # Safety
///
/// As `lua_toboolean`.
#[inline(always)]
pub(crate) unsafe fn toboolean(l: *mut lua_State, idx: c_int) -> c_int {
    // SAFETY: see above.
    unsafe {
        match slot(l, idx) {
            Slot::At(o) => {
                let tag = *o.add(TAG);
                c_int::from(tag != VFALSE && tag & 0x0f != VNIL)
            }
            Slot::Absent => 0,
            Slot::Slow => ffi::lua_toboolean(l, idx),
        }
    }
}

/// The memory of the full userdata `u` (Lua's `getudatamem`).
///
/// # Safety
///
/// `u` is a live full userdata.
#[inline(always)]
unsafe fn udata_memory(u: *mut u8) -> *mut c_void {
    // SAFETY: see above; the offset is within the userdata's block.
    unsafe {
        let nuv = usize::from(u.add(U_NUVALUE).cast::<u16>().read_unaligned());
        let at = if nuv == 0 {
            U0_MEMORY
        } else {
            U_UV + nuv * SLOT
        };
        u.add(at).cast()
    }
}

/// `lua_touserdata`.
///
/// # Safety
///
/// As `lua_touserdata`.
#[inline(always)]
pub(crate) unsafe fn touserdata(l: *mut lua_State, idx: c_int) -> *mut c_void {
    // SAFETY: see above; a light userdata's value is its pointer, a full
    // one's its block.
    unsafe {
        match slot(l, idx) {
            Slot::At(o) => match *o.add(TAG) {
                VLIGHTUSERDATA => o.cast::<*mut c_void>().read_unaligned(),
                USERDATA => udata_memory(o.cast::<*mut u8>().read_unaligned()),
                _ => std::ptr::null_mut(),
            },
            Slot::Absent => std::ptr::null_mut(),
            Slot::Slow => ffi::lua_touserdata(l, idx),
        }
    }
}

/// `lua_getupvalue(l, funcidx, 1)` for a Lua function: pushes the value
/// of its first upvalue. Anything else, by Lua (which pushes nothing
/// when there is no such upvalue).
///
/// # Safety
///
/// As `lua_getupvalue`.
#[inline(always)]
pub(crate) unsafe fn push_upvalue1(l: *mut lua_State, funcidx: c_int) {
    // SAFETY: see above; a Lua function with upvalues has at least one
    // `UpVal` (its prototype says how many; the machine's `cur` was
    // checked to have one when the machine was built), whose value
    // pointer is live.
    unsafe {
        if let Slot::At(o) = slot(l, funcidx)
            && *o.add(TAG) == LUA_CLOSURE
        {
            let closure = o.cast::<*const u8>().read_unaligned();
            let proto = closure.add(LCL_PROTO).cast::<*const u8>().read_unaligned();
            if proto
                .add(PROTO_SIZEUPVALUES)
                .cast::<c_int>()
                .read_unaligned()
                >= 1
            {
                let upval = closure.add(LCL_UPVALS).cast::<*const u8>().read_unaligned();
                let v = upval.add(UPVAL_V).cast::<*const u8>().read_unaligned();
                let top = *top_at(l);
                top.cast::<u64>()
                    .write_unaligned(v.cast::<u64>().read_unaligned());
                *top.add(TAG) = *v.add(TAG);
                *top_at(l) = top.add(SLOT);
                return;
            }
        }
        ffi::lua_getupvalue(l, funcidx, 1);
    }
}

/// `lua_topointer`.
///
/// # Safety
///
/// As `lua_topointer`.
#[inline(always)]
pub(crate) unsafe fn topointer(l: *mut lua_State, idx: c_int) -> *const c_void {
    // SAFETY: see above; a light C function's, a light userdata's and a
    // collectable value's first 8 bytes are the pointer Lua answers.
    unsafe {
        match slot(l, idx) {
            Slot::At(o) => match *o.add(TAG) {
                USERDATA => udata_memory(o.cast::<*mut u8>().read_unaligned()),
                tag if tag == LIGHT_C_FUNCTION
                    || tag == VLIGHTUSERDATA
                    || tag & COLLECTABLE != 0 =>
                {
                    o.cast::<*const c_void>().read_unaligned()
                }
                _ => std::ptr::null(),
            },
            Slot::Absent => std::ptr::null(),
            Slot::Slow => ffi::lua_topointer(l, idx),
        }
    }
}

/// `lua_rawequal`: values of one tag compared in place (a long string by
/// Lua); an integer and a float by Lua; any other two tags differ.
///
/// # Safety
///
/// As `lua_rawequal`.
#[inline(always)]
pub(crate) unsafe fn rawequal(l: *mut lua_State, a: c_int, b: c_int) -> c_int {
    // SAFETY: see above.
    unsafe {
        let (Slot::At(x), Slot::At(y)) = (slot(l, a), slot(l, b)) else {
            return ffi::lua_rawequal(l, a, b);
        };
        let (tx, ty) = (*x.add(TAG), *y.add(TAG));
        let same = if tx != ty {
            if tx & 0x0f == 3 && ty & 0x0f == 3 {
                return ffi::lua_rawequal(l, a, b);
            }
            false
        } else {
            match tx {
                FLOAT => x.cast::<f64>().read_unaligned() == y.cast::<f64>().read_unaligned(),
                // A long string: its bytes.
                0x54 => return ffi::lua_rawequal(l, a, b),
                tag if tag & 0x0f == VNIL || tag == VFALSE || tag == VTRUE => true,
                _ => x.cast::<u64>().read_unaligned() == y.cast::<u64>().read_unaligned(),
            }
        };
        c_int::from(same)
    }
}

/// The vendored Lua's `warren_tagged(l, idx, mtidx)`: when the value at
/// `idx` is a full userdata with the metatable at `mtidx` and a user
/// value, pushes its first user value and answers 1; else 0.
///
/// # Safety
///
/// As `warren_tagged`.
#[inline(always)]
pub(crate) unsafe fn tagged(l: *mut lua_State, idx: c_int, mtidx: c_int) -> c_int {
    // SAFETY: see above; the user value is copied to the top as
    // `pushvalue` copies.
    unsafe {
        let (Slot::At(o), Slot::At(mt)) = (slot(l, idx), slot(l, mtidx)) else {
            return warren_tagged(l, idx, mtidx);
        };
        if *o.add(TAG) != USERDATA || *mt.add(TAG) != TABLE {
            return 0;
        }
        let u = o.cast::<*mut u8>().read_unaligned();
        let table = mt.cast::<*mut u8>().read_unaligned();
        if u.add(U_METATABLE).cast::<*mut u8>().read_unaligned() != table
            || u.add(U_NUVALUE).cast::<u16>().read_unaligned() < 1
        {
            return 0;
        }
        let v = u.add(U_UV);
        let top = *top_at(l);
        top.cast::<u64>()
            .write_unaligned(v.cast::<u64>().read_unaligned());
        *top.add(TAG) = *v.add(TAG);
        *top_at(l) = top.add(SLOT);
        1
    }
}

/// `lua_checkstack`: answers 1 in place when the stack has the room
/// already (the running call's top raised to it), else asks Lua.
///
/// # Safety
///
/// As `lua_checkstack`.
#[inline(always)]
pub(crate) unsafe fn has_room(l: *mut lua_State, n: c_int) -> c_int {
    // SAFETY: as `checkstack`.
    unsafe {
        if room_in_place(l, n) {
            1
        } else {
            ffi::lua_checkstack(l, n)
        }
    }
}

/// `lua_tothread`: a thread's state read in place; not one, null.
///
/// # Safety
///
/// As `lua_tothread`.
#[inline(always)]
pub(crate) unsafe fn tothread(l: *mut lua_State, idx: c_int) -> *mut lua_State {
    // SAFETY: see above; a thread's value is its state.
    unsafe {
        match slot(l, idx) {
            Slot::At(o) if *o.add(TAG) == THREAD => o.cast::<*mut lua_State>().read_unaligned(),
            Slot::At(_) | Slot::Absent => std::ptr::null_mut(),
            Slot::Slow => ffi::lua_tothread(l, idx),
        }
    }
}

/// `lua_tointegerx` with no out-flag: an integer read in place; any other
/// value by Lua.
///
/// # Safety
///
/// As `lua_tointegerx`.
#[inline(always)]
pub(crate) unsafe fn tointeger(l: *mut lua_State, idx: c_int) -> ffi::lua_Integer {
    // SAFETY: see above; an integer's value is the slot's first 8 bytes.
    unsafe {
        if let Slot::At(o) = slot(l, idx)
            && *o.add(TAG) == VNUMINT
        {
            return o.cast::<ffi::lua_Integer>().read_unaligned();
        }
        ffi::lua_tointegerx(l, idx, std::ptr::null_mut())
    }
}

/// The vendored Lua's `warren_checkstack(l, n)` (room for `n` more values
/// in the running call), in place when the stack has that room already.
///
/// # Safety
///
/// As `warren_checkstack`: may raise when the stack must grow and cannot.
#[inline(always)]
pub(crate) unsafe fn checkstack(l: *mut lua_State, n: c_int) {
    // SAFETY: see above; `stack_last` and the call's top are pointers
    // into the stack.
    unsafe {
        if !room_in_place(l, n) {
            warren_checkstack(l, n);
        }
    }
}

/// Whether `l`'s stack has room for `n` more values without growing:
/// then the running call's top is raised to cover them (as Lua does).
///
/// # Safety
///
/// `l` is a live thread; `n >= 0`.
#[inline(always)]
unsafe fn room_in_place(l: *mut lua_State, n: c_int) -> bool {
    // SAFETY: `stack_last` and the call's top are pointers into the
    // stack.
    unsafe {
        let top = *top_at(l);
        let last = *l.cast::<u8>().add(STACK_LAST).cast::<*mut u8>();
        let Ok(n) = usize::try_from(n) else {
            return false;
        };
        let room = n.saturating_mul(SLOT);
        if (last as usize).saturating_sub(top as usize) <= room {
            return false;
        }
        let ci = *l.cast::<u8>().add(CI).cast::<*mut u8>();
        let ci_top = ci.add(CI_TOP).cast::<*mut u8>();
        let want = top.add(room);
        if *ci_top < want {
            *ci_top = want;
        }
        true
    }
}

unsafe extern "C-unwind" {
    fn warren_checkstack(l: *mut lua_State, n: c_int);
    fn warren_tagged(l: *mut lua_State, idx: c_int, mtidx: c_int) -> c_int;
}

/// The value of field `n` (the machine's key number, see `raw::Key`) of
/// the table at `idx`, as the vendored Lua's `warren_getn` finds it: the
/// key's interned name, the node its hash names, then the node's chain.
/// `Err(())` when the index is one [`slot`] leaves to Lua.
///
/// # Safety
///
/// `l` is a live thread running a C function; `idx` holds a table.
#[inline(always)]
unsafe fn field(l: *mut lua_State, idx: c_int, n: c_int) -> Result<Option<*const u8>, ()> {
    // SAFETY: as `find`.
    unsafe { find(l, idx, n).map(|found| found.map(|(node, _)| node.cast_const())) }
}

/// [`field`], with the table: its node and the table when found.
///
/// # Safety
///
/// As [`field`].
#[inline(always)]
unsafe fn find(l: *mut lua_State, idx: c_int, n: c_int) -> Result<Option<(*mut u8, *mut u8)>, ()> {
    // SAFETY: see above; the key and the nodes are the state's own.
    unsafe {
        let Slot::At(o) = slot(l, idx) else {
            return Err(());
        };
        let Ok(n) = usize::try_from(n) else {
            return Ok(None);
        };
        if n >= NKEYS {
            return Ok(None);
        }
        let g = *l.cast::<u8>().add(L_G).cast::<*const u8>();
        let key = *g.add(WARREN_KEYS + n * 8).cast::<*const u8>();
        if key.is_null() {
            return Ok(None);
        }
        let t = o.cast::<*mut u8>().read_unaligned();
        let mask = (1usize << *t.add(T_LSIZENODE)) - 1;
        let hash = key.add(TS_HASH).cast::<u32>().read_unaligned() as usize;
        let mut nd = (*t.add(T_NODE).cast::<*mut u8>()).add((hash & mask) * NODE);
        loop {
            if *nd.add(N_KEY_TAG) == SHORT_STRING
                && nd.add(N_KEY).cast::<*const u8>().read_unaligned() == key
            {
                return Ok(Some((nd, t)));
            }
            let next = nd.add(N_NEXT).cast::<i32>().read_unaligned();
            if next == 0 {
                return Ok(None);
            }
            nd = nd.offset(next as isize * NODE as isize);
        }
    }
}

/// `warren_getn`: pushes field `n` of the table at `idx` (nil when absent
/// or empty) and answers its type.
///
/// # Safety
///
/// As `warren_getn`.
#[inline(always)]
pub(crate) unsafe fn getn(l: *mut lua_State, idx: c_int, n: c_int) -> c_int {
    // SAFETY: see above; the value is copied to the top as `pushvalue`.
    unsafe {
        match field(l, idx, n) {
            Ok(Some(v)) if *v.add(TAG) & 0x0f != VNIL => {
                let top = *top_at(l);
                top.cast::<u64>()
                    .write_unaligned(v.cast::<u64>().read_unaligned());
                *top.add(TAG) = *v.add(TAG);
                *top_at(l) = top.add(SLOT);
                c_int::from(*v.add(TAG) & 0x0f)
            }
            Ok(_) => {
                pushnil(l);
                ffi::LUA_TNIL
            }
            Err(()) => warren_getn(l, idx, n),
        }
    }
}

/// `warren_truthyn`: whether field `n` of the table at `idx` is neither
/// nil nor false.
///
/// # Safety
///
/// As `warren_truthyn`.
#[inline(always)]
pub(crate) unsafe fn truthyn(l: *mut lua_State, idx: c_int, n: c_int) -> bool {
    // SAFETY: see above.
    unsafe {
        match field(l, idx, n) {
            Ok(Some(v)) => {
                let tag = *v.add(TAG);
                tag != VFALSE && tag & 0x0f != VNIL
            }
            Ok(None) => false,
            Err(()) => warren_truthyn(l, idx, n) != 0,
        }
    }
}

/// `warren_intn`: field `n` of the table at `idx` as an integer (0 when
/// it is not one).
///
/// # Safety
///
/// As `warren_intn`.
#[inline(always)]
pub(crate) unsafe fn intn(l: *mut lua_State, idx: c_int, n: c_int) -> ffi::lua_Integer {
    // SAFETY: see above.
    unsafe {
        match field(l, idx, n) {
            Ok(Some(v)) if *v.add(TAG) == VNUMINT => v.cast::<ffi::lua_Integer>().read_unaligned(),
            Ok(_) => 0,
            Err(()) => warren_intn(l, idx, n),
        }
    }
}

/// Field `n` of the table at `idx` when it exists and the table may be
/// written (a read-only table's write raises, which Lua's function does):
/// its node, after the table's metamethod cache is cleared as Lua clears
/// it on a write.
///
/// # Safety
///
/// As [`field`].
#[inline(always)]
unsafe fn writable(l: *mut lua_State, idx: c_int, n: c_int) -> Option<*mut u8> {
    // SAFETY: see above; the flags byte is the table's own.
    unsafe {
        let (node, t) = find(l, idx, n).ok()??;
        let flags = t.add(T_FLAGS);
        if *flags & READ_ONLY != 0 {
            return None;
        }
        *flags &= !TM_CACHE;
        Some(node)
    }
}

/// `warren_setn`: field `n` of the table at `idx` set to the value on
/// top, popped. In place when the field exists and the value is not
/// collectable (no write barrier to keep); by Lua otherwise.
///
/// # Safety
///
/// As `warren_setn`.
#[inline(always)]
pub(crate) unsafe fn setn(l: *mut lua_State, idx: c_int, n: c_int) {
    // SAFETY: see above; the node's value is written as `setobj2t`.
    unsafe {
        let v = (*top_at(l)).sub(SLOT);
        if *v.add(TAG) & COLLECTABLE == 0
            && let Some(node) = writable(l, idx, n)
        {
            node.cast::<u64>()
                .write_unaligned(v.cast::<u64>().read_unaligned());
            *node.add(TAG) = *v.add(TAG);
            *top_at(l) = v;
            return;
        }
        warren_setn(l, idx, n);
    }
}

/// `warren_setintn`: field `n` of the table at `idx` set to `v`.
///
/// # Safety
///
/// As `warren_setintn`.
#[inline(always)]
pub(crate) unsafe fn setintn(l: *mut lua_State, idx: c_int, n: c_int, v: ffi::lua_Integer) {
    // SAFETY: see above; an integer needs no barrier.
    unsafe {
        if let Some(node) = writable(l, idx, n) {
            node.cast::<ffi::lua_Integer>().write_unaligned(v);
            *node.add(TAG) = VNUMINT;
            return;
        }
        warren_setintn(l, idx, n, v);
    }
}

/// `warren_addintn`: field `n` of the table at `idx` (0 when not an
/// integer) plus `d`, stored; the new value.
///
/// # Safety
///
/// As `warren_addintn`.
#[inline(always)]
pub(crate) unsafe fn addintn(
    l: *mut lua_State,
    idx: c_int,
    n: c_int,
    d: ffi::lua_Integer,
) -> ffi::lua_Integer {
    // SAFETY: see above; an integer needs no barrier.
    unsafe {
        if let Some(node) = writable(l, idx, n) {
            let old = if *node.add(TAG) == VNUMINT {
                node.cast::<ffi::lua_Integer>().read_unaligned()
            } else {
                0
            };
            let v = old.wrapping_add(d);
            node.cast::<ffi::lua_Integer>().write_unaligned(v);
            *node.add(TAG) = VNUMINT;
            return v;
        }
        warren_addintn(l, idx, n, d)
    }
}

unsafe extern "C-unwind" {
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

#[cfg(test)]
mod tests;

//! Reads of a value: its type, truth, pointer, thread, integer and
//! equality, a userdata's memory and tagged user value, a Lua function's
//! first upvalue.

use std::ffi::{c_int, c_void};

use mlua::ffi::{self, lua_State};

use super::*;

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
                push_copy(l, upval.add(UPVAL_V).cast::<*const u8>().read_unaligned());
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
        push_copy(l, u.add(U_UV));
        1
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

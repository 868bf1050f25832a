//! A table's fields: the machine's keyed reads and writes of the kernel's
//! records (by the interned names `raw::Key` registers) and an array slot.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

use super::*;

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
                if *v.add(TAG) & 0x0f == VNIL {
                    pushnil(l);
                    return ffi::LUA_TNIL;
                }
                push_copy(l, v);
                return c_int::from(*v.add(TAG) & 0x0f);
            }
        }
        ffi::lua_rawgeti(l, idx, n)
    }
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
                push_copy(l, v);
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
            copy_slot(v, node);
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

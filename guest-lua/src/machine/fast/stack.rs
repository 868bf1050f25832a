//! The stack: its top, pushes, copies and moves, and the room check.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

use super::*;

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
            Slot::At(o) => push_copy(l, o),
            Slot::Absent => pushnil(l),
            Slot::Slow => ffi::lua_pushvalue(l, idx),
        }
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

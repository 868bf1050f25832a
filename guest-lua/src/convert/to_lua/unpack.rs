//! MessagePack into fresh Lua values, straight from the bytes: a packed
//! payload (a component's, carried as it sent it) becomes the Lua value
//! its decoded `Value` becomes through [`push`](super::push), with no
//! tree in between.
//!
//! Guarantees: the same value as `push` of `msgpack::decode(bytes)`:
//! arrays as tables keyed `1..n`, maps with keys Lua cannot hold (nil,
//! NaN) skipped, and a payload that may hold an error object (its key's
//! bytes appear in it) decoded and pushed by `push`, which revives it.
//! Tables are presized from a count clamped to the bytes left (each item
//! takes at least one), so no count is trusted past the data present;
//! the stack is grown before each level and the depth bounded as `push`
//! bounds it; bytes that do not read raise a Lua error inside the
//! protected call (packed payloads are the runtime encoder's bytes, so
//! this is defence, not a path); the Rust frames hold nothing to drop.

use std::ffi::c_int;

use crate::machine::fast;
use mlua::ffi;
use warren_core::msgpack::{self, Item, Reader};

use super::{grow, push_protected, size};
use crate::convert::ERROR_KEY;

/// Pushes the value `bytes` encode, error objects revived with the table
/// at `error_mt` (an absolute index; anything else revives none): true
/// with the value on top; false, with nothing pushed, when building it
/// raised (out of memory) or the bytes did not read. A lone scalar is
/// pushed without a protected call.
///
/// # Safety
///
/// `l` is a running state with room for three values.
pub(crate) unsafe fn push_packed(l: *mut ffi::lua_State, bytes: &[u8], error_mt: c_int) -> bool {
    let mut r = Reader::new(bytes);
    if let Some(item) = r.next_item().filter(|_| r.remaining() == 0) {
        // SAFETY: one slot is free (see above); a scalar's push does not
        // allocate, so it cannot raise.
        if unsafe { push_scalar(l, item) } {
            return true;
        }
    }
    // SAFETY: as `push_protected`; `unpack_entry` reads `bytes` through
    // the light userdata only while this frame, which borrows them, waits
    // in `lua_pcall`.
    unsafe {
        if fast::type_of(l, error_mt) == ffi::LUA_TTABLE && may_hold_error(bytes) {
            return msgpack::decode(bytes).is_ok_and(|v| push_protected(l, &v, error_mt));
        }
        ffi::lua_pushcfunction(l, unpack_entry);
        fast::pushvalue(l, error_mt);
        ffi::lua_pushlightuserdata(l, std::ptr::from_ref(&bytes).cast_mut().cast());
        if ffi::lua_pcall(l, 2, 1, 0) == ffi::LUA_OK {
            true
        } else {
            fast::pop(l, 1);
            false
        }
    }
}

/// Whether the bytes may hold a map tagged as an error object: the key
/// as the runtime's encoder writes it (a `fixstr`) appears in them.
fn may_hold_error(bytes: &[u8]) -> bool {
    let key = ERROR_KEY.as_bytes();
    bytes.windows(key.len() + 1).any(|w| {
        w.split_first()
            .is_some_and(|(head, rest)| usize::from(*head) == 0xa0 + key.len() && rest == key)
    })
}

/// The body of [`push_packed`]'s protected call: the error metatable at 1
/// (not used: payloads that may hold error objects take `push`), the
/// address of the byte slice at 2.
///
/// # Safety
///
/// Called only by `push_packed`'s `lua_pcall`.
unsafe extern "C-unwind" fn unpack_entry(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: index 2 is the address of a slice `push_packed` borrows for
    // the whole call; a C function has 20 free slots, and `unpack` grows
    // the stack for every level.
    unsafe {
        let bytes = *fast::touserdata(l, 2).cast::<&[u8]>();
        fast::settop(l, 1);
        let mut r = Reader::new(bytes);
        unpack(l, &mut r, 0);
        if r.remaining() != 0 {
            malformed(l);
        }
        1
    }
}

/// Pushes the value `r` reads next.
///
/// # Safety
///
/// Runs in a protected call (it may raise), with one free stack slot.
unsafe fn unpack(l: *mut ffi::lua_State, r: &mut Reader<'_>, depth: usize) {
    // SAFETY: every push is preceded by `grow` for its level; the pushes
    // and raw sets are the C API's own, on indices this function made.
    unsafe {
        let Some(item) = r.next_item() else {
            malformed(l)
        };
        match item {
            Item::Str(b) | Item::Bin(b) => {
                ffi::lua_pushlstring(l, b.as_ptr().cast(), b.len());
            }
            Item::Array(n) => {
                grow(l, depth);
                ffi::lua_createtable(l, hint(n, r), 0);
                for i in 1..=i64::from(n) {
                    unpack(l, r, depth + 1);
                    ffi::lua_rawseti(l, -2, i);
                }
            }
            Item::Map(n) => {
                grow(l, depth);
                ffi::lua_createtable(l, 0, hint(n, r));
                for _ in 0..n {
                    unpack(l, r, depth + 1);
                    unpack(l, r, depth + 1);
                    if holdable_key(l) {
                        ffi::lua_rawset(l, -3);
                    } else {
                        fast::pop(l, 2);
                    }
                }
            }
            scalar => {
                push_scalar(l, scalar);
            }
        }
    }
}

/// Pushes a nil, boolean or number item (true); anything else pushes
/// nothing (false).
///
/// # Safety
///
/// One free stack slot.
unsafe fn push_scalar(l: *mut ffi::lua_State, item: Item<'_>) -> bool {
    // SAFETY: see above; none of these pushes allocates.
    unsafe {
        match item {
            Item::Nil => fast::pushnil(l),
            Item::Bool(b) => fast::pushboolean(l, c_int::from(b)),
            Item::Int(i) => fast::pushinteger(l, i),
            Item::Float(f) => ffi::lua_pushnumber(l, f),
            Item::Str(_) | Item::Bin(_) | Item::Array(_) | Item::Map(_) => return false,
        }
    }
    true
}

/// Whether the key below the value on top is one a table can hold (not
/// nil, not NaN).
///
/// # Safety
///
/// Two values are on the stack.
unsafe fn holdable_key(l: *mut ffi::lua_State) -> bool {
    // SAFETY: index -2 exists (see above).
    unsafe {
        match fast::type_of(l, -2) {
            ffi::LUA_TNIL => false,
            ffi::LUA_TNUMBER => {
                ffi::lua_isinteger(l, -2) != 0 || !ffi::lua_tonumber(l, -2).is_nan()
            }
            _ => true,
        }
    }
}

/// A table size hint: the count, but never more than the bytes left.
fn hint(n: u32, r: &Reader<'_>) -> c_int {
    size(usize::try_from(n).unwrap_or(usize::MAX).min(r.remaining()))
}

/// Raises the error for bytes that do not read.
///
/// # Safety
///
/// In a protected call.
unsafe fn malformed(l: *mut ffi::lua_State) -> ! {
    // SAFETY: see above.
    unsafe {
        ffi::luaL_error(l, c"a packed payload that does not read".as_ptr());
    }
    unreachable!("luaL_error does not return")
}

#[cfg(test)]
mod tests;

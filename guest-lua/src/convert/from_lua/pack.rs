//! Lua → MessagePack straight from the stack, for a payload whose
//! receiver reads MessagePack (a component): the bytes
//! `warren_core::msgpack::encode` writes for the value the walk above
//! would build, counted and refused as that walk counts and refuses
//! (the same budget, the same errors at the same paths, in the same
//! order), with no `Value` tree in between.
//!
//! How: a scalar is written as it is read. A table is entered as the walk
//! enters one (cycle, depth, runtime objects, its count), then written in
//! one traversal: as an array when it has a border (`#t > 0`), its header
//! counting the border's items, while the keys come as `1, 2, ...`; as a
//! map otherwise, its header's count written when the traversal ends. A
//! table that is not what its first traversal assumed (a border with
//! other keys, or keys `1..=#t` visited out of order) is written again
//! from its start the other way, the walk's counts put back as they were
//! before it; an array visited out of order and an error object are built
//! as a `Value` by the walk and encoded.
//!
//! Guarantees, beyond the walk's: a table is traversed at most three times
//! (raw `lua_next` on a table nothing changes meanwhile: no allocation in
//! the VM, nothing raised); the output grows only with what was counted
//! against the budget. A map of more than 15 entries moves its own bytes
//! once to widen its header (at most its size, once per enclosing level:
//! nesting is bounded by `MAX_DEPTH`).

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};
use warren_core::msgpack as w;

use super::{Failure, Raw, Walk, index_key, key_value, segment, string, type_name};

/// Encodes the value at absolute index `idx` into `out` as `walk` counts
/// it, the table of field names being at absolute index `keys`
/// (`push_keys`).
///
/// # Safety
///
/// As `walk_at`.
pub(in crate::convert) unsafe fn pack_at(
    l: *mut lua_State,
    idx: c_int,
    keys: c_int,
    walk: &mut Walk,
    out: &mut Vec<u8>,
) -> Result<(), Failure> {
    let mut raw = Raw { l, walk, keys };
    // SAFETY: see above.
    unsafe { raw.pack(idx, out) }
}

/// Writes the key at `k` as the walk's `key_value` would make it; a key
/// that cannot be sent is refused as it refuses it (nothing written).
///
/// # Safety
///
/// `k` holds a value.
unsafe fn write_key(l: *mut lua_State, k: c_int, out: &mut Vec<u8>) -> Result<(), Failure> {
    // SAFETY: type tests and reads of `k`.
    unsafe {
        match ffi::lua_type(l, k) {
            ffi::LUA_TSTRING => w::write_bytes(out, string(l, k)),
            ffi::LUA_TNUMBER if ffi::lua_isinteger(l, k) != 0 => {
                w::write_int(out, ffi::lua_tointegerx(l, k, std::ptr::null_mut()));
            }
            ffi::LUA_TNUMBER => w::write_float(out, ffi::lua_tonumberx(l, k, std::ptr::null_mut())),
            ffi::LUA_TBOOLEAN => w::write_bool(out, ffi::lua_toboolean(l, k) != 0),
            _ => return key_value(l, k).map(drop),
        }
        Ok(())
    }
}

/// Widens the one-byte map header at `at` to count `n` entries, moving
/// what follows it when `n` needs a longer header.
fn set_map_len(out: &mut Vec<u8>, at: usize, n: usize) {
    let mut header = Vec::with_capacity(5);
    w::write_map_len(&mut header, n);
    out.splice(at..=at, header);
}

impl Raw<'_> {
    /// Writes the value at absolute index `idx`.
    unsafe fn pack(&mut self, idx: c_int, out: &mut Vec<u8>) -> Result<(), Failure> {
        // SAFETY: type tests and reads of the slot `idx`, which holds a value.
        unsafe {
            let l = self.l;
            match ffi::lua_type(l, idx) {
                ffi::LUA_TNIL => {
                    self.walk.count(1)?;
                    w::write_nil(out);
                }
                ffi::LUA_TBOOLEAN => {
                    self.walk.count(1)?;
                    w::write_bool(out, ffi::lua_toboolean(l, idx) != 0);
                }
                ffi::LUA_TNUMBER => {
                    self.walk.count(9)?;
                    if ffi::lua_isinteger(l, idx) != 0 {
                        w::write_int(out, ffi::lua_tointegerx(l, idx, std::ptr::null_mut()));
                    } else {
                        w::write_float(out, ffi::lua_tonumberx(l, idx, std::ptr::null_mut()));
                    }
                }
                ffi::LUA_TSTRING => {
                    let bytes = string(l, idx);
                    self.walk.count(5 + bytes.len())?;
                    w::write_bytes(out, bytes);
                }
                ffi::LUA_TTABLE => self.pack_table(idx, out)?,
                ffi::LUA_TUSERDATA => return Err(self.userdata(idx)),
                t => return Err(Failure::new(format!("{} cannot be sent", type_name(t)))),
            }
            Ok(())
        }
    }

    /// Writes the table at absolute index `idx`.
    unsafe fn pack_table(&mut self, idx: c_int, out: &mut Vec<u8>) -> Result<(), Failure> {
        // SAFETY: as `pack`; `enter` grows the stack for the level.
        unsafe {
            let is_error = self.enter(idx)?;
            let result = if is_error {
                self.error(idx).map(|v| w::write_value(out, &v))
            } else {
                self.pack_entries(idx, out)
            };
            self.walk.open.pop();
            result
        }
    }

    /// Writes the entries of the table at `idx` (see the module doc).
    unsafe fn pack_entries(&mut self, idx: c_int, out: &mut Vec<u8>) -> Result<(), Failure> {
        // SAFETY: raw traversals (see `pack_array`, `pack_map`), each
        // written over what the one before wrote.
        unsafe {
            let len = ffi::lua_rawlen(self.l, idx);
            let (start, used, tables) = (out.len(), self.walk.used, self.walk.tables);
            let again = |raw: &mut Self, out: &mut Vec<u8>| {
                out.truncate(start);
                (raw.walk.used, raw.walk.tables) = (used, tables);
            };
            if len > 0 {
                if self.pack_array(idx, len, out)? {
                    return Ok(());
                }
                again(self, out);
            }
            if self.pack_map(idx, len, out)? {
                return Ok(());
            }
            again(self, out);
            let v = self.entries(idx)?;
            w::write_value(out, &v);
            Ok(())
        }
    }

    /// Writes the table at `idx` as an array of its border's `len` items
    /// while its keys come as `1, 2, ...` (which the walk counts nothing
    /// for); false as soon as they do not, or when they end before `len`.
    unsafe fn pack_array(
        &mut self,
        idx: c_int,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<bool, Failure> {
        // SAFETY: a raw traversal; each round leaves the key on top, and
        // one left early pops its key and value.
        unsafe {
            let l = self.l;
            w::write_array_len(out, len);
            let mut n: usize = 0;
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, idx) != 0 {
                let (k, v) = (ffi::lua_gettop(l) - 1, ffi::lua_gettop(l));
                n += 1;
                if index_key(l, k, len).and_then(|i| usize::try_from(i).ok()) != Some(n) {
                    ffi::lua_pop(l, 2);
                    return Ok(false);
                }
                self.pack(v, out).map_err(|f| f.at(segment(l, k)))?;
                ffi::lua_pop(l, 1);
            }
            Ok(n == len)
        }
    }

    /// Writes the table at `idx` (border `len`) as a map, counting as the
    /// walk counts: a key in `1..=len` is free while every key so far is
    /// one, and counted (9 bytes each) from the first key that is not, or
    /// at the end. False, before that last count, for a table whose keys
    /// are exactly `1..=len` (an array the walk builds itself).
    unsafe fn pack_map(
        &mut self,
        idx: c_int,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<bool, Failure> {
        // SAFETY: a raw traversal; each round leaves the key on top.
        unsafe {
            let l = self.l;
            let at = out.len();
            w::write_map_len(out, 0);
            let (mut n, mut indices_only, mut uncounted) = (0usize, true, 0usize);
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, idx) != 0 {
                let (k, v) = (ffi::lua_gettop(l) - 1, ffi::lua_gettop(l));
                n += 1;
                let index = index_key(l, k, len);
                match ffi::lua_type(l, k) {
                    ffi::LUA_TSTRING => self.walk.count(5 + string(l, k).len())?,
                    _ if index.is_some() => {}
                    _ => self.walk.count(9)?,
                }
                // The key goes first on the wire; a key that cannot be
                // sent is reported after its value, as the walk does.
                let key = write_key(l, k, out);
                self.pack(v, out).map_err(|f| f.at(segment(l, k)))?;
                ffi::lua_pop(l, 1);
                if indices_only && index.is_some() {
                    uncounted += 1;
                    continue;
                }
                if indices_only {
                    indices_only = false;
                    self.count_keys(std::mem::take(&mut uncounted))?;
                }
                if index.is_some() {
                    self.walk.count(9)?;
                }
                key?;
            }
            if indices_only && n == len && len > 0 {
                return Ok(false);
            }
            self.count_keys(uncounted)?;
            if n > 15 {
                set_map_len(out, at, n);
            } else if let Some(header) = out.get_mut(at) {
                *header |= u8::try_from(n).unwrap_or(0);
            }
            Ok(true)
        }
    }

    /// Counts `n` integer keys of a map, one at a time as the walk does.
    fn count_keys(&mut self, n: usize) -> Result<(), Failure> {
        for _ in 0..n {
            self.walk.count(9)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

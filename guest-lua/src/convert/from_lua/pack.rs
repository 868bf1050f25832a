//! Lua → MessagePack straight from the stack, for a payload whose
//! receiver reads MessagePack (a component): the bytes
//! `warren_core::msgpack::encode` writes for the value the walk above
//! would build, counted and refused as that walk counts and refuses
//! (the same budget, the same errors at the same paths, in the same
//! order), with no `Value` tree in between.
//!
//! How: a scalar is written as it is read. A table is entered as the walk
//! enters one (cycle, depth, runtime objects, its count). One without a
//! border (`#t == 0`: a record, a map, an empty table) is written as a map
//! in one traversal, its header's count set when the traversal ends; an
//! entry whose key and value are both scalars is read in place, with
//! nothing pushed ([`crate::convert::entry`]: a traversal by `lua_next`
//! cost more than writing the entry). One
//! with a border is first looked at for its shape (its keys only, raw,
//! stopping at the first key outside `1..=#t`): an array visited in order
//! is written as one, anything else as a map; an array whose keys the
//! traversal visits out of order (rare: indices in the hash part) and an
//! error object are built as a `Value` by the walk and encoded. No
//! subtree is written twice by this encoder (a retry at every level of a
//! nested value would double the work per level).
//!
//! Guarantees, beyond the walk's: a table is traversed at most twice
//! by the encoder (raw `lua_next` on a table nothing changes meanwhile: no
//! allocation in the VM, nothing raised), and a value's work is linear in
//! its size (what the walk builds for a rare shape is walked once more);
//! the output grows only with what was counted against the budget. Maps
//! of more than 15 entries get their longer headers in one pass over the
//! whole encoding at the end (widening each in place would move the bytes
//! after it once per enclosing map: 64 times a payload's size for a
//! hostile nest).

use std::ffi::c_int;

use crate::machine::fast;
use mlua::ffi::{self, lua_State};
use warren_core::msgpack as w;

use super::super::entry::Entries;
use super::{Failure, Raw, Walk, at_entry, index_key, key_value, segment, string, type_name};

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
    let mut raw = Raw {
        l,
        walk,
        keys,
        wide: Vec::new(),
    };
    // SAFETY: see above.
    unsafe { raw.pack(idx, out) }?;
    widen(out, &mut raw.wide);
    Ok(())
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
        match fast::type_of(l, k) {
            ffi::LUA_TSTRING => w::write_bytes(out, string(l, k)),
            ffi::LUA_TNUMBER if ffi::lua_isinteger(l, k) != 0 => {
                w::write_int(out, fast::tointeger(l, k));
            }
            ffi::LUA_TNUMBER => w::write_float(out, ffi::lua_tonumberx(l, k, std::ptr::null_mut())),
            ffi::LUA_TBOOLEAN => w::write_bool(out, fast::toboolean(l, k) != 0),
            _ => return key_value(l, k).map(drop),
        }
        Ok(())
    }
}

/// What a table with a border is, from its keys alone.
enum Shape {
    /// Keys exactly `1..=#t`, visited in that order.
    Array,
    /// Keys exactly `1..=#t`, visited in another order.
    Scattered,
    /// Anything else.
    Map,
}

/// The shape of the table at absolute index `idx`, whose border is `len`
/// (more than 0). The look stops at `room` entries, what is left of the
/// budget (each entry's value counts a byte at least): a larger table is
/// answered a map, whose writing fails on the budget where the walk's
/// does, so this look costs no more than the budget allows.
///
/// # Safety
///
/// A table at `idx`; pushes nothing, raises nothing.
unsafe fn shape(l: *mut lua_State, idx: c_int, len: usize, room: usize) -> Shape {
    // SAFETY: a traversal in place of a table nothing changes meanwhile
    // (see `entry`); nothing is pushed.
    unsafe {
        let (mut n, mut in_order) = (0usize, true);
        let mut entries = Entries::new(idx);
        while entries.next(l) {
            n += 1;
            if n > room {
                return Shape::Map;
            }
            let Some(i) = entries.key.index(len) else {
                return Shape::Map;
            };
            in_order &= usize::try_from(i) == Ok(n);
        }
        match (n == len, in_order) {
            (true, true) => Shape::Array,
            (true, false) => Shape::Scattered,
            (false, _) => Shape::Map,
        }
    }
}

/// Widens the one-byte map headers at the positions in `wide` to count
/// their maps' entries, in one pass over the encoding: widening each in
/// place would move everything after it, once per enclosing map.
fn widen(out: &mut Vec<u8>, wide: &mut [(usize, usize)]) {
    if wide.is_empty() {
        return;
    }
    wide.sort_unstable();
    let mut whole = Vec::with_capacity(out.len() + 4 * wide.len());
    let mut from = 0;
    for &(at, n) in wide.iter() {
        whole.extend_from_slice(out.get(from..at).unwrap_or_default());
        w::write_map_len(&mut whole, n);
        from = at + 1;
    }
    whole.extend_from_slice(out.get(from..).unwrap_or_default());
    *out = whole;
}

impl Raw<'_> {
    /// Writes the value at absolute index `idx`.
    unsafe fn pack(&mut self, idx: c_int, out: &mut Vec<u8>) -> Result<(), Failure> {
        // SAFETY: type tests and reads of the slot `idx`, which holds a value.
        unsafe {
            let l = self.l;
            match fast::type_of(l, idx) {
                ffi::LUA_TNIL => {
                    self.walk.count(1)?;
                    w::write_nil(out);
                }
                ffi::LUA_TBOOLEAN => {
                    self.walk.count(1)?;
                    w::write_bool(out, fast::toboolean(l, idx) != 0);
                }
                ffi::LUA_TNUMBER => {
                    self.walk.count(9)?;
                    if ffi::lua_isinteger(l, idx) != 0 {
                        w::write_int(out, fast::tointeger(l, idx));
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
        // SAFETY: raw traversals (see `shape`, `pack_array`, `pack_map`).
        unsafe {
            let len = ffi::lua_rawlen(self.l, idx);
            let room = self.walk.budget.bytes.saturating_sub(self.walk.used);
            let shape = if len == 0 {
                Shape::Map
            } else {
                shape(self.l, idx, len, room)
            };
            match shape {
                Shape::Array => return self.pack_array(idx, len, out),
                Shape::Map => {
                    let (start, used, tables) = (out.len(), self.walk.used, self.walk.tables);
                    if self.pack_map(idx, len, out)? {
                        return Ok(());
                    }
                    // Not reached (the shape said a map); written again
                    // by the walk, which never packs (no work repeated
                    // below this table).
                    out.truncate(start);
                    self.wide.retain(|&(at, _)| at < start);
                    (self.walk.used, self.walk.tables) = (used, tables);
                }
                Shape::Scattered => {}
            }
            let v = self.entries(idx)?;
            w::write_value(out, &v);
            Ok(())
        }
    }

    /// Writes the table at `idx` as an array of its border's `len` items,
    /// its keys being `1..=len` in traversal order (see `shape`); the
    /// keys count nothing, as in the walk.
    unsafe fn pack_array(
        &mut self,
        idx: c_int,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Failure> {
        // SAFETY: a traversal in place (see `entry`); an entry pushed
        // (room made by `enter`) is popped when written.
        unsafe {
            let l = self.l;
            w::write_array_len(out, len);
            let mut entries = Entries::new(idx);
            while entries.next(l) {
                if entries.value.is_scalar() {
                    self.pack_scalar_value(&entries, out)?;
                    continue;
                }
                entries.push(l);
                let k = fast::gettop(l) - 1;
                self.pack(k + 1, out).map_err(|f| f.at(segment(l, k)))?;
                fast::pop(l, 2);
            }
            Ok(())
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
        // SAFETY: a traversal in place of a table nothing changes
        // meanwhile (see `entry`).
        unsafe {
            let l = self.l;
            let at = out.len();
            w::write_map_len(out, 0);
            let (mut n, mut indices_only, mut uncounted) = (0usize, true, 0usize);
            let mut entries = Entries::new(idx);
            while entries.next(l) {
                n += 1;
                let (index, key) = if entries.key.is_scalar() && entries.value.is_scalar() {
                    (self.pack_scalars(&entries, len, out)?, Ok(()))
                } else {
                    self.pack_entry(&entries, len, out)?
                };
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
                self.wide.push((at, n));
            } else if let Some(header) = out.get_mut(at) {
                *header |= u8::try_from(n).unwrap_or(0);
            }
            Ok(true)
        }
    }

    /// Writes the current entry of `entries`, a scalar key and value,
    /// read in place, as [`Raw::pack_entry`] writes it; answers the key's
    /// index in `1..=len`.
    unsafe fn pack_scalars(
        &mut self,
        entries: &Entries,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<Option<i64>, Failure> {
        // SAFETY: the strings are the table's, which nothing changes
        // during the traversal; the entry is pushed (room made by
        // `enter`) only for its path.
        unsafe {
            let k = &entries.key;
            let index = k.index(len);
            self.walk.count(k.count(index.is_some()))?;
            k.write(out);
            self.pack_scalar_value(entries, out)?;
            Ok(index)
        }
    }

    /// Writes the current entry's value, a scalar read in place, as
    /// [`Raw::pack`] writes it; a failure is at the entry's key.
    unsafe fn pack_scalar_value(
        &mut self,
        entries: &Entries,
        out: &mut Vec<u8>,
    ) -> Result<(), Failure> {
        // SAFETY: as `pack_scalars`.
        unsafe {
            let v = &entries.value;
            self.walk
                .count(v.count(false))
                .map_err(|f| at_entry(self.l, entries, f))?;
            v.write(out);
            Ok(())
        }
    }

    /// Writes the current entry of `entries` from the stack: its key
    /// (counted first, and written first on the wire), then its value;
    /// answers the key's index in `1..=len` and whether the key can be
    /// sent, which the caller reports after the value, as the walk does.
    unsafe fn pack_entry(
        &mut self,
        entries: &Entries,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(Option<i64>, Result<(), Failure>), Failure> {
        // SAFETY: room for the entry made by `enter`; popped when done.
        unsafe {
            let l = self.l;
            entries.push(l);
            let (k, v) = (fast::gettop(l) - 1, fast::gettop(l));
            let index = index_key(l, k, len);
            self.count_key(k, index.is_some())?;
            let key = write_key(l, k, out);
            self.pack(v, out).map_err(|f| f.at(segment(l, k)))?;
            fast::pop(l, 2);
            Ok((index, key))
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

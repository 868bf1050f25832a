//! A table's entries read in place (the vendored Lua's `warren_entry`):
//! the traversal of the walk, of the packer and of the same-VM copy's
//! check of a flat table, which read a scalar key and value without
//! pushing them, and push the entry only for what needs the stack (a
//! nested table, a value that cannot be sent, an error's path).
//!
//! Guarantees: the entries and their order are `lua_next`'s while the
//! table is unchanged (nothing in the packer changes a table or
//! allocates in the VM); a [`Slot`]'s string points into a string the
//! table holds, so it lives as long as the traversal.

use std::ffi::{c_char, c_int, c_uint};

use mlua::ffi::{self, lua_State};
use warren_core::msgpack as w;

use crate::convert::Scalar;

/// What an entry's key or value is (the C `warren_Value`).
#[repr(C)]
pub(crate) struct Slot {
    ty: c_int,
    isint: c_int,
    i: i64,
    n: f64,
    s: *const c_char,
    len: usize,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            ty: ffi::LUA_TNIL,
            isint: 0,
            i: 0,
            n: 0.0,
            s: std::ptr::null(),
            len: 0,
        }
    }
}

unsafe extern "C-unwind" {
    fn warren_entry(
        l: *mut lua_State,
        idx: c_int,
        pos: *mut c_uint,
        k: *mut Slot,
        v: *mut Slot,
    ) -> c_int;
    fn warren_pushentry(l: *mut lua_State, idx: c_int, pos: c_uint);
    /// The slots of the table at `idx`: its array part and node array.
    pub(crate) fn warren_tableslots(l: *mut lua_State, idx: c_int) -> c_uint;
}

/// A traversal of the table at an absolute index.
pub(crate) struct Entries {
    idx: c_int,
    pos: c_uint,
    /// The current entry's key and value.
    pub(crate) key: Slot,
    pub(crate) value: Slot,
}

impl Entries {
    pub(crate) fn new(idx: c_int) -> Self {
        Entries {
            idx,
            pos: 0,
            key: Slot::default(),
            value: Slot::default(),
        }
    }

    /// Moves to the next entry; false at the end.
    ///
    /// # Safety
    ///
    /// A table at `idx`, unchanged since the traversal began.
    pub(crate) unsafe fn next(&mut self, l: *mut lua_State) -> bool {
        // SAFETY: see above; reads only.
        unsafe {
            warren_entry(
                l,
                self.idx,
                &raw mut self.pos,
                &raw mut self.key,
                &raw mut self.value,
            ) != 0
        }
    }

    /// Pushes the current entry's key and value.
    ///
    /// # Safety
    ///
    /// As [`Entries::next`], after it answered true; room for two values.
    pub(crate) unsafe fn push(&self, l: *mut lua_State) {
        // SAFETY: see above.
        unsafe { warren_pushentry(l, self.idx, self.pos) }
    }
}

impl Slot {
    /// Whether it is a string, a number or a boolean: what the packer
    /// reads without the stack.
    pub(crate) fn is_scalar(&self) -> bool {
        matches!(
            self.ty,
            ffi::LUA_TSTRING | ffi::LUA_TNUMBER | ffi::LUA_TBOOLEAN
        )
    }

    /// Whether it is a number.
    pub(crate) fn is_number(&self) -> bool {
        self.ty == ffi::LUA_TNUMBER
    }

    /// Whether it is a table.
    pub(crate) fn is_table(&self) -> bool {
        self.ty == ffi::LUA_TTABLE
    }

    /// A string's bytes (empty for anything else).
    ///
    /// # Safety
    ///
    /// From the current entry of a live traversal (see the module doc).
    pub(crate) unsafe fn bytes<'s>(&self) -> &'s [u8] {
        if self.ty != ffi::LUA_TSTRING || self.s.is_null() {
            return &[];
        }
        // SAFETY: see above; Lua strings are never moved while referenced.
        unsafe { std::slice::from_raw_parts(self.s.cast::<u8>(), self.len) }
    }

    /// This scalar ([`Slot::is_scalar`]) as the walk reads one; `None`
    /// for anything else.
    ///
    /// # Safety
    ///
    /// As [`Slot::bytes`].
    pub(crate) unsafe fn scalar<'s>(&self) -> Option<Scalar<'s>> {
        Some(match self.ty {
            // SAFETY: see above.
            ffi::LUA_TSTRING => Scalar::Str(unsafe { self.bytes() }),
            ffi::LUA_TNUMBER if self.isint != 0 => Scalar::Int(self.i),
            ffi::LUA_TNUMBER => Scalar::Float(self.n),
            ffi::LUA_TBOOLEAN => Scalar::Bool(self.i != 0),
            _ => return None,
        })
    }

    /// The key's index in `1..=len`, as `index_key` answers it.
    pub(crate) fn index(&self, len: usize) -> Option<i64> {
        let i = self.i;
        (self.ty == ffi::LUA_TNUMBER
            && self.isint != 0
            && i >= 1
            && usize::try_from(i).is_ok_and(|i| i <= len))
        .then_some(i)
    }

    /// The bytes the walk counts for this scalar as a key (`count_key`)
    /// or, with `index` false, as a value (`pack`): 0 for a key that is
    /// an index.
    pub(crate) fn count(&self, index: bool) -> usize {
        match self.ty {
            ffi::LUA_TSTRING => 5 + self.len,
            ffi::LUA_TBOOLEAN => 1,
            _ if index => 0,
            _ => 9,
        }
    }

    /// Writes this scalar as `write_key` and `pack` write it.
    ///
    /// # Safety
    ///
    /// As [`Slot::bytes`]; a scalar ([`Slot::is_scalar`]).
    pub(crate) unsafe fn write(&self, out: &mut Vec<u8>) {
        match self.ty {
            // SAFETY: see above.
            ffi::LUA_TSTRING => w::write_bytes(out, unsafe { self.bytes() }),
            ffi::LUA_TNUMBER if self.isint != 0 => w::write_int(out, self.i),
            ffi::LUA_TNUMBER => w::write_float(out, self.n),
            _ => w::write_bool(out, self.i != 0),
        }
    }
}

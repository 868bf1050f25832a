//! The fast path of `T:is(v)` and `T(v)` for a record of primitive fields
//! (typed-lua.md §3.10: ≤ 1 µs for ten fields on success).
//!
//! A [`Plan`] is made once per type value, only for shapes where its
//! answer on success is exactly the full checker's: a primitive, `table`, a
//! function type, unions and optionals of those, or a record whose fields
//! are such, reached through non-generic aliases. The check,
//! [`fast_check`], is a Lua C function called from the Lua side of `T:is`
//! and `T(v)`: no call into mlua, and no mlua reference per field. It runs
//! on the Lua stack with raw functions (`lua_rawgeti`, `lua_rawget`,
//! `lua_type`), so it never runs a metamethod. It only says "valid" or
//! "don't know"; a "don't know" (any failure) goes to the full checker,
//! which builds the error with its details.
//!
//! The budget: the full checker polls every [`POLL_EVERY`] visited values,
//! counted per validation from zero, so a record of fewer fields than that
//! never reaches a poll; plans are made only for such records.

use std::ffi::c_int;

use crate::machine::fast;
use mlua::ffi;
use warren_lua_dialect::ty::{Ty, TypeTable};

use super::check::POLL_EVERY;
use super::shape::MAX_DEPTH;

/// Lua types a field accepts, one bit per `LUA_T*` tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    mask: u16,
    /// Numbers must have an integral value (`integer`).
    integral: bool,
}

const fn bit(tag: c_int) -> u16 {
    1 << tag
}

const NIL: u16 = bit(ffi::LUA_TNIL);
const NUMBER: u16 = bit(ffi::LUA_TNUMBER);
/// Every tag `lua_type` returns for a value (`LUA_TNIL..=LUA_TTHREAD`).
const ALL: u16 = (1 << (ffi::LUA_TTHREAD + 1)) - 1;

impl Slot {
    const fn of(mask: u16) -> Self {
        Self {
            mask,
            integral: false,
        }
    }

    /// Valid as `self` or as `other` (a union).
    fn or(self, other: Slot) -> Slot {
        // Numbers stay restricted to integral values only if every member
        // that takes numbers restricts them.
        let integral = |s: Slot| s.mask & NUMBER == 0 || s.integral;
        Slot {
            mask: self.mask | other.mask,
            integral: integral(self) && integral(other),
        }
    }
}

/// The slot of a field type, or `None` if the fast path does not cover it.
fn slot(ty: &Ty, table: &TypeTable, hops: usize) -> Option<Slot> {
    Some(match ty {
        Ty::Any | Ty::Unknown | Ty::Opaque(_) => Slot::of(ALL),
        Ty::Never => Slot::of(0),
        Ty::Nil => Slot::of(NIL),
        Ty::Boolean => Slot::of(bit(ffi::LUA_TBOOLEAN)),
        Ty::String => Slot::of(bit(ffi::LUA_TSTRING)),
        Ty::Number => Slot::of(NUMBER),
        Ty::Integer => Slot {
            mask: NUMBER,
            integral: true,
        },
        Ty::Table | Ty::Interface { .. } => Slot::of(bit(ffi::LUA_TTABLE)),
        Ty::Func { .. } => Slot::of(bit(ffi::LUA_TFUNCTION)),
        Ty::Optional(inner) => slot(inner, table, hops)?.or(Slot::of(NIL)),
        Ty::Union(members) => {
            let mut acc = Slot::of(0);
            for m in members {
                acc = acc.or(slot(m, table, hops)?);
            }
            acc
        }
        Ty::Named { decl, .. } if hops < MAX_DEPTH => {
            let d = table.get(*decl)?;
            if matches!(&*d.ty, Ty::Generic { .. }) {
                return None;
            }
            return slot(&d.ty, table, hops + 1);
        }
        _ => return None,
    })
}

/// One slot as two bytes (little-endian `mask`, bit 15 for `integral`).
fn encode(s: Slot, out: &mut Vec<u8>) {
    let bits = s.mask | if s.integral { INTEGRAL } else { 0 };
    out.extend_from_slice(&bits.to_le_bytes());
}

const INTEGRAL: u16 = 1 << 15;

fn decode(b: [u8; 2]) -> Slot {
    let bits = u16::from_le_bytes(b);
    Slot {
        mask: bits & !INTEGRAL,
        integral: bits & INTEGRAL != 0,
    }
}

/// What [`fast_check`] is given for one type: the encoded slots, and for
/// a record the field names in order (`None`: check the value itself
/// against the one slot).
pub(super) struct Plan<'t> {
    pub names: Option<Vec<&'t str>>,
    pub slots: Vec<u8>,
}

/// The plan for `ty`, if the fast path covers it: a type that is one slot
/// (a primitive, `table`, a function type, or unions and optionals of
/// those), or a record whose fields each are one.
pub(super) fn plan<'t>(ty: &'t Ty, table: &'t TypeTable) -> Option<Plan<'t>> {
    if let Some(s) = slot(ty, table, 0) {
        let mut slots = Vec::with_capacity(2);
        encode(s, &mut slots);
        return Some(Plan { names: None, slots });
    }
    let mut ty = ty;
    let mut hops = 0;
    let fields = loop {
        match ty {
            Ty::Record { fields, .. } => break fields,
            Ty::Named { decl, .. } if hops < MAX_DEPTH => {
                ty = &table.get(*decl)?.ty;
                hops += 1;
            }
            _ => return None,
        }
    };
    // One visit for the record and one per field: stay below the first
    // budget poll, so the fast path never skips one.
    if fields.len() + 1 >= POLL_EVERY as usize {
        return None;
    }
    let mut slots = Vec::with_capacity(fields.len() * 2);
    for f in fields {
        let mut s = slot(&f.ty, table, 0)?;
        if f.optional {
            s = s.or(Slot::of(NIL));
        }
        encode(s, &mut slots);
    }
    Some(Plan {
        names: Some(fields.iter().map(|f| f.name.as_str()).collect()),
        slots,
    })
}

/// `fast(v, names, slots)`, a Lua C function: `true` if `v` is valid for
/// the plan (`names` a sequence of field names or `false`, `slots` the
/// encoded slots), `false` if it may not be (the full checker then
/// decides, and builds the error). Any other arguments give `false`.
///
/// It runs directly on the Lua stack with raw functions only, so it
/// allocates nothing, never runs a metamethod and never raises.
///
/// # Safety
///
/// Called by Lua as a C function (`lua_CFunction`).
pub(super) unsafe extern "C-unwind" fn fast_check(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: a C function may use LUA_MINSTACK (20) slots above its
    // arguments, so growing or shrinking the frame to 3 values fits; the
    // calls below are raw accesses that cannot raise and do not allocate
    // (`lua_rawgeti`/`lua_rawget` read a table, `lua_tolstring` is only
    // called on a string so it converts nothing, `lua_settop` and
    // `lua_pushboolean` stay within the frame); each leaves the frame at 3
    // values before the one boolean result.
    unsafe {
        fast::settop(state, 3);
        let ok = check_frame(state);
        fast::settop(state, 0);
        fast::pushboolean(state, c_int::from(ok));
    }
    1
}

/// The body of [`fast_check`].
///
/// # Safety
///
/// `state` is a C function's frame of exactly 3 values, with at least 2
/// free slots above them.
unsafe fn check_frame(state: *mut ffi::lua_State) -> bool {
    // SAFETY: see `fast_check`. The slot bytes are read while the string
    // stays at index 3, which keeps it alive and unmoved.
    unsafe {
        if fast::type_of(state, 3) != ffi::LUA_TSTRING {
            return false;
        }
        let mut len = 0usize;
        let p = ffi::lua_tolstring(state, 3, &raw mut len);
        if p.is_null() {
            return false;
        }
        let bytes = std::slice::from_raw_parts(p.cast::<u8>(), len);
        let slots = bytes.chunks_exact(2).map(|c| decode([c[0], c[1]]));
        match fast::type_of(state, 2) {
            ffi::LUA_TTABLE => {
                if fast::type_of(state, 1) != ffi::LUA_TTABLE {
                    return false;
                }
                for (i, s) in (1..).zip(slots) {
                    fast::rawgeti(state, 2, i);
                    let tag = ffi::lua_rawget(state, 1);
                    let ok = accepts(state, s, tag);
                    fast::settop(state, 3);
                    if !ok {
                        return false;
                    }
                }
                true
            }
            ffi::LUA_TBOOLEAN => {
                let mut slots = slots;
                let (Some(s), None) = (slots.next(), slots.next()) else {
                    return false;
                };
                fast::pushvalue(state, 1);
                let ok = accepts(state, s, fast::type_of(state, -1));
                fast::settop(state, 3);
                ok
            }
            _ => false,
        }
    }
}
/// Whether the value on top of the stack, of type `tag`, is valid as `s`.
///
/// # Safety
///
/// The stack of `state` must have a value of type `tag` on top.
unsafe fn accepts(state: *mut ffi::lua_State, s: Slot, tag: c_int) -> bool {
    let Ok(shift) = u32::try_from(tag) else {
        return false;
    };
    if s.mask & 1u16.checked_shl(shift).unwrap_or(0) == 0 {
        return false;
    }
    if tag != ffi::LUA_TNUMBER || !s.integral {
        return true;
    }
    // SAFETY: the top is a number (`tag`), so neither call converts a
    // string or runs anything; neither raises.
    unsafe {
        if ffi::lua_isinteger(state, -1) != 0 {
            return true;
        }
        let f = ffi::lua_tonumberx(state, -1, std::ptr::null_mut());
        f.is_finite() && f.fract() == 0.0
    }
}

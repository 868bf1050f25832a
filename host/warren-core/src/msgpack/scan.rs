//! Checking a guest's MessagePack without decoding it: bytes a component
//! sends are kept as they are (no `Value` tree; a Lua receiver builds its
//! tables straight from them) when they are exactly what the runtime's
//! encoder writes for a value that may be sent.
//!
//! Guarantees: [`scan`] answers a size only for bytes that decode, whose
//! value re-encodes to the very same bytes (so a packed payload reads the
//! same to every receiver as the decoded one did), passes
//! [`check_values`](crate::limits::check_values) and has that
//! [`wire_size`](crate::limits::wire_size); anything else (malformed,
//! another encoder's form, a value that may not be sent) answers `None`,
//! and the caller takes the decoding path, with its errors. Work is linear
//! in the bytes, recursion is bounded by [`MAX_DEPTH`], nothing is
//! allocated.

use super::read::{Item, Reader};
use super::{array_head, bytes_head, int_head, map_head};
use crate::limits::MAX_DEPTH;

/// The size `bytes` count as, when they are one value exactly as
/// [`encode`](super::encode) writes it and that value may be sent (see
/// the module doc); `None` otherwise.
pub fn scan(bytes: &[u8]) -> Option<usize> {
    let mut r = Reader::new(bytes);
    let wire = value(&mut r, 0)?;
    (r.remaining() == 0).then_some(wire)
}

/// The size of the next value, a container at `depth` (the root's is 0).
fn value(r: &mut Reader<'_>, depth: usize) -> Option<usize> {
    match canonical(r)? {
        Item::Nil | Item::Bool(_) => Some(1),
        Item::Int(_) | Item::Float(_) => Some(9),
        Item::Str(b) | Item::Bin(b) => Some(5 + b.len()),
        Item::Array(_) | Item::Map(_) if depth >= MAX_DEPTH => None,
        Item::Array(n) => (0..n).try_fold(5usize, |size, _| size.checked_add(value(r, depth + 1)?)),
        Item::Map(n) => (0..n).try_fold(5usize, |size, _| {
            let entry = key(r)?.checked_add(value(r, depth + 1)?)?;
            size.checked_add(entry)
        }),
    }
}

/// The size of the next map key: a scalar or string other than nil and
/// NaN (what a Lua table can hold).
fn key(r: &mut Reader<'_>) -> Option<usize> {
    match canonical(r)? {
        Item::Nil | Item::Array(_) | Item::Map(_) => None,
        Item::Float(f) if f.is_nan() => None,
        Item::Bool(_) => Some(1),
        Item::Int(_) | Item::Float(_) => Some(9),
        Item::Str(b) | Item::Bin(b) => Some(5 + b.len()),
    }
}

/// The next item, if its head is the one the encoder writes for it: an
/// integer in its shortest form (unsigned markers for the non-negative),
/// text as `str` and other bytes as `bin`, each with its shortest header,
/// collections with theirs. A one-byte head (a fixint, `fixstr`, `fixmap`,
/// `fixarray`, nil, a boolean) is the shortest there is: only a `fixstr`'s
/// bytes need a look.
fn canonical<'a>(r: &mut Reader<'a>) -> Option<Item<'a>> {
    let start = r.position();
    let item = r.next_item()?;
    let read = r.since(start);
    let body = match item {
        Item::Str(b) | Item::Bin(b) => b.len(),
        _ => 0,
    };
    let head_len = read.len() - body;
    let fits = match item {
        Item::Nil | Item::Bool(_) | Item::Float(_) => true,
        Item::Str(b) if head_len == 1 => is_text(b),
        _ if head_len == 1 => true,
        Item::Int(i) => read == int_head(i).as_slice(),
        Item::Str(b) => {
            is_text(b) && read.get(..head_len) == Some(bytes_head(b.len(), true).as_slice())
        }
        Item::Bin(b) => {
            !is_text(b) && read.get(..head_len) == Some(bytes_head(b.len(), false).as_slice())
        }
        Item::Array(n) => read == array_head(n).as_slice(),
        Item::Map(n) => read == map_head(n).as_slice(),
    };
    fits.then_some(item)
}

/// Whether `bytes` are UTF-8 text (ASCII looked at first: most are).
fn is_text(bytes: &[u8]) -> bool {
    bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()
}

#[cfg(test)]
mod tests;

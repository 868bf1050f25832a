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
//! and the caller takes the decoding path, with its errors. One pass over
//! the bytes with no recursion (the open containers' counts in a fixed
//! array of [`MAX_DEPTH`]), nothing allocated.
//!
//! The encoder's forms, which the checks below follow: an integer in its
//! shortest form, unsigned markers for the non-negative (rmp's
//! `write_sint`); text as `str` and other bytes as `bin`, each with the
//! shortest header (`bin 8` for any short non-text); `float 64`; arrays
//! and maps with their shortest headers.

use super::is_text;
use crate::limits::MAX_DEPTH;

/// The size `bytes` count as, when they are one value exactly as
/// [`encode`](super::encode) writes it and that value may be sent (see
/// the module doc); `None` otherwise.
pub fn scan(bytes: &[u8]) -> Option<usize> {
    let mut s = Scan {
        bytes,
        pos: 0,
        wire: 0,
    };
    // Items left in each open container (a map's entries count twice:
    // key, then value), and which of them are maps (bit per level).
    let mut left = [0u64; MAX_DEPTH];
    let mut maps = 0u64;
    let mut depth = 0;
    loop {
        let key = depth > 0 && maps >> (depth - 1) & 1 == 1 && left[depth - 1] % 2 == 0;
        if let Some((n, map)) = s.item(key)? {
            if key || depth >= MAX_DEPTH {
                return None; // a table key, or nesting past the limit
            }
            if n > 0 {
                left[depth] = if map { 2 * u64::from(n) } else { u64::from(n) };
                maps = if map {
                    maps | 1 << depth
                } else {
                    maps & !(1 << depth)
                };
                depth += 1;
                continue;
            }
        }
        // An item is complete: count it in its container, and close each
        // container that it completes in turn.
        loop {
            if depth == 0 {
                return (s.pos == bytes.len()).then_some(s.wire);
            }
            left[depth - 1] -= 1;
            if left[depth - 1] > 0 {
                break;
            }
            depth -= 1;
        }
    }
}

/// A cursor that checks and measures one item at a time.
struct Scan<'a> {
    bytes: &'a [u8],
    pos: usize,
    wire: usize,
}

impl Scan<'_> {
    /// Checks the next item (a map key when `key`) and adds its size: `None`
    /// when it is not in the encoder's form or may not be sent; `Some(None)`
    /// for a scalar or string; `Some(Some((count, is_map)))` for a
    /// container, whose items follow.
    fn item(&mut self, key: bool) -> Option<Option<(u32, bool)>> {
        let m = self.take::<1>()?[0];
        match m {
            0x00..=0x7f | 0xe0..=0xff => self.scalar(9, true),
            0x80..=0x8f => self.open(u32::from(m & 0x0f), true),
            0x90..=0x9f => self.open(u32::from(m & 0x0f), false),
            0xa0..=0xbf => self.bytes(usize::from(m & 0x1f), true),
            0xc0 => self.scalar(1, !key),
            0xc2 | 0xc3 => self.scalar(1, true),
            0xc4 => {
                let n = usize::from(self.take::<1>()?[0]);
                self.bytes(n, false)
            }
            0xc5 => {
                let n = self.u16()?;
                self.wide_bytes(n, 256, false)
            }
            0xc6 => {
                let n = self.u32()?;
                self.wide_bytes(n, 65_536, false)
            }
            0xcb => {
                let f = f64::from_be_bytes(self.take()?);
                self.scalar(9, !(key && f.is_nan()))
            }
            0xcc => {
                let v = self.take::<1>()?[0];
                self.scalar(9, v >= 128)
            }
            0xcd => {
                let v = self.u16()?;
                self.scalar(9, v >= 256)
            }
            0xce => {
                let v = self.u32()?;
                self.scalar(9, v >= 65_536)
            }
            0xcf => {
                let v = u64::from_be_bytes(self.take()?);
                self.scalar(9, v >= 1 << 32 && i64::try_from(v).is_ok())
            }
            0xd0 => {
                let v = i8::from_be_bytes(self.take()?);
                self.scalar(9, v < -32)
            }
            0xd1 => {
                let v = i16::from_be_bytes(self.take()?);
                self.scalar(9, v < -128)
            }
            0xd2 => {
                let v = i32::from_be_bytes(self.take()?);
                self.scalar(9, v < -32_768)
            }
            0xd3 => {
                let v = i64::from_be_bytes(self.take()?);
                self.scalar(9, v < -(1 << 31))
            }
            0xd9 => {
                let n = self.take::<1>()?[0];
                (n >= 32).then_some(())?;
                self.bytes(usize::from(n), true)
            }
            0xda => {
                let n = self.u16()?;
                self.wide_bytes(n, 256, true)
            }
            0xdb => {
                let n = self.u32()?;
                self.wide_bytes(n, 65_536, true)
            }
            0xdc => {
                let n = self.u16()?;
                self.wide_open(n, 16, false)
            }
            0xdd => {
                let n = self.u32()?;
                self.wide_open(n, 65_536, false)
            }
            0xde => {
                let n = self.u16()?;
                self.wide_open(n, 16, true)
            }
            0xdf => {
                let n = self.u32()?;
                self.wide_open(n, 65_536, true)
            }
            // `float 32`, extensions, the unused marker: never written.
            _ => None,
        }
    }

    /// A scalar of `size` when `fits`.
    fn scalar(&mut self, size: usize, fits: bool) -> Option<Option<(u32, bool)>> {
        fits.then(|| {
            self.wire += size;
            None
        })
    }

    /// `n` bytes of text (`str`) or not (`bin`), in a form whose header
    /// was already found the shortest.
    fn bytes(&mut self, n: usize, text: bool) -> Option<Option<(u32, bool)>> {
        let end = self.pos.checked_add(n)?;
        let body = self.bytes.get(self.pos..end)?;
        (is_text(body) == text).then_some(())?;
        self.pos = end;
        self.wire += 5 + n;
        Some(None)
    }

    /// `n` bytes after a 2- or 4-byte length, the shortest only from `min`.
    fn wide_bytes(&mut self, n: u32, min: u32, text: bool) -> Option<Option<(u32, bool)>> {
        (n >= min).then_some(())?;
        self.bytes(usize::try_from(n).ok()?, text)
    }

    /// A container of `n` items (entries, for a map).
    fn open(&mut self, n: u32, map: bool) -> Option<Option<(u32, bool)>> {
        self.wire += 5;
        Some(Some((n, map)))
    }

    /// A container after a 2- or 4-byte count, the shortest only from `min`.
    fn wide_open(&mut self, n: u32, min: u32, map: bool) -> Option<Option<(u32, bool)>> {
        (n >= min).then_some(())?;
        self.open(n, map)
    }

    fn u16(&mut self) -> Option<u32> {
        Some(u32::from(u16::from_be_bytes(self.take()?)))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take()?))
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        let bytes = self.bytes.get(self.pos..end)?.try_into().ok()?;
        self.pos = end;
        Some(bytes)
    }
}

#[cfg(test)]
mod tests;

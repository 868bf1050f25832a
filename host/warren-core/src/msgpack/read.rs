//! MessagePack read one item at a time, with no value built: what a
//! scanner needs to check bytes and a decoder needs to build another
//! language's values straight from them.
//!
//! Guarantees: reading never panics and never allocates; a string's
//! length is checked against the bytes present before it is answered, and
//! a collection's count is answered as read (its items follow, each at
//! least a byte, so a caller that reads them stops at the end of the
//! bytes, and a caller that presizes from a count clamps it to
//! [`Reader::remaining`]).

/// One item's head: a scalar, a string's bytes, or a collection's count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Item<'a> {
    /// `nil`.
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits `i64` (an unsigned one past it is not read).
    Int(i64),
    /// A `float 64` (`float 32` is not read: the runtime never writes it).
    Float(f64),
    /// A `str`'s bytes (not checked as UTF-8 here).
    Str(&'a [u8]),
    /// A `bin`'s bytes.
    Bin(&'a [u8]),
    /// An array of this many items, which follow.
    Array(u32),
    /// A map of this many entries (key, then value), which follow.
    Map(u32),
}

/// A cursor over MessagePack bytes.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next item's head; `None` at the end of the bytes, on bytes cut
    /// short, and for what the runtime does not read (`float 32`, an
    /// unsigned integer past `i64`, extension types, the unused marker).
    pub fn next_item(&mut self) -> Option<Item<'a>> {
        let marker = self.take(1)?[0];
        match marker {
            0x00..=0x7f => Some(Item::Int(i64::from(marker))),
            0x80..=0x8f => Some(Item::Map(u32::from(marker & 0x0f))),
            0x90..=0x9f => Some(Item::Array(u32::from(marker & 0x0f))),
            0xa0..=0xbf => self.take(usize::from(marker & 0x1f)).map(Item::Str),
            0xc0 => Some(Item::Nil),
            0xc2 => Some(Item::Bool(false)),
            0xc3 => Some(Item::Bool(true)),
            0xc4..=0xc6 => {
                let n = self.length(marker - 0xc4)?;
                self.take(n).map(Item::Bin)
            }
            0xcb => Some(Item::Float(f64::from_be_bytes(self.array()?))),
            0xcc => Some(Item::Int(i64::from(self.array::<1>()?[0]))),
            0xcd => Some(Item::Int(i64::from(u16::from_be_bytes(self.array()?)))),
            0xce => Some(Item::Int(i64::from(u32::from_be_bytes(self.array()?)))),
            0xcf => i64::try_from(u64::from_be_bytes(self.array()?))
                .ok()
                .map(Item::Int),
            0xd0 => Some(Item::Int(i64::from(i8::from_be_bytes(self.array()?)))),
            0xd1 => Some(Item::Int(i64::from(i16::from_be_bytes(self.array()?)))),
            0xd2 => Some(Item::Int(i64::from(i32::from_be_bytes(self.array()?)))),
            0xd3 => Some(Item::Int(i64::from_be_bytes(self.array()?))),
            0xd9..=0xdb => {
                let n = self.length(marker - 0xd9)?;
                self.take(n).map(Item::Str)
            }
            0xdc => Some(Item::Array(u32::from(u16::from_be_bytes(self.array()?)))),
            0xdd => Some(Item::Array(u32::from_be_bytes(self.array()?))),
            0xde => Some(Item::Map(u32::from(u16::from_be_bytes(self.array()?)))),
            0xdf => Some(Item::Map(u32::from_be_bytes(self.array()?))),
            0xe0..=0xff => Some(Item::Int(i64::from(marker.cast_signed()))),
            _ => None,
        }
    }

    /// A string's length of 1, 2 or 4 bytes (`width` 0, 1, 2).
    fn length(&mut self, width: u8) -> Option<usize> {
        let n = match width {
            0 => u32::from(self.array::<1>()?[0]),
            1 => u32::from(u16::from_be_bytes(self.array()?)),
            _ => u32::from_be_bytes(self.array()?),
        };
        usize::try_from(n).ok()
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }
}

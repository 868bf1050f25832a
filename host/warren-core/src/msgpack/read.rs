//! MessagePack read one item at a time, with no value built: what a
//! decoder needs to build another language's values straight from the
//! bytes (guest-lua unpacks packed payloads into Lua tables with it).
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Item, Reader};
    use crate::msgpack::tests::any_value;
    use crate::msgpack::{decode, encode};
    use crate::value::Value;

    /// The value `r` reads next, rebuilt item by item.
    fn rebuild(r: &mut Reader<'_>) -> Option<Value> {
        Some(match r.next_item()? {
            Item::Nil => Value::Nil,
            Item::Bool(b) => Value::Bool(b),
            Item::Int(i) => Value::Int(i),
            Item::Float(f) => Value::Float(f),
            Item::Str(b) | Item::Bin(b) => Value::Str(b.to_vec()),
            Item::Array(n) => Value::Array((0..n).map(|_| rebuild(r)).collect::<Option<_>>()?),
            Item::Map(n) => Value::Map(
                (0..n)
                    .map(|_| Some((rebuild(r)?, rebuild(r)?)))
                    .collect::<Option<_>>()?,
            ),
        })
    }

    #[test]
    fn what_the_runtime_never_writes_or_the_bytes_do_not_hold_is_not_read() {
        let cases: &[&[u8]] = &[
            &[],
            &[0xca, 0x3f, 0x80, 0, 0],
            &[0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0],
            &[0xd4, 0x01, 0x00],
            &[0xc1],
            &[0xdb, 0x00, 0xff, 0xff, 0xff, b'a'],
            &[0xcd, 0x01],
        ];
        for bytes in cases {
            assert_eq!(Reader::new(bytes).next_item(), None, "{bytes:?}");
        }
        let mut r = Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            r.next_item(),
            Some(Item::Array(u32::MAX)),
            "a count as read"
        );
        assert_eq!(r.remaining(), 0);
    }

    proptest! {
        #[test]
        fn any_encoding_reads_back_item_by_item(v in any_value()) {
            let bytes = encode(&v);
            let mut r = Reader::new(&bytes);
            let back = rebuild(&mut r).expect("reads");
            prop_assert_eq!(r.remaining(), 0);
            // NaN is not equal to itself: compare the encodings.
            prop_assert_eq!(encode(&back), bytes);
        }

        #[test]
        fn any_bytes_read_as_the_decoder_reads_them_or_not_at_all(
            bytes in proptest::collection::vec(any::<u8>(), 0..48),
        ) {
            let mut r = Reader::new(&bytes);
            if let Some(v) = rebuild(&mut r).filter(|_| r.remaining() == 0) {
                let decoded = decode(&bytes).expect("what the reader reads decodes");
                prop_assert_eq!(encode(&v), encode(&decoded));
            }
        }
    }
}

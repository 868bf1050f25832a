//! MessagePack, the one encoding of values between languages (component
//! payloads, spawn arguments, results). Decoding never panics: malformed
//! or truncated bytes are an error, and lengths are checked against the
//! bytes present before anything is allocated for them (rmp-serde's
//! behaviour; fuzzed by `fuzz/fuzz_targets/msgpack_decode.rs`).
//!
//! Encoding writes each value with rmp's markers directly: the same bytes
//! as `rmp_serde::to_vec` of the value (checked by a property test below),
//! without serde's dispatch per value: a third fewer instructions for a
//! small table's payload crossing from Lua to a component (1,343 → 876).
//!
//! [`Reader`] reads bytes an item at a time with no value built, and
//! [`scan`] checks that a guest's bytes are exactly what [`encode`] writes
//! for a value that may be sent, so they can be carried as they are.

use rmp::encode as w;

use crate::value::Value;

mod read;
mod scan;

pub use read::{Item, Reader};
pub use scan::scan;

/// Room reserved up front for an encoding: a small message's payload fits.
pub const ENCODE_ROOM: usize = 64;

/// Encodes a value as MessagePack: text as `str`, other byte strings as
/// `bin`, integers in their shortest form, floats as `float 64`.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENCODE_ROOM);
    write_value(&mut out, value);
    out
}

/// A collection's length as MessagePack's 32-bit length (a value that
/// large cannot be held in memory under any message limit).
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

// The writers below are the pieces of `encode`, for an encoder that walks
// its own values (guest-lua's, straight from a Lua table): what they write
// in sequence is what `encode` writes for the same value. Writes into a
// Vec cannot fail: each result is `Ok` and ignored.

/// Writes `nil`.
pub fn write_nil(out: &mut Vec<u8>) {
    let _ = w::write_nil(out);
}

/// Writes a boolean.
pub fn write_bool(out: &mut Vec<u8>, b: bool) {
    let _ = w::write_bool(out, b);
}

/// Writes an integer in its shortest form.
pub fn write_int(out: &mut Vec<u8>, i: i64) {
    let _ = w::write_sint(out, i);
}

/// Writes a float as `float 64`.
pub fn write_float(out: &mut Vec<u8>, f: f64) {
    let _ = w::write_f64(out, f);
}

/// Writes a byte string: `str` when it is UTF-8 text, else `bin`, with
/// the shortest header rmp writes (by hand: rmp's writer goes through
/// `io::Write` a piece at a time, about 150 instructions for a short
/// string).
pub fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let head = bytes_head(bytes.len(), is_text(bytes));
    out.reserve(head.len + bytes.len());
    out.extend_from_slice(head.as_slice());
    out.extend_from_slice(bytes);
}

/// Whether `bytes` are UTF-8 text, written as `str` (ASCII looked at
/// first: most strings are, and `is_ascii` is cheaper on short ones).
fn is_text(bytes: &[u8]) -> bool {
    bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()
}

/// A string's header as the encoder writes it (at most 5 bytes).
struct Head {
    buf: [u8; 5],
    len: usize,
}

impl Head {
    fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// The header of a byte string of `n` bytes, text (`str`) or not (`bin`):
/// the shortest there is (the scanner, `msgpack/scan.rs`, accepts only
/// these).
fn bytes_head(n: usize, text: bool) -> Head {
    let mut buf = [0u8; 5];
    let len = match (text, u8::try_from(n), u16::try_from(n)) {
        (true, Ok(short @ 0..=31), _) => {
            buf[0] = 0xa0 | short;
            1
        }
        (_, Ok(byte), _) => {
            buf[..2].copy_from_slice(&[if text { 0xd9 } else { 0xc4 }, byte]);
            2
        }
        (_, Err(_), Ok(word)) => {
            buf[0] = if text { 0xda } else { 0xc5 };
            buf[1..3].copy_from_slice(&word.to_be_bytes());
            3
        }
        (_, Err(_), Err(_)) => {
            buf[0] = if text { 0xdb } else { 0xc6 };
            buf[1..5].copy_from_slice(&len32(n).to_be_bytes());
            5
        }
    };
    Head { buf, len }
}

/// Writes the header of an array of `n` items (the items follow).
pub fn write_array_len(out: &mut Vec<u8>, n: usize) {
    let _ = w::write_array_len(out, len32(n));
}

/// Writes the header of a map of `n` entries (each key, then its value,
/// follows).
pub fn write_map_len(out: &mut Vec<u8>, n: usize) {
    let _ = w::write_map_len(out, len32(n));
}

/// Writes `value` at the end of `out`: the bytes [`encode`] answers.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Nil => write_nil(out),
        Value::Bool(b) => write_bool(out, *b),
        Value::Int(i) => write_int(out, *i),
        Value::Float(f) => write_float(out, *f),
        Value::Str(bytes) => write_bytes(out, bytes),
        Value::Array(items) => {
            write_array_len(out, items.len());
            for item in items {
                write_value(out, item);
            }
        }
        Value::Map(entries) => {
            write_map_len(out, entries.len());
            for (k, v) in entries {
                write_value(out, k);
                write_value(out, v);
            }
        }
    }
}

/// Decodes MessagePack into a value: exactly one, so that bytes after it
/// are refused rather than silently dropped (`c0 c0` was read as `nil`).
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    let mut cursor = std::io::Cursor::new(bytes);
    let value: Value = rmp_serde::from_read(&mut cursor)
        .map_err(|e| format!("malformed MessagePack payload: {e}"))?;
    let read = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
    if read != bytes.len() {
        return Err(format!(
            "malformed MessagePack payload: {} bytes after its value",
            bytes.len().saturating_sub(read)
        ));
    }
    Ok(value)
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn round_trips_every_kind() {
        let v = Value::Map(vec![
            (
                Value::str("list"),
                Value::Array(vec![
                    Value::Int(-3),
                    Value::Float(1.5),
                    Value::Nil,
                    Value::Bool(true),
                ]),
            ),
            (Value::str("bin"), Value::Str(vec![0, 255, 1])),
            (Value::Int(7), Value::str("seven")),
        ]);
        assert_eq!(decode(&encode(&v)), Ok(v));
    }

    #[test]
    fn bytes_after_the_value_are_refused() {
        assert_eq!(decode(&[0xc0]), Ok(Value::Nil));
        let err = decode(&[0xc0, 0xc0]).expect_err("trailing");
        assert!(err.contains("1 bytes after its value"), "{err}");
        let mut two = encode(&Value::Int(300));
        two.extend(encode(&Value::str("x")));
        assert!(decode(&two).is_err());
    }

    /// Any value: every kind, nested a few levels, with text and non-text
    /// strings and integers and floats at the encodings' edges.
    pub(crate) fn any_value() -> impl Strategy<Value = Value> {
        let int = prop_oneof![
            any::<i64>(),
            -40i64..300,
            Just(i64::MIN),
            Just(i64::MAX),
            Just(-129),
            Just(65_536),
            Just(-32_769),
            Just(4_294_967_296),
        ];
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<bool>().prop_map(Value::Bool),
            int.prop_map(Value::Int),
            any::<f64>().prop_map(Value::Float),
            ".{0,40}".prop_map(Value::str),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Str),
        ];
        leaf.prop_recursive(4, 64, 20, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
                proptest::collection::vec((inner.clone(), inner), 0..20).prop_map(Value::Map),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn encodes_as_rmp_serde_does(v in any_value()) {
            let ours = encode(&v);
            proptest::prop_assert_eq!(&ours, &rmp_serde::to_vec(&v).expect("serializes"));
            // NaN is not equal to itself: compare the re-encoding instead.
            let back = decode(&ours).expect("decodes");
            proptest::prop_assert_eq!(encode(&back), ours);
        }
    }

    #[test]
    fn long_collections_and_strings_take_the_wide_forms() {
        let text = Value::str("x".repeat(70_000));
        let list = Value::Array(vec![Value::Nil; 70_000]);
        let mid = Value::str("é".repeat(200));
        let bin = Value::Str(vec![0xff; 70_000]);
        let bin16 = Value::Str(vec![0xfe; 40_000]);
        for v in [text, list, mid, bin, bin16] {
            assert_eq!(encode(&v), rmp_serde::to_vec(&v).expect("serializes"));
            assert_eq!(decode(&encode(&v)), Ok(v));
        }
    }

    #[test]
    fn malformed_bytes_are_an_error() {
        assert!(decode(&[0xc1]).is_err());
        assert!(decode(&[0x92, 0x01]).is_err(), "truncated array");
        assert!(
            decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err(),
            "huge length, no data"
        );
    }

    #[test]
    fn ext_types_are_refused_by_name() {
        // fixext 1, ext 8 with a huge length, fixext 4 inside an array.
        for bytes in [
            &[0xd4, 0xff, 0x00][..],
            &[0xc7, 0xff, 0xff, 0x00],
            &[0x91, 0xd6, 1, 2, 3, 4, 5],
        ] {
            let e = decode(bytes).expect_err("an ext type");
            assert!(e.contains("MessagePack ext type"), "{bytes:02x?}: {e}");
        }
    }
}

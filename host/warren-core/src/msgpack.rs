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

use rmp::encode as w;

use crate::value::Value;

/// Room reserved up front for an encoding: a small message's payload fits.
const ENCODE_ROOM: usize = 64;

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

fn write_value(out: &mut Vec<u8>, value: &Value) {
    // Writes into a Vec cannot fail: each result is `Ok` and ignored.
    match value {
        Value::Nil => {
            let _ = w::write_nil(out);
        }
        Value::Bool(b) => {
            let _ = w::write_bool(out, *b);
        }
        Value::Int(i) => {
            let _ = w::write_sint(out, *i);
        }
        Value::Float(f) => {
            let _ = w::write_f64(out, *f);
        }
        Value::Str(bytes) => {
            let _ = match std::str::from_utf8(bytes) {
                Ok(text) => w::write_str(out, text),
                Err(_) => w::write_bin(out, bytes),
            };
        }
        Value::Array(items) => {
            let _ = w::write_array_len(out, len32(items.len()));
            for item in items {
                write_value(out, item);
            }
        }
        Value::Map(entries) => {
            let _ = w::write_map_len(out, len32(entries.len()));
            for (k, v) in entries {
                write_value(out, k);
                write_value(out, v);
            }
        }
    }
}

/// Decodes MessagePack into a value.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    rmp_serde::from_slice(bytes).map_err(|e| format!("malformed MessagePack payload: {e}"))
}

#[cfg(test)]
mod tests {
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

    /// Any value: every kind, nested a few levels, with text and non-text
    /// strings and integers and floats at the encodings' edges.
    fn any_value() -> impl Strategy<Value = Value> {
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
        for v in [text, list] {
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
}

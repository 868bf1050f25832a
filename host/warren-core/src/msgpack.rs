//! MessagePack, the one encoding of values between languages (component
//! payloads, spawn arguments, results). Decoding never panics: malformed
//! or truncated bytes are an error, and lengths are checked against the
//! bytes present before anything is allocated for them (rmp-serde's
//! behaviour; fuzzed by `fuzz/fuzz_targets/msgpack_decode.rs`).

use crate::value::Value;

/// Encodes a value as MessagePack.
pub fn encode(value: &Value) -> Vec<u8> {
    // Serializing a `Value` into a Vec cannot fail: every variant maps onto
    // MessagePack and the writer is infallible.
    rmp_serde::to_vec(value).unwrap_or_default()
}

/// Decodes MessagePack into a value.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    rmp_serde::from_slice(bytes).map_err(|e| format!("malformed MessagePack payload: {e}"))
}

#[cfg(test)]
mod tests {
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
    fn malformed_bytes_are_an_error() {
        assert!(decode(&[0xc1]).is_err());
        assert!(decode(&[0x92, 0x01]).is_err(), "truncated array");
        assert!(
            decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err(),
            "huge length, no data"
        );
    }
}

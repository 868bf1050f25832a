use proptest::prelude::*;

use super::scan;
use crate::limits::{MAX_DEPTH, check_values, wire_size};
use crate::msgpack::tests::any_value;
use crate::msgpack::{decode, encode};
use crate::value::Value;

/// What `scan` must answer for `bytes`, found the long way: decode,
/// re-encode, check, measure.
fn expected(bytes: &[u8]) -> Option<usize> {
    let v = decode(bytes).ok()?;
    let values = std::slice::from_ref(&v);
    (encode(&v) == bytes && check_values(values, "v").is_ok()).then(|| wire_size(values))
}

fn nested(levels: usize) -> Value {
    (0..levels).fold(Value::Nil, |inner, _| Value::Array(vec![inner]))
}

#[test]
fn the_encoders_own_bytes_are_kept_and_measured_as_wire_size() {
    let record = Value::Map(vec![
        (Value::str("id"), Value::Int(7)),
        (Value::str("kind"), Value::str("tick")),
        (Value::Int(-200), Value::Float(0.5)),
        (
            Value::Bool(true),
            Value::Array(vec![Value::Nil, Value::Str(vec![0xff])]),
        ),
        (Value::Float(f64::INFINITY), Value::Float(f64::NAN)),
    ]);
    for v in [record, nested(MAX_DEPTH), Value::str("x".repeat(70_000))] {
        let wire = wire_size(std::slice::from_ref(&v));
        assert_eq!(scan(&encode(&v)), Some(wire), "{v:?}");
    }
}

#[test]
fn another_encoders_forms_are_left_to_the_decoder() {
    let cases: &[(&str, &[u8])] = &[
        ("float 32", &[0xca, 0x3f, 0x80, 0, 0]),
        ("u8 holding a fixint", &[0xcc, 0x05]),
        ("i8 holding a positive", &[0xd0, 0x05]),
        ("i16 holding 1000 (u16's length)", &[0xd1, 0x03, 0xe8]),
        ("u16 holding 16", &[0xcd, 0x00, 0x10]),
        (
            "i64 holding -1",
            &[0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ),
        ("bin holding text", &[0xc4, 0x02, b'h', b'i']),
        ("empty bin", &[0xc4, 0x00]),
        ("str holding no text", &[0xa1, 0xff]),
        ("str 8 holding a short text", &[0xd9, 0x01, b'a']),
        ("array 16 of one", &[0xdc, 0x00, 0x01, 0xc0]),
        ("map 32 of none", &[0xdf, 0, 0, 0, 0]),
        ("ext", &[0xd4, 0x01, 0x00]),
        ("i8 holding -1", &[0xd0, 0xff]),
        ("i32 holding -1", &[0xd2, 0xff, 0xff, 0xff, 0xff]),
        ("i32 holding -200 (i16's)", &[0xd2, 0xff, 0xff, 0xff, 0x38]),
        ("u32 holding 5", &[0xce, 0, 0, 0, 5]),
        ("u64 holding 5", &[0xcf, 0, 0, 0, 0, 0, 0, 0, 5]),
        ("str 16 of one byte", &[0xda, 0x00, 0x01, b'a']),
        ("str 32 of one byte", &[0xdb, 0, 0, 0, 1, b'a']),
        ("bin 16 of one byte", &[0xc5, 0x00, 0x01, 0xff]),
        ("bin 32 of one byte", &[0xc6, 0, 0, 0, 1, 0xff]),
        ("array 32 of none", &[0xdd, 0, 0, 0, 0]),
        ("map 16 of none", &[0xde, 0, 0]),
    ];
    for (what, bytes) in cases {
        assert_eq!(scan(bytes), None, "{what}");
        assert!(decode(bytes).is_ok() || *what == "ext", "{what} decodes");
    }
}

#[test]
fn what_may_not_be_sent_or_does_not_decode_is_refused() {
    let mut too_deep = encode(&nested(MAX_DEPTH + 1));
    let cases: &[(&str, &[u8])] = &[
        ("nil key", &[0x81, 0xc0, 0x01]),
        ("NaN key", &[0x81, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0, 0x01]),
        ("array key", &[0x81, 0x90, 0x01]),
        ("map key", &[0x81, 0x80, 0x01]),
        ("trailing bytes", &[0xc0, 0xc0]),
        ("cut short", &[0x92, 0x01]),
        (
            "a count with nothing after it",
            &[0xdd, 0xff, 0xff, 0xff, 0xff],
        ),
        (
            "a string longer than the bytes",
            &[0xdb, 0x00, 0xff, 0xff, 0xff, b'a'],
        ),
        ("u64 past i64", &[0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        ("the unused marker", &[0xc1]),
        ("nothing", &[]),
    ];
    for (what, bytes) in cases {
        assert_eq!(scan(bytes), None, "{what}");
    }
    assert_eq!(scan(&too_deep), None, "65 levels");
    too_deep.drain(..1);
    assert!(scan(&too_deep).is_some(), "64 levels");
}

proptest! {
    #[test]
    fn any_value_the_encoder_writes_is_scanned_as_checked(v in any_value()) {
        let bytes = encode(&v);
        let values = std::slice::from_ref(&v);
        let sendable = check_values(values, "v").is_ok();
        prop_assert_eq!(scan(&bytes), sendable.then(|| wire_size(values)));
    }

    #[test]
    fn bytes_are_kept_only_when_they_read_back_the_same(
        v in any_value(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 0..4),
    ) {
        let mut bytes = encode(&v);
        for (at, byte, how) in edits {
            let i = at.index(bytes.len() + 1);
            match how {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        prop_assert_eq!(scan(&bytes), expected(&bytes));
    }

    #[test]
    fn any_bytes_are_scanned_as_decoding_would_judge_them(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        prop_assert_eq!(scan(&bytes), expected(&bytes));
    }
}

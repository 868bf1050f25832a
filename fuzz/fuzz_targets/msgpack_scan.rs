//! Any bytes given to the scanner that keeps a component's payload as it
//! sent it: a size only for bytes that decode, re-encode to themselves,
//! pass the value checks and measure that size; never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_core::limits::{check_values, wire_size};
use warren_core::msgpack::{decode, encode, scan};

fuzz_target!(|data: &[u8]| {
    if let Some(wire) = scan(data) {
        let value = decode(data).expect("scanned bytes decode");
        assert_eq!(encode(&value), data, "scanned bytes are the encoder's");
        let values = std::slice::from_ref(&value);
        assert!(check_values(values, "v").is_ok(), "scanned bytes may be sent");
        assert_eq!(wire_size(values), wire);
    }
});

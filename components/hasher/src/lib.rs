//! Hashes each "hash" message's bytes (a binary string) with `rounds` rounds
//! of FNV-1a and answers on topic "hash" with the 64-bit digest.

use warren_sdk::{Args, Error, Payload, Process};

fn fnv1a(data: &[u8], rounds: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..rounds {
        for b in data {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

struct Hasher;

impl Process for Hasher {
    fn run(args: Args) -> Result<Payload, Error> {
        let rounds: u32 = args.get(0)?;
        let mut done: u64 = 0;
        while let Some(msg) = warren_sdk::receive(None)? {
            if msg.topic == "stop" {
                break;
            }
            let bytes: serde_bytes_like::Bytes = msg.data()?;
            warren_sdk::send(&msg.from, "hash", &(fnv1a(&bytes.0, rounds) as i64))?;
            done += 1;
        }
        warren_sdk::payload(&done)
    }
}

/// Accepts MessagePack bin or str as bytes.
mod serde_bytes_like {
    pub struct Bytes(pub Vec<u8>);

    impl<'de> serde::Deserialize<'de> for Bytes {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
                fn visit_str<E>(self, v: &str) -> Result<Bytes, E> {
                    Ok(Bytes(v.as_bytes().to_vec()))
                }
            }
            d.deserialize_any(V)
        }
    }
}

warren_sdk::export!(Hasher);

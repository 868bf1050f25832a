//! `encode_uri` / `decode_uri`: form encoding (`application/x-www-form-urlencoded`).
//!
//! [`encode_uri`] leaves `A-Z a-z 0-9 - _ . ~` alone, writes a space as `+`
//! and every other byte as `%XX`, so its output is always ASCII and safe in
//! a query or form body. [`decode_uri`] is its inverse; it fails with
//! `INVALID` on a `%` not followed by two hex digits rather than guessing.

use warren_core::ProcError;

use crate::error::invalid;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Form-encodes `s`: space becomes `+`, unreserved bytes stay, every other
/// byte becomes `%XX`.
pub fn encode_uri(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
    out
}

/// Decodes form encoding: `+` becomes a space, `%XX` its byte. `INVALID`
/// on a `%` not followed by two hex digits.
pub fn decode_uri(s: &str) -> Result<Vec<u8>, ProcError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let pair = bytes.get(i + 1..i + 3).and_then(|p| {
                    let hi = hex_value(p[0])?;
                    let lo = hex_value(p[1])?;
                    Some(hi << 4 | lo)
                });
                let Some(byte) = pair else {
                    return Err(invalid(format!(
                        "decode_uri: bad escape at byte {i} of {:?}",
                        truncated(s)
                    )));
                };
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// At most 64 characters of `s`, for messages.
fn truncated(s: &str) -> String {
    const SHOWN: usize = 64;
    match s.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_forms() {
        assert_eq!(encode_uri(b"a b&c=d/e"), "a+b%26c%3Dd%2Fe");
        assert_eq!(encode_uri(b"AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(encode_uri("é+%".as_bytes()), "%C3%A9%2B%25");
        assert_eq!(encode_uri(&[0, 255]), "%00%FF");
        assert_eq!(encode_uri(b""), "");
    }

    #[test]
    fn decodes_and_refuses_bad_escapes() {
        assert_eq!(decode_uri("a+b%26c%3dd").expect("valid"), b"a b&c=d");
        assert_eq!(decode_uri("%C3%A9").expect("valid"), "é".as_bytes());
        assert_eq!(decode_uri("%00%ff").expect("valid"), vec![0, 255]);
        for bad in ["%", "%4", "%zz", "abc%g1", "%%41"] {
            let err = decode_uri(bad).expect_err(bad);
            assert_eq!(err.kind, warren_core::ErrorKind::Invalid, "{bad}");
        }
        let long = format!("{}%", "x".repeat(500));
        let err = decode_uri(&long).expect_err("bad escape");
        assert!(err.message.len() < 200, "{}", err.message);
    }

    #[test]
    fn round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_uri(&encode_uri(&all)).expect("valid"), all);
    }
}

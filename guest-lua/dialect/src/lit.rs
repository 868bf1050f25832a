//! Values of literal tokens, for literal types, validator arguments and
//! `typeof` shapes: strings decoded as Lua 5.4 reads them, numerals
//! converted as `lua_stringtonumber` does. The lexer has already checked
//! the token, so decoding here is lenient and never fails.

use crate::ty::Lit;

/// The value of a numeral token: an integer when it has no `.`/exponent
/// and fits (hex integers wrap around, as in Lua), a float otherwise.
pub(crate) fn number(text: &str) -> Lit {
    let b = text.as_bytes();
    let hex = b.len() >= 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X');
    if hex {
        let digits = &b[2..];
        if digits.iter().all(u8::is_ascii_hexdigit) {
            let mut v: u64 = 0;
            for &c in digits {
                v = v.wrapping_mul(16).wrapping_add(hex_val(c));
            }
            return Lit::Int(v as i64);
        }
        return Lit::Float(hex_float(digits));
    }
    if b.iter().all(u8::is_ascii_digit)
        && let Ok(v) = text.parse::<i64>()
    {
        return Lit::Int(v);
    }
    Lit::Float(text.parse::<f64>().unwrap_or(f64::NAN))
}

fn hex_val(c: u8) -> u64 {
    u64::from(char::from(c).to_digit(16).unwrap_or(0))
}

/// `a.bpE` in hex (after `0x`).
fn hex_float(b: &[u8]) -> f64 {
    let mut m = 0.0f64;
    let mut exp: i64 = 0;
    let mut i = 0;
    let mut frac = false;
    while i < b.len() {
        let c = b[i];
        if c == b'.' {
            frac = true;
        } else if c.is_ascii_hexdigit() {
            m = m * 16.0 + hex_val(c) as f64;
            if frac {
                exp -= 4;
            }
        } else {
            break;
        }
        i += 1;
    }
    if i < b.len() && (b[i] == b'p' || b[i] == b'P') {
        let e = std::str::from_utf8(&b[i + 1..])
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0);
        exp = exp.saturating_add(e);
    }
    m * 2f64.powi(i32::try_from(exp.clamp(-4000, 4000)).unwrap_or(0))
}

/// Whether Lua 5.4 converts the string `b` to a number (`tonumber`, and
/// arithmetic on strings): blanks around an optionally signed decimal or
/// hexadecimal numeral, as `l_str2int` and `l_str2d` accept. `inf` and
/// `nan` are not numerals to Lua.
pub(crate) fn str_is_numeric(b: &[u8]) -> bool {
    let blank = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = b.iter().position(|c| !blank(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !blank(c)).map_or(start, |i| i + 1);
    let mut s = b.get(start..end).unwrap_or(&[]);
    if let [b'+' | b'-', rest @ ..] = s {
        s = rest;
    }
    let (hex, body) = match s {
        [b'0', b'x' | b'X', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    let digit = |c: &u8| {
        if hex {
            c.is_ascii_hexdigit()
        } else {
            c.is_ascii_digit()
        }
    };
    let mut i = 0;
    let mut digits = 0;
    while body.get(i).is_some_and(digit) {
        i += 1;
        digits += 1;
    }
    if body.get(i) == Some(&b'.') {
        i += 1;
        while body.get(i).is_some_and(digit) {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return false;
    }
    let exp = if hex { [b'p', b'P'] } else { [b'e', b'E'] };
    if body.get(i).is_some_and(|c| exp.contains(c)) {
        i += 1;
        if matches!(body.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let at = i;
        while body.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == at {
            return false;
        }
    }
    i == body.len()
}

/// The bytes of a string token (short with escapes, or long bracket).
pub(crate) fn string(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    match b.first() {
        Some(b'[') => long_string(b),
        Some(_) => short_string(b),
        None => Vec::new(),
    }
}

fn long_string(b: &[u8]) -> Vec<u8> {
    let level = b.iter().skip(1).take_while(|&&c| c == b'=').count();
    let open = level + 2;
    let close = level + 2;
    let body = b.get(open..b.len().saturating_sub(close)).unwrap_or(&[]);
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    // Skip a first newline.
    if let Some(&c) = body.first()
        && (c == b'\n' || c == b'\r')
    {
        i = 1;
        if let Some(&d) = body.get(1)
            && (d == b'\n' || d == b'\r')
            && d != c
        {
            i = 2;
        }
    }
    while i < body.len() {
        let c = body[i];
        if c == b'\n' || c == b'\r' {
            out.push(b'\n');
            if let Some(&d) = body.get(i + 1)
                && (d == b'\n' || d == b'\r')
                && d != c
            {
                i += 1;
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

fn short_string(b: &[u8]) -> Vec<u8> {
    let body = b.get(1..b.len().saturating_sub(1)).unwrap_or(&[]);
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = body.get(i) else { break };
        i += 1;
        match e {
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'\n' | b'\r' => {
                out.push(b'\n');
                if let Some(&d) = body.get(i)
                    && (d == b'\n' || d == b'\r')
                    && d != e
                {
                    i += 1;
                }
            }
            b'x' => {
                let mut v = 0u64;
                for _ in 0..2 {
                    if let Some(&d) = body.get(i) {
                        v = v * 16 + hex_val(d);
                        i += 1;
                    }
                }
                out.push(u8::try_from(v).unwrap_or(0));
            }
            b'z' => {
                while body
                    .get(i)
                    .is_some_and(|c| c.is_ascii_whitespace() || *c == 0x0b)
                {
                    i += 1;
                }
            }
            b'u' => {
                i += 1; // '{'
                let mut v: u32 = 0;
                while let Some(&d) = body.get(i).filter(|d| d.is_ascii_hexdigit()) {
                    v = v.saturating_mul(16).saturating_add(hex_val(d) as u32);
                    i += 1;
                }
                i += 1; // '}'
                utf8_esc(v, &mut out);
            }
            b'0'..=b'9' => {
                let mut v: u32 = u32::from(e - b'0');
                let mut n = 1;
                while n < 3 {
                    match body.get(i) {
                        Some(&d) if d.is_ascii_digit() => {
                            v = v * 10 + u32::from(d - b'0');
                            i += 1;
                            n += 1;
                        }
                        _ => break,
                    }
                }
                out.push(u8::try_from(v).unwrap_or(0));
            }
            other => out.push(other),
        }
    }
    out
}

/// Lua's `luaO_utf8esc`: up to 6 bytes, values up to 2^31.
fn utf8_esc(mut x: u32, out: &mut Vec<u8>) {
    if x < 0x80 {
        out.push(x as u8);
        return;
    }
    let mut buf = [0u8; 8];
    let mut n = 1;
    let mut mfb: u32 = 0x3f;
    loop {
        buf[8 - n] = 0x80 | (x & 0x3f) as u8;
        n += 1;
        x >>= 6;
        mfb >>= 1;
        if x <= mfb {
            break;
        }
    }
    buf[8 - n] = ((!mfb << 1) | x) as u8;
    out.extend_from_slice(&buf[8 - n..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(number("42"), Lit::Int(42));
        assert_eq!(number("0x10"), Lit::Int(16));
        assert_eq!(number("0xffffffffffffffff"), Lit::Int(-1));
        assert_eq!(number("1.5"), Lit::Float(1.5));
        assert_eq!(number("3."), Lit::Float(3.0));
        assert_eq!(number(".5"), Lit::Float(0.5));
        assert_eq!(number("1e2"), Lit::Float(100.0));
        assert_eq!(number("0xA.8p1"), Lit::Float(21.0));
        assert_eq!(
            number("9223372036854775808"),
            Lit::Float(9.223_372_036_854_776e18)
        );
    }

    #[test]
    fn numeric_strings() {
        for yes in [
            "10", " 1.5 ", "-3", "+2", "0x1F", "0x.8p1", "1e5", "1E-2", ".5", "5.", "\t7\n",
        ] {
            assert!(str_is_numeric(yes.as_bytes()), "{yes:?}");
        }
        for no in [
            "", " ", "ten", "abc", "1x", "inf", "nan", "0x", "1e", "--1", "1 2", "1\0",
        ] {
            assert!(!str_is_numeric(no.as_bytes()), "{no:?}");
        }
    }

    #[test]
    fn strings() {
        assert_eq!(string("\"a\\tb\""), b"a\tb");
        assert_eq!(string("'\\x41\\65\\u{48}'"), b"AAH");
        assert_eq!(string("'\\u{E9}'"), "é".as_bytes());
        assert_eq!(string("[==[\nx]]y]==]"), b"x]]y");
        assert_eq!(string("'a\\z  \n  b'"), b"ab");
    }
}

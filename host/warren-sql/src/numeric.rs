//! PostgreSQL's binary `numeric` as its exact decimal text.
//!
//! The wire form is: digit count, weight (of the first base-10000 digit),
//! sign (positive, negative, NaN, ±Infinity), display scale, then the
//! base-10000 digits. The text has exactly `dscale` fraction digits, as
//! PostgreSQL prints it; nothing is rounded.

/// Sign word of a negative numeric.
const NEG: u16 = 0x4000;
/// Sign word of NaN.
const NAN: u16 = 0xC000;
/// Sign word of +Infinity.
const PINF: u16 = 0xD000;
/// Sign word of -Infinity.
const NINF: u16 = 0xF000;

/// Largest display scale accepted: PostgreSQL's own maximum (1000), so a
/// corrupt header cannot make us build a huge string.
const MAX_DSCALE: usize = 1000;

/// The decimal text of a binary numeric, or why it is malformed.
pub fn numeric_text(raw: &[u8]) -> Result<String, String> {
    let word = |i: usize| -> Result<[u8; 2], String> {
        raw.get(i..i + 2)
            .and_then(|s| <[u8; 2]>::try_from(s).ok())
            .ok_or_else(|| "truncated numeric".to_string())
    };
    let ndigits = usize::from(u16::from_be_bytes(word(0)?));
    let weight = i64::from(i16::from_be_bytes(word(2)?));
    let sign = u16::from_be_bytes(word(4)?);
    let dscale = usize::from(u16::from_be_bytes(word(6)?));
    match sign {
        NAN => return Ok("NaN".into()),
        PINF => return Ok("Infinity".into()),
        NINF => return Ok("-Infinity".into()),
        _ => {}
    }
    if dscale > MAX_DSCALE {
        return Err(format!("numeric display scale {dscale} out of range"));
    }
    let digits = (0..ndigits)
        .map(|k| word(8 + 2 * k).map(i16::from_be_bytes))
        .collect::<Result<Vec<i16>, String>>()?;
    let digit = |k: i64| -> i16 {
        usize::try_from(k)
            .ok()
            .and_then(|k| digits.get(k).copied())
            .unwrap_or(0)
    };
    let mut out = String::new();
    if sign == NEG {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit(0).to_string());
        for k in 1..=weight {
            out.push_str(&format!("{:04}", digit(k)));
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut k = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(k)));
            k += 1;
        }
        frac.truncate(dscale);
        out.push('.');
        out.push_str(&frac);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        let n = u16::try_from(digits.len()).expect("few digits");
        v.extend_from_slice(&n.to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn integers_fractions_and_signs() {
        assert_eq!(numeric_text(&enc(0, 0, 0, &[])).expect("0"), "0");
        assert_eq!(numeric_text(&enc(0, 0, 2, &[])).expect("0.00"), "0.00");
        assert_eq!(numeric_text(&enc(0, 0, 0, &[42])).expect("42"), "42");
        // 12345678.9 = [1234, 5678, 9000] weight 1, dscale 1
        assert_eq!(
            numeric_text(&enc(1, 0, 1, &[1234, 5678, 9000])).expect("n"),
            "12345678.9"
        );
        // -0.0012 = [12] weight -1, dscale 4
        assert_eq!(numeric_text(&enc(-1, NEG, 4, &[12])).expect("n"), "-0.0012");
        // 0.00000001 = [1] weight -2, dscale 8
        assert_eq!(numeric_text(&enc(-2, 0, 8, &[1])).expect("n"), "0.00000001");
        // 10000 = [1] weight 1 (trailing zero groups omitted)
        assert_eq!(numeric_text(&enc(1, 0, 0, &[1])).expect("n"), "10000");
        // -123.450 keeps the scale's trailing zero
        assert_eq!(
            numeric_text(&enc(0, NEG, 3, &[123, 4500])).expect("n"),
            "-123.450"
        );
    }

    #[test]
    fn special_values_and_garbage() {
        assert_eq!(numeric_text(&enc(0, NAN, 0, &[])).expect("nan"), "NaN");
        assert_eq!(
            numeric_text(&enc(0, PINF, 0, &[])).expect("inf"),
            "Infinity"
        );
        assert_eq!(
            numeric_text(&enc(0, NINF, 0, &[])).expect("-inf"),
            "-Infinity"
        );
        assert!(numeric_text(&[0, 1]).is_err());
        assert!(numeric_text(&enc(0, 0, 0, &[1])[..9]).is_err());
        assert!(numeric_text(&enc(0, 0, 60000, &[1])).is_err());
    }
}

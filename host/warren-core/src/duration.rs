//! Go-style durations (`"150ms"`, `"2s"`, `"1m30s"`, `"-1.5h"`), as used by
//! the Lua `time` module and by configuration files.
//!
//! Values are signed nanoseconds in an `i64`; parsing is exact to the
//! nanosecond and rejects overflow, missing units and unknown units with
//! an error that quotes the input.

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is longer than [`MAX_TEXT_BYTES`] (not looked at).
    #[error("a duration of {0} bytes is longer than {MAX_TEXT_BYTES}")]
    TooLong(usize),
    /// The text is not a Go-style duration.
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// A number has no unit (only `"0"` may omit it).
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    /// The unit is not one of ns, us, µs, ms, s, m, h.
    #[error("unknown unit {unit:?} in duration {text:?}")]
    UnknownUnit {
        /// The unit found.
        unit: String,
        /// The whole input.
        text: String,
    },
    /// The value does not fit in 64-bit nanoseconds.
    #[error("duration {0:?} is out of range")]
    Overflow(String),
}

/// Nanoseconds per unit, as Go's `unitMap`.
const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Longest text [`parse`] looks at. A duration is a few terms ("1h30m");
/// endless "0s" terms never overflow, and parsing 64 MiB of them held a
/// worker past the stuck limit (and the error quoted the text back).
pub const MAX_TEXT_BYTES: usize = 256;

/// The magnitude of the most negative duration, `-(i64::MIN)`.
const MAX_MAGNITUDE: u64 = 1 << 63;

/// Parses a Go-style duration into nanoseconds, as Go's
/// `time.ParseDuration` does: whole numbers in integers (exact to the
/// nanosecond at any size; past 64 bits is an overflow), fractions scaled
/// through a float (exact enough for a fraction of an hour).
pub fn parse(text: &str) -> Result<i64, DurationError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(DurationError::TooLong(text.len()));
    }
    let invalid = || DurationError::Invalid(text.to_owned());
    let overflow = || DurationError::Overflow(text.to_owned());
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (ns, after) = term(rest, text)?;
        total = total
            .checked_add(ns)
            .filter(|t| *t <= MAX_MAGNITUDE)
            .ok_or_else(overflow)?;
        rest = after;
    }
    if negative {
        // `-(1 << 63)` is `i64::MIN` itself.
        return Ok(0i64.wrapping_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| overflow())
}

/// One `<number><unit>` of `rest` (part of `text`): its nanoseconds (at
/// most [`MAX_MAGNITUDE`]) and what follows it.
fn term<'a>(rest: &'a str, text: &str) -> Result<(u64, &'a str), DurationError> {
    let invalid = || DurationError::Invalid(text.to_owned());
    let overflow = || DurationError::Overflow(text.to_owned());
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let whole_len = digits(rest);
    let whole = &rest[..whole_len];
    let mut rest = &rest[whole_len..];
    let mut fraction = "";
    if let Some(after_dot) = rest.strip_prefix('.') {
        let len = digits(after_dot);
        fraction = &after_dot[..len];
        rest = &after_dot[len..];
    }
    if whole.is_empty() && fraction.is_empty() {
        return Err(invalid()); // no digits: "ms", ".s"
    }
    let unit_len = rest
        .find(|c: char| c.is_ascii_digit() || c == '.')
        .unwrap_or(rest.len());
    let unit = &rest[..unit_len];
    if unit.is_empty() {
        return Err(DurationError::MissingUnit(text.to_owned()));
    }
    let scale = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, scale)| *scale)
        .ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
            text: text.to_owned(),
        })?;
    let mut ns = whole_value(whole)
        .and_then(|v| v.checked_mul(scale))
        .filter(|v| *v <= MAX_MAGNITUDE)
        .ok_or_else(overflow)?;
    ns = ns
        .checked_add(fraction_ns(fraction, scale))
        .filter(|v| *v <= MAX_MAGNITUDE)
        .ok_or_else(overflow)?;
    Ok((ns, &rest[unit_len..]))
}

/// The value of a run of ASCII digits (empty: 0); `None` past 64 bits.
fn whole_value(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |v, d| {
        v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Nanoseconds of the fraction `0.<digits>` of a unit of `scale`
/// nanoseconds, rounded down as Go does. Digits past what 64 bits hold are
/// read and dropped (they are below a nanosecond of any unit).
fn fraction_ns(digits: &str, scale: u64) -> u64 {
    let mut value = 0u64;
    let mut denominator = 1f64;
    for d in digits.bytes() {
        let Some(next) = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
        else {
            break;
        };
        value = next;
        denominator *= 10.0;
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "Go scales a fraction through float64 too; below 2^53 it is exact"
    )]
    let scaled = value as f64 * (scale as f64 / denominator);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a fraction of a unit: at most the unit's nanoseconds (3.6e12), never negative"
    )]
    let ns = scaled as u64;
    ns
}

/// Formats nanoseconds the way Go's `Duration.String` does (`"1.5s"`, `"1m30s"`, `"250ms"`).
pub fn format(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let abs = ns.unsigned_abs();
    if abs < 1_000_000_000 {
        let (unit, scale) = match abs {
            0..1_000 => ("ns", 1u64),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{sign}{}{unit}", fraction(abs, scale));
    }
    let hours = abs / 3_600_000_000_000;
    let minutes = (abs / 60_000_000_000) % 60;
    let secs = fraction(abs % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{secs}s"),
        (0, m) => format!("{sign}{m}m{secs}s"),
        (h, m) => format!("{sign}{h}h{m}m{secs}s"),
    }
}

fn fraction(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let frac = format!("{rest:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_past_the_limit_is_refused_unread() {
        let at_limit = "0s".repeat(MAX_TEXT_BYTES / 2);
        assert_eq!(parse(&at_limit), Ok(0));
        let over = format!("{at_limit}0");
        assert_eq!(
            parse(&over),
            Err(DurationError::TooLong(MAX_TEXT_BYTES + 1))
        );
        // The error names the length, not the text.
        assert_eq!(
            DurationError::TooLong(1 << 20).to_string(),
            format!("a duration of 1048576 bytes is longer than {MAX_TEXT_BYTES}")
        );
    }

    #[test]
    fn parses_go_forms() {
        assert_eq!(parse("150ms"), Ok(150_000_000));
        assert_eq!(parse("2s"), Ok(2_000_000_000));
        assert_eq!(parse("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse("-2us"), Ok(-2_000));
        assert_eq!(parse("0"), Ok(0));
    }

    #[test]
    fn rejects_bad_forms() {
        assert!(matches!(parse("10"), Err(DurationError::MissingUnit(_))));
        assert!(matches!(
            parse("3 days"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(parse(""), Err(DurationError::Invalid(_))));
        assert!(matches!(parse("ms"), Err(DurationError::Invalid(_))));
        assert!(matches!(
            parse("99999999999h"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(parse(".s"), Err(DurationError::Invalid(_))));
        assert!(matches!(parse("1..5s"), Err(DurationError::MissingUnit(_))));
        assert!(matches!(parse("-"), Err(DurationError::Invalid(_))));
    }

    #[test]
    fn is_exact_at_the_ends_of_the_range() {
        assert_eq!(parse("9223372036854775807ns"), Ok(i64::MAX));
        assert_eq!(parse("-9223372036854775808ns"), Ok(i64::MIN));
        assert_eq!(parse("9007199254740993ns"), Ok(9_007_199_254_740_993));
        assert_eq!(parse("2562047h47m16.854775807s"), Ok(i64::MAX));
        for over in [
            "9223372036854775808ns",
            "-9223372036854775809ns",
            "2562048h",
            "2562047h47m16.854775808s",
            "18446744073709551616ns",
            "99999999999999999999999h",
        ] {
            assert!(
                matches!(parse(over), Err(DurationError::Overflow(_))),
                "{over}: {:?}",
                parse(over)
            );
        }
    }

    #[test]
    fn fractions_round_down_to_the_nanosecond_as_go_does() {
        assert_eq!(parse(".5s"), Ok(500_000_000));
        assert_eq!(parse("5.s"), Ok(5_000_000_000));
        assert_eq!(parse("1.0000000019s"), Ok(1_000_000_001));
        assert_eq!(parse("0.1ns"), Ok(0));
        assert_eq!(parse("1.5µs"), Ok(1_500));
        assert_eq!(parse("0.000000000000000000000001h"), Ok(0));
        assert_eq!(parse("1h0.5m"), Ok(3_630_000_000_000));
    }

    proptest::proptest! {
        /// What `format` writes, `parse` reads back to the nanosecond.
        #[test]
        fn parse_reads_back_what_format_writes(ns in proptest::prelude::any::<i64>()) {
            proptest::prop_assert_eq!(parse(&format(ns)), Ok(ns));
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(1_500_000_000), "1.5s");
        assert_eq!(format(90_000_000_000), "1m30s");
        assert_eq!(format(250_000_000), "250ms");
        assert_eq!(format(1_500), "1.5µs");
        assert_eq!(format(3_723_000_000_000), "1h2m3s");
        assert_eq!(format(-5), "-5ns");
        assert_eq!(format(0), "0s");
    }
}

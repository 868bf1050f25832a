//! Go-style durations (`"150ms"`, `"2s"`, `"1m30s"`, `"-1.5h"`), as used by
//! the Lua `time` module and by configuration files.
//!
//! Values are signed nanoseconds in an `i64`; parsing rejects overflow,
//! missing units and unknown units with an error that quotes the input.

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
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

const NS: [(&str, f64); 8] = [
    ("ns", 1.0),
    ("us", 1e3),
    ("µs", 1e3),
    ("μs", 1e3),
    ("ms", 1e6),
    ("s", 1e9),
    ("m", 60e9),
    ("h", 3600e9),
];

/// Parses a Go-style duration into nanoseconds.
pub fn parse(text: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(text.to_owned());
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
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(text.to_owned()));
        }
        let scale = NS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| DurationError::UnknownUnit {
                unit: unit.to_owned(),
                text: text.to_owned(),
            })?;
        total += number * scale;
        rest = &rest[unit_len..];
    }
    if total > i64::MAX as f64 {
        return Err(DurationError::Overflow(text.to_owned()));
    }
    // Rounded to the nearest nanosecond; range was checked above.
    #[expect(clippy::cast_possible_truncation, reason = "range checked just above")]
    let ns = total.round() as i64;
    Ok(if negative { -ns } else { ns })
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

//! Go's reference-time layouts (`"2006-01-02T15:04:05Z07:00"`): splitting a
//! layout into elements exactly as Go's `nextStdChunk` does, and
//! `time:format(layout)` in UTC. Text that is not an element is copied as is.
//! Parsing lives in `timeparse`.

pub(crate) const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
pub(crate) const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// One layout element (Go's `std*` constants).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Std {
    /// `January`
    LongMonth,
    /// `Jan`
    Month,
    /// `1`
    NumMonth,
    /// `01`
    ZeroMonth,
    /// `Monday`
    LongWeekDay,
    /// `Mon`
    WeekDay,
    /// `2`
    Day,
    /// `_2`
    UnderDay,
    /// `02`
    ZeroDay,
    /// `__2`
    UnderYearDay,
    /// `002`
    ZeroYearDay,
    /// `15`
    Hour,
    /// `3`
    Hour12,
    /// `03`
    ZeroHour12,
    /// `4`
    Minute,
    /// `04`
    ZeroMinute,
    /// `5`
    Second,
    /// `05`
    ZeroSecond,
    /// `2006`
    LongYear,
    /// `06`
    Year,
    /// `PM`
    Pm,
    /// `pm`
    LowerPm,
    /// `MST`
    TzName,
    /// `Z0700`
    Iso8601Tz,
    /// `Z070000`
    Iso8601SecondsTz,
    /// `Z07`
    Iso8601ShortTz,
    /// `Z07:00`
    Iso8601ColonTz,
    /// `Z07:00:00`
    Iso8601ColonSecondsTz,
    /// `-0700`
    NumTz,
    /// `-070000`
    NumSecondsTz,
    /// `-07`
    NumShortTz,
    /// `-07:00`
    NumColonTz,
    /// `-07:00:00`
    NumColonSecondsTz,
    /// `.000` or `,000`: exactly `digits` digits.
    Frac0 { digits: usize, sep: u8 },
    /// `.999` or `,999`: up to `digits` digits, trailing zeros dropped.
    Frac9 { digits: usize, sep: u8 },
}

/// Zone elements, longest first, as Go tries them after a `-` or a `Z`.
const NUM_TZ: [(&[u8], Std); 5] = [
    (b"-070000", Std::NumSecondsTz),
    (b"-07:00:00", Std::NumColonSecondsTz),
    (b"-0700", Std::NumTz),
    (b"-07:00", Std::NumColonTz),
    (b"-07", Std::NumShortTz),
];
const ISO_TZ: [(&[u8], Std); 5] = [
    (b"Z070000", Std::Iso8601SecondsTz),
    (b"Z07:00:00", Std::Iso8601ColonSecondsTz),
    (b"Z0700", Std::Iso8601Tz),
    (b"Z07:00", Std::Iso8601ColonTz),
    (b"Z07", Std::Iso8601ShortTz),
];

/// Finds the first element of `layout`: `(start, element, end)` with
/// `start <= end <= layout.len()`, both at ASCII bytes (so also char
/// boundaries of a `str`). A port of Go's `nextStdChunk`.
pub(crate) fn next_chunk(layout: &[u8]) -> Option<(usize, Std, usize)> {
    let at = |i: usize| layout.get(i).copied();
    let has = |i: usize, s: &[u8]| layout.get(i..i.saturating_add(s.len())) == Some(s);
    let lower_at = |i: usize| at(i).is_some_and(|b| b.is_ascii_lowercase());
    for (i, &c) in layout.iter().enumerate() {
        let found = match c {
            b'J' if has(i, b"January") => Some((Std::LongMonth, 7)),
            b'J' if has(i, b"Jan") && !lower_at(i + 3) => Some((Std::Month, 3)),
            b'M' if has(i, b"Monday") => Some((Std::LongWeekDay, 6)),
            b'M' if has(i, b"Mon") && !lower_at(i + 3) => Some((Std::WeekDay, 3)),
            b'M' if has(i, b"MST") => Some((Std::TzName, 3)),
            b'0' => match at(i + 1) {
                Some(b'1') => Some((Std::ZeroMonth, 2)),
                Some(b'2') => Some((Std::ZeroDay, 2)),
                Some(b'3') => Some((Std::ZeroHour12, 2)),
                Some(b'4') => Some((Std::ZeroMinute, 2)),
                Some(b'5') => Some((Std::ZeroSecond, 2)),
                Some(b'6') => Some((Std::Year, 2)),
                Some(b'0') if at(i + 2) == Some(b'2') => Some((Std::ZeroYearDay, 3)),
                _ => None,
            },
            b'1' if at(i + 1) == Some(b'5') => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if has(i, b"2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            // `_2006` is a literal `_` followed by the year.
            b'_' if has(i + 1, b"2006") => return Some((i + 1, Std::LongYear, i + 5)),
            b'_' if at(i + 1) == Some(b'2') => Some((Std::UnderDay, 2)),
            b'_' if has(i, b"__2") => Some((Std::UnderYearDay, 3)),
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if at(i + 1) == Some(b'M') => Some((Std::Pm, 2)),
            b'p' if at(i + 1) == Some(b'm') => Some((Std::LowerPm, 2)),
            b'-' => NUM_TZ
                .iter()
                .find(|(tok, _)| has(i, tok))
                .map(|&(tok, std)| (std, tok.len())),
            b'Z' => ISO_TZ
                .iter()
                .find(|(tok, _)| has(i, tok))
                .map(|&(tok, std)| (std, tok.len())),
            b'.' | b',' => match at(i + 1) {
                Some(ch @ (b'0' | b'9')) => {
                    let mut j = i + 1;
                    while at(j) == Some(ch) {
                        j += 1;
                    }
                    // `.00` followed by a digit is not a fraction.
                    if at(j).is_some_and(|b| b.is_ascii_digit()) {
                        None
                    } else {
                        let digits = j - (i + 1);
                        let std = if ch == b'0' {
                            Std::Frac0 { digits, sep: c }
                        } else {
                            Std::Frac9 { digits, sep: c }
                        };
                        return Some((i, std, j));
                    }
                }
                _ => None,
            },
            _ => None,
        };
        if let Some((std, len)) = found {
            return Some((i, std, i + len));
        }
    }
    None
}

struct Civil {
    year: i64,
    month: usize,
    day: i64,
    yday: i64,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: i64,
    weekday: usize,
}

/// Days before the first of each month (0-based) in a common year.
pub(crate) const DAYS_BEFORE: [i64; 13] =
    [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];

pub(crate) fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn civil(unix_ns: i64) -> Civil {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let month = usize::try_from(month - 1).unwrap_or(0);
    let leap_day = i64::from(month >= 2 && is_leap(year));
    Civil {
        year,
        month,
        day,
        yday: DAYS_BEFORE.get(month).copied().unwrap_or(0) + leap_day + day,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
        nanos,
        weekday: usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0),
    }
}

fn push_fraction(out: &mut String, nanos: i64, digits: usize, sep: u8, trim: bool) {
    if trim && (digits == 0 || nanos == 0) {
        return;
    }
    let full = format!("{nanos:09}");
    let mut frac = full.get(..digits.min(9)).unwrap_or(&full);
    if trim {
        frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            return;
        }
    }
    out.push(char::from(sep));
    out.push_str(frac);
}

fn push_std(out: &mut String, t: &Civil, std: Std) {
    use std::fmt::Write as _;
    let hour12 = if t.hour % 12 == 0 { 12 } else { t.hour % 12 };
    let month = MONTHS.get(t.month).copied().unwrap_or("");
    let weekday = DAYS.get(t.weekday).copied().unwrap_or("");
    // Writing to a String cannot fail.
    let _ = match std {
        Std::LongMonth => write!(out, "{month}"),
        Std::Month => write!(out, "{}", month.get(..3).unwrap_or(month)),
        Std::NumMonth => write!(out, "{}", t.month + 1),
        Std::ZeroMonth => write!(out, "{:02}", t.month + 1),
        Std::LongWeekDay => write!(out, "{weekday}"),
        Std::WeekDay => write!(out, "{}", weekday.get(..3).unwrap_or(weekday)),
        Std::Day => write!(out, "{}", t.day),
        Std::UnderDay => write!(out, "{:>2}", t.day),
        Std::ZeroDay => write!(out, "{:02}", t.day),
        Std::UnderYearDay => write!(out, "{:>3}", t.yday),
        Std::ZeroYearDay => write!(out, "{:03}", t.yday),
        Std::Hour => write!(out, "{:02}", t.hour),
        Std::Hour12 => write!(out, "{hour12}"),
        Std::ZeroHour12 => write!(out, "{hour12:02}"),
        Std::Minute => write!(out, "{}", t.minute),
        Std::ZeroMinute => write!(out, "{:02}", t.minute),
        Std::Second => write!(out, "{}", t.second),
        Std::ZeroSecond => write!(out, "{:02}", t.second),
        Std::LongYear => write!(out, "{:04}", t.year),
        Std::Year => write!(out, "{:02}", t.year.rem_euclid(100)),
        Std::Pm => write!(out, "{}", if t.hour >= 12 { "PM" } else { "AM" }),
        Std::LowerPm => write!(out, "{}", if t.hour >= 12 { "pm" } else { "am" }),
        Std::TzName => write!(out, "UTC"),
        Std::Iso8601Tz
        | Std::Iso8601SecondsTz
        | Std::Iso8601ShortTz
        | Std::Iso8601ColonTz
        | Std::Iso8601ColonSecondsTz => write!(out, "Z"),
        Std::NumTz => write!(out, "+0000"),
        Std::NumSecondsTz => write!(out, "+000000"),
        Std::NumShortTz => write!(out, "+00"),
        Std::NumColonTz => write!(out, "+00:00"),
        Std::NumColonSecondsTz => write!(out, "+00:00:00"),
        Std::Frac0 { digits, sep } => {
            push_fraction(out, t.nanos, digits, sep, false);
            Ok(())
        }
        Std::Frac9 { digits, sep } => {
            push_fraction(out, t.nanos, digits, sep, true);
            Ok(())
        }
    };
}

/// Formats Unix nanoseconds with a Go layout, in UTC.
pub(crate) fn format(unix_ns: i64, layout: &str) -> String {
    let t = civil(unix_ns);
    let mut out = String::with_capacity(layout.len() + 16);
    let mut rest = layout;
    while let Some((start, std, end)) = next_chunk(rest.as_bytes()) {
        out.push_str(rest.get(..start).unwrap_or_default());
        push_std(&mut out, &t, std);
        rest = rest.get(end..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn formats_reference_layouts() {
        // 2009-02-13T23:31:30.5Z
        let ns = 1_234_567_890_500_000_000;
        assert_eq!(
            format(ns, "2006-01-02T15:04:05Z07:00"),
            "2009-02-13T23:31:30Z"
        );
        assert_eq!(
            format(ns, "2006-01-02 15:04:05.000"),
            "2009-02-13 23:31:30.500"
        );
        assert_eq!(format(ns, "Mon Jan _2 03:04PM"), "Fri Feb 13 11:31PM");
        assert_eq!(format(ns, "15:04:05.999999999"), "23:31:30.5");
        assert_eq!(format(0, "January 2, 2006"), "January 1, 1970");
        assert_eq!(
            format(-1_000_000_000, "2006-01-02 15:04:05"),
            "1969-12-31 23:59:59"
        );
    }

    #[test]
    fn formats_the_rest_of_gos_elements() {
        let ns = 1_234_567_890_500_000_000;
        assert_eq!(
            format(ns, "002 __2 Z07 -07 -07:00:00"),
            "044  44 Z +00 +00:00:00"
        );
        assert_eq!(format(ns, "05,000 05.00 05.9"), "30,500 30.50 30.5");
        // Go: `Jan` followed by a lower-case letter is text; `_2006` is `_` + year.
        assert_eq!(format(ns, "Janet _2006"), "Janet _2009");
        assert_eq!(
            format(ns, "Monday, 02-Jan-06 15:04:05 MST"),
            "Friday, 13-Feb-09 23:31:30 UTC"
        );
        // Leap-year day of year.
        assert_eq!(format(951_782_400_000_000_000, "2006 002"), "2000 060");
    }
}

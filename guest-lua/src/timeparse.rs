//! `time.parse(layout, value)` and `time.date(...)`: ports of Go's
//! `time.Parse` and `time.Date` onto Warren's times, which are `i64` Unix
//! nanoseconds (UTC), so only 1677-09-21 .. 2262-04-11 can be represented.
//!
//! Zones: Warren has no zone database and its "local" zone is UTC (the
//! formatter prints UTC). A value's numeric offset (`Z07:00`, `-0700`, ...)
//! or `Z`/`UTC` is honoured exactly. A zone abbreviation (`MST` element)
//! other than `UTC` is, as Go does for an abbreviation its local zone does
//! not use, recorded with offset 0: the wall clock is read as UTC (even for
//! `GMT+3`, where Go also keeps the UTC instant).

use crate::timefmt::{DAYS, DAYS_BEFORE, MONTHS, Std, is_leap, next_chunk};

/// Longest layout or value `parse` accepts, in bytes. Both strings come from
/// a process, and an error quotes both (a non-ASCII byte as four); the cap
/// bounds the time one call holds the worker and the size of the error
/// string it allocates, so a process cannot pass megabyte strings to do
/// either. Real layouts and timestamps are well under 64 bytes.
pub(crate) const MAX_PARSE_LEN: usize = 256;

const NS_PER_SEC: i128 = 1_000_000_000;

/// Why one element of the value did not parse.
enum Fail {
    /// Go's `errBad`: "cannot parse X as Y".
    Bad,
    /// Go's `rangeErrString`: "X out of range".
    Range(&'static str),
}

/// Go's `quote`: `"` and `\` escaped, control and non-ASCII bytes as `\xNN`.
fn quote(s: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &b in s {
        if !(b' '..0x80).contains(&b) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{b:02x}");
        } else {
            if b == b'"' || b == b'\\' {
                out.push('\\');
            }
            out.push(char::from(b));
        }
    }
    out.push('"');
    out
}

fn digit(s: &[u8], i: usize) -> bool {
    s.get(i).is_some_and(u8::is_ascii_digit)
}

fn num(b: u8) -> i64 {
    i64::from(b.wrapping_sub(b'0'))
}

/// Go's `getnum`: one or two digits (exactly two if `fixed`).
fn getnum(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    match s {
        [a, b, rest @ ..] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some((num(*a) * 10 + num(*b), rest))
        }
        [a, rest @ ..] if a.is_ascii_digit() && !fixed => Some((num(*a), rest)),
        _ => None,
    }
}

/// Go's `getnum3`: one to three digits (exactly three if `fixed`).
fn getnum3(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    let n = s.iter().take(3).take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || (fixed && n != 3) {
        return None;
    }
    let (digits, rest) = s.split_at_checked(n)?;
    Some((digits.iter().fold(0, |acc, &b| acc * 10 + num(b)), rest))
}

/// Go's `atoi` on a short slice: optional sign, then only digits (none is 0).
fn atoi(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    let mut x: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        x = x.checked_mul(10)?.checked_add(num(b))?;
    }
    Some(if neg { -x } else { x })
}

/// Go's `lookup`: the first name that prefixes `val`, ignoring ASCII case.
fn lookup(names: impl Iterator<Item = &'static str>, val: &[u8]) -> Option<(i64, &[u8])> {
    names.zip(0..).find_map(|(name, i)| {
        let (head, rest) = val.split_at_checked(name.len())?;
        head.eq_ignore_ascii_case(name.as_bytes())
            .then_some((i, rest))
    })
}

fn comma_or_period(b: Option<&u8>) -> bool {
    matches!(b, Some(b'.' | b','))
}

/// Go's `parseNanoseconds`: `value[0]` is the separator, then
/// `nbytes - 1` digits of which at most nine count.
fn parse_nanoseconds(value: &[u8], nbytes: usize) -> Result<i64, Fail> {
    if !comma_or_period(value.first()) {
        return Err(Fail::Bad);
    }
    let nbytes = nbytes.min(10);
    let ns = atoi(value.get(1..nbytes).ok_or(Fail::Bad)?).ok_or(Fail::Bad)?;
    if ns < 0 {
        return Err(Fail::Range("fractional second"));
    }
    // nbytes <= 10, so at most 9 digits and ns * 10^(10 - nbytes) < 10^9.
    Ok(ns * 10_i64.pow(u32::try_from(10 - nbytes).unwrap_or(0)))
}

/// Go's `skip`: consume the literal `prefix`; a space in it matches any
/// run of spaces (at least one unless the value is used up).
fn skip<'v>(mut value: &'v [u8], mut prefix: &[u8]) -> Result<&'v [u8], &'v [u8]> {
    while let Some((&p, rest)) = prefix.split_first() {
        if p == b' ' {
            if value.first().is_some_and(|&v| v != b' ') {
                return Err(value);
            }
            prefix = cutspace(prefix);
            value = cutspace(value);
            continue;
        }
        match value.split_first() {
            Some((&v, vrest)) if v == p => {
                prefix = rest;
                value = vrest;
            }
            _ => return Err(value),
        }
    }
    Ok(value)
}

/// Go's `cutspace`: drop leading spaces (only `' '`).
fn cutspace(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    s.get(n..).unwrap_or_default()
}

/// Go's `parseTimeZone`: the length of a zone abbreviation at the start of
/// `value`, if it looks like one.
fn time_zone_len(value: &[u8]) -> Option<usize> {
    if value.len() < 3 {
        return None;
    }
    if value.starts_with(b"ChST") || value.starts_with(b"MeST") {
        return Some(4);
    }
    if let Some(rest) = value.strip_prefix(b"GMT") {
        return Some(if rest.is_empty() {
            3
        } else {
            3 + signed_offset_len(rest)
        });
    }
    if matches!(value.first(), Some(b'+' | b'-')) {
        return Some(signed_offset_len(value)).filter(|&n| n > 0);
    }
    let upper = value
        .iter()
        .take(6)
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    match upper {
        3 => Some(3),
        4 if value.get(3) == Some(&b'T') || value.starts_with(b"WITA") => Some(4),
        5 if value.get(4) == Some(&b'T') => Some(5),
        _ => None,
    }
}

/// Go's `parseSignedOffset`: `+h`/`-h` with `h <= 12`; 0 if none.
fn signed_offset_len(value: &[u8]) -> usize {
    let Some((b'+' | b'-', rest)) = value.split_first() else {
        return 0;
    };
    let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    // Overflow is an error, as in Go.
    match rest.get(..n).and_then(atoi) {
        Some(h) if n > 0 && h <= 12 => 1 + n,
        _ => 0,
    }
}

/// The fields a value sets, with Go's defaults.
struct Fields<'v> {
    year: i64,
    month: i64,
    day: i64,
    yday: i64,
    hour: i64,
    min: i64,
    sec: i64,
    nsec: i64,
    am: bool,
    pm: bool,
    utc: bool,
    offset: Option<i64>,
    zone_name: Option<&'v [u8]>,
}

/// Parses one element of the value; returns the rest of the value.
fn element<'v>(
    f: &mut Fields<'v>,
    std: Std,
    value: &'v [u8],
    layout_rest: &[u8],
) -> Result<&'v [u8], Fail> {
    Ok(match std {
        Std::Year => {
            let (p, rest) = value.split_at_checked(2).ok_or(Fail::Bad)?;
            let y = atoi(p).ok_or(Fail::Bad)?;
            f.year = if y >= 69 { y + 1900 } else { y + 2000 };
            rest
        }
        Std::LongYear => {
            let (p, rest) = value.split_at_checked(4).ok_or(Fail::Bad)?;
            if !digit(p, 0) {
                return Err(Fail::Bad);
            }
            f.year = atoi(p).ok_or(Fail::Bad)?;
            rest
        }
        Std::Month | Std::LongMonth => {
            let names = MONTHS.iter().map(|&m| {
                if std == Std::Month {
                    m.get(..3).unwrap_or(m)
                } else {
                    m
                }
            });
            let (m, rest) = lookup(names, value).ok_or(Fail::Bad)?;
            f.month = m + 1;
            rest
        }
        Std::NumMonth | Std::ZeroMonth => {
            let (m, rest) = getnum(value, std == Std::ZeroMonth).ok_or(Fail::Bad)?;
            f.month = m;
            if !(1..=12).contains(&m) {
                return Err(Fail::Range("month"));
            }
            rest
        }
        Std::WeekDay | Std::LongWeekDay => {
            // Go checks the name but ignores the day.
            let names = DAYS.iter().map(|&d| {
                if std == Std::WeekDay {
                    d.get(..3).unwrap_or(d)
                } else {
                    d
                }
            });
            lookup(names, value).ok_or(Fail::Bad)?.1
        }
        Std::Day | Std::UnderDay | Std::ZeroDay => {
            let value = match value {
                [b' ', rest @ ..] if std == Std::UnderDay => rest,
                _ => value,
            };
            // Any one- or two-digit day; checked against the month later.
            let (d, rest) = getnum(value, std == Std::ZeroDay).ok_or(Fail::Bad)?;
            f.day = d;
            rest
        }
        Std::UnderYearDay | Std::ZeroYearDay => {
            let mut value = value;
            for _ in 0..2 {
                if std == Std::UnderYearDay && value.first() == Some(&b' ') {
                    value = value.get(1..).unwrap_or_default();
                }
            }
            let (d, rest) = getnum3(value, std == Std::ZeroYearDay).ok_or(Fail::Bad)?;
            f.yday = d;
            rest
        }
        Std::Hour => {
            let (h, rest) = getnum(value, false).ok_or(Fail::Bad)?;
            f.hour = h;
            if h >= 24 {
                return Err(Fail::Range("hour"));
            }
            rest
        }
        Std::Hour12 | Std::ZeroHour12 => {
            let (h, rest) = getnum(value, std == Std::ZeroHour12).ok_or(Fail::Bad)?;
            f.hour = h;
            if h > 12 {
                return Err(Fail::Range("hour"));
            }
            rest
        }
        Std::Minute | Std::ZeroMinute => {
            let (m, rest) = getnum(value, std == Std::ZeroMinute).ok_or(Fail::Bad)?;
            f.min = m;
            if m >= 60 {
                return Err(Fail::Range("minute"));
            }
            rest
        }
        Std::Second | Std::ZeroSecond => {
            let (s, rest) = getnum(value, std == Std::ZeroSecond).ok_or(Fail::Bad)?;
            f.sec = s;
            if s >= 60 {
                return Err(Fail::Range("second"));
            }
            // A fraction in the value but none next in the layout: take it.
            if comma_or_period(rest.first())
                && digit(rest, 1)
                && !matches!(
                    next_chunk(layout_rest),
                    Some((_, Std::Frac0 { .. } | Std::Frac9 { .. }, _))
                )
            {
                let n = 2 + rest
                    .iter()
                    .skip(2)
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                f.nsec = parse_nanoseconds(rest, n)?;
                rest.get(n..).unwrap_or_default()
            } else {
                rest
            }
        }
        Std::Pm | Std::LowerPm => {
            let (p, rest) = value.split_at_checked(2).ok_or(Fail::Bad)?;
            let (pm, am): (&[u8], &[u8]) = if std == Std::Pm {
                (b"PM", b"AM")
            } else {
                (b"pm", b"am")
            };
            if p == pm {
                f.pm = true;
            } else if p == am {
                f.am = true;
            } else {
                return Err(Fail::Bad);
            }
            rest
        }
        Std::Iso8601Tz
        | Std::Iso8601SecondsTz
        | Std::Iso8601ShortTz
        | Std::Iso8601ColonTz
        | Std::Iso8601ColonSecondsTz
            if value.first() == Some(&b'Z') =>
        {
            f.utc = true;
            value.get(1..).unwrap_or_default()
        }
        Std::Iso8601Tz
        | Std::Iso8601SecondsTz
        | Std::Iso8601ShortTz
        | Std::Iso8601ColonTz
        | Std::Iso8601ColonSecondsTz
        | Std::NumTz
        | Std::NumSecondsTz
        | Std::NumShortTz
        | Std::NumColonTz
        | Std::NumColonSecondsTz => zone_offset(f, std, value)?,
        Std::TzName => {
            if let Some(rest) = value.strip_prefix(b"UTC") {
                f.utc = true;
                rest
            } else {
                let n = time_zone_len(value).ok_or(Fail::Bad)?;
                let (name, rest) = value.split_at_checked(n).ok_or(Fail::Bad)?;
                f.zone_name = Some(name);
                rest
            }
        }
        Std::Frac0 { digits, .. } => {
            // Exactly as many digits as the layout has.
            let n = digits.saturating_add(1);
            if value.len() < n {
                return Err(Fail::Bad);
            }
            f.nsec = parse_nanoseconds(value, n)?;
            value.get(n..).unwrap_or_default()
        }
        Std::Frac9 { .. } => {
            if !comma_or_period(value.first()) || !digit(value, 1) {
                // The fraction is optional.
                return Ok(value);
            }
            // Any number of digits, as the seconds element would take.
            let n = 1 + value
                .iter()
                .skip(1)
                .take_while(|b| b.is_ascii_digit())
                .count();
            f.nsec = parse_nanoseconds(value, n)?;
            value.get(n..).unwrap_or_default()
        }
    })
}

/// The numeric zone elements: `±hh`, `±hhmm`, `±hh:mm`, `±hhmmss`, `±hh:mm:ss`.
fn zone_offset<'v>(f: &mut Fields<'v>, std: Std, value: &'v [u8]) -> Result<&'v [u8], Fail> {
    let at = |i: usize| value.get(i).copied();
    // (length, where hh, mm and ss start; None is "00")
    let (len, mm, ss) = match std {
        Std::Iso8601ColonTz | Std::NumColonTz => (6, Some(4), None),
        Std::Iso8601ShortTz | Std::NumShortTz => (3, None, None),
        Std::Iso8601ColonSecondsTz | Std::NumColonSecondsTz => (9, Some(4), Some(7)),
        Std::Iso8601SecondsTz | Std::NumSecondsTz => (7, Some(3), Some(5)),
        _ => (5, Some(3), None),
    };
    if value.len() < len {
        return Err(Fail::Bad);
    }
    if (mm == Some(4) && at(3) != Some(b':')) || (ss == Some(7) && at(6) != Some(b':')) {
        return Err(Fail::Bad);
    }
    let two = |i: Option<usize>| match i {
        None => Some(0),
        Some(i) => value
            .get(i..i + 2)
            .and_then(|s| getnum(s, true))
            .map(|(n, _)| n),
    };
    // Go stops at the first bad number, leaving the later ones 0.
    let hr = two(Some(1));
    let min = hr.and(two(mm));
    let sec = min.and(two(ss));
    let (h, m, s) = (hr.unwrap_or(0), min.unwrap_or(0), sec.unwrap_or(0));
    // `>`, not `>=`: people do write offsets of 24 hours or 60 minutes.
    let range = [
        (s > 60, "time zone offset second"),
        (m > 60, "time zone offset minute"),
        (h > 24, "time zone offset hour"),
    ];
    if let Some(&(_, what)) = range.iter().find(|(out, _)| *out) {
        return Err(Fail::Range(what));
    }
    let offset = (h * 60 + m) * 60 + s;
    f.offset = Some(match at(0) {
        Some(b'+') => offset,
        Some(b'-') => -offset,
        _ => return Err(Fail::Bad),
    });
    if sec.is_none() {
        return Err(Fail::Bad);
    }
    Ok(value.get(len..).unwrap_or_default())
}

/// Days in `month` (1..=12) of `year`.
fn days_in(month: i64, year: i64) -> i64 {
    if month == 2 && is_leap(year) {
        return 29;
    }
    let i = usize::try_from(month).unwrap_or(1);
    DAYS_BEFORE
        .get(i)
        .zip(DAYS_BEFORE.get(i.wrapping_sub(1)))
        .map_or(31, |(b, a)| b - a)
}

/// Parses `value` with a Go layout; the result is Unix nanoseconds. A value
/// with no zone is UTC, as Go's `time.Parse`.
#[cfg(test)]
pub(crate) fn parse(layout: &str, value: &str) -> Result<i64, String> {
    parse_in(layout, value, 0)
}

/// As [`parse`], but a value with no zone is read at `default_offset_secs`
/// east of UTC (Go's `time.ParseInLocation` with a fixed zone; a zone
/// abbreviation in the value is not matched against the location's name).
pub(crate) fn parse_in(layout: &str, value: &str, default_offset_secs: i64) -> Result<i64, String> {
    for (what, s) in [("layout", layout), ("value", value)] {
        if s.len() > MAX_PARSE_LEN {
            return Err(format!(
                "parsing time: the {what} is {} bytes, over the limit of {MAX_PARSE_LEN}",
                s.len()
            ));
        }
    }
    let (alayout, avalue) = (layout.as_bytes(), value.as_bytes());
    let cannot = |value_elem: &[u8], layout_elem: &[u8]| {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            quote(avalue),
            quote(alayout),
            quote(value_elem),
            quote(layout_elem)
        )
    };
    let message = |msg: &str| format!("parsing time {}{msg}", quote(avalue));
    let mut f = Fields {
        year: 0,
        month: -1,
        day: -1,
        yday: -1,
        hour: 0,
        min: 0,
        sec: 0,
        nsec: 0,
        am: false,
        pm: false,
        utc: false,
        offset: None,
        zone_name: None,
    };
    let (mut layout, mut value) = (alayout, avalue);
    loop {
        let chunk = next_chunk(layout);
        let prefix = layout
            .get(..chunk.map_or(layout.len(), |(start, _, _)| start))
            .unwrap_or_default();
        value = skip(value, prefix).map_err(|rest| cannot(rest, prefix))?;
        let Some((start, std, end)) = chunk else {
            if !value.is_empty() {
                return Err(message(&format!(": extra text: {}", quote(value))));
            }
            break;
        };
        let stdstr = layout.get(start..end).unwrap_or_default();
        layout = layout.get(end..).unwrap_or_default();
        match element(&mut f, std, value, layout) {
            Ok(rest) => value = rest,
            Err(Fail::Range(what)) => return Err(message(&format!(": {what} out of range"))),
            Err(Fail::Bad) => return Err(cannot(value, stdstr)),
        }
    }
    if f.pm && f.hour < 12 {
        f.hour += 12;
    } else if f.am && f.hour == 12 {
        f.hour = 0;
    }

    if f.yday >= 0 {
        let (mut month, mut day) = (0, 0);
        let mut yday = f.yday;
        if is_leap(f.year) {
            if yday == 31 + 29 {
                (month, day) = (2, 29);
            } else if yday > 31 + 29 {
                yday -= 1;
            }
        }
        if !(1..=365).contains(&yday) {
            return Err(message(": day-of-year out of range"));
        }
        if month == 0 {
            let before = |m: i64| {
                DAYS_BEFORE
                    .get(usize::try_from(m - 1).unwrap_or(0))
                    .copied()
                    .unwrap_or(365)
            };
            month = (yday - 1) / 31 + 1;
            if before(month + 1) < yday {
                month += 1;
            }
            day = yday - before(month);
        }
        if f.month >= 0 && f.month != month {
            return Err(message(": day-of-year does not match month"));
        }
        if f.day >= 0 && f.day != day {
            return Err(message(": day-of-year does not match day"));
        }
        (f.month, f.day) = (month, day);
    } else {
        if f.month < 0 {
            f.month = 1;
        }
        f.day = if f.day < 0 { 1 } else { f.day };
    }
    if f.day < 1 || f.day > days_in(f.month, f.year) {
        return Err(message(": day out of range"));
    }

    let offset = if f.utc {
        0
    } else if let Some(offset) = f.offset {
        offset
    } else if f.zone_name.is_some() {
        0
    } else {
        default_offset_secs
    };
    date(f.year, f.month, f.day, f.hour, f.min, f.sec, f.nsec, offset).map_err(|_| {
        format!(
            "parsing time {} as {}: time is outside the range of Unix nanoseconds (years 1677 to 2262)",
            quote(avalue),
            quote(alayout)
        )
    })
}

/// Days from 1970-01-01 to the first of `month` (1..=12) of `year`
/// (Howard Hinnant's days-from-civil).
fn days_from_civil(year: i128, month: i128) -> i128 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Go's `time.Date` in a zone `offset_secs` east of UTC, as Unix
/// nanoseconds. Out-of-range fields carry over as in Go: month 13 is
/// January of the next year, day 0 the last day of the previous month,
/// hour 24 the next day, negative values borrow. Unlike Go, a result outside
/// `i64` nanoseconds is an error rather than a wrapped value.
#[expect(clippy::too_many_arguments, reason = "Go's time.Date signature")]
pub(crate) fn date(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    min: i64,
    sec: i64,
    nsec: i64,
    offset_secs: i64,
) -> Result<i64, String> {
    // In i128 every step is exact: |year| < 2^63 gives under 2^62 days,
    // under 2^109 nanoseconds, far from 2^127. Checked all the same.
    let m0 = i128::from(month) - 1;
    let year = i128::from(year) + m0.div_euclid(12);
    let month = m0.rem_euclid(12) + 1;
    let days = days_from_civil(year, month) + i128::from(day) - 1;
    let secs = [
        (days, 86_400),
        (i128::from(hour), 3_600),
        (i128::from(min), 60),
        (i128::from(sec), 1),
        (-i128::from(offset_secs), 1),
    ]
    .iter()
    .try_fold(0_i128, |acc, &(n, unit)| {
        acc.checked_add(n.checked_mul(unit)?)
    });
    secs.and_then(|s| s.checked_mul(NS_PER_SEC)?.checked_add(i128::from(nsec)))
        .and_then(|ns| i64::try_from(ns).ok())
        .ok_or_else(|| {
            "time.date: the time is outside the range of Unix nanoseconds (years 1677 to 2262)"
                .to_owned()
        })
}

#[cfg(test)]
mod tests {
    use super::{MAX_PARSE_LEN, date, parse, parse_in};
    use crate::timefmt::format;
    use proptest::prelude::*;

    // The layouts of Wippy's `time` constants, plus Go's ANSIC.
    const RFC3339: &str = "2006-01-02T15:04:05Z07:00";
    const RFC3339NANO: &str = "2006-01-02T15:04:05.999999999Z07:00";
    const RFC822: &str = "02 Jan 06 15:04 MST";
    const RFC850: &str = "Monday, 02-Jan-06 15:04:05 MST";
    const RFC1123: &str = "Mon, 02 Jan 2006 15:04:05 MST";
    const RFC1123Z: &str = "Mon, 02 Jan 2006 15:04:05 -0700";
    const DATE_TIME: &str = "2006-01-02 15:04:05";
    const DATE_ONLY: &str = "2006-01-02";
    const TIME_ONLY: &str = "15:04:05";
    const KITCHEN: &str = "3:04PM";
    const ANSIC: &str = "Mon Jan _2 15:04:05 2006";

    const SEC: i64 = 1_000_000_000;
    /// 2024-12-29T15:04:05Z
    const T: i64 = 1_735_484_645 * SEC;

    fn err(layout: &str, value: &str) -> String {
        match parse(layout, value) {
            Ok(t) => panic!("{value:?} as {layout:?} parsed to {t}"),
            Err(e) => e,
        }
    }

    #[test]
    fn rfc3339_with_z_and_offsets() {
        assert_eq!(parse(RFC3339, "2024-12-29T15:04:05Z"), Ok(T));
        assert_eq!(
            parse(RFC3339, "2024-12-29T15:04:05+05:30"),
            Ok(T - 19_800 * SEC)
        );
        assert_eq!(
            parse(RFC3339, "2024-12-29T15:04:05-08:00"),
            Ok(T + 8 * 3600 * SEC)
        );
        assert_eq!(parse(RFC3339, "2024-12-29T15:04:05+00:00"), Ok(T));
        assert_eq!(
            parse(RFC1123Z, "Sun, 29 Dec 2024 15:04:05 -0800"),
            Ok(T + 8 * 3600 * SEC)
        );
        assert_eq!(
            parse("2006-01-02 15:04:05 -07", "2024-12-29 15:04:05 +01"),
            Ok(T - 3600 * SEC)
        );
        assert_eq!(
            parse(
                "2006-01-02 15:04:05 Z07:00:00",
                "2024-12-29 15:04:05 -00:00:30"
            ),
            Ok(T + 30 * SEC)
        );
        assert_eq!(
            parse("2006-01-02 15:04:05 Z070000", "2024-12-29 15:04:05 Z"),
            Ok(T)
        );
        // The offset is required where the layout has one.
        assert_eq!(
            err(RFC3339, "2024-12-29T15:04:05"),
            r#"parsing time "2024-12-29T15:04:05" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "Z07:00""#
        );
        assert_eq!(
            err(RFC3339, "2024-12-29T15:04:05+25:00"),
            r#"parsing time "2024-12-29T15:04:05+25:00": time zone offset hour out of range"#
        );
        assert_eq!(
            err(RFC3339, "2024-12-29 15:04:05Z"),
            r#"parsing time "2024-12-29 15:04:05Z" as "2006-01-02T15:04:05Z07:00": cannot parse " 15:04:05Z" as "T""#
        );
    }

    #[test]
    fn fractional_seconds() {
        assert_eq!(
            parse(RFC3339NANO, "2024-12-29T15:04:05.5Z"),
            Ok(T + SEC / 2)
        );
        assert_eq!(parse(RFC3339NANO, "2024-12-29T15:04:05Z"), Ok(T));
        assert_eq!(
            parse(RFC3339NANO, "2024-12-29T15:04:05.123456789+01:00"),
            Ok(T - 3600 * SEC + 123_456_789)
        );
        // More digits than nine are accepted and cut to nanoseconds.
        assert_eq!(
            parse(RFC3339NANO, "2024-12-29T15:04:05.1234567891Z"),
            Ok(T + 123_456_789)
        );
        // Go takes a fraction after the seconds even if the layout has none.
        assert_eq!(parse(RFC3339, "2024-12-29T15:04:05.25Z"), Ok(T + SEC / 4));
        assert_eq!(
            parse(DATE_TIME, "2024-12-29 15:04:05,001"),
            Ok(T + 1_000_000)
        );
        // `.000` needs exactly that many digits; either separator is fine.
        let layout = "2006-01-02 15:04:05.000";
        assert_eq!(parse(layout, "2024-12-29 15:04:05.250"), Ok(T + SEC / 4));
        assert_eq!(parse(layout, "2024-12-29 15:04:05,250"), Ok(T + SEC / 4));
        assert_eq!(
            err(layout, "2024-12-29 15:04:05.25"),
            r#"parsing time "2024-12-29 15:04:05.25" as "2006-01-02 15:04:05.000": cannot parse ".25" as ".000""#
        );
        assert_eq!(
            err(layout, "2024-12-29 15:04:05.-25"),
            r#"parsing time "2024-12-29 15:04:05.-25": fractional second out of range"#
        );
    }

    #[test]
    fn date_and_time_layouts() {
        assert_eq!(
            parse(DATE_ONLY, "2024-12-29"),
            Ok(T - (15 * 3600 + 4 * 60 + 5) * SEC)
        );
        assert_eq!(parse(DATE_TIME, "2024-12-29 15:04:05"), Ok(T));
        assert_eq!(
            parse("2006-01-02 3:04PM", "2024-12-29 3:04PM"),
            Ok(T - 5 * SEC)
        );
        assert_eq!(
            parse("2006-01-02 3:04pm", "2024-12-29 3:04pm"),
            Ok(T - 5 * SEC)
        );
        // 12AM is midnight, 12PM noon.
        let midnight = parse(DATE_ONLY, "2024-12-29").unwrap_or_default();
        assert_eq!(
            parse("2006-01-02 03:04PM", "2024-12-29 12:30AM"),
            Ok(midnight + 1800 * SEC)
        );
        assert_eq!(
            parse("2006-01-02 03:04PM", "2024-12-29 12:30PM"),
            Ok(midnight + 45_000 * SEC)
        );
        assert_eq!(
            err("2006-01-02 3:04PM", "2024-12-29 3:04XM"),
            r#"parsing time "2024-12-29 3:04XM" as "2006-01-02 3:04PM": cannot parse "XM" as "PM""#
        );
        assert_eq!(
            err("15:04", "25:00"),
            r#"parsing time "25:00": hour out of range"#
        );
        assert_eq!(
            err("15:04", "23:60"),
            r#"parsing time "23:60": minute out of range"#
        );
    }

    #[test]
    fn layouts_without_a_year_are_year_0_which_nanoseconds_cannot_hold() {
        // Go gives 0000-01-01 15:04:00 UTC; that is before 1677.
        for (layout, value) in [(KITCHEN, "3:04PM"), (TIME_ONLY, "14:30:00")] {
            assert_eq!(
                err(layout, value),
                format!(
                    "parsing time {value:?} as {layout:?}: time is outside the range of \
                     Unix nanoseconds (years 1677 to 2262)"
                )
            );
        }
        assert_eq!(
            err(KITCHEN, "3:04"),
            r#"parsing time "3:04" as "3:04PM": cannot parse "" as "PM""#
        );
        assert_eq!(
            err(KITCHEN, "13:04PM"),
            r#"parsing time "13:04PM": hour out of range"#
        );
    }

    #[test]
    fn named_months_weekdays_and_zones() {
        assert_eq!(parse(RFC1123, "Sun, 29 Dec 2024 15:04:05 UTC"), Ok(T));
        assert_eq!(parse(RFC1123, "Sun, 29 Dec 2024 15:04:05 GMT"), Ok(T));
        // Go checks the weekday is a name but not that it is right.
        assert_eq!(parse(RFC1123, "Mon, 29 Dec 2024 15:04:05 UTC"), Ok(T));
        // Names match in any case.
        assert_eq!(
            parse("January 2, 2006 15:04:05", "december 29, 2024 15:04:05"),
            Ok(T)
        );
        assert_eq!(
            parse("Monday Jan 2 2006 15:04:05", "SUNDAY DEC 29 2024 15:04:05"),
            Ok(T)
        );
        assert_eq!(parse(RFC850, "Sunday, 29-Dec-24 15:04:05 UTC"), Ok(T));
        assert_eq!(
            parse(ANSIC, "Mon Dec  9 15:04:05 2024"),
            Ok(1_733_756_645 * SEC)
        );
        assert_eq!(parse(ANSIC, "Mon Dec 29 15:04:05 2024"), Ok(T));
        // Two-digit years: 69..99 are 19xx, 00..68 are 20xx.
        assert_eq!(parse(RFC822, "01 Jan 69 00:00 UTC"), Ok(-31_536_000 * SEC));
        assert_eq!(parse(RFC822, "29 Dec 24 15:04 UTC"), Ok(T - 5 * SEC));
        // An abbreviation other than UTC: the wall clock is read as UTC, as
        // Go does for one its local zone does not use (even `GMT+3`).
        assert_eq!(parse(RFC1123, "Sun, 29 Dec 2024 15:04:05 PST"), Ok(T));
        assert_eq!(parse(RFC1123, "Sun, 29 Dec 2024 15:04:05 GMT+3"), Ok(T));
        assert_eq!(
            err(RFC1123, "Sun, 29 Dec 2024 15:04:05 Pacific"),
            r#"parsing time "Sun, 29 Dec 2024 15:04:05 Pacific" as "Mon, 02 Jan 2006 15:04:05 MST": cannot parse "Pacific" as "MST""#
        );
        assert_eq!(
            err(RFC1123, "Sun, 29 Foo 2024 15:04:05 UTC"),
            r#"parsing time "Sun, 29 Foo 2024 15:04:05 UTC" as "Mon, 02 Jan 2006 15:04:05 MST": cannot parse "Foo 2024 15:04:05 UTC" as "Jan""#
        );
    }

    #[test]
    fn errors_quote_value_and_layout_like_go() {
        assert_eq!(
            err(DATE_ONLY, "x"),
            r#"parsing time "x" as "2006-01-02": cannot parse "x" as "2006""#
        );
        assert_eq!(
            err(DATE_ONLY, "2024-12-29x"),
            r#"parsing time "2024-12-29x": extra text: "x""#
        );
        assert_eq!(
            err(DATE_ONLY, "2024-12-29 "),
            r#"parsing time "2024-12-29 ": extra text: " ""#
        );
        assert_eq!(
            err(DATE_ONLY, "2024-02-30"),
            r#"parsing time "2024-02-30": day out of range"#
        );
        assert_eq!(
            err(DATE_ONLY, "2023-02-29"),
            r#"parsing time "2023-02-29": day out of range"#
        );
        assert_eq!(
            err(DATE_ONLY, "2024-04-31"),
            r#"parsing time "2024-04-31": day out of range"#
        );
        assert_eq!(
            err(DATE_ONLY, "2024-12-00"),
            r#"parsing time "2024-12-00": day out of range"#
        );
        assert_eq!(parse(DATE_ONLY, "2024-02-29"), Ok(1_709_164_800 * SEC));
        assert_eq!(
            err(DATE_ONLY, "2024-13-01"),
            r#"parsing time "2024-13-01": month out of range"#
        );
        // Quotes and non-ASCII are escaped as Go's `quote` does.
        assert_eq!(
            err(DATE_ONLY, "2024-12-2\u{e9}\""),
            r#"parsing time "2024-12-2\xc3\xa9\"" as "2006-01-02": cannot parse "2\xc3\xa9\"" as "02""#
        );
        assert_eq!(err("", "x"), r#"parsing time "x": extra text: "x""#);
    }

    #[test]
    fn day_of_year() {
        let feb29 = 1_709_164_800 * SEC;
        assert_eq!(parse("2006 002", "2024 060"), Ok(feb29));
        assert_eq!(parse("2006 __2", "2024  60"), Ok(feb29));
        assert_eq!(parse("2006-01-02 002", "2024-02-29 060"), Ok(feb29));
        assert_eq!(
            err("2006-01 002", "2024-03 060"),
            r#"parsing time "2024-03 060": day-of-year does not match month"#
        );
        assert_eq!(
            err("2006 002", "2023 366"),
            r#"parsing time "2023 366": day-of-year out of range"#
        );
    }

    #[test]
    fn spaces_in_the_layout_match_runs_of_spaces() {
        assert_eq!(parse("2006-01-02 15:04:05", "2024-12-29   15:04:05"), Ok(T));
        assert_eq!(
            err("2006-01-02 15:04:05", "2024-12-29T15:04:05"),
            r#"parsing time "2024-12-29T15:04:05" as "2006-01-02 15:04:05": cannot parse "T15:04:05" as " ""#
        );
    }

    #[test]
    fn default_offset_applies_only_without_a_zone() {
        assert_eq!(
            parse_in(DATE_TIME, "2024-12-29 15:04:05", 3600),
            Ok(T - 3600 * SEC)
        );
        assert_eq!(parse_in(RFC3339, "2024-12-29T15:04:05Z", 3600), Ok(T));
        assert_eq!(
            parse_in(RFC3339, "2024-12-29T15:04:05-01:00", 3600),
            Ok(T + 3600 * SEC)
        );
    }

    #[test]
    fn rejects_long_strings_without_quoting_them() {
        let long = "1".repeat(MAX_PARSE_LEN + 1);
        let e = err(DATE_ONLY, &long);
        assert_eq!(
            e,
            "parsing time: the value is 257 bytes, over the limit of 256"
        );
        let e = err(&long, "2024");
        assert_eq!(
            e,
            "parsing time: the layout is 257 bytes, over the limit of 256"
        );
        let just = format!("2024-12-29{}", " ".repeat(MAX_PARSE_LEN - 10));
        assert!(err(DATE_ONLY, &just).contains("extra text"));
    }

    #[test]
    fn date_normalises_like_go() {
        let d = |y, mo, d, h, mi, s, ns, off| date(y, mo, d, h, mi, s, ns, off);
        assert_eq!(d(2024, 12, 25, 10, 30, 0, 0, 0), Ok(1_735_122_600 * SEC));
        assert_eq!(d(2024, 13, 1, 0, 0, 0, 0, 0), Ok(1_735_689_600 * SEC));
        assert_eq!(d(2024, 3, 0, 0, 0, 0, 0, 0), Ok(1_709_164_800 * SEC));
        assert_eq!(d(2023, 3, 0, 0, 0, 0, 0, 0), Ok(1_677_542_400 * SEC));
        assert_eq!(d(2024, 2, 31, 0, 0, 0, 0, 0), Ok(1_709_337_600 * SEC));
        assert_eq!(d(2024, 0, 1, 0, 0, 0, 0, 0), Ok(1_701_388_800 * SEC));
        assert_eq!(d(2024, -11, 1, 0, 0, 0, 0, 0), Ok(1_672_531_200 * SEC));
        assert_eq!(d(2024, 1, 1, -1, 0, 0, 0, 0), Ok(1_704_063_600 * SEC));
        assert_eq!(d(2024, 12, 29, 14, 63, 65, 0, 0), Ok(T));
        assert_eq!(d(2024, 12, 29, 15, 4, 4, 1_500_000_000, 0), Ok(T + SEC / 2));
        assert_eq!(d(2024, 12, 29, 15, 4, 6, -SEC / 2, 0), Ok(T + SEC / 2));
        // A zone east of UTC is earlier in UTC.
        assert_eq!(
            d(2024, 1, 1, 12, 0, 0, 0, 5 * 3600 + 1800),
            Ok(1_704_090_600 * SEC)
        );
        // The ends of i64 nanoseconds, and just past them.
        assert_eq!(d(2262, 4, 11, 23, 47, 16, 854_775_807, 0), Ok(i64::MAX));
        assert_eq!(d(1677, 9, 21, 0, 12, 43, 145_224_192, 0), Ok(i64::MIN));
        assert!(d(2262, 4, 11, 23, 47, 16, 854_775_808, 0).is_err());
        assert!(d(1677, 9, 21, 0, 12, 43, 145_224_191, 0).is_err());
        assert!(d(1, 1, 1, 0, 0, 0, 0, 0).is_err());
        // Huge fields are an error, never an overflow.
        let m = i64::MAX;
        assert!(d(m, m, m, m, m, m, m, i64::MIN).is_err());
        assert!(
            d(
                -m,
                i64::MIN,
                i64::MIN,
                i64::MIN,
                i64::MIN,
                i64::MIN,
                i64::MIN,
                m
            )
            .is_err()
        );
        assert_eq!(d(1970, 1, 1, 0, 0, 0, i64::MAX, 0), Ok(i64::MAX));
    }

    #[test]
    fn round_trips_through_the_formatter() {
        let layouts = [
            RFC3339NANO,
            "2006-01-02T15:04:05.000000000Z07:00",
            "Mon, 02 Jan 2006 15:04:05.999999999 -0700",
            "Monday, January 2, 2006 03:04:05.000000000 PM -07:00:00",
            "2006 002 15:04:05,999999999 MST",
            "Mon Jan _2 15:04:05.000000000 2006 Z07",
        ];
        let times = [
            0,
            1,
            -1,
            T,
            T + 123_456_789,
            1_709_164_800 * SEC + 43_200 * SEC,
            951_782_400 * SEC - 1,
            -31_536_000 * SEC,
            i64::MAX,
            i64::MIN,
            i64::MAX / 3,
            i64::MIN / 7,
        ];
        for layout in layouts {
            for t in times {
                let text = format(t, layout);
                assert_eq!(parse(layout, &text), Ok(t), "{text:?} as {layout:?}");
            }
        }
        // Whole seconds with a layout that has no fraction.
        for t in times {
            if let Some(t) = t.checked_sub(t.rem_euclid(SEC)) {
                assert_eq!(parse(RFC3339, &format(t, RFC3339)), Ok(t));
            }
        }
    }

    /// Pieces of layouts and values, so random strings reach every element.
    fn pieces() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "2006",
            "06",
            "01",
            "1",
            "Jan",
            "January",
            "02",
            "2",
            "_2",
            "__2",
            "002",
            "15",
            "03",
            "3",
            "04",
            "4",
            "05",
            "5",
            ".000",
            ".999999999",
            ",9",
            ".00",
            "PM",
            "pm",
            "AM",
            "Mon",
            "Monday",
            "MST",
            "UTC",
            "GMT+3",
            "Z07:00",
            "-0700",
            "-07",
            "Z",
            "+01:00",
            "-07:00:00",
            "Z070000",
            " ",
            "  ",
            "-",
            ":",
            ".",
            ",",
            "T",
            "9",
            "0",
            "12",
            "99",
            "2024",
            "+",
            "é",
            "\"",
            "\\",
        ]);
        prop::collection::vec(piece, 0..16).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_never_panics(layout in "\\PC{0,40}", value in "\\PC{0,40}") {
            let _ = parse(&layout, &value);
            let _ = parse(&layout, &layout);
        }

        #[test]
        fn parse_never_panics_on_layout_pieces(layout in pieces(), value in pieces()) {
            let _ = parse(&layout, &value);
            let _ = parse_in(&layout, &format(0, &layout), i64::MIN);
        }

        #[test]
        fn rfc3339nano_round_trips(t in any::<i64>()) {
            prop_assert_eq!(parse(RFC3339NANO, &format(t, RFC3339NANO)), Ok(t));
        }

        #[test]
        fn years_1_to_9999_parse_when_nanoseconds_can_hold_them(
            y in 1..=9999_i64, mo in 1..=12_i64, d in 1..=28_i64,
            h in 0..24_i64, mi in 0..60_i64, s in 0..60_i64, ns in 0..SEC,
        ) {
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ns:09}Z");
            let parsed = parse(RFC3339NANO, &text);
            prop_assert_eq!(&parsed, &date(y, mo, d, h, mi, s, ns, 0).map_err(|_| ()).map_or_else(
                |()| Err(format!("parsing time {text:?} as {RFC3339NANO:?}: time is outside \
                                 the range of Unix nanoseconds (years 1677 to 2262)")),
                Ok,
            ));
            if let Ok(t) = parsed {
                prop_assert_eq!(format(t, "2006-01-02T15:04:05.000000000Z07:00"), text);
            } else {
                prop_assert!(!(1678..=2261).contains(&y));
            }
        }
    }
}

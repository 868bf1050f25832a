//! `time:format(layout)` with Go's reference-time layouts
//! (`"2006-01-02T15:04:05Z07:00"`), in UTC. Unknown text is copied as is.

const MONTHS: [&str; 12] = [
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
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Layout tokens, longest first so that `2006` wins over `2`.
const TOKENS: [&str; 31] = [
    "January",
    "Monday",
    ".000000000",
    ".999999999",
    ".000000",
    ".999999",
    "Z07:00",
    "-07:00",
    "-0700",
    "Z0700",
    "2006",
    ".000",
    ".999",
    "Jan",
    "Mon",
    "MST",
    "01",
    "02",
    "_2",
    "15",
    "03",
    "04",
    "05",
    "06",
    "PM",
    "pm",
    "1",
    "2",
    "3",
    "4",
    "5",
];

struct Civil {
    year: i64,
    month: usize,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: i64,
    weekday: usize,
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
    Civil {
        year,
        month: usize::try_from(month - 1).unwrap_or(0),
        day,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
        nanos,
        weekday: usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0),
    }
}

fn fraction(nanos: i64, digits: usize, trim: bool) -> String {
    let full = format!("{nanos:09}");
    let mut frac = full[..digits].to_owned();
    if trim {
        frac = frac.trim_end_matches('0').to_owned();
        if frac.is_empty() {
            return String::new();
        }
    }
    format!(".{frac}")
}

fn token(t: &Civil, tok: &str) -> String {
    let hour12 = if t.hour % 12 == 0 { 12 } else { t.hour % 12 };
    match tok {
        "January" => MONTHS[t.month].into(),
        "Jan" => MONTHS[t.month][..3].into(),
        "Monday" => DAYS[t.weekday].into(),
        "Mon" => DAYS[t.weekday][..3].into(),
        "2006" => format!("{:04}", t.year),
        "06" => format!("{:02}", t.year.rem_euclid(100)),
        "01" => format!("{:02}", t.month + 1),
        "1" => (t.month + 1).to_string(),
        "02" => format!("{:02}", t.day),
        "_2" => format!("{:>2}", t.day),
        "2" => t.day.to_string(),
        "15" => format!("{:02}", t.hour),
        "03" => format!("{hour12:02}"),
        "3" => hour12.to_string(),
        "04" => format!("{:02}", t.minute),
        "4" => t.minute.to_string(),
        "05" => format!("{:02}", t.second),
        "5" => t.second.to_string(),
        "PM" => if t.hour >= 12 { "PM" } else { "AM" }.into(),
        "pm" => if t.hour >= 12 { "pm" } else { "am" }.into(),
        "MST" => "UTC".into(),
        "Z07:00" | "Z0700" => "Z".into(),
        "-07:00" => "+00:00".into(),
        "-0700" => "+0000".into(),
        frac if frac.starts_with('.') => {
            fraction(t.nanos, frac.len() - 1, frac.as_bytes()[1] == b'9')
        }
        other => other.into(),
    }
}

/// Formats Unix nanoseconds with a Go layout, in UTC.
pub(crate) fn format(unix_ns: i64, layout: &str) -> String {
    let t = civil(unix_ns);
    let mut out = String::new();
    let mut rest = layout;
    while !rest.is_empty() {
        if let Some(tok) = TOKENS.iter().find(|tok| rest.starts_with(*tok)) {
            out.push_str(&token(&t, tok));
            rest = &rest[tok.len()..];
        } else {
            let ch = rest.chars().next().unwrap_or(' ');
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
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
}

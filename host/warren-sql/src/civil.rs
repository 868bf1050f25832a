//! Calendar arithmetic for PostgreSQL's binary dates and timestamps, printed
//! as RFC 3339 UTC with whole seconds (`"2026-03-01T09:30:00Z"`).
//!
//! PostgreSQL counts from 2000-01-01: microseconds for timestamps, days for
//! dates. Fractions of a second are dropped (rounded toward the past);
//! `infinity` and `-infinity` print as those words.

/// Days from 1970-01-01 to 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// A binary `timestamp`/`timestamptz` (microseconds since 2000-01-01 UTC).
pub fn timestamp_text(micros: i64) -> String {
    match micros {
        i64::MAX => "infinity".into(),
        i64::MIN => "-infinity".into(),
        _ => {
            let day = micros.div_euclid(DAY_MICROS);
            let secs = micros.rem_euclid(DAY_MICROS) / 1_000_000;
            let (y, m, d) = civil_from_days(day + PG_EPOCH_DAYS);
            format!(
                "{}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
                year_text(y),
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            )
        }
    }
}

/// A binary `date` (days since 2000-01-01), at midnight UTC.
pub fn date_text(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => {
            let (y, m, d) = civil_from_days(i64::from(days) + PG_EPOCH_DAYS);
            format!("{}-{m:02}-{d:02}T00:00:00Z", year_text(y))
        }
    }
}

/// A binary `time` (microseconds since midnight) as `HH:MM:SS[.ffffff]`.
pub fn time_text(micros: i64) -> String {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let base = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        base
    } else {
        let f = format!("{frac:06}");
        format!("{base}.{}", f.trim_end_matches('0'))
    }
}

fn year_text(y: i64) -> String {
    if (0..=9999).contains(&y) {
        format!("{y:04}")
    } else {
        y.to_string()
    }
}

/// Howard Hinnant's days-to-civil (proleptic Gregorian) algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_dates() {
        assert_eq!(timestamp_text(0), "2000-01-01T00:00:00Z");
        // 2026-03-01T09:30:00.75Z
        let day = 9556; // days from 2000-01-01 to 2026-03-01
        let t = day * DAY_MICROS + (9 * 3600 + 30 * 60) * 1_000_000 + 750_000;
        assert_eq!(timestamp_text(t), "2026-03-01T09:30:00Z");
        assert_eq!(timestamp_text(-1), "1999-12-31T23:59:59Z");
        assert_eq!(date_text(9556), "2026-03-01T00:00:00Z");
        assert_eq!(date_text(-1), "1999-12-31T00:00:00Z");
        assert_eq!(date_text(59), "2000-02-29T00:00:00Z");
        assert_eq!(date_text(i32::MAX), "infinity");
        assert_eq!(timestamp_text(i64::MIN), "-infinity");
    }

    #[test]
    fn times() {
        assert_eq!(time_text(0), "00:00:00");
        assert_eq!(
            time_text((13 * 3600 + 5) * 1_000_000 + 500_000),
            "13:00:05.5"
        );
    }
}

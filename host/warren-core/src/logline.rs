//! What one log line of a process (Lua's `print` and `logger`, a
//! component's `log`) may hold, whatever the process hands over.
//!
//! Guarantees: a line is at most [`MAX_LOG_LINE`] bytes of the process's
//! text (cut at a character boundary, saying how long it was) and holds no
//! line break: `\n` and `\r` are written as `\n` and `\r`, so one call
//! cannot print lines that carry another process's `pid=` and `host=`
//! (red team M forged whole log lines with a newline).
//!
//! And how many lines a host may write: each host has a [`LogBudget`], a
//! bucket of [`LOG_BURST_BYTES`] refilled at [`LOG_BYTES_PER_SEC`]; a line
//! past it is dropped, and the next line written is preceded, at most once
//! per [`NOTICE_EVERY`], by a notice of how many were. The log is one
//! stream behind a bounded queue: without a budget one tenant's flood
//! (840 MB in 5 s to a file) filled the queue and other tenants' lines
//! were the ones dropped.

use std::borrow::Cow;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::Level;

use crate::rate::Bucket;
use tracing::level_filters::LevelFilter;

/// Bytes of log lines one host's processes may write per second, on
/// average: a tenant's flood then takes a bounded share of the log's
/// writer and queue (4,096 lines), whatever else is logging.
pub const LOG_BYTES_PER_SEC: u64 = 1 << 20;

/// Bytes one host may write in a burst, above its rate.
pub const LOG_BURST_BYTES: u64 = 1 << 20;

/// What a line costs beyond its text (its time, level, pid and host, and
/// its place in the queue): a flood of empty lines is not free.
pub const LOG_LINE_COST: u64 = 128;

/// The least time between two notices of a host's dropped lines (a
/// steady flood would otherwise add one notice per line it gets in).
pub const NOTICE_EVERY: Duration = Duration::from_secs(1);

/// A host's log budget (see the module doc).
#[derive(Debug)]
pub struct LogBudget(Mutex<State>);

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget(Mutex::new(State {
            bytes: Bucket::new(LOG_BYTES_PER_SEC, LOG_BURST_BYTES),
            dropped: 0,
            noticed: None,
        }))
    }
}

#[derive(Debug)]
struct State {
    bytes: Bucket,
    /// Lines dropped since the last notice.
    dropped: u64,
    noticed: Option<Instant>,
}

/// What becomes of one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Written.
    Write,
    /// Written, after a notice that this many lines were dropped.
    WriteAfterDropped(u64),
    /// Dropped (counted for the next notice).
    Drop,
}

impl LogBudget {
    /// The verdict on a line of `bytes` bytes at `now`.
    pub fn take(&self, bytes: usize, now: Instant) -> Verdict {
        let mut b = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let cost = u64::try_from(bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(LOG_LINE_COST);
        if !b.bytes.take(cost, now) {
            b.dropped = b.dropped.saturating_add(1);
            return Verdict::Drop;
        }
        let due = b
            .noticed
            .is_none_or(|t| now.saturating_duration_since(t) >= NOTICE_EVERY);
        if b.dropped == 0 || !due {
            return Verdict::Write;
        }
        b.noticed = Some(now);
        Verdict::WriteAfterDropped(std::mem::take(&mut b.dropped))
    }
}

/// Whether a process of host `host` (with `budget`) writes a line of
/// `bytes` bytes at `level`: not if the level is not logged at all (which
/// spends nothing) or the budget drops it; a notice of dropped lines is
/// written first when one is due.
pub fn admit(budget: &LogBudget, host: &str, level: Level, bytes: usize) -> bool {
    if LevelFilter::current() < level {
        return false;
    }
    match budget.take(bytes, Instant::now()) {
        Verdict::Write => true,
        Verdict::Drop => false,
        Verdict::WriteAfterDropped(n) => {
            tracing::warn!(
                target: "warren::log",
                %host,
                "{n} log lines of host '{host}' were dropped: it logged past its budget of \
                 {LOG_BYTES_PER_SEC} bytes a second"
            );
            true
        }
    }
}

/// Bytes of a process's text one log line keeps: five calls of 30 MB
/// wrote 150 MB to the log, each holding the worker 250 ms, and one 6 MB
/// `print` made the log's writer hold 6 MB while stderr was read slowly.
pub const MAX_LOG_LINE: usize = 8 * 1024;

/// `text` as a log line holds it (see the module doc).
pub fn log_line(text: &str) -> Cow<'_, str> {
    let cut = text.len() > MAX_LOG_LINE;
    let breaks = text.bytes().any(|b| b == b'\n' || b == b'\r');
    if !cut && !breaks {
        return Cow::Borrowed(text);
    }
    let mut at = text.len().min(MAX_LOG_LINE);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let kept = text.get(..at).unwrap_or_default();
    let mut line = String::with_capacity(kept.len() + 40);
    for c in kept.chars() {
        match c {
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c => line.push(c),
        }
    }
    if cut {
        line.push_str(&format!("... ({} bytes, cut)", text.len()));
    }
    Cow::Owned(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_passes_its_burst_drops_past_it_and_refills_at_its_rate() {
        let budget = LogBudget::default();
        let t0 = Instant::now();
        let line = 1000;
        let per = LOG_LINE_COST + 1000;
        let burst = LOG_BURST_BYTES / per;
        for _ in 0..burst {
            assert_eq!(budget.take(line, t0), Verdict::Write);
        }
        for _ in 0..10 {
            assert_eq!(budget.take(line, t0), Verdict::Drop);
        }
        // A tenth of a second later: a tenth of the rate is back; the
        // first line tells of the ten dropped, once.
        let t1 = t0 + Duration::from_millis(100);
        let back = LOG_BYTES_PER_SEC / 10 / per;
        assert_eq!(budget.take(line, t1), Verdict::WriteAfterDropped(10));
        let mut written = 1;
        while budget.take(line, t1) == Verdict::Write {
            written += 1;
        }
        // (What the burst left over may fit one more.)
        assert!((back..=back + 1).contains(&written), "{written} of {back}");
        // The next notice waits its second, counting what it covers.
        let t2 = t1 + Duration::from_millis(500);
        assert_eq!(budget.take(line, t2), Verdict::Write);
        let t3 = t0 + NOTICE_EVERY;
        assert_eq!(budget.take(line, t3), Verdict::Write);
        assert_eq!(
            budget.take(line, t1 + NOTICE_EVERY),
            Verdict::WriteAfterDropped(1)
        );
    }

    #[test]
    fn a_huge_line_or_an_old_clock_does_not_overflow_the_budget() {
        let budget = LogBudget::default();
        let t0 = Instant::now();
        assert_eq!(budget.take(usize::MAX, t0), Verdict::Drop);
        assert_eq!(budget.take(10, t0), Verdict::WriteAfterDropped(1));
        // A time before the last one refills nothing and breaks nothing.
        let earlier = t0.checked_sub(Duration::from_secs(5)).unwrap_or(t0);
        assert_eq!(budget.take(10, earlier), Verdict::Write);
    }

    #[test]
    fn a_short_line_without_breaks_is_kept_as_it_is() {
        assert!(matches!(log_line("hello"), Cow::Borrowed("hello")));
    }

    #[test]
    fn breaks_are_written_out_and_long_lines_cut_at_a_character() {
        let forged = "ok\n INFO fake pid=<0.1> host=t:h\r";
        assert_eq!(log_line(forged), "ok\\n INFO fake pid=<0.1> host=t:h\\r");
        let long = "é".repeat(MAX_LOG_LINE);
        let line = log_line(&long);
        assert!(line.len() < MAX_LOG_LINE + 40, "{}", line.len());
        assert!(line.ends_with(&format!("... ({} bytes, cut)", long.len())));
        assert!(line.starts_with("éé"));
    }
}

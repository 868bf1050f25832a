//! [`EngineMeter`]: the CPU time one caller's statements spend inside the
//! embedded SQL engine, charged to that caller and bounded by what is left
//! of its CPU budget.
//!
//! SQL is code: a statement that never ends (a recursive CTE without a
//! bound) ran on an SQLite entry's only connection until the call's
//! 10-minute deadline, holding the entry for every other process granted
//! it, while its own process, blocked on the call, spent none of its
//! `cpu_budget`. With a meter, such a statement is interrupted once the
//! caller's engine time reaches its allowance, and the time is charged, so
//! a process that catches the error and starts again ends at its budget
//! like one that loops in Lua.
//!
//! Guarantees: a statement run with a meter is interrupted (its call is
//! `RATE_LIMITED`, "cpu budget exceeded") within [`CHECK_EVERY`] progress
//! callbacks of its allowance; the engine's CPU time of every statement
//! run with a meter is added to [`EngineMeter::spent`], whether it ends,
//! fails or is interrupted. Time a statement waits (for a lock, the disk)
//! is not CPU time and is not charged. PostgreSQL's statements run on the
//! server, not in this process, and are bounded by `query_timeout` only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Progress callbacks (each [`crate::sqlite`]'s `PROGRESS_STEPS` virtual
/// machine steps, a few microseconds) between two reads of the thread's
/// CPU clock, which is a system call: reading it at every callback cost
/// about a tenth of a busy statement's time.
pub(crate) const CHECK_EVERY: u32 = 8;

/// What one caller (a process) may spend in the engine and has spent, in
/// nanoseconds of CPU time. Shared between the caller's front-end, which
/// sets the allowance before each call and adds `spent` to the caller's
/// CPU time, and the threads that run its statements.
#[derive(Debug)]
pub struct EngineMeter {
    spent: AtomicU64,
    /// `spent` may grow up to this; `u64::MAX` without a bound.
    allowance: AtomicU64,
}

impl Default for EngineMeter {
    fn default() -> Self {
        EngineMeter {
            spent: AtomicU64::new(0),
            allowance: AtomicU64::new(u64::MAX),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl EngineMeter {
    /// A meter with nothing spent and no bound.
    pub fn new() -> Self {
        EngineMeter::default()
    }

    /// From now on the caller's statements may spend `left` more (what is
    /// left of its whole CPU budget, this meter's time included).
    pub fn allow(&self, left: Duration) {
        let at = self
            .spent
            .load(Ordering::Acquire)
            .saturating_add(nanos(left));
        self.allowance.store(at, Ordering::Release);
    }

    /// The engine CPU time charged so far.
    pub fn spent(&self) -> Duration {
        Duration::from_nanos(self.spent.load(Ordering::Acquire))
    }

    /// Whether `running` more (a statement's own time so far) reaches the
    /// allowance.
    pub(crate) fn exhausted_with(&self, running: Duration) -> bool {
        let spent = self.spent.load(Ordering::Acquire);
        spent.saturating_add(nanos(running)) >= self.allowance.load(Ordering::Acquire)
    }

    /// Runs `f` on this thread and charges its CPU time: host work a
    /// caller asked for outside the engine (a file copied on the blocking
    /// lane), which counts against its budget as its statements do.
    pub fn metered<R>(&self, f: impl FnOnce() -> R) -> R {
        let at = thread_cpu_time();
        let out = f();
        self.charge(thread_cpu_time().saturating_sub(at));
        out
    }

    /// Whether the allowance is spent already.
    pub fn exhausted(&self) -> bool {
        self.exhausted_with(Duration::ZERO)
    }

    /// Adds a statement's CPU time.
    pub(crate) fn charge(&self, used: Duration) {
        self.spent.fetch_add(nanos(used), Ordering::AcqRel);
    }
}

/// The calling thread's CPU time (zero if the clock cannot be read, which
/// then charges nothing rather than failing the statement).
pub(crate) fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer and CLOCK_THREAD_CPUTIME_ID a
    // clock every Linux has; a failure leaves `ts` zero.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let sub = u32::try_from(ts.tv_nsec).unwrap_or(0);
    if rc == 0 {
        Duration::new(secs, sub)
    } else {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_counts_from_what_was_spent() {
        let m = EngineMeter::new();
        assert!(!m.exhausted_with(Duration::from_secs(3600)), "unbounded");
        m.charge(Duration::from_millis(40));
        m.allow(Duration::from_millis(10));
        assert!(!m.exhausted_with(Duration::from_millis(9)));
        assert!(m.exhausted_with(Duration::from_millis(10)));
        m.charge(Duration::from_millis(10));
        assert!(m.exhausted_with(Duration::ZERO) && m.exhausted());
        assert_eq!(m.spent(), Duration::from_millis(50));
    }

    #[test]
    fn metered_work_is_charged() {
        let m = EngineMeter::new();
        let x = m.metered(|| {
            let mut x = 0u64;
            for i in 0..5_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            x
        });
        assert!(m.spent() > Duration::ZERO, "{x}");
    }

    #[test]
    fn the_thread_clock_moves_with_work() {
        let t0 = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(thread_cpu_time() > t0, "{x}");
    }
}

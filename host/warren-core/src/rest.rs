//! Rest for a helper thread that only has work while some worker runs
//! guest code: the Lua watchdog and the WebAssembly epoch ticker, which
//! otherwise wake every millisecond for as long as the runtime lives.
//!
//! Workers count their runs in a [`Runs`] each (odd while guest code runs
//! there). The helper ticks, and after [`REST_AFTER`] ticks in which no
//! count was odd ([`Idle`]) it rests ([`Rest::rest`]) until a worker starts
//! a run, which wakes it ([`Runs::enter`]), and [`Rest`]'s longest rest at
//! most.
//!
//! Guarantee: a run that starts as the helper goes to rest is never
//! missed. The helper says it rests before it reads the counts a last
//! time, and a worker counts its run before it reads whether the helper
//! rests, all four sequentially consistent: in their one total order,
//! either the helper's last read comes after the count (it sees the run and
//! does not rest) or the worker's read comes after the helper said it
//! rests (the worker wakes it). The longest rest only bounds what a fault
//! here would cost.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::Thread;
use std::time::Duration;

/// Ticks in a row with nothing running after which a helper rests (a busy
/// runtime's short gaps between runs cost no wake-up of it).
pub const REST_AFTER: u32 = 8;

/// A helper's rest: whether it rests, and how to wake it.
#[derive(Debug)]
pub struct Rest {
    resting: AtomicBool,
    thread: OnceLock<Thread>,
    longest: Duration,
}

impl Rest {
    /// A helper that rests `longest` at most each time.
    pub const fn new(longest: Duration) -> Self {
        Rest {
            resting: AtomicBool::new(false),
            thread: OnceLock::new(),
            longest,
        }
    }

    /// Makes the calling thread the helper that rests; call it first
    /// thing on that thread.
    pub fn bind_current(&self) {
        let _ = self.thread.set(std::thread::current());
    }

    /// Whether the helper rests now.
    pub fn resting(&self) -> bool {
        self.resting.load(Ordering::SeqCst)
    }

    /// Rests the calling helper until a worker starts a run, unless
    /// `running` (its last read of the counts) says one runs now.
    pub fn rest(&self, running: impl FnOnce() -> bool) {
        self.resting.store(true, Ordering::SeqCst);
        if !running() {
            std::thread::park_timeout(self.longest);
        }
        self.resting.store(false, Ordering::SeqCst);
    }

    fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}

/// A worker's count of its runs: started plus ended, odd while one runs.
/// Written only by its worker's thread; read by the helper.
#[derive(Debug, Default)]
pub struct Runs(AtomicU64);

impl Runs {
    /// A count of no runs.
    pub const fn new() -> Self {
        Runs(AtomicU64::new(0))
    }

    /// A run starts: counted first, then `rest`'s helper is woken if it
    /// rests.
    pub fn enter(&self, rest: &Rest) {
        self.0.fetch_add(1, Ordering::SeqCst);
        if rest.resting() {
            rest.wake();
        }
    }

    /// The run has ended. A plain store, not a locked add: only the
    /// worker that owns the count writes it (`enter` and `leave` come from
    /// its thread), and nothing is read after it that the helper's rest
    /// depends on (a helper that reads the odd count a moment longer only
    /// stays awake one tick more). It was one of the two locked
    /// instructions each resumption of a process paid.
    pub fn leave(&self) {
        let count = self.0.load(Ordering::Relaxed);
        self.0.store(count.wrapping_add(1), Ordering::Release);
    }

    /// The count: runs started plus ended.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Whether a run is going on.
    pub fn running(&self) -> bool {
        self.count() % 2 == 1
    }
}

/// A helper's ticks in a row with nothing running.
#[derive(Debug, Default)]
pub struct Idle(u32);

impl Idle {
    /// Counts a tick in which something ran or not; whether to rest now.
    /// After a rest that ended with nothing running (its time was up), the
    /// next idle tick rests again at once.
    pub fn rest_now(&mut self, running: bool) -> bool {
        self.0 = if running { 0 } else { self.0.saturating_add(1) };
        self.0 >= REST_AFTER
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, mpsc};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use super::{Idle, REST_AFTER, Rest, Runs};

    #[test]
    fn idle_ticks_rest_after_enough_and_a_run_starts_the_count_again() {
        let mut idle = Idle::default();
        let rests: Vec<bool> = (0..REST_AFTER).map(|_| idle.rest_now(false)).collect();
        assert_eq!(rests.iter().filter(|r| **r).count(), 1, "{rests:?}");
        assert!(rests[rests.len() - 1]);
        assert!(idle.rest_now(false), "after a rest with nothing running");
        assert!(!idle.rest_now(true));
        assert!(!idle.rest_now(false), "a run starts the count again");
    }

    /// A helper thread that rests once (as `runs` says) and then says so.
    fn helper(rest: &Arc<Rest>, runs: &Arc<Runs>) -> (JoinHandle<()>, mpsc::Receiver<()>) {
        let (back, told) = mpsc::channel();
        let (rest, runs) = (rest.clone(), runs.clone());
        let thread = std::thread::spawn(move || {
            rest.bind_current();
            rest.rest(|| runs.running());
            back.send(()).expect("the test waits");
        });
        (thread, told)
    }

    #[test]
    fn a_helper_does_not_rest_while_a_run_goes_on() {
        let rest = Arc::new(Rest::new(Duration::from_secs(3600)));
        let runs = Arc::new(Runs::new());
        runs.enter(&rest);
        let (thread, told) = helper(&rest, &runs);
        told.recv_timeout(Duration::from_secs(10))
            .expect("the helper did not rest during a run");
        thread.join().expect("the helper ends");
        assert!(!rest.resting());
        runs.leave();
        assert!(!runs.running());
        assert_eq!(runs.count(), 2);
    }

    #[test]
    fn a_run_wakes_a_resting_helper() {
        let rest = Arc::new(Rest::new(Duration::from_secs(3600)));
        let runs = Arc::new(Runs::new());
        let (thread, told) = helper(&rest, &runs);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !rest.resting() {
            assert!(Instant::now() < deadline, "the helper never rested");
            std::thread::sleep(Duration::from_millis(1));
        }
        runs.enter(&rest);
        told.recv_timeout(Duration::from_secs(10))
            .expect("the run woke the helper");
        thread.join().expect("the helper ends");
        runs.leave();
    }
}

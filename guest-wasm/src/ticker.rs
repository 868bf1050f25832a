//! The epoch ticker: advances the epoch of every live engine each
//! [`EPOCH_TICK`] while a worker runs components, which is what makes a
//! guest past its slice yield (`Store::set_epoch_deadline`).
//!
//! A guest's epoch deadline can only pass while it runs, and guests run
//! only inside a driver's `Frontend::run`, which counts its runs in a
//! [`Slot`] (odd while it runs). After a few ticks in which no slot ran,
//! the ticker rests until a slot starts a run, which wakes it (the
//! protocol is `warren_core::rest`'s, which cannot miss a run): a runtime
//! whose components all wait costs no wake-ups (it ticked a thousand times
//! a second). A rest ends after [`REST_MAX`] at the latest.
//!
//! One thread serves every engine of the OS process; it waits, without
//! ticking, while there is none.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once, PoisonError, Weak};
use std::time::Duration;

use warren_core::rest::{Idle, Rest, Runs};
use wasmtime::{Engine, EngineWeak};

use crate::program::EPOCH_TICK;

/// The longest rest: a wake-up missed through a fault of this module
/// would delay the preemption of a guest by at most this much.
const REST_MAX: Duration = Duration::from_millis(100);

/// A driver's count of its runs, looked at by the ticker.
pub(crate) struct Slot {
    /// Runs started plus ended: odd while its driver runs components.
    runs: Runs,
    ticker: &'static Ticker,
}

impl Slot {
    /// The driver is about to run components (waking the ticker if it
    /// rests).
    pub(crate) fn enter(&self) {
        self.runs.enter(&self.ticker.rest);
    }

    /// The driver has stopped running components.
    pub(crate) fn leave(&self) {
        self.runs.leave();
    }
}

/// The engines to tick, the slots that say whether to, and the thread.
pub(crate) struct Ticker {
    state: Mutex<Watched>,
    /// Wakes the thread when an engine is added (it waits while none lives).
    added: Condvar,
    /// Its rest while no component runs.
    rest: Rest,
    /// Ticks so far (what tests watch).
    ticks: AtomicU64,
}

struct Watched {
    engines: Vec<EngineWeak>,
    slots: Vec<Weak<Slot>>,
}

/// The ticker of every engine of this OS process.
static TICKER: Ticker = Ticker::new(REST_MAX);

/// Ticks `engine`'s epoch from now on (starting the ticker on first use).
pub(crate) fn add(engine: &Engine) -> std::io::Result<()> {
    static START: Once = Once::new();
    let mut started = Ok(());
    START.call_once(|| started = TICKER.start());
    started?;
    TICKER.add(engine);
    Ok(())
}

/// A slot for a driver, counted by the process's ticker.
pub(crate) fn slot() -> Arc<Slot> {
    TICKER.slot()
}

impl Ticker {
    const fn new(rest_max: Duration) -> Self {
        Ticker {
            state: Mutex::new(Watched {
                engines: Vec::new(),
                slots: Vec::new(),
            }),
            added: Condvar::new(),
            rest: Rest::new(rest_max),
            ticks: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, engine: &Engine) {
        self.lock().engines.push(engine.weak());
        self.added.notify_one();
    }

    fn slot(&'static self) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            runs: Runs::new(),
            ticker: self,
        });
        let mut state = self.lock();
        state.slots.retain(|s| s.strong_count() > 0);
        state.slots.push(Arc::downgrade(&slot));
        slot
    }

    fn start(&'static self) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("warren-wasm-epoch".into())
            .spawn(move || self.run())
            .map(drop)
    }

    /// The live engines and slots, waiting while no engine lives.
    fn live(&self) -> (Vec<Engine>, Vec<Arc<Slot>>) {
        let mut state = self.lock();
        loop {
            state.engines.retain(|e| e.upgrade().is_some());
            let engines: Vec<Engine> = state
                .engines
                .iter()
                .filter_map(EngineWeak::upgrade)
                .collect();
            if !engines.is_empty() {
                state.slots.retain(|s| s.strong_count() > 0);
                let slots = state.slots.iter().filter_map(Weak::upgrade).collect();
                return (engines, slots);
            }
            state = self
                .added
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn run(&self) {
        self.rest.bind_current();
        let mut idle = Idle::default();
        loop {
            std::thread::sleep(EPOCH_TICK);
            let (engines, slots) = self.live();
            for engine in &engines {
                engine.increment_epoch();
            }
            drop(engines);
            self.ticks.fetch_add(1, Ordering::Relaxed);
            let running = slots.iter().any(|s| s.runs.running());
            // A slot made since `slots` was read wakes it on its first run.
            if idle.rest_now(running) {
                self.rest.rest(|| slots.iter().any(|s| s.runs.running()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::Ticker;

    /// Waits (10 s at most) until `done`.
    fn until(done: impl Fn() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "not within 10 s: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_idle_ticker_rests_and_a_run_wakes_it() {
        // A ticker of its own, whose rests end only when a run wakes it.
        let ticker: &'static Ticker = Box::leak(Box::new(Ticker::new(Duration::from_secs(3600))));
        ticker.start().expect("a ticker thread");
        let engine = wasmtime::Engine::default();
        ticker.add(&engine);
        let slot = ticker.slot();
        until(|| ticker.rest.resting(), "the ticker rests");
        let ticks = ticker.ticks.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        let later = ticker.ticks.load(Ordering::Relaxed);
        assert_eq!(
            later,
            ticks,
            "it ticked {} times while resting",
            later - ticks
        );
        // A driver runs: the ticker wakes and ticks while it does.
        slot.enter();
        until(
            || ticker.ticks.load(Ordering::Relaxed) >= ticks + 20,
            "the ticker ticks for a run",
        );
        assert!(!ticker.rest.resting(), "it ticks, not rests");
        slot.leave();
        until(|| ticker.rest.resting(), "the ticker rests again");
        drop(engine);
    }
}

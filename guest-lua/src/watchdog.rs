//! The watchdog: arms the preemption hook of a Lua process that has run
//! too long, so that code running within its slice pays nothing for it.
//!
//! A Lua count hook makes the VM trace every instruction while it is set
//! (Lua 5.4 checks it in `luaG_traceexec` at each one), which cost a quarter
//! of the time of a message. So no hook is set while processes behave: each
//! VM's worker counts its process resumes in a [`Slot`] (odd while a
//! process runs), and one watchdog thread looks at every slot each
//! [`TICK`]. A slot still odd with the same count as at the last tick has
//! run one process for at least a tick: the watchdog sends the worker
//! thread [`SIGNAL`], whose handler sets the hook on the innermost
//! coroutine running there ([`CURRENT`], kept by the kernel's resume; see
//! [`crate::resume`]). The hook (see [`crate::preempt`]) then decides at
//! the next instruction, on the worker thread itself.
//!
//! Setting a hook from a signal handler is what `lua_sethook` is written
//! for (the stand-alone `lua` does it on Ctrl-C). A slot's thread is only
//! signalled under its lock, which the VM takes to retire the slot before
//! its worker thread can end, so no signal goes to a thread that is gone.
//!
//! An idle runtime costs no wake-ups: after a few ticks in which no slot
//! ran a process, the watchdog rests until a slot starts a run, which
//! wakes it ([`Slot::enter`]; the protocol is `warren_core::rest`'s, which
//! cannot miss a run); ticking every millisecond, it woke an idle `warren`
//! about 900 times a second. A rest ends after [`REST_MAX`] at the latest.

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once, PoisonError, Weak};
use std::time::Duration;

use mlua::ffi::lua_State;
use warren_core::rest::{Idle, Rest, Runs};

/// How often the watchdog looks at the slots: a process is noticed after
/// running one to two ticks without giving its worker back.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// The longest rest: a wake-up missed through a fault of this module
/// would delay the preemption of a process by at most this much.
const REST_MAX: Duration = Duration::from_millis(100);

/// The signal that asks a worker to arm its hook. `SIGURG` is ignored by
/// default and used by nothing a worker does (Go preempts goroutines with
/// it for the same reason). The handler is installed for the whole process
/// when the first Lua VM starts: an embedding program's own `SIGURG`
/// handler is replaced, not chained.
const SIGNAL: libc::c_int = libc::SIGURG;

thread_local! {
    /// The innermost Lua coroutine this thread is running, or null. Read by
    /// the signal handler: a const-initialised cell with no destructor, so
    /// reading it allocates nothing and cannot fail.
    pub(crate) static CURRENT: Cell<*mut lua_State> = const { Cell::new(ptr::null_mut()) };
}

/// One VM's resume counter and the thread to signal.
pub(crate) struct Slot {
    /// Process resumes started plus ended: odd while a process runs.
    runs: Runs,
    /// `runs` at the watchdog's last look (only the watchdog uses it).
    seen: AtomicU64,
    /// The worker thread, until the VM retires the slot.
    thread: Mutex<Option<libc::pthread_t>>,
    /// The worker thread's CPU-time clock, if the system gives one.
    clock: Option<libc::clockid_t>,
    /// The worker's CPU time, in ns, when the watchdog first saw the
    /// current run (only the watchdog uses it).
    base: AtomicU64,
    /// CPU time a run had used, in ns, when the watchdog last looked ...
    run_cpu: AtomicU64,
    /// ... and which run that was (its `runs`): a measure of an earlier
    /// run, stored as the worker moved on, counts for nothing.
    run_of: AtomicU64,
    /// The watchdog looking at it.
    dog: &'static Dog,
}

impl Slot {
    /// A process is about to run (waking the watchdog if it rests).
    pub(crate) fn enter(&self) {
        self.runs.enter(&self.dog.rest);
    }

    /// The CPU time the running process has had, as the watchdog last
    /// measured it (up to a tick old, later if the watchdog itself waits
    /// for a core), plus two ticks for the start of the run it has not
    /// seen; `None` without a CPU clock. A process is ended as stuck on
    /// this, not on wall time alone: on a loaded machine its worker may
    /// wait for a core in the middle of a long host call, and that wait is
    /// not its code.
    pub(crate) fn run_cpu(&self) -> Option<Duration> {
        self.clock?;
        let of = self.run_of.load(Ordering::Acquire);
        let used = self.run_cpu.load(Ordering::Relaxed);
        let used = if of == self.runs.count() { used } else { 0 };
        Some(Duration::from_nanos(used) + 2 * TICK)
    }

    /// `wall`, a run's wall time so far, but no more than [`run_cpu`](Self::run_cpu).
    pub(crate) fn cap(&self, wall: Duration) -> Duration {
        self.run_cpu().map_or(wall, |cpu| wall.min(cpu))
    }

    /// The worker's CPU time now, in ns.
    fn cpu_now(&self) -> Option<u64> {
        let t = clock_now(self.clock?)?;
        Some(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The process gave the worker back.
    pub(crate) fn leave(&self) {
        self.runs.leave();
    }

    /// No more signals: the VM is going away.
    pub(crate) fn retire(&self) {
        *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The time of clock `id` (a CPU-time clock here); `None` if the call
/// fails, as it does for the clock of a thread that has ended.
pub(crate) fn clock_now(id: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; a bad or stale clock id makes
    // the call fail, not misbehave.
    let rc = unsafe { libc::clock_gettime(id, &raw mut ts) };
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec).ok()?;
    (rc == 0).then(|| Duration::new(secs, nanos))
}

/// A watchdog: its slots, whether it rests, and its thread.
pub(crate) struct Dog {
    slots: Mutex<Vec<Weak<Slot>>>,
    /// Wakes the watchdog when a slot is registered (it sleeps while no VM
    /// exists, so a process that dropped its runtimes has no thread ticking).
    registered: Condvar,
    /// Its rest while no process runs.
    rest: Rest,
    /// Its looks at the slots so far (what tests watch).
    looks: AtomicU64,
}

/// The watchdog of every VM of this OS process.
static DOG: Dog = Dog::new(REST_MAX);

impl Dog {
    const fn new(rest_max: Duration) -> Self {
        Dog {
            slots: Mutex::new(Vec::new()),
            registered: Condvar::new(),
            rest: Rest::new(rest_max),
            looks: AtomicU64::new(0),
        }
    }

    /// The live slots, waiting while there are none.
    fn live_slots(&self) -> Vec<Arc<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            slots.retain(|s| s.strong_count() > 0);
            if !slots.is_empty() {
                return slots.iter().filter_map(Weak::upgrade).collect();
            }
            slots = self
                .registered
                .wait(slots)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A slot for a VM on the calling thread, which must be the VM's worker.
    fn register(&'static self) -> Arc<Slot> {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        let mut clock: libc::clockid_t = 0;
        // SAFETY: `me` is this live thread and `clock` a valid out-pointer.
        let has_clock = unsafe { libc::pthread_getcpuclockid(me, &raw mut clock) } == 0;
        let slot = Arc::new(Slot {
            runs: Runs::new(),
            seen: AtomicU64::new(0),
            thread: Mutex::new(Some(me)),
            clock: has_clock.then_some(clock),
            base: AtomicU64::new(0),
            run_cpu: AtomicU64::new(0),
            run_of: AtomicU64::new(0),
            dog: self,
        });
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.retain(|s| s.strong_count() > 0);
        slots.push(Arc::downgrade(&slot));
        self.registered.notify_one();
        slot
    }

    /// Starts the watchdog's thread.
    fn start(&'static self) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("warren-lua-watchdog".into())
            .spawn(move || self.watch())
            .map(drop)
    }

    /// The watchdog thread: signals every slot that has run one process
    /// since the previous tick, and rests while none runs.
    fn watch(&self) {
        self.rest.bind_current();
        let mut idle = Idle::default();
        loop {
            std::thread::sleep(TICK);
            let slots = self.live_slots();
            // Every slot is looked at (no short cut once one runs).
            let mut running = false;
            for slot in &slots {
                running |= look(slot);
            }
            self.looks.fetch_add(1, Ordering::Relaxed);
            // A slot registered since `slots` was read wakes it on its
            // first run.
            if idle.rest_now(running) {
                self.rest.rest(|| slots.iter().any(|s| s.runs.running()));
            }
        }
    }
}

/// A slot for a VM on the calling thread, which must be the VM's worker.
/// Starts the watchdog and installs the signal handler on first use.
pub(crate) fn register() -> std::io::Result<Arc<Slot>> {
    static START: Once = Once::new();
    let mut started = Ok(());
    START.call_once(|| started = install_handler().and_then(|()| DOG.start()));
    started?;
    Ok(DOG.register())
}

fn install_handler() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
    // the handler only reads a thread-local cell and calls lua_sethook,
    // which Lua documents as callable from a signal handler.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&raw mut action.sa_mask);
        if libc::sigaction(SIGNAL, &raw const action, ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

extern "C" fn on_signal(_: libc::c_int) {
    let l = CURRENT.with(Cell::get);
    if !l.is_null() {
        // SAFETY: `l` is the coroutine this thread is running (or has just
        // stopped running; it is still referenced by its resumer's stack):
        // a live lua_State of this thread.
        unsafe { crate::preempt::arm(l) };
    }
}

/// Looks at `slot`: measures the CPU time of the run it is in and, when
/// that run has lasted since the previous look, signals its thread.
/// Whether a process runs there.
fn look(slot: &Slot) -> bool {
    let runs = slot.runs.count();
    let before = slot.seen.swap(runs, Ordering::Relaxed);
    if runs % 2 == 1
        && let Some(cpu) = slot.cpu_now()
    {
        if before == runs {
            let used = cpu.saturating_sub(slot.base.load(Ordering::Relaxed));
            slot.run_cpu.store(used, Ordering::Relaxed);
            slot.run_of.store(runs, Ordering::Release);
        } else {
            slot.base.store(cpu, Ordering::Relaxed);
        }
    }
    if runs % 2 == 1 && before == runs {
        let thread = slot.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = *thread {
            // SAFETY: the thread is alive: its VM retires the slot
            // (under this lock) before the thread can end.
            unsafe { libc::pthread_kill(t, SIGNAL) };
        }
    }
    runs % 2 == 1
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::Dog;

    /// Spins the calling thread for `cpu` of its CPU time.
    fn spin(cpu: Duration) {
        let start = own_cpu();
        while own_cpu() - start < cpu {
            std::hint::black_box(0u64.wrapping_add(1));
        }
    }

    /// Waits (10 s at most) until `done`.
    fn until(done: impl Fn() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "not within 10 s: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_idle_watchdog_rests_and_the_next_run_wakes_it() {
        // A watchdog of its own, whose rests end only when a run wakes it.
        let dog: &'static Dog = Box::leak(Box::new(Dog::new(Duration::from_secs(3600))));
        dog.start().expect("a watchdog thread");
        std::thread::spawn(move || {
            let slot = dog.register();
            until(|| dog.rest.resting(), "the watchdog rests");
            let looks = dog.looks.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(50));
            let later = dog.looks.load(Ordering::Relaxed);
            assert_eq!(
                later,
                looks,
                "it looked {} times while resting",
                later - looks
            );
            // A run that computes: the watchdog wakes and measures it.
            slot.enter();
            spin(Duration::from_millis(150));
            until(
                || slot.run_cpu().expect("a clock") >= Duration::from_millis(140),
                "the watchdog measured the run",
            );
            assert!(!dog.rest.resting(), "it watches the run");
            slot.leave();
            // Idle again: it rests again.
            until(|| dog.rest.resting(), "the watchdog rests again");
            slot.retire();
        })
        .join()
        .expect("the watched thread passes");
    }

    /// The calling thread's CPU time.
    fn own_cpu() -> Duration {
        super::clock_now(libc::CLOCK_THREAD_CPUTIME_ID).expect("a thread CPU clock")
    }

    #[test]
    fn a_run_is_measured_in_the_cpu_its_worker_had_not_in_wall_time() {
        std::thread::spawn(|| {
            let slot = super::register().expect("a slot");
            assert!(
                slot.run_cpu().is_some(),
                "Linux gives every thread a CPU clock"
            );
            slot.enter();
            // The worker blocked (as a descheduled one waits): wall time
            // passes, CPU time does not.
            std::thread::sleep(Duration::from_millis(300));
            let blocked = slot.run_cpu().expect("a clock");
            assert!(
                blocked < Duration::from_millis(100),
                "a blocked run counted {blocked:?}"
            );
            // Then it computes: that counts, once the watchdog has looked.
            spin(Duration::from_millis(150));
            until(
                || slot.run_cpu().expect("a clock") >= Duration::from_millis(140),
                "the watchdog saw the CPU used",
            );
            slot.leave();
            slot.enter();
            assert!(
                slot.run_cpu().expect("a clock") < Duration::from_millis(10),
                "a new run starts from nothing"
            );
            slot.leave();
            slot.retire();
        })
        .join()
        .expect("the measuring thread passes");
    }
}

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

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once, PoisonError, Weak};
use std::time::Duration;

use mlua::ffi::lua_State;

/// How often the watchdog looks at the slots: a process is noticed after
/// running one to two ticks without giving its worker back.
pub(crate) const TICK: Duration = Duration::from_millis(1);

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
    runs: AtomicU64,
    /// `runs` at the watchdog's last look (only the watchdog uses it).
    seen: AtomicU64,
    /// The worker thread, until the VM retires the slot.
    thread: Mutex<Option<libc::pthread_t>>,
}

impl Slot {
    /// A process is about to run.
    pub(crate) fn enter(&self) {
        self.runs.fetch_add(1, Ordering::Relaxed);
    }

    /// The process gave the worker back.
    pub(crate) fn leave(&self) {
        self.runs.fetch_add(1, Ordering::Relaxed);
    }

    /// No more signals: the VM is going away.
    pub(crate) fn retire(&self) {
        *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The slots the watchdog looks at.
static SLOTS: Mutex<Vec<Weak<Slot>>> = Mutex::new(Vec::new());
/// Wakes the watchdog when a slot is registered (it sleeps while no VM
/// exists, so a process that dropped its runtimes has no thread ticking).
static REGISTERED: Condvar = Condvar::new();

/// A slot for a VM on the calling thread, which must be the VM's worker.
/// Starts the watchdog and installs the signal handler on first use.
pub(crate) fn register() -> std::io::Result<Arc<Slot>> {
    static START: Once = Once::new();
    let mut started = Ok(());
    START.call_once(|| started = start());
    started?;
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let slot = Arc::new(Slot {
        runs: AtomicU64::new(0),
        seen: AtomicU64::new(0),
        thread: Mutex::new(Some(me)),
    });
    let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
    slots.retain(|s| s.strong_count() > 0);
    slots.push(Arc::downgrade(&slot));
    REGISTERED.notify_one();
    Ok(slot)
}

fn start() -> std::io::Result<()> {
    install_handler()?;
    std::thread::Builder::new()
        .name("warren-lua-watchdog".into())
        .spawn(watch)?;
    Ok(())
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

/// The watchdog thread: signals every slot that has run one process since
/// the previous tick.
fn watch() {
    loop {
        std::thread::sleep(TICK);
        let slots = {
            let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
            slots.retain(|s| s.strong_count() > 0);
            while slots.is_empty() {
                slots = REGISTERED
                    .wait(slots)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            slots.clone()
        };
        for slot in slots.iter().filter_map(Weak::upgrade) {
            let runs = slot.runs.load(Ordering::Relaxed);
            let before = slot.seen.swap(runs, Ordering::Relaxed);
            if runs % 2 == 1 && before == runs {
                let thread = slot.thread.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(t) = *thread {
                    // SAFETY: the thread is alive: its VM retires the slot
                    // (under this lock) before the thread can end.
                    unsafe { libc::pthread_kill(t, SIGNAL) };
                }
            }
        }
    }
}

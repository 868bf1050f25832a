//! Preemption of Lua processes that run without blocking.
//!
//! No hook is set while a process runs within its slice. When one has run
//! a whole watchdog tick (see [`crate::watchdog`]), the watchdog arms a
//! count hook on the coroutine it is running; at the next instruction the
//! hook looks at how long the process has run. Within its slice, the hook
//! removes itself. Past it, the hook yields the coroutine with no values
//! and records that it did (see [`crate::resume`]), so that the kernel
//! can tell this yield from a user's own `coroutine.yield()` and requeue
//! the process behind the others.
//!
//! The hook never yields while kernel code is on the process's stack (it
//! would leave the kernel's tables half-updated while other processes run),
//! nor where Lua cannot yield (code called from C): it stays armed and
//! looks again every [`RETRY_INSTRUCTIONS`] instructions and, where only
//! kernel code is in the way, after each return (see `retry`). A long C
//! library call that finds the process past its slice (`poll`) has the
//! hook look at the first instruction after it returns. The bottom frames
//! of every process coroutine (`proc_main`, `proc_main_packed`,
//! `trampoline`, `last_words_main`; a `coroutine.spawn`ed one with few
//! arguments starts in the process's own function) and the kernel's
//! helpers that hold no kernel state (`TRANSPARENT`) are the only kernel
//! frames allowed below a preemption point (a process's `pcall` and
//! `xpcall` are C, `machine/protect.rs`, and hold none either). The hook
//! also ends a process past its `cpu_budget`, or stuck past
//! [`STUCK_LIMIT`] where it cannot be preempted, by raising an error it
//! cannot catch: only where no kernel code would be unwound half-way (the
//! same frames as a preemption point, whether or not Lua could yield
//! there), or once kernel code has run [`KERNEL_GRACE`] past the stuck
//! limit.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, c_int, c_void};
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mlua::ffi::{self, lua_Debug, lua_State};
use mlua::{Lua, Table};

use crate::quota::Accounts;
use crate::watchdog::{self, Slot};

/// VM instructions between two looks of an armed hook that could not
/// preempt yet: small enough that a loop is caught within about a tenth of
/// a millisecond, large enough that the looks cost little.
pub const RETRY_INSTRUCTIONS: c_int = 10_000;

/// The kernel chunk's name, as given to `Lua::load`.
pub(crate) const KERNEL_CHUNK: &str = "=warren-kernel";

/// Lines on which the kernel defines the functions that start with one of
/// `prefixes`, found in its source.
fn lines_of(kernel: &str, prefixes: &[&str]) -> Vec<usize> {
    kernel
        .lines()
        .enumerate()
        .filter(|(_, l)| prefixes.iter().any(|p| l.starts_with(p)))
        .map(|(i, _)| i + 1)
        .collect()
}

/// Kernel frames a preemption may happen above.
struct Allowed {
    /// The bottom frames of process coroutines.
    bottoms: Vec<usize>,
    /// Frames that hold no kernel state: the helpers that run a process's
    /// own metamethods on its behalf (`user_text` and its callers).
    transparent: Vec<usize>,
    /// Frames an error may unwind though they may not be suspended (see
    /// [`UNWINDABLE`]).
    unwindable: Vec<usize>,
}

/// The bottom frames of process coroutines, by how their definitions start.
const BOTTOMS: [&str; 4] = [
    "local function proc_main(",
    "local function proc_main_packed(",
    "local function trampoline(",
    "local function last_words_main(",
];

impl Allowed {
    fn new(kernel: &str) -> Self {
        Allowed {
            bottoms: lines_of(kernel, &BOTTOMS),
            transparent: lines_of(kernel, &TRANSPARENT),
            unwindable: lines_of(kernel, &UNWINDABLE),
        }
    }
}

/// Frames that hold no kernel state, by how their definitions start.
const TRANSPARENT: [&str; 16] = [
    "local function user_text(",
    "local function lprint(",
    "local function user_tostring(",
    "function errors.new(",
    "function errors.wrap(",
    "local function require_module(",
    "function require_in(",
    "local function load_library(",
    "    return function(name) return require_in(",
    "local function texts(",
    "function io_mod.write(",
    "function io_mod.print(",
    "function io_mod.eprint(",
    "local function merge(",
    "local function field_text(",
    "local function emit(",
];

/// Kernel functions that change no kernel table half-way between the calls
/// they make, but loop over what the process handed them (a builder's
/// message list, whose length may lie) or call into C that runs its code (a
/// `load` reader): the error that ends a stuck process may unwind them.
/// They are no preemption points (other processes would see the process
/// half-way through a spawn).
const UNWINDABLE: [&str; 3] = [
    "local function safe_load(",
    "function SpawnerMethods:with_message(",
    "local function spawn_with(",
];

/// Frames looked at from the top of the stack: looking at frame `n` costs
/// `n` steps, so a deep recursion would make every check quadratic. Kernel
/// functions mutate shared state only near the top of a stack (they call
/// user code, through metamethods, before they change anything), so a
/// stack of user frames this deep is treated as user code.
const MAX_FRAMES_CHECKED: c_int = 64;

/// Whether yielding `l` (or, `raising`, raising an error in it) leaves no
/// kernel code suspended (unwound) mid-way: every frame up to the
/// coroutine's bottom is user code or a kernel frame allowed there.
///
/// # Safety
///
/// `l` is the running thread, inside a hook or a C loop's poll.
unsafe fn safe_point(l: *mut lua_State, allowed: &Allowed, raising: bool) -> bool {
    // SAFETY: a zeroed lua_Debug is what lua_getstack fills in.
    let mut ar: lua_Debug = unsafe { std::mem::zeroed() };
    for level in 0..MAX_FRAMES_CHECKED {
        // SAFETY: `l` is live and `ar` is ours; "S" fills `source` with a
        // string the function's prototype keeps alive while it runs.
        let source = unsafe {
            if ffi::lua_getstack(l, level, &raw mut ar) == 0 {
                return true;
            }
            ffi::lua_getinfo(l, c"S".as_ptr(), &raw mut ar);
            if ar.source.is_null() {
                continue;
            }
            CStr::from_ptr(ar.source)
        };
        if source.to_bytes() != KERNEL_CHUNK.as_bytes() {
            continue; // user code, or a C function
        }
        let line = usize::try_from(ar.linedefined).unwrap_or(0);
        if allowed.bottoms.contains(&line) {
            return true;
        }
        let unwound = raising && allowed.unwindable.contains(&line);
        if !unwound && !allowed.transparent.contains(&line) {
            return false;
        }
    }
    true
}

/// How long a process may run past its slice where it cannot be preempted
/// (inside code called from C) before it is ended: at least this, or this
/// many slices.
pub const STUCK_LIMIT: Duration = Duration::from_millis(250);
const STUCK_SLICES: u32 = 50;

/// A VM's preemption state, which the hook finds through the registry.
struct State {
    allowed: Allowed,
    slice: Duration,
    stuck_limit: Duration,
    accounts: Rc<RefCell<Accounts>>,
    slot: Arc<Slot>,
}

/// What the hook does.
enum Action {
    /// Within its slice (or no process runs): remove the hook.
    Disarm,
    /// Past its slice where it cannot yield: look again soon.
    Retry,
    /// Yield the coroutine.
    Yield,
    /// End the process with this (uncatchable) error.
    Fail(String),
}

impl State {
    /// # Safety
    ///
    /// `l` is the running thread, inside a hook.
    unsafe fn decide(&self, l: *mut lua_State) -> Action {
        let Ok(mut accounts) = self.accounts.try_borrow_mut() else {
            return Action::Retry;
        };
        let Some(ran) = accounts.ran(Instant::now()) else {
            return Action::Disarm;
        };
        if let Some(reason) = accounts.check_running(self.slot.cap(ran), self.stuck_limit) {
            // SAFETY: as this function's.
            return unsafe { fail_when_safe(l, &self.allowed, ran, self.stuck_limit, reason) };
        }
        if ran < self.slice {
            return Action::Disarm;
        }
        // SAFETY: as this function's.
        let can_yield =
            unsafe { ffi::lua_isyieldable(l) != 0 && safe_point(l, &self.allowed, false) };
        if can_yield {
            Action::Yield
        } else {
            Action::Retry
        }
    }
}

/// How long past the stuck limit kernel code on a doomed process's stack
/// may run before the process is ended anyway. The kernel's own steps take
/// microseconds (a payload copy, bounded by `max_message_bytes`, at most
/// milliseconds); this only ends a kernel step that would never finish.
pub const KERNEL_GRACE: Duration = Duration::from_millis(250);

/// `Fail(reason)` where raising unwinds no kernel code (see
/// [`safe_point`]); elsewhere `Retry`, so the error is raised once the
/// kernel code has returned to the process's own (the process is doomed
/// meanwhile: if that kernel code blocks instead, the leave after its
/// resume ends it).
/// Raising inside kernel code would leave its shared tables half updated
/// (a run-queue slot counted but empty) for every other process of the
/// VM. Kernel code still running [`KERNEL_GRACE`] past the stuck limit is
/// ended where it is.
///
/// # Safety
///
/// `l` is the running thread, inside a hook or a C loop's poll.
unsafe fn fail_when_safe(
    l: *mut lua_State,
    allowed: &Allowed,
    ran: Duration,
    stuck_limit: Duration,
    reason: String,
) -> Action {
    // SAFETY: as this function's.
    if ran > stuck_limit + KERNEL_GRACE || unsafe { safe_point(l, allowed, true) } {
        Action::Fail(reason)
    } else {
        Action::Retry
    }
}

thread_local! {
    /// When the running validation first asked its budget (`None` until
    /// it does): see [`budget_check`].
    static VALIDATION_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// A type validation begins (its first budget poll starts its clock).
pub(crate) fn validation_begins() {
    VALIDATION_SINCE.set(None);
}

/// What a long host walk (type validation) asks now and then: the reason
/// it must stop, if any.
///
/// - Past its CPU budget, or past the stuck limit, the process must end:
///   the reason is recorded, so its error cannot be caught.
/// - Once the walk has itself run a `cpu_slice` (from its first poll) and
///   its process is past its slice, the walk stops (`validation stopped:
///   cpu budget exceeded`, typed-lua.md §3.5), an error the process may
///   catch, and the hook the watchdog armed preempts it at its next
///   instruction. A validation cannot be suspended half-way as Lua code
///   can, and one check of a union that doubles its work at every level
///   held the worker (and every neighbour on it) until the stuck limit,
///   250 ms. The walk's own slice keeps a short check that starts just
///   as its process's slice ends (before the hook has preempted it) from
///   failing for time that was not its own.
pub(crate) fn budget_check(
    accounts: Rc<RefCell<Accounts>>,
    slice: Duration,
    slot: Arc<Slot>,
) -> Rc<dyn Fn() -> Option<String>> {
    let stuck_limit = STUCK_LIMIT.max(slice * STUCK_SLICES);
    Rc::new(move || {
        let mut accounts = accounts.try_borrow_mut().ok()?;
        let now = Instant::now();
        let ran = slot.cap(accounts.ran(now)?);
        if let Some(reason) = accounts.check_running(ran, stuck_limit) {
            return Some(reason);
        }
        let since = VALIDATION_SINCE.get().unwrap_or_else(|| {
            VALIDATION_SINCE.set(Some(now));
            now
        });
        let own = now.saturating_duration_since(since);
        (ran >= slice && own >= slice).then(|| "cpu budget exceeded".to_owned())
    })
}

/// Longest reason the hook raises (longer ones are cut).
const MAX_REASON: usize = 512;

/// Its address is the registry key of the VM's [`State`].
static KEY: u8 = 0;

fn key() -> *const c_void {
    ptr::from_ref(&KEY).cast()
}

/// Arms the hook on `l`, to fire within its next [`ARM_SPREAD`]
/// instructions (see [`arm_count`]).
///
/// # Safety
///
/// `l` is a live thread of this OS thread (the caller may be a signal
/// handler interrupting it).
pub(crate) unsafe fn arm(l: *mut lua_State) {
    // SAFETY: as this function's; lua_sethook may be called from a signal
    // (`arm_count` is one atomic add), and the reads only read fields.
    unsafe {
        if !counting_down(l) {
            ffi::lua_sethook(l, Some(hook), ffi::LUA_MASKCOUNT, arm_count());
        }
    }
}

/// Called by a host function after its work (hashing, encoding, key
/// derivation: milliseconds each on large inputs): when the watchdog has
/// armed the hook of the calling coroutine during the call, the hook looks
/// at the very next instruction, which is the caller's. A loop over such
/// calls runs a few instructions between two of them, fewer than an armed
/// count (up to [`ARM_SPREAD`]) would let pass: at 34 ms a call it was
/// ended as stuck before its count ran out. Within its slice the look
/// disarms the hook, as any other.
pub(crate) fn after_host_call() {
    let l = watchdog::CURRENT.with(Cell::get);
    if l.is_null() {
        return;
    }
    // SAFETY: `l` is the coroutine this thread is running (the caller of
    // this host function), live while it runs.
    unsafe {
        if ffi::lua_gethookmask(l) & ffi::LUA_MASKCOUNT != 0 && is_ours(l) {
            ffi::lua_sethook(l, Some(hook), ffi::LUA_MASKCOUNT, 1);
        }
    }
}

/// Whether `l`'s hook is this module's.
///
/// # Safety
///
/// `l` is a live thread of this OS thread.
unsafe fn is_ours(l: *mut lua_State) -> bool {
    let ours: unsafe extern "C-unwind" fn(*mut lua_State, *mut lua_Debug) = hook;
    // SAFETY: as this function's (a read of one field).
    unsafe { ffi::lua_gethook(l) }.is_some_and(|h| std::ptr::fn_addr_eq(h, ours))
}

/// Whether `l`'s hook is already set to look within [`ARM_SPREAD`]
/// instructions. Arming again would start the count over: a loop that
/// spends its time in host calls (`hash.sha512` of 16 MiB, 34 ms) runs a
/// few instructions between two calls, each call is long enough for a
/// watchdog tick to re-arm it, and a count started over at every call
/// reached zero only when the last arming happened to pick a count below
/// those few instructions: the process was seen at no preemption point
/// and ended as stuck, having held its worker for 250 ms.
///
/// # Safety
///
/// `l` is a live thread of this OS thread (the caller may be a signal
/// handler interrupting it: these are plain reads of its fields).
unsafe fn counting_down(l: *mut lua_State) -> bool {
    // SAFETY: as this function's.
    unsafe {
        ffi::lua_gethookmask(l) & ffi::LUA_MASKCOUNT != 0
            && is_ours(l)
            && u32::try_from(ffi::lua_gethookcount(l)).is_ok_and(|n| n <= ARM_SPREAD)
    }
}

/// The instructions within which an armed hook looks, spread over 1 to
/// this many from one arming to the next. The watchdog's signal mostly
/// lands where the process spends its time: in a long C or host call. A
/// hook armed to fire at the very next instruction then always fired
/// right after that call returned, which, for a call wrapped by kernel
/// Lua (`load`, `json.encode`), is inside the wrapper, where the process
/// cannot be preempted; the next look came 10,000 instructions later,
/// hundreds of calls on, and a plain loop over such calls was ended as
/// stuck after 250 ms. Spread, a look lands in the process's own code
/// (a preemption point) about as often as that code runs.
const ARM_SPREAD: u32 = 61;

/// The count for the next arming: 1 to [`ARM_SPREAD`], stepping by a
/// number prime to it so that every count comes round.
fn arm_count() -> c_int {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(23, Ordering::Relaxed) % ARM_SPREAD;
    c_int::try_from(n + 1).unwrap_or(1)
}

/// What to do with the running thread `l`, as the VM's [`State`] (found
/// through the registry) decides.
///
/// # Safety
///
/// `l` is the running thread, inside the hook or a C loop's poll, with room
/// for one value on its stack.
unsafe fn action_for(l: *mut lua_State) -> Action {
    // SAFETY: the registry value is the State that `install` stored and the
    // VM's `Preemption` keeps alive as long as the VM.
    unsafe {
        ffi::lua_rawgetp(l, ffi::LUA_REGISTRYINDEX, key());
        let state = ffi::lua_touserdata(l, -1).cast::<State>();
        ffi::lua_pop(l, 1);
        match state.as_ref() {
            Some(state) => state.decide(l),
            None => Action::Disarm,
        }
    }
}

unsafe extern "C-unwind" fn hook(l: *mut lua_State, ar: *mut lua_Debug) {
    // SAFETY: Lua calls the hook on the running thread `l`, with room on
    // its stack and `ar` describing the event; the registry value is the
    // State that `install` stored and the VM's `Preemption` keeps alive as
    // long as the VM. Nothing on this frame needs dropping when lua_error
    // raises.
    unsafe {
        if (*ar).event == ffi::LUA_HOOKRET {
            // A return hook cannot yield: look at the caller's next
            // instruction instead (see `retry`), unless that caller is
            // kernel code, where the look would find kernel code again.
            if !returns_into_kernel(l) {
                ffi::lua_sethook(l, Some(hook), ffi::LUA_MASKCOUNT | ffi::LUA_MASKRET, 1);
            }
            return;
        }
        match action_for(l) {
            Action::Disarm => ffi::lua_sethook(l, None, 0, 0),
            Action::Retry => retry(l),
            Action::Yield => {
                ffi::lua_sethook(l, None, 0, 0);
                crate::resume::preempting(l);
                // Inside a hook, lua_yield returns; the yield happens when
                // the hook does.
                ffi::lua_yield(l, 0);
            }
            Action::Fail(reason) => {
                ffi::lua_sethook(l, Some(hook), ffi::LUA_MASKCOUNT, RETRY_INSTRUCTIONS);
                raise(l, reason);
            }
        }
    }
}

/// Whether the function returning (in a return hook) returns into kernel
/// code. Inside the kernel's own loops (a payload copy of 100,000 values
/// after its process's slice ran out: four calls a value, `type` and the
/// like) a look at every return read the clock and walked the stack each
/// time, which made the copy some 50 times slower (330 ms instead of 6),
/// and the sender was ended as stuck for a valid send; such returns are
/// passed over, and the one out of the kernel is looked after.
///
/// # Safety
///
/// `l` is the running thread, inside a return hook.
unsafe fn returns_into_kernel(l: *mut lua_State) -> bool {
    // SAFETY: a zeroed lua_Debug is what lua_getstack fills in; "S" fills
    // `source` with a string the caller's prototype keeps alive.
    unsafe {
        let mut ar: lua_Debug = std::mem::zeroed();
        if ffi::lua_getstack(l, 1, &raw mut ar) == 0 {
            return false;
        }
        ffi::lua_getinfo(l, c"S".as_ptr(), &raw mut ar);
        !ar.source.is_null() && CStr::from_ptr(ar.source).to_bytes() == KERNEL_CHUNK.as_bytes()
    }
}

/// Keeps the hook armed where the process could not be preempted: looks
/// again after [`RETRY_INSTRUCTIONS`], and, where Lua could yield but
/// kernel code is on the stack (a wrapper such as `json.encode`'s, right
/// after its C call returned), also at the instruction after each return,
/// so that the look after the wrapper returns lands in the process's own
/// code. Without the return look, a loop over such calls ran a few
/// instructions per call and was looked at once per 10,000 of them:
/// seconds, and the process was ended as stuck. Where Lua cannot yield at
/// all (a `table.sort` comparator) only the count is kept: a return look
/// per comparator call would slow a legitimate sort for nothing.
///
/// # Safety
///
/// `l` is the running thread, inside the hook.
unsafe fn retry(l: *mut lua_State) {
    // SAFETY: as this function's.
    unsafe {
        let mask = if ffi::lua_isyieldable(l) != 0 {
            ffi::LUA_MASKCOUNT | ffi::LUA_MASKRET
        } else {
            ffi::LUA_MASKCOUNT
        };
        ffi::lua_sethook(l, Some(hook), mask, RETRY_INSTRUCTIONS);
    }
}

unsafe extern "C" {
    /// Installs the function the patched Lua library loops call while a
    /// count hook is armed (`vendor/lua-src`, `lwarren.h`).
    fn warren_set_poll(f: Option<unsafe extern "C-unwind" fn(*mut lua_State)>);
}

unsafe extern "C-unwind" {
    /// Throws the value on top of `l` as a run-time error without calling
    /// any message handler (`lwarren.h`).
    fn warren_fatalerror(l: *mut lua_State) -> !;
}

thread_local! {
    /// Until when this thread's C loops skip their polls, and how many more
    /// they skip before the clock is read again: set by a poll that found
    /// the process past its slice, where a C loop cannot yield.
    static QUIET: Cell<(u32, Option<Instant>)> = const { Cell::new((0, None)) };
}

/// Polls skipped between two reads of the clock while [`QUIET`] holds: a
/// lexer polls at every token, a clock read costs as much as a few tokens.
const QUIET_SKIPS: u32 = 16;

/// Whether this poll is skipped (see [`QUIET`]).
fn quiet() -> bool {
    let (skips, until) = QUIET.get();
    let Some(until) = until else {
        return false;
    };
    if skips > 0 {
        QUIET.set((skips - 1, Some(until)));
        return true;
    }
    if Instant::now() < until {
        QUIET.set((QUIET_SKIPS, Some(until)));
        return true;
    }
    QUIET.set((0, None));
    false
}

/// Called from inside long-running C library loops (`string.rep`, pattern
/// matching, `table.move`, `os.date`, the parser, ...) while the watchdog
/// has armed the hook: such a loop runs no Lua instruction, so the hook
/// itself would never fire there. Past the stuck limit or the CPU budget
/// it raises the same uncatchable error as the hook, ending the process.
/// Within its slice it disarms the hook. Past the slice a C loop cannot
/// yield: the hook stays armed for the Lua code after the loop (where it
/// can), and the loop's further polls are skipped for a watchdog tick, so
/// that the loops that poll at every step (the lexer, a plain find, sort)
/// pay a counter (and a clock read every [`QUIET_SKIPS`]), not a decision. (It disarmed the hook there: a loop
/// spending its time in such calls was never seen at a preemption point,
/// and was ended as stuck after 250 ms.)
///
/// # Safety
///
/// Called by the patched Lua on the running thread `l`, outside any hook.
unsafe extern "C-unwind" fn poll(l: *mut lua_State) {
    if quiet() {
        return;
    }
    // SAFETY: as in `hook`: the registry holds the State for the VM's
    // life; nothing on this frame needs dropping when lua_error raises.
    unsafe {
        match action_for(l) {
            Action::Disarm => ffi::lua_sethook(l, None, 0, 0),
            Action::Retry | Action::Yield => {
                QUIET.set((QUIET_SKIPS, Some(Instant::now() + watchdog::TICK)));
                // Look at the first instruction after the C function
                // returns: the caller's, a preemption point unless kernel
                // code wraps the call (then `retry` follows the returns).
                ffi::lua_sethook(l, Some(hook), ffi::LUA_MASKCOUNT, 1);
            }
            Action::Fail(reason) => raise(l, reason),
        }
    }
}

/// Raises `reason` as the process's (uncatchable) error, running no
/// message handler: raised from the hook, Lua would run an enclosing
/// `xpcall`'s handler with hooks off, and a handler that loops would hold
/// the worker for good (`warren_fatalerror`). The `pcall` or `xpcall` the
/// error reaches raises it again (`machine/protect.rs`), up to the
/// process's bottom.
///
/// # Safety
///
/// `l` is the running thread, with room for one value.
unsafe fn raise(l: *mut lua_State, reason: String) -> ! {
    // Copied to this frame and freed first: pushing the string may itself
    // raise (out of memory), which skips drops.
    let mut message = [0u8; MAX_REASON];
    let n = reason.len().min(MAX_REASON);
    message[..n].copy_from_slice(&reason.as_bytes()[..n]);
    drop(reason);
    // SAFETY: as this function's; a C function may have used the slots Lua
    // guaranteed it, so room for the message is made first.
    unsafe {
        ffi::lua_checkstack(l, 2);
        ffi::lua_pushlstring(l, message.as_ptr().cast(), n);
        warren_fatalerror(l)
    }
}

/// Keeps a VM's preemption state alive and its watchdog slot registered;
/// drop it after the VM.
pub(crate) struct Preemption {
    _state: Box<State>,
    slot: Arc<Slot>,
}

impl Preemption {
    /// The VM's watchdog slot, which the kernel's step (and `H.leave`) bump.
    pub(crate) fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl Drop for Preemption {
    fn drop(&mut self) {
        self.slot.retire();
    }
}

/// Sets up preemption for `lua` (on its worker thread): registers the
/// watchdog slot, stores the hook's state, and adds `H.resume`, `H.close`,
/// `H.preempted_marker` and `H.doomed` to the kernel's host table `h`.
pub(crate) fn install(
    lua: &Lua,
    h: &Table,
    kernel: &str,
    slice: Duration,
    accounts: Rc<RefCell<Accounts>>,
) -> mlua::Result<Preemption> {
    let slot = watchdog::register()
        .map_err(|e| mlua::Error::runtime(format!("cannot start the Lua watchdog: {e}")))?;
    let state = Box::new(State {
        allowed: Allowed::new(kernel),
        slice,
        stuck_limit: STUCK_LIMIT.max(slice * STUCK_SLICES),
        accounts: accounts.clone(),
        slot: slot.clone(),
    });
    let raw = ptr::from_ref::<State>(&state).cast_mut().cast::<c_void>();
    // SAFETY: stores a light userdata in the registry; the pointee outlives
    // the VM (see `Preemption`).
    unsafe {
        lua.exec_raw::<()>((), |l| {
            ffi::lua_pushlightuserdata(l, raw);
            ffi::lua_rawsetp(l, ffi::LUA_REGISTRYINDEX, key());
        })?;
    }
    // SAFETY: `poll` follows the C API's calling rules; setting it again
    // for every VM stores the same function.
    unsafe { warren_set_poll(Some(poll)) };
    // SAFETY: `resume` is a C function following the Lua C API.
    let resume = unsafe { lua.create_c_function(crate::resume::resume)? };
    h.set("resume", resume)?;
    // SAFETY: as `resume`.
    let close = unsafe { lua.create_c_function(crate::resume::close)? };
    h.set("close", close)?;
    h.set("preempted_marker", crate::resume::marker())?;
    let doomed = lua.create_function(move |_, ()| Ok(accounts.borrow().doomed()))?;
    h.set("doomed", doomed)?;
    Ok(Preemption {
        _state: state,
        slot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_kernel_frame_is_defined_exactly_once() {
        let kernel = crate::kernel::SOURCE;
        for prefix in BOTTOMS.iter().chain(&TRANSPARENT).chain(&UNWINDABLE) {
            let found = lines_of(kernel, &[prefix]);
            assert_eq!(
                found.len(),
                1,
                "{prefix:?} starts {} kernel lines",
                found.len()
            );
        }
    }

    /// A stand-in kernel: a bottom frame, a frame that holds kernel state
    /// (`wake`) and an unwindable one (`safe_load`), each calling its
    /// argument without a tail call (which would drop its own frame).
    const FAKE_KERNEL: &str = "local function proc_main(f) local r = f() return r end
local function wake(f) local r = f() return r end
local function safe_load(f) local r = f() return r end
return proc_main, wake, safe_load
";

    thread_local! {
        static PROBED: RefCell<Vec<(bool, bool)>> = const { RefCell::new(Vec::new()) };
    }

    /// Records `safe_point` of its caller's stack, yielding and raising.
    unsafe extern "C-unwind" fn probe(l: *mut lua_State) -> c_int {
        let allowed = Allowed::new(FAKE_KERNEL);
        // SAFETY: `l` is the running thread, inside a C function.
        let got = unsafe {
            (
                safe_point(l, &allowed, false),
                safe_point(l, &allowed, true),
            )
        };
        PROBED.with(|p| p.borrow_mut().push(got));
        0
    }

    #[test]
    fn an_error_may_unwind_only_what_holds_no_kernel_state() {
        let lua = Lua::new();
        let (bottom, wake, load): (mlua::Function, mlua::Function, mlua::Function) = lua
            .load(FAKE_KERNEL)
            .set_name(KERNEL_CHUNK)
            .eval()
            .expect("the fake kernel loads");
        // SAFETY: `probe` follows the C API's calling rules.
        let probe = unsafe { lua.create_c_function(probe) }.expect("probe");
        PROBED.with(|p| p.borrow_mut().clear());
        // User code right above the bottom: may yield and raise.
        let direct = lua
            .load("local bottom, probe = ... return bottom(function() local r = probe() return r end)")
            .set_name("=user");
        direct
            .call::<()>((bottom.clone(), probe.clone()))
            .expect("runs");
        // Kernel state below the user code: neither.
        let through_wake = lua
            .load("local bottom, wake, probe = ... return bottom(function() local r = wake(probe) return r end)")
            .set_name("=user");
        through_wake
            .call::<()>((bottom.clone(), wake, probe.clone()))
            .expect("runs");
        // An unwindable kernel frame: may raise, not yield.
        let through_load = lua
            .load("local bottom, load, probe = ... return bottom(function() local r = load(probe) return r end)")
            .set_name("=user");
        through_load
            .call::<()>((bottom, load, probe))
            .expect("runs");
        let got = PROBED.with(|p| p.borrow().clone());
        assert_eq!(got, [(true, true), (false, false), (false, true)]);
    }
}

//! The kernel's resume of a process: the accounting before, the resume
//! and the accounting after, in one call ([`step_at`], which the machine's
//! `resume_next` makes; see [`crate::machine`]).
//!
//! The step of `th, p, id, a, b[, c]` does what `H.enter(id)`, the kernel's
//! [`crate::resume::resume`] of `th` with `a, b` (and `c` when it is not
//! nil) and `H.leave(id, false)` did as three calls. Messages the
//! process takes are counted to the core as they are taken
//! ([`Stepper::consumed`]), not summed for the step's end. It answers (on
//! the stack, in place of its arguments):
//!
//! - `true, verdict, r1, r2, r3`: the coroutine yielded or returned; its
//!   first three results (the preemption marker for a preemption), and the
//!   verdict of the accounting: `nil` (fine), `true` (measure the
//!   process), `false` (end it: `H.verdict()` gives the kind and reason);
//! - `false, err`: the coroutine raised. The accounting after is then
//!   left to the kernel (`H.leave`), which alone can tell a memory error
//!   of the host's from the process's own error value.
//!
//! **One account for consecutive steps of one process.** When a coroutine
//! waits (its caller's `keep` says so), the step leaves the account open:
//! if the next wake-up is another coroutine of the same process, its step
//! runs in it, with no leave and enter between (a channel ping-pong
//! between two coroutines of a process made both at every hop: about
//! 600 instructions each); anything else closes it first
//! ([`Stepper::close_open`], whose verdict the caller hands to the
//! kernel). The span is then one run for everything that watches a run:
//! its slice and preemption, the stuck-code guard, `cpu_budget`, the
//! memory ceiling (set at its start, for the whole span's growth). Between
//! two of its steps only the caller's C code runs, which allocates
//! nothing but the next coroutine's stack slots for its values (the
//! process's own memory, under its ceiling; a failure closes the span
//! first).
//!
//! Guarantees: the memory ceiling is set only around the resume itself or
//! a span of resumes of one process (nothing here allocates in the VM
//! while it is set); nothing here runs a metamethod; between the enter
//! and the leave no Rust value with a destructor is alive across a call
//! that may raise.

use std::cell::RefCell;
use std::ffi::c_int;
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;

use crate::machine::fast;
use mlua::Lua;
use mlua::ffi::{self, lua_State};
use warren_core::{CoreRef, ErrorKind};

use crate::quota::{Accounts, Verdict};
use crate::watchdog::Slot;

/// Senders whose pid texts a VM keeps, one slot each by serial number
/// (`machine/inbox.rs`): a process that hears from many others on other
/// workers (Savina's Big: 200) made and interned each sender's text for
/// each message, a tenth of the message's cost on its receiving worker.
pub(crate) const FROM_CACHE: usize = 256;

/// What `step` reaches of its VM. Owned by the VM's [`crate::host::LuaVm`],
/// declared after the VM so it outlives every call.
pub(crate) struct Stepper {
    accounts: Rc<RefCell<Accounts>>,
    slot: Arc<Slot>,
    core: CoreRef,
    /// The reason of the last `false` verdict, until `H.verdict()`.
    kill: RefCell<Option<(ErrorKind, String)>>,
    /// The host's `max_message_bytes` (a VM serves one host).
    max_message_bytes: i64,
    /// This VM's front-end index in its worker (its ready queue).
    index: usize,
    /// The VM's `Lua`, as `Lua::get_or_init_from_ptr` finds it (in the
    /// state's extra data, which lives as long as the state): looked up
    /// once instead of at every resume.
    lua: std::cell::Cell<*const Lua>,
    /// The process whose account a step left open for the next step,
    /// which resumes another coroutine of the same process (see
    /// [`step_at`]'s `keep`).
    open: std::cell::Cell<Option<i64>>,
    /// The pids whose texts are in the machine's `Late::LastFrom` table,
    /// by slot (see `machine/inbox.rs`); each set only after its slot is.
    from_cache: [std::cell::Cell<Option<warren_core::Pid>>; FROM_CACHE],
    /// Resumptions since the last exchange with the other workers.
    resumed: std::cell::Cell<i64>,
    /// Messages taken (by process id) while the core was borrowed, which
    /// no call holds across the VM's: reported when a step ends.
    unreported: RefCell<Vec<(i64, u32)>>,
    /// The process a same-VM message is being delivered to, from its
    /// admission to its mailbox until it lands (0: none): a delivery that
    /// raised part-way (a memory error) leaves it set, and the kernel then
    /// reports that message as taken, so the core's count stays true (see
    /// `machine/send.rs`, the kernel's `finish_one`). A field here, where
    /// it was the kernel's `SEND.owed`, written twice per message.
    owed: std::cell::Cell<i64>,
}

/// Resumptions between two exchanges with the other workers inside a
/// slice (see [`Stepper::after_batch`]): what a message, a spawn or a
/// kill from another worker, or a host call's result, waits behind on a
/// busy worker instead of the whole slice (256 resumptions); a batch of
/// long ones (a sender's window each) reaches it at once. Looking after
/// every batch of one or two (a ping-pong) cost 4 % of a round trip in
/// wall time.
const EXCHANGE_EVERY: i64 = 8;

impl Stepper {
    pub(crate) fn new(
        accounts: Rc<RefCell<Accounts>>,
        slot: Arc<Slot>,
        core: CoreRef,
        index: usize,
    ) -> Self {
        let max = core.borrow().quota().limits.max_message_bytes;
        Stepper {
            accounts,
            slot,
            core,
            kill: RefCell::new(None),
            max_message_bytes: i64::try_from(max).unwrap_or(i64::MAX),
            index,
            lua: std::cell::Cell::new(ptr::null()),
            open: std::cell::Cell::new(None),
            owed: std::cell::Cell::new(0),
            from_cache: std::array::from_fn(|_| std::cell::Cell::new(None)),
            resumed: std::cell::Cell::new(0),
            unreported: RefCell::new(Vec::new()),
        }
    }

    /// Counts `n` messages the machine took out of process `id`'s
    /// mailbox, which frees their places under its `mailbox_limit` at once
    /// (the kernel's Lua reports its own takes with `H.consumed`); kept
    /// for the end of the step if the core is borrowed.
    pub(crate) fn consumed(&self, id: i64, n: u32) {
        match self.core.try_borrow_mut() {
            Ok(mut core) => core.consumed(crate::host::pid_of(id), n),
            Err(_) => {
                if let Ok(mut list) = self.unreported.try_borrow_mut() {
                    list.push((id, n));
                }
            }
        }
    }

    /// Reports what [`consumed`](Self::consumed) had to keep.
    fn report_taken(&self) {
        let Ok(mut list) = self.unreported.try_borrow_mut() else {
            return;
        };
        if list.is_empty() {
            return;
        }
        if let Ok(mut core) = self.core.try_borrow_mut() {
            for (id, n) in list.drain(..) {
                core.consumed(crate::host::pid_of(id), n);
            }
        }
    }

    /// The VM's core.
    pub(crate) fn core(&self) -> &CoreRef {
        &self.core
    }

    /// The meter process `id`'s SQL statements are charged to (see
    /// [`Accounts::engine_meter`]).
    pub(crate) fn engine_meter(
        &self,
        id: i64,
    ) -> Result<Option<Arc<warren_sql::EngineMeter>>, warren_core::ProcError> {
        crate::quota::metered(&self.accounts, id)
    }

    /// The host's `max_message_bytes`, as the kernel counts sizes.
    pub(crate) fn max_message_bytes(&self) -> i64 {
        self.max_message_bytes
    }

    /// Whether the host may have items for this VM (`H.next` would answer
    /// one): false only when its ready queue is empty.
    pub(crate) fn has_items(&self) -> bool {
        self.core
            .try_borrow()
            .map_or(true, |core| core.has_ready(self.index))
    }

    /// Counts `n` more resumptions toward the next exchange with the
    /// other workers (see [`Stepper::after_batch`]).
    pub(crate) fn count_resumed(&self, n: i64) {
        self.resumed.set(self.resumed.get().saturating_add(n));
    }

    /// After a batch of `n` resumptions: once [`EXCHANGE_EVERY`] have run
    /// since the last exchange, hands what this worker queued for idle
    /// workers over and takes in what was sent here
    /// ([`warren_core::Core::between_batches`]); nothing while the core
    /// is borrowed.
    /// Whether it made that exchange.
    pub(crate) fn after_batch(&self, n: i64) -> bool {
        let resumed = self.resumed.get().saturating_add(n);
        if resumed < EXCHANGE_EVERY {
            self.resumed.set(resumed);
            return false;
        }
        if let Ok(mut core) = self.core.try_borrow_mut() {
            self.resumed.set(0);
            core.between_batches();
            return true;
        }
        false
    }

    /// The VM's `Lua` for its state `l`.
    ///
    /// # Safety
    ///
    /// `l` is a thread of this stepper's VM.
    pub(crate) unsafe fn lua(&self, l: *mut lua_State) -> &Lua {
        let mut lua = self.lua.get();
        if lua.is_null() {
            // SAFETY: `l` is a running state of this VM (see above).
            lua = unsafe { Lua::get_or_init_from_ptr(l) };
            self.lua.set(lua);
        }
        // SAFETY: the `Lua` lives in the state's extra data, which outlives
        // every call of the VM's C functions, the only callers.
        unsafe { &*lua }
    }

    /// The pid whose text slot `slot` (below [`FROM_CACHE`]) of the
    /// machine's `Late::LastFrom` table holds.
    pub(crate) fn cached_from(&self, slot: usize) -> Option<warren_core::Pid> {
        self.from_cache.get(slot).and_then(std::cell::Cell::get)
    }

    /// Records whose text slot `slot` holds (`None`: it is about to
    /// change).
    pub(crate) fn set_cached_from(&self, slot: usize, pid: Option<warren_core::Pid>) {
        if let Some(cell) = self.from_cache.get(slot) {
            cell.set(pid);
        }
    }

    /// This VM's front-end index in its worker (its ready queue).
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// Charges process `id` the `bytes` of a value the host hands it and
    /// brings the host's count of this VM's memory up to date, as `H.next`
    /// does for what it converts (nothing when the accounts are in use).
    pub(crate) fn charge_received(&self, lua: &Lua, id: i64, bytes: u64) {
        if let Ok(mut accounts) = self.accounts.try_borrow_mut() {
            accounts.charge_received(id, bytes);
            accounts.resync(lua);
        }
    }

    /// Whether a process waits to be measured for what it was sent
    /// between its resumes (see `Accounts::take_overdue`).
    pub(crate) fn has_overdue(&self) -> bool {
        self.accounts
            .try_borrow()
            .is_ok_and(|accounts| accounts.has_overdue())
    }

    /// Before kernel work inside the running process's resume (see
    /// `quota/lend.rs`); `None` when the accounts are in use (no caller
    /// is), and the work must then not be done.
    pub(crate) fn lend(&self, lua: &Lua) -> Option<crate::quota::Lent> {
        self.accounts.try_borrow().ok().map(|a| a.lend(lua))
    }

    /// After that work: see `Accounts::repay`.
    pub(crate) fn repay(&self, lua: &Lua, lent: crate::quota::Lent) {
        if let Ok(mut accounts) = self.accounts.try_borrow_mut() {
            accounts.repay(lua, lent);
        }
    }

    /// Opens process `id`'s account as `H.next` does when it starts one
    /// (nothing when the accounts are in use, which no caller is).
    pub(crate) fn open_account(&self, id: i64) {
        if let Ok(mut accounts) = self.accounts.try_borrow_mut() {
            accounts.open(id);
        }
    }

    /// Forgets process `id`'s account as `H.exit` does (nothing when the
    /// accounts are in use, which no caller is).
    pub(crate) fn remove_account(&self, id: i64) {
        if let Ok(mut accounts) = self.accounts.try_borrow_mut() {
            accounts.remove(id);
        }
    }

    /// The kind and reason of the last `false` verdict (once).
    pub(crate) fn take_kill(&self) -> Option<(ErrorKind, String)> {
        self.kill.borrow_mut().take()
    }

    /// Before the resume: false if the accounts are in use (a bug; the
    /// step then raises instead of resuming).
    fn enter(&self, lua: &Lua, id: i64, chained: bool) -> bool {
        let Ok(mut accounts) = self.accounts.try_borrow_mut() else {
            return false;
        };
        self.slot.enter();
        accounts.enter(lua, id, chained);
        true
    }

    /// Whether the running process has been doomed by the hook (its step
    /// must end with the accounting after: see [`Accounts::doomed`]).
    fn doomed(&self) -> bool {
        self.accounts.try_borrow().map_or(true, |a| a.doomed())
    }

    /// After a resume whose account stays open for the next step: only
    /// the messages it took are reported.
    fn keep_open(&self, id: i64) {
        self.open.set(Some(id));
        self.report_taken();
    }

    /// Whether process `id` is parked after a measure (its wake-ups wait:
    /// see `Accounts::is_parked`).
    pub(crate) fn parked(&self, id: i64) -> bool {
        self.accounts.try_borrow().is_ok_and(|a| a.is_parked(id))
    }

    /// What to do with a wake-up of process `id`, `queued` others behind
    /// it (see `quota/turn.rs`).
    pub(crate) fn turn_next(&self, id: i64, queued: usize) -> crate::quota::turn::Next {
        self.accounts
            .try_borrow_mut()
            .map_or(crate::quota::turn::Next::Run, |mut a| {
                a.turn_next(id, queued)
            })
    }

    /// Marks a delivery to process `id` under way (0: none); see the
    /// field.
    pub(crate) fn set_owed(&self, id: i64) {
        self.owed.set(id);
    }

    /// The process a delivery was left owed to (0: none).
    pub(crate) fn owed(&self) -> i64 {
        self.owed.get()
    }

    /// Takes the mark [`set_owed`](Self::set_owed) left (0: none).
    pub(crate) fn take_owed(&self) -> i64 {
        self.owed.replace(0)
    }

    /// The process whose account a step left open, if any.
    pub(crate) fn open_id(&self) -> Option<i64> {
        self.open.get()
    }

    /// Closes an account a step left open (see [`step_at`]): the verdict
    /// of its whole span, as [`leave`](Self::leave) answers it; `None`
    /// (fine) when none is open.
    pub(crate) fn close_open(&self, lua: &Lua) -> Option<bool> {
        let id = self.open.take()?;
        self.leave(lua, id)
    }

    /// After a resume that did not raise: the verdict as `step` answers it
    /// (`None` fine, `Some(true)` measure, `Some(false)` end).
    fn leave(&self, lua: &Lua, id: i64) -> Option<bool> {
        // Charged before the slot says the run is over, as `H.leave`.
        let verdict = match self.accounts.try_borrow_mut() {
            Ok(mut accounts) => accounts.leave(lua, id, false),
            Err(_) => Verdict::Kill(ErrorKind::Internal, "the VM's accounts are busy".into()),
        };
        self.slot.leave();
        self.report_taken();
        match verdict {
            Verdict::Fine | Verdict::Park(_) => None,
            Verdict::Measure => Some(true),
            Verdict::Kill(kind, reason) => {
                *self.kill.borrow_mut() = Some((kind, reason));
                Some(false)
            }
        }
    }
}

/// The step of `step(th, p, id, a, b[, c])` with its arguments at
/// `base + 1 ..= base + 6` of `l`'s stack (the top at `base + 6`):
/// replaces them with the step's results and returns how many.
///
/// `keep(l, co, nres)`, asked when the coroutine `co` yielded `nres > 0`
/// values (on its stack) and its process is not doomed: whether the
/// account stays open (see the module's documentation). A caller whose
/// `keep` says yes must close the account ([`Stepper::close_open`], and
/// see to its verdict) before any other process's step, before the
/// kernel's Lua runs, and before the same process's next step if that
/// step's coroutine has no stack room for its values (growing it could
/// fail under the ceiling in code that must not). `chained`: see
/// [`Accounts::enter`](crate::quota::Accounts::enter).
///
/// `quiet(l)`, asked right after `keep` said yes: whether the step's
/// outcome needs nothing more from the caller. Then the yielded values are
/// dropped, nothing is left above `base` and the answer is [`SETTLED`]:
/// the caller would have read `true, nil, <first value>` and dropped them.
///
/// # Safety
///
/// `l` is a running state; `stepper` is its VM's.
pub(crate) unsafe fn step_at(
    l: *mut lua_State,
    stepper: &Stepper,
    base: c_int,
    keep: &dyn Fn(*mut lua_State, *mut lua_State, c_int) -> bool,
    quiet: &dyn Fn(*mut lua_State) -> bool,
    chained: bool,
) -> c_int {
    // SAFETY: every Lua call below follows lcorolib.c's `auxresume`, as
    // `resume::resume` does. The Rust values alive across a call that may
    // raise (`luaL_argerror`, `luaL_error`, `lua_resume`'s caller frame
    // never raises) are plain references and integers.
    unsafe {
        let co = fast::tothread(l, base + 1);
        if co.is_null() {
            ffi::luaL_argerror(l, 1, c"coroutine expected".as_ptr());
        }
        let id = fast::tointeger(l, base + 3);
        let lua = stepper.lua(l);
        let narg = if is_primed(l, base + 4, co) {
            // A first resume with its values already on the coroutine's
            // stack (`prime`): all of them above its function.
            fast::settop(l, base + 3);
            fast::gettop(co) - 1
        } else {
            let narg = if fast::type_of(l, base + 6) <= ffi::LUA_TNIL {
                2
            } else {
                3
            };
            fast::settop(l, base + 3 + narg);
            if fast::has_room(co, narg) == 0 {
                ffi::luaL_error(l, c"too many arguments to resume".as_ptr());
            }
            ffi::lua_xmove(l, co, narg);
            narg
        };
        if !open_for(stepper, lua, id) && !stepper.enter(lua, id, chained) {
            ffi::luaL_error(l, c"step: the VM's accounts are in use".as_ptr());
        }
        let (status, nres) = crate::resume::resume_tracked(l, co, narg);
        if status != ffi::LUA_OK && status != ffi::LUA_YIELD {
            // The kernel's Lua closes this account (`H.leave` in
            // `finish_one`, which charges what it allocated meanwhile):
            // the frames it needs to get there must not fail under the
            // process's ceiling (a first call at a new depth allocates).
            let _ = lua.set_memory_limit(0);
            fast::settop(l, base);
            fast::pushboolean(l, 0);
            ffi::lua_xmove(co, l, 1); // the error
            return 2;
        }
        let kept = status == ffi::LUA_YIELD && nres > 0 && !stepper.doomed() && keep(l, co, nres);
        let verdict = if kept {
            stepper.keep_open(id);
            if quiet(l) {
                fast::settop(co, -nres - 1);
                fast::settop(l, base);
                return SETTLED;
            }
            None
        } else {
            stepper.leave(lua, id)
        };
        fast::settop(l, base);
        fast::pushboolean(l, 1);
        match verdict {
            None => fast::pushnil(l),
            Some(measure) => fast::pushboolean(l, c_int::from(measure)),
        }
        if status == ffi::LUA_YIELD && nres == 0 && crate::resume::take_preempted(co) {
            ffi::lua_pushlightuserdata(l, crate::resume::marker().0);
            return 3;
        }
        let keep = nres.min(3);
        fast::pop(co, nres - keep);
        ffi::lua_xmove(co, l, keep);
        2 + keep
    }
}

/// What [`step_at`] answers for a step whose account stays open and whose
/// outcome `quiet` found needs nothing more: no values.
pub(crate) const SETTLED: c_int = -1;

/// The value a wake-up is queued with (alone) to resume a coroutine that
/// has not started with the values [`prime`] put on its stack.
static PRIMED: u8 = 0;

/// [`PRIMED`] as Lua sees it: a light userdata of its address, which no
/// other value has.
pub(crate) fn primed_marker() -> *mut std::ffi::c_void {
    ptr::from_ref(&PRIMED).cast_mut().cast()
}

/// Whether the value at `a` is [`PRIMED`] and `co` a coroutine that has not
/// started (its function at 1, nothing run yet); a marker queued for any
/// other coroutine is an ordinary value.
///
/// # Safety
///
/// `a` a valid index of `l`; `co` a thread.
unsafe fn is_primed(l: *mut lua_State, a: c_int, co: *mut lua_State) -> bool {
    // SAFETY: reads only.
    unsafe {
        fast::type_of(l, a) == ffi::LUA_TLIGHTUSERDATA
            && fast::touserdata(l, a) == primed_marker()
            && ffi::lua_status(co) == ffi::LUA_OK
            && fast::gettop(co) >= 1
            && fast::type_of(co, 1) == ffi::LUA_TFUNCTION
    }
}

/// The most values [`prime`] takes: what a new coroutine's stack
/// (`WARREN_THREAD_STACK`, 23 slots, its function in one) holds without
/// growing, so priming never allocates. The kernel packs more in a table
/// (it primes at most 16 arguments: this less a process's record and entry).
const PRIME_SLOTS: c_int = 18;

/// `prime(th, ...)`: puts `...` (at most [`PRIME_SLOTS`] values) on the
/// stack of coroutine `th`, which has not started, as the values of its
/// first resume (queued with the [`PRIMED`] marker): no table packs them
/// on the way. Raises when `th` is no such coroutine or there are more.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(crate) unsafe extern "C-unwind" fn prime(l: *mut lua_State) -> c_int {
    // SAFETY: the thread is checked; `lua_checkstack` makes room on it
    // before the move (it never raises).
    unsafe {
        let th = fast::tothread(l, 1);
        if th.is_null() || ffi::lua_status(th) != ffi::LUA_OK || fast::gettop(th) != 1 {
            ffi::luaL_argerror(l, 1, c"a coroutine that has not started".as_ptr());
        }
        prime_onto(l, th, fast::gettop(l) - 1);
        0
    }
}

/// Moves the `n` values on top of `l` onto the stack of `th`, a coroutine
/// that has not started; raises when there are more than
/// [`PRIME_SLOTS`] or its stack cannot hold them.
///
/// # Safety
///
/// `th` is a thread of `l`'s VM other than `l`, with its function only.
pub(crate) unsafe fn prime_onto(l: *mut lua_State, th: *mut lua_State, n: c_int) {
    // SAFETY: see above; `lua_checkstack` makes room on `th` before the
    // move (it never raises).
    unsafe {
        if n > PRIME_SLOTS || fast::has_room(th, n) == 0 {
            ffi::luaL_error(l, c"prime: more values than a new coroutine holds".as_ptr());
        }
        ffi::lua_xmove(l, th, n);
    }
}

/// Whether the account of process `id` is open from the step before
/// (then this step runs in it); an account left open for another process
/// (which [`step_at`]'s callers never leave) is closed first, and its
/// verdict dropped.
fn open_for(stepper: &Stepper, lua: &Lua, id: i64) -> bool {
    match stepper.open.take() {
        Some(open) if open == id => true,
        Some(other) => {
            debug_assert!(false, "an account left open for another process");
            let _ = stepper.leave(lua, other);
            false
        }
        None => false,
    }
}

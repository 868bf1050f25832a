//! Memory and CPU accounting of Lua processes that share one VM.
//!
//! The kernel's step ([`crate::step`]) calls [`Accounts::enter`] before it
//! resumes a process and [`Accounts::leave`] after (through `H.leave(id,
//! oom)` when the resume raised). While a process runs, the VM's allocator
//! ceiling is what the VM uses now plus the process's room: its
//! `memory_per_process` minus its last measured size, and never more than
//! is left of the host's `memory_total`. An allocation past the ceiling
//! makes Lua collect garbage and, if that is not enough, fail with "not
//! enough memory", which the sandbox does not let the process catch; the
//! process ends with a memory-limit reason. That end is final once the
//! error is raised: a `__close` handler that raises while the stack
//! unwinds replaces the error every protected call above then sees, so
//! the VM's count of memory errors ([`Grown::memory_errors`]) dooms the
//! process instead, as the hook dooms one past its CPU budget
//! ([`Accounts::doomed`]).
//!
//! Growth is charged to the process that was running when the VM grew
//! (and what the collector frees meanwhile is credited to it). Because
//! garbage of one process may be freed while another runs, a charge only
//! ever triggers a measurement: past its limit, the kernel walks what the
//! process can reach (`measure` in the kernel) and that size replaces the
//! charge; only a measured size past the limit ends the process. So does
//! what it allocated in all since its last measure ([`Grown`]) once that
//! could have taken it past its limit: the frees credited to it may be
//! another process's garbage. CPU time
//! is summed over the same enter/leave pairs against `cpu_budget`: the
//! worker thread's CPU time (not wall time, which would charge a process
//! for the time its thread was descheduled), read only when the host has a
//! budget, and the CPU time its SQL statements spent in the engine
//! ([`Accounts::engine_meter`]). The kernel's walks are the measured
//! process's CPU time, and one measured over and over (hovering at its
//! limit) is parked between them so its neighbours get three times their
//! time ([`PARK_FACTOR`]). Neither the CPU time nor the run time the stuck-code guard
//! looks at includes the collector's (see [`crate::gctime`]): a collection
//! of the whole VM's heap is not the code of the process that was running.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::Lua;
use rustc_hash::{FxHashMap, FxHashSet};
use warren_core::{ErrorKind, HostQuota, ProcError};
use warren_sql::EngineMeter;

use crate::random::Rng;
use crate::watchdog::Slot;

mod lend;
pub(crate) mod turn;
pub(crate) use lend::Lent;

/// How far the host's count of a VM's memory may lag behind the VM: the
/// count is shared by every worker of the host, and updating it at every
/// resume made the workers fight over its cache line (a process's room is
/// then off by at most this much per worker).
pub(crate) const SYNC_GRANULE: u64 = 64 * 1024;

/// What an event is charged to the process it is delivered to besides
/// its value or error message: the event, result and time tables and the
/// sender's pid text, as Lua holds them (about 450 bytes; an EXIT of a
/// process returning nothing measured 430).
pub(crate) const EVENT_BYTES: u64 = 512;

/// What the event `event` is charged to the process it is delivered to
/// (see [`Accounts::charge_received`]): 100,000 EXITs of 1 KB results,
/// never read, were 230 MB of a VM charged to nobody.
pub(crate) fn event_bytes(event: &warren_core::Event) -> u64 {
    EVENT_BYTES.saturating_add(event.carried_bytes())
}

#[derive(Default)]
struct Account {
    /// Last measured size: what its room is computed from.
    base: u64,
    /// `base` plus the VM's net growth while it ran since then.
    charge: u64,
    cpu: Duration,
    /// The CPU time of its SQL statements, made on its first statement
    /// when the host has a `cpu_budget` (see [`Accounts::engine_meter`]).
    engine: Option<Arc<EngineMeter>>,
    /// The most `os.clock` has answered it (see [`Accounts::clock`]).
    clock_seen: Duration,
    /// What it allocated while it ran since its last measure, kept or not
    /// (see [`Grown`]).
    allocated: u64,
    /// The kernel's walks of what it holds that its neighbours have not
    /// yet had time for, and when the last one ended (see [`park_for`]).
    walk_debt: Duration,
    walked_at: Option<Instant>,
    /// Queued in [`Accounts::overdue`] and not measured since.
    overdue: bool,
}

impl Account {
    /// Its CPU time: its resumes' and its SQL statements'.
    fn cpu_total(&self) -> Duration {
        self.cpu + self.engine.as_ref().map_or(Duration::ZERO, |m| m.spent())
    }
}

struct Running {
    id: i64,
    used_at: usize,
    since: Instant,
    /// The thread's CPU time at `since`, when the host has a `cpu_budget`.
    cpu_at: Option<Duration>,
    /// The thread's collector time at `since` (see [`crate::gctime`]).
    gc_at: Duration,
    /// Whether its room was what is left of the host's total (rather than
    /// its own limit): names the limit an allocation failure hit.
    host_bound: bool,
    /// The VM's bytes ever allocated at `since` (see [`Grown`]).
    grown_at: u64,
    /// The VM's count of memory errors at `since` (see
    /// [`Grown::memory_errors`]).
    memerrs_at: u64,
}

/// The VM's count of the bytes it has ever allocated (the vendored Lua's
/// `warren_grown`), read through its main state. A process's charge is
/// the VM's net growth while it ran, and what the collector frees then
/// may be another process's garbage: next to a process of its own that
/// made garbage, one grew to 150 MB under a 64 MiB `memory_per_process`
/// with its charge never past it. What it allocates in all is measured
/// too: once that could have taken it past its limit (and at least its
/// own size again, so a large process that makes garbage is not walked
/// for every few bytes), it is measured. A null state counts nothing.
/// Read through the same state: the VM's count of memory errors
/// ([`memory_errors`](Self::memory_errors)).
#[derive(Clone, Copy)]
pub(crate) struct Grown(*mut mlua::ffi::lua_State);

unsafe extern "C-unwind" {
    fn warren_grown(l: *mut mlua::ffi::lua_State) -> usize;
    fn warren_memerrs(l: *mut mlua::ffi::lua_State) -> usize;
}

/// The bytes the VM of state `l` has ever allocated (the vendored Lua's
/// `warren_grown`).
///
/// # Safety
///
/// `l` is a live state of the VM; the read touches no Lua stack.
pub(crate) unsafe fn grown_of(l: *mut mlua::ffi::lua_State) -> usize {
    // SAFETY: see above.
    unsafe { warren_grown(l) }
}

impl Grown {
    /// The count of the VM whose main state is `main`.
    ///
    /// # Safety
    ///
    /// `main` is a VM's main state, alive whenever [`get`](Self::get) is
    /// called (the accounts are used only while their VM runs).
    pub(crate) unsafe fn of(main: *mut mlua::ffi::lua_State) -> Self {
        Grown(main)
    }

    fn get(self) -> u64 {
        if self.0.is_null() {
            return 0;
        }
        // SAFETY: see `of`; the read touches no Lua stack.
        u64::try_from(unsafe { warren_grown(self.0) }).unwrap_or(u64::MAX)
    }

    /// How many memory errors the VM has raised (the vendored Lua's
    /// `warren_memerrs`, counted where each is thrown). One raised while a
    /// process runs is an allocation past its ceiling (or its own
    /// `error("not enough memory", 0)`): its end, whatever it does with the
    /// error. Its code could replace the error as the stack unwinds (a
    /// `__close` handler that raises), so the protected call it reaches
    /// sees another error and the resume may not raise at all; this count
    /// does not depend on what reached the caller. A null state counts
    /// nothing.
    fn memory_errors(self) -> u64 {
        if self.0.is_null() {
            return 0;
        }
        // SAFETY: as `get`.
        u64::try_from(unsafe { warren_memerrs(self.0) }).unwrap_or(u64::MAX)
    }
}

impl Running {
    /// CPU time used since it was resumed, less the collector's. Without
    /// a budget (where it is only informative: `os.clock`) no clock is
    /// read per resume: wall time, capped by the CPU time the watchdog saw
    /// the worker have (`slot`), so a wait for a core is not counted.
    fn cpu_used(&self, slot: Option<&Slot>) -> Duration {
        self.cpu_used_at(Instant::now(), slot)
    }

    /// [`cpu_used`](Self::cpu_used) with the clock read at `now`.
    fn cpu_used_at(&self, now: Instant, slot: Option<&Slot>) -> Duration {
        let used = match self.cpu_at {
            Some(at) => thread_cpu_time().saturating_sub(at),
            None => {
                let wall = now.saturating_duration_since(self.since);
                slot.map_or(wall, |s| s.cap(wall))
            }
        };
        used.saturating_sub(self.collecting())
    }

    /// Time the collector has run since it was resumed: not its own.
    fn collecting(&self) -> Duration {
        crate::gctime::total().saturating_sub(self.gc_at)
    }
}

/// How many times the time of the kernel's walks of a process's reach its
/// neighbours get: a process that keeps landing past its
/// `memory_per_process` (hovering just under it, its garbage counted until
/// collected) made the kernel walk everything it holds after every resume,
/// ~5 ms for 95,000 tables, and its neighbours got one tick in thirty.
/// Parked (its wake-ups held back) for this multiple of its walks, it
/// takes at most a quarter of its worker that way.
const PARK_FACTOR: u32 = 3;

/// The shortest park worth a timer: walks that cost less hold no
/// neighbour back for long.
const MIN_PARK: Duration = Duration::from_millis(1);

/// The park a measure whose walk took `walk` (CPU time) of the worker
/// earns `account`, ending `now`. Its debt (what its neighbours are owed,
/// `PARK_FACTOR` times each walk) is paid back by the time that passes
/// between walks; a walk that finds some of it still owed is the second
/// in a row, and the process waits the whole debt out (which pays it).
/// A process measured now and then (each walk paid back by the time the
/// next comes) is never held back.
fn park_for(account: &mut Account, walk: Duration, now: Instant) -> Option<Duration> {
    // From the end of the last walk to the start of this one.
    let since = account.walked_at.map_or(Duration::MAX, |at| {
        now.saturating_duration_since(at).saturating_sub(walk)
    });
    account.walked_at = Some(now);
    let carried = account.walk_debt.saturating_sub(since);
    account.walk_debt = carried + walk * PARK_FACTOR;
    if carried.is_zero() || account.walk_debt < MIN_PARK {
        return None;
    }
    Some(std::mem::take(&mut account.walk_debt))
}

/// The calling thread's CPU time.
fn thread_cpu_time() -> Duration {
    crate::watchdog::clock_now(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or_default()
}

/// The VM's accounts as its host functions find them (the `Lua`'s app
/// data), for [`engine_meter`].
pub(crate) struct EngineMeters(pub(crate) Rc<RefCell<Accounts>>);

/// [`Accounts::engine_meter`] for a host function that has the `Lua`.
/// The accounts are borrowed only around a resume, never during one, so
/// a host function always finds them free; if it did not, the statement
/// is refused rather than run unmetered.
pub(crate) fn engine_meter(lua: &Lua, id: i64) -> Result<Option<Arc<EngineMeter>>, ProcError> {
    let meters = lua
        .app_data_ref::<EngineMeters>()
        .ok_or_else(|| unmetered("the VM has no accounts"))?;
    metered(&meters.0, id)
}

/// [`Accounts::engine_meter`] on `accounts`, `INTERNAL` if they are in use.
pub(crate) fn metered(
    accounts: &RefCell<Accounts>,
    id: i64,
) -> Result<Option<Arc<EngineMeter>>, ProcError> {
    let mut accounts = accounts
        .try_borrow_mut()
        .map_err(|_| unmetered("the accounts are in use"))?;
    Ok(accounts.engine_meter(id))
}

fn unmetered(why: &str) -> ProcError {
    ProcError::new(
        ErrorKind::Internal,
        format!("sql: cannot meter the statement's CPU time: {why}"),
    )
}

/// What `H.leave` found.
pub(crate) enum Verdict {
    /// Nothing to do.
    Fine,
    /// The charge passed the limit: measure the process.
    Measure,
    /// Fine, but the process was measured so often that it must wait this
    /// long before it runs again (only [`Accounts::measured`] says so).
    Park(Duration),
    /// End the process with this reason.
    Kill(ErrorKind, String),
}

/// The accounts of one VM's processes.
pub(crate) struct Accounts {
    quota: Arc<HostQuota>,
    accounts: FxHashMap<i64, Account>,
    running: Option<Running>,
    /// Why the running process must end, once the hook has decided it.
    doomed: Option<String>,
    /// The VM's bytes counted in the host's total.
    synced: u64,
    /// Each process's `math.random` generator, made on first use.
    rngs: FxHashMap<i64, Rng>,
    /// The VM's watchdog slot, once preemption is set up.
    slot: Option<Arc<Slot>>,
    /// The thread's CPU time when the kernel began to measure a process
    /// (`measure_start`).
    measure_at: Option<Duration>,
    /// The VM's allocation count (see [`Grown`]).
    grown: Grown,
    /// Processes parked after a measure (see [`park_for`]): their
    /// wake-ups wait until the kernel's park timer lifts it (`unpark`).
    parked: FxHashSet<i64>,
    /// Processes whose charge passed the limit with what they were sent
    /// between their resumes: the kernel measures them before it resumes
    /// anything else (`take_overdue`), since one that never runs again
    /// (its only wait never ends, its events never read) would otherwise
    /// hold what it is sent unmeasured.
    overdue: Vec<i64>,
    /// Whether this VM holds a run in its host's count of runs in progress
    /// (`HostQuota::begin_run`, which splits what is left of
    /// `memory_total` among them): taken by the first resume of a
    /// front-end run and held until the run ends ([`end_host_run`]),
    /// rather than taken and given back around every resume (two atomic
    /// updates of a count every worker of the host shares).
    ///
    /// [`end_host_run`]: Self::end_host_run
    host_run: bool,
    /// The time the last [`leave`](Self::leave) read, which a chained
    /// [`enter`](Self::enter) takes as its own (one clock read per resume
    /// instead of two).
    left_at: Option<Instant>,
    /// The turn of the process that ran last (see [`turn`]).
    turn: turn::Turn,
}

impl Drop for Accounts {
    /// A VM that goes away mid-run (its worker stopping) leaves no run
    /// counted against its host.
    fn drop(&mut self) {
        self.end_host_run();
    }
}

impl Accounts {
    pub(crate) fn new(quota: Arc<HostQuota>) -> Self {
        Accounts {
            quota,
            accounts: FxHashMap::default(),
            running: None,
            doomed: None,
            synced: 0,
            rngs: FxHashMap::default(),
            slot: None,
            measure_at: None,
            grown: Grown(std::ptr::null_mut()),
            parked: FxHashSet::default(),
            overdue: Vec::new(),
            host_run: false,
            left_at: None,
            turn: turn::Turn::default(),
        }
    }

    /// Counts what each process allocates with the VM's count `grown`.
    pub(crate) fn counting(&mut self, grown: Grown) {
        self.grown = grown;
    }

    /// The kernel begins to walk what a process holds (`measured` ends
    /// it): the walk is work for that process, charged to its CPU time.
    pub(crate) fn measure_start(&mut self) {
        self.measure_at = Some(thread_cpu_time());
    }

    /// Measures runs with the VM's watchdog `slot` from now on (see
    /// [`Running::cpu_used`]).
    pub(crate) fn watched_by(&mut self, slot: Arc<Slot>) {
        self.slot = Some(slot);
    }

    fn limit(&self) -> u64 {
        self.quota.limits.memory_per_process
    }

    /// Brings the host's count of this VM's memory up to date (after a
    /// collection between processes).
    pub(crate) fn resync(&mut self, lua: &Lua) {
        self.sync(lua.used_memory());
    }

    /// Brings the host's count of this VM's memory up to date, to within
    /// [`SYNC_GRANULE`].
    fn sync(&mut self, used: usize) {
        let used = u64::try_from(used).unwrap_or(u64::MAX);
        if used.abs_diff(self.synced) < SYNC_GRANULE {
            return;
        }
        if used > self.synced {
            self.quota.add_memory(used - self.synced);
        } else {
            self.quota.release_memory(self.synced - used);
        }
        self.synced = used;
    }

    /// After the front-end's run (its resumes): gives back the run
    /// [`enter`](Self::enter) took in the host's count, if it took one.
    pub(crate) fn end_host_run(&mut self) {
        if std::mem::take(&mut self.host_run) {
            self.quota.end_run();
        }
    }

    /// Before process `id` runs: sets the VM's ceiling to its room.
    /// `chained`: the machine resumes it right after another process's
    /// resume left, with only its own bookkeeping between (no exit, no
    /// exchange with the core): its run starts at the time that leave
    /// read, that bookkeeping charged to it, and the clock is not read
    /// again.
    pub(crate) fn enter(&mut self, lua: &Lua, id: i64, chained: bool) {
        let used = lua.used_memory();
        self.sync(used);
        let base = self.accounts.entry(id).or_default().base;
        let own_room = self.limit().saturating_sub(base);
        let host_room = if self.host_run {
            self.quota.room_in_run()
        } else {
            self.host_run = true;
            self.quota.begin_run()
        };
        let room = own_room.min(host_room);
        let ceiling = used.saturating_add(usize::try_from(room).unwrap_or(usize::MAX));
        // A zero limit means "none" to mlua: keep at least one byte of it.
        let _ = lua.set_memory_limit(ceiling.max(1));
        crate::emergency::set_running(id);
        self.turn.enter(id);
        self.running = Some(Running {
            id,
            used_at: used,
            since: self
                .left_at
                .take()
                .filter(|_| chained)
                .unwrap_or_else(Instant::now),
            cpu_at: self.quota.limits.cpu_budget.map(|_| thread_cpu_time()),
            gc_at: crate::gctime::total(),
            host_bound: host_room < own_room,
            grown_at: self.grown.get(),
            memerrs_at: self.grown.memory_errors(),
        });
    }

    /// After process `id` ran: charges it, lifts the ceiling (kernel code
    /// between processes must never fail), and says what to do. `oom`: the
    /// resume raised a memory error; one raised during the run ends the
    /// process too when its code replaced it (see
    /// [`Grown::memory_errors`]).
    pub(crate) fn leave(&mut self, lua: &Lua, id: i64, oom: bool) -> Verdict {
        self.left_at = None;
        let _ = lua.set_memory_limit(0);
        crate::emergency::set_running(0);
        let used = lua.used_memory();
        self.sync(used);
        let doomed = self.doomed.take();
        let run = self.running.take();
        let Some(run) = run.filter(|r| r.id == id) else {
            return Verdict::Fine;
        };
        let oom = oom || self.grown.memory_errors() != run.memerrs_at;
        let limit = self.limit();
        let Some(account) = self.accounts.get_mut(&id) else {
            return Verdict::Fine; // it exited while it ran
        };
        let now = Instant::now();
        self.left_at = Some(now);
        let ran = run.cpu_used_at(now, self.slot.as_deref());
        account.cpu += ran;
        self.turn.ran(id, ran);
        let grown = i64::try_from(used).unwrap_or(i64::MAX)
            - i64::try_from(run.used_at).unwrap_or(i64::MAX);
        account.charge = account.charge.saturating_add_signed(grown);
        let allocated = self.grown.get().saturating_sub(run.grown_at);
        account.allocated = account.allocated.saturating_add(allocated);
        let cpu = account.cpu_total();
        let could_hold = limit.saturating_sub(account.base).max(account.base);
        let over_limit = account.charge > limit || account.allocated > could_hold;
        let over_budget = || self.quota.cpu_budget_exceeded(cpu).map(|e| e.message);
        if let Some(reason) = doomed.or_else(over_budget) {
            return Verdict::Kill(ErrorKind::RateLimited, reason);
        }
        if oom {
            let mut message = self.oom_message(run.host_bound);
            if let Some(account) = self.accounts.get(&id) {
                let grown = used.saturating_sub(run.used_at);
                message.push_str(&format!(
                    "; it had allocated {grown} bytes more since it was resumed (last measured at {} bytes)",
                    account.base
                ));
            }
            return Verdict::Kill(ErrorKind::RateLimited, message);
        }
        if over_limit {
            return Verdict::Measure;
        }
        Verdict::Fine
    }

    /// What to do with a wake-up of process `id`, `queued` others behind
    /// it: once its turn on the worker took its `cpu_slice`, it goes to
    /// the back of the run queue (see [`turn`]).
    pub(crate) fn turn_next(&mut self, id: i64, queued: usize) -> turn::Next {
        self.turn.next(id, self.quota.limits.cpu_slice, queued)
    }

    /// How long the running process has run since it was resumed, less
    /// the collector's time meanwhile, or `None` when kernel code runs
    /// between processes.
    pub(crate) fn ran(&self, now: Instant) -> Option<Duration> {
        self.running.as_ref().map(|r| {
            now.saturating_duration_since(r.since)
                .saturating_sub(r.collecting())
        })
    }

    /// Whether the running process must end now: past its `cpu_budget`, or
    /// `stuck` beyond `stuck_limit` where it cannot be preempted. Records the
    /// reason; see [`doomed`](Self::doomed).
    pub(crate) fn check_running(&mut self, ran: Duration, stuck_limit: Duration) -> Option<String> {
        let id = self.running.as_ref()?.id;
        let slot = self.slot.as_deref();
        let running = self.running.as_ref().map_or(ran, |r| r.cpu_used(slot));
        let used = self
            .accounts
            .get(&id)
            .map_or(Duration::ZERO, Account::cpu_total)
            + running;
        let over_budget = self.quota.cpu_budget_exceeded(used).map(|e| e.message);
        let reason = over_budget.or_else(|| {
            (ran > stuck_limit).then(|| {
                format!(
                    "ran {} ms without reaching a point where it could be preempted (one long library call, such as a pattern match over a long string, or code called from C, such as a table.sort comparator or a __tostring, cannot yield)",
                    ran.as_millis()
                )
            })
        })?;
        self.doomed = Some(reason.clone());
        Some(reason)
    }

    /// Whether the running process has been doomed (its error must not be
    /// caught): by the hook, or by a memory error raised since it was
    /// resumed, whatever error its code replaced that with as the stack
    /// unwound (see [`Grown::memory_errors`]).
    pub(crate) fn doomed(&self) -> bool {
        self.doomed.is_some()
            || self
                .running
                .as_ref()
                .is_some_and(|r| self.grown.memory_errors() != r.memerrs_at)
    }

    /// The kernel measured process `id` at `bytes`; when the measure is
    /// not `exact` (its walk was cut short), the last measured size is
    /// kept if larger.
    pub(crate) fn measured(&mut self, id: i64, bytes: u64, exact: bool) -> Verdict {
        let limit = self.limit();
        let Some(account) = self.accounts.get_mut(&id) else {
            return Verdict::Fine;
        };
        // The walk's CPU time is the process's: hovering at its limit made
        // the kernel walk its reach after every resume on nobody's account
        // (about 5 ms per walk of 95,000 tables, 180 a second).
        let mut park = None;
        if let Some(at) = self.measure_at.take() {
            let walk = thread_cpu_time().saturating_sub(at);
            account.cpu += walk;
            if let Some(e) = self.quota.cpu_budget_exceeded(account.cpu_total()) {
                return Verdict::Kill(ErrorKind::RateLimited, e.message);
            }
            park = park_for(account, walk, Instant::now());
        }
        // A walk cut short (its work list could not grow: a table of more
        // than a million tables) is at least what it counted, what the
        // process last measured, and its charge since: what it cannot
        // measure it cannot show it has freed. Taken as its last size
        // only, such a walk reset the charge at every measure, and a
        // process holding a million strings went on to hold 3 GB under a
        // 64 MiB limit.
        let bytes = if exact {
            bytes
        } else {
            bytes.max(account.base).max(account.charge)
        };
        account.base = bytes;
        account.charge = bytes;
        account.allocated = 0;
        account.overdue = false;
        if bytes > limit {
            let message = format!(
                "memory limit exceeded: the process holds about {bytes} bytes, over the memory_per_process of host '{}' ({limit} bytes)",
                self.quota.name
            );
            return Verdict::Kill(ErrorKind::RateLimited, message);
        }
        match park {
            Some(d) => {
                self.parked.insert(id);
                Verdict::Park(d)
            }
            None => Verdict::Fine,
        }
    }

    /// Whether process `id` is parked (see [`park_for`]): its wake-ups
    /// must wait. One test of an empty set when none is.
    pub(crate) fn is_parked(&self, id: i64) -> bool {
        !self.parked.is_empty() && self.parked.contains(&id)
    }

    /// The kernel's park timer of process `id` fired: it runs again.
    pub(crate) fn unpark(&mut self, id: i64) {
        self.parked.remove(&id);
    }

    fn oom_message(&self, host_bound: bool) -> String {
        let name = &self.quota.name;
        if host_bound {
            let total = self.quota.limits.memory_total;
            format!(
                "memory limit exceeded: an allocation did not fit in what is left of the memory_total of host '{name}' ({total} bytes)"
            )
        } else {
            let limit = self.limit();
            format!(
                "memory limit exceeded: an allocation did not fit in the memory_per_process of host '{name}' ({limit} bytes)"
            )
        }
    }

    /// Whether no process of this VM has an account: none is left.
    pub(crate) fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Forgets an exited process.
    pub(crate) fn remove(&mut self, id: i64) {
        self.accounts.remove(&id);
        self.parked.remove(&id);
        self.rngs.remove(&id);
    }

    /// Process `id`'s own random generator.
    pub(crate) fn rng(&mut self, id: i64) -> &mut Rng {
        self.rngs.entry(id).or_insert_with(Rng::from_os)
    }

    /// Seeds process `id`'s generator.
    pub(crate) fn seed(&mut self, id: i64, rng: Rng) {
        self.rngs.insert(id, rng);
    }

    /// The time process `id` has run: its CPU time when the host has a
    /// `cpu_budget`, else the wall time of its resumes.
    pub(crate) fn clock(&self, id: i64) -> Duration {
        let past = self
            .accounts
            .get(&id)
            .map_or(Duration::ZERO, Account::cpu_total);
        let now = self
            .running
            .as_ref()
            .filter(|r| r.id == id)
            .map_or(Duration::ZERO, |r| r.cpu_used(self.slot.as_deref()));
        past + now
    }

    /// `os.clock` for process `id`: [`Accounts::clock`], never less than
    /// it answered before. The run's share is the thread's CPU time (or
    /// capped wall time) less the collector's wall time, and the thread's
    /// CPU clock advances in scheduler ticks on some machines, so two
    /// reads a moment apart could go backwards (a CI run timed a call at
    /// "-0" ms).
    pub(crate) fn os_clock(&mut self, id: i64) -> Duration {
        let now = self.clock(id);
        match self.accounts.get_mut(&id) {
            Some(account) => {
                account.clock_seen = account.clock_seen.max(now);
                account.clock_seen
            }
            None => now,
        }
    }

    /// The meter process `id`'s SQL statements are charged to, allowed
    /// what is left of its `cpu_budget` now; `None` when the host has no
    /// budget (nothing to bound or charge). SQL is code: without it, a
    /// statement that never ends held its entry's connection while its
    /// process, blocked on the call, spent none of its budget.
    pub(crate) fn engine_meter(&mut self, id: i64) -> Option<Arc<EngineMeter>> {
        let budget = self.quota.limits.cpu_budget?;
        let used = self.clock(id);
        let account = self.accounts.entry(id).or_default();
        let meter = account.engine.get_or_insert_with(Default::default);
        meter.allow(budget.saturating_sub(used));
        Some(meter.clone())
    }

    /// What process `id` is charged with, in bytes (`collectgarbage("count")`
    /// for it: the VM's total would tell a process about its neighbours).
    pub(crate) fn charge(&self, id: i64, used: usize) -> u64 {
        let base = self.accounts.get(&id).map_or(0, |a| a.charge);
        let grown = self
            .running
            .as_ref()
            .filter(|r| r.id == id)
            .map_or(0, |r| used.saturating_sub(r.used_at));
        base.saturating_add(u64::try_from(grown).unwrap_or(u64::MAX))
    }

    /// Charges process `id` with `bytes` it was sent (converted into the VM
    /// between its resumes): what a process is sent counts against it.
    /// Past its limit it is queued to be measured (see [`Self::overdue`]).
    pub(crate) fn charge_received(&mut self, id: i64, bytes: u64) {
        let limit = self.limit();
        if let Some(account) = self.accounts.get_mut(&id) {
            account.charge = account.charge.saturating_add(bytes);
            if account.charge > limit && !account.overdue {
                account.overdue = true;
                self.overdue.push(id);
            }
        }
    }

    /// Whether a process waits to be measured for what it was sent.
    pub(crate) fn has_overdue(&self) -> bool {
        !self.overdue.is_empty()
    }

    /// The next process to measure for what it was sent (perhaps one that
    /// has ended since: the kernel skips those).
    pub(crate) fn take_overdue(&mut self) -> Option<i64> {
        let id = self.overdue.pop()?;
        if let Some(account) = self.accounts.get_mut(&id) {
            account.overdue = false;
        }
        Some(id)
    }

    /// Opens process `id`'s account as it starts (so what it is sent before
    /// its first resume is charged too).
    pub(crate) fn open(&mut self, id: i64) {
        self.accounts.entry(id).or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of process 1 starting now, without a `cpu_budget`.
    fn started() -> Running {
        Running {
            id: 1,
            used_at: 0,
            since: Instant::now(),
            cpu_at: None,
            gc_at: crate::gctime::total(),
            host_bound: false,
            grown_at: 0,
            memerrs_at: 0,
        }
    }

    /// Accounts counting with `lua`'s main state (as the host's are).
    fn counting(lua: &Lua) -> Accounts {
        let mut main = std::ptr::null_mut();
        // SAFETY: as the host's: the closure only keeps the pointer, and
        // the state outlives these accounts (the caller's `lua`).
        unsafe {
            lua.exec_raw::<()>((), |l| main = l)
                .expect("the main state");
        }
        let mut accounts = Accounts::new(Arc::new(HostQuota::default()));
        // SAFETY: see above.
        accounts.counting(unsafe { Grown::of(main) });
        accounts
    }

    /// Allocates 1 GiB (past any ceiling) under a `pcall`, with a
    /// to-be-closed value whose `__close` raises its own error in place
    /// of the memory error: what the `pcall` answers.
    const SWALLOWED: &str = r#"
        local ok, err = pcall(function()
            local x <close> = setmetatable({}, { __close = function() error("swallowed", 0) end })
            return string.rep("x", 1 << 30)
        end)
        return tostring(ok) .. " " .. tostring(err)"#;

    #[test]
    fn a_memory_error_replaced_by_a_close_handler_is_still_counted() {
        let lua = Lua::new();
        let accounts = counting(&lua);
        let before = accounts.grown.memory_errors();
        lua.load(r#"pcall(error, "not a memory error")"#)
            .exec()
            .expect("ran");
        assert_eq!(accounts.grown.memory_errors(), before);
        let _ = lua.set_memory_limit(lua.used_memory() + (1 << 20));
        let caught: String = lua.load(SWALLOWED).eval().expect("ran");
        let _ = lua.set_memory_limit(0);
        assert_eq!(caught, "false swallowed");
        assert_eq!(accounts.grown.memory_errors(), before + 1);
    }

    #[test]
    fn a_memory_error_dooms_its_process_whatever_replaced_it() {
        let lua = Lua::new();
        let mut accounts = counting(&lua);
        accounts.open(1);
        accounts.enter(&lua, 1, false);
        let fine: String = lua
            .load(r#"return tostring(pcall(error, "caught"))"#)
            .eval()
            .expect("ran");
        assert_eq!(fine, "false");
        assert!(!accounts.doomed(), "an error that is not a memory error");
        assert!(matches!(accounts.leave(&lua, 1, false), Verdict::Fine));
        // Run again: a memory error its code replaced, and a resume that
        // did not raise (`oom` false).
        accounts.enter(&lua, 1, false);
        let caught: String = lua.load(SWALLOWED).eval().expect("ran");
        assert_eq!(caught, "false swallowed");
        assert!(
            accounts.doomed(),
            "the pcalls above must let any error through"
        );
        match accounts.leave(&lua, 1, false) {
            Verdict::Kill(ErrorKind::RateLimited, reason) => {
                assert!(
                    reason.contains("did not fit in the memory_per_process"),
                    "{reason}"
                );
            }
            _ => panic!("not ended for its memory error"),
        }
        // Between processes, and in its next run, nothing is left of it.
        assert!(!accounts.doomed());
        accounts.enter(&lua, 1, false);
        assert!(!accounts.doomed());
        assert!(matches!(accounts.leave(&lua, 1, false), Verdict::Fine));
    }

    /// A chained enter starts the run where the last leave read the
    /// clock (the gap between is charged to it); an unchained one reads
    /// the clock itself, and also drops what a leave left for a chain, so
    /// a later chained enter cannot start a run at a stale time.
    #[test]
    fn only_a_chained_enter_starts_its_run_where_the_last_leave_did() {
        let lua = Lua::new();
        let mut accounts = counting(&lua);
        accounts.open(1);
        accounts.open(2);
        let gap = Duration::from_millis(30);
        let charged = |accounts: &Accounts, id| accounts.accounts[&id].cpu;
        accounts.enter(&lua, 1, false);
        assert!(matches!(accounts.leave(&lua, 1, false), Verdict::Fine));
        std::thread::sleep(gap);
        accounts.enter(&lua, 2, true);
        assert!(matches!(accounts.leave(&lua, 2, false), Verdict::Fine));
        assert!(charged(&accounts, 2) >= gap, "{:?}", charged(&accounts, 2));
        // Unchained: the gap is no one's.
        std::thread::sleep(gap);
        accounts.enter(&lua, 1, false);
        assert!(matches!(accounts.leave(&lua, 1, false), Verdict::Fine));
        assert!(charged(&accounts, 1) < gap, "{:?}", charged(&accounts, 1));
        // A leave's time, dropped by an unchained enter, is not taken later.
        std::thread::sleep(gap);
        accounts.enter(&lua, 1, false);
        std::thread::sleep(gap);
        accounts.enter(&lua, 2, true); // (a run never left: as the host)
        assert!(
            accounts.running.as_ref().expect("running").since.elapsed() < gap,
            "a chained enter took a dropped leave's time"
        );
    }

    /// A front-end run holds one run in its host's count from its first
    /// resume to its end, whatever resumes it makes: another worker's
    /// run meanwhile gets half of what is left, and the whole once the
    /// run ended (or the VM went away mid-run).
    #[test]
    fn a_front_end_run_holds_one_host_run_until_it_ends() {
        let lua = Lua::new();
        let quota = Arc::new(HostQuota::default());
        // What another worker's run may grow into, that run then ended.
        let other = || {
            let room = quota.begin_run();
            quota.end_run();
            room
        };
        let mut accounts = Accounts::new(quota.clone());
        accounts.open(1);
        accounts.open(2);
        assert_eq!(other(), quota.memory_room());
        for id in [1, 2, 1] {
            accounts.enter(&lua, id, false);
            assert_eq!(other(), quota.memory_room() / 2, "in a resume of {id}");
            assert!(matches!(accounts.leave(&lua, id, false), Verdict::Fine));
            assert_eq!(other(), quota.memory_room() / 2, "between resumes");
        }
        accounts.end_host_run();
        assert_eq!(other(), quota.memory_room());
        accounts.end_host_run(); // nothing more to give back
        assert_eq!(other(), quota.memory_room());
        accounts.enter(&lua, 2, false);
        drop(accounts);
        assert_eq!(other(), quota.memory_room(), "a VM gone mid-run");
    }

    #[test]
    fn collector_time_is_not_charged_to_the_running_process() {
        let run = started();
        // A collection of 40 ms while it runs, as the patched Lua reports it.
        crate::gctime::on_gc(std::ptr::null_mut(), 1);
        std::thread::sleep(Duration::from_millis(40));
        crate::gctime::on_gc(std::ptr::null_mut(), 0);
        assert!(run.since.elapsed() >= Duration::from_millis(40));
        assert!(run.collecting() >= Duration::from_millis(40));
        assert!(
            run.cpu_used(None) < Duration::from_millis(40),
            "charged {:?} of a collection",
            run.cpu_used(None)
        );
    }

    #[test]
    fn os_clock_never_goes_back() {
        std::thread::spawn(|| {
            let slot = crate::watchdog::register().expect("a slot");
            let mut accounts = Accounts::new(Arc::new(HostQuota::default()));
            accounts.watched_by(slot.clone());
            accounts.accounts.insert(1, Account::default());
            accounts.running = Some(started());
            slot.enter();
            let busy = Instant::now();
            while busy.elapsed() < Duration::from_millis(60) {
                std::hint::spin_loop();
            }
            let a = accounts.os_clock(1);
            // A collection while the worker sleeps: the run's time is its
            // CPU time as the watchdog saw it (which stays) less the
            // collector's wall time (which grows), so the raw clock can
            // fall; what os.clock answers cannot.
            crate::gctime::on_gc(std::ptr::null_mut(), 1);
            std::thread::sleep(Duration::from_millis(40));
            crate::gctime::on_gc(std::ptr::null_mut(), 0);
            let b = accounts.os_clock(1);
            assert!(b >= a, "os.clock went from {a:?} back to {b:?}");
            // Whatever the clocks did: never below an earlier answer.
            let later = Duration::from_secs(3600);
            accounts.accounts.get_mut(&1).expect("account").clock_seen = later;
            assert_eq!(accounts.os_clock(1), later);
            slot.leave();
            slot.retire();
        })
        .join()
        .expect("the measuring thread passes");
    }

    #[test]
    fn a_run_without_a_budget_is_not_charged_for_waiting() {
        std::thread::spawn(|| {
            let slot = crate::watchdog::register().expect("a slot");
            let run = started();
            slot.enter();
            // The worker waits (as one waiting for a core does): 300 ms of
            // wall time, next to no CPU.
            std::thread::sleep(Duration::from_millis(300));
            assert!(run.cpu_used(None) >= Duration::from_millis(300));
            let charged = run.cpu_used(Some(&slot));
            assert!(
                charged < Duration::from_millis(100),
                "charged {charged:?} for a wait"
            );
            slot.leave();
            slot.retire();
        })
        .join()
        .expect("the measuring thread passes");
    }

    #[test]
    fn a_single_walk_never_parks() {
        let mut account = Account::default();
        let walk = Duration::from_millis(50);
        assert_eq!(park_for(&mut account, walk, Instant::now()), None);
        // The next walk long after (its debt paid back meanwhile).
        let later = Instant::now() + Duration::from_secs(1);
        assert_eq!(park_for(&mut account, walk, later), None);
    }

    #[test]
    fn a_walk_soon_after_another_parks_for_the_debt() {
        let mut account = Account::default();
        let walk = Duration::from_millis(10);
        let t0 = Instant::now();
        assert_eq!(park_for(&mut account, walk, t0), None);
        // 12 ms later: the second walk (10 ms) started 2 ms after the
        // first ended, 28 ms of the first's 30 still owed.
        let park = park_for(&mut account, walk, t0 + Duration::from_millis(12));
        assert_eq!(park, Some(Duration::from_millis(58)));
        // Parked that long, the debt is paid: the next walk starts afresh.
        let after = t0 + Duration::from_millis(12 + 58 + 10);
        assert_eq!(park_for(&mut account, walk, after), None);
    }

    #[test]
    fn walks_too_short_to_matter_never_park() {
        let mut account = Account::default();
        let walk = Duration::from_micros(100);
        let t0 = Instant::now();
        assert_eq!(park_for(&mut account, walk, t0), None);
        let next = t0 + Duration::from_micros(150);
        assert_eq!(park_for(&mut account, walk, next), None);
    }
}

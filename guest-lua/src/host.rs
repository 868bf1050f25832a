//! The VM on one worker: builds the sandbox, loads the kernel, and provides
//! the host functions (`H.*`) through which the kernel reaches the process
//! model. Host functions never panic on bad input: they return
//! `false, kind, message` for failures a process should see as `nil, err`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mlua::state::{GcGenParams, GcMode};
use mlua::{
    Function, IntoLua, IntoLuaMulti, LightUserData, Lua, LuaOptions, LuaString, MultiValue, StdLib,
    Table, Value as LuaValue, Variadic,
};
use rustc_hash::FxHashMap;
use warren_core::{
    CoreRef, ErrorKind, Event, Exit, Frontend, Item, Pid, ProcError, Program, ServiceCommand,
    SpawnRequest, Value, duration,
};

use crate::convert::{Budget, Converter, from_lua, to_lua, to_lua_with_errors};
use crate::gctime::KernelTables;
use crate::outcome::Outcome;
use crate::preempt::Preemption;
use crate::program::LuaProgram;
use crate::quota::{Accounts, Verdict};
use crate::step::Stepper;
use crate::watchdog::Slot;
use crate::{json, timefmt};
use tracing::Level;

const KERNEL: &str = crate::kernel::SOURCE;

/// A worker's Lua VM and its kernel.
pub(crate) struct LuaVm {
    lua: Lua,
    run: Function,
    accounts: Rc<RefCell<Accounts>>,
    /// The VM's size after its last idle collection (see `collect_if_grown`).
    after_gc: usize,
    /// When its last collection with no process left ended, and how long
    /// it took (see [`EMPTY_GC_SPACING`]).
    emptied: (Instant, Duration),
    /// Declared after the VM: the hook's state outlives it.
    _preemption: Preemption,
    /// The kernel's big tables, whose growth is charged to no process.
    _kernel_tables: Rc<RefCell<KernelTables>>,
    /// Declared after the VM: the kernel's step function points to it.
    _stepper: Box<Stepper>,
}

/// Stands in for a VM that failed to start: fails every process sent to it.
pub(crate) struct Broken {
    pub core: CoreRef,
    pub index: usize,
    pub error: String,
}

impl Frontend for Broken {
    fn run(&mut self, _budget: u32) -> bool {
        let mut core = self.core.borrow_mut();
        while let Some((pid, _)) = core.next_item(self.index) {
            let message = format!("the Lua VM of this worker failed to start: {}", self.error);
            core.exit(pid, Err(ProcError::new(ErrorKind::Unavailable, message)));
        }
        false
    }
}

impl Frontend for LuaVm {
    fn run(&mut self, budget: u32) -> bool {
        let ran = self.run.call::<bool>(budget);
        if let Ok(mut accounts) = self.accounts.try_borrow_mut() {
            accounts.end_host_run();
        }
        match ran {
            Ok(more) => {
                if !more {
                    self.collect_if_grown();
                }
                more
            }
            Err(err) => {
                tracing::error!("Lua kernel error: {err}");
                true
            }
        }
    }
}

pub(crate) fn pid_of(raw: i64) -> Pid {
    Pid::from_u64(u64::try_from(raw).unwrap_or(0))
}

fn lua_id(pid: Pid) -> i64 {
    i64::try_from(pid.as_u64()).unwrap_or(-1)
}

/// Per-VM state of `H.next`: compiled entries and interned strings, so a
/// stream of messages from one sender on one topic creates no new strings.
struct Entries {
    compiled: FxHashMap<String, (Arc<Program>, Table)>,
    /// The same entry tables by their program (a light userdata of the
    /// `Arc`'s pointer, which `compiled` keeps alive, so no key is reused
    /// while it is here): `H.entries`, which the kernel binds for the
    /// machine's start of a process (see [`crate::machine::start`]).
    by_program: Table,
    kinds: FxHashMap<&'static str, LuaString>,
    /// The set (`{ [name] = true }`) of each `modules:` list an entry of
    /// this VM has had, shared by the entries that list the same modules:
    /// the kernel only reads it (`require`). One per distinct list of the
    /// application's entries.
    module_sets: FxHashMap<Vec<String>, Table>,
    last_from: Option<(Pid, LuaString)>,
    last_topic: Option<(Arc<str>, LuaString)>,
    /// The kernel's error metatable (error objects are revived with it).
    error_mt: Option<Table>,
    /// The kernel's `new_entry` (looked up by name once, not per entry).
    new_entry: Option<Function>,
}

impl Entries {
    /// The kernel's error metatable, once the kernel has loaded.
    fn error_mt(&mut self, lua: &Lua) -> Option<Table> {
        if self.error_mt.is_none() {
            self.error_mt = lua.named_registry_value("warren.error_mt").ok();
        }
        self.error_mt.clone()
    }

    /// The kernel's `new_entry`, which makes an entry's record.
    fn new_entry(&mut self, lua: &Lua) -> mlua::Result<Function> {
        if let Some(f) = &self.new_entry {
            return Ok(f.clone());
        }
        let f: Function = lua.named_registry_value("warren.new_entry")?;
        self.new_entry = Some(f.clone());
        Ok(f)
    }

    fn kind(&mut self, lua: &Lua, name: &'static str) -> mlua::Result<LuaValue> {
        if let Some(s) = self.kinds.get(name) {
            return Ok(LuaValue::String(s.clone()));
        }
        let s = lua.create_string(name)?;
        self.kinds.insert(name, s.clone());
        Ok(LuaValue::String(s))
    }

    fn pid(&mut self, lua: &Lua, pid: Pid) -> mlua::Result<LuaValue> {
        match &self.last_from {
            Some((last, s)) if *last == pid => Ok(LuaValue::String(s.clone())),
            _ => {
                let s = lua.create_string(pid.text().as_str())?;
                self.last_from = Some((pid, s.clone()));
                Ok(LuaValue::String(s))
            }
        }
    }

    fn topic(&mut self, lua: &Lua, topic: &Arc<str>) -> mlua::Result<LuaValue> {
        match &self.last_topic {
            Some((last, s)) if **last == **topic => Ok(LuaValue::String(s.clone())),
            _ => {
                let s = lua.create_string(&**topic)?;
                self.last_topic = Some((topic.clone(), s.clone()));
                Ok(LuaValue::String(s))
            }
        }
    }
}

/// A VM with nothing to run collects its garbage in full once it has grown
/// past twice its size after the previous such collection and past this.
/// The garbage of processes that have exited is then given back while the
/// worker is idle (and the host's `memory_total` count follows), instead of
/// whenever a later burst of allocation makes Lua run a major collection.
const IDLE_GC_MIN: usize = 8 << 20;

/// A VM with nothing to run and no process left also collects once it has
/// grown by this much since its previous collection: the host's count
/// follows the VM to within this much (`quota::SYNC_GRANULE`), so the
/// garbage of the processes that ended on it then leaves that count at
/// once. Without it, 66 KB of an ended process's garbage stayed counted
/// against its host for as long as the worker idled. An empty VM holds the
/// kernel's data alone: such a collection takes a fraction of a
/// millisecond.
const EMPTY_GC_GROWTH: usize = crate::quota::SYNC_GRANULE as usize;

/// An empty VM collects again only once this many times the previous such
/// collection's duration has passed since it ended: a worker whose every
/// process ends before the next arrives (a process per request) spends at
/// most a tenth of its time on them (a quarter of a millisecond each for
/// the kernel's half a megabyte).
const EMPTY_GC_SPACING: u32 = 10;

impl LuaVm {
    fn collect_if_grown(&mut self) {
        let used = self.lua.used_memory();
        let grown = used > self.after_gc.saturating_mul(2).max(IDLE_GC_MIN);
        let (at, took) = self.emptied;
        let emptied = used > self.after_gc.saturating_add(EMPTY_GC_GROWTH)
            && at.elapsed() >= took * EMPTY_GC_SPACING
            && self.accounts.borrow().is_empty();
        if grown || emptied {
            let started = Instant::now();
            if let Err(err) = self.lua.gc_collect() {
                tracing::warn!("Lua collection failed: {err}");
            }
            if emptied {
                self.emptied = (Instant::now(), started.elapsed());
            }
            self.after_gc = self.lua.used_memory();
            self.accounts.borrow_mut().resync(&self.lua);
        }
    }

    pub(crate) fn new(core: CoreRef, index: usize) -> mlua::Result<Self> {
        let libs = StdLib::COROUTINE
            | StdLib::TABLE
            | StdLib::STRING
            | StdLib::UTF8
            | StdLib::MATH
            | StdLib::OS;
        crate::alloc::install();
        // SAFETY: the debug library is loaded only so that the kernel can keep
        // `debug.getmetatable`, to see through protected metatables when
        // copying, and the readers of frames and upvalues its measure walks
        // with; it is removed from the globals
        // below before any process code runs, and process code never sees the
        // VM's globals (each process has its own `_ENV`).
        let lua = unsafe { Lua::unsafe_new_with(libs | StdLib::DEBUG, LuaOptions::default()) };
        // Most kernel garbage (messages, waiters, events) dies young.
        lua.gc_set_mode(GcMode::Generational(GcGenParams::default()));
        let globals = lua.globals();
        let debug: Table = globals.get("debug")?;
        // SAFETY: `traceback` is a C function following the Lua C API.
        let traceback = unsafe { lua.create_c_function(crate::traceback::traceback)? };
        let raw_getmetatable: Function = debug.get("getmetatable")?;
        globals.set("debug", LuaValue::Nil)?;
        let h = lua.create_table()?;
        let accounts = Rc::new(RefCell::new(Accounts::new(core.borrow().quota().clone())));
        let mut main = std::ptr::null_mut();
        // SAFETY: called here, outside any callback, `exec_raw` hands over
        // the VM's main state, which lives as long as the VM; the closure
        // only keeps the pointer.
        unsafe {
            lua.exec_raw::<()>((), |l| main = l)?;
            accounts
                .borrow_mut()
                .counting(crate::quota::Grown::of(main));
        }
        register(&lua, &h, core.clone(), index, &accounts)?;
        let slice = core.borrow().quota().limits.cpu_slice;
        crate::gctime::install();
        crate::emergency::install();
        let kernel_tables = Rc::new(RefCell::new(KernelTables::default()));
        let tables = kernel_tables.clone();
        let name_tables = lua.create_function(move |_, list: Variadic<LuaValue>| {
            let mut tables = tables.borrow_mut();
            for (i, t) in list.iter().enumerate() {
                match t {
                    LuaValue::Table(t) => tables.add(t.to_pointer()),
                    other => {
                        let got = other.type_name();
                        let msg = format!("H.kernel_tables: argument {} is a {got}", i + 1);
                        return Err(mlua::Error::runtime(msg));
                    }
                }
            }
            Ok(())
        })?;
        h.set("kernel_tables", name_tables)?;
        let preemption = crate::preempt::install(&lua, &h, KERNEL, slice, accounts.clone())?;
        accounts.borrow_mut().watched_by(preemption.slot().clone());
        let stepper = register_accounts(&lua, &h, &core, index, &accounts, preemption.slot())?;
        crate::io::register_raw(&lua, &h, &stepper)?;
        // SAFETY: `stepper` is the VM's own, which outlives its functions.
        h.set("spawn_plain", unsafe {
            crate::io::raw::push(&lua, &stepper, crate::plain::spawn_plain)
        }?)?;
        // SAFETY: as above.
        h.set("send_plain", unsafe {
            crate::io::raw::push(&lua, &stepper, crate::plain::send_plain)
        }?)?;
        lua.set_app_data(crate::quota::EngineMeters(accounts.clone()));
        lua.set_app_data(TypeBudget(crate::preempt::budget_check(
            accounts.clone(),
            slice,
            preemption.slot().clone(),
        )));

        let kernel: Table = lua
            .load(KERNEL)
            .set_name(crate::preempt::KERNEL_CHUNK)
            .call((h.clone(), traceback, raw_getmetatable, debug))?;
        let new_entry: Function = kernel.get("new_entry")?;
        lua.set_named_registry_value("warren.new_entry", new_entry)?;
        let error_mt: Table = kernel.get("error_mt")?;
        lua.set_named_registry_value("warren.error_mt", error_mt)?;
        for name in ["dofile", "loadfile", "require", "package", "io"] {
            globals.set(name, LuaValue::Nil)?;
        }
        let run: Function = kernel.get("run")?;
        Ok(LuaVm {
            after_gc: lua.used_memory(),
            emptied: (Instant::now(), Duration::ZERO),
            lua,
            run,
            accounts,
            _preemption: preemption,
            _kernel_tables: kernel_tables,
            _stepper: stepper,
        })
    }
}

/// `H.machine`, `H.verdict`, `H.leave`, `H.consumed` and `H.measured` (see
/// [`crate::quota`] and [`crate::step`]): a step and `H.leave` count in the
/// watchdog's `slot`, `H.consumed(id, n)` reports messages the kernel's
/// Lua took out of a mailbox (the machine reports its own as it takes
/// them); an exit forgets the process's account. Returns the steps'
/// state, which the VM keeps.
fn register_accounts(
    lua: &Lua,
    h: &Table,
    core: &CoreRef,
    index: usize,
    accounts: &Rc<RefCell<Accounts>>,
    slot: &Arc<Slot>,
) -> mlua::Result<Box<Stepper>> {
    fn verdict(lua: &Lua, v: Verdict) -> mlua::Result<MultiValue> {
        match v {
            Verdict::Fine => ().into_lua_multi(lua),
            Verdict::Measure => true.into_lua_multi(lua),
            // Fine; parked this many nanoseconds (only from `H.measured`).
            Verdict::Park(d) => {
                let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
                (LuaValue::Nil, LuaValue::Nil, ns).into_lua_multi(lua)
            }
            Verdict::Kill(kind, message) => (kind.name(), message).into_lua_multi(lua),
        }
    }
    let stepper = Box::new(Stepper::new(
        accounts.clone(),
        slot.clone(),
        core.clone(),
        index,
    ));
    register_step(lua, h, &stepper)?;
    let (a, s) = (accounts.clone(), slot.clone());
    let leave = lua.create_function(move |lua, (id, oom): (i64, bool)| {
        // Charged before the slot says the run is over: the watchdog's
        // measure of the run's CPU counts only while it lasts.
        let v = a.borrow_mut().leave(lua, id, oom);
        s.leave();
        verdict(lua, v)
    })?;
    h.set("leave", leave)?;
    let c = core.clone();
    let consumed = lua.create_function(move |_, (id, n): (i64, u32)| {
        if n > 0
            && let Ok(mut core) = c.try_borrow_mut()
        {
            core.consumed(pid_of(id), n);
        }
        Ok(())
    })?;
    h.set("consumed", consumed)?;
    let a = accounts.clone();
    let measured = lua.create_function(move |lua, (id, bytes, exact): (i64, f64, bool)| {
        // Sizes arrive as floats (the kernel sums estimates); saturating casts.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a size estimate"
        )]
        let bytes = bytes.max(0.0) as u64;
        let v = a.borrow_mut().measured(id, bytes, exact);
        verdict(lua, v)
    })?;
    h.set("measured", measured)?;
    let a = accounts.clone();
    let measure_start = lua.create_function(move |_, ()| {
        a.borrow_mut().measure_start();
        Ok(())
    })?;
    h.set("measure_start", measure_start)?;
    let a = accounts.clone();
    let unpark = lua.create_function(move |_, id: i64| {
        a.borrow_mut().unpark(id);
        Ok(())
    })?;
    h.set("unpark", unpark)?;
    let a = accounts.clone();
    let overdue = lua.create_function(move |_, ()| Ok(a.borrow_mut().take_overdue()))?;
    h.set("overdue", overdue)?;
    register_own_state(lua, h, accounts)?;
    let (a, c) = (accounts.clone(), core.clone());
    let exit = lua.create_function(
        move |lua, (me, ok, rest): (i64, bool, Variadic<LuaValue>)| {
            a.borrow_mut().remove(me);
            let max_bytes = c.borrow().quota().limits.max_message_bytes;
            let result = exit_result(lua, ok, &rest, max_bytes);
            c.borrow_mut().exit(pid_of(me), result);
            Ok(())
        },
    )?;
    h.set("exit", exit)?;
    Ok(stepper)
}

/// `H.machine` (see [`crate::machine`]), whose `resume_next` runs the
/// kernel's step (see [`crate::step`]), and `H.verdict()`, the kind and
/// reason of the step's last `false` verdict.
fn register_step(lua: &Lua, h: &Table, stepper: &Stepper) -> mlua::Result<()> {
    let raw = std::ptr::from_ref(stepper) as usize;
    // SAFETY: `raw` points to the VM's `Stepper`, which outlives the VM (a
    // field of `LuaVm` declared after it); the builder is pushed on the
    // stack `exec_raw` hands over and is its result.
    let machine = unsafe {
        lua.exec_raw::<Function>((), |l| {
            crate::machine::push_builder(l, &*(raw as *const Stepper));
        })
    }?;
    h.set("machine", machine)?;
    let verdict = lua.create_function(move |lua, ()| {
        // SAFETY: as above.
        let stepper = unsafe { &*(raw as *const Stepper) };
        match stepper.take_kill() {
            Some((kind, reason)) => (kind.name(), reason).into_lua_multi(lua),
            None => ().into_lua_multi(lua),
        }
    })?;
    h.set("verdict", verdict)
}

/// What a process would otherwise read from state its VM shares:
/// `H.random`/`H.randomseed` (its own generator), `H.clock` (its own run
/// time, for `os.clock`), `H.memory` (its own charge, for
/// `collectgarbage("count")`).
fn register_own_state(lua: &Lua, h: &Table, accounts: &Rc<RefCell<Accounts>>) -> mlua::Result<()> {
    let a = accounts.clone();
    let random = lua.create_function(move |_, (id, args): (i64, Variadic<LuaValue>)| {
        a.borrow_mut().rng(id).random(&args)
    })?;
    h.set("random", random)?;
    let a = accounts.clone();
    let seed = lua.create_function(move |_, (id, args): (i64, Variadic<LuaValue>)| {
        let (n1, n2) = crate::random::seed_parts(&args)?;
        a.borrow_mut().seed(id, crate::random::Rng::seeded(n1, n2));
        Ok((n1.cast_signed(), n2.cast_signed()))
    })?;
    h.set("randomseed", seed)?;
    let a = accounts.clone();
    let clock =
        lua.create_function(move |_, id: i64| Ok(a.borrow_mut().os_clock(id).as_secs_f64()))?;
    h.set("clock", clock)?;
    let a = accounts.clone();
    let memory = lua.create_function(move |lua, id: i64| {
        #[expect(
            clippy::cast_precision_loss,
            reason = "a size in KiB, as Lua reports it"
        )]
        let kib = a.borrow().charge(id, lua.used_memory()) as f64 / 1024.0;
        Ok(kib)
    })?;
    h.set("memory", memory)
}

fn register(
    lua: &Lua,
    h: &Table,
    core: CoreRef,
    index: usize,
    accounts: &Rc<RefCell<Accounts>>,
) -> mlua::Result<()> {
    register_next(lua, h, core.clone(), index, accounts.clone())?;
    register_messaging(lua, h, &core)?;
    register_lifecycle(lua, h, &core)?;
    register_registry(lua, h, &core)?;
    register_util(lua, h, &core)?;
    register_services(lua, h, &core)?;
    crate::modules::register(lua, h, &core)?;
    Ok(())
}

fn register_next(
    lua: &Lua,
    h: &Table,
    core: CoreRef,
    index: usize,
    accounts: Rc<RefCell<Accounts>>,
) -> mlua::Result<()> {
    let by_program = lua.create_table()?;
    h.set("entries", &by_program)?;
    let entries = Rc::new(RefCell::new(Entries {
        compiled: FxHashMap::default(),
        by_program: by_program.clone(),
        kinds: FxHashMap::default(),
        module_sets: FxHashMap::default(),
        last_from: None,
        last_topic: None,
        error_mt: None,
        new_entry: None,
    }));
    let (core_for_entry, entries_for_entry) = (core.clone(), entries.clone());
    let core_for_upgraded = core.clone();
    let next = lua.create_function(move |lua, ()| {
        loop {
            let item = core.borrow_mut().next_item(index);
            let Some((pid, item)) = item else {
                return Ok(MultiValue::new());
            };
            let received = match &item {
                Item::Msg(m) => m.wire_bytes(), // measured once, when sent
                Item::Done {
                    result: Ok(warren_core::OpValue::Value(v) | warren_core::OpValue::Kept(v, _)),
                    ..
                } => u64::try_from(warren_core::limits::wire_size(std::slice::from_ref(v)))
                    .unwrap_or(u64::MAX),
                Item::Event(event) => crate::quota::event_bytes(event),
                _ => 0,
            };
            let start = matches!(item, Item::Start { .. });
            let more = core.borrow().has_ready(index);
            match item_values(lua, &core, &entries, pid, item, more) {
                Ok(Some(values)) => {
                    if start {
                        accounts.borrow_mut().open(lua_id(pid));
                    }
                    if received > 0 {
                        // What a process is sent counts against it, and the
                        // host's count follows the VM's growth now.
                        let mut accounts = accounts.borrow_mut();
                        accounts.charge_received(lua_id(pid), received);
                        accounts.resync(lua);
                    }
                    return Ok(values);
                }
                Ok(None) => {}
                Err(err) => {
                    // Nothing a process sent reaches here unconvertible (the
                    // core refuses what Lua cannot hold); this is the VM out
                    // of memory. The process ends rather than waiting forever.
                    let message = format!("an item for this process could not be delivered: {err}");
                    tracing::error!(%pid, "{message}");
                    let reason = ProcError::new(ErrorKind::Internal, message);
                    let _ = core.borrow_mut().terminate(Pid::RUNTIME, pid, reason);
                }
            }
        }
    })?;
    h.set("next", next)?;
    // H.entry(id, me): entry `id` for `me`'s upgrade, checked as a spawn
    // of it is (`Core::may_run`) before anything says whether it exists.
    let entry = lua.create_function(move |lua, (id, me): (LuaString, i64)| {
        let id = id.to_str()?.to_owned();
        if let Err(e) = core_for_entry.borrow().may_run(pid_of(me), &id) {
            return (false, e.kind.name(), e.message).into_lua_multi(lua);
        }
        let Some(program) = core_for_entry.borrow().program(&id) else {
            return (false, "NOT_FOUND", format!("entry '{id}' not found")).into_lua_multi(lua);
        };
        if program.frontend != crate::program::FRONTEND_NAME {
            let msg = format!(
                "entry '{id}' is not a Lua program: hot upgrade is only supported for Lua processes"
            );
            return (false, "INVALID", msg).into_lua_multi(lua);
        }
        if core_for_entry.borrow().is_function(&id) {
            let msg = format!("entry '{id}' is a function.lua entry: it runs only as a call");
            return (false, "INVALID", msg).into_lua_multi(lua);
        }
        match entry_table(lua, &entries_for_entry, &program, || false) {
            Ok(table) => table.into_lua_multi(lua),
            Err(message) => (false, "INVALID", message).into_lua_multi(lua),
        }
    })?;
    h.set("entry", entry)?;
    // H.upgraded(me, id): `me` now runs entry `id` (what it may spawn).
    let upgraded = lua.create_function(move |_, (me, id): (i64, LuaString)| {
        core_for_upgraded
            .borrow_mut()
            .upgraded(pid_of(me), &id.to_str()?);
        Ok(())
    })?;
    h.set("upgraded", upgraded)
}

pub(crate) fn str_value(lua: &Lua, s: &str) -> mlua::Result<LuaValue> {
    Ok(LuaValue::String(lua.create_string(s)?))
}

fn item_values(
    lua: &Lua,
    core: &CoreRef,
    entries: &Rc<RefCell<Entries>>,
    pid: Pid,
    item: Item,
    more: bool,
) -> mlua::Result<Option<MultiValue>> {
    // Room for the usual items (a done: more, id, kind, op, ok, value; a
    // message of up to three payloads) without growing.
    let mut out = Vec::with_capacity(8);
    out.push(LuaValue::Boolean(more));
    out.push(LuaValue::Integer(lua_id(pid)));
    let error_mt = entries.borrow_mut().error_mt(lua);
    let conv = |v: &Value| match &error_mt {
        Some(mt) => to_lua_with_errors(lua, v, mt),
        None => to_lua(lua, v),
    };
    match item {
        Item::Start {
            program,
            args,
            context,
            ..
        } => {
            let function = || core.borrow().is_function(&program.id);
            let entry = match entry_table(lua, entries, &program, function) {
                Ok(t) => t,
                Err(message) => {
                    core.borrow_mut()
                        .exit(pid, Err(ProcError::new(ErrorKind::Invalid, message)));
                    return Ok(None);
                }
            };
            out.push(str_value(lua, "start")?);
            out.push(str_value(lua, pid.text().as_str())?);
            out.push(LuaValue::Table(entry));
            out.push(conv(&context)?);
            for arg in &args {
                out.push(conv(arg)?);
            }
        }
        Item::Msg(msg) => {
            let mut names = entries.borrow_mut();
            out.push(names.kind(lua, "msg")?);
            out.push(names.topic(lua, &msg.topic)?);
            out.push(names.pid(lua, msg.from)?);
            for payload in &msg.payloads {
                out.push(conv(&payload.to_value())?);
            }
        }
        Item::Event(event) => {
            out.push(str_value(lua, "event")?);
            event_values(lua, &mut out, event, &conv)?;
        }
        Item::Timer(id) => {
            out.push(str_value(lua, "timer")?);
            out.push(LuaValue::Integer(i64::try_from(id).unwrap_or(i64::MAX)));
        }
        Item::Kill(reason) => {
            out.push(str_value(lua, "kill")?);
            error_values(lua, &mut out, &reason, &conv)?;
        }
        // A read from the terminal (the only thing a Lua process awaits
        // outside the host) has completed.
        Item::Wake => out.push(str_value(lua, "wake")?),
        Item::Done { op, result } => {
            out.push(entries.borrow_mut().kind(lua, "done")?);
            out.push(LuaValue::Integer(i64::try_from(op).unwrap_or(i64::MAX)));
            done_values(lua, core, pid, &mut out, result, &conv)?;
        }
    }
    Ok(Some(MultiValue::from_vec(out)))
}

/// Converts a host value for a process (error objects revived).
type Conv<'a> = dyn Fn(&Value) -> mlua::Result<LuaValue> + 'a;

fn error_values(
    lua: &Lua,
    out: &mut Vec<LuaValue>,
    err: &ProcError,
    conv: &Conv<'_>,
) -> mlua::Result<()> {
    out.push(str_value(lua, err.kind.name())?);
    out.push(str_value(lua, &err.message)?);
    out.push(LuaValue::Boolean(err.retryable));
    out.push(match &err.details {
        Some(details) => conv(details)?,
        None => LuaValue::Nil,
    });
    Ok(())
}

/// A completed host call: `true, value` (a new resource as its handle id
/// in the process's table) or `false` and the error's fields.
fn done_values(
    lua: &Lua,
    core: &CoreRef,
    pid: Pid,
    out: &mut Vec<LuaValue>,
    result: warren_core::OpResult,
    conv: &Conv<'_>,
) -> mlua::Result<()> {
    let value = match result.map(warren_core::OpValue::into_data) {
        Ok(Ok((value, keep))) => {
            let converted = conv(&value)?;
            warren_core::bufpool::recycle(value);
            drop(keep); // the value is the process's own now
            Ok(converted)
        }
        Ok(Err(handle)) => core
            .borrow_mut()
            .add_handle(pid, handle)
            .map(|id| LuaValue::Integer(i64::try_from(id).unwrap_or(i64::MAX))),
        Err(err) => Err(err),
    };
    match value {
        Ok(value) => {
            out.push(LuaValue::Boolean(true));
            out.push(value);
        }
        Err(err) => {
            out.push(LuaValue::Boolean(false));
            error_values(lua, out, &err, conv)?;
        }
    }
    Ok(())
}

fn event_values(
    lua: &Lua,
    out: &mut Vec<LuaValue>,
    event: Event,
    conv: &Conv<'_>,
) -> mlua::Result<()> {
    let (kind, from, result) = match event {
        Event::Cancel { from, reason } => {
            out.push(str_value(lua, "CANCEL")?);
            out.push(str_value(lua, from.text().as_str())?);
            out.push(conv(&reason)?);
            return Ok(());
        }
        Event::Exit { from, result } => ("EXIT", from, result),
        Event::LinkDown { from, result } => ("LINK_DOWN", from, result),
    };
    out.push(str_value(lua, kind)?);
    out.push(str_value(lua, from.text().as_str())?);
    match result {
        Ok(value) => {
            out.push(LuaValue::Boolean(true));
            out.push(conv(&value)?);
        }
        Err(err) => {
            out.push(LuaValue::Boolean(false));
            error_values(lua, out, &err, conv)?;
        }
    }
    Ok(())
}

/// The kernel's entry record for `program`, compiling it on first use in this VM.
fn entry_table(
    lua: &Lua,
    entries: &Rc<RefCell<Entries>>,
    program: &Arc<Program>,
    function: impl FnOnce() -> bool,
) -> Result<Table, String> {
    if let Some((cached, table)) = entries.borrow().compiled.get(&program.id)
        && Arc::ptr_eq(cached, program)
    {
        return Ok(table.clone());
    }
    let code = program
        .code
        .downcast_ref::<LuaProgram>()
        .ok_or_else(|| format!("entry {} is not a Lua program", program.id))?;
    let compiled = code.compile(lua).map_err(|e| match e {
        mlua::Error::SyntaxError { message, .. } => message,
        other => other.to_string(),
    })?;
    let build = || -> Result<Table, String> {
        let new_entry = entries
            .borrow_mut()
            .new_entry(lua)
            .map_err(|e| e.to_string())?;
        let imports = library_tables(lua, entries, &new_entry, &code.imports, 0)?;
        let types = type_values(lua, compiled.types.as_ref())?;
        let modules = module_set(lua, entries, &code.modules).map_err(|e| e.to_string())?;
        new_entry
            .call((
                program.id.as_str(),
                compiled.chunk,
                code.method.as_str(),
                modules,
                imports,
                types,
            ))
            .map_err(|e| e.to_string())
    };
    let table = build()?;
    if function() {
        // The kernel reads it raw: a function call's raised text is INTERNAL.
        table.raw_set("func", true).map_err(|e| e.to_string())?;
    }
    let mut entries = entries.borrow_mut();
    // A key leaves `by_program` before its program leaves `compiled` (the
    // pointer of a dropped program could be another's later).
    let key = |p: &Arc<Program>| LightUserData(Arc::as_ptr(p).cast_mut().cast());
    let by_program = entries.by_program.clone();
    if let Some((old, _)) = entries.compiled.get(&program.id) {
        by_program
            .raw_set(key(old), LuaValue::Nil)
            .map_err(|e| e.to_string())?;
    }
    by_program
        .raw_set(key(program), &table)
        .map_err(|e| e.to_string())?;
    entries
        .compiled
        .insert(program.id.clone(), (program.clone(), table.clone()));
    Ok(table)
}

/// The set of `modules` (`{ [name] = true }`) for a new entry: the one
/// made for an earlier entry with the same list, else a new one, kept.
fn module_set(
    lua: &Lua,
    entries: &Rc<RefCell<Entries>>,
    modules: &[String],
) -> mlua::Result<Table> {
    if let Some(set) = entries.borrow().module_sets.get(modules) {
        return Ok(set.clone());
    }
    let set = lua.create_table_with_capacity(0, modules.len())?;
    for name in modules {
        set.raw_set(name.as_str(), true)?;
    }
    entries
        .borrow_mut()
        .module_sets
        .insert(modules.to_vec(), set.clone());
    Ok(set)
}

/// The `__warren_types` table of a chunk that reads types as values (built
/// once per entry per VM; validation polls the running process's budget).
pub(crate) fn type_values(
    lua: &Lua,
    types: Option<&Arc<warren_lua_dialect::TypeTable>>,
) -> Result<LuaValue, String> {
    let Some(types) = types else {
        return Ok(LuaValue::Nil);
    };
    let budget = lua
        .app_data_ref::<TypeBudget>()
        .map(|b| b.0.clone())
        .ok_or("the VM has no type budget")?;
    crate::types::types_table(lua, types, budget)
        .map(LuaValue::Table)
        .map_err(|e| e.to_string())
}

/// What a type validation asks every 4,096 values: the reason the running
/// process must stop (its CPU budget, or stuck past the limit), if any.
pub(crate) struct TypeBudget(pub(crate) Rc<dyn Fn() -> Option<String>>);

/// Deepest chain of library imports compiled (the configuration refuses
/// cycles; this bounds the recursion whatever it is given).
const MAX_IMPORT_DEPTH: usize = 32;

/// The kernel's records of the libraries `imports` names, alias → record,
/// compiled now (a syntax error names the library's file and line).
fn library_tables(
    lua: &Lua,
    entries: &Rc<RefCell<Entries>>,
    new_entry: &Function,
    imports: &[(String, Arc<crate::program::LuaLibrary>)],
    depth: usize,
) -> Result<Table, String> {
    if depth > MAX_IMPORT_DEPTH {
        return Err(format!(
            "imports nest deeper than {MAX_IMPORT_DEPTH} libraries"
        ));
    }
    let table = lua.create_table().map_err(|e| e.to_string())?;
    for (alias, lib) in imports {
        let compiled = lib.compile(lua).map_err(|e| match e {
            mlua::Error::SyntaxError { message, .. } => message,
            other => other.to_string(),
        })?;
        let nested = library_tables(lua, entries, new_entry, &lib.imports, depth + 1)?;
        let types = type_values(lua, compiled.types.as_ref())?;
        let modules = module_set(lua, entries, &lib.modules).map_err(|e| e.to_string())?;
        let record: Table = new_entry
            .call((lib.id.as_str(), compiled.chunk, "", modules, nested, types))
            .map_err(|e| e.to_string())?;
        table
            .raw_set(alias.as_str(), record)
            .map_err(|e| e.to_string())?;
    }
    Ok(table)
}

/// Copies a message's payloads (or a spawn's arguments) out of the VM,
/// all within one budget of `max_bytes`.
fn payloads(
    lua: &Lua,
    values: Variadic<LuaValue>,
    root: &str,
    max_bytes: usize,
) -> Result<Vec<Value>, ProcError> {
    let mut converter = Converter::new(Budget::message(max_bytes));
    convert_all(lua, &mut converter, &values, root, max_bytes)
}

/// Copies `values` with `converter` (whose budget is `max_bytes`).
pub(crate) fn convert_all(
    lua: &Lua,
    converter: &mut Converter,
    values: &[LuaValue],
    root: &str,
    max_bytes: usize,
) -> Result<Vec<Value>, ProcError> {
    let many = values.len() > 1;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let name = if many {
                format!("{root}[{}]", i + 1)
            } else {
                root.to_owned()
            };
            converter
                .convert(lua, v, &name)
                .map_err(|e| convert_failure(&e, root, max_bytes))
        })
        .collect()
}

/// The `INVALID` refusal for a copy under `root` ("argument", "context"
/// or a payload) that failed with `e` against a budget of `max_bytes`.
pub(crate) fn convert_failure(e: &crate::ConvertError, root: &str, max_bytes: usize) -> ProcError {
    let what = match root {
        "argument" => "spawn arguments",
        "context" => "spawn context",
        _ => "message payloads",
    };
    // Over the budget by bytes: the size. By its tables or the slots they
    // hold, the count: "payloads of 327685 bytes exceed 1048576" named
    // the wrong bound.
    let message = if e.over_budget && e.counted > max_bytes {
        warren_core::error::too_large(what, e.counted, max_bytes)
    } else if e.over_budget {
        format!("{what}: {e}")
    } else {
        e.to_string()
    };
    ProcError::new(ErrorKind::Invalid, message)
}

fn register_messaging(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    let send =
        move |lua: &Lua,
              (me, dest, topic, rest): (i64, LuaString, LuaString, Variadic<LuaValue>)| {
            let result = (|| -> Result<bool, Wrapped> {
                // Permission first, then a copy bounded by the limit.
                let to = c.borrow().resolve(pid_of(me), &dest.to_str()?)?;
                c.borrow().check_reach("send", pid_of(me), to)?;
                let budget = c.borrow().message_budget(pid_of(me), to);
                let payloads = payloads(lua, rest, "payload", budget)?;
                let payloads = payloads
                    .into_iter()
                    .map(warren_core::Payload::Value)
                    .collect();
                c.borrow_mut()
                    .send(pid_of(me), to, &topic.to_str()?, payloads)?;
                Ok(true)
            })();
            ok_or_failure(lua, result)
        };
    h.set("send", lua.create_function(send)?)?;
    // SAFETY: `copy` is a `lua_CFunction` that reads its own frame with
    // raw accessors only (see its module).
    h.set("copy", unsafe { lua.create_c_function(crate::copy::copy)? })?;
    // SAFETY: as `copy`.
    h.set("table_slots", unsafe {
        lua.create_c_function(crate::copy::table_slots)?
    })?;
    let c = core.clone();
    // H.spawn(me, entry, host, link, monitor, context, ...): the context
    // (a table or nil) and the arguments share one budget.
    type SpawnArgs = (
        i64,
        LuaString,
        LuaString,
        bool,
        bool,
        LuaValue,
        Variadic<LuaValue>,
    );
    let spawn = move |lua: &Lua, (me, entry, host, link, monitor, ctx, rest): SpawnArgs| {
        let result = (|| -> Result<LuaString, Wrapped> {
            let (entry, host) = (entry.to_str()?.to_owned(), host.to_str()?.to_owned());
            let budget = c.borrow().spawn_budget(pid_of(me), &entry, &host)?;
            let mut converter = Converter::new(Budget::message(budget));
            let context = match ctx {
                LuaValue::Nil => Value::Nil,
                ctx => convert_all(lua, &mut converter, &[ctx], "context", budget)?
                    .pop()
                    .unwrap_or(Value::Nil),
            };
            let args = convert_all(lua, &mut converter, &rest, "argument", budget)?;
            let mut req = SpawnRequest::new(entry, host, args);
            req.link = link;
            req.monitor = monitor;
            req.context = context;
            let pid = c.borrow_mut().spawn(pid_of(me), req)?;
            Ok(lua.create_string(pid.text().as_str())?)
        })();
        ok_or_failure(lua, result)
    };
    h.set("spawn", lua.create_function(spawn)?)?;
    register_mailbox(lua, h, core)
}

/// `H.admit(to, bytes)` counts a send inside this VM against the
/// receiver's `mailbox_limit` and `mailbox_bytes`; each take is reported
/// as it happens (`Stepper::consumed`, `H.consumed`).
fn register_mailbox(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    let admit = lua.create_function(move |lua, (to, bytes): (i64, i64)| {
        // The payloads' wire size as the kernel's copy counted it, and
        // what the host adds for each message.
        let bytes = u64::try_from(bytes)
            .unwrap_or(0)
            .saturating_add(warren_core::limits::PAYLOAD_OVERHEAD as u64);
        let admitted = c.borrow_mut().admit_local(pid_of(to), bytes);
        ok_or_failure(lua, admitted.map(|()| true))
    })?;
    h.set("admit", admit)?;
    let c = core.clone();
    let waiting = lua.create_function(move |_, to: i64| {
        Ok(c.try_borrow()
            .map_or(true, |core| core.items_waiting(pid_of(to))))
    })?;
    h.set("items_waiting", waiting)?;
    let limit = core.borrow().quota().limits.max_message_bytes;
    h.set(
        "max_message_bytes",
        i64::try_from(limit).unwrap_or(i64::MAX),
    )?;
    // The measure of a process stops once it has found this much.
    let memory = core.borrow().quota().limits.memory_per_process;
    h.set(
        "memory_per_process",
        i64::try_from(memory).unwrap_or(i64::MAX),
    )?;
    // The kernel's copy refuses nesting as deep as the host's conversion.
    h.set("max_depth", crate::convert::MAX_DEPTH)
}

/// The text of a name or pid a process passed: names and pids are UTF-8,
/// so bytes that are not name nothing; `INVALID` saying so (the
/// conversion's own error named neither the call nor the value).
fn name_text(s: &LuaString) -> Result<mlua::BorrowedStr, ProcError> {
    s.to_str().map_err(|_| {
        let bytes = s.as_bytes();
        let head = &bytes[..bytes.len().min(256)]; // not the whole string
        let shown: String = String::from_utf8_lossy(head).chars().take(64).collect();
        ProcError::new(
            ErrorKind::Invalid,
            format!("{shown:?} is not valid UTF-8: no process name or pid is"),
        )
    })
}

impl From<mlua::Error> for Wrapped {
    fn from(err: mlua::Error) -> Self {
        Wrapped(ProcError::new(ErrorKind::Invalid, err.to_string()))
    }
}

/// Lets `?` mix mlua and host errors inside host functions.
pub(crate) struct Wrapped(pub(crate) ProcError);

impl From<ProcError> for Wrapped {
    fn from(err: ProcError) -> Self {
        Wrapped(err)
    }
}

/// `value`, or `false, kind, message, retryable` (see [`Outcome`]).
pub(crate) fn ok_or_failure<T: IntoLua>(
    _lua: &Lua,
    result: Result<T, impl Into<Wrapped>>,
) -> mlua::Result<Outcome<(T,)>> {
    Ok(match result {
        Ok(value) => Outcome::Done((value,)),
        Err(err) => Outcome::failed(&err.into().0),
    })
}

fn register_lifecycle(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    type Op = fn(&Lua, &mut warren_core::Core, Pid, Pid, LuaValue) -> Result<(), ProcError>;
    let ops: [(&str, Op); 7] = [
        ("link", |_, c, me, pid, _| c.link(me, pid)),
        ("unlink", |_, c, me, pid, _| c.unlink(me, pid)),
        ("monitor", |_, c, me, pid, _| c.monitor(me, pid)),
        ("unmonitor", |_, c, me, pid, _| c.unmonitor(me, pid)),
        ("cancel", |lua, c, me, pid, reason| {
            c.check_reach("cancel", me, pid)?;
            let budget = Budget::message(c.message_budget(me, pid));
            let reason = from_lua(lua, &reason, "reason", budget)
                .map_err(|e| ProcError::new(ErrorKind::Invalid, e.to_string()))?;
            c.cancel(me, pid, reason)
        }),
        ("terminate", |_, c, me, pid, _| {
            c.terminate(me, pid, ProcError::terminated())
        }),
        // `process.exec`'s child: terminated if its caller ends first.
        ("exec_waits_on", |_, c, me, pid, _| {
            c.exec_waits_on(me, pid);
            Ok(())
        }),
    ];
    for (name, op) in ops {
        let c = core.clone();
        let f = lua.create_function(
            move |lua, (me, target, extra): (i64, LuaString, LuaValue)| {
                let result = (|| -> Result<bool, Wrapped> {
                    let pid = c.borrow().resolve(pid_of(me), &name_text(&target)?)?;
                    op(lua, &mut c.borrow_mut(), pid_of(me), pid, extra)?;
                    Ok(true)
                })();
                ok_or_failure(lua, result)
            },
        )?;
        h.set(name, f)?;
    }
    let c = core.clone();
    let trap = lua.create_function(move |_, (me, set): (i64, Option<bool>)| {
        if let Some(trap) = set {
            c.borrow_mut().set_trap_links(pid_of(me), trap);
        }
        Ok(c.borrow().trap_links(pid_of(me)))
    })?;
    h.set("trap", trap)
}

/// A process's exit as the kernel reports it; the result and details are
/// copied within `max_bytes` (`max_message_bytes`: they reach monitors as
/// events), the message cut at [`warren_core::limits::MAX_EXIT_MESSAGE`] while it is copied
/// (the core cuts every front-end's too, `Core::exit`).
fn exit_result(lua: &Lua, ok: bool, rest: &[LuaValue], max_bytes: usize) -> Exit {
    let arg = |i: usize| rest.get(i).cloned().unwrap_or(LuaValue::Nil);
    let budget = Budget::message(max_bytes);
    if ok {
        return from_lua(lua, &arg(0), "result", budget)
            .map_err(|e| ProcError::new(ErrorKind::Invalid, e.to_string()));
    }
    let text = |v: LuaValue| match v {
        LuaValue::String(s) => {
            let bytes = s.as_bytes();
            let cut = &bytes[..bytes.len().min(warren_core::limits::MAX_EXIT_MESSAGE)];
            String::from_utf8_lossy(cut).into_owned()
        }
        LuaValue::Nil => String::new(),
        other => format!("({} value)", other.type_name()),
    };
    let mut err = ProcError::new(ErrorKind::from_name(&text(arg(0))), text(arg(1)));
    err.retryable = matches!(arg(2), LuaValue::Boolean(true));
    err.details = from_lua(lua, &arg(3), "details", budget)
        .ok()
        .filter(|d| *d != Value::Nil);
    Err(err)
}

fn register_registry(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    let register =
        lua.create_function(move |lua, (me, name, pid): (i64, LuaString, LuaString)| {
            let result = (|| -> Result<bool, Wrapped> {
                let pid = Pid::parse(&name_text(&pid)?).ok_or_else(|| {
                    ProcError::new(
                        ErrorKind::Invalid,
                        format!("{:?} is not a pid", pid.to_string_lossy()),
                    )
                })?;
                c.borrow_mut()
                    .register(pid_of(me), &name_text(&name)?, pid)?;
                Ok(true)
            })();
            ok_or_failure(lua, result)
        })?;
    h.set("register", register)?;
    let c = core.clone();
    let lookup = lua.create_function(move |lua, (me, name): (i64, LuaString)| {
        if name.as_bytes().len() > warren_core::registry::MAX_NAME_BYTES {
            return LuaValue::Nil.into_lua_multi(lua); // no name is this long: not read
        }
        let Ok(name) = name.to_str() else {
            return LuaValue::Nil.into_lua_multi(lua); // no name is not UTF-8
        };
        let found = c.borrow().lookup_for(pid_of(me), &name);
        match found {
            Ok(pid) => pid.map(|p| p.to_string()).into_lua_multi(lua),
            Err(err) => (LuaValue::Nil, err.kind.name(), err.message).into_lua_multi(lua),
        }
    })?;
    h.set("lookup", lookup)?;
    let c = core.clone();
    let unregister = lua.create_function(move |_, (me, name): (i64, LuaString)| {
        let Ok(name) = name.to_str() else {
            return Ok(false); // no name is not UTF-8: nothing to release
        };
        // The holder of a name may release it, and so may the process that
        // registered it for another pid: the core knows which.
        Ok(c.borrow_mut().unregister(pid_of(me), &name))
    })?;
    h.set("unregister", unregister)
}

/// The `services` module's host side. A process sees and steers only the
/// services of its own host: another tenant's services are not found.
fn register_services(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    let list = lua.create_function(move |lua, me: i64| {
        let Some(control) = c.borrow().services() else {
            return Ok(LuaValue::Nil);
        };
        let own = c.borrow().host_name(pid_of(me)).to_owned();
        let mine = control.list_host(&own);
        let out = lua.create_table_with_capacity(mine.len().min(1 << 16), 0)?;
        for (i, info) in mine.into_iter().enumerate() {
            out.raw_set(i + 1, service_table(lua, info)?)?;
        }
        Ok(LuaValue::Table(out))
    })?;
    h.set("services_list", list)?;
    // One service's status by id: `false` when the caller's host has no
    // such service (it walked every status, 66 ms at 20,000 services).
    let c = core.clone();
    let status = lua.create_function(move |lua, (me, id): (i64, LuaString)| {
        let Some(control) = c.borrow().services() else {
            return Ok(LuaValue::Nil);
        };
        let own = c.borrow().host_name(pid_of(me)).to_owned();
        match control.status(&id.to_str()?).filter(|s| s.host == own) {
            Some(info) => Ok(LuaValue::Table(service_table(lua, info)?)),
            None => Ok(LuaValue::Boolean(false)),
        }
    })?;
    h.set("services_status", status)?;
    let c = core.clone();
    let command = lua.create_function(move |lua, (me, id, cmd): (i64, LuaString, LuaString)| {
        let result = (|| -> Result<bool, Wrapped> {
            let control = c.borrow().services().ok_or_else(|| {
                ProcError::new(
                    ErrorKind::Unavailable,
                    "no services: the application runs without a supervisor",
                )
            })?;
            let id_text = id.to_str()?;
            let core = c.borrow();
            let own = core.host_name(pid_of(me));
            if control.status(&id_text).is_none_or(|s| s.host != own) {
                return Err(ProcError::new(
                    ErrorKind::NotFound,
                    format!("no service {:?} on host '{own}'", &*id_text),
                )
                .into());
            }
            drop(core);
            let command = match &*cmd.to_str()? {
                "start" => ServiceCommand::Start,
                "stop" => ServiceCommand::Stop,
                _ => ServiceCommand::Restart,
            };
            control.command(&id.to_str()?, command)?;
            Ok(true)
        })();
        ok_or_failure(lua, result)
    })?;
    h.set("services_command", command)
}

/// A service's status as the `services` module returns it.
fn service_table(lua: &Lua, info: warren_core::ServiceInfo) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 5)?;
    t.raw_set("id", info.id)?;
    t.raw_set("state", info.state)?;
    t.raw_set("pid", info.pid.map(|p| p.to_string()))?;
    t.raw_set("restarts", info.restarts)?;
    t.raw_set("reason", info.reason)?;
    Ok(t)
}

fn register_util(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    let log = lua.create_function(move |_, (me, level, msg): (i64, LuaString, LuaString)| {
        let pid = pid_of(me);
        let level = match &*level.to_str()? {
            "error" => Level::ERROR,
            "warn" => Level::WARN,
            "debug" => Level::DEBUG,
            _ => Level::INFO,
        };
        let msg = msg.to_string_lossy();
        // Cut and without line breaks (`warren_core::logline`), within its
        // host's log budget.
        let msg = warren_core::logline::log_line(&msg);
        let core = c.borrow();
        let quota = core.quota_of(pid);
        if !quota.admit_log(level, msg.len()) {
            return Ok(());
        }
        let host = &quota.name;
        match level {
            Level::ERROR => tracing::error!(target: "warren::lua", %pid, %host, "{msg}"),
            Level::WARN => tracing::warn!(target: "warren::lua", %pid, %host, "{msg}"),
            Level::DEBUG => tracing::debug!(target: "warren::lua", %pid, %host, "{msg}"),
            _ => tracing::info!(target: "warren::lua", %pid, %host, "{msg}"),
        }
        Ok(())
    })?;
    h.set("log", log)?;
    h.set("now", lua.create_function(|_, ()| Ok(unix_nanos()))?)?;
    h.set(
        "parse_duration",
        lua.create_function(|_, s: LuaString| {
            let len = s.as_bytes().len();
            if len > duration::MAX_TEXT_BYTES {
                // Refused before it is copied.
                return Ok((
                    None,
                    Some(duration::DurationError::TooLong(len).to_string()),
                ));
            }
            Ok(match duration::parse(&s.to_string_lossy()) {
                Ok(ns) => (Some(ns), None),
                Err(e) => (None, Some(e.to_string())),
            })
        })?,
    )?;
    h.set(
        "format_duration",
        lua.create_function(|_, ns: i64| Ok(duration::format(ns)))?,
    )?;
    h.set(
        "format_time",
        // The layout's bytes as text, each bad sequence one U+FFFD (a
        // layout cut mid-character raised the conversion's error).
        lua.create_function(|_, (ns, layout): (i64, LuaString)| {
            Ok(timefmt::format(ns, &layout.to_string_lossy()))
        })?,
    )?;
    // JSON text lands in the process's memory: at most its limit, and at
    // most MAX_JSON_BYTES, which bounds how long one encode holds the worker.
    let per_process = core.borrow().quota().limits.memory_per_process;
    let json_budget = Budget {
        bytes: usize::try_from(per_process.min(MAX_JSON_BYTES)).unwrap_or(usize::MAX),
        name: "the JSON limit",
        floor: JSON_VALUE_FLOOR,
    };
    h.set(
        "json_encode",
        lua.create_function(move |lua, v: LuaValue| {
            Ok(match json::encode(lua, &v, json_budget) {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e)),
            })
        })?,
    )?;
    let quota = core.borrow().quota().clone();
    h.set(
        "json_decode",
        lua.create_function(move |lua, s: LuaString| {
            // The tree is built in one host call that cannot be preempted.
            let bytes = s.as_bytes();
            if bytes.len() > MAX_JSON_DECODE {
                let e = format!(
                    "JSON text of {} bytes is over the {MAX_JSON_DECODE}-byte limit",
                    bytes.len()
                );
                return Ok((LuaValue::Nil, str_value(lua, &e)?));
            }
            // The tree lives in host memory while it is built and copied
            // into the VM: held against the host's total meanwhile.
            let held = (bytes.len() as u64).saturating_mul(JSON_TREE_FACTOR);
            if !quota.reserve_memory(held) {
                let e = format!(
                    "JSON text of {} bytes needs about {held} bytes of host '{}' to decode, more than is left of its memory_total ({} bytes)",
                    bytes.len(),
                    quota.name,
                    quota.limits.memory_total
                );
                return Ok((LuaValue::Nil, str_value(lua, &e)?));
            }
            let decoded = json::decode(&bytes);
            let out = match decoded {
                Ok(v) => to_lua(lua, &v).map(|v| (v, LuaValue::Nil)),
                Err(e) => str_value(lua, &e).map(|e| (LuaValue::Nil, e)),
            };
            quota.release_memory(held);
            out
        })?,
    )?;
    Ok(())
}

/// Most bytes `json.encode` copies out of a process (as `wire_size` counts
/// them): the copy runs inside one host call, so this bounds how long a
/// hostile table (one that shares a sub-table exponentially often, say) can
/// hold the worker, as well as the host memory the copy takes.
const MAX_JSON_BYTES: u64 = 2 << 20;

/// Least bytes of [`MAX_JSON_BYTES`] a value (or key) of `json.encode`
/// counts for: a boolean or nil counts as a number does, so at most about
/// 230,000 values, each of which takes some 70 bytes of host memory while
/// it is encoded (two trees and its text).
const JSON_VALUE_FLOOR: usize = 9;

/// Host bytes `json.decode` holds per byte of text while its tree exists:
/// a value of two or three bytes of text (`[],`) is a 32-byte `Value`
/// plus its vector's slack.
const JSON_TREE_FACTOR: u64 = 32;

/// Longest text `json.decode` takes: the value tree is built in one host
/// call, about 0.2 ms per KiB of dense input (`[[],[],...]`), so this keeps
/// that call well under the 250 ms a process may hold its worker.
const MAX_JSON_DECODE: usize = 512 << 10;

pub(crate) fn unix_nanos() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

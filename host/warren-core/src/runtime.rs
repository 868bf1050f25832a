//! The runtime: hosts (scheduler domains), their worker threads, the
//! directory, the registry and the loaded programs.
//!
//! A [`Runtime`] is built once with every host and front-end it needs, then
//! accepts spawns from outside (the CLI's main process, tests, services) and
//! reports exits to whoever waits for them. Dropping it stops every worker.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::directory::Directory;
use crate::error::{ProcError, SpawnError};
use crate::frontend::{FrontendFactory, Program};
use crate::grants::Grants;
use crate::item::Exit;
use crate::limits::{HostLimits, HostQuota, wire_size};
use crate::pid::Pid;
use crate::registry::Registry;
use crate::services::ServiceControl;
use crate::value::Value;
use crate::worker::{self, Cmd, Remote, SpawnCmd};

/// Spawn arguments of at least this many bytes (by `wire_size`) are held
/// against the spawner's `memory_total` until the child's front-end takes
/// them ([`crate::item::Held`]); smaller ones are bounded by the target's
/// `max_processes` (100,000 × 1 KiB).
pub const HELD_SPAWN_BYTES: usize = 1024;

/// A scheduler domain and tenant boundary (`kind: process.host`).
#[derive(Clone, Debug)]
pub struct HostSpec {
    /// The host's entry id, e.g. `app:processes`.
    pub name: String,
    /// Worker threads of this host (at least one).
    pub workers: usize,
    /// Its quotas.
    pub limits: HostLimits,
    /// A terminal host (`kind: terminal.host`): its processes may read
    /// stdin and write stdout through the `io` module.
    pub terminal: bool,
    /// What every process and function call on it holds, besides its
    /// entry's own grants.
    pub grants: Grants,
}

impl HostSpec {
    /// A host with `workers` threads and the default limits.
    pub fn new(name: impl Into<String>, workers: usize) -> Self {
        HostSpec {
            name: name.into(),
            workers,
            limits: HostLimits::default(),
            terminal: false,
            grants: Grants::default(),
        }
    }

    /// Makes it a terminal host.
    pub fn terminal(mut self) -> Self {
        self.terminal = true;
        self
    }

    /// Replaces the grants.
    pub fn with_grants(mut self, grants: Grants) -> Self {
        self.grants = grants;
        self
    }

    /// Replaces the limits.
    pub fn with_limits(mut self, limits: HostLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// What to spawn.
#[derive(Clone, Debug)]
pub struct SpawnRequest {
    /// The entry id.
    pub entry: String,
    /// The host id.
    pub host: String,
    /// Arguments to the entry's main function.
    pub args: Vec<Value>,
    /// Link the new process to its parent.
    pub link: bool,
    /// Make the parent monitor the new process.
    pub monitor: bool,
    /// Values the new process reads with the `ctx` module (a map; `Nil`
    /// for none), copied like its arguments and counted with them.
    pub context: Value,
    /// Whether it starts a function call (only a call may run a function
    /// entry, and only a call runs one).
    pub(crate) function: bool,
}

impl SpawnRequest {
    /// A plain spawn of `entry` on `host` with `args`.
    pub fn new(entry: impl Into<String>, host: impl Into<String>, args: Vec<Value>) -> Self {
        SpawnRequest {
            entry: entry.into(),
            host: host.into(),
            args,
            link: false,
            monitor: false,
            context: Value::Nil,
            function: false,
        }
    }
}

pub(crate) struct HostInfo {
    quota: Arc<HostQuota>,
    first_worker: usize,
    workers: usize,
    next: AtomicUsize,
    /// The serial of this host's next pid. One counter per host: with a
    /// runtime-wide one, the gaps between a tenant's own pids told it how
    /// fast every other tenant spawned.
    next_serial: AtomicU64,
}

/// Called once with the pid and its exit.
pub type ExitCallback = Box<dyn FnOnce(Pid, &Exit) + Send>;

type Watchers = FxHashMap<Pid, Vec<ExitCallback>>;

/// State every worker shares.
pub(crate) struct Shared {
    pub(crate) workers: Vec<Remote>,
    pub(crate) directory: Directory,
    pub(crate) registry: Registry,
    pub(crate) bus: crate::bus::Bus,
    pub(crate) factories: Vec<Arc<dyn FrontendFactory>>,
    pub(crate) entries: Arc<[crate::catalog::EntryInfo]>,
    pub(crate) services: std::sync::OnceLock<Arc<dyn ServiceControl>>,
    /// Shared state of modules (databases, the HTTP client), by type.
    pub(crate) extensions: Extensions,
    /// The [`crate::funcs::Functions`] extension, looked up once: every
    /// spawn asks whether its entry is a function.
    functions: Option<Arc<crate::funcs::Functions>>,
    hosts: Vec<HostInfo>,
    programs: RwLock<FxHashMap<String, Arc<Program>>>,
    /// How many times an entry was added or replaced while running: a
    /// worker's copies of entries are of one count (see
    /// `core::programs`).
    pub(crate) programs_generation: AtomicU64,
    watchers: Mutex<Watchers>,
    live: Mutex<usize>,
    idle: Condvar,
}

impl Shared {
    pub(crate) fn program(&self, id: &str) -> Option<Arc<Program>> {
        self.programs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    pub(crate) fn host_name(&self, host: u16) -> &str {
        self.hosts
            .get(usize::from(host))
            .map_or("?", |h| h.quota.name.as_str())
    }

    /// How many hosts the runtime has.
    pub(crate) fn host_count(&self) -> usize {
        self.hosts.len()
    }

    /// Whether host number `host` exists (a pid's host index is a guest's
    /// text: `<65535.1>` parses).
    pub(crate) fn has_host(&self, host: u16) -> bool {
        usize::from(host) < self.hosts.len()
    }

    /// The quota of host number `host` (pids carry it; an index past the
    /// hosts reads as the last host's: ask [`Self::has_host`] first where
    /// it decides anything).
    pub(crate) fn quota(&self, host: u16) -> &Arc<HostQuota> {
        let index = usize::from(host).min(self.hosts.len().saturating_sub(1));
        &self.hosts[index].quota
    }

    /// The workers of host number `host`.
    pub(crate) fn host_workers(&self, host: u16) -> std::ops::Range<usize> {
        let index = usize::from(host).min(self.hosts.len().saturating_sub(1));
        let h = &self.hosts[index];
        h.first_worker..h.first_worker + h.workers
    }

    /// The host of worker `worker`.
    pub(crate) fn host_of_worker(&self, worker: usize) -> u16 {
        let index = self
            .hosts
            .iter()
            .position(|h| worker >= h.first_worker && worker < h.first_worker + h.workers)
            .unwrap_or(0);
        u16::try_from(index).unwrap_or(u16::MAX)
    }

    /// The application's function entries, if it declares any.
    pub(crate) fn functions(&self) -> Option<&Arc<crate::funcs::Functions>> {
        self.functions.as_ref()
    }

    /// Refuses a process spawn of a function entry, and a call of anything else.
    fn check_kind(&self, entry: &str, function: bool) -> Result<(), SpawnError> {
        let is_function = self.functions().is_some_and(|f| f.contains(entry));
        match (is_function, function) {
            (true, false) => Err(SpawnError::WrongKind {
                entry: entry.to_owned(),
                kind: "function.lua",
                how: "call it with funcs.call",
            }),
            (false, true) => Err(SpawnError::WrongKind {
                entry: entry.to_owned(),
                kind: "process",
                how: "funcs.call runs function.lua entries only",
            }),
            _ => Ok(()),
        }
    }

    /// Refuses a spawn by a process of host `own` onto host `target`
    /// unless `own` reaches `target` (`allow_hosts`) and every host a
    /// process of `target` reaches is `target`, `own`, or one `own`
    /// reaches too. Otherwise a tenant reaching only a hub ran its own
    /// entry there, and through it sent to, terminated and stopped the
    /// services of a tenant its `allow_hosts` kept it from.
    fn may_spawn_on(&self, own: &HostQuota, target: &HostQuota) -> Result<(), SpawnError> {
        if !own.limits.allows(&own.name, &target.name) {
            return Err(SpawnError::NotAllowed {
                op: "spawn",
                from: own.name.clone(),
                to: target.name.clone(),
            });
        }
        if own.name == target.name || own.limits.allow_hosts.is_none() {
            return Ok(());
        }
        let beyond = self.hosts.iter().map(|h| &h.quota.name).find(|x| {
            **x != target.name
                && **x != own.name
                && target.limits.allows(&target.name, x)
                && !own.limits.allows(&own.name, x)
        });
        match beyond {
            Some(beyond) => Err(SpawnError::Widens {
                from: own.name.clone(),
                to: target.name.clone(),
                beyond: beyond.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses a spawn the parent's host may not make.
    fn check_spawn(
        &self,
        req: &SpawnRequest,
        target: &HostQuota,
        parent: Option<Pid>,
    ) -> Result<crate::item::Held, SpawnError> {
        let mut limit = target.limits.max_message_bytes;
        if let Some(parent) = parent {
            let own = self.quota(parent.host());
            self.may_spawn_on(own, target)?;
            limit = limit.min(own.limits.max_message_bytes);
        }
        if req.args.len() > crate::limits::MAX_PAYLOADS_PER_MESSAGE {
            let what = crate::limits::Values::SpawnArguments;
            let why = crate::limits::too_many_values(what, req.args.len());
            return Err(SpawnError::Unholdable(why));
        }
        let bytes = wire_size(&req.args) + wire_size(std::slice::from_ref(&req.context));
        if bytes > limit {
            return Err(SpawnError::TooLarge {
                what: "spawn arguments",
                bytes,
                limit,
            });
        }
        crate::limits::check_values(&req.args, "argument").map_err(SpawnError::Unholdable)?;
        crate::limits::check_values(std::slice::from_ref(&req.context), "context")
            .map_err(SpawnError::Unholdable)?;
        let held = match parent {
            Some(parent) if bytes >= HELD_SPAWN_BYTES => {
                let own = self.quota(parent.host());
                let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
                if !own.reserve_memory(bytes) {
                    return Err(SpawnError::NoRoom {
                        host: own.name.clone(),
                        total: own.limits.memory_total,
                        bytes,
                    });
                }
                crate::item::Held(Some(Arc::new(crate::item::Reservation {
                    quota: own.clone(),
                    bytes,
                })))
            }
            _ => crate::item::Held::default(),
        };
        if !target.admit_process() {
            return Err(SpawnError::TooManyProcesses {
                host: target.name.clone(),
                limit: target.limits.max_processes,
            });
        }
        Ok(held)
    }

    /// What a spawn of `entry` on `host` by `parent` may carry in arguments
    /// (`max_message_bytes` of both hosts), once the host and entry exist
    /// and `allow_hosts` permits it: a front-end asks before it converts
    /// any argument, so a refused spawn costs no copy.
    pub(crate) fn spawn_budget(
        &self,
        parent: Pid,
        entry: &str,
        host: &str,
    ) -> Result<usize, SpawnError> {
        let target = self
            .hosts
            .iter()
            .find(|h| h.quota.name == host)
            .ok_or_else(|| SpawnError::NoHost(crate::error::quoted_id(host)))?;
        if self.program(entry).is_none() {
            return Err(SpawnError::NoEntry(crate::error::quoted_id(entry)));
        }
        self.check_kind(entry, false)?;
        let own = self.quota(parent.host());
        self.may_spawn_on(own, &target.quota)?;
        Ok(own
            .limits
            .max_message_bytes
            .min(target.quota.limits.max_message_bytes))
    }

    /// Validates a spawn, allocates the pid and picks its worker (`home`:
    /// what it is placed near; see `place`). The pid is in the
    /// directory when this returns.
    pub(crate) fn prepare_spawn(
        &self,
        req: SpawnRequest,
        parent: Option<Pid>,
        home: crate::placement::Home<'_>,
    ) -> Result<(SpawnCmd, usize), SpawnError> {
        let host_index = self
            .hosts
            .iter()
            .position(|h| h.quota.name == req.host)
            .ok_or_else(|| SpawnError::NoHost(crate::error::quoted_id(&req.host)))?;
        let program = self
            .program(&req.entry)
            .ok_or_else(|| SpawnError::NoEntry(crate::error::quoted_id(&req.entry)))?;
        self.check_kind(&req.entry, req.function)?;
        let frontend = self
            .factories
            .iter()
            .position(|f| f.name() == program.frontend)
            .ok_or_else(|| SpawnError::NoFrontend {
                entry: req.entry.clone(),
                frontend: program.frontend.to_owned(),
            })?;
        let host = &self.hosts[host_index];
        let held = self.check_spawn(&req, &host.quota, parent)?;
        let worker = self.place(host, home);
        self.workers[worker].load.fetch_add(1, Ordering::Relaxed);
        let serial = host.next_serial.fetch_add(1, Ordering::Relaxed);
        let pid = Pid::new(u16::try_from(host_index).unwrap_or(u16::MAX), serial);
        *self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        let queued = crate::directory::Queued::default();
        self.directory.insert(pid, worker, queued.clone());
        let cmd = SpawnCmd {
            pid,
            queued,
            frontend,
            program,
            args: req.args,
            context: req.context,
            held,
            link_to: parent.filter(|_| req.link),
            monitored_by: parent.filter(|_| req.monitor),
            call: None,
            carried: Vec::new(),
        };
        Ok((cmd, worker))
    }

    /// The worker of `host` a new process runs on (see [`crate::placement`]);
    /// `home` is what it is placed near (its parent, its previous sibling).
    fn place(&self, host: &HostInfo, home: crate::placement::Home) -> usize {
        let turn = host.next.fetch_add(1, Ordering::Relaxed);
        let workers = host.first_worker..host.first_worker + host.workers;
        crate::placement::choose(workers, turn, home, |w| {
            self.workers[w].load.load(Ordering::Relaxed)
        })
    }

    /// Records an exit of a process of `worker`; `true` when someone
    /// outside the runtime was waiting for it.
    pub(crate) fn process_exited(&self, worker: usize, pid: Pid, result: Exit) -> bool {
        self.workers[worker].load.fetch_sub(1, Ordering::Relaxed);
        let waiting = self
            .watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&pid);
        let watched = waiting.is_some();
        for callback in waiting.into_iter().flatten() {
            callback(pid, &result);
        }
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *live = live.saturating_sub(1);
        if *live == 0 {
            self.idle.notify_all();
        }
        watched
    }
}

/// Builds a [`Runtime`].
#[derive(Default)]
pub struct RuntimeBuilder {
    hosts: Vec<HostSpec>,
    factories: Vec<Arc<dyn FrontendFactory>>,
    programs: Vec<Program>,
    entries: Vec<crate::catalog::EntryInfo>,
    extensions: Extensions,
}

/// Values shared by every front-end, one per type (see
/// [`RuntimeBuilder::extension`]).
pub(crate) type Extensions = FxHashMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>;

impl RuntimeBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a host.
    pub fn host(mut self, spec: HostSpec) -> Self {
        self.hosts.push(spec);
        self
    }

    /// Adds a language front-end.
    pub fn frontend(mut self, factory: Arc<dyn FrontendFactory>) -> Self {
        self.factories.push(factory);
        self
    }

    /// Adds a loadable entry.
    pub fn program(mut self, program: Program) -> Self {
        self.programs.push(program);
        self
    }

    /// Sets the entries the `registry` module shows.
    pub fn entries(mut self, entries: Vec<crate::catalog::EntryInfo>) -> Self {
        self.entries = entries;
        self
    }

    /// Shares `value` with every front-end (they find it with
    /// [`Core::extension`](crate::Core::extension)): the state of modules
    /// that is not a language's, such as the application's databases. One
    /// value per type; a later one replaces an earlier.
    pub fn extension<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.extensions.insert(std::any::TypeId::of::<T>(), value);
        self
    }

    /// Starts the worker threads.
    pub fn start(self) -> std::io::Result<Runtime> {
        let mut hosts = Vec::new();
        let mut first_worker = 0;
        for spec in &self.hosts {
            let workers = spec.workers.max(1);
            let mut quota = HostQuota::new(spec.name.clone(), spec.limits.clone(), spec.terminal);
            quota.grants = spec.grants.clone();
            hosts.push(HostInfo {
                quota: Arc::new(quota),
                first_worker,
                workers,
                next: AtomicUsize::new(0),
                next_serial: AtomicU64::new(1),
            });
            first_worker += workers;
        }
        let programs = self
            .programs
            .into_iter()
            .map(|p| (p.id.clone(), Arc::new(p)))
            .collect();
        let shared = Arc::new(Shared {
            workers: (0..first_worker).map(|_| Remote::default()).collect(),
            directory: Directory::default(),
            registry: Registry::default(),
            bus: crate::bus::Bus::default(),
            factories: self.factories,
            entries: self.entries.into(),
            services: std::sync::OnceLock::new(),
            functions: self
                .extensions
                .get(&std::any::TypeId::of::<crate::funcs::Functions>())
                .and_then(|v| v.clone().downcast().ok()),
            extensions: self.extensions,
            hosts,
            programs: RwLock::new(programs),
            programs_generation: AtomicU64::new(0),
            watchers: Mutex::default(),
            live: Mutex::new(0),
            idle: Condvar::new(),
        });
        let mut threads = Vec::new();
        for index in 0..first_worker {
            let shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name(format!("warren-worker-{index}"))
                .spawn(move || worker::run(shared, index))?;
            threads.push(thread);
        }
        Ok(Runtime { shared, threads })
    }
}

/// A running set of hosts; see the module docs.
pub struct Runtime {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Runtime {
    /// Starts a process from outside any process (no parent).
    pub fn spawn(&self, req: SpawnRequest) -> Result<Pid, SpawnError> {
        self.spawn_inner(req, None)
    }

    /// Starts a process and returns a receiver for its exit.
    pub fn spawn_watched(
        &self,
        req: SpawnRequest,
    ) -> Result<(Pid, mpsc::Receiver<Exit>), SpawnError> {
        let (tx, rx) = mpsc::channel();
        let notify: ExitCallback = Box::new(move |_, exit| {
            let _ = tx.send(exit.clone());
        });
        let pid = self.spawn_notify(req, notify)?;
        Ok((pid, rx))
    }

    /// Starts a process and calls `on_exit` (on a worker thread) when it ends.
    pub fn spawn_notify(
        &self,
        req: SpawnRequest,
        on_exit: ExitCallback,
    ) -> Result<Pid, SpawnError> {
        self.spawn_inner(req, Some(on_exit))
    }

    fn spawn_inner(
        &self,
        req: SpawnRequest,
        watcher: Option<ExitCallback>,
    ) -> Result<Pid, SpawnError> {
        let (cmd, worker) = self
            .shared
            .prepare_spawn(req, None, crate::placement::Home::None)?;
        let pid = cmd.pid;
        if let Some(callback) = watcher {
            self.shared
                .watchers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(pid)
                .or_default()
                .push(callback);
        }
        self.shared.workers[worker].push_all([Cmd::Spawn(cmd)]);
        Ok(pid)
    }

    /// Delivers a CANCEL event to `pid` from the runtime itself ([`Pid::RUNTIME`]).
    pub fn cancel(&self, pid: Pid, reason: Value) -> Result<(), SpawnError> {
        let worker = self
            .shared
            .directory
            .get(pid)
            .ok_or(SpawnError::ShuttingDown)?;
        let event = crate::item::Event::Cancel {
            from: Pid::RUNTIME,
            reason,
        };
        self.shared.workers[worker].push_all([Cmd::Deliver(pid, crate::item::Item::Event(event))]);
        Ok(())
    }

    /// Makes `control` answer the `services` calls of processes.
    pub fn set_services(&self, control: Arc<dyn ServiceControl>) {
        let _ = self.shared.services.set(control);
    }

    /// Runs `req` to completion and returns how it ended, or `None` if it did
    /// not end within `timeout`.
    pub fn run(&self, req: SpawnRequest, timeout: Duration) -> Result<Option<Exit>, SpawnError> {
        let (_, rx) = self.spawn_watched(req)?;
        Ok(rx.recv_timeout(timeout).ok())
    }

    /// Adds or replaces a loadable entry while running.
    pub fn add_program(&self, program: Program) {
        self.shared
            .programs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(program.id.clone(), Arc::new(program));
        self.shared
            .programs_generation
            .fetch_add(1, Ordering::Release);
    }

    /// Forcefully stops `pid` with `reason`.
    pub fn kill(&self, pid: Pid, reason: ProcError) -> Result<(), SpawnError> {
        let worker = self
            .shared
            .directory
            .get(pid)
            .ok_or(SpawnError::ShuttingDown)?;
        self.shared.workers[worker].push_all([Cmd::Kill(pid, reason)]);
        Ok(())
    }

    /// How many processes are alive.
    pub fn live_processes(&self) -> usize {
        *self
            .shared
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks every live process to stop (a CANCEL event with `reason`, as
    /// [`Runtime::cancel`]); how many were asked. For an orderly shutdown:
    /// processes that listen for CANCEL can clean up.
    pub fn cancel_all(&self, reason: &Value) -> usize {
        self.shared
            .directory
            .pids()
            .into_iter()
            .filter(|pid| self.cancel(*pid, reason.clone()).is_ok())
            .count()
    }

    /// Waits until no process is alive; `false` if `timeout` passed first.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut live = self
            .shared
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *live > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            live = self
                .shared
                .idle
                .wait_timeout(live, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Bytes the processes of host `name` hold now (what counts against
    /// its `memory_total`), or `None` for an unknown host.
    pub fn memory_used(&self, name: &str) -> Option<u64> {
        self.shared
            .hosts
            .iter()
            .find(|h| h.quota.name == name)
            .map(|h| h.quota.memory_used())
    }

    /// The quota of host `name` (its limits, counters and log budget), or
    /// `None` for an unknown host.
    pub fn host_quota(&self, name: &str) -> Option<Arc<HostQuota>> {
        self.shared
            .hosts
            .iter()
            .find(|h| h.quota.name == name)
            .map(|h| h.quota.clone())
    }

    /// The pid registered as `name`.
    pub fn lookup(&self, name: &str) -> Option<Pid> {
        self.shared.registry.any_holder(name)
    }

    /// Entries of every worker's timer heap: timers armed and not yet
    /// fired (cancelled ones included until they are swept out).
    pub fn armed_timers(&self) -> usize {
        self.shared
            .workers
            .iter()
            .map(|w| w.timers.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// How many event-bus subscriptions the live processes hold.
    pub fn bus_subscriptions(&self) -> usize {
        self.shared.bus.len()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for remote in &self.shared.workers {
            remote.stop();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

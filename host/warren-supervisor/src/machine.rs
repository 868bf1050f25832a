//! The supervisor as a state machine: it never spawns, sleeps or reads a
//! clock. Callers feed it events (a spawn happened, a process exited, time
//! passed, a command arrived) with the current time, and it answers with
//! actions (spawn, cancel, terminate) and a next deadline. That is what makes
//! the backoff schedule testable with a controllable clock.
//!
//! Guarantees:
//! - a service starts only once every service it requires is running (and
//!   owes no stop) or has ended normally;
//! - one no longer wanted stops only once every service requiring it has
//!   stopped; a restart (a group's, or a `restart` command) or an
//!   escalation stops a service only once none of the services requiring
//!   it is still on its way down (those that stay up are not waited for);
//! - a service given up on is no longer wanted, and the services running
//!   on it stop;
//! - a failure restarts exactly the services its group's strategy names; a
//!   group restarting more than its intensity allows fails and escalates
//!   to its tenant (every service on its services' hosts) and what
//!   requires it, never to another tenant's other services;
//! - a stopping service gets CANCEL, then is terminated once its
//!   `stop_timeout` has passed.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use warren_config::{ServiceEntry, Startup, Strategy};
use warren_core::{ErrorKind, Exit, Pid, ProcError};

use crate::backoff;
use crate::hold::Holds;
use crate::work::{Work, topological};

/// What to do once a stopping service is down.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Then {
    /// Leave it stopped (or start it again if it is still wanted).
    Stop,
    /// Restart it at this time (a sibling's failure took it down).
    Restart(Duration),
    /// Mark it failed (its group gave up).
    Fail,
}

/// A service's state.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Not running and not wanted.
    Stopped,
    /// Wanted; waiting for the services it requires.
    Waiting(Duration),
    /// A spawn was requested.
    Starting,
    /// Waiting to be restarted at this time.
    Backoff(Duration),
    /// Running since the given time.
    Running(Pid, Duration),
    /// CANCEL sent; terminated at the deadline unless it exits first.
    Stopping {
        /// The process.
        pid: Pid,
        /// When it will be terminated.
        deadline: Duration,
        /// What happens once it is down.
        then: Then,
        /// Whether terminate was already sent.
        terminated: bool,
    },
    /// Given up on.
    Failed,
    /// Its process ended normally.
    Exited,
}

impl State {
    /// The name Lua code and logs see.
    pub fn name(&self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Waiting(_) | State::Starting | State::Backoff(_) => "starting",
            State::Running(..) => "running",
            State::Stopping { .. } => "stopping",
            State::Failed => "failed",
            State::Exited => "exited",
        }
    }

    fn active(&self) -> bool {
        matches!(
            self,
            State::Starting | State::Running(..) | State::Stopping { .. }
        )
    }

    fn pid(&self) -> Option<Pid> {
        match self {
            State::Running(pid, _) | State::Stopping { pid, .. } => Some(*pid),
            _ => None,
        }
    }
}

/// Something the caller must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Spawn service `n` and report [`Supervisor::started`] or [`Supervisor::spawn_failed`].
    Spawn(usize),
    /// Deliver a CANCEL event to this process.
    Cancel(Pid),
    /// Terminate this process.
    Terminate(Pid),
}

/// A service as `services.list()` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceStatus {
    /// The service's entry id.
    pub id: String,
    /// `starting`, `running`, `stopping`, `stopped`, `failed` or `exited`.
    pub state: &'static str,
    /// Its process, while it has one.
    pub pid: Option<Pid>,
    /// How often it was restarted.
    pub restarts: u32,
    /// Why it last changed state.
    pub reason: String,
    /// The host its process runs on.
    pub host: String,
}

struct Svc {
    state: State,
    wanted: bool,
    attempts: u32,
    restarts: u32,
    order: u64,
    reason: String,
}

/// Whether a line the supervisor writes about a service of host `host`
/// (its name), at `level` and of about `bytes` bytes, may be written:
/// the host's log budget (`HostQuota::admit_log`), so that a tenant
/// whose services change state in a loop (`services.restart` on 200 of
/// them wrote 250,000 transition lines in 7.5 s, red team S) is held to
/// its share of the log as its processes' own lines are.
pub type LogGate = Box<dyn Fn(&str, tracing::Level, usize) -> bool + Send>;

/// The supervisor of one application's services.
pub struct Supervisor {
    ids: Vec<String>,
    specs: Vec<ServiceEntry>,
    svcs: Vec<Svc>,
    requires: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    /// What a step visits, the deadlines, and how many are busy.
    work: Work,
    /// Each service by its id (the first, were one repeated).
    index: HashMap<String, usize>,
    /// The service whose process each pid is.
    by_pid: HashMap<Pid, usize>,
    /// Each restart group's services.
    members: HashMap<String, Vec<usize>>,
    /// How many of the services requiring each one are active (starting,
    /// running or stopping): a service stops only once none is, and a
    /// service ten thousand others require counted them at every visit.
    active_dependents: Vec<usize>,
    /// A stop each running service owes once no service requiring it is
    /// on its way down (a group restart, a `restart` command, an
    /// escalation), with why: see [`Supervisor::stop_after_dependents`].
    pending: Vec<Option<(Then, String)>>,
    /// Per group, the services on their way down for a group restart,
    /// which its failed service waits for ([`crate::hold`]).
    holds: Holds,
    /// Services whose status changed since [`Supervisor::take_noted`].
    noted: Vec<usize>,
    /// Whether each service is in `noted`.
    is_noted: Vec<bool>,
    groups: BTreeMap<String, VecDeque<Duration>>,
    rng: fastrand::Rng,
    seq: u64,
    /// How many times a service's state (with its reason and restarts)
    /// changed: what [`Supervisor::changes`] reports.
    changes: u64,
    shutting_down: bool,
    escalation: Option<String>,
    terminated: bool,
    /// Every line is written when unset (a supervisor without a runtime).
    log_gate: Option<LogGate>,
}

impl Supervisor {
    /// A supervisor for `services` (validated configuration; unknown
    /// `requires` are ignored). `seed` drives the jitter.
    pub fn new(services: Vec<(String, ServiceEntry)>, seed: u64) -> Self {
        let ids: Vec<String> = services.iter().map(|(id, _)| id.clone()).collect();
        let mut index = HashMap::with_capacity(ids.len());
        let mut members: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (id, spec)) in services.iter().enumerate() {
            index.entry(id.clone()).or_insert(i);
            members.entry(spec.group.clone()).or_default().push(i);
        }
        let requires: Vec<Vec<usize>> = services
            .iter()
            .map(|(_, s)| {
                s.requires
                    .iter()
                    .filter_map(|r| index.get(r).copied())
                    .collect()
            })
            .collect();
        let mut dependents = vec![Vec::new(); ids.len()];
        for (i, deps) in requires.iter().enumerate() {
            for &d in deps {
                dependents[d].push(i);
            }
        }
        let work = Work::new(topological(&requires));
        let ids_len = ids.len();
        let svcs = ids
            .iter()
            .map(|_| Svc {
                state: State::Stopped,
                wanted: false,
                attempts: 0,
                restarts: 0,
                order: 0,
                reason: String::new(),
            })
            .collect();
        Supervisor {
            ids,
            specs: services.into_iter().map(|(_, s)| s).collect(),
            svcs,
            requires,
            dependents,
            work,
            index,
            by_pid: HashMap::new(),
            members,
            active_dependents: vec![0; ids_len],
            pending: vec![None; ids_len],
            holds: Holds::new(ids_len),
            noted: Vec::new(),
            is_noted: vec![false; ids_len],
            groups: BTreeMap::new(),
            rng: fastrand::Rng::with_seed(seed),
            seq: 0,
            changes: 0,
            shutting_down: false,
            escalation: None,
            terminated: false,
            log_gate: None,
        }
    }

    /// Holds the lines written about each service to `gate` (see
    /// [`LogGate`]).
    pub fn set_log_gate(&mut self, gate: LogGate) {
        self.log_gate = Some(gate);
    }

    /// Whether a line about service `n` of about `bytes` bytes at `level`
    /// may be written.
    fn may_log(&self, n: usize, level: tracing::Level, bytes: usize) -> bool {
        let bytes = bytes.saturating_add(self.ids[n].len());
        self.log_gate
            .as_ref()
            .is_none_or(|gate| gate(&self.specs[n].host, level, bytes))
    }

    /// The configuration of service `n`.
    pub fn spec(&self, n: usize) -> &ServiceEntry {
        &self.specs[n]
    }

    /// The id of service `n`.
    pub fn id(&self, n: usize) -> &str {
        &self.ids[n]
    }

    /// Starts the auto-start services (and what they require).
    pub fn boot(&mut self, now: Duration) -> Vec<Action> {
        for i in 0..self.ids.len() {
            if self.specs[i].auto_start {
                self.want(i);
            }
        }
        self.step(now)
    }

    /// Reports that service `n`'s process is `pid`; services waiting for it may start.
    pub fn started(&mut self, n: usize, pid: Pid, now: Duration) -> Vec<Action> {
        if self.svcs[n].state == State::Starting {
            self.set(
                n,
                State::Running(pid, now),
                format!("process {pid} started"),
            );
        }
        self.step(now)
    }

    /// Reports that spawning service `n` failed.
    pub fn spawn_failed(&mut self, n: usize, error: &ProcError, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if self.svcs[n].state == State::Starting {
            self.fail(n, format!("cannot spawn: {}", error.message), now);
        }
        out.extend(self.step(now));
        out
    }

    /// Reports that `pid` exited with `result`.
    pub fn exited(&mut self, pid: Pid, result: &Exit, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(&n) = self.by_pid.get(&pid) else {
            return out;
        };
        match self.svcs[n].state {
            State::Stopping {
                then: Then::Stop,
                terminated: false,
                ..
            } if crashed(result) => {
                let why = result.as_ref().err().map_or("", |e| e.message.as_str());
                let why = warren_core::logline::log_line(why).into_owned();
                self.set(n, State::Failed, format!("failed while stopping: {why}"));
            }
            State::Stopping { then, .. } => {
                let (state, why) = match then {
                    Then::Stop => (State::Stopped, "stopped".to_owned()),
                    Then::Restart(until) if !self.shutting_down => {
                        (State::Backoff(until), "down for a group restart".to_owned())
                    }
                    Then::Restart(_) => (State::Stopped, "stopped for shutdown".to_owned()),
                    Then::Fail => (State::Failed, "stopped: its group failed".to_owned()),
                };
                self.set(n, state, why);
            }
            _ => match result {
                Ok(_) => {
                    self.svcs[n].wanted = false;
                    self.set(n, State::Exited, "its process ended normally".into());
                }
                Err(err) if self.shutting_down && err.kind == ErrorKind::Canceled => {
                    // Terminated by a second interrupt: not a failure of its own.
                    let why = format!("ended during shutdown: {}", err.message);
                    self.set(n, State::Stopped, why);
                }
                Err(err) => self.fail(n, err.message.clone(), now),
            },
        }
        out.extend(self.step(now));
        out
    }

    /// Lets time pass: restarts whose delay is over, terminations whose stop timeout is over.
    pub fn tick(&mut self, now: Duration) -> Vec<Action> {
        self.step(now)
    }

    /// Starts service `id` (and what it requires).
    pub fn start(&mut self, id: &str, now: Duration) -> Result<Vec<Action>, ProcError> {
        let n = self.find(id)?;
        let (before, wanted) = (self.changes, self.svcs[n].wanted);
        self.revive(n);
        self.want(n);
        if wanted && self.changes == before {
            // Already wanted, nothing changed: no step over every service
            // (a tenant looping `services.start` on its running service
            // kept the one supervisor thread busy for everyone).
            return Ok(Vec::new());
        }
        Ok(self.step(now))
    }

    /// A count that moves whenever a service's state, reason or restarts
    /// change: the statuses need copying again only when it moved.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Stops service `id` and the services that require it.
    pub fn stop(&mut self, id: &str, now: Duration) -> Result<Vec<Action>, ProcError> {
        let n = self.find(id)?;
        self.unwant(n);
        Ok(self.step(now))
    }

    /// Stops and starts service `id` again.
    pub fn restart(&mut self, id: &str, now: Duration) -> Result<Vec<Action>, ProcError> {
        let n = self.find(id)?;
        let mut out = Vec::new();
        if matches!(self.svcs[n].state, State::Running(..)) {
            self.svcs[n].wanted = true;
            self.stop_after_dependents(n, Then::Stop, "restart requested");
            out.extend(self.step(now));
            return Ok(out);
        }
        self.start(id, now)
    }

    /// Stops everything in reverse dependency order.
    pub fn shutdown(&mut self, now: Duration) -> Vec<Action> {
        self.shutting_down = true;
        for n in 0..self.svcs.len() {
            self.svcs[n].wanted = false;
            self.work.mark(n);
        }
        self.step(now)
    }

    /// Terminates every process at once (a second interrupt).
    pub fn kill_all(&mut self) -> Vec<Action> {
        self.shutting_down = true;
        let mut out = Vec::new();
        for n in 0..self.svcs.len() {
            self.svcs[n].wanted = false;
            if let Some(pid) = self.svcs[n].state.pid() {
                out.push(Action::Terminate(pid));
                self.terminated = true;
            }
            self.settle(n);
        }
        out
    }

    /// The earliest time at which [`tick`](Self::tick) has something to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.work.next_deadline()
    }

    /// The time at which service `n` has something to do unless an
    /// event comes first.
    fn deadline_of(&self, n: usize) -> Option<Duration> {
        let s = &self.svcs[n];
        match s.state {
            State::Backoff(until) => (!self.held(n)).then_some(until),
            State::Stopping {
                deadline,
                terminated: false,
                ..
            } => Some(deadline),
            State::Waiting(since) => Some(since + self.specs[n].start_timeout),
            State::Running(_, since) if s.attempts > 0 => {
                Some(since + self.specs[n].stable_threshold)
            }
            _ => None,
        }
    }

    /// Whether service `n` runs or is about to.
    fn busy(&self, n: usize) -> bool {
        let s = &self.svcs[n];
        !matches!(s.state, State::Stopped | State::Failed | State::Exited)
            || (s.wanted && !self.shutting_down)
    }

    /// Files service `n`'s deadline and whether it is busy with the work.
    fn settle(&mut self, n: usize) {
        let group = &self.specs[n].group;
        if self.holds.file(n, group, self.down_to_restart(n)) {
            // Its services in backoff wait for it, or no longer.
            for &j in self.members.get(group).into_iter().flatten() {
                if matches!(self.svcs[j].state, State::Backoff(_)) {
                    self.work.mark(j);
                }
            }
        }
        let (deadline, busy) = (self.deadline_of(n), self.busy(n));
        self.work.settle(n, deadline, busy);
    }

    /// Whether service `n` is on its way down for a group restart: it
    /// stops, or owes a stop, to restart.
    fn down_to_restart(&self, n: usize) -> bool {
        matches!(
            self.svcs[n].state,
            State::Stopping {
                then: Then::Restart(_),
                ..
            }
        ) || matches!(self.pending[n], Some((Then::Restart(_), _)))
    }

    /// Whether service `n`, in backoff, waits past its restart time for a
    /// sibling going down for its group's restart (not in a `one_for_one`
    /// group, whose services restart alone).
    fn held(&self, n: usize) -> bool {
        self.specs[n].restart.strategy != Strategy::OneForOne
            && self.holds.holds(&self.specs[n].group)
    }

    /// Whether a shutdown (or a kill) was asked for.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Whether nothing runs or is about to.
    pub fn is_idle(&self) -> bool {
        self.work.idle()
    }

    /// Why the application failed, if a group exceeded its intensity.
    pub fn escalation(&self) -> Option<&str> {
        self.escalation.as_deref()
    }

    /// Whether some service had to be terminated.
    pub fn terminated_any(&self) -> bool {
        self.terminated
    }

    /// Whether some required service (`lifecycle.startup: required`, the
    /// default) was given up on; an optional one failing is only logged.
    pub fn failed_any(&self) -> bool {
        self.svcs
            .iter()
            .zip(&self.specs)
            .any(|(s, spec)| s.state == State::Failed && spec.startup == Startup::Required)
    }

    /// Every service's status.
    pub fn statuses(&self) -> Vec<ServiceStatus> {
        (0..self.svcs.len()).map(|n| self.status(n)).collect()
    }

    /// Service `n`'s status (as [`statuses`](Self::statuses) lists it).
    pub fn status(&self, n: usize) -> ServiceStatus {
        let s = &self.svcs[n];
        ServiceStatus {
            id: self.ids[n].clone(),
            state: s.state.name(),
            pid: s.state.pid(),
            restarts: s.restarts,
            reason: s.reason.clone(),
            host: self.specs[n].host.clone(),
        }
    }

    /// The services whose status changed since the last call, each once
    /// (a copy of the statuses is kept up to date with them, instead of
    /// copying every service's after every event).
    pub fn take_noted(&mut self) -> Vec<usize> {
        for &n in &self.noted {
            self.is_noted[n] = false;
        }
        std::mem::take(&mut self.noted)
    }

    /// Service `n`'s status changed.
    fn note(&mut self, n: usize) {
        self.changes += 1;
        if !self.is_noted[n] {
            self.is_noted[n] = true;
            self.noted.push(n);
        }
    }

    fn find(&self, id: &str) -> Result<usize, ProcError> {
        self.index
            .get(id)
            .copied()
            .ok_or_else(|| ProcError::new(ErrorKind::NotFound, format!("no service {id:?}")))
    }

    /// Service `n`'s state or wish changed: it and its neighbours, whose
    /// next move reads them, are visited by the next step.
    fn touch(&mut self, n: usize) {
        self.work.mark(n);
        for &d in &self.requires[n] {
            self.work.mark(d);
        }
        for &d in &self.dependents[n] {
            self.work.mark(d);
        }
    }

    /// Makes `n` and, transitively, what it requires startable again where
    /// they failed or ended (a start of a service whose requirement had
    /// been given up on failed it again at once).
    fn revive(&mut self, n: usize) {
        let mut todo = vec![n];
        let mut seen = std::collections::HashSet::new();
        while let Some(n) = todo.pop() {
            if !seen.insert(n) {
                continue;
            }
            if matches!(self.svcs[n].state, State::Failed | State::Exited) {
                self.svcs[n].attempts = 0;
                self.set(n, State::Stopped, "start requested".into());
            }
            todo.extend_from_slice(&self.requires[n]);
        }
    }

    /// Wants `n` and, transitively, what it requires (a loop, not a
    /// recursion: a chain of 100,000 requirements is one call).
    fn want(&mut self, n: usize) {
        let mut todo = vec![n];
        while let Some(n) = todo.pop() {
            if self.svcs[n].wanted {
                continue;
            }
            self.svcs[n].wanted = true;
            self.touch(n);
            todo.extend_from_slice(&self.requires[n]);
        }
    }

    /// No longer wants `n` and, transitively, what requires it (each
    /// once: a service reached by many paths was expanded again for each,
    /// exponentially many in a layered graph).
    fn unwant(&mut self, n: usize) {
        self.unwant_all(&[n]);
    }

    /// [`unwant`](Self::unwant) of each of `roots`, each service looked at
    /// once over all of them (an escalation unwants a whole tenant).
    fn unwant_all(&mut self, roots: &[usize]) {
        let mut todo = roots.to_vec();
        let mut seen = std::collections::HashSet::new();
        while let Some(n) = todo.pop() {
            if !seen.insert(n) || (!self.svcs[n].wanted && !self.svcs[n].state.active()) {
                continue;
            }
            self.svcs[n].wanted = false;
            self.touch(n);
            todo.extend_from_slice(&self.dependents[n]);
        }
    }

    fn set(&mut self, n: usize, state: State, reason: String) {
        let warn = state == State::Failed;
        self.set_at(n, state, reason, warn);
    }

    /// [`set`](Self::set), the line at WARN with `warn` (a failure, and a
    /// restart after one), else at INFO.
    fn set_at(&mut self, n: usize, state: State, reason: String, warn: bool) {
        self.note(n);
        self.touch(n);
        if let Some(old) = self.svcs[n].state.pid() {
            self.by_pid.remove(&old);
        }
        if let Some(new) = state.pid() {
            self.by_pid.insert(new, n);
        }
        if !matches!(state, State::Starting | State::Running(..)) {
            self.pending[n] = None;
        }
        let (was, is) = (self.svcs[n].state.active(), state.active());
        if was != is {
            for &r in &self.requires[n] {
                if is {
                    self.active_dependents[r] += 1;
                } else {
                    self.active_dependents[r] -= 1;
                }
            }
        }
        if state == State::Failed {
            // Given up on: it is no longer wanted (the application ends
            // once nothing is), and what requires it cannot run without
            // it: the running ones stop, in dependency order; the waiting
            // ones fail when they next look (`try_start`).
            self.svcs[n].wanted = false;
            for d in self.dependents[n].clone() {
                if self.svcs[d].state.active() {
                    self.unwant(d);
                }
            }
        }
        let from = self.svcs[n].state.name();
        let to = state.name();
        let bytes = from.len() + to.len() + reason.len();
        let level = if warn {
            tracing::Level::WARN
        } else {
            tracing::Level::INFO
        };
        if (from != to || warn) && self.may_log(n, level, bytes) {
            // Any text of the service's went through `log_line` (`fail`).
            if warn {
                tracing::warn!(service = %self.ids[n], "{from} -> {to}: {reason}");
            } else {
                tracing::info!(service = %self.ids[n], "{from} -> {to}: {reason}");
            }
        }
        self.svcs[n].state = state;
        self.svcs[n].reason = reason;
    }

    /// Stops `n`, then `then`, once no service requiring it is going
    /// down ([`Supervisor::going_down`]): a group restart, a `restart`
    /// command and an escalation asked for every stop at once, and a
    /// service was stopped (and restarted) under services that required it
    /// and were themselves stopping. One already stopping does `then` once
    /// down; one starting owes the stop once it runs. Services requiring it
    /// that stay up are not waited for (a `restart` of a service others
    /// use restarts it under them, as before).
    fn stop_after_dependents(&mut self, n: usize, then: Then, why: &str) {
        match &mut self.svcs[n].state {
            State::Stopping { then: t, .. } => {
                *t = then;
                // Whether it goes down to restart may have changed (its
                // group's hold, see `settle`).
                self.touch(n);
            }
            State::Starting | State::Running(..) => {
                self.pending[n] = Some((then, why.to_owned()));
                self.touch(n);
            }
            _ => {}
        }
    }

    /// Whether service `d` is active and on its way down: it owes a stop,
    /// is stopping, or is no longer wanted.
    fn going_down(&self, d: usize) -> bool {
        let s = &self.svcs[d];
        s.state.active()
            && (self.pending[d].is_some()
                || matches!(s.state, State::Stopping { .. })
                || !s.wanted
                || self.shutting_down)
    }

    fn begin_stop(
        &mut self,
        n: usize,
        then: Then,
        now: Duration,
        why: &str,
        out: &mut Vec<Action>,
    ) {
        if let State::Running(pid, _) = self.svcs[n].state {
            #[cfg(test)]
            self.check_order(&Action::Cancel(pid));
            out.push(Action::Cancel(pid));
            let deadline = now + self.specs[n].stop_timeout;
            self.set(
                n,
                State::Stopping {
                    pid,
                    deadline,
                    then,
                    terminated: false,
                },
                why.into(),
            );
        } else if let State::Stopping { then: t, .. } = &mut self.svcs[n].state {
            *t = then;
        }
    }

    /// Visits the services marked since the last step and those whose
    /// deadline came (see [`crate::work`]), until none is marked.
    fn step(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        self.work.begin(now);
        while let Some(n) = self.work.next() {
            self.step_one(n, now, &mut out);
            self.settle(n);
        }
        out
    }

    fn step_one(&mut self, n: usize, now: Duration, out: &mut Vec<Action>) -> bool {
        let wanted = self.svcs[n].wanted && !self.shutting_down;
        match self.svcs[n].state.clone() {
            State::Backoff(_) | State::Waiting(_) if !wanted => {
                self.set(n, State::Stopped, "no longer wanted".into())
            }
            State::Backoff(until) if until <= now && !self.held(n) => {
                self.set(n, State::Waiting(now), "restart delay over".into())
            }
            State::Stopped if wanted => self.set(n, State::Waiting(now), "wanted".into()),
            State::Waiting(since) => return self.try_start(n, since, now, out),
            State::Running(_, since) => {
                if let Some((then, why)) = self.pending[n].clone() {
                    // Read per visit: only a service owing a stop looks.
                    if self.dependents[n].iter().any(|&d| self.going_down(d)) {
                        return false;
                    }
                    if self.shutting_down {
                        // The restart it owed is moot: it stops for good.
                        self.begin_stop(n, Then::Stop, now, "shutting down", out);
                    } else {
                        self.begin_stop(n, then, now, &why, out);
                    }
                    return true;
                }
                if !wanted && self.active_dependents[n] == 0 {
                    self.begin_stop(n, Then::Stop, now, "stop requested", out);
                    return true;
                }
                if self.svcs[n].attempts > 0 && now >= since + self.specs[n].stable_threshold {
                    self.svcs[n].attempts = 0;
                }
                return false;
            }
            State::Stopping {
                pid,
                deadline,
                then,
                terminated: false,
            } if deadline <= now => {
                out.push(Action::Terminate(pid));
                self.terminated = true;
                let why = format!(
                    "still running {:?} after CANCEL: terminated",
                    self.specs[n].stop_timeout
                );
                if self.may_log(n, tracing::Level::WARN, why.len()) {
                    tracing::warn!(service = %self.ids[n], "{why}");
                }
                self.set(
                    n,
                    State::Stopping {
                        pid,
                        deadline,
                        then,
                        terminated: true,
                    },
                    why,
                );
            }
            _ => return false,
        }
        true
    }

    fn try_start(
        &mut self,
        n: usize,
        since: Duration,
        now: Duration,
        out: &mut Vec<Action>,
    ) -> bool {
        let deps = self.requires[n].clone();
        if let Some(&d) = deps
            .iter()
            .find(|&&d| matches!(self.svcs[d].state, State::Failed))
        {
            let why = format!("required service {} failed", self.ids[d]);
            self.set(n, State::Failed, why);
            return true;
        }
        if let Some(&d) = deps.iter().find(|&&d| !self.ready(d)) {
            if now >= since + self.specs[n].start_timeout {
                let why = format!(
                    "required service {} not running after {:?}",
                    self.ids[d], self.specs[n].start_timeout
                );
                self.set(n, State::Failed, why);
                return true;
            }
            return false;
        }
        self.seq += 1;
        self.svcs[n].order = self.seq;
        #[cfg(test)]
        self.check_order(&Action::Spawn(n));
        out.push(Action::Spawn(n));
        self.set(n, State::Starting, "dependencies running".into());
        true
    }

    /// Whether service `d` lets the services requiring it start: it runs
    /// and owes no stop, or it ended normally (its work is done: a
    /// dependent restarting after a one-shot requirement had ended waited
    /// for it to run again until its `start_timeout` failed it).
    fn ready(&self, d: usize) -> bool {
        match self.svcs[d].state {
            State::Running(..) => self.pending[d].is_none(),
            State::Exited => true,
            _ => false,
        }
    }

    fn fail(&mut self, n: usize, reason: String, now: Duration) {
        // The service's own text, logged below in several lines: cut and
        // without line breaks once, here.
        let reason = warren_core::logline::log_line(&reason).into_owned();
        if self.shutting_down {
            self.set(
                n,
                State::Stopped,
                format!("failed during shutdown: {reason}"),
            );
            return;
        }
        let policy = self.specs[n].restart.clone();
        let group = self.specs[n].group.clone();
        let recent = self.groups.entry(group.clone()).or_default();
        recent.push_back(now);
        while recent.front().is_some_and(|t| *t + policy.period < now) {
            recent.pop_front();
        }
        if recent.len() > policy.max_restarts as usize {
            let why = format!(
                "group {group}: more than {} restarts within {:?} (last: {} failed: {reason})",
                policy.max_restarts, policy.period, self.ids[n]
            );
            if self.specs[n].startup == Startup::Optional {
                // An optional service fails alone: the application runs on.
                if self.may_log(n, tracing::Level::WARN, why.len()) {
                    tracing::warn!("{why}; optional service {} given up", self.ids[n]);
                }
                self.svcs[n].wanted = false;
                self.set(n, State::Failed, why);
                return;
            }
            self.escalate(n, &group, why);
            return;
        }
        self.svcs[n].attempts += 1;
        let attempts = self.svcs[n].attempts;
        if policy.max_attempts > 0 && attempts > policy.max_attempts {
            self.svcs[n].wanted = false;
            self.set(
                n,
                State::Failed,
                format!("gave up after {} attempts: {reason}", policy.max_attempts),
            );
            return;
        }
        let until = now + backoff::delay(&policy, attempts, &mut self.rng);
        self.svcs[n].restarts += 1;
        self.set_at(
            n,
            State::Backoff(until),
            format!("failed ({reason}); restart attempt {attempts} at {until:?}"),
            true,
        );
        let order = self.svcs[n].order;
        let siblings: Vec<usize> = (self.members.get(&group).into_iter().flatten().copied())
            .filter(|&j| j != n)
            .filter(|&j| match policy.strategy {
                Strategy::OneForOne => false,
                Strategy::OneForAll => true,
                Strategy::RestForOne => self.svcs[j].order > order,
            })
            .collect();
        for j in siblings {
            if matches!(self.svcs[j].state, State::Running(..)) {
                self.svcs[j].restarts += 1;
                self.note(j);
                let why = format!(
                    "{} restart after {} failed",
                    policy.strategy.name(),
                    self.ids[n]
                );
                self.stop_after_dependents(j, Then::Restart(until), &why);
            }
        }
    }

    /// Group `group` (service `n` its last failure) exceeded its
    /// intensity: its services fail, and the rest of its tenant — every
    /// service on a host one of the group's services runs on — and the
    /// services that require one of them are stopped. Other tenants run
    /// on: one tenant's crash loop cannot shut the application down under
    /// them. The application ends, failed, once nothing else is wanted.
    fn escalate(&mut self, n: usize, group: &str, why: String) {
        let hosts: BTreeSet<&str> = (self.specs.iter())
            .filter(|s| s.group == group)
            .map(|s| s.host.as_str())
            .collect();
        let tenant: Vec<usize> = (0..self.ids.len())
            .filter(|&j| {
                self.specs[j].group == group || hosts.contains(self.specs[j].host.as_str())
            })
            .collect();
        let hosts = hosts.into_iter().collect::<Vec<_>>().join(", ");
        tracing::error!("{why}; stopping every service on {hosts}");
        self.set(n, State::Failed, why.clone());
        // Unwanted, with what requires it (in another tenant too): the step
        // stops them in dependency order. The group's own fail.
        self.unwant_all(&tenant);
        for &j in &tenant {
            if j == n || self.specs[j].group != group {
                continue;
            }
            match self.svcs[j].state {
                State::Running(..) | State::Stopping { .. } => {
                    self.stop_after_dependents(j, Then::Fail, "its group failed");
                }
                State::Stopped | State::Exited => {}
                _ => self.set(j, State::Failed, "its group failed".into()),
            }
        }
        self.escalation.get_or_insert(why);
    }
}

/// Whether `result` is a failure of the process's own (not the end a
/// CANCEL or a terminate asked for).
fn crashed(result: &Exit) -> bool {
    result
        .as_ref()
        .is_err_and(|e| e.kind != ErrorKind::Canceled)
}

#[cfg(test)]
#[path = "settled_tests.rs"]
mod settled_tests;

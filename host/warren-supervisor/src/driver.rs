//! Runs a [`Supervisor`] against a live runtime on the calling thread.
//!
//! Everything that can change a service arrives as an [`Event`] on one
//! channel — exits (from the runtime's exit callbacks), commands (from the
//! `services` module), and interrupts (from the CLI's signal handler) — and
//! time passes through the channel's receive timeout, so the policy itself
//! stays in the clock-free state machine.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use warren_core::{
    ErrorKind, Exit, HostQuota, Pid, ProcError, Runtime, ServiceCommand, ServiceControl,
    ServiceInfo, SpawnRequest, Value,
};

use crate::budget::{COMMAND_BURST, COMMANDS_PER_SEC, CommandBudget};
use crate::{Action, ServiceStatus, Supervisor};

/// Something the driver must react to.
pub enum Event {
    /// A service's process exited.
    Exit(Pid, Exit),
    /// A process asked for a service to change.
    Command(String, ServiceCommand),
    /// Stop everything gracefully (first interrupt).
    Shutdown,
    /// Terminate everything now (second interrupt).
    Kill,
}

/// How the services ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Set when a group exceeded its restart intensity.
    pub escalation: Option<String>,
    /// Some service was given up on.
    pub failed: bool,
    /// Some service had to be terminated after ignoring CANCEL.
    pub terminated: bool,
}

/// The `services` control handed to the runtime.
pub struct Control {
    events: mpsc::Sender<Event>,
    statuses: Mutex<Vec<ServiceStatus>>,
    /// Each service's place in `statuses`, by its id: a command's host
    /// (and `services.status`) was found by a walk of every status under
    /// their lock.
    index: HashMap<String, usize>,
    /// The places of each host's services: a tenant's list costs its own
    /// services.
    by_host: HashMap<String, Vec<usize>>,
    /// Commands sent and not yet taken by the driver: the same command
    /// for the same service again is merged into the one queued. One
    /// driver serves every tenant, and a tenant looping `services.start`
    /// on its own service queued commands without bound (22 MB in 7 s)
    /// ahead of other tenants' exits, whose restarts then waited up to
    /// 3 s (red team O); now at most three a service wait.
    queued: Mutex<HashSet<(String, ServiceCommand)>>,
    /// Each host's commands (see [`crate::budget`]).
    budget: Mutex<CommandBudget>,
}

impl Control {
    fn new(events: mpsc::Sender<Event>, statuses: Vec<ServiceStatus>) -> Self {
        let mut index = HashMap::with_capacity(statuses.len());
        let mut by_host: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in statuses.iter().enumerate() {
            index.entry(s.id.clone()).or_insert(i);
            by_host.entry(s.host.clone()).or_default().push(i);
        }
        Control {
            events,
            statuses: Mutex::new(statuses),
            index,
            by_host,
            queued: Mutex::default(),
            budget: Mutex::default(),
        }
    }

    fn statuses(&self) -> std::sync::MutexGuard<'_, Vec<ServiceStatus>> {
        self.statuses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn queued(&self) -> std::sync::MutexGuard<'_, HashSet<(String, ServiceCommand)>> {
        self.queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a process sees of `s`.
fn info(s: &ServiceStatus) -> ServiceInfo {
    ServiceInfo {
        id: s.id.clone(),
        state: s.state.to_owned(),
        pid: s.pid,
        restarts: s.restarts,
        reason: s.reason.clone(),
        host: s.host.clone(),
    }
}

impl ServiceControl for Control {
    fn list(&self) -> Vec<ServiceInfo> {
        self.statuses().iter().map(info).collect()
    }

    fn list_host(&self, host: &str) -> Vec<ServiceInfo> {
        let statuses = self.statuses();
        let places = self.by_host.get(host).map_or(&[][..], Vec::as_slice);
        places
            .iter()
            .filter_map(|&i| statuses.get(i).map(info))
            .collect()
    }

    fn status(&self, id: &str) -> Option<ServiceInfo> {
        let i = *self.index.get(id)?;
        self.statuses().get(i).map(info)
    }

    fn command(&self, id: &str, command: ServiceCommand) -> Result<(), ProcError> {
        let place = self.index.get(id).copied();
        let host = place.and_then(|i| self.statuses().get(i).map(|s| s.host.clone()));
        let Some(host) = host else {
            return Err(ProcError::new(
                ErrorKind::NotFound,
                format!("no service {id:?}"),
            ));
        };
        if self.queued().contains(&(id.to_owned(), command)) {
            return Ok(()); // the same command waits already
        }
        let spent = (self.budget.lock())
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(&host, Instant::now());
        if !spent {
            let why = format!(
                "{command:?} service {id:?}: host '{host}' made more than {COMMAND_BURST} \
                 service commands at once or {COMMANDS_PER_SEC} a second"
            );
            return Err(ProcError::new(ErrorKind::RateLimited, why));
        }
        if !self.queued().insert((id.to_owned(), command)) {
            return Ok(()); // queued by another process meanwhile
        }
        self.events
            .send(Event::Command(id.to_owned(), command))
            .map_err(|_| {
                // Not queued after all: the same command again must not be
                // answered as merged into it.
                self.queued().remove(&(id.to_owned(), command));
                ProcError::new(ErrorKind::Unavailable, "the supervisor has stopped")
            })
    }
}

/// The supervisor's lines about a service held to its host's log budget
/// (a host the runtime does not know, which validation rules out, logs
/// freely).
fn log_gate(runtime: &Runtime, sup: &Supervisor) -> crate::LogGate {
    let quotas: HashMap<String, Arc<HostQuota>> = (sup.statuses().into_iter())
        .filter_map(|s| Some((s.host.clone(), runtime.host_quota(&s.host)?)))
        .collect();
    Box::new(move |host, level, bytes| quotas.get(host).is_none_or(|q| q.admit_log(level, bytes)))
}

/// A supervisor wired to a runtime: create it, hand [`Driver::sender`] to
/// signal handlers, then [`Driver::run`] until every service has stopped.
pub struct Driver {
    sup: Supervisor,
    events: mpsc::Receiver<Event>,
    sender: mpsc::Sender<Event>,
    control: Arc<Control>,
    started: Instant,
    /// Whether it serves until [`Event::Shutdown`] even with nothing
    /// wanted (see [`Driver::serve_until_shutdown`]).
    until_shutdown: bool,
}

impl Driver {
    /// Wires `sup` to `runtime` (installing the `services` control).
    pub fn new(mut sup: Supervisor, runtime: &Runtime) -> Self {
        sup.set_log_gate(log_gate(runtime, &sup));
        let (sender, events) = mpsc::channel();
        let control = Arc::new(Control::new(sender.clone(), sup.statuses()));
        runtime.set_services(control.clone());
        Driver {
            sup,
            events,
            sender,
            control,
            started: Instant::now(),
            until_shutdown: false,
        }
    }

    /// Serves the `services` module until [`Event::Shutdown`] (or
    /// [`Event::Kill`]) comes, not only while a service is wanted: under
    /// `warren run <app> -x`, the main process may start a service that
    /// does not start with the application, or one after every other has
    /// ended (the module answered "the supervisor has stopped").
    #[must_use]
    pub fn serve_until_shutdown(mut self) -> Self {
        self.until_shutdown = true;
        self
    }

    /// Where interrupts (and tests) send events.
    pub fn sender(&self) -> mpsc::Sender<Event> {
        self.sender.clone()
    }

    /// Boots the services and runs until none is running or pending.
    pub fn run(mut self, runtime: &Runtime) -> Outcome {
        let now = self.started.elapsed();
        let actions = self.sup.boot(now);
        self.apply(runtime, actions);
        let mut shown = None;
        loop {
            // Only the statuses that changed are copied (every command
            // copied all of them: O(services) per no-op command; and every
            // event did, 20,000 services taking seconds to start).
            if shown != Some(self.sup.changes()) {
                shown = Some(self.sup.changes());
                let noted = self.sup.take_noted();
                let mut statuses = (self.control.statuses.lock())
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for n in noted {
                    if let Some(slot) = statuses.get_mut(n) {
                        *slot = self.sup.status(n);
                    }
                }
            }
            if self.sup.is_idle() && (!self.until_shutdown || self.sup.shutting_down()) {
                break;
            }
            let event = match self.sup.next_deadline() {
                Some(at) => self
                    .events
                    .recv_timeout(at.saturating_sub(self.started.elapsed())),
                None => self
                    .events
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            let now = self.started.elapsed();
            let actions = match event {
                Ok(Event::Exit(pid, exit)) => self.sup.exited(pid, &exit, now),
                Ok(Event::Command(id, command)) => {
                    // Taken: the same command may be queued again.
                    let key = (id, command);
                    self.control.queued().remove(&key);
                    let (id, command) = key;
                    let result = match command {
                        ServiceCommand::Start => self.sup.start(&id, now),
                        ServiceCommand::Stop => self.sup.stop(&id, now),
                        ServiceCommand::Restart => self.sup.restart(&id, now),
                    };
                    result.unwrap_or_default()
                }
                Ok(Event::Shutdown) => {
                    tracing::info!("shutting down: stopping services in reverse dependency order");
                    self.sup.shutdown(now)
                }
                Ok(Event::Kill) => {
                    tracing::warn!("terminating every service now");
                    self.sup.kill_all()
                }
                Err(RecvTimeoutError::Timeout) => self.sup.tick(now),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.apply(runtime, actions);
        }
        Outcome {
            escalation: self.sup.escalation().map(str::to_owned),
            failed: self.sup.failed_any(),
            terminated: self.sup.terminated_any(),
        }
    }

    fn apply(&mut self, runtime: &Runtime, actions: Vec<Action>) {
        let mut work: std::collections::VecDeque<Action> = actions.into();
        while let Some(action) = work.pop_front() {
            let now = self.started.elapsed();
            match action {
                Action::Spawn(n) => {
                    let spec = self.sup.spec(n);
                    let req = SpawnRequest::new(
                        spec.process.clone(),
                        spec.host.clone(),
                        spec.input.clone(),
                    );
                    let events = self.sender.clone();
                    let notify = Box::new(move |pid: Pid, exit: &Exit| {
                        let _ = events.send(Event::Exit(pid, exit.clone()));
                    });
                    match runtime.spawn_notify(req, notify) {
                        Ok(pid) => work.extend(self.sup.started(n, pid, now)),
                        Err(err) => work.extend(self.sup.spawn_failed(n, &err.into(), now)),
                    }
                }
                Action::Cancel(pid) => {
                    let _ = runtime.cancel(pid, Value::str("stop"));
                }
                Action::Terminate(pid) => {
                    let _ = runtime.kill(pid, ProcError::terminated());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control() -> (Control, mpsc::Receiver<Event>) {
        let (events, rx) = mpsc::channel();
        let status = ServiceStatus {
            id: "app:svc".into(),
            state: "running",
            pid: None,
            restarts: 0,
            reason: String::new(),
            host: "app:h".into(),
        };
        let other = ServiceStatus {
            id: "app:other".into(),
            host: "app:h2".into(),
            ..status.clone()
        };
        (Control::new(events, vec![status, other]), rx)
    }

    fn commands(rx: &mpsc::Receiver<Event>) -> Vec<ServiceCommand> {
        rx.try_iter()
            .filter_map(|e| match e {
                Event::Command(_, c) => Some(c),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_command_already_waiting_is_merged_and_the_queue_stays_bounded() {
        let (control, rx) = control();
        for _ in 0..10_000 {
            for c in [ServiceCommand::Start, ServiceCommand::Restart] {
                control.command("app:svc", c).expect("known service");
            }
        }
        let want = [ServiceCommand::Start, ServiceCommand::Restart];
        assert_eq!(commands(&rx), want, "one of each waits");
        // Taken by the driver: the same command is queued again.
        control
            .queued()
            .remove(&("app:svc".to_owned(), ServiceCommand::Start));
        control
            .command("app:svc", ServiceCommand::Start)
            .expect("known");
        control
            .command("app:svc", ServiceCommand::Restart)
            .expect("known");
        assert_eq!(commands(&rx), [ServiceCommand::Start]);
        let err = control
            .command("app:nosuch", ServiceCommand::Stop)
            .expect_err("unknown");
        assert_eq!(err.kind, ErrorKind::NotFound);
    }

    #[test]
    fn a_status_and_a_hosts_list_are_found_by_id_and_host() {
        let (control, _rx) = control();
        let svc = control.status("app:svc").expect("known");
        assert_eq!((svc.id.as_str(), svc.host.as_str()), ("app:svc", "app:h"));
        assert_eq!(control.status("app:nope"), None);
        let ids = |host: &str| -> Vec<String> {
            control.list_host(host).into_iter().map(|s| s.id).collect()
        };
        assert_eq!(ids("app:h"), ["app:svc"]);
        assert_eq!(ids("app:h2"), ["app:other"]);
        assert!(ids("app:h3").is_empty());
    }

    #[test]
    fn a_command_the_stopped_supervisor_cannot_take_is_refused_every_time() {
        // The first was refused, and the next, found queued, was answered
        // as merged into it: `true`, with nothing done.
        let (control, rx) = control();
        drop(rx);
        for _ in 0..2 {
            let err = control
                .command("app:svc", ServiceCommand::Stop)
                .expect_err("nobody takes it");
            assert_eq!(err.kind, ErrorKind::Unavailable);
        }
    }

    #[test]
    fn a_hosts_commands_past_its_budget_are_refused_and_another_hosts_are_not() {
        let (control, rx) = control();
        let mut refused = None;
        for i in 0..=COMMAND_BURST {
            // Each taken at once, as the driver would: nothing merges.
            let _ = commands(&rx);
            control.queued().clear();
            if let Err(err) = control.command("app:svc", ServiceCommand::Restart) {
                refused = Some((i, err));
                break;
            }
        }
        let (at, err) = refused.expect("refused past the burst");
        // The refill over the loop may let a command or two more in.
        assert!((COMMAND_BURST..COMMAND_BURST + 5).contains(&at), "{at}");
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert!(err.message.contains("host 'app:h'"), "{}", err.message);
        assert!(commands(&rx).is_empty(), "a refused command is not queued");
        // The same command already waiting is still merged, at no cost.
        control
            .queued()
            .insert(("app:svc".into(), ServiceCommand::Stop));
        control
            .command("app:svc", ServiceCommand::Stop)
            .expect("merged");
        // Another host's bucket is full.
        control
            .command("app:other", ServiceCommand::Restart)
            .expect("another host");
        assert_eq!(commands(&rx), [ServiceCommand::Restart]);
    }
}

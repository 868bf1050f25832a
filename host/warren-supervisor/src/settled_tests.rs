//! The step visits only marked and due services (see [`crate::work`]);
//! these tests hold it to what walking every service until nothing
//! changes did, over random applications and events: after each event a
//! full walk finds nothing left to do, and the next deadline and whether
//! anything is busy are what scanning every service says.

use std::time::Duration;

use warren_config::{RestartPolicy, ServiceEntry, Startup, Strategy};
use warren_core::{ErrorKind, Exit, Pid, ProcError};

use super::{Action, State, Supervisor};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A random application of up to 12 services in two groups, each
/// requiring some of the ones before it.
fn application(rng: &mut fastrand::Rng) -> Vec<(String, ServiceEntry)> {
    let n = rng.usize(1..13);
    (0..n)
        .map(|i| {
            let requires = (0..i)
                .filter(|_| rng.u8(0..4) == 0)
                .map(|j| format!("app:s{j}"))
                .collect();
            let strategy = [
                Strategy::OneForOne,
                Strategy::OneForAll,
                Strategy::RestForOne,
            ][rng.usize(0..3)];
            let entry = ServiceEntry {
                process: "app:proc".into(),
                host: format!("app:host{}", rng.u8(0..2)),
                input: vec![],
                auto_start: rng.u8(0..4) != 0,
                requires,
                restart: RestartPolicy {
                    strategy,
                    initial_delay: ms(rng.u64(1..300)),
                    max_delay: ms(1000),
                    backoff_factor: 2.0,
                    jitter: 0.0,
                    max_attempts: rng.u32(0..4),
                    max_restarts: rng.u32(1..6),
                    period: ms(rng.u64(100..3000)),
                },
                group: format!("g{}", rng.u8(0..2)),
                stable_threshold: ms(rng.u64(1..2000)),
                start_timeout: ms(rng.u64(1..2000)),
                stop_timeout: ms(rng.u64(1..1000)),
                startup: if rng.u8(0..3) == 0 {
                    Startup::Optional
                } else {
                    Startup::Required
                },
            };
            (format!("app:s{i}"), entry)
        })
        .collect()
}

/// Drives a supervisor with random events and checks it after each.
struct Drive {
    sup: Supervisor,
    rng: fastrand::Rng,
    now: Duration,
    next_pid: u64,
    /// Processes running, and whether each was told to stop.
    live: Vec<(Pid, bool)>,
}

impl Drive {
    fn apply(&mut self, actions: Vec<Action>) {
        let mut work: std::collections::VecDeque<Action> = actions.into();
        while let Some(action) = work.pop_front() {
            let more = match action {
                Action::Spawn(n) if self.rng.u8(0..6) == 0 => {
                    let err = ProcError::new(ErrorKind::NotFound, "no entry");
                    self.sup.spawn_failed(n, &err, self.now)
                }
                Action::Spawn(n) => {
                    let pid = Pid::new(0, self.next_pid);
                    self.next_pid += 1;
                    self.live.push((pid, false));
                    self.sup.started(n, pid, self.now)
                }
                Action::Cancel(pid) | Action::Terminate(pid) => {
                    for p in &mut self.live {
                        p.1 |= p.0 == pid;
                    }
                    Vec::new()
                }
            };
            work.extend(more);
        }
    }

    /// One random event.
    fn event(&mut self) {
        let ids = self.sup.ids.len();
        let id = format!("app:s{}", self.rng.usize(0..ids));
        let actions = match self.rng.u8(0..20) {
            0..=5 => {
                self.now += ms(self.rng.u64(0..1500));
                self.sup.tick(self.now)
            }
            6..=11 if !self.live.is_empty() => {
                let i = self.rng.usize(0..self.live.len());
                // One told to stop mostly obeys; others crash or end.
                let (pid, told) = self.live.swap_remove(i);
                let exit: Exit = match self.rng.u8(0..4) {
                    0 => Ok(warren_core::Value::Nil),
                    _ if told => Ok(warren_core::Value::Nil),
                    _ => Err(ProcError::new(ErrorKind::Unknown, "crash")),
                };
                self.sup.exited(pid, &exit, self.now)
            }
            12 | 13 => self.sup.start(&id, self.now).unwrap_or_default(),
            14 | 15 => self.sup.stop(&id, self.now).unwrap_or_default(),
            16 | 17 => self.sup.restart(&id, self.now).unwrap_or_default(),
            18 => self.sup.shutdown(self.now),
            _ => {
                self.now += ms(self.rng.u64(0..50));
                self.sup.tick(self.now)
            }
        };
        self.apply(actions);
    }
}

impl Supervisor {
    /// The order the module docs promise, as each action is asked for: a
    /// service is started only once everything it requires runs (and is
    /// not about to stop) or ended normally, and asked to stop only once nothing requiring
    /// it is on its way down (what stays up, a `restart` or a group restart
    /// does not wait for). Called by the machine in tests.
    pub(super) fn check_order(&self, action: &Action) {
        match *action {
            Action::Spawn(n) => {
                for &r in &self.requires[n] {
                    assert!(
                        (matches!(self.svcs[r].state, State::Running(..))
                            && self.pending[r].is_none())
                            || self.svcs[r].state == State::Exited,
                        "{} started before {} ran: {:?}",
                        self.ids[n],
                        self.ids[r],
                        self.svcs[r].state
                    );
                }
            }
            Action::Cancel(pid) => {
                let n = self.by_pid[&pid];
                for &d in &self.dependents[n] {
                    assert!(
                        !self.going_down(d),
                        "{} asked to stop before {}, which requires it: {:?}",
                        self.ids[n],
                        self.ids[d],
                        self.svcs[d].state
                    );
                }
            }
            Action::Terminate(_) => {}
        }
    }

    /// What walking every service says: a full walk changes nothing and
    /// asks for nothing, and the deadline and idleness match.
    fn check_settled(&mut self, now: Duration, seed: u64) {
        let expected_deadline = (0..self.svcs.len())
            .filter_map(|n| self.deadline_of(n))
            .min();
        assert_eq!(self.next_deadline(), expected_deadline, "seed {seed}");
        let idle = (0..self.svcs.len()).all(|n| !self.busy(n));
        assert_eq!(self.is_idle(), idle, "seed {seed}");
        let pids = (0..self.svcs.len())
            .filter_map(|n| self.svcs[n].state.pid().map(|p| (p, n)))
            .collect::<std::collections::HashMap<_, _>>();
        assert_eq!(pids, self.by_pid, "seed {seed}");
        let mut active = vec![0; self.svcs.len()];
        for n in 0..self.svcs.len() {
            if self.svcs[n].state.active() {
                for &r in &self.requires[n] {
                    active[r] += 1;
                }
            }
        }
        assert_eq!(active, self.active_dependents, "seed {seed}");
        for (group, members) in &self.members {
            let down = members.iter().filter(|&&n| self.down_to_restart(n)).count();
            assert_eq!(down, self.holds.count(group), "seed {seed}: group {group}");
        }
        let states: Vec<State> = self.svcs.iter().map(|s| s.state.clone()).collect();
        let mut out = Vec::new();
        for n in self.work.order().to_vec() {
            let changed = self.step_one(n, now, &mut out);
            assert!(!changed, "seed {seed}: service {n} still had a move");
        }
        assert!(out.is_empty(), "seed {seed}: a full walk asked for {out:?}");
        let after: Vec<State> = self.svcs.iter().map(|s| s.state.clone()).collect();
        assert_eq!(states, after, "seed {seed}");
    }
}

#[test]
fn each_event_leaves_nothing_a_full_walk_would_do() {
    for seed in 0..400 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let services = application(&mut rng);
        let mut drive = Drive {
            sup: Supervisor::new(services, seed),
            rng,
            now: Duration::ZERO,
            next_pid: 1,
            live: Vec::new(),
        };
        let boot = drive.sup.boot(Duration::ZERO);
        drive.apply(boot);
        drive.sup.check_settled(drive.now, seed);
        for _ in 0..200 {
            drive.event();
            drive.sup.check_settled(drive.now, seed);
        }
    }
}

/// Boots `sup`, each spawn starting at once: the pids, in spawn order.
fn boot_all(sup: &mut Supervisor) -> Vec<Pid> {
    let mut pending: std::collections::VecDeque<Action> = sup.boot(Duration::ZERO).into();
    let mut pids = Vec::new();
    while let Some(action) = pending.pop_front() {
        if let Action::Spawn(n) = action {
            let pid = Pid::new(0, pids.len() as u64 + 1);
            pids.push(pid);
            pending.extend(sup.started(n, pid, Duration::ZERO));
        }
    }
    pids
}

#[test]
fn booting_many_independent_services_visits_each_a_few_times() {
    let services: Vec<(String, ServiceEntry)> = (0..20_000)
        .map(|i| {
            let mut rng = fastrand::Rng::with_seed(i);
            let mut entry = application(&mut rng).swap_remove(0);
            entry.1.requires.clear();
            entry.1.auto_start = true;
            (format!("app:s{i}"), entry.1)
        })
        .collect();
    let mut sup = Supervisor::new(services, 7);
    assert_eq!(
        boot_all(&mut sup).len(),
        20_000,
        "every service was spawned once"
    );
    // Stopped -> Waiting -> Starting, then Running and a last look: each
    // service is visited a handful of times, not once per event.
    assert!(
        sup.work.visits <= 5 * 20_000,
        "{} visits for 20,000 services",
        sup.work.visits
    );
}

#[test]
fn a_service_twenty_thousand_require_is_not_walked_for_each_of_them() {
    let hub = application(&mut fastrand::Rng::with_seed(1))
        .swap_remove(0)
        .1;
    let mut services = vec![("app:hub".to_owned(), hub.clone())];
    for i in 0..20_000 {
        let mut entry = hub.clone();
        entry.requires = vec!["app:hub".into()];
        entry.auto_start = true;
        services.push((format!("app:s{i}"), entry));
    }
    let mut sup = Supervisor::new(services, 7);
    let pids = boot_all(&mut sup);
    assert_eq!(pids.len(), 20_001);
    // Stopped in order: every dependent's CANCEL, then the hub's once the
    // last is down.
    let mut cancels = sup.shutdown(Duration::ZERO);
    assert_eq!(cancels.len(), 20_000, "the dependents first");
    for &p in &pids[1..] {
        cancels.extend(sup.exited(p, &Ok(warren_core::Value::Nil), Duration::ZERO));
    }
    assert_eq!(cancels.last(), Some(&Action::Cancel(pids[0])));
    assert!(
        sup.work.visits <= 12 * 20_000,
        "{} visits for 20,001 services",
        sup.work.visits
    );
}

#[test]
fn stopping_under_a_layered_graph_looks_at_each_service_once() {
    // 40 layers of two services, each requiring both of the layer below:
    // 2^40 paths from the bottom. Each path was expanded on its own.
    let base = application(&mut fastrand::Rng::with_seed(3))
        .swap_remove(0)
        .1;
    let mut services = Vec::new();
    for layer in 0..40 {
        for k in 0..2 {
            let mut entry = base.clone();
            entry.auto_start = true;
            entry.requires = if layer == 0 {
                Vec::new()
            } else {
                vec![
                    format!("app:l{}k0", layer - 1),
                    format!("app:l{}k1", layer - 1),
                ]
            };
            services.push((format!("app:l{layer}k{k}"), entry));
        }
    }
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sup = Supervisor::new(services, 5);
        let pid = boot_all(&mut sup).len();
        let cancels = sup.stop("app:l0k0", Duration::ZERO).expect("known");
        let _ = done.send((pid, cancels));
    });
    let (spawned, cancels) = finished
        .recv_timeout(Duration::from_secs(20))
        .expect("the stop came back");
    assert_eq!(spawned, 80);
    // Only the top layer has nothing running on it.
    assert_eq!(cancels.len(), 2, "{cancels:?}");
}

//! Placement through the real runtime: a parent's children are counted
//! in bursts, so a long-lived spawner's later rounds spread as its first
//! did, and siblings that start at once and spawn helpers of their own do
//! not tilt the parent's later choices.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::core::Core;
use crate::frontend::Program;
use crate::item::Item;
use crate::limits::HostLimits;
use crate::pid::Pid;
use crate::runtime::{Runtime, RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, host, program};

/// How long the test waits for a report before failing.
const WAIT: Duration = Duration::from_secs(10);

/// Children per round.
const ROUND: usize = 8;

/// Rounds the spawner makes.
const ROUNDS: usize = 6;

fn worker_of(core: &Core, pid: Pid) -> usize {
    core.shared.directory.get(pid).expect("placed")
}

/// Spawns `ROUND` monitored children of `child`, reports their workers,
/// and spawns the next round once all of them have exited.
fn rounds(child: &'static str, report: Sender<Vec<usize>>) -> Program {
    let report = Mutex::new(report);
    let left = Mutex::new(0usize);
    program("rounds", move |core, me, item| {
        let mut left = left.lock().expect("lock");
        match item {
            Item::Start { .. } => {}
            Item::Event(_) => {
                *left -= 1;
                if *left > 0 {
                    return false;
                }
            }
            _ => return false,
        }
        let workers = (0..ROUND)
            .map(|_| {
                let mut req = SpawnRequest::new(child, "app", vec![]);
                req.monitor = true;
                let pid = core.spawn(me, req).expect("spawn");
                worker_of(core, pid)
            })
            .collect();
        *left = ROUND;
        report
            .lock()
            .expect("lock")
            .send(workers)
            .expect("test alive");
        false
    })
}

/// Spawns a helper as its first child and reports its own worker and the
/// helper's; then waits for good.
fn pair(report: Sender<(usize, usize)>) -> Program {
    let report = Mutex::new(report);
    program("pair", move |core, me, item| {
        if matches!(item, Item::Start { .. }) {
            let helper = core
                .spawn(me, SpawnRequest::new("idle", "app", vec![]))
                .expect("spawn");
            let placed = (core.worker, worker_of(core, helper));
            report
                .lock()
                .expect("lock")
                .send(placed)
                .expect("test alive");
        }
        false
    })
}

/// Spawns `ROUND` pairs at once, then waits for good.
fn driver() -> Program {
    program("driver", |core, me, item| {
        if matches!(item, Item::Start { .. }) {
            for _ in 0..ROUND {
                core.spawn(me, SpawnRequest::new("pair", "app", vec![]))
                    .expect("spawn");
            }
        }
        false
    })
}

fn runtime(programs: Vec<Program>) -> Runtime {
    let mut builder = RuntimeBuilder::new()
        .host(host("app", 2, HostLimits::default()))
        .frontend(Arc::new(Factory))
        .program(program("quick", |_, _, _| true))
        .program(program("idle", |_, _, _| false));
    for p in programs {
        builder = builder.program(p);
    }
    builder.start().expect("runtime")
}

fn on_each(workers: &[usize]) -> [usize; 2] {
    let on_0 = workers.iter().filter(|w| **w == 0).count();
    [on_0, workers.len() - on_0]
}

fn next<T>(rx: &Receiver<T>) -> T {
    rx.recv_timeout(WAIT).expect("a report")
}

#[test]
fn every_round_of_a_long_lived_spawner_spreads_like_its_first() {
    let (tx, rx) = channel();
    let rt = runtime(vec![rounds("quick", tx)]);
    rt.spawn(SpawnRequest::new("rounds", "app", vec![]))
        .expect("spawn");
    for round in 0..ROUNDS {
        let workers = next(&rx);
        assert_eq!(on_each(&workers), [4, 4], "round {round}: {workers:?}");
    }
}

#[test]
fn eight_pairs_spawned_at_once_split_four_and_four_each_pair_together() {
    let (tx, rx) = channel();
    let rt = runtime(vec![pair(tx), driver()]);
    rt.spawn(SpawnRequest::new("driver", "app", vec![]))
        .expect("spawn");
    let placed: Vec<(usize, usize)> = (0..ROUND).map(|_| next(&rx)).collect();
    for (pair, helper) in &placed {
        assert_eq!(pair, helper, "a pair split over two workers: {placed:?}");
    }
    let pairs: Vec<usize> = placed.iter().map(|p| p.0).collect();
    assert_eq!(on_each(&pairs), [4, 4], "{placed:?}");
}

//! Placement through the real runtime: a parent's children are counted
//! in bursts, so a long-lived spawner's later rounds spread as its first
//! did, and siblings that start at once and spawn helpers of their own do
//! not tilt the parent's later choices. Each child says where it runs
//! once it starts (a burst's children wait on their parent's worker until
//! the burst is placed, see `burst`).

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::frontend::Program;
use crate::item::Item;
use crate::limits::HostLimits;
use crate::runtime::{Runtime, RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, host, program};
use crate::value::Value;

/// How long the test waits for a report before failing.
const WAIT: Duration = Duration::from_secs(10);

/// Children per round.
const ROUND: usize = 8;

/// Rounds the spawner makes.
const ROUNDS: usize = 6;

/// Reports the worker it starts on, then exits.
fn quick(report: Sender<usize>) -> Program {
    let report = Mutex::new(report);
    program("quick", move |core, _, item| {
        if matches!(item, Item::Start { .. }) {
            let sent = report.lock().expect("lock").send(core.worker);
            sent.expect("test alive");
        }
        true
    })
}

/// Spawns `ROUND` monitored children of `child` and spawns the next
/// round once all of them have exited.
fn rounds(child: &'static str) -> Program {
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
        for _ in 0..ROUND {
            let mut req = SpawnRequest::new(child, "app", vec![]);
            req.monitor = true;
            core.spawn(me, req).expect("spawn");
        }
        *left = ROUND;
        false
    })
}

/// Spawns a helper as its first child, telling it its own worker; then
/// waits for good.
fn pair() -> Program {
    program("pair", move |core, me, item| {
        if matches!(item, Item::Start { .. }) {
            core.spawn(me, told("helper", core.worker)).expect("spawn");
        }
        false
    })
}

/// A process of entry `name` that reports the number it was started
/// with and its own worker; then waits for good.
fn reporter(name: &'static str, report: Sender<(usize, usize)>) -> Program {
    let report = Mutex::new(report);
    program(name, move |core, _, item| {
        if let Item::Start { args, .. } = item {
            let Some(Value::Int(told)) = args.first() else {
                panic!("{name} started with {args:?}");
            };
            let placed = (usize::try_from(*told).expect("small"), core.worker);
            report
                .lock()
                .expect("lock")
                .send(placed)
                .expect("test alive");
        }
        false
    })
}

/// A spawn request of `entry` told `n`.
fn told(entry: &str, n: usize) -> SpawnRequest {
    let n = Value::Int(i64::try_from(n).expect("small"));
    SpawnRequest::new(entry, "app", vec![n])
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
        .frontend(Arc::new(Factory));
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
    let rt = runtime(vec![rounds("quick"), quick(tx)]);
    rt.spawn(SpawnRequest::new("rounds", "app", vec![]))
        .expect("spawn");
    for round in 0..ROUNDS {
        let workers: Vec<usize> = (0..ROUND).map(|_| next(&rx)).collect();
        assert_eq!(on_each(&workers), [4, 4], "round {round}: {workers:?}");
    }
}

#[test]
fn eight_pairs_spawned_at_once_split_four_and_four_each_pair_together() {
    let (tx, rx) = channel();
    let rt = runtime(vec![pair(), reporter("helper", tx), driver()]);
    rt.spawn(SpawnRequest::new("driver", "app", vec![]))
        .expect("spawn");
    let placed: Vec<(usize, usize)> = (0..ROUND).map(|_| next(&rx)).collect();
    for (pair, helper) in &placed {
        assert_eq!(pair, helper, "a pair split over two workers: {placed:?}");
    }
    let pairs: Vec<usize> = placed.iter().map(|p| p.0).collect();
    assert_eq!(on_each(&pairs), [4, 4], "{placed:?}");
}

/// Spawns `n` children of `numbered` at once, each told its place in
/// the burst; then waits for good.
fn burst(n: usize) -> Program {
    program("burst", move |core, me, item| {
        if matches!(item, Item::Start { .. }) {
            for i in 0..n {
                core.spawn(me, told("numbered", i)).expect("spawn");
            }
        }
        false
    })
}

#[test]
fn a_ring_sized_burst_is_placed_in_one_block_per_worker() {
    const N: usize = 503;
    let (tx, rx) = channel();
    let rt = runtime(vec![burst(N), reporter("numbered", tx)]);
    rt.spawn(SpawnRequest::new("burst", "app", vec![]))
        .expect("spawn");
    let mut workers = vec![usize::MAX; N];
    for _ in 0..N {
        let (i, w) = next(&rx);
        workers[i] = w;
    }
    // Around the ring, back to the first.
    let crossings = (0..N)
        .filter(|i| workers[*i] != workers[(i + 1) % N])
        .count();
    assert_eq!(crossings, 2, "{workers:?}");
    let [on_0, on_1] = on_each(&workers);
    assert!(on_0.abs_diff(on_1) <= 1, "{on_0} and {on_1}");
}

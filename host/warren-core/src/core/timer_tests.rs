//! What armed timers cost their host (`Core::start_timer`,
//! [`TIMER_BYTES`]): each is charged while its entry is in the worker's
//! heap and its process lives, and given back when it fires, when a
//! cancelled one is swept out, and when its process ends; through a real
//! runtime with a scripted process (its host holds nothing else).

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::item::Item;
use crate::limits::{HostLimits, TIMER_BYTES};
use crate::runtime::{Runtime, RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, host, program};
use crate::value::Value;

const WAIT: Duration = Duration::from_secs(10);

/// On start, arms `n` timers (the first argument): ids 1..=n one hour
/// away, and id 0 at once. When id 0 fires it reports, then cancels every
/// hour-long timer if the second argument says so, and reports again.
fn armer(tx: Sender<&'static str>) -> crate::frontend::Program {
    let tx = Mutex::new(tx);
    let n = Mutex::new((0_u64, false));
    program("t:armer", move |core, me, item| {
        let report = |r| tx.lock().expect("lock").send(r).expect("test alive");
        let mut n = n.lock().expect("lock");
        match item {
            Item::Start { args, .. } => {
                let Value::Int(count) = args[0] else {
                    panic!("a count")
                };
                let count = u64::try_from(count).expect("a count");
                *n = (count, args[1] == Value::Bool(true));
                for id in 1..=count {
                    core.start_timer(me, id, Duration::from_secs(3600));
                }
                core.start_timer(me, 0, Duration::ZERO);
            }
            Item::Timer(0) => {
                report("armed");
                if n.1 {
                    for id in 1..=n.0 {
                        core.cancel_timer(me, id);
                    }
                    report("cancelled");
                }
            }
            _ => {}
        }
        false
    })
}

fn start() -> (Runtime, std::sync::mpsc::Receiver<&'static str>) {
    let (tx, rx) = channel();
    let rt = RuntimeBuilder::new()
        .host(host("app", 1, HostLimits::default()))
        .frontend(Arc::new(Factory))
        .program(armer(tx))
        .start()
        .expect("runtime");
    (rt, rx)
}

fn used(rt: &Runtime) -> u64 {
    rt.memory_used("app").expect("the host")
}

/// Waits (10 s at most) until the host's count is `want`.
fn settles_at(rt: &Runtime, want: u64) {
    let deadline = Instant::now() + WAIT;
    while used(rt) != want {
        assert!(
            Instant::now() < deadline,
            "{} held, {want} expected",
            used(rt)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn armed_timers_are_charged_and_cancelled_ones_given_back_as_they_are_swept() {
    let (rt, rx) = start();
    let args = vec![Value::Int(1_000), Value::Bool(true)];
    rt.spawn(SpawnRequest::new("t:armer", "app", args))
        .expect("spawn");
    assert_eq!(rx.recv_timeout(WAIT), Ok("armed"));
    // (The count is read once the cancels are done: they come before
    // this second report.)
    assert_eq!(rx.recv_timeout(WAIT), Ok("cancelled"));
    // Cancelled entries are swept once they are half the heap and more
    // than 256: what is left is at most that floor, still charged.
    // (1,000 armed: 501 swept at the 501st cancel, 257 at the 758th.)
    let left = used(&rt);
    assert!(
        left > 0 && left <= 256 * TIMER_BYTES,
        "{left} bytes held after the cancels"
    );
    assert_eq!(left % TIMER_BYTES, 0);
}

#[test]
fn the_timers_of_an_ended_process_are_given_back_when_swept() {
    let (rt, rx) = start();
    let args = vec![Value::Int(2_000), Value::Bool(false)];
    let pid = rt
        .spawn(SpawnRequest::new("t:armer", "app", args))
        .expect("spawn");
    assert_eq!(rx.recv_timeout(WAIT), Ok("armed"));
    // 2,000 hour-long timers armed (the one that fired is given back).
    assert_eq!(used(&rt), 2_000 * TIMER_BYTES);
    rt.kill(pid, crate::error::ProcError::terminated())
        .expect("kill");
    // Its exit sweeps them: more than 256, and all of the heap.
    settles_at(&rt, 0);
}

#[test]
fn the_timers_of_an_ended_process_are_given_back_at_its_exit_however_few() {
    // Ten hour-long timers, all cancelled, then the process is killed: too
    // few to be swept (the floor is 256), they stayed charged for the
    // hour; now their charge goes back with the process.
    let (rt, rx) = start();
    let args = vec![Value::Int(10), Value::Bool(true)];
    let pid = rt
        .spawn(SpawnRequest::new("t:armer", "app", args))
        .expect("spawn");
    assert_eq!(rx.recv_timeout(WAIT), Ok("armed"));
    assert_eq!(rx.recv_timeout(WAIT), Ok("cancelled"));
    assert_eq!(used(&rt), 10 * TIMER_BYTES, "cancelled, not swept yet");
    rt.kill(pid, crate::error::ProcError::terminated())
        .expect("kill");
    settles_at(&rt, 0);
    assert_eq!(rt.armed_timers(), 10, "the entries wait in the heap");
}

//! Between batches of resumptions a worker hands its commands for an idle
//! worker over ([`Core::hand_over_to_idle`]) and takes in what was sent to
//! it ([`Core::take_incoming`]), not only when its slice ends; commands
//! for a busy worker stay batched.

use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::core::Core;
use crate::frontend::Program;
use crate::item::{Item, Message};
use crate::limits::HostLimits;
use crate::pid::Pid;
use crate::placement::Home;
use crate::runtime::{Runtime, RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, host, program, reports_start};
use crate::value::Value;
use crate::worker::Cmd;

/// How long a test waits for a report before failing.
const WAIT: Duration = Duration::from_secs(10);

/// Two workers running `programs`.
fn runtime(programs: Vec<Program>) -> Runtime {
    runtime_of(2, programs)
}

/// `workers` workers running `programs`.
fn runtime_of(workers: usize, programs: Vec<Program>) -> Runtime {
    let mut builder = RuntimeBuilder::new()
        .host(host("app", workers, HostLimits::default()))
        .frontend(Arc::new(Factory));
    for p in programs {
        builder = builder.program(p);
    }
    builder.start().expect("runtime")
}

/// Places a recorder on the other worker (the least loaded: this one holds
/// the caller) and queues its spawn in this worker's outbox.
fn spawn_elsewhere(core: &mut Core, me: Pid) -> usize {
    let req = SpawnRequest::new("recorder", "app", vec![]);
    let (spawn, worker) = core
        .shared
        .prepare_spawn(req, Some(me), Home::None)
        .expect("placed");
    assert_ne!(
        worker, core.worker,
        "the recorder is placed on the other worker"
    );
    core.dispatch(worker, Cmd::Spawn(spawn));
    worker
}

/// Whether the recorder started while the caller's step (its worker's
/// slice) is still running, handing over until then.
fn started_within_the_slice(core: &mut Core, started: &Receiver<Pid>) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        core.hand_over_to_idle();
        if started.recv_timeout(Duration::from_millis(10)).is_ok() {
            return true;
        }
    }
    false
}

#[test]
fn a_spawn_for_an_idle_worker_starts_before_the_spawners_slice_ends() {
    let (started, was_started) = channel();
    let was_started = Mutex::new(was_started);
    let (report, reported) = channel();
    let report = Mutex::new(report);
    let spawner = program("spawner", move |core, me, item| {
        if matches!(item, Item::Start { .. }) {
            spawn_elsewhere(core, me);
            let rx = was_started.lock().expect("lock");
            let ok = started_within_the_slice(core, &rx);
            report.lock().expect("lock").send(ok).expect("test alive");
        }
        false
    });
    let rt = runtime(vec![reports_start("recorder", started), spawner]);
    rt.spawn(SpawnRequest::new("spawner", "app", vec![]))
        .expect("spawn");
    let ok = reported
        .recv_timeout(WAIT * 2)
        .expect("the spawner reports");
    assert!(ok, "the spawn waited in the outbox for the slice's end");
}

#[test]
fn commands_for_a_busy_worker_stay_batched_until_the_slice_ends() {
    // A process holds its worker busy (inside its step) until released;
    // the other worker's process sends it a message and hands over.
    let (held, was_held) = channel::<Pid>();
    let held = Mutex::new(held);
    let (release, released) = channel::<()>();
    let released = Mutex::new(released);
    let (got, was_got) = channel::<String>();
    let got = Mutex::new(got);
    let holder = program("holder", move |_, me, item| {
        match item {
            Item::Start { .. } => {
                held.lock().expect("lock").send(me).expect("test alive");
                let rx = released.lock().expect("lock");
                rx.recv_timeout(WAIT).expect("released");
            }
            Item::Msg(m) => got
                .lock()
                .expect("lock")
                .send(m.topic.to_string())
                .expect("test alive"),
            _ => {}
        }
        false
    });
    let (queued, was_queued) = channel::<usize>();
    let queued = Mutex::new(queued);
    let target = Arc::new(Mutex::new(None::<Pid>));
    let to = target.clone();
    let sender = program("sender", move |core, me, item| {
        if matches!(item, Item::Start { .. }) {
            let to = to.lock().expect("lock").expect("the holder's pid");
            let worker = core.shared.directory.get(to).expect("the holder is placed");
            assert_ne!(worker, core.worker, "the holder runs on the other worker");
            let msg = Message {
                from: me,
                topic: "hello".into(),
                payloads: vec![Value::Int(1).into()],
                held: None,
            };
            core.dispatch(worker, Cmd::Deliver(to, Item::Msg(msg)));
            core.hand_over_to_idle();
            let left = core.outbox[worker].len();
            queued.lock().expect("lock").send(left).expect("test alive");
        }
        false
    });
    let rt = runtime(vec![holder, sender]);
    rt.spawn(SpawnRequest::new("holder", "app", vec![]))
        .expect("spawn");
    let pid = was_held.recv_timeout(WAIT).expect("the holder starts");
    *target.lock().expect("lock") = Some(pid);
    rt.spawn(SpawnRequest::new("sender", "app", vec![]))
        .expect("spawn");
    let left = was_queued.recv_timeout(WAIT).expect("the sender reports");
    assert_eq!(
        left, 1,
        "the message for a busy worker was handed over at once"
    );
    release.send(()).expect("holder alive");
    let topic = was_got
        .recv_timeout(WAIT)
        .expect("the message arrives after the slice");
    assert_eq!(topic, "hello");
}

#[test]
fn a_kill_sent_to_a_busy_worker_is_taken_in_within_the_slice() {
    // One worker: a victim waits; a watcher, inside its step, takes in
    // what comes and reports whether the kill the test sends made the
    // victim ready before the step (the worker's slice) ended.
    let (started, was_started) = channel();
    let (ready, was_ready) = channel::<()>();
    let ready = Mutex::new(ready);
    let (report, reported) = channel();
    let report = Mutex::new(report);
    let watcher = program("watcher", move |core, _, item| {
        if matches!(item, Item::Start { .. }) {
            ready.lock().expect("lock").send(()).expect("test alive");
            let deadline = Instant::now() + WAIT;
            let mut seen = false;
            while !seen && Instant::now() < deadline {
                core.take_incoming();
                seen = core.has_ready(0);
                std::thread::yield_now();
            }
            report.lock().expect("lock").send(seen).expect("test alive");
        }
        false
    });
    let rt = runtime_of(1, vec![reports_start("recorder", started), watcher]);
    rt.spawn(SpawnRequest::new("recorder", "app", vec![]))
        .expect("spawn");
    let victim = was_started.recv_timeout(WAIT).expect("the victim starts");
    rt.spawn(SpawnRequest::new("watcher", "app", vec![]))
        .expect("spawn");
    was_ready.recv_timeout(WAIT).expect("the watcher starts");
    let reason = crate::error::ProcError::new(crate::ErrorKind::Canceled, "stop");
    rt.kill(victim, reason).expect("kill sent");
    let seen = reported
        .recv_timeout(WAIT * 2)
        .expect("the watcher reports");
    assert!(seen, "the kill waited in the queue for the slice's end");
}

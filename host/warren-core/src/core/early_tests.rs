//! Commands that reach a worker before the spawn of their target (workers
//! push to each other independently, so with three workers a message sent
//! to a pid learnt from a third process can overtake the spawn) wait for
//! the spawn instead of being dropped: the message is received, the kill
//! ends the process.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::frontend::Program;
use crate::item::{Item, Message};
use crate::limits::HostLimits;
use crate::pid::Pid;
use crate::placement::Home;
use crate::runtime::{Runtime, RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, host, program};
use crate::value::Value;
use crate::worker::Cmd;

/// How long the test waits for a report before failing.
const WAIT: Duration = Duration::from_secs(10);

/// A process that reports each item it gets ("start", or a message's
/// topic) and never ends.
fn recorder(tx: Sender<String>) -> Program {
    let tx = Mutex::new(tx);
    program("recorder", move |_, _, item| {
        let what = match item {
            Item::Start { .. } => "start".to_owned(),
            Item::Msg(m) => m.topic.to_string(),
            _ => return false,
        };
        tx.lock().expect("lock").send(what).expect("test alive");
        false
    })
}

/// A process that places a recorder and pushes `early(pid)` to its
/// worker ahead of the spawn, in one batch, so the worker reads them in
/// that order; then it reports the recorder's pid and waits for good.
fn overtaker(early: fn(Pid, Pid) -> Cmd, placed: Sender<Pid>) -> Program {
    let placed = Mutex::new(placed);
    program("overtaker", move |core, me, item| {
        if matches!(item, Item::Start { .. }) {
            let req = SpawnRequest::new("recorder", "app", vec![]);
            let (spawn, worker) = core
                .shared
                .prepare_spawn(req, Some(me), Home::None)
                .expect("placed");
            let pid = spawn.pid;
            core.shared.workers[worker].push_all([early(pid, me), Cmd::Spawn(spawn)]);
            placed.lock().expect("lock").send(pid).expect("test alive");
        }
        false
    })
}

/// A runtime of two workers running an [`overtaker`], once it has placed
/// its recorder.
fn runtime(tx: Sender<String>, early: fn(Pid, Pid) -> Cmd) -> Runtime {
    let (placed, was_placed) = channel();
    let rt = RuntimeBuilder::new()
        .host(host("app", 2, HostLimits::default()))
        .frontend(Arc::new(Factory))
        .program(recorder(tx))
        .program(overtaker(early, placed))
        .start()
        .expect("runtime");
    rt.spawn(SpawnRequest::new("overtaker", "app", vec![]))
        .expect("spawn");
    was_placed
        .recv_timeout(WAIT)
        .expect("the recorder is placed");
    rt
}

#[test]
fn a_message_that_overtakes_the_spawn_is_received_after_the_start() {
    let (tx, rx) = channel();
    let _rt = runtime(tx, |pid, from| {
        let msg = Message {
            from,
            topic: "early".into(),
            payloads: vec![Value::Int(1).into()],
            held: None,
        };
        Cmd::Deliver(pid, Item::Msg(msg))
    });
    let got: Vec<String> = (0..2)
        .map(|_| rx.recv_timeout(WAIT).expect("the recorder reports"))
        .collect();
    assert_eq!(got, ["start", "early"]);
}

#[test]
fn a_kill_that_overtakes_the_spawn_ends_the_process() {
    let (tx, rx) = channel();
    let rt = runtime(tx, |pid, _| {
        Cmd::Kill(
            pid,
            crate::error::ProcError::new(crate::ErrorKind::Canceled, "early"),
        )
    });
    // Only the overtaker is left once the recorder is killed (it was
    // left running when the kill was dropped).
    let deadline = Instant::now() + WAIT;
    while rt.live_processes() != 1 {
        assert!(Instant::now() < deadline, "the killed process still runs");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        rx.try_iter().all(|what| what == "start"),
        "the killed process received a message"
    );
}

/// A process that places a recorder on its own worker without handing
/// the spawn over yet, sends it a message from here (a pid it could have
/// learnt through a third worker before the spawn came), then hands the
/// spawn to its worker; it reports the send's outcome.
fn sender_ahead(outcome: Sender<String>) -> Program {
    let outcome = Mutex::new(outcome);
    program("ahead", move |core, me, item| {
        if matches!(item, Item::Start { .. }) {
            let req = SpawnRequest::new("recorder", "app", vec![]);
            let (spawn, worker) = core
                .shared
                .prepare_spawn(req, Some(me), Home::Parent(core.worker))
                .expect("placed");
            assert_eq!(worker, core.worker, "placed on the sender's worker");
            let sent = core.send(me, spawn.pid, "early", vec![Value::Int(1).into()]);
            core.shared.workers[worker].push_all([Cmd::Spawn(spawn)]);
            let said = match sent {
                Ok(()) => "sent".to_owned(),
                Err(e) => format!("{:?}: {}", e.kind, e.message),
            };
            outcome
                .lock()
                .expect("lock")
                .send(said)
                .expect("test alive");
        }
        false
    })
}

#[test]
fn a_send_from_the_same_worker_ahead_of_the_spawn_is_received_after_the_start() {
    let (tx, rx) = channel();
    let (said, outcome) = channel();
    let rt = RuntimeBuilder::new()
        .host(host("app", 2, HostLimits::default()))
        .frontend(Arc::new(Factory))
        .program(recorder(tx))
        .program(sender_ahead(said))
        .start()
        .expect("runtime");
    rt.spawn(SpawnRequest::new("ahead", "app", vec![]))
        .expect("spawn");
    assert_eq!(
        outcome.recv_timeout(WAIT).expect("the send's outcome"),
        "sent"
    );
    let got: Vec<String> = (0..2)
        .map(|_| rx.recv_timeout(WAIT).expect("the recorder reports"))
        .collect();
    assert_eq!(got, ["start", "early"]);
}

//! What a process's entry in its worker's table costs: the entry itself
//! stays small (rare parts are boxed), and its item queue keeps no buffer
//! while the process waits (an idle process must not hold the four-item
//! allocation its start item needed), and it leaves its worker's ready
//! queue with its last item.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::frontend::Program;
use crate::item::Item;
use crate::limits::HostLimits;
use crate::pid::Pid;
use crate::runtime::{RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, host, program, reports_start};
use crate::value::Value;

/// How long the test waits for a report before failing.
const WAIT: Duration = Duration::from_secs(10);

/// A process that reports the queue capacity of the pid it is given.
fn probe(tx: Sender<Option<usize>>) -> Program {
    let tx = Mutex::new(tx);
    program("probe", move |core, _, item| {
        if let Item::Start { args, .. } = item {
            let pid = args.first().and_then(Value::as_str).and_then(Pid::parse);
            let pid = pid.expect("the probe is given a pid");
            tx.lock()
                .expect("lock")
                .send(core.queue_capacity(pid))
                .expect("test alive");
        }
        true
    })
}

#[test]
fn a_waiting_process_keeps_no_queue_buffer() {
    let (idle_tx, idle_rx) = channel();
    let (probe_tx, probe_rx) = channel();
    let rt = RuntimeBuilder::new()
        .host(host("app", 1, HostLimits::default()))
        .frontend(Arc::new(Factory))
        .program(reports_start("idle", idle_tx))
        .program(probe(probe_tx))
        .start()
        .expect("runtime");
    rt.spawn(SpawnRequest::new("idle", "app", vec![]))
        .expect("spawn");
    let waiting = idle_rx.recv_timeout(WAIT).expect("the idle process starts");
    let arg = Value::str(waiting.to_string());
    rt.spawn(SpawnRequest::new("probe", "app", vec![arg]))
        .expect("spawn");
    let capacity = probe_rx.recv_timeout(WAIT).expect("the probe reports");
    assert_eq!(
        capacity,
        Some(0),
        "the waiting process's queue kept its buffer"
    );
}

#[test]
fn an_entry_stays_small() {
    // Every live process has one, in a hash table with up to half its
    // slots free: links, monitors, kills and I/O are boxed. 104 since
    // session 58: the entry its code is (`program`, what it may spawn).
    let size = std::mem::size_of::<super::ProcEntry>();
    assert!(size <= 104, "a process entry is {size} bytes");
}

/// A process that sends itself two messages when it starts, then reports,
/// for each message it gets, whether its worker (the only one: front-end
/// index 0) still has items ready.
fn self_sender(tx: Sender<bool>) -> Program {
    let tx = Mutex::new(tx);
    program("self_sender", move |core, me, item| match item {
        Item::Start { .. } => {
            for topic in ["one", "two"] {
                core.send(me, me, topic, vec![]).expect("sends to itself");
            }
            false
        }
        Item::Msg(_) => {
            let more = core.has_ready(0);
            tx.lock().expect("lock").send(more).expect("test alive");
            false
        }
        _ => false,
    })
}

#[test]
fn a_process_leaves_the_ready_queue_with_its_last_item() {
    // `has_ready` right after an item is taken says whether more wait (the
    // Lua kernel asks no further when it says no).
    let (tx, rx) = channel();
    let rt = RuntimeBuilder::new()
        .host(host("app", 1, HostLimits::default()))
        .frontend(Arc::new(Factory))
        .program(self_sender(tx))
        .start()
        .expect("runtime");
    rt.spawn(SpawnRequest::new("self_sender", "app", vec![]))
        .expect("spawn");
    let first = rx.recv_timeout(WAIT).expect("the first message");
    let second = rx.recv_timeout(WAIT).expect("the second message");
    assert_eq!((first, second), (true, false));
}

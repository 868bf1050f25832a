//! Exits told a step at a time (`telling.rs`): everyone is told, and two
//! exits reach a process that watches both in the order they happened,
//! even when the first is told over several turns of the worker's loop.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use super::telling::TELL_STEP;
use crate::item::{Event, Item};
use crate::limits::HostLimits;
use crate::pid::Pid;
use crate::runtime::{RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, host, program};
use crate::value::Value;

const WAIT: Duration = Duration::from_secs(10);

/// What a watcher reports.
#[derive(Debug)]
enum Report {
    Ready,
    /// It heard the exit of this process.
    Heard(Pid, Pid),
}

/// Monitors the pids of its arguments, then reports each EXIT it hears.
fn watcher(tx: Sender<Report>) -> crate::frontend::Program {
    let tx = Mutex::new(tx);
    program("t:watcher", move |core, me, item| {
        let report = |r| tx.lock().expect("lock").send(r).expect("test alive");
        match item {
            Item::Start { args, .. } => {
                for a in &args {
                    let target = Pid::parse(a.as_str().expect("text")).expect("pid");
                    core.monitor(me, target).expect("monitor");
                }
                report(Report::Ready);
            }
            Item::Event(Event::Exit { from, .. }) => report(Report::Heard(me, from)),
            _ => {}
        }
        false
    })
}

/// Sends "end" to each pid of its arguments, in order, in one step.
fn ender() -> crate::frontend::Program {
    program("t:ender", |core, me, item| {
        if let Item::Start { args, .. } = item {
            for a in &args {
                let to = Pid::parse(a.as_str().expect("text")).expect("pid");
                core.send(me, to, "end", Vec::new()).expect("alive");
            }
        }
        true
    })
}

#[test]
fn a_second_exit_waits_behind_one_still_being_told_and_everyone_hears_both() {
    let (tx, rx) = channel();
    let rt = RuntimeBuilder::new()
        .host(host("app", 1, HostLimits::default()))
        .frontend(std::sync::Arc::new(Factory))
        .program(watcher(tx))
        .program(ender())
        .program(program("t:target", |_, _, item| {
            matches!(item, Item::Msg(_))
        }))
        .start()
        .expect("runtime");
    let spawn =
        |id: &str, args: Vec<Value>| rt.spawn(SpawnRequest::new(id, "app", args)).expect("spawn");
    let (first, second) = (spawn("t:target", vec![]), spawn("t:target", vec![]));
    let both = vec![
        Value::str(first.to_string()),
        Value::str(second.to_string()),
    ];
    let n = 3 * TELL_STEP + 5;
    for _ in 0..n {
        spawn("t:watcher", both.clone());
    }
    for _ in 0..n {
        assert!(matches!(rx.recv_timeout(WAIT), Ok(Report::Ready)));
    }
    // Both end in one turn: the first's watchers take several steps to
    // tell, and the second's exit comes meanwhile.
    spawn("t:ender", both);
    let mut heard: HashMap<Pid, Vec<Pid>> = HashMap::new();
    for _ in 0..2 * n {
        match rx.recv_timeout(WAIT).expect("every watcher hears both") {
            Report::Heard(me, from) => heard.entry(me).or_default().push(from),
            Report::Ready => panic!("a late watcher"),
        }
    }
    assert_eq!(heard.len(), n);
    let out_of_order = heard.values().filter(|h| **h != [first, second]).count();
    assert_eq!(
        out_of_order, 0,
        "watchers that heard the exits out of order"
    );
}

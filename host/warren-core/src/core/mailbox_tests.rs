//! The mailbox the core keeps for a front-end that keeps none
//! (`script-mailbox`), through a real runtime: arrivals reach the
//! front-end only as `Item::Wake`, topics and timers are routed by the
//! core, and what the process takes gives its `mailbox_limit` room back.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::ErrorKind;
use crate::item::Item;
use crate::limits::HostLimits;
use crate::payload::Payload;
use crate::pid::Pid;
use crate::runtime::{RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, MailboxFactory, host, program, program_on};
use crate::value::Value;

/// How long a test waits for anything before failing.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, PartialEq)]
enum Report {
    /// The sink listens and its timers are armed.
    Ready,
    /// The sink took these payloads, inbox and topic, in this order.
    Took(Vec<Value>),
    /// Timer 1 fired once; timer 2 (cancelled) never showed.
    Timers {
        first: bool,
        again: bool,
        abandoned: bool,
    },
    /// The sender's sends: `None` for ok, else the error's kind.
    Sent(Vec<Option<ErrorKind>>),
    /// The sink saw an item a kept mailbox should have filed.
    Unexpected(String),
}

fn int(p: Payload) -> Value {
    p.into_value()
}

/// The sink, on `script-mailbox`: listens to "t", arms timer 1 and a
/// cancelled timer 2, then on wake-ups takes one inbox message and the
/// topic's payload, tells the sender to go on, and finally takes the rest.
fn sink(tx: Sender<Report>) -> crate::frontend::Program {
    let tx = Mutex::new(tx);
    // Its phase (0 before the first take) and what the last phase took.
    let state = Mutex::new((0_u8, Vec::new()));
    program_on("script-mailbox", "sink", move |core, me, item| {
        let report = |r: Report| tx.lock().expect("lock").send(r).expect("test alive");
        match item {
            Item::Start { .. } => {
                core.with_mailbox(me, |mb| mb.listen("t")).expect("kept");
                core.start_timer(me, 1, Duration::ZERO);
                core.start_timer(me, 2, Duration::ZERO);
                core.cancel_timer(me, 2);
                report(Report::Ready);
                return false;
            }
            Item::Wake => {}
            other => {
                report(Report::Unexpected(format!("{other:?}")));
                return true;
            }
        }
        let fired = core.with_mailbox(me, |mb| mb.take_fired(1)).expect("kept");
        if fired {
            let again = core.with_mailbox(me, |mb| mb.take_fired(1)).expect("kept");
            let abandoned = core.with_mailbox(me, |mb| mb.take_fired(2)).expect("kept");
            report(Report::Timers {
                first: true,
                again,
                abandoned,
            });
        }
        let mut state = state.lock().expect("lock");
        let (phase, rest) = &mut *state;
        if *phase == 0 {
            let Some(Some(Some(topic))) = core.with_mailbox(me, |mb| mb.take_topic("t", 0)) else {
                return false;
            };
            let first = core
                .with_mailbox(me, |mb| mb.take_message())
                .flatten()
                .expect("msg");
            let from = first.from;
            let mut took: Vec<Value> = first.payloads.into_iter().map(int).collect();
            took.push(int(topic));
            report(Report::Took(took));
            core.send(me, from, "go", vec![])
                .expect("the sender is alive");
            *phase = 1;
            return false;
        }
        let taken = core
            .with_mailbox(me, |mb| {
                std::iter::from_fn(|| mb.take_message()).collect::<Vec<_>>()
            })
            .expect("kept");
        rest.extend(
            taken
                .into_iter()
                .flat_map(|m| m.payloads.into_iter().map(int)),
        );
        if rest.len() < 2 {
            return false;
        }
        report(Report::Took(std::mem::take(rest)));
        true
    })
}

/// The sender, on `script` (it keeps its own mailbox: the sink's "go"
/// arrives as a message): four sends into a limit of three, then one more
/// once the sink has taken two.
fn sender(tx: Sender<Report>) -> crate::frontend::Program {
    let tx = Mutex::new(tx);
    program("sender", move |core, me, item| {
        let report = |r: Report| tx.lock().expect("lock").send(r).expect("test alive");
        let kind = |r: Result<(), crate::error::ProcError>| r.err().map(|e| e.kind);
        match item {
            Item::Start { args, .. } => {
                let to = Pid::parse(args[0].as_str().expect("text")).expect("pid");
                let send = |core: &mut crate::core::Core, topic: &str, n: i64| {
                    kind(core.send(me, to, topic, vec![Value::Int(n).into()]))
                };
                let sent = vec![
                    send(core, "x", 1),
                    send(core, "t", 3),
                    send(core, "x", 2),
                    send(core, "x", 4),
                ];
                report(Report::Sent(sent));
                false
            }
            Item::Msg(m) => {
                let to = m.from;
                let sent = kind(core.send(me, to, "x", vec![Value::Int(5).into()]));
                report(Report::Sent(vec![sent]));
                true
            }
            _ => false,
        }
    })
}

fn expect(rx: &Receiver<Report>, want: Report) {
    let got = rx.recv_timeout(WAIT).expect("a report");
    assert_eq!(got, want);
}

fn routed_through_the_cores_mailbox(workers: usize) {
    let (tx, rx) = channel();
    let limits = HostLimits {
        mailbox_limit: 3,
        ..HostLimits::default()
    };
    let rt = RuntimeBuilder::new()
        .host(host("app", workers, limits))
        .frontend(Arc::new(Factory))
        .frontend(Arc::new(MailboxFactory))
        .program(sink(tx.clone()))
        .program(sender(tx))
        .start()
        .expect("runtime");
    let sink = rt
        .spawn(SpawnRequest::new("sink", "app", vec![]))
        .expect("spawn");
    let mut early = Vec::new();
    loop {
        match rx.recv_timeout(WAIT).expect("ready") {
            Report::Ready => break,
            other => early.push(other),
        }
    }
    assert!(early.is_empty(), "before it started: {early:?}");
    // The timers fire at once: their report comes before any message.
    let timers = Report::Timers {
        first: true,
        again: false,
        abandoned: false,
    };
    expect(&rx, timers);
    let args = vec![Value::str(sink.to_string())];
    rt.spawn(SpawnRequest::new("sender", "app", args))
        .expect("spawn");
    let limited = Some(ErrorKind::RateLimited);
    expect(&rx, Report::Sent(vec![None, None, None, limited]));
    expect(&rx, Report::Took(vec![Value::Int(1), Value::Int(3)]));
    // Two taken, so room for the fifth; the sink then takes 2 and 5.
    expect(&rx, Report::Sent(vec![None]));
    expect(&rx, Report::Took(vec![Value::Int(2), Value::Int(5)]));
    assert!(rt.wait_idle(WAIT), "both ended");
    assert!(rx.try_recv().is_err(), "nothing unexpected");
}

#[test]
fn a_kept_mailbox_routes_wakes_and_gives_room_back_on_one_worker() {
    routed_through_the_cores_mailbox(1);
}

#[test]
fn a_kept_mailbox_routes_wakes_and_gives_room_back_across_workers() {
    routed_through_the_cores_mailbox(2);
}

//! Blocking host calls (`Core::start_blocking_op`) through a real runtime
//! with the scripted front-end: the result hand-back, the deadline, the
//! host slot held by work that cannot be interrupted, panics, and exits
//! with work in flight.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{ErrorKind, ProcError};
use crate::hostcall::{OpDone, OpResult, OpValue};
use crate::item::Item;
use crate::limits::{HostLimits, HostQuota};
use crate::runtime::{Runtime, RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, host, program};
use crate::value::Value;

/// How long a test waits for anything before failing.
const WAIT: Duration = Duration::from_secs(10);
/// The deadline of the calls that are meant to time out.
const SHORT: Duration = Duration::from_millis(50);

/// What the process under test reports.
#[derive(Debug)]
enum Report {
    /// Its host's quota, sent when it starts.
    Quota(Arc<HostQuota>),
    /// A host call completed with this result; `in_flight` is the host's
    /// count of calls in flight at that moment.
    Done { result: OpResult, in_flight: usize },
    /// It was cancelled (the test's "stop").
    Stopped,
}

/// A process that starts one call with `start` and reports what it
/// receives; it ends when cancelled.
fn caller(
    id: &str,
    tx: Sender<Report>,
    start: impl Fn(&mut crate::core::Core, crate::pid::Pid) + Send + Sync + 'static,
) -> crate::frontend::Program {
    let tx = Mutex::new(tx);
    program(id, move |core, me, item| {
        let report = |r: Report| tx.lock().expect("lock").send(r).expect("test alive");
        match item {
            Item::Start { .. } => {
                report(Report::Quota(core.quota_of(me).clone()));
                start(core, me);
                false
            }
            Item::Done { result, .. } => {
                let in_flight = core.quota_of(me).ops_in_flight();
                report(Report::Done { result, in_flight });
                false
            }
            Item::Event(_) => {
                report(Report::Stopped);
                true
            }
            _ => false,
        }
    })
}

/// A [`caller`] of one blocking call of `work` with `deadline`.
fn blocking_caller(
    deadline: Duration,
    work: impl Fn() -> OpResult + Send + Sync + 'static,
    tx: Sender<Report>,
) -> crate::frontend::Program {
    let work = Arc::new(work);
    caller("c", tx, move |core, me| {
        let work = work.clone();
        core.start_blocking_op(me, "test call", deadline, move || work())
            .expect("admitted");
    })
}

fn runtime(program: crate::frontend::Program) -> Runtime {
    RuntimeBuilder::new()
        .host(host("app", 1, HostLimits::default()))
        .frontend(Arc::new(Factory))
        .program(program)
        .start()
        .expect("runtime")
}

/// A runtime running one [`caller`] of `work`: its pid, its reports and
/// its host's quota.
struct Started {
    rt: Runtime,
    pid: crate::pid::Pid,
    rx: Receiver<Report>,
    quota: Arc<HostQuota>,
}

fn start(deadline: Duration, work: impl Fn() -> OpResult + Send + Sync + 'static) -> Started {
    let (tx, rx) = channel();
    let rt = runtime(blocking_caller(deadline, work, tx));
    let pid = rt
        .spawn(SpawnRequest::new("c", "app", vec![]))
        .expect("spawn");
    let quota = quota(&rx);
    Started { rt, pid, rx, quota }
}

/// Cancels the caller and checks that the cancel is the next thing it
/// saw (no late result before it).
fn stop(s: &Started) {
    s.rt.cancel(s.pid, Value::Nil).expect("cancel");
    match s.rx.recv_timeout(WAIT).expect("stopped") {
        Report::Stopped => {}
        other => panic!("expected the cancel, got {other:?}"),
    }
}

fn quota(rx: &Receiver<Report>) -> Arc<HostQuota> {
    match rx.recv_timeout(WAIT).expect("quota") {
        Report::Quota(q) => q,
        other => panic!("expected the quota, got {other:?}"),
    }
}

fn done(rx: &Receiver<Report>) -> (OpResult, usize) {
    match rx.recv_timeout(WAIT).expect("a result") {
        Report::Done { result, in_flight } => (result, in_flight),
        other => panic!("expected a result, got {other:?}"),
    }
}

/// Waits until `quota` has no call in flight.
fn drained(quota: &HostQuota) {
    let until = Instant::now() + WAIT;
    while quota.ops_in_flight() > 0 {
        assert!(Instant::now() < until, "the host slot was never given back");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Work that signals when it starts, then blocks until the test opens its
/// gate, and returns `value`.
struct Gated {
    started: Receiver<()>,
    gate: Sender<()>,
}

fn gated(value: Value) -> (Gated, impl Fn() -> OpResult + Send + Sync + 'static) {
    let (started_tx, started) = channel::<()>();
    let (gate, gate_rx) = channel::<()>();
    let (started_tx, gate_rx) = (Mutex::new(started_tx), Mutex::new(gate_rx));
    let work = move || {
        started_tx
            .lock()
            .expect("lock")
            .send(())
            .expect("test alive");
        let opened = gate_rx.lock().expect("lock").recv_timeout(WAIT);
        opened.expect("gate opened");
        Ok(OpValue::Value(value.clone()))
    };
    (Gated { started, gate }, work)
}

#[test]
fn a_blocking_call_hands_its_result_back_to_the_caller() {
    let s = start(WAIT, || Ok(OpValue::Value(Value::Int(42))));
    let (result, _) = done(&s.rx);
    assert!(
        matches!(result, Ok(OpValue::Value(Value::Int(42)))),
        "{result:?}"
    );
    drained(&s.quota);
    stop(&s);
}

#[test]
fn past_its_deadline_the_caller_gets_timeout_while_the_work_keeps_its_slot() {
    let (gated, work) = gated(Value::str("late"));
    let s = start(SHORT, work);
    let (result, in_flight) = done(&s.rx);
    let err = result.expect_err("timed out");
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    assert!(err.message.contains("test call"), "{}", err.message);
    assert_eq!(in_flight, 1, "the running work still holds its host slot");
    assert_eq!(s.quota.ops_in_flight(), 1);
    gated.gate.send(()).expect("work waiting");
    drained(&s.quota);
    // The late result was queued before the slot came back: the next
    // thing the process sees is the cancel, not a second result.
    stop(&s);
}

#[test]
fn a_panicking_blocking_call_is_an_internal_error_and_gives_its_slot_back() {
    let s = start(WAIT, || -> OpResult { panic!("driver bug") });
    let (result, _) = done(&s.rx);
    let err: ProcError = result.expect_err("panicked");
    assert_eq!(err.kind, ErrorKind::Internal, "{err:?}");
    assert!(err.message.contains("test call"), "{}", err.message);
    drained(&s.quota);
    stop(&s);
}

#[test]
fn a_process_that_exits_with_a_blocking_call_running_leaves_no_slot_behind() {
    let (gated, work) = gated(Value::Nil);
    let s = start(SHORT, work);
    gated.started.recv_timeout(WAIT).expect("the work started");
    stop(&s);
    let until = Instant::now() + WAIT;
    while s.rt.live_processes() > 0 {
        assert!(Instant::now() < until, "the process did not exit");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(s.quota.ops_in_flight(), 1, "the work is still running");
    // Its deadline passes with the process gone: nothing to deliver to.
    std::thread::sleep(SHORT * 2);
    gated.gate.send(()).expect("work waiting");
    drained(&s.quota);
    assert!(
        s.rx.try_recv().is_err(),
        "nothing reached the exited process"
    );
}

/// A process that starts one async call (`Core::start_op`) whose future
/// names the thread that built it (or panics, if `panics`), and reports
/// the result with its own worker's thread name and its host's calls in
/// flight.
fn async_caller(tx: Sender<(String, OpResult, usize)>, panics: bool) -> crate::frontend::Program {
    let tx = Mutex::new(tx);
    program("a", move |core, me, item| match item {
        Item::Start { .. } => {
            let make = move || {
                let built_on = format!("{:?}", std::thread::current().id());
                async move {
                    assert!(!panics, "the driver failed");
                    Ok(OpValue::Value(Value::str(built_on)))
                }
            };
            core.start_op(me, "test call", WAIT, make)
                .expect("admitted");
            false
        }
        Item::Done { result, .. } => {
            let worker = format!("{:?}", std::thread::current().id());
            let in_flight = core.quota_of(me).ops_in_flight();
            tx.lock()
                .expect("lock")
                .send((worker, result, in_flight))
                .expect("test alive");
            true
        }
        _ => false,
    })
}

/// Runs one [`async_caller`] and returns its report: its worker's thread
/// name, the call's result and the host's calls in flight then.
fn async_call(panics: bool) -> (String, OpResult, usize) {
    let (tx, rx) = channel();
    let rt = runtime(async_caller(tx, panics));
    rt.spawn(SpawnRequest::new("a", "app", vec![]))
        .expect("spawn");
    rx.recv_timeout(WAIT).expect("a result, not a hang")
}

#[test]
fn an_async_call_builds_its_future_off_the_worker_and_hands_back_its_result() {
    let (worker, result, _) = async_call(false);
    let Ok(OpValue::Value(Value::Str(built_on))) = result else {
        panic!("expected the builder's thread, got {result:?}");
    };
    let built_on = String::from_utf8(built_on).expect("text");
    assert!(built_on.starts_with("ThreadId("), "{built_on}");
    assert_ne!(built_on, worker, "the future was built on the worker");
}

#[test]
fn a_panicking_async_call_is_an_internal_error_and_gives_its_slot_back() {
    let (_, result, in_flight) = async_call(true);
    let err = result.expect_err("the panic is an error");
    assert_eq!(err.kind, ErrorKind::Internal, "{err:?}");
    assert!(err.message.contains("test call"), "{}", err.message);
    assert_eq!(in_flight, 0, "the panicked call kept its host slot");
}

/// What a [`queued_caller`]'s driver does with its [`OpDone`]: complete it
/// with 42 on a thread of its own, drop it there unrun, or keep it (never
/// completing) until the test ends.
#[derive(Clone, Copy)]
enum Driver {
    Completes,
    DropsUnrun,
    Hangs,
}

/// A [`caller`] of one queued call (`Core::start_queued_op`) with
/// `deadline` whose driver behaves as `driver`; the stop hook the driver
/// returns sends on `stopped`.
fn queued_caller(
    deadline: Duration,
    driver: Driver,
    tx: Sender<Report>,
    stopped: Sender<()>,
) -> crate::frontend::Program {
    let stopped = Mutex::new(stopped);
    let kept = Arc::new(Mutex::new(Vec::<OpDone>::new()));
    caller("q", tx, move |core, me| {
        let (kept, stopped) = (kept.clone(), stopped.lock().expect("lock").clone());
        let start = move |done: OpDone| -> Result<Box<dyn Fn() + Send>, ProcError> {
            match driver {
                Driver::Completes => drop(std::thread::spawn(move || {
                    done.complete(Ok(OpValue::Value(Value::Int(42))));
                })),
                Driver::DropsUnrun => drop(std::thread::spawn(move || drop(done))),
                Driver::Hangs => kept.lock().expect("lock").push(done),
            }
            let stopped = Mutex::new(stopped);
            Ok(Box::new(move || {
                let _ = stopped.lock().expect("lock").send(());
            }))
        };
        core.start_queued_op(me, "test call", deadline, start)
            .expect("admitted");
    })
}

/// Runs one [`queued_caller`]; with it, the stop hook's channel.
fn start_queued(deadline: Duration, driver: Driver) -> (Started, Receiver<()>) {
    let (tx, rx) = channel();
    let (stopped_tx, stopped) = channel();
    let rt = runtime(queued_caller(deadline, driver, tx, stopped_tx));
    let pid = rt
        .spawn(SpawnRequest::new("q", "app", vec![]))
        .expect("spawn");
    let quota = quota(&rx);
    (Started { rt, pid, rx, quota }, stopped)
}

#[test]
fn a_queued_call_hands_its_result_back_from_the_drivers_thread() {
    let (s, stopped) = start_queued(WAIT, Driver::Completes);
    let (result, in_flight) = done(&s.rx);
    assert!(
        matches!(result, Ok(OpValue::Value(Value::Int(42)))),
        "{result:?}"
    );
    assert_eq!(in_flight, 0, "the slot is free before the caller hears");
    drained(&s.quota);
    assert!(
        stopped.try_recv().is_err(),
        "a completed call is not stopped"
    );
}

#[test]
fn a_queued_call_its_driver_drops_unrun_is_an_internal_error() {
    let (s, _stopped) = start_queued(WAIT, Driver::DropsUnrun);
    let (result, in_flight) = done(&s.rx);
    let err = result.expect_err("dropped unrun");
    assert_eq!(err.kind, ErrorKind::Internal, "{err:?}");
    assert!(err.message.contains("test call"), "{}", err.message);
    assert_eq!(in_flight, 0);
    drained(&s.quota);
}

#[test]
fn a_queued_call_past_its_deadline_times_out_and_is_stopped() {
    let (s, stopped) = start_queued(SHORT, Driver::Hangs);
    let (result, _) = done(&s.rx);
    let err = result.expect_err("timed out");
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    stopped
        .recv_timeout(WAIT)
        .expect("the driver was told to stop");
}

#[test]
fn a_process_that_exits_with_a_queued_call_stops_it() {
    let (s, stopped) = start_queued(WAIT, Driver::Hangs);
    stop(&s);
    stopped
        .recv_timeout(WAIT)
        .expect("the driver was told to stop");
}

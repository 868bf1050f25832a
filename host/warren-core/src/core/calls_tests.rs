//! What a function call waiting for its turn holds (`calls.rs`,
//! `funcs::Phase::Waiting`): its arguments count against the caller's
//! host's `memory_total` until the callee is spawned or the call is
//! dropped, and past it the call is refused; through a real runtime with
//! scripted processes (whose hosts hold nothing else).

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{ErrorKind, ProcError};
use crate::funcs::{FunctionCall, Functions, Pool, PoolKind};
use crate::item::Item;
use crate::limits::HostLimits;
use crate::runtime::{RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, host, program};
use crate::value::Value;

const WAIT: Duration = Duration::from_secs(10);

/// Bytes of each call's argument.
const ARG: usize = 100_000;

/// On start, calls `t:fn` (which never ends) with an argument of [`ARG`]
/// bytes, `n` times (its argument); reports each call's refusal, if any.
fn caller(tx: Sender<Vec<Option<ErrorKind>>>, why: Arc<Mutex<String>>) -> crate::frontend::Program {
    let tx = Mutex::new(tx);
    program("t:caller", move |core, me, item| {
        let Item::Start { args, .. } = item else {
            return false;
        };
        let Value::Int(n) = args[0] else {
            panic!("a count")
        };
        let mut out = Vec::new();
        for _ in 0..n {
            let call = FunctionCall {
                entry: "t:fn".into(),
                args: vec![Value::Str(vec![b'x'; ARG])],
                context: Value::Nil,
                timeout: None,
            };
            let result = core.call_function(me, call);
            if let Err(e) = &result {
                *why.lock().expect("lock") = e.message.clone();
            }
            out.push(result.err().map(|e| e.kind));
        }
        tx.lock().expect("lock").send(out).expect("test alive");
        false
    })
}

#[test]
fn a_waiting_calls_arguments_are_held_against_the_callers_host() {
    let (tx, rx) = channel();
    let why = Arc::new(Mutex::new(String::new()));
    let mut functions = Functions::new();
    let pool = Pool {
        kind: PoolKind::Lazy,
        size: 1,
        buffer: usize::MAX,
    };
    functions.insert("t:fn", pool);
    let limits = HostLimits {
        memory_total: 1 << 20,
        max_ops_per_process: 64,
        ..HostLimits::default()
    };
    let rt = RuntimeBuilder::new()
        .host(host("app", 1, limits))
        .frontend(Arc::new(Factory))
        .extension(Arc::new(functions))
        .program(caller(tx, why.clone()))
        .program(program("t:fn", |_, _, _| false))
        .start()
        .expect("runtime");
    let args = vec![Value::Int(20)];
    let pid = rt
        .spawn(SpawnRequest::new("t:caller", "app", args))
        .expect("spawn");
    let did = rx.recv_timeout(WAIT).expect("a report");
    // The first runs (its callee holds its argument); the next wait, each
    // holding 100 KB and more of the 1 MiB, until there is no room.
    let accepted = did.iter().take_while(|r| r.is_none()).count();
    assert!((5..=10).contains(&accepted), "{did:?}");
    assert!(
        did[accepted..]
            .iter()
            .all(|r| *r == Some(ErrorKind::RateLimited)),
        "{did:?}"
    );
    let why = why.lock().expect("lock").clone();
    assert!(why.contains("no room left in its memory_total"), "{why}");
    let used = rt.memory_used("app").expect("the host");
    let waiting = u64::try_from((accepted - 1) * ARG).expect("small");
    assert!(
        used >= waiting,
        "{used} bytes held for {} waiting calls",
        accepted - 1
    );
    // Dropped with their caller: everything comes back.
    rt.kill(pid, ProcError::terminated()).expect("kill");
    let deadline = std::time::Instant::now() + WAIT;
    while rt.memory_used("app") != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?} still held",
            rt.memory_used("app")
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

//! Spawn arguments of a process are held against its host's
//! `memory_total` from the spawn until the child's start is taken: spawns
//! onto a busy host queued 10,000 arguments of 1 MB there (9 GB) that no
//! host counted.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::SpawnError;
use crate::frontend::Program;
use crate::item::Item;
use crate::limits::HostLimits;
use crate::placement::Home;
use crate::runtime::{HELD_SPAWN_BYTES, RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, host, program};
use crate::value::Value;

/// A process that, at its start, prepares a spawn of `idle` with an
/// argument of `bytes` bytes and reports what its host holds before,
/// while the spawn waits and once it is dropped (or the refusal).
fn spawner(bytes: usize, tx: Sender<Result<[u64; 3], SpawnError>>) -> Program {
    let tx = Mutex::new(tx);
    program("spawner", move |core, me, item| {
        if matches!(item, Item::Start { .. }) {
            let before = core.quota().memory_used();
            let arg = Value::Str(vec![b'x'; bytes]);
            let req = SpawnRequest::new("idle", "app", vec![arg]);
            let report = core
                .shared
                .prepare_spawn(req, Some(me), Home::None)
                .map(|(spawn, _)| {
                    let held = core.quota().memory_used();
                    drop(spawn);
                    [before, held, core.quota().memory_used()]
                });
            tx.lock().expect("lock").send(report).expect("test alive");
        }
        false
    })
}

fn run(bytes: usize, memory_total: u64) -> Result<[u64; 3], SpawnError> {
    let (tx, rx) = channel();
    let limits = HostLimits {
        memory_total,
        ..HostLimits::default()
    };
    let rt = RuntimeBuilder::new()
        .host(host("app", 1, limits))
        .frontend(Arc::new(Factory))
        .program(program("idle", |_, _, _| false))
        .program(spawner(bytes, tx))
        .start()
        .expect("runtime");
    rt.spawn(SpawnRequest::new("spawner", "app", vec![]))
        .expect("spawn");
    rx.recv_timeout(Duration::from_secs(10)).expect("a report")
}

#[test]
fn large_spawn_arguments_are_held_until_the_start_is_dropped() {
    let [before, held, after] = run(64 << 10, 1 << 30).expect("spawned");
    assert!(held >= before + (64 << 10), "{before} then {held}");
    assert_eq!(after, before, "given back");
}

#[test]
fn small_spawn_arguments_are_not_held() {
    let [before, held, _] = run(HELD_SPAWN_BYTES / 4, 1 << 30).expect("spawned");
    assert_eq!(held, before);
}

#[test]
fn a_host_without_room_for_the_arguments_is_refused_the_spawn() {
    let err = run(64 << 10, 32 << 10).expect_err("no room");
    assert!(
        matches!(err, SpawnError::NoRoom { ref host, .. } if host == "app"),
        "{err}"
    );
    assert!(err.to_string().contains("spawn arguments of"), "{err}");
}

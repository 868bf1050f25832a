//! WebAssembly processes through the whole runtime: spawn until the guest
//! blocks in `receive`, idle resident memory per process, and how many can
//! wait at once. Uses the `echo` component (built on first use).

use std::time::{Duration, Instant};

use criterion::Criterion;
use warren_benches::{HOST, rss_bytes};
use warren_core::{HostSpec, Runtime, RuntimeBuilder, SpawnRequest};
use warren_lua::lua_frontend;
use warren_wasm::wasm_frontend;

#[global_allocator]
static ALLOCATOR: warren_benches::Allocator = warren_benches::Allocator {};

/// How many blocked components the memory probe keeps alive at once.
const BLOCKED: usize = 10_000;

fn runtime() -> Runtime {
    let engine = warren_tests::engine();
    let echo = engine
        .load(&warren_tests::component("echo"))
        .expect("echo loads");
    let crasher = engine
        .load(&warren_tests::component("crasher"))
        .expect("crasher loads");
    RuntimeBuilder::new()
        .frontend(lua_frontend())
        .frontend(wasm_frontend())
        .host(HostSpec {
            name: HOST.into(),
            workers: 1,
        })
        .program(echo.into_program("bench:echo"))
        .program(crasher.into_program("bench:crasher"))
        .start()
        .expect("runtime")
}

fn wait_live(rt: &Runtime, n: usize) {
    let end = Instant::now() + Duration::from_secs(300);
    while rt.live_processes() < n && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Spawns `BLOCKED` echo processes that all wait in `receive`.
fn blocked_memory() {
    let rt = runtime();
    rt.spawn(SpawnRequest::new("bench:echo", HOST, vec![]))
        .expect("warm-up spawn");
    wait_live(&rt, 1);
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_bytes();
    let started = Instant::now();
    for _ in 0..BLOCKED {
        rt.spawn(SpawnRequest::new("bench:echo", HOST, vec![]))
            .expect("spawn");
    }
    wait_live(&rt, BLOCKED + 1);
    let elapsed = started.elapsed();
    // Accepted is not yet instantiated: wait until the resident set stops
    // growing (every guest has reached its first `receive`).
    let mut last = rss_bytes();
    for _ in 0..120 {
        std::thread::sleep(Duration::from_millis(500));
        let now = rss_bytes();
        if now <= last + last / 200 {
            break;
        }
        last = now;
    }
    let per = rss_bytes().saturating_sub(before) / BLOCKED as u64;
    println!(
        "wasm/blocked: {BLOCKED} components alive and waiting; {per} bytes of RSS each; spawns accepted in {elapsed:?}"
    );
}

fn main() {
    blocked_memory();
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let rt = runtime();
    // An upper bound on spawn-to-first-wait: spawn, instantiate, run to the
    // end and exit, for a component that returns at once.
    c.bench_function("wasm/spawn_run_exit", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            let exits: Vec<_> = (0..iters)
                .map(|_| {
                    let args = vec![warren_core::Value::str("fine")];
                    rt.spawn_watched(SpawnRequest::new("bench:crasher", HOST, args))
                        .expect("spawn")
                        .1
                })
                .collect();
            for exit in exits {
                let _ = exit.recv_timeout(Duration::from_secs(60)).expect("exits");
            }
            started.elapsed()
        });
    });
    c.final_summary();
}

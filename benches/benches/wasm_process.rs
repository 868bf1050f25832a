//! WebAssembly processes through the whole runtime: spawn until the guest
//! blocks in `receive`, idle resident memory and memory mappings per
//! process, how many can wait at once, and one-way messages Lua → WASM and
//! WASM → Lua. Uses the `echo`, `kv` and `crasher` components (built on
//! first use).

use std::time::{Duration, Instant};

use criterion::Criterion;
use warren_benches::{HOST, rss_bytes};
use warren_core::{HostSpec, Runtime, RuntimeBuilder, SpawnRequest, Value};
use warren_lua::{LuaProgram, MODULES, lua_frontend};
use warren_wasm::{EngineConfig, WasmEngine, wasm_frontend};

#[global_allocator]
static ALLOCATOR: warren_benches::Allocator = warren_benches::Allocator {};

/// How many blocked components the memory probe keeps alive at once.
const BLOCKED: usize = 10_000;

/// Sends `n` messages to a `kv` component (which answers none of them),
/// then one `get` to learn they have all been taken; returns nanoseconds.
const LUA_TO_WASM: &str = r#"local time = require("time")
return function(n)
    local kv = process.spawn("bench:kv", "bench:host")
    local inbox = process.inbox()
    process.send(kv, "get", { key = "k" })
    inbox:receive()
    local t0 = time.now()
    for _ = 1, n do process.send(kv, "put", { key = "k", value = "v" }) end
    process.send(kv, "get", { key = "k" })
    inbox:receive()
    local ns = time.now():sub(t0):nanoseconds()
    process.send(kv, "stop")
    return ns
end"#;

/// Has an `echo` component send it `n` messages and receives them all;
/// returns nanoseconds (the component's spawn included, amortised).
const WASM_TO_LUA: &str = r#"local time = require("time")
return function(n)
    local inbox = process.inbox()
    local t0 = time.now()
    local echo = process.spawn("bench:echo", "bench:host", process.pid(), n)
    for _ = 1, n do inbox:receive() end
    local ns = time.now():sub(t0):nanoseconds()
    process.send(echo, "stop")
    return ns
end"#;

/// The engine: pooled as the runtime's default, or with
/// `WARREN_BENCH_POOL=<n>` a pool of `n` (0: instances allocated on demand).
fn engine() -> std::sync::Arc<WasmEngine> {
    let pool_size = std::env::var("WARREN_BENCH_POOL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(warren_wasm::DEFAULT_POOL_SIZE);
    println!("wasm engine: pool of {pool_size} instances (0: on demand)");
    let config = EngineConfig {
        pool_size,
        ..EngineConfig::default()
    };
    WasmEngine::new(&config).expect("engine")
}

fn runtime() -> Runtime {
    let engine = engine();
    let kv = engine
        .load(&warren_tests::component("kv"))
        .expect("kv loads");
    let lua = |id: &str, src: &str| {
        LuaProgram::new(id, src)
            .with_modules(&MODULES)
            .into_program(id)
    };
    let echo = engine
        .load(&warren_tests::component("echo"))
        .expect("echo loads");
    let crasher = engine
        .load(&warren_tests::component("crasher"))
        .expect("crasher loads");
    RuntimeBuilder::new()
        .frontend(lua_frontend())
        .frontend(wasm_frontend())
        .host(HostSpec::new(HOST, 1))
        .program(echo.into_program("bench:echo"))
        .program(crasher.into_program("bench:crasher"))
        .program(kv.into_program("bench:kv"))
        .program(lua("bench:lua_to_wasm", LUA_TO_WASM))
        .program(lua("bench:wasm_to_lua", WASM_TO_LUA))
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
    let maps_before = maps();
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
    let maps_per = maps().saturating_sub(maps_before) as f64 / BLOCKED as f64;
    println!(
        "wasm/blocked: {} of {BLOCKED} components alive and waiting; {per} bytes of RSS and {maps_per:.2} memory mappings each ({} mappings in all, limit {}); spawns accepted in {elapsed:?}",
        rt.live_processes() - 1,
        maps(),
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .unwrap_or_default()
            .trim(),
    );
}

/// How many memory mappings this process has (Linux).
fn maps() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

/// Runs Lua driver `entry` with `n` and returns the time it reports.
fn drive(rt: &Runtime, entry: &str, n: u64) -> Duration {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let exit = rt
        .run(
            SpawnRequest::new(entry, HOST, vec![Value::Int(n)]),
            Duration::from_secs(300),
        )
        .expect("spawn accepted")
        .expect("driver finished");
    match exit {
        Ok(Value::Int(ns)) => Duration::from_nanos(u64::try_from(ns).unwrap_or(0)),
        other => panic!("{entry} ended with {other:?}"),
    }
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
    c.bench_function("wasm/lua_to_wasm_one_way", |b| {
        b.iter_custom(|iters| drive(&rt, "bench:lua_to_wasm", iters));
    });
    c.bench_function("wasm/wasm_to_lua_one_way", |b| {
        b.iter_custom(|iters| drive(&rt, "bench:wasm_to_lua", iters));
    });
    c.final_summary();
}

//! WebAssembly scenarios: the `echo`, `kv` and `crasher` components from
//! `components/` (built on first use) next to Lua drivers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use warren_core::{HostLimits, HostSpec, Runtime, RuntimeBuilder, SpawnRequest, Value};
use warren_lua::{LuaProgram, MODULES, lua_frontend};
use warren_wasm::{EngineConfig, WasmEngine, wasm_frontend};

use crate::lua::{HOST, drive, nanos};
use crate::memory::{maps, max_map_count, rss_bytes, settle};

/// Sends `n` messages to a `kv` component (which answers none of them),
/// and every `window` (and at the end) one `get`, whose answer says they
/// have all been taken: a bounded backlog, under the mailbox limit.
/// Returns nanoseconds.
const LUA_TO_WASM: &str = r#"local time = require("time")
return function(n, window)
    local kv = process.spawn("bench:kv", "bench:host")
    local inbox = process.inbox()
    process.send(kv, "get", { key = "k" })
    inbox:receive()
    local t0 = time.now()
    for i = 1, n do
        process.send(kv, "put", { key = "k", value = "v" })
        if i % window == 0 or i == n then
            process.send(kv, "get", { key = "k" })
            inbox:receive()
        end
    end
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

/// Spawns `n` `crasher` components (told to end normally), monitored, at
/// most `window` alive at once, and returns the nanoseconds until all have
/// exited: spawn, run and exit, driven from inside the runtime.
const WASM_SPAWNER: &str = r#"local time = require("time")
return function(n, window)
    local events = process.events()
    local live = 0
    local t0 = time.now()
    for _ = 1, n do
        process.spawn_monitored("bench:crasher", "bench:host", "fine")
        live = live + 1
        if live == window then
            for _ = 1, live do events:receive() end
            live = 0
        end
    end
    for _ = 1, live do events:receive() end
    return time.now():sub(t0):nanoseconds()
end"#;

/// Components alive at once in [`spawn_run_exit`].
const SPAWN_WINDOW: i64 = 64;

/// The engine: pooled as the runtime's default, or with
/// `WARREN_BENCH_POOL=<n>` a pool of `n` (0: instances allocated on demand).
fn engine() -> Arc<WasmEngine> {
    let pool_size = std::env::var("WARREN_BENCH_POOL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(warren_wasm::DEFAULT_POOL_SIZE);
    let config = EngineConfig {
        pool_size,
        ..EngineConfig::default()
    };
    WasmEngine::new(&config).expect("engine")
}

/// A one-worker runtime with the components and the Lua drivers.
pub fn runtime() -> Runtime {
    let engine = engine();
    let load = |name: &str| {
        engine
            .load(&warren_tests::component(name))
            .unwrap_or_else(|e| panic!("{name} loads: {e}"))
            .into_program(format!("bench:{name}"))
    };
    let lua = |id: &str, src: &str| {
        LuaProgram::new(id, src)
            .with_modules(&MODULES)
            .into_program(id)
    };
    // Each `echo` holds 128 KiB of linear memory (a 64 KiB stack, see
    // components/.cargo/config.toml): the default 4 GiB admits ~32,000.
    let limits = HostLimits {
        max_processes: 50_000,
        ..HostLimits::default()
    };
    RuntimeBuilder::new()
        .frontend(lua_frontend())
        .frontend(wasm_frontend())
        .host(HostSpec::new(HOST, 1).with_limits(limits))
        .program(load("echo"))
        .program(load("crasher"))
        .program(load("kv"))
        .program(lua("bench:lua_to_wasm", LUA_TO_WASM))
        .program(lua("bench:wasm_to_lua", WASM_TO_LUA))
        .program(lua("bench:wasm_spawner", WASM_SPAWNER))
        .start()
        .expect("runtime")
}

fn wait_live(rt: &Runtime, n: usize) {
    let end = Instant::now() + Duration::from_secs(300);
    while rt.live_processes() < n && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What `n` blocked `echo` components cost.
#[derive(Clone, Debug)]
pub struct Blocked {
    /// How many were alive and waiting at once.
    pub alive: usize,
    /// Resident-set growth per component.
    pub bytes_each: u64,
    /// Memory mappings added per component.
    pub maps_each: f64,
    /// Mappings of the whole process, and the kernel's cap.
    pub maps_total: usize,
    /// `vm.max_map_count`.
    pub maps_cap: String,
}

/// Spawns `n` `echo` components that all wait in `receive`, in a child
/// process (see [`crate::memory::in_child`]).
pub fn blocked(n: usize) -> Blocked {
    let got = crate::memory::in_child("wasm", u64::try_from(n).unwrap_or(u64::MAX));
    let at = |i: usize| got.get(i).copied().unwrap_or(0);
    Blocked {
        alive: usize::try_from(at(0)).unwrap_or(0),
        bytes_each: at(1),
        maps_each: at(2) as f64 / 100.0,
        maps_total: usize::try_from(at(3)).unwrap_or(0),
        maps_cap: max_map_count(),
    }
}

/// The child's side of [`blocked`]: alive, bytes each, mappings each
/// (hundredths) and mappings in all.
pub(crate) fn blocked_in_child(n: u64) -> Vec<u64> {
    let b = blocked_here(usize::try_from(n).unwrap_or(usize::MAX));
    vec![
        u64::try_from(b.alive).unwrap_or(0),
        b.bytes_each,
        (b.maps_each * 100.0).round() as u64,
        u64::try_from(b.maps_total).unwrap_or(0),
    ]
}

fn blocked_here(n: usize) -> Blocked {
    let rt = runtime();
    rt.spawn(SpawnRequest::new("bench:echo", HOST, vec![]))
        .expect("warm-up spawn");
    wait_live(&rt, 1);
    settle();
    let before = rss_bytes();
    let maps_before = maps();
    for _ in 0..n {
        rt.spawn(SpawnRequest::new("bench:echo", HOST, vec![]))
            .expect("spawn");
    }
    wait_live(&rt, n + 1);
    // Accepted is not yet instantiated: every guest has reached its first
    // `receive` once the resident set stops growing.
    settle();
    let n64 = u64::try_from(n.max(1)).unwrap_or(1);
    Blocked {
        alive: rt.live_processes() - 1,
        bytes_each: rss_bytes().saturating_sub(before) / n64,
        maps_each: maps().saturating_sub(maps_before) as f64 / n.max(1) as f64,
        maps_total: maps(),
        maps_cap: max_map_count(),
    }
}

/// Time for `n` components to be spawned, run to their end and exit,
/// through the scheduler (an upper bound on spawn until first wait).
pub fn spawn_run_exit(rt: &Runtime, n: u64) -> Duration {
    nanos(&drive(
        rt,
        "bench:wasm_spawner",
        vec![int(n), Value::Int(SPAWN_WINDOW)],
    ))
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n.max(1)).unwrap_or(i64::MAX))
}

/// Time for `n` one-way messages Lua → WASM (small table payload).
pub fn lua_to_wasm(rt: &Runtime, n: u64) -> Duration {
    nanos(&drive(
        rt,
        "bench:lua_to_wasm",
        vec![int(n), Value::Int(crate::lua::WINDOW)],
    ))
}

/// Time for `n` one-way messages WASM → Lua (small integer payload).
pub fn wasm_to_lua(rt: &Runtime, n: u64) -> Duration {
    nanos(&drive(rt, "bench:wasm_to_lua", vec![int(n)]))
}

//! Function calls (`funcs`, modules.md §5) and file I/O from many processes
//! (`fs`, §3), each measured against its baseline in the same run:
//!
//! - `funcs_call`: a Lua process making [`CALLS`] `funcs.call("b:fn", i)`
//!   one after another (the function returns `i + 1`), against the same
//!   driver doing [`CALLS`] `process.spawn` of a process entry that sends
//!   `i + 1` back to its parent, the parent receiving it before the next
//!   spawn. A call is a short-lived process of the function's entry, so the
//!   goal is that a call costs no more than that spawn and round trip
//!   (ratio call/spawn ≤ 1). Also with many in flight: `funcs.async` in
//!   windows of [`WINDOW`] futures (the default `max_ops_per_process`)
//!   against [`WINDOW`] spawns whose replies are received after.
//! - `funcs_fs`: [`FS_PROCS`] processes each writing [`FS_EACH`] files of
//!   4 KiB (then 64 KiB) to a volume granted `fs.get` and reading them back
//!   (`vol:writefile`, `vol:readfile`), against the same cap-std calls
//!   (`Dir::create` + `write_all`, `Dir::open` + `read_to_end`) from as
//!   many Rust threads. A diagnostic row makes the same calls from as many
//!   tokio tasks on `warren_core::io_runtime()`, each operation on the
//!   blocking pool, as the runtime does. Goal: runtime ≥ 0.8× direct.
//!
//! The Lua drivers time themselves (`time.now()`); the direct runs from
//! starting the first thread or task to joining the last. After criterion,
//! a summary is printed with the ratios the goals are judged on, each taken
//! so that both sides share the machine's noise (this machine is shared):
//! for calls, one Lua process alternating blocks of calls and of spawns
//! (ABBA order); for files, the best of several interleaved rounds per side
//! and the median of the rounds' ratios (each round runs both sides back to
//! back, so a slow spell of the shared disk weighs on both).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cap_std::fs::Dir;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use warren_benches::lua::{HOST, drive, nanos};
use warren_benches::median;
use warren_benches::memory::{cpu_time, thread_cpu};
use warren_core::{Functions, Grants, HostSpec, Pool, Runtime, RuntimeBuilder, Value};
use warren_lua::{LuaProgram, MODULES, Volumes, lua_frontend};
use warren_tests::TempDir;

mod common;

#[global_allocator]
static ALLOCATOR: warren_benches::Allocator = warren_benches::Allocator {};

/// Calls (and spawns) per criterion iteration of the `funcs_call` rows.
const CALLS: u64 = 1_000;
/// Futures (and children) in flight at once in the `*_window64` rows: the
/// default `max_ops_per_process`.
const WINDOW: u64 = 64;
/// Interleaved blocks per side of the printed call/spawn comparison.
const PAIRED_ROUNDS: u64 = 40;
/// Operations per block of the printed call/spawn comparison.
const PAIRED_BLOCK: u64 = 100;
/// Processes (and threads, tasks) of the `funcs_fs` rows.
const FS_PROCS: u64 = 100;
/// Files each process writes and reads back.
const FS_EACH: u64 = 10;
/// Interleaved runs of each side of the printed fs comparison.
const FS_ROUNDS: usize = 9;
/// File sizes of the `funcs_fs` rows.
const FS_SIZES: [usize; 2] = [4 << 10, 64 << 10];
/// Workers of the bench host for the call rows (one: a call and a spawn
/// then cost the same hand-offs).
const WORKERS: usize = 1;

/// Workers of the host for the fs rows: one per core, as `warren run`
/// gives a host, since the direct side uses every core too.
fn fs_workers() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}
/// The function entry.
const FUNCTION: &str = "b:fn";
/// The volume entry.
const VOLUME: &str = "b.fs:data";

/// The function: `i + 1`.
const FN_SOURCE: &str = "return { handle = function(i) return i + 1 end }";

/// `n` calls of [`FUNCTION`], one after another; returns the nanoseconds.
const CALLER: &str = r#"local time = require("time")
local funcs = require("funcs")
return function(n)
    local t0 = time.now()
    for i = 1, n do
        local r, err = funcs.call("b:fn", i)
        if r ~= i + 1 then error("call " .. i .. ": " .. tostring(err or r)) end
    end
    return time.now():sub(t0):nanoseconds()
end"#;

/// `n` calls of [`FUNCTION`], `window` futures in flight at a time, each
/// window's results taken in order; returns the nanoseconds.
const ASYNC_CALLER: &str = r#"local time = require("time")
local funcs = require("funcs")
return function(n, window)
    local futures = {}
    local t0 = time.now()
    local i = 0
    while i < n do
        local m = math.min(window, n - i)
        for j = 1, m do
            local f, err = funcs.async("b:fn", i + j)
            if not f then error("async " .. (i + j) .. ": " .. tostring(err)) end
            futures[j] = f
        end
        for j = 1, m do
            local v = futures[j]:response():receive()
            if v:data() ~= i + j + 1 then error("future " .. (i + j) .. ": " .. tostring(v)) end
        end
        i = i + m
    end
    return time.now():sub(t0):nanoseconds()
end"#;

/// The process equivalent of the function: sends `i + 1` to `parent`.
const CHILD: &str = r#"return function(i, parent) process.send(parent, "r", i + 1) end"#;

/// `n` spawns of [`CHILD`], each reply received before the next spawn;
/// returns the nanoseconds.
const SPAWNER: &str = r#"local time = require("time")
return function(n)
    local inbox, me = process.inbox(), process.pid()
    local t0 = time.now()
    for i = 1, n do
        process.spawn("b:child", "bench:host", i, me)
        local m = inbox:receive()
        if m:payload():data() ~= i + 1 then error("reply " .. i) end
    end
    return time.now():sub(t0):nanoseconds()
end"#;

/// `n` spawns of [`CHILD`], `window` at a time, each window's replies
/// received after its spawns; returns the nanoseconds.
const MANY_SPAWNER: &str = r#"local time = require("time")
return function(n, window)
    local inbox, me = process.inbox(), process.pid()
    local t0 = time.now()
    local i, sum = 0, 0
    while i < n do
        local m = math.min(window, n - i)
        for j = 1, m do process.spawn("b:child", "bench:host", i + j, me) end
        for _ = 1, m do sum = sum + inbox:receive():payload():data() end
        i = i + m
    end
    if sum ~= n * (n + 1) / 2 + n then error("replies " .. sum) end
    return time.now():sub(t0):nanoseconds()
end"#;

/// The comparison the goal is judged on, in one process so that both
/// sides share whatever else the machine does: `rounds` rounds, each
/// timing one block of `block` operations of each of four sides (1:
/// sequential calls, 2: sequential spawn + reply, 3: async calls `window`
/// in flight, 4: spawns `window` in flight), in ABBA order across rounds.
/// Returns each side's total nanoseconds, then each side's fastest block.
const PAIRED: &str = r#"local time = require("time")
local funcs = require("funcs")
return function(rounds, block, window)
    local inbox, me = process.inbox(), process.pid()
    local futures = {}
    local function seq_call(base)
        for i = base + 1, base + block do
            local r, err = funcs.call("b:fn", i)
            if r ~= i + 1 then error("call " .. i .. ": " .. tostring(err or r)) end
        end
    end
    local function seq_spawn(base)
        for i = base + 1, base + block do
            process.spawn("b:child", "bench:host", i, me)
            if inbox:receive():payload():data() ~= i + 1 then error("reply " .. i) end
        end
    end
    local function many_call(base)
        local i = 0
        while i < block do
            local m = math.min(window, block - i)
            for j = 1, m do
                local f, err = funcs.async("b:fn", base + i + j)
                if not f then error("async: " .. tostring(err)) end
                futures[j] = f
            end
            for j = 1, m do
                if futures[j]:response():receive():data() ~= base + i + j + 1 then error("future") end
                futures[j] = nil
            end
            i = i + m
        end
    end
    local function many_spawn(base)
        local i, sum, want = 0, 0, 0
        while i < block do
            local m = math.min(window, block - i)
            for j = 1, m do
                process.spawn("b:child", "bench:host", base + i + j, me)
                want = want + base + i + j + 1
            end
            for _ = 1, m do sum = sum + inbox:receive():payload():data() end
            i = i + m
        end
        if sum ~= want then error("replies") end
    end
    local sides = { seq_call, seq_spawn, many_call, many_spawn }
    local total, best = { 0, 0, 0, 0 }, { math.maxinteger, math.maxinteger, math.maxinteger, math.maxinteger }
    local function timed(s, base)
        local t0 = time.now()
        sides[s](base)
        local ns = time.now():sub(t0):nanoseconds()
        total[s] = total[s] + ns
        if ns < best[s] then best[s] = ns end
    end
    for r = 1, rounds do
        local base = r * block
        for pair = 0, 1 do
            local a, b = 2 * pair + 1, 2 * pair + 2
            if r % 2 == 0 then a, b = b, a end
            timed(a, base)
            timed(b, base)
        end
    end
    return { total[1], total[2], total[3], total[4], best[1], best[2], best[3], best[4] }
end"#;

/// Spawns `procs` children of [`FS_CHILD`] and returns the nanoseconds
/// until each has reported `ok`; a `failed` report fails the driver.
const FS_DRIVER: &str = r#"local time = require("time")
return function(procs, size, each)
    local inbox, me = process.inbox(), process.pid()
    local t0 = time.now()
    for k = 1, procs do process.spawn("b:fs", "bench:host", k, size, each, me) end
    for _ = 1, procs do
        local m = inbox:receive()
        if m:topic() ~= "ok" then error(m:payload():data()) end
    end
    return time.now():sub(t0):nanoseconds()
end"#;

/// Writes `each` files of `size` bytes named `r<k>-<i>` to [`VOLUME`],
/// reads them back, and reports.
const FS_CHILD: &str = r#"local fs = require("fs")
return function(k, size, each, reply)
    local vol, err = fs.get("b.fs:data")
    if not vol then process.send(reply, "failed", tostring(err)) return end
    -- string.rep of one byte copies byte by byte: build it from 1 KiB.
    local data = string.rep(string.rep("x", 1024), size // 1024)
    for i = 1, each do
        local ok, e = vol:writefile("r" .. k .. "-" .. i, data)
        if not ok then process.send(reply, "failed", tostring(e)) return end
    end
    for i = 1, each do
        local s, e = vol:readfile("r" .. k .. "-" .. i)
        if not s or #s ~= size then process.send(reply, "failed", tostring(e or #s)) return end
    end
    process.send(reply, "ok")
end"#;

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn size_value(n: usize) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// What every bench entry holds: the function and the volume.
fn bench_grants() -> Grants {
    let mut g = Grants::new();
    g.add("funcs.call", FUNCTION).expect("valid grant");
    g.add("fs.get", VOLUME).expect("valid grant");
    g
}

fn entry(id: &str, src: &str, method: &str) -> warren_core::Program {
    let mut program = LuaProgram::new(format!("{id}.lua"), src).with_modules(&MODULES);
    program.method = method.into();
    program.grants = Arc::new(bench_grants());
    program.into_program(id)
}

/// A runtime with the bench entries on one host, [`FUNCTION`] in a
/// default (`lazy`) pool, and `volume` given to the `fs` module.
fn runtime(volume: Arc<warren_fs::Volume>, workers: usize) -> Runtime {
    let mut functions = Functions::new();
    functions.insert(FUNCTION, Pool::default());
    let mut volumes = Volumes::new();
    volumes.insert(volume);
    RuntimeBuilder::new()
        .frontend(lua_frontend())
        .host(HostSpec::new(HOST, workers))
        .extension(Arc::new(functions))
        .extension(Arc::new(volumes))
        .program(entry(FUNCTION, FN_SOURCE, "handle"))
        .program(entry("b:caller", CALLER, "main"))
        .program(entry("b:async", ASYNC_CALLER, "main"))
        .program(entry("b:child", CHILD, "main"))
        .program(entry("b:spawner", SPAWNER, "main"))
        .program(entry("b:many", MANY_SPAWNER, "main"))
        .program(entry("b:paired", PAIRED, "main"))
        .program(entry("b:fsdriver", FS_DRIVER, "main"))
        .program(entry("b:fs", FS_CHILD, "main"))
        .start()
        .expect("runtime starts")
}

/// Settings for groups whose iteration is a whole run: ten samples of one
/// iteration each, half a second of warm-up, two seconds of measurement.
fn short_runs(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

// ---- funcs.call against spawn + reply ------------------------------------

fn calls(rt: &Runtime, n: u64) -> Duration {
    nanos(&drive(rt, "b:caller", vec![int(n)]))
}

fn async_calls(rt: &Runtime, n: u64) -> Duration {
    nanos(&drive(rt, "b:async", vec![int(n), int(WINDOW)]))
}

fn spawns(rt: &Runtime, n: u64) -> Duration {
    nanos(&drive(rt, "b:spawner", vec![int(n)]))
}

fn many_spawns(rt: &Runtime, n: u64) -> Duration {
    nanos(&drive(rt, "b:many", vec![int(n), int(WINDOW)]))
}

fn bench_calls(c: &mut Criterion, rt: &Runtime) -> Vec<String> {
    let mut group = c.benchmark_group("funcs_call");
    short_runs(&mut group);
    group.throughput(Throughput::Elements(CALLS));
    type Run = fn(&Runtime, u64) -> Duration;
    let rows: [(&str, Run); 4] = [
        ("call_sequential", calls),
        ("spawn_reply_sequential", spawns),
        ("async_window64", async_calls),
        ("spawn_reply_window64", many_spawns),
    ];
    for (name, run) in rows {
        group.bench_function(format!("{name}_{CALLS}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run(rt, CALLS)).sum());
        });
    }
    group.finish();
    let (rounds, block) = (PAIRED_ROUNDS, PAIRED_BLOCK);
    let v = drive(rt, "b:paired", vec![int(rounds), int(block), int(WINDOW)]);
    let Value::Array(ns) = v else {
        panic!("b:paired returned {v:?}")
    };
    let ns: Vec<f64> = ns.iter().map(|v| nanos(v).as_nanos() as f64).collect();
    assert_eq!(ns.len(), 8, "b:paired returned {ns:?}");
    let n = (rounds * block) as f64;
    let b = block as f64;
    let mut lines = Vec::new();
    for (what, call, spawn) in [("sequential", 0, 1), ("window 64", 2, 3)] {
        let (c, s) = (ns[call] / n, ns[spawn] / n);
        let (bc, bs) = (ns[4 + call] / b, ns[4 + spawn] / b);
        lines.push(format!(
            "funcs_call/{what}: call {c:.0} ns/op, spawn+reply {s:.0} ns/op, ratio call/spawn \
             {:.2} (goal ≤ 1.00); fastest block: call {bc:.0}, spawn {bs:.0} ns/op, ratio {:.2} \
             ({rounds} interleaved blocks of {block} each in one process)",
            c / s,
            bc / bs
        ));
    }
    lines
}

// ---- fs from many processes against cap-std from threads ---------------

fn fs_runtime(rt: &Runtime, size: usize) -> Duration {
    nanos(&drive(
        rt,
        "b:fsdriver",
        vec![int(FS_PROCS), size_value(size), int(FS_EACH)],
    ))
}

/// Writes file `name` in `dir` with `data`.
fn write_file(dir: &Dir, name: &str, data: &[u8]) {
    let mut file = dir.create(name).expect("create");
    file.write_all(data).expect("write");
}

/// Reads file `name` in `dir`, checking its `size`.
fn read_file(dir: &Dir, name: &str, size: usize) {
    let mut file = dir.open(name).expect("open");
    let mut buf = Vec::with_capacity(size);
    file.read_to_end(&mut buf).expect("read");
    assert_eq!(buf.len(), size);
}

/// What [`FS_CHILD`] does, as thread or task `k`: files `d<k>-<i>`.
fn fs_thread(dir: &Dir, k: u64, size: usize) {
    let data = vec![b'x'; size];
    for i in 1..=FS_EACH {
        write_file(dir, &format!("d{k}-{i}"), &data);
    }
    for i in 1..=FS_EACH {
        read_file(dir, &format!("d{k}-{i}"), size);
    }
}

/// The same files from [`FS_PROCS`] OS threads.
fn fs_threads(dir: &Arc<Dir>, size: usize) -> Duration {
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for k in 1..=FS_PROCS {
            let dir = dir.clone();
            s.spawn(move || fs_thread(&dir, k, size));
        }
    });
    t0.elapsed()
}

/// The same files from [`FS_PROCS`] tokio tasks on the I/O runtime, each
/// operation on its blocking pool (files `t<k>-<i>`).
fn fs_tasks(dir: &Arc<Dir>, size: usize) -> Duration {
    warren_core::io_runtime().block_on(async {
        let t0 = Instant::now();
        let tasks: Vec<_> = (1..=FS_PROCS)
            .map(|k| {
                let dir = dir.clone();
                tokio::spawn(async move {
                    let data = Arc::new(vec![b'x'; size]);
                    for i in 1..=FS_EACH {
                        let (dir, data) = (dir.clone(), data.clone());
                        let name = format!("t{k}-{i}");
                        tokio::task::spawn_blocking(move || write_file(&dir, &name, &data))
                            .await
                            .expect("write task");
                    }
                    for i in 1..=FS_EACH {
                        let dir = dir.clone();
                        let name = format!("t{k}-{i}");
                        tokio::task::spawn_blocking(move || read_file(&dir, &name, size))
                            .await
                            .expect("read task");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        t0.elapsed()
    })
}

/// Bytes moved by one run (written and read back).
fn fs_bytes(size: usize) -> u64 {
    2 * FS_PROCS * FS_EACH * u64::try_from(size).unwrap_or(u64::MAX)
}

/// MB/s (10^6 bytes) for `bytes` in `took`.
fn mbps(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64().max(1e-9)
}

fn bench_fs(c: &mut Criterion, rt: &Runtime, dir: &Arc<Dir>) -> Vec<String> {
    let mut group = c.benchmark_group("funcs_fs");
    short_runs(&mut group);
    for size in FS_SIZES {
        let kib = size >> 10;
        group.throughput(Throughput::Bytes(fs_bytes(size)));
        group.bench_function(format!("runtime_{FS_PROCS}x{FS_EACH}x{kib}k"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| fs_runtime(rt, size)).sum());
        });
        group.bench_function(format!("direct_threads_{FS_PROCS}x{FS_EACH}x{kib}k"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| fs_threads(dir, size)).sum());
        });
        group.bench_function(format!("direct_tasks_{FS_PROCS}x{FS_EACH}x{kib}k"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| fs_tasks(dir, size)).sum());
        });
    }
    group.finish();
    let mut lines = Vec::new();
    for size in FS_SIZES {
        let kib = size >> 10;
        let bytes = fs_bytes(size);
        let (mut best_r, mut best_d, mut best_t) = (Duration::MAX, Duration::MAX, Duration::MAX);
        let mut ratios = Vec::with_capacity(FS_ROUNDS);
        let (mut cpu_r, mut cpu_d) = (Duration::ZERO, Duration::ZERO);
        let mut threads_r = BTreeMap::<String, Duration>::new();
        for _ in 0..FS_ROUNDS {
            let c0 = cpu_time();
            let d = fs_threads(dir, size);
            let c1 = cpu_time();
            let t = fs_tasks(dir, size);
            let (c2, t2) = (cpu_time(), thread_cpu());
            let r = fs_runtime(rt, size);
            (cpu_d, cpu_r) = (cpu_d + (c1 - c0), cpu_r + (cpu_time() - c2));
            for (name, t) in thread_cpu() {
                let before = t2.get(&name).copied().unwrap_or_default();
                *threads_r.entry(name).or_default() += t.saturating_sub(before);
            }
            (best_d, best_t, best_r) = (best_d.min(d), best_t.min(t), best_r.min(r));
            ratios.push(d.as_secs_f64() / r.as_secs_f64().max(1e-9));
        }
        let files = (2 * FS_PROCS * FS_EACH) as f64 * FS_ROUNDS as f64;
        let per_call = |cpu: Duration| cpu.as_secs_f64() * 1e6 / files;
        let (r, d, t) = (
            mbps(bytes, best_r),
            mbps(bytes, best_d),
            mbps(bytes, best_t),
        );
        lines.push(format!(
            "funcs_fs/{FS_PROCS}x{FS_EACH}x{kib}KiB: runtime {r:.0} MB/s, direct threads \
             {d:.0} MB/s, ratio {:.2}, median of the rounds' ratios {:.2} (goal ≥ 0.80); direct \
             tokio tasks + spawn_blocking {t:.0} MB/s, runtime/tasks {:.2} (write then read \
             back, best of {FS_ROUNDS} interleaved rounds); CPU per file call (this \
             process, both cores): runtime {:.1} µs, direct threads {:.1} µs",
            r / d,
            median(&mut ratios),
            r / t,
            per_call(cpu_r),
            per_call(cpu_d),
        ));
        let parts: Vec<String> = threads_r
            .iter()
            .filter(|(_, t)| !t.is_zero())
            .map(|(name, t)| format!("{name} {:.1}", per_call(*t)))
            .collect();
        lines.push(format!(
            "funcs_fs/{FS_PROCS}x{FS_EACH}x{kib}KiB: runtime CPU µs per file call by thread: {}",
            parts.join(", ")
        ));
    }
    lines
}

fn main() {
    warren_alloc::configure();
    let tmp = TempDir::new("bench-funcs");
    let root = tmp.0.join("data");
    let volume = warren_fs::Volume::open(VOLUME, &root, 0o755, true).expect("volume opens");
    let dir = Arc::new(
        Dir::open_ambient_dir(&root, cap_std::ambient_authority()).expect("direct dir opens"),
    );
    let rt = runtime(volume.clone(), WORKERS);
    let mut c = common::criterion(10);
    let mut summary = bench_calls(&mut c, &rt);
    drop(rt);
    let rt = runtime(volume, fs_workers());
    summary.extend(bench_fs(&mut c, &rt, &dir));
    c.final_summary();
    println!("\n==== funcs summary ====");
    for line in &summary {
        println!("{line}");
    }
}

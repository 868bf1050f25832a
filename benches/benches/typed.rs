//! Typed Lua at run time (typed-lua.md §3.10), through a real runtime:
//! `T:is(v)` on a record of ten primitive fields and on a primitive, each
//! timed by the Lua process itself; and spawning an entry with 50 `type`
//! declarations used as values (so the chunk takes `__warren_types`)
//! against the same entry without them, until each child waits on its
//! inbox. The goal for the latter pair: the same, within noise.

use std::fmt::Write as _;
use std::time::Duration;

use criterion::Throughput;
use warren_benches::lua::{HOST, drive, nanos};
use warren_core::{HostLimits, HostSpec, Runtime, RuntimeBuilder, Value};
use warren_lua::{LuaProgram, MODULES, lua_frontend};

mod common;

#[global_allocator]
static ALLOCATOR: warren_benches::Allocator = warren_benches::Allocator {};

/// Children per spawner run: bounds the memory a long measurement holds.
const BATCH: u64 = 2_000;

/// Calls `T:is(v)` `n` times and returns the nanoseconds that took:
/// `what` is `"record"` (a valid 10-field record) or `"primitive"`.
const IS: &str = r#"type Rec = {
    f0: string, f1: integer, f2: number, f3: boolean, f4: string,
    f5: integer, f6: number, f7: boolean, f8: string, f9: integer,
}
local time = require("time")
return function(n, what)
    local v = {f0 = "a", f1 = 1, f2 = 1.5, f3 = true, f4 = "b", f5 = 2, f6 = 3, f7 = false, f8 = "c", f9 = 4}
    assert(Rec:is(v) == v and string:is("x") == "x")
    local t0 = time.now()
    if what == "record" then
        for _ = 1, n do Rec:is(v) end
    else
        for _ = 1, n do string:is("x") end
    end
    return time.now():sub(t0):nanoseconds()
end"#;

/// Spawns `n` children of entry `name`, waits until they all wait on
/// their inbox, and returns the nanoseconds that took; then stops them.
const SPAWNER: &str = r#"local time = require("time")
return function(n, name)
    local kids = {}
    local t0 = time.now()
    for i = 1, n do kids[i] = process.spawn(name, "bench:host") end
    -- Resumes once every child has run to its first wait (FIFO ready queue).
    time.sleep("0s")
    local elapsed = time.now():sub(t0):nanoseconds()
    for i = 1, n do process.send(kids[i], "stop") end
    return elapsed
end"#;

/// Types in the typed child.
const TYPES: usize = 50;

/// The child entry: waits on its inbox once. With `typed`, it declares
/// [`TYPES`] record types and uses them as values (on a message never sent
/// here), so its chunk takes the type table; without, the same code minus
/// the declarations and their uses.
fn child(typed: bool) -> String {
    let mut src = String::new();
    let mut uses = Vec::new();
    if typed {
        for i in 1..=TYPES {
            let _ = writeln!(src, "type T{i} = {{id: string, n: integer, tag: string?}}");
            uses.push(format!("T{i}"));
        }
    }
    let _ = write!(
        src,
        "return function()\n\
         \x20   local msg = process.inbox():receive()\n\
         \x20   if msg == \"types\" then return {{{}}} end\n\
         end",
        uses.join(", ")
    );
    src
}

fn entry(id: &str, src: &str) -> warren_core::Program {
    LuaProgram::new(id, src)
        .with_modules(&MODULES)
        .into_program(id)
}

fn runtime() -> Runtime {
    let limits = HostLimits {
        max_processes: 100_000,
        ..HostLimits::default()
    };
    RuntimeBuilder::new()
        .frontend(lua_frontend())
        .host(HostSpec::new(HOST, 1).with_limits(limits))
        .program(entry("typed:is", IS))
        .program(entry("typed:spawner", SPAWNER))
        .program(entry("typed:typed", &child(true)))
        .program(entry("typed:plain", &child(false)))
        .start()
        .expect("runtime starts")
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Time for `iters` calls of `T:is`.
fn is(rt: &Runtime, iters: u64, what: &str) -> Duration {
    nanos(&drive(
        rt,
        "typed:is",
        vec![int(iters.max(1)), Value::str(what)],
    ))
}

/// Time for `iters` spawns of `name`, in batches of at most [`BATCH`].
fn spawn(rt: &Runtime, iters: u64, name: &str) -> Duration {
    let mut left = iters.max(1);
    let mut total = Duration::ZERO;
    while left > 0 {
        let n = left.min(BATCH);
        total += nanos(&drive(rt, "typed:spawner", vec![int(n), Value::str(name)]));
        left -= n;
    }
    total
}

fn main() {
    warren_alloc::configure();
    let mut c = common::criterion(20);
    let rt = runtime();

    let mut group = c.benchmark_group("typed_is");
    group.throughput(Throughput::Elements(1));
    group.bench_function("record10", |b| {
        b.iter_custom(|iters| is(&rt, iters, "record"));
    });
    group.bench_function("primitive", |b| {
        b.iter_custom(|iters| is(&rt, iters, "primitive"));
    });
    group.finish();

    let mut group = c.benchmark_group("typed_spawn");
    group.throughput(Throughput::Elements(1));
    group.bench_function("types50", |b| {
        b.iter_custom(|iters| spawn(&rt, iters, "typed:typed"));
    });
    group.bench_function("plain", |b| {
        b.iter_custom(|iters| spawn(&rt, iters, "typed:plain"));
    });
    group.finish();
    c.final_summary();
}

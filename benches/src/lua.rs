//! Lua scenarios, each driven by a Lua process that times itself with
//! `time.now()`, so what is measured is the work inside the runtime (the
//! scheduler, the kernel, the host calls), not the bench's own threads.

use std::time::{Duration, Instant};

use warren_core::{HostLimits, HostSpec, Runtime, RuntimeBuilder, SpawnRequest, Value};
use warren_lua::{LuaProgram, MODULES, lua_frontend};

use crate::memory::{in_child, rss_bytes, settle};

/// The host the bench processes run on.
pub const HOST: &str = "bench:host";

/// Messages in flight before a sender waits for its receiver's ack: a
/// bounded backlog, as a real producer/consumer pair has.
pub const WINDOW: i64 = 256;

/// Processes a bench host may hold: the 100,000-process row plus drivers.
const MAX_PROCESSES: usize = 200_000;

/// A process that waits on its inbox once and exits.
const IDLE: &str = "return function() process.inbox():receive() end";

/// Spawns `n` children, waits until they all wait on their inbox, and
/// returns the nanoseconds that took; then stops them. The children run
/// the idle entry, or with `prefix` one each of the entries `prefix .. i`
/// (entries never spawned before: each is compiled on its first spawn).
const SPAWNER: &str = r#"local time = require("time")
return function(n, prefix)
    local kids = {}
    local t0 = time.now()
    for i = 1, n do
        kids[i] = process.spawn(prefix and prefix .. i or "bench:idle", "bench:host")
    end
    -- A timer fires only once the worker's loop regains control; by then
    -- every child has started, and the ready queue is FIFO, so this resumes
    -- after each child has run to its first wait.
    time.sleep("0s")
    local elapsed = time.now():sub(t0):nanoseconds()
    for i = 1, n do process.send(kids[i], "stop") end
    return elapsed
end"#;

/// Spawns `n` idle children, registers itself as `bench:held` once they
/// all wait, and waits (the memory rows read the resident set meanwhile).
const HOLDER: &str = r#"local time = require("time")
return function(n)
    for _ = 1, n do process.spawn("bench:idle", "bench:host") end
    time.sleep("0s")
    process.registry.register("bench:held")
    process.inbox():receive()
end"#;

/// Starts `n` coroutines that each block on one channel, registers
/// `bench:held` once they all wait, and waits.
const COROUTINES: &str = r#"local time = require("time")
return function(n)
    local ch = channel.new()
    for _ = 1, n do coroutine.spawn(function() ch:receive() end) end
    time.sleep("0s")
    process.registry.register("bench:held")
    process.inbox():receive()
end"#;

/// Sends `n` small-table messages to a receiver, at most `window` ahead of
/// it, and returns the nanoseconds until the receiver has taken them all;
/// with `report`, also tells that process it is done.
const SENDER: &str = r#"local time = require("time")
return function(n, window, report)
    local sink = process.spawn("bench:sink", "bench:host", n, window, process.pid())
    local inbox = process.inbox()
    inbox:receive() -- the sink is ready
    local t0 = time.now()
    for i = 1, n do
        process.send(sink, "m", { i = i })
        if i % window == 0 then inbox:receive() end
    end
    if n % window ~= 0 then inbox:receive() end
    local ns = time.now():sub(t0):nanoseconds()
    if report then process.send(report, "done") end
    return ns
end"#;

/// Receives `n` messages, acknowledging every `window` and the last.
const SINK: &str = r#"return function(n, window, reply)
    local inbox = process.inbox()
    process.send(reply, "ready")
    for i = 1, n do
        inbox:receive()
        if i % window == 0 or i == n then process.send(reply, "ack") end
    end
end"#;

/// Starts `pairs` sender/sink pairs of `n` messages each and returns the
/// nanoseconds until every sink has taken all of its messages.
const PAIRS: &str = r#"local time = require("time")
return function(pairs, n, window)
    local inbox = process.inbox()
    local t0 = time.now()
    for _ = 1, pairs do process.spawn("bench:sender", "bench:host", n, window, process.pid()) end
    for _ = 1, pairs do inbox:receive() end
    return time.now():sub(t0):nanoseconds()
end"#;

/// Times `n` resume+yield pairs of a plain coroutine, then `n` values
/// through an unbuffered channel from a spawned coroutine (each receive
/// blocks and is resumed once), then `n` ping-pong round trips between two
/// coroutines over two unbuffered channels.
const SWITCHES: &str = r#"local time = require("time")
return function(n)
    local co = coroutine.create(function() while true do coroutine.yield() end end)
    local t0 = time.now()
    for _ = 1, n do coroutine.resume(co) end
    local bare = time.now():sub(t0):nanoseconds()

    local ch = channel.new()
    coroutine.spawn(function() for i = 1, n do ch:send(i) end end)
    t0 = time.now()
    for _ = 1, n do ch:receive() end
    local blocked = time.now():sub(t0):nanoseconds()

    local ping, pong = channel.new(), channel.new()
    coroutine.spawn(function() for _ = 1, n do pong:send(ping:receive()) end end)
    t0 = time.now()
    for i = 1, n do
        ping:send(i)
        pong:receive()
    end
    local round_trip = time.now():sub(t0):nanoseconds()
    return { bare = bare, blocked = blocked, round_trip = round_trip }
end"#;

fn entry(id: &str, src: &str) -> warren_core::Program {
    LuaProgram::new(id, src)
        .with_modules(&MODULES)
        .into_program(id)
}

/// A runtime with the Lua `entries` (id, source) on one host of `workers`
/// workers holding at most `max_processes`.
pub(crate) fn build(workers: usize, max_processes: usize, entries: &[(&str, &str)]) -> Runtime {
    let limits = HostLimits {
        max_processes,
        ..HostLimits::default()
    };
    let mut builder = RuntimeBuilder::new()
        .frontend(lua_frontend())
        .host(HostSpec::new(HOST, workers).with_limits(limits));
    for (id, src) in entries {
        builder = builder.program(entry(id, src));
    }
    builder.start().expect("runtime starts")
}

/// Starts a runtime with the bench entries on one host of `workers` workers.
pub fn runtime(workers: usize) -> Runtime {
    build(
        workers,
        MAX_PROCESSES,
        &[
            ("bench:idle", IDLE),
            ("bench:spawner", SPAWNER),
            ("bench:holder", HOLDER),
            ("bench:coroutines", COROUTINES),
            ("bench:sender", SENDER),
            ("bench:sink", SINK),
            ("bench:pairs", PAIRS),
            ("bench:switches", SWITCHES),
        ],
    )
}

/// Runs driver `entry` with `args` and returns the value it returns.
pub fn drive(rt: &Runtime, entry: &str, args: Vec<Value>) -> Value {
    let exit = rt
        .run(
            SpawnRequest::new(entry, HOST, args),
            Duration::from_secs(300),
        )
        .expect("spawn accepted")
        .expect("driver finished in time");
    match exit {
        Ok(v) => v,
        Err(e) => panic!("driver {entry} failed: {e:?}"),
    }
}

/// Nanoseconds in a driver's result.
pub fn nanos(v: &Value) -> Duration {
    match v {
        Value::Int(ns) => Duration::from_nanos(u64::try_from(*ns).unwrap_or(0)),
        other => panic!("expected nanoseconds, got {other:?}"),
    }
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Time for `n` spawns of a precompiled idle entry until each waits on its
/// inbox, spawned in one batch by a Lua process.
pub fn spawn_warm(rt: &Runtime, n: u64) -> Duration {
    nanos(&drive(rt, "bench:spawner", vec![int(n)]))
}

/// Time for `n` spawns of entries never spawned before (each compiled on
/// its first spawn), until each waits on its inbox.
pub fn spawn_cold(rt: &Runtime, n: u64) -> Duration {
    static ROUND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let round = ROUND.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let prefix = format!("bench:cold:{round}:");
    for i in 1..=n {
        let id = format!("{prefix}{i}");
        // Distinct text per entry: nothing can be shared between them.
        let src = format!("-- {id}\n{IDLE}");
        rt.add_program(entry(&id, &src));
    }
    nanos(&drive(
        rt,
        "bench:spawner",
        vec![int(n), Value::str(&prefix)],
    ))
}

/// Time until `n` small-table messages from one Lua process have been
/// received by another, at most [`WINDOW`] in flight.
pub fn one_way(rt: &Runtime, n: u64) -> Duration {
    nanos(&drive(
        rt,
        "bench:sender",
        vec![int(n.max(1)), Value::Int(WINDOW)],
    ))
}

/// Time until `pairs` sender/sink pairs have each moved `n` messages.
pub fn pairs(rt: &Runtime, pairs: u64, n: u64) -> Duration {
    nanos(&drive(
        rt,
        "bench:pairs",
        vec![int(pairs), int(n.max(1)), Value::Int(WINDOW)],
    ))
}

/// Coroutine switches measured in one run of one process.
#[derive(Clone, Copy, Debug)]
pub struct Switches {
    /// `n` resume+yield pairs of a plain coroutine.
    pub bare: Duration,
    /// `n` channel receives that each blocked and were resumed.
    pub blocked: Duration,
    /// `n` unbuffered ping-pong round trips between two coroutines.
    pub round_trip: Duration,
}

/// Runs the switch scenarios with `n` of each.
pub fn switches(rt: &Runtime, n: u64) -> Switches {
    let v = drive(rt, "bench:switches", vec![int(n.max(1))]);
    let field = |name: &str| match &v {
        Value::Map(fields) => fields
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == name.as_bytes()))
            .map(|(_, v)| nanos(v))
            .unwrap_or_else(|| panic!("no {name} in {v:?}")),
        other => panic!("expected a table, got {other:?}"),
    };
    Switches {
        bare: field("bare"),
        blocked: field("blocked"),
        round_trip: field("round_trip"),
    }
}

/// Resident-set growth per unit while driver `entry` holds `n` of them
/// (idle child processes, blocked coroutines), on a fresh runtime.
fn held_bytes(entry: &str, n: u64) -> u64 {
    let rt = runtime(1);
    // Warm the VM (kernel, compiled entries) before the baseline.
    let _ = spawn_warm(&rt, 100);
    settle();
    let before = rss_bytes();
    let holder = rt
        .spawn(SpawnRequest::new(entry, HOST, vec![int(n)]))
        .expect("holder spawns");
    let deadline = Instant::now() + Duration::from_secs(300);
    while rt.lookup("bench:held").is_none() {
        assert!(Instant::now() < deadline, "{entry} did not get ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    settle();
    let grown = rss_bytes().saturating_sub(before);
    let _ = rt.kill(
        holder,
        warren_core::ProcError::new(warren_core::ErrorKind::Canceled, "done"),
    );
    grown / n.max(1)
}

/// Resident-set growth per idle Lua process, with `n` of them waiting
/// (measured in a child process: see [`crate::memory::in_child`]).
pub fn idle_process_bytes(n: u64) -> u64 {
    in_child("idle", n).first().copied().unwrap_or(0)
}

/// Resident-set growth per coroutine blocked on a channel, `n` of them.
pub fn coroutine_bytes(n: u64) -> u64 {
    in_child("coroutines", n).first().copied().unwrap_or(0)
}

/// The child's side of [`idle_process_bytes`] and [`coroutine_bytes`].
pub(crate) fn held_in_child(what: &str, n: u64) -> Option<u64> {
    match what {
        "idle" => Some(held_bytes("bench:holder", n)),
        "coroutines" => Some(held_bytes("bench:coroutines", n)),
        _ => None,
    }
}

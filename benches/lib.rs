//! Shared helpers for the benches: a runtime with the bench entries, a way
//! to run a driver process and read the nanoseconds it measured, and the
//! process's resident set size.

use std::time::Duration;

use warren_core::{HostSpec, Runtime, RuntimeBuilder, SpawnRequest, Value};
use warren_lua::{LuaProgram, MODULES, lua_frontend};

/// The allocator the `warren` binary uses, so benches measure what users run.
pub type Allocator = mimalloc::MiMalloc;

/// The host the bench processes run on.
pub const HOST: &str = "bench:host";

/// A process that waits on its inbox once and exits.
pub const IDLE: &str = "return function() process.inbox():receive() end";

/// Spawns `n` idle children, waits until they all wait on their inbox, and
/// returns the nanoseconds that took; then stops them.
pub const SPAWNER: &str = r#"local time = require("time")
return function(n)
    local kids = {}
    local t0 = time.now()
    for i = 1, n do kids[i] = process.spawn("bench:idle", "bench:host") end
    -- A timer fires only once the worker's loop regains control; by then
    -- every child has started, and the ready queue is FIFO, so this resumes
    -- after each child has run to its first wait.
    time.sleep("0s")
    local elapsed = time.now():sub(t0):nanoseconds()
    for i = 1, n do process.send(kids[i], "stop") end
    return elapsed
end"#;

/// Messages in flight before the sender waits for the receiver's ack: a
/// bounded backlog, as a real producer/consumer pair has.
pub const WINDOW: i64 = 256;

/// Sends `n` small-table messages to a receiver, at most [`WINDOW`] ahead of
/// it, and returns the nanoseconds until the receiver has taken them all.
pub const SENDER: &str = r#"local time = require("time")
return function(n, window)
    local sink = process.spawn("bench:sink", "bench:host", n, window, process.pid())
    local inbox = process.inbox()
    inbox:receive() -- the sink is ready
    local t0 = time.now()
    for i = 1, n do
        process.send(sink, "m", { i = i })
        if i % window == 0 then inbox:receive() end
    end
    if n % window ~= 0 then inbox:receive() end
    return time.now():sub(t0):nanoseconds()
end"#;

/// Receives `n` messages, acknowledging every `window` and the last.
pub const SINK: &str = r#"return function(n, window, reply)
    local inbox = process.inbox()
    process.send(reply, "ready")
    for i = 1, n do
        inbox:receive()
        if i % window == 0 or i == n then process.send(reply, "ack") end
    end
end"#;

/// Starts a runtime with the bench entries on one host of `workers` workers.
pub fn runtime(workers: usize) -> Runtime {
    let entry = |id: &str, src: &str| {
        LuaProgram::new(id, src)
            .with_modules(&MODULES)
            .into_program(id)
    };
    RuntimeBuilder::new()
        .frontend(lua_frontend())
        .host(HostSpec::new(HOST, workers))
        .program(entry("bench:idle", IDLE))
        .program(entry("bench:spawner", SPAWNER))
        .program(entry("bench:sender", SENDER))
        .program(entry("bench:sink", SINK))
        .start()
        .expect("runtime starts")
}

/// Runs driver `entry` with integer `n` and returns the nanoseconds it reports.
pub fn measure(rt: &Runtime, entry: &str, n: i64) -> Duration {
    let exit = rt
        .run(
            SpawnRequest::new(entry, HOST, vec![Value::Int(n), Value::Int(WINDOW)]),
            Duration::from_secs(120),
        )
        .expect("spawn accepted")
        .expect("driver finished");
    match exit {
        Ok(Value::Int(ns)) => Duration::from_nanos(u64::try_from(ns).unwrap_or(0)),
        other => panic!("driver {entry} ended with {other:?}"),
    }
}

/// The resident set size of this process, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

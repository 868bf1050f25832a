//! Whole-program scenarios at scale, the ones BEAM and Go are usually
//! compared on: Skynet (a tree of processes summing back up), Savina's
//! thread ring (a token passed around a ring of processes), Savina's Big
//! (processes pinging one another at random) and a fan-out (one process
//! feeding many). Each driver times itself with `time.now()`
//! and returns the nanoseconds; [`crate::peers`] runs the same programs on
//! BEAM and Go.

use std::time::Duration;

use warren_core::{Runtime, Value};

use crate::lua::{HOST, nanos};

/// How long a scenario may take before it counts as not finishing (Skynet
/// 1M stalled forever once: a process wrongly ended, its parent waiting).
const DEADLINE: Duration = Duration::from_secs(180);

/// Processes a scale host may hold: Skynet 1M has 1,111,111 in all, and
/// with a FIFO run queue most of its inner nodes wait at once.
const MAX_PROCESSES: usize = 2_000_000;

/// A Skynet node: a leaf sends its number to its parent; an inner node
/// spawns `div` children over its range and sends their sum up.
const SKYNET: &str = r#"return function(parent, num, size, div)
    if size == 1 then
        process.send(parent, "r", num)
        return
    end
    local me, step = process.pid(), size // div
    for i = 0, div - 1 do
        process.spawn("bench:skynet", "bench:host", me, num + i * step, step, div)
    end
    local inbox, sum = process.inbox(), 0
    for _ = 1, div do sum = sum + inbox:receive():payload():data() end
    process.send(parent, "r", sum)
end"#;

/// Times one Skynet tree of `size` leaves, `div` children per node; fails
/// unless the sum is right.
const SKYNET_ROOT: &str = r#"local time = require("time")
return function(size, div)
    local t0 = time.now()
    process.spawn("bench:skynet", "bench:host", process.pid(), 0, size, div)
    local sum = process.inbox():receive():payload():data()
    local ns = time.now():sub(t0):nanoseconds()
    if sum ~= size * (size - 1) // 2 then error("skynet sum " .. tostring(sum)) end
    return ns
end"#;

/// A ring node: learns its successor, then passes the token on (one less
/// each hop); the node that sees 0 tells the driver. Ends on `stop`.
const RING_NODE: &str = r#"return function(driver)
    local inbox = process.inbox()
    local next_pid = inbox:receive():payload():data()
    while true do
        local msg = inbox:receive()
        if msg:topic() == "stop" then return end
        local token = msg:payload():data()
        if token == 0 then
            process.send(driver, "done", true)
        else
            process.send(next_pid, "t", token - 1)
        end
    end
end"#;

/// Builds a ring of `size` nodes and times `hops` passes of the token.
const RING: &str = r#"local time = require("time")
return function(size, hops)
    local me, nodes = process.pid(), {}
    for i = 1, size do nodes[i] = process.spawn("bench:ring_node", "bench:host", me) end
    for i = 1, size do process.send(nodes[i], "next", nodes[i % size + 1]) end
    local t0 = time.now()
    process.send(nodes[1], "t", hops)
    process.inbox():receive()
    local ns = time.now():sub(t0):nanoseconds()
    for i = 1, size do process.send(nodes[i], "stop", true) end
    return ns
end"#;

/// A fan-out leaf: takes `n` messages, then tells the driver.
const FAN_LEAF: &str = r#"return function(driver, n)
    local inbox = process.inbox()
    for _ = 1, n do inbox:receive() end
    process.send(driver, "done", true)
end"#;

/// Spawns `width` leaves, sends each `depth` messages (round by round),
/// and times it all until every leaf has reported.
const FAN_OUT: &str = r#"local time = require("time")
return function(width, depth)
    local me, leaves = process.pid(), {}
    local t0 = time.now()
    for i = 1, width do leaves[i] = process.spawn("bench:fan_leaf", "bench:host", me, depth) end
    for r = 1, depth do
        for i = 1, width do process.send(leaves[i], "m", r) end
    end
    local inbox = process.inbox()
    for _ = 1, width do inbox:receive() end
    return time.now():sub(t0):nanoseconds()
end"#;

/// A Savina Big actor: once it has the group's pids, pings a random one
/// (its own generator, seeded by the driver, so every language sends the
/// same traffic) and waits for the pong, `n` times, answering the others'
/// pings throughout; says `done` after its last pong, and on `stop` answers
/// how many pings it answered. A ping that comes before the pids is
/// answered as any other.
const BIG_ACTOR: &str = r#"return function(driver, n, seed)
    local inbox, peers, x, left, answered = process.inbox(), nil, seed, n, 0
    local function ping()
        x = (x * 69069 + 1) & 0xffffffff
        process.send(peers[(x >> 16) % #peers + 1], "ping", true)
    end
    while true do
        local msg = inbox:receive()
        local topic = msg:topic()
        if topic == "ping" then
            answered = answered + 1
            process.send(msg:from(), "pong", true)
        elseif topic == "pong" then
            left = left - 1
            if left == 0 then process.send(driver, "done", true) else ping() end
        elseif topic == "peers" then
            peers = msg:payload():data()
            ping()
        else
            process.send(driver, "answered", answered)
            return
        end
    end
end"#;

/// Spawns `width` Big actors, sends each the group, and times it all until
/// every actor has had its `n` pongs; fails unless the actors answered
/// `width * n` pings in all.
const BIG: &str = r#"local time = require("time")
return function(width, n)
    local me, actors, inbox = process.pid(), {}, process.inbox()
    local t0 = time.now()
    for i = 1, width do actors[i] = process.spawn("bench:big_actor", "bench:host", me, n, i) end
    for i = 1, width do process.send(actors[i], "peers", actors) end
    for _ = 1, width do inbox:receive() end
    local ns = time.now():sub(t0):nanoseconds()
    for i = 1, width do process.send(actors[i], "stop", true) end
    local answered = 0
    for _ = 1, width do answered = answered + inbox:receive():payload():data() end
    if answered ~= width * n then error("big answered " .. answered .. " pings") end
    return ns
end"#;

/// A runtime with the scale entries on one host of `workers` workers.
pub fn runtime(workers: usize) -> Runtime {
    crate::lua::build(
        workers,
        MAX_PROCESSES,
        &[
            ("bench:skynet", SKYNET),
            ("bench:skynet_root", SKYNET_ROOT),
            ("bench:ring_node", RING_NODE),
            ("bench:ring", RING),
            ("bench:fan_leaf", FAN_LEAF),
            ("bench:fan_out", FAN_OUT),
            ("bench:big_actor", BIG_ACTOR),
            ("bench:big", BIG),
        ],
    )
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Runs driver `entry` and returns the nanoseconds it reports, or `None`
/// (said on standard error) when it fails or takes past [`DEADLINE`].
fn timed(rt: &Runtime, entry: &str, args: Vec<Value>) -> Option<Duration> {
    let req = warren_core::SpawnRequest::new(entry, HOST, args);
    match rt.run(req, DEADLINE) {
        Ok(Some(Ok(v))) => Some(nanos(&v)),
        Ok(Some(Err(e))) => {
            eprintln!("warren-bench: {entry} failed: {e:?}");
            None
        }
        Ok(None) => {
            eprintln!("warren-bench: {entry} did not finish within {DEADLINE:?}");
            None
        }
        Err(e) => {
            eprintln!("warren-bench: {entry} was not spawned: {e:?}");
            None
        }
    }
}

/// One Skynet tree of `size` leaves, ten children per node.
pub fn skynet(rt: &Runtime, size: u64) -> Option<Duration> {
    timed(rt, "bench:skynet_root", vec![int(size), int(10)])
}

/// `hops` passes of a token around a ring of `size` processes.
pub fn ring(rt: &Runtime, size: u64, hops: u64) -> Option<Duration> {
    timed(rt, "bench:ring", vec![int(size), int(hops)])
}

/// Savina's Big: `width` processes, each pinging a random one of them and
/// waiting for its pong `n` times (at least once).
pub fn big(rt: &Runtime, width: u64, n: u64) -> Option<Duration> {
    timed(rt, "bench:big", vec![int(width), int(n.max(1))])
}

/// One process feeding `depth` messages to each of `width` processes.
pub fn fan_out(rt: &Runtime, width: u64, depth: u64) -> Option<Duration> {
    timed(rt, "bench:fan_out", vec![int(width), int(depth)])
}

/// Whole-program scenario `name` (`skynet`, `ring`, `fan_out`, `big`) with
/// `n` on a fresh runtime of `workers` workers; `None` for another name.
pub fn by_name(name: &str, workers: usize, n: u64) -> Option<Option<Duration>> {
    let rt = runtime(workers);
    Some(match name {
        "skynet" => skynet(&rt, n),
        "ring" => ring(&rt, 503, n),
        "fan_out" => fan_out(&rt, 10_000, n),
        "big" => big(&rt, 400, n),
        _ => return None,
    })
}

/// [`by_name`] in a fresh copy of this binary: a scenario run after
/// another in one process paid for what that one left (the ring's one
/// worker took 23% longer right after Skynet 1M than alone), and the
/// comparison of one worker with two depended on the order. `None` when
/// it did not finish (said on standard error).
pub fn in_child(name: &str, workers: usize, n: u64) -> Option<Duration> {
    match crate::memory::answer_of(&format!("{name}@{workers}"), n) {
        Ok(ns) => ns
            .first()
            .copied()
            .filter(|&ns| ns > 0)
            .map(Duration::from_nanos),
        Err(status) => {
            eprintln!("warren-bench: {name} on {workers} workers ended with {status}");
            None
        }
    }
}

/// The child's side of [`in_child`]: `what` is `name@workers`; answers
/// the nanoseconds, 0 when it did not finish.
pub(crate) fn timed_in_child(what: &str, n: u64) -> Vec<u64> {
    let (name, workers) = what.split_once('@').expect("name@workers");
    let workers = workers.parse().expect("a worker count");
    let took = by_name(name, workers, n).unwrap_or_else(|| panic!("unknown scenario {name}"));
    vec![took.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each scenario finishes and checks its own result (Skynet's sum,
    /// Big's count of answered pings) on one worker and on two.
    #[test]
    fn every_scenario_finishes_small_on_one_and_two_workers() {
        for workers in [1, 2] {
            let rt = runtime(workers);
            assert!(skynet(&rt, 1_000).is_some(), "skynet, {workers} workers");
            assert!(ring(&rt, 50, 500).is_some(), "ring, {workers} workers");
            assert!(
                fan_out(&rt, 100, 10).is_some(),
                "fan-out, {workers} workers"
            );
            assert!(big(&rt, 20, 30).is_some(), "big, {workers} workers");
        }
    }
}

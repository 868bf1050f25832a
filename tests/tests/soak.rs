//! Soak: a thousand sender/receiver pairs of Lua processes on two workers
//! move half a million messages a round; every receiver checks that it got each
//! sequence number once and in order, the driver checks every count; three
//! rounds. Once all have exited, the Lua heaps are back near where they
//! started, and the resident set does not climb from round to round. A
//! Skynet tree of 11,111 processes on two workers sums back up exactly.

use std::time::{Duration, Instant};

use warren_core::{HostLimits, Runtime, SpawnRequest, Value};
use warren_tests::{App, HOST, rss_bytes};

/// The allocator the `warren` binary uses: what is measured is what users run.
#[global_allocator]
static ALLOCATOR: warren_alloc::Allocator = warren_alloc::Allocator;

/// Sender/receiver pairs: 2,000 processes plus the driver.
const PAIRS: i64 = 1_000;
/// Messages each sender sends, a round.
const MESSAGES: i64 = 500;
/// Rounds: 1,500,000 messages in all.
const ROUNDS: usize = 3;
/// Messages a sender may have in flight before it waits for an ack.
const WINDOW: i64 = 64;
/// How long the soak may take before the test fails instead of hanging.
const SOAK_DEADLINE: Duration = Duration::from_secs(50);
/// What the Lua heaps may hold once every process has exited, over what
/// they held before: garbage the collector has not reached yet (it varies
/// between 3 and 17 MB here; what 2,000 live processes hold is far more).
const HEAP_LEFT_OVER: u64 = 32 << 20;
/// How far the resident set after the last round may be above its highest
/// after an earlier one. The first round leaves the allocator's high-water
/// mark behind (pages it keeps for reuse, returned on its own schedule), and
/// whether a worker's idle collection ran before the reading moves it too,
/// so the level after a round wanders between about 55 and 93 MiB here
/// (seen: [56, 55, 90]); a leak does not wander back: leaking every message
/// (64 bytes or more each; a Lua-side leak of any size fails the heap check
/// above) would add over 30 MiB a round, 61 MiB over the two rounds compared.
const RSS_GROWTH: u64 = 48 << 20;

const DRIVER: &str = r#"return function(pairs, n, window)
    local inbox = process.inbox()
    for i = 1, pairs do
        process.spawn("soak:sender", "test:host", i, n, window, process.pid())
    end
    local total, seen = 0, {}
    for _ = 1, pairs do
        local r = inbox:receive():payload():data()
        if seen[r.pair] then error("pair " .. r.pair .. " reported twice") end
        seen[r.pair] = true
        if r.count ~= n or r.sum ~= n * (n + 1) // 2 or r.bad ~= 0 then
            error(("pair %d: count %d, sum %d, out of order %d"):format(r.pair, r.count, r.sum, r.bad))
        end
        total = total + r.count
    end
    return total
end"#;

const SENDER: &str = r#"return function(pair, n, window, report)
    local sink = process.spawn("soak:sink", "test:host", pair, n, window, process.pid(), report)
    local inbox = process.inbox()
    for i = 1, n do
        local ok, err = process.send(sink, "m", { seq = i, pair = pair })
        if not ok then error("send " .. i .. ": " .. tostring(err)) end
        if i % window == 0 then inbox:receive() end
    end
end"#;

const SINK: &str = r#"return function(pair, n, window, sender, report)
    local inbox = process.inbox()
    local count, sum, bad, expect = 0, 0, 0, 1
    while count < n do
        local m = inbox:receive():payload():data()
        if m.seq ~= expect or m.pair ~= pair then bad = bad + 1 end
        expect = m.seq + 1
        count, sum = count + 1, sum + m.seq
        if count % window == 0 then process.send(sender, "ack") end
    end
    process.send(report, "done", { pair = pair, count = count, sum = sum, bad = bad })
end"#;

/// Bytes the Lua VMs of the test host hold.
fn heap(rt: &Runtime) -> u64 {
    rt.memory_used(HOST).expect("the test host exists")
}

fn soak(rt: &Runtime, pairs: i64) -> Value {
    let args = vec![Value::Int(pairs), Value::Int(MESSAGES), Value::Int(WINDOW)];
    let exit = rt
        .run(SpawnRequest::new("soak:driver", HOST, args), SOAK_DEADLINE)
        .expect("driver spawns")
        .expect("the soak finished in time");
    exit.unwrap_or_else(|e| panic!("the soak failed: {e:?}"))
}

/// One round: every count checked, then every process gone.
fn round(rt: &Runtime, pairs: i64) {
    assert_eq!(soak(rt, pairs), Value::Int(pairs * MESSAGES));
    assert!(rt.wait_idle(Duration::from_secs(10)), "every process exits");
    assert_eq!(rt.live_processes(), 0);
}

#[test]
fn millions_of_messages_arrive_once_in_order_and_memory_comes_back() {
    let rt = App::new()
        .workers(2)
        .limits(HostLimits::default())
        .entry("soak:driver", DRIVER)
        .entry("soak:sender", SENDER)
        .entry("soak:sink", SINK)
        .start();
    // Warm up: compile the entries, grow the VMs' tables once.
    round(&rt, 10);
    let heap_start = heap(&rt);
    let rss_start = rss_bytes();

    let started = Instant::now();
    let mut after = Vec::new();
    for _ in 0..ROUNDS {
        round(&rt, PAIRS);
        let heap_now = heap(&rt);
        assert!(
            heap_now <= heap_start + HEAP_LEFT_OVER,
            "the Lua heaps hold {heap_now} bytes after a round, {heap_start} before"
        );
        after.push(rss_bytes());
    }
    eprintln!(
        "soak: {ROUNDS} x {} messages between {} processes in {:?}; RSS {} MiB at the start, after each round {:?} MiB",
        PAIRS * MESSAGES,
        2 * PAIRS,
        started.elapsed(),
        rss_start >> 20,
        after.iter().map(|b| b >> 20).collect::<Vec<_>>(),
    );
    let (last, earlier) = after.split_last().expect("rounds ran");
    let high = earlier.iter().copied().max().unwrap_or(rss_start);
    assert!(
        *last <= high + RSS_GROWTH,
        "the resident set kept growing: {after:?} bytes after each round"
    );
}

/// A Skynet node (as `warren-bench --whole` runs it, at a size a test can
/// afford): a leaf sends its number up, an inner node spawns ten children
/// over its range and sends their sum up.
const SKYNET: &str = r#"return function(parent, num, size)
    if size == 1 then
        process.send(parent, "r", num)
        return
    end
    local me, step = process.pid(), size // 10
    for i = 0, 9 do
        local ok, err = process.spawn("soak:skynet", "test:host", me, num + i * step, step)
        if not ok then error("spawn: " .. tostring(err)) end
    end
    local inbox, sum = process.inbox(), 0
    for _ = 1, 10 do sum = sum + inbox:receive():payload():data() end
    process.send(parent, "r", sum)
end"#;

const SKYNET_ROOT: &str = r#"return function(size)
    process.spawn("soak:skynet", "test:host", process.pid(), 0, size)
    return process.inbox():receive():payload():data()
end"#;

/// Leaves of the test's tree: 11,111 processes in all.
const SKYNET_LEAVES: i64 = 10_000;

#[test]
fn a_skynet_tree_sums_back_up_across_two_workers() {
    // Every one of 11,111 processes must run, spawn or send, and exit; one
    // ended wrongly (the stuck-code guard blaming a spawn for the time a
    // table grew, say) leaves its parent waiting and the test timing out.
    let rt = App::new()
        .workers(2)
        .limits(HostLimits::default())
        .entry("soak:skynet", SKYNET)
        .entry("soak:skynet_root", SKYNET_ROOT)
        .start();
    let args = vec![Value::Int(SKYNET_LEAVES)];
    let exit = rt
        .run(
            SpawnRequest::new("soak:skynet_root", HOST, args),
            SOAK_DEADLINE,
        )
        .expect("the root spawns")
        .expect("the tree summed up in time");
    let sum = exit.unwrap_or_else(|e| panic!("the root failed: {e:?}"));
    assert_eq!(sum, Value::Int(SKYNET_LEAVES * (SKYNET_LEAVES - 1) / 2));
    assert!(rt.wait_idle(Duration::from_secs(10)), "every process exits");
    assert_eq!(rt.live_processes(), 0);
}

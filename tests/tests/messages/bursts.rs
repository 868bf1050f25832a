//! A burst's children wait on their parent's worker until the burst is
//! placed, and some then move to another worker before they start
//! (`warren-core/src/core/burst.rs`). Whatever reached them while they
//! waited moves with them, and a sender that found one while it waited
//! (by a name, here) keeps its order: a child with a message still on its
//! way to where it waited does not move.

use warren_core::Value;
use warren_tests::*;

/// Messages each poller sends the target.
const N: i64 = 3_000;

/// Messages the parent sends the target before its burst is placed, and
/// as many after.
const P: i64 = 10;

const MAIN: &str = r#"local time = require("time")
return function(n, p)
    local me, inbox = process.pid(), process.inbox()
    -- A burst of two: a poller on each worker.
    for i = 1, 2 do process.spawn("t:poller", "test:host", i, n, me) end
    for _ = 1, 2 do inbox:receive() end
    -- The next burst: the target among fillers, named while it waits; the
    -- fillers after it give the pollers time to find it and send.
    for _ = 1, 249 do process.spawn("t:filler", "test:host") end
    local target = process.spawn("t:target", "test:host", me, 2 * n + 2 * p)
    process.registry.register("target", target)
    for i = 1, p do process.send(target, "p", i) end
    for _ = 1, 400 do process.spawn("t:filler", "test:host") end
    time.sleep("0s")
    for i = p + 1, 2 * p do process.send(target, "p", i) end
    return inbox:receive():payload():data()
end"#;

const POLLER: &str = r#"return function(i, n, parent)
    process.send(parent, "up", i)
    local target
    repeat target = process.registry.lookup("target") until target
    -- Paced (about 30 ms in all), so the sending spans the placement.
    for k = 1, n do
        process.send(target, "x" .. i, k)
        for _ = 1, 1000 do end
    end
end"#;

/// Counts the messages out of each sender's order (one topic each).
const TARGET: &str = r#"return function(parent, total)
    local inbox, last, bad = process.inbox(), {}, 0
    for _ = 1, total do
        local m = inbox:receive()
        local t, v = m:topic(), m:payload():data()
        if v ~= (last[t] or 0) + 1 then bad = bad + 1 end
        last[t] = v
    end
    process.send(parent, "r", bad)
end"#;

#[test]
fn a_sender_that_finds_a_waiting_child_keeps_its_order_through_the_placement() {
    for round in 0..5 {
        let v = App::new()
            .workers(2)
            .entry("t:main", MAIN)
            .entry("t:poller", POLLER)
            .entry("t:target", TARGET)
            .entry("t:filler", "return function() end")
            .run("t:main", vec![Value::Int(N), Value::Int(P)])
            .expect("ok");
        assert_eq!(v, Value::Int(0), "round {round}: messages out of order");
    }
}

/// Waits on its inbox for good.
const IDLE: &str = "return function() process.inbox():receive() end";

/// Spawns `n` monitored children, terminates each at once, and counts
/// the EXIT events that come within 10 s.
const TERMINATES: &str = r#"local time = require("time")
return function(n)
    local events = process.events()
    local kids = {}
    for i = 1, n do kids[i] = process.spawn_monitored("t:idle", "test:host") end
    for i = 1, n do assert(process.terminate(kids[i])) end
    local ended, deadline = 0, time.after("10s")
    while ended < n do
        local r = channel.select({ events:case_receive(), deadline:case_receive() })
        if r.channel == deadline then break end
        if r.value.kind == process.event.EXIT then ended = ended + 1 end
    end
    return ended
end"#;

/// Has `t:parent` spawn `n` linked children and fail; then waits (10 s
/// at most) until a send to each is NOT_FOUND.
const OUTLIVES: &str = r#"local time = require("time")
return function(n)
    process.spawn("t:parent", "test:host", process.pid(), n)
    local kids = process.inbox():receive():payload():data()
    local t0 = time.now()
    for i = 1, n do
        while process.send(kids[i], "still there?") do
            if time.now():sub(t0):seconds() > 10 then return "child " .. i .. " lives on" end
            time.sleep("1ms")
        end
    end
    return "all ended"
end"#;

/// Spawns `n` linked children, tells `main` their pids and fails, all in
/// one resumption.
const FAILING_PARENT: &str = r#"return function(main, n)
    local kids = {}
    for i = 1, n do kids[i] = process.spawn_linked("t:idle", "test:host") end
    process.send(main, "kids", kids)
    error("the parent fails mid-burst")
end"#;

/// An application on two workers whose `t:main` is `main`, with `t:idle`.
fn on_two_workers(main: &str) -> App {
    App::new()
        .workers(2)
        .entry("t:main", main)
        .entry("t:idle", IDLE)
}

#[test]
fn children_terminated_before_their_burst_is_placed_end_and_are_reported() {
    // Each kill, and each monitor made with the spawn, reaches a child
    // while it waits; both go wherever it is placed.
    let v = on_two_workers(TERMINATES)
        .run("t:main", vec![Value::Int(64)])
        .expect("ok");
    assert_eq!(v, Value::Int(64));
}

#[test]
fn linked_children_of_a_parent_that_fails_before_they_are_placed_end_with_it() {
    // The parent's exit places its burst first, then tells its links.
    let v = on_two_workers(OUTLIVES)
        .entry("t:parent", FAILING_PARENT)
        .run("t:main", vec![Value::Int(64)])
        .expect("ok");
    assert_eq!(v, s("all ended"));
}

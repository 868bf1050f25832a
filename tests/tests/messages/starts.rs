//! A send to a child spawned on this worker that has not started yet:
//! when its start is the next thing the worker would take, the send
//! starts it there and then and goes straight to its inbox (see
//! `guest-lua/src/machine/start.rs`, `start_for_send`). These tests hold
//! what must not change because of it: processes start in spawn order,
//! each sender's messages keep their order whichever path each took, and
//! the sender is not charged for, nor limited by, its children's starts.
//! Only an entry the VM has compiled starts that way, so each test starts
//! one child of its entry first.

use warren_core::{HostLimits, Value};
use warren_tests::*;

/// A child that says it started (with its number), then answers each
/// message with its number and the message's value, until `stop`.
const CHILD: &str = r#"return function(parent, i)
    process.send(parent, "started", i)
    local inbox = process.inbox()
    while true do
        local m = inbox:receive()
        if m:topic() == "stop" then return end
        process.send(parent, "got", { i = i, v = m:payload():data() })
    end
end"#;

#[test]
fn children_sent_to_in_reverse_before_they_start_still_start_in_spawn_order() {
    // The last child is sent to first: it is not the next start, so its
    // message goes through the host and it starts in its turn.
    let v = App::new()
        .entry("t:child", CHILD)
        .entry(
            "t:main",
            r#"return function()
    local me, kids, n = process.pid(), {}, 6
    local inbox = process.inbox()
    process.send(process.spawn("t:child", "test:host", me, 0), "stop")
    assert(inbox:receive():topic() == "started")
    for i = 1, n do kids[i] = process.spawn("t:child", "test:host", me, i) end
    for i = n, 1, -1 do assert(process.send(kids[i], "go", i * 10)) end
    local started, got = {}, 0
    while #started < n or got < n do
        local m = inbox:receive()
        if m:topic() == "started" then
            started[#started + 1] = m:payload():data()
        else
            local d = m:payload():data()
            assert(d.v == d.i * 10, "child " .. d.i .. " got " .. tostring(d.v))
            got = got + 1
        end
    end
    for i = 1, n do process.send(kids[i], "stop") end
    return table.concat(started, ",")
end"#,
        )
        .run("t:main", vec![])
        .expect("t:main ends normally");
    assert_eq!(v, s("1,2,3,4,5,6"));
}

#[test]
fn a_childs_messages_keep_their_order_when_its_start_is_taken_by_a_send() {
    // B's first message goes through the host (A's start is next); the
    // send to A starts A; B's start is then next, taken by the next send
    // to B, whose message must still come after the first.
    let v = App::new()
        .entry(
            "t:sink",
            r#"return function(parent, n)
    local inbox, last, bad = process.inbox(), 0, 0
    for _ = 1, n do
        local v = inbox:receive():payload():data()
        if v ~= last + 1 then bad = bad + 1 end
        last = v
    end
    process.send(parent, "bad", bad)
end"#,
        )
        .entry(
            "t:main",
            r#"return function()
    local me, n = process.pid(), 200
    local inbox = process.inbox()
    process.send(process.spawn("t:sink", "test:host", me, 1), "m", 1)
    assert(inbox:receive():payload():data() == 0)
    local a = process.spawn("t:sink", "test:host", me, n)
    local b = process.spawn("t:sink", "test:host", me, n)
    assert(process.send(b, "m", 1))
    for i = 1, n do
        assert(process.send(a, "m", i))
        if i < n then assert(process.send(b, "m", i + 1)) end
    end
    local bad = 0
    for _ = 1, 2 do bad = bad + inbox:receive():payload():data() end
    return bad
end"#,
        )
        .run("t:main", vec![])
        .expect("t:main ends normally");
    assert_eq!(v, Value::Int(0), "messages out of order");
}

#[test]
fn a_parent_near_its_memory_limit_starts_children_with_large_arguments_by_sending() {
    // Each child's start makes its 512 KiB argument again in the VM, 8 MiB
    // in all, inside the parent's resume: kernel work, under no ceiling,
    // and not the parent's charge (its limit is 4 MiB).
    let v = App::new()
        .limits(HostLimits {
            memory_per_process: 4 << 20,
            ..HostLimits::default()
        })
        .entry(
            "t:child",
            r#"return function(parent, blob)
    local m = process.inbox():receive()
    process.send(parent, "len", #blob + m:payload():data())
end"#,
        )
        .entry(
            "t:main",
            r#"return function()
    local me, kids, n = process.pid(), {}, 16
    local inbox = process.inbox()
    process.send(process.spawn("t:child", "test:host", me, ""), "go", 0)
    assert(inbox:receive():payload():data() == 0)
    local blob = string.rep("x", 512 * 1024)
    for i = 1, n do kids[i] = process.spawn("t:child", "test:host", me, blob) end
    for i = 1, n do assert(process.send(kids[i], "go", i)) end
    local total = 0
    for _ = 1, n do total = total + inbox:receive():payload():data() end
    return total
end"#,
        )
        .run("t:main", vec![])
        .expect("t:main ends normally");
    assert_eq!(v, Value::Int(16 * 512 * 1024 + (1..=16).sum::<i64>()));
}

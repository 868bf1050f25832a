//! Per-sender FIFO: the messages one process sends another arrive in the
//! order they were sent, whatever path each takes (by pid or by name, the
//! native send or the kernel's Lua, through the core or inside the VM, to
//! an inbox, a listen channel or the messages waiting for a subscriber).
//!
//! Each sender numbers its messages (`key * K + n`, n from 1, one key per
//! sender or per coroutine); each receiver counts every message whose
//! number is not the one after its key's last, and reports that count,
//! which must be 0.

use warren_core::{HostLimits, Value};
use warren_tests::*;

/// Shared by every entry below: the numbering, a checker, the senders'
/// shapes of message and the receivers' reading of them.
const LIB: &str = r#"
local K = 1000000
local time = require("time")
-- Counts the values out of sequence per key.
local function checker()
    local last, bad, seen = {}, 0, 0
    local c = {}
    function c.see(v)
        assert(math.type(v) == "integer", "not a numbered value: " .. tostring(v))
        local k, n = v // K, v % K
        if n ~= (last[k] or 0) + 1 then bad = bad + 1 end
        last[k] = n
        seen = seen + 1
    end
    function c.bad() return bad end
    function c.seen() return seen end
    return c
end
-- The number a message carries, whatever its shape (see `send`).
local function value(m)
    local t = m:topic()
    if t:sub(1, 1) == "s" then return math.tointeger(tonumber(t:sub(2))) end
    local p = m:payload()
    if t == "multi" then return p[1]:data() end
    return p:data()
end
-- Sends number v to dest: shape 1 one payload on "m" (the native send),
-- 2 no payload (the number in the topic), 3 two payloads (the kernel's
-- Lua path).
local function send(dest, v, shape)
    if shape == 2 then return process.send(dest, "s" .. v) end
    if shape == 3 then return process.send(dest, "multi", v, "x") end
    return process.send(dest, "m", v)
end
-- As `send`, retrying (after a short sleep) while the mailbox is full.
local function send_retry(dest, v, shape)
    local tries = 0
    while true do
        local ok, err = send(dest, v, shape)
        if ok then return tries end
        assert(err:retryable(), tostring(err))
        tries = tries + 1
        time.sleep("1ms")
    end
end
-- Lets every other coroutine of the VM run once (a wait the run queue
-- ends, not a host item).
local function yield_once()
    local ch = channel.new()
    coroutine.spawn(function() ch:send(true) end)
    ch:receive()
end
-- Takes what `ch` holds now without waiting; calls f on each.
local function drain(ch, f)
    while true do
        local r = channel.select({ ch:case_receive(), default = true })
        if r.default or r.ok == false then return end
        f(r.value)
    end
end
"#;

/// `LIB` then `body` (an entry's chunk, ending in `return function`).
fn lua(body: &str) -> String {
    format!("{LIB}\n{body}")
}

/// A receiver of `total` messages of any shape on its inbox; sends its
/// count of those out of order to `report` ("done").
const SINK: &str = r#"return function(report, total)
    local inbox, c = process.inbox(), checker()
    for _ = 1, total do c.see(value(inbox:receive())) end
    assert(process.send(report, "done", c.bad()))
end"#;

/// A sender of `n` messages numbered under `key` to `dest`, by pid or by
/// `name` (when not nil) in turns, of every shape in turns; busy for
/// `spin` iterations between sends (to be preempted mid-burst); then
/// "sent" to `report`.
const SENDER: &str = r#"return function(report, dest, name, key, n, spin)
    local x = 0
    for i = 1, n do
        local to = (name and i % 5 < 2) and name or dest
        send_retry(to, key * K + i, i % 3 + 1)
        for j = 1, spin do x = x + j end
    end
    assert(process.send(report, "sent", x))
end"#;

/// Runs `t:main` of `app` and checks that it returns 0 (messages out of
/// order).
fn no_reordering(app: App) {
    let v = app.run("t:main", vec![]).expect("t:main ends normally");
    assert_eq!(v, Value::Int(0), "messages out of order");
}

/// An app with `workers` workers on the test host, the shared sink and
/// sender, and `main`.
fn app(workers: usize, main: &str) -> App {
    App::new()
        .workers(workers)
        .entry("t:sink", &lua(SINK))
        .entry("t:sender", &lua(SENDER))
        .entry("t:main", &lua(main))
}

/// Main spawns a sink and sends it messages of every shape, by pid and by
/// name in turns, before it starts and after, with waits in between.
const MIXED_MAIN: &str = r#"return function()
    local inbox = process.inbox()
    local sink = process.spawn("t:sink", "test:host", process.pid(), 6000)
    assert(process.registry.register("sink", sink))
    for i = 1, 2000 do
        assert(send(i % 5 < 2 and "sink" or sink, i, i % 3 + 1))
    end
    yield_once()
    for i = 2001, 4000 do
        assert(send(i % 7 < 3 and "sink" or sink, i, i % 3 + 1))
        if i % 500 == 0 then yield_once() end
    end
    time.sleep("1ms")
    for i = 4001, 6000 do
        assert(send(i % 2 == 0 and "sink" or sink, i, (i // 3) % 3 + 1))
    end
    return inbox:receive():payload():data()
end"#;

#[test]
fn ordering_mixed_pid_name_and_shapes_to_a_new_child_one_worker() {
    no_reordering(app(1, MIXED_MAIN));
}

#[test]
fn ordering_mixed_pid_name_and_shapes_to_a_new_child_two_workers() {
    no_reordering(app(2, MIXED_MAIN));
}

/// Main spawns the sink, then `senders` senders that send to it at once
/// (by pid and by name), each `n` messages, `spin` busy iterations
/// between sends; the sink was spawned by a third process for them.
fn third_party(workers: usize, senders: u32, n: u32, spin: u32, on: &str) -> App {
    // Names are per host: a sink elsewhere is sent to by pid only.
    let (register, name) = if on == HOST {
        (
            r#"assert(process.registry.register("sink", sink))"#,
            r#""sink""#,
        )
    } else {
        ("", "nil")
    };
    let main = format!(
        r#"return function()
    local inbox = process.inbox()
    local sink = process.spawn("t:sink", "{on}", process.pid(), {senders} * {n})
    {register}
    for k = 1, {senders} do
        process.spawn("t:sender", "test:host", process.pid(), sink, {name}, k, {n}, {spin})
    end
    local bad
    for _ = 1, {senders} + 1 do
        local m = inbox:receive()
        if m:topic() == "done" then bad = m:payload():data() end
    end
    return bad
end"#
    );
    app(workers, &main)
}

#[test]
fn ordering_several_senders_to_a_sink_a_third_process_spawned_one_worker() {
    no_reordering(third_party(1, 4, 1500, 0, HOST));
}

#[test]
fn ordering_several_senders_to_a_sink_a_third_process_spawned_two_workers() {
    no_reordering(third_party(2, 4, 1500, 0, HOST));
}

#[test]
fn ordering_preempted_senders_one_worker() {
    no_reordering(third_party(1, 3, 600, 3000, HOST));
}

#[test]
fn ordering_preempted_senders_two_workers() {
    no_reordering(third_party(2, 3, 600, 3000, HOST));
}

#[test]
fn ordering_senders_to_a_sink_on_another_host() {
    no_reordering(third_party(2, 3, 1000, 0, OTHER_HOST));
}

/// Main sends from several coroutines (numbered per coroutine), to a
/// child spawned just before.
const COROUTINES_MAIN: &str = r#"return function()
    local inbox = process.inbox()
    local sink = process.spawn("t:sink", "test:host", process.pid(), 4 * 1000)
    assert(process.registry.register("sink", sink))
    for k = 1, 4 do
        coroutine.spawn(function()
            for i = 1, 1000 do
                assert(send((i + k) % 4 == 0 and "sink" or sink, k * K + i, (i + k) % 3 + 1))
                if i % (50 + k) == 0 then yield_once() end
            end
        end)
    end
    return inbox:receive():payload():data()
end"#;

#[test]
fn ordering_sends_from_several_coroutines_one_worker() {
    no_reordering(app(1, COROUTINES_MAIN));
}

#[test]
fn ordering_sends_from_several_coroutines_two_workers() {
    no_reordering(app(2, COROUTINES_MAIN));
}

/// A receiver that switches between a listen channel of "m" and its
/// inbox every few messages, draining what the one it leaves still holds
/// (everything that channel got came before anything the other gets).
/// `msgs`: whether the listen channel delivers message objects.
fn switcher(msgs: bool) -> String {
    let opts = if msgs { "{ message = true }" } else { "nil" };
    let read = if msgs { "value(x)" } else { "x" };
    format!(
        r#"return function(report, total)
    local c, got = checker(), 0
    local inbox = process.inbox()
    local function see_msg(m) c.see(value(m)) got = got + 1 end
    local function see_listen(x) c.see({read}) got = got + 1 end
    local round = 0
    while got < total do
        round = round + 1
        local l = process.listen("m", {opts})
        drain(inbox, see_msg)
        for _ = 1, 37 + round % 11 do
            if got >= total then break end
            see_listen(l:receive())
        end
        process.unlisten(l)
        drain(l, see_listen)
        for _ = 1, 29 + round % 7 do
            if got >= total then break end
            see_msg(inbox:receive())
        end
    end
    assert(process.send(report, "done", c.bad()))
end"#
    )
}

/// Main sends `n` one-payload messages on "m" (by pid and by name) to a
/// switching receiver it spawned.
fn to_switcher(workers: usize, msgs: bool) -> App {
    let main = r#"return function()
    local inbox = process.inbox()
    local r = process.spawn("t:switch", "test:host", process.pid(), 3000)
    assert(process.registry.register("r", r))
    for i = 1, 3000 do
        send_retry(i % 3 == 0 and "r" or r, i, 1)
        if i % 400 == 0 then yield_once() end
        if i % 1000 == 0 then time.sleep("1ms") end
    end
    return inbox:receive():payload():data()
end"#;
    app(workers, main).entry("t:switch", &lua(&switcher(msgs)))
}

#[test]
fn ordering_listen_and_unlisten_mid_stream_one_worker() {
    no_reordering(to_switcher(1, false));
}

#[test]
fn ordering_listen_and_unlisten_mid_stream_two_workers() {
    no_reordering(to_switcher(2, false));
}

#[test]
fn ordering_listen_with_message_objects_and_unlisten_mid_stream() {
    no_reordering(to_switcher(1, true));
}

/// A receiver whose messages wait for a subscriber: it waits on "go"
/// first, then listens on "m" for a while (taking what waited of that
/// topic), unlistens (what follows waits again), and only then subscribes
/// its inbox.
const LATE: &str = r#"return function(report, total)
    local c, got = checker(), 0
    local go = process.listen("go")
    go:receive()
    local l = process.listen("m")
    for _ = 1, total // 3 do c.see(l:receive()) got = got + 1 end
    process.unlisten(l)
    drain(l, function(v) c.see(v) got = got + 1 end)
    yield_once()
    local inbox = process.inbox()
    while got < total do c.see(value(inbox:receive())) got = got + 1 end
    assert(process.send(report, "done", c.bad()))
end"#;

fn to_late(workers: usize) -> App {
    let main = r#"return function()
    local inbox = process.inbox()
    local r = process.spawn("t:late", "test:host", process.pid(), 3000)
    assert(process.registry.register("r", r))
    for i = 1, 1000 do assert(send(i % 2 == 0 and "r" or r, i, 1)) end
    assert(process.send(r, "go"))
    for i = 1001, 3000 do
        assert(send(i % 3 == 0 and "r" or r, i, 1))
        if i % 250 == 0 then yield_once() end
    end
    return inbox:receive():payload():data()
end"#;
    app(workers, main).entry("t:late", &lua(LATE))
}

#[test]
fn ordering_messages_waiting_for_a_late_listen_and_inbox_one_worker() {
    no_reordering(to_late(1));
}

#[test]
fn ordering_messages_waiting_for_a_late_listen_and_inbox_two_workers() {
    no_reordering(to_late(2));
}

/// A sink that is slow to read (busy between receives).
const SLOW_SINK: &str = r#"return function(report, total)
    local inbox, c, x = process.inbox(), checker(), 0
    for i = 1, total do
        c.see(value(inbox:receive()))
        for j = 1, 200 + (i % 13) * 50 do x = x + j end
    end
    assert(process.send(report, "done", c.bad(), x))
end"#;

/// Senders that hit the sink's `mailbox_limit` (20) and retry after
/// RATE_LIMITED.
fn full_mailbox(workers: usize) -> App {
    let main = r#"return function()
    local inbox = process.inbox()
    local sink = process.spawn("t:slow", "test:host", process.pid(), 3 * 600)
    assert(process.registry.register("sink", sink))
    for k = 1, 3 do
        process.spawn("t:sender", "test:host", process.pid(), sink, "sink", k, 600, 0)
    end
    local bad
    for _ = 1, 4 do
        local m = inbox:receive()
        if m:topic() == "done" then bad = m:payload()[1]:data() end
    end
    return bad
end"#;
    app(workers, main)
        .entry("t:slow", &lua(SLOW_SINK))
        .limits(HostLimits {
            mailbox_limit: 20,
            ..HostLimits::default()
        })
}

#[test]
fn ordering_sends_retried_after_a_full_mailbox_one_worker() {
    no_reordering(full_mailbox(1));
}

#[test]
fn ordering_sends_retried_after_a_full_mailbox_two_workers() {
    no_reordering(full_mailbox(2));
}

/// The same, the sender being main itself and the sink its new child,
/// from several coroutines that all retry.
fn full_mailbox_coroutines(workers: usize) -> App {
    let main = r#"return function()
    local inbox = process.inbox()
    local sink = process.spawn("t:slow", "test:host", process.pid(), 3 * 400)
    assert(process.registry.register("sink", sink))
    for k = 1, 3 do
        coroutine.spawn(function()
            for i = 1, 400 do
                send_retry((i + k) % 3 == 0 and "sink" or sink, k * K + i, (i * k) % 3 + 1)
            end
        end)
    end
    return inbox:receive():payload()[1]:data()
end"#;
    app(workers, main)
        .entry("t:slow", &lua(SLOW_SINK))
        .limits(HostLimits {
            mailbox_limit: 20,
            ..HostLimits::default()
        })
}

#[test]
fn ordering_coroutines_retrying_after_a_full_mailbox_one_worker() {
    no_reordering(full_mailbox_coroutines(1));
}

#[test]
fn ordering_coroutines_retrying_after_a_full_mailbox_two_workers() {
    no_reordering(full_mailbox_coroutines(2));
}

/// Events on the bus from two publishers, each numbering its own.
fn bus(workers: usize) -> App {
    let main = r#"local events = require("events")
return function()
    local sub = assert(events.subscribe("ord"))
    local inbox = process.inbox()
    for k = 1, 2 do process.spawn("t:pub", "test:host", process.pid(), k, 300) end
    local c, ch = checker(), sub:channel()
    for _ = 1, 600 do c.see(ch:receive().data) end
    for _ = 1, 2 do inbox:receive() end
    return c.bad()
end"#;
    let publisher = r#"local events = require("events")
return function(report, key, n)
    for i = 1, n do
        assert(events.send("ord", "k", "/p", key * K + i))
        if i % 50 == 0 then yield_once() end
    end
    assert(process.send(report, "sent"))
end"#;
    app(workers, main).entry("t:pub", &lua(publisher))
}

#[test]
fn ordering_bus_events_one_worker() {
    no_reordering(bus(1));
}

#[test]
fn ordering_bus_events_two_workers() {
    no_reordering(bus(2));
}

/// Main and the echo component: main sends numbered messages of every
/// shape in bursts, the component sends each back; and the component's
/// own numbered ticks (sent before it echoes, retried while main's
/// mailbox is full) come first.
fn echo(workers: usize) -> App {
    let main = r#"return function()
    local inbox = process.inbox()
    local c = checker()
    local echo = process.spawn("t:echo", "test:host", process.pid(), 500)
    -- Its ticks, numbered from 0, under key 9.
    for _ = 1, 500 do
        local m = inbox:receive()
        assert(m:topic() == "tick", m:topic())
        c.see(9 * K + m:payload():data() + 1)
    end
    local n = 0
    for burst = 1, 20 do
        for _ = 1, 15 do
            n = n + 1
            assert(send(echo, n, n % 3 + 1))
        end
        for _ = 1, 15 do c.see(value(inbox:receive())) end
    end
    assert(process.send(echo, "stop"))
    return c.bad()
end"#;
    app(workers, main)
        .component("t:echo", "echo")
        .limits(HostLimits {
            mailbox_limit: 20,
            ..HostLimits::default()
        })
}

#[test]
fn ordering_with_the_echo_component_one_worker() {
    no_reordering(echo(1));
}

#[test]
fn ordering_with_the_echo_component_two_workers() {
    no_reordering(echo(2));
}

/// A relay of a ring: takes a pid ("p", with the hops left), sends it one
/// message, and passes the pid on; counts the sends that failed.
const RELAY: &str = r#"return function(report)
    local inbox, fails, last, nxt = process.inbox(), 0, "", nil
    while true do
        local m = inbox:receive()
        local t = m:topic()
        if t == "next" then
            nxt = m:payload():data()
        elseif t == "p" then
            local d = m:payload():data()
            local ok, err = process.send(d.pid, "m", 1)
            if not ok then fails, last = fails + 1, tostring(err) end
            if d.hops > 0 then
                assert(process.send(nxt, "p", { pid = d.pid, hops = d.hops - 1 }))
            else
                assert(process.send(report, "hopdone"))
            end
        elseif t == "stop" then
            assert(process.send(report, "fails", fails, last))
            return
        end
    end
end"#;

/// Busy (preempted, never waiting) for `ms` milliseconds.
const SPINNER: &str = r#"return function(ms)
    local t0, x = time.now(), 0
    while time.now():sub(t0):milliseconds() < ms do
        for j = 1, 1000 do x = x + j end
    end
    return x
end"#;

/// A process that takes what it is sent until "end".
const TAKER: &str = r#"return function()
    local inbox = process.inbox()
    while inbox:receive():topic() ~= "end" do end
end"#;

#[test]
fn ordering_a_pid_passed_on_through_other_workers_is_reachable_at_once() {
    // A process spawned on another worker is spawned there when that
    // worker takes the spawner's commands; its pid, passed on through
    // processes of other workers, can reach a process of the new one's
    // worker first. A send to a live pid must not fail (NOT_FOUND) then:
    // messages sent from another worker wait for the spawn (the core's
    // `early`), and so must one sent from the same worker.
    let main = r#"return function()
    local inbox = process.inbox()
    local me = process.pid()
    for _ = 1, 6 do process.spawn("t:spin", "test:host", 150) end
    local relays = {}
    for i = 1, 8 do relays[i] = process.spawn("t:relay", "test:host", me) end
    for i = 1, 8 do assert(process.send(relays[i], "next", relays[i % 8 + 1])) end
    local takers = {}
    for round = 1, 60 do
        local p = process.spawn("t:taker", "test:host")
        takers[round] = p
        assert(process.send(relays[round % 8 + 1], "p", { pid = p, hops = 7 }))
        local x = 0
        for j = 1, 20000 do x = x + j end
    end
    for _ = 1, 60 do assert(inbox:receive():topic() == "hopdone") end
    for i = 1, 8 do assert(process.send(relays[i], "stop")) end
    local fails, last = 0, ""
    for _ = 1, 8 do
        local pl = inbox:receive():payload()
        fails = fails + pl[1]:data()
        if pl[2]:data() ~= "" then last = pl[2]:data() end
    end
    for _, p in ipairs(takers) do process.send(p, "end") end
    assert(fails == 0, fails .. " sends to live pids failed, the last: " .. last)
    return fails
end"#;
    let app = App::new()
        .workers(4)
        .entry("t:main", &lua(main))
        .entry("t:relay", &lua(RELAY))
        .entry("t:spin", &lua(SPINNER))
        .entry("t:taker", &lua(TAKER));
    no_reordering(app);
}

/// Host limits with a short `cpu_slice`, so that a busy process is
/// preempted many times mid-burst.
fn short_slice() -> HostLimits {
    HostLimits {
        cpu_slice: std::time::Duration::from_micros(100),
        ..HostLimits::default()
    }
}

/// Main spawns a busy sink and sends it messages of every shape, by pid
/// and by name, busy between sends: both are preempted often, some of
/// main's sends while the sink has not started.
fn preempted_to_new_child(workers: usize) -> App {
    let main = r#"return function()
    local inbox = process.inbox()
    local sink = process.spawn("t:slow", "test:host", process.pid(), 3000)
    assert(process.registry.register("sink", sink))
    local x = 0
    for i = 1, 3000 do
        assert(send((i * 7) % 5 < 2 and "sink" or sink, i, (i // 2) % 3 + 1))
        for j = 1, 100 + (i % 17) * 40 do x = x + j end
    end
    return inbox:receive():payload()[1]:data()
end"#;
    app(workers, main)
        .entry("t:slow", &lua(SLOW_SINK))
        .limits(short_slice())
}

#[test]
fn ordering_preempted_sender_to_a_new_busy_child_one_worker() {
    no_reordering(preempted_to_new_child(1));
}

#[test]
fn ordering_preempted_sender_to_a_new_busy_child_two_workers() {
    no_reordering(preempted_to_new_child(2));
}

/// Main sends itself numbered messages of every shape (by pid and by its
/// name) while senders flood it, their messages waiting in the core for
/// it; every sender's order, its own included, must hold.
fn to_self(workers: usize) -> App {
    let main = r#"return function()
    local inbox = process.inbox()
    local me = process.pid()
    assert(process.registry.register("me", me))
    for k = 1, 2 do process.spawn("t:sender", "test:host", me, me, "me", k, 1500, 0) end
    local c, sent, own, got = checker(), 0, 0, 0
    -- Main's own messages are key 7; at most 100 of its own unread.
    while own < 1500 or got < 3000 do
        while sent < 1500 and sent - own < 100 do
            sent = sent + 1
            assert(send(sent % 3 == 0 and "me" or me, 7 * K + sent, sent % 3 + 1))
        end
        local m = inbox:receive()
        if m:topic() ~= "sent" then
            local v = value(m)
            c.see(v)
            if v // K == 7 then own = own + 1 else got = got + 1 end
        end
    end
    return c.bad()
end"#;
    app(workers, main).limits(short_slice())
}

#[test]
fn ordering_messages_to_itself_among_others_one_worker() {
    no_reordering(to_self(1));
}

#[test]
fn ordering_messages_to_itself_among_others_two_workers() {
    no_reordering(to_self(2));
}

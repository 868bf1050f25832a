//! Memory the kernel or the core holds on a process's behalf, in tables
//! keyed by process, object or peer: each must be counted (against the
//! process's `memory_per_process` or its host's `memory_total`), bounded
//! by a named limit, or given back when what it was kept for ends.
//!
//! Counted: loggers' fields and names, time zones' names, timers never
//! read, listen channels, subscriptions (capped at 64 and released), links
//! to processes that ended (each end unlinks). Two were holes until fixed
//! (each case fails on the code before): the names a Lua process
//! registered for another pid stayed in a kernel table after that pid
//! ended (the VM held them, the measure did not see them; now a field of
//! the process's record, measured), and a process that monitored another
//! and ended stayed in the target's set of watchers in the core (counted
//! nowhere, kept until the target ended; now each end takes the process
//! off the sets it is in).

use std::time::{Duration, Instant};

use warren_core::{ErrorKind, HostLimits, SpawnRequest, Value};
use warren_tests::HOST;

use crate::harness::{self, alone, app, attack, attack_on, n};

/// Ended by its own limit, not by the host's `memory_total` running out.
/// The budget is one its measures fit in on a loaded machine (with the
/// harness's 300 ms, a run beside other tests was now and then ended by
/// the budget before its limit).
fn out_of_its_own_memory(source: &str) {
    let limits = HostLimits {
        cpu_budget: Some(Duration::from_secs(10)),
        ..harness::limits()
    };
    let out = attack(
        app().limits(limits).entry("h:attacker", source),
        "h:attacker",
        Vec::new(),
    );
    out.assert_ended(ErrorKind::RateLimited, "memory_per_process");
}

// ---- What the kernel keeps beside an object the process holds ----

#[test]
fn fields_held_by_loggers_count() {
    // The fields live in the kernel's HELD table, keyed by the logger:
    // 200 loggers of a MiB each are 200 MiB if they were missed. (They
    // were in a table of their own, which the measure reached only
    // through a stale stack slot left by the call that made a logger: a
    // frozen logger's one call more overwrote it.)
    out_of_its_own_memory(
        r#"local logger = require("logger")
        local time = require("time")
        return function()
            local keep = {}
            for i = 1, 200 do
                keep[i] = (function() return logger:with({ a = string.rep("l", 1 << 20) .. i }) end)()
                time.sleep("1ms")
            end
            return #keep
        end"#,
    );
}

#[test]
fn names_held_by_loggers_count() {
    out_of_its_own_memory(
        r#"local logger = require("logger")
        local time = require("time")
        return function()
            local keep = {}
            for i = 1, 200 do
                keep[i] = (function() return logger:named(string.rep("n", 1 << 20) .. i) end)()
                time.sleep("1ms")
            end
            return #keep
        end"#,
    );
}

#[test]
fn names_held_by_time_zones_count() {
    // A zone's name lives in the kernel's LOCS table, keyed by the zone.
    out_of_its_own_memory(
        r#"local time = require("time")
        return function()
            local keep = {}
            for i = 1, 200 do
                keep[i] = (function() return time.fixed_zone(string.rep("z", 1 << 20) .. i, 0) end)()
                time.sleep("1ms")
            end
            return #keep
        end"#,
    );
}

#[test]
fn timers_never_read_are_swept() {
    // Each `time.after` dropped unread (an hour-long one, armed a
    // thousand at a time) is collected with its channel, and its timer
    // cancelled and swept out of the worker's heap. The process held each
    // channel until its timer fired: it grew to its memory limit (some
    // 40,000 armed), and the heap with it. Now, once 30,000 are armed and
    // dropped, the heap holds a few sweeps' worth.
    let app = app().entry(
        "h:attacker",
        r#"local time = require("time")
        return function()
            for _ = 1, 30 do
                for _ = 1, 1000 do time.after("1h") end
                time.sleep("1ms")
            end
            assert(process.registry.register("swept"))
            process.inbox():receive()
        end"#,
    );
    let runtime = app.start();
    runtime
        .spawn(SpawnRequest::new("h:attacker", HOST, Vec::new()))
        .expect("spawned");
    let deadline = Instant::now() + warren_tests::DEADLINE;
    while runtime.lookup("swept").is_none() {
        assert!(
            Instant::now() < deadline,
            "the attacker did not arm its timers"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let left = runtime.armed_timers();
    assert!(
        left < 10_000,
        "{left} of 30,000 dropped timers still in the heap"
    );
}

#[test]
fn tickers_never_read_count() {
    out_of_its_own_memory(
        r#"local time = require("time")
        return function()
            local keep = {}
            while true do
                for _ = 1, 1000 do keep[#keep + 1] = time.ticker("1h") end
                time.sleep("1ms")
            end
        end"#,
    );
}

#[test]
fn listen_channels_count() {
    // Each topic listened to is a channel of the process (`p.listens`),
    // with its topic of up to 1 KiB.
    out_of_its_own_memory(
        r#"local time = require("time")
        return function()
            local tail, n = string.rep("t", 1000), 0
            while true do
                for _ = 1, 1000 do n = n + 1; process.listen(n .. tail) end
                time.sleep("1ms")
            end
        end"#,
    );
}

#[test]
fn the_timer_heap_is_given_back_when_the_process_ends() {
    // 30,000 hour-long timers armed, then the process ends: the worker
    // drops their heap entries (once they outnumber its processes) and
    // they do not wait the hour.
    let app = app().entry(
        "h:attacker",
        r#"local time = require("time")
        return function(n)
            for i = 1, n do time.after("1h") end
            return "armed"
        end"#,
    );
    let runtime = app.start();
    let out = attack_on(&runtime, "h:attacker", vec![n(30_000)]);
    assert_eq!(out.value(), "armed");
    out.assert_neighbour_ticks();
    // The judge's own 20 s timers and the neighbour's are all that may be
    // left: a handful, not 30,000.
    let left = runtime.armed_timers();
    assert!(left < 1_000, "{left} timers still in the heap");
}

// ---- What the core keeps for a process ----

#[test]
fn event_subscriptions_are_capped_and_released_at_exit() {
    let app = app().entry(
        "h:attacker",
        r#"return function()
            local events = require("events")
            local subs, err = {}, nil
            for i = 1, 1000 do
                local s, e = events.subscribe(string.rep("s", 250) .. i)
                if not s then err = e break end
                subs[#subs + 1] = s
            end
            assert(err and err:kind() == errors.RATE_LIMITED, tostring(err))
            return tostring(#subs)
        end"#,
    );
    let runtime = app.start();
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    assert_eq!(out.value(), "64");
    assert_eq!(
        runtime.bus_subscriptions(),
        0,
        "the subscriptions outlived it"
    );
    out.assert_neighbour_ticks();
}

#[test]
fn names_registered_for_a_child_are_released_when_it_ends() {
    // The registry's side of the names a process registers for another
    // pid: capped at the registrant (1,024), held against its host, and
    // all released with the target.
    let app = app()
        .entry(
            "h:child",
            r#"return function() process.inbox():receive() end"#,
        )
        .entry(
            "h:attacker",
            r#"return function()
                local tail = string.rep("r", 240)
                local c = process.spawn_monitored("h:child", "test:host")
                local n, err = 0, nil
                while true do
                    local ok, e = process.registry.register(n .. tail, c)
                    if not ok then err = e break end
                    n = n + 1
                end
                assert(err:kind() == errors.RATE_LIMITED, tostring(err))
                process.send(c, "go")
                process.events():receive()
                local found = process.registry.lookup("0" .. tail)
                return n .. ":" .. tostring(found)
            end"#,
        );
    let runtime = app.start();
    let before = runtime.memory_used("test:host").expect("the host");
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    assert_eq!(out.value(), "1024:nil");
    let after = runtime.memory_used("test:host").expect("the host");
    assert!(
        after <= before + (1 << 20),
        "{} bytes still held",
        after.saturating_sub(before)
    );
}

/// A host without a CPU budget (a long-lived service), so that an attack
/// of many spawns runs to its end.
#[test]
fn waiters_of_selects_that_completed_elsewhere_do_not_pile_up_behind_live_ones() {
    // Two coroutines wait on Z for good; a loop selects on Z and on a
    // channel that always answers. Each select leaves its waiter on Z,
    // behind the two live ones, where dropping stale waiters at the head
    // never reached it: 200,000 selects held 29 MB (red team H), and the
    // next send to Z walked all of them in one call. The full queue is
    // now compacted, so what the process holds stays flat. 200,000
    // selects take about 0.35 s of CPU: a budget past the harness's.
    let limits = HostLimits {
        cpu_budget: Some(Duration::from_secs(10)),
        ..harness::limits()
    };
    let out = attack(
        app().limits(limits).entry(
            "h:attacker",
            r#"local time = require("time")
            return function()
                local Z, tick = channel.new(), channel.new()
                coroutine.spawn(function() Z:receive() end)
                coroutine.spawn(function() Z:receive() end)
                coroutine.spawn(function() while true do tick:send(true) end end)
                time.sleep("1ms")
                local most = 0
                for i = 1, 200000 do
                    channel.select({ Z:case_receive(), tick:case_receive() })
                    if i % 1000 == 0 then most = math.max(most, collectgarbage("count")) end
                end
                -- Garbage included, the process's heap never reached 2 MB.
                assert(most < 2048, ("the process held %.0f KB"):format(most))
                Z:send(1) Z:send(2) -- the two live waiters, still first in line
                return "flat"
            end"#,
        ),
        "h:attacker",
        Vec::new(),
    );
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), "flat");
}

fn service_limits() -> HostLimits {
    HostLimits {
        cpu_budget: None,
        ..harness::limits()
    }
}

/// Waits in its inbox until told to end.
const TARGET: &str = r#"return function() process.inbox():receive() end"#;

/// Monitors (or links to) every pid in `targets`, then ends (after
/// unmonitoring them when `undo`).
const WATCHER: &str = r#"return function(how, undo, targets)
    for _, t in ipairs(targets) do
        if how == "monitor" then assert(process.monitor(t)) else assert(process.link(t)) end
    end
    if undo then
        for _, t in ipairs(targets) do
            if how == "monitor" then process.unmonitor(t) else process.unlink(t) end
        end
    end
end"#;

/// Starts `targets` targets, then `n` short-lived watchers (at most 20 at
/// a time) that each monitor or link to all of them and end; the targets
/// are left running unless `undo` (then ended with the attack).
const WATCHERS: &str = r#"return function(how, n, undo, targets)
    local ts = {}
    for i = 1, targets do ts[i] = assert(process.spawn("h:target", "test:host")) end
    local events, live = process.events(), 0
    for _ = 1, n do
        while live >= 20 do events:receive(); live = live - 1 end
        assert(process.spawn_monitored("h:watcher", "test:host", how, undo, ts))
        live = live + 1
    end
    while live > 0 do events:receive(); live = live - 1 end
    if undo then for _, t in ipairs(ts) do process.terminate(t) end end
    return "done"
end"#;

/// The growth of this process's resident memory across an attack of
/// `watchers` processes that `how` ("monitor" or "link") 10 targets and end
/// without undoing it, after a warm-up that undoes it.
fn watchers_growth(how: &str, watchers: i64) -> u64 {
    alone(|| {
        let runtime = app()
            .limits(service_limits())
            .entry("h:target", TARGET)
            .entry("h:watcher", WATCHER)
            .entry("h:attacker", WATCHERS)
            .start();
        let args = |count: i64, undo: bool| {
            vec![Value::str(how), n(count), Value::Bool(undo), Value::Int(10)]
        };
        let warm = attack_on(&runtime, "h:attacker", args(watchers / 10, true));
        assert_eq!(warm.value(), "done");
        let before = warren_tests::rss_bytes();
        let out = attack_on(&runtime, "h:attacker", args(watchers, false));
        let grown = warren_tests::rss_bytes().saturating_sub(before);
        assert_eq!(out.value(), "done");
        out.assert_neighbour_ticks();
        grown
    })
}

#[test]
fn links_to_processes_that_ended_are_dropped() {
    // 200,000 processes each linked to 10 long-lived targets, each ending
    // normally: every end unlinks it from the targets, which hold nothing
    // more afterwards.
    let grown = watchers_growth("link", 200_000);
    assert!(grown < 16 << 20, "{grown} bytes more resident");
}

#[test]
fn monitors_of_processes_that_ended_are_dropped() {
    // 200,000 processes each monitoring 10 long-lived targets and ending
    // without unmonitoring: each target's set of watchers in the core
    // keeps every one of them (2,000,000 entries, 24 MB resident) until the
    // target ends, against no host's memory and under no limit. A watcher
    // that ends should leave the sets it was in, as a link does.
    let grown = watchers_growth("monitor", 200_000);
    assert!(grown < 16 << 20, "{grown} bytes more resident");
}

// ---- Names registered for another pid leave nothing behind ----

#[test]
fn names_registered_for_processes_that_ended_leave_nothing_behind() {
    // The kernel once remembered the names a process registered for
    // another pid (so that it could unregister them) and kept them after
    // the target ended: 100 children with 1,024 names each left 33 MB in
    // the attacker's VM, measured at a few KB. The registry alone knows
    // now (its registrant may unregister a name): round after round, the
    // names go with each child, and the registrant's share and its host's
    // memory come back.
    let app = app().entry("h:child", TARGET).entry(
        "h:attacker",
        r#"return function(rounds)
                local tail = string.rep("r", 240)
                local events = process.events()
                for round = 1, rounds do
                    local c = process.spawn_monitored("h:child", "test:host")
                    for i = 1, 1024 do
                        assert(process.registry.register(round .. ":" .. i .. tail, c))
                    end
                    process.send(c, "go")
                    events:receive()
                end
                return "held " .. rounds * 1024
            end"#,
    );
    let runtime = app.start();
    let before = runtime.memory_used("test:host").expect("the host");
    let out = attack_on(&runtime, "h:attacker", vec![n(20)]);
    assert_eq!(out.value(), "held 20480");
    let after = runtime.memory_used("test:host").expect("the host");
    assert!(
        after <= before + (1 << 20),
        "{} bytes still held",
        after.saturating_sub(before)
    );
}

/// A child that keeps its argument until a message ends it.
const HOLDER: &str = r#"return function(blob)
    process.inbox():receive()
    return #blob
end"#;

/// Spawns holders of a `bytes` argument until a spawn is refused (at most
/// `most`), sending each a message at once when `send` is true: a child
/// whose start is the VM's next item is then started inside this resume
/// (`guest-lua/src/machine/start.rs`). Answers how many were spawned and
/// the refusal, after stopping them.
const SPAWN_AND_SEND: &str = r#"return function(send, bytes, most)
    local me, events = process.pid(), process.events()
    -- One holder first: its entry compiled, as the start path needs.
    process.send(process.spawn_monitored("h:holder", "test:host", ""), "stop")
    events:receive()
    local blob, kids, refused = string.rep("x", bytes), {}, "none"
    for _ = 1, most do
        local c, err = process.spawn("h:holder", "test:host", blob)
        if not c then refused = err:message() break end
        kids[#kids + 1] = c
        if send then process.send(c, "go", 1) end
    end
    for _, c in ipairs(kids) do process.send(c, "stop") end
    return #kids .. " " .. refused
end"#;

#[test]
fn children_started_by_a_send_count_against_memory_total_at_once() {
    // Each start gives back the hold on its argument and makes it again in
    // the VM; until the host's count followed, the next spawn found that
    // room free again, and one resume (a 2 s slice) put 300 arguments of
    // a megabyte under a 32 MiB total. Sent to or not, the spawns are
    // refused once the total is held, the host's count stays within it,
    // and the neighbour lives on. The spawner may itself be ended by the
    // total it filled (without the sends, its next resume's room is what
    // its children left: none), never by another's.
    let total: u64 = 32 << 20;
    let bytes = 1_000_000;
    for send in [true, false] {
        let limits = HostLimits {
            max_processes: 2_000,
            max_message_bytes: 1 << 20,
            memory_total: total,
            cpu_slice: Duration::from_secs(2),
            cpu_budget: Some(Duration::from_secs(10)),
            ..harness::limits()
        };
        let runtime = app()
            .limits(limits)
            .entry("h:holder", HOLDER)
            .entry("h:attacker", SPAWN_AND_SEND)
            .start();
        let args = vec![Value::Bool(send), n(bytes), n(300)];
        let out = attack_on(&runtime, "h:attacker", args);
        match &out.exit {
            Ok(_) => {
                let v = out.value();
                let (spawned, refused) = v.split_once(' ').expect("count and refusal");
                let spawned: u64 = spawned.parse().expect("a count");
                assert!(refused.contains("memory_total"), "send {send}: {v}");
                assert!(
                    spawned * bytes.unsigned_abs() <= total,
                    "send {send}: {spawned} arguments of {bytes} bytes under a total of {total}"
                );
            }
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::RateLimited, "send {send}: {e}");
                assert!(e.message.contains("memory_total"), "send {send}: {e}");
            }
        }
        let used = runtime.memory_used("test:host").expect("the host");
        assert!(
            used <= total + (1 << 20),
            "send {send}: the host counts {used} bytes under a total of {total}"
        );
        out.assert_neighbour_ticks();
    }
}

//! What a process can park in another's mailbox, or its own, past what
//! is counted: listen handles dropped without closing, cancel floods,
//! messages of many tiny payloads, names held beyond reach, log lines.

use crate::harness::{app, attack, lua, n, s, wasm};

#[test]
fn a_dropped_listen_handle_stops_listening() {
    // Every dropped handle used to keep its topic (and everything sent on
    // it) for the process's life: 5,000,000 of them held 5.5 GB.
    for handles in [1, 3] {
        let out = wasm(vec![s("listen-drop"), n(handles)]);
        assert_eq!(out.value(), "inbox:7", "{out:?}");
        out.assert_neighbour_ticks();
    }
}

#[test]
fn a_stale_listen_handle_neither_stops_nor_robs_a_later_listen() {
    // A handle whose listen another handle closed, dropped after the topic
    // was listened to again, took the new listen's count to zero: two
    // messages whose senders were told they were sent were dropped, and
    // the live handle read as closed (red team M).
    let out = wasm(vec![s("listen-stale")]);
    assert_eq!(out.value(), "[0, 1, 2]", "{out:?}");
    out.assert_neighbour_ticks();
}

#[test]
fn a_message_of_too_many_payloads_is_refused() {
    let out = wasm(vec![s("many-payloads"), s("self"), n(5000)]);
    assert_eq!(
        out.value(),
        "Invalid:a message of 5000 payloads: at most 4096",
        "{out:?}"
    );
    out.assert_neighbour_ticks();
    let out = wasm(vec![s("many-payloads"), s("self"), n(4096)]);
    assert_eq!(out.value(), "ok:", "{out:?}");
}

#[test]
fn a_lua_message_of_too_many_payloads_is_refused_even_to_its_own_vm() {
    // To itself (always in its own VM, where the kernel copies the
    // payloads) as the core refuses one to anywhere else: 5,000 payloads
    // reached its own inbox (red team H).
    let out = lua(
        r#"return function()
            local many = {}
            for i = 1, 5000 do many[i] = true end
            local ok, err = process.send(process.pid(), "t", table.unpack(many))
            assert(not ok)
            assert(process.send(process.pid(), "t", table.unpack(many, 1, 4096)))
            local m = process.inbox():receive()
            return err:kind() .. ":" .. err:message() .. " " .. #m:payload()
        end"#,
        Vec::new(),
    );
    assert_eq!(
        out.value(),
        "Invalid:a message of 5000 payloads: at most 4096 4096",
        "{out:?}"
    );
    out.assert_neighbour_ticks();
}

/// Waits for "go" in its inbox, then counts the CANCEL events waiting.
const VICTIM: &str = r#"return function()
    local events = process.events()
    process.inbox():receive()
    local n = 0
    while true do
        local r = channel.select({ events:case_receive(), default = true })
        if r.default then return n end
        if r.value.kind == process.event.CANCEL then n = n + 1 end
    end
end"#;

/// Cancels a victim `rounds` times, then tells it to count.
const CANCELLER: &str = r#"return function(rounds, reason_bytes)
    local victim = process.spawn_monitored("h:victim", "test:host")
    local reason = string.rep("r", reason_bytes)
    local refused = 0
    for _ = 1, rounds do
        if not process.cancel(victim, reason) then refused = refused + 1 end
    end
    process.send(victim, "go", true)
    local events = process.events()
    while true do
        local ev = events:receive()
        if ev.kind == process.event.EXIT and ev.from == victim then
            return tostring(ev.result.value) .. " refused " .. refused
        end
    end
end"#;

#[test]
fn a_cancel_flood_parks_one_event_per_sender_in_a_lua_process() {
    // 2,000 cancels of 16 kB each used to queue 2,000 events (32 MB) in
    // the victim's memory, ending it for memory its sender chose.
    let app = app()
        .entry("h:victim", VICTIM)
        .entry("h:attacker", CANCELLER);
    let out = attack(app, "h:attacker", vec![n(2000), n(16_000)]);
    assert_eq!(out.value(), "1 refused 0", "{out:?}");
    out.assert_neighbour_ticks();
}

#[test]
fn a_cancel_flood_parks_one_event_per_sender_in_a_component() {
    // A component that never reads its events: each cancel was an event
    // of its mailbox, counted against its host's memory_total even past
    // it. Flooded, the neighbours' next allocations failed; now the
    // host's room is left for them.
    let attacker = r#"return function()
        local victim = process.spawn("h:echo", "test:host")
        local reason = string.rep("r", 16000)
        for _ = 1, 20000 do assert(process.cancel(victim, reason)) end
        -- The echo comes after every cancel has reached the victim.
        process.send(victim, "ping", 1)
        process.inbox():receive()
        local big = string.rep("b", 4 << 20)
        process.terminate(victim)
        return tostring(#big)
    end"#;
    let app = app()
        .component("h:echo", "echo")
        .entry("h:attacker", attacker);
    let out = attack(app, "h:attacker", Vec::new());
    assert_eq!(out.value(), "4194304", "{out:?}");
    out.assert_neighbour_ticks();
}

#[test]
fn a_huge_name_is_quoted_cut_short() {
    let out = lua(
        r#"return function()
            local _, err = process.send(string.rep("n", 100000), "t", 1)
            return err:kind() .. ": " .. #err:message()
        end"#,
        Vec::new(),
    );
    // Cut to 64 characters, not echoed whole.
    let value = out.value();
    assert!(value.starts_with("NotFound: "), "{value}");
    let len: usize = value["NotFound: ".len()..].parse().expect("a length");
    assert!(len < 200, "{value}");
}

/// Listens to `t` and never reads it while it waits for `go` (waking
/// every few milliseconds, so what arrives is delivered and measured);
/// then reads what `t` holds and ends with how many.
const TOPIC_VICTIM: &str = r#"local time = require("time")
return function()
    local ch = process.listen("t")
    local inbox = process.inbox()
    while true do
        local r = channel.select({ inbox:case_receive(), time.after("5ms"):case_receive() })
        if r.channel == inbox then break end
    end
    local n = 0
    while true do
        local r = channel.select({ ch:case_receive(), default = true })
        if r.default then return n end
        n = n + 1
    end
end"#;

/// Sends the victim up to `n` distinct messages of about 1 MB on `t`,
/// stopping at the first refusal; then tells it to read.
const TOPIC_FLOODER: &str = r#"return function(n)
    local victim = process.spawn_monitored("h:victim", "test:host")
    local events = process.events()
    local sent, refused = 0, nil
    for i = 1, n do
        local ok, e = process.send(victim, "t", string.rep("x", 999990) .. i)
        if not ok then refused = e break end
        sent = sent + 1
    end
    process.send(victim, "go")
    local ev = events:receive()
    return { tostring(sent), refused and refused:kind() or "none",
        tostring(refused and refused:retryable()), tostring(ev.result.value or ev.result.error) }
end"#;

#[test]
fn a_flood_to_a_topic_never_read_is_refused_before_it_ends_the_receiver() {
    // mailbox_limit counts messages: 10,000 of 1 MB were admitted, and the
    // receiver ended at its memory limit once a few were delivered.
    let limits = warren_core::HostLimits {
        memory_per_process: 8 << 20,
        ..warren_core::HostLimits::default()
    };
    // From the receiver's own VM, and from another host's worker.
    for host in [warren_tests::HOST, warren_tests::OTHER_HOST] {
        let runtime = warren_tests::App::new()
            .limits(limits.clone())
            .entry("h:victim", TOPIC_VICTIM)
            .entry("h:flooder", TOPIC_FLOODER)
            .start();
        let exit = runtime
            .run(
                warren_core::SpawnRequest::new("h:flooder", host, vec![n(40)]),
                warren_tests::DEADLINE,
            )
            .expect("spawn accepted")
            .expect("the flooder finished");
        let out = warren_tests::strings(exit.expect("the flooder ran"));
        assert_eq!(out[1], "RateLimited", "from {host}: {out:?}");
        assert_eq!(out[2], "true", "from {host}: a full mailbox is retryable");
        assert_eq!(
            out[3], out[0],
            "from {host}: the receiver read all it was sent"
        );
        let sent: u32 = out[0].parse().expect("a count");
        assert!((1..40).contains(&sent), "from {host}: {out:?}");
    }
}

/// Ends at once with a 1,000-byte result.
const QUICK_CHILD: &str = r#"return function() return string.rep("x", 1000) end"#;

/// Spawns `n` monitored children in batches under the host's process
/// count, never reading their EXIT events; `events` "early" asks for the
/// events channel first (the events then go to it, in C; else the kernel
/// keeps them for the channel's first use). Ends normally only if the
/// events never count against it.
const HOARDER: &str = r#"
local time = require("time")
return function(n, events)
    if events == "early" then process.events() end
    local spawned = 0
    while spawned < n do
        for _ = 1, 40 do
            if process.spawn_monitored("h:child", "test:host") then spawned = spawned + 1 end
        end
        time.sleep("1ms")
    end
    time.sleep("20ms")
    return "held " .. spawned .. " events"
end"#;

#[test]
fn exit_events_never_read_count_against_the_watcher() {
    // 12,000 events of ~1.5 KB (about 18 MB) under an 8 MiB limit. They
    // were charged to nobody: 100,000 such events held 230 MB of a VM
    // while their watcher, waiting in `time.sleep`, was never measured.
    for events in ["early", "late"] {
        let out = attack(
            app()
                .entry("h:child", QUICK_CHILD)
                .entry("h:attacker", HOARDER),
            "h:attacker",
            vec![n(12_000), s(events)],
        );
        out.assert_ended(
            warren_core::ErrorKind::RateLimited,
            "memory limit exceeded: the process holds about",
        );
    }
}

/// Reads its inbox for good.
const READER: &str = r#"return function()
    local inbox = process.inbox()
    while true do inbox:receive() end
end"#;

/// Sends tiny messages round-robin to `pids` as fast as it can.
const SENDER: &str = r#"return function(pids)
    while true do for i = 1, #pids do process.send(pids[i], "t", 1) end end
end"#;

/// Sleeps 10 ms 100 times; the worst overshoot, in ms.
const SLEEPER: &str = r#"local time = require("time")
return function()
    local worst = 0
    for _ = 1, 100 do
        local t0 = time.now()
        time.sleep("10ms")
        local d = time.now():sub(t0):nanoseconds() / 1e6 - 10
        if d > worst then worst = d end
    end
    return math.floor(worst)
end"#;

#[test]
fn another_hosts_flood_into_readers_leaves_their_neighbours_the_worker() {
    // Another host sending tiny messages to 30 processes of this host that
    // read them: every message was taken in, and converted, before
    // anything else ran, and a process's whole queue before the next
    // process's, so this host's other processes waited 0.7–1.8 s (red
    // team S). Items now come one a turn per process and at most 256 a
    // drain; a sleeping neighbour overshoots by milliseconds.
    use std::time::Duration;
    use warren_core::SpawnRequest;
    // The default mailbox_limit: the harness's 100 pushes back long before.
    let limits = warren_core::HostLimits {
        mailbox_limit: warren_core::limits::DEFAULT_MAILBOX_LIMIT,
        ..crate::harness::limits()
    };
    let runtime = app()
        .limits(limits)
        .entry("h:reader", READER)
        .entry("h:sender", SENDER)
        .entry("h:sleeper", SLEEPER)
        .start();
    let readers: Vec<_> = (0..30)
        .map(|_| {
            let pid = runtime
                .spawn(SpawnRequest::new("h:reader", "test:host", Vec::new()))
                .expect("a reader");
            s(&pid.to_string())
        })
        .collect();
    let list = warren_core::Value::Array(readers);
    let sender = runtime
        .spawn(SpawnRequest::new(
            "h:sender",
            warren_tests::OTHER_HOST,
            vec![list],
        ))
        .expect("the sender");
    std::thread::sleep(Duration::from_millis(200));
    let exit = runtime
        .run(
            SpawnRequest::new("h:sleeper", "test:host", Vec::new()),
            Duration::from_secs(30),
        )
        .expect("spawned")
        .expect("the sleeper ended");
    let _ = runtime.kill(sender, warren_core::ProcError::terminated());
    let worst = match exit {
        Ok(warren_core::Value::Int(ms)) => ms,
        other => panic!("the sleeper: {other:?}"),
    };
    assert!(
        worst < 300,
        "a 10 ms sleep overshot by {worst} ms under the flood"
    );
}

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

//! Per-host quotas and capabilities, from Lua and from WASM: spawn storms
//! past `max_processes` (50 here), floods past `mailbox_limit` (100),
//! messages past `max_message_bytes` (64 KiB), reaching another host
//! without `allow_hosts`, and memory past `memory_total`.

use warren_core::{ErrorKind, HostLimits, SpawnRequest, Value};
use warren_tests::{App, OTHER_HOST};

use crate::harness::{self, app, attack, attack_on, lua, n, s, wasm};

/// Waits for messages forever without reading any.
const IDLE: &str = r#"local time = require("time")
return function() while true do time.sleep("1h") end end"#;

/// The judge, the neighbour and the attacker leave 47 of 50 slots.
const FREE_SLOTS: i64 = 47;

#[test]
fn lua_spawn_storm_stops_at_max_processes() {
    let app = app().entry("h:idle", IDLE).entry(
        "h:attacker",
        r#"return function()
            local n = 0
            while true do
                local pid, err = process.spawn("h:idle", "test:host")
                if not pid then return err:kind() .. ":" .. n .. ":" .. err:message() end
                n = n + 1
            end
        end"#,
    );
    let out = attack(app, "h:attacker", Vec::new());
    let v = out.value();
    assert!(v.starts_with(&format!("RateLimited:{FREE_SLOTS}:")), "{v}");
    assert!(v.contains("max_processes (50)"), "{v}");
    out.assert_neighbour_ticks();
}

#[test]
fn wasm_spawn_storm_stops_at_max_processes() {
    let app = app()
        .entry("h:idle", IDLE)
        .component("h:attacker", "hostile");
    let args = vec![s("storm"), s("h:idle"), s("test:host"), n(1000)];
    let out = attack(app, "h:attacker", args);
    assert_eq!(out.value(), format!("RateLimited:{FREE_SLOTS}"));
    out.assert_neighbour_ticks();
}

#[test]
fn lua_flood_at_a_slow_receiver_is_rate_limited_and_loses_nothing() {
    let app = app().entry(
        "h:receiver",
        r#"local time = require("time")
        return function()
            time.sleep("30ms")
            local inbox, n = process.inbox(), 0
            while true do
                local msg = inbox:receive()
                if msg:topic() == "end" then return n end
                n = n + 1
            end
        end"#,
    );
    let app = app.entry(
        "h:attacker",
        r#"local time = require("time")
        return function()
            local rx = process.spawn_monitored("h:receiver", "test:host")
            local sent, limited = 0, nil
            while not limited do
                local ok, err = process.send(rx, "flood", sent)
                if ok then sent = sent + 1 else limited = err end
            end
            -- Retrying after the receiver drains works; nothing was dropped.
            local extra = 0
            while extra < 50 do
                if process.send(rx, "flood", sent + extra) then extra = extra + 1 else time.sleep("1ms") end
            end
            while not process.send(rx, "end") do time.sleep("1ms") end
            local ev = process.events():receive()
            return { limited:kind(), limited:retryable(), sent, ev.result.value }
        end"#,
    );
    let out = attack(app, "h:attacker", Vec::new());
    let Ok(Value::Array(v)) = &out.exit else {
        panic!("{out:?}")
    };
    assert_eq!(v[0], s("RateLimited"));
    assert_eq!(v[1], Value::Bool(true));
    assert_eq!(v[2], n(100), "sends accepted before the mailbox was full");
    assert_eq!(v[3], n(150), "every accepted message was received");
    out.assert_neighbour_ticks();
}

#[test]
fn a_flood_of_messages_without_payload_is_limited_like_any_other() {
    // `process.send(pid, topic)` has a path of its own in C (no payload to
    // copy): it must still be admitted to the receiver's mailbox, near (the
    // attacker's own, never read: this VM) and far (a process of another
    // host: another VM, the host's send), and each refusal must be the
    // usual one.
    let mut limits = harness::limits();
    limits.allow_hosts = Some(vec![OTHER_HOST.to_owned()]);
    let app = app().limits(limits).other_limits(harness::limits());
    let app = app.entry("h:idle", IDLE).entry(
        "h:attacker",
        &format!(
            r#"return function()
            local out = {{}}
            for _, rx in ipairs({{ process.pid(), process.spawn("h:idle", "{OTHER_HOST}") }}) do
                local sent, limited = 0, nil
                while not limited and sent < 1000 do
                    local ok, err = process.send(rx, "poke")
                    if ok then sent = sent + 1 else limited = err end
                end
                out[#out + 1] = tostring(limited and limited:kind()) .. ":" .. sent
                    .. ":" .. tostring(limited and limited:retryable())
            end
            return table.concat(out, " ")
        end"#
        ),
    );
    let out = attack(app, "h:attacker", Vec::new());
    assert_eq!(out.value(), "RateLimited:100:true RateLimited:100:true");
    out.assert_neighbour_ticks();
}

#[test]
fn wasm_flood_at_a_slow_lua_receiver_is_rate_limited() {
    let app = app()
        .entry("h:idle", IDLE)
        .component("h:flooder", "hostile")
        .entry(
            "h:attacker",
            r#"return function()
                local rx = process.spawn("h:idle", "test:host")
                return process.exec("h:flooder", "test:host", "flood", rx, 1000)
            end"#,
        );
    let out = attack(app, "h:attacker", Vec::new());
    assert_eq!(out.value(), "RateLimited:100");
    out.assert_neighbour_ticks();
}

#[test]
fn lua_huge_message_inside_the_vm_is_refused() {
    let out = lua(
        r#"return function()
            local ok, err = process.send(process.pid(), "big", string.rep("x", 100000))
            return err:kind() .. ": " .. err:message()
        end"#,
        Vec::new(),
    );
    let v = out.value();
    assert!(v.starts_with("Invalid: "), "{v}");
    assert!(v.contains("max_message_bytes (65536)"), "{v}");
    out.assert_neighbour_ticks();
}

#[test]
fn lua_huge_nested_message_is_refused_before_it_is_copied() {
    let out = lua(
        r#"return function()
            local t = {}
            for i = 1, 10000 do t[i] = { i, "padding padding" } end
            local ok, err = process.send(process.pid(), "big", t)
            return err:kind()
        end"#,
        Vec::new(),
    );
    assert_eq!(out.value(), "Invalid");
    out.assert_neighbour_ticks();
}

#[test]
fn a_message_or_spawn_of_a_huge_number_of_nil_values_is_refused() {
    // Each nil counts one byte against max_message_bytes (64 KiB here):
    // 100,000 of them are refused, to a component (the message leaves the
    // VM) and as a component's spawn arguments, and the attacker goes on.
    let app = app().component("h:echo", "echo").entry(
        "h:attacker",
        r#"return function()
                local pid = process.spawn("h:echo", "test:host")
                local _, err = process.send(pid, "many", table.unpack({}, 1, 100000))
                local _, err2 = process.spawn("h:echo", "test:host", table.unpack({}, 1, 100000))
                process.terminate(pid)
                return err:kind() .. ": " .. err:message() .. " | " .. err2:kind() .. ": " .. err2:message()
            end"#,
    );
    let out = attack(app, "h:attacker", Vec::new());
    let v = out.value();
    let (send, spawn) = v.split_once(" | ").expect("two errors");
    assert!(send.starts_with("Invalid: message payloads of"), "{v}");
    assert!(spawn.starts_with("Invalid: spawn arguments of"), "{v}");
    out.assert_neighbour_ticks();
}

#[test]
fn lua_huge_message_to_a_component_is_refused() {
    let app = app().component("h:echo", "echo").entry(
        "h:attacker",
        r#"return function()
                local pid = process.spawn("h:echo", "test:host")
                local ok, err = process.send(pid, "big", string.rep("x", 100000))
                process.terminate(pid)
                return err:kind() .. ": " .. err:message()
            end"#,
    );
    let out = attack(app, "h:attacker", Vec::new());
    assert!(
        out.value()
            .contains("Invalid: message payloads of 100005 bytes"),
        "{out:?}"
    );
    out.assert_neighbour_ticks();
}

#[test]
fn wasm_huge_message_is_refused() {
    let out = wasm(vec![s("huge"), s("self"), n(100_000)]);
    assert_eq!(out.value(), "Invalid:0");
    out.assert_neighbour_ticks();
}

#[test]
fn lua_huge_spawn_arguments_are_refused() {
    let app = app().entry("h:idle", IDLE).entry(
        "h:attacker",
        r#"return function()
            local pid, err = process.spawn("h:idle", "test:host", string.rep("a", 100000))
            return err:kind() .. ": " .. err:message()
        end"#,
    );
    let out = attack(app, "h:attacker", Vec::new());
    assert!(
        out.value().starts_with("Invalid: spawn arguments of"),
        "{out:?}"
    );
    out.assert_neighbour_ticks();
}

#[test]
fn wasm_huge_spawn_arguments_are_refused() {
    let app = app()
        .entry("h:idle", IDLE)
        .component("h:attacker", "hostile");
    let args = vec![s("huge-spawn"), s("h:idle"), s("test:host"), n(100_000)];
    let out = attack(app, "h:attacker", args);
    assert_eq!(out.value(), "Invalid:0");
    out.assert_neighbour_ticks();
}

/// A runtime whose other host runs an idle process; returns it and its pid.
fn with_foreign_process(app: App) -> (warren_core::Runtime, String) {
    let runtime = app.entry("h:idle", IDLE).start();
    let pid = runtime
        .spawn(SpawnRequest::new("h:idle", OTHER_HOST, Vec::new()))
        .expect("spawn on the other host");
    (runtime, pid.to_string())
}

#[test]
fn lua_cannot_spawn_on_a_host_not_allowed() {
    let out = lua(
        r#"return function()
            local pid, err = process.spawn("h:neighbour", "test:other")
            return err:kind() .. ": " .. err:message()
        end"#,
        Vec::new(),
    );
    let v = out.value();
    assert!(
        v.starts_with("PermissionDenied: spawn to host 'test:other'"),
        "{v}"
    );
    out.assert_neighbour_ticks();
}

#[test]
fn lua_cannot_send_to_or_terminate_a_process_on_a_host_not_allowed() {
    let attacker = r#"return function(victim)
        local _, e1 = process.send(victim, "hi", 1)
        local _, e2 = process.terminate(victim)
        local _, e3 = process.link(victim)
        return { e1:kind(), e1:message(), e2:kind(), e2:message(), e3:kind() }
    end"#;
    let (runtime, victim) = with_foreign_process(app().entry("h:attacker", attacker));
    let out = attack_on(&runtime, "h:attacker", vec![Value::str(&victim)]);
    let Ok(Value::Array(v)) = &out.exit else {
        panic!("{out:?}")
    };
    assert_eq!(v[0], s("PermissionDenied"));
    let m1 = v[1].as_str().unwrap_or_default();
    assert!(
        m1.starts_with("send to host 'test:other'") && m1.contains(&victim),
        "{m1}"
    );
    assert_eq!(v[2], s("PermissionDenied"));
    assert!(v[3].as_str().unwrap_or_default().starts_with("terminate"));
    assert_eq!(v[4], s("PermissionDenied"));
    assert!(runtime.live_processes() >= 1, "the victim is alive");
    out.assert_neighbour_ticks();
}

#[test]
fn allowed_hosts_can_be_reached() {
    let mut limits = harness::limits();
    limits.allow_hosts = Some(vec![OTHER_HOST.to_owned()]);
    let app = app().limits(limits).entry(
        "h:attacker",
        r#"return function()
            local pid, err = process.spawn("h:neighbour", "test:other")
            assert(pid, err)
            assert(process.send(pid, "stop"))
            return "reached"
        end"#,
    );
    let out = attack(app, "h:attacker", Vec::new());
    assert_eq!(out.value(), "reached");
}

#[test]
fn wasm_cannot_send_to_spawn_on_or_terminate_across_hosts() {
    let (runtime, victim) = with_foreign_process(app().component("h:attacker", "hostile"));
    for args in [
        vec![s("send-to"), s(&victim)],
        vec![s("terminate"), s(&victim)],
        vec![s("spawn-on"), s("h:idle"), s(OTHER_HOST)],
    ] {
        let out = attack_on(&runtime, "h:attacker", args.clone());
        assert_eq!(out.value(), "PermissionDenied:0", "{args:?}");
        out.assert_neighbour_ticks();
    }
}

/// Holds `mib` MiB of strings, tells `parent`, then waits to be stopped.
const HOARDER: &str = r#"return function(mib, parent)
    local held = {}
    for i = 1, mib do held[i] = string.rep("h", 1 << 20) .. i end
    process.send(parent, "held")
    process.inbox():receive()
    return #held
end"#;

#[test]
fn memory_total_bounds_processes_that_each_stay_under_their_own_limit() {
    let limits = HostLimits {
        memory_total: 14 << 20,
        ..harness::limits()
    };
    let app = app().limits(limits).entry("h:hoarder", HOARDER).entry(
        "h:attacker",
        // One hoarder after the other (each holds before the next starts),
        // so which one fails does not depend on how their slices interleave.
        r#"return function()
            local inbox, events = process.inbox(), process.events()
            local holding, failed = {}, {}
            for _ = 1, 3 do
                local p = process.spawn_monitored("h:hoarder", "test:host", 5, process.pid())
                local r = channel.select({ inbox:case_receive(), events:case_receive() })
                if r.channel == inbox then
                    holding[#holding + 1] = p
                elseif r.value.result.error then
                    failed[#failed + 1] = r.value.result.error:message()
                end
            end
            for _, p in ipairs(holding) do process.send(p, "stop") end
            for _ = 1, #holding do
                local ev = events:receive()
                if ev.result.error then failed[#failed + 1] = ev.result.error:message() end
            end
            return failed
        end"#,
    );
    let out = attack(app, "h:attacker", Vec::new());
    let Ok(Value::Array(failed)) = &out.exit else {
        panic!("{out:?}")
    };
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]
            .as_str()
            .unwrap_or_default()
            .contains("memory_total"),
        "{failed:?}"
    );
    out.assert_neighbour_ticks();
}

#[test]
fn memory_of_a_killed_process_is_returned() {
    let limits = HostLimits {
        memory_total: 24 << 20,
        ..harness::limits()
    };
    let app = app().limits(limits).entry(
        "h:attacker",
        r#"return function()
            local t = {}
            while true do t[#t + 1] = string.rep("b", 1 << 16) .. #t end
        end"#,
    );
    let app = app.entry(
        "h:fits",
        r#"return function()
            local held = {}
            for i = 1, 5 do held[i] = string.rep("f", 1 << 20) .. i end
            return #held
        end"#,
    );
    let runtime = app.start();
    for _ in 0..3 {
        let out = attack_on(&runtime, "h:attacker", Vec::new());
        out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
    }
    // Three 8 MiB bombs came and went under a 24 MiB total: 5 MiB still fit.
    let out = attack_on(&runtime, "h:fits", Vec::new());
    assert_eq!(out.exit, Ok(n(5)));
}

#[test]
fn a_component_that_reads_its_mailbox_keeps_receiving_past_the_limit() {
    // 300 round trips through a mailbox_limit of 100: the component's reads
    // must give the room back, or the sender would be refused at 100.
    let app = app().component("h:echo", "echo").entry(
        "h:attacker",
        r#"return function()
            local echo = process.spawn("h:echo", "test:host")
            local inbox = process.inbox()
            for i = 1, 300 do
                local ok, err = process.send(echo, "ping", i)
                assert(ok, tostring(err))
                assert(inbox:receive():payload():data() == i)
            end
            process.terminate(echo)
            return "300 echoed"
        end"#,
    );
    let out = attack(app, "h:attacker", Vec::new());
    assert_eq!(out.value(), "300 echoed");
    out.assert_neighbour_ticks();
}

#[test]
fn a_full_mailbox_refuses_a_component_then_takes_its_retry() {
    let app = app().component("h:flooder", "hostile").entry(
        "h:attacker",
        r#"return function()
            local first = process.exec("h:flooder", "test:host", "flood", process.pid(), 150)
            local inbox, got = process.inbox(), 0
            while got < 100 do inbox:receive(); got = got + 1 end
            local second = process.exec("h:flooder", "test:host", "flood", process.pid(), 150)
            return first .. " " .. second
        end"#,
    );
    let out = attack(app, "h:attacker", Vec::new());
    assert_eq!(out.value(), "RateLimited:100 RateLimited:100");
    out.assert_neighbour_ticks();
}

#[test]
fn a_windowed_sender_in_the_same_vm_never_sees_a_stale_full_mailbox() {
    // 2,000 messages, at most 50 ahead of the receiver, through a limit of
    // 100: the room the receiver gives back must count at once, even when
    // sender and receiver take turns many times within one worker slice.
    let app = app()
        .entry(
            "h:sink",
            r#"return function(n, reply)
                local inbox = process.inbox()
                for i = 1, n do
                    inbox:receive()
                    if i % 50 == 0 then process.send(reply, "ack") end
                end
            end"#,
        )
        .entry(
            "h:attacker",
            r#"return function()
                local sink = process.spawn("h:sink", "test:host", 2000, process.pid())
                local inbox = process.inbox()
                for i = 1, 2000 do
                    local ok, err = process.send(sink, "m", i)
                    if not ok then return "refused at " .. i .. ": " .. tostring(err) end
                    if i % 50 == 0 then inbox:receive() end
                end
                return "all sent"
            end"#,
        );
    let out = attack(app, "h:attacker", Vec::new());
    assert_eq!(out.value(), "all sent");
    out.assert_neighbour_ticks();
}

/// Waits on its inbox; on a message, allocates 64 KiB and waits again.
const WAKER: &str = r#"return function()
    local inbox = process.inbox()
    inbox:receive()
    local s = string.rep("x", 65536) .. "y"
    inbox:receive()
    return #s
end"#;

#[test]
fn a_spawn_storm_into_a_full_host_does_not_wedge_its_worker() {
    // `test:other` holds 16 MiB: a few thousand idle processes fill it,
    // and every later start fails on its first allocation. Each such
    // failure ran an emergency collection of the whole full heap (15-20
    // ms) charged to the failing child: 20,000 spawns wedged the host's
    // worker for minutes, and a probe spawned after them never ended.
    // Then every child that did start is woken to allocate on the full
    // host: each failing allocation ran such a collection too.
    let other = HostLimits {
        max_processes: 100_000,
        memory_total: 16 << 20,
        ..HostLimits::default()
    };
    let limits = HostLimits {
        allow_hosts: Some(vec![OTHER_HOST.to_owned()]),
        ..harness::limits()
    };
    let app = app()
        .limits(limits)
        .other_limits(other)
        .entry("h:waker", WAKER)
        .entry("h:probe", harness::ALIVE)
        .entry(
            "h:attacker",
            r#"local time = require("time")
            return function(n)
                local kids = {}
                for i = 1, n do kids[i] = assert(process.spawn("h:waker", "test:other")) end
                local function probe(what)
                    -- Queued behind every start (or message) of the storm.
                    local p = process.spawn_monitored("h:probe", "test:other")
                    local r = channel.select({ process.events():case_receive(),
                        time.after("15s"):case_receive() })
                    if r.channel ~= process.events() then error("no probe after " .. what) end
                    assert(r.value.from == p)
                end
                probe("the starts")
                for i = 1, n do process.send(kids[i], "go") end
                probe("the wake-ups")
                return "probes ended"
            end"#,
        );
    let out = attack(app, "h:attacker", vec![n(20_000)]);
    assert_eq!(out.value(), "probes ended");
    out.assert_neighbour_ticks();
}

/// Waits until `start_ns`, stays in that run a while, then takes 24 MiB
/// in one concatenation and holds it.
const GRABBER: &str = r#"local time = require("time")
return function(start_ns, spin)
    local x = string.rep("x", 1 << 20)
    local inbox = process.inbox()
    local wait = start_ns - time.now():unix_nano()
    if wait > 0 then time.sleep(wait) end
    for _ = 1, spin do end
    local s = x .. x .. x .. x .. x .. x .. x .. x .. x .. x .. x .. x
        .. x .. x .. x .. x .. x .. x .. x .. x .. x .. x .. x .. x
    inbox:receive()
    return #s
end"#;

#[test]
fn processes_running_at_once_on_several_workers_share_the_hosts_room() {
    // Eight workers, 64 MiB in all: eight processes that run at the same
    // moment each take 24 MiB. Each run's ceiling was the host's whole
    // room, and their growth reached the host's count only as each run
    // ended: 16 such processes on 16 workers held 440 MiB of a 64 MiB
    // memory_total. At most two may hold theirs.
    let limits = HostLimits {
        memory_per_process: 32 << 20,
        memory_total: 64 << 20,
        cpu_budget: None,
        ..harness::limits()
    };
    let app = app()
        .limits(limits)
        .workers(8)
        .entry("h:grab", GRABBER)
        .entry(
            "h:attacker",
            r#"local time = require("time")
        return function(n)
            local start = time.now():unix_nano() + 300 * 1000 * 1000
            local events = process.events()
            local kids = {}
            for i = 1, n do
                kids[i] = process.spawn_monitored("h:grab", "test:host", start, 200000)
            end
            local ended = 0
            local deadline = time.after("3s")
            while ended < n do
                local r = channel.select({ events:case_receive(), deadline:case_receive() })
                if r.channel ~= events then break end
                ended = ended + 1
            end
            for i = 1, n do process.terminate(kids[i]) end
            return n - ended
        end"#,
        );
    let out = attack(app, "h:attacker", vec![n(8)]);
    let Ok(Value::Int(holding)) = out.exit else {
        panic!("{out:?}")
    };
    assert!(
        holding <= 2,
        "{holding} processes hold 24 MiB each of 64 MiB"
    );
    out.assert_neighbour_ticks();
}

#[test]
fn a_tenants_pids_tell_nothing_of_another_tenants_spawns() {
    // Serials are counted per host: with one counter for every host, the
    // gap between two of a tenant's own pids was how many processes every
    // other tenant had started in between.
    let runtime = app().entry("h:idle", IDLE).start();
    let spawn = |host: &str| {
        runtime
            .spawn(SpawnRequest::new("h:idle", host, Vec::new()))
            .expect("spawn")
    };
    let first = spawn("test:host");
    let others: Vec<_> = (0..20).map(|_| spawn(OTHER_HOST)).collect();
    let second = spawn("test:host");
    assert_eq!(second.serial(), first.serial() + 1, "{first} then {second}");
    assert!(
        others
            .windows(2)
            .all(|w| w[1].serial() == w[0].serial() + 1)
    );
    assert!(others.iter().all(|p| *p != first && *p != second));
}

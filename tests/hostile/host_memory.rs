//! What a guest can make the host hold outside its own memory: topics
//! (copied into every message that leaves the sender's VM and into every
//! `listen` handle), the values a component's own channels buffer, the
//! tree a non-canonical payload decodes to, and exit results and messages
//! (copied to every watcher), timers a wait or a stop no longer needs.
//! Each is bounded before it is copied or decoded, refused with an error
//! naming the bound, and what a component buffered is given back when it
//! is taken or its channel dropped; a cancelled timer leaves the heap.
//! What an ending process held (names, events and messages it never
//! took) is all given back by the time its exit is told: the tests read
//! the runtime from inside the exit's callback, before the worker that
//! tells it does anything more.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use warren_core::limits::{MAX_EXIT_MESSAGE, MAX_TOPIC_BYTES};
use warren_core::{ErrorKind, Runtime, SpawnRequest, Value};

use crate::harness::{self, app, attack, lua, n, s, wasm};

fn topic_len(extra: usize) -> i64 {
    i64::try_from(MAX_TOPIC_BYTES + extra).expect("small")
}

#[test]
fn a_lua_topic_past_the_limit_is_refused_on_every_path_and_one_at_it_works() {
    let app = app().component("h:echo", "echo").entry(
        "h:attacker",
        r#"return function(max)
            local long, edge = string.rep("t", max + 1), string.rep("e", max)
            local me = process.pid()
            local echo = process.spawn("h:echo", "test:host")
            process.registry.register("me")
            local out = {}
            local function try(what, ok, err)
                assert(ok == nil, what .. " was accepted")
                assert(err:kind() == errors.INVALID, what .. ": " .. tostring(err))
                assert(err:message():find(tostring(max + 1) .. " bytes", 1, true), err:message())
                out[#out + 1] = what
            end
            try("self", process.send(me, long, 1))
            try("self, two payloads", process.send(me, long, 1, 2))
            try("self, a table", process.send(me, long, { a = 1 }))
            try("by name", process.send("me", long, 1))
            try("component", process.send(echo, long, 1))
            local ok, err = pcall(process.listen, long)
            assert(not ok and tostring(err):find("longer than", 1, true), tostring(err))
            out[#out + 1] = "listen"
            -- At the limit: listened to, sent, received.
            local ch = process.listen(edge)
            assert(process.send(me, edge, 7))
            assert(ch:receive() == 7)
            out[#out + 1] = "edge"
            process.terminate(echo)
            return table.concat(out, ",")
        end"#,
    );
    let out = attack(app, "h:attacker", vec![n(topic_len(0))]);
    assert_eq!(
        out.value(),
        "self,self, two payloads,self, a table,by name,component,listen,edge"
    );
    out.assert_neighbour_ticks();
}

#[test]
fn a_component_topic_past_the_limit_is_refused_and_one_at_it_is_sent() {
    let out = wasm(vec![s("topic"), s("self"), n(topic_len(1))]);
    assert_eq!(out.value(), "Invalid:0");
    let out = wasm(vec![s("topic"), s("self"), n(topic_len(0))]);
    assert_eq!(out.value(), "ok:1");
    out.assert_neighbour_ticks();
}

#[test]
fn a_component_cannot_listen_on_a_topic_past_the_limit() {
    let out = wasm(vec![s("listen-long"), n(topic_len(1)), n(10_000)]);
    assert_eq!(out.value(), "Invalid:0");
    let out = wasm(vec![s("listen-long"), n(topic_len(0)), n(3)]);
    assert_eq!(out.value(), "ok:3");
    out.assert_neighbour_ticks();
}

#[test]
fn a_components_own_channels_hold_its_memory_and_give_it_back() {
    // 60,000-byte values under an 8 MiB process limit: about 130 fit. Each
    // round takes them back (even rounds) or drops the full channels (odd
    // ones): if either kept its bytes counted, a later round would fit
    // fewer.
    let app = app().component("h:attacker", "hostile");
    let runtime = app.start();
    let before = runtime.memory_used("test:host").expect("the host");
    let out = harness::attack_on(&runtime, "h:attacker", vec![s("hoard"), n(4), n(60_000)]);
    let value = out.value();
    let (kind, counts) = value.split_once(':').expect("kind:counts");
    assert_eq!(kind, "RateLimited", "{value}");
    let counts: Vec<u32> = counts.split(',').map(|c| c.parse().expect("n")).collect();
    assert_eq!(counts.len(), 4, "{value}");
    assert!((50..140).contains(&counts[0]), "{value}");
    assert!(counts.iter().all(|c| c.abs_diff(counts[0]) <= 2), "{value}");
    let after = runtime.memory_used("test:host").expect("the host");
    assert!(
        after <= before + (1 << 20),
        "{} bytes still held after the component ended",
        after.saturating_sub(before)
    );
    out.assert_neighbour_ticks();
}

#[test]
fn a_channel_value_larger_than_a_message_is_refused() {
    // Past max_message_bytes (64 KiB here) before the first one fits.
    let out = wasm(vec![s("hoard"), n(1), n(70_000)]);
    assert_eq!(out.value(), "Invalid:0");
}

#[test]
fn a_payload_to_decode_is_measured_before_it_is_decoded() {
    // 100,000 nils in forms the runtime does not write: refused on their
    // 100,009 encoded bytes (the decoded value would count 100,013).
    let out = wasm(vec![s("bloat"), s("self"), n(100_000)]);
    assert_eq!(
        out.value(),
        "Invalid:message payloads of 100009 bytes exceed max_message_bytes (65536)"
    );
    // A small one in the same forms is decoded and sent.
    let out = wasm(vec![s("bloat"), s("self"), n(1_000)]);
    assert_eq!(out.value(), "ok:");
    out.assert_neighbour_ticks();
}

#[test]
fn a_component_result_larger_than_a_message_ends_it_with_the_reason() {
    let out = wasm(vec![s("big-result"), n(70_000)]);
    out.assert_ended(
        ErrorKind::Invalid,
        "a result of 70005 bytes exceeds max_message_bytes (65536)",
    );
    let out = wasm(vec![s("big-result"), n(60_000)]);
    assert_eq!(out.exit, Ok(Value::str("x".repeat(60_000))));
}

#[test]
fn a_huge_exit_message_reaches_watchers_cut() {
    let out = wasm(vec![s("big-error"), n(1 << 20)]);
    let err = out.error();
    assert_eq!(err.kind, ErrorKind::Internal, "{}", &err.message[..64]);
    assert_eq!(err.message.len(), MAX_EXIT_MESSAGE);
    assert!(err.message.bytes().all(|b| b == b'e'));
    out.assert_neighbour_ticks();
    // A Lua process's message is cut the same way.
    let out = lua(
        r#"return function() error(string.rep("é", 20000), 0) end"#,
        Vec::new(),
    );
    let err = out.error();
    assert!(
        err.message.len() <= MAX_EXIT_MESSAGE,
        "{}",
        err.message.len()
    );
    assert!(err.message.starts_with("éé"), "{}", &err.message[..8]);
}

/// A hoarding attacker: its pid, where its exit is told, and how the
/// worker telling it is let go on.
struct Hoarder {
    pid: warren_core::Pid,
    exit: mpsc::Receiver<warren_core::Exit>,
    go_on: mpsc::Sender<()>,
}

/// Starts `attacker` with `args` and waits until it registers as
/// `hoarder` (having done what it holds on to). Its exit callback waits
/// (20 s at most) for the test to read what it needs, so the test reads
/// the runtime as it is when the exit is told, before the worker does
/// anything more.
fn hoarding(runtime: &Runtime, attacker: &str, args: Vec<Value>) -> Hoarder {
    let (tx, exit) = mpsc::channel();
    let (go_on, wait) = mpsc::channel::<()>();
    let wait = std::sync::Mutex::new(wait);
    let told = Box::new(move |_, result: &warren_core::Exit| {
        let _ = tx.send(result.clone());
        let wait = wait
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = wait.recv_timeout(Duration::from_secs(20));
    });
    let pid = runtime
        .spawn_notify(SpawnRequest::new(attacker, "test:host", args), told)
        .expect("spawn");
    until(
        || runtime.lookup("hoarder").is_some(),
        "the attacker registered",
    );
    Hoarder { pid, exit, go_on }
}

/// Ends the hoarder; what `read` finds when its exit is told: by then
/// all it held has been given back.
fn end_hoarding<T>(runtime: &Runtime, hoarder: Hoarder, read: impl FnOnce() -> T) -> T {
    let _ = runtime.kill(
        hoarder.pid,
        warren_core::ProcError::new(ErrorKind::Canceled, "done"),
    );
    let exit = hoarder
        .exit
        .recv_timeout(Duration::from_secs(20))
        .expect("the attacker ended within 20 s");
    let seen = read();
    let _ = hoarder.go_on.send(());
    assert!(
        matches!(&exit, Err(e) if e.kind == ErrorKind::Canceled),
        "killed, not {exit:?}"
    );
    assert!(runtime.lookup("hoarder").is_none(), "its name is released");
    seen
}

/// Waits (20 s at most) until `done`.
fn until(done: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_garbage_of_processes_that_ended_leaves_the_hosts_count_while_their_worker_idles() {
    // The last thing the process makes is a 4 MiB string it drops: its
    // VM's heap, which the host's count follows, holds it as garbage. With
    // no process left, the idle worker collects (guest-lua `host.rs`,
    // EMPTY_GC_GROWTH); before, it stayed counted until a later burst of
    // allocation (8 MiB, or twice the VM) made Lua collect.
    let runtime = app()
        .entry(
            "h:litter",
            r#"return function() local s = string.rep("x", 4 << 20) return #s end"#,
        )
        .start();
    assert_eq!(
        warren_tests::run_on(&runtime, "h:alive", Vec::new()),
        Ok(Value::str("alive"))
    );
    until(|| runtime.live_processes() == 0, "the first process ended");
    let host = "test:host";
    let before = runtime.memory_used(host).expect("the host");
    let litter = warren_tests::run_on(&runtime, "h:litter", Vec::new());
    assert_eq!(litter, Ok(Value::Int(4 << 20)));
    let granule = 64 << 10; // the VM's accounting step (guest-lua quota.rs)
    until(
        || runtime.memory_used(host).unwrap_or(u64::MAX) <= before + granule,
        "the ended process's garbage left the host's count",
    );
}

/// Ends the hoarder and asserts that its host's count is back to `before`
/// (within a MiB for the VMs' 64 KiB accounting steps) when its exit is
/// told.
fn all_back_when_told(runtime: &Runtime, hoarder: Hoarder, before: u64) {
    let after = end_hoarding(runtime, hoarder, || {
        runtime.memory_used("test:host").expect("the host")
    });
    assert!(
        after <= before + (1 << 20),
        "{} bytes still held",
        after.saturating_sub(before)
    );
}

/// The timers armed on the runtime while `attacker` hoards.
fn timers_held(runtime: &Runtime, attacker: &str, args: Vec<Value>) -> usize {
    let hoarder = hoarding(runtime, attacker, args);
    let held = runtime.armed_timers();
    end_hoarding(runtime, hoarder, || ());
    held
}

#[test]
fn a_lua_timer_reset_or_stopped_leaves_the_hosts_timer_heap() {
    let app = app().entry(
        "h:attacker",
        r#"local time = require("time")
        return function(n)
            local t = time.timer("1h")
            for _ = 1, n do t:reset("1h") end
            for _ = 1, n do time.timer("1h"):stop() end
            process.registry.register("hoarder")
            process.inbox():receive()
        end"#,
    );
    let runtime = app.start();
    let held = timers_held(&runtime, "h:attacker", vec![n(20_000)]);
    // 40,001 armed, all but one cancelled: swept once they were half.
    assert!(held < 1_000, "{held} timers still in the heap");
}

#[test]
fn a_components_dropped_timers_and_ended_waits_leave_the_hosts_timer_heap() {
    let runtime = app().component("h:attacker", "hostile").start();
    let held = timers_held(&runtime, "h:attacker", vec![s("after-drop"), n(20_000)]);
    assert!(held < 1_000, "{held} timers still in the heap");
}

#[test]
fn monitoring_a_process_again_holds_one_monitor() {
    // Each monitor used to be a list entry on the target: a loop grew the
    // host's list without bound and the exit sent as many EXITs.
    let app = app()
        .entry("h:waiter", r#"return function() process.inbox():receive() end"#)
        .entry(
            "h:attacker",
            r#"local time = require("time")
            return function(n)
                local t = process.spawn("h:waiter", "test:host")
                for _ = 1, n do assert(process.monitor(t)) end
                local u = process.spawn_monitored("h:waiter", "test:host")
                assert(process.monitor(u))
                assert(process.unmonitor(u))
                process.send(t, "go")
                process.send(u, "go")
                local events, got = process.events(), {}
                while true do
                    local r = channel.select({ events:case_receive(), time.after("200ms"):case_receive() })
                    if r.channel ~= events then break end
                    got[#got + 1] = r.value.from == t and "t" or "other"
                end
                return table.concat(got, ",")
            end"#,
        );
    let out = attack(app, "h:attacker", vec![n(20_000)]);
    assert_eq!(out.value(), "t");
    out.assert_neighbour_ticks();
}

#[test]
fn a_cancel_reason_larger_than_a_message_is_refused() {
    let out = wasm(vec![s("cancel-big"), s("self"), n(70_000)]);
    assert_eq!(
        out.value(),
        "Invalid:a cancel reason of 70005 bytes exceeds max_message_bytes (65536)"
    );
    let out = wasm(vec![s("cancel-big"), s("self"), n(100)]);
    assert_eq!(out.value(), "ok:");
    // Under max_message_bytes but past the reason's own bound: many
    // senders each cancelling once filled the target's host.
    let out = wasm(vec![s("cancel-big"), s("self"), n(20_000)]);
    assert_eq!(
        out.value(),
        "Invalid:a cancel reason of 20005 bytes exceeds MAX_CANCEL_REASON (16384)"
    );
    let out = wasm(vec![s("cancel-big"), s("self"), n(16_000)]);
    assert_eq!(out.value(), "ok:");
    let out = lua(
        r#"return function()
            local ok, err = process.cancel(process.pid(), string.rep("c", 70000))
            assert(ok == nil and err:kind() == errors.INVALID, tostring(err))
            return "refused"
        end"#,
        Vec::new(),
    );
    assert_eq!(out.value(), "refused");
}

#[test]
fn names_a_process_registers_are_capped_and_held_against_its_host() {
    let app = app().entry(
        "h:attacker",
        r#"return function()
            local n, err, tail = 0, nil, string.rep("n", 250)
            while true do
                local ok, e = process.registry.register(string.format("%05d", n) .. tail)
                if not ok then err = e break end
                n = n + 1
            end
            assert(err:kind() == errors.RATE_LIMITED, tostring(err))
            assert(n == 1024, n)
            assert(process.registry.unregister("00000" .. tail))
            assert(process.registry.register("hoarder"))
            process.inbox():receive()
            return n
        end"#,
    );
    let runtime = app.start();
    let before = runtime.memory_used("test:host").expect("the host");
    let hoarder = hoarding(&runtime, "h:attacker", Vec::new());
    // 1,023 names of 255 bytes and "hoarder": about 630 KB held.
    let held = runtime.memory_used("test:host").expect("the host") - before;
    assert!(held >= 1_023 * (2 * 255 + 96), "{held} bytes held");
    // What has come back when its exit is told is the names' cost (the
    // attacker's Lua garbage, one 255-byte string a name, is counted until
    // its VM collects it, and the VM's count moves in 64 KiB steps: a
    // quarter of a MiB of slack for that).
    let after = end_hoarding(&runtime, hoarder, || {
        runtime.memory_used("test:host").expect("the host") - before
    });
    assert!(
        held.saturating_sub(after) >= 1_023 * (2 * 255 + 96) - (256 << 10),
        "{held} bytes held, {after} still held after it ended"
    );
}

#[test]
fn payloads_sharing_one_buffer_end_the_component_before_they_are_copied() {
    // 500,000 list elements pointing at one 64 KiB buffer: 32 GB if the
    // host copied them all. Wasmtime's hostcall fuel (128 MiB a call)
    // traps the call first; the component ends with that reason.
    let out = wasm(vec![s("alias"), n(500_000), n(65_536)]);
    out.assert_ended(ErrorKind::Internal, "too much data is being copied");
    // 100,000 empty payloads: copied (nothing), each malformed: refused.
    let out = wasm(vec![s("alias"), n(100_000), n(0)]);
    assert_eq!(out.value(), "refused");
    // 300,000 one-byte payloads: as many host vectors (7 MB of headers;
    // 200 MB and 250 ms of the worker at five million) before their count
    // is checked, unless the fuel, which this host's 64 KiB messages bound
    // to some 4 MiB (guest-wasm `hostcall_fuel`), traps the call first.
    let out = wasm(vec![s("alias"), n(300_000), n(1)]);
    out.assert_ended(ErrorKind::Internal, "too much data is being copied");
    // Ten that share one nil are ten nils, sent.
    let out = wasm(vec![s("alias"), n(10), n(1)]);
    assert_eq!(out.value(), "ok");
}

#[test]
fn exit_events_a_component_never_reads_hold_its_hosts_memory() {
    // 200 children each returning 60,005 bytes to a watcher that never
    // reads its events: 12 MB the watcher's host holds until it ends.
    let runtime = app().component("h:attacker", "hostile").start();
    let before = runtime.memory_used("test:host").expect("the host");
    let args = vec![
        s("watch"),
        s("h:attacker"),
        s("test:host"),
        n(200),
        n(60_000),
    ];
    let hoarder = hoarding(&runtime, "h:attacker", args);
    until(|| runtime.live_processes() == 1, "the children ended");
    let held = runtime.memory_used("test:host").expect("the host") - before;
    assert!(held >= 200 * 60_005, "{held} bytes held");
    all_back_when_told(&runtime, hoarder, before);
}

#[test]
fn messages_a_component_never_reads_are_given_back_before_its_exit_is_told() {
    // 30 messages of 60 KB (the mailbox takes about 2 MiB: a quarter of
    // memory_per_process) to a component that never reads its inbox:
    // about 1.8 MB of the senders' host held while they wait, all of it
    // back by the time the receiver's exit is told.
    let runtime = app().component("h:attacker", "hostile").start();
    let before = runtime.memory_used("test:host").expect("the host");
    let hoarder = hoarding(&runtime, "h:attacker", vec![s("deaf")]);
    let flood = vec![s("flood-bytes"), s("hoarder"), n(30), n(60_000)];
    let sent = runtime
        .run(
            SpawnRequest::new("h:attacker", "test:host", flood),
            Duration::from_secs(20),
        )
        .expect("spawned")
        .expect("the flood ended within 20 s");
    assert_eq!(sent.expect("the flood ran").as_str(), Some("ok:30"));
    let held = runtime.memory_used("test:host").expect("the host") - before;
    assert!(held >= 30 * 60_000, "{held} bytes held");
    all_back_when_told(&runtime, hoarder, before);
}

#[test]
fn a_components_tiny_channel_values_count_what_they_cost() {
    // One-byte values counted as one byte: a million fit under an 8 MiB
    // process limit (each costs the host some 60 bytes more: 9,990
    // channels of 1,024 held 310 MiB). Counted with their overhead, the
    // limit stops them near 8 MiB / 65, and each round gets as far (some
    // 250,000 sends: a budget they fit in on a loaded machine).
    let limits = warren_core::HostLimits {
        cpu_budget: Some(Duration::from_secs(5)),
        ..harness::limits()
    };
    let app = app().limits(limits).component("h:attacker", "hostile");
    let out = attack(app, "h:attacker", vec![s("hoard"), n(2), n(0)]);
    let value = out.value();
    let (kind, counts) = value.split_once(':').expect("kind:counts");
    assert_eq!(kind, "RateLimited", "{value}");
    let counts: Vec<u32> = counts.split(',').map(|c| c.parse().expect("n")).collect();
    assert!(counts.iter().all(|&c| c < 8 << 20 >> 6), "{value}");
    assert!(counts[1].abs_diff(counts[0]) <= 64, "{value}");
    out.assert_neighbour_ticks();
}

#[test]
fn a_components_listen_handles_count_their_topics() {
    // 10,000 listens on topics of the longest size each kept the topic
    // twice, uncounted: 20 MB of the host under an 8 MiB process limit.
    let out = wasm(vec![s("listen-long"), n(topic_len(0)), n(10_000)]);
    let value = out.value();
    let (kind, count) = value.split_once(':').expect("kind:count");
    assert_eq!(kind, "RateLimited", "{value}");
    let count: usize = count.parse().expect("n");
    assert!(count * 2 * MAX_TOPIC_BYTES <= 8 << 20, "{value}");
    out.assert_neighbour_ticks();
}

#[test]
fn a_selects_send_values_are_bounded_together() {
    // Each send case's value is decoded to be checked: 25 cases of 1 MiB
    // held the worker 1.3 s in one call. Together they are one message.
    let out = wasm(vec![s("select-sends"), n(4), n(60_000)]);
    let value = out.value();
    assert!(
        value.starts_with("Invalid:a select's send values of 240"),
        "{value}"
    );
    let out = wasm(vec![s("select-sends"), n(1), n(60_000)]);
    assert_eq!(out.value(), "ok:");
    out.assert_neighbour_ticks();
}

#[test]
fn a_select_has_at_most_4096_cases_in_every_front_end() {
    // Each case is walked on every try and wake, in one host call: 90,000
    // cases held the worker 45 ms a call, and 80 such processes left a
    // neighbour 4 s without the CPU (red team M).
    let out = wasm(vec![s("select-many"), n(4097)]);
    assert_eq!(
        out.value(),
        "Invalid:a select of 4097 cases: at most 4096",
        "{out:?}"
    );
    out.assert_neighbour_ticks();
    let out = wasm(vec![s("select-many"), n(4096)]);
    assert_eq!(out.value(), "ok:", "{out:?}");
    let out = lua(
        r#"return function()
            local ch, cases = channel.new(1), {}
            for i = 1, 4097 do cases[i] = ch:case_receive() end
            local ok, err = pcall(channel.select, cases)
            return tostring(ok) .. " " .. tostring(err)
        end"#,
        vec![],
    );
    assert!(out.value().contains("more than 4096 cases"), "{out:?}");
}

#[test]
fn a_spawn_passes_at_most_4096_arguments() {
    // 170,000 arguments held the worker 47 ms decoding them (red team M);
    // the rule is a message's payload count, for components and Lua alike.
    let out = wasm(vec![
        s("spawn-args"),
        s("h:alive"),
        s(warren_tests::HOST),
        n(4097),
    ]);
    assert_eq!(
        out.value(),
        "Invalid:a spawn of 4097 arguments: at most 4096",
        "{out:?}"
    );
    out.assert_neighbour_ticks();
    let out = wasm(vec![
        s("spawn-args"),
        s("h:alive"),
        s(warren_tests::HOST),
        n(4096),
    ]);
    assert_eq!(out.value(), "ok:", "{out:?}");
    let out = lua(
        r#"return function(host)
            local args = {}
            for i = 1, 4097 do args[i] = i end
            local pid, err = process.spawn("h:alive", host, table.unpack(args))
            return tostring(pid) .. " " .. tostring(err)
        end"#,
        vec![s(warren_tests::HOST)],
    );
    assert!(
        out.value()
            .contains("a spawn of 4097 arguments: at most 4096"),
        "{out:?}"
    );
}

/// Ends with a 60,000-byte string once told `go`.
const BIG_ENDER: &str = r#"return function()
    process.inbox():receive()
    return string.rep("r", 60000)
end"#;

/// Monitors `target`, tells `parent` it does, and tells it what the exit
/// event carried: `value` or the error's kind.
const EXIT_WATCHER: &str = r#"return function(target, parent)
    local events = process.events()
    assert(process.monitor(target))
    process.send(parent, "ready", true)
    local ev = events:receive()
    local got = ev.result.value and "value" or ev.result.error:kind()
    process.send(parent, "told", got)
end"#;

#[test]
fn one_exit_copies_a_large_result_to_a_bounded_number_of_watchers() {
    // 3,000 monitors of a process ending with 900 KiB: 2.7 GB of copies
    // made in one call on its worker. Here 10 watchers of a 60,000-byte
    // result under a 64 KiB max_message_bytes: four copies fit the bound
    // (4 × 64 KiB); the others are told of the exit with an error.
    let runtime = app()
        .entry("h:ender", BIG_ENDER)
        .entry("h:watcher", EXIT_WATCHER)
        .entry(
            "h:main",
            r#"return function()
                local target = process.spawn("h:ender", "test:host")
                local inbox = process.inbox()
                for _ = 1, 10 do process.spawn("h:watcher", "test:host", target, process.pid()) end
                for _ = 1, 10 do assert(inbox:receive():topic() == "ready") end
                process.send(target, "go", true)
                local counts = {}
                for _ = 1, 10 do
                    local got = inbox:receive():payload():data()
                    counts[got] = (counts[got] or 0) + 1
                end
                return { tostring(counts.value), tostring(counts.RateLimited) }
            end"#,
        )
        .start();
    let exit = runtime
        .run(
            SpawnRequest::new("h:main", "test:host", Vec::new()),
            Duration::from_secs(20),
        )
        .expect("spawned")
        .expect("finished");
    let got = warren_tests::strings(exit.expect("ran"));
    assert_eq!(got, ["4", "6"]);
}

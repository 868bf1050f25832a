//! Memory a process holds where the per-process measurement used to miss
//! it, and memory in flight between processes (class 6 of the security
//! model). Data reachable only through kernel objects the process holds —
//! a `coroutine.wrap` function's coroutine, a channel case's value, a
//! timer — is counted as the process's, as are equal long strings (each
//! its own allocation), the varargs of suspended coroutines, an emptied
//! table's slots, closures' upvalues and loaded functions' code and
//! constants (`guest-lua/src/measure.rs`); messages queued for a process
//! count against the sending host's `memory_total` until they are
//! delivered (the sender gets a retryable `RATE_LIMITED` past it), and
//! against the receiver once they are.

use warren_core::{ErrorKind, HostLimits};

use crate::harness::{self, app, attack, attack_on, lua};

fn out_of_memory(source: &str) {
    let out = lua(source, Vec::new());
    out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
}

#[test]
fn data_held_by_wrapped_coroutines_counts() {
    out_of_memory(
        r#"return function()
            local held = {}
            for i = 1, 64 do
                local f = coroutine.wrap(function()
                    local big = string.rep("w", 1 << 20) .. i
                    coroutine.yield()
                    return #big
                end)
                f()
                held[i] = f
            end
            return #held
        end"#,
    );
}

#[test]
fn data_held_by_nested_wrapped_coroutines_counts() {
    out_of_memory(
        r#"return function()
            local held = {}
            for i = 1, 64 do
                local outer = coroutine.wrap(function()
                    local inner = coroutine.wrap(function()
                        local big = string.rep("n", 1 << 20) .. i
                        coroutine.yield()
                        return big
                    end)
                    inner()
                    coroutine.yield()
                    return inner
                end)
                outer()
                held[i] = outer
            end
            return #held
        end"#,
    );
}

#[test]
fn values_held_by_send_cases_count() {
    out_of_memory(
        r#"return function()
            local ch = channel.new()
            local cases = {}
            for i = 1, 64 do cases[i] = ch:case_send(string.rep("c", 1 << 20) .. i) end
            return #cases
        end"#,
    );
}

#[test]
fn values_buffered_in_channels_count() {
    out_of_memory(
        r#"return function()
            local chans = {}
            for i = 1, 64 do
                local ch = channel.new(1)
                ch:send(string.rep("b", 1 << 20) .. i)
                chans[i] = ch
            end
            return #chans
        end"#,
    );
}

/// Never reads its inbox.
const IDLE: &str = r#"local time = require("time")
return function() while true do time.sleep("1h") end end"#;

#[test]
fn a_flood_in_flight_stops_at_memory_total() {
    const TOTAL: u64 = 16 << 20;
    let limits = HostLimits {
        memory_per_process: 64 << 20,
        memory_total: TOTAL,
        mailbox_limit: 100_000,
        ..harness::limits()
    };
    let runtime = app()
        .limits(limits)
        .entry("h:idle", IDLE)
        .component("h:hostile", "hostile")
        .entry(
            "h:attacker",
            r#"return function()
                local sink = assert(process.spawn("h:idle", "test:host"))
                return process.exec("h:hostile", "test:host", "flood-bytes", sink, 100000, 60000)
            end"#,
        )
        .start();
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    let v = out.value();
    let (kind, sent) = v.split_once(':').expect("kind:count");
    assert_eq!(kind, "RateLimited", "{v}");
    let sent: u64 = sent.parse().expect("a count");
    assert!(
        sent * 60_000 <= TOTAL,
        "{sent} messages of 60 KB were queued"
    );
    let used = runtime.memory_used("test:host").expect("the host");
    assert!(
        used <= TOTAL + (2 << 20),
        "memory_used {used} past memory_total"
    );
    out.assert_neighbour_ticks();
}

/// Ended by its own limit, not by the host's `memory_total` running out
/// (which fails every process of the host meanwhile).
fn out_of_its_own_memory(source: &str) {
    let out = lua(source, Vec::new());
    out.assert_ended(ErrorKind::RateLimited, "memory_per_process");
}

// Equal long strings, each its own allocation (Lua interns only strings of
// at most 40 bytes): the measure counted equal strings once, so the table,
// closure and channel cases grew past their 8 MiB to the host's 256 MiB
// total, failing every process of the host meanwhile.

#[test]
fn equal_long_strings_in_a_table() {
    out_of_its_own_memory(
        r#"return function()
            local t = {}
            while true do t[#t + 1] = string.rep("y", 4000) end
        end"#,
    );
}

#[test]
fn equal_long_strings_made_by_concatenation() {
    out_of_its_own_memory(
        r#"return function()
            local t, y = {}, string.rep("y", 1000)
            while true do t[#t + 1] = y .. "!" end
        end"#,
    );
}

#[test]
fn equal_long_strings_held_by_closures() {
    out_of_its_own_memory(
        r#"return function()
            local fns = {}
            while true do
                local s = string.rep("c", 2000)
                fns[#fns + 1] = function() return s end
            end
        end"#,
    );
}

#[test]
fn equal_long_strings_in_a_channel_buffer() {
    out_of_its_own_memory(
        r#"return function()
            local ch = channel.new(1000000)
            while true do ch:send(string.rep("q", 1000)) end
        end"#,
    );
}

// What the measure's walk could not see (a second red-team pass): each of
// these held far more than its 8 MiB, measured at a few MiB, until the
// host's 256 MiB ran out and the neighbours' allocations failed. Each
// yields now and then, so that it is measured between runs.

#[test]
fn strings_held_as_the_varargs_of_suspended_coroutines() {
    out_of_its_own_memory(
        r#"local time = require("time")
        return function()
            local keep = {}
            for round = 1, 120 do
                local t = {}
                for i = 1, 20 do t[i] = string.rep("v", 100000) .. round .. ":" .. i end
                local co = coroutine.create(function(...) coroutine.yield() end)
                coroutine.resume(co, table.unpack(t))
                keep[round] = co
                time.sleep("1ms")
            end
        end"#,
    );
}

#[test]
fn tables_emptied_after_holding_many_entries() {
    out_of_its_own_memory(
        r#"local time = require("time")
        return function()
            local keep = {}
            for round = 1, 200 do
                local t = {}
                for i = 1, 100000 do t[i] = true end
                for i = 1, 100000 do t[i] = nil end
                keep[round] = t
                time.sleep("1ms")
            end
        end"#,
    );
}

#[test]
fn a_chain_of_closures_with_many_upvalues() {
    out_of_its_own_memory(
        r#"local time = require("time")
        return function()
            local names = {}
            for i = 1, 199 do names[i] = "a" .. i end
            local list = table.concat(names, ",")
            local make = load("local " .. list .. " = 1 return function(prev) return function() return prev, "
                .. list .. " end end", "u", "t", {})()
            local head
            for round = 1, 1000 do
                for _ = 1, 1000 do head = make(head) end
                time.sleep("1ms")
            end
        end"#,
    );
}

/// Compiling takes time: runs `source` with a budget its compiles fit in,
/// so that the memory limit is what ends it.
fn out_of_its_own_memory_compiling(source: &str) {
    let limits = HostLimits {
        cpu_budget: Some(std::time::Duration::from_secs(10)),
        ..harness::limits()
    };
    let app = app().limits(limits).entry("h:attacker", source);
    let out = attack(app, "h:attacker", Vec::new());
    out.assert_ended(ErrorKind::RateLimited, "memory_per_process");
}

#[test]
fn big_constants_in_loaded_functions() {
    out_of_its_own_memory_compiling(
        r#"local time = require("time")
        return function()
            local keep = {}
            for round = 1, 300 do
                local f = load("return function() return '" .. string.rep("k", 1000000) .. round .. "' end",
                    "c", "t", {})
                keep[round] = f()
                time.sleep("1ms")
            end
        end"#,
    );
}

#[test]
fn big_code_in_loaded_functions() {
    out_of_its_own_memory_compiling(
        r#"local time = require("time")
        return function()
            local keep = {}
            local body = string.rep("a = a + 1 ", 100000)
            for round = 1, 400 do
                keep[round] = load("local a = " .. round .. " " .. body, "c", "t", {})
                time.sleep("1ms")
            end
        end"#,
    );
}

#[test]
fn one_long_string_held_many_times_is_counted_once() {
    // The other side: a string shared by 100,000 slots is one allocation,
    // and the process is well within its limit. Its garbage (20 MB of
    // strings made and dropped) pushes its charge past the limit, so it is
    // measured, several times.
    let out = lua(
        r#"return function()
            local s, t = string.rep("s", 100000), {}
            for i = 1, 100000 do t[i] = s end
            for i = 1, 2000 do local g = string.rep("g", 10000) .. i end
            return tostring(#t)
        end"#,
        Vec::new(),
    );
    assert_eq!(out.value(), "100000");
}

//! Memory a process holds where the per-process measurement used to miss
//! it, and memory in flight between processes (class 6 of the security
//! model). Data reachable only through kernel objects the process holds —
//! a `coroutine.wrap` function's coroutine, a channel case's value, a
//! timer — is counted as the process's; messages queued for a process
//! count against the sending host's `memory_total` until they are
//! delivered (the sender gets a retryable `RATE_LIMITED` past it), and
//! against the receiver once they are.

use warren_core::{ErrorKind, HostLimits};

use crate::harness::{self, app, attack_on, lua};

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

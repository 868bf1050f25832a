//! Class: a process ended while kernel code is on its stack. The kernel's
//! Lua (mailboxes, channels, the run queue, spawns, timers) runs inside
//! the calling process's resume; a process can be ended at any instruction
//! by its `cpu_budget`, the stuck limit or its memory limit. Spending the
//! budget on kernel calls makes that instruction almost always a kernel
//! one: an error raised there would leave the kernel's shared tables half
//! updated (a run-queue slot counted but not filled), and the next process
//! the worker resumed would break the whole VM. What is guaranteed: the
//! attacker ends with its own error, and its neighbour and the runtime go
//! on.

use warren_core::ErrorKind;

use crate::harness::{Outcome, app, attack, lua};

/// The attack was ended by its cpu budget; the neighbour ticked meanwhile
/// and after, and the runtime still starts processes.
fn ended_by_the_budget(out: &Outcome) {
    out.assert_ended(ErrorKind::RateLimited, "cpu budget exceeded");
    out.assert_progress_during(5);
}

/// [`ended_by_the_budget`] for the Lua script `source`.
fn ended_cleanly(source: &str) {
    ended_by_the_budget(&lua(source, Vec::new()));
}

/// The attack was ended by a limit (memory or budget, whichever came
/// first); the neighbour ticks after it.
fn ended_by_a_limit(out: &Outcome) {
    assert_eq!(out.error().kind, ErrorKind::RateLimited, "{out:?}");
    out.assert_neighbour_ticks();
}

/// A child that takes whatever it is sent.
const SINK: &str =
    r#"return function() local inbox = process.inbox() while true do inbox:receive() end end"#;

#[test]
fn sending_to_its_own_waiting_child_until_the_budget_ends_it() {
    // Each send wakes the child or queues into its inbox (until the
    // mailbox is full; then each is refused with an error built by the
    // kernel): the run queue and another process's mailbox are updated
    // inside the attacker's resume.
    let attacker = r#"return function()
            local child = process.spawn("h:sink", "test:host")
            while true do process.send(child, "t", { 1, 2, 3 }) end
        end"#;
    let app = app().entry("h:sink", SINK).entry("h:attacker", attacker);
    ended_by_the_budget(&attack(app, "h:attacker", Vec::new()));
}

#[test]
fn spawning_coroutines_until_a_limit_ends_it() {
    // Every coroutine.spawn puts a record on the worker's run queue, none
    // runs before the attacker yields: the memory limit (or the budget)
    // ends it, most likely inside the kernel's spawn.
    let out = lua(
        r#"return function()
            while true do coroutine.spawn(function() end) end
        end"#,
        Vec::new(),
    );
    ended_by_a_limit(&out);
}

#[test]
fn spawning_coroutines_that_hold_memory_until_the_memory_limit_ends_it() {
    let out = lua(
        r#"return function()
            local ch = channel.new()
            while true do
                coroutine.spawn(function() local pad = { 1, 2, 3, 4, 5, 6, 7, 8 } ch:receive() end)
            end
        end"#,
        Vec::new(),
    );
    ended_by_a_limit(&out);
}

#[test]
fn passing_on_a_channel_between_coroutines_until_the_budget_ends_it() {
    ended_cleanly(
        r#"return function()
            local a, b = channel.new(), channel.new()
            coroutine.spawn(function()
                while true do b:send(a:receive()) end
            end)
            while true do
                a:send(1)
                b:receive()
            end
        end"#,
    );
}

#[test]
fn selecting_until_the_budget_ends_it() {
    ended_cleanly(
        r#"return function()
            local a, b = channel.new(4), channel.new(4)
            while true do
                a:send(1)
                channel.select({ a:case_receive(), b:case_receive() })
                b:send(2)
                channel.select({ b:case_receive(), a:case_receive() })
            end
        end"#,
    );
}

#[test]
fn spawning_children_that_end_until_the_budget_ends_it() {
    ended_cleanly(
        r#"return function()
            local events = process.events()
            while true do
                process.spawn_monitored("h:alive", "test:host")
                events:receive()
            end
        end"#,
    );
}

/// Every armed timer is held until it fires, so the memory limit may come
/// before the budget (it does since channels are native: more timers per
/// second of budget).
#[test]
fn arming_timers_until_a_limit_ends_it() {
    let out = lua(
        r#"local time = require("time")
        return function()
            while true do
                local t = time.after("1h")
                time.sleep("0s")
            end
        end"#,
        Vec::new(),
    );
    ended_by_a_limit(&out);
    out.assert_progress_during(5);
}

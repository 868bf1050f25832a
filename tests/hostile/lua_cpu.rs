//! Lua code that never blocks: loops in every place Lua code can run.
//! Each is ended by the host's `cpu_budget` (300 ms here) or, where it
//! cannot be preempted at all, by the stuck limit; its neighbour ticks.

use std::time::Duration;

use warren_core::{ErrorKind, HostLimits};

use crate::harness::{self, Outcome, app, attack, lua};

fn killed_by_budget(source: &str) {
    killed_by_budget_ticking(source, 5);
}

/// [`killed_by_budget`], the neighbour ticking at least `ticks` times
/// meanwhile.
fn killed_by_budget_ticking(source: &str, ticks: i64) {
    let out = lua(source, Vec::new());
    out.assert_ended(ErrorKind::RateLimited, "cpu budget exceeded");
    out.assert_progress_during(ticks);
}

#[test]
fn plain_infinite_loop() {
    killed_by_budget("return function() while true do end end");
}

#[test]
fn infinite_loop_inside_pcall() {
    killed_by_budget("return function() pcall(function() while true do end end) end");
}

#[test]
fn the_budget_error_cannot_be_caught_and_retried() {
    killed_by_budget(
        r#"return function()
            while true do pcall(function() while true do end end) end
        end"#,
    );
}

#[test]
fn infinite_loop_in_xpcall_with_a_swallowing_handler() {
    killed_by_budget(
        r#"return function()
            while true do xpcall(function() while true do end end, function() return "no" end) end
        end"#,
    );
}

#[test]
fn the_budget_error_after_a_wait_cannot_be_caught() {
    // The callee waits first, so the error comes back through the
    // protected call's continuation.
    killed_by_budget(
        r#"local time = require("time")
        return function()
            while true do
                pcall(function() time.sleep("1ms") while true do end end)
            end
        end"#,
    );
}

#[test]
fn the_budget_error_cannot_be_caught_by_nested_protected_calls() {
    killed_by_budget(
        r#"return function()
            local spin = function() while true do end end
            while true do xpcall(pcall, function() return "no" end, pcall, spin) end
        end"#,
    );
}

#[test]
fn infinite_loop_inside_a_wrapped_coroutine() {
    killed_by_budget(
        r#"return function()
            local co = coroutine.wrap(function() while true do end end)
            co()
        end"#,
    );
}

#[test]
fn infinite_tail_recursion() {
    killed_by_budget("return function() local function f() return f() end return f() end");
}

#[test]
fn busy_spawned_coroutines() {
    killed_by_budget(
        r#"return function()
            for _ = 1, 10 do coroutine.spawn(function() while true do end end) end
            while true do end
        end"#,
    );
}

/// Many runnable coroutines of one process share its slice: each got a
/// slice of its own in a row (a preempted one went back on the queue and
/// the next began afresh), so the neighbour waited one slice per
/// coroutine: 2,000 looping coroutines held a worker 11.6 s under the
/// default 5 ms slice, 20,000 short ones 40 s (quota/turn.rs).
#[test]
fn many_busy_coroutines_share_their_process_slice() {
    // 300 ms of the attacker at 2 ms a turn: a neighbour's tick after
    // each turn (about 150), where one slice per coroutine let it tick
    // once in 600 ms.
    killed_by_budget_ticking(
        r#"return function()
            for _ = 1, 300 do coroutine.spawn(function() while true do end end) end
            while true do end
        end"#,
        30,
    );
}

/// The same with coroutines that each run briefly and end, woken all at
/// once: a batch of short runs was as long as all of them together.
#[test]
fn a_mass_wake_up_of_one_process_shares_its_slice() {
    killed_by_budget_ticking(
        r#"return function()
            local ch = channel.new()
            for _ = 1, 3000 do
                coroutine.spawn(function()
                    ch:receive()
                    local x = 0
                    for j = 1, 100000 do x = x + j end
                end)
            end
            ch:close()
            while true do end
        end"#,
        30,
    );
}

/// An error's traceback is the process's to rewrite, and
/// `errors.call_stack` parses it in kernel code no preemption reaches:
/// 100,000 newlines before a long line held the worker 490 ms (a quadratic
/// match) until the process was ended as stuck. It reads the first 64 KiB,
/// line by line.
#[test]
fn a_rewritten_traceback_is_parsed_in_bounded_time() {
    let out = lua(
        r#"return function()
            local e = errors.new("x")
            rawset(e, "_stack", ("\n"):rep(100000) .. ("a"):rep(100000))
            local none = #errors.call_stack(e).frames
            rawset(e, "_stack", ("\n\ta.lua:1: in x"):rep(100000))
            local frames = errors.call_stack(e).frames
            return none .. " " .. tostring(#frames > 4000 and #frames < 5000)
                .. " " .. frames[1].source .. ":" .. frames[1].line
        end"#,
        Vec::new(),
    );
    assert_eq!(out.value(), "0 true a.lua:1");
    out.assert_neighbour_ticks();
}

/// Coroutines of one process that hand work to each other forever: each
/// hop is a new resume of the same process, which the kernel runs in one
/// account (a span of its resumes, see guest-lua/src/step.rs); the span
/// is still one run for the slice, the budget and the neighbour.
#[test]
fn coroutines_ping_ponging_forever() {
    killed_by_budget(
        r#"return function()
            local ping, pong = channel.new(), channel.new()
            coroutine.spawn(function() while true do pong:send(ping:receive()) end end)
            local i = 0
            while true do i = i + 1; ping:send(i); pong:receive() end
        end"#,
    );
}

/// Two processes of one VM whose coroutines ping-pong forever, their
/// wake-ups interleaved: each resume's account is closed when the other
/// process's comes (the budget's verdict answered then, for a process
/// whose next wake-up was already taken and is put back).
#[test]
fn two_processes_of_ping_ponging_coroutines_interleaved() {
    let forever = r#"local function forever()
            local ping, pong = channel.new(), channel.new()
            coroutine.spawn(function() while true do pong:send(ping:receive()) end end)
            local i = 0
            while true do i = i + 1; ping:send(i); pong:receive() end
        end"#;
    let out = attack(
        app()
            .entry("h:twin", &format!("{forever}\nreturn forever"))
            .entry(
                "h:attacker",
                &format!(
                    r#"{forever}
                    return function()
                        process.spawn("h:twin", "test:host")
                        forever()
                    end"#
                ),
            ),
        "h:attacker",
        Vec::new(),
    );
    out.assert_ended(ErrorKind::RateLimited, "cpu budget exceeded");
    out.assert_progress_during(5);
}

#[test]
fn a_ring_of_coroutines_passing_a_token_forever() {
    killed_by_budget(
        r#"return function()
            local chans = {}
            for i = 1, 16 do chans[i] = channel.new() end
            for i = 1, 16 do
                local from, to = chans[i], chans[i % 16 + 1]
                coroutine.spawn(function() while true do to:send(from:receive() + 1) end end)
            end
            chans[1]:send(0)
            channel.new():receive() -- the main coroutine waits for good
        end"#,
    );
}

#[test]
fn ping_pong_with_work_at_every_hop() {
    killed_by_budget(
        r#"return function()
            local ping, pong = channel.new(), channel.new()
            local function work(v) for _ = 1, 20000 do v = (v * 7 + 1) % 1000003 end return v end
            coroutine.spawn(function() while true do pong:send(work(ping:receive())) end end)
            local v = 1
            while true do ping:send(work(v)); v = pong:receive() end
        end"#,
    );
}

#[test]
fn coroutines_waking_each_other_through_a_buffered_channel_and_select() {
    killed_by_budget(
        r#"return function()
            local a, b = channel.new(1), channel.new(1)
            coroutine.spawn(function()
                while true do
                    local r = channel.select({ a:case_receive(), b:case_receive() })
                    b:send(r.value)
                end
            end)
            local n = 0
            while true do a:send(n); n = b:receive() + 1 end
        end"#,
    );
}

/// Code called from C cannot yield: the loop runs until the stuck limit.
fn stuck(source: &str) {
    let out = lua(source, Vec::new());
    let err = out.error();
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err}");
    assert!(
        err.message.contains("could be preempted") || err.message.contains("cpu budget"),
        "{err}"
    );
    out.assert_neighbour_ticks();
}

#[test]
fn infinite_loop_in_a_sort_comparator() {
    stuck(
        r#"return function()
            table.sort({ 3, 2, 1 }, function(a, b) while true do end end)
        end"#,
    );
}

#[test]
fn infinite_loop_in_a_coroutine_resumed_from_a_sort_comparator() {
    // The coroutine itself can be preempted, but its resumer (inside the
    // comparator) cannot pass that up: it must carry on, not fail with
    // "attempt to yield across a C-call boundary".
    stuck(
        r#"return function()
            table.sort({ 3, 2, 1 }, function(a, b)
                coroutine.wrap(function() while true do end end)()
                return a < b
            end)
        end"#,
    );
}

#[test]
fn infinite_loop_in_a_tostring_metamethod() {
    stuck(
        r#"return function()
            return tostring(setmetatable({}, { __tostring = function() while true do end end }))
        end"#,
    );
}

#[test]
fn infinite_loop_in_a_gsub_callback() {
    stuck(
        r#"return function()
            return (string.gsub("abc", "%w", function() while true do end end))
        end"#,
    );
}

// An `xpcall` message handler that loops. The error that ends a stuck or
// over-budget process is raised from the count hook, where Lua runs no
// hook until the throw reaches a protected call: had it run the handler
// there (as `lua_error` does), the handler's loop could never be stopped
// and held its worker for good. It runs no handler (`warren_fatalerror`).

#[test]
fn an_xpcall_handler_that_loops_after_an_error() {
    stuck(
        r#"return function()
            xpcall(function() error("x") end, function() while true do end end)
        end"#,
    );
}

#[test]
fn an_xpcall_handler_that_loops_after_the_budget_error() {
    killed_by_budget(
        r#"return function()
            local spin = function() while true do end end
            while true do xpcall(spin, spin) end
        end"#,
    );
}

#[test]
fn nested_xpcall_handlers_that_loop() {
    stuck(
        r#"return function()
            local spin = function() while true do end end
            xpcall(function() xpcall(function() error("x") end, spin) end, spin)
        end"#,
    );
}

#[test]
fn an_xpcall_handler_that_loops_in_a_wrapped_coroutine() {
    stuck(
        r#"return function()
            coroutine.wrap(function()
                xpcall(function() error("x") end, function() while true do end end)
            end)()
        end"#,
    );
}

#[test]
fn an_xpcall_handler_that_loops_after_a_stuck_sort_comparator() {
    stuck(
        r#"return function()
            local spin = function() while true do end end
            xpcall(table.sort, spin, { 3, 2, 1 }, spin)
        end"#,
    );
}

#[test]
fn an_xpcall_handler_that_loops_after_a_stuck_pattern_match() {
    // The match is a C loop (polled, not hooked): its stuck error is raised
    // from the poll; the handler's loop is then stopped by the hook.
    stuck(
        r#"return function()
            local s = string.rep("a", 40)
            xpcall(string.find, function() while true do end end, s, string.rep("a*", 20) .. "b")
        end"#,
    );
}

// `coroutine.close` runs the coroutine's pending `__close` handlers on its
// own thread. Lua's own `close` left the hook to be armed on its caller,
// so a handler that looped there could never be stopped (the worker hung
// for good); the kernel's tracks the coroutine as the running one.

#[test]
fn a_close_handler_that_loops_when_its_coroutine_is_closed() {
    stuck(
        r#"return function()
            local co = coroutine.create(function()
                local x <close> = setmetatable({}, { __close = function() while true do end end })
                coroutine.yield()
            end)
            coroutine.resume(co)
            coroutine.close(co)
        end"#,
    );
}

#[test]
fn a_close_handler_that_loops_cannot_be_swallowed_by_pcall() {
    stuck(
        r#"return function()
            local spin = function() while true do end end
            while true do
                local co = coroutine.create(function()
                    local x <close> = setmetatable({}, { __close = spin })
                    coroutine.yield()
                end)
                coroutine.resume(co)
                pcall(coroutine.close, co)
            end
        end"#,
    );
}

#[test]
fn close_handlers_that_loop_in_nested_closes() {
    stuck(
        r#"return function()
            local function closer(inner)
                return setmetatable({}, { __close = function()
                    if inner then coroutine.close(inner) end
                    while true do end
                end })
            end
            local inner = coroutine.create(function() local x <close> = closer(nil) coroutine.yield() end)
            coroutine.resume(inner)
            local outer = coroutine.create(function() local x <close> = closer(inner) coroutine.yield() end)
            coroutine.resume(outer)
            coroutine.close(outer)
        end"#,
    );
}

#[test]
fn a_close_handler_that_loops_in_a_dead_coroutine() {
    // The coroutine died by an error with a variable still to close: a
    // close of the dead coroutine runs it.
    stuck(
        r#"return function()
            local co = coroutine.create(function()
                local x <close> = setmetatable({}, { __close = function() while true do end end })
                coroutine.yield()
                error("dies")
            end)
            coroutine.resume(co)
            coroutine.resume(co)
            coroutine.close(co)
        end"#,
    );
}

#[test]
fn deep_recursion_ends_with_a_stack_overflow_or_the_memory_limit() {
    let out = lua(
        "return function() local function f(n) return 1 + f(n + 1) end return f(1) end",
        Vec::new(),
    );
    // Whichever comes first: Lua's stack limit or the memory the stack takes.
    let message = &out.error().message;
    assert!(
        message.contains("stack overflow") || message.contains("memory limit exceeded"),
        "{out:?}"
    );
    out.assert_neighbour_ticks();
}

#[test]
fn the_hosts_cpu_slice_decides_how_long_a_loop_keeps_its_worker() {
    // With a 10 s slice the loop is never preempted before its 300 ms
    // budget ends it: the neighbour cannot tick meanwhile. (With the
    // default slice it ticks dozens of times; see plain_infinite_loop.)
    let limits = HostLimits {
        cpu_slice: Duration::from_secs(10),
        ..harness::limits()
    };
    let app = app()
        .limits(limits)
        .entry("h:attacker", "return function() while true do end end");
    let out = attack(app, "h:attacker", Vec::new());
    out.assert_ended(ErrorKind::RateLimited, "cpu budget exceeded");
    assert!(
        out.during <= 1,
        "the neighbour ran inside a 10 s slice: {out:?}"
    );
}

// ---------------------------------------------------------------------------
// Loops over long host calls: hashing, encoding, key derivation
// ---------------------------------------------------------------------------

/// The harness's limits with room for 16 MiB strings and no cpu budget, so
/// that only preemption (or the stuck-code guard) can end a long loop.
pub(crate) fn roomy() -> HostLimits {
    HostLimits {
        memory_per_process: 96 << 20,
        memory_total: 512 << 20,
        cpu_budget: None,
        ..harness::limits()
    }
}

/// Runs `call` (an expression over the 16 MiB string `s` and the data
/// modules) in a loop for 600 ms of the process's CPU. Each call takes
/// milliseconds of host code with a few instructions between two: the
/// loop must be preempted between calls (it returns its count, and the
/// neighbour ticks meanwhile), not ended as stuck.
fn preempted_between_host_calls(call: &str) -> (Outcome, i64) {
    crate::c_call_loops::preempted_between_calls(
        r#"local hash, base64, crypto = require("hash"), require("base64"), require("crypto")
        local s = string.rep("s", 16 * 1024 * 1024)"#,
        call,
    )
}

#[test]
fn a_loop_of_sha512_over_16_mib_is_preempted_not_ended() {
    preempted_between_host_calls("hash.sha512(s)");
}

#[test]
fn a_timer_due_during_a_long_call_runs_before_the_callers_next_slice() {
    // Each sha512 of 16 MiB (tens of ms) outlasts the 2 ms slice, so the
    // loop is preempted after every call, and the neighbour's 1 ms timer
    // is due by then: it must tick before the loop's next slice. A
    // preempted process queued at once went ahead of the timer the worker
    // fired next, and the neighbour ticked once per two calls (9 ticks in
    // 16 calls), too few on a loaded machine where each call took longer.
    let (out, calls) = preempted_between_host_calls("hash.sha512(s)");
    assert!(
        4 * out.during >= 3 * calls,
        "{} ticks in {calls} calls: {out:?}",
        out.during
    );
}

#[test]
fn a_loop_of_md5_over_16_mib_is_preempted_not_ended() {
    preempted_between_host_calls("hash.md5(s)");
}

#[test]
fn a_loop_of_hmacs_over_16_mib_is_preempted_not_ended() {
    preempted_between_host_calls(r#"crypto.hmac.sha256("key", s)"#);
}

#[test]
fn a_loop_of_base64_over_16_mib_is_preempted_not_ended() {
    preempted_between_host_calls("base64.encode(s)");
}

#[test]
fn a_for_loop_of_hashes_without_other_calls_is_preempted_not_ended() {
    // The tightest loop: five instructions between two 30 ms calls.
    crate::c_call_loops::tight_loop_runs_to_its_end(
        r#"local hash = require("hash")
        return function()
            local s = string.rep("s", 16 * 1024 * 1024)
            for _ = 1, 25 do hash.sha512(s) end
            return "done"
        end"#,
    );
}

#[test]
fn pbkdf2_counts_the_salt_it_hashes_once_per_block() {
    // A 16 MiB salt with one iteration held the worker 525 ms in one call.
    let source = r#"local crypto = require("crypto")
        return function()
            local salt = string.rep("s", 16 * 1024 * 1024)
            local key, err = crypto.pbkdf2("pw", salt, 1, 1024, "sha512")
            local small = crypto.pbkdf2("pw", "salty", 1000, 64, "sha512")
            return tostring(key) .. " " .. err:kind() .. " " .. err:message()
                .. " " .. #small
        end"#;
    let app = app().limits(roomy()).entry("h:attacker", source);
    let out = attack(app, "h:attacker", Vec::new());
    let value = out.value();
    for fragment in [
        "nil Invalid",
        "salt of 16777216 bytes",
        "PBKDF2_MAX_WORK",
        " 64",
    ] {
        assert!(value.contains(fragment), "{fragment:?} not in {value}");
    }
    out.assert_neighbour_ticks();
}

#[test]
fn a_large_send_made_past_the_slice_is_not_ended_as_stuck() {
    // A payload past the native copy's 64 KiB goes through the kernel's
    // Lua copy, which cannot be preempted. Made after the sender's slice
    // ran out, the preemption hook looked at every return inside that
    // copy (four a value), each reading the clock and walking the stack:
    // a valid send of 100,000 values (900 KB, under the 1 MiB
    // max_message_bytes) took 330 ms instead of 6, its neighbour waited
    // as long, and the sender was ended as stuck. Each shape: an array,
    // a map, an array of small tables.
    for shape in [
        "t[i] = 1",
        "if i <= 40000 then t[\"k\" .. i] = i end",
        "if i <= 25000 then t[i] = { i } end",
    ] {
        let source = format!(
            r#"return function()
            local t = {{}}
            for i = 1, 100000 do {shape} end
            local sink = assert(process.spawn("h:sink", "test:host"))
            local c = os.clock()
            while os.clock() - c < 0.01 do end -- past the 2 ms slice
            local ok, err = process.send(sink, "t", t)
            assert(ok, tostring(err))
            process.terminate(sink)
            return "sent"
        end"#
        );
        let limits = HostLimits {
            max_message_bytes: 1 << 20,
            cpu_budget: Some(Duration::from_secs(20)),
            ..roomy()
        };
        let app = app()
            .limits(limits)
            .entry("h:sink", "return function() process.inbox():receive() end")
            .entry("h:attacker", &source);
        let out = attack(app, "h:attacker", Vec::new());
        assert_eq!(out.value(), "sent", "{shape}");
        out.assert_neighbour_ticks();
    }
}

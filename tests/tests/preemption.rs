//! A process that runs without blocking is preempted so that its neighbours
//! on the same worker keep running: timers fire, messages flow, and the
//! spinner can still be terminated.

use warren_core::Value;
use warren_tests::*;

/// Far above a few slices, far below forever: a worker stuck in a loop
/// never gets here at all.
const FEW_SLICES_MS: i64 = 2_000;

/// Spawns `t:spin` once per mode given, sleeps 10 ms beside the spinners,
/// then terminates them all; returns how long the sleep took.
const NEIGHBOUR: &str = r#"local time = require("time")
return function(...)
    local events = process.events()
    local spinners = {}
    for i, how in ipairs({ ... }) do
        spinners[i] = process.spawn_monitored("t:spin", "test:host", how)
    end
    time.sleep("1ms") -- let them start spinning
    local t0 = time.now()
    time.sleep("10ms")
    local waited = time.now():sub(t0):milliseconds()
    for _, pid in ipairs(spinners) do process.terminate(pid) end
    for _ = 1, #spinners do
        local ev = events:receive()
        assert(tostring(ev.result.error):find("terminated"), tostring(ev.result.error))
    end
    return waited
end"#;

/// Runs [`NEIGHBOUR`] on one worker beside spinners started with `modes`:
/// its timer must fire within a few slices and every spinner be terminated.
fn assert_neighbour_runs(app: App, modes: &[&str]) {
    let args = modes.iter().map(|m| s(m)).collect();
    let v = app
        .workers(1)
        .entry("t:main", NEIGHBOUR)
        .run("t:main", args)
        .expect("main ran");
    let Value::Int(waited) = v else {
        panic!("{v:?}")
    };
    assert!(
        (10..FEW_SLICES_MS).contains(&waited),
        "timer fired after {waited} ms"
    );
}

#[test]
fn a_component_in_an_infinite_loop_is_preempted_and_a_neighbour_timer_fires() {
    let app = App::new().component("t:spin", "crasher");
    assert_neighbour_runs(app, &["spin", "spin", "spin"]);
}

#[test]
fn lua_infinite_loops_are_preempted_and_a_neighbour_timer_fires() {
    let app = App::new().entry(
        "t:spin",
        r#"return function(how)
            if how == "nested" then
                -- a loop inside a hand-driven coroutine, inside a pcall
                local co = coroutine.create(function() while true do end end)
                pcall(coroutine.resume, co)
            elseif how == "yielding" then
                -- user yields with no values must still reach the user
                local co = coroutine.wrap(function()
                    while true do coroutine.yield() end
                end)
                while true do co() end
            else
                local n = 0
                while true do n = n + 1 end
            end
        end"#,
    );
    assert_neighbour_runs(app, &["plain", "nested", "yielding"]);
}

#[test]
fn a_preempted_process_resumes_where_it_was_with_its_state_intact() {
    let v = ok(r#"return function()
        local co = coroutine.wrap(function(a)
            local b = coroutine.yield(a + 1)
            local sum = 0
            for i = 1, 3000000 do sum = sum + i end -- long enough to be preempted
            return b + sum
        end)
        local first = co(1)
        local second = co(10)
        local n = 0
        for i = 1, 3000000 do n = n + 1 end
        return { first, second, n }
    end"#);
    assert_eq!(
        v,
        Value::Array(vec![
            Value::Int(2),
            Value::Int(10 + 3_000_000 * 3_000_001 / 2),
            Value::Int(3_000_000)
        ])
    );
}

/// Coroutines of one process that always have one of them ready (a
/// ping-pong on unbuffered channels, a crowd on a one-slot buffer, a
/// select) never run long enough in one resume to be preempted: only the
/// front-end's run budget gives the worker back, for its timers and its
/// queue (the terminations), however the wake-ups are batched.
#[test]
fn coroutines_that_always_have_one_ready_leave_the_worker_to_its_neighbours() {
    let app = App::new().entry(
        "t:spin",
        r#"return function(how)
            local ping, pong = channel.new(how == "crowd" and 1 or 0), channel.new()
            if how == "crowd" then
                for _ = 1, 8 do
                    coroutine.spawn(function() while true do ping:send(ping:receive()) end end)
                end
                ping:send(1)
                while true do ping:send(ping:receive()) end
            end
            coroutine.spawn(function()
                while true do
                    if how == "select" then
                        local r = channel.select({ ping:case_receive() })
                        channel.select({ pong:case_send(r.value) })
                    else
                        pong:send(ping:receive())
                    end
                end
            end)
            local i = 0
            while true do
                i = i + 1
                ping:send(i)
                pong:receive()
            end
        end"#,
    );
    assert_neighbour_runs(app, &["pingpong", "crowd", "select"]);
}

//! User code the kernel could be tricked into running where no limit
//! applies: an error value's `__tostring`, a pending `<close>` variable's
//! `__close`, a yielded or sent value's `__eq`.
//!
//! Guaranteed: the kernel never triggers a metamethod of a user value.
//! An error value that is a table (not an `errors` object) becomes text
//! inside the failing process's own coroutine, preemptible and under its
//! limits; a `__tostring` that fails or returns no string gives
//! "(table value)", a long one is cut at 16384 bytes, and the exit still
//! completes (monitors hear it, names are released). Coroutines still
//! suspended when a process ends (return, error, limits, deadlock,
//! terminate, upgrade) are dropped, never closed: their `__close` never
//! runs. Values are compared with the kernel's tokens with `rawequal` only.

use warren_core::{ErrorKind, Value};
use warren_tests::run_on;

use crate::harness::{app, attack, attack_on, lua};

/// Ends with the cpu budget while the neighbour keeps ticking.
fn budget(source: &str) {
    let out = lua(source, Vec::new());
    out.assert_ended(ErrorKind::RateLimited, "cpu budget exceeded");
    out.assert_progress_during(20);
}

/// Ends with the memory limit.
fn memory(source: &str) {
    let out = lua(source, Vec::new());
    out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
}

/// Ends by its memory limit or, when the collector thrashes near that
/// limit (garbage freed at each emergency collection lets it go on a
/// little), by its CPU budget: either way by its own limits.
fn memory_or_budget(source: &str) {
    let out = lua(source, Vec::new());
    let err = out.error();
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err}");
    assert!(
        err.message.contains("memory limit exceeded")
            || err.message.contains("cpu budget exceeded"),
        "{err}"
    );
    out.assert_neighbour_ticks();
}

/// Fails with kind UNKNOWN and exactly `message`.
fn fails_with(source: &str, message: &str) {
    let out = lua(source, Vec::new());
    let err = out.error();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ErrorKind::Unknown, message)
    );
    out.assert_neighbour_ticks();
}

/// An error value whose `__tostring` never returns.
const SPIN: &str = "setmetatable({}, { __tostring = function() while true do end end })";

#[test]
fn tostring_of_an_error_raised_by_main_runs_under_the_budget() {
    budget(&format!("return function() error({SPIN}) end"));
}

#[test]
fn tostring_of_an_error_returned_by_main_runs_under_the_budget() {
    budget(&format!("return function() return nil, {SPIN} end"));
}

#[test]
fn tostring_of_an_error_in_a_spawned_coroutine_runs_under_the_budget() {
    budget(&format!(
        "return function()
            coroutine.spawn(function() error({SPIN}) end)
            process.inbox():receive()
        end"
    ));
}

#[test]
fn tostring_of_an_error_through_a_wrapped_coroutine_runs_under_the_budget() {
    budget(&format!(
        "return function() coroutine.wrap(function() error({SPIN}) end)() end"
    ));
}

#[test]
fn tostring_of_an_error_raised_by_the_chunk_runs_under_the_budget() {
    budget(&format!("error({SPIN})\nreturn function() end"));
}

#[test]
fn tostring_run_by_print_runs_under_the_budget() {
    budget(&format!("return function() print({SPIN}) end"));
}

#[test]
fn tostring_run_by_errors_new_and_wrap_runs_under_the_budget() {
    budget(&format!(
        "return function() errors.new({{ message = {SPIN} }}) end"
    ));
    budget(&format!("return function() errors.wrap('e', {SPIN}) end"));
}

#[test]
fn tostring_that_fills_a_table_hits_the_memory_limit() {
    memory_or_budget(
        r#"return function()
            error(setmetatable({}, { __tostring = function()
                local t = {}
                for i = 1, math.maxinteger do t[i] = ("x"):rep(64) .. i end
            end }))
        end"#,
    );
}

#[test]
fn tostring_that_doubles_a_string_hits_the_memory_limit() {
    memory(
        r#"return function()
            return nil, setmetatable({}, { __tostring = function()
                local s = "x"
                while true do s = s .. s end
            end })
        end"#,
    );
}

#[test]
fn a_tostring_that_returns_text_names_the_error() {
    fails_with(
        r#"return function()
            error(setmetatable({}, { __tostring = function() return "custom text" end }))
        end"#,
        "custom text",
    );
}

#[test]
fn a_tostring_that_raises_gives_table_value() {
    fails_with(
        r#"return function()
            error(setmetatable({}, { __tostring = function() error("inner") end }))
        end"#,
        "(table value)",
    );
}

#[test]
fn a_tostring_that_raises_a_looping_table_gives_table_value() {
    fails_with(
        &format!(
            "return function()
                error(setmetatable({{}}, {{ __tostring = function() error({SPIN}) end }}))
            end"
        ),
        "(table value)",
    );
}

#[test]
fn a_tostring_that_returns_a_number_gives_table_value() {
    fails_with(
        r#"return function()
            error(setmetatable({}, { __tostring = function() return 42 end }))
        end"#,
        "(table value)",
    );
}

#[test]
fn a_tostring_that_returns_a_table_gives_table_value() {
    fails_with(
        &format!(
            "return function()
                return nil, setmetatable({{}}, {{ __tostring = function() return {SPIN} end }})
            end"
        ),
        "(table value)",
    );
}

#[test]
fn a_callable_table_as_tostring_is_not_called() {
    fails_with(
        r#"return function()
            local call = setmetatable({}, { __call = function() while true do end end })
            error(setmetatable({}, { __tostring = call }))
        end"#,
        "(table value)",
    );
}

#[test]
fn a_megabyte_tostring_is_cut_at_16_kib() {
    let out = lua(
        r#"return function()
            error(setmetatable({}, { __tostring = function() return ("a"):rep(1 << 20) end }))
        end"#,
        Vec::new(),
    );
    let err = out.error();
    assert_eq!(err.kind, ErrorKind::Unknown, "{err}");
    assert_eq!(err.message, "a".repeat(16384));
    out.assert_neighbour_ticks();
}

/// Registers "victim-name", then fails with a `__tostring` that raises.
const NAMED_FAILER: &str = r#"return function()
    assert(process.registry.register("victim-name"))
    error(setmetatable({}, { __tostring = function() error("no text") end }))
end"#;

/// Takes the name the failer held.
const CLAIMER: &str = r#"return function()
    local ok, err = process.registry.register("victim-name")
    return ok and "registered" or err:message()
end"#;

#[test]
fn a_failing_tostring_still_completes_the_exit() {
    let runtime = app()
        .entry("h:attacker", NAMED_FAILER)
        .entry("h:claimer", CLAIMER)
        .start();
    // The judge monitors the attacker: it heard the exit.
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    let err = out.error();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ErrorKind::Unknown, "(table value)")
    );
    out.assert_neighbour_ticks();
    let claimed = run_on(&runtime, "h:claimer", Vec::new());
    assert_eq!(claimed, Ok(Value::str("registered")), "the name was kept");
}

/// The attacker: starts `h:child` (its pid as argument) monitored,
/// terminates it once it says "ready" if asked to, and reports how it
/// ended and the topics it sent (a `__close` that ran sends "closed").
const PARENT: &str = r#"return function(terminate)
    local child = process.spawn_monitored("h:child", "test:host", process.pid())
    local inbox, events = process.inbox(), process.events()
    if terminate then
        assert(inbox:receive():topic() == "ready")
        assert(process.terminate(child))
    end
    local res = events:receive().result
    local heard = {}
    while true do
        local r = channel.select({ inbox:case_receive(), default = true })
        if r.default then break end
        heard[#heard + 1] = r.value:topic()
    end
    local how = res.error and (res.error:kind() .. ": " .. res.error:message())
        or ("value: " .. tostring(res.value))
    return how .. " | heard: " .. table.concat(heard, ",")
end"#;

/// Prepended to every child: `closer(parent, evil)` is a value whose
/// `__close` runs `evil`, then sends "closed" to `parent`.
const CLOSER: &str = r#"
local function closer(parent, evil)
    return setmetatable({}, { __close = function()
        evil()
        process.send(parent, "closed")
    end })
end
local function spin() while true do end end
local function gig() local s = ("x"):rep(1 << 30) end
local function nothing() end
"#;

/// Runs `child` under [`PARENT`]; returns its report.
fn child_report(child: &str, terminate: bool) -> String {
    let app = app()
        .entry("h:attacker", PARENT)
        .entry("h:child", &format!("{CLOSER}{child}"))
        .entry("h:after", AFTER);
    let out = attack(app, "h:attacker", vec![Value::Bool(terminate)]);
    out.assert_neighbour_ticks();
    out.value()
}

/// A spawned coroutine blocks with `evil` pending while main returns.
fn pending_when_main_returns(evil: &str) -> String {
    child_report(
        &format!(
            "return function(parent)
                local ready = channel.new(1)
                coroutine.spawn(function()
                    local x <close> = closer(parent, {evil})
                    ready:send(true)
                    channel.new():receive()
                end)
                ready:receive()
                return 'done'
            end"
        ),
        false,
    )
}

#[test]
fn close_that_loops_does_not_run_when_main_returns() {
    assert_eq!(pending_when_main_returns("spin"), "value: done | heard: ");
}

#[test]
fn close_that_allocates_a_gigabyte_does_not_run_when_main_returns() {
    assert_eq!(pending_when_main_returns("gig"), "value: done | heard: ");
}

#[test]
fn close_that_sends_does_not_run_when_main_returns() {
    assert_eq!(
        pending_when_main_returns("nothing"),
        "value: done | heard: "
    );
}

#[test]
fn close_does_not_run_when_main_fails() {
    let report = child_report(
        "return function(parent)
            local ready = channel.new(1)
            coroutine.spawn(function()
                local x <close> = closer(parent, spin)
                ready:send(true)
                channel.new():receive()
            end)
            ready:receive()
            error('main failed', 0)
        end",
        false,
    );
    assert_eq!(report, ": main failed | heard: ");
}

#[test]
fn close_does_not_run_when_the_budget_ends_the_process() {
    let report = child_report(
        "return function(parent)
            local ready = channel.new(1)
            coroutine.spawn(function()
                local x <close> = closer(parent, nothing)
                ready:send(true)
                channel.new():receive()
            end)
            ready:receive()
            while true do end
        end",
        false,
    );
    let (how, heard) = report.split_once(" | ").expect("a report");
    assert!(how.starts_with("RateLimited: cpu budget exceeded"), "{how}");
    assert_eq!(heard, "heard: ");
}

#[test]
fn close_of_main_does_not_run_when_it_is_terminated() {
    let report = child_report(
        "return function(parent)
            local x <close> = closer(parent, spin)
            process.send(parent, 'ready')
            process.inbox():receive()
        end",
        true,
    );
    assert_eq!(report, "Canceled: terminated | heard: ");
}

#[test]
fn close_does_not_run_on_deadlock() {
    let report = child_report(
        "return function(parent)
            coroutine.spawn(function()
                local x <close> = closer(parent, spin)
                channel.new():receive()
            end)
            local y <close> = closer(parent, nothing)
            channel.new():receive()
        end",
        false,
    );
    assert_eq!(
        report,
        "Internal: deadlock: every coroutine waits on a channel nothing can send to | heard: "
    );
}

/// The code a child upgrades to: says "upgraded", returns "after".
const AFTER: &str = r#"return function(parent)
    process.send(parent, "upgraded")
    return "after"
end"#;

#[test]
fn close_of_the_old_code_does_not_run_on_upgrade() {
    let report = child_report(
        "return function(parent)
            local ready = channel.new(1)
            coroutine.spawn(function()
                local x <close> = closer(parent, nothing)
                ready:send(true)
                channel.new():receive()
            end)
            local y <close> = closer(parent, spin)
            ready:receive()
            process.upgrade('h:after', parent)
        end",
        false,
    );
    assert_eq!(report, "value: after | heard: upgraded");
}

/// A table whose `__eq` records that it ran.
const EQ: &str = r#"
local ran = false
local function eq(a, b) ran = true return true end
local t = setmetatable({}, { __eq = eq })
"#;

#[test]
fn a_value_yielded_by_main_is_not_compared_with_eq() {
    let out = lua(
        &format!("{EQ} return function() coroutine.yield(t) end"),
        Vec::new(),
    );
    out.assert_ended(
        ErrorKind::Invalid,
        "attempt to yield from outside a coroutine",
    );
}

/// Builds `big`, an array of 100,000 values, the first one "first" (far
/// more values than a C function's stack holds without growing).
const BIG: &str = r#"
local big = { "first" }
for i = 2, 100000 do big[i] = i end
"#;

#[test]
fn main_yielding_a_huge_number_of_values_ends_invalid() {
    // The kernel's resume keeps three results and drops the rest.
    let out = lua(
        &format!("return function() {BIG} coroutine.yield(table.unpack(big)) end"),
        Vec::new(),
    );
    out.assert_ended(
        ErrorKind::Invalid,
        "attempt to yield from outside a coroutine",
    );
}

#[test]
fn main_returning_a_huge_number_of_values_ends_with_the_first() {
    let out = lua(
        &format!("return function() {BIG} return table.unpack(big) end"),
        Vec::new(),
    );
    assert_eq!(out.value(), "first");
    out.assert_neighbour_ticks();
}

#[test]
fn a_spawned_coroutine_yielding_or_returning_huge_numbers_of_values_is_contained() {
    // coroutine.spawn's coroutines are resumed by the same kernel step. The
    // main waits for both and then for ever: the budget may preempt the
    // yielding coroutine between its send and its yield, so a main that
    // returned could end the process first (CI saw "ret,yield" once). The
    // process can only end through the yield's error.
    let out = lua(
        &format!(
            r#"return function() {BIG}
                local done = channel.new(2)
                coroutine.spawn(function() done:send("ret") return table.unpack(big) end)
                coroutine.spawn(function() done:send("yield") coroutine.yield(table.unpack(big)) end)
                local a, b = done:receive(), done:receive()
                channel.new():receive()
                return a .. "," .. b
            end"#
        ),
        Vec::new(),
    );
    out.assert_ended(
        ErrorKind::Invalid,
        "attempt to yield from outside a coroutine",
    );
}

#[test]
fn a_looping_eq_on_a_value_yielded_by_main_does_not_run() {
    let out = lua(
        r#"return function()
            coroutine.yield(setmetatable({}, { __eq = function() while true do end end }))
        end"#,
        Vec::new(),
    );
    out.assert_ended(
        ErrorKind::Invalid,
        "attempt to yield from outside a coroutine",
    );
}

#[test]
fn values_yielded_by_nested_coroutines_are_not_compared_with_eq() {
    let out = lua(
        &format!(
            "{EQ} return function()
                local a = coroutine.wrap(function() coroutine.yield(t) end)()
                local co = coroutine.create(function() coroutine.yield(t) return t end)
                local _, b = coroutine.resume(co)
                local _, c = coroutine.resume(co)
                return tostring(ran) .. ' ' .. tostring(rawequal(a, t) and rawequal(b, t) and rawequal(c, t))
            end"
        ),
        Vec::new(),
    );
    assert_eq!(out.value(), "false true");
    out.assert_neighbour_ticks();
}

#[test]
fn values_through_channels_and_select_are_not_compared_with_eq() {
    let out = lua(&format!("{EQ}{CHANNELS}"), Vec::new());
    assert_eq!(out.value(), "false true,true,true,true,true,true,true");
    out.assert_neighbour_ticks();
}

/// Passes `t` through every path of a channel and select; returns whether
/// `__eq` ran and, for each path, whether `t` itself came out.
const CHANNELS: &str = r#"return function()
    local same = {}
    local function check(v) same[#same + 1] = tostring(rawequal(v, t)) end
    local ready = channel.new(1)
    -- Starts a sender that already waits when main receives.
    local function waiting_sender(ch)
        coroutine.spawn(function() ready:send(true) ch:send(t) end)
        ready:receive()
    end
    local buffered, direct = channel.new(1), channel.new()
    buffered:send(t) check(buffered:receive())
    waiting_sender(direct) check(direct:receive())
    waiting_sender(direct) check(channel.select({ direct:case_receive() }).value)
    coroutine.spawn(function() direct:send(t) end) check(direct:receive())
    coroutine.spawn(function() direct:send(t) end) check(channel.select({ direct:case_receive() }).value)
    coroutine.spawn(function() check(direct:receive()) end) channel.select({ direct:case_send(t) })
    buffered:send(t) check(channel.select({ buffered:case_receive() }).value)
    return tostring(ran) .. " " .. table.concat(same, ",")
end"#;

// errors.is reads the kind raw and must compare it raw too: a rawset
// `_kind` table's __eq would run in a kernel frame, where it cannot be
// preempted (a loop there holds the worker until the stuck limit).
#[test]
fn errors_is_does_not_compare_a_forged_kind_with_eq() {
    let out = lua(
        r#"return function()
            local ran = false
            local mt = { __eq = function() ran = true return true end }
            local e = errors.new("x")
            rawset(e, "_kind", setmetatable({}, mt))
            return tostring(errors.is(e, setmetatable({}, mt))) .. " " .. tostring(ran)
        end"#,
        Vec::new(),
    );
    assert_eq!(out.value(), "false false");
    out.assert_neighbour_ticks();
}

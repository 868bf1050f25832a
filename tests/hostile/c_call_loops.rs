//! Loops over long standard-library calls: each call is milliseconds of C
//! (`string.rep` of 8 MiB, `gsub` over 2 MiB, `table.concat`, a plain
//! `find`, `json.encode` and `load`, which kernel Lua wraps), with a few
//! instructions between two. No single call reaches the stuck limit, but
//! the loop as a whole runs far past it.
//!
//! Guaranteed (guest-lua `preempt.rs`: `poll` looks at the first
//! instruction after the C call returns; `retry` follows the returns of a
//! kernel wrapper): the loop is preempted between calls and runs to its
//! end, and the neighbour on its worker keeps ticking. Before, the hook
//! looked only every few dozen instructions (a dozen calls, hundreds of
//! milliseconds) and such loops were ended as stuck after 250 ms, the
//! neighbour waiting 290 to 560 ms.

use crate::harness::{Outcome, app, attack};
use crate::lua_cpu::roomy;

/// Runs `setup` (which may require modules), then `call` in a loop for
/// 600 ms of the process's CPU, under [`roomy`] limits: it must be
/// preempted between calls (it returns its count) while the neighbour
/// ticks. Answers how it went and how many calls the loop made.
pub(crate) fn preempted_between_calls(setup: &str, call: &str) -> (Outcome, i64) {
    let source = format!(
        r#"local json = require("json")
        return function()
            {setup}
            local t0, n = os.clock(), 0
            while os.clock() - t0 < 0.6 do local _ = {call}; n = n + 1 end
            return "calls: " .. n
        end"#
    );
    let app = app().limits(roomy()).entry("h:attacker", &source);
    let out = attack(app, "h:attacker", Vec::new());
    let value = out.value();
    let calls = value.strip_prefix("calls: ").and_then(|n| n.parse().ok());
    let calls = calls.unwrap_or_else(|| panic!("{out:?}"));
    out.assert_progress_during(5);
    (out, calls)
}

#[test]
fn a_loop_of_8_mib_string_reps_is_preempted_not_ended() {
    preempted_between_calls("", r#"string.rep("x", 8 << 20)"#);
}

/// Runs `source` (a chunk whose function returns "done" after a tight
/// loop of long calls) under [`roomy`] limits: it must run to its end
/// while the neighbour ticks.
pub(crate) fn tight_loop_runs_to_its_end(source: &str) {
    let app = app().limits(roomy()).entry("h:attacker", source);
    let out = attack(app, "h:attacker", Vec::new());
    assert_eq!(out.value(), "done", "{out:?}");
    out.assert_progress_during(5);
}

#[test]
fn a_for_loop_of_string_reps_without_other_calls_is_preempted_not_ended() {
    // The tightest loop: a handful of instructions between two calls.
    tight_loop_runs_to_its_end(
        r#"return function()
            for _ = 1, 100 do string.rep("x", 8 << 20) end
            return "done"
        end"#,
    );
}

#[test]
fn a_loop_of_gsubs_over_2_mib_is_preempted_not_ended() {
    // 2 MiB: a gsub of 4 MiB took some 100 ms in the test profile on a
    // loaded machine, six calls in the 600 ms, and the neighbour a tick
    // per call, short of the five asked for.
    preempted_between_calls(r#"local s = ("ab"):rep(1 << 20)"#, r#"s:gsub("a", "c")"#);
}

#[test]
fn a_loop_of_table_concats_is_preempted_not_ended() {
    preempted_between_calls(
        r#"local parts = {} for i = 1, 4096 do parts[i] = ("y"):rep(1024) end"#,
        "table.concat(parts)",
    );
}

#[test]
fn a_loop_of_plain_finds_of_a_missing_needle_is_preempted_not_ended() {
    preempted_between_calls(r#"local s = ("a"):rep(8 << 20)"#, r#"s:find("b", 1, true)"#);
}

#[test]
fn a_loop_of_json_encodes_through_the_kernel_wrapper_is_preempted_not_ended() {
    preempted_between_calls(
        // 5,000 records: an encode is milliseconds, not the tens of
        // milliseconds 20,000 took in the test profile (the neighbour had
        // ticks enough only on an idle machine).
        r#"local t = {} for i = 1, 5000 do t[i] = { a = i, b = "xxxxxxxxxxxxxxxxxxxxxxxxxxx" } end"#,
        "json.encode(t)",
    );
}

#[test]
fn a_loop_of_loads_through_the_kernel_wrapper_is_preempted_not_ended() {
    preempted_between_calls(r#"local src = ("x = 1\n"):rep(100000)"#, "load(src)");
}

#[test]
fn one_json_encode_of_a_long_key_over_a_long_array_is_not_long() {
    // The key (1 MiB) appears once in the text; the path to each of the
    // 20,000 items was built with it (and copied) whether or not the item
    // failed: 2.8 s in one call, ended as stuck. Now a path is built for
    // the failing value only: the second encode names it.
    let source = r#"local json = require("json")
        return function()
            local key = ("k"):rep(1 << 20)
            local items = {}
            for i = 1, 20000 do items[i] = 0 end
            local text = assert(json.encode({ [key] = items }))
            items[20000] = 0 / 0
            local _, err = json.encode({ [key] = items })
            return #text .. " " .. tostring(err):sub(-40)
        end"#;
    let app = app().limits(roomy()).entry("h:attacker", source);
    let out = attack(app, "h:attacker", Vec::new());
    // {"key":[0,...,0]}: seven bytes of punctuation, 20,000 zeros, 19,999 commas.
    let text = (1 << 20) + 7 + 20_000 + 19_999;
    let value = out.value();
    assert!(value.starts_with(&format!("{text} ")), "{value}");
    assert!(
        value.ends_with("[20000]: NaN cannot be encoded as JSON"),
        "{value}"
    );
    out.assert_neighbour_ticks();
}

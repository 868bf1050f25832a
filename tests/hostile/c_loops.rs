//! Class 4: standard-library C functions that run without bound. A C
//! function runs no Lua instruction, so the count hook that preempts Lua
//! code never fires inside it; Warren's patched Lua (`vendor/lua-src`)
//! makes the long loops of the string, table, os and utf8 libraries and
//! of the parser poll instead. What is guaranteed: no single call keeps
//! the worker from its other processes longer than the limit for code that
//! cannot be interrupted (250 ms) or the cpu budget (300 ms here): the
//! process is then ended with RATE_LIMITED, an error `pcall` cannot catch.
//! Loops that allocate end with the memory limit instead, and `os.date`
//! refuses formats over 1024 bytes up front. The polling changes no result
//! of the ordinary paths.

use std::time::Duration;

use warren_core::{ErrorKind, Value};

use crate::harness::{Outcome, alone, lua};

/// How long an attack may take in all, from starting its runtime to the
/// check after it: the 250 ms limit plus generous room for a loaded host.
const PROMPT: Duration = Duration::from_secs(3);

/// Runs `source` and asserts it ended promptly.
fn timed(source: &str) -> Outcome {
    let out = lua(source, Vec::new());
    assert!(out.took < PROMPT, "the attack took {:?}: {out:?}", out.took);
    out
}

/// The attack is ended by the stuck limit or the cpu budget; the
/// neighbour ticks afterwards.
fn stopped(source: &str) {
    let out = timed(source);
    let err = out.error();
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err}");
    assert!(
        err.message
            .contains("without reaching a point where it could be preempted")
            || err.message.contains("cpu budget exceeded"),
        "{err}"
    );
    out.assert_neighbour_ticks();
}

/// `call` (an expression) is stopped, bare and under `pcall` (whose
/// caller would otherwise carry on and return "caught").
fn stopped_even_under_pcall(call: &str) {
    stopped(&format!("return function() return {call} end"));
    stopped(&format!(
        "return function() pcall(function() return {call} end) return \"caught\" end"
    ));
}

#[test]
fn string_rep_of_an_empty_string() {
    stopped_even_under_pcall(r#"string.rep("", math.maxinteger)"#);
}

#[test]
fn string_rep_of_an_empty_string_with_an_empty_separator() {
    stopped_even_under_pcall(r#"string.rep("", math.maxinteger, "")"#);
}

#[test]
fn string_rep_as_a_method_retried_in_a_loop() {
    stopped(
        r#"return function()
            while true do pcall(("").rep, "", math.maxinteger) end
        end"#,
    );
}

#[test]
fn table_move_within_a_table() {
    stopped_even_under_pcall("table.move({}, 1, 1 << 62, 2)");
}

#[test]
fn table_move_to_another_table() {
    stopped_even_under_pcall("table.move({}, 1, math.maxinteger - 1, 2, {})");
}

const LYING_LENGTH: &str = "setmetatable({}, { __len = function() return 1 << 62 end })";

#[test]
fn table_insert_with_a_lying_length() {
    stopped_even_under_pcall(&format!("table.insert({LYING_LENGTH}, 1, 0)"));
}

#[test]
fn table_remove_with_a_lying_length() {
    stopped_even_under_pcall(&format!("table.remove({LYING_LENGTH}, 1)"));
}

#[test]
fn table_concat_with_a_c_index() {
    stopped_even_under_pcall(
        r#"table.concat(setmetatable({}, { __index = table.concat }), "", 1, 1 << 50)"#,
    );
}

#[test]
fn table_concat_with_a_lua_index() {
    stopped_even_under_pcall(
        r#"table.concat(setmetatable({}, { __index = function() return "" end }), "", 1, 1 << 50)"#,
    );
}

#[test]
fn table_unpack_of_a_huge_range_fails_fast() {
    alone(|| {
        let out = timed(
            r#"local time = require("time")
            return function()
                local errs = {}
                local t0 = time.now()
                for _, r in ipairs({ { 1, math.maxinteger }, { math.mininteger, math.maxinteger },
                        { 1, 1 << 40 }, { 1, 1 << 31 }, { -5, 1e8 } }) do
                    local ok, err = pcall(table.unpack, {}, r[1], r[2])
                    errs[#errs + 1] = ok and "unpacked" or tostring(err)
                end
                return { time.now():sub(t0):milliseconds(), table.concat(errs, "|") }
            end"#,
        );
        out.assert_neighbour_ticks();
        let Ok(Value::Array(items)) = &out.exit else {
            panic!("{out:?}")
        };
        let (Value::Int(ms), Some(errs)) = (&items[0], items[1].as_str()) else {
            panic!("{out:?}")
        };
        assert!(*ms < 50, "took {ms} ms");
        for err in errs.split('|') {
            assert!(err.contains("too many results to unpack"), "{errs}");
        }
    });
}

/// A table `table.sort` believes has 2^31 - 2 elements, each read by
/// `index` and written by `newindex` (or stored, if it is nil).
fn huge_sort(index: &str, newindex: &str) {
    stopped_even_under_pcall(&format!(
        "table.sort(setmetatable({{}}, {{ __len = function() return (1 << 31) - 2 end, \
         __index = {index}, __newindex = {newindex} }}))"
    ));
}

#[test]
fn table_sort_of_a_huge_table_read_by_c_functions() {
    huge_sort("rawlen", "rawequal");
}

#[test]
fn table_sort_of_a_huge_table_read_by_lua_functions() {
    huge_sort("function() return 0 end", "function() end");
}

#[test]
fn table_sort_of_a_huge_table_written_for_real() {
    // Every swap stores two values: the table grows until a limit stops it.
    let out = timed(
        r#"return function()
            table.sort(setmetatable({}, {
                __len = function() return (1 << 31) - 2 end, __index = function() return 0 end }))
        end"#,
    );
    let err = out.error();
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err}");
    assert!(
        err.message.contains("memory limit exceeded")
            || err.message.contains("could be preempted")
            || err.message.contains("cpu budget exceeded"),
        "{err}"
    );
    out.assert_neighbour_ticks();
}

#[test]
fn table_move_of_values_read_by_a_c_index_hits_the_memory_limit() {
    // `rawlen` as __index gives 0 for every key: each one is stored.
    for call in [
        "table.move(setmetatable({}, { __index = rawlen }), 1, 1 << 40, 1, {})",
        "pcall(table.move, setmetatable({}, { __index = rawlen }), 1, 1 << 40, 1, {})",
    ] {
        let out = timed(&format!("return function() {call} return \"caught\" end"));
        out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
    }
}

const BACKTRACKING: &str = r#"("a"):rep(40), ("a*"):rep(12) .. "b""#;

#[test]
fn pattern_backtracking_in_find() {
    stopped_even_under_pcall(&format!("string.find({BACKTRACKING})"));
}

#[test]
fn pattern_backtracking_in_match() {
    stopped_even_under_pcall(&format!("string.match({BACKTRACKING})"));
}

#[test]
fn pattern_backtracking_in_gmatch() {
    stopped_even_under_pcall(&format!(
        "(function() for m in string.gmatch({BACKTRACKING}) do end end)()"
    ));
}

#[test]
fn pattern_backtracking_in_gsub() {
    stopped_even_under_pcall(r#"string.gsub(("a"):rep(40), ("a*"):rep(12) .. "b", "")"#);
}

#[test]
fn quadratic_lazy_match() {
    stopped_even_under_pcall(r#"string.match(("a"):rep(1 << 20), ".-b")"#);
}

#[test]
fn quadratic_balanced_match() {
    stopped_even_under_pcall(r#"string.find(("("):rep(1 << 17), "%b()")"#);
}

#[test]
fn a_plain_find_of_a_long_needle_is_linear() {
    // Every byte of the text begins a near match: the search tried each
    // with a comparison of the needle, the product of the two lengths (a
    // 121-byte needle over 16 MiB held the worker 150 ms in one call, and
    // a loop of such calls let a neighbour run once per call; a 1 MiB
    // needle was ended by the stuck limit). Now linear (`memmem`).
    completes(
        r#"local r = string.find(("a"):rep(3 << 20), ("a"):rep(1 << 20) .. "b", 1, true)"#,
        "nil",
    );
    completes(
        r#"local r = string.find(("a"):rep(3 << 20), ("a"):rep(120) .. "b", 1, true)"#,
        "nil",
    );
}

#[test]
fn os_date_with_a_huge_format_is_refused() {
    let out = timed(r#"return function() return os.date(("%c"):rep(1e6)) end"#);
    out.assert_ended(ErrorKind::Unknown, "os.date: format longer than 1024 bytes");
}

#[test]
fn os_date_formats_up_to_1024_bytes_work() {
    let out = timed(
        r#"return function()
            local ok, err = pcall(os.date, ("%Y"):rep(512) .. "x")
            return { #os.date(("%Y"):rep(512), 0), #os.date("!" .. ("%c"):rep(300), 0),
                ok and "formatted" or tostring(err) }
        end"#,
    );
    out.assert_neighbour_ticks();
    let Ok(Value::Array(items)) = &out.exit else {
        panic!("{out:?}")
    };
    assert_eq!(items[0], Value::Int(2048));
    assert!(matches!(items[1], Value::Int(n) if n > 300 * 10), "{out:?}");
    let err = items[2].as_str().unwrap_or_default();
    assert!(err.contains("format longer than 1024 bytes"), "{out:?}");
}

#[test]
fn loading_a_huge_chunk() {
    // About 6 MiB of source and its compiled form: within the 8 MiB limit
    // it compiles; if not, it ends with a limit error, promptly.
    let out = timed(
        r#"return function()
            local src = ("x = 1\n"):rep(1 << 20)
            local f, err = load(src, "=big")
            return f and "compiled" or tostring(err)
        end"#,
    );
    out.assert_neighbour_ticks();
    match &out.exit {
        Ok(v) => assert_eq!(v.as_str(), Some("compiled"), "{out:?}"),
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::RateLimited, "{e}");
            assert!(
                e.message.contains("memory limit exceeded")
                    || e.message.contains("could be preempted")
                    || e.message.contains("cpu budget exceeded"),
                "{e}"
            );
        }
    }
}

#[test]
fn load_from_a_reader_that_never_ends() {
    // Blanks forever, then a short comment that never ends: nothing to
    // store, so only the polling in the lexer can stop them.
    stopped_even_under_pcall(r#"load(function() return "    " end)"#);
    stopped_even_under_pcall(r#"load(function() return "-- xxxxxxxxxxxxxxxx" end)"#);
}

const SPINNING_TOSTRING: &str =
    "setmetatable({}, { __tostring = function() while true do end end })";

#[test]
fn string_format_of_a_spinning_tostring() {
    stopped_even_under_pcall(&format!(r#"string.format("%s", {SPINNING_TOSTRING})"#));
}

#[test]
fn tostring_of_a_spinning_tostring() {
    stopped_even_under_pcall(&format!("tostring({SPINNING_TOSTRING})"));
}

#[test]
fn the_polled_loops_still_give_the_right_results() {
    let out = timed(
        r##"return function()
            local bad = {}
            local function check(ok, what) if not ok then bad[#bad + 1] = what end end
            check(string.rep("ab", 3) == "ababab", "rep")
            check(string.rep("ab", 3, ",") == "ab,ab,ab", "rep with a separator")
            check(string.rep("", 1e6) == "", "rep of an empty string")
            local s, k = string.gsub("hello world", "o", "0")
            check(s == "hell0 w0rld" and k == 2, "gsub")
            check(select(2, string.gsub(("ab"):rep(5000), "(a)(b)", "%2%1")) == 5000, "gsub count")
            check(string.find(("a"):rep(10000) .. "b", ("a"):rep(100) .. "b", 1, true) == 9901, "plain find")
            check(string.match("key = value", "(%w+)%s*=%s*(%w+)") == "key", "match")
            check(string.find(("a"):rep(20), ("a*"):rep(3) .. "b") == nil, "small backtracking")
            local n = 0
            for _ in ("a,b,c,d"):gmatch("[^,]+") do n = n + 1 end
            check(n == 4, "gmatch")
            local nums = {}
            for i = 1, 1000 do nums[i] = (i * 7919) % 1000 end
            table.sort(nums)
            local sorted = true
            for i = 1, 1000 do sorted = sorted and nums[i] == i - 1 end
            check(sorted, "sort")
            local arr = {}
            for i = 1, 10000 do arr[i] = i end
            table.insert(arr, 5000, "x")
            check(#arr == 10001 and arr[5000] == "x" and arr[5001] == 5000 and arr[10001] == 10000, "insert")
            check(table.remove(arr, 5000) == "x" and #arr == 10000 and arr[5000] == 5000, "remove")
            local moved = table.move(arr, 1, 10000, 2, {})
            check(moved[1] == nil and moved[2] == 1 and moved[10001] == 10000, "move")
            local parts = {}
            for i = 1, 10000 do parts[i] = tostring(i % 10) end
            local joined = table.concat(parts)
            check(#joined == 10000 and joined:sub(1, 11) == "12345678901", "concat")
            check(select("#", table.unpack(arr, 1, 1000)) == 1000, "unpack")
            check(utf8.len(("é"):rep(1000)) == 1000, "utf8.len")
            check(load(("x = 1\n"):rep(1000) .. "return x")() == 1, "load")
            return #bad == 0 and "correct" or table.concat(bad, ", ")
        end"##,
    );
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), "correct");
}

/// Runs `body` (a statement leaving its result in `r`) and asserts it
/// completed, with `expected` as `tostring(r)`: ordinary sizes that native
/// Lua 5.4 handles in a few tens of milliseconds at most must not come near
/// the stuck limit because of the polling.
fn completes(body: &str, expected: &str) {
    let out = timed(&format!(
        r#"local time = require("time")
        return function()
            local t0 = time.now()
            {body}
            return tostring(r) .. " in " .. time.now():sub(t0):milliseconds() .. " ms"
        end"#
    ));
    out.assert_neighbour_ticks();
    let v = match &out.exit {
        Ok(v) => v.describe(),
        Err(e) => panic!("the ordinary call was ended: {e}"),
    };
    assert!(v.starts_with(&format!("{expected} in ")), "{v}");
}

#[test]
fn loading_a_32k_line_chunk_completes() {
    // 192 KiB of source: about 10 ms in native Lua 5.4.
    completes(
        r#"local r = type(load(("x = 1\n"):rep(1 << 15), "=chunk"))"#,
        "function",
    );
}

#[test]
fn loading_a_chunk_with_a_mebibyte_string_completes() {
    // One long-bracket string literal: about 7 ms in native Lua 5.4.
    completes(
        r#"local f = load("return [[" .. ("x"):rep(1 << 20) .. "]]", "=chunk")
        local r = f and #f()"#,
        "1048576",
    );
}

#[test]
fn a_plain_find_in_a_mebibyte_completes() {
    // Every position is a candidate: about 16 ms in native Lua 5.4.
    completes(
        r#"local r = string.find(("a"):rep(1 << 20), "ab", 1, true)"#,
        "nil",
    );
}

#[test]
fn sorting_100k_numbers_completes() {
    // About 40 ms in native Lua 5.4.
    completes(
        r#"local t = {}
        for i = 1, 100000 do t[i] = (i * 7919) % 100003 end
        table.sort(t)
        local r = true
        for i = 2, #t do r = r and t[i - 1] <= t[i] end"#,
        "true",
    );
}

/// A process that loops over calls which spend their time in C (each
/// short, the loop long) runs past the stuck limit and is preempted, not
/// ended: the watchdog's signal mostly lands inside the C call, and the
/// hook used to be disarmed there (or to fire right after a wrapped call
/// returned, inside the kernel's wrapper), so such a loop never met a
/// preemption point and was ended as stuck after 250 ms (before the fix,
/// two to four of these six failed in each run). Its neighbour ticks
/// meanwhile.
fn preempted_not_ended(call: &str) {
    let source = format!(
        r#"local json = require("json")
        return function()
            local s = string.rep("ab", 50000)
            local chunk = string.rep("x = 1 ", 2000)
            local arr = {{}}
            for i = 1, 5000 do arr[i] = i end
            local js = json.encode(arr)
            local t0, n = os.clock(), 0
            while os.clock() - t0 < 1.5 do
                {call}
                n = n + 1
            end
            return "ran"
        end"#
    );
    let limits = warren_core::HostLimits {
        cpu_budget: Some(Duration::from_secs(5)),
        ..crate::harness::limits()
    };
    let app = crate::harness::app()
        .limits(limits)
        .entry("h:attacker", &source);
    let out = crate::harness::attack(app, "h:attacker", Vec::new());
    assert_eq!(out.value(), "ran", "{out:?}");
    out.assert_progress_during(5);
}

#[test]
fn a_loop_of_loads_is_preempted_not_ended() {
    preempted_not_ended("assert(load(chunk))");
}

#[test]
fn a_loop_of_pattern_finds_is_preempted_not_ended() {
    preempted_not_ended(r#"s:find("x%d+y")"#);
}

#[test]
fn a_loop_of_pattern_substitutions_is_preempted_not_ended() {
    preempted_not_ended(r#"s:gsub("a", "b")"#);
}

#[test]
fn a_loop_of_utf8_lengths_is_preempted_not_ended() {
    preempted_not_ended("utf8.len(s)");
}

#[test]
fn a_loop_of_json_encodes_is_preempted_not_ended() {
    preempted_not_ended("json.encode(arr)");
}

#[test]
fn a_loop_of_json_decodes_is_preempted_not_ended() {
    preempted_not_ended("json.decode(js)");
}

/// Runs `case` and `reference` (Lua functions of no argument, each given
/// its own fresh inputs by `setup`) three times each under room for
/// strings of tens of MiB, alone, and returns the best microseconds of
/// each: the same loaded machine times both.
fn best_pair(setup: &str, case: &str, reference: &str) -> (f64, f64) {
    let source = format!(
        r#"local time = require("time")
return function()
    {setup}
    local function best(f)
        local b = math.huge
        for i = 1, 3 do
            local t0 = time.now()
            f(i)
            b = math.min(b, time.now():sub(t0):microseconds())
        end
        return b
    end
    return best({case}) .. " " .. best({reference})
end"#
    );
    let out = alone(|| {
        let app = crate::harness::app().limits(crate::lua_cpu::roomy());
        crate::harness::attack(app.entry("h:attacker", &source), "h:attacker", Vec::new())
    });
    let v = out.value();
    let mut parts = v.split(' ').map(|p| p.parse::<f64>().unwrap_or(f64::MAX));
    let pair = (
        parts.next().unwrap_or(f64::MAX),
        parts.next().unwrap_or(f64::MAX),
    );
    assert!(pair.0 < f64::MAX && pair.1 < f64::MAX, "{v}");
    pair
}

#[test]
fn q_of_control_characters_is_as_quick_as_of_plain_ones() {
    // Each control character's escape was an `l_sprintf`: 12 MiB of them
    // held the worker 490 ms, six times plain text's %q.
    let (ctrl, plain) = best_pair(
        r#"local ctrl, plain = string.rep("\1", 8 << 20), string.rep("a", 8 << 20)"#,
        r#"function() return #string.format("%q", ctrl) end"#,
        r#"function() return #string.format("%q", plain) end"#,
    );
    assert!(
        ctrl < 3.0 * plain,
        "%q of control characters {ctrl} us, of plain {plain} us"
    );
}

#[test]
fn a_long_table_key_is_hashed_quicker_than_it_is_upper_cased() {
    // A long string's hash read one byte a step, 1.2 ns each: a 64 MiB
    // key held the worker 75 ms in a call that cannot poll. Each key is a
    // fresh string (a string keeps its hash once made).
    let (hash, upper) = best_pair(
        r#"local base = string.rep("k", 12 << 20)
    local keys = {}
    for i = 1, 3 do keys[i] = base .. i end
    base = nil"#,
        r#"function(i) local t = {} t[keys[i]] = true end"#,
        r#"function(i) return #keys[i]:upper() end"#,
    );
    assert!(
        hash < 0.7 * upper,
        "hashing {hash} us, upper-casing {upper} us"
    );
}

//! The measure's walk in C (`guest-lua/src/machine/walk.rs`), attacked.
//!
//! Under-count: a process holds well over its 8 MiB somewhere the walk
//! might not look (a coroutine never started, frames past 1,000 levels, a dead coroutine's stack, weak tables, metatable chains,
//! a C function's upvalues, channels inside channels, a table's emptied
//! hash part, a nested prototype); it grows in steps of a MiB or so, one
//! run each, so that what ends it is a measure, not its run's ceiling.
//! Over-count: a process holding things every process shares, or one
//! thing many times, stays alive. Robustness: the walk never runs a
//! metamethod, finishes on cycles and long chains, and its neighbour keeps
//! ticking.
//!
//! Five holes were found, each fixed and its case failing on the code
//! before (checked): a coroutine never resumed (`coroutine.create`,
//! `coroutine.wrap`) has no frame, so its function and upvalues were not
//! walked (now the values on its stack are); userdata other than channels
//! (type values) counted nothing (now their block and an estimate of their
//! host heap); nested prototypes were counted inside every enclosing one
//! (now each once, `warren_protowalk`); an inexact measure (a coroutine
//! over 1,000 frames) always ended the process (now every frame is read,
//! one step each, `warren_nextframe`, and a cut-short walk falls back to
//! the last measured size, not the charge).

use std::time::Duration;

use warren_core::{ErrorKind, HostLimits};

use crate::harness::{self, Outcome, app, attack};
use warren_tests::OTHER_HOST;

/// A budget the measures of these cases fit in, so that their memory (not
/// the harness's 300 ms of CPU) is what ends them; the other host may be
/// sent to (see [`harness::SENDER`]).
fn roomy() -> HostLimits {
    HostLimits {
        cpu_budget: Some(Duration::from_secs(10)),
        allow_hosts: Some(vec![OTHER_HOST.to_owned()]),
        ..harness::limits()
    }
}

/// Runs `source` under [`roomy`] limits.
fn run(source: &str) -> Outcome {
    attack(
        app()
            .limits(roomy())
            .entry("h:sender", harness::SENDER)
            .entry("h:attacker", source),
        "h:attacker",
        Vec::new(),
    )
}

/// `source` holds well over its limit: a measure must end it.
fn held_past_its_limit(source: &str) {
    let out = run(source);
    out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
}

/// `source` holds well under its limit and is measured: it returns
/// `expected`.
fn stays_alive(source: &str, expected: &str) {
    let out = run(source);
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), expected, "{out:?}");
}

/// Lua helpers prepended to every script: `churn()` has 12 MB sent to the
/// process (see [`harness::SENDER`]), each message dropped: charged as they arrive,
/// they take its charge past its limit, so it is measured (a few times);
/// `kb()` is its charge (`collectgarbage("count")`), which a measure
/// replaces by what it found.
fn with_prelude(body: &str) -> String {
    format!(
        r#"local time = require("time")
local function kb() return math.floor(collectgarbage("count")) end
local function churn()
    assert(process.spawn("h:sender", "{OTHER_HOST}", process.pid()))
    local inbox = process.inbox()
    for _ = 1, 200 do inbox:receive() end
    time.sleep("1ms")
end
{body}"#
    )
}

// ---- Under-count: memory the walk must find ----

#[test]
fn closures_of_coroutines_never_started_count() {
    held_past_its_limit(&with_prelude(
        r#"return function()
            local keep = {}
            for i = 1, 24 do
                local big = string.rep("f", 1 << 20) .. i
                -- `big` is this round's own local: each closure keeps its
                -- string (setting it to nil here would drop it).
                keep[i] = coroutine.create(function() return #big end)
                time.sleep("1ms")
            end
            return "held 24 MiB, charged " .. kb() .. " KiB"
        end"#,
    ));
}

#[test]
fn closures_of_wrapped_functions_never_called_count() {
    held_past_its_limit(&with_prelude(
        r#"return function()
            local keep = {}
            for i = 1, 24 do
                local big = string.rep("w", 1 << 20) .. i
                keep[i] = coroutine.wrap(function() return #big end)
                time.sleep("1ms")
            end
            return "held 24 MiB, charged " .. kb() .. " KiB"
        end"#,
    ));
}

/// `levels` recursive frames above a bottom frame holding a MiB (as a
/// local and as varargs), 16 such coroutines.
fn deep_frames(levels: i64) -> String {
    with_prelude(&format!(
        r##"local function down(n)
            if n == 0 then coroutine.yield() return 0 end
            local r = down(n - 1)
            return r + 1
        end
        return function()
            local keep = {{}}
            for i = 1, 16 do
                local co = coroutine.create(function(...)
                    local big = string.rep("d", 1 << 20) .. i
                    down({levels})
                    return #big + select("#", ...)
                end)
                coroutine.resume(co, string.rep("v", 1 << 19) .. i)
                keep[i] = co
                time.sleep("1ms")
            end
            return "held 24 MiB, charged " .. kb() .. " KiB"
        end"##
    ))
}

#[test]
fn the_bottom_frame_of_a_coroutine_990_levels_deep_counts() {
    // Walked exactly: every frame is within the walk's 1,000 levels.
    held_past_its_limit(&deep_frames(990));
}

#[test]
fn the_bottom_frame_of_a_coroutine_1010_levels_deep_counts() {
    // Not walked (past 1,000 levels): the measure is not exact and the
    // charge is kept.
    held_past_its_limit(&deep_frames(1010));
}

#[test]
fn locals_of_coroutines_dead_with_an_error_count() {
    // A coroutine ended by an error keeps its stack (for a traceback).
    held_past_its_limit(&with_prelude(
        r#"return function()
            local keep = {}
            for i = 1, 24 do
                local co = coroutine.create(function()
                    local big = string.rep("e", 1 << 20) .. i
                    error({ big })
                end)
                assert(not coroutine.resume(co))
                assert(coroutine.status(co) == "dead")
                keep[i] = co
                time.sleep("1ms")
            end
            return "held 24 MiB, charged " .. kb() .. " KiB"
        end"#,
    ));
}

#[test]
fn values_of_a_weak_keyed_table_whose_keys_are_held_count() {
    held_past_its_limit(&with_prelude(
        r#"return function()
            local weak, keys = setmetatable({}, { __mode = "k" }), {}
            for i = 1, 24 do
                local k = {}
                keys[i] = k
                weak[k] = string.rep("k", 1 << 20) .. i
                time.sleep("1ms")
            end
            return "held 24 MiB, charged " .. kb() .. " KiB"
        end"#,
    ));
}

#[test]
fn strings_in_a_weak_valued_table_count() {
    // Strings are values, never collected from a weak table.
    held_past_its_limit(&with_prelude(
        r#"return function()
            local weak = setmetatable({}, { __mode = "kv" })
            for i = 1, 24 do
                weak[i] = string.rep("s", 1 << 20) .. i
                time.sleep("1ms")
            end
            return "held 24 MiB, charged " .. kb() .. " KiB"
        end"#,
    ));
}

#[test]
fn data_held_only_by_a_chain_of_metatables_counts() {
    held_past_its_limit(&with_prelude(
        r#"return function()
            local head = {}
            local tail = head
            for i = 1, 24 do
                local mt = { __index = string.rep("m", 1 << 20) .. i, __metatable = "locked" }
                setmetatable(tail, mt)
                tail = mt
                time.sleep("1ms")
            end
            return "held 24 MiB, charged " .. kb() .. " KiB"
        end"#,
    ));
}

#[test]
fn subjects_held_by_gmatch_iterators_count() {
    // The subject lives only in the C iterator's upvalues.
    held_past_its_limit(&with_prelude(
        r#"return function()
            local keep = {}
            for i = 1, 24 do
                keep[i] = string.gmatch(string.rep("g", 1 << 20) .. i, "g")
                time.sleep("1ms")
            end
            return "held 24 MiB, charged " .. kb() .. " KiB"
        end"#,
    ));
}

#[test]
fn a_table_shared_as_an_upvalue_by_closures_counts() {
    // Only the closures reach the table; it grows after they are made.
    held_past_its_limit(&with_prelude(
        r#"return function()
            local add, size
            do
                local store = {}
                add = function(v) store[#store + 1] = v end
                size = function() return #store end
            end
            for i = 1, 24 do
                add(string.rep("u", 1 << 20) .. i)
                time.sleep("1ms")
            end
            return "held " .. size() .. " MiB, charged " .. kb() .. " KiB"
        end"#,
    ));
}

#[test]
fn strings_buffered_in_channels_buffered_in_channels_count() {
    held_past_its_limit(&with_prelude(
        r#"return function()
            local outer = channel.new(100)
            for i = 1, 24 do
                local inner = channel.new(1)
                inner:send(string.rep("c", 1 << 20) .. i)
                outer:send(inner)
                time.sleep("1ms")
            end
            return "held 24 MiB, charged " .. kb() .. " KiB"
        end"#,
    ));
}

#[test]
fn send_cases_held_only_by_a_coroutine_count() {
    held_past_its_limit(&with_prelude(
        r#"return function()
            local ch = channel.new()
            local co = coroutine.create(function()
                local cases = {}
                while true do
                    cases[#cases + 1] = ch:case_send(string.rep("x", 1 << 20) .. #cases)
                    coroutine.yield()
                end
            end)
            for _ = 1, 24 do
                coroutine.resume(co)
                time.sleep("1ms")
            end
            return "held 24 MiB, charged " .. kb() .. " KiB"
        end"#,
    ));
}

#[test]
fn hash_parts_emptied_after_growth_count() {
    // 65,536 nodes (2 MiB) stay allocated in each emptied table.
    held_past_its_limit(&with_prelude(
        r#"return function()
            local keep = {}
            for round = 1, 12 do
                local t = {}
                for i = 1, 40000 do t["k" .. i] = true end
                for i = 1, 40000 do t["k" .. i] = nil end
                keep[round] = t
                time.sleep("1ms")
            end
            return "held 12 emptied tables, charged " .. kb() .. " KiB"
        end"#,
    ));
}

#[test]
fn constants_of_a_nested_prototype_never_instantiated_count() {
    // Only the outer loaded function is held; the literal is a constant of
    // a function it would make.
    held_past_its_limit(&with_prelude(
        r#"return function()
            local keep = {}
            for i = 1, 20 do
                keep[i] = load("return function() return '" .. string.rep("p", 1 << 20) .. i .. "' end",
                    "=nested", "t", {})
                time.sleep("1ms")
            end
            return "held 20 MiB, charged " .. kb() .. " KiB"
        end"#,
    ));
}

#[test]
fn strings_held_by_coroutines_nested_in_coroutines_count() {
    // 24 coroutines each resumed by the one before, each holding a MiB,
    // all suspended at once under the innermost one's sleep.
    held_past_its_limit(&with_prelude(
        r#"local function level(i)
            local big = string.rep("n", 1 << 20) .. i
            time.sleep("1ms")
            if i < 24 then
                local co = coroutine.create(level)
                local ok, err = coroutine.resume(co, i + 1)
                assert(ok, err)
            end
            for _ = 1, 50 do time.sleep("1ms") end
            return #big
        end
        return function() return "returned " .. level(1) .. ", charged " .. kb() .. " KiB" end"#,
    ));
}

// ---- Over-count: what is shared, or counted once ----

#[test]
fn references_to_everything_every_process_shares_are_not_counted() {
    // 200,000 references (4 MiB of array) to libraries, their
    // functions, the string metatable, modules, errors and the process's
    // own inbox, events and coroutine.
    stays_alive(
        &with_prelude(
            r#"return function()
            local shared = { string, table, math, utf8, os, coroutine, process, channel, errors,
                string.format, string.gmatch, table.insert, math.floor, process.send, channel.select,
                getmetatable(""), require("time"), require("json"), time.sleep, process.inbox(),
                process.events(), (coroutine.running()), require, pairs, setmetatable, load }
            local refs = {}
            for i = 1, 200000 do refs[i] = shared[i % #shared + 1] end
            churn()
            return "kept " .. #refs
        end"#,
        ),
        "kept 200000",
    );
}

#[test]
fn messages_sent_to_itself_are_measured_as_themselves() {
    // 2,000 messages kept, each reaching the kernel's C methods.
    stays_alive(
        &with_prelude(
            r#"return function()
            local me, inbox, kept = process.pid(), process.inbox(), {}
            for i = 1, 2000 do
                process.send(me, "t", i)
                kept[i] = inbox:receive()
                if i % 50 == 0 then time.sleep("1ms") end
            end
            churn()
            return "kept " .. #kept .. " from " .. (kept[2000]:from() == me and "me" or "another")
        end"#,
        ),
        "kept 2000 from me",
    );
}

#[test]
fn one_table_and_one_string_referenced_from_250000_slots_are_counted_once() {
    // 250,000 slots (4 MiB allocated), alternating between one table and
    // one 100 KB string.
    stays_alive(
        &with_prelude(
            r#"return function()
            local one = { string.rep("o", 100000) }
            local refs = {}
            for i = 1, 250000 do refs[i] = (i % 2 == 0) and one or one[1] end
            churn()
            return "refs " .. #refs
        end"#,
        ),
        "refs 250000",
    );
}

#[test]
fn a_literal_in_nested_prototypes_is_counted_once() {
    stays_alive(
        &with_prelude(
            r#"return function()
            local depth = 40
            local src = string.rep("return function() ", depth) .. "return '" .. string.rep("l", 300000)
                .. "'" .. string.rep(" end", depth)
            local f = assert(load(src, "=nest", "t", {}))
            src = nil
            local keep = { f }
            for i = 1, depth do f = f(); keep[#keep + 1] = f end
            local lit = f()
            churn()
            return "kept " .. #keep .. " " .. #lit
        end"#,
        ),
        "kept 41 300000",
    );
}

#[test]
fn cycles_and_self_references_end_the_walk() {
    stays_alive(
        &with_prelude(
            r#"return function()
            local ring = {}
            local first = {}
            local prev = first
            for i = 1, 20000 do
                local t = { prev = prev }
                prev.next = t
                prev = t
            end
            prev.next, first.prev = first, prev
            ring.first = first
            ring[ring] = ring
            local self_fn
            self_fn = function() return self_fn, ring end
            local co
            co = coroutine.create(function() local me, r = co, ring; coroutine.yield(); return me, r end)
            coroutine.resume(co)
            ring.co, ring.f = co, self_fn
            setmetatable(ring, ring)
            churn()
            return "ring"
        end"#,
        ),
        "ring",
    );
}

#[test]
fn chains_of_20000_metatables_and_keys_do_not_overflow_the_walk() {
    stays_alive(
        &with_prelude(
            r#"return function()
            local head = {}
            local t = head
            for i = 1, 20000 do
                local mt = {}
                setmetatable(t, mt)
                t = mt
            end
            local key = {}
            local k = key
            for i = 1, 20000 do
                local nk = {}
                k[nk] = true
                k = nk
            end
            churn()
            return "chained"
        end"#,
        ),
        "chained",
    );
}

/// Every metamethod, each counting its calls in `calls` and then looping
/// forever (or raising).
const METAMETHODS: &str = r#"local calls = 0
local function bad() calls = calls + 1; while true do end end
local function raise() calls = calls + 1; error("metamethod ran") end
local mt = {
    __index = bad, __newindex = bad, __pairs = bad, __len = bad, __eq = bad, __lt = bad,
    __le = bad, __concat = bad, __call = bad, __tostring = raise, __name = "trap",
    __close = raise, __unm = bad, __add = bad, __mode = nil, __metatable = "no",
}
local mt_mt = { __index = bad, __pairs = bad, __len = bad, __eq = bad }
setmetatable(mt, mt_mt)
"#;

#[test]
fn the_walk_runs_no_metamethod_of_held_tables() {
    stays_alive(
        &with_prelude(&format!(
            r#"{METAMETHODS}
        return function()
            local held = setmetatable({{}}, mt)
            for i = 1, 2000 do
                local t = setmetatable({{ i }}, mt)
                rawset(held, i, t)
                rawset(held, t, i)
            end
            -- a to-be-closed trap in a suspended coroutine
            local co = coroutine.create(function()
                local x <close> = setmetatable({{}}, mt)
                coroutine.yield()
            end)
            coroutine.resume(co)
            rawset(held, "co", co)
            churn()
            return "calls " .. calls
        end"#
        )),
        "calls 0",
    );
}

#[test]
fn metamethods_on_keys_values_and_upvalues_never_run() {
    // The traps reached as keys of a weak table, upvalues of a closure and
    // a channel's buffered value.
    stays_alive(
        &with_prelude(&format!(
            r#"{METAMETHODS}
        return function()
            local weak = setmetatable({{}}, {{ __mode = "k", __index = bad }})
            local keys = {{}}
            for i = 1, 500 do
                local t = setmetatable({{}}, mt)
                keys[i] = t
                rawset(weak, t, setmetatable({{}}, mt))
            end
            local trap = setmetatable({{}}, mt)
            local f = function() return trap, weak end
            local ch = channel.new(1)
            ch:send(setmetatable({{}}, mt))
            churn()
            return "calls " .. calls .. " " .. tostring(f ~= nil) .. " " .. #keys
        end"#
        )),
        "calls 0 true 500",
    );
}

#[test]
fn deep_coroutines_walked_again_and_again_do_not_stall_the_worker() {
    // 40 coroutines each 990 frames deep (every level is looked up from
    // the top: ~500,000 steps a coroutine) measured at every churn round:
    // the walk's time is this process's; the neighbour keeps ticking and
    // the process is never ended as stuck.
    let source = with_prelude(
        r#"local function down(n)
            if n == 0 then coroutine.yield() return 0 end
            local r = down(n - 1)
            return r + 1
        end
        return function()
            local keep = {}
            for i = 1, 40 do
                local co = coroutine.create(down)
                coroutine.resume(co, 990)
                keep[i] = co
                if i % 10 == 0 then time.sleep("1ms") end
            end
            churn()
            churn()
            return "deep " .. #keep
        end"#,
    );
    let out = run(&source);
    out.assert_neighbour_ticks();
    match &out.exit {
        Ok(_) => assert_eq!(out.value(), "deep 40"),
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::RateLimited, "{e}");
            assert!(!e.message.contains("preempted"), "ended as stuck: {e}");
        }
    }
}

#[test]
fn a_huge_hoard_is_walked_only_up_to_the_limit() {
    // A million small tables in steps: the walk stops once it passes the
    // limit (it does not look at them all), and the process ends by a
    // measure while its neighbour ticks.
    let out = attack(
        app().entry(
            "h:attacker",
            r#"local time = require("time")
            return function()
                local keep = {}
                for round = 1, 100 do
                    for i = 1, 10000 do keep[#keep + 1] = { round, i } end
                    time.sleep("1ms")
                end
                return "held " .. #keep
            end"#,
        ),
        "h:attacker",
        Vec::new(),
    );
    out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
}

/// A coroutine `levels` frames deep holding almost nothing, measured.
fn a_deep_coroutine_measured(levels: i64) -> Outcome {
    run(&with_prelude(&format!(
        r#"local function down(n)
            if n == 0 then coroutine.yield() return 0 end
            local r = down(n - 1)
            return r + 1
        end
        return function()
            local co = coroutine.create(down)
            coroutine.resume(co, {levels})
            churn()
            return "deep " .. coroutine.status(co)
        end"#
    )))
}

#[test]
fn a_coroutine_990_levels_deep_holding_nothing_stays_alive() {
    let out = a_deep_coroutine_measured(990);
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), "deep suspended");
}

#[test]
fn a_coroutine_1010_levels_deep_holding_nothing_stays_alive() {
    let out = a_deep_coroutine_measured(1010);
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), "deep suspended");
}

#[test]
fn coroutines_closed_or_finished_hold_nothing() {
    // 24 coroutines that each held a MiB, 12 closed while suspended and 12
    // run to their end: their stacks are let go, and so is the MiB.
    stays_alive(
        &with_prelude(
            r#"return function()
            local keep = {}
            for i = 1, 24 do
                local co = coroutine.create(function()
                    local big = string.rep("z", 1 << 20) .. i
                    coroutine.yield(#big)
                    return #big
                end)
                coroutine.resume(co)
                if i % 2 == 0 then coroutine.close(co) else coroutine.resume(co) end
                keep[i] = co
                time.sleep("1ms")
            end
            churn()
            return "kept " .. #keep .. " " .. coroutine.status(keep[1]) .. " " .. coroutine.status(keep[2])
        end"#,
        ),
        "kept 24 dead dead",
    );
}

#[test]
fn values_of_a_weak_cache_dropped_elsewhere_are_not_held_forever() {
    // A weak-valued cache of 24 tables of a MiB each, each dropped by its
    // user: the collector takes them, and the process is measured as
    // what it still holds (the last few at most).
    stays_alive(
        &with_prelude(
            r#"return function()
            local cache = setmetatable({}, { __mode = "v" })
            for i = 1, 24 do
                cache[i] = { string.rep("c", 1 << 20) .. i }
                time.sleep("1ms")
            end
            churn()
            return "cached"
        end"#,
        ),
        "cached",
    );
}

#[test]
fn type_values_made_by_instantiating_a_generic_count() {
    // Each `B(S)` is a new type value: a host userdata in the VM (at least
    // 40 bytes) and its type in the host's heap. 360,000 of them held in
    // three arrays (6 MiB of slots), made in steps, then measured.
    held_past_its_limit(&with_prelude(
        r#"type S = string
        type B<T> = {v: T}
        return function()
            local keep = { {}, {}, {} }
            for round = 1, 36 do
                local t = keep[(round - 1) // 12 + 1]
                for i = 1, 10000 do t[#t + 1] = B(S) end
                time.sleep("1ms")
            end
            churn()
            return "held " .. #keep[1] + #keep[2] + #keep[3] .. " distinct "
                .. tostring(not rawequal(keep[1][1], keep[1][2])) .. ", charged " .. kb() .. " KiB"
        end"#,
    ));
}

#[test]
fn nothing_can_be_stored_in_the_tables_every_process_shares() {
    // The walk skips what every process shares: a process that could
    // store into one of those tables would hide it there (and hand it to
    // its neighbours).
    stays_alive(
        &with_prelude(
            r#"return function()
            local shared = { string, table, math, utf8, os, coroutine, process, channel, errors,
                payload, require("time"), require("json"), process.registry, integer, number, boolean }
            local big, stored = string.rep("h", 1 << 16), 0
            for i, t in ipairs(shared) do
                if pcall(rawset, t, "hidden" .. i, big) then stored = stored + 1 end
                if pcall(function() t["hidden2" .. i] = big end) then stored = stored + 1 end
                if pcall(setmetatable, t, { __index = { big } }) then stored = stored + 1 end
            end
            churn()
            return "stored " .. stored .. " of " .. 3 * #shared
        end"#,
        ),
        "stored 0 of 48",
    );
}

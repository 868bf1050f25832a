//! Kernel tokens and records a process could reach or forge: the values
//! the kernel yields and compares (block, upgrade), the entry that says
//! which modules a process may `require`, and the state behind timers,
//! durations, times and channels.
//!
//! Guaranteed: nothing the kernel trusts is reachable from a process
//! (proxies are empty tables with locked metatables, their state lives in
//! kernel tables); tokens are compared with `rawequal`, so `__eq` cannot
//! capture them; `process.upgrade` stores the host's entry in kernel state
//! and yields only a token, so the modules a process gets always come from
//! the entry the host lists; forged timers, durations, times, channels and
//! cases are refused without running their metamethods.

use warren_core::ErrorKind;

use crate::harness::{Outcome, app, attack};

/// Runs `source` as the attacker, an entry allowed `modules`.
fn run(source: &str, modules: &[&str]) -> Outcome {
    let app = app()
        .entry_with("h:attacker", source, modules)
        .entry("h:timeful", TIMEFUL)
        .entry_with("h:bare", TIMEFUL, &[]);
    attack(app, "h:attacker", Vec::new())
}

/// Ends normally with `expected`, the neighbour ticking.
fn returns(source: &str, modules: &[&str], expected: &str) {
    let out = run(source, modules);
    assert_eq!(out.value(), expected);
    out.assert_neighbour_ticks();
}

/// Requires time and says so.
const TIMEFUL: &str = r#"return function()
    return "got time: " .. type(require("time").now)
end"#;

/// The entry a forger would like to run: its own, with every module.
const FORGED: &str = r#"
local entry = {
    id = "h:attacker", method = "main", modules = { time = true, services = true },
    chunk = function(env) return function() return "got " .. type(require("time")) end end,
}
"#;

/// Offers a bait whose `__eq` records what it is compared with to every
/// place that might compare it with a token, tries each captured value as
/// the upgrade token (from a nested coroutine, which passes kernel tokens
/// up), then yields a forged upgrade from main.
const EQ_ATTACK: &str = r#"
return function()
    local seen = {}
    local bait = setmetatable({}, { __eq = function(a, b) seen[#seen + 1] = b return false end })
    coroutine.wrap(function() coroutine.yield(bait) end)()
    coroutine.resume(coroutine.create(function() coroutine.yield(bait) end))
    coroutine.wrap(function()
        coroutine.wrap(function() coroutine.yield(bait) end)()
        coroutine.yield(bait)
    end)()
    local ch = channel.new(1)
    ch:send(bait) ch:receive()
    channel.select({ ch:case_send(bait) }) channel.select({ ch:case_receive() })
    local tried = channel.new(#seen + 1)
    for _, token in ipairs(seen) do
        coroutine.spawn(function()
            coroutine.wrap(function() coroutine.yield(token, entry, { n = 0 }) end)()
            tried:send(true)
        end)
    end
    for _ = 1, #seen do tried:receive() end
    if #seen > 0 then return "captured " .. #seen end
    coroutine.yield({}, entry, { n = 0 })
    return "yield returned"
end"#;

#[test]
fn eq_captures_no_token_and_a_forged_upgrade_is_refused() {
    let out = run(&format!("{FORGED}{EQ_ATTACK}"), &[]);
    out.assert_ended(
        ErrorKind::Invalid,
        "attempt to yield from outside a coroutine",
    );
}

/// Yields `token` and the forged entry from main.
fn forged_yield(token: &str) {
    let out = run(
        &format!("{FORGED} return function() coroutine.yield({token}, entry, {{ n = 0 }}) end"),
        &[],
    );
    out.assert_ended(
        ErrorKind::Invalid,
        "attempt to yield from outside a coroutine",
    );
}

#[test]
fn forged_upgrade_yields_are_refused() {
    forged_yield("{}");
    forged_yield("nil");
    forged_yield("entry");
    forged_yield("process.upgrade");
    forged_yield("setmetatable({}, { __eq = function() return true end })");
}

#[test]
fn a_forged_upgrade_while_a_real_one_is_pending_is_refused() {
    // An upgrade inside a sort comparator cannot reach the kernel: it
    // raised there and stayed pending, and is now refused before anything
    // is pending (waits.rs); either way the forged yield after it must
    // not complete an upgrade.
    let out = run(
        &format!(
            r#"{FORGED} return function()
                local kind
                table.sort({{ 2, 1 }}, function(a, b)
                    local up, e = coroutine.wrap(process.upgrade)("h:timeful")
                    kind = kind or (up == nil and e:kind())
                    return a < b
                end)
                assert(kind == "Invalid", tostring(kind))
                coroutine.yield({{}}, entry, {{ n = 0 }})
            end"#
        ),
        &[],
    );
    out.assert_ended(
        ErrorKind::Invalid,
        "attempt to yield from outside a coroutine",
    );
}

#[test]
fn require_without_the_module_listed_is_denied() {
    let out = run(r#"return function() return require("time") end"#, &[]);
    out.assert_ended(
        ErrorKind::PermissionDenied,
        r#"module "time" is not allowed for entry h:attacker"#,
    );
}

#[test]
fn upgrading_to_an_entry_that_lists_time_gives_time() {
    returns(
        r#"return function() process.upgrade("h:timeful") end"#,
        &[],
        "got time: function",
    );
}

#[test]
fn upgrading_to_an_entry_without_modules_takes_them_away() {
    let out = run(
        r#"return function() process.upgrade("h:bare") end"#,
        &["time"],
    );
    out.assert_ended(
        ErrorKind::PermissionDenied,
        r#"module "time" is not allowed for entry h:bare"#,
    );
}

#[test]
fn upgrade_arguments_do_not_grant_modules() {
    let out = run(
        &format!(
            r#"{FORGED} return function(again)
                if again == nil then process.upgrade(nil, entry, entry.modules) end
                return require("time")
            end"#
        ),
        &[],
    );
    out.assert_ended(
        ErrorKind::PermissionDenied,
        r#"module "time" is not allowed for entry h:attacker"#,
    );
}

/// Prepended to probes: `try(expected, f, ...)` calls `f` and notes a
/// failure unless it raised an error containing `expected`; `verdict()`
/// is "all refused" or the notes; `spin` loops forever.
const TRY: &str = r#"
local notes = {}
local function try(expected, f, ...)
    local ok, err = pcall(f, ...)
    if ok or not tostring(err):find(expected, 1, true) then
        notes[#notes + 1] = #notes + 1 .. ": " .. (ok and "no error" or tostring(err))
    end
end
local function verdict() return #notes == 0 and "all refused" or table.concat(notes, "; ") end
local function spin() while true do end end
local time = require("time")
"#;

#[test]
fn forged_timers_are_refused() {
    returns(
        &format!(
            r#"{TRY} return function()
                local t = time.timer("1h")
                local fake = {{ {{ p = {{ id = 1 }}, id = 1 }} }}
                local state_like = {{ p = {{ id = 1, timers = {{}} }}, id = 1, s = {{}} }}
                for _, f in ipairs({{ fake, state_like, {{}}, time.now(), channel.new() }}) do
                    try("expected a timer", t.stop, f)
                    try("expected a timer", t.reset, f, "1ms")
                    try("expected a timer", t.channel, f)
                end
                if t:stop() ~= true then return "the real timer was disturbed" end
                return verdict()
            end"#
        ),
        &["time"],
        "all refused",
    );
}

#[test]
fn forged_durations_and_times_are_refused_without_metamethods() {
    returns(
        &format!(
            r#"{TRY} return function()
            local evil = setmetatable({{}}, {{ __sub = spin, __add = spin, __lt = spin, __le = spin,
                __idiv = spin, __div = spin, __eq = spin, __index = spin, __concat = spin,
                __tostring = spin, __unm = spin }})
            local now, d = time.now(), time.parse_duration("1s")
            for _, forged in ipairs({{ {{ ns = evil }}, {{ ns = 1.5 }}, {{ ns = "1" }}, setmetatable({{}}, {{ __index = spin }}) }}) do
                local tv = "expected a duration or time value"
                try(tv, now.sub, now, forged) try(tv, now.sub, forged, now)
                try(tv, now.unix, forged) try(tv, now.unix_nano, forged) try(tv, now.format, forged, "x")
                try(tv, d.milliseconds, forged) try(tv, d.seconds, forged) try(tv, d.nanoseconds, forged)
                try(tv, function() return d < forged end) try(tv, function() return forged <= d end)
                local dv = "expected a duration"
                try(dv, now.add, now, forged) try(dv, time.sleep, forged) try(dv, time.after, forged)
                try(dv, time.timer, forged) try(dv, time.ticker, forged)
                if d == forged or now == forged then return "a forged value compared equal" end
            end
            return verdict()
        end"#
        ),
        &["time"],
        "all refused",
    );
}

#[test]
fn proxies_are_empty_and_locked() {
    returns(
        r#"return function()
            local time = require("time")
            local seen = {}
            local objects = { channel.new(1), process.inbox(), time.timer("1h"), time.after("1h"),
                channel.new():case_receive(), errors.new("x"), time.now(), time.parse_duration("1s") }
            for i, o in ipairs(objects) do
                seen[#seen + 1] = tostring(getmetatable(o))
                if type(o) == "channel" then -- a userdata: nothing to read, set or walk
                    local open = pcall(next, o) or pcall(rawget, o, 1) or pcall(rawlen, o)
                        or pcall(rawset, o, 1, 1) or pcall(function() o.x = 1 end)
                    seen[#seen + 1] = open and "open" or "opaque"
                elseif i <= 5 then -- proxies: no state at all
                    for k in pairs(o) do seen[#seen + 1] = tostring(k) end
                    seen[#seen + 1] = tostring(next(o)) .. tostring(rawget(o, 1)) .. rawlen(o)
                end
            end
            return table.concat(seen, " ")
        end"#,
        &["time"],
        "false opaque false opaque false nilnil0 false opaque false nilnil0 false false false",
    );
}

#[test]
fn forged_channels_and_cases_are_refused() {
    returns(
        &format!(
            r#"{TRY} return function()
            local ch = channel.new(1)
            local fake = setmetatable({{}}, {{ __index = {{ send = ch.send, receive = ch.receive }},
                __warren = "channel", __eq = spin }})
            for _, f in ipairs({{ fake, {{}}, ch:case_receive(), time.timer("1h") }}) do
                local c = "expected a channel"
                try(c, ch.send, f, 1) try(c, ch.receive, f) try(c, ch.close, f)
                try(c, ch.case_send, f, 1) try(c, ch.case_receive, f) try(c, process.unlisten, f)
            end
            local case = "is not a channel case"
            try(case, channel.select, {{ fake }})
            try(case, channel.select, {{ {{ s = {{}}, send = false }} }})
            try(case, channel.select, {{ setmetatable({{}}, {{ __warren = "channel case" }}) }})
            try(case, channel.select, {{ ch:case_receive(), ch }})
            local lying = setmetatable({{ default = true }}, {{ __len = spin, __index = spin }})
            if not channel.select(lying).default then return "the lying table was not read raw" end
            return verdict()
        end"#
        ),
        &["time"],
        "all refused",
    );
}

#[test]
fn kernel_objects_cannot_be_sent() {
    returns(
        r#"return function()
            local time = require("time")
            local said = {}
            for _, o in ipairs({ channel.new(), time.timer("1h"), channel.new():case_receive(), { inner = process.inbox() } }) do
                local ok, err = process.send(process.pid(), "t", o)
                said[#said + 1] = tostring(ok) .. " " .. err:message()
            end
            return table.concat(said, "; ")
        end"#,
        &["time"],
        "nil payload: channel cannot be sent; nil payload: timer cannot be sent; \
         nil payload: channel case cannot be sent; nil payload.inner: channel cannot be sent",
    );
}

/// The message methods are reachable from every message, so a process can
/// call them on any value: they read a table raw (its metamethods never
/// run), refuse what is not a table as `rawget` did, and a forged payload
/// count is either refused or read by the kernel's Lua (many payloads),
/// where the process's limits still reach the loop.
#[test]
fn forged_messages_are_read_raw_and_refused() {
    returns(
        &format!(
            r#"{TRY} return function()
            local inbox = process.inbox()
            process.send(process.pid(), "t", 7)
            local m = inbox:receive()
            local trap = setmetatable({{}}, {{ __index = spin, __len = spin, __eq = spin }})
            local said = {{ tostring(m.topic(trap)), tostring(m.from(trap)),
                tostring(m.payload(setmetatable({{ "x", "y", 1, 5 }}, getmetatable(trap))):data()) }}
            local two = m.payload({{ "x", "y", 2, nil, 9 }})
            said[#said + 1] = #two .. ":" .. tostring(two[1]:data()) .. "," .. tostring(two[2]:data())
            for _, bad in ipairs({{ 5, "text", true }}) do
                try("bad argument #1 to 'rawget' (table expected, got " .. type(bad) .. ")", m.topic, bad)
                try("bad argument #1 to 'rawget' (table expected", m.from, bad)
                try("bad argument #1 to 'rawget' (table expected", m.payload, bad)
            end
            try("expected a message, got table", m.payload, {{ "x", "y", "1" }})
            try("expected a message, got table", m.payload, {{ "x", "y", 1.5 }})
            said[#said + 1] = tostring(m:topic()) .. " " .. tostring(m:payload():data())
            said[#said + 1] = verdict()
            return table.concat(said, " ")
        end"#
        ),
        &["time"],
        "nil nil 5 2:nil,9 t 7 all refused",
    );
}

/// `payload:data()` is reachable from every payload, so a process can call
/// it on any value: it reads a table raw (a trap's metamethods never run),
/// answers the value of a table whose `f` is not a string as it is,
/// decodes one whose `f` names an encoding (a bad encoding is `nil, err`,
/// not a raise), and refuses what is not a table as `rawget` did.
#[test]
fn forged_payloads_are_read_raw_by_data() {
    returns(
        &format!(
            r#"{TRY} return function()
            local inbox = process.inbox()
            process.send(process.pid(), "t", 7)
            local data = inbox:receive():payload().data
            local trap = setmetatable({{}}, {{ __index = spin, __len = spin, __eq = spin }})
            local said = {{ tostring(data(trap)), tostring(data({{ 42, f = 7 }})),
                tostring(data(setmetatable({{ 8, f = {{}} }}, getmetatable(trap)))),
                tostring(data({{ '{{"a":3}}', f = "json/plain" }}).a) }}
            local v, err = data({{ "[1", f = "json/plain" }})
            said[#said + 1] = tostring(v) .. "," .. tostring(err and err:kind())
            said[#said + 1] = tostring(data({{ "raw", f = "text/plain" }}))
            for _, bad in ipairs({{ 5, "text", true, false }}) do
                try("bad argument #1 to 'rawget' (table expected, got " .. type(bad) .. ")", data, bad)
            end
            try("bad argument #1 to 'rawget' (table expected, got nil)", data)
            said[#said + 1] = verdict()
            return table.concat(said, " ")
        end"#
        ),
        &["time"],
        "nil 42 8 3 nil,Internal raw all refused",
    );
}

/// A forged count of 2^40 payloads is a loop in the kernel's Lua, run in
/// the process's own resume: its memory limit ends it, the neighbour
/// ticking meanwhile.
#[test]
fn a_forged_payload_count_is_ended_by_the_processs_limits() {
    let out = run(
        r#"return function()
            process.send(process.pid(), "t", 1)
            local m = process.inbox():receive()
            local list = m.payload({ "x", "y", 1 << 40 })
            return "made " .. #list
        end"#,
        &[],
    );
    out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
    out.assert_neighbour_ticks();
}

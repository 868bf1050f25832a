//! Class 3: shared state a process can write or read. Every process of a
//! worker runs in the same Lua VM, so anything the VM holds once — the
//! libraries, the random generator, the CPU clock, the heap size — would be
//! a channel between processes. What is guaranteed:
//!
//! * the libraries (and the tables nested in them, such as
//!   `process.registry`) are read-only: frozen in place by the patched Lua
//!   (`warren_freeze`), which refuses every write, plain or raw, or a
//!   proxy for a table with a metatable of its own; `pairs` over one yields
//!   keys and values through a closure and never hands out the table, so
//!   nothing a process writes, `rawset`s or `setmetatable`s changes what
//!   a victim process sees afterwards (checked against a fingerprint of
//!   every library taken before the attack);
//! * so are the modules `require` gives, the root logger included (one
//!   table for every process of the VM: a method rawset on it ran in every
//!   process that logged, as that process), its children, and every table
//!   a call hands out twice (the registry's version);
//! * `math.random`/`math.randomseed` use a generator per process: seeding
//!   or drawing in one process changes no other process's sequence;
//! * `os.clock()` is the calling process's own run time, not the OS
//!   process's CPU time;
//! * `collectgarbage("count")` is the process's own charged size, not the
//!   VM's; every other `collectgarbage` option raises.

use warren_core::{ErrorKind, ProcError, Runtime, Value};
use warren_tests::run_on;

use crate::harness::{Outcome, app, attack_on, lua, s};

/// Checks, from a fresh process, that the shared libraries work, and
/// returns a fingerprint of them: every key, recursively, with the
/// identity of its value (library functions never move in a VM).
const VICTIM: &str = r#"
local time, json, logger = require("time"), require("json"), require("logger")
local LIBS = { string = string, table = table, math = math, utf8 = utf8, os = os,
    coroutine = coroutine, process = process, channel = channel, errors = errors,
    time = time, json = json, logger = logger }
return function()
    local bad = {}
    local function check(ok, what) if not ok then bad[#bad + 1] = what end end
    check(string.upper("a") == "A" and ("ab"):rep(2) == "abab", "string")
    check(getmetatable("") == false, "string metatable")
    local t = { 1, 3 } table.insert(t, 2, 2)
    check(table.concat(t, ",") == "1,2,3", "table")
    check(math.max(1, 2) == 2 and math.floor(math.pi) == 3, "math")
    check(utf8.char(72, 105) == "Hi", "utf8")
    check(math.type(os.time()) == "integer", "os")
    check(coroutine.wrap(function() return 1 end)() == 1, "coroutine")
    check(type(process.pid()) == "string" and process.event.EXIT == "pid.exit", "process")
    check(type(process.registry.lookup) == "function", "process.registry")
    check(errors.NOT_FOUND == "NotFound" and errors.new("e"):message() == "e", "errors")
    check(channel.new(1) ~= nil, "channel")
    check(json.encode({ 1 }) == "[1]" and time.SECOND == 1000000000, "modules")
    check(pcall(function() logger:with({ a = 1 }):named("victim"):info("checked") end), "logger")
    check(x == nil and injected == nil and string.injected == nil, "a global leaked")
    local lines = {}
    local function walk(name, lib)
        check(not pcall(rawset, lib, "probe", true) and rawget(lib, "probe") == nil, name .. " is writable")
        for k, v in pairs(lib) do
            lines[#lines + 1] = name .. "." .. tostring(k) .. " = " .. tostring(v)
            if type(v) == "table" then walk(name .. "." .. tostring(k), v) end
        end
    end
    for name, lib in pairs(LIBS) do walk(name, lib) end
    table.sort(lines)
    return (#bad == 0 and "clean" or table.concat(bad, ", ")) .. "\n" .. table.concat(lines, "\n")
end"#;

/// Runs `source` as the attack (with `args`) between two runs of the
/// victim, and asserts the victim found everything working and unchanged,
/// and the neighbour ticking. Returns how the attacker ended.
fn poison(source: &str, args: Vec<Value>) -> Result<Value, ProcError> {
    let runtime = app()
        .entry("h:attacker", source)
        .entry("h:victim", VICTIM)
        .start();
    poison_on(&runtime, args)
}

fn poison_on(runtime: &Runtime, args: Vec<Value>) -> Result<Value, ProcError> {
    let before = fingerprint(runtime);
    assert!(before.starts_with("clean\n"), "before the attack: {before}");
    assert!(before.contains("string.upper = "), "{before}");
    let out = attack_on(runtime, "h:attacker", args);
    out.assert_neighbour_ticks();
    assert_eq!(fingerprint(runtime), before, "after {out:?}");
    out.exit
}

fn fingerprint(runtime: &Runtime) -> String {
    // (`utf8.charpattern` is not UTF-8.)
    match run_on(runtime, "h:victim", Vec::new()) {
        Ok(Value::Str(bytes)) => bytes
            .split(|b| *b == b'\n')
            .map(|line| line.escape_ascii().to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        other => panic!("the victim failed: {other:?}"),
    }
}

/// The attack fails with an error containing `text`; nothing changed.
fn refused(source: &str, text: &str) {
    let err = poison(source, Vec::new()).expect_err("the attack was refused");
    assert!(err.message.contains(text), "{text:?} not in {err}");
}

#[test]
fn the_second_value_of_pairs_is_not_the_library() {
    for lib in [
        "string",
        "table",
        "math",
        "os",
        "utf8",
        "coroutine",
        "process",
        "process.registry",
        "channel",
        "errors",
    ] {
        let source =
            format!("return function() local _, s = pairs({lib}); s.upper = function() end end");
        refused(&source, "attempt to index a nil value (local 's')");
    }
}

#[test]
fn pairs_returns_only_an_iterator() {
    let v = poison(
        r#"return function()
            local f, s, c = pairs(string)
            return table.concat({ type(f), type(s), type(c), tostring(f == next) }, " ")
        end"#,
        Vec::new(),
    );
    assert_eq!(v, Ok(s("function nil nil false")));
}

#[test]
fn rawset_on_what_pairs_returned() {
    refused(
        r#"return function() local _, s = pairs(table); rawset(s, "insert", print) end"#,
        "bad argument #1 to 'rawset' (table expected, got nil)",
    );
}

#[test]
fn setmetatable_on_what_pairs_returned() {
    refused(
        r#"return function() local _, s = pairs(math); setmetatable(s, { __index = print }) end"#,
        "bad argument #1 to 'setmetatable' (table expected, got nil)",
    );
}

/// Lua that defines `find_lib(name)`: the library a name such as
/// `"process.registry"` names, as a process reaches it (a module through
/// `require`).
macro_rules! find_lib {
    () => {
        r#"
local function find_lib(name)
    local ok, lib = pcall(require, name)
    if ok then return lib end
    lib = _ENV
    for part in name:gmatch("[^.]+") do lib = lib[part] end
    return lib
end
"#
    };
}

/// Takes the library named by its argument, walks it with the iterator
/// `pairs` returns (also by hand, `local k, v = f()`), and tries to write
/// every key of it and of every table found in it, by assignment, `rawset`
/// and `setmetatable`. Returns "none" if every write was refused and the
/// iterator agreed with indexing, else what got through.
const WRITE_EVERYTHING: &str = concat!(
    find_lib!(),
    r#"
return function(name)
    local lib = find_lib(name)
    local got = {}
    local evil = function() return "pwned" end
    local function try(what, f, ...) if pcall(f, ...) then got[#got + 1] = what end end
    local function attack(tname, t, depth)
        local f, s, c = pairs(t)
        try("write into pairs' second value of " .. tname, function() s.injected = evil end)
        try("rawset into pairs' third value of " .. tname, rawset, c, "injected", evil)
        local k, v = f()
        if k == nil then got[#got + 1] = tname .. " iterates nothing" end
        while k ~= nil do
            local key = tname .. "." .. tostring(k)
            if t[k] ~= v then got[#got + 1] = key .. " differs from indexing" end
            try("write " .. key, function() t[k] = evil end)
            try("rawset " .. key, rawset, t, k, evil)
            if type(v) == "table" then
                try("write into " .. key, function() v.injected = evil end)
                try("rawset into " .. key, rawset, v, "injected", evil)
                try("setmetatable on " .. key, setmetatable, v, { __index = evil })
                if depth < 3 then attack(key, v, depth + 1) end
            end
            k, v = f()
        end
        try("new key in " .. tname, function() t.injected = evil end)
        try("rawset new key in " .. tname, rawset, t, "injected", evil)
        try("setmetatable on " .. tname, setmetatable, t, { __index = evil })
        try("insert into " .. tname, table.insert, t, evil)
        try("move into " .. tname, table.move, { evil }, 1, 1, 1, t)
    end
    attack(name, lib, 1)
    return #got == 0 and "none" or table.concat(got, ", ")
end"#
);

fn nothing_written_through_pairs(libs: &[&str]) {
    let runtime = app()
        .entry("h:attacker", WRITE_EVERYTHING)
        .entry("h:victim", VICTIM)
        .start();
    for lib in libs {
        let v = poison_on(&runtime, vec![s(lib)]);
        assert_eq!(v, Ok(s("none")), "{lib}");
    }
}

#[test]
fn nothing_written_through_pairs_over_lua_libraries() {
    nothing_written_through_pairs(&["string", "table", "math", "utf8", "os", "coroutine"]);
}

#[test]
fn nothing_written_through_pairs_over_warren_libraries() {
    nothing_written_through_pairs(&[
        "process",
        "process.registry",
        "process.event",
        "channel",
        "errors",
    ]);
}

#[test]
fn nothing_written_through_pairs_over_modules() {
    nothing_written_through_pairs(&["time", "json"]);
}

#[test]
fn a_nested_table_from_the_iterator_is_read_only() {
    refused(
        r#"return function()
            for k, v in pairs(process) do
                if k == "registry" then v.lookup = function() return "me" end end
            end
        end"#,
        "attempt to modify read-only table 'process.registry'",
    );
}

#[test]
fn rawset_on_a_nested_library_table() {
    refused(
        r#"return function() rawset(process.event, "EXIT", "pwned") end"#,
        "attempt to modify a read-only table",
    );
}

#[test]
fn setmetatable_on_a_nested_library_table() {
    refused(
        r#"return function() setmetatable(process.registry, { __index = print }) end"#,
        "cannot change a protected metatable",
    );
}

#[test]
fn a_module_is_read_only() {
    refused(
        r#"local time = require("time")
        return function() time.sleep = function() end end"#,
        "attempt to modify read-only table 'time'",
    );
}

#[test]
fn a_library_as_a_chunk_environment_is_read_only() {
    refused(
        r#"return function() load("upper = print", "c", "t", string)() end"#,
        "attempt to modify read-only table 'string'",
    );
}

#[test]
fn table_functions_cannot_write_a_library() {
    refused(
        r#"return function() table.insert(math, print) end"#,
        "attempt to modify read-only table 'math'",
    );
}

/// Tries every instruction and library function that writes a table on
/// the library its argument names, for each of its keys and for new ones:
/// a field with a constant name (existing, new, and set to nil), a
/// computed key, constant and computed integer keys, an upvalue `_ENV`
/// and a chunk environment (the global-assignment instruction), a
/// `__newindex` chain through a table of the attacker's, `rawset`,
/// `table.insert`, `table.remove`, `table.move` and `setmetatable`. Returns
/// "none" when every write raised and every key still holds its value.
const EVERY_WRITE: &str = concat!(
    find_lib!(),
    r#"
return function(name)
    local lib = find_lib(name)
    local got, keys, before = {}, {}, {}
    for k, v in pairs(lib) do keys[#keys + 1] = k; before[k] = v end
    local evil = function() return "pwned" end
    local function try(what, f, ...) if pcall(f, ...) then got[#got + 1] = what end end
    local compiled = 0
    local function chunk(what, src, env)
        -- A key that is a keyword of the dialect (`errors.is`) compiles
        -- to nothing; its computed and raw forms still run.
        local f = load(src, "=" .. what, "t", env)
        if f then compiled = compiled + 1; try(what, f, lib, evil) end
    end
    for _, k in ipairs(keys) do
        if type(k) == "string" and k:match("^[%a_][%w_]*$") then
            chunk("field " .. k, "local t, evil = ... t." .. k .. " = evil")
            chunk("clear " .. k, "local t = ... t." .. k .. " = nil")
            chunk("global " .. k, k .. " = ...", lib)
            chunk("upvalue " .. k, "local _ENV, evil = ... return (function() " .. k .. " = evil end)()")
        end
        try("computed " .. tostring(k), function() lib[k] = evil end)
        try("chain " .. tostring(k), function() setmetatable({}, { __newindex = lib })[k] = evil end)
        try("rawset " .. tostring(k), rawset, lib, k, evil)
    end
    chunk("new field", "local t, evil = ... t.injected = evil")
    chunk("constant index", "local t, evil = ... t[1] = evil")
    chunk("new global", "injected = ...", lib)
    try("computed index", function() local i = 2; lib[i] = evil end)
    try("rawset index", rawset, lib, 1, evil)
    try("insert", table.insert, lib, evil)
    try("remove", table.remove, lib)
    try("move", table.move, { evil, evil }, 1, 2, 1, lib)
    try("setmetatable", setmetatable, lib, {})
    for _, k in ipairs(keys) do
        if rawequal(lib[k], before[k]) == false then got[#got + 1] = tostring(k) .. " changed" end
    end
    if lib.injected ~= nil or lib[1] ~= nil or lib[2] ~= nil then got[#got + 1] = "a new key" end
    if compiled < 3 then got[#got + 1] = "only " .. compiled .. " chunks compiled" end
    return #got == 0 and "none" or table.concat(got, ", ")
end"#
);

#[test]
fn every_kind_of_write_to_a_library_is_refused() {
    let runtime = app()
        .entry("h:attacker", EVERY_WRITE)
        .entry("h:victim", VICTIM)
        .start();
    for lib in [
        "string",
        "table",
        "math",
        "utf8",
        "os",
        "coroutine",
        "process",
        "process.registry",
        "process.event",
        "channel",
        "errors",
        "time",
        "json",
    ] {
        let v = poison_on(&runtime, vec![s(lib)]);
        assert_eq!(v, Ok(s("none")), "{lib}");
    }
}

#[test]
fn every_kind_of_write_to_a_module_is_refused() {
    let runtime = app()
        .entry("h:attacker", EVERY_WRITE)
        .entry("h:victim", VICTIM)
        .start();
    for module in warren_lua::MODULES {
        let v = poison_on(&runtime, vec![s(module)]);
        assert_eq!(v, Ok(s("none")), "{module}");
    }
}

/// Walks everything a process is handed without asking for its own: the
/// sandbox's globals (those of `kernel/sandbox.lua`'s `GLOBALS`) and every
/// module its arguments name, through `require`; every table reached with
/// `pairs`, and what every function reached so returns when called twice
/// without arguments, where both calls return the same table (or tables
/// holding the same one). Each such table is shared by every process of
/// the VM: it must refuse `rawset`, an assignment and `setmetatable`.
/// Returns "none" and the number of calls, or the writable tables' paths.
const SURFACE: &str = r#"
local GLOBAL_NAMES = { "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber",
    "tostring", "type", "xpcall", "rawequal", "rawget", "rawlen", "rawset", "setmetatable",
    "getmetatable", "load", "collectgarbage", "print", "require", "_VERSION", "string", "table",
    "math", "utf8", "os", "coroutine", "process", "channel", "errors", "payload", "subscribe",
    "unsubscribe", "unpack", "integer", "number", "boolean" }
-- Calls that would suspend or replace the caller.
local SKIP = { ["coroutine.yield"] = true, ["process.upgrade"] = true }
return function(...)
    local seen, writable, calls = {}, {}, 0
    local function refused(t)
        return not pcall(rawset, t, "injected", true) and not pcall(function() t.injected = true end)
            and not pcall(setmetatable, t, {}) and rawget(t, "injected") == nil
    end
    local shared
    -- Two results of one call: what both hold is shared.
    local function compare(name, a, b, depth)
        if rawequal(a, b) then return shared(name, a, false) end
        if type(a) == "table" and type(b) == "table" and depth < 4 then
            for k, v in next, a do compare(name .. "." .. tostring(k), v, rawget(b, k), depth + 1) end
        end
    end
    function shared(name, v, call)
        if type(v) == "function" then
            if call and not SKIP[name] then
                calls = calls + 1
                local a, b = table.pack(pcall(v)), table.pack(pcall(v))
                for i = 2, math.max(a.n, b.n) do compare(name .. "()[" .. (i - 1) .. "]", a[i], b[i], 1) end
            end
            return
        end
        if type(v) ~= "table" or seen[v] then return end
        seen[v] = true
        if not refused(v) then writable[#writable + 1] = name end
        for k, x in pairs(v) do shared(name .. "." .. tostring(k), x, call) end
    end
    for _, name in ipairs(GLOBAL_NAMES) do shared(name, _ENV[name], true) end
    for _, name in ipairs({ ... }) do shared('require("' .. name .. '")', require(name), true) end
    return (#writable == 0 and "none" or table.concat(writable, ", ")) .. " after " .. calls .. " calls"
end"#;

#[test]
fn nothing_require_or_the_globals_hand_out_is_writable() {
    // The root logger was (one table that every process's `require`
    // returned), and so was the registry's version object (the same
    // table from every `registry.current_version()`).
    let args = warren_lua::MODULES.iter().map(|m| s(m)).collect();
    let v = poison(SURFACE, args).expect("the walk ran");
    let text = v.as_str().expect("a string").to_owned();
    let calls: u32 = text
        .strip_prefix("none after ")
        .and_then(|rest| rest.strip_suffix(" calls"))
        .unwrap_or_else(|| panic!("writable: {text}"))
        .parse()
        .expect("a count");
    // Every library and module function was called (about 220).
    assert!(calls > 150, "{text}");
}

/// Logs with every method of the root logger and its children; returns
/// what the calls returned and whether the root holds a field of its own.
const LOG_VICTIM: &str = r#"
local logger = require("logger")
return function()
    local out = {}
    for _, level in ipairs({ "debug", "info", "warn", "error" }) do
        out[#out + 1] = tostring((logger[level](logger, "login", { secret = "hunter2" })))
    end
    out[#out + 1] = tostring((logger.info("without the colon")))
    local child = logger:with({ user = "victim" })
    local named = child:named("auth")
    out[#out + 1] = tostring((named:warn("named", { n = 1 })))
    out[#out + 1] = tostring((logger:named("root"):with({ k = "v" }):error("both")))
    local none, err = logger:named("")
    out[#out + 1] = tostring(none) .. " " .. tostring(err:kind())
    out[#out + 1] = tostring(next(logger)) .. " " .. tostring(rawget(logger, "info"))
    return table.concat(out, " ")
end"#;

/// Tries to plant a method (`evil`) on the root logger and on its
/// children, every way a table is written; then has a victim log. Returns
/// the writes that went through and what the victim returned.
const PLANT_ON_LOGGER: &str = r#"
local logger = require("logger")
return function()
    local evil = function() return "pwned" end
    local got = {}
    local function try(what, f, ...) if pcall(f, ...) then got[#got + 1] = what end end
    try("rawset", rawset, logger, "info", evil)
    try("assignment", function() logger.info = evil end)
    try("new key", function() logger.injected = evil end)
    try("setmetatable", setmetatable, logger, { __index = { info = evil } })
    try("chain", function() setmetatable({}, { __newindex = logger }).warn = evil end)
    try("global", load("error = ...", "=c", "t", logger), evil)
    try("insert", table.insert, logger, evil)
    try("move", table.move, { evil }, 1, 1, 1, logger)
    local child = logger:with({ a = 1 })
    try("rawset into a child", rawset, child, "info", evil)
    try("assignment into a child", function() child.with = evil end)
    try("setmetatable on a child", setmetatable, child, {})
    local named = logger:named("n")
    try("rawset into a named child", rawset, named, "warn", evil)
    local seen, err = process.exec("h:logvictim", "test:host")
    return (#got == 0 and "none" or table.concat(got, ", ")) .. " | " .. tostring(seen or err)
end"#;

#[test]
fn no_process_can_plant_a_method_on_the_logger() {
    let runtime = app()
        .entry("h:attacker", PLANT_ON_LOGGER)
        .entry("h:logvictim", LOG_VICTIM)
        .entry("h:victim", VICTIM)
        .start();
    let v = poison_on(&runtime, Vec::new());
    assert_eq!(
        v,
        Ok(s("none | nil nil nil nil nil nil nil nil Invalid nil nil"))
    );
}

#[test]
fn the_root_logger_is_read_only() {
    for (source, text) in [
        (
            r#"return function() require("logger").info = print end"#,
            "attempt to modify read-only table 'logger' (key info)",
        ),
        (
            r#"return function() rawset(require("logger"), "info", print) end"#,
            "attempt to modify a read-only table",
        ),
        (
            r#"return function() setmetatable(require("logger"), {}) end"#,
            "cannot change a protected metatable",
        ),
        (
            r#"return function() require("logger"):with({}).info = print end"#,
            "attempt to modify read-only table 'logger' (key info)",
        ),
        (
            r#"return function() rawset(require("logger"):named("n"), 1, print) end"#,
            "attempt to modify a read-only table",
        ),
    ] {
        refused(source, text);
    }
}

#[test]
fn the_registry_version_is_read_only() {
    for (source, text) in [
        (
            r#"return function()
                rawset(require("registry").current_version(), "id", function() return 2 end)
            end"#,
            "attempt to modify a read-only table",
        ),
        (
            r#"return function() require("registry").versions()[1].id = print end"#,
            "attempt to modify read-only table 'registry version' (key id)",
        ),
        (
            r#"return function() setmetatable(require("registry").snapshot():version(), {}) end"#,
            "cannot change a protected metatable",
        ),
    ] {
        refused(source, text);
    }
}

/// Draws `n` whole random integers, after seeding with `seed` if given.
const DRAW: &str = r#"return function(n, seed)
    if seed then math.randomseed(seed) end
    local out = {}
    for i = 1, n do out[i] = math.random(0) end
    return table.concat(out, " ")
end"#;

/// Seeds with `seed`, tells `parent`, then on each message draws as many
/// numbers as it says and sends them back.
const SEEDER: &str = r#"return function(parent, seed)
    math.randomseed(seed)
    process.send(parent, "seeded")
    local inbox = process.inbox()
    while true do
        local n = inbox:receive():payload():data()
        if n == 0 then return end
        local out = {}
        for i = 1, n do out[i] = math.random(0) end
        process.send(parent, "drawn", table.concat(out, " "))
    end
end"#;

fn random_app(attacker: &str) -> Runtime {
    app()
        .entry("h:attacker", attacker)
        .entry("h:draw", DRAW)
        .entry("h:seeder", SEEDER)
        .start()
}

/// The items of the list the attacker returned.
fn items(out: &Outcome) -> &[Value] {
    match &out.exit {
        Ok(Value::Array(items)) => items,
        _ => panic!("not a list: {out:?}"),
    }
}

fn strings(out: &Outcome) -> Vec<String> {
    let s = |v: &Value| v.as_str().expect("a string").to_owned();
    items(out).iter().map(s).collect()
}

fn ints(out: &Outcome) -> Vec<i64> {
    let int = |v: &Value| match v {
        Value::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    };
    items(out).iter().map(int).collect()
}

#[test]
fn seeding_in_one_process_does_not_seed_another() {
    // A seeds 42 and stays alive; B draws; C and D seed 42 themselves; E,
    // like B, draws unseeded (seeded from the OS).
    let runtime = random_app(
        r#"return function()
            local inbox = process.inbox()
            local a = process.spawn("h:seeder", "test:host", process.pid(), 42)
            assert(inbox:receive():topic() == "seeded")
            local b = process.exec("h:draw", "test:host", 5)
            local c = process.exec("h:draw", "test:host", 5, 42)
            local d = process.exec("h:draw", "test:host", 5, 42)
            local e = process.exec("h:draw", "test:host", 5)
            process.send(a, "draw", 5)
            local drawn = inbox:receive():payload():data()
            process.send(a, "draw", 0)
            return { drawn, b, c, d, e }
        end"#,
    );
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    out.assert_neighbour_ticks();
    let [a, b, c, d, e] = <[String; 5]>::try_from(strings(&out)).expect("five sequences");
    assert_eq!(c, d, "the same seed gives the same sequence");
    assert_eq!(a, c, "A's own draws follow its seed");
    assert_ne!(b, c, "B drew from A's seeded generator");
    assert_eq!(b.split(' ').count(), 5, "{b}");
    assert_ne!(b, e, "two unseeded processes drew the same numbers");
}

#[test]
fn drawing_in_one_process_does_not_advance_another() {
    // B seeds 7 and draws 3; A draws 1000; B draws 3 more: the same 6 as a
    // process that seeds 7 and draws 6 in a row.
    let runtime = random_app(
        r#"return function()
            local inbox = process.inbox()
            local b = process.spawn("h:seeder", "test:host", process.pid(), 7)
            assert(inbox:receive():topic() == "seeded")
            process.send(b, "draw", 3)
            local first = inbox:receive():payload():data()
            local a = process.exec("h:draw", "test:host", 1000)
            for _ = 1, 1000 do math.random() end
            process.send(b, "draw", 3)
            local second = inbox:receive():payload():data()
            process.send(b, "draw", 0)
            return { first .. " " .. second, process.exec("h:draw", "test:host", 6, 7), a }
        end"#,
    );
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    out.assert_neighbour_ticks();
    let seqs = strings(&out);
    assert_eq!(seqs[0], seqs[1], "B's sequence was advanced by A");
    assert_eq!(seqs[2].split(' ').count(), 1000);
}

#[test]
fn random_ranges_follow_lua() {
    let out = lua(
        r#"return function()
            local bad = {}
            local function check(ok, what) if not ok then bad[#bad + 1] = what end end
            local seen = {}
            for _ = 1, 2000 do
                local v = math.random(3, 5)
                check(math.type(v) == "integer" and v >= 3 and v <= 5, "random(3, 5)")
                seen[v] = true
            end
            check(seen[3] and seen[4] and seen[5], "random(3, 5) misses a value")
            for _ = 1, 1000 do
                local v = math.random(4)
                check(v >= 1 and v <= 4, "random(4)")
                local w = math.random(-2, 2)
                check(w >= -2 and w <= 2, "random(-2, 2)")
                local f = math.random()
                check(math.type(f) == "float" and f >= 0 and f < 1, "random()")
            end
            check(math.random(7, 7) == 7, "random(7, 7)")
            check(math.type(math.random(0)) == "integer", "random(0)")
            check(math.type(math.random(math.mininteger, math.maxinteger)) == "integer", "full range")
            local _, empty = pcall(math.random, 5, 4)
            local _, many = pcall(math.random, 1, 2, 3)
            local _, frac = pcall(math.random, 1.5)
            local errs = { tostring(empty), tostring(many), tostring(frac) }
            return table.concat(bad, ", ") .. "|" .. table.concat(errs, "|")
        end"#,
        Vec::new(),
    );
    out.assert_neighbour_ticks();
    let v = out.value();
    let (bad, errs) = v.split_once('|').expect("two parts");
    assert_eq!(bad, "");
    let errs: Vec<&str> = errs.split('|').collect();
    assert!(errs[0].contains("interval is empty"), "{v}");
    assert!(errs[1].contains("wrong number of arguments"), "{v}");
    assert!(
        errs[2].contains("number has no integer representation"),
        "{v}"
    );
}

#[test]
fn an_empty_random_interval_raises() {
    let out = lua("return function() return math.random(5, 4) end", Vec::new());
    out.assert_ended(ErrorKind::Unknown, "interval is empty");
}

/// Spins until its own `os.clock()` advanced `ms` milliseconds (or one
/// second of wall time passed), then sends `parent` how far it advanced.
const SPINNER: &str = r#"
local time = require("time")
return function(parent, ms)
    local c0, t0 = os.clock(), time.now()
    while os.clock() - c0 < ms / 1000 and time.now():sub(t0):milliseconds() < 1000 do end
    process.send(parent, "spun", math.floor((os.clock() - c0) * 1000))
end"#;

#[test]
fn os_clock_does_not_count_another_process_spinning() {
    // The sleeper's clock spans the whole spin: it waits for the report.
    let runtime = app()
        .entry("h:spinner", SPINNER)
        .entry(
            "h:attacker",
            r#"local time = require("time")
            return function()
                local inbox = process.inbox()
                local c0 = os.clock()
                process.spawn("h:spinner", "test:host", process.pid(), 150)
                local r = channel.select({ inbox:case_receive(), time.after("2s"):case_receive() })
                local mine = math.floor((os.clock() - c0) * 1000)
                assert(r.channel == inbox, "the spinner did not report")
                return { mine, r.value:payload():data() }
            end"#,
        )
        .start();
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    out.assert_neighbour_ticks();
    let [mine, spun] = <[i64; 2]>::try_from(ints(&out)).expect("two numbers");
    assert!(spun >= 150, "the spinner stopped early: {spun} ms");
    assert!(
        mine < 20,
        "the sleeper's clock counted {mine} ms while the spinner ran {spun} ms"
    );
}

#[test]
fn os_clock_counts_the_process_own_run_time() {
    // Spins until its clock advanced 50 ms, for at most 250 ms of wall time
    // (its CPU share on a loaded host may be well below the wall time).
    let out = lua(
        r#"local time = require("time")
        return function()
            local c0, t0 = os.clock(), time.now()
            local function wall() return time.now():sub(t0):milliseconds() end
            while os.clock() - c0 < 0.05 and wall() < 250 do end
            return { math.floor((os.clock() - c0) * 1000), wall() }
        end"#,
        Vec::new(),
    );
    out.assert_neighbour_ticks();
    let [clock, wall] = <[i64; 2]>::try_from(ints(&out)).expect("two numbers");
    assert!(clock >= 50, "os.clock advanced {clock} ms in {wall} ms");
    // Its own run time never exceeds the wall time it spanned.
    assert!(
        clock <= wall + 1,
        "os.clock advanced {clock} ms in {wall} ms"
    );
}

/// Holds about 4 MiB, tells `parent` its own count, waits for "stop".
const HOLDER: &str = r#"
local time = require("time")
return function(parent)
    local keep = {}
    for i = 1, 64 do keep[i] = string.rep(string.char(65 + i % 26), 64 << 10) end
    time.sleep("5ms")
    process.send(parent, "holding", math.floor(collectgarbage("count")))
    process.inbox():receive()
    return #keep
end"#;

#[test]
fn collectgarbage_count_does_not_show_another_process() {
    let runtime = app()
        .entry("h:holder", HOLDER)
        .entry(
            "h:attacker",
            r#"return function()
                local inbox = process.inbox()
                local c0 = collectgarbage("count")
                local h = process.spawn("h:holder", "test:host", process.pid())
                local held = inbox:receive():payload():data()
                local c1 = collectgarbage("count")
                process.send(h, "stop")
                return { math.floor(c0), math.floor(c1), held }
            end"#,
        )
        .start();
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    out.assert_neighbour_ticks();
    let v = ints(&out);
    assert!(
        v[2] >= 3 << 10,
        "the holder does not see its own 4 MiB: {v:?}"
    );
    assert!(v[1] < 1 << 10, "the attacker sees the holder: {v:?}");
}

#[test]
fn collectgarbage_count_shows_the_process_own_memory() {
    let out = lua(
        r#"local time = require("time")
        return function()
            local c0 = collectgarbage("count")
            local keep = {}
            for i = 1, 32 do keep[i] = string.rep("x", 64 << 10) end
            time.sleep("5ms")
            return { math.floor(c0), math.floor(collectgarbage("count")), #keep }
        end"#,
        Vec::new(),
    );
    out.assert_neighbour_ticks();
    let v = ints(&out);
    assert!(v[1] - v[0] >= 1 << 10, "2 MiB did not show: {v:?}");
    assert!(v[1] < 8 << 10, "more than the process may hold: {v:?}");
}

#[test]
fn collectgarbage_options_other_than_count_raise() {
    let out = lua(
        r#"return function()
            local refused = {}
            for _, opt in ipairs({ "collect", "step", "isrunning", "incremental",
                    "generational", "restart", "setpause", "setstepmul", "stop" }) do
                local ok, err = pcall(collectgarbage, opt)
                if not ok and tostring(err):find('only "count" is available', 1, true) then
                    refused[#refused + 1] = opt
                end
            end
            local ok, err = pcall(collectgarbage)
            if not ok and tostring(err):find('only "count" is available', 1, true) then
                refused[#refused + 1] = "(none)"
            end
            return table.concat(refused, " ")
        end"#,
        Vec::new(),
    );
    out.assert_neighbour_ticks();
    assert_eq!(
        out.value(),
        "collect step isrunning incremental generational restart setpause setstepmul stop (none)"
    );
}

#[test]
fn collectgarbage_without_arguments_raises() {
    let out = lua("return function() collectgarbage() end", Vec::new());
    out.assert_ended(ErrorKind::Unknown, "only \"count\" is available");
}

#[test]
fn collectgarbage_collect_raises() {
    let out = lua(
        r#"return function() collectgarbage("collect") end"#,
        Vec::new(),
    );
    out.assert_ended(ErrorKind::Unknown, "only \"count\" is available");
}

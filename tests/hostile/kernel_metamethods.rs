//! The kernel's Lua (`guest-lua/src/kernel/*.lua`, one chunk run under
//! frames that are never preempted) and the module chunks it loads
//! (`guest-lua/src/modules/*.lua`) handed values that carry metamethods:
//! the rule is that no kernel or host code runs a process's metamethod
//! implicitly (`..`, `==` between two tables, `<`, `#`, indexing, calls,
//! `tostring`, `pairs`), and that a process's function is called only
//! where the kernel means to, under its protections (`user_text`).
//!
//! The first cases share one shape, holes until they were fixed: the
//! kernel told its own objects by `raw_getmetatable(v) == SomeMT` (or
//! `~=`). That reads the metatable raw, but the comparison is `==` between
//! two tables: Lua then asks for an `__eq` in the metatable of either
//! operand, and the process's metatable may have a metatable of its own
//! with an `__eq` (a "metatable's metatable"). That `__eq` ran under the
//! kernel's frames (unpreemptible, able to raise into them), and its
//! answer decided whether a forged table was taken for an error object, a
//! spawner, a registry snapshot or an `sql.as` wrapper. Each asserts the
//! comparison is raw (`rawequal`); each failed on the code before.
//!
//! The passing cases attack the places that look as dangerous and are
//! not: values with every metamethod recorded (`mark`) handed to errors,
//! time, json, logger, payload, print, the registry, channels, process
//! options and names, coroutine functions, spawn and exec arguments, the
//! spawner builder, `load`, `os`; the sanctioned `__tostring` of print and
//! errors (run preemptibly); and the entry table's `__index`, read in a
//! process's own bottom frame.

use std::sync::Arc;
use std::time::Duration;

use warren_core::ErrorKind;
use warren_lua::Databases;
use warren_sql::{Database, DbConfig, SqliteFile};
use warren_tests::grants;

use crate::harness::{Outcome, app, attack, lua};

/// Prepended to every probe: modules, `mark`/`ran` (a metamethod that
/// records that it ran and answers nothing), `trap` (a table whose
/// metatable has every metamethod a kernel operation could run, each
/// recording), `meta_eq` (a table whose metatable has a metatable with an
/// `__eq` that counts in `eqs` and answers true) and `raised` (the error
/// `f` raises, as text, or "no error").
const PRELUDE: &str = r#"
local time = require("time")
local json = require("json")
local logger = require("logger")
local registry = require("registry")
local ran = {}
local function mark(name) return function() ran[#ran + 1] = name return nil end end
local function ran_text() return #ran == 0 and "none" or table.concat(ran, ",") end
local function trap_mt(with_tostring)
    local mt = { __index = mark("index"), __newindex = mark("newindex"), __len = mark("len"),
        __pairs = mark("pairs"), __eq = mark("eq"), __lt = mark("lt"), __le = mark("le"),
        __concat = mark("concat"), __call = mark("call"), __unm = mark("unm"), __add = mark("add"),
        __sub = mark("sub"), __mul = mark("mul"), __div = mark("div"), __mod = mark("mod"),
        __idiv = mark("idiv"), __band = mark("band"), __shl = mark("shl"), __bnot = mark("bnot"),
        __close = mark("close"), __name = "sly" }
    if with_tostring then mt.__tostring = mark("tostring") end
    return mt
end
local function trap(fields, with_tostring) return setmetatable(fields or {}, trap_mt(with_tostring)) end
local eqs = 0
local function meta_eq(fields, mt_fields)
    local meta = { __eq = function() eqs = eqs + 1 return true end }
    return setmetatable(fields or {}, setmetatable(mt_fields or {}, meta))
end
local function raised(f, ...)
    local ok, e = pcall(f, ...)
    if ok then return "no error" end
    if type(e) == "table" and type(rawget(e, "_message")) == "string" then
        return tostring(e:kind()) .. ": " .. e:message()
    end
    if type(e) == "string" then return e end
    return "(" .. type(e) .. ")"
end
local function res(v, err)
    if (v == nil or v == false) and err ~= nil then return tostring(err:kind()) end
    if v == nil then return "nil" end
    return "ok"
end
"#;

/// Runs `body` (the body of the attacker's main, after [`PRELUDE`]).
fn probe(body: &str) -> Outcome {
    lua(
        &format!("{PRELUDE}\nreturn function(...)\n{body}\nend"),
        Vec::new(),
    )
}

/// The attack's string result, asserting the neighbour ticked after it.
fn value_of(out: &Outcome) -> String {
    out.assert_neighbour_ticks();
    out.value()
}

/// The parts of a result joined with " | ".
fn parts(v: &str) -> Vec<&str> {
    v.split(" | ").collect()
}

// ---------------------------------------------------------------------
// Holes: `raw_getmetatable(v) == KernelMT` runs the `__eq` of the
// metatable's metatable.
// ---------------------------------------------------------------------

#[test]
fn errors_functions_do_not_run_the_eq_of_a_metatables_metatable() {
    let out = probe(
        r#"local out = {}
    local forged = meta_eq({ _kind = "NotFound", _message = "m",
        _stack = "stack traceback:\n\tx.lua:1: in function 'f'" })
    out[#out + 1] = tostring(errors.is(forged, "NotFound"))
    out[#out + 1] = "kind=[" .. errors.wrap(forged, "ctx"):kind() .. "]"
    out[#out + 1] = tostring(errors.call_stack(forged))
    local e = errors.new(meta_eq({ kind = "NotFound", message = "spec" }))
    out[#out + 1] = e:kind() .. "/" .. e:message()
    out[#out + 1] = "eqs=" .. eqs
    return table.concat(out, " | ")"#,
    );
    assert_eq!(
        value_of(&out),
        "false | kind=[] | nil | NotFound/spec | eqs=0"
    );
}

#[test]
fn a_looping_eq_of_a_metatables_metatable_does_not_hold_errors_is() {
    let out = probe(
        r#"local meta = { __eq = function() while true do end end }
    local forged = setmetatable({ _kind = "NotFound" }, setmetatable({}, meta))
    return tostring(errors.is(forged, "NotFound"))"#,
    );
    assert_eq!(value_of(&out), "false");
}

#[test]
fn an_error_value_whose_metatable_has_an_eq_does_not_decide_the_exit() {
    let out = probe(r#"error(meta_eq({ _kind = "NotFound", _text = "forged by __eq" }))"#);
    let err = out.error();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ErrorKind::Unknown, "(table value)")
    );
    out.assert_neighbour_ticks();
}

#[test]
fn a_returned_error_whose_metatable_has_an_eq_does_not_decide_the_exit() {
    let out = probe(r#"return nil, meta_eq({ _kind = "Conflict", _text = "forged by __eq" })"#);
    let err = out.error();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ErrorKind::Unknown, "(table value)")
    );
    out.assert_neighbour_ticks();
}

#[test]
fn logger_fields_do_not_run_the_eq_of_a_metatables_metatable() {
    let out = probe(
        r#"logger:info("x", { f = meta_eq() })
    logger:with({ f = meta_eq() }):warn("y")
    logger.error("z", { g = meta_eq({ _text = "t" }) })
    return "eqs=" .. eqs"#,
    );
    assert_eq!(value_of(&out), "eqs=0");
}

#[test]
fn payload_formats_do_not_run_the_eq_of_a_metatables_metatable() {
    let out = probe(
        r#"local pl = payload.new(meta_eq())
    local f = pl:get_format()
    local t = pl:transcode(payload.format.ERROR)
    return f .. " | " .. tostring(t == nil) .. " | eqs=" .. eqs"#,
    );
    assert_eq!(value_of(&out), "lua/any | true | eqs=0");
}

#[test]
fn a_forged_spawner_is_refused_without_running_the_eq_of_its_metatables_metatable() {
    let out = probe(
        r#"local spawn = process.with_context({}).spawn
    local forged = meta_eq({}, { __metatable = false })
    local ok, err = pcall(spawn, forged, "h:alive", "test:host")
    local what = ok and "spawned" or (tostring(err):find("expected a spawner", 1, true) and "refused" or tostring(err))
    return what .. " | eqs=" .. eqs"#,
    );
    assert_eq!(value_of(&out), "refused | eqs=0");
}

#[test]
fn a_forged_registry_snapshot_is_refused_without_running_the_eq_of_its_metatables_metatable() {
    let out = probe(
        r#"local snap = registry.snapshot()
    local out = {}
    for _, m in ipairs({ "entries", "get", "find", "namespace" }) do
        local ok, err = pcall(snap[m], meta_eq(), "x:y")
        out[#out + 1] = m .. "=" .. (ok and "ok" or
            (tostring(err):find("expected a registry snapshot", 1, true) and "refused" or tostring(err)))
    end
    out[#out + 1] = "eqs=" .. eqs
    return table.concat(out, " | ")"#,
    );
    assert_eq!(
        value_of(&out),
        "entries=refused | get=refused | find=refused | namespace=refused | eqs=0"
    );
}

/// Databases for the sql case: one in memory.
fn memory_db() -> Arc<Databases> {
    let mut dbs = Databases::new();
    let rt = warren_core::io_runtime().handle().clone();
    let config = DbConfig::Sqlite {
        file: SqliteFile::Memory,
        max_lifetime: Duration::from_secs(3600),
        query_timeout: None,
    };
    dbs.insert(Database::open("app.db:mem", config, rt).expect("open"));
    Arc::new(dbs)
}

#[test]
fn sql_handles_and_typed_parameters_are_told_without_running_metamethods() {
    let source = format!(
        r#"{PRELUDE}
local sql = require("sql")
return function()
    local db = assert(sql.get("app.db:mem"))
    local index = 0
    local forged = meta_eq({{}}, {{ __index = function() index = index + 1 return nil end }})
    local out = {{}}
    out[#out + 1] = pcall(db.query, forged, "select 1") and "accepted" or "refused"
    local rows, err = db:query("select ? as v", {{ meta_eq({{ k = "t", v = "forged" }}) }})
    out[#out + 1] = rows and ("v=" .. tostring(rows[1].v)) or tostring(err:kind())
    out[#out + 1] = "eqs=" .. eqs .. " index=" .. index
    return table.concat(out, " | ")
end"#
    );
    let a = app().databases(memory_db()).granted(
        "h:attacker",
        &source,
        grants(&[("db.get", "app.db:mem")]),
    );
    let out = attack(a, "h:attacker", Vec::new());
    assert_eq!(value_of(&out), "refused | Invalid | eqs=0 index=0");
}

// ---------------------------------------------------------------------
// Values with every metamethod, read raw (never holes).
// ---------------------------------------------------------------------

#[test]
fn errors_functions_read_values_with_metamethods_raw() {
    let out = probe(
        r#"local out = {}
    local t = trap({ _kind = "NotFound", _message = "m" })
    out[#out + 1] = tostring(errors.is(t, "NotFound"))
    out[#out + 1] = tostring(errors.is(errors.new("NOT_FOUND", "x"), t))
    out[#out + 1] = tostring(errors.call_stack(t))
    out[#out + 1] = "kind=[" .. errors.wrap(t, "ctx"):kind() .. "]"
    out[#out + 1] = tostring(errors.wrap(nil, t))
    local e = errors.new(trap({ kind = "NotFound", message = "spec", retryable = trap(), details = trap() }))
    out[#out + 1] = e:kind() .. "/" .. e:message() .. "/" .. tostring(e:retryable())
    out[#out + 1] = (pcall(errors.new, trap({ kind = trap() }))) and "accepted" or "kind refused"
    -- A real error object whose kind the process rawset to a trap.
    local real = errors.new("x")
    rawset(real, "_kind", trap())
    out[#out + 1] = tostring(errors.is(real, "NotFound"))
    out[#out + 1] = tostring(errors.is(real, trap()))
    out[#out + 1] = "ran=" .. ran_text()
    return table.concat(out, " | ")"#,
    );
    assert_eq!(
        value_of(&out),
        "false | false | nil | kind=[] | nil | NotFound/spec/true | kind refused | false | false | ran=none"
    );
}

#[test]
fn a_metatable_without_a_metatable_of_its_own_never_reaches_an_eq() {
    // The shape of the cases above, minus the metatable's metatable: the
    // value's own `__eq` is never asked (Lua asks the metatables of the
    // two operands, and the operands are the metatable and the kernel's).
    let out = probe(
        r#"local out = {}
    local t = trap({ _kind = "NotFound", _text = "forged" })
    out[#out + 1] = tostring(errors.is(t, "NotFound"))
    out[#out + 1] = payload.new(t):get_format()
    logger:info("x", { f = t })
    local snap = registry.snapshot()
    out[#out + 1] = (pcall(snap.entries, t)) and "snapshot accepted" or "snapshot refused"
    local prot = trap()
    getmetatable(prot).__metatable = false
    out[#out + 1] = (pcall(process.with_context({}).spawn, prot, "h:alive", "test:host"))
        and "spawner accepted" or "spawner refused"
    out[#out + 1] = "ran=" .. ran_text()
    return table.concat(out, " | ")"#,
    );
    assert_eq!(
        value_of(&out),
        "false | lua/any | snapshot refused | spawner refused | ran=none"
    );
}

#[test]
fn an_error_value_with_metamethods_ends_the_process_as_data() {
    // finish_one reads the value raw (needs_words, err_fields) on the
    // worker's own loop: no metamethod of a value without __tostring runs.
    // Its metamethods loop: one run there would hold the worker for good.
    let out = probe(
        r#"local function spin() while true do end end
    error(setmetatable({ _kind = "NotFound", _text = "forged" }, { __eq = spin, __index = spin,
        __len = spin, __concat = spin, __call = spin, __pairs = spin, __lt = spin, __name = "sly" }))"#,
    );
    let err = out.error();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ErrorKind::Unknown, "(table value)")
    );
    out.assert_neighbour_ticks();
}

#[test]
fn the_sanctioned_tostring_of_print_and_errors_runs_preemptibly() {
    // user_text runs a value's __tostring on purpose, in frames preempt.rs
    // lets a preemption through: each one below runs ~30 ms of the
    // process's own CPU, and the neighbour keeps ticking meanwhile.
    let out = probe(
        r#"local calls = 0
    local slow = setmetatable({}, { __tostring = function()
        calls = calls + 1
        local t0 = os.clock()
        while os.clock() - t0 < 0.03 do end
        return "slow text"
    end })
    print(slow, "and", slow)
    local out = {}
    out[#out + 1] = errors.new({ message = slow }):message()
    out[#out + 1] = errors.new("NOT_FOUND", slow):message()
    out[#out + 1] = tostring(errors.wrap("inner", slow))
    out[#out + 1] = "calls=" .. calls
    return table.concat(out, " | ")"#,
    );
    assert_eq!(
        out.value(),
        "slow text | slow text | slow text: inner | calls=5"
    );
    out.assert_progress_during(20);
}

#[test]
fn the_entry_tables_index_runs_in_the_processs_own_preemptible_frame() {
    // proc_main reads `mod[entry.method]` through the module table's
    // __index: the process's own code, above its bottom frame, so it is
    // preempted like the main it returns.
    let out = lua(
        r#"return setmetatable({}, { __index = function(_, k)
            local t0 = os.clock()
            while os.clock() - t0 < 0.15 do end
            return function() return "main via __index: " .. k end
        end })"#,
        Vec::new(),
    );
    assert_eq!(out.value(), "main via __index: main");
    out.assert_progress_during(20);
}

#[test]
fn process_names_scopes_options_and_channels_are_compared_raw() {
    let out = probe(
        r#"local out = {}
    out[#out + 1] = res(process.registry.register("n1", nil, trap()))
    out[#out + 1] = res(process.registry.unregister("n1", trap()))
    out[#out + 1] = raised(process.registry.register, trap())
    out[#out + 1] = raised(process.registry.register, "n2", trap())
    out[#out + 1] = raised(process.registry.lookup, trap())
    out[#out + 1] = raised(channel.new, trap())
    out[#out + 1] = raised(process.unlisten, trap())
    out[#out + 1] = type(process.listen("t", trap()))
    out[#out + 1] = res(process.set_options(trap({ trap_links = trap() })))
    out[#out + 1] = res(process.set_options({ [trap()] = true }))
    out[#out + 1] = tostring(process.set_options(trap()))
    out[#out + 1] = raised(process.link, trap())
    out[#out + 1] = res(require("ctx").get(trap()))
    out[#out + 1] = raised(require("events").subscribe, trap())
    out[#out + 1] = "ran=" .. ran_text()
    return table.concat(out, " | ")"#,
    );
    let v = value_of(&out);
    let p = parts(&v);
    assert_eq!(p.len(), 15, "{v}");
    assert_eq!(&p[..2], ["Invalid", "Invalid"], "{v}");
    assert!(
        p[2].contains("process.registry.register: name must be a string, got table"),
        "{v}"
    );
    assert!(
        p[3].contains("process.registry.register: pid must be a string, got table"),
        "{v}"
    );
    assert!(
        p[4].contains("process.registry.lookup: name must be a string, got table"),
        "{v}"
    );
    assert!(
        p[5].contains("channel.new: capacity must be a non-negative integer, got (table value)"),
        "{v}"
    );
    assert!(p[6].contains("expected a channel, got table"), "{v}");
    assert_eq!(
        &p[7..],
        [
            "channel", "Invalid", "Invalid", "true", p[11], "Invalid", p[13], "ran=none"
        ],
        "{v}"
    );
    assert!(p[11].contains("process.link: pid must be a string"), "{v}");
    assert!(
        p[13].contains("events.subscribe: system must be a string"),
        "{v}"
    );
}

#[test]
fn time_values_with_metamethods_are_read_raw() {
    let out = probe(
        r#"local out = {}
    local ms = trap({ ns = 1000000 })
    time.sleep(ms)
    time.after(ms):receive()
    local tm = time.timer(ms)
    tm:reset(trap({ ns = 2000000 }))
    tm:channel():receive()
    local tk = time.ticker(ms)
    tk:channel():receive()
    tk:stop()
    out[#out + 1] = res(time.load_location(trap()))
    out[#out + 1] = raised(time.date, trap())
    out[#out + 1] = raised(time.date, 2020, 1, 1, 0, 0, 0, 0, trap())
    out[#out + 1] = raised(time.unix, trap())
    out[#out + 1] = raised(time.fixed_zone, "x", trap())
    out[#out + 1] = raised(time.parse, "2006", "2020", trap())
    local now = time.now()
    out[#out + 1] = tostring(now:before(trap({ ns = 0 }))) .. "," .. tostring(now:after(trap({ ns = 0 })))
    out[#out + 1] = raised(now.add, now, trap())
    out[#out + 1] = raised(now.sub, now, trap())
    local one, two = time.parse_duration("1s"), time.parse_duration("2s")
    -- The kernel's own __lt and __eq, reading the other operand raw.
    out[#out + 1] = tostring(one < two) .. "," .. tostring(one == trap({ ns = 1000000000 }))
    out[#out + 1] = res(registry.snapshot_at(trap()))
    out[#out + 1] = "ran=" .. ran_text()
    return table.concat(out, " | ")"#,
    );
    let v = value_of(&out);
    let p = parts(&v);
    assert_eq!(p.len(), 12, "{v}");
    assert_eq!(p[0], "NotFound", "{v}");
    assert!(
        p[1].contains("time.date: argument 1 must be an integer"),
        "{v}"
    );
    assert!(p[2].contains("time.date: expected a location"), "{v}");
    assert!(
        p[3].contains("time.unix: seconds must be an integer"),
        "{v}"
    );
    assert!(
        p[4].contains("time.fixed_zone: offset must be an integer"),
        "{v}"
    );
    assert!(p[5].contains("time.parse: expected a location"), "{v}");
    assert_eq!(p[6], "false,true", "{v}");
    assert!(p[7].contains("expected a duration"), "{v}");
    assert!(p[8].contains("expected a duration or time value"), "{v}");
    assert_eq!(&p[9..], ["true,true", "NotFound", "ran=none"], "{v}");
}

#[test]
fn json_logger_payload_and_print_read_values_with_metamethods_raw() {
    let out = probe(
        r#"local nested = { a = trap({ x = 1 }), list = trap({ 1, 2 }), deep = { trap() } }
    json.encode(nested)
    json.encode(trap())
    logger:info(trap(), { a = trap({ x = 1 }), b = nested, c = errors.new("x"), [trap()] = 1 })
    logger.info(trap())
    logger.warn("no colon", trap({ f = 1 }))
    logger:with(trap({ f = trap() })):warn("w", trap({ g = 1 }))
    local out = {}
    out[#out + 1] = res(logger:named(trap()))
    local t = trap()
    local pl = payload.new(t)
    out[#out + 1] = pl:get_format()
    out[#out + 1] = tostring(rawequal(pl:data(), t))
    local none, err = pl:transcode(trap())
    out[#out + 1] = tostring(none) .. ":" .. err:message()
    pl:transcode(payload.format.JSON)
    pl:transcode(payload.format.STRING)
    print(trap(), nested, trap({ 1 }))
    out[#out + 1] = "ran=" .. ran_text()
    return table.concat(out, " | ")"#,
    );
    assert_eq!(
        value_of(&out),
        "Invalid | lua/any | true | nil:payload: cannot transcode to (table value) | ran=none"
    );
}

#[test]
fn coroutine_functions_neither_call_nor_compare_values_with_metamethods() {
    let out = probe(
        r#"local callable = trap()
    local out = {}
    out[#out + 1] = (pcall(coroutine.wrap, callable)) and "wrap accepted" or "wrap refused"
    out[#out + 1] = (pcall(coroutine.spawn, callable)) and "spawn accepted" or "spawn refused"
    out[#out + 1] = (pcall(coroutine.create, callable)) and "create accepted" or "create refused"
    pcall(coroutine.resume, callable)
    pcall(coroutine.close, callable)
    pcall(coroutine.status, callable)
    -- Values yielded and raised through the kernel's resume.
    local co = coroutine.create(function() coroutine.yield(trap()) error(trap()) end)
    local ok1, y = coroutine.resume(co)
    local ok2, e = coroutine.resume(co)
    out[#out + 1] = tostring(ok1) .. "," .. type(y) .. "," .. tostring(ok2) .. "," .. type(e)
    out[#out + 1] = tostring((pcall(coroutine.wrap(function() error(trap()) end))))
    -- A pending __close that raises a trap, closed through the kernel.
    local c2 = coroutine.create(function()
        local x <close> = setmetatable({}, { __close = function() error(trap()) end })
        coroutine.yield()
    end)
    coroutine.resume(c2)
    local okc, ec = coroutine.close(c2)
    out[#out + 1] = tostring(okc) .. "," .. type(ec)
    out[#out + 1] = "ran=" .. ran_text()
    return table.concat(out, " | ")"#,
    );
    assert_eq!(
        value_of(&out),
        "wrap refused | spawn refused | create refused | true,table,false,table | false | false,table | ran=none"
    );
}

#[test]
fn spawn_exec_and_builder_arguments_with_metamethods_are_read_raw() {
    let out = probe(
        r#"local out = {}
    local b = process.with_context(trap({ k = "v" }))
    b = b:with_options(trap())
    b = b:with_message("hello", trap({ 1 }))
    out[#out + 1] = raised(b.with_name, b, trap())
    out[#out + 1] = raised(b.with_message, b, trap())
    out[#out + 1] = raised(process.with_context, { [trap()] = 1 })
    local pid = b:spawn("h:alive", "test:host", trap({ x = 1 }), { nested = trap() })
    local pid2 = process.spawn("h:alive", "test:host", trap({ x = 1 }), { nested = trap() })
    local v = process.exec("h:alive", "test:host", { nested = trap() }, trap())
    out[#out + 1] = raised(process.exec, trap(), "test:host")
    out[#out + 1] = raised(process.spawn, "h:alive", trap())
    out[#out + 1] = raised(process.upgrade, trap())
    out[#out + 1] = "ran=" .. ran_text()
    return table.concat(out, " | ")"#,
    );
    let v = value_of(&out);
    let p = parts(&v);
    assert_eq!(p.len(), 7, "{v}");
    assert!(
        p[0].contains("spawner:with_name: name must be a string, got table"),
        "{v}"
    );
    assert!(
        p[1].contains("spawner:with_message: topic must be a string, got table"),
        "{v}"
    );
    assert!(
        p[2].contains("keys must be strings, got (table value)"),
        "{v}"
    );
    assert!(
        p[3].contains("process.exec: entry id must be a string"),
        "{v}"
    );
    assert!(p[4].contains("host must be a string"), "{v}");
    assert!(
        p[5].contains("process.upgrade: entry id must be a string"),
        "{v}"
    );
    assert_eq!(p[6], "ran=none", "{v}");
}

#[test]
fn registry_filters_and_ids_with_metamethods_are_compared_raw() {
    let out = probe(
        r#"local out = {}
    local found = registry.find({ kind = trap(), [".id"] = trap(), meta = trap(), ["meta.x"] = trap() })
    out[#out + 1] = type(found) .. ":" .. rawlen(found)
    out[#out + 1] = type(registry.find(trap()))
    out[#out + 1] = raised(registry.get, trap())
    out[#out + 1] = raised(registry.parse_id, trap())
    local snap = registry.snapshot()
    out[#out + 1] = rawlen(snap:find({ kind = trap() })) .. "," .. rawlen(snap:namespace(trap()))
    out[#out + 1] = raised(snap.get, snap, trap())
    out[#out + 1] = "ran=" .. ran_text()
    return table.concat(out, " | ")"#,
    );
    let v = value_of(&out);
    let p = parts(&v);
    assert_eq!(p.len(), 7, "{v}");
    assert_eq!(&p[..2], ["table:0", "table"], "{v}");
    assert!(p[2].contains("registry.get: id must be a string"), "{v}");
    assert!(
        p[3].contains("registry.parse_id: id must be a string"),
        "{v}"
    );
    assert_eq!(p[4], "0,0", "{v}");
    assert!(p[5].contains("registry.get: id must be a string"), "{v}");
    assert_eq!(p[6], "ran=none", "{v}");
}

#[test]
fn load_os_and_collectgarbage_arguments_with_metamethods_are_read_raw() {
    let out = probe(
        r#"local out = {}
    local f, why = load("return 1", "n", trap())
    out[#out + 1] = tostring(f) .. ":" .. why
    out[#out + 1] = raised(load, "return 1", trap())
    local g = load("return x", "n", "t", trap({ x = 5 }))
    out[#out + 1] = tostring(g())
    out[#out + 1] = raised(collectgarbage, trap())
    out[#out + 1] = raised(os.time, trap({ year = 2020, month = 1, day = 1, hour = trap() }))
    out[#out + 1] = math.type(os.time(trap({ year = 2020, month = 1, day = 1 })))
    out[#out + 1] = raised(os.date, "%Y", trap())
    out[#out + 1] = raised(os.date, trap())
    out[#out + 1] = "ran=" .. ran_text()
    return table.concat(out, " | ")"#,
    );
    let v = value_of(&out);
    let p = parts(&v);
    assert_eq!(p.len(), 9, "{v}");
    assert_eq!(
        p[0], "nil:load: only text chunks can be loaded (mode must be \"t\")",
        "{v}"
    );
    assert!(p[1].contains("string expected, got sly"), "{v}");
    assert_eq!(p[2], "5", "{v}");
    assert!(p[3].contains("collectgarbage: only \"count\""), "{v}");
    assert!(p[4].contains("field 'hour' is not an integer"), "{v}");
    assert_eq!(p[5], "integer", "{v}");
    assert!(p[6].contains("number expected, got sly"), "{v}");
    assert!(p[7].contains("string expected, got sly"), "{v}");
    assert_eq!(p[8], "ran=none", "{v}");
}

#[test]
fn funcs_executor_arguments_with_metamethods_are_read_raw() {
    let out = probe(
        r#"local funcs = require("funcs")
    local out = {}
    local ex = funcs.new()
    out[#out + 1] = res(ex:with_context(trap({ k = trap() })))
    out[#out + 1] = res(ex:with_options(trap({ timeout = trap() })))
    out[#out + 1] = res(ex:with_options(trap()))
    out[#out + 1] = res(funcs.call(trap()))
    out[#out + 1] = res(funcs.async(trap()))
    out[#out + 1] = raised(ex.call, trap(), "a:b")
    out[#out + 1] = "ran=" .. ran_text()
    return table.concat(out, " | ")"#,
    );
    let v = value_of(&out);
    let p = parts(&v);
    assert_eq!(p.len(), 7, "{v}");
    assert_eq!(&p[1..5], ["Invalid", "ok", "Invalid", "Invalid"], "{v}");
    assert!(p[5].contains("call: expected an executor"), "{v}");
    assert_eq!(p[6], "ran=none", "{v}");
}

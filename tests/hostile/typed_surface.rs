//! Typed Lua and the small data modules: type values (`T(v)`, `T:is(v)`,
//! reflection, `==`/`<=`, generic instantiation), the translator behind
//! every entry and every `load`, `__warren_types`, the `logger` module and
//! `base64`/`hash`/`uuid`/`crypto`.
//!
//! Guaranteed (docs/architecture.md, "Security model", and typed-lua.md
//! §3.9): validation, comparison and reflection read user values raw (no
//! metamethod runs), stop at depth 64 and poll the process's budget every
//! 4,096 values; type values and `__warren_types` are immutable; the
//! translator is bounded (nesting 200, 16 MiB, 100k IR nodes,
//! instantiation depth 64) and its errors are clean; the logger reads
//! fields raw and bounds a line; the data modules check every guest number
//! against a named bound before they work. Each case asserts the exact
//! outcome and that the neighbour on the same worker keeps ticking.
//! Attacks that still succeed are kept, ignored, with the hole they show.

use std::time::Duration;

use warren_core::{ErrorKind, HostLimits};

use crate::harness::{self, Outcome, alone, app, attack, lua};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Put after the attacker's type declarations: modules, `raised` (the
/// error `f` raises as text, or "no error"), `res` (a `nil, err` result as
/// "KIND: message", anything else as "ok"), `spin`, and `mark`/`ran_text`
/// (metamethods that record that they ran).
const PRELUDE: &str = r#"
local logger = require("logger")
local hash = require("hash")
local base64 = require("base64")
local uuid = require("uuid")
local crypto = require("crypto")
local time = require("time")
local function raised(f, ...)
    local ok, e = pcall(f, ...)
    if ok then return "no error" end
    if type(e) == "table" and rawget(e, "_message") then return tostring(e:kind()) .. ": " .. tostring(e:message()) end
    return tostring(e)
end
local function res(v, err)
    if v == nil and err ~= nil then
        if type(err) == "table" then return tostring(err:kind()) .. ": " .. tostring(err:message()) end
        return "err: " .. tostring(err)
    end
    if v == nil then return "nil" end
    return "ok"
end
local function spin() while true do end end
local ran = {}
local function mark(name) return function() ran[#ran + 1] = name return nil end end
local function ran_text() return #ran == 0 and "none" or table.concat(ran, ",") end
-- A table carrying every metamethod, each recording that it ran.
local function evil(t)
    return setmetatable(t or {}, { __index = mark("index"), __newindex = mark("newindex"),
        __len = mark("len"), __pairs = mark("pairs"), __eq = mark("eq"), __lt = mark("lt"),
        __le = mark("le"), __tostring = mark("tostring"), __call = mark("call"),
        __concat = mark("concat"), __name = "evil" })
end
-- 45 keys whose border is 2^44.
local function lying()
    local t = {}
    for i = 44, 0, -1 do t[1 << i] = i end
    return t
end
"#;

/// The attacker: `decls` (type declarations at the chunk's top level),
/// then [`PRELUDE`], then `body` as its main.
fn source(decls: &str, body: &str) -> String {
    format!("{decls}\n{PRELUDE}\nreturn function(...)\n{body}\nend")
}

/// Runs the attacker made of `decls` and `body`.
fn typed(decls: &str, body: &str) -> Outcome {
    lua(&source(decls, body), Vec::new())
}

/// Runs it and returns its result split on " | ", asserting the
/// neighbour kept ticking.
fn results(decls: &str, body: &str) -> Vec<String> {
    let out = typed(decls, body);
    out.assert_neighbour_ticks();
    out.value().split(" | ").map(str::to_owned).collect()
}

/// Asserts `got` contains every fragment.
fn has(got: &str, fragments: &[&str]) {
    for f in fragments {
        assert!(got.contains(f), "{f:?} not in {got:?}");
    }
}

/// The attack was ended by the stuck limit or the cpu budget.
fn stopped(out: &Outcome) {
    let err = out.error();
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err}");
    assert!(
        err.message.contains("could be preempted")
            || err.message.contains("cpu budget exceeded")
            || err.message.contains("validation stopped"),
        "{err}"
    );
    out.assert_neighbour_ticks();
}

/// The validation was stopped at the attacker's `cpu_slice` with the
/// error typed-lua.md §3.5 gives (the attacker caught it and returned its
/// text), in well under the stuck limit a check used to hold the worker
/// for, and the neighbour ticked.
fn stopped_at_slice(out: &Outcome) {
    let got = out.value();
    assert!(
        got.contains("validation stopped: cpu budget exceeded"),
        "{got}"
    );
    out.assert_neighbour_ticks();
}

/// The harness's limits with more memory per process (for attacks that
/// need big strings of their own) and optionally no cpu budget.
fn roomy(budget: Option<Duration>) -> HostLimits {
    HostLimits {
        memory_per_process: 192 << 20,
        memory_total: 512 << 20,
        cpu_budget: budget,
        ..harness::limits()
    }
}

// ---------------------------------------------------------------------------
// 1. Metamethods never run
// ---------------------------------------------------------------------------

const RECORDS: &str = "type P = {x: number, y: number}
type Deep = {p: P, tags: {string}, m: {[string]: number}}
type Box<T> = {v: T}
type S = string";

#[test]
fn validation_reads_values_raw_and_runs_no_metamethod() {
    let got = results(
        RECORDS,
        r#"local good = evil({ x = 1, y = 2 })
        local bad = evil({ x = 1 })
        local deep = evil({ p = evil({ x = 1, y = 2 }), tags = evil({ "a", "b" }), m = evil({ k = 1 }) })
        local a, e1 = P:is(good)
        local b, e2 = P:is(bad)
        local c = P(good)
        local d = raised(P, bad)
        local e, e3 = Deep:is(deep)
        local f, e4 = Deep:is(evil({ p = good, tags = evil({ 1 }), m = evil({}) }))
        local g = raised(P.is, good)
        local h = raised(S, evil())
        return table.concat({
            tostring(rawequal(a, good)) .. " " .. tostring(e1),
            tostring(b) .. " " .. e2:message(),
            tostring(rawequal(c, good)),
            d,
            tostring(rawequal(e, deep)) .. " " .. tostring(e3),
            tostring(f) .. " " .. e4:message(),
            g,
            h,
            ran_text(),
        }, " | ")"#,
    );
    assert_eq!(got[0], "true nil");
    assert_eq!(got[1], "nil y: required field missing");
    assert_eq!(got[2], "true");
    has(&got[3], &["expected P, got table"]);
    assert_eq!(got[4], "true nil");
    assert_eq!(got[5], "nil tags[1]: expected string, got number");
    assert_eq!(got[6], "no error");
    has(&got[7], &["expected S, got table"]);
    assert_eq!(got[8], "none");
}

#[test]
fn comparing_and_reflecting_types_runs_no_metamethod() {
    let got = results(
        RECORDS,
        r#"local v = evil({ x = 1, y = 2 })
        local out = {
            tostring(P == v), tostring(v == P), tostring(rawequal(P, v)),
            raised(function() return P <= v end),
            raised(function() return P < v end),
            tostring(P == S), tostring(P <= P), tostring(S <= S),
        }
        -- Reflection methods called with a hostile receiver or argument.
        for _, m in ipairs({ "kind", "name", "elem", "key", "val", "inner", "ret", "fields",
                "variants", "params", "tparams" }) do
            local ok1 = pcall(P[m], v)
            local ok2 = pcall(P[m], P, v, v)
            out[#out + 1] = m .. "=" .. tostring(ok1 and ok2)
        end
        out[#out + 1] = tostring(P.x) .. " " .. tostring(P[v]) .. " " .. tostring(P[1])
        out[#out + 1] = raised(Box, v) .. " / " .. raised(Box, S, v) .. " / " .. raised(Box, S, S)
        out[#out + 1] = ran_text()
        return table.concat(out, " | ")"#,
    );
    // The table's own __eq is never asked: a type and a table are not equal.
    assert_eq!(&got[..3], ["false", "false", "false"]);
    // `<=`/`<` with a non-type are false, without asking the table.
    assert_eq!(got[3], "no error");
    assert_eq!(got[4], "no error");
    assert_eq!(&got[5..8], ["false", "true", "true"]);
    for g in &got[8..19] {
        assert!(g.ends_with("=true"), "{got:?}");
    }
    assert_eq!(got[19], "number nil nil");
    has(&got[20], &["expected Box, got table"]);
    has(
        &got[20],
        &[
            "arguments must be all types",
            "expects 1 type arguments, got 2",
        ],
    );
    assert_eq!(got[21], "none");
}

#[test]
fn logger_fields_and_data_module_arguments_run_no_metamethod() {
    let got = results(
        "",
        r#"local v = evil({ a = 1 })
        local out = {}
        out[1] = raised(logger.info, logger, v, v)
        out[2] = raised(logger.info, logger, "m", { f = v, g = evil({ 1, 2 }), e = evil() })
        out[3] = raised(logger.with, logger, v)
        out[4] = raised(logger.info, v, "m")
        out[5] = raised(function() logger:with(v):warn("x", v) end)
        out[6] = res(hash.sha256(v))
        out[7] = res(base64.encode(v))
        out[8] = res(uuid.parse(v))
        out[9] = res(crypto.random.bytes(v))
        out[10] = res(crypto.pbkdf2(v, v, v, v, v))
        out[11] = res(crypto.hmac.sha256(v, v))
        out[12] = res(uuid.validate(v))
        out[13] = res(uuid.v5(v, v))
        out[14] = ran_text()
        return table.concat(out, " | ")"#,
    );
    for g in &got[..5] {
        assert_eq!(g, "no error", "{got:?}");
    }
    has(&got[5], &["Invalid", "hash.sha256", "table"]);
    has(&got[6], &["Invalid", "base64.encode", "table"]);
    has(&got[7], &["Invalid", "uuid.parse", "table"]);
    has(&got[8], &["Invalid", "crypto.random.bytes", "table"]);
    has(&got[9], &["Invalid", "crypto.pbkdf2", "table"]);
    has(&got[10], &["Invalid", "crypto.hmac.sha256", "table"]);
    assert_eq!(got[11], "ok"); // `false`: not a UUID
    has(&got[12], &["Invalid", "uuid.v5"]);
    assert_eq!(got[13], "none");
}

// ---------------------------------------------------------------------------
// 2-3. Huge, deep, cyclic, shared and lying values
// ---------------------------------------------------------------------------

const RECURSIVE: &str = "type N = {next: N?}
type T2 = {l: T2?, r: T2?}
type L = {integer}
type M = {[string]: integer}
type A = {{{{integer}}}}";

#[test]
fn deep_and_cyclic_values_stop_at_depth_64() {
    let got = results(
        RECURSIVE,
        r#"local deep = {} local c = deep
        for _ = 1, 100000 do c.next = {} c = c.next end
        local cyc = {} cyc.next = cyc
        local cyc2 = { l = {} } cyc2.l.r = cyc2
        local nested = {} local n = nested
        for _ = 1, 1000 do n[1] = {} n = n[1] end
        local a, e1 = N:is(deep)
        local b, e2 = N:is(cyc)
        local d, e3 = T2:is(cyc2)
        local f, e4 = A:is(nested)
        return table.concat({
            tostring(a) .. " " .. e1:message(), tostring(b) .. " " .. e2:message(),
            tostring(d) .. " " .. e3:message(), tostring(f) .. " " .. e4:message(),
            raised(N, cyc),
        }, " | ")"#,
    );
    let chain = ["next"; 64].join(".");
    assert_eq!(
        got[0],
        format!("nil {chain}: expected N, got recursion limit exceeded")
    );
    assert_eq!(got[0], got[1]);
    has(&got[2], &["nil ", "recursion limit exceeded"]);
    has(&got[3], &["nil [1][1][1][1]: expected integer, got table"]);
    has(&got[4], &["expected N, got table"]);
}

/// Types that reach themselves through unions only: each union doubles
/// the alias chains, 2^64 of them at the depth cap.
const SELF_UNIONS: &str = "type A = A | A
type B = string | B | B
type C = D | C
type D = C | D
type R = { f: A }
type G<T> = G<T> | G<T> | T
type GI = G<integer>";

#[test]
fn types_that_are_unions_of_themselves_fail_at_once_in_a_loop() {
    // One check of A held the worker until the stuck limit ended the
    // process (250 ms each); a loop of them must run to its end, each
    // failing as too deep, with the neighbour ticking throughout.
    let got = results(
        SELF_UNIONS,
        r#"local fails = 0
        for _ = 1, 200 do
            if A:is(1) == nil then fails = fails + 1 end
            if C:is(true) == nil then fails = fails + 1 end
            if R:is({ f = 1 }) == nil then fails = fails + 1 end
            if GI:is("x") == nil then fails = fails + 1 end
        end
        local _, e = A:is(1)
        local function bar(text) return (text:gsub("|", "or")) end
        return table.concat({ fails, tostring(B:is("s")), bar(e:message()), bar(raised(A, 1)) }, " | ")"#,
    );
    assert_eq!(got[0], "800");
    assert_eq!(got[1], "s");
    assert_eq!(got[2], "expected A or A, got number");
    has(&got[3], &["expected A, got number"]);
}

#[test]
fn a_shared_dag_is_cut_off_by_the_budget_poll() {
    // 2^40 paths through 40 shared tables: depth stays under 64, so only
    // the budget poll (every 4,096 values) can stop it, once the slice is
    // over.
    let out = typed(
        RECURSIVE,
        r#"local dag = {}
        for _ = 1, 40 do dag = { l = dag, r = dag } end
        local v, err = T2:is(dag)
        return tostring(v) .. " " .. tostring(err)"#,
    );
    stopped_at_slice(&out);
}

#[test]
fn checks_that_each_outlast_a_slice_let_the_neighbour_run_between_them() {
    // A union that tries both branches at every level doubles its work
    // per level: each check of a 20-deep chain takes seconds. Each used to
    // hold the worker until the stuck limit ended the process, 250 ms
    // with the neighbour stopped; now each fails at the slice, the process
    // is preempted, and the neighbour runs between the checks.
    let body = r#"local t = { x = 5 }
        for _ = 1, 20 do t = { x = t } end
        local stopped = 0
        for _ = 1, 40 do
            local ok, e = U:is(t)
            if ok == nil and e:kind() == errors.RATE_LIMITED and e:message() == "validation stopped: cpu budget exceeded" then
                stopped = stopped + 1
            end
        end
        return tostring(stopped)"#;
    let out = attack(
        app().limits(roomy(None)).entry(
            "h:attacker",
            &source("type U = {x: U} | {x: U, y: number}", body),
        ),
        "h:attacker",
        Vec::new(),
    );
    assert_eq!(out.value(), "40", "{out:?}");
    // 40 checks of a slice (2 ms) each, with the neighbour's 1 ms timer
    // taken between them.
    out.assert_progress_during(10);
}

#[test]
fn a_huge_map_and_a_huge_array_are_cut_off_by_the_budget() {
    // Each validation alone is far past the stuck limit; each is stopped.
    for body in [
        r#"local t = {} for i = 1, 1000000 do t["k" .. i] = i end
        for _ = 1, 1000 do M:is(t) end return "done""#,
        r#"local t = {} for i = 1, 1000000 do t[i] = i end
        for _ = 1, 1000 do L:is(t) end return "done""#,
    ] {
        let out = attack(
            app()
                .limits(roomy(Some(Duration::from_millis(300))))
                .entry("h:attacker", &source(RECURSIVE, body)),
            "h:attacker",
            Vec::new(),
        );
        stopped(&out);
    }
}

#[test]
fn one_visit_of_much_work_is_counted_by_its_work() {
    // The budget was asked every 4,096 values whatever each cost: 200
    // pattern checks of a 16 MiB string held a worker 7.5 s, and a record
    // field named by 1 MB was built at every visit (4,000 visits, 2.4 s).
    // Now a pattern's bytes and a field name's length count as work.
    let pattern = r#"local s = string.rep("a", 4 << 20) .. "12x"
        local t = {} for i = 1, 1000 do t[i] = s end
        local ok, e = PL:is(t)
        return tostring(ok) .. " " .. tostring(e)"#;
    let field = r#"local name = string.rep("f", 1000000)
        local L = load("type R = {" .. name .. "?: number}\ntype L = {R}\nreturn L")()
        local v, t = {}, {}
        for i = 1, 40000 do t[i] = v end
        local ok, e = L:is(t)
        return tostring(ok) .. " " .. tostring(e)"#;
    for body in [pattern, field] {
        let out = attack(
            app().limits(roomy(None)).entry(
                "h:attacker",
                &source(
                    "type PE = string @pattern(\"[0-9][0-9]x\")\ntype PL = {PE}",
                    body,
                ),
            ),
            "h:attacker",
            Vec::new(),
        );
        stopped_at_slice(&out);
        assert!(out.took < Duration::from_secs(4), "{out:?}");
    }
}

#[test]
fn a_lying_border_is_walked_only_until_the_slice_is_over() {
    // 45 keys with a border of 2^44: the array check walks 1..2^44 raw,
    // polling the budget every 4,096 values, until the process's slice is
    // over and the check fails.
    let out = typed(
        RECURSIVE,
        r#"local v, err = L:is(lying())
        return tostring(v) .. " " .. tostring(err and err:message())"#,
    );
    stopped_at_slice(&out);
    assert!(out.took < Duration::from_secs(5), "{out:?}");
    // Validators and maps look at the raw length / the 45 pairs only.
    let got = results(
        "type VM = {[integer]: integer}\ntype VS = string @max_len(3)",
        r#"local b = VM:is(lying())
        local c, e = VM:is(setmetatable(lying(), { __len = spin }))
        return tostring(b ~= nil) .. " | " .. tostring(c ~= nil) .. " " .. tostring(e) .. " | " .. ran_text()"#,
    );
    assert_eq!(got, ["true", "true nil", "none"]);
    // A validator on an array type walks the array first: stopped the same way.
    let out = typed(
        "type V = {integer} @max_len(3)",
        "local a, e = V:is(lying()) return tostring(e)",
    );
    stopped_at_slice(&out);
}

// ---------------------------------------------------------------------------
// 4. Forged and escaping type values
// ---------------------------------------------------------------------------

#[test]
fn type_values_and_their_metatables_are_immutable() {
    let got = results(
        RECORDS,
        r#"local out = {}
        out[1] = raised(setmetatable, P, {})
        out[2] = raised(function() P.is = function() return true end end)
        out[3] = raised(rawset, P, "is", 1)
        out[4] = tostring(getmetatable(P))
        out[5] = raised(function() getmetatable("").__index = {} end)
        out[6] = type(P) .. " " .. tostring(P) .. " " .. P:kind()
        local ok = P:is({ x = 1, y = 2 }) ~= nil and P:is({}) == nil
        out[7] = tostring(ok)
        return table.concat(out, " | ")"#,
    );
    has(&got[0], &["bad argument #1 to 'setmetatable'"]);
    has(&got[1], &["attempt to index a TypeValue value"]);
    has(&got[2], &["bad argument #1 to 'rawset'"]);
    assert_eq!(got[3], "false");
    has(&got[4], &["attempt to index a boolean value"]);
    assert_eq!(got[5], "userdata P record");
    assert_eq!(got[6], "true");
}

#[test]
fn forged_types_are_plain_tables_and_reach_nothing() {
    let got = results(
        RECORDS,
        r#"local fake = { is = function() return "forged" end, kind = function() return "record" end }
        setmetatable(fake, { __call = function() return "called" end, __eq = mark("eq"), __le = mark("le") })
        return table.concat({
            raised(Box, fake),
            tostring(P == fake),
            raised(P.is, fake, { x = 1, y = 2 }),
            tostring((P:is(fake))),
            raised(function() return P <= fake end),
            ran_text(),
        }, " | ")"#,
    );
    has(&got[0], &["expected Box, got table"]);
    assert_eq!(got[1], "false");
    assert_eq!(got[2], "no error");
    assert_eq!(got[3], "nil");
    assert_eq!(got[4], "no error");
    assert_eq!(got[5], "none");
}

/// Type values are the other userdata a process holds: a channel's
/// methods refuse them (a channel is told by its metatable's identity,
/// never by what `type` says), and `type` names them as before.
#[test]
fn a_type_value_is_no_channel() {
    let got = results(
        RECORDS,
        r#"local ch = channel.new(1)
        local mt = getmetatable(P)
        local tagged = type(mt) == "table" and pcall(rawset, mt, "__warren", "channel")
        return table.concat({ raised(ch.send, P, 1), raised(ch.receive, P), raised(ch.close, P),
            raised(ch.case_receive, P), raised(process.unlisten, P),
            raised(channel.select, { P }), type(P), tostring(tagged) }, " | ")"#,
    );
    for refusal in &got[..5] {
        has(refusal, &["expected a channel, got userdata"]);
    }
    has(&got[5], &["is not a channel case"]);
    assert_eq!(got[6..], ["userdata", "false"]);
}

#[test]
fn a_type_value_cannot_leave_its_process() {
    let got = results(
        RECORDS,
        r#"local me = process.pid()
        local out = {
            res(process.send(me, "t", P)),
            res(process.send(me, "t", { t = P, inner = { Box(S) } })),
            res(process.send(me, "t", { [P] = 1 })),
            res(process.spawn("h:attacker", "test:host", P)),
            res(require("events").send("x", "k", "/p", P)),
        }
        -- Nothing arrived.
        local r = channel.select({ process.inbox():case_receive(), default = true })
        out[#out + 1] = tostring(r.default)
        return table.concat(out, " | ")"#,
    );
    assert_eq!(got[0], "Invalid: payload: userdata cannot be sent");
    has(&got[1], &["Invalid", "userdata cannot be sent"]);
    has(&got[2], &["Invalid"]);
    has(&got[3], &["Invalid", "userdata"]);
    has(&got[4], &["Invalid"]);
    assert_eq!(got[5], "true");
}

#[test]
fn warren_types_cannot_be_named_replaced_or_shadowed() {
    let got = results(
        RECORDS,
        r#"local out = {}
        -- The name is reserved in entries and in every translated load.
        out[1] = res(load("return __warren_types"))
        out[2] = res(load("type Q = {a: number}\nlocal __warren_types = {} return Q"))
        -- A global of that name (set by string key) is not the chunk's.
        _ENV["__warren" .. "_types"] = { P = { is = function() return "forged" end } }
        out[3] = tostring(P:is(1)) .. " " .. tostring((P:is({ x = 1, y = 2 })) ~= nil)
        -- Untranslated text (over 1 MiB, not UTF-8, a reader function)
        -- reads only the global.
        local pad = ("-"):rep(1 << 20)
        local big = load("return rawequal(__warren_types, _ENV['__warren_types'])\n--" .. pad)
        out[4] = tostring(big and big())
        local bin = load("return rawequal(__warren_types, _ENV['__warren_types']) --\255")
        out[5] = tostring(bin and bin())
        local done = false
        local reader = load(function()
            if done then return nil end
            done = true
            return "return rawequal(__warren_types, _ENV['__warren_types'])"
        end)
        out[6] = tostring(reader and reader())
        -- A loaded typed chunk gets its own read-only table.
        local f = load("type Q = {a: number}\nrawset(_ENV, 'leak', Q) return Q:is({ a = 1 }) ~= nil")
        out[7] = tostring(f and f()) .. " " .. tostring(leak)
        return table.concat(out, " | ")"#,
    );
    has(&got[0], &["'__warren_types' is reserved", "P0004"]);
    has(&got[1], &["P0004"]);
    assert_eq!(got[2], "nil true");
    assert_eq!(&got[3..6], ["true", "true", "true"]);
    assert_eq!(got[6], "true Q");
}

// ---------------------------------------------------------------------------
// 5. The translator through `load`
// ---------------------------------------------------------------------------

/// Runs `load` on the text `make` builds (a Lua expression) and returns
/// the outcome ("ok" or load's error, and how long it took).
fn load_attack(make: &str) -> Outcome {
    typed(
        "",
        &format!(
            r#"local src = {make}
            local f, err = load(src)
            if f then return "ok" end
            return tostring(err):sub(-160)"#
        ),
    )
}

#[test]
fn deep_nesting_in_load_is_refused_cleanly() {
    for (make, code) in [
        (
            r#"("("):rep(500000) .. ("x") .. (")"):rep(500000)"#,
            "P0002",
        ),
        (r#"("do "):rep(300000)"#, "P0002"),
        (r#""local x: " .. ("{"):rep(500000)"#, "P0002"),
        (r#""type T = " .. ("T?"):rep(300000)"#, "P0001"),
        (r#""type T = " .. ("(T) -> "):rep(140000) .. "T""#, "P0002"),
        (
            r#""local x = " .. ("-"):rep(1) .. ("not "):rep(250000) .. "1""#,
            "P0002",
        ),
    ] {
        let out = load_attack(make);
        out.assert_neighbour_ticks();
        let v = out.value();
        assert!(v.contains(code), "{make}: {v}");
        assert!(out.took < Duration::from_secs(10), "{make}: {:?}", out.took);
    }
}

#[test]
fn pathological_type_declarations_in_load_are_bounded() {
    for (make, want) in [
        // Generic chains that blow up when instantiated.
        (
            r#"(function()
                local t = { "type A0<T> = {v: T}" }
                for i = 1, 200 do t[#t + 1] = ("type A%d<T> = A%d<A%d<A%d<T>>>"):format(i, i - 1, i - 1, i - 1) end
                t[#t + 1] = "local x: A200<string> = nil return A200"
                return table.concat(t, "\n")
            end)()"#,
            "ok",
        ),
        // `>>` and `>>>` splits, nested.
        (
            r#""type B<T> = {v: T}\nlocal x: " .. ("B<"):rep(60) .. "string" .. (">"):rep(60) .. " = nil""#,
            "ok",
        ),
        (
            r#""type B<T> = {v: T}\nlocal x: " .. ("B<"):rep(150) .. "string" .. (">"):rep(150) .. " = nil""#,
            "P0002",
        ),
        (r#""type T = T" .. ("?"):rep(300000)"#, "ok"),
        // Huge numbers of declarations and a huge string literal.
        (r#""return '" .. ("x"):rep(1000000) .. "'""#, "ok"),
        (
            r#""type T = {a: number} return '" .. ("\\"):rep(500000) .. "'""#,
            "ok",
        ),
        // A typed chunk that assigns the reserved name.
        (
            r#""type T = {a: number}\n__warren_types = {} return T""#,
            "P0004",
        ),
    ] {
        let out = load_attack(make);
        out.assert_neighbour_ticks();
        let v = match &out.exit {
            Ok(_) => out.value(),
            Err(e) => format!("{e}"),
        };
        assert!(v.contains(want), "{make}: {v}");
        assert!(out.took < Duration::from_secs(10), "{make}: {:?}", out.took);
    }
}

#[test]
fn many_type_declarations_in_load_are_refused_before_they_hold_the_worker() {
    // A chunk may declare at most 2,048 types (P0005): each declaration is
    // checked against its block's names, so tens of thousands held the
    // worker for seconds in one translation (10,000 took 286 ms released).
    // Release-built translator (measured outside the suite): 5,000
    // declarations 64 ms, 10,000 286 ms, 20,000 618 ms, 40,000 3.39 s; the
    // suite builds it unoptimised: 40,000 held the worker 10.8 s there.
    // Expected: the neighbour keeps ticking (translation bounded to about
    // the stuck limit, or refused). Actual: it does not tick until the
    // host call returns; the budget ends the process only afterwards.
    let out = load_attack(
        r#"(function()
            local t = {}
            for i = 1, 20000 do t[i] = ("type F%d = {a: number}"):format(i) end
            return table.concat(t, "\n")
        end)()"#,
    );
    let v = match &out.exit {
        Ok(_) => out.value(),
        Err(e) => format!("{e}"),
    };
    assert!(v.contains("P0005"), "{v}");
    assert!(out.took < Duration::from_secs(2), "{:?}", out.took);
    out.assert_neighbour_ticks();
}

// ---------------------------------------------------------------------------
// 6. Instantiation storms
// ---------------------------------------------------------------------------

#[test]
fn thousands_of_distinct_instantiations_stay_within_the_process() {
    let mut decls = String::from("type Box<T> = {v: T}\ntype Pair<A, B> = {a: A, b: B}\n");
    for i in 0..100 {
        decls.push_str(&format!("type R{i} = {{f{i}: number}}\n"));
    }
    let mut list = String::from("local all = {");
    for i in 0..100 {
        list.push_str(&format!("R{i},"));
    }
    list.push('}');
    let got = results(
        &decls,
        &format!(
            r#"{list}
            local n, fails = 0, 0
            for _, a in ipairs(all) do
                for _, b in ipairs(all) do
                    local p = Pair(a, b)
                    n = n + 1
                    if p:is({{ a = {{}}, b = 1 }}) then fails = fails + 1 end
                end
            end
            return n .. " " .. fails .. " | " .. raised(Box, all[1], all[2]) .. " | " .. raised(Pair, all[1])"#
        ),
    );
    assert_eq!(got[0], "10000 0");
    has(&got[1], &["generic Box expects 1 type arguments, got 2"]);
    has(&got[2], &["generic Pair expects 2 type arguments, got 1"]);
}

#[test]
fn instantiations_nest_at_most_64_deep_and_still_validate() {
    let got = results(
        "type S = string\ntype B<T> = {v: T}",
        r#"local t, refused = S, nil
        for i = 1, 1000 do
            local ok, r = pcall(B, t)
            if not ok then refused = i .. " " .. tostring(r):match("nest deeper than %d+") break end
            t = r
        end
        local v = "x" for _ = 1, 64 do v = { v = v } end
        local ok, err = t:is(v)
        return tostring(refused) .. " " .. tostring(ok ~= nil) .. " " .. tostring(err and err:message():sub(-40))
            .. " | " .. tostring(t == t) .. " " .. tostring(t <= t) .. " " .. t:kind() .. " " .. tostring(t)"#,
    );
    has(&got[0], &["65 nest deeper than 64"]);
    assert_eq!(got[1], "true true instantiated B");
}

#[test]
fn a_deep_instantiation_chain_is_refused_before_it_can_overflow_a_drop() {
    // A chain of 10,000 nested instances was dropped recursively by the
    // GC and overflowed the worker's stack (SIGABRT of the host process):
    // instances now nest at most 64 deep, fields and methods included.
    let out = typed(
        "type S = string\ntype B<T> = {v: T}",
        r#"local t = S
        for _ = 1, 10000 do t = B(t) end
        t = nil
        for i = 1, 300000 do local x = { i } end
        return "survived""#,
    );
    let e = out.error();
    assert!(e.message.contains("nest deeper than 64"), "{e}");
    out.assert_neighbour_ticks();
    let laundered = typed(
        "type S = string\ntype B<T> = {v: T}",
        r#"local t = S
        for _ = 1, 10000 do t = B(B(t)).v end
        return "survived""#,
    );
    let e = laundered.error();
    assert!(e.message.contains("nest deeper than 64"), "{e}");
}

/// Two chunks with the same generic, instantiated with each other's field
/// types: each step clones both type tables, so they double (in Rust's
/// heap, not the process's) and one call's time doubles with them.
const DOUBLING: &str = r#"local B2 = load("type Box<T> = {v: T, g: Box}\nreturn Box")()
    local a, b = Box, B2
    local longest, steps = 0, 0
    for i = 1, STEPS do
        local c = os.clock()
        local na = a(b).g
        longest = math.max(longest, os.clock() - c)
        local nb = b(a).g
        a, b = na, nb
        steps = i
    end
    return string.format("%d %.0f %.0f", steps, longest * 1000, collectgarbage("count"))"#;

#[test]
fn a_type_from_another_chunk_is_refused_as_a_generic_argument() {
    // Each such instance copied both chunks' declarations (host memory the
    // process was not charged for, doubling when chained).
    let out = typed(
        "type Box<T> = {v: T, g: Box}",
        &DOUBLING.replace("STEPS", "40"),
    );
    let e = out.error();
    assert!(e.message.contains("declared in another chunk"), "{e}");
    out.assert_neighbour_ticks();
}

// ---------------------------------------------------------------------------
// 7. Logger floods
// ---------------------------------------------------------------------------

/// Runs `body` (which returns " | "-separated text) with room for big
/// values and no cpu budget; returns the outcome.
fn roomy_attack(body: &str) -> Outcome {
    attack(
        app()
            .limits(roomy(None))
            .entry("h:attacker", &source("", body)),
        "h:attacker",
        Vec::new(),
    )
}

#[test]
fn each_logger_flood_call_is_bounded() {
    alone(|| {
        // Each flood alone, timed: one call (kernel code and host calls, not
        // preemptible) stays well under the stuck limit.
        for flood in [
            r#"local many = {} for i = 1, 100000 do many["k" .. i] = ("v"):rep(10) end
            return timed(function() logger:info("x", many) end)"#,
            r#"local huge = {} for i = 1, 200000 do huge[i] = ("x"):rep(50) end
            return timed(function() logger:info("x", { t = huge }) end)"#,
            r#"local dag = {} for _ = 1, 40 do dag = { dag, dag } end
            local cyc = {} cyc.self = cyc
            local deep = {} local d = deep for _ = 1, 10000 do d.n = {} d = d.n end
            return timed(function() logger:info("x", { g = dag, c = cyc, d = deep, l = lying() }) end)"#,
            r#"return timed(function() logger:info(("m"):rep(4 << 20), { a = ("v"):rep(4 << 20) }) end)"#,
            r#"local n = logger:named(("n"):rep(1 << 20))
            return timed(function() n:info(("m"):rep(1 << 20)) end)"#,
            r#"local many = {} for i = 1, 100000 do many["k" .. i] = 1 end
            local child = logger:with(many)
            return timed(function() child:with(many):warn("x", many) end)"#,
        ] {
            let mut tries = Vec::new();
            for _ in timed_tries() {
                let out = roomy_attack(&format!(
                    "local function timed(f) local c = os.clock() f() return string.format('%.0f', (os.clock() - c) * 1000) end\n{flood}"
                ));
                out.assert_neighbour_ticks();
                let ms: u64 = out.value().parse().expect("ms");
                tries.push(ms);
                if ms < 150 {
                    break;
                }
            }
            let best = tries.iter().min().copied().unwrap_or(u64::MAX);
            assert!(best < 150, "one logger call took {tries:?} ms: {flood}");
        }
    });
}

#[test]
fn logger_calls_back_to_back_are_preempted_between_calls() {
    // Calls with almost no user code between them: the process is
    // preempted between calls and the neighbour keeps ticking. Alone: a
    // count of ticks is what the other tests' load on the two cores
    // changes (49 of 50 under the full suite once).
    alone(|| {
        let out = roomy_attack(
            r#"local huge = {} for i = 1, 200000 do huge[i] = ("x"):rep(50) end
            for i = 1, 100 do logger:error(("e"):rep(20000), { i = i, t = huge }) end
            return "done""#,
        );
        assert_eq!(out.value(), "done");
        out.assert_progress_during(50);
    });
}

#[test]
fn logger_misuse_fails_cleanly() {
    let got = results(
        "",
        r#"return table.concat({ res(logger:named("")), res(logger:named(evil())),
            raised(logger.with, logger, "x"), raised(logger.with, {}, {}), raised(logger.named, evil(), "n"),
            ran_text() }, " | ")"#,
    );
    has(&got[0], &["Invalid", "non-empty string"]);
    has(&got[1], &["Invalid", "non-empty string"]);
    has(&got[2], &["logger:with: fields must be a table"]);
    has(&got[3], &["logger:with: call it with ':' on a logger"]);
    has(&got[4], &["logger:named: call it with ':' on a logger"]);
    assert_eq!(got[5], "none");
}

// ---------------------------------------------------------------------------
// 8. Data modules
// ---------------------------------------------------------------------------

#[test]
fn data_module_bounds_are_checked_before_any_work() {
    alone(|| {
        let got = results(
            "",
            r#"local c = os.clock()
            local out = {
                res(crypto.random.bytes(1 << 40)),
                res(crypto.random.bytes(math.maxinteger)),
                res(crypto.random.bytes(-1)),
                res(crypto.random.bytes(0 / 0)),
                res(crypto.random.bytes(1.5)),
                res(crypto.random.string(1 << 40)),
                res(crypto.random.string(10, "")),
                res(crypto.random.string(10, "\255")),
                res(crypto.pbkdf2("p", "s", 10000000, 1024, "sha512")),
                res(crypto.pbkdf2("p", "s", math.maxinteger, math.maxinteger)),
                res(crypto.pbkdf2("p", "s", 500001, 32)),
                res(crypto.pbkdf2("p", "s", 1, 1, ("h"):rep(1 << 20))),
            }
            out[#out + 1] = tostring(#crypto.random.bytes(1 << 20))
            out[#out + 1] = string.format("%.0f", (os.clock() - c) * 1000)
            return table.concat(out, " | ")"#,
        );
        for g in &got[..5] {
            has(g, &["Invalid", "crypto.random.bytes"]);
        }
        has(&got[5], &["Invalid", "crypto.random.string"]);
        has(&got[6], &["Invalid", "crypto.random.string"]);
        has(&got[7], &["Invalid", "crypto.random.string"]);
        has(&got[8], &["Invalid", "over the 500000"]);
        has(&got[9], &["Invalid", "iterations must be between"]);
        has(&got[10], &["Invalid", "over the 500000"]);
        has(&got[11], &["Invalid", "unsupported hash"]);
        assert_eq!(got[12], "1048576");
        let ms: u64 = got[13].parse().expect("ms");
        assert!(ms < 250, "{ms} ms");
    });
}

#[test]
fn pbkdf2_at_its_work_bound_keeps_the_neighbour_ticking() {
    alone(|| {
        // Each call is one uninterruptible host call of about 100 ms; several
        // in a row are preempted between calls.
        let out = typed(
            "",
            r#"local longest = 0
            for _ = 1, 4 do
                local c = os.clock()
                assert(crypto.pbkdf2("password", "salt", 500000, 32))
                assert(crypto.pbkdf2("password", "salt", 83333, 64, "sha512"))
                longest = math.max(longest, os.clock() - c)
            end
            return string.format("%.0f", longest * 1000)"#,
        );
        // Eight calls of ~100 ms: the 300 ms budget ends it, or it finishes.
        match &out.exit {
            Ok(_) => {
                let ms: u64 = out.value().parse().expect("ms");
                assert!(ms < 500, "two calls took {ms} ms");
            }
            Err(_) => stopped(&out),
        }
        out.assert_neighbour_ticks();
    });
}

/// Times each hash of a string of `MIB` MiB in ms, one host call each,
/// the process sleeping between calls (so their times do not add up
/// where no preemption point is reached). The string is built by
/// doubling: one `string.rep` of 64 MiB is itself ended by the stuck
/// limit (c_loops.rs's rule).
const HASH_TIMES: &str = r#"local s = ("x"):rep(1 << 20)
    while #s < (MIB << 20) do s = s .. s end
    local out = {}
    for _, f in ipairs({ "md5", "sha1", "sha256", "sha512", "fnv32", "fnv64", "hmac_sha512" }) do
        time.sleep("1ms")
        local c = os.clock()
        if f == "hmac_sha512" then assert(hash[f](s, "k")) else assert(hash[f](s)) end
        out[#out + 1] = f .. "=" .. string.format("%.0f", (os.clock() - c) * 1000)
    end
    time.sleep("1ms")
    local c = os.clock()
    assert(base64.encode(s))
    out[#out + 1] = "base64=" .. string.format("%.0f", (os.clock() - c) * 1000)
    return table.concat(out, " | ")"#;

/// Tries of a timed bound: this shared two-core VM sometimes runs one
/// step several times slower than usual for seconds on end (its CPU clock
/// counts the time the host took the core away; right after a build the
/// 4 MiB logger call took 217–253 ms in three tries within a second, 62–68
/// ms otherwise), so a bound is judged on the best of a few tries spread
/// over several seconds; a call that is too slow in itself fails every one.
const TIMED_TRIES: usize = 5;

/// The pause before each try after the first.
const TRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// The tries of a timed bound, [`TRY_PAUSE`] apart.
fn timed_tries() -> impl Iterator<Item = usize> {
    (0..TIMED_TRIES).inspect(|&k| {
        if k > 0 {
            std::thread::sleep(TRY_PAUSE);
        }
    })
}

/// The timings of [`HASH_TIMES`] as (name, ms), or the attacker's error.
fn hash_times(mib: u32) -> Result<Vec<(String, u64)>, String> {
    let out = roomy_attack(&HASH_TIMES.replace("MIB", &mib.to_string()));
    out.assert_neighbour_ticks();
    let text = match &out.exit {
        Ok(_) => out.value(),
        Err(e) => return Err(e.to_string()),
    };
    Ok(text
        .split(" | ")
        .map(|p| {
            let (k, v) = p.split_once('=').expect("name=ms");
            (k.to_owned(), v.parse().expect("ms"))
        })
        .collect())
}

#[test]
fn hashing_16_mib_of_ones_own_stays_under_the_stuck_limit() {
    alone(|| {
        // The data is the process's own memory: each call is linear in it, and
        // a data module takes at most 16 MiB.
        let mut tries = Vec::new();
        for _ in timed_tries() {
            let got = hash_times(16);
            let under = |t: &Vec<(String, u64)>| t.iter().all(|(_, ms)| *ms < 200);
            if got.as_ref().is_ok_and(under) {
                return;
            }
            tries.push(got);
        }
        panic!("hashing 16 MiB held the worker 200 ms or more in every try: {tries:?}");
    });
}

#[test]
fn hashing_more_than_16_mib_is_refused_before_any_work() {
    alone(|| {
        // One hash.sha512 of 64 MiB took ~190 ms alone and passed the 250 ms
        // stuck limit under load: strings over 16 MiB are refused. The probe
        // is 32 MiB: building 64 MiB by doubling (127 MiB of fresh pages)
        // itself once passed the stuck limit on a loaded machine.
        let out = roomy_attack(
            r#"local s = ("x"):rep(1 << 20)
            while #s < (32 << 20) do s = s .. s end
            local out = {}
            for _, f in ipairs({ "md5", "sha512", "fnv64", "hmac_sha512" }) do
                local v, err = hash[f](s, "k")
                out[#out + 1] = tostring(v) .. " " .. err:kind() .. " " .. tostring(err:message():find("16777216-byte limit", 1, true) ~= nil)
            end
            local v, err = base64.encode(s)
            out[#out + 1] = tostring(v) .. " " .. tostring(err and err:kind())
            return table.concat(out, " | ")"#,
        );
        out.assert_neighbour_ticks();
        let v = out.value();
        for part in v.split(" | ").take(4) {
            assert_eq!(part, "nil Invalid true", "{v}");
        }
    });
}

#[test]
fn uuid_parse_of_garbage_is_invalid_and_linear() {
    let got = results(
        "",
        r#"local out = {}
        for _, s in ipairs({ "", "{", "urn:uuid:", ("a"):rep(1 << 20), ("-"):rep(36),
                "00000000-0000-0000-0000-00000000000g", "{00000000-0000-0000-0000-000000000000",
                "\0\0\0\0\0\0\0\0-\0\0\0\0-\0\0\0\0-\0\0\0\0-\0\0\0\0\0\0\0\0\0\0\0\0" }) do
            out[#out + 1] = res(uuid.parse(s)) .. "/" .. res(uuid.version(s)) .. "/" .. res(uuid.format(s))
                .. "/" .. tostring(uuid.validate(s))
        end
        out[#out + 1] = res(uuid.format(uuid.v4(), ("s"):rep(1 << 20)))
        out[#out + 1] = res(base64.decode(("!"):rep(1 << 20)))
        out[#out + 1] = res(uuid.v5("not a uuid", ("n"):rep(1 << 20)))
        return table.concat(out, " | ")"#,
    );
    for g in &got[..8] {
        assert!(g.starts_with("Invalid: uuid.parse"), "{got:?}");
        assert!(g.ends_with("/false"), "{got:?}");
    }
    has(&got[8], &["Invalid", "uuid.format"]);
    has(&got[9], &["Invalid", "base64.decode"]);
    has(&got[10], &["Invalid", "uuid.v5"]);
}

#[test]
fn a_type_argument_shared_two_to_the_forty_times_is_refused_at_once() {
    // `Pair(P, P)` nested 40 times is 40 tiny values, and as a tree 2^40
    // nodes: a generic of another chunk walked it as a tree before it
    // refused it, and the worker never came back (red team J).
    let r = results(
        "type Pair<A, B> = {a: A, b: B}\ntype N = number",
        r#"local Box = load("type Box<T> = {v: T}\nreturn Box")()
        local P = Pair(N, N)
        for _ = 1, 40 do P = Pair(P, P) end
        local ok, e = pcall(Box, P)
        return tostring(ok) .. " | " .. tostring(e)"#,
    );
    assert_eq!(r[0], "false");
    has(&r[1], &["declared in another chunk"]);
}

#[test]
fn an_intersection_of_intersections_is_checked_in_bounded_time() {
    // Tk = {T(k-1)} & {T(k-1)} & {T(k-1)} & {T(k-1)}, 16 levels, and a
    // constant of that shape: the compile-time check visited 4^16 types
    // in one `load` (red team J). Past its budget it cannot tell and says
    // nothing, so the chunk loads and runs.
    let r = results(
        "",
        r#"local function src(levels, leaf)
            local lines = { 'type T0 = "z"' }
            for k = 1, levels do
                local m = {}
                for j = 1, 4 do m[j] = "{T" .. (k - 1) .. "}" end
                lines[#lines + 1] = "type T" .. k .. " = " .. table.concat(m, " & ")
            end
            lines[#lines + 1] = "local v: T" .. levels .. " = "
                .. string.rep("{", levels) .. leaf .. string.rep("}", levels)
            lines[#lines + 1] = "return v"
            return table.concat(lines, "\n")
        end
        local f, err = load(src(16, '"z"'))
        local v = f and f()
        for _ = 1, 16 do v = v and v[1] end
        return tostring(err) .. " | " .. tostring(v)"#,
    );
    assert_eq!(r, ["nil", "z"], "the deep chunk loads and runs");
}

#[test]
fn a_pattern_with_word_boundaries_over_a_long_non_ascii_string_is_one_quick_pass() {
    // `\b` was a Unicode word boundary, beyond the regex crate's fast
    // engines on a non-ASCII string: `(\w\b){5}Z` over 30 MB of "é" held
    // a worker 1.4-2 s in one call, and the process was ended as stuck.
    // As in Go's RE2, `\b` is now an ASCII boundary and the match runs on
    // a lazy DFA, asking the budget as it goes (the 24 MB check fails,
    // stopped at the slice or not matching). A string that is not UTF-8 is
    // matched as bytes (it was copied, lossily, at up to three times its
    // size).
    let body = r#"local s = string.rep("é", 12 << 20)
        local bad = string.rep("\xff", 64 << 10) .. "Z"
        local function passes(T, v) return T:is(v) ~= nil end
        return tostring(passes(P, s)) .. " | " .. tostring(passes(Z, bad)) .. " | "
            .. tostring(passes(B, "café")) .. " | " .. tostring(passes(B, "cafe"))"#;
    let out = attack(
        app().limits(roomy(Some(Duration::from_secs(20)))).entry(
            "h:attacker",
            &source(
                "type P = string @pattern(\"(\\\\w\\\\b){5}Z\")\n\
                 type Z = string @pattern(\"Z$\")\n\
                 type B = string @pattern(\"^caf\\\\b\")",
                body,
            ),
        ),
        "h:attacker",
        Vec::new(),
    );
    out.assert_neighbour_ticks();
    // As in Go, "é" is not a word character to `\b`: "caf" ends a word in
    // "café" (a Unicode boundary would say it does not), not in "cafe".
    assert_eq!(out.value(), "false | true | true | false");
}

#[test]
fn a_pattern_whose_automaton_thrashes_is_stopped_at_the_slice() {
    // `[01]*1[01]{N}[^01]` needs a DFA state per window of N bits: the
    // regex crate's lazy DFA gave up and its slower engine ran the whole
    // string in one call (12.5 MiB with N = 300: 21 s of the worker, seven
    // times the process's budget; 64 KiB with N = 3000: 1 s). The match
    // now asks the budget every KiB and stops at the slice, as every long
    // validation does.
    for (n, kib) in [(300, 1024), (3000, 64)] {
        let body = format!(
            r#"local s = string.rep("01", {kib} * 512)
            local ok, e = P:is(s)
            return tostring(ok) .. " " .. tostring(e)"#
        );
        let out = attack(
            app().limits(roomy(Some(Duration::from_secs(20)))).entry(
                "h:attacker",
                &source(
                    &format!("type P = string @pattern(\"[01]*1[01]{{{n}}}[^01]\")"),
                    &body,
                ),
            ),
            "h:attacker",
            Vec::new(),
        );
        stopped_at_slice(&out);
        assert!(out.took < Duration::from_secs(3), "{n}: {out:?}");
    }
}

//! `funcs` through real processes (modules.md §5): calls of `function.lua`
//! entries, the kinds of their errors, futures, executors (context,
//! timeouts), ids and grants, pools, and what happens to calls whose caller
//! cancels them or exits.

use std::time::{Duration, Instant};

use warren_core::{Grants, HostLimits, Pool, PoolKind, Value};
use warren_tests::*;

use super::grants;

/// The functions every test registers under several entries (each entry
/// runs one of them, named by its `method`).
const FNS: &str = r#"local time = require("time")
local funcs = require("funcs")
local ctx = require("ctx")
local M = {}
function M.echo(...) return ... end
function M.add(a, b) return a + b end
function M.many() return "first", "second", "third" end
function M.nothing() end
function M.pid() return process.pid() end
function M.fail(kind, retryable)
    return nil, errors.new({ kind = kind, message = "failed on purpose", retryable = retryable,
        details = { code = 7 } })
end
function M.raise()
    error("boom")
end
function M.mutate(t)
    t.x = 99
    t.list[1] = "changed"
    t.nested.deep = "changed"
    return t
end
function M.counter()
    counter = (counter or 0) + 1
    return counter .. ":" .. tostring(secret)
end
function M.ctx(key) return ctx.get(key) end
function M.ctx_all()
    local keys = {}
    for k, v in pairs(ctx.all()) do keys[#keys + 1] = k .. "=" .. tostring(v) end
    table.sort(keys)
    return table.concat(keys, ",")
end
-- opts: ms (sleep), tag, notify (a pid told "start" and "end"), report
-- (a pid told "end" instead). Returns when it ran, in Unix nanoseconds.
function M.work(opts)
    opts = opts or {}
    local s = time.now():unix_nano()
    if opts.notify then process.send(opts.notify, "start", opts.tag) end
    if opts.ms and opts.ms > 0 then time.sleep(opts.ms .. "ms") end
    if opts.notify or opts.report then process.send(opts.report or opts.notify, "end", opts.tag) end
    return { s = s, e = time.now():unix_nano(), tag = opts.tag }
end
-- Calls function `id` with this entry's own grants: its result, or "!" and
-- the error's kind.
function M.relay(id, ...)
    local v, e = funcs.call(id, ...)
    if e ~= nil then return "!" .. e:kind() end
    return v
end
return M
"#;

/// Helpers every main script starts with: `k(v, err)` records a call's
/// outcome (`tostring(v)`, `nil`, or `!` and the error's kind), `done()`
/// joins them with spaces, `ctx_call(values, id, ...)` calls through an
/// executor with that context, `max_overlap(spans)` is the most `{s, e}`
/// spans that overlap at once.
const PRELUDE: &str = r#"local funcs = require("funcs")
local time = require("time")
local out = {}
local function k(v, e)
    if e ~= nil then
        out[#out + 1] = "!" .. tostring(e:kind())
    elseif v == nil then
        out[#out + 1] = "nil"
    else
        out[#out + 1] = tostring(v)
    end
end
local function done() return table.concat(out, " ") end
-- A call through an executor with context `values`: the refusal of
-- with_context, or what the call gives.
local function ctx_call(values, ...)
    local ex, e = funcs.new():with_context(values)
    if ex == nil then return nil, e end
    return ex:call(...)
end
local function max_overlap(spans)
    local ev = {}
    for _, sp in ipairs(spans) do
        ev[#ev + 1] = { sp.s, 1 }
        ev[#ev + 1] = { sp.e, -1 }
    end
    table.sort(ev, function(a, b)
        if a[1] ~= b[1] then return a[1] < b[1] end
        return a[2] < b[2]
    end)
    local cur, max = 0, 0
    for _, x in ipairs(ev) do
        cur = cur + x[2]
        if cur > max then max = cur end
    end
    return max
end
"#;

/// A main script: the prelude and `body` (which returns the main function).
fn main(body: &str) -> String {
    format!("{PRELUDE}{body}")
}

fn none() -> Grants {
    Grants::new()
}

fn static_pool(size: usize, buffer: usize) -> Pool {
    Pool {
        kind: PoolKind::Static,
        size,
        buffer,
    }
}

fn lazy_pool(size: usize) -> Pool {
    Pool {
        kind: PoolKind::Lazy,
        size,
        buffer: usize::MAX,
    }
}

fn inline_pool() -> Pool {
    Pool {
        kind: PoolKind::Inline,
        size: usize::MAX,
        buffer: 0,
    }
}

/// An app with `t:<method>` for each of `methods` (lazy pools, no grants).
fn app(methods: &[&str]) -> App {
    methods.iter().fold(App::new(), |app, m| {
        app.function((&format!("t:{m}"), m), FNS, Pool::default(), none())
    })
}

/// Runs `t:main` (`body` after the prelude, with `g`) on `app`; its result.
fn run_main(app: App, body: &str, g: Grants) -> Value {
    match app.granted("t:main", &main(body), g).run("t:main", vec![]) {
        Ok(v) => v,
        Err(e) => panic!("t:main failed: {e}"),
    }
}

/// The string a main returned.
fn text(v: Value) -> String {
    match v.as_str() {
        Some(t) => t.to_owned(),
        None => panic!("not a string: {v:?}"),
    }
}

#[test]
fn call_returns_the_value_and_drops_extra_results() {
    let v = run_main(
        app(&["echo", "add", "many", "nothing", "pid"]),
        r#"return function()
        k(funcs.call("t:add", 2, 3))
        k(funcs.call("t:echo", "hello"))
        local r, e = funcs.call("t:many")
        k(r, e)
        k(e == nil)
        k(select('#', funcs.call("t:many")) <= 2)
        -- a function returning nothing: nil and no error
        r, e = funcs.call("t:nothing")
        k(r == nil and e == nil)
        -- a second value that is not nil is dropped, never taken as an error
        r, e = funcs.call("t:echo", "v", "not an error")
        k(r, e)
        k(e == nil)
        -- the callee runs as a process of its own
        local pid = funcs.call("t:pid")
        k(type(pid) == "string" and pid ~= process.pid())
        -- through an executor
        k(funcs.new():call("t:add", 40, 2))
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "5 hello first true true true v true true 42");
}

#[test]
fn returned_errors_keep_their_kind() {
    let v = run_main(
        app(&["fail"]),
        r#"return function()
        k(funcs.call("t:fail", errors.NOT_FOUND))
        k(funcs.call("t:fail", errors.INVALID))
        local r, e = funcs.call("t:fail", errors.CONFLICT, true)
        k(r, e)
        k(errors.is(e, errors.CONFLICT))
        k(e:message())
        k(e:retryable())
        k(e:details() and e:details().code)
        -- through a future: the error in the channel and from result()
        local f = assert(funcs.async("t:fail", errors.UNAVAILABLE))
        local got = f:response():receive()
        k(errors.is(got, errors.UNAVAILABLE))
        k(f:result())
        return done()
    end"#,
        none(),
    );
    assert_eq!(
        text(v),
        "!NotFound !Invalid !Conflict true failed on purpose true 7 true !Unavailable"
    );
}

#[test]
fn a_raised_error_is_internal_with_its_source_location() {
    let line = FNS
        .lines()
        .position(|l| l.contains("error(\"boom\")"))
        .expect("the raising line")
        + 1;
    let v = run_main(
        app(&["raise", "echo"]),
        r#"return function()
        local r, e = funcs.call("t:raise")
        k(r, e)
        k(errors.is(e, errors.INTERNAL))
        out[#out + 1] = tostring(e:message())
        -- the caller is not linked to its callee: it keeps running
        k(funcs.call("t:echo", "alive"))
        return table.concat(out, "|")
    end"#,
        none(),
    );
    let v = text(v);
    let parts: Vec<&str> = v.split('|').collect();
    assert_eq!(parts.len(), 4, "{v}");
    assert_eq!(parts[0], "!Internal", "{v}");
    assert_eq!(parts[1], "true", "{v}");
    assert_eq!(parts[3], "alive", "{v}");
    let msg = parts[2];
    assert!(msg.contains("boom"), "{msg}");
    assert!(msg.contains("t:raise"), "no chunk name in {msg}");
    assert!(
        msg.contains(&format!(":{line}:")),
        "no line {line} in {msg}"
    );
}

#[test]
fn arguments_and_results_are_copied() {
    let v = run_main(
        app(&["mutate", "echo"]),
        r#"return function()
        local t = { x = 1, list = { "a", "b" }, nested = { deep = "orig" } }
        local r, e = funcs.call("t:mutate", t)
        k(r ~= nil and e == nil)
        -- the caller's table is untouched
        k(t.x) k(t.list[1]) k(t.nested.deep)
        -- the result is a copy, not the caller's table
        k(r ~= t and r.list ~= t.list)
        k(r.x) k(r.list[1]) k(r.list[2]) k(r.nested.deep)
        -- values of every copyable type survive
        local back = funcs.call("t:echo", { n = 3, f = 1.5, b = false, s = "x", arr = { 1, 2, 3 } })
        k(back.n) k(math.type(back.n)) k(back.f) k(back.b) k(back.s) k(#back.arr)
        return done()
    end"#,
        none(),
    );
    assert_eq!(
        text(v),
        "true 1 a orig true 99 changed b changed 3 integer 1.5 false x 3"
    );
}

#[test]
fn async_response_gets_one_payload_then_closes() {
    let v = run_main(
        app(&["add", "work"]),
        r#"return function()
        local f, e = funcs.async("t:add", 20, 22)
        k(f ~= nil and e == nil)
        local ch = f:response()
        k(ch == f:channel() and ch == f:response())
        local p, ok = ch:receive()
        k(ok)
        k(type(p:data()))
        k(p:data())
        local after, ok2 = ch:receive()
        k(after) k(ok2)
        k(f:is_complete())
        -- select works on the channel of a pending future
        local g = assert(funcs.new():async("t:work", { ms = 20, tag = "sel" }))
        local sel = channel.select({ g:channel():case_receive(), time.after("5s"):case_receive() })
        k(sel.channel == g:channel() and sel.ok)
        k(sel.value:data().tag)
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "true true true number 42 nil false true true sel");
}

#[test]
fn result_is_nil_nil_while_pending_then_keeps_answering() {
    let v = run_main(
        app(&["work", "add"]),
        r#"return function()
        local me = process.pid()
        local f = assert(funcs.async("t:work", { ms = 200, tag = "slow", notify = me }))
        -- pending
        k(f:is_complete())
        local n = select('#', f:result())
        local r, e = f:result()
        k(r == nil and e == nil and n <= 2)
        local er, has = f:error()
        k(er == nil and has == false)
        -- the callee is running: its "start" arrives before its result
        local msg = process.inbox():receive()
        k(msg:topic())
        k(f:is_complete())
        local p = f:response():receive()
        k(p:data().tag)
        k(f:is_complete())
        -- drained: result() still gives the payload, every time
        local a = f:result()
        local b, be = f:result()
        k(a:data().tag) k(b:data().tag) k(be)
        er, has = f:error()
        k(er) k(has)
        k(f:is_canceled())
        return done()
    end"#,
        none(),
    );
    assert_eq!(
        text(v),
        "false true true start false slow true slow slow nil nil false false"
    );
}

#[test]
fn future_error_is_wrapped_as_internal() {
    let v = run_main(
        app(&["fail", "raise"]),
        r#"return function()
        local f = assert(funcs.async("t:fail", errors.NOT_FOUND))
        local got, ok = f:response():receive()
        k(ok)
        k(got:kind())
        local _, closed = f:response():receive()
        k(closed)
        local err, has = f:error()
        k(has)
        k(err:kind())
        k(err:message())
        -- result() keeps the original kind, also after error()
        k(f:result())
        err, has = f:error()
        k(err:kind()) k(has)
        -- a raised error: INTERNAL both ways
        local g = assert(funcs.async("t:raise"))
        g:response():receive()
        k(g:result())
        local ge, gh = g:error()
        k(ge:kind()) k(gh)
        return done()
    end"#,
        none(),
    );
    assert_eq!(
        text(v),
        "true NotFound false true Internal failed on purpose !NotFound Internal true !Internal Internal true"
    );
}

#[test]
fn cancel_stops_the_call() {
    let v = run_main(
        app(&["work"]).workers(2),
        r#"return function()
        local me = process.pid()
        local inbox = process.inbox()
        local f = assert(funcs.async("t:work", { ms = 200, tag = "c", notify = me }))
        local msg = inbox:receive()
        k(msg:topic())
        k(f:is_canceled())
        k(f:cancel())
        k(f:is_canceled())
        k(f:result())
        -- the channel gets the CANCELED error, then is closed
        local got, ok = f:response():receive()
        k(ok) k(errors.is(got, errors.CANCELED))
        local _, ok2 = f:response():receive()
        k(ok2)
        local err, has = f:error()
        k(has)
        -- canceling again is harmless
        k(f:cancel())
        k(f:result())
        -- the callee was stopped: its "end" never comes
        local sel = channel.select({ inbox:case_receive(), time.after("200ms"):case_receive() })
        k(sel.channel == inbox and "end arrived" or "quiet")
        -- and a new call runs normally
        local g = assert(funcs.async("t:work", { tag = "next" }))
        k(g:response():receive():data().tag)
        return done()
    end"#,
        none(),
    );
    assert_eq!(
        text(v),
        "start false true true !Canceled true true false true true !Canceled quiet next"
    );
}

#[test]
fn with_context_is_read_through_ctx() {
    let v = run_main(
        app(&["ctx", "ctx_all"]),
        r#"return function()
        local ex = funcs.new()
        local c = assert(ex:with_context({ user = "ada", n = 7 }))
        k(c:call("t:ctx", "user"))
        k(c:call("t:ctx", "n"))
        k(c:call("t:ctx", "missing"))
        k(c:call("t:ctx_all"))
        -- without a context: nothing
        k(ex:call("t:ctx", "user"))
        k(funcs.call("t:ctx", "user"))
        k(funcs.call("t:ctx_all"))
        -- options keep the context, and the other way round
        k(assert(c:with_options({ timeout = 5000 })):call("t:ctx", "user"))
        local later = assert(funcs.new():with_options({ timeout = 5000 }):with_context({ user = "bob" }))
        k(later:call("t:ctx", "user"))
        -- a future carries it too
        local f = assert(c:async("t:ctx", "user"))
        k(f:response():receive():data())
        -- a context that cannot be copied: INVALID (from with_context or
        -- from the call), nothing runs
        k(ctx_call({ f = function() end }, "t:ctx", "f"))
        return done()
    end"#,
        none(),
    );
    assert_eq!(
        text(v),
        "ada 7 !NotFound n=7,user=ada !NotFound !NotFound  ada bob ada !Invalid"
    );
}

#[test]
fn executors_are_immutable() {
    let v = run_main(
        app(&["ctx", "work"]),
        r#"return function()
        local ex = funcs.new()
        local a = assert(ex:with_context({ user = "ada" }))
        local b = assert(a:with_context({ user = "bob" }))
        local t = assert(a:with_options({ timeout = 30 }))
        k(a ~= ex and b ~= a and t ~= a)
        k(a:call("t:ctx", "user"))
        k(b:call("t:ctx", "user"))
        k(t:call("t:ctx", "user"))
        k(ex:call("t:ctx", "user"))
        -- `a` did not get t's timeout
        local r, e = t:call("t:work", { ms = 150 })
        k(r, e)
        r, e = a:call("t:work", { ms = 100, tag = "untimed" })
        k(r and r.tag, e)
        -- a refused with_* leaves the executor as it was
        k(a:with_options({ timeout = -1 }))
        k(a:with_context(42))
        k(a:call("t:ctx", "user"))
        return done()
    end"#,
        none(),
    );
    assert_eq!(
        text(v),
        "true ada bob ada !NotFound !Timeout untimed !Invalid !Invalid ada"
    );
}

#[test]
fn a_context_is_fixed_when_the_executor_is_made() {
    // "Executors are immutable": changing the table given to
    // with_context afterwards must not change what the executor passes.
    let v = run_main(
        app(&["ctx"]),
        r#"return function()
        local values = { user = "ada" }
        local ex = assert(funcs.new():with_context(values))
        values.user = "eve"
        k(ex:call("t:ctx", "user"))
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "ada");
}

#[test]
fn timeout_option_terminates_the_call() {
    let v = run_main(
        app(&["work", "add"]).workers(2),
        r#"return function()
        local me = process.pid()
        local inbox = process.inbox()
        local t0 = time.now()
        local r, e = funcs.new():with_options({ timeout = 50 }):call("t:work", { ms = 200, notify = me })
        k(r, e)
        local waited = time.now():sub(t0):milliseconds()
        k(waited >= 40 and waited < 2000)
        -- a duration string
        t0 = time.now()
        k(funcs.new():with_options({ timeout = "50ms" }):call("t:work", { ms = 5000 }))
        waited = time.now():sub(t0):milliseconds()
        k(waited >= 40 and waited < 2000)
        -- a future: the TIMEOUT arrives in its channel
        local f = assert(funcs.new():with_options({ timeout = "30ms" }):async("t:work", { ms = 5000 }))
        local got = f:response():receive()
        k(errors.is(got, errors.TIMEOUT))
        k(f:result())
        -- in time: the result; other keys are ignored
        k(funcs.new():with_options({ timeout = 5000 }):call("t:add", 1, 2))
        k(funcs.new():with_options({ timeout = "5s", retries = 3 }):call("t:add", 2, 2))
        k(funcs.new():with_options({ retries = 3 }):call("t:add", 3, 3))
        -- the first callee was stopped: its "start" came, its "end" never does
        k(inbox:receive():topic())
        local sel = channel.select({ inbox:case_receive(), time.after("200ms"):case_receive() })
        k(sel.channel == inbox and "end arrived" or "quiet")
        return done()
    end"#,
        none(),
    );
    assert_eq!(
        text(v),
        "!Timeout true !Timeout true true !Timeout 3 4 6 start quiet"
    );
}

#[test]
fn invalid_options_and_security_builders() {
    let v = run_main(
        app(&["add"]),
        r#"return function()
        local ex = funcs.new()
        for _, t in ipairs({ 0, -5, 1.5, "abc", "0s", "-5ms", "", true, {} }) do
            local r, e = ex:with_options({ timeout = t })
            k(r and "ok", e)
        end
        k(ex:with_options("50ms"))
        k(ex:with_options(nil))
        k(ex:with_actor({ id = "someone" }))
        k(ex:with_scope({ "admin" }))
        local n = select('#', ex:with_actor({}))
        k(n == 2)
        k(ex:with_context("x"))
        k(ex:with_context(nil))
        -- the executor still works
        k(ex:call("t:add", 1, 1))
        return done()
    end"#,
        none(),
    );
    assert_eq!(
        text(v),
        [
            "!Invalid", "!Invalid", "!Invalid", "!Invalid", "!Invalid", "!Invalid", "!Invalid",
            "!Invalid", "!Invalid", "!Invalid", "!Invalid", "!Invalid", "!Invalid", "true",
            "!Invalid", "!Invalid", "2",
        ]
        .join(" ")
    );
}

#[test]
fn bad_ids_unknown_functions_and_process_entries() {
    let v = run_main(
        app(&["add"]).entry("t:proc", "return function() return 1 end"),
        r#"return function()
        for _, id in ipairs({ "nope", 42, "a:b:c", "", ":x", "x:", true }) do
            k(funcs.call(id))
        end
        k(funcs.call(nil))
        k(funcs.async("nope"))
        k(funcs.async(42))
        k(funcs.new():call("a:b:c"))
        k(funcs.new():async("a:b:c"))
        -- existence, then kind
        k(funcs.call("t:missing"))
        k(funcs.async("t:missing"))
        k(funcs.call("t:proc"))
        k(funcs.async("t:proc"))
        k(funcs.new():call("t:proc"))
        -- the caller is fine
        k(funcs.call("t:add", 1, 2))
        return done()
    end"#,
        none(),
    );
    assert_eq!(
        text(v),
        "!Invalid !Invalid !Invalid !Invalid !Invalid !Invalid !Invalid !Invalid !Invalid !Invalid \
         !Invalid !Invalid !NotFound !NotFound !Invalid !Invalid !Invalid 3"
    );
}

#[test]
fn an_id_of_a_megabyte_is_cut_in_the_error_that_names_it() {
    // Each refusal quoted the whole id: a 1 MiB message per call.
    let v = run_main(
        app(&["add"]),
        r#"return function()
        local fs, sql = require("fs"), require("sql")
        local big = string.rep("a", 1 << 20)
        for _, f in ipairs({
            function() return funcs.call("t:" .. big) end,
            function() return funcs.call(big .. ":x") end,
            function() return fs.get(big) end,
            function() return sql.get("t:" .. big) end,
        }) do
            local _, e = f()
            local m = e:message()
            k(tostring(e:kind()) .. ":" .. tostring(#m < 200 and m:find("aaa...'", 1, true) ~= nil))
        end
        return done()
    end"#,
        none(),
    );
    assert_eq!(
        text(v),
        "NotFound:true PermissionDenied:true PermissionDenied:true PermissionDenied:true"
    );
}

/// An app with `t:fn`, `other:fn`, `t.sub:fn` (echo), a process entry
/// `other:proc`, and relays `other:relay` (no grants).
fn namespaces() -> App {
    App::new()
        .function(("t:fn", "echo"), FNS, Pool::default(), none())
        .function(("other:fn", "echo"), FNS, Pool::default(), none())
        .function(("t.sub:fn", "echo"), FNS, Pool::default(), none())
        .function(("other:relay", "relay"), FNS, Pool::default(), none())
        .entry("other:proc", "return function() return 1 end")
}

#[test]
fn another_namespace_needs_the_grant() {
    let runtime = namespaces()
        .granted(
            "t:main",
            &main(
                r#"return function()
        k(funcs.call("t:fn", "same"))
        k(funcs.call("other:fn", "x"))
        k(funcs.call("other:missing"))
        k(funcs.call("other:proc"))
        k(funcs.async("other:fn", "x"))
        k(funcs.new():call("other:fn", "x"))
        k(funcs.new():with_context({ a = 1 }):async("other:fn", "x"))
        k(funcs.call("t.sub:fn", "x"))
        local _, e = funcs.call("other:fn", "x")
        k(e:message():find("funcs.call", 1, true) ~= nil and e:message():find("other:fn", 1, true) ~= nil)
        -- wrong shapes are INVALID before any grant check
        k(funcs.call("other:a:b"))
        return done()
    end"#,
            ),
            none(),
        )
        .granted(
            "t:granted",
            &main(
                r#"return function()
        k(funcs.call("other:fn", "granted"))
        k(funcs.call("other:missing"))
        k(funcs.call("other:proc"))
        local f = assert(funcs.async("other:fn", "future"))
        k(f:response():receive():data())
        k(funcs.new():call("other:fn", "ex"))
        k(funcs.call("t.sub:fn", "x"))
        k(funcs.call("t:fn", "same"))
        return done()
    end"#,
            ),
            grants(&[("funcs.call", "other:*")]),
        )
        .start();
    let v = run_on(&runtime, "t:main", vec![]).expect("t:main");
    assert_eq!(
        text(v),
        "same !PermissionDenied !PermissionDenied !PermissionDenied !PermissionDenied \
         !PermissionDenied !PermissionDenied !PermissionDenied true !Invalid"
    );
    let v = run_on(&runtime, "t:granted", vec![]).expect("t:granted");
    assert_eq!(
        text(v),
        "granted !NotFound !Invalid future ex !PermissionDenied same"
    );
}

#[test]
fn the_callee_holds_its_own_grants_not_the_callers() {
    let runtime = namespaces()
        // no grants: it may call its own namespace only
        .function(("t:relay", "relay"), FNS, Pool::default(), none())
        // may call into `other`
        .function(
            ("t:relay_granted", "relay"),
            FNS,
            Pool::default(),
            grants(&[("funcs.call", "other:*")]),
        )
        .granted(
            "t:main",
            &main(
                r#"return function()
        -- the caller may call other:fn itself ...
        k(funcs.call("other:fn", "direct"))
        -- ... but the relay it calls may not
        k(funcs.call("t:relay", "other:fn", "relayed"))
        -- the relay reaches its own namespace
        k(funcs.call("t:relay", "t:fn", "own"))
        -- other:relay (granted to the caller) calling back into t: denied
        k(funcs.call("other:relay", "t:fn", "back"))
        k(funcs.call("other:relay", "other:fn", "inside"))
        return done()
    end"#,
            ),
            grants(&[("funcs.call", "*")]),
        )
        .granted(
            "t:plain",
            &main(
                r#"return function()
        -- no grants here, but the relay has its own
        k(funcs.call("other:fn", "direct"))
        k(funcs.call("t:relay_granted", "other:fn", "relayed"))
        return done()
    end"#,
            ),
            none(),
        )
        .start();
    let v = run_on(&runtime, "t:main", vec![]).expect("t:main");
    assert_eq!(
        text(v),
        "direct !PermissionDenied own !PermissionDenied inside"
    );
    let v = run_on(&runtime, "t:plain", vec![]).expect("t:plain");
    assert_eq!(text(v), "!PermissionDenied relayed");
}

#[test]
fn static_pool_refuses_beyond_its_buffer_and_runs_one_at_a_time() {
    let v = run_main(
        App::new()
            .workers(2)
            .function(("t:static", "work"), FNS, static_pool(1, 1), none()),
        r#"return function()
        local f1 = assert(funcs.async("t:static", { ms = 100, tag = 1 }))
        local f2 = assert(funcs.async("t:static", { ms = 30, tag = 2 }))
        local f3, e3 = funcs.async("t:static", { ms = 10, tag = 3 })
        k(f3, e3)
        k(funcs.call("t:static", { tag = 4 }))
        k(f2:is_complete())
        local r1 = f1:response():receive():data()
        local r2 = f2:response():receive():data()
        k(r1.tag) k(r2.tag)
        -- one at a time, in arrival order
        k(r2.s >= r1.e)
        -- room again
        local r5 = funcs.call("t:static", { tag = 5 })
        k(r5 and r5.tag)
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "!RateLimited !RateLimited false 1 2 true 5");
}

#[test]
fn static_pool_runs_workers_calls_at_once() {
    let v = run_main(
        App::new()
            .workers(2)
            .function(("t:static", "work"), FNS, static_pool(2, 10), none()),
        r#"return function()
        local fs = {}
        for i = 1, 6 do fs[i] = assert(funcs.async("t:static", { ms = 100, tag = i })) end
        local spans = {}
        for i = 1, 6 do
            spans[i] = fs[i]:response():receive():data()
            k(spans[i].tag)
        end
        k(max_overlap(spans))
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "1 2 3 4 5 6 2");
}

#[test]
fn a_canceled_waiting_call_frees_its_place_in_a_static_pool() {
    let v = run_main(
        App::new().function(("t:static", "work"), FNS, static_pool(1, 1), none()),
        r#"return function()
        local f1 = assert(funcs.async("t:static", { ms = 150, tag = 1 }))
        local f2 = assert(funcs.async("t:static", { ms = 10, tag = 2 }))
        k(f2:cancel())
        -- f2 no longer waits: its place in the buffer is free
        local f3, e3 = funcs.async("t:static", { ms = 10, tag = 3 })
        k(f3 and "queued", e3)
        k(f1:response():receive():data().tag)
        if f3 then k(f3:response():receive():data().tag) end
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "true queued 1 3");
}

#[test]
fn lazy_pool_bounds_concurrency() {
    let v = run_main(
        App::new()
            .workers(2)
            .function(("t:lazy2", "work"), FNS, lazy_pool(2), none())
            .function(("t:lazy", "work"), FNS, Pool::default(), none()),
        r#"return function()
        local fs = {}
        for i = 1, 5 do fs[i] = assert(funcs.async("t:lazy2", { ms = 150, tag = i })) end
        local spans = {}
        for i = 1, 5 do spans[i] = fs[i]:response():receive():data() end
        k(max_overlap(spans))
        -- the default lazy pool: 16 at once, the rest wait (none refused)
        local gs = {}
        for i = 1, 20 do gs[i] = assert(funcs.async("t:lazy", { ms = 200, tag = i })) end
        spans = {}
        for i = 1, 20 do spans[i] = gs[i]:response():receive():data() end
        k(max_overlap(spans))
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "2 16");
}

#[test]
fn every_call_gets_fresh_globals() {
    let v = run_main(
        App::new()
            .function(("t:lazy", "counter"), FNS, Pool::default(), none())
            .function(("t:static", "counter"), FNS, static_pool(1, 4), none())
            .function(("t:inline", "counter"), FNS, inline_pool(), none()),
        r#"return function()
        secret = "caller's"
        for _, id in ipairs({ "t:lazy", "t:static", "t:inline" }) do
            k(funcs.call(id))
            k(funcs.call(id))
        end
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "1:nil 1:nil 1:nil 1:nil 1:nil 1:nil");
}

#[test]
fn inline_pool_runs_calls_at_once() {
    let v = run_main(
        App::new()
            .workers(2)
            .function(("t:inline", "work"), FNS, inline_pool(), none())
            .function(("t:add", "add"), FNS, inline_pool(), none())
            .function(("t:fail", "fail"), FNS, inline_pool(), none()),
        r#"return function()
        k(funcs.call("t:add", 2, 2))
        k(funcs.call("t:fail", errors.CONFLICT))
        local fs = {}
        for i = 1, 3 do fs[i] = assert(funcs.async("t:inline", { ms = 150, tag = i })) end
        local spans = {}
        for i = 1, 3 do spans[i] = fs[i]:response():receive():data() end
        k(max_overlap(spans))
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "4 !Conflict 3");
}

#[test]
fn process_spawn_of_a_function_entry_is_refused() {
    let v = run_main(
        app(&["add"]),
        r#"return function()
        k(process.spawn("t:add", "test:host", 1, 2))
        k(process.spawn_monitored("t:add", "test:host", 1, 2))
        k(process.spawn_linked("t:add", "test:host", 1, 2))
        k(process.exec("t:add", "test:host", 1, 2))
        -- a call still runs it
        k(funcs.call("t:add", 1, 2))
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "!Invalid !Invalid !Invalid !Invalid 3");
}

/// Polls until no process is alive; false past `within`.
fn drains(runtime: &warren_core::Runtime, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if runtime.live_processes() == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    runtime.live_processes() == 0
}

#[test]
fn a_caller_that_exits_leaves_nothing_running() {
    let runtime = App::new()
        .workers(2)
        .function(("t:slow", "work"), FNS, static_pool(1, 4), none())
        .function(("t:lazy", "work"), FNS, Pool::default(), none())
        .granted(
            "t:main",
            &main(
                r#"return function()
        local me = process.pid()
        -- one running, one waiting in the static pool
        assert(funcs.async("t:slow", { ms = 5000, notify = me, tag = "running" }))
        assert(funcs.async("t:slow", { ms = 5000, notify = me, tag = "waiting" }))
        -- a blocking call in a coroutine
        coroutine.spawn(function() funcs.call("t:lazy", { ms = 5000, notify = me, tag = "blocked" }) end)
        local started = {}
        local inbox = process.inbox()
        for _ = 1, 2 do started[#started + 1] = inbox:receive():payload():data() end
        table.sort(started)
        return table.concat(started, ",")
    end"#,
            ),
            none(),
        )
        .granted(
            "t:again",
            &main(
                r#"return function()
        local r, e = funcs.new():with_options({ timeout = 3000 }):call("t:slow", { tag = "again" })
        k(r and r.tag, e)
        return done()
    end"#,
            ),
            none(),
        )
        .start();
    let v = run_on(&runtime, "t:main", vec![]).expect("t:main");
    assert_eq!(text(v), "blocked,running");
    assert!(
        drains(&runtime, Duration::from_secs(3)),
        "{} process(es) still alive after the caller exited",
        runtime.live_processes()
    );
    // The static pool's turn went back: a new caller is served.
    let v = run_on(&runtime, "t:again", vec![]).expect("t:again");
    assert_eq!(text(v), "again");
    assert!(drains(&runtime, Duration::from_secs(3)));
}

#[test]
fn a_terminated_caller_cancels_its_calls() {
    let v = run_main(
        app(&["work"])
            .workers(2)
            .entry(
                "t:child",
                r#"local funcs = require("funcs")
    return function(parent)
        -- the callee tells the parent when it starts and ends
        funcs.call("t:work", { ms = 200, notify = parent, tag = "child" })
        return "unreachable"
    end"#,
            )
            .entry(
                "t:child_async",
                r#"local funcs = require("funcs")
    return function(parent)
        -- the callee tells this child when it starts, the parent when it ends
        assert(funcs.async("t:work", { ms = 200, notify = process.pid(), report = parent, tag = "async" }))
        process.inbox():receive()
        -- returns while the call runs: it is canceled
        return "left"
    end"#,
            ),
        r#"return function()
        local me = process.pid()
        local inbox = process.inbox()
        local events = process.events()
        local function quiet()
            local sel = channel.select({ inbox:case_receive(), time.after("200ms"):case_receive() })
            return sel.channel == inbox and "end arrived" or "quiet"
        end
        -- terminated while in funcs.call
        local child = assert(process.spawn_monitored("t:child", "test:host", me))
        k(inbox:receive():topic())
        assert(process.terminate(child))
        local ev = events:receive()
        k(ev.kind == process.event.EXIT and ev.from == child)
        k(quiet())
        -- returns with a call pending
        local child2 = assert(process.spawn_monitored("t:child_async", "test:host", me))
        ev = events:receive()
        k(ev.from == child2 and ev.result and ev.result.value)
        k(quiet())
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "start true quiet left quiet");
}

#[test]
fn bad_input_never_kills_the_caller() {
    let v = run_main(
        app(&["echo", "add"]),
        r#"return function()
        -- methods on what is not the right handle raise (caught here)
        local ex = funcs.new()
        local f = assert(funcs.async("t:add", 1, 1))
        k((pcall(function() return ex.call(nil, "t:add") end)))
        k((pcall(function() return ex.with_context({}, {}) end)))
        k((pcall(function() return ex.with_options("x", {}) end)))
        k((pcall(function() return f.result({}) end)))
        k((pcall(function() return f.cancel(ex) end)))
        k((pcall(function() return f.response(nil) end)))
        -- wrong values return INVALID
        k(funcs.call())
        k(funcs.call({}))
        k(funcs.call("t:echo", function() end))
        local cyc = {}
        cyc.self = cyc
        k(funcs.call("t:echo", cyc))
        k(funcs.call("t:echo", coroutine.create(function() end)))
        k(funcs.call("t:echo", { ch = channel.new() }))
        k(funcs.async("t:echo", function() end))
        -- a future is a handle: it cannot be sent
        k(funcs.call("t:echo", f))
        -- still alive, and the earlier future still answers
        k(f:response():receive():data())
        k(funcs.call("t:echo", "alive"))
        return done()
    end"#,
        none(),
    );
    let v = text(v);
    let parts: Vec<&str> = v.split(' ').collect();
    assert_eq!(parts.len(), 16, "{v}");
    // six misuses raised (pcall gave false)
    assert_eq!(
        parts[..6].join(" "),
        "false false false false false false",
        "{v}"
    );
    assert_eq!(
        parts[6..].join(" "),
        "!Invalid !Invalid !Invalid !Invalid !Invalid !Invalid !Invalid !Invalid 2 alive"
    );
}

#[test]
fn calls_in_flight_count_against_max_ops_per_process() {
    let limits = HostLimits {
        max_ops_per_process: 2,
        ..HostLimits::default()
    };
    let v = run_main(
        app(&["work", "add"]).limits(limits),
        r#"return function()
        local f1 = assert(funcs.async("t:work", { ms = 80 }))
        local f2 = assert(funcs.async("t:work", { ms = 80 }))
        k(funcs.async("t:work", { ms = 80 }))
        k(funcs.call("t:add", 1, 1))
        f1:response():receive()
        f2:response():receive()
        -- finished calls give their slot back: many in a row run
        local sum = 0
        for i = 1, 50 do sum = sum + assert(funcs.call("t:add", i, 0)) end
        k(sum)
        -- canceled ones too
        for _ = 1, 5 do assert(funcs.async("t:work", { ms = 1000 })):cancel() end
        k(funcs.call("t:add", 2, 3))
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "!RateLimited !RateLimited 1275 5");
}

#[test]
fn arguments_beyond_max_message_bytes_are_refused() {
    let limits = HostLimits {
        max_message_bytes: 4096,
        ..HostLimits::default()
    };
    let v = run_main(
        app(&["echo"]).limits(limits),
        r#"return function()
        local big = string.rep("x", 10000)
        k(funcs.call("t:echo", big))
        k(funcs.async("t:echo", big))
        k(ctx_call({ big = big }, "t:echo", 1))
        k(funcs.call("t:echo", "small"))
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "!Invalid !Invalid !Invalid small");
}

#[test]
fn a_timed_out_call_gives_its_pool_turn_back() {
    let v = run_main(
        App::new().function(("t:static", "work"), FNS, static_pool(1, 1), none()),
        r#"return function()
        k(funcs.new():with_options({ timeout = 30 }):call("t:static", { ms = 5000 }))
        -- without its turn back this would wait until its own timeout
        local r, e = funcs.new():with_options({ timeout = 3000 }):call("t:static", { tag = "next" })
        k(r and r.tag, e)
        -- a call that times out while waiting for a turn
        local f1 = assert(funcs.async("t:static", { ms = 150, tag = "first" }))
        k(funcs.new():with_options({ timeout = 30 }):call("t:static", { tag = "late" }))
        k(f1:response():receive():data().tag)
        r, e = funcs.new():with_options({ timeout = 3000 }):call("t:static", { tag = "after" })
        k(r and r.tag, e)
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "!Timeout next !Timeout first after");
}

#[test]
fn a_timed_out_waiting_call_frees_its_place_in_a_static_pool() {
    let v = run_main(
        App::new().function(("t:static", "work"), FNS, static_pool(1, 1), none()),
        r#"return function()
        local f1 = assert(funcs.async("t:static", { ms = 150, tag = 1 }))
        -- waits for f1's turn, and times out waiting
        k(funcs.new():with_options({ timeout = 30 }):call("t:static", { tag = "late" }))
        -- it no longer waits: its place in the buffer is free
        local f3, e3 = funcs.async("t:static", { ms = 10, tag = 3 })
        k(f3 and "queued", e3)
        k(f1:response():receive():data().tag)
        if f3 then k(f3:response():receive():data().tag) end
        return done()
    end"#,
        none(),
    );
    assert_eq!(text(v), "!Timeout queued 1 3");
}

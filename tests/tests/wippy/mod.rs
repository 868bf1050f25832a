//! Wippy compatibility through a runtime: error kinds and wrapping, event
//! kinds, the spawner builder and `ctx`, payloads, `subscribe`, process
//! ids, `time.parse`/`time.date`, the event bus (and its tenant walls),
//! the read-only registry, and `io` outside a terminal host.

use std::time::{Duration, Instant};

use warren_core::{
    EntryInfo, ErrorKind, HostLimits, HostSpec, RuntimeBuilder, SpawnRequest, Value,
};
use warren_lua::{LuaProgram, MODULES, lua_frontend};
use warren_tests::*;

fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (s(k), v.clone())).collect())
}

// ---- errors ----

#[test]
fn wippy_error_kinds_new_and_wrap() {
    let v = ok(r#"return function()
        local want = { NOT_FOUND = "NotFound", ALREADY_EXISTS = "AlreadyExists", INVALID = "Invalid",
            PERMISSION_DENIED = "PermissionDenied", UNAVAILABLE = "Unavailable", INTERNAL = "Internal",
            CANCELED = "Canceled", CONFLICT = "Conflict", TIMEOUT = "Timeout",
            RATE_LIMITED = "RateLimited", UNKNOWN = "" }
        for name, value in pairs(want) do
            assert(errors[name] == value, name .. " is " .. tostring(errors[name]))
        end
        local plain = errors.new("disk full")
        assert(plain:kind() == "", "a plain error has the empty kind, got " .. tostring(plain:kind()))
        assert(plain:retryable() == nil, "retryable is unset")
        assert(plain:message() == "disk full" and tostring(plain) == "disk full")
        assert(errors.is(plain, errors.UNKNOWN))

        local two = errors.new(errors.TIMEOUT, "too slow")
        assert(two:kind() == "Timeout" and two:message() == "too slow")

        local base = errors.new({ message = "user 7", kind = errors.NOT_FOUND, retryable = false,
            details = { id = 7 } })
        local w = errors.wrap(base, "loading profile")
        assert(w:message() == "user 7", "wrap keeps the message: " .. tostring(w:message()))
        assert(tostring(w) == "loading profile: user 7", tostring(w))
        assert(w:kind() == errors.NOT_FOUND and w:retryable() == false and w:details().id == 7)
        assert(errors.is(w, errors.NOT_FOUND) and not errors.is(w, errors.INVALID))
        local ww = errors.wrap(w, "request")
        assert(tostring(ww) == "request: loading profile: user 7" and ww:message() == "user 7")
        assert(errors.wrap(nil, "x") == nil)
        local retry = errors.wrap(errors.new({ message = "busy", kind = errors.UNAVAILABLE, retryable = true }), "db")
        assert(retry:retryable() == true)
        return "ok"
    end"#);
    assert_eq!(v, s("ok"));
}

const ERR_CHILD: &str = r#"return function(parent, how)
    local e = errors.wrap(errors.new({ message = "slot taken", kind = errors.CONFLICT, retryable = true,
        details = { slot = 3 } }), "booking")
    if how == "send" then
        process.send(parent, "err", e)
        return "sent"
    end
    return nil, e
end"#;

#[test]
fn wippy_errors_cross_process_boundaries() {
    let v = App::new()
        .entry("t:child", ERR_CHILD)
        .entry(
            "t:main",
            r#"return function()
        local me = process.pid()
        -- In a message.
        assert(process.spawn("t:child", "test:host", me, "send"))
        local msg = process.inbox():receive()
        local e = msg:payload():data()
        assert(e:message() == "slot taken", "message: " .. tostring(e:message()))
        assert(tostring(e) == "booking: slot taken", tostring(e))
        assert(e:kind() == errors.CONFLICT and errors.is(e, errors.CONFLICT))
        assert(e:retryable() == true and e:details().slot == 3)
        -- As an exit (`return nil, err`), seen by a monitor.
        local pid = assert(process.spawn_monitored("t:child", "test:host", me, "exit"))
        local ev = process.events():receive()
        assert(ev.kind == process.event.EXIT and ev.from == pid)
        local x = ev.result.error
        assert(x ~= nil and ev.result.value == nil)
        assert(x:kind() == "Conflict" and errors.is(x, errors.CONFLICT), tostring(x:kind()))
        assert(x:retryable() == true and x:details().slot == 3)
        assert(tostring(x):find("slot taken", 1, true), tostring(x))
        return "ok"
    end"#,
        )
        .run("t:main", vec![])
        .expect("main succeeds");
    assert_eq!(v, s("ok"));
}

#[test]
fn wippy_error_kind_reaches_the_host() {
    let e = fails(
        r#"return function()
        return nil, errors.new({ message = "no such order", kind = errors.NOT_FOUND })
    end"#,
    );
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("no such order"), "{}", e.message);
    let e = fails(r#"return function() error(errors.new("plain")) end"#);
    assert_eq!(e.kind, ErrorKind::Unknown);
}

// ---- process event kinds ----

#[test]
fn wippy_process_event_kinds() {
    let v = App::new()
        .entry("t:crash", r#"return function() error("crashed") end"#)
        .entry(
            "t:waiter",
            r#"return function()
            local ev = process.events():receive()
            return ev.kind
        end"#,
        )
        .entry(
            "t:main",
            r#"return function()
        assert(process.event.EXIT == "pid.exit")
        assert(process.event.LINK_DOWN == "pid.link.down")
        assert(process.event.CANCEL == "pid.cancel")
        local events = process.events()
        process.set_options({ trap_links = true })
        local seen = {}
        -- A linked child that fails: LINK_DOWN (trapped).
        assert(process.spawn_linked("t:crash", "test:host"))
        seen[#seen + 1] = events:receive().kind
        -- A monitored child that fails: EXIT with an error.
        assert(process.spawn_monitored("t:crash", "test:host"))
        local ev = events:receive()
        assert(ev.result.error ~= nil)
        seen[#seen + 1] = ev.kind
        -- A cancelled child sees CANCEL and returns its kind.
        local w = assert(process.spawn_monitored("t:waiter", "test:host"))
        assert(process.cancel(w))
        local done = events:receive()
        assert(done.kind == process.event.EXIT and done.from == w)
        seen[#seen + 1] = done.result.value
        return table.concat(seen, ",")
    end"#,
        )
        .run("t:main", vec![])
        .expect("main succeeds");
    assert_eq!(v, s("pid.link.down,pid.exit,pid.cancel"));
}

// ---- process.id ----

#[test]
fn wippy_process_id_is_the_callers_pid() {
    let v = App::new()
        .entry(
            "t:child",
            "return function() return process.id() .. ' ' .. process.pid() end",
        )
        .entry(
            "t:main",
            r#"return function()
        local id = process.id()
        assert(type(id) == "string" and id == process.pid(), tostring(id))
        local pid = assert(process.spawn_monitored("t:child", "test:host"))
        local ev = process.events():receive()
        assert(ev.result.value == pid .. " " .. pid, tostring(ev.result.value))
        assert(pid ~= id)
        return id:sub(1, 1) .. id:sub(-1)
    end"#,
        )
        .run("t:main", vec![])
        .expect("main succeeds");
    assert_eq!(v, s("<>"));
}

// ---- spawner builder and ctx ----

const CTX_CHILD: &str = r#"local ctx = require("ctx")
return function(parent)
    local inbox = process.inbox()
    local first = inbox:receive()
    local pls = first:payload()
    local missing, merr = ctx.get("missing")
    local empty, eerr = ctx.get("")
    local keys = {}
    for k in pairs(ctx.all()) do keys[#keys + 1] = k end
    table.sort(keys)
    process.send(parent, "report", {
        topic = first:topic(), a = pls[1]:data(), b = pls[2]:data(),
        user = ctx.get("user"), role = ctx.get("role"), n = ctx.get("n"),
        missing = missing == nil and merr:kind() or "found",
        empty = empty == nil and eerr:kind() or "found",
        keys = table.concat(keys, ","),
    })
    local stop = inbox:receive()
    return "stopped by " .. stop:topic()
end"#;

const CTX_DUMP: &str = r#"local ctx = require("ctx")
return function()
    local keys = {}
    for k, v in pairs(ctx.all()) do keys[#keys + 1] = k .. "=" .. tostring(v) end
    table.sort(keys)
    local _, err = ctx.get("role")
    return table.concat(keys, ",") .. "|" .. err:kind()
end"#;

const IDLE: &str = r#"return function() process.inbox():receive() return "woke" end"#;

#[test]
fn wippy_spawner_builder_context_name_and_messages() {
    let runtime = App::new()
        .entry("t:child", CTX_CHILD)
        .entry("t:dump", CTX_DUMP)
        .entry("t:idle", IDLE)
        .entry(
            "t:main",
            r#"return function()
        local me = process.pid()
        local events = process.events()
        local base = process.with_context({ user = "ada", n = 7 })
        local full = base:with_context({ role = "admin" }):with_options({ trap_links = false })
            :with_actor({ id = "nobody" }):with_scope({}):with_name("wippy-worker")
            :with_message("hello", "a", 2)
        local pid = assert(full:spawn_monitored("t:child", "test:host", me))
        -- The name is registered before the spawn returns.
        assert(process.registry.lookup("wippy-worker") == pid, "registered at once")
        local report = process.inbox():receive()
        assert(report:topic() == "report")
        local r = report:payload():data()
        assert(r.topic == "hello" and r.a == "a" and r.b == 2, "with_message: " .. tostring(r.topic))
        assert(r.user == "ada" and r.role == "admin" and r.n == 7, "context")
        assert(r.missing == "NotFound" and r.empty == "Invalid", r.missing .. " " .. r.empty)
        assert(r.keys == "n,role,user", r.keys)

        -- The builder is immutable: `base` has neither the role nor the name.
        assert(base:spawn_monitored("t:dump", "test:host"))
        local ev = events:receive()
        assert(ev.result.value == "n=7,user=ada|NotFound", tostring(ev.result.value))
        -- Without a context: nothing.
        assert(process.spawn_monitored("t:dump", "test:host"))
        ev = events:receive()
        assert(ev.result.value == "|NotFound", tostring(ev.result.value))

        -- The name is taken: the spawn fails (and its child is stopped).
        local again, err = full:spawn("t:idle", "test:host")
        assert(again == nil and err ~= nil, "a taken name fails the spawn")
        assert(process.registry.lookup("wippy-worker") == pid, "the name still names the first child")

        assert(process.send("wippy-worker", "stop"))
        ev = events:receive()
        assert(ev.from == pid and ev.result.value == "stopped by stop", tostring(ev.result.value))
        return err:kind()
    end"#,
        )
        .start();
    let v = run_on(&runtime, "t:main", vec![]).expect("main succeeds");
    assert_eq!(v, s("AlreadyExists"));
    // The child of the failed spawn (it would wait forever) was stopped.
    assert!(
        runtime.wait_idle(Duration::from_secs(5)),
        "{} process(es) still alive",
        runtime.live_processes()
    );
}

// ---- payload ----

#[test]
fn wippy_payloads() {
    let v = ok(r#"return function()
        local f = payload.format
        assert(f.JSON == "json/plain" and f.MSGPACK == "application/msgpack" and f.STRING == "text/plain"
            and f.LUA == "lua/any" and f.BYTES == "application/octet-stream" and f.ERROR == "golang/error")
        local p = payload.new({ name = "ada", tags = { "x", "y" }, n = 3 })
        assert(p:get_format() == f.LUA and p:data().name == "ada")

        local j = assert(p:transcode(f.JSON))
        assert(j:get_format() == f.JSON)
        local back = j:data()
        assert(back.name == "ada" and back.tags[2] == "y" and back.n == 3)
        local lua = assert(j:transcode(f.LUA))
        assert(lua:get_format() == f.LUA and lua:data().tags[1] == "x")

        local m = assert(p:transcode(f.MSGPACK))
        assert(m:get_format() == f.MSGPACK)
        local u = m:unmarshal()
        assert(u.name == "ada" and u.tags[1] == "x" and math.type(u.n) == "integer")

        local str = assert(payload.new("hi"):transcode(f.STRING))
        assert(str:get_format() == f.STRING and str:data() == "hi")
        local bad, err = p:transcode(f.STRING)
        assert(bad == nil and errors.is(err, errors.INTERNAL), "a table is not text")
        assert(payload.new(errors.new("boom")):get_format() == f.ERROR)

        -- A message's payload is a payload.
        process.send(process.pid(), "data", { k = "v" })
        local msg = process.inbox():receive()
        local mp = msg:payload()
        assert(mp:get_format() == f.LUA and mp:data().k == "v")
        return mp:transcode(f.JSON):data().k
    end"#);
    assert_eq!(v, s("v"));
}

// ---- subscribe / unsubscribe / unpack ----

#[test]
fn wippy_subscribe_and_unsubscribe() {
    let v = ok(r#"return function()
        assert(unpack == table.unpack)
        local me = process.pid()
        local ch = channel.new(4)
        assert(subscribe("news", ch) == ch)
        local dup, err = subscribe("news", channel.new(1))
        assert(dup == nil and errors.is(err, errors.ALREADY_EXISTS))
        process.send(me, "news", "first")
        assert(ch:receive() == "first")
        -- Without a channel: a new one.
        local other = subscribe("weather")
        process.send(me, "weather", "rain")
        assert(other:receive() == "rain")

        assert(unsubscribe(ch))
        process.send(me, "news", "second")
        -- No longer routed to ch: it goes to the inbox.
        local r = channel.select({ ch:case_receive() }, true)
        assert(r.default, "nothing reaches an unsubscribed channel")
        local msg = process.inbox():receive()
        return msg:topic() .. "=" .. msg:payload():data()
    end"#);
    assert_eq!(v, s("news=second"));
}

// ---- time.parse / time.date ----

#[test]
fn wippy_time_parse_and_date() {
    let v = ok(r#"local time = require("time")
    return function()
        local t = assert(time.parse(time.RFC3339, "2024-02-29T12:30:45+02:00"))
        assert(t:unix() == 1709202645, t:unix())
        local cet = time.fixed_zone("CET", 3600)
        local l = assert(time.parse("2006-01-02 15:04:05", "2024-02-29 11:30:45", cet))
        assert(l:unix() == 1709202645, l:unix())
        local u = assert(time.parse("2006-01-02 15:04:05", "2024-02-29 11:30:45"))
        assert(u:unix() == 1709202645 + 3600, "UTC by default: " .. u:unix())
        local bad, err = time.parse(time.DATE_ONLY, "29/02/2024")
        assert(bad == nil and errors.is(err, errors.INVALID))

        assert(time.date(2024, 2, 29, 10, 30, 45, 0, time.utc):unix() == 1709202645)
        assert(time.date(2024, 2, 29, 10, 30, 45, 500, time.utc):unix_nano() == 1709202645000000500)
        assert(time.date(2024, 13, 1, 0, 0, 0, 0, time.utc):unix() == 1735689600, "month 13")
        assert(time.date(2024, 2, 30, 0, 0, 0, 0, time.utc):unix() == 1709251200, "Feb 30 is Mar 1")
        assert(time.date(2023, 12, 29, 15, 4, 5, 0, cet):unix() == 1703858645)
        assert(time.date(2023, 12, 29, 15, 4, 5, 0):unix() == 1703862245, "UTC by default")

        assert(time.load_location("UTC") == time.utc)
        local nowhere, lerr = time.load_location("Nowhere/Atlantis")
        assert(nowhere == nil and lerr ~= nil)
        return time.date(2023, 12, 29, 15, 4, 5, 0, time.utc):format(time.RFC3339)
    end"#);
    assert_eq!(v, s("2023-12-29T15:04:05Z"));
}

// ---- events ----

const PUBLISHER: &str = r#"local events = require("events")
return function()
    assert(events.send("orders.eu", "created", "/orders/1", { total = 42 }))
    assert(events.send("orders.eu", "deleted", "/orders/2"))
    assert(events.send("billing", "created", "/bills/1", "ignored"))
    return "published"
end"#;

#[test]
fn wippy_events_reach_matching_subscribers() {
    let v = App::new()
        .entry("t:pub", PUBLISHER)
        .entry(
            "t:main",
            r#"local events = require("events")
    return function()
        local all = assert(events.subscribe("orders.*"))
        local created = assert(events.subscribe("orders.eu", "created"))
        assert(process.spawn_monitored("t:pub", "test:host"))
        assert(process.events():receive().result.value == "published")

        local e1 = all:channel():receive()
        assert(e1.system == "orders.eu" and e1.kind == "created" and e1.path == "/orders/1")
        assert(e1.data.total == 42)
        local e2 = all:channel():receive()
        assert(e2.kind == "deleted" and e2.path == "/orders/2")
        for k in pairs(e2) do assert(k ~= "data", "no data: no data key") end
        local c = created:channel():receive()
        assert(c.kind == "created" and c.path == "/orders/1")
        -- Nothing else matched either subscription (billing, deleted).
        assert(channel.select({ all:channel():case_receive(), created:channel():case_receive() }, true).default)

        -- After close: the channel is closed and gets nothing more.
        assert(created:close() == true)
        assert(created:close() == true, "closing twice is fine")
        local v, ok = created:channel():receive()
        assert(v == nil and ok == false)
        assert(events.send("orders.eu", "created", "/orders/3"))
        local e3 = all:channel():receive()
        assert(e3.path == "/orders/3", "still published")
        local _, ok2 = created:channel():receive()
        assert(ok2 == false)

        local bad, err = events.send("", "k", "/p")
        assert(bad == nil and errors.is(err, errors.INVALID))
        return "ok"
    end"#,
        )
        .run("t:main", vec![])
        .expect("main succeeds");
    assert_eq!(v, s("ok"));
}

/// A subscriber on `test:other` (with `other` as its limits) and a
/// publisher on `test:host`: what the subscriber saw.
fn bus_across_hosts(other: HostLimits) -> String {
    let runtime = App::new()
        .other_limits(other)
        .entry(
            "t:sub",
            r#"local events = require("events")
        return function()
            local sub = assert(events.subscribe("orders"))
            -- The publisher's "done" comes after its event, if that comes.
            local r = channel.select({ sub:channel():case_receive(), process.inbox():case_receive() })
            if r.channel == sub:channel() then return "event " .. r.value.path end
            return "nothing before " .. r.value:topic()
        end"#,
        )
        .entry(
            "t:pub",
            r#"local events = require("events")
        return function(subscriber)
            local own = assert(events.subscribe("orders"))
            assert(events.send("orders", "created", "/orders/9"))
            assert(process.send(subscriber, "done"))
            return own:channel():receive().path
        end"#,
        )
        .start();
    let (pid, exit) = runtime
        .spawn_watched(SpawnRequest::new("t:sub", OTHER_HOST, vec![]))
        .expect("spawn");
    let deadline = Instant::now() + DEADLINE;
    while runtime.bus_subscriptions() < 1 {
        assert!(Instant::now() < deadline, "the subscriber never subscribed");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The publisher's own subscription got it: the event was published.
    let to = vec![s(&pid.to_string())];
    assert_eq!(run_on(&runtime, "t:pub", to), Ok(s("/orders/9")));
    let v = exit
        .recv_timeout(DEADLINE)
        .expect("the subscriber ends")
        .expect("the subscriber succeeds");
    v.as_str().expect("a string").to_owned()
}

#[test]
fn wippy_events_respect_allow_hosts() {
    // Control: hosts that reach each other.
    assert_eq!(bus_across_hosts(HostLimits::default()), "event /orders/9");
    // The subscriber's host may not reach the publisher's: it gets nothing.
    let walled = HostLimits {
        allow_hosts: Some(vec![]),
        ..HostLimits::default()
    };
    assert_eq!(bus_across_hosts(walled), "nothing before done");
}

// ---- registry ----

fn catalog() -> Vec<EntryInfo> {
    vec![
        EntryInfo {
            id: "app:main".into(),
            kind: "process.lua".into(),
            meta: map(&[("type", s("cli")), ("title", s("Main"))]),
            data: map(&[("method", s("main")), ("source", s("file://main.lua"))]),
        },
        EntryInfo {
            id: "app.tools:fmt".into(),
            kind: "library.lua".into(),
            meta: map(&[("type", s("tool"))]),
            data: map(&[("source", s("file://fmt.lua"))]),
        },
        EntryInfo {
            id: "app.tools:lint".into(),
            kind: "library.lua".into(),
            meta: map(&[("type", s("tool")), ("beta", Value::Bool(true))]),
            data: map(&[("source", s("file://lint.lua"))]),
        },
        EntryInfo {
            id: "app:svc".into(),
            kind: "process.service".into(),
            meta: map(&[]),
            data: map(&[("process", s("app:main"))]),
        },
    ]
}

#[test]
fn wippy_registry_reads_the_entries() {
    let source = r#"local registry = require("registry")
    local function ids(list)
        local out = {}
        for _, e in ipairs(list) do out[#out + 1] = e.id end
        table.sort(out)
        return table.concat(out, ",")
    end
    return function()
        local main = assert(registry.get("app:main"))
        assert(main.kind == "process.lua" and main.meta.title == "Main" and main.data.method == "main")
        local none, err = registry.get("app:nope")
        assert(none == nil and errors.is(err, errors.NOT_FOUND))
        -- Each call hands out a fresh copy.
        main.meta.title = "changed"
        assert(registry.get("app:main").meta.title == "Main")

        assert(ids(registry.find({ [".kind"] = "library.lua" })) == "app.tools:fmt,app.tools:lint")
        assert(ids(registry.find({ [".ns"] = "app.tools", ["meta.beta"] = true })) == "app.tools:lint")
        assert(ids(registry.find({ type = "tool" })) == "app.tools:fmt,app.tools:lint")
        assert(ids(registry.find({ [".ns"] = "app" })) == "app:main,app:svc")
        assert(#registry.find({ [".kind"] = "http.endpoint" }) == 0)
        local id = registry.parse_id("app.tools:fmt")
        assert(id.ns == "app.tools" and id.name == "fmt")

        local snap = assert(registry.snapshot())
        assert(#snap:entries() == 4)
        assert(snap:get("app:svc").data.process == "app:main")
        assert(ids(snap:find({ ["meta.type"] = "cli" })) == "app:main")
        assert(ids(snap:namespace("app.tools")) == "app.tools:fmt,app.tools:lint")
        assert(snap:version() ~= nil)
        local changes = snap:changes()
        changes:create({ id = "app:new", kind = "test", meta = {}, data = {} })
        local applied, aerr = changes:apply()
        assert(applied == nil and errors.is(aerr, errors.PERMISSION_DENIED))
        local still, nerr = registry.get("app:new")
        assert(still == nil and errors.is(nerr, errors.NOT_FOUND), "nothing was added")
        return "ok"
    end"#;
    let program = LuaProgram::new("main.lua", source).with_modules(&MODULES);
    let runtime = RuntimeBuilder::new()
        .frontend(lua_frontend())
        .host(HostSpec::new(HOST, 1))
        .entries(catalog())
        .program(program.into_program("app:main"))
        .start()
        .expect("runtime starts");
    assert_eq!(run_on(&runtime, "app:main", vec![]), Ok(s("ok")));
}

// ---- io ----

#[test]
fn wippy_io_needs_a_terminal_host() {
    let source = r#"local io = require("io")
    return function()
        local ok, err = io.print("hello")
        if ok then return "terminal" end
        assert(errors.is(err, errors.UNAVAILABLE), tostring(err))
        local ok2, err2 = io.readline()
        assert(ok2 == nil and errors.is(err2, errors.UNAVAILABLE))
        return "unavailable"
    end"#;
    assert_eq!(run_script(source), Ok(s("unavailable")));
    // On a terminal host, an empty write succeeds (and prints nothing).
    let program = LuaProgram::new(
        "main.lua",
        r#"local io = require("io")
        return function() return io.write("") == true and type(io.args()) == "table" end"#,
    )
    .with_modules(&MODULES);
    let runtime = RuntimeBuilder::new()
        .frontend(lua_frontend())
        .host(HostSpec::new(HOST, 1).terminal())
        .program(program.into_program("t:main"))
        .start()
        .expect("runtime starts");
    assert_eq!(run_on(&runtime, "t:main", vec![]), Ok(Value::Bool(true)));
}

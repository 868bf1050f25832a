//! The `process` table of `lua-api.md`, row by row, through the host library.

use warren_core::{ErrorKind, Value};
use warren_tests::*;

const CHILD: &str = r#"
return { main = function(mode, a, b)
    if mode == "add" then return a + b end
    if mode == "fail" then error("child failed on purpose") end
    if mode == "nilerr" then return nil, errors.new({ message = "soft failure", kind = errors.CONFLICT }) end
    if mode == "wait" then process.inbox():receive() return "woke" end
    if mode == "echo" then
        local msg = process.inbox():receive()
        process.send(msg:from(), "echo", msg:payload():data())
        return "echoed"
    end
    return mode
end }
"#;

fn app(main: &str) -> App {
    App::new().entry("t:main", main).entry("t:child", CHILD)
}

#[test]
fn pid_is_a_comparable_string_key() {
    let v = app(r#"return function()
        local a, b = process.pid(), process.pid()
        assert(type(a) == "string" and a == b)
        local t = { [a] = 1 }
        assert(t[b] == 1)
        return a
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    let pid = v.as_str().expect("string").to_owned();
    assert!(warren_core::Pid::parse(&pid).is_some(), "{pid}");
}

#[test]
fn spawn_passes_arguments_and_exec_returns_the_result() {
    let v = app(r#"return function()
        local r, err = process.exec("t:child", "test:host", "add", 40, 2)
        assert(err == nil, tostring(err))
        local pid = process.spawn("t:child", "test:host", "plain")
        assert(type(pid) == "string" and pid ~= process.pid())
        return r
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    assert_eq!(v, Value::Int(42));
}

/// Describes its arguments: their count, then each one's type and value.
const ARGS: &str = r##"return function(...)
    local out = { tostring(select("#", ...)) }
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        local shown = type(v) == "table" and tostring(v.k) or tostring(v)
        if type(v) == "string" then shown = table.concat({ string.byte(v, 1, -1) }, ",") end
        if math.type(v) then shown = math.type(v) .. ":" .. shown end
        out[#out + 1] = type(v) .. "=" .. shown
    end
    return table.concat(out, " ")
end"##;

#[test]
fn spawn_arguments_of_every_scalar_kind_and_tables_arrive_as_sent() {
    // Scalars and tables take the raw host function (`H.spawn_plain`), a
    // context the general one (`H.spawn`): the child sees the same values
    // either way, trailing nils and binary strings too.
    let v = app(r#"return function()
        local a = assert(process.exec("t:args", "test:host", "s", 7, 1.5, true, nil, "\0\255", nil))
        local b = assert(process.exec("t:args", "test:host", "s", 7, 1.5, true, nil, "\0\255", { k = "t" }))
        local c = assert(process.with_context({ x = 1 }):spawn("t:args", "test:host", "s"))
        local d = assert(process.exec("t:args", "test:host"))
        return a .. " | " .. b .. " | " .. type(c) .. " | " .. d
    end"#)
    .entry("t:args", ARGS)
    .run("t:main", vec![])
    .expect("ok");
    let shared = "string=115 number=integer:7 number=float:1.5 boolean=true nil=nil string=0,255";
    assert_eq!(
        v.as_str().unwrap_or_default(),
        format!("7 {shared} nil=nil | 7 {shared} table=t | string | 0")
    );
}

#[test]
fn a_table_argument_is_refused_alike_by_either_spawn_path() {
    // A spawn with a context takes `H.spawn`, one without `H.spawn_plain`,
    // which walks table arguments where they lie: each refusal reads the
    // same, for one argument and for several.
    let v = app(r#"return function()
        local cyclic = {} cyclic.again = cyclic
        local bad = { { f = print }, cyclic, { deep = { ch = channel.new() } } }
        local out = {}
        for i, t in ipairs(bad) do
            for _, args in ipairs({ { t }, { "s", t } }) do
                local _, raw = process.spawn("t:args", "test:host", table.unpack(args))
                local _, general = process.with_context({ x = 1 })
                    :spawn("t:args", "test:host", table.unpack(args))
                assert(raw and general, "refused: " .. i)
                assert(raw:kind() == general:kind(), raw:kind() .. " vs " .. general:kind())
                assert(raw:message() == general:message(), raw:message() .. " vs " .. general:message())
                out[#out + 1] = raw:message()
            end
        end
        return table.concat(out, "\n")
    end"#)
    .entry("t:args", ARGS)
    .run("t:main", vec![])
    .expect("ok");
    let text = v.as_str().unwrap_or_default().to_owned();
    assert!(text.starts_with("argument"), "{text}");
    assert!(text.contains("argument[2]"), "{text}");
    assert_eq!(text.lines().count(), 6, "{text}");
}

/// Describes its arguments, error objects and nested tables included.
const DEEP_ARGS: &str = r##"return function(...)
    local out = { tostring(select("#", ...)) }
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        local shown = (math.type(v) or type(v)) .. ":" .. tostring(v)
        if type(v) == "table" and type(v.kind) == "function" then
            shown = "err:" .. tostring(v:kind()) .. ":" .. tostring(v:message())
        elseif type(v) == "table" then
            shown = "table:" .. tostring(v.k) .. ":" .. tostring(v.n and v.n.m)
        end
        out[#out + 1] = shown
    end
    return table.concat(out, " ")
end"##;

#[test]
fn later_starts_of_an_entry_hand_the_child_what_its_first_start_did() {
    // The first start of t:args compiles it; later ones with no context
    // and at most 16 arguments are started by the machine, the rest as
    // the first: every child must see the same values.
    let v = app(r#"return function()
        local e = errors.new({ message = "m", kind = errors.CONFLICT })
        local calls = {
            function() return process.exec("t:args", "test:host", 7, 1.5, nil, "a\0b", { k = "t", n = { m = 2 } }, e, nil) end,
            function() return process.exec("t:args", "test:host") end,
            function() return process.exec("t:args", "test:host", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16) end,
            function() return process.exec("t:args", "test:host", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17) end,
        }
        local out = {}
        for round = 1, 3 do
            for i, call in ipairs(calls) do
                local r = assert(call())
                if round == 1 then out[i] = r elseif out[i] ~= r then
                    error(("call %d, round %d: %s, first %s"):format(i, round, r, out[i]))
                end
            end
        end
        return table.concat(out, " | ")
    end"#)
    .entry("t:args", DEEP_ARGS)
    .run("t:main", vec![])
    .expect("ok");
    let ints = |n: i64| {
        (1..=n)
            .map(|i| format!("integer:{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let want = format!(
        "7 integer:7 float:1.5 nil:nil string:a\u{0}b table:t:2 err:Conflict:m nil:nil | 0 | 16 {} | 17 {}",
        ints(16),
        ints(17)
    );
    assert_eq!(v.as_str().unwrap_or_default(), want);
}

#[test]
fn a_spawn_whose_entry_id_is_not_utf8_is_refused_and_the_spawner_goes_on() {
    let v = app(r#"return function()
        local p, err = process.spawn("t:\255", "test:host", "x")
        assert(p == nil and err ~= nil)
        local q, err2 = process.spawn("t:child", "test:\255", "x")
        assert(q == nil and err2 ~= nil)
        return err:kind() .. " " .. err2:kind() .. " " .. type(process.spawn("t:child", "test:host"))
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    let text = v.as_str().unwrap_or_default().to_owned();
    assert!(text.ends_with(" string"), "{text}");
}

#[test]
fn exec_of_a_failing_entry_returns_nil_err() {
    let v = app(r#"return function()
        local r, err = process.exec("t:child", "test:host", "fail")
        assert(r == nil)
        local r2, err2 = process.exec("t:child", "test:host", "nilerr")
        assert(r2 == nil and err2:kind() == errors.CONFLICT, tostring(err2))
        return err:message()
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    assert!(
        v.as_str()
            .unwrap_or_default()
            .contains("child failed on purpose"),
        "{v:?}"
    );
}

/// Ends the process `caller` waits in (from Lua and from a component), and
/// answers how the `exec` child it waited on ended: as a function call's
/// callee, it is terminated with its caller; before, it ran on for ever.
const EXEC_WATCH: &str = r#"local time = require("time")
return function(caller, ...)
    process.registry.register("watch")
    local parent = process.spawn(caller, "test:host", ...)
    local child = process.inbox():receive():payload():data()
    local events = process.events()
    process.monitor(child)
    process.terminate(parent)
    local late = time.after("10s")
    local r = channel.select({ events:case_receive(), late:case_receive() })
    if r.channel == late then return "the child still runs" end
    local e = r.value.result.error
    return tostring(r.value.from == child) .. " " .. e:kind() .. " "
        .. tostring(e:message():find("exec waited on it", 1, true) ~= nil)
end"#;

/// An `exec` child: says its pid, then waits for ever.
const EXEC_KID: &str = r#"return function()
    process.send("watch", "pid", process.pid())
    process.inbox():receive()
end"#;

#[test]
fn an_exec_child_is_terminated_when_its_caller_ends_first() {
    let v = App::new()
        .entry("t:main", EXEC_WATCH)
        .entry("t:kid", EXEC_KID)
        .entry(
            "t:caller",
            r#"return function() return process.exec("t:kid", "test:host") end"#,
        )
        .component("t:hostile", "hostile")
        .start();
    let lua = run_on(&v, "t:main", vec![s("t:caller")]);
    assert_eq!(lua, Ok(s("true Canceled true")));
    let wasm = run_on(
        &v,
        "t:main",
        vec![s("t:hostile"), s("exec-on"), s("t:kid"), s("test:host")],
    );
    assert_eq!(wasm, Ok(s("true Canceled true")));
}

#[test]
fn spawn_of_unknown_entry_or_host_returns_not_found() {
    let v = app(r#"return function()
        local p, err = process.spawn("t:nope", "test:host")
        assert(p == nil and errors.is(err, errors.NOT_FOUND), tostring(err))
        local p2, err2 = process.spawn("t:child", "no:host")
        assert(p2 == nil and errors.is(err2, errors.NOT_FOUND), tostring(err2))
        return tostring(err) .. " | " .. tostring(err2)
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    let text = v.as_str().unwrap_or_default().to_owned();
    assert!(
        text.contains("t:nope") && text.contains("no:host"),
        "{text}"
    );
}

/// The four spawners, from the main coroutine and from a spawned one, with
/// scalar arguments (one C call) and with a table (the kernel's Lua path):
/// each child runs, and the monitored ones report their ends.
#[test]
fn every_spawner_spawns_from_any_coroutine_of_the_process() {
    let v = app(r#"return function()
        local ev = process.events()
        local function all(tag)
            local a = assert(process.spawn("t:child", "test:host", "wait"))
            local b = assert(process.spawn_monitored("t:child", "test:host", tag, 1))
            assert(process.spawn_linked("t:child", "test:host", "plain", { k = 1 }))
            local d = assert(process.spawn_linked_monitored("t:child", "test:host", tag .. "2", { k = 2 }))
            assert(process.send(a, "go"))
            return b, d
        end
        local b, d = all("m")
        local ch = channel.new()
        coroutine.spawn(function() ch:send({ all("c") }) end)
        local cb = ch:receive()
        local seen, n = {}, 0
        while n < 4 do
            local e = ev:receive()
            if e.kind == process.event.EXIT then
                seen[e.from], n = e.result.value, n + 1
            end
        end
        return seen[b] .. " " .. seen[d] .. " " .. seen[cb[1]] .. " " .. seen[cb[2]]
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    assert_eq!(v, s("m m2 c c2"));
}

#[test]
fn spawn_with_bad_argument_types_raises() {
    let e = fails(r#"return function() process.spawn(42, "test:host") end"#);
    assert!(
        e.message.contains("entry id must be a string"),
        "{}",
        e.message
    );
}

#[test]
fn spawn_linked_child_failure_kills_the_parent() {
    let e = app(r#"return function()
        process.spawn_linked("t:child", "test:host", "fail")
        process.inbox():receive()
        return "survived"
    end"#)
    .run("t:main", vec![])
    .expect_err("parent must die with its linked child");
    assert!(
        e.message.contains("linked process") && e.message.contains("child failed on purpose"),
        "{}",
        e.message
    );
}

#[test]
fn links_do_not_fire_on_normal_exit() {
    let v = app(r#"local time = require("time")
    return function()
        process.spawn_linked("t:child", "test:host", "plain")
        time.sleep("30ms")
        return "alive"
    end"#)
    .run("t:main", vec![])
    .expect("a normal exit of a linked process does not kill");
    assert_eq!(v, s("alive"));
}

#[test]
fn spawn_monitored_delivers_exit_events_for_normal_and_abnormal_exits() {
    let v = app(r#"return function()
        local events = process.events()
        local ok_pid = process.spawn_monitored("t:child", "test:host", "add", 1, 2)
        local ev = events:receive()
        assert(ev.kind == process.event.EXIT and ev.from == ok_pid, ev.kind)
        assert(ev.result.value == 3 and ev.result.error == nil)
        local bad_pid = process.spawn_monitored("t:child", "test:host", "fail")
        local ev2 = events:receive()
        assert(ev2.kind == process.event.EXIT and ev2.from == bad_pid)
        assert(ev2.result.value == nil and ev2.result.error ~= nil)
        return ev2.result.error:message()
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    assert!(
        v.as_str()
            .unwrap_or_default()
            .contains("child failed on purpose")
    );
}

#[test]
fn an_exit_event_looks_the_same_whether_the_events_channel_was_asked_for_before_or_after() {
    // Before: the machine delivers it. After: the kernel's Lua makes the
    // channel and delivers it. An exec's own wait is woken either way.
    let v = app(r#"return function()
        local function describe(e, pid)
            local fields, rfields = 0, 0
            for _ in pairs(e) do fields = fields + 1 end
            for _ in pairs(e.result) do rfields = rfields + 1 end
            return table.concat({ e.kind, tostring(e.from == pid), tostring(e.result.value),
                tostring(e.result.error), type(e.at), tostring(e.at:unix() > 1600000000),
                tostring(e.at:before(require("time").now())), fields, rfields }, ",")
        end
        -- The first child ends while this process waits in exec (one worker:
        -- in start order), before it has an events channel.
        local early = process.spawn_monitored("t:child", "test:host", "plain")
        assert(process.exec("t:child", "test:host", "add", 1, 2) == 3)
        local events = process.events()
        local a = describe(events:receive(), early)
        local late = process.spawn_monitored("t:child", "test:host", "plain")
        local b = describe(events:receive(), late)
        return a .. " | " .. b
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    let one = "pid.exit,true,plain,nil,table,true,true,4,1";
    assert_eq!(v.as_str().unwrap_or_default(), format!("{one} | {one}"));
}

#[test]
fn a_failed_exit_event_and_exec_look_the_same_whether_the_events_channel_was_asked_for_before_or_after()
 {
    // As above, for exits with an error: the error object is the
    // kernel's either way, and so is what `exec` returns for one.
    let v = app(r#"return function()
        local function err_text(e)
            return table.concat({ tostring(getmetatable(e) == getmetatable(errors.new("x"))),
                e:kind(), e:message(), tostring(e:retryable()), type(e:details()),
                tostring(errors.is(e, e:kind())) }, ",")
        end
        local function describe(e, pid)
            local rfields = 0
            for _ in pairs(e.result) do rfields = rfields + 1 end
            return table.concat({ e.kind, tostring(e.from == pid), tostring(e.result.value),
                err_text(e.result.error), rfields }, ",")
        end
        local function exec(mode)
            local v, e = process.exec("t:child", "test:host", mode)
            return tostring(v) .. "," .. err_text(e)
        end
        local early = process.spawn_monitored("t:child", "test:host", "nilerr")
        local x1 = exec("fail")
        local events = process.events()
        local a = describe(events:receive(), early)
        local late = process.spawn_monitored("t:child", "test:host", "nilerr")
        local b = describe(events:receive(), late)
        local x2 = exec("fail")
        return table.concat({ a, b, x1, x2 }, " | ")
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    let text = v.as_str().unwrap_or_default().to_owned();
    let parts: Vec<&str> = text.split(" | ").collect();
    assert_eq!(parts.len(), 4, "{text}");
    assert_eq!(
        parts[0],
        "pid.exit,true,nil,true,Conflict,soft failure,false,nil,true,1"
    );
    assert_eq!(parts[0], parts[1]);
    assert!(parts[2].starts_with("nil,true,,"), "{text}");
    assert!(parts[2].contains("child failed on purpose"), "{text}");
    assert_eq!(parts[2], parts[3]);
}

#[test]
fn spawn_linked_monitored_with_trap_links_gets_both_events() {
    let v = app(r#"return function()
        process.set_options({ trap_links = true })
        assert(process.get_options().trap_links == true)
        local events = process.events()
        local pid = process.spawn_linked_monitored("t:child", "test:host", "fail")
        local kinds = {}
        for _ = 1, 2 do
            local ev = events:receive()
            assert(ev.from == pid)
            kinds[ev.kind] = true
        end
        assert(kinds[process.event.EXIT] and kinds[process.event.LINK_DOWN])
        return "both"
    end"#)
    .run("t:main", vec![])
    .expect("trapping process survives");
    assert_eq!(v, s("both"));
}

#[test]
fn registry_scopes_and_names_registered_for_another_pid() {
    let v = app(r#"return function()
        local reg = process.registry
        assert(reg.register("mine", nil, reg.LOCAL) == true, "LOCAL is the default scope")
        local ok, err = reg.register("wide", nil, reg.EVENTUAL)
        assert(ok == nil and errors.is(err, errors.INVALID), tostring(err))
        assert(err:message():find("node-local", 1, true), err:message())
        local ok2, err2 = reg.unregister("mine", reg.STRONG)
        assert(ok2 == nil and errors.is(err2, errors.INVALID), "unregister scope")
        local child = process.spawn("t:child", "test:host", "wait")
        assert(reg.register("kid", child) == true)
        local other = process.spawn("t:child", "test:host", "wait")
        assert(reg.register("other", other) == true)
        assert(reg.unregister("kid") == true, "the registrant releases the name")
        assert(reg.lookup("kid") == nil, "released")
        assert(reg.unregister("kid") == false, "only once")
        assert(reg.unregister("nobody") == false, "a name nobody holds")
        process.terminate(child)
        process.terminate(other)
        return reg.unregister("mine", reg.LOCAL)
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    assert_eq!(v, Value::Bool(true));
}

#[test]
fn events_carry_the_time_they_happened() {
    let v = app(r#"local time = require("time")
    return function()
        local before = time.now()
        process.spawn_monitored("t:child", "test:host", "fail")
        local ev = process.events():receive()
        assert(ev.kind == process.event.EXIT, ev.kind)
        assert(not ev.at:before(before) and not time.now():before(ev.at), "at is when it arrived")
        return "timed"
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    assert_eq!(v, s("timed"));
}

#[test]
fn set_options_returns_false_and_an_error_for_what_it_does_not_know() {
    let v = app(r#"return function()
        local ok, err = process.set_options({ priority = 1 })
        assert(ok == false and errors.is(err, errors.INVALID), tostring(err))
        assert(err:message():find("unknown option priority", 1, true), err:message())
        local ok2, err2 = process.set_options({ trap_links = "yes" })
        assert(ok2 == false and errors.is(err2, errors.INVALID), tostring(err2))
        assert(process.get_options().trap_links == false, "nothing was set")
        return process.set_options({ trap_links = true })
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    assert_eq!(v, Value::Bool(true));
}

#[test]
fn link_and_unlink_an_existing_process() {
    let v = app(r#"local time = require("time")
    return function()
        process.set_options({ trap_links = true })
        local events = process.events()
        local a = process.spawn("t:child", "test:host", "wait")
        assert(process.link(a) == true)
        process.terminate(a)
        local ev = events:receive()
        assert(ev.kind == process.event.LINK_DOWN and ev.from == a, ev.kind)
        assert(ev.result.error:kind() == errors.CANCELED)
        local b = process.spawn("t:child", "test:host", "wait")
        process.link(b)
        assert(process.unlink(b) == true)
        process.terminate(b)
        local r = channel.select({ events:case_receive(), time.after("50ms"):case_receive() })
        assert(r.channel ~= events, "no LINK_DOWN after unlink")
        local ok, err = process.link("<0.999999>")
        assert(ok == nil and errors.is(err, errors.NOT_FOUND))
        return "ok"
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    assert_eq!(v, s("ok"));
}

#[test]
fn monitor_and_unmonitor() {
    let v = app(r#"local time = require("time")
    return function()
        local events = process.events()
        local a = process.spawn("t:child", "test:host", "wait")
        assert(process.monitor(a) == true)
        process.send(a, "go", 1)
        local ev = events:receive()
        assert(ev.kind == process.event.EXIT and ev.result.value == "woke")
        local b = process.spawn("t:child", "test:host", "wait")
        process.monitor(b)
        assert(process.unmonitor(b) == true)
        process.send(b, "go", 1)
        local r = channel.select({ events:case_receive(), time.after("50ms"):case_receive() })
        assert(r.channel ~= events, "no EXIT after unmonitor")
        local ok, err = process.monitor("<0.999999>")
        assert(ok == nil and errors.is(err, errors.NOT_FOUND))
        return "ok"
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    assert_eq!(v, s("ok"));
}

#[test]
fn cancel_delivers_a_cancel_event_with_reason() {
    let v = App::new()
        .entry(
            "t:main",
            r#"return function()
            local events = process.events()
            local child = process.spawn_monitored("t:canceled", "test:host")
            assert(process.cancel(child, "shutting down") == true)
            local ev = events:receive()
            assert(ev.kind == process.event.EXIT)
            return ev.result.value
        end"#,
        )
        .entry(
            "t:canceled",
            r#"return function()
            local ev = process.events():receive()
            assert(ev.kind == process.event.CANCEL)
            return ev.reason .. " from " .. ev.from
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    assert!(
        v.as_str()
            .unwrap_or_default()
            .starts_with("shutting down from <"),
        "{v:?}"
    );
}

#[test]
fn terminate_stops_the_target_with_reason_terminated() {
    let v = app(r#"return function()
        local events = process.events()
        local child = process.spawn_monitored("t:child", "test:host", "wait")
        assert(process.terminate(child) == true)
        local ev = events:receive()
        local ok, err = process.terminate(child)
        assert(ok == nil and errors.is(err, errors.NOT_FOUND))
        return ev.result.error:message()
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    assert_eq!(v, s("terminated"));
}

#[test]
fn terminate_stops_a_busy_process_at_its_next_scheduling_point() {
    let v = App::new()
        .entry(
            "t:main",
            r#"return function()
            local events = process.events()
            local child = process.spawn_monitored("t:busy", "test:host")
            process.terminate(child)
            local ev = events:receive()
            return ev.result.error:kind()
        end"#,
        )
        .entry(
            "t:busy",
            r#"local time = require("time")
        return function() while true do time.sleep("1ms") end end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, s("Canceled"));
}

#[test]
fn registry_register_lookup_unregister_and_release_on_exit() {
    let v = app(r#"return function()
        assert(process.registry.register("me") == true)
        assert(process.registry.lookup("me") == process.pid())
        assert(process.registry.register("me") == true, "a name it holds again")
        local child = process.spawn_monitored("t:child", "test:host", "wait")
        local ok, err = process.registry.register("me", child)
        assert(ok == nil and errors.is(err, errors.ALREADY_EXISTS), tostring(err))
        assert(process.registry.register("kid", child))
        assert(process.send("kid", "go", 1))
        process.events():receive()
        local gone, err2 = process.registry.lookup("kid")
        assert(gone == nil and errors.is(err2, errors.NOT_FOUND), "name released at exit")
        assert(process.registry.unregister("me") == true)
        assert(process.registry.unregister("me") == false)
        return "ok"
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    assert_eq!(v, s("ok"));
}

#[test]
fn event_constants() {
    let v = ok(r#"return function()
        return process.event.EXIT .. "," .. process.event.LINK_DOWN .. "," .. process.event.CANCEL
    end"#);
    assert_eq!(v, s("pid.exit,pid.link.down,pid.cancel"));
}

#[test]
fn returning_nil_err_is_an_abnormal_exit_with_that_error() {
    let e = fails(
        r#"return function() return nil, errors.new({ message = "nope", kind = errors.TIMEOUT, retryable = true }) end"#,
    );
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert_eq!(e.message, "nope");
    assert!(e.retryable);
}

#[test]
fn raising_is_an_abnormal_exit_with_file_and_line() {
    let e = fails("return function()\n  local x = nil\n  return x.field\nend");
    assert!(e.message.contains("t:main.lua:3:"), "{}", e.message);
}

#[test]
fn deadlock_is_reported_and_ends_the_process() {
    let e = fails(
        r#"return function()
        local ch = channel.new()
        coroutine.spawn(function() ch:receive() end)
        ch:receive()
    end"#,
    );
    assert!(e.message.contains("deadlock"), "{}", e.message);
}

#[test]
fn waiting_on_the_inbox_is_not_a_deadlock() {
    let v = app(r#"local time = require("time")
    return function()
        local child = process.spawn_monitored("t:child", "test:host", "wait")
        time.sleep("20ms")
        process.send(child, "go", 1)
        return process.events():receive().result.value
    end"#)
    .run("t:main", vec![])
    .expect("ok");
    assert_eq!(v, s("woke"));
}

#[test]
fn processes_run_on_several_workers() {
    let v = App::new()
        .workers(2)
        .entry(
            "t:main",
            r#"return function()
            local events = process.events()
            local n = 20
            for i = 1, n do process.spawn_monitored("t:sq", "test:host", i) end
            local sum = 0
            for _ = 1, n do sum = sum + process.events():receive().result.value end
            return sum
        end"#,
        )
        .entry("t:sq", "return function(i) return i * i end")
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, Value::Int((1..=20).map(|i| i * i).sum()));
}

/// Ends in every shape: the normal ones are settled in C
/// (`guest-lua/src/machine/exit.rs`), the rest by the kernel's Lua; what a
/// monitor sees must not tell which.
const ENDINGS: &str = r#"
local time = require("time")
return { main = function(mode)
    if mode == "table" then return { a = 1, list = { 1, 2, 3 }, nested = { ok = true } } end
    if mode == "nothing" then return end
    if mode == "nilnil" then return nil, nil end
    if mode == "many" then return "first", "second", "third", "fourth" end
    if mode == "big" then return string.rep("x", 4096) end
    if mode == "func" then return { f = print } end
    if mode == "chan" then return channel.new() end
    if mode == "nilerr" then return nil, "plain text" end
    if mode == "busy" then
        -- Ends with a timer pending, coroutines asleep and waiting, and a name.
        process.registry.register("busy")
        local ch = channel.new()
        time.after("20ms")
        coroutine.spawn(function() time.sleep("30ms") ch:send("late") end)
        coroutine.spawn(function() ch:receive() end)
        return "left them"
    end
    if mode == "helpers" then
        -- Coroutines that end while the main one waits for the last.
        local ch = channel.new()
        for i = 1, 5 do coroutine.spawn(function() if i == 5 then ch:send(i) end end) end
        return "helped " .. ch:receive()
    end
    if mode == "orphan" then
        -- The only coroutine that could feed the main one ends: deadlock.
        local ch = channel.new()
        coroutine.spawn(function() end)
        return ch:receive()
    end
end }
"#;

#[test]
fn a_process_ends_the_same_whichever_path_settles_it() {
    let v = App::new()
        .entry(
            "t:main",
            r#"local time = require("time")
            return function()
            local events = process.events()
            local out = {}
            for _, mode in ipairs({ "table", "nothing", "nilnil", "many", "big", "func", "chan",
                    "nilerr", "busy", "helpers", "orphan" }) do
                local pid = process.spawn_monitored("t:endings", "test:host", mode)
                local ev = events:receive()
                local r = ev.result
                local shown
                if r.error ~= nil then
                    shown = "error " .. tostring(r.error:kind()) .. " " .. r.error:message()
                elseif type(r.value) == "table" then
                    local v = r.value
                    shown = "table " .. v.a .. " " .. table.concat(v.list, ",") .. " " .. tostring(v.nested.ok)
                elseif type(r.value) == "string" and #r.value > 100 then
                    shown = "long " .. #r.value
                else
                    shown = type(r.value) .. " " .. tostring(r.value)
                end
                out[#out + 1] = mode .. ": " .. tostring(ev.from == pid) .. " " .. shown
            end
            -- What "busy" left behind wakes nothing, and its name is free.
            time.sleep("60ms")
            local r = channel.select({ events:case_receive(), default = true })
            out[#out + 1] = "after: " .. tostring(r.default) .. " " .. tostring(process.registry.lookup("busy"))
            return table.concat(out, "\n")
        end"#,
        )
        .entry("t:endings", ENDINGS)
        .limits(warren_core::HostLimits {
            max_message_bytes: 1024,
            ..warren_core::HostLimits::default()
        })
        .run("t:main", vec![])
        .expect("ok");
    let text = v.as_str().unwrap_or_default().to_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12, "{text}");
    assert_eq!(lines[0], "table: true table 1 1,2,3 true");
    assert_eq!(lines[1], "nothing: true nil nil");
    assert_eq!(lines[2], "nilnil: true nil nil");
    assert_eq!(lines[3], "many: true string first");
    assert!(
        lines[4].starts_with("big: true error Invalid result:") && lines[4].contains("1024"),
        "{}",
        lines[4]
    );
    assert_eq!(
        lines[5],
        "func: true error Invalid result.f: function cannot be sent"
    );
    assert_eq!(
        lines[6],
        "chan: true error Invalid result: channel cannot be sent"
    );
    assert_eq!(lines[7], "nilerr: true error  plain text");
    assert_eq!(lines[8], "busy: true string left them");
    assert_eq!(lines[9], "helpers: true string helped 5");
    assert!(
        lines[10].starts_with("orphan: true error Internal deadlock"),
        "{}",
        lines[10]
    );
    assert_eq!(lines[11], "after: true nil");
}

/// A child describing the world it starts in: its globals table, the
/// library behind it, what it left behind in an earlier child (nothing),
/// and its own pid and argument.
const FRESH: &str = r##"
leaked = leaked -- nil in every child: globals are per process
return function(tag)
    local keys = {}
    for k in next, _ENV do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local shown = {
        table.concat(keys, ","), tostring(rawequal(_G, _ENV)), tostring(rawequal(rawget(_G, "_G"), _G)),
        tostring(getmetatable(_ENV)), type(print), tostring(leaked), tostring(tag),
        tostring(process.registry.lookup("fresh") == nil),
        tostring(coroutine.isyieldable()),
    }
    leaked = "yes"
    process.registry.register("fresh")
    return table.concat(shown, " ")
end
"##;

#[test]
fn a_started_process_sees_the_same_fresh_world_whichever_path_started_it() {
    // The first start compiles (the kernel's Lua `start`); later ones are
    // made by the machine (machine/start.rs): the globals, the record
    // behind `process` and the first values must not tell them apart.
    let v = app(r#"return function()
        local out = {}
        for round = 1, 3 do
            local r = assert(process.exec("t:fresh", "test:host", "tag" .. round))
            out[round] = r
        end
        return table.concat(out, " | ")
    end"#)
    .entry("t:fresh", FRESH)
    .run("t:main", vec![])
    .expect("ok");
    let round = |n: i32| format!("_G true true false function nil tag{n} true true");
    assert_eq!(
        v.as_str().unwrap_or_default(),
        format!("{} | {} | {}", round(1), round(2), round(3))
    );
}

/// A worker's front-end holds a run in its host's count (which splits
/// what is left of `memory_total` among the runs in progress) from its
/// first resume to the end of its run, and no longer: once every process
/// of one worker waits, a process on the other may grow into the whole
/// room. (Held after the run, the waiting worker's share halved it, and
/// a run needing 40 MiB of 64 did not fit.)
#[test]
fn a_worker_whose_processes_all_wait_leaves_the_whole_room_to_another() {
    let v = App::new()
        .workers(2)
        .limits(warren_core::HostLimits {
            memory_per_process: 48 << 20,
            memory_total: 64 << 20,
            ..warren_core::HostLimits::default()
        })
        .entry(
            "t:idle",
            r#"return function() process.inbox():receive() end"#,
        )
        .entry(
            "t:big",
            r#"return function()
    process.inbox():receive() -- "go": handed over once main's worker ran out
    -- One C call holding 40 MiB at its peak (a buffer and the string made
    -- from it), in one resume: its ceiling is the room it was resumed
    -- with.
    return #string.rep("x", 20 << 20)
end"#,
        )
        .entry(
            "t:main",
            r#"return function()
    local events = process.events()
    -- A parent's first child stays on its worker, the second goes to the
    -- other (placement.rs).
    local here = process.spawn("t:idle", "test:host")
    local big = process.spawn_monitored("t:big", "test:host")
    process.send(big, "go")
    local ev = events:receive()
    process.terminate(here)
    return ev.result.value or tostring(ev.result.error)
end"#,
        )
        .run("t:main", vec![])
        .expect("main ran");
    assert_eq!(v, Value::Int(20 << 20));
}

//! The Wippy-compatible surface beyond the process model: the `events`
//! bus, the spawner builder and `ctx`, `payload`, the read-only `registry`,
//! `time.parse`/`time.date` and locations, `io`, and library imports.
//!
//! Each of these hands a kernel function or a host function values a
//! hostile process chose: plain tables standing in for the kernel's own
//! objects (subscriptions, builders, payloads, snapshots, locations),
//! tables carrying metamethods that loop, values too big, too deep or
//! cyclic, strings megabytes long. Guaranteed (the security model's rules):
//! no kernel frame runs a metamethod of a user value, nothing is copied or
//! allocated past the caller's limits, a forged object reaches only what
//! its holder could reach anyway (a subscription id names only its own
//! process's subscriptions), the bus honours `allow_hosts` both ways and a
//! full mailbox only loses events, and a library's top level runs inside
//! the importing process's own accounted, preemptible resume. Each case
//! asserts the exact refusal and that the neighbour keeps ticking.

use std::sync::Arc;
use std::time::{Duration, Instant};

use warren_core::{
    EntryInfo, ErrorKind, HostLimits, HostSpec, Runtime, RuntimeBuilder, SpawnRequest, Value,
};
use warren_lua::{LuaLibrary, LuaProgram, MODULES, lua_frontend};
use warren_tests::{HOST, OTHER_HOST};

use crate::harness::{self, ALIVE, JUDGE, NEIGHBOUR, Outcome, app, attack, attack_on, lua};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Prepended to every probe: modules, `res` (a `nil, err` result as
/// "KIND: message", anything else as "ok"), `raised` (the error `f`
/// raises, or "no error"), `spin` and `mark`/`ran` (a metamethod that
/// records that it ran).
const PRELUDE: &str = r#"
local time = require("time")
local events = require("events")
local function res(v, err)
    if v == nil and err ~= nil then return tostring(err:kind()) .. ": " .. tostring(err:message()) end
    if v == nil then return "nil" end
    return "ok"
end
local function raised(f, ...)
    local ok, e = pcall(f, ...)
    if ok then return "no error" end
    if type(e) == "table" and e.message then return tostring(e:kind()) .. ": " .. tostring(e:message()) end
    return tostring(e)
end
local function spin() while true do end end
local ran = {}
local function mark(name) return function() ran[#ran + 1] = name return nil end end
local function ran_text() return #ran == 0 and "none" or table.concat(ran, ",") end
"#;

/// Runs `body` (the body of the attacker's main, after [`PRELUDE`]).
fn probe(body: &str) -> Outcome {
    lua(
        &format!("{PRELUDE}\nreturn function(...)\n{body}\nend"),
        Vec::new(),
    )
}

/// Runs `body` and returns its result split on " | ", asserting the
/// neighbour kept ticking.
fn results(body: &str) -> Vec<String> {
    let out = probe(body);
    out.assert_neighbour_ticks();
    out.value().split(" | ").map(str::to_owned).collect()
}

/// Asserts `got` starts with `kind` and contains `fragment`.
/// Kinds compare as the host names them (`RATE_LIMITED`) or as Lua
/// does (`RateLimited`).
fn refused(got: &str, kind: &str, fragment: &str) {
    let norm = |k: &str| k.replace('_', "").to_ascii_lowercase();
    let got_kind = got.split(':').next().unwrap_or_default();
    assert!(
        norm(got_kind) == norm(kind) && got.contains(fragment),
        "expected {kind} with {fragment:?}, got {got:?}"
    );
}

/// The attack was ended by the stuck limit or the cpu budget (code that
/// cannot be preempted, or a preemptible loop past its budget).
fn stopped(out: &Outcome) {
    let err = out.error();
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err}");
    assert!(
        err.message.contains("could be preempted") || err.message.contains("cpu budget exceeded"),
        "{err}"
    );
    out.assert_neighbour_ticks();
}

// The judge, the neighbour and the after-attack check of `harness` serve
// the runtimes built below (a terminal host, registry entries), which the
// harness's `App` cannot build.

/// A Lua program allowed every module.
fn program(id: &str, source: &str) -> LuaProgram {
    LuaProgram::new(format!("{id}.lua"), source).with_modules(&MODULES)
}

/// A runtime like the harness's (its limits on `test:host`, one worker
/// per host), optionally with a terminal `test:host` and registry entries.
fn custom(terminal: bool, entries: Vec<EntryInfo>, programs: Vec<(&str, LuaProgram)>) -> Runtime {
    let mut host = HostSpec::new(HOST, 1).with_limits(harness::limits());
    if terminal {
        host = host.terminal();
    }
    let mut builder = RuntimeBuilder::new()
        .frontend(lua_frontend())
        .host(host)
        .host(HostSpec::new(OTHER_HOST, 1))
        .entries(entries);
    let base = [
        ("h:judge", JUDGE),
        ("h:neighbour", NEIGHBOUR),
        ("h:alive", ALIVE),
    ];
    for (id, source) in base {
        builder = builder.program(program(id, source).into_program(id));
    }
    for (id, p) in programs {
        builder = builder.program(p.into_program(id));
    }
    builder.start().expect("runtime starts")
}

/// Holds the name `svc` on the other host and waits.
const NAMED: &str = r#"local time = require("time")
return function()
    assert(process.registry.register("svc"))
    while true do time.sleep("1h") end
end"#;

/// Starts `app` with a process of `test:other` holding the name `svc`;
/// returns the runtime and that process's pid.
fn with_foreign_name(app: warren_tests::App) -> (Runtime, String) {
    let runtime = app.entry("h:named", NAMED).start();
    let pid = runtime
        .spawn(SpawnRequest::new("h:named", OTHER_HOST, Vec::new()))
        .expect("spawn on the other host");
    wait_for_name(&runtime, "svc");
    (runtime, pid.to_string())
}

fn wait_for_name(runtime: &Runtime, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while runtime.lookup(name).is_none() {
        assert!(Instant::now() < deadline, "{name} never registered");
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------
// events: forged subscriptions
// ---------------------------------------------------------------------------

/// Subscribes to `shared.sys`, tells its parent the subscription id, and
/// returns the data of the first event it gets (or "nothing" after 5 s).
const VICTIM_SUB: &str = r#"local events = require("events")
local time = require("time")
return function(parent)
    local sub = assert(events.subscribe("shared.sys"))
    process.send(parent, "id", rawget(sub, "_id"))
    local r = channel.select({ sub:channel():case_receive(), time.after("5s"):case_receive() })
    if r.channel == sub:channel() then return r.value.data end
    return "nothing"
end"#;

/// Starts the victim, gets its subscription id as `vid`, runs `forge`
/// (which may use `vid` and `mine`, a subscription of the attacker's own
/// to the same system), publishes "hello" and returns what the victim
/// got and what the attacker's own subscription got.
fn forged_close(forge: &str) -> String {
    let source = format!(
        r#"{PRELUDE}
return function()
    local victim = assert(process.spawn_monitored("h:victim", "test:host", process.pid()))
    local msg = process.inbox():receive()
    local vid = msg:payload():data()
    local mine = assert(events.subscribe("shared.sys"))
    local myid = rawget(mine, "_id")
    local close = mine.close
    {forge}
    assert(events.send("shared.sys", "k", "/p", "hello"))
    local r = channel.select({{ process.events():case_receive(), time.after("10s"):case_receive() }})
    assert(r.value, "the victim did not end")
    local own = channel.select({{ mine:channel():case_receive(), time.after("1s"):case_receive() }})
    return tostring(r.value.result.value) .. " " .. tostring(own.value and own.value.data) .. " " .. ran_text()
end"#
    );
    let out = attack(
        app()
            .entry("h:victim", VICTIM_SUB)
            .entry("h:attacker", &source),
        "h:attacker",
        Vec::new(),
    );
    out.assert_neighbour_ticks();
    out.value()
}

#[test]
fn a_forged_subscription_naming_another_process_closes_nothing() {
    assert_eq!(
        forged_close(
            r#"close({ _id = vid })
            close({ _id = vid, _ch = mine:channel() })
            close(setmetatable({ _id = vid }, { __index = spin, __eq = spin, __len = spin }))"#
        ),
        "hello hello none"
    );
}

#[test]
fn rawsetting_the_id_of_a_real_subscription_closes_nothing_of_another() {
    assert_eq!(
        forged_close(
            r#"rawset(mine, "_id", vid)
            mine:close()
            rawset(mine, "_id", myid)"#
        ),
        "hello hello none"
    );
}

#[test]
fn closing_every_id_around_the_victims_closes_only_ones_own() {
    // Every id up to well past the victim's, except the attacker's own:
    // none of them is the attacker's, so nothing is closed anywhere.
    assert_eq!(
        forged_close(
            r#"for id = 0, vid + 200 do
                if id ~= myid then close({ _id = id }) end
            end
            for _, id in ipairs({ -1, math.maxinteger, math.mininteger, 0.5, 1 / 0, 0 / 0, "1",
                    tostring(vid), {}, setmetatable({}, { __eq = mark("eq"), __index = mark("index") }) }) do
                close({ _id = id })
            end"#
        ),
        "hello hello none"
    );
}

#[test]
fn subscription_methods_on_non_tables_fail_cleanly() {
    let got = results(
        r#"local sub = assert(events.subscribe("x"))
        return raised(sub.close, "text") .. " | " .. raised(sub.close, 42) .. " | "
            .. raised(sub.channel, nil) .. " | " .. tostring(rawequal(sub:channel(), sub.channel(sub)))"#,
    );
    for r in &got[..3] {
        assert!(r.contains("bad argument"), "{got:?}");
    }
    assert_eq!(got[3], "true");
}

// ---------------------------------------------------------------------------
// events: the subscription limit
// ---------------------------------------------------------------------------

#[test]
fn the_65th_subscription_is_rate_limited_and_forged_closes_free_no_slot() {
    let got = results(
        r#"local subs = {}
        for i = 1, 64 do subs[i] = assert(events.subscribe("s" .. i)) end
        local out = {}
        out[1] = res(events.subscribe("one.more"))
        out[2] = res(events.subscribe("*", "k"))
        out[3] = res(events.subscribe("s1"))
        -- Forged closes free no slot.
        local close = subs[1].close
        for id = 0, rawget(subs[64], "_id") + 100 do close({ _id = id + 1000000 }) end
        rawset(subs[2], "_id", "2")
        subs[2]:close()
        out[4] = res(events.subscribe("still.full"))
        -- A real close does; closing twice is harmless.
        subs[1]:close()
        subs[1]:close()
        out[5] = res(events.subscribe("again"))
        out[6] = res(events.subscribe("over.again"))
        return table.concat(out, " | ")"#,
    );
    for i in [0, 1, 2, 3, 5] {
        refused(
            &got[i],
            "RATE_LIMITED",
            "already holds 64 event subscriptions",
        );
    }
    assert_eq!(got[4], "ok");
}

#[test]
fn subscribing_in_a_loop_ends_cleanly_and_binds_only_the_attacker() {
    // The attacker retries forever (bounded here by a count); a child it
    // starts afterwards still gets its own 64.
    let source = format!(
        r#"{PRELUDE}
return function(child)
    if child then
        local n = 0
        for i = 1, 64 do if events.subscribe("c" .. i) then n = n + 1 end end
        return n
    end
    local refusals = 0
    for i = 1, 20000 do
        if not events.subscribe("loop." .. (i % 100)) then refusals = refusals + 1 end
    end
    local pid = assert(process.spawn_monitored("h:attacker", "test:host", true))
    local r = channel.select({{ process.events():case_receive(), time.after("5s"):case_receive() }})
    return refusals .. " " .. tostring(r.value and r.value.result.value)
end"#
    );
    let out = attack(app().entry("h:attacker", &source), "h:attacker", Vec::new());
    assert_eq!(out.value(), "19936 64");
    out.assert_neighbour_ticks();
}

// ---------------------------------------------------------------------------
// events: what a publish carries
// ---------------------------------------------------------------------------

#[test]
fn hostile_event_data_is_refused_before_it_is_published() {
    let got = results(
        r#"local sub = assert(events.subscribe("data.*"))
        local cyclic = {} cyclic.self = cyclic
        local deep = {} local d = deep
        for _ = 1, 100 do d.next = {} d = d.next end
        local dag = {} for _ = 1, 40 do dag = { dag, dag } end
        local out = {
            res(events.send("data.x", "k", "/p", ("x"):rep(100000))),
            res(events.send("data.x", "k", "/p", cyclic)),
            res(events.send("data.x", "k", "/p", deep)),
            res(events.send("data.x", "k", "/p", dag)),
            res(events.send("data.x", "k", "/p", { f = print })),
            res(events.send("data.x", "k", "/p", { c = coroutine.create(print) })),
            res(events.send("data.x", "k", "/p", { ch = channel.new() })),
            res(events.send("data.x", "k", "/p", { [{}] = 1 })),
        }
        -- Nothing of them reached the subscriber.
        local r = channel.select({ sub:channel():case_receive(), default = true })
        out[#out + 1] = tostring(r.default)
        return table.concat(out, " | ")"#,
    );
    refused(&got[0], "INVALID", "exceeds");
    refused(&got[1], "INVALID", "cycle");
    refused(&got[2], "INVALID", "nesting deeper than");
    refused(&got[3], "INVALID", "max_message_bytes");
    for r in &got[4..8] {
        refused(r, "INVALID", "data");
    }
    assert_eq!(got[8], "true", "{got:?}");
}

#[test]
fn event_data_with_metamethods_is_read_raw() {
    let got = results(
        r#"local sub = assert(events.subscribe("mm"))
        local function lying()
            local t = {}
            for i = 44, 0, -1 do t[1 << i] = i end
            return t
        end
        local evil = setmetatable({ a = 1, inner = setmetatable({ b = 2 }, { __index = mark("inner") }) },
            { __index = mark("index"), __pairs = mark("pairs"), __len = mark("len"), __eq = mark("eq"),
              __tostring = mark("tostring"), __newindex = mark("newindex"), __call = mark("call") })
        local ok1 = res(events.send("mm", "k", "/p", evil))
        local ok2 = res(events.send("mm", "k", "/p", lying()))
        local first = sub:channel():receive()
        local second = sub:channel():receive()
        local n = 0
        for _ in pairs(second.data) do n = n + 1 end
        return ok1 .. " | " .. ok2 .. " | " .. first.data.a .. first.data.inner.b
            .. tostring(getmetatable(first.data)) .. " | " .. n .. " | " .. ran_text()"#,
    );
    assert_eq!(got, ["ok", "ok", "12nil", "45", "none"]);
}

#[test]
fn event_strings_are_bounded_at_256_bytes() {
    let got = results(
        r#"local long, huge = ("x"):rep(257), ("y"):rep(4 << 20)
        local fits = ("z"):rep(256)
        return table.concat({
            res(events.subscribe(long)),
            res(events.subscribe("s", long)),
            res(events.subscribe(huge)),
            res(events.send(long, "k", "/p")),
            res(events.send("s", long, "/p")),
            res(events.send("s", "k", long)),
            res(events.send(huge, huge, huge, huge)),
            res(events.subscribe("")),
            res(events.send("", "k", "/p")),
            res(events.subscribe("a.*.b")),
            res(events.subscribe("**")),
            res(events.subscribe(fits)),
            res(events.subscribe(fits .. ".*")),
            res(events.send(fits, fits, fits)),
        }, " | ")"#,
    );
    for r in &got[..7] {
        refused(r, "INVALID", "exceeds 256 bytes");
    }
    refused(&got[7], "INVALID", "must not be empty");
    refused(&got[8], "INVALID", "must not be empty");
    refused(&got[9], "INVALID", "'*' may only be");
    refused(&got[10], "INVALID", "'*' may only be");
    assert_eq!(got[11], "ok");
    refused(&got[12], "INVALID", "exceeds 256 bytes");
    assert_eq!(got[13], "ok");
}

#[test]
fn non_string_event_arguments_are_refused_without_metamethods() {
    let got = results(
        r#"local evil = setmetatable({}, { __tostring = mark("tostring"), __index = mark("index"),
            __concat = mark("concat"), __eq = mark("eq") })
        return table.concat({
            raised(events.subscribe, evil),
            raised(events.subscribe, "s", evil),
            raised(events.subscribe, 42),
            raised(events.send, evil, "k", "/p"),
            raised(events.send, "s", nil, "/p"),
            raised(events.send, "s", "k", 7),
            ran_text(),
        }, " | ")"#,
    );
    assert!(got[0].contains("events.subscribe: system must be a string, got table"));
    assert!(got[1].contains("events.subscribe: kind must be a string, got table"));
    assert!(got[2].contains("events.subscribe: system must be a string, got number"));
    assert!(got[3].contains("events.send: system must be a string, got table"));
    assert!(got[4].contains("events.send: kind must be a string, got nil"));
    assert!(got[5].contains("events.send: path must be a string, got number"));
    assert_eq!(got[6], "none");
}

// ---------------------------------------------------------------------------
// events: a flooded subscriber
// ---------------------------------------------------------------------------

/// Subscribes to `flood`, says "ready", sleeps so that events pile up,
/// then drains its subscription and reports how many it got.
const SLOW_SUB: &str = r#"local events = require("events")
local time = require("time")
return function(parent)
    local sub = assert(events.subscribe("flood"))
    process.send(parent, "ready")
    time.sleep("200ms")
    local n = 0
    while true do
        local r = channel.select({ sub:channel():case_receive(), default = true })
        if r.default then break end
        n = n + 1
    end
    return n
end"#;

#[test]
fn a_flooded_subscriber_only_loses_events() {
    let source = format!(
        r#"{PRELUDE}
return function()
    local inbox = process.inbox()
    local slow = assert(process.spawn_monitored("h:slow", "test:host", process.pid()))
    assert(inbox:receive():topic() == "ready")
    local refused = 0
    for i = 1, 1000 do
        if not events.send("flood", "k", "/p", ("d"):rep(200) .. i) then refused = refused + 1 end
    end
    -- The publisher's own inbox is unaffected.
    assert(process.send(process.pid(), "self", "still"))
    local own = inbox:receive():payload():data()
    local r = channel.select({{ process.events():case_receive(), time.after("10s"):case_receive() }})
    assert(r.value, "the slow subscriber did not end")
    return refused .. " " .. own .. " " .. tostring(r.value.result.value)
end"#
    );
    let out = attack(
        app().entry("h:slow", SLOW_SUB).entry("h:attacker", &source),
        "h:attacker",
        Vec::new(),
    );
    let v = out.value();
    let parts: Vec<&str> = v.split(' ').collect();
    assert_eq!(&parts[..2], ["0", "still"], "{v}");
    let got: i64 = parts[2].parse().expect("a count");
    assert!(
        (1..=100).contains(&got),
        "the slow subscriber got {got} events past its mailbox_limit (100)"
    );
    out.assert_neighbour_ticks();
}

#[test]
fn a_subscriber_that_never_reads_still_gets_direct_messages_once_it_drains() {
    // Events fill its mailbox; what it then takes frees room again, and
    // a closed subscription's late events are counted as taken.
    let got = results(
        r#"local sub = assert(events.subscribe("self.flood"))
        for i = 1, 500 do assert(events.send("self.flood", "k", "/p", i)) end
        local _, full = process.send(process.pid(), "direct", 1)
        time.sleep("1ms") -- the events arrive
        local n = 0
        while channel.select({ sub:channel():case_receive(), default = true }).value do n = n + 1 end
        sub:close()
        time.sleep("1ms") -- what was taken is reported
        assert(process.send(process.pid(), "direct", 2))
        return res(nil, full) .. " | " .. n .. " | " .. process.inbox():receive():payload():data()"#,
    );
    refused(&got[0], "RATE_LIMITED", "");
    assert_eq!(got[1], "100");
    assert_eq!(got[2], "2");
}

// ---------------------------------------------------------------------------
// events: tenants
// ---------------------------------------------------------------------------

/// On the other host: subscribes to everything, registers `listener`,
/// waits `wait` for events and returns how many it got and their systems.
const LISTENER: &str = r#"local events = require("events")
local time = require("time")
return function(name, wait)
    local all = assert(events.subscribe("*"))
    local secret = assert(events.subscribe("secret"))
    assert(process.registry.register(name))
    local got = {}
    local deadline = time.after(wait)
    while true do
        local r = channel.select({ all:channel():case_receive(), secret:channel():case_receive(),
            deadline:case_receive() })
        if r.channel == deadline then break end
        got[#got + 1] = r.value.system
    end
    return #got .. ":" .. table.concat(got, ",")
end"#;

#[test]
fn a_host_without_allow_hosts_leaks_no_event_to_another_tenant() {
    let runtime = app()
        .entry("h:listener", LISTENER)
        .entry(
            "h:attacker",
            r#"local events = require("events")
            return function()
                for _, system in ipairs({ "secret", "x", "secret.deep", "*" }) do
                    assert(events.send(system, "k", "/p", { password = "hunter2" }))
                end
                return "published"
            end"#,
        )
        .start();
    std::thread::scope(|scope| {
        let listener = scope.spawn(|| {
            runtime
                .run(
                    SpawnRequest::new(
                        "h:listener",
                        OTHER_HOST,
                        vec![Value::str("listener"), Value::str("1500ms")],
                    ),
                    Duration::from_secs(20),
                )
                .expect("spawn accepted")
        });
        wait_for_name(&runtime, "listener");
        let out = attack_on(&runtime, "h:attacker", Vec::new());
        assert_eq!(out.value(), "published");
        out.assert_neighbour_ticks();
        let heard = listener.join().expect("listener thread");
        assert_eq!(
            heard,
            Some(Ok(Value::str("0:"))),
            "the other tenant heard the sandboxed host's events"
        );
    });
}

#[test]
fn a_host_without_allow_hosts_hears_no_event_of_another_tenant() {
    // The spy subscribes to everything; a process of the other host (whose
    // allow_hosts is open) publishes, then tells the spy it is done. The
    // spy hears only its own host's event.
    let runtime = app()
        .entry(
            "h:attacker",
            r#"local events = require("events")
            local time = require("time")
            return function()
                local all = assert(events.subscribe("*"))
                local named = assert(events.subscribe("secret"))
                assert(process.registry.register("spy"))
                local r = channel.select({ process.inbox():case_receive(), time.after("10s"):case_receive() })
                assert(r.value, "the publisher never said it was done")
                assert(events.send("own", "k", "/p", 1))
                -- Delivery is asynchronous: wait for the attacker's own event,
                -- then take whatever else came.
                local first = channel.select({ all:channel():case_receive(), time.after("5s"):case_receive() })
                local got = { first.value and first.value.system or "timeout" }
                for _, s in ipairs({ all, named }) do
                    while true do
                        local e = channel.select({ s:channel():case_receive(), default = true })
                        if e.default then break end
                        got[#got + 1] = e.value.system
                    end
                end
                return table.concat(got, ",")
            end"#,
        )
        .entry(
            "h:publisher",
            r#"local events = require("events")
            return function(spy)
                for _, system in ipairs({ "secret", "x.y", "own" }) do
                    assert(events.send(system, "k", "/p", "from the other host"))
                end
                assert(process.send(spy, "done"))
                return "ok"
            end"#,
        )
        .start();
    std::thread::scope(|scope| {
        let attack = scope.spawn(|| attack_on(&runtime, "h:attacker", Vec::new()));
        wait_for_name(&runtime, "spy");
        // By pid: a name on a host that reaches no one is not seen from
        // the publisher's.
        let spy = runtime.lookup("spy").expect("registered").to_string();
        let published = runtime
            .run(
                SpawnRequest::new("h:publisher", OTHER_HOST, vec![Value::str(&spy)]),
                Duration::from_secs(20),
            )
            .expect("spawn accepted");
        assert_eq!(published, Some(Ok(Value::str("ok"))));
        let out = attack.join().expect("attack thread");
        assert_eq!(out.value(), "own");
        out.assert_neighbour_ticks();
    });
}

// ---------------------------------------------------------------------------
// The spawner builder and ctx
// ---------------------------------------------------------------------------

/// Returns what `ctx` holds, as "key=type" sorted, plus ctx.get("a").
const CTX_CHILD: &str = r#"local ctx = require("ctx")
return function()
    local keys = {}
    for k, v in pairs(ctx.all()) do keys[#keys + 1] = tostring(k) .. "=" .. type(v) end
    table.sort(keys)
    local a = ctx.get("a")
    local shown = type(a) == "table" and "table mt=" .. tostring(getmetatable(a)) or tostring(a)
    return table.concat(keys, ",") .. " a:" .. shown
end"#;

/// Runs `body` with the child entry `h:child` ([`CTX_CHILD`]) available;
/// `run_child(builder)` spawns it monitored and returns its result.
fn spawner(body: &str) -> Vec<String> {
    let source = format!(
        r#"{PRELUDE}
local function run_child(b, ...)
    local pid, err = b:spawn_monitored("h:child", "test:host", ...)
    if not pid then return res(pid, err) end
    local r = channel.select({{ process.events():case_receive(), time.after("5s"):case_receive() }})
    if not r.value then return "child did not end" end
    if r.value.result.error then return "child failed: " .. r.value.result.error:message() end
    return tostring(r.value.result.value)
end
return function()
{body}
end"#
    );
    let out = attack(
        app()
            .entry("h:child", CTX_CHILD)
            .entry("h:attacker", &source),
        "h:attacker",
        Vec::new(),
    );
    out.assert_neighbour_ticks();
    out.value().split(" | ").map(str::to_owned).collect()
}

#[test]
fn context_tables_with_metamethods_are_read_raw() {
    let got = spawner(
        r#"local mt = { __index = mark("index"), __pairs = mark("pairs"), __len = mark("len"),
            __eq = mark("eq"), __tostring = mark("tostring"), __newindex = mark("newindex") }
        local values = setmetatable({ a = setmetatable({ x = 1 }, mt), b = 2 }, mt)
        local b = process.with_context(values)
        local c = b:with_context(setmetatable({ c = "three" }, mt))
        local looping = setmetatable({ a = 1 }, { __index = spin, __pairs = spin, __len = spin })
        local d = process.with_context(looping)
        return run_child(b) .. " | " .. run_child(c) .. " | " .. run_child(d) .. " | " .. ran_text()"#,
    );
    assert_eq!(
        got,
        [
            "a=table,b=number a:table mt=nil",
            "a=table,b=number,c=string a:table mt=nil",
            "a=number a:1",
            "none"
        ]
    );
}

#[test]
fn cyclic_huge_and_unsendable_contexts_are_refused_before_the_spawn() {
    let got = spawner(
        r#"local cyclic = {} cyclic.self = cyclic
        local dag = {} for _ = 1, 40 do dag = { dag, dag } end
        local before = process.registry.lookup("nobody")
        return table.concat({
            run_child(process.with_context({ a = cyclic })),
            run_child(process.with_context({ a = ("x"):rep(100000) })),
            run_child(process.with_context({ a = dag })),
            run_child(process.with_context({ a = print })),
            run_child(process.with_context({ a = channel.new() })),
            run_child(process.with_context({ a = 1 }), ("y"):rep(70000)),
        }, " | ")"#,
    );
    refused(&got[0], "INVALID", "cycle");
    refused(&got[1], "INVALID", "spawn context");
    refused(&got[2], "INVALID", "max_message_bytes");
    refused(&got[3], "INVALID", "cannot be sent");
    refused(&got[4], "INVALID", "cannot be sent");
    refused(&got[5], "INVALID", "max_message_bytes");
}

#[test]
fn context_keys_must_be_strings() {
    let got = spawner(
        r#"return table.concat({
            raised(process.with_context, { [1] = "a" }),
            raised(process.with_context, { [true] = 1 }),
            raised(process.with_context, { [{}] = 1 }),
            raised(process.with_context({ a = 1 }).with_context, process.with_context({}), { [2.5] = 1 }),
            raised(process.with_context, "text"),
            raised(process.with_context, nil),
        }, " | ")"#,
    );
    assert!(
        got[0].contains("process.with_context: keys must be strings, got 1"),
        "{got:?}"
    );
    assert!(got[1].contains("keys must be strings, got true"), "{got:?}");
    assert!(
        got[2].contains("keys must be strings, got (table value)"),
        "{got:?}"
    );
    assert!(
        got[3].contains("spawner:with_context: keys must be strings, got 2.5"),
        "{got:?}"
    );
    assert!(got[4].contains("expected a table, got string"), "{got:?}");
    assert!(got[5].contains("expected a table, got nil"), "{got:?}");
}

#[test]
fn forged_builders_are_refused() {
    let got = spawner(
        r#"local real = process.with_context({ a = 1 })
        local spawn = real.spawn
        local forged = { _ctx = { a = 1 }, _name = "forged", _msgs = {} }
        local out = {
            raised(spawn, forged, "h:child", "test:host"),
            raised(spawn, setmetatable({ _ctx = {} }, { __index = real }), "h:child", "test:host"),
            raised(spawn, "text", "h:child", "test:host"),
            raised(real.spawn_linked_monitored, {}, "h:child", "test:host"),
            raised(setmetatable, forged, getmetatable(real)),
            tostring(getmetatable(real)),
        }
        return table.concat(out, " | ")"#,
    );
    for r in &got[..4] {
        assert!(
            r.contains("expected a spawner (process.with_context or process.with_options)"),
            "{got:?}"
        );
    }
    assert!(got[4].contains("bad argument"), "{got:?}");
    assert_eq!(got[5], "false");
}

#[test]
fn rawset_context_of_a_real_builder_is_still_converted_within_limits() {
    let got = spawner(
        r#"local cyclic = {} cyclic.self = cyclic
        local out = {}
        local b = process.with_context({ a = 1 })
        rawset(b, "_ctx", { a = cyclic })
        out[1] = run_child(b)
        rawset(b, "_ctx", { [1] = "x", [2.5] = "y", a = 2 }) -- keys with_context would refuse
        out[2] = run_child(b)
        rawset(b, "_ctx", setmetatable({ a = 3 }, { __index = mark("index"), __pairs = mark("pairs") }))
        out[3] = run_child(b)
        rawset(b, "_ctx", "not a table")
        out[4] = run_child(b)
        rawset(b, "_ctx", { a = ("x"):rep(70000) })
        out[5] = run_child(b)
        -- with_context merges a rawset base (read raw, its keys unchecked).
        rawset(b, "_ctx", setmetatable({ [{}] = 1 }, { __pairs = mark("pairs2") }))
        out[6] = raised(b.with_context, b, { c = 1 })
        out[7] = ran_text()
        return table.concat(out, " | ")"#,
    );
    refused(&got[0], "INVALID", "cycle");
    assert!(
        got[1].starts_with("1=string,2.5=string,a=number"),
        "{got:?}"
    );
    assert_eq!(got[2], "a=number a:3");
    assert_eq!(got[3], " a:nil");
    refused(&got[4], "INVALID", "max_message_bytes");
    assert_eq!(got[6], "none", "{got:?}");
}

#[test]
fn rawset_name_of_a_real_builder_is_checked_as_a_name() {
    let got = spawner(
        r#"local out = {}
        local b = process.with_context({ a = 1 })
        for _, name in ipairs({ 42, {}, setmetatable({}, { __tostring = mark("tostring") }), "", ("n"):rep(100000),
                process.pid() }) do
            rawset(b, "_name", name)
            out[#out + 1] = run_child(b):sub(1, 200)
        end
        out[#out + 1] = ran_text()
        return table.concat(out, " | ")"#,
    );
    // A non-string name is ignored (the child runs unnamed).
    for r in &got[..3] {
        assert_eq!(r, "a=number a:1", "{got:?}");
    }
    refused(&got[3], "INVALID", "invalid process name");
    refused(&got[4], "INVALID", "invalid process name");
    refused(&got[5], "INVALID", "invalid process name");
    assert_eq!(got[6], "none");
}

#[test]
fn with_name_of_a_name_another_tenant_holds_leaves_that_tenants_name_alone() {
    // Names pass only between hosts that reach each other both ways: the
    // attacker's host reaches no one, so its child takes `svc` apart from
    // the other tenant's, which stays where it was; nothing names the
    // foreign holder.
    let (runtime, pid) = with_foreign_name(app().entry("h:child", CTX_CHILD).entry(
        "h:attacker",
        &format!(
            r#"{PRELUDE}
                return function()
                    local b = process.with_context({{ a = 1 }}):with_name("svc")
                    local pid, err = b:spawn("h:child", "test:host")
                    return res(pid, err)
                end"#
        ),
    ));
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), "ok");
    assert_eq!(
        runtime.lookup("svc").map(|p| p.to_string()),
        Some(pid),
        "the foreign name moved"
    );
}

#[test]
fn a_taken_foreign_name_does_not_reveal_its_holders_pid() {
    let (runtime, pid) = with_foreign_name(
        app().entry("h:child", CTX_CHILD).entry(
            "h:attacker",
            &format!(
                r#"{PRELUDE}
                return function()
                    local ok1, e1 = process.registry.register("svc")
                    local pid2, e2 = process.registry.lookup("svc")
                    local _, e3 = process.with_context({{ a = 1 }}):with_name("svc"):spawn("h:child", "test:host")
                    return tostring(ok1) .. " | " .. tostring(pid2 == process.pid()) .. " | "
                        .. (e3 and e3:message() or "spawned")
                end"#
            ),
        ),
    );
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    out.assert_neighbour_ticks();
    let v = out.value();
    assert!(!v.contains(&pid), "the foreign pid leaked: {v}");
    assert!(v.starts_with("true | true | "), "{v}");
}

#[test]
fn with_message_payloads_are_bounded_like_sends() {
    // A message the spawn cannot send is dropped (the spawn still returns
    // the child); it never reaches the child, and nothing else breaks.
    let source = format!(
        r#"{PRELUDE}
return function(child)
    if child then
        local got = {{}}
        while true do
            local inbox = process.inbox()
            local r = channel.select({{ inbox:case_receive(), time.after("100ms"):case_receive() }})
            if r.channel ~= inbox then break end
            got[#got + 1] = r.value:topic()
        end
        return table.concat(got, ",")
    end
    local cyclic = {{}} cyclic.self = cyclic
    local b = process.with_context({{}})
        :with_message("small", 1)
        :with_message("huge", ("x"):rep(1 << 20))
        :with_message("cyclic", cyclic)
        :with_message("fn", print)
        :with_message("after", 2)
    local pid = assert(b:spawn_monitored("h:attacker", "test:host", true))
    local r = channel.select({{ process.events():case_receive(), time.after("5s"):case_receive() }})
    return tostring(r.value and r.value.result.value)
end"#
    );
    let out = attack(app().entry("h:attacker", &source), "h:attacker", Vec::new());
    assert_eq!(out.value(), "small,after");
    out.assert_neighbour_ticks();
}

#[test]
fn with_message_past_the_mailbox_limit_is_dropped() {
    let got = spawner(
        r#"local b = process.with_context({ a = 1 })
        for i = 1, 300 do b = b:with_message("m", i) end
        return run_child(b) .. " | " .. res(process.send(process.pid(), "self", 1))"#,
    );
    assert_eq!(got, ["a=number a:1", "ok"]);
}

#[test]
fn rawset_messages_of_a_real_builder_fail_cleanly() {
    let got = spawner(
        r#"local out = {}
        local function with_msgs(msgs)
            local b = process.with_context({ a = 1 })
            rawset(b, "_msgs", msgs)
            return b
        end
        out[#out + 1] = run_child(with_msgs("text"))
        out[#out + 1] = run_child(with_msgs({ "not a record", 42 }))
        out[#out + 1] = raised(run_child, with_msgs({ { 1, 2, n = 2 } }))
        out[#out + 1] = raised(run_child, with_msgs({ { "t", n = math.maxinteger } }))
        out[#out + 1] = raised(run_child, with_msgs({ { "t", n = "many" } }))
        out[#out + 1] = raised(run_child, with_msgs({ { "@bus", 1, { system = "x" }, n = 3 } }))
        out[#out + 1] = ran_text()
        return table.concat(out, " | ")"#,
    );
    assert_eq!(got[0], "a=number a:1");
    assert_eq!(got[1], "a=number a:1");
    assert!(
        got[2].contains("process.send: topic must be a string, got number"),
        "{got:?}"
    );
    // A record whose count is not an integer in 1..=4096 is skipped: the
    // kernel copies at most that many fields, raw, and unpacks its copy.
    assert_eq!(got[3], "no error", "{got:?}");
    assert_eq!(got[4], "no error", "{got:?}");
    assert_eq!(got[5], "no error", "{got:?}");
    assert_eq!(got[6], "none");
}

#[test]
fn rawset_message_records_with_metamethods_do_not_run_them() {
    let got = spawner(
        r#"local function with_msgs(msgs)
            local b = process.with_context({ a = 1 })
            rawset(b, "_msgs", msgs)
            return b
        end
        local r1 = raised(run_child, with_msgs({ setmetatable({ n = 2 }, { __index = mark("index") }) }))
        local r2 = raised(run_child, with_msgs({ setmetatable({ "t" }, { __len = mark("len") }) }))
        return r1 .. " | " .. r2 .. " | " .. ran_text()"#,
    );
    assert_eq!(got[2], "none", "a kernel frame ran a metamethod: {got:?}");
}

#[test]
fn a_looping_metamethod_on_a_rawset_message_record_does_not_run() {
    // The record is read raw: its first field is nil, so the send the
    // spawn makes for it fails (after the child started) without the loop.
    let out = probe(
        r#"local b = process.with_context({ a = 1 })
        rawset(b, "_msgs", { setmetatable({ n = 2 }, { __index = spin, __len = spin }) })
        return b:spawn("h:alive", "test:host")"#,
    );
    out.assert_ended(
        ErrorKind::Unknown,
        "process.send: topic must be a string, got nil",
    );
}

#[test]
fn a_lying_message_list_is_stopped_by_its_limits() {
    // rawlen of a 45-key table is 2^44: the kernel's loop over it cannot
    // be preempted, so the stuck limit (or the budget) ends it.
    for call in [
        "b:with_message(\"t\", 1)",
        "b:spawn(\"h:alive\", \"test:host\")",
    ] {
        let out = probe(&format!(
            r#"local t = {{}}
            for i = 44, 0, -1 do t[1 << i] = {{ "t", n = 1 }} end
            local b = process.with_context({{ a = 1 }})
            rawset(b, "_msgs", t)
            return {call}"#
        ));
        stopped(&out);
    }
}

// ---------------------------------------------------------------------------
// payload
// ---------------------------------------------------------------------------

#[test]
fn transcoding_hostile_values_fails_cleanly() {
    let got = results(
        r#"local F = payload.format
        local cyclic = {} cyclic.self = cyclic
        local dag = {} for _ = 1, 40 do dag = { dag, dag } end
        local evil = setmetatable({ a = 1 }, { __index = mark("index"), __pairs = mark("pairs"),
            __len = mark("len"), __tostring = mark("tostring"), __eq = mark("eq") })
        local out = {}
        for _, v in ipairs({ cyclic, dag, { f = print } }) do
            -- Each copy of the DAG takes tens of ms in one host call: yield
            -- between them (back to back, they reach the stuck limit).
            out[#out + 1] = res(payload.new(v):transcode(F.JSON))
            time.sleep("1ms")
            out[#out + 1] = res(payload.new(v):transcode(F.MSGPACK))
            time.sleep("1ms")
        end
        local j = assert(payload.new(evil):transcode(F.JSON))
        local m = assert(payload.new(evil):transcode(F.MSGPACK))
        out[#out + 1] = j:data().a .. m:data().a .. tostring(getmetatable(m:data()))
        out[#out + 1] = res(payload.new(evil):transcode(F.STRING))
        out[#out + 1] = res(payload.new(evil):transcode(evil))
        out[#out + 1] = res(payload.new(1):transcode(F.ERROR))
        out[#out + 1] = ran_text()
        return table.concat(out, " | ")"#,
    );
    refused(&got[0], "INTERNAL", "cycle");
    refused(&got[1], "INTERNAL", "cycle");
    refused(&got[2], "INTERNAL", "the JSON limit");
    refused(&got[3], "INTERNAL", "the MessagePack limit");
    refused(&got[4], "INTERNAL", "cannot be");
    refused(&got[5], "INTERNAL", "cannot be");
    assert_eq!(got[6], "11nil");
    refused(&got[7], "INTERNAL", "only a string or number transcodes");
    refused(&got[8], "INTERNAL", "cannot transcode to (table value)");
    refused(&got[9], "INTERNAL", "only an error transcodes");
    assert_eq!(got[10], "none");
}

#[test]
fn payloads_with_rawset_fields_decode_or_fail_cleanly() {
    let got = results(
        r#"local F = payload.format
        local function forged(v, f)
            local p = payload.new(1)
            rawset(p, 1, v)
            rawset(p, "f", f)
            return p
        end
        local evil = setmetatable({}, { __index = mark("index"), __tostring = mark("tostring"),
            __eq = mark("eq"), __concat = mark("concat") })
        local out = {
            res(forged("{not json", F.JSON):data()),
            res(forged("\xc1", F.MSGPACK):data()),
            res(forged("\xdd\xff\xff\xff\xff", F.MSGPACK):data()),
            raised(function() return forged(evil, F.JSON):data() end),
            raised(function() return forged(evil, F.MSGPACK):data() end),
            tostring(forged(evil, evil):get_format()),
            tostring(forged(1, "weird/format"):data()),
            res(forged(1, "weird/format"):transcode(F.JSON)),
            tostring(forged(("["):rep(100000), F.JSON):data()),
        }
        -- data() of a plain table: the methods read it raw.
        local data = payload.new(1).data
        out[#out + 1] = tostring(data({ "plain" }))
        out[#out + 1] = res(data({ "[1,2", f = F.JSON }))
        out[#out + 1] = raised(data, "text")
        out[#out + 1] = ran_text()
        return table.concat(out, " | ")"#,
    );
    refused(&got[0], "INTERNAL", "invalid JSON");
    refused(&got[1], "INTERNAL", "malformed MessagePack");
    refused(&got[2], "INTERNAL", "malformed MessagePack");
    assert!(
        got[3].contains("bad argument") || got[3].contains("error converting"),
        "{got:?}"
    );
    assert!(
        got[4].contains("bad argument") || got[4].contains("error converting"),
        "{got:?}"
    );
    assert_eq!(got[5], "lua/any");
    assert_eq!(got[6], "1");
    assert_eq!(got[7], "ok");
    assert_eq!(got[8], "nil", "{got:?}");
    assert_eq!(got[9], "plain");
    refused(&got[10], "INTERNAL", "invalid JSON");
    assert!(got[11].contains("bad argument"), "{got:?}");
    assert_eq!(got[12], "none");
}

/// Builds `bytes`: a MessagePack array of `n` one-byte elements `elem`
/// (`\x90` an empty array, `\xc0` nil), and `bomb`: a payload holding it.
fn msgpack_bomb(n: &str, elem: &str) -> String {
    format!(
        r#"local n = {n}
        local bytes = "\xdd" .. string.pack(">I4", n) .. ("{elem}"):rep(n)
        local bomb = payload.new(1)
        rawset(bomb, 1, bytes)
        rawset(bomb, "f", payload.format.MSGPACK)"#
    )
}

#[test]
fn a_small_msgpack_bomb_fails_within_the_processes_limits() {
    // 64 Ki empty arrays: decoded inside the process's memory limit or
    // refused; either way the process goes on or ends by its own limits.
    let out = probe(&format!(
        "{}\nlocal v, err = bomb:data()\nreturn type(v) == 'table' and tostring(#v) or res(v, err)",
        msgpack_bomb("1 << 16", "\\x90")
    ));
    assert_eq!(out.value(), "65536");
    out.assert_neighbour_ticks();
}

#[test]
fn a_msgpack_bomb_is_refused_before_it_holds_the_worker() {
    let out = probe(&format!(
        "{}\nlocal v, err = bomb:data()\nreturn res(v, err)",
        msgpack_bomb("4 << 20", "\\xc0")
    ));
    // Refused by a budget (as encode is), or ended by the memory limit;
    // not by the stuck limit after a host call held the worker.
    match &out.exit {
        Ok(v) => {
            let v = v.as_str().unwrap_or_default().to_owned();
            refused(&v, "INTERNAL", "limit");
        }
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::RateLimited, "{e}");
            assert!(e.message.contains("memory limit exceeded"), "{e}");
        }
    }
    out.assert_neighbour_ticks();
}

#[test]
fn a_memory_failure_inside_a_host_decode_cannot_be_caught() {
    let out = probe(&format!(
        r#"{}
        local ok, err = pcall(bomb.data, bomb)
        return "caught: " .. tostring(ok) .. " " .. tostring(err):sub(1, 40)"#,
        msgpack_bomb("(1 << 18) - 64", "\\x90")
    ));
    out.assert_ended(ErrorKind::RateLimited, "memory limit exceeded");
}

// ---------------------------------------------------------------------------
// registry
// ---------------------------------------------------------------------------

fn entries() -> Vec<EntryInfo> {
    let meta = |k: &str, v: &str| Value::Map(vec![(Value::str(k), Value::str(v))]);
    vec![
        EntryInfo {
            id: "app:secret".into(),
            kind: "process.lua".into(),
            meta: meta("type", "service"),
            data: Value::Map(vec![(Value::str("token"), Value::str("original"))]),
        },
        EntryInfo {
            id: "app:other".into(),
            kind: "library.lua".into(),
            meta: meta("type", "lib"),
            data: Value::Map(Vec::new()),
        },
    ]
}

/// Runs `body` on a runtime with registry [`entries`]; `h:reader` (also
/// there) returns what a fresh process sees of `app:secret`.
fn with_registry(body: &str) -> Outcome {
    let attacker = format!(
        r#"{PRELUDE}
local registry = require("registry")
return function()
{body}
end"#
    );
    let runtime = custom(
        false,
        entries(),
        vec![
            ("h:attacker", program("h:attacker", &attacker)),
            ("h:reader", program("h:reader", READER)),
        ],
    );
    attack_on(&runtime, "h:attacker", Vec::new())
}

/// What a process sees of `app:secret`.
const READER: &str = r#"local registry = require("registry")
return function()
    local e = assert(registry.get("app:secret"))
    local n = #assert(registry.find({ [".kind"] = "process.lua" }))
    return e.id .. " " .. e.kind .. " " .. e.meta.type .. " " .. e.data.token .. " " .. n
end"#;

const ORIGINAL: &str = "app:secret process.lua service original 1";

#[test]
fn registry_filters_with_metamethods_do_not_run_them() {
    let out = with_registry(
        r#"local mt = { __eq = mark("eq"), __index = mark("index"), __tostring = mark("tostring"),
            __concat = mark("concat"), __len = mark("len"), __lt = mark("lt"), __le = mark("le") }
        local v = setmetatable({}, mt)
        local out = {}
        for _, key in ipairs({ ".kind", ".id", "kind", ".ns", ".name", "meta.type", "type", "anything" }) do
            out[#out + 1] = #assert(registry.find({ [key] = v }))
        end
        out[#out + 1] = #assert(registry.find({ [v] = "x" }))
        out[#out + 1] = #assert(registry.find(setmetatable({}, { __pairs = mark("pairs"), __index = mark("i2") })))
        out[#out + 1] = res(registry.find(v))
        out[#out + 1] = res(registry.find("text"))
        out[#out + 1] = raised(registry.get, v)
        out[#out + 1] = res(registry.snapshot():find({ [".ns"] = v }))
        out[#out + 1] = ran_text()
        return table.concat(out, " | ")"#,
    );
    out.assert_neighbour_ticks();
    let v = out.value();
    let got: Vec<&str> = v.split(" | ").collect();
    assert_eq!(
        &got[..10],
        ["0", "0", "0", "0", "0", "0", "0", "0", "0", "2"],
        "{v}"
    );
    assert_eq!(got[10], "ok", "{v}"); // a table with metamethods is a filter with no keys
    refused(got[11], "INVALID", "the filter must be a table");
    assert!(
        got[12].contains("registry.get: id must be a string, got table"),
        "{v}"
    );
    assert_eq!(got[13], "ok");
    assert_eq!(got[14], "none");
}

#[test]
fn registry_entries_handed_out_are_copies() {
    let out = with_registry(
        r#"local e = assert(registry.get("app:secret"))
        e.id, e.kind, e.meta.type, e.data.token = "x", "y", "z", "stolen"
        for _, f in ipairs(assert(registry.find())) do f.id = "gone" f.meta = nil end
        local snap = registry.snapshot()
        for _, f in ipairs(snap:entries()) do f.data.token = "stolen" end
        local mine = assert(registry.get("app:secret"))
        local snap2 = assert(registry.snapshot():get("app:secret"))
        local pid = assert(process.spawn_monitored("h:reader", "test:host"))
        local r = channel.select({ process.events():case_receive(), time.after("5s"):case_receive() })
        return mine.data.token .. " " .. snap2.data.token .. " | " .. tostring(r.value and r.value.result.value)"#,
    );
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), format!("original original | {ORIGINAL}"));
}

#[test]
fn registry_writes_are_refused() {
    let out = with_registry(
        r#"local out = {
            res(registry.apply_version(registry.current_version())),
            res(registry.snapshot():changes():create({ id = "app:new" }):apply()),
            res(registry.build_delta()),
            res(registry.snapshot_at(2)),
            raised(rawset, registry, "get", function() return "forged" end),
            raised(function() registry.get = nil end),
        }
        return table.concat(out, " | ")"#,
    );
    out.assert_neighbour_ticks();
    let v = out.value();
    let got: Vec<&str> = v.split(" | ").collect();
    refused(got[0], "PERMISSION_DENIED", "read-only");
    refused(got[1], "PERMISSION_DENIED", "read-only");
    refused(got[2], "INVALID", "not supported");
    refused(got[3], "NOT_FOUND", "only version 1");
    assert!(got[4].contains("read-only"), "{v}");
    assert!(got[5].contains("read-only"), "{v}");
}

#[test]
fn a_snapshot_with_a_rawset_list_runs_no_metamethod() {
    let out = with_registry(
        r#"local snap = registry.snapshot()
        rawset(snap, "list", setmetatable({}, { __index = mark("list") }))
        local r1 = raised(snap.find, snap, {})
        local r2 = raised(snap.get, snap, "app:secret")
        local forged = { list = { setmetatable({}, { __index = mark("entry") }) } }
        local r3 = raised(snap.find, forged, { [".kind"] = "x" })
        local r4 = raised(snap.get, forged, "app:secret")
        return r1 .. " | " .. r2 .. " | " .. r3 .. " | " .. r4 .. " | " .. ran_text()"#,
    );
    out.assert_neighbour_ticks();
    let v = out.value();
    assert!(
        v.ends_with(" | none"),
        "a kernel frame ran a metamethod: {v}"
    );
}

#[test]
fn a_rawset_list_on_a_snapshot_is_never_read() {
    // The snapshot's entries are kept by the kernel: a `list` field the
    // attacker sets is not what its methods read.
    let out = with_registry(
        r#"local snap = registry.snapshot()
        rawset(snap, "list", setmetatable({}, { __index = spin, __len = spin }))
        return snap:find({})"#,
    );
    let Ok(Value::Array(entries)) = &out.exit else {
        panic!("the snapshot's own entries: {out:?}");
    };
    assert_eq!(entries.len(), 2, "{out:?}");
    out.assert_neighbour_ticks();
}

// ---------------------------------------------------------------------------
// time
// ---------------------------------------------------------------------------

#[test]
fn time_parse_of_megabyte_strings_is_bounded() {
    // Room for a 10 MiB string and the time to build it on a loaded host.
    let limits = HostLimits {
        memory_per_process: 64 << 20,
        cpu_budget: Some(Duration::from_secs(2)),
        ..harness::limits()
    };
    let source = format!(
        r#"{PRELUDE}
return function()
    local huge = ("2"):rep(10 << 20)
    -- Yield between the calls: each copies 10 MiB in one host call.
    local function later(...) time.sleep("1ms") return ... end
    local out = {{
        later(res(time.parse(huge, "2024-01-01"))),
        later(res(time.parse(time.RFC3339, huge))),
        later(res(time.parse(huge, huge))),
        later(res(time.parse(time.RFC3339, "2024-01-01T00:00:00Z" .. ("\xff"):rep(300)))),
    }}
    for i, r in ipairs(out) do out[i] = #r .. " " .. r:sub(1, 100) end
    return table.concat(out, " | ")
end"#
    );
    let out = attack(
        app().limits(limits).entry("h:attacker", &source),
        "h:attacker",
        Vec::new(),
    );
    out.assert_neighbour_ticks();
    let v = out.value();
    let got: Vec<&str> = v.split(" | ").collect();
    assert_eq!(got.len(), 4, "{v}");
    for r in &got {
        let (len, text) = r.split_once(' ').expect("length and text");
        refused(text, "INVALID", "");
        let len: usize = len.parse().expect("a length");
        assert!(
            len < 4096,
            "an error quotes a megabyte: {len} bytes: {text}"
        );
    }
    assert!(out.took < Duration::from_secs(10));
}

#[test]
fn time_parse_duration_of_a_megabyte_string_is_bounded() {
    let limits = HostLimits {
        memory_per_process: 64 << 20,
        ..harness::limits()
    };
    let source = format!(
        r#"{PRELUDE}
return function()
    local _, err = time.parse_duration(("2"):rep(10 << 20))
    local _, err2 = time.parse_duration(("\xff"):rep(1 << 20))
    return #err:message() .. " " .. #err2:message()
end"#
    );
    let out = attack(
        app().limits(limits).entry("h:attacker", &source),
        "h:attacker",
        Vec::new(),
    );
    out.assert_neighbour_ticks();
    let v = out.value();
    for len in v.split(' ') {
        let len: usize = len.parse().expect("a length");
        assert!(len < 4096, "an error quotes a megabyte: {len} bytes");
    }
}

#[test]
fn time_date_with_extreme_or_non_integer_arguments_fails_cleanly() {
    let got = results(
        r#"local M, m = math.maxinteger, math.mininteger
        local out = {}
        for _, args in ipairs({
            { M, 1, 1 }, { m, 1, 1 }, { 2024, M, 1 }, { 2024, 1, M }, { 2024, 1, 1, M, M, M, M },
            { 2024, m, m, m, m, m, m }, { 1677, 1, 1 }, { 2263, 1, 1 },
        }) do
            out[#out + 1] = raised(time.date, table.unpack(args, 1, 7))
        end
        for _, bad in ipairs({ 1.5, 0 / 0, 1 / 0, "2024", {} }) do
            out[#out + 1] = raised(time.date, bad, 1, 1)
        end
        out[#out + 1] = tostring(time.date(2024, 13, 32, 25, 61, 61, 1000000001):unix())
        return table.concat(out, " | ")"#,
    );
    for r in &got[..8] {
        assert!(r.starts_with("") && r.contains("time.date: "), "{got:?}");
        assert!(!r.contains("no error"), "{got:?}");
    }
    for r in &got[8..13] {
        assert!(
            r.contains("time.date: argument 1 must be an integer"),
            "{got:?}"
        );
    }
    // Normalised as Go does: month 13 day 32 is 2025-02-01, and the
    // overflowing fields make it 2025-02-02T02:02:02Z.
    assert_eq!(got[13], "1738461722");
}

#[test]
fn locations_cannot_be_forged_or_changed() {
    let got = results(
        r#"local out = {
            raised(rawset, time.utc, "offset", 3600),
            raised(function() time.utc.offset = 3600 end),
            raised(setmetatable, time.utc, {}),
            raised(time.parse, time.RFC3339, "2024-01-01T00:00:00Z", { name = "UTC", offset = 3600 }),
            raised(time.date, 2024, 1, 1, 0, 0, 0, 0, setmetatable({}, { __index = function(_, k)
                ran[#ran + 1] = "index" return k == "offset" and 3600 or "X" end })),
            raised(time.date, 2024, 1, 1, 0, 0, 0, 0, "UTC"),
            raised(time.fixed_zone, "big", 86401),
            raised(time.fixed_zone, "nan", 0 / 0),
            raised(time.fixed_zone, {}, 0),
            res(time.load_location(setmetatable({}, { __tostring = mark("tostring"), __eq = mark("eq") }))),
            tostring(time.utc.offset) .. " " .. tostring(time.utc.name),
            tostring(time.date(2024, 1, 1, 0, 0, 0, 0, time.fixed_zone("x", 3600)):unix()),
            ran_text(),
        }
        return table.concat(out, " | ")"#,
    );
    assert!(
        got[0].contains("read-only") || got[0].contains("protected"),
        "{got:?}"
    );
    assert!(
        got[1].contains("read-only") || got[1].contains("attempt to"),
        "{got:?}"
    );
    assert!(
        got[2].contains("cannot change a protected metatable"),
        "{got:?}"
    );
    for r in &got[3..6] {
        assert!(r.contains("expected a location"), "{got:?}");
    }
    for r in &got[6..8] {
        assert!(
            r.contains("offset must be an integer number of seconds within a day"),
            "{got:?}"
        );
    }
    assert!(
        got[8].contains("time.fixed_zone: name must be a string"),
        "{got:?}"
    );
    refused(&got[9], "NOT_FOUND", "unknown time zone (table value)");
    assert_eq!(got[10], "0 UTC");
    assert_eq!(got[11], "1704063600");
    assert_eq!(got[12], "none");
}

#[test]
fn a_location_changed_by_one_process_is_unchanged_for_another() {
    let source = format!(
        r#"{PRELUDE}
return function(child)
    if child then
        return tostring(time.utc.offset) .. " " .. time.date(2024, 1, 1, 0, 0, 0, 0, time.utc):unix()
    end
    pcall(rawset, time.utc, "offset", 3600)
    pcall(setmetatable, time.utc, {{ __index = function() return 3600 end }})
    pcall(function() time.utc = time.fixed_zone("UTC", 3600) end)
    assert(process.spawn_monitored("h:attacker", "test:host", true))
    local r = channel.select({{ process.events():case_receive(), time.after("5s"):case_receive() }})
    return tostring(r.value and r.value.result.value)
end"#
    );
    let out = attack(app().entry("h:attacker", &source), "h:attacker", Vec::new());
    assert_eq!(out.value(), "0 1704067200");
    out.assert_neighbour_ticks();
}

// ---------------------------------------------------------------------------
// io
// ---------------------------------------------------------------------------

#[test]
fn io_on_a_non_terminal_host_is_unavailable() {
    let got = results(
        r#"local io = require("io")
        return table.concat({
            res(io.write("leak")),
            res(io.print("leak", 1)),
            res(io.eprint("leak")),
            res(io.flush()),
            res(io.readline()),
            res(io.read(10)),
            res(io.read(math.maxinteger)),
            res(io.read("lots")),
            res(io.raw()),
            -- A refused read leaves no pending read behind.
            res(io.readline()),
        }, " | ")"#,
    );
    for r in &got[..8] {
        refused(
            r,
            "UNAVAILABLE",
            "no terminal: io works only in processes of a terminal.host",
        );
    }
    refused(&got[8], "UNAVAILABLE", "raw terminal mode is not supported");
    refused(&got[9], "UNAVAILABLE", "no terminal");
}

#[test]
fn io_write_on_a_non_terminal_host_does_no_work_before_refusing() {
    let got = results(
        r#"local io = require("io")
        local v = setmetatable({}, { __tostring = function() ran[#ran + 1] = "tostring" return "x" end })
        return res(io.write(v)) .. " | " .. res(io.print(v)) .. " | " .. ran_text()"#,
    );
    refused(&got[0], "UNAVAILABLE", "no terminal");
    assert_eq!(got[2], "none", "{got:?}");
}

#[test]
fn a_looping_tostring_given_to_io_write_off_a_terminal_never_runs() {
    // Refused before any argument is turned into text.
    let out = probe(
        r#"local io = require("io")
        local ok, err = io.write(setmetatable({}, { __tostring = spin }))
        return tostring(ok) .. " " .. err:kind()"#,
    );
    assert_eq!(out.value(), "nil Unavailable");
    out.assert_neighbour_ticks();
}

#[test]
fn io_args_are_not_readable_from_a_non_terminal_host() {
    warren_lua::set_terminal_args(vec!["--password=hunter2".into()]);
    let got = results(
        r#"local io = require("io")
        local ok, v, err = pcall(io.args)
        if not ok then return "raised " .. tostring(v) end
        if v == nil then return res(v, err) end
        return "args: " .. table.concat(v, " ")"#,
    );
    refused(&got[0], "UNAVAILABLE", "no terminal");
}

#[test]
fn a_second_read_of_a_terminal_process_is_a_conflict() {
    // The three coroutines run in one batch: the first read is pending
    // (whatever stdin does, its answer is handled only after the batch)
    // when the others ask.
    let attacker = format!(
        r#"{PRELUDE}
local io = require("io")
return function()
    local second, third = channel.new(1), channel.new(1)
    coroutine.spawn(function() io.readline() end)
    coroutine.spawn(function() second:send(res(io.readline())) end)
    coroutine.spawn(function() third:send(res(io.read(5))) end)
    return second:receive() .. " | " .. third:receive() .. " | " .. res(io.raw())
end"#
    );
    let runtime = custom(
        true,
        Vec::new(),
        vec![("h:attacker", program("h:attacker", &attacker))],
    );
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    out.assert_neighbour_ticks();
    let v = out.value();
    let got: Vec<&str> = v.split(" | ").collect();
    refused(
        got[0],
        "CONFLICT",
        "another read of this process is pending",
    );
    refused(
        got[1],
        "CONFLICT",
        "another read of this process is pending",
    );
    refused(got[2], "UNAVAILABLE", "raw terminal mode");
}

// ---------------------------------------------------------------------------
// imports / require
// ---------------------------------------------------------------------------

fn library(id: &str, source: &str, imports: Vec<(String, Arc<LuaLibrary>)>) -> Arc<LuaLibrary> {
    Arc::new(LuaLibrary::new(
        id,
        format!("{id}.lua"),
        source,
        MODULES.iter().map(|m| (*m).to_owned()).collect(),
        imports,
    ))
}

/// Runs `main` as the attacker, importing `lib` as "lib"; `h:check` (also
/// there, without imports) reports the shared globals a process sees.
fn importing(main: &str, lib: Arc<LuaLibrary>) -> Outcome {
    let mut attacker = program("h:attacker", main);
    attacker.imports = vec![("lib".into(), lib)];
    attack(
        app()
            .entry("h:check", CHECK)
            .program(attacker.into_program("h:attacker")),
        "h:attacker",
        Vec::new(),
    )
}

/// What an unrelated process sees of the shared libraries.
const CHECK: &str = r#"return function()
    return table.concat({ ("x"):upper(), tostring(string.evil), tostring(table.evil),
        tostring(getmetatable("")), tostring(rawget(_ENV, "evil")), tostring(math.pi > 3),
        type(string.rep), type(print) }, " ")
end"#;

const CHECKED: &str = "X nil nil false nil true function function";

/// Requires "lib" under pcall, then runs `h:check`; returns what require
/// gave and what the check saw.
const REQUIRE_THEN_CHECK: &str = r#"local time = require("time")
return function()
    local ok, v = pcall(require, "lib")
    local said = ok and tostring(v) or (type(v) == "table" and v:kind() .. ": " .. v:message() or tostring(v))
    local again_ok, again = pcall(require, "lib")
    local second = again_ok and tostring(again) or (type(again) == "table" and again:kind() .. ": " .. again:message() or tostring(again))
    assert(process.spawn_monitored("h:check", "test:host"))
    local r = channel.select({ process.events():case_receive(), time.after("5s"):case_receive() })
    return said .. " | " .. second .. " | " .. tostring(r.value and r.value.result.value)
end"#;

#[test]
fn a_library_whose_top_level_loops_is_ended_by_the_budget() {
    for source in [
        "while true do end",
        "local t = {} while true do t[1] = (t[1] or 0) + 1 end",
        "return setmetatable({}, { __index = function() while true do end end }).x",
    ] {
        let out = importing(
            r#"return function() return require("lib") end"#,
            library("h:lib", source, Vec::new()),
        );
        out.assert_ended(ErrorKind::RateLimited, "cpu budget exceeded");
        out.assert_progress_during(20);
    }
}

#[test]
fn a_library_loop_under_the_importers_pcall_is_still_ended() {
    let out = importing(
        r#"return function()
            while true do pcall(require, "lib") end
        end"#,
        library("h:lib", "while true do end", Vec::new()),
    );
    out.assert_ended(ErrorKind::RateLimited, "cpu budget exceeded");
    out.assert_progress_during(20);
}

#[test]
fn a_library_that_allocates_without_end_hits_the_memory_limit() {
    let out = importing(
        r#"return function() return require("lib") end"#,
        library(
            "h:lib",
            r#"local t = {} for i = 1, math.maxinteger do t[i] = ("m"):rep(100) .. i end"#,
            Vec::new(),
        ),
    );
    let err = out.error();
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err}");
    assert!(
        err.message.contains("memory limit exceeded") || err.message.contains("cpu budget"),
        "{err}"
    );
    out.assert_neighbour_ticks();
}

#[test]
fn a_library_that_requires_itself_through_the_importer_fails_without_hanging() {
    // The importer hands its own `require` to the library, which asks for
    // itself while it is being loaded.
    let out = importing(
        r#"return function()
            main_require = require
            local ok, err = pcall(require, "lib")
            local again_ok, again = pcall(require, "lib")
            return tostring(ok) .. " " .. err:kind() .. ": " .. err:message() .. " | "
                .. tostring(again_ok) .. " " .. again:message()
        end"#,
        library(
            "h:lib",
            r#"local me = main_require("lib") return { me = me }"#,
            Vec::new(),
        ),
    );
    out.assert_neighbour_ticks();
    let v = out.value();
    let got: Vec<&str> = v.split(" | ").collect();
    assert!(
        got[0].starts_with("false Invalid: library h:lib is being loaded (an import cycle"),
        "{v}"
    );
    assert!(
        got[1].starts_with("false library h:lib is being loaded"),
        "{v}"
    );
}

#[test]
fn mutually_requiring_libraries_fail_without_hanging() {
    // b imports a; a (imported by the main entry) asks the main entry's
    // require for b's importer again through a global.
    let a = library(
        "h:a",
        r#"local again = main_require("lib") return 'a'"#,
        Vec::new(),
    );
    let b = library(
        "h:b",
        r#"local a = require("a") return "b:" .. tostring(a)"#,
        vec![("a".into(), a)],
    );
    let out = importing(
        r#"return function()
            main_require = require
            local ok, err = pcall(require, "lib")
            return tostring(ok) .. " " .. tostring(err:message())
        end"#,
        b,
    );
    out.assert_neighbour_ticks();
    assert!(
        out.value()
            .starts_with("false library h:b is being loaded (an import cycle"),
        "{}",
        out.value()
    );
}

#[test]
fn a_library_that_fails_stays_failed_and_requires_of_unknown_names_are_refused() {
    let out = importing(
        r#"return function()
            local _, e1 = pcall(require, "lib")
            local _, e2 = pcall(require, "lib")
            return tostring(e1) .. " | " .. e2:message()
        end"#,
        library("h:lib", r#"local x = require("nope")"#, Vec::new()),
    );
    out.assert_neighbour_ticks();
    let v = out.value();
    let got: Vec<&str> = v.split(" | ").collect();
    assert!(
        got[0].contains("module \"nope\" does not exist (entry h:lib)"),
        "{v}"
    );
    assert!(
        got[1].starts_with("library h:lib is being loaded (an import cycle, or it failed before)"),
        "{v}"
    );
}

#[test]
fn a_library_that_mutates_shared_globals_changes_nothing_for_others() {
    let out = importing(
        REQUIRE_THEN_CHECK,
        library(
            "h:lib",
            r#"local tried = {}
            local function try(f) local ok, e = pcall(f) tried[#tried + 1] = ok and "CHANGED" or "refused" end
            try(function() string.evil = true end)
            try(function() rawset(string, "upper", function() return "pwned" end) end)
            try(function() table.evil = true end)
            try(function() getmetatable("").__index = {} end)
            try(function() setmetatable(string, { __index = function() return "pwned" end }) end)
            try(function() debug.sethook() end)
            try(function() math.pi = 1 end)
            evil = "a global of the library"
            print = function() end
            return table.concat(tried, ",")"#,
            Vec::new(),
        ),
    );
    out.assert_neighbour_ticks();
    let v = out.value();
    let got: Vec<&str> = v.split(" | ").collect();
    assert_eq!(
        got[0], "refused,refused,refused,refused,refused,refused,refused",
        "{v}"
    );
    assert_eq!(got[1], got[0], "a library runs once per process: {v}");
    assert_eq!(got[2], CHECKED, "another process saw the change: {v}");
}

#[test]
fn a_library_error_with_a_looping_tostring_runs_under_the_budget() {
    let out = importing(
        r#"return function() return require("lib") end"#,
        library(
            "h:lib",
            r#"error(setmetatable({}, { __tostring = function() while true do end end }))"#,
            Vec::new(),
        ),
    );
    out.assert_ended(ErrorKind::RateLimited, "cpu budget exceeded");
    out.assert_progress_during(20);
}

#[test]
fn a_library_that_blocks_at_its_top_level_is_fine() {
    let out = importing(
        r#"return function() return require("lib") end"#,
        library(
            "h:lib",
            r#"local time = require("time")
            time.sleep("5ms")
            return "slept""#,
            Vec::new(),
        ),
    );
    assert_eq!(out.value(), "slept");
    out.assert_neighbour_ticks();
}

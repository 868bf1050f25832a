//! Every operation that names another process, on every path it can take
//! (the machine's C `send1`/`spawn1`, `H.send_plain`/`H.spawn_plain`, the
//! kernel's Lua `send_slow` and `H.send`/`H.spawn`, a component's
//! imports), against a process of another tenant: by pid, by name, by a
//! pid learned from a message's `from`, guessed, spelled another way, or
//! left behind by a name that changed hands.
//!
//! Hosts never share a VM: a worker belongs to one host and a Lua VM to
//! one worker, so a pid of `bypid` (the C fast path's local sends) is
//! always of the sender's own host; every other pid goes through
//! `Core::check_reach`. Each case asserts the refusal (its kind naming the
//! operation and both hosts), that the foreign process got nothing (its
//! own report, asked by a process of its host), started nothing, and that
//! the attacker's neighbour kept ticking. Three were holes until fixed
//! (each fails on the code before): a lookup of a foreign name told its
//! holder's pid; unlink and unmonitor of a foreign pid skipped the check
//! (and posted a command to the other host's worker); a component's
//! payloads were judged before the check.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use warren_core::{
    HostLimits, Pid, ProcError, Runtime, ServiceCommand, ServiceControl, ServiceInfo, SpawnRequest,
    Value,
};
use warren_tests::{App, HOST, OTHER_HOST};

use crate::harness::{self, Outcome, app, attack_on, s};

/// The foreign process: holds `name` (default `svc`), traps links, and
/// records every message and event it gets; answers "report" with what it
/// recorded ("clean" for nothing).
const VICTIM: &str = r#"return function(name)
    assert(process.registry.register(name or "svc"))
    process.set_options({ trap_links = true })
    local inbox, events = process.inbox(), process.events()
    local seen = {}
    while true do
        local r = channel.select({ inbox:case_receive(), events:case_receive() })
        if r.channel == inbox then
            local m = r.value
            if m:topic() == "report" then
                process.send(m:from(), "report", #seen == 0 and "clean" or table.concat(seen, ","))
            else
                seen[#seen + 1] = "msg:" .. m:topic() .. " from " .. tostring(m:from())
            end
        else
            seen[#seen + 1] = "event:" .. tostring(r.value.kind) .. " from " .. tostring(r.value.from)
        end
    end
end"#;

/// Asks the process named `name` (on its own host) for its report.
const REPORT: &str = r#"local time = require("time")
return function(name)
    local pid = process.registry.lookup(name or "svc")
    if not pid then return "gone" end
    process.send(pid, "report")
    local inbox = process.inbox()
    local r = channel.select({ inbox:case_receive(), time.after("5s"):case_receive() })
    if r.channel ~= inbox then return "silent" end
    return r.value:payload():data()
end"#;

/// What a spawn that should never have happened would start: it takes the
/// name `marker`, which the test then finds.
const MARKER: &str = r#"local time = require("time")
return function()
    process.registry.register("marker")
    time.sleep("1h")
end"#;

/// Idles for good.
const IDLE: &str = r#"local time = require("time")
return function() while true do time.sleep("1h") end end"#;

/// Lua helpers for attackers: `try(tag, f, ...)` records
/// `tag=<Kind>: <message>`, `tag=accepted` or `tag=raised: <text>`;
/// `done()` returns the records.
const TRY: &str = r#"
local out = {}
local function try(tag, f, ...)
    local okc, r, err = pcall(f, ...)
    local line
    if not okc then line = "raised: " .. tostring(r)
    elseif err ~= nil and type(err) == "table" then line = tostring(err:kind()) .. ": " .. tostring(err:message())
    elseif r then line = "accepted"
    else line = "nil" end
    out[#out + 1] = tag .. "=" .. line
end
local function done() return out end
"#;

/// The harness's app with the victim, its report, the marker and the idler.
fn base(app: App) -> App {
    app.entry("h:victim", VICTIM)
        .entry("h:report", REPORT)
        .entry("h:marker", MARKER)
        .entry("h:idle", IDLE)
}

/// Waits until `name` is registered; its holder.
fn wait_for_name(runtime: &Runtime, name: &str) -> Pid {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = runtime.lookup(name) {
            return pid;
        }
        assert!(Instant::now() < deadline, "{name} never registered");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts `app` (made with [`base`]) with the victim running on
/// `OTHER_HOST` as `svc`; the runtime and the victim's pid.
fn with_victim(app: App) -> (Runtime, String) {
    let runtime = app.start();
    let pid = runtime
        .spawn(SpawnRequest::new("h:victim", OTHER_HOST, Vec::new()))
        .expect("spawn the victim");
    assert_eq!(wait_for_name(&runtime, "svc"), pid);
    (runtime, pid.to_string())
}

/// The report of the process named `name` on `host`.
fn report_on(runtime: &Runtime, host: &str, name: &str) -> String {
    let exit = runtime
        .run(
            SpawnRequest::new("h:report", host, vec![s(name)]),
            Duration::from_secs(20),
        )
        .expect("spawn the report")
        .expect("the report ended");
    match exit {
        Ok(v) => v.as_str().map_or_else(|| format!("{v:?}"), str::to_owned),
        Err(e) => panic!("the report failed: {e}"),
    }
}

/// Asserts the foreign victim (`svc`, pid `victim`) is alive, still holds
/// its name, got nothing, and nothing was spawned on its behalf.
fn assert_untouched(runtime: &Runtime, victim: &str) {
    let holder = runtime.lookup("svc").map(|p| p.to_string());
    assert_eq!(holder.as_deref(), Some(victim), "the victim lost its name");
    assert_eq!(report_on(runtime, OTHER_HOST, "svc"), "clean");
    assert_no_marker(runtime);
}

/// No `h:marker` started anywhere.
fn assert_no_marker(runtime: &Runtime) {
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(runtime.lookup("marker"), None, "a refused spawn started");
}

/// The attacker's records, `(tag, answer)`; panics if it failed.
fn records(out: &Outcome) -> Vec<(String, String)> {
    out.assert_neighbour_ticks();
    let v = match &out.exit {
        Ok(v) => v.clone(),
        Err(e) => panic!("the attacker failed: {e}"),
    };
    warren_tests::strings(v)
        .into_iter()
        .map(|r| {
            let (tag, answer) = r.split_once('=').unwrap_or((&r, ""));
            (tag.to_owned(), answer.to_owned())
        })
        .collect()
}

/// Asserts every record is refused: by pid, a `PERMISSION_DENIED` naming
/// both hosts; by a name only the other host holds, what a name nobody
/// holds gets (`NOT_FOUND`), which names no host. Returns
/// the records.
fn assert_denied(out: &Outcome) -> Vec<(String, String)> {
    let recs = records(out);
    assert!(!recs.is_empty());
    for (tag, answer) in &recs {
        let denied = answer.starts_with("PermissionDenied: ")
            && answer.contains(&format!("'{HOST}'"))
            && answer.contains(&format!("'{OTHER_HOST}'"));
        assert!(
            denied || is_free_name(answer),
            "{tag}: {answer}\nall: {recs:#?}"
        );
    }
    recs
}

/// Whether `answer` is what an operation on a name nobody holds gets.
fn is_free_name(answer: &str) -> bool {
    answer.starts_with("NotFound: ")
        && answer.contains("no process is registered as \"")
        && !answer.contains(OTHER_HOST)
}

/// Runs the Lua `body` (with `victim`, the foreign pid, and the `TRY`
/// helpers; it ends with `return done()`) against the victim.
fn lua_attack(app: App, body: &str) -> (Runtime, String, Outcome) {
    let source = format!("{TRY}\nreturn function(victim)\n{body}\nend");
    let (runtime, victim) = with_victim(base(app).entry("h:attacker", &source));
    let out = attack_on(&runtime, "h:attacker", vec![s(&victim)]);
    (runtime, victim, out)
}

// ---------------------------------------------------------------------
// 1. By pid, every operation, every Lua path
// ---------------------------------------------------------------------

/// Every send path to the foreign pid: `send1` (no payload, one scalar,
/// one table: `send_remote` → `send_at`), the kernel's Lua (two
/// payloads, a reserved topic, a payload only `H.send` takes).
const SENDS_BY_PID: &str = r#"
    try("send0", process.send, victim, "t")
    try("send1-int", process.send, victim, "t", 1)
    try("send1-str", process.send, victim, "t", "x")
    try("send1-table", process.send, victim, "t", { a = { 1, 2 } })
    try("send1-nil", process.send, victim, "t", nil)
    try("send2", process.send, victim, "t", 1, 2)
    try("send3-table", process.send, victim, "t", {}, { 1 }, "x")
    try("send-function", process.send, victim, "t", print)
    try("send-huge", process.send, victim, "t", string.rep("x", 200000))
    try("send-mt", process.send, victim, "t", setmetatable({}, { __index = function() error("ran") end }))
    try("send-coroutine", process.send, victim, "t", coroutine.create(print))
    return done()
"#;

#[test]
fn every_send_path_to_a_foreign_pid_is_denied() {
    let (runtime, victim, out) = lua_attack(app(), SENDS_BY_PID);
    let recs = assert_denied(&out);
    for (tag, answer) in &recs {
        assert!(answer.contains("send to host"), "{tag}: {answer}");
        assert!(answer.contains(&victim), "{tag}: {answer}");
    }
    assert_eq!(recs.len(), 11);
    assert_untouched(&runtime, &victim);
}

#[test]
fn a_send_from_a_coroutine_or_a_function_value_takes_the_same_check() {
    // `send1` finds its sender through the kernel's `current`: from a
    // coroutine of the process, through a stored reference to
    // `process.send`, inside pcall and xpcall.
    let (runtime, victim, out) = lua_attack(
        app(),
        r#"
    local send = process.send
    local co = coroutine.wrap(function()
        try("in-coroutine", send, victim, "t", 1)
        coroutine.yield()
        try("in-coroutine-2", send, victim, "t")
    end)
    co()
    co()
    local _, a, b = xpcall(function() return send(victim, "t", 1) end, function(m) return m end)
    try("xpcall", function() return a, b end)
    try("pcall", function() local _, a2, b2 = pcall(send, victim, "t", {}) return a2, b2 end)
    try("spawned-coroutine", function()
        local ch = channel.new(1)
        coroutine.spawn(function() local _, err = send(victim, "t", 2) ch:send(err) end)
        local err = ch:receive()
        return nil, err
    end)
    return done()
"#,
    );
    assert_denied(&out);
    assert_untouched(&runtime, &victim);
}

#[test]
fn every_lifecycle_operation_on_a_foreign_pid_is_denied() {
    let (runtime, victim, out) = lua_attack(
        app(),
        r#"
    try("link", process.link, victim)
    try("monitor", process.monitor, victim)
    try("cancel", process.cancel, victim)
    try("cancel-reason", process.cancel, victim, { why = "x" })
    try("cancel-huge", process.cancel, victim, string.rep("x", 200000))
    try("terminate", process.terminate, victim)
    try("register", process.registry.register, "stolen", victim)
    try("register-svc", process.registry.register, "svc", victim)
    return done()
"#,
    );
    let recs = assert_denied(&out);
    let ops = [
        ("link", "link to host"),
        ("monitor", "monitor to host"),
        ("cancel", "cancel to host"),
        ("terminate", "terminate to host"),
        ("register", "register a name to host"),
    ];
    for (tag, answer) in &recs {
        let (_, op) = ops
            .iter()
            .find(|(t, _)| tag.starts_with(t))
            .unwrap_or_else(|| panic!("{tag}"));
        assert!(answer.contains(op), "{tag}: {answer}");
    }
    assert_eq!(runtime.lookup("stolen"), None);
    assert_untouched(&runtime, &victim);
}

#[test]
fn a_refused_link_or_monitor_brings_no_exit_when_the_foreign_process_ends() {
    // Asked, refused, then the victim is killed while the attacker waits:
    // no EXIT or LINK_DOWN reaches it (a half-made monitor would carry the
    // victim's result).
    let attacker = format!(
        r#"{TRY}
local time = require("time")
return function(victim)
    process.set_options({{ trap_links = true }})
    try("link", process.link, victim)
    try("monitor", process.monitor, victim)
    try("link-name", process.link, "svc")
    try("monitor-name", process.monitor, "svc")
    assert(process.registry.register("attacker-ready"))
    local ev = process.events()
    local r = channel.select({{ ev:case_receive(), time.after("1500ms"):case_receive() }})
    if r.channel == ev then out[#out + 1] = "event=" .. tostring(r.value.kind) end
    return done()
end"#
    );
    let runtime = base(app()).entry("h:attacker", &attacker).start();
    let victim = runtime
        .spawn(SpawnRequest::new("h:victim", OTHER_HOST, Vec::new()))
        .expect("spawn the victim");
    wait_for_name(&runtime, "svc");
    std::thread::scope(|scope| {
        let attack =
            scope.spawn(|| attack_on(&runtime, "h:attacker", vec![s(&victim.to_string())]));
        wait_for_name(&runtime, "attacker-ready");
        runtime
            .kill(victim, ProcError::terminated())
            .expect("kill the victim");
        let out = attack.join().expect("attack thread");
        let recs = assert_denied(&out);
        assert_eq!(recs.len(), 4, "{recs:?}");
    });
}

/// Every spawn form on the foreign host: `spawn1` (scalars, a table),
/// `H.spawn` (a context, a function argument), exec, the builder.
const SPAWNS: &str = r#"
    local host = "test:other"
    try("spawn", process.spawn, "h:marker", host)
    try("spawn-args", process.spawn, "h:marker", host, 1, "x", true, nil, 2.5)
    try("spawn-table", process.spawn, "h:marker", host, { a = 1 })
    try("spawn-function", process.spawn, "h:marker", host, print)
    try("spawn-huge", process.spawn, "h:marker", host, string.rep("x", 200000))
    try("spawn_linked", process.spawn_linked, "h:marker", host)
    try("spawn_monitored", process.spawn_monitored, "h:marker", host)
    try("spawn_linked_monitored", process.spawn_linked_monitored, "h:marker", host)
    try("exec", process.exec, "h:marker", host)
    try("exec-args", process.exec, "h:marker", host, { 1 }, 2)
    local b = process.with_context({ a = 1 })
    try("builder-spawn", function() return b:spawn("h:marker", host) end)
    try("builder-linked", function() return b:spawn_linked("h:marker", host) end)
    try("builder-monitored", function() return b:spawn_monitored("h:marker", host) end)
    try("builder-both", function() return b:spawn_linked_monitored("h:marker", host) end)
    try("builder-named", function() return process.with_options({}):with_name("marker"):spawn("h:marker", host) end)
    try("builder-message", function() return process.with_options({}):with_message("t", 1):spawn("h:marker", host) end)
    try("spawn-nonexistent-entry", process.spawn, "h:nope", host)
    return done()
"#;

#[test]
fn every_spawn_form_on_a_foreign_host_is_denied() {
    let (runtime, victim, out) = lua_attack(app(), SPAWNS);
    let recs = records(&out);
    for (tag, answer) in &recs {
        if tag == "spawn-nonexistent-entry" {
            // The entry's existence is checked first (entries are the
            // application's, not a tenant's): nothing about the host leaks.
            assert!(answer.starts_with("NotFound: "), "{tag}: {answer}");
            continue;
        }
        assert!(
            answer.starts_with("PermissionDenied: spawn to host 'test:other'"),
            "{tag}: {answer}"
        );
    }
    assert_eq!(recs.len(), 17);
    assert_untouched(&runtime, &victim);
}

#[test]
fn the_reach_check_matches_host_names_exactly() {
    // Names that look like the other host's, and one of no host, allow
    // nothing.
    let mut limits = harness::limits();
    limits.allow_hosts = Some(vec![
        "test:nope".into(),
        "TEST:OTHER".into(),
        "test:other ".into(),
        " test:other".into(),
        "test:*".into(),
        "*".into(),
        "test".into(),
        String::new(),
    ]);
    let (runtime, victim, out) = lua_attack(
        app().limits(limits),
        r#"
    try("send", process.send, victim, "t", 1)
    try("terminate", process.terminate, victim)
    try("spawn", process.spawn, "h:marker", "test:other")
    try("lookup", process.registry.lookup, "svc")
    return done()
"#,
    );
    assert_denied(&out);
    assert_untouched(&runtime, &victim);
}

// ---------------------------------------------------------------------
// 2. By name
// ---------------------------------------------------------------------

#[test]
fn every_operation_on_a_foreign_name_reads_as_a_free_name() {
    let (runtime, victim, out) = lua_attack(
        app(),
        r#"
    try("send0", process.send, "svc", "t")
    try("send1", process.send, "svc", "t", 1)
    try("send1-table", process.send, "svc", "t", { 1 })
    try("send2", process.send, "svc", "t", 1, 2)
    try("send-huge", process.send, "svc", "t", string.rep("x", 200000))
    try("link", process.link, "svc")
    try("unlink", process.unlink, "svc")
    try("monitor", process.monitor, "svc")
    try("unmonitor", process.unmonitor, "svc")
    try("cancel", process.cancel, "svc", "why")
    try("terminate", process.terminate, "svc")
    return done()
"#,
    );
    let recs = assert_denied(&out);
    assert_eq!(recs.len(), 11);
    for (tag, answer) in &recs {
        assert!(!answer.contains(&victim), "{tag} leaked the pid: {answer}");
        assert!(is_free_name(answer), "{tag}: {answer}");
        assert!(answer.contains("\"svc\""), "{tag}: {answer}");
    }
    assert_untouched(&runtime, &victim);
}

#[test]
fn a_foreign_name_is_neither_seen_nor_released() {
    // A name passes only between hosts that reach each other both ways:
    // the attacker's host reaches no one, so the victim's `svc` is not in
    // its way (its own `svc` is apart from it, and releasing that releases
    // only its own), and naming the victim's pid is refused.
    let (runtime, victim, out) = lua_attack(
        app(),
        r#"
    local r = {}
    local ok, err = process.registry.register("svc")
    r[#r + 1] = "register-own=" .. (ok and "accepted" or err:kind() .. ": " .. err:message())
    r[#r + 1] = "unregister=" .. tostring(process.registry.unregister("svc"))
    -- A name it registered for itself, then for the foreign pid: the
    -- second is refused, and releasing "mine" afterwards releases its own.
    assert(process.registry.register("mine"))
    local ok2, err2 = process.registry.register("mine", victim)
    r[#r + 1] = "reregister=" .. (ok2 and "accepted" or err2:kind())
    r[#r + 1] = "unregister-svc-again=" .. tostring(process.registry.unregister("svc"))
    return r
"#,
    );
    out.assert_neighbour_ticks();
    let got = warren_tests::strings(out.exit.clone().expect("the attacker ran"));
    assert_eq!(
        got,
        [
            "register-own=accepted",
            "unregister=true",
            "reregister=PermissionDenied",
            "unregister-svc-again=false",
        ]
    );
    assert_untouched(&runtime, &victim);
}

#[test]
fn looking_up_a_foreign_name_does_not_tell_its_pid() {
    let (runtime, victim, out) = lua_attack(
        app(),
        r#"
    try("lookup", process.registry.lookup, "svc")
    local pid, err = process.registry.lookup("svc")
    assert(pid == nil)
    return done()
"#,
    );
    // As for a name nobody holds.
    let recs = assert_denied(&out);
    let free = "NotFound: no process is registered as \"svc\"";
    assert_eq!(recs, [("lookup".to_owned(), free.to_owned())]);
    assert_untouched(&runtime, &victim);
}

#[test]
fn unlink_and_unmonitor_of_a_foreign_pid_are_denied() {
    let (runtime, victim, out) = lua_attack(
        app(),
        r#"
    try("unlink", process.unlink, victim)
    try("unmonitor", process.unmonitor, victim)
    for i = 1, 50 do process.unlink(victim) process.unmonitor(victim) end
    return done()
"#,
    );
    let recs = assert_denied(&out);
    assert!(recs[0].1.contains("unlink"), "{recs:?}");
    assert!(recs[1].1.contains("unmonitor"), "{recs:?}");
    assert_untouched(&runtime, &victim);
}

#[test]
fn unlink_and_unmonitor_of_a_foreign_pid_change_nothing_there() {
    // Whatever they answer (refused: see the case above), they leave the
    // foreign process as it was: no event, its name, alive.
    let (runtime, victim, out) = lua_attack(
        app(),
        r#"
    for i = 1, 50 do process.unlink(victim) process.unmonitor(victim) end
    try("link-after", process.link, victim)
    try("monitor-after", process.monitor, victim)
    return done()
"#,
    );
    assert_denied(&out);
    assert_untouched(&runtime, &victim);
}

// ---------------------------------------------------------------------
// 3. Pids learned, guessed, spelled otherwise, left behind
// ---------------------------------------------------------------------

#[test]
fn guessed_foreign_pids_are_all_denied_and_tell_no_liveness() {
    // Serials are runtime-wide and sequential, so a process can guess
    // every other tenant's pids: each guess, live or not, is the same
    // PERMISSION_DENIED (the reach check comes before the liveness check).
    let (runtime, victim, out) = lua_attack(
        app(),
        r#"
    local serial = tonumber(victim:match("%.(%d+)>"))
    local kinds = {}
    for k = 1, serial + 40 do
        local pid = "<1." .. k .. ">"
        for _, op in ipairs({ "send0", "send1", "send2", "link", "monitor", "cancel", "terminate", "register" }) do
            local _, err
            if op == "send0" then _, err = process.send(pid, "t")
            elseif op == "send1" then _, err = process.send(pid, "t", k)
            elseif op == "send2" then _, err = process.send(pid, "t", k, k)
            elseif op == "register" then _, err = process.registry.register("g" .. k, pid)
            else _, err = process[op](pid) end
            local key = op .. "=" .. (err and err:kind() or "accepted")
            kinds[key] = (kinds[key] or 0) + 1
        end
    end
    local r = {}
    for k, n in pairs(kinds) do r[#r + 1] = k .. "x" .. n end
    table.sort(r)
    return r
"#,
    );
    out.assert_neighbour_ticks();
    let got = warren_tests::strings(out.exit.clone().expect("the attacker ran"));
    let serial: usize = victim
        .trim_end_matches('>')
        .rsplit('.')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a serial");
    assert_eq!(got.len(), 8, "{got:?}");
    for line in &got {
        assert!(
            line.contains("=PermissionDenied") && line.ends_with(&format!("x{}", serial + 40)),
            "{got:?}"
        );
    }
    assert_untouched(&runtime, &victim);
}

#[test]
fn other_spellings_of_a_foreign_pid_are_the_same_pid_and_denied() {
    // Leading zeros parse to the same pid (never to one of the sender's
    // own host): the C path's `bypid` misses them and the host checks.
    let (runtime, victim, out) = lua_attack(
        app(),
        r#"
    local serial = victim:match("%.(%d+)>")
    for _, pid in ipairs({ "<01." .. serial .. ">", "<1.0" .. serial .. ">", "<0001.000" .. serial .. ">" }) do
        try("send0 " .. pid, process.send, pid, "t")
        try("send1 " .. pid, process.send, pid, "t", 1)
        try("send2 " .. pid, process.send, pid, "t", 1, 2)
        try("terminate " .. pid, process.terminate, pid)
        try("cancel " .. pid, process.cancel, pid)
        try("link " .. pid, process.link, pid)
        try("monitor " .. pid, process.monitor, pid)
        try("register " .. pid, process.registry.register, "alias", pid)
    end
    return done()
"#,
    );
    assert_eq!(assert_denied(&out).len(), 24);
    assert_untouched(&runtime, &victim);
}

#[test]
fn pids_of_no_host_reach_nothing() {
    // A process of the last host (whose quota `quota_of` falls back to
    // for a host index past the hosts) names a process of `test:host` by
    // its serial under host indexes that do not exist: the reach check
    // compares it with its own host, so only the directory, keyed by the
    // whole pid, stops it (NOT_FOUND); nothing may arrive. The real pid is
    // denied.
    let sandboxed = HostLimits {
        allow_hosts: Some(Vec::new()),
        ..HostLimits::default()
    };
    let attacker = format!(
        r#"{TRY}
return function(target)
    local serial = target:match("%.(%d+)>")
    for _, h in ipairs({{ "2", "7", "65535", "00001" }}) do
        -- Serials are counted per host: the attacker's own host has a
        -- process of the target's serial (itself), so none past its own.
        local pid = "<" .. h .. "." .. (h == "00001" and "999999" or serial) .. ">"
        try("send1 " .. pid, process.send, pid, "t", 1)
        try("send2 " .. pid, process.send, pid, "t", 1, 2)
        try("terminate " .. pid, process.terminate, pid)
        try("cancel " .. pid, process.cancel, pid)
        try("link " .. pid, process.link, pid)
        try("monitor " .. pid, process.monitor, pid)
    end
    try("send1 real", process.send, target, "t", 1)
    try("terminate real", process.terminate, target)
    return done()
end"#
    );
    let runtime = base(app().other_limits(sandboxed))
        .entry("h:attacker", &attacker)
        .start();
    let target = runtime
        .spawn(SpawnRequest::new("h:victim", HOST, vec![s("home")]))
        .expect("spawn the target");
    wait_for_name(&runtime, "home");
    let exit = runtime
        .run(
            SpawnRequest::new("h:attacker", OTHER_HOST, vec![s(&target.to_string())]),
            Duration::from_secs(20),
        )
        .expect("spawn the attacker")
        .expect("the attacker ended");
    let recs: Vec<String> = warren_tests::strings(exit.expect("the attacker ran"));
    assert_eq!(recs.len(), 26, "{recs:#?}");
    for r in &recs {
        let (tag, answer) = r.split_once('=').expect("tag=answer");
        if tag.ends_with("real") {
            assert!(answer.starts_with("PermissionDenied: "), "{r}");
            assert!(answer.contains("'test:other'") && answer.contains("'test:host'"));
        } else if tag.contains("<00001.") {
            // Host 1 is the attacker's own: that pid does not exist.
            assert!(answer.starts_with("NotFound: "), "{r}");
        } else {
            assert!(
                answer.starts_with("NotFound: ") || answer.starts_with("PermissionDenied: "),
                "{r}"
            );
        }
    }
    assert_eq!(report_on(&runtime, HOST, "home"), "clean");
    assert_eq!(runtime.lookup("home"), Some(target));
}

/// A process of the other host that sends the attacker (`attacker`) one
/// message, then records what comes back for 1.5 s.
const GREETER: &str = r#"local time = require("time")
return function(how, attacker)
    process.set_options({ trap_links = true })
    local ok, err
    if how == "none" then ok, err = process.send(attacker, "hello")
    elseif how == "two" then ok, err = process.send(attacker, "hello", 1, 2)
    else ok, err = process.send(attacker, "hello", { n = 1 }) end
    assert(ok, err)
    local inbox, events = process.inbox(), process.events()
    local seen = {}
    local deadline = time.after("1500ms")
    while true do
        local r = channel.select({ inbox:case_receive(), events:case_receive(), deadline:case_receive() })
        if r.channel == deadline then break end
        if r.channel == inbox then seen[#seen + 1] = "msg:" .. r.value:topic()
        else seen[#seen + 1] = "event:" .. tostring(r.value.kind) end
    end
    return #seen == 0 and "clean" or table.concat(seen, ",")
end"#;

#[test]
fn a_foreign_senders_from_is_no_way_back() {
    // The other host (allow_hosts open) may reach the attacker's; the
    // attacker (allow_hosts: []) may not reach back through the pid its
    // message carries, on any path, whichever way the message arrived
    // (one payload: `inbox.rs`'s C routing; none; two: `H.next`).
    let attacker = format!(
        r#"{TRY}
local time = require("time")
return function(topic_listen)
    local ch = topic_listen == "listen" and process.listen("hello", {{ message = true }}) or process.inbox()
    assert(process.registry.register("attacker"))
    local r = channel.select({{ ch:case_receive(), time.after("10s"):case_receive() }})
    assert(r.channel == ch, "no greeting")
    local from = r.value:from()
    try("reply0", process.send, from, "back")
    try("reply1", process.send, from, "back", 1)
    try("reply1-table", process.send, from, "back", {{ 1 }})
    try("reply2", process.send, from, "back", 1, 2)
    try("link", process.link, from)
    try("monitor", process.monitor, from)
    try("cancel", process.cancel, from)
    try("terminate", process.terminate, from)
    try("register", process.registry.register, "caught", from)
    try("spawn-back", process.spawn, "h:marker", "test:other")
    return done()
end"#
    );
    let runtime = base(app())
        .entry("h:attacker", &attacker)
        .entry("h:greeter", GREETER)
        .start();
    for (how, listen) in [("one", "inbox"), ("none", "inbox"), ("two", "listen")] {
        std::thread::scope(|scope| {
            let attack = scope.spawn(|| attack_on(&runtime, "h:attacker", vec![s(listen)]));
            // By pid: a name on a host that reaches no one is not seen
            // from the greeter's.
            let attacker = wait_for_name(&runtime, "attacker").to_string();
            let greeted = runtime
                .run(
                    SpawnRequest::new("h:greeter", OTHER_HOST, vec![s(how), s(&attacker)]),
                    Duration::from_secs(20),
                )
                .expect("spawn the greeter");
            let out = attack.join().expect("attack thread");
            assert_eq!(assert_denied(&out).len(), 10, "{how}");
            assert_eq!(greeted, Some(Ok(s("clean"))), "{how}");
        });
        assert_eq!(runtime.lookup("caught"), None);
        assert_no_marker(&runtime);
        let deadline = Instant::now() + Duration::from_secs(5);
        while runtime.lookup("attacker").is_some() {
            assert!(Instant::now() < deadline, "the attacker's name stayed");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn a_receiver_may_not_reply_to_a_sender_it_may_not_reach() {
    // One-way reach: `test:host` may reach `test:other`, which reaches
    // nothing. The attacker's message arrives; the victim cannot answer it
    // (its `from` names a host it may not reach), on any path.
    let mut one_way = harness::limits();
    one_way.allow_hosts = Some(vec![OTHER_HOST.into()]);
    let sandboxed = HostLimits {
        allow_hosts: Some(Vec::new()),
        ..HostLimits::default()
    };
    let replier = r#"return function()
        assert(process.registry.register("replier"))
        local m = process.inbox():receive()
        local from = m:from()
        local r = {}
        local function k(tag, _, err) r[#r + 1] = tag .. "=" .. (err and err:kind() or "accepted") end
        k("reply0", process.send(from, "back"))
        k("reply1", process.send(from, "back", 1))
        k("reply2", process.send(from, "back", 1, 2))
        k("terminate", process.terminate(from))
        k("monitor", process.monitor(from))
        k("link", process.link(from))
        k("cancel", process.cancel(from))
        return table.concat(r, ",")
    end"#;
    let attacker = r#"local time = require("time")
    return function(replier)
        assert(process.send(replier, "hi", 1))
        local inbox = process.inbox()
        local r = channel.select({ inbox:case_receive(), time.after("1s"):case_receive() })
        if r.channel == inbox then return "got " .. r.value:topic() end
        return "nothing back"
    end"#;
    let runtime = base(app().limits(one_way).other_limits(sandboxed))
        .entry("h:replier", replier)
        .entry("h:attacker", attacker)
        .start();
    std::thread::scope(|scope| {
        let replied = scope.spawn(|| {
            runtime
                .run(
                    SpawnRequest::new("h:replier", OTHER_HOST, Vec::new()),
                    Duration::from_secs(20),
                )
                .expect("spawn the replier")
        });
        // By pid: the replier's host reaches no one, so its name is not
        // seen from the attacker's.
        let replier = wait_for_name(&runtime, "replier").to_string();
        let out = attack_on(&runtime, "h:attacker", vec![s(&replier)]);
        assert_eq!(out.value(), "nothing back");
        out.assert_neighbour_ticks();
        let replied = replied.join().expect("replier thread");
        let all = "reply0=PermissionDenied,reply1=PermissionDenied,reply2=PermissionDenied,\
            terminate=PermissionDenied,monitor=PermissionDenied,link=PermissionDenied,\
            cancel=PermissionDenied";
        assert_eq!(replied, Some(Ok(s(all))));
    });
}

#[test]
fn a_name_that_changes_hands_is_checked_at_each_use() {
    // The attacker's own process holds `shared`; the attacker sends to it
    // by name, then it ends and a process of the other host takes the
    // name while the attacker keeps sending by name and to the old pid:
    // every send after the first is NOT_FOUND (the new holder is out of
    // sight, so the name reads as free), and none reaches the new holder.
    // Pids are never reused, so the old pid stays NOT_FOUND. The test
    // registers `taken` on the attacker's host once the name has changed
    // hands; the attacker sends 50 more rounds after seeing it.
    let attacker = r#"local time = require("time")
    return function()
        local holder = process.spawn("h:victim", "test:host", "shared")
        while not process.registry.lookup("shared") do time.sleep("1ms") end
        assert(process.send("shared", "first", 1))
        assert(process.terminate(holder))
        while process.registry.lookup("shared") do time.sleep("1ms") end
        assert(process.registry.register("gap"))
        local kinds = {}
        local deadline = time.after("10s")
        local after = 0
        while after < 50 do
            for _, args in ipairs({ { "shared", "t" }, { "shared", "t", 1 }, { "shared", "t", 1, 2 }, { holder, "t", 1 } }) do
                local _, err = process.send(table.unpack(args))
                kinds[err and err:kind() or "accepted"] = true
            end
            if process.registry.lookup("taken") then after = after + 1 end
            local r = channel.select({ deadline:case_receive(), default = true })
            assert(r.default, "the name never changed hands")
            time.sleep("1ms")
        end
        local _, e1 = process.send(holder, "t", 1)
        local _, e2 = process.terminate("shared")
        local _, e3 = process.monitor("shared")
        local r = { e1:kind(), e2:kind(), e3:kind() }
        for k in pairs(kinds) do r[#r + 1] = "seen:" .. k end
        table.sort(r)
        return table.concat(r, ",")
    end"#;
    let runtime = base(app()).entry("h:attacker", attacker).start();
    std::thread::scope(|scope| {
        let attack = scope.spawn(|| attack_on(&runtime, "h:attacker", Vec::new()));
        wait_for_name(&runtime, "gap");
        let new_holder = runtime
            .spawn(SpawnRequest::new("h:victim", OTHER_HOST, vec![s("shared")]))
            .expect("spawn the new holder");
        assert_eq!(wait_for_name(&runtime, "shared"), new_holder);
        runtime
            .spawn(SpawnRequest::new("h:victim", HOST, vec![s("taken")]))
            .expect("spawn the signal");
        let out = attack.join().expect("attack thread");
        out.assert_neighbour_ticks();
        assert_eq!(out.value(), "NotFound,NotFound,NotFound,seen:NotFound");
        assert_eq!(report_on(&runtime, OTHER_HOST, "shared"), "clean");
    });
}

// ---------------------------------------------------------------------
// 4. Two workers, a component target
// ---------------------------------------------------------------------

#[test]
fn with_two_workers_own_host_pids_reach_and_foreign_ones_do_not() {
    // The attacker's host has two workers: its children land on both, so
    // its sends take `send1`'s local path and `send_remote` to its own
    // host; the foreign pid is denied on the same paths.
    let (runtime, victim, out) = lua_attack(
        app().workers(2),
        r#"
    local kids = {}
    for i = 1, 6 do kids[i] = assert(process.spawn("h:idle", "test:host")) end
    for i, kid in ipairs(kids) do
        assert(process.send(kid, "t"))
        assert(process.send(kid, "t", i))
        assert(process.send(kid, "t", i, i))
        assert(process.monitor(kid))
        assert(process.terminate(kid))
        try("send0-" .. i, process.send, victim, "t")
        try("send1-" .. i, process.send, victim, "t", i)
        try("send2-" .. i, process.send, victim, "t", i, i)
    end
    return done()
"#,
    );
    assert_eq!(assert_denied(&out).len(), 18);
    assert_untouched(&runtime, &victim);
}

#[test]
fn a_foreign_component_is_denied_on_every_lua_path() {
    // The foreign process is a component (`reads_packed`: `send_at` would
    // encode straight to MessagePack) holding the name `hoarder`.
    let attacker = format!(
        r#"{TRY}
return function(pid)
    for _, dest in ipairs({{ pid, "hoarder" }}) do
        try("send0 " .. dest, process.send, dest, "t")
        try("send1 " .. dest, process.send, dest, "t", {{ a = 1 }})
        try("send2 " .. dest, process.send, dest, "t", 1, 2)
        try("cancel " .. dest, process.cancel, dest, "x")
        try("terminate " .. dest, process.terminate, dest)
        try("link " .. dest, process.link, dest)
        try("monitor " .. dest, process.monitor, dest)
    end
    try("register", process.registry.register, "mine", pid)
    try("lookup", process.registry.lookup, "hoarder")
    return done()
end"#
    );
    let runtime = base(app())
        .component("h:hostile", "hostile")
        .entry("h:attacker", &attacker)
        .start();
    let hoarder = runtime
        .spawn(SpawnRequest::new("h:hostile", OTHER_HOST, vec![s("deaf")]))
        .expect("spawn the component");
    assert_eq!(wait_for_name(&runtime, "hoarder"), hoarder);
    let out = attack_on(&runtime, "h:attacker", vec![s(&hoarder.to_string())]);
    assert_eq!(assert_denied(&out).len(), 16);
    assert_eq!(runtime.lookup("mine"), None);
    assert_eq!(
        runtime.lookup("hoarder"),
        Some(hoarder),
        "the component was reached"
    );
}

// ---------------------------------------------------------------------
// 5. A component attacker
// ---------------------------------------------------------------------

/// Runs the hostile component with `args` against the victim; its answer.
fn component_answers(cases: &[Vec<String>]) -> (Runtime, String, Vec<(Vec<String>, String)>) {
    let (runtime, victim) = with_victim(base(app()).component("h:attacker", "hostile"));
    let mut answers = Vec::new();
    for case in cases {
        let args: Vec<Value> = case
            .iter()
            .map(|a| match a.as_str() {
                "$victim" => s(&victim),
                int if int.starts_with('#') => Value::Int(int[1..].parse().unwrap_or(0)),
                other => s(other),
            })
            .collect();
        let out = attack_on(&runtime, "h:attacker", args);
        out.assert_neighbour_ticks();
        answers.push((case.clone(), out.value()));
    }
    (runtime, victim, answers)
}

fn case(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

#[test]
fn a_component_is_denied_every_operation_by_pid_and_by_name() {
    let mut cases = Vec::new();
    // "nosuch" is held by no one: "svc" must answer as it does.
    for dest in ["$victim", "svc", "nosuch"] {
        cases.push(case(&["send-to", dest]));
        cases.push(case(&["flood", dest, "#5"]));
        cases.push(case(&["flood-bytes", dest, "#3", "#100"]));
        cases.push(case(&["huge", dest, "#1000"]));
        cases.push(case(&["topic", dest, "#10"]));
        cases.push(case(&["raw", "93010203", dest]));
        cases.push(case(&["unholdable", "nan-key", dest]));
        cases.push(case(&["unholdable", "deep", dest]));
        cases.push(case(&["terminate", dest]));
    }
    cases.push(case(&["spawn-on", "h:marker", OTHER_HOST]));
    cases.push(case(&["storm", "h:marker", OTHER_HOST, "#5"]));
    cases.push(case(&["huge-spawn", "h:marker", OTHER_HOST, "#1000"]));
    let (runtime, victim, answers) = component_answers(&cases);
    for (case, answer) in &answers {
        let by_name = case.iter().any(|a| a == "svc" || a == "nosuch");
        let expected = if by_name {
            "NotFound:0"
        } else {
            "PermissionDenied:0"
        };
        assert_eq!(answer, expected, "{case:?}");
    }
    assert_untouched(&runtime, &victim);
}

#[test]
fn a_components_cancel_and_payload_lists_are_denied() {
    let mut cases = Vec::new();
    for dest in ["$victim", "svc"] {
        cases.push(case(&["cancel-big", dest, "#10"]));
        cases.push(case(&["many-payloads", dest, "#3"]));
        cases.push(case(&["bloat", dest, "#3"]));
    }
    let (runtime, victim, answers) = component_answers(&cases);
    for (case, answer) in &answers {
        assert!(
            !answer.contains(&victim) || case[1] == "$victim",
            "{case:?}: {answer}"
        );
        if case[1] == "svc" {
            assert!(answer.starts_with("NotFound:"), "{case:?}: {answer}");
            assert!(!answer.contains(OTHER_HOST), "{case:?}: {answer}");
            continue;
        }
        assert!(
            answer.starts_with("PermissionDenied:"),
            "{case:?}: {answer}"
        );
        assert!(
            answer.contains("'test:host'") && answer.contains("'test:other'"),
            "{case:?}: {answer}"
        );
    }
    assert_untouched(&runtime, &victim);
}

#[test]
fn a_component_is_denied_before_its_payloads_are_judged() {
    let cases = [
        case(&["huge", "$victim", "#100000"]),
        case(&["huge", "svc", "#100000"]),
        case(&["raw", "c1", "$victim"]),
        case(&["raw", "", "$victim"]),
        case(&["unholdable", "malformed", "$victim"]),
        case(&["cancel-big", "$victim", "#100000"]),
        case(&["huge-spawn", "h:marker", OTHER_HOST, "#100000"]),
    ];
    let (runtime, victim, answers) = component_answers(&cases);
    // By name, the name is not found before the payload is looked at.
    let wrong: Vec<_> = answers
        .iter()
        .filter(|(case, answer)| {
            let refusal = if case[1] == "svc" {
                "NotFound:"
            } else {
                "PermissionDenied:"
            };
            !answer.starts_with(refusal)
        })
        .collect();
    assert!(wrong.is_empty(), "judged before the reach check: {wrong:?}");
    assert_untouched(&runtime, &victim);
}

// ---------------------------------------------------------------------
// 6. The bus, services, funcs, upgrade
// ---------------------------------------------------------------------

#[test]
fn one_way_reach_carries_no_bus_event_either_way() {
    // `test:host` may reach `test:other`, which reaches nothing: events
    // need both directions, so neither hears the other.
    let mut one_way = harness::limits();
    one_way.allow_hosts = Some(vec![OTHER_HOST.into()]);
    let sandboxed = HostLimits {
        allow_hosts: Some(Vec::new()),
        ..HostLimits::default()
    };
    let listener = r#"local events = require("events")
    local time = require("time")
    return function(name, publish)
        local all = assert(events.subscribe("*"))
        assert(process.registry.register(name))
        local inbox = process.inbox()
        local r = channel.select({ inbox:case_receive(), time.after("10s"):case_receive() })
        assert(r.channel == inbox, "never told to publish")
        assert(events.send(publish, "k", "/p", "from " .. name))
        assert(events.send("own." .. name, "k", "/p", 1))
        local got = {}
        local deadline = time.after("500ms")
        while true do
            local e = channel.select({ all:channel():case_receive(), deadline:case_receive() })
            if e.channel == deadline then break end
            got[#got + 1] = e.value.system
        end
        table.sort(got)
        return table.concat(got, ",")
    end"#;
    let starter = r#"return function(a, b)
        process.send(a, "go")
        process.send(b, "go")
        return "ok"
    end"#;
    let runtime = base(app().limits(one_way).other_limits(sandboxed))
        .entry("h:listener", listener)
        .entry("h:starter", starter)
        .start();
    std::thread::scope(|scope| {
        let far = scope.spawn(|| {
            runtime
                .run(
                    SpawnRequest::new("h:listener", OTHER_HOST, vec![s("far"), s("x.far")]),
                    Duration::from_secs(20),
                )
                .expect("spawn far")
        });
        let near = scope.spawn(|| {
            runtime
                .run(
                    SpawnRequest::new("h:listener", HOST, vec![s("near"), s("x.near")]),
                    Duration::from_secs(20),
                )
                .expect("spawn near")
        });
        let far_pid = wait_for_name(&runtime, "far");
        let near_pid = wait_for_name(&runtime, "near");
        let started = runtime
            .run(
                SpawnRequest::new(
                    "h:starter",
                    HOST,
                    vec![s(&near_pid.to_string()), s(&far_pid.to_string())],
                ),
                Duration::from_secs(20),
            )
            .expect("spawn the starter");
        assert_eq!(started, Some(Ok(s("ok"))));
        let far = far.join().expect("far");
        let near = near.join().expect("near");
        assert_eq!(far, Some(Ok(s("own.far,x.far"))));
        assert_eq!(near, Some(Ok(s("own.near,x.near"))));
    });
}

/// A supervisor stand-in: lists `services` and records commands.
struct FakeServices {
    services: Vec<ServiceInfo>,
    commands: Mutex<Vec<String>>,
}

impl ServiceControl for FakeServices {
    fn list(&self) -> Vec<ServiceInfo> {
        self.services.clone()
    }

    fn command(&self, id: &str, command: ServiceCommand) -> Result<(), ProcError> {
        self.commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("{id}:{command:?}"));
        Ok(())
    }
}

#[test]
fn services_show_and_steer_only_the_callers_host() {
    let (runtime, victim) = with_victim(base(app()).entry(
        "h:attacker",
        r#"local services = require("services")
        return function(victim)
            local r = {}
            local list = assert(services.list())
            for _, sv in ipairs(list) do
                r[#r + 1] = "listed:" .. sv.id .. ":" .. tostring(sv.pid)
            end
            local _, e = services.status("h:far")
            r[#r + 1] = "status:" .. e:kind()
            for _, op in ipairs({ "start", "stop", "restart" }) do
                local _, err = services[op]("h:far")
                r[#r + 1] = op .. ":" .. err:kind() .. ":" .. err:message()
            end
            assert(services.restart("h:near"))
            return r
        end"#,
    ));
    let own = runtime
        .spawn(SpawnRequest::new("h:idle", HOST, Vec::new()))
        .expect("spawn own service");
    let far = Pid::parse(&victim).expect("pid");
    let info = |id: &str, pid: Pid, host: &str| ServiceInfo {
        id: id.to_owned(),
        state: "running".to_owned(),
        pid: Some(pid),
        restarts: 0,
        reason: String::new(),
        host: host.to_owned(),
    };
    let control = Arc::new(FakeServices {
        services: vec![info("h:near", own, HOST), info("h:far", far, OTHER_HOST)],
        commands: Mutex::new(Vec::new()),
    });
    runtime.set_services(control.clone());
    let out = attack_on(&runtime, "h:attacker", vec![s(&victim)]);
    out.assert_neighbour_ticks();
    let got = warren_tests::strings(out.exit.clone().expect("the attacker ran"));
    let far_text = "no service \"h:far\" on host 'test:host'";
    assert_eq!(
        got,
        [
            format!("listed:h:near:{own}"),
            "status:NotFound".to_owned(),
            format!("start:NotFound:{far_text}"),
            format!("stop:NotFound:{far_text}"),
            format!("restart:NotFound:{far_text}"),
        ]
    );
    assert!(got.iter().all(|g| !g.contains(&victim)));
    let commands = control
        .commands
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert_eq!(commands, ["h:near:Restart"]);
    assert_untouched(&runtime, &victim);
}

#[test]
fn a_function_call_runs_on_the_callers_host_only() {
    // `funcs.call` names no host: the callee is a process of the caller's
    // host, which may not reach the other one either.
    let funcs_src = r#"return {
        whoami = function(victim)
            local _, err = process.send(victim, "t", 1)
            local _, err2 = process.terminate(victim)
            return process.pid() .. "|" .. (err and err:kind() or "accepted") .. "|"
                .. (err2 and err2:kind() or "accepted")
        end,
    }"#;
    let app = base(app()).function(
        ("h:whoami", "whoami"),
        funcs_src,
        warren_core::Pool::default(),
        warren_core::Grants::new(),
    );
    let (runtime, victim, out) = lua_attack(
        app,
        r#"
    local funcs = require("funcs")
    local v, err = funcs.call("h:whoami", victim)
    assert(v, err)
    local pid, k1, k2 = v:match("^(.-)|(.-)|(.-)$")
    out[#out + 1] = "callee-host=" .. pid:match("^<(%d+)%.")
    out[#out + 1] = "send=" .. k1
    out[#out + 1] = "terminate=" .. k2
    try("spawn-function", process.spawn, "h:whoami", "test:other")
    return done()
"#,
    );
    let recs = records(&out);
    assert_eq!(recs[0], ("callee-host".to_owned(), "0".to_owned()));
    assert_eq!(recs[1].1, "PermissionDenied");
    assert_eq!(recs[2].1, "PermissionDenied");
    assert!(
        recs[3].1.starts_with("PermissionDenied: ") || recs[3].1.starts_with("Invalid: "),
        "{recs:?}"
    );
    assert_untouched(&runtime, &victim);
}

#[test]
fn an_upgrade_names_no_process_and_keeps_the_check() {
    // `process.upgrade` replaces the caller's own code: the upgraded
    // process is still of its host and may not reach the other one.
    let upgraded = format!(
        r#"{TRY}
return function(victim)
    try("send", process.send, victim, "t", 1)
    try("terminate", process.terminate, victim)
    try("lookup", process.registry.lookup, "svc")
    try("spawn", process.spawn, "h:marker", "test:other")
    return done()
end"#
    );
    let (runtime, victim, out) = lua_attack(
        app().entry("h:upgraded", &upgraded),
        r#"
    process.upgrade("h:upgraded", victim)
    return { "upgrade=not upgraded" }
"#,
    );
    assert_eq!(assert_denied(&out).len(), 4);
    assert_untouched(&runtime, &victim);
}

/// A pid whose host index names no host names no process: NOT_FOUND from
/// every operation. Its quota read as the last host's, so a process of the
/// first host was refused as if the pid were on the other host, whose
/// name the refusal gave.
#[test]
fn a_pid_of_no_host_is_not_found_and_names_no_host() {
    let out = harness::lua(
        r#"return function()
    local out = {}
    for _, pid in ipairs({ "<2.1>", "<7.1>", "<65535.1>" }) do
        for name, f in pairs({ send = process.send, link = process.link, monitor = process.monitor,
            cancel = process.cancel, terminate = process.terminate }) do
            local _, err = f(pid, "t", 1)
            if err:kind() ~= errors.NOT_FOUND or err:message():find("test:other", 1, true) then
                out[#out + 1] = name .. " " .. pid .. ": " .. err:kind() .. ": " .. err:message()
            end
        end
    end
    return table.concat(out, " | ")
end"#,
        Vec::new(),
    );
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), "");
}

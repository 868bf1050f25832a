//! Registered names between tenants. The attacker's host (`test:host`)
//! may reach no other host (`allow_hosts: []`); `test:other` reaches
//! every host. A name passes only between hosts that reach each other
//! both ways, so a tenant that reaches no one can neither take a name
//! from another tenant nor receive that tenant's messages under it; a
//! name registered for another process is the registrant's to count and
//! to release; only its holder or its registrant may unregister it.

use std::time::Duration;

use warren_core::SpawnRequest;
use warren_tests::{DEADLINE, HOST, OTHER_HOST};

use crate::harness::{app, s};

/// Takes `cache` first and ends with whatever it is sent under it.
const SQUATTER: &str = r#"return function()
    assert(process.registry.register("cache"))
    local m = process.inbox():receive()
    return "stolen: " .. tostring(m:payload():data())
end"#;

/// The victim's service and client in one, on `test:other`: registers
/// `cache` while the squatter (its pid the argument, already holding the
/// name) holds it, sends to it, and checks that the message came here;
/// then ends the squatter and reports how it ended.
const VICTIM: &str = r#"local time = require("time")
return function(squatter)
    local events = process.events()
    assert(process.monitor(squatter))
    -- Held, but not seen from here: it reads as a free name.
    local pid, e = process.registry.lookup("cache")
    assert(pid == nil, "the squatter's name resolved here: " .. tostring(pid))
    assert(e and e:kind() == "NotFound", "not as a free name: " .. tostring(e))
    local ok, err = process.registry.register("cache")
    assert(ok, "register next to the squatter: " .. tostring(err))
    assert(process.registry.lookup("cache") == process.pid(), "the name resolves elsewhere")
    assert(process.send("cache", "get", "victim-secret"))
    local r = channel.select({ process.inbox():case_receive(), time.after("10s"):case_receive() })
    assert(r.channel ~= nil and r.value and r.value.topic and r.value:topic() == "get",
        "the message sent to the name never came back here")
    process.terminate(squatter)
    local ev = events:receive()
    return tostring(ev.result.error or ev.result.value)
end"#;

#[test]
fn a_tenant_that_reaches_no_one_can_neither_squat_a_name_nor_receive_under_it() {
    let runtime = app()
        .entry("h:squatter", SQUATTER)
        .entry("h:victim", VICTIM)
        .start();
    let squatter = runtime
        .spawn(SpawnRequest::new("h:squatter", HOST, Vec::new()))
        .expect("spawn the squatter");
    let deadline = std::time::Instant::now() + DEADLINE;
    while runtime.lookup("cache") != Some(squatter) {
        assert!(
            std::time::Instant::now() < deadline,
            "the squatter never registered"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let exit = runtime
        .run(
            SpawnRequest::new("h:victim", OTHER_HOST, vec![s(&squatter.to_string())]),
            DEADLINE,
        )
        .expect("spawn accepted")
        .expect("the victim finished");
    let v = exit.expect("the victim's checks held");
    let told = v.as_str().unwrap_or("?").to_owned();
    assert!(
        !told.contains("stolen"),
        "the squatter got the message: {told}"
    );
    assert!(
        told.contains("terminated"),
        "the squatter ended otherwise: {told}"
    );
}

/// Starts `h:holder` on the attacker's host and, once it holds `billing`,
/// runs `entry` on `host` with its pid: the holder and what `entry`
/// returned, as strings.
fn against_holder(
    runtime: &warren_core::Runtime,
    entry: &str,
    host: &str,
) -> (warren_core::Pid, Vec<String>) {
    let holder = runtime
        .spawn(SpawnRequest::new("h:holder", HOST, Vec::new()))
        .expect("holder");
    wait_for_name(runtime, "billing");
    let exit = runtime
        .run(
            SpawnRequest::new(entry, host, vec![s(&holder.to_string())]),
            DEADLINE,
        )
        .expect("spawn accepted")
        .expect("finished");
    (holder, warren_tests::strings(exit.expect("ran")))
}

/// Holds `billing` and waits.
const HOLDER: &str = r#"local time = require("time")
return function()
    assert(process.registry.register("billing"))
    while true do time.sleep("1h") end
end"#;

#[test]
fn a_name_can_be_unregistered_only_by_its_holder_or_its_registrant() {
    let runtime = app()
        .entry("h:holder", HOLDER)
        .entry(
            "h:taker",
            r#"return function(holder)
                local out = {}
                out[1] = tostring(process.registry.unregister("billing"))
                -- Naming the holder again changes nothing it may undo.
                out[2] = tostring(process.registry.register("billing", holder))
                out[3] = tostring(process.registry.unregister("billing"))
                local ok, e = process.registry.register("billing")
                out[4] = ok and "taken" or e:kind()
                out[5] = tostring(process.registry.lookup("billing") == holder)
                -- A name it registers for the holder is its own to release.
                assert(process.registry.register("billing-alias", holder))
                out[6] = tostring(process.registry.unregister("billing-alias"))
                return out
            end"#,
        )
        .start();
    let (holder, out) = against_holder(&runtime, "h:taker", HOST);
    assert_eq!(
        out,
        ["false", "true", "false", "AlreadyExists", "true", "true"]
    );
    assert_eq!(runtime.lookup("billing"), Some(holder));
}

/// Holds `billing`; told `again`, registers `own-name` and ends with
/// how that went.
const NAMED_VICTIM: &str = r#"return function()
    assert(process.registry.register("billing"))
    local m = process.inbox():receive()
    local ok, e = process.registry.register("own-name")
    return ok and "registered" or e:kind() .. ": " .. e:message()
end"#;

#[test]
fn another_tenants_process_cannot_be_named_and_keeps_its_own_share_of_names() {
    let runtime = app()
        .entry("h:victim", NAMED_VICTIM)
        .entry(
            "h:namer",
            r#"return function(victim)
                local n = 0
                local kind
                while true do
                    local ok, e = process.registry.register("alias-" .. n, victim)
                    if not ok then kind = e:kind() break end
                    n = n + 1
                end
                local events = process.events()
                assert(process.monitor(victim))
                assert(process.send(victim, "again"))
                local ev = events:receive()
                return { tostring(n), kind, tostring(ev.result.value or ev.result.error) }
            end"#,
        )
        .start();
    let victim = runtime
        .spawn(SpawnRequest::new("h:victim", HOST, Vec::new()))
        .expect("victim");
    wait_for_name(&runtime, "billing");
    let exit = runtime
        .run(
            SpawnRequest::new("h:namer", OTHER_HOST, vec![s(&victim.to_string())]),
            DEADLINE,
        )
        .expect("spawn accepted")
        .expect("finished");
    // Names given to another host's process counted against the giver
    // (its share ran out at MAX_NAMES_PER_PROCESS); now none may be given.
    assert_eq!(
        warren_tests::strings(exit.expect("ran")),
        ["0", "PermissionDenied", "registered"],
        "the named process kept its own share of names"
    );
}

fn wait_for_name(runtime: &warren_core::Runtime, name: &str) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while runtime.lookup(name).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never registered"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Registers the name it is given, tells `parent` so, and waits.
const NAMED: &str = r#"local time = require("time")
return function(name, parent)
    assert(process.registry.register(name))
    assert(process.send(parent, "named"))
    while true do time.sleep("1h") end
end"#;

#[test]
fn a_refusal_names_the_holder_it_conflicts_with_when_the_registrant_reaches_it() {
    // `dup`'s oldest holder is on `test:other`, out of `test:host`'s
    // reach; the holder a `test:host` process collides with is its own
    // neighbour, whom it may name.
    let runtime = app()
        .entry("h:holder", HOLDER)
        .entry("h:named", NAMED)
        .entry(
            "h:second",
            r#"return function()
                local holder = process.spawn("h:named", "test:host", "dup", process.pid())
                assert(process.inbox():receive():topic() == "named")
                local ok, e = process.registry.register("dup")
                assert(not ok, "registered next to a holder it sees")
                return { e:kind(), e:message(), tostring(holder) }
            end"#,
        )
        .start();
    let parent = runtime
        .spawn(SpawnRequest::new("h:holder", OTHER_HOST, Vec::new()))
        .expect("a parent to tell");
    runtime
        .spawn(SpawnRequest::new(
            "h:named",
            OTHER_HOST,
            vec![s("dup"), s(&parent.to_string())],
        ))
        .expect("other holder");
    wait_for_name(&runtime, "dup");
    let exit = runtime
        .run(SpawnRequest::new("h:second", HOST, Vec::new()), DEADLINE)
        .expect("spawn accepted")
        .expect("finished");
    let out = warren_tests::strings(exit.expect("ran"));
    assert_eq!(out[0], "AlreadyExists");
    assert!(
        out[1].contains(&out[2]),
        "the refusal hid the neighbour it conflicts with: {out:?}"
    );
}

/// Holds `db` (after `delay`) and forwards what it is sent to `report`
/// tagged with `tag`.
const DB_HOLDER: &str = r#"local time = require("time")
return function(tag, report)
    assert(process.registry.register("db"))
    process.send(report, "registered", tag)
    while true do
        local m = process.inbox():receive()
        process.send(report, "got", tag .. ":" .. tostring(m:payload():data()))
    end
end"#;

/// On the hub: B's holder registers `db`, then A's (which B does not
/// see); B's holder restarts (ends, a new one registers), and the hub
/// looks `db` up and sends a secret to it.
const HUB: &str = r#"local time = require("time")
return function()
    local inbox = process.inbox()
    local function registered()
        local m = inbox:receive()
        assert(m:topic() == "registered", m:topic())
    end
    local b1 = process.spawn("h:holder", "test:b", "B", process.pid())
    registered()
    process.spawn("h:holder", "test:a", "A", process.pid())
    registered()
    local out = {}
    local pid, err = process.registry.lookup("db")
    out[#out + 1] = tostring(pid) .. " " .. tostring(err and err:kind())
    process.terminate(b1)
    while process.registry.lookup("db") == b1 do time.sleep("1ms") end
    process.spawn("h:holder", "test:b", "B2", process.pid())
    registered()
    pid, err = process.registry.lookup("db")
    out[#out + 1] = tostring(pid) .. " " .. tostring(err and err:kind())
    local ok, serr = process.send("db", "secret", "hunter2")
    out[#out + 1] = tostring(ok) .. " " .. tostring(serr and serr:kind())
    local r = channel.select({ inbox:case_receive(), time.after("200ms"):case_receive() })
    out[#out + 1] = r.channel == inbox and r.value:payload():data() or "nothing"
    return table.concat(out, "|")
end"#;

#[test]
fn a_hub_cannot_be_made_to_send_one_tenants_messages_to_another_under_a_name() {
    // Hosts a and b reach only the hub; the hub reaches both. Both hold a
    // `db` of their own; from the hub the oldest holder won, so when b's
    // holder restarted, the hub's messages to `db` went to a's.
    use crate::harness::{lua_program as program, reaching};
    use warren_core::{HostSpec, RuntimeBuilder};
    let only_hub = || reaching(&["test:hub"]);
    let runtime = RuntimeBuilder::new()
        .frontend(warren_lua::lua_frontend())
        .host(HostSpec::new("test:a", 1).with_limits(only_hub()))
        .host(HostSpec::new("test:b", 1).with_limits(only_hub()))
        .host(HostSpec::new("test:hub", 1))
        .program(program("h:holder", DB_HOLDER))
        .program(program("h:hub", HUB))
        .start()
        .expect("runtime starts");
    let exit = runtime
        .run(SpawnRequest::new("h:hub", "test:hub", Vec::new()), DEADLINE)
        .expect("spawn accepted")
        .expect("the hub finished");
    let told = exit.expect("the hub's checks held");
    let told = told.as_str().unwrap_or("?").to_owned();
    let parts: Vec<&str> = told.split('|').collect();
    assert_eq!(parts[0], "nil Conflict", "{told}");
    assert_eq!(parts[1], "nil Conflict", "{told}");
    assert_eq!(parts[2], "nil Conflict", "{told}");
    assert_eq!(parts[3], "nothing", "{told}");
}

#[test]
fn a_process_holding_many_names_is_released_without_holding_up_the_registry() {
    // 150 registrants give one process 1,024 names each. Its release
    // removed each name from a list of all of them, under the lock every
    // tenant's lookups and exits take: 153,600 names froze other tenants
    // for 11 s.
    let limits = warren_core::HostLimits {
        max_processes: 200,
        mailbox_limit: 1000,
        ..crate::harness::limits()
    };
    let attacker = r#"local time = require("time")
    return function()
        local holder = process.spawn_monitored("h:sleeper", "test:host")
        local inbox = process.inbox()
        for r = 1, 150 do
            process.spawn("h:namer", "test:host", holder, r, process.pid())
        end
        for _ = 1, 150 do assert(inbox:receive():payload():data() == 1024) end
        local t0 = time.now()
        process.terminate(holder)
        process.events():receive()
        local gone = process.registry.lookup("n1-1") == nil
        return tostring(gone) .. " " .. tostring(time.now():sub(t0):milliseconds() < 2000)
    end"#;
    let app = app()
        .limits(limits)
        .entry("h:sleeper", HOLDER)
        .entry(
            "h:namer",
            r#"return function(holder, r, parent)
                for i = 1, 1024 do assert(process.registry.register("n" .. r .. "-" .. i, holder)) end
                assert(process.send(parent, "done", 1024))
                process.inbox():receive()
            end"#,
        )
        .entry("h:attacker", attacker);
    let out = crate::harness::attack(app, "h:attacker", Vec::new());
    assert_eq!(out.value(), "true true");
    out.assert_neighbour_ticks();
}

#[test]
fn a_name_may_be_given_only_to_a_process_of_the_givers_own_host() {
    // Which names a process of another host holds is that host's view:
    // from a hub, registering a candidate name for a hub process answered
    // ALREADY_EXISTS when a tenant the registrant cannot see held it, and
    // a name a third tenant gave that process made the register a silent
    // no-op (red team N). Now it is refused before any name is looked at:
    // held or free, the answer is the same.
    let runtime = app()
        .entry("h:holder", HOLDER)
        .entry(
            "h:giver",
            r#"return function(target)
                local out = {}
                for _, name in ipairs({ "billing", "free-name" }) do
                    local ok, e = process.registry.register(name, target)
                    out[#out + 1] = ok and "accepted" or e:kind() .. ": " .. e:message()
                end
                assert(process.registry.register("own", process.pid()))
                return out
            end"#,
        )
        .start();
    let (holder, out) = against_holder(&runtime, "h:giver", OTHER_HOST);
    let want = format!(
        "PermissionDenied: register a name for {holder}: a process may name only processes of \
         its own host '{OTHER_HOST}', and {holder} is of host '{HOST}'"
    );
    assert_eq!(out, [want.clone(), want]);
    assert_eq!(runtime.lookup("billing"), Some(holder));
    assert_eq!(runtime.lookup("free-name"), None);
}

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
/// `cache` while the squatter holds it, sends to it, and checks that the
/// message came here; then ends the squatter and reports how it ended.
const VICTIM: &str = r#"local time = require("time")
return function()
    local events = process.events()
    local squatter = process.spawn_monitored("h:squatter", "test:host")
    -- Held, but not seen from here: a refusal, not "not found".
    local held = false
    for _ = 1, 5000 do
        local pid, e = process.registry.lookup("cache")
        assert(pid == nil, "the squatter's name resolved here: " .. tostring(pid))
        if e and e:kind() == "PermissionDenied" then held = true break end
        time.sleep("1ms")
    end
    assert(held, "the squatter never registered")
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
    let exit = runtime
        .run(
            SpawnRequest::new("h:victim", OTHER_HOST, Vec::new()),
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
    let holder = runtime
        .spawn(SpawnRequest::new("h:holder", HOST, Vec::new()))
        .expect("holder");
    wait_for_name(&runtime, "billing");
    let exit = runtime
        .run(
            SpawnRequest::new("h:taker", HOST, vec![s(&holder.to_string())]),
            DEADLINE,
        )
        .expect("spawn accepted")
        .expect("finished");
    let out = warren_tests::strings(exit.expect("ran"));
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
fn names_registered_for_another_tenants_process_count_against_the_registrant() {
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
    let cap = warren_core::registry::MAX_NAMES_PER_PROCESS;
    assert_eq!(
        warren_tests::strings(exit.expect("ran")),
        [cap.to_string(), "RateLimited".into(), "registered".into()],
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

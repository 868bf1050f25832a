//! Running another namespace's process entry (the confused deputy of
//! `process.spawn`): an entry runs with its own grants, so a tenant that
//! spawned another tenant's file service on its own host read and wrote
//! that tenant's volume through it. Code may run entries of its own
//! namespace and of namespaces nested in it; any other needs the
//! `process.spawn` grant for it. Every way to run an entry is checked
//! (spawn, linked, monitored, both, the spawner builder, exec, upgrade,
//! a component's spawn and exec), before the entry's existence is: a
//! refusal for a missing entry reads as one for a present one.

use warren_core::Value;
use warren_tests::{App, grants};

/// Another tenant's entry: proves it ran by its answer, and by a message
/// to `parent` when it has one (run by an upgrade).
const STORE: &str = r#"return function(parent)
    if parent then process.send(parent, "as", "b ran") end
    return "b ran"
end"#;

/// Tries every way to run `target` (on this host) and answers one line
/// per way: its result, or the refusal's kind and message.
const ATTACKER: &str = r#"local time = require("time")
return function(target)
    local out = {}
    local function note(what, ok, err)
        local kind = type(err) == "string" and "string" or (err and err:kind())
        out[#out + 1] = what .. "=" .. (ok and "ok" or (tostring(kind) .. ":" .. tostring(err)))
    end
    for _, way in ipairs({ "spawn", "spawn_linked", "spawn_monitored", "spawn_linked_monitored" }) do
        local pid, err = process[way](target, "test:host")
        note(way, pid, err)
    end
    local pid, err = process.with_context({ k = 1 }):spawn(target, "test:host")
    note("builder", pid, err)
    local v, err2 = process.exec(target, "test:host")
    note("exec", v == "b ran" or (v and tostring(v)), err2)
    local u = process.spawn("a:upgrader", "test:host", target, process.pid())
    local m = process.inbox():receive()
    note("upgrade", m:payload():data() == "b ran", m:payload():data())
    return table.concat(out, " ")
end"#;

/// Upgrades itself to `target`, then tells `parent` what it runs as.
const UPGRADER: &str = r#"return function(target, parent)
    local ok, err = process.upgrade(target, parent)
    process.send(parent, "as", "still a" .. (err and (" " .. err:kind()) or ""))
end"#;

fn app() -> App {
    App::new()
        .entry("a:atk", ATTACKER)
        .entry("a:upgrader", UPGRADER)
        .entry("b:store", STORE)
        .entry("a.sub:helper", STORE)
}

fn run(app: App, main: &str, target: &str) -> String {
    let v = app
        .run(main, vec![Value::str(target)])
        .expect("the attacker ends");
    v.as_str().expect("a string").to_owned()
}

#[test]
fn another_namespaces_entry_runs_by_no_way_without_the_grant() {
    for target in ["b:store", "b:missing"] {
        let got = run(app(), "a:atk", target);
        for way in [
            "spawn",
            "spawn_linked",
            "spawn_monitored",
            "spawn_linked_monitored",
            "builder",
            "exec",
        ] {
            let want = format!(
                "{way}=PermissionDenied:process.spawn on '{target}' is not granted to this entry or its host"
            );
            assert!(got.contains(&want), "{target} {way}: {got}");
        }
        assert!(
            got.contains("upgrade=string:still a PermissionDenied"),
            "{target}: {got}"
        );
        assert!(!got.contains("=ok"), "{target}: {got}");
    }
}

#[test]
fn a_namespace_runs_its_own_and_nested_entries_and_granted_ones() {
    // Nested: no grant needed.
    let got = run(app(), "a:atk", "a.sub:helper");
    assert!(!got.contains("DENIED"), "{got}");
    assert!(got.contains("exec=ok"), "{got}");
    // Another namespace, granted to the entry.
    let granted = app().granted(
        "a:trusted",
        ATTACKER,
        grants(&[("process.spawn", "b:store")]),
    );
    let got = run(granted, "a:trusted", "b:store");
    assert!(got.contains("spawn=ok") && got.contains("exec=ok"), "{got}");
    // The grant names one entry: another of the same namespace stays out.
    let granted = app()
        .granted(
            "a:trusted",
            ATTACKER,
            grants(&[("process.spawn", "b:store")]),
        )
        .entry("b:other", STORE);
    let got = run(granted, "a:trusted", "b:other");
    assert!(got.contains("exec=PermissionDenied"), "{got}");
}

#[test]
fn an_upgraded_process_spawns_as_its_new_entry() {
    // A process of `a` upgrades into `a.sub:spawner` (nested: allowed) and
    // from then on runs as `a.sub`, which may not run `a:` entries (a
    // parent namespace): the core follows the upgrade.
    const SPAWNER: &str = r#"return function(parent)
        local pid, err = process.spawn("a:upgrader", "test:host")
        process.send(parent, "r", err and err:kind() or "ok")
    end"#;
    const START: &str = r#"return function()
        process.spawn("a:up", "test:host", process.pid())
        return process.inbox():receive():payload():data()
    end"#;
    const UP: &str = r#"return function(parent)
        local ok, err = process.upgrade("a.sub:spawner", parent)
        process.send(parent, "r", "upgrade failed: " .. tostring(err))
    end"#;
    let v = app()
        .entry("a.sub:spawner", SPAWNER)
        .entry("a:start", START)
        .entry("a:up", UP)
        .run("a:start", vec![])
        .expect("ends");
    assert_eq!(v, Value::str("PermissionDenied"));
}

#[test]
fn a_component_runs_another_namespaces_entry_only_with_the_grant() {
    // `hostile`'s "spawn-on" mode spawns `entry` on `host` and answers
    // "<kind>:0" or "ok:1"; from namespace `w`, `b:store` is foreign.
    const DRIVER: &str = r#"return function(target)
        return process.exec("w:hostile", "test:host", "spawn-on", target, "test:host")
    end"#;
    let app = || {
        App::new()
            .component("w:hostile", "hostile")
            .entry("b:store", STORE)
            .entry("w:store", STORE)
            .entry("w:driver", DRIVER)
    };
    let foreign = app().run("w:driver", vec![Value::str("b:store")]);
    assert_eq!(foreign.expect("ends"), Value::str("PermissionDenied:0"));
    let own = app().run("w:driver", vec![Value::str("w:store")]);
    assert_eq!(own.expect("ends"), Value::str("ok:1"));
}

//! Operations that name a process of another tenant (class 7 of the
//! security model). The attacker's host may reach no other host
//! (`allow_hosts: []`); a process on `test:other` holds the name `svc`.
//! Every operation that names that process — by pid or by its name —
//! passes the one reach check and fails with `PERMISSION_DENIED` naming
//! the operation and both hosts: monitoring it (whose EXIT would carry its
//! result), registering a name for it, looking its name up, sending,
//! linking, cancelling, terminating, exec.

use std::time::{Duration, Instant};

use warren_core::{Runtime, SpawnRequest};
use warren_tests::OTHER_HOST;

use crate::harness::{app, attack_on, s};

/// Holds the name `svc` on the other host and waits.
const NAMED: &str = r#"local time = require("time")
return function()
    assert(process.registry.register("svc"))
    while true do time.sleep("1h") end
end"#;

/// Starts `app` with the foreign `svc` process running and named; its pid.
fn with_foreign_name(app: warren_tests::App) -> (Runtime, String) {
    let runtime = app.entry("h:named", NAMED).start();
    let pid = runtime
        .spawn(SpawnRequest::new("h:named", OTHER_HOST, Vec::new()))
        .expect("spawn on the other host");
    let deadline = Instant::now() + Duration::from_secs(10);
    while runtime.lookup("svc").is_none() {
        assert!(Instant::now() < deadline, "svc never registered");
        std::thread::sleep(Duration::from_millis(1));
    }
    (runtime, pid.to_string())
}

/// Runs `attacker` with the foreign pid; returns its result as strings.
fn refusals(attacker: &str) -> Vec<String> {
    let (runtime, pid) = with_foreign_name(app().entry("h:attacker", attacker));
    let out = attack_on(&runtime, "h:attacker", vec![s(&pid)]);
    out.assert_neighbour_ticks();
    match out.exit {
        Ok(v) => warren_tests::strings(v),
        Err(e) => panic!("the attacker failed: {e}"),
    }
}

fn assert_denied(results: &[String]) {
    assert!(!results.is_empty());
    for r in results {
        assert!(r.starts_with("PermissionDenied: "), "{results:?}");
        assert!(
            r.contains("'test:host'") && r.contains("'test:other'"),
            "{r}"
        );
    }
}

#[test]
fn monitoring_a_foreign_process_is_denied() {
    let results = refusals(
        r#"return function(victim)
            local _, e1 = process.monitor(victim)
            local p2, e2 = process.spawn_monitored("h:named", "test:other")
            local r3, e3 = process.exec("h:named", "test:other")
            return { e1:kind() .. ": " .. e1:message(), e2:kind() .. ": " .. e2:message(),
                e3:kind() .. ": " .. e3:message() }
        end"#,
    );
    assert_denied(&results);
    assert!(results[0].contains("monitor"), "{results:?}");
}

#[test]
fn registering_a_name_for_a_foreign_pid_is_denied() {
    let results = refusals(
        r#"return function(victim)
            local _, e1 = process.registry.register("taken", victim)
            local _, e2 = process.registry.register("svc", victim)
            return { e1:kind() .. ": " .. e1:message(), e2:kind() .. ": " .. e2:message() }
        end"#,
    );
    assert_denied(&results);
}

#[test]
fn a_foreign_name_can_be_neither_looked_up_nor_used() {
    let results = refusals(
        r#"return function(victim)
            local pid, e1 = process.registry.lookup("svc")
            assert(pid == nil, "the foreign pid leaked: " .. tostring(pid))
            local _, e2 = process.send("svc", "hi", 1)
            local _, e3 = process.cancel("svc", "stop")
            local _, e4 = process.terminate("svc")
            local _, e5 = process.link("svc")
            return { e1:kind() .. ": " .. e1:message(), e2:kind() .. ": " .. e2:message(),
                e3:kind() .. ": " .. e3:message(), e4:kind() .. ": " .. e4:message(),
                e5:kind() .. ": " .. e5:message() }
        end"#,
    );
    assert_denied(&results);
    assert!(results[0].contains("look up"), "{results:?}");
}

#[test]
fn a_component_cannot_reach_a_foreign_name_either() {
    let attacker = r#"return function()
        local a = process.exec("h:hostile", "test:host", "send-to", "svc")
        local b = process.exec("h:hostile", "test:host", "terminate", "svc")
        return a .. "," .. b
    end"#;
    let app = app()
        .component("h:hostile", "hostile")
        .entry("h:attacker", attacker);
    let (runtime, pid) = with_foreign_name(app);
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    assert_eq!(out.value(), "PermissionDenied:0,PermissionDenied:0");
    out.assert_neighbour_ticks();
    let still = runtime.lookup("svc").map(|p| p.to_string());
    assert_eq!(still, Some(pid), "the foreign process was reached");
}

#[test]
fn a_refusal_by_name_does_not_tell_the_holders_pid() {
    let attacker = r#"return function()
        local out = {}
        for _, op in ipairs({ "send", "cancel", "terminate", "link", "monitor" }) do
            local _, e
            if op == "send" then _, e = process.send("svc", "t", 1) else _, e = process[op]("svc") end
            out[#out + 1] = e:kind() .. ": " .. e:message()
        end
        return out
    end"#;
    let (runtime, pid) = with_foreign_name(app().entry("h:attacker", attacker));
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    out.assert_neighbour_ticks();
    let results = warren_tests::strings(out.exit.expect("the attacker ran"));
    assert_denied(&results);
    for r in &results {
        assert!(!r.contains(&pid), "{pid} leaked in {r}");
        assert!(r.contains("\"svc\""), "{r}");
    }
}

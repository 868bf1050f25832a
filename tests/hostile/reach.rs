//! Operations that name a process of another tenant (class 7 of the
//! security model). The attacker's host may reach no other host
//! (`allow_hosts: []`); a process on `test:other` holds the name `svc`.
//! Every operation that names that process by pid passes the one reach
//! check and fails with `PERMISSION_DENIED` naming the operation and both
//! hosts: monitoring it (whose EXIT would carry its result), registering a
//! name for it, sending, linking, cancelling, terminating, exec. By its
//! name, the process is not there at all: every operation answers exactly
//! as for a name nobody holds (`NOT_FOUND`, a lookup `nil`), so a tenant
//! cannot learn which names another holds, or on which host.

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

/// Asserts every answer is the one a free name `svc` gets, and that none
/// names the other host.
fn assert_hidden(results: &[String]) {
    assert!(!results.is_empty());
    for r in results {
        assert_eq!(
            r, "NotFound: no process is registered as \"svc\"",
            "{results:?}"
        );
        assert!(!r.contains(OTHER_HOST), "{r}");
    }
}

/// Every operation on `name` (lookup first: `nil` and its error), one
/// answer each, as `Kind: message`.
const BY_NAME: &str = r#"local function answers(name)
    local out = {}
    local pid, e = process.registry.lookup(name)
    out[1] = "lookup: " .. tostring(pid) .. " " .. (tostring(e):gsub(name, "NAME"))
    local _, e2 = process.send(name, "hi", 1)
    local _, e3 = process.cancel(name, "stop")
    local _, e4 = process.terminate(name)
    local _, e5 = process.link(name)
    local _, e6 = process.monitor(name)
    for _, err in ipairs({ e2, e3, e4, e5, e6 }) do
        out[#out + 1] = err:kind() .. ": " .. (err:message():gsub(name, "NAME"))
    end
    return out
end
"#;

#[test]
fn a_foreign_name_reads_exactly_as_a_free_one() {
    // The oracle this closes: a held name answered PERMISSION_DENIED
    // naming the holder's host, a free one NOT_FOUND.
    let results = refusals(&format!(
        "{BY_NAME}return function(victim)
            local held, free = answers(\"svc\"), answers(\"nosuch\")
            local out = {{}}
            for i = 1, #held do out[i] = held[i] .. \" | \" .. free[i] end
            return out
        end"
    ));
    assert_eq!(results.len(), 6, "{results:?}");
    let lookup = "lookup: nil no process is registered as \"NAME\"";
    assert_eq!(results[0], format!("{lookup} | {lookup}"));
    for r in &results[1..] {
        let (held, free) = r.split_once(" | ").expect("two answers");
        assert_eq!(
            held, free,
            "a held foreign name reads differently from a free one"
        );
        assert!(held.starts_with("NotFound: "), "{r}");
        assert!(!held.contains(OTHER_HOST), "{r}");
    }
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
    // As for a name nobody holds.
    assert_eq!(out.value(), "NotFound:0,NotFound:0");
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
    assert_hidden(&results);
    for r in &results {
        assert!(!r.contains(&pid), "{pid} leaked in {r}");
    }
}

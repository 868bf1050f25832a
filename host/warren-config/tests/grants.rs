//! `grants:` of Lua process entries and hosts (modules.md, "Grants"):
//! parsed into `warren_core::grants::Grants`, and every problem named by
//! file, entry and key (`grants.<action>`).

use std::path::{Path, PathBuf};

use warren_config::{App, ConfigError};

const MODULES: [&str; 2] = ["json", "time"];

/// An app of one `_index.yaml` (namespace `app`) with `entries` and `main.lua`.
fn load(name: &str, entries: &str) -> (PathBuf, Result<App, Vec<ConfigError>>) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("warren-config-grants")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let index = format!("version: \"1.0\"\nnamespace: app\nentries:\n{entries}");
    std::fs::write(dir.join("_index.yaml"), index).expect("write");
    std::fs::write(dir.join("main.lua"), "return { main = function() end }").expect("write");
    let result = App::load(&dir, &MODULES);
    (dir, result)
}

/// The single problem of a failed load, as printed; it names the file.
fn problem(name: &str, entries: &str) -> String {
    let (dir, result) = load(name, entries);
    let problems = result.expect_err("the load fails");
    assert_eq!(problems.len(), 1, "{problems:?}");
    let text = problems[0].to_string();
    let file = dir.join("_index.yaml");
    assert!(text.contains(&file.display().to_string()), "{text}");
    text
}

fn assert_mentions(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "missing {needle:?} in: {text}");
    }
}

fn process(grants: &str) -> String {
    format!(
        "  - name: main\n    kind: process.lua\n    source: file://main.lua\n    grants:\n{grants}"
    )
}

#[test]
fn grants_of_processes_and_hosts_load() {
    let entries = r#"
  - name: main
    kind: process.lua
    source: file://main.lua
    method: main
    grants:
      env.get: [DATABASE_URL, "APP_*"]
      db.get: ["app.db:*"]
      http_client.request: ["https://api.stripe.com", "*.example.org:8443/v1/"]
      http_client.private_ip: ["10.20.0.0/16"]
  - name: processes
    kind: process.host
    grants:
      http_client.request: ["https://telemetry.example.net"]
  - name: terminal
    kind: terminal.host
    grants: { env.get: ["*"] }
  - name: plain
    kind: process.lua
    source: file://main.lua
"#;
    let (_, result) = load("ok", entries);
    let app = result.expect("loads");
    let main = app
        .lua_entries()
        .find(|(id, _)| *id == "app:main")
        .map(|(_, e)| e)
        .expect("app:main");
    assert!(main.grants.allows("env.get", "DATABASE_URL"));
    assert!(main.grants.allows("env.get", "APP_MODE"));
    assert!(!main.grants.allows("env.get", "HOME"));
    assert!(main.grants.allows("db.get", "app.db:main"));
    assert!(
        main.grants
            .allows("http_client.request", "https://api.stripe.com/v1/charges")
    );
    assert!(
        main.grants
            .allows("http_client.request", "https://a.example.org:8443/v1/x")
    );
    assert!(main.grants.allows("http_client.private_ip", "10.20.1.1"));
    let hosts: Vec<_> = app.hosts().collect();
    let (_, processes) = hosts
        .iter()
        .find(|(id, _)| *id == "app:processes")
        .expect("host");
    assert!(
        processes
            .grants
            .allows("http_client.request", "https://telemetry.example.net")
    );
    let (_, terminal) = hosts
        .iter()
        .find(|(id, _)| *id == "app:terminal")
        .expect("terminal");
    assert!(terminal.grants.allows("env.get", "ANYTHING"));
    let plain = app
        .lua_entries()
        .find(|(id, _)| *id == "app:plain")
        .map(|(_, e)| e)
        .expect("app:plain");
    assert!(plain.grants.is_empty());
    let union = main.grants.union(&processes.grants);
    assert!(union.allows("http_client.request", "https://telemetry.example.net"));
    assert!(union.allows("env.get", "DATABASE_URL"));
}

#[test]
fn an_unknown_action_names_its_key() {
    let text = problem("unknown-action", &process("      db.read: [\"x:y\"]\n"));
    assert_mentions(
        &text,
        &[
            "entry 'app:main'",
            "key 'grants.db.read'",
            "unknown action 'db.read'",
            "db.get",
        ],
    );
}

#[test]
fn a_pattern_that_is_not_a_string_names_its_key() {
    let text = problem("not-string", &process("      env.get: [APP_MODE, 5]\n"));
    assert_mentions(
        &text,
        &[
            "entry 'app:main'",
            "key 'grants.env.get'",
            "pattern 2 is number 5, not a string",
        ],
    );
    let text = problem("not-list", &process("      env.get: APP_MODE\n"));
    assert_mentions(&text, &["key 'grants.env.get'", "expected a list"]);
    let text = problem(
        "not-map",
        "  - name: main\n    kind: process.lua\n    source: file://main.lua\n    grants: [db.get]\n",
    );
    assert_mentions(&text, &["key 'grants'", "expected a map"]);
}

#[test]
fn a_bad_pattern_names_its_key() {
    let text = problem(
        "bad-destination",
        &process("      http_client.request: [\"ftp://x.org\"]\n"),
    );
    assert_mentions(
        &text,
        &["key 'grants.http_client.request'", "not http or https"],
    );
    let text = problem(
        "bad-ip",
        &process("      http_client.private_ip: [example.org]\n"),
    );
    assert_mentions(&text, &["key 'grants.http_client.private_ip'", "CIDR"]);
    let long = "x".repeat(warren_core::grants::MAX_PATTERN_LEN + 1);
    let text = problem(
        "too-long",
        &process(&format!("      funcs.call: [\"{long}\"]\n")),
    );
    assert_mentions(&text, &["key 'grants.funcs.call'", "longer than the limit"]);
}

#[test]
fn host_grants_are_checked_too() {
    let text = problem(
        "host-action",
        "  - name: h\n    kind: process.host\n    grants: { fs.write: [\"*\"] }\n",
    );
    assert_mentions(
        &text,
        &["entry 'app:h'", "key 'grants.fs.write'", "unknown action"],
    );
    let text = problem(
        "terminal-action",
        "  - name: t\n    kind: terminal.host\n    grants: { db.get: [{a: b}] }\n",
    );
    assert_mentions(&text, &["entry 'app:t'", "key 'grants.db.get'", "a map"]);
}

#[test]
fn a_granted_entry_id_must_exist() {
    let text = problem("no-db", &process("      db.get: [\"app.db:main\"]\n"));
    assert_mentions(
        &text,
        &[
            "entry 'app:main'",
            "key 'grants.db.get'",
            "no entry 'app.db:main'",
            "db.sql.sqlite or db.sql.postgres",
        ],
    );
    let text = problem(
        "no-function",
        "  - name: h\n    kind: process.host\n    grants: { funcs.call: [\"other:get_user\"] }\n",
    );
    assert_mentions(
        &text,
        &[
            "entry 'app:h'",
            "key 'grants.funcs.call'",
            "no entry 'other:get_user'",
        ],
    );
    let text = problem("no-volume", &process("      fs.get: [app:uploads]\n"));
    assert_mentions(&text, &["key 'grants.fs.get'", "no entry 'app:uploads'"]);
    let text = problem("no-variable", &process("      env.set: [\"app.env:db\"]\n"));
    assert_mentions(&text, &["key 'grants.env.set'", "no entry 'app.env:db'"]);
}

#[test]
fn a_granted_entry_id_must_be_of_the_right_kind() {
    let entries = process("      db.get: [\"app:other\"]\n")
        + "  - name: other\n    kind: process.lua\n    source: file://main.lua\n";
    let text = problem("wrong-kind", &entries);
    assert_mentions(
        &text,
        &[
            "entry 'app:main'",
            "key 'grants.db.get'",
            "'app:other' is a process.lua entry",
            "not a db.sql.sqlite or db.sql.postgres entry",
        ],
    );
    let entries = process("      funcs.call: [\"app:main\"]\n");
    let text = problem("wrong-kind-self", &entries);
    assert_mentions(
        &text,
        &["'app:main' is a process.lua entry", "function.lua"],
    );
}

#[test]
fn globs_and_public_names_are_not_checked() {
    let entries = process(
        "      db.get: [\"*\", \"nowhere:*\"]\n      env.get: [DATABASE_URL]\n      \
         funcs.call: [\"other:*\"]\n      http_client.unix_socket: [/run/x.sock]\n",
    );
    let (_, result) = load("globs", &entries);
    result.expect("loads");
}

#[test]
fn every_problem_is_reported() {
    let entries = process("      db.get: [\"app.db:a\", \"app.db:b\"]\n")
        + "  - name: h\n    kind: process.host\n    grants: { fs.get: [\"app:v\"] }\n";
    let (_, result) = load("several", &entries);
    let problems = result.expect_err("fails");
    assert_eq!(problems.len(), 3, "{problems:?}");
}

#[test]
fn a_library_has_no_grants() {
    let text = problem(
        "library",
        "  - name: lib\n    kind: library.lua\n    source: file://main.lua\n    grants: { db.get: [\"*\"] }\n",
    );
    assert_mentions(&text, &["entry 'app:lib'", "key 'grants'", "unknown key"]);
}

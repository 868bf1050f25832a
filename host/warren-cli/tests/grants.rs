//! Grants on the command line (`warren run script.lua --grant ACTION=PATTERN`)
//! and in `warren check` (modules.md, "Grants").

mod common;

use common::{app, stderr, warren};

const SCRIPT: &str = "return function(a) print('arg', a) end";

fn script(name: &str) -> String {
    app(name, &[("s.lua", SCRIPT)])
        .join("s.lua")
        .display()
        .to_string()
}

fn assert_bad_input(out: &std::process::Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn a_script_runs_with_repeated_grants() {
    let s = script("grant-ok");
    let out = warren(&[
        "run",
        "--grant",
        "env.get=APP_*",
        &s,
        "--grant=http_client.request=https://api.example.com/v1/",
        "--grant",
        "db.get=app.db:main",
        "x",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("arg\tx"), "{err}");
}

#[test]
fn an_unknown_action_is_bad_input_naming_it() {
    let s = script("grant-action");
    let out = warren(&["run", &s, "--grant", "db.read=app.db:main"]);
    assert_bad_input(
        &out,
        &[
            "--grant \"db.read=app.db:main\"",
            "unknown action 'db.read'",
        ],
    );
}

#[test]
fn a_malformed_grant_is_bad_input() {
    let s = script("grant-malformed");
    let out = warren(&["run", &s, "--grant", "env.get"]);
    assert_bad_input(&out, &["--grant \"env.get\"", "expected ACTION=PATTERN"]);
    let out = warren(&["run", &s, "--grant", "http_client.request=gopher://x.org"]);
    assert_bad_input(&out, &["http_client.request", "not http or https"]);
    let out = warren(&["run", &s, "--grant", "env.get="]);
    assert_bad_input(&out, &["must not be empty"]);
}

#[test]
fn grants_go_with_a_script_only() {
    let dir = app(
        "grant-app",
        &[
            (
                "_index.yaml",
                "version: \"1.0\"\nnamespace: app\nentries:\n  - name: main\n    kind: process.lua\n    source: file://main.lua\n",
            ),
            ("main.lua", SCRIPT),
        ],
    );
    let out = warren(&[
        "run",
        &dir.display().to_string(),
        "-x",
        "app:main",
        "--grant",
        "env.get=*",
    ]);
    assert_bad_input(&out, &["--grant goes with a .lua script"]);
}

const INDEX: &str = r#"version: "1.0"
namespace: app
entries:
  - name: main
    kind: process.lua
    source: file://main.lua
    grants:
      db.get: ["app.db:main"]
      funcs.call: ["app:other"]
      env.get: [DATABASE_URL, "app.env:*"]
  - name: other
    kind: process.lua
    source: file://main.lua
  - name: processes
    kind: process.host
    grants:
      http_client.request: ["https://telemetry.example.net"]
      fs.get: ["app:uploads"]
"#;

#[test]
fn check_reports_grant_problems_with_file_entry_and_key() {
    let dir = app(
        "grant-check",
        &[("_index.yaml", INDEX), ("main.lua", SCRIPT)],
    );
    let out = warren(&["check", &dir.display().to_string()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let file = dir.join("_index.yaml").display().to_string();
    for needle in [
        "entry 'app:main': key 'grants.db.get': no entry 'app.db:main'",
        "entry 'app:main': key 'grants.funcs.call': 'app:other' is a process.lua entry, not a function.lua entry",
        "entry 'app:processes': key 'grants.fs.get': no entry 'app:uploads'",
        "3 problem(s)",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert_eq!(err.matches(&file).count(), 3, "{err}");
    assert!(
        !err.contains("DATABASE_URL"),
        "a public name is not an id: {err}"
    );
}

#[test]
fn check_reports_an_unknown_action() {
    let index = INDEX.replace("db.get:", "db.open:");
    let dir = app(
        "grant-check-action",
        &[("_index.yaml", &index), ("main.lua", SCRIPT)],
    );
    let out = warren(&["check", &dir.display().to_string()]);
    assert_bad_input(
        &out,
        &["entry 'app:main': key 'grants.db.open': unknown action 'db.open'"],
    );
}

#[test]
fn check_accepts_grants_that_name_no_entry() {
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: main
    kind: process.lua
    source: file://main.lua
    grants:
      db.get: ["app.db:*"]
      env.get: [DATABASE_URL]
      http_client.request: ["*.example.org:8443/v1/"]
      http_client.private_ip: ["10.20.0.0/16"]
  - name: term
    kind: terminal.host
    grants: { http_client.unix_socket: ["/run/*.sock"] }
"#;
    let dir = app(
        "grant-check-ok",
        &[("_index.yaml", index), ("main.lua", SCRIPT)],
    );
    let out = warren(&["check", &dir.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = warren(&["run", &dir.display().to_string(), "-x", "app:main", "y"]);
    assert!(stderr(&out).contains("arg\ty"), "{}", stderr(&out));
}

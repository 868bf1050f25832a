//! Wippy-style applications through the `warren` binary: `-x` on the
//! terminal host after the services have started, libraries in `check`,
//! and configuration errors that name their key.
//!
//! The tests marked "needs the Lua side" use `require(alias)` of a
//! library, the `io` module or the `registry` module, which the Lua
//! front-end provides.

mod common;

use common::{app, stderr, warren};

fn position(log: &str, needle: &str) -> usize {
    log.find(needle)
        .unwrap_or_else(|| panic!("missing {needle:?} in:\n{log}"))
}

fn run_x(dir: &std::path::Path, entry: &str) -> (Option<i32>, String) {
    let out = warren(&["run", &dir.display().to_string(), "-x", entry]);
    (out.status.code(), stderr(&out))
}

/// A terminal host, a process host and a main entry printing `ran`.
const TWO_HOSTS: &str = r#"version: "1.0"
namespace: app
entries:
  - name: terminal
    kind: terminal.host
    lifecycle: { auto_start: true }
  - name: processes
    kind: process.host
    lifecycle: { auto_start: true }
  - name: main
    kind: process.lua
    source: file://main.lua
    method: main
"#;

const MAIN: &str = "return { main = function() print('main ran') end }";

#[test]
fn x_runs_the_entry_on_the_terminal_host_without_host() {
    let dir = app(
        "wx-terminal",
        &[("_index.yaml", TWO_HOSTS), ("main.lua", MAIN)],
    );
    let (status, log) = run_x(&dir, "app:main");
    assert_eq!(status, Some(0), "{log}");
    // Hosts are numbered in id order: app:processes 0, app:terminal 1.
    let line = log
        .lines()
        .find(|l| l.contains("main ran"))
        .unwrap_or_else(|| panic!("no output in:\n{log}"));
    assert!(line.contains("pid=<1."), "ran on the terminal host: {line}");
}

#[test]
fn x_with_two_terminal_hosts_asks_for_host() {
    let index = format!("{TWO_HOSTS}  - name: other\n    kind: terminal.host\n");
    let dir = app("wx-twoterm", &[("_index.yaml", &index), ("main.lua", MAIN)]);
    let (status, log) = run_x(&dir, "app:main");
    assert_eq!(status, Some(2), "{log}");
    assert!(
        log.contains(
            "error: several terminal hosts (app:other, app:terminal): choose one with --host"
        ),
        "{log}"
    );
    let out = warren(&[
        "run",
        &dir.display().to_string(),
        "-x",
        "app:main",
        "--host",
        "app:processes",
    ]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("main ran") && log.contains("pid=<1."), "{log}");
}

const SERVICE: &str = r#"return function()
    print("service up")
    local events = process.events()
    while true do
        local ev = events:receive()
        if ev.kind == process.event.CANCEL then return "bye" end
    end
end"#;

const STUBBORN: &str = r#"return function()
    local events = process.events()
    while true do events:receive() end -- ignores CANCEL
end"#;

fn with_services(name: &str, main: &str) -> std::path::PathBuf {
    let index = format!(
        r#"{TWO_HOSTS}  - name: svc_proc
    kind: process.lua
    source: file://svc.lua
  - name: stubborn_proc
    kind: process.lua
    source: file://stubborn.lua
  - name: svc
    kind: process.service
    process: app:svc_proc
    host: app:processes
    lifecycle: {{ auto_start: true }}
  - name: stubborn
    kind: process.service
    process: app:stubborn_proc
    host: app:processes
    lifecycle: {{ auto_start: true, requires: [app:svc], stop_timeout: 200ms, startup: optional }}
  - name: manual
    kind: process.service
    process: app:svc_proc
    host: app:processes
    lifecycle: {{ auto_start: false }}
"#
    );
    app(
        name,
        &[
            ("_index.yaml", &index),
            ("main.lua", main),
            ("svc.lua", SERVICE),
            ("stubborn.lua", STUBBORN),
        ],
    )
}

#[test]
fn x_starts_the_services_first_and_stops_them_after_the_entry() {
    let dir = with_services("wx-services", MAIN);
    let (status, log) = run_x(&dir, "app:main");
    assert_eq!(status, Some(0), "the entry's outcome:\n{log}");
    let svc = position(&log, "started service=app:svc");
    let stubborn = position(&log, "started service=app:stubborn");
    let main = position(&log, "main ran");
    assert!(svc < main && stubborn < main, "services first:\n{log}");
    assert!(
        !log.contains("service=app:manual"),
        "not auto-started:\n{log}"
    );
    // After the entry: stopped in reverse dependency order; the stubborn
    // one is terminated after its stop_timeout, which is only a warning.
    let stubborn_stopped = position(&log, "terminated service=app:stubborn");
    let svc_stopped = position(&log, "stopping -> stopped: stopped service=app:svc");
    assert!(
        main < stubborn_stopped && stubborn_stopped < svc_stopped,
        "{log}"
    );
    assert!(
        log.contains("services: some services ignored CANCEL"),
        "{log}"
    );
}

#[test]
fn x_exits_with_the_entry_failure_while_services_run() {
    let dir = with_services(
        "wx-fails",
        "return { main = function() error('entry broke') end }",
    );
    let (status, log) = run_x(&dir, "app:main");
    assert_eq!(status, Some(1), "{log}");
    assert!(
        log.contains("entry broke") && log.contains("entry app:main"),
        "{log}"
    );
    assert!(log.contains("started service=app:svc"), "{log}");
}

#[test]
fn x_runs_an_entry_on_the_terminal_host_beside_a_service_on_it() {
    let index = format!(
        r#"{TWO_HOSTS}  - name: svc_proc
    kind: process.lua
    source: file://svc.lua
  - name: svc
    kind: process.service
    process: app:svc_proc
    host: app:terminal
"#
    );
    let dir = app(
        "wx-termsvc",
        &[
            ("_index.yaml", &index),
            ("main.lua", MAIN),
            ("svc.lua", SERVICE),
        ],
    );
    let (status, log) = run_x(&dir, "app:main");
    assert_eq!(status, Some(0), "{log}");
    assert!(
        log.contains("service up") && log.contains("main ran"),
        "{log}"
    );
    assert!(log.contains("started service=app:svc"), "{log}");
}

const LIBRARY_APP: &str = r#"version: "1.0"
namespace: app
entries:
  - name: main
    kind: process.lua
    source: file://main.lua
    modules: [json]
    imports: { util: app:util, time: app:base }
  - name: util
    kind: library.lua
    source: file://util.lua
    imports: { base: app:base }
  - name: base
    kind: library.lua
    source: file://base.lua
"#;

#[test]
fn check_compiles_libraries_and_checks_their_requires() {
    let dir = app(
        "wcheck-libs",
        &[
            ("_index.yaml", LIBRARY_APP),
            // `time` is an import alias here, not an unlisted module.
            (
                "main.lua",
                "local t = require('time')\nreturn { main = function() end }",
            ),
            ("util.lua", "local json = require('json')\nreturn {}"),
            ("base.lua", "return { broken = function( }"),
        ],
    );
    let out = warren(&["check", &dir.display().to_string()]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("entry 'app:base':") && log.contains("base.lua:1:"),
        "{log}"
    );
    assert!(
        log.contains("util.lua:1: require(\"json\") but module 'json' is not in its modules list"),
        "{log}"
    );
    assert!(!log.contains("require(\"time\")"), "{log}");
    assert!(log.contains("2 problem(s)"), "{log}");
}

#[test]
fn check_accepts_a_wippy_application() {
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: terminal
    kind: terminal.host
    hide_logs: false
    lifecycle: { auto_start: true }
  - name: tool
    kind: library.lua
    source: file://tool.lua
    meta: { type: tool, title: Tool }
  - name: main
    kind: process.lua
    source: file://main.lua
    method: main
    modules: [json]
    imports: { tool: app:tool }
"#;
    let dir = app(
        "wcheck-ok",
        &[
            ("_index.yaml", index),
            ("tool.lua", "return { name = 'tool' }"),
            (
                "main.lua",
                "local tool = require('tool')\nreturn { main = function() end }",
            ),
        ],
    );
    let out = warren(&["check", &dir.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: 3 entries"));
}

#[test]
fn configuration_errors_name_their_key() {
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: host
    kind: process.host
  - name: main
    kind: process.lua
    source: file://main.lua
  - name: svc
    kind: process.service
    process: app:main
    host: app:host
    lifecycle: { start_timeout: 5 }
  - name: lib
    kind: library.lua
    source: file://main.lua
    method: main
  - name: other
    kind: process.service
    process: app:main
    host: app:host
    lifecycle: { startup: maybe }
"#;
    let dir = app("wcheck-keys", &[("_index.yaml", index), ("main.lua", MAIN)]);
    let out = warren(&["check", &dir.display().to_string()]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    for needle in [
        "entry 'app:svc': key 'lifecycle.start_timeout': 5 is not a duration",
        "entry 'app:lib': key 'method': a library.lua entry has no method",
        "entry 'app:other': key 'lifecycle.startup': unknown startup mode 'maybe'",
    ] {
        assert!(log.contains(needle), "missing {needle:?} in:\n{log}");
    }
}

// ---- These need the Lua side (imports, `io`, `registry`). ----

#[test]
fn x_runs_an_entry_that_requires_its_libraries() {
    let dir = app(
        "wx-libs",
        &[
            ("_index.yaml", LIBRARY_APP),
            (
                "main.lua",
                "local util = require('util')\nlocal base = require('time')\n\
                 return { main = function() print('sum ' .. util.add(2, 3) .. ' ' .. base.name) end }",
            ),
            (
                "util.lua",
                "local base = require('base')\nreturn { add = function(a, b) return base.plus(a, b) end }",
            ),
            (
                "base.lua",
                "return { name = 'base', plus = function(a, b) return a + b end }",
            ),
        ],
    );
    let (status, log) = run_x(&dir, "app:main");
    assert_eq!(status, Some(0), "{log}");
    assert!(log.contains("sum 5 base"), "{log}");
}

#[test]
fn the_hello_world_example_prints_on_stdout() {
    let index = r#"version: "1.0"
namespace: app

entries:
  - name: terminal
    kind: terminal.host
    lifecycle:
      auto_start: true

  - name: hello
    kind: process.lua
    source: file://hello.lua
    method: main
    modules:
      - io
"#;
    let hello = "local io = require(\"io\")\n\
        local function main()\n    io.print(\"Hello from Wippy!\")\n    return 0\nend\n\
        return { main = main }\n";
    let dir = app("wx-hello", &[("_index.yaml", index), ("hello.lua", hello)]);
    let out = warren(&["run", &dir.display().to_string(), "-x", "app:hello"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello from Wippy!\n");
}

#[test]
fn the_registry_shows_meta_and_data() {
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: main
    kind: process.lua
    source: file://main.lua
    method: main
    modules: [registry]
    meta: { command: { name: main } }
"#;
    let main = "local registry = require('registry')\n\
        return { main = function()\n\
            local e = assert(registry.get('app:main'))\n\
            print('meta ' .. e.meta.command.name .. ' data ' .. e.data.method)\n\
        end }";
    let dir = app("wx-registry", &[("_index.yaml", index), ("main.lua", main)]);
    let (status, log) = run_x(&dir, "app:main");
    assert_eq!(status, Some(0), "{log}");
    assert!(log.contains("meta main data main"), "{log}");
}

#[test]
fn x_exits_with_the_integer_the_entry_returns_and_a_script_does_not() {
    // Wippy's `run --exec` propagates the entry's integer result as the
    // exit status; anything else (or 0) is success.
    for (body, want) in [
        ("return 3", 3),
        ("return 0", 0),
        ("return 'done'", 0),
        ("return 300", 0),
    ] {
        let main = format!("return {{ main = function() {body} end }}");
        let dir = app(
            "wx-status",
            &[("_index.yaml", TWO_HOSTS), ("main.lua", &main)],
        );
        let (status, log) = run_x(&dir, "app:main");
        assert_eq!(status, Some(want), "{body}: {log}");
        assert!(
            !log.contains("error:"),
            "a returned status is not an error: {log}"
        );
    }
    // A script's return value is its result, not a status.
    let dir = app("wx-script", &[("s.lua", "return function() return 3 end")]);
    let out = warren(&["run", &dir.join("s.lua").display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn processes_services_spawned_get_a_cancel_when_the_application_stops() {
    // The only service spawns a worker and ends; once no service runs, the
    // application stops, and the worker is cancelled (it can clean up)
    // instead of vanishing.
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: processes
    kind: process.host
  - name: worker
    kind: process.lua
    source: file://worker.lua
    method: main
  - name: starter
    kind: process.lua
    source: file://starter.lua
    method: main
  - name: starter.service
    kind: process.service
    process: app:starter
    host: app:processes
    lifecycle: { auto_start: true, restart: { max_attempts: 1 } }
"#;
    let worker = r#"return { main = function()
    local ev = process.events():receive()
    print("worker stopped by " .. ev.kind .. " (" .. tostring(ev.reason) .. ")")
end }"#;
    let starter = r#"return { main = function()
    process.spawn("app:worker", "app:processes")
    print("starter done")
end }"#;
    let dir = app(
        "wx-cancel-rest",
        &[
            ("_index.yaml", index),
            ("worker.lua", worker),
            ("starter.lua", starter),
        ],
    );
    let out = warren(&["run", &dir.display().to_string()]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("worker stopped by pid.cancel (shutdown)"),
        "{log}"
    );
}

#[test]
fn the_logger_module_writes_structured_lines_tagged_with_pid_name_and_location() {
    let script = r#"local logger = require("logger")
return function()
    logger:info("hello", { user = "ann", n = 3, ok = true, t = { a = 1 }, [1] = "dropped", e = errors.new("boom") })
    local svc = logger:named("svc"):with({ req = "r1" })
    svc:warn("careful", { n = 1.5 })
    logger.error("no colon", { x = 1 })
    logger:debug("hidden at info")
    local bad, err = logger:named("")
    assert(bad == nil and err:kind() == errors.INVALID)
    assert(not pcall(logger.with, logger, "not a table"))
    logger:named(("n"):rep(1 << 20)):info("long name")
end"#;
    let dir = app("logger", &[("s.lua", script)]);
    let out = warren(&["run", &dir.join("s.lua").display().to_string()]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{log}"))
            .to_owned()
    };
    let hello = line("hello");
    assert!(
        hello.contains("INFO")
            && hello.contains("e=boom n=3 ok=true t={\"a\":1} user=ann")
            && !hello.contains("dropped")
            && hello.contains("location=script:main:3")
            && hello.contains("pid=<0.1>"),
        "{hello}"
    );
    let careful = line("careful");
    assert!(
        careful.contains("WARN")
            && careful.contains("n=1.5 req=r1")
            && careful.contains("logger=svc"),
        "{careful}"
    );
    assert!(line("no colon").contains("ERROR"), "{log}");
    assert!(!log.contains("hidden at info"), "{log}");
    // A name is cut like a line: a 1 MiB one made a 1 MiB line of the
    // log every tenant shares.
    let long = line("long name");
    assert!(
        long.len() < 2048 && long.contains(&format!("logger={}...", "n".repeat(1024))),
        "{} bytes: {}",
        long.len(),
        &long[..200.min(long.len())]
    );
}

#[test]
fn a_host_flag_naming_no_host_is_refused_before_any_service_starts() {
    let dir = with_services("wx-badhost", MAIN);
    let long = "h".repeat(5_000);
    for (host, shown) in [
        ("app:nope", "'app:nope'".to_owned()),
        ("app:main", "'app:main'".to_owned()),
        (long.as_str(), format!("'{}...'", &long[..64])),
    ] {
        let out = warren(&[
            "run",
            &dir.display().to_string(),
            "-x",
            "app:main",
            "--host",
            host,
        ]);
        let log = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{log}");
        assert!(
            log.contains(&format!("--host: host {shown} not found in")),
            "{log}"
        );
        assert!(
            log.contains("its hosts: app:processes, app:terminal"),
            "{log}"
        );
        assert!(
            !log.contains("service up"),
            "a service started first: {log}"
        );
        assert!(
            log.len() < 2_000,
            "the name quoted in full: {} bytes",
            log.len()
        );
    }
}

//! Supervised services through the `warren` binary: restarts, the `services`
//! module, graceful shutdown on SIGTERM, and configuration errors.

mod common;

use common::{app, stderr, warren};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any one of these tests may wait for the binary.
const DEADLINE: Duration = Duration::from_secs(30);

/// A running `warren` whose log lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(["run", &dir.display().to_string()])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("warren starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing `needle`.
    fn wait_for(&mut self, needle: &str) {
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let found = line.contains(needle);
                self.seen.push(line);
                if found {
                    return;
                }
            }
        }
        panic!(
            "no log line with {needle:?}; saw:\n{}",
            self.seen.join("\n")
        );
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the exit; returns the status and the whole log.
    fn finish(mut self) -> (Option<i32>, String) {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return (status.code(), self.seen.join("\n"));
            }
            assert!(
                Instant::now() < end,
                "warren did not exit; log:\n{}",
                self.seen.join("\n")
            );
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn position(log: &str, needle: &str) -> usize {
    log.find(needle)
        .unwrap_or_else(|| panic!("missing {needle:?} in:\n{log}"))
}

#[test]
fn the_supervised_example_recovers_from_crashes_and_stops_cleanly() {
    let out = warren(&["run", "examples/supervised"]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("simulated crash on job 3") && log.contains("restart attempt 2"),
        "{log}"
    );
    assert!(log.contains("all 10 jobs done; cache[10] = 100"), "{log}");
    assert!(
        log.contains("service sup:worker       running  restarts=4"),
        "{log}"
    );
    // Stopped in reverse dependency order.
    let coordinator = position(&log, "stopping -> stopped: stopped service=sup:coordinator");
    let worker = position(&log, "stopping -> stopped: stopped service=sup:worker");
    let cache = position(&log, "stopping -> stopped: stopped service=sup:cache");
    assert!(coordinator < worker && worker < cache, "{log}");
}

const POLITE: &str = r#"return function()
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

fn shutdown_app(name: &str, stop_timeout: &str) -> PathBuf {
    let index = format!(
        r#"version: "1.0"
namespace: app
entries:
  - name: host
    kind: process.host
    host: {{ workers: 1 }}
  - name: polite
    kind: process.lua
    source: file://polite.lua
  - name: stubborn
    kind: process.lua
    source: file://stubborn.lua
  - name: db
    kind: process.service
    process: app:stubborn
    host: app:host
    lifecycle: {{ stop_timeout: {stop_timeout} }}
  - name: web
    kind: process.service
    process: app:polite
    host: app:host
    lifecycle: {{ requires: [app:db], stop_timeout: {stop_timeout} }}
"#
    );
    app(
        name,
        &[
            ("_index.yaml", &index),
            ("polite.lua", POLITE),
            ("stubborn.lua", STUBBORN),
        ],
    )
}

#[test]
fn sigterm_cancels_in_reverse_order_waits_then_terminates_what_ignores_cancel() {
    let dir = shutdown_app("graceful", "300ms");
    let mut run = Running::start(&dir);
    run.wait_for("running: process <0.2> started service=app:web");
    run.signal("-TERM");
    let (status, log) = run.finish();
    assert_eq!(status, Some(3), "something had to be terminated:\n{log}");
    let web_stopped = position(&log, "stopping -> stopped: stopped service=app:web");
    let db_cancelled = position(&log, "running -> stopping: stop requested service=app:db");
    assert!(
        web_stopped < db_cancelled,
        "db is stopped only after web:\n{log}"
    );
    assert!(
        log.contains("still running 300ms after CANCEL: terminated service=app:db"),
        "{log}"
    );
    assert!(
        log.contains("some services ignored CANCEL and had to be terminated"),
        "{log}"
    );
}

#[test]
fn a_second_interrupt_terminates_at_once() {
    let dir = shutdown_app("double", "60s");
    let mut run = Running::start(&dir);
    run.wait_for("started service=app:web");
    let started = Instant::now();
    run.signal("-INT");
    run.wait_for("stop requested service=app:db");
    run.signal("-INT");
    let (status, log) = run.finish();
    assert_eq!(status, Some(3), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "did not wait for the 60s stop timeout"
    );
    assert!(log.contains("terminating every service now"), "{log}");
}

#[test]
fn processes_steer_services_through_the_services_module() {
    let ctl = r#"local time = require("time")
local services = require("services")
return function()
    local s = assert(services.status("app:echo"))
    assert(s.state == "running" and s.restarts == 0, s.state)
    local first = s.pid
    assert(services.restart("app:echo"))
    local again
    for _ = 1, 200 do
        again = services.status("app:echo")
        if again.state == "running" and again.pid ~= first then break end
        time.sleep("10ms")
    end
    assert(again.pid ~= first, "restarted under a new pid")
    local missing, err = services.status("app:nope")
    assert(missing == nil and errors.is(err, errors.NOT_FOUND))
    local ok, err2 = services.stop("app:nope")
    assert(ok == nil and errors.is(err2, errors.NOT_FOUND))
    print("services module ok: " .. #services.list() .. " services")
    assert(services.stop("app:echo"))
    assert(services.stop("app:ctl"))
    process.events():receive()
end"#;
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: host
    kind: process.host
  - name: ctl_proc
    kind: process.lua
    source: file://ctl.lua
    modules: [time, services]
  - name: echo_proc
    kind: process.lua
    source: file://echo.lua
  - name: echo
    kind: process.service
    process: app:echo_proc
    host: app:host
  - name: ctl
    kind: process.service
    process: app:ctl_proc
    host: app:host
    lifecycle: { requires: [app:echo] }
"#;
    let dir = app(
        "servicesmod",
        &[
            ("_index.yaml", index),
            ("ctl.lua", ctl),
            ("echo.lua", POLITE),
        ],
    );
    let out = warren(&["run", &dir.display().to_string()]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("services module ok: 2 services"), "{log}");
}

#[test]
fn a_main_process_starts_a_service_that_does_not_start_with_the_application() {
    // Under -x with no service wanted at boot, the supervisor stopped at
    // once and `services.start` answered "the supervisor has stopped".
    let main = r#"local time = require("time")
local services = require("services")
return function()
    assert(services.start("app:lazy"))
    local s
    for _ = 1, 200 do
        s = services.status("app:lazy")
        if s.state == "running" then break end
        time.sleep("10ms")
    end
    print("lazy is " .. s.state)
    assert(services.stop("app:lazy"))
    for _ = 1, 200 do
        s = services.status("app:lazy")
        if s.state == "stopped" then break end
        time.sleep("10ms")
    end
    print("lazy is " .. s.state)
    assert(services.start("app:lazy"))
end"#;
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: host
    kind: process.host
  - name: main
    kind: process.lua
    source: file://main.lua
    modules: [time, services]
  - name: echo_proc
    kind: process.lua
    source: file://echo.lua
  - name: lazy
    kind: process.service
    process: app:echo_proc
    host: app:host
    lifecycle: { auto_start: false, stop_timeout: 5s }
"#;
    let dir = app(
        "lazyservice",
        &[
            ("_index.yaml", index),
            ("main.lua", main),
            ("echo.lua", POLITE),
        ],
    );
    let out = warren(&["run", &dir.display().to_string(), "-x", "app:main"]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let running = position(&log, "lazy is running");
    assert!(running < position(&log, "lazy is stopped"), "{log}");
}

#[test]
fn the_services_module_is_unavailable_without_a_supervisor() {
    let dir = app(
        "noservices",
        &[(
            "s.lua",
            r#"local services = require("services")
return function()
    local list, err = services.list()
    assert(list == nil and errors.is(err, errors.UNAVAILABLE))
    local ok, err2 = services.start("x")
    assert(ok == nil and errors.is(err2, errors.UNAVAILABLE))
end"#,
        )],
    );
    let out = warren(&["run", &dir.join("s.lua").display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn service_configuration_errors_name_the_entry_and_key() {
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: host
    kind: process.host
  - name: proc
    kind: process.lua
    source: file://p.lua
  - name: a
    kind: process.service
    process: app:proc
    host: app:host
    lifecycle: { requires: [app:b] }
  - name: b
    kind: process.service
    process: app:proc
    host: app:host
    lifecycle: { requires: [app:a] }
"#;
    let dir = app(
        "cycle",
        &[("_index.yaml", index), ("p.lua", "return function() end")],
    );
    let out = warren(&["check", &dir.display().to_string()]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains(
            "entry 'app:a': key 'lifecycle.requires': dependency cycle: app:a -> app:b -> app:a"
        ),
        "{log}"
    );

    let bad = r#"version: "1.0"
namespace: app
entries:
  - name: host
    kind: process.host
  - name: s1
    kind: process.service
    process: app:missing
    host: app:nohost
  - name: s2
    kind: process.service
    process: app:host
    host: app:host
    lifecycle: { restart: { strategy: one_for_some } }
  - name: s3
    kind: process.service
    process: app:host
    host: app:host
    lifecycle: { restart: { jitter: 2.0 }, stop_timeout: soon }
"#;
    let dir = app("badservices", &[("_index.yaml", bad)]);
    let out = warren(&["check", &dir.display().to_string()]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    for needle in [
        "entry 'app:s2': key 'lifecycle.restart.strategy': unknown strategy 'one_for_some'",
        "entry 'app:s3': key 'lifecycle.restart.jitter': 2 must be between 0 and 1",
    ] {
        assert!(log.contains(needle), "missing {needle:?} in:\n{log}");
    }
    let fixed = bad
        .replace("one_for_some", "one_for_all")
        .replace("jitter: 2.0", "jitter: 0.5")
        .replace("soon", "1s");
    let dir = app("badrefs", &[("_index.yaml", &fixed)]);
    let out = warren(&["check", &dir.display().to_string()]);
    let log = stderr(&out);
    for needle in [
        "entry 'app:s1': key 'process': 'app:missing' is not a process entry",
        "entry 'app:s1': key 'host': 'app:nohost' is not a process.host entry",
        "entry 'app:s2': key 'process': 'app:host' is not a process entry",
    ] {
        assert!(log.contains(needle), "missing {needle:?} in:\n{log}");
    }
}

#[test]
fn exceeding_the_restart_intensity_fails_the_application() {
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: host
    kind: process.host
  - name: crash
    kind: process.lua
    source: file://crash.lua
  - name: steady
    kind: process.lua
    source: file://steady.lua
  - name: flaky
    kind: process.service
    process: app:crash
    host: app:host
    lifecycle:
      restart: { initial_delay: 10ms, backoff_factor: 1.0, max_restarts: 2, period: 10s }
  - name: bystander
    kind: process.service
    process: app:steady
    host: app:host
    lifecycle: { group: other }
"#;
    let dir = app(
        "intensity",
        &[
            ("_index.yaml", index),
            ("crash.lua", "return function() error('boom') end"),
            ("steady.lua", POLITE),
        ],
    );
    let out = warren(&["run", &dir.display().to_string()]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert_eq!(
        log.matches("restart attempt").count(),
        2,
        "exactly two restarts before giving up:\n{log}"
    );
    assert!(log.contains("error: the application failed"), "{log}");
    assert!(
        log.contains("group app:host: more than 2 restarts within 10s"),
        "{log}"
    );
    assert!(
        log.contains("stopping -> stopped: stopped service=app:bystander"),
        "the rest is shut down:\n{log}"
    );
}

#[test]
fn a_tenants_crash_loop_stops_that_tenant_not_another() {
    // app:evil's service crash-loops past its intensity: the services on
    // its host stop (its group's fail), app:victim's run on until the
    // application is stopped, which then fails with the escalation. The
    // crashing and the bystanding services keep the default group, their
    // host's: a namespace-wide default put both tenants in one group, and
    // the crash loop stopped the other tenant (red team L).
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: evil
    kind: process.host
    allow_hosts: []
  - name: victim
    kind: process.host
    allow_hosts: []
  - name: crash
    kind: process.lua
    source: file://crash.lua
  - name: steady
    kind: process.lua
    source: file://steady.lua
  - name: flaky
    kind: process.service
    process: app:crash
    host: app:evil
    lifecycle:
      restart: { initial_delay: 10ms, backoff_factor: 1.0, max_restarts: 2, period: 10s }
  - name: sidekick
    kind: process.service
    process: app:steady
    host: app:evil
    lifecycle: { group: evil_side }
  - name: bystander
    kind: process.service
    process: app:steady
    host: app:victim
"#;
    let dir = app(
        "tenant_intensity",
        &[
            ("_index.yaml", index),
            ("crash.lua", "return function() error('boom') end"),
            ("steady.lua", POLITE),
        ],
    );
    let mut run = Running::start(&dir);
    run.wait_for("group app:evil: more than 2 restarts within 10s");
    run.wait_for("stopping -> stopped: stopped service=app:sidekick");
    let stopping = |l: &&String| l.contains("-> stopping") && l.contains("service=app:bystander");
    assert!(
        !run.seen.iter().any(|l| stopping(&l)),
        "the other tenant's service was stopped:\n{}",
        run.seen.join("\n")
    );
    run.signal("-TERM");
    let (status, log) = run.finish();
    assert_eq!(status, Some(1), "{log}");
    assert!(log.contains("error: the application failed"), "{log}");
    assert!(
        position(&log, "stopping -> stopped: stopped service=app:bystander")
            > position(&log, "stopping -> stopped: stopped service=app:sidekick"),
        "the bystander stops only with the application:\n{log}"
    );
}

#[test]
fn a_tenant_sees_and_steers_only_the_services_of_its_own_host() {
    // app:rogue runs on its own host with the services module; app:victim
    // is another tenant's service. The rogue can neither see nor stop it.
    let rogue = r#"local services = require("services")
return function()
    for _, s in ipairs(assert(services.list())) do
        assert(s.id ~= "app:victim", "another tenant's service is listed")
    end
    local s, err = services.status("app:victim")
    assert(s == nil and errors.is(err, errors.NOT_FOUND), "status")
    for _, cmd in ipairs({ "stop", "restart", "start" }) do
        local ok, err2 = services[cmd]("app:victim")
        assert(ok == nil and errors.is(err2, errors.NOT_FOUND), cmd)
    end
    print("rogue refused: " .. #services.list() .. " visible")
    assert(services.stop("app:rogue"))
    process.events():receive()
end"#;
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: tenant_a
    kind: process.host
  - name: tenant_b
    kind: process.host
  - name: rogue_proc
    kind: process.lua
    source: file://rogue.lua
    modules: [services]
  - name: victim_proc
    kind: process.lua
    source: file://victim.lua
  - name: victim
    kind: process.service
    process: app:victim_proc
    host: app:tenant_b
  - name: rogue
    kind: process.service
    process: app:rogue_proc
    host: app:tenant_a
    lifecycle: { requires: [app:victim] }
"#;
    let dir = app(
        "tenantservices",
        &[
            ("_index.yaml", index),
            ("rogue.lua", rogue),
            ("victim.lua", POLITE),
        ],
    );
    let mut run = Running::start(&dir);
    run.wait_for("rogue refused: 1 visible");
    run.wait_for("stopping -> stopped: stopped service=app:rogue");
    // The victim runs on until the interrupt stops it.
    run.signal("-INT");
    let (status, log) = run.finish();
    assert_eq!(status, Some(0), "{log}");
    let rogue_gone = position(&log, "stopping -> stopped: stopped service=app:rogue");
    let victim_stopped = position(&log, "stop requested service=app:victim");
    assert!(rogue_gone < victim_stopped, "{log}");
}

#[test]
fn a_tenants_service_commands_are_held_to_its_budget_and_another_tenants_are_not() {
    // app:loud restarts its own service in a loop: past its burst (256)
    // the supervisor refuses with RATE_LIMITED naming the host, so the
    // one supervisor thread does not churn for it; app:calm restarts its
    // own service all the while, and none of its commands is refused.
    let loud = r#"local services = require("services")
local time = require("time")
return function()
    local n = 0
    while n < 100000 do
        local ok, err = services.restart("app:loud_svc")
        if not ok then
            assert(errors.is(err, errors.RATE_LIMITED), tostring(err))
            print("loud refused after " .. n .. ": " .. tostring(err))
            break
        end
        n = n + 1
        time.sleep("1ms")
    end
    process.events():receive()
end"#;
    let calm = r#"local services = require("services")
local time = require("time")
return function()
    for _ = 1, 40 do
        assert(services.restart("app:calm_svc"))
        time.sleep("25ms")
    end
    print("calm restarted its service 40 times")
    process.events():receive()
end"#;
    let index = r#"version: "1.0"
namespace: app
entries:
  - { name: loud, kind: process.host }
  - { name: calm, kind: process.host }
  - { name: loud_proc, kind: process.lua, source: file://loud.lua, modules: [services, time] }
  - { name: calm_proc, kind: process.lua, source: file://calm.lua, modules: [services, time] }
  - { name: idle_proc, kind: process.lua, source: file://idle.lua }
  - { name: loud_svc, kind: process.service, process: app:idle_proc, host: app:loud }
  - { name: calm_svc, kind: process.service, process: app:idle_proc, host: app:calm }
  - { name: loud_ctl, kind: process.service, process: app:loud_proc, host: app:loud }
  - { name: calm_ctl, kind: process.service, process: app:calm_proc, host: app:calm }
"#;
    let dir = app(
        "servicebudget",
        &[
            ("_index.yaml", index),
            ("loud.lua", loud),
            ("calm.lua", calm),
            ("idle.lua", POLITE),
        ],
    );
    let mut run = Running::start(&dir);
    run.wait_for("loud refused after");
    run.wait_for("calm restarted its service 40 times");
    run.signal("-INT");
    let (status, log) = run.finish();
    assert_eq!(status, Some(0), "{log}");
    let line = &log[position(&log, "loud refused after")..];
    let line = line.lines().next().unwrap_or_default();
    let n: usize = line["loud refused after ".len()..]
        .split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"));
    // The burst, what the rate refilled while the loop ran, and commands
    // merged into one still waiting (which cost nothing).
    assert!((256..5_000).contains(&n), "{line}");
    assert!(line.contains("host 'app:loud'"), "{line}");
}

//! The `warren` binary: examples, `check`, and how bad input is reported.

mod common;

use common::{app, stderr, warren};

use std::process::Output;

fn assert_clean_failure(out: &Output, status: i32, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(status), "{err}");
    assert!(err.contains("error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn bundled_examples_run_and_end_with_status_zero() {
    for args in [
        vec!["run", "examples/ping-pong.lua"],
        vec!["run", "examples/worker-pool.lua"],
        vec!["run", "examples/shop", "-x", "shop:main"],
        vec!["run", "examples/hello.lua"],
    ] {
        let out = warren(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
    let out = warren(&["run", "examples/worker-pool.lua"]);
    assert!(
        stderr(&out).contains("sum of squares 2870"),
        "{}",
        stderr(&out)
    );
    let out = warren(&["run", "examples/hello.lua"]);
    assert!(
        stderr(&out).contains("answer\t42\tworker exited:\tpid.exit"),
        "{}",
        stderr(&out)
    );
    // Orders 1 (2 apples) and 3 (4 apples) race for 5 apples on two
    // workers: whichever reaches the inventory second is refused, and the
    // stock must match the one that was accepted.
    let out = warren(&["run", "examples/shop", "-x", "shop:main"]);
    let err = stderr(&out);
    let stock = if err.contains("order refused: order 1:") {
        "accepted 3, refused 1, stock left: apples=1,pears=0"
    } else {
        "accepted 3, refused 1, stock left: apples=3,pears=0"
    };
    assert!(err.contains(stock), "expected {stock:?} in {err}");
}

#[test]
fn check_accepts_the_example_application() {
    let out = warren(&["check", "examples/shop"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: 5 entries"));
}

#[test]
fn script_arguments_reach_main_and_print_is_tagged_with_the_pid() {
    let dir = app(
        "args",
        &[("s.lua", "return function(a, b) print('args', a, b) end")],
    );
    let out = warren(&[
        "run",
        &dir.join("s.lua").display().to_string(),
        "one",
        "two",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("args\tone\ttwo") && err.contains("pid=<0.1>"),
        "{err}"
    );
}

#[test]
fn a_runtime_error_prints_file_and_line_and_fails() {
    let dir = app(
        "boom",
        &[(
            "boom.lua",
            "return function()\n  local t = nil\n  return t.x\nend\n",
        )],
    );
    let out = warren(&["run", &dir.join("boom.lua").display().to_string()]);
    assert_clean_failure(
        &out,
        1,
        &[
            "error: process <0.1> (entry script:main) failed",
            "caused by: ",
            "boom.lua:3:",
        ],
    );
}

#[test]
fn a_syntax_error_prints_file_and_line() {
    let dir = app(
        "syntax",
        &[("bad.lua", "return function()\n  local = 1\nend\n")],
    );
    let out = warren(&["run", &dir.join("bad.lua").display().to_string()]);
    // Bad input: exit status 2, as for any script that cannot be loaded.
    assert_clean_failure(&out, 2, &["cannot compile", "bad.lua:2:"]);
}

#[test]
fn check_takes_a_single_script_as_run_does_without_running_it() {
    let dir = app(
        "check-script",
        &[
            (
                "good.lua",
                "print(\"ran\")\nreturn function() return 0 end\n",
            ),
            ("bad.lua", "return function()\n  local = 1\nend\n"),
            (
                "typed.lua",
                "local x: integer = \"a\"\nreturn function() return x end\n",
            ),
        ],
    );
    let path = |f: &str| dir.join(f).display().to_string();
    let out = warren(&["check", &path("good.lua")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("ran"),
        "check ran the script: {}",
        stderr(&out)
    );
    let out = warren(&["check", &path("bad.lua")]);
    assert_clean_failure(&out, 2, &["cannot compile", "bad.lua:2:"]);
    // A type error is printed; it fails the check with --types, as in an
    // application.
    let out = warren(&["check", &path("typed.lua")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("typed.lua:1:20"), "{}", stderr(&out));
    let out = warren(&["check", "--types", &path("typed.lua")]);
    assert_clean_failure(&out, 1, &["1 type error(s)", "typed.lua"]);
    let out = warren(&["check", &path("missing.lua")]);
    assert_clean_failure(&out, 2, &["cannot read", "missing.lua"]);
}

#[test]
fn an_application_with_a_syntax_error_starts_nothing() {
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: host
    kind: process.host
  - name: good
    kind: process.lua
    source: file://good.lua
  - name: bad
    kind: process.lua
    source: file://bad.lua
  - name: svc
    kind: process.service
    process: app:good
    host: app:host
"#;
    let dir = app(
        "appsyntax",
        &[
            ("_index.yaml", index),
            (
                "good.lua",
                "return function() print('service started') end\n",
            ),
            ("bad.lua", "return function()\n  local = 1\nend\n"),
        ],
    );
    for args in [vec![], vec!["-x", "app:good"]] {
        let mut all = vec!["run", dir.to_str().expect("utf-8 path")];
        all.extend(args);
        let out = warren(&all);
        assert_clean_failure(&out, 2, &["entry 'app:bad'", "bad.lua:2:"]);
        assert!(
            !stderr(&out).contains("service started"),
            "{}",
            stderr(&out)
        );
    }
}

const HOST_AND_MAIN: &str = r#"version: "1.0"
namespace: app
entries:
  - name: main
    kind: process.lua
    source: file://main.lua
"#;

#[test]
fn check_reports_every_configuration_problem_with_file_entry_and_key() {
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: a
    kind: process.lua
    source: file://missing.lua
  - name: b
    kind: process.lua
    source: file://main.lua
    modulez: [json]
  - name: c
    kind: process.lua
    source: file://main.lua
    modules: [mysql_driver]
  - name: d
    kind: process.teleport
  - name: h
    kind: process.host
    host: { workers: 0 }
  - name: l
    kind: process.host
    limits: { memory_total: 12 parsecs }
  - name: m
    kind: process.host
    limits: { cpu_budget: soon, mailbox_limit: 0 }
"#;
    let dir = app(
        "badconfig",
        &[
            ("_index.yaml", index),
            ("main.lua", "return function() end"),
        ],
    );
    let out = warren(&["check", &dir.display().to_string()]);
    assert_clean_failure(
        &out,
        2,
        &[
            "_index.yaml: entry 'app:a': key 'source': cannot read",
            "entry 'app:b': key 'modulez': unknown key",
            "entry 'app:c': key 'modules': module 'mysql_driver' does not exist",
            "entry 'app:d': key 'kind': unknown kind 'process.teleport'",
            "entry 'app:h': key 'host.workers': must be at least 1",
            "entry 'app:l': key 'limits.memory_total'",
            "entry 'app:m': key 'limits.cpu_budget': invalid positive duration \"soon\"",
        ],
    );
}

#[test]
fn check_reports_duplicates_across_files_and_lua_syntax_errors() {
    let dir = app(
        "dupes",
        &[
            ("_index.yaml", HOST_AND_MAIN),
            ("main.lua", "return function( end"),
            ("sub/_index.yaml", HOST_AND_MAIN),
            ("sub/main.lua", "return function() end"),
        ],
    );
    let out = warren(&["check", &dir.display().to_string()]);
    assert_clean_failure(&out, 2, &["duplicate entry id 'app:main'"]);
    std::fs::remove_dir_all(dir.join("sub")).expect("rm");
    let out = warren(&["check", &dir.display().to_string()]);
    assert_clean_failure(&out, 2, &["entry 'app:main':", "main.lua:1:"]);
}

#[test]
fn check_reports_a_require_of_a_module_the_entry_does_not_list() {
    let source = "local json = require(\"json\") -- listed\n\
        local t = require 'time'\n\
        -- require(\"services\") in a comment is fine\n\
        local x = obj:require(\"services\")\n\
        return function() end\n";
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: main
    kind: process.lua
    source: file://main.lua
    modules: [json]
"#;
    let dir = app("unlisted", &[("_index.yaml", index), ("main.lua", source)]);
    let out = warren(&["check", &dir.display().to_string()]);
    assert_clean_failure(
        &out,
        2,
        &[
            "entry 'app:main':",
            "main.lua:2: require(\"time\") but module 'time' is not in its modules list",
        ],
    );
    let err = stderr(&out);
    assert!(
        !err.contains("'json'") && !err.contains("'services'"),
        "{err}"
    );
}

#[test]
fn check_rejects_malformed_yaml_and_unsupported_versions() {
    let dir = app(
        "yaml",
        &[("_index.yaml", "version: \"1.0\"\nnamespace: [oops\n")],
    );
    assert_clean_failure(
        &warren(&["check", &dir.display().to_string()]),
        2,
        &["_index.yaml:"],
    );
    let dir = app(
        "version",
        &[(
            "_index.yaml",
            "version: \"9.9\"\nnamespace: app\nentries: []\n",
        )],
    );
    assert_clean_failure(
        &warren(&["check", &dir.display().to_string()]),
        2,
        &["version \"9.9\" is not supported"],
    );
}

#[test]
fn check_and_run_refuse_a_host_that_could_not_work_before_starting_it() {
    let index = r#"version: "1.0"
namespace: app
entries:
  - { name: h, kind: process.host, host: { workers: 300 }, limits: { max_message_bytes: 0 } }
  - { name: v, kind: fs.directory, directory: "a\u0000b", auto_init: true }
  - { name: main, kind: process.lua, source: file://main.lua, method: main }
"#;
    let dir = app(
        "unworkable",
        &[
            ("_index.yaml", index),
            ("main.lua", "return { main = function() end }"),
        ],
    );
    let d = dir.display().to_string();
    let needles = [
        "_index.yaml: entry 'app:h': key 'host.workers': 300 is more than 256",
        "_index.yaml: entry 'app:v': key 'directory': \"a\\0b\" contains a NUL character",
    ];
    assert_clean_failure(&warren(&["check", &d]), 2, &needles);
    let index = index.replace("workers: 300", "workers: 2");
    std::fs::write(dir.join("_index.yaml"), index).expect("write");
    assert_clean_failure(
        &warren(&["run", &d, "-x", "app:main"]),
        2,
        &[
            "cannot load application",
            "_index.yaml: entry 'app:h': key 'limits.max_message_bytes': \
             0 would fail every send and spawn",
            "_index.yaml: entry 'app:v': key 'directory'",
        ],
    );
}

#[test]
fn run_reports_bad_arguments_cleanly() {
    let dir = app(
        "norun",
        &[
            ("_index.yaml", HOST_AND_MAIN),
            ("main.lua", "return function() return \"done\" end"),
        ],
    );
    let d = dir.display().to_string();
    assert_clean_failure(&warren(&["run", &d]), 2, &["nothing to start", "-x"]);
    assert_clean_failure(
        &warren(&["run", &d, "-x", "app:nope"]),
        2,
        &["entry 'app:nope' not found"],
    );
    assert_clean_failure(
        &warren(&["run", "/no/such/place"]),
        2,
        &["not an application folder"],
    );
    assert_clean_failure(
        &warren(&["run", &d, "-x", "app:main", "--host", "app:none"]),
        2,
        &["host 'app:none' not found"],
    );
    assert_clean_failure(&warren(&["check", "/no/such/place"]), 2, &["cannot read"]);
    let out = warren(&["run", &d, "-x", "app:main"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = warren(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_rejects_allow_hosts_naming_no_host() {
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: h
    kind: process.host
    allow_hosts: [app:nowhere]
"#;
    let dir = app("badallow", &[("_index.yaml", index)]);
    let out = warren(&["check", &dir.display().to_string()]);
    assert_clean_failure(
        &out,
        2,
        &["entry 'app:h': key 'allow_hosts': 'app:nowhere' is not a process.host entry"],
    );
}

/// Every limit a host's YAML sets is the one its processes meet.
#[test]
fn configured_limits_and_allow_hosts_are_enforced() {
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: tenant
    kind: process.host
    host: { workers: 1 }
    allow_hosts: []
    limits:
      max_processes: 4
      mailbox_limit: 3
      max_message_bytes: 1KiB
      memory_per_process: 4MiB
      cpu_budget: 200ms
  - name: other
    kind: process.host
  - name: idle
    kind: process.lua
    source: file://idle.lua
  - name: bomb
    kind: process.lua
    source: file://bomb.lua
  - name: spin
    kind: process.lua
    source: file://spin.lua
  - name: main
    kind: process.lua
    source: file://main.lua
    modules: [time]
"#;
    let idle = "return function() process.inbox():receive() end";
    let bomb = "return function() local t = {} while true do t[#t + 1] = {} end end";
    let spin = "return function() while true do end end";
    let main = r#"local time = require("time")
return function()
    local function exit_of(id)
        process.spawn_monitored(id, "app:tenant")
        local events = process.events()
        local r = channel.select({ events:case_receive(), time.after("10s"):case_receive() })
        assert(r.channel == events, id .. " was not stopped by its limit")
        return r.value.result.error
    end
    local e = exit_of("app:bomb")
    assert(e:kind() == "RateLimited" and e:message():find("memory limit exceeded"), e:message())
    e = exit_of("app:spin")
    assert(e:message():find("cpu_budget of host 'app:tenant' %(200 ms%)"), e:message())
    local _, err = process.spawn("app:idle", "app:other")
    assert(err:kind() == "PermissionDenied", tostring(err))
    local _, err = process.send(process.pid(), "t", string.rep("x", 2000))
    assert(err:message():find("max_message_bytes %(1024%)"), err:message())
    local rx = process.spawn("app:idle", "app:tenant")
    local sent = 0
    while process.send(rx, "t", sent) do sent = sent + 1 end
    assert(sent == 3, "mailbox_limit: " .. sent)
    -- main and rx run: two more fit, the third does not.
    local spawned, err = 0, nil
    while not err do
        local pid
        pid, err = process.spawn("app:idle", "app:tenant")
        if pid then spawned = spawned + 1 end
    end
    assert(spawned == 2 and err:kind() == "RateLimited", tostring(err))
    assert(err:message():find("max_processes %(4%)"), err:message())
    print("limits hold")
    return 0
end"#;
    let dir = app(
        "limits",
        &[
            ("_index.yaml", index),
            ("idle.lua", idle),
            ("bomb.lua", bomb),
            ("spin.lua", spin),
            ("main.lua", main),
        ],
    );
    let out = warren(&[
        "run",
        &dir.display().to_string(),
        "-x",
        "app:main",
        "--host",
        "app:tenant",
    ]);
    let log = stderr(&out);
    assert!(log.contains("limits hold"), "{log}");
}

/// The configuration keys Wippy projects write load: `meta` on entries,
/// `lifecycle` and Wippy's `host:` keys on hosts (`max_processes` becomes
/// the limit), `process` and `os` in a modules list.
#[test]
fn wippy_configuration_keys_load_and_max_processes_is_the_limit() {
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: processes
    kind: process.host
    meta: { comment: "the workers" }
    host: { workers: 2, max_processes: 3, queue_size: 1024, local_queue_size: 256 }
    lifecycle: { auto_start: true }
  - name: idle
    kind: process.lua
    source: file://idle.lua
    modules: [time]
  - name: main
    kind: process.lua
    meta: { command: { name: main, short: "spawns until refused" } }
    source: file://main.lua
    modules: [process, os, time]
"#;
    let main = r#"return function()
    local n = 0
    while process.spawn("app:idle", "app:processes") do n = n + 1 end
    print("spawned " .. n .. " before the limit")
end"#;
    let idle = r#"local time = require("time")
return function() time.sleep("1h") end"#;
    let dir = app(
        "wippykeys",
        &[
            ("_index.yaml", index),
            ("main.lua", main),
            ("idle.lua", idle),
        ],
    );
    let check = warren(&["check", &dir.display().to_string()]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let out = warren(&[
        "run",
        &dir.display().to_string(),
        "-x",
        "app:main",
        "--host",
        "app:processes",
    ]);
    let log = stderr(&out);
    // main itself is one of the 3: two more fit.
    assert!(log.contains("spawned 2 before the limit"), "{log}");
}

#[test]
fn a_printed_line_break_cannot_forge_a_log_line() {
    // A newline in a process's text is written as `\n`: one `print` made
    // whole lines tagged as another process (red team M).
    let dir = app(
        "forge",
        &[(
            "s.lua",
            "return function() print('ok\\n INFO forged pid=<0.99> host=x\\rend') end",
        )],
    );
    let out = warren(&["run", &dir.join("s.lua").display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains("forged"))
        .unwrap_or_else(|| panic!("the printed line: {err}"));
    assert!(
        line.contains("ok\\n INFO forged pid=<0.99> host=x\\rend") && line.contains("pid=<0.1>"),
        "{line}"
    );
}

#[test]
fn a_log_nobody_reads_does_not_stop_the_program() {
    // Log lines were written to stderr by the worker that logged them: with
    // a reader that never reads, the pipe filled and every worker that
    // logged waited for good. Now lines wait in a bounded queue, the
    // excess is dropped, and the program ends.
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;
    let dir = app(
        "deaf",
        &[(
            "s.lua",
            "return function() for i = 1, 20000 do print(string.rep('x', 1000), i) end end",
        )],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["run", &dir.join("s.lua").display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("warren runs");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
        drop(child);
    });
    // Nobody reads stderr until the program has ended.
    let status = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the program ends though its log is not read")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
    let mut err = String::new();
    let _ = stderr_pipe.read_to_string(&mut err);
    assert!(
        err.contains("\t1 pid="),
        "the first lines were written: {}",
        &err[..err.len().min(400)]
    );
}

#[test]
fn a_hosts_log_flood_is_held_to_its_budget_and_another_hosts_lines_all_get_out() {
    // One host logs 1 KB lines as fast as it can (by `print`, by the
    // `logger` module, by processes failing with nobody watching) while
    // another prints 40 numbered lines: the flood gets its budget (1 MiB
    // a second and 1 MiB of burst, about 930 such lines a second) and a
    // notice of what was dropped; every quiet line is written, and a line
    // break in the flood's text forges no line.
    let index = r#"version: "1.0"
namespace: app
entries:
  - { name: main_host, kind: process.host }
  - { name: loud, kind: process.host }
  - { name: calm, kind: process.host }
  - { name: main, kind: process.lua, source: file://main.lua }
  - { name: flood, kind: process.lua, source: file://flood.lua, modules: [logger] }
  - { name: crasher, kind: process.lua, source: file://crasher.lua }
  - { name: quiet, kind: process.lua, source: file://quiet.lua, modules: [time] }
"#;
    let main = r#"return function(mode)
    local f = assert(process.spawn("app:flood", "app:loud", mode))
    local q = assert(process.spawn_monitored("app:quiet", "app:calm"))
    local ev = process.events():receive()
    assert(ev.kind == process.event.EXIT and ev.from == q, tostring(ev.kind))
    assert(ev.result.error == nil, tostring(ev.result.error))
    process.terminate(f)
    print("all done")
end"#;
    let flood = r#"return function(mode)
    local line = "flood\txxx\n INFO forged " .. string.rep("x", 1000)
    local log = require("logger"):named("flood")
    while true do
        if mode == "print" then print(line)
        elseif mode == "logger" then log:info(line, { field = "a\nb" })
        else process.spawn("app:crasher", "app:loud", line) end
    end
end"#;
    let crasher = "return function(line) error(line, 0) end";
    let quiet = r#"local time = require("time")
return function()
    for i = 1, 40 do print("quiet line " .. i .. ";") time.sleep("10ms") end
end"#;
    let dir = app(
        "logbudget",
        &[
            ("_index.yaml", index),
            ("main.lua", main),
            ("flood.lua", flood),
            ("crasher.lua", crasher),
            ("quiet.lua", quiet),
        ],
    );
    let path = dir.to_str().expect("utf-8 path");
    for mode in ["print", "logger", "crash"] {
        let started = std::time::Instant::now();
        let args = [
            "run",
            path,
            "-x",
            "app:main",
            "--host",
            "app:main_host",
            mode,
        ];
        let out = warren(&args);
        let secs = started.elapsed().as_secs_f64();
        let err = stderr(&out);
        let tail = &err[err.floor_char_boundary(err.len().saturating_sub(2000))..];
        assert_eq!(out.status.code(), Some(0), "{mode}: {tail}");
        assert!(err.contains("all done"), "{mode}: {tail}");
        for i in 1..=40 {
            assert!(
                err.contains(&format!("quiet line {i};")),
                "{mode}: quiet line {i} lost"
            );
        }
        let flooded = err.lines().filter(|l| l.contains("flood\txxx")).count();
        // The burst, the rate for as long as the program ran, and slack.
        let most = (1_048_576.0 * (1.0 + secs) / 1_128.0) as usize + 200;
        assert!(
            flooded <= most,
            "{mode}: {flooded} flood lines in {secs:.2} s (at most {most})"
        );
        assert!(flooded >= 300, "{mode}: the flood got out: {flooded}");
        assert!(
            err.contains("log lines of host 'app:loud' were dropped"),
            "{mode}: no notice of the dropped lines"
        );
        assert!(
            !err.lines()
                .any(|l| l.starts_with(" INFO forged") || l.starts_with("b ")),
            "{mode}: a line break in the text forged a line"
        );
    }
}

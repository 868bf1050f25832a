//! Small applications in Wippy's shape, end to end through the `warren`
//! binary: an entry run with `-x` (on the terminal host, after the
//! services have started), services that find each other by registered
//! name, the event bus, libraries, and the `io` module's stdin, stdout and
//! arguments. Every app must also pass `warren check`.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{app, repo, stderr, warren};

/// The longest an app may run before the test fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `warren` with `args`, feeding it `stdin`, and kills it if it runs
/// past [`DEADLINE`].
fn warren_with(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(args)
        .current_dir(repo())
        .env("RUST_LOG", "info")
        .env(
            "WARREN_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("warren starts");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    // A writer of its own: the program may not read all of it.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let log = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
            panic!("warren {args:?} did not finish within {DEADLINE:?}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes the app, checks it with `warren check`, and returns its folder.
fn checked_app(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = app(name, files);
    let out = warren(&["check", &dir.display().to_string()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "check {name}:\n{}",
        stderr(&out)
    );
    dir
}

/// `warren run <dir> -x <entry> [args]`, which must succeed.
fn run_x(dir: &Path, entry: &str, args: &[&str]) -> Output {
    let dir = dir.display().to_string();
    let mut all = vec!["run", dir.as_str(), "-x", entry];
    all.extend_from_slice(args);
    let out = warren_with(&all, b"");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

const TERMINAL: &str = r#"  - name: terminal
    kind: terminal.host
    lifecycle:
      auto_start: true
"#;

const PROCESSES: &str = r#"  - name: processes
    kind: process.host
    lifecycle:
      auto_start: true
"#;

fn index(entries: &[&str]) -> String {
    format!(
        "version: \"1.0\"\nnamespace: app\n\nentries:\n{}",
        entries.concat()
    )
}

/// Waits for a registered name (services start in any order).
const FIND: &str = r#"local function find(name)
    for _ = 1, 1000 do
        local pid = process.registry.lookup(name)
        if pid then return pid end
        time.sleep("5ms")
    end
    error("nothing registered as " .. name)
end
"#;

// ---- hello world ----

#[test]
fn hello_world_writes_stdout_and_stderr() {
    let hello = r#"local io = require("io")

local function main()
    io.write("Hello", ", ", "Warren")
    io.write("!\n")
    io.print("answer", 42, true)
    io.eprint("note:", "on stderr")
    io.flush()
    return 0
end

return { main = main }
"#;
    let entry = r#"  - name: hello
    kind: process.lua
    source: file://hello.lua
    method: main
    modules: [io]
"#;
    let dir = checked_app(
        "wa-hello",
        &[
            ("_index.yaml", &index(&[TERMINAL, entry])),
            ("hello.lua", hello),
        ],
    );
    let out = run_x(&dir, "app:hello", &[]);
    assert_eq!(stdout(&out), "Hello, Warren!\nanswer\t42\ttrue\n");
    assert!(
        stderr(&out).contains("note:\ton stderr\n"),
        "{}",
        stderr(&out)
    );
}

// ---- ping-pong ----

const PONGER: &str = r#"local function main()
    assert(process.registry.register("ponger"))
    local inbox, events = process.inbox(), process.events()
    while true do
        local r = channel.select({ inbox:case_receive(), events:case_receive() })
        if r.channel == events then
            if r.value.kind == process.event.CANCEL then return "ponger done" end
        elseif r.value:topic() == "ping" then
            process.send(r.value:from(), "pong", r.value:payload():data())
        end
    end
end

return { main = main }
"#;

const PINGER: &str = r#"local time = require("time")

local function main()
    assert(process.registry.register("pinger"))
    local ponger = find("ponger")
    local pongs, watch, events = process.listen("pong"), process.listen("watch"), process.events()
    local watcher
    process.send(ponger, "ping", 1)
    while true do
        local r = channel.select({ pongs:case_receive(), watch:case_receive(), events:case_receive() })
        if r.channel == events then
            if r.value.kind == process.event.CANCEL then return "pinger done" end
        elseif r.channel == watch then
            watcher = r.value
        else
            local round = r.value
            if watcher then process.send(watcher, "round", round) end
            time.sleep("2ms")
            process.send(ponger, "ping", round + 1)
        end
    end
end

return { main = main }
"#;

const PING_CLI: &str = r#"local io = require("io")
local time = require("time")

local function main()
    local pinger = find("pinger")
    local rounds = process.listen("round")
    process.send(pinger, "watch", process.pid())
    local first, last = nil, nil
    for _ = 1, 5 do
        local r = channel.select({ rounds:case_receive(), time.after("10s"):case_receive() })
        assert(r.channel == rounds, "no round within 10s")
        if last then assert(r.value == last + 1, "rounds follow each other") end
        first = first or r.value
        last = r.value
    end
    io.print("rounds", last - first + 1, "consecutive")
end

return { main = main }
"#;

#[test]
fn ping_pong_services_and_a_cli_that_waits_for_rounds() {
    let entries = r#"  - name: ponger_process
    kind: process.lua
    source: file://ponger.lua
    method: main
  - name: ponger
    kind: process.service
    process: app:ponger_process
    host: app:processes
    lifecycle:
      auto_start: true
  - name: pinger_process
    kind: process.lua
    source: file://pinger.lua
    method: main
    modules: [time]
  - name: pinger
    kind: process.service
    process: app:pinger_process
    host: app:processes
    lifecycle:
      auto_start: true
  - name: cli
    kind: process.lua
    source: file://cli.lua
    method: main
    modules: [io, time]
"#;
    let pinger = PINGER.replacen("\n\n", &format!("\n\n{FIND}\n"), 1);
    let cli = PING_CLI.replacen("\n\n", &format!("\n\n{FIND}\n"), 1);
    let dir = checked_app(
        "wa-pingpong",
        &[
            ("_index.yaml", &index(&[TERMINAL, PROCESSES, entries])),
            ("ponger.lua", PONGER),
            ("pinger.lua", &pinger),
            ("cli.lua", &cli),
        ],
    );
    let out = run_x(&dir, "app:cli", &[]);
    assert_eq!(stdout(&out), "rounds\t5\tconsecutive\n");
    let log = stderr(&out);
    assert!(
        log.contains("started service=app:ponger") && log.contains("started service=app:pinger"),
        "{log}"
    );
}

// ---- worker pool ----

const WORKER: &str = r#"local function main()
    local inbox = process.inbox()
    local handled = 0
    while true do
        local msg = inbox:receive()
        if msg:topic() == "stop" then return handled end
        local n = msg:payload():data()
        local square = n * n -- a job that is not a number fails the worker
        handled = handled + 1
        process.send(msg:from(), "result", { n = n, square = square })
    end
end

return { main = main }
"#;

const POOL_CLI: &str = r#"local io = require("io")

local function main()
    local workers = {}
    for i = 1, 4 do
        workers[i] = assert(process.spawn_monitored("app:worker", "app:processes"))
    end
    local results = process.listen("result")
    for n = 1, 20 do
        process.send(workers[(n - 1) % #workers + 1], "job", n)
    end
    local sum = 0
    for _ = 1, 20 do sum = sum + results:receive().square end
    -- One more worker gets a job it cannot do.
    local doomed = assert(process.spawn_monitored("app:worker", "app:processes"))
    process.send(doomed, "job", "not a number")
    for _, w in ipairs(workers) do process.send(w, "stop") end
    local events = process.events()
    local exited, handled, failed = 0, 0, 0
    while exited < 5 do
        local ev = events:receive()
        if ev.kind == process.event.EXIT then
            exited = exited + 1
            if ev.result.error then
                assert(ev.from == doomed)
                failed = failed + 1
            else
                handled = handled + ev.result.value
            end
        end
    end
    io.print("sum", sum, "handled", handled, "failed", failed)
end

return { main = main }
"#;

#[test]
fn a_worker_pool_collects_results_and_exit_events() {
    let entries = r#"  - name: worker
    kind: process.lua
    source: file://worker.lua
    method: main
  - name: cli
    kind: process.lua
    source: file://cli.lua
    method: main
    modules: [io]
"#;
    let dir = checked_app(
        "wa-pool",
        &[
            ("_index.yaml", &index(&[TERMINAL, PROCESSES, entries])),
            ("worker.lua", WORKER),
            ("cli.lua", POOL_CLI),
        ],
    );
    let out = run_x(&dir, "app:cli", &[]);
    assert_eq!(stdout(&out), "sum\t2870\thandled\t20\tfailed\t1\n");
}

// ---- event bus ----

const AUDIT: &str = r#"local events = require("events")

local function main()
    local sub = assert(events.subscribe("orders.*"))
    assert(process.registry.register("audit"))
    local inbox, lifecycle = process.inbox(), process.events()
    local count, total, seen = 0, 0, {}
    while true do
        local r = channel.select({ sub:channel():case_receive(), inbox:case_receive(), lifecycle:case_receive() })
        if r.channel == sub:channel() then
            local e = r.value
            count = count + 1
            if e.data ~= nil then total = total + e.data.total end
            seen[#seen + 1] = e.system .. " " .. e.kind .. " " .. e.path
        elseif r.channel == inbox then
            if r.value:topic() == "report" then
                process.send(r.value:from(), "report", { count = count, total = total, seen = table.concat(seen, ";") })
            end
        elseif r.value.kind == process.event.CANCEL then
            sub:close()
            return count
        end
    end
end

return { main = main }
"#;

const BUS_CLI: &str = r#"local io = require("io")
local events = require("events")
local time = require("time")

local function main()
    local audit = find("audit")
    assert(events.send("orders.eu", "order.created", "/orders/1", { total = 10 }))
    assert(events.send("orders.us", "order.created", "/orders/2", { total = 32 }))
    assert(events.send("billing", "invoice.sent", "/invoices/1", { total = 1000 }))
    assert(events.send("orders.eu", "order.cancelled", "/orders/1"))
    local reports = process.listen("report")
    process.send(audit, "report")
    local r = reports:receive()
    io.print("events", r.count, "total", r.total)
    io.print(r.seen)
end

return { main = main }
"#;

#[test]
fn an_event_bus_subscriber_service_sees_what_the_cli_publishes() {
    let entries = r#"  - name: audit_process
    kind: process.lua
    source: file://audit.lua
    method: main
    modules: [events]
  - name: audit
    kind: process.service
    process: app:audit_process
    host: app:processes
    lifecycle:
      auto_start: true
  - name: cli
    kind: process.lua
    source: file://cli.lua
    method: main
    modules: [io, events, time]
"#;
    let cli = BUS_CLI.replacen("\n\n", &format!("\n\n{FIND}\n"), 1);
    let dir = checked_app(
        "wa-bus",
        &[
            ("_index.yaml", &index(&[TERMINAL, PROCESSES, entries])),
            ("audit.lua", AUDIT),
            ("cli.lua", &cli),
        ],
    );
    let out = run_x(&dir, "app:cli", &[]);
    assert_eq!(
        stdout(&out),
        "events\t3\ttotal\t42\n\
         orders.eu order.created /orders/1;orders.us order.created /orders/2;\
         orders.eu order.cancelled /orders/1\n"
    );
}

// ---- key-value server ----

const KV: &str = r#"local function main()
    assert(process.registry.register("kv"))
    local store = {}
    local inbox, lifecycle = process.inbox(), process.events()
    while true do
        local r = channel.select({ inbox:case_receive(), lifecycle:case_receive() })
        if r.channel == lifecycle then
            if r.value.kind == process.event.CANCEL then return "kv done" end
        else
            local msg = r.value
            local req = msg:payload():data()
            local topic = msg:topic()
            local reply
            if topic == "set" then
                store[req.key] = req.value
                reply = { value = true }
            elseif topic == "get" then
                local v = store[req.key]
                if v == nil then
                    reply = { error = errors.new({ kind = errors.NOT_FOUND, message = "no key " .. req.key }) }
                else
                    reply = { value = v }
                end
            elseif topic == "delete" then
                reply = { value = store[req.key] ~= nil }
                store[req.key] = nil
            else
                reply = { error = errors.new({ kind = errors.INVALID, message = "unknown request " .. topic }) }
            end
            process.send(msg:from(), "reply", reply)
        end
    end
end

return { main = main }
"#;

const KV_CLI: &str = r#"local io = require("io")
local time = require("time")

local function main()
    find("kv")
    local replies = process.listen("reply")
    local function call(op, req)
        -- Sent to the registered name, not to a pid.
        assert(process.send("kv", op, req))
        local r = replies:receive()
        return r.value, r.error
    end
    assert(call("set", { key = "name", value = "warren" }))
    assert(call("set", { key = "lang", value = "lua" }))
    io.print("name", (call("get", { key = "name" })))
    io.print("deleted", (call("delete", { key = "lang" })))
    local v, err = call("get", { key = "lang" })
    io.print("lang", tostring(v), err:kind(), err:message())
    local _, bad = call("frobnicate", {})
    io.print("bad", bad:kind())
end

return { main = main }
"#;

#[test]
fn a_key_value_service_is_reached_by_its_registered_name() {
    let entries = r#"  - name: kv_process
    kind: process.lua
    source: file://kv.lua
    method: main
  - name: kv
    kind: process.service
    process: app:kv_process
    host: app:processes
    lifecycle:
      auto_start: true
  - name: cli
    kind: process.lua
    source: file://cli.lua
    method: main
    modules: [io, time]
"#;
    let cli = KV_CLI.replacen("\n\n", &format!("\n\n{FIND}\n"), 1);
    let dir = checked_app(
        "wa-kv",
        &[
            ("_index.yaml", &index(&[TERMINAL, PROCESSES, entries])),
            ("kv.lua", KV),
            ("cli.lua", &cli),
        ],
    );
    let out = run_x(&dir, "app:cli", &[]);
    assert_eq!(
        stdout(&out),
        "name\twarren\ndeleted\ttrue\nlang\tnil\tNotFound\tno key lang\nbad\tInvalid\n"
    );
}

// ---- a library imported by two entries ----

const COUNTER_LIB: &str = r#"local json = require("json")

local count = 0
local M = {}

function M.bump()
    count = count + 1
    return count
end

function M.encode(v)
    return json.encode(v)
end

return M
"#;

const LIB_CLI: &str = r#"local io = require("io")
local counter = require("counter")

local function main()
    counter.bump()
    counter.bump()
    local again = require("counter")
    assert(again == counter, "a library loads once per process")
    local mine = again.bump()
    assert(process.spawn_monitored("app:worker", "app:terminal"))
    local ev = process.events():receive()
    -- json is the library's module, not this entry's.
    local name = "js" .. "on"
    local ok, err = pcall(require, name)
    io.print("cli", mine, "worker", ev.result.value, "json", ok and "allowed" or err:kind())
    io.print(counter.encode({ 1, 2, 3 }))
end

return { main = main }
"#;

const LIB_WORKER: &str = r#"local tally = require("tally")

local function main()
    tally.bump()
    return tally.bump()
end

return { main = main }
"#;

#[test]
fn a_library_imported_by_two_entries_runs_once_per_process() {
    let entries = r#"  - name: counter
    kind: library.lua
    source: file://counter.lua
    modules: [json]
  - name: cli
    kind: process.lua
    source: file://cli.lua
    method: main
    modules: [io]
    imports:
      counter: app:counter
  - name: worker
    kind: process.lua
    source: file://worker.lua
    method: main
    imports:
      tally: app:counter
"#;
    let dir = checked_app(
        "wa-library",
        &[
            ("_index.yaml", &index(&[TERMINAL, entries])),
            ("counter.lua", COUNTER_LIB),
            ("cli.lua", LIB_CLI),
            ("worker.lua", LIB_WORKER),
        ],
    );
    let out = run_x(&dir, "app:cli", &[]);
    assert_eq!(
        stdout(&out),
        "cli\t3\tworker\t2\tjson\tPermissionDenied\n[1,2,3]\n"
    );
}

// ---- stdin ----

#[test]
fn a_script_reverses_the_lines_of_stdin_until_end_of_input() {
    let script = r#"local io = require("io")

return function()
    local lines = 0
    while true do
        local line, err = io.readline()
        if line == nil then
            io.print("end of input", err ~= nil)
            break
        end
        lines = lines + 1
        io.print(line:reverse())
    end
    io.print("lines", lines)
end
"#;
    let dir = app("wa-stdin", &[("reverse.lua", script)]);
    let path = dir.join("reverse.lua").display().to_string();
    let out = warren_with(&["run", &path], b"abc\nhello world\n\r\nxyz");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "cba\ndlrow olleh\n\nzyx\nend of input\ttrue\nlines\t4\n"
    );
}

// ---- io.args ----

#[test]
fn io_args_are_the_extra_command_line_arguments() {
    let cli = r##"local io = require("io")

local function main(...)
    local args = io.args()
    io.print(#args, table.concat(args, "|"))
    io.print(select("#", ...), table.concat({ ... }, "|"))
end

return { main = main }
"##;
    let entry = r#"  - name: cli
    kind: process.lua
    source: file://cli.lua
    method: main
    modules: [io]
"#;
    let dir = checked_app(
        "wa-args",
        &[
            ("_index.yaml", &index(&[TERMINAL, entry])),
            ("cli.lua", cli),
        ],
    );
    let out = run_x(&dir, "app:cli", &["one", "two words", "--flag"]);
    assert_eq!(
        stdout(&out),
        "3\tone|two words|--flag\n3\tone|two words|--flag\n"
    );
}

// ---- lifecycle.startup: optional ----

const STEADY: &str = r#"local function main()
    assert(process.registry.register("steady"))
    local inbox, lifecycle = process.inbox(), process.events()
    while true do
        local r = channel.select({ inbox:case_receive(), lifecycle:case_receive() })
        if r.channel == lifecycle then
            if r.value.kind == process.event.CANCEL then return "steady done" end
        else
            process.send(r.value:from(), "pong", "still here")
        end
    end
end

return { main = main }
"#;

const FLAKY: &str = r#"local function main()
    error("flaky cannot start")
end

return { main = main }
"#;

const OPTIONAL_CLI: &str = r#"local services = require("services")
local time = require("time")

local function main()
    local deadline = time.now():add("15s")
    local flaky
    while true do
        flaky = assert(services.status("app:flaky"))
        if flaky.state == "failed" or time.now():after(deadline) then break end
        time.sleep("10ms")
    end
    assert(flaky.state == "failed", "app:flaky is " .. flaky.state)
    local steady = assert(services.status("app:steady"))
    assert(steady.state == "running", "app:steady is " .. steady.state)
    local pongs = process.listen("pong")
    -- Running is not yet registered: wait for its name.
    assert(process.send(find("steady"), "ping"))
    print("flaky " .. flaky.state .. ", steady " .. steady.state .. ": " .. pongs:receive())
end

return { main = main }
"#;

#[test]
fn an_optional_service_fails_while_the_app_runs_on() {
    // One process host: the cli sees the services of its own host.
    let entries = r#"  - name: steady_process
    kind: process.lua
    source: file://steady.lua
    method: main
  - name: steady
    kind: process.service
    process: app:steady_process
    host: app:processes
    lifecycle:
      auto_start: true
  - name: flaky_process
    kind: process.lua
    source: file://flaky.lua
    method: main
  - name: flaky
    kind: process.service
    process: app:flaky_process
    host: app:processes
    lifecycle:
      auto_start: true
      startup: optional
      restart:
        max_restarts: 0
  - name: cli
    kind: process.lua
    source: file://cli.lua
    method: main
    modules: [services, time]
"#;
    let cli = OPTIONAL_CLI.replacen("\n\n", &format!("\n\n{FIND}\n"), 1);
    let dir = checked_app(
        "wa-optional",
        &[
            ("_index.yaml", &index(&[PROCESSES, entries])),
            ("steady.lua", STEADY),
            ("flaky.lua", FLAKY),
            ("cli.lua", &cli),
        ],
    );
    let out = run_x(&dir, "app:cli", &[]);
    let log = stderr(&out);
    assert!(
        log.contains("flaky failed, steady running: still here"),
        "{log}"
    );
    assert!(log.contains("flaky cannot start"), "{log}");
    assert!(log.contains("optional service app:flaky given up"), "{log}");
    assert!(!log.contains("shutting the application down"), "{log}");
}

//! Components through the `warren` binary: single files, `process.wasm`
//! entries, and `check` refusing a component built for another interface.

mod common;

use common::{app, stderr, warren};

#[test]
fn a_component_file_runs_as_the_main_process() {
    let crasher = warren_tests::component("crasher").display().to_string();
    let out = warren(&["run", &crasher, "fine"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = warren(&["run", &crasher, "log"]);
    let logged = stderr(&out);
    let line = logged
        .lines()
        .find(|l| l.contains("logged by a component"))
        .unwrap_or_default();
    assert!(line.contains("WARN") && line.contains("pid=<"), "{logged}");
    let out = warren(&["run", &crasher, "error"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("caused by: deliberate error from a component"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn process_wasm_entries_run_and_are_checked() {
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: crash
    kind: process.wasm
    source: file://crasher.wasm
    limits: { memory: 16MiB }
"#;
    let dir = app("wasmapp", &[("_index.yaml", index)]);
    std::fs::copy(warren_tests::component("crasher"), dir.join("crasher.wasm")).expect("copy");
    std::fs::copy(
        warren_tests::component("wrong_version"),
        dir.join("wrong.wasm"),
    )
    .expect("copy");
    let d = dir.display().to_string();
    let out = warren(&["check", &d]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // One component checked alone, as `run` would load it.
    let out = warren(&["check", &dir.join("crasher.wasm").display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let wrong = dir.join("wrong.wasm").display().to_string();
    let out = warren(&["check", &wrong]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("wrong.wasm") && stderr(&out).contains("warren:process@0.1.0"),
        "{}",
        stderr(&out)
    );
    // Bytes that are no component: one line naming the file.
    std::fs::write(dir.join("junk.wasm"), b"junk").expect("write");
    let out = warren(&["check", &dir.join("junk.wasm").display().to_string()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let line = stderr(&out)
        .lines()
        .find(|l| l.contains("junk.wasm: not a WebAssembly component"))
        .map(str::to_owned);
    assert!(
        line.is_some_and(|l| l.contains("magic") && l.contains("actual=[")),
        "{}",
        stderr(&out)
    );
    let out = warren(&["run", &d, "-x", "app:crash", "fine"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let bad = format!(
        "{index}  - name: wrong\n    kind: process.wasm\n    source: file://wrong.wasm\n    method: main\n"
    );
    std::fs::write(dir.join("_index.yaml"), &bad).expect("write");
    let out = warren(&["check", &d]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("entry 'app:wrong': key 'method': 'main'"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.join("_index.yaml"),
        bad.replace("    method: main\n", ""),
    )
    .expect("write");
    let out = warren(&["check", &d]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("entry 'app:wrong':")
            && stderr(&out).contains("@0.2.0, but this host implements warren:process@0.1.0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn component_output_goes_to_the_log_line_by_line_tagged_with_its_pid() {
    let probe = warren_tests::component("wasi_probe").display().to_string();
    let out = warren(&["run", &probe]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = stderr(&out);
    let line = |text: &str| log.lines().find(|l| l.contains(text)).unwrap_or_default();
    assert!(line("hello from stdout").contains("INFO"), "{log}");
    assert!(line("hello from stdout").contains("pid=<"), "{log}");
    assert!(line("hello from stderr").contains("WARN"), "{log}");
    assert!(line("a partial line").contains("pid=<"), "{log}");
}

#[test]
fn check_refuses_a_component_importing_what_its_entry_does_not_grant() {
    let index = |wasi: &str| {
        format!(
            "version: \"1.0\"\nnamespace: app\nentries:\n  - name: net\n    kind: process.wasm\n    source: file://net.wasm\n{wasi}"
        )
    };
    let dir = app("netapp", &[("_index.yaml", &index(""))]);
    std::fs::copy(warren_tests::component("net_probe"), dir.join("net.wasm")).expect("copy");
    let d = dir.display().to_string();
    let out = warren(&["check", &d]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("entry 'app:net'")
            && stderr(&out).contains("imports wasi:sockets/")
            && stderr(&out).contains("which is not granted"),
        "{}",
        stderr(&out)
    );
    let granted = index("    wasi: { network: true }\n");
    std::fs::write(dir.join("_index.yaml"), granted).expect("write");
    let out = warren(&["check", &d]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = warren(&["run", &d, "-x", "app:net"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn the_mixed_lua_and_webassembly_example_runs_and_checks_every_digest() {
    // Builds components/, which the example's entry points into.
    warren_tests::component("hasher");
    let out = warren(&["check", "examples/hashing"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = warren(&["run", "examples/hashing", "-x", "hashing:main"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("40 blocks hashed by 4 WebAssembly workers, every digest matches Lua's"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_catalog_example_copies_http_into_sqlite_under_supervision() {
    // Builds components/, which the example's `httpd` entry points into.
    warren_tests::component("httpd");
    let out = warren(&["check", "examples/catalog"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = warren(&["run", "examples/catalog", "-x", "catalog:main"]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("copied 50 items (total price 2350.00); 10 unavailable; 9 fetcher restarts"),
        "{log}"
    );
    assert!(log.contains("#1 item-14  98.50"), "{log}");
}

// ---- httpd: a component serving HTTP beside Lua ----

/// A terminal host (one worker, so the component and the Lua process share
/// it), the `httpd` component with the network granted, and a Lua main.
const HTTPD_INDEX: &str = r#"version: "1.0"
namespace: app
entries:
  - name: terminal
    kind: terminal.host
  - name: httpd
    kind: process.wasm
    source: file://httpd.wasm
    limits: { memory: 16MiB }
    wasi: { network: true }
  - name: main
    kind: process.lua
    source: file://process.lua
    method: main
    modules: [io, time]
"#;

/// Spawns httpd with its own pid, prints the address it is told, answers
/// each stdin line `ping` with `pong <n>` (so the test sees it run while
/// httpd waits on its socket), and on `stop` stops httpd and prints what
/// it returned.
const HTTPD_MAIN: &str = r#"local io = require("io")
local time = require("time")

local function within(ch, what)
    local r = channel.select({ ch:case_receive(), time.after("10s"):case_receive() })
    assert(r.channel == ch, "no " .. what .. " within 10s")
    return r.value
end

local function main()
    local inbox, events = process.inbox(), process.events()
    local httpd = process.spawn_monitored("app:httpd", "app:terminal", process.pid())
    local ready = within(inbox, "httpd.ready")
    assert(ready:topic() == "httpd.ready", ready:topic())
    io.print("ready", ready:payload():data())
    local pongs = 0
    while true do
        local line = io.readline()
        if line == nil or line == "stop" then break end
        pongs = pongs + 1
        io.print("pong", pongs)
    end
    process.send(httpd, "stop")
    local ev = within(events, "exit of httpd")
    assert(ev.kind == process.event.EXIT and ev.from == httpd, "not httpd's exit")
    assert(not ev.result.error, tostring(ev.result.error))
    io.print("served", ev.result.value)
end

return { main = main }
"#;

/// `warren run` in the background, its stdout read line by line; killed
/// if the test fails before it ends.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    fn start(args: &[&str]) -> Self {
        use std::io::{BufRead, Read};
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(args)
            .current_dir(common::repo())
            .env("RUST_LOG", "info")
            .env(
                "WARREN_CACHE_DIR",
                std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("warren starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        Running {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next line of stdout, within the deadline; else panics with
    /// its log.
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(warren_tests::DEADLINE) {
            Ok(line) => line,
            Err(e) => {
                let _ = self.child.kill();
                panic!("no line of stdout ({e}); its log:\n{}", self.log())
            }
        }
    }

    /// What it wrote to stderr, once it has exited.
    fn log(&mut self) -> String {
        let reader = self.stderr.take();
        reader.map_or_else(String::new, |h| h.join().expect("stderr reader"))
    }

    /// Writes `line` to its stdin.
    fn say(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Waits for it to exit, within the deadline; its status and stderr.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let deadline = std::time::Instant::now() + warren_tests::DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, self.log());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "warren did not exit in time"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `request` (raw bytes) on a new connection and returns the whole
/// response: status line, headers, body.
fn http(addr: &str, request: &[u8]) -> (String, Vec<String>, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(warren_tests::DEADLINE))
        .expect("timeout");
    stream.write_all(request).expect("send request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read response");
    parse_response(&text)
}

fn parse_response(text: &str) -> (String, Vec<String>, String) {
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let mut lines = head.split("\r\n").map(str::to_owned);
    let status = lines.next().expect("a status line");
    let headers: Vec<String> = lines.collect();
    let length = format!("Content-Length: {}", body.len());
    assert!(headers.contains(&length), "{headers:?} for {body:?}");
    assert!(
        headers.iter().any(|h| h == "Connection: close"),
        "{headers:?}"
    );
    (status, headers, body.to_owned())
}

fn get(addr: &str, path: &str) -> (String, Vec<String>, String) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
}

#[test]
fn the_httpd_component_serves_json_beside_a_running_lua_process_and_stops() {
    let dir = app(
        "httpdapp",
        &[("_index.yaml", HTTPD_INDEX), ("process.lua", HTTPD_MAIN)],
    );
    std::fs::copy(warren_tests::component("httpd"), dir.join("httpd.wasm")).expect("copy");
    let d = dir.display().to_string();
    let out = warren(&["check", &d]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let mut run = Running::start(&["run", &d, "-x", "app:main"]);
    let ready = run.line();
    let url = ready.strip_prefix("ready\t").expect("the address");
    let addr = url
        .strip_prefix("http://127.0.0.1:")
        .map(|port| format!("127.0.0.1:{port}"));
    let addr = addr.expect("a loopback http URL");

    let (status, _, body) = get(&addr, "/health");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok"));

    // Half a request: httpd waits for the rest on the one worker it shares
    // with the Lua process, which must still answer.
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    {
        use std::io::Write;
        slow.write_all(b"GET /items/3 HTTP/1.1\r\n").expect("send");
        run.say("ping");
        assert_eq!(run.line(), "pong\t1");
        slow.write_all(b"Host: test\r\n\r\n")
            .expect("send the rest");
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut slow, &mut text).expect("read");
    let (status, headers, body) = parse_response(&text);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers
            .iter()
            .any(|h| h == "Content-Type: application/json"),
        "{headers:?}"
    );
    assert_eq!(body, r#"{"id":3,"name":"item-3","price":21.5}"#);

    let (status, _, body) = get(&addr, "/items/55");
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable", "{body}");
    let (status, _, _) = get(&addr, "/nope");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    // A head of 8 KiB without its blank line is refused.
    let mut huge = b"GET /health HTTP/1.1\r\nX-Pad: ".to_vec();
    huge.resize(8 * 1024, b'a');
    let (status, _, _) = http(&addr, &huge);
    assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");

    run.say("stop");
    assert_eq!(run.line(), "served\t5");
    let (status, log) = run.finish();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "still listening"
    );
}

#[test]
fn a_memory_limit_too_large_to_pool_still_runs_the_application() {
    // The pool's slots are sized by the largest `limits.memory`; 4 GiB
    // times the pool does not fit in this machine's address space, and the
    // whole application (its Lua entries too) failed to start with an
    // error naming no entry. Instances are then made on demand, and the
    // warning names the entry.
    let index = r#"version: "1.0"
namespace: app
entries:
  - name: crash
    kind: process.wasm
    source: file://crasher.wasm
    limits: { memory: 4GiB }
  - name: main
    kind: process.lua
    source: file://main.lua
"#;
    let dir = app(
        "wasm-huge-memory",
        &[
            ("_index.yaml", index),
            ("main.lua", "return function() print('lua ran') end"),
        ],
    );
    std::fs::copy(warren_tests::component("crasher"), dir.join("crasher.wasm")).expect("copy");
    let d = dir.display().to_string();
    for args in [
        &["run", &d, "-x", "app:main"][..],
        &["run", &d, "-x", "app:crash", "fine"],
    ] {
        let out = warren(args);
        let log = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{log}");
        if log.contains("cannot be reserved") {
            assert!(
                log.contains("entry 'app:crash': limits.memory of 4294967296 bytes"),
                "{log}"
            );
        }
    }
}

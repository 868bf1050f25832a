//! The I/O modules (modules.md §1–2): `sql` on SQLite files and
//! `http_client` against real servers on 127.0.0.1 / 127.0.0.2, attacked
//! by a tenant that holds no grant, lies with its values, floods the host
//! with operations and handles, forges handles, waits on servers that never
//! answer and dies in the middle of its I/O.
//!
//! Guaranteed (modules.md, hostcall.rs): the shape of the arguments is
//! checked first, then the grant, then existence, so code without a grant
//! learns nothing; every value a process hands over is read raw (no
//! metamethod of the caller runs, nothing hangs); a process has at most
//! `max_ops_per_process` calls in flight and a host `max_ops_per_host`,
//! and a process at most `max_open_handles` handles (`RATE_LIMITED`
//! beyond); a handle is worthless outside its process; every call has a
//! deadline; and when a process exits, however it exits, its operations
//! are aborted and its transactions rolled back before its monitor hears
//! of the exit. Each case asserts the exact outcome, that the neighbour
//! kept ticking and (through the harness) that the runtime still starts
//! processes; the flood and exit cases also run an honest process after
//! the attack that needs the host's whole `max_ops_per_host` (so a slot
//! that leaked would show).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use warren_core::{Grants, Runtime, Value};
use warren_lua::{Databases, LuaProgram, MODULES};
use warren_tests::{App, TempDir, grants, run_on};

use crate::harness::{Outcome, app, attack_on, sqlite_dbs};

#[path = "../tests/io/server.rs"]
mod server;
use server::Server;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Every database of the app.
fn db_grant() -> Grants {
    grants(&[("db.get", "app.db:*")])
}

/// The test server on 127.0.0.1 (loopback needs its own grant).
fn local_grants() -> Grants {
    grants(&[
        ("http_client.request", "http://127.0.0.1:*"),
        ("http_client.private_ip", "127.0.0.1"),
    ])
}

/// The test server and the odd one on 127.0.0.2.
fn two_servers() -> Grants {
    grants(&[
        ("http_client.request", "http://127.0.0.1:*"),
        ("http_client.request", "http://127.0.0.2:*"),
        ("http_client.private_ip", "127.0.0.1"),
        ("http_client.private_ip", "127.0.0.2"),
    ])
}

/// Both of the above.
fn all_grants() -> Grants {
    grants(&[
        ("db.get", "app.db:*"),
        ("http_client.request", "http://127.0.0.1:*"),
        ("http_client.private_ip", "127.0.0.1"),
    ])
}

/// Adds entry `id` running `method` of `source` with `grants`.
fn entry(app: App, id: &str, source: &str, method: &str, grants: Grants) -> App {
    let mut program = LuaProgram::new(format!("{id}.lua"), source).with_modules(&MODULES);
    program.method = method.into();
    program.grants = Arc::new(grants);
    app.program(program.into_program(id))
}

/// Prepended to every attacker: modules, `res` (a `nil, err` result as
/// "Kind: message", anything else as "ok"), `kind` (just the kind),
/// `raised` (the error `f` raises, or "no error"), `lie` (a metatable
/// whose every metamethod records that it ran, and whose `__index`,
/// `__len` and `__pairs` would also loop forever once marked), `ran_text`,
/// `ready` (waits for a child's "ready" message, failing if it ended
/// first), `elapsed` and `tally` (counts the values `n` senders report).
const PRELUDE: &str = r#"
local sql = require("sql")
local http = require("http_client")
local time = require("time")
local function res(v, err)
    if v == nil and err ~= nil then return tostring(err:kind()) .. ": " .. tostring(err:message()) end
    if v == nil then return "nil" end
    return "ok"
end
local function kind(v, err)
    if v == nil and err ~= nil then return tostring(err:kind()) end
    if v == nil then return "nil" end
    return "ok"
end
local function raised(f, ...)
    local ok, e = pcall(f, ...)
    if ok then return "no error" end
    if type(e) == "table" and e.message then return "raised " .. tostring(e:kind()) .. ": " .. tostring(e:message()) end
    return "raised " .. tostring(e)
end
local ran = {}
local function mark(name) return function() ran[#ran + 1] = name; while #ran > 1000 do end return nil end end
local lie = {
    __index = function(t, k) mark("index")() return 7 end,
    __newindex = mark("newindex"),
    __len = function() mark("len")() return 3 end,
    __pairs = function(t) mark("pairs")() return function() while true do end end, t, nil end,
    __tostring = function() mark("tostring")() return "lie" end,
    __name = "lie",
    __eq = function() mark("eq")() return true end,
    __lt = function() mark("lt")() return true end,
    __le = function() mark("le")() return true end,
    __concat = function() mark("concat")() return "lie" end,
    __call = mark("call"),
    __close = mark("close"),
    __unm = mark("unm"), __add = mark("add"), __idiv = mark("idiv"),
}
local function liar(t) return setmetatable(t or {}, lie) end
local function ran_text() return #ran == 0 and "none" or table.concat(ran, ",") end
local function ready(pid)
    local r = channel.select({ process.inbox():case_receive(), process.events():case_receive(),
        time.after("10s"):case_receive() })
    if r.channel == process.inbox() then return r.value:payload():data() end
    if r.value and r.value.result then error("child " .. tostring(pid) .. " ended first: " .. tostring(r.value.result.error)) end
    error("child " .. tostring(pid) .. " never got ready")
end
local function exited(within)
    local r = channel.select({ process.events():case_receive(), time.after(within or "10s"):case_receive() })
    assert(r.value and r.value.kind == process.event.EXIT, "no EXIT event in time")
    return r.value
end
local function elapsed(t0) return time.now():sub(t0):seconds() end
-- Receives `n` values from channel `results`, each within `within` (else
-- fails naming `what`), and returns their counts as sorted "value=count".
local function tally(results, n, within, what)
    local counts = {}
    for _ = 1, n do
        local r = channel.select({ results:case_receive(), time.after(within):case_receive() })
        assert(r.channel == results, what .. " did not end")
        counts[r.value] = (counts[r.value] or 0) + 1
    end
    local keys = {}
    for k, c in pairs(counts) do keys[#keys + 1] = k .. "=" .. c end
    table.sort(keys)
    return table.concat(keys, " ")
end
-- An SQLite query that never ends (no query_timeout on these databases).
local ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c"
"#;

/// `PRELUDE` followed by `body`.
fn src(body: &str) -> String {
    format!("{PRELUDE}\n{body}")
}

/// Waits for the honest check of [`honest`]: 4 processes × 8 requests to
/// a server that never answers, each with a 0.3 s timeout. All 32 must be
/// admitted (every one ends in `TIMEOUT`, none in `RATE_LIMITED`): the
/// host's whole `max_ops_per_host`, so a slot an attack leaked shows.
const HONEST: &str = r#"
local http = require("http_client")
local function child(parent, url)
    local results = channel.new(16)
    for i = 1, 8 do
        coroutine.spawn(function()
            local _, err = http.get(url, { timeout = 0.3 })
            results:send(err and tostring(err:kind()) or "ok")
        end)
    end
    local counts = {}
    for i = 1, 8 do
        local k = results:receive()
        counts[k] = (counts[k] or 0) + 1
    end
    process.send(parent, "counts", counts)
end
local function main(url)
    for i = 1, 4 do process.spawn("h:honest_child", "test:host", process.pid(), url) end
    local total = {}
    for i = 1, 4 do
        local msg = process.inbox():receive()
        for k, n in pairs(msg:payload():data()) do total[k] = (total[k] or 0) + n end
    end
    local keys = {}
    for k, n in pairs(total) do keys[#keys + 1] = k .. "=" .. n end
    table.sort(keys)
    return table.concat(keys, " ")
end
return { main = main, child = child }
"#;

/// The harness's app with the honest check and `dbs`.
fn io_app(dbs: Option<Arc<Databases>>) -> App {
    let mut a = app();
    if let Some(dbs) = dbs {
        a = a.databases(dbs);
    }
    let a = entry(a, "h:honest", HONEST, "main", local_grants());
    entry(a, "h:honest_child", HONEST, "child", local_grants())
}

/// Runs the honest check on `runtime` against `server`: every one of the
/// host's `max_ops_per_host` slots is free again.
fn honest(runtime: &Runtime, server: &Server) {
    let v = run_on(runtime, "h:honest", vec![Value::str(server.url("/never"))]);
    assert_eq!(
        v,
        Ok(Value::str("Timeout=32")),
        "an honest process could not use the host's operation slots after the attack"
    );
}

/// Splits an attacker's " | "-joined result.
fn parts(out: &Outcome) -> Vec<String> {
    out.assert_neighbour_ticks();
    out.value().split(" | ").map(str::to_owned).collect()
}

/// Asserts `got` is `kind` ("Kind: message") with `fragment` in it.
fn refused(got: &str, kind: &str, fragment: &str) {
    let got_kind = got.split(':').next().unwrap_or_default();
    assert!(
        got_kind == kind && got.contains(fragment),
        "expected {kind} with {fragment:?}, got {got:?}"
    );
}

/// A small server on `ip` for redirects and stalls, counting connections:
/// `/to?<url>` answers 302 to `<url>`; `/ok` answers 200 "fine"; `/big?<n>`
/// a body of n bytes; `/stall` sends headers and part of a body, then
/// holds the connection silent; `/hold` reads and sends nothing.
struct Odd {
    port: u16,
    ip: &'static str,
    accepted: Arc<AtomicUsize>,
}

impl Odd {
    fn start(ip: &'static str) -> Odd {
        let listener = TcpListener::bind((ip, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || odd_serve(conn));
            }
        });
        Odd { port, ip, accepted }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.ip, self.port)
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn odd_serve(conn: TcpStream) {
    let mut out = conn.try_clone().expect("clone");
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim_end().is_empty() {
            break;
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    if let Some(target) = path.strip_prefix("/to?") {
        let head = format!(
            "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let _ = out.write_all(head.as_bytes());
    } else if let Some(n) = path.strip_prefix("/big?") {
        let n: usize = n.parse().unwrap_or(0);
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n");
        let _ = out.write_all(head.as_bytes());
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len());
            if out.write_all(&chunk[..k]).is_err() {
                break;
            }
            left -= k;
        }
    } else if path == "/hold" {
        // Reads nothing, answers nothing.
        std::thread::sleep(Duration::from_secs(10));
    } else if path == "/ok" {
        let _ =
            out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfine");
    } else if path == "/stall" {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
        let _ = reader
            .get_mut()
            .set_read_timeout(Some(Duration::from_secs(30)));
        let mut sink = [0u8; 64];
        let _ = reader.read(&mut sink);
    } else {
        let _ = out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
}

// ---------------------------------------------------------------------------
// 1. No grant, no reach
// ---------------------------------------------------------------------------

/// `sql.get` on every kind of id, for an entry whose grants are `g`.
const SQL_GET_PROBE: &str = r#"
return function()
    local out = {}
    local function try(id)
        local ok, db, err = pcall(sql.get, id)
        if not ok then return "raised " .. tostring(db) end
        return res(db, err)
    end
    for _, id in ipairs({ "app.db:main", "app.db:nope", "app.db:secret", "app.db:*", "*", "",
                          "app.db:main\0", "APP.DB:MAIN", " app.db:main", "app.db:main/../secret",
                          "app.db:\255\254" }) do
        out[#out + 1] = try(id)
    end
    out[#out + 1] = kind(sql.get(("x"):rep(1 << 20)))
    out[#out + 1] = try(42)
    out[#out + 1] = try(nil)
    out[#out + 1] = try(liar())
    out[#out + 1] = ran_text()
    return table.concat(out, " | ")
end"#;

fn sql_get_probe(g: Option<Grants>) -> Vec<String> {
    let dir = TempDir::new("get");
    let a = io_app(Some(sqlite_dbs(&dir, &["main", "secret"])));
    let source = src(SQL_GET_PROBE);
    let a = match g {
        Some(g) => a.granted("h:attacker", &source, g),
        None => a.entry("h:attacker", &source),
    };
    parts(&attack_on(&a.start(), "h:attacker", Vec::new()))
}

/// What a call copies out of its process is held against its host's
/// `memory_total`, not only the process's own room: counted per process
/// only, processes that queued SQL parameters behind an open transaction
/// and exited made the host hold 3.5 GB under a 64 MiB `memory_total` (red
/// team Q). Five copies of a 12 MiB string (60 MiB, within what the
/// process may hold) do not fit beside the string on a 64 MiB host; a
/// small parameter does. A host of its own: the string is made in a run
/// that has the host's room to itself.
#[test]
fn a_calls_copies_take_room_from_its_hosts_memory_total() {
    let dir = TempDir::new("hostroom");
    let limits = warren_core::HostLimits {
        memory_total: 64 << 20,
        memory_per_process: 64 << 20,
        ..crate::harness::limits()
    };
    let source = r#"local sql = require("sql")
return function()
    local db = assert(sql.get("app.db:main"))
    local s = string.rep("x", 12 << 20)
    require("time").sleep("1ms") -- the string counted in the host's total
    local ok, err = db:execute("SELECT ?, ?, ?, ?, ?", { s, s, s, s, s })
    local small = db:execute("SELECT ?", { "x" })
    return tostring(ok) .. " " .. tostring(err and err:kind()) .. " "
        .. tostring(err and err:message()) .. " | " .. tostring(small ~= nil)
end"#;
    let runtime = App::new()
        .limits(limits)
        .databases(sqlite_dbs(&dir, &["main"]))
        .granted("h:caller", source, grants(&[("db.get", "app.db:main")]))
        .start();
    let v = match run_on(&runtime, "h:caller", Vec::new()) {
        Ok(v) => v.as_str().map(str::to_owned).expect("text"),
        Err(e) => panic!("the caller failed: {e}"),
    };
    assert!(v.starts_with("nil RateLimited sql: host 'test:host' has no room left in its memory_total (67108864 bytes)"), "{v}");
    assert!(v.ends_with(" | true"), "{v}");
}

/// The message of a refusal with the id it names replaced by `<id>`.
fn shape(got: &str, id: &str) -> String {
    got.replace(id, "<id>")
}

#[test]
fn no_grant_reaches_no_database_and_tells_nothing_of_what_exists() {
    let r = sql_get_probe(None);
    // An existing database and a missing one are refused alike: same kind,
    // same message but for the id.
    refused(
        &r[0],
        "PermissionDenied",
        "db.get on 'app.db:main' is not granted",
    );
    assert_eq!(shape(&r[0], "app.db:main"), shape(&r[1], "app.db:nope"));
    assert_eq!(shape(&r[0], "app.db:main"), shape(&r[2], "app.db:secret"));
    // A pattern is an id like any other, not a wildcard query.
    refused(&r[3], "PermissionDenied", "'app.db:*'");
    refused(&r[4], "PermissionDenied", "'*'");
    refused(&r[5], "Invalid", "non-empty string");
    for got in &r[6..10] {
        refused(got, "PermissionDenied", "not granted");
    }
    refused(&r[10], "Invalid", "not UTF-8");
    assert_eq!(r[11], "PermissionDenied", "a 1 MiB id");
    refused(&r[12], "Invalid", "non-empty string");
    refused(&r[13], "Invalid", "non-empty string");
    refused(&r[14], "Invalid", "non-empty string");
    assert_eq!(r[15], "none", "a metamethod of the id ran");
}

#[test]
fn a_grant_on_one_database_reaches_only_that_one() {
    let r = sql_get_probe(Some(grants(&[("db.get", "app.db:main")])));
    assert_eq!(r[0], "ok");
    // Ungranted: existing (secret) and missing (nope) look the same.
    refused(&r[1], "PermissionDenied", "'app.db:nope'");
    refused(&r[2], "PermissionDenied", "'app.db:secret'");
    assert_eq!(shape(&r[1], "app.db:nope"), shape(&r[2], "app.db:secret"));
    refused(&r[3], "PermissionDenied", "'app.db:*'");
    for got in &r[6..10] {
        refused(got, "PermissionDenied", "not granted");
    }
    assert_eq!(r[15], "none");
}

#[test]
fn a_granted_handle_retargeted_at_another_database_is_refused_on_every_call() {
    // The handle's id is a field its holder can overwrite: every call on a
    // database re-checks the grant, so pointing it elsewhere reaches
    // nothing new.
    let dir = TempDir::new("retarget");
    let source = src(r#"
return function()
    local db = assert(sql.get("app.db:main"))
    local out = {}
    for _, target in ipairs({ "app.db:secret", "app.db:nope", "", 42 }) do
        rawset(db, "_id", target)
        rawset(db, "_released", nil)
        local ok, why = pcall(function()
            return table.concat({ res(db:query("SELECT 1")), res(db:execute("SELECT 1")), res(db:prepare("SELECT 1")),
                res(db:begin()), res(db:stats()) }, " / ")
        end)
        out[#out + 1] = ok and why or ("raised " .. tostring(why))
    end
    return table.concat(out, " | ")
end"#);
    let a = io_app(Some(sqlite_dbs(&dir, &["main", "secret"])));
    let a = a.granted("h:attacker", &source, grants(&[("db.get", "app.db:main")]));
    let r = parts(&attack_on(&a.start(), "h:attacker", Vec::new()));
    for (got, id) in r[..2].iter().zip(["app.db:secret", "app.db:nope"]) {
        let calls: Vec<&str> = got.split(" / ").collect();
        assert_eq!(calls.len(), 5, "{got}");
        for call in calls {
            refused(call, "PermissionDenied", &format!("'{id}'"));
        }
    }
    for call in r[2].split(" / ") {
        refused(call, "Invalid", "non-empty");
    }
    // A non-string id is refused by the module before any host call
    // (`db_target` in modules/sql.lua): it names no database.
    let calls: Vec<&str> = r[3].split(" / ").collect();
    assert_eq!(calls.len(), 5, "{}", r[3]);
    for call in calls {
        refused(call, "Invalid", "the database handle was altered");
    }
}

/// Probes a list of loopback and metadata spellings; returns each result.
const HTTP_REACH: &str = r#"
return function(port)
    local urls = {
        "http://127.0.0.1:" .. port .. "/json",
        "http://localhost:" .. port .. "/json",
        "http://LOCALHOST:" .. port .. "/json",
        "http://[::1]:" .. port .. "/json",
        "http://0.0.0.0:" .. port .. "/json",
        "http://[::]:" .. port .. "/json",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:" .. port .. "/json",
        "http://[0:0:0:0:0:ffff:7f00:1]:" .. port .. "/json",
        "http://2130706433:" .. port .. "/json",
        "http://0x7f000001:" .. port .. "/json",
        "http://0177.0.0.1:" .. port .. "/json",
        "http://127.1:" .. port .. "/json",
        "http://user:pw@127.0.0.1:" .. port .. "/json",
        "https://127.0.0.1:" .. port .. "/json",
        "http://[fe80::1]:" .. port .. "/json",
        "http://100.64.0.1/",
        "http://10.0.0.1/",
    }
    local out = {}
    for _, url in ipairs(urls) do out[#out + 1] = res(http.get(url, { timeout = 2 })) end
    local _, batch_err = http.request_batch({ { "GET", urls[1] }, { "GET", urls[7] } })
    out[#out + 1] = res(nil, batch_err)
    return table.concat(out, " | ")
end"#;

fn http_reach(g: Grants) {
    let server = Server::start();
    let a = io_app(None).granted("h:attacker", &src(HTTP_REACH), g);
    let runtime = a.start();
    let out = attack_on(
        &runtime,
        "h:attacker",
        vec![Value::Int(i64::from(server.port))],
    );
    let r = parts(&out);
    assert_eq!(r.len(), 19);
    for got in &r {
        refused(got, "PermissionDenied", "");
    }
    assert_eq!(server.connections(), 0, "a request reached the server");
}

#[test]
fn no_grant_reaches_no_address() {
    http_reach(Grants::new());
}

#[test]
fn any_public_host_is_not_loopback_in_any_spelling() {
    // Every destination granted, no private address: the dialled address
    // is what counts, however the URL spells it.
    http_reach(grants(&[("http_client.request", "*:*")]));
}

#[test]
fn a_redirect_from_a_granted_place_to_loopback_is_refused() {
    let server = Server::start();
    let odd = Odd::start("127.0.0.2");
    let source = src(r#"
return function(to, port)
    local out = {}
    local targets = {
        "http://127.0.0.1:" .. port .. "/json",
        "http://localhost:" .. port .. "/json",
        "http://[::1]:" .. port .. "/json",
        "http://2130706433:" .. port .. "/json",
        "http://[::ffff:127.0.0.1]:" .. port .. "/json",
        "http://0.0.0.0:" .. port .. "/json",
        "http://169.254.169.254/latest/meta-data/",
    }
    for _, t in ipairs(targets) do out[#out + 1] = res(http.get(to .. t, { timeout = 2 })) end
    -- The control: a redirect that stays on the granted address works.
    local ok = http.get(to .. to:gsub("/to%?$", "/ok"))
    out[#out + 1] = ok and (ok.status_code .. " " .. tostring(ok.body)) or "control failed"
    return table.concat(out, " | ")
end"#);
    let g = grants(&[
        ("http_client.request", "*:*"),
        ("http_client.private_ip", "127.0.0.2"),
    ]);
    let a = io_app(None).granted("h:attacker", &source, g);
    let out = attack_on(
        &a.start(),
        "h:attacker",
        vec![
            Value::str(odd.url("/to?")),
            Value::Int(i64::from(server.port)),
        ],
    );
    let r = parts(&out);
    assert_eq!(r.len(), 8);
    for got in &r[..7] {
        refused(got, "PermissionDenied", "");
    }
    assert_eq!(r[7], "200 fine");
    assert_eq!(server.connections(), 0, "a redirect reached loopback");
    assert_eq!(odd.connections(), 9, "every request reached the redirector");
}

/// Main is granted everything; it spawns `h:child` (no grants) and
/// `h:sibling` (granted, of another entry) and reports what each reached.
const FAMILY: &str = r#"
local function probe(base)
    local db, err = sql.get("app.db:main")
    local r, herr = http.get(base .. "/json", { timeout = 2 })
    return res(db, err) .. " / " .. res(r, herr)
end
local function child(parent, base, db_copy)
    local out = probe(base)
    -- The parent's database handle, as it arrives: a plain table.
    local forged = type(db_copy) == "table" and getmetatable(db_copy) == nil and db_copy.query == nil
    process.send(parent, "report", out .. " / plain copy " .. tostring(forged))
end
local function main(base)
    local db = assert(sql.get("app.db:main"))
    local mine = probe(base)
    local out = { mine }
    for _, id in ipairs({ "h:child", "h:sibling" }) do
        local pid = process.spawn_monitored(id, "test:host", process.pid(), base, db)
        out[#out + 1] = ready(pid)
        exited()
    end
    return table.concat(out, " | ")
end
return { main = main, child = child }
"#;

#[test]
fn grants_are_per_entry_and_no_child_inherits_them() {
    let dir = TempDir::new("family");
    let server = Server::start();
    let source = src(FAMILY);
    let a = io_app(Some(sqlite_dbs(&dir, &["main"])));
    let a = entry(a, "h:attacker", &source, "main", all_grants());
    let a = entry(a, "h:child", &source, "child", Grants::new());
    // The sibling holds the network grant only.
    let a = entry(a, "h:sibling", &source, "child", local_grants());
    let runtime = a.start();
    let before = server.connections();
    let out = attack_on(&runtime, "h:attacker", vec![Value::str(server.url(""))]);
    let r = parts(&out);
    assert_eq!(r[0], "ok / ok", "the parent reaches both");
    let child: Vec<&str> = r[1].split(" / ").collect();
    refused(child[0], "PermissionDenied", "'app.db:main'");
    refused(child[1], "PermissionDenied", "");
    assert_eq!(child[2], "plain copy true");
    let sibling: Vec<&str> = r[2].split(" / ").collect();
    refused(sibling[0], "PermissionDenied", "'app.db:main'");
    assert_eq!(sibling[1], "ok", "the sibling's own grant works");
    assert_eq!(
        server.connections() - before,
        2,
        "only the parent and the sibling reached the server"
    );
}

// ---------------------------------------------------------------------------
// 2. Values that lie
// ---------------------------------------------------------------------------

#[test]
fn sql_reads_every_value_raw_and_bounds_it() {
    let dir = TempDir::new("lie");
    let source = src(r#"
return function()
    local db = assert(sql.get("app.db:main"))
    assert(db:execute("CREATE TABLE t (v)"))
    local out = {}
    local function add(s) out[#out + 1] = s end
    -- 1-3: params tables whose metamethods would answer, loop or mark
    add(res(db:query("SELECT ? AS v", liar())))
    local rows = db:query("SELECT ? AS v", liar({ 5 }))
    add(rows and tostring(rows[1].v) or "failed")
    add(res(db:query("SELECT 1", liar({ [1] = nil, x = 1 }))))
    -- 4-7: the SQL, a parameter, an sql.as value, a forged sql.as
    add(res(db:query(liar(), {})))
    add(res(db:query("SELECT ? AS v", { liar() })))
    add(res(db:query("SELECT ? AS v", { sql.as.text(liar()) })))
    local w = sql.as.int(1)
    rawset(w, "v", liar())
    add(res(db:query("SELECT ? AS v", { w })))
    -- 8-10: options and names
    local tx, err = db:begin(liar())
    add(res(tx, err))
    if tx then
        add(res(tx:savepoint(liar())))
        tx:rollback()
    else
        add("no tx")
    end
    add(res(db:begin({ isolation = liar(), read_only = liar() })))
    -- 11-14: huge keys, many entries, itself, odd keys only
    add(res(db:query("SELECT ? AS v", { [1e9] = 1 })))
    local big = {}
    for i = 1, 100000 do big[i] = i end
    add(res(db:query("SELECT ? AS v", big)))
    local p = {}
    p[1] = p
    add(res(db:query("SELECT ? AS v", p)))
    rows = db:query("SELECT 1 AS v", { a = 1, [1.5] = 2, [-1] = 3, [0] = 4, [math.huge] = 5 })
    add(rows and tostring(rows[1].v) or "failed")
    -- 15-18: NUL bytes, bad UTF-8, 2 MiB of SQL, deep nesting
    add(res(db:execute("INSERT INTO t VALUES (1)\0; DROP TABLE t")))
    rows = db:query("SELECT ? AS v, ? AS b", { "a\0b", sql.as.binary("\0\1\0") })
    add(rows and (#rows[1].v .. "," .. #rows[1].b) or "failed")
    add(res(db:query("SELECT '\255' AS v")))
    add(res(db:query("SELECT 1 AS v -- " .. ("x"):rep(2 << 20))))
    add(res(db:query("SELECT " .. ("("):rep(100000) .. "1" .. (")"):rep(100000))))
    -- 19: prepared statements read their params raw too
    local st = assert(db:prepare("SELECT ? AS v"))
    add(res(st:query(liar())))
    st:close()
    -- 20-21: the table survived and nothing ran
    rows = db:query("SELECT count(*) AS n FROM sqlite_master WHERE name = 't'")
    add(tostring(rows and rows[1].n))
    add(ran_text())
    return table.concat(out, " | ")
end"#);
    let a = io_app(Some(sqlite_dbs(&dir, &["main"]))).granted("h:attacker", &source, db_grant());
    let out = attack_on(&a.start(), "h:attacker", Vec::new());
    let r = parts(&out);
    refused(&r[0], "Invalid", "");
    assert_eq!(r[1], "5", "the raw parameter");
    assert_eq!(r[2], "ok");
    refused(&r[3], "Invalid", "must be a string");
    refused(&r[4], "Invalid", "parameter 1 is a table");
    refused(&r[5], "Invalid", "sql.as.text cannot take a table");
    refused(&r[6], "Invalid", "sql.as.int cannot take a table");
    assert_eq!(r[7], "ok", "begin with options read raw: the defaults");
    refused(&r[8], "Invalid", "savepoint name");
    refused(&r[9], "Invalid", "isolation");
    refused(&r[10], "Invalid", "past the limit");
    refused(&r[11], "Invalid", "past the limit");
    refused(&r[12], "Invalid", "parameter 1 is a table");
    assert_eq!(r[13], "1");
    assert_eq!(r[14], "ok", "SQL text ends at a NUL byte");
    assert_eq!(r[15], "3,3", "NUL bytes in values pass through intact");
    refused(&r[16], "Invalid", "UTF-8");
    refused(&r[17], "Invalid", "longer than the limit");
    refused(&r[18], "Invalid", "");
    refused(&r[19], "Invalid", "");
    assert_eq!(r[20], "1", "the table survived the NUL-separated DROP");
    assert_eq!(r[21], "none", "a metamethod of the caller ran");
}

#[test]
fn http_reads_every_option_raw_and_bounds_it() {
    let server = Server::start();
    let source = src(r#"
return function(base, hold)
    local out = {}
    local function add(s) out[#out + 1] = s end
    local function status(r, err) if r then return tostring(r.status_code) end return res(r, err) end
    -- 1-2: option tables whose metamethods would answer
    add(status(http.get(base .. "/json", liar())))
    local e = http.get(base .. "/echo", { headers = liar({ ["X-Real"] = "1" }), query = liar({ q = "1" }),
        cookies = liar({ c = "2" }), auth = liar({ user = "u" }) })
    add(e and tostring(e.body:find("x-real=1", 1, true) ~= nil and e.body:find("cookie=c=2", 1, true) ~= nil) or "failed")
    -- 3-6: keys and values that are not text; 10^5 entries
    add(res(http.get(base .. "/json", { headers = { [{}] = "x" } })))
    add(res(http.get(base .. "/json", { headers = { X = liar() } })))
    local many = {}
    for i = 1, 100000 do many[i] = "v" end
    add(res(http.get(base .. "/json", { headers = many })))
    add(res(http.get(base .. "/json", { query = many })))
    -- 7-9: CR/LF smuggling in a header, a method, a URL
    add(res(http.get(base .. "/echo", { headers = { ["X-A"] = "1\r\nX-Injected: yes" } })))
    add(res(http.request("GET /x HTTP/1.1\r\nX-Injected: yes\r\n", base .. "/echo")))
    local u = http.get(base .. "/echo?a=1\r\nX-Injected: yes")
    add(u and tostring(u.body:find("x-injected=yes", 1, true) == nil) or "refused")
    -- 10-14: body, timeout, url, tls, files that lie
    add(res(http.post(base .. "/echo", { body = liar() })))
    add(res(http.get(base .. "/json", { timeout = liar() })))
    add(res(http.get(base .. "/json", { timeout = 0 / 0 })))
    add(res(http.get(liar())))
    add(status(http.get(base .. "/json", { tls = liar(), files = liar({ }) })))
    -- 15-16: batches whose list lies or is too long
    add(res(http.request_batch(liar())))
    local long = {}
    for i = 1, 65 do long[i] = { "GET", base .. "/json" } end
    add(res(http.request_batch(long)))
    -- 17: a body near the memory limit to a server that does not read it
    many = nil
    local body = ("x"):rep(4 << 20)
    add(res(http.post(hold, { body = body, timeout = 0.3 })))
    add(ran_text())
    return table.concat(out, " | ")
end"#);
    let odd = Odd::start("127.0.0.2");
    let a = io_app(None).granted("h:attacker", &source, two_servers());
    let out = attack_on(
        &a.start(),
        "h:attacker",
        vec![Value::str(server.url("")), Value::str(odd.url("/hold"))],
    );
    let r = parts(&out);
    assert_eq!(r[0], "200", "options read raw: the defaults");
    assert_eq!(r[1], "true", "the raw headers and cookies were sent");
    refused(&r[2], "Invalid", "");
    refused(&r[3], "Invalid", "");
    refused(&r[4], "Invalid", "more than 1024");
    refused(&r[5], "Invalid", "more than 1024");
    refused(&r[6], "Invalid", "");
    refused(&r[7], "Invalid", "");
    assert!(
        r[8] == "true" || r[8] == "refused",
        "a header was smuggled: {}",
        r[8]
    );
    refused(&r[9], "Invalid", "body");
    refused(&r[10], "Invalid", "timeout");
    refused(&r[11], "Invalid", "timeout");
    refused(&r[12], "Invalid", "URL");
    assert_eq!(r[13], "200");
    refused(&r[14], "Invalid", "empty");
    refused(&r[15], "Invalid", "more than 64");
    refused(&r[16], "Timeout", "");
    assert_eq!(r[17], "none", "a metamethod of the caller ran");
}

// ---------------------------------------------------------------------------
// 3. Flooding
// ---------------------------------------------------------------------------

#[test]
fn a_flood_of_requests_is_refused_past_max_ops_per_process() {
    let server = Server::start();
    let source = src(r#"
return function(url)
    local results = channel.new(512)
    for i = 1, 300 do
        coroutine.spawn(function()
            local _, err = http.get(url, { timeout = 60 })
            results:send(err and (tostring(err:kind()) .. (err:message():find("max_ops_per_process") and "/process" or "/other")) or "ok")
        end)
    end
    local counts, n = {}, 0
    while true do
        local r = channel.select({ results:case_receive(), time.after("300ms"):case_receive() })
        if r.channel ~= results then break end
        counts[r.value] = (counts[r.value] or 0) + 1
        n = n + 1
    end
    local keys = {}
    for k, c in pairs(counts) do keys[#keys + 1] = k .. "=" .. c end
    table.sort(keys)
    -- Returns with 8 requests still waiting: its exit aborts them.
    return table.concat(keys, " ")
end"#);
    let a = io_app(None).granted("h:attacker", &source, local_grants());
    let runtime = a.start();
    let out = attack_on(
        &runtime,
        "h:attacker",
        vec![Value::str(server.url("/never"))],
    );
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), "RateLimited/process=292");
    honest(&runtime, &server);
}

#[test]
fn a_flood_of_malformed_requests_is_refused_as_invalid_not_rate_limited() {
    // Malformed URLs fail on the worker, before any operation starts: a
    // flood of them from many coroutines costs no operation slot.
    let server = Server::start();
    let source = src(r#"
return function()
    local urls = { "not a url", "", "ftp://example.com/", "http://", "gopher://x" }
    local results = channel.new(512)
    for i = 1, 200 do
        coroutine.spawn(function()
            local _, err = http.get(urls[i % #urls + 1])
            results:send(err and tostring(err:kind()) or "ok")
        end)
    end
    return tally(results, 200, "5s", "a request")
end"#);
    let a = io_app(None).granted("h:attacker", &source, local_grants());
    let runtime = a.start();
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), "Invalid=200");
    honest(&runtime, &server);
}

/// Five processes of one tenant, 8 requests each: the host admits 32.
const FLOODERS: &str = r#"
local function flooder(parent, url)
    local results = channel.new(16)
    for i = 1, 8 do
        coroutine.spawn(function()
            local _, err = http.get(url, { timeout = 60 })
            results:send(err and err:message() or "ok")
        end)
    end
    local refused, host = 0, 0
    while true do
        local r = channel.select({ results:case_receive(), time.after("200ms"):case_receive() })
        if r.channel ~= results then break end
        refused = refused + 1
        if r.value:find("max_ops_per_host") then host = host + 1 end
    end
    process.send(parent, "report", refused * 100 + host)
    process.inbox():receive() -- until terminated
end
local function main(url)
    local pids = {}
    for i = 1, 5 do pids[i] = process.spawn_monitored("h:flooder", "test:host", process.pid(), url) end
    local refused, host = 0, 0
    for i = 1, 5 do
        local n = ready(pids[i])
        refused, host = refused + n // 100, host + n % 100
    end
    for i = 1, 5 do process.terminate(pids[i]) end
    for i = 1, 5 do exited() end
    return refused .. " " .. host
end
return { main = main, flooder = flooder }
"#;

#[test]
fn processes_flooding_together_are_refused_past_max_ops_per_host() {
    let server = Server::start();
    let source = src(FLOODERS);
    let a = entry(io_app(None), "h:attacker", &source, "main", local_grants());
    let a = entry(a, "h:flooder", &source, "flooder", local_grants());
    let runtime = a.start();
    let out = attack_on(
        &runtime,
        "h:attacker",
        vec![Value::str(server.url("/never"))],
    );
    out.assert_neighbour_ticks();
    assert_eq!(
        out.value(),
        "8 8",
        "40 requests, 32 admitted, 8 refused by the host"
    );
    honest(&runtime, &server);
}

#[test]
fn a_flood_of_slow_queries_is_refused_past_max_ops_per_process() {
    let dir = TempDir::new("qflood");
    let server = Server::start();
    let source = src(r#"
return function()
    local db = assert(sql.get("app.db:main"))
    local results = channel.new(128)
    for i = 1, 100 do
        coroutine.spawn(function()
            local rows, err = db:query([[WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)
                SELECT count(*) AS n FROM c]])
            results:send(rows and tostring(rows[1].n) or tostring(err:kind()))
        end)
    end
    return tally(results, 100, "10s", "a query")
end"#);
    let a = io_app(Some(sqlite_dbs(&dir, &["main"]))).granted("h:attacker", &source, db_grant());
    let runtime = a.start();
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), "100000=8 RateLimited=92");
    honest(&runtime, &server);
}

#[test]
fn opening_handles_stops_at_max_open_handles() {
    let dir = TempDir::new("handles");
    let server = Server::start();
    let source = src(r#"
return function(base)
    local db = assert(sql.get("app.db:main"))
    local db2 = assert(sql.get("app.db:other"))
    assert(db2:execute("CREATE TABLE t (v)"))
    local held, first = {}, nil
    for i = 1, 100 do
        local st, err = db:prepare("SELECT 1")
        if st then held[#held + 1] = st else first = first or err end
    end
    -- At the limit a transaction is begun, refused and rolled back, and a
    -- stream is opened, refused and closed.
    local _, berr = db2:begin()
    local _, serr = http.get(base .. "/lines", { stream = true })
    local _, terr = db:prepare("SELECT 2")
    held[1]:close()
    held[1]:close() -- idempotent: frees one slot, not two
    local tx = assert(db2:begin())
    assert(tx:execute("INSERT INTO t VALUES (1)"))
    local _, over = db:prepare("SELECT 3")
    assert(tx:commit())
    local n = assert(db2:query("SELECT count(*) AS n FROM t"))[1].n
    return table.concat({ #held, kind(nil, first), kind(nil, berr), kind(nil, serr), kind(nil, terr),
        kind(nil, over), n, first:message():find("max_open_handles") and "named" or first:message() }, " ")
end"#);
    let a = io_app(Some(sqlite_dbs(&dir, &["main", "other"]))).granted(
        "h:attacker",
        &source,
        all_grants(),
    );
    let runtime = a.start();
    let out = attack_on(&runtime, "h:attacker", vec![Value::str(server.url(""))]);
    out.assert_neighbour_ticks();
    assert_eq!(
        out.value(),
        "16 RateLimited RateLimited RateLimited RateLimited RateLimited 1 named"
    );
    honest(&runtime, &server);
}

// ---------------------------------------------------------------------------
// 4. Handles
// ---------------------------------------------------------------------------

/// The victim holds a transaction with an uncommitted row, a statement
/// and a stream, and sends them all to `h:thief`; the thief tries every
/// way to use them. Afterwards the victim's transaction must be intact
/// (still active, its row uncommitted) and rolled back by the victim.
const HANDLES: &str = r#"
local function thief(parent, loot)
    local out = {}
    local function add(s) out[#out + 1] = s end
    -- Copies: plain tables, no methods.
    add(tostring(getmetatable(loot.tx) == nil and loot.tx.commit == nil and loot.stmt.query == nil
        and loot.stream.read == nil))
    add(raised(function() return loot.tx:commit() end))
    -- Its own handles of each type, to reach the module's methods.
    local db = assert(sql.get("app.db:other"))
    local tx = assert(db:begin())
    local st = assert(tx:prepare("SELECT 1"))
    local r = assert(http.get(loot.base .. "/lines", { stream = true }))
    add(raised(tx.commit, loot.tx))
    add(raised(st.query, loot.stmt))
    add(raised(r.stream.read, loot.stream))
    -- Its own handles pointed at the victim's ids: they name only the
    -- thief's own table, so they reach nothing of the victim's.
    local kinds = {}
    for _, id in ipairs({ loot.tx._h, loot.stmt._h, loot.stream._h }) do
        rawset(tx, "_h", id)
        kinds[#kinds + 1] = kind(tx:execute("DELETE FROM t")) .. "/" .. kind(tx:commit())
        rawset(st, "_h", id)
        kinds[#kinds + 1] = kind(st:query()) .. "/" .. tostring(st:close())
        rawset(r.stream, "_h", id)
        kinds[#kinds + 1] = kind(r.stream:read()) .. "/" .. tostring(r.stream:close())
    end
    add(table.concat(kinds, ","))
    process.send(parent, "done", table.concat(out, " | "))
end
local function main(base)
    local db = assert(sql.get("app.db:main"))
    assert(db:execute("CREATE TABLE t (v)"))
    local tx = assert(db:begin())
    assert(tx:execute("INSERT INTO t VALUES (1)"))
    local st = assert(tx:prepare("SELECT 1 AS one"))
    local r = assert(http.get(base .. "/lines", { stream = true }))
    local loot = { tx = tx, stmt = st, stream = r.stream, base = base }
    local pid = process.spawn_monitored("h:thief", "test:host", process.pid(), loot)
    local report = ready(pid)
    exited()
    -- Everything of the victim's still works, and nothing was committed.
    local rows = assert(tx:query("SELECT count(*) AS n FROM t"))
    local one = assert(st:query())
    local line = assert(r.stream:read(4))
    assert(tx:rollback())
    local after = assert(db:query("SELECT count(*) AS n FROM t"))[1].n
    return report .. " | " .. rows[1].n .. " " .. one[1].one .. " " .. line .. " " .. after
end
return { main = main, thief = thief }
"#;

#[test]
fn a_handle_sent_to_another_process_arrives_as_a_worthless_copy() {
    let dir = TempDir::new("thief");
    let server = Server::start();
    let source = src(HANDLES);
    let a = io_app(Some(sqlite_dbs(&dir, &["main", "other"])));
    let a = entry(a, "h:attacker", &source, "main", all_grants());
    let a = entry(a, "h:thief", &source, "thief", all_grants());
    let runtime = a.start();
    let out = attack_on(&runtime, "h:attacker", vec![Value::str(server.url(""))]);
    let r = parts(&out);
    assert_eq!(r[0], "true", "a handle arrived with its methods");
    assert!(r[1].starts_with("raised"), "{}", r[1]);
    assert!(r[2].contains("not a sql.tx handle"), "{}", r[2]);
    assert!(r[3].contains("not a sql.stmt handle"), "{}", r[3]);
    assert!(r[4].contains("not a response stream"), "{}", r[4]);
    // Whatever the ids name in the thief's own table, the victim's
    // transaction is untouched (checked below).
    assert_eq!(r[6], "1 1 one\n 0", "the victim's handles were touched");
    honest(&runtime, &server);
}

#[test]
fn forged_and_mismatched_selves_raise_and_touch_nothing() {
    let dir = TempDir::new("forged");
    let server = Server::start();
    let source = src(r#"
return function(base)
    local db = assert(sql.get("app.db:main"))
    assert(db:execute("CREATE TABLE t (v)"))
    local tx = assert(db:begin())
    assert(tx:execute("INSERT INTO t VALUES (1)"))
    local st = assert(tx:prepare("SELECT count(*) AS n FROM t"))
    local r = assert(http.get(base .. "/lines", { stream = true }))
    local out = {}
    local selves = { { _h = 1 }, { _h = 2 }, { _id = "app.db:main" }, { _id = "app.db:main", _h = 2 },
        liar({ _h = 2 }), 2, "app.db:main", true, print }
    local methods = {
        db.query, db.execute, db.prepare, db.begin, db.type, db.stats, db.release,
        tx.query, tx.execute, tx.prepare, tx.commit, tx.rollback, tx.savepoint, tx.rollback_to,
        tx.release, tx.db_type, st.query, st.execute, st.close,
        r.stream.read, r.stream.close, r.stream.scanner,
    }
    local clean, total = 0, 0
    for _, m in ipairs(methods) do
        for _, self in ipairs(selves) do
            total = total + 1
            local msg = raised(m, self, "SELECT 1")
            if msg:find("is not a", 1, true) or msg:find("not a response stream", 1, true) then clean = clean + 1
            else out[#out + 1] = msg end
        end
        total = total + 1
        local msg = raised(m)
        if msg:find("is not a", 1, true) or msg:find("not a response stream", 1, true) then clean = clean + 1
        else out[#out + 1] = "nil self: " .. msg end
    end
    -- The wrong kind of real handle: db on tx, tx on stmt, stmt on tx,
    -- stream on stmt.
    for _, pair in ipairs({ { db.query, tx }, { db.begin, tx }, { tx.commit, st }, { tx.commit, db },
                            { st.close, tx }, { st.query, r.stream }, { r.stream.close, tx },
                            { r.stream.read, st } }) do
        total = total + 1
        local msg = raised(pair[1], pair[2])
        if msg:find("is not a", 1, true) or msg:find("not a response stream", 1, true) then clean = clean + 1
        else out[#out + 1] = "mismatched: " .. msg end
    end
    -- All of the real handles still work, the row is still uncommitted.
    local n = assert(st:query())[1].n
    local line = assert(r.stream:read(3))
    assert(tx:rollback())
    local after = assert(db:query("SELECT count(*) AS n FROM t"))[1].n
    out[#out + 1] = clean .. "/" .. total .. " " .. n .. " " .. line .. " " .. after .. " " .. ran_text()
    return table.concat(out, " | ")
end"#);
    let a = io_app(Some(sqlite_dbs(&dir, &["main"]))).granted("h:attacker", &source, all_grants());
    let runtime = a.start();
    let out = attack_on(&runtime, "h:attacker", vec![Value::str(server.url(""))]);
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), "228/228 1 one 0 none");
}

#[test]
fn a_finished_transaction_stays_dead_and_ids_do_not_cross_kinds() {
    let dir = TempDir::new("dead");
    let server = Server::start();
    let source = src(r#"
return function(base)
    local db = assert(sql.get("app.db:main"))
    assert(db:execute("CREATE TABLE t (v)"))
    local out = {}
    local function add(s) out[#out + 1] = s end
    local tx = assert(db:begin())
    assert(tx:execute("INSERT INTO t VALUES ('committed')"))
    assert(tx:commit())
    -- 1-4: every call on the committed transaction, also with a newer one open
    add(res(tx:execute("INSERT INTO t VALUES ('late')")))
    local tx2 = assert(db:begin())
    add(res(tx:execute("INSERT INTO t VALUES ('late')")))
    add(res(tx:commit()))
    add(res(tx:rollback()))
    -- 5-7: a statement, a stream and a transaction retargeted at each
    -- other's ids: each refuses a handle of another kind and leaves it be.
    local st = assert(tx2:prepare("SELECT 1 AS one"))
    local r = assert(http.get(base .. "/lines", { stream = true }))
    rawset(st, "_h", rawget(tx2, "_h"))
    st:close()
    add(res(tx2:execute("INSERT INTO t VALUES ('in tx2')")))
    local r2 = assert(http.get(base .. "/lines", { stream = true }))
    rawset(r2.stream, "_h", rawget(tx2, "_h"))
    r2.stream:close()
    add(res(tx2:query("SELECT 1")))
    rawset(tx, "_h", rawget(r.stream, "_h"))
    add(res(tx:commit()))
    add(tostring(r.stream:read(3)))
    assert(tx2:commit())
    local rows = assert(db:query("SELECT v FROM t ORDER BY rowid"))
    local vs = {}
    for _, row in ipairs(rows) do vs[#vs + 1] = row.v end
    add(table.concat(vs, ","))
    return table.concat(out, " | ")
end"#);
    let a = io_app(Some(sqlite_dbs(&dir, &["main"]))).granted("h:attacker", &source, all_grants());
    let runtime = a.start();
    let out = attack_on(&runtime, "h:attacker", vec![Value::str(server.url(""))]);
    let r = parts(&out);
    for got in &r[..4] {
        refused(got, "Invalid", "transaction is not active");
    }
    assert_eq!(r[4], "ok", "closing a statement ended a transaction");
    assert_eq!(r[5], "ok", "closing a stream ended a transaction");
    refused(&r[6], "Invalid", "transaction is not active");
    assert_eq!(r[7], "one", "committing a transaction closed a stream");
    assert_eq!(r[8], "committed,in tx2");
}

#[test]
fn a_call_from_code_that_cannot_wait_leaves_no_stale_wake_up() {
    // A module call inside a sort comparator, a gsub callback or a
    // __tostring run by tostring cannot suspend (C boundary): it must be
    // refused before it starts, not run on unattended and later wake the
    // coroutine out of an unrelated wait.
    let dir = TempDir::new("cboundary");
    let source = src(r#"
return function(base)
    local db = assert(sql.get("app.db:main"))
    assert(db:execute("CREATE TABLE t (v)"))
    local errs = {}
    local function note(v, err) errs[#errs + 1] = res(v, err) end
    table.sort({ 3, 2, 1 }, function(a, b)
        note(db:execute("INSERT INTO t VALUES (1)"))
        return a < b
    end)
    local s = string.gsub("ab", ".", function(c) note(http.get(base .. "/json")) return c end)
    local t = tostring(setmetatable({}, { __tostring = function() note(db:begin()) return "x" end }))
    local t0 = time.now()
    local got = table.pack(time.sleep("200ms"))
    local slept = elapsed(t0)
    local rows = assert(db:query("SELECT count(*) AS n FROM t"))
    local kinds, seen = {}, {}
    for _, e in ipairs(errs) do
        local k = e:match("^(%w+): this call waits") or e
        if not seen[k] then seen[k] = true kinds[#kinds + 1] = k end
    end
    return #errs .. " " .. table.concat(kinds, ",") .. " | " .. tostring(slept >= 0.19) .. " | " .. got.n .. " | " .. rows[1].n
end"#);
    let server = Server::start();
    let a = io_app(Some(sqlite_dbs(&dir, &["main"]))).granted("h:attacker", &source, all_grants());
    let runtime = a.start();
    let out = attack_on(&runtime, "h:attacker", vec![Value::str(server.url(""))]);
    let r = parts(&out);
    // Each refused before it started: no row written, no request sent, no
    // wake-up cutting the sleep short.
    assert!(r[0].ends_with(" Invalid"), "{}", r[0]);
    let calls: usize = r[0].split(' ').next().unwrap_or("0").parse().unwrap_or(0);
    assert!(calls >= 5, "a callback was not run: {}", r[0]);
    assert_eq!(r[1..], ["true", "0", "0"]);
    assert_eq!(server.connections(), 0);
    honest(&runtime, &server);
}

// ---------------------------------------------------------------------------
// 5. Time
// ---------------------------------------------------------------------------

#[test]
fn a_silent_server_costs_the_caller_a_timeout_not_the_worker() {
    let server = Server::start();
    let odd = Odd::start("127.0.0.2");
    let source = src(r#"
return function(base, stall)
    local out = {}
    local t0 = time.now()
    out[#out + 1] = kind(http.get(base .. "/never", { timeout = 0.5 }))
    -- Headers, then silence: each read of the stream waits the timeout.
    local r = assert(http.get(stall, { stream = true, timeout = 0.3 }))
    local first = r.stream:read()
    out[#out + 1] = tostring(first)
    out[#out + 1] = kind(r.stream:read())
    out[#out + 1] = tostring(elapsed(t0) < 3)
    return table.concat(out, " | ")
end"#);
    let a = io_app(None).granted("h:attacker", &source, two_servers());
    let runtime = a.start();
    let out = attack_on(
        &runtime,
        "h:attacker",
        vec![Value::str(server.url("")), Value::str(odd.url("/stall"))],
    );
    out.assert_progress_during(100);
    assert_eq!(out.value(), "Timeout | partial | Timeout | true");
    honest(&runtime, &server);
}

#[test]
fn an_endless_body_stops_at_the_limit() {
    let server = Server::start();
    let source = src(r#"
return function(base)
    local out = {}
    local _, err = http.get(base .. "/endless", { max_response_body = 1 << 20 })
    out[#out + 1] = res(nil, err) .. " limit=" .. tostring(err and err:details() and err:details().limit)
    -- No limit given: the body is a result, and the process may hold no
    -- more than its memory.
    out[#out + 1] = res(http.get(base .. "/endless", { timeout = 20 }))
    local r = assert(http.get(base .. "/endless", { stream = true, max_response_body = 1 << 20 }))
    local total, rerr = 0, nil
    while true do
        local chunk, e = r.stream:read()
        if not chunk then rerr = e break end
        total = total + #chunk
    end
    out[#out + 1] = res(nil, rerr) .. " " .. tostring(total <= 1 << 20)
    out[#out + 1] = kind(r.stream:read())
    return table.concat(out, " | ")
end"#);
    let a = io_app(None).granted("h:attacker", &source, local_grants());
    let runtime = a.start();
    let out = attack_on(&runtime, "h:attacker", vec![Value::str(server.url(""))]);
    let r = parts(&out);
    refused(&r[0], "Invalid", "max_response_body");
    assert!(r[0].ends_with("limit=1048576"), "{}", r[0]);
    refused(&r[1], "Invalid", "max_response_body");
    refused(&r[2], "Invalid", "max_response_body");
    assert!(r[2].ends_with("true"), "{}", r[2]);
    assert_eq!(r[3], "Invalid");
    honest(&runtime, &server);
}

/// Children for the time and exit cases: each tells its parent "ready"
/// and then waits in one of the ways below until it is terminated (or
/// ends on its own).
const CHILDREN: &str = r#"
local function endless(parent)
    local db = assert(sql.get("app.db:main"))
    process.send(parent, "ready", true)
    db:query(ENDLESS)
end
local function holder(parent)
    local db = assert(sql.get("app.db:main"))
    local tx = assert(db:begin())
    assert(tx:execute("INSERT INTO t VALUES ('uncommitted')"))
    process.send(parent, "ready", true)
    process.inbox():receive()
end
local function busy_holder(parent)
    local db = assert(sql.get("app.db:main"))
    local tx = assert(db:begin())
    assert(tx:execute("INSERT INTO t VALUES ('uncommitted')"))
    process.send(parent, "ready", true)
    tx:query(ENDLESS)
end
local function returner(parent)
    local db = assert(sql.get("app.db:main"))
    local tx = assert(db:begin())
    assert(tx:execute("INSERT INTO t VALUES ('uncommitted')"))
    process.send(parent, "ready", true)
    return "left it open"
end
local function failer(parent)
    local db = assert(sql.get("app.db:main"))
    local tx = assert(db:begin())
    assert(tx:execute("INSERT INTO t VALUES ('uncommitted')"))
    process.send(parent, "ready", true)
    error("boom")
end
local function churner(parent)
    local db = assert(sql.get("app.db:main"))
    process.send(parent, "ready", true)
    while true do
        local txs = {}
        for i = 1, 4 do
            coroutine.spawn(function()
                local tx = db:begin()
                if tx then
                    tx:execute("INSERT INTO t VALUES ('churn')")
                    tx:rollback()
                end
            end)
        end
        time.sleep("1ms")
    end
end
local function queuer(parent)
    local db = assert(sql.get("app.db:main"))
    -- One endless query runs; plain inserts wait behind it in the
    -- database's queue (the per-process limit of calls in flight is 8).
    coroutine.spawn(function() db:query(ENDLESS) end)
    for i = 1, 6 do
        coroutine.spawn(function() db:execute("INSERT INTO t VALUES ('queued')") end)
    end
    time.sleep("20ms")
    process.send(parent, "ready", true)
    db:query(ENDLESS)
end
local function streamer(parent, base)
    local r = assert(http.get(base .. "/endless", { stream = true }))
    process.send(parent, "ready", true)
    while true do assert(r.stream:read(65536)) end
end
return { endless = endless, holder = holder, busy_holder = busy_holder, returner = returner,
    failer = failer, churner = churner, streamer = streamer, queuer = queuer }
"#;

/// The monitor: runs child `kind`, terminates it after `wait` ms (unless
/// it ends by itself), then at once counts the rows of `t` and reports
/// the count, whether the count came back within 1 s, and the exit.
const MONITOR: &str = r#"
return function(child, wait, base)
    local db = assert(sql.get("app.db:main"))
    assert(db:execute("CREATE TABLE IF NOT EXISTS t (v TEXT)"))
    local out = {}
    for round = 1, 3 do
        local pid = process.spawn_monitored("h:" .. child, "test:host", process.pid(), base)
        ready(pid)
        if wait >= 0 then
            time.sleep(wait .. "ms")
            process.terminate(pid)
        end
        local ev = exited()
        local t0 = time.now()
        local rows, err = db:query("SELECT count(*) AS n FROM t")
        local n = rows and rows[1].n or res(rows, err)
        local quick = elapsed(t0) < 1
        local written, werr = db:execute("INSERT INTO t VALUES ('monitor')")
        assert(written, tostring(werr))
        assert(db:execute("DELETE FROM t"))
        local how = tostring(ev.result.value)
        if ev.result.error then
            how = tostring(ev.result.error:kind()) .. (ev.result.error:message():find("boom") and "boom" or "")
        end
        out[#out + 1] = tostring(n) .. " " .. tostring(quick) .. " " .. how
    end
    return table.concat(out, " | ")
end"#;

/// Runs the monitor on child `kind` and returns its three rounds.
fn monitor(kind: &str, wait: i64) -> Vec<String> {
    let dir = TempDir::new(kind);
    let server = Server::start();
    let children = src(CHILDREN);
    let mut a = io_app(Some(sqlite_dbs(&dir, &["main"]))).granted(
        "h:attacker",
        &src(MONITOR),
        all_grants(),
    );
    for method in [
        "endless",
        "holder",
        "busy_holder",
        "returner",
        "failer",
        "churner",
        "streamer",
        "queuer",
    ] {
        a = entry(a, &format!("h:{method}"), &children, method, all_grants());
    }
    let runtime = a.start();
    let out = attack_on(
        &runtime,
        "h:attacker",
        vec![
            Value::str(kind),
            Value::Int(wait),
            Value::str(server.url("")),
        ],
    );
    if wait > 0 {
        out.assert_progress_during(wait);
    }
    let r = parts(&out);
    honest(&runtime, &server);
    r
}

#[test]
fn an_endless_query_ends_with_its_process_and_frees_the_database() {
    // No query_timeout: only the parent's terminate ends it, and the next
    // process's statement runs at once.
    let r = monitor("endless", 100);
    assert_eq!(r, ["0 true Canceled"; 3]);
}

#[test]
fn calls_queued_behind_an_endless_query_die_with_their_process() {
    // The running query is interrupted and the inserts queued behind it in
    // the database's queue never run: the monitor counts no row, at once.
    let r = monitor("queuer", 100);
    assert_eq!(r, ["0 true Canceled"; 3]);
}

// ---------------------------------------------------------------------------
// 6. Exit while busy
// ---------------------------------------------------------------------------

#[test]
fn a_terminated_transaction_is_rolled_back_before_the_monitor_hears() {
    let r = monitor("holder", 0);
    assert_eq!(r, ["0 true Canceled"; 3]);
}

#[test]
fn a_transaction_terminated_mid_statement_is_rolled_back_before_the_monitor_hears() {
    let r = monitor("busy_holder", 50);
    assert_eq!(r, ["0 true Canceled"; 3]);
}

#[test]
fn a_transaction_left_open_by_a_return_or_an_error_is_rolled_back() {
    assert_eq!(monitor("returner", -1), ["0 true left it open"; 3]);
    assert_eq!(monitor("failer", -1), ["0 true boom"; 3]);
}

#[test]
fn a_process_terminated_while_churning_transactions_leaves_none_open() {
    // Terminated at some point of begin / execute / rollback in four
    // coroutines, whichever: a transaction whose begin completed just as
    // the process died is rolled back all the same.
    for wait in [3, 17, 40] {
        let r = monitor("churner", wait);
        assert_eq!(r, ["0 true Canceled"; 3]);
    }
}

#[test]
fn a_process_terminated_mid_stream_gives_its_slots_back() {
    let r = monitor("streamer", 50);
    assert_eq!(r, ["0 true Canceled"; 3]);
}

#[test]
fn a_body_larger_than_the_process_may_hold_is_invalid_and_the_process_goes_on() {
    // No max_response_body: the default (120 MiB) is far above what the
    // process may hold (8 MiB). The result counts against the process's
    // memory (modules.md): INVALID, and the process goes on.
    let odd = Odd::start("127.0.0.2");
    let source = src(r#"
return function(base)
    local out = {}
    out[#out + 1] = res(http.get(base .. "/big?" .. (20 << 20), { timeout = 20 }))
    local _, errs = http.request_batch({ { "GET", base .. "/big?" .. (20 << 20), { timeout = 20 } },
        { "GET", base .. "/ok" } })
    out[#out + 1] = errs and res(nil, errs[1]) or "no error"
    -- Each fits, all three do not: the batch is one result.
    local big = base .. "/big?" .. (3 << 20)
    local resps, errs2 = http.request_batch({ { "GET", big }, { "GET", big }, { "GET", big } })
    out[#out + 1] = tostring(resps and resps[1] and #resps[1].body) .. "," .. tostring(resps and resps[2] and #resps[2].body)
        .. "," .. res(nil, errs2 and errs2[3])
    resps = nil
    local small = http.get(base .. "/big?1000")
    out[#out + 1] = small and tostring(#small.body) or "failed"
    return table.concat(out, " | ")
end"#);
    let g = grants(&[
        ("http_client.request", "http://127.0.0.2:*"),
        ("http_client.private_ip", "127.0.0.2"),
    ]);
    let a = io_app(None).granted("h:attacker", &source, g);
    let out = attack_on(&a.start(), "h:attacker", vec![Value::str(odd.url(""))]);
    let r = parts(&out);
    refused(&r[0], "Invalid", "max_response_body (8388608 bytes)");
    refused(&r[1], "Invalid", "max_response_body (8388608 bytes)");
    assert!(r[2].starts_with("3145728,3145728,Invalid: "), "{}", r[2]);
    assert!(r[2].contains("past what the process may hold"), "{}", r[2]);
    assert_eq!(r[3], "1000");
}

/// Tries to rewrite the shared module tables, then asks a fresh process
/// what it sees.
const TAMPER: &str = r#"
local function witness(parent)
    local _, err = http.get("http://169.254.169.254/")
    local w = sql.as.int("5")
    process.send(parent, "seen", table.concat({ sql.isolation.SERIALIZABLE, sql.type.SQLITE,
        tostring(err and err:kind()), tostring(rawequal(sql.NULL, sql.NULL)),
        tostring(getmetatable(w)) }, " "))
end
local function main()
    local fake = function() return { status_code = 200, body = "forged" } end
    local out = {}
    for _, f in ipairs({
        function() sql.as.int = fake end,
        function() rawset(sql.as, "int", fake) end,
        function() sql.isolation.SERIALIZABLE = "read_uncommitted" end,
        function() rawset(sql.type, "SQLITE", "postgres") end,
        function() http.get = fake end,
        function() rawset(http, "get", fake) end,
        function() setmetatable(sql, {}) end,
        function() setmetatable(sql.NULL, { __index = fake }) end,
    }) do
        out[#out + 1] = raised(f):find("read%-only") and "refused" or raised(f)
    end
    local pid = process.spawn_monitored("h:witness", "test:host", process.pid())
    out[#out + 1] = ready(pid)
    return table.concat(out, " | ")
end
return { main = main, witness = witness }
"#;

#[test]
fn the_shared_module_tables_cannot_be_rewritten_for_other_processes() {
    let source = src(TAMPER);
    let a = entry(io_app(None), "h:attacker", &source, "main", Grants::new());
    let a = entry(a, "h:witness", &source, "witness", Grants::new());
    let r = parts(&attack_on(&a.start(), "h:attacker", Vec::new()));
    for got in &r[..6] {
        assert_eq!(got, "refused");
    }
    for got in &r[6..8] {
        assert!(got.contains("protected metatable"), "{got}");
    }
    // The witness: real constants, the real client, a wrapper whose
    // metatable is out of reach.
    assert_eq!(r[8], "serializable sqlite PermissionDenied true false");
}

#[test]
fn one_string_named_many_times_is_copied_at_most_what_the_process_may_hold() {
    // A table naming one 1 MiB string 64 times costs the process one
    // string; every call that would copy it 64 times (64 MiB, past the
    // harness's 8 MiB per process) is refused before anything is copied,
    // and the same call with two copies works.
    let dir = TempDir::new("copies");
    let server = Server::start();
    let source = src(r#"
return function(url)
    local big = string.rep(string.rep("x", 1024), 1024)
    local db = assert(sql.get("app.db:main"))
    local out = {}
    local params, marks = {}, {}
    for i = 1, 64 do params[i] = big; marks[i] = "? IS NOT NULL" end
    out[#out + 1] = res(db:query("SELECT 1 AS one WHERE " .. table.concat(marks, " AND "), params))
    out[#out + 1] = res(db:execute("SELECT 1 WHERE " .. table.concat(marks, " AND "), params))
    local stmt = assert(db:prepare("SELECT 1 AS one WHERE " .. table.concat(marks, " AND ")))
    out[#out + 1] = res(stmt:query(params))
    local headers, form, files, reqs = {}, {}, {}, {}
    for i = 1, 64 do
        headers["X-H" .. i] = big
        form["f" .. i] = big
        files[i] = { name = "f" .. i, content = big }
        reqs[i] = { "POST", url, { body = big } }
    end
    out[#out + 1] = res(http.post(url, { headers = headers }))
    out[#out + 1] = res(http.post(url, { form = form }))
    out[#out + 1] = res(http.post(url, { files = files }))
    out[#out + 1] = res(http.request_batch(reqs))
    out[#out + 1] = res(db:query("SELECT 1 AS one WHERE ? IS NOT NULL AND ? IS NOT NULL", { big, big }))
    out[#out + 1] = res(http.post(url, { body = big, headers = { ["X-Big"] = big } }))
    return table.concat(out, " | ")
end"#);
    let a = io_app(Some(sqlite_dbs(&dir, &["main"])));
    let a = a.granted("h:attacker", &source, all_grants());
    let runtime = a.start();
    let out = attack_on(&runtime, "h:attacker", vec![Value::str(server.url("/ok"))]);
    out.assert_neighbour_ticks();
    let got = out.value();
    let parts: Vec<&str> = got.split(" | ").collect();
    assert_eq!(parts.len(), 9, "{got}");
    for (p, module) in parts[..7].iter().zip([
        "sql",
        "sql",
        "sql",
        "http_client",
        "http_client",
        "http_client",
        "http_client",
    ]) {
        assert_eq!(
            *p,
            format!(
                "Invalid: {module}: the call's arguments take more than 8388608 bytes, what the \
                 process may hold"
            ),
            "{got}"
        );
    }
    assert_eq!(&parts[7..], ["ok", "ok"], "{got}");
    honest(&runtime, &server);
}

#[test]
fn copies_held_by_calls_in_flight_count_against_what_the_process_may_hold() {
    // Each request copies 3 MiB (three headers naming one 1 MiB string)
    // to a server that never answers: two fit in the harness's 8 MiB per
    // process, the third would make the host hold 9 MiB for it and is
    // refused at once, retryable; once the two are abandoned, the copies
    // are dropped and a call fits again.
    let server = Server::start();
    let source = src(r#"
return function(never, ok)
    local big = string.rep(string.rep("x", 1024), 1024)
    local headers = { ["X-A"] = big, ["X-B"] = big, ["X-C"] = big }
    local results = channel.new(8)
    local waiting = {}
    for i = 1, 3 do
        waiting[i] = coroutine.spawn(function()
            local _, err = http.get(never, { headers = headers, timeout = 2 })
            results:send(err and (tostring(err:kind()) .. "/" .. tostring(err:retryable())) or "ok")
        end)
    end
    local out = {}
    local r = channel.select({ results:case_receive(), time.after("1s"):case_receive() })
    out[#out + 1] = r.channel == results and r.value or "none"
    -- The two in flight time out (2 s) and let go of their copies.
    out[#out + 1] = tally(results, 2, "10s", "a request to the silent server")
    out[#out + 1] = res(http.get(ok, { headers = headers }))
    return table.concat(out, " | ")
end"#);
    let a = io_app(None).granted("h:attacker", &source, local_grants());
    let runtime = a.start();
    let out = attack_on(
        &runtime,
        "h:attacker",
        vec![
            Value::str(server.url("/never")),
            Value::str(server.url("/ok")),
        ],
    );
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), "RateLimited/true | Timeout/true=2 | ok");
    honest(&runtime, &server);
}

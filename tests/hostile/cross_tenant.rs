//! One tenant cannot starve another: a hostile host floods one shared
//! resource (the blocking lane with file calls, the SQL lane with SQLite
//! statements, the I/O runtime with HTTP requests, the timer heap, the event bus,
//! the registry, process spawning, the CPU, a mailbox of the other host)
//! while a victim process on the other host does a small operation of the
//! same kind in a loop.
//!
//! Each case starts the attacker (`c:attacker` on `test:host`: it spawns
//! flooders, each running many coroutines that repeat one operation until
//! a deadline, and returns what they got, by kind), waits for the flood to
//! build, then runs the victim (`c:victim` on `test:other`) to its end
//! while the attack still runs. It asserts every victim operation
//! completed, the worst one within a generous bound (the machine is
//! shared and noisy), that the victim ended before the attack did, and
//! that the attacker really flooded and was held to its own limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use warren_core::{HostLimits, Runtime, SpawnRequest, Value};
use warren_lua::{Databases, Volumes};
use warren_tests::{App, DEADLINE, HOST, OTHER_HOST, TempDir, grants, run_on};

use crate::harness::{alone, sqlite_dbs_timed};

#[expect(clippy::duplicate_mod, reason = "io_surface keeps its copy private")]
#[expect(dead_code, reason = "only start and url are used here")]
#[path = "../tests/io/server.rs"]
mod server;
use server::Server;

// ---------------------------------------------------------------------------
// The scripts
// ---------------------------------------------------------------------------

/// Requires shared by the flooders and the victim.
const MODULES_PRELUDE: &str = r#"
local time = require("time")
local fs = require("fs")
local sql = require("sql")
local http = require("http_client")
local events = require("events")
"#;

/// Starts `procs` flooders (`flooder`), each with `per` coroutines, for
/// `ms` milliseconds; returns the sum of their tallies as "kind=count ...".
const ATTACKER: &str = r#"
local time = require("time")
return function(flooder, procs, per, ms, base)
    local deadline = time.now():unix_nano() + ms * 1000000
    local me = process.pid()
    local spawned, refused = 0, 0
    for k = 1, procs do
        if process.spawn(flooder, "test:host", per, deadline, me, base, k) then
            spawned = spawned + 1
        else
            refused = refused + 1
        end
    end
    local sum = { spawn_refused = refused }
    local inbox = process.inbox()
    local got = 0
    local until_ = time.after(string.format("%dms", ms + 3000))
    while got < spawned do
        local r = channel.select({ inbox:case_receive(), until_:case_receive() })
        if r.channel ~= inbox then break end
        got = got + 1
        for k, v in pairs(r.value:payload():data()) do sum[k] = (sum[k] or 0) + v end
    end
    sum.silent = spawned - got
    local keys = {}
    for k, v in pairs(sum) do keys[#keys + 1] = k .. "=" .. v end
    table.sort(keys)
    return table.concat(keys, " ")
end"#;

/// A flooder: `{INIT}` once, then `per` coroutines repeating `op` until
/// `deadline`; sends `parent` its tally by result kind. `op` gets
/// `i` = (slot * 1e6 + iteration), slot being unique to the coroutine.
const FLOOD: &str = r#"
{INIT}
local function op(i, base)
{OP}
end
return function(per, deadline, parent, base, k)
    local tally = {}
    local function add(k) tally[k] = (tally[k] or 0) + 1 end
    local finished = channel.new(per)
    for c = 1, per do
        coroutine.spawn(function()
            local i = 0
            while time.now():unix_nano() < deadline do
                i = i + 1
                local ok, v, err = pcall(op, (k * per + c) * 1000000 + i, base)
                if not ok then
                    add("raised")
                    time.sleep("5ms")
                elseif v == nil and err ~= nil then
                    add(tostring(err:kind()))
                    time.sleep("2ms")
                else
                    add("ok")
                end
            end
            finished:send(true)
        end)
    end
    for _ = 1, per do finished:receive() end
    process.send(parent, "tally", tally)
    return "done"
end"#;

/// The victim: `{INIT}` once, then `n` times `op`, timed with its own
/// clock; returns `{ done, worst (ms), err (the first failure) }`.
const VICTIM: &str = r#"
{INIT}
local function op(i, base)
{OP}
end
return function(n, base)
    local worst, done, first = 0, 0, ""
    local start = time.now()
    for i = 1, n do
        if time.now():sub(start):milliseconds() > 8000 then break end
        local t0 = time.now()
        local ok, v, err = pcall(op, i, base)
        local ms = math.floor(time.now():sub(t0):milliseconds())
        if ok and not (v == nil and err ~= nil) then
            done = done + 1
        elseif first == "" then
            first = ok and tostring(err) or tostring(v)
        end
        if ms > worst then worst = ms end
        time.sleep("20ms")
    end
    return { done = done, worst = worst, err = first }
end"#;

/// Ends at once.
const NOP: &str = r#"return function() return 1 end"#;

/// Answers every message with "pong".
const ECHO: &str = r#"return function()
    local inbox = process.inbox()
    while true do
        local m = inbox:receive()
        if m:topic() == "stop" then return "stopped" end
        process.send(m:from(), "pong", 1)
    end
end"#;

/// Never reads its inbox.
const SINK: &str = r#"local time = require("time")
return function() time.sleep("20s") end"#;

// ---------------------------------------------------------------------------
// The harness of this file
// ---------------------------------------------------------------------------

/// One kind of attack and the victim's matching operation.
struct Case<'a> {
    /// Runs once in each flooder (after the module requires).
    attack_init: &'a str,
    /// The body of `op(i, base)` of the flooders.
    attack_op: &'a str,
    /// Flooder processes and coroutines in each.
    procs: i64,
    per: i64,
    /// Runs once in the victim.
    victim_init: &'a str,
    /// The body of `op(i, base)` of the victim.
    victim_op: &'a str,
    /// The victim's operations.
    n: i64,
}

/// What a duel showed.
#[derive(Debug)]
struct Duel {
    /// The attacker's tally ("kind=count ...").
    attacker: String,
    /// Victim operations that completed, of `n`.
    done: i64,
    n: i64,
    /// The victim's slowest operation, in ms.
    worst: i64,
    /// The victim's first failure.
    err: String,
    /// The victim ended before the attack did.
    under_attack: bool,
}

impl Duel {
    /// Every victim operation completed, the slowest within `bound_ms`,
    /// while the attack ran.
    fn assert_victim_fine(&self, bound_ms: i64) {
        assert_eq!(
            self.done, self.n,
            "victim operations failed (first: {}): {self:?}",
            self.err
        );
        assert!(
            self.worst <= bound_ms,
            "the victim starved (worst {} ms > {bound_ms} ms): {self:?}",
            self.worst
        );
        assert!(
            self.under_attack,
            "the victim ended after the attack: {self:?}"
        );
    }

    /// How many attacker operations ended with `kind`.
    fn count(&self, kind: &str) -> i64 {
        self.attacker
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == kind)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    }
}

/// The attack length.
const ATTACK_MS: i64 = 5000;

/// How long the flood builds before the victim starts.
const WARMUP: Duration = Duration::from_millis(800);

fn flooder_source(case: &Case) -> String {
    format!(
        "{MODULES_PRELUDE}\n{}",
        FLOOD
            .replace("{INIT}", case.attack_init)
            .replace("{OP}", case.attack_op)
    )
}

fn victim_source(case: &Case) -> String {
    format!(
        "{MODULES_PRELUDE}\n{}",
        VICTIM
            .replace("{INIT}", case.victim_init)
            .replace("{OP}", case.victim_op)
    )
}

/// The attacker's host: its own generous limits, reaching no other host.
fn attacker_limits() -> HostLimits {
    HostLimits {
        max_processes: 500,
        allow_hosts: Some(Vec::new()),
        ..HostLimits::default()
    }
}

/// The victim's host: the defaults, reaching no other host.
fn victim_limits() -> HostLimits {
    HostLimits {
        allow_hosts: Some(Vec::new()),
        ..HostLimits::default()
    }
}

/// Grants of the attacker's entries: its volume, its databases, the
/// attacker's server.
fn attacker_grants() -> warren_core::Grants {
    grants(&[
        ("fs.get", "app.fs:att"),
        ("db.get", "app.db:a*"),
        ("http_client.request", "http://127.0.0.1:*"),
        ("http_client.private_ip", "127.0.0.1"),
    ])
}

/// Grants of the victim's entries.
fn victim_grants() -> warren_core::Grants {
    grants(&[
        ("fs.get", "app.fs:vic"),
        ("db.get", "app.db:v"),
        // The one database both hosts are granted.
        ("db.get", "app.db:ashared"),
        ("http_client.request", "http://127.0.0.1:*"),
        ("http_client.private_ip", "127.0.0.1"),
    ])
}

/// The app of a case: both hosts, the attacker's and victim's entries.
fn case_app(case: &Case) -> App {
    App::new()
        .limits(attacker_limits())
        .other_limits(victim_limits())
        .granted("c:attacker", ATTACKER, attacker_grants())
        .granted("c:flood", &flooder_source(case), attacker_grants())
        .granted("c:victim", &victim_source(case), victim_grants())
        .entry("c:nop", NOP)
        .entry("c:echo", ECHO)
        .entry("c:sink", SINK)
}

/// Runs the attack of `case` with `abase` as the flooders' `base`, and the
/// victim with `vbase`, on `runtime`.
fn duel_on(runtime: &Runtime, case: &Case, abase: &str, vbase: &str) -> Duel {
    let args = vec![
        Value::str("c:flood"),
        Value::Int(case.procs),
        Value::Int(case.per),
        Value::Int(ATTACK_MS),
        Value::str(abase),
    ];
    let started = Instant::now();
    let (_, attack) = runtime
        .spawn_watched(SpawnRequest::new("c:attacker", HOST, args))
        .expect("attacker spawned");
    std::thread::sleep(WARMUP);
    let report = runtime
        .run(
            SpawnRequest::new(
                "c:victim",
                OTHER_HOST,
                vec![Value::Int(case.n), Value::str(vbase)],
            ),
            DEADLINE,
        )
        .expect("victim spawned")
        .unwrap_or_else(|| panic!("the victim did not end within {DEADLINE:?}"));
    let under_attack = started.elapsed() < Duration::from_millis(ATTACK_MS as u64);
    let report = report.unwrap_or_else(|e| panic!("the victim failed: {e}"));
    let attacker = match attack.recv_timeout(Duration::from_millis(ATTACK_MS as u64 + 8000)) {
        Ok(Ok(v)) => v.as_str().unwrap_or_default().to_owned(),
        Ok(Err(e)) => format!("failed: {e}"),
        Err(_) => "did not end".to_owned(),
    };
    let int = |k: &str| match report.get(k) {
        Some(Value::Int(n)) => *n,
        Some(Value::Float(f)) => *f as i64,
        other => panic!("{k} = {other:?} in {report:?}"),
    };
    Duel {
        attacker,
        done: int("done"),
        n: case.n,
        worst: int("worst"),
        err: report
            .get("err")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        under_attack,
    }
}

/// Runs `case` on a fresh runtime made from `app`, alone on the machine.
fn duel(app: App, case: &Case, abase: &str, vbase: &str) -> Duel {
    alone(|| {
        let runtime = app.start();
        let d = duel_on(&runtime, case, abase, vbase);
        eprintln!("{d:?}");
        d
    })
}

/// Volumes `app.fs:att` and `app.fs:vic` on directories of `dir`, with
/// `big.bin` (256 KiB) in the attacker's and `small.txt` in the victim's.
fn volumes(dir: &TempDir) -> Arc<Volumes> {
    let att = dir.0.join("att");
    let vic = dir.0.join("vic");
    std::fs::create_dir_all(&att).expect("att dir");
    std::fs::create_dir_all(&vic).expect("vic dir");
    std::fs::write(att.join("big.bin"), vec![b'x'; 256 << 10]).expect("big");
    std::fs::write(vic.join("small.txt"), "small").expect("small");
    let mut v = Volumes::new();
    v.insert(warren_fs::Volume::open("app.fs:att", &att, 0o755, false).expect("att volume"));
    v.insert(warren_fs::Volume::open("app.fs:vic", &vic, 0o755, false).expect("vic volume"));
    Arc::new(v)
}

/// SQLite databases `app.db:<name>` on files in `dir`; the attacker's
/// (`a...`) with `query_timeout` `attacker_timeout`.
fn databases(dir: &TempDir, names: &[String], attacker_timeout: Duration) -> Arc<Databases> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    sqlite_dbs_timed(dir, &names, |name| {
        name.starts_with('a').then_some(attacker_timeout)
    })
}

const FS_ATT_INIT: &str = r#"local vol = assert(fs.get("app.fs:att"))"#;
const FS_VIC_INIT: &str = r#"local vol = assert(fs.get("app.fs:vic"))"#;
const FS_VIC_READ: &str = r#"    local v, err = vol:readfile("small.txt")
    if v ~= "small" then return nil, err or "wrong content" end
    return v"#;

// ---------------------------------------------------------------------------
// The blocking lane: file calls
// ---------------------------------------------------------------------------

#[test]
fn a_flood_of_queued_file_reads_delays_another_hosts_read_by_little() {
    // 40 x 64 = 2,560 reads of 256 KiB in flight or queued on the lane.
    let dir = TempDir::new("cross-fs-read");
    let case = Case {
        attack_init: FS_ATT_INIT,
        attack_op: r#"    return vol:readfile("big.bin")"#,
        procs: 40,
        per: 64,
        victim_init: FS_VIC_INIT,
        victim_op: FS_VIC_READ,
        n: 20,
    };
    let d = duel(case_app(&case).extension(volumes(&dir)), &case, "", "");
    d.assert_victim_fine(2000);
    assert!(d.count("ok") > 1000, "the attacker did not flood: {d:?}");
}

#[test]
fn a_flood_of_file_writes_delays_another_hosts_write_by_little() {
    // 40 x 64 writers of 64 KiB files (each coroutine rewrites its own).
    let dir = TempDir::new("cross-fs-write");
    let case = Case {
        attack_init: FS_ATT_INIT,
        attack_op: r#"    return vol:writefile("w" .. (i // 1000000) .. "_" .. (i % 4) .. ".bin", string.rep("w", 65536))"#,
        procs: 40,
        per: 64,
        victim_init: FS_VIC_INIT,
        victim_op: r#"    assert(vol:writefile("mine.txt", "v" .. i))
    local v = assert(vol:readfile("mine.txt"))
    if v ~= "v" .. i then return nil, "wrong content" end
    return v"#,
        n: 20,
    };
    let d = duel(case_app(&case).extension(volumes(&dir)), &case, "", "");
    d.assert_victim_fine(3000);
    assert!(d.count("ok") > 500, "the attacker did not flood: {d:?}");
}

#[test]
fn a_flood_of_file_stats_and_listings_delays_another_hosts_read_by_little() {
    let dir = TempDir::new("cross-fs-stat");
    let case = Case {
        attack_init: FS_ATT_INIT,
        attack_op: r#"    if i % 2 == 0 then return vol:stat("big.bin") end
    local n = 0
    for _ in vol:readdir("/") do n = n + 1 end
    return n"#,
        procs: 40,
        per: 64,
        victim_init: FS_VIC_INIT,
        victim_op: FS_VIC_READ,
        n: 20,
    };
    let d = duel(case_app(&case).extension(volumes(&dir)), &case, "", "");
    d.assert_victim_fine(2000);
    assert!(d.count("ok") > 1000, "the attacker did not flood: {d:?}");
}

/// Opens the FIFO `path` for writing and closes it until no reader is
/// left (each open wakes the readers blocked in their open), for at most
/// `for_`. The open happens on a detached thread: with no reader it would
/// block.
fn release_fifo_readers(path: &std::path::Path, for_: Duration) {
    let end = Instant::now() + for_;
    while Instant::now() < end {
        let p = path.to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let opened = std::fs::OpenOptions::new().write(true).open(&p).is_ok();
            let _ = tx.send(opened);
        });
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(true) => std::thread::sleep(Duration::from_millis(10)),
            // No reader came within 200 ms: none left.
            _ => return,
        }
    }
}

#[test]
fn file_calls_on_a_fifo_are_refused_without_taking_a_lane_thread() {
    // Reads of a FIFO no one writes would block a lane thread in open()
    // each: 2 x 40 of them. The volume opens with O_NONBLOCK and refuses
    // what is not a regular file, so none hangs and the victim's reads go
    // on. (Should that change, the hung threads are woken below: the lane
    // is shared by every runtime of this binary.)
    let dir = TempDir::new("cross-fs-fifo");
    let vols = volumes(&dir);
    let fifo = dir.0.join("att").join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo failed");
    let case = Case {
        attack_init: FS_ATT_INIT,
        attack_op: r#"    return vol:readfile("pipe")"#,
        procs: 2,
        per: 40,
        victim_init: FS_VIC_INIT,
        victim_op: FS_VIC_READ,
        n: 20,
    };
    let d = std::panic::catch_unwind(|| duel(case_app(&case).extension(vols), &case, "", ""));
    release_fifo_readers(&fifo, Duration::from_secs(5));
    let d = d.unwrap_or_else(|p| std::panic::resume_unwind(p));
    d.assert_victim_fine(2000);
    assert!(d.count("Invalid") > 1000, "the FIFO was not refused: {d:?}");
}

// ---------------------------------------------------------------------------
// The I/O runtime: SQLite
// ---------------------------------------------------------------------------

/// A statement that runs for seconds (a 2e7-row recursive count).
const LONG_QUERY: &str = r#"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000000)
SELECT count(*) AS n FROM c"#;

fn sql_case<'a>(attack_init: &'a str, attack_op: &'a str, procs: i64, per: i64) -> Case<'a> {
    Case {
        attack_init,
        attack_op,
        procs,
        per,
        victim_init: r#"local db = assert(sql.get("app.db:v"))"#,
        victim_op: r#"    local rows, err = db:query("SELECT 1 AS one")
    if not rows then return nil, err end
    assert(rows[1].one == 1)
    return rows"#,
        n: 20,
    }
}

#[test]
fn long_statements_on_the_attackers_databases_delay_another_hosts_query_by_little() {
    // Four databases, 8 x 2 statements of seconds queued on them (few:
    // the queued ones still run, up to their 3 s query_timeout each,
    // after the case ends).
    let dir = TempDir::new("cross-sql");
    let mut names: Vec<String> = (0..4).map(|i| format!("a{i}")).collect();
    names.push("v".to_owned());
    let init = r#"local dbs = {}
for k = 0, 3 do dbs[k] = assert(sql.get("app.db:a" .. k)) end"#;
    let op = format!("    return dbs[(i // 1000000) % 4]:query([[{LONG_QUERY}]])");
    let case = sql_case(init, &op, 8, 2);
    let d = duel(
        case_app(&case).databases(databases(&dir, &names, Duration::from_secs(3))),
        &case,
        "",
        "",
    );
    d.assert_victim_fine(2000);
    assert!(
        d.count("Timeout") > 0,
        "the attacker's statements outran its query_timeout: {d:?}"
    );
}

/// Runs a duel of 9 x 16 flooders each running `op` (LONG_QUERY on one of
/// 72 databases, with an 8 s query_timeout) against the victim's
/// `SELECT 1`s, with `limits` on the attacker's host.
fn many_databases_duel(name: &str, op: &str, limits: HostLimits) -> Duel {
    let dir = TempDir::new(name);
    let mut names: Vec<String> = (0..72).map(|i| format!("a{i}")).collect();
    names.push("v".to_owned());
    let init = r#"local dbs = {}
for k = 0, 71 do dbs[k] = assert(sql.get("app.db:a" .. k)) end"#;
    let case = sql_case(init, op, 9, 16);
    let app =
        case_app(&case)
            .limits(limits)
            .databases(databases(&dir, &names, Duration::from_secs(8)));
    duel(app, &case, "", "")
}

#[test]
fn long_statements_on_more_databases_than_a_host_may_run_at_once_do_not_starve_another_host() {
    // 72 databases, each with a backlog of statements of seconds: more
    // than the 64 threads of the SQL lane. They ran on the I/O runtime's
    // blocking pool, one FIFO queue for every host: the victim's runner
    // waited until attacker statements ended by their 8 s query_timeout
    // (the first victim query took 15.4 s; without a query_timeout it did
    // not end within 20 s). The SQL lane runs at most SQL_LANE_PER_HOST
    // of a host's statements at once and serves hosts in turn.
    let op = format!("    return dbs[(i // 1000000) % 72]:query([[{LONG_QUERY}]])");
    let d = many_databases_duel("cross-sql-many", &op, attacker_limits());
    d.assert_victim_fine(2000);
}

#[test]
fn long_statements_in_transactions_on_many_databases_do_not_starve_another_host() {
    // As above, each statement inside a transaction (whose statements run
    // on the lane as the beginner's host, not as a queue's runner).
    let op = format!(
        r#"    local tx, err = dbs[(i // 1000000) % 72]:begin()
    if not tx then return nil, err end
    local rows, qerr = tx:query([[{LONG_QUERY}]])
    tx:rollback()
    return rows, qerr"#
    );
    let d = many_databases_duel("cross-sql-tx", &op, attacker_limits());
    d.assert_victim_fine(2000);
}

#[test]
fn long_statements_on_72_databases_under_a_cpu_budget_do_not_starve_another_host() {
    // As the first, with a cpu_budget of 1 s a process on the attacker's
    // host, which SQLite statements are charged to. The budget bounds CPU
    // time, not a thread's wall time (64 statements sharing two cores
    // each spend ~1/32 s of CPU a second), so it did not help on the
    // shared pool; the lane's per-host cap does.
    let op = format!("    return dbs[(i // 1000000) % 72]:query([[{LONG_QUERY}]])");
    let limits = HostLimits {
        cpu_budget: Some(Duration::from_secs(1)),
        ..attacker_limits()
    };
    let d = many_databases_duel("cross-sql-budget", &op, limits);
    d.assert_victim_fine(2000);
}

#[test]
fn long_statements_on_a_database_shared_with_another_host_delay_its_query_by_about_one() {
    // One entry granted to both hosts runs one statement at a time. The
    // attacker keeps 9 x 16 statements queued on it, each cut at a 300 ms
    // query_timeout; in a first-come queue the victim's SELECT 1 waited
    // behind every one queued before it (~40 s). The entry's queue serves
    // its callers' hosts in turn: the victim waits for the running
    // statement and at most one more.
    let dir = TempDir::new("cross-sql-shared");
    let names = vec!["ashared".to_owned()];
    let init = r#"local db = assert(sql.get("app.db:ashared"))"#;
    let op = format!("    return db:query([[{LONG_QUERY}]])");
    let mut case = sql_case(init, &op, 9, 16);
    case.victim_init = init;
    case.n = 5;
    let app = case_app(&case).databases(databases(&dir, &names, Duration::from_millis(300)));
    let d = duel(app, &case, "", "");
    d.assert_victim_fine(2000);
}

// ---------------------------------------------------------------------------
// The I/O runtime: HTTP
// ---------------------------------------------------------------------------

const HTTP_VIC_OP: &str = r#"    local r, err = http.get(base .. "/json", { timeout = 8 })
    if not r then return nil, err end
    assert(r.status_code == 200, "status " .. tostring(r.status_code))
    return r"#;

#[test]
fn requests_to_a_server_that_never_answers_delay_another_hosts_request_by_little() {
    // 30 x 64 = 1,920 requests held open by the attacker's server.
    let bad = Server::start();
    let good = Server::start();
    let case = Case {
        attack_init: "",
        attack_op: r#"    return http.get(base .. "/never", { timeout = 3 })"#,
        procs: 30,
        per: 64,
        victim_init: "",
        victim_op: HTTP_VIC_OP,
        n: 20,
    };
    let d = duel(case_app(&case), &case, &bad.url(""), &good.url(""));
    d.assert_victim_fine(2000);
    assert!(
        d.count("Timeout") > 0,
        "the attacker's calls never timed out: {d:?}"
    );
}

#[test]
fn endless_response_streams_delay_another_hosts_request_by_little() {
    // 8 x 8 streams of an endless body, read as fast as they come.
    let bad = Server::start();
    let good = Server::start();
    let case = Case {
        attack_init: "",
        attack_op: r#"    local r, err = http.get(base .. "/endless", { stream = true, timeout = 3 })
    if not r then return nil, err end
    local total = 0
    for _ = 1, 200 do
        local chunk = r.stream:read(65536)
        if not chunk then break end
        total = total + #chunk
    end
    r.stream:close()
    return total"#,
        procs: 8,
        per: 8,
        victim_init: "",
        victim_op: HTTP_VIC_OP,
        n: 20,
    };
    let d = duel(case_app(&case), &case, &bad.url(""), &good.url(""));
    d.assert_victim_fine(2000);
    assert!(d.count("ok") > 0, "the attacker read nothing: {d:?}");
}

#[test]
fn a_flood_past_max_ops_per_host_is_refused_and_another_host_still_gets_its_requests() {
    // 60 x 64 = 3,840 requests wanted, the attacker's host allows 256.
    let bad = Server::start();
    let good = Server::start();
    let case = Case {
        attack_init: "",
        attack_op: r#"    return http.get(base .. "/never", { timeout = 3 })"#,
        procs: 60,
        per: 64,
        victim_init: "",
        victim_op: HTTP_VIC_OP,
        n: 20,
    };
    let app = case_app(&case).limits(HostLimits {
        max_ops_per_host: 256,
        ..attacker_limits()
    });
    let d = duel(app, &case, &bad.url(""), &good.url(""));
    d.assert_victim_fine(2000);
    assert!(
        d.count("RateLimited") > 0,
        "the attacker was not held to max_ops_per_host: {d:?}"
    );
}

// ---------------------------------------------------------------------------
// Timers, the bus, the registry, spawning
// ---------------------------------------------------------------------------

#[test]
fn thousands_of_one_ms_timers_delay_another_hosts_sleep_by_little() {
    // 40 x 64 coroutines sleeping 1 ms in a loop, 20 tickers each process.
    let case = Case {
        attack_init: r#"local tickers = {}
for k = 1, 20 do tickers[k] = time.ticker("1ms") end"#,
        attack_op: r#"    time.sleep("1ms")
    return true"#,
        procs: 40,
        per: 64,
        victim_init: "",
        victim_op: r#"    time.sleep("50ms")
    return true"#,
        n: 20,
    };
    let d = duel(case_app(&case), &case, "", "");
    // The sleep itself is 50 ms.
    d.assert_victim_fine(1050);
    assert!(d.count("ok") > 10_000, "the attacker did not flood: {d:?}");
}

#[test]
fn a_flood_of_bus_events_delays_another_hosts_events_by_little() {
    // 40 x 64 publishers, each process also subscribed to what it floods.
    let case = Case {
        attack_init: r#"local own = assert(events.subscribe("flood"))
coroutine.spawn(function() while true do own:channel():receive() end end)"#,
        attack_op: r#"    return events.send("flood", "k", "/p/" .. i, { n = i })"#,
        procs: 40,
        per: 64,
        victim_init: r#"local sub = assert(events.subscribe("mine"))"#,
        victim_op: r#"    assert(events.send("mine", "k", "/v/" .. i))
    local r = channel.select({ sub:channel():case_receive(), time.after("5s"):case_receive() })
    if r.channel ~= sub:channel() then return nil, "no event within 5 s" end
    assert(r.value.path == "/v/" .. i, "got " .. tostring(r.value.path))
    return true"#,
        n: 20,
    };
    let d = duel(case_app(&case), &case, "", "");
    d.assert_victim_fine(2000);
    assert!(d.count("ok") > 1000, "the attacker did not flood: {d:?}");
}

#[test]
fn registry_churn_delays_another_hosts_names_by_little() {
    let case = Case {
        attack_init: "",
        attack_op: r#"    local name = "churn." .. i
    local ok, err = process.registry.register(name)
    if not ok then return nil, err end
    process.registry.lookup(name)
    return process.registry.unregister(name)"#,
        procs: 40,
        per: 64,
        victim_init: "",
        victim_op: r#"    local name = "victim." .. i
    assert(process.registry.register(name))
    local pid = process.registry.lookup(name)
    assert(pid == process.pid(), "lookup gave " .. tostring(pid))
    assert(process.registry.unregister(name))
    return true"#,
        n: 20,
    };
    let d = duel(case_app(&case), &case, "", "");
    d.assert_victim_fine(2000);
    assert!(d.count("ok") > 1000, "the attacker did not churn: {d:?}");
}

#[test]
fn spawn_and_exit_churn_delays_another_hosts_spawn_by_little() {
    // 20 x 32 coroutines spawning processes that end at once; the host's
    // max_processes (500) refuses the excess.
    let case = Case {
        attack_init: "",
        attack_op: r#"    return process.spawn("c:nop", "test:host")"#,
        procs: 20,
        per: 32,
        victim_init: "",
        victim_op: r#"    local pid = assert(process.spawn_monitored("c:nop", "test:other"))
    local r = channel.select({ process.events():case_receive(), time.after("5s"):case_receive() })
    if r.channel ~= process.events() then return nil, "no exit within 5 s" end
    assert(r.value.from == pid)
    return true"#,
        n: 20,
    };
    let d = duel(case_app(&case), &case, "", "");
    d.assert_victim_fine(2000);
    assert!(d.count("ok") > 1000, "the attacker did not churn: {d:?}");
}

// ---------------------------------------------------------------------------
// CPU and mailboxes
// ---------------------------------------------------------------------------

const PING_INIT: &str = r#"local echo = assert(process.spawn("c:echo", "test:other"))
local inbox = process.inbox()"#;

const PING_OP: &str = r#"    assert(process.send(echo, "ping", i))
    local r = channel.select({ inbox:case_receive(), time.after("5s"):case_receive() })
    if r.channel ~= inbox then return nil, "no pong within 5 s" end
    return true"#;

#[test]
fn cpu_loops_on_every_attacker_worker_delay_another_hosts_messages_by_little() {
    // Two workers on the attacker's host, 40 processes spinning on them.
    let case = Case {
        attack_init: "",
        attack_op: r#"    local x = 0
    for k = 1, 1000000 do x = x + k end
    return x"#,
        procs: 40,
        per: 1,
        victim_init: PING_INIT,
        victim_op: PING_OP,
        n: 20,
    };
    let d = duel(case_app(&case).workers(2), &case, "", "");
    d.assert_victim_fine(2000);
    assert!(d.count("ok") > 100, "the attacker did not spin: {d:?}");
}

#[test]
fn a_flood_into_another_hosts_mailbox_stops_at_its_limit_and_its_neighbours_run() {
    // The attacker may reach the victim's host: it floods a process there
    // that never reads with 60 KB messages. The victim host's
    // mailbox_limit (100) refuses the excess; the victim's own ping-pong
    // on that host goes on.
    let case = Case {
        attack_init: r#"local big = string.rep("m", 60000)"#,
        attack_op: r#"    local ok, sent = pcall(process.send, base, "big", big .. i)
    if ok and sent then return true end
    return nil, { kind = function() return "refused" end }"#,
        procs: 20,
        per: 16,
        victim_init: PING_INIT,
        victim_op: PING_OP,
        n: 20,
    };
    let app = case_app(&case)
        .limits(HostLimits {
            allow_hosts: Some(vec![OTHER_HOST.to_owned()]),
            ..attacker_limits()
        })
        .other_limits(HostLimits {
            mailbox_limit: 100,
            ..victim_limits()
        });
    let d = alone(|| {
        let runtime = app.start();
        let (sink, _) = runtime
            .spawn_watched(SpawnRequest::new("c:sink", OTHER_HOST, Vec::new()))
            .expect("sink spawned");
        let d = duel_on(&runtime, &case, &sink.to_string(), "");
        eprintln!("{d:?}");
        assert_eq!(
            run_on(&runtime, "c:nop", Vec::new()),
            Ok(Value::Int(1)),
            "the runtime cannot start a process after the attack"
        );
        d
    });
    d.assert_victim_fine(2000);
    assert!(
        d.count("ok") >= 50,
        "the attacker did not reach the sink: {d:?}"
    );
    assert!(
        d.count("refused") > 0,
        "the sink's mailbox_limit did not refuse: {d:?}"
    );
}

/// On `test:a`: tries to run its own code on the hub, whose processes
/// reach `test:b` (which `test:a` may not), and on `test:a2`, which
/// reaches no more than `test:a` does.
const HUB_HOPPER: &str = r#"return function()
    local out = {}
    local pid, err = process.spawn("h:hop", "test:hub")
    out[#out + 1] = tostring(pid) .. " " .. tostring(err and err:kind())
    out[#out + 1] = tostring(err and err:message():find("test:b", 1, true) ~= nil)
    local pid2 = process.spawn_monitored("h:hop", "test:a2")
    out[#out + 1] = tostring(pid2 ~= nil)
    local ev = process.events():receive()
    out[#out + 1] = tostring(ev.result.value)
    return table.concat(out, "|")
end"#;

#[test]
fn a_tenant_cannot_reach_further_by_running_its_code_on_a_hub() {
    // test:a and test:b reach only the hub, which reaches both. test:a
    // spawned its own entry on the hub, and from there sent to, ended
    // and stopped the services of test:b. A spawn now never widens what
    // the spawner's code may reach: test:a2, reaching only test:a and the
    // hub, still takes test:a's processes.
    use crate::harness::{lua_program as program, reaching as reach};
    use warren_core::{HostSpec, RuntimeBuilder};
    let runtime = RuntimeBuilder::new()
        .frontend(warren_lua::lua_frontend())
        .host(HostSpec::new("test:a", 1).with_limits(reach(&["test:hub", "test:a2"])))
        .host(HostSpec::new("test:a2", 1).with_limits(reach(&["test:a", "test:hub"])))
        .host(HostSpec::new("test:b", 1).with_limits(reach(&["test:hub"])))
        .host(HostSpec::new("test:hub", 1))
        .program(program("h:hopper", HUB_HOPPER))
        .program(program("h:hop", r#"return function() return "ran" end"#))
        .start()
        .expect("runtime starts");
    let exit = runtime
        .run(
            SpawnRequest::new("h:hopper", "test:a", Vec::new()),
            DEADLINE,
        )
        .expect("spawn accepted")
        .expect("the hopper finished");
    let told = exit.expect("the hopper's checks held");
    assert_eq!(
        told.as_str().unwrap_or("?"),
        "nil PermissionDenied|true|true|ran"
    );
}

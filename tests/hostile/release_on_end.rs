//! Whatever way a process ends, everything it held is given back exactly.
//!
//! Each case runs on a host whose per-process and per-host caps are equal
//! (4 handles, 4 operations): a holder process takes a whole cap of one
//! resource (fs files, SQL statements, a write transaction with its
//! statements, HTTP response streams, operations in flight, a registry
//! name, 64 bus subscriptions, 20 tickers), then ends in one way (returns,
//! raises, is terminated, dies of a linked failure, of its memory limit, of
//! its cpu budget, of the stuck-code guard in a `table.sort` comparator,
//! upgrades into an entry that returns, is terminated while blocked in an
//! HTTP request, dies inside a `__close` handler, or fails with an error
//! whose `__tostring` loops: the last-words path). A fresh process of the
//! same host must then take the whole cap again, and the runtime's
//! counters (live processes, bus subscriptions, armed timers, the host's
//! memory) must be back at zero.

use std::sync::Arc;
use std::time::{Duration, Instant};

use warren_core::{Grants, HostLimits, Runtime, Value};
use warren_lua::{Databases, Volumes};
use warren_sql::{Database, DbConfig, SqliteFile};
use warren_tests::{HOST, TempDir, grants, run_on};

use crate::harness::{app, limits};

#[expect(clippy::duplicate_mod, reason = "io_surface keeps its copy private")]
#[expect(dead_code, reason = "only start and url are used here")]
#[path = "../tests/io/server.rs"]
mod server;
use server::Server;

/// Shared by the holder and the checker: `acquire(res, base)` takes the
/// host's whole cap of `res` and returns how much it got.
const PRELUDE: &str = r#"
local fs = require("fs")
local sql = require("sql")
local http = require("http_client")
local events = require("events")
local time = require("time")
HELD = {}
local function acquire(res, base)
    local held = HELD
    if res == "fs" then
        local vol = assert(fs.get("app.fs:data"))
        for i = 1, 4 do held[i] = assert(vol:open("f.txt", "r")) end
        return "4"
    elseif res == "stmt" then
        local db = assert(sql.get("app.db:main"))
        for i = 1, 4 do held[i] = assert(db:prepare("SELECT 1")) end
        return "4"
    elseif res == "tx" then
        local db = assert(sql.get("app.db:main"))
        local tx = assert(db:begin())
        assert(tx:execute("INSERT INTO t VALUES (1)"))
        held[1] = tx
        for i = 2, 4 do held[i] = assert(tx:prepare("SELECT 1")) end
        return "4"
    elseif res == "stream" then
        for i = 1, 4 do held[i] = assert(http.get(base .. "/lines", { stream = true })) end
        return "4"
    elseif res == "ops" then
        local results = channel.new(8)
        for _ = 1, 4 do
            coroutine.spawn(function()
                local _, err = http.get(base .. "/never", { timeout = TIMEOUT })
                results:send(err and tostring(err:kind()) or "ok")
            end)
        end
        if TIMEOUT > 1 then
            time.sleep("50ms") -- the holder: let the four calls start
            return "4"
        end
        local counts = {}
        for _ = 1, 4 do
            local k = results:receive()
            counts[k] = (counts[k] or 0) + 1
        end
        local keys = {}
        for k, c in pairs(counts) do keys[#keys + 1] = k .. "=" .. c end
        table.sort(keys)
        return table.concat(keys, " ")
    elseif res == "name" then
        assert(process.registry.register("held.name"))
        return "ok"
    elseif res == "bus" then
        for i = 1, 64 do held[i] = assert(events.subscribe("s" .. i)) end
        return "64"
    elseif res == "timers" then
        for i = 1, 20 do held[i] = assert(time.ticker("30ms")) end
        return "20"
    end
    error("unknown resource " .. tostring(res))
end
"#;

/// Takes the cap of `res`, tells `parent`, then ends the way `way` says.
const HOLDER: &str = r#"
TIMEOUT = 20
return function(res, way, parent, base)
    acquire(res, base)
    process.send(parent, "ready")
    local inbox = process.inbox()
    if way == "return" then
        return "done"
    elseif way == "error" then
        error("boom")
    elseif way == "terminate" then
        inbox:receive()
    elseif way == "link" then
        process.spawn_linked("h:crash", "test:host")
        inbox:receive()
    elseif way == "memory" then
        local t = {}
        while true do t[#t + 1] = string.rep("x", 65536) .. #t end
    elseif way == "cpu" then
        local x = 0
        while true do x = x + 1 end
    elseif way == "stuck" then
        table.sort({ 5, 3, 4, 1, 2 }, function(a, b) while true do end end)
    elseif way == "upgrade" then
        local _, e = process.upgrade("h:after")
        error("upgrade refused: " .. tostring(e))
    elseif way == "blocked" then
        http.get(base .. "/never", { timeout = 20 })
    elseif way == "close" then
        local c <close> = setmetatable({}, { __close = function()
            local x = 0
            while true do x = x + 1 end
        end })
        return "closed"
    elseif way == "close_terminate" then
        local c <close> = setmetatable({}, { __close = function()
            process.send(parent, "closing")
            inbox:receive()
        end })
        return "closed"
    elseif way == "last_words" then
        error(setmetatable({}, { __tostring = function() while true do end end }))
    elseif way == "last_words_plain" then
        error(setmetatable({}, { __tostring = function() return "bye" end }))
    end
    error("unknown way " .. tostring(way))
end
"#;

/// Takes the cap of `res` in a fresh process and returns how much it got.
const CHECKER: &str = r#"
TIMEOUT = 0.3
return function(res, base)
    local ok, got = pcall(acquire, res, base)
    if not ok then return "failed: " .. tostring(got) end
    return got
end
"#;

/// Starts the holder, ends it, then runs the checker; "how it ended | what
/// the checker got".
const DRIVER: &str = r#"
local sql = require("sql")
return function(res, way, base)
    if res == "tx" then
        assert(assert(sql.get("app.db:main")):execute("CREATE TABLE IF NOT EXISTS t (v)"))
    end
    local me = process.pid()
    local inbox = process.inbox()
    local events = process.events()
    local pid = assert(process.spawn_monitored("h:holder", "test:host", res, way, me, base))
    local r = channel.select({ inbox:case_receive(), events:case_receive() })
    if r.channel ~= inbox then
        local e = r.value.result.error
        return "not ready: " .. tostring(e and e:message() or r.value.result.value)
    end
    if way == "terminate" then
        assert(process.terminate(pid))
    elseif way == "close_terminate" then
        assert(inbox:receive():topic() == "closing")
        assert(process.terminate(pid))
    end
    local ev = events:receive()
    local res_ = ev.result
    local how = res_.error and tostring(res_.error:kind()) or tostring(res_.value)
    local checker = assert(process.spawn_monitored("h:checker", "test:host", res, base))
    local ev2 = events:receive()
    assert(ev2.from == checker)
    local got = ev2.result.error and ("checker failed: " .. ev2.result.error:message()) or tostring(ev2.result.value)
    return how .. " | " .. got
end
"#;

/// Ends by failing at once (the linked failure).
const CRASH: &str = r#"return function() error("linked crash") end"#;

/// What the holder upgrades into: ends at once.
const AFTER: &str = r#"return function() return "upgraded" end"#;

fn vols(dir: &TempDir) -> Arc<Volumes> {
    std::fs::write(dir.0.join("f.txt"), "data").expect("file");
    let mut v = Volumes::new();
    v.insert(warren_fs::Volume::open("app.fs:data", &dir.0, 0o755, false).expect("volume"));
    Arc::new(v)
}

fn dbs(dir: &TempDir) -> Arc<Databases> {
    let mut dbs = Databases::new();
    let rt = warren_core::io_runtime().handle().clone();
    let config = DbConfig::Sqlite {
        file: SqliteFile::Path(dir.0.join("main.db")),
        max_lifetime: Duration::from_secs(3600),
        query_timeout: None,
    };
    dbs.insert(Database::open("app.db:main", config, rt).expect("open"));
    Arc::new(dbs)
}

fn all_grants() -> Grants {
    grants(&[
        ("fs.get", "app.fs:data"),
        ("db.get", "app.db:main"),
        ("http_client.request", "http://127.0.0.1:*"),
        ("http_client.private_ip", "127.0.0.1"),
    ])
}

/// Polls `f` until it is true or 3 s passed.
fn eventually(runtime: &Runtime, what: &str, f: impl Fn(&Runtime) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !f(runtime) {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs one case: ends a holder of `res` the way `way` says and checks the
/// host got everything back.
fn case(way: &str, res: &str) {
    let way = way.trim_start_matches("r#");
    let dir = TempDir::new("release-on-end");
    let server = Server::start();
    let g = all_grants();
    let runtime = app()
        .limits(HostLimits {
            max_open_handles: 4,
            max_handles_per_host: 4,
            max_ops_per_process: 4,
            max_ops_per_host: 4,
            ..limits()
        })
        .extension(vols(&dir))
        .databases(dbs(&dir))
        .granted("h:holder", &format!("{PRELUDE}\n{HOLDER}"), g.clone())
        .granted("h:checker", &format!("{PRELUDE}\n{CHECKER}"), g.clone())
        .granted("h:driver", DRIVER, g)
        .entry("h:crash", CRASH)
        .entry("h:after", AFTER)
        .start();
    // Baseline: what the host counts once a trivial process has run.
    assert_eq!(
        run_on(&runtime, "h:alive", Vec::new()),
        Ok(Value::str("alive"))
    );
    eventually(&runtime, "the baseline process still live", |r| {
        r.live_processes() == 0
    });
    let base = runtime.memory_used(HOST).unwrap_or_default();
    let args = vec![Value::str(res), Value::str(way), Value::str(server.url(""))];
    let report = match run_on(&runtime, "h:driver", args) {
        Ok(v) => v.as_str().map(str::to_owned).unwrap_or_default(),
        Err(e) => panic!("the driver failed: {e}"),
    };
    let (how, got) = report
        .split_once(" | ")
        .unwrap_or_else(|| panic!("{report}"));
    let expected_how = match way {
        "return" => "done",
        "upgrade" => "upgraded",
        _ => "",
    };
    if expected_how.is_empty() {
        assert!(
            !["done", "closed", "upgraded"].contains(&how),
            "{way}: the holder did not fail: {report}"
        );
    } else {
        assert_eq!(how, expected_how, "{report}");
    }
    let want = match res {
        "fs" | "stmt" | "tx" | "stream" => "4",
        "ops" => "Timeout=4",
        "name" => "ok",
        "bus" => "64",
        "timers" => "20",
        _ => unreachable!(),
    };
    assert_eq!(
        got, want,
        "{way} x {res}: a fresh process could not take the host's whole cap back ({report})"
    );
    eventually(&runtime, "processes still live", |r| {
        r.live_processes() == 0
    });
    eventually(&runtime, "bus subscriptions left", |r| {
        r.bus_subscriptions() == 0
    });
    eventually(&runtime, "timers still armed", |r| r.armed_timers() == 0);
    eventually(&runtime, "host memory still counted", |r| {
        r.memory_used(HOST).unwrap_or(u64::MAX) <= base
    });
    assert_eq!(
        runtime.lookup("held.name"),
        None,
        "{way} x {res}: name kept"
    );
}

macro_rules! way {
    ($way:ident: $($res:ident),*) => {
        mod $way {
            $(
                #[test]
                fn $res() {
                    super::case(stringify!($way), stringify!($res));
                }
            )*
        }
    };
}

way!(r#return: fs, stmt, tx, stream, name, ops);
way!(error: fs, stmt, tx, stream, name, ops);
way!(terminate: fs, stmt, tx, stream, name, ops);
way!(link: fs, stmt, tx, stream, name, ops);
way!(memory: fs, stmt, tx, stream, name, ops);
way!(cpu: fs, stmt, tx, stream, name, ops);
way!(stuck: fs, stmt, tx, stream, name, ops);
way!(upgrade: fs, stmt, tx, stream, name, ops);
way!(close: fs, stmt, tx, stream, name, ops);
way!(close_terminate: fs, stmt, tx, stream, name, ops);
way!(last_words: fs, stmt, tx, stream, name, ops);
way!(last_words_plain: fs, stmt, tx, stream, name, ops);

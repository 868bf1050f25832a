//! `sql` on SQLite files: every call, the value mapping, each error kind,
//! grants, a process killed mid-transaction, the limits of in-flight calls
//! and handles, and that a waiting process leaves its worker to others.

use std::time::Duration;

use warren_core::{HostLimits, Value};
use warren_tests::*;

use super::{TempDir, grants, method_entry, sqlite_dbs};

fn db_grant() -> warren_core::Grants {
    grants(&[("db.get", "app.db:*")])
}

fn run_granted(dir: &TempDir, source: &str) -> warren_core::Exit {
    App::new()
        .databases(sqlite_dbs(dir, &["main", "other"], None))
        .granted("t:main", source, db_grant())
        .run("t:main", Vec::new())
}

fn ok_granted(dir: &TempDir, source: &str) -> Value {
    match run_granted(dir, source) {
        Ok(v) => v,
        Err(e) => panic!("script failed: {e}"),
    }
}

#[test]
fn every_call_of_db_tx_and_stmt() {
    let dir = TempDir::new("calls");
    let v = ok_granted(
        &dir,
        r#"local sql = require("sql")
    return function()
        local db = assert(sql.get("app.db:main"))
        assert(db:type() == sql.type.SQLITE)
        local r = assert(db:execute([[
            CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE, price REAL, data BLOB, flag INTEGER);
            CREATE TABLE log (msg TEXT)]]))
        r = assert(db:execute("INSERT INTO items (name, price, data, flag) VALUES (?, ?, ?, ?)",
            { "apple", 1.5, sql.as.binary("\0\1\2"), true }))
        assert(r.rows_affected == 1 and r.last_insert_id == 1, "execute result")
        assert(db:execute("INSERT INTO items (name, price) VALUES (?, ?)", { "pear", sql.NULL }))
        local rows = assert(db:query("SELECT id, name, price, data, flag FROM items ORDER BY id"))
        assert(#rows == 2)
        assert(rows[1].id == 1 and math.type(rows[1].id) == "integer")
        assert(rows[1].name == "apple" and rows[1].price == 1.5 and rows[1].data == "\0\1\2" and rows[1].flag == 1)
        assert(rows[2].price == nil and rows[2].data == nil, "NULL is an absent key")
        assert(#assert(db:query("SELECT * FROM items WHERE id > ?", { 99 })) == 0, "no rows is {}")
        -- prepared statements
        local stmt = assert(db:prepare("SELECT name FROM items WHERE id = ?"))
        assert(stmt:query({ 2 })[1].name == "pear")
        local ins = assert(db:prepare("INSERT INTO log VALUES (?)"))
        assert(ins:execute({ "x" }).rows_affected == 1)
        assert(ins:close() == true and stmt:close() == true)
        local _, err = stmt:query({ 1 })
        assert(errors.is(err, errors.INVALID), "closed statement")
        -- transactions and savepoints
        local tx = assert(db:begin())
        assert(tx:db_type() == "sqlite")
        assert(tx:execute("INSERT INTO log VALUES (?)", { "a" }))
        assert(tx:savepoint("sp1"))
        assert(tx:execute("INSERT INTO log VALUES (?)", { "b" }))
        assert(tx:rollback_to("sp1"))
        assert(tx:release("sp1"))
        local tstmt = assert(tx:prepare("SELECT count(*) AS n FROM log"))
        assert(tstmt:query()[1].n == 2)
        assert(tx:commit())
        local _, e2 = tx:execute("SELECT 1")
        assert(errors.is(e2, errors.INVALID) and e2:message():find("not active"), tostring(e2))
        local tx2 = assert(db:begin({ isolation = sql.isolation.SERIALIZABLE }))
        assert(tx2:execute("DELETE FROM log"))
        assert(tx2:rollback())
        local n = db:query("SELECT count(*) AS n FROM log")[1].n
        local stats = assert(db:stats())
        assert(type(stats.max_open_connections) == "number", "stats")
        assert(db:release() == true)
        local _, e3 = db:query("SELECT 1")
        assert(errors.is(e3, errors.INVALID), "released handle")
        return n
    end"#,
    );
    assert_eq!(v, Value::Int(2));
}

#[test]
fn bad_input_returns_invalid_and_the_process_goes_on() {
    let dir = TempDir::new("bad");
    let v = ok_granted(
        &dir,
        r#"local sql = require("sql")
    return function()
        local db = assert(sql.get("app.db:main"))
        assert(db:execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
        local kinds = {}
        local function k(v, e) kinds[#kinds + 1] = (v == nil and e and e:kind()) or "OK" end
        k(db:query("SELEKT nonsense"))
        k(db:query("SELECT * FROM missing_table"))
        k(db:query("SELECT ?", { {} }))
        k(db:query("SELECT ?", { print }))
        k(db:query(42))
        k(db:execute("INSERT INTO t VALUES (?, ?)", { 1, "a" }))
        k(db:execute("INSERT INTO t VALUES (?, ?)", { 2, "a" }))
        k(db:begin({ isolation = "read_uncommitted" }))
        k(db:begin({ isolation = "nonsense" }))
        local tx = assert(db:begin())
        k(tx:savepoint("bad name; DROP TABLE t"))
        assert(tx:rollback())
        k(tx:commit())
        k(sql.get(""))
        k(sql.get(42))
        k(db:query("SELECT ?", { [100000] = 1 }))
        k(db:query("SELECT ? AS v", { sql.as.int("12") }))
        k(db:query("SELECT ?", { sql.as.int("twelve") }))
        local typed = assert(db:query("SELECT ? AS f, ? AS t, ? AS n, typeof(?) AS ty",
            { sql.as.float(2), sql.as.text(5), sql.as.null(), sql.as.float("1.5") }))[1]
        assert(typed.f == 2.0 and math.type(typed.f) == "float" and typed.t == "5" and typed.n == nil, "sql.as")
        assert(typed.ty == "real", typed.ty)
        local ok = pcall(db.query, {}, "SELECT 1")
        kinds[#kinds + 1] = ok and "no raise" or "raised"
        return table.concat(kinds, " ")
    end"#,
    );
    let expected = "Invalid Invalid Invalid Invalid Invalid OK AlreadyExists Invalid Invalid \
                    Invalid Invalid Invalid Invalid Invalid OK Invalid raised";
    assert_eq!(v, s(expected));
}

#[test]
fn grants_are_checked_before_existence() {
    let dir = TempDir::new("grants");
    let dbs = sqlite_dbs(&dir, &["main", "secret"], None);
    let source = r#"local sql = require("sql")
    return function()
        local out = {}
        for _, id in ipairs({ "app.db:main", "app.db:secret", "app.db:nope", "other:db" }) do
            local db, err = sql.get(id)
            out[#out + 1] = db and "ok" or err:kind()
        end
        return table.concat(out, " ")
    end"#;
    let v = App::new()
        .databases(dbs)
        .granted(
            "t:main",
            source,
            grants(&[("db.get", "app.db:main"), ("db.get", "app.db:nope")]),
        )
        .run("t:main", Vec::new())
        .expect("runs");
    assert_eq!(v, s("ok PermissionDenied NotFound PermissionDenied"));
    // An entry with no grants at all reaches no database.
    let dbs = sqlite_dbs(&dir, &["main"], None);
    let v = App::new()
        .databases(dbs)
        .entry(
            "t:main",
            r#"local sql = require("sql")
        return function() local db, err = sql.get("app.db:main") return err:kind() end"#,
        )
        .run("t:main", Vec::new())
        .expect("runs");
    assert_eq!(v, s("PermissionDenied"));
}

#[test]
fn a_process_killed_mid_transaction_leaves_the_database_consistent() {
    let dir = TempDir::new("killed");
    let source = r#"local sql = require("sql")
    local time = require("time")
    local function holder(parent)
        local db = assert(sql.get("app.db:main"))
        local tx = assert(db:begin())
        assert(tx:execute("INSERT INTO t VALUES (?)", { "uncommitted" }))
        process.send(parent, "ready", true)
        process.inbox():receive() -- waits until terminated
    end
    return { holder = holder, main = function()
        local db = assert(sql.get("app.db:main"))
        assert(db:execute("CREATE TABLE t (v TEXT)"))
        local pid = process.spawn_monitored("t:holder", "test:host", process.pid())
        local msg = process.inbox():receive()
        assert(msg:topic() == "ready")
        -- While the holder's transaction is open, this waits for it.
        process.terminate(pid)
        local ev = process.events():receive()
        assert(ev.kind == process.event.EXIT)
        -- The exit is reported only after the rollback was queued: the
        -- uncommitted row is gone and the connection is free.
        local n = assert(db:query("SELECT count(*) AS n FROM t"))[1].n
        assert(db:execute("INSERT INTO t VALUES (?)", { "after" }))
        local m = assert(db:query("SELECT count(*) AS n FROM t"))[1].n
        return n * 10 + m
    end }"#;
    let app = App::new()
        .databases(sqlite_dbs(&dir, &["main"], None))
        .granted("t:main", source, db_grant());
    let v = app
        .program(method_entry("t:holder", source, "holder", db_grant()))
        .run("t:main", Vec::new())
        .expect("runs");
    assert_eq!(v, Value::Int(1));
}

#[test]
fn a_process_waiting_on_its_own_transaction_gets_conflict() {
    let dir = TempDir::new("selfwait");
    let v = ok_granted(
        &dir,
        r#"local sql = require("sql")
    return function()
        local db = assert(sql.get("app.db:main"))
        assert(db:execute("CREATE TABLE t (v INTEGER)"))
        local tx = assert(db:begin())
        local _, err = db:query("SELECT count(*) FROM t")
        assert(tx:rollback())
        return err:kind()
    end"#,
    );
    assert_eq!(v, s("Conflict"));
}

#[test]
fn a_slow_statement_holds_only_its_coroutine_not_the_worker() {
    let dir = TempDir::new("slow");
    // One worker: the ticker runs only if the query does not hold it.
    let v = ok_granted(
        &dir,
        r#"local sql = require("sql")
    local time = require("time")
    return function()
        local db = assert(sql.get("app.db:main"))
        local ticks, done = 0, false
        coroutine.spawn(function()
            while not done do
                time.sleep("1ms")
                ticks = ticks + 1
            end
        end)
        local rows = assert(db:query([[WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000)
            SELECT count(*) AS n FROM c]]))
        done = true
        assert(rows[1].n == 3000000)
        return ticks > 3
    end"#,
    );
    assert_eq!(v, Value::Bool(true));
}

#[test]
fn query_timeout_interrupts_the_statement() {
    let dir = TempDir::new("timeout");
    let source = r#"local sql = require("sql")
    return function()
        local db = assert(sql.get("app.db:main"))
        local _, err = db:query([[WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)
            SELECT count(*) FROM c]])
        assert(err, "an endless query ends")
        local ok = db:query("SELECT 1 AS one")
        return err:kind() .. " " .. tostring(err:retryable()) .. " " .. tostring(ok and ok[1].one)
    end"#;
    let v = App::new()
        .databases(sqlite_dbs(
            &dir,
            &["main"],
            Some(Duration::from_millis(100)),
        ))
        .granted("t:main", source, db_grant())
        .run("t:main", Vec::new())
        .expect("runs");
    assert_eq!(v, s("Timeout true 1"));
}

#[test]
fn query_timeout_interrupts_a_long_like_glob_or_instr() {
    // Each is one step of SQLite's machine, which its progress handler
    // never saw: a 4 MB LIKE ran 50 s past its process's end, holding
    // the entry. The ported functions stop at the timeout.
    let dir = TempDir::new("like_timeout");
    let source = r#"local sql = require("sql")
    local time = require("time")
    return function()
        local db = assert(sql.get("app.db:main"))
        local out = {}
        local long = "replace(hex(zeroblob(4000000)), '0', 'a')"
        local pattern = "replace(hex(zeroblob(400)), '0', 'a')"
        for _, q in ipairs({
            "SELECT " .. long .. " LIKE ('%' || " .. pattern .. " || 'b') AS r",
            "SELECT " .. long .. " GLOB ('*' || " .. pattern .. " || 'b') AS r",
        }) do
            local t0 = time.now()
            local _, err = db:query(q)
            local ms = time.now():sub(t0):milliseconds()
            out[#out + 1] = tostring(err and err:kind()) .. ":" .. tostring(ms < 3000)
        end
        -- instr is linear: 8 MB against 4 MB answers at once.
        local rows = assert(db:query("SELECT instr(replace(hex(zeroblob(4000000)), '0', 'a'), "
            .. "replace(hex(zeroblob(2000000)), '0', 'a') || 'b') AS n"))
        out[#out + 1] = tostring(rows[1].n)
        local ok = db:query("SELECT 'abc' LIKE 'A_C' AS y")
        out[#out + 1] = tostring(ok and ok[1].y)
        return table.concat(out, " ")
    end"#;
    let v = App::new()
        .databases(sqlite_dbs(
            &dir,
            &["main"],
            Some(Duration::from_millis(200)),
        ))
        .granted("t:main", source, db_grant())
        .run("t:main", Vec::new())
        .expect("runs");
    assert_eq!(v, s("Timeout:true Timeout:true 0 1"));
}

#[test]
fn engine_time_shows_in_os_clock_under_a_budget() {
    // A statement's CPU time in the engine is its process's own (the
    // hostile suite's `sql_cpu` shows a budget ending it).
    let dir = TempDir::new("engine_clock");
    let limits = HostLimits {
        cpu_budget: Some(Duration::from_secs(60)),
        ..HostLimits::default()
    };
    let source = r#"local sql = require("sql")
    return function()
        local db = assert(sql.get("app.db:main"))
        local t0 = os.clock()
        local rows = assert(db:query([[WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000)
            SELECT count(*) AS n FROM c]]))
        assert(rows[1].n == 2000000)
        return os.clock() - t0
    end"#;
    let v = App::new()
        .limits(limits)
        .databases(sqlite_dbs(&dir, &["main"], None))
        .granted("t:main", source, db_grant())
        .run("t:main", Vec::new())
        .expect("runs");
    // Two million rows take the engine well over 50 ms of CPU; the Lua
    // code around the call, a few microseconds.
    let Value::Float(charged) = v else {
        panic!("not a number: {v:?}")
    };
    assert!(
        charged > 0.05,
        "os.clock moved {charged} s over the statement"
    );
}

#[test]
fn calls_in_flight_and_open_handles_are_limited_per_process() {
    let dir = TempDir::new("limits");
    let limits = HostLimits {
        max_ops_per_process: 4,
        max_open_handles: 3,
        ..HostLimits::default()
    };
    let source = r#"local sql = require("sql")
    return function()
        local db = assert(sql.get("app.db:main"))
        local results = channel.new(64)
        for i = 1, 12 do
            coroutine.spawn(function()
                local _, err = db:query([[WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000)
                    SELECT count(*) FROM c]])
                results:send(err and err:kind() or "ok")
            end)
        end
        local limited = 0
        for i = 1, 12 do
            if results:receive() == "RateLimited" then limited = limited + 1 end
        end
        local stmts, last = {}, nil
        for i = 1, 5 do
            local st, err = db:prepare("SELECT 1")
            if st then stmts[#stmts + 1] = st else last = err end
        end
        return limited .. " " .. #stmts .. " " .. last:kind()
    end"#;
    let v = App::new()
        .limits(limits)
        .databases(sqlite_dbs(&dir, &["main"], None))
        .granted("t:main", source, db_grant())
        .run("t:main", Vec::new())
        .expect("runs");
    assert_eq!(v, s("8 3 RateLimited"));
}

#[test]
fn many_processes_write_one_database() {
    let dir = TempDir::new("many");
    let source = r#"local sql = require("sql")
    local function writer(parent, i)
        local db = assert(sql.get("app.db:main"))
        for j = 1, 10 do
            assert(db:execute("INSERT INTO t VALUES (?, ?)", { i, j }))
        end
        process.send(parent, "done", i)
    end
    return { writer = writer, main = function()
        local db = assert(sql.get("app.db:main"))
        assert(db:execute("CREATE TABLE t (p INTEGER, j INTEGER)"))
        for i = 1, 20 do process.spawn("t:writer", "test:host", process.pid(), i) end
        for i = 1, 20 do process.inbox():receive() end
        return assert(db:query("SELECT count(*) AS n, sum(j) AS s FROM t"))[1].n
    end }"#;
    let v = App::new()
        .workers(2)
        .databases(sqlite_dbs(&dir, &["main"], None))
        .granted("t:main", source, db_grant())
        .program(method_entry("t:writer", source, "writer", db_grant()))
        .run("t:main", Vec::new())
        .expect("runs");
    assert_eq!(v, Value::Int(200));
}

#[test]
fn a_result_larger_than_the_process_may_hold_is_invalid() {
    let dir = TempDir::new("big");
    let limits = HostLimits {
        memory_per_process: 4 << 20,
        ..HostLimits::default()
    };
    let source = r#"local sql = require("sql")
    return function()
        local db = assert(sql.get("app.db:main"))
        local _, err = db:query([[WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
            SELECT x, printf('%0100d', x) AS pad FROM c]])
        local small = assert(db:query("SELECT 1 AS one"))
        return err:kind() .. " " .. small[1].one
    end"#;
    let v = App::new()
        .limits(limits)
        .databases(sqlite_dbs(&dir, &["main"], None))
        .granted("t:main", source, db_grant())
        .run("t:main", Vec::new())
        .expect("the process goes on");
    assert_eq!(v, s("Invalid 1"));
}

#[test]
fn ordinary_sql_still_works_under_the_engine_guard() {
    // The authorizer refuses ATTACH, VACUUM INTO and setting the pragmas
    // that change the shared connection; everything else an application
    // does is untouched: plain VACUUM, reading pragmas, user_version and
    // application_id, schema introspection, integrity checks, read-only
    // transactions (the engine's own query_only), savepoints, temp tables
    // and values up to the 16 MiB bound.
    let dir = TempDir::new("guarded");
    let v = ok_granted(
        &dir,
        r#"local sql = require("sql")
    return function()
        local db = assert(sql.get("app.db:main"))
        assert(db:execute([[CREATE TABLE p (id INTEGER PRIMARY KEY);
            CREATE TABLE c (p INTEGER REFERENCES p(id), v TEXT);
            CREATE INDEX c_p ON c (p)]]))
        assert(db:execute("INSERT INTO p VALUES (1)"))
        assert(db:execute("INSERT INTO c VALUES (1, 'x')"))
        -- plain VACUUM, with and without a schema name
        assert(db:execute("VACUUM"))
        assert(db:execute("VACUUM main"))
        -- reading pragmas
        local function one(q) return assert(db:query(q))[1] end
        assert(one("PRAGMA journal_mode").journal_mode == "wal")
        assert(one("PRAGMA foreign_keys").foreign_keys == 1)
        assert(one("PRAGMA cache_size").cache_size == -2000)
        assert(type(one("PRAGMA page_count").page_count) == "number")
        assert(one("PRAGMA integrity_check").integrity_check == "ok")
        assert(#assert(db:query("PRAGMA foreign_key_check")) == 0)
        assert(#assert(db:query("PRAGMA table_info(c)")) == 2)
        assert(#assert(db:query("PRAGMA index_list(c)")) == 1)
        assert(#assert(db:query("SELECT name FROM pragma_table_info('p')")) == 1)
        assert(db:execute("PRAGMA optimize"))
        assert(db:query("PRAGMA wal_checkpoint(PASSIVE)"))
        -- the harmless setters
        assert(db:execute("PRAGMA user_version = 3"))
        assert(db:execute("PRAGMA application_id = 77"))
        assert(one("PRAGMA user_version").user_version == 3)
        assert(one("PRAGMA application_id").application_id == 77)
        -- foreign keys are still enforced (no tenant can turn them off)
        local _, fk = db:execute("INSERT INTO c VALUES (99, 'orphan')")
        assert(fk and fk:kind() == errors.CONFLICT, tostring(fk))
        -- a read-only transaction, and the connection writable after it
        local ro = assert(db:begin({ read_only = true }))
        local _, w = ro:execute("INSERT INTO p VALUES (2)")
        assert(w and w:kind() == errors.INVALID, tostring(w))
        ro:rollback()
        assert(db:execute("INSERT INTO p VALUES (2)"))
        -- savepoints, a table made and undone, a large value under the bound
        local tx = assert(db:begin())
        assert(tx:savepoint("a"))
        assert(tx:execute("CREATE TABLE scratch (x)"))
        assert(tx:execute("INSERT INTO scratch VALUES (randomblob(4000000))"))
        assert(tx:rollback_to("a"))
        assert(tx:commit())
        local big = one("SELECT length(randomblob(8000000)) AS n").n
        local st = assert(db:prepare("SELECT count(*) AS n FROM p"))
        local n = assert(st:query())[1].n
        assert(st:close())
        return big + n
    end"#,
    );
    assert_eq!(v, Value::Int(8_000_002));
}

/// A runtime that ends with processes alive stops their statements as
/// their exits would: the running one is interrupted and a queued one
/// never runs. Before, both outlived the runtime on the SQL lane: an
/// endless statement (no `query_timeout`) held the entry for good.
#[test]
fn statements_of_processes_alive_when_the_runtime_ends_are_stopped() {
    let dir = TempDir::new("runtime-end");
    let source = r#"local sql = require("sql")
    local time = require("time")
    local function holder()
        local db = assert(sql.get("app.db:main"))
        coroutine.spawn(function()
            db:query([[WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)
                SELECT count(*) FROM c]])
        end)
        coroutine.spawn(function() db:execute("INSERT INTO t VALUES (1)") end)
        process.inbox():receive() -- until the runtime ends
    end
    return { holder = holder, main = function()
        local db = assert(sql.get("app.db:main"))
        assert(db:execute("CREATE TABLE t (v INTEGER)"))
        process.spawn("t:holder", "test:host")
        time.sleep("300ms") -- the holder's statements are queued by then
        return "queued"
    end }"#;
    let dbs = sqlite_dbs(&dir, &["main"], None);
    let runtime = App::new()
        .databases(dbs.clone())
        .granted("t:main", source, db_grant())
        .program(method_entry("t:holder", source, "holder", db_grant()))
        .start();
    assert_eq!(run_on(&runtime, "t:main", Vec::new()), Ok(s("queued")));
    drop(runtime);
    let db = dbs.get("app.db:main").expect("the database").clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let limits = warren_sql::ResultLimits::default();
        let query = db.query(1, "SELECT count(*) AS n FROM t", vec![], &limits);
        drop(tx.send(warren_core::io_runtime().block_on(query)));
    });
    let rows = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the endless statement was interrupted")
        .expect("counted");
    let n = match &rows {
        Value::Array(rows) => rows.first().and_then(|r| r.get("n")).cloned(),
        _ => None,
    };
    assert_eq!(n, Some(Value::Int(0)), "the queued insert ran: {rows:?}");
}

//! `sql` on a real PostgreSQL (a throwaway cluster this binary starts):
//! the value mapping through a Lua process, error kinds with their
//! SQLSTATE, and a process killed mid-transaction.

use warren_core::Value;
use warren_tests::*;

use super::{grants, method_entry, pg_dbs};

fn pg(source: &str, max_open: usize) -> Value {
    let exit = App::new()
        .databases(pg_dbs(max_open))
        .granted("t:main", source, grants(&[("db.get", "app.db:pg")]))
        .run("t:main", Vec::new());
    match exit {
        Ok(v) => v,
        Err(e) => panic!("script failed: {e}"),
    }
}

#[test]
fn values_errors_and_transactions_on_postgres() {
    let v = pg(
        r#"local sql = require("sql")
    return function()
        local db = assert(sql.get("app.db:pg"))
        assert(db:type() == sql.type.POSTGRES)
        assert(db:execute([[DROP TABLE IF EXISTS lua_items;
            CREATE TABLE lua_items (id integer PRIMARY KEY, price numeric(10,2), ok boolean,
                at timestamptz, raw bytea, note text)]]))
        local r = assert(db:execute("INSERT INTO lua_items VALUES ($1, $2, $3, $4, $5, $6)",
            { 7, "12.50", true, "2026-03-01 09:30:00+00", sql.as.binary("\0\255"), sql.NULL }))
        assert(r.rows_affected == 1 and r.last_insert_id == 0)
        local row = assert(db:query("SELECT * FROM lua_items WHERE id = $1", { 7 }))[1]
        assert(math.type(row.id) == "integer" and row.price == "12.50" and row.ok == true)
        assert(row.at == "2026-03-01T09:30:00Z", row.at)
        assert(row.raw == "\0\255" and row.note == nil)
        local _, dup = db:execute("INSERT INTO lua_items (id) VALUES ($1)", { 7 })
        assert(dup:kind() == errors.ALREADY_EXISTS and dup:details().code == "23505", tostring(dup))
        local _, range = db:execute("INSERT INTO lua_items (id) VALUES ($1)", { 1 << 40 })
        assert(range:kind() == errors.INVALID, tostring(range))
        local tx = assert(db:begin({ isolation = sql.isolation.REPEATABLE_READ }))
        assert(tx:execute("INSERT INTO lua_items (id) VALUES ($1)", { 8 }))
        assert(tx:savepoint("a"))
        assert(tx:execute("INSERT INTO lua_items (id) VALUES ($1)", { 9 }))
        assert(tx:rollback_to("a"))
        assert(tx:commit())
        local _, wc = db:begin({ isolation = sql.isolation.WRITE_COMMITTED })
        assert(wc:kind() == errors.INVALID)
        local n = assert(db:query("SELECT count(*) AS n FROM lua_items"))[1].n
        return n
    end"#,
        4,
    );
    assert_eq!(v, Value::Int(2));
}

#[test]
fn a_killed_process_rolls_back_and_returns_its_connection() {
    let source = r#"local sql = require("sql")
    local time = require("time")
    local function holder(parent)
        local db = assert(sql.get("app.db:pg"))
        local tx = assert(db:begin())
        assert(tx:execute("INSERT INTO lua_killed VALUES ($1)", { 1 }))
        process.send(parent, "ready", true)
        tx:query("SELECT pg_sleep(30)") -- interrupted by the terminate
    end
    return { holder = holder, main = function()
        local db = assert(sql.get("app.db:pg"))
        assert(db:execute("DROP TABLE IF EXISTS lua_killed; CREATE TABLE lua_killed (v integer)"))
        local pid = process.spawn_monitored("t:holder", "test:host", process.pid())
        assert(process.inbox():receive():topic() == "ready")
        time.sleep("50ms") -- the pg_sleep is running
        process.terminate(pid)
        assert(process.events():receive().kind == process.event.EXIT)
        -- With max_open = 1, this query needs the holder's connection back.
        local n = assert(db:query("SELECT count(*) AS n FROM lua_killed"))[1].n
        local busy
        for _ = 1, 100 do
            busy = assert(db:query([[SELECT count(*) AS n FROM pg_stat_activity
                WHERE query LIKE '%pg_sleep(30)%' AND state = 'active' AND pid <> pg_backend_pid()]]))[1].n
            if busy == 0 then break end
            time.sleep("20ms")
        end
        return n * 10 + busy
    end }"#;
    let v = App::new()
        .databases(pg_dbs(1))
        .granted("t:main", source, grants(&[("db.get", "app.db:pg")]))
        .program(method_entry(
            "t:holder",
            source,
            "holder",
            grants(&[("db.get", "app.db:pg")]),
        ))
        .run("t:main", Vec::new())
        .expect("runs");
    assert_eq!(v, Value::Int(0));
}

#[test]
fn execute_without_params_streams_and_drops_its_rows() {
    // Without params, execute runs the simple protocol; its rows are read
    // one at a time and dropped (it collected all of them first: 20 rows
    // of 100 MB took 3.2 GB), and it still reports the last statement.
    let v = pg(
        r#"local sql = require("sql")
    return function()
        local db = assert(sql.get("app.db:pg"))
        local r = assert(db:execute("SELECT repeat('x', 1000000) FROM generate_series(1, 200)"))
        local b = assert(db:execute([[DROP TABLE IF EXISTS lua_stream;
            CREATE TABLE lua_stream (v integer);
            INSERT INTO lua_stream SELECT generate_series(1, 7)]]))
        local _, bad = db:execute("SELECT 1; SELECT * FROM lua_missing_table")
        assert(bad and bad:kind() == errors.INVALID, tostring(bad))
        return r.rows_affected * 100 + b.rows_affected
    end"#,
        2,
    );
    assert_eq!(v, Value::Int(20_007));
}

#[test]
fn a_row_over_16_mib_is_refused_unread_and_the_connection_goes_on() {
    // The driver reads a message whole before Warren sees a row: a row
    // over 16 MiB is dropped as it arrives (SQLSTATE 54000, INVALID), the
    // driver pages through the statement's later messages, and the one
    // pooled connection serves the next query. Under a roomy
    // process limit, so only that bound refuses the 20 MiB row.
    let source = r#"local sql = require("sql")
    return function()
        local db = assert(sql.get("app.db:pg"))
        local _, err = db:query("SELECT repeat('x', 20 * 1024 * 1024) AS v")
        local big = err and (err:kind() .. " " .. tostring(err:details().code) .. " " .. err:message())
        local _, mid = db:execute([[SELECT n, repeat('y', n) AS v FROM
            (VALUES (10), (20 * 1024 * 1024), (30)) AS t(n) ORDER BY n]])
        local _, mid_q = db:query([[SELECT n, repeat('y', n) AS v FROM
            (VALUES (10), (20 * 1024 * 1024), (30)) AS t(n) ORDER BY n]])
        local ok = assert(db:query("SELECT length(repeat('z', 1024 * 1024)) AS v"))
        return { big = big, mid = mid and mid:kind(), mid_q = mid_q and mid_q:kind(), ok = ok[1].v }
    end"#;
    let limits = warren_core::HostLimits {
        memory_per_process: 256 << 20,
        memory_total: 1 << 30,
        ..warren_core::HostLimits::default()
    };
    let v = App::new()
        .limits(limits)
        .databases(pg_dbs(1))
        .granted("t:main", source, grants(&[("db.get", "app.db:pg")]))
        .run("t:main", Vec::new())
        .expect("runs");
    let big = v
        .get("big")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    assert!(
        big.starts_with("Invalid 54000 the server sent a row of"),
        "{v:?}"
    );
    // A big row among small ones fails its statement, execute and query.
    assert_eq!(v.get("mid"), Some(&Value::str("Invalid")), "{v:?}");
    assert_eq!(v.get("mid_q"), Some(&Value::str("Invalid")), "{v:?}");
    assert_eq!(v.get("ok"), Some(&Value::Int(1 << 20)), "{v:?}");
}

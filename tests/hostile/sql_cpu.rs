//! SQL as a way around the CPU budget: a statement that never ends, run
//! plainly, in a loop that catches its error, inside a transaction, as a
//! prepared statement, as an execute, and from many coroutines at once.
//!
//! Guaranteed (warren-sql `meter.rs`, `sqlite/run.rs`; guest-lua
//! `quota.rs`): a process's statements are charged to it at the engine's
//! CPU time and interrupted once what is left of its `cpu_budget` is
//! spent; the process then ends `RATE_LIMITED`, "cpu budget exceeded",
//! and the entry's one connection serves the next caller at once. Before,
//! such a statement held the connection for ten minutes (the call's
//! deadline) while its process, blocked on the call, spent nothing.

use std::time::Duration;

use warren_core::{ErrorKind, Value};
use warren_lua::Databases;
use warren_tests::TempDir;

use crate::harness::Outcome;
use crate::sql_engine::{dbs, run};

/// Counts to 2^62: runs for hours unless interrupted.
const ENDLESS: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                       WHERE x < 4611686018427387904) SELECT count(*) AS v FROM c";

/// Runs `body` (a function body that may use `ENDLESS`, the statement's
/// text) as the attacker on a fresh database.
fn attack(body: &str) -> (Outcome, std::sync::Arc<Databases>) {
    let dir = TempDir::new("sqlcpu");
    let dbs = dbs(&dir);
    let source = format!("local ENDLESS = [[{ENDLESS}]]\nreturn function()\n{body}\nend");
    let out = run(dbs.clone(), &source, Vec::new());
    (out, dbs)
}

/// The attacker ended at its CPU budget, the neighbour ticked, and the
/// entry's connection answers another caller well within the deadline.
fn ended_at_budget(out: &Outcome, dbs: &Databases) {
    out.assert_ended(ErrorKind::RateLimited, "cpu budget exceeded");
    let db = dbs.get("app.db:main").expect("main").clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = warren_core::io_runtime();
        let rows = rt.block_on(db.query(99, "SELECT 7 AS v", Vec::new(), &Default::default()));
        drop(tx.send(rows));
    });
    let next = rx.recv_timeout(Duration::from_secs(5));
    let rows = next.expect("the connection is still held").expect("query");
    assert!(matches!(&rows, Value::Array(r) if r.len() == 1), "{rows:?}");
}

#[test]
fn an_endless_query_ends_at_the_cpu_budget() {
    let (out, dbs) = attack("return db:query(ENDLESS)");
    ended_at_budget(&out, &dbs);
}

#[test]
fn catching_the_interruption_and_starting_again_still_ends() {
    let (out, dbs) = attack(
        r#"local n = 0
        while true do
            local _, err = db:query(ENDLESS)
            n = n + 1
        end"#,
    );
    ended_at_budget(&out, &dbs);
}

#[test]
fn an_endless_statement_in_a_transaction_ends_at_the_cpu_budget() {
    let (out, dbs) = attack(
        r#"local tx = assert(db:begin())
        while true do tx:query(ENDLESS) end"#,
    );
    ended_at_budget(&out, &dbs);
}

#[test]
fn an_endless_prepared_statement_and_execute_end_at_the_cpu_budget() {
    let (out, dbs) = attack(
        r#"local st = assert(db:prepare(ENDLESS))
        st:query()
        while true do db:execute(ENDLESS) end"#,
    );
    ended_at_budget(&out, &dbs);
}

#[test]
fn endless_statements_from_many_coroutines_end_at_the_cpu_budget() {
    let (out, dbs) = attack(
        r#"local time = require("time")
        for _ = 1, 8 do
            coroutine.spawn(function()
                while true do db:query(ENDLESS) end
            end)
        end
        while true do time.sleep("10ms") end"#,
    );
    ended_at_budget(&out, &dbs);
}

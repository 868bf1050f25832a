//! Statements run on the one SQLite connection, on a blocking thread.
//!
//! Everything here is synchronous and takes the connection by reference;
//! the caller (sqlite.rs) holds the lease. A `query_timeout` is enforced
//! with SQLite's progress handler, so the deadline is checked inside the
//! engine and needs no other thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Statement};
use warren_core::{ProcError, Value};

use super::error::map_run;
use crate::config::ResultLimits;
use crate::error::invalid;
use crate::param::Param;
use crate::result::{ExecResult, Rows};

/// Virtual-machine steps between two deadline checks: about a few
/// microseconds of work, so a runaway statement stops promptly.
const PROGRESS_STEPS: std::ffi::c_int = 1000;

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Param::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            Param::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Param::Float(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Param::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t)),
            Param::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// Runs `f` under `timeout` (if any); errors interrupted by the deadline
/// become `TIMEOUT`.
fn with_deadline<R>(
    conn: &mut Connection,
    timeout: Option<Duration>,
    f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
) -> Result<R, ProcError> {
    let fired = Arc::new(AtomicBool::new(false));
    if let Some(limit) = timeout {
        let deadline = Instant::now() + limit;
        let flag = fired.clone();
        conn.progress_handler(
            PROGRESS_STEPS,
            Some(move || {
                let late = Instant::now() >= deadline;
                if late {
                    flag.store(true, Ordering::Relaxed);
                }
                late
            }),
        )
        .map_err(|e| super::error::map(&e))?;
    }
    let out = f(conn);
    if timeout.is_some() {
        conn.progress_handler(0, None::<fn() -> bool>)
            .map_err(|e| super::error::map(&e))?;
    }
    let hit = timeout.filter(|_| fired.load(Ordering::Relaxed));
    out.map_err(|e| map_run(&e, hit))
}

fn check_count(stmt: &Statement<'_>, given: usize) -> Result<(), ProcError> {
    let expected = stmt.parameter_count();
    if expected != given {
        return Err(invalid(format!(
            "statement expects {expected} parameters but {given} were given"
        )));
    }
    Ok(())
}

/// Runs one query and builds its rows under `limits`.
pub(crate) fn query(
    conn: &mut Connection,
    timeout: Option<Duration>,
    sql: &str,
    params: &[Param],
    limits: &ResultLimits,
) -> Result<Value, ProcError> {
    let mut out = Rows::new(limits);
    let mut built: Result<(), ProcError> = Ok(());
    with_deadline(conn, timeout, |c| {
        let mut stmt = c.prepare_cached(sql)?;
        if let Err(e) = check_count(&stmt, params.len()) {
            built = Err(e);
            return Ok(());
        }
        let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                cells.push((name.as_str(), cell(row.get_ref(i)?)));
            }
            if let Err(e) = out.push(cells) {
                built = Err(e);
                return Ok(());
            }
        }
        Ok(())
    })?;
    built.map(|()| out.finish())
}

fn cell(v: ValueRef<'_>) -> Option<Value> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(Value::Int(i)),
        ValueRef::Real(f) => Some(Value::Float(f)),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(Value::Str(t.to_vec())),
    }
}

/// Runs a statement (or, without params, a `;`-separated batch) and
/// reports the last one.
pub(crate) fn execute(
    conn: &mut Connection,
    timeout: Option<Duration>,
    sql: &str,
    params: &[Param],
) -> Result<ExecResult, ProcError> {
    let mut bad: Result<(), ProcError> = Ok(());
    let affected = with_deadline(conn, timeout, |c| {
        if !params.is_empty() {
            let mut stmt = c.prepare_cached(sql)?;
            if let Err(e) = check_count(&stmt, params.len()) {
                bad = Err(e);
                return Ok(0);
            }
            return step_all(c, &mut stmt, Some(params));
        }
        let mut batch = rusqlite::Batch::new(c, sql);
        let mut last = 0;
        while let Some(mut stmt) = batch.next()? {
            if let Err(e) = check_count(&stmt, 0) {
                bad = Err(e);
                return Ok(0);
            }
            last = step_all(c, &mut stmt, None)?;
        }
        Ok(last)
    })?;
    bad?;
    Ok(ExecResult {
        rows_affected: affected,
        last_insert_id: conn.last_insert_rowid(),
    })
}

/// Steps a statement to its end, rows discarded; the rows it changed.
fn step_all(
    conn: &Connection,
    stmt: &mut Statement<'_>,
    params: Option<&[Param]>,
) -> rusqlite::Result<i64> {
    let before = conn.total_changes();
    {
        let mut rows = match params {
            Some(p) => stmt.query(rusqlite::params_from_iter(p))?,
            None => stmt.raw_query(),
        };
        while rows.next()?.is_some() {}
    }
    let changed = conn.total_changes() != before;
    Ok(if changed {
        i64::try_from(conn.changes()).unwrap_or(i64::MAX)
    } else {
        0
    })
}

/// Prepares `sql` to check it (syntax, tables, columns).
pub(crate) fn check(conn: &mut Connection, sql: &str) -> Result<(), ProcError> {
    conn.prepare_cached(sql)
        .map(|_| ())
        .map_err(|e| super::error::map(&e))
}

/// Runs SQL the engine itself issues (BEGIN, COMMIT, SAVEPOINT ...).
pub(crate) fn batch(conn: &mut Connection, sql: &str) -> Result<(), ProcError> {
    conn.execute_batch(sql).map_err(|e| super::error::map(&e))
}

//! Statements run on the one SQLite connection, on a thread of the SQL lane.
//!
//! Everything here is synchronous and takes the connection by reference;
//! the caller (sqlite.rs) holds the lease. A `query_timeout` and a queued
//! call's stop flag are enforced with SQLite's progress handler, so both
//! are checked inside the engine and need no other thread. User SQL is
//! prepared under the entry's authorizer and stepped under
//! [`guard::stepping`]; the engine's own SQL runs under [`guard::engine`].
//! A query's cells are weighed before they are copied out of the engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Statement};
use warren_core::{ProcError, Value};

use super::error::{Interrupted, map_run};
use super::{guard, heap};
use crate::config::ResultLimits;
use crate::error::invalid;
use crate::meter::{self, EngineMeter};
use crate::param::Param;
use crate::result::{ExecResult, Rows, cell_cost};

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

/// What may cut a statement short: the entry's `query_timeout` and, for
/// a queued call, its stop flag. Both are checked by SQLite's progress
/// handler inside the engine, so a stop that lands before the statement
/// starts (when an interrupt would find nothing to interrupt, and SQLite
/// clears it as the next statement starts) still ends it.
///
/// A statement run with the caller's [`EngineMeter`] is also interrupted
/// once the caller's engine CPU time reaches its allowance, and its own CPU
/// time is charged to the meter however it ends.
pub(crate) struct Bounds {
    /// The caller's host, whose share of the engine's heap the statement
    /// takes ([`heap::Window`]).
    pub(crate) host: u16,
    pub(crate) timeout: Option<Duration>,
    pub(crate) stop: Option<Arc<AtomicBool>>,
    pub(crate) meter: Option<Arc<EngineMeter>>,
}

impl Bounds {
    /// A queued call's bounds: its caller's host, `timeout`, its stop flag
    /// and its caller's meter.
    pub(crate) fn stoppable(
        host: u16,
        timeout: Option<Duration>,
        stop: Arc<AtomicBool>,
        meter: Option<Arc<EngineMeter>>,
    ) -> Bounds {
        Bounds {
            host,
            timeout,
            stop: Some(stop),
            meter,
        }
    }
}

/// Which bound interrupted a statement (set by the progress handler).
const HIT_NONE: u8 = 0;
const HIT_DEADLINE: u8 = 1;
const HIT_BUDGET: u8 = 2;

/// The progress handler of `bounds`: `true` (interrupt) once the call is
/// stopped, its deadline passed or its caller's meter is exhausted, with
/// the reason left in `hit`.
fn watcher(
    bounds: &Bounds,
    hit: Arc<AtomicU8>,
    cpu_at: Duration,
) -> impl FnMut() -> bool + Send + use<> {
    let deadline = bounds.timeout.map(|limit| Instant::now() + limit);
    let (stop, meter) = (bounds.stop.clone(), bounds.meter.clone());
    let mut calls = 0u32;
    move || {
        if stop.as_ref().is_some_and(|s| s.load(Ordering::Acquire)) {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            hit.store(HIT_DEADLINE, Ordering::Relaxed);
            return true;
        }
        calls = calls.wrapping_add(1);
        let over = meter.as_ref().is_some_and(|m| {
            calls.is_multiple_of(meter::CHECK_EVERY)
                && m.exhausted_with(meter::thread_cpu_time().saturating_sub(cpu_at))
        });
        if over {
            hit.store(HIT_BUDGET, Ordering::Relaxed);
        }
        over
    }
}

/// Runs `f` within `bounds`, its heap counted for its host ([`heap`]);
/// errors interrupted by the deadline become `TIMEOUT`, by the meter or a
/// heap bound `RATE_LIMITED`.
fn with_deadline<R>(
    conn: &mut Connection,
    bounds: &Bounds,
    f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
) -> Result<R, ProcError> {
    guard::clear_refusal();
    let in_memory = conn.path().is_none_or(str::is_empty);
    let window = heap::Window::open(bounds.host, heap::statement_cap(in_memory));
    let hit = Arc::new(AtomicU8::new(HIT_NONE));
    let watched = bounds.timeout.is_some() || bounds.stop.is_some() || bounds.meter.is_some();
    let cpu_at = bounds
        .meter
        .as_ref()
        .map_or(Duration::ZERO, |_| meter::thread_cpu_time());
    if watched {
        let handler = watcher(bounds, hit.clone(), cpu_at);
        conn.progress_handler(PROGRESS_STEPS, Some(handler))
            .map_err(|e| super::error::map(&e))?;
    }
    let out = if watched {
        let check = watcher(bounds, hit.clone(), cpu_at);
        super::functions::bounded(Box::new(check), || f(conn))
    } else {
        f(conn)
    };
    let refused = close_window(conn, window);
    if let Some(m) = &bounds.meter {
        m.charge(meter::thread_cpu_time().saturating_sub(cpu_at));
    }
    if watched {
        conn.progress_handler(0, None::<fn() -> bool>)
            .map_err(|e| super::error::map(&e))?;
    }
    let hit = match hit.load(Ordering::Relaxed) {
        HIT_DEADLINE => bounds.timeout.map(Interrupted::Deadline),
        HIT_BUDGET => bounds
            .meter
            .as_ref()
            .map(|m| Interrupted::Budget(m.spent())),
        _ => None,
    };
    out.map_err(|e| heap_refused(&e, refused).unwrap_or_else(|| map_run(&e, hit)))
}

/// Closes a statement's heap window, emptying the connection's cache of
/// prepared statements when the statement left more than
/// [`heap::STATEMENT_RETAIN_MAX`] allocated; the refusal, if any.
fn close_window(conn: &Connection, window: heap::Window) -> Option<heap::Refusal> {
    if window.close() > heap::STATEMENT_RETAIN_MAX {
        conn.flush_prepared_statement_cache();
    }
    heap::take_refusal()
}

/// The error of a statement that failed out of memory because a heap
/// bound of [`heap`] refused it (`refused`); `None` for any other error.
fn heap_refused(e: &rusqlite::Error, refused: Option<heap::Refusal>) -> Option<ProcError> {
    let out_of_memory = e.sqlite_error_code() == Some(rusqlite::ErrorCode::OutOfMemory);
    let bound = refused.filter(|_| out_of_memory)?;
    Some(crate::error::with_code(
        crate::error::err(warren_core::ErrorKind::RateLimited, false, bound.text()),
        Value::Int(i64::from(rusqlite::ffi::SQLITE_NOMEM)),
    ))
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
    bounds: &Bounds,
    sql: &str,
    params: &[Param],
    limits: &ResultLimits,
) -> Result<Value, ProcError> {
    let mut out = Rows::new(limits);
    let mut built: Result<(), ProcError> = Ok(());
    with_deadline(conn, bounds, |c| {
        let mut stmt = c.prepare_cached(sql)?;
        if let Err(e) = check_count(&stmt, params.len()) {
            built = Err(e);
            return Ok(());
        }
        let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let _stepping = guard::stepping();
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(names.len());
            let mut pending = 0usize;
            for (i, name) in names.iter().enumerate() {
                // Each cell is weighed while the engine still holds it,
                // and copied only if the row so far fits.
                let v = row.get_ref(i)?;
                pending = pending.saturating_add(cell_cost(name.len(), heap_of(v)));
                if let Err(e) = out.admit(pending) {
                    built = Err(e);
                    return Ok(());
                }
                cells.push((name.as_str(), cell(v)));
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

/// The bytes a cell's value will hold on the host once copied.
fn heap_of(v: ValueRef<'_>) -> usize {
    match v {
        ValueRef::Text(t) | ValueRef::Blob(t) => t.len(),
        _ => 0,
    }
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
    bounds: &Bounds,
    sql: &str,
    params: &[Param],
) -> Result<ExecResult, ProcError> {
    let mut bad: Result<(), ProcError> = Ok(());
    let affected = with_deadline(conn, bounds, |c| {
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
        let _stepping = guard::stepping();
        while rows.next()?.is_some() {}
    }
    let changed = conn.total_changes() != before;
    Ok(if changed {
        i64::try_from(conn.changes()).unwrap_or(i64::MAX)
    } else {
        0
    })
}

/// Prepares `sql` for a process of `host` to check it (syntax, tables,
/// columns), under the statement's heap bounds as a run is.
pub(crate) fn check(conn: &mut Connection, host: u16, sql: &str) -> Result<(), ProcError> {
    guard::clear_refusal();
    let in_memory = conn.path().is_none_or(str::is_empty);
    let window = heap::Window::open(host, heap::statement_cap(in_memory));
    let out = conn.prepare_cached(sql).map(|_| ());
    let refused = close_window(conn, window);
    out.map_err(|e| heap_refused(&e, refused).unwrap_or_else(|| super::error::map(&e)))
}

/// Runs SQL the engine itself issues (BEGIN, COMMIT, SAVEPOINT ...).
pub(crate) fn batch(conn: &mut Connection, sql: &str) -> Result<(), ProcError> {
    let _engine = guard::engine();
    conn.execute_batch(sql).map_err(|e| super::error::map(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts to a billion: runs for many seconds unless stopped.
    const LONG: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                        WHERE x < 1000000000) SELECT count(*) AS n FROM c";

    fn bounds(stopped: bool) -> Bounds {
        Bounds {
            host: 0,
            timeout: None,
            stop: Some(Arc::new(AtomicBool::new(stopped))),
            meter: None,
        }
    }

    #[test]
    fn a_stop_that_lands_before_the_statement_starts_still_ends_it() {
        heap::install();
        let mut conn = Connection::open_in_memory().expect("open");
        let limits = ResultLimits::default();
        let t0 = Instant::now();
        let err = query(&mut conn, &bounds(true), LONG, &[], &limits).expect_err("stopped");
        assert!(t0.elapsed() < Duration::from_secs(5), "it ran on");
        assert_eq!(err.kind, warren_core::ErrorKind::Canceled, "{err:?}");
        let err = execute(&mut conn, &bounds(true), LONG, &[]).expect_err("stopped");
        assert_eq!(err.kind, warren_core::ErrorKind::Canceled, "{err:?}");
        // Not stopped: the connection runs statements as before.
        let rows = query(&mut conn, &bounds(false), "SELECT 7 AS n", &[], &limits).expect("ran");
        assert!(matches!(&rows, Value::Array(r) if r.len() == 1), "{rows:?}");
    }
}

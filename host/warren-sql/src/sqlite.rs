//! SQLite entries: one connection per entry, used one statement at a time
//! on the SQL lane ([`warren_core::sql_lane`], fair between the callers'
//! hosts), never on an async worker; plain calls queue
//! and run back to back on one runner thread ([`queue`]), a transaction's
//! statements run under the lease it holds.
//!
//! Guarantees: a dropped call future (or a stopped call) interrupts its
//! statement and never loses the lease; `query_timeout` interrupts a
//! statement with `TIMEOUT`, and a caller's [`EngineMeter`] with
//! `RATE_LIMITED` once its CPU budget is spent; a plain call never leaves the connection inside a transaction (a stray
//! `BEGIN` is rolled back when the call ends).

mod error;
mod functions;
mod guard;
mod heap;
mod lease;
mod pattern;
pub(crate) mod queue;
mod run;
mod tx;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use tokio::runtime::Handle;
use warren_core::{ErrorKind, Pid, ProcError, Value};

use crate::config::{Isolation, ResultLimits, SqliteFile, TxOptions};
use crate::error::{check_savepoint, err, invalid};
use crate::meter::EngineMeter;
use crate::param::Param;
use crate::result::ExecResult;
use crate::stats::{self, Snapshot};
pub use guard::MAX_SQL_BYTES;

use lease::Shared;
pub(crate) use tx::Tx;

/// Bytes the SQLite library holds now, over every connection of this
/// process (`sqlite3_memory_used`): what its heap limits bound.
pub fn engine_heap_bytes() -> i64 {
    // SAFETY: reads the library's memory statistic; callable at any time.
    unsafe { rusqlite::ffi::sqlite3_memory_used() }
}

/// An SQLite entry.
pub(crate) struct Sqlite {
    shared: Arc<Shared>,
}

impl Sqlite {
    /// The entry; the file is opened on first use.
    pub(crate) fn new(
        file: SqliteFile,
        max_lifetime: Duration,
        query_timeout: Option<Duration>,
        rt: Handle,
    ) -> Sqlite {
        Sqlite {
            shared: Arc::new(Shared::new(file, max_lifetime, query_timeout, rt)),
        }
    }

    /// Queues `f` to run with the lease on the runner's lane thread
    /// ([`queue`]) and hands its result to `done` there. `CONFLICT` at
    /// once, with nothing queued, if `owner`'s own transaction holds the
    /// lease.
    fn call_then<R, F, D>(&self, owner: u64, f: F, done: D) -> Result<queue::Stop, ProcError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection, Arc<AtomicBool>) -> Result<R, ProcError> + Send + 'static,
        D: FnOnce(Result<R, ProcError>) + Send + 'static,
    {
        self.shared.check_not_holder(owner)?;
        let id = self.shared.statement_id();
        let cancelled = Arc::new(AtomicBool::new(false));
        let stop = cancelled.clone();
        let job = move |lease: &mut lease::Lease| {
            if stop.load(Ordering::Acquire) {
                return; // stopped before it started: `done` dropped uncalled
            }
            if !lease.autocommit() {
                tracing::warn!("sqlite: rolling back a transaction left open outside tx");
                lease.reset();
            }
            let out = lease.run(id, move |c| f(c, stop));
            if !lease.autocommit() {
                lease.reset();
            }
            done(out);
        };
        let host = Pid::from_u64(owner).host();
        Ok(queue::submit(
            &self.shared,
            host,
            id,
            cancelled,
            Box::new(job),
        ))
    }

    /// [`Sqlite::call_then`] as a future; dropping it stops the call
    /// (unrun, or its statement interrupted).
    async fn call<R, F>(&self, owner: u64, f: F) -> Result<R, ProcError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection, Arc<AtomicBool>) -> Result<R, ProcError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stop = self.call_then(owner, f, move |out| drop(tx.send(out)))?;
        let guard = StopOnDrop(Some(stop));
        let out = rx.await;
        guard.disarm();
        out.map_err(|_| ended_unrun())?
    }

    /// Runs a plain query (`query`) or execute and hands its result (rows,
    /// or the execute result as a map) to `done` on the runner's thread;
    /// the returned [`queue::Stop`] cancels it.
    pub(crate) fn run_then(
        &self,
        owner: u64,
        meter: Option<Arc<EngineMeter>>,
        sql: Arc<str>,
        params: Vec<Param>,
        query: Option<ResultLimits>,
        done: impl FnOnce(Result<Value, ProcError>) + Send + 'static,
    ) -> Result<queue::Stop, ProcError> {
        let (timeout, host) = (self.shared.query_timeout, Pid::from_u64(owner).host());
        self.call_then(
            owner,
            move |c, stop| {
                let bounds = run::Bounds::stoppable(host, timeout, stop, meter);
                match query {
                    Some(limits) => run::query(c, &bounds, &sql, &params, &limits),
                    None => run::execute(c, &bounds, &sql, &params).map(|r| r.to_value()),
                }
            },
            done,
        )
    }

    pub(crate) async fn query(
        &self,
        owner: u64,
        sql: &str,
        params: Vec<Param>,
        limits: &ResultLimits,
    ) -> Result<Value, ProcError> {
        let (sql, limits, timeout) = (sql.to_owned(), limits.clone(), self.shared.query_timeout);
        let host = Pid::from_u64(owner).host();
        self.call(owner, move |c, stop| {
            let bounds = run::Bounds::stoppable(host, timeout, stop, None);
            run::query(c, &bounds, &sql, &params, &limits)
        })
        .await
    }

    pub(crate) async fn execute(
        &self,
        owner: u64,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<ExecResult, ProcError> {
        let (sql, timeout) = (sql.to_owned(), self.shared.query_timeout);
        let host = Pid::from_u64(owner).host();
        self.call(owner, move |c, stop| {
            let bounds = run::Bounds::stoppable(host, timeout, stop, None);
            run::execute(c, &bounds, &sql, &params)
        })
        .await
    }

    pub(crate) async fn prepare_check(&self, owner: u64, sql: &str) -> Result<(), ProcError> {
        let sql = sql.to_owned();
        let host = Pid::from_u64(owner).host();
        self.call(owner, move |c, _| run::check(c, host, &sql))
            .await
    }

    pub(crate) async fn begin(
        &self,
        owner: u64,
        opts: TxOptions,
        meter: Option<Arc<EngineMeter>>,
    ) -> Result<Tx, ProcError> {
        if !matches!(opts.isolation, Isolation::Default | Isolation::Serializable) {
            return Err(invalid(format!(
                "isolation level '{}' is not supported by SQLite (only default and serializable)",
                opts.isolation.name()
            )));
        }
        let lease = self.shared.acquire_for_tx(owner).await?;
        let host = Pid::from_u64(owner).host();
        Tx::begin(lease, host, opts.read_only, meter).await
    }

    pub(crate) fn stats(&self) -> Value {
        let (open, in_use) = self.shared.usage();
        let now = Snapshot {
            max_open: 1,
            open,
            in_use,
        };
        stats::to_value(now, &self.shared.counters)
    }
}

/// The error of a call whose runner dropped it unrun (it panicked, or the
/// runtime is shutting down).
fn ended_unrun() -> ProcError {
    err(
        ErrorKind::Internal,
        false,
        "sqlite: the statement ended without a result",
    )
}

/// Stops the call if its future is dropped before it ends.
struct StopOnDrop(Option<queue::Stop>);

impl StopOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            stop.stop();
        }
    }
}

impl Tx {
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: Vec<Param>,
        limits: &ResultLimits,
    ) -> Result<Value, ProcError> {
        let bounds = run::Bounds {
            host: self.host(),
            timeout: self.timeout(),
            stop: Some(self.stop_flag()),
            meter: self.meter(),
        };
        let (sql, limits) = (sql.to_owned(), limits.clone());
        self.call(false, move |c| {
            run::query(c, &bounds, &sql, &params, &limits)
        })
        .await
    }

    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<ExecResult, ProcError> {
        let bounds = run::Bounds {
            host: self.host(),
            timeout: self.timeout(),
            stop: Some(self.stop_flag()),
            meter: self.meter(),
        };
        let sql = sql.to_owned();
        self.call(false, move |c| run::execute(c, &bounds, &sql, &params))
            .await
    }

    pub(crate) async fn prepare_check(&self, sql: &str) -> Result<(), ProcError> {
        let sql = sql.to_owned();
        let host = self.host();
        self.call(false, move |c| run::check(c, host, &sql)).await
    }

    pub(crate) async fn commit(&self) -> Result<(), ProcError> {
        self.call(true, |c| run::batch(c, "COMMIT")).await
    }

    pub(crate) async fn rollback(&self) -> Result<(), ProcError> {
        self.call(true, |c| run::batch(c, "ROLLBACK")).await
    }

    /// `SAVEPOINT`, `ROLLBACK TO SAVEPOINT` or `RELEASE SAVEPOINT` `name`.
    pub(crate) async fn savepoint_op(&self, verb: &str, name: &str) -> Result<(), ProcError> {
        check_savepoint(name)?;
        let sql = format!("{verb} {name}");
        self.call(false, move |c| run::batch(c, &sql)).await
    }
}

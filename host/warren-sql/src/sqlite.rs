//! SQLite entries: one connection per entry, used one statement at a time
//! on tokio's blocking pool, never on an async worker.
//!
//! Guarantees: a dropped call future interrupts its statement and never
//! loses the lease; `query_timeout` interrupts a statement with `TIMEOUT`;
//! a plain call never leaves the connection inside a transaction (a stray
//! `BEGIN` is rolled back when the call ends).

mod error;
mod lease;
mod run;
mod tx;

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::runtime::Handle;
use warren_core::{ErrorKind, ProcError, Value};

use crate::config::{Isolation, ResultLimits, SqliteFile, TxOptions};
use crate::error::{check_savepoint, err, invalid};
use crate::param::Param;
use crate::result::ExecResult;
use crate::stats::{self, Snapshot};
use lease::Shared;
pub(crate) use tx::Tx;

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

    /// Runs `f` with the lease on a blocking thread; a dropped future
    /// interrupts the statement (the lease is released when it stops).
    async fn call<R, F>(&self, owner: u64, f: F) -> Result<R, ProcError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, ProcError> + Send + 'static,
    {
        let mut lease = self.shared.acquire(owner, false).await?;
        let id = self.shared.statement_id();
        let guard = Interrupt {
            shared: Some(self.shared.clone()),
            id,
        };
        let job = self.shared.rt.spawn_blocking(move || {
            if !lease.autocommit() {
                tracing::warn!("sqlite: rolling back a transaction left open outside tx");
                lease.reset();
            }
            let out = lease.run(id, f);
            if !lease.autocommit() {
                lease.reset();
            }
            out
        });
        let out = job.await;
        guard.disarm();
        out.map_err(|e| err(ErrorKind::Internal, false, e.to_string()))?
    }

    pub(crate) async fn query(
        &self,
        owner: u64,
        sql: &str,
        params: Vec<Param>,
        limits: &ResultLimits,
    ) -> Result<Value, ProcError> {
        let (sql, limits, timeout) = (sql.to_owned(), *limits, self.shared.query_timeout);
        self.call(owner, move |c| {
            run::query(c, timeout, &sql, &params, &limits)
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
        self.call(owner, move |c| run::execute(c, timeout, &sql, &params))
            .await
    }

    pub(crate) async fn prepare_check(&self, owner: u64, sql: &str) -> Result<(), ProcError> {
        let sql = sql.to_owned();
        self.call(owner, move |c| run::check(c, &sql)).await
    }

    pub(crate) async fn begin(&self, owner: u64, opts: TxOptions) -> Result<Tx, ProcError> {
        if !matches!(opts.isolation, Isolation::Default | Isolation::Serializable) {
            return Err(invalid(format!(
                "isolation level '{}' is not supported by SQLite (only default and serializable)",
                opts.isolation.name()
            )));
        }
        let lease = self.shared.acquire(owner, true).await?;
        Tx::begin(lease, opts.read_only).await
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

/// Interrupts statement `id` if the call's future is dropped before it ends.
struct Interrupt {
    shared: Option<Arc<Shared>>,
    id: u64,
}

impl Interrupt {
    fn disarm(mut self) {
        self.shared = None;
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.interrupt(self.id);
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
        let (sql, limits, timeout) = (sql.to_owned(), *limits, self.timeout());
        self.call(false, move |c| {
            run::query(c, timeout, &sql, &params, &limits)
        })
        .await
    }

    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<ExecResult, ProcError> {
        let (sql, timeout) = (sql.to_owned(), self.timeout());
        self.call(false, move |c| run::execute(c, timeout, &sql, &params))
            .await
    }

    pub(crate) async fn prepare_check(&self, sql: &str) -> Result<(), ProcError> {
        let sql = sql.to_owned();
        self.call(false, move |c| run::check(c, &sql)).await
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

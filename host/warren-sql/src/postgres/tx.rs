//! A PostgreSQL transaction: it keeps one pooled connection until it ends.
//!
//! Guarantees: calls run one at a time, in order; once ended every call is
//! `INVALID`; a transaction that ends other than by commit is rolled back
//! before its connection returns to the pool; a call whose future is
//! dropped mid-statement ends the transaction (the statement is cancelled,
//! then rolled back); a commit after a failed statement is refused (and
//! rolled back) instead of silently turning into a rollback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_postgres::{CancelToken, Client};
use warren_core::{ProcError, Value};

use super::Shared;
use super::conn::{self, Cleanup, Conn};
use super::error::map;
use crate::config::ResultLimits;
use crate::error::{check_savepoint, inactive, invalid, with_code};
use crate::param::Param;
use crate::result::ExecResult;

/// An open PostgreSQL transaction.
pub(crate) struct Tx {
    conn: Arc<tokio::sync::Mutex<Option<Conn>>>,
    shared: Arc<Shared>,
    ended: AtomicBool,
    failed: AtomicBool,
    cancel: Option<CancelToken>,
}

impl Tx {
    pub(crate) fn new(conn: Conn, shared: Arc<Shared>) -> Tx {
        let cancel = conn.client().ok().map(Client::cancel_token);
        Tx {
            conn: Arc::new(tokio::sync::Mutex::new(Some(conn))),
            shared,
            ended: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            cancel,
        }
    }

    /// Runs `op` on the connection; a dropped future ends the transaction
    /// (rolled back after the statement is cancelled).
    async fn call(&self, op: Op<'_>) -> Result<Done, ProcError> {
        if self.ended.load(Ordering::Acquire) {
            return Err(inactive());
        }
        let mut slot = self.conn.lock().await;
        let Some(mut conn) = slot.take().filter(|_| self.is_active()) else {
            return Err(inactive());
        };
        conn.arm(Cleanup::Rollback);
        let client = conn.client()?;
        let out = conn::timed(client, &self.shared, op.run(client)).await;
        conn.disarm();
        *slot = Some(conn);
        if matches!(&out, Err(e) if e.details.is_some()) {
            self.failed.store(true, Ordering::Release);
        }
        out
    }

    pub(crate) async fn query(
        &self,
        sql: &str,
        params: Vec<Param>,
        limits: &ResultLimits,
    ) -> Result<Value, ProcError> {
        match self.call(Op::Query(sql, params, limits)).await? {
            Done::Rows(v) => Ok(v),
            _ => Ok(Value::Array(Vec::new())),
        }
    }

    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<ExecResult, ProcError> {
        match self.call(Op::Execute(sql, params)).await? {
            Done::Exec(r) => Ok(r),
            _ => Ok(ExecResult::default()),
        }
    }

    pub(crate) async fn prepare_check(&self, sql: &str) -> Result<(), ProcError> {
        self.call(Op::Check(sql)).await.map(|_| ())
    }

    /// `SAVEPOINT`, `ROLLBACK TO SAVEPOINT` or `RELEASE SAVEPOINT` `name`.
    pub(crate) async fn savepoint_op(&self, verb: &str, name: &str) -> Result<(), ProcError> {
        check_savepoint(name)?;
        let sql = format!("{verb} {name}");
        self.call(Op::Batch(&sql)).await?;
        if verb.starts_with("ROLLBACK") {
            self.failed.store(false, Ordering::Release);
        }
        Ok(())
    }

    pub(crate) async fn commit(&self) -> Result<(), ProcError> {
        if self.failed.load(Ordering::Acquire) {
            self.end("ROLLBACK").await?;
            return Err(with_code(
                invalid(
                    "commit refused: a statement of this transaction failed, \
                     so it was rolled back",
                ),
                Value::str("25P02"),
            ));
        }
        self.end("COMMIT").await
    }

    pub(crate) async fn rollback(&self) -> Result<(), ProcError> {
        self.end("ROLLBACK").await
    }

    /// Ends the transaction with `sql`; the connection goes back to the
    /// pool (or is discarded if it failed).
    async fn end(&self, sql: &str) -> Result<(), ProcError> {
        if self.ended.swap(true, Ordering::AcqRel) {
            return Err(inactive());
        }
        let mut slot = self.conn.lock().await;
        let Some(mut conn) = slot.take() else {
            return Err(inactive());
        };
        conn.arm(Cleanup::Rollback);
        let out = conn.client()?.batch_execute(sql).await;
        conn.disarm();
        match out {
            Ok(()) => Ok(()),
            Err(e) => {
                conn.discard();
                Err(map(&e))
            }
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        !self.ended.load(Ordering::Acquire)
    }

    /// Ends the transaction without waiting: a running statement is
    /// cancelled, then the rollback runs on the runtime and the connection
    /// is given back only after it.
    pub(crate) fn close(&self) {
        if self.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        let slot = self.conn.clone();
        let busy = slot.try_lock().is_err();
        let (cancel, shared) = (self.cancel.clone(), self.shared.clone());
        self.shared.rt.spawn(async move {
            if busy && let Some(token) = cancel {
                shared.dial.cancel(&token).await;
            }
            let Some(mut conn) = slot.lock().await.take() else {
                return;
            };
            if busy {
                // Sent a cancel: never reused (see conn.rs); closing it
                // rolls the transaction back on the server.
                conn.discard();
                return;
            }
            conn.arm(Cleanup::Rollback);
            let rolled = match conn.client() {
                Ok(c) => c.batch_execute("ROLLBACK").await.is_ok(),
                Err(_) => false,
            };
            conn.disarm();
            if !rolled {
                conn.discard();
            }
        });
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        self.close();
    }
}

/// One call inside the transaction.
enum Op<'a> {
    Query(&'a str, Vec<Param>, &'a ResultLimits),
    Execute(&'a str, Vec<Param>),
    Check(&'a str),
    Batch(&'a str),
}

/// What an [`Op`] gave back.
enum Done {
    Rows(Value),
    Exec(ExecResult),
    Unit,
}

impl Op<'_> {
    async fn run(self, client: &Client) -> Result<Done, ProcError> {
        Ok(match self {
            Op::Query(sql, params, limits) => {
                Done::Rows(conn::query(client, sql, &params, limits).await?)
            }
            Op::Execute(sql, params) => Done::Exec(conn::execute(client, sql, &params).await?),
            Op::Check(sql) => {
                conn::check(client, sql).await?;
                Done::Unit
            }
            Op::Batch(sql) => {
                client.batch_execute(sql).await.map_err(|e| map(&e))?;
                Done::Unit
            }
        })
    }
}

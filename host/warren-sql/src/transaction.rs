//! [`Transaction`]: one open transaction, on either engine.
//!
//! Every method after commit, rollback or close is `INVALID` ("transaction
//! is not active"). `close` (also run on drop) is non-blocking and
//! idempotent: it rolls back on the runtime and gives the connection back
//! only after the rollback.

use warren_core::{ProcError, Value};

use crate::config::ResultLimits;
use crate::param::Param;
use crate::result::ExecResult;
use crate::{DbKind, postgres, sqlite};

enum Inner {
    Sqlite(sqlite::Tx),
    Postgres(postgres::Tx),
}

/// An open transaction; it holds its connection until it ends.
pub struct Transaction {
    inner: Inner,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("kind", &self.db_kind())
            .field("active", &self.is_active())
            .finish()
    }
}

macro_rules! each {
    ($self:ident, $tx:ident => $e:expr) => {
        match &$self.inner {
            Inner::Sqlite($tx) => $e,
            Inner::Postgres($tx) => $e,
        }
    };
}

impl Transaction {
    pub(crate) fn sqlite(tx: sqlite::Tx) -> Transaction {
        Transaction {
            inner: Inner::Sqlite(tx),
        }
    }

    pub(crate) fn postgres(tx: postgres::Tx) -> Transaction {
        Transaction {
            inner: Inner::Postgres(tx),
        }
    }

    /// Runs a query inside the transaction.
    pub async fn query(
        &self,
        sql: &str,
        params: Vec<Param>,
        limits: &ResultLimits,
    ) -> Result<Value, ProcError> {
        each!(self, tx => tx.query(sql, params, limits).await)
    }

    /// Runs a statement (or a batch, without params) inside the transaction.
    pub async fn execute(&self, sql: &str, params: Vec<Param>) -> Result<ExecResult, ProcError> {
        each!(self, tx => tx.execute(sql, params).await)
    }

    /// Checks `sql` by preparing it on the transaction's connection.
    pub async fn prepare_check(&self, sql: &str) -> Result<(), ProcError> {
        each!(self, tx => tx.prepare_check(sql).await)
    }

    /// Commits; the transaction has ended afterwards, whatever the outcome.
    pub async fn commit(&self) -> Result<(), ProcError> {
        each!(self, tx => tx.commit().await)
    }

    /// Rolls back; the transaction has ended afterwards.
    pub async fn rollback(&self) -> Result<(), ProcError> {
        each!(self, tx => tx.rollback().await)
    }

    /// `SAVEPOINT name` (`name` must match `[A-Za-z0-9_]+`).
    pub async fn savepoint(&self, name: &str) -> Result<(), ProcError> {
        each!(self, tx => tx.savepoint_op("SAVEPOINT", name).await)
    }

    /// `ROLLBACK TO SAVEPOINT name`.
    pub async fn rollback_to(&self, name: &str) -> Result<(), ProcError> {
        each!(self, tx => tx.savepoint_op("ROLLBACK TO SAVEPOINT", name).await)
    }

    /// `RELEASE SAVEPOINT name`.
    pub async fn release(&self, name: &str) -> Result<(), ProcError> {
        each!(self, tx => tx.savepoint_op("RELEASE SAVEPOINT", name).await)
    }

    /// The engine.
    pub fn db_kind(&self) -> DbKind {
        match self.inner {
            Inner::Sqlite(_) => DbKind::Sqlite,
            Inner::Postgres(_) => DbKind::Postgres,
        }
    }

    /// Whether the transaction has not ended yet.
    pub fn is_active(&self) -> bool {
        each!(self, tx => tx.is_active())
    }

    /// Ends the transaction without waiting (rolled back in order on the
    /// runtime; a running statement is interrupted). Idempotent; also run
    /// when the transaction is dropped.
    pub fn close(&self) {
        each!(self, tx => tx.close())
    }
}

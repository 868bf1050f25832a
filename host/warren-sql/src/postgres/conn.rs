//! One pooled PostgreSQL connection in use, and the statements run on it.
//!
//! Guarantees: a connection whose call future is dropped mid-statement is
//! never handed to anyone else: the statement is cancelled on the server
//! and the connection closed (which rolls back its transaction), because a
//! late cancel request would otherwise cancel the next caller's statement.
//! `query_timeout` cancels the statement and reports `TIMEOUT`. A
//! connection goes back to the pool only with its session reset (or is
//! closed): nothing a borrower set, made or began outlives its borrow.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use deadpool_postgres::Object;
use futures_util::TryStreamExt;
use tokio_postgres::{Client, SimpleQueryMessage};
use warren_core::{ErrorKind, ProcError, Value};

use super::Shared;
use super::error::{QUERY_CANCELED, map};
use super::gate::Permit;
use super::types::{Cell, param_type};
use crate::config::ResultLimits;
use crate::error::{err, timed_out, with_code};
use crate::param::Param;
use crate::result::{ExecResult, Rows};

/// What a connection was doing when its call was abandoned; either way
/// the statement is cancelled and the connection closed (see the module
/// docs), the server rolling back a transaction.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cleanup {
    /// A statement outside a transaction.
    Check,
    /// A statement inside a transaction.
    Rollback,
}

/// A connection taken from the pool, and its permit from the gate, given
/// back only once the connection is back in the pool or closed (so the
/// next borrow the gate lets through finds room in the pool).
pub(crate) struct Conn {
    obj: Option<Object>,
    permit: Option<Permit>,
    shared: Arc<Shared>,
    armed: Option<Cleanup>,
}

impl Conn {
    pub(crate) fn new(obj: Object, permit: Permit, shared: Arc<Shared>) -> Conn {
        Conn {
            obj: Some(obj),
            permit: Some(permit),
            shared,
            armed: None,
        }
    }

    /// The client; every `Conn` holds one until dropped.
    pub(crate) fn client(&self) -> Result<&Client, ProcError> {
        self.obj
            .as_deref()
            .map(|w| &**w)
            .ok_or_else(|| err(ErrorKind::Internal, false, "connection already released"))
    }

    /// From now until [`Conn::disarm`], dropping runs `cleanup`.
    pub(crate) fn arm(&mut self, cleanup: Cleanup) {
        self.armed = Some(cleanup);
    }

    /// The call finished normally.
    pub(crate) fn disarm(&mut self) {
        self.armed = None;
    }

    /// Discards the connection instead of returning it to the pool.
    pub(crate) fn discard(mut self) {
        if let Some(obj) = self.obj.take() {
            drop(Object::take(obj));
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(obj) = self.obj.take() else { return };
        let shared = self.shared.clone();
        match self.armed {
            None => {
                // The session is reset before anyone else borrows it (see
                // `reset`); the permit stays taken until then.
                let rt = shared.rt.clone();
                let permit = self.permit.take();
                rt.spawn(async move {
                    reset(obj).await;
                    shared.trim_idle();
                    drop(permit);
                });
            }
            Some(_) => {
                // A cancel request travels on a connection of its own and
                // may reach the server after the statement it was meant for
                // has ended, cancelling whatever runs next on this backend:
                // a connection that was sent one is never reused. Closing
                // it ends its transaction on the server (rolled back).
                let rt = shared.rt.clone();
                let permit = self.permit.take();
                rt.spawn(async move {
                    shared.dial.cancel(&obj.cancel_token()).await;
                    drop(Object::take(obj));
                    shared.trim_idle();
                    drop(permit);
                });
            }
        }
    }
}

/// Longest a connection's reset may take before it is closed instead.
const RESET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Returns `obj` to the pool with its session as new (`DISCARD ALL`:
/// temporary tables, settings, prepared statements, cursors, `LISTEN`s
/// and advisory locks dropped), or closes it when that fails: inside a
/// transaction block (a `BEGIN` sent by hand, which the server then rolls
/// back, with its locks), broken, or slower than [`RESET_TIMEOUT`]. What
/// one process did to its session reached every later borrower of that
/// connection, of any tenant: a temporary table shadowing a real one, a
/// `statement_timeout`, a transaction another tenant's writes then went
/// into and were rolled back with (red team I).
async fn reset(obj: Object) {
    let done = tokio::time::timeout(RESET_TIMEOUT, obj.batch_execute("DISCARD ALL")).await;
    if !matches!(done, Ok(Ok(()))) {
        drop(Object::take(obj));
    }
}

/// Runs `work` under the entry's `query_timeout`: when it passes, the
/// statement is cancelled on the server and the call fails with `TIMEOUT`.
pub(crate) async fn timed<T>(
    client: &Client,
    shared: &Shared,
    work: impl Future<Output = Result<T, ProcError>>,
) -> Result<T, ProcError> {
    let Some(limit) = shared.query_timeout else {
        return work.await;
    };
    let mut work = pin!(work);
    if let Ok(out) = tokio::time::timeout(limit, &mut work).await {
        return out;
    }
    shared.dial.cancel(&client.cancel_token()).await;
    match work.await {
        Err(e) if e.kind == ErrorKind::Canceled => {
            Err(with_code(timed_out(limit), Value::str(QUERY_CANCELED)))
        }
        other => other,
    }
}

fn typed(params: &[Param]) -> Vec<(&Param, tokio_postgres::types::Type)> {
    params.iter().map(|p| (p, param_type(p))).collect()
}

/// Runs one query and builds its rows under `limits`.
pub(crate) async fn query(
    client: &Client,
    sql: &str,
    params: &[Param],
    limits: &ResultLimits,
) -> Result<Value, ProcError> {
    let stream = client
        .query_typed_raw(sql, typed(params))
        .await
        .map_err(|e| map(&e))?;
    let mut stream = pin!(stream);
    let mut rows = Rows::new(limits);
    while let Some(row) = stream.try_next().await.map_err(|e| map(&e))? {
        let mut cells = Vec::with_capacity(row.len());
        for (i, col) in row.columns().iter().enumerate() {
            let Cell(v) = row.try_get::<_, Cell>(i).map_err(|e| map(&e))?;
            cells.push((col.name(), v));
        }
        rows.push(cells)?;
    }
    Ok(rows.finish())
}

/// Runs a statement, or without params a `;`-separated batch (simple
/// protocol), and reports the last one's row count.
pub(crate) async fn execute(
    client: &Client,
    sql: &str,
    params: &[Param],
) -> Result<ExecResult, ProcError> {
    let affected = if params.is_empty() {
        // Streamed, each row dropped as it comes: `simple_query` collected
        // every row first (20 rows of 100 MB took 3.2 GB for a statement
        // whose rows nobody reads).
        let stream = client.simple_query_raw(sql).await.map_err(|e| map(&e))?;
        let mut stream = pin!(stream);
        let mut last = 0;
        while let Some(msg) = stream.try_next().await.map_err(|e| map(&e))? {
            if let SimpleQueryMessage::CommandComplete(n) = msg {
                last = n;
            }
        }
        last
    } else {
        let stream = client
            .query_typed_raw(sql, typed(params))
            .await
            .map_err(|e| map(&e))?;
        let mut stream = pin!(stream);
        while stream.try_next().await.map_err(|e| map(&e))?.is_some() {}
        stream.rows_affected().unwrap_or(0)
    };
    Ok(ExecResult {
        rows_affected: i64::try_from(affected).unwrap_or(i64::MAX),
        last_insert_id: 0,
    })
}

/// Prepares `sql` (and forgets it) to check it.
pub(crate) async fn check(client: &Client, sql: &str) -> Result<(), ProcError> {
    client.prepare(sql).await.map(|_| ()).map_err(|e| map(&e))
}

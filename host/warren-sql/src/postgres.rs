//! PostgreSQL entries: a deadpool pool of `tokio-postgres` connections,
//! lent through a gate where the callers' hosts take turns (gate.rs).
//!
//! Guarantees: at most `max_open` connections; a call waits at most
//! `acquire_timeout` for one (`UNAVAILABLE`, retryable), its turn at the
//! gate included; once two hosts have used the entry, no host holds the
//! last `max_open / 4` connections while another holds none; a connection is
//! borrowed for one statement, or for a whole transaction; idle
//! connections over `max_idle` are closed; a dropped call future cancels
//! its statement on the server (see conn.rs).

mod conn;
mod connect;
mod dial;
mod error;
mod gate;
mod tx;
mod types;

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Pool, PoolError};
use tokio::runtime::Handle;
use warren_core::{ErrorKind, ProcError, Value};

use crate::config::{Isolation, PgConfig, ResultLimits, TxOptions};
use crate::error::invalid;
use crate::param::Param;
use crate::result::ExecResult;
use crate::stats::{self, Counters, Snapshot};
use conn::{Cleanup, Conn};
pub(crate) use tx::Tx;

/// What every call on one PostgreSQL entry shares.
pub(crate) struct Shared {
    pool: Pool,
    /// The callers' hosts' turns for the pool's connections.
    gate: Arc<gate::Gate>,
    rt: Handle,
    counters: Arc<Counters>,
    refuse: Option<ProcError>,
    acquire_timeout: Duration,
    query_timeout: Option<Duration>,
    max_idle: usize,
    /// Opens the pool's connections and sends cancel requests.
    dial: Arc<dial::Dial>,
}

impl Shared {
    /// Closes idle connections over `max_idle` (0: no cap).
    fn trim_idle(&self) {
        if self.max_idle == 0 {
            return;
        }
        let idle = self.pool.status().available;
        let mut extra = idle.saturating_sub(self.max_idle);
        if extra == 0 {
            return;
        }
        let removed = self.pool.retain(|_, _| {
            if extra > 0 {
                extra -= 1;
                false
            } else {
                true
            }
        });
        self.counters
            .idle_closed(u64::try_from(removed.removed.len()).unwrap_or(u64::MAX));
    }
}

/// A PostgreSQL entry.
pub(crate) struct Postgres {
    shared: Arc<Shared>,
}

impl Postgres {
    /// The entry; nothing connects until the first call.
    pub(crate) fn new(config: &PgConfig, rt: Handle) -> Result<Postgres, ProcError> {
        let (cfg, refuse) = connect::pg_config(config)?;
        let counters = Arc::new(Counters::default());
        let dial = Arc::new(dial::Dial::new(cfg.clone()));
        let pool = connect::pool(config, cfg, dial.clone(), counters.clone())?;
        Ok(Postgres {
            shared: Arc::new(Shared {
                pool,
                gate: gate::Gate::new(config.effective_max_open(), config.tenants > 1),
                rt,
                counters,
                refuse,
                acquire_timeout: config.acquire_timeout,
                query_timeout: config.query_timeout,
                max_idle: config.max_idle,
                dial,
            }),
        })
    }

    /// Borrows a connection for a call of `owner`'s host, waiting at most
    /// `acquire_timeout` for its turn and the connection.
    async fn acquire(&self, owner: u64) -> Result<Conn, ProcError> {
        let s = &self.shared;
        if let Some(e) = &s.refuse {
            return Err(e.clone());
        }
        let host = warren_core::Pid::from_u64(owner).host();
        let start = Instant::now();
        let status = s.pool.status();
        let full = status.available == 0 && status.size >= status.max_size;
        let mut waited = full;
        let got = tokio::time::timeout(s.acquire_timeout, async {
            let permit = s.gate.enter(host).await.map_err(|_| PoolError::Closed)?;
            waited |= permit.waited;
            s.pool.get().await.map(|obj| (obj, permit))
        })
        .await;
        if waited {
            s.counters.waited(start.elapsed());
        }
        let (obj, permit) = match got {
            Ok(got) => got.map_err(|e| error::map_pool(&e, s.acquire_timeout))?,
            Err(_) => return Err(error::acquire_timed_out(s.acquire_timeout)),
        };
        Ok(Conn::new(obj, permit, s.clone()))
    }

    pub(crate) async fn query(
        &self,
        owner: u64,
        sql: &str,
        params: Vec<Param>,
        limits: &ResultLimits,
    ) -> Result<Value, ProcError> {
        let mut conn = self.acquire(owner).await?;
        conn.arm(Cleanup::Check);
        let client = conn.client()?;
        let out = conn::timed(
            client,
            &self.shared,
            conn::query(client, sql, &params, limits),
        )
        .await;
        conn.disarm();
        release(conn, &out);
        out
    }

    pub(crate) async fn execute(
        &self,
        owner: u64,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<ExecResult, ProcError> {
        let mut conn = self.acquire(owner).await?;
        conn.arm(Cleanup::Check);
        let client = conn.client()?;
        let out = conn::timed(client, &self.shared, conn::execute(client, sql, &params)).await;
        conn.disarm();
        release(conn, &out);
        out
    }

    pub(crate) async fn prepare_check(&self, owner: u64, sql: &str) -> Result<(), ProcError> {
        let mut conn = self.acquire(owner).await?;
        conn.arm(Cleanup::Check);
        let out = conn::check(conn.client()?, sql).await;
        conn.disarm();
        out
    }

    pub(crate) async fn begin(&self, owner: u64, opts: TxOptions) -> Result<Tx, ProcError> {
        let mut sql = String::from("BEGIN");
        match opts.isolation {
            Isolation::Default => {}
            Isolation::WriteCommitted => {
                return Err(invalid(
                    "isolation level 'write_committed' is not supported by PostgreSQL",
                ));
            }
            Isolation::ReadUncommitted => sql.push_str(" ISOLATION LEVEL READ UNCOMMITTED"),
            Isolation::ReadCommitted => sql.push_str(" ISOLATION LEVEL READ COMMITTED"),
            Isolation::RepeatableRead => sql.push_str(" ISOLATION LEVEL REPEATABLE READ"),
            Isolation::Serializable => sql.push_str(" ISOLATION LEVEL SERIALIZABLE"),
        }
        if opts.read_only {
            sql.push_str(" READ ONLY");
        }
        let mut conn = self.acquire(owner).await?;
        conn.arm(Cleanup::Rollback);
        let begun = conn.client()?.batch_execute(&sql).await;
        conn.disarm();
        begun.map_err(|e| error::map(&e))?;
        Ok(Tx::new(conn, self.shared.clone()))
    }

    pub(crate) fn stats(&self) -> Value {
        let st = self.shared.pool.status();
        let now = Snapshot {
            max_open: st.max_size,
            open: st.size,
            in_use: st.size.saturating_sub(st.available),
        };
        stats::to_value(now, &self.shared.counters)
    }

    pub(crate) fn shutdown(&self) {
        self.shared.gate.close();
        self.shared.pool.close();
    }
}

/// Gives `conn` back after a call that ended with `out`: a call past
/// `query_timeout` sent a cancel request, which may reach the server late
/// and cancel the next caller's statement, so that connection is closed
/// instead (see `conn.rs`).
fn release<T>(conn: Conn, out: &Result<T, ProcError>) {
    if matches!(out, Err(e) if e.kind == ErrorKind::Timeout) {
        conn.discard();
    }
}

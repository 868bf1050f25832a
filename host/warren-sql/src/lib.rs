//! The databases behind the `sql` module (modules.md §1), language-neutral:
//! SQLite (one embedded connection per entry) and PostgreSQL (a pool).
//!
//! A [`Database`] is shared by every process; each call names its `owner`
//! (the process), which SQLite needs to refuse a call that would wait
//! behind the caller's own transaction, and whose host its statements run
//! as on the SQL lane (`warren_core::sql_lane`, fair between hosts). Every call is async and never
//! blocks an async worker; dropping a call's future (the process was
//! terminated) interrupts its statement and never leaks a connection.
//! Errors are [`ProcError`]s with the kinds of the spec's table.

mod civil;
mod config;
mod error;
mod meter;
mod numeric;
mod param;
mod postgres;
mod result;
mod room;
mod sqlite;
mod stats;
mod transaction;

use std::sync::Arc;

use tokio::runtime::Handle;
use warren_core::{ProcError, Value};

pub use sqlite::{MAX_SQL_BYTES, engine_heap_bytes};

pub use config::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_MAX_LIFETIME, DEFAULT_MAX_OPEN, DbConfig, Isolation, PgConfig,
    ResultLimits, SqliteFile, TxOptions,
};
pub use meter::EngineMeter;
pub use numeric::numeric_text;
pub use param::Param;
pub use result::ExecResult;
pub use room::ResultRoom;
pub use transaction::Transaction;

/// The engine of a database.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DbKind {
    /// Embedded SQLite.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl DbKind {
    /// `"sqlite"` or `"postgres"` (the `sql.type` constants).
    pub fn name(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }
}

enum Engine {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

/// A database entry, shared by every process (hold it in an `Arc`).
pub struct Database {
    id: String,
    engine: Engine,
    /// Where [`Database::run_then`] runs PostgreSQL calls.
    rt: Handle,
}

/// Stops a call started with [`Database::run_then`]: one not started yet
/// never runs, a running statement is interrupted (SQLite) or its future
/// dropped (PostgreSQL, which cancels it). Its `done` is then dropped
/// uncalled, or called with the interrupted statement's error.
#[derive(Debug)]
pub struct CallStop(StopHow);

#[derive(Debug)]
enum StopHow {
    Sqlite(sqlite::queue::Stop),
    Task(tokio::task::AbortHandle),
}

impl CallStop {
    /// Stops the call (see the type's documentation); idempotent.
    pub fn stop(&self) {
        match &self.0 {
            StopHow::Sqlite(stop) => stop.stop(),
            StopHow::Task(task) => task.abort(),
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("id", &self.id)
            .field("kind", &self.kind())
            .finish()
    }
}

impl Database {
    /// The database of entry `id`. Nothing is opened or connected yet: the
    /// SQLite file is opened (create-if-missing, WAL) and PostgreSQL
    /// connections are made on first use. Calls run their blocking and
    /// background work on `rt`.
    pub fn open(id: &str, config: DbConfig, rt: Handle) -> Result<Arc<Database>, ProcError> {
        let engine = match config {
            DbConfig::Sqlite {
                file,
                max_lifetime,
                query_timeout,
            } => Engine::Sqlite(sqlite::Sqlite::new(
                file,
                max_lifetime,
                query_timeout,
                rt.clone(),
            )),
            DbConfig::Postgres(pg) => Engine::Postgres(postgres::Postgres::new(&pg, rt.clone())?),
        };
        Ok(Arc::new(Database {
            id: id.to_owned(),
            engine,
            rt,
        }))
    }

    /// The entry id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The engine.
    pub fn kind(&self) -> DbKind {
        match self.engine {
            Engine::Sqlite(_) => DbKind::Sqlite,
            Engine::Postgres(_) => DbKind::Postgres,
        }
    }

    /// Runs a query; an array of rows, each a map keyed by column name.
    pub async fn query(
        &self,
        owner: u64,
        sql: &str,
        params: Vec<Param>,
        limits: &ResultLimits,
    ) -> Result<Value, ProcError> {
        match &self.engine {
            Engine::Sqlite(db) => db.query(owner, sql, params, limits).await,
            Engine::Postgres(db) => db.query(owner, sql, params, limits).await,
        }
    }

    /// Runs a statement (without params: possibly a `;`-separated batch,
    /// reported by its last statement).
    pub async fn execute(
        &self,
        owner: u64,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<ExecResult, ProcError> {
        match &self.engine {
            Engine::Sqlite(db) => db.execute(owner, sql, params).await,
            Engine::Postgres(db) => db.execute(owner, sql, params).await,
        }
    }

    /// Runs a query (`query` gives its limits) or, with `None`, a
    /// statement as [`Database::execute`] (its result as
    /// [`ExecResult::to_value`]), and calls `done` with the result on the
    /// thread that finishes it, without a task of the caller's in between:
    /// SQLite's calls wait in the entry's queue and run back to back on
    /// one thread of the SQL lane; PostgreSQL's run as a task. `Err` at once, with
    /// nothing started, for `CONFLICT` (SQLite: `owner`'s own transaction
    /// holds the connection). `sql` is shared, not copied: a prepared
    /// statement's text is held once however often it runs.
    ///
    /// An SQLite statement is charged to `meter` and interrupted once it
    /// is spent (see [`EngineMeter`]).
    pub fn run_then(
        self: &Arc<Self>,
        owner: u64,
        meter: Option<Arc<EngineMeter>>,
        sql: Arc<str>,
        params: Vec<Param>,
        query: Option<ResultLimits>,
        done: impl FnOnce(Result<Value, ProcError>) + Send + 'static,
    ) -> Result<CallStop, ProcError> {
        if let Engine::Sqlite(db) = &self.engine {
            let stop = db.run_then(owner, meter, sql, params, query, done)?;
            return Ok(CallStop(StopHow::Sqlite(stop)));
        }
        let db = self.clone();
        let task = self.rt.spawn(async move {
            let out = match &query {
                Some(limits) => db.query(owner, &sql, params, limits).await,
                None => db.execute(owner, &sql, params).await.map(|r| r.to_value()),
            };
            done(out);
        });
        Ok(CallStop(StopHow::Task(task.abort_handle())))
    }

    /// Checks `sql` by preparing it (`INVALID` for a syntax error or an
    /// unknown table or column).
    pub async fn prepare_check(&self, owner: u64, sql: &str) -> Result<(), ProcError> {
        match &self.engine {
            Engine::Sqlite(db) => db.prepare_check(owner, sql).await,
            Engine::Postgres(db) => db.prepare_check(owner, sql).await,
        }
    }

    /// Starts a transaction for `owner`.
    pub async fn begin(&self, owner: u64, opts: TxOptions) -> Result<Arc<Transaction>, ProcError> {
        self.begin_metered(owner, opts, None).await
    }

    /// Starts a transaction for `owner` whose SQLite statements are charged
    /// to `meter` (see [`EngineMeter`]).
    pub async fn begin_metered(
        &self,
        owner: u64,
        opts: TxOptions,
        meter: Option<Arc<EngineMeter>>,
    ) -> Result<Arc<Transaction>, ProcError> {
        let tx = match &self.engine {
            Engine::Sqlite(db) => Transaction::sqlite(db.begin(owner, opts, meter).await?),
            Engine::Postgres(db) => Transaction::postgres(db.begin(owner, opts).await?),
        };
        Ok(Arc::new(tx))
    }

    /// The `db:stats()` map (durations as strings like `"1.5ms"`).
    pub fn stats(&self) -> Value {
        match &self.engine {
            Engine::Sqlite(db) => db.stats(),
            Engine::Postgres(db) => db.stats(),
        }
    }

    /// Closes PostgreSQL's pool (calls afterwards are `UNAVAILABLE`); a
    /// no-op for SQLite, whose connection closes when the last handle goes.
    pub async fn shutdown(&self) {
        if let Engine::Postgres(db) = &self.engine {
            db.shutdown();
        }
    }
}

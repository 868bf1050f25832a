//! An SQLite transaction: it keeps the entry's lease from BEGIN to its end.
//!
//! Guarantees: calls run one at a time, in order; once ended (commit,
//! rollback, close, an interrupted call, or SQLite ending it by itself)
//! every call is `INVALID`; a transaction ended any other way than by
//! commit is rolled back on a lane thread before the lease is released,
//! and the lease is always released.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use warren_core::{ProcError, sql_lane};

use super::lease::{Lease, Shared, lock};
use crate::error::{err, inactive};
use crate::meter::EngineMeter;

/// Where a transaction stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    /// Holds its lease, idle.
    Active,
    /// A call runs with the lease (statement `running`).
    Busy,
    /// Over; calls fail.
    Ended,
}

struct Inner {
    state: State,
    lease: Option<Lease>,
    running: Option<u64>,
}

/// The shared part of a transaction (also held by its running call).
pub(crate) struct Core {
    shared: Arc<Shared>,
    /// The beginner's host, whose turn on the SQL lane its statements take.
    host: u16,
    /// The beginner's engine meter, which its statements are charged to.
    meter: Option<Arc<EngineMeter>>,
    turn: tokio::sync::Mutex<()>,
    inner: Mutex<Inner>,
    /// Set when it is closed (abandoned): its statements' stop flag, so
    /// one closed between its start and its first step is stopped too
    /// (an interrupt reaches only a statement already running).
    closed: Arc<AtomicBool>,
}

/// An open SQLite transaction.
pub(crate) struct Tx {
    core: Arc<Core>,
}

impl Tx {
    /// Starts a transaction of a process of `host` on an acquired `lease`.
    pub(crate) async fn begin(
        lease: Lease,
        host: u16,
        read_only: bool,
        meter: Option<Arc<EngineMeter>>,
    ) -> Result<Tx, ProcError> {
        let shared = lease.shared().clone();
        let tx = Tx {
            core: Arc::new(Core {
                shared,
                host,
                meter,
                turn: tokio::sync::Mutex::new(()),
                inner: Mutex::new(Inner {
                    state: State::Busy,
                    lease: None,
                    running: None,
                }),
                closed: Arc::default(),
            }),
        };
        let sql = if read_only {
            "BEGIN; PRAGMA query_only = ON;"
        } else {
            "BEGIN"
        };
        tx.run_with(lease, false, move |c| super::run::batch(c, sql))
            .await?;
        Ok(tx)
    }

    /// Runs `f` inside the transaction; `end` ends it afterwards (commit,
    /// rollback).
    pub(crate) async fn call<R, F>(&self, end: bool, f: F) -> Result<R, ProcError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, ProcError> + Send + 'static,
    {
        let _turn = self.core.turn.lock().await;
        let lease = {
            let mut inner = lock(&self.core.inner);
            match (inner.state, inner.lease.take()) {
                (State::Active, Some(lease)) => {
                    inner.state = State::Busy;
                    lease
                }
                _ => return Err(inactive()),
            }
        };
        self.run_with(lease, end, f).await
    }

    async fn run_with<R, F>(&self, mut lease: Lease, end: bool, f: F) -> Result<R, ProcError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, ProcError> + Send + 'static,
    {
        let id = self.core.shared.statement_id();
        lock(&self.core.inner).running = Some(id);
        let abandon = Abandon {
            core: Some(self.core.clone()),
        };
        let core = self.core.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        drop(sql_lane().spawn(self.core.host, move || {
            // Closed while it waited for a thread (its call abandoned, the
            // process ended): the statement is not started, so no
            // interrupt would reach it; it would run to its timeout.
            let out = if core.closed.load(Ordering::Acquire) {
                Err(inactive())
            } else {
                lease.run(id, f)
            };
            core.park(lease, end);
            drop(tx.send(out));
        }));
        let out = rx.await;
        abandon.disarm();
        // A panicking statement drops its sender (and the lease, released).
        out.map_err(|_| {
            err(
                warren_core::ErrorKind::Internal,
                false,
                "sqlite: the statement ended without a result",
            )
        })?
    }

    /// The entry's `query_timeout`.
    pub(crate) fn timeout(&self) -> Option<std::time::Duration> {
        self.core.shared.query_timeout
    }

    /// The flag that stops its statements once it is closed.
    pub(crate) fn stop_flag(&self) -> Arc<AtomicBool> {
        self.core.closed.clone()
    }

    /// The host of the process that began it.
    pub(crate) fn host(&self) -> u16 {
        self.core.host
    }

    /// The meter of the process that began it.
    pub(crate) fn meter(&self) -> Option<Arc<EngineMeter>> {
        self.core.meter.clone()
    }

    /// Whether the transaction can still be used.
    pub(crate) fn is_active(&self) -> bool {
        lock(&self.core.inner).state != State::Ended
    }

    /// Ends the transaction without waiting: rolls back on a lane
    /// thread (or, if a call runs, interrupts it and lets it roll back).
    pub(crate) fn close(&self) {
        self.core.close();
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        self.core.close();
    }
}

impl Core {
    /// Gives the lease back to the transaction after a call (on the
    /// lane thread), or ends it: when asked, when closed meanwhile, or
    /// when SQLite left the transaction (an error rolled it back).
    fn park(&self, mut lease: Lease, end: bool) {
        let mut inner = lock(&self.inner);
        inner.running = None;
        if end || inner.state == State::Ended || lease.autocommit() {
            inner.state = State::Ended;
            drop(inner);
            lease.reset();
        } else {
            inner.state = State::Active;
            inner.lease = Some(lease);
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut inner = lock(&self.inner);
        let was = inner.state;
        inner.state = State::Ended;
        if was != State::Ended {
            self.shared.clear_holder();
        }
        match was {
            State::Active => {
                if let Some(mut lease) = inner.lease.take() {
                    drop(sql_lane().spawn(self.host, move || lease.reset()));
                }
            }
            State::Busy => {
                if let Some(id) = inner.running {
                    self.shared.interrupt(id);
                }
            }
            State::Ended => {}
        }
    }
}

/// Ends the transaction if the call's future is dropped before it finishes.
struct Abandon {
    core: Option<Arc<Core>>,
}

impl Abandon {
    fn disarm(mut self) {
        self.core = None;
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            core.close();
        }
    }
}

//! The one connection of an SQLite entry and the lease that serialises it.
//!
//! Guarantees: at most one statement runs at a time; a transaction holds
//! the lease from BEGIN to its end; a caller whose own transaction holds the
//! lease fails at once with `CONFLICT` instead of waiting forever; a lease
//! is never lost (it is released when its holder is dropped, wherever that
//! is); an interrupt only ever reaches the statement it was aimed at.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, InterruptHandle};
use tokio::runtime::Handle;
use tokio::sync::OwnedMutexGuard;
use warren_core::{ErrorKind, ProcError};

use crate::config::SqliteFile;
use crate::error::err;
use crate::stats::Counters;

/// How long SQLite retries a file locked by another program before
/// `UNAVAILABLE`; bounds the blocking thread such a statement occupies.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Locks a std mutex, ignoring poisoning (the data are plain flags).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The connection, opened on first use.
#[derive(Debug)]
pub(crate) struct Slot {
    conn: Option<Connection>,
    opened_at: Instant,
}

/// Which statement runs now, and how to interrupt it.
#[derive(Default)]
struct Running {
    next: u64,
    current: Option<u64>,
    handle: Option<InterruptHandle>,
}

/// What every call on one SQLite entry shares.
/// [`Shared`]'s holder when no transaction holds the lease. An owner is a
/// pid, whose 16-bit host index never reaches `u16::MAX` (the runtime has
/// far fewer hosts), so no owner is this value.
const NO_HOLDER: u64 = u64::MAX;

pub(crate) struct Shared {
    pub(crate) file: SqliteFile,
    pub(crate) max_lifetime: Duration,
    pub(crate) query_timeout: Option<Duration>,
    pub(crate) rt: Handle,
    pub(crate) counters: Counters,
    slot: Arc<tokio::sync::Mutex<Slot>>,
    /// The owner whose transaction holds the lease ([`NO_HOLDER`]: none).
    /// An atomic, not a lock: every plain call of every worker reads it.
    holder: AtomicU64,
    running: Mutex<Running>,
    /// Plain calls waiting for the runner (see [`super::queue`]).
    pub(crate) queue: Mutex<super::queue::Queue>,
    /// How many calls `queue` holds, kept under its lock: a runner waiting
    /// for the next call reads this, not the lock, which the workers
    /// queuing calls then find free.
    pub(crate) queued: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// An entry whose connection is not opened yet.
    pub(crate) fn new(
        file: SqliteFile,
        max_lifetime: Duration,
        query_timeout: Option<Duration>,
        rt: Handle,
    ) -> Shared {
        Shared {
            file,
            max_lifetime,
            query_timeout,
            rt,
            counters: Counters::default(),
            slot: Arc::new(tokio::sync::Mutex::new(Slot {
                conn: None,
                opened_at: Instant::now(),
            })),
            holder: AtomicU64::new(NO_HOLDER),
            running: Mutex::new(Running::default()),
            queue: Mutex::default(),
            queued: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Waits (async) for the lease for `owner`'s transaction, which holds
    /// it until it is dropped. `CONFLICT` at once if `owner`'s own
    /// transaction holds it already.
    pub(crate) async fn acquire_for_tx(self: &Arc<Self>, owner: u64) -> Result<Lease, ProcError> {
        self.check_not_holder(owner)?;
        let mut lease = match self.try_lease() {
            Some(lease) => lease,
            None => self.lease().await,
        };
        lease.for_tx = true;
        self.holder.store(owner, Ordering::Release);
        Ok(lease)
    }

    /// `CONFLICT` if `owner`'s own transaction holds the lease: a call of
    /// its outside the transaction would wait for it forever.
    pub(crate) fn check_not_holder(&self, owner: u64) -> Result<(), ProcError> {
        if self.holder.load(Ordering::Acquire) == owner {
            return Err(err(
                ErrorKind::Conflict,
                false,
                "this call would wait behind its own transaction on this SQLite \
                 database: run it through the transaction, or end the transaction first",
            ));
        }
        Ok(())
    }

    /// The lease for the plain calls' runner if it is free now.
    pub(crate) fn try_lease(self: &Arc<Self>) -> Option<Lease> {
        let guard = self.slot.clone().try_lock_owned().ok()?;
        Some(self.plain(guard))
    }

    /// The lease for the plain calls' runner, waited for (async).
    pub(crate) async fn lease(self: &Arc<Self>) -> Lease {
        let start = Instant::now();
        let guard = self.slot.clone().lock_owned().await;
        self.counters.waited(start.elapsed());
        self.plain(guard)
    }

    fn plain(self: &Arc<Self>, guard: OwnedMutexGuard<Slot>) -> Lease {
        Lease {
            guard,
            shared: self.clone(),
            for_tx: false,
        }
    }

    /// Forgets which owner's transaction holds the lease: that transaction
    /// has ended (its rollback may still be queued), so its owner's next
    /// call waits for the lease instead of failing with `CONFLICT`.
    pub(crate) fn clear_holder(&self) {
        self.holder.store(NO_HOLDER, Ordering::Release);
    }

    /// A fresh statement id, for [`Shared::interrupt`].
    pub(crate) fn statement_id(&self) -> u64 {
        let mut r = lock(&self.running);
        r.next += 1;
        r.next
    }

    /// Interrupts statement `id` if (and only if) it is running now.
    pub(crate) fn interrupt(&self, id: u64) {
        let r = lock(&self.running);
        if r.current == Some(id)
            && let Some(h) = &r.handle
        {
            h.interrupt();
        }
    }

    /// `(open, in_use)` for the stats.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let open = usize::from(lock(&self.running).handle.is_some());
        let in_use = usize::from(self.slot.try_lock().is_err());
        (open, in_use.min(open))
    }
}

/// The right to use the connection; released when dropped.
pub(crate) struct Lease {
    guard: OwnedMutexGuard<Slot>,
    shared: Arc<Shared>,
    for_tx: bool,
}

impl Lease {
    /// The entry this lease belongs to.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Runs `f` on the connection as statement `id` (opening or replacing
    /// the connection first if needed). Runs on a lane thread.
    pub(crate) fn run<R>(
        &mut self,
        id: u64,
        f: impl FnOnce(&mut Connection) -> Result<R, ProcError>,
    ) -> Result<R, ProcError> {
        let shared = self.shared.clone();
        let conn = self.connection()?;
        set_current(&shared, Some(id));
        let out = f(conn);
        set_current(&shared, None);
        out
    }

    /// Whether the connection is outside any transaction.
    pub(crate) fn autocommit(&self) -> bool {
        self.guard
            .conn
            .as_ref()
            .is_none_or(Connection::is_autocommit)
    }

    /// Rolls back whatever transaction the connection is in, and leaves
    /// it writable again. Errors are logged: the lease is released anyway.
    pub(crate) fn reset(&mut self) {
        let Some(conn) = self.guard.conn.as_mut() else {
            return;
        };
        let _engine = super::guard::engine();
        if !conn.is_autocommit()
            && let Err(e) = conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(error = %e, "sqlite: rollback failed");
        }
        if let Err(e) = conn.execute_batch("PRAGMA query_only = OFF") {
            tracing::warn!(error = %e, "sqlite: could not reset query_only");
        }
    }

    fn connection(&mut self) -> Result<&mut Connection, ProcError> {
        let expired = self.guard.opened_at.elapsed() > self.shared.max_lifetime
            && self.shared.file != SqliteFile::Memory
            && self.autocommit();
        if expired && self.guard.conn.take().is_some() {
            self.shared.counters.lifetime_closed();
        }
        if self.guard.conn.is_none() {
            let conn = open(&self.shared.file)?;
            lock(&self.shared.running).handle = Some(conn.get_interrupt_handle());
            self.guard.conn = Some(conn);
            self.guard.opened_at = Instant::now();
        }
        self.guard
            .conn
            .as_mut()
            .ok_or_else(|| err(ErrorKind::Internal, false, "sqlite connection missing"))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.for_tx {
            self.shared.clear_holder();
        }
    }
}

fn set_current(shared: &Shared, id: Option<u64>) {
    lock(&shared.running).current = id;
}

/// Opens the database: create-if-missing, WAL for files, foreign keys on,
/// then bounded and guarded ([`super::guard::install`]: no SQL reaches
/// another file, nor changes what every caller of the entry shares).
fn open(file: &SqliteFile) -> Result<Connection, ProcError> {
    if !super::heap::install() {
        tracing::warn!("sqlite: the engine started before its heap could be counted per host");
    }
    let mut conn = match file {
        SqliteFile::Memory => Connection::open_in_memory(),
        SqliteFile::Path(p) => Connection::open(p),
    }
    .map_err(|e| {
        let mut out = super::error::map(&e);
        if out.kind == ErrorKind::Internal {
            out.kind = ErrorKind::Unavailable;
        }
        out.message = format!("cannot open SQLite database: {}", out.message);
        out
    })?;
    let setup = || -> rusqlite::Result<()> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if matches!(file, SqliteFile::Path(_)) {
            let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        }
        // Sorts, DISTINCT and GROUP BY b-trees and materialized subqueries
        // go to the heap, under the library's hard limit, instead of files
        // nothing bounded: one `count(DISTINCT randomblob(1000))` over a
        // long series wrote 7.8 GB in a minute for a 16 MiB process (red
        // team I). Users cannot set it back (the authorizer).
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY")
    };
    setup().map_err(|e| super::error::map(&e))?;
    super::guard::install(&mut conn, matches!(file, SqliteFile::Memory))
        .map_err(|e| super::error::map(&e))?;
    Ok(conn)
}

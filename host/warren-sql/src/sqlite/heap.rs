//! The SQLite library's heap, counted per statement and per caller's host,
//! so that one tenant's statements cannot fill the heap every tenant shares.
//!
//! Sorts, `DISTINCT` and `GROUP BY` b-trees and materialized subqueries
//! live in the library's heap (`temp_store = MEMORY`, `lease.rs`), and its
//! one hard limit ([`super::guard::HEAP_HARD_LIMIT`]) is for every database
//! of the runtime: one tenant's `count(DISTINCT randomblob(1000))` over an
//! endless series held that heap full for 3-8 s, and other tenants'
//! statements on other databases failed with "out of memory" meanwhile.
//!
//! [`install`] wraps the library's allocator (`SQLITE_CONFIG_MALLOC`)
//! before SQLite initializes. A statement run inside a [`Window`]
//! (`run.rs`'s `with_deadline`) counts, on its thread, what the library
//! allocates net of what it frees. An allocation that would take the
//! statement past [`STATEMENT_HEAP_MAX`], or the statements of its host
//! then running past [`HOST_HEAP_MAX`], fails, and the statement with it
//! (`SQLITE_NOMEM`; [`take_refusal`] says which bound it was).
//!
//! Guarantees: allocations outside a window pass unchanged; closing a
//! window takes its net off its host's count, so what outlives a statement
//! (a page cache, bounded on its own) is charged to no later statement and
//! the counts do not drift; the wrappers never panic, allocate nothing of
//! their own and call only the library's original allocator.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::ffi;

/// Most SQLite heap one statement may hold net, in bytes: what a
/// `DISTINCT`, sort or materialized subquery of one process may take of the
/// heap every tenant shares (the same as the temporary database's cap). A
/// statement on a `:memory:` entry may also grow that database, whose pages
/// are heap, up to its own cap ([`statement_cap`]).
pub(crate) const STATEMENT_HEAP_MAX: i64 = 64 << 20;

/// The heap a statement may hold: [`STATEMENT_HEAP_MAX`], plus the
/// database's own cap for a `:memory:` entry, so that such an entry fills
/// to its cap ("full") as a file entry does, one statement or many.
pub(crate) fn statement_cap(in_memory: bool) -> i64 {
    if in_memory {
        let db = i64::try_from(super::guard::MEMORY_DB_MAX_BYTES).unwrap_or(i64::MAX);
        STATEMENT_HEAP_MAX.saturating_add(db)
    } else {
        STATEMENT_HEAP_MAX
    }
}

/// Most SQLite heap the statements of one host running at once may hold
/// net, in bytes: a quarter of the library's hard limit, so one tenant
/// running statements on many databases at once leaves the rest to others.
pub(crate) const HOST_HEAP_MAX: i64 = super::guard::HEAP_HARD_LIMIT / 4;

/// Which bound refused an allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// [`STATEMENT_HEAP_MAX`].
    Statement,
    /// [`HOST_HEAP_MAX`].
    Host,
}

impl Refusal {
    /// The error text for a statement this refusal failed.
    pub(crate) fn text(self) -> String {
        match self {
            Refusal::Statement => format!(
                "the statement needed more than {STATEMENT_HEAP_MAX} bytes of the SQL engine's \
                 memory (sorts, DISTINCT, GROUP BY and subqueries count)"
            ),
            Refusal::Host => format!(
                "this host's statements running at once hold more than {HOST_HEAP_MAX} bytes \
                 of the SQL engine's memory"
            ),
        }
    }
}

/// The open window of this thread: its host, its cap and its net bytes.
#[derive(Clone, Copy)]
struct Open {
    host: u16,
    cap: i64,
    net: i64,
}

thread_local! {
    static OPEN: Cell<Option<Open>> = const { Cell::new(None) };
    static REFUSED: Cell<Option<Refusal>> = const { Cell::new(None) };
}

/// Net bytes held by the open windows of each host.
static HOSTS: [AtomicI64; 1 << 16] = [const { AtomicI64::new(0) }; 1 << 16];

/// The library's own allocator, as it was before [`install`].
struct Original(ffi::sqlite3_mem_methods);

// SAFETY: the methods are SQLite's default allocator functions and its
// application data pointer (null for the default); SQLite itself calls
// them from every thread, and they are only read after they are stored.
unsafe impl Send for Original {}
// SAFETY: as above.
unsafe impl Sync for Original {}

static ORIGINAL: OnceLock<Original> = OnceLock::new();

/// Wraps the library's allocator; must run before SQLite initializes (the
/// first connection opened). True when the wrappers are in place, now or
/// from an earlier call; false when SQLite was initialized first, and
/// then nothing is counted.
pub(crate) fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let mut orig = std::mem::MaybeUninit::<ffi::sqlite3_mem_methods>::zeroed();
        // SAFETY: GETMALLOC writes the current methods into the struct it
        // is given; both calls fail with SQLITE_MISUSE, changing nothing,
        // once the library is initialized. SQLite copies the struct given
        // to SQLITE_CONFIG_MALLOC.
        unsafe {
            if ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETMALLOC, orig.as_mut_ptr())
                != ffi::SQLITE_OK
            {
                return false;
            }
            let orig = orig.assume_init();
            if orig.xMalloc.is_none() || orig.xFree.is_none() || orig.xRealloc.is_none() {
                return false;
            }
            let Ok(()) = ORIGINAL.set(Original(orig)) else {
                return false;
            };
            let ours = ffi::sqlite3_mem_methods {
                xMalloc: Some(x_malloc),
                xFree: Some(x_free),
                xRealloc: Some(x_realloc),
                xSize: orig.xSize,
                xRoundup: orig.xRoundup,
                xInit: orig.xInit,
                xShutdown: orig.xShutdown,
                pAppData: orig.pAppData,
            };
            let ok = ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &raw const ours);
            ok == ffi::SQLITE_OK
        }
    })
}

/// The original methods; set before any wrapper can be called.
fn original() -> &'static ffi::sqlite3_mem_methods {
    &ORIGINAL
        .get()
        .expect("installed before SQLite calls a wrapper")
        .0
}

/// The size of the live allocation `p` (0 for null).
fn size_of(p: *mut c_void) -> i64 {
    match original().xSize {
        // SAFETY: `p` is a live allocation of the original allocator.
        Some(size) if !p.is_null() => i64::from(unsafe { size(p) }),
        _ => 0,
    }
}

/// Whether the open window (if any) may grow by `more` bytes; records the
/// refusal when not.
fn admit(more: i64) -> bool {
    let Ok(Some(open)) = OPEN.try_with(Cell::get) else {
        return true;
    };
    let refusal = if open.net.saturating_add(more) > open.cap {
        Refusal::Statement
    } else if HOSTS[usize::from(open.host)]
        .load(Ordering::Relaxed)
        .saturating_add(more)
        > HOST_HEAP_MAX
    {
        Refusal::Host
    } else {
        return true;
    };
    let _ = REFUSED.try_with(|r| r.set(Some(refusal)));
    false
}

/// Adds `bytes` (negative when freed) to the open window, if any.
fn charge(bytes: i64) {
    let _ = OPEN.try_with(|o| {
        if let Some(mut open) = o.get() {
            open.net = open.net.saturating_add(bytes);
            o.set(Some(open));
            HOSTS[usize::from(open.host)].fetch_add(bytes, Ordering::Relaxed);
        }
    });
}

/// Whether this thread has a window open (so sizes must be read).
fn counting() -> bool {
    OPEN.try_with(|o| o.get().is_some()).unwrap_or(false)
}

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    if !admit(i64::from(n)) {
        return std::ptr::null_mut();
    }
    let malloc = original().xMalloc.expect("checked at install");
    // SAFETY: the original allocator's own contract, as SQLite calls it.
    let p = unsafe { malloc(n) };
    if counting() {
        charge(size_of(p));
    }
    p
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    if counting() {
        charge(-size_of(p));
    }
    let free = original().xFree.expect("checked at install");
    // SAFETY: as in `x_malloc`.
    unsafe { free(p) }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    let counted = counting();
    let old = if counted { size_of(p) } else { 0 };
    if counted && !admit(i64::from(n) - old) {
        return std::ptr::null_mut(); // `p` stays, as after a failed realloc
    }
    let realloc = original().xRealloc.expect("checked at install");
    // SAFETY: as in `x_malloc`.
    let q = unsafe { realloc(p, n) };
    if counted && !q.is_null() {
        charge(size_of(q) - old);
    }
    q
}

/// A statement's count on this thread, for `host`, from [`Window::open`]
/// until dropped. A window opened while another is open counts into that
/// one.
pub(crate) struct Window {
    /// Whether this window opened the count (and closes it).
    owns: bool,
    /// Bound to the thread whose count it is.
    _thread: PhantomData<*const ()>,
}

impl Window {
    /// Opens the count of a statement of a process of `host` that may
    /// hold `cap` bytes ([`statement_cap`]), clearing the thread's last
    /// refusal.
    pub(crate) fn open(host: u16, cap: i64) -> Window {
        let _ = REFUSED.try_with(|r| r.set(None));
        let owns = OPEN
            .try_with(|o| {
                if o.get().is_some() {
                    return false;
                }
                o.set(Some(Open { host, cap, net: 0 }));
                true
            })
            .unwrap_or(false);
        Window {
            owns,
            _thread: PhantomData,
        }
    }
}

impl Window {
    /// Closes the count and says how many bytes the statement left
    /// allocated (net; 0 for a window that counted into another).
    pub(crate) fn close(mut self) -> i64 {
        self.end()
    }

    fn end(&mut self) -> i64 {
        if !std::mem::take(&mut self.owns) {
            return 0;
        }
        match OPEN.try_with(Cell::take) {
            Ok(Some(open)) => {
                HOSTS[usize::from(open.host)].fetch_sub(open.net, Ordering::Relaxed);
                open.net
            }
            _ => 0,
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        self.end();
    }
}

/// Most bytes a statement may leave allocated on its connection before the
/// connection's cache of prepared statements is emptied. What outlives a
/// statement is charged to nobody: 16 cached statements of some 30 MiB
/// each (an `IN` list of a megabyte of text), on a few databases of one
/// host, held the shared heap full, and other tenants' statements failed
/// after the attacker had ended.
pub(crate) const STATEMENT_RETAIN_MAX: i64 = 1 << 20;

/// The bound that refused an allocation on this thread since the last
/// [`Window::open`], taken.
pub(crate) fn take_refusal() -> Option<Refusal> {
    REFUSED.try_with(Cell::take).ok().flatten()
}

#[cfg(test)]
#[path = "heap_tests.rs"]
mod tests;

//! The I/O modules of the Lua front-end (modules.md): the host functions
//! behind `sql`, `http_client`, `fs` and `env`, whose Lua faces are `modules/*.lua`.
//!
//! Each host function checks, in this order, the shape of its arguments
//! (`INVALID`), the caller's grant (`PERMISSION_DENIED`), then existence
//! (`NOT_FOUND`), so code without a grant learns nothing about what
//! exists. Work that waits is started through
//! [`Core::start_op`](warren_core::Core::start_op): only the calling
//! coroutine waits, and the process's exit interrupts it. Grants are read
//! from the calling process's entry (named by the kernel, never by the
//! process) and its host.

mod env;
mod fs;
mod funcs;
mod http;
pub(crate) mod raw;
mod sql;

pub use fs::Volumes;

use std::collections::HashMap;
use std::sync::Arc;

use mlua::{IntoLuaMulti, Lua, MultiValue, Table};
use warren_core::{Core, CoreRef, ErrorKind, Handle, Pid, ProcError};

use crate::outcome::Outcome;
use crate::program::LuaProgram;

/// The Lua sources of the I/O modules, by module name.
/// The kernel loads `scanner` first and hands it to the others.
pub(crate) const SOURCES: [(&str, &str); 6] = [
    ("scanner", include_str!("../modules/scanner.lua")),
    ("sql", include_str!("../modules/sql.lua")),
    ("http_client", include_str!("../modules/http_client.lua")),
    ("fs", include_str!("../modules/fs.lua")),
    ("env", include_str!("../modules/env.lua")),
    ("funcs", include_str!("../modules/funcs.lua")),
];

/// The application's databases, shared with every worker through
/// [`warren_core::RuntimeBuilder::extension`].
#[derive(Default)]
pub struct Databases {
    by_id: HashMap<String, Arc<warren_sql::Database>>,
}

impl Databases {
    /// No databases.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds database `db` under its entry id.
    pub fn insert(&mut self, db: Arc<warren_sql::Database>) {
        self.by_id.insert(db.id().to_owned(), db);
    }

    /// The database of entry `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<warren_sql::Database>> {
        self.by_id.get(id)
    }
}

/// Registers the `H.sql_*` and `H.http_*` functions and the module sources.
pub(crate) fn register(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let sources = lua.create_table()?;
    for (name, src) in SOURCES {
        sources.raw_set(name, src)?;
    }
    h.set("io_modules", sources)?;
    sql::register(lua, h, core)?;
    fs::register(lua, h, core)?;
    env::register(lua, h, core)?;
    funcs::register(lua, h, core)?;
    http::register(lua, h, core)
}

/// The host functions written as raw starts (see [`raw`]), which need
/// the VM's `stepper`: `H.fs_op`, `H.http_request_plain`, `H.sql_query`,
/// `H.sql_execute`.
pub(crate) fn register_raw(
    lua: &Lua,
    h: &Table,
    stepper: &crate::step::Stepper,
) -> mlua::Result<()> {
    let starts: [(&str, mlua::ffi::lua_CFunction); 4] = [
        ("fs_op", fs::fs_op),
        ("http_request_plain", http::http_request_plain),
        ("sql_query", sql::sql_query),
        ("sql_execute", sql::sql_execute),
    ];
    for (name, f) in starts {
        // SAFETY: `stepper` is the VM's own, which outlives its functions.
        h.set(name, unsafe { raw::push(lua, stepper, f) }?)?;
    }
    Ok(())
}

/// Where the bytes `me`'s host calls hold are counted: the counter its
/// calls in flight share, what they may hold together (its
/// `memory_per_process`), and its host (whose `memory_total` they count
/// in too). A response body's, a query result's and a file read's room
/// are made of these.
pub(crate) fn room_parts(
    core: &CoreRef,
    me: Pid,
) -> (
    Arc<std::sync::atomic::AtomicU64>,
    u64,
    Arc<warren_core::HostQuota>,
) {
    let mut core = core.borrow_mut();
    let held = core.copied_counter(me);
    let quota = core.quota_of(me).clone();
    (held, quota.limits.memory_per_process, quota)
}

/// What one host call may copy out of the calling process into host
/// memory: with what its other calls in flight hold (see
/// [`warren_core::Copied`]), at most what the process may hold at all (its
/// `memory_per_process`), counted before each copy is made.
///
/// The abuse it prevents: a table that names one string thousands of
/// times costs its process one string, and made the host copy it once per
/// name: 32,766 SQL parameters, or 1,024 HTTP headers, form fields or
/// files, each the same 60 MiB string, were terabytes of host memory for
/// a few hundred kilobytes of Lua; and 64 calls in flight, each writing
/// the same 60 MiB string to a file, held 64 copies of it.
pub(crate) struct CopyBudget {
    taken: u64,
    /// What the process's other calls in flight hold.
    held: u64,
    limit: u64,
    counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
    module: &'static str,
    /// The process's host, whose `memory_total` holds what is taken
    /// (`charged` bytes so far, given back if the call is not made).
    quota: std::sync::Arc<warren_core::HostQuota>,
    charged: u64,
}

impl CopyBudget {
    /// The budget of one call of `module` by `me`.
    pub(crate) fn of(core: &CoreRef, me: Pid, module: &'static str) -> Self {
        let mut core = core.borrow_mut();
        let quota = core.quota_of(me).clone();
        let limit = quota.limits.memory_per_process;
        let counter = core.copied_counter(me);
        let held = counter.load(std::sync::atomic::Ordering::Acquire);
        CopyBudget {
            taken: 0,
            held,
            limit,
            counter,
            module,
            quota,
            charged: 0,
        }
    }

    /// Takes `n` bytes, about to be copied: `INVALID` (details `limit`)
    /// past the limit on its own, `RATE_LIMITED` (retryable) past it only
    /// with what the process's calls in flight hold.
    pub(crate) fn take(&mut self, n: usize) -> Result<(), ProcError> {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let taken = self.taken.saturating_add(n);
        if taken > self.limit {
            let mut err = invalid(format!(
                "{}: the call's arguments take more than {} bytes, what the process may hold",
                self.module, self.limit
            ));
            let limit = i64::try_from(self.limit).unwrap_or(i64::MAX);
            err.details = Some(warren_core::Value::Map(vec![(
                warren_core::Value::str("limit"),
                warren_core::Value::Int(limit),
            )]));
            return Err(err);
        }
        if taken.saturating_add(self.held) > self.limit {
            let mut err = ProcError::new(
                ErrorKind::RateLimited,
                format!(
                    "{}: the call's arguments ({taken} bytes so far) and the {} bytes its calls \
                     in flight hold take more than {} bytes, what the process may hold",
                    self.module, self.held, self.limit
                ),
            );
            err.retryable = true;
            return Err(err);
        }
        if !self.quota.reserve_memory(n) {
            let mut err = ProcError::new(
                ErrorKind::RateLimited,
                format!(
                    "{}: host '{}' has no room left in its memory_total ({} bytes) for the \
                     call's arguments",
                    self.module, self.quota.name, self.quota.limits.memory_total
                ),
            );
            err.retryable = true;
            return Err(err);
        }
        self.charged += n;
        self.taken = taken;
        Ok(())
    }

    /// The bytes taken, counted in the process's total in flight and held
    /// against its host's `memory_total` until the returned value is
    /// dropped (moved into the call's work).
    pub(crate) fn hold(mut self) -> warren_core::Copied {
        let charged = std::mem::take(&mut self.charged);
        debug_assert_eq!(charged, self.taken);
        let (counter, quota) = (self.counter.clone(), self.quota.clone());
        warren_core::Copied::hold(counter, charged, Some(quota))
    }
}

impl Drop for CopyBudget {
    /// A budget dropped unheld (the call was refused, or its arguments did
    /// not convert) gives its host back what it reserved.
    fn drop(&mut self) {
        self.quota.release_memory(self.charged);
    }
}

/// Whether code of entry `entry` running as `me` holds `action` on
/// `resource`: its entry's grants or its host's.
pub(crate) fn granted(core: &Core, me: Pid, entry: &str, action: &str, resource: &str) -> bool {
    if core.quota_of(me).grants.allows(action, resource) {
        return true;
    }
    core.with_program(entry, |p| {
        p.code
            .downcast_ref::<LuaProgram>()
            .is_some_and(|l| l.grants.allows(action, resource))
    })
    .unwrap_or(false)
}

/// The grants code of `entry` running as `me` holds (its entry's ∪ its
/// host's). Shared, not copied, when only one side grants anything (the
/// common case), so a request pays for no union.
pub(crate) fn grants_of(core: &Core, me: Pid, entry: &str) -> std::sync::Arc<warren_core::Grants> {
    let host = &core.quota_of(me).grants;
    let own = core.program(entry).and_then(|p| {
        p.code
            .downcast_ref::<LuaProgram>()
            .map(|l| l.grants.clone())
    });
    match own {
        Some(own) if host.is_empty() => own,
        Some(own) if own.is_empty() => std::sync::Arc::new(host.clone()),
        Some(own) => std::sync::Arc::new(own.union(host)),
        None => std::sync::Arc::new(host.clone()),
    }
}

/// The shared resource `id` (a database, a volume) for `me`, checked in
/// the contract's order: its shape (`INVALID`), the grant of `action` on
/// it (`PERMISSION_DENIED`), then its existence through `find`
/// (`NOT_FOUND`), so code without the grant learns nothing of what exists.
/// `module` and `what` name it in messages (`sql`, `database`).
pub(crate) fn reach<T>(
    core: &CoreRef,
    me: Pid,
    entry: &str,
    (action, module, what): (&str, &str, &str),
    id: &str,
    find: impl FnOnce(&Core) -> Option<std::sync::Arc<T>>,
) -> Result<std::sync::Arc<T>, ProcError> {
    if id.is_empty() {
        return Err(invalid(format!(
            "{module}: the {what} id must be a non-empty string"
        )));
    }
    let core = core.borrow();
    if !granted(&core, me, entry, action, id) {
        return Err(denied(action, id));
    }
    find(&core).ok_or_else(|| {
        let id = warren_core::error::quoted_id(id);
        ProcError::new(ErrorKind::NotFound, format!("{what} '{id}' not found"))
    })
}

/// `PERMISSION_DENIED` naming the action and the resource (cut as
/// [`warren_core::error::quoted_id`] cuts an id: a 1 MiB id made a 1 MiB
/// message).
pub(crate) fn denied(action: &str, resource: &str) -> ProcError {
    let resource = warren_core::error::quoted_id(resource);
    ProcError::new(
        ErrorKind::PermissionDenied,
        format!("{action} on '{resource}' is not granted to this entry or its host"),
    )
}

/// `INVALID` with `message`.
pub(crate) fn invalid(message: impl Into<String>) -> ProcError {
    ProcError::new(ErrorKind::Invalid, message)
}

/// What an `H` function that starts an operation returns: `true, op`, or
/// `false` and the refusal's kind, message and retryable.
pub(crate) fn started(
    _lua: &Lua,
    result: Result<u64, ProcError>,
) -> mlua::Result<Outcome<(bool, i64)>> {
    Ok(Outcome::of(
        result.map(|op| (true, i64::try_from(op).unwrap_or(i64::MAX))),
    ))
}

/// `false` and the error's kind, message and retryable.
pub(crate) fn refused(lua: &Lua, err: &ProcError) -> mlua::Result<MultiValue> {
    Outcome::<()>::failed(err).into_lua_multi(lua)
}

/// A process id from the kernel's integer.
pub(crate) fn pid(raw: i64) -> Pid {
    crate::host::pid_of(raw)
}

/// A handle id from a Lua integer (`None` for anything not positive).
pub(crate) fn handle_id(raw: i64) -> Option<u64> {
    u64::try_from(raw).ok().filter(|id| *id > 0)
}

/// Takes handle `hid` out of `me`'s table if it is a `T`. The id comes
/// from a field of the Lua object, which its holder can overwrite: an id
/// naming a handle of another kind (a statement's `close` aimed at a
/// transaction, a `commit` aimed at a stream) leaves that handle alone.
pub(crate) fn take_if<T: 'static>(core: &CoreRef, me: Pid, hid: i64) -> Option<Handle> {
    let id = handle_id(hid)?;
    let mut core = core.borrow_mut();
    core.handle(me, id)?.downcast::<T>()?;
    core.take_handle(me, id)
}

/// An mlua failure while reading a caller's value, as `INVALID`.
pub(crate) trait OrInvalid<T> {
    /// The value, or `INVALID` quoting mlua's message.
    fn or_invalid(self) -> Result<T, ProcError>;
}

impl<T> OrInvalid<T> for mlua::Result<T> {
    fn or_invalid(self) -> Result<T, ProcError> {
        self.map_err(|e| invalid(e.to_string()))
    }
}

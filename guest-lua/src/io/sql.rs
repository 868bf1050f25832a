//! The host functions behind the `sql` module (modules/sql.lua).
//!
//! A call names its target as a database id (a string: the `db.get` grant
//! is checked on every call) or as a transaction's handle id (an integer,
//! looked up in the caller's own handle table only). Parameters arrive
//! flattened by the Lua side as a kind string and a value array, and are
//! re-checked here, value by value, before any work starts.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use std::ffi::c_int;

use mlua::{IntoLuaMulti, Lua, LuaString, MultiValue, Table, Value as LuaValue, ffi};
use warren_core::grants::DB_GET;
use warren_core::{
    Copied, CoreRef, ErrorKind, Handle, HostQuota, Keep, OpDone, OpValue, Pid, ProcError, Resource,
};
use warren_sql::{
    Database, EngineMeter, Isolation, Param, ResultLimits, ResultRoom, Transaction, TxOptions,
};

use super::raw::{Arg, Args};
use super::{
    CopyBudget, Databases, OrInvalid, handle_id, invalid, pid, reach, refused, started, take_if,
};
use crate::step::Stepper;

/// Longest SQL text a call takes: a statement is code, not data; megabytes
/// of it would only make the engine's parser work for an attacker (the
/// engine refuses longer text itself).
pub(crate) const MAX_SQL_BYTES: usize = warren_sql::MAX_SQL_BYTES;

/// Most parameters of one statement (SQLite's own limit).
pub(crate) const MAX_PARAMS: usize = 32_766;

/// How long one call may wait in all (for the connection, a lock, the
/// statement) when the database sets no `query_timeout`: every host call
/// has a deadline, so a statement stuck behind a lock forever ends as
/// `TIMEOUT` instead of holding its coroutine and an operation slot.
pub(crate) const SQL_CALL_DEADLINE: Duration = Duration::from_secs(600);

/// A transaction in a process's handle table.
struct TxHandle(Arc<Transaction>);

impl Resource for TxHandle {
    fn kind(&self) -> &'static str {
        "transaction"
    }
    fn close(&self) {
        self.0.close();
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What a statement runs on.
#[derive(Clone)]
enum Target {
    Db(Arc<Database>),
    Tx(Arc<Transaction>),
}

/// A prepared statement: its SQL, re-prepared where it runs, shared with
/// each run (never copied again). The text is counted for as long as the
/// handle lives: against the process's bytes held outside it (`held`, the
/// copy budget every later call of the process checks) and against its
/// host's `memory_total` (`host`). Without that, 8 processes each holding
/// 256 statements of 1 MiB made the host keep 2.35 GB no limit counted.
struct StmtHandle {
    sql: Arc<str>,
    target: Target,
    _held: Copied,
    _host: HostHeld,
}

/// Bytes of a host's `memory_total` held until dropped.
struct HostHeld {
    quota: Arc<HostQuota>,
    bytes: u64,
}

impl HostHeld {
    /// Takes `bytes` from `me`'s host: `RATE_LIMITED` (retryable) if its
    /// `memory_total` has no room for them.
    fn take(core: &CoreRef, me: Pid, bytes: usize) -> Result<HostHeld, ProcError> {
        let quota = core.borrow().quota_of(me).clone();
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        if !quota.reserve_memory(bytes) {
            let mut err = ProcError::new(
                ErrorKind::RateLimited,
                format!(
                    "sql: a statement of {bytes} bytes does not fit in what is left of the \
                     host's memory_total ({} bytes)",
                    quota.memory_room()
                ),
            );
            err.retryable = true;
            return Err(err);
        }
        Ok(HostHeld { quota, bytes })
    }
}

impl Drop for HostHeld {
    fn drop(&mut self) {
        self.quota.release_memory(self.bytes);
    }
}

impl Resource for StmtHandle {
    fn kind(&self) -> &'static str {
        "statement"
    }
    fn close(&self) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn inactive() -> ProcError {
    invalid("transaction is not active")
}

/// The database `id` for `me`: shape, grant, then existence.
fn database(core: &CoreRef, me: Pid, entry: &str, id: &str) -> Result<Arc<Database>, ProcError> {
    reach(core, me, entry, (DB_GET, "sql", "database"), id, |c| {
        c.extension::<Databases>()?.get(id).cloned()
    })
}

fn target(core: &CoreRef, me: Pid, entry: &str, v: &LuaValue) -> Result<Target, ProcError> {
    match v {
        LuaValue::String(id) => {
            let id = db_id(id)?;
            Ok(Target::Db(database(core, me, entry, &id)?))
        }
        LuaValue::Integer(h) => tx_target(core, me, *h),
        _ => Err(invalid("sql: not a database or transaction")),
    }
}

/// The transaction of `me`'s handle `h`.
fn tx_target(core: &CoreRef, me: Pid, h: i64) -> Result<Target, ProcError> {
    let handle = handle_id(h).and_then(|h| core.borrow().handle(me, h));
    match handle.as_ref().and_then(|h| h.downcast::<TxHandle>()) {
        Some(tx) => Ok(Target::Tx(tx.0.clone())),
        None => Err(inactive()),
    }
}

/// SQL text: at most [`MAX_SQL_BYTES`], UTF-8, copied once.
fn sql_bytes(bytes: &[u8]) -> Result<Arc<str>, ProcError> {
    if bytes.len() > MAX_SQL_BYTES {
        return Err(invalid(format!(
            "sql: a statement of {} bytes is longer than the limit of {MAX_SQL_BYTES}",
            bytes.len()
        )));
    }
    std::str::from_utf8(bytes)
        .map(Arc::from)
        .map_err(|_| invalid("sql: the statement is not UTF-8 text"))
}

/// The parameters flattened by the Lua side, checked value by value:
/// `vals` is their array, or the one parameter itself when `kinds` names
/// one (the Lua side makes no table for the usual single parameter).
fn params(
    kinds: &LuaString,
    vals: &LuaValue,
    budget: &mut CopyBudget,
) -> Result<Vec<Param>, ProcError> {
    let kinds = kinds.as_bytes();
    let mut out = params_room(&kinds)?;
    for (i, kind) in kinds.iter().enumerate() {
        let v: LuaValue = match vals {
            LuaValue::Table(t) => t.raw_get(i + 1).or_invalid()?,
            one if kinds.len() == 1 => one.clone(),
            _ => LuaValue::Nil,
        };
        let bytes;
        let arg = match &v {
            LuaValue::Boolean(b) => Arg::Bool(*b),
            LuaValue::Integer(n) => Arg::Int(*n),
            LuaValue::Number(x) => Arg::Float(*x),
            LuaValue::String(s) => {
                bytes = s.as_bytes();
                Arg::Str(&bytes)
            }
            LuaValue::Nil => Arg::Nil,
            _ => Arg::Other,
        };
        out.push(param(i, *kind, arg, budget)?);
    }
    Ok(out)
}

/// As [`params`], from a raw start's arguments: the kinds at `k`, the
/// values (or the one value) at `k + 1`.
fn raw_params(args: &Args, k: c_int, budget: &mut CopyBudget) -> Result<Vec<Param>, ProcError> {
    let kinds = args.bytes(k)?;
    let mut out = params_room(kinds)?;
    let vals = k + 1;
    let table = matches!(args.get(vals), Arg::Table);
    for (i, kind) in kinds.iter().enumerate() {
        let p = if table {
            let n = i64::try_from(i + 1).unwrap_or(i64::MAX);
            args.item(vals, n, |v| param(i, *kind, v, budget))
        } else if kinds.len() == 1 {
            param(i, *kind, args.get(vals), budget)
        } else {
            param(i, *kind, Arg::Nil, budget)
        };
        out.push(p?);
    }
    Ok(out)
}

/// Room for the parameters `kinds` names, refused past [`MAX_PARAMS`].
fn params_room(kinds: &[u8]) -> Result<Vec<Param>, ProcError> {
    if kinds.len() > MAX_PARAMS {
        return Err(invalid(format!("sql: more than {MAX_PARAMS} parameters")));
    }
    Ok(Vec::with_capacity(kinds.len()))
}

/// Parameter `i` (from 0) of kind `kind` (`n`, `b`, `i`, `f`, `t`, `x`),
/// its bytes taken from `budget` before they are copied.
fn param(i: usize, kind: u8, v: Arg<'_>, budget: &mut CopyBudget) -> Result<Param, ProcError> {
    if let (b't' | b'x', Arg::Str(s)) = (kind, v) {
        budget.take(s.len())?;
    }
    Ok(match (kind, v) {
        (b'n', _) => Param::Null,
        (b'b', Arg::Bool(b)) => Param::Bool(b),
        (b'i', Arg::Int(n)) => Param::Int(n),
        (b'f', Arg::Float(x)) => Param::Float(x),
        (b'f', Arg::Int(n)) => Param::Float(n as f64),
        (b't', Arg::Str(s)) => Param::Text(s.to_vec()),
        (b'x', Arg::Str(s)) => Param::Blob(s.to_vec()),
        _ => {
            return Err(invalid(format!(
                "sql: parameter {} does not match its type",
                i + 1
            )));
        }
    })
}

/// A query's limits: its result at most what `me` may hold, its rows'
/// bytes taken from `me`'s room (shared with its other calls in flight)
/// and its host's `memory_total` as they are built, and held (the room
/// travels with the value, [`result`]) until the process has them.
fn limits(core: &CoreRef, me: Pid) -> ResultLimits {
    let (held, max, quota) = super::room_parts(core, me);
    ResultLimits {
        max_bytes: usize::try_from(max).unwrap_or(usize::MAX),
        room: Some(ResultRoom::new(held, max, Some(quota))),
    }
}

/// A statement's value, kept counted by `room` (a query's) until the
/// process has it.
fn result(value: warren_core::Value, room: Option<Arc<ResultRoom>>) -> OpValue {
    match room {
        Some(room) => OpValue::Kept(value, Keep::new(room)),
        None => OpValue::Value(value),
    }
}

/// `H.sql_query(me, entry, target, sql, kinds, vals)`, a raw start (see
/// [`super::raw`]).
///
/// # Safety
///
/// Called by Lua as a closure made by [`super::raw::push`].
pub(super) unsafe extern "C-unwind" fn sql_query(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: see above.
    unsafe { super::raw::start(l, "sql", |c, args| start_run(c, args, true)) }
}

/// `H.sql_execute(me, entry, target, sql, kinds, vals)`, as [`sql_query`].
///
/// # Safety
///
/// As [`sql_query`].
pub(super) unsafe extern "C-unwind" fn sql_execute(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: see above.
    unsafe { super::raw::start(l, "sql", |c, args| start_run(c, args, false)) }
}

/// Starts the SQL at 4 on the target at 3 as a query (`rows`) or an
/// execute.
fn start_run(stepper: &Stepper, args: &Args, query: bool) -> Result<u64, ProcError> {
    let core = stepper.core();
    let id = args.int(1)?;
    let me = pid(id);
    let entry = args.text(2)?;
    let target = match args.get(3) {
        Arg::Str(id) => {
            let id = std::str::from_utf8(id).map_err(|_| not_utf8_id())?;
            Target::Db(database(core, me, entry, id)?)
        }
        Arg::Int(h) => tx_target(core, me, h)?,
        _ => return Err(invalid("sql: not a database or transaction")),
    };
    let mut budget = CopyBudget::of(core, me, "sql");
    let sql = args.bytes(4)?;
    budget.take(sql.len())?;
    let sql = sql_bytes(sql)?;
    let params = raw_params(args, 5, &mut budget)?;
    let meter = stepper.engine_meter(id)?;
    let run = Run {
        sql,
        params,
        held: budget.hold(),
        meter,
        query,
    };
    run_on(core, me, target, run)
}

/// One statement to start: its text and parameters, the bytes copied out
/// of the process for it (held as long as the statement's work), the
/// meter its engine time is charged to, and whether it is a query.
struct Run {
    sql: Arc<str>,
    params: Vec<Param>,
    held: Copied,
    meter: Option<Arc<EngineMeter>>,
    query: bool,
}

/// Starts `run` on `target`. A transaction's statements are charged to
/// the meter it began with, the same process's, whose allowance getting
/// `run.meter` has just set.
fn run_on(core: &CoreRef, me: Pid, target: Target, run: Run) -> Result<u64, ProcError> {
    let Run {
        sql,
        params,
        held,
        meter,
        query,
    } = run;
    let (owner, limits) = (me.as_u64(), limits(core, me));
    let room = query.then(|| limits.room.clone()).flatten();
    let what = if query { "sql query" } else { "sql execute" };
    let tx = match target {
        // A plain call goes to the database's own queue, and its result
        // from the driver's thread straight to this worker.
        Target::Db(db) => {
            let start = move |done: OpDone| -> Result<Box<dyn Fn() + Send>, ProcError> {
                let report = move |out: Result<_, ProcError>| {
                    drop(held);
                    done.complete(out.map(|v| result(v, room)));
                };
                let limits = query.then_some(limits);
                let stop = db.run_then(owner, meter, sql, params, limits, report)?;
                Ok(Box::new(move || stop.stop()))
            };
            return core
                .borrow_mut()
                .start_queued_op(me, what, SQL_CALL_DEADLINE, start);
        }
        Target::Tx(tx) => tx,
    };
    // A transaction's statement runs under the lease it holds.
    let make = move || async move {
        let _held = held;
        let value = if query {
            tx.query(&sql, params, &limits).await?
        } else {
            tx.execute(&sql, params).await?.to_value()
        };
        Ok(result(value, room))
    };
    core.borrow_mut()
        .start_op(me, what, SQL_CALL_DEADLINE, make)
}

/// A database id as the caller gave it: bytes that are not UTF-8 name no
/// database and are `INVALID` (returned, not raised, like any bad
/// argument; mlua's own conversion to `String` would raise instead).
fn db_id(id: &LuaString) -> Result<String, ProcError> {
    id.to_str().map(|s| s.to_owned()).map_err(|_| not_utf8_id())
}

fn not_utf8_id() -> ProcError {
    invalid("sql: the database id is not UTF-8 text")
}

/// Registers the `H.sql_*` functions.
pub(crate) fn register(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    let get = move |lua: &Lua, (me, entry, id): (i64, String, LuaString)| match db_id(&id)
        .and_then(|id| database(&c, pid(me), &entry, &id))
    {
        Ok(db) => (true, db.kind().name()).into_lua_multi(lua),
        Err(err) => refused(lua, &err),
    };
    h.set("sql_get", lua.create_function(get)?)?;
    register_handles(lua, h, core)?;
    register_tx(lua, h, core)
}

/// `H.sql_prepare`, `H.sql_stmt`, `H.sql_close`, `H.sql_stats`.
fn register_handles(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    let prepare = move |lua: &Lua, (me, entry, t, sql): (i64, String, LuaValue, LuaString)| {
        let me = pid(me);
        let start = || -> Result<u64, ProcError> {
            let target = target(&c, me, &entry, &t)?;
            let bytes = sql.as_bytes();
            // The text is held by the handle: counted while it lives.
            let mut budget = CopyBudget::of(&c, me, "sql");
            budget.take(bytes.len())?;
            let sql = sql_bytes(&bytes)?;
            let host = HostHeld::take(&c, me, bytes.len())?;
            let held = budget.hold();
            let owner = me.as_u64();
            let make = move || async move {
                match &target {
                    Target::Db(db) => db.prepare_check(owner, &sql).await?,
                    Target::Tx(tx) => tx.prepare_check(&sql).await?,
                }
                Ok(OpValue::Handle(Handle(Arc::new(StmtHandle {
                    sql,
                    target,
                    _held: held,
                    _host: host,
                }))))
            };
            c.borrow_mut()
                .start_op(me, "sql prepare", SQL_CALL_DEADLINE, make)
        };
        started(lua, start())
    };
    h.set("sql_prepare", lua.create_function(prepare)?)?;
    let c = core.clone();
    type StmtArgs = (i64, String, i64, String, LuaString, LuaValue);
    let stmt = move |lua: &Lua, (id, _entry, hid, action, kinds, vals): StmtArgs| {
        let me = pid(id);
        let start = || -> Result<u64, ProcError> {
            let handle = handle_id(hid).and_then(|h| c.borrow().handle(me, h));
            let Some(stmt) = handle.as_ref().and_then(|h| h.downcast::<StmtHandle>()) else {
                return Err(invalid("statement is closed"));
            };
            let mut budget = CopyBudget::of(&c, me, "sql");
            // The statement's own text, which its handle holds, is this
            // call's, not another call's in flight: it never turns the
            // call's own `INVALID` into `RATE_LIMITED`.
            let own = u64::try_from(stmt.sql.len()).unwrap_or(u64::MAX);
            budget.held = budget.held.saturating_sub(own);
            let params = params(&kinds, &vals, &mut budget)?;
            let run = Run {
                sql: stmt.sql.clone(),
                params,
                held: budget.hold(),
                meter: crate::quota::engine_meter(lua, id)?,
                query: action == "query",
            };
            run_on(&c, me, stmt.target.clone(), run)
        };
        started(lua, start())
    };
    h.set("sql_stmt", lua.create_function(stmt)?)?;
    let c = core.clone();
    let close = move |_: &Lua, (me, hid): (i64, i64)| {
        if let Some(handle) = take_if::<StmtHandle>(&c, pid(me), hid) {
            handle.0.close();
        }
        Ok(())
    };
    h.set("sql_close", lua.create_function(close)?)?;
    let c = core.clone();
    let stats =
        move |lua: &Lua, (me, entry, id): (i64, String, LuaString)| -> mlua::Result<MultiValue> {
            match db_id(&id).and_then(|id| database(&c, pid(me), &entry, &id)) {
                Ok(db) => crate::convert::to_lua(lua, &db.stats())?.into_lua_multi(lua),
                Err(err) => refused(lua, &err),
            }
        };
    h.set("sql_stats", lua.create_function(stats)?)
}

/// `H.sql_begin` and `H.sql_tx`.
fn register_tx(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    type BeginArgs = (i64, String, LuaString, String, bool);
    let begin = move |lua: &Lua, (raw, entry, id, isolation, read_only): BeginArgs| {
        let me = pid(raw);
        let start = || -> Result<u64, ProcError> {
            let db = database(&c, me, &entry, &db_id(&id)?)?;
            let isolation = Isolation::from_name(&isolation)?;
            let opts = TxOptions {
                isolation,
                read_only,
            };
            let (owner, meter) = (me.as_u64(), crate::quota::engine_meter(lua, raw)?);
            let make = move || async move {
                let tx = db.begin_metered(owner, opts, meter).await?;
                Ok(OpValue::Handle(Handle(Arc::new(TxHandle(tx)))))
            };
            c.borrow_mut()
                .start_op(me, "sql begin", SQL_CALL_DEADLINE, make)
        };
        started(lua, start())
    };
    h.set("sql_begin", lua.create_function(begin)?)?;
    let c = core.clone();
    type TxArgs = (i64, i64, String, Option<String>);
    let tx_call = move |lua: &Lua, (me, hid, action, name): TxArgs| {
        let me = pid(me);
        let start = || -> Result<u64, ProcError> {
            let ends = action == "commit" || action == "rollback";
            let handle = if ends {
                take_if::<TxHandle>(&c, me, hid)
            } else {
                handle_id(hid).and_then(|h| c.borrow().handle(me, h))
            };
            let Some(tx) = handle.as_ref().and_then(|h| h.downcast::<TxHandle>()) else {
                return Err(inactive());
            };
            let (tx, name) = (tx.0.clone(), name.unwrap_or_default());
            let make = move || async move {
                match action.as_str() {
                    "commit" => tx.commit().await?,
                    "rollback" => tx.rollback().await?,
                    "savepoint" => tx.savepoint(&name).await?,
                    "rollback_to" => tx.rollback_to(&name).await?,
                    _ => tx.release(&name).await?,
                }
                Ok(OpValue::Value(warren_core::Value::Bool(true)))
            };
            c.borrow_mut()
                .start_op(me, "sql transaction", SQL_CALL_DEADLINE, make)
        };
        started(lua, start())
    };
    h.set("sql_tx", lua.create_function(tx_call)?)
}

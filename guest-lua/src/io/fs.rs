//! The host functions behind the `fs` module (modules/fs.lua).
//!
//! Every call names its volume by id (the `fs.get` grant is checked on
//! each call, before anything is copied out of the process) and passes
//! the handle's working directory; warren-fs
//! resolves the path beneath the volume's root directory handle. File
//! operations block, so they run on the blocking lane
//! ([`warren_core::Core::start_blocking_op`]), never on a worker. Open
//! files are handles in the caller's table.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mlua::{IntoLuaMulti, Lua, LuaString, MultiValue, Table, Value as LuaValue};
use warren_core::grants::FS_GET;
use warren_core::{
    CoreRef, ErrorKind, Handle, Keep, OpValue, Pid, ProcError, Resource, Room, Value,
};
use warren_fs::{File, OpenMode, Volume, Whence, WriteMode};
use warren_sql::EngineMeter;

use super::{CopyBudget, handle_id, invalid, pid, reach, refused, started, take_if};

/// How long one file operation may take: every host call has a deadline,
/// so a hung network file system costs the caller a `TIMEOUT`.
pub(crate) const FS_CALL_DEADLINE: Duration = Duration::from_secs(60);

/// The application's volumes (`fs.directory` entries), shared with every
/// worker through [`warren_core::RuntimeBuilder::extension`].
#[derive(Default)]
pub struct Volumes {
    by_id: HashMap<String, Arc<Volume>>,
}

impl Volumes {
    /// No volumes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds volume `v` under its entry id.
    pub fn insert(&mut self, v: Arc<Volume>) {
        self.by_id.insert(v.id().to_owned(), v);
    }
}

/// An open file in a process's handle table.
struct FileHandle(Arc<Mutex<File>>);

impl Resource for FileHandle {
    fn kind(&self) -> &'static str {
        "file"
    }
    fn close(&self) {
        // Never wait for an operation in flight on the worker: close on
        // the blocking lane behind it.
        let file = self.0.clone();
        let lane = warren_core::blocking_lane();
        drop(lane.spawn(warren_core::SYSTEM_QUEUE, move || {
            file.lock().unwrap_or_else(PoisonError::into_inner).close();
        }));
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Volume `id` for `me`: shape, grant, then existence.
fn volume(core: &CoreRef, me: Pid, entry: &str, id: &str) -> Result<Arc<Volume>, ProcError> {
    reach(core, me, entry, (FS_GET, "fs", "volume"), id, |c| {
        c.extension::<Volumes>()?.by_id.get(id).cloned()
    })
}

fn text(v: &LuaString) -> String {
    v.to_string_lossy()
}

/// Runs `work` on the blocking lane as an operation of `me`; the bytes
/// `budget` took stay counted until the work ends or is dropped unrun.
/// With a `meter` (the host has a `cpu_budget`), the work's CPU time is
/// the process's, as its SQL statements' is, and a process past its
/// budget starts no more: a copy of a sparse terabyte ran on the lane
/// for minutes under a 1 s budget, charged to no one.
fn blocking<F>(
    core: &CoreRef,
    me: Pid,
    (what, meter): (&'static str, Option<Arc<EngineMeter>>),
    budget: CopyBudget,
    work: F,
) -> Result<u64, ProcError>
where
    F: FnOnce() -> Result<OpValue, ProcError> + Send + 'static,
{
    if meter.as_ref().is_some_and(|m| m.exhausted()) {
        return Err(ProcError::new(
            ErrorKind::RateLimited,
            format!("{what}: the process's cpu budget is spent"),
        ));
    }
    let held = budget.hold();
    let work = move || {
        let _held = held;
        match meter {
            Some(m) => m.metered(work),
            None => work(),
        }
    };
    core.borrow_mut()
        .start_blocking_op(me, what, FS_CALL_DEADLINE, work)
}

/// `bytes` copied into a buffer of [`warren_core::bufpool`] (which the
/// work hands back when it has written them).
fn pooled(bytes: &[u8]) -> Vec<u8> {
    let mut buf = warren_core::bufpool::take(bytes.len());
    buf.extend_from_slice(bytes);
    buf
}

fn value(v: Value) -> Result<OpValue, ProcError> {
    Ok(OpValue::Value(v))
}

/// Bytes a read took from its process's room (what its calls in flight
/// hold, at most its `memory_per_process`, and its host's
/// `memory_total`), given back once the process has the value or the
/// value is dropped. Reads held their files in host memory no limit
/// counted: 63 reads of a 60 MiB file peaked at 9 GB.
struct Taken {
    room: Room,
    bytes: u64,
}

impl Taken {
    /// Takes `bytes` more, or `RATE_LIMITED` naming `what` and nothing.
    fn more(&mut self, bytes: u64, what: &str) -> Result<(), ProcError> {
        self.room.try_take(bytes).map_err(|full| {
            let mut e = ProcError::new(
                ErrorKind::RateLimited,
                format!("{what}: {bytes} bytes do not fit: {full}"),
            );
            e.retryable = true;
            e
        })?;
        self.bytes += bytes;
        Ok(())
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        self.room.give(self.bytes);
    }
}

/// `v`, kept counted by `taken` until the process has it.
fn kept(v: Value, taken: Taken) -> Result<OpValue, ProcError> {
    Ok(OpValue::Kept(v, Keep::new(taken)))
}

/// The room `me`'s reads take their bytes from.
fn read_room(core: &CoreRef, me: Pid) -> Room {
    let (held, limit, quota) = super::room_parts(core, me);
    Room::new(held, limit, Some(quota))
}

/// Reads the file at `p`: its stated size taken from `room` first, and
/// what it grew to past that while it was read.
fn read_counted(
    vol: &Volume,
    cwd: &str,
    p: &str,
    max: usize,
    room: Room,
) -> Result<OpValue, ProcError> {
    let what = format!("readfile '{p}'");
    let mut taken = Taken { room, bytes: 0 };
    // A file over `max` is refused by `read_file` itself (INVALID, with
    // the limit), as before; one within it takes its size first.
    let stated = vol.stat(cwd, p).map_or(0, |s| s.size);
    if stated <= u64::try_from(max).unwrap_or(u64::MAX) {
        taken.more(stated, &what)?;
    }
    let data = vol.read_file(cwd, p, max)?;
    let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
    if len > taken.bytes {
        taken.more(len - taken.bytes, &what)?;
    }
    kept(Value::Str(data), taken)
}

/// The work of volume operation `op` on `p` (with arguments `a`, `b`).
#[expect(
    clippy::too_many_arguments,
    reason = "one operation's parts, each named"
)]
fn volume_work(
    vol: Arc<Volume>,
    cwd: String,
    op: &str,
    p: String,
    a: Option<Vec<u8>>,
    b: Option<String>,
    max: usize,
    room: Room,
) -> Result<Work, ProcError> {
    Ok(match op {
        "read" => Box::new(move || read_counted(&vol, &cwd, &p, max, room)),
        "write" => {
            let mode = WriteMode::parse(b.as_deref().unwrap_or("w"))?;
            let data = a.unwrap_or_default();
            Box::new(move || {
                let written = vol.write_file(&cwd, &p, &data, mode);
                warren_core::bufpool::give(data);
                written?;
                value(Value::Bool(true))
            })
        }
        "exists" => Box::new(move || value(Value::Bool(vol.exists(&cwd, &p)?))),
        "isdir" => Box::new(move || value(Value::Bool(vol.is_dir(&cwd, &p)?))),
        "stat" => Box::new(move || value(vol.stat(&cwd, &p)?.to_value())),
        "mkdir" => Box::new(move || vol.mkdir(&cwd, &p).and_then(|()| value(Value::Bool(true)))),
        "remove" => Box::new(move || vol.remove(&cwd, &p).and_then(|()| value(Value::Bool(true)))),
        "chdir" => Box::new(move || value(Value::str(vol.resolve_dir(&cwd, &p)?))),
        "readdir" => Box::new(move || {
            let list = vol.read_dir(&cwd, &p, warren_fs::MAX_DIR_ENTRIES)?;
            // Its names are held until the process has them, as a read's
            // bytes (65,536 names of up to 255 bytes).
            let mut taken = Taken { room, bytes: 0 };
            let bytes = list.iter().map(|(name, _)| name.len() as u64 + 32).sum();
            taken.more(bytes, &format!("readdir '{p}'"))?;
            let entries = list.into_iter().map(|(name, dir)| {
                let kind = if dir {
                    warren_fs::TYPE_DIR
                } else {
                    warren_fs::TYPE_FILE
                };
                Value::Map(vec![
                    (Value::str("name"), Value::str(name)),
                    (Value::str("type"), Value::str(kind)),
                ])
            });
            kept(Value::Array(entries.collect()), taken)
        }),
        other => return Err(invalid(format!("fs: unknown operation '{other}'"))),
    })
}

/// `H.fs_op(me, entry, id, cwd, op, p[, a[, b]])`: starts volume operation
/// `op` on path `p` (see [`volume_work`]), a raw start (see [`super::raw`]).
///
/// # Safety
///
/// Called by Lua as a closure made by [`super::raw::push`].
pub(super) unsafe extern "C-unwind" fn fs_op(l: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    // SAFETY: see above.
    unsafe { super::raw::start(l, "fs", op_start) }
}

fn op_start(stepper: &crate::step::Stepper, args: &super::raw::Args) -> Result<u64, ProcError> {
    let core = stepper.core();
    let me = pid(args.int(1)?);
    let (entry, id, cwd, op) = (args.text(2)?, args.text(3)?, args.text(4)?, args.text(5)?);
    let (path, data, mode) = (args.bytes(6)?, args.opt_bytes(7)?, args.opt_bytes(8)?);
    // The grant before any copy: a volume handle whose `_id` was rewritten
    // must not make the host copy its data before it is refused.
    let vol = volume(core, me, entry, id)?;
    // And the volume's mode, for the same reason; a bad write mode is left
    // to `volume_work` (its shape comes first, and its message quotes it).
    if op == "write" && matches!(mode.unwrap_or(b"w"), b"w" | b"a" | b"wx") {
        vol.check_write(cwd, &String::from_utf8_lossy(path))?;
    }
    let mut budget = CopyBudget::of(core, me, "fs");
    for part in [Some(cwd.as_bytes()), Some(path), data, mode]
        .into_iter()
        .flatten()
    {
        budget.take(part.len())?;
    }
    let path = String::from_utf8_lossy(path).into_owned();
    let data = data.map(pooled);
    let mode = mode.map(|b| String::from_utf8_lossy(b).into_owned());
    let max =
        usize::try_from(core.borrow().quota_of(me).limits.memory_per_process).unwrap_or(usize::MAX);
    let room = read_room(core, me);
    let work = volume_work(vol, cwd.to_owned(), op, path, data, mode, max, room)?;
    let meter = stepper.engine_meter(args.int(1)?)?;
    blocking(core, me, ("fs call", meter), budget, work)
}

fn file_of(core: &CoreRef, me: Pid, hid: i64) -> Result<Arc<Mutex<File>>, ProcError> {
    let handle = handle_id(hid).and_then(|h| core.borrow().handle(me, h));
    match handle.as_ref().and_then(|h| h.downcast::<FileHandle>()) {
        Some(f) => Ok(f.0.clone()),
        None => Err(ProcError::new(ErrorKind::Internal, "file is closed")),
    }
}

/// Registers the `H.fs_*` functions.
pub(crate) fn register(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    let get =
        move |lua: &Lua, (me, entry, id): (i64, String, String)| -> mlua::Result<MultiValue> {
            match volume(&c, pid(me), &entry, &id) {
                Ok(_) => true.into_lua_multi(lua),
                Err(err) => refused(lua, &err),
            }
        };
    h.set("fs_get", lua.create_function(get)?)?;
    register_files(lua, h, core)
}

/// `H.fs_open`, `H.fs_file`, `H.fs_close`, `H.fs_alive`.
fn register_files(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    type OpenArgs = (i64, String, String, String, LuaString, String);
    let open = move |lua: &Lua, (raw, entry, id, cwd, p, mode): OpenArgs| {
        let me = pid(raw);
        let start = || -> Result<u64, ProcError> {
            let vol = volume(&c, me, &entry, &id)?;
            let mode = OpenMode::parse(&mode)?;
            let mut budget = CopyBudget::of(&c, me, "fs");
            budget.take(p.as_bytes().len().saturating_add(cwd.len()))?;
            let p = text(&p);
            let meter = crate::quota::engine_meter(lua, raw)?;
            blocking(&c, me, ("fs open", meter), budget, move || {
                let file = vol.open_file(&cwd, &p, mode)?;
                Ok(OpValue::Handle(Handle(Arc::new(FileHandle(Arc::new(
                    Mutex::new(file),
                ))))))
            })
        };
        started(lua, start())
    };
    h.set("fs_open", lua.create_function(open)?)?;
    let c = core.clone();
    let file_op = move |lua: &Lua, (raw, hid, op, a, b): (i64, i64, String, LuaValue, LuaValue)| {
        let me = pid(raw);
        let start = || -> Result<u64, ProcError> {
            let file = file_of(&c, me, hid)?;
            let mut budget = CopyBudget::of(&c, me, "fs");
            if let LuaValue::String(data) = &a {
                budget.take(data.as_bytes().len())?;
            }
            let work = file_call(file, &op, &a, &b)?;
            let meter = crate::quota::engine_meter(lua, raw)?;
            blocking(&c, me, ("fs file call", meter), budget, work)
        };
        started(lua, start())
    };
    h.set("fs_file", lua.create_function(file_op)?)?;
    let c = core.clone();
    let close = move |_: &Lua, (me, hid): (i64, i64)| {
        // Only a file: an id naming another kind of handle closes nothing.
        if let Some(handle) = take_if::<FileHandle>(&c, pid(me), hid) {
            handle.0.close();
        }
        Ok(())
    };
    h.set("fs_close", lua.create_function(close)?)?;
    let c = core.clone();
    let alive = move |_: &Lua, (me, hid): (i64, i64)| Ok(file_of(&c, pid(me), hid).is_ok());
    h.set("fs_alive", lua.create_function(alive)?)
}

type Work = Box<dyn FnOnce() -> Result<OpValue, ProcError> + Send>;

fn locked(file: &Mutex<File>) -> std::sync::MutexGuard<'_, File> {
    file.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The work of file operation `op` with arguments `a`, `b`.
fn file_call(
    file: Arc<Mutex<File>>,
    op: &str,
    a: &LuaValue,
    b: &LuaValue,
) -> Result<Work, ProcError> {
    Ok(match op {
        "read" => {
            let n = match a {
                LuaValue::Integer(n) if *n >= 0 => usize::try_from(*n).unwrap_or(usize::MAX),
                _ => return Err(invalid("file:read: n must be a non-negative integer")),
            }
            .min(warren_fs::MAX_READ_CHUNK);
            Box::new(move || {
                let data = locked(&file).read(n)?;
                value(data.map_or(Value::Bool(false), Value::Str))
            })
        }
        "write" => {
            let LuaValue::String(s) = a else {
                return Err(invalid("file:write: data must be a string"));
            };
            let data = pooled(&s.as_bytes());
            Box::new(move || {
                let written = locked(&file).write(&data);
                warren_core::bufpool::give(data);
                written.and_then(|()| value(Value::Bool(true)))
            })
        }
        "seek" => {
            let whence = match a {
                LuaValue::String(w) => Whence::parse(&w.to_string_lossy())?,
                _ => return Err(invalid("file:seek: whence must be fs.seek.SET, CUR or END")),
            };
            let LuaValue::Integer(offset) = *b else {
                return Err(invalid("file:seek: offset must be an integer"));
            };
            Box::new(move || {
                let pos = locked(&file).seek(whence, offset)?;
                value(Value::Int(i64::try_from(pos).unwrap_or(i64::MAX)))
            })
        }
        "stat" => Box::new(move || value(locked(&file).stat()?.to_value())),
        "remaining" => Box::new(move || {
            let left = locked(&file).remaining()?;
            value(Value::Int(i64::try_from(left).unwrap_or(i64::MAX)))
        }),
        "sync" => Box::new(move || locked(&file).sync().and_then(|()| value(Value::Bool(true)))),
        other => return Err(invalid(format!("fs: unknown file operation '{other}'"))),
    })
}

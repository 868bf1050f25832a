//! Host functions behind the Wippy modules that need more than the process
//! model: `io` (the terminal; see terminal.rs), `registry` (the
//! application's entries, read-only), and the MessagePack transcoding of
//! `payload`. Each checks its arguments before it does any work, and
//! every copy out of a process is bounded by that process's limits.

use mlua::{Lua, LuaString, Table, Value as LuaValue};
use tracing::Level;
use warren_core::logline::log_line;
use warren_core::{CoreRef, ErrorKind, ProcError};

use crate::convert::{Budget, from_lua, to_lua};
use crate::host::{Wrapped, ok_or_failure, pid_of, str_value};
use crate::terminal::{self, ReadKind};

/// Registers the `H.io_*`, `H.registry_entries` and `H.msgpack_*` functions.
pub(crate) fn register(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    register_io(lua, h, core)?;
    register_registry(lua, h, core)?;
    register_bus(lua, h, core)?;
    register_time(lua, h)?;
    register_translate(lua, h)?;
    register_logger(lua, h, core)?;
    let data = lua.create_table()?;
    for (name, module) in crate::data::data_modules(lua)? {
        data.raw_set(name, module)?;
    }
    h.set("data_modules", data)?;
    // The error kinds, host name -> Lua (Wippy's) name: the kernel's
    // `errors` module is built from this, the one list (warren-core's).
    let kinds = lua.create_table()?;
    for kind in ErrorKind::ALL {
        kinds.raw_set(kind.name(), kind.lua_name())?;
    }
    h.set("error_kinds", kinds)?;
    // Topics: the core's one rule (reserved, too long) for the kernel's
    // same-VM sends and listens.
    h.set("max_topic_bytes", warren_core::limits::MAX_TOPIC_BYTES)?;
    // Pids: the longest text, for the kernel's lookups by text.
    h.set("pid_text_max", warren_core::pid::TEXT_MAX)?;
    h.set(
        "max_payloads",
        warren_core::limits::MAX_PAYLOADS_PER_MESSAGE,
    )?;
    let refused = lua.create_function(|_, topic: LuaString| {
        Ok(warren_core::limits::topic_refused(&topic.as_bytes()))
    })?;
    h.set("topic_refused", refused)?;
    crate::io::register(lua, h, core)?;
    register_msgpack(lua, h, core)
}

/// `H.log_named(me, level, line, logger, location)`: a `logger` line in
/// the host's log, with the logger's name and `entry-id:line`.
fn register_logger(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    type Args = (i64, LuaString, LuaString, LuaString, LuaString);
    let log = move |_: &Lua, (me, level, line, name, location): Args| {
        let pid = pid_of(me);
        let level = match &*level.to_str()? {
            "error" => Level::ERROR,
            "warn" => Level::WARN,
            "debug" => Level::DEBUG,
            _ => Level::INFO,
        };
        // Each piece cut and without line breaks, and the whole line
        // within its host's log budget, as `print`'s (`H.log`).
        let (line, name) = (line.to_string_lossy(), name.to_string_lossy());
        let location = location.to_string_lossy();
        let (line, name) = (log_line(&line), log_line(&name));
        let location = log_line(&location);
        let core = c.borrow();
        let quota = core.quota_of(pid);
        if !quota.admit_log(level, line.len() + name.len() + location.len()) {
            return Ok(());
        }
        let host = &quota.name;
        // The root logger has no name: the field is left out.
        let logger = (!name.is_empty()).then(|| tracing::field::display(&*name));
        match level {
            Level::ERROR => {
                tracing::error!(target: "warren::lua", %pid, %host, logger, %location, "{line}")
            }
            Level::WARN => {
                tracing::warn!(target: "warren::lua", %pid, %host, logger, %location, "{line}")
            }
            Level::DEBUG => {
                tracing::debug!(target: "warren::lua", %pid, %host, logger, %location, "{line}")
            }
            _ => {
                tracing::info!(target: "warren::lua", %pid, %host, logger, %location, "{line}")
            }
        }
        Ok(())
    };
    h.set("log_named", lua.create_function(log)?)
}

/// Longest text `load` translates from Wippy's typed dialect: translation
/// runs in one host call, so this bounds how long it holds the worker
/// (about 2 ms per 1,000 lines). Longer text is loaded as plain Lua.
const MAX_LOAD_TRANSLATE: usize = 1 << 20;

/// `H.translate(text)`: the typed dialect erased to plain Lua (same lines)
/// and, when it reads types as values, its `__warren_types` — the text is
/// then `return function(__warren_types) return function(...) <chunk> end
/// end` (lines kept: the wrapper is on the first line and after the last),
/// to be called once with the types; or nil, nil and `line:column: message
/// [code]`. Text over the limit comes back as it is.
fn register_translate(lua: &Lua, h: &Table) -> mlua::Result<()> {
    type Out = (LuaValue, LuaValue, LuaValue);
    let translate = |lua: &Lua, text: LuaString| -> mlua::Result<Out> {
        let bytes = text.as_bytes();
        let as_is = || Ok((LuaValue::String(text.clone()), LuaValue::Nil, LuaValue::Nil));
        if bytes.len() > MAX_LOAD_TRANSLATE {
            return as_is();
        }
        let Ok(source) = std::str::from_utf8(&bytes) else {
            // Not UTF-8: no type syntax to erase; Lua reads it as it is.
            return as_is();
        };
        match warren_lua_dialect::translate(source) {
            Ok(t) if t.needs_types => {
                let types =
                    crate::host::type_values(lua, Some(&t.types)).map_err(mlua::Error::runtime)?;
                let wrapped = format!(
                    "return function(__warren_types) return function(...) {}\n end end",
                    t.lua
                );
                Ok((
                    LuaValue::String(lua.create_string(wrapped)?),
                    types,
                    LuaValue::Nil,
                ))
            }
            Ok(t) => Ok((
                LuaValue::String(lua.create_string(&t.lua)?),
                LuaValue::Nil,
                LuaValue::Nil,
            )),
            Err(d) => Ok((
                LuaValue::Nil,
                LuaValue::Nil,
                str_value(lua, &d.to_string())?,
            )),
        }
    };
    h.set("translate", lua.create_function(translate)?)
}

/// `H.parse_time(layout, value, offset)` and `H.date(y, mo, d, h, mi, s,
/// ns, offset)`: Unix nanoseconds, or nil and Go's error text.
fn register_time(lua: &Lua, h: &Table) -> mlua::Result<()> {
    let parse = |lua: &Lua, (layout, value, offset): (LuaString, LuaString, i64)| {
        let (layout, value) = (layout.to_string_lossy(), value.to_string_lossy());
        Ok(match crate::timeparse::parse_in(&layout, &value, offset) {
            Ok(ns) => (LuaValue::Integer(ns), LuaValue::Nil),
            Err(e) => (LuaValue::Nil, str_value(lua, &e)?),
        })
    };
    h.set("parse_time", lua.create_function(parse)?)?;
    type DateArgs = (i64, i64, i64, i64, i64, i64, i64, i64);
    let date = |lua: &Lua, (y, mo, d, hh, mi, s, ns, off): DateArgs| {
        Ok(match crate::timeparse::date(y, mo, d, hh, mi, s, ns, off) {
            Ok(ns) => (LuaValue::Integer(ns), LuaValue::Nil),
            Err(e) => (LuaValue::Nil, str_value(lua, &e)?),
        })
    };
    h.set("date", lua.create_function(date)?)
}

/// `H.bus_subscribe`, `H.bus_unsubscribe`, `H.bus_send`: the event bus
/// (warren-core's bus.rs); a send's data is copied only after the host has
/// checked its strings and said how many bytes it may take.
fn register_bus(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    let subscribe = move |lua: &Lua, (me, pattern, kind): (i64, LuaString, Option<LuaString>)| {
        let result = (|| -> Result<i64, Wrapped> {
            let kind = kind.as_ref().map(|k| k.to_str()).transpose()?;
            let id =
                c.borrow_mut()
                    .bus_subscribe(pid_of(me), &pattern.to_str()?, kind.as_deref())?;
            Ok(i64::try_from(id).unwrap_or(i64::MAX))
        })();
        ok_or_failure(lua, result)
    };
    h.set("bus_subscribe", lua.create_function(subscribe)?)?;
    let c = core.clone();
    let unsubscribe = move |_: &Lua, (me, id): (i64, i64)| {
        let id = u64::try_from(id).unwrap_or(u64::MAX);
        Ok(c.borrow_mut().bus_unsubscribe(pid_of(me), id))
    };
    h.set("bus_unsubscribe", lua.create_function(unsubscribe)?)?;
    let c = core.clone();
    type SendArgs = (i64, LuaString, LuaString, LuaString, LuaValue);
    let send = move |lua: &Lua, (me, system, kind, path, data): SendArgs| {
        let result = (|| -> Result<bool, Wrapped> {
            let (system, kind, path) = (system.to_str()?, kind.to_str()?, path.to_str()?);
            let budget = c
                .borrow()
                .bus_send_budget(pid_of(me), &system, &kind, &path)?;
            let data = from_lua(lua, &data, "data", Budget::message(budget))
                .map_err(|e| ProcError::new(ErrorKind::Invalid, e.to_string()))?;
            c.borrow_mut()
                .bus_send(pid_of(me), &system, &kind, &path, data)?;
            Ok(true)
        })();
        ok_or_failure(lua, result)
    };
    h.set("bus_send", lua.create_function(send)?)
}

fn no_terminal() -> Wrapped {
    Wrapped(ProcError::new(
        ErrorKind::Unavailable,
        "no terminal: io works only in processes of a terminal.host",
    ))
}

fn io_error(what: &str, err: impl std::fmt::Display) -> Wrapped {
    Wrapped(ProcError::new(
        ErrorKind::Internal,
        format!("{what}: {err}"),
    ))
}

fn register_io(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let terminal = core.borrow().quota().terminal;
    let write = move |lua: &Lua, (to_stderr, text): (bool, LuaString)| {
        let result = if terminal {
            terminal::write(to_stderr, &text.as_bytes()).map_err(|e| io_error("io.write", e))
        } else {
            Err(no_terminal())
        };
        ok_or_failure(lua, result.map(|()| true))
    };
    h.set("io_write", lua.create_function(write)?)?;
    let flush = move |lua: &Lua, ()| {
        let result = if terminal {
            terminal::flush().map_err(|e| io_error("io.flush", e))
        } else {
            Err(no_terminal())
        };
        ok_or_failure(lua, result.map(|()| true))
    };
    h.set("io_flush", lua.create_function(flush)?)?;
    let c = core.clone();
    let request = move |lua: &Lua, (me, line, n): (i64, bool, i64)| {
        let result = if terminal {
            let kind = if line {
                ReadKind::Line
            } else {
                // Wippy: n <= 0 reads the default 1024 bytes.
                let n = usize::try_from(n).ok().filter(|n| *n > 0).unwrap_or(1024);
                ReadKind::Bytes(n.min(terminal::MAX_READ))
            };
            let waker = c.borrow().waker(pid_of(me));
            terminal::request(pid_of(me), kind, waker).map_err(|e| io_error("io.read", e))
        } else {
            Err(no_terminal())
        };
        ok_or_failure(lua, result.map(|()| true))
    };
    h.set("io_request", lua.create_function(request)?)?;
    // H.io_take(me): false while the read is pending; else text (nil at
    // end of input) and an error message.
    let take = |lua: &Lua, me: i64| -> mlua::Result<(LuaValue, LuaValue)> {
        Ok(match terminal::take(pid_of(me)) {
            None => (LuaValue::Boolean(false), LuaValue::Nil),
            Some(Ok(Some(bytes))) => (LuaValue::String(lua.create_string(bytes)?), LuaValue::Nil),
            Some(Ok(None)) => (LuaValue::Nil, LuaValue::Nil),
            Some(Err(e)) => (LuaValue::Nil, str_value(lua, &e)?),
        })
    };
    h.set("io_take", lua.create_function(take)?)?;
    let args =
        |lua: &Lua, ()| lua.create_sequence_from(terminal::args().iter().map(String::as_str));
    h.set("io_args", lua.create_function(args)?)?;
    h.set("terminal", terminal)
}

fn register_registry(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let entries = core.borrow().entries().clone();
    // A fresh copy per call: a process may change what it gets.
    let list = move |lua: &Lua, ()| {
        let out = lua.create_table_with_capacity(entries.len(), 0)?;
        for (i, e) in entries.iter().enumerate() {
            let t = lua.create_table_with_capacity(0, 4)?;
            t.raw_set("id", e.id.as_str())?;
            t.raw_set("kind", e.kind.as_str())?;
            t.raw_set("meta", to_lua(lua, &e.meta)?)?;
            t.raw_set("data", to_lua(lua, &e.data)?)?;
            out.raw_set(i + 1, t)?;
        }
        Ok(out)
    };
    h.set("registry_entries", lua.create_function(list)?)
}

/// Most bytes a MessagePack transcoding copies out of a process (as
/// `wire_size` counts them): one host call holds the worker for the copy.
const MAX_MSGPACK_BYTES: u64 = 2 << 20;

/// Longest MessagePack a payload decodes: one byte can be one value, and the
/// whole tree is built in one host call (outside the process's memory
/// limit until it is converted), so this bounds that call's time and
/// host memory.
const MAX_MSGPACK_DECODE: usize = 256 << 10;

fn register_msgpack(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let per_process = core.borrow().quota().limits.memory_per_process;
    let budget = Budget {
        bytes: usize::try_from(per_process.min(MAX_MSGPACK_BYTES)).unwrap_or(usize::MAX),
        name: "the MessagePack limit",
        floor: 1,
    };
    let encode = move |lua: &Lua, v: LuaValue| {
        let result = from_lua(lua, &v, "value", budget)
            .map(|value| lua.create_string(warren_core::msgpack::encode(&value)))
            .map_err(|e| Wrapped(ProcError::new(ErrorKind::Invalid, e.to_string())));
        match result {
            Ok(s) => ok_or_failure(lua, Ok::<_, Wrapped>(s?)),
            Err(e) => ok_or_failure::<LuaString>(lua, Err(e)),
        }
    };
    h.set("msgpack_encode", lua.create_function(encode)?)?;
    let decode = |lua: &Lua, s: LuaString| -> mlua::Result<(LuaValue, LuaValue)> {
        let bytes = s.as_bytes();
        if bytes.len() > MAX_MSGPACK_DECODE {
            let e = format!(
                "MessagePack of {} bytes is over the {MAX_MSGPACK_DECODE}-byte limit",
                bytes.len()
            );
            return Ok((LuaValue::Nil, str_value(lua, &e)?));
        }
        match warren_core::msgpack::decode(&bytes) {
            // A value the decoder takes but Lua cannot hold (nested past
            // the conversion's depth) is an error of the data, answered
            // as the others are; a memory error still ends the process.
            Ok(v) => match to_lua(lua, &v) {
                Ok(v) => Ok((v, LuaValue::Nil)),
                Err(e @ mlua::Error::MemoryError(_)) => Err(e),
                Err(_) => {
                    let e = "a value nested too deeply to convert";
                    Ok((LuaValue::Nil, str_value(lua, e)?))
                }
            },
            Err(e) => Ok((LuaValue::Nil, str_value(lua, &e)?)),
        }
    };
    h.set("msgpack_decode", lua.create_function(decode)?)?;
    Ok(())
}

//! The host function behind the `env` module (modules/env.lua).
//!
//! Checks run in the contract's order: the name's shape (`INVALID`), the
//! grant on the name as given or on the variable it means — its public
//! name or its entry id — (`PERMISSION_DENIED`, the same whether the
//! variable exists or not), then existence (`NOT_FOUND`). Storages may be
//! files, so every call runs on the blocking lane.

use std::sync::Arc;
use std::time::Duration;

use mlua::{Lua, LuaString, Table};
use warren_core::grants::{ENV_GET, ENV_SET};
use warren_core::{Core, CoreRef, ErrorKind, Grants, OpValue, Pid, ProcError, Value};
use warren_env::{Env, MAX_NAME_LEN, MAX_VALUE_BYTES, VariableDef};

use super::{denied, grants_of, invalid, pid, started};

/// How long one call may take (a file storage on a hung disk).
pub(crate) const ENV_CALL_DEADLINE: Duration = Duration::from_secs(30);

/// Whether `grants` allow `action` on `name` as written or on `var`.
fn allows(grants: &Grants, action: &str, name: &str, var: Option<&VariableDef>) -> bool {
    grants.allows(action, name)
        || var.is_some_and(|v| {
            grants.allows(action, &v.id)
                || v.variable
                    .as_deref()
                    .is_some_and(|n| grants.allows(action, n))
        })
}

/// The namespace of entry id `entry` (`app.env:main` → `app.env`).
fn namespace(entry: &str) -> &str {
    entry.rsplit_once(':').map_or("", |(ns, _)| ns)
}

fn not_found(name: &str) -> ProcError {
    ProcError::new(ErrorKind::NotFound, format!("variable '{name}' is not set"))
}

/// The variable `name` means for `me`, once shape and grant allow it.
fn variable(
    env: &Env,
    grants: &Grants,
    action: &str,
    name: &str,
    entry: &str,
) -> Result<VariableDef, ProcError> {
    warren_env::check_name(name)?;
    let var = env.lookup(name, namespace(entry));
    if !allows(grants, action, name, var) {
        return Err(denied(action, name));
    }
    var.cloned().ok_or_else(|| not_found(name))
}

fn env_of(core: &Core) -> Result<Arc<Env>, ProcError> {
    core.extension::<Env>()
        .ok_or_else(|| ProcError::new(ErrorKind::NotFound, "no variables are declared"))
}

type Work = Box<dyn FnOnce() -> Result<Value, ProcError> + Send>;

/// The work of `env.get`, `env.set` or `env.get_all` for `me`.
fn work(
    core: &CoreRef,
    me: Pid,
    entry: &str,
    op: &str,
    name: Option<String>,
    value: Option<&LuaString>,
) -> Result<Work, ProcError> {
    let core = core.borrow();
    let grants = grants_of(&core, me, entry);
    let name = name.unwrap_or_default();
    match op {
        "get" | "set" if name.is_empty() => Err(invalid(format!(
            "env.{op}: the name must be a non-empty string"
        ))),
        "get" => {
            let env = env_of(&core).map_err(|_| denied_or_missing(&grants, ENV_GET, &name))?;
            let var = variable(&env, &grants, ENV_GET, &name, entry)?;
            Ok(Box::new(move || match env.get(&var)? {
                Some(v) => Ok(Value::str(v)),
                None => Err(not_found(&name)),
            }))
        }
        "set" => {
            let env = env_of(&core).map_err(|_| denied_or_missing(&grants, ENV_SET, &name))?;
            let var = variable(&env, &grants, ENV_SET, &name, entry)?;
            bounded(value, MAX_VALUE_BYTES, || {
                format!("a value of variable '{name}' is limited to {MAX_VALUE_BYTES} bytes")
            })?;
            let value = value.map(|v| v.to_string_lossy()).unwrap_or_default();
            Ok(Box::new(move || {
                env.set(&var, &value).map(|()| Value::Bool(true))
            }))
        }
        _ => {
            let Ok(env) = env_of(&core) else {
                return Ok(Box::new(|| Ok(Value::Map(Vec::new()))));
            };
            Ok(Box::new(move || get_all(&env, &grants)))
        }
    }
}

/// Without any declared variable: denied unless granted, then not found.
fn denied_or_missing(grants: &Grants, action: &str, name: &str) -> ProcError {
    if grants.allows(action, name) {
        not_found(name)
    } else {
        denied(action, name)
    }
}

/// Every declared variable the grants let the caller read, with a value.
fn get_all(env: &Env, grants: &Grants) -> Result<Value, ProcError> {
    let mut out = Vec::new();
    for var in env.variables() {
        let name = env.name_of(var);
        if !allows(grants, ENV_GET, name, Some(var)) {
            continue;
        }
        if let Some(v) = env.get(var)? {
            out.push((Value::str(name), Value::str(v)));
        }
    }
    Ok(Value::Map(out))
}

/// `INVALID` (`why`) when `s` is longer than `max` bytes.
fn bounded(s: Option<&LuaString>, max: usize, why: impl Fn() -> String) -> Result<(), ProcError> {
    match s {
        Some(s) if s.as_bytes().len() > max => Err(ProcError::new(ErrorKind::Invalid, why())),
        _ => Ok(()),
    }
}

/// Registers `H.env_call(me, entry, op, name, value)`.
pub(crate) fn register(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    type Args = (i64, String, String, Option<LuaString>, Option<LuaString>);
    let call = move |lua: &Lua, (me, entry, op, name, value): Args| {
        let me = pid(me);
        let start = || -> Result<u64, ProcError> {
            // A name's length before it is copied (a name past it is
            // refused first, as `check_name` does); a value's is checked by
            // `work` after the grant, before it is copied: a megabyte's
            // name or value was copied, and queued, before it was refused.
            bounded(name.as_ref(), MAX_NAME_LEN, || {
                format!("variable name is longer than {MAX_NAME_LEN} bytes")
            })?;
            let name = name.map(|s| s.to_string_lossy());
            let work = work(&c, me, &entry, &op, name, value.as_ref())?;
            let work = move || work().map(OpValue::Value);
            c.borrow_mut()
                .start_blocking_op(me, "env call", ENV_CALL_DEADLINE, work)
        };
        started(lua, start())
    };
    h.set("env_call", lua.create_function(call)?)
}

//! The host functions behind the `funcs` module (modules/funcs.lua).
//!
//! Checks run in the contract's order: the id's shape (`INVALID`), the
//! `funcs.call` grant for a function of another namespace
//! (`PERMISSION_DENIED`, the same whether it exists or not), then the
//! entry's existence (`NOT_FOUND`) and kind (`INVALID`). Only then are the
//! context and arguments copied, within the caller's `max_message_bytes`,
//! and the call started through
//! [`Core::call_function`](warren_core::Core::call_function).

use std::time::Duration;

use mlua::{IntoLuaMulti, Lua, LuaString, Table, Value as LuaValue, Variadic};
use warren_core::grants::{FUNCS_CALL, namespace_of};
use warren_core::{CoreRef, FunctionCall, Pid, ProcError, Value};

use super::{denied, granted, invalid, pid, started};
use crate::convert::{Budget, Converter};
use crate::host::convert_all;

/// Starts a call of `target` for `me`, whose entry is `entry`.
fn start(
    lua: &Lua,
    core: &CoreRef,
    me: Pid,
    entry: &str,
    target: &str,
    (ctx, timeout_ns): (LuaValue, i64),
    args: &[LuaValue],
) -> Result<u64, ProcError> {
    let Some((ns, name)) = target.split_once(':') else {
        return Err(invalid(format!(
            "funcs: the function id '{target}' must be \"namespace:name\""
        )));
    };
    if ns.is_empty() || name.is_empty() || name.contains(':') {
        return Err(invalid(format!(
            "funcs: the function id '{target}' must be \"namespace:name\""
        )));
    }
    if ns != namespace_of(entry) && !granted(&core.borrow(), me, entry, FUNCS_CALL, target) {
        return Err(denied(FUNCS_CALL, target));
    }
    let budget = core.borrow().function_budget(me, target)?;
    let mut converter = Converter::new(Budget::message(budget));
    let context = match ctx {
        LuaValue::Nil => Value::Nil,
        ctx => convert_all(lua, &mut converter, &[ctx], "context", budget)?
            .pop()
            .unwrap_or(Value::Nil),
    };
    let args = convert_all(lua, &mut converter, args, "argument", budget)?;
    let timeout = u64::try_from(timeout_ns)
        .ok()
        .filter(|ns| *ns > 0)
        .map(Duration::from_nanos);
    let call = FunctionCall {
        entry: target.to_owned(),
        args,
        context,
        timeout,
    };
    core.borrow_mut().call_function(me, call)
}

/// Registers `H.funcs_call` and `H.funcs_cancel`.
pub(crate) fn register(lua: &Lua, h: &Table, core: &CoreRef) -> mlua::Result<()> {
    let c = core.clone();
    type Args = (i64, String, LuaString, LuaValue, i64, Variadic<LuaValue>);
    let call = move |lua: &Lua, (me, entry, target, ctx, timeout, args): Args| {
        let target = target.to_string_lossy();
        let result = start(lua, &c, pid(me), &entry, &target, (ctx, timeout), &args);
        started(lua, result)
    };
    h.set("funcs_call", lua.create_function(call)?)?;
    let c = core.clone();
    let cancel = move |_: &Lua, (me, op): (i64, i64)| {
        let op = u64::try_from(op).unwrap_or(0);
        Ok(c.borrow_mut().cancel_op(pid(me), op))
    };
    h.set("funcs_cancel", lua.create_function(cancel)?)?;
    let c = core.clone();
    // H.funcs_copy(me, t): a plain copy of `t` (an executor's context),
    // or nil, kind, message.
    let copy = move |lua: &Lua, (me, values): (i64, LuaValue)| {
        let budget = c.borrow().quota_of(pid(me)).limits.max_message_bytes;
        let mut converter = Converter::new(Budget::message(budget));
        let copied = convert_all(lua, &mut converter, &[values], "context", budget)
            .map(|mut v| v.pop().unwrap_or(Value::Nil));
        match copied
            .and_then(|v| crate::convert::to_lua(lua, &v).map_err(|e| invalid(e.to_string())))
        {
            Ok(v) => (v, LuaValue::Nil, LuaValue::Nil).into_lua_multi(lua),
            Err(err) => (LuaValue::Nil, err.kind.name(), err.message).into_lua_multi(lua),
        }
    };
    h.set("funcs_copy", lua.create_function(copy)?)
}

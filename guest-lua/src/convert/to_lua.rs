//! Host values into fresh Lua values, built on the Lua stack in C-API code:
//! one protected call per value converted, where mlua's tables cost a
//! reference, a stack guard and (inside a process's resume, where a memory
//! limit is set) a protected call for every entry.
//!
//! The mapping: nil, booleans, integers, floats and byte strings as
//! themselves; arrays as tables keyed `1..n`; maps as tables, entries whose
//! key Lua cannot hold (nil, NaN) skipped; with the kernel's error
//! metatable given, maps tagged with [`ERROR_KEY`] become error objects.
//!
//! Guarantees: tables are presized from the value's own lengths (host
//! data, never a guest's number); the Lua stack is grown before each level
//! and the recursion stops at [`MAX_PUSH_DEPTH`] (values are bounded at
//! [`MAX_DEPTH`](super::MAX_DEPTH) where they cross into the host, so
//! neither limit is reached by a value the core accepted); an allocation
//! failure raises Lua's memory error inside `exec_raw`'s protected call,
//! which mlua returns as an error; nothing on these Rust frames needs
//! dropping, so that error unwinding through them leaks nothing.

use crate::machine::fast;
use std::ffi::c_int;

use mlua::{Lua, Table, Value as LuaValue, ffi};
use warren_core::{Payload, Value};

use super::{ERROR_KEY, error_field, lua_kind};

mod unpack;

/// Deepest nesting built; a deeper value is an error (see the module doc).
const MAX_PUSH_DEPTH: usize = 256;

/// Stack slots one level uses at most: its table, a key and a value.
const SLOTS_PER_LEVEL: c_int = 4;

/// `v` as a fresh Lua value; with `error_mt`, tagged maps become error
/// objects with it.
pub(super) fn to_lua_in(lua: &Lua, v: &Value, error_mt: Option<&Table>) -> mlua::Result<LuaValue> {
    match v {
        Value::Nil => Ok(LuaValue::Nil),
        Value::Bool(b) => Ok(LuaValue::Boolean(*b)),
        Value::Int(i) => Ok(LuaValue::Integer(*i)),
        Value::Float(f) => Ok(LuaValue::Number(*f)),
        Value::Str(s) => lua.create_string(s).map(LuaValue::String),
        Value::Array(_) | Value::Map(_) => {
            // SAFETY: the closure runs in mlua's protected call with the
            // argument (the metatable or nil) at index 1; `push` leaves
            // exactly one value above it, which replaces the argument, so
            // the one result is the value. `push` keeps nothing that needs
            // dropping on its frames (see the module doc).
            unsafe {
                lua.exec_raw(error_mt, |l| {
                    push(l, v, 0);
                    fast::replace(l, 1);
                })
            }
        }
    }
}

/// Pushes `v` as a fresh Lua value in a protected call of its own, maps
/// tagged as error objects revived with the table at `error_mt` (an
/// absolute index; anything else revives none): true with the value on
/// top; false, with nothing pushed, when building it raised (out of
/// memory). For C code that holds no mlua handle; costs one `lua_pcall`
/// where [`to_lua_in`] costs mlua's protected closure.
///
/// # Safety
///
/// `l` is a running state with room for three values; `v` is not
/// touched by anything else during the call.
pub(crate) unsafe fn push_protected(l: *mut ffi::lua_State, v: &Value, error_mt: c_int) -> bool {
    // SAFETY: `push_entry` reads `v` through the light userdata only
    // while this frame, which borrows `v`, waits in `lua_pcall`; an error
    // raised inside stays inside the protected call.
    unsafe {
        ffi::lua_pushcfunction(l, push_entry);
        fast::pushvalue(l, error_mt);
        ffi::lua_pushlightuserdata(l, std::ptr::from_ref(v).cast_mut().cast());
        if ffi::lua_pcall(l, 2, 1, 0) == ffi::LUA_OK {
            true
        } else {
            fast::pop(l, 1);
            false
        }
    }
}

/// Pushes a message's payload as [`push_protected`] pushes its value: a
/// packed one straight from its bytes, a number, boolean or nil without a
/// protected call.
///
/// # Safety
///
/// As [`push_protected`].
pub(crate) unsafe fn push_payload(l: *mut ffi::lua_State, p: &Payload, error_mt: c_int) -> bool {
    // SAFETY: see above; a scalar's push does not allocate, so it cannot
    // raise outside a protected call.
    unsafe {
        match p {
            Payload::Packed(packed) => return unpack::push_packed(l, packed.bytes(), error_mt),
            Payload::Value(Value::Nil) => fast::pushnil(l),
            Payload::Value(Value::Bool(b)) => fast::pushboolean(l, c_int::from(*b)),
            Payload::Value(Value::Int(i)) => fast::pushinteger(l, *i),
            Payload::Value(Value::Float(f)) => ffi::lua_pushnumber(l, *f),
            Payload::Value(v) => return push_protected(l, v, error_mt),
        }
    }
    true
}

/// The body of [`push_protected`]: the metatable at 1, the value's
/// address at 2.
///
/// # Safety
///
/// Called only by `push_protected`'s `lua_pcall`.
unsafe extern "C-unwind" fn push_entry(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: index 2 is the address `push_protected` passed, of a value
    // it borrows for the whole call; a C function has 20 free slots, and
    // `push` grows the stack for every level past the first.
    unsafe {
        let v = &*fast::touserdata(l, 2).cast::<Value>();
        fast::settop(l, 1);
        push(l, v, 0);
        1
    }
}

/// Pushes `v`; the error metatable (or nil) is at index 1.
///
/// # Safety
///
/// Runs in a protected call (it may raise), with one free stack slot.
unsafe fn push(l: *mut ffi::lua_State, v: &Value, depth: usize) {
    // SAFETY: every push is preceded by `grow` for its level; the pushes
    // and raw sets are the C API's own, on indices this function made.
    unsafe {
        match v {
            Value::Nil => fast::pushnil(l),
            Value::Bool(b) => fast::pushboolean(l, c_int::from(*b)),
            Value::Int(i) => fast::pushinteger(l, *i),
            Value::Float(f) => ffi::lua_pushnumber(l, *f),
            Value::Str(s) => {
                ffi::lua_pushlstring(l, s.as_ptr().cast(), s.len());
            }
            Value::Array(items) => {
                grow(l, depth);
                ffi::lua_createtable(l, size(items.len()), 0);
                for (i, item) in items.iter().enumerate() {
                    push(l, item, depth + 1);
                    ffi::lua_rawseti(l, -2, i64::try_from(i).unwrap_or(i64::MAX - 1) + 1);
                }
            }
            Value::Map(entries) => {
                grow(l, depth);
                if fast::type_of(l, 1) == ffi::LUA_TTABLE
                    && v.get(ERROR_KEY) == Some(&Value::Bool(true))
                {
                    revive(l, v, depth);
                    return;
                }
                ffi::lua_createtable(l, 0, size(entries.len()));
                for (k, item) in entries {
                    let holdable = match k {
                        Value::Nil => false,
                        Value::Float(f) => !f.is_nan(),
                        _ => true,
                    };
                    if holdable {
                        push(l, k, depth + 1);
                        push(l, item, depth + 1);
                        ffi::lua_rawset(l, -3);
                    }
                }
            }
        }
    }
}

/// Pushes the kernel's error object for the tagged map `v`: `_kind` (the
/// Lua name), `_message`, `_retryable` and `_text` when given, `_details`,
/// `_stack` empty, and the error metatable.
///
/// # Safety
///
/// As [`push`], after `grow` for this level.
unsafe fn revive(l: *mut ffi::lua_State, v: &Value, depth: usize) {
    // SAFETY: as `push`; every field is set with a raw set.
    unsafe {
        let text = |key: &str| match v.get(key) {
            Some(Value::Str(s)) => s.as_slice(),
            _ => b"",
        };
        ffi::lua_createtable(l, 0, 6);
        set_bytes(l, error_field::KIND, lua_kind(text("kind")));
        set_bytes(l, error_field::MESSAGE, text("message"));
        if let Some(Value::Bool(b)) = v.get("retryable") {
            fast::pushboolean(l, c_int::from(*b));
            ffi::lua_setfield(l, -2, error_field::RETRYABLE.as_ptr());
        }
        if let Some(Value::Str(chain)) = v.get("text") {
            set_bytes(l, error_field::TEXT, chain);
        }
        if let Some(details) = v.get("details") {
            push(l, details, depth + 1);
            ffi::lua_setfield(l, -2, error_field::DETAILS.as_ptr());
        }
        set_bytes(l, error_field::STACK, b"");
        fast::pushvalue(l, 1);
        ffi::lua_setmetatable(l, -2);
    }
}

/// `t[name] = bytes` on the table on top of the stack. The table is fresh
/// and has no metatable yet, so `lua_setfield` runs no metamethod.
///
/// # Safety
///
/// As [`revive`].
unsafe fn set_bytes(l: *mut ffi::lua_State, name: &std::ffi::CStr, bytes: &[u8]) {
    // SAFETY: see above.
    unsafe {
        ffi::lua_pushlstring(l, bytes.as_ptr().cast(), bytes.len());
        ffi::lua_setfield(l, -2, name.as_ptr());
    }
}

/// Grows the stack for one more level, or raises.
///
/// # Safety
///
/// As [`push`].
unsafe fn grow(l: *mut ffi::lua_State, depth: usize) {
    // SAFETY: `luaL_error` raises inside the protected call.
    unsafe {
        if depth >= MAX_PUSH_DEPTH || fast::has_room(l, SLOTS_PER_LEVEL) == 0 {
            ffi::luaL_error(l, c"a value nested too deeply to convert".as_ptr());
        }
    }
}

/// A table size hint: the length, saturated.
fn size(len: usize) -> c_int {
    c_int::try_from(len).unwrap_or(c_int::MAX)
}

#[cfg(test)]
mod tests {
    use mlua::{Lua, Table, Value as LuaValue};
    use warren_core::Value;

    use super::super::{ERROR_KEY, to_lua, to_lua_with_errors};

    fn map(entries: Vec<(Value, Value)>) -> Value {
        Value::Map(entries)
    }

    fn error_value(details: Value) -> Value {
        map(vec![
            (Value::str(ERROR_KEY), Value::Bool(true)),
            (Value::str("kind"), Value::str("NOT_FOUND")),
            (Value::str("message"), Value::str("no such user")),
            (Value::str("retryable"), Value::Bool(false)),
            (Value::str("details"), details),
        ])
    }

    #[test]
    fn tagged_maps_become_error_objects_only_with_the_metatable() {
        let lua = Lua::new();
        let mt = lua.create_table().expect("table");
        let inner = error_value(Value::Nil);
        let outer = error_value(map(vec![(Value::str("cause"), inner)]));
        let e = to_lua_with_errors(&lua, &outer, &mt).expect("converts");
        let LuaValue::Table(e) = e else {
            panic!("not a table: {e:?}")
        };
        assert_eq!(e.metatable(), Some(mt.clone()));
        assert_eq!(e.raw_get::<String>("_kind").expect("kind"), "NotFound");
        assert_eq!(
            e.raw_get::<String>("_message").expect("message"),
            "no such user"
        );
        assert_eq!(
            e.raw_get::<Option<bool>>("_retryable").expect("retryable"),
            Some(false)
        );
        assert_eq!(e.raw_get::<String>("_stack").expect("stack"), "");
        let cause: Table = e
            .raw_get::<Table>("_details")
            .and_then(|d| d.raw_get("cause"))
            .expect("details.cause");
        assert_eq!(cause.metatable(), Some(mt), "a nested error is revived too");
        let plain = to_lua(&lua, &outer).expect("converts");
        let LuaValue::Table(plain) = plain else {
            panic!("not a table")
        };
        assert!(plain.metatable().is_none());
        assert!(plain.raw_get::<bool>(ERROR_KEY).expect("tag kept"));
    }

    #[test]
    fn keys_lua_cannot_hold_are_skipped_and_float_keys_normalised() {
        let lua = Lua::new();
        let v = map(vec![
            (Value::Nil, Value::Int(1)),
            (Value::Float(f64::NAN), Value::Int(2)),
            (Value::Float(2.0), Value::str("two")),
            (Value::Array(vec![Value::Int(1)]), Value::Bool(true)),
        ]);
        let LuaValue::Table(t) = to_lua(&lua, &v).expect("converts") else {
            panic!("not a table")
        };
        assert_eq!(t.raw_get::<String>(2).expect("integer key"), "two");
        let n = t.pairs::<LuaValue, LuaValue>().count();
        assert_eq!(n, 2, "the nil and NaN keys are skipped, the table key kept");
    }

    #[test]
    fn a_value_too_deep_or_too_big_is_an_error_and_the_vm_goes_on() {
        let lua = Lua::new();
        let mut deep = Value::Int(0);
        for _ in 0..300 {
            deep = Value::Array(vec![deep]);
        }
        let err = to_lua(&lua, &deep).expect_err("too deep");
        assert!(err.to_string().contains("nested too deeply"), "{err}");
        let mut ok = Value::Int(0);
        for _ in 0..200 {
            ok = Value::Array(vec![ok]);
        }
        to_lua(&lua, &ok).expect("200 levels convert");
        // Out of memory inside the protected call: an error, not an abort.
        let big = Value::Array(vec![Value::str("x".repeat(1024)); 10_000]);
        let _ = lua.set_memory_limit(lua.used_memory() + (1 << 20));
        let err = to_lua(&lua, &big).expect_err("over the memory limit");
        assert!(matches!(err, mlua::Error::MemoryError(_)), "{err}");
        let _ = lua.set_memory_limit(0);
        let small = to_lua(&lua, &Value::Array(vec![Value::Int(7)])).expect("converts after");
        let LuaValue::Table(t) = small else {
            panic!("not a table")
        };
        assert_eq!(t.raw_get::<i64>(1).expect("element"), 7);
        let top: i64 = lua
            .load("return select('#', ...)")
            .call(())
            .expect("stack usable");
        assert_eq!(top, 0);
    }
}

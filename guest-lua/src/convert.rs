//! Copying values between Lua and the host's [`Value`] trees.
//!
//! Only data crosses: nil, booleans, integers, floats, strings and tables of
//! those. Functions, threads, userdata, channels and cycles are refused with
//! an error naming the offending path (`payload.items[3]: function cannot be
//! sent`). Nesting is capped at [`MAX_DEPTH`] so a hostile value cannot
//! overflow the host's stack. The path is built only when an error unwinds,
//! so a successful copy allocates nothing but the copy.

use std::ffi::c_void;

use mlua::{Lua, Table, Value as LuaValue};
use warren_core::Value;

/// Metatable field that marks the kernel's runtime objects (channels,
/// timers, ...); its value names the object in errors.
pub const RUNTIME_OBJECT_TAG: &str = "__warren";

/// Deepest table nesting that may cross a process boundary; deeper values
/// are refused instead of recursing the host's native stack.
pub const MAX_DEPTH: usize = 64;

/// Why a Lua value cannot cross a process boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConvertError {
    /// Where in the value, e.g. `payload.items[3]`.
    pub path: String,
    /// What is wrong there.
    pub reason: String,
}

/// An error on its way up: path segments innermost first.
struct Failure {
    segments: Vec<String>,
    reason: String,
}

impl Failure {
    fn new(reason: impl Into<String>) -> Self {
        Failure {
            segments: Vec::new(),
            reason: reason.into(),
        }
    }

    fn at(mut self, key: &LuaValue) -> Self {
        let segment = match key {
            LuaValue::String(s) => {
                let k = s.to_string_lossy();
                if is_identifier(&k) {
                    format!(".{k}")
                } else {
                    format!("[{k:?}]")
                }
            }
            LuaValue::Integer(i) => format!("[{i}]"),
            LuaValue::Number(n) => format!("[{n}]"),
            LuaValue::Boolean(b) => format!("[{b}]"),
            other => format!("[{}]", other.type_name()),
        };
        self.segments.push(segment);
        self
    }

    fn finish(self, root: &str) -> ConvertError {
        let mut path = root.to_owned();
        for segment in self.segments.iter().rev() {
            path.push_str(segment);
        }
        ConvertError {
            path,
            reason: self.reason,
        }
    }
}

struct Walk {
    open: Vec<*const c_void>,
}

impl Walk {
    fn value(&mut self, v: &LuaValue) -> Result<Value, Failure> {
        Ok(match v {
            LuaValue::Nil => Value::Nil,
            LuaValue::Boolean(b) => Value::Bool(*b),
            LuaValue::Integer(i) => Value::Int(*i),
            LuaValue::Number(n) => Value::Float(*n),
            LuaValue::String(s) => Value::Str(s.as_bytes().to_vec()),
            LuaValue::Table(t) => self.table(t)?,
            other => {
                return Err(Failure::new(format!(
                    "{} cannot be sent",
                    other.type_name()
                )));
            }
        })
    }

    fn table(&mut self, t: &Table) -> Result<Value, Failure> {
        let ptr = t.to_pointer();
        if self.open.contains(&ptr) {
            return Err(Failure::new("cycle: the table contains itself"));
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(Failure::new(format!(
                "nesting deeper than {MAX_DEPTH} levels cannot be sent"
            )));
        }
        if let Some(mt) = t.metatable()
            && let Ok(Some(name)) = mt.raw_get::<Option<String>>(RUNTIME_OBJECT_TAG)
        {
            return Err(Failure::new(format!("{name} cannot be sent")));
        }
        self.open.push(ptr);
        let result = self.entries(t);
        self.open.pop();
        result
    }

    fn entries(&mut self, t: &Table) -> Result<Value, Failure> {
        let len = t.raw_len();
        let mut items = Vec::with_capacity(len);
        let mut map = Vec::new();
        let mut is_array = true;
        for pair in t.pairs::<LuaValue, LuaValue>() {
            let (k, v) = pair.map_err(|e| Failure::new(e.to_string()))?;
            let value = self.value(&v).map_err(|f| f.at(&k))?;
            if is_array
                && matches!(k, LuaValue::Integer(i) if i >= 1 && usize::try_from(i).is_ok_and(|i| i <= len))
            {
                items.push((k, value));
                continue;
            }
            if is_array {
                is_array = false;
                for (key, value) in items.drain(..) {
                    map.push((key_value(&key)?, value));
                }
            }
            map.push((key_value(&k)?, value));
        }
        if !is_array || items.len() != len || len == 0 {
            for (key, value) in items.drain(..) {
                map.push((key_value(&key)?, value));
            }
            return Ok(Value::Map(map));
        }
        let mut array = vec![Value::Nil; len];
        for (key, value) in items {
            if let LuaValue::Integer(i) = key {
                array[usize::try_from(i - 1).unwrap_or(0)] = value;
            }
        }
        Ok(Value::Array(array))
    }
}

fn key_value(k: &LuaValue) -> Result<Value, Failure> {
    Ok(match k {
        LuaValue::String(s) => Value::Str(s.as_bytes().to_vec()),
        LuaValue::Integer(i) => Value::Int(*i),
        LuaValue::Number(n) => Value::Float(*n),
        LuaValue::Boolean(b) => Value::Bool(*b),
        other => {
            return Err(Failure::new(format!(
                "a {} key cannot be sent",
                other.type_name()
            )));
        }
    })
}

fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Copies a Lua value into a host value; `root` names it in errors.
pub fn from_lua(v: &LuaValue, root: &str) -> Result<Value, ConvertError> {
    Walk { open: Vec::new() }
        .value(v)
        .map_err(|f| f.finish(root))
}

/// Copies a host value into a fresh Lua value.
pub fn to_lua(lua: &Lua, v: &Value) -> mlua::Result<LuaValue> {
    Ok(match v {
        Value::Nil => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Int(i) => LuaValue::Integer(*i),
        Value::Float(f) => LuaValue::Number(*f),
        Value::Str(s) => LuaValue::String(lua.create_string(s)?),
        Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Map(entries) => {
            let t = lua.create_table_with_capacity(0, entries.len())?;
            for (k, item) in entries {
                let key = to_lua(lua, k)?;
                if !key.is_nil() {
                    t.raw_set(key, to_lua(lua, item)?)?;
                }
            }
            LuaValue::Table(t)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(lua: &Lua, src: &str) -> LuaValue {
        lua.load(src).eval().expect("valid Lua")
    }

    #[test]
    fn arrays_maps_and_mixed_tables() {
        let lua = Lua::new();
        let arr = from_lua(&eval(&lua, "return {1, 'two', 3.5}"), "p").expect("array");
        assert_eq!(
            arr,
            Value::Array(vec![Value::Int(1), Value::str("two"), Value::Float(3.5)])
        );
        let holes = from_lua(&eval(&lua, "return {[1] = 1, [3] = 3}"), "p").expect("map");
        assert!(
            matches!(holes, Value::Map(ref m) if m.len() == 2),
            "{holes:?}"
        );
        let mixed = from_lua(&eval(&lua, "return {1, 2, x = 'y'}"), "p").expect("map");
        assert!(
            matches!(mixed, Value::Map(ref m) if m.len() == 3),
            "{mixed:?}"
        );
        let back = to_lua(&lua, &arr).expect("to lua");
        assert_eq!(from_lua(&back, "p").expect("again"), arr);
    }

    #[test]
    fn errors_name_the_path() {
        let lua = Lua::new();
        let err = from_lua(&eval(&lua, "return {a = {[\"b c\"] = {print}}}"), "payload")
            .expect_err("function");
        assert_eq!(
            err.to_string(),
            "payload.a[\"b c\"][1]: function cannot be sent"
        );
        let deep = eval(
            &lua,
            "local t = {} local c = t for i = 1, 100 do c.n = {} c = c.n end return t",
        );
        let err = from_lua(&deep, "v").expect_err("too deep");
        assert!(err.reason.contains("deeper than"), "{err}");
        let key = from_lua(&eval(&lua, "return {[{}] = 1}"), "v").expect_err("table key");
        assert_eq!(key.reason, "a table key cannot be sent");
    }
}

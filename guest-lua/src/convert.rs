//! Copying values between Lua and the host's [`Value`] trees.
//!
//! Only data crosses: nil, booleans, integers, floats, strings and tables of
//! those. Functions, threads, userdata, channels and cycles are refused with
//! an error naming the offending path (`payload.items[3]: function cannot be
//! sent`). Nesting is capped at [`MAX_DEPTH`] so a hostile value cannot
//! overflow the host's stack.

use std::ffi::c_void;
use std::fmt::Write as _;

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

enum Seg {
    Key(String),
    Index(i64),
}

struct Walk<'a> {
    root: &'a str,
    path: Vec<Seg>,
    open: Vec<*const c_void>,
}

impl Walk<'_> {
    fn fail(&self, reason: impl Into<String>) -> ConvertError {
        let mut path = self.root.to_owned();
        for seg in &self.path {
            let _ = match seg {
                Seg::Key(k) if is_identifier(k) => write!(path, ".{k}"),
                Seg::Key(k) => write!(path, "[{k:?}]"),
                Seg::Index(i) => write!(path, "[{i}]"),
            };
        }
        ConvertError {
            path,
            reason: reason.into(),
        }
    }

    fn value(&mut self, v: &LuaValue) -> Result<Value, ConvertError> {
        Ok(match v {
            LuaValue::Nil => Value::Nil,
            LuaValue::Boolean(b) => Value::Bool(*b),
            LuaValue::Integer(i) => Value::Int(*i),
            LuaValue::Number(n) => Value::Float(*n),
            LuaValue::String(s) => Value::Str(s.as_bytes().to_vec()),
            LuaValue::Table(t) => self.table(t)?,
            other => return Err(self.fail(format!("{} cannot be sent", other.type_name()))),
        })
    }

    fn table(&mut self, t: &Table) -> Result<Value, ConvertError> {
        let ptr = t.to_pointer();
        if self.open.contains(&ptr) {
            return Err(self.fail("cycle: the table contains itself"));
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(self.fail(format!(
                "nesting deeper than {MAX_DEPTH} levels cannot be sent"
            )));
        }
        if let Some(mt) = t.metatable()
            && let Ok(Some(name)) = mt.raw_get::<Option<String>>(RUNTIME_OBJECT_TAG)
        {
            return Err(self.fail(format!("{name} cannot be sent")));
        }
        self.open.push(ptr);
        let result = self.entries(t);
        self.open.pop();
        result
    }

    fn entries(&mut self, t: &Table) -> Result<Value, ConvertError> {
        let len = t.raw_len();
        let pairs: Vec<(LuaValue, LuaValue)> = t
            .clone()
            .pairs::<LuaValue, LuaValue>()
            .collect::<mlua::Result<_>>()
            .map_err(|e| self.fail(e.to_string()))?;
        let in_range = |k: &LuaValue| matches!(k, LuaValue::Integer(i) if *i >= 1 && usize::try_from(*i).is_ok_and(|i| i <= len));
        if len == 0 || pairs.len() != len || !pairs.iter().all(|(k, _)| in_range(k)) {
            return self.map(pairs);
        }
        let mut items = vec![Value::Nil; len];
        for (k, v) in pairs {
            let LuaValue::Integer(i) = k else { continue };
            self.path.push(Seg::Index(i));
            let slot = usize::try_from(i - 1).unwrap_or(0);
            items[slot] = self.value(&v)?;
            self.path.pop();
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, pairs: Vec<(LuaValue, LuaValue)>) -> Result<Value, ConvertError> {
        let mut out = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let key = match &k {
                LuaValue::String(s) => {
                    self.path.push(Seg::Key(s.to_string_lossy()));
                    Value::Str(s.as_bytes().to_vec())
                }
                LuaValue::Integer(i) => {
                    self.path.push(Seg::Index(*i));
                    Value::Int(*i)
                }
                LuaValue::Number(n) => {
                    self.path.push(Seg::Key(n.to_string()));
                    Value::Float(*n)
                }
                LuaValue::Boolean(b) => {
                    self.path.push(Seg::Key(b.to_string()));
                    Value::Bool(*b)
                }
                other => {
                    return Err(self.fail(format!("a {} key cannot be sent", other.type_name())));
                }
            };
            let value = self.value(&v)?;
            self.path.pop();
            out.push((key, value));
        }
        Ok(Value::Map(out))
    }
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
    Walk {
        root,
        path: Vec::new(),
        open: Vec::new(),
    }
    .value(v)
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

//! Copying values between Lua and the host's [`Value`] trees.
//!
//! Only data crosses: nil, booleans, integers, floats, strings and tables of
//! those. Functions, threads, userdata, channels and cycles are refused with
//! an error naming the offending path (`payload.items[3]: function cannot be
//! sent`). Nesting is capped at [`MAX_DEPTH`] so a hostile value cannot
//! overflow the host's stack. The path is built only when an error unwinds,
//! so a successful copy allocates nothing but the copy.
//!
//! Guarantees against hostile tables: no metamethod runs (raw length and
//! raw iteration only); nothing is pre-allocated from a number the guest
//! controls (a lying length, a border of 2^44); and every copy has a byte
//! budget counted as [`warren_core::limits::wire_size`] counts, checked as it
//! goes, so a table that shares one sub-table a million times (a DAG that
//! would copy exponentially) fails as soon as the budget is passed.

mod to_lua;

use std::ffi::c_void;

use mlua::{Lua, Table, Value as LuaValue};
use warren_core::Value;

/// Metatable field that marks the kernel's runtime objects (channels,
/// timers, ...); its value names the object in errors.
pub const RUNTIME_OBJECT_TAG: &str = "__warren";

/// Metatable field that marks the kernel's error objects: they cross as a
/// map tagged with [`ERROR_KEY`] and come back as error objects.
pub const ERROR_TAG: &str = "__warren_error";

/// The key that marks an error object in a map: `{"@error": true, kind,
/// message, retryable, details, text?}` (keys starting with `@` are
/// reserved, as topics are). `kind` uses the host's names (`NOT_FOUND`);
/// `retryable` is nil when the error does not say; `text` is the chained
/// text of a wrapped error.
pub const ERROR_KEY: &str = "@error";

/// Error kinds: the host's name and the Lua `errors` module's (Wippy's).
const KINDS: [(&str, &str); 11] = [
    ("NOT_FOUND", "NotFound"),
    ("ALREADY_EXISTS", "AlreadyExists"),
    ("INVALID", "Invalid"),
    ("PERMISSION_DENIED", "PermissionDenied"),
    ("UNAVAILABLE", "Unavailable"),
    ("INTERNAL", "Internal"),
    ("CANCELED", "Canceled"),
    ("CONFLICT", "Conflict"),
    ("TIMEOUT", "Timeout"),
    ("RATE_LIMITED", "RateLimited"),
    ("UNKNOWN", ""),
];

/// The host's name of a Lua error kind (other kinds are kept as they are).
fn host_kind(lua: Vec<u8>) -> Vec<u8> {
    match KINDS.iter().find(|(_, l)| l.as_bytes() == lua.as_slice()) {
        Some((host, _)) => host.as_bytes().to_vec(),
        None => lua,
    }
}

/// The Lua name of a host error kind (other kinds are kept as they are).
pub(crate) fn lua_kind(host: &[u8]) -> &[u8] {
    match KINDS.iter().find(|(h, _)| h.as_bytes() == host) {
        Some((_, lua)) => lua.as_bytes(),
        None => host,
    }
}

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
    /// Whether the value was larger than the copy's budget (rather than
    /// of a kind that cannot be copied).
    pub over_budget: bool,
    /// Bytes counted when the copy stopped (at least the value's size
    /// when it was over budget).
    pub counted: usize,
}

/// An error on its way up: path segments innermost first.
struct Failure {
    segments: Vec<String>,
    reason: String,
    over_budget: bool,
}

impl Failure {
    fn new(reason: impl Into<String>) -> Self {
        Failure {
            segments: Vec::new(),
            reason: reason.into(),
            over_budget: false,
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
            over_budget: self.over_budget,
            counted: 0,
        }
    }
}

/// A copy's byte budget: what the value may count as, and the limit's
/// name for the error.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Most bytes the copied value may count as.
    pub bytes: usize,
    /// The limit's name, quoted in the error (`max_message_bytes`).
    pub name: &'static str,
}

impl Budget {
    /// A budget of `max_message_bytes`.
    pub fn message(bytes: usize) -> Self {
        Budget {
            bytes,
            name: "max_message_bytes",
        }
    }
}

/// Copies one or more values under one shared budget.
pub struct Converter {
    budget: Budget,
    used: usize,
    tables: usize,
}

impl Converter {
    /// A converter with `budget` for everything it copies.
    pub fn new(budget: Budget) -> Self {
        Converter {
            budget,
            used: 0,
            tables: 0,
        }
    }

    /// Copies `v`; `root` names it in errors.
    pub fn convert(&mut self, v: &LuaValue, root: &str) -> Result<Value, ConvertError> {
        let mut walk = Walk {
            open: Vec::new(),
            used: self.used,
            budget: self.budget,
            tables: self.tables,
        };
        let result = walk.value(v);
        self.used = walk.used;
        self.tables = walk.tables;
        result.map_err(|f| {
            let mut err = f.finish(root);
            err.counted = walk.used;
            err
        })
    }
}

/// Budget bytes per table a copy may visit: a table's own wire size is 5
/// bytes, but visiting one costs far more work than copying 5 bytes, so a
/// value made of many tiny (or shared) tables is cut off by their count.
const BYTES_PER_TABLE: usize = 16;

struct Walk {
    open: Vec<*const c_void>,
    used: usize,
    budget: Budget,
    /// Tables visited, against `budget.bytes / BYTES_PER_TABLE`.
    tables: usize,
}

impl Walk {
    /// Counts `bytes` more; fails once past the budget.
    fn count(&mut self, bytes: usize) -> Result<(), Failure> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.budget.bytes {
            let mut failure = Failure::new(format!(
                "the value exceeds {} ({})",
                self.budget.name, self.budget.bytes
            ));
            failure.over_budget = true;
            return Err(failure);
        }
        Ok(())
    }

    fn value(&mut self, v: &LuaValue) -> Result<Value, Failure> {
        Ok(match v {
            LuaValue::Nil => {
                self.count(1)?;
                Value::Nil
            }
            LuaValue::Boolean(b) => {
                self.count(1)?;
                Value::Bool(*b)
            }
            LuaValue::Integer(i) => {
                self.count(9)?;
                Value::Int(*i)
            }
            LuaValue::Number(n) => {
                self.count(9)?;
                Value::Float(*n)
            }
            LuaValue::String(s) => {
                let bytes = s.as_bytes();
                self.count(5 + bytes.len())?;
                Value::Str(bytes.to_vec())
            }
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
        self.count(5)?;
        self.tables += 1;
        if self.tables > (self.budget.bytes / BYTES_PER_TABLE).max(256) {
            let mut failure = Failure::new(format!(
                "the value has more tables than {} allows ({} bytes)",
                self.budget.name, self.budget.bytes
            ));
            failure.over_budget = true;
            return Err(failure);
        }
        let is_error = t
            .metatable()
            .is_some_and(|mt| mt.raw_get::<bool>(ERROR_TAG).unwrap_or(false));
        self.open.push(ptr);
        let result = if is_error {
            self.error(t)
        } else {
            self.entries(t)
        };
        self.open.pop();
        result
    }

    fn entries(&mut self, t: &Table) -> Result<Value, Failure> {
        // The border may be anything up to 2^63 (a few keys can make it
        // 2^44): it is compared with, never allocated from.
        let len = t.raw_len();
        let mut items = Vec::new();
        let mut map = Vec::new();
        let mut is_array = true;
        for pair in t.pairs::<LuaValue, LuaValue>() {
            let (k, v) = pair.map_err(|e| Failure::new(e.to_string()))?;
            // Keys count as wire_size counts them: 1..=len may be array
            // indices, free there, and are counted if they end up in a map.
            let index = matches!(k, LuaValue::Integer(i) if i >= 1 && usize::try_from(i).is_ok_and(|i| i <= len));
            match &k {
                LuaValue::String(s) => self.count(5 + s.as_bytes().len())?,
                _ if index => {}
                _ => self.count(9)?,
            }
            let value = self.value(&v).map_err(|f| f.at(&k))?;
            if is_array && index {
                items.push((k, value));
                continue;
            }
            if is_array {
                is_array = false;
                self.move_to_map(&mut items, &mut map)?;
            }
            if index {
                self.count(9)?;
            }
            map.push((key_value(&k)?, value));
        }
        if !is_array || items.len() != len || len == 0 {
            self.move_to_map(&mut items, &mut map)?;
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

impl Walk {
    /// An error object as its tagged map; its fields are read raw and
    /// checked (a process may have rawset them).
    fn error(&mut self, t: &Table) -> Result<Value, Failure> {
        let text = |key: &str| match t.raw_get::<LuaValue>(key) {
            Ok(LuaValue::String(s)) => s.as_bytes().to_vec(),
            _ => Vec::new(),
        };
        let (kind, message) = (host_kind(text("_kind")), text("_message"));
        self.count(40 + kind.len() + message.len())?;
        let retryable = match t.raw_get::<LuaValue>("_retryable") {
            Ok(LuaValue::Boolean(b)) => Value::Bool(b),
            _ => Value::Nil,
        };
        let details = match t.raw_get::<LuaValue>("_details") {
            Ok(v) => self.value(&v)?,
            Err(_) => Value::Nil,
        };
        let mut map = vec![
            (Value::str(ERROR_KEY), Value::Bool(true)),
            (Value::str("kind"), Value::Str(kind)),
            (Value::str("message"), Value::Str(message)),
            (Value::str("retryable"), retryable),
            (Value::str("details"), details),
        ];
        if let Ok(LuaValue::String(chain)) = t.raw_get::<LuaValue>("_text") {
            let chain = chain.as_bytes().to_vec();
            self.count(8 + chain.len())?;
            map.push((Value::str("text"), Value::Str(chain)));
        }
        Ok(Value::Map(map))
    }

    /// Moves what looked like array items into the map, counting their keys.
    fn move_to_map(
        &mut self,
        items: &mut Vec<(LuaValue, Value)>,
        map: &mut Vec<(Value, Value)>,
    ) -> Result<(), Failure> {
        for (key, value) in items.drain(..) {
            self.count(9)?;
            map.push((key_value(&key)?, value));
        }
        Ok(())
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

/// Copies a Lua value into a host value within `budget`; `root` names it
/// in errors.
pub fn from_lua(v: &LuaValue, root: &str, budget: Budget) -> Result<Value, ConvertError> {
    Converter::new(budget).convert(v, root)
}

/// Copies a host value into a fresh Lua value.
pub fn to_lua(lua: &Lua, v: &Value) -> mlua::Result<LuaValue> {
    to_lua::to_lua_in(lua, v, None)
}

/// Copies a host value into a fresh Lua value; maps tagged as error
/// objects become error objects with `error_mt` (the kernel's).
pub fn to_lua_with_errors(lua: &Lua, v: &Value, error_mt: &Table) -> mlua::Result<LuaValue> {
    to_lua::to_lua_in(lua, v, Some(error_mt))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: Budget = Budget {
        bytes: 1 << 20,
        name: "test budget",
    };

    fn eval(lua: &Lua, src: &str) -> LuaValue {
        lua.load(src).eval().expect("valid Lua")
    }

    #[test]
    fn arrays_maps_and_mixed_tables() {
        let lua = Lua::new();
        let arr = from_lua(&eval(&lua, "return {1, 'two', 3.5}"), "p", BIG).expect("array");
        assert_eq!(
            arr,
            Value::Array(vec![Value::Int(1), Value::str("two"), Value::Float(3.5)])
        );
        let holes = from_lua(&eval(&lua, "return {[1] = 1, [3] = 3}"), "p", BIG).expect("map");
        assert!(
            matches!(holes, Value::Map(ref m) if m.len() == 2),
            "{holes:?}"
        );
        let mixed = from_lua(&eval(&lua, "return {1, 2, x = 'y'}"), "p", BIG).expect("map");
        assert!(
            matches!(mixed, Value::Map(ref m) if m.len() == 3),
            "{mixed:?}"
        );
        let back = to_lua(&lua, &arr).expect("to lua");
        assert_eq!(from_lua(&back, "p", BIG).expect("again"), arr);
    }

    #[test]
    fn errors_name_the_path() {
        let lua = Lua::new();
        let err = from_lua(
            &eval(&lua, "return {a = {[\"b c\"] = {print}}}"),
            "payload",
            BIG,
        )
        .expect_err("function");
        assert_eq!(
            err.to_string(),
            "payload.a[\"b c\"][1]: function cannot be sent"
        );
        let deep = eval(
            &lua,
            "local t = {} local c = t for i = 1, 100 do c.n = {} c = c.n end return t",
        );
        let err = from_lua(&deep, "v", BIG).expect_err("too deep");
        assert!(err.reason.contains("deeper than"), "{err}");
        let key = from_lua(&eval(&lua, "return {[{}] = 1}"), "v", BIG).expect_err("table key");
        assert_eq!(key.reason, "a table key cannot be sent");
    }
}

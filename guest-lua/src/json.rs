//! The `json` module: Lua values to JSON text and back, through [`Value`].
//!
//! Tables with keys 1..n encode as arrays, other tables as objects (non-string
//! keys are written as strings); `null` decodes to `nil`. Non-finite floats
//! and non-UTF-8 strings are refused with a message naming the path.

use mlua::{Lua, Value as LuaValue};
use warren_core::Value;

use crate::convert::{Budget, from_lua};

/// Encodes a Lua value as JSON text, copying at most `budget` bytes of it.
pub(crate) fn encode(lua: &Lua, v: &LuaValue, budget: Budget) -> Result<String, String> {
    let value = from_lua(lua, v, "value", budget).map_err(|e| e.to_string())?;
    let json = to_json(&value, "value")?;
    serde_json::to_string(&json).map_err(|e| e.to_string())
}

/// Decodes JSON text.
pub(crate) fn decode(text: &[u8]) -> Result<Value, String> {
    let json: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("invalid JSON: {e}"))?;
    Ok(from_json(json))
}

fn to_json(v: &Value, path: &str) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .ok_or_else(|| format!("{path}: {f} cannot be encoded as JSON"))?,
        Value::Str(s) => J::String(
            String::from_utf8(s.clone())
                .map_err(|_| format!("{path}: binary string cannot be encoded as JSON"))?,
        ),
        Value::Array(items) => J::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_json(item, &format!("{path}[{}]", i + 1)))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => {
            let mut map = serde_json::Map::new();
            let is_error = v.get(crate::convert::ERROR_KEY) == Some(&Value::Bool(true));
            for (k, item) in entries {
                // An error object is written as its fields: kind (as the
                // Lua `errors` module names it), message, retryable,
                // details (its tag is for processes, not JSON).
                if k.as_str() == Some(crate::convert::ERROR_KEY) {
                    continue;
                }
                if is_error
                    && k.as_str() == Some("kind")
                    && let Value::Str(kind) = item
                {
                    let kind = crate::convert::lua_kind(kind);
                    map.insert(
                        "kind".into(),
                        J::String(String::from_utf8_lossy(kind).into()),
                    );
                    continue;
                }
                let key = match k {
                    Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
                    other => other.describe(),
                };
                let child = to_json(item, &format!("{path}.{key}"))?;
                map.insert(key, child);
            }
            J::Object(map)
        }
    })
}

fn from_json(j: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::Str(s.into_bytes()),
        J::Array(items) => Value::Array(items.into_iter().map(from_json).collect()),
        J::Object(map) => Value::Map(
            map.into_iter()
                .map(|(k, v)| (Value::Str(k.into_bytes()), from_json(v)))
                .collect(),
        ),
    }
}

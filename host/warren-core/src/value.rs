//! Values that cross a process boundary.
//!
//! Every payload, spawn argument and exit result is a [`Value`] tree: the
//! MessagePack data model (nil, bool, int64, float64, string/binary, array,
//! map). Values are owned copies, so no process can ever observe another's
//! mutable state. Strings are byte strings, as in Lua.

use serde::{Deserialize, Serialize};

/// A copied, language-neutral value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(untagged)]
pub enum Value {
    /// Absence of a value.
    #[default]
    Nil,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer (kept distinct from floats).
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A byte string (UTF-8 text or binary).
    Str(Vec<u8>),
    /// An array (a Lua table with keys 1..n).
    Array(Vec<Value>),
    /// A map, in no particular order.
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// A string value from text.
    pub fn str(text: impl Into<String>) -> Self {
        Value::Str(text.into().into_bytes())
    }

    /// The text of a string value, if it is one and is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    /// Looks a string key up in a map value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short human-readable rendering for logs and error messages.
    pub fn describe(&self) -> String {
        match self {
            Value::Nil => "nil".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
            Value::Array(items) => format!("array of {}", items.len()),
            Value::Map(entries) => format!("map of {}", entries.len()),
        }
    }
}

//! Values that cross a process boundary.
//!
//! Every payload, spawn argument and exit result is a [`Value`] tree: the
//! MessagePack data model (nil, bool, int64, float64, string/binary, array,
//! map). Values are owned copies, so no process can ever observe another's
//! mutable state. Strings are byte strings, as in Lua.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A copied, language-neutral value.
///
/// Its serde mapping is the MessagePack data model: strings that are valid
/// UTF-8 serialize as `str`, other byte strings as `bin`; both deserialize to
/// [`Value::Str`].
#[derive(Clone, Debug, PartialEq, Default)]
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
            // Bytes compared, not each key validated as UTF-8 first: the
            // converter asks this of every map it builds.
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(b) if b.as_slice() == key.as_bytes()))
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

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => s.serialize_str(text),
                Err(_) => s.serialize_bytes(bytes),
            },
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a MessagePack value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        i64::try_from(u)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {u} does not fit in int64")))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
        Ok(Value::Str(text.as_bytes().to_vec()))
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(bytes.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Str(bytes))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_PREALLOC));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    /// rmp-serde hands an ext type (`d4`..`d8`, `c7`..`c9`) over as a
    /// newtype struct: named, so the refusal says what was sent (serde's
    /// own words were "invalid type: newtype struct").
    fn visit_newtype_struct<D: Deserializer<'de>>(self, _: D) -> Result<Value, D::Error> {
        Err(de::Error::custom(
            "a MessagePack ext type (fixext or ext 8/16/32): not part of the data model",
        ))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(MAX_PREALLOC));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
}

/// Largest collection capacity reserved up front from a length prefix, so a
/// hostile payload claiming 2^32 elements cannot make the host allocate
/// before the elements are actually there.
const MAX_PREALLOC: usize = 1024;

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

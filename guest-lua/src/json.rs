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
    let json = to_json(&value).map_err(Unencodable::message)?;
    serde_json::to_string(&json).map_err(|e| e.to_string())
}

/// Decodes JSON text, building the [`Value`] tree straight from the
/// parser (no intermediate JSON tree: that one, with the tree made from
/// it, held some 100 times the text outside any quota). The tree is at
/// most about 32 bytes a value of text that spends two or three bytes on
/// one (`[[],[],...]`), bounded by the caller's limit on the text.
pub(crate) fn decode(text: &[u8]) -> Result<Value, String> {
    serde_json::from_slice::<Tree>(text)
        .map(|t| t.0)
        .map_err(|e| format!("invalid JSON: {e}"))
}

/// A [`Value`] read by serde: `null` is nil, integers that fit `i64` stay
/// integers, others (and every number with a fraction or exponent) are
/// floats, as `serde_json::Value` read them.
struct Tree(Value);

impl<'de> serde::Deserialize<'de> for Tree {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor).map(Tree)
    }
}

struct TreeVisitor;

impl<'de> serde::de::Visitor<'de> for TreeVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        #[expect(
            clippy::cast_precision_loss,
            reason = "past i64, JSON numbers are floats"
        )]
        Ok(i64::try_from(u).map_or(Value::Float(u as f64), Value::Int))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(s.as_bytes().to_vec()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(s.into_bytes()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Tree(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, Tree(v))) = map.next_entry::<String, Tree>()? {
            entries.push((Value::Str(k.into_bytes()), v));
        }
        Ok(Value::Map(entries))
    }
}

/// Why a value cannot be JSON, and the way down to it: one step per
/// level, pushed as the error goes up, so that a path is built only for
/// the value that failed (built for every value, a 1 MiB key over an
/// array of 100,000 items copied the key 100,000 times: 12.8 s of the
/// worker in one call).
struct Unencodable {
    what: String,
    /// Innermost step first.
    steps: Vec<String>,
}

impl Unencodable {
    fn new(what: String) -> Self {
        Unencodable {
            what,
            steps: Vec::new(),
        }
    }

    fn at(mut self, step: String) -> Self {
        self.steps.push(step);
        self
    }

    /// "value.key[2]: what".
    fn message(self) -> String {
        let mut path = String::from("value");
        for step in self.steps.iter().rev() {
            path.push_str(step);
        }
        format!("{path}: {}", self.what)
    }
}

fn to_json(v: &Value) -> Result<serde_json::Value, Unencodable> {
    use serde_json::Value as J;
    Ok(match v {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .ok_or_else(|| Unencodable::new(format!("{f} cannot be encoded as JSON")))?,
        Value::Str(s) => {
            J::String(String::from_utf8(s.clone()).map_err(|_| {
                Unencodable::new("binary string cannot be encoded as JSON".to_owned())
            })?)
        }
        Value::Array(items) => J::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_json(item).map_err(|e| e.at(format!("[{}]", i + 1))))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => to_json_object(v, entries)?,
    })
}

/// A map's entries as a JSON object.
fn to_json_object(v: &Value, entries: &[(Value, Value)]) -> Result<serde_json::Value, Unencodable> {
    use serde_json::Value as J;
    let mut map = serde_json::Map::new();
    let is_error = v.get(crate::convert::ERROR_KEY) == Some(&Value::Bool(true));
    for (k, item) in entries {
        // An error object is written as its fields: kind (as the Lua
        // `errors` module names it), message, retryable, details (its tag
        // is for processes, not JSON).
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
        // A key is text as a value is (a lossy copy turned two binary keys
        // into one), and two keys that name one field are refused: `1` and
        // `"1"`, or `true` and `"true"`, kept only the last, silently.
        let key = match k {
            Value::Str(s) => String::from_utf8(s.clone()).map_err(|_| {
                Unencodable::new("binary string key cannot be encoded as JSON".to_owned())
            })?,
            other => other.describe(),
        };
        if map.contains_key(&key) {
            let shown: String = key.chars().take(64).collect();
            return Err(Unencodable::new(format!(
                "two keys are both encoded as {shown:?} (a number or boolean key and its text)"
            )));
        }
        let child = to_json(item).map_err(|e| e.at(format!(".{key}")))?;
        map.insert(key, child);
    }
    Ok(J::Object(map))
}

#[cfg(test)]
mod tests {
    use super::{decode, to_json};
    use warren_core::Value;

    #[test]
    fn keys_that_name_one_field_and_binary_keys_are_refused() {
        let map = |entries: Vec<(Value, Value)>| Value::Map(entries);
        for (k1, k2, text) in [
            (Value::Int(1), Value::str("1"), "\"1\""),
            (Value::Bool(true), Value::str("true"), "\"true\""),
        ] {
            let v = map(vec![(k1, Value::Int(1)), (k2, Value::Int(2))]);
            let e = to_json(&v).map_err(super::Unencodable::message);
            let e = e.expect_err("two keys of one name");
            assert!(e.contains("both encoded as") && e.contains(text), "{e}");
        }
        let v = map(vec![(Value::Str(vec![0xff]), Value::Int(1))]);
        let e = to_json(&v).map_err(super::Unencodable::message);
        assert!(e.expect_err("binary key").contains("binary string key"));
        let v = map(vec![
            (Value::Int(1), Value::Int(1)),
            (Value::str("2"), Value::Int(2)),
        ]);
        assert_eq!(
            to_json(&v).ok().map(|j| j.to_string()).as_deref(),
            Some(r#"{"1":1,"2":2}"#)
        );
    }

    #[test]
    fn numbers_keep_integers_apart_from_floats() {
        let v = decode(b"[0, -7, 9223372036854775807, 9223372036854775808, 2.5, 1e3]")
            .expect("decodes");
        let Value::Array(items) = v else {
            panic!("not an array: {v:?}")
        };
        assert_eq!(items[0], Value::Int(0));
        assert_eq!(items[1], Value::Int(-7));
        assert_eq!(items[2], Value::Int(i64::MAX));
        assert_eq!(items[3], Value::Float(9_223_372_036_854_775_808.0));
        assert_eq!(items[4], Value::Float(2.5));
        assert_eq!(items[5], Value::Float(1000.0));
    }

    #[test]
    fn objects_strings_and_null_come_back() {
        let v = decode(br#"{"a": null, "b": [true, "x\u00e9\n"], "c": {}}"#).expect("decodes");
        assert_eq!(v.get("a"), Some(&Value::Nil));
        assert_eq!(
            v.get("b"),
            Some(&Value::Array(vec![
                Value::Bool(true),
                Value::str("x\u{e9}\n")
            ]))
        );
        assert_eq!(v.get("c"), Some(&Value::Map(Vec::new())));
    }

    #[test]
    fn bad_text_and_deep_nesting_are_refused_with_the_place() {
        let e = decode(b"{\"a\": 1,}").expect_err("trailing comma");
        assert!(
            e.starts_with("invalid JSON: ") && e.contains("column 9"),
            "{e}"
        );
        let deep = "[".repeat(100_000);
        let e = decode(deep.as_bytes()).expect_err("too deep");
        assert!(e.contains("recursion limit exceeded"), "{e}");
        assert!(decode(b"1 2").is_err(), "trailing characters are refused");
    }
}

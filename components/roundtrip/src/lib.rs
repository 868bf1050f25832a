//! Round trips through the data mapping, for the tests of
//! `docs/data-mapping.md`. Registers itself as `roundtrip` and answers
//! messages until "stop":
//!
//! - `rich` / `rich-alter` (payload: a [`Rich`] as MessagePack): decodes it,
//!   re-encodes it with the SDK and sends it to `lua-echo` (on `echo` or
//!   `echo-alter`), decodes what comes back and replies `report` with a
//!   [`Report`]: whether the value came back equal.
//! - `any` / `any-alter`: decodes the payload as [`Any`] (a generic value
//!   that keeps every MessagePack distinction), [`alter`]s it for
//!   `any-alter`, and replies `any` with it re-encoded, or `error`.
//! - `as` (payloads: a type name, a value): decodes the value as that type
//!   and replies `as` with `ok: <Debug>` or `error: <message>`.
//! - `send` (payload: a case name): sends that case's Rust value to the
//!   sender on `case`, or replies `send-error` with why the send failed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use warren_sdk::{Args, Error, Payload, Process};

/// A float compared by bits (so `-0.0 != 0.0`), every NaN equal.
#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
#[serde(transparent)]
pub struct F(pub f64);

impl PartialEq for F {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits() || (self.0.is_nan() && other.0.is_nan())
    }
}

/// Bytes as MessagePack `bin`, as `serde_bytes::ByteBuf` does it: serialized
/// with `serialize_bytes`, deserialized from `bin`, `str` or an array of
/// integers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes(v.to_vec()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
        Ok(Bytes(v.as_bytes().to_vec()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        let mut out = Vec::new();
        while let Some(b) = seq.next_element()? {
            out.push(b);
        }
        Ok(Bytes(out))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }
}

/// Every shape of enum variant.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Kind {
    Unit,
    Newtype(i64),
    Tuple(i64, String),
    Struct { x: i64, y: Option<String> },
}

/// A nested struct.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Inner {
    pub flag: bool,
    pub note: Option<String>,
    pub floats: Vec<F>,
}

/// A bit of everything serde has, within what crosses (see
/// `docs/data-mapping.md` for what does not).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Rich {
    pub i: i64,
    pub u: u64,
    pub small: i8,
    pub f: F,
    pub b: bool,
    pub text: String,
    pub ch: char,
    pub opt: Option<i64>,
    pub list: Vec<i64>,
    pub names: Vec<String>,
    pub hmap: HashMap<String, i64>,
    pub bmap: BTreeMap<String, Inner>,
    pub kind: Kind,
    pub kinds: Vec<Kind>,
    pub bytes: Bytes,
    pub inner: Inner,
    pub maybe: Option<Inner>,
    pub pair: (i64, String),
}

/// What became of a `rich` message.
#[derive(Serialize, Debug)]
pub struct Report {
    pub ok: bool,
    pub stage: String,
    pub detail: String,
}

/// Any MessagePack value, keeping what the mapping may blur: signed vs
/// unsigned, int vs float, `str` vs `bin`.
#[derive(Debug, Clone, PartialEq)]
pub enum Any {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Any>),
    Map(Vec<(Any, Any)>),
}

impl Serialize for Any {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Any::Nil => s.serialize_unit(),
            Any::Bool(b) => s.serialize_bool(*b),
            Any::Int(i) => s.serialize_i64(*i),
            Any::UInt(u) => s.serialize_u64(*u),
            Any::Float(f) => s.serialize_f64(*f),
            Any::Str(t) => s.serialize_str(t),
            Any::Bin(b) => s.serialize_bytes(b),
            Any::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Any::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Any;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any MessagePack value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Any, E> {
        Ok(Any::Nil)
    }

    fn visit_none<E: de::Error>(self) -> Result<Any, E> {
        Ok(Any::Nil)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Any, D::Error> {
        d.deserialize_any(AnyVisitor)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Any, E> {
        Ok(Any::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Any, E> {
        Ok(Any::Int(i))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Any, E> {
        Ok(i64::try_from(u).map_or(Any::UInt(u), Any::Int))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Any, E> {
        Ok(Any::Float(f))
    }

    fn visit_str<E: de::Error>(self, t: &str) -> Result<Any, E> {
        Ok(Any::Str(t.to_owned()))
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Any, E> {
        Ok(Any::Bin(b.to_vec()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Any, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Any::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Any, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Any::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Any {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Any, D::Error> {
        d.deserialize_any(AnyVisitor)
    }
}

/// `v` changed in a way Lua can see: integers become floats and floats
/// integers (same value where possible), strings grow, tables gain an
/// entry.
pub fn alter(v: Any) -> Any {
    match v {
        Any::Nil => Any::Bool(false),
        Any::Bool(b) => Any::Bool(!b),
        Any::Int(i) => Any::Float(i as f64),
        Any::UInt(u) => Any::Float(u as f64),
        Any::Float(_) => Any::Int(0),
        Any::Str(t) => Any::Str(t + "!"),
        Any::Bin(mut b) => {
            b.push(0xff);
            Any::Bin(b)
        }
        Any::Array(mut items) => {
            items.push(Any::Bool(true));
            Any::Array(items)
        }
        Any::Map(mut entries) => {
            entries.push((Any::Str("altered".into()), Any::Bool(true)));
            Any::Map(entries)
        }
    }
}

/// An empty vector next to an empty map, both defaulted.
#[derive(Deserialize, Debug)]
pub struct Empties {
    pub list: Vec<i64>,
    pub map: BTreeMap<String, i64>,
}

/// A struct whose fields are all optional.
#[derive(Deserialize, Debug)]
pub struct Optional {
    pub a: Option<i64>,
}

/// An empty vector next to a struct of options.
#[derive(Deserialize, Debug)]
pub struct EmptyAndOptional {
    pub list: Vec<i64>,
    pub opts: Optional,
}

/// A unit field.
#[derive(Serialize, Deserialize, Debug)]
pub struct WithUnit {
    pub n: i64,
    pub unit: (),
}

/// A unit struct.
#[derive(Serialize, Deserialize, Debug)]
pub struct Marker;

/// How decoding `bytes` as `T` went.
fn attempt<T: serde::de::DeserializeOwned + fmt::Debug>(bytes: &[u8]) -> String {
    match warren_sdk::decode::<T>(bytes) {
        Ok(v) => format!("ok: {v:?}"),
        Err(e) => format!("error: {}", e.message),
    }
}

fn decode_as(ty: &str, bytes: &[u8]) -> String {
    match ty {
        "i64" => attempt::<i64>(bytes),
        "u64" => attempt::<u64>(bytes),
        "u8" => attempt::<u8>(bytes),
        "i128" => attempt::<i128>(bytes),
        "f64" => attempt::<f64>(bytes),
        "f32" => attempt::<f32>(bytes),
        "bool" => attempt::<bool>(bytes),
        "string" => attempt::<String>(bytes),
        "char" => attempt::<char>(bytes),
        "bytes" => attempt::<Bytes>(bytes),
        "vec_u8" => attempt::<Vec<u8>>(bytes),
        "vec_i64" => attempt::<Vec<i64>>(bytes),
        "vec_opt_i64" => attempt::<Vec<Option<i64>>>(bytes),
        "opt_i64" => attempt::<Option<i64>>(bytes),
        "opt_opt_i64" => attempt::<Option<Option<i64>>>(bytes),
        "unit" => attempt::<()>(bytes),
        "marker" => attempt::<Marker>(bytes),
        "with_unit" => attempt::<WithUnit>(bytes),
        "tuple" => attempt::<(i64, String)>(bytes),
        "kind" => attempt::<Kind>(bytes),
        "map_str" => attempt::<BTreeMap<String, i64>>(bytes),
        "map_i64" => attempt::<BTreeMap<i64, String>>(bytes),
        "map_bool" => attempt::<BTreeMap<bool, i64>>(bytes),
        "hashmap_opt" => attempt::<BTreeMap<String, Option<i64>>>(bytes),
        "empties" => attempt::<Empties>(bytes),
        "empty_and_optional" => attempt::<EmptyAndOptional>(bytes),
        "inner" => attempt::<Inner>(bytes),
        "any" => attempt::<Any>(bytes),
        other => format!("error: no type {other}"),
    }
}

/// Sends case `name` to `to`.
fn send_case(to: &str, name: &str) -> Result<(), Error> {
    let mut ints = HashMap::new();
    ints.insert(1i64, "a");
    ints.insert(2i64, "b");
    match name {
        "u64_max" => warren_sdk::send(to, "case", &u64::MAX),
        "i64_min" => warren_sdk::send(to, "case", &i64::MIN),
        "float_2" => warren_sdk::send(to, "case", &2.0f64),
        "f32" => warren_sdk::send(to, "case", &1.5f32),
        "nan" => warren_sdk::send(to, "case", &f64::NAN),
        "inf" => warren_sdk::send(to, "case", &[f64::INFINITY, f64::NEG_INFINITY, -0.0]),
        "i128" => warren_sdk::send(to, "case", &5i128),
        "unit" => warren_sdk::send(to, "case", &()),
        "marker" => warren_sdk::send(to, "case", &Marker),
        "with_unit" => warren_sdk::send(to, "case", &WithUnit { n: 1, unit: () }),
        "some_none" => warren_sdk::send(to, "case", &Some(None::<i64>)),
        "vec_opt" => warren_sdk::send(to, "case", &vec![Some(1i64), None, Some(3)]),
        "vec_trailing_none" => warren_sdk::send(to, "case", &vec![Some(1i64), None]),
        "bytes" => warren_sdk::send(to, "case", &Bytes(vec![0, 159, 255])),
        "bytes_text" => warren_sdk::send(to, "case", &Bytes(b"hi".to_vec())),
        "vec_u8" => warren_sdk::send(to, "case", &vec![1u8, 2, 3]),
        "char" => warren_sdk::send(to, "case", &'é'),
        "tuple" => warren_sdk::send(to, "case", &(1i64, "two")),
        "kinds" => warren_sdk::send(
            to,
            "case",
            &vec![
                Kind::Unit,
                Kind::Newtype(5),
                Kind::Tuple(1, "t".into()),
                Kind::Struct { x: 2, y: None },
            ],
        ),
        "int_keys" => warren_sdk::send(to, "case", &ints),
        "empty_vec" => warren_sdk::send(to, "case", &Vec::<i64>::new()),
        "empty_map" => warren_sdk::send(to, "case", &BTreeMap::<String, i64>::new()),
        "error_shaped" => {
            let mut m = BTreeMap::new();
            m.insert("@error", Any::Bool(true));
            m.insert("kind", Any::Str("NOT_FOUND".into()));
            m.insert("message", Any::Str("made in Rust".into()));
            m.insert("retryable", Any::Bool(true));
            warren_sdk::send(to, "case", &m)
        }
        "deep64" | "deep65" => {
            let levels = if name == "deep64" { 64 } else { 65 };
            // `levels` arrays around 1.
            let mut v = Any::Int(1);
            for _ in 0..levels {
                v = Any::Array(vec![v]);
            }
            warren_sdk::send(to, "case", &v)
        }
        other => Err(Error::new(
            warren_sdk::ErrorKind::Invalid,
            format!("no case {other}"),
        )),
    }
}

/// Sends `rich` to the Lua echo and decodes what comes back.
fn via_lua(rich: &Rich, alter: bool) -> Report {
    let report = |ok, stage: &str, detail: String| Report {
        ok,
        stage: stage.into(),
        detail,
    };
    let topic = if alter { "echo-alter" } else { "echo" };
    if let Err(e) = warren_sdk::send("lua-echo", topic, rich) {
        return report(false, "send", e.to_string());
    }
    let reply = loop {
        match warren_sdk::receive(Some(Duration::from_secs(5))) {
            Ok(Some(m)) if m.topic == "echoed" => break m,
            Ok(Some(_)) => continue,
            Ok(None) => return report(false, "echo", "no echo within 5 s".into()),
            Err(e) => return report(false, "echo", e.to_string()),
        }
    };
    let bytes = reply.payloads.first().cloned().unwrap_or_default();
    match warren_sdk::decode::<Rich>(&bytes) {
        Ok(back) if back == *rich => report(true, "compare", String::new()),
        Ok(back) => report(false, "compare", format!("sent {rich:?}\ngot  {back:?}")),
        Err(e) => {
            let raw = warren_sdk::decode::<Any>(&bytes);
            report(
                false,
                "decode-echoed",
                format!("{}\nsent {rich:?}\ngot  {raw:?}", e.message),
            )
        }
    }
}

struct Roundtrip;

impl Process for Roundtrip {
    fn run(_args: Args) -> Result<Payload, Error> {
        warren_sdk::register("roundtrip", None)?;
        while let Some(msg) = warren_sdk::receive(None)? {
            let first = msg.payloads.first().cloned().unwrap_or_default();
            match msg.topic.as_str() {
                "stop" => break,
                "rich" | "rich-alter" => {
                    let report = match warren_sdk::decode::<Rich>(&first) {
                        Ok(rich) => via_lua(&rich, msg.topic == "rich-alter"),
                        Err(e) => Report {
                            ok: false,
                            stage: "decode-sent".into(),
                            detail: e.message,
                        },
                    };
                    warren_sdk::send(&msg.from, "report", &report)?;
                }
                "any" | "any-alter" => match warren_sdk::decode::<Any>(&first) {
                    Ok(v) => {
                        let v = if msg.topic == "any-alter" {
                            alter(v)
                        } else {
                            v
                        };
                        warren_sdk::send(&msg.from, "any", &v)?;
                    }
                    Err(e) => warren_sdk::send(&msg.from, "error", &e.message)?,
                },
                "as" => {
                    let ty: String = warren_sdk::decode(&first)?;
                    let value = msg.payloads.get(1).cloned().unwrap_or_default();
                    warren_sdk::send(&msg.from, "as", &decode_as(&ty, &value))?;
                }
                "send" => {
                    let case: String = warren_sdk::decode(&first)?;
                    if let Err(e) = send_case(&msg.from, &case) {
                        warren_sdk::send(&msg.from, "send-error", &e.message)?;
                    }
                }
                _ => {}
            }
        }
        warren_sdk::payload("done")
    }
}

warren_sdk::export!(Roundtrip);

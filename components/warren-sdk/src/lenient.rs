//! The second attempt of [`decode`](crate::decode): the payload read into a
//! [`Tree`] and deserialized from it, reading what Lua cannot tell apart as
//! the target wants it:
//!
//! - an empty map where a sequence, tuple or unit struct is wanted is an
//!   empty one (Lua has one empty table, and it crosses as an empty map);
//! - a `str` where bytes (`deserialize_bytes`, as `serde_bytes` asks) or an
//!   `i128`/`u128` is wanted is read as its bytes (a Lua string crosses as `str` whenever its bytes
//!   are valid UTF-8, `bin` otherwise).
//!
//! Each empty map is read as what its own place wants, so a struct holding
//! both an empty `Vec` and an empty map decodes.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess,
    SeqAccess, VariantAccess, Visitor,
};

type Error = rmp_serde::decode::Error;

/// A decoded MessagePack value.
pub(crate) enum Tree {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Tree>),
    Map(Vec<(Tree, Tree)>),
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a MessagePack value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Tree, E> {
        Ok(Tree::Nil)
    }

    fn visit_none<E: de::Error>(self) -> Result<Tree, E> {
        Ok(Tree::Nil)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Tree, E> {
        Ok(Tree::Int(i))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Tree, E> {
        Ok(Tree::UInt(u))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Tree, E> {
        Ok(Tree::Float(f))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Tree, E> {
        Ok(Tree::Str(s.to_owned()))
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Tree, E> {
        Ok(Tree::Bin(b.to_vec()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Tree::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tree, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

impl<'de> IntoDeserializer<'de, Error> for Tree {
    type Deserializer = Tree;

    fn into_deserializer(self) -> Tree {
        self
    }
}

fn visit_seq<'de, V: Visitor<'de>>(items: Vec<Tree>, visitor: V) -> Result<V::Value, Error> {
    let mut seq = SeqDeserializer::new(items.into_iter());
    let value = visitor.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(value)
}

impl<'de> Deserializer<'de> for Tree {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Tree::Nil => visitor.visit_unit(),
            Tree::Bool(b) => visitor.visit_bool(b),
            Tree::Int(i) => visitor.visit_i64(i),
            Tree::UInt(u) => visitor.visit_u64(u),
            Tree::Float(f) => visitor.visit_f64(f),
            Tree::Str(s) => visitor.visit_string(s),
            Tree::Bin(b) => visitor.visit_byte_buf(b),
            Tree::Array(items) => visit_seq(items, visitor),
            Tree::Map(entries) => {
                let mut map = MapDeserializer::new(entries.into_iter());
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Tree::Nil => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Tree::Map(entries) if entries.is_empty() => visit_seq(Vec::new(), visitor),
            // As rmp-serde reads `bin` where a sequence is wanted.
            Tree::Bin(b) => visitor.visit_seq(SeqDeserializer::new(b.into_iter())),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Tree::Nil => visitor.visit_unit(),
            Tree::Array(items) if items.is_empty() => visitor.visit_unit(),
            Tree::Map(entries) if entries.is_empty() => visitor.visit_unit(),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Tree::Str(s) => visitor.visit_byte_buf(s.into_bytes()),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match wide(&self) {
            Some(b) => visitor.visit_i128(i128::from_be_bytes(b)),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match wide(&self) {
            Some(b) => visitor.visit_u128(u128::from_be_bytes(b)),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Tree::Str(s) => visitor.visit_enum(s.into_deserializer()),
            Tree::Map(mut entries) if entries.len() == 1 => match entries.pop() {
                Some((key, value)) => visitor.visit_enum(Variant { key, value }),
                None => Err(de::Error::custom(
                    "an enum is a string or a map of one entry",
                )),
            },
            _ => Err(de::Error::custom(
                "an enum is a string or a map of one entry",
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string unit map struct
        identifier ignored_any
    }
}

/// The 16 big-endian bytes rmp-serde writes an `i128`/`u128` as.
fn wide(t: &Tree) -> Option<[u8; 16]> {
    match t {
        Tree::Bin(b) => b.as_slice().try_into().ok(),
        Tree::Str(s) => s.as_bytes().try_into().ok(),
        _ => None,
    }
}

/// A variant with content: `{name: content}`.
struct Variant {
    key: Tree,
    value: Tree,
}

impl<'de> EnumAccess<'de> for Variant {
    type Error = Error;
    type Variant = Tree;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Tree), Error> {
        Ok((seed.deserialize(self.key)?, self.value))
    }
}

impl<'de> VariantAccess<'de> for Tree {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        <()>::deserialize(self)
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }
}

//! A message's payload as the core carries it: a [`Value`], or the value
//! as MessagePack: encoded by a sender that knew its receiver reads
//! MessagePack (a Lua process sending to a component encodes straight
//! from its table, with no `Value` tree in between), or a component's own
//! bytes, kept as they are (a Lua receiver builds its tables straight
//! from them).
//!
//! Guarantees: a packed payload's bytes are exactly what the runtime's
//! own encoder writes for its value (made by that encoder, or a guest's
//! bytes [`scan`](crate::msgpack::scan) found identical to it), that value
//! passed the checks a value gets (nesting, keys), and the payload carries
//! the size [`wire_size`] gives it, so a message counts the same against
//! `max_message_bytes` and `memory_total` either way, and reads the same
//! to every receiver. Either form reads as the other: a receiver
//! that wants a value decodes a packed payload, one that wants bytes
//! encodes a value.
//!
//! [`wire_size`]: crate::limits::wire_size

use std::borrow::Cow;
use std::sync::Arc;

use crate::msgpack;
use crate::value::Value;

/// One payload of a message.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// A value.
    Value(Value),
    /// A value encoded as MessagePack by the runtime (see the module doc).
    Packed(Packed),
}

/// A value encoded as MessagePack, with the size it counts as.
#[derive(Clone, Debug)]
pub struct Packed {
    bytes: Bytes,
    wire: usize,
}

/// A packed payload's bytes: its own, or shared ([`Packed::shared`]), so
/// that one event published to thousands of subscriptions is one copy
/// (made per subscription, a 1 MB event to 12,800 of them held its worker
/// 3.2 s and took 3.2 GB). Owned otherwise: sharing every payload cost
/// each message from a component an allocation more (8 % of its
/// instructions).
#[derive(Clone, Debug)]
enum Bytes {
    Own(Vec<u8>),
    Shared(Arc<Vec<u8>>),
}

impl PartialEq for Packed {
    fn eq(&self, other: &Self) -> bool {
        self.wire == other.wire && self.bytes() == other.bytes()
    }
}

impl Eq for Packed {}

impl Packed {
    /// `bytes`, the MessagePack encoding of a value whose
    /// [`wire_size`](crate::limits::wire_size) is `wire`, made by the
    /// runtime's encoder under the checks a value gets.
    pub fn new(bytes: Vec<u8>, wire: usize) -> Self {
        Packed {
            bytes: Bytes::Own(bytes),
            wire,
        }
    }

    /// The same payload, its clones sharing its bytes.
    #[must_use]
    pub fn shared(self) -> Self {
        let bytes = match self.bytes {
            Bytes::Own(v) => Bytes::Shared(Arc::new(v)),
            shared @ Bytes::Shared(_) => shared,
        };
        Packed { bytes, ..self }
    }

    /// The encoding.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Own(v) => v,
            Bytes::Shared(a) => a,
        }
    }
}

impl From<Value> for Payload {
    fn from(v: Value) -> Self {
        Payload::Value(v)
    }
}

impl Payload {
    /// The size it counts as against the limits
    /// ([`wire_size`](crate::limits::wire_size) of its value).
    pub fn wire_size(&self) -> usize {
        match self {
            Payload::Value(v) => crate::limits::wire_size(std::slice::from_ref(v)),
            Payload::Packed(p) => p.wire,
        }
    }

    /// Its value, decoded when packed (nil if the bytes did not decode,
    /// which the runtime's encoder never makes).
    pub fn to_value(&self) -> Cow<'_, Value> {
        match self {
            Payload::Value(v) => Cow::Borrowed(v),
            Payload::Packed(p) => Cow::Owned(decode_or_nil(p.bytes())),
        }
    }

    /// Its value, decoded when packed (as [`to_value`](Self::to_value)).
    pub fn into_value(self) -> Value {
        match self {
            Payload::Value(v) => v,
            Payload::Packed(p) => decode_or_nil(p.bytes()),
        }
    }

    /// Its MessagePack encoding, encoded when a value.
    pub fn into_packed(self) -> Vec<u8> {
        match self {
            Payload::Value(v) => msgpack::encode(&v),
            Payload::Packed(p) => match p.bytes {
                Bytes::Own(v) => v,
                // Copied only while shared (a published event's).
                Bytes::Shared(a) => Arc::unwrap_or_clone(a),
            },
        }
    }

    /// Its value when it is one (not packed).
    pub fn as_value(&self) -> Option<&Value> {
        match self {
            Payload::Value(v) => Some(v),
            Payload::Packed(_) => None,
        }
    }
}

fn decode_or_nil(bytes: &[u8]) -> Value {
    let decoded = msgpack::decode(bytes);
    debug_assert!(decoded.is_ok(), "a packed payload decodes: {decoded:?}");
    decoded.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        Value::Map(vec![
            (Value::str("id"), Value::Int(7)),
            (
                Value::str("tags"),
                Value::Array(vec![Value::str("a"), Value::Nil]),
            ),
        ])
    }

    #[test]
    fn either_form_reads_as_the_other_and_counts_the_same() {
        let v = sample();
        let wire = crate::limits::wire_size(std::slice::from_ref(&v));
        let packed = Payload::Packed(Packed::new(msgpack::encode(&v), wire));
        let plain = Payload::from(v.clone());
        assert_eq!(packed.wire_size(), plain.wire_size());
        assert_eq!(*packed.to_value(), v);
        assert_eq!(packed.clone().into_value(), v);
        assert_eq!(plain.clone().into_packed(), msgpack::encode(&v));
        assert_eq!(packed.clone().into_packed(), msgpack::encode(&v));
        assert!(packed.as_value().is_none());
        assert_eq!(plain.as_value(), Some(&v));
    }
}

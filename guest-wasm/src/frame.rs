//! The frame `receive-frame` hands a message over in: its topic, its
//! sender's pid and its payloads (MessagePack each), each piece a
//! little-endian `u32` length and its bytes, the payloads preceded by their
//! count (`wit/process.wit`; the SDK's `frame` module reads it).
//!
//! Why: lowering a WIT `message` writes four lists into the guest (topic,
//! sender, the payload list, a payload), each through a call of the
//! guest's `cabi_realloc`, about 500 instructions apiece in wasmtime 48: a
//! third of what taking a small message cost a component. A frame is one
//! list, one call.
//!
//! Guarantees: the frame holds exactly the message `receive` would lower,
//! piece for piece; a length never wraps (a message is bounded by the
//! mailbox's `u32` byte count, and a longer piece could not be lowered into
//! 32-bit linear memory anyway; one would be written as `u32::MAX`, which
//! the reader refuses as running past the frame).

use warren_core::{Message, Payload, Pid, msgpack};

/// Bytes of a piece's length.
const LEN: usize = 4;

/// The frame of `m`.
pub(crate) fn message_frame(m: &Message) -> Vec<u8> {
    frame(&m.topic, m.from, &m.payloads)
}

/// The frame of a message on `topic` from `from` carrying `payloads`.
fn frame(topic: &str, from: Pid, payloads: &[Payload]) -> Vec<u8> {
    let topic = topic.as_bytes();
    let sender = from.text();
    let sender = sender.as_str().as_bytes();
    let sizes: usize = payloads.iter().map(|p| LEN + packed_len(p)).sum();
    let mut out = Vec::with_capacity(3 * LEN + topic.len() + sender.len() + sizes);
    piece(&mut out, topic);
    piece(&mut out, sender);
    put_len(&mut out, payloads.len());
    for p in payloads {
        match p {
            Payload::Packed(packed) => piece(&mut out, packed.bytes()),
            Payload::Value(v) => {
                let at = out.len();
                put_len(&mut out, 0);
                msgpack::write_value(&mut out, v);
                let len = out.len() - at - LEN;
                if let Some(head) = out.get_mut(at..at + LEN) {
                    head.copy_from_slice(&len_bytes(len));
                }
            }
        }
    }
    out
}

/// The length of a payload's encoding when it has one already (a value
/// is measured as it is written).
fn packed_len(p: &Payload) -> usize {
    match p {
        Payload::Packed(packed) => packed.bytes().len(),
        Payload::Value(_) => 0,
    }
}

/// Writes `bytes` as a piece: its length, then itself.
fn piece(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Writes a length.
fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&len_bytes(n));
}

/// A length as the frame holds it (see the module doc for the bound).
fn len_bytes(n: usize) -> [u8; LEN] {
    u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_core::{Packed, Value};

    /// Reads a piece at `at`, answering it and where the next begins.
    fn read(frame: &[u8], at: usize) -> (&[u8], usize) {
        let n = u32::from_le_bytes(frame[at..at + LEN].try_into().expect("a length")) as usize;
        (&frame[at + LEN..at + LEN + n], at + LEN + n)
    }

    #[test]
    fn a_frame_holds_the_topic_sender_and_every_payload_in_order() {
        let from = Pid::new(3, 77);
        let packed = Payload::Value(Value::Int(5)).into_packed();
        let payloads = [
            Payload::Value(Value::str("k")),
            Payload::Packed(Packed::new(packed.clone(), packed.len())),
        ];
        let frame = frame("put", from, &payloads);
        let (topic, at) = read(&frame, 0);
        assert_eq!(topic, b"put");
        let (sender, at) = read(&frame, at);
        assert_eq!(sender, from.text().as_str().as_bytes());
        let count = u32::from_le_bytes(frame[at..at + LEN].try_into().expect("a length"));
        assert_eq!(count, 2);
        let (first, at) = read(&frame, at + LEN);
        assert_eq!(first, msgpack::encode(&Value::str("k")).as_slice());
        let (second, end) = read(&frame, at);
        assert_eq!(second, packed.as_slice());
        assert_eq!(end, frame.len(), "nothing after the last payload");
    }

    #[test]
    fn a_message_without_payloads_has_a_zero_count() {
        let frame = frame("stop", Pid::new(1, 2), &[]);
        assert_eq!(&frame[frame.len() - LEN..], &0u32.to_le_bytes());
    }
}

//! MessagePack payloads of components: the host's codec
//! ([`warren_core::msgpack`]), so every language encodes values alike.

pub use warren_core::msgpack::{decode, encode};

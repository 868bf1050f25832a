//! The WebAssembly front-end of Warren: components implementing the
//! `warren:process` world run as processes on wasmtime.
//!
//! One `Engine` serves the whole runtime; each entry is compiled once (and
//! cached on disk) into a pre-instantiated component; each process gets its
//! own `Store`. Blocking imports (`receive`, `wait`, `sleep`, `exec`) are
//! async host functions: the guest's fiber suspends and only that process
//! waits, while the worker runs others. A process is polled again only when
//! the host queues something for it (a message, an event, a timer).

mod bindings;
mod channel;
mod driver;
mod frame;
mod host;
mod limiter;
mod link;
mod lookup;
mod payload;
mod program;
mod state;
mod ticker;
mod wasi;

pub use channel::MAX_CHANNEL_CAPACITY;
pub use driver::MAX_RESOURCES;
pub use limiter::MAX_TABLE_ELEMENTS;
pub use payload::{decode, encode};
pub use program::{
    DEFAULT_MAX_MEMORY, DEFAULT_POOL_SIZE, EPOCH_TICK, EngineConfig, WIT_PACKAGE, WIT_VERSION,
    WasmEngine, WasmError, WasmProgram, wasm_frontend,
};
pub use wasi::{DirGrant, Grants, MAX_LOG_LINE, MAX_RANDOM_BYTES};

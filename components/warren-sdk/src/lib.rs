//! Write Warren processes in Rust: a component built with
//! `cargo build --target wasm32-wasip2` that implements [`Process`] and calls
//! [`export!`] runs as a Warren process, trading messages with Lua and other
//! components. Values are MessagePack, so any `Serialize` type can be sent.
//!
//! ```ignore
//! struct Echo;
//! impl warren_sdk::Process for Echo {
//!     fn run(_args: warren_sdk::Args) -> Result<warren_sdk::Payload, warren_sdk::Error> {
//!         while let Some(msg) = warren_sdk::receive(None)? {
//!             warren_sdk::send_raw(&msg.from, &msg.topic, msg.payloads.clone())?;
//!         }
//!         warren_sdk::payload(&())
//!     }
//! }
//! warren_sdk::export!(Echo);
//! ```
//!
//! # How values map to Lua
//!
//! [`payload`] encodes with rmp-serde's `to_vec_named`; [`decode`] reads
//! with rmp-serde and, if that fails, once more leniently. The full table,
//! with every edge case and its exact error, is `docs/data-mapping.md`; in
//! short:
//!
//! - Integers stay integers and floats stay floats, both ways: a Lua float
//!   never decodes as a Rust integer, even `3.0` (`6 / 2` in Lua is a
//!   float). Integer fields accept only integers in their range; float
//!   fields accept integers too. A `u64` above `i64::MAX` cannot be sent
//!   (`send` fails with `Invalid`). NaN, ±inf and -0.0 cross unchanged.
//! - `String`/`char` are Lua strings. A Lua string crosses as MessagePack
//!   `str` when it is valid UTF-8 and as `bin` otherwise, so use
//!   `serde_bytes` (or any `deserialize_byte_buf` type) for binary data;
//!   plain `Vec<u8>` is sent as an array of integers and does not decode
//!   from a UTF-8 Lua string.
//! - Structs are tables keyed by field name; enums are externally tagged
//!   (a unit variant is its name, other variants `{Name = content}`);
//!   tuples and `Vec`s are sequence tables; maps with string, integer or
//!   boolean keys are tables with those keys.
//! - `None` and `()` are `nil`, so they vanish as table values: an `Option`
//!   field round-trips (absent means `None`), but a `None` inside a `Vec`
//!   leaves a hole (the table then comes back as a map), a `None` map value
//!   drops its key, and a `()` field comes back missing.
//! - Lua's one empty table arrives as an empty map; [`decode`] reads it as
//!   an empty `Vec`, map, struct of options/defaults or unit struct,
//!   whichever each place wants.
//! - A Rust map with integer keys `1..n` arrives in Lua as a sequence and
//!   comes back as an array.
//! - A map `{"@error": true, kind, message, retryable, details}` is what a
//!   Lua error object crosses as, and any such map reaching Lua becomes an
//!   error object again.
//! - At most 64 levels of nesting; payloads count against the host's
//!   `max_message_bytes`.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "process",
        pub_export_macro: true,
        default_bindings_module: "warren_sdk::bindings",
    });
}

use bindings::warren::process::host;
use bindings::warren::process::types;

#[cfg(any(test, all(target_family = "wasm", not(target_feature = "atomics"))))]
mod alloc;
mod channel;
mod frame;
mod lenient;

#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
pub use alloc::FreeLists;
pub use channel::{Channel, Item, Select, Selected, after, events, inbox, listen, unlisten};

pub use types::{ErrorKind, EventKind, Level};

/// A MessagePack-encoded value.
pub type Payload = Vec<u8>;

/// The spawn arguments of a process, each MessagePack.
pub struct Args(pub Vec<Payload>);

impl Args {
    /// Argument `i` (0-based) decoded as `T`.
    pub fn get<T: DeserializeOwned>(&self, i: usize) -> Result<T, Error> {
        let bytes = self
            .0
            .get(i)
            .ok_or_else(|| Error::new(ErrorKind::Invalid, format!("missing argument {}", i + 1)))?;
        decode(bytes)
    }

    /// How many arguments there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An error as every Warren language sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// The kind, as in the Lua `errors` module.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
    /// Whether retrying may help.
    pub retryable: bool,
}

impl Error {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            retryable: false,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.message, self.kind)
    }
}

impl std::error::Error for Error {}

impl From<types::Error> for Error {
    fn from(e: types::Error) -> Self {
        Error {
            kind: e.kind,
            message: e.message,
            retryable: e.retryable,
        }
    }
}

impl From<Error> for types::Error {
    fn from(e: Error) -> Self {
        types::Error {
            kind: e.kind,
            message: e.message,
            retryable: e.retryable,
        }
    }
}

/// Encodes a value as a payload. Structs encode as maps keyed by their
/// field names, so a Lua receiver sees `t.field`, as the author wrote it.
pub fn payload<T: Serialize + ?Sized>(value: &T) -> Result<Payload, Error> {
    rmp_serde::to_vec_named(value).map_err(|e| Error::new(ErrorKind::Invalid, e.to_string()))
}

/// Decodes a payload.
///
/// Lua cannot say everything serde can, so a payload that does not decode
/// as it is gets a second, lenient reading before the first error is
/// returned: an empty map (how every empty Lua table arrives) is read as an
/// empty sequence, tuple or unit struct wherever one of those is wanted,
/// each in its own place, so `{list = {}, map = {}}` decodes into a struct
/// with an empty `Vec` and an empty map; and a `str` is read as bytes
/// where `serde_bytes` or an `i128`/`u128` wants `bin` (a Lua string whose
/// bytes are valid UTF-8 crosses as `str`). See `docs/data-mapping.md`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    rmp_serde::from_slice(bytes)
        .or_else(|first| {
            // The first error names what was wrong with what was sent.
            rmp_serde::from_slice::<lenient::Tree>(bytes)
                .and_then(T::deserialize)
                .map_err(|_| first)
        })
        .map_err(|e| Error::new(ErrorKind::Invalid, format!("cannot decode payload: {e}")))
}

/// A message from the inbox.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// The sender's pid.
    pub from: String,
    /// Its payloads.
    pub payloads: Vec<Payload>,
}

impl Message {
    /// The first payload, decoded as `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let first = self
            .payloads
            .first()
            .ok_or_else(|| Error::new(ErrorKind::Invalid, "message has no payload"))?;
        decode(first)
    }
}

/// A lifecycle event.
#[derive(Debug, Clone)]
pub struct Event {
    /// EXIT, LINK_DOWN or CANCEL.
    pub kind: EventKind,
    /// The process it is about.
    pub from: String,
    /// For EXIT and LINK_DOWN: what its main returned, or its error.
    pub result: Option<Result<Payload, Error>>,
    /// For CANCEL: the reason.
    pub reason: Option<Payload>,
}

pub(crate) fn event(e: types::Event) -> Event {
    let result = e.outcome.map(|r| match r {
        types::ExitResult::Value(v) => Ok(v),
        types::ExitResult::Failed(err) => Err(err.into()),
    });
    Event {
        kind: e.kind,
        from: e.sender,
        result,
        reason: e.reason,
    }
}

pub(crate) fn message(m: types::Message) -> Message {
    Message {
        topic: m.topic,
        from: m.sender,
        payloads: m.payloads,
    }
}

pub(crate) fn nanos(timeout: Option<Duration>) -> Option<u64> {
    timeout.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// This process's pid.
pub fn pid() -> String {
    host::self_pid()
}

/// Spawns `entry` on `host` with `args`.
pub fn spawn(entry: &str, host_id: &str, args: &[Payload]) -> Result<String, Error> {
    Ok(host::spawn(entry, host_id, args, false, false)?)
}

/// Spawns and links.
pub fn spawn_linked(entry: &str, host_id: &str, args: &[Payload]) -> Result<String, Error> {
    Ok(host::spawn(entry, host_id, args, true, false)?)
}

/// Spawns and monitors.
pub fn spawn_monitored(entry: &str, host_id: &str, args: &[Payload]) -> Result<String, Error> {
    Ok(host::spawn(entry, host_id, args, false, true)?)
}

/// Spawns, waits for the exit, returns what the entry's main returned.
pub fn exec(entry: &str, host_id: &str, args: &[Payload]) -> Result<Payload, Error> {
    Ok(host::exec(entry, host_id, args)?)
}

/// Sends `value` on `topic` to a pid or registered name.
pub fn send<T: Serialize + ?Sized>(dest: &str, topic: &str, value: &T) -> Result<(), Error> {
    // Encoded into a buffer kept between sends and lent as a one-payload
    // slice: a send allocates neither the payload nor a list around it.
    SEND_BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            rmp_serde::encode::write_named(&mut *buf, value)
                .map_err(|e| Error::new(ErrorKind::Invalid, e.to_string()))?;
            let sent = host::send(dest, topic, std::slice::from_ref(&*buf));
            if buf.capacity() > SEND_BUFFER_KEEP {
                *buf = Vec::new();
            }
            Ok(sent?)
        }
        // A `Serialize` that sends while it is being encoded: a buffer of
        // its own.
        Err(_) => {
            let payload = payload(value)?;
            Ok(host::send(dest, topic, std::slice::from_ref(&payload))?)
        }
    })
}

/// Largest buffer [`send`] keeps for the next send: past it, the buffer is
/// given back after the send, so a component that once sent a large value
/// does not hold that much of its memory for good.
const SEND_BUFFER_KEEP: usize = 64 << 10;

thread_local! {
    /// The buffer [`send`] encodes into, kept between sends.
    static SEND_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Sends already-encoded payloads.
pub fn send_raw(dest: &str, topic: &str, payloads: Vec<Payload>) -> Result<(), Error> {
    Ok(host::send(dest, topic, &payloads)?)
}

/// The next inbox message; `None` when `timeout` passes first. Blocks only this process.
pub fn receive(timeout: Option<Duration>) -> Result<Option<Message>, Error> {
    host::receive_frame(nanos(timeout))
        .map(|f| frame::message(&f))
        .transpose()
}

/// The next lifecycle event; `None` on timeout.
pub fn next_event(timeout: Option<Duration>) -> Option<Event> {
    host::next_event(nanos(timeout)).map(event)
}

/// What [`wait`] returned.
#[derive(Debug, Clone)]
pub enum Wake {
    /// An inbox message.
    Message(Message),
    /// A lifecycle event.
    Event(Event),
    /// The timeout passed.
    Timeout,
}

/// Whichever comes first: a message, an event, or the timeout.
pub fn wait(timeout: Option<Duration>) -> Wake {
    match host::wait(nanos(timeout)) {
        types::Wake::Message(m) => Wake::Message(message(m)),
        types::Wake::Event(e) => Wake::Event(event(e)),
        types::Wake::Timeout => Wake::Timeout,
    }
}

/// Links to a pid or name.
pub fn link(target: &str) -> Result<(), Error> {
    Ok(host::link(target)?)
}

/// Removes a link.
pub fn unlink(target: &str) -> Result<(), Error> {
    Ok(host::unlink(target)?)
}

/// Monitors a pid or name.
pub fn monitor(target: &str) -> Result<(), Error> {
    Ok(host::monitor(target)?)
}

/// Removes a monitor.
pub fn unmonitor(target: &str) -> Result<(), Error> {
    Ok(host::unmonitor(target)?)
}

/// Delivers a CANCEL event with `reason`.
pub fn cancel<T: Serialize + ?Sized>(target: &str, reason: &T) -> Result<(), Error> {
    Ok(host::cancel(target, &payload(reason)?)?)
}

/// Terminates a process.
pub fn terminate(target: &str) -> Result<(), Error> {
    Ok(host::terminate(target)?)
}

/// Whether linked exits arrive as LINK_DOWN events instead of killing this process.
pub fn set_trap_links(trap: bool) {
    host::set_trap_links(trap);
}

/// Whether linked exits arrive as LINK_DOWN events (see [`set_trap_links`]).
pub fn trap_links() -> bool {
    host::trap_links()
}

/// The wall-clock time, in nanoseconds since the Unix epoch.
pub fn now_unix_ns() -> i64 {
    host::now_unix_ns()
}

/// Registers `name` for this process (or `target`).
pub fn register(name: &str, target: Option<&str>) -> Result<(), Error> {
    Ok(host::register(name, target)?)
}

/// The pid registered as `name`.
pub fn lookup(name: &str) -> Option<String> {
    host::lookup(name)
}

/// Releases a name this process holds.
pub fn unregister(name: &str) -> bool {
    host::unregister(name)
}

/// Sleeps; other processes keep running.
pub fn sleep(duration: Duration) {
    host::sleep(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
}

/// Writes to the host log, tagged with this process's pid.
pub fn log(level: Level, text: &str) {
    host::log(level, text);
}

/// A Warren process written in Rust.
pub trait Process {
    /// The process's main function.
    fn run(args: Args) -> Result<Payload, Error>;
}

#[doc(hidden)]
pub struct Adapter<P: Process>(std::marker::PhantomData<P>);

impl<P: Process> bindings::Guest for Adapter<P> {
    fn run(args: Vec<Payload>) -> Result<Payload, types::Error> {
        P::run(Args(args)).map_err(Into::into)
    }
}

/// Exports `$t: Process` as this component's entry point.
#[macro_export]
macro_rules! export {
    ($t:ty) => {
        type __WarrenAdapter = $crate::Adapter<$t>;
        $crate::bindings::export!(__WarrenAdapter with_types_in $crate::bindings);
    };
}

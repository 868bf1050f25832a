//! What a process can receive: messages, lifecycle events, timer fires, and
//! the host's own signals (start, kill, link exits).

use std::sync::Arc;

use crate::error::ProcError;
use crate::frontend::Program;
use crate::limits::HostQuota;
use crate::payload::Payload;
use crate::pid::Pid;
use crate::value::Value;

/// How a process ended: what its main returned, or the error it failed with.
pub type Exit = Result<Value, ProcError>;

/// A message in a mailbox. Not `Clone`: its reservation is given back
/// once, when it is dropped.
#[derive(Debug)]
pub struct Message {
    /// The sender.
    pub from: Pid,
    /// The topic it was sent on.
    pub topic: Arc<str>,
    /// Zero or more payloads, copied from the sender.
    pub payloads: Vec<Payload>,
    /// The sender host's `memory_total` held for it while it is queued.
    pub(crate) held: Option<Reservation>,
}

impl Message {
    /// The bytes its payloads count as (`limits::wire_size`), as measured
    /// when it was sent.
    pub fn wire_bytes(&self) -> u64 {
        match &self.held {
            Some(held) => held.bytes,
            None => {
                let bytes: usize = self.payloads.iter().map(Payload::wire_size).sum();
                u64::try_from(bytes).unwrap_or(u64::MAX)
            }
        }
    }
}

/// Bytes of the sending host's `memory_total` held for a queued message,
/// given back when the message is dropped (taken by its receiver, whose
/// front-end then counts it as its own memory, or discarded with a process
/// that exited): messages in flight count against the tenant that sent
/// them, so a flood of them cannot take the machine past the limit nor
/// fill another tenant's memory.
#[derive(Debug)]
pub(crate) struct Reservation {
    pub quota: Arc<HostQuota>,
    pub bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.quota.release_memory(self.bytes);
    }
}

/// The spawning host's `memory_total` held for a start's arguments while
/// they wait to be taken (nothing for a spawn from outside or of small
/// arguments): given back when the start is dropped, taken by the child's
/// front-end (whose memory then holds them) or discarded. Spawns onto a
/// busy host queued 10,000 arguments of 1 MB there, counted by no host.
#[derive(Clone, Debug, Default)]
pub struct Held(
    #[expect(dead_code, reason = "kept for its Drop, which gives the bytes back")]
    pub(crate)  Option<Arc<Reservation>>,
);

/// A lifecycle event, delivered to `process.events()`.
#[derive(Clone, Debug)]
pub enum Event {
    /// A monitored process exited (normally or not).
    Exit {
        /// The process that exited.
        from: Pid,
        /// How it ended.
        result: Exit,
    },
    /// A linked process exited abnormally and this process traps links.
    LinkDown {
        /// The process that exited.
        from: Pid,
        /// How it ended.
        result: Exit,
    },
    /// Another process asked this one to stop.
    Cancel {
        /// Who asked.
        from: Pid,
        /// The reason given.
        reason: Value,
    },
}

impl Event {
    /// The bytes it carries: its result or reason as `wire_size` counts
    /// it, or an error's message and details (what a front-end or the
    /// core's mailbox charges for it, besides a fixed part of its own).
    pub fn carried_bytes(&self) -> u64 {
        let value = |v: &Value| crate::limits::wire_size(std::slice::from_ref(v));
        let bytes = match self {
            Event::Exit { result, .. } | Event::LinkDown { result, .. } => match result {
                Ok(v) => value(v),
                Err(e) => e
                    .message
                    .len()
                    .saturating_add(e.details.as_ref().map_or(0, value)),
            },
            Event::Cancel { reason, .. } => value(reason),
        };
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }
}

/// Something queued for a process, in arrival order.
#[derive(Debug)]
pub enum Item {
    /// Start running `program` with `args` (always the first item).
    Start {
        /// The entry to run.
        program: Arc<Program>,
        /// Arguments to its main function.
        args: Vec<Value>,
        /// Its context values (`ctx` module): a map, or `Nil`.
        context: Value,
        /// The spawner's memory held for them while they wait.
        held: Held,
    },
    /// A message.
    Msg(Message),
    /// A lifecycle event.
    Event(Event),
    /// A timer the process started has fired.
    Timer(u64),
    /// The process must stop now with this reason.
    Kill(ProcError),
    /// Something the front-end awaits outside the host (work another
    /// thread does for the process) has completed: run the process again.
    Wake,
    /// A host call the process started has completed (see
    /// [`crate::hostcall`]).
    Done {
        /// The id [`Core::start_op`](crate::Core::start_op) returned.
        op: u64,
        /// What it completed with.
        result: crate::hostcall::OpResult,
    },
}

/// Host-internal signal: a linked process exited. Turned into an [`Event`]
/// or a [`Item::Kill`] by the receiving core, depending on `trap_links`.
#[derive(Clone, Debug)]
pub(crate) struct LinkExit {
    pub from: Pid,
    pub result: Exit,
}

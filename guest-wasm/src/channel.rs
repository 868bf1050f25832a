//! Channels of a WASM process, as the `warren:process/channels` resource.
//!
//! A channel is local to the process that made it. The guest's own channels
//! hold values in the store; `inbox`, `events`, `listen` and `after` channels
//! read the process's mailbox, which the core keeps and fills. A value a
//! guest's own channel buffers is host memory counted as the process's
//! (`ProcLimiter::hold`, given back when it is received or the channel
//! dropped), and no larger than `max_message_bytes`. Because a guest has a
//! single thread, an operation only the guest itself could complete (a send
//! on a full channel, a receive on an empty one it made) can never complete:
//! it is reported as a deadlock error instead of hanging the process.

use std::collections::VecDeque;

use warren_core::{ErrorKind, ProcError, Value};
use wasmtime::component::Resource;

use crate::bindings::warren::process::channels::{Host, HostChannel, SelectCase, Selected};
use crate::bindings::warren::process::types::{Error as WitError, Item};
use crate::host::{now_unix_ns, wit_error, wit_event, wit_message};
use crate::limiter::ProcLimiter;
use crate::payload::{decode, encode};
use crate::state::{ProcState, with_mailbox};
use warren_core::{Mailbox, Pid};

/// Most values a guest channel buffers; larger capacities are clamped,
/// because each buffered value is a host allocation (counted as the
/// process's memory with [`VALUE_OVERHEAD`]).
pub const MAX_CHANNEL_CAPACITY: u32 = 1024;

/// Bytes a buffered value is counted as beyond its own: its allocation's
/// header and rounding and its slot in the queue. Counted by its length
/// alone, 9,990 channels of 1,024 one-byte values held about 310 MiB of
/// the host for a process limited to 32 MiB.
pub const VALUE_OVERHEAD: usize = 64;

/// Bytes a listen handle is counted as beyond its topic's twice (the
/// handle's copy and the mailbox's): 9,990 listens of 1 KiB topics held
/// about 20 MB uncounted per process.
pub const LISTEN_OVERHEAD: usize = 128;

/// What a buffered `value` is counted as.
fn value_cost(value: &[u8]) -> usize {
    value.len().saturating_add(VALUE_OVERHEAD)
}

/// What a listen handle on `topic` is counted as.
pub(crate) fn listen_cost(topic: &str) -> usize {
    topic
        .len()
        .saturating_mul(2)
        .saturating_add(LISTEN_OVERHEAD)
}

/// What feeds a channel (opaque outside this crate: guests hold handles to it).
pub enum ChannelRes {
    /// Made by the guest: values it sent itself.
    Local {
        capacity: usize,
        buffer: VecDeque<Vec<u8>>,
        closed: bool,
    },
    /// Inbox messages; once `closed`, a receive takes what is there and
    /// then answers `none` instead of waiting (the channel's own close:
    /// the mailbox keeps feeding the process's other handles).
    Inbox { closed: bool },
    /// Lifecycle events; `closed` as for the inbox.
    Events { closed: bool },
    /// Payloads of messages with this topic, while this handle's listen
    /// (the mailbox's number for it) holds it.
    Topic { topic: String, listen: u64 },
    /// A topic channel closed (unlistened): receives end at once, and its
    /// drop releases nothing.
    Unlistened,
    /// A one-shot timer; `done` once it has yielded or was stopped.
    Timer { id: u64, done: bool },
}

/// The outcome of trying one case without blocking.
enum Try {
    /// Taken; for a receive, what it got (`None`: closed).
    Ready(Option<Item>),
    /// Not now; `live` when the host may still make it ready.
    Blocked { live: bool },
}

fn err(kind: ErrorKind, message: impl Into<String>) -> WitError {
    wit_error(&ProcError::new(kind, message))
}

fn deadlock(what: &str) -> WitError {
    err(
        ErrorKind::Internal,
        format!("deadlock: {what} that nothing else can ever make ready"),
    )
}

fn try_receive(chan: &mut ChannelRes, pid: Pid, limits: &mut ProcLimiter) -> Try {
    if let ChannelRes::Local { buffer, closed, .. } = chan {
        return match buffer.pop_front() {
            Some(bytes) => {
                limits.release(value_cost(&bytes));
                Try::Ready(Some(Item::Value(bytes)))
            }
            None if *closed => Try::Ready(None),
            None => Try::Blocked { live: false },
        };
    }
    with_mailbox(pid, |mb| try_mailbox(chan, mb)).unwrap_or(Try::Blocked { live: true })
}

/// [`try_receive`] on a channel the mailbox feeds.
fn try_mailbox(chan: &mut ChannelRes, mb: &mut Mailbox) -> Try {
    let mut closed = false;
    let taken = match chan {
        ChannelRes::Local { .. } => return Try::Blocked { live: false },
        ChannelRes::Inbox { closed: c } => {
            closed = *c;
            mb.take_message().map(|m| Item::Message(wit_message(m)))
        }
        ChannelRes::Events { closed: c } => {
            closed = *c;
            mb.take_event().map(|e| Item::Event(wit_event(e)))
        }
        ChannelRes::Topic { topic, listen } => match mb.take_topic(topic, *listen) {
            Some(v) => v.map(|v| Item::Value(v.into_packed())),
            None => return Try::Ready(None),
        },
        ChannelRes::Unlistened => return Try::Ready(None),
        ChannelRes::Timer { id, done } => {
            if *done {
                return Try::Blocked { live: false };
            }
            if !mb.take_fired(*id) {
                return Try::Blocked { live: true };
            }
            *done = true;
            Some(Item::Value(encode(&Value::Int(now_unix_ns()))))
        }
    };
    match taken {
        Some(item) => Try::Ready(Some(item)),
        None if closed => Try::Ready(None),
        None => Try::Blocked { live: true },
    }
}

fn try_send(
    chan: &mut ChannelRes,
    value: &[u8],
    limits: &mut ProcLimiter,
) -> Result<Try, WitError> {
    let ChannelRes::Local {
        capacity,
        buffer,
        closed,
    } = chan
    else {
        return Err(err(
            ErrorKind::Invalid,
            "send on a channel the host feeds (inbox, events, listen or timer)",
        ));
    };
    if *closed {
        return Err(err(ErrorKind::Invalid, "send on a closed channel"));
    }
    if buffer.len() >= *capacity {
        return Ok(Try::Blocked { live: false });
    }
    limits
        .hold(value_cost(value))
        .map_err(|why| err(ErrorKind::RateLimited, why))?;
    buffer.push_back(value.to_vec());
    Ok(Try::Ready(None))
}

/// Refuses a value for a guest's own channel that is larger than
/// `max_message_bytes` or not MessagePack, before it is decoded (the
/// check's decode is then bounded) or copied.
fn check_value(value: &[u8], limits: &ProcLimiter) -> Result<(), WitError> {
    let max = limits.quota().limits.max_message_bytes;
    if value.len() > max {
        let why = warren_core::error::one_too_large("a channel value", value.len(), max);
        return Err(err(ErrorKind::Invalid, why));
    }
    decode(value)
        .map(|_| ())
        .map_err(|e| err(ErrorKind::Invalid, e))
}

/// Gives back what a dropped channel still held: its buffered values, or
/// its topic while it listened.
fn release_buffer(chan: &ChannelRes, limits: &mut ProcLimiter) {
    match chan {
        ChannelRes::Local { buffer, .. } => {
            limits.release(buffer.iter().map(|v| value_cost(v)).sum());
        }
        ChannelRes::Topic { topic, .. } => limits.release(listen_cost(topic)),
        _ => {}
    }
}

/// The channel behind handle `ch` in `table`.
fn channel_in<'t>(
    table: &'t mut wasmtime::component::ResourceTable,
    ch: &Resource<ChannelRes>,
) -> Result<&'t mut ChannelRes, WitError> {
    table
        .get_mut(ch)
        .map_err(|e| err(ErrorKind::Invalid, format!("bad channel handle: {e}")))
}

impl ProcState {
    /// Tries every case in order and takes the first ready one; when none
    /// is, `Err(live)` says whether the host may still make one ready.
    fn try_cases(
        &mut self,
        cases: &[SelectCase],
    ) -> Result<Result<(u32, Option<Item>), bool>, WitError> {
        let pid = self.pid;
        let mut live = false;
        for (i, case) in cases.iter().enumerate() {
            let outcome = match case {
                SelectCase::Receive(ch) => {
                    try_receive(channel_in(&mut self.table, ch)?, pid, &mut self.limits)
                }
                SelectCase::Send((ch, value)) => {
                    try_send(channel_in(&mut self.table, ch)?, value, &mut self.limits)?
                }
            };
            match outcome {
                Try::Ready(item) => return Ok(Ok((u32::try_from(i).unwrap_or(u32::MAX), item))),
                Try::Blocked { live: l } => live |= l,
            }
        }
        Ok(Err(live))
    }

    async fn select_cases(
        &mut self,
        cases: Vec<SelectCase>,
        timeout_ns: Option<u64>,
        nonblocking: bool,
    ) -> Result<Selected, WitError> {
        let most = warren_core::limits::MAX_SELECT_CASES;
        if cases.len() > most {
            let why = format!("a select of {} cases: at most {most}", cases.len());
            return Err(err(ErrorKind::Invalid, why));
        }
        // The send cases' values together, as one message's payloads: each
        // is decoded to be checked, and 25 of 1 MiB held the worker 1.3 s
        // in this one call.
        let max = self.limits.quota().limits.max_message_bytes;
        let total = cases.iter().fold(0usize, |sum, case| match case {
            SelectCase::Send((_, value)) => sum.saturating_add(value.len()),
            SelectCase::Receive(_) => sum,
        });
        if total > max {
            let why = warren_core::error::one_too_large("a select's send values", total, max);
            return Err(err(ErrorKind::Invalid, why));
        }
        for case in &cases {
            if let SelectCase::Send((_, value)) = case {
                check_value(value, &self.limits)?;
            }
        }
        match self.try_cases(&cases)? {
            Ok(taken) => return Ok(Selected::Ready(taken)),
            Err(_) if nonblocking => return Ok(Selected::WouldBlock),
            Err(false) if timeout_ns.is_none() => return Err(deadlock("a wait on channels")),
            Err(_) => {}
        }
        let found = self
            .wait_until(timeout_ns, |s| match s.try_cases(&cases) {
                Err(e) => Some(Err(e)),
                Ok(Ok(taken)) => Some(Ok(Selected::Ready(taken))),
                Ok(Err(_)) => None,
            })
            .await;
        found.unwrap_or(Ok(Selected::Timeout))
    }
}

impl HostChannel for ProcState {
    async fn new(&mut self, capacity: u32) -> wasmtime::Result<Resource<ChannelRes>> {
        let chan = ChannelRes::Local {
            capacity: capacity.min(MAX_CHANNEL_CAPACITY) as usize,
            buffer: VecDeque::new(),
            closed: false,
        };
        self.push_channel(chan)
    }

    async fn send(&mut self, ch: Resource<ChannelRes>, value: Vec<u8>) -> Result<(), WitError> {
        check_value(&value, &self.limits)?;
        match try_send(channel_in(&mut self.table, &ch)?, &value, &mut self.limits)? {
            Try::Ready(_) => Ok(()),
            Try::Blocked { .. } => Err(deadlock("a send on a full channel")),
        }
    }

    async fn receive(&mut self, ch: Resource<ChannelRes>) -> Result<Option<Item>, WitError> {
        let cases = vec![SelectCase::Receive(Resource::new_borrow(ch.rep()))];
        match self.select_cases(cases, None, false).await {
            Ok(Selected::Ready((_, item))) => Ok(item),
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn close(&mut self, ch: Resource<ChannelRes>) {
        let pid = self.pid;
        let Ok(chan) = self.table.get_mut(&ch) else {
            return;
        };
        match chan {
            ChannelRes::Local { closed, .. } => *closed = true,
            ChannelRes::Topic { .. } => unlisten(pid, chan, &mut self.limits),
            ChannelRes::Timer { id, done } => stop_timer(pid, *id, done),
            ChannelRes::Inbox { closed } | ChannelRes::Events { closed } => *closed = true,
            ChannelRes::Unlistened => {}
        }
    }

    async fn drop(&mut self, ch: Resource<ChannelRes>) -> wasmtime::Result<()> {
        let chan = self.table.delete(ch)?;
        release_buffer(&chan, &mut self.limits);
        self.limits.release(crate::limiter::HANDLE_BYTES);
        match chan {
            ChannelRes::Timer { id, mut done } => stop_timer(self.pid, id, &mut done),
            ChannelRes::Topic { topic, listen } => {
                with_mailbox(self.pid, |mb| mb.release(&topic, listen));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Stops the topic of listen handle `chan` (for every handle of it, as
/// `unlisten` does), gives back what the handle held for it and marks the
/// handle unlistened.
pub(crate) fn unlisten(pid: Pid, chan: &mut ChannelRes, limits: &mut ProcLimiter) {
    if let ChannelRes::Topic { topic, listen } = std::mem::replace(chan, ChannelRes::Unlistened) {
        limits.release(listen_cost(&topic));
        with_mailbox(pid, |mb| mb.unlisten(&topic, listen));
    }
}

/// Makes a timer that has not yielded yet yield nothing, ever.
pub(crate) fn stop_timer(pid: Pid, id: u64, done: &mut bool) {
    if !*done {
        crate::state::with_core(|c| c.cancel_timer(pid, id));
    }
    *done = true;
}

impl Host for ProcState {
    async fn select(
        &mut self,
        cases: Vec<SelectCase>,
        timeout_ns: Option<u64>,
        nonblocking: bool,
    ) -> Result<Selected, WitError> {
        self.select_cases(cases, timeout_ns, nonblocking).await
    }
}

//! The `warren:process/host` imports, on top of the worker's `Core`.
//! Failures a guest should see are `Err(error)` values; malformed payloads
//! from a guest are an `invalid` error for that call, never a host panic.

use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use warren_core::limits::Values;
use warren_core::msgpack::scan;
use warren_core::{
    ErrorKind, Event, Exit, Message, Packed, Payload, Pid, ProcError, SpawnRequest, Value,
};
use wasmtime::component::Resource;

use crate::bindings::warren::process::host::Host;
use crate::bindings::warren::process::types::{
    self as wit, Error as WitError, ErrorKind as WitKind, EventKind, ExitResult, Level, Wake,
};
use crate::channel::ChannelRes;
use crate::driver::TooManyHandles;
use crate::limiter::HANDLE_BYTES;
use crate::payload::{decode, encode};
use crate::state::{ProcState, with_core, with_mailbox};
use warren_core::Mailbox;

fn kind(k: ErrorKind) -> WitKind {
    match k {
        ErrorKind::NotFound => WitKind::NotFound,
        ErrorKind::AlreadyExists => WitKind::AlreadyExists,
        ErrorKind::Invalid => WitKind::Invalid,
        ErrorKind::PermissionDenied => WitKind::PermissionDenied,
        ErrorKind::Unavailable => WitKind::Unavailable,
        ErrorKind::Internal => WitKind::Internal,
        ErrorKind::Canceled => WitKind::Canceled,
        ErrorKind::Conflict => WitKind::Conflict,
        ErrorKind::Timeout => WitKind::Timeout,
        ErrorKind::RateLimited => WitKind::RateLimited,
        ErrorKind::Unknown => WitKind::Unknown,
    }
}

/// The host error kind of a guest error kind.
pub(crate) fn from_wit_kind(k: WitKind) -> ErrorKind {
    ErrorKind::ALL
        .into_iter()
        .find(|e| kind(*e) == k)
        .unwrap_or(ErrorKind::Unknown)
}

pub(crate) fn wit_error(e: &ProcError) -> WitError {
    WitError {
        kind: kind(e.kind),
        message: e.message.clone(),
        retryable: e.retryable,
    }
}

fn unavailable() -> WitError {
    wit_error(&ProcError::new(
        ErrorKind::Unavailable,
        "the host is not reachable from this thread",
    ))
}

/// Decodes every argument (or other list of values).
fn decode_all<T: From<Value>>(
    payloads: &[Vec<u8>],
    what: &str,
    max: usize,
) -> Result<Vec<T>, WitError> {
    check_raw(payloads, Values::SpawnArguments, max)?;
    payloads
        .iter()
        .enumerate()
        .map(|(i, p)| decode(p).map(T::from).map_err(|e| malformed(what, i, &e)))
        .collect()
}

/// A component's payloads as the core carries them: bytes that are
/// exactly what the runtime's encoder writes for a value that may be sent
/// are kept as they are, measured by [`scan`] (no tree is built, and a Lua
/// receiver builds its tables straight from them); any others are decoded,
/// so their errors and the core's checks are the decoded value's.
fn payloads_of(payloads: Vec<Vec<u8>>, max: usize) -> Result<Vec<Payload>, WitError> {
    check_raw(&payloads, Values::Payloads, max)?;
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, p)| match scan(&p) {
            Some(wire) => Ok(Payload::Packed(Packed::new(p, wire))),
            None => decode(&p)
                .map(Payload::from)
                .map_err(|e| malformed("payload", i, &e)),
        })
        .collect()
}

/// Refuses values whose bytes together pass `max` (`max_message_bytes`)
/// before any is decoded: a component may send any bytes, and a decoded
/// tree can be some 30 times its encoding (an array of nils).
fn check_raw(values: &[Vec<u8>], counted: Values, max: usize) -> Result<(), WitError> {
    // Counted before anything is decoded, in the core's words.
    if values.len() > warren_core::limits::MAX_PAYLOADS_PER_MESSAGE {
        let why = warren_core::limits::too_many_values(counted, values.len());
        return Err(wit_error(&ProcError::new(ErrorKind::Invalid, why)));
    }
    let bytes = values.iter().map(Vec::len).fold(0, usize::saturating_add);
    if bytes > max {
        let what = match counted {
            Values::SpawnArguments => "spawn arguments",
            Values::Payloads => "message payloads",
        };
        return Err(too_many_bytes(what, bytes, max));
    }
    Ok(())
}

/// The error for values of `bytes` bytes together, past `max`.
fn too_many_bytes(what: &str, bytes: usize, max: usize) -> WitError {
    let why = warren_core::error::too_large(what, bytes, max);
    wit_error(&ProcError::new(ErrorKind::Invalid, why))
}

/// The error for the `i`th value (from 0) of a list that did not decode.
fn malformed(what: &str, i: usize, e: &str) -> WitError {
    wit_error(&ProcError::new(
        ErrorKind::Invalid,
        format!("{what} {}: {e}", i + 1),
    ))
}

fn exit_result(exit: &Exit) -> ExitResult {
    match exit {
        Ok(v) => ExitResult::Value(encode(v)),
        Err(e) => ExitResult::Failed(wit_error(e)),
    }
}

/// A pid's text as the guest receives it, made from the text formatted on
/// the stack (`to_string` runs the formatting machinery for every message).
fn pid_string(pid: Pid) -> String {
    String::from(pid.text().as_str())
}

pub(crate) fn wit_message(m: Message) -> wit::Message {
    wit::Message {
        topic: m.topic.to_string(),
        sender: pid_string(m.from),
        payloads: m.payloads.into_iter().map(Payload::into_packed).collect(),
    }
}

pub(crate) fn wit_event(e: Event) -> wit::Event {
    match e {
        Event::Exit { from, result } => wit::Event {
            kind: EventKind::Exit,
            sender: pid_string(from),
            outcome: Some(exit_result(&result)),
            reason: None,
        },
        Event::LinkDown { from, result } => wit::Event {
            kind: EventKind::LinkDown,
            sender: pid_string(from),
            outcome: Some(exit_result(&result)),
            reason: None,
        },
        Event::Cancel { from, reason } => wit::Event {
            kind: EventKind::Cancel,
            sender: pid_string(from),
            outcome: None,
            reason: Some(encode(&reason)),
        },
    }
}

/// The wall-clock time in nanoseconds since the Unix epoch.
pub(crate) fn now_unix_ns() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

impl ProcState {
    fn core_call<R>(
        &self,
        f: impl FnOnce(&mut warren_core::Core, Pid) -> Result<R, ProcError>,
    ) -> Result<R, WitError> {
        let pid = self.pid;
        with_core(|c| f(c, pid))
            .ok_or_else(unavailable)?
            .map_err(|e| wit_error(&e))
    }

    /// The host's `max_message_bytes`.
    fn max_message_bytes(&self) -> usize {
        self.limits.quota().limits.max_message_bytes
    }

    fn target(&self, target: &str) -> Result<Pid, WitError> {
        self.core_call(|c, me| c.resolve(me, target))
    }

    /// `target` resolved and refused unless this process may reach it
    /// (`op` names the operation), before any payload of the call is looked
    /// at: bytes were judged (refused as malformed or too large) before the
    /// reach check, where every Lua path checks reach first.
    fn reach(&self, op: &str, target: &str) -> Result<Pid, WitError> {
        self.core_call(|c, me| {
            let to = c.resolve(me, target)?;
            c.check_reach(op, me, to)?;
            Ok(to)
        })
    }

    /// Arms a timer for `timeout_ns`, if any, and returns its id.
    pub(crate) fn arm(&mut self, timeout_ns: Option<u64>) -> Option<u64> {
        let ns = timeout_ns?;
        self.next_timer += 1;
        let id = self.next_timer;
        let pid = self.pid;
        with_core(|c| c.start_timer(pid, id, Duration::from_nanos(ns)));
        Some(id)
    }

    /// Waits until `take` finds something in the mailbox, or the timer fires.
    async fn wait_for<R>(
        &mut self,
        timeout_ns: Option<u64>,
        mut take: impl FnMut(&mut Mailbox) -> Option<R> + Send,
    ) -> Option<R> {
        self.wait_until(timeout_ns, move |s| {
            with_mailbox(s.pid, &mut take).flatten()
        })
        .await
    }

    /// Waits until `take` finds something (polled again whenever the host
    /// queues anything for this process), or `timeout_ns` passes (`None`).
    /// The timer, if any, never fires into a later wait.
    pub(crate) async fn wait_until<R>(
        &mut self,
        timeout_ns: Option<u64>,
        mut take: impl FnMut(&mut Self) -> Option<R> + Send,
    ) -> Option<R> {
        // Found at once: no timer is armed.
        if let Some(found) = take(self) {
            return Some(found);
        }
        let timer = self.arm(timeout_ns);
        let found = poll_fn(|_| {
            if let Some(found) = take(self) {
                return Poll::Ready(Some(found));
            }
            match timer {
                Some(id) if with_mailbox(self.pid, |mb| mb.take_fired(id)) == Some(true) => {
                    Poll::Ready(None)
                }
                _ => Poll::Pending,
            }
        })
        .await;
        if let Some(id) = timer
            && found.is_some()
        {
            let pid = self.pid;
            with_core(|c| c.cancel_timer(pid, id));
        }
        found
    }
}

impl wit::Host for ProcState {}

impl Host for ProcState {
    async fn self_pid(&mut self) -> String {
        pid_string(self.pid)
    }

    async fn spawn(
        &mut self,
        entry: String,
        host: String,
        args: Vec<Vec<u8>>,
        link: bool,
        monitor: bool,
    ) -> Result<String, WitError> {
        let max = self.core_call(|c, me| c.spawn_budget(me, &entry, &host))?;
        let args = decode_all(&args, "argument", max)?;
        let mut req = SpawnRequest::new(entry, host, args);
        req.link = link;
        req.monitor = monitor;
        self.core_call(|c, me| c.spawn(me, req)).map(pid_string)
    }

    async fn exec(
        &mut self,
        entry: String,
        host: String,
        raw: Vec<Vec<u8>>,
    ) -> Result<Vec<u8>, WitError> {
        let max = self.core_call(|c, me| c.spawn_budget(me, &entry, &host))?;
        let args = decode_all(&raw, "argument", max)?;
        // Not held while the child runs: host memory no limit counts (600 MB
        // for 80 components each waiting on an exec of 4 MB of arguments).
        drop(raw);
        let mut req = SpawnRequest::new(entry, host, args);
        req.monitor = true;
        let child = self.core_call(|c, me| c.spawn(me, req))?;
        // Terminated if this process ends while it waits (see
        // `Core::exec_waits_on`).
        self.core_call(|c, me| {
            c.exec_waits_on(me, child);
            Ok(())
        })?;
        let exit = self
            .wait_for(None, |mb| {
                let exit = |e: &Event| matches!(e, Event::Exit { from, .. } if *from == child);
                match mb.take_event_where(exit)? {
                    Event::Exit { result, .. } => Some(result),
                    _ => None,
                }
            })
            .await
            .ok_or_else(unavailable)?;
        exit.map(|v| encode(&v)).map_err(|e| wit_error(&e))
    }

    async fn send(
        &mut self,
        dest: String,
        topic: String,
        payloads: Vec<Vec<u8>>,
    ) -> Result<(), WitError> {
        let to = self.reach("send", &dest)?;
        let payloads = payloads_of(payloads, self.max_message_bytes())?;
        self.core_call(|c, me| c.send(me, to, &topic, payloads))
    }

    async fn receive(&mut self, timeout_ns: Option<u64>) -> Option<wit::Message> {
        self.wait_for(timeout_ns, Mailbox::take_message)
            .await
            .map(wit_message)
    }

    async fn receive_frame(&mut self, timeout_ns: Option<u64>) -> Option<Vec<u8>> {
        self.wait_for(timeout_ns, Mailbox::take_message)
            .await
            .map(|m| crate::frame::message_frame(&m))
    }

    async fn next_event(&mut self, timeout_ns: Option<u64>) -> Option<wit::Event> {
        self.wait_for(timeout_ns, Mailbox::take_event)
            .await
            .map(wit_event)
    }

    async fn wait(&mut self, timeout_ns: Option<u64>) -> Wake {
        let found = self
            .wait_for(timeout_ns, |mb| {
                if let Some(m) = mb.take_message() {
                    return Some(Wake::Message(wit_message(m)));
                }
                mb.take_event().map(|e| Wake::Event(wit_event(e)))
            })
            .await;
        found.unwrap_or(Wake::Timeout)
    }

    async fn inbox(&mut self) -> wasmtime::Result<Resource<ChannelRes>> {
        self.push_channel(ChannelRes::Inbox { closed: false })
    }

    async fn events(&mut self) -> wasmtime::Result<Resource<ChannelRes>> {
        self.push_channel(ChannelRes::Events { closed: false })
    }

    async fn listen(&mut self, topic: String) -> Result<Resource<ChannelRes>, WitError> {
        if let Some(why) = warren_core::limits::topic_refused(topic.as_bytes()) {
            let msg = format!("listen: {why}");
            return Err(wit_error(&ProcError::new(ErrorKind::Invalid, msg)));
        }
        // Counted first, given back with the handle (unlisten or drop),
        // the handle's own bytes with its drop.
        let cost = crate::channel::listen_cost(&topic) + HANDLE_BYTES;
        self.limits.hold(cost).map_err(|why| {
            wit_error(&ProcError::new(
                ErrorKind::RateLimited,
                format!("listen: {why}"),
            ))
        })?;
        // The handle first: a topic counts one listen per live handle.
        let res = self
            .table
            .push(ChannelRes::Topic {
                topic: topic.clone(),
                listen: u64::MAX,
            })
            .map_err(|e| {
                let (kind, why) = match e {
                    wasmtime::component::ResourceTableError::Full => {
                        (ErrorKind::RateLimited, TooManyHandles.to_string())
                    }
                    other => (ErrorKind::Unavailable, other.to_string()),
                };
                wit_error(&ProcError::new(kind, format!("listen: {why}")))
            });
        let res = match res {
            Ok(res) => res,
            Err(e) => {
                self.limits.release(cost);
                return Err(e);
            }
        };
        // The handle names the listen it joined: one of an earlier listen
        // of the topic (unlistened since) neither reads nor stops this one.
        let id = with_mailbox(self.pid, |mb| mb.listen(&topic));
        if let (Some(id), Ok(ChannelRes::Topic { listen, .. })) = (id, self.table.get_mut(&res)) {
            *listen = id;
        }
        Ok(res)
    }

    async fn unlisten(&mut self, ch: Resource<ChannelRes>) {
        if let Ok(chan) = self.table.get_mut(&ch) {
            crate::channel::unlisten(self.pid, chan, &mut self.limits);
        }
    }

    async fn after(&mut self, duration_ns: u64) -> wasmtime::Result<Resource<ChannelRes>> {
        let id = self.arm(Some(duration_ns)).unwrap_or_default();
        self.push_channel(ChannelRes::Timer { id, done: false })
            .inspect_err(|_| crate::channel::stop_timer(self.pid, id, &mut false))
    }

    async fn link(&mut self, target: String) -> Result<(), WitError> {
        let to = self.target(&target)?;
        self.core_call(|c, me| c.link(me, to))
    }

    async fn unlink(&mut self, target: String) -> Result<(), WitError> {
        let to = self.target(&target)?;
        self.core_call(|c, me| c.unlink(me, to))
    }

    async fn monitor(&mut self, target: String) -> Result<(), WitError> {
        let to = self.target(&target)?;
        self.core_call(|c, me| c.monitor(me, to))
    }

    async fn unmonitor(&mut self, target: String) -> Result<(), WitError> {
        let to = self.target(&target)?;
        self.core_call(|c, me| c.unmonitor(me, to))
    }

    async fn cancel(&mut self, target: String, reason: Vec<u8>) -> Result<(), WitError> {
        let to = self.reach("cancel", &target)?;
        let max = self.max_message_bytes();
        if reason.len() > max {
            let why = warren_core::error::one_too_large("a cancel reason", reason.len(), max);
            return Err(wit_error(&ProcError::new(ErrorKind::Invalid, why)));
        }
        let reason =
            decode(&reason).map_err(|e| wit_error(&ProcError::new(ErrorKind::Invalid, e)))?;
        self.core_call(|c, me| c.cancel(me, to, reason))
    }

    async fn terminate(&mut self, target: String) -> Result<(), WitError> {
        let to = self.target(&target)?;
        self.core_call(|c, me| c.terminate(me, to, ProcError::terminated()))
    }

    async fn set_trap_links(&mut self, trap: bool) {
        let pid = self.pid;
        with_core(|c| c.set_trap_links(pid, trap));
    }

    async fn trap_links(&mut self) -> bool {
        let pid = self.pid;
        with_core(|c| c.trap_links(pid)).unwrap_or(false)
    }

    async fn register(&mut self, name: String, target: Option<String>) -> Result<(), WitError> {
        let pid = match target {
            Some(t) => Pid::parse(&t).ok_or_else(|| {
                wit_error(&ProcError::new(
                    ErrorKind::Invalid,
                    // Bounded as every quoted id: 4 MB of `\x01` made a
                    // 24 MB message here.
                    format!("\"{}\" is not a pid", warren_core::error::quoted_id(&t)),
                ))
            })?,
            None => self.pid,
        };
        self.core_call(|c, me| c.register(me, &name, pid))
    }

    async fn lookup(&mut self, name: String) -> Option<String> {
        // A name held by a process this host may not reach is not found.
        let me = self.pid;
        with_core(|c| c.lookup_for(me, &name).ok().flatten())
            .flatten()
            .map(pid_string)
    }

    async fn unregister(&mut self, name: String) -> bool {
        let me = self.pid;
        with_core(|c| c.unregister(me, &name)).unwrap_or(false)
    }

    async fn sleep(&mut self, duration_ns: u64) {
        self.wait_for(Some(duration_ns), |_| None::<()>).await;
    }

    async fn now_unix_ns(&mut self) -> i64 {
        now_unix_ns()
    }

    async fn log(&mut self, level: Level, text: String) {
        let pid = self.pid;
        // Cut and without line breaks (`warren_core::logline`).
        let text = warren_core::logline::log_line(&text);
        let at = match level {
            Level::Error => tracing::Level::ERROR,
            Level::Warn => tracing::Level::WARN,
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
        };
        // Within its host's log budget.
        if !self.limits.quota().admit_log(at, text.len()) {
            return;
        }
        match level {
            Level::Error => tracing::error!(target: "warren::wasm", %pid, "{text}"),
            Level::Warn => tracing::warn!(target: "warren::wasm", %pid, "{text}"),
            Level::Debug => tracing::debug!(target: "warren::wasm", %pid, "{text}"),
            Level::Info => tracing::info!(target: "warren::wasm", %pid, "{text}"),
        }
    }
}

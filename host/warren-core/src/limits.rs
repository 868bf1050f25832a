//! Per-host quotas: what one tenant's processes may consume.
//!
//! A host (`kind: process.host`) is a tenant boundary. Its [`HostLimits`]
//! are enforced for every process on it, whatever its language: the core
//! enforces the process count, message size, mailbox depth and which other
//! hosts may be reached; front-ends enforce memory and CPU through the
//! shared [`HostQuota`]. Every default is safe for code nobody reviewed.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::{ErrorKind, ProcError};
use crate::value::Value;

/// Default [`HostLimits::max_processes`]: a spawn storm stops here instead
/// of exhausting the machine's memory with idle processes.
pub const DEFAULT_MAX_PROCESSES: usize = 100_000;

/// Default [`HostLimits::memory_per_process`]: one process building a huge
/// table or string ends alone instead of starving its neighbours.
pub const DEFAULT_MEMORY_PER_PROCESS: u64 = 64 << 20;

/// Default [`HostLimits::memory_total`]: many processes each under their
/// own limit still cannot take the whole machine together.
pub const DEFAULT_MEMORY_TOTAL: u64 = 4 << 30;

/// Default [`HostLimits::cpu_slice`]: an infinite loop delays the other
/// processes of its worker by at most this much at a time.
pub const DEFAULT_CPU_SLICE: Duration = Duration::from_millis(5);

/// Default [`HostLimits::max_message_bytes`]: one send cannot copy an
/// unbounded payload into another process.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Default [`HostLimits::mailbox_limit`]: a fast sender cannot grow a slow
/// receiver's mailbox without bound; it gets `RATE_LIMITED` instead.
pub const DEFAULT_MAILBOX_LIMIT: u32 = 10_000;

/// The share of [`HostLimits::memory_per_process`] the messages a process
/// has not taken yet may hold, about, by their wire size (one part in
/// this many): past it senders get `RATE_LIMITED` (see
/// [`HostLimits::mailbox_bytes`]). `mailbox_limit` counts messages only:
/// 65 unread messages of 1 MiB, sent to a topic a process listens to and
/// does not read, ended it at the default 64 MiB.
pub const MAILBOX_MEMORY_SHARE: u64 = 4;

/// Default [`HostLimits::max_ops_per_process`]: a process that starts
/// queries or requests as fast as it can (each from its own coroutine)
/// is refused past this many in flight instead of queueing unbounded
/// work and memory on the I/O runtime.
pub const DEFAULT_MAX_OPS_PER_PROCESS: usize = 64;

/// Default [`HostLimits::max_ops_per_host`]: many processes of one tenant
/// each under their own limit still cannot flood the shared I/O runtime
/// together.
pub const DEFAULT_MAX_OPS_PER_HOST: usize = 4_096;

/// Default [`HostLimits::max_handles_per_host`]: many processes of one
/// tenant, each under its own `max_open_handles`, cannot together hold
/// the runtime's file descriptors (files, sockets, database connections
/// all draw on one OS limit): 85 processes of 256 files each took all
/// 20,000, and a process on another host then failed every open with
/// "Too many open files".
pub const DEFAULT_MAX_HANDLES_PER_HOST: usize = 4_096;

/// Default [`HostLimits::max_open_handles`] (modules.md): transactions,
/// statements, files and streams one process may hold open; each pins a
/// connection, a lock or a buffer.
pub const DEFAULT_MAX_OPEN_HANDLES: usize = 256;

/// The quotas of one host; see the module docs and the constants for the
/// abuse each one prevents.
#[derive(Clone, Debug, PartialEq)]
pub struct HostLimits {
    /// Live processes at once; a spawn past it fails with `RATE_LIMITED`.
    pub max_processes: usize,
    /// Bytes one process may hold (Lua: its live objects; WASM: its linear
    /// memory). Past it the process ends with a memory-limit reason.
    pub memory_per_process: u64,
    /// Bytes all processes of the host may hold together.
    pub memory_total: u64,
    /// How long a process runs without blocking before it is preempted.
    pub cpu_slice: Duration,
    /// CPU time a process may use in all; past it, it is killed. `None`:
    /// no budget (long-lived services).
    pub cpu_budget: Option<Duration>,
    /// Largest message (or spawn argument list), counted as [`wire_size`].
    pub max_message_bytes: usize,
    /// Messages queued for one process before senders get `RATE_LIMITED`.
    pub mailbox_limit: u32,
    /// Other hosts this host's processes may spawn on or send to; `None`
    /// allows all. A host may always reach itself.
    pub allow_hosts: Option<Vec<String>>,
    /// Host calls (queries, requests) one process may have in flight.
    pub max_ops_per_process: usize,
    /// Host calls all processes of the host may have in flight together.
    pub max_ops_per_host: usize,
    /// Handles (transactions, statements, files, streams) one process may
    /// hold open.
    pub max_open_handles: usize,
    /// Handles all processes of the host may hold open together; past it
    /// an open fails with `RATE_LIMITED`.
    pub max_handles_per_host: usize,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits {
            max_processes: DEFAULT_MAX_PROCESSES,
            memory_per_process: DEFAULT_MEMORY_PER_PROCESS,
            memory_total: DEFAULT_MEMORY_TOTAL,
            cpu_slice: DEFAULT_CPU_SLICE,
            cpu_budget: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            mailbox_limit: DEFAULT_MAILBOX_LIMIT,
            allow_hosts: None,
            max_ops_per_process: DEFAULT_MAX_OPS_PER_PROCESS,
            max_ops_per_host: DEFAULT_MAX_OPS_PER_HOST,
            max_open_handles: DEFAULT_MAX_OPEN_HANDLES,
            max_handles_per_host: DEFAULT_MAX_HANDLES_PER_HOST,
        }
    }
}

impl HostLimits {
    /// Bytes (by wire size) a process's unread messages may hold before
    /// senders are refused: [`MAILBOX_MEMORY_SHARE`] of
    /// `memory_per_process`, and room for at least one largest message.
    pub fn mailbox_bytes(&self) -> u32 {
        let share = self.memory_per_process / MAILBOX_MEMORY_SHARE;
        let largest = u64::try_from(self.max_message_bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(PAYLOAD_OVERHEAD as u64);
        u32::try_from(share.max(largest)).unwrap_or(u32::MAX)
    }

    /// Whether processes of this host may reach host `name`.
    pub fn allows(&self, own: &str, name: &str) -> bool {
        own == name
            || self
                .allow_hosts
                .as_ref()
                .is_none_or(|list| list.iter().any(|h| h == name))
    }
}

/// A host's limits and what its processes use now, shared by its workers.
#[derive(Debug, Default)]
pub struct HostQuota {
    /// The host's id.
    pub name: String,
    /// Its limits.
    pub limits: HostLimits,
    /// Whether its processes own the terminal (`kind: terminal.host`): only
    /// they may use the `io` module's stdin and stdout.
    pub terminal: bool,
    /// What its processes hold besides their entries' grants.
    pub grants: crate::grants::Grants,
    live: AtomicUsize,
    memory: AtomicU64,
    ops: AtomicUsize,
    handles: AtomicUsize,
    /// Slots it holds of a runtime-wide pool ([`crate::share`]).
    pooled: AtomicU32,
    /// Runs of its Lua processes in progress, on all its workers.
    runs: AtomicUsize,
    /// How many log lines its processes may write ([`crate::logline`]).
    log: crate::logline::LogBudget,
}

/// Adds one to `counter` unless it is at `max`: `false` (and no change)
/// there.
fn count_up(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

/// Takes `n` from `counter`, never below zero.
fn count_down(counter: &AtomicUsize, n: usize) {
    let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
        Some(now.saturating_sub(n))
    });
}

impl HostQuota {
    pub(crate) fn new(name: String, limits: HostLimits, terminal: bool) -> Self {
        HostQuota {
            name,
            limits,
            terminal,
            grants: crate::grants::Grants::default(),
            live: AtomicUsize::new(0),
            memory: AtomicU64::new(0),
            ops: AtomicUsize::new(0),
            handles: AtomicUsize::new(0),
            pooled: AtomicU32::new(0),
            runs: AtomicUsize::new(0),
            log: crate::logline::LogBudget::default(),
        }
    }

    /// Whether one of its processes writes a log line of `bytes` bytes at
    /// `level` (its [`LogBudget`](crate::logline::LogBudget); see
    /// [`crate::logline::admit`]).
    pub fn admit_log(&self, level: tracing::Level, bytes: usize) -> bool {
        crate::logline::admit(&self.log, &self.name, level, bytes)
    }

    /// Starts a run of one of its Lua processes: the share of what is left
    /// of `memory_total` the run may grow into, that room over the runs in
    /// progress, this one included. A run's growth reaches the host's count
    /// only when it ends, so runs on several workers at once each saw the
    /// whole room: 16 processes woken together on 16 workers each took
    /// 40 MiB of a 64 MiB `memory_total`, and 11 kept it. End it with
    /// [`end_run`](Self::end_run).
    pub fn begin_run(&self) -> u64 {
        let runs = self.runs.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        self.memory_room() / u64::try_from(runs).unwrap_or(u64::MAX)
    }

    /// The room a run [`begin_run`](Self::begin_run) started and not yet
    /// ended may grow into now: what is left of `memory_total`, split
    /// among the runs in progress as `begin_run` splits it.
    pub fn room_in_run(&self) -> u64 {
        let runs = self.runs.load(Ordering::Acquire).max(1);
        self.memory_room() / u64::try_from(runs).unwrap_or(u64::MAX)
    }

    /// Ends a run [`begin_run`](Self::begin_run) started.
    pub fn end_run(&self) {
        count_down(&self.runs, 1);
    }

    /// Counts one more process; `false` (and no change) at `max_processes`.
    pub(crate) fn admit_process(&self) -> bool {
        count_up(&self.live, self.limits.max_processes)
    }

    pub(crate) fn release_process(&self) {
        count_down(&self.live, 1);
    }

    /// Counts one more host call in flight; `false` (and no change) at
    /// `max_ops_per_host`.
    pub(crate) fn admit_op(&self) -> bool {
        count_up(&self.ops, self.limits.max_ops_per_host)
    }

    pub(crate) fn release_op(&self) {
        count_down(&self.ops, 1);
    }

    /// Counts one more open handle; `false` (and no change) at
    /// `max_handles_per_host`.
    pub(crate) fn admit_handle(&self) -> bool {
        count_up(&self.handles, self.limits.max_handles_per_host)
    }

    /// Gives back `n` handles counted with
    /// [`admit_handle`](Self::admit_handle) (never below zero).
    pub(crate) fn release_handles(&self, n: usize) {
        count_down(&self.handles, n);
    }

    /// Slots the host holds of a runtime-wide pool ([`crate::share`]).
    pub fn pooled(&self) -> u32 {
        self.pooled.load(Ordering::Acquire)
    }

    pub(crate) fn admit_pooled(&self) {
        self.pooled.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn release_pooled(&self) {
        let _ = self
            .pooled
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// Handles the host's processes hold open now.
    pub fn open_handles(&self) -> usize {
        self.handles.load(Ordering::Acquire)
    }

    /// Host calls of the host's processes in flight now.
    pub fn ops_in_flight(&self) -> usize {
        self.ops.load(Ordering::Acquire)
    }

    /// Live processes of the host.
    pub fn processes(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Takes `bytes` from the host's `memory_total`; `false` (and no
    /// change) if that would pass it.
    pub fn reserve_memory(&self, bytes: u64) -> bool {
        let max = self.limits.memory_total;
        self.memory
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= max)
            })
            .is_ok()
    }

    /// Counts `bytes` as used even past `memory_total`: for memory that
    /// exists already (a Lua VM's growth, found after the fact).
    pub fn add_memory(&self, bytes: u64) {
        self.memory.fetch_add(bytes, Ordering::AcqRel);
    }

    /// What is left of `memory_total`.
    pub fn memory_room(&self) -> u64 {
        self.limits.memory_total.saturating_sub(self.memory_used())
    }

    /// Gives back `bytes` taken with [`reserve_memory`](Self::reserve_memory).
    pub fn release_memory(&self, bytes: u64) {
        let _ = self
            .memory
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    /// The exit reason of a process that has run `used` in all, if that is
    /// past the host's `cpu_budget`. Every front-end ends such a process
    /// with this reason.
    pub fn cpu_budget_exceeded(&self, used: Duration) -> Option<ProcError> {
        let budget = self.limits.cpu_budget?;
        (used > budget).then(|| {
            let message = format!(
                "cpu budget exceeded: ran {} ms, over the cpu_budget of host '{}' ({} ms)",
                used.as_millis(),
                self.name,
                budget.as_millis()
            );
            ProcError::new(ErrorKind::RateLimited, message)
        })
    }

    /// Bytes the host's processes hold now.
    pub fn memory_used(&self) -> u64 {
        self.memory.load(Ordering::Acquire)
    }
}

/// Largest cancel reason, in bytes as `wire_size` counts it. A reason is
/// an explanation, not data, and a CANCEL waits in its target's mailbox
/// counted against the target's host: 300 short-lived processes, each
/// cancelling one victim once with a 1 MB reason, used up the victim
/// host's `memory_total` (one pending CANCEL per sender does not bound
/// many senders).
pub const MAX_CANCEL_REASON: usize = 16 << 10;

/// Payloads one message may carry, and arguments one spawn may pass.
/// Each is its own allocation on the host (and a value slot in a Lua
/// receiver), which its bytes do not count: a component's 40 messages of
/// 1,000,000 one-byte payloads held 2 GB of host memory against 40 MB
/// counted, and each send held the worker 100 ms; a spawn of 170,000
/// arguments held it 47 ms decoding them.
pub const MAX_PAYLOADS_PER_MESSAGE: usize = 4096;

/// What [`too_many_values`] counts: a message's payloads or a spawn's
/// arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Values {
    /// A message's payloads.
    Payloads,
    /// A spawn's arguments.
    SpawnArguments,
}

/// The refusal of `n` such values, more than
/// [`MAX_PAYLOADS_PER_MESSAGE`]: one text for every front-end, which
/// count before they decode anything.
pub fn too_many_values(what: Values, n: usize) -> String {
    let most = MAX_PAYLOADS_PER_MESSAGE;
    match what {
        Values::Payloads => format!("a message of {n} payloads: at most {most}"),
        Values::SpawnArguments => format!("a spawn of {n} arguments: at most {most}"),
    }
}

/// Cases one `select` may wait on, in every front-end. A select is walked
/// whole on each try and on each wake-up, in one host call no preemption
/// reaches: a component's 90,000 cases on a listen channel held its
/// worker 45 ms per call, and 80 such processes left a neighbour 4 s
/// without the CPU; its lifted case list (4 MB) was host memory no limit
/// counted while it waited.
pub const MAX_SELECT_CASES: usize = 4096;

/// Host bytes one link or monitor is charged, against the `memory_total`
/// of the host of the process that made it, until it ends: its two halves
/// (an entry in each process's set or map, 9 to 17 bytes each before the
/// tables' slack, which can double it). Uncounted, 5,000 processes each
/// monitoring the 4,999 others held 690–920 MB of host memory with a
/// `memory_total` of 256 MiB; charged to the maker (never to the process
/// linked to or monitored, which may be another tenant's), so a tenant
/// pays for the relations it makes.
pub const PEER_PAIR_BYTES: u64 = 64;

/// Host bytes one armed timer is charged, against its process's host's
/// `memory_total`, from when it is armed until its entry leaves the
/// worker's timer heap (it fires, or a cancelled entry is swept out) or
/// its process ends (what an ended process leaves in the heap is swept
/// once it is half of it): the entry (40 bytes), its share of the heap's
/// slack and of the set of cancelled ones. Uncounted, a component's 10,000 timers held
/// about six times the memory its smallest linear memory is charged.
pub const TIMER_BYTES: u64 = 64;

/// Host bytes a message's payload holds beyond its encoded size (its
/// allocation and its place in the message), counted with the bytes held
/// against the sending host's `memory_total` while the message waits.
pub const PAYLOAD_OVERHEAD: usize = 64;

/// Longest topic, in bytes, a message may carry or a process listen on.
/// A topic is a name, and every message queued outside its sender's VM
/// (another worker's mailbox, a component's) holds its own copy, which
/// `max_message_bytes` does not count: without this bound, a mailbox of
/// 10,000 messages each naming a 32 MiB topic held 320 GB of host memory,
/// and a component's 10,000 `listen` handles as much.
pub const MAX_TOPIC_BYTES: usize = 1024;

/// Longest error message an exit keeps, in bytes: the message is copied
/// to every link and monitor, so a process failing with a huge one cannot
/// make its watchers allocate it (the rest is cut).
pub const MAX_EXIT_MESSAGE: usize = 16 * 1024;

/// Why `topic` may not be sent on or listened to: it is reserved (`@...`,
/// the runtime's) or longer than [`MAX_TOPIC_BYTES`]; `None` when it may.
/// The message quotes a reserved topic and the length of a long one.
pub fn topic_refused(topic: &[u8]) -> Option<String> {
    if topic.len() > MAX_TOPIC_BYTES {
        return Some(format!(
            "a topic of {} bytes is longer than the {MAX_TOPIC_BYTES} bytes a topic may have",
            topic.len()
        ));
    }
    if topic.first() == Some(&b'@') {
        return Some(format!(
            "topic {:?} is reserved: topics starting with '@' are for the runtime",
            String::from_utf8_lossy(topic)
        ));
    }
    None
}

/// `message` cut to at most [`MAX_EXIT_MESSAGE`] bytes, at a character
/// boundary.
pub fn cut_exit_message(message: &mut String) {
    if message.len() > MAX_EXIT_MESSAGE {
        let mut end = MAX_EXIT_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
}

/// Deepest nesting a value may have to cross a process boundary: every
/// front-end converts values recursively, and a deeper value (a component
/// may send any bytes) is refused at the sender instead of overflowing a
/// receiver's native stack.
pub const MAX_DEPTH: usize = 64;

/// Checks that every front-end can hold `values`: no map key is nil or NaN
/// (a Lua table cannot have one) and nothing nests deeper than
/// [`MAX_DEPTH`]. The error names the place, as `payload[2].a: ...`.
pub fn check_values(values: &[Value], root: &str) -> Result<(), String> {
    for (i, v) in values.iter().enumerate() {
        check_value(v, 0).map_err(|(path, why)| {
            if values.len() > 1 {
                format!("{root}[{}]{path}: {why}", i + 1)
            } else {
                format!("{root}{path}: {why}")
            }
        })?;
    }
    Ok(())
}

/// [`check_values`] for a message's payloads: a packed one was checked
/// when it was packed, by the encoder or the scanner (see
/// [`crate::payload`]).
pub fn check_payloads(payloads: &[crate::Payload], root: &str) -> Result<(), String> {
    for (i, p) in payloads.iter().enumerate() {
        let Some(v) = p.as_value() else { continue };
        check_value(v, 0).map_err(|(path, why)| {
            if payloads.len() > 1 {
                format!("{root}[{}]{path}: {why}", i + 1)
            } else {
                format!("{root}{path}: {why}")
            }
        })?;
    }
    Ok(())
}

/// Checks `v`; the path of what cannot be sent, and why. Paths are only
/// formatted on the way out of an error: a value that can be sent costs no
/// allocation.
fn check_value(v: &Value, depth: usize) -> Result<(), (String, &'static str)> {
    let nested = |child: &Value, at: &dyn Fn() -> String| {
        if depth + 1 >= MAX_DEPTH {
            return Err((at(), "nesting deeper than 64 levels cannot be sent"));
        }
        check_value(child, depth + 1).map_err(|(path, why)| (format!("{}{path}", at()), why))
    };
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if matches!(item, Value::Array(_) | Value::Map(_)) {
                    nested(item, &|| format!("[{}]", i + 1))?;
                }
            }
        }
        Value::Map(pairs) => {
            for (k, item) in pairs {
                let at = || format!("[{}]", k.describe());
                match k {
                    Value::Nil => return Err((at(), "a nil map key cannot be sent")),
                    Value::Float(f) if f.is_nan() => {
                        return Err((at(), "a NaN map key cannot be sent"));
                    }
                    Value::Array(_) | Value::Map(_) => {
                        return Err((at(), "a map or array key cannot be sent"));
                    }
                    _ => {}
                }
                if matches!(item, Value::Array(_) | Value::Map(_)) {
                    nested(item, &at)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The size a message counts as against `max_message_bytes`: what its
/// payloads take in MessagePack, at most (headers counted at their largest),
/// so the same message counts the same from every language.
pub fn wire_size(values: &[Value]) -> usize {
    values.iter().map(value_size).sum()
}

fn value_size(v: &Value) -> usize {
    match v {
        Value::Nil | Value::Bool(_) => 1,
        Value::Int(_) | Value::Float(_) => 9,
        Value::Str(s) => 5 + s.len(),
        Value::Array(items) => 5 + items.iter().map(value_size).sum::<usize>(),
        Value::Map(pairs) => {
            5 + pairs
                .iter()
                .map(|(k, v)| value_size(k) + value_size(v))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_count_stops_at_the_limit_and_recovers() {
        let limits = HostLimits {
            max_processes: 2,
            ..HostLimits::default()
        };
        let quota = HostQuota::new("h".into(), limits, false);
        assert!(quota.admit_process());
        assert!(quota.admit_process());
        assert!(!quota.admit_process());
        quota.release_process();
        assert!(quota.admit_process());
        assert_eq!(quota.processes(), 2);
    }

    #[test]
    fn handle_count_stops_at_the_host_limit_and_never_underflows() {
        let limits = HostLimits {
            max_handles_per_host: 3,
            ..HostLimits::default()
        };
        let quota = HostQuota::new("h".into(), limits, false);
        assert!(quota.admit_handle());
        assert!(quota.admit_handle());
        assert!(quota.admit_handle());
        assert!(!quota.admit_handle(), "the fourth is past the limit");
        assert_eq!(quota.open_handles(), 3, "a refusal counts nothing");
        quota.release_handles(1);
        assert_eq!(quota.open_handles(), 2);
        assert!(quota.admit_handle(), "a released handle is room again");
        quota.release_handles(10);
        assert_eq!(quota.open_handles(), 0, "releasing too many stops at zero");
        assert!(quota.admit_handle());
        assert_eq!(quota.open_handles(), 1);
    }

    #[test]
    fn memory_reservations_stop_at_the_total() {
        let limits = HostLimits {
            memory_total: 100,
            ..HostLimits::default()
        };
        let quota = HostQuota::new("h".into(), limits, false);
        assert!(quota.reserve_memory(60));
        assert!(!quota.reserve_memory(41));
        assert_eq!(quota.memory_used(), 60);
        quota.release_memory(60);
        assert!(quota.reserve_memory(100));
    }

    #[test]
    fn values_lua_cannot_hold_are_named() {
        let nan = Value::Map(vec![(Value::Float(f64::NAN), Value::Int(1))]);
        let err = check_values(&[Value::Int(1), nan], "payload").expect_err("NaN key");
        assert!(err.starts_with("payload[2][NaN]: a NaN map key"), "{err}");
        let nil = Value::Map(vec![(
            Value::str("a"),
            Value::Map(vec![(Value::Nil, Value::Nil)]),
        )]);
        let err = check_values(&[nil], "result").expect_err("nil key");
        assert!(err.starts_with("result[a][nil]: a nil map key"), "{err}");
        let mut deep = Value::Nil;
        for _ in 0..MAX_DEPTH {
            deep = Value::Array(vec![deep]);
        }
        assert!(
            check_values(&[deep.clone()], "v").is_ok(),
            "64 levels are fine"
        );
        let deeper = Value::Array(vec![deep]);
        assert!(check_values(&[deeper], "v").is_err(), "65 are not");
        let fine = Value::Map(vec![(Value::Float(f64::INFINITY), Value::Float(f64::NAN))]);
        assert!(
            check_values(&[fine], "v").is_ok(),
            "infinite keys and NaN values are data"
        );
    }

    #[test]
    fn wire_size_counts_strings_and_nesting() {
        let msg = [Value::str("abc"), Value::Array(vec![Value::Int(1)])];
        assert_eq!(wire_size(&msg), (5 + 3) + (5 + 9));
    }

    #[test]
    fn allow_list_always_allows_the_own_host() {
        let limits = HostLimits {
            allow_hosts: Some(vec!["b".into()]),
            ..HostLimits::default()
        };
        assert!(limits.allows("a", "a"));
        assert!(limits.allows("a", "b"));
        assert!(!limits.allows("a", "c"));
        assert!(HostLimits::default().allows("a", "c"));
    }
}

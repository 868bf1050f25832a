//! One worker's share of the process model.
//!
//! A [`Core`] owns the processes placed on its worker: their queued items,
//! links, monitors and timers. Front-ends call it to act on behalf of a
//! process; anything aimed at a process on another worker is batched in an
//! outbox and handed over when the worker finishes its slice, so talking
//! processes on one worker never wake another thread (a front-end hands
//! what is queued for an idle worker over between batches, so that worker
//! does not wait a whole slice for work: [`Core::hand_over_to_idle`]).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::directory::{Admit, Bounds, Full, Queued, admit, fits, release};
use crate::error::{ErrorKind, ProcError, refused, too_large};
use crate::frontend::Program;
use crate::item::{Event, Exit, Item, Message, Reservation};
use crate::limits::{
    HostQuota, PEER_PAIR_BYTES, TIMER_BYTES, check_payloads, check_values, wire_size,
};
use crate::mailbox::Mailbox;
use crate::payload::Payload;
use crate::pid::Pid;
use crate::placement::Home;
use crate::registry::Miss;
use crate::runtime::{Shared, SpawnRequest};
use crate::value::Value;
use crate::worker::Cmd;
use peers::Peers;

#[cfg(test)]
mod accounting_tests;
mod burst;
#[cfg(test)]
mod bus_tests;
mod calls;
#[cfg(test)]
mod calls_tests;
#[cfg(test)]
mod early_tests;
#[cfg(test)]
mod entry_tests;
#[cfg(test)]
mod exit_tests;
mod fanout;
#[cfg(test)]
mod handover_tests;
#[cfg(test)]
mod held_spawn_tests;
#[cfg(test)]
mod mailbox_tests;
mod may_run;
mod ops;
mod peers;
#[cfg(test)]
mod peers_tests;
#[cfg(test)]
mod placement_tests;
mod programs;
mod table;
mod telling;
#[cfg(test)]
mod telling_tests;
#[cfg(test)]
mod timer_tests;
#[cfg(test)]
mod topic_tests;
mod unread;

/// Below this many armed timers a worker never scans its heap for timers of
/// exited processes; above it, a scan runs when they could be the majority.
const TIMER_PURGE_FLOOR: usize = 256;

/// `ProcEntry::last_child` of a process that has spawned none.
const NO_CHILD: u16 = u16::MAX;

/// The handle front-ends keep to their worker's core.
pub type CoreRef = Rc<RefCell<Core>>;

/// A host call's value taken by [`Core::take_done`]: the process, the
/// operation, the value and what keeps it counted until it is built.
pub type TakenDone = (Pid, u64, Value, Option<crate::hostcall::Keep>);

#[derive(Default)]
struct ProcEntry {
    /// Its front-end's index (a runtime has a few; a u16 keeps the
    /// entry within 104 bytes, see `entry_tests`).
    frontend: u16,
    items: VecDeque<Item>,
    /// Boxed: rare, and it would make every process's entry 56 bytes larger.
    kill: Option<Box<ProcError>>,
    queued: bool,
    /// Its links and monitors, made on first use.
    peers: Option<Box<Peers>>,
    trap_links: bool,
    /// The worker of its last child (its next child is placed near it, and
    /// its first near itself; see `placement`), [`NO_CHILD`] before any.
    last_child: u16,
    /// Messages sent to it that it has not taken yet, and their bytes.
    unread: Queued,
    /// About how many bytes each of those it was handed holds.
    sizes: unread::UnreadSizes,
    /// Whether it ever subscribed to the event bus (its exit then drops
    /// its subscriptions; others' exits skip the bus's lock).
    subscribed: bool,
    /// Host calls in flight and open handles (see `hostcall`).
    io: Option<Box<crate::hostcall::ProcIo>>,
    /// The function call it runs, if it is a callee (see `funcs`).
    call: Option<Arc<crate::funcs::Call>>,
    /// Its mailbox, when its front-end does not keep its own
    /// ([`crate::FrontendFactory::keeps_mailboxes`]); boxed, as `peers`.
    mailbox: Option<Box<crate::mailbox::Mailbox>>,
    /// The entry its code is (its spawn's, or its last upgrade's): what it
    /// may spawn is decided by it (`may_run`).
    program: Option<Arc<Program>>,
}

impl ProcEntry {
    /// It has nothing queued: gives its queue's buffer back (at least four
    /// items, 320 bytes, that an idle process would otherwise keep for
    /// good) and marks it off the ready queue, which the caller leaves.
    fn unqueue(&mut self) {
        self.items = VecDeque::new();
        self.queued = false;
    }

    fn peers(&mut self) -> &mut Peers {
        self.peers.get_or_insert_with(Box::default)
    }
}

/// The spawns of the process that spawned last on this worker, for
/// placement: its burst (see `placement`) lasts while no other process
/// spawns here and none exits.
struct Burst {
    parent: Option<Pid>,
    /// How many of the burst's children went to each worker of the
    /// runtime (saturating; as many entries as workers).
    placed: Vec<u16>,
    /// Its children not placed yet, in spawn order (see `burst`).
    waiting: Vec<crate::worker::SpawnCmd>,
}

/// Worker-local process state; see the module docs.
pub struct Core {
    worker: usize,
    host: u16,
    shared: Arc<Shared>,
    procs: table::Table<ProcEntry>,
    ready: Vec<VecDeque<Pid>>,
    timers: BinaryHeap<Reverse<(Instant, u64, Pid, u64)>>,
    timer_seq: u64,
    /// Timers cancelled before they fired (`cancel_timer`): skipped when
    /// they come due, and taken out of the heap once they are half of it.
    cancelled: FxHashSet<(Pid, u64)>,
    /// Entries of the timer heap of each live process that has some
    /// (armed, or cancelled and not yet taken out); kept apart from
    /// `ProcEntry`, which must stay small. Each is charged [`TIMER_BYTES`]
    /// to the process's host; at its exit the charge is given back and
    /// the count moves to `dead_timers`.
    timer_counts: FxHashMap<Pid, u32>,
    /// Entries of the timer heap whose process has exited, charged to
    /// nobody (see `purge_timers`, which keeps them to at most half the
    /// heap past a floor).
    dead_timers: usize,
    /// Deadlines of the blocking operations in flight here (see
    /// `start_blocking_op`); an entry leaves with its operation.
    op_deadlines: std::collections::BTreeSet<(Instant, Pid, u64)>,
    outbox: Vec<Vec<Cmd>>,
    /// Whether an outbox may hold commands (set by every queueing, cleared
    /// when they are all handed over): what [`Core::between_batches`]
    /// looks at first.
    outbox_queued: bool,
    /// The buffer [`Core::take_incoming`] swaps the worker's queue into
    /// (kept, so taking allocates nothing once warm).
    incoming: Vec<Cmd>,
    /// The topic of the last message sent through this core, shared by
    /// the next one on the same topic ([`Core::topic_of`]).
    last_topic: Option<Arc<str>>,
    /// Commands that came from another worker before the spawn of their
    /// target, held until it arrives (see [`Core::apply_incoming`]).
    early: FxHashMap<Pid, Vec<Cmd>>,
    /// Exits whose links and watchers are still being told, oldest first
    /// (see [`telling`]).
    tellings: VecDeque<telling::Telling>,
    /// The entries this worker has looked up (see [`programs`]).
    programs: RefCell<programs::ProgramCache>,
    /// The current burst of spawns here.
    burst: Burst,
}

fn not_alive(pid: Pid) -> ProcError {
    ProcError::new(ErrorKind::NotFound, format!("process {pid} is not alive"))
}

/// An exit as its links and monitors can receive it, whatever front-end
/// made it: a result no front-end could hold (a NaN map key from a
/// component, say) or larger than `max_bytes` (the host's
/// `max_message_bytes`: each watcher gets a copy) becomes an `INVALID`
/// error naming why, so the EXIT still arrives; such details are dropped;
/// an error message is cut at [`crate::limits::MAX_EXIT_MESSAGE`].
fn deliverable(result: Exit, max_bytes: usize) -> Exit {
    let mut result = result;
    if let Err(err) = &mut result {
        crate::limits::cut_exit_message(&mut err.message);
        if let Some(details) = &err.details {
            let one = std::slice::from_ref(details);
            if check_values(one, "details").is_err() || wire_size(one) > max_bytes {
                err.details = None;
            }
        }
    }
    if let Ok(value) = &result {
        let one = std::slice::from_ref(value);
        let why = check_values(one, "result").err().or_else(|| {
            let bytes = wire_size(one);
            (bytes > max_bytes).then(|| crate::error::one_too_large("a result", bytes, max_bytes))
        });
        if let Some(why) = why {
            let message = format!("the process's result cannot be delivered: {why}");
            return Err(ProcError::new(ErrorKind::Invalid, message));
        }
    }
    result
}

/// The map a bus event arrives as (see [`Core::bus_send`]).
fn bus_event(system: &str, kind: &str, path: &str, data: Value) -> Value {
    let mut fields = vec![
        (Value::str("system"), Value::str(system)),
        (Value::str("kind"), Value::str(kind)),
        (Value::str("path"), Value::str(path)),
    ];
    if data != Value::Nil {
        fields.push((Value::str("data"), data));
    }
    Value::Map(fields)
}

/// The error a sender gets when `to`'s mailbox is full under `bounds`.
pub(crate) fn mailbox_full(to: Pid, full: Full, bounds: Bounds) -> ProcError {
    let why = match full {
        Full::Messages => format!(
            "mailbox of {to} is full: it holds mailbox_limit ({}) messages not yet received",
            bounds.messages
        ),
        Full::Bytes => format!(
            "mailbox of {to} is full: its messages not yet received would hold over {} \
             bytes (mailbox bytes: a quarter of its memory_per_process)",
            bounds.bytes
        ),
    };
    let mut err = ProcError::new(ErrorKind::RateLimited, why);
    err.retryable = true;
    err
}

impl Core {
    pub(crate) fn new(worker: usize, shared: Arc<Shared>, frontends: usize) -> Self {
        let workers = shared.workers.len();
        Core {
            worker,
            host: shared.host_of_worker(worker),
            shared,
            procs: table::Table::default(),
            ready: (0..frontends).map(|_| VecDeque::new()).collect(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            cancelled: FxHashSet::default(),
            timer_counts: FxHashMap::default(),
            dead_timers: 0,
            op_deadlines: std::collections::BTreeSet::new(),
            outbox: (0..workers).map(|_| Vec::new()).collect(),
            outbox_queued: false,
            incoming: Vec::new(),
            last_topic: None,
            early: FxHashMap::default(),
            tellings: VecDeque::new(),
            programs: RefCell::default(),
            burst: Burst {
                parent: None,
                placed: vec![0; workers],
                waiting: Vec::new(),
            },
        }
    }

    /// The name of the host (tenant) `pid` runs on.
    pub fn host_name(&self, pid: Pid) -> &str {
        self.shared.host_name(pid.host())
    }

    /// The quota of this worker's host (every process here runs on it).
    pub fn quota(&self) -> &Arc<HostQuota> {
        self.shared.quota(self.host)
    }

    /// How many hosts (tenants) the runtime has.
    pub fn host_count(&self) -> usize {
        self.shared.host_count()
    }

    /// The quota of the host `pid` runs on.
    pub fn quota_of(&self, pid: Pid) -> &Arc<HostQuota> {
        self.shared.quota(pid.host())
    }

    /// Whether `to` is a process of this worker whose front-end reads
    /// payloads as MessagePack ([`FrontendFactory::reads_packed`]): a
    /// sender may then hand them over encoded ([`Payload::Packed`]).
    ///
    /// [`FrontendFactory::reads_packed`]: crate::FrontendFactory::reads_packed
    pub fn reads_packed(&self, to: Pid) -> bool {
        self.procs
            .get(&to)
            .and_then(|p| self.shared.factories.get(usize::from(p.frontend)))
            .is_some_and(|f| f.reads_packed())
    }

    /// Refuses `op` from `from` to `to` when `from`'s host may not reach
    /// `to`'s (`allow_hosts`): `PERMISSION_DENIED` naming both.
    pub fn check_reach(&self, op: &str, from: Pid, to: Pid) -> Result<(), ProcError> {
        // A pid of no host names no process (its quota would read as the
        // last host's, which the check would then compare).
        if !self.shared.has_host(to.host()) {
            return Err(not_alive(to));
        }
        if self.reaches(from, to) {
            return Ok(());
        }
        let (own, target) = (self.quota_of(from), self.quota_of(to));
        let message = format!("{} ({to})", refused(op, &own.name, &target.name));
        Err(ProcError::new(ErrorKind::PermissionDenied, message))
    }

    /// Whether `from`'s host may reach `to`'s (`allow_hosts`); see [`Self::check_reach`].
    fn reaches(&self, from: Pid, to: Pid) -> bool {
        if !self.shared.has_host(to.host()) {
            return false;
        }
        if from.host() == to.host() || from == Pid::RUNTIME {
            return true;
        }
        let (own, target) = (self.quota_of(from), self.quota_of(to));
        own.limits.allows(&own.name, &target.name)
    }

    /// Refuses payloads larger than the `max_message_bytes` of either host;
    /// their size otherwise.
    pub fn check_size(&self, from: Pid, to: Pid, payloads: &[Payload]) -> Result<usize, ProcError> {
        let limit = self
            .quota_of(from)
            .limits
            .max_message_bytes
            .min(self.quota_of(to).limits.max_message_bytes);
        if payloads.len() > crate::limits::MAX_PAYLOADS_PER_MESSAGE {
            let what = crate::limits::Values::Payloads;
            let why = crate::limits::too_many_values(what, payloads.len());
            return Err(ProcError::new(ErrorKind::Invalid, why));
        }
        let bytes = payloads.iter().map(Payload::wire_size).sum();
        if bytes > limit {
            return Err(ProcError::new(
                ErrorKind::Invalid,
                too_large("message payloads", bytes, limit),
            ));
        }
        Ok(bytes)
    }

    /// Holds `bytes` of the sender's host's `memory_total` for a message
    /// queued for `to` until it is delivered (so a tenant cannot fill
    /// another's memory with messages nobody reads); `RATE_LIMITED`
    /// (retryable) when the host has no room left.
    fn hold(&self, from: Pid, to: Pid, bytes: usize) -> Result<Reservation, ProcError> {
        let quota = self.quota_of(from);
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        if !quota.reserve_memory(bytes) {
            let mut err = ProcError::new(
                ErrorKind::RateLimited,
                format!(
                    "host '{}' has no room left in its memory_total ({} bytes) for a message of {bytes} bytes to {to}",
                    quota.name, quota.limits.memory_total
                ),
            );
            err.retryable = true;
            return Err(err);
        }
        Ok(Reservation {
            quota: quota.clone(),
            bytes,
        })
    }

    /// Counts a message of about `bytes` (its wire size) for `to`, a
    /// process of this worker, unless its mailbox is full (`RATE_LIMITED`).
    /// For senders in the same VM that queue the message themselves.
    pub fn admit_local(&mut self, to: Pid, bytes: u64) -> Result<(), ProcError> {
        self.admit_here(to, bytes, false).map(drop)
    }

    /// [`Core::admit_local`] for a message its sender's front-end will
    /// deliver itself (Lua's same-VM send): `Ok(false)`, and nothing
    /// counted, when items for `to` wait in this core (see
    /// [`Core::items_waiting`]), so the message must go through the core.
    pub fn admit_direct(&mut self, to: Pid, bytes: u64) -> Result<bool, ProcError> {
        self.admit_here(to, bytes, true)
    }

    /// Counts a message for `to`, a process of this worker (see
    /// [`Core::admit_local`]); with `behind`, nothing when items for it
    /// wait here (`Ok(false)`).
    fn admit_here(&mut self, to: Pid, bytes: u64, behind: bool) -> Result<bool, ProcError> {
        let bounds = self.bounds_of(to);
        let p = self.procs.get_mut(&to).ok_or_else(|| not_alive(to))?;
        if behind && !p.items.is_empty() {
            return Ok(false);
        }
        match admit(&p.unread, bounds, bytes) {
            Ok(()) => {
                p.sizes.add(bytes);
                Ok(true)
            }
            Err(full) => Err(mailbox_full(to, full, bounds)),
        }
    }

    /// Whether items for `to`, a process of this worker, wait in this core
    /// for its front-end to take them. A front-end that delivers messages
    /// inside its own VM (Lua's same-VM send) must then send through the
    /// core instead, behind them: messages sent to a child before it
    /// started wait here, its front-end takes a bounded number a turn, and
    /// a later same-VM send that went straight to the child's inbox
    /// overtook the ones still waiting (a sender's messages out of order).
    pub fn items_waiting(&self, to: Pid) -> bool {
        self.procs.get(&to).is_some_and(|p| !p.items.is_empty())
    }

    /// Whether a message of `bytes` (by wire size, with its overhead) for
    /// `to`, a process of this worker, may go straight to a receiver of
    /// `to` that waits for it, counted nowhere: `to` is here, no items for
    /// it wait in this core (it would overtake them), and its mailbox
    /// would admit it now. The same answer as [`Core::admit_direct`]
    /// followed at once by the receiver's [`Core::consumed`], without the
    /// two updates of the count that cancel out.
    pub fn may_hand_over(&self, to: Pid, bytes: u64) -> bool {
        self.procs
            .get(&to)
            .is_some_and(|p| p.items.is_empty() && fits(&p.unread, self.bounds_of(to), bytes))
    }

    /// The bounds of `to`'s mailbox.
    fn bounds_of(&self, to: Pid) -> Bounds {
        let limits = &self.quota_of(to).limits;
        Bounds {
            messages: limits.mailbox_limit,
            bytes: limits.mailbox_bytes(),
        }
    }

    /// Records that `me` took `n` messages out of the mailbox its
    /// front-end keeps.
    pub fn consumed(&mut self, me: Pid, n: u32) {
        if let Some(p) = self.procs.get_mut(&me) {
            let bytes = p.sizes.take(n);
            release(&p.unread, n, bytes);
        }
    }

    /// Runs `f` on the mailbox the core keeps for `pid` (a process of this
    /// worker whose front-end keeps none of its own); what `f` takes out
    /// of it stops counting against its `mailbox_limit`. `None` when there
    /// is no such mailbox (`pid` is not here, or its front-end keeps it).
    pub fn with_mailbox<R>(
        &mut self,
        pid: Pid,
        f: impl FnOnce(&mut crate::mailbox::Mailbox) -> R,
    ) -> Option<R> {
        let p = self.procs.get_mut(&pid)?;
        let mailbox = p.mailbox.as_deref_mut()?;
        let answer = f(mailbox);
        let taken = mailbox.take_taken();
        if taken > 0 {
            let bytes = p.sizes.take(taken);
            release(&p.unread, taken, bytes);
        }
        Some(answer)
    }

    /// The application's entries, for the `registry` module.
    pub fn entries(&self) -> &Arc<[crate::catalog::EntryInfo]> {
        &self.shared.entries
    }

    /// The supervisor's control, when the application runs services.
    pub fn services(&self) -> Option<Arc<dyn crate::services::ServiceControl>> {
        self.shared.services.get().cloned()
    }

    /// Resolves a destination `me` names: a pid string, or a registered
    /// name. A name held by a process `me`'s host may not reach is
    /// `PERMISSION_DENIED` (as Lua's `registry.lookup`) naming the hosts
    /// but not the holder's pid, which the later reach check quoted and a
    /// component's `lookup` hides. The name is quoted cut to 64
    /// characters (a 30 MB name was echoed whole).
    pub fn resolve(&self, me: Pid, dest: &str) -> Result<Pid, ProcError> {
        if let Some(pid) = Pid::parse(dest) {
            return Ok(pid);
        }
        self.resolve_name(me, dest)
    }

    /// The pid registered as `dest` that `me` sees (a holder whose host
    /// and `me`'s reach each other, [`Self::see_each_other`]); `NOT_FOUND`,
    /// word for word as for a free name, when every holder is out of sight.
    fn resolve_name(&self, me: Pid, dest: &str) -> Result<Pid, ProcError> {
        let shown: String = dest.chars().take(64).collect();
        let cut = if shown.len() < dest.len() { "..." } else { "" };
        match self
            .shared
            .registry
            .lookup(dest, |h| self.see_each_other(me, h))
        {
            Some(Ok(pid)) => Ok(pid),
            Some(Err(Miss::Ambiguous(a, b))) => {
                let (a, b) = (self.quota_of(a), self.quota_of(b));
                Err(ProcError::new(
                    ErrorKind::Conflict,
                    format!(
                        "the name {shown:?}{cut} is held on host '{}' and on host '{}', which \
                         do not see each other: a name seen from more than one such host \
                         resolves to neither",
                        a.name, b.name
                    ),
                ))
            }
            // A name held only out of sight reads exactly as a free one:
            // a refusal naming the holder's host told a tenant which
            // names another holds, and where (an oracle on names).
            Some(Err(Miss::Hidden(_))) | None => Err(ProcError::new(
                ErrorKind::NotFound,
                format!("no process is registered as {shown:?}{cut}"),
            )),
        }
    }

    /// Whether the hosts of `a` and `b` reach each other both ways: what a
    /// registered name and an event need to pass between them.
    fn see_each_other(&self, a: Pid, b: Pid) -> bool {
        self.reaches(a, b) && self.reaches(b, a)
    }

    /// Sends a message; `NOT_FOUND` if `to` is not alive, `INVALID` for a
    /// reserved topic or an oversized message, `PERMISSION_DENIED` for a host
    /// the sender's may not reach, `RATE_LIMITED` for a full mailbox.
    pub fn send(
        &mut self,
        from: Pid,
        to: Pid,
        topic: &str,
        payloads: Vec<Payload>,
    ) -> Result<(), ProcError> {
        if let Some(why) = crate::limits::topic_refused(topic.as_bytes()) {
            return Err(ProcError::new(ErrorKind::Invalid, why));
        }
        self.check_reach("send", from, to)?;
        let bytes = self.check_size(from, to, &payloads)?;
        check_payloads(&payloads, "payload").map_err(|e| ProcError::new(ErrorKind::Invalid, e))?;
        let overhead = payloads
            .len()
            .saturating_mul(crate::limits::PAYLOAD_OVERHEAD);
        let held = self.hold(from, to, bytes.saturating_add(overhead))?;
        let msg = Message {
            from,
            topic: self.topic_of(topic),
            payloads,
            held: Some(held),
        };
        self.enqueue(to, msg)
    }

    /// `topic` as a message holds it: the last message's string when it is
    /// the same, so a stream of messages on one topic allocates (and its
    /// receiving worker frees) no string per message. Keeps one topic
    /// alive, at most [`crate::limits::MAX_TOPIC_BYTES`].
    fn topic_of(&mut self, topic: &str) -> Arc<str> {
        match &self.last_topic {
            Some(last) if **last == *topic => last.clone(),
            _ => {
                let new: Arc<str> = topic.into();
                self.last_topic = Some(new.clone());
                new
            }
        }
    }

    /// Queues `msg` for `to` unless it is not alive (`NOT_FOUND`) or its
    /// mailbox is full (`RATE_LIMITED`): here if `to` is local, else in
    /// the outbox of its worker.
    fn enqueue(&mut self, to: Pid, msg: Message) -> Result<(), ProcError> {
        let bytes = msg.wire_bytes();
        if self.procs.contains_key(&to) {
            self.admit_local(to, bytes)?;
            self.push_local(to, Item::Msg(msg));
            return Ok(());
        }
        let bounds = self.bounds_of(to);
        match self.shared.directory.admit(to, bounds, bytes) {
            Admit::Worker(worker) if worker != self.worker => {
                self.queue_for(worker, Cmd::Deliver(to, Item::Msg(msg)));
                Ok(())
            }
            Admit::Worker(_) => {
                // Placed here, its spawn not here yet (it comes from
                // another worker, and a pid learnt through a third can
                // overtake it): the message waits for the spawn, as
                // commands from other workers do (`apply_incoming`). It was
                // NOT_FOUND for a process that lives.
                let cmd = Cmd::Deliver(to, Item::Msg(msg));
                self.early.entry(to).or_default().push(cmd);
                Ok(())
            }
            Admit::Full(full) => Err(mailbox_full(to, full, bounds)),
            Admit::Gone => Err(not_alive(to)),
        }
    }

    /// The bytes of arguments `parent` may pass to a spawn of `entry` on
    /// `host`, or why the spawn is refused (an entry its code may not run,
    /// see `may_run`; no such host or entry; `allow_hosts`); asked before
    /// any argument is converted.
    pub fn spawn_budget(&self, parent: Pid, entry: &str, host: &str) -> Result<usize, ProcError> {
        self.may_run(parent, entry)?;
        Ok(self.shared.spawn_budget(parent, entry, host)?)
    }

    /// The bytes a message from `from` to `to` may carry: the smaller
    /// `max_message_bytes` of their hosts.
    pub fn message_budget(&self, from: Pid, to: Pid) -> usize {
        self.quota_of(from)
            .limits
            .max_message_bytes
            .min(self.quota_of(to).limits.max_message_bytes)
    }

    /// Spawns a process on behalf of `parent`, optionally linked to and/or monitored by it.
    pub fn spawn(&mut self, parent: Pid, req: SpawnRequest) -> Result<Pid, ProcError> {
        self.may_run(parent, &req.entry)?;
        let (link, monitor) = (req.link, req.monitor);
        if self.burst.parent != Some(parent) {
            self.place_burst();
            self.burst.parent = Some(parent);
            self.burst.placed.fill(0);
        }
        let waits = self.waits_for_burst(parent, &req);
        let home = match self.procs.get(&parent).map(|p| p.last_child) {
            _ if waits => Home::Wait(self.worker),
            None => Home::None,
            Some(NO_CHILD) => Home::Parent(self.worker),
            Some(w) => {
                let children = self.burst.placed.iter().map(|n| usize::from(*n)).sum();
                Home::Sibling {
                    worker: usize::from(w),
                    burst: &self.burst.placed,
                    run: crate::placement::online_run(children),
                }
            }
        };
        // A link or monitor made with the spawn is charged as any other.
        let pairs = if self.procs.contains_key(&parent) {
            u64::from(link) + u64::from(monitor)
        } else {
            0
        };
        if pairs > 0 {
            self.charge_peers(parent, pairs)?;
        }
        let (cmd, worker) = match self.shared.prepare_spawn(req, Some(parent), home) {
            Ok(made) => made,
            Err(err) => {
                self.uncharge_peers(parent, pairs);
                return Err(err.into());
            }
        };
        let pid = cmd.pid;
        if link && let Some(p) = self.procs.get_mut(&parent) {
            p.peers().links.insert(pid, true);
        }
        if monitor && let Some(p) = self.procs.get_mut(&parent) {
            p.peers().watching.insert(pid);
        }
        if waits {
            self.burst.waiting.push(cmd);
        } else {
            self.count_child(Some(parent), worker);
            self.dispatch(worker, Cmd::Spawn(cmd));
        }
        Ok(pid)
    }

    /// Delivers a CANCEL event to `target`; `INVALID` for a reason no
    /// front-end can hold or larger than a message may be.
    pub fn cancel(&mut self, me: Pid, target: Pid, reason: Value) -> Result<(), ProcError> {
        self.check_reach("cancel", me, target)?;
        let one = std::slice::from_ref(&reason);
        check_values(one, "reason").map_err(|e| ProcError::new(ErrorKind::Invalid, e))?;
        let (bytes, limit) = (wire_size(one), self.message_budget(me, target));
        if bytes > limit {
            let why = crate::error::one_too_large("a cancel reason", bytes, limit);
            return Err(ProcError::new(ErrorKind::Invalid, why));
        }
        let most = crate::limits::MAX_CANCEL_REASON;
        if bytes > most {
            let why =
                format!("a cancel reason of {bytes} bytes exceeds MAX_CANCEL_REASON ({most})");
            return Err(ProcError::new(ErrorKind::Invalid, why));
        }
        let event = Event::Cancel { from: me, reason };
        if self.post(Cmd::Deliver(target, Item::Event(event))) {
            Ok(())
        } else {
            Err(not_alive(target))
        }
    }

    /// Stops `target` at its next scheduling point with reason `terminated`.
    pub fn terminate(&mut self, me: Pid, target: Pid, reason: ProcError) -> Result<(), ProcError> {
        self.check_reach("terminate", me, target)?;
        if self.post(Cmd::Kill(target, reason)) {
            Ok(())
        } else {
            Err(not_alive(target))
        }
    }

    /// Sets whether linked exits arrive as LINK_DOWN events instead of killing `me`.
    pub fn set_trap_links(&mut self, me: Pid, trap: bool) {
        if let Some(p) = self.procs.get_mut(&me) {
            p.trap_links = trap;
        }
    }

    /// Whether `me` traps links.
    pub fn trap_links(&self, me: Pid) -> bool {
        self.procs.get(&me).is_some_and(|p| p.trap_links)
    }

    /// Registers `name` for `pid` on behalf of `me`; `pid` must be alive
    /// and of `me`'s own host (`PERMISSION_DENIED` otherwise).
    pub fn register(&mut self, me: Pid, name: &str, pid: Pid) -> Result<(), ProcError> {
        self.check_reach("register a name", me, pid)?;
        // Only for a process of its own host: which names a process of
        // another host (a hub's) holds is that host's view, not the
        // registrant's, so a conflict there, or a name given it by a
        // third tenant, told the registrant which names tenants it cannot
        // see hold (red team N). On one host the two views are the same.
        if pid.host() != me.host() {
            let (own, other) = (self.quota_of(me), self.quota_of(pid));
            let why = format!(
                "register a name for {pid}: a process may name only processes of its own host \
                 '{}', and {pid} is of host '{}'",
                own.name, other.name
            );
            return Err(ProcError::new(ErrorKind::PermissionDenied, why));
        }
        if !self.procs.contains_key(&pid) && self.shared.directory.owner(pid).is_none() {
            return Err(not_alive(pid));
        }
        // Held against the registrant's host until it is released: naming
        // another tenant's process costs that tenant nothing.
        let cost = crate::registry::name_cost(name);
        let quota = self.shared.quota(me.host()).clone();
        if !quota.reserve_memory(cost) {
            let why = format!(
                "host '{}' has no room left in its memory_total ({} bytes) for a name",
                quota.name, quota.limits.memory_total
            );
            return Err(ProcError::new(ErrorKind::RateLimited, why));
        }
        let entry = crate::registry::Entry { pid, by: me };
        let registered = self
            .shared
            .registry
            .register(name, entry, |h| self.see_each_other(pid, h));
        match registered {
            Ok(true) => {
                // The holder may have exited between the check above and
                // the entry (its exit releases its names after leaving the
                // directory): take the entry back, and its cost, if the
                // exit's release did not.
                let gone =
                    !self.procs.contains_key(&pid) && self.shared.directory.owner(pid).is_none();
                if gone && self.shared.registry.withdraw(name, entry) {
                    quota.release_memory(cost);
                    return Err(not_alive(pid));
                }
                Ok(())
            }
            Ok(false) => {
                quota.release_memory(cost);
                Ok(())
            }
            Err(err) => {
                quota.release_memory(cost);
                Err(self.hide_owner(me, pid, name, err))
            }
        }
    }

    /// A name taken by a holder beyond `me`'s reach (one `pid`'s host sees,
    /// `me`'s does not reach) is taken, but whose it is stays hidden (as
    /// `lookup_for` hides it).
    fn hide_owner(&self, me: Pid, pid: Pid, name: &str, err: ProcError) -> ProcError {
        if err.kind != ErrorKind::AlreadyExists {
            return err;
        }
        let taken_by = self
            .shared
            .registry
            .lookup(name, |h| self.see_each_other(pid, h));
        match taken_by {
            Some(Ok(owner)) if self.reaches(me, owner) => err,
            _ => ProcError::new(
                ErrorKind::AlreadyExists,
                format!("name {name:?} is already registered"),
            ),
        }
    }

    /// The pid registered as `name`.
    pub fn lookup(&self, name: &str) -> Option<Pid> {
        self.shared.registry.any_holder(name)
    }

    /// The pid registered as `name`, as `me` may see it: a name held only
    /// by processes out of `me`'s sight is `None`, as a free name.
    pub fn lookup_for(&self, me: Pid, name: &str) -> Result<Option<Pid>, ProcError> {
        // As `resolve`: a name held out of sight reads as free.
        match self.resolve_name(me, name) {
            Ok(pid) => Ok(Some(pid)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ProcError {
                message: format!("look up: {}", e.message),
                ..e
            }),
        }
    }

    /// Unregisters the holding of `name` that `me` holds or registered;
    /// `false` if there is none (another process's name stays).
    pub fn unregister(&mut self, me: Pid, name: &str) -> bool {
        let Some(entry) = self.shared.registry.unregister(me, name) else {
            return false;
        };
        let cost = crate::registry::name_cost(name);
        self.shared.quota(entry.by.host()).release_memory(cost);
        true
    }

    // ---- The event bus (`bus.rs`, Wippy's `events` module). ----

    /// Subscribes `me` to events of systems matching `pattern` (`orders`,
    /// `orders.*`, `*`; see [`crate::bus::Pattern`]), only of `kind` if
    /// given; returns the subscription id its events carry. `INVALID` for
    /// a malformed pattern or kind, `RATE_LIMITED` past
    /// [`MAX_SUBSCRIPTIONS_PER_PROCESS`](crate::bus::MAX_SUBSCRIPTIONS_PER_PROCESS).
    /// The subscription ends with [`Self::bus_unsubscribe`] or `me`'s exit.
    pub fn bus_subscribe(
        &mut self,
        me: Pid,
        pattern: &str,
        kind: Option<&str>,
    ) -> Result<u64, ProcError> {
        if !self.procs.contains_key(&me) {
            return Err(not_alive(me));
        }
        let quota = self.shared.quota(me.host());
        let id = self
            .shared
            .bus
            .subscribe(me, pattern, kind, |cost| quota.reserve_memory(cost))?;
        if let Some(p) = self.procs.get_mut(&me) {
            p.subscribed = true;
        }
        Ok(id)
    }

    /// Ends subscription `id` of `me`; `false` if `me` holds no such
    /// subscription (closing twice is harmless).
    pub fn bus_unsubscribe(&mut self, me: Pid, id: u64) -> bool {
        let Some(cost) = self.shared.bus.unsubscribe(me, id) else {
            return false;
        };
        self.shared.quota(me.host()).release_memory(cost);
        true
    }

    /// The bytes the `data` of an event `me` publishes may take
    /// ([`wire_size`]), or why the publish is refused (`INVALID`: an empty
    /// or oversized system, kind or path): a front-end asks before it
    /// converts `data`, so a refused publish costs no copy.
    pub fn bus_send_budget(
        &self,
        me: Pid,
        system: &str,
        kind: &str,
        path: &str,
    ) -> Result<usize, ProcError> {
        crate::bus::check_event(system, kind, path)?;
        let envelope = [Value::Int(0), bus_event(system, kind, path, Value::Nil)];
        // Plus the "data" key the map gains when there is data.
        let overhead = wire_size(&envelope) + wire_size(&[Value::str("data")]);
        let limit = self.quota_of(me).limits.max_message_bytes;
        Ok(limit.saturating_sub(overhead))
    }

    /// Publishes an event: every subscription matching `system` and `kind`
    /// now gets, as a message from `me` on topic
    /// [`BUS_TOPIC`](crate::bus::BUS_TOPIC), the payloads
    /// `[Int(subscription id), Map{system, kind, path, data}]` (`data`
    /// left out when nil). Best-effort: subscribers whose host and `me`'s
    /// may not reach each other (`allow_hosts`, checked both ways), whose
    /// `max_message_bytes` the event passes, whose mailbox is
    /// full, for which `me`'s host has no `memory_total` left, or past
    /// what one publish may deliver (an event over
    /// [`fanout::SMALL_RESULT`] bytes goes to at most
    /// [`fanout::MAX_FANOUT_MESSAGES`] times `me`'s `max_message_bytes`
    /// in all), miss it;
    /// `me` never learns who got it. `INVALID` only for `me`'s own
    /// mistakes: a malformed system, kind or path, data over `me`'s
    /// `max_message_bytes` or that no front-end can hold.
    pub fn bus_send(
        &mut self,
        me: Pid,
        system: &str,
        kind: &str,
        path: &str,
        data: Value,
    ) -> Result<(), ProcError> {
        let budget = self.bus_send_budget(me, system, kind, path)?;
        let bytes = wire_size(std::slice::from_ref(&data));
        if bytes > budget {
            let limit = self.quota_of(me).limits.max_message_bytes;
            let message = format!(
                "event data of {bytes} bytes exceeds the {budget} bytes max_message_bytes \
                 ({limit}) leaves for it"
            );
            return Err(ProcError::new(ErrorKind::Invalid, message));
        }
        check_values(std::slice::from_ref(&data), "data")
            .map_err(|e| ProcError::new(ErrorKind::Invalid, e))?;
        let mut subs = Vec::new();
        // Only the subscriptions of hosts that see `me`'s both ways: the
        // event is a message from `me` (as `send`), and it shows them what
        // `me` does and its pid (as `monitor` and `lookup_for`), which a
        // host that may not reach `me` must not see. Another tenant's are
        // never looked at.
        let sees = |host: u16| {
            let to = Pid::new(host, 1);
            self.reaches(me, to) && self.reaches(to, me)
        };
        self.shared.bus.matching(system, kind, sees, &mut subs);
        if subs.is_empty() {
            return Ok(());
        }
        let event = bus_event(system, kind, path, data);
        // Encoded once and shared by every subscriber's message, which
        // counts its subscription id besides.
        let wire = wire_size(std::slice::from_ref(&event));
        let bytes = wire_size(&[Value::Int(0)]) + wire;
        let event = Payload::Packed(
            crate::payload::Packed::new(crate::msgpack::encode(&event), wire).shared(),
        );
        let topic: Arc<str> = crate::bus::BUS_TOPIC.into();
        // What one publish may deliver in all, as one exit's result
        // (`fanout`): a small event to everyone, a larger one up to
        // MAX_FANOUT_MESSAGES of the publisher's largest messages. Each
        // delivery is converted into its receiver (a 1 MB event to 12,800
        // subscriptions on one worker held it 2.4 s after the publish).
        let mut left = if bytes <= fanout::SMALL_RESULT {
            usize::MAX
        } else {
            let max = self.quota_of(me).limits.max_message_bytes;
            max.saturating_mul(fanout::MAX_FANOUT_MESSAGES)
        };
        for (to, id) in subs {
            if bytes > self.quota_of(to).limits.max_message_bytes || bytes > left {
                continue;
            }
            let Ok(held) = self.hold(me, to, bytes) else {
                continue;
            };
            let msg = Message {
                from: me,
                topic: topic.clone(),
                payloads: vec![
                    Value::Int(i64::try_from(id).unwrap_or(i64::MAX)).into(),
                    event.clone(),
                ],
                held: Some(held),
            };
            // A full mailbox or an exited subscriber just misses it.
            if self.enqueue(to, msg).is_ok() {
                left -= bytes.min(left);
            }
        }
        Ok(())
    }

    /// A waker that any thread may use to queue [`Item::Wake`] for `pid`,
    /// a process of this worker, waking the worker if it sleeps.
    pub fn waker(&self, pid: Pid) -> std::task::Waker {
        std::task::Waker::from(Arc::new(ProcWaker {
            shared: self.shared.clone(),
            worker: self.worker,
            pid,
        }))
    }

    /// Queues `Item::Timer(id)` for `me` after `delay`.
    pub fn start_timer(&mut self, me: Pid, id: u64, delay: Duration) {
        self.timer_seq += 1;
        let at = Instant::now() + delay;
        self.timers.push(Reverse((at, self.timer_seq, me, id)));
        // Charged while its entry is in the heap and its process lives
        // (`timer_left`, `exit`).
        if self.procs.contains_key(&me) {
            self.shared.quota(me.host()).add_memory(TIMER_BYTES);
            let n = self.timer_counts.entry(me).or_default();
            *n = n.saturating_add(1);
        } else {
            self.dead_timers += 1;
        }
        self.publish_timers();
    }

    /// Counts one timer entry of `pid` out of the heap, giving back its
    /// charge if `pid` lives (an exited process's went back at its exit).
    fn timer_left(&mut self, pid: Pid) {
        match self.timer_counts.get_mut(&pid) {
            Some(1) => {
                self.timer_counts.remove(&pid);
            }
            Some(n) => *n -= 1,
            None => {
                self.dead_timers = self.dead_timers.saturating_sub(1);
                return;
            }
        }
        self.shared.quota(pid.host()).release_memory(TIMER_BYTES);
    }

    /// Cancels timer `id` of `me`: it will not fire, and a fire already
    /// filed in the mailbox the core keeps for `me` is taken back. Its
    /// entry leaves the heap when it comes due or, sooner, once cancelled
    /// entries are half the heap (a loop that re-arms a long timer, as
    /// `timer:reset` or a wait with a timeout that something else ends,
    /// would otherwise grow the heap until the deadlines pass).
    /// Amortised O(1).
    pub fn cancel_timer(&mut self, me: Pid, id: u64) {
        if let Some(mailbox) = self
            .procs
            .get_mut(&me)
            .and_then(|p| p.mailbox.as_deref_mut())
            && mailbox.take_fired(id)
        {
            return;
        }
        self.cancelled.insert((me, id));
        if self.cancelled.len() > TIMER_PURGE_FLOOR && 2 * self.cancelled.len() > self.timers.len()
        {
            let cancelled = std::mem::take(&mut self.cancelled);
            let mut left = Vec::new();
            self.timers.retain(|Reverse((_, _, pid, id))| {
                let keep = !cancelled.contains(&(*pid, *id));
                if !keep {
                    left.push(*pid);
                }
                keep
            });
            for pid in left {
                self.timer_left(pid);
            }
            self.publish_timers();
        }
    }

    /// Makes this worker's count of armed timers visible to the runtime
    /// (`Runtime::armed_timers`).
    fn publish_timers(&self) {
        let remote = &self.shared.workers[self.worker];
        remote
            .timers
            .store(self.timers.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// At the runtime's end (its worker stopping with processes alive):
    /// every live process's operations are stopped and its handles closed,
    /// as at its exit. Without it a queued SQLite statement of a process
    /// the runtime dropped still ran, to its `query_timeout`, on the
    /// process-wide SQL lane, in its host's share of it.
    pub(crate) fn shut_all_io(&mut self) {
        let mut ios = Vec::new();
        for (pid, p) in self.procs.iter_mut() {
            if let Some(io) = p.io.take() {
                ios.push((*pid, io));
            }
        }
        for (pid, io) in ios {
            io.shut(&self.shared, self.shared.quota(pid.host()));
        }
    }

    /// Ends `me` with `result`, notifying links, monitors and watchers.
    pub fn exit(&mut self, me: Pid, result: Exit) {
        // A burst ends with an exit here; its children are placed while
        // their parent is still known (it may be this one).
        self.place_burst();
        let Some(p) = self.procs.remove(&me) else {
            return;
        };
        // Its timers' entries stay until they come due or are swept, on
        // no host's account: a few hundred hour-long timers held their
        // charge for the hour.
        let armed = self.timer_counts.remove(&me).unwrap_or(0);
        self.shared
            .quota(me.host())
            .release_memory(TIMER_BYTES * u64::from(armed));
        self.dead_timers += armed as usize;
        self.burst.parent = None;
        let max_bytes = self.quota_of(me).limits.max_message_bytes;
        let result = deliverable(result, max_bytes);
        let mut fanout = fanout::Fanout::new(me, &result, max_bytes);
        // Before anyone hears of the exit: its I/O is interrupted and its
        // transactions are rolled back (queued ahead of any later use).
        if let Some(io) = p.io {
            for (op, run) in &io.ops {
                if let crate::hostcall::OpRun::Blocking(b) = run {
                    self.op_deadlines.remove(&(b.at, me, *op));
                }
            }
            io.shut(&self.shared, self.shared.quota(me.host()));
        }
        // A callee's failure is its caller's result, not news to log.
        let is_callee = p.call.is_some();
        if let Some(call) = p.call {
            self.call_exited(&call, fanout.copy(&result));
        }
        self.purge_timers();
        self.shared.directory.remove(me);
        for (entry, cost) in self.shared.registry.release(me) {
            self.shared.quota(entry.by.host()).release_memory(cost);
        }
        if p.subscribed {
            let cost = self.shared.bus.release(me);
            self.shared.quota(me.host()).release_memory(cost);
        }
        self.shared.quota(me.host()).release_process();
        // What it held in the core (events and messages it never took, with
        // the memory they hold against their hosts) is given back before
        // anyone hears of the exit: a watcher told of it sees it all back.
        drop(p.mailbox);
        drop(p.items);
        let peers = p.peers.map(|b| *b).unwrap_or_default();
        self.shared.quota(me.host()).release_memory(peers.charged());
        for &child in &peers.execs {
            let why = ProcError::new(
                ErrorKind::Canceled,
                format!("terminated: {me}, whose exec waited on it, ended"),
            );
            self.post(Cmd::Kill(child, why));
        }
        let linked = is_callee || !peers.links.is_empty() || !peers.watchers.is_empty();
        // Told now when no earlier exit is still being told (`telling`),
        // [`telling::TELL_STEP`] at a time.
        if !peers.links.is_empty() || !peers.watchers.is_empty() || !peers.watching.is_empty() {
            let telling = telling::Telling::new(me, result.clone(), fanout, peers);
            if self.tellings.is_empty() {
                self.tell(telling, telling::TELL_STEP);
            } else {
                self.tellings.push_back(telling);
            }
        }
        let failure = result.as_ref().err().map(|e| e.message.clone());
        let watched = self.shared.process_exited(self.worker, me, result);
        // The failure's text is the process's: cut, without line breaks,
        // and within its host's log budget (30,800 crashers wrote 463 MB
        // of "process failed" lines in 3 s, and a `\n` in an error forged
        // another host's line).
        let line = failure.as_deref().map(crate::logline::log_line);
        let quota = self.shared.quota(me.host());
        match line {
            // Nobody else will see this failure: make it visible.
            Some(line) if !linked && !watched => {
                if quota.admit_log(tracing::Level::WARN, line.len()) {
                    tracing::warn!(pid = %me, "process failed: {line}")
                }
            }
            Some(line) => {
                if quota.admit_log(tracing::Level::DEBUG, line.len()) {
                    tracing::debug!(pid = %me, "process failed: {line}")
                }
            }
            None => tracing::debug!(pid = %me, "process exited"),
        }
    }

    /// Takes the next item of a ready process of front-end `frontend`. A
    /// pending kill comes before anything else that process has queued.
    pub fn next_item(&mut self, frontend: usize) -> Option<(Pid, Item)> {
        loop {
            let pid = *self.ready.get(frontend)?.front()?;
            let Some(p) = self.procs.get_mut(&pid) else {
                self.ready[frontend].pop_front();
                continue;
            };
            if let Some(reason) = p.kill.take() {
                p.items.clear();
                return Some((pid, Item::Kill(*reason)));
            }
            if let Some(item) = p.items.pop_front() {
                if let Item::Done { op, .. } = &item {
                    // A result nobody waits for any more (cancelled, timed
                    // out) is dropped here, never converted.
                    match p.io.as_mut().and_then(|io| io.ops.remove(op)) {
                        Some(crate::hostcall::OpRun::Blocking(b)) => {
                            self.op_deadlines.remove(&(b.at, pid, *op));
                        }
                        Some(_) => {}
                        None => continue,
                    }
                }
                // Its last item: it leaves the ready queue now, so that
                // `has_ready` is exact for the caller. Else it goes to the
                // back: one item a turn, so a process whose queue another
                // keeps filling (a flood from another host) cannot hold
                // every other ready process behind it.
                let last = p.items.is_empty() && p.kill.is_none();
                if last {
                    p.unqueue();
                }
                let ready = &mut self.ready[frontend];
                ready.pop_front();
                if !last {
                    ready.push_back(pid);
                }
                return Some((pid, item));
            }
            p.unqueue();
            self.ready[frontend].pop_front();
        }
    }

    /// The process and operation of the item [`Core::next_item`] would
    /// take next for `frontend` when that item is a host call's value
    /// (`Done` with `Ok(OpValue::Value | OpValue::Kept)`) still awaited; `None` for any
    /// other next item (a kill, an error, a handle, a result nobody
    /// awaits, a process gone), which `next_item` then takes as usual.
    /// Lets a front-end hand such values to their waiter without the
    /// general path, knowing what it will take before it takes it.
    pub fn peek_done(&self, frontend: usize) -> Option<(Pid, u64)> {
        let pid = *self.ready.get(frontend)?.front()?;
        let p = self.procs.get(&pid)?;
        if p.kill.is_some() {
            return None;
        }
        match p.items.front()? {
            Item::Done {
                op,
                result: Ok(crate::hostcall::OpValue::Value(_) | crate::hostcall::OpValue::Kept(..)),
            } if p.io.as_ref().is_some_and(|io| io.ops.contains_key(op)) => Some((pid, *op)),
            _ => None,
        }
    }

    /// Takes the item [`Core::peek_done`] names, when there is one: the
    /// process, the operation, the value and what keeps it counted (to be
    /// dropped once the process has the value).
    pub fn take_done(&mut self, frontend: usize) -> Option<TakenDone> {
        let peeked = self.peek_done(frontend).is_some();
        self.take_peeked(frontend, peeked, |pid, item| match item {
            Item::Done { op, result: Ok(v) } => {
                let (value, keep) = v.into_data().ok()?;
                Some((pid, op, value, keep))
            }
            _ => None,
        })
    }

    /// The process whose item [`Core::next_item`] would take next for
    /// `frontend` when that item is a message with one payload (the usual
    /// message) or none (`send(pid, topic)`); `None` for any other next
    /// item.
    pub fn peek_msg(&self, frontend: usize) -> Option<(Pid, &Message)> {
        match self.front_item(frontend)? {
            (pid, Item::Msg(m)) if m.payloads.len() <= 1 => Some((pid, m)),
            _ => None,
        }
    }

    /// The process whose item [`Core::next_item`] would take next for
    /// `frontend`, and that item, unless the process is being killed.
    fn front_item(&self, frontend: usize) -> Option<(Pid, &Item)> {
        let pid = *self.ready.get(frontend)?.front()?;
        let p = self.procs.get(&pid)?;
        if p.kill.is_some() {
            return None;
        }
        Some((pid, p.items.front()?))
    }

    /// Takes the message [`Core::peek_msg`] names, when there is one.
    pub fn take_msg(&mut self, frontend: usize) -> Option<(Pid, Message)> {
        let peeked = self.peek_msg(frontend).is_some();
        self.take_peeked(frontend, peeked, |pid, item| match item {
            Item::Msg(m) => Some((pid, m)),
            _ => None,
        })
    }

    /// The process and timer of the item [`Core::next_item`] would take
    /// next for `frontend` when that item is a timer's fire; `None` for
    /// any other next item.
    pub fn peek_timer(&self, frontend: usize) -> Option<(Pid, u64)> {
        match self.front_item(frontend)? {
            (pid, Item::Timer(id)) => Some((pid, *id)),
            _ => None,
        }
    }

    /// Takes the fire [`Core::peek_timer`] names, when there is one.
    pub fn take_timer(&mut self, frontend: usize) -> Option<(Pid, u64)> {
        let peeked = self.peek_timer(frontend).is_some();
        self.take_peeked(frontend, peeked, |pid, item| match item {
            Item::Timer(id) => Some((pid, id)),
            _ => None,
        })
    }

    /// The process whose item [`Core::next_item`] would take next for
    /// `frontend` when that item is its start with no context values (the
    /// usual spawn), with the entry it runs and how many arguments it has;
    /// `None` for any other next item.
    pub fn peek_start(&self, frontend: usize) -> Option<(Pid, &Arc<Program>, usize)> {
        match self.front_item(frontend)? {
            (
                pid,
                Item::Start {
                    program,
                    args,
                    context: Value::Nil,
                    ..
                },
            ) => Some((pid, program, args.len())),
            _ => None,
        }
    }

    /// Takes the start [`Core::peek_start`] names, when there is one: the
    /// process and its arguments.
    pub fn take_start(&mut self, frontend: usize) -> Option<(Pid, Vec<Value>)> {
        let peeked = self.peek_start(frontend).is_some();
        self.take_peeked(frontend, peeked, |pid, item| match item {
            Item::Start { args, .. } => Some((pid, args)),
            _ => None,
        })
    }

    /// The process whose item [`Core::next_item`] would take next for
    /// `frontend` when that item is an event, with the event; `None` for
    /// any other next item.
    pub fn peek_event(&self, frontend: usize) -> Option<(Pid, &Event)> {
        match self.front_item(frontend)? {
            (pid, Item::Event(event)) => Some((pid, event)),
            _ => None,
        }
    }

    /// Takes the event [`Core::peek_event`] names, when there is one.
    pub fn take_event(&mut self, frontend: usize) -> Option<(Pid, Event)> {
        let peeked = self.peek_event(frontend).is_some();
        self.take_peeked(frontend, peeked, |pid, item| match item {
            Item::Event(event) => Some((pid, event)),
            _ => None,
        })
    }

    /// The next item of `frontend` as `extract` makes it, when a peek
    /// found (`peeked`) that it is the kind `extract` takes.
    fn take_peeked<T>(
        &mut self,
        frontend: usize,
        peeked: bool,
        extract: impl FnOnce(Pid, Item) -> Option<T>,
    ) -> Option<T> {
        if !peeked {
            return None;
        }
        let (pid, item) = self.next_item(frontend)?;
        let taken = extract(pid, item);
        debug_assert!(
            taken.is_some(),
            "next_item took another item than its peek named"
        );
        taken
    }

    /// The capacity of process `pid`'s item queue, for tests.
    #[cfg(test)]
    pub(crate) fn queue_capacity(&self, pid: Pid) -> Option<usize> {
        self.procs.get(&pid).map(|p| p.items.capacity())
    }

    /// Whether a process of `frontend` has items waiting.
    pub fn has_ready(&self, frontend: usize) -> bool {
        self.ready.get(frontend).is_some_and(|q| !q.is_empty())
    }

    pub(crate) fn any_ready(&self) -> bool {
        self.ready.iter().any(|q| !q.is_empty())
    }

    /// How many processes live on this worker.
    pub fn process_count(&self) -> usize {
        self.procs.len()
    }

    pub(crate) fn fire_timers(&mut self, now: Instant) {
        self.expire_ops(now);
        while let Some(Reverse((at, _, pid, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.timer_left(pid);
            if self.cancelled.is_empty() || !self.cancelled.remove(&(pid, id)) {
                self.push_local(pid, Item::Timer(id));
            }
        }
        self.publish_timers();
    }

    /// Drops timers of exited processes once they are half the heap, so a
    /// process that armed long timers and exited does not hold their
    /// memory until the deadlines pass. Each scan takes out at least half
    /// of what it reads: amortised O(1) per timer. (Scanning whenever the
    /// heap outnumbered twice the live processes scanned a million live
    /// timers at every exit: 1,000 children spawned next to them held
    /// their worker 5 s.)
    fn purge_timers(&mut self) {
        if self.dead_timers > TIMER_PURGE_FLOOR && 2 * self.dead_timers > self.timers.len() {
            let procs = &self.procs;
            // Their charges went back at their processes' exits.
            self.timers
                .retain(|Reverse((_, _, pid, _))| procs.contains_key(pid));
            self.cancelled.retain(|(pid, _)| procs.contains_key(pid));
            self.dead_timers = 0;
            self.publish_timers();
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, ..))| *at);
        let op = self.op_deadlines.first().map(|(at, ..)| *at);
        match (timer, op) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Queues `cmd` in the outbox of `worker` (not this one).
    fn queue_for(&mut self, worker: usize, cmd: Cmd) {
        self.outbox[worker].push(cmd);
        self.outbox_queued = true;
    }

    /// The outboxes that hold commands, by worker: the caller hands each
    /// one's commands over, emptying it ([`Remote::hand_all`]).
    ///
    /// [`Remote::hand_all`]: crate::worker::Remote::hand_all
    pub(crate) fn outboxes(&mut self) -> impl Iterator<Item = (usize, &mut Vec<Cmd>)> + '_ {
        self.outbox_queued = false;
        self.outbox
            .iter_mut()
            .enumerate()
            .filter(|(_, cmds)| !cmds.is_empty())
    }

    /// What a front-end does between batches of resumptions: hands over
    /// what is queued for idle workers ([`Core::hand_over_to_idle`]) and
    /// takes in what other workers and threads sent here
    /// ([`Core::take_incoming`]).
    #[inline]
    pub fn between_batches(&mut self) {
        self.place_burst();
        if self.outbox_queued {
            self.hand_over_to_idle();
        }
        if self.shared.workers[self.worker].has_pending() {
            self.take_incoming();
        }
    }

    /// Applies the commands other workers and threads queued for this
    /// worker since it last looked (messages, spawns, kills, host calls'
    /// results): the worker does between slices, a front-end between
    /// batches (a slice can be hundreds of long resumptions, and a
    /// message, a kill or an I/O result for a process of a busy worker
    /// waited for its end).
    pub fn take_incoming(&mut self) {
        let mut cmds = std::mem::take(&mut self.incoming);
        self.shared.workers[self.worker].take_into(&mut cmds);
        for cmd in cmds.drain(..) {
            self.apply_incoming(cmd);
        }
        self.incoming = cmds;
    }

    /// Hands the commands queued for workers that are idle (not running,
    /// nothing queued: watching their queue or asleep) over now, rather
    /// than when this worker ends its slice. A front-end calls it between
    /// batches of resumptions: a busy worker's slice can be hundreds of
    /// long resumptions (256 of the pairs bench's, each a sender's window
    /// of messages, are 20 ms), and processes it spawned on an idle
    /// worker, or messages it sent there, would wait that long while the
    /// other core does nothing.
    /// Commands for busy workers stay batched (no thread is woken per
    /// message); order is kept, every command to a worker goes in its
    /// outbox's order.
    pub fn hand_over_to_idle(&mut self) {
        let mut left = false;
        for (worker, cmds) in self.outbox.iter_mut().enumerate() {
            if cmds.is_empty() {
                continue;
            }
            if self.shared.workers[worker].busy() {
                left = true;
            } else {
                self.shared.workers[worker].hand_all(cmds);
            }
        }
        self.outbox_queued = left;
    }

    /// Applies `cmd` here if its target is local, else queues it for the
    /// owning worker. `false` when the target is not alive anywhere.
    fn post(&mut self, cmd: Cmd) -> bool {
        let target = cmd.target();
        if self.procs.contains_key(&target) {
            self.apply(cmd);
            return true;
        }
        match self.shared.directory.get(target) {
            Some(worker) if worker != self.worker => {
                self.queue_for(worker, cmd);
                true
            }
            // Placed here, its spawn not here yet: see `enqueue`.
            Some(_) => {
                self.early.entry(target).or_default().push(cmd);
                true
            }
            None => false,
        }
    }

    pub(crate) fn dispatch(&mut self, worker: usize, cmd: Cmd) {
        if worker == self.worker {
            self.apply(cmd);
        } else {
            self.queue_for(worker, cmd);
        }
    }

    /// Applies `cmd`, taken from this worker's queue. Workers push to
    /// each other independently, so a command for a process can come
    /// before its spawn: with three workers, A spawns P on C and tells B
    /// its pid, and B's message (or kill, or link) reaches C before A's
    /// spawn does. A process the directory places here but that is not
    /// here yet is such a process: its commands wait for the spawn
    /// (they were dropped, a lost message or a callee never killed).
    pub(crate) fn apply_incoming(&mut self, cmd: Cmd) {
        // A message (most of what comes in) is queued with one look-up.
        let cmd = match cmd {
            Cmd::Deliver(pid, item) => match self.arrived(pid, item) {
                Ok(()) => return,
                Err(item) => Cmd::Deliver(pid, item),
            },
            cmd => cmd,
        };
        let target = cmd.target();
        if matches!(cmd, Cmd::Spawn(_)) || self.procs.contains_key(&target) {
            return self.apply(cmd);
        }
        match self.shared.directory.owner(target) {
            Some(worker) if worker == self.worker => {
                self.early.entry(target).or_default().push(cmd);
            }
            // It moved on before it started (`burst`): a command routed
            // here first cannot be left behind. `Directory::relocate`
            // moves none with one still on its way, so this is a guard.
            Some(worker) => self.queue_for(worker, cmd),
            None => self.apply(cmd),
        }
    }

    pub(crate) fn apply(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Spawn(mut spawn) => {
                let pid = spawn.pid;
                let carried = std::mem::take(&mut spawn.carried);
                self.spawn_here(spawn);
                for cmd in carried {
                    self.apply(cmd);
                }
                if !self.early.is_empty() {
                    for cmd in self.early.remove(&pid).unwrap_or_default() {
                        self.apply(cmd);
                    }
                }
            }
            Cmd::Deliver(pid, item) => {
                let _ = self.arrived(pid, item);
            }
            Cmd::Kill(pid, reason) => {
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.kill.get_or_insert_with(|| Box::new(reason));
                    self.queue(pid);
                }
            }
            Cmd::LinkExit(pid, signal) => self.link_exit(pid, signal),
            Cmd::AddLink { target, peer } => self.add_link_here(target, peer),
            Cmd::RemoveLink { target, peer } => self.remove_link_here(target, peer),
            Cmd::UnlinkAck { target, peer } => self.unlink_acked(target, peer),
            Cmd::AddMonitor { target, watcher } => self.add_monitor_here(target, watcher),
            Cmd::RemoveMonitor { target, watcher } => self.remove_monitor_here(target, watcher),
        }
    }

    /// Makes the process of `spawn` and queues its start.
    fn spawn_here(&mut self, spawn: crate::worker::SpawnCmd) {
        let kept = self
            .shared
            .factories
            .get(spawn.frontend)
            .is_some_and(|f| f.keeps_mailboxes());
        let mut entry = ProcEntry {
            frontend: u16::try_from(spawn.frontend).unwrap_or(u16::MAX),
            unread: spawn.queued,
            call: spawn.call,
            last_child: NO_CHILD,
            mailbox: (!kept).then(|| Box::new(Mailbox::counted(self.quota_of(spawn.pid).clone()))),
            program: Some(spawn.program.clone()),
            ..ProcEntry::default()
        };
        if spawn.link_to.is_some() || spawn.monitored_by.is_some() {
            let peers = entry.peers();
            // The parent made the link and pays for it.
            peers
                .links
                .extend(spawn.link_to.map(|parent| (parent, false)));
            peers.watchers.extend(spawn.monitored_by);
        }
        let args = spawn.args;
        entry.items.push_back(Item::Start {
            program: spawn.program,
            args,
            context: spawn.context,
            held: spawn.held,
        });
        self.procs.insert(spawn.pid, entry);
        self.queue(spawn.pid);
    }

    /// Queues `item`, come from another worker, for `pid` if it is here
    /// (a message's size counted in its estimate: the sender's worker
    /// counted it in the directory); hands the item back if not.
    fn arrived(&mut self, pid: Pid, item: Item) -> Result<(), Item> {
        if let Item::Msg(msg) = &item
            && let Some(p) = self.procs.get_mut(&pid)
        {
            p.sizes.add(msg.wire_bytes());
        }
        self.try_push_local(pid, item)
    }

    fn push_local(&mut self, pid: Pid, item: Item) -> bool {
        self.try_push_local(pid, item).is_ok()
    }

    /// Queues `item` for `pid` if it is here; hands the item back if not.
    fn try_push_local(&mut self, pid: Pid, item: Item) -> Result<(), Item> {
        let Some(p) = self.procs.get_mut(&pid) else {
            return Err(item);
        };
        if let Item::Event(Event::Exit { from, .. }) = &item
            && let Some(peers) = p.peers.as_mut()
            && peers.watching.remove(from)
        {
            peers.execs.remove(from);
            // The monitor has done its work: its charge and its room come
            // back (see `Peers::tidy`).
            self.shared
                .quota(pid.host())
                .release_memory(PEER_PAIR_BYTES);
            peers.tidy();
            if peers.is_empty() {
                p.peers = None;
            }
        }
        // A mailbox the core keeps files what is its; the front-end only
        // learns that its process has something new (one wake-up queued
        // for any number of arrivals).
        let item = match p.mailbox.as_deref_mut() {
            None => item,
            Some(mailbox) => match mailbox.deliver(item) {
                Err(item) => item,
                Ok(()) if matches!(p.items.back(), Some(Item::Wake)) => return Ok(()),
                Ok(()) => Item::Wake,
            },
        };
        p.items.push_back(item);
        self.queue(pid);
        Ok(())
    }

    fn queue(&mut self, pid: Pid) {
        if let Some(p) = self.procs.get_mut(&pid)
            && !p.queued
        {
            p.queued = true;
            self.ready[usize::from(p.frontend)].push_back(pid);
        }
    }
}

/// Wakes one process from another thread by queueing [`Item::Wake`].
struct ProcWaker {
    shared: Arc<Shared>,
    worker: usize,
    pid: Pid,
}

impl std::task::Wake for ProcWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.shared.workers[self.worker].push_all([Cmd::Deliver(self.pid, Item::Wake)]);
    }
}

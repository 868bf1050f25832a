//! The event bus: Wippy's `events` module, a best-effort publish/subscribe
//! channel between processes.
//!
//! A process subscribes to a system pattern (and optionally one event
//! kind); a publish reaches every subscription that matches it at the time
//! of the send, as an ordinary message on the reserved topic [`BUS_TOPIC`]
//! (see [`Core::bus_send`](crate::Core::bus_send) for the format). Delivery
//! is best-effort: a subscriber whose mailbox is full, or that the
//! publisher's host has no memory left to queue for, misses the event; the
//! publisher is never told who received it, nor blocked, nor failed for it.
//!
//! Tenants: an event reaches a subscriber only when the publisher's host
//! may reach the subscriber's (`allow_hosts`, as for `send`: the event is a
//! message from the publisher) *and* the subscriber's host may reach the
//! publisher's (as for `monitor` and `lookup_for`: the event shows what
//! the publisher does, and its pid). Otherwise a host with an empty
//! `allow_hosts` could subscribe to `*` and watch every tenant whose
//! `allow_hosts` is open.
//!
//! Patterns ([`Pattern`]): an exact system name (`orders`), a prefix
//! `orders.*` that matches every system strictly below `orders`
//! (`orders.eu`, `orders.eu.x`, but not `orders` itself), or `*` for every
//! system. Wippy's own matcher (`internal/wildcard` of `wippyai/runtime`)
//! splits on dots and makes `*` match exactly one segment, so `orders.*`
//! never matches `orders` there either; we widen it to any depth below
//! (Wippy spells that `orders.**`, which also matches `orders`) and make a
//! lone `*` match everything, so that one index lookup per dot of the
//! published system finds every match. Any other use of `*` is `INVALID`.
//!
//! The registry lives in `Shared`, its subscriptions apart by the
//! subscriber's host; a publish costs one read lock and, for each host the
//! publisher's sees, one hash lookup for the exact system, one per
//! dot-prefix of it, plus the matching subscriptions, never a scan of all
//! of them, nor of another tenant's it could not deliver to (a tenant
//! reaching no one held 3.2 million `*` subscriptions, each looked at by
//! every publish of every other tenant: 99-254 ms a publish). Each
//! subscription is held against its host's `memory_total`
//! ([`subscription_cost`]).

use std::sync::RwLock;

use rustc_hash::FxHashMap;

use crate::error::{ErrorKind, ProcError};
use crate::pid::Pid;

/// The topic bus events arrive on. User sends cannot use it: topics
/// starting with `@` are reserved for the runtime (`Core::send`).
pub const BUS_TOPIC: &str = "@bus";

/// Subscriptions one process may hold at once. Each one costs shared
/// memory in a runtime-wide registry and work on every matching publish;
/// without a bound a single process could subscribe millions of times and
/// both exhaust memory outside its host's quota and turn every publish
/// into a flood. Past it `bus_subscribe` fails with `RATE_LIMITED`.
pub const MAX_SUBSCRIPTIONS_PER_PROCESS: usize = 64;

/// Subscriptions all the processes of one host may hold at once. Every
/// publish by a host that sees it walks each of them that matches (a `*`
/// matches all): one tenant's 3,000 idle processes, 64 `*` subscriptions
/// each, made another tenant's every `events.send` walk 192,000 of them
/// in its own call, 0.7–1.2 s a round trip (red team S). Past it
/// `bus_subscribe` fails with `RATE_LIMITED`.
pub const MAX_SUBSCRIPTIONS_PER_HOST: usize = 4096;

/// Longest pattern, system, kind or path, in bytes: they are kept in (or
/// looked up in) the shared registry and copied into every delivered
/// event, so a process may not make them megabytes long. Longer ones are
/// `INVALID`.
pub const MAX_BUS_STRING_BYTES: usize = 256;

/// The bytes a subscription is held as against its subscriber's host's
/// `memory_total` while it exists: its entries in the registry's maps and
/// its pattern and kind.
pub fn subscription_cost(pattern: &str, kind: Option<&str>) -> u64 {
    let text = pattern.len() + kind.map_or(0, str::len);
    u64::try_from(text).unwrap_or(u64::MAX).saturating_add(192)
}

fn invalid(message: String) -> ProcError {
    ProcError::new(ErrorKind::Invalid, message)
}

/// Refuses an empty or oversized `what` (`system`, `kind`, `path`, `pattern`).
fn check_text(what: &str, text: &str) -> Result<(), ProcError> {
    if text.is_empty() {
        return Err(invalid(format!("event {what} must not be empty")));
    }
    if text.len() > MAX_BUS_STRING_BYTES {
        return Err(invalid(format!(
            "event {what} of {} bytes exceeds {MAX_BUS_STRING_BYTES} bytes",
            text.len()
        )));
    }
    Ok(())
}

/// Checks the strings of a publish: each non-empty and at most
/// [`MAX_BUS_STRING_BYTES`]; `INVALID` otherwise (Wippy's error table).
pub fn check_event(system: &str, kind: &str, path: &str) -> Result<(), ProcError> {
    check_text("system", system)?;
    check_text("kind", kind)?;
    check_text("path", path)
}

/// What systems a subscription matches; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// `*`: every system.
    All,
    /// `orders`: exactly this system.
    Exact(Box<str>),
    /// `orders.*`: every system below `orders` (`orders.eu`, `orders.eu.x`).
    Below(Box<str>),
}

impl Pattern {
    /// Parses a subscription pattern; `INVALID` for an empty or oversized
    /// one, or one using `*` other than as `*` or a final `.*`.
    pub fn parse(text: &str) -> Result<Pattern, ProcError> {
        check_text("system pattern", text)?;
        if text == "*" {
            return Ok(Pattern::All);
        }
        let (base, below) = match text.strip_suffix(".*") {
            Some(base) => (base, true),
            None => (text, false),
        };
        if base.is_empty() || base.contains('*') {
            return Err(invalid(format!(
                "invalid event system pattern {text:?}: '*' may only be the whole pattern \
                 or its last segment ('orders.*')"
            )));
        }
        Ok(if below {
            Pattern::Below(base.into())
        } else {
            Pattern::Exact(base.into())
        })
    }

    /// Whether a publish to `system` matches it.
    pub fn matches(&self, system: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Exact(name) => **name == *system,
            Pattern::Below(base) => system
                .strip_prefix(&**base)
                .is_some_and(|rest| rest.len() > 1 && rest.starts_with('.')),
        }
    }
}

struct Sub {
    pid: Pid,
    kind: Option<Box<str>>,
}

type Subs = FxHashMap<u64, Sub>;

/// The subscriptions of one host's processes, by pattern.
#[derive(Default)]
struct Buckets {
    all: Subs,
    exact: FxHashMap<Box<str>, Subs>,
    below: FxHashMap<Box<str>, Subs>,
}

impl Buckets {
    fn is_empty(&self) -> bool {
        self.all.is_empty() && self.exact.is_empty() && self.below.is_empty()
    }

    /// Appends what a publish of `kind` to `system` matches here.
    fn matching(&self, system: &str, kind: &str, out: &mut Vec<(Pid, u64)>) {
        let mut take = |subs: &Subs| {
            out.extend(
                subs.iter()
                    .filter(|(_, s)| s.kind.as_deref().is_none_or(|k| k == kind))
                    .map(|(id, s)| (s.pid, *id)),
            );
        };
        take(&self.all);
        if let Some(subs) = self.exact.get(system) {
            take(subs);
        }
        if !self.below.is_empty() {
            for (at, _) in system.match_indices('.') {
                if let Some(subs) = self.below.get(&system[..at]) {
                    take(subs);
                }
            }
        }
    }
}

/// One subscription's entry by id: its subscriber, pattern and cost.
struct Held {
    pid: Pid,
    pattern: Pattern,
    cost: u64,
}

#[derive(Default)]
struct Index {
    /// By the subscriber's host.
    hosts: FxHashMap<u16, Buckets>,
    by_id: FxHashMap<u64, Held>,
    by_pid: FxHashMap<Pid, Vec<u64>>,
    /// Subscriptions each host's processes hold (at most
    /// [`MAX_SUBSCRIPTIONS_PER_HOST`]).
    per_host: FxHashMap<u16, usize>,
    /// The last subscription number of each host: ids are counted per
    /// host (one runtime-wide count told a tenant how often every other
    /// tenant subscribed), the host's index above [`ID_HOST_SHIFT`].
    last: FxHashMap<u16, u64>,
}

/// Bits of a subscription id below its host's index: 2^40 subscriptions
/// a host, and any host's ids stay positive Lua integers.
const ID_HOST_SHIFT: u32 = 40;

impl Index {
    /// A new subscription id of `host`: its next number, skipping any
    /// still held once the numbers have gone round (after 2^40).
    fn next_id(&mut self, host: u16) -> u64 {
        loop {
            let n = self.last.entry(host).or_default();
            *n = n.wrapping_add(1);
            let id = (u64::from(host) << ID_HOST_SHIFT) | (*n & ((1 << ID_HOST_SHIFT) - 1));
            if !self.by_id.contains_key(&id) && id != 0 {
                return id;
            }
        }
    }

    fn bucket(&mut self, host: u16, pattern: &Pattern) -> &mut Subs {
        let b = self.hosts.entry(host).or_default();
        match pattern {
            Pattern::All => &mut b.all,
            Pattern::Exact(name) => b.exact.entry(name.clone()).or_default(),
            Pattern::Below(base) => b.below.entry(base.clone()).or_default(),
        }
    }

    /// Removes subscription `id` from its pattern's bucket (not `by_pid`);
    /// its cost, or 0 if there was none.
    fn remove(&mut self, id: u64) -> u64 {
        let Some(held) = self.by_id.remove(&id) else {
            return 0;
        };
        let host = held.pid.host();
        if let Some(n) = self.per_host.get_mut(&host) {
            *n -= 1;
            if *n == 0 {
                self.per_host.remove(&host);
            }
        }
        let Some(b) = self.hosts.get_mut(&host) else {
            return held.cost;
        };
        let keyed = match &held.pattern {
            Pattern::All => {
                b.all.remove(&id);
                None
            }
            Pattern::Exact(key) => Some((&mut b.exact, key)),
            Pattern::Below(key) => Some((&mut b.below, key)),
        };
        if let Some((map, key)) = keyed
            && let Some(subs) = map.get_mut(key)
        {
            subs.remove(&id);
            if subs.is_empty() {
                map.remove(key);
            }
        }
        if b.is_empty() {
            self.hosts.remove(&host);
        }
        held.cost
    }
}

/// The runtime-wide subscription registry.
#[derive(Default)]
pub struct Bus {
    inner: RwLock<Index>,
}

impl Bus {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Subscribes `pid` to `pattern`, optionally only to events of `kind`
    /// (an empty kind filters nothing, as in Wippy); returns the
    /// subscription's id, unique in the runtime. `INVALID` for a malformed
    /// pattern or kind, `RATE_LIMITED` past [`MAX_SUBSCRIPTIONS_PER_PROCESS`]
    /// or [`MAX_SUBSCRIPTIONS_PER_HOST`].
    /// `reserve(cost)` takes its [`subscription_cost`] from the host
    /// (false: `RATE_LIMITED`, nothing subscribed); the cost comes back
    /// from [`Self::unsubscribe`] and [`Self::release`].
    pub fn subscribe(
        &self,
        pid: Pid,
        pattern: &str,
        kind: Option<&str>,
        reserve: impl FnOnce(u64) -> bool,
    ) -> Result<u64, ProcError> {
        let kind = kind.filter(|k| !k.is_empty());
        let cost = subscription_cost(pattern, kind);
        let pattern = Pattern::parse(pattern)?;
        if let Some(kind) = kind {
            check_text("kind", kind)?;
        }
        let mut index = self.write();
        let held = index.by_pid.get(&pid).map_or(0, Vec::len);
        if held >= MAX_SUBSCRIPTIONS_PER_PROCESS {
            return Err(ProcError::new(
                ErrorKind::RateLimited,
                format!(
                    "process {pid} already holds {MAX_SUBSCRIPTIONS_PER_PROCESS} event \
                     subscriptions (the most one process may hold); close one first"
                ),
            ));
        }
        let host_held = index.per_host.get(&pid.host()).copied().unwrap_or(0);
        if host_held >= MAX_SUBSCRIPTIONS_PER_HOST {
            return Err(ProcError::new(
                ErrorKind::RateLimited,
                format!(
                    "the processes of {pid}'s host already hold {MAX_SUBSCRIPTIONS_PER_HOST} \
                     event subscriptions (the most one host may hold); close one first"
                ),
            ));
        }
        if !reserve(cost) {
            return Err(ProcError::new(
                ErrorKind::RateLimited,
                format!(
                    "event subscription of {pid}: its host's memory_total has no room for \
                     its {cost} bytes"
                ),
            ));
        }
        *index.per_host.entry(pid.host()).or_default() += 1;
        let id = index.next_id(pid.host());
        let sub = Sub {
            pid,
            kind: kind.map(Into::into),
        };
        index.bucket(pid.host(), &pattern).insert(id, sub);
        index.by_id.insert(id, Held { pid, pattern, cost });
        index.by_pid.entry(pid).or_default().push(id);
        Ok(id)
    }

    /// Drops subscription `id` of `pid`: its cost, or `None` if `pid`
    /// holds no such subscription (closed already, or another process's).
    pub fn unsubscribe(&self, pid: Pid, id: u64) -> Option<u64> {
        let mut index = self.write();
        if index.by_id.get(&id).is_none_or(|h| h.pid != pid) {
            return None;
        }
        let cost = index.remove(id);
        if let Some(ids) = index.by_pid.get_mut(&pid) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                index.by_pid.remove(&pid);
            }
        }
        Some(cost)
    }

    /// Drops every subscription of `pid` (it exited); what they cost.
    pub fn release(&self, pid: Pid) -> u64 {
        let mut index = self.write();
        let mut cost = 0u64;
        for id in index.by_pid.remove(&pid).unwrap_or_default() {
            cost = cost.saturating_add(index.remove(id));
        }
        cost
    }

    /// Appends `(subscriber, subscription id)` for every subscription a
    /// publish of `kind` to `system` matches now, among the subscribers of
    /// the hosts `sees` accepts (by host number).
    pub fn matching(
        &self,
        system: &str,
        kind: &str,
        sees: impl Fn(u16) -> bool,
        out: &mut Vec<(Pid, u64)>,
    ) {
        let index = self.read();
        for (host, buckets) in &index.hosts {
            if sees(*host) {
                buckets.matching(system, kind, out);
            }
        }
    }

    /// How many subscriptions exist (all processes).
    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    /// Whether no subscription exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many subscriptions `pid` holds.
    pub fn held_by(&self, pid: Pid) -> usize {
        self.read().by_pid.get(&pid).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, system: &str) -> bool {
        Pattern::parse(pattern).expect("valid").matches(system)
    }

    fn kinds(err: Result<impl std::fmt::Debug, ProcError>) -> ErrorKind {
        err.expect_err("must fail").kind
    }

    #[test]
    fn patterns_match_exact_below_and_all() {
        assert!(matches("orders", "orders"));
        assert!(!matches("orders", "orders.eu"));
        assert!(!matches("orders", "order"));
        assert!(matches("orders.*", "orders.eu"));
        assert!(matches("orders.*", "orders.eu.x"));
        assert!(
            !matches("orders.*", "orders"),
            "a prefix is not below itself"
        );
        assert!(!matches("orders.*", "ordersx.eu"));
        assert!(
            !matches("orders.*", "orders."),
            "an empty segment is not below"
        );
        assert!(matches("a.b.*", "a.b.c"));
        assert!(!matches("a.b.*", "a.c"));
        for system in ["x", "orders.eu.x", "."] {
            assert!(matches("*", system));
        }
    }

    #[test]
    fn malformed_patterns_and_strings_are_invalid() {
        let long = "x".repeat(MAX_BUS_STRING_BYTES + 1);
        for bad in ["", ".*", "**", "a.**", "a*", "*.a", "a.*.b", long.as_str()] {
            assert_eq!(kinds(Pattern::parse(bad)), ErrorKind::Invalid, "{bad:?}");
        }
        let fits = "x".repeat(MAX_BUS_STRING_BYTES);
        assert!(Pattern::parse(&fits).is_ok());
        assert!(check_event("s", "k", "/p").is_ok());
        for (s, k, p) in [
            ("", "k", "p"),
            ("s", "", "p"),
            ("s", "k", ""),
            ("s", &long, "p"),
        ] {
            assert_eq!(kinds(check_event(s, k, p)), ErrorKind::Invalid);
        }
        let bus = Bus::default();
        let pid = Pid::new(0, 1);
        assert_eq!(
            kinds(bus.subscribe(pid, "s", Some(&long), |_| true)),
            ErrorKind::Invalid
        );
        assert!(bus.is_empty(), "a refused subscription leaves nothing");
    }

    fn found(bus: &Bus, system: &str, kind: &str) -> Vec<u64> {
        let mut out = Vec::new();
        bus.matching(system, kind, |_| true, &mut out);
        let mut ids: Vec<u64> = out.into_iter().map(|(_, id)| id).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn publishes_find_exactly_the_matching_subscriptions() {
        let bus = Bus::default();
        let (a, b) = (Pid::new(0, 1), Pid::new(0, 2));
        let all = bus.subscribe(a, "*", None, |_| true).expect("all");
        let exact = bus
            .subscribe(a, "orders", Some("created"), |_| true)
            .expect("exact");
        let below = bus.subscribe(b, "orders.*", None, |_| true).expect("below");
        let deep = bus
            .subscribe(b, "orders.eu.*", Some(""), |_| true)
            .expect("empty kind");
        assert_eq!(found(&bus, "orders", "created"), vec![all, exact]);
        assert_eq!(found(&bus, "orders", "deleted"), vec![all]);
        assert_eq!(found(&bus, "orders.eu", "x"), vec![all, below]);
        assert_eq!(found(&bus, "orders.eu.fr", "x"), vec![all, below, deep]);
        assert_eq!(found(&bus, "billing", "x"), vec![all]);
        assert_eq!(
            bus.unsubscribe(b, below),
            Some(subscription_cost("orders.*", None))
        );
        assert!(bus.unsubscribe(b, below).is_none(), "closing twice");
        assert!(
            bus.unsubscribe(b, exact).is_none(),
            "another process's subscription"
        );
        assert_eq!(found(&bus, "orders.eu.fr", "x"), vec![all, deep]);
        bus.release(a);
        assert_eq!(found(&bus, "orders", "created"), Vec::<u64>::new());
        assert_eq!((bus.len(), bus.held_by(a), bus.held_by(b)), (1, 0, 1));
        bus.release(b);
        assert!(bus.is_empty());
        let index = bus.read();
        assert!(index.hosts.is_empty() && index.by_pid.is_empty());
    }

    #[test]
    fn a_host_holds_at_most_its_share_of_subscriptions_and_gets_room_back() {
        let bus = Bus::default();
        let sub = |pid| bus.subscribe(pid, "*", None, |_| true);
        let per = MAX_SUBSCRIPTIONS_PER_PROCESS;
        let procs = MAX_SUBSCRIPTIONS_PER_HOST / per;
        for p in 0..procs {
            for _ in 0..per {
                sub(Pid::new(2, 1 + p as u64)).expect("within the host's share");
            }
        }
        let extra = Pid::new(2, 100_000);
        let err = sub(extra).expect_err("past the host's share");
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert!(
            err.message.contains("the most one host may hold"),
            "{}",
            err.message
        );
        // Another host is not held back, and a release makes room.
        sub(Pid::new(3, 1)).expect("another host");
        bus.release(Pid::new(2, 1));
        sub(extra).expect("room again");
    }

    #[test]
    fn subscription_ids_are_counted_per_host() {
        // One runtime-wide count told a tenant how often others subscribed.
        let bus = Bus::default();
        let (a, b) = (Pid::new(0, 1), Pid::new(3, 1));
        let sub = |pid| bus.subscribe(pid, "*", None, |_| true).expect("subscribed");
        let first = sub(a);
        let theirs: Vec<u64> = (0..37).map(|_| sub(b)).collect();
        let second = sub(a);
        assert_eq!(second, first + 1, "{first} then {second}");
        assert!(theirs.windows(2).all(|w| w[1] == w[0] + 1));
        assert!(theirs.iter().all(|id| *id != first && *id != second));
        assert!(i64::try_from(theirs[36]).is_ok(), "a Lua integer");
        // Once the numbers go round, an id still held is skipped.
        bus.write().last.insert(0, (1 << ID_HOST_SHIFT) - 1);
        let wrapped = sub(a);
        assert_eq!(wrapped, first + 2, "1 and 2 are held: the next free one");
    }

    #[test]
    fn a_publish_looks_only_at_hosts_it_sees_and_subscriptions_are_paid_for() {
        let bus = Bus::default();
        let (a, b) = (Pid::new(0, 1), Pid::new(1, 1));
        let mut reserved = 0;
        let ia = bus
            .subscribe(a, "*", None, |c| {
                reserved += c;
                true
            })
            .expect("a");
        let ib = bus
            .subscribe(b, "orders.*", Some("k"), |c| {
                reserved += c;
                true
            })
            .expect("b");
        let (cost_a, cost_b) = (
            subscription_cost("*", None),
            subscription_cost("orders.*", Some("k")),
        );
        assert_eq!(reserved, cost_a + cost_b);
        let mut seen = Vec::new();
        bus.matching("orders.eu", "k", |h| h == 0, &mut seen);
        assert_eq!(seen, vec![(a, ia)], "host 1 is not looked at");
        seen.clear();
        bus.matching("orders.eu", "k", |_| true, &mut seen);
        seen.sort_unstable();
        assert_eq!(seen, vec![(a, ia), (b, ib)]);
        assert_eq!(
            kinds(bus.subscribe(a, "more", None, |_| false)),
            ErrorKind::RateLimited,
            "no room on the host"
        );
        assert_eq!(bus.len(), 2, "a refused subscription is not kept");
        assert_eq!(bus.release(a), cost_a);
        assert_eq!(bus.unsubscribe(b, ib), Some(cost_b));
        assert!(bus.read().hosts.is_empty());
    }

    #[test]
    fn a_process_holds_at_most_the_subscription_limit() {
        let bus = Bus::default();
        let (a, b) = (Pid::new(0, 1), Pid::new(0, 2));
        let ids: Vec<u64> = (0..MAX_SUBSCRIPTIONS_PER_PROCESS)
            .map(|i| {
                bus.subscribe(a, &format!("s{i}"), None, |_| true)
                    .expect("under limit")
            })
            .collect();
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "ids are unique");
        assert_eq!(
            kinds(bus.subscribe(a, "one.more", None, |_| true)),
            ErrorKind::RateLimited
        );
        bus.subscribe(b, "other", None, |_| true)
            .expect("the limit is per process");
        assert!(bus.unsubscribe(a, ids[0]).is_some());
        bus.subscribe(a, "one.more", None, |_| true)
            .expect("room again");
    }

    /// End to end through a real runtime, with a scripted front-end: what
    /// a Lua or WebAssembly process sees of the bus.
    mod runtime {
        use std::collections::HashMap;
        use std::sync::mpsc::{Receiver, Sender, channel};
        use std::sync::{Arc, Mutex};
        use std::time::Duration;

        use crate::error::{ErrorKind, ProcError};
        use crate::frontend::Program;
        use crate::item::{Item, Message};
        use crate::limits::HostLimits;
        use crate::pid::Pid;
        use crate::runtime::{HostSpec, Runtime, RuntimeBuilder, SpawnRequest};
        use crate::testkit::{Factory, host, program};
        use crate::value::Value;

        use super::super::BUS_TOPIC;

        const WAIT: Duration = Duration::from_secs(10);

        /// What a subscriber reports.
        #[derive(Debug)]
        enum Report {
            /// Subscribed, with these ids (in the order of its patterns).
            Ready(Pid, Vec<u64>),
            /// Got an event (system `done` ends it).
            Got(Pid, Message),
        }

        fn text(v: &Value) -> String {
            v.as_str().expect("string").to_owned()
        }

        /// The `system` of a bus message, checking its shape.
        fn system_of(msg: &Message) -> String {
            assert_eq!(&*msg.topic, BUS_TOPIC);
            // The event comes packed (one encoding shared by every
            // subscriber); it reads as a value.
            let values: Vec<Value> = msg
                .payloads
                .iter()
                .map(|p| p.to_value().into_owned())
                .collect();
            let [Value::Int(_), event @ Value::Map(_)] = values.as_slice() else {
                panic!("unexpected payloads {:?}", msg.payloads);
            };
            text(event.get("system").expect("system"))
        }

        /// A subscriber: its args are `[pattern, kind or nil]` pairs; it
        /// also subscribes to `done`, and ends when an event of it comes.
        fn subscriber(tx: Sender<Report>) -> Program {
            let tx = Mutex::new(tx);
            program("sub", move |core, me, item| match item {
                Item::Start { args, .. } => {
                    let mut ids = Vec::new();
                    for pair in args.chunks(2) {
                        let kind = pair[1].as_str();
                        ids.push(
                            core.bus_subscribe(me, &text(&pair[0]), kind)
                                .expect("subscribe"),
                        );
                    }
                    core.bus_subscribe(me, "done", None)
                        .expect("subscribe done");
                    tx.lock()
                        .expect("lock")
                        .send(Report::Ready(me, ids))
                        .expect("test alive");
                    false
                }
                Item::Msg(msg) => {
                    let done = system_of(&msg) == "done";
                    tx.lock()
                        .expect("lock")
                        .send(Report::Got(me, msg))
                        .expect("test alive");
                    done
                }
                _ => false,
            })
        }

        type Publish = (&'static str, &'static str, &'static str, Value);

        /// A publisher: sends `events` and reports each result.
        fn publisher(id: &str, events: Vec<Publish>, tx: Sender<Result<(), ProcError>>) -> Program {
            let tx = Mutex::new(tx);
            program(id, move |core, me, _| {
                for (system, kind, path, data) in events.clone() {
                    let sent = core.bus_send(me, system, kind, path, data);
                    tx.lock().expect("lock").send(sent).expect("test alive");
                }
                true
            })
        }

        fn spawn_sub(rt: &Runtime, host: &str, patterns: &[(&str, Option<&str>)]) -> Pid {
            let args = patterns
                .iter()
                .flat_map(|(p, k)| [Value::str(*p), k.map_or(Value::Nil, Value::str)])
                .collect();
            rt.spawn(SpawnRequest::new("sub", host, args))
                .expect("spawn subscriber")
        }

        fn ready(rx: &Receiver<Report>, n: usize) -> HashMap<Pid, Vec<u64>> {
            (0..n)
                .map(|_| match rx.recv_timeout(WAIT).expect("ready") {
                    Report::Ready(pid, ids) => (pid, ids),
                    other => panic!("unexpected {other:?}"),
                })
                .collect()
        }

        /// Events per subscriber until each of `pids` got `done`.
        fn collect(rx: &Receiver<Report>, pids: &[Pid]) -> HashMap<Pid, Vec<Message>> {
            let mut got: HashMap<Pid, Vec<Message>> = HashMap::new();
            let mut open = pids.len();
            while open > 0 {
                match rx.recv_timeout(WAIT).expect("an event") {
                    Report::Got(pid, msg) if system_of(&msg) == "done" => {
                        assert!(pids.contains(&pid));
                        open -= 1;
                    }
                    Report::Got(pid, msg) => got.entry(pid).or_default().push(msg),
                    other => panic!("unexpected {other:?}"),
                }
            }
            got
        }

        fn run(rt: &Runtime, entry: &str, host: &str) {
            let exit = rt
                .run(SpawnRequest::new(entry, host, vec![]), WAIT)
                .expect("spawn");
            assert!(matches!(exit, Some(Ok(_))), "{exit:?}");
        }

        fn systems(got: &HashMap<Pid, Vec<Message>>, pid: Pid) -> Vec<String> {
            got.get(&pid)
                .map_or(vec![], |m| m.iter().map(system_of).collect())
        }

        #[test]
        fn events_reach_matching_reachable_subscribers_as_bus_messages() {
            let (sub_tx, sub_rx) = channel();
            let (pub_tx, pub_rx) = channel();
            let order = Value::Map(vec![(Value::str("id"), Value::Int(123))]);
            let events: Vec<Publish> = vec![
                ("orders", "created", "/orders/123", order.clone()),
                ("orders.eu", "shipped", "/orders/7", Value::Nil),
                ("orders", "deleted", "/orders/9", Value::Int(1)),
                ("billing", "paid", "/b/1", Value::Nil),
                ("done", "done", "/", Value::Nil),
            ];
            let sandboxed = HostLimits {
                allow_hosts: Some(vec![]),
                ..HostLimits::default()
            };
            let partnered = HostLimits {
                allow_hosts: Some(vec!["app".into()]),
                ..HostLimits::default()
            };
            let secret = ("secret", "k", "/s", Value::Nil);
            let rt = RuntimeBuilder::new()
                .host(host("app", 2, HostLimits::default()))
                .host(host("sandbox", 1, sandboxed))
                .host(host("partner", 1, partnered))
                .frontend(Arc::new(Factory))
                .program(subscriber(sub_tx))
                .program(publisher("pub", events, pub_tx.clone()))
                .program(publisher("secret", vec![secret], pub_tx.clone()))
                .program(publisher(
                    "probe",
                    vec![("done", "done", "/", Value::Nil)],
                    pub_tx,
                ))
                .start()
                .expect("runtime");
            let below = spawn_sub(&rt, "app", &[("orders.*", None)]);
            let created = spawn_sub(&rt, "app", &[("orders", Some("created"))]);
            let all = spawn_sub(&rt, "app", &[("*", None)]);
            let caged = spawn_sub(&rt, "sandbox", &[("*", None)]);
            let partner = spawn_sub(&rt, "partner", &[("orders.*", None)]);
            let ids = ready(&sub_rx, 5);
            assert_eq!(rt.bus_subscriptions(), 10);

            // The sandbox may reach no other host: its event stays in it.
            run(&rt, "secret", "sandbox");
            // app may reach the sandbox, but the sandbox may not reach app:
            // nothing of app's is queued for it.
            run(&rt, "pub", "app");
            // Its own host's `done` ends the sandboxed subscriber.
            run(&rt, "probe", "sandbox");
            for _ in 0..7 {
                assert_eq!(pub_rx.recv_timeout(WAIT).expect("result"), Ok(()));
            }
            let got = collect(&sub_rx, &[below, created, all, caged, partner]);
            assert_eq!(systems(&got, below), ["orders.eu"]);
            assert_eq!(systems(&got, created), ["orders"]);
            assert_eq!(
                systems(&got, all),
                ["orders", "orders.eu", "orders", "billing"]
            );
            assert_eq!(systems(&got, caged), ["secret"]);
            assert_eq!(systems(&got, partner), ["orders.eu"], "allowed both ways");

            let first = &got[&created][0];
            assert_eq!(
                first.payloads[0],
                Value::Int(ids[&created][0].try_into().expect("id")).into()
            );
            let event = first.payloads[1].to_value();
            assert_eq!(text(event.get("kind").expect("kind")), "created");
            assert_eq!(text(event.get("path").expect("path")), "/orders/123");
            assert_eq!(event.get("data"), Some(&order));
            let shipped = &got[&below][0];
            assert_eq!(
                shipped.payloads[0],
                Value::Int(ids[&below][0].try_into().expect("id")).into()
            );
            assert_eq!(
                shipped.payloads[1].to_value().get("data"),
                None,
                "nil data is left out"
            );
            let publisher = shipped.from;
            for pid in [below, created, all, partner] {
                assert!(got[&pid].iter().all(|m| m.from == publisher));
            }
            assert_ne!(got[&caged][0].from, publisher);

            assert!(rt.wait_idle(WAIT));
            assert_eq!(rt.bus_subscriptions(), 0, "exits drop subscriptions");
        }

        #[test]
        fn a_full_mailbox_or_exhausted_memory_only_loses_events() {
            let (sub_tx, sub_rx) = channel();
            let (pub_tx, pub_rx) = channel();
            let big = Value::Str(vec![b'x'; 500]);
            let flood: Vec<Publish> = (0..10).map(|_| ("flood", "k", "/", Value::Nil)).collect();
            let rt = RuntimeBuilder::new()
                .host(host(
                    "app",
                    1,
                    HostLimits {
                        max_message_bytes: 1024,
                        ..HostLimits::default()
                    },
                ))
                .host(host(
                    "tiny",
                    1,
                    HostLimits {
                        mailbox_limit: 3,
                        ..HostLimits::default()
                    },
                ))
                .host(host(
                    "poor",
                    1,
                    HostLimits {
                        memory_total: 200,
                        ..HostLimits::default()
                    },
                ))
                .frontend(Arc::new(Factory))
                .program(subscriber(sub_tx))
                .program(publisher("flood", flood, pub_tx.clone()))
                .program(publisher(
                    "done",
                    vec![("done", "done", "/", Value::Nil)],
                    pub_tx.clone(),
                ))
                .program(publisher(
                    "poor",
                    vec![
                        ("mem", "k", "/", big.clone()),
                        ("done", "done", "/", Value::Nil),
                    ],
                    pub_tx.clone(),
                ))
                .program(publisher(
                    "bad",
                    vec![
                        ("x", "k", "/", Value::Str(vec![b'x'; 2000])),
                        ("", "k", "/", Value::Nil),
                        ("x", "k", "", Value::Nil),
                        ("x", "k", "/", Value::Map(vec![(Value::Nil, Value::Nil)])),
                    ],
                    pub_tx,
                ))
                .start()
                .expect("runtime");

            // A full mailbox: of ten events queued at once, three fit.
            let slow = spawn_sub(&rt, "tiny", &[("flood", None)]);
            ready(&sub_rx, 1);
            run(&rt, "flood", "app");
            for _ in 0..10 {
                assert_eq!(pub_rx.recv_timeout(WAIT).expect("result"), Ok(()));
            }
            for _ in 0..3 {
                match sub_rx.recv_timeout(WAIT).expect("flood") {
                    Report::Got(pid, msg) => {
                        assert_eq!((pid, system_of(&msg)), (slow, "flood".into()))
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            run(&rt, "done", "app");
            assert_eq!(pub_rx.recv_timeout(WAIT).expect("result"), Ok(()));
            assert!(
                collect(&sub_rx, &[slow]).is_empty(),
                "the other seven were dropped"
            );

            // No memory left on the publisher's host for a 500-byte event.
            let starved = spawn_sub(&rt, "app", &[("mem", None)]);
            ready(&sub_rx, 1);
            run(&rt, "poor", "poor");
            for _ in 0..2 {
                assert_eq!(pub_rx.recv_timeout(WAIT).expect("result"), Ok(()));
            }
            assert!(
                collect(&sub_rx, &[starved]).is_empty(),
                "the big event was dropped"
            );
            // The small "done" event is held until its subscriber takes it.
            let deadline = std::time::Instant::now() + WAIT;
            while rt.memory_used("poor") != Some(0) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(rt.memory_used("poor"), Some(0), "nothing stays held");

            // The publisher's own mistakes are errors.
            run(&rt, "bad", "app");
            for _ in 0..4 {
                let err = pub_rx
                    .recv_timeout(WAIT)
                    .expect("result")
                    .expect_err("refused");
                assert_eq!(err.kind, ErrorKind::Invalid, "{err}");
            }
        }

        #[test]
        fn user_sends_cannot_forge_bus_messages_and_limits_hold() {
            let (tx, rx) = channel();
            let tx = Mutex::new(tx);
            let rt = RuntimeBuilder::new()
                .host(HostSpec::new("app", 1))
                .frontend(Arc::new(Factory))
                .program(program("p", move |core, me, _| {
                    let forged = core.send(me, me, BUS_TOPIC, vec![]).map_err(|e| e.kind);
                    let mut subs = Vec::new();
                    for i in 0..=super::super::MAX_SUBSCRIPTIONS_PER_PROCESS {
                        subs.push(
                            core.bus_subscribe(me, &format!("s{i}.*"), None)
                                .map_err(|e| e.kind),
                        );
                    }
                    let closed = subs[0].map(|id| core.bus_unsubscribe(me, id));
                    let again = core.bus_subscribe(me, "s", None).map_err(|e| e.kind);
                    // The budget is exact: a string of `budget` wire bytes fits.
                    let budget = core.bus_send_budget(me, "s", "k", "/").expect("budget");
                    let data = |n: usize| Value::Str(vec![b'x'; n - 5]);
                    let fits = core.bus_send(me, "s", "k", "/", data(budget)).is_ok();
                    let over = core.bus_send(me, "s", "k", "/", data(budget + 1));
                    let exact = fits && over.map_err(|e| e.kind) == Err(ErrorKind::Invalid);
                    tx.lock()
                        .expect("lock")
                        .send((forged, subs.pop(), closed, again.is_ok() && exact))
                        .expect("test alive");
                    true
                }))
                .start()
                .expect("runtime");
            run(&rt, "p", "app");
            let (forged, last, closed, again) = rx.recv_timeout(WAIT).expect("report");
            assert_eq!(forged, Err(ErrorKind::Invalid));
            assert_eq!(last, Some(Err(ErrorKind::RateLimited)));
            assert_eq!(closed, Ok(true));
            assert!(again);
            assert_eq!(rt.bus_subscriptions(), 0);
        }
    }
}

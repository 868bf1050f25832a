//! The name registry: process-chosen names that resolve to pids.
//!
//! A name is seen only between hosts that reach each other both ways
//! (`allow_hosts`), as the event bus delivers: a tenant that reaches no
//! one can neither receive another tenant's messages under a name that
//! tenant expects nor keep the other from registering it. Each holder of
//! a name is an [`Entry`]; entries of one name coexist only on hosts that
//! cannot see each other, and the caller supplies what "seen" means
//! ([`Registry::register`], [`Registry::lookup`]). A pid may hold several
//! names, all released when it exits. Names may not look like pids, so
//! resolution of a `send` destination is never ambiguous.
//!
//! A name registered for another pid is the registrant's: it counts
//! toward the registrant's [`MAX_NAMES_PER_PROCESS`] and is held against
//! the registrant's host, and only the holder or the registrant may
//! unregister it.

use std::sync::Mutex;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{ErrorKind, ProcError};
use crate::pid::Pid;

/// Longest accepted name, in bytes; longer names are refused so that a
/// process cannot grow the shared registry with megabyte keys. A longer
/// name is not looked up either: hashing a 64 MiB one held the registry's
/// lock, which every worker takes, for tens of milliseconds.
pub const MAX_NAME_BYTES: usize = 256;

/// Most names one process may register (for itself or for others): a
/// loop registering fresh names grew the shared registry without bound
/// (each name is also held against the registrant's host's
/// `memory_total`, [`name_cost`]); counted against the registrant, so a
/// process cannot use up another's share by naming it.
pub const MAX_NAMES_PER_PROCESS: usize = 1024;

/// The bytes a registered name is held as against its registrant's host's
/// `memory_total`: its two copies and the maps' entries.
pub fn name_cost(name: &str) -> u64 {
    u64::try_from(name.len())
        .unwrap_or(u64::MAX)
        .saturating_mul(2)
        + 96
}

/// One holder of a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The process the name resolves to.
    pub pid: Pid,
    /// The process that registered it (`pid` itself, or one that named
    /// it): whose share and host the name counts against.
    pub by: Pid,
}

/// Why a name that is registered resolves to no pid for a viewer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    /// Every holder (this one the oldest) or its registrant is out of
    /// sight: refused without naming it.
    Hidden(Pid),
    /// Two holders (at least) are in sight, on hosts that do not see
    /// each other.
    Ambiguous(Pid, Pid),
}

#[derive(Default)]
struct Names {
    /// Holders of each name, oldest first (usually one).
    by_name: FxHashMap<String, Vec<Entry>>,
    /// Names each pid holds.
    /// (A set: one pid may hold the names of many registrants, 150 times
    /// 1,024, and a list made each removal a scan of all of them, under
    /// the lock every tenant's lookups and exits take.)
    by_pid: FxHashMap<Pid, FxHashSet<String>>,
    /// Names each registrant registered that are still held.
    registered: FxHashMap<Pid, usize>,
}

impl Names {
    /// Removes `name`'s entry for `e` and every trace of it; whether it
    /// was there.
    fn remove(&mut self, name: &str, e: Entry) -> bool {
        let Some(list) = self.by_name.get_mut(name) else {
            return false;
        };
        let Some(i) = list.iter().position(|x| *x == e) else {
            return false;
        };
        list.remove(i);
        if list.is_empty() {
            self.by_name.remove(name);
        }
        if let Some(held) = self.by_pid.get_mut(&e.pid) {
            held.remove(name);
            if held.is_empty() {
                self.by_pid.remove(&e.pid);
            }
        }
        if let Some(n) = self.registered.get_mut(&e.by) {
            *n -= 1;
            if *n == 0 {
                self.registered.remove(&e.by);
            }
        }
        true
    }
}

/// The runtime-wide registry.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Names>,
}

/// `INVALID` for a name that is empty, too long or looks like a pid; the
/// name is quoted cut short (a huge one would make a huge error).
fn check_name(name: &str) -> Result<(), ProcError> {
    if !name.is_empty() && name.len() <= MAX_NAME_BYTES && Pid::parse(name).is_none() {
        return Ok(());
    }
    let shown: String = name.chars().take(64).collect();
    let cut = if shown.len() < name.len() { "..." } else { "" };
    Err(ProcError::new(
        ErrorKind::Invalid,
        format!(
            "invalid process name {shown:?}{cut} ({} bytes): must be 1..={MAX_NAME_BYTES} bytes and not a pid",
            name.len()
        ),
    ))
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Names> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `name` for `e.pid` by `e.by`: `true` when added, `false`
    /// when `e.pid` already holds it; `ALREADY_EXISTS` if an entry whose
    /// holder and registrant are both seen (`sees`) holds it (a name one
    /// host gave a process of a hub host both reach was in the way of a
    /// host that does not reach the registrant), `INVALID` if malformed, `RATE_LIMITED`
    /// when `e.by` has registered [`MAX_NAMES_PER_PROCESS`].
    pub fn register(
        &self,
        name: &str,
        e: Entry,
        sees: impl Fn(Pid) -> bool,
    ) -> Result<bool, ProcError> {
        check_name(name)?;
        let mut names = self.lock();
        if let Some(list) = names.by_name.get(name) {
            if list.iter().any(|x| x.pid == e.pid) {
                return Ok(false); // already this process's: Wippy accepts it
            }
            if let Some(owner) = list.iter().find(|x| sees(x.pid) && sees(x.by)) {
                return Err(ProcError::new(
                    ErrorKind::AlreadyExists,
                    format!("name {name:?} is already registered to {}", owner.pid),
                ));
            }
        }
        if names.registered.get(&e.by).copied().unwrap_or(0) >= MAX_NAMES_PER_PROCESS {
            return Err(ProcError::new(
                ErrorKind::RateLimited,
                format!(
                    "{} has registered {MAX_NAMES_PER_PROCESS} names, the most a process may",
                    e.by
                ),
            ));
        }
        names.by_name.entry(name.to_owned()).or_default().push(e);
        names
            .by_pid
            .entry(e.pid)
            .or_default()
            .insert(name.to_owned());
        *names.registered.entry(e.by).or_default() += 1;
        Ok(true)
    }

    /// The holder of `name` whose holder and registrant `sees`; else why
    /// not (see [`Miss`]).
    ///
    /// Entries of one name coexist only where no host sees two of them,
    /// except from a hub that hosts which do not see each other both
    /// reach. There the name is [`Miss::Ambiguous`]: picking one (the
    /// oldest, as before) let a tenant take another's messages, by
    /// holding the name while the other's holder restarted.
    pub fn lookup(&self, name: &str, sees: impl Fn(Pid) -> bool) -> Option<Result<Pid, Miss>> {
        if name.len() > MAX_NAME_BYTES {
            return None; // never registered: not hashed under the lock
        }
        let names = self.lock();
        let list = names.by_name.get(name)?;
        let mut seen = list.iter().filter(|x| sees(x.pid) && sees(x.by));
        Some(match (seen.next(), seen.next()) {
            (Some(one), None) => Ok(one.pid),
            (Some(one), Some(two)) => Err(Miss::Ambiguous(one.pid, two.pid)),
            (None, _) => Err(Miss::Hidden(list[0].pid)),
        })
    }

    /// The oldest holder of `name`, whoever may see it.
    pub fn any_holder(&self, name: &str) -> Option<Pid> {
        if name.len() > MAX_NAME_BYTES {
            return None;
        }
        self.lock().by_name.get(name).map(|list| list[0].pid)
    }

    /// Removes the entry of `name` that `me` holds or registered: it, or
    /// `None` if there is none.
    pub fn unregister(&self, me: Pid, name: &str) -> Option<Entry> {
        if name.len() > MAX_NAME_BYTES {
            return None;
        }
        let mut names = self.lock();
        let list = names.by_name.get(name)?;
        let e = *list.iter().find(|x| x.pid == me || x.by == me)?;
        names.remove(name, e);
        Some(e)
    }

    /// Removes `name` from `e` if `e` still holds it; whether it did (a
    /// registration that raced its holder's exit takes itself back).
    pub fn withdraw(&self, name: &str, e: Entry) -> bool {
        self.lock().remove(name, e)
    }

    /// Releases every name held by `pid`: each with its registrant, to
    /// give its [`name_cost`] back to the right host.
    pub fn release(&self, pid: Pid) -> Vec<(Entry, u64)> {
        let mut names = self.lock();
        let Some(held) = names.by_pid.remove(&pid) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(held.len());
        for name in held {
            let entry = names
                .by_name
                .get(&name)
                .and_then(|list| list.iter().find(|x| x.pid == pid).copied());
            if let Some(e) = entry {
                names.remove(&name, e);
                out.push((e, name_cost(&name)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everyone sees everyone (a runtime with no `allow_hosts`).
    fn all(_: Pid) -> bool {
        true
    }

    fn own(pid: Pid) -> Entry {
        Entry { pid, by: pid }
    }

    #[test]
    fn names_are_unique_and_released() {
        let reg = Registry::default();
        let (a, b) = (Pid::new(0, 1), Pid::new(0, 2));
        assert_eq!(reg.register("db", own(a), all), Ok(true));
        assert_eq!(
            reg.register("db", own(b), all).map_err(|e| e.kind),
            Err(ErrorKind::AlreadyExists)
        );
        reg.register("cache", own(a), all).expect("second name");
        assert_eq!(reg.lookup("db", all), Some(Ok(a)));
        assert_eq!(reg.release(a).len(), 2);
        assert_eq!(reg.lookup("db", all), None);
        assert_eq!(reg.lookup("cache", all), None);
        reg.register("db", own(b), all).expect("free again");
    }

    #[test]
    fn holders_that_cannot_see_each_other_hold_a_name_apart() {
        let reg = Registry::default();
        let (a, v) = (Pid::new(1, 1), Pid::new(2, 1));
        let apart = |h: u16| move |p: Pid| p.host() == h;
        assert_eq!(reg.register("cache", own(a), apart(1)), Ok(true));
        assert_eq!(reg.register("cache", own(v), apart(2)), Ok(true));
        assert_eq!(reg.lookup("cache", apart(2)), Some(Ok(v)));
        assert_eq!(reg.lookup("cache", apart(1)), Some(Ok(a)));
        assert_eq!(
            reg.lookup("cache", apart(3)),
            Some(Err(Miss::Hidden(a))),
            "seen by neither"
        );
        assert_eq!(
            reg.lookup("cache", all),
            Some(Err(Miss::Ambiguous(a, v))),
            "seen from a hub, neither"
        );
        reg.release(a);
        assert_eq!(reg.lookup("cache", all), Some(Ok(v)));
    }

    #[test]
    fn a_name_given_to_a_hub_process_is_apart_from_hosts_that_do_not_see_its_registrant() {
        // Hosts 0 and 1 each reach only the hub, host 2. Host 0 naming a
        // hub process `db` kept host 1 from registering its own `db` (and
        // outlived the registrant's interest in it).
        let reg = Registry::default();
        let (hub, a, b) = (Pid::new(2, 1), Pid::new(0, 1), Pid::new(1, 1));
        let sees_from = |h: u16| move |p: Pid| p.host() == h || p.host() == 2;
        let squat = Entry { pid: hub, by: a };
        assert_eq!(reg.register("db", squat, sees_from(0)), Ok(true));
        assert_eq!(reg.register("db", own(b), sees_from(1)), Ok(true));
        assert_eq!(reg.lookup("db", sees_from(1)), Some(Ok(b)));
        assert_eq!(reg.lookup("db", sees_from(0)), Some(Ok(hub)));
    }

    #[test]
    fn only_the_holder_or_the_registrant_unregisters() {
        let reg = Registry::default();
        let (holder, by, other) = (Pid::new(0, 1), Pid::new(0, 2), Pid::new(0, 3));
        reg.register("svc", Entry { pid: holder, by }, all)
            .expect("named for another");
        assert_eq!(reg.register("svc", own(holder), all), Ok(false), "no-op");
        assert_eq!(reg.unregister(other, "svc"), None);
        assert_eq!(reg.unregister(by, "svc"), Some(Entry { pid: holder, by }));
        reg.register("svc", Entry { pid: holder, by }, all)
            .expect("again");
        assert!(reg.unregister(holder, "svc").is_some());
        assert_eq!(reg.unregister(holder, "never"), None);
    }

    #[test]
    fn a_registrant_has_its_share_of_names_and_their_cost_comes_back() {
        let reg = Registry::default();
        let (a, b, c) = (Pid::new(0, 1), Pid::new(0, 2), Pid::new(1, 1));
        for i in 0..MAX_NAMES_PER_PROCESS {
            let e = Entry { pid: c, by: a };
            assert_eq!(reg.register(&format!("n{i}"), e, all), Ok(true));
        }
        let refused = reg.register("one more", own(a), all).expect_err("full");
        assert_eq!(refused.kind, ErrorKind::RateLimited);
        assert_eq!(
            reg.register("mine", own(c), all),
            Ok(true),
            "the named process keeps its own share"
        );
        assert_eq!(reg.register("one more", own(b), all), Ok(true));
        assert!(reg.unregister(a, "n0").is_some());
        assert_eq!(reg.register("one more for a", own(a), all), Ok(true));
        let released = reg.release(c);
        let by_a: u64 = released
            .iter()
            .filter(|(e, _)| e.by == a)
            .map(|(_, c)| c)
            .sum();
        let expected: u64 = (1..MAX_NAMES_PER_PROCESS)
            .map(|i| name_cost(&format!("n{i}")))
            .sum();
        assert_eq!(by_a, expected);
        assert_eq!(released.len(), MAX_NAMES_PER_PROCESS);
        assert!(reg.release(c).is_empty());
    }

    #[test]
    fn refuses_pid_like_and_oversized_names() {
        let reg = Registry::default();
        let pid = Pid::new(0, 1);
        for bad in [
            "<0.1>".to_string(),
            String::new(),
            "x".repeat(MAX_NAME_BYTES + 1),
        ] {
            assert_eq!(
                reg.register(&bad, own(pid), all).map_err(|e| e.kind),
                Err(ErrorKind::Invalid)
            );
        }
    }

    #[test]
    fn a_name_no_entry_can_have_is_answered_without_the_lock() {
        let reg = std::sync::Arc::new(Registry::default());
        let pid = Pid::new(0, 1);
        reg.register("svc", own(pid), all).expect("named");
        let held = reg.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let r = reg.clone();
        let asker = std::thread::spawn(move || {
            let long = "x".repeat(MAX_NAME_BYTES + 1);
            let answers = (
                r.lookup(&long, all),
                r.any_holder(&long),
                r.unregister(pid, &long).is_none(),
            );
            tx.send(answers).expect("send");
        });
        let answers = rx.recv_timeout(std::time::Duration::from_secs(10));
        drop(held);
        asker.join().expect("the asker");
        assert_eq!(answers, Ok((None, None, true)), "waited for the lock");
        assert_eq!(reg.any_holder("svc"), Some(pid));
    }
}

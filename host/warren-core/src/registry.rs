//! The name registry: process-chosen names that resolve to pids.
//!
//! A name maps to one pid; a pid may hold several names, and all of them are
//! released when it exits. Names may not look like pids, so resolution of a
//! `send` destination is never ambiguous.

use std::sync::Mutex;

use rustc_hash::FxHashMap;

use crate::error::{ErrorKind, ProcError};
use crate::pid::Pid;

/// Longest accepted name, in bytes; longer names are refused so that a
/// process cannot grow the shared registry with megabyte keys.
pub const MAX_NAME_BYTES: usize = 256;

/// Most names one process may hold: a loop registering fresh names grew
/// the shared registry without bound (each name is also held against its
/// host's `memory_total`, [`name_cost`]).
pub const MAX_NAMES_PER_PROCESS: usize = 1024;

/// The bytes a registered name is held as against its process's host's
/// `memory_total`: its two copies and the maps' entries.
pub fn name_cost(name: &str) -> u64 {
    u64::try_from(name.len())
        .unwrap_or(u64::MAX)
        .saturating_mul(2)
        + 96
}

#[derive(Default)]
struct Names {
    by_name: FxHashMap<String, Pid>,
    by_pid: FxHashMap<Pid, Vec<String>>,
}

/// The runtime-wide registry.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Names>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Names> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `name` for `pid`: `true` when added, `false` when it was
    /// already `pid`'s; `ALREADY_EXISTS` if taken, `INVALID` if malformed,
    /// `RATE_LIMITED` when `pid` holds [`MAX_NAMES_PER_PROCESS`].
    pub fn register(&self, name: &str, pid: Pid) -> Result<bool, ProcError> {
        if name.is_empty() || name.len() > MAX_NAME_BYTES || Pid::parse(name).is_some() {
            // The name is quoted cut short: a huge one would make a huge error.
            let shown: String = name.chars().take(64).collect();
            let cut = if shown.len() < name.len() { "..." } else { "" };
            return Err(ProcError::new(
                ErrorKind::Invalid,
                format!(
                    "invalid process name {shown:?}{cut} ({} bytes): must be 1..={MAX_NAME_BYTES} bytes and not a pid",
                    name.len()
                ),
            ));
        }
        let mut names = self.lock();
        if let Some(&owner) = names.by_name.get(name) {
            if owner == pid {
                return Ok(false); // already this process's: Wippy accepts it
            }
            return Err(ProcError::new(
                ErrorKind::AlreadyExists,
                format!("name {name:?} is already registered to {owner}"),
            ));
        }
        if names.by_pid.get(&pid).map_or(0, Vec::len) >= MAX_NAMES_PER_PROCESS {
            return Err(ProcError::new(
                ErrorKind::RateLimited,
                format!("{pid} holds {MAX_NAMES_PER_PROCESS} names, the most a process may"),
            ));
        }
        names.by_name.insert(name.to_owned(), pid);
        names.by_pid.entry(pid).or_default().push(name.to_owned());
        Ok(true)
    }

    /// The pid registered under `name`.
    pub fn lookup(&self, name: &str) -> Option<Pid> {
        self.lock().by_name.get(name).copied()
    }

    /// Removes `name`: the pid that held it, or `None` if it was not
    /// registered.
    pub fn unregister(&self, name: &str) -> Option<Pid> {
        let mut names = self.lock();
        let pid = names.by_name.remove(name)?;
        if let Some(list) = names.by_pid.get_mut(&pid) {
            list.retain(|n| n != name);
        }
        Some(pid)
    }

    /// Releases every name held by `pid`; the sum of their [`name_cost`].
    pub fn release(&self, pid: Pid) -> u64 {
        let mut names = self.lock();
        let mut cost = 0;
        if let Some(list) = names.by_pid.remove(&pid) {
            for name in list {
                cost += name_cost(&name);
                names.by_name.remove(&name);
            }
        }
        cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_released() {
        let reg = Registry::default();
        let (a, b) = (Pid::new(0, 1), Pid::new(0, 2));
        assert_eq!(reg.register("db", a), Ok(true));
        assert_eq!(
            reg.register("db", b).map_err(|e| e.kind),
            Err(ErrorKind::AlreadyExists)
        );
        reg.register("cache", a).expect("second name");
        assert_eq!(reg.lookup("db"), Some(a));
        reg.release(a);
        assert_eq!(reg.lookup("db"), None);
        assert_eq!(reg.lookup("cache"), None);
        reg.register("db", b).expect("free again");
    }

    #[test]
    fn a_process_holds_at_most_its_share_of_names_and_their_cost_comes_back() {
        let reg = Registry::default();
        let (a, b) = (Pid::new(0, 1), Pid::new(0, 2));
        for i in 0..MAX_NAMES_PER_PROCESS {
            assert_eq!(reg.register(&format!("n{i}"), a), Ok(true));
        }
        let refused = reg.register("one more", a).expect_err("full");
        assert_eq!(refused.kind, ErrorKind::RateLimited);
        assert_eq!(reg.register("n0", a), Ok(false), "its own again");
        assert_eq!(
            reg.register("one more", b),
            Ok(true),
            "others are not limited"
        );
        assert_eq!(reg.unregister("n0"), Some(a));
        assert_eq!(reg.register("one more for a", a), Ok(true), "room again");
        let expected: u64 = (1..MAX_NAMES_PER_PROCESS)
            .map(|i| name_cost(&format!("n{i}")))
            .sum::<u64>()
            + name_cost("one more for a");
        assert_eq!(reg.release(a), expected);
        assert_eq!(reg.release(a), 0);
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
                reg.register(&bad, pid).map_err(|e| e.kind),
                Err(ErrorKind::Invalid)
            );
        }
        assert_eq!(reg.unregister("never"), None);
    }
}

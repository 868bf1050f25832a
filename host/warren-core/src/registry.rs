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

    /// Registers `name` for `pid`; `ALREADY_EXISTS` if taken, `INVALID` if malformed.
    pub fn register(&self, name: &str, pid: Pid) -> Result<(), ProcError> {
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
                return Ok(()); // already this process's: Wippy accepts it
            }
            return Err(ProcError::new(
                ErrorKind::AlreadyExists,
                format!("name {name:?} is already registered to {owner}"),
            ));
        }
        names.by_name.insert(name.to_owned(), pid);
        names.by_pid.entry(pid).or_default().push(name.to_owned());
        Ok(())
    }

    /// The pid registered under `name`.
    pub fn lookup(&self, name: &str) -> Option<Pid> {
        self.lock().by_name.get(name).copied()
    }

    /// Removes `name`; `false` if it was not registered.
    pub fn unregister(&self, name: &str) -> bool {
        let mut names = self.lock();
        let Some(pid) = names.by_name.remove(name) else {
            return false;
        };
        if let Some(list) = names.by_pid.get_mut(&pid) {
            list.retain(|n| n != name);
        }
        true
    }

    /// Releases every name held by `pid`.
    pub fn release(&self, pid: Pid) {
        let mut names = self.lock();
        if let Some(list) = names.by_pid.remove(&pid) {
            for name in list {
                names.by_name.remove(&name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_released() {
        let reg = Registry::default();
        let (a, b) = (Pid::new(0, 1), Pid::new(0, 2));
        reg.register("db", a).expect("first registration");
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
        assert!(!reg.unregister("never"));
    }
}

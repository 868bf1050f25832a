//! A worker's copy of the loaded entries it has looked up: a host call
//! checks its entry's grants on every call, and the runtime-wide map sits
//! behind a lock whose counter, and each entry's reference count, every
//! worker would otherwise write to at every call (the cache line crossing
//! cores each time).
//!
//! Guarantees: an entry replaced while running (`Runtime::add_program`)
//! is seen by the next lookup after the replacement (the runtime counts
//! replacements, and a worker that sees the count move drops its copies);
//! only entries that exist are kept, so the cache holds at most one copy
//! of each loaded entry, whatever ids are asked for.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rustc_hash::FxHashMap;

use super::Core;
use crate::frontend::Program;

/// The copies, and the runtime's count of replacements they are of.
#[derive(Default)]
pub(super) struct ProgramCache {
    generation: u64,
    programs: FxHashMap<Box<str>, Arc<Program>>,
}

impl Core {
    /// The loaded entry `id` (as it is now: entries can be replaced while
    /// running).
    pub fn program(&self, id: &str) -> Option<Arc<Program>> {
        self.with_program(id, Arc::clone)
    }

    /// `f` of the loaded entry `id`, without taking a reference to it (a
    /// lookup from inside `f` goes to the runtime-wide map).
    pub fn with_program<R>(&self, id: &str, f: impl FnOnce(&Arc<Program>) -> R) -> Option<R> {
        let generation = self.shared.programs_generation.load(Ordering::Acquire);
        let Ok(mut cache) = self.programs.try_borrow_mut() else {
            return self.shared.program(id).map(|p| f(&p));
        };
        if cache.generation != generation {
            cache.programs.clear();
            cache.generation = generation;
        }
        if let Some(program) = cache.programs.get(id) {
            return Some(f(program));
        }
        let program = self.shared.program(id)?;
        let out = f(&program);
        cache.programs.insert(id.into(), program);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{Sender, channel};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use crate::frontend::Program;
    use crate::item::Item;
    use crate::limits::HostLimits;
    use crate::runtime::{RuntimeBuilder, SpawnRequest};
    use crate::testkit::{Factory, host, program};

    /// An entry that is never run: its code is a version number.
    fn versioned(version: u32) -> Program {
        Program {
            id: "t".into(),
            frontend: "script",
            code: Arc::new(version),
        }
    }

    /// A process that reports the version of entry `t` it finds (twice,
    /// so the second lookup is the cached one), then ends.
    fn probe(tx: Sender<(Option<u32>, Option<u32>)>) -> Program {
        let tx = Mutex::new(tx);
        program("probe", move |core, _, item| {
            if matches!(item, Item::Start { .. }) {
                let version = || core.with_program("t", |p| p.code.downcast_ref::<u32>().copied());
                let seen = (version().flatten(), version().flatten());
                tx.lock().expect("lock").send(seen).expect("test alive");
            }
            true
        })
    }

    #[test]
    fn a_worker_sees_an_entry_added_or_replaced_while_it_runs() {
        let (tx, rx) = channel();
        let rt = RuntimeBuilder::new()
            .host(host("app", 1, HostLimits::default()))
            .frontend(Arc::new(Factory))
            .program(probe(tx))
            .start()
            .expect("runtime");
        let seen = || {
            rt.spawn(SpawnRequest::new("probe", "app", vec![]))
                .expect("spawn");
            rx.recv_timeout(Duration::from_secs(10)).expect("report")
        };
        assert_eq!(seen(), (None, None), "a missing entry is not invented");
        rt.add_program(versioned(1));
        assert_eq!(seen(), (Some(1), Some(1)), "an added entry is found");
        rt.add_program(versioned(2));
        assert_eq!(seen(), (Some(2), Some(2)), "a replaced entry is seen");
    }
}

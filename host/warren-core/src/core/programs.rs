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

    /// `f` of the loaded entry `id`, without taking a reference to it.
    /// `f` must not look an entry up itself.
    pub fn with_program<R>(&self, id: &str, f: impl FnOnce(&Arc<Program>) -> R) -> Option<R> {
        let generation = self.shared.programs_generation.load(Ordering::Acquire);
        let mut cache = self.programs.borrow_mut();
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

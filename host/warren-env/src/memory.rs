//! `env.storage.memory`: a map in Warren's memory, shared by every process
//! and lost at shutdown. It is bounded ([`MAX_MEMORY_KEYS`],
//! [`MAX_MEMORY_BYTES`]) because any tenant granted `env.set` writes into
//! host memory.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use warren_core::{ErrorKind, ProcError};

/// Keys one memory storage may hold. Keys are variable names, so a storage
/// holds at most one per declared variable; the cap bounds the map should
/// a configuration declare thousands.
pub const MAX_MEMORY_KEYS: usize = 4096;

/// Bytes of keys and values one memory storage may hold. Without it a
/// tenant with `env.set` could fill host memory by writing large values to
/// many variables; writes past it fail with `RATE_LIMITED`.
pub const MAX_MEMORY_BYTES: usize = 4 << 20;

/// A memory storage.
#[derive(Debug, Default)]
pub(crate) struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    values: HashMap<String, String>,
    /// Bytes of the keys and values in `values`.
    bytes: usize,
}

impl MemoryStore {
    /// The value at `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.values.get(key).cloned()
    }

    /// Stores `value` at `key` (an empty value removes it: it reads as unset
    /// either way). `RATE_LIMITED` when the storage would exceed its caps.
    pub(crate) fn set(&self, key: &str, value: &str) -> Result<(), ProcError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let old = state.values.get(key).map_or(0, |v| key.len() + v.len());
        if value.is_empty() {
            state.values.remove(key);
            state.bytes -= old;
            return Ok(());
        }
        if !state.values.contains_key(key) && state.values.len() >= MAX_MEMORY_KEYS {
            return Err(full(format!("holds {MAX_MEMORY_KEYS} keys already")));
        }
        let bytes = state.bytes - old + key.len() + value.len();
        if bytes > MAX_MEMORY_BYTES {
            return Err(full(format!("would exceed {MAX_MEMORY_BYTES} bytes")));
        }
        state.values.insert(key.to_owned(), value.to_owned());
        state.bytes = bytes;
        Ok(())
    }
}

fn full(why: String) -> ProcError {
    ProcError::new(ErrorKind::RateLimited, format!("the storage {why}"))
}

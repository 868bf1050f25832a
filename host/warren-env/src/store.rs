//! One storage at run time: reading a key and writing one, for every kind
//! but the router (which [`crate::Env`] walks, since it names others).
//! The os storage reads only the key asked for: nothing lists or exposes
//! the rest of Warren's environment.

use std::collections::HashMap;

use warren_core::{ErrorKind, ProcError};

use crate::StorageKind;
use crate::file::FileStore;
use crate::memory::MemoryStore;

/// A storage at run time.
#[derive(Debug)]
pub(crate) enum Storage {
    Os,
    Static(HashMap<String, String>),
    Memory(MemoryStore),
    File(FileStore),
    Router(Vec<String>),
}

impl Storage {
    pub(crate) fn new(kind: StorageKind) -> Storage {
        match kind {
            StorageKind::Os => Storage::Os,
            StorageKind::Static(values) => Storage::Static(values.into_iter().collect()),
            StorageKind::Memory => Storage::Memory(MemoryStore::default()),
            StorageKind::File {
                path,
                auto_create,
                file_mode,
                dir_mode,
            } => Storage::File(FileStore::new(path, auto_create, file_mode, dir_mode)),
            StorageKind::Router(list) => Storage::Router(list),
        }
    }

    /// The `kind:` spelling.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Storage::Os => "env.storage.os",
            Storage::Static(_) => "env.storage.static",
            Storage::Memory(_) => "env.storage.memory",
            Storage::File(_) => "env.storage.file",
            Storage::Router(_) => "env.storage.router",
        }
    }

    /// Whether writes are refused.
    pub(crate) fn read_only(&self) -> bool {
        matches!(self, Storage::Os | Storage::Static(_))
    }

    /// Creates what a file storage needs on disk.
    pub(crate) fn prepare(&self) -> Result<(), ProcError> {
        match self {
            Storage::File(file) => file.prepare(),
            _ => Ok(()),
        }
    }

    /// The value at `key` (a router reads as nothing: walk it instead).
    pub(crate) fn read(&self, key: &str) -> Result<Option<String>, ProcError> {
        match self {
            Storage::Os => os_var(key),
            Storage::Static(values) => Ok(values.get(key).cloned()),
            Storage::Memory(memory) => Ok(memory.get(key)),
            Storage::File(file) => file.get(key),
            Storage::Router(_) => Ok(None),
        }
    }

    /// Stores `value` at `key` in a memory or file storage.
    pub(crate) fn write(&self, key: &str, value: &str) -> Result<(), ProcError> {
        match self {
            Storage::Memory(memory) => memory.set(key, value),
            Storage::File(file) => file.set(key, value),
            other => {
                let msg = format!("{} storages are read-only", other.kind_name());
                Err(ProcError::new(ErrorKind::PermissionDenied, msg))
            }
        }
    }
}

/// Warren's environment variable `key`, if set.
fn os_var(key: &str) -> Result<Option<String>, ProcError> {
    match std::env::var_os(key).map(|v| v.into_string()) {
        None => Ok(None),
        Some(Ok(value)) => Ok(Some(value)),
        Some(Err(_)) => {
            let msg = format!("environment variable '{key}' is not valid UTF-8");
            Err(ProcError::new(ErrorKind::Internal, msg))
        }
    }
}

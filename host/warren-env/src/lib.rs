//! The variables behind the `env` module (modules.md §4), language-neutral.
//!
//! An [`Env`] holds the declared storages and variables of an application
//! and is shared by every process. It guarantees that code sees only
//! declared variables, never the raw OS environment: an OS value is visible
//! only through a variable on an `env.storage.os` storage, which reads the
//! key named by the variable's public name (its entry id when it has none).
//! Every storage is bounded (see [`MAX_VALUE_BYTES`], [`MAX_MEMORY_BYTES`],
//! [`MAX_FILE_BYTES`]), so a tenant granted `env.set` cannot exhaust host
//! memory or disk. Grants are the caller's business: `Env` checks none.
//! Errors are [`ProcError`]s of the kinds of the spec (`INVALID`,
//! `NOT_FOUND`, `PERMISSION_DENIED`; `RATE_LIMITED` for a full storage,
//! `INTERNAL` for an unreadable file).

mod check;
mod error;
mod file;
mod memory;
mod names;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;

use warren_core::{ErrorKind, ProcError};

pub use check::{Checked, check};
pub use error::EnvError;
pub use file::{MAX_FILE_BYTES, MAX_FILE_KEYS};
pub use memory::{MAX_MEMORY_BYTES, MAX_MEMORY_KEYS};
pub use names::{MAX_NAME_LEN, check_name, is_entry_id, is_public_name};

use store::Storage;

/// Bytes one value may hold in a writable storage (and in a static one).
/// Values are configuration (URLs, tokens, flags); a tenant writing values
/// of megabytes would only be filling the storage.
pub const MAX_VALUE_BYTES: usize = 64 << 10;

/// What a storage is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// `env.storage.os`: Warren's own environment, read-only.
    Os,
    /// `env.storage.static`: fixed `values`, read-only.
    Static(Vec<(String, String)>),
    /// `env.storage.memory`: writable, lost at shutdown.
    Memory,
    /// `env.storage.file`: `KEY=VALUE` lines in a file, writable.
    File {
        /// The file (resolved by the caller).
        path: PathBuf,
        /// Create the file (and its folder) when missing.
        auto_create: bool,
        /// Permission bits of the file when written.
        file_mode: u32,
        /// Permission bits of folders created for it.
        dir_mode: u32,
    },
    /// `env.storage.router`: reads try each storage in turn (the first
    /// non-empty value wins), writes go to the first.
    Router(Vec<String>),
}

impl StorageKind {
    /// The `kind:` spelling.
    pub fn name(&self) -> &'static str {
        match self {
            StorageKind::Os => "env.storage.os",
            StorageKind::Static(_) => "env.storage.static",
            StorageKind::Memory => "env.storage.memory",
            StorageKind::File { .. } => "env.storage.file",
            StorageKind::Router(_) => "env.storage.router",
        }
    }
}

/// A storage entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageDef {
    /// Its entry id, `<namespace>:<name>`.
    pub id: String,
    /// What it is.
    pub kind: StorageKind,
}

/// An `env.variable` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariableDef {
    /// Its entry id, `<namespace>:<name>`.
    pub id: String,
    /// Its public name, `[A-Za-z0-9_]+` (`None`: reachable by id only).
    pub variable: Option<String>,
    /// The id of the storage holding it.
    pub storage: String,
    /// The value when the storage has none (or an empty one). An empty
    /// default is no default: an empty value counts as unset.
    pub default: Option<String>,
    /// Whether `set` is refused.
    pub readonly: bool,
}

impl VariableDef {
    /// The key its storage keeps it under: its public name, else its id.
    pub fn key(&self) -> &str {
        self.variable.as_deref().unwrap_or(&self.id)
    }
}

/// The declared storages and variables, shared by every process.
#[derive(Debug)]
pub struct Env {
    storages: HashMap<String, Storage>,
    /// In load order.
    variables: Vec<VariableDef>,
    by_id: HashMap<String, usize>,
    /// Public name → the first variable that claims it.
    by_name: HashMap<String, usize>,
    warnings: Vec<String>,
}

impl Env {
    /// Checks and builds the definitions (variables in load order); nothing
    /// is touched on disk (see [`Env::prepare`]). The first problem
    /// [`check`] finds is the error; a public name claimed twice is kept by
    /// the first variable and reported in [`Env::warnings`].
    pub fn new(storages: Vec<StorageDef>, variables: Vec<VariableDef>) -> Result<Env, EnvError> {
        let checked = check(&storages, &variables);
        if let Some(err) = checked.errors.into_iter().next() {
            return Err(err);
        }
        let mut by_id = HashMap::new();
        let mut by_name = HashMap::new();
        for (i, var) in variables.iter().enumerate() {
            by_id.insert(var.id.clone(), i);
            if let Some(name) = &var.variable {
                by_name.entry(name.clone()).or_insert(i);
            }
        }
        Ok(Env {
            storages: storages
                .into_iter()
                .map(|s| (s.id, Storage::new(s.kind)))
                .collect(),
            variables,
            by_id,
            by_name,
            warnings: checked.warnings.iter().map(ToString::to_string).collect(),
        })
    }

    /// What works but is likely a mistake (a public name claimed twice).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Creates the missing files (and folders) of file storages with
    /// `auto_create`. Run once before processes start.
    pub fn prepare(&self) -> Result<(), ProcError> {
        for (id, storage) in &self.storages {
            storage.prepare().map_err(|e| in_storage(id, e))?;
        }
        Ok(())
    }

    /// Which variable `name` means for a caller in namespace `ns`: public
    /// name, then entry id, then `<ns>:<name>` when `name` has no `:`.
    pub fn lookup(&self, name: &str, ns: &str) -> Option<&VariableDef> {
        let index = self
            .by_name
            .get(name)
            .or_else(|| self.by_id.get(name))
            .or_else(|| {
                let local = (!name.contains(':')).then(|| format!("{ns}:{name}"))?;
                self.by_id.get(&local)
            })?;
        self.variables.get(*index)
    }

    /// The name `get_all` shows `var` under: its public name if it holds
    /// it, else its entry id.
    pub fn name_of<'a>(&self, var: &'a VariableDef) -> &'a str {
        match &var.variable {
            Some(name) if self.owns(name, &var.id) => name,
            _ => &var.id,
        }
    }

    fn owns(&self, name: &str, id: &str) -> bool {
        let owner = self.by_name.get(name).and_then(|i| self.variables.get(*i));
        owner.is_some_and(|v| v.id == id)
    }

    /// The value of `var`: its storage's value (an empty one counts as
    /// unset), else its default; `None` when unset without a default.
    pub fn get(&self, var: &VariableDef) -> Result<Option<String>, ProcError> {
        let value = self.read(&var.storage, var.key())?;
        let default = var.default.as_ref().filter(|d| !d.is_empty());
        Ok(value.or_else(|| default.cloned()))
    }

    /// Sets `var`. `PERMISSION_DENIED` for a read-only variable or one on
    /// an os or static storage (a router writes to its first storage);
    /// `INVALID` for a value over [`MAX_VALUE_BYTES`], or one a file
    /// storage cannot hold (a NUL byte or a line break).
    pub fn set(&self, var: &VariableDef, value: &str) -> Result<(), ProcError> {
        let name = var.key();
        if var.readonly {
            let msg = format!("variable '{name}' is read-only");
            return Err(ProcError::new(ErrorKind::PermissionDenied, msg));
        }
        let (id, storage) = self.writable(&var.storage, name)?;
        if value.len() > MAX_VALUE_BYTES {
            let msg = format!("a value of variable '{name}' is limited to {MAX_VALUE_BYTES} bytes");
            return Err(ProcError::new(ErrorKind::Invalid, msg));
        }
        storage.write(name, value).map_err(|e| in_storage(id, e))
    }

    /// The declared variables, in load order.
    pub fn variables(&self) -> impl Iterator<Item = &VariableDef> {
        self.variables.iter()
    }

    /// The value of variable `name` (public name or entry id) for
    /// configuration placeholders, resolved without grants; `None` when it
    /// is not declared, is unset without a default, or cannot be read.
    pub fn resolve(&self, name: &str) -> Option<String> {
        let index = self.by_name.get(name).or_else(|| self.by_id.get(name))?;
        let var = self.variables.get(*index)?;
        self.get(var).ok().flatten()
    }

    /// Whether `name` (public name or entry id) is a declared variable.
    pub fn declares(&self, name: &str) -> bool {
        self.by_name.contains_key(name) || self.by_id.contains_key(name)
    }

    fn storage(&self, id: &str) -> Result<&Storage, ProcError> {
        self.storages.get(id).ok_or_else(|| {
            let msg = format!("storage '{id}' is not declared");
            ProcError::new(ErrorKind::NotFound, msg)
        })
    }

    /// The value at `key` of storage `id`: the first non-empty one along
    /// a router (routers have no cycles: [`check`] refused them).
    fn read(&self, id: &str, key: &str) -> Result<Option<String>, ProcError> {
        match self.storage(id)? {
            Storage::Router(list) => {
                for next in list {
                    if let Some(value) = self.read(next, key)? {
                        return Ok(Some(value));
                    }
                }
                Ok(None)
            }
            storage => {
                let value = storage.read(key).map_err(|e| in_storage(id, e))?;
                Ok(value.filter(|v| !v.is_empty()))
            }
        }
    }

    /// The storage a write to storage `id` lands in: the first of a router.
    fn writable<'a>(
        &'a self,
        id: &'a str,
        name: &str,
    ) -> Result<(&'a str, &'a Storage), ProcError> {
        match self.storage(id)? {
            Storage::Router(list) => match list.first() {
                Some(first) => self.writable(first, name),
                None => Err(ProcError::new(ErrorKind::Internal, "empty router")),
            },
            storage if storage.read_only() => {
                let msg = format!(
                    "variable '{name}' is on storage '{id}' ({}), which is read-only",
                    storage.kind_name()
                );
                Err(ProcError::new(ErrorKind::PermissionDenied, msg))
            }
            storage => Ok((id, storage)),
        }
    }
}

/// Prefixes an error of storage `id` with it.
fn in_storage(id: &str, mut err: ProcError) -> ProcError {
    err.message = format!("storage '{id}': {}", err.message);
    err
}

//! Loading and validation of Warren application folders.
//!
//! Every `_index.yaml` below the folder declares entries of one namespace.
//! Loading checks everything that can be checked before anything starts —
//! unknown keys and kinds, missing sources, unknown modules, duplicate ids,
//! malformed sizes and durations — and reports every problem with the file,
//! the entry and the key, instead of stopping at the first. What loads but
//! is likely a mistake (two variables claiming one public name) is a
//! warning ([`App::warnings`]). The `env.storage.*` and `env.variable`
//! entries are read first, so that every other entry's `${env:...}`
//! placeholders resolve through the declared variables.

mod database;
mod error;
mod function;
mod grants;
mod hosts;
mod index;
mod locate;
mod modes;
mod nesting;
mod placeholders;
mod refs;
mod service;
mod units;
mod variables;
mod volume;
mod wippy;
mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use warren_core::grants::Grants;
use warren_core::{EntryInfo, Value};

use index::Pass;

pub use database::{DatabaseEntry, DatabaseKind, PoolConfig, REDACTED, SqliteFile};
pub use error::ConfigError;
pub use function::{MAX_POOL_BUFFER, MAX_POOL_SIZE};
pub use hosts::{MAX_APP_WORKERS, MAX_HOST_WORKERS, default_workers};
pub use index::{MAX_FOLDER_DEPTH, MAX_FOLDERS, MAX_INDEX_BYTES, MAX_SOURCE_BYTES};
pub use nesting::MAX_YAML_DEPTH;
pub use service::{RestartPolicy, ServiceEntry, Startup, Strategy};
pub use units::{MAX_SIZE, parse_size};
pub use variables::{EnvStorageEntry, EnvVariableEntry};
pub use volume::VolumeEntry;
pub use warren_env::StorageKind as EnvStorageKind;
pub use wippy::PROJECT_FILE;
pub use yaml::MAX_YAML_VALUES;

/// Name of the files that declare entries.
pub const INDEX_FILE: &str = "_index.yaml";

/// The per-host quotas of a `process.host` entry (enforced by the tenant-limits work).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// Live processes at once.
    pub max_processes: Option<u64>,
    /// Bytes one process may allocate.
    pub memory_per_process: Option<u64>,
    /// Bytes all processes of the host may allocate.
    pub memory_total: Option<u64>,
    /// Nanoseconds a process may run without blocking.
    pub cpu_slice: Option<i64>,
    /// Bytes one message may hold.
    pub max_message_bytes: Option<u64>,
    /// Queued messages before senders get `RATE_LIMITED`.
    pub mailbox_limit: Option<u64>,
    /// Nanoseconds of CPU a process may use in all before it is killed.
    pub cpu_budget: Option<i64>,
    /// Handles (transactions, statements, streams) one process may hold open.
    pub max_open_handles: Option<u64>,
    /// Host calls (queries, requests) one process may have in flight.
    pub max_ops_per_process: Option<u64>,
    /// Host calls all processes of the host may have in flight together.
    pub max_ops_per_host: Option<u64>,
    /// Handles (files, streams, transactions) all processes of the host may
    /// hold open together.
    pub max_handles_per_host: Option<u64>,
}

/// A Lua process entry (`process.lua`), or a function entry
/// (`function.lua`: [`LuaEntry::pool`] is set).
#[derive(Clone, Debug, PartialEq)]
pub struct LuaEntry {
    /// The script's path.
    pub path: PathBuf,
    /// The script's text.
    pub source: String,
    /// The function of the returned table to run.
    pub method: String,
    /// Modules `require` may load.
    pub modules: Vec<String>,
    /// Libraries `require(alias)` loads: alias -> `library.lua` entry id.
    pub imports: BTreeMap<String, String>,
    /// What its code may reach (`grants:`), besides its host's grants.
    pub grants: Grants,
    /// A `function.lua` entry's `pool:` (`None` for a `process.lua` entry).
    pub pool: Option<warren_core::Pool>,
}

/// A `library.lua` entry: code other entries import under an alias.
#[derive(Clone, Debug, PartialEq)]
pub struct LibraryEntry {
    /// The script's path.
    pub path: PathBuf,
    /// The script's text.
    pub source: String,
    /// Modules its `require` may load.
    pub modules: Vec<String>,
    /// Libraries it imports: alias -> `library.lua` entry id.
    pub imports: BTreeMap<String, String>,
}

/// A directory a component may see.
#[derive(Clone, Debug, PartialEq)]
pub struct WasiDir {
    /// The host directory (resolved against the `_index.yaml`).
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Whether the guest may write.
    pub writable: bool,
}

/// A WebAssembly component process entry.
#[derive(Clone, Debug, PartialEq)]
pub struct WasmEntry {
    /// The component's path.
    pub path: PathBuf,
    /// Largest linear memory, in bytes (`None`: the host's default).
    pub memory: Option<u64>,
    /// Preopened directories.
    pub dirs: Vec<WasiDir>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Whether the component may use sockets (`wasi.network`, default false).
    pub network: bool,
}

/// A scheduler domain and tenant boundary: a `process.host`, or a
/// `terminal.host` whose processes own the terminal (stdin and stdout).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostEntry {
    /// Worker threads (`None`: one per core, see [`default_workers`]), at
    /// most [`MAX_HOST_WORKERS`].
    pub workers: Option<usize>,
    /// Quotas.
    pub limits: Limits,
    /// Other hosts its processes may spawn on or send to (`None`: all).
    pub allow_hosts: Option<Vec<String>>,
    /// `kind: terminal.host`: `warren run -x` runs the entry on it.
    pub terminal: bool,
    /// A terminal host's `hide_logs` (accepted; Warren has no event-bus log stream).
    pub hide_logs: bool,
    /// What every process on it holds (`grants:`), besides its entry's grants.
    pub grants: Grants,
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq)]
pub enum EntryKind {
    /// `kind: process.lua`, or `function.lua` ([`LuaEntry::pool`] set).
    Lua(LuaEntry),
    /// `kind: library.lua`.
    Library(LibraryEntry),
    /// `kind: process.host` or `kind: terminal.host` ([`HostEntry::terminal`]).
    Host(HostEntry),
    /// `kind: process.service`.
    Service(ServiceEntry),
    /// `kind: process.wasm`.
    Wasm(WasmEntry),
    /// `kind: registry.entry`: only its `meta` and `data` (see [`Entry`]).
    Registry,
    /// `kind: db.sql.sqlite` or `kind: db.sql.postgres` ([`DatabaseEntry::kind`]).
    Database(DatabaseEntry),
    /// `kind: fs.directory`.
    Volume(VolumeEntry),
    /// `kind: env.storage.*` ([`EnvStorageEntry::kind`]).
    EnvStorage(EnvStorageEntry),
    /// `kind: env.variable`.
    EnvVariable(EnvVariableEntry),
}

impl EntryKind {
    /// The `kind:` spelling.
    pub fn name(&self) -> &'static str {
        match self {
            EntryKind::Lua(lua) if lua.pool.is_some() => "function.lua",
            EntryKind::Lua(_) => "process.lua",
            EntryKind::Library(_) => "library.lua",
            EntryKind::Host(h) if h.terminal => "terminal.host",
            EntryKind::Host(_) => "process.host",
            EntryKind::Service(_) => "process.service",
            EntryKind::Wasm(_) => "process.wasm",
            EntryKind::Registry => "registry.entry",
            EntryKind::Database(db) => db.kind.name(),
            EntryKind::Volume(_) => "fs.directory",
            EntryKind::EnvStorage(s) => s.kind.name(),
            EntryKind::EnvVariable(_) => "env.variable",
        }
    }

    /// The imports of a Lua process or library entry.
    pub fn imports(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            EntryKind::Lua(lua) => Some(&lua.imports),
            EntryKind::Library(lib) => Some(&lib.imports),
            _ => None,
        }
    }
}

/// One declared entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// `<namespace>:<name>`.
    pub id: String,
    /// The `_index.yaml` that declares it.
    pub file: PathBuf,
    /// Its kind-specific configuration.
    pub kind: EntryKind,
    /// Its `meta:` map (an empty map when absent).
    pub meta: Value,
    /// Its YAML without `name`, `kind` and `meta` (what Wippy's
    /// `registry.get(id).data` shows); a database's `password` and `dsn`
    /// read [`REDACTED`].
    pub data: Value,
}

/// A loaded application.
#[derive(Clone, Debug, Default)]
pub struct App {
    /// The application folder.
    pub root: PathBuf,
    /// Entries by id.
    pub entries: BTreeMap<String, Entry>,
    /// Wippy's `lua.type_system` settings from `.wippy.yaml`.
    pub type_system: TypeSystem,
    /// What loads but is likely a mistake (see [`App::warnings`]).
    warnings: Vec<String>,
    /// The `env.variable` ids in load order (the first to claim a public
    /// name keeps it).
    variable_order: Vec<String>,
}

/// Wippy's `lua.type_system` in `.wippy.yaml` (in the application folder,
/// or the folder above it, where Wippy projects keep it): whether loading
/// reports type diagnostics, and whether a type error refuses the entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeSystem {
    /// `lua.type_system.enabled`: type diagnostics are printed at load.
    pub enabled: bool,
    /// `lua.type_system.strict`: a type error refuses the entry.
    pub strict: bool,
}

impl App {
    /// Loads the application under `root`. `modules` are the module names a
    /// Lua entry may list. Every problem found is returned.
    pub fn load(root: &Path, modules: &[&str]) -> Result<App, Vec<ConfigError>> {
        let mut files = Vec::new();
        if let Err(err) = index::find_files(root, &mut files) {
            return Err(vec![err]);
        }
        if files.is_empty() {
            return Err(vec![ConfigError::NoIndex(root.to_path_buf())]);
        }
        files.sort();
        let mut app = App {
            root: root.to_path_buf(),
            ..App::default()
        };
        let mut problems = Vec::new();
        match wippy::type_system(root) {
            Ok(ts) => app.type_system = ts,
            Err(err) => problems.push(err),
        }
        // The env entries first: the others' placeholders resolve through them.
        app.load_pass(&files, modules, Pass::Env, &mut problems);
        let env = app.env_for_load();
        app.load_pass(&files, modules, Pass::Rest(env.as_ref()), &mut problems);
        if problems.is_empty() {
            app.check_env(&mut problems);
            app.check_references(&mut problems);
            app.check_workers(&mut problems);
        }
        if problems.is_empty() {
            Ok(app)
        } else {
            Err(problems)
        }
    }

    /// Reads the entries of `files` that `pass` takes.
    fn load_pass(
        &mut self,
        files: &[PathBuf],
        modules: &[&str],
        pass: Pass<'_>,
        problems: &mut Vec<ConfigError>,
    ) {
        let root = self.root.clone();
        for file in files {
            for result in index::load_file(file, &root, modules, pass) {
                match result {
                    Ok(entry) => self.insert(entry, problems),
                    Err(err) => problems.push(err),
                }
            }
        }
    }

    /// What loads but is likely a mistake, each naming the file, the entry
    /// and the key (two `env.variable` entries claiming one public name).
    /// `warren check` prints them; they do not stop a load.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The service entries.
    pub fn services(&self) -> impl Iterator<Item = (&str, &ServiceEntry)> {
        self.entries.iter().filter_map(|(id, e)| match &e.kind {
            EntryKind::Service(s) => Some((id.as_str(), s)),
            _ => None,
        })
    }

    fn insert(&mut self, entry: Entry, problems: &mut Vec<ConfigError>) {
        if let Some(first) = self.entries.get(&entry.id) {
            problems.push(ConfigError::Duplicate {
                file: entry.file.clone(),
                id: entry.id.clone(),
                first: first.file.clone(),
            });
            return;
        }
        if matches!(entry.kind, EntryKind::EnvVariable(_)) {
            self.variable_order.push(entry.id.clone());
        }
        self.entries.insert(entry.id.clone(), entry);
    }

    /// The Lua entries.
    pub fn lua_entries(&self) -> impl Iterator<Item = (&str, &LuaEntry)> {
        self.entries.iter().filter_map(|(id, e)| match &e.kind {
            EntryKind::Lua(lua) => Some((id.as_str(), lua)),
            _ => None,
        })
    }

    /// The WebAssembly entries.
    pub fn wasm_entries(&self) -> impl Iterator<Item = (&str, &WasmEntry)> {
        self.entries.iter().filter_map(|(id, e)| match &e.kind {
            EntryKind::Wasm(w) => Some((id.as_str(), w)),
            _ => None,
        })
    }

    /// The library entries.
    pub fn libraries(&self) -> impl Iterator<Item = (&str, &LibraryEntry)> {
        self.entries.iter().filter_map(|(id, e)| match &e.kind {
            EntryKind::Library(lib) => Some((id.as_str(), lib)),
            _ => None,
        })
    }

    /// The host entries, `process.host` and `terminal.host` alike.
    pub fn hosts(&self) -> impl Iterator<Item = (&str, &HostEntry)> {
        self.entries.iter().filter_map(|(id, e)| match &e.kind {
            EntryKind::Host(host) => Some((id.as_str(), host)),
            _ => None,
        })
    }

    /// The database entries (`db.sql.sqlite`, `db.sql.postgres`).
    pub fn databases(&self) -> impl Iterator<Item = (&str, &DatabaseEntry)> {
        self.entries.iter().filter_map(|(id, e)| match &e.kind {
            EntryKind::Database(db) => Some((id.as_str(), db)),
            _ => None,
        })
    }

    /// The volumes (`fs.directory` entries).
    pub fn volumes(&self) -> impl Iterator<Item = &VolumeEntry> {
        self.entries.values().filter_map(|e| match &e.kind {
            EntryKind::Volume(v) => Some(v),
            _ => None,
        })
    }

    /// The `terminal.host` entries.
    pub fn terminal_hosts(&self) -> impl Iterator<Item = (&str, &HostEntry)> {
        self.hosts().filter(|(_, h)| h.terminal)
    }

    /// Every entry as the `registry` module shows it.
    pub fn catalog(&self) -> Vec<EntryInfo> {
        self.entries
            .values()
            .map(|e| EntryInfo {
                id: e.id.clone(),
                kind: e.kind.name().to_owned(),
                meta: e.meta.clone(),
                data: e.data.clone(),
            })
            .collect()
    }
}

//! Loading and validation of Warren application folders.
//!
//! Every `_index.yaml` below the folder declares entries of one namespace.
//! Loading checks everything that can be checked before anything starts —
//! unknown keys and kinds, missing sources, unknown modules, duplicate ids,
//! malformed sizes and durations — and reports every problem with the file,
//! the entry and the key, instead of stopping at the first.

mod error;
mod index;
mod service;
mod units;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use error::ConfigError;
pub use service::{RestartPolicy, ServiceEntry, Strategy};
pub use units::{MAX_SIZE, parse_size};

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
}

/// A Lua process entry.
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

/// A scheduler domain and tenant boundary.
#[derive(Clone, Debug, PartialEq)]
pub struct HostEntry {
    /// Worker threads (`None`: one per core).
    pub workers: Option<usize>,
    /// Quotas.
    pub limits: Limits,
    /// Other hosts its processes may spawn on or send to (`None`: all).
    pub allow_hosts: Option<Vec<String>>,
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq)]
pub enum EntryKind {
    /// `kind: process.lua`.
    Lua(LuaEntry),
    /// `kind: process.host`.
    Host(HostEntry),
    /// `kind: process.service`.
    Service(ServiceEntry),
    /// `kind: process.wasm`.
    Wasm(WasmEntry),
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
}

/// A loaded application.
#[derive(Clone, Debug, Default)]
pub struct App {
    /// The application folder.
    pub root: PathBuf,
    /// Entries by id.
    pub entries: BTreeMap<String, Entry>,
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
            entries: BTreeMap::new(),
        };
        let mut problems = Vec::new();
        for file in files {
            for result in index::load_file(&file, modules) {
                match result {
                    Ok(entry) => app.insert(entry, &mut problems),
                    Err(err) => problems.push(err),
                }
            }
        }
        if problems.is_empty() {
            app.check_references(&mut problems);
        }
        if problems.is_empty() {
            Ok(app)
        } else {
            Err(problems)
        }
    }

    /// The service entries.
    pub fn services(&self) -> impl Iterator<Item = (&str, &ServiceEntry)> {
        self.entries.iter().filter_map(|(id, e)| match &e.kind {
            EntryKind::Service(s) => Some((id.as_str(), s)),
            _ => None,
        })
    }

    fn kind_of(&self, id: &str) -> Option<&EntryKind> {
        self.entries.get(id).map(|e| &e.kind)
    }

    fn check_references(&self, problems: &mut Vec<ConfigError>) {
        for (id, svc) in self.services() {
            let key_error = |key: &str, message: String| ConfigError::Key {
                file: self.entries[id].file.clone(),
                entry: id.to_owned(),
                key: key.to_owned(),
                message,
            };
            if !matches!(
                self.kind_of(&svc.process),
                Some(EntryKind::Lua(_) | EntryKind::Wasm(_))
            ) {
                let msg = format!(
                    "'{}' is not a process entry of this application",
                    svc.process
                );
                problems.push(key_error("process", msg));
            }
            if !matches!(self.kind_of(&svc.host), Some(EntryKind::Host(_))) {
                let msg = format!(
                    "'{}' is not a process.host entry of this application",
                    svc.host
                );
                problems.push(key_error("host", msg));
            }
            for dep in &svc.requires {
                if !matches!(self.kind_of(dep), Some(EntryKind::Service(_))) {
                    problems.push(key_error(
                        "lifecycle.requires",
                        format!("'{dep}' is not a process.service entry"),
                    ));
                }
            }
        }
        for (id, host) in self.hosts() {
            for other in host.allow_hosts.iter().flatten() {
                if !matches!(self.kind_of(other), Some(EntryKind::Host(_))) {
                    problems.push(ConfigError::Key {
                        file: self.entries[id].file.clone(),
                        entry: id.to_owned(),
                        key: "allow_hosts".into(),
                        message: format!(
                            "'{other}' is not a process.host entry of this application"
                        ),
                    });
                }
            }
        }
        if problems.is_empty()
            && let Some(cycle) = self.dependency_cycle()
        {
            let first = &cycle[0];
            problems.push(ConfigError::Key {
                file: self.entries[first].file.clone(),
                entry: first.clone(),
                key: "lifecycle.requires".into(),
                message: format!("dependency cycle: {}", cycle.join(" -> ")),
            });
        }
    }

    /// A `requires` cycle, as the ids along it (the first repeated at the end).
    fn dependency_cycle(&self) -> Option<Vec<String>> {
        let mut done = std::collections::BTreeSet::new();
        for (id, _) in self.services() {
            let mut path = Vec::new();
            if let Some(cycle) = self.visit(id, &mut done, &mut path) {
                return Some(cycle);
            }
        }
        None
    }

    fn visit(
        &self,
        id: &str,
        done: &mut std::collections::BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == id) {
            let mut cycle = path[start..].to_vec();
            cycle.push(id.to_owned());
            return Some(cycle);
        }
        if done.contains(id) {
            return None;
        }
        path.push(id.to_owned());
        if let Some(EntryKind::Service(svc)) = self.kind_of(id) {
            for dep in &svc.requires {
                if let Some(cycle) = self.visit(dep, done, path) {
                    return Some(cycle);
                }
            }
        }
        path.pop();
        done.insert(id.to_owned());
        None
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

    /// The host entries.
    pub fn hosts(&self) -> impl Iterator<Item = (&str, &HostEntry)> {
        self.entries.iter().filter_map(|(id, e)| match &e.kind {
            EntryKind::Host(host) => Some((id.as_str(), host)),
            _ => None,
        })
    }
}

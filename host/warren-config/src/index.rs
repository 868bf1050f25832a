//! Reading one `_index.yaml`: the file's shape, then each entry by its kind,
//! with serde's `deny_unknown_fields` catching misspelt keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value as Yaml;
use warren_core::Value;
use warren_core::readfile::read_text_bounded;
use warren_env::Env;

use crate::database;
use crate::function::{self, FUNCTION};
use crate::service::{RestartPolicy, ServiceEntry, Startup, Strategy, yaml_to_value};
use crate::units::parse_size;
use crate::variables::{self, VARIABLE};
use crate::volume::DIRECTORY;
use crate::{
    ConfigError, Entry, EntryKind, HostEntry, INDEX_FILE, LibraryEntry, Limits, LuaEntry, WasiDir,
    WasmEntry,
};

/// The kinds an entry may have.
const KINDS: &str = "process.lua, function.lua, library.lua, process.wasm, process.host, terminal.host, \
                     process.service, registry.entry, db.sql.sqlite, db.sql.postgres, \
                     fs.directory, env.storage.os, env.storage.static, env.storage.memory, \
                     env.storage.file, env.storage.router or env.variable";

/// Keys that are not part of an entry's `data`.
const NOT_DATA: [&str; 3] = ["name", "kind", "meta"];

/// Module names a `modules:` list may hold that are globals, not modules.
const GLOBAL_MODULES: [&str; 2] = ["process", "os"];

/// The only `version:` this loader understands.
const VERSION: &str = "1.0";

/// Bytes an `_index.yaml` (or `wippy.yaml`) may hold. Parsing builds a
/// tree many times the text's size, so a file of gigabytes (a mistake, or
/// a symlink to `/dev/zero`, which is refused as no regular file) would
/// take the loader's memory before any error could name it.
pub const MAX_INDEX_BYTES: usize = 16 << 20;

/// Bytes a Lua entry's `source:` may hold: every worker compiles it, so a
/// source of gigabytes would be read and compiled into every VM.
pub const MAX_SOURCE_BYTES: usize = 16 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexYaml {
    version: Yaml,
    namespace: String,
    #[serde(default)]
    entries: Vec<Yaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LuaYaml {
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "kind")]
    _kind: String,
    source: String,
    method: Option<String>,
    modules: Option<Vec<String>>,
    imports: Option<BTreeMap<String, String>>,
    /// Read by [`crate::grants::parse`], which names the key at fault.
    grants: Option<Yaml>,
    /// A `function.lua` entry's pool (refused on `process.lua`).
    pool: Option<Yaml>,
    /// Read from the raw YAML into [`Entry::meta`].
    #[serde(rename = "meta")]
    _meta: Option<Yaml>,
}

/// `kind: library.lua`: like `process.lua` without `method` (a library is
/// imported, not run).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LibraryYaml {
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "kind")]
    _kind: String,
    source: String,
    modules: Option<Vec<String>>,
    imports: Option<BTreeMap<String, String>>,
    #[serde(rename = "meta")]
    _meta: Option<Yaml>,
}

/// `kind: terminal.host`, with the keys Wippy documents. `hide_logs`
/// keeps logs off Wippy's event bus, which Warren does not have; like a
/// host's `lifecycle`, it is accepted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminalYaml {
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "kind")]
    _kind: String,
    hide_logs: Option<bool>,
    grants: Option<Yaml>,
    #[serde(rename = "meta")]
    _meta: Option<Yaml>,
    #[serde(rename = "lifecycle")]
    _lifecycle: Option<Yaml>,
}

/// `kind: registry.entry`: data other entries find through the `registry`
/// module (its `meta` and `data`); nothing runs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryYaml {
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "kind")]
    _kind: String,
    #[serde(rename = "meta")]
    _meta: Option<Yaml>,
    #[serde(rename = "data")]
    _data: Option<Yaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WasmYaml {
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "kind")]
    _kind: String,
    source: String,
    method: Option<String>,
    limits: Option<WasmLimitsYaml>,
    wasi: Option<WasiYaml>,
    #[serde(rename = "meta")]
    _meta: Option<Yaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WasmLimitsYaml {
    memory: Option<Yaml>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WasiYaml {
    #[serde(default)]
    dirs: Vec<WasiDirYaml>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    network: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WasiDirYaml {
    host: String,
    guest: String,
    mode: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostYaml {
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "kind")]
    _kind: String,
    host: Option<HostOptions>,
    limits: Option<LimitsYaml>,
    allow_hosts: Option<Vec<String>>,
    grants: Option<Yaml>,
    #[serde(rename = "meta")]
    _meta: Option<Yaml>,
    /// Wippy starts hosts through a lifecycle; Warren's hosts always run,
    /// so it is accepted and has no effect.
    #[serde(rename = "lifecycle")]
    _lifecycle: Option<Yaml>,
}

/// Wippy's `host:` keys. `max_processes` sets `limits.max_processes`
/// (which wins if both are given); `queue_size` and `local_queue_size` are
/// initial capacities of Wippy's scheduler queues, which grow: Warren's
/// queues grow too, so they are accepted and have no effect.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostOptions {
    workers: Option<usize>,
    max_processes: Option<u64>,
    #[serde(rename = "queue_size")]
    _queue_size: Option<u64>,
    #[serde(rename = "local_queue_size")]
    _local_queue_size: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsYaml {
    max_processes: Option<u64>,
    memory_per_process: Option<Yaml>,
    memory_total: Option<Yaml>,
    cpu_slice: Option<Yaml>,
    max_message_bytes: Option<Yaml>,
    mailbox_limit: Option<u64>,
    cpu_budget: Option<Yaml>,
    max_open_handles: Option<u64>,
    max_ops_per_process: Option<u64>,
    max_ops_per_host: Option<u64>,
    max_handles_per_host: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceYaml {
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "kind")]
    _kind: String,
    process: String,
    host: String,
    #[serde(default)]
    input: Vec<Yaml>,
    lifecycle: Option<LifecycleYaml>,
    #[serde(rename = "meta")]
    _meta: Option<Yaml>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LifecycleYaml {
    auto_start: Option<bool>,
    startup: Option<String>,
    #[serde(default)]
    requires: Vec<String>,
    /// Wippy's legacy spelling of `requires`; both lists are merged.
    #[serde(default)]
    depends_on: Vec<String>,
    restart: Option<RestartYaml>,
    group: Option<String>,
    stable_threshold: Option<Yaml>,
    start_timeout: Option<Yaml>,
    stop_timeout: Option<Yaml>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RestartYaml {
    strategy: Option<String>,
    initial_delay: Option<Yaml>,
    max_delay: Option<Yaml>,
    backoff_factor: Option<f64>,
    jitter: Option<f64>,
    max_attempts: Option<u32>,
    max_restarts: Option<u32>,
    period: Option<Yaml>,
}

/// Folders deep the search for `_index.yaml` files goes below the
/// application folder: a chain of symlinked folders (`a -> ..`) or a
/// generated tree cannot keep the loader walking.
pub const MAX_FOLDER_DEPTH: usize = 32;

/// Folders the search for `_index.yaml` files reads at most: a link to a
/// large tree (`ext -> /usr`) walked 5.5 GB of files' folders before
/// answering, and one to `/` the whole filesystem. Linked folders are
/// read (an application may share a library folder by a link), so the
/// walk is bounded by count as well as by depth.
pub const MAX_FOLDERS: usize = 10_000;

/// Collects every `_index.yaml` under `dir` (hidden folders are skipped).
/// A folder reached twice (through a symlink back up the tree, or two
/// symlinks to one folder) is read once: two symlinks to `.` made the walk
/// visit 2^40 paths before the kernel refused one.
pub(crate) fn find_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    walk(dir, 0, &mut seen, out)
}

fn walk(
    dir: &Path,
    depth: usize,
    seen: &mut std::collections::HashSet<PathBuf>,
    out: &mut Vec<PathBuf>,
) -> Result<(), ConfigError> {
    let io = |source| ConfigError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if !seen.insert(dir.canonicalize().map_err(io)?) {
        return Ok(());
    }
    if seen.len() > MAX_FOLDERS {
        return Err(file_error(
            dir,
            format!(
                "more than {MAX_FOLDERS} folders below the application folder (a link to a large tree?)"
            ),
        ));
    }
    if depth > MAX_FOLDER_DEPTH {
        return Err(file_error(
            dir,
            format!("more than {MAX_FOLDER_DEPTH} folders deep below the application folder"),
        ));
    }
    for item in std::fs::read_dir(dir).map_err(io)? {
        let item = item.map_err(io)?;
        let path = item.path();
        let hidden = item.file_name().to_string_lossy().starts_with('.');
        if path.is_dir() && !hidden {
            walk(&path, depth + 1, seen, out)?;
        } else if item.file_name() == INDEX_FILE {
            out.push(path);
        }
    }
    Ok(())
}

/// Which entries a reading of the files takes. Loading reads them twice:
/// first the env entries, then the rest with the declared variables at
/// hand for their `${env:...}` placeholders.
#[derive(Clone, Copy)]
pub(crate) enum Pass<'a> {
    /// The `env.storage.*` and `env.variable` entries only (problems of
    /// the file itself are left to the second pass).
    Env,
    /// Every other entry, placeholders resolved through `env` (when the
    /// declared variables check).
    Rest(Option<&'a Env>),
}

impl Pass<'_> {
    /// Whether this pass reads an entry of `kind` (entries without a kind
    /// string are the second pass's to report).
    fn takes(self, yaml: &Yaml) -> bool {
        let env = yaml
            .get("kind")
            .and_then(Yaml::as_str)
            .is_some_and(variables::is_env_kind);
        env == matches!(self, Pass::Env)
    }
}

/// The entries of `file` (of the application folder `root`) that `pass`
/// takes, or the problems found in them.
pub(crate) fn load_file(
    file: &Path,
    root: &Path,
    modules: &[&str],
    pass: Pass<'_>,
) -> Vec<Result<Entry, ConfigError>> {
    let index = match read_index(file) {
        Ok(index) => index,
        Err(_) if matches!(pass, Pass::Env) => return Vec::new(),
        Err(err) => return vec![Err(err)],
    };
    let ctx = Ctx {
        file,
        dir: file.parent().unwrap_or(Path::new(".")),
        root,
        namespace: &index.namespace,
        modules,
        env: match pass {
            Pass::Rest(env) => env,
            Pass::Env => None,
        },
    };
    index
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| pass.takes(e))
        .map(|(i, e)| ctx.entry(i, e))
        .collect()
}

/// The file's shape: YAML, its version and its namespace.
fn read_index(file: &Path) -> Result<IndexYaml, ConfigError> {
    let text = read_text_bounded(file, MAX_INDEX_BYTES).map_err(|source| ConfigError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let index: IndexYaml = crate::yaml::parse(file, &text)?;
    let version = match &index.version {
        Yaml::String(s) => s.clone(),
        // `version: 1.0` (or `1`) unquoted reads as a number: its text.
        Yaml::Number(n) => match n.to_string() {
            t if t.contains('.') => t,
            t => t + ".0",
        },
        _ => String::new(),
    };
    if version != VERSION {
        return Err(file_error(
            file,
            format!("version {version:?} is not supported (expected \"{VERSION}\")"),
        ));
    }
    if index.namespace.is_empty() || index.namespace.contains(':') {
        let msg = format!(
            "namespace {:?} must be non-empty and must not contain ':'",
            index.namespace
        );
        return Err(file_error(file, msg));
    }
    Ok(index)
}

/// How a YAML value reads in a message.
pub(crate) fn describe(value: &Yaml) -> String {
    match value {
        Yaml::Null => "nothing".into(),
        Yaml::Bool(b) => format!("boolean {b}"),
        Yaml::Number(n) => format!("number {n}"),
        Yaml::String(s) => format!("string {s:?}"),
        Yaml::Sequence(_) => "a list".into(),
        Yaml::Mapping(_) => "a map".into(),
        Yaml::Tagged(t) => format!("tagged value {}", t.tag),
    }
}

fn file_error(file: &Path, message: String) -> ConfigError {
    ConfigError::File {
        file: file.to_path_buf(),
        message,
    }
}

/// What reading the entries of one `_index.yaml` needs.
pub(crate) struct Ctx<'a> {
    file: &'a Path,
    /// The folder of the `_index.yaml` (`file://` sources resolve against it).
    dir: &'a Path,
    /// The application folder (database files resolve against it).
    pub(crate) root: &'a Path,
    namespace: &'a str,
    modules: &'a [&'a str],
    /// The declared variables placeholders resolve through (`None` while
    /// reading the env entries themselves, or when they do not check).
    env: Option<&'a Env>,
}

impl Ctx<'_> {
    /// The value of variable `name` for a placeholder or a `<field>_env`
    /// (see [`crate::placeholders::lookup`]).
    pub(crate) fn variable(&self, name: &str) -> Result<Option<String>, String> {
        crate::placeholders::lookup(self.env, name)
    }

    fn entry_error(&self, entry: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Entry {
            file: self.file.to_path_buf(),
            entry: entry.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn key_error(
        &self,
        entry: &str,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Key {
            file: self.file.to_path_buf(),
            entry: entry.to_owned(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn entry(&self, position: usize, yaml: &Yaml) -> Result<Entry, ConfigError> {
        let label = format!("#{}", position + 1);
        let str_field = |key: &str| yaml.get(key).and_then(Yaml::as_str);
        let Some(name) = str_field("name").filter(|n| !n.is_empty()) else {
            return Err(self.key_error(&label, "name", "missing or not a string"));
        };
        let id = format!("{}:{name}", self.namespace);
        let Some(kind) = str_field("kind") else {
            return Err(self.key_error(&id, "kind", "missing or not a string"));
        };
        let kind = self.kind(&id, kind, yaml)?;
        let (meta, mut data) = self.meta_and_data(&id, yaml)?;
        match kind {
            // A registry entry's data is its `data:` key itself.
            EntryKind::Registry => data = data.get("data").cloned().unwrap_or(Value::Nil),
            EntryKind::Database(_) => database::redact_data(&mut data),
            // A static storage's values and a variable's default are
            // secrets as a password is: the `registry` module showed them
            // to any process, where `env.get` needs a grant.
            EntryKind::EnvStorage(_) => database::redact_keys(&mut data, &["values"]),
            EntryKind::EnvVariable(_) => database::redact_keys(&mut data, &["default"]),
            _ => {}
        }
        Ok(Entry {
            id,
            file: self.file.to_path_buf(),
            kind,
            meta,
            data,
        })
    }

    fn kind(&self, id: &str, kind: &str, yaml: &Yaml) -> Result<EntryKind, ConfigError> {
        Ok(match kind {
            "process.lua" | FUNCTION => {
                EntryKind::Lua(self.lua(id, kind, self.parse(id, yaml)?)?)
            }
            "library.lua" => EntryKind::Library(self.library(id, yaml)?),
            "process.host" => EntryKind::Host(self.host(id, self.parse(id, yaml)?)?),
            "terminal.host" => EntryKind::Host(self.terminal(id, self.parse(id, yaml)?)?),
            "process.service" => EntryKind::Service(self.service(id, self.parse(id, yaml)?)?),
            "process.wasm" => EntryKind::Wasm(self.wasm(id, self.parse(id, yaml)?)?),
            "registry.entry" => {
                let _: RegistryYaml = self.parse(id, yaml)?;
                EntryKind::Registry
            }
            database::SQLITE | database::POSTGRES => {
                EntryKind::Database(self.database(id, kind, yaml)?)
            }
            DIRECTORY => EntryKind::Volume(self.volume(id, yaml)?),
            VARIABLE => EntryKind::EnvVariable(self.env_variable(id, yaml)?),
            kind if variables::is_env_kind(kind) => {
                EntryKind::EnvStorage(self.env_storage(id, kind, yaml)?)
            }
            other => {
                let msg = database::unsupported(other)
                    .unwrap_or_else(|| format!("unknown kind '{other}' (expected {KINDS})"));
                return Err(self.key_error(id, "kind", msg));
            }
        })
    }

    /// The entry's `meta:` map and the rest of its keys, as values.
    fn meta_and_data(&self, id: &str, yaml: &Yaml) -> Result<(Value, Value), ConfigError> {
        let meta = match yaml.get("meta") {
            None | Some(Yaml::Null) => Value::Map(Vec::new()),
            Some(m @ Yaml::Mapping(_)) => {
                yaml_to_value(m).map_err(|e| self.key_error(id, "meta", e))?
            }
            Some(other) => {
                let msg = format!(
                    "expected a map of keys to values, found {}",
                    describe(other)
                );
                return Err(self.key_error(id, "meta", msg));
            }
        };
        let mut data = Vec::new();
        for (key, value) in yaml.as_mapping().into_iter().flatten() {
            let name = key.as_str().unwrap_or_default();
            if NOT_DATA.contains(&name) {
                continue;
            }
            let value = yaml_to_value(value).map_err(|e| self.key_error(id, name, e))?;
            data.push((Value::str(name), value));
        }
        Ok((meta, Value::Map(data)))
    }

    pub(crate) fn parse<T: DeserializeOwned>(
        &self,
        id: &str,
        yaml: &Yaml,
    ) -> Result<T, ConfigError> {
        serde_yaml_ng::from_value(yaml.clone()).map_err(|err| {
            let text = err.to_string();
            if let Some((key, _)) = text
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
            {
                return self.key_error(id, key, format!("unknown key ({text})"));
            }
            match crate::locate::key_of(&text, yaml) {
                Some(key) => self.key_error(id, &key, text),
                None => self.entry_error(id, text),
            }
        })
    }

    /// Resolves a `file://` source against this `_index.yaml`'s folder.
    fn source_path(&self, id: &str, source: &str) -> Result<PathBuf, ConfigError> {
        let Some(relative) = source.strip_prefix("file://") else {
            return Err(self.key_error(
                id,
                "source",
                format!("{source:?} must start with file://"),
            ));
        };
        self.path_text(id, "source", relative)?;
        Ok(self.dir.join(relative))
    }

    /// Refuses a path no system call takes (one holding a NUL character):
    /// such a volume `directory` passed the check, and the run failed when
    /// the volume was first opened, with "invalid argument" and no key.
    pub(crate) fn path_text(&self, id: &str, key: &str, path: &str) -> Result<(), ConfigError> {
        if path.contains('\0') {
            let msg = format!("{path:?} contains a NUL character, which no path may hold");
            return Err(self.key_error(id, key, msg));
        }
        Ok(())
    }

    /// Parses an optional size (`16MiB` or a byte count) at `key`.
    fn size(&self, id: &str, key: &str, value: Option<Yaml>) -> Result<Option<u64>, ConfigError> {
        let text = match value {
            None => return Ok(None),
            Some(Yaml::Number(n)) => n.to_string(),
            Some(Yaml::String(s)) => s,
            Some(_) => return Err(self.key_error(id, key, "expected a size such as \"16MiB\"")),
        };
        parse_size(&text)
            .map(Some)
            .map_err(|e| self.key_error(id, key, e))
    }

    /// A size limit at `key` whose 0 would `what_zero_does` (none of the
    /// host's byte limits documents 0 as "no limit").
    fn nonzero_size(
        &self,
        id: &str,
        key: &str,
        value: Option<Yaml>,
        what_zero_does: &str,
    ) -> Result<Option<u64>, ConfigError> {
        let bytes = self.size(id, key, value)?;
        if bytes == Some(0) {
            let msg = format!("0 would {what_zero_does}: must be at least 1 byte");
            return Err(self.key_error(id, key, msg));
        }
        Ok(bytes)
    }

    fn lua(&self, id: &str, kind: &str, y: LuaYaml) -> Result<LuaEntry, ConfigError> {
        let pool = match (kind, &y.pool) {
            (FUNCTION, pool) => Some(
                function::parse_pool(pool.as_ref())
                    .map_err(|(key, msg)| self.key_error(id, &key, msg))?,
            ),
            (_, Some(_)) => {
                let msg =
                    "only a function.lua entry has a pool (a process.lua entry is one process)";
                return Err(self.key_error(id, "pool", msg));
            }
            (_, None) => None,
        };
        let (path, source) = self.lua_source(id, &y.source)?;
        let modules = self.lua_modules(id, y.modules)?;
        let imports = self.imports(id, y.imports, &modules)?;
        let method = y.method.unwrap_or_else(|| "main".into());
        let grants = self.grants(id, y.grants.as_ref())?;
        Ok(LuaEntry {
            path,
            source,
            method,
            modules,
            imports,
            grants,
            pool,
        })
    }

    fn library(&self, id: &str, yaml: &Yaml) -> Result<LibraryEntry, ConfigError> {
        if yaml.get("method").is_some() {
            let msg = "a library.lua entry has no method: a library is imported \
                       (require of its alias returns what its script returns), not run";
            return Err(self.key_error(id, "method", msg));
        }
        let y: LibraryYaml = self.parse(id, yaml)?;
        let (path, source) = self.lua_source(id, &y.source)?;
        let modules = self.lua_modules(id, y.modules)?;
        let imports = self.imports(id, y.imports, &modules)?;
        Ok(LibraryEntry {
            path,
            source,
            modules,
            imports,
        })
    }

    /// Reads a Lua entry's `source:`.
    fn lua_source(&self, id: &str, source: &str) -> Result<(PathBuf, String), ConfigError> {
        let path = self.source_path(id, source)?;
        let text = read_text_bounded(&path, MAX_SOURCE_BYTES).map_err(|e| {
            self.key_error(id, "source", format!("cannot read {}: {e}", path.display()))
        })?;
        Ok((path, text))
    }

    /// Checks a Lua entry's `modules:`.
    fn lua_modules(
        &self,
        id: &str,
        modules: Option<Vec<String>>,
    ) -> Result<Vec<String>, ConfigError> {
        // `process` and `os` are globals every process has; Wippy accepts
        // them in the list, so they are accepted and dropped here.
        let mut modules = modules.unwrap_or_default();
        modules.retain(|m| !GLOBAL_MODULES.contains(&m.as_str()));
        if let Some(bad) = modules.iter().find(|m| !self.modules.contains(&m.as_str())) {
            let msg = format!(
                "module '{bad}' does not exist (available: {})",
                self.modules.join(", ")
            );
            return Err(self.key_error(id, "modules", msg));
        }
        Ok(modules)
    }

    /// Checks the aliases of a Lua entry's `imports:` (their targets are
    /// checked once every file has loaded).
    fn imports(
        &self,
        id: &str,
        imports: Option<BTreeMap<String, String>>,
        modules: &[String],
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let imports = imports.unwrap_or_default();
        for alias in imports.keys() {
            let problem = if alias.is_empty() {
                Some("an alias must not be empty".to_owned())
            } else if alias.contains('/') {
                Some(format!("alias {alias:?} must not contain '/'"))
            } else if modules.contains(alias) {
                Some(format!(
                    "alias {alias:?} is also listed in modules: require({alias:?}) would be ambiguous"
                ))
            } else {
                None
            };
            if let Some(msg) = problem {
                return Err(self.key_error(id, &format!("imports.{alias}"), msg));
            }
        }
        Ok(imports)
    }

    /// The text of a duration at `key`: Wippy's durations are strings with
    /// a unit, so a bare number is refused (is `5` seconds or nanoseconds?).
    fn duration_text(&self, id: &str, key: &str, value: Yaml) -> Result<String, ConfigError> {
        match value {
            Yaml::String(text) => Ok(text),
            Yaml::Number(n) => Err(self.key_error(
                id,
                key,
                format!("{n} is not a duration: write it with a unit, e.g. \"{n}s\" or \"{n}ms\""),
            )),
            other => Err(self.key_error(
                id,
                key,
                format!(
                    "expected a duration such as \"5s\", found {}",
                    describe(&other)
                ),
            )),
        }
    }

    pub(crate) fn duration(
        &self,
        id: &str,
        key: &str,
        value: Option<Yaml>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let text = self.duration_text(id, key, value)?;
        match warren_core::duration::parse(&text) {
            Ok(ns) if ns >= 0 => Ok(Duration::from_nanos(ns.unsigned_abs())),
            Ok(_) => {
                Err(self.key_error(id, key, format!("duration {text:?} must not be negative")))
            }
            Err(e) => Err(self.key_error(id, key, e.to_string())),
        }
    }

    fn startup(&self, id: &str, value: Option<String>) -> Result<Startup, ConfigError> {
        match value.as_deref() {
            None | Some("required") => Ok(Startup::Required),
            Some("optional") => Ok(Startup::Optional),
            Some(other) => Err(self.key_error(
                id,
                "lifecycle.startup",
                format!("unknown startup mode '{other}' (expected required or optional)"),
            )),
        }
    }

    fn service(&self, id: &str, y: ServiceYaml) -> Result<ServiceEntry, ConfigError> {
        let input = y
            .input
            .iter()
            .map(yaml_to_value)
            .collect::<Result<_, _>>()
            .map_err(|e| self.key_error(id, "input", e))?;
        let life = y.lifecycle.unwrap_or_default();
        let restart = self.restart(id, life.restart.unwrap_or_default())?;
        // By default a service's group is its host, the tenant boundary: a
        // namespace-wide default put two tenants' services in one group,
        // and one tenant's crash loop stopped the other's (red team L).
        let group = life.group.unwrap_or_else(|| y.host.clone());
        let mut requires = life.requires;
        for dep in life.depends_on {
            if !requires.contains(&dep) {
                requires.push(dep);
            }
        }
        Ok(ServiceEntry {
            process: y.process,
            host: y.host,
            input,
            auto_start: life.auto_start.unwrap_or(true),
            startup: self.startup(id, life.startup)?,
            requires,
            restart,
            group,
            stable_threshold: self.duration(
                id,
                "lifecycle.stable_threshold",
                life.stable_threshold,
                Duration::from_secs(5),
            )?,
            start_timeout: self.duration(
                id,
                "lifecycle.start_timeout",
                life.start_timeout,
                Duration::from_secs(10),
            )?,
            stop_timeout: self.duration(
                id,
                "lifecycle.stop_timeout",
                life.stop_timeout,
                Duration::from_secs(10),
            )?,
        })
    }

    fn restart(&self, id: &str, r: RestartYaml) -> Result<RestartPolicy, ConfigError> {
        let d = RestartPolicy::default();
        let strategy = match r.strategy.as_deref() {
            None | Some("one_for_one") => Strategy::OneForOne,
            Some("one_for_all") => Strategy::OneForAll,
            Some("rest_for_one") => Strategy::RestForOne,
            Some(other) => {
                let msg = format!(
                    "unknown strategy '{other}' (expected one_for_one, one_for_all or rest_for_one)"
                );
                return Err(self.key_error(id, "lifecycle.restart.strategy", msg));
            }
        };
        let backoff_factor = r.backoff_factor.unwrap_or(d.backoff_factor);
        if !(1.0..=100.0).contains(&backoff_factor) {
            return Err(self.key_error(
                id,
                "lifecycle.restart.backoff_factor",
                format!("{backoff_factor} must be between 1 and 100"),
            ));
        }
        let jitter = r.jitter.unwrap_or(d.jitter);
        if !(0.0..=1.0).contains(&jitter) {
            return Err(self.key_error(
                id,
                "lifecycle.restart.jitter",
                format!("{jitter} must be between 0 and 1"),
            ));
        }
        Ok(RestartPolicy {
            strategy,
            initial_delay: self.duration(
                id,
                "lifecycle.restart.initial_delay",
                r.initial_delay,
                d.initial_delay,
            )?,
            max_delay: self.duration(
                id,
                "lifecycle.restart.max_delay",
                r.max_delay,
                d.max_delay,
            )?,
            backoff_factor,
            jitter,
            max_attempts: r.max_attempts.unwrap_or(d.max_attempts),
            max_restarts: r.max_restarts.unwrap_or(d.max_restarts),
            period: self.duration(id, "lifecycle.restart.period", r.period, d.period)?,
        })
    }

    fn wasm(&self, id: &str, y: WasmYaml) -> Result<WasmEntry, ConfigError> {
        let path = self.source_path(id, &y.source)?;
        if !path.is_file() {
            return Err(self.key_error(id, "source", format!("{} does not exist", path.display())));
        }
        if let Some(method) = y.method.filter(|m| m != "run") {
            let msg = format!("'{method}': the process world has the single entry point 'run'");
            return Err(self.key_error(id, "method", msg));
        }
        let memory = self.size(id, "limits.memory", y.limits.and_then(|l| l.memory))?;
        let wasi = y.wasi.unwrap_or_default();
        let mut dirs = Vec::new();
        for d in wasi.dirs {
            let writable = match d.mode.as_str() {
                "ro" => false,
                "rw" => true,
                other => {
                    return Err(self.key_error(
                        id,
                        "wasi.dirs.mode",
                        format!("'{other}' (expected ro or rw)"),
                    ));
                }
            };
            self.path_text(id, "wasi.dirs.host", &d.host)?;
            self.path_text(id, "wasi.dirs.guest", &d.guest)?;
            let host = self.dir.join(&d.host);
            if !host.is_dir() {
                return Err(self.key_error(
                    id,
                    "wasi.dirs.host",
                    format!("{} is not a directory", host.display()),
                ));
            }
            dirs.push(WasiDir {
                host,
                guest: d.guest,
                writable,
            });
        }
        Ok(WasmEntry {
            path,
            memory,
            dirs,
            env: wasi.env.into_iter().collect(),
            network: wasi.network,
        })
    }

    fn host(&self, id: &str, y: HostYaml) -> Result<HostEntry, ConfigError> {
        let workers = y.host.as_ref().and_then(|h| h.workers);
        if let Some(n) = workers {
            crate::hosts::check_workers(n).map_err(|m| self.key_error(id, "host.workers", m))?;
        }
        let wippy_max = y.host.as_ref().and_then(|h| h.max_processes);
        if wippy_max == Some(0) {
            return Err(self.key_error(id, "host.max_processes", "must be at least 1"));
        }
        let mut limits = match y.limits {
            Some(l) => self.limits(id, l)?,
            None => Limits::default(),
        };
        limits.max_processes = limits.max_processes.or(wippy_max);
        Ok(HostEntry {
            workers,
            limits,
            allow_hosts: y.allow_hosts,
            terminal: false,
            hide_logs: false,
            grants: self.grants(id, y.grants.as_ref())?,
        })
    }

    /// Reads a `grants:` map (modules.md, "Grants").
    fn grants(
        &self,
        id: &str,
        value: Option<&Yaml>,
    ) -> Result<warren_core::grants::Grants, ConfigError> {
        crate::grants::parse(value).map_err(|(key, msg)| self.key_error(id, &key, msg))
    }

    /// A terminal host runs one program at a time (Wippy's terminal
    /// session): one worker, the default quotas.
    fn terminal(&self, id: &str, y: TerminalYaml) -> Result<HostEntry, ConfigError> {
        Ok(HostEntry {
            workers: Some(1),
            terminal: true,
            hide_logs: y.hide_logs.unwrap_or(false),
            grants: self.grants(id, y.grants.as_ref())?,
            ..HostEntry::default()
        })
    }

    fn limits(&self, id: &str, l: LimitsYaml) -> Result<Limits, ConfigError> {
        let positive = |key: &str, v: Option<Yaml>| match v {
            Some(value) => {
                let text = self.duration_text(id, key, value)?;
                warren_core::duration::parse(&text)
                    .ok()
                    .filter(|ns| *ns > 0)
                    .map(Some)
                    .ok_or_else(|| {
                        self.key_error(id, key, format!("invalid positive duration {text:?}"))
                    })
            }
            None => Ok(None),
        };
        let cpu_slice = positive("limits.cpu_slice", l.cpu_slice)?;
        let cpu_budget = positive("limits.cpu_budget", l.cpu_budget)?;
        for (key, value) in [
            ("limits.max_processes", l.max_processes),
            ("limits.mailbox_limit", l.mailbox_limit),
            ("limits.max_open_handles", l.max_open_handles),
            ("limits.max_ops_per_process", l.max_ops_per_process),
            ("limits.max_ops_per_host", l.max_ops_per_host),
            ("limits.max_handles_per_host", l.max_handles_per_host),
        ] {
            if value == Some(0) {
                return Err(self.key_error(id, key, "must be at least 1"));
            }
        }
        Ok(Limits {
            cpu_budget,
            max_processes: l.max_processes,
            memory_per_process: self.nonzero_size(
                id,
                "limits.memory_per_process",
                l.memory_per_process,
                "end every process at its first allocation",
            )?,
            memory_total: self.nonzero_size(
                id,
                "limits.memory_total",
                l.memory_total,
                "end every process of the host at its first allocation",
            )?,
            cpu_slice,
            max_message_bytes: self.nonzero_size(
                id,
                "limits.max_message_bytes",
                l.max_message_bytes,
                "fail every send and spawn",
            )?,
            mailbox_limit: l.mailbox_limit,
            max_open_handles: l.max_open_handles,
            max_ops_per_process: l.max_ops_per_process,
            max_ops_per_host: l.max_ops_per_host,
            max_handles_per_host: l.max_handles_per_host,
        })
    }
}

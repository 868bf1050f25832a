//! `env.storage.*` and `env.variable` entries (modules.md §4 "env",
//! "Entries"), read into `warren_env`'s definitions ([`EnvStorageEntry`],
//! [`EnvVariableEntry`]), and checked once every file has loaded by
//! [`warren_env::check`]: a variable's storage and a router's storages must
//! be storage entries, routers must not form a cycle, public names must be
//! `[A-Za-z0-9_]+`. A public name claimed twice is a warning. The values of
//! these entries are read as written: `${env:...}` placeholders are not
//! resolved in them (they are the source placeholders resolve against).

use serde::Deserialize;
use serde_yaml_ng::Value as Yaml;
use warren_env::{Env, EnvError, StorageKind};

use crate::index::{Ctx, describe};
use crate::{App, ConfigError, EntryKind, modes};

/// A storage entry (`env.storage.os`, `.static`, `.memory`, `.file`,
/// `.router`), as `warren_env` takes it.
pub type EnvStorageEntry = warren_env::StorageDef;

/// An `env.variable` entry, as `warren_env` takes it.
pub type EnvVariableEntry = warren_env::VariableDef;

/// `kind: env.variable`.
pub(crate) const VARIABLE: &str = "env.variable";

/// The prefix of the storage kinds.
const STORAGE_PREFIX: &str = "env.storage.";

/// The keys every storage kind has.
const COMMON_KEYS: [&str; 3] = ["name", "kind", "meta"];

/// `file_mode` when absent.
const DEFAULT_FILE_MODE: u32 = 0o644;
/// `dir_mode` when absent.
const DEFAULT_DIR_MODE: u32 = 0o755;

/// Whether `kind` is read by the env pass of loading (see `App::load`).
pub(crate) fn is_env_kind(kind: &str) -> bool {
    kind == VARIABLE || kind.starts_with(STORAGE_PREFIX)
}

/// The keys of every storage kind, besides its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageYaml {
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "kind")]
    _kind: String,
    values: Option<Yaml>,
    file_path: Option<String>,
    auto_create: Option<bool>,
    file_mode: Option<Yaml>,
    dir_mode: Option<Yaml>,
    storages: Option<Vec<String>>,
    #[serde(rename = "meta")]
    _meta: Option<Yaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariableYaml {
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "kind")]
    _kind: String,
    variable: Option<String>,
    storage: String,
    default: Option<Yaml>,
    readonly: Option<bool>,
    #[serde(rename = "meta")]
    _meta: Option<Yaml>,
}

impl Ctx<'_> {
    /// Reads an `env.storage.*` entry.
    pub(crate) fn env_storage(
        &self,
        id: &str,
        kind: &str,
        yaml: &Yaml,
    ) -> Result<EnvStorageEntry, ConfigError> {
        self.storage_keys(id, kind, yaml)?;
        let y: StorageYaml = self.parse(id, yaml)?;
        let kind = match kind {
            "env.storage.os" => StorageKind::Os,
            "env.storage.memory" => StorageKind::Memory,
            "env.storage.static" => StorageKind::Static(self.static_values(id, y.values)?),
            "env.storage.file" => self.file_storage(id, &y)?,
            "env.storage.router" => StorageKind::Router(self.router(id, y.storages)?),
            other => {
                let msg = format!(
                    "unknown kind '{other}' (env storages are env.storage.os, \
                     env.storage.static, env.storage.memory, env.storage.file and \
                     env.storage.router)"
                );
                return Err(self.key_error(id, "kind", msg));
            }
        };
        Ok(EnvStorageEntry {
            id: id.to_owned(),
            kind,
        })
    }

    /// Refuses a key the storage kind does not have (the YAML struct holds
    /// the keys of every kind, so serde alone would accept them all).
    fn storage_keys(&self, id: &str, kind: &str, yaml: &Yaml) -> Result<(), ConfigError> {
        let own: &[&str] = match kind {
            "env.storage.static" => &["values"],
            "env.storage.file" => &["file_path", "auto_create", "file_mode", "dir_mode"],
            "env.storage.router" => &["storages"],
            _ => &[],
        };
        for key in yaml.as_mapping().into_iter().flatten().map(|(k, _)| k) {
            let name = key.as_str().unwrap_or_default();
            if !COMMON_KEYS.contains(&name) && !own.contains(&name) {
                let expected = COMMON_KEYS.iter().chain(own).copied().collect::<Vec<_>>();
                let msg = format!(
                    "unknown key for {kind} (expected one of {})",
                    expected.join(", ")
                );
                return Err(self.key_error(id, name, msg));
            }
        }
        Ok(())
    }

    /// `values:` of a static storage: a map of names to strings (numbers
    /// and booleans read as their text).
    fn static_values(
        &self,
        id: &str,
        values: Option<Yaml>,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        let map = match values {
            None | Some(Yaml::Null) => return Ok(Vec::new()),
            Some(Yaml::Mapping(map)) => map,
            Some(other) => {
                let msg = format!(
                    "expected a map of names to values, found {}",
                    describe(&other)
                );
                return Err(self.key_error(id, "values", msg));
            }
        };
        let mut out = Vec::new();
        for (key, value) in map {
            let Some(key) = key.as_str().map(str::to_owned) else {
                let msg = format!("a name must be a string, found {}", describe(&key));
                return Err(self.key_error(id, "values", msg));
            };
            let text = scalar_text(&value).ok_or_else(|| {
                let msg = format!("expected a string, found {}", describe(&value));
                self.key_error(id, &format!("values.{key}"), msg)
            })?;
            out.push((key, text));
        }
        Ok(out)
    }

    fn file_storage(&self, id: &str, y: &StorageYaml) -> Result<StorageKind, ConfigError> {
        let Some(path) = y.file_path.as_deref() else {
            return Err(self.key_error(id, "file_path", "missing: the file's path"));
        };
        if path.trim().is_empty() {
            return Err(self.key_error(id, "file_path", "must not be empty"));
        }
        self.path_text(id, "file_path", path)?;
        let mode = |key: &str, value: Option<&Yaml>, default| {
            modes::parse_or(value, default).map_err(|msg| self.key_error(id, key, msg))
        };
        let file_mode = mode("file_mode", y.file_mode.as_ref(), DEFAULT_FILE_MODE)?;
        if file_mode & 0o600 != 0o600 {
            let msg = format!("{file_mode:04o}: the owner must be able to read and write (0600)");
            return Err(self.key_error(id, "file_mode", msg));
        }
        let dir_mode = mode("dir_mode", y.dir_mode.as_ref(), DEFAULT_DIR_MODE)?;
        if dir_mode & 0o700 != 0o700 {
            let msg = format!("{dir_mode:04o}: the owner must be able to enter and write (0700)");
            return Err(self.key_error(id, "dir_mode", msg));
        }
        Ok(StorageKind::File {
            path: self.root.join(path),
            auto_create: y.auto_create.unwrap_or(false),
            file_mode,
            dir_mode,
        })
    }

    fn router(&self, id: &str, storages: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
        match storages {
            Some(list) if !list.is_empty() => Ok(list),
            _ => {
                let msg = "missing: the storage ids to read in turn (writes go to the first)";
                Err(self.key_error(id, "storages", msg))
            }
        }
    }

    /// Reads an `env.variable` entry.
    pub(crate) fn env_variable(
        &self,
        id: &str,
        yaml: &Yaml,
    ) -> Result<EnvVariableEntry, ConfigError> {
        let y: VariableYaml = self.parse(id, yaml)?;
        if let Some(name) = y
            .variable
            .as_deref()
            .filter(|n| !warren_env::is_public_name(n))
        {
            let msg = format!("{name:?} is not a public name (letters, digits and '_')");
            return Err(self.key_error(id, "variable", msg));
        }
        let default = match &y.default {
            None | Some(Yaml::Null) => None,
            Some(value) => Some(scalar_text(value).ok_or_else(|| {
                let msg = format!("expected a string, found {}", describe(value));
                self.key_error(id, "default", msg)
            })?),
        };
        Ok(EnvVariableEntry {
            id: id.to_owned(),
            variable: y.variable,
            storage: y.storage,
            default,
            readonly: y.readonly.unwrap_or(false),
        })
    }
}

/// A string, number or boolean as text.
fn scalar_text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl App {
    /// The env storage entries.
    pub fn env_storages(&self) -> impl Iterator<Item = &EnvStorageEntry> {
        self.entries.values().filter_map(|e| match &e.kind {
            EntryKind::EnvStorage(s) => Some(s),
            _ => None,
        })
    }

    /// The `env.variable` entries, in load order (files in path order,
    /// entries in file order): the first to claim a public name keeps it.
    pub fn env_variables(&self) -> impl Iterator<Item = &EnvVariableEntry> {
        self.variable_order
            .iter()
            .filter_map(|id| match self.kind_of(id) {
                Some(EntryKind::EnvVariable(v)) => Some(v),
                _ => None,
            })
    }

    /// The declared variables, for resolving placeholders at load; `None`
    /// when they do not check (their problems are reported by
    /// [`App::check_env`]).
    pub(crate) fn env_for_load(&self) -> Option<Env> {
        let storages = self.env_storages().cloned().collect();
        let variables = self.env_variables().cloned().collect();
        Env::new(storages, variables).ok()
    }

    /// Checks the env entries together, reporting errors with the entry's
    /// file and key, and shared public names as warnings.
    pub(crate) fn check_env(&mut self, problems: &mut Vec<ConfigError>) {
        let storages: Vec<_> = self.env_storages().cloned().collect();
        let variables: Vec<_> = self.env_variables().cloned().collect();
        let checked = warren_env::check(&storages, &variables);
        for err in &checked.errors {
            problems.push(self.env_problem(err));
        }
        for warning in &checked.warnings {
            let text = self.env_problem(warning).to_string();
            self.warnings.push(text);
        }
    }

    /// An env problem as a configuration error: the storage an id names is
    /// described by what that id is in the application.
    fn env_problem(&self, err: &EnvError) -> ConfigError {
        let reason = match err {
            EnvError::UnknownStorage { storage, .. }
            | EnvError::UnknownRouterStorage { storage, .. } => match self.kind_of(storage) {
                Some(kind) => format!(
                    "'{storage}' is a {} entry, not an env.storage.* entry",
                    kind.name()
                ),
                None => format!(
                    "no entry '{storage}' in this application (expected an env.storage.* entry)"
                ),
            },
            other => other.reason(),
        };
        let entry = err.entry();
        ConfigError::Key {
            file: self
                .entries
                .get(entry)
                .map(|e| e.file.clone())
                .unwrap_or_default(),
            entry: entry.to_owned(),
            key: err.key(),
            message: reason,
        }
    }
}

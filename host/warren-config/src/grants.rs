//! The `grants:` of Lua process entries and hosts (modules.md, "Grants"):
//! reading the map of action → patterns, and checking, once every file has
//! loaded, that a literal entry id a grant names is an entry of the kind its
//! action reaches.

use serde_yaml_ng::Value as Yaml;
use warren_core::grants::{self, Grants};

use crate::index::describe;
use crate::{App, ConfigError, EntryKind};

/// Reads a `grants:` value. An error is the key at fault
/// (`grants` or `grants.<action>`) and what is wrong with it.
pub(crate) fn parse(value: Option<&Yaml>) -> Result<Grants, (String, String)> {
    let mut out = Grants::new();
    let map = match value {
        None | Some(Yaml::Null) => return Ok(out),
        Some(Yaml::Mapping(map)) => map,
        Some(other) => {
            let msg = format!(
                "expected a map of actions to lists of patterns, found {}",
                describe(other)
            );
            return Err(("grants".into(), msg));
        }
    };
    for (action, patterns) in map {
        let Some(action) = action.as_str() else {
            let msg = format!("an action must be a string, found {}", describe(action));
            return Err(("grants".into(), msg));
        };
        let key = format!("grants.{action}");
        if !grants::is_action(action) {
            let msg = format!(
                "unknown action '{action}' (known: {})",
                grants::ACTIONS.join(", ")
            );
            return Err((key, msg));
        }
        let list = match patterns {
            Yaml::Null => continue,
            Yaml::Sequence(list) => list,
            other => {
                let msg = format!(
                    "expected a list of patterns (e.g. [\"app:*\"]), found {}",
                    describe(other)
                );
                return Err((key, msg));
            }
        };
        for (i, pattern) in list.iter().enumerate() {
            let Some(pattern) = pattern.as_str() else {
                let msg = format!(
                    "pattern {} is {}, not a string (quote it)",
                    i + 1,
                    describe(pattern)
                );
                return Err((key, msg));
            };
            out.add(action, pattern)
                .map_err(|err| (key.clone(), err.to_string()))?;
        }
    }
    Ok(out)
}

impl App {
    /// Every literal entry id granted for an action that reaches entries
    /// (`db.get`, `fs.get`, `env.*`, `funcs.call`) names an entry of the
    /// right kind. Globs are not checked, nor `env.*` patterns without `:`
    /// (public variable names, not ids).
    pub(crate) fn check_grants(&self, problems: &mut Vec<ConfigError>) {
        for (id, entry) in &self.entries {
            let granted = match &entry.kind {
                EntryKind::Lua(lua) => &lua.grants,
                EntryKind::Host(host) => &host.grants,
                _ => continue,
            };
            for (action, pattern) in granted.iter() {
                let Some(kinds) = grants::entry_kinds(action) else {
                    continue;
                };
                let is_env = matches!(action, grants::ENV_GET | grants::ENV_SET);
                if pattern.contains('*') || (is_env && !pattern.contains(':')) {
                    continue;
                }
                let expected = kinds.join(" or ");
                let msg = match self.kind_of(pattern).map(EntryKind::name) {
                    Some(kind) if kinds.contains(&kind) => continue,
                    Some(kind) => {
                        format!("'{pattern}' is a {kind} entry, not a {expected} entry")
                    }
                    None => format!(
                        "no entry '{pattern}' in this application (expected a {expected} entry)"
                    ),
                };
                problems.push(ConfigError::Key {
                    file: entry.file.clone(),
                    entry: id.clone(),
                    key: format!("grants.{action}"),
                    message: msg,
                });
            }
        }
    }
}

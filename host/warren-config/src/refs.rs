//! Checks across entries, made once every file has loaded: what services,
//! hosts and imports name must exist and be of the right kind, and neither
//! service dependencies nor library imports may form a cycle.

use std::collections::{BTreeMap, BTreeSet};

use crate::{App, ConfigError, EntryKind, LuaEntry};

/// What a reference to a missing host reads as.
const NOT_A_HOST: &str =
    "is not a process.host entry of this application (nor a terminal.host entry)";

/// The edges of a graph of entry ids.
type Edges<'a> = dyn Fn(&str) -> Vec<String> + 'a;

impl App {
    pub(crate) fn kind_of(&self, id: &str) -> Option<&EntryKind> {
        self.entries.get(id).map(|e| &e.kind)
    }

    fn key_error(&self, id: &str, key: &str, message: String) -> ConfigError {
        ConfigError::Key {
            file: self.entries[id].file.clone(),
            entry: id.to_owned(),
            key: key.to_owned(),
            message,
        }
    }

    pub(crate) fn check_references(&self, problems: &mut Vec<ConfigError>) {
        self.check_services(problems);
        self.check_allow_hosts(problems);
        self.check_imports(problems);
        self.check_grants(problems);
        if !problems.is_empty() {
            return;
        }
        let requires = |id: &str| match self.kind_of(id) {
            Some(EntryKind::Service(svc)) => svc.requires.clone(),
            _ => Vec::new(),
        };
        let services: Vec<&str> = self.services().map(|(id, _)| id).collect();
        if let Some(cycle) = find_cycle(&services, &requires) {
            let msg = format!("dependency cycle: {}", cycle.join(" -> "));
            problems.push(self.key_error(&cycle[0], "lifecycle.requires", msg));
        }
        let imports = |id: &str| {
            self.kind_of(id)
                .and_then(EntryKind::imports)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default()
        };
        let libraries: Vec<&str> = self.libraries().map(|(id, _)| id).collect();
        if let Some(cycle) = find_cycle(&libraries, &imports) {
            let msg = format!("import cycle: {}", cycle.join(" -> "));
            problems.push(self.key_error(&cycle[0], "imports", msg));
        }
    }

    fn check_services(&self, problems: &mut Vec<ConfigError>) {
        for (id, svc) in self.services() {
            if !matches!(
                self.kind_of(&svc.process),
                Some(EntryKind::Wasm(_)) | Some(EntryKind::Lua(LuaEntry { pool: None, .. }))
            ) {
                let msg = format!(
                    "'{}' is not a process entry of this application",
                    svc.process
                );
                problems.push(self.key_error(id, "process", msg));
            }
            if !matches!(self.kind_of(&svc.host), Some(EntryKind::Host(_))) {
                let msg = format!("'{}' {NOT_A_HOST}", svc.host);
                problems.push(self.key_error(id, "host", msg));
            }
            for dep in &svc.requires {
                if !matches!(self.kind_of(dep), Some(EntryKind::Service(_))) {
                    let msg = format!("'{dep}' is not a process.service entry");
                    problems.push(self.key_error(id, "lifecycle.requires", msg));
                }
            }
        }
    }

    fn check_allow_hosts(&self, problems: &mut Vec<ConfigError>) {
        for (id, host) in self.hosts() {
            for other in host.allow_hosts.iter().flatten() {
                if !matches!(self.kind_of(other), Some(EntryKind::Host(_))) {
                    let msg = format!("'{other}' {NOT_A_HOST}");
                    problems.push(self.key_error(id, "allow_hosts", msg));
                }
            }
        }
    }

    /// Every import names a `library.lua` entry.
    fn check_imports(&self, problems: &mut Vec<ConfigError>) {
        for (id, entry) in &self.entries {
            let imports: &BTreeMap<String, String> = match entry.kind.imports() {
                Some(imports) => imports,
                None => continue,
            };
            for (alias, target) in imports {
                let found = self.kind_of(target).map(EntryKind::name);
                if found == Some("library.lua") {
                    continue;
                }
                let what = match found {
                    Some(kind) => format!("a {kind} entry"),
                    None => "not an entry of this application".to_owned(),
                };
                let msg = format!("'{target}' is {what}; only library.lua entries can be imported");
                problems.push(self.key_error(id, &format!("imports.{alias}"), msg));
            }
        }
    }
}

/// A cycle reachable from `roots` along `edges`, as the ids along it (the
/// first repeated at the end).
fn find_cycle(roots: &[&str], edges: &Edges<'_>) -> Option<Vec<String>> {
    let mut done = BTreeSet::new();
    for root in roots {
        let mut path = Vec::new();
        if let Some(cycle) = visit(root, edges, &mut done, &mut path) {
            return Some(cycle);
        }
    }
    None
}

fn visit(
    id: &str,
    edges: &Edges<'_>,
    done: &mut BTreeSet<String>,
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
    for next in edges(id) {
        if let Some(cycle) = visit(&next, edges, done, path) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(id.to_owned());
    None
}

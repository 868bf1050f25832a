//! Validation of storage and variable definitions, all problems at once:
//! ids and public names well formed and unique, every storage a variable
//! or a router names declared, routers non-empty and free of cycles, static
//! values within [`crate::MAX_VALUE_BYTES`]. Two variables claiming one
//! public name are a warning: the first keeps it.

use std::collections::{HashMap, HashSet};

use crate::names::{is_entry_id, is_public_name};
use crate::{EnvError, MAX_VALUE_BYTES, StorageDef, StorageKind, VariableDef};

/// The problems found in a set of definitions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// What makes the definitions unusable.
    pub errors: Vec<EnvError>,
    /// What works but is likely a mistake ([`EnvError::SharedName`]).
    pub warnings: Vec<EnvError>,
}

/// Checks `storages` and `variables` (in load order).
pub fn check(storages: &[StorageDef], variables: &[VariableDef]) -> Checked {
    let mut out = Checked::default();
    let ids: Vec<&str> = storages.iter().map(|s| s.id.as_str()).collect();
    check_ids(&ids, &mut out.errors);
    let declared: HashSet<&str> = ids.iter().copied().collect();
    for storage in storages {
        check_storage(storage, &declared, &mut out.errors);
    }
    if let Some(cycle) = router_cycle(storages) {
        let entry = cycle[0].clone();
        out.errors.push(EnvError::RouterCycle { entry, cycle });
    }
    let ids: Vec<&str> = variables.iter().map(|v| v.id.as_str()).collect();
    check_ids(&ids, &mut out.errors);
    let mut owners: HashMap<&str, &str> = HashMap::new();
    for var in variables {
        check_variable(var, &declared, &mut out.errors);
        let Some(name) = var.variable.as_deref().filter(|n| is_public_name(n)) else {
            continue;
        };
        match owners.get(name) {
            Some(first) => out.warnings.push(EnvError::SharedName {
                entry: var.id.clone(),
                name: name.to_owned(),
                first: (*first).to_owned(),
            }),
            None => {
                owners.insert(name, &var.id);
            }
        }
    }
    out
}

/// Each id well formed and given once.
fn check_ids(ids: &[&str], errors: &mut Vec<EnvError>) {
    let mut seen = HashSet::new();
    for id in ids {
        if !is_entry_id(id) {
            errors.push(EnvError::BadId {
                entry: (*id).to_owned(),
            });
        } else if !seen.insert(*id) {
            errors.push(EnvError::DuplicateId {
                entry: (*id).to_owned(),
            });
        }
    }
}

fn check_storage(storage: &StorageDef, declared: &HashSet<&str>, errors: &mut Vec<EnvError>) {
    let entry = || storage.id.clone();
    match &storage.kind {
        StorageKind::Router(list) if list.is_empty() => {
            errors.push(EnvError::EmptyRouter { entry: entry() });
        }
        StorageKind::Router(list) => {
            for target in list.iter().filter(|t| !declared.contains(t.as_str())) {
                errors.push(EnvError::UnknownRouterStorage {
                    entry: entry(),
                    storage: target.clone(),
                });
            }
        }
        StorageKind::Static(values) => {
            for (key, value) in values.iter().filter(|(_, v)| v.len() > MAX_VALUE_BYTES) {
                errors.push(EnvError::BadStaticValue {
                    entry: entry(),
                    key: key.clone(),
                    reason: format!(
                        "{} bytes, more than the limit of {MAX_VALUE_BYTES}",
                        value.len()
                    ),
                });
            }
        }
        StorageKind::Os | StorageKind::Memory | StorageKind::File { .. } => {}
    }
}

fn check_variable(var: &VariableDef, declared: &HashSet<&str>, errors: &mut Vec<EnvError>) {
    if let Some(name) = var.variable.as_deref().filter(|n| !is_public_name(n)) {
        errors.push(EnvError::BadName {
            entry: var.id.clone(),
            name: name.to_owned(),
        });
    }
    if !declared.contains(var.storage.as_str()) {
        errors.push(EnvError::UnknownStorage {
            entry: var.id.clone(),
            storage: var.storage.clone(),
        });
    }
}

/// A cycle of routers, as the ids along it (the first repeated at the end).
fn router_cycle(storages: &[StorageDef]) -> Option<Vec<String>> {
    let routes: HashMap<&str, &[String]> = storages
        .iter()
        .filter_map(|s| match &s.kind {
            StorageKind::Router(list) => Some((s.id.as_str(), list.as_slice())),
            _ => None,
        })
        .collect();
    let mut done = HashSet::new();
    storages.iter().find_map(|s| {
        let mut path = Vec::new();
        visit(&s.id, &routes, &mut done, &mut path)
    })
}

fn visit<'a>(
    id: &'a str,
    routes: &HashMap<&str, &'a [String]>,
    done: &mut HashSet<&'a str>,
    path: &mut Vec<&'a str>,
) -> Option<Vec<String>> {
    if let Some(start) = path.iter().position(|p| *p == id) {
        let mut cycle: Vec<String> = path[start..].iter().map(|p| (*p).to_owned()).collect();
        cycle.push(id.to_owned());
        return Some(cycle);
    }
    if done.contains(id) {
        return None;
    }
    path.push(id);
    for next in routes.get(id).copied().unwrap_or_default() {
        if let Some(cycle) = visit(next, routes, done, path) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(id);
    None
}

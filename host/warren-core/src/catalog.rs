//! The application's entries as processes may read them (the `registry`
//! module): id, kind, free-form `meta` and the rest of the entry's
//! configuration as `data`. Read-only and fixed when the runtime starts;
//! the values are plain data, bounded by the configuration they came from.

use crate::value::Value;

/// One declared entry.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryInfo {
    /// `<namespace>:<name>`.
    pub id: String,
    /// Its `kind:` (`process.lua`, `library.lua`, ...).
    pub kind: String,
    /// Its `meta:` map (an empty map when it has none).
    pub meta: Value,
    /// Its other configuration keys (without `name`, `kind` and `meta`).
    pub data: Value,
}

//! What `stat` reports about a file or directory, and its language-neutral
//! form.
//!
//! A [`Stat`] holds only the fields of the `fs` contract (name, size,
//! permission bits, modification time, directory or not): nothing about the
//! host (no inode, owner or host path) reaches a process through it.

use std::time::{SystemTime, UNIX_EPOCH};

use cap_std::fs::{Metadata, PermissionsExt};
use warren_core::Value;

/// The `fs.type` of a directory.
pub const TYPE_DIR: &str = "directory";
/// The `fs.type` of anything else.
pub const TYPE_FILE: &str = "file";

/// What `vol:stat` and `file:stat` return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The last name of the path (`/` for the volume root).
    pub name: String,
    /// The size in bytes.
    pub size: u64,
    /// The permission bits (`0o644`), without the file type.
    pub mode: u32,
    /// The last modification, in Unix seconds (0 if the host cannot tell).
    pub modified: i64,
    /// Whether it is a directory.
    pub is_dir: bool,
}

impl Stat {
    /// The stat of `name` from the host's metadata.
    pub(crate) fn from_metadata(name: &str, meta: &Metadata) -> Stat {
        Stat {
            name: name.to_string(),
            size: meta.len(),
            mode: meta.permissions().mode() & 0o7777,
            modified: meta
                .modified()
                .map(|t| unix_seconds(t.into_std()))
                .unwrap_or(0),
            is_dir: meta.is_dir(),
        }
    }

    /// The `fs.type` string: [`TYPE_DIR`] or [`TYPE_FILE`].
    pub fn type_name(&self) -> &'static str {
        if self.is_dir { TYPE_DIR } else { TYPE_FILE }
    }

    /// The table a process sees:
    /// `{name, size, mode, modified, is_dir, type}`.
    pub fn to_value(&self) -> Value {
        let field = |k: &str, v: Value| (Value::str(k), v);
        Value::Map(vec![
            field("name", Value::str(self.name.as_str())),
            field(
                "size",
                Value::Int(i64::try_from(self.size).unwrap_or(i64::MAX)),
            ),
            field("mode", Value::Int(i64::from(self.mode))),
            field("modified", Value::Int(self.modified)),
            field("is_dir", Value::Bool(self.is_dir)),
            field("type", Value::str(self.type_name())),
        ])
    }
}

/// `t` in whole seconds since the Unix epoch (negative before it).
fn unix_seconds(t: SystemTime) -> i64 {
    let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => secs(after),
        Err(before) => -secs(before.duration()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_on_both_sides_of_the_epoch() {
        let d = std::time::Duration::from_secs(90);
        assert_eq!(unix_seconds(UNIX_EPOCH + d), 90);
        assert_eq!(unix_seconds(UNIX_EPOCH - d), -90);
    }
}

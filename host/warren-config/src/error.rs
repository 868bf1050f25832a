//! Configuration errors: each names the file, and the entry and key where
//! there is one.

use std::path::PathBuf;

/// A problem in an application folder.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The folder has no `_index.yaml`.
    #[error("{}: no _index.yaml found in this folder or below", .0.display())]
    NoIndex(PathBuf),
    /// A file or folder could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file could not be read within its bound, or is no regular file.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: warren_core::readfile::ReadError,
    },
    /// The file is not valid YAML or misses top-level keys.
    #[error("{}: {message}", file.display())]
    File {
        /// The `_index.yaml`.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An entry is malformed.
    #[error("{}: entry '{entry}': {message}", file.display())]
    Entry {
        /// The `_index.yaml`.
        file: PathBuf,
        /// The entry id (or its position when it has no name).
        entry: String,
        /// What is wrong.
        message: String,
    },
    /// One key of an entry is wrong.
    #[error("{}: entry '{entry}': key '{key}': {message}", file.display())]
    Key {
        /// The `_index.yaml`.
        file: PathBuf,
        /// The entry id.
        entry: String,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Two entries share an id (the key at fault is the later one's `name`).
    #[error(
        "{}: entry '{id}': key 'name': duplicate entry id '{id}' (first declared in {})",
        file.display(),
        first.display()
    )]
    Duplicate {
        /// The later file.
        file: PathBuf,
        /// The id.
        id: String,
        /// Where it was first declared.
        first: PathBuf,
    },
}

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
    #[error("{}: {}", file.display(), Cut(message))]
    File {
        /// The `_index.yaml`.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An entry is malformed.
    #[error("{}: entry '{}': {}", file.display(), Cut(entry), Cut(message))]
    Entry {
        /// The `_index.yaml`.
        file: PathBuf,
        /// The entry id (or its position when it has no name).
        entry: String,
        /// What is wrong.
        message: String,
    },
    /// One key of an entry is wrong.
    #[error("{}: entry '{}': key '{}': {}", file.display(), Cut(entry), Cut(key), Cut(message))]
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

/// The most bytes of one message (or name) a configuration error shows:
/// messages quote the values they refuse, and a 10 MB scalar made a 10 MB
/// error line.
pub const MAX_SHOWN: usize = 1024;

/// Shows a text cut to [`MAX_SHOWN`] bytes (at a character boundary),
/// saying how long it was.
struct Cut<'a>(&'a str);

impl std::fmt::Display for Cut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0;
        if text.len() <= MAX_SHOWN {
            return f.write_str(text);
        }
        let mut end = MAX_SHOWN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}... ({} bytes in all)", &text[..end], text.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_is_cut_at_a_character_boundary_with_its_length() {
        let message = "é".repeat(MAX_SHOWN);
        let err = ConfigError::File {
            file: PathBuf::from("app/_index.yaml"),
            message: message.clone(),
        };
        let text = err.to_string();
        assert!(text.starts_with("app/_index.yaml: éé"), "{text}");
        assert!(
            text.ends_with(&format!("... ({} bytes in all)", message.len())),
            "{text}"
        );
        assert!(text.len() < MAX_SHOWN + 64, "{} bytes", text.len());
        let short = ConfigError::File {
            file: PathBuf::from("f"),
            message: "short".into(),
        };
        assert_eq!(short.to_string(), "f: short");
    }
}

//! `env.storage.file`: `KEY=VALUE` lines, `#` comments, no quoting.
//!
//! Guarantees: a reader never sees a half-written file (a write goes to a
//! temporary file in the same folder, synced, then renamed over the file,
//! with `file_mode`); concurrent writes through one [`FileStore`] never lose
//! each other's updates (a write holds the store's lock from reading the
//! file to the rename, and only then); reads take no lock. The file is
//! bounded ([`MAX_FILE_BYTES`], [`MAX_FILE_KEYS`]), so neither a large file
//! on disk nor a tenant with `env.set` makes Warren read or write without
//! limit. Keys and values are trimmed of surrounding whitespace when read.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use warren_core::readfile::{ReadError, read_text_bounded};
use warren_core::{ErrorKind, ProcError};

/// Bytes a storage file may hold. Every read parses the whole file, so a
/// file of gigabytes (put there by mistake, or grown by writes) would make
/// each `env.get` slow and large; a write that would pass it fails with
/// `RATE_LIMITED`, a read of a larger file with `INTERNAL`.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// `KEY=VALUE` lines a storage file may hold; a write adding one more fails
/// with `RATE_LIMITED`.
pub const MAX_FILE_KEYS: usize = 4096;

/// Numbers the temporary files of concurrent writes of this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file storage.
#[derive(Debug)]
pub(crate) struct FileStore {
    path: PathBuf,
    auto_create: bool,
    file_mode: u32,
    dir_mode: u32,
    /// Held by a write from reading the file to renaming the new one.
    write: Mutex<()>,
}

impl FileStore {
    /// A store of `path`; nothing is touched on disk.
    pub(crate) fn new(path: PathBuf, auto_create: bool, file_mode: u32, dir_mode: u32) -> Self {
        FileStore {
            path,
            auto_create,
            file_mode: file_mode & 0o777,
            dir_mode: dir_mode & 0o777,
            write: Mutex::new(()),
        }
    }

    /// Creates the file (with exactly `file_mode`) and its folder (with
    /// `dir_mode`, less the umask) if it is missing and `auto_create` is set.
    pub(crate) fn prepare(&self) -> Result<(), ProcError> {
        if !self.auto_create || self.path.exists() {
            return Ok(());
        }
        self.create_dir()?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(self.file_mode)
            .open(&self.path)
            .map_err(|e| self.io("create", &e))?;
        // Exactly `file_mode`, whatever the umask.
        file.set_permissions(Permissions::from_mode(self.file_mode))
            .map_err(|e| self.io("set the mode of", &e))
    }

    /// The value at `key` (the last line for it wins), if any. A missing
    /// file holds nothing.
    pub(crate) fn get(&self, key: &str) -> Result<Option<String>, ProcError> {
        let text = self.read()?.unwrap_or_default();
        Ok(parse(&text)
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v.to_owned()))
    }

    /// Stores `value` at `key`, rewriting the file atomically.
    pub(crate) fn set(&self, key: &str, value: &str) -> Result<(), ProcError> {
        check_entry(key, value)?;
        let _guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let text = match self.read()? {
            Some(text) => text,
            None if self.auto_create => {
                self.create_dir()?;
                String::new()
            }
            None => {
                let msg = format!(
                    "{} does not exist (auto_create is off)",
                    self.path.display()
                );
                return Err(ProcError::new(ErrorKind::NotFound, msg));
            }
        };
        let text = rewrite(&text, key, value)?;
        self.replace(text.as_bytes())
    }

    /// The file's text, `None` when it does not exist.
    fn read(&self) -> Result<Option<String>, ProcError> {
        match read_text_bounded(&self.path, MAX_FILE_BYTES) {
            Ok(text) => Ok(Some(text)),
            Err(ReadError::NotFound) => Ok(None),
            Err(e) => {
                let msg = format!("{}: {e}", self.path.display());
                Err(ProcError::new(ErrorKind::Internal, msg))
            }
        }
    }

    fn create_dir(&self) -> Result<(), ProcError> {
        let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) else {
            return Ok(());
        };
        DirBuilder::new()
            .recursive(true)
            .mode(self.dir_mode)
            .create(dir)
            .map_err(|e| self.io("create the folder of", &e))
    }

    /// Writes `bytes` to a temporary file beside the file, then renames it
    /// over the file.
    fn replace(&self, bytes: &[u8]) -> Result<(), ProcError> {
        let temp = self.temp_path();
        let written = write_new(&temp, bytes, self.file_mode)
            .and_then(|()| std::fs::rename(&temp, &self.path));
        written.map_err(|e| {
            // Best effort: the temporary file may not exist.
            let _ = std::fs::remove_file(&temp);
            self.io("write", &e)
        })
    }

    fn temp_path(&self) -> PathBuf {
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = format!(".{name}.{}.{n}.tmp", std::process::id());
        self.path.with_file_name(temp)
    }

    fn io(&self, what: &str, err: &std::io::Error) -> ProcError {
        let msg = format!("cannot {what} {}: {err}", self.path.display());
        ProcError::new(ErrorKind::Internal, msg)
    }
}

/// Creates `path` (which must not exist) holding `bytes`, with exactly
/// `mode` (whatever the umask), synced to disk.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// `INVALID` for a key or value a line cannot hold.
fn check_entry(key: &str, value: &str) -> Result<(), ProcError> {
    if key.contains(['=', '\n', '\r', '\0']) || key.trim() != key || key.starts_with('#') {
        let msg = format!("{key:?} cannot be a key of a file storage");
        return Err(ProcError::new(ErrorKind::Invalid, msg));
    }
    if value.contains(['\n', '\r', '\0']) {
        let msg = "a file storage's value cannot hold a NUL byte or a line break";
        return Err(ProcError::new(ErrorKind::Invalid, msg));
    }
    Ok(())
}

/// The `(key, value)` pairs of a file's text, in order. Blank lines,
/// comments and lines without `=` are skipped.
fn parse(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().filter_map(pair)
}

/// The key and value of one line, if it holds a pair.
fn pair(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    if line.starts_with('#') {
        return None;
    }
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty()).then(|| (key, value.trim()))
}

/// `text` with `key` set to `value`: its first line replaced (later lines
/// for it dropped), or a line appended; comments and other lines kept.
fn rewrite(text: &str, key: &str, value: &str) -> Result<String, ProcError> {
    let mut out = String::with_capacity(text.len() + key.len() + value.len() + 2);
    let (mut found, mut keys) = (false, 0);
    for line in text.lines() {
        match pair(line) {
            Some((k, _)) if k == key && found => continue,
            Some((k, _)) if k == key => {
                found = true;
                keys += 1;
                push_line(&mut out, &format!("{key}={value}"));
            }
            Some(_) => {
                keys += 1;
                push_line(&mut out, line);
            }
            None => push_line(&mut out, line),
        }
    }
    if !found {
        keys += 1;
        push_line(&mut out, &format!("{key}={value}"));
    }
    if keys > MAX_FILE_KEYS {
        let msg = format!("the storage file would hold more than {MAX_FILE_KEYS} keys");
        return Err(ProcError::new(ErrorKind::RateLimited, msg));
    }
    if out.len() > MAX_FILE_BYTES {
        let msg = format!("the storage file would exceed {MAX_FILE_BYTES} bytes");
        return Err(ProcError::new(ErrorKind::RateLimited, msg));
    }
    Ok(out)
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::{parse, rewrite};

    #[test]
    fn parses_pairs_skipping_comments_and_junk() {
        let text = "# c\n\nA=1\n  B = two words  \nnot a pair\n=x\nC=a=b\r\n";
        let pairs: Vec<_> = parse(text).collect();
        assert_eq!(pairs, [("A", "1"), ("B", "two words"), ("C", "a=b")]);
    }

    #[test]
    fn rewrites_in_place_and_appends() {
        let text = "# keep\nA=1\nB=2\nA=3\n";
        assert_eq!(rewrite(text, "A", "x").expect("fits"), "# keep\nA=x\nB=2\n");
        assert_eq!(rewrite("B=2", "A", "x").expect("fits"), "B=2\nA=x\n");
    }
}

//! A volume: one directory of the host that processes reach through `fs`.
//!
//! The root is opened once as a cap-std [`Dir`]; every operation resolves
//! its (lexically normalised) path beneath that handle, on Linux with
//! `openat2(RESOLVE_BENEATH)`, elsewhere by cap-std's component-by-component
//! walk. So no path, symbolic link (absolute, `..`-bearing, chained or
//! looping) or rename racing with a lookup reaches outside the root: an
//! escape fails with `PERMISSION_DENIED`. The volume's mode is checked
//! before each operation, and the API has no call that creates links.

use std::path::Path;
use std::sync::Arc;

use cap_std::ambient_authority;
use cap_std::fs::{
    Dir, DirBuilder, DirBuilderExt, DirEntry, Metadata, OpenOptions, OpenOptionsExt,
};
use warren_core::{ErrorKind, ProcError};

use crate::error::{invalid, io_error, over_limit};
use crate::file::File;
use crate::modes::{OpenMode, WriteMode};
use crate::path::{ROOT, absolute, base_name, names_directory, normalize};
use crate::stat::Stat;

/// Most entries one `readdir` lists, whatever the caller allows. Prevents a
/// directory of millions of names from being materialised in one call.
pub const MAX_DIR_ENTRIES: usize = 65_536;

/// Most bytes one `readfile` returns, whatever the caller allows. Prevents
/// one call from materialising a huge (or sparse) file in host memory.
pub const MAX_READ_FILE: usize = 1 << 30;

/// Most bytes reserved up front by `readfile`, whatever size the file
/// claims: a file that lies about (or changes) its size costs only what is
/// actually read.
pub const MAX_PREALLOC: usize = 1 << 20;

/// Permission bits of a new file, before the volume's mode masks them.
pub const NEW_FILE_MODE: u32 = 0o644;

/// Permission bits of a new directory, before the volume's mode masks them.
pub const NEW_DIR_MODE: u32 = 0o755;

/// What an operation needs from the volume's mode.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// A directory shared by every process granted it.
#[derive(Debug)]
pub struct Volume {
    id: String,
    dir: Dir,
    mode: u32,
}

impl Volume {
    /// Opens the volume `id` rooted at `root` with `mode` (octal permission
    /// bits, at most `0o777`; read bits without execute bits get execute
    /// added, as in Wippy). `auto_init` creates the root and its parents.
    pub fn open(
        id: &str,
        root: &Path,
        mode: u32,
        auto_init: bool,
    ) -> Result<Arc<Volume>, ProcError> {
        if mode > 0o777 {
            return Err(invalid(format!(
                "volume '{id}': mode {mode:o} is not within 0777"
            )));
        }
        let mode = with_execute_bits(mode);
        if auto_init {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(NEW_DIR_MODE & mode)
                .create(root)
                .map_err(|e| io_error("create volume", id, &e))?;
        }
        let dir = Dir::open_ambient_dir(root, ambient_authority())
            .map_err(|e| io_error("open volume", id, &e))?;
        let id = id.to_string();
        Ok(Arc::new(Volume { id, dir, mode }))
    }

    /// The volume's entry id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The effective mode (after the execute bits were added).
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Whether the owner read bit is set.
    pub fn readable(&self) -> bool {
        self.mode & 0o400 != 0
    }

    /// Whether the owner write bit is set.
    pub fn writable(&self) -> bool {
        self.mode & 0o200 != 0
    }

    /// The whole file at `p`; `INVALID` with details `{limit}` if it holds
    /// more than `max` bytes (or [`MAX_READ_FILE`]).
    pub fn read_file(&self, cwd: &str, p: &str, max: usize) -> Result<Vec<u8>, ProcError> {
        let rel = self.locate(cwd, p, Access::Read, "readfile")?;
        let (file, stated) = self.open_sized(&rel, p, "readfile", OpenMode::Read)?;
        let max = capped(max, MAX_READ_FILE);
        let reserve = usize::try_from(stated)
            .unwrap_or(usize::MAX)
            .min(max)
            .min(MAX_PREALLOC);
        let mut buf = warren_core::bufpool::take(reserve);
        crate::file::read_limited(&file, (max as u64).saturating_add(1), &mut buf)
            .map_err(|e| io_error("readfile", p, &e))?;
        if buf.len() > max {
            let msg = format!("readfile '{p}': the file is larger than the limit of {max} bytes");
            return Err(over_limit(msg, max));
        }
        Ok(buf)
    }

    /// `INVALID` for a bad path, then `PERMISSION_DENIED` unless the
    /// volume's mode lets `writefile` write `p`: the checks of
    /// [`Volume::write_file`] that need no file system, for a caller to
    /// make before it copies the data to write (a write to a read-only
    /// volume must not cost the host a copy of its data).
    pub fn check_write(&self, cwd: &str, p: &str) -> Result<(), ProcError> {
        self.locate(cwd, p, Access::Write, "writefile").map(drop)
    }

    /// Writes `data` to the file at `p` as `mode` says.
    pub fn write_file(
        &self,
        cwd: &str,
        p: &str,
        data: &[u8],
        mode: WriteMode,
    ) -> Result<(), ProcError> {
        let rel = self.locate(cwd, p, Access::Write, "writefile")?;
        let mut file = self.open_regular(&rel, p, "writefile", mode.open_mode())?;
        std::io::Write::write_all(&mut file, data).map_err(|e| io_error("writefile", p, &e))
    }

    /// Opens the regular file at `p` in `mode`.
    pub fn open_file(&self, cwd: &str, p: &str, mode: OpenMode) -> Result<File, ProcError> {
        let access = if mode.reads() {
            Access::Read
        } else {
            Access::Write
        };
        let rel = self.locate(cwd, p, access, "open")?;
        let file = self.open_regular(&rel, p, "open", mode)?;
        Ok(File::new(file, p, base_name(&rel), mode))
    }

    /// Whether `p` exists (`false`, not an error, when absent).
    pub fn exists(&self, cwd: &str, p: &str) -> Result<bool, ProcError> {
        let rel = self.locate(cwd, p, Access::Read, "exists")?;
        match self.dir.metadata(&rel).and_then(|m| as_named(p, m)) {
            Ok(_) => Ok(true),
            Err(e) => match io_error("exists", p, &e) {
                err if err.kind == ErrorKind::NotFound => Ok(false),
                err => Err(err),
            },
        }
    }

    /// Whether `p` is a directory; `NOT_FOUND` when absent.
    pub fn is_dir(&self, cwd: &str, p: &str) -> Result<bool, ProcError> {
        Ok(self.stat_as(cwd, p, "isdir")?.is_dir)
    }

    /// The [`Stat`] of `p` (symbolic links followed, inside the volume).
    pub fn stat(&self, cwd: &str, p: &str) -> Result<Stat, ProcError> {
        self.stat_as(cwd, p, "stat")
    }

    /// Creates the directory `p`; its parent must exist.
    pub fn mkdir(&self, cwd: &str, p: &str) -> Result<(), ProcError> {
        let rel = self.locate(cwd, p, Access::Write, "mkdir")?;
        if rel == ROOT {
            return Err(ProcError::new(
                ErrorKind::AlreadyExists,
                format!("mkdir '{p}': already exists"),
            ));
        }
        let mut builder = DirBuilder::new();
        builder.mode(NEW_DIR_MODE & self.mode);
        self.dir
            .create_dir_with(&rel, &builder)
            .map_err(|e| io_error("mkdir", p, &e))
    }

    /// Removes the file, symbolic link or empty directory `p`; a non-empty
    /// directory is `INVALID`, and so is the volume root.
    pub fn remove(&self, cwd: &str, p: &str) -> Result<(), ProcError> {
        let rel = self.locate(cwd, p, Access::Write, "remove")?;
        if rel == ROOT {
            return Err(invalid(format!(
                "remove '{p}': cannot remove the volume root"
            )));
        }
        let meta = self
            .dir
            .symlink_metadata(&rel)
            .and_then(|m| as_named(p, m))
            .map_err(|e| io_error("remove", p, &e))?;
        let removed = if meta.is_dir() {
            self.dir.remove_dir(&rel)
        } else {
            self.dir.remove_file(&rel)
        };
        removed.map_err(|e| io_error("remove", p, &e))
    }

    /// The entries of the directory `p` as `(name, is_dir)`, in name order;
    /// `INVALID` with details `{limit}` past `max_entries` (or
    /// [`MAX_DIR_ENTRIES`]). A symbolic link counts as a directory when it
    /// leads to one inside the volume.
    pub fn read_dir(
        &self,
        cwd: &str,
        p: &str,
        max_entries: usize,
    ) -> Result<Vec<(String, bool)>, ProcError> {
        let rel = self.locate(cwd, p, Access::Read, "readdir")?;
        self.require_dir(&rel, p, "readdir")?;
        let limit = capped(max_entries, MAX_DIR_ENTRIES);
        let entries = self
            .dir
            .read_dir(&rel)
            .map_err(|e| io_error("readdir", p, &e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("readdir", p, &e))?;
            if out.len() == limit {
                let msg = format!("readdir '{p}': more than {limit} entries");
                return Err(over_limit(msg, limit));
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = self.entry_is_dir(&rel, &name, &entry);
            out.push((name, is_dir));
        }
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The normalised absolute volume path (`/a/b`) of the existing
    /// directory `p`, for `chdir`.
    pub fn resolve_dir(&self, cwd: &str, p: &str) -> Result<String, ProcError> {
        let rel = self.locate(cwd, p, Access::Read, "chdir")?;
        self.require_dir(&rel, p, "chdir")?;
        Ok(absolute(&rel))
    }

    /// The normalised path of `p`, once the mode allows `access` (shape
    /// errors first, then the mode, as the module rules order them).
    fn locate(&self, cwd: &str, p: &str, access: Access, op: &str) -> Result<String, ProcError> {
        let rel = normalize(cwd, p)?;
        let (allowed, bit) = match access {
            Access::Read => (self.readable(), "read"),
            Access::Write => (self.writable(), "write"),
        };
        if !allowed {
            return Err(ProcError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{op} on volume '{}' is not allowed: its mode {:04o} lacks the {bit} bit",
                    self.id, self.mode
                ),
            ));
        }
        Ok(rel)
    }

    /// Opens `rel` in `mode`; anything but a regular file is refused.
    /// `O_NONBLOCK` keeps a FIFO placed by the host from blocking the open,
    /// `O_NOCTTY` a terminal from becoming the host's controlling one.
    fn open_regular(
        &self,
        rel: &str,
        p: &str,
        op: &str,
        mode: OpenMode,
    ) -> Result<cap_std::fs::File, ProcError> {
        self.open_sized(rel, p, op, mode).map(|(file, _)| file)
    }

    /// [`Self::open_regular`], with the file's size when it was opened
    /// (from the same `fstat` that checked its type).
    fn open_sized(
        &self,
        rel: &str,
        p: &str,
        op: &str,
        mode: OpenMode,
    ) -> Result<(cap_std::fs::File, u64), ProcError> {
        if names_directory(p) {
            return Err(self.not_a_file(rel, p, op));
        }
        let mut options = OpenOptions::new();
        match mode {
            OpenMode::Read => options.read(true),
            OpenMode::Write => options.write(true).create(true).truncate(true),
            OpenMode::Append => options.append(true).create(true),
            OpenMode::Exclusive => options.write(true).create_new(true),
        };
        options
            .mode(NEW_FILE_MODE & self.mode)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
        let file = self
            .dir
            .open_with(rel, &options)
            .map_err(|e| io_error(op, p, &e))?;
        let meta = file.metadata().map_err(|e| io_error(op, p, &e))?;
        if meta.is_dir() {
            return Err(invalid(format!("{op} '{p}': is a directory")));
        }
        if !meta.is_file() {
            return Err(invalid(format!("{op} '{p}': not a regular file")));
        }
        Ok((file, meta.len()))
    }

    /// The error of opening `p`, which names a directory
    /// ([`names_directory`]), as a file, found without opening anything:
    /// an open for writing would create or truncate `rel` (`p` without its
    /// slash), as `writefile("a.txt/", ...)` overwrote `a.txt`, and Linux
    /// answers a creating open of such a path with `EISDIR` whatever it
    /// names. So: `NOT_FOUND` "not a directory" for a file (`ENOTDIR`, as
    /// `open("a.txt/")` without `O_CREAT`), `NOT_FOUND` when absent,
    /// `INVALID` "is a directory" for a directory.
    fn not_a_file(&self, rel: &str, p: &str, op: &str) -> ProcError {
        match self.dir.metadata(rel).and_then(|m| as_named(p, m)) {
            Ok(_) => invalid(format!("{op} '{p}': is a directory")),
            Err(e) => io_error(op, p, &e),
        }
    }

    /// The stat of `p` for `op`.
    fn stat_as(&self, cwd: &str, p: &str, op: &str) -> Result<Stat, ProcError> {
        let rel = self.locate(cwd, p, Access::Read, op)?;
        let meta = self
            .dir
            .metadata(&rel)
            .and_then(|m| as_named(p, m))
            .map_err(|e| io_error(op, p, &e))?;
        Ok(Stat::from_metadata(base_name(&rel), &meta))
    }

    /// `INVALID` unless `rel` is a directory (`NOT_FOUND` when absent).
    fn require_dir(&self, rel: &str, p: &str, op: &str) -> Result<(), ProcError> {
        let meta = self.dir.metadata(rel).map_err(|e| io_error(op, p, &e))?;
        if meta.is_dir() {
            Ok(())
        } else {
            Err(invalid(format!("{op} '{p}': not a directory")))
        }
    }

    /// Whether the entry `name` of directory `rel` is (or, as a symbolic
    /// link, leads inside the volume to) a directory.
    fn entry_is_dir(&self, rel: &str, name: &str, entry: &DirEntry) -> bool {
        match entry.file_type() {
            Ok(t) if t.is_symlink() => {
                let path = if rel == ROOT {
                    name.to_string()
                } else {
                    format!("{rel}/{name}")
                };
                self.dir.metadata(path).is_ok_and(|m| m.is_dir())
            }
            Ok(t) => t.is_dir(),
            Err(_) => false,
        }
    }
}

/// `meta`, the metadata of what `p` leads to, unless `p` names a directory
/// ([`names_directory`]) and `meta` is not one's: then `ENOTDIR`, what the
/// kernel answers for such a path (so `remove("a.txt/")` keeps `a.txt`).
fn as_named(p: &str, meta: Metadata) -> std::io::Result<Metadata> {
    if names_directory(p) && !meta.is_dir() {
        return Err(std::io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    Ok(meta)
}

/// The caller's `limit`, never above the crate's `cap`.
fn capped(limit: usize, cap: usize) -> usize {
    limit.min(cap)
}

/// `mode` with an execute bit added wherever a read bit has none (Wippy's
/// rule, so a readable volume can also be traversed).
fn with_execute_bits(mode: u32) -> u32 {
    [6, 3, 0].into_iter().fold(mode, |m, shift| {
        if m >> shift & 0o4 != 0 {
            m | 1 << shift
        } else {
            m
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_limits_are_capped() {
        assert_eq!(capped(usize::MAX, MAX_DIR_ENTRIES), MAX_DIR_ENTRIES);
        assert_eq!(capped(usize::MAX, MAX_READ_FILE), MAX_READ_FILE);
        assert_eq!(capped(3, MAX_DIR_ENTRIES), 3);
    }

    #[test]
    fn execute_follows_read() {
        assert_eq!(with_execute_bits(0o644), 0o755);
        assert_eq!(with_execute_bits(0o600), 0o700);
        assert_eq!(with_execute_bits(0o200), 0o200);
        assert_eq!(with_execute_bits(0o555), 0o555);
    }
}

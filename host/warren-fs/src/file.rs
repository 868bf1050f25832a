//! An open file of a volume, as `vol:open` hands it to a process.
//!
//! A [`File`] owns one cap-std file opened beneath the volume root, so it
//! can only ever read or write that file, whatever happens to its path
//! afterwards. Every read is bounded by [`MAX_READ_CHUNK`]; a closed file
//! refuses every call with `INTERNAL` ("file is closed").

use std::io::{Read, Seek, SeekFrom, Write};

use warren_core::{ErrorKind, ProcError};

use crate::error::{invalid, io_error};
use crate::modes::{OpenMode, Whence};
use crate::stat::Stat;

/// Most bytes one `file:read(n)` returns, whatever `n` the process asks
/// for. Prevents `file:read(2^53)` from making the host allocate a buffer of
/// that size.
pub const MAX_READ_CHUNK: usize = 1 << 20;

/// A file opened by [`Volume::open_file`](crate::Volume::open_file).
#[derive(Debug)]
pub struct File {
    inner: Option<cap_std::fs::File>,
    path: String,
    name: String,
    mode: OpenMode,
}

impl File {
    /// Wraps `inner`, opened in `mode` from `path` (as the process wrote
    /// it), whose last name is `name`.
    pub(crate) fn new(inner: cap_std::fs::File, path: &str, name: &str, mode: OpenMode) -> File {
        File {
            inner: Some(inner),
            path: path.to_string(),
            name: name.to_string(),
            mode,
        }
    }

    /// The path the file was opened with, as the process wrote it.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The mode the file was opened in.
    pub fn mode(&self) -> OpenMode {
        self.mode
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_none()
    }

    /// Up to `n` bytes (at most [`MAX_READ_CHUNK`]) from the current
    /// position; `None` at the end of the file. `n == 0` reads nothing.
    pub fn read(&mut self, n: usize) -> Result<Option<Vec<u8>>, ProcError> {
        self.require(self.mode.reads(), "reading")?;
        let want = n.min(MAX_READ_CHUNK);
        let path = &self.path;
        let file = open_handle(&mut self.inner)?;
        if want == 0 {
            return Ok(Some(Vec::new()));
        }
        let mut buf = warren_core::bufpool::take(want);
        read_limited(file, want as u64, &mut buf).map_err(|e| io_error("read", path, &e))?;
        Ok(if buf.is_empty() { None } else { Some(buf) })
    }

    /// The bytes from the current position to the end of the file as it is
    /// now (0 past the end); `INVALID` unless the file was opened for
    /// reading. A copy out of the file reads at most this many, so a file
    /// copied onto its own end (`vol:writefile("a", vol:open("a", "r"),
    /// "a")`) is copied once instead of for ever.
    pub fn remaining(&mut self) -> Result<u64, ProcError> {
        self.require(self.mode.reads(), "reading")?;
        let path = &self.path;
        let file = open_handle(&mut self.inner)?;
        let size = file
            .metadata()
            .map_err(|e| io_error("remaining", path, &e))?
            .len();
        let pos = file
            .stream_position()
            .map_err(|e| io_error("remaining", path, &e))?;
        Ok(size.saturating_sub(pos))
    }

    /// Writes all of `data` (`INVALID` if empty).
    pub fn write(&mut self, data: &[u8]) -> Result<(), ProcError> {
        self.require(self.mode.writes(), "writing")?;
        if data.is_empty() {
            return Err(invalid(format!("write '{}': empty data", self.path)));
        }
        let path = &self.path;
        let file = open_handle(&mut self.inner)?;
        file.write_all(data)
            .map_err(|e| io_error("write", path, &e))
    }

    /// Moves the position to `offset` from `whence`; the new position.
    pub fn seek(&mut self, whence: Whence, offset: i64) -> Result<u64, ProcError> {
        let target =
            match whence {
                Whence::Set => SeekFrom::Start(u64::try_from(offset).map_err(|_| {
                    invalid(format!("seek '{}': negative offset {offset}", self.path))
                })?),
                Whence::Cur => SeekFrom::Current(offset),
                Whence::End => SeekFrom::End(offset),
            };
        let path = &self.path;
        let file = open_handle(&mut self.inner)?;
        file.seek(target).map_err(|e| io_error("seek", path, &e))
    }

    /// The file's [`Stat`], named by the last name it was opened with.
    pub fn stat(&self) -> Result<Stat, ProcError> {
        let file = self.inner.as_ref().ok_or_else(closed)?;
        let meta = file
            .metadata()
            .map_err(|e| io_error("stat", &self.path, &e))?;
        Ok(Stat::from_metadata(&self.name, &meta))
    }

    /// Flushes the file's data and metadata to the disk.
    pub fn sync(&self) -> Result<(), ProcError> {
        let file = self.inner.as_ref().ok_or_else(closed)?;
        file.sync_all()
            .map_err(|e| io_error("sync", &self.path, &e))
    }

    /// Closes the file; closing again does nothing.
    pub fn close(&mut self) {
        self.inner = None;
    }

    /// `INVALID` unless the file was opened for what is asked.
    fn require(&self, allowed: bool, what: &str) -> Result<(), ProcError> {
        if allowed || self.is_closed() {
            return Ok(());
        }
        Err(invalid(format!(
            "file '{}' is not open for {what}",
            self.path
        )))
    }
}

/// The handle, or `INTERNAL` "file is closed".
fn open_handle(inner: &mut Option<cap_std::fs::File>) -> Result<&mut cap_std::fs::File, ProcError> {
    inner.as_mut().ok_or_else(closed)
}

/// The error of a call on a closed file.
fn closed() -> ProcError {
    ProcError::new(ErrorKind::Internal, "file is closed")
}

/// Reads from `file`'s position to its end, at most `limit` bytes, into
/// `buf`'s spare room, through std's `File`, whose reads fill
/// uninitialised memory directly. Read through cap-std's own `File`, the
/// standard library's `read_to_end` takes `Read`'s default path, which
/// zeroes all the room it is given before each read: for a 64 KiB file a
/// memset, and the page faults of fresh pages, that a plain program
/// reading the same file does not pay.
pub(crate) fn read_limited(
    file: &cap_std::fs::File,
    limit: u64,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    use cap_std::io_lifetimes::AsFilelike;
    let view = file.as_filelike_view::<std::fs::File>();
    (&*view).take(limit).read_to_end(buf)
}

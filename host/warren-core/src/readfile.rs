//! Reading a file an operator named (an application's `_index.yaml`, a Lua
//! source, a component, an `env.storage.file`) within a byte bound.
//!
//! Guarantees: only a regular file is read (a FIFO, a character device
//! such as `/dev/zero`, a socket or a folder is refused by its kind, and
//! the open never blocks on a FIFO with no writer); at most `limit + 1`
//! bytes are read, whatever size the file claims or grows to while it is
//! read, and nothing is allocated from the size the file claims beyond
//! `limit`; a larger file is refused, naming its size and the bound.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind as IoKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// `O_NONBLOCK` on Linux: opening a FIFO for reading returns at once
/// instead of waiting for a writer (the open would hold the loading
/// thread, or a worker, for as long as nobody writes).
const O_NONBLOCK: i32 = 0o4000;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// It does not exist.
    #[error("no such file")]
    NotFound,
    /// The system refused to open or read it.
    #[error("{0}")]
    Io(std::io::Error),
    /// It is not a regular file.
    #[error("not a regular file (a {0})")]
    NotAFile(&'static str),
    /// It holds more than the bound.
    #[error("{size} bytes, more than the {limit} bytes allowed")]
    TooLarge {
        /// Its size (at least `limit + 1` when it grew while read).
        size: u64,
        /// The bound.
        limit: usize,
    },
}

/// The bytes of the regular file at `path`, at most `limit` of them.
pub fn read_bounded(path: &Path, limit: usize) -> Result<Vec<u8>, ReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            IoKind::NotFound => ReadError::NotFound,
            _ => ReadError::Io(e),
        })?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotAFile(kind_name(&kind)));
    }
    if meta.len() > limit as u64 {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    read_at_most(file, limit, meta.len())
}

/// Reads `file` (which claimed `claimed` bytes) refusing more than `limit`.
fn read_at_most(file: File, limit: usize, claimed: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::with_capacity(usize::try_from(claimed).unwrap_or(limit).min(limit));
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() > limit {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// The text of the regular file at `path`, at most `limit` bytes of UTF-8.
pub fn read_text_bounded(path: &Path, limit: usize) -> Result<String, ReadError> {
    let bytes = read_bounded(path, limit)?;
    String::from_utf8(bytes).map_err(|e| {
        ReadError::Io(std::io::Error::new(
            IoKind::InvalidData,
            format!("not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to()),
        ))
    })
}

fn kind_name(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "folder"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("warren-readfile-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("io");
        d
    }

    #[test]
    fn reads_a_file_within_the_bound_and_refuses_a_larger_one() {
        let f = dir().join("small");
        std::fs::write(&f, b"hello").expect("io");
        assert_eq!(read_bounded(&f, 5).expect("io"), b"hello");
        let err = read_bounded(&f, 4).expect_err("refused");
        assert!(
            matches!(err, ReadError::TooLarge { size: 5, limit: 4 }),
            "{err}"
        );
    }

    #[test]
    fn refuses_devices_folders_and_fifos_without_blocking() {
        let err = read_bounded(Path::new("/dev/zero"), 1 << 20).expect_err("refused");
        assert!(
            matches!(err, ReadError::NotAFile("character device")),
            "{err}"
        );
        let err = read_bounded(&dir(), 1 << 20).expect_err("refused");
        assert!(matches!(err, ReadError::NotAFile("folder")), "{err}");
        let fifo = dir().join("fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let err = read_bounded(&fifo, 1 << 20).expect_err("refused");
            assert!(matches!(err, ReadError::NotAFile("FIFO")), "{err}");
        }
    }

    #[test]
    fn a_missing_file_and_bad_utf8_are_told_apart() {
        let err = read_bounded(&dir().join("missing"), 10).expect_err("refused");
        assert!(matches!(err, ReadError::NotFound), "{err}");
        let f = dir().join("latin1");
        std::fs::write(&f, b"ab\xffcd").expect("io");
        let err = read_text_bounded(&f, 10).expect_err("refused");
        assert!(err.to_string().contains("at byte 2"), "{err}");
    }
}

//! The terminal behind the `io` module: stdout and stderr writes, and
//! reads from stdin, for processes of a terminal host only.
//!
//! Reads block, so they never run on a worker: one reader thread (started
//! on the first read) serves requests in order, parks each result under the
//! pid that asked, and wakes that process through its waker (an
//! [`warren_core::Item::Wake`]). A process has at most one read pending; a
//! line or a read is at most [`MAX_READ`] bytes, so no input makes the
//! host buffer without bound.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};
use std::task::Waker;

use warren_core::Pid;

/// Most bytes one `io.read` or `io.readline` returns: a longer line comes
/// back in pieces, so input without newlines cannot fill the host.
pub(crate) const MAX_READ: usize = 64 * 1024;

/// What a process asked to read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ReadKind {
    /// Up to `n` bytes (at least one, unless at end of input).
    Bytes(usize),
    /// Up to and without the next newline.
    Line,
}

/// A completed read: the text, `None` at end of input, or an I/O error.
pub(crate) type ReadResult = Result<Option<Vec<u8>>, String>;

struct Request {
    pid: Pid,
    kind: ReadKind,
    waker: Waker,
}

struct Reader {
    requests: Sender<Request>,
    done: Mutex<HashMap<Pid, ReadResult>>,
}

static READER: OnceLock<Reader> = OnceLock::new();

static ARGS: OnceLock<Vec<String>> = OnceLock::new();

/// Sets what `io.args()` returns: the command line's arguments for the
/// entry (set once, by the program that owns the terminal).
pub fn set_args(args: Vec<String>) {
    let _ = ARGS.set(args);
}

/// The arguments set by [`set_args`] (none if it was never called).
pub(crate) fn args() -> &'static [String] {
    ARGS.get().map_or(&[], Vec::as_slice)
}

fn reader() -> &'static Reader {
    READER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        let spawned = std::thread::Builder::new()
            .name("warren-stdin".into())
            .spawn(move || {
                let stdin = std::io::stdin();
                let mut input = stdin.lock();
                for req in rx {
                    let result = read_one(&mut input, req.kind);
                    if let Some(r) = READER.get() {
                        lock(&r.done).insert(req.pid, result);
                    }
                    req.waker.wake();
                }
            });
        if let Err(err) = spawned {
            tracing::error!("cannot start the stdin reader: {err}");
        }
        Reader {
            requests: tx,
            done: Mutex::new(HashMap::new()),
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read_one(input: &mut impl BufRead, kind: ReadKind) -> ReadResult {
    match kind {
        ReadKind::Bytes(n) => {
            let mut buf = vec![0; n.clamp(1, MAX_READ)];
            match input.read(&mut buf) {
                Ok(0) => Ok(None),
                Ok(got) => {
                    buf.truncate(got);
                    Ok(Some(buf))
                }
                Err(e) => Err(e.to_string()),
            }
        }
        ReadKind::Line => {
            let mut line = Vec::new();
            let limit = u64::try_from(MAX_READ).unwrap_or(u64::MAX);
            match input.take(limit).read_until(b'\n', &mut line) {
                Ok(0) => Ok(None),
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    Ok(Some(line))
                }
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

/// Queues a read for `pid`; its result waits for [`take`] once `waker`
/// has been woken.
pub(crate) fn request(pid: Pid, kind: ReadKind, waker: Waker) -> Result<(), String> {
    reader()
        .requests
        .send(Request { pid, kind, waker })
        .map_err(|_| "the stdin reader has stopped".to_owned())
}

/// The completed read of `pid`, if there is one.
pub(crate) fn take(pid: Pid) -> Option<ReadResult> {
    READER.get().and_then(|r| lock(&r.done).remove(&pid))
}

/// Writes `bytes` to stdout (`err` false) or stderr, flushing stdout only
/// when asked.
pub(crate) fn write(err: bool, bytes: &[u8]) -> std::io::Result<()> {
    if err {
        std::io::stderr().lock().write_all(bytes)
    } else {
        std::io::stdout().lock().write_all(bytes)
    }
}

/// Flushes stdout.
pub(crate) fn flush() -> std::io::Result<()> {
    std::io::stdout().lock().flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn got(input: &mut impl BufRead, kind: ReadKind) -> Vec<u8> {
        match read_one(input, kind) {
            Ok(Some(bytes)) => bytes,
            other => panic!("expected bytes, got {other:?}"),
        }
    }

    #[test]
    fn a_line_loses_its_newline_and_a_long_line_comes_in_pieces() {
        let mut input = std::io::Cursor::new(b"one\r\ntwo\n".to_vec());
        assert_eq!(
            read_one(&mut input, ReadKind::Line),
            Ok(Some(b"one".to_vec()))
        );
        assert_eq!(
            read_one(&mut input, ReadKind::Line),
            Ok(Some(b"two".to_vec()))
        );
        assert_eq!(read_one(&mut input, ReadKind::Line), Ok(None));
        let long = vec![b'x'; MAX_READ + 10];
        let mut input = std::io::Cursor::new(long);
        let first = got(&mut input, ReadKind::Line);
        assert_eq!(first.len(), MAX_READ);
        let rest = got(&mut input, ReadKind::Line);
        assert_eq!(rest.len(), 10);
    }

    #[test]
    fn a_byte_read_is_bounded_and_reads_at_least_one() {
        let mut input = std::io::Cursor::new(vec![7u8; MAX_READ * 2]);
        let big = got(&mut input, ReadKind::Bytes(usize::MAX));
        assert_eq!(big.len(), MAX_READ);
        let small = got(&mut input, ReadKind::Bytes(0));
        assert_eq!(small.len(), 1);
    }
}

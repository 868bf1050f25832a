//! What a component may touch outside the process interface: the WASI
//! capabilities its entry grants, and nothing else.
//!
//! A component gets the preopened directories and environment variables its
//! entry lists, no network unless `network` is granted, no stdin, and
//! stdout/stderr that go to the host log line by line, tagged with its pid.
//! Imports outside the process interface and WASI are refused at load.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use warren_core::{HostQuota, Pid};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

/// Most bytes one `get-random-bytes` (or its insecure sibling) may ask
/// for; a larger request traps. The host builds the bytes before the
/// guest takes them, whatever its memory limit: wasmtime's default
/// (64 MiB) let 40 components limited to 2 MiB hold 2.7 GB and each call
/// hold its worker 300 ms. Guests ask for a few bytes at a time (Rust's
/// `getrandom` 8, wasi-libc's `getentropy` at most 256); 64 KiB is also
/// wasmtime's own cap on one read.
pub const MAX_RANDOM_BYTES: u64 = 64 << 10;

/// Longest line a guest's stdout/stderr buffers before it is logged anyway:
/// a guest writing without newlines cannot grow host memory without bound
/// (the one bound of every process's log lines).
pub const MAX_LOG_LINE: usize = warren_core::logline::MAX_LOG_LINE;

/// Lines of a guest's stderr kept to explain a trap (a Rust panic prints
/// its message there before it traps).
const STDERR_TAIL_LINES: usize = 4;

/// Longest kept stderr line, in bytes.
const STDERR_TAIL_WIDTH: usize = 256;

/// A directory made visible to a component.
#[derive(Debug, Clone)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Whether the guest may write to it.
    pub writable: bool,
}

/// The capabilities an entry grants its component.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Preopened directories.
    pub dirs: Vec<DirGrant>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Whether the component may use `wasi:sockets`.
    pub network: bool,
    /// Most linear memory the component may grow to, in bytes (`None`: the
    /// engine's default).
    pub memory: Option<u64>,
}

impl Grants {
    /// Whether a WASI import is within these grants (`None`: not WASI).
    pub(crate) fn allows_wasi(&self, import: &str) -> Option<bool> {
        let rest = import.strip_prefix("wasi:")?;
        let package = rest.split('/').next().unwrap_or(rest);
        Some(match package {
            "sockets" => self.network,
            "cli" | "clocks" | "filesystem" | "io" | "random" => true,
            _ => false,
        })
    }

    /// A context builder with these grants' environment and network,
    /// logging through the stdout and stderr buffers `out` and `err`;
    /// [`open_dirs`](Self::open_dirs) adds the directories.
    fn builder(&self, out: LogStream, err: LogStream) -> WasiCtxBuilder {
        let mut b = WasiCtxBuilder::new();
        // File operations run inline on the worker: the driver polls guests
        // outside any async runtime that could run them elsewhere.
        b.allow_blocking_current_thread(true);
        b.max_random_size(MAX_RANDOM_BYTES);
        b.envs(&self.env);
        b.stdout(out);
        b.stderr(err);
        if self.network {
            b.inherit_network();
            b.allow_tcp(true);
            b.allow_udp(true);
            b.allow_ip_name_lookup(true);
        }
        b
    }

    /// Preopens the granted directories in `b`; fails naming the first
    /// that cannot be opened.
    fn open_dirs(&self, b: &mut WasiCtxBuilder) -> Result<(), String> {
        for d in &self.dirs {
            let perms = if d.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            b.preopened_dir(&d.host, &d.guest, perms)
                .map_err(|e| format!("cannot open {}: {e:#}", d.host.display()))?;
        }
        Ok(())
    }
}

/// A process's WASI context: built before it starts when it has
/// directories to open (which can fail, and then the process ends as
/// `Unavailable` at once), else on its first WASI call.
/// Building one (its random generators, environment, streams) was 4 % of
/// a spawn → run → exit of a component that makes no WASI call (200,000
/// `crasher` spawns: 13.2–13.6 µs each → 12.6–13.1 µs).
pub(crate) struct WasiSlot {
    ctx: Option<WasiCtx>,
    grants: Arc<Grants>,
    out: LogStream,
    err: LogStream,
}

impl WasiSlot {
    /// The slot of process `pid` of host `quota` under `grants`, and the tail of its
    /// stderr; fails when an eager context cannot be built.
    pub(crate) fn new(
        grants: &Arc<Grants>,
        quota: &Arc<HostQuota>,
        pid: Pid,
    ) -> Result<(Self, StderrTail), String> {
        let out = LogStream::new(pid, quota.clone(), Stream::Stdout);
        let err = LogStream::new(pid, quota.clone(), Stream::Stderr);
        let tail = StderrTail(err.line.clone());
        let ctx = if grants.dirs.is_empty() {
            None
        } else {
            let mut b = grants.builder(out.clone(), err.clone());
            grants.open_dirs(&mut b)?;
            Some(b.build())
        };
        let slot = WasiSlot {
            ctx,
            grants: grants.clone(),
            out,
            err,
        };
        Ok((slot, tail))
    }

    /// The context, built now if it was deferred.
    pub(crate) fn ctx(&mut self) -> &mut WasiCtx {
        let WasiSlot {
            ctx,
            grants,
            out,
            err,
        } = self;
        // Deferred only without directories: nothing here can fail.
        ctx.get_or_insert_with(|| grants.builder(out.clone(), err.clone()).build())
    }
}

/// The last lines a guest wrote to stderr.
pub(crate) struct StderrTail(Arc<Mutex<LineBuffer>>);

impl StderrTail {
    /// The kept lines, oldest first, joined with " | " (`None`: none).
    pub(crate) fn text(&self) -> Option<String> {
        let line = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut lines: Vec<String> = line.tail.iter().cloned().collect();
        if !line.bytes.is_empty() {
            lines.push(String::from_utf8_lossy(&line.bytes).into_owned());
        }
        (!lines.is_empty()).then(|| lines.join(" | "))
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// A guest's stdout or stderr: complete lines go to the log. Every stream
/// the guest opens on it shares one line buffer.
#[derive(Clone)]
struct LogStream {
    line: Arc<Mutex<LineBuffer>>,
}

struct LineBuffer {
    pid: Pid,
    /// Its host's: lines are written within its log budget.
    quota: Arc<HostQuota>,
    stream: Stream,
    bytes: Vec<u8>,
    /// For stderr: the last lines, for trap messages.
    tail: VecDeque<String>,
}

impl LineBuffer {
    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.bytes);
        // A `\r` inside the line is written out, as every process line's
        // breaks are (`warren_core::logline`).
        let line = warren_core::logline::log_line(&text);
        let pid = self.pid;
        let level = match self.stream {
            Stream::Stdout => tracing::Level::INFO,
            Stream::Stderr => tracing::Level::WARN,
        };
        let write = self.quota.admit_log(level, line.len());
        match self.stream {
            Stream::Stdout if write => tracing::info!(target: "warren::stdout", %pid, "{line}"),
            Stream::Stdout => {}
            Stream::Stderr => {
                if write {
                    tracing::warn!(target: "warren::stderr", %pid, "{line}");
                }
                if self.tail.len() == STDERR_TAIL_LINES {
                    self.tail.pop_front();
                }
                let end = text.floor_char_boundary(STDERR_TAIL_WIDTH);
                self.tail.push_back(text[..end].to_owned());
            }
        }
        self.bytes.clear();
    }

    fn write(&mut self, mut bytes: &[u8]) {
        while let Some(at) = bytes.iter().position(|b| *b == b'\n') {
            self.push(&bytes[..at]);
            self.emit();
            bytes = &bytes[at + 1..];
        }
        self.push(bytes);
    }

    fn push(&mut self, mut bytes: &[u8]) {
        while self.bytes.len() + bytes.len() > MAX_LOG_LINE {
            let room = MAX_LOG_LINE - self.bytes.len();
            self.bytes.extend_from_slice(&bytes[..room]);
            self.emit();
            bytes = &bytes[room..];
        }
        self.bytes.extend_from_slice(bytes);
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        if !self.bytes.is_empty() {
            self.emit();
        }
    }
}

impl LogStream {
    fn new(pid: Pid, quota: Arc<HostQuota>, stream: Stream) -> Self {
        let line = LineBuffer {
            pid,
            quota,
            stream,
            bytes: Vec::new(),
            tail: VecDeque::new(),
        };
        LogStream {
            line: Arc::new(Mutex::new(line)),
        }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        self.line
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .write(bytes);
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl Pollable for LogStream {
    fn ready<'a, 'f>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'f>>
    where
        'a: 'f,
        Self: 'f,
    {
        Box::pin(std::future::ready(()))
    }
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LOG_LINE)
    }
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

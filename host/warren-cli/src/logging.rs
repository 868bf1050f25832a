//! The log: tracing's fmt layer writing to stderr through a bounded queue
//! that its own thread drains (tracing-appender's non-blocking writer).
//!
//! Why: a line was written to stderr on the worker that logged it, so a
//! tenant's `print` loop, read slowly on the other end of a pipe, held
//! the workers of every other host that logged anything for seconds (2.9
//! to 5.2 s; a single 6 MB `print` held another host's worker 3 s), and
//! the runtime's own warnings about crashing processes did the same.
//!
//! Guarantees: a worker never waits for stderr. At most
//! [`LOG_LINES_QUEUED`] lines wait to be written (each process line at
//! most `warren_core::logline::MAX_LOG_LINE` bytes of its text); a line
//! that finds the queue full is dropped, and how many were is said when
//! the program ends. What is queued is written before it ends, unless
//! stderr takes more than about a second to take it ([`flush`]).

use std::sync::Mutex;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

/// Lines that may wait for stderr: bounded so that a stalled reader costs
/// at most this many lines of memory, beyond which lines are dropped
/// rather than block the worker writing them.
const LOG_LINES_QUEUED: usize = 4096;

/// The writer thread's guard (dropping it writes what is queued) and the
/// count of dropped lines, until [`flush`].
static SINK: Mutex<Option<(WorkerGuard, ErrorCounter)>> = Mutex::new(None);

/// Sets up the log (level from `RUST_LOG`, `info` by default).
pub(crate) fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_LINES_QUEUED)
        .thread_name("warren-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
    if let Ok(mut sink) = SINK.lock() {
        *sink = Some((guard, dropped));
    }
}

/// Says how many lines were dropped, if any, then writes what is queued
/// and stops the writer, waiting for it at most about a second (call
/// before the program exits). The notice is a line like the others: with
/// stderr not read at all it is dropped too, as nothing may wait for it.
/// Later lines go nowhere.
pub(crate) fn flush() {
    let taken = SINK.lock().ok().and_then(|mut sink| sink.take());
    if let Some((guard, dropped)) = taken {
        let n = dropped.dropped_lines();
        if n > 0 {
            tracing::warn!(
                "{n} log lines were dropped: stderr was read more slowly than they came"
            );
        }
        drop(guard);
    }
}

//! One exit's result, copied to every process told of it: linked
//! processes, monitors and a waiting caller each get their own copy (a
//! [`Value`](crate::Value) is a tree), made on the exiting process's
//! worker.
//!
//! The copies of one exit are bounded together: 3,000 monitors of a
//! process ending with 900 KiB took 2.7 GB of copies, made in one call on
//! its worker (which stalled 3 s), and held by watchers that never read
//! them. A result of at most [`SMALL_RESULT`] bytes goes to everyone;
//! a larger one to as many as [`MAX_FANOUT_MESSAGES`] times
//! `max_message_bytes` allows, the others told of the exit with an error
//! that says why (an error result keeps its kind, its message cut short).
//!
//! Guarantees: every process told of the exit is told (the event is never
//! dropped); the bytes copied for one exit stay within the bound plus
//! [`SMALL_RESULT`] per process told.

use crate::error::{ErrorKind, ProcError};
use crate::item::Exit;
use crate::limits::wire_size;
use crate::pid::Pid;

/// Bytes of a result copied to every process told of its exit, however
/// many: an error's message, a small value.
pub const SMALL_RESULT: usize = 1024;

/// Bytes of one exit's larger result copied in all, in
/// `max_message_bytes`: four monitors of a result of the largest size.
pub const MAX_FANOUT_MESSAGES: usize = 4;

/// What is left to copy of one exit's result (see the module docs).
pub(super) struct Fanout {
    from: Pid,
    bytes: usize,
    left: usize,
}

impl Fanout {
    /// The copies of `result`, the exit of `from` under `max_bytes`
    /// (`max_message_bytes`).
    pub(super) fn new(from: Pid, result: &Exit, max_bytes: usize) -> Self {
        let bytes = match result {
            Ok(v) => wire_size(std::slice::from_ref(v)),
            Err(e) => e
                .details
                .as_ref()
                .map_or(0, |d| wire_size(std::slice::from_ref(d)))
                .saturating_add(e.message.len()),
        };
        Fanout {
            from,
            bytes,
            left: max_bytes.saturating_mul(MAX_FANOUT_MESSAGES),
        }
    }

    /// A copy of `result` for one more process, or what it is told
    /// instead once the bound is spent.
    pub(super) fn copy(&mut self, result: &Exit) -> Exit {
        if self.bytes <= SMALL_RESULT {
            return result.clone();
        }
        if self.bytes <= self.left {
            self.left -= self.bytes;
            return result.clone();
        }
        let why = format!(
            "its result of {} bytes was not copied to this process: the processes told of \
             its exit before it took the most one exit may copy ({MAX_FANOUT_MESSAGES} × \
             max_message_bytes)",
            self.bytes
        );
        match result {
            Ok(_) => Err(ProcError::new(
                ErrorKind::RateLimited,
                format!("the result of {} cannot be delivered: {why}", self.from),
            )),
            Err(e) => {
                let mut message: String = e.message.chars().take(SMALL_RESULT / 4).collect();
                message.push_str(&format!(" [cut: {why}]"));
                let mut cut = ProcError::new(e.kind, message);
                cut.retryable = e.retryable;
                Err(cut)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn pid() -> Pid {
        Pid::new(0, 7)
    }

    #[test]
    fn a_small_result_goes_to_everyone() {
        let result: Exit = Ok(Value::str("x".repeat(1000)));
        let mut f = Fanout::new(pid(), &result, 64);
        for _ in 0..10_000 {
            assert_eq!(f.copy(&result).ok(), result.clone().ok());
        }
    }

    #[test]
    fn a_large_result_goes_to_as_many_as_the_bound_allows() {
        let result: Exit = Ok(Value::str("x".repeat(100_000)));
        let mut f = Fanout::new(pid(), &result, 100_010);
        let told: Vec<Exit> = (0..10).map(|_| f.copy(&result)).collect();
        assert!(told[..4].iter().all(|r| r == &result));
        for r in &told[4..] {
            let e = r.as_ref().expect_err("an error instead");
            assert_eq!(e.kind, ErrorKind::RateLimited);
            assert!(
                e.message.contains("100005 bytes was not copied"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn a_large_error_keeps_its_kind_and_loses_its_details() {
        let mut err = ProcError::new(ErrorKind::NotFound, "gone ".repeat(100));
        err.details = Some(Value::str("d".repeat(50_000)));
        let result: Exit = Err(err);
        let mut f = Fanout::new(pid(), &result, 10_000);
        let e = f.copy(&result).expect_err("an error");
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.details.is_none());
        assert!(e.message.starts_with("gone gone"), "{}", e.message);
        assert!(e.message.len() < 1024, "{}", e.message.len());
    }
}

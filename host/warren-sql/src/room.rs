//! Where a query's result takes its bytes from: the caller's room (what
//! its calls in flight may hold together, its `memory_per_process`) and
//! its host's `memory_total`, taken as rows are built and held until the
//! caller has the result.
//!
//! Without it a result counted only against its own cap: each of a
//! process's calls in flight could build up to `memory_per_process` of
//! rows on the host, and a finished result waiting for its busy process
//! counted against nothing. Guarantees: bytes are taken before the row
//! that needs them is kept; a result that would pass the caller's room
//! with what its other calls hold, or its host's `memory_total`, fails
//! with `RATE_LIMITED` (retryable) and holds nothing more; everything a
//! room took is given back when its last reference is dropped (by the
//! driver on failure, by the front-end once the process has the value).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use warren_core::{ErrorKind, HostQuota, ProcError, Room, RoomFull};

/// The bytes one query's result holds, taken from its caller's [`Room`].
#[derive(Debug)]
pub struct ResultRoom {
    room: Room,
    /// What this result holds.
    taken: AtomicU64,
}

impl ResultRoom {
    /// The room of a caller whose calls in flight hold `held` and may hold
    /// `limit` bytes together, on `host`.
    pub fn new(held: Arc<AtomicU64>, limit: u64, host: Option<Arc<HostQuota>>) -> Arc<ResultRoom> {
        Arc::new(ResultRoom {
            room: Room::new(held, limit, host),
            taken: AtomicU64::new(0),
        })
    }

    /// Bytes this result holds.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Acquire)
    }

    /// Takes `n` more bytes, or nothing and `RATE_LIMITED`.
    pub(crate) fn take(&self, n: u64) -> Result<(), ProcError> {
        self.room.try_take(n).map_err(|full| {
            no_room(match full {
                RoomFull::Caller { .. } => {
                    format!("a query result needs {n} more bytes, and {full}")
                }
                RoomFull::Host { .. } => format!("{full} for {n} more bytes of a query result"),
            })
        })?;
        self.taken.fetch_add(n, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for ResultRoom {
    fn drop(&mut self) {
        self.room.give(*self.taken.get_mut());
    }
}

fn no_room(message: String) -> ProcError {
    let mut err = ProcError::new(ErrorKind::RateLimited, message);
    err.retryable = true;
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_takes_from_its_caller_and_host_and_gives_back_on_drop() {
        let mut quota = HostQuota::default();
        quota.limits.memory_total = 100;
        quota.name = "h".into();
        let quota = Arc::new(quota);
        let held = Arc::new(AtomicU64::new(10));
        let room = ResultRoom::new(held.clone(), 50, Some(quota.clone()));
        room.take(30).expect("10 + 30 fits in 50");
        let err = room.take(20).expect_err("10 + 30 + 20 does not");
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert!(err.retryable);
        assert!(err.message.contains("(50 bytes)"), "{}", err.message);
        assert_eq!(
            (held.load(Ordering::Acquire), quota.memory_used()),
            (40, 30)
        );
        assert!(quota.reserve_memory(65));
        let err = room.take(8).expect_err("past memory_total");
        assert!(
            err.message.contains("memory_total (100 bytes)"),
            "{}",
            err.message
        );
        assert_eq!(held.load(Ordering::Acquire), 40, "nothing taken on failure");
        assert_eq!(room.taken(), 30);
        drop(room);
        assert_eq!(
            (held.load(Ordering::Acquire), quota.memory_used()),
            (10, 65)
        );
    }
}

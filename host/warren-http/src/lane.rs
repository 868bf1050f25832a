//! Blocking system calls of a request (DNS lookups, resolving a socket
//! path) run on one of `warren_core`'s lanes as the caller's host, never
//! on an async worker: a slow resolver or file system delays its own
//! tenant's calls only, and a call abandoned before a thread takes it is
//! never made.

use warren_core::{Lane, LaneHandle};

/// Runs `work` on `lane` as host `caller` and waits for its result;
/// `None` if the lane dropped it unrun. Dropped before a thread takes it,
/// the job is withdrawn.
pub(crate) async fn run<T: Send + 'static>(
    lane: &'static Lane,
    caller: u16,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = lane.spawn(caller, move || {
        // The request may have given up meanwhile: nobody to tell.
        let _ = tx.send(work());
    });
    let _unqueue = Unqueue(job);
    rx.await.ok()
}

/// Aborts a job not yet started when its request is dropped.
struct Unqueue(LaneHandle);

impl Drop for Unqueue {
    fn drop(&mut self) {
        self.0.abort();
    }
}

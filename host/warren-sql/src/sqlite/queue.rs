//! Plain calls (outside a transaction) on an SQLite entry: queued, and run
//! back to back by one lane thread while it holds the lease.
//!
//! Before this queue every call took the lease itself: when a statement
//! ended, its lease went to the next waiting call's task, which then asked
//! the blocking pool for a thread: two thread hand-offs between any two
//! statements of the one connection, however many calls were waiting. Now
//! the first call starts a runner on the SQL lane
//! ([`warren_core::sql_lane`]); the runner takes the lease and runs queued
//! calls until the queue is empty, each call's result handed to its caller
//! from the runner's thread. A runner is a job of the host whose call
//! started it, so the lane's cap and turns apply between hosts: a tenant
//! with many databases takes at most `SQL_LANE_PER_HOST` threads.
//!
//! Guarantees: statements still run one at a time under the lease; the
//! callers' hosts take turns, so a call waits behind at most one queued
//! call of each other host ahead of it in the turn, however many that host
//! queued; a runner gives the lease up after [`RUN_CAP`] calls, so a transaction
//! waiting for it (the lease is a fair, first-come mutex) waits behind at
//! most that many statements; a runner takes a lane thread only once
//! it holds the lease (it waits for a held one as a task), so runners
//! waiting for leases never fill the lane the lease holders need
//! to finish; a call cancelled before it starts is dropped
//! unrun, and one running is interrupted (see [`Stop`]); a call whose
//! runner ends without running it (a panic, the runtime shutting down) is
//! dropped, so its caller hears an error instead of waiting forever.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use warren_core::sql_lane;

use super::lease::{Lease, Shared, lock};

/// Most calls one runner runs before it gives the lease up and queues for
/// it again: bounds how long a transaction waits behind a flood of plain
/// calls.
pub(crate) const RUN_CAP: usize = 32;

/// How long a runner that finds the queue empty waits for another call
/// before it ends. A worker whose processes query one after another queues
/// the next call within microseconds; without the wait the runner had
/// ended by then, and every call started a runner again: a lane
/// spawn and a thread wake-up per statement, a tenth of the worker's time
/// per query. The wait yields the core between looks, and holds the lease
/// (a transaction waiting for it waits this much longer at most).
pub(crate) const LINGER: Duration = Duration::from_micros(100);

/// A queued call: runs its statement on the lease's connection and hands
/// its result over. Dropped unrun, it hands nothing (its caller's channel
/// closes).
pub(crate) type Job = Box<dyn FnOnce(&mut Lease) + Send>;

/// The queue of an entry's plain calls: one queue per caller's host,
/// served in turn, so a tenant's backlog on an entry shared with another
/// delays the other's call by one of its statements, not by the whole
/// backlog (an entry granted to two hosts runs one statement at a time).
#[derive(Default)]
pub(crate) struct Queue {
    /// Hosts with queued calls, in the order they are served, each with
    /// its calls in order. Few: the hosts granted this entry.
    turn: VecDeque<(u16, VecDeque<Job>)>,
    /// Calls queued in all.
    len: usize,
    /// Emptied queues kept for the next host to queue (at most
    /// [`SPARE_QUEUES`]): a host's calls one at a time would otherwise
    /// allocate a queue per call.
    spare: Vec<VecDeque<Job>>,
    /// Whether a runner is started (it runs until it finds no call).
    running: bool,
}

/// Emptied host queues an entry keeps for reuse.
const SPARE_QUEUES: usize = 4;

/// The largest emptied queue kept (in calls): one a burst grew is let go.
const SPARE_CAPACITY: usize = 64;

impl Queue {
    fn push(&mut self, host: u16, job: Job) {
        match self.turn.iter_mut().find(|(h, _)| *h == host) {
            Some((_, jobs)) => jobs.push_back(job),
            None => {
                let mut jobs = self.spare.pop().unwrap_or_default();
                jobs.push_back(job);
                self.turn.push_back((host, jobs));
            }
        }
        self.len += 1;
    }

    /// The next call: the first of the host whose turn it is, that host
    /// going to the back of the turn if it has more.
    fn pop(&mut self) -> Option<Job> {
        let (host, mut jobs) = self.turn.pop_front()?;
        let job = jobs.pop_front();
        if !jobs.is_empty() {
            self.turn.push_back((host, jobs));
        } else if self.spare.len() < SPARE_QUEUES && jobs.capacity() <= SPARE_CAPACITY {
            self.spare.push(jobs);
        }
        self.len -= usize::from(job.is_some());
        job
    }

    /// The host whose call is next.
    fn next_host(&self) -> Option<u16> {
        self.turn.front().map(|(host, _)| *host)
    }
}

/// Stops one queued call: unrun if it has not started, interrupted if it
/// runs (the interrupt reaches only that statement).
pub(crate) struct Stop {
    shared: Arc<Shared>,
    id: u64,
    cancelled: Arc<AtomicBool>,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop").field("statement", &self.id).finish()
    }
}

impl Stop {
    pub(crate) fn stop(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.shared.interrupt(self.id);
    }
}

/// Queues `job` of a caller of `host` as statement `id`, starting a
/// runner if none runs; `cancelled` is its stop flag, which the job checks
/// before it runs its statement (and the statement as it runs, see
/// [`super::run::Bounds`]).
pub(crate) fn submit(
    shared: &Arc<Shared>,
    host: u16,
    id: u64,
    cancelled: Arc<AtomicBool>,
    job: Job,
) -> Stop {
    let start = {
        let mut q = lock(&shared.queue);
        q.push(host, job);
        shared.queued.store(q.len, Ordering::Release);
        !std::mem::replace(&mut q.running, true)
    };
    if start {
        Runner {
            shared: shared.clone(),
            host,
            finished: false,
        }
        .start();
    }
    Stop {
        shared: shared.clone(),
        id,
        cancelled,
    }
}

/// Runs queued calls on a lane thread until the queue is empty, or
/// [`RUN_CAP`] of them (then hands over to a new runner).
struct Runner {
    shared: Arc<Shared>,
    /// The host it runs as on the lane: that of the call it started for.
    host: u16,
    /// Set when it found the queue empty (and cleared `running` itself).
    finished: bool,
}

impl Runner {
    /// Takes the lease and runs on the SQL lane. The lease is waited
    /// for asynchronously when it is held (by a transaction, or the
    /// runner before this one), so no lane thread sits waiting for it:
    /// blocked threads waiting on leases whose holders need a thread to
    /// finish would deadlock the lane.
    fn start(self) {
        let on_lane = |runner: Runner, lease: Lease| {
            drop(sql_lane().spawn(runner.host, move || runner.run(lease)));
        };
        match self.shared.try_lease() {
            Some(lease) => on_lane(self, lease),
            None => drop(self.shared.rt.clone().spawn(async move {
                let lease = self.shared.lease().await;
                on_lane(self, lease);
            })),
        }
    }

    fn run(mut self, mut lease: Lease) {
        for _ in 0..RUN_CAP {
            let Some(job) = self.next() else {
                self.finished = true;
                return;
            };
            // A panicking call drops its result channel (its caller hears
            // `INTERNAL`); the others still run.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut lease)));
        }
        // A waiting transaction goes first; a new runner queues for the
        // lease behind it and carries on with the calls.
        drop(lease);
        self.finished = true;
        let host = lock(&self.shared.queue).next_host().unwrap_or(self.host);
        Runner {
            shared: self.shared.clone(),
            host,
            finished: false,
        }
        .start();
    }

    /// The next call; if none waits, the runner lingers up to [`LINGER`]
    /// for one (yielding its core meanwhile, watching the count of queued
    /// calls rather than taking the lock the callers need), then ends:
    /// `None`, with no runner any more.
    fn next(&self) -> Option<Job> {
        let mut empty_since = None;
        loop {
            let now = Instant::now();
            let lingered = now.duration_since(*empty_since.get_or_insert(now)) >= LINGER;
            if lingered || self.shared.queued.load(Ordering::Acquire) > 0 {
                let mut q = lock(&self.shared.queue);
                if let Some(job) = q.pop() {
                    self.shared.queued.store(q.len, Ordering::Release);
                    return Some(job);
                }
                if lingered {
                    q.running = false;
                    return None;
                }
            }
            std::thread::yield_now();
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Ended early (never run, or unwound): drop what waits, so each
        // caller hears an error, and let the next call start a runner.
        let jobs = {
            let mut q = lock(&self.shared.queue);
            q.running = false;
            self.shared.queued.store(0, Ordering::Release);
            q.len = 0;
            std::mem::take(&mut q.turn)
        };
        drop(jobs);
    }
}

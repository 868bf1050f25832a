//! The blocking lane: a few threads that run blocking host calls (file
//! operations, variable lookups), shared by every host and fair between
//! them.
//!
//! Jobs wait in one queue per host; a free thread takes the next job of the
//! next host in turn, so a tenant that queues thousands of slow calls
//! delays another tenant's call by one of its jobs, not by its whole
//! backlog. A job cancelled before it starts is dropped unrun.
//! Threads are started on demand up to [`BLOCKING_LANE_THREADS`] and kept.
//! No host runs more than [`BLOCKING_LANE_PER_HOST`] jobs at once, so a
//! tenant whose calls hang (a stuck network file system, a slow disk)
//! cannot take every thread: other hosts keep the rest. The last
//! [`BLOCKING_LANE_RESERVE`] free threads go only to hosts running no job,
//! so several such tenants together still leave one to each other host.
//!
//! Only as many threads as cores are woken for queued jobs; a watcher
//! thread adds one each time it finds fewer than that running jobs
//! younger than [`LANE_BLOCKED_AFTER`] (the others wait on a device), as
//! Go's runtime hands a processor on when a thread blocks in a system
//! call. Quick calls (files in the page cache) then run back to back on
//! a thread or two instead of waking a sleeper each, and slow ones still
//! get up to [`BLOCKING_LANE_THREADS`] in flight.
//!
//! A bounded pool on purpose: while calls are queued, a thread that
//! finishes one takes the next without sleeping. On two cores, 64 threads
//! each woken for one 4 KiB file write spent a third of the machine's time
//! waking and sleeping; 8 threads left the disk idle while file calls
//! waited (a truncate on this machine's ext4 waits for the device's
//! discard), and 32 measured best of 8, 16, 32 and 64.
//!
//! SQLite statements run on a second lane ([`sql_lane`]), so statements
//! and file calls cannot starve each other, and a tenant's statements
//! cannot take every SQL thread from the others; DNS lookups on a third
//! ([`dns_lane`]), for the same reasons.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

/// Most threads of the blocking lane.
pub const BLOCKING_LANE_THREADS: usize = 32;

/// Most jobs of one host running at once: the threads past it are kept
/// for other hosts, so one tenant's hung calls delay its own calls only.
pub const BLOCKING_LANE_PER_HOST: usize = BLOCKING_LANE_THREADS - 8;

/// Free threads of the blocking lane kept for hosts running no call
/// ([`Lane::with_reserve`]): without it two hosts whose calls hang took
/// every thread (24 + 8).
pub const BLOCKING_LANE_RESERVE: usize = 8;

/// Most threads of the SQL lane ([`sql_lane`]), which runs SQLite
/// statements: each entry uses at most one at a time, so this bounds
/// threads, not connections.
pub const SQL_LANE_THREADS: usize = 64;

/// Most SQLite statements of one host running at once (a quarter of the
/// lane: a host runs one statement per database at a time, so this caps
/// the databases it keeps busy together). Before the SQL lane they ran on
/// the I/O runtime's blocking pool, first come first served: a tenant with
/// more databases than the pool has threads (72 over 64), each running
/// long statements, took every thread, and another tenant's `SELECT 1`
/// waited 15 seconds behind them. Past this cap a host's statements queue
/// while the rest of the threads serve other hosts; it takes four hosts
/// flooding together to fill the lane.
pub const SQL_LANE_PER_HOST: usize = SQL_LANE_THREADS / 4;

/// Free threads of the SQL lane kept for hosts running no statement
/// ([`Lane::with_reserve`]): without it four hosts flooding together
/// (4 × [`SQL_LANE_PER_HOST`]) took every thread; with it the lane is full
/// only once this many more hosts hold a thread each.
pub const SQL_LANE_RESERVE: usize = 16;

/// Most threads of the DNS lane ([`dns_lane`]), which runs the system
/// resolver's lookups (`getaddrinfo`) of HTTP requests.
pub const DNS_LANE_THREADS: usize = 32;

/// Most lookups of one host running at once. A lookup cannot be
/// interrupted: one whose name servers do not answer holds its thread for
/// the resolver's whole timeout (seconds), after its request has given up.
/// On the I/O runtime's blocking pool, first come first served, a tenant
/// asking for such names took every thread and other tenants' lookups
/// waited behind all of its own; past this cap a host's lookups queue and
/// the other threads serve other hosts.
pub const DNS_LANE_PER_HOST: usize = 8;

/// Free threads of the DNS lane kept for hosts running no lookup
/// ([`Lane::with_reserve`]): several hosts whose lookups hang together
/// still leave a thread to each other host until this many hold one.
pub const DNS_LANE_RESERVE: usize = 8;

/// How long a job may run before the watcher counts its thread as
/// blocked (in a disk wait, say) and lets another thread take a queued job.
pub const LANE_BLOCKED_AFTER: Duration = Duration::from_micros(50);

/// The watcher's longest pause between looks while jobs are queued.
const WATCH_MAX: Duration = Duration::from_millis(2);

/// The queue key of work no host asked for (closing a file handle).
pub const SYSTEM_QUEUE: u16 = u16::MAX;

type Work = Box<dyn FnOnce() + Send>;

struct Job {
    host: u16,
    work: Work,
    cancelled: Arc<AtomicBool>,
}

/// Cancels a job that has not started (a started one runs to its end).
#[derive(Clone, Debug)]
pub struct LaneHandle(Arc<AtomicBool>);

impl LaneHandle {
    /// The job is dropped unrun if no thread has taken it yet.
    pub fn abort(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Withdraws a job not yet started when its waiter ([`Lane::run`]) is
/// dropped.
struct Unqueue(LaneHandle);

impl Drop for Unqueue {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Default)]
struct State {
    /// Hosts with queued jobs, in the order they are served.
    turn: VecDeque<u16>,
    queued: FxHashMap<u16, VecDeque<Job>>,
    /// Threads waiting for a job.
    idle: usize,
    /// Of those, how many were notified and have not woken yet: while one
    /// is on its way a new job wakes nobody (the woken thread wakes the
    /// next), and once every sleeper is on its way a new job starts a
    /// thread instead of notifying the same sleeper again.
    notified: usize,
    threads: usize,
    /// Jobs running, by host (hosts with none are absent).
    running: FxHashMap<u16, usize>,
    /// When each busy thread (by its number) took its job.
    busy: FxHashMap<usize, Instant>,
    /// The watcher thread was started; it sleeps on `Lane::watch`.
    watching: bool,
    watch_asleep: bool,
}

/// A pool of at most `max` threads serving per-host queues in turn.
pub struct Lane {
    state: Mutex<State>,
    ready: Condvar,
    watch: Condvar,
    caps: Caps,
    /// Threads kept running jobs that have not blocked: more only once
    /// the watcher sees the running ones blocked.
    target: usize,
    /// Its threads' name (the watcher's with `-watch`).
    name: &'static str,
}

/// The process-wide lane, started on first use.
pub fn blocking_lane() -> &'static Lane {
    static LANE: OnceLock<Lane> = OnceLock::new();
    LANE.get_or_init(|| {
        process_lane(
            BLOCKING_LANE_THREADS,
            BLOCKING_LANE_PER_HOST,
            BLOCKING_LANE_RESERVE,
        )
    })
}

/// The lane of SQLite statements, started on first use: separate from
/// [`blocking_lane`], so statements and file calls cannot starve each
/// other, and fair between hosts as it is.
pub fn sql_lane() -> &'static Lane {
    static LANE: OnceLock<Lane> = OnceLock::new();
    LANE.get_or_init(|| {
        process_lane(SQL_LANE_THREADS, SQL_LANE_PER_HOST, SQL_LANE_RESERVE).named("warren-sql")
    })
}

/// The lane of DNS lookups, started on first use: a host's slow names
/// delay its own lookups, not other hosts' (see [`DNS_LANE_PER_HOST`]).
pub fn dns_lane() -> &'static Lane {
    static LANE: OnceLock<Lane> = OnceLock::new();
    LANE.get_or_init(|| {
        process_lane(DNS_LANE_THREADS, DNS_LANE_PER_HOST, DNS_LANE_RESERVE).named("warren-dns")
    })
}

/// A process-wide lane: `max` threads, `per_host` jobs of one host, the
/// last `reserve` free threads for hosts running none, as many threads
/// kept on running jobs as there are cores.
fn process_lane(max: usize, per_host: usize, reserve: usize) -> Lane {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Lane::new(max, per_host)
        .with_reserve(reserve)
        .with_target(cores)
}

impl Lane {
    /// A lane of at most `max` threads (at least one), running at most
    /// `per_host` jobs of one host at once (at least one).
    pub fn new(max: usize, per_host: usize) -> Self {
        Lane {
            state: Mutex::default(),
            ready: Condvar::new(),
            watch: Condvar::new(),
            caps: Caps {
                max: max.max(1),
                per_host: per_host.max(1),
                reserve: 0,
            },
            target: max.max(1),
            name: "warren-lane",
        }
    }

    /// The lane keeping its last `reserve` free threads for hosts with no
    /// job running: however many hosts flood it, a host that runs nothing
    /// gets a thread while fewer than `reserve` such hosts hold one.
    pub fn with_reserve(mut self, reserve: usize) -> Self {
        self.caps.reserve = reserve.min(self.caps.max - 1);
        self
    }

    /// The lane naming its threads `name`.
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The lane keeping only `target` threads on jobs that run (at least
    /// one), adding threads as running ones block.
    pub fn with_target(mut self, target: usize) -> Self {
        self.target = target.clamp(1, self.caps.max);
        self
    }

    /// Runs `work` on this lane as `host` and waits for its result;
    /// `None` if the lane dropped it unrun. Dropped before a thread takes
    /// it, the job is withdrawn and never runs (a started one runs to its
    /// end, its result dropped).
    pub async fn run<T: Send + 'static>(
        &'static self,
        host: u16,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = self.spawn(host, move || {
            // The caller may have given up meanwhile: nobody to tell.
            let _ = tx.send(work());
        });
        let _unqueue = Unqueue(job);
        rx.await.ok()
    }

    /// Queues `work` behind the jobs of `host`, served in turn with other
    /// hosts' jobs.
    pub fn spawn(&'static self, host: u16, work: impl FnOnce() + Send + 'static) -> LaneHandle {
        let cancelled = Arc::new(AtomicBool::new(false));
        let job = Job {
            host,
            work: Box::new(work),
            cancelled: cancelled.clone(),
        };
        let mut state = self.lock();
        let queue = state.queued.entry(host).or_default();
        queue.push_back(job);
        if queue.len() == 1 {
            state.turn.push_back(host);
        }
        if state.busy.len() + state.notified >= self.target {
            // Enough threads on jobs: one takes this when it is done,
            // unless the watcher finds them blocked first.
            self.call_watcher(state);
        } else if state.notified == 0 && state.idle > 0 {
            // One sleeper woken at a time: it wakes the next if jobs remain
            // (see `next`), so a burst of calls costs the worker one
            // wake-up, not one each (each is a futex call and an interrupt
            // to another CPU, a fifth of a worker's time in a file-call
            // flood).
            state.notified += 1;
            drop(state);
            self.ready.notify_one();
        } else if state.idle == state.notified && state.threads < self.caps.max {
            drop(state);
            self.start_thread();
        }
        LaneHandle(cancelled)
    }

    fn call_watcher(&'static self, mut state: MutexGuard<'_, State>) {
        if !state.watching {
            state.watching = true;
            drop(state);
            let started = std::thread::Builder::new()
                .name(format!("{}-watch", self.name))
                .spawn(move || self.watch_loop());
            if let Err(err) = started {
                self.lock().watching = false;
                tracing::warn!("cannot start the blocking lane's watcher: {err}");
            }
        } else if state.watch_asleep {
            state.watch_asleep = false;
            drop(state);
            self.watch.notify_one();
        }
    }

    /// While jobs wait, looks at the busy threads now and then: when fewer
    /// than `target` are on jobs that have run under [`LANE_BLOCKED_AFTER`],
    /// one more thread is woken or started (as Go's runtime hands a
    /// processor on when a thread blocks in a system call).
    fn watch_loop(&'static self) {
        let mut pause = LANE_BLOCKED_AFTER;
        let mut state = self.lock();
        loop {
            if !takeable(&state, self.caps) {
                state.watch_asleep = true;
                state = self
                    .watch
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                pause = LANE_BLOCKED_AFTER;
                continue;
            }
            drop(state);
            std::thread::sleep(pause);
            state = self.lock();
            let now = Instant::now();
            let moving = state
                .busy
                .values()
                .filter(|t| now.duration_since(**t) < LANE_BLOCKED_AFTER)
                .count();
            let wanted = moving + state.notified < self.target && takeable(&state, self.caps);
            if wanted && state.idle > state.notified {
                state.notified += 1;
                self.ready.notify_one();
                pause = LANE_BLOCKED_AFTER;
            } else if wanted && state.threads < self.caps.max {
                drop(state);
                self.start_thread();
                state = self.lock();
                pause = LANE_BLOCKED_AFTER;
            } else {
                pause = (pause * 2).min(WATCH_MAX);
            }
        }
    }

    fn start_thread(&'static self) {
        let id = {
            let mut state = self.lock();
            if state.threads >= self.caps.max {
                return;
            }
            state.threads += 1;
            state.threads
        };
        let started = std::thread::Builder::new()
            .name(self.name.into())
            .spawn(move || {
                // What a lane reads is freed on a worker: see warren-alloc.
                warren_alloc::map_large_blocks_here();
                self.serve(id)
            });
        if let Err(err) = started {
            // The queued job waits for a running thread (or its deadline).
            self.lock().threads -= 1;
            tracing::warn!("cannot start a blocking-lane thread: {err}");
        }
    }

    fn serve(&self, id: usize) {
        let mut state = self.lock();
        loop {
            let job = self.next(state, id);
            let host = job.host;
            if !job.cancelled.load(Ordering::Acquire) {
                // A panicking job must not take the thread with it (the
                // count of threads would stay up with none serving).
                let run = std::panic::AssertUnwindSafe(job.work);
                if std::panic::catch_unwind(run).is_err() {
                    tracing::warn!("a blocking-lane job panicked");
                }
            }
            // This thread asks for its next job right after, so a host
            // held back by its cap is served without another wake-up.
            state = self.lock();
            finished(&mut state, host);
            state.busy.remove(&id);
        }
    }

    /// The next job, waiting for one: the first of the host whose turn it
    /// is, that host going to the back of the turn if it has more. A
    /// thread that takes a job while more wait wakes one more sleeper.
    fn next(&self, mut state: MutexGuard<'_, State>, id: usize) -> Job {
        loop {
            if let Some(job) = take_next(&mut state, self.caps) {
                state.busy.insert(id, Instant::now());
                let wake = !state.turn.is_empty()
                    && state.idle > state.notified
                    && state.busy.len() + state.notified < self.target;
                if wake {
                    state.notified += 1;
                }
                drop(state);
                if wake {
                    self.ready.notify_one();
                }
                return job;
            }
            state.idle += 1;
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.idle -= 1;
            state.notified = state.notified.saturating_sub(1);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Which host may take a thread.
#[derive(Clone, Copy)]
struct Caps {
    max: usize,
    /// Most jobs of one host running at once.
    per_host: usize,
    /// Free threads kept for hosts running no job.
    reserve: usize,
}

impl Caps {
    /// Whether a job of `host` may start now: below its cap, and either
    /// running none or leaving more than the reserve free.
    fn may_take(self, state: &State, host: u16) -> bool {
        let running = state.running.get(&host).copied().unwrap_or(0);
        let free = self.max.saturating_sub(state.busy.len());
        running < self.per_host && (running == 0 || free > self.reserve)
    }
}

/// The next job of the first host in turn that [may take](Caps::may_take)
/// a thread; the others keep their place in the turn.
fn take_next(state: &mut State, caps: Caps) -> Option<Job> {
    for _ in 0..state.turn.len() {
        let host = state.turn.pop_front()?;
        if !caps.may_take(state, host) {
            state.turn.push_back(host);
            continue;
        }
        let queue = state.queued.get_mut(&host)?;
        let job = queue.pop_front();
        if queue.is_empty() {
            state.queued.remove(&host);
        } else {
            state.turn.push_back(host);
        }
        *state.running.entry(host).or_default() += 1;
        return job;
    }
    None
}

/// Whether a queued job could be taken now.
fn takeable(state: &State, caps: Caps) -> bool {
    state.turn.iter().any(|h| caps.may_take(state, *h))
}

/// A job of `host` is over.
fn finished(state: &mut State, host: u16) {
    if let Some(n) = state.running.get_mut(&host) {
        *n -= 1;
        if *n == 0 {
            state.running.remove(&host);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{Sender, channel};
    use std::time::Duration;

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    fn lane(threads: usize) -> &'static Lane {
        capped_lane(threads, threads)
    }

    fn capped_lane(threads: usize, per_host: usize) -> &'static Lane {
        Box::leak(Box::new(Lane::new(threads, per_host)))
    }

    /// Waits until `n` of the lane's threads are idle.
    fn wait_idle(lane: &Lane, n: usize) {
        let until = std::time::Instant::now() + WAIT;
        while lane.lock().idle < n {
            assert!(std::time::Instant::now() < until, "the threads never idled");
            std::thread::yield_now();
        }
    }

    /// A job that reports `tag` when it starts, then waits for its gate.
    fn gated(lane: &'static Lane, host: u16, tag: u32, tx: &Sender<u32>) -> Sender<()> {
        let (gate, wait) = channel::<()>();
        let tx = tx.clone();
        lane.spawn(host, move || {
            tx.send(tag).expect("test alive");
            wait.recv_timeout(WAIT).expect("gate opened");
        });
        gate
    }

    #[test]
    fn a_flooding_host_delays_another_by_one_job_not_its_backlog() {
        let lane = lane(2);
        let (tx, rx) = channel();
        // Host 1 takes both threads and queues ten more jobs.
        let busy: Vec<_> = (0..2).map(|i| gated(lane, 1, i, &tx)).collect();
        let mut started: Vec<u32> = (0..2)
            .map(|_| rx.recv_timeout(WAIT).expect("busy"))
            .collect();
        started.sort_unstable();
        assert_eq!(started, [0, 1]);
        let backlog: Vec<_> = (10..20).map(|i| gated(lane, 1, i, &tx)).collect();
        let other = gated(lane, 2, 99, &tx);
        // Threads free one by one: host 1 (first in turn) gets one job,
        // then host 2, not host 1's whole backlog first.
        busy[0].send(()).expect("running");
        assert_eq!(rx.recv_timeout(WAIT).expect("next"), 10);
        busy[1].send(()).expect("running");
        assert_eq!(rx.recv_timeout(WAIT).expect("then"), 99);
        backlog[0].send(()).expect("running");
        assert_eq!(rx.recv_timeout(WAIT).expect("after"), 11);
        for gate in std::iter::once(&other).chain(&backlog[1..]) {
            gate.send(()).ok();
        }
        for _ in 12..20 {
            rx.recv_timeout(WAIT).expect("the backlog runs");
        }
    }

    #[test]
    fn a_job_cancelled_before_it_starts_never_runs() {
        let lane = lane(1);
        let (tx, rx) = channel();
        let gate = gated(lane, 1, 1, &tx);
        assert_eq!(rx.recv_timeout(WAIT).expect("first"), 1);
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        lane.spawn(1, move || flag.store(true, Ordering::SeqCst))
            .abort();
        let after = gated(lane, 1, 3, &tx);
        gate.send(()).expect("running");
        assert_eq!(rx.recv_timeout(WAIT).expect("third"), 3);
        assert!(!ran.load(Ordering::SeqCst), "the cancelled job ran");
        after.send(()).expect("running");
    }

    #[test]
    fn a_burst_with_one_thread_idle_starts_the_others() {
        let lane = lane(3);
        let (tx, rx) = channel();
        let first = gated(lane, 1, 0, &tx);
        rx.recv_timeout(WAIT).expect("first");
        first.send(()).expect("running");
        // Wait until its thread is idle again.
        wait_idle(lane, 1);
        let gates: Vec<_> = (1..4).map(|i| gated(lane, 1, i, &tx)).collect();
        for _ in 1..4 {
            rx.recv_timeout(WAIT).expect("all three run at once");
        }
        for gate in &gates {
            gate.send(()).expect("running");
        }
    }

    #[test]
    fn a_burst_with_every_thread_asleep_wakes_them_all_in_a_chain() {
        let lane = lane(4);
        let (tx, rx) = channel();
        let first: Vec<_> = (0..4).map(|i| gated(lane, 1, i, &tx)).collect();
        for _ in 0..4 {
            rx.recv_timeout(WAIT).expect("four threads started");
        }
        for gate in &first {
            gate.send(()).expect("running");
        }
        wait_idle(lane, 4);
        // The worker wakes one sleeper; each woken thread wakes the next.
        let gates: Vec<_> = (4..8).map(|i| gated(lane, 1, i, &tx)).collect();
        for _ in 4..8 {
            rx.recv_timeout(WAIT).expect("all four run at once");
        }
        assert_eq!(lane.lock().threads, 4, "no thread was added");
        for gate in &gates {
            gate.send(()).expect("running");
        }
    }

    #[test]
    fn the_watcher_adds_threads_when_the_running_ones_block() {
        let lane = Box::leak(Box::new(Lane::new(3, 3).with_target(1)));
        let (tx, rx) = channel();
        // One thread is meant to run jobs; these three block, so the
        // watcher wakes or starts a thread for each of the others.
        let gates: Vec<_> = (0..3).map(|i| gated(lane, 1, i, &tx)).collect();
        for _ in 0..3 {
            rx.recv_timeout(WAIT)
                .expect("all three run despite a target of one");
        }
        assert_eq!(lane.lock().threads, 3);
        for gate in &gates {
            gate.send(()).expect("running");
        }
    }

    #[test]
    fn threads_start_on_demand_up_to_the_limit() {
        let lane = lane(3);
        let (tx, rx) = channel();
        let gates: Vec<_> = (0..5).map(|i| gated(lane, 1, i, &tx)).collect();
        for _ in 0..3 {
            rx.recv_timeout(WAIT).expect("three run at once");
        }
        assert!(
            rx.recv_timeout(Duration::from_millis(50)).is_err(),
            "a fourth ran"
        );
        assert_eq!(lane.lock().threads, 3);
        for gate in &gates {
            gate.send(()).ok();
        }
        for _ in 0..2 {
            rx.recv_timeout(WAIT).expect("the rest run");
        }
    }

    #[test]
    fn a_host_at_its_cap_leaves_the_other_threads_to_other_hosts() {
        let lane = capped_lane(3, 2);
        let (tx, rx) = channel();
        // Host 1 queues five jobs that hang: only two run.
        let hung: Vec<_> = (0..5).map(|i| gated(lane, 1, i, &tx)).collect();
        let mut started: Vec<u32> = (0..2)
            .map(|_| rx.recv_timeout(WAIT).expect("two run"))
            .collect();
        started.sort_unstable();
        assert_eq!(started, [0, 1]);
        assert!(
            rx.recv_timeout(Duration::from_millis(50)).is_err(),
            "a third job of the capped host ran"
        );
        // Host 2's job takes the free thread at once.
        let other = gated(lane, 2, 99, &tx);
        assert_eq!(rx.recv_timeout(WAIT).expect("other host"), 99);
        other.send(()).expect("running");
        // One of host 1's jobs ends: the next one of its backlog starts.
        hung[0].send(()).expect("running");
        assert_eq!(rx.recv_timeout(WAIT).expect("backlog"), 2);
        for gate in &hung[1..] {
            gate.send(()).ok();
        }
        for _ in 3..5 {
            rx.recv_timeout(WAIT).expect("the rest run");
        }
    }

    #[test]
    fn hosts_that_flood_together_leave_the_reserve_to_hosts_running_nothing() {
        // Four threads, at most three of a host, two kept for hosts that
        // run nothing.
        let lane: &'static Lane = Box::leak(Box::new(Lane::new(4, 3).with_reserve(2)));
        let (tx, rx) = channel();
        let mut gates = Vec::new();
        let started = |n: usize, what: &str| -> Vec<u32> {
            let mut got: Vec<u32> = (0..n).map(|_| rx.recv_timeout(WAIT).expect(what)).collect();
            assert!(
                rx.recv_timeout(Duration::from_millis(50)).is_err(),
                "more ran than {what}"
            );
            got.sort_unstable();
            got
        };
        // Host 1 floods: it stops where two threads are left.
        gates.extend((0..4).map(|i| gated(lane, 1, i, &tx)));
        assert_eq!(started(2, "host 1 takes two"), [0, 1]);
        // Host 2 floods too: one thread, from the reserve.
        gates.extend((10..14).map(|i| gated(lane, 2, i, &tx)));
        assert_eq!(started(1, "host 2 takes one"), [10]);
        // A third host still gets the last thread at once.
        gates.push(gated(lane, 3, 99, &tx));
        assert_eq!(started(1, "host 3 takes the last"), [99]);
        for gate in &gates {
            gate.send(()).ok();
        }
        for _ in 0..5 {
            rx.recv_timeout(WAIT).expect("the backlogs run");
        }
    }
}

//! How long an idle worker watches its queue before it sleeps.
//!
//! A command that arrives during the watch (the reply of a process on
//! another worker, a host call's result) is taken without waking a
//! sleeping thread, which costs the sender a system call and this thread
//! the scheduler's latency, tens of microseconds on a virtual machine,
//! before it runs again. Every idle worker watches for [`SPIN`]; one whose
//! peers are busy (running, or holding commands they have not taken yet)
//! watches on for up to [`SPIN_PEER`], since those peers' processes are
//! what most often sends to it next.
//!
//! Guarantees: a watch past [`SPIN`] holds a permit from the process's
//! [`SpinPermits`] (one set for every runtime in the process, so that
//! runtimes side by side, as in a test binary, do not add up their
//! watches), which hands out no more than there are busy peers, nor than
//! there are cores they leave free, so watching never takes a core a
//! running worker could use; past [`SPIN`] a watch yields its core at
//! every look, and it ends as soon as no peer is busy. A worker whose
//! watches find nothing [`SPIN_MISSES`] times in a row sleeps
//! [`SPIN_REST`] times without one.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Remote;

/// How long every idle worker watches its queue. A message round trip
/// between two workers took 29-33 µs with a sleep at every hop and 12 µs
/// with this watch, when waking a thread took about 15 µs here; bounded so
/// that an idle worker gives its core back quickly.
pub(super) const SPIN: Duration = Duration::from_micros(15);

/// How long an idle worker watches while a peer is busy. Waking a sleeping
/// worker now costs tens of microseconds on this VM, so the 15 µs watch
/// alone caught almost no reply: a round trip between processes of two
/// workers took 72-99 µs (`xrr`), and a 503-process ring whose stretches
/// sit on two workers, handing the token over every few dozen hops, ran
/// 2-2.7× slower on two workers than on one. BEAM's schedulers busy-wait
/// the same way before they sleep.
pub(super) const SPIN_PEER: Duration = Duration::from_micros(200);

/// How many times [`SPIN_PEER`] a watch may grow to. A watch that ends
/// just before its command comes (within another watch's length) lets the
/// worker sleep and pay a wake-up for it: a 503-process ring on two
/// workers leaves each idle about 196 µs a lap, and a third of its 200 µs
/// watches ended in a sleep (the ring ran 2 % slower than on one worker).
/// Such a near miss doubles the next watch, up to this bound (1 ms); a
/// watch after which nothing came soon takes it back to [`SPIN_PEER`].
pub(super) const SPIN_PEER_GROWTH: u32 = 5;

/// Watches in a row that may find nothing before the worker stops
/// watching for [`SPIN_REST`] sleeps: a worker whose commands come rarely
/// (a timer, an occasional request) does not burn a core it shares.
pub(super) const SPIN_MISSES: u32 = 4;

/// Sleeps without a watch after [`SPIN_MISSES`] fruitless watches.
pub(super) const SPIN_REST: u32 = 64;

/// What a watch past [`SPIN`] asks of the rest of the runtime.
pub(super) trait Peers {
    /// A permit to watch on (see [`SpinPermits::take`]), or false.
    fn take_permit(&self) -> bool;
    /// Gives back a permit [`Peers::take_permit`] gave.
    fn give_back(&self);
    /// Whether a peer is still busy.
    fn busy(&self) -> bool;
}

/// The permits to watch past [`SPIN`].
#[derive(Debug)]
pub(super) struct SpinPermits {
    /// Permits out.
    out: AtomicUsize,
    /// Cores the runtime's process may use.
    cores: usize,
}

impl SpinPermits {
    /// Permits for a process that may use `cores` cores.
    pub(super) fn new(cores: usize) -> Self {
        SpinPermits {
            out: AtomicUsize::new(0),
            cores,
        }
    }

    /// The permits of this process, for the cores it may use.
    pub(super) fn of_this_process() -> &'static Self {
        static PERMITS: LazyLock<SpinPermits> = LazyLock::new(|| {
            SpinPermits::new(std::thread::available_parallelism().map_or(1, usize::from))
        });
        &PERMITS
    }

    /// Takes a permit when fewer are out than `busy` (the busy peers) and
    /// than the cores those peers leave free.
    pub(super) fn take(&self, busy: usize) -> bool {
        let most = busy.min(self.cores.saturating_sub(busy));
        self.out
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < most).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives a permit back.
    pub(super) fn give_back(&self) {
        let _ = self
            .out
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// Gives a permit back when the watch holding it ends, however it ends.
struct Held<'a, P: Peers>(&'a P);

impl<P: Peers> Drop for Held<'_, P> {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

/// Whether an idle worker watches before it sleeps, and for how long.
pub(super) struct Spinner {
    /// Fruitless watches in a row.
    pub(super) misses: u32,
    /// Sleeps left without a watch.
    pub(super) rest: u32,
    /// The longest watch with a permit: [`SPIN_PEER`] (longer in tests, so
    /// that a test thread descheduled a while still sees its script).
    pub(super) peer_watch: Duration,
    /// The next watch with a permit: `peer_watch`, doubled by near misses
    /// up to [`SPIN_PEER_GROWTH`] times it ([`Spinner::woke`]).
    pub(super) watch: Duration,
    /// When the last watch with a permit ran out, until the worker wakes.
    ran_out: Option<Instant>,
}

impl Default for Spinner {
    fn default() -> Self {
        Spinner::watching(SPIN_PEER)
    }
}

impl Spinner {
    /// A spinner whose watches with a permit start at `peer_watch`.
    pub(super) fn watching(peer_watch: Duration) -> Self {
        Spinner {
            misses: 0,
            rest: 0,
            peer_watch,
            watch: peer_watch,
            ran_out: None,
        }
    }

    /// After the sleep that followed a fruitless watch: `came` says
    /// whether a command woke the worker. One that came within a watch's
    /// length of the last watch with a permit running out was a near
    /// miss: the next watch is twice as long (up to
    /// [`SPIN_PEER_GROWTH`] × `peer_watch`) and the miss does not count
    /// toward a rest. Otherwise the watch is `peer_watch` again.
    pub(super) fn woke(&mut self, came: bool) {
        let Some(at) = self.ran_out.take() else {
            return;
        };
        if came && at.elapsed() <= self.watch {
            self.watch = (self.watch * 2).min(self.peer_watch * SPIN_PEER_GROWTH);
            self.misses = self.misses.saturating_sub(1);
        } else {
            self.watch = self.peer_watch;
        }
    }

    /// Watches `remote`'s queue for up to [`SPIN`] (or until `deadline`),
    /// and on for up to its watch ([`SPIN_PEER`] or longer, see
    /// [`Spinner::woke`]) with a permit from `peers` while a peer is busy,
    /// unless resting; true when a command arrived or the worker stops.
    pub(super) fn spin(
        &mut self,
        remote: &Remote,
        deadline: Option<Instant>,
        peers: &impl Peers,
    ) -> bool {
        if self.rest > 0 {
            self.rest -= 1;
            return false;
        }
        let start = Instant::now();
        if deadline.is_some_and(|at| at <= start) {
            return false; // a timer is due: nothing to wait for
        }
        let cap = |d: Duration| deadline.map_or(start + d, |at| at.min(start + d));
        let (short, long) = (cap(SPIN), cap(self.watch));
        let mut permit = None;
        loop {
            if remote.pending.load(Ordering::Acquire) || remote.stop.load(Ordering::Relaxed) {
                self.misses = 0;
                return true;
            }
            let now = Instant::now();
            let on = if now < short {
                true
            } else if now >= long {
                false
            } else if permit.is_none() {
                let taken = peers.take_permit();
                if taken {
                    permit = Some(Held(peers));
                }
                taken
            } else {
                peers.busy()
            };
            if !on {
                if permit.is_some() && now >= long {
                    self.ran_out = Some(now);
                }
                self.miss();
                return false;
            }
            if permit.is_some() {
                std::thread::yield_now();
            }
            for _ in 0..32 {
                std::hint::spin_loop();
            }
        }
    }

    fn miss(&mut self) {
        self.misses += 1;
        if self.misses >= SPIN_MISSES {
            self.misses = 0;
            self.rest = SPIN_REST;
        }
    }
}

#[cfg(test)]
mod tests;

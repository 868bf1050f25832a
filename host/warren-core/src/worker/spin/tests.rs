//! The watch before a worker sleeps: how long, with whose permit.

use std::cell::Cell;

use super::*;
use crate::error::ProcError;
use crate::pid::Pid;
use crate::worker::Cmd;

fn kill() -> Cmd {
    Cmd::Kill(
        Pid::RUNTIME,
        ProcError::new(crate::ErrorKind::Internal, "x"),
    )
}

/// Peers whose answers a test scripts, counting what was asked; `on_ask`
/// runs at every question (a peer sending meanwhile).
struct Scripted<'a> {
    permit: bool,
    busy: bool,
    asked: Cell<u32>,
    given_back: Cell<u32>,
    on_ask: &'a dyn Fn(u32),
}

impl<'a> Scripted<'a> {
    fn new(permit: bool, busy: bool, on_ask: &'a dyn Fn(u32)) -> Self {
        Scripted {
            permit,
            busy,
            asked: Cell::new(0),
            given_back: Cell::new(0),
            on_ask,
        }
    }

    fn ask(&self) {
        self.asked.set(self.asked.get() + 1);
        (self.on_ask)(self.asked.get());
    }
}

impl Peers for Scripted<'_> {
    fn take_permit(&self) -> bool {
        self.ask();
        self.permit
    }

    fn give_back(&self) {
        self.given_back.set(self.given_back.get() + 1);
    }

    fn busy(&self) -> bool {
        self.ask();
        self.busy
    }
}

fn nothing(_: u32) {}

/// A spinner whose watches with a permit last as long as their script.
fn patient() -> Spinner {
    Spinner::watching(std::time::Duration::from_secs(10))
}

#[test]
fn a_spin_ends_on_a_pushed_command_and_rests_after_fruitless_ones() {
    let remote = Remote::default();
    let mut spinner = Spinner::default();
    let idle = Scripted::new(false, false, &nothing);
    // Nothing arrives: SPIN_MISSES watches, then SPIN_REST without one.
    for _ in 0..SPIN_MISSES {
        let start = Instant::now();
        assert!(!spinner.spin(&remote, None, &idle));
        assert!(start.elapsed() >= SPIN, "a watch lasts SPIN");
    }
    assert_eq!(spinner.rest, SPIN_REST);
    remote.push_all([kill()]);
    for _ in 0..SPIN_REST {
        assert!(!spinner.spin(&remote, None, &idle), "resting: no watch");
    }
    // Rested: the next watch sees the pending command at once.
    assert!(spinner.spin(&remote, None, &idle));
    assert_eq!(spinner.misses, 0);
    // A due timer: nothing to watch for.
    remote.pending.store(false, Ordering::Relaxed);
    assert!(!spinner.spin(&remote, Some(Instant::now()), &idle));
}

#[test]
fn a_watch_with_a_permit_goes_on_past_spin_and_gives_it_back() {
    let remote = Remote::default();
    let mut spinner = patient();
    // Asked first once SPIN has passed; the command a busy peer sends a
    // few looks later is taken by the watch that goes on.
    let send_at_third = |n: u32| {
        if n == 3 {
            remote.push_all([kill()]);
        }
    };
    let peers = Scripted::new(true, true, &send_at_third);
    let start = Instant::now();
    assert!(spinner.spin(&remote, None, &peers));
    assert!(start.elapsed() >= SPIN);
    assert_eq!(peers.asked.get(), 3, "a permit, then busy twice");
    assert_eq!(peers.given_back.get(), 1);
}

#[test]
fn a_watch_without_a_permit_ends_at_spin() {
    let remote = Remote::default();
    let mut spinner = patient();
    // The command comes while the permit is refused: too late.
    let send = |_: u32| remote.push_all([kill()]);
    let peers = Scripted::new(false, true, &send);
    assert!(!spinner.spin(&remote, None, &peers));
    assert_eq!(peers.asked.get(), 1, "asked once, past SPIN");
    assert_eq!(peers.given_back.get(), 0, "nothing to give back");
    assert_eq!(spinner.misses, 1);
}

#[test]
fn a_watch_ends_when_no_peer_is_busy_any_more() {
    let remote = Remote::default();
    let mut spinner = patient();
    let send_at_second = |n: u32| {
        if n == 2 {
            remote.push_all([kill()]);
        }
    };
    let peers = Scripted::new(true, false, &send_at_second);
    assert!(!spinner.spin(&remote, None, &peers));
    assert_eq!(peers.asked.get(), 2, "the permit, then busy: no");
    assert_eq!(peers.given_back.get(), 1);
}

#[test]
fn permits_are_at_most_the_busy_peers_and_the_cores_they_leave() {
    let two = SpinPermits::new(2);
    assert!(!two.take(0), "no busy peer: nothing to watch for");
    assert!(two.take(1));
    assert!(!two.take(1), "one busy peer, one watcher");
    two.give_back();
    assert!(two.take(1));
    two.give_back();
    assert!(!two.take(2), "both cores run workers");
    let eight = SpinPermits::new(8);
    assert!((0..3).all(|_| eight.take(3)));
    assert!(!eight.take(3), "three busy, three watching");
    assert!(eight.take(4));
    assert!(!eight.take(6), "six busy leave two cores, and four watch");
    let one = SpinPermits::new(1);
    assert!(
        !one.take(1),
        "one core: a watch would take it from the busy"
    );
    // Giving back more than was taken leaves none out, not a wrap.
    one.give_back();
    assert_eq!(one.out.load(Ordering::Relaxed), 0);
}

#[test]
fn a_near_miss_lengthens_the_next_watch_and_a_far_one_resets_it() {
    let remote = Remote::default();
    let base = std::time::Duration::from_millis(2);
    let mut spinner = Spinner::watching(base);
    let peers = Scripted::new(true, true, &nothing);
    // A watch with a permit runs out; a command wakes the sleep at once.
    let start = Instant::now();
    assert!(!spinner.spin(&remote, None, &peers));
    assert!(start.elapsed() >= base, "the whole watch");
    assert_eq!(spinner.misses, 1);
    spinner.woke(true);
    assert_eq!(spinner.watch, base * 2, "a near miss doubles it");
    assert_eq!(spinner.misses, 0, "and does not count toward a rest");
    // Woken by nothing (a timer): back to the base.
    assert!(!spinner.spin(&remote, None, &peers));
    spinner.woke(false);
    assert_eq!(spinner.watch, base);
    assert_eq!(spinner.misses, 1);
    // Near misses in a row grow it to its bound, no further.
    for _ in 0..4 {
        assert!(!spinner.spin(&remote, None, &peers));
        spinner.woke(true);
    }
    assert_eq!(spinner.watch, base * SPIN_PEER_GROWTH);
    // A watch that ended with no permit grows nothing.
    let refused = Scripted::new(false, true, &nothing);
    let mut short = Spinner::watching(base);
    assert!(!short.spin(&remote, None, &refused));
    short.woke(true);
    assert_eq!(short.watch, base);
    assert_eq!(short.misses, 1);
}

//! A process's turn on its worker: `cpu_slice` bounds a process, not each
//! of its coroutines.
//!
//! A process with many runnable coroutines got a slice for each in a row
//! (each preempted coroutine went back on the queue, and the next one of
//! the same process started a fresh slice), so 2,000 looping coroutines
//! held their worker 11.6 s and 20,000 short ones 40 s: the neighbour's
//! timer, the host's items and every other process waited.
//!
//! [`Turn`] adds up the runs of the process that ran last, until another
//! process runs. Once they reach the slice, that process's wake-ups are
//! moved to the back of the run queue instead of resumed
//! (`machine/runq.rs`), so whatever else is queued runs first. When a
//! whole pass of the queue found nothing else to run, the front-end's run
//! ends there ([`Next::Yield`]), so that the worker fires the timers due
//! and takes what other workers sent (it does so only between runs): a
//! neighbour whose timer came due during the pass then runs. When a second
//! pass finds nothing else either, the process starts a fresh turn: alone
//! on its worker it is never held back.
//!
//! Guarantees: another process whose wake-up is queued waits at most one
//! slice of a busy process's runs (plus a pass of cheap moves); one whose
//! timer comes due meanwhile, at most two; a process alone keeps its
//! worker, two passes of moves per slice.

use std::time::Duration;

/// The turn of the process that ran last.
#[derive(Debug, Default)]
pub(crate) struct Turn {
    /// The process (0: none yet).
    id: i64,
    /// What its runs since another process ran took.
    used: Duration,
    /// Its wake-ups moved back since it last ran.
    moved: usize,
    /// A pass found nothing else to run and ended the front-end's run.
    yielded: bool,
}

/// What to do with a wake-up taken from the run queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Resume it.
    Run,
    /// Move it to the back of the queue.
    Move,
    /// Move it to the back and end the front-end's run (see the module).
    Yield,
}

impl Turn {
    /// Process `id` is about to run: its turn goes on, or a fresh one
    /// starts if another process ran last.
    pub(crate) fn enter(&mut self, id: i64) {
        if self.id == id {
            self.moved = 0;
            self.yielded = false;
        } else {
            *self = Turn {
                id,
                ..Turn::default()
            };
        }
    }

    /// Process `id` ran for `took`.
    pub(crate) fn ran(&mut self, id: i64, took: Duration) {
        if self.id == id {
            self.used = self.used.saturating_add(took);
        }
    }

    /// What to do with a wake-up of process `id` taken from the queue,
    /// `queued` others behind it (see the module); counts the move.
    pub(crate) fn next(&mut self, id: i64, slice: Duration, queued: usize) -> Next {
        if self.id != id || self.used < slice {
            return Next::Run;
        }
        if self.moved > queued {
            // A whole pass found nothing else to run.
            self.moved = 0;
            if !self.yielded {
                self.yielded = true;
                return Next::Yield;
            }
            self.used = Duration::ZERO;
            self.yielded = false;
            return Next::Run;
        }
        self.moved += 1;
        Next::Move
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLICE: Duration = Duration::from_millis(2);

    #[test]
    fn a_process_past_its_slice_waits_for_the_others_queued() {
        let mut t = Turn::default();
        t.enter(1);
        t.ran(1, Duration::from_millis(1));
        assert_eq!(t.next(1, SLICE, 5), Next::Run, "within its slice");
        t.ran(1, Duration::from_millis(1));
        // Three others queued behind: its wake-ups move back.
        for _ in 0..3 {
            assert_eq!(t.next(1, SLICE, 3), Next::Move);
        }
        assert_eq!(t.next(2, SLICE, 3), Next::Run, "another process runs");
        t.enter(2);
        assert_eq!(
            t.next(1, SLICE, 3),
            Next::Run,
            "a fresh turn once another ran"
        );
    }

    #[test]
    fn a_process_alone_gets_a_fresh_turn_after_one_pass() {
        let mut t = Turn::default();
        t.enter(1);
        t.ran(1, SLICE);
        // Two of its own wake-ups queued: a pass moves them and ends the
        // run (the worker's timers); a second pass, then it runs.
        let pass = |t: &mut Turn| (0..3).map(|_| t.next(1, SLICE, 2)).collect::<Vec<_>>();
        assert_eq!(pass(&mut t), vec![Next::Move; 3]);
        assert_eq!(t.next(1, SLICE, 2), Next::Yield, "nothing else was queued");
        assert_eq!(pass(&mut t), vec![Next::Move; 3]);
        assert_eq!(t.next(1, SLICE, 2), Next::Run, "a fresh turn");
        assert_eq!(t.next(1, SLICE, 2), Next::Run, "within it");
    }
}

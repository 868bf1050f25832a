//! Where a new process runs among its host's workers.
//!
//! A parent's first child goes to the parent's worker: a process that
//! starts one helper usually talks to it, and a message between two
//! processes of one worker costs no thread wake-up (several microseconds).
//! That holds unless the parent's worker is crowded: it holds more than
//! twice the least loaded worker's processes plus [`PLACEMENT_SLACK`], so
//! chains of first children cannot pile every process on one worker.
//!
//! Further children come in runs per worker, counted within the parent's
//! current burst: its spawns with no spawn by another process, and no
//! exit, on its worker in between (`Core::spawn` keeps the count). A child
//! goes where its previous sibling went while that worker has fewer than a
//! run more of the burst's children than the worker with the fewest; then
//! to the next worker in turn (the least loaded, if that one is crowded).
//!
//! A child of a process of a host of several workers waits on its
//! parent's worker until its burst is placed, all at once
//! (`core/burst.rs`; [`Home::Wait`]), so the run is an equal share of the
//! burst per worker ([`burst_run`]): one block per worker, in spawn
//! order. Siblings often talk to their neighbours (a ring, a pipeline, a
//! tree's subtrees): a 503-node ring crosses workers twice a lap on two
//! workers (it crossed 18 times with the runs below), eight pairs spawned
//! by one driver spread four and four, and independent work (a fan-out of
//! 10,000, placed a preemption's share at a time) spreads evenly. A child
//! placed as it is spawned (its host is not its parent's) cannot know
//! its burst's size: its run is a quarter of the burst's children so
//! far, up to [`SIBLING_RUN`] ([`online_run`]).
//!
//! Runs are counted in the burst's own children, not in the workers'
//! loads, for two reasons. Loads lag: a sibling placed on another worker
//! starts at once and spawns its helper there while the parent is still
//! placing the next, so choices made from the loads depend on that
//! timing (the burst's counts do not: see the tests). And a run
//! that grew with all the children a parent ever spawned made a
//! long-lived spawner's later rounds come in one run: eight pairs started
//! by a process that had started a few rounds before all landed on one
//! worker, slower on two workers than on one. Spawns from outside go to
//! the least loaded worker, ties taken in turn.

use std::ops::Range;

/// How many more processes than twice the least loaded worker's a
/// parent's worker may hold and still take the parent's first child.
pub(crate) const PLACEMENT_SLACK: usize = 4;

/// How many more of a burst's children than the worker with the fewest the
/// worker of the previous one may take before the next goes elsewhere (a
/// quarter of the burst's children so far, when fewer).
pub(crate) const SIBLING_RUN: usize = 32;

/// What a new process is placed near.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Home<'a> {
    /// Nothing: spawned from outside.
    None,
    /// Its parent's worker: it is the parent's first child.
    Parent(usize),
    /// The worker of its parent's previous child; `burst[w]` is how many of
    /// the parent's current burst went to worker `w` (absolute index), and
    /// `run` how many more than the worker with the fewest the previous
    /// child's worker may take.
    Sibling {
        worker: usize,
        burst: &'a [u16],
        run: usize,
    },
    /// Its parent's worker, where it waits until its burst is placed
    /// (`core/burst.rs`).
    Wait(usize),
}

/// The run of a child placed as it is spawned (its burst's size not yet
/// known): a quarter of the burst's `children` so far, up to
/// [`SIBLING_RUN`].
pub(crate) fn online_run(children: usize) -> usize {
    SIBLING_RUN.min(children / 4)
}

/// The run of a burst of `n` children placed at once over `workers`
/// workers: an equal share each, so a burst comes in one block per
/// worker.
pub(crate) fn burst_run(n: usize, workers: usize) -> usize {
    n.div_ceil(workers.max(1))
}

/// The worker of `workers` for a new process. `load(w)` is how many
/// processes worker `w` holds, `turn` a counter that breaks ties in
/// turn, `home` what it is placed near.
pub(crate) fn choose(
    workers: Range<usize>,
    turn: usize,
    home: Home,
    load: impl Fn(usize) -> usize,
) -> usize {
    let n = workers.len().max(1);
    let mut best = workers.start + turn % n;
    let mut min = load(best);
    for k in 1..n {
        let w = workers.start + (turn + k) % n;
        let l = load(w);
        if l < min {
            (best, min) = (w, l);
        }
    }
    match home {
        Home::Parent(h) if workers.contains(&h) && uncrowded(load(h), min) => h,
        Home::Wait(h) if workers.contains(&h) => h,
        Home::Sibling {
            worker: h,
            burst,
            run,
        } if workers.contains(&h) => {
            let placed = |w: usize| usize::from(burst.get(w).copied().unwrap_or(0));
            let fewest = workers.clone().map(placed).min().unwrap_or(0);
            if placed(h) < fewest + run && uncrowded(load(h), min) {
                return h;
            }
            let next = workers.start + (h - workers.start + 1) % n;
            if uncrowded(load(next), min) {
                next
            } else {
                best
            }
        }
        _ => best,
    }
}

/// Whether a worker holding `load` processes may take a process placed
/// near it, when the least loaded holds `min`.
fn uncrowded(load: usize, min: usize) -> bool {
    load <= 2 * min + PLACEMENT_SLACK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(loads: &[usize]) -> impl Fn(usize) -> usize + '_ {
        |w| loads[w]
    }

    #[test]
    fn a_first_child_stays_with_its_parent_on_a_balanced_host() {
        assert_eq!(choose(0..2, 1, Home::Parent(0), with(&[3, 2])), 0);
        assert_eq!(choose(0..2, 0, Home::Parent(1), with(&[3, 9])), 1);
    }

    #[test]
    fn a_first_child_leaves_a_crowded_worker() {
        assert_eq!(choose(0..2, 0, Home::Parent(0), with(&[20, 2])), 1);
        // Exactly at the bound it still stays.
        assert_eq!(choose(0..2, 0, Home::Parent(0), with(&[8, 2])), 0);
        assert_eq!(choose(0..2, 0, Home::Parent(0), with(&[9, 2])), 1);
    }

    #[test]
    fn other_spawns_go_to_the_least_loaded_worker() {
        assert_eq!(choose(0..3, 0, Home::None, with(&[5, 1, 3])), 1);
        assert_eq!(choose(0..3, 2, Home::None, with(&[5, 1, 3])), 1);
    }

    #[test]
    fn ties_are_taken_in_turn() {
        let picks: Vec<_> = (0..4)
            .map(|t| choose(0..2, t, Home::None, with(&[0, 0])))
            .collect();
        assert_eq!(picks, [0, 1, 0, 1]);
    }

    #[test]
    fn a_home_on_another_host_is_ignored() {
        // Workers 2..4 belong to this host; the parent runs on worker 0.
        assert_eq!(choose(2..4, 0, Home::Parent(0), with(&[0, 0, 4, 1])), 3);
        assert_eq!(
            choose(2..4, 0, sibling(0, &[99, 0, 0, 0]), with(&[0, 0, 4, 1])),
            3
        );
    }

    fn sibling(worker: usize, burst: &[u16]) -> Home<'_> {
        let children = burst.iter().map(|n| usize::from(*n)).sum();
        let run = online_run(children);
        Home::Sibling { worker, burst, run }
    }

    #[test]
    fn a_sibling_follows_the_previous_one_until_its_worker_is_a_run_ahead() {
        // 25 children in the burst: runs of 6.
        assert_eq!(choose(0..2, 1, sibling(0, &[15, 10]), with(&[16, 11])), 0);
        assert_eq!(choose(0..2, 1, sibling(0, &[16, 10]), with(&[17, 11])), 1);
        // The burst's counts decide, not the loads (within the crowding
        // bound).
        assert_eq!(
            choose(0..2, 1, sibling(0, &[15, 10]), with(&[1500, 1000])),
            0
        );
        assert_eq!(
            choose(0..2, 1, sibling(0, &[16, 10]), with(&[1000, 1500])),
            1
        );
    }

    #[test]
    fn a_burst_s_first_siblings_alternate_whatever_the_loads_say() {
        // The next worker looks busier (its siblings started at once and
        // spawned helpers; the parent's have not run yet): still its turn.
        for turn in 0..2 {
            assert_eq!(choose(0..2, turn, sibling(0, &[1, 0]), with(&[3, 6])), 1);
            assert_eq!(choose(0..2, turn, sibling(1, &[1, 1]), with(&[3, 6])), 0);
        }
        // A new burst of a parent that spawned before turns from its last
        // child's worker.
        assert_eq!(choose(0..2, 0, sibling(1, &[0, 0]), with(&[40, 40])), 0);
        // In order over three workers.
        assert_eq!(choose(0..3, 0, sibling(1, &[1, 1, 0]), with(&[1, 1, 1])), 2);
        assert_eq!(choose(0..3, 0, sibling(2, &[1, 1, 1]), with(&[1, 1, 1])), 0);
    }

    #[test]
    fn a_sibling_avoids_a_crowded_worker() {
        assert_eq!(choose(0..2, 1, sibling(0, &[1, 0]), with(&[10, 25])), 0);
        assert_eq!(choose(0..2, 1, sibling(0, &[1, 0]), with(&[10, 24])), 1);
        assert_eq!(
            choose(0..3, 0, sibling(0, &[1, 0, 0]), with(&[13, 40, 12])),
            2
        );
        // Mid-run, a crowded worker is left for the next.
        assert_eq!(choose(0..2, 1, sibling(0, &[15, 10]), with(&[30, 10])), 1);
    }

    #[test]
    fn a_few_siblings_spread_even_on_a_busy_host() {
        let placed = spawn_children(2, 5_000, 8, false);
        // With the parent, on worker 0, nine processes: four and five.
        let on_0 = 1 + placed.iter().filter(|w| **w == 0).count();
        let placed_empty = spawn_children(2, 0, 8, false);
        let on_0_empty = 1 + placed_empty.iter().filter(|w| **w == 0).count();
        assert!((4..=5).contains(&on_0_empty), "{placed_empty:?}");
        assert!((4..=5).contains(&on_0), "{placed:?}");
    }

    #[test]
    fn siblings_are_placed_alike_while_the_loads_lag() {
        // Each child placed away from the parent's worker starts at once
        // and spawns a helper there; the parent's wait until it yields.
        // Placement goes by the burst's own counts, so it does not move
        // (until the other worker holds twice the parent's: crowded).
        for n in [8, 16] {
            let lagging = spawn_children(2, 0, n, true);
            assert_eq!(lagging, spawn_children(2, 0, n, false), "{n} children");
        }
        for n in [8, 32, 64] {
            let placed = spawn_children(2, 0, n, true);
            let on_0 = placed.iter().filter(|w| **w == 0).count();
            assert!(
                on_0.abs_diff(n - on_0) <= n / 4,
                "{on_0} of {n} on the parent's worker: {placed:?}"
            );
        }
        let eight = spawn_children(2, 0, 8, true);
        assert_eq!(eight.iter().filter(|w| **w == 0).count(), 4, "{eight:?}");
    }

    /// Places `n` children of one parent in one burst, as a spawner does,
    /// on workers that each hold `base` processes already, and returns
    /// each child's worker; with `lag`, a child placed away from the
    /// parent's worker adds its helper to that worker's load at once.
    fn spawn_children(workers: usize, base: usize, n: usize, lag: bool) -> Vec<usize> {
        let mut loads = vec![base; workers];
        let mut burst = vec![0u16; workers];
        let mut last = None;
        loads[0] += 1; // the parent
        (0..n)
            .map(|turn| {
                let home = last.map_or(Home::Parent(0), |w| sibling(w, &burst));
                let w = choose(0..workers, turn, home, with(&loads));
                loads[w] += if lag && w != 0 { 2 } else { 1 };
                burst[w] += 1;
                last = Some(w);
                w
            })
            .collect()
    }

    #[test]
    fn a_spawner_s_children_come_in_runs_and_stay_balanced() {
        let placed = spawn_children(2, 0, 503, false);
        let switches = placed.windows(2).filter(|p| p[0] != p[1]).count();
        assert!(
            switches <= 20,
            "{switches} worker changes among 503 siblings"
        );
        let on_0 = placed.iter().filter(|w| **w == 0).count();
        assert!(
            on_0.abs_diff(503 - on_0) <= SIBLING_RUN + 1,
            "{on_0} of 503 on worker 0"
        );
        let placed = spawn_children(3, 0, 10_000, false);
        for w in 0..3 {
            let n = placed.iter().filter(|x| **x == w).count();
            assert!(
                n.abs_diff(10_000 / 3) <= SIBLING_RUN + 1,
                "worker {w} got {n}"
            );
        }
    }
}

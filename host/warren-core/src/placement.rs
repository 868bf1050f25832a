//! Where a new process runs among its host's workers.
//!
//! A parent's first child goes to the parent's worker: a process that
//! starts one helper usually talks to it, and a message between two
//! processes of one worker costs no thread wake-up (several microseconds).
//! That holds unless the parent's worker holds more than twice the least
//! loaded worker's processes plus [`PLACEMENT_SLACK`], so chains of first
//! children cannot pile every process on one worker.
//!
//! Further children go where their previous sibling went while that worker
//! holds fewer than a run more processes than the least loaded one, then to
//! the least loaded: a spawner's children come in runs per worker. A run
//! is a quarter of the children the parent has spawned so far, up to
//! [`SIBLING_RUN`]: a parent's first few children alternate, as spawns
//! from outside do (eight pairs spawned by one driver spread four and four
//! over two workers, however many processes the host already runs); a
//! parent with hundreds of children places them 32 at a time. Siblings
//! often talk to their neighbours (a ring, a pipeline, a tree's subtrees):
//! in runs, a 503-node ring crosses workers about 16 times a lap on two
//! workers instead of at every hop, while independent work (a fan-out of
//! 10,000) still spreads, evenly to within a run. Spawns from outside go
//! to the least loaded worker, ties taken in turn.

use std::ops::Range;

/// How many more processes than twice the least loaded worker's a
/// parent's worker may hold and still take the parent's first child.
pub(crate) const PLACEMENT_SLACK: usize = 4;

/// How many more processes than the least loaded worker's the worker of a
/// parent's previous child may hold before the next child goes elsewhere
/// (a quarter of the children the parent has spawned, when fewer).
pub(crate) const SIBLING_RUN: usize = 32;

/// What a new process is placed near.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Home {
    /// Nothing: spawned from outside.
    None,
    /// Its parent's worker: it is the parent's first child.
    Parent(usize),
    /// The worker of its parent's previous child, which has spawned
    /// `children` before it.
    Sibling { worker: usize, children: usize },
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
        Home::Parent(h) if workers.contains(&h) && load(h) <= 2 * min + PLACEMENT_SLACK => h,
        Home::Sibling {
            worker: h,
            children,
        } if workers.contains(&h) && load(h) < min + SIBLING_RUN.min(children / 4) => h,
        _ => best,
    }
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
        assert_eq!(choose(2..4, 0, sibling(0, 99), with(&[0, 0, 4, 1])), 3);
    }

    fn sibling(worker: usize, children: usize) -> Home {
        Home::Sibling { worker, children }
    }

    #[test]
    fn a_sibling_follows_the_previous_one_until_its_worker_is_a_run_ahead() {
        assert_eq!(choose(0..2, 1, sibling(0, 500), with(&[1031, 1000])), 0);
        assert_eq!(choose(0..2, 1, sibling(0, 500), with(&[1032, 1000])), 1);
        // A parent's first children have short runs, however many
        // processes the host holds.
        assert_eq!(choose(0..2, 1, sibling(0, 100), with(&[1024, 1000])), 0);
        assert_eq!(choose(0..2, 1, sibling(0, 100), with(&[1025, 1000])), 1);
        assert_eq!(choose(0..2, 1, sibling(0, 3), with(&[1000, 1000])), 1);
        assert_eq!(choose(0..2, 0, sibling(0, 3), with(&[1000, 1000])), 0);
    }

    #[test]
    fn a_few_siblings_spread_even_on_a_busy_host() {
        let placed = spawn_children(2, 5_000, 8);
        // With the parent, on worker 0, nine processes: four and five.
        let on_0 = 1 + placed.iter().filter(|w| **w == 0).count();
        let placed_empty = spawn_children(2, 0, 8);
        let on_0_empty = 1 + placed_empty.iter().filter(|w| **w == 0).count();
        assert!((4..=5).contains(&on_0_empty), "{placed_empty:?}");
        assert!((4..=5).contains(&on_0), "{placed:?}");
    }

    /// Places `n` children of one parent in turn, as a spawner does, on
    /// workers that each hold `base` processes already, and returns each
    /// child's worker.
    fn spawn_children(workers: usize, base: usize, n: usize) -> Vec<usize> {
        let mut loads = vec![base; workers];
        let mut home = Home::Parent(0);
        loads[0] += 1; // the parent
        (0..n)
            .map(|turn| {
                let w = choose(0..workers, turn, home, with(&loads));
                loads[w] += 1;
                home = sibling(w, turn + 1);
                w
            })
            .collect()
    }

    #[test]
    fn a_spawner_s_children_come_in_runs_and_stay_balanced() {
        let placed = spawn_children(2, 0, 503);
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
        let placed = spawn_children(3, 0, 10_000);
        for w in 0..3 {
            let n = placed.iter().filter(|x| **x == w).count();
            assert!(
                n.abs_diff(10_000 / 3) <= SIBLING_RUN + 1,
                "worker {w} got {n}"
            );
        }
    }
}

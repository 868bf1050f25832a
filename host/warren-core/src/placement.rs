//! Where a new process runs among its host's workers.
//!
//! A parent's first child goes to the parent's worker: a process that
//! starts one helper usually talks to it, and a message between two
//! processes of one worker costs no thread wake-up (several microseconds).
//! That holds unless the parent's worker holds more than twice the least
//! loaded worker's processes plus [`PLACEMENT_SLACK`], so chains of first
//! children cannot pile every process on one worker. Further children (a
//! spawner fanning work out, a supervisor) and spawns from outside go to
//! the least loaded worker, ties taken in turn.

use std::ops::Range;

/// How many more processes than twice the least loaded worker's a
/// parent's worker may hold and still take the parent's first child.
pub(crate) const PLACEMENT_SLACK: usize = 4;

/// The worker of `workers` for a new process. `load(w)` is how many
/// processes worker `w` holds, `turn` a counter that breaks ties in
/// turn, `home` the parent's worker when this is its first child.
pub(crate) fn choose(
    workers: Range<usize>,
    turn: usize,
    home: Option<usize>,
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
    match home.filter(|h| workers.contains(h)) {
        Some(h) if load(h) <= 2 * min + PLACEMENT_SLACK => h,
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
        assert_eq!(choose(0..2, 1, Some(0), with(&[3, 2])), 0);
        assert_eq!(choose(0..2, 0, Some(1), with(&[3, 9])), 1);
    }

    #[test]
    fn a_first_child_leaves_a_crowded_worker() {
        assert_eq!(choose(0..2, 0, Some(0), with(&[20, 2])), 1);
        // Exactly at the bound it still stays.
        assert_eq!(choose(0..2, 0, Some(0), with(&[8, 2])), 0);
        assert_eq!(choose(0..2, 0, Some(0), with(&[9, 2])), 1);
    }

    #[test]
    fn other_spawns_go_to_the_least_loaded_worker() {
        assert_eq!(choose(0..3, 0, None, with(&[5, 1, 3])), 1);
        assert_eq!(choose(0..3, 2, None, with(&[5, 1, 3])), 1);
    }

    #[test]
    fn ties_are_taken_in_turn() {
        let picks: Vec<_> = (0..4)
            .map(|t| choose(0..2, t, None, with(&[0, 0])))
            .collect();
        assert_eq!(picks, [0, 1, 0, 1]);
    }

    #[test]
    fn a_home_on_another_host_is_ignored() {
        // Workers 2..4 belong to this host; the parent runs on worker 0.
        assert_eq!(choose(2..4, 0, Some(0), with(&[0, 0, 4, 1])), 3);
    }
}

//! Which services the supervisor's step must look at, so that an event
//! costs about the services it touches rather than all of them.
//!
//! Every step walked every service in dependency order, again until a
//! walk changed nothing, and the driver then walked them all twice more
//! (the next deadline, whether anything runs): 20,000 services took 25 s
//! to start, one `started` event at a time, and 100,000 were still
//! stopping after ten minutes. Now a step visits only the services
//! marked since (one whose state or wish changed, and its neighbours in
//! the dependency graph, whose next move reads its state) and those
//! whose deadline came, in the order the walks visited them: by
//! dependency order, and a service marked behind the walk's position in
//! the next walk. A service no change reached would have answered "no
//! change" to the walk, so what the step does is what the walks did.
//!
//! Guarantees: each visit and mark is O(log services); the next deadline
//! and whether anything is busy are read in O(1) and O(log services).

use std::collections::BTreeSet;
use std::time::Duration;

/// The services a step must visit, their deadlines, and which are busy.
pub(crate) struct Work {
    /// Each service's position in dependency order.
    pos: Vec<usize>,
    /// The service at each position.
    topo: Vec<usize>,
    /// Positions to visit.
    marked: BTreeSet<usize>,
    /// Where the current walk is: positions below it wait for the next.
    cursor: usize,
    /// `(deadline, service)`, one per service that has one.
    deadlines: BTreeSet<(Duration, usize)>,
    /// Each service's entry in `deadlines`.
    due: Vec<Option<Duration>>,
    /// Whether each service runs or is about to.
    busy: Vec<bool>,
    /// How many are.
    busy_count: usize,
    /// How many visits [`Work::next`] handed out.
    #[cfg(test)]
    pub(crate) visits: u64,
}

impl Work {
    /// Work for services in dependency order `topo` (a permutation of
    /// `0..topo.len()`), none marked, busy or due.
    pub(crate) fn new(topo: Vec<usize>) -> Self {
        let mut pos = vec![0; topo.len()];
        for (p, &n) in topo.iter().enumerate() {
            pos[n] = p;
        }
        Work {
            due: vec![None; topo.len()],
            busy: vec![false; topo.len()],
            pos,
            topo,
            marked: BTreeSet::new(),
            cursor: 0,
            deadlines: BTreeSet::new(),
            busy_count: 0,
            #[cfg(test)]
            visits: 0,
        }
    }

    /// Service `n` must be visited in this step.
    pub(crate) fn mark(&mut self, n: usize) {
        self.marked.insert(self.pos[n]);
    }

    /// Marks every service whose deadline is at or before `now`, and
    /// starts a step's first walk.
    pub(crate) fn begin(&mut self, now: Duration) {
        while let Some(&(at, n)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            self.due[n] = None;
            self.mark(n);
        }
        self.cursor = 0;
    }

    /// The next service to visit: the first marked one at or after the
    /// walk's position, else the first of the next walk; `None` when
    /// none is marked.
    pub(crate) fn next(&mut self) -> Option<usize> {
        let p = match self.marked.range(self.cursor..).next() {
            Some(&p) => p,
            None => *self.marked.first()?,
        };
        self.marked.remove(&p);
        self.cursor = p + 1;
        #[cfg(test)]
        {
            self.visits += 1;
        }
        Some(self.topo[p])
    }

    /// Records service `n`'s deadline (`None`: it has none) and whether
    /// it is busy.
    pub(crate) fn settle(&mut self, n: usize, deadline: Option<Duration>, busy: bool) {
        if self.due[n] != deadline {
            if let Some(old) = self.due[n] {
                self.deadlines.remove(&(old, n));
            }
            if let Some(new) = deadline {
                self.deadlines.insert((new, n));
            }
            self.due[n] = deadline;
        }
        if self.busy[n] != busy {
            self.busy[n] = busy;
            if busy {
                self.busy_count += 1;
            } else {
                self.busy_count -= 1;
            }
        }
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    /// Whether no service is busy.
    pub(crate) fn idle(&self) -> bool {
        self.busy_count == 0
    }

    /// The services in dependency order.
    #[cfg(test)]
    pub(crate) fn order(&self) -> &[usize] {
        &self.topo
    }
}

/// Indices with every service after the services it requires (each
/// once; a cycle, which the configuration refuses, is cut where it is
/// met). A loop with its own stack: a chain of 100,000 requirements
/// overflowed the thread's stack as a recursion.
pub(crate) fn topological(requires: &[Vec<usize>]) -> Vec<usize> {
    let mut seen = vec![false; requires.len()];
    let mut out = Vec::with_capacity(requires.len());
    // (service, how many of its requirements were looked at)
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..requires.len() {
        if seen[root] {
            continue;
        }
        seen[root] = true;
        stack.push((root, 0));
        while let Some(top) = stack.last_mut() {
            let (n, i) = *top;
            if let Some(&d) = requires[n].get(i) {
                top.1 += 1;
                if !seen[d] {
                    seen[d] = true;
                    stack.push((d, 0));
                }
            } else {
                out.push(n);
                stack.pop();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_comes_after_what_it_requires_and_a_long_chain_fits() {
        // 0 requires 2, 2 requires 1; 3 requires 0 and 1.
        let order = topological(&[vec![2], vec![], vec![1], vec![0, 1]]);
        assert_eq!(order, vec![1, 2, 0, 3]);
        let chain: Vec<Vec<usize>> = (0..200_000).map(|i| vec![i + 1]).collect();
        let mut chain = chain;
        chain.push(Vec::new());
        let order = topological(&chain);
        assert_eq!(order.first(), Some(&200_000));
        assert_eq!(order.last(), Some(&0));
    }

    #[test]
    fn a_service_marked_behind_the_walk_waits_for_the_next_walk() {
        // Dependency order: 2, 0, 1.
        let mut w = Work::new(vec![2, 0, 1]);
        w.mark(1);
        w.mark(2);
        w.begin(Duration::ZERO);
        assert_eq!(w.next(), Some(2));
        w.mark(2); // behind nothing yet: position 0 < cursor 1
        w.mark(0); // ahead: this walk
        assert_eq!(w.next(), Some(0));
        assert_eq!(w.next(), Some(1));
        assert_eq!(w.next(), Some(2));
        assert_eq!(w.next(), None);
    }

    #[test]
    fn deadlines_come_due_in_order_and_a_moved_one_is_not_kept() {
        let mut w = Work::new(vec![0, 1, 2]);
        let s = Duration::from_secs;
        w.settle(0, Some(s(5)), true);
        w.settle(1, Some(s(3)), true);
        w.settle(1, Some(s(9)), true);
        assert_eq!(w.next_deadline(), Some(s(5)));
        w.begin(s(6));
        assert_eq!(w.next(), Some(0));
        assert_eq!(w.next(), None);
        assert_eq!(w.next_deadline(), Some(s(9)));
        assert!(!w.idle());
        w.settle(0, None, false);
        w.settle(1, None, false);
        assert!(w.idle());
        assert_eq!(w.next_deadline(), None);
    }
}

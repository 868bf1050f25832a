//! Group restarts as OTP does them: a `one_for_all` or `rest_for_one`
//! group's failed service starts again only once every sibling its
//! failure took down is down. Before, the failed service restarted on
//! its own backoff, perhaps while a sibling that ignored CANCEL was still
//! stopping (up to its `stop_timeout`).
//!
//! [`Holds`] counts, per group, the services on their way down for a
//! group restart (stopping, or owing a stop, to restart: `Then::Restart`).
//! While a group's count is not zero, its services in backoff wait past
//! their restart time. The supervisor files each service's part when it
//! settles it, so the count follows the states it is derived from; when a
//! count leaves or reaches zero, the group's services are visited again.
//!
//! Guarantees: O(1) per settled service whose part did not change; a
//! group's services are walked once when its count leaves zero and once
//! when it reaches it, not once per member going down.

use std::collections::HashMap;

/// Each service's part in its group's count, and the counts.
pub(crate) struct Holds {
    /// Whether each service is counted (on its way down to restart).
    counted: Vec<bool>,
    /// Services on their way down to restart, per group (absent: none).
    down: HashMap<String, usize>,
}

impl Holds {
    /// No service counted, among `n`.
    pub(crate) fn new(n: usize) -> Self {
        Holds {
            counted: vec![false; n],
            down: HashMap::new(),
        }
    }

    /// Files whether service `n` of `group` is on its way down to restart;
    /// true when the group's count left zero or reached it (its services
    /// in backoff must be looked at again).
    pub(crate) fn file(&mut self, n: usize, group: &str, down: bool) -> bool {
        if self.counted[n] == down {
            return false;
        }
        self.counted[n] = down;
        if down {
            let c = self.down.entry(group.to_owned()).or_default();
            *c += 1;
            *c == 1
        } else {
            let Some(c) = self.down.get_mut(group) else {
                return false;
            };
            *c -= 1;
            if *c == 0 {
                self.down.remove(group);
                return true;
            }
            false
        }
    }

    /// Whether a service of `group` is on its way down to restart.
    pub(crate) fn holds(&self, group: &str) -> bool {
        self.down.contains_key(group)
    }

    /// The count of `group` (tests compare it with a scan).
    #[cfg(test)]
    pub(crate) fn count(&self, group: &str) -> usize {
        self.down.get(group).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_reports_leaving_and_reaching_zero_only() {
        let mut h = Holds::new(3);
        assert!(h.file(0, "g", true), "0 -> 1");
        assert!(!h.file(1, "g", true), "1 -> 2");
        assert!(!h.file(1, "g", true), "unchanged");
        assert!(h.holds("g") && !h.holds("other"));
        assert!(!h.file(0, "g", false), "2 -> 1");
        assert!(h.file(1, "g", false), "1 -> 0");
        assert!(!h.holds("g"));
        assert!(!h.file(2, "g", false), "never counted");
        assert_eq!(h.count("g"), 0);
    }
}

//! About how many bytes the messages a process has been handed and not
//! taken yet hold, for its mailbox's byte bound
//! ([`HostLimits::mailbox_bytes`](crate::HostLimits::mailbox_bytes)).
//!
//! A front-end reports only how many messages a process took, not which
//! (a Lua process takes from its inbox and from each listened topic in
//! any order), so the bytes to give back are estimated: sizes are kept
//! by class (powers of two), and a message taken is taken from the
//! smallest class, at that class's average. A sender cannot make the
//! estimate fall short by much: an unread class stays counted until
//! every smaller one is gone, and within a class sizes differ at most
//! twofold. Taking the smallest can over-count (a big message taken
//! while small ones wait); that lasts only until the mailbox is empty,
//! when the count starts again from nothing.
//!
//! Guarantees: no allocation until a process is sent a message, and none
//! per message after while it uses a few size classes; every operation is a short walk
//! of at most 65 classes (one per power of two a byte count can have).

/// Classes whose room an emptied estimate keeps.
const KEEP_CLASSES: usize = 4;

/// Unread messages by size class: `(class, messages, bytes)`, smallest
/// class first, only classes that hold messages; boxed, none while there
/// are none (every process's entry holds one: see `entry_tests`).
#[derive(Default, Debug)]
pub(super) struct UnreadSizes {
    #[expect(
        clippy::box_collection,
        reason = "8 bytes in every process's entry where a Vec is 24"
    )]
    classes: Option<Box<Vec<(u8, u32, u64)>>>,
}

/// The class of a message of `bytes`: its highest set bit, plus one.
fn class_of(bytes: u64) -> u8 {
    #[expect(clippy::cast_possible_truncation, reason = "at most 64")]
    let class = (u64::BITS - bytes.leading_zeros()) as u8;
    class
}

impl UnreadSizes {
    /// Counts one message of `bytes` handed to the process.
    pub(super) fn add(&mut self, bytes: u64) {
        let class = class_of(bytes);
        let classes = self.classes.get_or_insert_default();
        match classes.binary_search_by_key(&class, |c| c.0) {
            Ok(i) => {
                let c = &mut classes[i];
                c.1 = c.1.saturating_add(1);
                c.2 = c.2.saturating_add(bytes);
            }
            Err(i) => classes.insert(i, (class, 1, bytes)),
        }
    }

    /// Takes `n` messages off (see the module docs): about the bytes they
    /// held. More than it holds takes what it holds.
    pub(super) fn take(&mut self, mut n: u32) -> u64 {
        let Some(classes) = self.classes.as_deref_mut() else {
            return 0;
        };
        let mut bytes = 0u64;
        while n > 0 {
            let Some(c) = classes.first_mut() else {
                break;
            };
            let k = n.min(c.1);
            let part = if k == c.1 {
                c.2
            } else {
                c.2 / u64::from(c.1) * u64::from(k)
            };
            c.1 -= k;
            c.2 -= part;
            bytes = bytes.saturating_add(part);
            n -= k;
            if c.1 == 0 {
                classes.remove(0);
            }
        }
        // Emptied: the few classes a process uses stay allocated (a mailbox
        // going from one message to none must not cost two allocations a
        // message); a burst over many classes gives its memory back.
        if classes.is_empty() && classes.capacity() > KEEP_CLASSES {
            self.classes = None;
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_messages_give_back_exactly_what_they_held() {
        let mut u = UnreadSizes::default();
        for _ in 0..10 {
            u.add(1000);
        }
        assert_eq!(u.take(3), 3000);
        assert_eq!(u.take(100), 7000);
        assert_eq!(u.take(1), 0);
    }

    #[test]
    fn small_messages_are_taken_first_so_big_unread_ones_stay_counted() {
        // A flood of big messages to an unread topic, with small ones the
        // receiver reads: the big ones stay counted.
        let mut u = UnreadSizes::default();
        for _ in 0..50 {
            u.add(1 << 20);
            u.add(100);
            assert_eq!(u.take(1), 100);
        }
        assert_eq!(u.take(u32::MAX), 50 << 20);
    }

    #[test]
    fn within_a_class_the_estimate_is_within_twofold() {
        // Sizes 1024 and 2047 share a class: reading the small ones gives
        // back the average, so the unread big ones count at least half.
        let mut u = UnreadSizes::default();
        for _ in 0..100 {
            u.add(2047);
            u.add(1024);
            u.take(1);
        }
        let left = u.take(u32::MAX);
        assert!(left >= 100 * 2047 / 2, "{left}");
        assert!(left <= 100 * 2047, "{left}");
    }

    #[test]
    fn classes_stay_ordered_and_few() {
        let mut u = UnreadSizes::default();
        for b in [5000u64, 7, 0, 1 << 40, 7, 300] {
            u.add(b);
        }
        let classes: Vec<u8> = u
            .classes
            .iter()
            .flat_map(|c| c.iter().map(|c| c.0))
            .collect();
        assert_eq!(classes, [0, 3, 9, 13, 41]);
        assert_eq!(u.take(2), 7); // the empty message and one of 7 bytes
    }
}

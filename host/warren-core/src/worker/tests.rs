//! A worker's queue as other workers hand their outboxes to it.

use super::*;
use crate::error::ProcError;

/// A kill command for pid number `n`, to tell commands apart.
fn kill(n: u64) -> Cmd {
    Cmd::Kill(
        Pid::from_u64(n),
        ProcError::new(crate::ErrorKind::Internal, "x"),
    )
}

fn numbers(cmds: &[Cmd]) -> Vec<u64> {
    cmds.iter().map(|c| c.target().as_u64()).collect()
}

#[test]
fn handed_outboxes_arrive_whole_in_order_and_are_left_empty() {
    let remote = Remote::default();
    let mut outbox: Vec<Cmd> = (1..=3).map(kill).collect();
    remote.hand_all(&mut outbox);
    assert!(outbox.is_empty());
    assert!(remote.has_pending());
    // A second hand-over before the worker looked goes behind the first.
    outbox.extend((4..=5).map(kill));
    remote.hand_all(&mut outbox);
    assert!(outbox.is_empty());
    let mut taken = Vec::new();
    remote.take_into(&mut taken);
    assert_eq!(numbers(&taken), [1, 2, 3, 4, 5]);
    assert!(!remote.has_pending());
}

#[test]
fn an_outbox_keeps_the_buffer_the_worker_gave_back_unless_it_is_huge() {
    let remote = Remote::default();
    // The worker takes its queue with a buffer of its own (room for 64).
    let mut incoming: Vec<Cmd> = Vec::with_capacity(64);
    let mut outbox = vec![kill(1)];
    remote.hand_all(&mut outbox);
    remote.take_into(&mut incoming);
    assert_eq!(numbers(&incoming), [1]);
    // The next hand-over trades the outbox for that buffer: no allocation
    // on either side in a steady exchange.
    outbox.push(kill(2));
    remote.hand_all(&mut outbox);
    assert!(outbox.is_empty());
    assert!(outbox.capacity() >= 64, "{}", outbox.capacity());
    // A buffer past KEEP_CAPACITY is not kept.
    let mut taken = Vec::new();
    remote.take_into(&mut taken);
    let mut big = Vec::with_capacity(KEEP_CAPACITY * 4);
    remote.take_into(&mut big); // the queue now holds that big, empty buffer
    let mut outbox = vec![kill(3)];
    remote.hand_all(&mut outbox);
    assert_eq!(outbox.capacity(), 0);
}

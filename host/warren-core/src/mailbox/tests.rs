//! The mailbox's routing and counting rules on their own.

use std::sync::Arc;

use super::Mailbox;
use crate::error::{ErrorKind, ProcError};
use crate::item::{Event, Item, Message};
use crate::payload::Payload;
use crate::pid::Pid;
use crate::value::Value;

fn pid(n: u64) -> Pid {
    Pid::new(0, n)
}

fn msg(topic: &str, payloads: &[i64]) -> Item {
    Item::Msg(Message {
        from: pid(1),
        topic: Arc::from(topic),
        payloads: payloads
            .iter()
            .map(|n| Payload::from(Value::Int(*n)))
            .collect(),
        held: None,
    })
}

fn payloads(m: &Message) -> Vec<Value> {
    m.payloads
        .iter()
        .map(Payload::to_value)
        .map(|v| v.into_owned())
        .collect()
}

fn exit(from: u64) -> Item {
    Item::Event(Event::Exit {
        from: pid(from),
        result: Ok(Value::Nil),
    })
}

#[test]
fn messages_keep_their_order_and_each_taken_one_is_counted_once() {
    let mut mb = Mailbox::default();
    for n in 1..=3 {
        mb.deliver(msg("job", &[n]))
            .expect("a message is the mailbox's");
    }
    let taken: Vec<Vec<Value>> = std::iter::from_fn(|| mb.take_message())
        .map(|m| payloads(&m))
        .collect();
    assert_eq!(taken, [1, 2, 3].map(|n| vec![Value::Int(n)]));
    assert_eq!(mb.take_taken(), 3);
    assert_eq!(mb.take_taken(), 0, "a count is reported once");
    assert!(mb.take_message().is_none());
    assert_eq!(mb.take_taken(), 0, "an empty take counts nothing");
}

#[test]
fn a_listened_topic_gets_its_payloads_and_the_inbox_the_rest() {
    let mut mb = Mailbox::default();
    let id = mb.listen("news");
    assert_eq!(
        mb.listen("news"),
        id,
        "again: the same listen, its queue kept"
    );
    mb.deliver(msg("news", &[1])).expect("filed");
    mb.deliver(msg("other", &[2])).expect("filed");
    mb.deliver(msg("news", &[3, 4])).expect("filed");
    mb.deliver(msg("news", &[])).expect("filed");
    let got = |mb: &mut Mailbox| mb.take_topic("news", id).flatten().map(Payload::into_value);
    assert_eq!(got(&mut mb), Some(Value::Int(1)), "one payload as itself");
    let both = Value::Array(vec![Value::Int(3), Value::Int(4)]);
    assert_eq!(got(&mut mb), Some(both), "several as an array");
    assert_eq!(
        got(&mut mb),
        Some(Value::Array(vec![])),
        "none as an empty array"
    );
    assert_eq!(mb.take_topic("news", id).map(|v| v.is_none()), Some(true));
    assert!(mb.take_topic("other", id).is_none(), "not listened to");
    let inbox = mb.take_message().expect("the other topic's message");
    assert_eq!(&*inbox.topic, "other");
    assert_eq!(mb.take_taken(), 4);
}

#[test]
fn unlistening_drops_what_was_buffered_and_counts_it_as_taken() {
    let mut mb = Mailbox::default();
    let id = mb.listen("t");
    for n in 0..5 {
        mb.deliver(msg("t", &[n])).expect("filed");
    }
    mb.unlisten("t", id);
    assert_eq!(mb.take_taken(), 5);
    assert!(mb.take_topic("t", id).is_none());
    mb.deliver(msg("t", &[9])).expect("filed");
    assert!(
        mb.take_message().is_some(),
        "no longer listened: the inbox's"
    );
    mb.unlisten("never", id);
    assert_eq!(mb.take_taken(), 1);
}

#[test]
fn a_topic_is_unlistened_when_its_last_handle_is_released() {
    let mut mb = Mailbox::default();
    let id = mb.listen("t");
    mb.listen("t");
    mb.deliver(msg("t", &[1])).expect("filed");
    mb.release("t", id);
    assert!(mb.take_topic("t", id).is_some(), "one handle still listens");
    mb.deliver(msg("t", &[2])).expect("filed");
    mb.release("t", id);
    assert!(mb.take_topic("t", id).is_none(), "the last handle is gone");
    assert_eq!(mb.take_taken(), 2, "what it buffered is counted as taken");
    mb.release("t", id);
    mb.deliver(msg("t", &[3])).expect("filed");
    assert!(mb.take_message().is_some(), "the inbox's again");
}

#[test]
fn events_are_taken_in_order_or_by_a_test_leaving_the_rest_in_order() {
    let mut mb = Mailbox::default();
    for from in [7, 8, 9] {
        mb.deliver(exit(from)).expect("an event is the mailbox's");
    }
    let from = |e: &Event| match e {
        Event::Exit { from, .. } | Event::LinkDown { from, .. } | Event::Cancel { from, .. } => {
            *from
        }
    };
    let eight = mb.take_event_where(|e| from(e) == pid(8)).expect("found");
    assert_eq!(from(&eight), pid(8));
    assert!(mb.take_event_where(|e| from(e) == pid(8)).is_none());
    assert_eq!(mb.take_event().map(|e| from(&e)), Some(pid(7)));
    assert_eq!(mb.take_event().map(|e| from(&e)), Some(pid(9)));
    assert!(mb.take_event().is_none());
    assert_eq!(mb.take_taken(), 0, "events are not messages");
}

#[test]
fn a_timer_fire_is_seen_once() {
    let mut mb = Mailbox::default();
    mb.deliver(Item::Timer(1)).expect("a fire is the mailbox's");
    mb.deliver(Item::Timer(2)).expect("filed");
    assert!(mb.take_fired(1));
    assert!(!mb.take_fired(1), "seen once");
    assert!(mb.take_fired(2), "each timer its own");
    assert!(!mb.take_fired(3), "never armed");
    assert!(mb.fired.is_empty());
}

#[test]
fn what_is_not_the_mailboxs_is_handed_back() {
    let mut mb = Mailbox::default();
    let kill = Item::Kill(ProcError::new(ErrorKind::Canceled, "stop"));
    assert!(matches!(mb.deliver(kill), Err(Item::Kill(_))));
    assert!(matches!(mb.deliver(Item::Wake), Err(Item::Wake)));
    assert!(mb.take_message().is_none() && mb.take_event().is_none());
}

#[test]
fn events_hold_their_size_against_the_host_until_taken_or_dropped() {
    use crate::limits::{HostLimits, HostQuota};
    let quota = Arc::new(HostQuota::new("h".into(), HostLimits::default(), false));
    let mut mb = Mailbox::counted(quota.clone());
    let big = |from: u64| {
        Item::Event(Event::Exit {
            from: pid(from),
            result: Ok(Value::str("r".repeat(10_000))),
        })
    };
    mb.deliver(big(1)).expect("filed");
    mb.deliver(big(2)).expect("filed");
    let two = quota.memory_used();
    assert!(two >= 20_000, "{two} bytes held for two 10 KB results");
    assert!(mb.take_event().is_some());
    assert_eq!(quota.memory_used(), two / 2, "one taken, its half back");
    mb.deliver(big(3)).expect("filed");
    drop(mb);
    assert_eq!(quota.memory_used(), 0, "the rest back with the mailbox");
}

#[test]
fn a_handle_of_an_earlier_listen_neither_reads_nor_stops_a_later_one() {
    // Two handles listen; one unlistens the topic (for both); a new listen
    // begins. The stale handle's drop, read and unlisten leave it alone:
    // its drop used to take the new listen's count to zero and drop what
    // it had buffered, which its senders had been told was sent.
    let mut mb = Mailbox::default();
    let old = mb.listen("t");
    mb.listen("t");
    mb.unlisten("t", old);
    let new = mb.listen("t");
    assert_ne!(old, new, "a new listen, a new number");
    mb.deliver(msg("t", &[1])).expect("filed");
    mb.release("t", old);
    mb.unlisten("t", old);
    assert!(
        mb.take_topic("t", old).is_none(),
        "the stale handle reads closed"
    );
    let got = mb.take_topic("t", new).flatten().map(Payload::into_value);
    assert_eq!(got, Some(Value::Int(1)), "the live listen kept its payload");
    mb.deliver(msg("t", &[2])).expect("filed");
    assert!(mb.take_message().is_none(), "still routed to the listen");
    mb.release("t", new);
    mb.deliver(msg("t", &[3])).expect("filed");
    assert!(
        mb.take_message().is_some(),
        "its last handle gone: the inbox's"
    );
}

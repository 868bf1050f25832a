//! A message's topic string is shared with the message sent before it
//! when the topic is the same (`Core::topic_of`), and never confused with
//! another topic: a receiver sees every topic as it was sent, in order.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::frontend::Program;
use crate::item::Item;
use crate::limits::HostLimits;
use crate::runtime::{RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, host, program};
use crate::value::Value;

const WAIT: Duration = Duration::from_secs(10);

/// The topics the sender sends, in order.
const TOPICS: [&str; 5] = ["a", "a", "b", "a", "ab"];

/// Reports each message's topic and the address of its string, keeping
/// the messages (so no string is freed and its address reused).
fn recorder(tx: Sender<(String, usize)>) -> Program {
    let tx = Mutex::new(tx);
    let kept = Mutex::new(Vec::new());
    program("t:recorder", move |_, _, item| {
        if let Item::Msg(m) = item {
            let seen = (
                m.topic.to_string(),
                Arc::as_ptr(&m.topic).cast::<u8>() as usize,
            );
            kept.lock().expect("lock").push(m);
            tx.lock().expect("lock").send(seen).expect("test alive");
        }
        false
    })
}

/// Spawns a recorder and sends it one message per topic of [`TOPICS`].
fn sender() -> Program {
    program("t:sender", move |core, me, item| {
        if matches!(item, Item::Start { .. }) {
            let to = core
                .spawn(me, SpawnRequest::new("t:recorder", "app", vec![]))
                .expect("spawned");
            for topic in TOPICS {
                core.send(me, to, topic, vec![Value::Int(1).into()])
                    .expect("sent");
            }
        }
        false
    })
}

#[test]
fn a_repeated_topic_shares_the_last_string_and_each_topic_arrives_as_sent() {
    let (tx, rx) = channel();
    let rt = RuntimeBuilder::new()
        .host(host("app", 1, HostLimits::default()))
        .frontend(Arc::new(Factory))
        .program(recorder(tx))
        .program(sender())
        .start()
        .expect("runtime");
    rt.spawn(SpawnRequest::new("t:sender", "app", vec![]))
        .expect("spawn");
    let got: Vec<(String, usize)> = TOPICS
        .iter()
        .map(|_| rx.recv_timeout(WAIT).expect("the recorder reports"))
        .collect();
    let topics: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics, TOPICS);
    assert_eq!(got[0].1, got[1].1, "a repeated topic shares its string");
    assert_ne!(got[1].1, got[2].1, "another topic has its own");
    assert_ne!(
        got[0].1, got[3].1,
        "a topic sent again after another is new"
    );
}

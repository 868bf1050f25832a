//! A message from another worker carries its sender's pid text, which the
//! receiving VM keeps by slot for the next message from the same sender
//! (`guest-lua/src/machine/inbox.rs`, `push_from`). Senders whose serial
//! numbers share a slot must each read as themselves; the same for the
//! topics it keeps strings for.

use warren_core::Value;
use warren_tests::*;

/// Senders: more than the VM keeps texts for (256), so slots are shared.
const SENDERS: i64 = 700;

/// Messages each sender sends.
const ROUNDS: i64 = 3;

/// Spawns the target and the senders in one burst (placed over both
/// workers: about half the senders' messages cross), then returns the
/// target's count of messages whose `from` was not their sender.
const MAIN: &str = r#"return function(senders, rounds)
    local me = process.pid()
    local target = process.spawn("t:target", "test:host", me, senders * rounds)
    for _ = 1, senders do process.spawn("t:sender", "test:host", target, rounds) end
    return process.inbox():receive():payload():data()
end"#;

/// Sends its own pid `rounds` times, yielding between sends so that the
/// senders' messages interleave.
const SENDER: &str = r#"local time = require("time")
return function(target, rounds)
    for _ = 1, rounds do
        process.send(target, "s", process.pid())
        time.sleep("0s")
    end
end"#;

/// Counts the messages whose `from` is not the pid they carry.
const TARGET: &str = r#"return function(parent, total)
    local inbox, bad = process.inbox(), 0
    for _ = 1, total do
        local m = inbox:receive()
        if m:from() ~= m:payload():data() then bad = bad + 1 end
    end
    process.send(parent, "r", bad)
end"#;

#[test]
fn every_message_from_another_worker_names_its_own_sender() {
    let v = App::new()
        .workers(2)
        .entry("t:main", MAIN)
        .entry("t:sender", SENDER)
        .entry("t:target", TARGET)
        .run("t:main", vec![Value::Int(SENDERS), Value::Int(ROUNDS)])
        .expect("ok");
    assert_eq!(v, Value::Int(0), "messages named the wrong sender");
}

/// Sends `rounds` messages whose topics cycle through `topics` names,
/// each carrying its own topic.
const TOPICAL: &str = r#"local time = require("time")
return function(target, rounds, topics)
    for i = 1, rounds do
        local topic = "topic-" .. (i % topics)
        process.send(target, topic, topic)
        if i % 7 == 0 then time.sleep("0s") end
    end
end"#;

/// Counts the messages whose topic is not the one they carry.
const TOPIC_TARGET: &str = r#"return function(parent, total)
    local inbox, bad = process.inbox(), 0
    for _ = 1, total do
        local m = inbox:receive()
        if m:topic() ~= m:payload():data() then bad = bad + 1 end
    end
    process.send(parent, "r", bad)
end"#;

/// The target and 40 senders in one burst, each sending 60 messages on
/// 20 topics (more than the VM keeps strings for: slots are shared).
const TOPIC_MAIN: &str = r#"return function()
    local target = process.spawn("t:target", "test:host", process.pid(), 40 * 60)
    for _ = 1, 40 do process.spawn("t:sender", "test:host", target, 60, 20) end
    return process.inbox():receive():payload():data()
end"#;

#[test]
fn every_message_from_another_worker_has_its_own_topic() {
    let v = App::new()
        .workers(2)
        .entry("t:main", TOPIC_MAIN)
        .entry("t:sender", TOPICAL)
        .entry("t:target", TOPIC_TARGET)
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, Value::Int(0), "messages read with another topic");
}

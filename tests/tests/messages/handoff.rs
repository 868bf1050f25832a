//! A same-VM message for a receiver that waits for it goes straight to
//! that receiver, counted nowhere (`machine/send.rs`: `hand_over`,
//! `Core::may_hand_over`). It must answer as the counted path does: a
//! mailbox already full refuses it though a receiver waits, and the
//! messages handed over leave nothing counted behind them. (A message sent
//! while items for the receiver wait in the core goes behind them: the
//! `ordering` tests of a new child fail when a hand-over skips that.)

use warren_core::{HostLimits, Value};
use warren_tests::*;

/// Its mailbox bound in these tests.
const LIMIT: u32 = 3;

/// Answers `rounds` messages on `topic` (its inbox, or a channel
/// listening on it) one at a time, each with an "ack" carrying its data,
/// then waits there again; keeps a listen channel on "held" it never
/// reads.
const WAITER: &str = r#"return function(parent, rounds, topic)
    local held = process.listen("held")
    local ch = topic == "inbox" and process.inbox() or process.listen(topic)
    for _ = 1, rounds do
        local v = ch:receive()
        if topic == "inbox" then v = v:payload():data() end
        assert(process.send(parent, "ack", v))
    end
    ch:receive()
end"#;

/// Round trips to a waiter on `topic`, then fills its mailbox with
/// messages it never reads and sends one more where it waits: returns
/// the count of round trips, of the held messages taken, and the
/// refusal's retryable flag and text.
fn run(topic: &str, workers: usize) -> Value {
    let main = format!(
        r#"return function()
    local waiter = process.spawn("t:waiter", "test:host", process.pid(), 100, "{topic}")
    local inbox = process.inbox()
    local to = "{topic}" == "inbox" and "m" or "{topic}"
    local trips = 0
    for i = 1, 100 do
        assert(process.send(waiter, to, i))
        if inbox:receive():payload():data() == i then trips = trips + 1 end
    end
    -- The waiter waits on "{topic}" again: nothing is counted now, so the
    -- mailbox takes exactly {LIMIT} held messages.
    local held = 0
    for _ = 1, {LIMIT} do
        if process.send(waiter, "held", "x") then held = held + 1 end
    end
    local ok, err = process.send(waiter, to, 0)
    assert(not ok, "a full mailbox took a message because a receiver waited")
    return {{ trips = trips, held = held, retryable = err:retryable(), text = tostring(err) }}
end"#
    );
    App::new()
        .workers(workers)
        .entry("t:waiter", WAITER)
        .entry("t:main", &main)
        .limits(HostLimits {
            mailbox_limit: LIMIT,
            ..HostLimits::default()
        })
        .run("t:main", vec![])
        .expect("main ran")
}

fn assert_answered_as_counted(v: &Value) {
    assert_eq!(v.get("trips"), Some(&Value::Int(100)), "{v:?}");
    assert_eq!(v.get("held"), Some(&Value::Int(i64::from(LIMIT))), "{v:?}");
    assert_eq!(v.get("retryable"), Some(&Value::Bool(true)), "{v:?}");
    let Some(Value::Str(text)) = v.get("text") else {
        panic!("no refusal text: {v:?}");
    };
    let text = String::from_utf8_lossy(text);
    assert!(text.contains("holds mailbox_limit (3) messages"), "{text}");
}

#[test]
fn handed_over_inbox_messages_leave_nothing_counted_and_a_full_mailbox_still_refuses() {
    assert_answered_as_counted(&run("inbox", 1));
}

#[test]
fn handed_over_listen_messages_leave_nothing_counted_and_a_full_mailbox_still_refuses() {
    assert_answered_as_counted(&run("work", 1));
}

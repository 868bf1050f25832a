//! Events published on the bus through a real runtime: one publish is
//! one encoding, shared by every subscriber's message.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::item::Item;
use crate::limits::HostLimits;
use crate::payload::Payload;
use crate::runtime::{RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, host, program};
use crate::value::Value;

/// How long the test waits for anything before failing.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum Report {
    /// A subscriber subscribed.
    Ready,
    /// A subscriber got an event: where its bytes are, and its data.
    Got { at: usize, data: Option<Value> },
}

/// Subscribes to everything, reports every event, and ends after one
/// whose data is shorter than 100 bytes.
fn subscriber(tx: Sender<Report>) -> crate::frontend::Program {
    let tx = Mutex::new(tx);
    program("sub", move |core, me, item| {
        let report = |r: Report| tx.lock().expect("lock").send(r).expect("test alive");
        match item {
            Item::Start { .. } => {
                core.bus_subscribe(me, "*", None).expect("subscribed");
                report(Report::Ready);
                false
            }
            Item::Msg(msg) => {
                let at = match &msg.payloads[1] {
                    Payload::Packed(p) => p.bytes().as_ptr() as usize,
                    Payload::Value(_) => 0,
                };
                let data = msg.payloads[1].to_value().get("data").cloned();
                let last = data
                    .as_ref()
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.len() < 100);
                report(Report::Got { at, data });
                last
            }
            _ => false,
        }
    })
}

/// Publishes an event of 10,000 bytes of data, then one of 5, then ends.
fn publisher() -> crate::frontend::Program {
    program("pub", |core, me, item| {
        if let Item::Start { .. } = item {
            let data = Value::str("x".repeat(10_000));
            core.bus_send(me, "orders", "created", "/o/1", data)
                .expect("published");
            core.bus_send(me, "orders", "created", "/o/2", Value::str("small"))
                .expect("published");
        }
        true
    })
}

/// Starts `subscribers` subscribers on a host with `limits`, then the
/// publisher; answers each subscriber's reports of the large event.
fn publish(subscribers: usize, limits: HostLimits) -> Vec<usize> {
    let (tx, rx) = channel();
    let rt = RuntimeBuilder::new()
        .host(host("app", 1, limits))
        .frontend(Arc::new(Factory))
        .program(subscriber(tx))
        .program(publisher())
        .start()
        .expect("runtime");
    for _ in 0..subscribers {
        rt.spawn(SpawnRequest::new("sub", "app", Vec::new()))
            .expect("spawned");
        assert!(matches!(rx.recv_timeout(WAIT), Ok(Report::Ready)));
    }
    rt.spawn(SpawnRequest::new("pub", "app", Vec::new()))
        .expect("spawned");
    let (mut places, mut small) = (Vec::new(), 0);
    while small < subscribers {
        match rx.recv_timeout(WAIT) {
            Ok(Report::Got { data: Some(d), .. }) if d == Value::str("small") => small += 1,
            Ok(Report::Got { at, data }) => {
                assert_eq!(data, Some(Value::str("x".repeat(10_000))));
                places.push(at);
            }
            other => panic!("{other:?}"),
        }
    }
    places
}

#[test]
fn one_event_is_one_copy_shared_by_every_subscriber() {
    let places = publish(3, HostLimits::default());
    assert_eq!(places.len(), 3);
    assert!(places[0] != 0, "the event was a value tree per subscriber");
    assert!(
        places.iter().all(|at| *at == places[0]),
        "each subscriber got its own copy: {places:?}"
    );
}

#[test]
fn a_large_event_reaches_subscribers_up_to_four_largest_messages_and_a_small_one_all() {
    // 16 KiB messages: 64 KiB for one publish's larger event, six
    // deliveries of its 10 KB; the small event reaches all ten.
    let limits = HostLimits {
        max_message_bytes: 16 << 10,
        ..HostLimits::default()
    };
    assert_eq!(publish(10, limits).len(), 6);
}

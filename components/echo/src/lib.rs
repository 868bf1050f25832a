//! Echoes every message back to its sender on the same topic, until a
//! message on topic "stop"; returns how many it echoed. Spawned with a pid
//! and a count, it first sends that many "tick" messages to the pid,
//! waiting whenever the receiver's mailbox is full.

use std::time::Duration;

use warren_sdk::{Args, Error, Payload, Process};

/// Sends `tick` to `to`; while its mailbox is full (a retryable error),
/// lets the other processes run and tries again.
fn send_tick(to: &str, tick: u64) -> Result<(), Error> {
    loop {
        match warren_sdk::send(to, "tick", &tick) {
            Err(e) if e.retryable => warren_sdk::sleep(Duration::ZERO),
            other => return other,
        }
    }
}

struct Echo;

impl Process for Echo {
    fn run(args: Args) -> Result<Payload, Error> {
        if args.len() == 2 {
            let to: String = args.get(0)?;
            let count: u64 = args.get(1)?;
            for i in 0..count {
                send_tick(&to, i)?;
            }
        }
        let mut echoed: u64 = 0;
        while let Some(msg) = warren_sdk::receive(None)? {
            if msg.topic == "stop" {
                break;
            }
            warren_sdk::send_raw(&msg.from, &msg.topic, msg.payloads)?;
            echoed += 1;
        }
        warren_sdk::payload(&echoed)
    }
}

warren_sdk::export!(Echo);

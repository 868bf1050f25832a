//! Echoes every message back to its sender on the same topic, until a
//! message on topic "stop"; returns how many it echoed.

use warren_sdk::{Args, Error, Payload, Process};

struct Echo;

impl Process for Echo {
    fn run(_args: Args) -> Result<Payload, Error> {
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

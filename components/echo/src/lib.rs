//! Echoes every message back to its sender on the same topic, until a
//! message on topic "stop"; returns how many it echoed. Spawned with a pid
//! and a count, it first sends that many "tick" messages to the pid.

use warren_sdk::{Args, Error, Payload, Process};

struct Echo;

impl Process for Echo {
    fn run(args: Args) -> Result<Payload, Error> {
        if args.len() == 2 {
            let to: String = args.get(0)?;
            let count: u64 = args.get(1)?;
            for i in 0..count {
                warren_sdk::send(&to, "tick", &i)?;
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

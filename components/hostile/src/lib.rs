//! Attacks its host on request, for the hostile suite. The first argument
//! names the attack; every attack returns what the host answered as
//! `"<KIND>:<count>"` (the error kind of the first refusal and how many
//! operations succeeded before it) or `"ok:<count>"` when none was refused.
//!
//! - `flood <pid> <n>`: sends up to n messages to pid without waiting.
//! - `storm <entry> <host> <n>`: spawns up to n processes of entry on host.
//! - `huge <pid|self> <bytes>`: sends one message of that many bytes.
//! - `huge-spawn <entry> <host> <bytes>`: spawns with an argument that large.
//! - `spawn-on <entry> <host>` / `send-to <pid>`: one spawn or send.
//! - `terminate <pid>`: one terminate.
//! - `channel-fill <n>`: makes a channel asking for n slots and fills it.
//! - `timers <n>`: holds n timer channels at once.
//! - `long-log <bytes>`: logs one line that long.

use std::time::Duration;

use warren_sdk::{Args, Channel, Error, ErrorKind, Payload, Process};

struct Hostile;

/// `"<KIND>:<count>"` for the first error of `attempts`, or `"ok:<count>"`.
fn outcome(attempts: impl Iterator<Item = Result<(), Error>>) -> Result<Payload, Error> {
    let mut done = 0u64;
    for attempt in attempts {
        if let Err(e) = attempt {
            let kind = format!("{:?}", e.kind);
            let kind = kind.trim_start_matches("ErrorKind::");
            return warren_sdk::payload(&format!("{kind}:{done}"));
        }
        done += 1;
    }
    warren_sdk::payload(&format!("ok:{done}"))
}

/// One string payload of `bytes` bytes.
fn blob(bytes: usize) -> Payload {
    warren_sdk::payload(&"x".repeat(bytes)).unwrap_or_default()
}

impl Process for Hostile {
    fn run(args: Args) -> Result<Payload, Error> {
        let mode: String = args.get(0)?;
        match mode.as_str() {
            "flood" => {
                let (to, n): (String, u64) = (args.get(1)?, args.get(2)?);
                outcome((0..n).map(|i| warren_sdk::send(&to, "flood", &i)))
            }
            "storm" => {
                let (entry, host, n): (String, String, u64) =
                    (args.get(1)?, args.get(2)?, args.get(3)?);
                outcome((0..n).map(|_| warren_sdk::spawn(&entry, &host, &[]).map(|_| ())))
            }
            "huge" => {
                let (to, bytes): (String, usize) = (args.get(1)?, args.get(2)?);
                let to = if to == "self" { warren_sdk::pid() } else { to };
                outcome(std::iter::once(warren_sdk::send_raw(
                    &to,
                    "huge",
                    vec![blob(bytes)],
                )))
            }
            "huge-spawn" => {
                let (entry, host, bytes): (String, String, usize) =
                    (args.get(1)?, args.get(2)?, args.get(3)?);
                let spawned = warren_sdk::spawn(&entry, &host, &[blob(bytes)]).map(|_| ());
                outcome(std::iter::once(spawned))
            }
            "spawn-on" => {
                let (entry, host): (String, String) = (args.get(1)?, args.get(2)?);
                outcome(std::iter::once(
                    warren_sdk::spawn(&entry, &host, &[]).map(|_| ()),
                ))
            }
            "send-to" => {
                let to: String = args.get(1)?;
                outcome(std::iter::once(warren_sdk::send(&to, "hello", &1)))
            }
            "terminate" => {
                let to: String = args.get(1)?;
                outcome(std::iter::once(warren_sdk::terminate(&to)))
            }
            "channel-fill" => {
                let n: u32 = args.get(1)?;
                let ch = Channel::new(n);
                outcome((0..n).map(|i| ch.send(&i)))
            }
            "timers" => {
                let n: u64 = args.get(1)?;
                let held: Vec<Channel> = (0..n)
                    .map(|_| warren_sdk::after(Duration::from_secs(3600)))
                    .collect();
                warren_sdk::payload(&format!("ok:{}", held.len()))
            }
            "long-log" => {
                let bytes: usize = args.get(1)?;
                warren_sdk::log(warren_sdk::Level::Warn, &"y".repeat(bytes));
                warren_sdk::payload("ok:1")
            }
            other => Err(Error::new(
                ErrorKind::Invalid,
                format!("no attack {other:?}"),
            )),
        }
    }
}

warren_sdk::export!(Hostile);

//! Attacks its host on request, for the hostile suite. The first argument
//! names the attack; every attack returns what the host answered as
//! `"<KIND>:<count>"` (the error kind of the first refusal and how many
//! operations succeeded before it) or `"ok:<count>"` when none was refused.
//!
//! - `flood <pid> <n>`: sends up to n messages to pid without waiting.
//! - `flood-bytes <pid> <n> <bytes>`: the same, each message that large.
//! - `storm <entry> <host> <n>`: spawns up to n processes of entry on host.
//! - `huge <pid|self> <bytes>`: sends one message of that many bytes.
//! - `huge-spawn <entry> <host> <bytes>`: spawns with an argument that large.
//! - `spawn-on <entry> <host>` / `send-to <pid>`: one spawn or send.
//! - `terminate <pid>`: one terminate.
//! - `channel-fill <n>`: makes a channel asking for n slots and fills it.
//! - `timers <n>`: holds n timer channels at once.
//! - `churn <rounds> <n>`: makes n channels and drops them, rounds times.
//! - `random <bytes>`: asks `wasi:random` for that many bytes in one call.
//! - `long-log <bytes>`: logs one line that long.
//! - `unholdable <shape> <pid|self>`: sends one payload Lua cannot hold,
//!   written as raw MessagePack: `nan-key`, `nil-key`, `deep` (65 nested
//!   arrays) or `malformed` bytes.
//! - `raw <hex> <pid|self>`: sends one payload of exactly the bytes the
//!   hex spells (any MessagePack, in any encoder's forms, or none).
//! - `unholdable-spawn <shape> <entry> <host>`: spawns with such an argument.
//! - `unholdable-exit <shape>`: returns such a value as its result.
//! - `topic <pid|self> <bytes>`: one send on a topic that long.
//! - `listen-long <bytes> <n>`: listens on n topics that long.
//! - `select-sends <n> <bytes>`: one non-blocking select of n send cases,
//!   each a string that long, on a full channel, as `"<KIND>:<message>"`.
//! - `hoard <rounds> <bytes>`: fills channels of its own with values that
//!   large until refused, then takes them back (even rounds) or drops the
//!   channels full (odd rounds); `"<KIND>:<count>,<count>..."`.
//! - `bloat <pid|self> <n>`: sends one array of n nils written in a form
//!   the runtime's encoder does not use (so it would be decoded), as
//!   `"<KIND>:<message>"`.
//! - `big-result <bytes>`: returns a string that long.
//! - `big-error <bytes>`: fails with a message that long.
//! - `cancel-big <pid|self> <bytes>`: cancels with a reason that long, as
//!   `"<KIND>:<message>"`.
//! - `alias <n> <bytes>`: sends itself n payloads that are all the same
//!   `bytes`-byte buffer, through the raw import (the canonical ABI lets
//!   list elements share memory), as `"ok"` or `"refused"`.
//! - `watch <entry> <host> <n> <bytes>`: spawns n monitored processes of
//!   entry, each run as `big-result <bytes>`, never reads its events,
//!   then registers as `hoarder` and waits for good.
//! - `after-drop <n>`: makes and drops n one-hour timers, then waits n
//!   times with a one-hour timeout for a message it sent itself; then
//!   registers as `hoarder` and waits for good.
//! - `listen-drop <n>`: listens on topic `t` n times and drops every
//!   handle, then sends itself `7` on `t` and waits a second for it in its
//!   inbox: `"inbox:7"`, or `"lost"` when a dropped handle still listened.
//! - `many-payloads <pid|self> <n>`: sends one message of n `nil`
//!   payloads, as `"<KIND>:<message>"`.
//! - `scribble`: counts the bytes of a 256 KiB static it finds non-zero
//!   (`"dirty:<count>"`), then writes all over it: a pooled instance slot
//!   handed to the next instance without being wiped would show it.

use std::time::Duration;

use warren_sdk::{Args, Channel, Error, ErrorKind, Payload, Process};

struct Hostile;

/// Bytes of [`SCRATCH`]: past the 128 KiB the host keeps resident and wipes
/// with a memset, so both ways of resetting a slot are crossed.
const SCRATCH_BYTES: usize = 256 << 10;

/// Memory an earlier instance of this component wrote (`scribble`).
static mut SCRATCH: [u8; SCRATCH_BYTES] = [0; SCRATCH_BYTES];

/// `scribble`: the bytes of [`SCRATCH`] found non-zero, one per 512,
/// then every one of those written.
fn scribble() -> usize {
    let p = std::ptr::addr_of_mut!(SCRATCH).cast::<u8>();
    let mut dirty = 0;
    for i in (0..SCRATCH_BYTES).step_by(512) {
        // SAFETY: `i` is inside the static; this instance is single-threaded
        // and holds no reference to it.
        unsafe {
            if p.add(i).read_volatile() != 0 {
                dirty += 1;
            }
            p.add(i).write_volatile(0xa5);
        }
    }
    dirty
}

/// An error's kind as its name (`RateLimited`).
fn kind_name(e: &Error) -> String {
    let kind = format!("{:?}", e.kind);
    kind.trim_start_matches("ErrorKind::").to_owned()
}

/// `"<KIND>:<count>"` for the first error of `attempts`, or `"ok:<count>"`.
fn outcome(attempts: impl Iterator<Item = Result<(), Error>>) -> Result<Payload, Error> {
    let mut done = 0u64;
    for attempt in attempts {
        if let Err(e) = attempt {
            return warren_sdk::payload(&format!("{}:{done}", kind_name(&e)));
        }
        done += 1;
    }
    warren_sdk::payload(&format!("ok:{done}"))
}

/// Raw MessagePack no Lua table can hold (or no decoder accepts).
fn unholdable(shape: &str) -> Payload {
    match shape {
        // {NaN = 1}: fixmap of one, float64 NaN key, value 1.
        "nan-key" => {
            let mut bytes = vec![0x81, 0xcb];
            bytes.extend_from_slice(&f64::NAN.to_be_bytes());
            bytes.push(0x01);
            bytes
        }
        // {nil = 1}
        "nil-key" => vec![0x81, 0xc0, 0x01],
        // 65 arrays of one, around nil
        "deep" => {
            let mut bytes = vec![0x91; 65];
            bytes.push(0xc0);
            bytes
        }
        // an array of two holding one value
        _ => vec![0x92, 0x01],
    }
}

/// The bytes a hex string spells.
fn unhex(hex: &str) -> Result<Vec<u8>, Error> {
    let bad = || Error::new(ErrorKind::Invalid, format!("not hex: {hex:?}"));
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            let pair = hex.get(i..i + 2).ok_or_else(bad)?;
            u8::from_str_radix(pair, 16).map_err(|_| bad())
        })
        .collect()
}

/// `"<KIND>:<message>"` of an error, or `"ok:"`.
fn described(result: Result<(), Error>) -> Result<Payload, Error> {
    match result {
        Ok(()) => warren_sdk::payload("ok:"),
        Err(e) => warren_sdk::payload(&format!("{}:{}", kind_name(&e), e.message)),
    }
}

/// An array of `n` nils with a 32-bit header and its last item a float 32:
/// valid MessagePack in forms the runtime's encoder never writes.
fn bloated(n: u32) -> Payload {
    let mut bytes = vec![0xdd];
    bytes.extend_from_slice(&n.to_be_bytes());
    bytes.resize(5 + n.saturating_sub(1) as usize, 0xc0);
    bytes.extend_from_slice(&[0xca, 0, 0, 0, 0]);
    bytes
}

/// `hoard`: per round, how many `bytes`-long values its own channels took
/// before one was refused, and the refusal's kind.
fn hoard(rounds: u32, bytes: usize) -> Result<Payload, Error> {
    // Heap room first (three values' worth, freed: the value, its encoded
    // copy, and a value received back while the next is decoded): the
    // refusal counted here is the channel's, not a heap that must grow one
    // more page of linear memory as the limit nears, which it may or may
    // not depending on where the allocator happened to put things.
    drop(std::hint::black_box(Vec::<u8>::with_capacity(3 * bytes)));
    let value = "h".repeat(bytes);
    let mut counts = Vec::new();
    let mut kind = String::from("ok");
    for round in 0..rounds {
        let mut chans = vec![Channel::new(1024)];
        let mut count = 0u32;
        loop {
            let ch = &chans[chans.len() - 1];
            match ch.send(&value) {
                Ok(()) if count % 1024 == 1023 => chans.push(Channel::new(1024)),
                Ok(()) => {}
                Err(e) => {
                    kind = kind_name(&e);
                    break;
                }
            }
            count += 1;
            if count >= 1_000_000 {
                break;
            }
        }
        counts.push(count.to_string());
        if round % 2 == 0 {
            for ch in &chans {
                while let Ok(Some(_)) = ch.recv::<String>() {}
            }
        }
        drop(chans);
    }
    warren_sdk::payload(&format!("{kind}:{}", counts.join(",")))
}

// The `send` import as the canonical ABI calls it: the strings and the
// list as (pointer, length) pairs, then where the result is written.
#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "warren:process/host@0.1.0")]
unsafe extern "C" {
    #[link_name = "send"]
    fn raw_send(
        dest: *const u8,
        dest_len: usize,
        topic: *const u8,
        topic_len: usize,
        payloads: *const [usize; 2],
        payloads_len: usize,
        ret: *mut u64,
    );
}

/// `alias`: n payloads that all point at one buffer of `bytes` bytes.
#[cfg(target_arch = "wasm32")]
fn alias(n: usize, bytes: usize) -> Result<Payload, Error> {
    let buffer = vec![0xc0u8; bytes];
    let pairs = vec![[buffer.as_ptr() as usize, buffer.len()]; n];
    let (me, topic) = (warren_sdk::pid(), "alias");
    let mut ret = [0u64; 8];
    // SAFETY: every pointer is to live memory of the given length; the
    // result area is larger and more aligned than the result needs.
    unsafe {
        raw_send(
            me.as_ptr(),
            me.len(),
            topic.as_ptr(),
            topic.len(),
            pairs.as_ptr(),
            pairs.len(),
            ret.as_mut_ptr(),
        );
    }
    let refused = ret[0] & 0xff != 0;
    warren_sdk::payload(if refused { "refused" } else { "ok" })
}

#[cfg(not(target_arch = "wasm32"))]
fn alias(_: usize, _: usize) -> Result<Payload, Error> {
    Err(Error::new(ErrorKind::Invalid, "alias needs wasm32"))
}

// `wasi:random`'s `get-random-bytes(len) -> list<u8>`, imported by hand
// (the SDK has no use for it): the result is a (pointer, length) pair.
#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "wasi:random/random@0.2.6")]
unsafe extern "C" {
    #[link_name = "get-random-bytes"]
    fn raw_random(len: i64, ret: *mut [usize; 2]);
}

/// `random <bytes>`: asks the host for that many random bytes at once.
#[cfg(target_arch = "wasm32")]
fn random(bytes: i64) -> Result<Payload, Error> {
    let mut ret = [0usize; 2];
    // SAFETY: the result area is a (pointer, length) pair, as the
    // canonical ABI writes a list; the list was allocated with this
    // module's allocator (its `cabi_realloc`) and is freed as a Vec.
    let got = unsafe {
        raw_random(bytes, &mut ret);
        drop(Vec::from_raw_parts(ret[0] as *mut u8, ret[1], ret[1]));
        ret[1]
    };
    warren_sdk::payload(&format!("ok:{got}"))
}

#[cfg(not(target_arch = "wasm32"))]
fn random(_: i64) -> Result<Payload, Error> {
    Err(Error::new(ErrorKind::Invalid, "random needs wasm32"))
}

/// Encodes as 2, after sending 1 on topic "inner" to the pid it holds:
/// a `send` inside a `send`.
struct Sneaky(String);

impl serde::Serialize for Sneaky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        warren_sdk::send(&self.0, "inner", &1u32).map_err(serde::ser::Error::custom)?;
        s.serialize_u32(2)
    }
}

/// One string payload of `bytes` bytes.
fn blob(bytes: usize) -> Payload {
    warren_sdk::payload(&"x".repeat(bytes)).unwrap_or_default()
}

/// Two handles listen on "t"; one closes (the topic, for both); a third
/// listens anew; three messages come; the live handle takes one; the stale
/// second handle is dropped. The live listen must keep the other two (the
/// stale drop used to unlisten it and drop them).
fn listen_stale() -> Result<Payload, Error> {
    let first = warren_sdk::listen("t")?;
    let stale = warren_sdk::listen("t")?;
    first.close();
    let live = warren_sdk::listen("t")?;
    for i in 0..3 {
        warren_sdk::send(&warren_sdk::pid(), "t", &i)?;
    }
    let mut got = vec![live.recv::<i64>()?.unwrap_or(-1)];
    drop(stale);
    let mut select = warren_sdk::Select::new();
    select.recv(&live);
    for _ in 0..2 {
        got.push(match select.wait(Some(Duration::from_secs(1)))? {
            warren_sdk::Selected::Ready(_, Some(item)) => item.data::<i64>()?,
            other => return warren_sdk::payload(&format!("lost: {other:?}")),
        });
    }
    warren_sdk::payload(&format!("{got:?}"))
}

impl Process for Hostile {
    fn run(args: Args) -> Result<Payload, Error> {
        let mode: String = args.get(0)?;
        match mode.as_str() {
            "flood" => {
                let (to, n): (String, u64) = (args.get(1)?, args.get(2)?);
                outcome((0..n).map(|i| warren_sdk::send(&to, "flood", &i)))
            }
            "flood-bytes" => {
                let (to, n, bytes): (String, u64, usize) =
                    (args.get(1)?, args.get(2)?, args.get(3)?);
                let payload = blob(bytes);
                outcome((0..n).map(|_| warren_sdk::send_raw(&to, "flood", vec![payload.clone()])))
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
            "exec-on" => {
                // Waits on an exec of `entry` on `host` (with no arguments).
                let (entry, host): (String, String) = (args.get(1)?, args.get(2)?);
                outcome(std::iter::once(
                    warren_sdk::exec(&entry, &host, &[]).map(|_| ()),
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
            "unholdable" => {
                let (shape, to): (String, String) = (args.get(1)?, args.get(2)?);
                let to = if to == "self" { warren_sdk::pid() } else { to };
                let sent = warren_sdk::send_raw(&to, "bad", vec![unholdable(&shape)]);
                outcome(std::iter::once(sent))
            }
            "unholdable-spawn" => {
                let (shape, entry, host): (String, String, String) =
                    (args.get(1)?, args.get(2)?, args.get(3)?);
                let spawned = warren_sdk::spawn(&entry, &host, &[unholdable(&shape)]);
                outcome(std::iter::once(spawned.map(|_| ())))
            }
            "unholdable-exit" => {
                let shape: String = args.get(1)?;
                Ok(unholdable(&shape))
            }
            "raw" => {
                let (hex, to): (String, String) = (args.get(1)?, args.get(2)?);
                let to = if to == "self" { warren_sdk::pid() } else { to };
                let sent = warren_sdk::send_raw(&to, "raw", vec![unhex(&hex)?]);
                outcome(std::iter::once(sent))
            }
            "topic" => {
                let (to, bytes): (String, usize) = (args.get(1)?, args.get(2)?);
                let to = if to == "self" { warren_sdk::pid() } else { to };
                let topic = "t".repeat(bytes);
                outcome(std::iter::once(warren_sdk::send(&to, &topic, &1)))
            }
            "listen-long" => {
                let (bytes, n): (usize, u32) = (args.get(1)?, args.get(2)?);
                let mut held = Vec::new();
                outcome((0..n).map(|i| {
                    let mut topic = format!("{i}:");
                    topic.push_str(&"l".repeat(bytes.saturating_sub(topic.len())));
                    warren_sdk::listen(&topic).map(|ch| held.push(ch))
                }))
            }
            "hoard" => hoard(args.get(1)?, args.get(2)?),
            "select-sends" => {
                let (n, bytes): (usize, usize) = (args.get(1)?, args.get(2)?);
                let full = Channel::new(1);
                full.send(&0)?;
                let value = "v".repeat(bytes);
                let mut select = warren_sdk::Select::new();
                for _ in 0..n {
                    select.send(&full, &value)?;
                }
                described(select.try_wait().map(|_| ()))
            }
            "listen-drop" => {
                let n: u32 = args.get(1)?;
                for _ in 0..n {
                    drop(warren_sdk::listen("t")?);
                }
                warren_sdk::send(&warren_sdk::pid(), "t", &7)?;
                match warren_sdk::receive(Some(Duration::from_secs(1)))? {
                    Some(m) => warren_sdk::payload(&format!("inbox:{}", m.data::<i64>()?)),
                    None => warren_sdk::payload("lost"),
                }
            }
            "select-many" => {
                // One select over `n` receive cases on one channel.
                let n: usize = args.get(1)?;
                let empty = Channel::new(1);
                let mut select = warren_sdk::Select::new();
                for _ in 0..n {
                    select.recv(&empty);
                }
                described(select.try_wait().map(|_| ()))
            }
            "spawn-args" => {
                // A spawn of `entry` on `host` with `n` nil arguments.
                let (entry, host, n): (String, String, usize) =
                    (args.get(1)?, args.get(2)?, args.get(3)?);
                let nil = warren_sdk::payload(&())?;
                described(warren_sdk::spawn(&entry, &host, &vec![nil; n]).map(|_| ()))
            }
            "listen-stale" => listen_stale(),
            "many-payloads" => {
                let (to, n): (String, usize) = (args.get(1)?, args.get(2)?);
                let to = if to == "self" { warren_sdk::pid() } else { to };
                described(warren_sdk::send_raw(&to, "many", vec![vec![0xc0]; n]))
            }
            "bloat" => {
                let (to, n): (String, u32) = (args.get(1)?, args.get(2)?);
                let to = if to == "self" { warren_sdk::pid() } else { to };
                described(warren_sdk::send_raw(&to, "bloat", vec![bloated(n)]))
            }
            "big-result" => {
                let bytes: usize = args.get(1)?;
                Ok(blob(bytes))
            }
            "big-error" => {
                let bytes: usize = args.get(1)?;
                Err(Error::new(ErrorKind::Internal, "e".repeat(bytes)))
            }
            "cancel-big" => {
                let (to, bytes): (String, usize) = (args.get(1)?, args.get(2)?);
                let to = if to == "self" { warren_sdk::pid() } else { to };
                described(warren_sdk::cancel(&to, &"c".repeat(bytes)))
            }
            "alias" => alias(args.get(1)?, args.get(2)?),
            "random" => random(args.get(1)?),
            "churn" => {
                let (rounds, n): (u64, u64) = (args.get(1)?, args.get(2)?);
                for _ in 0..rounds {
                    let held: Vec<Channel> = (0..n).map(|_| Channel::new(0)).collect();
                    drop(held);
                }
                warren_sdk::payload(&format!("ok:{}", rounds * n))
            }
            "watch" => {
                let (entry, host, n, bytes): (String, String, u32, u64) =
                    (args.get(1)?, args.get(2)?, args.get(3)?, args.get(4)?);
                let child = [
                    warren_sdk::payload("big-result")?,
                    warren_sdk::payload(&bytes)?,
                ];
                let mut spawned = 0;
                while spawned < n {
                    match warren_sdk::spawn_monitored(&entry, &host, &child) {
                        Ok(_) => spawned += 1,
                        Err(_) => warren_sdk::sleep(Duration::from_millis(1)),
                    }
                }
                warren_sdk::register("hoarder", None)?;
                warren_sdk::receive(None)?;
                warren_sdk::payload("ok")
            }
            "reentrant-send" => {
                // A value whose encoding sends a message of its own.
                let me = warren_sdk::pid();
                warren_sdk::send(&me, "outer", &Sneaky(me.clone()))?;
                let mut got = Vec::new();
                for _ in 0..2 {
                    let msg = warren_sdk::receive(None)?
                        .ok_or_else(|| Error::new(ErrorKind::Internal, "no message"))?;
                    let v: u32 = msg.data()?;
                    got.push(format!("{}:{v}", msg.topic));
                }
                warren_sdk::payload(&got.join(","))
            }
            "deaf" => {
                // Never reads its inbox: what is sent to it waits in its
                // mailbox, held against the senders' hosts, until it ends.
                warren_sdk::register("hoarder", None)?;
                let _ = warren_sdk::next_event(None);
                warren_sdk::payload("ok")
            }
            "after-drop" => {
                let n: u32 = args.get(1)?;
                let hour = Duration::from_secs(3600);
                for _ in 0..n {
                    drop(warren_sdk::after(hour));
                }
                let me = warren_sdk::pid();
                for i in 0..n {
                    warren_sdk::send(&me, "w", &i)?;
                    warren_sdk::receive(Some(hour))?;
                }
                warren_sdk::register("hoarder", None)?;
                warren_sdk::receive(None)?;
                warren_sdk::payload("ok")
            }
            "scribble" => warren_sdk::payload(&format!("dirty:{}", scribble())),
            other => Err(Error::new(
                ErrorKind::Invalid,
                format!("no attack {other:?}"),
            )),
        }
    }
}

warren_sdk::export!(Hostile);

//! Misbehaves on request (first argument): `panic`, `error`, `recurse`
//! (exhausts the stack), `bad-payload` (sends malformed MessagePack and
//! returns the host's answer), `grow` (allocates without bound), `wasi-sleep`
//! (sleeps through WASI's clocks instead of the process interface), `log`
//! (writes a warning to the host log), `spin` (loops forever without
//! blocking), or
//! anything else to return normally.

use warren_sdk::{Args, Error, ErrorKind, Payload, Process};

struct Crasher;

/// Recurses with a frame the optimiser cannot remove until the stack runs out.
fn recurse(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 64]);
    if std::hint::black_box(n == u64::MAX) {
        return 0;
    }
    recurse(frame[0] + 1).wrapping_add(frame[63])
}

impl Process for Crasher {
    fn run(args: Args) -> Result<Payload, Error> {
        let mode: String = args.get(0)?;
        match mode.as_str() {
            "panic" => panic!("deliberate panic in a component"),
            "error" => Err(Error::new(
                ErrorKind::Conflict,
                "deliberate error from a component",
            )),
            "recurse" => warren_sdk::payload(&recurse(0)),
            "bad-payload" => {
                let me = warren_sdk::pid();
                match warren_sdk::send_raw(&me, "t", vec![vec![0xc1]]) {
                    Ok(()) => warren_sdk::payload("accepted"),
                    Err(e) => warren_sdk::payload(&format!("{:?}: {}", e.kind, e.message)),
                }
            }
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "log" => {
                warren_sdk::log(warren_sdk::Level::Warn, "logged by a component");
                warren_sdk::payload("logged")
            }
            "wasi-sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(1));
                warren_sdk::payload("slept")
            }
            _ => warren_sdk::payload("fine"),
        }
    }
}

warren_sdk::export!(Crasher);

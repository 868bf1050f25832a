//! Binds a TCP socket on loopback and reports whether it could: it imports
//! `wasi:sockets`, so it loads only where its entry grants the network.

use warren_sdk::{Args, Error, Payload, Process};

struct NetProbe;

impl Process for NetProbe {
    fn run(_args: Args) -> Result<Payload, Error> {
        let bound = match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(l) => format!("bound:{}", l.local_addr().is_ok()),
            Err(e) => format!("refused:{:?}", e.kind()),
        };
        warren_sdk::payload(&bound)
    }
}

warren_sdk::export!(NetProbe);

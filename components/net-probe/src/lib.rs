//! Binds a TCP socket on loopback and reports whether it could, or, given
//! `"lookup", name`, resolves `name` and reports its addresses: it imports
//! `wasi:sockets`, so it loads only where its entry grants the network.

use std::net::ToSocketAddrs;

use warren_sdk::{Args, Error, Payload, Process};

struct NetProbe;

impl Process for NetProbe {
    fn run(args: Args) -> Result<Payload, Error> {
        if args.0.len() >= 2 && args.get::<String>(0)? == "lookup" {
            let name: String = args.get(1)?;
            return warren_sdk::payload(&lookup(&name));
        }
        let bound = match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(l) => format!("bound:{}", l.local_addr().is_ok()),
            Err(e) => format!("refused:{:?}", e.kind()),
        };
        warren_sdk::payload(&bound)
    }
}

/// `found:` and the addresses of `name`, sorted and comma-separated, or
/// `failed:` and the error's kind.
fn lookup(name: &str) -> String {
    match (name, 0).to_socket_addrs() {
        Ok(addrs) => {
            let mut ips: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
            ips.sort();
            ips.dedup();
            format!("found:{}", ips.join(","))
        }
        Err(e) => format!("failed:{:?}", e.kind()),
    }
}

warren_sdk::export!(NetProbe);

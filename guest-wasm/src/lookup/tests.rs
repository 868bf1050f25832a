use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// Holds the lane jobs that wait on it until opened (or dropped, so a
/// failing test leaves no lane thread held).
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, turn) = &*self.0;
        let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            open = turn.wait(open).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn open(&self) {
        let (open, turn) = &*self.0;
        *open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        turn.notify_all();
    }
}

struct OpenOnDrop(Gate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Polls `lookup` until answered or `within` passes; whether it was.
fn answered(lookup: &mut Lookup, within: Duration) -> bool {
    let end = Instant::now() + within;
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if lookup.poll_answer(&mut cx).is_ready() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn addresses(lookup: Lookup) -> Vec<IpAddr> {
    match lookup.state {
        State::Done(Ok(addrs)) => addrs.collect(),
        State::Done(Err(e)) => panic!("lookup failed: {e:?}"),
        State::Pending(_) => panic!("not answered"),
    }
}

#[test]
fn names_and_literals_parse_as_wasmtime_wasi_parses_them() {
    assert_eq!(parse("localhost"), Ok(Ok("localhost".into())));
    assert_eq!(
        parse("bücher.example"),
        Ok(Ok("xn--bcher-kva.example".into()))
    );
    assert_eq!(parse("10.1.2.3"), Ok(Err("10.1.2.3".parse().expect("ip"))));
    assert_eq!(parse("[::1]"), Ok(Err("::1".parse().expect("ip"))));
    assert_eq!(parse("::1"), Ok(Err("::1".parse().expect("ip"))));
    assert_eq!(parse("bad name"), Err(ErrorCode::InvalidArgument));
}

#[test]
fn a_host_whose_lookups_hang_delays_its_own_lookups_not_another_hosts() {
    // Host numbers no other test uses: the DNS lane is the process's.
    const SLOW: u16 = 40_101;
    const OTHER: u16 = 40_102;
    let gate = Gate::default();
    let _release = OpenOnDrop(gate.clone());
    let (started, running) = mpsc::channel();
    for _ in 0..warren_core::DNS_LANE_PER_HOST {
        let (gate, started) = (gate.clone(), started.clone());
        warren_core::dns_lane().spawn(SLOW, move || {
            let _ = started.send(());
            gate.wait();
        });
    }
    for _ in 0..warren_core::DNS_LANE_PER_HOST {
        running
            .recv_timeout(Duration::from_secs(20))
            .expect("each hanging lookup took a thread");
    }
    let mut other = Lookup {
        state: start(OTHER, "localhost".into()),
    };
    assert!(
        answered(&mut other, Duration::from_secs(20)),
        "OTHER waited"
    );
    assert!(addresses(other).iter().any(IpAddr::is_loopback));
    let mut slow = Lookup {
        state: start(SLOW, "localhost".into()),
    };
    assert!(
        !answered(&mut slow, Duration::from_millis(200)),
        "SLOW's lookup ran past its share of the lane"
    );
    gate.open();
    assert!(
        answered(&mut slow, Duration::from_secs(20)),
        "SLOW never ran"
    );
    assert!(addresses(slow).iter().any(IpAddr::is_loopback));
}

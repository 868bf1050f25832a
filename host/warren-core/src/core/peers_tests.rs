//! What links and monitors cost (`peers.rs`), through a real runtime with
//! scripted processes (whose hosts hold nothing else, so a host's
//! `memory_used` is exactly what the core charged it): each relation is
//! charged [`PEER_PAIR_BYTES`] to its maker's host and never to the
//! host of the process it names, once however often it is made, refused
//! with `RATE_LIMITED` past `memory_total`, and given back by unlink,
//! unmonitor, the other side's exit and the maker's own exit.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{ErrorKind, ProcError};
use crate::item::{Event, Item};
use crate::limits::{HostLimits, PEER_PAIR_BYTES};
use crate::pid::Pid;
use crate::runtime::{Runtime, RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, host, program};
use crate::value::Value;

const WAIT: Duration = Duration::from_secs(10);
const PAIR: u64 = PEER_PAIR_BYTES;

#[derive(Debug, PartialEq)]
enum Report {
    Ready,
    /// Each operation's refusal, `None` when done.
    Did(Vec<Option<ErrorKind>>),
    /// An EXIT or LINK_DOWN event from this process.
    Heard(Pid),
}

/// The maker, on `app`: traps links; its arguments are the targets. On
/// "make" it monitors and links each target twice; on "undo" it
/// unmonitors the first and unlinks the second; on "spawn" it spawns
/// `t:idle` linked and monitored.
fn maker(tx: Sender<Report>, refusals: Arc<Mutex<Vec<String>>>) -> crate::frontend::Program {
    let tx = Mutex::new(tx);
    let targets = Mutex::new(Vec::new());
    program("t:maker", move |core, me, item| {
        let report = |r: Report| tx.lock().expect("lock").send(r).expect("test alive");
        let mut targets = targets.lock().expect("lock");
        let mut did = Vec::new();
        let mut note = |r: Result<(), ProcError>| {
            if let Err(e) = &r {
                refusals.lock().expect("lock").push(e.message.clone());
            }
            did.push(r.err().map(|e| e.kind));
        };
        match item {
            Item::Start { args, .. } => {
                core.set_trap_links(me, true);
                *targets = args
                    .iter()
                    .map(|a| Pid::parse(a.as_str().expect("text")).expect("pid"))
                    .collect();
                report(Report::Ready);
                return false;
            }
            Item::Event(Event::Exit { from, .. } | Event::LinkDown { from, .. }) => {
                report(Report::Heard(from));
                return false;
            }
            Item::Msg(m) => match &*m.topic {
                "make" => {
                    for _ in 0..2 {
                        for &t in targets.iter() {
                            note(core.monitor(me, t));
                            note(core.link(me, t));
                        }
                    }
                }
                "undo" => {
                    note(core.unmonitor(me, targets[0]));
                    note(core.unlink(me, targets[1]));
                }
                "drop-all" => {
                    // Links first, monitors last: each kind's removal
                    // must give the table back by itself.
                    for &t in targets.iter() {
                        note(core.unlink(me, t));
                    }
                    for &t in targets.iter() {
                        note(core.unmonitor(me, t));
                    }
                }
                "box?" => {
                    // Nothing left once every unlink is acknowledged: the
                    // peers' box is gone.
                    let left = core.procs.get(&me).map(|p| p.peers.is_some());
                    did.push((left != Some(false)).then_some(ErrorKind::Internal));
                }
                "spawn" => {
                    let mut req = SpawnRequest::new("t:idle", "app", Vec::new());
                    (req.link, req.monitor) = (true, true);
                    note(core.spawn(me, req).map(drop));
                }
                _ => return false,
            },
            _ => return false,
        }
        report(Report::Did(did));
        false
    })
}

/// Sends its second argument as a topic to the pid in its first, and ends.
fn poke() -> crate::frontend::Program {
    program("t:poke", |core, me, item| {
        if let Item::Start { args, .. } = item {
            let to = Pid::parse(args[0].as_str().expect("text")).expect("pid");
            let topic = args[1].as_str().expect("text");
            core.send(me, to, topic, Vec::new())
                .expect("the target is alive");
        }
        true
    })
}

struct World {
    rt: Runtime,
    rx: Receiver<Report>,
    targets: Vec<Pid>,
    maker: Pid,
    refusals: Arc<Mutex<Vec<String>>>,
}

impl World {
    /// Three targets on `tgt` (each ends on any message), the maker on
    /// `app` with `memory_total` bytes.
    fn start(memory_total: u64) -> World {
        let (tx, rx) = channel();
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let limits = HostLimits {
            memory_total,
            ..HostLimits::default()
        };
        let rt = RuntimeBuilder::new()
            .host(host("app", 1, limits))
            .host(host("tgt", 1, HostLimits::default()))
            .frontend(Arc::new(Factory))
            .program(maker(tx, refusals.clone()))
            .program(poke())
            .program(program("t:idle", |_, _, _| false))
            .program(program("t:target", |_, _, item| {
                matches!(item, Item::Msg(_))
            }))
            .start()
            .expect("runtime");
        let targets: Vec<Pid> = (0..3)
            .map(|_| {
                rt.spawn(SpawnRequest::new("t:target", "tgt", Vec::new()))
                    .expect("spawn a target")
            })
            .collect();
        let args = targets.iter().map(|t| Value::str(t.to_string())).collect();
        let maker = rt
            .spawn(SpawnRequest::new("t:maker", "app", args))
            .expect("spawn the maker");
        assert_eq!(rx.recv_timeout(WAIT).expect("ready"), Report::Ready);
        World {
            rt,
            rx,
            targets,
            maker,
            refusals,
        }
    }

    /// Pokes `to` with `topic` from host `tgt`.
    fn poke(&self, to: Pid, topic: &str) {
        let args = vec![Value::str(to.to_string()), Value::str(topic)];
        self.rt
            .spawn(SpawnRequest::new("t:poke", "tgt", args))
            .expect("spawn a poke");
    }

    /// Pokes the maker with `topic`; what it did.
    fn ask(&self, topic: &str) -> Vec<Option<ErrorKind>> {
        self.poke(self.maker, topic);
        match self.rx.recv_timeout(WAIT).expect("a report") {
            Report::Did(did) => did,
            other => panic!("{topic}: {other:?}"),
        }
    }

    fn used(&self, host: &str) -> u64 {
        self.rt.memory_used(host).expect("the host")
    }
}

#[test]
fn a_relation_is_charged_once_to_its_maker_and_given_back_every_way_it_ends() {
    let w = World::start(HostLimits::default().memory_total);
    let (app, tgt) = (w.used("app"), w.used("tgt"));
    // Three monitors and three links, each made twice: charged once each.
    assert_eq!(w.ask("make"), vec![None; 12]);
    assert_eq!(w.used("app"), app + 6 * PAIR);
    assert_eq!(w.used("tgt"), tgt, "the targets' host paid for the maker");
    // Unmonitor the first target, unlink the second.
    assert_eq!(w.ask("undo"), vec![None, None]);
    assert_eq!(w.used("app"), app + 4 * PAIR);
    // The third target ends normally: its link ends without an event
    // (told first: links before watchers), its monitor with its EXIT;
    // both charges come back.
    w.poke(w.targets[2], "end");
    let heard = w.rx.recv_timeout(WAIT).expect("an event");
    assert_eq!(heard, Report::Heard(w.targets[2]));
    assert_eq!(w.used("app"), app + 2 * PAIR);
    // A spawn linked and monitored: two more, the child pays nothing.
    assert_eq!(w.ask("spawn"), vec![None]);
    assert_eq!(w.used("app"), app + 4 * PAIR);
    // The maker's exit gives back all it still holds.
    w.rt.kill(w.maker, ProcError::terminated()).expect("kill");
    let deadline = std::time::Instant::now() + WAIT;
    while w.used("app") != app {
        let held = w.used("app") - app;
        assert!(
            std::time::Instant::now() < deadline,
            "{held} bytes still held"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_relation_past_the_makers_memory_total_is_refused_and_room_made_is_used() {
    // Room for five relations: the sixth, and a linked spawn, are refused.
    let w = World::start(5 * PAIR);
    let did = w.ask("make");
    let limited = Some(ErrorKind::RateLimited);
    // monitor, link of each target, then again (already made: no charge).
    let want = [None, None, None, None, None, limited];
    assert_eq!(did[..6], want, "{did:?}");
    assert_eq!(did[6..], [None, None, None, None, None, limited], "{did:?}");
    assert_eq!(w.used("app"), 5 * PAIR);
    let refusals = w.refusals.lock().expect("lock").clone();
    assert!(
        refusals[0].contains(&format!(
            "host 'app' has no room left in its memory_total ({} bytes)",
            5 * PAIR
        )),
        "{refusals:?}"
    );
    let live = w.rt.live_processes();
    assert_eq!(w.ask("spawn"), vec![limited]);
    assert_eq!(
        w.rt.live_processes(),
        live,
        "a refused spawn started a process"
    );
    // Room made by an unmonitor is used by the next relation.
    assert_eq!(w.ask("undo"), vec![None, None]);
    assert_eq!(w.used("app"), 3 * PAIR);
    assert_eq!(w.ask("spawn"), vec![None]);
    assert_eq!(w.used("app"), 5 * PAIR);
}

#[test]
fn peer_tables_give_back_their_room_as_they_empty() {
    // A table never shrinks by itself: a watcher that once held 3,000
    // relations kept their room after dropping them, while its host had
    // been given their charge back.
    use super::peers::Peers;
    let mut peers = Peers::default();
    for i in 0..3_000 {
        let pid = Pid::new(1, i);
        peers.links.insert(pid, true);
        peers.watchers.insert(pid);
        peers.watching.insert(pid);
    }
    for i in 3..3_000 {
        let pid = Pid::new(1, i);
        peers.links.remove(&pid);
        peers.watchers.remove(&pid);
        peers.watching.remove(&pid);
        peers.tidy();
    }
    assert!(peers.links.capacity() <= 64, "{}", peers.links.capacity());
    assert!(
        peers.watchers.capacity() <= 64,
        "{}",
        peers.watchers.capacity()
    );
    assert!(
        peers.watching.capacity() <= 64,
        "{}",
        peers.watching.capacity()
    );
    assert_eq!(
        peers.charged(),
        6 * PAIR,
        "three links and three monitors left"
    );
    assert!(!peers.is_empty());
}

#[test]
fn a_maker_that_drops_every_relation_keeps_no_table() {
    let w = World::start(HostLimits::default().memory_total);
    let app = w.used("app");
    assert_eq!(w.ask("make"), vec![None; 12]);
    assert_eq!(w.ask("drop-all"), vec![None; 6]);
    assert_eq!(w.used("app"), app);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while w.ask("box?") != vec![None] {
        assert!(std::time::Instant::now() < deadline, "the peers' box stays");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

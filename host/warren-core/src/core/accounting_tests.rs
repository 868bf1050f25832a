//! Per-host memory accounting of kernel structures, end to end: links and
//! monitors ([`PEER_PAIR_BYTES`]), armed timers ([`TIMER_BYTES`]) and
//! registered names ([`name_cost`]) are charged to the host of the process
//! that made them, never to the other side's host, and given back exactly
//! once, whatever the order of unlinks, exits, kills and failures.
//!
//! Each host is given a ballast (`add_memory`) before the baseline is
//! read, so a refund given twice shows as a count below the baseline
//! instead of being hidden by `release_memory`'s saturation at zero; a
//! sampler thread watches for any dip below (or wrap above) the baseline
//! while the scenario runs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Core;
use crate::error::{ErrorKind, ProcError};
use crate::item::Item;
use crate::limits::{HostLimits, PEER_PAIR_BYTES, TIMER_BYTES};
use crate::pid::Pid;
use crate::registry::name_cost;
use crate::runtime::{Runtime, RuntimeBuilder, SpawnRequest};
use crate::testkit::{Factory, host, program};
use crate::value::Value;

const WAIT: Duration = Duration::from_secs(10);
const PAIR: u64 = PEER_PAIR_BYTES;
const BALLAST: u64 = 1 << 20;

/// What a job asks of the agent running it once done.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Then {
    Stay,
    /// Ends with `Ok(nil)` (the script returns `true`).
    End,
}

type Job = Box<dyn FnOnce(&mut Core, Pid) -> (String, Then) + Send>;
type Jobs = Arc<Mutex<HashMap<Pid, VecDeque<Job>>>>;

/// An agent: traps links if its first argument is `true`; on every message
/// runs the next job queued for it and replies with what it returned.
fn agent(
    ready: Sender<Pid>,
    replies: Sender<(Pid, String)>,
    jobs: Jobs,
) -> crate::frontend::Program {
    let ready = Mutex::new(ready);
    let replies = Mutex::new(replies);
    program("t:agent", move |core, me, item| match item {
        Item::Start { args, .. } => {
            let trap = args.first() != Some(&Value::Bool(false));
            core.set_trap_links(me, trap);
            let _ = ready.lock().expect("lock").send(me);
            false
        }
        Item::Msg(_) => {
            let job = jobs
                .lock()
                .expect("lock")
                .get_mut(&me)
                .and_then(VecDeque::pop_front);
            let Some(job) = job else { return false };
            let (said, then) = job(core, me);
            let _ = replies.lock().expect("lock").send((me, said));
            then == Then::End
        }
        _ => false,
    })
}

/// Sends "run" to the pid in its first argument, and ends.
fn poke() -> crate::frontend::Program {
    program("t:poke", |core, me, item| {
        if let Item::Start { args, .. } = item {
            let to = Pid::parse(args[0].as_str().expect("text")).expect("pid");
            let _ = core.send(me, to, "run", Vec::new());
        }
        true
    })
}

/// Watches both hosts' counts until stopped: the lowest and highest seen.
struct Sampler {
    stop: Arc<AtomicBool>,
    low: Arc<[AtomicU64; 2]>,
    high: Arc<[AtomicU64; 2]>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct World {
    rt: Runtime,
    ready: Receiver<Pid>,
    replies: Receiver<(Pid, String)>,
    jobs: Jobs,
    dead: Arc<Mutex<HashSet<Pid>>>,
    base: [u64; 2],
    sampler: Sampler,
}

fn result(r: Result<(), ProcError>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("{:?}", e.kind),
    }
}

impl World {
    /// Hosts `a` and `b` (two workers each, `a` with `memory_total`), and
    /// `ctl` for the pokes.
    fn start(memory_total: u64) -> World {
        World::start_with(memory_total, false)
    }

    /// As [`World::start`]; with `functions`, `t:fn` is a function (a
    /// lazy pool of one) that ends at once if its first argument is
    /// "end", and otherwise runs until killed.
    fn start_with(memory_total: u64, functions: bool) -> World {
        let (ready_tx, ready) = channel();
        let (reply_tx, replies) = channel();
        let jobs: Jobs = Arc::default();
        let limits_a = HostLimits {
            memory_total,
            ..HostLimits::default()
        };
        let mut builder = RuntimeBuilder::new();
        if functions {
            let mut f = crate::funcs::Functions::new();
            let pool = crate::funcs::Pool {
                kind: crate::funcs::PoolKind::Lazy,
                size: 1,
                buffer: usize::MAX,
            };
            f.insert("t:fn", pool);
            builder = builder.extension(Arc::new(f)).program(program("t:fn", |_, _, item| {
                matches!(item, Item::Start { args, .. } if args.first() == Some(&Value::str("end")))
            }));
        }
        let rt = builder
            .host(host("a", 2, limits_a))
            .host(host("b", 2, HostLimits::default()))
            .host(host("ctl", 1, HostLimits::default()))
            .frontend(Arc::new(Factory))
            .program(agent(ready_tx, reply_tx, jobs.clone()))
            .program(poke())
            .start()
            .expect("runtime");
        for h in ["a", "b"] {
            rt.host_quota(h).expect("host").add_memory(BALLAST);
        }
        let base = [
            rt.memory_used("a").expect("test set-up"),
            rt.memory_used("b").expect("test set-up"),
        ];
        assert_eq!(base, [BALLAST, BALLAST], "hosts hold nothing else");
        let stop = Arc::new(AtomicBool::new(false));
        let low = Arc::new([AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)]);
        let high = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let quotas = [
            rt.host_quota("a").expect("test set-up"),
            rt.host_quota("b").expect("test set-up"),
        ];
        let thread = {
            let (stop, low, high) = (stop.clone(), low.clone(), high.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..2 {
                        let used = quotas[i].memory_used();
                        low[i].fetch_min(used, Ordering::Relaxed);
                        high[i].fetch_max(used, Ordering::Relaxed);
                    }
                    std::hint::spin_loop();
                }
            })
        };
        World {
            rt,
            ready,
            replies,
            jobs,
            dead: Arc::default(),
            base,
            sampler: Sampler {
                stop,
                low,
                high,
                thread: Some(thread),
            },
        }
    }

    /// Spawns an agent on `host` (trapping links if `trap`).
    fn agent(&self, host: &str, trap: bool) -> Pid {
        let req = SpawnRequest::new("t:agent", host, vec![Value::Bool(trap)]);
        let dead = self.dead.clone();
        let notify: crate::runtime::ExitCallback = Box::new(move |pid, _| {
            dead.lock().expect("lock").insert(pid);
        });
        let pid = self.rt.spawn_notify(req, notify).expect("spawn an agent");
        assert_eq!(self.ready.recv_timeout(WAIT).expect("ready"), pid);
        pid
    }

    /// Runs each job in its pid at once (each pid once); what each said.
    fn on_all(&self, jobs: Vec<(Pid, Job)>) -> Vec<String> {
        let pids: Vec<Pid> = jobs.iter().map(|(p, _)| *p).collect();
        for (pid, job) in jobs {
            self.jobs
                .lock()
                .expect("test set-up")
                .entry(pid)
                .or_default()
                .push_back(job);
        }
        for &pid in &pids {
            let args = vec![Value::str(pid.to_string())];
            self.rt
                .spawn(SpawnRequest::new("t:poke", "ctl", args))
                .expect("spawn a poke");
        }
        let mut said: Vec<Option<String>> = vec![None; pids.len()];
        let deadline = Instant::now() + WAIT;
        while said.iter().any(Option::is_none) {
            match self.replies.recv_timeout(Duration::from_millis(5)) {
                Ok((from, s)) => {
                    if let Some(i) = pids.iter().position(|p| *p == from) {
                        said[i] = Some(s);
                    }
                }
                Err(_) => {
                    for (i, pid) in pids.iter().enumerate() {
                        if said[i].is_none() && self.is_dead(*pid) {
                            self.jobs.lock().expect("lock").remove(pid);
                            said[i] = Some("dead".into());
                        }
                    }
                    assert!(Instant::now() < deadline, "no reply");
                }
            }
        }
        said.into_iter().map(Option::unwrap).collect()
    }

    /// Runs `job` in `pid`; what it said.
    fn on(
        &self,
        pid: Pid,
        job: impl FnOnce(&mut Core, Pid) -> (String, Then) + Send + 'static,
    ) -> String {
        self.jobs
            .lock()
            .expect("test set-up")
            .entry(pid)
            .or_default()
            .push_back(Box::new(job));
        let args = vec![Value::str(pid.to_string())];
        self.rt
            .spawn(SpawnRequest::new("t:poke", "ctl", args))
            .expect("spawn a poke");
        let deadline = Instant::now() + WAIT;
        loop {
            match self.replies.recv_timeout(Duration::from_millis(5)) {
                Ok((from, said)) if from == pid => return said,
                Ok(_) => {}
                Err(_) if self.is_dead(pid) => {
                    self.jobs.lock().expect("lock").remove(&pid);
                    return "dead".into();
                }
                Err(_) => assert!(Instant::now() < deadline, "no reply from {pid}"),
            }
        }
    }

    /// Whether `pid`, an agent, has exited.
    fn is_dead(&self, pid: Pid) -> bool {
        self.dead.lock().expect("lock").contains(&pid)
    }

    /// Runs `op` in `pid` and stays; its result.
    fn op(
        &self,
        pid: Pid,
        op: impl FnOnce(&mut Core, Pid) -> Result<(), ProcError> + Send + 'static,
    ) -> String {
        self.on(pid, move |core, me| (result(op(core, me)), Then::Stay))
    }

    fn used(&self, h: &str) -> u64 {
        self.rt.memory_used(h).expect("host")
    }

    /// Waits (10 s at most) until host `h` holds exactly `extra` bytes
    /// over its baseline.
    fn settles(&self, h: &str, extra: u64, what: &str) {
        let base = self.base[usize::from(h == "b")];
        let deadline = Instant::now() + WAIT;
        while self.used(h) != base + extra {
            if Instant::now() > deadline {
                let used = self.used(h);
                panic!(
                    "{what}: host {h} holds {} bytes over its baseline, {extra} expected \
                     (used {used}, baseline {base})",
                    used as i128 - base as i128
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Kills what is alive, waits for the runtime to be idle and for
    /// both hosts to be back to their baselines, exactly; checks no count
    /// ever dipped below its baseline.
    fn finish(mut self, alive: &[Pid]) {
        for &pid in alive {
            let _ = self.rt.kill(pid, ProcError::terminated());
        }
        assert!(self.rt.wait_idle(WAIT), "processes still alive");
        self.settles("a", 0, "after everything exited");
        self.settles("b", 0, "after everything exited");
        // Late commands (a LINK_EXIT to an exited peer) must change nothing.
        std::thread::sleep(Duration::from_millis(50));
        self.settles("a", 0, "a while after");
        self.settles("b", 0, "a while after");
        self.sampler.stop.store(true, Ordering::Relaxed);
        self.sampler
            .thread
            .take()
            .expect("test set-up")
            .join()
            .expect("test set-up");
        for (i, h) in ["a", "b"].iter().enumerate() {
            let low = self.sampler.low[i].load(Ordering::Relaxed);
            let high = self.sampler.high[i].load(Ordering::Relaxed);
            assert!(
                low >= self.base[i],
                "host {h} dipped {} bytes below its baseline on the way",
                self.base[i] - low
            );
            assert!(high < self.base[i] + (1 << 30), "host {h} wrapped: {high}");
        }
    }
}

fn unwatched(pids: &[Pid]) -> Vec<Pid> {
    pids.to_vec()
}

#[test]
fn accounting_links_and_monitors_every_way_back_to_baseline() {
    let w = World::start(HostLimits::default().memory_total);
    let (a1, a2) = (w.agent("a", true), w.agent("a", true));
    let (b1, b2, b3) = (w.agent("b", true), w.agent("b", true), w.agent("b", true));
    // Twice each: charged once.
    for _ in 0..2 {
        assert_eq!(w.op(a1, move |c, me| c.link(me, b1)), "ok");
        assert_eq!(w.op(a1, move |c, me| c.monitor(me, b1)), "ok");
        assert_eq!(w.op(a1, move |c, me| c.link(me, a2)), "ok");
        assert_eq!(w.op(a1, move |c, me| c.monitor(me, a2)), "ok");
        assert_eq!(w.op(a1, move |c, me| c.link(me, b2)), "ok");
        assert_eq!(w.op(a1, move |c, me| c.monitor(me, b3)), "ok");
    }
    w.settles("a", 6 * PAIR, "six relations made twice");
    w.settles("b", 0, "b made nothing");
    // Unlink and unmonitor of what was never made: nothing.
    assert_eq!(w.op(a1, move |c, me| c.unlink(me, b3)), "ok");
    assert_eq!(w.op(a1, move |c, me| c.unmonitor(me, b2)), "ok");
    w.settles("a", 6 * PAIR, "undoing nothing");
    // The other side links back: it pays for its own half (a half it
    // held unpaid may be all that is left of a link the other side has
    // dropped meanwhile), once however often it links.
    for _ in 0..2 {
        assert_eq!(w.op(b1, move |c, me| c.link(me, a1)), "ok");
    }
    w.settles("b", PAIR, "b linking back pays its half once");
    w.settles("a", 6 * PAIR, "a still pays its own");
    // Unlink twice: both halves go, each refunded to its payer.
    assert_eq!(w.op(a1, move |c, me| c.unlink(me, b1)), "ok");
    assert_eq!(w.op(a1, move |c, me| c.unlink(me, b1)), "ok");
    w.settles("a", 5 * PAIR, "unlinked b1 twice");
    w.settles("b", 0, "b1's half went with the unlink");
    // The target unlinks the link a1 made: a1's charge comes back.
    assert_eq!(w.op(b2, move |c, me| c.unlink(me, a1)), "ok");
    w.settles("a", 4 * PAIR, "b2 unlinked a1's link");
    // b1 ends normally: a1's monitor of it ends.
    w.on(b1, |_, _| (String::new(), Then::End));
    w.settles("a", 3 * PAIR, "b1 ended");
    // b3 fails: a1's monitor of it ends.
    w.on(b3, |c, me| {
        c.exit(me, Err(ProcError::new(ErrorKind::Internal, "boom")));
        (String::new(), Then::Stay)
    });
    w.settles("a", 2 * PAIR, "b3 failed");
    // a2 killed: a1's link and monitor of it end.
    w.rt.kill(a2, ProcError::terminated()).expect("test set-up");
    w.settles("a", 0, "a2 killed");
    w.finish(&unwatched(&[a1, b2]));
}

#[test]
fn accounting_relations_to_exited_pids_cost_nothing() {
    let w = World::start(HostLimits::default().memory_total);
    let a1 = w.agent("a", true);
    let (b1, a2) = (w.agent("b", true), w.agent("a", true));
    w.on(b1, |_, _| (String::new(), Then::End));
    w.on(a2, |_, _| (String::new(), Then::End));
    assert!(!w.rt.wait_idle(Duration::from_millis(1)));
    // Let the exits be everywhere.
    let deadline = Instant::now() + WAIT;
    while w.rt.live_processes() != 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    for t in [b1, a2] {
        let r = w.op(a1, move |c, me| c.link(me, t));
        assert!(r == "NotFound" || r == "ok", "{r}");
        let r = w.op(a1, move |c, me| c.monitor(me, t));
        assert!(r == "NotFound" || r == "ok", "{r}");
        assert_eq!(w.op(a1, move |c, me| c.unlink(me, t)), "ok");
        assert_eq!(w.op(a1, move |c, me| c.unmonitor(me, t)), "ok");
    }
    w.settles("a", 0, "relations to exited pids");
    w.finish(&[a1]);
}

#[test]
fn accounting_spawn_linked_and_monitored_including_failures() {
    let w = World::start(HostLimits::default().memory_total);
    let a1 = w.agent("a", true);
    let spawn = move |host: &'static str, link: bool, monitor: bool, big: bool| {
        move |c: &mut Core, me: Pid| {
            let mut args = vec![Value::Bool(true)];
            if big {
                args.push(Value::str("x".repeat(64 << 20)));
            }
            let mut req = SpawnRequest::new("t:agent", host, args);
            (req.link, req.monitor) = (link, monitor);
            match c.spawn(me, req) {
                Ok(pid) => (pid.to_string(), Then::Stay),
                Err(e) => (format!("{:?}", e.kind), Then::Stay),
            }
        }
    };
    // Failures: an unknown host, arguments too large.
    let r = w.on(a1, spawn("nope", true, true, false));
    assert!(Pid::parse(&r).is_none(), "{r}");
    w.settles("a", 0, "a spawn on an unknown host");
    let r = w.on(a1, spawn("b", true, true, true));
    assert!(Pid::parse(&r).is_none(), "{r}");
    w.settles("a", 0, "a spawn with arguments too large");
    // Successes, on a and on b.
    let mut kids = Vec::new();
    for (host, link, monitor) in [
        ("a", true, true),
        ("b", true, true),
        ("b", true, false),
        ("a", false, true),
    ] {
        let r = w.on(a1, spawn(host, link, monitor, false));
        let kid = Pid::parse(&r).unwrap_or_else(|| panic!("{r}"));
        assert_eq!(w.ready.recv_timeout(WAIT).expect("test set-up"), kid);
        kids.push(kid);
    }
    w.settles("a", 6 * PAIR, "four spawns, six relations");
    w.settles("b", 0, "children on b pay nothing");
    // One child fails, one ends, one is killed.
    w.on(kids[1], |c, me| {
        c.exit(me, Err(ProcError::new(ErrorKind::Internal, "boom")));
        (String::new(), Then::Stay)
    });
    w.settles("a", 4 * PAIR, "a linked and monitored child failed");
    w.on(kids[2], |_, _| (String::new(), Then::End));
    w.settles("a", 3 * PAIR, "a linked child ended");
    w.rt.kill(kids[3], ProcError::terminated())
        .expect("test set-up");
    w.settles("a", 2 * PAIR, "a monitored child killed");
    // The parent ends first with one child left.
    w.rt.kill(a1, ProcError::terminated()).expect("test set-up");
    w.settles("a", 0, "the parent killed");
    w.finish(&[kids[0]]);
}

#[test]
fn accounting_spawn_refused_past_memory_total_holds_nothing() {
    // Room for one relation over the ballast: a spawn with two is refused.
    let w = World::start(BALLAST + PAIR);
    let a1 = w.agent("a", true);
    let r = w.on(a1, |c, me| {
        let mut req = SpawnRequest::new("t:agent", "b", vec![Value::Bool(true)]);
        (req.link, req.monitor) = (true, true);
        (
            format!("{:?}", c.spawn(me, req).map(drop).map_err(|e| e.kind)),
            Then::Stay,
        )
    });
    assert_eq!(r, "Err(RateLimited)");
    w.settles("a", 0, "a refused spawn");
    let b1 = w.agent("b", true);
    assert_eq!(w.op(a1, move |c, me| c.link(me, b1)), "ok");
    assert_eq!(w.op(a1, move |c, me| c.monitor(me, b1)), "RateLimited");
    w.settles("a", PAIR, "one made, one refused");
    w.finish(&[a1, b1]);
}

#[test]
fn accounting_both_sides_exiting_at_once() {
    let w = World::start(HostLimits::default().memory_total);
    for round in 0..20 {
        let trap = round % 2 == 0;
        let a1 = w.agent("a", trap);
        let b1 = w.agent("b", trap);
        // Each side makes a monitor and a link of the other (the second
        // link finds the first and is not charged again: which side pays
        // depends on which was first, so each side's count is checked
        // together).
        assert_eq!(w.op(a1, move |c, me| c.monitor(me, b1)), "ok");
        assert_eq!(w.op(b1, move |c, me| c.monitor(me, a1)), "ok");
        assert_eq!(w.op(a1, move |c, me| c.link(me, b1)), "ok");
        assert_eq!(w.op(b1, move |c, me| c.link(me, a1)), "ok");
        // a's link reaches b1 asynchronously (another host's worker): if
        // b1's own link came first, b1 made (and pays for) its own half
        // too. Either way a pays for its monitor and link, b for its
        // monitor and perhaps its half of the link.
        w.settles("a", 2 * PAIR, "a's monitor and link");
        let b = w.used("b") - w.base[1];
        assert!(b == PAIR || b == 2 * PAIR, "b holds {b}");
        match round % 3 {
            // The second kill may find its process gone already: the
            // first one's exit reached it through the link.
            0 => {
                w.rt.kill(a1, ProcError::terminated()).expect("test set-up");
                let _ = w.rt.kill(b1, ProcError::terminated());
            }
            1 => {
                w.jobs
                    .lock()
                    .expect("test set-up")
                    .entry(a1)
                    .or_default()
                    .push_back(Box::new(|_, _| (String::new(), Then::End)));
                w.rt.kill(b1, ProcError::new(ErrorKind::Internal, "boom"))
                    .expect("test set-up");
                let args = vec![Value::str(a1.to_string())];
                w.rt.spawn(SpawnRequest::new("t:poke", "ctl", args))
                    .expect("test set-up");
            }
            _ => {
                w.rt.kill(b1, ProcError::terminated()).expect("test set-up");
                let _ = w.rt.kill(a1, ProcError::new(ErrorKind::Internal, "boom"));
            }
        }
        assert!(w.rt.wait_idle(WAIT));
        w.settles("a", 0, &format!("round {round}"));
        w.settles("b", 0, &format!("round {round}"));
        while w.replies.try_recv().is_ok() {}
    }
    w.finish(&[]);
}

#[test]
fn accounting_names_registered_and_released_once() {
    let w = World::start(HostLimits::default().memory_total);
    let (a1, a2, a3) = (w.agent("a", true), w.agent("a", true), w.agent("a", true));
    let b1 = w.agent("b", true);
    let reg = |name: &'static str, pid: Pid| move |c: &mut Core, me: Pid| c.register(me, name, pid);
    assert_eq!(w.op(a1, reg("one", a1)), "ok");
    assert_eq!(w.op(a1, reg("one", a1)), "ok"); // again: no second charge
    assert_eq!(w.op(a1, reg("two", a2)), "ok"); // named for a2, paid by a1
    assert_eq!(w.op(a1, reg("three", a3)), "ok");
    assert_eq!(w.op(a2, reg("one", a2)), "AlreadyExists");
    assert_eq!(w.op(a1, reg("four", b1)), "PermissionDenied");
    assert_eq!(w.op(b1, reg("bee", b1)), "ok");
    let cost = |n: &str| name_cost(n);
    w.settles(
        "a",
        cost("one") + cost("two") + cost("three"),
        "three names",
    );
    w.settles("b", cost("bee"), "b's own name");
    // Unregister of a name never held, and twice.
    assert_eq!(
        w.on(a1, |c, me| (
            c.unregister(me, "nope").to_string(),
            Then::Stay
        )),
        "false"
    );
    assert_eq!(
        w.on(a1, |c, me| (
            c.unregister(me, "one").to_string(),
            Then::Stay
        )),
        "true"
    );
    assert_eq!(
        w.on(a1, |c, me| (
            c.unregister(me, "one").to_string(),
            Then::Stay
        )),
        "false"
    );
    w.settles("a", cost("two") + cost("three"), "one unregistered");
    // The holder of "two" unregisters it (a1 paid).
    assert_eq!(
        w.on(a2, |c, me| (
            c.unregister(me, "two").to_string(),
            Then::Stay
        )),
        "true"
    );
    w.settles("a", cost("three"), "two unregistered by its holder");
    // The registrant exits: the name stays with its holder, still paid.
    w.rt.kill(a1, ProcError::terminated()).expect("test set-up");
    let deadline = Instant::now() + WAIT;
    while w.rt.live_processes() != 3 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    w.settles("a", cost("three"), "the registrant exited");
    // The holder fails: released.
    w.on(a3, |c, me| {
        c.exit(me, Err(ProcError::new(ErrorKind::Internal, "boom")));
        (String::new(), Then::Stay)
    });
    w.settles("a", 0, "the holder failed");
    w.finish(&[a2, b1]);
}

#[test]
fn accounting_short_timers_fired_cancelled_and_outliving_their_process() {
    let w = World::start(HostLimits::default().memory_total);
    let (a1, a2) = (w.agent("a", true), w.agent("a", true));
    let ms = Duration::from_millis;
    w.op(a1, move |c, me| {
        for id in 1..=5 {
            c.start_timer(me, id, ms(200));
        }
        c.cancel_timer(me, 2);
        c.cancel_timer(me, 2);
        c.cancel_timer(me, 99); // never armed
        Ok(())
    });
    w.settles(
        "a",
        5 * TIMER_BYTES,
        "five armed, a cancelled one still in the heap",
    );
    // a2 arms and ends before they fire: its charge goes back at its
    // exit, and its entries fire later with no process (nothing more).
    w.on(a2, move |c, me| {
        c.start_timer(me, 1, ms(150));
        c.start_timer(me, 1, ms(150));
        c.cancel_timer(me, 1);
        (String::new(), Then::End)
    });
    w.settles("a", 5 * TIMER_BYTES, "a2 ended with its two");
    w.settles("a", 0, "all fired");
    w.finish(&[a1]);
}

#[test]
fn accounting_a_name_registered_while_its_holder_exits_is_given_back() {
    // `register` checks that the holder is alive (its directory entry),
    // then inserts the name; the holder's exit removes its directory
    // entry, then releases its names. A registration whose check passes
    // before the exit and whose insert lands after the release leaves a
    // name held by a dead pid, its cost charged to the registrant's host
    // for good. a1 registers the name in a tight loop while a2 ends.
    let w = World::start(HostLimits::default().memory_total);
    let a1 = w.agent("a", true);
    let mut leaked = Vec::new();
    for round in 0..300 {
        let a2 = w.agent("a", true);
        let name: &'static str = Box::leak(format!("race{round}").into_boxed_str());
        w.jobs
            .lock()
            .expect("test set-up")
            .entry(a2)
            .or_default()
            .push_back(Box::new(|_, _| (String::new(), Then::End)));
        w.jobs
            .lock()
            .expect("test set-up")
            .entry(a1)
            .or_default()
            .push_back(Box::new(move |c, me| {
                let mut ok = 0_u64;
                for _ in 0..5_000_000 {
                    match c.register(me, name, a2) {
                        Ok(()) => ok += 1,
                        Err(e) => return (format!("{:?} after {ok}", e.kind), Then::Stay),
                    }
                }
                (format!("still ok after {ok}"), Then::Stay)
            }));
        for pid in [a1, a2] {
            let args = vec![Value::str(pid.to_string())];
            w.rt.spawn(SpawnRequest::new("t:poke", "ctl", args))
                .expect("test set-up");
        }
        let said = loop {
            let (from, said) = w.replies.recv_timeout(WAIT).expect("a reply");
            if from == a1 {
                break said;
            }
        };
        let deadline = Instant::now() + WAIT;
        while !w.is_dead(a2) {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(2));
        let extra = w.used("a") - w.base[0];
        if extra != 0 {
            leaked.push((round, said, extra, w.rt.lookup(name)));
            break;
        }
    }
    eprintln!("names held past their holder's exit: {leaked:?}");
    // Everything exits: a leaked name stays charged for good.
    w.finish(&[a1]);
    assert!(
        leaked.is_empty(),
        "names held past their holder's exit: {leaked:?}"
    );
}

#[test]
fn accounting_a_link_made_from_both_sides_at_once_stays_paid_for() {
    // a1 and b1 (on different hosts, so different workers) link each
    // other at the same moment, so each pays for its own half; a1 then
    // unlinks, and links again. A link that exists must be paid for by
    // someone: b1's late AddLink must not leave a1 an unpaid half that
    // makes a1's next link free.
    let w = World::start(HostLimits::default().memory_total);
    for round in 0..50 {
        let (a1, b1) = (w.agent("a", true), w.agent("b", true));
        // a1 links and, within the same step (its worker has not yet
        // sent its half to b1), unlinks a little later.
        w.jobs
            .lock()
            .expect("test set-up")
            .entry(a1)
            .or_default()
            .push_back(Box::new(move |c, me| {
                let made = result(c.link(me, b1));
                std::thread::sleep(Duration::from_millis(5));
                let undone = result(c.unlink(me, b1));
                (format!("{made}{undone}").replace("okok", "ok"), Then::Stay)
            }));
        w.jobs
            .lock()
            .expect("test set-up")
            .entry(b1)
            .or_default()
            .push_back(Box::new(move |c, me| (result(c.link(me, a1)), Then::Stay)));
        for pid in [a1, b1] {
            let args = vec![Value::str(pid.to_string())];
            w.rt.spawn(SpawnRequest::new("t:poke", "ctl", args))
                .expect("test set-up");
        }
        let mut heard = 0;
        while heard < 2 {
            let (_, said) = w.replies.recv_timeout(WAIT).expect("a reply");
            assert_eq!(said, "ok");
            heard += 1;
        }
        // Which halves are left depends on the timing (b1's link may come
        // after a1's unlink reached it, and then it is a link b1 made);
        // each host pays exactly for the halves it holds paid, the two
        // sides agree, and a link that is left is paid for by someone:
        // b1's AddLink arriving after a1's unlink is ignored until b1 has
        // acknowledged that unlink (`Peers::unlinking`).
        std::thread::sleep(Duration::from_millis(5));
        let half = |pid: Pid, other: Pid| {
            w.on(pid, move |c, me| {
                let peers = c.procs.get(&me).and_then(|p| p.peers.as_deref());
                let h = peers.and_then(|p| p.links.get(&other).copied());
                (format!("{h:?}"), Then::Stay)
            })
        };
        let (ha, hb) = (half(a1, b1), half(b1, a1));
        let pays = |h: &str| if h == "Some(true)" { PAIR } else { 0 };
        w.settles("a", pays(&ha), &format!("round {round}: a1's half {ha}"));
        w.settles("b", pays(&hb), &format!("round {round}: b1's half {hb}"));
        assert_eq!(
            ha == "None",
            hb == "None",
            "round {round}: halves {ha} and {hb}"
        );
        if ha != "None" {
            assert!(
                pays(&ha) + pays(&hb) > 0,
                "round {round}: {ha} {hb} paid by nobody"
            );
        }
        // a1 links (again): a1 pays for its half, whatever was left.
        assert_eq!(w.op(a1, move |c, me| c.link(me, b1)), "ok");
        w.settles("a", PAIR, &format!("round {round}: a1 linked"));
        w.rt.kill(a1, ProcError::terminated()).expect("test set-up");
        w.rt.kill(b1, ProcError::terminated()).expect("test set-up");
        assert!(w.rt.wait_idle(WAIT));
        w.settles("a", 0, &format!("round {round}"));
        w.settles("b", 0, &format!("round {round}"));
    }
    w.finish(&[]);
}

#[test]
fn accounting_function_calls_waiting_running_and_dropped_give_everything_back() {
    let w = World::start_with(HostLimits::default().memory_total, true);
    let a1 = w.agent("a", true);
    let call = |arg: &'static str, n: usize| {
        move |c: &mut Core, me: Pid| {
            let mut out = Vec::new();
            for _ in 0..n {
                let call = crate::funcs::FunctionCall {
                    entry: "t:fn".into(),
                    args: vec![Value::str(arg), Value::Str(vec![b'x'; 10_000])],
                    context: Value::Nil,
                    timeout: None,
                };
                out.push(format!(
                    "{:?}",
                    c.call_function(me, call).map(drop).map_err(|e| e.kind)
                ));
            }
            (out.join(","), Then::Stay)
        }
    };
    // Calls that end at once, one after another through the pool of one.
    let said = w.on(a1, call("end", 5));
    assert!(said.split(',').all(|r| r == "Ok(())"), "{said}");
    // Their results come back as Done items (ignored): nothing held.
    let deadline = Instant::now() + WAIT;
    while w.rt.live_processes() != 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    w.settles("a", 0, "calls that ended");
    // One runs for good, three wait holding their arguments; the caller
    // is killed: the running callee is killed, the waiting ones dropped.
    let said = w.on(a1, call("stay", 4));
    assert!(said.split(',').all(|r| r == "Ok(())"), "{said}");
    let args = [Value::str("stay"), Value::Str(vec![b'x'; 10_000])];
    let each = crate::limits::wire_size(&args) + crate::limits::wire_size(&[Value::Nil]);
    w.settles("a", 3 * each as u64, "three calls waiting");
    w.rt.kill(a1, ProcError::terminated()).expect("test set-up");
    w.finish(&[]);
}

mod generated {
    use super::*;
    use proptest::prelude::*;

    /// One operation by agent `by` (index into the agents) on agent `on`.
    #[derive(Clone, Debug)]
    enum Op {
        Link(usize, usize),
        Unlink(usize, usize),
        Monitor(usize, usize),
        Unmonitor(usize, usize),
        Spawn(usize, bool, bool, bool),
        Register(usize, usize, u8),
        Unregister(usize, u8),
        Timer(usize, u8),
        CancelTimer(usize, u8),
        End(usize),
        Fail(usize),
        Kill(usize),
    }

    const N: usize = 4; // agents 0, 1 on a; 2, 3 on b

    fn op() -> impl Strategy<Value = Op> {
        let i = 0..N;
        prop_oneof![
            4 => (i.clone(), 0..N).prop_map(|(a, b)| Op::Link(a, b)),
            2 => (i.clone(), 0..N).prop_map(|(a, b)| Op::Unlink(a, b)),
            4 => (i.clone(), 0..N).prop_map(|(a, b)| Op::Monitor(a, b)),
            2 => (i.clone(), 0..N).prop_map(|(a, b)| Op::Unmonitor(a, b)),
            2 => (i.clone(), any::<bool>(), any::<bool>(), any::<bool>())
                .prop_map(|(a, l, m, ok)| Op::Spawn(a, l, m, ok)),
            2 => (i.clone(), 0..N, 0..3_u8).prop_map(|(a, b, n)| Op::Register(a, b, n)),
            1 => (i.clone(), 0..3_u8).prop_map(|(a, n)| Op::Unregister(a, n)),
            2 => (i.clone(), 0..3_u8).prop_map(|(a, n)| Op::Timer(a, n)),
            1 => (i.clone(), 0..3_u8).prop_map(|(a, n)| Op::CancelTimer(a, n)),
            1 => i.clone().prop_map(Op::End),
            1 => i.clone().prop_map(Op::Fail),
            1 => i.prop_map(Op::Kill),
        ]
    }

    /// What an operation is: a job for its actor, or a kill from outside.
    enum Step {
        Job(Pid, Job),
        Kill(Pid),
    }

    fn step(op: Op, agents: &[Pid]) -> Step {
        let by = |i: usize| agents[i];
        let stay = |r: Result<(), ProcError>| (result(r), Then::Stay);
        let names = ["x", "yy", "zzz"];
        match op {
            Op::Link(a, t) => {
                let t = by(t);
                Step::Job(by(a), Box::new(move |c, me| stay(c.link(me, t))))
            }
            Op::Unlink(a, t) => {
                let t = by(t);
                Step::Job(by(a), Box::new(move |c, me| stay(c.unlink(me, t))))
            }
            Op::Monitor(a, t) => {
                let t = by(t);
                Step::Job(by(a), Box::new(move |c, me| stay(c.monitor(me, t))))
            }
            Op::Unmonitor(a, t) => {
                let t = by(t);
                Step::Job(by(a), Box::new(move |c, me| stay(c.unmonitor(me, t))))
            }
            Op::Spawn(a, link, monitor, ok) => {
                let host = if a < 2 { "b" } else { "a" };
                let host = if ok { host } else { "nope" };
                Step::Job(
                    by(a),
                    Box::new(move |c, me| {
                        let mut req = SpawnRequest::new("t:agent", host, vec![Value::Bool(true)]);
                        (req.link, req.monitor) = (link, monitor);
                        match c.spawn(me, req) {
                            Ok(pid) => (pid.to_string(), Then::Stay),
                            Err(e) => (format!("{:?}", e.kind), Then::Stay),
                        }
                    }),
                )
            }
            Op::Register(a, t, n) => {
                let t = by(t);
                Step::Job(
                    by(a),
                    Box::new(move |c, me| stay(c.register(me, names[n as usize], t))),
                )
            }
            Op::Unregister(a, n) => Step::Job(
                by(a),
                Box::new(move |c, me| {
                    (c.unregister(me, names[n as usize]).to_string(), Then::Stay)
                }),
            ),
            Op::Timer(a, n) => Step::Job(
                by(a),
                Box::new(move |c, me| {
                    c.start_timer(me, u64::from(n), Duration::from_millis(20 * u64::from(n)));
                    stay(Ok(()))
                }),
            ),
            Op::CancelTimer(a, n) => Step::Job(
                by(a),
                Box::new(move |c, me| {
                    c.cancel_timer(me, u64::from(n));
                    stay(Ok(()))
                }),
            ),
            Op::End(a) => Step::Job(by(a), Box::new(|_, _| (String::new(), Then::End))),
            Op::Fail(a) => Step::Job(
                by(a),
                Box::new(|c, me| {
                    c.exit(me, Err(ProcError::new(ErrorKind::Internal, "boom")));
                    (String::new(), Then::Stay)
                }),
            ),
            Op::Kill(a) => Step::Kill(by(a)),
        }
    }

    /// Runs `ops`, `at_once` of them at a time (jobs of distinct agents
    /// run concurrently on their workers).
    fn run(ops: Vec<Op>, traps: [bool; N], at_once: usize) {
        let w = World::start(HostLimits::default().memory_total);
        let mut agents = Vec::new();
        for (i, trap) in traps.into_iter().enumerate() {
            agents.push(w.agent(if i < 2 { "a" } else { "b" }, trap));
        }
        let mut kids = Vec::new();
        let mut steps = ops.into_iter().map(|op| step(op, &agents)).peekable();
        while steps.peek().is_some() {
            let mut batch: Vec<(Pid, Job)> = Vec::new();
            let mut kills = Vec::new();
            while batch.len() + kills.len() < at_once
                && let Some(s) = steps.peek()
            {
                let pid = match s {
                    Step::Job(p, _) | Step::Kill(p) => *p,
                };
                if batch.iter().any(|(p, _)| *p == pid) || kills.contains(&pid) {
                    break;
                }
                match steps.next().expect("test set-up") {
                    Step::Job(p, j) if !w.is_dead(p) => batch.push((p, j)),
                    Step::Job(..) => {}
                    Step::Kill(p) => kills.push(p),
                }
            }
            for p in kills {
                let _ = w.rt.kill(p, ProcError::terminated());
            }
            for said in w.on_all(batch) {
                if let Some(kid) = Pid::parse(&said) {
                    kids.push(kid);
                }
            }
            assert!(w.used("a") >= w.base[0] && w.used("b") >= w.base[1]);
        }
        let mut all = agents.clone();
        all.extend(kids);
        w.finish(&all);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn accounting_generated_sequences_return_to_baseline(
            ops in proptest::collection::vec(op(), 1..24),
            traps in any::<[bool; N]>(),
        ) {
            run(ops, traps, 1);
        }

        #[test]
        fn accounting_generated_concurrent_sequences_return_to_baseline(
            ops in proptest::collection::vec(op(), 1..32),
            traps in any::<[bool; N]>(),
            at_once in 2..=N,
        ) {
            run(ops, traps, at_once);
        }
    }
}

//! Class: work a process makes its worker (or the runtime's other
//! threads) do outside its own account. A process's code runs only inside
//! its accounted resumes; what the kernel and the core do for it between
//! them (timer fires, delivered items, events, measure walks, the
//! collector) is charged to nobody. Guaranteed: that work stays within a
//! small multiple of what the process pays for itself, so the process
//! cannot keep its worker busy for free, nor starve a neighbour on it.
//!
//! Each case runs [`alone`] (no other attack of this binary shares the
//! cores) and reads the CPU time of the runtime's threads (those it
//! started: workers, timers, lanes) around the attack. Two shapes:
//!
//! - an attacker that sets something up and then sleeps 1 s: its account
//!   is a few milliseconds (it is not ended by a `cpu_budget` of 100 ms),
//!   so the runtime's CPU over that second must stay far below one core
//!   (a quiet runtime uses 4-6 % of it here), and the neighbour must keep
//!   at least a quarter of the ticks the wall time allows (it gets about
//!   90 % with a quiet attacker);
//! - an attacker that loops until its `cpu_budget` (100 ms) ends it: the
//!   runtime's CPU over the whole attack must stay within 8 times that
//!   budget (1.1-2.4 times measured).
//!
//! Three classes were holes until fixed (each fails on the code before):
//! tickers nobody reads re-armed at every fire, at their interval (one of
//! 1 ns took a core; 6,000 starved the neighbour); now a ticker whose tick
//! waits unread arms nothing until that tick is taken. A process hovering at its `memory_per_process` makes the kernel walk
//! what it holds after every resume: the walks are charged to its CPU
//! time (its `cpu_budget` ends it), and it is parked after them, so its
//! neighbour keeps its share meanwhile.

use std::time::{Duration, Instant};

use warren_core::{ErrorKind, HostLimits, Value};
use warren_tests::App;

use crate::harness::{self, Outcome, alone, app, attack_on, cpu_of, n, threads};

/// An attack and what it cost the runtime.
#[derive(Debug)]
struct Probe {
    out: Outcome,
    /// Wall time of the attack (the judge's run).
    wall: Duration,
    /// The runtime's CPU time meanwhile.
    cpu: Duration,
}

impl Probe {
    /// The neighbour kept a quarter of the 1 ms ticks the attack's wall
    /// time allows (it gets about 90 % next to a quiet attacker).
    fn assert_fair_share(&self) {
        let floor = i64::try_from(self.wall.as_millis() / 4).unwrap_or(i64::MAX);
        assert!(
            self.out.during >= floor,
            "the neighbour got {} ticks in {:?}, under {floor}: {self:?}",
            self.out.during,
            self.wall
        );
        self.out.assert_neighbour_ticks();
    }

    /// The runtime used at most half a core while an attacker whose own
    /// account stayed under 100 ms slept.
    fn assert_mostly_idle(&self) {
        assert!(
            self.cpu <= self.wall / 2,
            "the runtime used {:?} of CPU in {:?} for a sleeping attacker: {self:?}",
            self.cpu,
            self.wall
        );
    }

    /// The attacker was ended by its 100 ms budget, and the runtime's CPU
    /// over the whole attack stayed within 8 times that.
    fn assert_paid_for(&self) {
        self.out
            .assert_ended(ErrorKind::RateLimited, "cpu budget exceeded");
        assert!(
            self.cpu <= Duration::from_millis(800),
            "the runtime used {:?} of CPU for 100 ms of account: {self:?}",
            self.cpu
        );
    }
}

/// Runs `h:attacker` of `app` alone and reads the runtime's CPU around it.
fn probe(app: App, args: Vec<Value>) -> Probe {
    alone(|| {
        let before = threads();
        let runtime = app.start();
        // The runtime's own threads: its workers, timers and lanes (not
        // those of tests of this binary that run outside the harness's
        // lock, which would share this process's count).
        let mine = &threads() - &before;
        let (cpu, start) = (cpu_of(&mine), Instant::now());
        let out = attack_on(&runtime, "h:attacker", args);
        let wall = start.elapsed();
        let cpu = cpu_of(&mine)
            .iter()
            .map(|(tid, t)| t.saturating_sub(cpu.get(tid).copied().unwrap_or_default()))
            .sum();
        drop(runtime);
        Probe { out, wall, cpu }
    })
}

/// The harness's limits with a `cpu_budget` of 100 ms.
fn budget_100ms() -> HostLimits {
    HostLimits {
        cpu_budget: Some(Duration::from_millis(100)),
        ..harness::limits()
    }
}

/// Sleeps forever.
const IDLE: &str = r#"local time = require("time")
return function() while true do time.sleep("1h") end end"#;

/// Subscribes 64 times to system "x" and never reads.
const SUBSCRIBER: &str = r#"local time, events = require("time"), require("events")
return function()
    local subs = {}
    for i = 1, 64 do subs[i] = assert(events.subscribe("x")) end
    time.sleep("1h")
end"#;

fn the_app(attacker: &str) -> App {
    app()
        .limits(budget_100ms())
        .entry("h:attacker", attacker)
        .entry("h:idle", IDLE)
        .entry("h:sub", SUBSCRIBER)
}

/// An attacker that runs `setup`, then sleeps 1 s and returns "done".
fn sleeper(setup: &str) -> Probe {
    let source = format!(
        r#"local time = require("time")
        return function()
            {setup}
            time.sleep("1000ms")
            return "done"
        end"#
    );
    let p = probe(the_app(&source), Vec::new());
    assert_eq!(p.out.value(), "done", "{p:?}");
    p
}

/// An attacker that runs `body` (which loops) until its budget ends it.
fn looper(body: &str) -> Probe {
    let source = format!(
        r#"local time, events = require("time"), require("events")
        return function()
            {body}
        end"#
    );
    probe(the_app(&source), Vec::new())
}

// ---------------------------------------------------------------------------
// Holes
// ---------------------------------------------------------------------------

#[test]
fn a_one_nanosecond_ticker_nobody_reads_is_not_a_free_busy_loop() {
    // Before tickers paused on an unread tick (kernel/time.lua): 1.02 s of
    // CPU in 1.02 s of wall (a quiet attacker: 40 ms).
    // Each fire is a timer item the kernel handles (the channel is full,
    // so nothing is delivered) and re-arms at once, charged to nobody.
    let p = sleeper("local tk = time.ticker(1)");
    p.assert_fair_share();
    p.assert_mostly_idle();
}

#[test]
fn thousands_of_fast_tickers_leave_the_neighbour_its_share() {
    // Before tickers paused: the neighbour ticked 151 times in 1.05 s (about 900
    // otherwise), the runtime used a full core; the attacker's own account
    // stayed under 100 ms (it was not ended).
    let p = sleeper("local k = {} for i = 1, 6000 do k[i] = time.ticker(1) end");
    p.assert_fair_share();
    p.assert_mostly_idle();
}

/// Holds `n` empty tables (close to its `memory_per_process`), then for
/// 1 s allocates `r` bytes of garbage and waits 1 ns, over and over.
const HOVER: &str = r#"local time = require("time")
return function(n, r)
    local keep = {}
    for i = 1, n do keep[i] = {} end
    local t0, k = time.now(), 0
    while time.now():sub(t0):milliseconds() < 1000 do
        local g = string.rep("x", r) .. k
        g = nil
        time.sleep(1)
        k = k + 1
    end
    return tostring(k)
end"#;

/// Tables that bring a process close to a 32 MiB `memory_per_process`,
/// where each walk of its reach takes ~35 ms of its worker.
const NEAR_32_MIB: i64 = 380_000;

/// The harness's limits with a 32 MiB `memory_per_process` and `budget`.
fn at_32_mib(budget: Option<Duration>) -> HostLimits {
    HostLimits {
        cpu_budget: budget,
        memory_per_process: 32 << 20,
        ..harness::limits()
    }
}

/// `source` as the attacker, at 32 MiB, with `budget`.
fn hover_app(source: &str, budget: Option<Duration>) -> App {
    app().limits(at_32_mib(budget)).entry("h:attacker", source)
}

#[test]
fn hovering_at_the_memory_limit_does_not_make_the_worker_measure_for_free() {
    // Before processes were parked after their walks (quota.rs, park_for):
    // the kernel walked the process's reach after most resumes, and the
    // neighbour got 81-109 ticks in 1.1 s (about 900 otherwise); parked,
    // ~680. (With the walk in kernel Lua, 52 ms for 95,000 tables, the
    // same starved it at 8 MiB: 33 ticks.)
    let budget = harness::limits().cpu_budget;
    let p = probe(hover_app(HOVER, budget), vec![n(NEAR_32_MIB), n(50_000)]);
    p.assert_fair_share();
}

/// Without a `cpu_budget` nothing ends a hovering process: parked after
/// its walks, it runs its second out, and its neighbour keeps its share
/// all along.
#[test]
fn hovering_without_a_budget_leaves_the_neighbour_its_share() {
    let p = probe(
        hover_app(HOVER, None),
        vec![n(NEAR_32_MIB + 5_000), n(100_000)],
    );
    let rounds: i64 = p.out.value().parse().expect("a count");
    assert!(rounds > 0, "{p:?}");
    p.assert_fair_share();
}

/// Eight coroutines of a hovering process, each waking every nanosecond:
/// the wake-ups its parks hold back are all given back (every coroutine
/// keeps running), and the neighbour keeps its share.
#[test]
fn a_hovering_process_of_many_coroutines_is_parked_as_a_whole() {
    const SOURCE: &str = r#"local time = require("time")
return function(n, r)
    local keep = {}
    for i = 1, n do keep[i] = {} end
    local t0, counts, done = time.now(), {}, channel.new(8)
    for c = 1, 8 do
        counts[c] = 0
        coroutine.spawn(function()
            while time.now():sub(t0):milliseconds() < 1000 do
                local g = string.rep("x", r) .. c
                g = nil
                time.sleep(1)
                counts[c] = counts[c] + 1
            end
            done:send(c)
        end)
    end
    for _ = 1, 8 do done:receive() end
    local least = counts[1]
    for c = 2, 8 do least = math.min(least, counts[c]) end
    return tostring(least)
end"#;
    let p = probe(hover_app(SOURCE, None), vec![n(NEAR_32_MIB), n(6_000)]);
    let least: i64 = p.out.value().parse().expect("a count");
    assert!(least > 0, "a coroutine never ran again: {p:?}");
    p.assert_fair_share();
}

/// A hovering process receiving 300 numbered messages from a coroutine of
/// its own gets every one, in order, though its receives are held back
/// while it is parked.
#[test]
fn a_parked_process_loses_no_message_and_keeps_their_order() {
    const SOURCE: &str = r#"local time = require("time")
return function(n, r)
    local keep = {}
    for i = 1, n do keep[i] = {} end
    local inbox = process.inbox()
    local me = process.pid()
    coroutine.spawn(function()
        for i = 1, 300 do
            process.send(me, "n", i)
            time.sleep(1)
        end
    end)
    for i = 1, 300 do
        local g = string.rep("x", r) .. i
        g = nil
        local m = inbox:receive()
        local got = m:payload():data()
        if got ~= i then return "message " .. i .. " was " .. tostring(got) end
    end
    return "in order"
end"#;
    let limits = HostLimits {
        mailbox_limit: 1000,
        ..at_32_mib(None)
    };
    let app = app().limits(limits).entry("h:attacker", SOURCE);
    let p = probe(app, vec![n(NEAR_32_MIB), n(50_000)]);
    assert_eq!(p.out.value(), "in order", "{p:?}");
}

/// Holds `n` empty tables, then takes 2,000 messages of 60 KB from a
/// sender on the other host and drops them: each is charged as it
/// arrives, so every dozen or so take its charge past its limit and it is
/// measured (its own code does next to nothing).
const MEASURED_OFTEN: &str = r#"return function(n)
    local keep = {}
    for i = 1, n do keep[i] = {} end
    assert(process.spawn("h:sender", "{OTHER_HOST}", process.pid(), 2000))
    local inbox = process.inbox()
    for _ = 1, 2000 do inbox:receive() end
    return "received"
end"#;

/// The walks of a process measured again and again are charged to its CPU
/// time: its `cpu_budget` (150 ms) ends it. Before, they were on nobody's
/// account and it ran on (the walks took a core for as long as it liked).
/// Its own code takes about 70 ms (the tables, the 2,000 receives); its
/// walks, ~6 ms each, come at least every second batch of what its
/// mailbox (20) holds: 50 or more.
#[test]
fn walks_of_a_process_measured_again_and_again_are_paid_from_its_budget() {
    let limits = HostLimits {
        cpu_budget: Some(Duration::from_millis(150)),
        mailbox_limit: 20,
        allow_hosts: Some(vec![warren_tests::OTHER_HOST.to_owned()]),
        ..harness::limits()
    };
    let source = MEASURED_OFTEN.replace("{OTHER_HOST}", warren_tests::OTHER_HOST);
    let app = app()
        .limits(limits)
        .entry("h:sender", harness::SENDER)
        .entry("h:attacker", &source);
    let p = probe(app, vec![n(70_000)]);
    p.out
        .assert_ended(ErrorKind::RateLimited, "cpu budget exceeded");
    assert!(
        p.wall < Duration::from_secs(10),
        "the budget ended it late: {p:?}"
    );
}

// ---------------------------------------------------------------------------
// Bounded: work the process pays for, or work that ends
// ---------------------------------------------------------------------------

#[test]
fn a_quiet_attacker_leaves_the_runtime_idle() {
    // The baseline of the sleeping cases: 40 ms of CPU, ~910 ticks.
    let p = sleeper("");
    p.assert_fair_share();
    p.assert_mostly_idle();
}

#[test]
fn ten_thousand_one_shot_timers_into_unread_channels_fire_once() {
    // Each fires once into its channel's buffer: 60 ms of CPU in all.
    let p = sleeper("for i = 1, 10000 do time.after(1) end");
    p.assert_fair_share();
    p.assert_mostly_idle();
}

#[test]
fn a_thousand_long_tickers_cost_nothing_while_they_wait() {
    // 50 ms of CPU: a ticker costs only when it fires.
    let p = sleeper(r#"local k = {} for i = 1, 1000 do k[i] = time.ticker("1h") end"#);
    p.assert_fair_share();
    p.assert_mostly_idle();
}

#[test]
fn a_timer_reset_loop_is_paid_for() {
    // Each reset takes its entry out of the core's heap (amortised):
    // 110 ms of CPU for 100 ms of account, long deadline or immediate.
    looper(r#"local t = time.timer("1h") while true do t:reset("1h") end"#).assert_paid_for();
    looper(r#"local t = time.timer("1h") while true do t:reset(1) end"#).assert_paid_for();
}

#[test]
fn a_cancel_storm_at_an_idle_process_is_paid_for() {
    // The victim's kernel drops a repeated CANCEL of one sender in O(1):
    // 240 ms of CPU for 100 ms of account.
    looper(
        r#"local v = process.spawn("h:idle", "test:host")
        while true do process.cancel(v, "r") end"#,
    )
    .assert_paid_for();
}

#[test]
fn publishing_to_subscribers_that_never_read_is_paid_for() {
    // 40 processes of 64 subscriptions each: a publish's fan-out runs in
    // the publisher's call, and an unread subscription's events wait in
    // its mailbox (full at 100): 120 ms of CPU for 100 ms of account.
    looper(
        r#"for i = 1, 40 do process.spawn("h:sub", "test:host") end
        time.sleep("100ms")
        local k = 0
        while true do k = k + 1 events.send("x", "k", "p", k) end"#,
    )
    .assert_paid_for();
}

#[test]
fn stale_select_waiters_are_walked_once() {
    // Each select leaves a stale waiter on the inbox, which the next
    // delivery skips and drops: 190 ms of CPU for 100 ms of account.
    looper(
        r#"local inbox, k = process.inbox(), 0
        while true do
            k = k + 1
            channel.select({ inbox:case_receive(), time.after(1):case_receive() })
            process.send(process.pid(), "x", k)
        end"#,
    )
    .assert_paid_for();
}

#[test]
fn monitoring_a_process_many_times_then_ending_it_is_paid_for() {
    // 20,000 monitors of one process, then its exit: 120 ms of CPU.
    looper(
        r#"local v = process.spawn("h:idle", "test:host")
        for i = 1, 20000 do process.monitor(v) end
        process.terminate(v)
        while true do end"#,
    )
    .assert_paid_for();
}

#[test]
fn garbage_next_to_thousands_of_suspended_coroutines_is_paid_for() {
    // The collector's young collections walk every suspended coroutine of
    // the VM, on nobody's account; with 3,000 of them, garbage made as
    // fast as possible cost 120 ms of CPU for 100 ms (110 ms without).
    looper(
        r#"local ch = channel.new()
        for i = 1, 3000 do coroutine.spawn(function() ch:receive() end) end
        local k = 0
        while true do k = k + 1 local g = string.rep("x", 10000) .. k end"#,
    )
    .assert_paid_for();
}

#[test]
fn garbage_far_below_the_memory_limit_is_not_measured_over_and_over() {
    // The hovering attack without held data: the garbage is collected
    // before the charge reaches the limit, so the attacker pays for its
    // loop (120 ms of CPU) and its 100 ms budget ends it.
    let p = probe(
        app().limits(budget_100ms()).entry("h:attacker", HOVER),
        vec![n(0), n(300_000)],
    );
    p.assert_paid_for();
}

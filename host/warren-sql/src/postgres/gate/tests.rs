use std::future::Future;
use std::task::{Context, Waker};
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;

/// Lets every spawned task run until it waits.
async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

/// Spawns a borrow of `host` that logs `tag` when it gets its permit and
/// gives it back at once.
fn borrow(gate: &Arc<Gate>, host: u16, tag: u32, log: &mpsc::UnboundedSender<u32>) {
    let (gate, log) = (gate.clone(), log.clone());
    tokio::spawn(async move {
        let permit = gate.enter(host).await.expect("a permit");
        log.send(tag).expect("logged");
        drop(permit);
    });
}

fn drain(rx: &mut mpsc::UnboundedReceiver<u32>) -> Vec<u32> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn waiting_hosts_take_turns() {
    let gate = Gate::new(1, false);
    let held = gate.enter(1).await.expect("free");
    let (log, mut rx) = mpsc::unbounded_channel();
    for tag in 10..15 {
        borrow(&gate, 1, tag, &log);
    }
    borrow(&gate, 2, 20, &log);
    borrow(&gate, 3, 30, &log);
    settle().await;
    assert_eq!(gate.waiting(), 7);
    drop(held);
    settle().await;
    // Host 1's backlog delays each other host by one of its borrows.
    assert_eq!(drain(&mut rx), [10, 20, 30, 11, 12, 13, 14]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_shared_entry_keeps_its_reserve_for_hosts_holding_none() {
    let gate = Gate::new(4, false);
    assert_eq!(reserve(4), 1);
    drop(gate.enter(2).await.expect("free")); // a second host has used it
    let mine: Vec<Permit> = vec![
        gate.enter(1).await.expect("1st"),
        gate.enter(1).await.expect("2nd"),
        gate.enter(1).await.expect("3rd"),
    ];
    let fourth = tokio::time::timeout(Duration::from_millis(50), gate.enter(1)).await;
    assert!(fourth.is_err(), "host 1 took the reserved connection");
    let other = tokio::time::timeout(Duration::from_millis(50), gate.enter(2)).await;
    let other = other.expect("the reserve is host 2's").expect("open");
    drop(other);
    drop(mine);
    let all: Vec<Permit> = futures_util::future::join_all((0..3).map(|_| gate.enter(1)))
        .await
        .into_iter()
        .map(|p| p.expect("open"))
        .collect();
    assert_eq!(all.len(), 3);
}

#[tokio::test(flavor = "current_thread")]
async fn one_host_alone_may_borrow_every_connection() {
    let gate = Gate::new(4, false);
    let mut all = Vec::new();
    for _ in 0..4 {
        let p = tokio::time::timeout(Duration::from_millis(50), gate.enter(1)).await;
        all.push(p.expect("no reserve while unshared").expect("open"));
    }
    assert_eq!(gate.lock().free, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn an_entry_of_several_tenants_keeps_its_reserve_from_the_first_call() {
    // Host 1 comes first and takes what it can (transactions it keeps
    // open): one connection stays for host 2's first call, which waited
    // out its acquire_timeout when the reserve began only with a second
    // host's use (red team I).
    let gate = Gate::new(4, true);
    let mut mine = Vec::new();
    while let Ok(p) = tokio::time::timeout(Duration::from_millis(20), gate.enter(1)).await {
        mine.push(p.expect("open"));
    }
    assert_eq!(mine.len(), 3, "host 1 held the reserve");
    let other = tokio::time::timeout(Duration::from_millis(50), gate.enter(2)).await;
    drop(other.expect("the reserve is host 2's").expect("open"));
}

#[tokio::test(flavor = "current_thread")]
async fn a_waiter_that_gives_up_passes_its_place_on() {
    let gate = Gate::new(1, false);
    let held = gate.enter(1).await.expect("free");
    let gone = tokio::time::timeout(Duration::from_millis(20), gate.enter(2)).await;
    assert!(gone.is_err(), "no permit was free");
    let (log, mut rx) = mpsc::unbounded_channel();
    borrow(&gate, 3, 30, &log);
    settle().await;
    drop(held);
    settle().await;
    assert_eq!(drain(&mut rx), [30]);
    assert_eq!(gate.lock().free, 1, "every permit came back");
}

#[tokio::test(flavor = "current_thread")]
async fn a_permit_handed_to_a_dropped_wait_comes_back() {
    let gate = Gate::new(1, false);
    let held = gate.enter(1).await.expect("free");
    let mut wait = Box::pin(gate.enter(2));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(wait.as_mut().poll(&mut cx).is_pending());
    drop(held); // handed to the waiter, which never takes it
    drop(wait);
    assert_eq!(gate.lock().free, 1);
    assert!(gate.lock().held.is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn closing_ends_every_wait_and_refuses_new_borrows() {
    let gate = Gate::new(1, false);
    let _held = gate.enter(1).await.expect("free");
    let waiter = tokio::spawn({
        let gate = gate.clone();
        async move { gate.enter(2).await.err() }
    });
    settle().await;
    gate.close();
    assert_eq!(waiter.await.expect("joined"), Some(Refused::Closed));
    assert_eq!(gate.enter(3).await.err(), Some(Refused::Closed));
}

//! Drives the channel half of the process interface from a guest (local
//! channels, `inbox`, `events`, `listen`, `after`, `select`, the `select!`
//! macro and their errors) against an echo peer, and returns a list of what
//! it observed for the host tests to check.

use std::time::Duration;

use warren_sdk::{Args, Channel, Error, Item, Payload, Process, Select, Selected};

struct ChanProbe;

fn kind<T>(r: Result<T, Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{:?}", e.kind),
    }
}

fn local(seen: &mut Vec<String>) -> Result<(), Error> {
    let ch = Channel::new(2);
    ch.send(&1_i64)?;
    ch.send("two")?;
    let full = ch.send(&3_i64);
    seen.push(format!("full:{}", kind(full)));
    let one: Option<i64> = ch.recv()?;
    let two: Option<String> = ch.recv()?;
    seen.push(format!("buffered:{one:?}:{two:?}"));
    ch.send(&true)?;
    ch.close();
    ch.close();
    let drained: Option<bool> = ch.recv()?;
    let closed: Option<bool> = ch.recv()?;
    seen.push(format!("closed:{drained:?}:{closed:?}"));
    seen.push(format!("send-closed:{}", kind(ch.send(&1_i64))));
    let empty = Channel::new(0);
    seen.push(format!("recv-empty:{}", kind(empty.recv::<i64>())));
    let mut sel = Select::new();
    sel.recv(&empty);
    seen.push(format!(
        "try:{}",
        matches!(sel.try_wait()?, Selected::WouldBlock)
    ));
    let room = Channel::new(1);
    let mut sel = Select::new();
    sel.recv(&empty);
    let put = sel.send(&room, "queued")?;
    let took = matches!(sel.wait(None)?, Selected::Ready(i, None) if i == put);
    seen.push(format!("select-send:{took}:{:?}", room.recv::<String>()?));
    Ok(())
}

fn timers(seen: &mut Vec<String>) -> Result<(), Error> {
    let never = Channel::new(0);
    let timer = warren_sdk::after(Duration::from_millis(5));
    let mut sel = Select::new();
    sel.recv(&never);
    let t = sel.recv(&timer);
    let fired = match sel.wait(None)? {
        Selected::Ready(i, Some(Item::Value(v))) if i == t => warren_sdk::decode::<i64>(&v)? > 0,
        _ => false,
    };
    seen.push(format!("after:{fired}"));
    seen.push(format!("after-again:{}", kind(timer.recv::<i64>())));
    let inbox = warren_sdk::inbox();
    let mut sel = Select::new();
    sel.recv(&inbox);
    let waited = sel.wait(Some(Duration::from_millis(5)))?;
    seen.push(format!("timeout:{}", matches!(waited, Selected::Timeout)));
    Ok(())
}

fn topics(seen: &mut Vec<String>, echo: &str) -> Result<(), Error> {
    let jobs = warren_sdk::listen("job")?;
    let inbox = warren_sdk::inbox();
    seen.push(format!("inbox-send:{}", kind(inbox.send(&1_i64))));
    seen.push(format!("reserved:{}", kind(warren_sdk::listen("@x"))));
    warren_sdk::send(echo, "other", "to the inbox")?;
    warren_sdk::send(echo, "job", &7_i64)?;
    let job: Option<i64> = jobs.recv()?;
    let other = inbox.recv_message()?.map(|m| m.topic);
    seen.push(format!("listen:{job:?}:{other:?}"));
    warren_sdk::unlisten(&jobs);
    seen.push(format!("unlistened:{:?}", jobs.recv::<i64>()?));
    Ok(())
}

enum Got {
    Message(String),
    Exit(bool),
    Nothing,
}

fn macro_select(seen: &mut Vec<String>, echo: &str) -> Result<(), Error> {
    let inbox = warren_sdk::inbox();
    let events = warren_sdk::events();
    warren_sdk::monitor(echo)?;
    warren_sdk::send(echo, "ping", &1_i64)?;
    for _ in 0..3 {
        let got = warren_sdk::select! {
            recv(inbox) -> item => match item {
                Some(Item::Message(m)) => Got::Message(m.topic),
                _ => Got::Nothing,
            },
            recv(events) -> item => Got::Exit(matches!(item, Some(Item::Event(e)) if e.from == echo)),
            timeout(Duration::from_secs(5)) => Got::Nothing,
        }?;
        match got {
            Got::Message(topic) => {
                seen.push(format!("macro-message:{topic}"));
                warren_sdk::send(echo, "stop", &())?;
            }
            Got::Exit(from_echo) => seen.push(format!("macro-exit:{from_echo}")),
            Got::Nothing => seen.push("macro-nothing".into()),
        }
        if seen.last().is_some_and(|s| s.starts_with("macro-exit")) {
            break;
        }
    }
    let quiet = warren_sdk::select! {
        recv(inbox) -> _item => false,
        timeout(Duration::from_millis(5)) => true,
    }?;
    seen.push(format!("macro-timeout:{quiet}"));
    Ok(())
}

/// The inbox and events channels once closed: what is there is still
/// taken, then `none` at once instead of a wait; another inbox handle
/// still waits.
fn closed_feeds(seen: &mut Vec<String>) -> Result<(), Error> {
    warren_sdk::send(&warren_sdk::pid(), "self", &1_i64)?;
    let inbox = warren_sdk::inbox();
    inbox.close();
    let first = inbox.recv_message()?.map(|m| m.topic);
    let then = inbox.recv_message()?.map(|m| m.topic);
    let events = warren_sdk::events();
    events.close();
    let no_event = events.recv_item()?.is_none();
    let other = warren_sdk::inbox();
    let waits = warren_sdk::select! {
        recv(other) -> _item => false,
        timeout(Duration::from_millis(5)) => true,
    }?;
    seen.push(format!(
        "closed-feeds:{first:?}:{then:?}:{no_event}:{waits}"
    ));
    Ok(())
}

impl Process for ChanProbe {
    fn run(args: Args) -> Result<Payload, Error> {
        let host: String = args.get(0)?;
        let mut seen = Vec::new();
        local(&mut seen)?;
        timers(&mut seen)?;
        let echo = warren_sdk::spawn("t:echo", &host, &[])?;
        topics(&mut seen, &echo)?;
        macro_select(&mut seen, &echo)?;
        closed_feeds(&mut seen)?;
        warren_sdk::payload(&seen)
    }
}

warren_sdk::export!(ChanProbe);

//! Drives the process interface from the guest side (spawn, link, monitor,
//! registry, exec, sleep, wait, cancel, terminate, trap-links) and returns
//! a list of what it observed, for the host tests to check.

use std::time::Duration;

use warren_sdk::{Args, Error, EventKind, Payload, Process, Wake};

struct Probe;

impl Process for Probe {
    fn run(args: Args) -> Result<Payload, Error> {
        let host: String = args.get(0)?;
        let mut seen: Vec<String> = Vec::new();
        let me = warren_sdk::pid();
        seen.push(format!("pid:{}", me.starts_with('<')));

        // Registry.
        warren_sdk::register("probe", None)?;
        seen.push(format!(
            "lookup:{}",
            warren_sdk::lookup("probe").as_deref() == Some(me.as_str())
        ));
        let dup = warren_sdk::register("probe", None).map_err(|e| format!("{:?}", e.kind));
        seen.push(format!("dup:{dup:?}"));

        // exec returns the child's result.
        let fine = warren_sdk::exec("t:crasher", &host, &[warren_sdk::payload("ok")?])?;
        seen.push(format!("exec:{}", warren_sdk::decode::<String>(&fine)?));
        let failed = warren_sdk::exec("t:crasher", &host, &[warren_sdk::payload("error")?]);
        seen.push(format!("exec-err:{:?}", failed.map_err(|e| e.kind)));

        // Monitor an echo; send, receive, stop it, see EXIT.
        let echo = warren_sdk::spawn_monitored("t:echo", &host, &[])?;
        warren_sdk::send(&echo, "ping", &42_i64)?;
        let reply =
            warren_sdk::receive(Some(Duration::from_secs(5)))?.ok_or_else(|| err("no echo"))?;
        seen.push(format!("echo:{}", reply.data::<i64>()?));
        warren_sdk::send(&echo, "stop", &())?;
        let exit =
            warren_sdk::next_event(Some(Duration::from_secs(5))).ok_or_else(|| err("no exit"))?;
        seen.push(format!("exit:{:?}:{}", exit.kind, exit.from == echo));

        // A linked crash arrives as LINK_DOWN when trapping.
        warren_sdk::set_trap_links(true);
        seen.push(format!("trap-links:{}", warren_sdk::trap_links()));
        seen.push(format!(
            "now:{}",
            warren_sdk::now_unix_ns() > 1_700_000_000_000_000_000
        ));
        let crash = warren_sdk::spawn_linked("t:linkee", &host, &[warren_sdk::payload("panic")?])?;
        match warren_sdk::wait(Some(Duration::from_secs(5))) {
            Wake::Event(e) => seen.push(format!(
                "link-down:{}:{}",
                e.kind == EventKind::LinkDown,
                e.from == crash
            )),
            other => seen.push(format!("link-down:unexpected {other:?}")),
        }

        // wait times out when nothing comes; sleep lets time pass.
        let started = warren_sdk::wait(Some(Duration::from_millis(20)));
        seen.push(format!("timeout:{}", matches!(started, Wake::Timeout)));
        warren_sdk::sleep(Duration::from_millis(5));

        // Without its link and monitor, a terminated process sends nothing.
        let quiet = warren_sdk::spawn("t:echo", &host, &[])?;
        warren_sdk::link(&quiet)?;
        warren_sdk::monitor(&quiet)?;
        warren_sdk::unlink(&quiet)?;
        warren_sdk::unmonitor(&quiet)?;
        warren_sdk::terminate(&quiet)?;
        let heard = warren_sdk::next_event(Some(Duration::from_millis(100)));
        seen.push(format!("unlinked-unmonitored:{}", heard.is_none()));

        // cancel and terminate another process.
        let victim = warren_sdk::spawn_monitored("t:echo", &host, &[])?;
        warren_sdk::cancel(&victim, "please stop")?;
        warren_sdk::terminate(&victim)?;
        let ev =
            warren_sdk::next_event(Some(Duration::from_secs(5))).ok_or_else(|| err("no exit"))?;
        let reason = match ev.result {
            Some(Err(e)) => e.message,
            _ => "not an error".into(),
        };
        seen.push(format!("terminated:{reason}"));
        let gone = warren_sdk::send(&victim, "x", &1);
        seen.push(format!("send-dead:{:?}", gone.map_err(|e| e.kind)));
        seen.push(format!("unregister:{}", warren_sdk::unregister("probe")));
        warren_sdk::payload(&seen)
    }
}

fn err(text: &str) -> Error {
    Error::new(warren_sdk::ErrorKind::Internal, text)
}

warren_sdk::export!(Probe);

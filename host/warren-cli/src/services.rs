//! `warren run <app>`: supervise the application's services until they
//! have all stopped. The first Ctrl-C or SIGTERM stops them in reverse
//! dependency order (CANCEL, then terminate after `stop_timeout`); a second
//! one terminates everything at once.
//!
//! [`driver`] and [`boot_set`] also serve `warren run <app> -x`, which
//! starts the same services before its main process.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::anyhow;
use warren_config::App;
use warren_core::Runtime;
use warren_supervisor::Supervisor;
use warren_supervisor::driver::{Driver, Event, Outcome};

use crate::Failure;

/// A supervisor driver for `app`'s services, wired to `runtime` (which
/// makes the `services` module answer).
pub(crate) fn driver(app: &App, runtime: &Runtime) -> Driver {
    let services = app
        .services()
        .map(|(id, s)| (id.to_owned(), s.clone()))
        .collect();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Driver::new(Supervisor::new(services, seed), runtime)
}

/// The services the supervisor starts when it boots: the auto-start ones
/// and, transitively, the services they require.
pub(crate) fn boot_set(app: &App) -> BTreeSet<String> {
    // By id: a walk of every service per wanted one was quadratic.
    let mut requires = std::collections::HashMap::new();
    for (id, svc) in app.services() {
        requires.entry(id).or_insert(&svc.requires);
    }
    let mut wanted = BTreeSet::new();
    let mut todo: Vec<String> = app
        .services()
        .filter(|(_, s)| s.auto_start)
        .map(|(id, _)| id.to_owned())
        .collect();
    while let Some(id) = todo.pop() {
        if wanted.contains(&id) {
            continue;
        }
        if let Some(reqs) = requires.get(id.as_str()) {
            todo.extend(reqs.iter().cloned());
        }
        wanted.insert(id);
    }
    wanted
}

pub(crate) fn run(app: &App, runtime: Runtime) -> Result<(), Failure> {
    let driver = driver(app, &runtime);
    let events = driver.sender();
    let presses = AtomicUsize::new(0);
    let handler = move || {
        let event = if presses.fetch_add(1, Ordering::SeqCst) == 0 {
            Event::Shutdown
        } else {
            Event::Kill
        };
        let _ = events.send(event);
    };
    if let Err(err) = ctrlc::set_handler(handler) {
        tracing::warn!("cannot install the Ctrl-C handler: {err}");
    }
    let outcome = driver.run(&runtime);
    stop_the_rest(app, &runtime);
    crate::run::finish(outcome_result(&outcome))
}

/// Longest wait for the processes still alive once the services have
/// stopped (what services spawned) to end after their CANCEL.
const REST_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Once the services have stopped, every process still alive (what they
/// spawned) gets a CANCEL, as in Wippy's shutdown, and up to the longest
/// `stop_timeout` (at most [`REST_GRACE`]) to end; then the program exits
/// and ends the rest.
pub(crate) fn stop_the_rest(app: &App, runtime: &Runtime) {
    if runtime.live_processes() == 0 {
        return;
    }
    let grace = app
        .services()
        .map(|(_, s)| s.stop_timeout)
        .max()
        .unwrap_or(REST_GRACE)
        .min(REST_GRACE);
    let asked = runtime.cancel_all(&warren_core::Value::str("shutdown"));
    if asked > 0 && !runtime.wait_idle(grace) {
        tracing::info!(
            "{} processes still running at exit",
            runtime.live_processes()
        );
    }
}

/// How the services' ending reads as the program's result.
pub(crate) fn outcome_result(outcome: &Outcome) -> Result<(), Failure> {
    if let Some(why) = &outcome.escalation {
        Err(Failure::failed(
            anyhow!("{why}").context("the application failed"),
        ))
    } else if outcome.failed {
        Err(Failure::failed(anyhow!(
            "some services failed; see the log"
        )))
    } else if outcome.terminated {
        Err(Failure::terminated(anyhow!(
            "some services ignored CANCEL and had to be terminated"
        )))
    } else {
        Ok(())
    }
}

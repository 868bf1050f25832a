//! `warren run <app>`: supervise the application's services until they
//! have all stopped. The first Ctrl-C or SIGTERM stops them in reverse
//! dependency order (CANCEL, then terminate after `stop_timeout`); a second
//! one terminates everything at once.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::anyhow;
use warren_config::App;
use warren_core::Runtime;
use warren_supervisor::Supervisor;
use warren_supervisor::driver::{Driver, Event};

use crate::Failure;

pub(crate) fn run(app: &App, runtime: Runtime) -> Result<(), Failure> {
    let services = app
        .services()
        .map(|(id, s)| (id.to_owned(), s.clone()))
        .collect();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let driver = Driver::new(Supervisor::new(services, seed), &runtime);
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
    let result = if let Some(why) = outcome.escalation {
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
    };
    crate::run::finish(result)
}

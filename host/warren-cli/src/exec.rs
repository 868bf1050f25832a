//! `warren run <app> -x <entry>` for an application with services: like
//! Wippy's `run --exec`, the whole application boots first. The supervisor
//! driver runs on its own thread and starts the auto-start services; then
//! the entry's process is spawned. When it ends, the services are stopped
//! (CANCEL, then terminate after their `stop_timeout`) and the program
//! exits with the entry's outcome.
//!
//! The first Ctrl-C or SIGTERM cancels the entry and stops the services; a
//! second one terminates the entry and every service at once.

use std::sync::mpsc;
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use warren_config::App;
use warren_core::{Exit, Pid, ProcError, Runtime, SpawnRequest, Value};
use warren_supervisor::driver::{Event, Outcome};

use crate::Failure;

/// The longest wait for the supervisor to spawn the auto-start services
/// before the entry is spawned anyway (a service whose spawn failed waits
/// for its restart delay; one that ended at once no longer counts).
const BOOT_WAIT: Duration = Duration::from_secs(1);

/// What the main thread waits for.
enum Signal {
    /// The entry's process ended.
    Exit(Exit),
    /// Ctrl-C or SIGTERM.
    Interrupt,
}

/// Runs `req` once `app`'s services have started; the entry's outcome.
pub(crate) fn run(app: &App, runtime: &Runtime, req: SpawnRequest) -> Result<(), Failure> {
    let driver = crate::services::driver(app, runtime).serve_until_shutdown();
    let events = driver.sender();
    let expected = crate::services::boot_set(app).len();
    let (signal, signals) = mpsc::channel();
    install_interrupts(signal.clone());
    std::thread::scope(|scope| {
        let supervisor = scope.spawn(|| driver.run(runtime));
        wait_for_boot(runtime, expected, || supervisor.is_finished());
        let result = main_process(runtime, req, &events, signal, &signals);
        let _ = events.send(Event::Shutdown);
        if let Some(outcome) = wait_for_services(supervisor, &events, &signals) {
            warn_about(&outcome);
            crate::services::stop_the_rest(app, runtime);
        }
        result
    })
}

fn install_interrupts(signal: mpsc::Sender<Signal>) {
    if let Err(err) = ctrlc::set_handler(move || {
        let _ = signal.send(Signal::Interrupt);
    }) {
        tracing::warn!("cannot install the Ctrl-C handler: {err}");
    }
}

/// Waits until the supervisor has spawned the `expected` boot services
/// (each counts as a live process from its spawn on), it has stopped, or
/// [`BOOT_WAIT`] has passed.
fn wait_for_boot(runtime: &Runtime, expected: usize, stopped: impl Fn() -> bool) {
    let end = Instant::now() + BOOT_WAIT;
    while runtime.live_processes() < expected && !stopped() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Spawns the entry and waits for it, relaying interrupts.
fn main_process(
    runtime: &Runtime,
    req: SpawnRequest,
    events: &mpsc::Sender<Event>,
    signal: mpsc::Sender<Signal>,
    signals: &mpsc::Receiver<Signal>,
) -> Result<(), Failure> {
    let entry = req.entry.clone();
    let notify = Box::new(move |_: Pid, exit: &Exit| {
        let _ = signal.send(Signal::Exit(exit.clone()));
    });
    let pid = runtime
        .spawn_notify(req, notify)
        .with_context(|| format!("cannot start entry '{entry}'"))
        .map_err(Failure::bad_input)?;
    let mut presses = 0;
    loop {
        match signals.recv() {
            Ok(Signal::Exit(Ok(value))) => return crate::run::returned(&value),
            Ok(Signal::Exit(Err(err))) => {
                let context = crate::run::failed_message(pid, &entry, err.kind.name());
                return Err(Failure::failed(anyhow!("{}", err.message).context(context)));
            }
            Ok(Signal::Interrupt) => {
                presses += 1;
                interrupt(runtime, pid, events, presses);
            }
            Err(_) => {
                let msg = anyhow!("the runtime stopped before {pid} exited");
                return Err(Failure::failed(msg));
            }
        }
    }
}

/// The first interrupt cancels the entry and stops the services; later
/// ones terminate everything.
fn interrupt(runtime: &Runtime, pid: Pid, events: &mpsc::Sender<Event>, presses: u32) {
    if presses == 1 {
        tracing::info!("interrupted: cancelling {pid} and stopping the services");
        let _ = runtime.cancel(pid, Value::str("interrupt"));
        let _ = events.send(Event::Shutdown);
    } else {
        tracing::warn!("interrupted again: terminating {pid} and every service");
        let _ = runtime.kill(pid, ProcError::terminated());
        let _ = events.send(Event::Kill);
    }
}

/// Waits for the supervisor to stop every service; an interrupt meanwhile
/// terminates them at once.
fn wait_for_services(
    supervisor: ScopedJoinHandle<'_, Outcome>,
    events: &mpsc::Sender<Event>,
    signals: &mpsc::Receiver<Signal>,
) -> Option<Outcome> {
    while !supervisor.is_finished() {
        if let Ok(Signal::Interrupt) = signals.recv_timeout(Duration::from_millis(20)) {
            tracing::warn!("interrupted: terminating every service now");
            let _ = events.send(Event::Kill);
        }
    }
    supervisor.join().ok()
}

/// The services' troubles are logged; the status is the entry's.
fn warn_about(outcome: &Outcome) {
    if let Err(failure) = crate::services::outcome_result(outcome) {
        let mut text = failure.error.to_string();
        for cause in failure.error.chain().skip(1) {
            text.push_str(": ");
            text.push_str(&cause.to_string());
        }
        tracing::warn!("services: {text}");
    }
}

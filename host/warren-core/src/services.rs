//! The seam through which processes see and steer supervised services
//! (`require("services")`), without the process model knowing how
//! supervision works.

use crate::error::ProcError;
use crate::pid::Pid;

/// A service as a process sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceInfo {
    /// The service's entry id.
    pub id: String,
    /// `starting`, `running`, `stopping`, `stopped`, `failed` or `exited`.
    pub state: String,
    /// Its process, while it has one.
    pub pid: Option<Pid>,
    /// How often it was restarted.
    pub restarts: u32,
    /// Why it last changed state.
    pub reason: String,
    /// The host (tenant) its process runs on: a process sees and steers
    /// only the services of its own host.
    pub host: String,
}

/// What a process may ask of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceCommand {
    /// Start it (and what it requires).
    Start,
    /// Stop it (and what requires it).
    Stop,
    /// Stop it and start it again.
    Restart,
}

/// Implemented by the supervisor; installed with `Runtime::set_services`.
pub trait ServiceControl: Send + Sync {
    /// Every service's status.
    fn list(&self) -> Vec<ServiceInfo>;
    /// Queues a command; `NOT_FOUND` for an unknown service. The state
    /// changes asynchronously: callers watch `list` or the log.
    fn command(&self, id: &str, command: ServiceCommand) -> Result<(), ProcError>;
}

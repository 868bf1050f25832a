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
    /// The statuses of host `host`'s services (the default filters
    /// [`list`](Self::list); a supervisor of many services keeps them by
    /// host, so a tenant's list costs its own services, not everyone's).
    fn list_host(&self, host: &str) -> Vec<ServiceInfo> {
        self.list().into_iter().filter(|s| s.host == host).collect()
    }
    /// Service `id`'s status, if there is such a service (the default
    /// searches [`list`](Self::list); a supervisor keeps them by id).
    fn status(&self, id: &str) -> Option<ServiceInfo> {
        self.list().into_iter().find(|s| s.id == id)
    }
    /// Queues a command; `NOT_FOUND` for an unknown service. The state
    /// changes asynchronously: callers watch `list` or the log.
    fn command(&self, id: &str, command: ServiceCommand) -> Result<(), ProcError>;
}

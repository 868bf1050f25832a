//! Worker threads of the hosts, bounded per host and per application.
//! Every worker is an OS thread with its own Lua VM, all started with the
//! application (about 0.9 MB resident and 16 MB of address space each), so
//! `host: { workers: 100000 }` took 21.6 GB and hung `warren run`, and
//! 1,000 workers aborted under a 16 GB address-space limit.

use crate::{App, ConfigError, HostEntry};

/// Workers one host may have (`host.workers`): far more threads than
/// cores only share the cores, while each costs its VM and stack.
pub const MAX_HOST_WORKERS: usize = 256;

/// Workers all hosts of an application may have together (a host without
/// `host.workers` counts one per core), so that the bound on each host
/// cannot be multiplied by declaring more hosts.
pub const MAX_APP_WORKERS: usize = 512;

/// The workers of a host without `host.workers`: one per core, within
/// [`MAX_HOST_WORKERS`].
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_HOST_WORKERS)
}

/// Checks a host's `host.workers`.
pub(crate) fn check_workers(workers: usize) -> Result<(), String> {
    if workers == 0 {
        return Err("must be at least 1".into());
    }
    if workers > MAX_HOST_WORKERS {
        return Err(format!(
            "{workers} is more than {MAX_HOST_WORKERS} (MAX_HOST_WORKERS): each worker is \
             a thread with its own Lua VM, all started with the application"
        ));
    }
    Ok(())
}

impl App {
    /// Refuses more than [`MAX_APP_WORKERS`] workers over all hosts,
    /// naming the host with the most.
    pub(crate) fn check_workers(&self, problems: &mut Vec<ConfigError>) {
        let workers = |h: &HostEntry| h.workers.unwrap_or_else(default_workers);
        let total: usize = self.hosts().map(|(_, h)| workers(h)).sum();
        if total <= MAX_APP_WORKERS {
            return;
        }
        let Some((id, host)) = self.hosts().max_by_key(|(_, h)| workers(h)) else {
            return;
        };
        let own = match host.workers {
            Some(n) => n.to_string(),
            None => format!("{} (unset: one per core)", default_workers()),
        };
        let count = self.hosts().count();
        problems.push(ConfigError::Key {
            file: self.entries[id].file.clone(),
            entry: id.to_owned(),
            key: "host.workers".into(),
            message: format!(
                "{own} here, and {total} over the application's {count} hosts, more than \
                 {MAX_APP_WORKERS} (MAX_APP_WORKERS): each worker is a thread with its own \
                 Lua VM, all started with the application"
            ),
        });
    }
}

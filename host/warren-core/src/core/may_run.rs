//! Which entries a process's code may run as processes: spawn (plain,
//! linked, monitored), `exec` and `upgrade`, from any front-end.
//!
//! An entry runs with its own grants (modules.md: what code holds is its
//! entry's grants ∪ its host's). Without a check, a tenant spawned
//! another namespace's entry on its own host and reached, through it, that
//! entry's volumes: the confused deputy `funcs.call`'s grant closes for
//! functions. So code may run entries of its own namespace and of those
//! nested in it ([`runs_freely`]: `app` runs `app.workers:handler`, as
//! Wippy code does); any other needs the `process.spawn` grant for the
//! entry, from its own entry or its host.
//!
//! Guarantees: checked before the target's existence, so a refusal says
//! nothing about whether another namespace has such an entry; the id
//! quoted in the refusal is bounded ([`quoted_id`]); a process this core
//! does not run (gone, or not a process) runs nothing.

use super::Core;
use crate::error::{ErrorKind, ProcError, quoted_id};
use crate::frontend::Program;
use crate::grants::{PROCESS_SPAWN, runs_freely};
use crate::pid::Pid;

impl Core {
    /// Whether the code of `me` may run entry `entry` as a process (see
    /// the module doc); `PERMISSION_DENIED` naming the grant if not.
    pub fn may_run(&self, me: Pid, entry: &str) -> Result<(), ProcError> {
        // Borrowed, not cloned: an atomic count up and down per check, two
        // checks per spawn.
        let own = self.procs.get(&me).and_then(|p| p.program.as_deref());
        let allowed = own.is_some_and(|own| {
            runs_freely(&own.id, entry)
                || self.quota_of(me).grants.allows(PROCESS_SPAWN, entry)
                || self.own_grants(own, PROCESS_SPAWN, entry)
        });
        if allowed {
            return Ok(());
        }
        Err(ProcError::new(
            ErrorKind::PermissionDenied,
            format!(
                "{PROCESS_SPAWN} on '{}' is not granted to this entry or its host",
                quoted_id(entry)
            ),
        ))
    }

    /// Records that `me` now runs `entry` (a hot upgrade): its next
    /// spawns are checked against that entry's namespace and grants.
    pub fn upgraded(&mut self, me: Pid, entry: &str) {
        let program = self.program(entry);
        if let Some(p) = self.procs.get_mut(&me)
            && program.is_some()
        {
            p.program = program;
        }
    }

    /// Whether `program`'s own grants (as its front-end reports them, for
    /// the entry as loaded now) allow `action` on `resource`.
    fn own_grants(&self, program: &Program, action: &str, resource: &str) -> bool {
        let current = self.program(&program.id);
        let program = current.as_deref().unwrap_or(program);
        self.shared
            .factories
            .iter()
            .find(|f| f.name() == program.frontend)
            .and_then(|f| f.grants(program))
            .is_some_and(|g| g.allows(action, resource))
    }
}

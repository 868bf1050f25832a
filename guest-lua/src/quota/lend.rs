//! Kernel work done inside a process's resume on another process's
//! behalf: a child's start taken early, while its parent sends to it
//! (`machine/start.rs`, `start_for_send`).
//!
//! Between resumes the VM has no ceiling, because kernel code must never
//! fail part-way; inside a resume the ceiling is the running process's
//! room. [`Accounts::lend`] lifts it for the kernel's work and notes the
//! VM's memory and its count of bytes ever allocated; [`Accounts::repay`]
//! puts the ceiling back, moved by what the work left, and moves the
//! running process's marks by as much.
//!
//! Guarantees: the running process is charged neither the memory the
//! work left nor what it allocated, and its room afterwards is what it
//! was, or what is left of its host's `memory_total` for the run if
//! that is less; the host's count includes what the work left (to within
//! the count's granule, as between resumes); what the work allocates is
//! bounded by the kernel's records of one start and its arguments,
//! whose bytes the spawner's host held until the start.
//! The note is integers only, so a memory error raised in between (only a
//! block the allocator cannot give, with no ceiling) drops nothing; the
//! ceiling then stays lifted until the resume ends, when `leave` sets
//! none as always and the process is charged what it grew.

use mlua::Lua;

use super::Accounts;

/// What [`Accounts::lend`] noted: the VM's memory, its bytes ever
/// allocated, and the running process's ceiling (0: none).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lent {
    used: usize,
    grown: u64,
    ceiling: usize,
}

/// `at` moved by the signed difference `now - then`, saturating.
fn moved(at: usize, now: usize, then: usize) -> usize {
    if now >= then {
        at.saturating_add(now - then)
    } else {
        at.saturating_sub(then - now)
    }
}

impl Accounts {
    /// Before kernel work inside a resume: lifts the VM's ceiling and
    /// notes where it stood (see the module's documentation).
    pub(crate) fn lend(&self, lua: &Lua) -> Lent {
        let ceiling = lua.set_memory_limit(0).unwrap_or(0);
        Lent {
            used: lua.used_memory(),
            grown: self.grown.get(),
            ceiling,
        }
    }

    /// After it: the host's count of the VM brought up to date, the
    /// running process's marks moved by what the work left and allocated,
    /// so its charge and its count of allocations leave the work out, and
    /// its ceiling back, moved by the same, but never past what is left
    /// of the host's `memory_total` for this run.
    ///
    /// The count matters: a start gives back the hold on its arguments
    /// and makes them again in the VM, and until the count followed, the
    /// next spawn found that room free again. A loop of spawns of 1 MB
    /// arguments, each sent to at once, put 1 GB under a 64 MiB
    /// `memory_total` in one resume, and the host's other processes were
    /// ended for memory at the next count.
    pub(crate) fn repay(&mut self, lua: &Lua, lent: Lent) {
        let used = lua.used_memory();
        self.sync(used);
        let grown = self.grown.get().saturating_sub(lent.grown);
        let host =
            used.saturating_add(usize::try_from(self.quota.room_in_run()).unwrap_or(usize::MAX));
        let kept = moved(lent.ceiling, used, lent.used);
        if let Some(run) = self.running.as_mut() {
            run.used_at = moved(run.used_at, used, lent.used);
            run.grown_at = run.grown_at.saturating_add(grown);
            run.host_bound |= lent.ceiling != 0 && host < kept;
        }
        if lent.ceiling != 0 {
            // A zero limit means "none" to mlua: keep at least one byte.
            let _ = lua.set_memory_limit(kept.min(host).max(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::moved;

    #[test]
    fn a_mark_moves_by_the_signed_difference_and_saturates() {
        assert_eq!(moved(100, 150, 120), 130);
        assert_eq!(moved(100, 120, 150), 70);
        assert_eq!(moved(10, 0, 50), 0);
        assert_eq!(moved(usize::MAX - 1, 10, 0), usize::MAX);
    }
}

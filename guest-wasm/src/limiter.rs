//! Memory quotas of a component: its own limit and its host's total.
//!
//! Every growth of a linear memory or table asks [`ProcLimiter`]: past the
//! process's `memory_per_process` (or the entry's `limits.memory`), or past
//! what is left of the host's `memory_total`, the growth traps with
//! [`QuotaExceeded`], which the driver turns into a memory-limit exit
//! reason. Values the host holds for the process (what its own channels
//! buffer, [`ProcLimiter::hold`]) count with its linear memory against
//! both. What a process reserved from the host's total is given back when
//! its store is dropped, however it ended.

use std::sync::Arc;

use warren_core::{ErrorKind, HostQuota, ProcError};
use wasmtime::ResourceLimiter;

/// Most elements a component's table may grow to: tables are host memory
/// (a pointer per element) that no memory limit would otherwise count.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// A growth refused by a quota; the trap that carries it ends the process.
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded: {what}")]
pub struct QuotaExceeded {
    what: String,
}

impl QuotaExceeded {
    /// The exit reason monitors and links see.
    pub(crate) fn reason(&self) -> ProcError {
        ProcError::new(ErrorKind::RateLimited, self.to_string())
    }
}

/// The limiter of one process's store.
pub(crate) struct ProcLimiter {
    quota: Arc<HostQuota>,
    max_memory: usize,
    reserved: u64,
    /// Bytes of linear memory granted so far.
    linear: usize,
    /// Bytes the host holds for the process (see [`ProcLimiter::hold`]).
    held: usize,
}

impl ProcLimiter {
    pub(crate) fn new(quota: Arc<HostQuota>, max_memory: u64) -> Self {
        ProcLimiter {
            quota,
            max_memory: usize::try_from(max_memory).unwrap_or(usize::MAX),
            reserved: 0,
            linear: 0,
            held: 0,
        }
    }

    /// The quota of the process's host.
    pub(crate) fn quota(&self) -> &HostQuota {
        &self.quota
    }

    /// Counts `bytes` the host keeps for the process (a value its own
    /// channel buffers) as its memory: refused, with the limit it would
    /// pass, when its linear memory and what is already held leave no
    /// room under its limit or the host's `memory_total`.
    pub(crate) fn hold(&mut self, bytes: usize) -> Result<(), String> {
        let total = self.linear.saturating_add(self.held).saturating_add(bytes);
        if total > self.max_memory {
            return Err(format!(
                "memory limit exceeded: {bytes} more bytes held for this process's channels would pass its limit of {} bytes (memory_per_process of host '{}')",
                self.max_memory, self.quota.name
            ));
        }
        let more = u64::try_from(bytes).unwrap_or(u64::MAX);
        if !self.quota.reserve_memory(more) {
            return Err(format!(
                "memory limit exceeded: host '{}' has no room for {bytes} more bytes (memory_total {})",
                self.quota.name, self.quota.limits.memory_total
            ));
        }
        self.held += bytes;
        self.reserved += more;
        Ok(())
    }

    /// Gives back `bytes` counted by [`ProcLimiter::hold`].
    pub(crate) fn release(&mut self, bytes: usize) {
        let bytes = bytes.min(self.held);
        self.held -= bytes;
        let back = u64::try_from(bytes).unwrap_or(u64::MAX).min(self.reserved);
        self.reserved -= back;
        self.quota.release_memory(back);
    }
}

impl ResourceLimiter for ProcLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = maximum.map_or(self.max_memory, |m| m.min(self.max_memory));
        if desired.saturating_add(self.held) > limit {
            let held = match self.held {
                0 => String::new(),
                n => format!(", with {n} bytes held for its channels"),
            };
            let what = format!(
                "linear memory of {desired} bytes asked for{held}, over this process's limit of {limit} bytes (memory_per_process of host '{}')",
                self.quota.name
            );
            return Err(wasmtime::Error::new(QuotaExceeded { what }));
        }
        let more = u64::try_from(desired.saturating_sub(current)).unwrap_or(u64::MAX);
        if !self.quota.reserve_memory(more) {
            let what = format!(
                "host '{}' has no room for {more} more bytes (memory_total {})",
                self.quota.name, self.quota.limits.memory_total
            );
            return Err(wasmtime::Error::new(QuotaExceeded { what }));
        }
        self.reserved += more;
        self.linear = self.linear.saturating_add(desired.saturating_sub(current));
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("linear memory could not grow"))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = maximum.map_or(MAX_TABLE_ELEMENTS, |m| m.min(MAX_TABLE_ELEMENTS));
        if desired > limit {
            let what = format!("table of {desired} elements asked for, over {limit}");
            return Err(wasmtime::Error::new(QuotaExceeded { what }));
        }
        Ok(true)
    }
}

impl Drop for ProcLimiter {
    fn drop(&mut self) {
        self.quota.release_memory(self.reserved);
    }
}

//! Memory quotas of a component: its own limit and its host's total.
//!
//! Every growth of a linear memory or table asks [`ProcLimiter`]: past the
//! process's `memory_per_process` (or the entry's `limits.memory`), or past
//! what is left of the host's `memory_total`, the growth traps with
//! [`QuotaExceeded`], which the driver turns into a memory-limit exit
//! reason. What a process reserved from the host's total is given back when
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
}

impl ProcLimiter {
    pub(crate) fn new(quota: Arc<HostQuota>, max_memory: u64) -> Self {
        ProcLimiter {
            quota,
            max_memory: usize::try_from(max_memory).unwrap_or(usize::MAX),
            reserved: 0,
        }
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
        if desired > limit {
            let what = format!(
                "linear memory of {desired} bytes asked for, over this process's limit of {limit} bytes (memory_per_process of host '{}')",
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

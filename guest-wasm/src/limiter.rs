//! Memory quotas of a component: its own limit and its host's total.
//!
//! Every growth of a linear memory or table asks [`ProcLimiter`]; so does
//! every memory and table a component's core instances define when it is
//! instantiated (wasmtime reports their initial sizes as a growth from 0).
//! What one process has is the **sum** of all of it: the bytes of every
//! linear memory of every core instance, every table's elements at
//! [`TABLE_ELEMENT_BYTES`] each, and the values the host holds for it (what
//! its own channels buffer, [`ProcLimiter::hold`]). Past the process's
//! limit (its entry's `limits.memory`, else its host's
//! `memory_per_process`), or past what is left of the host's
//! `memory_total`, the growth traps with [`QuotaExceeded`], which the
//! driver turns into a `RATE_LIMITED` "memory limit exceeded" exit reason
//! (also when the refused size is an initial one, at instantiation). What a
//! process reserved from the host's total is given back when its store is
//! dropped, however it ended.
//!
//! A memory or table of zero size is charged nothing: what it costs the
//! runtime is a slot of the engine's instance pool (address space, not
//! memory), and that is bounded per component at load instead
//! (`MAX_MEMORIES_PER_COMPONENT` and its siblings in `program.rs`), so a
//! process holds at most that many slots whatever its quota. Charging a
//! nominal size per slot would bound slots per host only at an arbitrary
//! exchange rate against real memory.

use std::sync::Arc;

use warren_core::{ErrorKind, HostQuota, ProcError};
use wasmtime::ResourceLimiter;

/// Most elements a component's table may grow to: tables are host memory
/// (a pointer per element) that no memory limit would otherwise count.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Host bytes one table element takes, counted against the process's
/// limit and its host's `memory_total` like linear memory. Wasmtime keeps
/// a `funcref` element as one (possibly tagged) pointer and an
/// `externref` as a 32-bit GC reference; its pooled table slots are sized
/// with the larger of the two (`NOMINAL_MAX_TABLE_ELEM_SIZE`, 8 bytes on
/// 64-bit hosts). Without this, a component of ~4,000 core instances each
/// filling a 20,000-element table held 630 MB of host memory under a
/// 16 MiB limit and a 64 MiB `memory_total`.
pub const TABLE_ELEMENT_BYTES: usize = size_of::<usize>();

/// Host bytes one channel handle (a channel, the inbox or events, a
/// listen, a timer) is counted as, against the process's limit and its
/// host's `memory_total`, for as long as the guest holds it: its slot in
/// the handle table, its `ChannelRes`, and a timer's entry in its worker's
/// heap. Measured at 130–190 bytes a handle; without the charge 2,700
/// components of 9,999 empty channels each held 3.6 GB under a 512 MiB
/// `memory_total`, and 336 of 9,999 timers each held 650 MB under 64 MiB.
pub const HANDLE_BYTES: usize = 192;

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

/// Why [`ProcLimiter::charge`] refused a growth.
enum Refused {
    /// The process would have `total` bytes, over its own limit.
    Limit { total: usize },
    /// Its host's `memory_total` has no room left.
    HostTotal,
}

/// The limiter of one process's store.
pub(crate) struct ProcLimiter {
    quota: Arc<HostQuota>,
    max_memory: usize,
    /// Bytes reserved from the host's `memory_total`, given back on drop.
    reserved: u64,
    /// Bytes of linear memory granted so far, over all its memories.
    linear: usize,
    /// Bytes of table elements granted so far, over all its tables.
    tables: usize,
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
            tables: 0,
            held: 0,
        }
    }

    /// The quota of the process's host.
    pub(crate) fn quota(&self) -> &HostQuota {
        &self.quota
    }

    /// All the process's memory: linear memories, tables and what is held.
    fn used(&self) -> usize {
        self.linear
            .saturating_add(self.tables)
            .saturating_add(self.held)
    }

    /// Reserves `more` bytes of the process's memory: refused when its
    /// linear memories, tables and held values together with them would
    /// pass its limit, or when the host's `memory_total` has no room.
    /// The caller adds them to the kind they are.
    fn charge(&mut self, more: usize) -> Result<(), Refused> {
        let total = self.used().saturating_add(more);
        if total > self.max_memory {
            return Err(Refused::Limit { total });
        }
        let bytes = u64::try_from(more).unwrap_or(u64::MAX);
        if !self.quota.reserve_memory(bytes) {
            return Err(Refused::HostTotal);
        }
        self.reserved = self.reserved.saturating_add(bytes);
        Ok(())
    }

    /// Where the process's limit comes from, for messages.
    fn limit_source(&self) -> String {
        let host_default = usize::try_from(self.quota.limits.memory_per_process).ok();
        if host_default == Some(self.max_memory) {
            format!("memory_per_process of host '{}'", self.quota.name)
        } else {
            "its entry's limits.memory".to_owned()
        }
    }

    /// What the process holds now, for messages.
    fn breakdown(&self) -> String {
        format!(
            "it has {} bytes of linear memory, {} bytes of tables and {} bytes held for its channels",
            self.linear, self.tables, self.held
        )
    }

    /// The message of a refusal to grow by `more` bytes for `what`.
    fn refusal(&self, why: &Refused, what: &str, more: usize) -> String {
        match why {
            Refused::Limit { total } => format!(
                "{what} would bring this process to {total} bytes, over its limit of {} bytes ({}); {}",
                self.max_memory,
                self.limit_source(),
                self.breakdown()
            ),
            Refused::HostTotal => format!(
                "host '{}' has no room for {more} more bytes (memory_total {}) for {what}",
                self.quota.name, self.quota.limits.memory_total
            ),
        }
    }

    /// Counts `bytes` the host keeps for the process (a value its own
    /// channel buffers) as its memory: refused, with the limit it would
    /// pass, when its linear memory, tables and what is already held leave
    /// no room under its limit or the host's `memory_total`.
    pub(crate) fn hold(&mut self, bytes: usize) -> Result<(), String> {
        match self.charge(bytes) {
            Ok(()) => {
                self.held += bytes;
                Ok(())
            }
            Err(why) => {
                let what = format!("{bytes} more bytes held for this process's channels");
                Err(format!(
                    "memory limit exceeded: {}",
                    self.refusal(&why, &what, bytes)
                ))
            }
        }
    }

    /// Counts one more handle ([`HANDLE_BYTES`]) as the process's memory
    /// until [`ProcLimiter::release`] gives it back; refused like a
    /// growth, with a trap that ends the process.
    pub(crate) fn hold_handle(&mut self) -> wasmtime::Result<()> {
        match self.charge(HANDLE_BYTES) {
            Ok(()) => {
                self.held += HANDLE_BYTES;
                Ok(())
            }
            Err(why) => {
                let what = self.refusal(&why, "one more handle", HANDLE_BYTES);
                Err(wasmtime::Error::new(QuotaExceeded { what }))
            }
        }
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
        // Past the memory's own declared maximum, `memory.grow` returns -1
        // (or instantiation fails): the guest's own bound, not a quota.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let more = desired.saturating_sub(current);
        if let Err(why) = self.charge(more) {
            let what = if current == 0 {
                format!("a linear memory of {desired} bytes")
            } else {
                format!("linear memory growing by {more} bytes (from {current} to {desired})")
            };
            let what = self.refusal(&why, &what, more);
            return Err(wasmtime::Error::new(QuotaExceeded { what }));
        }
        self.linear = self.linear.saturating_add(more);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("linear memory could not grow"))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The table's declared maximum (or its pooled slot's capacity):
        // `table.grow` returns -1, as the guest's own bound.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        if desired > MAX_TABLE_ELEMENTS {
            let what = format!("table of {desired} elements asked for, over {MAX_TABLE_ELEMENTS}");
            return Err(wasmtime::Error::new(QuotaExceeded { what }));
        }
        let elements = desired.saturating_sub(current);
        let more = elements.saturating_mul(TABLE_ELEMENT_BYTES);
        if let Err(why) = self.charge(more) {
            let what = if current == 0 {
                format!(
                    "a table of {desired} elements ({more} bytes at {TABLE_ELEMENT_BYTES} per element)"
                )
            } else {
                format!(
                    "a table growing by {elements} elements to {desired} ({more} bytes at {TABLE_ELEMENT_BYTES} per element)"
                )
            };
            let what = self.refusal(&why, &what, more);
            return Err(wasmtime::Error::new(QuotaExceeded { what }));
        }
        self.tables = self.tables.saturating_add(more);
        Ok(true)
    }

    /// A growth the limiter allowed failed after all (the host could not
    /// allocate it): the process ends, and its store gives back what was
    /// counted for it.
    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("table could not grow"))
    }
}

impl Drop for ProcLimiter {
    fn drop(&mut self) {
        self.quota.release_memory(self.reserved);
    }
}

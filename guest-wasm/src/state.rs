//! A WASM process's store data: its WASI context and handles. Its mailbox
//! is the one the worker's `Core` keeps ([`warren_core::Mailbox`]), which
//! host functions reach through a thread-local set while the driver polls,
//! because the store data must be `Send` and the core is not.

use std::cell::RefCell;

use warren_core::{Core, CoreRef, Mailbox, Pid};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtxView, WasiView};

use crate::channel::ChannelRes;
use crate::limiter::HANDLE_BYTES;
use crate::wasi::WasiSlot;

/// The data of one process's `Store`.
pub(crate) struct ProcState {
    pub pid: Pid,
    pub next_timer: u64,
    pub wasi: WasiSlot,
    pub table: ResourceTable,
    pub limits: crate::limiter::ProcLimiter,
}

impl ProcState {
    /// Puts channel handle `chan` in the process's table, counting it as
    /// [`HANDLE_BYTES`] of its memory until its drop gives them back
    /// (refused with a trap past its limit, or past [`MAX_RESOURCES`]).
    ///
    /// [`MAX_RESOURCES`]: crate::MAX_RESOURCES
    pub(crate) fn push_channel(
        &mut self,
        chan: ChannelRes,
    ) -> wasmtime::Result<Resource<ChannelRes>> {
        self.limits.hold_handle()?;
        self.table.push(chan).map_err(|e| {
            self.limits.release(HANDLE_BYTES);
            crate::driver::handle_error(e)
        })
    }
}

impl WasiView for ProcState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.ctx(),
            table: &mut self.table,
        }
    }
}

thread_local! {
    static CORE: RefCell<Option<CoreRef>> = const { RefCell::new(None) };
}

/// Makes `core` reachable from host functions on this thread.
pub(crate) fn install_core(core: CoreRef) {
    CORE.with(|c| *c.borrow_mut() = Some(core));
}

/// Runs `f` with this worker's core. Host functions only run while the
/// driver polls on a worker thread, where the core is installed.
pub(crate) fn with_core<R>(f: impl FnOnce(&mut Core) -> R) -> Option<R> {
    CORE.with(|c| {
        let core = c.borrow().clone()?;
        let mut core = core.try_borrow_mut().ok()?;
        Some(f(&mut core))
    })
}

/// Runs `f` on `pid`'s mailbox (kept by the core; what `f` takes stops
/// counting against the process's `mailbox_limit`).
pub(crate) fn with_mailbox<R>(pid: Pid, f: impl FnOnce(&mut Mailbox) -> R) -> Option<R> {
    with_core(|c| c.with_mailbox(pid, f)).flatten()
}

//! When a Lua VM may run an emergency collection: not again and again
//! while its host is full.
//!
//! An allocation past the VM's ceiling makes Lua collect everything and
//! try once more. When the ceiling is the host's `memory_total` and the
//! heap is live data (tens of thousands of idle processes), that full
//! collection frees nothing and takes as long as the heap is big: 70 ms
//! for 64 MiB on these machines. A process that spawned children in a
//! loop on such a host made every child's start fail on its first
//! allocation, each after one such collection, charged to the child that
//! then ended: its worker was wedged for good, its neighbours never ran
//! again, and Ctrl-C was not answered.
//!
//! The patched Lua (`vendor/lua-src`, `lwarren.h`,
//! `warren_set_emergency_hook`) asks [`on_emergency`] before each such
//! collection and tells it whether the retry then fitted. A collection
//! that freed too little (futile) while the running process was held by
//! its host's room is remembered per VM; until the VM has allocated
//! [`SLACK`] bytes more, or [`SHARE`] times that collection's duration
//! has passed, an allocation past a host-bound ceiling fails at once, as
//! it would have after the collection. So futile collections take at
//! most one part in `SHARE + 1` of the worker's time, and a host that
//! frees memory (its processes ending, its garbage made anew) collects
//! again. A process held by its own `memory_per_process` always gets its
//! collection: what it freed is its own.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

use mlua::ffi::lua_State;

/// Bytes a VM allocates after a futile collection before the next one
/// may run at once: garbage made since is what another could free.
pub(crate) const SLACK: usize = 1 << 20;

/// After a futile collection of duration `d`, the next host-bound one
/// waits `SHARE × d` (unless [`SLACK`] bytes were allocated): a host kept
/// full wastes at most one part in `SHARE + 1` of its worker on them.
pub(crate) const SHARE: u32 = 4;

/// VMs per thread whose last futile collection is remembered; past it
/// the oldest is forgotten (which lets one collection more run).
const REMEMBERED: usize = 64;

/// A VM's last futile collection.
struct Futile {
    /// The VM (its global state's address).
    vm: usize,
    /// When the collection ended.
    ended: Instant,
    /// How long it took.
    took: Duration,
    /// The VM's bytes ever allocated when it ended.
    grown: usize,
}

thread_local! {
    /// Whether the process running on this thread is held by its host's
    /// room rather than its own ([`crate::quota`] sets it on each resume).
    static HOST_BOUND: Cell<bool> = const { Cell::new(false) };
    /// When the collection under way began.
    static BEGAN: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The last futile collection of each VM of this thread.
    static FUTILE: RefCell<Vec<Futile>> = const { RefCell::new(Vec::new()) };
}

unsafe extern "C-unwind" {
    fn warren_grown(l: *mut lua_State) -> usize;
}

unsafe extern "C" {
    /// Installs the emergency hook of the patched Lua (`lwarren.h`).
    fn warren_set_emergency_hook(
        f: Option<extern "C" fn(*mut lua_State, *const c_void, c_int) -> c_int>,
    );
}

/// Installs the hook (for every VM of this process; idempotent).
pub(crate) fn install() {
    // SAFETY: `on_emergency` follows the hook's contract (no raise, no Lua
    // call); setting it again stores the same function.
    unsafe { warren_set_emergency_hook(Some(on_emergency)) }
}

/// Says whether the process about to run on this thread is held by its
/// host's room (`true`) or its own, until the next call.
pub(crate) fn set_host_bound(bound: bool) {
    HOST_BOUND.with(|b| b.set(bound));
}

/// The hook: `what` 0 asks (nonzero: collect), 1 says the retry fitted,
/// 2 that it did not. Never raises, allocates no Lua object, calls no Lua.
extern "C" fn on_emergency(l: *mut lua_State, g: *const c_void, what: c_int) -> c_int {
    let vm = g as usize;
    // SAFETY: `l` is the running state the patched Lua passed; the read
    // touches no Lua stack.
    let grown = unsafe { warren_grown(l) };
    let now = Instant::now();
    match what {
        0 => {
            let host_bound = HOST_BOUND.with(Cell::get);
            let may = !host_bound || FUTILE.with(|f| may_collect(&f.borrow(), vm, grown, now));
            if may {
                BEGAN.with(|b| b.set(Some(now)));
            }
            c_int::from(may)
        }
        _ => {
            let took = BEGAN.with(Cell::take).map_or(Duration::ZERO, |t| now - t);
            FUTILE.with(|f| {
                let mut f = f.borrow_mut();
                f.retain(|e| e.vm != vm);
                if what == 2 && HOST_BOUND.with(Cell::get) {
                    if f.len() >= REMEMBERED {
                        f.remove(0);
                    }
                    f.push(Futile {
                        vm,
                        ended: now,
                        took,
                        grown,
                    });
                }
            });
            1
        }
    }
}

/// Whether VM `vm`, having allocated `grown` bytes ever, may collect now.
fn may_collect(futile: &[Futile], vm: usize, grown: usize, now: Instant) -> bool {
    let Some(last) = futile.iter().find(|e| e.vm == vm) else {
        return true;
    };
    grown.saturating_sub(last.grown) >= SLACK
        || now.saturating_duration_since(last.ended) >= last.took.saturating_mul(SHARE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn futile(vm: usize, ended: Instant, took_ms: u64, grown: usize) -> Futile {
        Futile {
            vm,
            ended,
            took: Duration::from_millis(took_ms),
            grown,
        }
    }

    #[test]
    fn a_vm_without_a_futile_collection_always_collects() {
        let now = Instant::now();
        let others = [futile(2, now, 100, 0)];
        assert!(may_collect(&others, 1, 0, now));
    }

    #[test]
    fn after_a_futile_collection_the_next_waits_for_time_or_allocation() {
        let t = Instant::now();
        let last = [futile(1, t, 100, 1000)];
        assert!(!may_collect(&last, 1, 1000, t + Duration::from_millis(10)));
        assert!(!may_collect(
            &last,
            1,
            1000 + SLACK - 1,
            t + Duration::from_millis(399)
        ));
        assert!(may_collect(
            &last,
            1,
            1000 + SLACK,
            t + Duration::from_millis(10)
        ));
        assert!(may_collect(&last, 1, 1000, t + Duration::from_millis(400)));
    }
}

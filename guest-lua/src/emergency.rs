//! When a Lua VM may run an emergency collection: not one after another
//! for a stream of failing processes.
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
//! collection and tells it when it is done. Each is remembered per VM,
//! with the process it ran for. Until the VM has allocated a quarter of
//! the heap that collection left (at least [`SLACK`]) or [`SHARE`] times
//! its duration has passed, another process's allocation past its
//! ceiling fails at once, as it would have after a collection that freed
//! too little. So a stream of processes each failing (children spawned
//! into a full host, or each overshooting its own limit next to a large
//! heap) spends at most one part in
//! `SHARE + 1` of its worker on full collections, or about what the
//! incremental collector would spend on what they allocate: a first fix
//! allowed a collection after each 1 MiB allocated, and children that
//! each allocated 1 MiB before overshooting stalled their host's worker
//! for 24 s. The process a collection ran for is never refused its own
//! (it pays for them: they run inside its resume, charged to it, and the
//! stuck-code guard ends it past 250 ms).

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

use mlua::ffi::lua_State;

/// Least bytes a VM allocates after an emergency collection before another
/// process may collect at once (garbage made since is what it could
/// free); a quarter of the heap that one left, when that is more.
pub(crate) const SLACK: usize = 1 << 20;

/// After an emergency collection of duration `d`, another process's waits
/// `SHARE × d` (unless enough was allocated since): failing processes
/// waste at most one part in `SHARE + 1` of their worker on them.
pub(crate) const SHARE: u32 = 4;

/// VMs per thread whose last emergency collection is remembered; past it
/// the oldest is forgotten (which lets one collection more run).
const REMEMBERED: usize = 64;

/// A VM's last emergency collection.
struct Last {
    /// The VM (its global state's address).
    vm: usize,
    /// When the collection ended.
    ended: Instant,
    /// How long it took.
    took: Duration,
    /// The VM's bytes ever allocated when it ended.
    grown: usize,
    /// The VM's heap when it ended.
    heap: usize,
    /// The process it ran for.
    process: i64,
}

thread_local! {
    /// The process running on this thread, 0 for none ([`crate::quota`]
    /// sets it around each resume).
    static RUNNING: Cell<i64> = const { Cell::new(0) };
    /// When the collection under way began.
    static BEGAN: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The last emergency collection of each VM of this thread.
    static LAST: RefCell<Vec<Last>> = const { RefCell::new(Vec::new()) };
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

/// Says which process runs on this thread (0: none) until the next call.
pub(crate) fn set_running(id: i64) {
    RUNNING.with(|r| r.set(id));
}

/// The VM's heap in bytes, read without allocating.
fn heap_bytes(l: *mut lua_State) -> usize {
    // SAFETY: `l` is the running state; counting allocates nothing, calls
    // no Lua and raises nothing.
    let (kib, bytes) = unsafe {
        (
            mlua::ffi::lua_gc(l, mlua::ffi::LUA_GCCOUNT, 0),
            mlua::ffi::lua_gc(l, mlua::ffi::LUA_GCCOUNTB, 0),
        )
    };
    usize::try_from(kib).unwrap_or(0) * 1024 + usize::try_from(bytes).unwrap_or(0)
}

/// The hook: `what` 0 asks (nonzero: collect), 1 says the retry fitted,
/// 2 that it did not. Never raises, allocates no Lua object, calls no Lua.
extern "C" fn on_emergency(l: *mut lua_State, g: *const c_void, what: c_int) -> c_int {
    let vm = g as usize;
    // SAFETY: `l` is the running state the patched Lua passed.
    let grown = unsafe { crate::quota::grown_of(l) };
    let now = Instant::now();
    match what {
        0 => {
            let process = RUNNING.with(Cell::get);
            let may = LAST.with(|f| may_collect(&f.borrow(), vm, process, grown, now));
            if may {
                BEGAN.with(|b| b.set(Some(now)));
            }
            c_int::from(may)
        }
        _ => {
            let took = BEGAN.with(Cell::take).map_or(Duration::ZERO, |t| now - t);
            LAST.with(|f| {
                let mut f = f.borrow_mut();
                f.retain(|e| e.vm != vm);
                // Every one is remembered, whether its retry fitted or not:
                // a collection that freed a few bytes each time (the last
                // failed process's garbage) was as costly as a futile one,
                // and 36,000 processes each needing one on a 1 GB heap held
                // their worker for minutes.
                if f.len() >= REMEMBERED {
                    f.remove(0);
                }
                f.push(Last {
                    vm,
                    ended: now,
                    took,
                    grown,
                    heap: heap_bytes(l),
                    process: RUNNING.with(Cell::get),
                });
            });
            1
        }
    }
}

/// Whether VM `vm`, having allocated `grown` bytes ever, may collect now
/// for `process`.
fn may_collect(last: &[Last], vm: usize, process: i64, grown: usize, now: Instant) -> bool {
    let Some(last) = last.iter().find(|e| e.vm == vm) else {
        return true;
    };
    last.process == process
        || grown.saturating_sub(last.grown) >= SLACK.max(last.heap / 4)
        || now.saturating_duration_since(last.ended) >= last.took.saturating_mul(SHARE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(vm: usize, ended: Instant, took_ms: u64, grown: usize) -> Last {
        Last {
            vm,
            ended,
            took: Duration::from_millis(took_ms),
            grown,
            heap: 64 << 20,
            process: 7,
        }
    }

    #[test]
    fn a_vm_without_an_emergency_collection_always_collects() {
        let now = Instant::now();
        let others = [last(2, now, 100, 0)];
        assert!(may_collect(&others, 1, 8, 0, now));
    }

    #[test]
    fn after_a_collection_another_process_waits_for_time_or_allocation() {
        let t = Instant::now();
        let last = [last(1, t, 100, 1000)];
        let soon = t + Duration::from_millis(10);
        // A quarter of the 64 MiB heap it left, not just SLACK.
        assert!(!may_collect(&last, 1, 8, 1000, soon));
        assert!(!may_collect(&last, 1, 8, 1000 + SLACK, soon));
        assert!(!may_collect(
            &last,
            1,
            8,
            1000 + (16 << 20) - 1,
            t + Duration::from_millis(399)
        ));
        assert!(may_collect(&last, 1, 8, 1000 + (16 << 20), soon));
        assert!(may_collect(
            &last,
            1,
            8,
            1000,
            t + Duration::from_millis(400)
        ));
        assert!(
            may_collect(&last, 1, 7, 1000, soon),
            "its own process pays for it"
        );
    }
}

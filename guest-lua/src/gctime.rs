//! Time the Lua collector spends on each worker thread, so that it is
//! charged to no process.
//!
//! A Lua VM collects garbage in steps taken from inside allocations, so a
//! step runs while whichever process allocated is resumed. On a large heap
//! one step (a generational major collection, an atomic phase over a
//! million coroutines) can take seconds: charged to that process, it made
//! an innocent process look stuck and be ended, or spend its `cpu_budget`.
//! The patched Lua (`vendor/lua-src`, `lwarren.h`) calls [`on_gc`] around
//! every collector step and full collection; this module sums those
//! intervals per thread, and [`crate::quota`] subtracts what was summed
//! while a process ran from the time it is charged.

use std::cell::Cell;
use std::ffi::c_int;
use std::time::{Duration, Instant};

use mlua::ffi::lua_State;

/// One thread's collector clock.
struct Clock {
    /// Nested collections under way: a finalizer may allocate during a step.
    depth: Cell<u32>,
    /// When the outermost collection under way began.
    began: Cell<Option<Instant>>,
    /// Time spent in finished collections.
    total: Cell<Duration>,
}

thread_local! {
    static CLOCK: Clock = const {
        Clock { depth: Cell::new(0), began: Cell::new(None), total: Cell::new(Duration::ZERO) }
    };
}

/// Time this thread's collectors have run so far, a collection under way
/// included.
pub(crate) fn total() -> Duration {
    CLOCK.with(|c| {
        let running = c.began.get().map_or(Duration::ZERO, |t| t.elapsed());
        c.total.get() + running
    })
}

/// The collector's hook: `begin` is 1 before a step or full collection and
/// 0 after it. Never raises, allocates no Lua object, calls no Lua.
pub(crate) extern "C" fn on_gc(_l: *mut lua_State, begin: c_int) {
    CLOCK.with(|c| {
        let depth = c.depth.get();
        if begin != 0 {
            if depth == 0 {
                c.began.set(Some(Instant::now()));
            }
            c.depth.set(depth + 1);
        } else if depth > 0 {
            c.depth.set(depth - 1);
            if depth == 1
                && let Some(t) = c.began.take()
            {
                c.total.set(c.total.get() + t.elapsed());
            }
        }
    });
}

unsafe extern "C" {
    /// Installs the collector hook of the patched Lua (`lwarren.h`).
    fn warren_set_gc_hook(f: Option<extern "C" fn(*mut lua_State, c_int)>);
}

/// Installs the hook (for every VM of this process; idempotent).
pub(crate) fn install() {
    // SAFETY: `on_gc` follows the hook's contract (no raise, no Lua calls);
    // setting it again stores the same function.
    unsafe { warren_set_gc_hook(Some(on_gc)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_collection_is_counted_on_its_thread_only() {
        install();
        let lua = mlua::Lua::new();
        // Garbage enough that a full collection takes measurable time.
        lua.load("local t = {} for i = 1, 200000 do t[i] = { i } end")
            .exec()
            .expect("the chunk runs");
        let before = total();
        lua.gc_collect().expect("collects");
        let after = total();
        assert!(after > before, "a full collection was not timed");
        let other = std::thread::spawn(total).join().expect("thread ends");
        assert_eq!(other, Duration::ZERO, "another thread was charged");
    }
}

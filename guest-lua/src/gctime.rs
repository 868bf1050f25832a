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
//! while a process ran from the time it is charged. An emergency
//! collection (an allocation past the ceiling the running process was
//! given) calls no hook: a process that keeps itself at its ceiling pays
//! for the full collections it forces.
//!
//! The same goes for growing the kernel's own big tables (the channel
//! states, the run queue, the process maps): each holds an entry per
//! process or object of the whole VM and grows inside whichever process
//! adds the entry that does not fit. With a million processes one such
//! resize took 270–411 ms of fresh memory's page faults, and the
//! stuck-code guard ended the process that opened its inbox. The patched
//! Lua calls [`on_resize`] around every resize to 65,536 slots or more;
//! the kernel names its tables once ([`KernelTables`]), and only theirs
//! are counted here: a process's own big tables stay its own time.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

use rustc_hash::FxHashSet;

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
    /// When the kernel table being resized on this thread began to grow.
    static RESIZE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The kernel tables of this thread's VMs, by address.
    static KERNEL: RefCell<FxHashSet<usize>> = RefCell::new(FxHashSet::default());
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

/// The resize hook: `begin` is 1 before a big table grows and 0 after; a
/// kernel table's growth is added to the collector's time. An error inside
/// the resize (out of memory) skips the end, and that growth is charged.
/// Never raises, allocates no Lua object, calls no Lua.
pub(crate) extern "C" fn on_resize(_l: *mut lua_State, t: *const c_void, begin: c_int) {
    if begin != 0 {
        let kernel = KERNEL.with(|k| k.try_borrow().is_ok_and(|k| k.contains(&(t as usize))));
        RESIZE.set(kernel.then(Instant::now));
    } else if let Some(began) = RESIZE.take() {
        CLOCK.with(|c| c.total.set(c.total.get() + began.elapsed()));
    }
}

/// The kernel tables of one VM, whose growth [`on_resize`] counts while
/// this value lives (drop it with the VM).
#[derive(Debug, Default)]
pub(crate) struct KernelTables(Vec<usize>);

impl KernelTables {
    /// Counts the growth of the table at `t` (from `Table::to_pointer`).
    pub(crate) fn add(&mut self, t: *const c_void) {
        let t = t as usize;
        KERNEL.with(|k| k.borrow_mut().insert(t));
        self.0.push(t);
    }
}

impl Drop for KernelTables {
    fn drop(&mut self) {
        KERNEL.with(|k| {
            let mut k = k.borrow_mut();
            for t in &self.0 {
                k.remove(t);
            }
        });
    }
}

unsafe extern "C" {
    /// Installs the collector hook of the patched Lua (`lwarren.h`).
    fn warren_set_gc_hook(f: Option<extern "C" fn(*mut lua_State, c_int)>);
    /// Installs the resize hook of the patched Lua (`lwarren.h`).
    fn warren_set_resize_hook(f: Option<extern "C" fn(*mut lua_State, *const c_void, c_int)>);
}

/// Installs the hooks (for every VM of this process; idempotent).
pub(crate) fn install() {
    // SAFETY: `on_gc` and `on_resize` follow the hooks' contract (no raise,
    // no Lua calls); setting them again stores the same functions.
    unsafe {
        warren_set_gc_hook(Some(on_gc));
        warren_set_resize_hook(Some(on_resize));
    }
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

    /// Fills `t` with `n` string keys in the VM (a hash part of about `n`).
    fn fill(lua: &mlua::Lua, t: &mlua::Table, n: u32) {
        let f: mlua::Function = lua
            .load("return function(t, n) for i = 1, n do t['k' .. i] = i end end")
            .eval()
            .expect("compiles");
        f.call::<()>((t, n)).expect("fills");
    }

    #[test]
    fn only_a_kernel_tables_big_growth_is_counted() {
        // On a thread of its own: the clock is per thread.
        std::thread::spawn(|| {
            install();
            let lua = mlua::Lua::new();
            lua.gc_stop(); // only resizes move the clock
            let (user, kernel) = (
                lua.create_table().expect("t"),
                lua.create_table().expect("t"),
            );
            let mut tables = KernelTables::default();
            tables.add(kernel.to_pointer());
            let before = total();
            fill(&lua, &user, 200_000);
            assert_eq!(
                total(),
                before,
                "a process's own table was not its own time"
            );
            fill(&lua, &kernel, 1_000);
            assert_eq!(total(), before, "a small kernel table was counted");
            fill(&lua, &kernel, 200_000);
            let counted = total();
            assert!(
                counted > before,
                "a big kernel table's growth was not counted"
            );
            drop(tables);
            let other = lua.create_table().expect("t");
            fill(&lua, &other, 200_000);
            assert_eq!(
                total(),
                counted,
                "a table counted after its VM's list was dropped"
            );
        })
        .join()
        .expect("the test thread ends");
    }
}

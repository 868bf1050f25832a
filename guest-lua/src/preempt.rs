//! Preemption of Lua processes that run without blocking.
//!
//! Every [`HOOK_INSTRUCTIONS`] VM instructions a count hook checks how long
//! the worker has gone without a preemption. Past the slice, it yields the
//! running process coroutine with no values and records which coroutine it
//! yielded, so that the kernel (`H.preempted`) can tell this yield from a
//! user's own `coroutine.yield()` and requeue the process behind the others.
//!
//! The hook never yields while kernel code is on the process's stack (it
//! would leave the kernel's tables half-updated while other processes run):
//! it waits for the next hook outside the kernel. The bottom frames of every
//! process coroutine (`proc_main`, `trampoline`) are the only kernel frames
//! allowed below a preemption point.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::{HookTriggers, Lua, Table, Thread, VmState};

/// VM instructions between two checks of the slice: small enough that a
/// loop is caught within about a tenth of a millisecond, large enough that
/// the check costs nothing measurable.
pub const HOOK_INSTRUCTIONS: u32 = 10_000;

/// Default time a Lua process runs without blocking before its neighbours
/// on the worker get a turn: an infinite loop delays them by at most this.
pub const DEFAULT_CPU_SLICE: Duration = Duration::from_millis(5);

/// The kernel chunk's name, as given to `Lua::load`.
pub(crate) const KERNEL_CHUNK: &str = "=warren-kernel";

/// Lines on which the kernel defines the bottom frames of process
/// coroutines, found in its source.
fn bottom_lines(kernel: &str) -> Vec<usize> {
    kernel
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            l.starts_with("local function proc_main(")
                || l.starts_with("local function trampoline(")
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// Whether yielding the running coroutine leaves no kernel code suspended
/// mid-way: every frame up to the coroutine's bottom is user code.
fn safe_point(lua: &Lua, bottoms: &[usize]) -> bool {
    for level in 0.. {
        let frame = lua.inspect_stack(level, |d| {
            let source = d.source();
            if source.source.as_deref() != Some(KERNEL_CHUNK) {
                return None;
            }
            Some(source.line_defined.is_some_and(|l| bottoms.contains(&l)))
        });
        match frame {
            None => return true,
            Some(None) => {}
            Some(Some(bottom)) => return bottom,
        }
    }
    true
}

/// Installs the hook on `lua` and `H.preempted(co)` on the kernel's host
/// table `h`.
pub(crate) fn install(lua: &Lua, h: &Table, kernel: &str, slice: Duration) -> mlua::Result<()> {
    let bottoms = bottom_lines(kernel);
    let yielded: Rc<Cell<usize>> = Rc::new(Cell::new(0));
    let since = Cell::new(Instant::now());
    let hook_yielded = yielded.clone();
    let triggers = HookTriggers::new().every_nth_instruction(HOOK_INSTRUCTIONS);
    lua.set_global_hook(triggers, move |lua, _| {
        let now = Instant::now();
        if now.duration_since(since.get()) < slice || !safe_point(lua, &bottoms) {
            return Ok(VmState::Continue);
        }
        since.set(now);
        hook_yielded.set(lua.current_thread().to_pointer() as usize);
        Ok(VmState::Yield)
    })?;
    let preempted = lua.create_function(move |_, co: Thread| {
        let was = yielded.get() == co.to_pointer() as usize;
        if was {
            yielded.set(0);
        }
        Ok(was)
    })?;
    h.set("preempted", preempted)
}

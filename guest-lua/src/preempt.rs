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
//! process coroutine (`proc_main`, `trampoline`) and the sandbox's `pcall`
//! and `xpcall` (which hold no kernel state) are the only kernel frames
//! allowed below a preemption point.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::{HookTriggers, Lua, Table, Thread, VmState};

use crate::quota::Accounts;

/// VM instructions between two checks of the slice: small enough that a
/// loop is caught within about a tenth of a millisecond, large enough that
/// the check costs nothing measurable.
pub const HOOK_INSTRUCTIONS: u32 = 10_000;

/// The kernel chunk's name, as given to `Lua::load`.
pub(crate) const KERNEL_CHUNK: &str = "=warren-kernel";

/// Lines on which the kernel defines the functions that start with one of
/// `prefixes`, found in its source.
fn lines_of(kernel: &str, prefixes: &[&str]) -> Vec<usize> {
    kernel
        .lines()
        .enumerate()
        .filter(|(_, l)| prefixes.iter().any(|p| l.starts_with(p)))
        .map(|(i, _)| i + 1)
        .collect()
}

/// Kernel frames a preemption may happen above.
struct Allowed {
    /// The bottom frames of process coroutines.
    bottoms: Vec<usize>,
    /// Frames that hold no kernel state (the sandbox's protected calls).
    transparent: Vec<usize>,
}

impl Allowed {
    fn new(kernel: &str) -> Self {
        Allowed {
            bottoms: lines_of(
                kernel,
                &["local function proc_main(", "local function trampoline("],
            ),
            transparent: lines_of(
                kernel,
                &["local function safe_pcall(", "local function safe_xpcall("],
            ),
        }
    }
}

/// Frames looked at from the top of the stack: looking at frame `n` costs
/// `n` steps, so a deep recursion would make every check quadratic. Kernel
/// functions mutate shared state only near the top of a stack (they call
/// user code, through metamethods, before they change anything), so a
/// stack of user frames this deep is treated as user code.
const MAX_FRAMES_CHECKED: usize = 64;

/// Whether yielding the running coroutine leaves no kernel code suspended
/// mid-way: every frame up to the coroutine's bottom is user code.
fn safe_point(lua: &Lua, allowed: &Allowed) -> bool {
    enum Frame {
        User,
        Bottom,
        Kernel,
    }
    for level in 0..MAX_FRAMES_CHECKED {
        let frame = lua.inspect_stack(level, |d| {
            let source = d.source();
            if source.source.as_deref() != Some(KERNEL_CHUNK) {
                return Frame::User;
            }
            match source.line_defined {
                Some(l) if allowed.bottoms.contains(&l) => Frame::Bottom,
                Some(l) if allowed.transparent.contains(&l) => Frame::User,
                _ => Frame::Kernel,
            }
        });
        match frame {
            None => return true,
            Some(Frame::User) => {}
            Some(Frame::Bottom) => return true,
            Some(Frame::Kernel) => return false,
        }
    }
    true
}

/// How long a process may run past its slice where it cannot be preempted
/// (inside code called from C) before it is ended: at least this, or this
/// many slices.
pub const STUCK_LIMIT: Duration = Duration::from_millis(250);
const STUCK_SLICES: u32 = 50;

/// Installs the hook on `lua` and `H.preempted(co)`, `H.doomed()` on the
/// kernel's host table `h`. The hook also ends a process past its
/// `cpu_budget` or stuck where it cannot yield (see [`Accounts`]).
pub(crate) fn install(
    lua: &Lua,
    h: &Table,
    kernel: &str,
    slice: Duration,
    accounts: Rc<RefCell<Accounts>>,
) -> mlua::Result<()> {
    let allowed = Allowed::new(kernel);
    let stuck_limit = STUCK_LIMIT.max(slice * STUCK_SLICES);
    let yielded: Rc<Cell<usize>> = Rc::new(Cell::new(0));
    let hook_yielded = yielded.clone();
    let hook_accounts = accounts.clone();
    let triggers = HookTriggers::new().every_nth_instruction(HOOK_INSTRUCTIONS);
    lua.set_global_hook(triggers, move |lua, _| {
        let Ok(mut accounts) = hook_accounts.try_borrow_mut() else {
            return Ok(VmState::Continue);
        };
        let Some(ran) = accounts.ran(Instant::now()) else {
            return Ok(VmState::Continue);
        };
        if let Some(reason) = accounts.check_running(ran, stuck_limit) {
            return Err(mlua::Error::runtime(reason));
        }
        if ran < slice || !safe_point(lua, &allowed) {
            return Ok(VmState::Continue);
        }
        // mlua yields only where Lua can; elsewhere this is a no-op and
        // the next hook tries again.
        hook_yielded.set(lua.current_thread().to_pointer() as usize);
        Ok(VmState::Yield)
    })?;
    let preempted = lua.create_function(move |_, co: Thread| {
        let was = yielded.get() == co.to_pointer() as usize;
        yielded.set(0);
        Ok(was)
    })?;
    h.set("preempted", preempted)?;
    let doomed = lua.create_function(move |_, ()| Ok(accounts.borrow().doomed()))?;
    h.set("doomed", doomed)
}

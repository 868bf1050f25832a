//! A timer's fire for a process of this VM, handed over in C by `drain`
//! (`done_next`): the kernel's function for it (`p.timers[id]`: a
//! sleeper's wake-up, a `time.after`, timer or ticker channel's delivery)
//! taken out and called with `p, id`, as the kernel's `handle` does,
//! without the host callback that made the item Lua values (`H.next`)
//! or the kernel's Lua loop around it.
//!
//! Guarantees: the same order of writes as `handle`'s timer branch; a
//! park's end (timer 0) and a process the kernel does not know are left
//! to `handle`; the function called is the kernel's own (only the kernel
//! writes `p.timers`), run where `handle` ran it, outside every process's
//! resume.

use super::fast;
use mlua::ffi::{self, lua_State};

use super::raw::{self, Key};
use super::send::push_proc;

/// Hands the host's next item over when it is a timer's fire (see the
/// module's documentation): true when it was taken.
///
/// # Safety
///
/// Called from `done_next` with `ctx` the VM's `Stepper`, room reserved
/// and nothing kept on the stack.
pub(super) unsafe fn timer_next(l: *mut lua_State, ctx: &crate::step::Stepper) -> bool {
    let index = ctx.index();
    let Some((pid, id)) = ctx
        .core()
        .try_borrow()
        .ok()
        .and_then(|c| c.peek_timer(index))
    else {
        return false;
    };
    let (Ok(pid), Ok(id)) = (i64::try_from(pid.as_u64()), i64::try_from(id)) else {
        return false;
    };
    if id == 0 {
        return false; // a park's end: `handle` gives the held wake-ups back
    }
    // SAFETY: see above; raw reads and writes of the kernel's records, and
    // a call of the kernel's own function for the timer.
    unsafe {
        let top = fast::gettop(l);
        let Some(p) = push_proc(l, pid) else {
            return false;
        };
        let taken = ctx
            .core()
            .try_borrow_mut()
            .ok()
            .and_then(|mut c| c.take_timer(index));
        if taken.is_none() {
            raw::settop(l, top);
            return false;
        }
        if raw::get(l, p, Key::Timers) == ffi::LUA_TTABLE {
            let timers = fast::gettop(l);
            if fast::rawgeti(l, timers, id) == ffi::LUA_TFUNCTION {
                fast::pushnil(l);
                ffi::lua_rawseti(l, timers, id);
                fast::pushvalue(l, p);
                fast::pushinteger(l, id);
                ffi::lua_call(l, 2, 0);
            }
        }
        raw::settop(l, top);
        true
    }
}

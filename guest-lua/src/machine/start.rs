//! The start of a process handed from the host to the kernel's `start`
//! without `H.next`: the usual spawn (no context values, at most
//! [`START_INLINE_ARGS`] arguments) of an entry this VM has compiled
//! before. mlua's callback frame and the item's conversion to a list of
//! Lua values (a new string for the item's kind, a table of results) were
//! about a tenth of a spawn's instructions (`scripts/instructions spawnq`).
//!
//! `done_next()` (see [`super::done`]) tries this when the host's next
//! item is not a host call's value. Anything else (a context, more
//! arguments, an entry not compiled yet, or compiled for another version
//! of its program) stays for `handle(H.next())`, which compiles it.
//!
//! Guarantees: what `H.next` and `handle` do for such an item, in the same
//! order: the arguments are converted in protected calls (error objects
//! revived with the kernel's metatable), one that cannot be (out of
//! memory) ends the process as `H.next` ends it; the process's account is
//! opened; then the kernel's `start(id, pid, entry, nil, ...)` runs, which
//! may raise a memory error as it would under `handle`, with no Rust value
//! that has a destructor alive. The entry table is found by its program's
//! pointer in the host's `H.entries`, whose keys are the programs the host
//! keeps (see `Entries::by_program` in host.rs), so a key never names
//! another program.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

use super::done::undeliverable;
use super::raw::{self, Late};
use super::send::late;

/// The most arguments a start handed over here has (a process may be
/// started with many more, up to its message limit; those take `H.next`,
/// which needs no stack sized from the item).
pub(super) const START_INLINE_ARGS: usize = 16;

/// Starts the host's next item's process when it is such a start (see the
/// module doc) and returns true; false, with the stack as it was, when it
/// is not.
///
/// # Safety
///
/// Called from a machine C function with `ctx` the VM's `Stepper` and
/// room reserved ([`raw::reserve`]).
pub(super) unsafe fn start_next(l: *mut lua_State, ctx: &crate::step::Stepper) -> bool {
    let index = ctx.index();
    let peeked = ctx.core().try_borrow().ok().and_then(|core| {
        let (pid, program, nargs) = core.peek_start(index)?;
        let key = std::sync::Arc::as_ptr(program).cast::<std::ffi::c_void>();
        (nargs <= START_INLINE_ARGS).then_some((pid, key, nargs))
    });
    let Some((pid, key, nargs)) = peeked else {
        return false;
    };
    let Ok(id) = i64::try_from(pid.as_u64()) else {
        return false;
    };
    let nargs = c_int::try_from(nargs).unwrap_or(0);
    // SAFETY: see above; until the item is taken the Rust values alive
    // across calls that may raise are integers, a pointer used only as a
    // key and the pid's text (a plain array); the arguments are alive only
    // across their protected conversions.
    unsafe {
        let top = ffi::lua_gettop(l);
        let entries = late(l, Late::Entries); // top + 1
        if ffi::lua_rawgetp(l, entries, key) != ffi::LUA_TTABLE {
            raw::settop(l, top);
            return false;
        }
        // The error metatable, `start`, id, pid, entry, no context and
        // the arguments, with room for a conversion's own three.
        ffi::luaL_checkstack(l, 9 + nargs, std::ptr::null());
        let mt = late(l, Late::ErrorMt); // top + 3
        late(l, Late::Start); // top + 4
        ffi::lua_pushinteger(l, id); // top + 5
        let text = pid.text();
        let text = text.as_str();
        ffi::lua_pushlstring(l, text.as_ptr().cast(), text.len()); // top + 6
        ffi::lua_pushvalue(l, top + 2); // top + 7: the entry
        ffi::lua_pushnil(l); // top + 8: no context
        let taken = ctx
            .core()
            .try_borrow_mut()
            .ok()
            .and_then(|mut c| c.take_start(index));
        let Some((pid, args)) = taken else {
            raw::settop(l, top);
            return false;
        };
        let built = args
            .iter()
            .all(|arg| crate::convert::push_protected(l, arg, mt));
        let pushed = c_int::try_from(args.len()).unwrap_or(c_int::MAX);
        drop(args);
        if !built {
            undeliverable(ctx, pid);
            raw::settop(l, top);
            return true;
        }
        ctx.open_account(id);
        ffi::lua_call(l, 4 + pushed, 0);
        raw::settop(l, top);
        true
    }
}

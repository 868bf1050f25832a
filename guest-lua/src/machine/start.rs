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
//! opened; then what the kernel's `start(id, pid, entry, nil, ...)` does is
//! done here ([`start_here`]: the same tables, fields and order, without
//! its Lua frame and five calls back into C; the kernel's own `start` runs
//! instead until `bind_start` has), which may raise a memory error as it
//! would under `handle`, with no Rust value that has a destructor alive. The entry table is found by its program's
//! pointer in the host's `H.entries`, whose keys are the programs the host
//! keeps (see `Entries::by_program` in host.rs), so a key never names
//! another program.

use std::ffi::c_int;

use super::fast;
use mlua::ffi::{self, lua_State};

use super::done::undeliverable;
use super::raw::{self, Key, Late};
use super::runq;
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
        let top = fast::gettop(l);
        let entries = late(l, Late::Entries); // top + 1
        if ffi::lua_rawgetp(l, entries, key) != ffi::LUA_TTABLE {
            raw::settop(l, top);
            return false;
        }
        // The error metatable, `start`, id, pid, entry, no context and
        // the arguments, with room for a conversion's own three.
        crate::machine::raw::room(l, 9 + nargs);
        let mt = late(l, Late::ErrorMt); // top + 3
        late(l, Late::Start); // top + 4
        fast::pushinteger(l, id); // top + 5
        let text = pid.text();
        let text = text.as_bytes();
        ffi::lua_pushlstring(l, text.as_ptr().cast(), text.len()); // top + 6
        fast::pushvalue(l, top + 2); // top + 7: the entry
        fast::pushnil(l); // top + 8: no context
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
        if bound(l) {
            start_here(l, top + 5, pushed);
        } else {
            ffi::lua_call(l, 4 + pushed, 0);
        }
        raw::settop(l, top);
        true
    }
}

/// A send's start taken early: when the host's next item for this VM is
/// the start of the process whose pid is the string at `dest` (a child
/// spawned here that has not started yet), starts it now, as the next
/// `drain()` would, and returns true; the send then goes straight to
/// its inbox. Sent through the host instead, each such message cost
/// about 2,000 instructions more; a fan-out's driver, spawning 10,000
/// children and sending to each, sent a fifth to a quarter of its
/// messages that way.
///
/// Only the item the drain would take next is taken, so processes start
/// in the order they would have, each before any item queued for it
/// later. The start is kernel work inside the sender's resume: the
/// ceiling is lifted for it and the sender is not charged for it
/// ([`crate::step::Stepper::lend`]).
///
/// # Safety
///
/// Called from a machine C function with `ctx` the VM's `Stepper`, room
/// reserved ([`raw::reserve`]) and `dest` a string on its stack.
pub(super) unsafe fn start_for_send(
    l: *mut lua_State,
    ctx: &crate::step::Stepper,
    dest: c_int,
) -> bool {
    let index = ctx.index();
    // SAFETY: the string at `dest` is read while it is on the stack; the
    // start is `start_next`'s, under its contract; nothing alive across
    // it has a destructor (`Lent` is integers).
    unsafe {
        let dest = raw::bytes_at(l, dest).unwrap_or_default();
        let next = ctx.core().try_borrow().ok().is_some_and(|core| {
            core.peek_start(index)
                .is_some_and(|(pid, ..)| pid.text().as_bytes() == dest)
        });
        if !next {
            return false;
        }
        let lua = ctx.lua(l);
        let Some(lent) = ctx.lend(lua) else {
            return false;
        };
        let started = start_next(l, ctx);
        ctx.repay(lua, lent);
        started
    }
}

/// `bind_start(ENV_MT, proc_main, value_of)`: what [`start_here`] (and
/// `payload:data()`, `super::msg::data`) need of what the kernel makes
/// last.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
pub(super) unsafe extern "C-unwind" fn bind_start(l: *mut lua_State) -> c_int {
    // SAFETY: a table and a function, checked, into their slots.
    unsafe {
        raw::args(l, 3, 1, "bind_start");
        for i in [2, 3] {
            if fast::type_of(l, i) != ffi::LUA_TFUNCTION {
                ffi::luaL_argerror(l, i, c"wrong type".as_ptr());
            }
        }
        fast::pushvalue(l, 1);
        ffi::lua_rawseti(l, raw::uv(raw::LATE), Late::EnvMt as i64);
        fast::pushvalue(l, 2);
        ffi::lua_rawseti(l, raw::uv(raw::LATE), Late::ProcMain as i64);
        fast::pushvalue(l, 3);
        ffi::lua_rawseti(l, raw::uv(raw::LATE), Late::PayloadValue as i64);
        templates(l);
        0
    }
}

/// Makes the templates the machine clones (`raw::clone_of`): the tables
/// `start_here` and `deliver_event` fill, with their keys inserted in
/// their order and sized as they sized them, each value a placeholder
/// they overwrite (`false`, or the 0 written anyway). Never changed
/// afterwards.
///
/// # Safety
///
/// A machine C function with room for three values.
unsafe fn templates(l: *mut lua_State) {
    // SAFETY: new tables, set raw, into the machine's own table.
    unsafe {
        ffi::lua_createtable(l, 0, 1);
        fast::pushboolean(l, 0);
        ffi::lua_setfield(l, -2, c"_G".as_ptr()); // no metatable: raw
        ffi::lua_rawseti(l, raw::uv(raw::LATE), Late::EnvTpl as i64);
        template(l, Late::ProcTpl, 7, &[Key::Id, Key::Pid, Key::Env]);
        let p = fast::gettop(l);
        for key in [Key::Live, Key::Nready, Key::Ext] {
            raw::set_int(l, p, key, 0);
        }
        raw::pop(l, 1);
        template(l, Late::CrTpl, 3, &[Key::Th, Key::P, Key::Entry]);
        raw::pop(l, 1);
        let event = [Key::Kind, Key::From, Key::Result, Key::At];
        template(l, Late::EventTpl, 4, &event);
        raw::pop(l, 1);
        for (which, key) in [(Late::ValueTpl, Key::Value), (Late::ErrorTpl, Key::Error)] {
            template(l, which, 1, &[key]);
            raw::pop(l, 1);
        }
        template(l, Late::TimeTpl, 1, &[]);
        raw::set_int(l, fast::gettop(l), Key::Ns, 0);
        raw::pop(l, 1);
    }
}

/// Makes template `which`: a table with room for `fields`, `false` at
/// each of `keys` in order; stored, and left on the stack.
///
/// # Safety
///
/// As [`templates`].
unsafe fn template(l: *mut lua_State, which: Late, fields: c_int, keys: &[Key]) {
    // SAFETY: see above.
    unsafe {
        ffi::lua_createtable(l, 0, fields);
        let t = fast::gettop(l);
        for &key in keys {
            fast::pushboolean(l, 0);
            raw::set(l, t, key);
        }
        fast::pushvalue(l, t);
        ffi::lua_rawseti(l, raw::uv(raw::LATE), which as i64);
    }
}

/// Whether `bind_start` has run.
///
/// # Safety
///
/// A machine C function with room for one value.
unsafe fn bound(l: *mut lua_State) -> bool {
    // SAFETY: a raw read of the machine's own table.
    unsafe {
        let ok = fast::rawgeti(l, raw::uv(raw::LATE), Late::ProcMain as i64) == ffi::LUA_TFUNCTION;
        raw::pop(l, 1);
        ok
    }
}

/// The kernel's `start(id, pid, entry, nil, ...)` for the values from
/// `base` on and the `nargs` arguments after them (at most
/// [`START_INLINE_ARGS`]): the process's globals, its record (in `procs`
/// and `bypid`), its main coroutine's record with the arguments primed
/// on the new thread's stack, and its wake-up. The same tables, fields and
/// order as the Lua; it may raise a memory error where the Lua would.
///
/// # Safety
///
/// As [`start_next`], the values at `base..` and nothing above them.
unsafe fn start_here(l: *mut lua_State, base: c_int, nargs: c_int) {
    let (id, pid, entry) = (base, base + 1, base + 2);
    // SAFETY: see above; every table is new, its fields set raw.
    unsafe {
        crate::machine::raw::room(l, 8 + nargs);
        // env = setmetatable({ _G = env }, ENV_MT)
        let env = raw::clone_of(l, Late::EnvTpl, 1);
        fast::pushvalue(l, env);
        ffi::lua_setfield(l, env, c"_G".as_ptr()); // no metatable yet: raw
        late(l, Late::EnvMt);
        ffi::lua_setmetatable(l, env);
        // p = { id, pid, env, live = 0, nready = 0, ext = 0 } (and main)
        let p = raw::clone_of(l, Late::ProcTpl, 7);
        fast::pushvalue(l, id);
        raw::set(l, p, Key::Id);
        fast::pushvalue(l, pid);
        raw::set(l, p, Key::Pid);
        fast::pushvalue(l, env);
        raw::set(l, p, Key::Env);
        for key in [Key::Live, Key::Nready, Key::Ext] {
            raw::set_int(l, p, key, 0); // as in the template, and in a fallback table
        }
        let procs = late(l, Late::Procs);
        fast::pushvalue(l, p);
        ffi::lua_rawseti(l, procs, fast::tointeger(l, id));
        let bypid = late(l, Late::Bypid);
        fast::pushvalue(l, pid);
        fast::pushvalue(l, p);
        ffi::lua_rawset(l, bypid);
        raw::settop(l, p);
        // cr = { th = kthread(proc_main), p = p, entry = entry }
        late(l, Late::ProcMain);
        let th = warren_newkthread(l);
        let thread = fast::gettop(l);
        let cr = raw::clone_of(l, Late::CrTpl, 3);
        fast::pushvalue(l, thread);
        raw::set(l, cr, Key::Th);
        fast::pushvalue(l, p);
        raw::set(l, cr, Key::P);
        fast::pushvalue(l, entry);
        raw::set(l, cr, Key::Entry);
        raw::set_int(l, p, Key::Live, 1);
        fast::pushvalue(l, cr);
        raw::set(l, p, Key::Main);
        // M.prime(th, p, entry, ...): a fresh thread holds them unmoved.
        fast::pushvalue(l, p);
        fast::pushvalue(l, entry);
        for i in 0..nargs {
            fast::pushvalue(l, base + 4 + i);
        }
        crate::step::prime_onto(l, th, 2 + nargs);
        ffi::lua_pushlightuserdata(l, crate::step::primed_marker());
        runq::wake(l, cr, [cr + 1, 0, 0]);
    }
}

unsafe extern "C-unwind" {
    fn warren_newkthread(l: *mut lua_State) -> *mut lua_State;
}

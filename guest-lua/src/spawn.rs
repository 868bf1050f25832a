//! `H.spawn_plain`: the host function of `process.spawn` (and its linked
//! and monitored forms, and `process.exec`) as a C closure on the raw Lua
//! API, for a spawn with no context whose arguments are all scalars (nil,
//! booleans, numbers, strings): the spawns of almost every program.
//! mlua's callback frame (a registry reference per string argument, the
//! argument list on the heap, the pid string made through the registry)
//! was about 3,000 instructions of each spawn (`scripts/instructions
//! spawn`).
//!
//! Anything else (a table argument, an entry id or host that is not
//! UTF-8, an argument of the wrong type) answers nothing, and the kernel
//! calls `H.spawn`, which handles every case; nothing is done before that
//! answer. Both count the arguments with the same [`Converter`] rules
//! against the same budget and refuse with the same errors.
//!
//! Guarantees: as the I/O module's raw starts ([`crate::io::raw`]):
//! arguments read by type where they lie, no metamethod, no Rust value
//! with a destructor alive across a Lua call that may raise, a panic
//! answered as an `INTERNAL` refusal.

use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mlua::ffi::{self, lua_State};
use warren_core::{CoreRef, ErrorKind, PidText, ProcError, SpawnRequest};

use crate::convert::{Budget, Converter, Scalar};
use crate::host::{convert_failure, pid_of};
use crate::io::raw::{self, Arg, Args};
use crate::step::Stepper;

/// `H.spawn_plain(me, entry, host, link, monitor, ...)`: the child's pid,
/// or `false, kind, message, retryable`, or nothing when the spawn is not
/// a plain one (see the module doc).
///
/// # Safety
///
/// Called by Lua as a closure made by [`crate::io::raw::push`].
pub(crate) unsafe extern "C-unwind" fn spawn_plain(l: *mut lua_State) -> c_int {
    // SAFETY: room for the answer is made (or the error raised) before any
    // Rust value exists; upvalue 1 is the VM's `Stepper`, which outlives
    // every call of the VM; the arguments stay on the stack for the call.
    let result = unsafe {
        ffi::luaL_checkstack(l, 4, std::ptr::null());
        let ctx = &*ffi::lua_touserdata(l, ffi::lua_upvalueindex(1)).cast::<Stepper>();
        let args = Args::new(l, "spawn");
        let n = ffi::lua_gettop(l);
        catch_unwind(AssertUnwindSafe(|| plain(ctx.core(), &args, n))).unwrap_or_else(|_| {
            Some(Err(ProcError::new(
                ErrorKind::Internal,
                "spawn: the host function failed",
            )))
        })
    };
    // SAFETY: as above; at most four values pushed, with room made. The
    // pid's text is a plain array (no destructor).
    unsafe {
        match result {
            None => 0,
            Some(Ok(text)) => {
                let text = text.as_str();
                ffi::lua_pushlstring(l, text.as_ptr().cast(), text.len());
                1
            }
            Some(Err(err)) => raw::refuse(l, err),
        }
    }
}

/// The spawn of the `n` arguments in `args`: `None` when it is not plain.
fn plain(core: &CoreRef, args: &Args, n: c_int) -> Option<Result<PidText, ProcError>> {
    let (Arg::Int(me), Arg::Str(entry), Arg::Str(host), Arg::Bool(link), Arg::Bool(monitor)) = (
        args.get(1),
        args.get(2),
        args.get(3),
        args.get(4),
        args.get(5),
    ) else {
        return None;
    };
    let (entry, host) = (
        std::str::from_utf8(entry).ok()?,
        std::str::from_utf8(host).ok()?,
    );
    if (6..=n).any(|i| scalar(args.get(i)).is_none()) {
        return None;
    }
    Some((|| {
        let budget = core.borrow().spawn_budget(pid_of(me), entry, host)?;
        let mut converter = Converter::new(Budget::message(budget));
        let mut values = Vec::with_capacity(usize::try_from(n - 5).unwrap_or(0));
        for i in 6..=n {
            let v = scalar(args.get(i)).unwrap_or(Scalar::Nil);
            let value = converter
                .convert_scalar(v, "argument")
                .map_err(|e| convert_failure(&e, "argument", budget))?;
            values.push(value);
        }
        let mut req = SpawnRequest::new(entry, host, values);
        req.link = link;
        req.monitor = monitor;
        let pid = core.borrow_mut().spawn(pid_of(me), req)?;
        Ok(pid.text())
    })())
}

/// `arg` as a scalar; `None` for a table or anything else.
fn scalar(arg: Arg<'_>) -> Option<Scalar<'_>> {
    Some(match arg {
        Arg::Nil => Scalar::Nil,
        Arg::Bool(b) => Scalar::Bool(b),
        Arg::Int(i) => Scalar::Int(i),
        Arg::Float(f) => Scalar::Float(f),
        Arg::Str(s) => Scalar::Str(s),
        Arg::Table | Arg::Other => return None,
    })
}

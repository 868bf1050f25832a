//! The process API's two hottest host functions as C closures on the raw
//! Lua API, for their usual calls: mlua's callback frame (a registry
//! reference per string argument, the argument list on the heap, results
//! made through the registry) was about 2,000–3,000 instructions of each
//! spawn and each message to another worker or a component
//! (`scripts/instructions spawn xrr`).
//!
//! - `H.spawn_plain` is `process.spawn`'s (and its linked and monitored
//!   forms', and `process.exec`'s) for a spawn with no context whose
//!   arguments are scalars (nil, booleans, numbers, strings) or tables,
//!   the tables walked where they lie as `H.send_plain` walks payloads.
//! - `H.send_plain` is `process.send`'s for a message that leaves the VM,
//!   with any payloads (the machine's `send1` runs it, [`send_at`], for
//!   one payload to a pid of another VM, and takes the local ones): they
//!   are walked where they lie by the same code as `H.send`'s
//!   ([`Converter::convert_at`]).
//!
//! Anything else (a spawn's context, an entry id or
//! host that is not UTF-8, an argument of another type than the kernel
//! passes) answers nothing, and the kernel calls `H.spawn` or `H.send`,
//! which handle every case; nothing is done before that answer. Both
//! paths check in the same order, count with the same [`Converter`] rules
//! against the same budget and refuse with the same errors, except that
//! a message's destination or topic that is not UTF-8 text is refused
//! here as `INVALID` naming it (mlua's conversion error, before).
//!
//! Guarantees: as the I/O module's raw starts ([`crate::io::raw`]):
//! arguments read by type where they lie, no metamethod, no Rust value
//! with a destructor alive across a Lua call that may raise, a panic
//! answered as an `INTERNAL` refusal.

use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::machine::fast;
use mlua::ffi::{self, lua_State};
use warren_core::{CoreRef, ErrorKind, Payload, PidText, ProcError, SpawnRequest};

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
    // SAFETY: upvalue 1 is the VM's `Stepper`, which outlives every call
    // of the VM.
    unsafe {
        let ctx = &*fast::touserdata(l, ffi::lua_upvalueindex(1)).cast::<Stepper>();
        spawn_at(l, ctx)
    }
}

/// `H.spawn_plain`'s work on the arguments `me, entry, host, link,
/// monitor, ...` that fill `l`'s stack, for the VM whose `Stepper` is
/// `ctx`: pushes its answer and returns how many values it pushed. The
/// machine's `spawn1` calls it for every spawn of a process.
///
/// # Safety
///
/// Called from a C function of the VM whose `Stepper` is `ctx`, the
/// arguments being the whole stack.
pub(crate) unsafe fn spawn_at(l: *mut lua_State, ctx: &Stepper) -> c_int {
    // SAFETY: room for the answer is made (or the error raised) before any
    // Rust value exists; the arguments stay on the stack for the call.
    let result = unsafe {
        crate::machine::raw::room(l, 5);
        let n = fast::gettop(l);
        // A table argument is walked where it lies, with the table of
        // field names above the arguments (as `send_at`).
        if (6..=n).any(|i| fast::type_of(l, i) == ffi::LUA_TTABLE) {
            crate::convert::push_keys(l);
        }
        guarded_with(ctx, l, "spawn", |core, args| plain(core, args, l, n))
    };
    // SAFETY: as above; the pid's text is a plain array (no destructor).
    unsafe {
        answer(l, result, |l, text: PidText| {
            let text = text.as_bytes();
            ffi::lua_pushlstring(l, text.as_ptr().cast(), text.len());
        })
    }
}

/// The spawn of the `n` arguments in `args` (on `l`, with the table of
/// field names at `n + 1` when one is a table): `None` when it is not
/// plain.
fn plain(
    core: &CoreRef,
    args: &Args,
    l: *mut lua_State,
    n: c_int,
) -> Option<Result<PidText, ProcError>> {
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
    if (6..=n).any(|i| scalar(args.get(i)).is_none() && !matches!(args.get(i), Arg::Table)) {
        return None;
    }
    Some((|| {
        let budget = core.borrow().spawn_budget(pid_of(me), entry, host)?;
        let mut converter = Converter::new(Budget::message(budget));
        let mut values = Vec::with_capacity(presized(n - 5));
        let many = n > 6;
        for i in 6..=n {
            let value = match scalar(args.get(i)) {
                Some(v) => converter.convert_scalar(v, "argument"),
                None => {
                    // Named as `H.spawn` names it, so its refusals read alike.
                    let name = if many {
                        format!("argument[{}]", i - 5)
                    } else {
                        "argument".to_owned()
                    };
                    // SAFETY: slot `i` holds a table argument and `n + 1`
                    // the table of field names (see `spawn_at`); the walk
                    // raises nothing.
                    unsafe { converter.convert_at(l, i, n + 1, &name) }
                }
            }
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

/// Values a call's list is made with room for, of the `count` its caller
/// passed: a process may pass up to a million arguments (Lua's stack
/// limit), and the list grows only as far as the budget lets it.
const PRESIZED: usize = 8;

/// The room to make for `count` values: at most [`PRESIZED`].
fn presized(count: c_int) -> usize {
    usize::try_from(count).unwrap_or(0).min(PRESIZED)
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

/// `H.send_plain(me, dest, topic, ...)`: `true`, or `false, kind,
/// message, retryable` (`INVALID` for a destination or topic that is not
/// UTF-8 text), or nothing for arguments of other types than the kernel
/// passes.
///
/// # Safety
///
/// Called by Lua as a closure made by [`crate::io::raw::push`].
pub(crate) unsafe extern "C-unwind" fn send_plain(l: *mut lua_State) -> c_int {
    // SAFETY: upvalue 1 is the VM's `Stepper`, which outlives every call
    // of the VM.
    unsafe {
        let ctx = &*fast::touserdata(l, ffi::lua_upvalueindex(1)).cast::<Stepper>();
        send_at(l, ctx)
    }
}

/// `H.send_plain`'s work on the arguments `me, dest, topic, ...` that
/// fill `l`'s stack, for the VM whose `Stepper` is `ctx`: pushes its
/// answer and returns how many values it pushed. The machine's `send1`
/// calls it for a pid of another VM.
///
/// # Safety
///
/// Called from a C function of the VM whose `Stepper` is `ctx`, the
/// arguments being the whole stack.
pub(crate) unsafe fn send_at(l: *mut lua_State, ctx: &Stepper) -> c_int {
    // SAFETY: room for the answer and the table of field names is made,
    // and that table pushed (either may raise), before any Rust value
    // exists; the arguments stay on the stack for the call, below the
    // table of field names, and the walk of the payloads raises nothing.
    let result = unsafe {
        let n = fast::gettop(l);
        crate::machine::raw::room(l, 5);
        crate::convert::push_keys(l);
        guarded_with(ctx, l, "send", |core, args| send(core, args, l, n))
    };
    // SAFETY: as above.
    unsafe { answer(l, result, |l, ()| fast::pushboolean(l, 1)) }
}

/// Runs `f` on the core of the VM whose `Stepper` is `ctx` and the
/// call's arguments with panics caught: a panic is an `INTERNAL` refusal
/// naming `name`.
///
/// # Safety
///
/// Called from a C function of that VM, whose arguments stay on the stack
/// meanwhile.
unsafe fn guarded_with<T>(
    ctx: &Stepper,
    l: *mut lua_State,
    name: &'static str,
    f: impl FnOnce(&CoreRef, &Args) -> Option<Result<T, ProcError>>,
) -> Option<Result<T, ProcError>> {
    // SAFETY: see above; the arguments stay on the stack for the call.
    let args = unsafe { Args::new(l, name) };
    catch_unwind(AssertUnwindSafe(|| f(ctx.core(), &args))).unwrap_or_else(|_| {
        Some(Err(ProcError::new(
            ErrorKind::Internal,
            format!("{name}: the host function failed"),
        )))
    })
}

/// Answers `result`: nothing for `None`, one value pushed by `push` for a
/// success, `false, kind, message, retryable` for a refusal.
///
/// # Safety
///
/// As [`guarded_with`], with room for four values; `push` pushes one value and
/// `T` has no destructor that matters if a push raises.
unsafe fn answer<T>(
    l: *mut lua_State,
    result: Option<Result<T, ProcError>>,
    push: impl FnOnce(*mut lua_State, T),
) -> c_int {
    // SAFETY: see above.
    unsafe {
        match result {
            None => 0,
            Some(Ok(v)) => {
                push(l, v);
                1
            }
            Some(Err(err)) => raw::refuse(l, err),
        }
    }
}

/// The send of the `n` arguments of `args`, the table of field names at
/// `n + 1`: `None` when it is not plain.
fn send(core: &CoreRef, args: &Args, l: *mut lua_State, n: c_int) -> Option<Result<(), ProcError>> {
    let (Arg::Int(me), Arg::Str(dest), Arg::Str(topic)) = (args.get(1), args.get(2), args.get(3))
    else {
        return None;
    };
    let me = pid_of(me);
    Some((|| {
        let text = |bytes, what| {
            std::str::from_utf8(bytes).map_err(|_| {
                ProcError::new(
                    ErrorKind::Invalid,
                    format!("process.send: the {what} must be UTF-8 text"),
                )
            })
        };
        let (dest, topic) = (text(dest, "destination")?, text(topic, "topic")?);
        // Permission first, then a copy bounded by the limit (as `H.send`).
        let to = core.borrow().resolve(me, dest)?;
        core.borrow().check_reach("send", me, to)?;
        let budget = core.borrow().message_budget(me, to);
        let mut converter = Converter::new(Budget::message(budget));
        // A component reads MessagePack: encode straight from the table.
        let packed = core.borrow().reads_packed(to);
        let many = n > 4;
        let mut payloads = Vec::with_capacity(presized(n - 3));
        for i in 4..=n {
            let name;
            let root = if many {
                name = format!("payload[{}]", i - 3);
                name.as_str()
            } else {
                "payload"
            };
            // SAFETY: slot `i` holds an argument and `n + 1` the table of
            // field names (see `send_plain`); the walk raises nothing.
            let payload = unsafe {
                if packed {
                    converter.pack_at(l, i, n + 1, root).map(Payload::Packed)
                } else {
                    converter.convert_at(l, i, n + 1, root).map(Payload::Value)
                }
            }
            .map_err(|e| convert_failure(&e, "payload", budget))?;
            payloads.push(payload);
        }
        core.borrow_mut().send(me, to, topic, payloads)?;
        Ok(())
    })())
}

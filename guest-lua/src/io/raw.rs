//! Host functions that start an operation, as C closures on the raw Lua
//! API: the hottest calls of the I/O modules (a volume call of `fs`, a
//! plain `sql` query or execute, an `http_client` request without options)
//! without mlua's callback frame, its argument conversions (a registry
//! reference per string argument, a heap copy of every text) and its
//! result list: 6 % of the worker's instructions per file call or SQLite
//! point query (`scripts/instructions fs sql`).
//!
//! A raw start reads its arguments where they lie on the stack, runs the
//! module's Rust code with panics caught, and answers as the kernel's
//! `call` expects: `true, op`, or `false, kind, message, retryable`.
//!
//! Guarantees: arguments are read by type and never converted (no
//! metamethod, no number turned into a string on the stack; a wrong type
//! is `INVALID` naming the argument); no Rust value with a destructor is
//! alive across a Lua call that may raise (a refusal's strings are pushed
//! inside `lua_pcall`, whose error, out of memory, is raised again only
//! after the Rust values are gone); a panic in the Rust code is an
//! `INTERNAL` refusal, never an unwind through Lua's C frames.

use std::ffi::{c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::machine::fast;
use mlua::ffi::{self, lua_State};
use mlua::{Function, Lua};
use warren_core::{ErrorKind, ProcError};

use crate::step::Stepper;

/// A value read where it lies, borrowed for as long as it stays there.
#[derive(Clone, Copy)]
pub(crate) enum Arg<'a> {
    /// Nil or no value.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string's bytes.
    Str(&'a [u8]),
    /// A table.
    Table,
    /// Anything else (a function, a userdata, a thread).
    Other,
}

/// The value at stack slot `i` of `l`.
///
/// # Safety
///
/// `l` is a running state and `i` a valid or acceptable index; the bytes
/// of a string are valid while it stays at `i` (Lua does not move them).
unsafe fn arg_at<'a>(l: *mut lua_State, i: c_int) -> Arg<'a> {
    // SAFETY: see above; no call here converts or allocates.
    unsafe {
        match fast::type_of(l, i) {
            ffi::LUA_TBOOLEAN => Arg::Bool(fast::toboolean(l, i) != 0),
            ffi::LUA_TNUMBER if ffi::lua_isinteger(l, i) != 0 => Arg::Int(ffi::lua_tointeger(l, i)),
            ffi::LUA_TNUMBER => Arg::Float(ffi::lua_tonumber(l, i)),
            ffi::LUA_TSTRING => {
                let mut len = 0;
                let p = ffi::lua_tolstring(l, i, &mut len);
                Arg::Str(std::slice::from_raw_parts(p.cast::<u8>(), len))
            }
            ffi::LUA_TTABLE => Arg::Table,
            ffi::LUA_TNIL | ffi::LUA_TNONE => Arg::Nil,
            _ => Arg::Other,
        }
    }
}

/// The arguments of a raw host function, read in place.
pub(crate) struct Args {
    l: *mut lua_State,
    /// The function's name, for errors.
    name: &'static str,
}

impl Args {
    /// The arguments of the raw host function `name` running on `l`.
    ///
    /// # Safety
    ///
    /// `l` is the running state of that call, whose arguments stay on its
    /// stack, unpopped, while the `Args` lives.
    pub(crate) unsafe fn new(l: *mut lua_State, name: &'static str) -> Self {
        Args { l, name }
    }

    /// Argument `i`.
    pub(crate) fn get(&self, i: c_int) -> Arg<'_> {
        // SAFETY: `l` is the running state of the call these arguments
        // belong to; they stay on its stack, unpopped, while `self` lives
        // (the Rust code of a call pops nothing), and Lua's collector does
        // not move a string's bytes.
        unsafe { arg_at(self.l, i) }
    }

    /// Entry `n` of the table at argument `i`, read raw (no metamethod),
    /// given to `read`; `Nil` when argument `i` is not a table.
    pub(crate) fn item<T>(&self, i: c_int, n: i64, read: impl FnOnce(Arg<'_>) -> T) -> T {
        // SAFETY: as in `get`; `start` made room for the pushed entry,
        // `lua_rawgeti` neither allocates nor runs code, and the entry is
        // popped after `read`, the only user of its borrow.
        unsafe {
            if fast::type_of(self.l, i) != ffi::LUA_TTABLE {
                return read(Arg::Nil);
            }
            fast::rawgeti(self.l, i, n);
            let out = read(arg_at(self.l, -1));
            fast::pop(self.l, 1);
            out
        }
    }

    /// The integer at `i`.
    pub(crate) fn int(&self, i: c_int) -> Result<i64, ProcError> {
        match self.get(i) {
            Arg::Int(n) => Ok(n),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    /// The bytes of the string at `i`, nil being `None`.
    pub(crate) fn opt_bytes(&self, i: c_int) -> Result<Option<&[u8]>, ProcError> {
        match self.get(i) {
            Arg::Nil => Ok(None),
            Arg::Str(s) => Ok(Some(s)),
            _ => Err(self.wrong(i, "a string")),
        }
    }

    /// The bytes of the string at `i`.
    pub(crate) fn bytes(&self, i: c_int) -> Result<&[u8], ProcError> {
        self.opt_bytes(i)?.ok_or_else(|| self.wrong(i, "a string"))
    }

    /// The text of the string at `i` (UTF-8).
    pub(crate) fn text(&self, i: c_int) -> Result<&str, ProcError> {
        std::str::from_utf8(self.bytes(i)?).map_err(|_| self.wrong(i, "UTF-8 text"))
    }

    /// `INVALID`: argument `i` is not `want`.
    pub(crate) fn wrong(&self, i: c_int, want: &str) -> ProcError {
        ProcError::new(
            ErrorKind::Invalid,
            format!("{}: argument {i} must be {want}", self.name),
        )
    }
}

/// The body of a raw start named `name`: reads the VM's `Stepper` from
/// upvalue 1, runs `start` on it and the arguments and answers.
///
/// # Safety
///
/// Called from a C closure made by [`push`], with the stack as Lua calls it.
pub(crate) unsafe fn start(
    l: *mut lua_State,
    name: &'static str,
    start: fn(&Stepper, &Args) -> Result<u64, ProcError>,
) -> c_int {
    // SAFETY: room for the answer is made (or the error raised) before any
    // Rust value exists; upvalue 1 is the VM's `Stepper` (see `push`),
    // which outlives every call of the VM; the arguments live on the stack
    // for the call.
    let result = unsafe {
        crate::machine::raw::room(l, 4);
        let ctx = &*fast::touserdata(l, ffi::lua_upvalueindex(1)).cast::<Stepper>();
        let args = Args { l, name };
        catch_unwind(AssertUnwindSafe(|| start(ctx, &args))).unwrap_or_else(|_| {
            Err(ProcError::new(
                ErrorKind::Internal,
                format!("{name}: the host function failed"),
            ))
        })
    };
    // SAFETY: as above; two or four values pushed, with room made.
    unsafe {
        match result {
            Ok(op) => {
                fast::pushboolean(l, 1);
                fast::pushinteger(l, i64::try_from(op).unwrap_or(i64::MAX));
                2
            }
            Err(err) => refuse(l, err),
        }
    }
}

/// Pushes `false, kind, message, retryable` for `err` in a protected call;
/// raises its error (out of memory) once `err` is dropped.
///
/// # Safety
///
/// As [`start`], with room for two values.
pub(crate) unsafe fn refuse(l: *mut lua_State, err: ProcError) -> c_int {
    // SAFETY: `err` outlives the protected call that reads it; the error of
    // a failed call is raised after `err` is dropped.
    unsafe {
        ffi::lua_pushcfunction(l, push_refusal);
        ffi::lua_pushlightuserdata(l, std::ptr::from_ref(&err).cast_mut().cast::<c_void>());
        let rc = ffi::lua_pcall(l, 1, 4, 0);
        drop(err);
        if rc != ffi::LUA_OK {
            ffi::lua_error(l);
        }
        4
    }
}

/// Pushes the four values of the refusal whose `ProcError` is argument 1.
///
/// # Safety
///
/// Called only by [`refuse`], through `lua_pcall`.
unsafe extern "C-unwind" fn push_refusal(l: *mut lua_State) -> c_int {
    // SAFETY: argument 1 points to the `ProcError` `refuse` keeps alive;
    // only references to it are alive across the pushes that may raise.
    unsafe {
        let err = &*fast::touserdata(l, 1).cast::<ProcError>();
        fast::pushboolean(l, 0);
        let kind = err.kind.name();
        ffi::lua_pushlstring(l, kind.as_ptr().cast(), kind.len());
        ffi::lua_pushlstring(l, err.message.as_ptr().cast(), err.message.len());
        fast::pushboolean(l, c_int::from(err.retryable));
        4
    }
}

/// A Lua function for the raw start `f`, bound to the VM's `stepper`.
///
/// # Safety
///
/// `stepper` outlives every call of the function (it is the VM's own).
pub(crate) unsafe fn push(
    lua: &Lua,
    stepper: &Stepper,
    f: ffi::lua_CFunction,
) -> mlua::Result<Function> {
    let raw = std::ptr::from_ref(stepper).cast_mut().cast::<c_void>() as usize;
    // SAFETY: one light userdata and the closure that consumes it, on the
    // stack `exec_raw` hands over, whose result is the closure.
    unsafe {
        lua.exec_raw::<Function>((), |l| {
            ffi::lua_pushlightuserdata(l, raw as *mut c_void);
            ffi::lua_pushcclosure(l, f, 1);
        })
    }
}

#[cfg(test)]
mod tests {
    use mlua::{Lua, Table, Value as LuaValue};

    use super::*;

    /// Reads its arguments the way raw starts do and returns what it saw:
    /// `int(1)`, `bytes(2)`, `bytes(1)` (each "ERR" when refused), the type
    /// of slot 1 afterwards, `item(3, 1)`, `item(3, 2)`, `item(1, 1)`.
    unsafe extern "C-unwind" fn probe(l: *mut lua_State) -> c_int {
        fn show(r: Result<String, ProcError>) -> String {
            r.unwrap_or_else(|e| format!("ERR {}", e.message))
        }
        fn item(v: Arg<'_>) -> String {
            match v {
                Arg::Str(s) => String::from_utf8_lossy(s).into_owned(),
                Arg::Int(n) => n.to_string(),
                Arg::Nil => "nil".into(),
                _ => "other".into(),
            }
        }
        let args = Args { l, name: "probe" };
        let seen = [
            show(args.int(1).map(|n| n.to_string())),
            show(
                args.bytes(2)
                    .map(|b| String::from_utf8_lossy(b).into_owned()),
            ),
            show(
                args.bytes(1)
                    .map(|b| String::from_utf8_lossy(b).into_owned()),
            ),
            // SAFETY: slot 1 exists (the test passes it).
            unsafe { fast::type_of(l, 1) }.to_string(),
            args.item(3, 1, item),
            args.item(3, 2, item),
            args.item(1, 1, item),
        ]
        .join("|");
        // SAFETY: one string pushed; the test's stack has room.
        unsafe { ffi::lua_pushlstring(l, seen.as_ptr().cast(), seen.len()) };
        1
    }

    /// Answers a refusal: `INVALID`, "no <argument 1>", retryable.
    unsafe extern "C-unwind" fn refusing(l: *mut lua_State) -> c_int {
        let args = Args {
            l,
            name: "refusing",
        };
        let what = args.text(1).unwrap_or("?").to_owned();
        let mut err = ProcError::new(ErrorKind::Invalid, format!("no {what}"));
        err.retryable = true;
        // SAFETY: called by Lua with room for the pcall's function and
        // argument and its four results.
        unsafe {
            crate::machine::raw::room(l, 4);
            refuse(l, err)
        }
    }

    #[test]
    fn arguments_are_read_by_type_raw_and_never_converted() {
        let lua = Lua::new();
        // SAFETY: `probe` reads only slots it checks the types of.
        let f = unsafe { lua.create_c_function(probe) }.expect("function");
        let called = lua.create_table().expect("table");
        let spy = lua
            .load("local called = ... return setmetatable({ 'a' }, { __index = function() called.yes = true return 'meta' end })")
            .call::<Table>(called.clone())
            .expect("spy");
        let seen: String = f.call((42, "7", spy)).expect("call");
        assert_eq!(
            seen,
            format!(
                "42|7|ERR probe: argument 1 must be a string|{}|a|nil|nil",
                ffi::LUA_TNUMBER
            )
        );
        assert_eq!(
            called.raw_get::<LuaValue>("yes").expect("get"),
            LuaValue::Nil
        );
        let seen: String = f.call(("42", 7, 1)).expect("call");
        assert!(
            seen.starts_with("ERR probe: argument 1 must be an integer|ERR probe: argument 2 must be a string|42|"),
            "{seen}"
        );
    }

    #[test]
    fn a_refusal_answers_false_kind_message_and_retryable() {
        let lua = Lua::new();
        // SAFETY: `refusing` checks its one argument's type.
        let f = unsafe { lua.create_c_function(refusing) }.expect("function");
        let (ok, kind, message, retryable): (bool, String, String, bool) =
            f.call("volume").expect("call");
        assert!(!ok);
        assert_eq!(
            (kind.as_str(), message.as_str(), retryable),
            ("INVALID", "no volume", true)
        );
    }
}

//! The small data modules of `modules.md` §6: `base64`, `hash`, `uuid` and
//! `crypto`, as Lua tables of host functions.
//!
//! Every function here follows the sandbox's rules (`docs/architecture.md`,
//! "Security model"): it reads its arguments as plain values (no
//! metamethod of a user value ever runs, no table is read at all), checks
//! their type and every guest-supplied length or count before it does any
//! work or allocates, and never sizes an allocation from a guest number
//! that was not checked against a named bound first. Inputs that are Lua
//! strings are already in the caller's memory, so their size bounds the
//! work done on them.
//!
//! A bad argument returns `nil, err` with `err` an `errors` object of kind
//! `Invalid` whose message names the function and the argument; a failure
//! of the OS's randomness returns kind `Internal`. Success returns exactly
//! one value (so `table.insert(t, uuid.v4())` works).

mod base64;
mod crypto;
mod hash;
mod uuid;

use mlua::{FromLuaMulti, Function, Lua, MultiValue, Table, Value};

/// The data modules as Lua tables of functions, by module name: "base64",
/// "hash", "uuid", "crypto".
pub(crate) fn data_modules(lua: &Lua) -> mlua::Result<Vec<(&'static str, Table)>> {
    Ok(vec![
        ("base64", base64::module(lua)?),
        ("hash", hash::module(lua)?),
        ("uuid", uuid::module(lua)?),
        ("crypto", crypto::module(lua)?),
    ])
}

/// Why a call returns `nil, err`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fail {
    /// A wrong argument (type, value or size): kind `Invalid`.
    Invalid(String),
    /// The host could not do it (the OS's randomness failed): kind `Internal`.
    Internal(String),
}

/// What a module function computes: one value, or why there is none.
type Outcome = Result<Value, Fail>;

/// The registry key of the kernel's error metatable.
const ERROR_MT_KEY: &str = "warren.error_mt";

/// An `errors` object as the kernel makes it: raw fields, the kernel's
/// metatable when there is one (unit tests run without a kernel).
fn error_object(lua: &Lua, kind: &str, message: &str) -> mlua::Result<Table> {
    let e = lua.create_table_with_capacity(0, 4)?;
    e.raw_set("_kind", kind)?;
    e.raw_set("_message", message)?;
    e.raw_set("_retryable", false)?;
    e.raw_set("_stack", "")?;
    if let Some(mt) = lua.named_registry_value::<Option<Table>>(ERROR_MT_KEY)? {
        e.set_metatable(Some(mt))?;
    }
    Ok(e)
}

/// The Lua results of an outcome: the value alone, or `nil, err`.
fn results(lua: &Lua, outcome: Outcome) -> mlua::Result<MultiValue> {
    let (kind, message) = match outcome {
        Ok(v) => return Ok(MultiValue::from_vec(vec![v])),
        Err(Fail::Invalid(m)) => ("Invalid", m),
        Err(Fail::Internal(m)) => ("Internal", m),
    };
    let err = error_object(lua, kind, &message)?;
    Ok(MultiValue::from_vec(vec![Value::Nil, Value::Table(err)]))
}

/// A Lua function computing `f(lua, args)`. `A` is a tuple of [`Value`]s:
/// missing arguments are `nil`, extra ones are ignored, and taking them
/// converts nothing (so no metamethod runs).
fn function<A, F>(lua: &Lua, f: F) -> mlua::Result<Function>
where
    A: FromLuaMulti,
    F: Fn(&Lua, A) -> mlua::Result<Outcome> + 'static,
{
    lua.create_function(move |lua, args: A| {
        let outcome = f(lua, args)?;
        crate::preempt::after_host_call();
        results(lua, outcome)
    })
}

/// `Invalid`, with the message `"{func}: {what}"`.
fn invalid(func: &str, what: impl std::fmt::Display) -> Fail {
    Fail::Invalid(format!("{func}: {what}"))
}

/// Longest string a data module takes: hashing, encoding or MAC-ing one
/// runs in a single host call (SHA-512 does about 350 MB/s here), so this
/// keeps a call near 50 ms instead of letting a process's own 64 MiB
/// string hold the worker past the stuck limit.
pub(crate) const MAX_INPUT_BYTES: usize = 16 << 20;

/// The bytes of argument `name` of `func`, which must be a string (a
/// number is not converted: `hash.md5(42)` is `Invalid`, as in Wippy).
fn string_arg(v: &Value, func: &str, name: &str) -> Result<mlua::LuaString, Fail> {
    match v {
        Value::String(s) if s.as_bytes().len() > MAX_INPUT_BYTES => Err(invalid(
            func,
            format_args!(
                "{name} is {} bytes, over the {MAX_INPUT_BYTES}-byte limit",
                s.as_bytes().len()
            ),
        )),
        Value::String(s) => Ok(s.clone()),
        other => Err(invalid(
            func,
            format_args!("{name} must be a string (got {})", lua_type(other)),
        )),
    }
}

/// Argument `name` of `func` as an integer: a Lua integer, or a float with
/// an exact integer value in `i64`'s range (`32.0`), as Lua's own library
/// takes integers. Anything else is `Invalid`.
fn integer_arg(v: &Value, func: &str, name: &str) -> Result<i64, Fail> {
    /// 2^63 as a float: the first float past `i64::MAX`.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    match *v {
        Value::Integer(i) => Ok(i),
        // The range check comes before the cast, so it never saturates.
        Value::Number(f) if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) => Ok(f as i64),
        ref other => Err(invalid(
            func,
            format_args!("{name} must be an integer (got {})", describe(other)),
        )),
    }
}

/// Optional boolean argument `name` of `func`: `nil` is `false`.
fn flag_arg(v: &Value, func: &str, name: &str) -> Result<bool, Fail> {
    match *v {
        Value::Nil => Ok(false),
        Value::Boolean(b) => Ok(b),
        ref other => Err(invalid(
            func,
            format_args!("{name} must be a boolean (got {})", lua_type(other)),
        )),
    }
}

/// The name Lua's `type` gives `v` (mlua calls integers "integer").
fn lua_type(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) | Value::Number(_) => "number",
        other => other.type_name(),
    }
}

/// A value for an error message: numbers as such, anything else by type.
fn describe(v: &Value) -> String {
    match *v {
        Value::Number(f) => format!("{f}"),
        Value::Integer(i) => i.to_string(),
        ref other => lua_type(other).to_owned(),
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Fills `buf` from the OS's randomness; a failure is `Internal`.
fn os_random(buf: &mut [u8], func: &str) -> Result<(), Fail> {
    getrandom::fill(buf)
        .map_err(|e| Fail::Internal(format!("{func}: the OS's randomness failed: {e}")))
}

/// A Lua string value.
fn lua_string(lua: &Lua, bytes: impl AsRef<[u8]>) -> mlua::Result<Value> {
    lua.create_string(bytes).map(Value::String)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare Lua state with the data modules as globals.
    pub(super) fn lua() -> Lua {
        let lua = Lua::new();
        for (name, table) in data_modules(&lua).expect("modules") {
            lua.globals().raw_set(name, table).expect("global");
        }
        lua
    }

    /// Runs a chunk of assertions (a failing `assert` fails the test).
    pub(super) fn check(lua: &Lua, code: &str) {
        if let Err(e) = lua.load(code).exec() {
            panic!("{e}");
        }
    }

    /// Evaluates an expression.
    pub(super) fn eval<T: FromLuaMulti>(lua: &Lua, code: &str) -> T {
        match lua.load(code).eval() {
            Ok(v) => v,
            Err(e) => panic!("{code}: {e}"),
        }
    }

    /// The kind and message of the error `code` returns as `nil, err`.
    pub(super) fn error_of(lua: &Lua, code: &str) -> (String, String) {
        let (v, err): (Value, Value) = eval(lua, code);
        assert!(v.is_nil(), "{code}: expected nil, got {v:?}");
        let Value::Table(err) = err else {
            panic!("{code}: expected an error object, got {err:?}")
        };
        assert!(!err.raw_get::<bool>("_retryable").expect("_retryable"));
        assert_eq!(err.raw_get::<String>("_stack").expect("_stack"), "");
        (
            err.raw_get("_kind").expect("_kind"),
            err.raw_get("_message").expect("_message"),
        )
    }

    /// Asserts `code` returns `nil, err(Invalid)` with `needle` in the message.
    pub(super) fn assert_invalid(lua: &Lua, code: &str, needle: &str) {
        let (kind, message) = error_of(lua, code);
        assert_eq!(kind, "Invalid", "{code}: {message}");
        assert!(
            message.contains(needle),
            "{code}: {message:?} lacks {needle:?}"
        );
    }

    #[test]
    fn data_modules_are_the_four_modules() {
        let lua = Lua::new();
        let names: Vec<_> = data_modules(&lua)
            .expect("modules")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["base64", "hash", "uuid", "crypto"]);
    }

    #[test]
    fn errors_use_the_kernel_metatable_when_there_is_one() {
        let lua = lua();
        let mt = lua.create_table().expect("mt");
        mt.raw_set("marker", true).expect("set");
        lua.set_named_registry_value(ERROR_MT_KEY, &mt)
            .expect("registry");
        check(
            &lua,
            r#"local v, err = base64.decode("!")
            assert(v == nil and getmetatable(err).marker == true)
            assert(rawget(err, "_kind") == "Invalid" and rawget(err, "_retryable") == false)"#,
        );
    }

    #[test]
    fn success_returns_one_value_failure_two() {
        let lua = lua();
        check(
            &lua,
            r##"assert(select("#", base64.encode("x")) == 1)
            assert(select("#", uuid.v4()) == 1)
            assert(select("#", base64.decode("!")) == 2)
            local t = {}
            table.insert(t, hash.md5(""))
            assert(#t == 1)"##,
        );
    }

    #[test]
    fn integer_arguments() {
        let i = |v: Value| integer_arg(&v, "f", "n");
        assert_eq!(i(Value::Integer(7)), Ok(7));
        assert_eq!(i(Value::Number(32.0)), Ok(32));
        assert_eq!(i(Value::Number(-9.223_372_036_854_776e18)), Ok(i64::MIN));
        for bad in [1.5, f64::NAN, f64::INFINITY, 9.223_372_036_854_776e18] {
            assert!(i(Value::Number(bad)).is_err(), "{bad}");
        }
        assert!(i(Value::Nil).is_err());
        assert!(i(Value::Boolean(true)).is_err());
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }
}

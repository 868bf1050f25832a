//! A host function's answer to the kernel, pushed straight onto the Lua
//! stack: what it made on success, or `false, kind, message, retryable`
//! on failure. mlua builds a `MultiValue` (a heap-allocated deque) for an
//! answer returned as one; this skips that allocation on every host call.

use std::ffi::c_int;

use mlua::state::RawLua;
use mlua::{IntoLuaMulti, Lua, MultiValue};
use warren_core::ProcError;

/// See the module doc.
pub(crate) enum Outcome<T> {
    /// The values of a success.
    Done(T),
    /// A failure: kind, message, retryable.
    Failed(&'static str, String, bool),
}

impl<T> Outcome<T> {
    /// `result`'s answer: `Done(values)` or the error's fields.
    pub(crate) fn of(result: Result<T, ProcError>) -> Self {
        match result {
            Ok(values) => Outcome::Done(values),
            Err(err) => Outcome::failed(&err),
        }
    }

    /// The failure answer for `err`.
    pub(crate) fn failed(err: &ProcError) -> Self {
        Outcome::Failed(err.kind.name(), err.message.clone(), err.retryable)
    }
}

impl<T: IntoLuaMulti> IntoLuaMulti for Outcome<T> {
    fn into_lua_multi(self, lua: &Lua) -> mlua::Result<MultiValue> {
        match self {
            Outcome::Done(values) => values.into_lua_multi(lua),
            Outcome::Failed(kind, message, retryable) => {
                (false, kind, message, retryable).into_lua_multi(lua)
            }
        }
    }

    unsafe fn push_into_stack_multi(self, lua: &RawLua) -> mlua::Result<c_int> {
        // SAFETY: mlua's own tuple pushes, which check the stack; this is
        // called where mlua would call them for the same values.
        unsafe {
            match self {
                Outcome::Done(values) => values.push_into_stack_multi(lua),
                Outcome::Failed(kind, message, retryable) => {
                    (false, kind, message, retryable).push_into_stack_multi(lua)
                }
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use mlua::Lua;
    use warren_core::{ErrorKind, ProcError};

    use super::Outcome;

    #[test]
    fn a_success_pushes_its_values_and_a_failure_its_four_fields() {
        let lua = Lua::new();
        let f = lua
            .create_function(|_, n: i64| {
                let result = if n > 0 {
                    Ok((n, "yes"))
                } else {
                    let mut err = ProcError::new(ErrorKind::Invalid, format!("bad {n}"));
                    err.retryable = true;
                    Err(err)
                };
                Ok(Outcome::of(result))
            })
            .expect("function");
        lua.globals().set("f", f).expect("global");
        lua.load(
            r##"
            local a, b, c = f(7)
            assert(a == 7 and b == "yes" and c == nil, "the values of a success")
            assert(select("#", f(7)) == 2)
            local ok, kind, msg, retryable = f(-1)
            assert(ok == false and kind == "INVALID" and msg == "bad -1" and retryable == true)
            assert(select("#", f(-1)) == 4)
            "##,
        )
        .exec()
        .expect("the answers are as the kernel reads them");
    }
}

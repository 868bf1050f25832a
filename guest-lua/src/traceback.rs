//! The kernel's `traceback(msg, level)`, which makes an error object's
//! stack (`errors.new`, `errors.wrap`, `err:stack()`).
//!
//! It is `debug.traceback` without the search of every loaded module's
//! fields for a global name of each frame's function (the vendored Lua's
//! `warren_traceback`): that search was most of the cost of an error
//! object, 18 µs for `errors.new` at a shallow depth. Frames are named as
//! the calling code names them.
//!
//! Guarantees: the same text as `debug.traceback` but for those names; a
//! message that is neither a string nor nil is answered unchanged, as
//! `debug.traceback` does; runs no metamethod.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

unsafe extern "C-unwind" {
    fn warren_traceback(
        l: *mut lua_State,
        l1: *mut lua_State,
        msg: *const std::ffi::c_char,
        level: c_int,
    );
}

/// `traceback(msg, level)`: the running coroutine's traceback from
/// `level` (1, the caller of `traceback`, when absent), after `msg`.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(crate) unsafe extern "C-unwind" fn traceback(l: *mut lua_State) -> c_int {
    // SAFETY: reads of the arguments; `warren_traceback` pushes one string
    // and may raise only a memory error, with no Rust value alive.
    unsafe {
        let t = ffi::lua_type(l, 1);
        if t != ffi::LUA_TSTRING && t > ffi::LUA_TNIL {
            ffi::lua_settop(l, 1);
            return 1;
        }
        let msg = if t == ffi::LUA_TSTRING {
            ffi::lua_tolstring(l, 1, std::ptr::null_mut())
        } else {
            std::ptr::null()
        };
        let level = ffi::luaL_optinteger(l, 2, 1).clamp(0, i64::from(c_int::MAX));
        warren_traceback(l, l, msg, c_int::try_from(level).unwrap_or(1));
        1
    }
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    fn with_traceback() -> Lua {
        // SAFETY: a test VM with the debug library, to compare with
        // `debug.traceback`; no untrusted code runs in it.
        let lua = unsafe { Lua::unsafe_new() };
        // SAFETY: `traceback` is a C function following the Lua C API.
        let f = unsafe { lua.create_c_function(super::traceback) }.expect("made");
        lua.globals().set("tb", f).expect("set");
        lua
    }

    #[test]
    fn frames_are_named_as_the_code_names_them_not_by_a_search_of_the_libraries() {
        let lua = with_traceback();
        let text: String = lua
            .load(
                r#"local function inner() return tb("msg", 1) end
                local function outer() local s = inner() return s end
                -- pcall is found in package.loaded by debug.traceback's search
                local _, s = pcall(outer)
                return s"#,
            )
            .set_name("=t")
            .eval()
            .expect("runs");
        assert!(
            text.starts_with("msg\nstack traceback:\n\tt:1: in "),
            "{text}"
        );
        assert!(text.contains("upvalue 'inner'"), "{text}");
        assert!(text.contains("t:2: in function <t:2>"), "{text}");
        assert!(!text.contains("function 'pcall'"), "searched: {text}");
        let searched: String = lua
            .load("local _, s = pcall(function() return debug.traceback('m', 1) end) return s")
            .eval()
            .expect("runs");
        assert!(searched.contains("function 'pcall'"), "{searched}");
    }

    #[test]
    fn a_message_that_is_not_text_is_answered_unchanged() {
        let lua = with_traceback();
        let same: bool = lua
            .load("local t = {} return tb(t) == t and tb(nil):find('^stack traceback:') ~= nil")
            .eval()
            .expect("runs");
        assert!(same);
    }
}

//! The typed-Lua front-end on arbitrary bytes (typed-lua.md §3.9):
//! `translate` returns `Ok` or `Err`, never panics, never recurses past its
//! nesting limit; whenever it accepts, the output has the input's line
//! count (and its length, unless type references were rewritten) and
//! compiles under Lua 5.4.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlua::Lua;
use warren_lua_dialect::translate;

/// Lua's limits the front-end does not model (registers, upvalues,
/// constants): the loader reports these as compile errors itself.
const UNMODELLED: &[&str] = &[
    "too many registers",
    "upvalues",
    "C stack overflow",
    "constant",
    "control structure too long",
];

fn newlines(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'\n' || b == b'\r').count()
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let Ok(t) = translate(src) else { return };
    if !t.needs_types {
        assert_eq!(t.lua.len(), src.len());
    }
    assert_eq!(newlines(&t.lua), newlines(src));
    let lua = Lua::new();
    if let Err(e) = lua.load(&t.lua).into_function() {
        let e = e.to_string();
        assert!(
            UNMODELLED.iter().any(|m| e.contains(m)),
            "accepted but Lua rejects: {e}\n{src}"
        );
    }
});

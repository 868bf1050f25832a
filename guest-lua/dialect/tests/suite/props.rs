//! Property tests: arbitrary input never panics; whenever the front-end
//! accepts, the output keeps length and lines and compiles under mlua.

use proptest::prelude::*;
use warren_lua_dialect::translate;

fn check(src: &str) {
    if let Ok(t) = translate(src) {
        if !t.needs_types {
            assert_eq!(t.lua.len(), src.len());
        }
        assert_eq!(crate::common::lines(&t.lua), crate::common::lines(src));
        if let Err(e) = crate::common::compiles(&t.lua) {
            panic!(
                "accepted but mlua rejects: {e}\n--- source ---\n{src}\n--- output ---\n{}",
                t.lua
            );
        }
    }
}

/// Fragments of typed Lua, glued at random into token soup.
const PIECES: &[&str] = &[
    "local",
    "x",
    "y",
    "f",
    "T",
    "=",
    ":",
    "::",
    "as",
    "!",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "<",
    ">",
    ">>",
    ",",
    ".",
    "..",
    "...",
    "->",
    "?",
    "@min(1)",
    "|",
    "&",
    "type",
    "interface",
    "function",
    "end",
    "return",
    "if",
    "then",
    "else",
    "do",
    "while",
    "for",
    "in",
    "goto",
    "::l::",
    "break",
    "1",
    "\"s\"",
    "nil",
    "true",
    "+",
    "-",
    "*",
    "==",
    "~=",
    "and",
    "or",
    "not",
    "#",
    "\n",
    " ",
    "--c\n",
    "number",
    "string",
    "fun",
    "readonly",
    "typeof",
    "keyof",
    "extends",
    "asserts",
    "is",
    ";",
    "[[x]]",
    "0x1p4",
    "<const>",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..40).prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_strings(src in ".{0,200}") {
        check(&src);
    }

    #[test]
    fn arbitrary_bytes_lossy(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn token_soup(src in soup()) {
        check(&src);
    }

    #[test]
    fn statements_soup(stmts in prop::collection::vec(prop::sample::select(&[
        "local a: integer = 1", "type X = {a: number}", "local b = a :: any", "(print)(1)",
        "local c = a!", "::l::", "goto l", "do local z = 1 end", "interface I function m(self) end end",
        "local function g<T>(v: T): T return v end", "local t = {type = 1, is = 2}", "x = t.type",
        "for i = 1, 2 do break end", "local f = function(...: any): ...any return ... end",
        "local d = g(1) as number", "print(X:is(1), X, X.a, {X = X})", "local s = string(1) .. string.rep('a', 2)",
        "X = 2", "function X.f() end", "do type Y = X local z = Y end", "return",
    ][..]), 0..12)) {
        check(&stmts.join("\n"));
    }
}

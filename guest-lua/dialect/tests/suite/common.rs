//! Helpers shared by the integration tests.

use warren_lua_dialect::{Diagnostic, Translation, translate};

/// Number of lines as Lua counts them (`\n`, `\r`, `\r\n`, `\n\r`).
pub fn lines(s: &str) -> usize {
    let b = s.as_bytes();
    let mut n = 1;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' || b[i] == b'\r' {
            if i + 1 < b.len() && (b[i + 1] == b'\n' || b[i + 1] == b'\r') && b[i + 1] != b[i] {
                i += 1;
            }
            n += 1;
        }
        i += 1;
    }
    n
}

/// Whether mlua (Lua 5.4) compiles `code`; the error otherwise.
pub fn compiles(code: &str) -> Result<(), String> {
    let lua = mlua::Lua::new();
    lua.load(code)
        .set_name("=t")
        .into_function()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Translates a chunk that may use types as values: same lines; the same
/// length unless rewritten; mlua compiles the output (with
/// `__warren_types` a global, as the chunk prefix makes it a local).
pub fn tr(src: &str) -> Translation {
    let t = match translate(src) {
        Ok(t) => t,
        Err(e) => panic!("translate failed: {e}\n--- source ---\n{src}"),
    };
    assert_eq!(lines(&t.lua), lines(src), "line count changed");
    assert_eq!(t.needs_types, t.lua.contains("__warren_types."));
    if !t.needs_types {
        assert_eq!(t.lua.len(), src.len(), "length changed");
    }
    if let Err(e) = compiles(&t.lua) {
        panic!("mlua rejects the output: {e}\n--- output ---\n{}", t.lua);
    }
    t
}

/// Translates, checks the invariants (no rewrite, no T diagnostic),
/// returns the output.
pub fn ok(src: &str) -> String {
    let t = match translate(src) {
        Ok(t) => t,
        Err(e) => panic!("translate failed: {e}\n--- source ---\n{src}"),
    };
    assert!(!t.needs_types);
    assert_eq!(t.lua.len(), src.len(), "length changed");
    assert_eq!(lines(&t.lua), lines(src), "line count changed");
    if let Err(e) = compiles(&t.lua) {
        panic!("mlua rejects the output: {e}\n--- output ---\n{}", t.lua);
    }
    t.lua
}

/// Translates expecting an error.
pub fn err(src: &str) -> Diagnostic {
    match translate(src) {
        Ok(t) => panic!("expected an error, got:\n{}", t.lua),
        Err(e) => e,
    }
}

/// Whitespace normalisation (§3.10): per line, a run of blanks becomes
/// one space between two word characters and disappears elsewhere.
pub fn norm(s: &str) -> String {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    s.lines()
        .map(|l| {
            let chars: Vec<char> = l.trim().chars().collect();
            let mut out = String::new();
            let mut i = 0;
            while i < chars.len() {
                if chars[i].is_whitespace() {
                    while i < chars.len() && chars[i].is_whitespace() {
                        i += 1;
                    }
                    let prev = out.chars().last().is_some_and(word);
                    if prev && chars.get(i).copied().is_some_and(word) {
                        out.push(' ');
                    }
                } else {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts `src` translates to `plain` (after normalisation).
pub fn same(src: &str, plain: &str) {
    let out = ok(src);
    assert_eq!(norm(&out), norm(plain), "\n--- output ---\n{out}");
    compiles(plain).expect("the hand-stripped program compiles");
}

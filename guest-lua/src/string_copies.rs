//! Tests of the vendored Lua's string copies (`warren_memcpy` in
//! `vendor/lua-src/lua-5.4.9/lwarren.h`, see `vendor/lua-src/WARREN.md`):
//! a copy past 2 KiB whose destination is 1 to 31 bytes ahead of its
//! source (modulo 64) is made in pieces. Every way Lua makes a string from
//! bytes elsewhere (a string pushed from a host buffer, `..`, `string.rep`,
//! `table.concat`'s buffer) must still hold exactly those bytes, at every
//! size around a piece and every skew.

use mlua::{Lua, LuaString};

/// Lengths around a piece (2,048 bytes), glibc's `rep movsb` threshold and
/// a file read, and one not a multiple of anything.
const SIZES: [usize; 7] = [2_047, 2_048, 2_049, 4_096, 4_113, 65_539, 300_007];

/// Bytes in which no two nearby offsets hold the same value, so a piece
/// copied to the wrong place (or twice, or not at all) shows.
fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| u8::try_from((i * 7 + i / 251) % 256).unwrap_or(0))
        .collect()
}

fn bytes(s: &LuaString) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[test]
fn strings_pushed_from_host_buffers_at_every_skew_hold_their_bytes() {
    let lua = Lua::new();
    let src = pattern(SIZES[SIZES.len() - 1] + 64);
    for n in SIZES {
        for off in 0..64 {
            let want = &src[off..off + n];
            let s = lua.create_string(want).expect("string");
            assert_eq!(bytes(&s), want, "{n} bytes from offset {off}");
        }
    }
}

#[test]
fn concatenation_repetition_and_buffers_copy_every_byte() {
    let lua = Lua::new();
    let src = pattern(SIZES[SIZES.len() - 1] + 64);
    let whole = lua.create_string(&src).expect("string");
    let make = lua
        .load(
            r#"local s, n, k = ...
            local a = s:sub(1 + k, n + k)
            local b = s:sub(2, 2 + k)
            return a .. b, string.rep(a, 2, b), table.concat({ b, a, b })"#,
        )
        .into_function()
        .expect("chunk");
    for n in SIZES {
        for k in [0, 1, 8, 23, 24, 31, 32, 40, 63] {
            let (cat, rep, joined): (LuaString, LuaString, LuaString) =
                make.call((&whole, n, k)).expect("strings");
            let (a, b) = (&src[k..n + k], &src[1..2 + k]);
            assert_eq!(bytes(&cat), [a, b].concat(), "a .. b, {n} + {k}");
            assert_eq!(bytes(&rep), [a, b, a].concat(), "string.rep, {n} + {k}");
            assert_eq!(
                bytes(&joined),
                [b, a, b].concat(),
                "table.concat, {n} + {k}"
            );
        }
    }
}

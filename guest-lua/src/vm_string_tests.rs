//! Tests of the vendored Lua's string patches (`vendor/lua-src/WARREN.md`):
//! `%q` writes a control character's escape by hand (`lstrlib.c`,
//! `addquoted`), byte for byte as `l_sprintf` wrote it, and a long
//! string's hash (`lstring.c`, `warren_hashlong`) reads eight bytes a
//! step; equal long strings must still meet as table keys and distinct
//! ones stay apart.

use mlua::Lua;

/// The escape `%q` gave byte `c` before the patch: `\%d`, or `\%03d` when
/// a digit follows.
fn escape(c: u8, digit_next: bool) -> String {
    if digit_next {
        format!("\\{c:03}")
    } else {
        format!("\\{c}")
    }
}

#[test]
fn q_escapes_every_control_character_as_before() {
    let lua = Lua::new();
    let quote: mlua::Function = lua
        .load(r#"return function(s) return string.format("%q", s) end"#)
        .eval()
        .expect("chunk");
    let controls = (0u8..=31).chain([127]).filter(|&c| c != b'\n');
    for c in controls {
        for (next, digit) in [("", false), ("x", false), ("7", true), ("0", true)] {
            let input = lua
                .create_string([&[c][..], next.as_bytes()].concat())
                .expect("string");
            let got: mlua::LuaString = quote.call(input).expect("formats");
            let want = format!("\"{}{next}\"", escape(c, digit));
            assert_eq!(
                got.as_bytes().as_ref(),
                want.as_bytes(),
                "byte {c} then {next:?}"
            );
        }
    }
}

#[test]
fn a_quoted_string_loads_back_to_itself() {
    let lua = Lua::new();
    let same: bool = lua
        .load(
            r#"
            local parts = {}
            for c = 0, 255 do parts[#parts + 1] = string.char(c) .. tostring(c % 10) end
            for c = 0, 255 do parts[#parts + 1] = string.char(c) end
            local s = table.concat(parts) .. "\0"
            return load("return " .. string.format("%q", s))() == s
            "#,
        )
        .eval()
        .expect("chunk runs");
    assert!(same);
}

#[test]
fn equal_long_strings_meet_as_table_keys_and_distinct_ones_stay_apart() {
    let lua = Lua::new();
    let (distinct, all_met): (i64, bool) = lua
        .load(
            r#"
            -- Lengths across the 8-byte steps and the tail; each string
            -- changed at its first, middle and last byte, and each set
            -- again through another object of the same bytes.
            local t = {}
            for len = 41, 120 do
                local base = string.rep("k", len)
                local variants = { base }
                for _, at in ipairs({ 1, len // 2, len }) do
                    variants[#variants + 1] = base:sub(1, at - 1) .. "j" .. base:sub(at + 1)
                end
                for _, v in ipairs(variants) do
                    t[v] = 1
                    local again = (v .. "!"):sub(1, -2)
                    t[again] = t[again] + 1
                end
            end
            local distinct, all_met = 0, true
            for _, count in pairs(t) do
                distinct = distinct + 1
                all_met = all_met and count == 2
            end
            return distinct, all_met
            "#,
        )
        .eval()
        .expect("chunk runs");
    assert_eq!(distinct, 80 * 4);
    assert!(all_met, "a second object of the same bytes missed its key");
}

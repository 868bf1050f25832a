//! Tests of the vendored Lua's string patches (`vendor/lua-src/WARREN.md`):
//! `%q` writes a control character's escape by hand (`lstrlib.c`,
//! `addquoted`), byte for byte as `l_sprintf` wrote it, and a long
//! string's hash (`lstring.c`, `warren_hashlong`) reads eight bytes a
//! step; equal long strings must still meet as table keys and distinct
//! ones stay apart; a plain `find` (`lmemfind`) searches window by window
//! and finds what it found before.

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

/// A plain `string.find` (`lstrlib.c`, `lmemfind`) searches a window of
/// 1 MiB (or the needle's length) at a time: a match straddling a
/// window's edge, at either end of the text, after an `init`, or with a
/// needle longer than a window is found where it is, and a missing one
/// is not (each text holds the needle at most once, at `at`).
#[test]
fn a_plain_find_finds_across_its_windows_as_before() {
    let lua = Lua::new();
    let failures: String = lua
        .load(
            r##"
            local W = 1 << 20
            local bad = {}
            local function check(s, p, init, want)
                local got = s:find(p, init, true)
                if got ~= want then
                    bad[#bad + 1] = ("#s=%d #p=%d init=%d: %s, want %s"):format(#s, #p, init, tostring(got), tostring(want))
                end
            end
            local needle = "xyz"
            for _, at in ipairs({ 1, W - 3, W - 2, W - 1, W, W + 1, 2 * W - 2, 3 * W - 2 }) do
                local s = ("a"):rep(at - 1) .. needle .. ("a"):rep(5)
                check(s, needle, 1, at)
                check(s, needle, math.max(1, at - 1), at)
                check(s, needle, at, at)
                check(s, needle, at + 1, nil)
                check(s:sub(1, -7), needle, 1, nil) -- cut one byte short of it
            end
            -- A needle longer than a window, found at the text's end, and
            -- one byte short of a match.
            local long = ("b"):rep(W + 17) .. "c"
            check(("a"):rep(W + 5) .. long, long, 1, W + 6)
            check(("a"):rep(W + 5) .. long:sub(1, -2), long, 1, nil)
            check(long:sub(2), long, 1, nil)
            -- Every byte a near match: the quadratic case.
            check(("a"):rep(2 * W + 9) .. "b", ("a"):rep(120) .. "b", 1, 2 * W + 9 - 119)
            check(("a"):rep(2 * W + 9), ("a"):rep(120) .. "b", 1, nil)
            return table.concat(bad, "; ")
            "##,
        )
        .eval()
        .expect("chunk runs");
    assert_eq!(failures, "");
}

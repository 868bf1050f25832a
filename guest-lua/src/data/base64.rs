//! `base64`: RFC 4648 §4 (standard alphabet, `=` padding).
//!
//! | call | returns |
//! |---|---|
//! | `base64.encode(s)` | string (`""` gives `""`) |
//! | `base64.decode(s)` | `string, err`: strict — padding required, canonical final bits, no URL alphabet, no whitespace; otherwise `Invalid` |
//!
//! The output is at most 4/3 of the input, which is already in the
//! caller's memory; nothing else is allocated.

use ::base64::Engine as _;
use ::base64::engine::general_purpose::STANDARD;
use mlua::{Lua, Table, Value};

use super::{Outcome, function, invalid, lua_string, string_arg};

/// The `base64` module table.
pub(super) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 2)?;
    t.raw_set("encode", function(lua, encode)?)?;
    t.raw_set("decode", function(lua, decode)?)?;
    Ok(t)
}

fn encode(lua: &Lua, (data,): (Value,)) -> mlua::Result<Outcome> {
    let data = match string_arg(&data, "base64.encode", "data") {
        Ok(s) => s,
        Err(f) => return Ok(Err(f)),
    };
    lua_string(lua, STANDARD.encode(data.as_bytes())).map(Ok)
}

fn decode(lua: &Lua, (data,): (Value,)) -> mlua::Result<Outcome> {
    const FUNC: &str = "base64.decode";
    let data = match string_arg(&data, FUNC, "data") {
        Ok(s) => s,
        Err(f) => return Ok(Err(f)),
    };
    match STANDARD.decode(data.as_bytes()) {
        Ok(bytes) => lua_string(lua, bytes).map(Ok),
        Err(e) => Ok(Err(invalid(FUNC, format_args!("invalid base64: {e}")))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_invalid, check, eval, lua};

    /// RFC 4648 §10.
    const VECTORS: [(&str, &str); 7] = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn rfc4648_vectors_both_ways() {
        let lua = lua();
        for (plain, encoded) in VECTORS {
            let e: String = eval(&lua, &format!("return base64.encode({plain:?})"));
            assert_eq!(e, encoded);
            let d: String = eval(&lua, &format!("return base64.decode({encoded:?})"));
            assert_eq!(d, plain);
        }
    }

    #[test]
    fn binary_round_trips() {
        let lua = lua();
        check(
            &lua,
            r#"local all = {}
            for i = 0, 255 do all[#all + 1] = string.char(i) end
            local s = table.concat(all)
            local e = base64.encode(s)
            assert(#e == 344 and e:find("+", 1, true) and e:find("/", 1, true))
            assert(base64.decode(e) == s)
            assert(base64.encode("Hello, World!") == "SGVsbG8sIFdvcmxkIQ==")"#,
        );
    }

    #[test]
    fn decoding_is_strict() {
        let lua = lua();
        for bad in [
            "Zg",        // padding missing
            "Zg=",       // padding short
            "Zm8",       // padding missing
            "Zg===",     // too much padding
            "Zm9v\n",    // whitespace
            " Zm9v",     // whitespace
            "Zm 9v",     // whitespace inside
            "-_-_",      // URL alphabet
            "Zh==",      // non-zero trailing bits
            "Zm9=v",     // padding inside
            "Z",         // one symbol
            "Zm9v!",     // not the alphabet
            "\u{e9}AAA", // non-ASCII
        ] {
            assert_invalid(
                &lua,
                &format!("return base64.decode({bad:?})"),
                "base64.decode: invalid base64",
            );
        }
    }

    #[test]
    fn non_strings_are_invalid() {
        let lua = lua();
        for f in ["encode", "decode"] {
            for arg in ["", "42", "{}", "true", "print"] {
                assert_invalid(
                    &lua,
                    &format!("return base64.{f}({arg})"),
                    &format!("base64.{f}: data must be a string"),
                );
            }
        }
    }
}

//! `hash`: digests, HMACs and FNV-1.
//!
//! | call | returns |
//! |---|---|
//! | `hash.md5\|sha1\|sha256\|sha512(data, raw?)` | lower-case hex; the raw digest when `raw` is true |
//! | `hash.hmac_md5\|hmac_sha1\|hmac_sha256\|hmac_sha512(data, secret, raw?)` | the same for the HMAC (data first, then the secret; an empty secret is allowed) |
//! | `hash.fnv32(data)`, `hash.fnv64(data)` | FNV-1 (not 1a) as an integer; `fnv64` is the 64-bit value as a Lua integer, possibly negative |
//!
//! A non-string `data` or `secret`, or a `raw` that is neither nil nor a
//! boolean, returns `nil, err(Invalid)`. The work is linear in the input,
//! which is already in the caller's memory.

use hmac::{Hmac, Mac};
use md5::Md5;
use mlua::{Lua, Table, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use super::{Fail, Outcome, flag_arg, function, hex, lua_string, string_arg};

/// A digest algorithm of this module (and of `crypto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Algo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Algo {
    const ALL: [(Algo, &'static str); 4] = [
        (Algo::Md5, "md5"),
        (Algo::Sha1, "sha1"),
        (Algo::Sha256, "sha256"),
        (Algo::Sha512, "sha512"),
    ];

    /// The digest of `data`.
    pub(super) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Algo::Md5 => Md5::digest(data).to_vec(),
            Algo::Sha1 => Sha1::digest(data).to_vec(),
            Algo::Sha256 => Sha256::digest(data).to_vec(),
            Algo::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// The HMAC of `data` under `key` (RFC 2104; any key length).
    pub(super) fn hmac(self, key: &[u8], data: &[u8], func: &str) -> Result<Vec<u8>, Fail> {
        fn run<M: Mac + hmac::digest::KeyInit>(
            key: &[u8],
            data: &[u8],
            func: &str,
        ) -> Result<Vec<u8>, Fail> {
            // HMAC takes keys of any length; this cannot fail.
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .map_err(|e| Fail::Internal(format!("{func}: {e}")))?;
            mac.update(data);
            Ok(mac.finalize().into_bytes().to_vec())
        }
        match self {
            Algo::Md5 => run::<Hmac<Md5>>(key, data, func),
            Algo::Sha1 => run::<Hmac<Sha1>>(key, data, func),
            Algo::Sha256 => run::<Hmac<Sha256>>(key, data, func),
            Algo::Sha512 => run::<Hmac<Sha512>>(key, data, func),
        }
    }
}

/// The `hash` module table.
pub(super) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 10)?;
    for (algo, name) in Algo::ALL {
        let func = format!("hash.{name}");
        let digest = move |lua: &Lua, (data, raw): (Value, Value)| {
            let checked = (
                string_arg(&data, &func, "data"),
                flag_arg(&raw, &func, "raw"),
            );
            let (data, raw) = match checked {
                (Ok(d), Ok(r)) => (d, r),
                (Err(f), _) | (_, Err(f)) => return Ok(Err(f)),
            };
            output(lua, &algo.digest(&data.as_bytes()), raw)
        };
        t.raw_set(name, function(lua, digest)?)?;

        let func = format!("hash.hmac_{name}");
        let key = format!("hmac_{name}");
        let hmac = move |lua: &Lua, (data, secret, raw): (Value, Value, Value)| {
            let checked = (
                string_arg(&data, &func, "data"),
                string_arg(&secret, &func, "secret"),
                flag_arg(&raw, &func, "raw"),
            );
            let (data, secret, raw) = match checked {
                (Ok(d), Ok(s), Ok(r)) => (d, s, r),
                (Err(f), _, _) | (_, Err(f), _) | (_, _, Err(f)) => return Ok(Err(f)),
            };
            match algo.hmac(&secret.as_bytes(), &data.as_bytes(), &func) {
                Ok(mac) => output(lua, &mac, raw),
                Err(f) => Ok(Err(f)),
            }
        };
        t.raw_set(key, function(lua, hmac)?)?;
    }
    t.raw_set("fnv32", function(lua, fnv32)?)?;
    t.raw_set("fnv64", function(lua, fnv64)?)?;
    let pbkdf2 = |lua: &Lua, args| super::crypto::pbkdf2_as(lua, "hash.pbkdf2", args);
    t.raw_set("pbkdf2", function(lua, pbkdf2)?)?;
    Ok(t)
}

/// A digest as hex, or as its raw bytes.
fn output(lua: &Lua, digest: &[u8], raw: bool) -> mlua::Result<Outcome> {
    if raw {
        lua_string(lua, digest).map(Ok)
    } else {
        lua_string(lua, hex(digest)).map(Ok)
    }
}

/// FNV-1 32-bit: multiply by the prime, then xor the byte.
pub(super) fn fnv1_32(data: &[u8]) -> u32 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    data.iter()
        .fold(OFFSET, |h, &b| h.wrapping_mul(PRIME) ^ u32::from(b))
}

/// FNV-1 64-bit: multiply by the prime, then xor the byte.
pub(super) fn fnv1_64(data: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    data.iter()
        .fold(OFFSET, |h, &b| h.wrapping_mul(PRIME) ^ u64::from(b))
}

fn fnv32(_: &Lua, (data,): (Value,)) -> mlua::Result<Outcome> {
    Ok(string_arg(&data, "hash.fnv32", "data")
        .map(|d| Value::Integer(i64::from(fnv1_32(&d.as_bytes())))))
}

fn fnv64(_: &Lua, (data,): (Value,)) -> mlua::Result<Outcome> {
    // The 64 bits as they are: values of 2^63 and above are negative.
    Ok(string_arg(&data, "hash.fnv64", "data")
        .map(|d| Value::Integer(i64::from_ne_bytes(fnv1_64(&d.as_bytes()).to_ne_bytes()))))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_invalid, check, eval, lua};
    use super::*;

    fn hash_hex(lua: &Lua, call: &str) -> String {
        eval(lua, &format!("return {call}"))
    }

    #[test]
    fn digest_vectors_hex_and_raw() {
        let lua = lua();
        let vectors = [
            ("md5", "", "d41d8cd98f00b204e9800998ecf8427e"),
            ("md5", "abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("sha1", "", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            ("sha1", "abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                "sha256",
                "",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                "sha256",
                "abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                "sha512",
                "abc",
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                 2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (f, input, want) in vectors {
            assert_eq!(hash_hex(&lua, &format!("hash.{f}({input:?})")), want);
            assert_eq!(hash_hex(&lua, &format!("hash.{f}({input:?}, false)")), want);
            let raw: mlua::LuaString = eval(&lua, &format!("return hash.{f}({input:?}, true)"));
            assert_eq!(hex(&raw.as_bytes()), want, "{f} raw");
        }
    }

    #[test]
    fn hmac_vectors_rfc_2202_and_4231() {
        let lua = lua();
        check(
            &lua,
            r#"K20 = string.rep("\x0b", 20)
            K16 = string.rep("\x0b", 16)
            JEFE_DATA = "what do ya want for nothing?""#,
        );
        let vectors = [
            // RFC 2202 test cases 1 and 2.
            ("md5", "K16", "9294727a3638bb1c13f48ef8158bfc9d"),
            ("md5", "JEFE", "750c783e6ab0b503eaa86e310a5db738"),
            ("sha1", "K20", "b617318655057264e28bc0b6fb378c8ef146be00"),
            ("sha1", "JEFE", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
            // RFC 4231 test cases 1 and 2.
            (
                "sha256",
                "K20",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                "sha256",
                "JEFE",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                "sha512",
                "K20",
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                 daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            ),
            (
                "sha512",
                "JEFE",
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
        ];
        for (f, key, want) in vectors {
            let (key, data) = if key == "JEFE" {
                ("\"Jefe\"", "JEFE_DATA")
            } else {
                (key, "\"Hi There\"")
            };
            assert_eq!(
                hash_hex(&lua, &format!("hash.hmac_{f}({data}, {key})")),
                want,
                "hmac_{f}"
            );
            let raw: mlua::LuaString =
                eval(&lua, &format!("return hash.hmac_{f}({data}, {key}, true)"));
            assert_eq!(hex(&raw.as_bytes()), want, "hmac_{f} raw");
        }
        // An empty secret is allowed here (crypto.hmac refuses it).
        let empty = hash_hex(&lua, r#"hash.hmac_sha256("", "")"#);
        assert_eq!(
            empty,
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"
        );
    }

    #[test]
    fn fnv1_vectors() {
        // The FNV reference vectors (FNV-1, not 1a).
        assert_eq!(fnv1_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1_32(b"a"), 0x050c_5d7e);
        assert_eq!(fnv1_32(b"foobar"), 0x31f0_b262);
        assert_eq!(fnv1_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1_64(b"a"), 0xaf63_bd4c_8601_b7be);
        assert_eq!(fnv1_64(b"foobar"), 0x340d_8765_a4dd_a9c2);
        let lua = lua();
        let n: i64 = eval(&lua, r#"return hash.fnv32("foobar")"#);
        assert_eq!(n, 0x31f0_b262);
        // 0xaf63... has the top bit set: an exact, negative integer.
        let (n, ty): (i64, String) =
            eval(&lua, r#"local n = hash.fnv64("a") return n, math.type(n)"#);
        assert_eq!(n, 0xaf63_bd4c_8601_b7be_u64 as i64);
        assert!(n < 0);
        assert_eq!(ty, "integer");
        let n: i64 = eval(&lua, r#"return hash.fnv64("foobar")"#);
        assert_eq!(n, 0x340d_8765_a4dd_a9c2);
    }

    #[test]
    fn bad_arguments_are_invalid() {
        let lua = lua();
        for f in ["md5", "sha1", "sha256", "sha512", "fnv32", "fnv64"] {
            for arg in ["", "42", "{}", "nil, true"] {
                assert_invalid(
                    &lua,
                    &format!("return hash.{f}({arg})"),
                    &format!("hash.{f}: data must be a string"),
                );
            }
        }
        for f in ["md5", "sha1", "sha256", "sha512"] {
            assert_invalid(
                &lua,
                &format!("return hash.{f}('x', 'yes')"),
                &format!("hash.{f}: raw must be a boolean"),
            );
            assert_invalid(
                &lua,
                &format!("return hash.hmac_{f}(1, 'k')"),
                &format!("hash.hmac_{f}: data must be a string"),
            );
            assert_invalid(
                &lua,
                &format!("return hash.hmac_{f}('x')"),
                &format!("hash.hmac_{f}: secret must be a string"),
            );
            assert_invalid(
                &lua,
                &format!("return hash.hmac_{f}('x', 'k', 1)"),
                &format!("hash.hmac_{f}: raw must be a boolean"),
            );
        }
    }

    #[test]
    fn no_metamethod_of_an_argument_runs() {
        let lua = lua();
        check(
            &lua,
            r#"local hit = false
            local evil = setmetatable({}, { __tostring = function() hit = true return "x" end,
                __index = function() hit = true end, __len = function() hit = true return 1 end })
            local v, err = hash.sha256(evil)
            assert(v == nil and rawget(err, "_kind") == "Invalid")
            v, err = hash.hmac_sha256("x", evil)
            assert(v == nil and rawget(err, "_kind") == "Invalid")
            assert(not hit)"#,
        );
    }
}

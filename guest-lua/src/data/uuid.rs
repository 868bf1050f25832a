//! `uuid`: generation (v1, v3, v4, v5, v7), inspection and formatting.
//! Strings out are lower-case and hyphenated.
//!
//! | call | returns |
//! |---|---|
//! | `uuid.v4()` | random |
//! | `uuid.v7()` | Unix-millisecond prefix; ids from one Lua VM sort by creation time, also within a millisecond |
//! | `uuid.v1()` | Gregorian 100 ns time, random clock sequence and random node id (multicast bit set, RFC 9562 §6.10: never a MAC address) |
//! | `uuid.v3(ns, name)`, `uuid.v5(ns, name)` | MD5 / SHA-1 of the namespace UUID's bytes and the name |
//! | `uuid.validate(v)` | bool (`false` for a non-string) |
//! | `uuid.version(s)` | integer (the version nibble) |
//! | `uuid.variant(s)` | `"NCS"`, `"RFC4122"`, `"Microsoft"` or `"Future"` (RFC 9562 §4.1) |
//! | `uuid.parse(s)` | `{version, variant, timestamp?, node?}`; `timestamp` in Unix seconds for v1 and v7, `node` (12 hex digits) for v1 |
//! | `uuid.format(s, style?)` | `"standard"` (default), `"simple"` (32 hex digits), `"urn"` |
//!
//! Input UUIDs may be hyphenated, simple, braced or URNs, in either case.
//! A non-string or malformed input, or an unknown style, is `Invalid`; a
//! failure of the OS's randomness or clock is `Internal` (the generators
//! draw their randomness here rather than in the `uuid` crate, which can
//! only panic). Every input is parsed in time linear in at most 45 bytes.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use ::uuid::{Builder, Uuid};
use mlua::{Lua, Table, Value};

use super::hash::Algo;
use super::{Fail, Outcome, function, invalid, lua_string, lua_type, os_random, string_arg};

/// 100 ns ticks from 1582-10-15 (the Gregorian epoch of v1) to 1970-01-01.
const GREGORIAN_TO_UNIX_TICKS: u64 = 0x01b2_1dd2_1381_4000;

/// Bits of a v7 after its 48-bit millisecond prefix, less the version and
/// variant: 12 (`rand_a`) + 62 (`rand_b`).
const V7_TAIL_BITS: u32 = 74;

/// The `uuid` module table.
pub(super) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 10)?;
    t.raw_set("v1", function(lua, |lua, (): ()| generated(lua, v1()))?)?;
    t.raw_set(
        "v4",
        function(lua, |lua, (): ()| generated(lua, v4("uuid.v4")))?,
    )?;
    let state = Rc::new(Cell::new(V7State::default()));
    let v7 = move |lua: &Lua, (): ()| generated(lua, v7(&state));
    t.raw_set("v7", function(lua, v7)?)?;
    t.raw_set(
        "v3",
        function(lua, |lua, args| named(lua, args, "uuid.v3", Algo::Md5))?,
    )?;
    t.raw_set(
        "v5",
        function(lua, |lua, args| named(lua, args, "uuid.v5", Algo::Sha1))?,
    )?;
    t.raw_set("validate", function(lua, validate)?)?;
    t.raw_set("version", function(lua, version)?)?;
    t.raw_set("variant", function(lua, variant)?)?;
    t.raw_set("parse", function(lua, parse)?)?;
    t.raw_set("format", function(lua, format)?)?;
    Ok(t)
}

/// A generated UUID as its standard string.
fn generated(lua: &Lua, id: Result<Uuid, Fail>) -> mlua::Result<Outcome> {
    match id {
        Ok(id) => lua_string(lua, id.hyphenated().to_string()).map(Ok),
        Err(f) => Ok(Err(f)),
    }
}

/// A random (version 4) UUID; `func` names the caller in errors.
pub(super) fn v4(func: &str) -> Result<Uuid, Fail> {
    let mut bytes = [0u8; 16];
    os_random(&mut bytes, func)?;
    Ok(Builder::from_random_bytes(bytes).into_uuid())
}

/// The time since the Unix epoch.
fn since_epoch(func: &str) -> Result<std::time::Duration, Fail> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Fail::Internal(format!("{func}: the clock is before 1970")))
}

fn v1() -> Result<Uuid, Fail> {
    const FUNC: &str = "uuid.v1";
    let now = since_epoch(FUNC)?;
    let ticks = now
        .as_secs()
        .checked_mul(10_000_000)
        .and_then(|t| t.checked_add(u64::from(now.subsec_nanos() / 100)))
        .and_then(|t| t.checked_add(GREGORIAN_TO_UNIX_TICKS))
        .filter(|t| *t < 1 << 60)
        .ok_or_else(|| Fail::Internal(format!("{FUNC}: the clock is past 5236")))?;
    let mut random = [0u8; 8];
    os_random(&mut random, FUNC)?;
    let clock_seq = u16::from_be_bytes([random[0], random[1]]) & 0x3fff;
    let mut node = [0u8; 6];
    node.copy_from_slice(&random[2..]);
    node[0] |= 0x01; // multicast: a random node id, not a MAC address
    Ok(Builder::from_gregorian_timestamp(ticks, clock_seq, &node).into_uuid())
}

/// The last v7 of a module table: its millisecond and the 74 bits after it.
#[derive(Debug, Clone, Copy, Default)]
struct V7State {
    millis: u64,
    tail: u128,
}

/// A v7 (RFC 9562 §6.2 method 2, a monotonic random tail): in a new
/// millisecond the 74 bits after the timestamp are random (top bit clear,
/// leaving room to count); within the same millisecond, or when the
/// clock went back, the last one's tail is increased by a random step of
/// 1..=2^16 (so consecutive ids do not reveal how many were made
/// between them); should the tail overflow, the millisecond advances.
fn v7(state: &Cell<V7State>) -> Result<Uuid, Fail> {
    const FUNC: &str = "uuid.v7";
    let now = u64::try_from(since_epoch(FUNC)?.as_millis())
        .ok()
        .filter(|ms| *ms < 1 << 48)
        .ok_or_else(|| Fail::Internal(format!("{FUNC}: the clock is past 10889")))?;
    let mut random = [0u8; 16];
    os_random(&mut random, FUNC)?;
    let random = u128::from_be_bytes(random);
    let fresh = random & ((1 << (V7_TAIL_BITS - 1)) - 1);
    let step = 1 + (random >> 112); // the top 16 bits, unused by `fresh`
    let last = state.get();
    let next = if now > last.millis {
        V7State {
            millis: now,
            tail: fresh,
        }
    } else {
        match last
            .tail
            .checked_add(step)
            .filter(|t| *t < 1 << V7_TAIL_BITS)
        {
            Some(tail) => V7State {
                millis: last.millis,
                tail,
            },
            None if last.millis + 1 < 1 << 48 => V7State {
                millis: last.millis + 1,
                tail: fresh,
            },
            None => return Err(Fail::Internal(format!("{FUNC}: the clock is past 10889"))),
        }
    };
    state.set(next);
    let rand_a = (next.tail >> 62) & 0x0fff;
    let rand_b = next.tail & ((1 << 62) - 1);
    let bits =
        (u128::from(next.millis) << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b;
    Ok(Uuid::from_u128(bits))
}

/// `uuid.v3` / `uuid.v5`: the digest of the namespace's 16 bytes and the name.
fn named(lua: &Lua, (ns, name): (Value, Value), func: &str, algo: Algo) -> mlua::Result<Outcome> {
    let checked = (
        string_arg(&ns, func, "namespace"),
        string_arg(&name, func, "name"),
    );
    let (ns, name) = match checked {
        (Ok(ns), Ok(name)) => (ns, name),
        (Err(f), _) | (_, Err(f)) => return Ok(Err(f)),
    };
    let ns = match parse_uuid(&ns.as_bytes(), func, "namespace") {
        Ok(ns) => ns,
        Err(f) => return Ok(Err(f)),
    };
    let mut input = Vec::with_capacity(16 + name.as_bytes().len());
    input.extend_from_slice(ns.as_bytes());
    input.extend_from_slice(&name.as_bytes());
    let digest = algo.digest(&input);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let id = match algo {
        Algo::Md5 => Builder::from_md5_bytes(bytes),
        _ => Builder::from_sha1_bytes(bytes),
    };
    generated(lua, Ok(id.into_uuid()))
}

/// A UUID in any of the forms the `uuid` crate reads (hyphenated, simple,
/// braced, URN; either case); anything else is `Invalid`.
fn parse_uuid(text: &[u8], func: &str, name: &str) -> Result<Uuid, Fail> {
    Uuid::try_parse_ascii(text)
        .map_err(|_| invalid(func, format_args!("{name} is not a valid UUID")))
}

/// The argument of the inspection calls, parsed.
fn uuid_arg(v: &Value, func: &str) -> Result<Uuid, Fail> {
    let s = string_arg(v, func, "uuid")?;
    parse_uuid(&s.as_bytes(), func, "uuid")
}

fn validate(_: &Lua, (v,): (Value,)) -> mlua::Result<Outcome> {
    let valid = matches!(&v, Value::String(s) if Uuid::try_parse_ascii(&s.as_bytes()).is_ok());
    Ok(Ok(Value::Boolean(valid)))
}

fn version(_: &Lua, (v,): (Value,)) -> mlua::Result<Outcome> {
    Ok(uuid_arg(&v, "uuid.version").map(|id| Value::Integer(i64::from(version_of(&id)))))
}

fn variant(lua: &Lua, (v,): (Value,)) -> mlua::Result<Outcome> {
    match uuid_arg(&v, "uuid.variant") {
        Ok(id) => lua_string(lua, variant_of(&id)).map(Ok),
        Err(f) => Ok(Err(f)),
    }
}

/// The version nibble (0..=15, whatever the variant).
fn version_of(id: &Uuid) -> u8 {
    id.as_bytes()[6] >> 4
}

/// The variant's name, from the top bits of byte 8 (RFC 9562 §4.1).
fn variant_of(id: &Uuid) -> &'static str {
    let b = id.as_bytes()[8];
    if b & 0x80 == 0 {
        "NCS"
    } else if b & 0xc0 == 0x80 {
        "RFC4122"
    } else if b & 0xe0 == 0xc0 {
        "Microsoft"
    } else {
        "Future"
    }
}

/// The Unix seconds of a v1 (floored, so times before 1970 are negative).
fn v1_unix_seconds(id: &Uuid) -> i64 {
    let b = id.as_bytes();
    let ticks = (u64::from(b[6] & 0x0f) << 56)
        | (u64::from(b[7]) << 48)
        | (u64::from(b[4]) << 40)
        | (u64::from(b[5]) << 32)
        | u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    // Both are below 2^60: exact in i64.
    let ticks = i64::try_from(ticks).unwrap_or(i64::MAX);
    let offset = i64::try_from(GREGORIAN_TO_UNIX_TICKS).unwrap_or(0);
    (ticks - offset).div_euclid(10_000_000)
}

/// The Unix seconds of a v7.
fn v7_unix_seconds(id: &Uuid) -> i64 {
    let millis = id.as_u128() >> 80; // 48 bits
    i64::try_from(millis / 1000).unwrap_or(i64::MAX)
}

fn parse(lua: &Lua, (v,): (Value,)) -> mlua::Result<Outcome> {
    let id = match uuid_arg(&v, "uuid.parse") {
        Ok(id) => id,
        Err(f) => return Ok(Err(f)),
    };
    let t = lua.create_table_with_capacity(0, 4)?;
    let version = version_of(&id);
    t.raw_set("version", i64::from(version))?;
    t.raw_set("variant", variant_of(&id))?;
    match version {
        1 => {
            t.raw_set("timestamp", v1_unix_seconds(&id))?;
            t.raw_set("node", super::hex(&id.as_bytes()[10..]))?;
        }
        7 => t.raw_set("timestamp", v7_unix_seconds(&id))?,
        _ => {}
    }
    Ok(Ok(Value::Table(t)))
}

fn format(lua: &Lua, (v, style): (Value, Value)) -> mlua::Result<Outcome> {
    const FUNC: &str = "uuid.format";
    let id = match uuid_arg(&v, FUNC) {
        Ok(id) => id,
        Err(f) => return Ok(Err(f)),
    };
    let text = match &style {
        Value::Nil => id.hyphenated().to_string(),
        Value::String(s) => match &*s.as_bytes() {
            b"standard" => id.hyphenated().to_string(),
            b"simple" => id.simple().to_string(),
            b"urn" => id.urn().to_string(),
            _ => {
                let shown = String::from_utf8_lossy(&s.as_bytes()[..s.as_bytes().len().min(32)])
                    .into_owned();
                return Ok(Err(invalid(
                    FUNC,
                    format_args!("unsupported format {shown:?} (standard, simple or urn)"),
                )));
            }
        },
        other => {
            return Ok(Err(invalid(
                FUNC,
                format_args!("format must be a string (got {})", lua_type(other)),
            )));
        }
    };
    lua_string(lua, text).map(Ok)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_invalid, check, eval, lua};
    use super::*;

    const NS_DNS: &str = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
    const NS_URL: &str = "6ba7b811-9dad-11d1-80b4-00c04fd430c8";

    #[test]
    fn v3_and_v5_namespace_vectors() {
        let lua = lua();
        let cases = [
            // RFC 9562 appendix A.2 and A.4.
            (
                "v3",
                NS_DNS,
                "www.example.com",
                "5df41881-3aed-3515-88a7-2f4a814cf09e",
            ),
            (
                "v5",
                NS_DNS,
                "www.example.com",
                "2ed6657d-e927-568b-95e1-2665a8aea6a2",
            ),
            // Python's uuid module (the docs' example namespace and name).
            (
                "v5",
                NS_URL,
                "https://example.com/resource",
                "1f70cc9d-a4b1-5e16-844a-32742876cc95",
            ),
        ];
        for (f, ns, name, want) in cases {
            let got: String = eval(&lua, &format!("return uuid.{f}({ns:?}, {name:?})"));
            assert_eq!(got, want, "{f}");
            // The namespace in any accepted form gives the same id.
            let upper = ns.to_uppercase();
            let got: String = eval(&lua, &format!("return uuid.{f}('{{{upper}}}', {name:?})"));
            assert_eq!(got, want, "{f} braced upper-case namespace");
        }
    }

    #[test]
    fn v4_format_and_version() {
        let lua = lua();
        check(
            &lua,
            r#"local seen = {}
            for _ = 1, 200 do
                local id = uuid.v4()
                assert(#id == 36 and id:match("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$"), id)
                assert(id == id:lower())
                assert(uuid.version(id) == 4 and uuid.variant(id) == "RFC4122")
                assert(not seen[id]); seen[id] = true
            end"#,
        );
    }

    #[test]
    fn v7_format_time_and_ordering() {
        let lua = lua();
        check(
            &lua,
            r#"local before = os.time()
            local prev = uuid.v7()
            for _ = 1, 2000 do
                local id = uuid.v7()
                assert(id:match("^%x+%-%x+%-7%x+%-[89ab]%x+%-%x+$"), id)
                assert(id > prev, "v7 ids sort by creation: " .. prev .. " then " .. id)
                prev = id
            end
            local info = uuid.parse(prev)
            assert(info.version == 7 and info.variant == "RFC4122" and info.node == nil)
            assert(math.type(info.timestamp) == "integer")
            assert(info.timestamp >= before - 1 and info.timestamp <= os.time() + 1)"#,
        );
    }

    #[test]
    fn v7_counts_within_a_millisecond_and_past_its_end() {
        let state = Cell::new(V7State {
            millis: u64::MAX >> 16, // in the future: the clock "went back"
            tail: 5,
        });
        let a = v7(&state).expect("v7");
        let b = v7(&state).expect("v7");
        assert!(b > a);
        assert_eq!(a.as_u128() >> 80, u128::from(u64::MAX >> 16));
        // A tail about to overflow moves to the next millisecond.
        let future = (1 << 48) - 10;
        state.set(V7State {
            millis: future,
            tail: (1 << V7_TAIL_BITS) - 1,
        });
        let c = v7(&state).expect("v7");
        assert_eq!(c.as_u128() >> 80, u128::from(future + 1));
        // Past the last millisecond v7 can hold, it fails.
        state.set(V7State {
            millis: (1 << 48) - 1,
            tail: (1 << V7_TAIL_BITS) - 1,
        });
        assert!(matches!(v7(&state), Err(Fail::Internal(_))));
        assert_eq!(version_of(&c), 7);
        assert_eq!(variant_of(&c), "RFC4122");
    }

    #[test]
    fn v1_time_and_random_node() {
        let lua = lua();
        check(
            &lua,
            r#"local before = os.time()
            local a, b = uuid.v1(), uuid.v1()
            assert(a ~= b)
            assert(a:match("^%x+%-%x+%-1%x+%-[89ab]%x+%-%x+$"), a)
            local info = uuid.parse(a)
            assert(info.version == 1 and info.variant == "RFC4122")
            assert(info.timestamp >= before - 1 and info.timestamp <= os.time() + 1, info.timestamp)
            assert(#info.node == 12 and info.node:match("^%x+$"))
            -- the multicast bit marks a random node id
            assert(tonumber(info.node:sub(1, 2), 16) & 1 == 1)"#,
        );
        // RFC 9562 appendix A.1: C232AB00-9414-11EC-B3C8-9F6BDECED846 is
        // 2022-02-22 19:22:22 UTC (1645557742).
        let (ts, node): (i64, String) = eval(
            &lua,
            r#"local i = uuid.parse("C232AB00-9414-11EC-B3C8-9F6BDECED846") return i.timestamp, i.node"#,
        );
        assert_eq!(ts, 1_645_557_742);
        assert_eq!(node, "9f6bdeced846");
        // RFC 9562 appendix A.6 (v7): 017F22E2-79B0-7CC3-98C4-DC0C0C07398F.
        let ts: i64 = eval(
            &lua,
            r#"return uuid.parse("017F22E2-79B0-7CC3-98C4-DC0C0C07398F").timestamp"#,
        );
        assert_eq!(ts, 1_645_557_742);
        // A v1 of tick 0 is 1582-10-15, before the Unix epoch.
        let ts: i64 = eval(
            &lua,
            r#"return uuid.parse("00000000-0000-1000-8000-000000000000").timestamp"#,
        );
        assert_eq!(ts, -12_219_292_800);
    }

    #[test]
    fn validate_version_variant_parse_and_format() {
        let lua = lua();
        check(
            &lua,
            r#"local id = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
            assert(uuid.validate(id) == true)
            assert(uuid.validate("6BA7B8109DAD11D180B400C04FD430C8") == true)
            assert(uuid.validate("urn:uuid:" .. id) == true)
            assert(uuid.validate("{" .. id .. "}") == true)
            assert(uuid.validate("6ba7b810-9dad-11d1-80b4-00c04fd430c") == false)
            assert(uuid.validate("6ba7b810-9dad-11d1-80b4-00c04fd430cg") == false)
            assert(uuid.validate(id .. " ") == false)
            assert(uuid.validate("") == false)
            assert(uuid.validate(42) == false and uuid.validate(nil) == false and uuid.validate({}) == false)
            assert(uuid.version(id) == 1 and uuid.variant(id) == "RFC4122")
            assert(uuid.version("00000000-0000-0000-0000-000000000000") == 0)
            assert(uuid.variant("00000000-0000-0000-0000-000000000000") == "NCS")
            assert(uuid.variant("00000000-0000-4000-c000-000000000000") == "Microsoft")
            assert(uuid.variant("00000000-0000-4000-e000-000000000000") == "Future")
            assert(uuid.variant("ffffffff-ffff-ffff-ffff-ffffffffffff") == "Future")
            assert(uuid.version("ffffffff-ffff-ffff-ffff-ffffffffffff") == 15)
            local info = uuid.parse("5DF41881-3AED-3515-88A7-2F4A814CF09E")
            assert(info.version == 3 and info.variant == "RFC4122")
            assert(info.timestamp == nil and info.node == nil)
            local up = "{6BA7B810-9DAD-11D1-80B4-00C04FD430C8}"
            assert(uuid.format(up) == id)
            assert(uuid.format(up, "standard") == id)
            assert(uuid.format(up, "simple") == "6ba7b8109dad11d180b400c04fd430c8")
            assert(uuid.format(up, "urn") == "urn:uuid:" .. id)"#,
        );
    }

    #[test]
    fn bad_arguments_are_invalid() {
        let lua = lua();
        for f in ["version", "variant", "parse", "format"] {
            assert_invalid(
                &lua,
                &format!("return uuid.{f}(42)"),
                &format!("uuid.{f}: uuid must be a string (got number)"),
            );
            assert_invalid(
                &lua,
                &format!("return uuid.{f}('not-a-uuid')"),
                &format!("uuid.{f}: uuid is not a valid UUID"),
            );
        }
        assert_invalid(
            &lua,
            &format!("return uuid.format({NS_DNS:?}, 'braces')"),
            "uuid.format: unsupported format \"braces\"",
        );
        assert_invalid(
            &lua,
            &format!("return uuid.format({NS_DNS:?}, 1)"),
            "uuid.format: format must be a string (got number)",
        );
        for f in ["v3", "v5"] {
            assert_invalid(
                &lua,
                &format!("return uuid.{f}(nil, 'x')"),
                &format!("uuid.{f}: namespace must be a string"),
            );
            assert_invalid(
                &lua,
                &format!("return uuid.{f}({NS_DNS:?})"),
                &format!("uuid.{f}: name must be a string"),
            );
            assert_invalid(
                &lua,
                &format!("return uuid.{f}('dns', 'x')"),
                &format!("uuid.{f}: namespace is not a valid UUID"),
            );
        }
    }
}

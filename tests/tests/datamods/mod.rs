//! The small data modules of `modules.md` §6 (`base64`, `hash`, `uuid`,
//! `crypto`) through real Lua processes: every call, and each documented
//! error kind as the `errors` module sees it.

use warren_core::{ErrorKind, Value};
use warren_tests::*;

/// Runs `source` as `t:main` allowing only `modules`; it must exit normally.
fn run_with(modules: &[&str], source: &str) -> Value {
    match App::new()
        .entry_with("t:main", source, modules)
        .run("t:main", vec![])
    {
        Ok(v) => v,
        Err(e) => panic!("script failed: {e}"),
    }
}

/// Lua helpers prepended to every script: `invalid(f, ...)` calls `f` and
/// asserts it returns `nil, err` with `err` an INVALID error object whose
/// message starts with the function's name; it returns the message.
const PRELUDE: &str = r##"
local function invalid(name, f, ...)
    local n = select("#", f(...))
    local v, err = f(...)
    assert(n == 2, name .. ": a failure returns two values, got " .. n)
    assert(v == nil, name .. ": expected nil, got " .. tostring(v))
    assert(errors.is(err, errors.INVALID), name .. ": expected INVALID, got " .. tostring(err))
    assert(err:kind() == "Invalid" and err:retryable() == false, name)
    local msg = err:message()
    assert(msg:sub(1, #name + 1) == name .. ":", name .. ": message " .. msg)
    return msg
end
"##;

#[test]
fn base64_encodes_and_decodes_strictly() {
    let source = format!(
        r#"{PRELUDE}
local base64 = require("base64")
return function()
    local vectors = {{ [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
        fooba = "Zm9vYmE=", foobar = "Zm9vYmFy" }}
    for plain, enc in pairs(vectors) do
        assert(base64.encode(plain) == enc, plain)
        local back, err = base64.decode(enc)
        assert(back == plain and err == nil, enc)
    end
    local bin = "\0\1\2\255\254"
    assert(base64.decode(base64.encode(bin)) == bin)
    for _, bad in ipairs({{ "Zg", "Zm9v\n", "-_-_", "Zh==", "Zg===", "!!!!" }}) do
        local msg = invalid("base64.decode", base64.decode, bad)
        assert(msg:find("invalid base64", 1, true), msg)
    end
    invalid("base64.encode", base64.encode, 42)
    invalid("base64.encode", base64.encode)
    invalid("base64.decode", base64.decode, {{}})
    return base64.encode("Hello, World!")
end"#
    );
    assert_eq!(run_with(&["base64"], &source), s("SGVsbG8sIFdvcmxkIQ=="));
}

#[test]
fn hash_digests_hmacs_and_fnv() {
    let source = format!(
        r#"{PRELUDE}
local hash = require("hash")
return function()
    assert(hash.md5("abc") == "900150983cd24fb0d6963f7d28e17f72")
    assert(hash.sha1("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d")
    assert(hash.sha256("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert(hash.sha512("abc"):sub(1, 16) == "ddaf35a193617aba")
    for _, f in ipairs({{ "md5", "sha1", "sha256", "sha512" }}) do
        local hex, raw = hash[f]("data"), hash[f]("data", true)
        assert(#raw * 2 == #hex, f)
        assert(raw:gsub(".", function(c) return string.format("%02x", c:byte()) end) == hex, f)
        local mac = hash["hmac_" .. f]("message", "secret")
        assert(mac:match("^%x+$") and #mac == #hex, f)
        assert(#hash["hmac_" .. f]("message", "secret", true) == #raw, f)
        invalid("hash." .. f, hash[f], 42)
        invalid("hash." .. f, hash[f], "x", "yes")
        invalid("hash.hmac_" .. f, hash["hmac_" .. f], "x")
        invalid("hash.hmac_" .. f, hash["hmac_" .. f], nil, "k")
    end
    -- RFC 4231 test case 2: data first, then the secret.
    assert(hash.hmac_sha256("what do ya want for nothing?", "Jefe")
        == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    assert(hash.hmac_md5("what do ya want for nothing?", "Jefe") == "750c783e6ab0b503eaa86e310a5db738")
    assert(hash.fnv32("foobar") == 0x31f0b262)
    local n = hash.fnv64("a")
    assert(math.type(n) == "integer" and n < 0 and n == 0xaf63bd4c8601b7be, tostring(n))
    assert(hash.fnv64("foobar") == 0x340d8765a4dda9c2)
    invalid("hash.fnv32", hash.fnv32, {{}})
    invalid("hash.fnv64", hash.fnv64)
    return hash.sha256("abc")
end"#
    );
    assert_eq!(
        run_with(&["hash"], &source),
        s("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
}

#[test]
fn uuid_generates_inspects_and_formats() {
    let source = format!(
        r#"{PRELUDE}
local uuid = require("uuid")
return function()
    local pattern = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-(%x)%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
    for version, f in pairs({{ [1] = uuid.v1, [4] = uuid.v4, [7] = uuid.v7 }}) do
        local id, err = f()
        assert(err == nil and id:match(pattern) == tostring(version), tostring(id))
        assert(uuid.validate(id) and uuid.version(id) == version and uuid.variant(id) == "RFC4122")
    end
    local prev = uuid.v7()
    for _ = 1, 500 do
        local id = uuid.v7()
        assert(id > prev, "v7 sorts by creation time")
        prev = id
    end
    local now = os.time()
    local v7 = uuid.parse(prev)
    assert(v7.version == 7 and v7.variant == "RFC4122" and math.abs(v7.timestamp - now) <= 2)
    local v1 = uuid.parse(uuid.v1())
    assert(v1.version == 1 and math.abs(v1.timestamp - now) <= 2 and #v1.node == 12)
    local dns = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    assert(uuid.v3(dns, "www.example.com") == "5df41881-3aed-3515-88a7-2f4a814cf09e")
    assert(uuid.v5(dns, "www.example.com") == "2ed6657d-e927-568b-95e1-2665a8aea6a2")
    local v4 = uuid.parse(uuid.v4())
    assert(v4.version == 4 and v4.timestamp == nil and v4.node == nil)
    assert(uuid.validate("nope") == false and uuid.validate(7) == false)
    assert(uuid.variant("00000000-0000-0000-0000-000000000000") == "NCS")
    assert(uuid.variant("00000000-0000-0000-c000-000000000000") == "Microsoft")
    assert(uuid.format("6BA7B810-9DAD-11D1-80B4-00C04FD430C8") == dns)
    assert(uuid.format(dns, "simple") == "6ba7b8109dad11d180b400c04fd430c8")
    assert(uuid.format(dns, "standard") == dns)
    for _, f in ipairs({{ "version", "variant", "parse", "format" }}) do
        invalid("uuid." .. f, uuid[f], 42)
        local msg = invalid("uuid." .. f, uuid[f], "6ba7b810")
        assert(msg:find("not a valid UUID", 1, true), msg)
    end
    invalid("uuid.format", uuid.format, dns, "braces")
    invalid("uuid.v3", uuid.v3, "not-a-uuid", "x")
    invalid("uuid.v5", uuid.v5, dns)
    return uuid.format(dns, "urn")
end"#
    );
    assert_eq!(
        run_with(&["uuid"], &source),
        s("urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8")
    );
}

#[test]
fn crypto_random_hmac_compare_and_pbkdf2() {
    let source = format!(
        r#"{PRELUDE}
local crypto = require("crypto")
return function()
    local b = crypto.random.bytes(32)
    assert(#b == 32 and b ~= crypto.random.bytes(32))
    assert(#crypto.random.bytes(1048576) == 1048576)
    local msg = invalid("crypto.random.bytes", crypto.random.bytes, 0)
    assert(msg:find("between 1 and 1048576", 1, true), msg)
    invalid("crypto.random.bytes", crypto.random.bytes, 1048577)
    invalid("crypto.random.bytes", crypto.random.bytes, "32")
    local s = crypto.random.string(64)
    assert(#s == 64 and s:match("^[A-Za-z0-9]+$"))
    assert(crypto.random.string(16, "01"):match("^[01]+$"))
    invalid("crypto.random.string", crypto.random.string, 16, "")
    invalid("crypto.random.string", crypto.random.string, 16, "\xff")
    invalid("crypto.random.string", crypto.random.string, -1)
    local id = crypto.random.uuid()
    assert(id:match("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$"), id)
    assert(crypto.hmac.sha256(string.rep("\x0b", 20), "Hi There")
        == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    assert(#crypto.hmac.sha512("key", "data") == 128)
    invalid("crypto.hmac.sha256", crypto.hmac.sha256, "", "data")
    invalid("crypto.hmac.sha512", crypto.hmac.sha512, "key", 5)
    assert(crypto.constant_time_compare("secret", "secret") == true)
    assert(crypto.constant_time_compare("secret", "secreT") == false)
    assert(crypto.constant_time_compare("secret", "secrets") == false)
    invalid("crypto.constant_time_compare", crypto.constant_time_compare, "a")
    local key = crypto.pbkdf2("password", "salt", 4096, 32)
    local hex = key:gsub(".", function(c) return string.format("%02x", c:byte()) end)
    assert(hex == "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a", hex)
    assert(#crypto.pbkdf2("password", "salt", 1, 64, "sha512") == 64)
    invalid("crypto.pbkdf2", crypto.pbkdf2, "password", "salt", 0, 32)
    invalid("crypto.pbkdf2", crypto.pbkdf2, "password", "salt", 10000001, 32)
    invalid("crypto.pbkdf2", crypto.pbkdf2, "password", "salt", 1, 1025)
    invalid("crypto.pbkdf2", crypto.pbkdf2, "password", "salt", 1, 32, "md5")
    invalid("crypto.pbkdf2", crypto.pbkdf2, "", "salt", 1, 32)
    msg = invalid("crypto.pbkdf2", crypto.pbkdf2, "password", "salt", 10000000, 32)
    assert(msg:find("over the 500000", 1, true), msg)
    return "ok"
end"#
    );
    assert_eq!(run_with(&["crypto"], &source), s("ok"));
}

#[test]
fn a_data_module_not_listed_is_permission_denied() {
    let e = App::new()
        .entry_with(
            "t:main",
            r#"return function() local hash = require("hash") end"#,
            &["base64", "uuid", "crypto"],
        )
        .run("t:main", vec![])
        .expect_err("hash is not allowed");
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    assert!(e.message.contains("\"hash\""), "{}", e.message);
}

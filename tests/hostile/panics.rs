//! Guest input at the places where host code could panic: odd numbers
//! (NaN, infinities, -0, 2^63, the integer extremes), strings that are not
//! UTF-8, hold NUL, are empty or are cut mid-character, enormous nesting
//! and enormous counts. A panic on a worker would end every process on it,
//! so each case asserts a clean error (or value) of that one call, and the
//! harness checks the neighbour kept ticking and the runtime still starts
//! processes. The audit found no panic these inputs reach; the cases below
//! pin the places that looked most likely to have one.

use crate::harness::{lua, s, wasm};

/// Runs `body` with `check(name, ok, want)` and `fails(name, f, ...)`
/// (asserts `f(...)` raises or answers `nil, err`) in scope, and
/// asserts it returned "ok".
fn run(modules: &str, body: &str) {
    let source = format!(
        r#"{modules}
local function fails(name, f, ...)
    local ok, v, err = pcall(f, ...)
    assert(not ok or (v == nil and err ~= nil) or v == false, name .. ": no error")
    return ok and (type(err) == "table" and err:message() or tostring(err)) or tostring(v)
end
return function()
{body}
    return "ok"
end"#
    );
    let out = lua(&source, Vec::new());
    assert_eq!(out.value(), "ok");
    out.assert_neighbour_ticks();
}

#[test]
fn odd_numbers_as_durations_are_refused_or_clamped() {
    run(
        r#"local time = require("time")"#,
        r#"
    local MAXI, MINI = math.maxinteger, math.mininteger
    -- Not an integer number of nanoseconds: raised, with the value.
    for _, d in ipairs({ 0 / 0, math.huge, -math.huge, 0x1p63, -0x1p64 }) do
        local msg = fails("after " .. tostring(d), time.after, d)
        assert(msg:find("invalid duration", 1, true), msg)
    end
    -- Zero, -0 and negatives are INVALID values, not panics.
    for _, d in ipairs({ 0, -0.0, -1, MINI }) do
        local ch, err = time.after(d)
        assert(ch == nil and err:kind() == "Invalid", tostring(d))
    end
    -- The longest timers (~292 years) arm, reset and stop.
    assert(time.after(MAXI), "after maxinteger")
    assert(time.after(0x1p62), "after 2^62 as a float")
    local t = assert(time.timer(MAXI))
    t:reset(MAXI)
    t:stop()
    local tk = assert(time.ticker(1))
    tk:stop()
    -- A sleep of a negative duration returns at once.
    time.sleep(MINI)
    time.sleep(-0.0)"#,
    );
}

#[test]
fn duration_text_at_the_edges_of_i64_and_cut_mid_character() {
    run(
        r#"local time = require("time")"#,
        r#"
    local good = {
        ["9223372036854775807ns"] = "2562047h47m16.854775807s",
        ["-9223372036854775808ns"] = "-2562047h47m16.854775808s",
        ["-2562047h47m16.854775808s"] = "-2562047h47m16.854775808s",
        ["-0"] = "0s", ["+0"] = "0s",
        ["1.99999999999999999999999999h"] = "2h0m0s",
        ["0.000000000000000000001ns"] = "0s",
        ["1\xc2\xb5s"] = "1µs", ["1\xce\xbcs"] = "1µs",
    }
    for text, want in pairs(good) do
        local d, err = time.parse_duration(text)
        assert(d, text .. ": " .. tostring(err))
        assert(tostring(d) == want, text .. " = " .. tostring(d))
    end
    local bad = { "9223372036854775808ns", "2562047h47m16.854775808s", "1\xce", "1\xc2",
        "\xc2\xb5s", ".", "1.", "-", "+", "", ".5.5s", "1e9s", "1\0s", "\xff",
        "18446744073709551616h", string.rep("9", 256), string.rep("0s", 128) .. "x" }
    for _, text in ipairs(bad) do
        local d, err = time.parse_duration(text)
        assert(d == nil and err:kind() == "Invalid", text)
    end
    local _, long = time.parse_duration(string.rep("1s", 1000))
    assert(long:message():find("longer than 256", 1, true), long:message())
    -- As a timeout argument, the same text raises with the reason.
    local msg = fails("after text", time.after, "1\xce")
    assert(msg:find("unknown unit", 1, true), msg)"#,
    );
}

#[test]
fn times_format_at_the_integer_extremes_and_dates_past_them_are_errors() {
    run(
        r#"local time = require("time")"#,
        r#"
    local MAXI, MINI = math.maxinteger, math.mininteger
    local all = "Monday January 2 2006 15:04:05.999999999 PM MST -07:00 Z07:00 002 __2 _2 .000"
    local low = time.unix(0, MINI):format(all)
    assert(low == "Tuesday September 21 1677 00:12:43.145224192 AM UTC +00:00 Z 264 264 21 .145", low)
    local high = time.unix(0, MAXI):format("Mon Jan 06 3 4 5 pm -0700 Z0700 ,999")
    assert(high == "Fri Apr 62 11 47 16 pm +0000 Z ,854", high)
    -- sec * 10^9 would wrap in Lua's integers: refused, never a panic.
    assert(not pcall(time.unix, MAXI, MAXI), "wrapped")
    -- A layout that is all elements, cut mid-character or full of NUL.
    assert(#time.unix(0, MINI):format(string.rep("2006.000000000", 70)) > 0, "long layout")
    assert(time.unix(0, 0):format("\xe2\x82\xac2006") == "\xe2\x82\xac1970", "UTF-8 layout")
    -- A layout cut mid-character, or with bytes that are not UTF-8,
    -- formats: its bad bytes one U+FFFD each.
    assert(time.unix(0, 0):format("\xe2\x82\xac2006\xe2") == "\u{20AC}1970\u{FFFD}", "cut layout")
    assert(time.unix(0, 0):format("\xff") == "\u{FFFD}", "bad layout")
    assert(time.unix(0, 0):format("\0") == "\0", "NUL layout")
    assert(time.unix(0, 0):format("") == "", "empty layout")
    for _, args in ipairs({
        { MAXI, MAXI, MAXI, MAXI, MAXI, MAXI, MAXI },
        { MINI, MINI, MINI, MINI, MINI, MINI, MINI },
        { MAXI, MINI, MAXI, MINI, MAXI, MINI, MAXI },
        { 0, MINI, 0, 0, 0, 0, 0 },
        { 2262, 4, 11, 23, 47, 16, 854775808 },
        { 1677, 9, 21, 0, 12, 43, 145224191 },
    }) do
        local msg = fails("date", time.date, table.unpack(args))
        assert(msg:find("outside the range", 1, true), msg)
    end
    local msg = fails("date zone", time.date, 2262, 4, 11, 23, 47, 16, 854775807,
        time.fixed_zone("west", -86400))
    assert(msg:find("outside the range", 1, true), msg)
    -- The last representable instant itself is a value.
    assert(time.date(2262, 4, 11, 23, 47, 16, 854775807):unix_nano() == MAXI, "max date")
    assert(time.date(1677, 9, 21, 0, 12, 43, 145224192):unix_nano() == MINI, "min date")
    -- Go's carries: month 0, day 0, hour -1.
    assert(time.date(2024, 0, 0, -1, 0, 0, 0):format("2006-01-02 15") == "2023-11-29 23", "carry")
    for _, off in ipairs({ 86401, -86401, 0.5, MINI }) do
        fails("zone " .. tostring(off), time.fixed_zone, "x", off)
    end"#,
    );
}

#[test]
fn time_parse_with_cut_nul_empty_and_overlong_values() {
    run(
        r#"local time = require("time")"#,
        r#"
    local cases = {
        { "2006-01-02", "2024-0\xe2\x82" }, { "January", "\xff" }, { "\xe2\x82\xac2006", "\xe2\x822024" },
        { "2006 05.000000000", "2024 01." .. string.rep("0", 30) },
        { "05,999999999", "01," .. string.rep("9", 40) },
        { "Z07:00:00", "+99:99:99" }, { "-07", "-" }, { "-0700", "+2400" },
        { "2006 002", "2024 999" }, { "2006 __2", "2023   0" }, { "2006 002", "2024 366x" },
        { "3PM", "99PM" }, { "15", "24" }, { "2006", "-999" }, { "06", "9" },
        { "MST", "ABCDEFGHIJ" }, { "Mon", "\xe2" }, { "_2", "\0" }, { "", "" },
        { "2006", string.rep("2", 1000) }, { string.rep("2006", 300), "2024" },
        { ".000", "." }, { "05.9", "01.\xe2\x82" }, { "2006-01-02 15:04:05", "2024-02-30 00:00:00" },
    }
    for _, c in ipairs(cases) do
        local t, err = time.parse(c[1], c[2])
        assert(t == nil and err:kind() == "Invalid", c[1] .. " / " .. c[2])
        assert(#err:message() > 0, "empty message")
    end
    -- NUL inside matching text is only a byte.
    local t = assert(time.parse("2006\0", "2024\0"))
    assert(t:format("2006") == "2024", "NUL")
    assert(time.parse("2006", "2024", time.fixed_zone("east", 86400)):format("2006-01-02") == "2023-12-31", "zone")"#,
    );
}

#[test]
fn json_with_enormous_nesting_big_numbers_and_odd_strings() {
    run(
        r#"local json = require("json")"#,
        r#"
    for _, text in ipairs({
        string.rep("[", 200000), string.rep("[", 100000) .. string.rep("]", 100000),
        string.rep('{"a":', 5000) .. "1" .. string.rep("}", 5000),
        "[18446744073709551616e99999]", "1e400", "-1e400", '"\\ud800"', '"\\u12"',
        "\xff", "\xe2\x82", "", "\0", "[1,]", "nan", "Infinity", '"' .. string.rep("\\", 101) .. '"',
    }) do
        local v, err = json.decode(text)
        assert(v == nil and err:kind() == "Invalid", text:sub(1, 20))
    end
    assert(json.decode("18446744073709551615") == 18446744073709551615.0, "u64 as a float")
    assert(math.type(json.decode("-9223372036854775808")) == "integer", "i64 min")
    assert(json.decode("-0") == 0, "-0")
    assert(json.decode('"a\\u0000b"') == "a\0b", "NUL escape")
    -- Encoding: NaN and infinities refused with the path; odd keys written.
    for _, v in ipairs({ { 0 / 0 }, { x = math.huge }, { { -math.huge } } }) do
        local text, err = json.encode(v)
        assert(text == nil and err:message():find("value", 1, true), "non-finite")
    end
    local text = assert(json.encode({ [math.huge] = 1, [math.mininteger] = 2, [-0.0] = 3 }))
    assert(text:find('"-9223372036854775808":2', 1, true), text)
    local deep = {}
    for _ = 1, 100000 do deep = { deep } end
    local none, err = json.encode(deep)
    assert(none == nil and err:message():find("nesting deeper than", 1, true), "deep encode")"#,
    );
}

#[test]
fn forged_msgpack_payloads_decode_or_fail_cleanly() {
    // A payload's table is the guest's own: replacing its encoded bytes
    // hands the host decoder any bytes the guest likes.
    run(
        "",
        r#"
    local function data(bytes, fmt)
        local p = payload.new(1):transcode(fmt or payload.format.MSGPACK)
        rawset(p, 1, bytes)
        return p:data()
    end
    -- Past rmp's depth limit, truncated, unsupported: nil and an error.
    for _, bytes in ipairs({
        string.rep("\x91", 1025) .. "\xc0", string.rep("\x91", 100000),
        "\xdd\xff\xff\xff\xff", "\xdf\xff\xff\xff\xff", "\xdb\xff\xff\xff\xff", "\xc6\xff\xff\xff\xff",
        "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", "\xd4\x01\x00", "\xc1", "", "\xc0\xc0", "\xa5ab",
    }) do
        local v, err = data(bytes)
        assert(v == nil and err:message():find("MessagePack", 1, true), bytes:sub(1, 8))
    end
    -- Decoded, but deeper than a Lua value is built: nil and an error too
    -- (it was raised, where every other decode failure is answered).
    for _, bytes in ipairs({
        string.rep("\x91", 300) .. "\xc0", string.rep("\x91", 1023) .. "\xc0",
        string.rep("\x81\x01", 1000) .. "\xc0",
    }) do
        local ok, v, err = pcall(data, bytes)
        assert(ok and v == nil and err:message():find("nested too deeply", 1, true), tostring(v or err))
    end
    -- Keys Lua cannot hold are skipped; a float 32 and NUL bytes read.
    local t = data("\x81\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00\x01")
    assert(type(t) == "table" and next(t) == nil, "NaN key")
    assert(next(data("\x81\xc0\x01")) == nil, "nil key")
    assert(data("\xca\x3f\x80\x00\x00") == 1.0, "float 32")
    assert(data("\xa3\0\xff\0") == "\0\xff\0", "bytes")
    -- JSON forged the same way.
    local v, err = data(string.rep("[", 200000), payload.format.JSON)
    assert(v == nil and err:message():find("recursion limit", 1, true), "json")"#,
    );
}

#[test]
fn enormous_nesting_sent_spawned_or_transcoded_stops_at_the_depth_limit() {
    run(
        "",
        r#"
    local deep = {}
    for _ = 1, 100000 do deep = { deep } end
    local ok, err = process.send(process.pid(), "deep", deep)
    assert(not ok and err:message():find("nesting deeper than 64", 1, true), "send")
    local pid, serr = process.spawn("h:neighbour", "test:host", deep)
    assert(not pid and serr:kind() == "Invalid", "spawn")
    local p, terr = payload.new(deep):transcode(payload.format.MSGPACK)
    assert(p == nil and terr:message():find("nesting deeper than", 1, true), "transcode")
    local cok, cerr = process.cancel(process.pid(), deep)
    assert(not cok and cerr:kind() == "Invalid", "cancel")
    -- Exactly at the limit still crosses.
    local edge = 1
    for _ = 1, 63 do edge = { edge } end
    assert(process.send(process.pid(), "edge", edge))
    local got = process.inbox():receive():payload():data()
    for _ = 1, 63 do got = got[1] end
    assert(got == 1, "edge")"#,
    );
}

#[test]
fn odd_pids_names_and_topics_are_errors_of_the_call() {
    run(
        "",
        r#"
    for _, pid in ipairs({ "<65535.281474976710655>", "<0.0>", "<>", "<.>", "<1.>", "<99999.1>",
        "<0.99999999999999999999>", "<-1.-1>", "<0.1\0>", "", "\0", "\xe2\x82", "\xff" }) do
        for name, f in pairs({ send = process.send, monitor = process.monitor, link = process.link,
            cancel = process.cancel, terminate = process.terminate }) do
            fails(name .. " " .. pid, f, pid, "t", 1)
        end
    end
    for _, name in ipairs({ "", "<1.2>", string.rep("\xe2\x82\xac", 100), "\xff\xfe", "\xe2\x82" }) do
        fails("register", process.registry.register, name)
    end
    assert(process.registry.register("\0\1"), "NUL name")
    assert(process.registry.lookup("\0\1") == process.pid(), "lookup NUL")
    assert(process.registry.unregister("\0\1"), "unregister NUL")
    local ok, err = process.send(process.pid(), string.rep("\xe2\x82\xac", 100000), 1)
    assert(not ok and err:message():find("longer than the 1024", 1, true), "long topic")
    assert(process.send(process.pid(), "\0\xff", 1), "NUL topic")
    assert(process.send(process.pid(), "", 1), "empty topic")
    local inbox = process.inbox()
    assert(inbox:receive():topic() == "\0\xff", "NUL topic arrives")
    assert(inbox:receive():topic() == "", "empty topic arrives")
    assert(process.listen("\xe2\x82"), "listen cut")
    fails("spawn", process.spawn, "\xff", "\0")
    fails("spawn empty", process.spawn, "", "")
    -- An unknown entry or host is quoted short and escaped: a 1 MB id
    -- was echoed whole, NUL and ESC bytes raw.
    for _, args in ipairs({ { "a:b\0\27[31m" .. string.rep("x", 1 << 20), "test:host" },
        { "h:judge", "h:\0\27" .. string.rep("y", 1 << 20) } }) do
        local ok, err = pcall(process.spawn, args[1], args[2])
        local msg = ok and "" or tostring(err)
        if ok then local _, e = process.spawn(args[1], args[2]); msg = tostring(e) end
        assert(#msg < 512, "an error of " .. #msg .. " bytes")
        assert(not msg:find("[%z\27]"), "raw control bytes in " .. msg)
        assert(msg:find("...", 1, true), "not marked cut: " .. msg)
    end
    local c = channel.new(math.maxinteger)
    c:send(1)
    assert(c:receive() == 1, "huge channel")
    fails("channel", channel.new, math.mininteger)
    fails("channel float", channel.new, 0 / 0)"#,
    );
}

/// Bytes that are not UTF-8 as a pid or a name: answered by the call,
/// saying so (the host's conversion raised its own error out of it, which
/// named neither the call nor the value), and a time layout cut
/// mid-character formats (its bad bytes one U+FFFD each).
#[test]
fn bytes_that_are_not_utf8_as_a_pid_or_name_are_answered_not_raised() {
    run(
        r#"local time = require("time")"#,
        r#"
    for _, bad in ipairs({ "\xff", "<0.\xff>", "\xe2\x82" }) do
        for name, f in pairs({ monitor = process.monitor, link = process.link, cancel = process.cancel,
            terminate = process.terminate, register = process.registry.register }) do
            local ok, v, err = pcall(f, bad)
            assert(ok, name .. " raised: " .. tostring(v))
            assert(v == nil and err:kind() == errors.INVALID and err:message():find("not valid UTF-8", 1, true),
                name .. ": " .. tostring(err))
        end
        local ok, v, err = pcall(process.send, bad, "t", 1)
        assert(ok and v == nil and err:message():find("UTF-8", 1, true), "send: " .. tostring(v or err))
        ok, v, err = pcall(process.registry.lookup, bad)
        assert(ok and v == nil and err:kind() == errors.NOT_FOUND, "lookup: " .. tostring(v or err))
        ok, v = pcall(process.registry.unregister, bad)
        assert(ok and v == false, "unregister: " .. tostring(v))
    end
    local ok, text = pcall(function() return time.unix(0):format("2006\xe2") end)
    assert(ok and text == "1970\u{FFFD}", "format: " .. tostring(text))"#,
    );
}

#[test]
fn data_modules_with_odd_bytes_lengths_and_counts() {
    run(
        r#"local base64, hash, uuid, crypto = require("base64"), require("hash"), require("uuid"), require("crypto")"#,
        r#"
    local MAXI, MINI = math.maxinteger, math.mininteger
    for _, text in ipairs({ "\xe2\x82", "====", "\0\0\0\0", "a", "ab=c", string.rep("=", 1001) }) do
        fails("base64 " .. text:sub(1, 4), base64.decode, text)
    end
    assert(base64.encode("") == "", "empty")
    assert(base64.decode(base64.encode("\0\xff\xe2")) == "\0\xff\xe2", "round trip")
    for _, name in ipairs({ "md5", "sha1", "sha256", "sha512", "fnv32", "fnv64" }) do
        assert(hash[name]("\0\xff\xe2"), name)
        assert(hash[name](""), name .. " empty")
    end
    for _, n in ipairs({ MAXI, MINI, 0, -1 }) do
        fails("hash.pbkdf2 " .. n, hash.pbkdf2, "p", "s", n, n)
        fails("crypto.pbkdf2 " .. n, crypto.pbkdf2, "p", "s", n, n)
        fails("random.bytes " .. n, crypto.random.bytes, n)
        fails("random.string " .. n, crypto.random.string, n)
    end
    fails("random.bytes nan", crypto.random.bytes, 0 / 0)
    fails("random.string empty charset", crypto.random.string, 4, "")
    fails("random.string non-ASCII", crypto.random.string, 4, "\xe2\x82\xac")
    assert(#crypto.random.string(64, string.rep("ab", 200)) == 64, "wide charset")
    assert(crypto.random.string(3, "\0") == "\0\0\0", "NUL charset")
    fails("hmac empty key", crypto.hmac.sha256, "", "")
    for _, id in ipairs({ "", "0", "\0", string.rep("\xe2\x82\xac", 12), "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz" }) do
        fails("uuid.parse", uuid.parse, id)
        fails("uuid.format", uuid.format, id)
    end
    for _, id in ipairs({ "ffffffff-ffff-1fff-ffff-ffffffffffff", "ffffffff-ffff-7fff-ffff-ffffffffffff",
        "00000000-0000-1000-8000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff" }) do
        assert(uuid.parse(id), id)
    end
    fails("uuid.v3", uuid.v3, "\xff", "\0")
    assert(uuid.v5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", string.rep("\0", 100000)), "v5")"#,
    );
}

/// The `hostile` component sends `hex` (MessagePack) to itself: the
/// result is "<KIND>:0" when the host refused it at the send.
fn component_sends(hex: &str) -> String {
    let out = wasm(vec![s("raw"), s(hex), s("self")]);
    out.assert_neighbour_ticks();
    out.value()
}

#[test]
fn a_component_sending_rmp_depth_limit_nesting_is_refused_at_the_sender() {
    // 1023 levels decode in rmp-serde (its limit is 1024) on the worker's
    // stack, under the component's own frames; the check then refuses them.
    assert_eq!(
        component_sends(&format!("{}c0", "91".repeat(1023))),
        "Invalid:0"
    );
    assert_eq!(
        component_sends(&format!("{}c0", "dc0001".repeat(1023))),
        "Invalid:0"
    );
    assert_eq!(
        component_sends(&format!("{}c0", "8101".repeat(1023))),
        "Invalid:0"
    );
    assert_eq!(component_sends(&"91".repeat(20000)), "Invalid:0");
}

#[test]
fn a_component_sending_enormous_counts_and_lengths_is_refused_at_the_sender() {
    for hex in [
        "ddffffffff",
        "dfffffffff",
        "dbffffffff",
        "c6ffffffff",
        "cfffffffffffffffff",
        "d40100",
        "",
        "c0c0",
    ] {
        assert_eq!(component_sends(hex), "Invalid:0", "{hex}");
    }
    // A NaN float, -0 and the integer extremes are values, not refusals.
    for hex in [
        "cb7ff8000000000000",
        "cb8000000000000000",
        "d38000000000000000",
        "cf7fffffffffffffff",
    ] {
        assert_eq!(component_sends(hex), "ok:1", "{hex}");
    }
}

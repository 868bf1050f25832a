//! `time`, `errors` and `json`, and `require` permissions.

use warren_core::{ErrorKind, Value};
use warren_tests::*;

mod datamods;
mod io;
mod wippy;

#[test]
fn sleep_after_and_now() {
    let v = ok(r#"local time = require("time")
    return function()
        local t0 = time.now()
        time.sleep("15ms")
        local waited = time.now():sub(t0)
        assert(waited:milliseconds() >= 15, tostring(waited))
        local at = time.after(5000000) -- integer nanoseconds
        local fired = at:receive()
        assert(fired:unix_nano() >= t0:unix_nano())
        assert(t0:unix() > 1700000000)
        return true
    end"#);
    assert_eq!(v, Value::Bool(true));
}

#[test]
fn zero_or_negative_durations_are_nil_and_an_error() {
    let v = ok(r#"local time = require("time")
    return function()
        local out = {}
        for _, d in ipairs({ 0, -1, "0s", "-5ms" }) do
            for _, f in ipairs({ time.after, time.timer, time.ticker }) do
                local ch, err = f(d)
                assert(ch == nil and errors.is(err, errors.INVALID), tostring(err))
                out[#out + 1] = err:message():match("^time%.%a+")
            end
        end
        return table.concat(out, ",", 1, 3)
    end"#);
    assert_eq!(v, s("time.after,time.timer,time.ticker"));
}

#[test]
fn wippy_time_helpers() {
    let v = ok(r#"local time = require("time")
    return function()
        local t = time.unix(1703862245, 500000000)
        assert(t:unix() == 1703862245 and t:unix_nano() == 1703862245500000000)
        assert(t:format_rfc3339() == "2023-12-29T15:04:05Z", t:format_rfc3339())
        assert(t:format(time.DATE_ONLY) == "2023-12-29" and t:format(time.TIME_ONLY) == "15:04:05")
        local later = t:add("1h")
        assert(t:before(later) and later:after(t) and t:equal(time.unix(1703862245, 500000000)))
        local d = later:sub(t)
        assert(d:hours() == 1 and d:minutes() == 60 and d:microseconds() == 3600000000)
        assert(time.DECEMBER == 12 and time.SUNDAY == 0)
        local timer = time.timer("1ms")
        assert(timer:response() == timer:channel())
        timer:response():receive()
        local ticker = time.ticker("1ms")
        ticker:response():receive()
        ticker:stop()
        local e = errors.new(errors.TIMEOUT, "Operation timed out")
        return e:kind() .. ": " .. e:message()
    end"#);
    assert_eq!(v, s("Timeout: Operation timed out"));
}

#[test]
fn time_unix_refuses_a_time_outside_int64_nanoseconds_instead_of_wrapping() {
    let v = ok(r#"local time = require("time")
    return function()
        local top = math.maxinteger // 1000000000
        assert(time.unix(top, 854775807):unix_nano() == math.maxinteger)
        assert(time.unix(0, math.maxinteger):unix_nano() == math.maxinteger)
        assert(time.unix(-top - 1, 145224192):unix_nano() == math.mininteger)
        assert(time.unix(0, math.mininteger):unix_nano() == math.mininteger)
        assert(time.unix(-top):unix() == -top)
        assert(time.unix(0, -1):unix_nano() == -1 and time.unix(1, 2500000000):unix() == 3)
        local out = {}
        for _, args in ipairs({ { math.maxinteger }, { math.mininteger }, { top, 854775808 },
                                 { -top - 1 }, { top, math.maxinteger }, { -top - 1, 145224191 } }) do
            local ok, err = pcall(time.unix, args[1], args[2])
            assert(not ok, tostring(args[1]))
            out[#out + 1] = tostring(err):match("outside the years 1677 to 2262") and "refused" or tostring(err)
        end
        return table.concat(out, ",")
    end"#);
    assert_eq!(v, s("refused,refused,refused,refused,refused,refused"));
}

#[test]
fn errors_call_stack_lists_the_frames_of_an_error() {
    let v = ok(
        r#"local function inner() local e = errors.new("deep") return e end
    local function outer() local e = inner() return e end -- no tail calls: frames stay
    return function()
        local stack = errors.call_stack(outer())
        assert(errors.call_stack("not an error") == nil)
        local names = {}
        for _, f in ipairs(stack.frames) do
            assert(type(f.source) == "string" and math.type(f.line) == "integer", "frame fields")
            names[#names + 1] = f.name
        end
        assert(stack.thread == "main")
        local joined = table.concat(names, ",")
        if joined:match("inner.-outer") then return "inner before outer" end
        return joined
    end"#,
    );
    assert_eq!(v, s("inner before outer"));
}

#[test]
fn timer_stop_and_reset() {
    let v = ok(r#"local time = require("time")
    return function()
        local t = time.timer("5ms")
        assert(t:stop() == true)
        local r = channel.select({ t:channel():case_receive(), time.after("30ms"):case_receive() })
        assert(r.channel ~= t:channel(), "a stopped timer does not fire")
        t:reset("1ms")
        t:channel():receive()
        assert(t:stop() == false, "already fired")
        return "ok"
    end"#);
    assert_eq!(v, s("ok"));
}

#[test]
fn ticker_ticks_until_stopped() {
    let v = ok(r#"local time = require("time")
    return function()
        local tk = time.ticker("2ms")
        local ch = tk:channel()
        for _ = 1, 3 do ch:receive() end
        tk:stop()
        return 3
    end"#);
    assert_eq!(v, Value::Int(3));
}

/// A ticker whose tick waits unread arms nothing (it costs nothing while
/// nobody reads); the receive that takes that tick re-arms it, through a
/// plain receive or a select, and a stopped one stays stopped.
#[test]
fn a_ticker_read_late_gives_its_waiting_tick_then_ticks_again() {
    let v = ok(r#"local time = require("time")
    return function()
        local tk = time.ticker("5ms")
        local ch = tk:channel()
        ch:receive()
        time.sleep("50ms") -- ticks come and find the last one unread
        local waiting = channel.select({ ch:case_receive() }, true) -- taken without a wait
        ch:receive() -- a fresh one: the ticker ticks again
        local r = channel.select({ ch:case_receive() })
        assert(r.ok, "select")
        time.sleep("30ms") -- a tick waits again
        tk:stop()
        ch:receive() -- what waited when it stopped
        local after = channel.select({ ch:case_receive() }, true)
        return tostring(waiting.default == nil and waiting.ok) .. " " .. tostring(after.default)
    end"#);
    assert_eq!(v, s("true true"));
}

#[test]
fn a_pending_ticker_does_not_keep_an_ended_process_alive() {
    let v = ok(r#"local time = require("time")
    return function() time.ticker("1ms") return "done" end"#);
    assert_eq!(v, s("done"));
}

#[test]
fn durations_parse_format_and_convert() {
    let v = ok(r#"local time = require("time")
    return function()
        local d = time.parse_duration("1m30s")
        assert(d:seconds() == 90.0 and d:milliseconds() == 90000 and d:nanoseconds() == 90000000000)
        assert(tostring(time.parse_duration("1500ms")) == "1.5s")
        local bad, err = time.parse_duration("3 parsecs")
        assert(bad == nil and errors.is(err, errors.INVALID))
        local t = time.now()
        assert(t:add("1s"):sub(t):seconds() == 1.0)
        assert(t:add(d):sub(t) == d)
        local ok = pcall(time.sleep, "soon")
        assert(not ok, "a malformed duration raises")
        return time.now():format("2006") >= "2026"
    end"#);
    assert_eq!(v, Value::Bool(true));
}

#[test]
fn time_arithmetic_past_the_range_raises_or_saturates_instead_of_wrapping() {
    let v = ok(r#"local time = require("time")
    return function()
        local t = time.now()
        local ok, err = pcall(t.add, t, math.maxinteger)
        assert(not ok and tostring(err):find("out of range"), tostring(err))
        local edge = t:add(math.maxinteger - t:unix_nano())
        assert(edge:unix_nano() == math.maxinteger)
        local epoch = t:add(-t:unix_nano())
        local first = epoch:add(math.mininteger)
        assert(first:unix_nano() == math.mininteger)
        ok, err = pcall(first.add, first, -1)
        assert(not ok and tostring(err):find("out of range"), tostring(err))
        -- Sub saturates at the longest duration, as Go's does.
        assert(edge:sub(first):nanoseconds() == math.maxinteger)
        assert(first:sub(edge):nanoseconds() == math.mininteger)
        assert(t:add("1s"):sub(t):nanoseconds() == 1000000000)
        -- Durations parse exactly, and one past 64 bits is refused.
        assert(time.parse_duration("9223372036854775807ns"):nanoseconds() == math.maxinteger)
        local bad, perr = time.parse_duration("9223372036854775808ns")
        assert(bad == nil and tostring(perr):find("out of range"), tostring(perr))
        return "ok"
    end"#);
    assert_eq!(v, s("ok"));
}

#[test]
fn time_format_uses_go_layouts() {
    let v = ok(r#"local time = require("time")
    return function()
        local t0 = time.now()
        local epoch = t0:add(-t0:unix_nano())
        return epoch:format(time.RFC3339) .. " " .. epoch:add("36h"):format("Mon Jan _2 15:04")
    end"#);
    assert_eq!(v, s("1970-01-01T00:00:00Z Fri Jan  2 12:00"));
}

#[test]
fn errors_new_wrap_is_and_methods() {
    let v = ok(r#"return function()
        local e = errors.new("plain")
        -- Wippy: an error made without a kind has the empty kind, and
        -- retryable nil when not set.
        assert(e:kind() == "" and e:message() == "plain" and e:retryable() == nil)
        local t = errors.new({ message = "db down", kind = errors.UNAVAILABLE, retryable = true, details = { host = "db1" } })
        assert(t:kind() == "Unavailable" and t:retryable() and t:details().host == "db1")
        assert(type(t:stack()) == "string" and t:stack():find("t:main.lua") ~= nil)
        local w = errors.wrap(t, "loading user")
        assert(errors.is(w, errors.UNAVAILABLE) and w:retryable() and w:details().host == "db1")
        assert(w:message() == "db down", "wrap keeps the message: " .. w:message())
        assert(not errors.is(w, errors.NOT_FOUND))
        assert(errors.new({ kind = "Custom", message = "m" }):kind() == "Custom")
        assert(not pcall(errors.new, { kind = 42 }))
        assert(not pcall(errors.new, { kind = string.rep("k", 129) }))
        local kinds = { errors.NOT_FOUND, errors.ALREADY_EXISTS, errors.INVALID, errors.PERMISSION_DENIED,
            errors.UNAVAILABLE, errors.INTERNAL, errors.CANCELED, errors.CONFLICT, errors.TIMEOUT,
            errors.RATE_LIMITED, errors.UNKNOWN }
        assert(#kinds == 11)
        return tostring(errors.wrap(w, "request"))
    end"#);
    assert_eq!(v, s("request: loading user: db down"));
}

#[test]
fn error_objects_cross_process_boundaries_as_data() {
    let e = fails(
        r#"return function()
        error(errors.new({ message = "raised object", kind = errors.PERMISSION_DENIED }))
    end"#,
    );
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    assert_eq!(e.message, "raised object");
}

#[test]
fn json_encode_and_decode() {
    let v = ok(r#"local json = require("json")
    return function()
        local text = json.encode({ list = { 1, 2.5, "x" }, flag = true })
        local back, err = json.decode(text)
        assert(err == nil and back.list[2] == 2.5 and back.flag == true and back.list[3] == "x")
        local bad, err2 = json.decode("{not json")
        assert(bad == nil and errors.is(err2, errors.INVALID))
        local nope, err3 = json.encode({ f = print })
        assert(nope == nil and err3:message():find("function") ~= nil)
        return json.encode({ 1, 2, 3 })
    end"#);
    assert_eq!(v, s("[1,2,3]"));
}

#[test]
fn json_decode_holds_its_tree_against_the_host_total() {
    // The tree a decode builds (about 32 bytes of host memory per byte of
    // text) was counted by no limit; it is held against the host's
    // memory_total while it exists, and refused without room for it.
    let limits = warren_core::HostLimits {
        memory_total: 12 << 20,
        ..warren_core::HostLimits::default()
    };
    let v = App::new()
        .limits(limits)
        .entry(
            "t:main",
            r#"local json = require("json")
            return function()
                local small = assert(json.decode("[" .. string.rep("[],", 1000) .. "[]]"))
                local big, err = json.decode("[" .. string.rep("[],", 150000) .. "[]]")
                assert(big == nil, "decoded past the host's room")
                return #small .. " " .. err:kind() .. " " .. err:message()
            end"#,
        )
        .run("t:main", vec![])
        .expect("main ran");
    let text = v.as_str().unwrap_or_default().to_owned();
    assert!(
        text.starts_with("1001 Invalid JSON text of 450004 bytes needs about 14400128 bytes"),
        "{text}"
    );
    assert!(text.contains("memory_total (12582912 bytes)"), "{text}");
}

#[test]
fn require_of_a_module_the_entry_does_not_allow_is_permission_denied() {
    let e = App::new()
        .entry_with(
            "t:main",
            r#"return function() local json = require("json") end"#,
            &["time"],
        )
        .run("t:main", vec![])
        .expect_err("json is not allowed");
    assert_eq!(e.kind, ErrorKind::PermissionDenied);
    assert!(
        e.message.contains("\"json\"") && e.message.contains("t:main"),
        "{}",
        e.message
    );
}

/// Entries of one VM that list the same modules share the kernel's set
/// of them (host.rs `module_set`); each entry still gets exactly its own
/// list: a child whose list lacks `json` is refused it even after entries
/// that list it ran in the same VM, and the other way round.
#[test]
fn each_entry_requires_exactly_the_modules_it_lists_whatever_ran_before_it() {
    const PROBE: &str = r#"return function()
        local got = {}
        for _, name in ipairs({ "json", "time" }) do
            got[#got + 1] = name .. "=" .. tostring((pcall(require, name)))
        end
        return table.concat(got, ",")
    end"#;
    let v = App::new()
        .entry_with("t:both", PROBE, &["json", "time"])
        .entry_with("t:both_again", PROBE, &["json", "time"])
        .entry_with("t:time_only", PROBE, &["time"])
        .entry_with("t:json_only", PROBE, &["json"])
        .entry_with(
            "t:main",
            r#"return function()
            local out = {}
            for _, id in ipairs({ "t:both", "t:time_only", "t:both_again", "t:json_only", "t:time_only" }) do
                local pid = process.spawn_monitored(id, "test:host")
                local ev = process.events():receive()
                assert(ev.from == pid and ev.result and ev.result.value, id)
                out[#out + 1] = ev.result.value
            end
            return table.concat(out, ";")
        end"#,
            &["time"],
        )
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(
        v,
        s(
            "json=true,time=true;json=false,time=true;json=true,time=true;json=true,time=false;json=false,time=true"
        )
    );
}

#[test]
fn require_is_catchable_and_unknown_modules_are_not_found() {
    let v = App::new()
        .entry_with(
            "t:main",
            r#"return function()
            local ok, err = pcall(require, "json")
            assert(not ok and errors.is(err, errors.PERMISSION_DENIED))
            local ok2, err2 = pcall(require, "socket")
            assert(not ok2 and errors.is(err2, errors.NOT_FOUND))
            return require("time") ~= nil
        end"#,
            &["time"],
        )
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, Value::Bool(true));
}

//! Values a guest hands the host to convert (classes 5 and 8 of the
//! security model): Lua tables that lie about their length or share one
//! sub-table exponentially often, and MessagePack from components that no
//! Lua table can hold. Every conversion checks permission first, stops at
//! its byte budget, never pre-allocates from a guest's number, and fails
//! as a clean error of that one call; what a component sends that Lua
//! cannot hold is refused at the sender, and an exit value Lua cannot hold
//! still arrives, as an `INVALID` error.

use warren_core::{ErrorKind, Value};

use crate::harness::{app, attack, lua, s};

/// Builds `lying`: 45 keys whose border (`#t`, `rawlen`) is 2^44, and
/// `dag`: 40 levels, each holding the next twice (2^40 paths, 41 tables).
const BUILD: &str = r#"
local function lying()
    local t = {}
    for i = 44, 0, -1 do t[1 << i] = i end
    assert(rawlen(t) == 1 << 44, "the border is " .. rawlen(t))
    return t
end
local function dag()
    local t = {}
    for _ = 1, 40 do t = { t, t } end
    return t
end
"#;

/// Runs `body` (a function body using `lying()` and `dag()`) as the attack.
fn with_values(body: &str) -> crate::harness::Outcome {
    lua(
        &format!("{BUILD}\nreturn function()\n{body}\nend"),
        Vec::new(),
    )
}

#[test]
fn a_lying_length_crosses_as_the_45_keys_it_has() {
    let out = with_values(
        r#"local t = lying()
        assert(process.send(process.pid(), "t", t))
        local got = process.inbox():receive():payload():data()
        local n = 0
        for _ in pairs(got) do n = n + 1 end
        assert(n == 45, "the copy has " .. n .. " keys")
        assert(#require("json").encode(t) > 0, "json")
        return t"#,
    );
    match &out.exit {
        Ok(Value::Map(entries)) => assert_eq!(entries.len(), 45),
        other => panic!("expected the 45 keys back: {other:?}"),
    }
    out.assert_neighbour_ticks();
}

#[test]
fn a_lying_length_as_spawn_argument_and_cancel_reason() {
    let out = with_values(
        r#"local t = lying()
        local pid = assert(process.spawn("h:neighbour", "test:host", t))
        assert(process.cancel(pid, t))
        assert(process.terminate(pid))
        return "fine""#,
    );
    assert_eq!(out.value(), "fine");
    out.assert_neighbour_ticks();
}

#[test]
fn a_dag_message_stops_at_max_message_bytes() {
    let out = with_values(
        r#"local ok, err = process.send(process.pid(), "t", dag())
        return err:kind() .. ": " .. err:message()"#,
    );
    let v = out.value();
    assert!(v.starts_with("Invalid: "), "{v}");
    assert!(v.contains("max_message_bytes (65536)"), "{v}");
    out.assert_progress_during(0);
}

#[test]
fn a_dag_to_a_component_stops_at_max_message_bytes() {
    // A component's payload goes through the host's converter, not the
    // kernel's table-to-table copy.
    let app = app().component("h:echo", "echo").entry(
        "h:attacker",
        &format!(
            "{BUILD}\n{}",
            r#"return function()
                local echo = assert(process.spawn("h:echo", "test:host"))
                local ok, err = process.send(echo, "t", { dag(), dag() })
                process.terminate(echo)
                return err:kind() .. ": " .. err:message()
            end"#
        ),
    );
    let out = attack(app, "h:attacker", Vec::new());
    let v = out.value();
    assert!(v.starts_with("Invalid: message payloads of"), "{v}");
    assert!(v.contains("max_message_bytes (65536)"), "{v}");
    out.assert_progress_during(0);
}

#[test]
fn a_dag_spawn_argument_exit_value_and_json_fail_cleanly() {
    let out = with_values(
        r#"local d = dag()
        local pid, err = process.spawn("h:neighbour", "test:host", d)
        assert(not pid and err:kind() == "Invalid", "spawn")
        assert(err:message():find("spawn arguments of", 1, true), err:message())
        local json = require("json")
        local text, jerr = json.encode(d)
        assert(text == nil and jerr:kind() == "Invalid", "json")
        local ok, cerr = process.cancel(process.pid(), d)
        assert(not ok and cerr:kind() == "Invalid", "cancel")
        return d"#,
    );
    // The exit value itself is the last conversion: it exceeds the limit too.
    out.assert_ended(ErrorKind::Invalid, "max_message_bytes");
}

#[test]
fn permission_is_checked_before_a_dag_is_copied() {
    let out = with_values(
        r#"local pid, err = process.spawn("h:neighbour", "test:other", dag())
        return err:kind()"#,
    );
    assert_eq!(out.value(), "PermissionDenied");
    out.assert_neighbour_ticks();
}

#[test]
fn extreme_numbers_and_infinite_keys_round_trip_through_a_component() {
    let app = app().component("h:echo", "echo").entry(
        "h:attacker",
        r#"return function()
            local echo = assert(process.spawn("h:echo", "test:host"))
            local v = { [math.huge] = -math.huge, [math.mininteger] = math.maxinteger,
                n = 0 / 0, list = { 1, 2.5, "x" } }
            assert(process.send(echo, "echo", v))
            local back = process.inbox():receive():payload():data()
            process.terminate(echo)
            assert(back[math.huge] == -math.huge, "inf key")
            assert(back[math.mininteger] == math.maxinteger, "integer extremes")
            assert(back.n ~= back.n, "NaN value")
            assert(back.list[2] == 2.5 and math.type(back.list[1]) == "integer", "list")
            return "same"
        end"#,
    );
    let out = attack(app, "h:attacker", Vec::new());
    assert_eq!(out.value(), "same");
}

/// A Lua process that has the hostile component send it `shape`, then
/// checks its mailbox still works: returns the component's result.
const RECEIVER: &str = r#"local time = require("time")
return function(shape)
    local me = process.pid()
    local results = {}
    for _ = 1, 150 do -- past mailbox_limit (100): nothing may be counted
        local r = process.exec("h:hostile", "test:host", "unholdable", shape, me)
        results[r] = true
    end
    assert(process.send(me, "ok", "still reachable"))
    local r = channel.select({ process.inbox():case_receive(), time.after("5s"):case_receive() })
    assert(r.value and r.value:topic() == "ok", "a refused payload reached the inbox")
    local out = {}
    for k in pairs(results) do out[#out + 1] = k end
    return table.concat(out, ",")
end"#;

fn refused_at_the_sender(shape: &str) {
    let app = app()
        .component("h:hostile", "hostile")
        .entry("h:attacker", RECEIVER);
    let out = attack(app, "h:attacker", vec![s(shape)]);
    assert_eq!(out.value(), "Invalid:0", "{shape}");
    out.assert_neighbour_ticks();
}

#[test]
fn a_nan_map_key_from_a_component_is_refused_at_the_sender() {
    refused_at_the_sender("nan-key");
}

#[test]
fn a_nil_map_key_from_a_component_is_refused_at_the_sender() {
    refused_at_the_sender("nil-key");
}

#[test]
fn nesting_past_64_from_a_component_is_refused_at_the_sender() {
    refused_at_the_sender("deep");
}

#[test]
fn malformed_bytes_from_a_component_are_refused_at_the_sender() {
    refused_at_the_sender("malformed");
}

#[test]
fn a_spawn_argument_lua_cannot_hold_is_refused() {
    let app = app().component("h:hostile", "hostile").entry(
        "h:attacker",
        r#"return function()
            return process.exec("h:hostile", "test:host", "unholdable-spawn", "nan-key",
                "h:neighbour", "test:host")
        end"#,
    );
    let out = attack(app, "h:attacker", Vec::new());
    assert_eq!(out.value(), "Invalid:0");
    out.assert_neighbour_ticks();
}

#[test]
fn an_exit_value_lua_cannot_hold_still_arrives_as_an_error() {
    for shape in ["nan-key", "nil-key", "deep"] {
        let app = app().component("h:hostile", "hostile");
        let out = attack(app, "h:hostile", vec![s("unholdable-exit"), s(shape)]);
        out.assert_ended(ErrorKind::Invalid, "cannot be delivered");
    }
}

/// A process's last value is copied out in C (`machine/exit.rs`) for the
/// monitor and the caller: read raw (no metamethod of it runs, however it
/// spins), bounded like any message, and refused as the process's
/// `INVALID` end when it cannot cross — the neighbour ticking throughout.
#[test]
fn an_exit_value_is_read_raw_and_bounded_in_every_shape() {
    let spin = "local function spin() while true do end end\n";
    let sly = with_values(&format!(
        "{spin}return setmetatable({{ a = 1 }}, {{ __index = spin, __pairs = spin, __len = spin,
            __tostring = spin, __eq = spin, __name = \"sly\" }})"
    ));
    let Ok(Value::Map(entries)) = &sly.exit else {
        panic!("the sly table did not cross as a map: {sly:?}");
    };
    assert_eq!(entries.len(), 1, "{sly:?}");
    sly.assert_neighbour_ticks();

    let lying = with_values("return lying()");
    let Ok(Value::Map(entries)) = &lying.exit else {
        panic!("the lying table did not cross as its 45 keys: {lying:?}");
    };
    assert_eq!(entries.len(), 45);
    lying.assert_neighbour_ticks();

    with_values("local t = {} t.self = { t } return t").assert_ended(ErrorKind::Invalid, "cycle");
    with_values("local t = {} for _ = 1, 65 do t = { t } end return t")
        .assert_ended(ErrorKind::Invalid, "nesting deeper than 64");
    with_values("return { f = print }")
        .assert_ended(ErrorKind::Invalid, "result.f: function cannot be sent");
    with_values("return coroutine.running()")
        .assert_ended(ErrorKind::Invalid, "thread cannot be sent");
    with_values("return { ch = process.inbox() }")
        .assert_ended(ErrorKind::Invalid, "result.ch: channel cannot be sent");
    with_values("return string.rep(\"x\", 70000)")
        .assert_ended(ErrorKind::Invalid, "max_message_bytes");
}

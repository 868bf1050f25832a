//! `process.send`, `inbox`, `listen`/`unlisten` and what may cross a process boundary.

use warren_core::Value;
use warren_tests::*;
#[path = "messages/bursts.rs"]
mod bursts;
#[path = "messages/handoff.rs"]
mod handoff;
#[path = "messages/ordering.rs"]
mod ordering;
#[path = "messages/senders.rs"]
mod senders;
#[path = "messages/starts.rs"]
mod starts;

const ECHO: &str = r#"return function()
    local inbox = process.inbox()
    while true do
        local msg = inbox:receive()
        if msg:topic() == "stop" then return "stopped" end
        process.send(msg:from(), msg:topic(), msg:payload():data())
    end
end"#;

#[test]
fn inbox_message_objects_expose_topic_from_and_payload() {
    let v = App::new()
        .entry(
            "t:main",
            r#"return function()
            local echo = process.spawn("t:echo", "test:host")
            process.send(echo, "ping", { n = 1, list = { 1, 2, 3 } })
            local msg = process.inbox():receive()
            assert(msg:topic() == "ping" and msg:from() == echo)
            local data = msg:payload():data()
            process.send(echo, "stop")
            return data
        end"#,
        )
        .entry("t:echo", ECHO)
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v.get("n"), Some(&Value::Int(1)));
    assert_eq!(
        v.get("list"),
        Some(&Value::Array(vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(3)
        ]))
    );
}

#[test]
fn a_message_without_payload_is_routed_like_one_with_a_payload() {
    // `process.send(pid, topic)`: before the inbox exists it waits, then
    // comes in order; a listen channel gets an empty list (or, with
    // `message = true`, the message); a process of another host (another
    // VM) gets it through the host and answers.
    let v = App::new()
        .entry(
            "t:main",
            r#"return function()
            local me = process.pid()
            assert(process.send(me, "early"))
            assert(process.send(me, "later", 2))
            local inbox = process.inbox()
            local m = inbox:receive()
            assert(m:topic() == "early" and m:from() == me, m:topic())
            assert(m:payload():data() == nil)
            assert(inbox:receive():payload():data() == 2)
            local bare = process.listen("bare")
            local framed = process.listen("framed", { message = true })
            assert(process.send(me, "bare"))
            local got = bare:receive()
            assert(type(got) == "table" and next(got) == nil, "bare: " .. type(got))
            assert(process.send(me, "framed"))
            local fm = framed:receive()
            assert(fm:topic() == "framed" and fm:from() == me)
            local replies = {}
            for i, host in ipairs({ "test:host", "test:other" }) do -- this VM, another
                local echo = process.spawn("t:echo", host)
                assert(process.send(echo, "knock"))
                local r = inbox:receive()
                replies[i] = r:topic() .. ":" .. tostring(r:payload():data())
                process.send(echo, "stop")
            end
            return table.concat(replies, " ")
        end"#,
        )
        .entry("t:echo", ECHO)
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, s("knock:nil knock:nil"));
}

#[test]
fn several_payloads_arrive_as_an_array_of_payloads() {
    let v = ok(r#"return function()
        process.send(process.pid(), "multi", "a", 2, { x = true })
        local msg = process.inbox():receive()
        local list = msg:payload()
        assert(#list == 3)
        return { list[1]:data(), list[2]:data(), list[3]:data().x }
    end"#);
    assert_eq!(
        v,
        Value::Array(vec![s("a"), Value::Int(2), Value::Bool(true)])
    );
}

#[test]
fn messages_are_fifo_per_sender_across_workers() {
    let v = App::new()
        .workers(2)
        .entry("t:main", r#"return function()
            local n = 2000
            local sink = process.spawn("t:sink", "test:host", n, process.pid())
            for i = 1, n do process.send(sink, "n", i) end
            return process.inbox():receive():payload():data()
        end"#)
        .entry("t:sink", r#"return function(n, reply)
            local inbox = process.inbox()
            for i = 1, n do
                local got = inbox:receive():payload():data()
                if got ~= i then process.send(reply, "r", "out of order at " .. i .. ": " .. got) return end
            end
            process.send(reply, "r", "in order")
        end"#)
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, s("in order"));
}

#[test]
fn send_to_a_registered_name() {
    let v = App::new()
        .entry(
            "t:main",
            r#"return function()
            local echo = process.spawn("t:echo", "test:host")
            process.registry.register("echo", echo)
            assert(process.send("echo", "hi", "there") == true)
            local got = process.inbox():receive():payload():data()
            process.send("echo", "stop")
            return got
        end"#,
        )
        .entry("t:echo", ECHO)
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, s("there"));
}

#[test]
fn send_to_an_exited_pid_is_not_found_and_not_a_crash() {
    let v = App::new()
        .entry(
            "t:main",
            r#"return function()
            local pid = process.spawn_monitored("t:quick", "test:host")
            process.events():receive()
            local ok, err = process.send(pid, "late", 1)
            assert(ok == nil and errors.is(err, errors.NOT_FOUND), tostring(err))
            local ok2, err2 = process.send("nobody", "x")
            assert(ok2 == nil and errors.is(err2, errors.NOT_FOUND))
            return "ok"
        end"#,
        )
        .entry("t:quick", "return function() return 1 end")
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, s("ok"));
}

#[test]
fn reserved_topics_are_refused() {
    let v = ok(r#"return function()
        local ok, err = process.send(process.pid(), "@exit", 1)
        assert(ok == nil and errors.is(err, errors.INVALID))
        local raised = pcall(process.listen, "@exit")
        assert(not raised)
        return err:message()
    end"#);
    assert!(v.as_str().unwrap_or_default().contains("reserved"));
}

#[test]
fn a_function_in_a_payload_is_an_error_naming_its_path() {
    let v = ok(r#"return function()
        local ok, err = process.send(process.pid(), "t", { items = { 1, 2, function() end } })
        assert(ok == nil and errors.is(err, errors.INVALID))
        return err:message()
    end"#);
    assert_eq!(v, s("payload.items[3]: function cannot be sent"));
}

/// `process.send` is C (`machine/send.rs`): a refusal of its one C call
/// (a send to a pid of no process of this VM) comes back as the kernel's
/// error, `nil, err`, naming the payload's path; what it leaves to the
/// kernel's Lua (bad arguments here) raises at the caller's line, not at
/// the C function's.
#[test]
fn process_send_answers_and_raises_as_the_lua_did() {
    let v = ok(r#"return function()
        local dead = "<0.999999>"
        local _, e1 = process.send(dead, "t", { items = { 1, function() end } })
        local _, e2 = process.send(dead, "t", 1, 2)
        local raised, e3 = pcall(function()
            process.send(dead, 7)
        end)
        return table.concat({ e1:message(), e2:message(), tostring(raised), e3 }, " | ")
    end"#);
    let text = v.as_str().unwrap_or_default().to_owned();
    let parts: Vec<&str> = text.split(" | ").collect();
    assert_eq!(
        parts[0], "payload.items[2]: function cannot be sent",
        "{text}"
    );
    assert_eq!(parts[1], "process <0.999999> is not alive", "{text}");
    assert_eq!(parts[2], "false", "{text}");
    assert!(
        parts[3].ends_with(":6: process.send: topic must be a string, got number"),
        "{text}"
    );
}

#[test]
fn a_cycle_in_a_payload_is_an_error() {
    let v = ok(r#"return function()
        local t = { name = "loop" }
        t.self = t
        local ok, err = process.send(process.pid(), "t", t)
        assert(ok == nil)
        return err:message()
    end"#);
    assert!(
        v.as_str()
            .unwrap_or_default()
            .contains("payload.self: cycle"),
        "{v:?}"
    );
}

#[test]
fn channels_and_coroutines_cannot_be_sent() {
    let v = ok(r#"return function()
        local _, e1 = process.send(process.pid(), "t", { ch = channel.new() })
        local _, e2 = process.send(process.pid(), "t", coroutine.create(function() end))
        local _, e3 = process.spawn("t:main", "test:host", channel.new())
        return e1:message() .. "|" .. e2:message() .. "|" .. e3:message()
    end"#);
    assert_eq!(
        v,
        s(
            "payload.ch: channel cannot be sent|payload: thread cannot be sent|argument: channel cannot be sent"
        )
    );
}

#[test]
fn values_are_copied_and_keep_their_types() {
    let v = ok(r#"return function()
        local original = { int = 3, float = 3.0, bin = "\0\255", nested = { { 1 }, { a = false } } }
        process.send(process.pid(), "t", original)
        original.int = 99
        local got = process.inbox():receive():payload():data()
        assert(math.type(got.int) == "integer" and got.int == 3)
        assert(math.type(got.float) == "float")
        assert(got.bin == "\0\255" and got.nested[2].a == false and got.nested[1][1] == 1)
        return "ok"
    end"#);
    assert_eq!(v, s("ok"));
}

#[test]
fn listen_routes_a_topic_and_unlisten_restores_the_inbox() {
    let v = ok(r#"return function()
        local me = process.pid()
        local ch = process.listen("temp")
        process.send(me, "temp", 21.5)
        process.send(me, "other", "x")
        assert(ch:receive() == 21.5)
        assert(process.inbox():receive():topic() == "other")
        assert(process.unlisten(ch) == true)
        process.send(me, "temp", 22)
        local msg = process.inbox():receive()
        return msg:topic()
    end"#);
    assert_eq!(v, s("temp"));
}

#[test]
fn a_message_waits_for_its_subscriber() {
    let v = ok(r#"local time = require("time")
    return function()
        local me = process.pid()
        -- Nothing subscribed yet: both wait (Wippy's order of events).
        process.send(me, "late", "for the listener")
        process.send(me, "other", "for the inbox")
        process.send(me, "late", "a", "b")
        time.sleep("1ms")
        local late = process.listen("late") -- takes what waited on its topic
        assert(late:receive() == "for the listener")
        local two = late:receive()
        assert(two[1] == "a" and two[2] == "b", "several payloads")
        local m = process.inbox():receive() -- the inbox gets the rest
        assert(m:topic() == "other" and m:payload():data() == "for the inbox")
        process.send(me, "late", "now")
        return late:receive()
    end"#);
    assert_eq!(v, s("now"));
}

/// The first `process.inbox()` takes what waited for it, in order; every
/// later call, from any coroutine of the process, answers the same
/// channel, and `process.events()` its own one (both made in C, the first
/// through the kernel's Lua when messages wait).
#[test]
fn every_inbox_and_events_call_answers_the_process_own_channel() {
    let v = ok(r#"return function(role)
        if role == "quit" then return end
        local me = process.pid()
        for i = 1, 5 do process.send(me, "m", i) end
        local ev = process.events()
        local inbox = process.inbox()
        assert(process.inbox() == inbox and process.events() == ev and ev ~= inbox)
        local got = {}
        for i = 1, 5 do got[i] = inbox:receive():payload():data() end
        process.send(me, "m", 6)
        got[6] = process.inbox():receive():payload():data()
        local ch = channel.new()
        coroutine.spawn(function() ch:send(process.inbox() == inbox and process.events() == ev) end)
        assert(ch:receive(), "a coroutine's inbox and events are the process's")
        assert(process.spawn_monitored("t:main", "test:host", "quit"))
        local e = ev:receive()
        return table.concat(got, ",") .. " " .. e.kind
    end"#);
    assert_eq!(v, s("1,2,3,4,5,6 pid.exit"));
}

#[test]
fn listen_with_message_true_delivers_message_objects() {
    let v = ok(r#"return function()
        local me = process.pid()
        local msgs = process.listen("job", { message = true })
        local bare = process.listen("raw")
        process.send(me, "job", { id = 7 })
        process.send(me, "job", "a", "b")
        process.send(me, "raw", 1)
        local m = msgs:receive()
        assert(m:topic() == "job" and m:from() == me, "a message object")
        assert(m:payload():data().id == 7)
        local two = msgs:receive():payload()
        assert(two[1]:data() == "a" and two[2]:data() == "b", "several payloads")
        return bare:receive()
    end"#);
    assert_eq!(v, Value::Int(1));
}

#[test]
fn events_channel_receives_lifecycle_events_only() {
    let v = App::new()
        .entry(
            "t:main",
            r#"local time = require("time")
        return function()
            local events = process.events()
            process.send(process.pid(), "not-an-event", 1)
            local child = process.spawn_monitored("t:quick", "test:host")
            local ev = events:receive()
            return ev.kind
        end"#,
        )
        .entry("t:quick", "return function() return 1 end")
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, s("pid.exit"));
}

#[test]
fn messages_from_outside_the_vm_each_name_their_own_sender_and_topic() {
    // Two senders on the other host, each cycling through three topics:
    // the receiving machine keeps the last message's sender and topic
    // strings for the next (machine/inbox.rs); every message must still
    // name its own.
    let v = App::new()
        .entry(
            "t:main",
            r#"return function()
            local me = process.pid()
            local a = process.spawn("t:talker", "test:other", me, "x", 300)
            local b = process.spawn("t:talker", "test:other", me, "y", 300)
            local inbox, seen = process.inbox(), {}
            for _ = 1, 600 do
                local m = inbox:receive()
                local d = m:payload():data()
                assert(m:from() == d.from, m:from() .. " sent as " .. d.from)
                assert(m:topic() == d.topic, m:topic() .. " sent as " .. d.topic)
                seen[d.from] = (seen[d.from] or 0) + 1
            end
            assert(seen[a] == 300 and seen[b] == 300, "both senders heard")
            return "ok"
        end"#,
        )
        .entry(
            "t:talker",
            r#"return function(to, tag, n)
            local me = process.pid()
            for i = 1, n do
                local topic = tag .. (i % 3)
                assert(process.send(to, topic, { from = me, topic = topic }))
            end
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, s("ok"));
}

#[test]
fn same_worker_and_cross_worker_sends_are_indistinguishable() {
    // The first echo runs on the other host's worker (host conversion),
    // the second next to main (copied inside the VM). Both paths must give
    // equal data and errors.
    let v = App::new()
        .entry(
            "t:main",
            r#"return function()
            local far = process.spawn("t:echo", "test:other")
            local near = process.spawn("t:echo", "test:host")
            local function deep_eq(a, b)
                if type(a) ~= type(b) then return false end
                if type(a) ~= "table" then return a == b and math.type(a) == math.type(b) end
                for k, v in pairs(a) do if not deep_eq(v, b[k]) then return false end end
                for k in pairs(b) do if a[k] == nil then return false end end
                return true
            end
            local inbox = process.inbox()
            local values = {
                { 1, 2.0, "three", { nested = { true, false } } },
                { [1] = "a", [3] = "hole" },
                { ["key with space"] = 1, [2.5] = "float key", [true] = "bool key" },
                "\0binary\255",
                42,
            }
            for i, value in ipairs(values) do
                for _, target in ipairs({ far, near }) do
                    assert(process.send(target, "v", value))
                    local got = inbox:receive():payload():data()
                    assert(deep_eq(got, value), "value " .. i .. " changed on the way")
                end
            end
            local cyclic = {}; cyclic.again = cyclic
            local bad = {
                { items = { 1, 2, print } },
                cyclic,
                { deep = { ch = channel.new() } },
            }
            for i, value in ipairs(bad) do
                local _, e1 = process.send(far, "v", value)
                local _, e2 = process.send(near, "v", value)
                assert(e1:message() == e2:message(), e1:message() .. " vs " .. e2:message())
                assert(e1:kind() == e2:kind())
            end
            local _, m1 = process.send(far, "v", 1, print)
            local _, m2 = process.send(near, "v", 1, print)
            assert(m1:message() == m2:message(), m1:message() .. " vs " .. m2:message())
            local _, r1 = process.send(far, "@x")
            local _, r2 = process.send(near, "@x")
            assert(r1:message() == r2:message())
            process.send(far, "stop"); process.send(near, "stop")
            return m1:message()
        end"#,
        )
        .entry(
            "t:echo",
            r#"return function()
            local inbox = process.inbox()
            while true do
                local msg = inbox:receive()
                if msg:topic() == "stop" then return end
                process.send(msg:from(), "back", msg:payload():data())
            end
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, s("payload[2]: function cannot be sent"));
}

#[test]
fn an_error_crosses_processes_workers_and_languages_as_an_error() {
    let v = App::new()
        .component("t:echo", "echo")
        .entry("t:relay", LUA_ECHO)
        .entry(
            "t:main",
            r#"local json = require("json")
            return function()
                local me = process.pid()
                local err = errors.new({ kind = errors.NOT_FOUND, message = "no such user",
                    retryable = true, details = { id = 7 } })
                local function check(e, where)
                    assert(errors.is(e, errors.NOT_FOUND), where .. ": kind " .. tostring(e))
                    assert(e:message() == "no such user" and e:retryable() == true, where)
                    assert(e:details().id == 7, where .. ": details")
                    assert(tostring(e) == "no such user", where .. ": tostring")
                end
                process.send(me, "self", err) -- same VM: the kernel's copy
                check(process.inbox():receive():payload():data(), "same VM")
                local far = process.spawn("t:relay", "test:other") -- another worker
                process.send(far, "echo", { nested = err })
                check(process.inbox():receive():payload():data().nested, "another worker")
                local echo = process.spawn("t:echo", "test:host") -- a component
                process.send(echo, "echo", err)
                check(process.inbox():receive():payload():data(), "a component")
                process.send(echo, "stop")
                return json.decode(json.encode(err))
            end"#,
        )
        .run("t:main", vec![])
        .expect("ran");
    let fields = |k: &str| v.get(k).cloned();
    assert_eq!(fields("kind"), Some(s("NotFound")));
    assert_eq!(fields("message"), Some(s("no such user")));
    assert_eq!(fields("retryable"), Some(Value::Bool(true)));
    assert!(
        fields("_kind").is_none() && fields("@error").is_none(),
        "{v:?}"
    );
}

/// A same-VM payload is copied natively up to 64 KiB (guest-lua's
/// `copy.rs`) and by the kernel's Lua copy beyond: both measure it by the
/// same rules, stop exactly at `max_message_bytes`, and deliver whole
/// copies. `{ s = <n bytes> }` counts 5 (table) + 6 (key) + 5 + n.
#[test]
fn a_payload_is_measured_alike_by_the_native_and_the_lua_copy() {
    let v = App::new()
        .max_message_bytes(200_000)
        .entry(
            "t:main",
            r#"return function()
            local me, inbox, out = process.pid(), process.inbox(), {}
            local function try(lead, n)
                local ok, err
                if lead then
                    ok, err = process.send(me, "t", string.rep("y", lead), { a = { s = string.rep("x", n) } })
                else
                    ok, err = process.send(me, "t", { a = { s = string.rep("x", n) } })
                end
                if not ok then out[#out + 1] = err:kind() return end
                local p = inbox:receive():payload()
                local t = lead and p[2]:data() or p:data()
                out[#out + 1] = #t.a.s
            end
            -- A small table after a 199,000-byte string: the native copy
            -- decides at the limit (5 + 199,000 + 5 + 6 + 16 + n).
            try(199000, 968) try(199000, 969)
            -- One large table: the Lua copy decides (5 + 6 + 16 + n).
            try(nil, 199973) try(nil, 199974)
            return out
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(
        v,
        Value::Array(vec![
            Value::Int(968),
            s("Invalid"),
            Value::Int(199_973),
            s("Invalid")
        ])
    );
}

/// The same-VM copy stops exactly at `max_message_bytes` whatever it
/// visits last: a number, a boolean or an empty table that carries the
/// payload one byte past the limit is refused like a string is, in a
/// flat table (cloned) and in a nested one (copied entry by entry). (The
/// native copy's entry-by-entry path and the kernel's Lua copy, which
/// decides what the native one leaves, checked only strings and keys: a
/// number visited after the big string let a payload 9 bytes over the
/// limit through, depending on the order of the keys' hashes.) Each key
/// name lands elsewhere in the table, so some are visited before the
/// string and some after.
#[test]
fn the_same_vm_copy_stops_at_the_limit_whatever_it_visits_last() {
    let v = App::new()
        .max_message_bytes(1_000)
        .entry(
            "t:main",
            r#"return function()
            local me, inbox, out = process.pid(), process.inbox(), {}
            -- 5 (table) + 6 + 5 + n (s) + 6 (the key) + the last value.
            local lasts = { { 7, 9 }, { true, 1 }, { {}, 5 }, { "", 5 } }
            -- Nested: a table among the values (its key 7, itself 5) makes
            -- the native copy go entry by entry instead of cloning.
            for _, nested in ipairs({ false, true }) do
            for _, case in ipairs(lasts) do
                local last, size = case[1], case[2]
                for key in ("abcdefghijklmnopqrtuvwxyz"):gmatch(".") do
                    for over = 0, 1 do
                        local n = 1000 - 22 - size + over - (nested and 12 or 0)
                        local v = { s = string.rep("x", n), [key] = last }
                        if nested then v.tt = {} end
                        local ok, err = process.send(me, "t", v)
                        local got = ok and #inbox:receive():payload():data().s or err:kind()
                        local want = over == 0 and n or "Invalid"
                        if got ~= want then
                            out[#out + 1] = key .. " " .. type(last) .. " " .. tostring(nested)
                                .. " " .. over .. ": " .. tostring(got)
                        end
                    end
                end
            end
            end
            return #out == 0 and "ok" or #out .. " wrong: " .. table.concat(out, ", ", 1, math.min(#out, 4))
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, s("ok"));
}

/// A one-payload send to a process of the same VM takes the native path
/// (guest-lua's `machine/send.rs`) for scalars too: a string counts 5 + its
/// length against `max_message_bytes` exactly as the kernel's Lua copy
/// does (at the limit it goes, one byte past it is `Invalid`), and nil,
/// booleans and numbers arrive as they were sent.
#[test]
fn a_scalar_payload_is_measured_alike_on_the_native_path() {
    let v = App::new()
        .max_message_bytes(1_000)
        .entry(
            "t:main",
            r#"return function()
            local me, inbox, out = process.pid(), process.inbox(), {}
            local function try(v)
                local ok, err = process.send(me, "t", v)
                if not ok then out[#out + 1] = err:kind() return end
                local got = inbox:receive():payload():data()
                out[#out + 1] = type(got) == "string" and #got or tostring(got)
            end
            try(string.rep("x", 995)) try(string.rep("x", 996))
            try(nil) try(false) try(42) try(1.5)
            return table.concat(out, " ")
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, s("995 Invalid nil false 42 1.5"));
}

#[test]
fn messages_to_a_child_that_has_not_started_keep_their_order_with_later_ones() {
    // Sent before the child starts, messages wait in the host's queue for
    // it; the kernel converts a bounded number of such items per turn and
    // runs what is ready between turns, so the sender can run again while
    // some still wait. Its later sends go straight into the child's inbox
    // (same VM) and must not overtake them.
    let v = App::new()
        .workers(1)
        .entry(
            "t:main",
            r#"return function()
            local sink = process.spawn("t:sink", "test:host", process.pid())
            local name = "sink"
            assert(process.registry.register(name, sink))
            for i = 1, 3000 do assert(process.send(sink, "m", i)) end
            -- A wait that the run queue ends, not a host item.
            local ch = channel.new()
            coroutine.spawn(function() ch:send(true) end)
            ch:receive()
            -- By pid (the native send), then by name (the kernel's Lua).
            for i = 3001, 3500 do assert(process.send(sink, "m", i)) end
            for i = 3501, 4000 do assert(process.send(name, "m", i)) end
            return process.inbox():receive():payload():data()
        end"#,
        )
        .entry(
            "t:sink",
            r#"return function(parent)
            local inbox, bad, expect = process.inbox(), 0, 1
            for _ = 1, 4000 do
                local n = inbox:receive():payload():data()
                if n ~= expect then bad = bad + 1 end
                expect = n + 1
            end
            process.send(parent, "done", bad)
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, Value::Int(0), "messages out of order");
}

//! The C fast paths added last, attacked where they decide alone:
//! `process.send` of no payload or one (`machine/send.rs`: `send1`,
//! `route`, `send_remote`) and the routing of a message that arrives from
//! outside the VM (`machine/inbox.rs`); `process.spawn`'s arguments
//! walked where they lie (`plain.rs`, `machine/spawn.rs`); the receive
//! case a channel hands out again (`case_receive`, `s.rcase`); error
//! objects' stacks (`traceback.rs`, the vendored `warren_traceback`).
//!
//! Each case asserts how the attacker ended or what its calls answered
//! (a clear refusal of the right kind, no metamethod run by the runtime,
//! the same answer as the Lua path gives) and that the neighbour on its
//! worker kept ticking.

use warren_core::{ErrorKind, HostLimits};
use warren_tests::{HOST, OTHER_HOST};

use crate::harness::{self, Outcome, app, attack, lua};

/// Runs the Lua function body `body` (with `...` its arguments) as the
/// attack.
fn body(body: &str) -> Outcome {
    lua(&format!("return function(...)\n{body}\nend"), Vec::new())
}

/// Limits under which a host may reach the other one and itself.
fn reaching() -> HostLimits {
    let mut limits = harness::limits();
    limits.allow_hosts = Some(vec![HOST.to_owned(), OTHER_HOST.to_owned()]);
    limits
}

/// The harness's app, both hosts reaching each other.
fn two_hosts() -> warren_tests::App {
    app().limits(reaching()).other_limits(reaching())
}

/// Cuts the position (`chunk:line: `) off an error's text, in Lua.
const BARE: &str = r#"
local function bare(err)
    local m = tostring(err)
    local at = m:find("process.", 1, true) or m:find("channel.", 1, true) or 1
    return m:sub(at)
end
"#;

/// The attack's string result, asserting the neighbour ticked after it.
fn value_of(out: &Outcome) -> String {
    out.assert_neighbour_ticks();
    out.value()
}

/// A metatable every one of whose metamethods records that it ran and
/// then spins (as a hostile one would): `ran` is the process's global.
const TRAP: &str = r#"
ran = false
local function trap() ran = true while true do end end
local function trap_mt(extra)
    local mt = { __index = trap, __newindex = trap, __len = trap, __pairs = trap,
        __tostring = trap, __eq = trap, __concat = trap, __call = trap, __lt = trap,
        __le = trap, __name = "sly", __close = trap }
    for k, v in pairs(extra or {}) do mt[k] = v end
    return mt
end
"#;

/// Runs `source` (a chunk that may use `TRAP`'s helpers and returns the
/// process's function) as the attack.
fn trapped(source: &str) -> Outcome {
    lua(&format!("{TRAP}\n{BARE}\n{source}"), Vec::new())
}

// ---------------------------------------------------------------------
// 1. process.send in C
// ---------------------------------------------------------------------

#[test]
fn send_arguments_of_the_wrong_type_are_refused_without_running_metamethods() {
    let out = trapped(
        r#"return function()
            local me = process.pid()
            local sly = setmetatable({}, trap_mt())
            local out = {}
            local function try(what, ...)
                local ok, err = pcall(process.send, ...)
                assert(not ok, what .. " was accepted")
                out[#out + 1] = what .. "=" .. bare(err)
            end
            try("nil pid", nil, "t", 1)
            try("number pid", 42, "t", 1)
            try("table pid", sly, "t", 1)
            try("table pid, no payload", sly, "t")
            try("boolean pid", true, "t")
            try("function pid", print, "t", 1)
            try("nil topic", me, nil, 1)
            try("number topic", me, 7, 1)
            try("table topic", me, sly, 1)
            try("table topic, no payload", me, sly)
            try("no arguments")
            try("pid only", me)
            assert(not ran, "a metamethod of an argument ran")
            return table.concat(out, "\n")
        end"#,
    );
    let v = value_of(&out);
    let dest = "process.send: destination must be a string, got ";
    let topic = "process.send: topic must be a string, got ";
    let expected = [
        ("nil pid", dest, "nil"),
        ("number pid", dest, "number"),
        ("table pid", dest, "table"),
        ("table pid, no payload", dest, "table"),
        ("boolean pid", dest, "boolean"),
        ("function pid", dest, "function"),
        ("nil topic", topic, "nil"),
        ("number topic", topic, "number"),
        ("table topic", topic, "table"),
        ("table topic, no payload", topic, "table"),
        ("no arguments", dest, "nil"),
        ("pid only", topic, "nil"),
    ];
    let lines: Vec<&str> = v.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{v}");
    for (line, (what, text, ty)) in lines.iter().zip(expected) {
        assert_eq!(*line, format!("{what}={text}{ty}"), "{v}");
    }
}

#[test]
fn reserved_topics_are_refused_on_the_no_payload_and_one_payload_paths() {
    let app = two_hosts().entry(
        "h:idle",
        r#"local time = require("time")
        return function() while true do time.sleep("1h") end end"#,
    );
    let app = app.entry(
        "h:attacker",
        &format!(
            r#"return function()
            local me = process.pid()
            local near = process.spawn("h:idle", "test:host")
            local far = assert(process.spawn("h:idle", "{OTHER_HOST}"))
            process.registry.register("me")
            local out = {{}}
            for _, dest in ipairs({{ me, near, far, "me" }}) do
                for _, topic in ipairs({{ "@", "@exit", "@bus", string.rep("@", 1025) }}) do
                    for n = 0, 2 do
                        local ok, err
                        if n == 0 then ok, err = process.send(dest, topic)
                        elseif n == 1 then ok, err = process.send(dest, topic, {{ 1 }})
                        else ok, err = process.send(dest, topic, 1, 2) end
                        assert(ok == nil and err, "accepted")
                        out[#out + 1] = err:kind()
                    end
                end
            end
            -- Nothing of them arrived.
            local r = channel.select({{ process.inbox():case_receive(), default = true }})
            assert(r.default, "a reserved message arrived: " .. tostring(r.value and r.value:topic()))
            process.terminate(near)
            process.terminate(far)
            local kinds = {{}}
            for _, k in ipairs(out) do kinds[k] = (kinds[k] or 0) + 1 end
            local text = {{}}
            for k, c in pairs(kinds) do text[#text + 1] = k .. ":" .. c end
            return table.concat(text, ",")
        end"#
        ),
    );
    let out = attack(app, "h:attacker", Vec::new());
    assert_eq!(value_of(&out), "Invalid:48");
}

#[test]
fn binary_topics_are_kept_whole_and_never_match_a_prefix() {
    // A topic with NUL bytes is a key of the listen table as it is, and a
    // topic that is not UTF-8 is carried within the VM (the kernel's Lua
    // path did the same) but refused to another VM, which holds text.
    let app = two_hosts().entry(
        "h:echo",
        r#"return function()
            local inbox = process.inbox()
            while true do
                local m = inbox:receive()
                if m:topic() == "stop" then return "stopped" end
                process.send(m:from(), "back", m:topic())
            end
        end"#,
    );
    let app = app.entry(
        "h:attacker",
        &format!(
            r#"return function()
            local me = process.pid()
            local short = process.listen("a")
            local inbox = process.inbox()
            local out = {{}}
            assert(process.send(me, "a\0b"))
            assert(process.send(me, "a\0b", "v"))
            for _ = 1, 2 do
                local r = channel.select({{ short:case_receive(), inbox:case_receive(), default = true }})
                assert(not r.default, "nothing arrived")
                assert(r.channel == inbox, "the listen on 'a' took 'a\\0b'")
                out[#out + 1] = string.format("%q", r.value:topic())
            end
            local ok = process.send(me, "\255\254", 1)
            out[#out + 1] = "local-binary:" .. tostring(ok)
            out[#out + 1] = tostring(inbox:receive():topic() == "\255\254")
            local far = assert(process.spawn("h:echo", "{OTHER_HOST}"))
            local ok2, err = process.send(far, "\255\254", 1)
            out[#out + 1] = "far-binary:" .. tostring(ok2) .. ":" .. err:kind() .. ":" .. err:message()
            local ok3, err3 = process.send(far, "\255\254")
            out[#out + 1] = "far-binary-none:" .. tostring(ok3) .. ":" .. err3:kind()
            -- NULs cross to the other VM and come back the same.
            assert(process.send(far, "x\0y", "p"))
            local m = inbox:receive()
            out[#out + 1] = "far-nul:" .. m:topic() .. ":" .. string.format("%q", m:payload():data())
            process.send(far, "stop")
            return table.concat(out, " ")
        end"#
        ),
    );
    let out = attack(app, "h:attacker", Vec::new());
    let v = value_of(&out);
    assert!(
        v.starts_with(r#""a\0b" "a\0b" local-binary:true true "#),
        "{v}"
    );
    assert!(
        v.contains("far-binary:nil:Invalid:process.send: the topic must be UTF-8 text"),
        "{v}"
    );
    assert!(v.contains("far-binary-none:nil:Invalid"), "{v}");
    assert!(v.ends_with(r#"far-nul:back:"x\0y""#), "{v}");
}

#[test]
fn pids_of_no_live_process_are_answered_by_the_host() {
    // A string starting with "<" that names no process of this VM goes
    // to the host's send in C: a dead pid, a pid of this VM's own shape
    // that never existed, garbage, and a huge one.
    let out = lua(
        r#"return function()
            local child = process.spawn_monitored("h:alive", "test:host")
            process.events():receive()
            local out = {}
            local function try(what, dest, ...)
                local ok, err = process.send(dest, "t", ...)
                if ok then out[#out + 1] = what .. ":ok" return end
                assert(ok == nil and #err:message() < 300, what .. ": " .. #err:message())
                out[#out + 1] = what .. ":" .. err:kind()
            end
            try("dead", child)
            try("dead-none", child, nil)
            try("garbage", "<garbage>", 1)
            try("half", "<", 1)
            try("huge", "<" .. string.rep("9", 100000), 1)
            try("huge-none", "<" .. string.rep("9", 100000))
            try("nul", "<0.1\0>", 1)
            return table.concat(out, " ")
        end"#,
        Vec::new(),
    );
    let v = value_of(&out);
    // Whatever a dead pid answers, every malformed one is an error and
    // the attacker went on.
    for what in ["garbage", "half", "huge", "huge-none", "nul"] {
        assert!(
            !v.contains(&format!("{what}:ok")),
            "{what} was accepted: {v}"
        );
    }
}

#[test]
fn a_payload_whose_metatable_lies_is_copied_raw_on_every_path() {
    let app = two_hosts().entry(
        "h:echo",
        r#"return function()
            local inbox = process.inbox()
            while true do
                local m = inbox:receive()
                if m:topic() == "stop" then return "stopped" end
                process.send(m:from(), "back", m:payload():data())
            end
        end"#,
    );
    let app = app.entry(
        "h:attacker",
        &format!(
            r#"{TRAP}
            return function()
            local me = process.pid()
            local inner = setmetatable({{ 1, 2, 3 }}, trap_mt())
            local sly = setmetatable({{ a = 1, inner = inner, [10] = "ten" }}, trap_mt())
            local inbox = process.inbox()
            local out = {{}}
            local function check(t, what)
                assert(getmetatable(t) == nil, what .. ": the metatable crossed")
                assert(rawget(t, "a") == 1 and rawget(t, 10) == "ten", what .. ": fields")
                local i = rawget(t, "inner")
                assert(rawlen(i) == 3 and getmetatable(i) == nil, what .. ": inner")
                out[#out + 1] = what
            end
            assert(process.send(me, "t", sly))
            check(inbox:receive():payload():data(), "self")
            local ch = process.listen("l")
            assert(process.send(me, "l", sly))
            check(ch:receive(), "listen")
            local far = assert(process.spawn("h:echo", "{OTHER_HOST}"))
            assert(process.send(far, "t", sly))
            check(inbox:receive():payload():data(), "far")
            process.send(far, "stop")
            assert(not ran, "a metamethod ran")
            return table.concat(out, ",")
        end"#
        ),
    );
    let out = attack(app, "h:attacker", Vec::new());
    assert_eq!(value_of(&out), "self,listen,far");
}

#[test]
fn a_payload_with_a_cycle_or_a_shared_subtable_is_refused_on_every_path() {
    // Nine refused copies of up to 200,000 entries: about 300 ms of CPU in
    // the test profile on a loaded 2-core machine, so a budget it fits in.
    let limits = HostLimits {
        cpu_budget: Some(std::time::Duration::from_secs(3)),
        ..reaching()
    };
    let app = app().limits(limits).other_limits(reaching()).entry(
        "h:idle",
        r#"local time = require("time")
        return function() while true do time.sleep("1h") end end"#,
    );
    let app = app.entry(
        "h:attacker",
        &format!(
            r#"return function()
            local me = process.pid()
            local near = process.spawn("h:idle", "test:host")
            local far = assert(process.spawn("h:idle", "{OTHER_HOST}"))
            local cyc = {{ a = 1 }}
            cyc.self = {{ back = cyc }}
            local leaf = {{ 1 }}
            local shared = {{}}
            for i = 1, 200000 do shared[i] = leaf end
            local dag = {{}}
            for _ = 1, 60 do dag = {{ dag, dag }} end
            local out = {{}}
            for _, dest in ipairs({{ me, near, far }}) do
                for name, v in pairs({{ cyc = cyc, shared = shared, dag = dag }}) do
                    local ok, err = process.send(dest, "t", v)
                    assert(ok == nil, name .. " was accepted")
                    local m = err:message()
                    local why = m:find("cycle", 1, true) and "cycle"
                        or m:find("max_message_bytes", 1, true) and "bytes"
                        or m
                    out[#out + 1] = name .. ":" .. err:kind() .. ":" .. why
                end
            end
            process.terminate(near)
            process.terminate(far)
            table.sort(out)
            return table.concat(out, " ")
        end"#
        ),
    );
    let out = attack(app, "h:attacker", Vec::new());
    let v = value_of(&out);
    assert_eq!(
        v,
        "cyc:Invalid:cycle cyc:Invalid:cycle cyc:Invalid:cycle \
         dag:Invalid:bytes dag:Invalid:bytes dag:Invalid:bytes \
         shared:Invalid:bytes shared:Invalid:bytes shared:Invalid:bytes"
    );
}

#[test]
fn a_flood_without_payload_into_a_closed_listen_channel_is_bounded() {
    // The receiver listens on "t" and closes the channel: what the fast
    // path routes there is buffered, counted against its mailbox, and the
    // flood is refused at mailbox_limit; a no-payload message arrives at
    // a listen channel as an empty list.
    let app = app().entry(
        "h:receiver",
        r#"return function(parent)
            local ch = process.listen("t")
            local probe = process.listen("probe")
            process.send(parent, "ready")
            local got = probe:receive()
            assert(type(got) == "table" and next(got) == nil, "not an empty list")
            ch:close()
            process.send(parent, "closed")
            local inbox = process.inbox()
            while true do
                local m = inbox:receive()
                if m:topic() == "drain" then
                    local n = 0
                    while true do
                        local v, ok = ch:receive()
                        if not ok then break end
                        n = n + 1
                    end
                    process.unlisten(ch)
                    process.send(parent, "drained", n)
                end
            end
        end"#,
    );
    let app = app.entry(
        "h:attacker",
        r#"return function()
            local me = process.pid()
            local inbox = process.inbox()
            local rx = process.spawn("h:receiver", "test:host", me)
            assert(inbox:receive():topic() == "ready")
            assert(process.send(rx, "probe"))
            assert(inbox:receive():topic() == "closed")
            local sent, err = 0, nil
            while sent < 1000 do
                local ok, e = process.send(rx, "t")
                if not ok then err = e break end
                sent = sent + 1
            end
            local refused = err and (err:kind() .. ":" .. tostring(err:retryable())) or "none"
            -- The receiver's mailbox is full: even "drain" waits for room.
            local ok = process.send(rx, "drain")
            process.terminate(rx)
            return sent .. " " .. refused .. " " .. tostring(ok)
        end"#,
    );
    let out = attack(app, "h:attacker", Vec::new());
    let v = value_of(&out);
    assert!(
        v.starts_with("99 RateLimited:true") || v.starts_with("100 RateLimited:true"),
        "{v}"
    );
}

/// A `__warren` tag names a runtime object only when it is a string or
/// a number (the kernel's objects; a process's forgery of one is refused
/// by that name). Any other value there is the process's own data, and
/// the table is copied raw, its metatable dropped, on every path. Before,
/// the same-VM copy handed such a table to the kernel's Lua copy, which
/// joined the tag into its refusal (`tag .. " cannot be sent"`): a table
/// tag's `__concat` ran under the kernel's frames (unpreemptible, and
/// able to wait there), and a `true` tag raised the kernel's own
/// "attempt to concatenate" out of `process.send`.
#[test]
fn a_tag_that_is_no_name_is_the_process_s_data_and_runs_nothing() {
    let out = lua(
        r#"return function()
            ran = 0
            local function count() ran = ran + 1 return "forged" end
            local tag = setmetatable({}, { __concat = count, __tostring = count, __index = count })
            local me, inbox = process.pid(), process.inbox()
            local out = {}
            for i, t in ipairs({
                setmetatable({ v = 1 }, { __warren = tag }),
                setmetatable({ v = 2 }, { __warren = {} }),
                setmetatable({ v = 3 }, { __warren = true }),
                { v = 4, inner = setmetatable({ w = 5 }, { __warren = tag }) },
            }) do
                local ok, err = process.send(me, "t", t)
                if not ok then
                    out[#out + 1] = "refused " .. err:message()
                else
                    local c = inbox:receive():payload():data()
                    local inner = c.inner and (c.inner.w .. tostring(getmetatable(c.inner))) or ""
                    out[#out + 1] = c.v .. tostring(getmetatable(c)) .. inner
                end
            end
            local ok, err = process.send(me, "t", setmetatable({}, { __warren = "timer" }))
            out[#out + 1] = tostring(ok) .. " " .. tostring(err and err:message():find("timer cannot be sent", 1, true) ~= nil)
            return table.concat(out, ",") .. " ran=" .. ran
        end"#,
        Vec::new(),
    );
    assert_eq!(value_of(&out), "1nil,2nil,3nil,4nil5nil,nil true ran=0");
}

/// The same tag's `__concat` spinning: it must never run (before, it ran
/// under the kernel's frames, where nothing preempts: the neighbour did
/// not tick for ~450 ms, until the cpu budget and the kernel's grace).
#[test]
fn a_metamethod_in_a_payloads_tag_cannot_hold_the_worker() {
    let out = lua(
        r#"return function()
            local tag = setmetatable({}, { __concat = function() while true do end end })
            local t = setmetatable({}, { __warren = tag })
            for _ = 1, 3 do assert(process.send(process.pid(), "t", t)) end
            return "done"
        end"#,
        Vec::new(),
    );
    assert_eq!(out.value(), "done");
    out.assert_neighbour_ticks();
}

/// The same tag's `__concat` waiting: it must never run (before, it
/// suspended the process with the kernel's copy on its stack, and its
/// text became the kernel's error message).
#[test]
fn a_metamethod_in_a_payloads_tag_cannot_wait_inside_the_kernel() {
    let out = lua(
        r#"local time = require("time")
        return function()
            local waited = false
            local tag = setmetatable({}, { __concat = function()
                time.sleep("5ms")
                waited = true
                return "chosen by the process"
            end })
            local ok = process.send(process.pid(), "t", { x = setmetatable({}, { __warren = tag }) })
            return tostring(ok) .. " waited=" .. tostring(waited)
        end"#,
        Vec::new(),
    );
    assert_eq!(value_of(&out), "true waited=false");
}

#[test]
fn a_payload_emptied_of_keys_that_cannot_cross_is_cloned_without_them() {
    // A flat table is cloned slot for slot (`warren_clonetable`): keys
    // whose values were removed (a function, a table, a coroutine) are
    // still in its node array; the copy must hold none of them, survive
    // collections, and take new keys.
    let out = lua(
        r#"-- Garbage enough for the collector to run its cycles (collectgarbage
        -- is not a process's to call).
        local function churn() for _ = 1, 200000 do local _ = { 1 } end end
        return function()
            local t = { a = 1, b = "two", 3, 4 }
            local co = coroutine.create(print)
            local k1, k2 = {}, function() end
            t[k1], t[k2], t[co], t[print] = 1, 2, 3, 4
            t[k1], t[k2], t[co], t[print] = nil, nil, nil, nil
            local me, inbox = process.pid(), process.inbox()
            local out = {}
            for round = 1, 3 do
                assert(process.send(me, "t", t))
                local c = inbox:receive():payload():data()
                k1, k2, co = nil, nil, nil
                churn()
                local n = 0
                for k, v in pairs(c) do
                    assert(type(k) == "string" or type(k) == "number", "a " .. type(k) .. " key crossed")
                    n = n + 1
                end
                for i = 1, 50 do c["n" .. i] = i end
                c[{}] = true
                churn()
                out[#out + 1] = n .. ":" .. tostring(c.n50) .. ":" .. #c
            end
            return table.concat(out, " ")
        end"#,
        Vec::new(),
    );
    assert_eq!(value_of(&out), "4:50:2 4:50:2 4:50:2");
}

#[test]
fn a_frozen_table_sent_arrives_as_a_fresh_writable_copy() {
    // Library tables are frozen (read-only in the patched Lua); a copy of
    // one that is only data is cloned in C, and must be the receiver's
    // own plain table, not frozen and not the library's.
    let out = lua(
        r#"return function()
            local src = process.event
            assert(not pcall(function() src.EXIT = "changed" end), "process.event is writable")
            assert(process.send(process.pid(), "t", src))
            local c = process.inbox():receive():payload():data()
            c.EXIT = "mine"
            rawset(c, "more", 1)
            return tostring(c.EXIT) .. ":" .. tostring(process.event.EXIT ~= "mine") .. ":" .. tostring(c.more)
        end"#,
        Vec::new(),
    );
    assert_eq!(value_of(&out), "mine:true:1");
}

#[test]
fn a_listen_channel_of_message_objects_gets_none_or_one_payload_alike() {
    // `process.listen(topic, { message = true })` gets message objects:
    // routed by `send1` in C from this VM and by `inbox.rs` from another.
    let app = two_hosts().entry(
        "h:sender",
        r#"return function(to)
            assert(process.send(to, "m"))
            assert(process.send(to, "m", { k = "v" }))
            assert(process.send(to, "m", 1, 2))
            return "sent"
        end"#,
    );
    let app = app.entry(
        "h:attacker",
        &format!(
            r#"return function()
            local me = process.pid()
            local ch = process.listen("m", {{ message = true }})
            local out = {{}}
            local function drain(where)
                for _ = 1, 3 do
                    local m = ch:receive()
                    local p = m:payload()
                    local d = getmetatable(p) == false and p:data() or ("list" .. #p)
                    out[#out + 1] = where .. ":" .. m:topic() .. ":" .. tostring(m:from() ~= nil)
                        .. ":" .. (type(d) == "table" and tostring(d.k) or tostring(d))
                end
            end
            assert(process.send(me, "m"))
            assert(process.send(me, "m", {{ k = "v" }}))
            assert(process.send(me, "m", 1, 2))
            drain("near")
            assert(process.exec("h:sender", "{OTHER_HOST}", me) == "sent")
            drain("far")
            return table.concat(out, " ")
        end"#
        ),
    );
    let out = attack(app, "h:attacker", Vec::new());
    assert_eq!(
        value_of(&out),
        "near:m:true:list0 near:m:true:v near:m:true:list2 far:m:true:list0 far:m:true:v far:m:true:list2"
    );
}

#[test]
fn sends_from_code_that_cannot_yield_take_every_path_cleanly() {
    // A table.sort comparator cannot yield: every kind of send made there
    // (C paths and the kernel's Lua path, near and far) answers at once.
    let app = two_hosts().entry(
        "h:idle",
        r#"local time = require("time")
        return function() while true do time.sleep("1h") end end"#,
    );
    let app = app.entry(
        "h:attacker",
        &format!(
            r#"return function()
            local me = process.pid()
            local far = assert(process.spawn("h:idle", "{OTHER_HOST}"))
            process.registry.register("me")
            local out = {{}}
            local function sends()
                local r = {{}}
                for _, dest in ipairs({{ me, "me", far, "<nope>" }}) do
                    local a = process.send(dest, "t")
                    local b = process.send(dest, "t", {{ 1 }})
                    local c = process.send(dest, "t", 1, 2)
                    local d = process.send(dest, "t", print)
                    r[#r + 1] = tostring(a) .. tostring(b) .. tostring(c) .. tostring(d)
                end
                return table.concat(r, ",")
            end
            local t = {{ 2, 1 }}
            table.sort(t, function(x, y)
                if #out == 0 then out[1] = sends() end
                return x < y
            end)
            process.terminate(far)
            return out[1]
        end"#
        ),
    );
    let out = attack(app, "h:attacker", Vec::new());
    let v = value_of(&out);
    let parts: Vec<&str> = v.split(',').collect();
    assert_eq!(parts[0], "truetruetruenil", "{v}");
    assert_eq!(parts[1], "truetruetruenil", "{v}");
    assert_eq!(parts[2], "truetruetruenil", "{v}");
    assert_eq!(parts[3], "nilnilnilnil", "{v}");
}

// ---------------------------------------------------------------------
// 2. process.spawn's arguments walked in C
// ---------------------------------------------------------------------

/// A child that describes its arguments: count and, for tables, their
/// raw keys.
const ARGS: &str = r##"return function(...)
    local n = select("#", ...)
    local out = { tostring(n) }
    for i = 1, math.min(n, 4) do
        local v = select(i, ...)
        if type(v) == "table" then
            local keys = 0
            for _ in next, v do keys = keys + 1 end
            out[#out + 1] = "t" .. keys .. (getmetatable(v) == nil and "" or "mt")
        else
            out[#out + 1] = type(v)
        end
    end
    return table.concat(out, ",")
end"##;

fn spawning(source: &str) -> Outcome {
    spawning_with(crate::harness::limits(), source)
}

/// [`spawning`] under `limits`.
fn spawning_with(limits: HostLimits, source: &str) -> Outcome {
    let app = app()
        .limits(limits)
        .entry("h:args", ARGS)
        .entry("h:attacker", &format!("{TRAP}\n{BARE}\n{source}"));
    attack(app, "h:attacker", Vec::new())
}

#[test]
fn spawn_arguments_with_lying_metatables_are_walked_raw() {
    let out = spawning(
        r#"return function()
            local inner = setmetatable({ 1, 2 }, trap_mt())
            local sly = setmetatable({ a = 1, b = inner }, trap_mt())
            local out = {}
            -- spawn (C), spawn_monitored (C) and exec (the kernel's path)
            local pid = assert(process.spawn("h:args", "test:host", sly, 5, sly))
            local mon = assert(process.spawn_monitored("h:args", "test:host", sly))
            local ev = process.events():receive()
            out[#out + 1] = tostring(ev.result.value)
            out[#out + 1] = tostring(process.exec("h:args", "test:host", sly, inner))
            assert(not ran, "a metamethod ran")
            return table.concat(out, " ")
        end"#,
    );
    assert_eq!(value_of(&out), "1,t2 2,t2,t2");
}

#[test]
fn spawn_arguments_that_cannot_cross_are_refused_by_name() {
    let out = spawning(
        r#"return function()
            local out = {}
            local function try(what, ...)
                local pid, err = process.spawn("h:args", "test:host", ...)
                assert(pid == nil, what .. " was accepted")
                out[#out + 1] = what .. "=" .. err:kind() .. ":" .. err:message()
            end
            local cyc = {} cyc[1] = { cyc }
            try("cycle", cyc)
            local deep = {} for _ = 1, 65 do deep = { deep } end
            try("deep", 1, deep)
            try("function", 1, print)
            try("nested function", { f = print })
            try("thread", coroutine.create(print))
            try("nested thread", { co = coroutine.create(print) })
            try("channel", channel.new())
            try("nested channel", { { ch = channel.new() } })
            try("case", channel.new():case_receive())
            try("table key", { [{}] = 1 })
            try("forged tag", setmetatable({}, { __warren = "timer" }))
            return table.concat(out, "\n")
        end"#,
    );
    let v = value_of(&out);
    let line = |what: &str| {
        v.lines()
            .find(|l| l.starts_with(&format!("{what}=")))
            .unwrap_or_else(|| panic!("{what} missing: {v}"))
            .to_owned()
    };
    assert!(
        line("cycle").contains("Invalid:argument[1][1]: cycle"),
        "{v}"
    );
    assert!(line("deep").contains("Invalid:argument[2]"), "{v}");
    assert!(line("deep").contains("nesting deeper than 64"), "{v}");
    assert!(
        line("function").contains("Invalid:argument[2]: function cannot be sent"),
        "{v}"
    );
    assert!(
        line("nested function").contains("Invalid:argument.f: function cannot be sent"),
        "{v}"
    );
    assert!(line("thread").contains("thread cannot be sent"), "{v}");
    assert!(line("nested thread").contains("argument.co: thread"), "{v}");
    assert!(line("channel").contains("channel cannot be sent"), "{v}");
    assert!(
        line("nested channel").contains("argument[1].ch: channel"),
        "{v}"
    );
    assert!(line("case").contains("channel case cannot be sent"), "{v}");
    assert!(line("table key").contains("Invalid:"), "{v}");
    assert!(line("forged tag").contains("timer cannot be sent"), "{v}");
}

#[test]
fn spawn_arguments_sharing_one_table_stop_at_the_budget() {
    // Its own arrays take a few MB: room enough that only the budget of a
    // spawn's arguments stops it (under the harness's 8 MiB, a run beside
    // other tests was now and then ended by its memory first).
    let out = spawning_with(
        HostLimits {
            memory_per_process: 64 << 20,
            ..crate::harness::limits()
        },
        r#"return function()
            local out = {}
            local leaf = { 1 }
            local shared = {}
            for i = 1, 100000 do shared[i] = leaf end
            local _, e1 = process.spawn("h:args", "test:host", shared)
            out[#out + 1] = e1:kind()
            local dag = {} for _ = 1, 60 do dag = { dag, dag } end
            shared = nil
            local _, e2 = process.spawn("h:args", "test:host", dag, dag)
            out[#out + 1] = e2:kind()
            -- The same table as 10,000 arguments.
            local many = {}
            for i = 1, 10000 do many[i] = leaf end
            local _, e3 = process.spawn("h:args", "test:host", table.unpack(many))
            out[#out + 1] = e3:kind()
            -- 200,000 integers and 200,000 empty tables as arguments.
            local ints, tables = {}, {}
            for i = 1, 100000 do ints[i] = i end
            local _, e4 = process.spawn("h:args", "test:host", table.unpack(ints))
            out[#out + 1] = e4:kind()
            ints = nil
            for i = 1, 20000 do tables[i] = {} end
            local _, e5 = process.spawn("h:args", "test:host", table.unpack(tables))
            out[#out + 1] = e5:kind()
            -- and each message says what was exceeded
            for _, e in ipairs({ e1, e2, e3, e4, e5 }) do
                assert(e:message():find("max_message_bytes", 1, true)
                    or e:message():find("tables than", 1, true), e:message())
            end
            return table.concat(out, ",")
        end"#,
    );
    assert_eq!(value_of(&out), "Invalid,Invalid,Invalid,Invalid,Invalid");
}

#[test]
fn spawn_arguments_with_holes_and_lying_borders_cross_as_maps() {
    let out = spawning(
        r#"return function()
            local holes = { 1, nil, 3, [1000000000] = 4 }
            local lying = {}
            for i = 44, 0, -1 do lying[1 << i] = i end
            local r = process.exec("h:args", "test:host", holes, lying)
            return tostring(r)
        end"#,
    );
    assert_eq!(value_of(&out), "2,t3,t45");
}

#[test]
fn spawn_with_an_entry_or_host_that_is_not_a_string_runs_no_metamethod() {
    let out = spawning(
        r#"return function()
            local sly = setmetatable({}, trap_mt())
            local out = {}
            for _, args in ipairs({ { sly, "test:host" }, { "h:args", sly }, { 1, "test:host" },
                { "h:args", nil }, { nil, nil } }) do
                local ok, err = pcall(process.spawn, args[1], args[2], sly)
                assert(not ok, "accepted")
                out[#out + 1] = bare(err)
            end
            assert(not ran, "a metamethod ran")
            return table.concat(out, "\n")
        end"#,
    );
    let v = value_of(&out);
    for line in v.lines() {
        assert!(
            line.starts_with("process.spawn: entry id must be a string")
                || line.starts_with("process.spawn: host must be a string"),
            "{v}"
        );
    }
}

// ---------------------------------------------------------------------
// 3. The receive case a channel hands out again
// ---------------------------------------------------------------------

#[test]
fn a_receive_case_mutated_by_its_process_still_serves_only_its_channel() {
    let out = lua(
        r#"return function()
            local a, b = channel.new(4), channel.new(4)
            local ca = a:case_receive()
            -- Its fields are the process's own to scribble on...
            rawset(ca, "s", b)
            rawset(ca, "send", true)
            rawset(ca, 1, b:case_receive())
            for i = 1, 100 do rawset(ca, "k" .. i, i) end
            -- ...but its metatable is the kernel's.
            assert(getmetatable(ca) == false, "the case's metatable is visible")
            assert(not pcall(setmetatable, ca, {}), "the case's metatable was replaced")
            assert(a:case_receive() == ca, "another case")
            b:send("b")
            a:send("a")
            local r = channel.select({ ca })
            assert(r.channel == a and r.value == "a", "the case served another channel")
            -- Not data: it cannot be sent, to itself or in a table.
            local ok, err = process.send(process.pid(), "t", ca)
            assert(not ok and err:message():find("channel case cannot be sent", 1, true), tostring(err))
            local ok2, err2 = process.send(process.pid(), "t", { c = ca })
            assert(not ok2 and err2:message():find("payload.c: channel case", 1, true), tostring(err2))
            -- A forged case (a table shaped like one) is no case.
            local forged = setmetatable({}, { __warren = "channel case" })
            local ok3, err3 = pcall(channel.select, { forged })
            assert(not ok3 and tostring(err3):find("case 1 is not a channel case", 1, true), tostring(err3))
            local ok4, err4 = pcall(channel.select, { { s = b, send = false } })
            assert(not ok4 and tostring(err4):find("not a channel case", 1, true), tostring(err4))
            return b:receive()
        end"#,
        Vec::new(),
    );
    assert_eq!(value_of(&out), "b");
}

#[test]
fn a_cases_table_that_lies_is_read_raw() {
    let out = trapped(
        r#"return function()
            local a = channel.new(1)
            a:send(1)
            local out = {}
            -- __len says 2, __index would serve case 2: both unread.
            local cases = setmetatable({ a:case_receive() }, trap_mt())
            local r = channel.select(cases)
            out[#out + 1] = tostring(r.value)
            local empty = setmetatable({ default = true },
                trap_mt({ __index = function() ran = true return a:case_receive() end }))
            local r0 = channel.select(empty)
            out[#out + 1] = tostring(r0.default)
            -- A border of 2^44 of nothing but holes.
            local holes = {}
            for i = 44, 0, -1 do holes[1 << i] = a:case_receive() end
            local ok2, err2 = pcall(channel.select, holes)
            out[#out + 1] = tostring(ok2) .. ":" .. bare(err2)
            assert(not ran, "a metamethod ran")
            return table.concat(out, " | ")
        end"#,
    );
    let v = value_of(&out);
    assert!(v.starts_with("1 | true | false:"), "{v}");
    assert!(v.contains("more than 4096 cases"), "{v}");
}

#[test]
fn a_select_of_no_cases_is_a_deadlock_not_a_hang() {
    // A cases table whose raw length is 0 but whose __len and __index
    // would make cases: nothing to wait on.
    let out = trapped(
        r#"return function()
            local a = channel.new(1)
            a:send(1)
            local empty = setmetatable({}, trap_mt({ __index = function() ran = true return a:case_receive() end,
                __len = function() ran = true return 1 end }))
            channel.select(empty)
            return "returned"
        end"#,
    );
    out.assert_ended(ErrorKind::Internal, "deadlock");
}

#[test]
fn four_thousand_copies_of_one_case_wait_and_are_cleaned_up() {
    // One case 4096 times in one select: it waits 4096 times on one
    // channel; a second select of 4097 is refused; repeated selects
    // ended by a timer leave only waiters that are never woken, and a
    // value sent later is taken by the next receiver.
    let out = lua(
        r#"local time = require("time")
        return function()
            local a = channel.new()
            local ca = a:case_receive()
            local cases = {}
            for i = 1, 4096 do cases[i] = ca end
            local ok, err = pcall(channel.select, (function()
                local t = { table.unpack(cases) } t[4097] = ca return t end)())
            assert(not ok and tostring(err):find("more than 4096 cases", 1, true), tostring(err))
            coroutine.spawn(function() a:send("x") end)
            local r = channel.select(cases)
            assert(r.value == "x", "the value")
            for round = 1, 20 do
                local t = time.after("1ms")
                cases[4096] = t:case_receive()
                local r2 = channel.select(cases)
                assert(r2.channel == t, "round " .. round)
            end
            coroutine.spawn(function() a:send("y") end)
            return a:receive()
        end"#,
        Vec::new(),
    );
    assert_eq!(value_of(&out), "y");
    out.assert_progress_during(1);
}

#[test]
fn the_inbox_case_waited_on_thousands_of_times_still_takes_each_message_once() {
    // The inbox's case 4095 times in a select: one message wakes it once,
    // and the others are taken by the next receives, each counted once
    // against the mailbox (so the mailbox is not left full).
    let out = lua(
        r#"local time = require("time")
        return function()
            local me = process.pid()
            local inbox = process.inbox()
            local ci = inbox:case_receive()
            local cases = {}
            for i = 1, 4095 do cases[i] = ci end
            for round = 1, 20 do
                local t = time.after("1ms")
                cases[4096] = t:case_receive()
                channel.select(cases)
            end
            cases[4096] = nil
            coroutine.spawn(function() for i = 1, 3 do assert(process.send(me, "m", i)) end end)
            local r = channel.select(cases)
            local got = { r.value:payload():data() }
            for _ = 1, 2 do got[#got + 1] = inbox:receive():payload():data() end
            -- The mailbox has room for mailbox_limit again (what was
            -- taken is reported as it is taken, or, on the kernel's Lua
            -- paths, when the step ends: the sleep ends it).
            time.sleep("1ms")
            local sent = 0
            while process.send(me, "fill") do sent = sent + 1 end
            return table.concat(got, ",") .. " " .. sent
        end"#,
        Vec::new(),
    );
    assert_eq!(value_of(&out), "1,2,3 100");
}

#[test]
fn a_message_taken_frees_its_place_in_the_mailbox_within_the_same_step() {
    // The harness's mailbox_limit is 100: a process fills its own
    // mailbox, and each receive gives one place back at once (the count
    // goes to the core with the take, not at the end of the step), so
    // it sends again without waiting, taken from the inbox and from a
    // listen channel alike, and no more than it took.
    let out = lua(
        r#"return function()
            local me = process.pid()
            local inbox = process.inbox()
            local listen = process.listen("l")
            local sent = 0
            while process.send(me, "fill") do sent = sent + 1 end
            local out = { sent }
            for round = 1, 3 do
                assert(inbox:receive():topic() == "fill")
                local again = 0
                while process.send(me, "l", round) do again = again + 1 end
                out[#out + 1] = again
                assert(listen:receive() == round)
                assert(process.send(me, "fill"), "the listen take gave no place back")
                assert(not process.send(me, "fill"))
            end
            return table.concat(out, ",")
        end"#,
        Vec::new(),
    );
    assert_eq!(value_of(&out), "100,1,1,1");
}

#[test]
fn a_case_of_a_closed_channel_or_of_an_ended_coroutines_channel_still_answers() {
    let out = lua(
        r#"return function()
            local made = channel.new(1)
            local c
            local co = coroutine.create(function()
                local ch = channel.new(2)
                ch:send("left")
                c = ch:case_receive()
                made:send(ch)
            end)
            coroutine.resume(co)
            assert(coroutine.status(co) == "dead")
            local ch = made:receive()
            local out = {}
            local r = channel.select({ c })
            out[#out + 1] = tostring(r.value)
            ch:close()
            r = channel.select({ c, c, c })
            out[#out + 1] = tostring(r.ok) .. ":" .. tostring(r.value)
            -- a closed channel's case in a select with a send case
            local other = channel.new(1)
            r = channel.select({ other:case_send(1), c })
            out[#out + 1] = tostring(r.channel == other or r.channel == ch)
            -- a send case on the closed channel raises
            local ok, err = pcall(channel.select, { ch:case_send(1) })
            out[#out + 1] = tostring(ok) .. ":" .. tostring(tostring(err):find("closed", 1, true) ~= nil)
            return table.concat(out, " ")
        end"#,
        Vec::new(),
    );
    assert_eq!(value_of(&out), "left false:nil true false:true");
}

#[test]
fn a_select_of_4096_distinct_channels_blocks_and_wakes_once() {
    let out = lua(
        r#"return function()
            local chans, cases = {}, {}
            for i = 1, 4096 do
                chans[i] = channel.new()
                cases[i] = chans[i]:case_receive()
            end
            local done = channel.new(1)
            coroutine.spawn(function()
                local r = channel.select(cases)
                done:send(r.value)
            end)
            coroutine.spawn(function() chans[4000]:send("woke") end)
            local v = done:receive()
            -- every other channel's waiter is stale: a send to one of
            -- them blocks until a real receiver comes.
            local r = channel.select({ chans[1]:case_send("late"), default = true })
            return v .. " " .. tostring(r.default)
        end"#,
        Vec::new(),
    );
    assert_eq!(value_of(&out), "woke true");
}

// ---------------------------------------------------------------------
// 4. errors.new and error stacks
// ---------------------------------------------------------------------

#[test]
fn an_error_made_deep_in_a_recursion_has_a_bounded_stack() {
    let out = lua(
        r#"return function()
            local made
            local function down(n)
                if n == 0 then made = errors.new("deep") return 0 end
                return 1 + down(n - 1)
            end
            down(50000)
            local stack = made:stack()
            assert(#stack < 8192, "a stack of " .. #stack .. " bytes")
            assert(stack:find("skipping", 1, true), stack)
            local frames = errors.call_stack(made).frames
            assert(#frames > 10 and #frames < 40, #frames .. " frames")
            -- It crosses as any error.
            assert(process.send(process.pid(), "e", made))
            local back = process.inbox():receive():payload():data()
            return back:kind() .. ":" .. back:message()
        end"#,
        Vec::new(),
    );
    assert_eq!(value_of(&out), ":deep");
}

#[test]
fn errors_made_in_a_loop_at_depth_are_preempted_between_calls() {
    // Each errors.new at depth 30,000 walks the whole stack in C (to find
    // its last level); a loop of them is preempted between calls.
    let out = lua(
        r#"return function()
            local n = 0
            local function down(d)
                if d == 0 then
                    local t0 = os.clock()
                    while os.clock() - t0 < 0.2 do errors.new("x") n = n + 1 end
                    return 0
                end
                return 1 + down(d - 1)
            end
            down(30000)
            return "made " .. n
        end"#,
        Vec::new(),
    );
    // It may run into its memory limit (the recursion) or cpu budget;
    // either way, it ends cleanly and the neighbour ticks throughout.
    match &out.exit {
        Ok(v) => assert!(
            v.as_str().unwrap_or_default().starts_with("made "),
            "{out:?}"
        ),
        Err(e) => assert_eq!(e.kind, ErrorKind::RateLimited, "{e}"),
    }
    out.assert_progress_during(5);
}

#[test]
fn errors_in_coroutines_carry_their_own_stacks() {
    let out = lua(
        r#"return function()
            local out = {}
            local e1 = coroutine.wrap(function() return errors.new("in wrap") end)()
            out[#out + 1] = e1:message()
            local co = coroutine.create(function()
                coroutine.yield(errors.new("first"))
                error(errors.new({ kind = errors.NOT_FOUND, message = "raised" }))
            end)
            local _, e2 = coroutine.resume(co)
            out[#out + 1] = e2:message()
            local ok, e3 = coroutine.resume(co)
            out[#out + 1] = tostring(ok) .. ":" .. e3:kind() .. ":" .. e3:message()
            assert(type(e3:stack()) == "string")
            -- An error object made in a spawned coroutine that ended.
            local ch = channel.new(1)
            coroutine.spawn(function() ch:send(errors.new("spawned")) end)
            local e4 = ch:receive()
            out[#out + 1] = e4:message() .. ":" .. tostring(errors.call_stack(e4) ~= nil)
            return table.concat(out, " ")
        end"#,
        Vec::new(),
    );
    assert_eq!(
        value_of(&out),
        "in wrap first false:NotFound:raised spawned:true"
    );
}

#[test]
fn a_huge_error_message_is_cut_at_the_exit() {
    let out = body(r#"error(errors.new(string.rep("m", 4 << 20)))"#);
    let err = out.error();
    assert_eq!(err.kind, ErrorKind::Unknown, "{err}");
    assert!(
        err.message.len() <= 17 * 1024,
        "{} bytes",
        err.message.len()
    );
    out.assert_neighbour_ticks();
}

#[test]
fn an_error_message_with_a_spinning_tostring_is_preempted() {
    let out = body(
        r#"local m = setmetatable({}, { __tostring = function() while true do end end })
        local e = errors.new("NotFound", m)
        return e:message()"#,
    );
    out.assert_ended(ErrorKind::RateLimited, "cpu budget exceeded");
    out.assert_progress_during(5);
}

#[test]
fn error_tables_with_metatables_and_forged_errors_are_read_raw() {
    let out = trapped(
        r#"return function()
            local out = {}
            -- A spec table whose metatable lies: its fields read raw.
            local spec = setmetatable({ message = "raw" }, trap_mt())
            local e = errors.new(spec)
            out[#out + 1] = e:kind() .. ":" .. e:message()
            -- A kind past 128 bytes, or not a string, is refused.
            local ok, err = pcall(errors.new, { kind = string.rep("k", 129) })
            out[#out + 1] = tostring(ok) .. ":" .. tostring(tostring(err):find("at most 128", 1, true) ~= nil)
            ok, err = pcall(errors.new, { kind = setmetatable({}, trap_mt()) })
            out[#out + 1] = tostring(ok)
            -- The methods on forged tables read raw or refuse.
            local stack = e.stack
            out[#out + 1] = tostring(stack({ _stack = "forged" }))
            out[#out + 1] = tostring(stack(setmetatable({}, trap_mt())))
            ok = pcall(stack, "not a table")
            out[#out + 1] = tostring(ok)
            out[#out + 1] = tostring(errors.call_stack({ _stack = "\n\ta:1: in x" }))
            out[#out + 1] = tostring(errors.is(setmetatable({ _kind = "NotFound" }, trap_mt()), errors.NOT_FOUND))
            -- A real error rawset with a huge stack: call_stack is bounded
            -- by the process's own memory.
            local real = errors.new("r")
            rawset(real, "_stack", string.rep("\n\ta:1: in x", 1000))
            out[#out + 1] = #errors.call_stack(real).frames
            rawset(real, "_stack", sly)
            out[#out + 1] = tostring(errors.call_stack(real))
            assert(not ran, "a metamethod ran")
            return table.concat(out, " ")
        end"#,
    );
    assert_eq!(
        value_of(&out),
        ":raw false:true false forged nil false nil false 1000 nil"
    );
}

#[test]
fn an_error_object_with_a_forged_metatable_is_no_error_object() {
    let out = lua(
        r#"return function()
            -- `__warren_error` in a process's own metatable: the host's walk
            -- takes it for an error object (it has no more rights than
            -- errors.new gives), the same-VM copy drops the metatable.
            local forged = setmetatable({ _kind = "NotFound", _message = "forged", _stack = 7 },
                { __warren_error = true })
            assert(process.send(process.pid(), "t", forged))
            local got = process.inbox():receive():payload():data()
            return tostring(errors.is(got, errors.NOT_FOUND)) .. ":" .. tostring(getmetatable(got))
        end"#,
        Vec::new(),
    );
    assert_eq!(value_of(&out), "false:nil");
}

#[test]
fn a_message_from_another_vm_of_every_topic_length_is_routed_alike() {
    // Topics of up to 64 bytes are routed in C (`inbox.rs`), longer ones
    // by the kernel: both reach the listen channel and the inbox with the
    // same topic, none or one payload, and the mailbox is counted the
    // same (so it has room for mailbox_limit again afterwards).
    let app = two_hosts().other_limits(reaching()).entry(
        "h:sender",
        r#"return function(to)
            for _, len in ipairs({ 1, 63, 64, 65, 1024 }) do
                local topic = string.rep("t", len - 1) .. "\0"
                assert(process.send(to, topic))
                assert(process.send(to, topic, len))
                local lt = "L" .. topic
                if #lt <= 1024 then
                    assert(process.send(to, lt, len))
                    assert(process.send(to, lt))
                else
                    local ok, err = process.send(to, lt, len)
                    assert(not ok and err:kind() == errors.INVALID, "a long topic was sent")
                end
            end
            return "sent"
        end"#,
    );
    let app = app.entry(
        "h:attacker",
        &format!(
            r#"local time = require("time")
            return function()
            local me = process.pid()
            local listens = {{}}
            for _, len in ipairs({{ 1, 63, 64, 65, 1024 }}) do
                local topic = "L" .. string.rep("t", len - 1) .. "\0"
                if #topic <= 1024 then listens[len] = process.listen(topic) end
            end
            local r = process.exec("h:sender", "{OTHER_HOST}", me)
            assert(r == "sent", tostring(r))
            local out = {{}}
            local inbox = process.inbox()
            for _, len in ipairs({{ 1, 63, 64, 65, 1024 }}) do
                local topic = string.rep("t", len - 1) .. "\0"
                local m1, m2 = inbox:receive(), inbox:receive()
                assert(m1:topic() == topic and m2:topic() == topic, "topic of " .. len)
                assert(m1:payload():data() == nil and m2:payload():data() == len, "payload of " .. len)
                local ch = listens[len]
                if ch then
                    local v1, v2 = ch:receive(), ch:receive()
                    assert(v1 == len and type(v2) == "table" and next(v2) == nil, "listen of " .. len)
                    out[#out + 1] = len .. "L"
                else
                    -- the longer topic past the limit was refused at the sender
                    out[#out + 1] = tostring(len)
                end
            end
            -- What was taken is reported with the next step.
            time.sleep("1ms")
            local sent = 0
            while process.send(me, "fill") do sent = sent + 1 end
            return table.concat(out, ",") .. " " .. sent
        end"#
        ),
    );
    let out = attack(app, "h:attacker", Vec::new());
    assert_eq!(value_of(&out), "1L,63L,64L,65L,1024 100");
}

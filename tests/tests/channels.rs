//! The `channel` table of `lua-api.md` and `coroutine.spawn`.

use warren_core::Value;
use warren_tests::*;

#[test]
fn unbuffered_send_waits_for_a_receiver() {
    let v = ok(r#"return function()
        local ch, gate, done, log = channel.new(), channel.new(), channel.new(1), {}
        coroutine.spawn(function()
            log[#log + 1] = "send start"
            ch:send("v")
            log[#log + 1] = "send done"
            done:send(true)
        end)
        coroutine.spawn(function()
            log[#log + 1] = "observer"
            gate:send(true)
        end)
        gate:receive()
        log[#log + 1] = "receiving"
        log[#log + 1] = "got " .. ch:receive()
        done:receive()
        return table.concat(log, ",")
    end"#);
    // The sender stays blocked while nobody receives, however long others run.
    assert_eq!(v, s("send start,observer,receiving,got v,send done"));
}

#[test]
fn receivers_are_served_in_the_order_they_waited() {
    // The first receiver waits in the channel's single slot, later ones in
    // its queue; a select that completed on another channel leaves a stale
    // entry in the slot, which the next receiver replaces.
    let v = ok(r#"return function()
        local ch, ready, got = channel.new(), channel.new(8), {}
        local function receiver(name)
            coroutine.spawn(function()
                ready:send(true)
                local v = ch:receive()
                got[#got + 1] = name .. "=" .. tostring(v)
                ready:send(true)
            end)
            ready:receive() -- it waits on ch once this returns
        end
        receiver("A"); receiver("B")
        ch:send(1); ready:receive()
        receiver("C") -- behind B, though the slot is free again
        ch:send(2); ready:receive()
        ch:send(3); ready:receive()
        local other = channel.new(1)
        coroutine.spawn(function()
            ready:send(true)
            local r = channel.select({ ch:case_receive(), other:case_receive() })
            got[#got + 1] = "S=" .. tostring(r.value)
            ready:send(true)
        end)
        ready:receive()
        other:send("o"); ready:receive()
        receiver("D")
        ch:send(4); ready:receive()
        local r = channel.select({ ch:case_send(5), default = true })
        return table.concat(got, ",") .. (r.default and ",nobody waits" or ",a stale receiver took 5")
    end"#);
    assert_eq!(v, s("A=1,B=2,C=3,S=o,D=4,nobody waits"));
}

#[test]
fn senders_are_served_in_the_order_they_waited() {
    // Blocked senders mirror receivers: the first waits in the channel's
    // slot, later ones in its queue; one that comes while the queue is
    // not empty goes behind it though the slot is free; a select's send
    // that completed on another channel leaves a stale slot entry, which
    // the next sender replaces; on a buffered channel a receive moves the
    // oldest blocked sender's value into the buffer.
    let v = ok(r#"return function()
        local ch, ready, log = channel.new(), channel.new(16), {}
        local function sender(name, v, c)
            coroutine.spawn(function()
                ready:send(true)
                c:send(v)
                log[#log + 1] = name .. " sent"
                ready:send(true)
            end)
            ready:receive() -- it waits on c once this returns
        end
        sender("A", 1, ch); sender("B", 2, ch)
        log[#log + 1] = "got " .. ch:receive(); ready:receive()
        sender("C", 3, ch) -- behind B, though the slot is free again
        log[#log + 1] = "got " .. ch:receive(); ready:receive()
        log[#log + 1] = "got " .. ch:receive(); ready:receive()
        local other = channel.new()
        coroutine.spawn(function()
            ready:send(true)
            local r = channel.select({ ch:case_send(99), other:case_receive() })
            log[#log + 1] = "S took " .. tostring(r.value)
            ready:send(true)
        end)
        ready:receive()
        other:send("o"); ready:receive()
        sender("D", 4, ch)
        log[#log + 1] = "got " .. ch:receive(); ready:receive()
        local r = channel.select({ ch:case_receive(), default = true })
        log[#log + 1] = r.default and "no sender left" or ("a stale sender gave " .. tostring(r.value))
        local buf = channel.new(1)
        buf:send(10)
        sender("E", 11, buf); sender("F", 12, buf)
        log[#log + 1] = "buf " .. buf:receive(); ready:receive() -- E's 11 moves in
        log[#log + 1] = "buf " .. buf:receive(); ready:receive() -- F's 12 moves in
        log[#log + 1] = "buf " .. buf:receive()
        return table.concat(log, ",")
    end"#);
    assert_eq!(
        v,
        s(
            "got 1,A sent,got 2,B sent,got 3,C sent,S took o,got 4,D sent,no sender left,\
           buf 10,E sent,buf 11,F sent,buf 12"
        )
    );
}

#[test]
fn close_wakes_every_blocked_sender() {
    // The oldest waits in the slot, the others in the queue, one of them a
    // select's send case: every one is woken by the close.
    let v = ok(r#"return function()
        local ch, ready, out = channel.new(), channel.new(8), {}
        for i = 1, 3 do
            coroutine.spawn(function()
                ready:send(true)
                local ok, err = pcall(ch.send, ch, i)
                out[#out + 1] = i .. (ok and ":sent" or (tostring(err):find("closed") and ":closed" or ":?"))
                ready:send(true)
            end)
            ready:receive()
        end
        coroutine.spawn(function()
            ready:send(true)
            local ok, err = pcall(channel.select, { ch:case_send(4) })
            out[#out + 1] = "4" .. (ok and ":sent" or (tostring(err):find("closed") and ":closed" or ":?"))
            ready:send(true)
        end)
        ready:receive()
        ch:close()
        for _ = 1, 4 do ready:receive() end
        table.sort(out)
        return table.concat(out, ",")
    end"#);
    assert_eq!(v, s("1:closed,2:closed,3:closed,4:closed"));
}

#[test]
fn a_receive_case_is_made_once_per_channel_and_serves_every_select() {
    // A channel hands out one receive case (a select loop makes none);
    // the same case in several selects, twice in one, and after its
    // channel closed behaves as a fresh one would.
    let v = ok(r#"return function()
        local a, b = channel.new(4), channel.new(4)
        local ca = a:case_receive()
        assert(ca == a:case_receive() and ca ~= b:case_receive(), "one case per channel")
        local got = {}
        for i = 1, 3 do a:send(i) end
        for _ = 1, 2 do
            local r = channel.select({ ca, b:case_receive() })
            got[#got + 1] = (r.channel == a and "a" or "b") .. r.value
        end
        local r = channel.select({ ca, ca })
        got[#got + 1] = (r.channel == a and "a" or "b") .. r.value
        b:send("x")
        r = channel.select({ ca, b:case_receive() })
        got[#got + 1] = (r.channel == b and "b" or "a") .. r.value
        a:close()
        r = channel.select({ ca })
        got[#got + 1] = tostring(r.ok) .. ":" .. tostring(r.value)
        return table.concat(got, " ")
    end"#);
    assert_eq!(v, s("a1 a2 a3 bx false:nil"));
}

/// The case methods (C, `machine/select.rs`): a send case is made per
/// call and carries its own value (nil too); either method on something
/// that is not a channel raises at its caller, naming what it got; a case
/// is an opaque object no process can retarget.
#[test]
fn case_methods_carry_their_values_and_refuse_what_is_not_a_channel() {
    let v = ok(r#"return function()
        local out = {}
        local a = channel.new(4)
        local c1, c2, cn = a:case_send(1), a:case_send(2), a:case_send(nil)
        out[#out + 1] = tostring(c1 ~= c2)
        for _, c in ipairs({ c2, cn, c1 }) do channel.select({ c }) end
        for _ = 1, 3 do local v, ok = a:receive() out[#out + 1] = tostring(v) .. ":" .. tostring(ok) end
        local function at(e) return tostring(e):match("^(.-:%d+:)") end
        local _, e = pcall(function() a.case_receive(42) end); local _, here = pcall(function() error("x") end)
        out[#out + 1] = (tostring(e):find("expected a channel, got number", 1, true) and at(e) == at(here)) and "receive refused" or tostring(e)
        _, e = pcall(function() a.case_send({}, 1) end); _, here = pcall(function() error("x") end)
        out[#out + 1] = (tostring(e):find("expected a channel, got table", 1, true) and at(e) == at(here)) and "send refused" or tostring(e)
        local case = a:case_receive()
        out[#out + 1] = tostring(getmetatable(case)) .. " " .. tostring(pcall(setmetatable, case, {}))
        return table.concat(out, " ")
    end"#);
    assert_eq!(
        v,
        s("true 2:true nil:true 1:true receive refused send refused false false")
    );
}

#[test]
fn repeated_select_sends_do_not_leak_waiters() {
    // Each select leaves a completed send case on `idle`: in its slot,
    // replaced by the next, never a queue that grows.
    let v = ok(r#"return function()
        local idle, tick = channel.new(), channel.new()
        local before
        coroutine.spawn(function() for i = 1, 200000 do tick:send(i) end end)
        for i = 1, 200000 do
            local r = channel.select({ idle:case_send(i), tick:case_receive() })
            assert(r.value == i)
            if i == 1000 then before = collectgarbage("count") end
        end
        return collectgarbage("count") - before < 8192
    end"#);
    assert_eq!(v, Value::Bool(true));
}

#[test]
fn a_select_waiting_twice_on_one_channel_takes_one_value() {
    // Its two receive cases wait in the channel's slot and in its queue;
    // the first send completes the select, the second finds only the
    // completed case and waits for a real receiver.
    let v = ok(r#"return function()
        local ch, done = channel.new(), channel.new(1)
        coroutine.spawn(function()
            local r = channel.select({ ch:case_receive(), ch:case_receive() })
            done:send(r.value)
        end)
        coroutine.spawn(function() ch:send("a") end)
        local first = done:receive()
        local r = channel.select({ ch:case_send("b"), default = true })
        coroutine.spawn(function() done:send((ch:receive())) end)
        ch:send("c")
        return first .. (r.default and ",b not taken" or ",b taken") .. "," .. done:receive()
    end"#);
    assert_eq!(v, s("a,b not taken,c"));
}

#[test]
fn buffered_send_does_not_block_until_full() {
    let v = ok(r#"return function()
        local ch = channel.new(2)
        assert(ch:send(1) and ch:send(2))
        local r = channel.select({ ch:case_send(3), default = true })
        assert(r.default == true, "full buffer: send not ready")
        local a, b = ch:receive(), ch:receive()
        return { a, b }
    end"#);
    assert_eq!(v, Value::Array(vec![Value::Int(1), Value::Int(2)]));
}

#[test]
fn receive_after_close_drains_then_reports_closed() {
    let v = ok(r#"return function()
        local ch = channel.new(3)
        ch:send("a"); ch:send("b")
        ch:close()
        ch:close() -- twice is a no-op
        local a, ok1 = ch:receive()
        local b, ok2 = ch:receive()
        local c, ok3 = ch:receive()
        assert(ok1 and ok2 and c == nil and ok3 == false)
        return a .. b
    end"#);
    assert_eq!(v, s("ab"));
}

#[test]
fn close_wakes_all_receivers() {
    let v = ok(r#"return function()
        local ch, done = channel.new(), channel.new(3)
        for i = 1, 3 do
            coroutine.spawn(function()
                local v, ok = ch:receive()
                done:send(ok == false and v == nil)
            end)
        end
        coroutine.spawn(function() ch:close() end)
        local n = 0
        for _ = 1, 3 do if done:receive() then n = n + 1 end end
        return n
    end"#);
    assert_eq!(v, Value::Int(3));
}

#[test]
fn send_on_a_closed_channel_raises() {
    let e = fails(
        r#"return function()
        local ch = channel.new(1)
        ch:close()
        ch:send(1)
    end"#,
    );
    assert!(
        e.message.contains("send on closed channel") && e.message.contains("t:main.lua:4"),
        "{}",
        e.message
    );
}

#[test]
fn a_blocked_sender_raises_when_the_channel_closes() {
    let v = ok(r#"return function()
        local ch, result = channel.new(), channel.new(1)
        coroutine.spawn(function()
            local ok, err = pcall(ch.send, ch, "x")
            result:send(ok == false and tostring(err):find("closed") ~= nil)
        end)
        coroutine.spawn(function() ch:close() end)
        return result:receive()
    end"#);
    assert_eq!(v, Value::Bool(true));
}

#[test]
fn select_takes_ready_cases_in_table_order() {
    let v = ok(r#"return function()
        local a, b = channel.new(1), channel.new(1)
        a:send("a"); b:send("b")
        local r = channel.select({ b:case_receive(), a:case_receive() })
        assert(r.channel == b and r.value == "b" and r.ok == true)
        local r2 = channel.select({ b:case_receive(), a:case_receive() })
        return r2.value
    end"#);
    assert_eq!(v, s("a"));
}

#[test]
fn select_with_default_never_blocks() {
    let v = ok(r#"return function()
        local ch = channel.new()
        local r = channel.select({ ch:case_receive(), default = true })
        return r.default
    end"#);
    assert_eq!(v, Value::Bool(true));
}

#[test]
fn select_default_says_ok_and_the_second_argument_is_wippys_default() {
    let v = ok(r#"return function()
        local ch = channel.new()
        local r = channel.select({ ch:case_receive(), default = true })
        assert(r.default == true and r.ok == true, "default case")
        local r2 = channel.select({ ch:case_receive() }, true)
        assert(r2.default == true and r2.ok == true, "non-blocking form")
        local buffered = channel.new(1)
        buffered:send("x")
        local r3 = channel.select({ buffered:case_receive() }, true)
        return r3.value
    end"#);
    assert_eq!(v, s("x"));
}

#[test]
fn receive_returns_exactly_value_and_ok_whether_it_blocked_or_not() {
    let v = ok(r##"return function()
        local ch = channel.new(1)
        ch:send(1)
        local counts = { select("#", ch:receive()) } -- ready at once
        coroutine.spawn(function() ch:send(2) end)
        counts[2] = select("#", ch:receive()) -- had to block
        coroutine.spawn(function() ch:close() end)
        counts[3] = select("#", ch:receive()) -- woken by close
        process.send(process.pid(), "t", 1)
        counts[4] = select("#", process.inbox():receive()) -- the inbox, ready
        coroutine.spawn(function() process.send(process.pid(), "t", 2) end)
        counts[5] = select("#", process.inbox():receive()) -- the inbox, blocked
        return table.concat(counts, ",")
    end"##);
    assert_eq!(v, s("2,2,2,2,2"));
}

#[test]
fn select_blocks_until_a_case_is_ready_and_supports_send_cases() {
    let v = ok(r#"return function()
        local input, output = channel.new(), channel.new()
        coroutine.spawn(function() output:receive() end)
        local r = channel.select({ input:case_receive(), output:case_send("x") })
        assert(r.channel == output and r.ok == true)
        coroutine.spawn(function() input:send(7) end)
        local r2 = channel.select({ input:case_receive(), output:case_send("never") })
        return r2.value
    end"#);
    assert_eq!(v, Value::Int(7));
}

#[test]
fn select_on_a_closed_channel_reports_not_ok() {
    let v = ok(r#"return function()
        local ch = channel.new()
        ch:close()
        local r = channel.select({ ch:case_receive() })
        return r.ok
    end"#);
    assert_eq!(v, Value::Bool(false));
}

#[test]
fn select_with_a_timeout_case() {
    let v = ok(r#"local time = require("time")
    return function()
        local never = channel.new()
        coroutine.spawn(function() never:receive() end) -- keep a peer alive
        local timeout = time.after("10ms")
        local r = channel.select({ never:case_receive(), timeout:case_receive() })
        never:send("release")
        return r.channel == timeout
    end"#);
    assert_eq!(v, Value::Bool(true));
}

#[test]
fn repeated_selects_do_not_leak_waiters() {
    // A leaked waiter costs at least 100 bytes, so 200k iterations would
    // leak 20 MB; uncollected garbage stays far below the 8 MB bound.
    let v = ok(r#"return function()
        local idle, tick = channel.new(), channel.new()
        local before
        -- The feeder wakes the select through `tick` while it also waits on
        -- `idle`, leaving a completed waiter on `idle` each time.
        coroutine.spawn(function() for i = 1, 200000 do tick:send(i) end end)
        for i = 1, 200000 do
            local r = channel.select({ idle:case_receive(), tick:case_receive() })
            assert(r.value == i)
            if i == 1000 then before = collectgarbage("count") end
        end
        return collectgarbage("count") - before < 8192
    end"#);
    assert_eq!(v, Value::Bool(true));
}

#[test]
fn channel_misuse_raises() {
    let e = fails("return function() channel.new(-1) end");
    assert!(e.message.contains("non-negative integer"), "{}", e.message);
    let e = fails("return function() channel.select({ 42 }) end");
    assert!(e.message.contains("not a channel case"), "{}", e.message);
}

/// `channel.select` (in C) checks every case before it tries one, reads
/// the cases table raw, and raises where the caller called it, before a
/// wait and after one.
#[test]
fn select_checks_its_cases_first_and_raises_at_the_caller() {
    let v = ok(r#"return function()
        local out = {}
        local function at(e) return tostring(e):match("^(.-:%d+:)") end
        local buf = channel.new(1)
        local _, bad = pcall(function() channel.select({ buf:case_send(1), 42 }) end); local _, here = pcall(function() error("x") end)
        out[#out + 1] = tostring(bad):find("case 2 is not a channel case", 1, true) and at(bad) == at(here) and "checked"
        -- The send case came first, and was not tried: the buffer is empty.
        out[#out + 1] = channel.select({ buf:case_receive() }, true).default and "nothing sent" or "sent"
        local _, e = pcall(channel.select, "cases")
        out[#out + 1] = tostring(e):find("expected a table of cases", 1, true) and "table"
        local many = {}
        for i = 1, 4097 do many[i] = buf:case_receive() end
        _, e = pcall(channel.select, many)
        out[#out + 1] = tostring(e):find("more than 4096 cases", 1, true) and "bounded"
        -- A cases table whose metamethods would answer otherwise, or raise.
        local ready = channel.new(1)
        ready:send("v")
        local liar = setmetatable({ ready:case_receive() }, {
            __len = function() error("__len ran") end,
            __index = function() error("__index ran") end,
        })
        local r = channel.select(liar)
        out[#out + 1] = r.value == "v" and r.ok and r.channel == ready and "raw"
        -- A send case on a channel closed before the select, and while it waits.
        local closed = channel.new()
        closed:close()
        _, e = pcall(function() channel.select({ closed:case_send(1) }) end); _, here = pcall(function() error("x") end)
        out[#out + 1] = tostring(e):find("send on closed channel", 1, true) and at(e) == at(here) and "closed before"
        local later, ready, done = channel.new(), channel.new(1), channel.new(1)
        coroutine.spawn(function()
            ready:send(true) -- buffered: the select below runs, and waits, before main goes on
            local _, e2 = pcall(function() channel.select({ later:case_send(1), channel.new():case_receive() }) end); local _, here2 = pcall(function() error("x") end)
            done:send(tostring(e2):find("send on closed channel", 1, true) and at(e2) == at(here2) and "closed while waiting")
        end)
        ready:receive()
        later:close()
        out[#out + 1] = done:receive()
        return table.concat(out, ",")
    end"#);
    assert_eq!(
        v,
        s("checked,nothing sent,table,bounded,raw,closed before,closed while waiting")
    );
}

/// A spawned coroutine gets exactly the values it was spawned with: up to
/// 16 go on its stack, more in a table (two paths in the kernel), with nil
/// holes, trailing nils, a C function as the body, and none at all.
#[test]
fn coroutine_spawn_hands_over_exactly_its_arguments() {
    let v = ok(r##"return function()
        local ch = channel.new()
        local function report(...)
            local n = select("#", ...)
            local parts = { tostring(n) }
            for i = 1, n do parts[#parts + 1] = tostring((select(i, ...))) end
            ch:send(table.concat(parts, ","))
        end
        local out = {}
        local function args(n, hole)
            local t = {}
            for i = 1, n do t[i] = (i ~= hole) and i or nil end
            return table.unpack(t, 1, n)
        end
        for _, n in ipairs({ 0, 1, 15, 16, 17, 40 }) do
            coroutine.spawn(report, args(n, 2))
            out[#out + 1] = ch:receive()
        end
        coroutine.spawn(report, nil, nil)
        out[#out + 1] = ch:receive()
        local got = channel.new(1)
        coroutine.spawn(function(...) got:send(select("#", ...)) end, args(17))
        coroutine.spawn(pcall, function(a) got:send(a) end, "via a C function")
        out[#out + 1] = tostring(got:receive()) .. "|" .. tostring(got:receive())
        return table.concat(out, ";")
    end"##);
    let list = |n: usize| -> String {
        let mut parts = vec![n.to_string()];
        parts.extend((1..=n).map(|i| if i == 2 { "nil".into() } else { i.to_string() }));
        parts.join(",")
    };
    let want = [0, 1, 15, 16, 17, 40]
        .map(list)
        .into_iter()
        .chain(["2,nil,nil".into(), "17|via a C function".into()])
        .collect::<Vec<_>>()
        .join(";");
    assert_eq!(v, s(&want));
}

#[test]
fn coroutine_spawn_runs_concurrently_and_returns_immediately() {
    let v = ok(r#"return function()
        local ch = channel.new()
        local order = {}
        coroutine.spawn(function(a, b) order[#order + 1] = "child " .. a .. b; ch:send("done") end, "x", "y")
        order[#order + 1] = "parent"
        ch:receive()
        return table.concat(order, ",")
    end"#);
    assert_eq!(v, s("parent,child xy"));
}

#[test]
fn an_error_in_a_spawned_coroutine_fails_the_process() {
    let e = fails(
        r#"return function()
        coroutine.spawn(function() error("boom in coroutine") end)
        process.inbox():receive()
    end"#,
    );
    assert!(e.message.contains("boom in coroutine"), "{}", e.message);
}

#[test]
fn main_returning_ends_all_coroutines() {
    let v = ok(r#"return function()
        coroutine.spawn(function() process.inbox():receive() end)
        return "main done"
    end"#);
    assert_eq!(v, s("main done"));
}

#[test]
fn hand_driven_coroutines_keep_working_with_blocking_calls_inside() {
    let v = ok(r#"local time = require("time")
    return function()
        local gen = coroutine.wrap(function()
            for i = 1, 3 do
                time.sleep("1ms") -- a scheduler block inside a user coroutine
                coroutine.yield(i)
            end
        end)
        local co = coroutine.create(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
        local _, x = coroutine.resume(co, 1)
        local _, y = coroutine.resume(co, 10)
        assert(coroutine.status(co) == "dead" and coroutine.isyieldable())
        return gen() + gen() + gen() + x + y
    end"#);
    assert_eq!(v, Value::Int(1 + 2 + 3 + 2 + 20));
}

#[test]
fn yielding_outside_a_coroutine_fails_the_process() {
    let e = fails("return function() coroutine.yield(1) end");
    assert!(e.message.contains("outside a coroutine"), "{}", e.message);
}

#[test]
fn scheduler_threads_cannot_be_resumed_by_hand() {
    let v = ok(r#"return function()
        local ok, err = coroutine.resume(coroutine.running())
        return err
    end"#);
    assert_eq!(v, s("cannot resume a scheduler-managed coroutine"));
}

#[test]
fn long_runs_of_local_work_outlast_the_scheduling_budget() {
    // More resumptions than one scheduling slice, with no host items at all:
    // the worker must keep running the kernel instead of parking.
    let v = ok(r#"return function()
        local a, b = channel.new(), channel.new()
        local n = 5000
        coroutine.spawn(function() for i = 1, n do a:receive() b:send(i) end end)
        local last
        for i = 1, n do a:send(i) last = b:receive() end
        return last
    end"#);
    assert_eq!(v, Value::Int(5000));
}

/// A wait inside code that cannot be suspended (here a coroutine resumed
/// from a `table.sort` comparator, which looks yieldable but whose wait
/// could not be passed up) raises and leaves no waiter behind: a stale
/// one (a receiver, a sender, a select, a sleep's timer) would later wake
/// the process out of whatever it waits on next, with the wrong value.
#[test]
fn a_wait_that_cannot_be_suspended_raises_and_leaves_no_waiter() {
    let v = ok(r#"return function()
        local ch, ch2, full, other = channel.new(1), channel.new(1), channel.new(0), channel.new()
        local out = {}
        local done = false
        local function try(f)
            local ok, e = pcall(coroutine.wrap(f))
            out[#out + 1] = ok and "waited" or (tostring(e):find("cannot be suspended", 1, true) and "refused" or e)
        end
        table.sort({ 2, 1 }, function(a, b)
            if not done then
                done = true
                try(function() return ch:receive() end)
                try(function() return full:send(1) end)
                try(function() return channel.select({ ch2:case_receive() }) end)
                try(function() return require("time").sleep("1ms") end)
            end
            return a < b
        end)
        coroutine.spawn(function()
            ch:send("stale")
            ch2:send("stale too")
            require("time").sleep("20ms") -- past the refused sleep's 1ms
            other:send("right")
        end)
        out[#out + 1] = other:receive()
        coroutine.spawn(function() out[#out + 1] = "took " .. full:receive() end)
        full:send("again") -- nobody else waits to send on it
        require("time").sleep("0s")
        return table.concat(out, ",")
    end"#);
    assert_eq!(v, s("refused,refused,refused,refused,right,took again"));
}

/// A channel is a value of its own type, as in Wippy (typed-lua.md §1.5):
/// `type` says "channel" however the channel was made, and it is opaque
/// (no field to read raw, set or walk), while a table dressed up as one
/// (tag, name, `__tostring`) stays a table and is no channel to the methods.
#[test]
fn a_channel_is_a_value_of_its_own_type() {
    let v = ok(r#"return function()
        local time = require("time")
        local out = {}
        local chans = { channel.new(), channel.new(3), process.inbox(), process.events(),
            time.after("1h"), time.timer("1h"):channel(), process.listen("t") }
        for _, ch in ipairs(chans) do
            local set, err = pcall(function() ch.x = 1 end)
            local r = channel.select({ ch:case_receive(), default = true })
            out[#out + 1] = type(ch) .. "/" .. tostring(ch) .. "/" .. tostring(getmetatable(ch))
                .. "/" .. tostring(ch.x) .. "/" .. tostring(set) .. "/"
                .. tostring(err:find("attempt to index a channel value", 1, true) ~= nil)
                .. "/" .. tostring(pcall(next, ch))
        end
        local a, b = channel.new(1), channel.new(1)
        b:send("v")
        local r = channel.select({ a:case_receive(), b:case_receive() })
        out[#out + 1] = tostring(rawequal(r.channel, b)) .. " " .. tostring(r.channel ~= a)
        local fake = setmetatable({}, { __warren = "channel", __name = "channel",
            __tostring = function() return "channel" end })
        local ok, e = pcall(a.receive, fake)
        out[#out + 1] = type(fake) .. " " .. tostring(ok) .. " " .. tostring(e:find("expected a channel, got table", 1, true) ~= nil)
        return table.concat(out, " ")
    end"#);
    let one = "channel/channel/false/nil/false/true/false";
    assert_eq!(
        v,
        s(&format!(
            "{one} {one} {one} {one} {one} {one} {one} true true table false true"
        ))
    );
}

/// A `time.after` channel is held by its timer only weakly (see the next
/// test): while a coroutine waits on it, in a select whose cases table is
/// nowhere else or in a plain receive, the waiting keeps it alive, and it
/// fires, however much garbage the process makes (and collects) meanwhile.
#[test]
fn a_waited_time_after_channel_fires_through_collections() {
    let v = ok(r#"local time = require("time")
    return function()
        local stop = false
        coroutine.spawn(function()
            while not stop do
                for _ = 1, 2000 do local _ = { {}, {}, {} } end
                time.sleep("0s")
            end
        end)
        local fired = 0
        for i = 1, 100 do
            if i % 2 == 0 then
                local r = channel.select({ time.after("1ms"):case_receive() })
                if r.ok then fired = fired + 1 end
            else
                local _, ok = time.after("1ms"):receive()
                if ok then fired = fired + 1 end
            end
        end
        stop = true
        return fired
    end"#);
    assert_eq!(v, Value::Int(100));
}

/// The usual receive with a timeout, where the message always comes first:
/// each round's `time.after` channel is dropped unread, and its timer is
/// swept with it, so the process holds no more after 200,000 rounds of a
/// 30 s timeout than after a few (it held each round's channel for the 30
/// s and ended at its memory limit, 64 MiB, after 300,000).
#[test]
fn dropped_time_after_channels_are_swept_with_their_timers() {
    let v = ok(r#"local time = require("time")
    return function()
        local inbox = process.inbox()
        local function rounds(n)
            for i = 1, n do
                process.send(process.pid(), "m", i)
                local r = channel.select({ inbox:case_receive(), time.after("30s"):case_receive() })
                assert(r.channel == inbox)
            end
        end
        rounds(1000)
        local before = collectgarbage("count")
        rounds(200000)
        local after = collectgarbage("count")
        return after - before < 4096 -- KiB
    end"#);
    assert_eq!(v, Value::Bool(true));
}

/// Durations given as text are parsed once and kept by their text (at
/// most 64, then the kept ones are dropped): each text still means its
/// own duration, through more distinct texts than are kept, the same the
/// second time, and a text that is no duration is refused every time.
#[test]
fn durations_as_text_mean_the_same_however_often_they_are_used() {
    let v = ok(r#"local time = require("time")
    return function()
        local t0 = time.unix(0, 0)
        for round = 1, 2 do
            for i = 1, 200 do
                local got = t0:add(i .. "ms"):unix_nano()
                assert(got == i * 1000000, round .. ": " .. i .. "ms gave " .. got)
                assert(t0:add("1h"):unix_nano() == 3600 * 1000000000)
            end
            for _ = 1, 2 do
                assert(not pcall(t0.add, t0, "12 parsecs"))
            end
        end
        local long = string.rep("1", 40) .. "ns"
        assert(not pcall(t0.add, t0, long))
        return "ok"
    end"#);
    assert_eq!(v, s("ok"));
}

/// A fired timer leaves nothing behind in its process: 20,000 sleeps hold
/// no more than the first hundred did (the fire, handed over in C, takes
/// the kernel's record of the timer out as it calls it).
#[test]
fn sleeping_often_holds_nothing_per_sleep() {
    let v = ok(r#"local time = require("time")
    return function()
        for _ = 1, 100 do time.sleep("0s") end
        local before = collectgarbage("count")
        for _ = 1, 20000 do time.sleep("0s") end
        return collectgarbage("count") - before < 256 -- KiB
    end"#);
    assert_eq!(v, Value::Bool(true));
}

#[test]
fn a_yield_with_no_coroutine_to_take_it_is_an_error_pcall_catches() {
    // In a process's main function and in a coroutine.spawn, as Lua's
    // yield in a main thread: before, the yield reached the scheduler,
    // which ended the process. isyieldable stays true there: a process
    // may block (library code asks it before a blocking call).
    let v = ok(r#"return function()
        local out = {}
        local ok, e = pcall(coroutine.yield, 1)
        out[#out + 1] = tostring(ok) .. " " .. e:kind() .. " " .. e:message()
        out[#out + 1] = tostring(coroutine.isyieldable())
        local done = channel.new(1)
        coroutine.spawn(function()
            local ok2, e2 = pcall(coroutine.yield)
            done:send(tostring(ok2) .. " " .. e2:message() .. " " .. tostring(coroutine.isyieldable()))
        end)
        out[#out + 1] = done:receive()
        local co = coroutine.wrap(function(a)
            local b = coroutine.yield(a + 1, coroutine.isyieldable())
            return b * 2
        end)
        local x, y = co(1)
        out[#out + 1] = x .. " " .. tostring(y) .. " " .. co(10)
        return table.concat(out, "|")
    end"#);
    assert_eq!(
        v,
        s(
            "false Invalid attempt to yield from outside a coroutine|true|\
           false attempt to yield from outside a coroutine true|2 true 20"
        )
    );
}

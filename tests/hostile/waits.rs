//! Class: a wait from code that cannot be suspended. A channel receive or
//! send, a select, a sleep or an exec made where the process's coroutine
//! cannot yield back to the kernel (a C function's callback: a
//! `table.sort` comparator, a `string.gsub` replacement, a `__tostring`
//! run by `tostring`, an `xpcall` message handler), directly or from a
//! coroutine resumed there (which looks yieldable). If the kernel
//! registered the waiter first and only then failed to yield, the waiter
//! stayed behind: the next send (or the timer) woke the process out of
//! whatever it waited on next, with a value meant for something else.
//!
//! Guaranteed: such a wait is refused before anything is registered (an
//! error for channels, select and sleep; `nil, INVALID` for exec), and the
//! process's later waits get exactly their own values.

use crate::harness::lua;

/// Runs `setup` (which may define `try(f)`, recording whether a refused
/// wait raised), then checks that a later receive gets its own value and
/// not one sent to the channels `setup` touched.
fn refused_and_nothing_left(setup: &str, expected: &str) {
    let source = format!(
        r#"local time = require("time")
        return function()
            local ch, full, other = channel.new(1), channel.new(), channel.new()
            local out = {{}}
            local function try(f)
                local ok, e = pcall(f)
                out[#out + 1] = ok and "waited"
                    or (tostring(e):find("cannot be suspended", 1, true) and "refused" or tostring(e))
            end
            local function nested(f) return function() return coroutine.wrap(f)() end end
            {setup}
            coroutine.spawn(function()
                ch:send("stale")
                time.sleep("20ms") -- past any refused 1ms sleep
                other:send("right")
            end)
            out[#out + 1] = other:receive()
            return table.concat(out, ",")
        end"#
    );
    let out = lua(&source, Vec::new());
    out.assert_neighbour_ticks();
    assert_eq!(out.value(), expected);
}

#[test]
fn a_receive_in_a_gsub_replacement_is_refused_directly_and_nested() {
    refused_and_nothing_left(
        r#"string.gsub("ab", ".", function()
            try(function() return ch:receive() end)
            try(nested(function() return ch:receive() end))
        end)"#,
        "refused,refused,refused,refused,right",
    );
}

#[test]
fn a_send_and_a_select_in_a_sort_comparator_are_refused() {
    refused_and_nothing_left(
        r#"local done = false
        table.sort({ 2, 1 }, function(a, b)
            if not done then
                done = true
                try(function() return full:send(1) end)
                try(nested(function() return full:send(1) end))
                try(function() return channel.select({ ch:case_receive(), full:case_send(2) }) end)
                try(nested(function() return channel.select({ ch:case_receive() }) end))
            end
            return a < b
        end)"#,
        "refused,refused,refused,refused,right",
    );
}

#[test]
fn a_sleep_in_tostring_is_refused_and_arms_no_timer() {
    refused_and_nothing_left(
        r#"local _ = tostring(setmetatable({}, { __tostring = function()
            try(function() time.sleep("1ms") end)
            try(nested(function() time.sleep("1ms") end))
            return "x"
        end }))"#,
        "refused,refused,right",
    );
}

#[test]
fn waits_in_an_xpcall_handler_are_refused() {
    refused_and_nothing_left(
        r#"xpcall(function() error("boom") end, function(e)
            try(function() return ch:receive() end)
            try(nested(function() time.sleep("1ms") end))
            return e
        end)"#,
        "refused,refused,right",
    );
}

#[test]
fn ten_thousand_refused_waits_leave_the_channels_working() {
    refused_and_nothing_left(
        r#"local n = 0
        string.gsub(string.rep("a", 10000), "a", function()
            if pcall(nested(function() return ch:receive() end)) then n = n + 1 end
        end)
        out[#out + 1] = "waited " .. n
        full = channel.new(1)
        full:send("own")
        out[#out + 1] = full:receive()"#,
        "waited 0,own,right",
    );
}

#[test]
fn an_exec_in_a_comparator_is_invalid_and_starts_nothing() {
    refused_and_nothing_left(
        r#"local done = false
        table.sort({ 2, 1 }, function(a, b)
            if not done then
                done = true
                local pid, err = coroutine.wrap(function()
                    return process.exec("h:attacker", "h:host")
                end)()
                out[#out + 1] = tostring(pid) .. " " .. tostring(err and err:kind())
            end
            return a < b
        end)"#,
        "nil Invalid,right",
    );
}

#[test]
fn an_upgrade_in_a_comparator_is_invalid_and_leaves_nothing_pending() {
    // It ended the process with "attempt to yield across a C-call
    // boundary" and left the upgrade pending (red team H); refused, the
    // process runs on its own code and a later upgrade is not forged by it.
    refused_and_nothing_left(
        r#"table.sort({ 2, 1 }, function(a, b)
            if #out == 0 then
                local ok, err = process.upgrade(nil, "x")
                out[#out + 1] = tostring(ok) .. " " .. tostring(err and err:kind())
                    .. " " .. tostring(err and err:message():find("cannot be suspended", 1, true) ~= nil)
            end
            return a < b
        end)"#,
        "nil Invalid true,right",
    );
}

/// Class: a user coroutine suspended while it passes a nested
/// coroutine's wait up to the kernel (A resumed C, C blocked in a
/// receive) looked "suspended", and another coroutine of the process
/// could resume it by hand: C's receive returned a value nobody sent, and
/// the values sent next went to a chain nobody waited on (lost, their
/// sender told they were sent). Such a coroutine can be neither resumed
/// (plainly, through `wrap`) nor closed by hand; the wait gets exactly the
/// values sent, in order.
#[test]
fn a_coroutine_passing_a_wait_up_cannot_be_resumed_or_closed_by_hand() {
    let out = lua(
        r#"local time = require("time")
        return function()
            local X = channel.new()
            local got = {}
            local A = coroutine.create(function()
                local C = coroutine.create(function()
                    local a = X:receive()
                    got[#got + 1] = a
                    local b = X:receive()
                    got[#got + 1] = b
                end)
                assert(coroutine.resume(C))
            end)
            local W
            W = coroutine.wrap(function()
                local C = coroutine.create(function()
                    local w = X:receive()
                    got[#got + 1] = w
                end)
                assert(coroutine.resume(C))
            end)
            local tries = {}
            coroutine.spawn(function()
                time.sleep("5ms")
                local ok, e = coroutine.resume(A, "FORGED", true)
                tries[#tries + 1] = tostring(ok) .. ":" .. tostring(e)
                tries[#tries + 1] = tostring(pcall(W, "FORGED"))
                tries[#tries + 1] = tostring(pcall(coroutine.close, A))
                tries[#tries + 1] = coroutine.status(A)
            end)
            local done = channel.new(3)
            coroutine.spawn(function()
                time.sleep("10ms")
                for _, v in ipairs({ "real1", "real2", "real3" }) do X:send(v) end
                done:send(true)
            end)
            coroutine.spawn(function() W() done:send(true) end)
            assert(coroutine.resume(A))
            done:receive()
            done:receive()
            table.sort(got)
            return table.concat(tries, ",") .. "|" .. table.concat(got, ",")
        end"#,
        Vec::new(),
    );
    out.assert_neighbour_ticks();
    assert_eq!(
        out.value(),
        "false:cannot resume a coroutine waiting in the kernel,false,false,suspended\
         |real1,real2,real3"
    );
}

/// The same class one level down: the nested coroutine that itself
/// waits (C, blocked in a receive, its wait passed up by the coroutine
/// that resumed it) was still open to a resume by hand from any code
/// holding it: its receive returned a value nobody sent, and the value
/// sent next was lost (red team H). It is closed to user code likewise,
/// a sleep's and a select's too, and its receive gets what was sent.
#[test]
fn the_nested_coroutine_that_waits_cannot_be_resumed_or_closed_by_hand() {
    let out = lua(
        r#"local time = require("time")
        return function()
            local X, Y = channel.new(), channel.new()
            local got, nested = {}, {}
            for i, wait in ipairs({
                function() return X:receive() end,
                function() time.sleep("20ms") return "slept" end,
                function() return channel.select({ Y:case_receive() }).value end,
            }) do
                coroutine.spawn(function()
                    nested[i] = coroutine.create(function() local v = wait() got[#got + 1] = v end)
                    assert(coroutine.resume(nested[i]))
                end)
            end
            time.sleep("1ms")
            local tries = {}
            for _, C in ipairs(nested) do
                local ok, e = coroutine.resume(C, "FORGED", true)
                tries[#tries + 1] = tostring(ok) .. ":" .. tostring(e)
                tries[#tries + 1] = tostring(pcall(coroutine.close, C)) .. ":" .. coroutine.status(C)
            end
            assert(X:send("real") and Y:send("realy"))
            time.sleep("40ms")
            table.sort(got)
            return table.concat(tries, ",") .. "|" .. table.concat(got, ",")
        end"#,
        Vec::new(),
    );
    out.assert_neighbour_ticks();
    let refused = "false:cannot resume a coroutine waiting in the kernel,false:suspended";
    assert_eq!(
        out.value(),
        format!("{refused},{refused},{refused}|real,realy,slept")
    );
}

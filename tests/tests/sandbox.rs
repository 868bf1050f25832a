//! Sandboxed globals and isolation between processes that share a Lua VM.

use warren_core::Value;
use warren_tests::*;

#[test]
fn unsafe_globals_are_absent() {
    let v = ok(r#"return function()
        local absent = {}
        for _, name in ipairs({ "io", "debug", "package", "dofile", "loadfile" }) do
            if _G[name] ~= nil then absent[#absent + 1] = name end
        end
        for _, name in ipairs({ "execute", "exit", "getenv", "remove", "rename", "tmpname" }) do
            if os[name] ~= nil then absent[#absent + 1] = "os." .. name end
        end
        assert(type(os.time()) == "number" and type(os.clock()) == "number" and os.date("%Y") ~= nil)
        assert(os.difftime(2, 1) == 1)
        assert(string.dump == nil)
        return table.concat(absent, ",")
    end"#);
    assert_eq!(v, s(""));
}

#[test]
fn collectgarbage_offers_only_count() {
    let v = ok(r#"return function()
        assert(type(collectgarbage("count")) == "number")
        local ok = pcall(collectgarbage, "collect")
        local ok2 = pcall(collectgarbage)
        return ok or ok2
    end"#);
    assert_eq!(v, Value::Bool(false));
}

#[test]
fn binary_chunks_are_refused_and_load_uses_the_process_env() {
    let v = ok(r#"return function()
        local f, err = load("\27Lua\84\0", "bin", "b")
        assert(f == nil and err:find("text") ~= nil)
        local f2, err2 = load("\27Lua\84\0")
        assert(f2 == nil and err2:find("binary") ~= nil)
        secret = 5
        local g = load("return secret")
        local custom = load("return secret", "c", "t", { secret = 7 })
        return g() + custom()
    end"#);
    assert_eq!(v, Value::Int(12));
}

#[test]
fn print_goes_to_the_log_without_failing() {
    let v = ok(r#"return function() print("hello", 1, nil, true) return "printed" end"#);
    assert_eq!(v, s("printed"));
}

/// Runs `attacker` then `victim` on one worker (so they share the VM) and
/// returns the victim's result.
fn victim_after(attacker: &str, victim: &str) -> Value {
    App::new()
        .entry(
            "t:main",
            r#"return function()
            local ev = process.events()
            process.spawn_monitored("t:attacker", "test:host")
            local a = ev:receive()
            process.spawn_monitored("t:victim", "test:host")
            local v = ev:receive()
            if v.result.error then return "victim failed: " .. v.result.error:message() end
            return v.result.value
        end"#,
        )
        .entry("t:attacker", attacker)
        .entry("t:victim", victim)
        .run("t:main", vec![])
        .expect("main ok")
}

#[test]
fn globals_are_per_process() {
    let v = victim_after(
        r#"return function() shared_secret = "leak"; _G.other = 1 end"#,
        r#"return function() return tostring(shared_secret) .. tostring(other) end"#,
    );
    assert_eq!(v, s("nilnil"));
}

#[test]
fn standard_library_tables_cannot_be_poisoned() {
    let v = victim_after(
        r#"return function()
            local attempts = {
                function() string.upper = function() return "pwned" end end,
                function() rawset(string, "upper", function() return "pwned" end) end,
                function() table.insert = nil end,
                function() math.pi = 3 end,
                function() setmetatable(string, {}) end,
                function() process.send = nil end,
                function() getmetatable("").__index = { upper = function() return "pwned" end } end,
                function() coroutine.spawn = nil end,
            }
            for i, f in ipairs(attempts) do
                assert(not pcall(f), "attempt " .. i .. " must fail")
            end
            string = { upper = function() return "pwned" end } -- only rebinds this process's global
        end"#,
        r#"return function() return ("abc"):upper() .. string.upper("d") .. tostring(math.pi > 3.14) end"#,
    );
    assert_eq!(v, s("ABCDtrue"));
}

#[test]
fn runtime_metatables_are_protected() {
    let v = ok(r#"return function()
        local ch = channel.new()
        assert(getmetatable(ch) == false and getmetatable("") == false)
        assert(not pcall(setmetatable, ch, {}))
        assert(getmetatable(_G) == false)
        local ok, err = pcall(setmetatable, {}, { __gc = function() end })
        assert(not ok and tostring(err):find("__gc") ~= nil)
        return "ok"
    end"#);
    assert_eq!(v, s("ok"));
}

#[test]
fn an_error_in_one_process_does_not_disturb_another() {
    let v = App::new()
        .entry(
            "t:main",
            r#"local time = require("time")
        return function()
            local ev = process.events()
            local worker = process.spawn_monitored("t:counter", "test:host")
            for _ = 1, 5 do process.spawn("t:crash", "test:host") end
            time.sleep("20ms")
            process.send(worker, "done")
            return ev:receive().result.value
        end"#,
        )
        .entry(
            "t:counter",
            r#"return function()
            local n = 0
            local inbox = process.inbox()
            while true do
                local r = channel.select({ inbox:case_receive(), default = true })
                if not r.default then return n end
                n = n + 1
                require("time").sleep("1ms")
            end
        end"#,
        )
        .entry(
            "t:crash",
            r#"return function() local t = nil; return t.x end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    assert!(matches!(v, Value::Int(n) if n > 0), "{v:?}");
}

#[test]
fn syntax_errors_fail_the_spawned_process_with_file_and_line() {
    let v = App::new()
        .entry(
            "t:main",
            r#"return function()
            local ev = process.events()
            process.spawn_monitored("t:broken", "test:host")
            return ev:receive().result.error:message()
        end"#,
        )
        .entry("t:broken", "return function()\n  local x = = 1\nend")
        .run("t:main", vec![])
        .expect("ok");
    let text = v.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("t:broken.lua:2:"), "{text}");
}

#[test]
fn scripts_returning_no_main_fail_clearly() {
    let e = fails("return { start = function() end }");
    assert!(e.message.contains("\"main\""), "{}", e.message);
}

#[test]
fn shebang_lines_are_allowed_and_line_numbers_kept() {
    let e = fails("#!/usr/bin/env warren\nreturn function()\n  error('line three')\nend");
    assert!(
        e.message.contains("t:main.lua:3: line three"),
        "{}",
        e.message
    );
}

#[test]
fn coroutine_close_behaves_as_luas() {
    // The kernel's `coroutine.close` (so that preemption reaches the
    // `__close` handlers it runs) gives Lua's results and errors; an error
    // names no kernel position (called through `pcall` or in a tail call,
    // as here, Lua's names none either).
    let v = ok(r##"return function()
        local out = {}
        local log = {}
        local function closer(tag, fail)
            return setmetatable({}, { __close = function(_, err)
                log[#log + 1] = tag .. ":" .. tostring(err)
                if fail then error(fail, 0) end
            end })
        end
        local co = coroutine.create(function()
            local a <close> = closer("a")
            local b <close> = closer("b")
            coroutine.yield()
        end)
        coroutine.resume(co)
        out[#out + 1] = table.concat({ tostring(coroutine.close(co)), select("#", coroutine.close(co)),
            coroutine.status(co) }, ",")
        local bad = coroutine.create(function()
            local c <close> = closer("c", "close failed")
            coroutine.yield()
        end)
        coroutine.resume(bad)
        local bok, berr = coroutine.close(bad)
        out[#out + 1] = tostring(bok) .. "," .. tostring(berr) .. "," .. tostring(coroutine.close(bad))
        local fresh = coroutine.create(function() end)
        out[#out + 1] = tostring(coroutine.close(fresh)) .. "," .. coroutine.status(fresh)
        local inner, outer
        outer = coroutine.create(function()
            inner = coroutine.create(function()
                local ok, err = pcall(coroutine.close, outer)
                coroutine.yield(err)
            end)
            local _, err = coroutine.resume(inner)
            coroutine.yield(err)
        end)
        local _, normal = coroutine.resume(outer)
        out[#out + 1] = tostring(normal)
        local me
        me = coroutine.create(function() return coroutine.close(me) end)
        local _, self_err = coroutine.resume(me)
        out[#out + 1] = tostring(self_err)
        out[#out + 1] = table.concat(log, " ")
        return table.concat(out, " | ")
    end"##);
    assert_eq!(
        v,
        Value::str(
            "true,1,dead | false,close failed,true | true,dead \
             | cannot close a normal coroutine | cannot close a running coroutine \
             | b:nil a:nil c:nil"
        )
    );
}

#[test]
fn os_date_and_os_time_errors_name_the_callers_line() {
    // Raised inside the kernel's wrappers, these named "warren-kernel:N".
    for (call, text) in [
        ("os.date('%c', math.maxinteger)", "cannot be represented"),
        (
            "os.time({ year = math.maxinteger, month = 1, day = 1 })",
            "out-of-bound",
        ),
        ("os.date('%c', 0/0)", "bad argument #2"),
        ("os.time('x')", "bad argument #1"),
    ] {
        let e = fails(&format!("return function()\n  local x = 1\n  {call}\nend"));
        assert!(
            e.message.contains("t:main.lua:3: "),
            "{call}: {}",
            e.message
        );
        assert!(e.message.contains(text), "{call}: {}", e.message);
        assert!(
            !e.message.contains("warren-kernel"),
            "{call}: {}",
            e.message
        );
    }
    // Their answers are unchanged.
    let v = ok(r#"return function()
        return os.date("!%Y-%m-%d", 86400) .. " " .. os.time({ year = 2020, month = 1, day = 1, hour = 12 })
            - os.time({ year = 2020, month = 1, day = 1, hour = 0 })
    end"#);
    assert_eq!(v, s("1970-01-02 43200"));
}

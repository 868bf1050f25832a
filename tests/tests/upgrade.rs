//! Hot upgrade: `process.upgrade(id?, ...)` keeps the pid, the mailbox and
//! the registered names, and continues in the new code's main.

use std::time::Duration;

use warren_core::{SpawnRequest, Value};
use warren_lua::{LuaProgram, MODULES};
use warren_tests::*;

const V1: &str = r#"return function()
    process.registry.register("counter")
    local inbox, n = process.inbox(), 0
    while true do
        local msg = inbox:receive()
        local topic = msg:topic()
        if topic == "inc" then n = n + 1
        elseif topic == "upgrade" then
            local target = msg:payload():data()
            local ok, err = process.upgrade(target ~= "same" and target or nil, n, "from v1")
            process.send(msg:from(), "upgrade failed", tostring(err))
        elseif topic == "get" then process.send(msg:from(), "value", "v1:" .. n) end
    end
end"#;

const V2: &str = r#"return function(n, note)
    local inbox = process.inbox()
    while true do
        local msg = inbox:receive()
        local topic = msg:topic()
        if topic == "inc" then n = n + 1
        elseif topic == "get" then
            process.send(msg:from(), "value", ("v2:%d:%s:%s"):format(n, note, process.pid()))
        end
    end
end"#;

#[test]
fn upgrade_to_another_entry_keeps_pid_names_mailbox_and_monitors() {
    let v = App::new()
        .entry("t:counter", V1)
        .entry("t:v2", V2)
        .entry(
            "t:main",
            r#"local time = require("time")
        return function()
            local events = process.events()
            local counter = process.spawn_monitored("t:counter", "test:host")
            while not process.registry.lookup("counter") do time.sleep("1ms") end
            for _ = 1, 3 do process.send("counter", "inc") end
            process.send("counter", "upgrade", "t:v2")
            process.send("counter", "inc") -- queued behind the upgrade: v2 must see it
            process.send("counter", "get")
            local answer = process.inbox():receive():payload():data()
            local r = channel.select({ events:case_receive(), time.after("30ms"):case_receive() })
            assert(r.channel ~= events, "an upgrade is not an exit")
            process.terminate(counter)
            return answer .. "|" .. counter
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    let text = v.as_str().expect("string").to_owned();
    let (answer, pid) = text.split_once('|').expect("two parts");
    assert_eq!(answer, format!("v2:4:from v1:{pid}"));
}

#[test]
fn upgrade_to_the_same_entry_runs_its_replaced_code() {
    let runtime = App::new()
        .entry("t:counter", V1)
        .entry(
            "t:poke",
            r#"local time = require("time")
        return function()
            while not process.registry.lookup("counter") do time.sleep("1ms") end
            process.send("counter", "inc")
            process.send("counter", "upgrade", "same")
            process.send("counter", "get")
            return process.inbox():receive():payload():data()
        end"#,
        )
        .start();
    let (counter, _exit) = runtime
        .spawn_watched(SpawnRequest::new("t:counter", HOST, vec![]))
        .expect("spawn");
    // Replace the code of t:counter while the v1 process runs.
    runtime.add_program(
        LuaProgram::new("t:counter.lua", V2)
            .with_modules(&MODULES)
            .into_program("t:counter"),
    );
    let v = run_on(&runtime, "t:poke", vec![]);
    assert_eq!(v, Ok(Value::str(format!("v2:1:from v1:{counter}"))));
    assert_eq!(runtime.lookup("counter"), Some(counter));
    runtime
        .kill(counter, warren_core::ProcError::terminated())
        .expect("alive");
    assert!(runtime.wait_idle(Duration::from_secs(5)));
}

#[test]
fn a_refused_upgrade_returns_an_error_and_the_old_code_continues() {
    let v = App::new()
        .entry("t:counter", V1)
        .entry(
            "t:main",
            r#"local time = require("time")
        return function()
            local counter = process.spawn("t:counter", "test:host")
            while not process.registry.lookup("counter") do time.sleep("1ms") end
            process.send("counter", "upgrade", "t:missing")
            local failure = process.inbox():receive():payload():data()
            process.send("counter", "get")
            local still = process.inbox():receive():payload():data()
            process.terminate(counter)
            return failure .. " / " .. still
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, s("entry 't:missing' not found / v1:0"));
}

#[test]
fn upgrade_from_inside_a_nested_coroutine_replaces_the_whole_process() {
    let v = App::new()
        .entry("t:v2", V2)
        .entry(
            "t:old",
            r#"return function()
            coroutine.spawn(function() process.inbox():receive() end) -- replaced too
            local nested = coroutine.wrap(function() process.upgrade("t:v2", 41, "nested") end)
            nested()
            error("not reached: a successful upgrade does not return")
        end"#,
        )
        .entry(
            "t:driver",
            r#"local time = require("time")
        return function()
            local events = process.events()
            local pid = process.spawn_monitored("t:old", "test:host")
            process.send(pid, "inc")
            process.send(pid, "get")
            local r = channel.select({ process.inbox():case_receive(), events:case_receive(),
                time.after("5s"):case_receive() })
            if r.channel == events then return "exited: " .. tostring(r.value.result.error) end
            if not r.value then return "timed out" end
            process.terminate(pid)
            return r.value:payload():data() .. "|" .. pid
        end"#,
        )
        .run("t:driver", vec![])
        .expect("driver ok");
    let text = v.as_str().expect("string").to_owned();
    let (answer, pid) = text.split_once('|').unwrap_or((&text, ""));
    assert_eq!(answer, format!("v2:42:nested:{pid}"));
}

#[test]
fn upgrading_to_a_non_lua_entry_is_refused() {
    let runtime = App::new()
        .entry(
            "t:main",
            r#"return function()
            local ok, err = process.upgrade("t:component")
            assert(ok == nil and errors.is(err, errors.INVALID))
            return err:message()
        end"#,
        )
        .start();
    runtime.add_program(warren_core::Program {
        id: "t:component".into(),
        frontend: "wasm",
        code: std::sync::Arc::new(()),
    });
    let v = run_on(&runtime, "t:main", vec![]).expect("refused cleanly");
    assert_eq!(
        v,
        s(
            "entry 't:component' is not a Lua program: hot upgrade is only supported for Lua processes"
        )
    );
}

/// Returns its version and its argument.
fn versioned(v: u32) -> String {
    format!("return function(x) return \"v{v}:\" .. tostring(x) end")
}

#[test]
fn a_replaced_entry_starts_its_new_code_in_a_vm_that_ran_the_old() {
    // The first start of an entry in a VM compiles it (`H.next`); later
    // ones find the compiled entry by its program (the machine's start).
    // A replaced program is another key: its processes run the new code.
    let runtime = App::new().entry("t:v", &versioned(1)).start();
    let exec = |x: i64| run_on(&runtime, "t:exec", vec![Value::Int(x)]);
    runtime.add_program(
        LuaProgram::new("t:exec.lua", EXEC)
            .with_modules(&MODULES)
            .into_program("t:exec"),
    );
    assert_eq!(exec(1), Ok(s("v1:1 v1:1 v1:1")));
    for v in 2..=3 {
        runtime.add_program(
            LuaProgram::new("t:v.lua", versioned(v).as_str())
                .with_modules(&MODULES)
                .into_program("t:v"),
        );
        let want = format!("v{v}:{v} v{v}:{v} v{v}:{v}");
        assert_eq!(exec(i64::from(v)), Ok(Value::str(want)), "version {v}");
    }
}

/// Runs `t:v` three times in its own VM with its argument.
const EXEC: &str = r#"return function(x)
    local out = {}
    for i = 1, 3 do out[i] = assert(process.exec("t:v", "test:host", x)) end
    return table.concat(out, " ")
end"#;

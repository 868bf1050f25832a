//! Scripts that try to leave their sandbox or poison what other processes
//! share in the same VM: libraries, the string metatable, globals, the
//! loader. Each attack is refused, and a victim process run afterwards in
//! the same VM finds everything intact.

use warren_core::{ErrorKind, Value};
use warren_tests::run_on;

use crate::harness::{app, attack, attack_on, s};

/// Checks from a fresh process that nothing shared was changed.
const VICTIM: &str = r#"return function()
    local bad = {}
    local function check(ok, what) if not ok then bad[#bad + 1] = what end end
    check(string.upper("a") == "A", "string.upper")
    check(("ab"):rep(2) == "abab", "string methods")
    check(getmetatable("") == false, "string metatable")
    local t = {} table.insert(t, 1) check(t[1] == 1, "table.insert")
    check(math.max(1, 2) == 2, "math.max")
    check(type(print) == "function" and type(pcall) == "function", "globals")
    check(x == nil and _G.x == nil, "a global leaked between processes")
    check(type(process.send) == "function", "process.send")
    check(tostring(nil) == "nil", "tostring")
    return #bad == 0 and "clean" or table.concat(bad, ", ")
end"#;

/// Runs `source` as the attack; returns its result and asserts the victim
/// and the neighbour are unharmed.
fn poison(source: &str) -> Result<Value, warren_core::ProcError> {
    let runtime = app()
        .entry("h:attacker", source)
        .entry("h:victim", VICTIM)
        .start();
    let out = attack_on(&runtime, "h:attacker", Vec::new());
    out.assert_neighbour_ticks();
    let victim = run_on(&runtime, "h:victim", Vec::new()).expect("victim runs");
    assert_eq!(victim, Value::str("clean"), "after {out:?}");
    out.exit
}

fn refused(source: &str, text: &str) {
    let err = poison(source).expect_err("the attack was refused");
    assert!(err.message.contains(text), "{text:?} not in {err}");
}

#[test]
fn replacing_a_library_function() {
    refused(
        r#"return function() string.upper = function() return "pwned" end end"#,
        "read-only",
    );
}

#[test]
fn rawset_on_a_library() {
    refused(
        r#"return function() rawset(table, "insert", nil) end"#,
        "read-only",
    );
}

#[test]
fn replacing_a_library_metatable() {
    refused(
        r#"return function() setmetatable(math, { __index = function() return 0 end }) end"#,
        "protected metatable",
    );
}

#[test]
fn poisoning_the_string_metatable() {
    refused(
        r#"return function() getmetatable("").__index = { upper = function() return "pwned" end } end"#,
        "index",
    );
}

#[test]
fn globals_stay_in_their_process() {
    let v = poison(
        r#"return function()
            x = "leaked"; _G.print = nil; _ENV.pcall = nil
            return x
        end"#,
    );
    assert_eq!(v, Ok(Value::str("leaked")));
}

#[test]
fn load_with_a_custom_environment_reaches_nothing() {
    let v = poison(
        r#"return function()
            local f = load("return rawget, debug, io, require, package, string", "c", "t", {})
            local found = {}
            for i, v in pairs({ f() }) do found[#found + 1] = tostring(i) end
            return #found
        end"#,
    );
    assert_eq!(v, Ok(Value::Int(0)));
}

#[test]
fn binary_chunks_are_refused() {
    let v = poison(
        r#"return function()
            local f, err = load("\27Lua\84\0garbage")
            local g, err2 = load("return 1", "c", "b")
            return { f == nil, err, g == nil, err2, string.dump == nil }
        end"#,
    )
    .expect("ends normally");
    let Value::Array(items) = v else {
        panic!("{v:?}")
    };
    assert_eq!(items[0], Value::Bool(true));
    assert!(
        items[1]
            .as_str()
            .unwrap_or_default()
            .contains("binary chunks")
    );
    assert_eq!(items[2], Value::Bool(true));
    assert!(
        items[3]
            .as_str()
            .unwrap_or_default()
            .contains("text chunks")
    );
    assert_eq!(items[4], Value::Bool(true));
}

#[test]
fn gc_metamethods_are_refused() {
    refused(
        r#"return function() setmetatable({}, { __gc = function() while true do end end }) end"#,
        "__gc",
    );
}

#[test]
fn a_gc_field_of_any_value_is_refused() {
    // Lua marks a table for finalisation when its new metatable has any
    // `__gc` field: `false`, a callable table, a string all count.
    for gc in [
        "false",
        "setmetatable({}, { __call = function() while true do end end })",
        "\"x\"",
    ] {
        refused(
            &format!("return function() setmetatable({{}}, {{ __gc = {gc} }}) end"),
            "__gc metamethods are not available to processes",
        );
        refused(
            &format!(
                "return function() local mt = {{ __gc = {gc} }}; pcall(setmetatable, {{}}, mt); \
                 return setmetatable({{}}, mt) end"
            ),
            "__gc metamethods are not available to processes",
        );
    }
}

#[test]
fn stopping_the_collector_is_refused() {
    refused(
        r#"return function() collectgarbage("stop") end"#,
        "only \"count\"",
    );
}

#[test]
fn scheduler_coroutines_cannot_be_closed() {
    refused(
        r#"return function() coroutine.close(coroutine.running()) end"#,
        "scheduler-managed",
    );
}

/// Every coroutine the scheduler runs (the main one, a `coroutine.spawn`ed
/// one blocked on a channel, one that has ended, the main one seen
/// from inside a coroutine of the process's own) is refused to
/// `coroutine.resume` and `coroutine.close`; a coroutine the process made
/// itself is not.
#[test]
fn no_scheduler_coroutine_can_be_resumed_or_closed_by_hand() {
    let v = poison(
        r#"return function()
            local main = coroutine.running()
            local ch, done = channel.new(), channel.new(1)
            coroutine.spawn(function() ch:send(coroutine.running()); ch:receive() end)
            local spawned = ch:receive()
            coroutine.spawn(function() done:send(coroutine.running()) end)
            local ended = done:receive()
            local out = {}
            for _, th in ipairs({ main, spawned, ended }) do
                local ok, err = coroutine.resume(th, "forged")
                out[#out + 1] = tostring(ok) .. ":" .. tostring(err)
                local cok, cerr = pcall(coroutine.close, th)
                out[#out + 1] = tostring(cok) .. ":" .. tostring(tostring(cerr):match("scheduler%-managed"))
            end
            local inner = coroutine.wrap(function() return coroutine.resume(main) end)
            local iok, ierr = inner()
            out[#out + 1] = tostring(iok) .. ":" .. tostring(ierr)
            local own = coroutine.create(function(x) coroutine.yield(x) return "own" end)
            local _, a = coroutine.resume(own, "mine")
            out[#out + 1] = a .. ":" .. tostring(coroutine.close(own))
            ch:send("go")
            return table.concat(out, " ")
        end"#,
    )
    .expect("the probe ends normally");
    let refused = "false:cannot resume a scheduler-managed coroutine";
    let closed = "false:scheduler-managed";
    let want =
        format!("{refused} {closed} {refused} {closed} {refused} {closed} {refused} mine:true");
    assert_eq!(v, Value::str(&want));
}
#[test]
fn no_io_os_exit_or_debug() {
    let v = poison(
        r#"return function()
            return { io == nil, os.exit == nil, debug == nil, os.execute == nil, dofile == nil }
        end"#,
    );
    let all_true = Value::Array(vec![Value::Bool(true); 5]);
    assert_eq!(v, Ok(all_true));
}

#[test]
fn modules_not_listed_for_the_entry_are_refused() {
    let app = app().entry_with(
        "h:attacker",
        r#"return function() return require("time") end"#,
        &[],
    );
    let out = attack(app, "h:attacker", Vec::new());
    out.assert_ended(
        ErrorKind::PermissionDenied,
        "not allowed for entry h:attacker",
    );
}

/// Loads `code` under each name a process might borrow from the runtime
/// (the kernel's chunk, an I/O module's) in each of `load`'s forms (a
/// string, a reader function, typed-dialect text), and runs what loaded.
fn loaded_as_the_runtime(code: &str) -> crate::harness::Outcome {
    let source = format!(
        r#"local code = {code:?}
        return function()
            local refused = {{}}
            for _, name in ipairs({{ "=warren-kernel", "=warren-sql", "=warren-" }}) do
                local parts = {{ code }}
                local function reader() return table.remove(parts, 1) end
                for _, chunk in ipairs({{ code, reader, "local n: integer = 1\n" .. code }}) do
                    local f, err = load(chunk, name)
                    if f then f() else refused[#refused + 1] = err end
                end
            end
            return #refused .. " " .. refused[1]
        end"#
    );
    crate::harness::lua(&source, Vec::new())
}

#[test]
fn code_cannot_borrow_the_runtime_s_chunk_name_to_dodge_preemption() {
    // Frames of the kernel's chunk are not preemption points: an endless
    // loop loaded under its name held its worker (no neighbour tick for
    // 400 ms) until the CPU budget ended it.
    let out = loaded_as_the_runtime("local n = 0 while true do n = n + 1 end");
    assert_eq!(
        out.value(),
        "9 load: chunk names starting with \"=warren-\" are the runtime's"
    );
    out.assert_neighbour_ticks();
}

#[test]
fn code_cannot_borrow_the_runtime_s_chunk_name_to_hide_memory() {
    // The measure does not look into the kernel's functions: 40 MiB held
    // in upvalues of functions loaded under its name went unmeasured.
    let out = loaded_as_the_runtime(
        "HOARD = HOARD or {} local s = string.rep('x', 1 << 20) .. #HOARD \
         HOARD[#HOARD + 1] = function() return s end",
    );
    assert_eq!(
        out.value(),
        "9 load: chunk names starting with \"=warren-\" are the runtime's"
    );
    out.assert_neighbour_ticks();
}

/// Upgrades itself to `h:upgraded` (an entry with every module) handing it
/// a function ("function") or a table whose `__index` is the caller's
/// code ("bait"); that code tells whether it ran with the new entry's
/// modules.
const UPGRADER: &str = r#"
return function(how)
    if how == "function" then
        local ok, err = process.upgrade("h:upgraded", function() return require("time") end)
        return "refused: " .. tostring(err and err:message())
    end
    local bait = setmetatable({}, { __index = function()
        return pcall(require, "time") and "ran with the new entry's modules" or "ran without"
    end })
    process.upgrade("h:upgraded", bait)
end"#;

/// The new code: says what its argument is.
const UPGRADED: &str = r#"
return function(arg)
    return type(arg) .. " " .. tostring(getmetatable(arg)) .. " " .. tostring(arg.x)
end"#;

#[test]
fn upgrade_arguments_cross_as_data_not_as_the_callers_code() {
    // They were handed over live: the caller's closures then ran inside
    // the new entry, with its modules and grants (another namespace's
    // volumes and secrets, where the caller had no module at all).
    let app = || {
        app()
            .entry_with("h:attacker", UPGRADER, &[])
            .entry("h:upgraded", UPGRADED)
    };
    let out = attack(app(), "h:attacker", vec![s("bait")]);
    assert_eq!(out.value(), "table nil nil", "{out:?}");
    let out = attack(app(), "h:attacker", vec![s("function")]);
    assert_eq!(
        out.value(),
        "refused: process.upgrade: argument[1]: function cannot be sent",
        "{out:?}"
    );
}

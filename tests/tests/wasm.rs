//! WebAssembly component processes next to Lua ones.

use warren_core::Value;
use warren_tests::*;

#[test]
fn lua_and_a_component_trade_messages_with_values_intact() {
    let v = App::new()
        .component("t:echo", "echo")
        .entry(
            "t:main",
            r#"return function()
            local function deep_eq(a, b)
                if type(a) ~= type(b) then return false end
                if type(a) ~= "table" then return a == b and math.type(a) == math.type(b) end
                for k, v in pairs(a) do if not deep_eq(v, b[k]) then return false end end
                for k in pairs(b) do if a[k] == nil then return false end end
                return true
            end
            local events = process.events()
            local echo = process.spawn_monitored("t:echo", "test:host")
            local values = {
                { list = { 1, 2, 3 }, nested = { deep = { true, false } } },
                { 1.5, 2, "three", "\0\255binary" },
                -7, 2.0, "text",
            }
            for i, value in ipairs(values) do
                assert(process.send(echo, "v" .. i, value))
                local msg = process.inbox():receive()
                assert(msg:topic() == "v" .. i and msg:from() == echo)
                assert(deep_eq(msg:payload():data(), value), "value " .. i .. " changed")
            end
            process.send(echo, "stop")
            local ev = events:receive()
            assert(ev.kind == process.event.EXIT and ev.from == echo)
            return ev.result.value
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    assert_eq!(v, Value::Int(5));
}

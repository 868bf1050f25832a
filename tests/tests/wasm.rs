//! WebAssembly component processes next to Lua ones.

mod wasm_mapping;
use warren_core::Value;
use warren_tests::*;

#[test]
fn messages_from_a_component_reach_listeners_pending_and_the_inbox_in_order() {
    // A component's messages reach a Lua process as host items; one with
    // one payload and a topic of at most 64 bytes is routed in C (to a
    // listener, to the messages waiting for an inbox, to the inbox), any
    // other through the kernel: each case here, in order.
    let v = App::new()
        .component("t:echo", "echo")
        .entry(
            "t:main",
            r#"return function()
            local echo = process.spawn("t:echo", "test:host")
            local sync = process.listen("sync")
            -- Before the inbox exists: held for it, in order.
            process.send(echo, "early", { n = 1 })
            process.send(echo, "early", { n = 2 })
            process.send(echo, "sync", "a")
            assert(sync:receive() == "a")
            local inbox = process.inbox()
            local out = {}
            local function take()
                local m = inbox:receive()
                assert(m:from() == echo, "from " .. tostring(m:from()))
                local d = m:payload():data()
                out[#out + 1] = #m:topic() .. ":" .. (type(d) == "table" and tostring(d.n) or tostring(d))
            end
            take() take()
            -- A listened topic goes to its listener, not to the inbox.
            process.send(echo, "sync", "b")
            local long, edge = string.rep("t", 65), string.rep("u", 64)
            process.send(echo, long, "long")
            process.send(echo, edge, "edge")
            for i = 1, 40 do process.send(echo, "n", i) end
            assert(sync:receive() == "b")
            for _ = 1, 42 do take() end
            process.send(echo, "stop")
            return table.concat(out, " ")
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    let mut want = vec![
        "5:1".to_owned(),
        "5:2".into(),
        "65:long".into(),
        "64:edge".into(),
    ];
    want.extend((1..=40).map(|i| format!("1:{i}")));
    assert_eq!(v, Value::str(want.join(" ")));
}

#[test]
fn a_component_receives_every_piece_of_a_message_through_its_frame() {
    // The SDK's `receive` takes a message as one frame (`receive-frame`):
    // topic, sender and payloads, each length-prefixed. `echo` sends back
    // what it read: a non-ASCII topic, no payload, several payloads (one
    // of them binary, one nested, one empty string) and a payload larger
    // than the allocator's small blocks must all come back as they went.
    let v = App::new()
        .component("t:echo", "echo")
        .entry(
            "t:main",
            r#"return function()
            local echo = process.spawn("t:echo", "test:host")
            local inbox = process.inbox()
            local function back()
                local m = inbox:receive()
                assert(m:from() == echo, "from " .. tostring(m:from()))
                local list = m:payload()
                local parts = { m:topic(), tostring(#list) }
                for i = 1, #list do
                    local d = list[i]:data()
                    parts[#parts + 1] = type(d) == "table" and (d.k .. "/" .. #d.list) or tostring(#d) .. ":" .. d:sub(1, 3)
                end
                return table.concat(parts, " ")
            end
            local out = {}
            process.send(echo, "héllo→")
            out[#out + 1] = back()
            local big = string.rep("z", 5000)
            process.send(echo, "several", "\0\255\1", { k = "v", list = { 1, 2, 3 } }, "", big)
            out[#out + 1] = back()
            process.send(echo, "stop")
            return table.concat(out, " | ")
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    // The binary payload's bytes as they were (0xFF is not UTF-8 here).
    let want = [
        "héllo→ 0 | several 4 3:\0".as_bytes(),
        &[0xff, 1],
        b" v/3 0: 5000:zzz",
    ]
    .concat();
    assert_eq!(v, Value::Str(want));
}

#[test]
fn a_message_out_of_the_vm_is_refused_with_its_path_and_runs_no_metamethod() {
    // A send to a component leaves the VM (`H.send_plain`): what cannot be
    // sent is refused naming where, nothing of a payload's metatable runs,
    // and the sender goes on.
    let v = App::new()
        .component("t:echo", "echo")
        .entry(
            "t:main",
            r#"return function()
            local echo = process.spawn("t:echo", "test:host")
            local out = {}
            local function try(...)
                local ok, err = process.send(echo, ...)
                out[#out + 1] = ok and "ok" or (err:kind() .. " " .. err:message())
            end
            local cyclic = {} cyclic.self = cyclic
            try("t", cyclic)
            try("t", 1, { f = print })
            try("t", { inner = { ch = channel.new() } })
            local ran = false
            local sly = setmetatable({ k = "v" }, {
                __index = function() ran = true end,
                __pairs = function() ran = true error("pairs ran") end,
                __len = function() ran = true return 7 end,
            })
            try("t", sly)
            try("t\255", "not text")
            process.registry.register("t:me")
            local inbox = process.inbox()
            local m = inbox:receive()
            local d = m:payload():data()
            out[#out + 1] = m:topic() .. " " .. tostring(type(d) == "table" and d.k or d) .. " " .. tostring(ran)
            local ok = process.send(echo, "name", "x")
            out[#out + 1] = tostring(ok)
            process.send(echo, "stop")
            return table.concat(out, " | ")
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    let text = v.as_str().unwrap_or_default().to_owned();
    let parts: Vec<&str> = text.split(" | ").collect();
    assert_eq!(
        parts,
        [
            "Invalid payload.self: cycle: the table contains itself",
            "Invalid payload[2].f: function cannot be sent",
            "Invalid payload.inner.ch: channel cannot be sent",
            "ok",
            "Invalid process.send: the topic must be UTF-8 text",
            "t v false",
            "true",
        ],
        "{text}"
    );
}

/// A Lua process's payload to a component is encoded straight from its
/// table (guest-lua's `convert/from_lua/pack.rs`), to a Lua process it is
/// copied: both count it alike against `max_message_bytes` (the first
/// size refused is the same), one payload or two, and what the component
/// echoes back arrives whole. Number and boolean keys count as
/// `wire_size` counts them on both paths: 9 bytes, except `1..#t` of a
/// table that is an array (the same-VM copy counted every such key as
/// nothing).
#[test]
fn a_payload_to_a_component_is_measured_as_one_to_a_lua_process() {
    let v = App::new()
        .max_message_bytes(1_000)
        .component("t:echo", "echo")
        .entry(
            "t:main",
            r#"return function()
            local echo = process.spawn("t:echo", "test:host")
            local me, inbox = process.pid(), process.inbox()
            local function first_refused(dest, two)
                for n = 700, 1000 do
                    local v = { s = string.rep("x", n), list = { 1, 2.5, true, { k = "\255" } }, seven = 7,
                        [7] = "seven", [2.5] = false, [true] = 1, holes = { 1, nil, 3 }, mixed = { 1, 2, x = 3 } }
                    local ok, err
                    if two then ok, err = process.send(dest, "t", "lead", v)
                    else ok, err = process.send(dest, "t", v) end
                    if not ok then return n .. " " .. err:kind() end
                    local p = inbox:receive():payload()
                    local d = two and p[2]:data() or p:data()
                    assert(not two or p[1]:data() == "lead", "first payload")
                    assert(#d.s == n and d.list[2] == 2.5 and d.list[3] == true
                        and d.list[4].k == "\255" and d.seven == 7 and d[7] == "seven" and d[2.5] == false
                        and d[true] == 1 and d.holes[3] == 3 and d.holes[2] == nil and d.mixed[2] == 2
                        and d.mixed.x == 3, "changed at " .. n)
                end
                return "none refused"
            end
            local out = {
                first_refused(echo, false), first_refused(me, false),
                first_refused(echo, true), first_refused(me, true),
            }
            process.send(echo, "stop")
            return out
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    let Value::Array(got) = v else {
        panic!("not a list: {v:?}")
    };
    let got: Vec<&str> = got.iter().filter_map(Value::as_str).collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0], got[1], "one payload");
    assert_eq!(got[2], got[3], "two payloads");
    // 5 + (6 + 5 + n) + list (9 + 5 + 9 + 9 + 1 + (5 + 6 + 6)) + seven
    // (10 + 9) + [7] (9 + 10: the border is 0) + [2.5] (9 + 1) + [true]
    // (1 + 9) + holes (10 + 5 + 2 * (9 + 9)) + mixed (10 + 5 + 2 * (9 + 9)
    // + 6 + 9) = 1,000 at n = 759; the lead adds 9.
    assert_eq!(got[0], "760 Invalid");
    assert_eq!(got[2], "751 Invalid");
}

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

fn probe_with(echo_is_lua: bool) -> Vec<String> {
    let mut app = App::new()
        .workers(2)
        .component("t:probe", "probe")
        .component("t:crasher", "crasher");
    app = if echo_is_lua {
        app.entry("t:echo", LUA_ECHO).entry(
            "t:linkee",
            r#"return function(mode) error("deliberate " .. mode .. " in Lua") end"#,
        )
    } else {
        app.component("t:echo", "echo")
            .component("t:linkee", "crasher")
    };
    let v = app.run("t:probe", vec![s("test:host")]).expect("probe ran");
    strings(v)
}

fn expected_probe() -> Vec<&'static str> {
    vec![
        "pid:true",
        "lookup:true",
        "dup:Ok(())",
        "exec:fine",
        "exec-err:Err(ErrorKind::Conflict)",
        "echo:42",
        "exit:EventKind::Exit:true",
        "trap-links:true",
        "now:true",
        "link-down:true:true",
        "timeout:true",
        "unlinked-unmonitored:true",
        "terminated:terminated",
        "send-dead:Err(ErrorKind::NotFound)",
        "unregister:true",
    ]
}

#[test]
fn a_component_drives_the_process_interface_against_a_component_peer() {
    assert_eq!(probe_with(false), expected_probe());
}

#[test]
fn a_component_drives_the_process_interface_against_a_lua_peer() {
    assert_eq!(probe_with(true), expected_probe());
}

#[test]
fn lua_linked_to_a_crashing_component_gets_link_down_or_dies_with_it() {
    let trapped = App::new()
        .component("t:crasher", "crasher")
        .entry(
            "t:main",
            r#"return function()
            process.set_options({ trap_links = true })
            local pid = process.spawn_linked("t:crasher", "test:host", "panic")
            local ev = process.events():receive()
            assert(ev.kind == process.event.LINK_DOWN and ev.from == pid)
            return tostring(ev.result.error)
        end"#,
        )
        .run("t:main", vec![])
        .expect("main ran");
    let text = trapped.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("deliberate panic in a component"), "{text}");
    let killed = App::new()
        .component("t:crasher", "crasher")
        .entry(
            "t:main",
            r#"return function()
            process.spawn_linked("t:crasher", "test:host", "panic")
            process.inbox():receive()
            return "survived"
        end"#,
        )
        .run("t:main", vec![]);
    let err = killed.expect_err("the link killed main");
    assert!(err.message.contains("deliberate panic"), "{err}");
}

fn crasher(mode: &str) -> warren_core::Exit {
    App::new()
        .component("t:crasher", "crasher")
        .run("t:crasher", vec![s(mode)])
}

#[test]
fn a_panicking_component_ends_abnormally_with_the_trap() {
    let e = crasher("panic").expect_err("panics");
    assert_eq!(e.kind, warren_core::ErrorKind::Internal);
    assert!(
        e.message.contains("trap") && e.message.contains("unreachable"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("guest stderr: ")
            && e.message.contains("deliberate panic in a component"),
        "the panic message printed before the trap is kept: {}",
        e.message
    );
}

#[test]
fn a_component_that_exhausts_its_stack_ends_abnormally() {
    let e = crasher("recurse").expect_err("overflows");
    // Rust keeps its stack in linear memory on wasm32: overflowing it is an
    // out-of-bounds access; deep wasm frames exhaust wasmtime's own stack.
    let exhausted = e.message.contains("out of bounds memory access")
        || e.message.contains("call stack exhausted");
    assert!(e.message.starts_with("trap:") && exhausted, "{}", e.message);
}

#[test]
fn a_component_error_keeps_its_kind_and_message() {
    let e = crasher("error").expect_err("returns an error");
    assert_eq!(e.kind, warren_core::ErrorKind::Conflict);
    assert_eq!(e.message, "deliberate error from a component");
}

#[test]
fn malformed_messagepack_from_a_guest_is_an_error_for_that_call() {
    let v = crasher("bad-payload").expect("the guest survives");
    let text = v.as_str().unwrap_or_default().to_owned();
    assert!(
        text.starts_with("ErrorKind::Invalid: payload 1: malformed MessagePack payload"),
        "{text}"
    );
}

#[test]
fn lua_uses_a_stateful_component_and_a_cpu_bound_one() {
    let v = App::new()
        .component("t:kv", "kv")
        .component("t:hasher", "hasher")
        .entry(
            "t:main",
            r#"return function()
            local kv = process.spawn("t:kv", "test:host")
            process.send(kv, "put", { key = "a", value = "1" })
            process.send(kv, "put", { key = "b", value = "2" })
            process.send(kv, "get", { key = "b" })
            local b = process.inbox():receive():payload():data()
            process.send(kv, "get", { key = "zzz" })
            local missing = process.inbox():receive():payload():data()
            local hasher = process.spawn("t:hasher", "test:host", 3)
            process.send(hasher, "hash", "\0\1\2warren")
            local digest = process.inbox():receive():payload():data()
            process.send(kv, "stop"); process.send(hasher, "stop")
            return { b, missing == nil, digest }
        end"#,
        )
        .run("t:main", vec![])
        .expect("ok");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..3 {
        for b in b"\0\x01\x02warren" {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let expected = i64::from_ne_bytes(h.to_ne_bytes());
    assert_eq!(
        v,
        Value::Array(vec![s("2"), Value::Bool(true), Value::Int(expected)])
    );
}

#[test]
fn bad_components_are_refused_at_load_naming_the_problem() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bad-wasm");
    std::fs::create_dir_all(&dir).expect("dir");
    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm at all").expect("write");
    let core_module = dir.join("module.wasm");
    std::fs::write(&core_module, b"\0asm\x01\0\0\0").expect("write");
    let engine = engine();
    let err = engine.load(&garbage).err().expect("refused").to_string();
    assert!(
        err.contains("garbage.wasm: not a WebAssembly component"),
        "{err}"
    );
    let err = engine
        .load(&core_module)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("module.wasm: not a WebAssembly component"),
        "{err}"
    );
    // A valid component that exports nothing: not the process world.
    let empty = dir.join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x0d\0\x01\0").expect("write");
    let err = engine.load(&empty).err().expect("refused").to_string();
    assert!(
        err.contains("empty.wasm: does not fit the process world") && err.contains("run"),
        "{err}"
    );
    let err = engine
        .load(&component("wrong_version"))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("imports warren:process/")
            && err.contains("@0.2.0, but this host implements warren:process@0.1.0"),
        "{err}"
    );
}

#[test]
fn rust_data_arrives_in_lua_as_its_author_wrote_it_and_empty_tables_decode() {
    let v = App::new()
        .component("t:shapes", "shapes")
        .entry(
            "t:main",
            r#"return function()
                local pid = process.spawn("t:shapes", "test:host", process.pid())
                local inbox = process.inbox()
                local r = inbox:receive():payload():data()
                assert(r.name == "widget" and r.count == 3, "fields by name")
                assert(r.tags[2] == "b" and r.inner.flag == true, "nested")
                assert(r.missing == nil and r.present == 7, "options")
                assert(r.color == "Red", "a unit variant is its name: " .. tostring(r.color))
                local out = {}
                for _, sent in ipairs({ {}, { 1, 2 }, { a = 1 }, { items = {} } }) do
                    process.send(pid, "decode", sent)
                    local d = inbox:receive():payload():data()
                    out[#out + 1] = table.concat(d, "; ")
                end
                process.send(pid, "stop")
                return out
            end"#,
        )
        .run("t:main", vec![])
        .expect("ran");
    assert_eq!(
        strings(v),
        [
            r#"vec of 0; map of 0; settings 0 """#,
            r#"vec of 2; error: cannot decode payload: invalid type: sequence, expected a map; error: cannot decode payload: invalid type: integer `1`, expected a sequence"#,
            r#"error: cannot decode payload: invalid type: map, expected a sequence; map of 1; settings 0 """#,
            r#"error: cannot decode payload: invalid type: map, expected a sequence; error: cannot decode payload: wrong msgpack marker FixMap(0); settings 0 """#,
        ]
    );
}

//! The Lua ↔ MessagePack ↔ Rust mapping of `docs/data-mapping.md`, held
//! through real processes: the `roundtrip` component (registered as
//! `roundtrip`) and a Lua echo (registered as `lua-echo`) live for a whole
//! property; each case is a short Lua driver run on the same runtime.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use warren_core::{Runtime, Value};
use warren_tests::*;

/// Echoes every message back on "echoed"; on "echo-alter" it first appends
/// "!" to the `text` field, so the component must see a difference.
const MAPPING_ECHO: &str = r#"return function()
    assert(process.registry.register("lua-echo"))
    local inbox = process.inbox()
    while true do
        local msg = inbox:receive()
        local topic = msg:topic()
        if topic == "stop" then return 0 end
        local v = msg:payload():data()
        if topic == "echo-alter" then v.text = v.text .. "!" end
        process.send(msg:from(), "echoed", v)
    end
end"#;

/// Starts the component and the echo and waits until both are registered.
const SETUP: &str = r#"return function()
    local time = require("time")
    process.spawn("t:roundtrip", "test:host")
    process.spawn("t:lua-echo", "test:host")
    for _ = 1, 500 do
        if process.registry.lookup("roundtrip") and process.registry.lookup("lua-echo") then
            return true
        end
        time.sleep("10ms")
    end
    error("the roundtrip pair did not register")
end"#;

/// One Rust → Lua → Rust case: the component decodes `v` as its `Rich`
/// type, sends it to the Lua echo, decodes the echo and reports.
const RICH_CASE: &str = r#"return function(v, alter)
    assert(process.send("roundtrip", alter and "rich-alter" or "rich", v))
    return process.inbox():receive():payload():data()
end"#;

/// Deep equality as Lua sees values: same types, same number subtypes
/// (`math.type`), NaN equal to NaN, `-0.0` different from `0.0`, tables
/// equal key by key. Returns `true` or `false, where`.
const DEEP_EQ: &str = r#"
local function deep_eq(a, b, path)
    if type(a) ~= type(b) then
        return false, path .. ": " .. type(a) .. " vs " .. type(b)
    end
    if type(a) == "number" then
        if math.type(a) ~= math.type(b) then
            return false, path .. ": " .. math.type(a) .. " vs " .. math.type(b)
        end
        if a ~= a and b ~= b then return true end
        if a ~= b or (a == 0 and math.type(a) == "float" and 1 / a ~= 1 / b) then
            return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
        end
        return true
    end
    if type(a) ~= "table" then
        if a == b then return true end
        return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
    end
    for k, v in pairs(a) do
        local ok, why = deep_eq(v, rawget(b, k), path .. "[" .. tostring(k) .. "]")
        if not ok then return false, why end
    end
    for k in pairs(b) do
        if rawget(a, k) == nil then return false, path .. ": extra key " .. tostring(k) end
    end
    return true
end
"#;

/// One Lua → Rust → Lua case: the component decodes `v` as a generic
/// value and sends it back; the result is `{equal = bool, why = text}`.
fn any_case() -> String {
    format!(
        r#"{DEEP_EQ}
return function(v, alter)
    assert(process.send("roundtrip", alter and "any-alter" or "any", v))
    local msg = process.inbox():receive()
    if msg:topic() ~= "any" then
        return {{ equal = false, why = "component: " .. tostring(msg:payload():data()) }}
    end
    local ok, why = deep_eq(v, msg:payload():data(), "v")
    return {{ equal = ok, why = why or "" }}
end"#
    )
}

/// Renders a Lua value deterministically: numbers with their subtype,
/// strings quoted, tables with sorted keys, error objects as `error(...)`.
const SHOW: &str = r#"
local function show(v)
    local t = type(v)
    if t == "number" then
        if v ~= v then return "float:nan" end
        if math.type(v) == "integer" then return "int:" .. string.format("%d", v) end
        return "float:" .. string.format("%.17g", v)
    elseif t == "string" then
        return '"' .. v:gsub("[^%w%p ]", function(c) return string.format("\\x%02x", c:byte()) end) .. '"'
    elseif t ~= "table" then
        return tostring(v)
    end
    local ok, kind = pcall(function() return v:kind() end)
    if ok then
        return "error(" .. kind .. "," .. v:message() .. "," .. tostring(v:retryable()) .. ")"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = show(k) .. "=" .. show(v[k]) end
    table.sort(parts)
    return "{" .. table.concat(parts, ",") .. "}"
end
"#;

/// Sends the named cases from the component and shows what Lua got.
fn sent_from_rust() -> String {
    format!(
        r#"{SHOW}
return function(cases)
    local out = {{}}
    for _, case in ipairs(cases) do
        assert(process.send("roundtrip", "send", case))
        local msg = process.inbox():receive()
        local v = msg:payload():data()
        if msg:topic() == "case" then
            out[#out + 1] = case .. " -> " .. show(v)
        else
            out[#out + 1] = case .. " -> " .. msg:topic() .. ": " .. tostring(v)
        end
    end
    return out
end"#
    )
}

/// Decodes Lua values in the component as named Rust types.
const DECODED_IN_RUST: &str = r#"return function()
    local nan = 0 / 0
    local deep = 1
    for _ = 1, 64 do deep = { deep } end
    local err = errors.new { message = "made in Lua", kind = errors.NOT_FOUND, retryable = true }
    local cases = {
        { "i64", 3 }, { "i64", 3.0 }, { "i64", 3.5 }, { "f64", 3 }, { "u64", -1 },
        { "u8", 256 }, { "f32", 1.5 }, { "f64", nan }, { "bool", 1 },
        { "string", "\xff\xfe" }, { "string", "text" },
        { "char", "é" }, { "char", "ab" },
        { "bytes", "\0\159\255" }, { "bytes", "hi" }, { "vec_u8", "\0\159\255" }, { "vec_u8", "hi" },
        { "vec_u8", { 1, 2 } }, { "i128", "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\5" },
        { "vec_i64", { 1, 2, 3 } }, { "vec_i64", {} }, { "vec_i64", { [1] = 1, [3] = 3 } },
        { "vec_opt_i64", { 1, nil, 3 } }, { "opt_i64", 4 }, { "opt_opt_i64", 4 },
        { "marker", {} }, { "with_unit", { n = 1 } }, { "tuple", { 1, "two" } }, { "tuple", { 1 } },
        { "kind", "Unit" }, { "kind", { Newtype = 5 } }, { "kind", { Tuple = { 1, "t" } } },
        { "kind", { Struct = { x = 2 } } }, { "kind", { Unit = true } }, { "kind", { Newtype = 1, Unit = 1 } },
        { "kind", "Nope" },
        { "map_str", { a = 1 } }, { "map_str", {} }, { "map_i64", { [1] = "a", [3] = "c" } },
        { "map_i64", { "a", "b" } }, { "map_bool", { [true] = 1 } }, { "hashmap_opt", { a = 1, b = nil } },
        { "empties", { list = {}, map = {} } }, { "empty_and_optional", { list = {}, opts = {} } },
        { "inner", { flag = true, floats = {} } },
        { "any", { 1, 2.0, "s", "\255", true } }, { "any", deep }, { "any", err },
    }
    local out = {}
    for _, case in ipairs(cases) do
        local ty, value = case[1], case[2]
        assert(process.send("roundtrip", "as", ty, value))
        out[#out + 1] = ty .. " <- " .. process.inbox():receive():payload():data()
    end
    return out
end"#;

/// A runtime with the roundtrip pair running.
fn mapping_runtime() -> Runtime {
    let runtime = App::new()
        .workers(2)
        .component("t:roundtrip", "roundtrip")
        .entry("t:lua-echo", MAPPING_ECHO)
        .entry("t:setup", SETUP)
        .entry("t:rich-case", RICH_CASE)
        .entry("t:any-case", &any_case())
        .entry("t:sent", &sent_from_rust())
        .entry("t:decoded", DECODED_IN_RUST)
        .start();
    assert_eq!(run_on(&runtime, "t:setup", vec![]), Ok(Value::Bool(true)));
    runtime
}

fn key(name: &str, v: Value) -> (Value, Value) {
    (Value::str(name), v)
}

fn opt(v: Option<Value>) -> Value {
    v.unwrap_or(Value::Nil)
}

fn text() -> impl Strategy<Value = Value> {
    "\\PC{0,6}".prop_map(Value::str)
}

fn floats() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<f64>().prop_map(Value::Float),
        Just(Value::Float(2.0)),
        Just(Value::Float(-0.0)),
        Just(Value::Float(f64::NAN)),
        Just(Value::Float(f64::INFINITY)),
    ]
}

/// The component's `Inner`, as the SDK encodes it.
fn inner() -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        proptest::option::of(text()),
        proptest::collection::vec(floats(), 0..3),
    )
        .prop_map(|(flag, note, floats)| {
            Value::Map(vec![
                key("flag", Value::Bool(flag)),
                key("note", opt(note)),
                key("floats", Value::Array(floats)),
            ])
        })
}

/// The component's `Kind`: a unit variant is its name, the others a map of
/// one entry from the name to the content.
fn kind() -> impl Strategy<Value = Value> {
    let variant = |name: &str, v: Value| Value::Map(vec![key(name, v)]);
    prop_oneof![
        Just(Value::str("Unit")),
        any::<i64>().prop_map(move |i| variant("Newtype", Value::Int(i))),
        (any::<i64>(), text())
            .prop_map(move |(i, s)| variant("Tuple", Value::Array(vec![Value::Int(i), s]))),
        (any::<i64>(), proptest::option::of(text())).prop_map(move |(x, y)| variant(
            "Struct",
            Value::Map(vec![key("x", Value::Int(x)), key("y", opt(y))])
        )),
    ]
}

fn string_map<S: Strategy<Value = Value>>(values: S, n: usize) -> impl Strategy<Value = Value> {
    proptest::collection::btree_map("[a-z0-9]{0,4}", values, 0..n)
        .prop_map(|m| Value::Map(m.into_iter().map(|(k, v)| (Value::str(k), v)).collect()))
}

/// The component's `Rich`, as the SDK encodes it (`to_vec_named`).
fn rich() -> impl Strategy<Value = Value> {
    let scalars = (
        any::<i64>(),
        0..=i64::MAX,
        any::<i8>(),
        floats(),
        any::<bool>(),
        text(),
        any::<char>(),
        proptest::option::of(any::<i64>()),
    );
    let collections = (
        proptest::collection::vec(any::<i64>(), 0..4),
        proptest::collection::vec(text(), 0..3),
        string_map(any::<i64>().prop_map(Value::Int), 3),
        string_map(inner(), 2),
        kind(),
        proptest::collection::vec(kind(), 0..3),
        proptest::collection::vec(any::<u8>(), 0..8),
        inner(),
        proptest::option::of(inner()),
        (any::<i64>(), text()),
    );
    (scalars, collections).prop_map(
        |(
            (i, u, small, f, b, text, ch, opt_i),
            (list, names, hmap, bmap, kind, kinds, bytes, inner, maybe, (p0, p1)),
        )| {
            Value::Map(vec![
                key("i", Value::Int(i)),
                key("u", Value::Int(u)),
                key("small", Value::Int(small.into())),
                key("f", f),
                key("b", Value::Bool(b)),
                key("text", text),
                key("ch", Value::str(ch.to_string())),
                key("opt", opt(opt_i.map(Value::Int))),
                key(
                    "list",
                    Value::Array(list.into_iter().map(Value::Int).collect()),
                ),
                key("names", Value::Array(names)),
                key("hmap", hmap),
                key("bmap", bmap),
                key("kind", kind),
                key("kinds", Value::Array(kinds)),
                key("bytes", Value::Str(bytes)),
                key("inner", inner),
                key("maybe", opt(maybe)),
                key("pair", Value::Array(vec![Value::Int(p0), p1])),
            ])
        },
    )
}

/// Values a Lua process can hold (no nil or NaN keys, scalar keys, float
/// keys that Lua does not turn into integers), as `convert_props.rs`.
fn lua_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        (1..5i64).prop_map(Value::Int),
        "[a-z]{0,6}".prop_map(Value::str),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![Just(f64::INFINITY), Just(-0.5), Just(1e300)].prop_map(Value::Float),
    ];
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        floats(),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Str),
        text(),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..6).prop_map(Value::Map),
        ]
    })
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.get(name).unwrap_or(&Value::Nil)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Runs one Rust → Lua → Rust case and returns the component's report.
fn rich_round_trip(runtime: &Runtime, v: &Value, alter: bool) -> Value {
    run_on(runtime, "t:rich-case", vec![v.clone(), Value::Bool(alter)])
        .unwrap_or_else(|e| panic!("the rich driver failed: {e}"))
}

#[test]
fn rust_values_round_trip_through_lua() {
    let runtime = mapping_runtime();
    // The comparison can fail: an echo that changes `text` is caught.
    let sample = rich().new_tree(&mut runner()).expect("a sample").current();
    let altered = rich_round_trip(&runtime, &sample, true);
    assert_eq!(field(&altered, "ok"), &Value::Bool(false), "{altered:?}");
    assert_eq!(
        field(&altered, "stage").as_str(),
        Some("compare"),
        "{altered:?}"
    );
    let started = std::time::Instant::now();
    let cases = std::cell::Cell::new(0);
    runner()
        .run(&rich(), |v| {
            cases.set(cases.get() + 1);
            let report = rich_round_trip(&runtime, &v, false);
            if field(&report, "ok") != &Value::Bool(true) {
                return Err(TestCaseError::fail(format!(
                    "{}: {}",
                    field(&report, "stage").describe(),
                    field(&report, "detail").describe()
                )));
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cases.get(), 64);
    eprintln!("64 rich round trips: {:?}", started.elapsed());
}

fn any_round_trip(runtime: &Runtime, v: &Value, alter: bool) -> (bool, String) {
    let r = run_on(runtime, "t:any-case", vec![v.clone(), Value::Bool(alter)])
        .unwrap_or_else(|e| panic!("the any driver failed: {e}"));
    (
        field(&r, "equal") == &Value::Bool(true),
        field(&r, "why").describe(),
    )
}

#[test]
fn lua_values_round_trip_through_rust() {
    let runtime = mapping_runtime();
    // The Lua comparison can fail, including on the integer/float subtype
    // and on a string, a table or a boolean changed in the component.
    for v in [
        Value::Int(2),
        Value::Float(2.0),
        Value::Float(-0.0),
        Value::str("s"),
        Value::Bool(true),
        Value::Map(vec![]),
        Value::Array(vec![Value::Int(1)]),
    ] {
        let (equal, why) = any_round_trip(&runtime, &v, true);
        assert!(!equal, "altered {v:?} compared equal");
        assert!(why.starts_with("v"), "{why}");
    }
    let started = std::time::Instant::now();
    let cases = std::cell::Cell::new(0);
    runner()
        .run(&lua_value(), |v| {
            cases.set(cases.get() + 1);
            let (equal, why) = any_round_trip(&runtime, &v, false);
            prop_assert!(equal, "{why}");
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cases.get(), 64);
    eprintln!("64 any round trips: {:?}", started.elapsed());
}

#[test]
fn the_mapping_edge_cases_are_as_documented() {
    let runtime = mapping_runtime();
    let cases = [
        "u64_max",
        "i64_min",
        "float_2",
        "f32",
        "nan",
        "inf",
        "i128",
        "unit",
        "marker",
        "with_unit",
        "some_none",
        "vec_opt",
        "vec_trailing_none",
        "bytes",
        "bytes_text",
        "vec_u8",
        "char",
        "tuple",
        "kinds",
        "int_keys",
        "empty_vec",
        "empty_map",
        "error_shaped",
        "deep64",
        "deep65",
    ];
    let args = Value::Array(cases.iter().map(|c| Value::str(*c)).collect());
    let sent = strings(run_on(&runtime, "t:sent", vec![args]).expect("sent ran"));
    let decoded = strings(run_on(&runtime, "t:decoded", vec![]).expect("decoded ran"));
    let nest = |n: usize| format!("{}int:1{}", "{int:1=".repeat(n), "}".repeat(n));
    let deep64 = format!("deep64 -> {}", nest(64));
    let deep65 = format!(
        "deep65 -> send-error: payload{}: nesting deeper than 64 levels cannot be sent",
        "[1]".repeat(64)
    );
    let deep_any = format!(
        "any <- ok: {}Int(1){}",
        "Array([".repeat(64),
        "])".repeat(64)
    );
    let expected_sent: Vec<&str> = vec![
        r#"u64_max -> send-error: payload 1: malformed MessagePack payload: integer 18446744073709551615 does not fit in int64"#,
        r#"i64_min -> int:-9223372036854775808"#,
        r#"float_2 -> float:2"#,
        r#"f32 -> float:1.5"#,
        r#"nan -> float:nan"#,
        r#"inf -> {int:1=float:inf,int:2=float:-inf,int:3=float:-0}"#,
        r#"i128 -> "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05""#,
        r#"unit -> nil"#,
        r#"marker -> {}"#,
        r#"with_unit -> {"n"=int:1}"#,
        r#"some_none -> nil"#,
        r#"vec_opt -> {int:1=int:1,int:3=int:3}"#,
        r#"vec_trailing_none -> {int:1=int:1}"#,
        r#"bytes -> "\x00\x9f\xff""#,
        r#"bytes_text -> "hi""#,
        r#"vec_u8 -> {int:1=int:1,int:2=int:2,int:3=int:3}"#,
        r#"char -> "\xc3\xa9""#,
        r#"tuple -> {int:1=int:1,int:2="two"}"#,
        r#"kinds -> {int:1="Unit",int:2={"Newtype"=int:5},int:3={"Tuple"={int:1=int:1,int:2="t"}},int:4={"Struct"={"x"=int:2}}}"#,
        r#"int_keys -> {int:1="a",int:2="b"}"#,
        r#"empty_vec -> {}"#,
        r#"empty_map -> {}"#,
        r#"error_shaped -> error(NotFound,made in Rust,true)"#,
        &deep64,
        &deep65,
    ];
    let expected_decoded: Vec<&str> = vec![
        r#"i64 <- ok: 3"#,
        r#"i64 <- error: cannot decode payload: invalid type: floating point `3.0`, expected i64"#,
        r#"i64 <- error: cannot decode payload: invalid type: floating point `3.5`, expected i64"#,
        r#"f64 <- ok: 3.0"#,
        r#"u64 <- error: cannot decode payload: invalid value: integer `-1`, expected u64"#,
        r#"u8 <- error: cannot decode payload: invalid value: integer `256`, expected u8"#,
        r#"f32 <- ok: 1.5"#,
        r#"f64 <- ok: NaN"#,
        r#"bool <- error: cannot decode payload: invalid type: integer `1`, expected a boolean"#,
        r#"string <- error: cannot decode payload: invalid value: byte array, expected a string"#,
        r#"string <- ok: "text""#,
        r#"char <- ok: 'é'"#,
        r#"char <- error: cannot decode payload: invalid value: string "ab", expected a character"#,
        r#"bytes <- ok: Bytes([0, 159, 255])"#,
        r#"bytes <- ok: Bytes([104, 105])"#,
        r#"vec_u8 <- ok: [0, 159, 255]"#,
        r#"vec_u8 <- error: cannot decode payload: invalid type: string "hi", expected a sequence"#,
        r#"vec_u8 <- ok: [1, 2]"#,
        r#"i128 <- ok: 5"#,
        r#"vec_i64 <- ok: [1, 2, 3]"#,
        r#"vec_i64 <- ok: []"#,
        r#"vec_i64 <- error: cannot decode payload: invalid type: map, expected a sequence"#,
        r#"vec_opt_i64 <- error: cannot decode payload: invalid type: map, expected a sequence"#,
        r#"opt_i64 <- ok: Some(4)"#,
        r#"opt_opt_i64 <- ok: Some(Some(4))"#,
        r#"marker <- ok: Marker"#,
        r#"with_unit <- error: cannot decode payload: missing field `unit`"#,
        r#"tuple <- ok: (1, "two")"#,
        r#"tuple <- error: cannot decode payload: invalid length 1, expected a tuple of size 2"#,
        r#"kind <- ok: Unit"#,
        r#"kind <- ok: Newtype(5)"#,
        r#"kind <- ok: Tuple(1, "t")"#,
        r#"kind <- ok: Struct { x: 2, y: None }"#,
        r#"kind <- error: cannot decode payload: wrong msgpack marker True"#,
        r#"kind <- error: cannot decode payload: array had incorrect length, expected 2"#,
        r#"kind <- error: cannot decode payload: unknown variant `Nope`, expected one of `Unit`, `Newtype`, `Tuple`, `Struct`"#,
        r#"map_str <- ok: {"a": 1}"#,
        r#"map_str <- ok: {}"#,
        r#"map_i64 <- ok: {1: "a", 3: "c"}"#,
        r#"map_i64 <- error: cannot decode payload: invalid type: sequence, expected a map"#,
        r#"map_bool <- ok: {true: 1}"#,
        r#"hashmap_opt <- ok: {"a": Some(1)}"#,
        r#"empties <- ok: Empties { list: [], map: {} }"#,
        r#"empty_and_optional <- ok: EmptyAndOptional { list: [], opts: Optional { a: None } }"#,
        r#"inner <- ok: Inner { flag: true, note: None, floats: [] }"#,
        r#"any <- ok: Array([Int(1), Float(2.0), Str("s"), Bin([255]), Bool(true)])"#,
        &deep_any,
        r#"any <- ok: Map([(Str("@error"), Bool(true)), (Str("kind"), Str("NOT_FOUND")), (Str("message"), Str("made in Lua")), (Str("retryable"), Bool(true)), (Str("details"), Nil)])"#,
    ];
    assert_eq!(sent, expected_sent);
    assert_eq!(decoded, expected_decoded);
}

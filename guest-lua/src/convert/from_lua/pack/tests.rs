//! The packed encoding against the walk: for every value, the same bytes
//! as `msgpack::encode` of the walk's value, the same count (which is
//! `wire_size` of that value), and under every budget the same answer
//! (the same error at the same path, the same bytes counted when it
//! stopped).

use mlua::{Lua, Value as LuaValue};
use proptest::prelude::*;
use warren_core::{Payload, Value, msgpack};

use super::super::super::tests::eval;
use super::super::super::{Budget, ConvertError, Converter, to_lua};
use super::super::push_keys;

/// What one way of copying answered: the bytes (encoded, for the walk)
/// and the count, or the error.
type Answer = Result<(Vec<u8>, usize), ConvertError>;

/// `v` packed, and `v` converted by the walk then encoded, each under a
/// budget of `bytes`.
fn both(lua: &Lua, v: &LuaValue, bytes: usize) -> (Answer, Answer) {
    let (packed, walked, _) = both_counted(lua, v, bytes);
    (packed, walked)
}

/// As [`both`], with the tables the packing entered (its work).
fn both_counted(lua: &Lua, v: &LuaValue, bytes: usize) -> (Answer, Answer, usize) {
    let budget = Budget {
        bytes,
        name: "test budget",
        floor: 1,
    };
    let mut answers = None;
    // SAFETY: in mlua's protected call with `v` at 1; `push_keys` (which
    // may raise) runs before any Rust value that needs dropping, and the
    // copies raise nothing.
    unsafe {
        lua.exec_raw::<()>(v, |l| {
            push_keys(l);
            let mut a = Converter::new(budget);
            let packed = a
                .pack_at(l, 1, 2, "v")
                .map(|p| (p.bytes().to_vec(), Payload::Packed(p).wire_size()));
            let mut b = Converter::new(budget);
            let walked = b.convert_at(l, 1, 2, "v").map(|v| {
                // What the walk counts is `wire_size` of what it built: a
                // message counts the same on every path.
                let wire = warren_core::limits::wire_size(std::slice::from_ref(&v));
                assert_eq!(b.used, wire, "the walk's count of {v:?}");
                (msgpack::encode(&v), b.used)
            });
            answers = Some((packed, walked, a.entered()));
        })
        .expect("the names table is made");
    }
    answers.expect("ran")
}

/// Asserts the two ways agree on `v` under every budget up to its size
/// and one past it; answers the encoding.
fn agree_at_every_budget(lua: &Lua, v: &LuaValue, what: &str) -> Answer {
    let (full, walked) = both(lua, v, 1 << 20);
    assert_eq!(full, walked, "{what}: unlimited budget");
    let size = full.as_ref().map_or(64, |(_, n)| *n);
    for bytes in 0..=size + 1 {
        let (packed, walked) = both(lua, v, bytes);
        assert_eq!(packed, walked, "{what}: budget {bytes}");
    }
    full
}

#[test]
fn every_shape_encodes_as_the_walk_encodes_under_every_budget() {
    let lua = Lua::new();
    let sources = [
        "return nil",
        "return true",
        "return math.mininteger",
        "return 1.5",
        "return 2.0",
        "return 'text'",
        "return '\\0\\255binary'",
        "return {}",
        "return { 1, 2, 3 }",
        "return { 1, 'two', 3.5, { x = 1 }, false }",
        "return { a = 1, b = { c = { d = 'e' } } }",
        "return { 1, 2, x = 'y' }",
        "return { x = 'y', 1, 2 }",
        "return { [1] = 1, [3] = 3 }",
        "return { [2] = 2 }",
        "return { [1.5] = 1, [true] = false, [-1] = 'neg', [0] = 0 }",
        "return { ['\\255key'] = 1, ['odd key'] = 2 }",
        "local t = {} t[3] = 3 t[2] = 2 t[1] = 1 return t",
        // Keys 1..3 in the hash part, which a traversal visits 3, 1, 2.
        "return { [3] = 'c', [1] = 'a', [2] = { 'b' } }",
        "local t = {} for i = 12, 1, -1 do t[i] = { i } end return t",
        "local t = { 1, 2, 3 } t[5] = 5 return t",
        // Longer than a one-byte header holds, alone and nested.
        "local t = {} for i = 1, 20 do t['k' .. i] = i end return t",
        "local t = {} for i = 1, 20 do t[i] = { i, k = i } end return { t, m = { t } }",
        "local t = {} for i = 1, 17 do t['k' .. i] = { x = { 'y' } } end return { t, t }",
        "local t = { 1, 2, 3, 4 } t[4] = nil t.x = 1 return t",
        "local e = setmetatable({ _kind = 'NotFound', _message = 'gone', _retryable = true, \
         _details = { id = 3 }, _text = 'outer: gone' }, { __warren_error = true }) \
         return { err = e, list = { e } }",
    ];
    for src in sources {
        let v = eval(&lua, src);
        let answer = agree_at_every_budget(&lua, &v, src);
        assert!(answer.is_ok(), "{src}: {answer:?}");
    }
}

#[test]
fn every_refusal_is_the_walks_at_the_same_path() {
    let lua = Lua::new();
    let refused = [
        (
            "local t = {} t.self = t return t",
            "v.self: cycle: the table contains itself",
        ),
        (
            "return { 1, { f = print } }",
            "v[2].f: function cannot be sent",
        ),
        ("return { [{}] = 1 }", "v: a table key cannot be sent"),
        (
            "return { [print] = print }",
            "v[function]: function cannot be sent",
        ),
        (
            "return { x = 1, [{}] = { print } }",
            "v[table][1]: function cannot be sent",
        ),
        (
            "return { inner = { ch = setmetatable({}, { __warren = 'channel' }) } }",
            "v.inner.ch: channel cannot be sent",
        ),
        ("return coroutine.create(print)", "v: thread cannot be sent"),
        (
            "local t = {} local c = t for i = 1, 64 do c.n = {} c = c.n end return t",
            "nesting deeper than 64 levels cannot be sent",
        ),
    ];
    for (src, want) in refused {
        let v = eval(&lua, src);
        let answer = agree_at_every_budget(&lua, &v, src);
        let err = answer.expect_err(src).to_string();
        assert!(err.ends_with(want), "{src}: {err}");
    }
    // 64 levels cross, as they do through the walk.
    let deepest = eval(
        &lua,
        "local t = {} local c = t for i = 1, 63 do c.n = {} c = c.n end return t",
    );
    assert!(agree_at_every_budget(&lua, &deepest, "64 levels").is_ok());
}

#[test]
fn a_shared_table_is_counted_every_time_and_runs_no_metamethod() {
    let lua = Lua::new();
    let v = eval(
        &lua,
        r#"ran = false
        local trap = function() ran = true error("a metamethod ran") end
        local mt = { __index = trap, __newindex = trap, __pairs = trap, __len = trap }
        local shared = setmetatable({ 1, 2, 3 }, mt)
        local t = setmetatable({}, mt)
        for i = 1, 40 do rawset(t, i, shared) end
        return t"#,
    );
    let (packed, walked) = both(&lua, &v, 1 << 20);
    assert_eq!(packed, walked);
    assert!(!lua.globals().get::<bool>("ran").expect("flag"));
    // 40 copies of the shared table are more tables than a small budget allows.
    let (packed, walked) = both(&lua, &v, 512);
    assert_eq!(packed, walked);
    assert!(packed.expect_err("over").over_budget);
}

/// A value nested 16 levels, every level a border and a key outside it
/// (`{ child, x = 1 }`), or keys `1..#t` visited out of order: written
/// without doing a level's work again at the level above (a retry per
/// level enters 2^16 tables here, and 2^64 at the depth a message may
/// have). Every table is entered at most twice.
#[test]
fn nested_tables_of_every_shape_cost_linear_work() {
    let lua = Lua::new();
    let shapes = [
        "function(child) return { child, x = 1 } end",
        "function(child) return { [3] = child, [1] = 1, [2] = 2 } end",
        "function(child) return { child, 2, nil, 4 } end",
        "function(child) return { child } end",
    ];
    for make in shapes {
        let src =
            format!("local make = {make} local t = {{}} for _ = 1, 16 do t = make(t) end return t");
        let v = eval(&lua, &src);
        let (packed, walked, entered) = both_counted(&lua, &v, 1 << 20);
        assert!(packed.is_ok(), "{make}: {packed:?}");
        assert_eq!(packed, walked, "{make}");
        assert!(entered <= 2 * 17, "{make}: {entered} tables entered for 17");
    }
}

/// Maps of more than 15 entries at every one of 64 levels, a long string
/// at the bottom: every header widened, each in its place.
#[test]
fn wide_maps_at_every_level_encode_as_the_walk_encodes() {
    let lua = Lua::new();
    let v = eval(
        &lua,
        "local t = { s = string.rep('x', 1000) } \
         for d = 1, 63 do local m = { inner = t } for i = 1, 16 + d % 3 do m['k' .. i] = i end t = m end \
         return t",
    );
    let (packed, walked) = both(&lua, &v, 1 << 20);
    assert!(packed.is_ok(), "{packed:?}");
    assert_eq!(packed, walked);
}

/// Any value a Lua table can hold: maps keyed by text, integers and
/// booleans, arrays with and without holes, nested a few levels.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (-1e6f64..1e6).prop_map(Value::Float),
        ".{0,12}".prop_map(Value::str),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Str),
    ];
    let key = prop_oneof![
        ".{0,6}".prop_map(Value::str),
        (-3i64..20).prop_map(Value::Int),
        any::<bool>().prop_map(Value::Bool),
    ];
    leaf.prop_recursive(4, 48, 10, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..20).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn any_table_packs_as_the_walk_encodes(v in any_value(), budget in 0usize..400) {
        let lua = Lua::new();
        let lv = to_lua(&lua, &v).expect("fits in Lua");
        let (packed, walked) = both(&lua, &lv, 1 << 20);
        prop_assert_eq!(&packed, &walked);
        let (packed, walked) = both(&lua, &lv, budget);
        prop_assert_eq!(packed, walked);
    }
}

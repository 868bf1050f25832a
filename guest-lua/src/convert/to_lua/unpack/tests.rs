//! The straight unpacking against `push` of the decoded value: the same
//! Lua value for every value a component may send (and for keys Lua
//! cannot hold), error objects revived alike, and bytes that do not read,
//! values too deep and memory running out an error with the VM intact.

use mlua::{Function, Lua, Table, Value as LuaValue, ffi};
use proptest::prelude::*;
use warren_core::{Value, msgpack};

use super::super::super::ERROR_KEY;
use super::super::push_protected;
use super::{hint, push_packed};
use warren_core::msgpack::Reader;

/// Deep equality of two Lua values: same types (integer or float), same
/// metatables, same keys; NaN equals NaN.
const DEEP_EQ: &str = r#"
local function eq(a, b)
    if type(a) ~= type(b) then return false end
    if type(a) ~= "table" then
        if a ~= a then return b ~= b end
        return a == b and math.type(a) == math.type(b)
    end
    if getmetatable(a) ~= getmetatable(b) then return false end
    for k, v in next, a do
        if not eq(v, rawget(b, k)) then return false end
    end
    for k in next, b do
        if rawget(a, k) == nil then return false end
    end
    return true
end
return eq
"#;

struct Vm {
    lua: Lua,
    mt: Table,
    eq: Function,
}

impl Vm {
    fn new() -> Self {
        let lua = Lua::new();
        let mt = lua.create_table().expect("table");
        let eq = lua.load(DEEP_EQ).eval().expect("eq");
        Vm { lua, mt, eq }
    }

    /// `bytes` unpacked, or `None` when that failed; the stack is checked
    /// to hold one value more, or none, either way.
    fn unpack(&self, bytes: &[u8]) -> Option<LuaValue> {
        let mut ok = false;
        // SAFETY: in mlua's protected call with the metatable at 1.
        let v = unsafe {
            self.lua
                .exec_raw::<LuaValue>(&self.mt, |l| {
                    ok = push_packed(l, bytes, 1);
                    assert_eq!(ffi::lua_gettop(l), if ok { 2 } else { 1 }, "the stack");
                    if !ok {
                        ffi::lua_pushnil(l);
                    }
                    ffi::lua_remove(l, 1);
                })
                .expect("ran")
        };
        ok.then_some(v)
    }

    /// `v` pushed by `push` and `encode(v)` unpacked, in one call.
    fn both(&self, v: &Value) -> (LuaValue, LuaValue) {
        let bytes = msgpack::encode(v);
        // SAFETY: in mlua's protected call with the metatable at 1; both
        // pushes leave one value each above it.
        unsafe {
            self.lua
                .exec_raw::<(LuaValue, LuaValue)>(&self.mt, |l| {
                    assert!(push_packed(l, &bytes, 1), "unpacked");
                    assert!(push_protected(l, v, 1), "pushed");
                    ffi::lua_remove(l, 1);
                })
                .expect("ran")
        }
    }

    fn same(&self, v: &Value) -> bool {
        let (packed, pushed) = self.both(v);
        self.eq.call((packed, pushed)).expect("eq runs")
    }
}

fn str_map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::str(k), v))
            .collect(),
    )
}

fn error_value(details: Value) -> Value {
    str_map(vec![
        (ERROR_KEY, Value::Bool(true)),
        ("kind", Value::str("NOT_FOUND")),
        ("message", Value::str("no such user")),
        ("details", details),
    ])
}

#[test]
fn every_shape_unpacks_as_its_value_pushes() {
    let vm = Vm::new();
    let holes = Value::Array(vec![Value::Nil, Value::Int(2), Value::Nil]);
    let wide = Value::Map(
        (0..40)
            .map(|i| (Value::Int(i), Value::Float(0.5)))
            .collect(),
    );
    let cases = [
        Value::Nil,
        Value::Bool(false),
        Value::Int(i64::MIN),
        Value::Float(-0.0),
        Value::Float(f64::NAN),
        Value::str("text"),
        Value::Str(vec![0xff, 0]),
        str_map(vec![
            ("id", Value::Int(1)),
            ("kind", Value::str("k")),
            ("v", Value::Float(2.5)),
        ]),
        holes,
        wide,
        Value::Map(vec![
            (Value::Float(2.0), Value::str("two, an integer key")),
            (Value::Bool(true), Value::Array(vec![])),
            (Value::Nil, Value::Int(1)),
            (Value::Float(f64::NAN), Value::Int(2)),
        ]),
        Value::Array(vec![Value::str("x".repeat(300)); 20]),
        (0..64).fold(Value::Int(0), |v, _| Value::Array(vec![v])),
    ];
    for v in &cases {
        assert!(vm.same(v), "{v:?}");
    }
}

#[test]
fn error_objects_are_revived_as_push_revives_them() {
    let vm = Vm::new();
    let inner = error_value(Value::Nil);
    let outer = error_value(str_map(vec![("cause", inner)]));
    let in_a_list = Value::Array(vec![Value::Int(1), outer.clone()]);
    let tag_as_a_value = str_map(vec![("name", Value::str(ERROR_KEY))]);
    let tag_false = str_map(vec![(ERROR_KEY, Value::Bool(false))]);
    for v in [&outer, &in_a_list, &tag_as_a_value, &tag_false] {
        assert!(vm.same(v), "{v:?}");
    }
    let (packed, _) = vm.both(&outer);
    let LuaValue::Table(t) = packed else {
        panic!("not a table")
    };
    assert_eq!(t.metatable(), Some(vm.mt.clone()), "revived");
}

#[test]
fn bytes_that_do_not_read_push_nothing_and_the_vm_goes_on() {
    let vm = Vm::new();
    let cases: &[&[u8]] = &[
        &[],
        &[0x92, 0x01],
        &[0xc1],
        &[0x91, 0xc0, 0xc0],
        &[0xdd, 0xff, 0xff, 0xff, 0xff],
        &[0x81, 0xa1, b'k'],
    ];
    for bytes in cases {
        assert!(vm.unpack(bytes).is_none(), "{bytes:?}");
    }
    let deep = (0..300).fold(Value::Nil, |v, _| Value::Array(vec![v]));
    assert!(vm.unpack(&msgpack::encode(&deep)).is_none(), "300 levels");
    assert!(vm.unpack(&msgpack::encode(&Value::Int(7))).is_some());
}

#[test]
fn running_out_of_memory_is_a_failure_not_an_abort() {
    let vm = Vm::new();
    let big = msgpack::encode(&Value::Array(vec![Value::str("x".repeat(1024)); 10_000]));
    let _ = vm.lua.set_memory_limit(vm.lua.used_memory() + (1 << 20));
    assert!(vm.unpack(&big).is_none());
    let _ = vm.lua.set_memory_limit(0);
    assert!(vm.same(&Value::Array(vec![Value::Int(7)])));
}

#[test]
fn a_count_presizes_no_more_than_the_bytes_left() {
    let bytes = [1u8, 2, 3];
    assert_eq!(hint(u32::MAX, &Reader::new(&bytes)), 3);
    assert_eq!(hint(2, &Reader::new(&bytes)), 2);
}

/// Any value a component may send, and keys Lua cannot hold: scalar
/// keys only (a table key compares by identity).
fn any_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..40).prop_map(Value::Int),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        (-3i32..5).prop_map(|i| Value::Float(f64::from(i))),
        "[a-z@]{0,8}".prop_map(Value::str),
    ];
    let leaf = prop_oneof![
        key.clone(),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Str),
    ];
    leaf.prop_recursive(5, 80, 20, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..20).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn any_value_unpacks_as_it_pushes(v in any_value()) {
        let vm = Vm::new();
        prop_assert!(vm.same(&v), "{:?}", v);
    }
}

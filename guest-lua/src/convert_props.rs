//! Property tests of the Lua ↔ host converters against adversarial values:
//! arbitrary host values round-trip; tables built by a random program —
//! shared sub-tables (DAGs), cycles, lying lengths, metatables whose
//! metamethods would raise, huge integer keys, infinite float keys —
//! convert to a value within the budget or to an error, never a panic, a
//! metamethod call or a copy past the budget.

use mlua::{Lua, Table, Value as LuaValue};
use proptest::prelude::*;
use warren_core::Value;
use warren_core::limits::{check_values, wire_size};

use crate::convert::{Budget, from_lua, to_lua};

fn budget(bytes: usize) -> Budget {
    Budget {
        bytes,
        name: "test budget",
        floor: 1,
    }
}

/// Host values Lua can hold: no nil or NaN keys, keys of scalars only.
fn value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        "[a-z]{0,6}".prop_map(Value::str),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![Just(f64::INFINITY), Just(-0.5), Just(1e300)].prop_map(Value::Float),
    ];
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Str),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..6).prop_map(Value::Map),
        ]
    })
}

/// Equality up to map order (Lua tables have none), NaN equal to itself.
fn same(a: &Value, b: &Value) -> bool {
    canon(a) == canon(b)
}

fn canon(v: &Value) -> String {
    match v {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canon).collect();
            format!("[{}]", items.join(","))
        }
        Value::Map(pairs) => {
            let mut pairs: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", canon(k), canon(v)))
                .collect();
            pairs.sort();
            format!("{{{}}}", pairs.join(","))
        }
        other => format!("{other:?}"),
    }
}

/// One step of a program that builds a table graph in Lua.
#[derive(Clone, Debug)]
enum Op {
    NewTable,
    /// `tables[a][key] = tables[b]` (a shared reference, maybe a cycle).
    Link(usize, usize, i64),
    /// `tables[a][key] = scalar`.
    Set(usize, i64, f64),
    /// A key far past the array part: makes the border lie.
    HugeKey(usize, u8),
    /// A metatable whose every metamethod raises.
    Trap(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::NewTable),
        (0..16usize, 0..16usize, -3..6i64).prop_map(|(a, b, k)| Op::Link(a, b, k)),
        (0..16usize, -3..6i64, any::<f64>()).prop_map(|(a, k, v)| Op::Set(a, k, v)),
        (0..16usize, 0..63u8).prop_map(|(a, bit)| Op::HugeKey(a, bit)),
        (0..16usize).prop_map(Op::Trap),
    ]
}

/// Runs `ops` in `lua`; returns the first table (the root).
fn build(lua: &Lua, ops: &[Op]) -> mlua::Result<Table> {
    let trap: Table = lua
        .load(
            r#"local function boom() error("a metamethod ran") end
            return { __index = boom, __newindex = boom, __len = boom, __pairs = boom,
                __eq = boom, __tostring = boom, __name = "trap" }"#,
        )
        .eval()?;
    let mut tables = vec![lua.create_table()?];
    for op in ops {
        let pick = |i: usize| tables[i % tables.len()].clone();
        match *op {
            Op::NewTable => tables.push(lua.create_table()?),
            Op::Link(a, b, k) => pick(a).raw_set(k, pick(b))?,
            Op::Set(a, k, v) if !v.is_nan() => pick(a).raw_set(k, v)?,
            Op::Set(a, k, _) => pick(a).raw_set(k, "nan-valued")?,
            Op::HugeKey(a, bit) => pick(a).raw_set(1i64 << bit, true)?,
            Op::Trap(a) => pick(a).set_metatable(Some(trap.clone()))?,
        }
    }
    Ok(tables[0].clone())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn host_values_round_trip(v in value()) {
        let lua = Lua::new();
        let once = from_lua(&lua, &to_lua(&lua, &v).expect("to lua"), "v", budget(1 << 20))
            .expect("a converted value converts back");
        let twice = from_lua(&lua, &to_lua(&lua, &once).expect("to lua"), "v", budget(1 << 20))
            .expect("again");
        prop_assert!(same(&once, &twice), "{once:?} != {twice:?}");
        prop_assert!(check_values(std::slice::from_ref(&once), "v").is_ok());
    }

    #[test]
    fn adversarial_tables_stay_within_the_budget(
        ops in proptest::collection::vec(op(), 0..48),
        bytes in 16usize..4096,
    ) {
        let lua = Lua::new();
        let root = build(&lua, &ops).expect("the program runs");
        match from_lua(&lua, &LuaValue::Table(root), "v", budget(bytes)) {
            Ok(v) => {
                prop_assert!(wire_size(std::slice::from_ref(&v)) <= bytes);
                prop_assert!(check_values(std::slice::from_ref(&v), "v").is_ok());
            }
            Err(e) => {
                prop_assert!(!e.reason.contains("a metamethod ran"), "{e}");
                prop_assert!(e.path.starts_with('v'), "{e}");
            }
        }
    }
}

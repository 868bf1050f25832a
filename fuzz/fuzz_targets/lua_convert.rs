//! The Lua front-end's converters on hostile input. The first byte picks
//! the mode:
//!
//! - even: the rest is MessagePack from a "component"; whatever the core's
//!   `check_values` accepts, Lua can hold (`to_lua` succeeds) and converts
//!   back within the same budget.
//! - odd: the rest is a program of table operations (shared sub-tables,
//!   cycles, lying lengths, metatables whose metamethods raise); `from_lua`
//!   returns a value within the budget or an error, never a panic, never a
//!   metamethod's error, never a copy past the budget.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlua::{Lua, Table, Value as LuaValue};
use warren_core::limits::{check_values, wire_size};
use warren_core::msgpack::decode;
use warren_lua::{Budget, from_lua, to_lua};

const BUDGET: Budget = Budget {
    bytes: 1 << 16,
    name: "fuzz budget",
    floor: 1,
};

fn component_bytes(lua: &Lua, data: &[u8]) {
    let Ok(value) = decode(data) else { return };
    if check_values(std::slice::from_ref(&value), "v").is_err() {
        return;
    }
    let held = to_lua(lua, &value).expect("a checked value is holdable");
    let _ = from_lua(lua, &held, "v", BUDGET);
}

fn table_program(lua: &Lua, data: &[u8]) {
    let trap: Table = lua
        .load(r#"local function boom() error("a metamethod ran") end
            return { __index = boom, __newindex = boom, __len = boom, __pairs = boom, __eq = boom }"#)
        .eval()
        .expect("the trap compiles");
    let mut tables = vec![lua.create_table().expect("a table")];
    for op in data.chunks(3) {
        let [code, a, b] = [op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0)];
        let pick = |i: u8| tables[usize::from(i) % tables.len()].clone();
        let key = i64::from(b) - 2;
        let done = match code % 5 {
            0 => lua.create_table().map(|t| tables.push(t)),
            1 => pick(a).raw_set(key, pick(b / 2)),
            2 => pick(a).raw_set(key, f64::from(b) / 3.0),
            3 => pick(a).raw_set(1i64 << (b % 63), true),
            _ => pick(a).set_metatable(Some(trap.clone())),
        };
        if done.is_err() {
            return;
        }
    }
    match from_lua(lua, &LuaValue::Table(tables[0].clone()), "v", BUDGET) {
        Ok(v) => {
            assert!(wire_size(std::slice::from_ref(&v)) <= BUDGET.bytes);
            assert!(check_values(std::slice::from_ref(&v), "v").is_ok());
        }
        Err(e) => assert!(!e.reason.contains("a metamethod ran"), "{e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let lua = Lua::new();
    if mode % 2 == 0 {
        component_bytes(&lua, rest);
    } else {
        table_program(&lua, rest);
    }
});

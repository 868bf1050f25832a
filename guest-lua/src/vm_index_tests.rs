//! Tests of the vendored Lua's index fast path (`lvm.c`,
//! `warren_method`): a field read (`o.k`, a global through a sandbox's
//! environment, `o:k()`) that misses on the value itself and is found in
//! its metatable's `__index` table must answer what `luaV_finishget`
//! answers in every other case: a chain of `__index` tables and
//! functions, a `false` found on the way, strings, userdata, and the
//! errors of values without a metatable.

use mlua::{Lua, UserData, UserDataMethods};

/// A userdata with a method table (as a channel's), for `ud:m()`.
struct Probe;

impl UserData for Probe {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("ping", |_, _, n: i64| Ok(n + 1));
    }
}

/// Runs `src` (a chunk returning one string) in a fresh VM with a `probe`
/// global, and returns that string.
fn eval(src: &str) -> String {
    let lua = Lua::new();
    lua.globals().set("probe", Probe).expect("probe");
    lua.load(src).eval().expect("chunk runs")
}

#[test]
fn a_field_found_through_index_tables_is_what_the_full_lookup_finds() {
    let got = eval(
        r#"
        local out = {}
        -- A chain: the first __index table lacks the key, its own
        -- metatable's __index is a function; then a second table.
        local base = setmetatable({ shared = "base" }, { __index = function(_, k) return "fn:" .. k end })
        local mid = setmetatable({ here = false }, { __index = base })
        local obj = setmetatable({}, { __index = mid })
        out[#out + 1] = tostring(obj.here)          -- false is a value: found
        out[#out + 1] = obj.shared                  -- two tables down
        out[#out + 1] = obj.missing                 -- down to the function
        local m = setmetatable({}, { __index = { f = function(self, a) return a * 2 end } })
        out[#out + 1] = tostring(m:f(21))
        -- A global read through an environment whose __index is a table.
        local env = setmetatable({}, { __index = { greet = "hi", string = string, tostring = tostring } })
        out[#out + 1] = load("return greet .. string.upper('x') .. tostring(nothing)", "c", "t", env)()
        -- Strings: a method, a field, and a name the string table lacks.
        local s = "abc"
        out[#out + 1] = s:upper() .. ("x"):rep(2) .. tostring(s.len == string.len) .. tostring(s.nope)
        return table.concat(out, " ")
        "#,
    );
    assert_eq!(got, "false base fn:missing 42 hiXnil ABCxxtruenil");
}

#[test]
fn userdata_methods_and_missing_ones_behave_as_without_the_fast_path() {
    let got = eval(
        r#"
        local out = { tostring(probe:ping(41)) }
        local ok, err = pcall(function() return probe:nope() end)
        out[#out + 1] = tostring(ok) .. " " .. tostring(err:match("attempt to call a nil value %(method 'nope'%)") ~= nil)
        out[#out + 1] = tostring(probe.nope)
        -- The metatable's __index changed after a first lookup: the new
        -- one is what the next lookup finds (no stale cache).
        local t = setmetatable({}, { __index = { a = 1 } })
        local first = t.a
        getmetatable(t).__index = { a = 2 }
        out[#out + 1] = first .. "," .. t.a
        getmetatable(t).__index = nil
        out[#out + 1] = tostring(t.a)
        return table.concat(out, " ")
        "#,
    );
    assert_eq!(got, "42 false true nil 1,2 nil");
}

#[test]
fn values_without_a_metatable_still_raise_the_index_errors() {
    let got = eval(
        r#"
        local out = {}
        for _, f in ipairs({
            function() local n = nil; return n.x end,
            function() local n = nil; return n:x() end,
            function() return (5):x() end,
            function() return (true).x end,
        }) do
            local ok, err = pcall(f)
            out[#out + 1] = tostring(ok) .. ":" .. tostring(err:match("attempt to index a %a+ value") ~= nil)
        end
        return table.concat(out, " ")
        "#,
    );
    assert_eq!(got, "false:true false:true false:true false:true");
}

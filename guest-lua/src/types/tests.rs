//! Type values on a plain `mlua::Lua` with hand-built type tables.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use mlua::{Lua, Table};
use warren_lua_dialect::ty::{
    Decl, DeclId, Field, Lit, Param, Ty, TyParam, TyRef, TypeTable, Validator, ValidatorArg,
};

use super::types_table;

fn t(ty: Ty) -> TyRef {
    Arc::new(ty)
}

fn field(name: &str, ty: Ty) -> Field {
    Field {
        name: name.to_owned(),
        ty: t(ty),
        optional: false,
    }
}

fn opt_field(name: &str, ty: Ty) -> Field {
    Field {
        optional: true,
        ..field(name, ty)
    }
}

fn record(fields: Vec<Field>) -> Ty {
    Ty::Record {
        fields,
        readonly: false,
    }
}

fn validator(name: &str, args: Vec<ValidatorArg>) -> Validator {
    Validator {
        name: name.to_owned(),
        args,
        regex: None,
    }
}

fn annotated(inner: Ty, validators: Vec<Validator>) -> Ty {
    Ty::Annotated {
        inner: t(inner),
        validators,
    }
}

fn named(name: &str, id: u32) -> Ty {
    Ty::Named {
        name: name.to_owned(),
        decl: DeclId(id),
    }
}

fn lit_str(s: &str) -> Ty {
    Ty::Lit(Lit::Str(s.as_bytes().to_vec()))
}

/// A table of top-level declarations, in order (ids 0, 1, ...).
fn table(decls: Vec<(&str, Ty)>) -> TypeTable {
    TypeTable {
        decls: decls
            .into_iter()
            .map(|(name, ty)| Decl {
                name: name.to_owned(),
                ty: t(ty),
                top_level: true,
            })
            .collect(),
    }
}

const PRELUDE: &str = r##"
local ErrMethods = {}
function ErrMethods:kind() return rawget(self, "_kind") end
function ErrMethods:message() return rawget(self, "_message") end
function ErrMethods:details() return rawget(self, "_details") end
function ErrMethods:retryable() return rawget(self, "_retryable") end
ErrMT = { __index = ErrMethods, __metatable = false }
function show(...)
    local o = {}
    for i = 1, select("#", ...) do o[i] = tostring((select(i, ...))) end
    return table.concat(o, "\t")
end
"##;

fn no_budget() -> Rc<dyn Fn() -> Option<String>> {
    Rc::new(|| None)
}

/// A Lua with the kernel-like error metatable, `show`, and the table of
/// `decls` as `__warren_types` (and each declaration as a global `T`
/// standing for the translation's `__warren_types.T`).
fn setup_with(decls: TypeTable, budget: Rc<dyn Fn() -> Option<String>>) -> Lua {
    let lua = Lua::new();
    lua.load(PRELUDE).exec().expect("prelude");
    let mt: Table = lua.globals().get("ErrMT").expect("ErrMT");
    lua.set_named_registry_value("warren.error_mt", mt)
        .expect("registry");
    let tt = types_table(&lua, &Arc::new(decls), budget).expect("types table");
    lua.globals().set("__warren_types", tt).expect("set");
    lua
}

fn setup(decls: TypeTable) -> Lua {
    setup_with(decls, no_budget())
}

/// Runs `src` (chunk name `t`) with `local T = __warren_types` in scope
/// on the same line, so line numbers are those of `src`.
fn run(lua: &Lua, src: &str) -> String {
    let code = format!("local T = __warren_types; {src}");
    match lua.load(&code).set_name("=t").eval::<String>() {
        Ok(s) => s,
        Err(e) => panic!("Lua failed: {e}\n{src}"),
    }
}

fn user_table() -> TypeTable {
    // type User = {id: string, age: integer @min(0)}
    table(vec![(
        "User",
        record(vec![
            field("id", Ty::String),
            field(
                "age",
                annotated(
                    Ty::Integer,
                    vec![validator("min", vec![ValidatorArg::Int(0)])],
                ),
            ),
        ]),
    )])
}

#[test]
fn s10_is_returns_value_or_error_with_details() {
    let lua = setup(user_table());
    let out = run(
        &lua,
        r#"local User = T.User
        local u, e1 = User:is({id = "a1", age = 30})
        local r1 = show(u ~= nil, e1)
        local bad, e2 = User:is({id = "a1", age = -1})
        local d2 = e2:details()
        local r2 = show(bad, e2:kind(), e2:message(), d2.field, d2.constraint, d2.got,
            e2:retryable(), rawget(e2, "_stack"))
        local miss, e3 = User:is({age = 1})
        local d3 = e3:details()
        local r3 = show(miss, e3:message(), d3.field, d3.expected, d3.got)
        local _, e4 = User:is(5)
        local d4 = e4:details()
        local r4 = show(e4:message(), d4.field, d4.expected, d4.got, d4.constraint)
        return table.concat({r1, r2, r3, r4}, "\n")"#,
    );
    assert_eq!(
        out,
        "true\tnil\n\
         nil\tInvalid\tage: value below minimum\tage\tmin\tnumber\tfalse\t\n\
         nil\tid: required field missing\tid\tstring\tnil\n\
         expected User, got number\tnil\tUser\tnumber\tnil"
    );
    // The error object has the kernel's metatable, raw.
    let e: Table = lua
        .load("local _, e = __warren_types.User:is(1); return e")
        .eval()
        .expect("err");
    let mt: Table = lua.named_registry_value("warren.error_mt").expect("mt");
    assert_eq!(e.metatable().map(|m| m.to_pointer()), Some(mt.to_pointer()));
    // `T.is(v)` and `T.is(T, v)` are the same as `T:is(v)`.
    let out = run(
        &lua,
        r#"local ok1 = T.User.is({id = "x", age = 1})
        local ok2 = T.User.is(T.User, {id = "x", age = 1})
        local no, e = T.User.is({id = 1, age = 1})
        return show(ok1 ~= nil, ok2 ~= nil, no, e:message())"#,
    );
    assert_eq!(out, "true\ttrue\tnil\tid: expected string, got number");
}

fn port_table() -> TypeTable {
    // type Port = integer @min(1) @max(65535)
    table(vec![(
        "Port",
        annotated(
            Ty::Integer,
            vec![
                validator("min", vec![ValidatorArg::Int(1)]),
                validator("max", vec![ValidatorArg::Int(65535)]),
            ],
        ),
    )])
}

#[test]
fn s11_calling_a_type_validates_or_raises_at_the_callers_line() {
    let lua = setup(port_table());
    let out = run(
        &lua,
        r#"local Port = T.Port
local a = show(Port(8080))
local b = show(pcall(function() local v = Port("80"); return v end))
local c = show(pcall(function() local v = Port(0); return v end))
local d = show(Port(2.0), math.type(Port(2.0)))
local _, e = Port:is(70000)
local _, f = Port:is("80")
return table.concat({a, b, c, d, e:message(), f:message(), tostring(Port), Port:kind()}, "\n")"#,
    );
    assert_eq!(
        out,
        "8080\n\
         false\tt:3: expected Port, got string\n\
         false\tt:4: expected Port, got number\n\
         2.0\tfloat\n\
         value above maximum\n\
         expected Port, got string\n\
         Port\n\
         integer"
    );
}

#[test]
fn s12_primitives_validate_without_converting() {
    let lua = setup(TypeTable::default());
    let out = run(
        &lua,
        r#"local string, integer, number, boolean = T.string, T.integer, T.number, T.boolean
local a = show(string("ab"), integer(4), number(2.5), boolean(false), T["nil"](nil))
local b = show(pcall(function() local v = string(42); return v end))
local c = show(pcall(function() local v = integer(2.5); return v end))
local d = show(T.any(print) == print, T.unknown(nil), pcall(function() local v = T.never(1); return v end))
local _, e = integer:is("3")
local f = show((integer:is(3.0)), (number:is(1)), (string:is(1)), select(2, string:is(1)):message(),
    select(2, T.never:is(nil)):message(), T["nil"]:is(nil))
return table.concat({a, b, c, d, e:message(), f}, "\n")"#,
    );
    assert_eq!(
        out,
        "ab\t4\t2.5\tfalse\tnil\n\
         false\tt:3: expected string, got number\n\
         false\tt:4: expected integer, got number\n\
         true\tnil\tfalse\tt:5: expected never, got number\n\
         expected integer, got string\n\
         3.0\t1\tnil\texpected string, got number\texpected never, got nil\tnil\tnil"
    );
}

#[test]
fn primitives_are_per_vm_singletons() {
    let lua = setup(user_table());
    let other = types_table(&lua, &Arc::new(port_table()), no_budget()).expect("other");
    lua.globals().set("O", other).expect("set");
    let out = run(
        &lua,
        r#"local same = true
        for _, n in ipairs({"string", "integer", "number", "boolean", "any", "unknown", "never", "nil"}) do
            same = same and rawequal(T[n], O[n])
        end
        local keys = {[T.string] = "s"}
        return show(same, keys[O.string], rawequal(T.User.id, T.string), T.User.age == T.integer,
            rawequal(T.User.age, T.integer), T.Port, O.Port, O.User)"#,
    );
    assert_eq!(out, "true\ts\ttrue\tfalse\tfalse\tnil\tPort\tnil");
}

fn generic_table() -> TypeTable {
    // type StrBox = Box<string>; type Box<T> = {value: T}
    table(vec![
        (
            "StrBox",
            Ty::Inst {
                base: DeclId(1),
                args: vec![t(Ty::String)],
            },
        ),
        (
            "Box",
            Ty::Generic {
                params: vec![TyParam {
                    name: "T".to_owned(),
                    bound: None,
                }],
                body: t(record(vec![Field {
                    name: "value".to_owned(),
                    ty: t(Ty::TParam(0)),
                    optional: false,
                }])),
            },
        ),
        // type Pair<A, B: number> = {a: A, b: Box<B>}
        (
            "Pair",
            Ty::Generic {
                params: vec![
                    TyParam {
                        name: "A".to_owned(),
                        bound: None,
                    },
                    TyParam {
                        name: "B".to_owned(),
                        bound: Some(t(Ty::Number)),
                    },
                ],
                body: t(record(vec![
                    field("a", Ty::TParam(0)),
                    field(
                        "b",
                        Ty::Inst {
                            base: DeclId(1),
                            args: vec![t(Ty::TParam(1))],
                        },
                    ),
                ])),
            },
        ),
    ])
}

#[test]
fn s14_generics_hoisted_and_instantiated() {
    let lua = setup(generic_table());
    let out = run(
        &lua,
        r#"local function valid(v) return (T.StrBox:is(v)) ~= nil end
local a = show(valid({value = "x"}), valid({value = 1}))
local NumBox = T.Box(T.number)
local b = show(NumBox:is({value = 1}) ~= nil, select(2, NumBox:is({value = "1"})):message(), NumBox, NumBox:kind())
local c = show(pcall(function() local v = T.Box(T.string, T.number); return v end))
local d = show(pcall(function() local v = T.StrBox(T.string); return v end))
local e = show(select(2, T.Box:is({value = 1})):message(), T.Box:kind(), T.StrBox:kind())
local f = show(pcall(function() local v = T.Box({}, T.string); return v end))
local P = T.Pair(T.string, T.integer)
local g = show(P:is({a = "x", b = {value = 3}}) ~= nil, select(2, P:is({a = "x", b = {value = 3.5}})):message())
local names = {}
for n, bound in T.Pair:tparams() do names[#names + 1] = n .. ":" .. tostring(bound) end
local h = show(table.concat(names, ","), rawequal(NumBox.value, T.number), T.StrBox.value == T.string, T.Box.value)
local i = show(pcall(function() local v = T.Box(T.string)({value = false}); return v end))
return table.concat({a, b, c, d, e, f, g, h, i}, "\n")"#,
    );
    assert_eq!(
        out,
        "true\tfalse\n\
         true\tvalue: expected number, got string\tBox\tinstantiated\n\
         false\tt:5: generic Box expects 1 type arguments, got 2\n\
         false\tt:6: type StrBox is not generic\n\
         expected Box, got table\tgeneric\tinstantiated\n\
         false\tt:8: type Box: arguments must be all types (to instantiate) or one value (to validate)\n\
         true\tb.value: expected integer, got number\n\
         A:nil,B:number\ttrue\ttrue\tnil\n\
         false\tt:14: expected Box, got table"
    );
}

#[test]
fn instantiating_with_a_type_of_another_chunk_is_refused_and_nesting_is_capped() {
    // Another chunk's declared type would bring its declarations along (host
    // memory the process is not charged for); a structural one is fine.
    let lua = setup(generic_table());
    let other = types_table(&lua, &Arc::new(user_table()), no_budget()).expect("other");
    lua.globals().set("O", other).expect("set");
    let out = run(
        &lua,
        r#"local ok, e = pcall(T.Box, O.User)
        local SB = T.Box(T.string)
        local t, deep = T.string, nil
        for i = 1, 100 do
            local ok2, r = pcall(T.Box, t)
            if not ok2 then deep = i .. ": " .. tostring(r) break end
            t = r
        end
        return show(ok, tostring(e):match("another chunk") ~= nil, SB:is({value = "x"}) ~= nil, deep)"#,
    );
    assert!(out.starts_with("false\ttrue\ttrue\t65: "), "{out}");
    assert!(out.contains("nest deeper than 64"), "{out}");
}

#[test]
fn recursive_types_and_cyclic_tables() {
    // type Node = {next: Node?, v: integer}; type A = B; type B = A
    let lua = setup(table(vec![
        (
            "Node",
            record(vec![
                opt_field("next", named("Node", 0)),
                field("v", Ty::Integer),
            ]),
        ),
        ("A", named("B", 2)),
        ("B", named("A", 1)),
    ]));
    let out = run(
        &lua,
        r#"local ok = T.Node:is({v = 1, next = {v = 2, next = {v = 3}}}) ~= nil
        local _, e1 = T.Node:is({v = 1, next = {v = "x"}})
        local n = {v = 1}
        n.next = n
        local _, e2 = T.Node:is(n)
        local m2 = e2:message()
        local _, e3 = T.A:is(1)
        return show(ok, e1:message(), m2:sub(-43), #m2 > 100, e2:details().got, e3:message(),
            T.A:kind(), T.Node == T.Node.next)"#,
    );
    assert_eq!(
        out,
        "true\tnext.v: expected integer, got string\t\
         expected Node, got recursion limit exceeded\ttrue\trecursion limit exceeded\t\
         expected A, got recursion limit exceeded\tunknown\ttrue"
    );
}

#[test]
fn a_type_that_is_a_union_of_itself_fails_at_once() {
    // type A = A | A; type B = string | B | B. Each union doubles the
    // alias chains (2^64 of them at the depth cap): the hops a run may
    // take per value position are capped, so A fails as too deep, and B
    // still takes a string, long before a budget that stops after 64
    // polls (262,144 visits) would be reached: a few thousand checks
    // each.
    let polls = Rc::new(Cell::new(0u32));
    let counted = polls.clone();
    let budget: Rc<dyn Fn() -> Option<String>> = Rc::new(move || {
        counted.set(counted.get() + 1);
        (counted.get() > 64).then(|| "stopped by the test".to_owned())
    });
    let lua = setup_with(
        table(vec![
            ("A", Ty::Union(vec![t(named("A", 0)), t(named("A", 0))])),
            (
                "B",
                Ty::Union(vec![t(Ty::String), t(named("B", 1)), t(named("B", 1))]),
            ),
        ]),
        budget,
    );
    let out = run(
        &lua,
        r#"local _, e = T.A:is(1)
        local okb = T.B:is("s") ~= nil
        local _, e2 = T.B:is(1)
        return show(e:message(), okb, e2:message())"#,
    );
    assert!(!out.contains("stopped by the test"), "{out}");
    assert_eq!(
        out,
        "expected A | A, got number\ttrue\texpected string | B | B, got number"
    );
    assert!(polls.get() <= 16, "{} polls", polls.get());
}

fn shapes_table() -> TypeTable {
    // type Status = "queued" | "done"
    // type Job = {id: integer, status: Status, tags?: {string}}
    // type Counts = {[string]: number}
    // type Item = {name: string}; type Order = {items: {Item}}
    // type Lits = {i: 3, f: 1.5, b: true}
    // type Pt = {x: number, y: number}; type SN = string | number
    // type Fn = (x: number, string) -> (boolean, string?)
    // type Both = {a: number} & {b: string}
    table(vec![
        (
            "Status",
            Ty::Union(vec![t(lit_str("queued")), t(lit_str("done"))]),
        ),
        (
            "Job",
            record(vec![
                field("id", Ty::Integer),
                field("status", named("Status", 0)),
                opt_field(
                    "tags",
                    Ty::Array {
                        elem: t(Ty::String),
                        readonly: false,
                    },
                ),
            ]),
        ),
        (
            "Counts",
            Ty::Map {
                key: t(Ty::String),
                val: t(Ty::Number),
                readonly: false,
            },
        ),
        ("Item", record(vec![field("name", Ty::String)])),
        (
            "Order",
            record(vec![field(
                "items",
                Ty::Array {
                    elem: t(named("Item", 3)),
                    readonly: false,
                },
            )]),
        ),
        (
            "Lits",
            record(vec![
                field("i", Ty::Lit(Lit::Int(3))),
                field("f", Ty::Lit(Lit::Float(1.5))),
                field("b", Ty::Lit(Lit::Bool(true))),
            ]),
        ),
        (
            "Pt",
            record(vec![field("x", Ty::Number), field("y", Ty::Number)]),
        ),
        ("SN", Ty::Union(vec![t(Ty::String), t(Ty::Number)])),
        (
            "Fn",
            Ty::Func {
                params: vec![
                    Param {
                        name: Some("x".to_owned()),
                        ty: t(Ty::Number),
                    },
                    Param {
                        name: None,
                        ty: t(Ty::String),
                    },
                ],
                variadic: None,
                rets: vec![t(Ty::Boolean), t(Ty::Optional(t(Ty::String)))],
            },
        ),
        (
            "Both",
            Ty::Inter(vec![
                t(record(vec![field("a", Ty::Number)])),
                t(record(vec![field("b", Ty::String)])),
            ]),
        ),
        ("Err", Ty::Error),
        ("Tab", Ty::Table),
        ("Mod", Ty::Opaque("time.Time".to_owned())),
        ("MaybeInt", Ty::Optional(t(Ty::Integer))),
    ])
}

#[test]
fn s15_reflection_and_first_class_use() {
    let lua = setup(shapes_table());
    let out = run(
        &lua,
        r#"local Job, Status = T.Job, T.Status
local out = {}
for name, t in Job:fields() do out[#out + 1] = name .. "=" .. t:kind() end
local by_type = {[Job] = "job"}
return show(table.concat(out, " "), Job:kind(), Job:name(), Status:kind(), by_type[Job])"#,
    );
    assert_eq!(
        out,
        "id=integer status=union tags=array\trecord\tJob\tunion\tjob"
    );
    let out = run(
        &lua,
        r#"local vs = {}
        for v in T.Status:variants() do vs[#vs + 1] = tostring(v) .. ":" .. v:kind() end
        local ps = {}
        for p in T.Fn:params() do ps[#ps + 1] = tostring(p) end
        local r = T.Fn:ret()
        local rs = {}
        for v in r:variants() do rs[#rs + 1] = tostring(v) end
        return show(table.concat(vs, ","), table.concat(ps, ","), r, r:kind(), table.concat(rs, ","),
            T.Job.tags:elem(), T.Counts:key(), T.Counts:val(), T.MaybeInt:inner(), T.Job.status,
            T.Job.nope, T.Job:elem(), T.Status:fields(), T.Job.name == T.Job.name, T.Job:name(),
            T.string:name(), T.Job.status:name())"#,
    );
    assert_eq!(
        out,
        "\"queued\":literal,\"done\":literal\tnumber,string\t(boolean, string?)\ttuple\t\
         boolean,string?\tstring\tstring\tnumber\tinteger\tStatus\tnil\tnil\tnil\ttrue\tJob\tnil\tStatus"
    );
    // Rendering.
    let out = run(
        &lua,
        r#"local function r(t) return tostring(t) end
        return show(r(T.Pt.x), r(T.SN), r(T.Fn.x), r(T.Job.tags), r(T.Counts:val()),
            r(T.MaybeInt:inner()), r(T.Mod), r(T.Both.a))"#,
    );
    assert_eq!(out, "number\tSN\tnil\t{string}\tnumber\tinteger\tMod\tnil");
}

#[test]
fn validation_table_of_3_5() {
    let lua = setup(shapes_table());
    let out = run(
        &lua,
        r#"local function m(T, v) local ok, e = T:is(v); if e then return e:message() end return "ok" end
        local function errobj() return setmetatable({}, ErrMT) end
        local callable = setmetatable({}, {__call = function() end})
        local r = {
            m(T.Status, "done"), m(T.Status, "x"), m(T.Status, 1),
            m(T.Job, {id = 1, status = "queued"}), m(T.Job, {id = 1.0, status = "done", tags = {"a"}, extra = true}),
            m(T.Job, {id = 1, status = "queued", tags = {"a", 2}}),
            m(T.Counts, {a = 1, b = 2.5}), m(T.Counts, {a = 1, [2] = 3}), m(T.Counts, {a = "x"}),
            m(T.Counts, {}), m(T.Counts, "x"),
            m(T.Order, {items = {{name = "a"}, {name = 2}}}), m(T.Order, {items = {a = 1}}),
            m(T.Lits, {i = 3.0, f = 1.5, b = true}), m(T.Lits, {i = 3, f = 1.5, b = false}),
            m(T.Lits, {i = 3, f = 1, b = true}), m(T.Lits, {i = 4, f = 1.5, b = true}),
            m(T.SN, true), m(T.SN, 1),
            m(T.Fn, print), m(T.Fn, function() end), m(T.Fn, callable),
            m(T.Both, {a = 1, b = "x"}), m(T.Both, {a = 1}), m(T.Both, {b = "x"}),
            m(T.Err, "boom"), m(T.Err, errobj()), m(T.Err, {}), m(T.Err, 1),
            m(T.Tab, {}), m(T.Tab, io and io.stdout or "s"), m(T.Mod, coroutine.create(print)),
            m(T.MaybeInt, nil), m(T.MaybeInt, 1), m(T.MaybeInt, "1"),
            m(T.Job, io and io.stdout or 1),
        }
        return table.concat(r, "\n")"#,
    );
    let expected = [
        "ok",
        "expected \"queued\" | \"done\", got string",
        "expected \"queued\" | \"done\", got number",
        "ok",
        "ok",
        "tags[2]: expected string, got number",
        "ok",
        "[2]: expected string, got number",
        "a: expected number, got string",
        "ok",
        "expected Counts, got string",
        "items[2].name: expected string, got number",
        "ok",
        "ok",
        "b: expected true, got boolean",
        "f: expected 1.5, got number",
        "i: expected 3, got number",
        "expected string | number, got boolean",
        "ok",
        "ok",
        "ok",
        "expected Fn, got table",
        "ok",
        "b: required field missing",
        "a: required field missing",
        "ok",
        "ok",
        "expected Err, got table",
        "expected Err, got number",
        "ok",
        "expected Tab, got userdata",
        "ok",
        "ok",
        "ok",
        "expected MaybeInt, got string",
        "expected Job, got userdata",
    ];
    assert_eq!(out, expected.join("\n"));
}

#[test]
fn validators() {
    let mk = |name: &str, arg: ValidatorArg| validator(name, vec![arg]);
    let lua = setup(table(vec![
        (
            "Name",
            annotated(
                Ty::String,
                vec![
                    mk("min_len", ValidatorArg::Int(2)),
                    mk("max_len", ValidatorArg::Int(4)),
                ],
            ),
        ),
        (
            "List",
            annotated(
                Ty::Array {
                    elem: t(Ty::Number),
                    readonly: false,
                },
                vec![
                    mk("min_len", ValidatorArg::Int(1)),
                    mk("max_len", ValidatorArg::Float(2.0)),
                ],
            ),
        ),
        (
            "Ratio",
            annotated(
                Ty::Number,
                vec![
                    mk("min", ValidatorArg::Float(0.5)),
                    mk("max", ValidatorArg::Int(1)),
                    validator("whatever", vec![]),
                    mk("min", ValidatorArg::Str("x".to_owned())),
                ],
            ),
        ),
        // Validators that do not apply to the value pass.
        (
            "Loose",
            annotated(
                Ty::Any,
                vec![
                    mk("min", ValidatorArg::Int(10)),
                    mk("max_len", ValidatorArg::Int(1)),
                    mk("pattern", ValidatorArg::Str("[".to_owned())),
                ],
            ),
        ),
        (
            "Email",
            annotated(
                Ty::String,
                vec![mk("pattern", ValidatorArg::Str("([a-z".to_owned()))],
            ),
        ),
    ]));
    let out = run(
        &lua,
        r#"local function m(T, v) local ok, e = T:is(v); if e then return e:message() .. "/" .. tostring(e:details().constraint) end return "ok" end
        local r = {
            m(T.Name, "ab"), m(T.Name, "a"), m(T.Name, "abcde"), m(T.Name, "abcd"),
            m(T.List, {1}), m(T.List, {}), m(T.List, {1, 2, 3}),
            m(T.Ratio, 0.5), m(T.Ratio, 1), m(T.Ratio, 0.4), m(T.Ratio, 2),
            m(T.Loose, {1}), m(T.Loose, 50), m(T.Loose, 5), m(T.Loose, "a"), m(T.Loose, "ab"),
            m(T.Email, "a@b"), m(T.Email, 1),
        }
        return table.concat(r, "\n")"#,
    );
    let expected = [
        "ok",
        "length below minimum/min_len",
        "length above maximum/max_len",
        "ok",
        "ok",
        "length below minimum/min_len",
        "length above maximum/max_len",
        "ok",
        "ok",
        "value below minimum/min",
        "value above maximum/max",
        "ok",
        "ok",
        "value below minimum/min",
        "invalid regex/pattern",
        "length above maximum/max_len",
        "invalid regex/pattern",
        "expected Email, got number/nil",
    ];
    assert_eq!(out, expected.join("\n"));
}

#[test]
fn relations() {
    let lua = setup(shapes_table());
    let other = types_table(
        &lua,
        &Arc::new(table(vec![
            (
                "Pt2",
                record(vec![field("y", Ty::Number), field("x", Ty::Number)]),
            ),
            ("X", record(vec![field("x", Ty::Number)])),
            ("X3", record(vec![field("x", Ty::Lit(Lit::Int(3)))])),
            (
                "ROX",
                Ty::Record {
                    fields: vec![field("x", Ty::Number)],
                    readonly: true,
                },
            ),
            ("Fast", lit_str("fast")),
            ("OptS", Ty::Optional(t(Ty::String))),
            ("Meet", Ty::Inter(vec![t(Ty::String), t(lit_str("fast"))])),
            (
                "F1",
                Ty::Func {
                    params: vec![Param {
                        name: None,
                        ty: t(Ty::Number),
                    }],
                    variadic: None,
                    rets: vec![t(Ty::Integer)],
                },
            ),
            (
                "F2",
                Ty::Func {
                    params: vec![Param {
                        name: None,
                        ty: t(Ty::Integer),
                    }],
                    variadic: None,
                    rets: vec![t(Ty::Number)],
                },
            ),
            ("M1", Ty::Opaque("time.Time".to_owned())),
            ("M2", Ty::Opaque("time.Time".to_owned())),
            ("M3", Ty::Opaque("sql.Row".to_owned())),
        ])),
        no_budget(),
    )
    .expect("other");
    lua.globals().set("O", other).expect("set");
    let out = run(
        &lua,
        r#"return show(
            T.integer <= T.number, T.number <= T.integer, T.integer < T.number, T.number < T.number,
            T.number <= T.number, T.never <= T.Job, T.Job <= T.any, T.Job <= T.unknown,
            O.Fast <= T.string, T.string <= O.Fast, T.string <= O.OptS, T["nil"] <= O.OptS,
            T.string <= T.SN, T.boolean <= T.SN, O.Meet <= T.string, O.Meet <= O.Fast,
            T.Pt == O.Pt2, T.Pt <= O.X, O.X <= T.Pt, O.X3 <= O.X, O.X3 <= O.ROX,
            O.F1 <= O.F2, O.F2 <= O.F1, O.M1 == O.M2, O.M1 == O.M3, T.Job <= T.Tab,
            T.Status == T.Job.status, T.Job == T.Pt, T.string == 1)"#,
    );
    assert_eq!(
        out,
        "true\tfalse\ttrue\tfalse\t\
         true\ttrue\ttrue\ttrue\t\
         true\tfalse\ttrue\ttrue\t\
         true\tfalse\ttrue\ttrue\t\
         true\ttrue\tfalse\tfalse\ttrue\t\
         true\tfalse\ttrue\tfalse\ttrue\t\
         true\tfalse\tfalse"
    );
}

#[test]
fn table_and_values_are_read_only() {
    let lua = setup(user_table());
    let out = run(
        &lua,
        r#"local w = show(pcall(function() __warren_types.User = 1 end))
local w2 = show(pcall(function() __warren_types.Other = 1 end))
local names = {}
for k, v in pairs(__warren_types) do names[#names + 1] = k .. "=" .. type(v) end
table.sort(names)
local f, s, c = pairs(__warren_types)
local set = show(pcall(function() T.User.x = 1 end))
return show(w, w2, getmetatable(__warren_types), getmetatable(T.User), getmetatable(T.string),
    table.concat(names, ","), s, c, next(__warren_types), type(T.User), set:sub(1, 5))"#,
    );
    assert_eq!(
        out,
        "false\tt:1: __warren_types is read-only\t\
         false\tt:2: __warren_types is read-only\t\
         false\tfalse\tfalse\t\
         User=userdata,any=userdata,boolean=userdata,integer=userdata,never=userdata,\
         nil=userdata,number=userdata,string=userdata,unknown=userdata\t\
         nil\tnil\tnil\tuserdata\tfalse"
    );
}

#[test]
fn hostile_values_run_no_metamethod() {
    let lua = setup(shapes_table());
    let out = run(
        &lua,
        r#"ran = {}
        local function trap(name) return function() ran[#ran + 1] = name; while true do end end end
        local mt = {__index = trap("index"), __len = trap("len"), __pairs = trap("pairs"),
            __eq = trap("eq"), __lt = trap("lt"), __le = trap("le"), __call = trap("call"),
            __tostring = trap("tostring"), __name = "hostile"}
        local function hostile(t) return setmetatable(t, mt) end
        local r = {}
        local function m(T, v) local _, e = T:is(v); r[#r + 1] = e and e:message() or "ok" end
        m(T.Job, hostile({}))
        m(T.Job, hostile({id = 1, status = "done", tags = hostile({"a"})}))
        m(T.Counts, hostile({a = 1, b = hostile({})}))
        m(T.Order, hostile({items = hostile({hostile({name = "x"}), hostile({})})}))
        m(T.Status, hostile({}))
        m(T.Err, hostile({}))
        m(T.Fn, hostile({}))
        m(T.Lits, hostile({i = 3, f = 1.5, b = true}))
        local ok = pcall(T.Job, hostile({}))
        return show(#ran, table.concat(r, "|"), ok)"#,
    );
    assert_eq!(
        out,
        "0\tid: required field missing|ok|b: expected number, got table|\
         items[2].name: required field missing|expected \"queued\" | \"done\", got table|\
         expected Err, got table|expected Fn, got table|ok\tfalse"
    );
}

#[test]
fn a_huge_table_stops_when_the_budget_says_so() {
    let calls = Rc::new(Cell::new(0u32));
    let seen = calls.clone();
    let budget: Rc<dyn Fn() -> Option<String>> = Rc::new(move || {
        seen.set(seen.get() + 1);
        (seen.get() >= 3).then(|| "cpu budget exceeded".to_owned())
    });
    let lua = setup_with(
        table(vec![
            (
                "Nums",
                Ty::Array {
                    elem: t(Ty::Integer),
                    readonly: false,
                },
            ),
            (
                "Map",
                Ty::Map {
                    key: t(Ty::Integer),
                    val: t(Ty::Any),
                    readonly: false,
                },
            ),
            (
                "Tree",
                Ty::Array {
                    elem: t(named("Tree", 2)),
                    readonly: false,
                },
            ),
        ]),
        budget,
    );
    let out = run(
        &lua,
        r#"local big = {}
        for i = 1, 200000 do big[i] = i end
        local v, e = T.Nums:is(big)
        local ok, raised = pcall(function() local x = T.Nums(big); return x end)
        return show(v, e:kind(), e:message(), e:retryable(), ok, raised:kind(), raised:message())"#,
    );
    assert_eq!(
        out,
        "nil\tRateLimited\tvalidation stopped: cpu budget exceeded\tfalse\t\
         false\tRateLimited\tvalidation stopped: cpu budget exceeded"
    );
    // A sparse table whose raw length is a huge border is polled too.
    let out = run(
        &lua,
        r#"local t = {}
        for i = 44, 0, -1 do t[1 << i] = i end
        local _, e = T.Nums:is(t)
        local _, e2 = T.Map:is(t)
        local dag = {}
        for _ = 1, 40 do dag = {dag, dag} end
        local _, e3 = T.Tree:is(dag)
        return show(rawlen(t) == 1 << 44, e and e:message(), e2, e3 and e3:message())"#,
    );
    assert_eq!(
        out,
        "true\tvalidation stopped: cpu budget exceeded\tnil\tvalidation stopped: cpu budget exceeded"
    );
    assert!(calls.get() >= 4, "{}", calls.get());
}

#[test]
fn primitive_success_creates_no_lua_values() {
    let lua = setup(user_table());
    let out = run(
        &lua,
        r#"local s, i = T.string, T.integer
        local _ = s:is("x"), i(1), s.is("x"), T.number:is(1)  -- warm the method caches
        collectgarbage("stop")
        local before = collectgarbage("count")
        for _ = 1, 10000 do
            local a = s:is("x")
            local b = i(3)
            local c = T.number:is(2.5)
        end
        local after = collectgarbage("count")
        collectgarbage("restart")
        return show(after - before)"#,
    );
    assert_eq!(out, "0.0");
}

#[test]
fn record_of_ten_primitives_timing() {
    let lua = setup(table(vec![("Rec", ten_fields())]));
    let n = 200_000;
    let src = format!(
        r#"local Rec = T.Rec
        local v = {{f0 = "a", f1 = 1, f2 = 1.5, f3 = true, f4 = "b", f5 = 2, f6 = 3, f7 = false, f8 = "c", f9 = 4}}
        assert(Rec:is(v) == v)
        local clock = os.clock
        local t0 = clock()
        for _ = 1, {n} do local _ = Rec:is(v) end
        local t1 = clock()
        for _ = 1, {n} do local _ = T.string:is("x") end
        local t2 = clock()
        return show((t1 - t0) * 1e9 / {n}, (t2 - t1) * 1e9 / {n})"#
    );
    let started = Instant::now();
    let out = run(&lua, &src);
    eprintln!(
        "T:is on a 10-field record / on a primitive, ns per call: {out} (total {:?})",
        started.elapsed()
    );
}

/// `type Rec = {f0: string, f1: integer, f2: number, f3: boolean, ...}`,
/// ten fields.
fn ten_fields() -> Ty {
    record(
        (0..10)
            .map(|i| {
                field(
                    &format!("f{i}"),
                    match i % 4 {
                        0 => Ty::String,
                        1 => Ty::Integer,
                        2 => Ty::Number,
                        _ => Ty::Boolean,
                    },
                )
            })
            .collect(),
    )
}

fn fast_table() -> TypeTable {
    let func = Ty::Func {
        params: vec![],
        variadic: None,
        rets: vec![],
    };
    table(vec![
        ("Rec", ten_fields()),
        // type Id = integer
        ("Id", Ty::Integer),
        (
            "Mixed",
            record(vec![
                field("s", Ty::String),
                field("i", named("Id", 1)),
                opt_field("o", Ty::Number),
                field("u", Ty::Union(vec![t(Ty::String), t(Ty::Integer)])),
                field("a", Ty::Any),
                field("mi", Ty::Optional(t(Ty::Integer))),
                field("t", Ty::Table),
                field("f", func.clone()),
                field("n", Ty::Nil),
                field("un", Ty::Union(vec![t(Ty::Integer), t(Ty::Number)])),
            ]),
        ),
        ("SI", Ty::Union(vec![t(Ty::String), t(Ty::Integer)])),
        ("Never", record(vec![field("x", Ty::Never)])),
        (
            "Big",
            record(
                (0..5000)
                    .map(|i| field(&format!("k{i}"), Ty::Any))
                    .collect(),
            ),
        ),
        ("Lit", record(vec![field("x", lit_str("a"))])),
        ("Nested", record(vec![field("r", named("Rec", 0))])),
        ("A", named("B", 9)),
        ("B", named("A", 8)),
        ("Fn", func),
    ])
}

/// Where the fast path has a plan, it says "valid" exactly when the full
/// checker does.
#[test]
fn fast_path_agrees_with_the_checker() {
    use super::check::Checker;
    use super::fast;
    let tt = fast_table();
    let lua = setup(TypeTable::default());
    let values: Vec<mlua::Value> = lua
        .load(
            r#"local vals = {nil, true, false, 0, 1, -7, 2.0, -0.0, 2.5, 0/0, 1/0, -1/0,
                math.mininteger, math.maxinteger, 2^63, "", "x", "1", {}, print, function() end,
                coroutine.create(print), io.stdout}
            local n = 23
            local function add(v) n = n + 1; vals[n] = v end
            local good = {s = "a", i = 1, u = 2, a = nil, t = {}, f = print, un = 2.5}
            add(good)
            add({s = "a", i = 1.0, o = 2, u = "u", a = {}, mi = 3, t = {}, f = print, n = nil, un = 1})
            for k, bad in pairs({s = 1, i = 1.5, o = "x", u = 1.5, mi = 0/0, t = "t", f = {}, n = 1, un = "1"}) do
                local v = {}
                for k2, v2 in pairs(good) do v[k2] = v2 end
                v[k] = bad
                add(v)
            end
            add({f0 = "a", f1 = 1, f2 = 1.5, f3 = true, f4 = "b", f5 = 2, f6 = 3, f7 = false, f8 = "c", f9 = 4})
            add({f0 = "a", f1 = 1, f2 = 1.5, f3 = true, f4 = "b", f5 = 2, f6 = 3, f7 = false, f8 = "c"})
            add({f0 = "a", f1 = 1, f2 = 1.5, f3 = true, f4 = "b", f5 = 2, f6 = 3, f7 = false, f8 = "c", f9 = 4.5})
            add({x = 1})
            add(setmetatable({}, {__index = function() return "a" end}))
            return table.unpack(vals, 1, n)"#,
        )
        .eval::<mlua::MultiValue>()
        .expect("values")
        .into_iter()
        .collect();
    // SAFETY: `fast_check` is a `lua_CFunction` that reads only its frame.
    let fast_fn = unsafe { lua.create_c_function(fast::fast_check) }.expect("fast");
    let budget = no_budget();
    let mut covered = Vec::new();
    for (i, decl) in tt.decls.iter().enumerate() {
        let ty = t(named(&decl.name, u32::try_from(i).expect("id")));
        let Some(p) = fast::plan(&ty, &tt) else {
            continue;
        };
        covered.push(decl.name.clone());
        let names = match p.names {
            Some(n) => mlua::Value::Table(lua.create_sequence_from(n).expect("names")),
            None => mlua::Value::Boolean(false),
        };
        let slots = lua.create_string(&p.slots).expect("slots");
        for (j, v) in values.iter().enumerate() {
            let fast_ok: bool = fast_fn
                .call((v, &names, &slots))
                .expect("fast_check never raises");
            let full_ok = Checker::new(&lua, &tt, &*budget)
                .run(&ty, v, None, false)
                .is_ok();
            assert_eq!(fast_ok, full_ok, "{} on value #{j}: {v:?}", decl.name);
        }
    }
    assert_eq!(covered, ["Rec", "Id", "Mixed", "SI", "Never", "Fn"]);
    // Bad arguments give false, never an error.
    let out: Vec<bool> = [
        fast_fn.call(()),
        fast_fn.call((1, 2, 3)),
        fast_fn.call(("x", false, "")),
        fast_fn.call(("x", false, "\u{10}\u{0}\u{10}\u{0}")),
        fast_fn.call((
            lua.create_table().expect("t"),
            lua.create_sequence_from([1, 2]).expect("t"),
            "\u{1e}\u{0}",
        )),
    ]
    .into_iter()
    .map(|r: mlua::Result<bool>| r.expect("no error"))
    .collect();
    assert_eq!(out, [false, false, false, false, false]);
}

/// The Lua-side dispatch: every calling form, method caching, the fast
/// path's results and the full checker's errors after it.
#[test]
fn dispatch_forms_and_fast_path_results() {
    let lua = setup(fast_table());
    let out = run(
        &lua,
        r##"local Rec = T.Rec
local v = {f0 = "a", f1 = 1, f2 = 1.5, f3 = true, f4 = "b", f5 = 2, f6 = 3, f7 = false, f8 = "c", f9 = 4}
local bad = {f0 = "a", f1 = 1.5}
local a = show(Rec:is(v) == v, Rec.is(v) == v, Rec.is(Rec, v) == v, select("#", Rec:is(v)), Rec(v) == v)
local b = show(Rec.is(v, nil), select(2, Rec.is(v, nil)):message(), Rec.is(), select(2, Rec:is(bad)):message())
local c = show(rawequal(Rec.is, Rec.is), rawequal(Rec.is, T.Id.is), rawequal(T.string.is, T.string.is),
    Rec.is ~= T.Mixed.is, rawequal(Rec.kind, Rec.kind), Rec:kind(), Rec.kind(), Rec.f1, Rec[1], Rec[Rec])
local d = show(pcall(function() local x = Rec(bad); return x end))
local e = show(pcall(function() local x = T.any(T.string); return x end))
local f = show(T.any(io.stdout) == io.stdout, T.SI("s"), T.SI(3), T.Id(2.0), pcall(T.Id, 2.5))
local g = show(T.Mixed:is({s = "a", i = 1, u = 2, t = {}, f = print, un = 1}) ~= nil,
    select(2, T.Mixed:is({s = "a", i = 1, u = 2, t = {}, f = {}, un = 1})):message(),
    select(2, T.Mixed:is({i = 1, u = 2, t = {}, f = print, un = 1})):message(),
    select(2, T.Mixed:is({s = "a", i = 1, u = 2, t = {}, f = print, n = false, un = 1})):message(),
    select(2, T.Never:is({})):message(), select(2, T.Rec:is("x")):message())
return table.concat({a, b, c, d, e, f, g}, "\n")"##,
    );
    assert_eq!(
        out,
        "true\ttrue\ttrue\t2\ttrue\n\
         nil\texpected Rec, got nil\tnil\tf1: expected integer, got number\n\
         true\tfalse\ttrue\ttrue\ttrue\trecord\trecord\tinteger\tnil\tnil\n\
         false\tt:8: expected Rec, got table\n\
         false\tt:9: type any is not generic\n\
         true\ts\t3\t2.0\tfalse\texpected Id, got number\n\
         true\tf: expected () -> (), got table\ts: required field missing\t\
         n: expected nil, got boolean\tx: required field missing\texpected Rec, got string"
    );
}

#[test]
fn hostile_values_on_the_fast_path() {
    let lua = setup(fast_table());
    let out = run(
        &lua,
        r#"ran = {}
        local function trap(name) return function() ran[#ran + 1] = name; while true do end end end
        local mt = {__index = trap("index"), __len = trap("len"), __pairs = trap("pairs"),
            __eq = trap("eq"), __lt = trap("lt"), __le = trap("le"), __call = trap("call"),
            __tostring = trap("tostring"), __name = "hostile", __close = trap("close"),
            __newindex = trap("newindex"), __concat = trap("concat")}
        local function hostile(t) return setmetatable(t, mt) end
        local r = {}
        local function m(T, v)
            local _, e = T:is(v)
            r[#r + 1] = e and e:message() or "ok"
            local ok = pcall(T, v)
            r[#r + 1] = tostring(ok)
        end
        m(T.Rec, hostile({}))
        m(T.Rec, hostile({f0 = "a", f1 = 1, f2 = 1.5, f3 = true, f4 = "b", f5 = 2, f6 = 3, f7 = false, f8 = "c", f9 = 4}))
        m(T.Mixed, hostile({s = "a", i = 1, u = 2, t = hostile({}), f = print, a = hostile({}), un = 1}))
        m(T.Mixed, hostile({s = "a", i = 1, u = 2, t = hostile({}), f = hostile({}), un = 1}))
        m(T.SI, hostile({}))
        m(T.any, hostile({}))
        m(T.Fn, hostile({}))
        return show(#ran, table.concat(r, "|"))"#,
    );
    assert_eq!(
        out,
        "0\tf0: required field missing|false|ok|true|ok|true|\
         f: expected () -> (), got table|false|expected string | integer, got table|false|ok|true|\
         expected Fn, got table|false"
    );
}

#[test]
fn a_record_too_big_for_the_fast_path_still_polls_the_budget() {
    let calls = Rc::new(Cell::new(0u32));
    let seen = calls.clone();
    let budget: Rc<dyn Fn() -> Option<String>> = Rc::new(move || {
        seen.set(seen.get() + 1);
        Some("cpu budget exceeded".to_owned())
    });
    let lua = setup_with(fast_table(), budget);
    let out = run(
        &lua,
        r#"local v = {}
        local _, e = T.Big:is(v)
        local ok, raised = pcall(T.Big, v)
        local rec = {f0 = "a", f1 = 1, f2 = 1.5, f3 = true, f4 = "b", f5 = 2, f6 = 3, f7 = false, f8 = "c", f9 = 4}
        return show(e:kind(), e:message(), ok, raised:message(), T.Rec:is(rec) == rec)"#,
    );
    assert_eq!(
        out,
        "RateLimited\tvalidation stopped: cpu budget exceeded\tfalse\t\
         validation stopped: cpu budget exceeded\ttrue"
    );
    assert_eq!(calls.get(), 2);
}

/// Methods cached for a type value do not keep it alive.
#[test]
fn cached_methods_do_not_leak_type_values() {
    let lua = setup(shapes_table());
    let out = run(
        &lua,
        r#"local function round()
            for _ = 1, 2000 do
                local tags = T.Job.tags
                local _ = tags:is({"a"}), tags:kind(), tags({})
            end
        end
        local function settled()
            collectgarbage(); collectgarbage(); collectgarbage()
            return collectgarbage("count")
        end
        round()
        local m0 = settled()
        for _ = 1, 10 do round() end
        local m1 = settled()
        for _ = 1, 40 do round() end
        local m2 = settled()
        -- The weak tables may keep their size; they do not grow per value.
        return show(m1 - m0 < 512, m2 - m1 < 16)"#,
    );
    assert_eq!(out, "true\ttrue");
}

#[test]
fn record_success_creates_no_lua_values() {
    let lua = setup(fast_table());
    let out = run(
        &lua,
        r#"local Rec, Mixed = T.Rec, T.Mixed
        local v = {f0 = "a", f1 = 1, f2 = 1.5, f3 = true, f4 = "b", f5 = 2, f6 = 3, f7 = false, f8 = "c", f9 = 4}
        local m = {s = "a", i = 1, u = 2, t = {}, f = print, un = 1}
        local _ = Rec:is(v), Rec(v), Mixed:is(m), Rec.is(Rec, v)  -- warm the caches
        collectgarbage("stop")
        local before = collectgarbage("count")
        for _ = 1, 10000 do
            local a = Rec:is(v)
            local b = Rec(v)
            local c = Mixed:is(m)
            local d = Rec.is(Rec, v)
        end
        local after = collectgarbage("count")
        collectgarbage("restart")
        return show(after - before)"#,
    );
    assert_eq!(out, "0.0");
}

#[test]
fn records_relate_by_field_name_in_any_order() {
    // Fields are matched through a map (a scan per field was quadratic:
    // two records of 48,000 fields, 2.9 s in one `==`); the same fields in
    // another order are equal, and a missing or differently typed one is
    // told apart.
    let names: Vec<String> = (0..2_000).map(|i| format!("f{i}")).collect();
    let fields = |order: &mut dyn Iterator<Item = &String>, last: Ty| {
        let mut fs: Vec<Field> = order.map(|n| field(n, Ty::Number)).collect();
        fs.push(field("z", last));
        record(fs)
    };
    let lua = setup(table(vec![
        ("A", fields(&mut names.iter(), Ty::String)),
        ("B", fields(&mut names.iter().rev(), Ty::String)),
        ("C", fields(&mut names.iter().rev(), Ty::Number)),
    ]));
    assert_eq!(
        run(
            &lua,
            "return show(T.A == T.B, T.A <= T.B, T.B <= T.A, T.A == T.C, T.A <= T.C)"
        ),
        "true\ttrue\ttrue\tfalse\tfalse"
    );
}

#[test]
fn deep_shared_instances_compare_once_per_pair_of_nodes() {
    // `Pair(P, P)` nested 15 times, compared as a tree, ran out of the
    // relation's steps and was unequal to an equal copy; a pair of nodes
    // found related is remembered, so 40 levels answer, and a difference
    // at the bottom is still found.
    let lua = setup(generic_table());
    let out = run(
        &lua,
        r#"local P, Q, R = T.Pair(T.string, T.integer), T.Pair(T.string, T.integer), T.Pair(T.string, T.number)
local shallow = show(P <= R, R <= P)
for _ = 1, 40 do P, Q, R = T.Pair(P, P), T.Pair(Q, Q), T.Pair(R, R) end
return show(P == Q, P <= Q, Q <= P, P == R) .. "\t" .. show(P <= R, R <= P) .. "\t" .. shallow"#,
    );
    // Record fields are invariant (§3.5): neither side is below the other,
    // at one level or forty.
    assert_eq!(out, "true\ttrue\ttrue\tfalse\tfalse\tfalse\tfalse\tfalse");
}

//! Phase B's translate-time half (typed-lua.md §3.3 rule 4, §3.4, §3.6):
//! the type IR of declarations, name resolution with hoisting, run-time
//! type references rewritten to `__warren_types.N`, and T diagnostics.

use std::sync::Arc;

use crate::common::{compiles, lines, ok, tr};
use warren_lua_dialect::ty::{
    Decl, DeclId, Field, Lit, Param, Ty, TyParam, Validator, ValidatorArg,
};
use warren_lua_dialect::{MAX_PATTERNS, Severity, Translation};

fn a(t: Ty) -> Arc<Ty> {
    Arc::new(t)
}

fn field(name: &str, ty: Ty, optional: bool) -> Field {
    Field {
        name: name.into(),
        ty: a(ty),
        optional,
    }
}

fn val(name: &str, args: Vec<ValidatorArg>) -> Validator {
    Validator {
        name: name.into(),
        args,
        regex: None,
    }
}

fn lit_str(s: &str) -> Ty {
    Ty::Lit(Lit::Str(s.as_bytes().to_vec()))
}

fn decl<'t>(t: &'t Translation, name: &str) -> &'t Decl {
    t.types
        .decls
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no declaration {name}: {:?}", t.types))
}

/// (code, severity, line, column) of each diagnostic.
fn codes(t: &Translation) -> Vec<(&'static str, Severity, u32, u32)> {
    t.diagnostics
        .iter()
        .map(|d| (d.code, d.severity, d.line, d.column))
        .collect()
}

/// Runs a translation with a stand-in `__warren_types` whose types answer
/// `:is(v)` with `"<name>"` and are callable; returns what `print` got.
fn run_with_stub(t: &Translation) -> Vec<String> {
    let lua = mlua::Lua::new();
    let out = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let o = out.clone();
    let print = lua
        .create_function(move |_, args: mlua::MultiValue| {
            let parts: Vec<String> = args
                .iter()
                .map(|v| v.to_string().unwrap_or_else(|_| "?".into()))
                .collect();
            o.borrow_mut().push(parts.join("\t"));
            Ok(())
        })
        .expect("print");
    lua.globals().set("print", print).expect("set print");
    lua.load(
        r#"__warren_types = setmetatable({}, {__index = function(_, name)
            return setmetatable({is = function(_, v) return name end},
                {__call = function(_, v) return name .. "(" .. tostring(v) .. ")" end})
        end})"#,
    )
    .exec()
    .expect("stub");
    lua.load(&t.lua).set_name("=t").exec().expect("runs");
    out.borrow().clone()
}

#[test]
fn s10_is_on_a_record_type() {
    let src = "type User = {id: string, age: integer @min(0)}\nlocal u, e1 = User:is({id = \"a1\", age = 30})\nprint(u ~= nil, e1)\nlocal bad, e2 = User:is({id = \"a1\", age = -1})\nprint(bad, errors.is(e2, errors.INVALID), e2:message())\nlocal miss, e3 = User:is({age = 1})\nprint(miss, e3:message(), e3:details().field)\n";
    let t = tr(src);
    assert!(t.needs_types);
    let first = src.lines().next().unwrap_or("");
    let want = format!(
        "{}\nlocal u, e1 = __warren_types.User:is({{id = \"a1\", age = 30}})\nprint(u ~= nil, e1)\nlocal bad, e2 = __warren_types.User:is({{id = \"a1\", age = -1}})\nprint(bad, errors.is(e2, errors.INVALID), e2:message())\nlocal miss, e3 = __warren_types.User:is({{age = 1}})\nprint(miss, e3:message(), e3:details().field)\n",
        format_args!(";{}", " ".repeat(first.len() - 1))
    );
    assert_eq!(t.lua, want);
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    assert_eq!(t.types.decls.len(), 1);
    let user = decl(&t, "User");
    assert!(user.top_level);
    assert_eq!(
        *user.ty,
        Ty::Record {
            fields: vec![
                field("id", Ty::String, false),
                field(
                    "age",
                    Ty::Annotated {
                        inner: a(Ty::Integer),
                        validators: vec![val("min", vec![ValidatorArg::Int(0)])],
                    },
                    false
                ),
            ],
            readonly: false,
        }
    );
}

#[test]
fn s11_calling_a_type() {
    let src = "type Port = integer @min(1) @max(65535)\nprint(Port(8080))\nprint(pcall(function() local v = Port(\"80\"); return v end))\nprint(pcall(function() local v = Port(0); return v end))\n";
    let t = tr(src);
    let out: Vec<&str> = t.lua.lines().collect();
    assert_eq!(out[1], "print(__warren_types.Port(8080))");
    assert_eq!(
        out[2],
        "print(pcall(function() local v = __warren_types.Port(\"80\"); return v end))"
    );
    assert_eq!(
        out[3],
        "print(pcall(function() local v = __warren_types.Port(0); return v end))"
    );
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    assert_eq!(
        *decl(&t, "Port").ty,
        Ty::Annotated {
            inner: a(Ty::Integer),
            validators: vec![
                val("min", vec![ValidatorArg::Int(1)]),
                val("max", vec![ValidatorArg::Int(65535)]),
            ],
        }
    );
}

#[test]
fn s12_primitive_type_calls_and_the_string_library() {
    let src = "print(string(\"ab\"), integer(4), number(2.5), boolean(false))\nprint(pcall(function() local v = string(42); return v end))\nprint(string.format(\"%d-%s\", 7, string.upper(\"x\")))\n";
    let t = tr(src);
    assert_eq!(
        t.lua,
        "print(__warren_types.string(\"ab\"), __warren_types.integer(4), __warren_types.number(2.5), __warren_types.boolean(false))\nprint(pcall(function() local v = __warren_types.string(42); return v end))\nprint(string.format(\"%d-%s\", 7, string.upper(\"x\")))\n"
    );
    // Receivers, type methods, other calls; a bare `string` stays.
    let t = tr(
        "local a = string:is(1)\nlocal b = string.kind\nlocal c = any.is\nlocal d = string\nlocal e = string.len(\"x\")\nlocal f = unknown{}\nlocal g = never\"x\"\n",
    );
    assert_eq!(
        t.lua,
        "local a = __warren_types.string:is(1)\nlocal b = __warren_types.string.kind\nlocal c = __warren_types.any.is\nlocal d = string\nlocal e = string.len(\"x\")\nlocal f = __warren_types.unknown{}\nlocal g = __warren_types.never\"x\"\n"
    );
    // `table` and `error` are types but no value names; `error(...)` stays.
    let src = "error(\"x\")\nlocal t = table.concat({})\n";
    assert_eq!(ok(src), src);
}

#[test]
fn s13_shadowing_runs_as_expected() {
    let src = "type Point = {x: number}\nlocal string = {is = function(_, v) return \"mine\", v end}\nprint(string:is(5))\nlocal function check(Point) return Point:is(1) end\nprint(check({is = function() return \"param\" end}))\nprint((Point:is({x = 1})) ~= nil)\n";
    let t = tr(src);
    let out: Vec<&str> = t.lua.lines().collect();
    assert_eq!(out[2], "print(string:is(5))");
    assert_eq!(out[3], "local function check(Point) return Point:is(1) end");
    assert_eq!(out[5], "print((__warren_types.Point:is({x = 1})) ~= nil)");
    assert_eq!(run_with_stub(&t), vec!["mine\t5", "param", "true"]);
    assert_eq!(
        *decl(&t, "Point").ty,
        Ty::Record {
            fields: vec![field("x", Ty::Number, false)],
            readonly: false,
        }
    );
}

#[test]
fn s14_hoisting_and_generics() {
    let src = "local function valid(v) return (StrBox:is(v)) ~= nil end\ntype StrBox = Box<string>\ntype Box<T> = {value: T}\nprint(valid({value = \"x\"}), valid({value = 1}))\n";
    let t = tr(src);
    assert_eq!(
        t.lua.lines().next(),
        Some("local function valid(v) return (__warren_types.StrBox:is(v)) ~= nil end")
    );
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    assert_eq!(t.types.decls[0].name, "StrBox");
    assert_eq!(t.types.decls[1].name, "Box");
    assert_eq!(
        *t.types.decls[0].ty,
        Ty::Inst {
            base: DeclId(1),
            args: vec![a(Ty::String)],
        }
    );
    assert_eq!(
        *t.types.decls[1].ty,
        Ty::Generic {
            params: vec![TyParam {
                name: "T".into(),
                bound: None,
            }],
            body: a(Ty::Record {
                fields: vec![field("value", Ty::TParam(0), false)],
                readonly: false,
            }),
        }
    );
    let bad = format!("{src}type Bad = Box<string, number>\n");
    let t = tr(&bad);
    assert_eq!(codes(&t), vec![("T003", Severity::Error, 5, 12)]);
    assert_eq!(*decl(&t, "Bad").ty, Ty::Any);
    // A generic used bare is a warning; a non-generic with arguments, an error.
    let t = tr(
        "type Box<T> = {value: T}\ntype P = {x: number}\nlocal a: Box = nil\nlocal b: P<string> = nil\n",
    );
    assert_eq!(
        codes(&t),
        vec![
            ("T003", Severity::Warning, 3, 10),
            ("T003", Severity::Error, 4, 10)
        ]
    );
}

#[test]
fn s15_reflection_and_first_class_use() {
    let src = "type Status = \"queued\" | \"done\"\ntype Job = {id: integer, status: Status, tags?: {string}}\nlocal out = {}\nfor name, t in Job:fields() do out[#out + 1] = name .. \"=\" .. t:kind() end\nlocal by_type = {[Job] = \"job\"}\nprint(table.concat(out, \" \"), Job:kind(), Job:name(), Status:kind(), by_type[Job])\n";
    let t = tr(src);
    let out: Vec<&str> = t.lua.lines().collect();
    assert_eq!(
        out[3],
        "for name, t in __warren_types.Job:fields() do out[#out + 1] = name .. \"=\" .. t:kind() end"
    );
    assert_eq!(out[4], "local by_type = {[__warren_types.Job] = \"job\"}");
    assert_eq!(
        out[5],
        "print(table.concat(out, \" \"), __warren_types.Job:kind(), __warren_types.Job:name(), __warren_types.Status:kind(), by_type[__warren_types.Job])"
    );
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    assert_eq!(
        *decl(&t, "Status").ty,
        Ty::Union(vec![a(lit_str("queued")), a(lit_str("done"))])
    );
    assert_eq!(
        *decl(&t, "Job").ty,
        Ty::Record {
            fields: vec![
                field("id", Ty::Integer, false),
                field(
                    "status",
                    Ty::Named {
                        name: "Status".into(),
                        decl: DeclId(0),
                    },
                    false
                ),
                field(
                    "tags",
                    Ty::Array {
                        elem: a(Ty::String),
                        readonly: false,
                    },
                    true
                ),
            ],
            readonly: false,
        }
    );
}

#[test]
fn s16_unknown_type_is_reported_and_still_runs() {
    let src = "local function f(x: Strng): number return 1 end\nprint(f(\"a\"))\n";
    let t = tr(src);
    assert!(!t.needs_types);
    assert_eq!(
        t.lua,
        src.replace(": Strng", "       ")
            .replace(": number", "        ")
    );
    assert_eq!(codes(&t), vec![("T001", Severity::Error, 1, 21)]);
    assert_eq!(t.diagnostics[0].message, "unknown type `Strng`");
    assert_eq!(
        t.diagnostics[0].to_string(),
        "1:21: unknown type `Strng` [T001]"
    );
}

#[test]
fn s18_validator_diagnostics() {
    let src = "type Email = string @pattern(\"([a-z\")\ntype Age = {n: number} @min(0)\n";
    let t = tr(src);
    assert_eq!(
        codes(&t),
        vec![
            ("T004", Severity::Error, 1, 30),
            ("T005", Severity::Warning, 2, 24)
        ]
    );
    let Ty::Annotated { inner, validators } = &*decl(&t, "Email").ty else {
        panic!("{:?}", t.types)
    };
    assert_eq!(**inner, Ty::String);
    assert_eq!(validators[0].name, "pattern");
    assert!(validators[0].regex.is_none());
    assert_eq!(
        *decl(&t, "Age").ty,
        Ty::Record {
            fields: vec![field("n", Ty::Number, false)],
            readonly: false,
        }
    );
    // A valid pattern compiles; bad arguments and unknown names.
    let t = tr(
        "type E = string @pattern(\"^[a-z]+@\")\ntype N = number @min(\"x\") @foo(1)\ntype M = string @max_len()\n",
    );
    let Ty::Annotated { validators, .. } = &*decl(&t, "E").ty else {
        panic!()
    };
    let re = validators[0].regex.as_ref().expect("compiled");
    assert!(re.is_match(b"ab@c") && !re.is_match(b"AB@"));
    assert_eq!(
        codes(&t),
        vec![
            ("T004", Severity::Error, 2, 22),
            ("T004", Severity::Warning, 2, 27),
            ("T004", Severity::Error, 3, 17)
        ]
    );
    // Negative and float arguments.
    let t = tr("type R = number @min(-1.5) @max(-2)\n");
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    assert_eq!(
        *decl(&t, "R").ty,
        Ty::Annotated {
            inner: a(Ty::Number),
            validators: vec![
                val("min", vec![ValidatorArg::Float(-1.5)]),
                val("max", vec![ValidatorArg::Int(-2)]),
            ],
        }
    );
}

#[test]
fn s19_nested_types_have_no_run_time_value() {
    let src = "local function f(v)\n    type Local = {x: number}\n    return Local:is(v)\nend\nprint(pcall(f, {x = 1}))\n";
    let t = tr(src);
    assert!(!t.needs_types);
    assert!(t.lua.contains("return Local:is(v)"));
    assert_eq!(codes(&t), vec![("T007", Severity::Error, 3, 12)]);
    let l = decl(&t, "Local");
    assert!(!l.top_level);
    assert_eq!(
        *l.ty,
        Ty::Record {
            fields: vec![field("x", Ty::Number, false)],
            readonly: false,
        }
    );
}

#[test]
fn every_value_read_of_a_top_level_type_is_rewritten() {
    let src = "type Config = {port: integer}\nlocal t = {c = Config, Config}\nlocal x = Config.port\nConfig.extra = 1\nfunction Config.new() end\nlocal y = Config[1]\nreturn { Config = Config }\n";
    let t = tr(src);
    let out: Vec<&str> = t.lua.lines().collect();
    assert_eq!(
        out[1],
        "local t = {c = __warren_types.Config, __warren_types.Config}"
    );
    assert_eq!(out[2], "local x = __warren_types.Config.port");
    assert_eq!(out[3], "__warren_types.Config.extra = 1");
    assert_eq!(out[4], "function __warren_types.Config.new() end");
    assert_eq!(out[5], "local y = __warren_types.Config[1]");
    assert_eq!(out[6], "return { Config = __warren_types.Config }");
    // Shadowed by a local from its declaration on; `local C = C` reads
    // the global.
    let src = "type C = {}\nlocal C = C\nprint(C)\ndo local C = 1 end\nfor _, C in ipairs({}) do print(C) end\nprint(function(C) return C end)\n";
    let t = tr(src);
    let out: Vec<&str> = t.lua.lines().collect();
    assert_eq!(out[1], "local C = __warren_types.C");
    assert_eq!(out[2], "print(C)");
    assert_eq!(&out[3..], &src.lines().collect::<Vec<_>>()[3..]);
}

#[test]
fn a_global_of_the_same_name_turns_rewriting_off() {
    for src in [
        "type Point = {x: number}\nPoint = {}\nprint(Point:is(1))\n",
        "type Point = {x: number}\nprint(Point:is(1))\nfunction Point() end\n",
        "type Point = {x: number}\nlocal function f() Point, y = 1, 2 end\nprint(Point:is(1))\n",
    ] {
        let t = tr(src);
        assert!(!t.needs_types, "{src}");
        let c = codes(&t);
        assert_eq!(c.len(), 1, "{src}: {c:?}");
        assert_eq!((c[0].0, c[0].1), ("T006", Severity::Warning), "{src}");
    }
    let t = tr("type Point = {x: number}\nPoint = {}\n");
    assert_eq!(codes(&t), vec![("T006", Severity::Warning, 2, 1)]);
    // A nested type whose name is also a global the chunk assigns: no T007.
    let t = tr("Cfg = {}\nlocal function f()\n    type Cfg = {}\n    return Cfg.x\nend\n");
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
}

#[test]
fn nested_declarations_resolve_in_their_block() {
    let src = "local function f(a: Inner): Outer\n    type Inner = {o: Outer}\n    local x: Inner = a\n    do\n        local y: Deeper = nil\n        type Deeper = Inner[]\n    end\n    return x.o\nend\ntype Outer = {n: number}\nlocal z: Deeper = nil\n";
    let t = tr(src);
    // `Inner` in f's parameter list: the function's block declares it, so
    // it resolves (parameters share the body's scope); `Deeper` outside its
    // block does not. (Phase C: `Deeper` resolves on line 5, so its `nil`
    // is T011; on line 11 it is unknown, so nothing is checked.)
    assert_eq!(
        codes(&t),
        vec![
            ("T011", Severity::Error, 5, 27),
            ("T001", Severity::Error, 11, 10)
        ]
    );
    assert_eq!(
        *decl(&t, "Inner").ty,
        Ty::Record {
            fields: vec![field(
                "o",
                Ty::Named {
                    name: "Outer".into(),
                    decl: DeclId(2),
                },
                false
            )],
            readonly: false,
        }
    );
    assert_eq!(
        t.types
            .decls
            .iter()
            .map(|d| (d.name.as_str(), d.top_level))
            .collect::<Vec<_>>(),
        vec![("Inner", false), ("Deeper", false), ("Outer", true)]
    );
    // Duplicates in one block: T002; shadowing in an inner block is fine.
    let t = tr("type A = number\ntype A = string\ndo type A = boolean end\n");
    assert_eq!(codes(&t), vec![("T002", Severity::Error, 2, 6)]);
    assert_eq!(t.types.decls.len(), 3);
    // The first declaration is the one bound (and the run-time value).
    let tl: Vec<bool> = t.types.decls.iter().map(|d| d.top_level).collect();
    assert_eq!(tl, vec![true, false, false]);
}

#[test]
fn ir_of_every_construct() {
    let src = r#"type Lits = "a" | 3 | 1.5 | true | false | nil
type Opt = string?
type Arr = {number}
type Arr2 = integer[]
type Map = {[string]: boolean}
type RO = readonly {x: number}
type ROA = readonly {string}
type Both = {a: number} & {b: string}
type F = (x: number, string, ...boolean) -> (integer, string)
type G = fun(a: string): boolean
type H = () -> ()
type I = interface {close: (self: any) -> ()}
type Q = time.Time
type Any = any
type Tbl = table
type Err = error
type Un = unknown
type Nv = never
interface Reader
    function read(self, n: integer): string?
    size: integer
end
interface Stream: Reader
    function seek(self, ...: integer): integer, string?
end
"#;
    let t = tr(src);
    assert_eq!(codes(&t), vec![("T050", Severity::Hint, 13, 10)]);
    let ty = |n: &str| (*decl(&t, n).ty).clone();
    assert_eq!(
        ty("Lits"),
        Ty::Union(vec![
            a(lit_str("a")),
            a(Ty::Lit(Lit::Int(3))),
            a(Ty::Lit(Lit::Float(1.5))),
            a(Ty::Lit(Lit::Bool(true))),
            a(Ty::Lit(Lit::Bool(false))),
            a(Ty::Nil),
        ])
    );
    assert_eq!(ty("Opt"), Ty::Optional(a(Ty::String)));
    let arr = |e: Ty, readonly| Ty::Array {
        elem: a(e),
        readonly,
    };
    assert_eq!(ty("Arr"), arr(Ty::Number, false));
    assert_eq!(ty("Arr2"), arr(Ty::Integer, false));
    assert_eq!(ty("ROA"), arr(Ty::String, true));
    assert_eq!(
        ty("Map"),
        Ty::Map {
            key: a(Ty::String),
            val: a(Ty::Boolean),
            readonly: false
        }
    );
    assert_eq!(
        ty("RO"),
        Ty::Record {
            fields: vec![field("x", Ty::Number, false)],
            readonly: true
        }
    );
    assert!(matches!(ty("Both"), Ty::Inter(v) if v.len() == 2));
    assert_eq!(
        ty("F"),
        Ty::Func {
            params: vec![
                Param {
                    name: Some("x".into()),
                    ty: a(Ty::Number)
                },
                Param {
                    name: None,
                    ty: a(Ty::String)
                },
            ],
            variadic: Some(a(Ty::Boolean)),
            rets: vec![a(Ty::Integer), a(Ty::String)],
        }
    );
    assert_eq!(
        ty("G"),
        Ty::Func {
            params: vec![Param {
                name: Some("a".into()),
                ty: a(Ty::String)
            }],
            variadic: None,
            rets: vec![a(Ty::Boolean)],
        }
    );
    assert_eq!(
        ty("H"),
        Ty::Func {
            params: vec![],
            variadic: None,
            rets: vec![]
        }
    );
    assert!(matches!(ty("I"), Ty::Interface { fields } if fields[0].name == "close"));
    assert_eq!(ty("Q"), Ty::Opaque("time.Time".into()));
    assert_eq!(ty("Any"), Ty::Any);
    assert_eq!(ty("Tbl"), Ty::Table);
    assert_eq!(ty("Err"), Ty::Error);
    assert_eq!(ty("Un"), Ty::Unknown);
    assert_eq!(ty("Nv"), Ty::Never);
    let read = Ty::Func {
        params: vec![
            Param {
                name: Some("self".into()),
                ty: a(Ty::Any),
            },
            Param {
                name: Some("n".into()),
                ty: a(Ty::Integer),
            },
        ],
        variadic: None,
        rets: vec![a(Ty::Optional(a(Ty::String)))],
    };
    assert_eq!(
        ty("Reader"),
        Ty::Interface {
            fields: vec![
                field("read", read.clone(), false),
                field("size", Ty::Integer, false)
            ]
        }
    );
    // Bases' members first, then its own.
    let Ty::Interface { fields } = ty("Stream") else {
        panic!()
    };
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["read", "size", "seek"]);
    assert_eq!(
        *fields[2].ty,
        Ty::Func {
            params: vec![Param {
                name: Some("self".into()),
                ty: a(Ty::Any)
            }],
            variadic: Some(a(Ty::Integer)),
            rets: vec![a(Ty::Integer), a(Ty::Optional(a(Ty::String)))],
        }
    );
}

#[test]
fn type_operators() {
    let src = r#"type P = {x: number, y?: string}
type K = keyof(P)
type X = P["x"]
type Y = P["y"]
type E = {string}[integer]
type C1 = integer extends number ? "yes" : "no"
type C2 = string extends number ? "yes" : "no"
type C3<T> = T extends string ? 1 : 2
type Box<T> = {v: T}
type KB = keyof(Box<string>)
local sample: {a: integer} = {a = 1}
type S = typeof(sample)
type Shape = typeof({n = 1, f = 1.5, s = "x", b = true, t = {u = 1}, o = f()})
type U = typeof(f())
local function g(x: P): asserts x is P end
"#;
    let t = tr(src);
    assert_eq!(codes(&t), vec![("T051", Severity::Warning, 14, 10)]);
    let ty = |n: &str| (*decl(&t, n).ty).clone();
    assert_eq!(ty("K"), Ty::Union(vec![a(lit_str("x")), a(lit_str("y"))]));
    assert_eq!(ty("X"), Ty::Number);
    assert_eq!(ty("Y"), Ty::Optional(a(Ty::String)));
    assert_eq!(ty("E"), Ty::String);
    assert_eq!(ty("C1"), lit_str("yes"));
    assert_eq!(ty("C2"), lit_str("no"));
    assert!(matches!(ty("C3"), Ty::Generic { body, .. } if *body == Ty::Any));
    assert_eq!(ty("KB"), lit_str("v"));
    assert_eq!(
        ty("S"),
        Ty::Record {
            fields: vec![field("a", Ty::Integer, false)],
            readonly: false
        }
    );
    assert_eq!(
        ty("Shape"),
        Ty::Record {
            fields: vec![
                field("n", Ty::Integer, false),
                field("f", Ty::Number, false),
                field("s", Ty::String, false),
                field("b", Ty::Boolean, false),
                field(
                    "t",
                    Ty::Record {
                        fields: vec![field("u", Ty::Integer, false)],
                        readonly: false
                    },
                    false
                ),
                field("o", Ty::Any, false),
            ],
            readonly: false
        }
    );
    assert_eq!(ty("U"), Ty::Any);
}

#[test]
fn generic_parameters_resolve_in_their_declaration() {
    let t = tr(
        "type Pair<A, B: {A}> = {a: A, b: B}\nlocal function id<T>(x: T): T return x end\nlocal y: T = nil\n",
    );
    // `T` outside `id` is unknown; inside it is a parameter.
    assert_eq!(codes(&t), vec![("T001", Severity::Error, 3, 10)]);
    assert_eq!(
        *decl(&t, "Pair").ty,
        Ty::Generic {
            params: vec![
                TyParam {
                    name: "A".into(),
                    bound: None
                },
                TyParam {
                    name: "B".into(),
                    bound: Some(a(Ty::Array {
                        elem: a(Ty::TParam(0)),
                        readonly: false
                    }))
                },
            ],
            body: a(Ty::Record {
                fields: vec![
                    field("a", Ty::TParam(0), false),
                    field("b", Ty::TParam(1), false)
                ],
                readonly: false
            }),
        }
    );
}

#[test]
fn module_types_hint_once_per_name() {
    let t = tr("local a: time.Time = nil\nlocal b: time.Time = nil\nlocal c: sql.DB = nil\n");
    assert_eq!(
        codes(&t),
        vec![
            ("T050", Severity::Hint, 1, 10),
            ("T050", Severity::Hint, 3, 10)
        ]
    );
}

#[test]
fn limits_give_t060() {
    // Too deep: a chain of 70 aliases read through `keyof`.
    let mut src = String::from("type A0 = {x: number}\n");
    for i in 1..70 {
        src += &format!("type A{i} = A{}\n", i - 1);
    }
    src += "type K = keyof(A69)\n";
    let t = tr(&src);
    assert_eq!(
        codes(&t).iter().map(|c| c.0).collect::<Vec<_>>(),
        vec!["T060"]
    );
    assert_eq!(*decl(&t, "K").ty, Ty::Any);
    // Too large: more than 100,000 IR nodes in declarations.
    let fields: Vec<String> = (0..100).map(|i| format!("f{i}: \"x\"")).collect();
    let rec = format!("{{{}}}", fields.join(", "));
    let mut src = String::new();
    for i in 0..1100 {
        src += &format!("type R{i} = {rec}\n");
    }
    let t = tr(&src);
    let c = codes(&t);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].0, "T060");
    assert_eq!(*decl(&t, "R1099").ty, Ty::Any);
    assert_ne!(*decl(&t, "R0").ty, Ty::Any);
}

#[test]
fn no_type_values_means_byte_identical_output() {
    // Types only in annotations, casts and declarations: nothing rewritten.
    let src = "type Point = {x: number}\nlocal p: Point = {x = 1}\nlocal q = p :: Point\nlocal function f(a: Point): Point return a end\nprint(f(q).x)\n";
    let out = ok(src);
    assert_eq!(out.len(), src.len());
    // Reads inside erased type syntax are not rewritten.
    let src = "type Point = {x: number}\nlocal s = {}\ntype T = typeof(Point)\nlocal n: number @min(Point) = 1\n";
    let t = tr(src);
    assert!(!t.needs_types);
    assert_eq!(
        codes(&t).iter().map(|c| c.0).collect::<Vec<_>>(),
        vec!["T051", "T004"]
    );
}

#[test]
fn rewritten_output_keeps_lines_and_compiles_with_the_prefix() {
    let src = "type A = {}\r\nlocal x = A\r\nlocal y = A:is(1)\r\n--[[ A ]] print(A, 'A')\n";
    let t = tr(src);
    assert_eq!(lines(&t.lua), lines(src));
    assert_eq!(t.lua.matches("__warren_types.").count(), 3);
    assert!(t.lua.contains("--[[ A ]] print(__warren_types.A, 'A')"));
    compiles(&format!("local _ENV, __warren_types = ...; {}", t.lua)).expect("compiles");
}

#[test]
fn a_pattern_is_compiled_once_per_text_and_distinct_ones_are_bounded() {
    // 20,000 copies of one costly pattern were compiled one by one (13 s
    // in one `load`); the same text now shares one compile.
    let src = format!(
        "type V = string{}\n",
        " @pattern(\"a{1000}{1000}\")".repeat(20_000)
    );
    let t = tr(&src);
    let Ty::Annotated { validators, .. } = &*decl(&t, "V").ty else {
        panic!("{:?}", t.types)
    };
    assert_eq!(validators.len(), 20_000);
    assert!(validators.iter().all(|v| v.regex.is_none()), "too big each");
    assert!(
        t.diagnostics
            .iter()
            .all(|d| d.message == "invalid regex in `@pattern` (too big)")
    );
    // Same text, same compiled regex.
    let t = tr(&format!(
        "type W = string{}\n",
        " @pattern(\"^a+$\")".repeat(100)
    ));
    let Ty::Annotated { validators, .. } = &*decl(&t, "W").ty else {
        panic!()
    };
    let first = validators[0].regex.as_ref().expect("compiled");
    assert!(
        validators
            .iter()
            .all(|v| v.regex.as_ref().is_some_and(|r| Arc::ptr_eq(r, first)))
    );
    // Past MAX_PATTERNS distinct texts each further one is refused.
    let many: String = (0..MAX_PATTERNS + 3)
        .map(|i| format!(" @pattern(\"^x{i}$\")"))
        .collect();
    let t = tr(&format!("type X = string{many}\n"));
    let over = format!("more than {MAX_PATTERNS} distinct `@pattern` regexes in this chunk");
    assert_eq!(
        t.diagnostics.iter().filter(|d| d.message == over).count(),
        3
    );
}

#[test]
fn field_checks_of_huge_records_stop_at_their_budget() {
    // Each read of a field a record lacks scanned its fields, each
    // constructor field scanned the constructor: quadratic (0.9 s and
    // 2.5 s of one `load` at 30,000). Past the chunk's budget these checks
    // stay silent instead.
    let fields: Vec<String> = (0..5_000).map(|i| format!("f{i}: number")).collect();
    let reads = "y = x.nope\n".repeat(5_000);
    let src = format!(
        "type R = {{{}}}\nlocal x: R = {{}}\nlocal y\n{reads}",
        fields.join(", ")
    );
    let t = tr(&src);
    let warned = t.diagnostics.iter().filter(|d| d.code == "T014").count();
    assert!(warned > 1_000 && warned < 5_000, "{warned} warnings");
}

#[test]
fn t008_an_alias_through_itself_with_no_structure_between() {
    let w = Severity::Warning;
    // Alone, through `?` and `|`, and a cycle of two: a warning on each
    // declaration of the cycle, at its name.
    let t = tr("type T = T\ntype C = C | number\ntype A = B | string\ntype B = A?\n");
    assert_eq!(
        codes(&t),
        vec![
            ("T008", w, 1, 6),
            ("T008", w, 2, 6),
            ("T008", w, 3, 6),
            ("T008", w, 4, 6)
        ]
    );
    let m = &t.diagnostics[2].message;
    assert!(
        m.contains("type `A`") && m.contains("(a cycle of `A`, `B`)"),
        "{m}"
    );
    // Through validators and `&` too.
    assert!(!t.diagnostics[0].message.contains("cycle"));
    let t = tr("type V = V @min(1)\ntype I = {x: number} & I\n");
    assert_eq!(codes(&t), vec![("T008", w, 1, 6), ("T008", w, 2, 6)]);
    // Structure in between is a recursive type as usual; a type that only
    // uses a cyclic one is not itself on the cycle.
    for src in [
        "type L = {next: L?}\n",
        "type E = E[]\n",
        "type M = {[string]: M}\n",
        "type F = (F) -> F\n",
        "type J = number | {J}\n",
        "type T = T\ntype U = T | string\n",
        "type Box<X> = {v: X}\ntype G = Box<G>\n",
    ] {
        let t = tr(src);
        let n = usize::from(src.starts_with("type T = T"));
        let got: Vec<_> = t.diagnostics.iter().filter(|d| d.code == "T008").collect();
        assert_eq!(got.len(), n, "{src}: {got:#?}");
    }
}

#[test]
fn t008_a_long_cycle_is_one_warning_per_declaration_naming_five() {
    // 2,000 aliases in one cycle: found without deep recursion, and each
    // message names five of them and the count of the rest.
    let n = 2000;
    let src: String = (0..n)
        .map(|i| format!("type A{i} = A{} | nil\n", (i + 1) % n))
        .collect();
    let t = tr(&src);
    let got: Vec<_> = t.diagnostics.iter().filter(|d| d.code == "T008").collect();
    assert_eq!(got.len(), n);
    assert!(
        got[0].message.contains("and 1995 more"),
        "{}",
        got[0].message
    );
}

#[test]
fn a_pattern_reads_word_boundaries_as_go_does_and_matches_bytes() {
    use warren_lua_dialect::compile_pattern;
    // `\b` is ASCII, as in Go's RE2: "é" is no word character to it.
    let re = compile_pattern(r"^caf\b").expect("compiles");
    assert!(re.is_match("café".as_bytes()) && !re.is_match(b"cafe"));
    let re = compile_pattern(r"^caf\B").expect("compiles");
    assert!(!re.is_match("café".as_bytes()) && re.is_match(b"cafe"));
    // An escaped backslash before a `b` stays a literal backslash and `b`.
    let re = compile_pattern(r"^a\\b$").expect("compiles");
    assert!(re.is_match(br"a\b") && !re.is_match(b"a b"));
    // A string that is not UTF-8 is matched as its bytes.
    let re = compile_pattern("Z$").expect("compiles");
    assert!(re.is_match(b"\xff\xfeZ") && !re.is_match(b"\xffZ\xff"));
    // `\w` stays Unicode (what `\b` does not change).
    let re = compile_pattern(r"^\w+$").expect("compiles");
    assert!(re.is_match("été".as_bytes()));
}

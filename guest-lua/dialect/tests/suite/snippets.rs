//! The syntax part of the contract's snippets (typed-lua.md §5): each
//! translates to its hand-stripped program (after whitespace
//! normalisation) and mlua compiles the output; the bad ones fail at the
//! stated position.

use crate::common::{err, norm, ok, same, tr};

#[test]
fn s1_plain_annotations() {
    same(
        "local function add(a: integer, b: integer): integer\n    return a + b\nend\nlocal total: integer = add(2, 3)\nprint(total)\n",
        "local function add(a, b)\n    return a + b\nend\nlocal total = add(2, 3)\nprint(total)\n",
    );
}

#[test]
fn s2_records_optional_literal_union_bare_multi_return() {
    let src = r#"type Job = {id: integer, input: integer, tag?: string}
type Status = "queued" | "done"

local function next_job(q: {Job}): Job?, string?
    local j = table.remove(q, 1)
    if not j then return nil, "empty" end
    return j, nil
end

local queue: {Job} = {{id = 1, input = 3}}
local job, err = next_job(queue)
local status: Status = "done"
print(job.id, err, status, next_job(queue))
"#;
    let plain = r#";
;

local function next_job(q)
    local j = table.remove(q, 1)
    if not j then return nil, "empty" end
    return j, nil
end

local queue = {{id = 1, input = 3}}
local job, err = next_job(queue)
local status = "done"
print(job.id, err, status, next_job(queue))
"#;
    same(src, plain);
}

#[test]
fn s3_multiline_type_keeps_lines() {
    let src = "type Point = {\n    x: number,\n    y: number,\n}\nlocal function norm(p: Point): number\n    return math.sqrt(p.x * p.x + p.y * p.y)\nend\nprint(norm(nil))\n";
    let out = ok(src);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[5].trim(), "return math.sqrt(p.x * p.x + p.y * p.y)");
    assert!(lines[0].starts_with(';'));
    same(
        src,
        ";\n\n\n\nlocal function norm(p)\n    return math.sqrt(p.x * p.x + p.y * p.y)\nend\nprint(norm(nil))\n",
    );
    // Run it: the error names line 6.
    let lua = mlua::Lua::new();
    let e = lua
        .load(&out)
        .set_name("@f.lua")
        .exec()
        .expect_err("fails at run time")
        .to_string();
    assert!(e.contains("f.lua:6:"), "{e}");
    assert!(
        e.contains("attempt to index a nil value (local 'p')"),
        "{e}"
    );
}

#[test]
fn s4_syntax_error_inside_a_type() {
    let e = err("local x: number< = 42");
    assert_eq!((e.code, e.line, e.column), ("P0001", 1, 18), "{e}");
    assert!(e.message.contains("'='"), "{e}");
    assert!(e.message.contains("expected a type"), "{e}");
}

#[test]
fn s5_casts_and_bang() {
    let src = "local raw: any = {count = \"7\"}\nlocal n = raw.count :: number\nlocal m = (raw as {count: string}).count\nlocal s = (m!) .. \"!\"\nprint(type(n), m, s)\n";
    let plain = "local raw = {count = \"7\"}\nlocal n = raw.count\nlocal m = (raw).count\nlocal s = (m) .. \"!\"\nprint(type(n), m, s)\n";
    same(src, plain);
    let lua = mlua::Lua::new();
    let out = ok(src).replace("print(type(n), m, s)", "return type(n), m, s");
    let (a, b, c): (String, String, String) = lua.load(&out).eval().expect("runs");
    assert_eq!((a.as_str(), b.as_str(), c.as_str()), ("string", "7", "7!"));
}

#[test]
fn s6_bang_is_not_a_prefix_expression() {
    let e = err("local user = {name = \"a\"}\nprint(user!.name)\n");
    assert_eq!((e.code, e.line, e.column), ("P0001", 2, 12), "{e}");
    same(
        "local user = {name = \"a\"}\nprint((user!).name)\n",
        "local user = {name = \"a\"}\nprint((user).name)\n",
    );
}

#[test]
fn s7_labels_are_not_casts() {
    let src = "for i = 1, 3 do\n    local t = {n = i}\n    if i == 2 then goto continue end\n    print(t.n)\n    ::continue::\nend\n";
    assert_eq!(ok(src), src);
    // A label right after an expression ending in `}`.
    let src = "for i = 1, 3 do\n    local t = {n = i}\n    if i == 2 then goto continue end\n    local u = {}\n    ::continue::\nend\n";
    assert_eq!(ok(src), src);
}

#[test]
fn s8_cast_before_a_line_starting_with_paren() {
    let src = "local f = print\nlocal v = f :: any\n(f)(\"called\")\n";
    let out = ok(src);
    assert_eq!(
        out,
        "local f = print\nlocal v = f ;     \n(f)(\"called\")\n"
    );
    for src in [
        "local f = print\nlocal v = f as any\n(f)(\"called\")\n",
        "local f = print\nlocal v = f!\n(f)(\"called\")\n",
        "local f = print\nlocal v = f\ntype X = number\n(f)(\"called\")\n",
    ] {
        let out = ok(src);
        let lua = mlua::Lua::new();
        let calls = std::rc::Rc::new(std::cell::Cell::new(0));
        let c = calls.clone();
        let print = lua
            .create_function(move |_, s: String| {
                assert_eq!(s, "called");
                c.set(c.get() + 1);
                Ok(())
            })
            .expect("a function");
        lua.globals().set("print", print).expect("set");
        lua.load(&out).exec().expect("runs");
        assert_eq!(calls.get(), 1, "{out}");
    }
}

#[test]
fn s9_reserved_words_vs_keys() {
    let e = err("local as = 1");
    assert_eq!((e.code, e.line, e.column), ("P0001", 1, 7), "{e}");
    let src = "local t = {type = \"x\", is = true}\nprint(t.type, t.is, type(t))\n";
    assert_eq!(ok(src), src);
    for w in [
        "interface",
        "as",
        "is",
        "fun",
        "asserts",
        "readonly",
        "typeof",
        "keyof",
        "extends",
    ] {
        let e = err(&format!("local {w} = 1"));
        assert_eq!((e.code, e.column), ("P0001", 7), "{w}: {e}");
        let src = format!(
            "local t = {{{w} = 1}}\nt.{w} = t.{w}\nlocal o = {{}}\nfunction o:{w}() end\no:{w}()\n"
        );
        assert_eq!(ok(&src), src);
    }
}

#[test]
fn s13_locals_shadow_type_meaning_syntax() {
    // The local `string` and the parameter `Point` are not rewritten; the
    // last line's `Point` (a top-level type, no local in scope) is.
    let src = "type Point = {x: number}\nlocal string = {is = function(_, v) return \"mine\", v end}\nprint(string:is(5))\nlocal function check(Point) return Point:is(1) end\nprint(check({is = function() return \"param\" end}))\nprint((Point:is({x = 1})) ~= nil)\n";
    let plain = ";\nlocal string = {is = function(_, v) return \"mine\", v end}\nprint(string:is(5))\nlocal function check(Point) return Point:is(1) end\nprint(check({is = function() return \"param\" end}))\nprint((__warren_types.Point:is({x = 1})) ~= nil)\n";
    let t = tr(src);
    assert!(t.needs_types);
    assert_eq!(norm(&t.lua), norm(plain), "\n--- output ---\n{}", t.lua);
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
}

#[test]
fn s20_unpack_call_is_plain_lua() {
    let src = "print(unpack({1, 2}))\n";
    assert_eq!(ok(src), src);
}

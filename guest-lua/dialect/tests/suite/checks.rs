//! Phase C's value checks (typed-lua.md §3.6, T010–T016): S17, each code
//! with positive cases and negatives (no false positives), diagnostic spans
//! (`end_line`/`end_column`) and the human form (§3.7).

use crate::common::{ok, tr};
use warren_lua_dialect::{Severity, translate};

/// (code, severity, line, column) of each diagnostic.
fn codes(src: &str) -> Vec<(&'static str, Severity, u32, u32)> {
    tr(src)
        .diagnostics
        .iter()
        .map(|d| (d.code, d.severity, d.line, d.column))
        .collect()
}

/// The diagnostics with code `code`: (line, column).
fn at(src: &str, code: &str) -> Vec<(u32, u32)> {
    tr(src)
        .diagnostics
        .iter()
        .filter(|d| d.code == code)
        .map(|d| (d.line, d.column))
        .collect()
}

/// Asserts no diagnostic with a phase C code (T010–T016).
fn none_of_phase_c(src: &str) {
    let t = tr(src);
    let c: Vec<_> = t
        .diagnostics
        .iter()
        .filter(|d| ("T010"..="T016").contains(&d.code))
        .collect();
    assert!(c.is_empty(), "{src}\n{c:#?}");
}

const E: Severity = Severity::Error;
const W: Severity = Severity::Warning;

#[test]
fn s17_literal_mismatch_and_arity() {
    let src = "local function add(a: number, b: number): number\n    return a + b\nend\nlocal n: number = \"ten\"\nlocal s = add(1)\n";
    assert_eq!(codes(src), vec![("T010", E, 4, 19), ("T012", E, 5, 11)]);
    let t = tr(src);
    // The translation is the plain program, with the same lines.
    assert_eq!(
        t.lua,
        "local function add(a        , b        )        \n    return a + b\nend\nlocal n         = \"ten\"\nlocal s = add(1)\n"
    );
    // Spans: `"ten"` (4:19-4:23) and the call `add(1)` (5:11-5:16).
    let d = &t.diagnostics;
    assert_eq!((d[0].end_line, d[0].end_column), (4, 23));
    assert_eq!((d[1].end_line, d[1].end_column), (5, 16));
}

#[test]
fn t010_constant_not_assignable() {
    // An annotated local's initializer.
    assert_eq!(at("local n: number = \"ten\"\n", "T010"), vec![(1, 19)]);
    assert_eq!(at("local s: string = 1\n", "T010"), vec![(1, 19)]);
    assert_eq!(at("local b: boolean = {}\n", "T010"), vec![(1, 20)]);
    assert_eq!(
        at("local n: number = function() end\n", "T010"),
        vec![(1, 19)]
    );
    assert_eq!(at("local i: integer = 1.5\n", "T010"), vec![(1, 20)]);
    assert_eq!(
        at("local l: \"a\" | \"b\" = \"c\"\n", "T010"),
        vec![(1, 22)]
    );
    assert_eq!(
        at("local u: number | string = true\n", "T010"),
        vec![(1, 28)]
    );
    assert_eq!(at("local t: table = 1\n", "T010"), vec![(1, 18)]);
    // An argument to a call of a local typed function.
    assert_eq!(
        at(
            "local function greet(name: string) return name end\ngreet(42)\n",
            "T010"
        ),
        vec![(2, 7)]
    );
    assert_eq!(
        at(
            "local f = function(x: number) return x end\nf \"s\"\n",
            "T010"
        ),
        vec![(2, 3)]
    );
    // A return in a function with declared returns.
    assert_eq!(
        at(
            "local function f(): number\n    return \"oops\"\nend\n",
            "T010"
        ),
        vec![(2, 12)]
    );
    assert_eq!(
        at(
            "local function f(): (number, string)\n    return 1, 2\nend\n",
            "T010"
        ),
        vec![(2, 15)]
    );
    // A field of a constructor assigned to a record-typed local; nested
    // constructors, arrays and maps point at the offending value.
    let src = "type P = {x: number, y: number}\nlocal p: P = {x = 1, y = \"2\"}\n";
    let t = tr(src);
    assert_eq!(t.diagnostics.len(), 1);
    assert_eq!((t.diagnostics[0].line, t.diagnostics[0].column), (2, 26));
    assert!(t.diagnostics[0].message.contains("field `y`"));
    assert_eq!(
        at(
            "type P = {x: number}\nlocal w: {p: P} = {p = {x = true}}\n",
            "T010"
        ),
        vec![(2, 29)]
    );
    assert_eq!(
        at("local a: {number} = {1, 2, \"3\"}\n", "T010"),
        vec![(1, 28)]
    );
    assert_eq!(
        at("local m: {[string]: number} = {a = 1, b = false}\n", "T010"),
        vec![(1, 43)]
    );
    let t = tr("local n: number = \"ten\"\n");
    assert_eq!(t.diagnostics[0].severity, Severity::Error);
    assert_eq!(
        t.diagnostics[0].message,
        "`\"ten\"` is not assignable to `number`"
    );
}

#[test]
fn t010_no_false_positives() {
    // `any`, `unknown`, module types and unresolved names accept anything.
    none_of_phase_c("local a: any = \"x\"\nlocal b: unknown = 1\nlocal c: time.Time = \"x\"\n");
    let t = tr("local d: Strng = 1\n");
    assert_eq!(t.diagnostics.len(), 1);
    assert_eq!(t.diagnostics[0].code, "T001");
    // Optionals and unions.
    none_of_phase_c(
        "local a: number? = 1\nlocal b: number | string = \"x\"\nlocal c: (string | boolean)? = false\nlocal d: \"a\" | \"b\" = \"b\"\n",
    );
    // integer <= number; a float with an integral value may be an integer.
    none_of_phase_c("local a: number = 1\nlocal b: integer = 2.0\nlocal c: number = 0x10\n");
    // Records by width: extra fields and positional entries are fine; a
    // missing field is not reported (the table may be filled in later).
    none_of_phase_c(
        "type P = {x: number, y?: string}\nlocal a: P = {x = 1, z = \"extra\", 4}\nlocal b: P = {}\nlocal c: P = {x = 1, [k] = 2}\nlocal d: P = {x = 1, y = nil}\n",
    );
    // Non-constants, casts and multiple values are not checked.
    none_of_phase_c(
        "local v = 1\nlocal a: string = v\nlocal b: number = \"ten\" :: any\nlocal c: number = (\"ten\" as any)\nlocal d: number, e: string = (function() return 1, \"a\" end)()\nlocal f: number = v and 1\n",
    );
    // Functions against function types: not decided.
    none_of_phase_c("local f: (n: number) -> string = function(x) return x end\n");
    // `error` accepts strings; tables and interfaces are not decided.
    none_of_phase_c(
        "local e: error = \"boom\"\nlocal t: table = {}\nlocal i: interface {close: (self: any) -> ()} = {}\nlocal m: {[string]: number} = {1, 2}\nlocal arr: {number} = {1, nil, 3}\n",
    );
    // A reassigned function, a shadowing local, generic parameters.
    none_of_phase_c(
        "local function f(x: string) return x end\nf = print\nf(1)\nlocal function g<T>(x: T): T return x end\ng(1)\ng(nil)\nlocal function h(x: string) return x end\ndo\n    local h = print\n    h(1)\nend\n",
    );
    // Returns: multiple values from a call, extra values, `any` returns.
    none_of_phase_c(
        "local function f(): number return tonumber(\"1\") end\nlocal function g(): number, string return f() end\nlocal function h(): any return \"x\" end\nlocal function k(): number? return nil end\n",
    );
}

#[test]
fn t011_nil_to_non_optional() {
    assert_eq!(codes("local x: number = nil\n"), vec![("T011", E, 1, 19)]);
    assert_eq!(
        codes("type P = {x: number}\nlocal p: P = {x = nil}\n"),
        vec![("T011", E, 2, 19)]
    );
    assert_eq!(
        codes("local function f(): string\n    return nil\nend\n"),
        vec![("T011", E, 2, 12)]
    );
    assert_eq!(
        codes("local function f(s: string) return s end\nf(nil)\n"),
        vec![("T011", E, 2, 3)]
    );
    // No value at all: a warning, at the name.
    assert_eq!(codes("local x: number\n"), vec![("T011", W, 1, 7)]);
    assert_eq!(
        codes("local a: number, b: string = 1\n"),
        vec![("T011", W, 1, 18)]
    );
}

#[test]
fn t011_no_false_positives() {
    none_of_phase_c(
        "local a: number? = nil\nlocal b: any = nil\nlocal c: number | nil = nil\nlocal d: unknown\nlocal e: string?\nlocal f: nil = nil\n",
    );
    // A trailing call may give the values.
    none_of_phase_c("local a: number, b: string = (function() return 1, \"x\" end)()\n");
    none_of_phase_c("local function f(...: any)\n    local a: number, b: string = ...\nend\n");
    // An optional field may be nil; an unresolved type is not checked.
    none_of_phase_c("type P = {x?: number}\nlocal p: P = {x = nil}\nlocal q: Nope = nil\n");
}

#[test]
fn t012_argument_count() {
    let add = "local function add(a: number, b: number): number return a + b end\n";
    assert_eq!(codes(&format!("{add}add(1)\n")), vec![("T012", E, 2, 1)]);
    assert_eq!(codes(&format!("{add}add()\n")), vec![("T012", E, 2, 1)]);
    assert_eq!(
        codes(&format!("{add}add(1, 2, 3)\n")),
        vec![("T012", E, 2, 1)]
    );
    let t = tr(&format!("{add}add(1, 2, 3)\n"));
    assert!(t.diagnostics[0].message.contains("at most 2"));
    // A required parameter after an optional one.
    assert_eq!(
        codes("local function f(a: number, b: string?, c: boolean) end\nf(1, nil)\n"),
        vec![("T012", E, 2, 1)]
    );
    // `local f = function` counts too.
    assert_eq!(
        codes("local f = function(a: number) return a end\nlocal x = f()\n"),
        vec![("T012", E, 2, 11)]
    );
}

#[test]
fn t012_no_false_positives() {
    let add = "local function add(a: number, b: number): number return a + b end\n";
    // A trailing call or `...` makes the count unknown.
    none_of_phase_c(&format!(
        "{add}add(1, tonumber(\"2\"))\nadd(tonumber(\"1\"))\n"
    ));
    none_of_phase_c(&format!("{add}local function g(...) return add(...) end\n"));
    // A reassigned function, in any way.
    none_of_phase_c(&format!("{add}add = function() return 0 end\nadd(1)\n"));
    none_of_phase_c(&format!("{add}function add() return 0 end\nadd()\n"));
    none_of_phase_c(&format!(
        "{add}local function set() add = print end\nadd(1, 2, 3)\n"
    ));
    // Optional and untyped trailing parameters; varargs.
    none_of_phase_c(
        "local function f(a: number, b: number?, c) end\nf(1)\nlocal function v(a: number, ...) end\nv(1, 2, 3)\nlocal function w(a: number, ...: any) end\nw(1, 2, 3)\n",
    );
    // Untyped functions are not checked; nor is a method call or a field.
    none_of_phase_c(
        "local function u(a, b) end\nu(1)\nu(1, 2, 3)\nlocal t = {f = function(a: number) end}\nt.f()\nt:f(1, 2, 3)\n",
    );
    // A parenthesised call is one value: counted.
    assert_eq!(
        at(&format!("{add}add((tonumber(\"1\")))\n"), "T012"),
        vec![(2, 1)]
    );
}

#[test]
fn t013_missing_return() {
    assert_eq!(
        codes("local function f(): number\nend\n"),
        vec![("T013", W, 1, 16)]
    );
    assert_eq!(
        codes(
            "local t = {}\nfunction t.f(): string\n    local function g() return \"x\" end\nend\n"
        ),
        vec![("T013", W, 2, 10)]
    );
    assert_eq!(
        codes("local f = function(): (boolean, string?) end\n"),
        vec![("T013", W, 1, 11)]
    );
}

#[test]
fn t013_no_false_positives() {
    none_of_phase_c(
        "local function a(): number? end\nlocal function b(): any end\nlocal function c(): () end\nlocal function d(): nil end\nlocal function e(): (string?, number?) end\n",
    );
    none_of_phase_c(
        "local function f(): number error(\"no\") end\nlocal function g(x: any): number if x then return 1 end end\n",
    );
    // `return nil` is a return with a value (T011, not T013).
    assert_eq!(
        codes("local function h(): number return nil end\n"),
        vec![("T011", E, 1, 35)]
    );
    // Unresolved and generic return types; `error` raised in a closure.
    none_of_phase_c(
        "local function f(): Nope end\nlocal function g<T>(): T end\nlocal function h(): never end\nlocal function k(): number pcall(function() error(\"x\") end) end\n",
    );
}

#[test]
fn t014_unknown_field() {
    let p = "type P = {x: number, y?: number}\nlocal p: P = {x = 1}\n";
    assert_eq!(codes(&format!("{p}print(p.z)\n")), vec![("T014", W, 3, 9)]);
    assert_eq!(
        codes(&format!("{p}local function f(q: P) return q.w end\n")),
        vec![("T014", W, 3, 33)]
    );
    let t = tr(&format!("{p}print(p.z)\n"));
    assert_eq!(t.diagnostics[0].message, "type `P` has no field `z`");
}

#[test]
fn t014_no_false_positives() {
    let p = "type P = {x: number, y?: number}\nlocal p: P = {x = 1}\n";
    // Declared fields, optional ones included; writes; methods.
    none_of_phase_c(&format!(
        "{p}print(p.x, p.y)\np.extra = 1\nprint(p[\"z\"])\n"
    ));
    // Not a declared record: inline records, optionals, unions, any,
    // interfaces, module types.
    none_of_phase_c(
        "type P = {x: number}\ninterface I\n    function m(self)\nend\nlocal a: {x: number} = {x = 1}\nlocal b: P? = nil\nlocal c: P | {z: number} = {x = 1}\nlocal d: any = 1\nlocal e: I = {}\nlocal f: mod.T = nil\nprint(a.z, b.z, c.z, d.z, e.z, f.z)\n",
    );
    // A shadowing local of another type.
    none_of_phase_c(&format!("{p}do\n    local p = {{}}\n    print(p.z)\nend\n"));
}

#[test]
fn t015_calling_a_primitive() {
    assert_eq!(codes("local n: number = 1\nn()\n"), vec![("T015", W, 2, 1)]);
    assert_eq!(
        codes("local function f(s: string, b: boolean) s(\"x\") return b{} end\n"),
        vec![("T015", W, 1, 41), ("T015", W, 1, 55)]
    );
}

#[test]
fn t015_no_false_positives() {
    none_of_phase_c(
        "local s: string = \"x\"\nprint(s:upper(), s.len(s))\nlocal cb: (n: number) -> () = print\ncb(1)\nlocal a: any = print\na()\nlocal u: string | (() -> ()) = print\nu()\nlocal o: number? = nil\n",
    );
    // A local of the same name that is not annotated.
    none_of_phase_c("local n: number = 1\ndo\n    local n = print\n    n()\nend\n");
}

#[test]
fn t016_arithmetic_on_literals() {
    assert_eq!(codes("local a = 1 + nil\n"), vec![("T016", W, 1, 15)]);
    assert_eq!(codes("local b = true * 2\n"), vec![("T016", W, 1, 11)]);
    assert_eq!(
        codes("local c = \"hello\" + 42\n"),
        vec![("T016", W, 1, 11)]
    );
    assert_eq!(codes("local d = -\"x1\"\n"), vec![("T016", W, 1, 12)]);
    assert_eq!(codes("local e = 2 ^ (false)\n"), vec![("T016", W, 1, 16)]);
}

#[test]
fn t016_no_false_positives() {
    // Numeric strings convert; `..`, comparisons and logic are no
    // arithmetic; non-literals are not checked.
    none_of_phase_c(
        "local a = \"10\" + 1\nlocal b = \"0x10\" * 2\nlocal c = \" 1.5 \" - 1\nlocal d = \"1e3\" // 1\nlocal e = \"a\" .. 1\nlocal f = nil == 1\nlocal g = not nil\nlocal x\nlocal h = (x or 1) + 1\nlocal i = (\"ten\" as any) + 1\nlocal j = #\"abc\" + 1\n",
    );
}

#[test]
fn diagnostics_are_sorted_and_keep_the_translation() {
    let src = "local x = true + 1\nlocal n: number = \"ten\"\nlocal function f(): string end\n";
    let t = tr(src);
    let pos: Vec<(u32, u32)> = t.diagnostics.iter().map(|d| (d.line, d.column)).collect();
    let mut sorted = pos.clone();
    sorted.sort_unstable();
    assert_eq!(pos, sorted);
    assert_eq!(t.diagnostics.len(), 3);
    // The same text as a program without the checks' findings would give.
    assert_eq!(
        t.lua,
        "local x = true + 1\nlocal n         = \"ten\"\nlocal function f()         end\n"
    );
    // A plain chunk is unchanged and has no diagnostics.
    let plain = "local t = {a = 1}\nprint(t.a + 1)\n";
    assert_eq!(ok(plain), plain);
    assert!(translate(plain).expect("ok").diagnostics.is_empty());
}

#[test]
fn spans_end_line_and_column() {
    // T001: the name.
    let t = tr("local function f(x: Strng): number return 1 end\n");
    let d = &t.diagnostics[0];
    assert_eq!((d.line, d.column, d.end_line, d.end_column), (1, 21, 1, 25));
    // A constructor over several lines.
    let t = tr("local b: boolean = {\n  1,\n}\n");
    let d = &t.diagnostics[0];
    assert_eq!((d.line, d.column, d.end_line, d.end_column), (1, 20, 3, 1));
    // P codes: the offending token.
    let e = crate::common::err("x = = 1\n");
    assert_eq!((e.line, e.column, e.end_line, e.end_column), (1, 5, 1, 5));
    let e = crate::common::err("local x = 1 local y 42\n");
    assert_eq!((e.line, e.column, e.end_line, e.end_column), (1, 21, 1, 22));
    // T007: the name; T051: `typeof`.
    let t = tr("local function f(v)\n    type Local = {x: number}\n    return Local:is(v)\nend\n");
    let d = &t.diagnostics[0];
    assert_eq!(
        (d.code, d.line, d.column, d.end_column),
        ("T007", 3, 12, 16)
    );
    // T050: the qualified name.
    let t = tr("local t: time.Time = nil\n");
    let d = &t.diagnostics[0];
    assert_eq!((d.code, d.column, d.end_column), ("T050", 10, 18));
    let t = tr("type S = typeof(print)\n");
    let d = &t.diagnostics[0];
    assert_eq!((d.code, d.column, d.end_column), ("T051", 10, 15));
}

#[test]
fn a_diagnostic_on_a_long_line_shows_a_bounded_cut_of_it() {
    // Thousands of diagnostics on one line each printed the whole line:
    // a 174 KB source made 1 GB of output. The cut keeps the span's start
    // and its carets in place, marked with an ellipsis on each cut side.
    let pad = "a = 1 ".repeat(200);
    let src = format!("{pad}local function f(x: Strng) end {pad}\n");
    let t = tr(&src);
    let d = &t.diagnostics[0];
    assert_eq!(d.code, "T001");
    let out = d.render("f.lua", &src);
    let shown = out.lines().nth(3).expect("the source line");
    assert!(
        shown.len() <= 4 + 2 * 3 + 240,
        "{} bytes shown",
        shown.len()
    );
    assert!(
        shown.starts_with("1 | …") && shown.ends_with('…'),
        "{shown}"
    );
    let carets = out.lines().nth(4).expect("the carets");
    let at = |line: &str, what: &str| line.find(what).expect(what);
    // Both lines start with the gutter `1 | ` / `  | `; the ellipsis is one
    // character of three bytes, drawn as one space under it.
    assert_eq!(
        shown[..at(shown, "Strng")].chars().count(),
        carets[..at(carets, "^^^^^")].chars().count(),
        "{shown}\n{carets}"
    );
    for n in [1usize, 5_000] {
        let many = "function g(y: Unk) end ".repeat(n);
        let t = tr(&many);
        let longest = t
            .diagnostics
            .iter()
            .map(|d| d.render("m.lua", &many).len())
            .max()
            .expect("diagnostics");
        assert!(
            longest < 400,
            "{n} diagnostics: a render of {longest} bytes"
        );
    }
}

#[test]
fn render_human_and_short_forms() {
    let src = "local function f(x: Strng): number return 1 end\nprint(f(\"a\"))\n";
    let t = tr(src);
    let d = &t.diagnostics[0];
    assert_eq!(
        d.render("app/src/f.lua", src),
        "error[T001]: unknown type `Strng`\n --> app/src/f.lua:1:21\n  |\n1 | local function f(x: Strng): number return 1 end\n  |                     ^^^^^"
    );
    assert_eq!(
        d.short("app/src/f.lua"),
        "app/src/f.lua:1:21: error[T001]: unknown type `Strng`"
    );
    // `Display` is unchanged.
    assert_eq!(d.to_string(), "1:21: unknown type `Strng` [T001]");
    // A warning on line 10: the gutter widens; a span over several lines
    // is underlined to the end of its first line; tabs are kept.
    let src = format!("{}local f: number =\t{{\n  1,\n}}\n", "\n".repeat(9));
    let t = tr(&src);
    assert_eq!(
        t.diagnostics[0].render("f.lua", &src),
        "error[T010]: this table is not assignable to `number`\n  --> f.lua:10:19\n   |\n10 | local f: number =\t{\n   |                  \t^"
    );
    let src = "local x: number\n";
    let t = tr(src);
    assert_eq!(
        t.diagnostics[0].render("w.lua", src),
        "warning[T011]: local `x` gets no value, so it is nil, but its type `number` does not allow nil\n --> w.lua:1:7\n  |\n1 | local x: number\n  |       ^"
    );
    // A syntax error renders the same way.
    let src = "x = = 1\n";
    let e = crate::common::err(src);
    assert_eq!(
        e.render("s.lua", src),
        "error[P0001]: unexpected symbol near '=' \n --> s.lua:1:5\n  |\n1 | x = = 1\n  |     ^"
            .replace("'=' \n", "'='\n")
    );
}

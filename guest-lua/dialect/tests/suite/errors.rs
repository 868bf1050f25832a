//! Known-bad inputs fail with the right code, position and key words; the
//! limits give P0002/P0003/P0004.

use crate::common::err;
use warren_lua_dialect::{MAX_NESTING, MAX_SOURCE_BYTES, translate};

/// (source, line, column, words the message contains).
const BAD: &[(&str, u32, u32, &str)] = &[
    ("local x = = 1", 1, 11, "unexpected symbol near '='"),
    ("x = ", 1, 5, "unexpected symbol near <eof>"),
    (
        "local function f()\n  return 1\n",
        3,
        1,
        "'end' expected (to close 'function' at line 1) near <eof>",
    ),
    (
        "if x then\n",
        2,
        1,
        "'end' expected (to close 'if' at line 1)",
    ),
    ("if x print(1) end", 1, 6, "'then' expected near 'print'"),
    ("for i do end", 1, 7, "'=' or 'in' expected"),
    ("x = \"abc\nprint(1)", 1, 5, "unfinished string"),
    ("x = [[abc", 1, 5, "unfinished long string"),
    ("--[[ never closed", 1, 1, "unfinished long comment"),
    ("x = '\\q'", 1, 5, "invalid escape sequence"),
    ("x = '\\300'", 1, 5, "decimal escape too large"),
    ("x = 3x", 1, 5, "malformed number near '3x'"),
    ("x = 0x", 1, 5, "malformed number"),
    ("x = 1e", 1, 5, "malformed number"),
    ("x = [=x", 1, 5, "invalid long string delimiter"),
    ("x = $", 1, 5, "unexpected symbol near '$'"),
    ("f() = 1", 1, 5, "syntax error"),
    ("x", 1, 2, "syntax error near <eof>"),
    ("return 1 print(2)", 1, 10, "<eof> expected near 'print'"),
    (
        "local function f() return 1 x = 2 end",
        1,
        29,
        "'end' expected near 'x'",
    ),
    ("local as = 1", 1, 7, "<name> expected near 'as'"),
    (
        "local function is() end",
        1,
        16,
        "<name> expected near 'is'",
    ),
    ("t.end = 1", 1, 3, "<name> expected near 'end'"),
    ("local x: number< = 42", 1, 18, "expected a type, found '='"),
    ("local x: = 1", 1, 10, "expected a type, found '='"),
    ("local x: {a: } = 1", 1, 14, "expected a type, found '}'"),
    ("local x: Map<string = {}", 1, 21, "expected '>', found '='"),
    ("local user = {}\nprint(user!.name)", 2, 12, "near '.'"),
    (
        "local f: (a: number) = nil",
        1,
        22,
        "expected '->', found '='",
    ),
    ("type X = ", 1, 10, "expected a type, found <eof>"),
    (
        "interface I\n  function m(self)\n",
        3,
        1,
        "'function' or 'end'",
    ),
    (
        "goto nowhere",
        1,
        1,
        "no visible label 'nowhere' for <goto>",
    ),
    ("break", 1, 1, "break outside a loop"),
    (
        "do goto l; local a = 1; ::l:: print(a) end",
        1,
        4,
        "jumps into the scope of local 'a'",
    ),
    ("::a:: ::a::", 1, 1, "label 'a' already defined on line 1"),
    // A label of an inner block resolves none of an outer block's gotos.
    (
        "do goto a do ::a:: end end",
        1,
        4,
        "no visible label 'a' for <goto>",
    ),
    (
        "local function f() return ... end",
        1,
        27,
        "cannot use '...' outside a vararg function",
    ),
    (
        "local x <const> = 1\nx = 2",
        2,
        3,
        "attempt to assign to const variable 'x'",
    ),
    ("local x <foo> = 1", 1, 15, "unknown attribute 'foo'"),
    (
        "local a <close>, b <close> = nil, nil",
        1,
        28,
        "multiple to-be-closed variables",
    ),
    ("x = a as", 1, 9, "expected a type, found <eof>"),
    ("x = a :: ", 1, 10, "expected a type, found <eof>"),
    (
        "local f = function<>() end",
        1,
        20,
        "expected a type parameter name, found '>'",
    ),
    (
        "local x: {[string] number} = {}",
        1,
        20,
        "expected ':', found 'number'",
    ),
    ("print(a!b)", 1, 9, "')' expected near 'b'"),
    ("local x = (a as T).b.c!.d", 1, 24, "near '.'"),
];

#[test]
fn known_bad_inputs() {
    for &(src, line, col, words) in BAD {
        let e = err(src);
        assert_eq!(e.code, "P0001", "{src:?}: {e}");
        assert_eq!((e.line, e.column), (line, col), "{src:?}: {e}");
        assert!(e.message.contains(words), "{src:?}: {e} lacks {words:?}");
    }
}

#[test]
fn display_form() {
    let e = err("local x = = 1");
    assert_eq!(e.to_string(), "1:11: unexpected symbol near '=' [P0001]");
}

#[test]
fn luac_agrees_that_bad_inputs_are_bad() {
    // The plain-Lua half of the list (no type syntax) must fail in mlua too.
    for &(src, ..) in BAD.iter().take(20) {
        assert!(crate::common::compiles(src).is_err(), "{src:?}");
    }
}

fn nested(n: usize, open: &str, mid: &str, close: &str) -> String {
    format!("{}{mid}{}", open.repeat(n), close.repeat(n))
}

#[test]
fn nesting_limit_gives_p0002() {
    let shapes = [
        ("x = ", "(", "1", ")"),
        ("", "do ", "", "end "),
        ("", "if x then ", "", "end "),
        ("", "local f = function() ", "", "end "),
        ("x = ", "{", "", "}"),
        ("x = ", "- ", "1", ""),
        ("x = a", " .. a", "", ""),
        ("local t: ", "{", "number", "}"),
        ("local t: ", "Box<", "number", ">"),
        ("local t: ", "(", "number", ")"),
        ("x = a", " as T", "", ""),
    ];
    for (prefix, open, mid, close) in shapes {
        let small = format!("{prefix}{}", nested(20, open, mid, close));
        assert!(translate(&small).is_ok(), "{small}");
        for n in [MAX_NESTING, MAX_NESTING + 1, 10_000, 200_000] {
            let src = format!("{prefix}{}", nested(n, open, mid, close));
            match translate(&src) {
                Err(e) if e.code == "P0002" => {}
                // A flat chain of casts never nests.
                Ok(_) if open == " as T" => {}
                other => panic!("{prefix}{open}×{n}: {other:?}"),
            }
        }
    }
}

#[test]
fn accepted_nesting_compiles_in_lua() {
    // Just under the limit: whatever the front-end accepts, Lua compiles.
    for n in 150..=MAX_NESTING {
        for src in [
            format!("x = {}", nested(n, "(", "1", ")")),
            nested(n, "do ", "", "end "),
            format!("x = {}", nested(n, "{", "", "}")),
            nested(n, "while x do ", "", "end "),
        ] {
            if let Ok(t) = translate(&src) {
                crate::common::compiles(&t.lua).unwrap_or_else(|e| panic!("{n}: {e}"));
            }
        }
    }
}

#[test]
fn size_limit_gives_p0003() {
    let big = " ".repeat(MAX_SOURCE_BYTES + 1);
    assert_eq!(translate(&big).expect_err("too big").code, "P0003");
    let edge = format!("{}x = 1", " ".repeat(MAX_SOURCE_BYTES - 5));
    assert!(translate(&edge).is_ok());
}

#[test]
fn reserved_name_gives_p0004() {
    for src in [
        "local __warren_types = 1",
        "print(__warren_types)",
        "x = 1\nlocal t = a.__warren_types",
    ] {
        let e = err(src);
        assert_eq!(e.code, "P0004", "{src}: {e}");
    }
    let e = err("local x = 1\n  __warren_types = 2");
    assert_eq!((e.line, e.column), (2, 3));
    // Inside a string it is just text.
    assert!(translate("print('__warren_types')").is_ok());
}

#[test]
fn label_and_goto_scans_are_bounded() {
    // Each goto scans the visible labels and each label the pending
    // gotos: 6,000 of each in one function compare 36 million pairs, which
    // is refused, named, instead of held the worker in one call.
    let labels: String = (0..6000).map(|i| format!("::l{i}:: f() ")).collect();
    let gotos: String = (0..6000).map(|i| format!("goto l{i} ")).collect();
    let e = err(&format!("do {labels}{gotos} end"));
    assert!(
        e.message.contains("too many labels and gotos"),
        "{}",
        e.message
    );
    // 150,000 breaks in one loop are one scan when the loop ends.
    let breaks = "break ".repeat(150_000);
    assert!(translate(&format!("while true do {breaks} end")).is_ok());
    // A thousand labels and their gotos are code, and compile.
    let labels: String = (0..1000).map(|i| format!("::l{i}:: f() ")).collect();
    let gotos: String = (0..1000).map(|i| format!("goto l{i} ")).collect();
    assert!(translate(&format!("do {gotos}{labels} end")).is_ok());
}

#[test]
fn an_interface_merges_each_base_once() {
    // `interface I : R, R, ...` over a record of 40,000 fields scanned
    // every field kept so far for every field of every base (26 s in one
    // call for ten bases); each base is merged once now, its fields
    // looked up in a set and charged to the chunk's budget.
    let fields: Vec<String> = (0..40_000).map(|i| format!("f{i}: number")).collect();
    let src = format!(
        "type R = {{{}}}\ninterface I : R{} end\nreturn 1",
        fields.join(", "),
        ", R".repeat(1000)
    );
    let t = translate(&src).expect("the interface translates");
    assert!(t.lua.contains("return 1"));
}

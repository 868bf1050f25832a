//! Hand-written corpora: typed sources covering every construct of §1.2
//! translate (same length and lines, mlua compiles the output), and plain
//! Lua 5.4 translates to itself byte for byte.

use crate::common::{ok, same};

/// Typed sources, one construct family each (written for these tests).
const TYPED: &[&str] = &[
    // Generics with bounds, `>>` closing two lists, `>=` split.
    "local function id<T>(x: T): T return x end\nlocal function keep<K: string, V: {K}>(k: K, v: V): V return v end\nlocal m: Map<string, List<number>> = {}\nlocal n: Box<Box<integer>>= {}\nlocal f = function<T>(a: T): T return a end\nlocal t = {}\nfunction t.f<T>(x: T) return x end\nfunction t:g<A, B>(a: A, b: B): (A, B) return a, b end\n",
    // Function types, new and old style.
    "local apply: (f: (number) -> number, x: number) -> number = nil\nlocal cb: ((string, ...any) -> ())? = nil\nlocal two: () -> (integer, string) = nil\nlocal old: fun(a: string, b: number): boolean = nil\nlocal old2: fun(): (string, number)? = nil\nlocal old3: fun() = nil\nlocal nested: (a: (x: integer) -> string) -> (y: string) -> integer = nil\nlocal function hof(f: (integer) -> integer): (integer) -> integer return f end\n",
    // readonly, interface types and statements.
    "local a: readonly {number} = {1}\nlocal b: readonly {[string]: integer} = {}\nlocal c: readonly {x: number, y?: number} = {x = 1}\nlocal d: interface {close: (self: any) -> ()} = nil\ninterface Reader\n    function read(self, n: integer): string?\n    function close(self)\nend\ninterface Stream: Reader, io.Writer\n    function seek(self, whence: string, offset: integer): integer, string?\nend\nlocal e = 1\n",
    // keyof / typeof / extends ? :, asserts.
    "type P = {x: number, y: number}\ntype K = keyof(P)\nlocal sample = {a = 1}\ntype S = typeof(sample)\ntype F<T> = T extends string ? \"s\" : \"o\"\ntype G<T> = T extends string? ? T : nil\nlocal function is_str(x: any): asserts x is string assert(type(x) == \"string\") end\nlocal function check(x: any): asserts x assert(x) end\n",
    // Validators, arrays `T[]`, maps, optional fields, literal types.
    "type Profile = {\n    age: number @min(0) @max(120),\n    name: string @min_len(1),\n    email?: string @pattern(\"^.+@.+$\"),\n    tags: string[],\n    grid: integer[][],\n    lookup: {[string]: boolean},\n    kind: \"a\" | \"b\" | 3 | 1.5 | true | false | nil,\n}\nlocal xs: Profile[]? = {}\nlocal idx: Profile[\"age\"] = 1\n",
    // Bare multi-return, `...: T`, paren returns, unions and intersections.
    "local function f(...: string): string?, string?\n    return ...\nend\nlocal function g(a: integer, ...: any): (integer, string)\n    return a, \"x\"\nend\nlocal function h(): ()\nend\nlocal u: A | B & C | {x: number} = nil\nlocal q: mod.Type = nil\nlocal r: mod.Gen<integer>? = nil\nlocal e: {} = {}\nlocal arr: {string} = {}\nlocal rec: {type: string, as: integer, is?: boolean} = {type = \"x\"}\n",
    // Casts, both spellings, and `!`, in many positions.
    "local raw: any = {count = \"7\", list = {1}}\nlocal n = raw.count :: number\nlocal m = (raw as {count: string}).count\nlocal s = (m!) .. \"!\"\nlocal k = #(raw.list as {integer}) + raw.count :: integer\nlocal t = {a = raw :: any, raw as any, [1] = raw!}\nlocal v = f and g(raw :: {string}, raw as (integer) -> ())\nlocal w = -raw.count :: number\nlocal z = (raw!)\n",
    // Type declarations in nested blocks, generic type decls, labels.
    "local function outer()\n    type Local = {v: integer}\n    type Pair<A, B: Local> = {a: A, b: B}\n    for i = 1, 2 do\n        local x: Local = {v = i}\n        if x.v == 1 then goto continue end\n        ::continue::\n    end\nend\nlocal t = {}\n::top::\n",
    // Annotations spanning lines, comments inside types.
    "local x: {\n    a: integer, -- the a\n    b: string --[[ the b ]],\n} = {a = 1, b = \"\"}\nlocal function f(\n    a: integer,\n    b: {[string]: --[==[ long ]==] number}\n): (\n    integer,\n    string\n)\n    return 1, \"\"\nend\n",
    // `type` as a name where it is no declaration.
    "local type_ = type\nprint(type(1))\nlocal t = {type = 1}\nt.type = 2\nlocal type = t.type\ntype = 3\n",
    // Method declarations and interface-like tables.
    "local Account = {}\nAccount.__index = Account\nfunction Account.new(balance: number): Account\n    return setmetatable({balance = balance}, Account)\nend\nfunction Account:deposit(v: number): ()\n    self.balance = self.balance + v\nend\nreturn Account\n",
];

#[test]
fn typed_corpus_translates_and_compiles() {
    for src in TYPED {
        ok(src);
    }
}

#[test]
fn typed_corpus_runs() {
    let src = "type Job = {id: integer}\nlocal function twice<T>(x: T, f: (T) -> T): T\n    return f(f(x))\nend\nlocal n: integer = twice(3, function(v: integer): integer return v * 2 end)\nlocal j = ({id = n} :: Job).id\nreturn j!\n";
    let out = ok(src);
    let lua = mlua::Lua::new();
    let v: i64 = lua.load(&out).eval().expect("runs");
    assert_eq!(v, 12);
}

#[test]
fn hand_stripped_equivalents() {
    same(
        "local function f<T: {x: number}>(a: T, ...: any): T?, string\n    return a, \"\"\nend\n",
        "local function f(a, ...)\n    return a, \"\"\nend\n",
    );
    same(
        "interface Shape\n    function area(self): number\nend\nlocal s = 1\n",
        ";\n\n\nlocal s = 1\n",
    );
    same(
        "local m: Map<string, List<number>> = {}\n",
        "local m = {}\n",
    );
}

/// Plain Lua 5.4 (no type syntax) must come back byte for byte.
const PLAIN: &[&str] = &[
    "local a, b = 7 // 2, 7 % 3\nlocal c = 2 ^ 10 .. \"x\" .. 1.5e3 .. 0x10 .. 0xA.8p1 .. .5 .. 3.\nlocal d = (a & b) | (a ~ b) << 2 >> 1 ~ ~a\nlocal e = not (a == b) and a ~= b or a <= b and a >= b and a < b and a > b\nlocal f = #\"abc\" + -a - - -b\n",
    "for i = 1, 10, 2 do\n  if i == 3 then goto skip end\n  print(i)\n  ::skip::\nend\ndo\n  goto done\n  print(\"never\")\n  ::done::\nend\nwhile true do break end\nrepeat local x = 1 until x == 1\n",
    "local s = [[\nlong\nstring]] .. [==[with ]] inside]==] .. '\\x41\\z\n      \\u{48}\\65\\n\\t\\\\\\'' .. \"\\\"\"\n--[[ long\ncomment ]] local t = 1 --[==[ another\n]==]\n-- line comment\n",
    "local function outer(...)\n  local n = select('#', ...)\n  local function inner(a, ...)\n    return function(...) return a, ... end\n  end\n  return inner(n, ...)(...)\nend\nlocal obj = {v = 1}\nfunction obj:get() return self.v end\nfunction obj.static(x) return x end\nprint(obj:get(), obj.static(2), outer(1, 2, 3))\nprint \"s\" print {1} obj:get {} (print)(\"x\")\n",
    "local x <const> = 10\nlocal y <close> = nil\nlocal a <const>, b = 1, 2\nlocal t = {[1] = 1, x = 2, 3; 4,}\nt.x, t[1] = t[1], t.x\nlocal function f() return end\nlocal function g() return; end\nreturn f, g\n",
    "if a then elseif b then else end\nfor k, v in pairs({}) do end\nlocal s = 'a' .. \"b\" .. [[c]]\nlocal z = a and b or c\n;;;\nlocal q = {f = function(self) return self end}\nq:f():f()\nlocal n = 9007199254740993 + 0xffffffffffffffff + 1e308 * 10\n",
    "#!not a shebang in load()\n",
];

#[test]
fn plain_lua_is_unchanged() {
    for src in PLAIN {
        if src.starts_with("#!") {
            continue;
        }
        assert_eq!(ok(src), *src);
    }
}

#[test]
fn crlf_lines_are_kept() {
    let src =
        "local x: integer = 1\r\nlocal function f(a: string): string\r\n  return a\r\nend\r\n";
    let out = ok(src);
    assert_eq!(out.matches("\r\n").count(), 4);
}

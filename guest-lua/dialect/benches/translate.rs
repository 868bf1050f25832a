//! Translation speed (§3.10: at most 2 ms per 1,000 lines): a generated
//! corpus of ~1,000 lines of typed Lua using every construct of §1.2.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::fmt::Write as _;
use std::hint::black_box;

/// About 1,000 lines: 37 blocks of 27 lines.
fn corpus() -> String {
    let mut s = String::new();
    for i in 0..37 {
        let _ = write!(
            s,
            r#"do
type Rec{i} = {{id: integer @min(0), name?: string, tags: string[], m: {{[string]: number}}}}
type Gen{i}<T, U: {{T}}> = {{a: T, b: U, f: (x: T, ...any) -> (U, string?)}}
interface Shape{i}
    function area(self): number
end
type Cond{i}<T> = T extends string ? "s" | 1 : readonly {{T}}
local function make{i}<T>(x: T, ...: any): Rec{i}?, string?
    local r: Rec{i} = {{id = {i}, tags = {{}}, m = {{}}}}
    local v = (x as any) :: table
    local w = (r!).id + #r.tags // 2
    for k = 1, 3 do
        if k == 2 then goto continue end
        w = w + k << 1
        ::continue::
    end
    return r, nil
end
local cb{i}: fun(a: string): boolean = function(a: string): boolean return a ~= "" end
local map{i}: Map<string, List<number>> = {{}}
local function check{i}(x: any): asserts x is string
    assert(type(x) == "string", "want string")
end
local t{i} = {{type = "x", is = true, [1] = make{i}(1)}}
t{i}.type = type and "y" or t{i}.type
-- a comment line with: fake :: casts and <generics>
local s{i} = [[long string with -- and :: inside]] .. '\x41\u{{48}}'
local k{i}: keyof(Rec{i}) = "id"
print(t{i}.is, s{i}, k{i}, cb{i}("z"))
end
"#
        );
    }
    s
}

fn bench(c: &mut Criterion) {
    let src = corpus();
    let lines = src.lines().count();
    if let Err(e) = warren_lua_dialect::translate(&src) {
        panic!("the corpus must translate: {e}");
    }
    let mut g = c.benchmark_group("dialect");
    g.throughput(Throughput::Bytes(src.len() as u64));
    g.bench_function(format!("translate_{lines}_lines"), |b| {
        b.iter(|| warren_lua_dialect::translate(black_box(&src)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

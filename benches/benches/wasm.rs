//! WebAssembly processes through the whole runtime: how many blocked
//! components fit and what each costs (resident set, memory mappings),
//! spawn → run → exit, and one-way messages Lua → WASM and WASM → Lua.

use criterion::Throughput;
use warren_benches::wasm;

mod common;

#[global_allocator]
static ALLOCATOR: warren_benches::Allocator = warren_benches::Allocator {};

/// How many blocked components the memory probe keeps alive at once.
const BLOCKED: usize = 10_000;

fn main() {
    warren_alloc::configure();
    warren_benches::memory::child_main();
    let b = wasm::blocked(BLOCKED);
    println!(
        "wasm/blocked: {} of {BLOCKED} components alive and waiting; {} bytes of RSS and {:.2} memory mappings each ({} mappings in all, limit {})",
        b.alive, b.bytes_each, b.maps_each, b.maps_total, b.maps_cap
    );
    let mut c = common::criterion(10);
    let rt = wasm::runtime();
    let mut group = c.benchmark_group("wasm");
    group.throughput(Throughput::Elements(1));
    group.bench_function("spawn_run_exit", |b| {
        b.iter_custom(|iters| wasm::spawn_run_exit(&rt, iters));
    });
    group.bench_function("lua_to_wasm_one_way", |b| {
        b.iter_custom(|iters| wasm::lua_to_wasm(&rt, iters));
    });
    group.bench_function("wasm_to_lua_one_way", |b| {
        b.iter_custom(|iters| wasm::wasm_to_lua(&rt, iters));
    });
    group.finish();
    c.final_summary();
}

//! Spawning Lua processes through the scheduler, until each waits on its
//! inbox: a precompiled entry (warm; the throughput is its inverse) and
//! entries never spawned before (cold, compiled on first spawn).

use std::time::Duration;

use criterion::Throughput;
use warren_benches::lua;

mod common;

#[global_allocator]
static ALLOCATOR: warren_benches::Allocator = warren_benches::Allocator {};

/// Children per driver run: bounds the memory a long measurement holds.
const BATCH: u64 = 2_000;

/// Runs `f` over `iters` in batches of at most [`BATCH`].
fn batched(iters: u64, mut f: impl FnMut(u64) -> Duration) -> Duration {
    let mut left = iters.max(1);
    let mut total = Duration::ZERO;
    while left > 0 {
        let n = left.min(BATCH);
        total += f(n);
        left -= n;
    }
    total
}

fn main() {
    warren_alloc::configure();
    let mut c = common::criterion(20);
    let rt = lua::runtime(1);
    let mut group = c.benchmark_group("lua_spawn");
    group.throughput(Throughput::Elements(1));
    group.bench_function("warm", |b| {
        b.iter_custom(|iters| batched(iters, |n| lua::spawn_warm(&rt, n)));
    });
    group.bench_function("cold", |b| {
        b.iter_custom(|iters| batched(iters, |n| lua::spawn_cold(&rt, n)));
    });
    group.finish();
    c.final_summary();
}

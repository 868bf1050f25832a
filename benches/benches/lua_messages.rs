//! Messages between Lua processes: one sender to one receiver on one
//! worker, and many sender/receiver pairs on one worker and on two (the
//! two-core scaling is the ratio of their throughputs).

use criterion::Throughput;
use warren_benches::lua;

mod common;

#[global_allocator]
static ALLOCATOR: warren_benches::Allocator = warren_benches::Allocator {};

/// Sender/receiver pairs of the scaling benches.
const PAIRS: u64 = 8;

fn main() {
    warren_alloc::configure();
    let mut c = common::criterion(20);
    let one = lua::runtime(1);
    let two = lua::runtime(2);
    let mut group = c.benchmark_group("lua_messages");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_way", |b| {
        b.iter_custom(|iters| lua::one_way(&one, iters));
    });
    for (name, rt) in [("pairs_one_worker", &one), ("pairs_two_workers", &two)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| lua::pairs(rt, PAIRS, iters.div_ceil(PAIRS)));
        });
    }
    group.finish();
    c.final_summary();
}

//! Coroutine switches inside one process, all timed in the same run: a
//! plain coroutine resume+yield, a channel receive that blocks and is
//! resumed, and an unbuffered channel ping-pong between two coroutines.

use std::time::Duration;

use criterion::Throughput;
use warren_benches::lua::{self, Switches};

mod common;

#[global_allocator]
static ALLOCATOR: warren_benches::Allocator = warren_benches::Allocator {};

/// Which of the switch timings a bench reports.
type Pick = fn(&Switches) -> Duration;

fn main() {
    warren_alloc::configure();
    let mut c = common::criterion(20);
    let rt = lua::runtime(1);
    let mut group = c.benchmark_group("lua_channels");
    group.throughput(Throughput::Elements(1));
    let cases: [(&str, Pick); 3] = [
        ("coroutine_resume_yield", |s| s.bare),
        ("blocked_receive", |s| s.blocked),
        ("unbuffered_ping_pong", |s| s.round_trip),
    ];
    for (name, pick) in cases {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| pick(&lua::switches(&rt, iters)));
        });
    }
    group.finish();
    c.final_summary();
}

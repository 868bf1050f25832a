//! Lua processes through the whole runtime: spawn until the child waits on
//! its inbox, one-way messages between two processes, and idle memory.

use std::time::Duration;

use criterion::{Criterion, Throughput};
use warren_benches::{HOST, measure, rss_bytes, runtime};
use warren_core::SpawnRequest;

#[global_allocator]
static ALLOCATOR: warren_benches::Allocator = warren_benches::Allocator {};

/// Children spawned per driver run.
const BATCH: u64 = 2_000;

fn spawn(c: &mut Criterion) {
    let rt = runtime(1);
    let mut group = c.benchmark_group("lua");
    group.throughput(Throughput::Elements(1));
    group.bench_function("spawn_until_waiting", |b| {
        b.iter_custom(|iters| {
            let mut left = iters;
            let mut total = Duration::ZERO;
            while left > 0 {
                let n = left.min(BATCH);
                total += measure(&rt, "bench:spawner", i64::try_from(n).unwrap_or(1));
                left -= n;
            }
            total
        });
    });
    group.bench_function("one_way_message", |b| {
        b.iter_custom(|iters| {
            let n = i64::try_from(iters.max(1)).unwrap_or(i64::MAX);
            measure(&rt, "bench:sender", n)
        });
    });
    group.finish();
}

/// Resident-set growth per idle process, the way an operator sees it.
fn idle_memory() {
    const N: usize = 20_000;
    let rt = runtime(1);
    // Warm the VM (kernel, compiled entry) before the baseline.
    let pids: Vec<_> = (0..100)
        .map(|_| rt.spawn(SpawnRequest::new("bench:idle", HOST, vec![])))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_bytes();
    for _ in 0..N {
        rt.spawn(SpawnRequest::new("bench:idle", HOST, vec![]))
            .expect("spawn");
    }
    while rt.live_processes() < N + pids.len() {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_bytes();
    let per = (after.saturating_sub(before)) / N as u64;
    println!(
        "lua/idle_memory: {per} bytes of RSS per idle process ({N} processes, +{} KiB)",
        (after - before) / 1024
    );
}

fn main() {
    idle_memory();
    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    spawn(&mut c);
    c.final_summary();
}

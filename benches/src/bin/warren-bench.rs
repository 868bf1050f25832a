//! `warren-bench`: a short run of every benchmark scenario, printed as the
//! goals table of `shared/spec/performance.md` with a measured column.

use std::time::Instant;

use warren_benches::goals::{Sizes, measure, table};

#[global_allocator]
static ALLOCATOR: warren_benches::Allocator = warren_benches::Allocator {};

fn main() {
    warren_benches::memory::child_main();
    let started = Instant::now();
    eprintln!(
        "warren-bench: measuring every goal (about a minute; timings are the best of 3 runs)"
    );
    let rows = measure(Sizes::QUICK);
    print!("{}", table(&rows));
    let met = rows.iter().filter(|r| r.met).count();
    println!(
        "\n{met} of {} goals met; measured in {:.0} s on {} cores.",
        rows.len(),
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    );
}

//! `warren-bench`: a short run of every benchmark scenario, printed as the
//! goals table of `shared/spec/performance.md` and issue #17 with a
//! measured column; `--peers` measures BEAM and Go in the same run,
//! `--whole` adds the whole-program scenarios (Skynet, the thread ring, the
//! fan-out, Savina Big; minutes), and `scenario` times one of those alone.

use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use warren_benches::goals::{Sizes, human, measure, table};
use warren_benches::peers::Peers;
use warren_benches::{lua, scale};

#[global_allocator]
static ALLOCATOR: warren_benches::Allocator = warren_benches::Allocator {};

#[derive(Parser)]
#[command(about = "Measures Warren against its performance goals")]
struct Args {
    /// Also run the same scenarios on BEAM (escript) and Go, when installed.
    #[arg(long)]
    peers: bool,
    /// Also run Skynet 1M, a 503-process thread ring, a 10,000 × 100
    /// fan-out and Savina Big (400 processes, 2,500 pings each), on one
    /// worker and on two (several minutes).
    #[arg(long)]
    whole: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Times one whole-program scenario (or the scaling row's pairs) on
    /// Warren alone.
    Scenario {
        which: Which,
        /// Skynet's leaves, the ring's hops, the fan-out's messages per
        /// process, Big's pings per process, each pair's messages, or the
        /// cold spawns.
        n: u64,
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Which {
    Skynet,
    Ring,
    FanOut,
    /// Savina Big: 400 processes pinging one another at random.
    Big,
    /// The scaling row's eight sender/sink pairs.
    Pairs,
    /// Spawns of entries never spawned before, each compiled on its first
    /// spawn (the cold spawn row).
    Cold,
}

fn main() {
    warren_alloc::configure();
    warren_benches::memory::child_main();
    // The runtime's warnings (a process ended unexpectedly, ...) on stderr.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(Command::Scenario { which, n, workers }) = args.command {
        let workers = workers.max(1);
        let took = match which {
            Which::Skynet => scale::by_name("skynet", workers, n).flatten(),
            Which::Ring => scale::by_name("ring", workers, n).flatten(),
            Which::FanOut => scale::by_name("fan_out", workers, n).flatten(),
            Which::Big => scale::by_name("big", workers, n).flatten(),
            Which::Pairs => Some(lua::pairs(&lua::runtime(workers), 8, n)),
            Which::Cold => Some(lua::spawn_cold(&lua::runtime(workers), n)),
        };
        println!("{}", took.map_or_else(|| "did not finish".into(), human));
        return;
    }
    let started = Instant::now();
    eprintln!("warren-bench: measuring every goal (timings are the best of 5 runs)");
    let peers = args.peers.then(Peers::detect);
    let rows = measure(Sizes::QUICK, peers.as_ref(), args.whole);
    print!("{}", table(&rows));
    let met = rows.iter().filter(|r| r.met).count();
    println!(
        "\n{met} of {} goals met; measured in {:.0} s on {} cores.",
        rows.len(),
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    );
}

//! What an operator sees: the resident set and memory mappings of this
//! process (Linux `/proc`).

use std::time::Duration;

pub use warren_tests::rss_bytes;

/// How many memory mappings this process has.
pub fn maps() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

/// The kernel's cap on memory mappings per process.
pub fn max_map_count() -> String {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Waits until the resident set stops growing (within 0.5% over 100 ms),
/// at most 30 s: what was accepted has been instantiated and touched.
pub fn settle() {
    let mut last = rss_bytes();
    for _ in 0..300 {
        std::thread::sleep(Duration::from_millis(100));
        let now = rss_bytes();
        if now <= last + last / 200 {
            return;
        }
        last = now;
    }
}

/// The environment variable that makes a bench binary a measuring child.
const CHILD_VAR: &str = "WARREN_BENCH_CHILD";
/// The prefix of the child's answer on its standard output.
const ANSWER: &str = "warren-bench-child:";

/// Runs memory scenario `what` with `n` in a fresh copy of this binary and
/// returns the numbers it reports. The allocator keeps pages an earlier
/// scenario freed, so a scenario measured after another would see little
/// growth: each gets a process of its own.
pub fn in_child(what: &str, n: u64) -> Vec<u64> {
    answer_of(what, n).unwrap_or_else(|status| panic!("child {what}:{n} gave no answer ({status})"))
}

/// Runs scenario `what` with `n` in a fresh copy of this binary: the
/// numbers it reports, or how it ended when it reported none.
pub(crate) fn answer_of(what: &str, n: u64) -> Result<Vec<u64>, std::process::ExitStatus> {
    let exe = std::env::current_exe().expect("this binary's path");
    let out = std::process::Command::new(exe)
        .env(CHILD_VAR, format!("{what}:{n}"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("the measuring child runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(ANSWER))
        .ok_or(out.status)?;
    Ok(line
        .split_whitespace()
        .map(|v| v.parse().expect("a number"))
        .collect())
}

/// In a bench binary's `main`, first: when this process is a measuring
/// child, runs the scenario, prints the answer and exits.
pub fn child_main() {
    let Ok(spec) = std::env::var(CHILD_VAR) else {
        return;
    };
    let (what, n) = spec.split_once(':').expect("what:n");
    let n: u64 = n.parse().expect("a count");
    let got = match what {
        "wasm" => crate::wasm::blocked_in_child(n),
        whole if whole.contains('@') => crate::scale::timed_in_child(whole, n),
        other => crate::lua::held_in_child(other, n)
            .map(|v| vec![v])
            .unwrap_or_else(|| panic!("unknown scenario {other}")),
    };
    let numbers: Vec<String> = got.iter().map(u64::to_string).collect();
    println!("{ANSWER}{}", numbers.join(" "));
    std::process::exit(0);
}

/// CPU time (user and system) this process has used so far, from
/// `/proc/self/stat` in clock ticks of 10 ms: the comparisons print each
/// side's CPU per operation beside its throughput, which tells a side held
/// back by its hand-offs (idle cores) from one that is busy on both.
pub fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11) // state ... cmajflt; then utime, stime (fields 14, 15)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// CPU time each kind of thread of this process has used so far, in
/// nanoseconds from `/proc/self/task/*/schedstat`, summed by thread name
/// with a trailing `-<n>` dropped (`warren-worker-0` and `-1` count as
/// `warren-worker`): tells which thread a side's CPU per operation goes
/// to. Threads that ended since an earlier call are missing from the
/// later one, so a difference can undercount; empty off Linux.
pub fn thread_cpu() -> std::collections::BTreeMap<String, Duration> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let name = name.trim();
        let kind = match name.rsplit_once('-') {
            Some((head, tail)) if tail.chars().all(|c| c.is_ascii_digit()) => head,
            _ => name,
        };
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        *out.entry(kind.to_owned()).or_insert(Duration::ZERO) += Duration::from_nanos(ns);
    }
    out
}

//! The allocator the `warren` binary runs on, shared with the benches so
//! they measure what users run, and its one setting.
//!
//! Lua objects are small and short-lived and every worker thread allocates
//! them: glibc grows a thread's arena a few pages at a time, which showed
//! up as a third of spawn time; mimalloc keeps per-thread pages instead.
//!
//! [`configure`] lengthens mimalloc's purge delay (how long freed memory
//! stays mapped before it is handed back to the kernel) from 10 ms to
//! [`PURGE_DELAY_MS`]. With 10 ms, memory that a busy runtime frees and
//! reuses within milliseconds (a 64 KiB file read's buffer, the string it
//! becomes) was handed back and faulted in again, zeroed page by page, on
//! every reuse: 100 processes reading and writing 64 KiB files took
//! 164,000–191,000 page faults per bench run and moved 0.73–0.82× the bytes
//! of plain threads (the median of each run's rounds, eight runs); with 1 s,
//! 48,000–60,000 faults and 0.81–0.87× (five runs, same day). Idle
//! memory still goes back to the kernel, a second later (jemalloc's default
//! is ten), and the resident set of idle processes is unchanged.

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

/// The allocator type: `#[global_allocator] static A: Allocator = Allocator;`
pub use mimalloc::MiMalloc as Allocator;

/// How long, in milliseconds, memory freed by the program stays committed
/// before mimalloc purges it (its own default is 10 ms). A larger value
/// holds a burst's freed memory longer before the kernel gets it back; a
/// smaller one makes every reuse after a pause pay page faults.
pub const PURGE_DELAY_MS: i64 = 1_000;

/// mimalloc v2's `mi_option_purge_delay` (`mimalloc.h`, after
/// `mi_option_eager_commit_delay` = 14); libmimalloc-sys exports no
/// constant for it. The test below checks it reads the option's default.
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;

/// mimalloc v2's `mi_option_allow_thp` (`mimalloc.h`, the last option, 37);
/// the test below checks it reads the option's default.
const MI_OPTION_ALLOW_THP: mi_option_t = 37;

/// The environment variable with which a user keeps transparent huge
/// pages (mimalloc's own name for the option).
const ALLOW_THP_VAR: &str = "MIMALLOC_ALLOW_THP";

/// Applies Warren's allocator settings; call once at the start of `main`,
/// before other threads start.
/// Harmless when the global allocator is not mimalloc (the settings then
/// have no memory to act on; huge pages are still off).
pub fn configure() {
    // SAFETY: `mi_option_set` stores a word in mimalloc's option table and
    // takes any option id and value. It is called first thing in `main`,
    // before other threads exist; a later call racing mimalloc's own read
    // of the option is a word-sized store that reader tolerates (it reads
    // the option afresh each time it schedules a purge).
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    if std::env::var_os(ALLOW_THP_VAR).is_none() {
        disable_huge_pages();
    }
}

/// Turns transparent huge pages off: mimalloc stops asking for them on new
/// arenas, and the kernel stops giving them to any mapping of the process
/// (mimalloc read its option before `main`, when it already asked for
/// them on its first arena).
fn disable_huge_pages() {
    // SAFETY: as in `configure`; mimalloc reads this option when it maps a
    // new arena.
    unsafe { mi_option_set(MI_OPTION_ALLOW_THP, 0) };
    #[cfg(target_os = "linux")]
    // SAFETY: `PR_SET_THP_DISABLE` takes one integer argument and sets a
    // flag on the process's memory map; it touches no memory of ours. A
    // kernel without it fails with `EINVAL`, which leaves things as they were.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Whether the kernel gives this process transparent huge pages.
pub fn huge_pages_allowed() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `PR_GET_THP_DISABLE` takes no argument and returns the
        // flag (or -1 where the kernel lacks it).
        unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) != 1 }
    }
    #[cfg(not(target_os = "linux"))]
    true
}

/// The purge delay mimalloc uses now, in milliseconds.
pub fn purge_delay_ms() -> i64 {
    // SAFETY: `mi_option_get` reads mimalloc's option table, initializing
    // the option from its default (or `MIMALLOC_PURGE_DELAY`) first.
    unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test: `configure` acts on the whole process, so a second test
    /// running beside it would see its effects.
    #[test]
    fn configure_sets_the_purge_delay_and_turns_huge_pages_off() {
        // Option 15 starts at mimalloc's documented purge-delay default,
        // 10 ms (its neighbours default to 1 and 0), and option 37,
        // allow_thp, at 1 (on), unless the environment overrides them.
        let thp_by_user = std::env::var_os(ALLOW_THP_VAR).is_some();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay_ms(), 10, "option {MI_OPTION_PURGE_DELAY}");
        }
        // SAFETY: reads mimalloc's option table.
        let allow_thp = || unsafe { mi_option_get(MI_OPTION_ALLOW_THP) };
        if !thp_by_user {
            assert_eq!(allow_thp(), 1, "option {MI_OPTION_ALLOW_THP}");
        }
        configure();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
        if !thp_by_user {
            assert_eq!(allow_thp(), 0);
            #[cfg(target_os = "linux")]
            assert!(!huge_pages_allowed(), "PR_SET_THP_DISABLE is set");
        }
    }
}

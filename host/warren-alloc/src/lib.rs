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
//!
//! [`Allocator`] calls mimalloc's plain `mi_malloc`/`mi_realloc` where
//! they already give the alignment asked, instead of the aligned entry
//! points the `mimalloc` crate always calls.
//!
//! Blocks of a megabyte or more are tagged, and a thread that hands them
//! to others maps each on its own ([`large`]), given back to the kernel
//! the moment it is freed.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

pub mod block;
mod large;

pub use large::{LARGE_BYTES, map_large_blocks_here};

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_option_get, mi_option_set, mi_option_t, mi_realloc,
    mi_realloc_aligned, mi_zalloc, mi_zalloc_aligned,
};

/// The largest alignment a plain `mi_malloc` of at least that many bytes
/// guarantees: mimalloc's `MI_MAX_ALIGN_SIZE` (`types.h`), the bound under
/// which its own aligned allocation falls back to a plain one
/// (`mi_malloc_is_naturally_aligned`, `alloc-aligned.c`).
const MI_MAX_ALIGN_SIZE: usize = 16;

/// Whether a plain mimalloc block of `layout.size()` bytes is aligned as
/// `layout` asks: the alignment is at most [`MI_MAX_ALIGN_SIZE`] and at
/// most the size (std's `System` allocator uses `malloc` by the same rule).
fn plain(layout: Layout) -> bool {
    layout.align() <= MI_MAX_ALIGN_SIZE && layout.align() <= layout.size()
}

/// The process allocator: `#[global_allocator] static A: Allocator = Allocator;`
///
/// mimalloc, called as the `mimalloc` crate calls it except that a layout
/// a plain allocation already satisfies ([`plain`]: almost every one, and
/// every allocation of the Lua VMs, which ask for 16-byte alignment) goes
/// to `mi_malloc`/`mi_zalloc`/`mi_realloc` rather than to their `_aligned`
/// forms, whose extra checks and calls are a few percent of a Lua spawn's
/// instructions. Larger alignments take the aligned forms, as before.
#[derive(Clone, Copy, Debug, Default)]
pub struct Allocator;

// SAFETY: every block comes from mimalloc and goes back to it (`mi_free`
// frees blocks of either form); each call returns null on failure, as
// `GlobalAlloc` asks; a plain call is made only for a layout whose
// alignment a plain block of its size has (`plain`; the tests below check
// the addresses).
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc takes any size; the alignment is a power of two.
        unsafe {
            if large::is_large(layout) {
                large::alloc(layout, false)
            } else if plain(layout) {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if large::is_large(layout) {
                large::alloc(layout, true)
            } else if plain(layout) {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout`: a large
        // block of `large` if the layout is large, else mimalloc's.
        unsafe {
            if large::is_large(layout) {
                large::dealloc(ptr, layout);
            } else {
                mi_free(ptr.cast::<c_void>());
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`, and the new
        // block keeps its alignment (GlobalAlloc's contract); a plain
        // reallocation answers `ptr` itself (aligned already) or a plain
        // block of `new_size` bytes, aligned by `plain`'s rule.
        unsafe {
            let new = Layout::from_size_align_unchecked(new_size, layout.align());
            match (large::is_large(layout), large::is_large(new)) {
                (true, true) => large::realloc(ptr, layout, new_size),
                (false, false) if plain(new) => mi_realloc(ptr.cast(), new_size).cast(),
                (false, false) => mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast(),
                // Across the line: a new block, the bytes both hold, the
                // old block freed (kept as it was on failure).
                _ => {
                    let moved = self.alloc(new);
                    if !moved.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    moved
                }
            }
        }
    }
}

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

#[cfg(test)]
mod allocator_tests {
    use super::*;

    /// Allocates `layout` with `Allocator` and checks the block: aligned,
    /// writable to its end, zeroed when asked; then grows and shrinks it,
    /// checking its bytes survive and each new block's alignment.
    fn exercise(layout: Layout, zeroed: bool) {
        let a = Allocator;
        let align = layout.align();
        // SAFETY: every layout here has a non-zero size; each block is used
        // within its size and freed once, with the layout it has then.
        unsafe {
            let p = if zeroed {
                a.alloc_zeroed(layout)
            } else {
                a.alloc(layout)
            };
            assert!(!p.is_null(), "{layout:?}");
            assert_eq!(p as usize % align, 0, "{layout:?} at {p:p}");
            if zeroed {
                let bytes = std::slice::from_raw_parts(p, layout.size());
                assert!(bytes.iter().all(|b| *b == 0), "{layout:?} not zeroed");
            }
            let size = layout.size();
            for i in 0..size {
                p.add(i).write(i as u8);
            }
            let grown = a.realloc(p, layout, size * 3);
            assert_eq!(
                grown as usize % align,
                0,
                "{layout:?} grown to {}",
                size * 3
            );
            for i in 0..size {
                assert_eq!(
                    grown.add(i).read(),
                    i as u8,
                    "{layout:?} byte {i} after growing"
                );
            }
            let big = Layout::from_size_align_unchecked(size * 3, align);
            let shrunk = a.realloc(grown, big, size.div_ceil(2));
            assert_eq!(shrunk as usize % align, 0, "{layout:?} shrunk");
            for i in 0..size.div_ceil(2) {
                assert_eq!(
                    shrunk.add(i).read(),
                    i as u8,
                    "{layout:?} byte {i} after shrinking"
                );
            }
            a.dealloc(
                shrunk,
                Layout::from_size_align_unchecked(size.div_ceil(2), align),
            );
        }
    }

    #[test]
    fn every_block_has_the_alignment_asked_and_keeps_its_bytes() {
        // Around the plain/aligned boundary (alignment 16, and alignment
        // against size) and well past it; several blocks of each, so that
        // a wrong rule shows on a block that happens to fall off it.
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            let around_large = [
                LARGE_BYTES / 3,
                LARGE_BYTES - 1,
                LARGE_BYTES,
                3 * LARGE_BYTES,
            ];
            for size in (1..=200)
                .chain([255, 256, 257, 1000, 4096, 5000, 70_000])
                .chain(around_large)
            {
                let layout = Layout::from_size_align(size, align).expect("valid layout");
                for round in 0..4 {
                    exercise(layout, round % 2 == 1);
                }
            }
        }
    }

    #[test]
    fn a_thread_that_maps_its_large_blocks_keeps_their_bytes_and_alignment_too() {
        // Its blocks are mappings, freed here or on another thread, and
        // resized across the line in both directions.
        std::thread::spawn(|| {
            map_large_blocks_here();
            for align in [1, 16, 64, 4096, 8192] {
                for size in [LARGE_BYTES / 3, LARGE_BYTES, 3 * LARGE_BYTES] {
                    let layout = Layout::from_size_align(size, align).expect("valid layout");
                    exercise(layout, false);
                    exercise(layout, true);
                }
            }
            let layout = Layout::from_size_align(LARGE_BYTES, 16).expect("valid layout");
            // SAFETY: a block of `layout`, written within its size, freed
            // once with it on another thread.
            let p = unsafe { Allocator.alloc(layout) } as usize;
            std::thread::spawn(move || unsafe {
                let p = p as *mut u8;
                p.write_bytes(7, LARGE_BYTES);
                Allocator.dealloc(p, layout);
            })
            .join()
            .expect("freed on another thread");
        })
        .join()
        .expect("the mapping thread ran");
    }

    /// This process's resident bytes (Linux's `/proc/self/statm`).
    #[cfg(target_os = "linux")]
    fn resident() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: usize = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("resident pages");
        pages * 4096
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn large_blocks_a_mapping_thread_made_leave_memory_when_another_thread_frees_them() {
        // 32 blocks of 4 MiB, written, made on a thread that maps them and
        // freed on this one: the 128 MiB leave the resident set at once.
        // From mimalloc they stayed resident (1.9-2.2 GB of file reads).
        const N: usize = 32;
        let layout = Layout::from_size_align(4 * LARGE_BYTES, 16).expect("valid layout");
        let blocks = std::thread::spawn(move || {
            map_large_blocks_here();
            (0..N)
                .map(|i| {
                    // SAFETY: a block of `layout`, written within its size.
                    unsafe {
                        let p = Allocator.alloc(layout);
                        assert!(!p.is_null());
                        p.write_bytes(i as u8 | 1, layout.size());
                        p as usize
                    }
                })
                .collect::<Vec<_>>()
        })
        .join()
        .expect("the mapping thread ran");
        let before = resident();
        for p in blocks {
            // SAFETY: each block was made with `layout` and is freed once.
            unsafe { Allocator.dealloc(p as *mut u8, layout) };
        }
        let freed = before.saturating_sub(resident());
        assert!(
            freed >= N * layout.size() * 3 / 4,
            "{freed} bytes left the resident set of {} freed",
            N * layout.size()
        );
    }

    #[test]
    fn the_plain_calls_are_taken_only_where_mimalloc_guarantees_the_alignment() {
        let plain_for = |size, align| plain(Layout::from_size_align(size, align).expect("layout"));
        assert!(plain_for(16, 16));
        assert!(plain_for(24, 8));
        assert!(plain_for(1, 1));
        assert!(!plain_for(8, 16), "alignment above the size");
        assert!(!plain_for(64, 32), "alignment above mimalloc's guarantee");
        assert!(!plain_for(4096, 4096));
    }
}

//! The heap bounds, through SQLite's own allocator entry points
//! (`sqlite3_malloc64` and friends go through the wrappers). Each test uses
//! hosts of its own, so tests running side by side do not share counts.

use std::sync::mpsc;

use super::*;

/// `sqlite3_malloc64(bytes)`.
fn alloc(bytes: usize) -> *mut c_void {
    // SAFETY: a plain allocation of the library's allocator.
    unsafe { ffi::sqlite3_malloc64(bytes as u64) }
}

/// `sqlite3_free(p)`.
fn free(p: *mut c_void) {
    // SAFETY: `p` came from `alloc` (or is null) and is freed once.
    unsafe { ffi::sqlite3_free(p) }
}

fn held(host: u16) -> i64 {
    HOSTS[usize::from(host)].load(Ordering::Relaxed)
}

const MIB: usize = 1 << 20;

#[test]
fn a_statement_is_refused_past_its_cap_and_its_host_count_goes_back_to_zero() {
    assert!(install(), "installed before the library started");
    let window = Window::open(65_001, STATEMENT_HEAP_MAX);
    let a = alloc(40 * MIB);
    assert!(!a.is_null());
    assert!(held(65_001) >= (40 * MIB) as i64);
    assert!(alloc(30 * MIB).is_null(), "40 + 30 MiB is past the cap");
    assert_eq!(take_refusal(), Some(Refusal::Statement));
    free(a);
    let b = alloc(30 * MIB);
    assert!(!b.is_null(), "what it freed is room again");
    free(b);
    drop(window);
    assert_eq!(held(65_001), 0);
    let outside = alloc(100 * MIB);
    assert!(!outside.is_null(), "no window, no bound");
    assert_eq!(held(65_001), 0);
    free(outside);
}

#[test]
fn a_realloc_past_the_cap_fails_and_keeps_the_old_block() {
    assert!(install());
    let window = Window::open(65_002, STATEMENT_HEAP_MAX);
    let p = alloc(MIB);
    // SAFETY: `p` is a live block of the library; a failed realloc leaves it.
    let grown = unsafe { ffi::sqlite3_realloc64(p, (80 * MIB) as u64) };
    assert!(grown.is_null());
    assert_eq!(take_refusal(), Some(Refusal::Statement));
    // SAFETY: as above.
    let grown = unsafe { ffi::sqlite3_realloc64(p, (32 * MIB) as u64) };
    assert!(!grown.is_null());
    assert!(held(65_002) >= (32 * MIB) as i64);
    free(grown);
    drop(window);
    assert_eq!(held(65_002), 0);
}

#[test]
fn one_host_s_statements_together_stop_at_the_host_cap_and_not_another_s() {
    assert!(install());
    let (host, other) = (65_003, 65_004);
    let (ready_tx, ready) = mpsc::channel();
    let mut releases = Vec::new();
    let mut threads = Vec::new();
    // Four statements of 60 MiB each: 240 MiB of the host's 256.
    for _ in 0..4 {
        let (release, wait) = mpsc::channel::<()>();
        releases.push(release);
        let ready_tx = ready_tx.clone();
        threads.push(std::thread::spawn(move || {
            let window = Window::open(host, STATEMENT_HEAP_MAX);
            let p = alloc(60 * MIB);
            ready_tx.send(!p.is_null()).expect("main waits");
            let _ = wait.recv();
            free(p);
            drop(window);
        }));
    }
    for _ in 0..4 {
        assert!(ready.recv().expect("a statement allocated"));
    }
    let fifth = Window::open(host, STATEMENT_HEAP_MAX);
    assert!(
        alloc(20 * MIB).is_null(),
        "240 + 20 MiB is past the host's cap"
    );
    assert_eq!(take_refusal(), Some(Refusal::Host));
    drop(fifth);
    let elsewhere = Window::open(other, STATEMENT_HEAP_MAX);
    let q = alloc(20 * MIB);
    assert!(
        !q.is_null(),
        "another host is not bound by the first one's count"
    );
    free(q);
    drop(elsewhere);
    drop(releases);
    for t in threads {
        t.join().expect("no panic");
    }
    assert_eq!(held(host), 0);
    assert_eq!(held(other), 0);
}

#[test]
fn a_nested_window_counts_into_the_open_one() {
    assert!(install());
    let outer = Window::open(65_005, STATEMENT_HEAP_MAX);
    let inner = Window::open(65_006, STATEMENT_HEAP_MAX);
    let p = alloc(MIB);
    assert!(held(65_005) >= MIB as i64);
    assert_eq!(held(65_006), 0);
    drop(inner);
    free(p);
    drop(outer);
    assert_eq!(held(65_005), 0);
}

#[test]
fn a_statement_on_an_in_memory_entry_may_also_fill_that_entry() {
    assert!(install());
    let window = Window::open(65_007, statement_cap(true));
    let p = alloc(150 * MIB);
    assert!(
        !p.is_null(),
        "64 MiB of work and the entry's 128 MiB of pages"
    );
    assert!(alloc(50 * MIB).is_null());
    assert_eq!(take_refusal(), Some(Refusal::Statement));
    free(p);
    drop(window);
    assert_eq!(held(65_007), 0);
}

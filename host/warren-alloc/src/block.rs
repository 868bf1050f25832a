//! Blocks with C's `malloc` contract and sized frees: what a C library's
//! allocator hook asks for (Lua's `lua_Alloc`), without `GlobalAlloc`'s
//! layouts.
//!
//! The Lua VMs allocate through these (`guest-lua/src/alloc.rs`), one
//! call from their allocator hook to mimalloc, where the hook through
//! Rust's global allocator took three (mlua's hook, `__rust_alloc`,
//! [`crate::Allocator`]): about 100 instructions an allocation became
//! about 50. The blocks are the ones [`crate::Allocator`] makes for
//! layouts of alignment 16: `mi_malloc`'s below [`LARGE_BYTES`] (aligned
//! to 16 from 16 bytes, to their size below), large blocks tagged as
//! `large` makes them, so either can free the other's.

use std::alloc::Layout;
use std::ffi::c_void;

use libmimalloc_sys::{mi_free, mi_malloc, mi_realloc};

use crate::large::{self, LARGE_BYTES};

/// The alignment a large block is made with: a small block's from 16
/// bytes, what Lua (`LUAI_MAXALIGN`) and C's `malloc` give.
const ALIGN: usize = 16;

/// The C functions that make and free the blocks under [`Small::below`]
/// bytes, as [`alloc`], [`free`] and [`realloc`] do, for C code that
/// makes those itself (the vendored Lua's `warren_Small`, `lwarren.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Small {
    /// Blocks of fewer bytes are small.
    pub below: usize,
    /// A block of that many bytes, or null.
    pub alloc: unsafe extern "C" fn(usize) -> *mut c_void,
    /// Frees a block of `alloc`.
    pub free: unsafe extern "C" fn(*mut c_void),
    /// A block of `alloc` (or null) resized to that many bytes (not 0),
    /// its bytes kept; or null, the block as it was.
    pub realloc: unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void,
}

/// This module's small blocks: mimalloc's below [`LARGE_BYTES`].
pub const SMALL: Small = Small {
    below: LARGE_BYTES,
    alloc: mi_malloc,
    free: mi_free,
    realloc: mi_realloc,
};

/// The layout of a large block of `size` bytes.
fn large_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size, ALIGN).ok()
}

/// A new block of `size` bytes (not zero), or null.
///
/// # Safety
///
/// None beyond freeing the block with [`free`] or [`realloc`] and its size.
#[inline]
pub unsafe fn alloc(size: usize) -> *mut u8 {
    if size < LARGE_BYTES {
        // SAFETY: mimalloc takes any size.
        return unsafe { mi_malloc(size).cast() };
    }
    match large_layout(size) {
        // SAFETY: the layout is large.
        Some(layout) => unsafe { large::alloc(layout, false) },
        None => std::ptr::null_mut(),
    }
}

/// Frees block `p` of `size` bytes.
///
/// # Safety
///
/// `p` came from [`alloc`] or [`realloc`] and has `size` bytes.
#[inline]
pub unsafe fn free(p: *mut u8, size: usize) {
    if size < LARGE_BYTES {
        // SAFETY: a block of mimalloc's (see above).
        unsafe { mi_free(p.cast::<c_void>()) }
    } else if let Some(layout) = large_layout(size) {
        // SAFETY: a large block of that layout (see above).
        unsafe { large::dealloc(p, layout) }
    }
}

/// Block `p` of `old` bytes resized to `new` (not zero), its first
/// bytes kept; or null, `p` then as it was.
///
/// # Safety
///
/// As [`free`].
#[inline]
pub unsafe fn realloc(p: *mut u8, old: usize, new: usize) -> *mut u8 {
    // SAFETY: see above; a block crossing the line is made anew, its
    // bytes copied and the old one freed as what it is.
    unsafe {
        match (old < LARGE_BYTES, new < LARGE_BYTES) {
            (true, true) => mi_realloc(p.cast(), new).cast(),
            (false, false) => match large_layout(old) {
                Some(layout) => large::realloc(p, layout, new),
                None => std::ptr::null_mut(),
            },
            _ => {
                let moved = alloc(new);
                if !moved.is_null() {
                    std::ptr::copy_nonoverlapping(p, moved, old.min(new));
                    free(p, old);
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::GlobalAlloc;

    use super::*;
    use crate::Allocator;

    /// Fills `n` bytes at `p` with a pattern of `seed`.
    unsafe fn fill(p: *mut u8, n: usize, seed: u8) {
        for i in 0..n {
            // SAFETY: the caller's block holds `n` bytes.
            unsafe { p.add(i).write(seed.wrapping_add(i as u8)) };
        }
    }

    /// Whether the first `n` bytes at `p` are `fill`'s pattern of `seed`.
    unsafe fn holds(p: *const u8, n: usize, seed: u8) -> bool {
        // SAFETY: as `fill`.
        (0..n).all(|i| unsafe { p.add(i).read() } == seed.wrapping_add(i as u8))
    }

    #[test]
    fn blocks_are_aligned_as_malloc_and_keep_their_bytes_across_the_line() {
        let sizes = [
            1,
            7,
            8,
            15,
            16,
            17,
            100,
            4096,
            LARGE_BYTES - 1,
            LARGE_BYTES,
            3 * LARGE_BYTES,
        ];
        for &a in &sizes {
            for &b in &sizes {
                // SAFETY: each block is used within its size and freed
                // once with the size it has then.
                unsafe {
                    let p = alloc(a);
                    assert!(!p.is_null(), "{a}");
                    assert_eq!(
                        p as usize % ALIGN.min(a.next_power_of_two()),
                        0,
                        "{a} at {p:p}"
                    );
                    fill(p, a, a as u8);
                    let q = realloc(p, a, b);
                    assert!(!q.is_null(), "{a} -> {b}");
                    assert_eq!(
                        q as usize % ALIGN.min(b.next_power_of_two()),
                        0,
                        "{a} -> {b}"
                    );
                    assert!(holds(q, a.min(b), a as u8), "{a} -> {b}: bytes lost");
                    free(q, b);
                }
            }
        }
    }

    #[test]
    fn small_blocks_from_the_c_functions_are_this_modules_blocks() {
        for size in [1, 16, 4096, SMALL.below - 1] {
            // SAFETY: blocks of `size` bytes, used within it and freed
            // once, each by the other side.
            unsafe {
                let p = (SMALL.alloc)(size).cast::<u8>();
                fill(p, size, 9);
                // Resized by the C function within the small blocks,
                // then by `realloc` across the line and back.
                let n = (size + 1).min(SMALL.below - 1);
                let q = (SMALL.realloc)(p.cast(), n).cast::<u8>();
                assert!(holds(q, size.min(n), 9), "{size}");
                let q = realloc(q, n, LARGE_BYTES + 2);
                assert!(holds(q, size.min(n), 9), "{size}");
                let q = realloc(q, LARGE_BYTES + 2, n);
                assert!(holds(q, size.min(n), 9), "{size}");
                free(q, n);
                let r = alloc(size);
                (SMALL.free)(r.cast());
            }
        }
    }

    #[test]
    fn the_global_allocator_frees_these_blocks_and_these_free_its_own() {
        // Blocks of alignment 16 are the same blocks either way: a large
        // one's tag is read by both, a small one is mimalloc's.
        for size in [16, 4096, LARGE_BYTES, 2 * LARGE_BYTES] {
            let layout = Layout::from_size_align(size, ALIGN).expect("layout");
            // SAFETY: a block of `size` bytes freed once, by the other side.
            unsafe {
                let p = alloc(size);
                fill(p, size, 3);
                Allocator.dealloc(p, layout);
                let q = Allocator.alloc(layout);
                fill(q, size, 5);
                let r = realloc(q, size, size + 16);
                assert!(holds(r, size, 5), "{size}");
                free(r, size + 16);
            }
        }
    }
}

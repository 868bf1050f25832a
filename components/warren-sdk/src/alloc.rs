//! The component's allocator: free lists of small blocks in front of the
//! standard one (dlmalloc on `wasm32-wasip2`).
//!
//! Every message a component receives is a handful of small allocations:
//! the host writes its topic, sender, payload list and payloads through
//! `cabi_realloc`, and decoding makes a few more, all freed before the
//! next message. dlmalloc spent about 450 guest instructions on each
//! allocate-and-free, half of the guest's work per message (`kv` taking a
//! `put`). Here a block of up to [`LARGEST`] bytes is taken from and given
//! back to a free list of its size class (a power of two), a few dozen
//! instructions; larger or over-aligned blocks go straight to dlmalloc.
//! Each small block is its own dlmalloc block of its class's size, never
//! a piece of a larger one: wasi-libc frees with `free()` what the host
//! wrote through `cabi_realloc` for its own imports (the directories and
//! variables it is granted), and `cabi_realloc` is this allocator, so a
//! block cut from a chunk (tried first) corrupted dlmalloc's heap.
//!
//! Guarantees: every block is at least as large and as aligned as its
//! layout asks; a freed small block is only ever reused for its own class
//! (memory a class once held stays with that class: a component's memory
//! is its peak use per class, plus dlmalloc's own); every block it hands
//! out is one dlmalloc made, so C code may `free()` it. The lists are
//! unsynchronized, so the type exists only on single-threaded WebAssembly
//! (no `atomics`), where nothing can run between a list's read and its
//! write (and in this crate's own tests, each list used by one thread);
//! elsewhere the SDK leaves the standard allocator in place.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// log2 of the smallest class's block size (16 bytes: two pointers on
/// wasm32, and the most any small layout may ask to be aligned).
const SMALLEST_LOG2: u32 = 4;

/// The largest block the free lists keep. A message's own allocations
/// (topic, sender, the payload list, small payloads and what they decode
/// to) are smaller; bigger blocks are rarer and dlmalloc's search is cheap
/// beside filling them.
const LARGEST: usize = 256;

/// Size classes: 16, 32, ..., [`LARGEST`] bytes.
const CLASSES: usize = (LARGEST.trailing_zeros() - SMALLEST_LOG2 + 1) as usize;

/// A freed block, linked to the next of its class.
struct Free {
    next: *mut Free,
}

/// The head of each class's free list.
struct Lists(UnsafeCell<[*mut Free; CLASSES]>);

// SAFETY: this module is compiled only for single-threaded WebAssembly
// (see its `cfg` in lib.rs), where no two threads exist, and for its unit
// tests, each of which uses its own lists from one thread.
unsafe impl Sync for Lists {}

/// The global allocator of components built with the SDK's default
/// feature `fast-alloc`.
pub struct FreeLists {
    lists: Lists,
}

impl FreeLists {
    /// Empty lists.
    pub const fn new() -> FreeLists {
        FreeLists {
            lists: Lists(UnsafeCell::new([ptr::null_mut(); CLASSES])),
        }
    }
}

impl Default for FreeLists {
    fn default() -> Self {
        FreeLists::new()
    }
}

/// The class of `layout`, `None` for a block the lists do not keep.
fn class(size: usize, align: usize) -> Option<usize> {
    if size > LARGEST || align > 1 << SMALLEST_LOG2 {
        return None;
    }
    let log2 = size.max(1).next_power_of_two().trailing_zeros();
    Some(log2.saturating_sub(SMALLEST_LOG2) as usize)
}

/// The layout dlmalloc is asked for to make a block of class `c`.
fn block(c: usize) -> Layout {
    let size = 1usize << (c as u32 + SMALLEST_LOG2);
    // A power of two no larger than LARGEST, aligned to 16: always valid.
    Layout::from_size_align(size, 1 << SMALLEST_LOG2).unwrap_or(Layout::new::<Free>())
}

// SAFETY: `alloc` returns blocks of at least the layout's size and
// alignment (a class block is a power of two >= the size, aligned to 16
// >= the layout's align); a block goes back to the list of the class its
// layout gives, which is the class it was made for, since `dealloc` and
// `realloc` get the layout it was allocated with.
unsafe impl GlobalAlloc for FreeLists {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout.size(), layout.align()) else {
            // SAFETY: the caller's layout, as GlobalAlloc requires.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: single-threaded (see `Lists`); no reference to the
        // lists outlives this call.
        let heads = unsafe { &mut *self.lists.0.get() };
        let head = heads[c];
        if head.is_null() {
            // SAFETY: a valid, non-zero layout.
            return unsafe { System.alloc(block(c)) };
        }
        // SAFETY: `head` is a block of class `c` that `dealloc` linked,
        // at least 16 bytes and aligned for `Free`.
        heads[c] = unsafe { (*head).next };
        head.cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(c) = class(layout.size(), layout.align()) else {
            // SAFETY: allocated by `System` with this layout (see `alloc`).
            return unsafe { System.dealloc(ptr, layout) };
        };
        // SAFETY: single-threaded; the block is the caller's to give back,
        // of class `c`, large and aligned enough for a `Free`.
        unsafe {
            let heads = &mut *self.lists.0.get();
            let free = ptr.cast::<Free>();
            free.write(Free { next: heads[c] });
            heads[c] = free;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = class(layout.size(), layout.align());
        let new = class(new_size, layout.align());
        match (old, new) {
            // The block is already big enough (a class is its largest size).
            (Some(a), Some(b)) if a == b => ptr,
            // SAFETY: both from `System`, the caller's layout and size.
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                // SAFETY: the caller guarantees `new_size` with the old
                // alignment is a valid layout.
                let new_layout =
                    unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                // SAFETY: as `alloc`; the copy stays within both blocks.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(all(feature = "fast-alloc", not(test)))]
#[global_allocator]
static ALLOCATOR: FreeLists = FreeLists::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_their_sizes() {
        assert_eq!(CLASSES, 5);
        assert_eq!(class(0, 1), Some(0));
        assert_eq!(class(16, 8), Some(0));
        assert_eq!(class(17, 1), Some(1));
        assert_eq!(class(256, 16), Some(4));
        assert_eq!(class(257, 1), None);
        assert_eq!(class(8, 32), None, "over-aligned goes to the system");
        for size in 0..=LARGEST {
            let c = class(size, 1).expect("small");
            assert!(block(c).size() >= size, "{size}");
        }
    }

    #[test]
    fn a_freed_block_is_reused_for_its_class_only() {
        let a = FreeLists::new();
        let small = Layout::from_size_align(24, 8).expect("layout");
        let other = Layout::from_size_align(100, 8).expect("layout");
        // SAFETY: each block is used within its layout and freed once with it.
        unsafe {
            let p = a.alloc(small);
            assert!(!p.is_null());
            a.dealloc(p, small);
            let q = a.alloc(other);
            assert_ne!(p, q, "a 100-byte block is not taken from the 32 list");
            let r = a.alloc(Layout::from_size_align(30, 4).expect("layout"));
            assert_eq!(p, r, "the freed 32-byte block comes back");
            r.write_bytes(7, 30);
            let grown = a.realloc(r, Layout::from_size_align(30, 4).expect("layout"), 32);
            assert_eq!(grown, r, "within its class a block stays put");
            let moved = a.realloc(grown, Layout::from_size_align(32, 4).expect("layout"), 2000);
            assert!(!moved.is_null());
            assert_eq!(moved.read(), 7, "the bytes move with it");
            a.dealloc(moved, Layout::from_size_align(2000, 4).expect("layout"));
            a.dealloc(q, other);
        }
    }
}

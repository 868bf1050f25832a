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
//! Small blocks are cut, one at a time as they are first needed, from
//! chunks of [`CHUNK`] bytes taken from dlmalloc: kept together, they do
//! not split the free space large blocks need (blocks scattered through
//! dlmalloc's heap made a component that filled its memory with 60 KB
//! values grow its linear memory where it had not), and a page of a chunk
//! is touched only once a block on it is used.
//!
//! Guarantees: every block is at least as large and as aligned as its
//! layout asks; a freed small block is only ever reused for its own class
//! (memory a class once held stays with that class: a component's memory
//! is its peak use per class, plus at most one chunk, plus dlmalloc's
//! own). Only on single-threaded WebAssembly (no `atomics`), where nothing
//! can run between the list's read and its write; elsewhere the SDK
//! leaves the standard allocator in place.

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

/// Bytes of each chunk small blocks are cut from: sixteen of the largest.
const CHUNK: usize = 4096;

/// Size classes: 16, 32, ..., [`LARGEST`] bytes.
const CLASSES: usize = (LARGEST.trailing_zeros() - SMALLEST_LOG2 + 1) as usize;

/// A freed block, linked to the next of its class.
struct Free {
    next: *mut Free,
}

/// The head of each class's free list, and what is left of the chunk
/// blocks are cut from.
struct Lists(UnsafeCell<State>);

struct State {
    heads: [*mut Free; CLASSES],
    /// The next byte of the chunk not yet cut (aligned to 16).
    next: *mut u8,
    /// Bytes of the chunk not yet cut.
    left: usize,
}

// SAFETY: compiled only for single-threaded WebAssembly (see the cfg on
// `ALLOCATOR`): no two threads ever reach the lists.
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
            lists: Lists(UnsafeCell::new(State {
                heads: [ptr::null_mut(); CLASSES],
                next: ptr::null_mut(),
                left: 0,
            })),
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

/// Bytes of a block of class `c`.
fn block(c: usize) -> usize {
    1usize << (c as u32 + SMALLEST_LOG2)
}

/// The layout of a chunk (a valid one: a constant size and alignment).
fn chunk() -> Layout {
    Layout::from_size_align(CHUNK, 1 << SMALLEST_LOG2).unwrap_or(Layout::new::<Free>())
}

impl State {
    /// A new block of `size` bytes (a class's) cut from the chunk, a new
    /// chunk first when this one has too little left (its tail, less
    /// than a largest block, is not used); null when dlmalloc has none.
    ///
    /// # Safety
    ///
    /// Single-threaded; `size` a class's size.
    unsafe fn cut(&mut self, size: usize) -> *mut u8 {
        if self.left < size {
            // SAFETY: a valid, non-zero layout.
            let fresh = unsafe { System.alloc(chunk()) };
            if fresh.is_null() {
                return fresh;
            }
            self.next = fresh;
            self.left = CHUNK;
        }
        let at = self.next;
        // SAFETY: `size <= left`: the result stays inside the chunk (or
        // one past its end).
        self.next = unsafe { at.add(size) };
        self.left -= size;
        at
    }
}

// SAFETY: `alloc` returns blocks of at least the layout's size and
// alignment (a class block is a power of two >= the size, cut at a
// multiple of 16 from a chunk aligned to 16, >= the layout's align); a block goes back to the list of the class its
// layout gives, which is the class it was made for, since `dealloc` and
// `realloc` get the layout it was allocated with.
unsafe impl GlobalAlloc for FreeLists {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout.size(), layout.align()) else {
            // SAFETY: the caller's layout, as GlobalAlloc requires.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: single-threaded (see `Lists`); no reference to the
        // state outlives this call.
        let state = unsafe { &mut *self.lists.0.get() };
        let head = state.heads[c];
        if head.is_null() {
            // SAFETY: as above; `block(c)` is a class's size.
            return unsafe { state.cut(block(c)) };
        }
        // SAFETY: `head` is a block of class `c` that `dealloc` linked,
        // at least 16 bytes and aligned for `Free`.
        state.heads[c] = unsafe { (*head).next };
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
            let state = &mut *self.lists.0.get();
            let free = ptr.cast::<Free>();
            free.write(Free {
                next: state.heads[c],
            });
            state.heads[c] = free;
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

#[cfg(all(
    feature = "fast-alloc",
    target_family = "wasm",
    not(target_feature = "atomics")
))]
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
            assert!(block(c) >= size, "{size}");
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

    #[test]
    fn small_blocks_are_cut_side_by_side_from_chunks() {
        let a = FreeLists::new();
        let big = Layout::from_size_align(LARGEST, 16).expect("layout");
        let per_chunk = CHUNK / LARGEST;
        // SAFETY: the blocks are only compared, never used, and leaked.
        let blocks: Vec<usize> = (0..=per_chunk)
            .map(|_| unsafe { a.alloc(big) } as usize)
            .collect();
        assert!(blocks.iter().all(|&b| b != 0 && b % 16 == 0), "{blocks:?}");
        for pair in blocks[..per_chunk].windows(2) {
            assert_eq!(pair[1] - pair[0], LARGEST, "one chunk: {blocks:?}");
        }
        let last = blocks[per_chunk];
        let first = blocks[0];
        assert!(
            last < first || last >= first + CHUNK,
            "the 17th is in a new chunk: {blocks:?}"
        );
    }
}

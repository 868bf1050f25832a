//! Blocks of a megabyte or more: each carries a tag saying where it came
//! from, and those made on threads that hand them to others are mappings
//! of their own, unmapped the moment they are freed.
//!
//! mimalloc keeps a freed block committed for its purge delay, and a
//! block freed by another thread than the one that made it waits for that
//! thread to come back to its heap. File reads of 4 to 16 MiB, made on
//! I/O lane threads and freed on a worker once the process had its
//! string, left 1.9-2.2 GB resident under a host `memory_total` of
//! 256 MiB. A thread whose large blocks end on other threads (the I/O
//! lanes and the I/O runtime, [`map_large_blocks_here`]) now maps each
//! one, and it goes back to the kernel when freed, whichever thread frees
//! it; it grows and shrinks in place (`mremap`). A worker keeps taking
//! its own large blocks (the big strings of its processes) from mimalloc,
//! which reuses them warm: mapping those too made a loop building 2 MiB
//! strings 5.5 times slower (fresh pages, each faulted and zeroed).
//!
//! Every large block has [`header`] bytes in front of it, the last word
//! its tag, so it is freed the way it was made (a mapping's size is its
//! layout's, known when it is freed).

use std::alloc::Layout;
use std::cell::Cell;
use std::ffi::c_void;

use libmimalloc_sys::{mi_free, mi_malloc_aligned, mi_realloc_aligned, mi_zalloc_aligned};

/// Blocks of at least this many bytes are large: tagged, and mappings of
/// their own when made on a thread that asked for it.
pub const LARGE_BYTES: usize = 1 << 20;

/// The largest alignment a mapping guarantees: the smallest page size.
const PAGE: usize = 4096;

/// The tag of a large block that is a mapping of its own.
const MAPPED: usize = 0x5741_5252_454e_4d41;
/// The tag of a large block from mimalloc.
const HEAP: usize = 0x5741_5252_454e_4841;

thread_local! {
    /// Whether this thread maps its large blocks.
    static MAP_LARGE: Cell<bool> = const { Cell::new(false) };
}

/// Has this thread make each of its large blocks a mapping of its own:
/// for threads whose large blocks are freed on other threads (see the
/// module's documentation). Linux only; elsewhere it does nothing.
pub fn map_large_blocks_here() {
    if cfg!(target_os = "linux") {
        MAP_LARGE.with(|m| m.set(true));
    }
}

/// Whether a block of `layout` is large.
pub(crate) fn is_large(layout: Layout) -> bool {
    layout.size() >= LARGE_BYTES
}

/// The bytes in front of a large block of alignment `align`: its tag's
/// word, padded so the block keeps its alignment.
fn header(align: usize) -> usize {
    align.max(16)
}

/// The tag word in front of large block `p`.
///
/// # Safety
///
/// `p` is a large block of this module.
unsafe fn tag_of(p: *mut u8) -> *mut usize {
    // SAFETY: `header` is at least a word and the block is aligned to at
    // least 16, so the word in front of it is in the block's header.
    unsafe { p.cast::<usize>().sub(1) }
}

/// A new large block of `layout` (zeroed if `zeroed`), or null.
///
/// # Safety
///
/// `layout` is large.
pub(crate) unsafe fn alloc(layout: Layout, zeroed: bool) -> *mut u8 {
    let hdr = header(layout.align());
    let Some(total) = layout.size().checked_add(hdr) else {
        return std::ptr::null_mut();
    };
    let mapped = layout.align() <= PAGE && MAP_LARGE.try_with(Cell::get).unwrap_or(false);
    // SAFETY: mimalloc takes any size and a power-of-two alignment; a
    // fresh mapping is zeroed. The tag is written inside the header.
    unsafe {
        let (base, tag) = if mapped {
            (map(total), MAPPED)
        } else if zeroed {
            (mi_zalloc_aligned(total, hdr).cast::<u8>(), HEAP)
        } else {
            (mi_malloc_aligned(total, hdr).cast::<u8>(), HEAP)
        };
        if base.is_null() {
            return base;
        }
        let p = base.add(hdr);
        tag_of(p).write(tag);
        p
    }
}

/// Frees large block `p` of `layout`.
///
/// # Safety
///
/// `p` came from [`alloc`] or [`realloc`] with `layout`.
pub(crate) unsafe fn dealloc(p: *mut u8, layout: Layout) {
    let hdr = header(layout.align());
    // SAFETY: see above: the header is in front of `p`, and a mapping's
    // length is its layout's size plus the header.
    unsafe {
        let base = p.sub(hdr);
        if tag_of(p).read() == MAPPED {
            unmap(base, layout.size() + hdr);
        } else {
            mi_free(base.cast::<c_void>());
        }
    }
}

/// Large block `p` of `layout` resized to `new_size` (also large), its
/// bytes and tag kept, or null (`p` then as it was).
///
/// # Safety
///
/// As [`dealloc`]; `new_size` is at least [`LARGE_BYTES`].
pub(crate) unsafe fn realloc(p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    let hdr = header(layout.align());
    let Some(total) = new_size.checked_add(hdr) else {
        return std::ptr::null_mut();
    };
    // SAFETY: see above; the header moves with the block.
    unsafe {
        let base = p.sub(hdr);
        let moved = if tag_of(p).read() == MAPPED {
            remap(base, layout.size() + hdr, total)
        } else {
            mi_realloc_aligned(base.cast(), total, hdr).cast()
        };
        if moved.is_null() {
            moved
        } else {
            moved.add(hdr)
        }
    }
}

/// A new anonymous mapping of `size` bytes, or null.
#[cfg(target_os = "linux")]
unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: a private anonymous mapping at an address the kernel picks
    // touches no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

/// Unmaps the mapping at `base` of `size` bytes.
#[cfg(target_os = "linux")]
unsafe fn unmap(base: *mut u8, size: usize) {
    // SAFETY: the caller's mapping, not used again; the kernel rounds the
    // length up to whole pages as it did when mapping it.
    unsafe { libc::munmap(base.cast(), size) };
}

/// The mapping at `base` of `old` bytes resized to `new` (moved if it
/// must), or null, left as it was.
#[cfg(target_os = "linux")]
unsafe fn remap(base: *mut u8, old: usize, new: usize) -> *mut u8 {
    // SAFETY: the caller's mapping; on failure it is untouched.
    let p = unsafe { libc::mremap(base.cast(), old, new, libc::MREMAP_MAYMOVE) };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

#[cfg(not(target_os = "linux"))]
unsafe fn map(_size: usize) -> *mut u8 {
    std::ptr::null_mut() // never called: no thread maps its blocks
}

#[cfg(not(target_os = "linux"))]
unsafe fn unmap(_base: *mut u8, _size: usize) {}

#[cfg(not(target_os = "linux"))]
unsafe fn remap(_base: *mut u8, _old: usize, _new: usize) -> *mut u8 {
    std::ptr::null_mut()
}

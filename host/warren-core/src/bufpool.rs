//! Byte buffers that go back and forth between the blocking lane's
//! threads and the workers, reused instead of freed.
//!
//! A file read fills a buffer on a lane thread and a worker copies it into
//! a Lua string and drops it; a file write's data goes the other way. Each
//! buffer was freed on another thread than the one that allocated it, into
//! that thread's allocator heap, and the next call on a different lane
//! thread took fresh pages, each a page fault: the lane's reads faulting on
//! their buffers were 29–43 % of a file benchmark's page faults. Buffers
//! handed back here ([`give`]) are taken again ([`take`]) by whichever
//! thread needs one next, with their pages already in place.
//!
//! Guarantees: a buffer taken is empty (its length 0: no earlier bytes are
//! readable through it, whatever its capacity held); the pool holds at
//! most [`POOL_BUFFERS`] buffers of at most [`POOL_MAX_BYTES`] capacity
//! each, so what it keeps from being freed is bounded whatever the
//! traffic; a buffer too small or too large for it is simply dropped.

use std::sync::{Mutex, PoisonError};

/// Most buffers the pool keeps. Bounds the memory it holds, with
/// [`POOL_MAX_BYTES`], to 16 MiB whatever the traffic (a flood of large
/// reads cannot make it keep more).
pub const POOL_BUFFERS: usize = 64;

/// Largest capacity the pool keeps (a larger buffer is freed): reads of
/// files up to this size reuse memory.
pub const POOL_MAX_BYTES: usize = 256 << 10;

/// Smallest capacity worth keeping: below it the allocator's own reuse is
/// as good.
pub const POOL_MIN_BYTES: usize = 4 << 10;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer with room for at least `capacity` bytes: the most
/// recently given one that has it, else a new one.
pub fn take(capacity: usize) -> Vec<u8> {
    if (POOL_MIN_BYTES..=POOL_MAX_BYTES).contains(&capacity) {
        let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = pool.iter().rposition(|b| b.capacity() >= capacity) {
            // `remove`, not `swap_remove`: the order is the order buffers
            // were given, which `give` evicts by.
            let mut buf = pool.remove(at);
            buf.clear();
            return buf;
        }
    }
    Vec::with_capacity(capacity)
}

/// Hands `buf` back for reuse, freeing the least recently given buffer
/// when the pool is full (so buffers of the sizes in use now replace
/// those of sizes used before); a capacity outside what the pool keeps
/// is freed at once.
pub fn give(buf: Vec<u8>) {
    if !(POOL_MIN_BYTES..=POOL_MAX_BYTES).contains(&buf.capacity()) {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if pool.capacity() == 0 {
        pool.reserve_exact(POOL_BUFFERS);
    }
    let evicted = (pool.len() >= POOL_BUFFERS).then(|| pool.remove(0));
    pool.push(buf);
    drop(pool);
    drop(evicted); // freed outside the lock
}

/// Drops `v`, handing its buffer back when it is a string (a file read's
/// bytes, once a front-end has copied them).
pub fn recycle(v: crate::Value) {
    if let crate::Value::Str(bytes) = v {
        give(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_empty_and_the_pool_stays_bounded() {
        let mut b = take(8 << 10);
        b.extend_from_slice(&[7u8; 8 << 10]);
        let at = b.as_ptr();
        give(b);
        // Other tests share the pool: look for this buffer among the next.
        let taken: Vec<Vec<u8>> = (0..POOL_BUFFERS).map(|_| take(8 << 10)).collect();
        assert!(taken.iter().all(Vec::is_empty));
        assert!(
            taken.iter().any(|b| b.as_ptr() == at),
            "the buffer was reused"
        );
        for b in taken {
            give(b);
        }
        for _ in 0..POOL_BUFFERS * 2 {
            give(Vec::with_capacity(8 << 10));
        }
        assert!(POOL.lock().unwrap_or_else(PoisonError::into_inner).len() <= POOL_BUFFERS);
        // Out of range: not kept, and a request out of range is a new buffer.
        give(Vec::with_capacity(POOL_MAX_BYTES + 1));
        assert!(
            POOL.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .all(|b| b.capacity() <= POOL_MAX_BYTES)
        );
        assert!(take(100).capacity() >= 100);
    }
}

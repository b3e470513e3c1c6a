//! A per-thread pool of byte buffers for socket reads and writes.
//!
//! A connection needs a buffer only while bytes are passing through it: a read waiting
//! to be decoded, frames waiting to be written. Taking one from this pool for that
//! moment and giving it back afterwards means an idle connection holds none (memory per
//! connection is the bar, docs/benchmarks.md), while a busy one still reads and writes
//! in large chunks; and reusing the same few buffers keeps the allocator from scattering
//! short-lived blocks among long-lived small ones. (Measured: fresh 16 KiB read buffers
//! per read put an idle joined connection at 12 KiB of RSS; pooled 2 KiB ones, 4.5 KiB.)

use std::cell::RefCell;

/// Capacity of a fresh buffer. Small on purpose: many connections may each hold one
/// for a moment (a burst of joins), and a socket whose read fills it gets a larger one
/// next time ([`crate::ws::Reader`]); buffers that grew come back to the pool grown.
pub const SIZE: usize = 2 * 1024;
/// Buffers kept per thread; beyond it, returned buffers are freed.
const KEEP: usize = 64;
/// Buffers that grew past this (a large frame) are freed rather than kept.
const KEEP_MAX_CAPACITY: usize = 64 * 1024;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for at least `min` bytes.
pub fn take(min: usize) -> Vec<u8> {
    let mut buf = POOL
        .try_with(|pool| pool.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default();
    buf.reserve(min.max(SIZE));
    buf
}

/// Returns a buffer to the pool (or frees it).
pub fn give(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > KEEP_MAX_CAPACITY {
        return;
    }
    buf.clear();
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < KEEP {
            pool.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_empty() {
        let mut buf = take(10);
        assert!(buf.capacity() >= SIZE);
        buf.extend_from_slice(b"old");
        let ptr = buf.as_ptr();
        give(buf);
        let again = take(10);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty());
        // Buffers that grew for a large frame are not kept.
        give(Vec::with_capacity(KEEP_MAX_CAPACITY + 1));
        assert!(take(0).capacity() <= KEEP_MAX_CAPACITY);
    }
}

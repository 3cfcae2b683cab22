//! The init-time heap: a bump allocator over one range of free RAM.
//!
//! gpu-dom allocates at init (tables, bitmaps, buffers, pages to grant) and
//! uses fixed-capacity structures afterwards, so the heap only grows; `free`
//! gives memory back only when it is the most recent allocation (which makes
//! short-lived scratch buffers free).
//!
//! This module is address arithmetic only: [`Bump`] hands out addresses and
//! never touches memory. The `GlobalAlloc` wrapper that turns them into
//! pointers lives in `arch` (behind a `spin` lock).
//!
//! # Invariants
//! - Every allocation lies inside `[start, end)`, is aligned as asked, and no
//!   two live allocations overlap.
//! - Arithmetic cannot wrap: a request that does not fit returns `None`.
#![forbid(unsafe_code)]

/// Bump allocator state over `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bump {
    start: u64,
    next: u64,
    end: u64,
    /// Start of the latest allocation (for the "free the last one" case).
    last: Option<u64>,
    allocations: u64,
}

impl Bump {
    /// An empty heap (every allocation fails) until [`Bump::init`].
    pub const fn empty() -> Self {
        Bump { start: 0, next: 0, end: 0, last: None, allocations: 0 }
    }

    /// A heap over `[start, end)`.
    pub const fn new(start: u64, end: u64) -> Self {
        Bump { start, next: start, end, last: None, allocations: 0 }
    }

    /// Replaces the managed range (only meaningful while empty).
    pub fn init(&mut self, start: u64, end: u64) {
        *self = Bump::new(start, end);
    }

    /// Allocates `size` bytes aligned to `align` (a power of two); returns the address.
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        if !align.is_power_of_two() {
            return None;
        }
        let addr = self.next.checked_add(align - 1)? & !(align - 1);
        let end = addr.checked_add(size.max(1))?;
        if end > self.end {
            return None;
        }
        self.next = end;
        self.last = Some(addr);
        self.allocations += 1;
        Some(addr)
    }

    /// Frees the allocation at `addr` if it is the latest one; otherwise the
    /// memory stays used (init-time heap).
    pub fn free(&mut self, addr: u64) {
        if self.last == Some(addr) {
            self.next = addr;
            self.last = None;
        }
    }

    /// Bytes handed out so far (including alignment padding).
    pub fn used(&self) -> u64 {
        self.next - self.start
    }

    /// Bytes left.
    pub fn remaining(&self) -> u64 {
        self.end - self.next
    }

    /// Allocations made so far.
    pub fn allocations(&self) -> u64 {
        self.allocations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_disjoint_and_inside_the_range() {
        let mut h = Bump::new(0x1003, 0x9000);
        let a = h.alloc(10, 8).unwrap();
        let b = h.alloc(4096, 4096).unwrap();
        let c = h.alloc(1, 1).unwrap();
        assert_eq!(a, 0x1008);
        assert_eq!(b, 0x2000);
        assert_eq!(c, 0x3000);
        assert!(a + 10 <= b && b + 4096 <= c && c < 0x9000);
    }

    #[test]
    fn exhaustion_returns_none_and_keeps_state() {
        let mut h = Bump::new(0, 100);
        assert!(h.alloc(64, 1).is_some());
        let before = h;
        assert_eq!(h.alloc(64, 1), None);
        assert_eq!(h, before);
        assert_eq!(h.remaining(), 36);
    }

    #[test]
    fn huge_requests_do_not_wrap() {
        let mut h = Bump::new(u64::MAX - 100, u64::MAX);
        assert_eq!(h.alloc(u64::MAX, 1), None);
        assert_eq!(h.alloc(8, 1 << 63), None);
        assert_eq!(h.alloc(8, 3), None, "alignment must be a power of two");
    }

    #[test]
    fn freeing_the_latest_allocation_reuses_it() {
        let mut h = Bump::new(0, 4096);
        let a = h.alloc(100, 16).unwrap();
        let b = h.alloc(100, 16).unwrap();
        h.free(a); // not the latest: kept
        h.free(b);
        assert_eq!(h.alloc(50, 16), Some(b));
        assert_eq!(h.allocations(), 3);
    }

    #[test]
    fn empty_heap_refuses_everything() {
        let mut h = Bump::empty();
        assert_eq!(h.alloc(1, 1), None);
    }
}

//! The global allocator: [`crate::heap::Bump`] behind a `spin` lock, over
//! the RAM range `start` picks from the memory map.

use crate::heap::Bump;
use core::alloc::{GlobalAlloc, Layout};

struct Heap(spin::Mutex<Bump>);

// SAFETY: `alloc` returns addresses inside the one RAM range given to
// `init` (identity-mapped, excluded from every other use), aligned as the
// layout asks and disjoint from every live allocation (`Bump`'s invariants);
// null when nothing fits.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(mut h) = self.0.try_lock() else {
            // Re-entered from an interrupt while the lock is held: refuse
            // rather than deadlock (interrupt handlers never allocate).
            return core::ptr::null_mut();
        };
        match h.alloc(layout.size() as u64, layout.align() as u64) {
            Some(a) => a as *mut u8,
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        if let Some(mut h) = self.0.try_lock() {
            h.free(ptr as u64);
        }
    }
}

#[global_allocator]
static HEAP: Heap = Heap(spin::Mutex::new(Bump::empty()));

/// Hands `[start, end)` to the allocator.
pub fn init(start: u64, end: u64) {
    HEAP.0.lock().init(start, end);
}

/// (used, remaining, allocations) of the heap.
pub fn stats() -> (u64, u64, u64) {
    let h = HEAP.0.lock();
    (h.used(), h.remaining(), h.allocations())
}

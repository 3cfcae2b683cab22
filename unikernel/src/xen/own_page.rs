//! A page of our own RAM to grant to another domain (a frontend's ring,
//! directory and data pages), with bounded volatile accessors: the grantee
//! may write it concurrently, so every access is volatile, and ordering
//! between them is the caller's (`fence`).
//!
//! # Invariants
//! - The page is 4 KiB aligned RAM below 4 GiB, identity-mapped, so its GFN
//!   is its address >> 12: heap memory ([`OwnPage::alloc`]), or a spare RAM
//!   page outside the heap that the kernel handed out once
//!   ([`crate::Kernel::take_spare_page`]), never returned to the heap. It is
//!   zeroed when handed out and owned by exactly one [`OwnPage`].
//! - Every access stays inside the page (out-of-range reads give zeros,
//!   out-of-range writes are dropped).
//! - The owner frees it (drop) only after the grant ended (`end_grant`
//!   succeeded): a page the grantee may still map must be leaked instead
//!   (`core::mem::forget`).

use core::alloc::Layout;

const PAGE: usize = 4096;

/// One page of our RAM (see the module documentation).
#[derive(Debug, PartialEq, Eq)]
pub struct OwnPage {
    addr: u64,
    from_heap: bool,
}

fn layout() -> Layout {
    // 4096 is a power of two and a multiple of itself: always valid.
    Layout::from_size_align(PAGE, PAGE).unwrap_or(Layout::new::<u8>())
}

impl OwnPage {
    /// A zeroed page from the heap; `None` when the heap is exhausted.
    pub fn alloc() -> Option<OwnPage> {
        // SAFETY: a non-zero-sized layout; the result is checked for null.
        let p = unsafe { alloc::alloc::alloc_zeroed(layout()) };
        if p.is_null() {
            return None;
        }
        Some(OwnPage { addr: p as u64, from_heap: true })
    }

    /// The spare RAM page at `addr`, zeroed.
    ///
    /// # Safety
    /// `addr` must be a 4 KiB aligned, identity-mapped page of RAM below
    /// 4 GiB that nothing else uses or will use (not the heap, the image,
    /// boot data or another [`OwnPage`]).
    pub(crate) unsafe fn spare(addr: u64) -> OwnPage {
        let mut page = OwnPage { addr, from_heap: false };
        page.write(0, &[0u8; PAGE]);
        page
    }

    /// Its guest frame number (identity mapping: address >> 12).
    pub fn gfn(&self) -> u64 {
        self.addr >> 12
    }

    fn inside(offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= PAGE)
    }

    /// One aligned 32-bit load (0 if misaligned or outside the page).
    pub fn read_u32(&self, offset: usize) -> u32 {
        if !Self::inside(offset, 4) || !offset.is_multiple_of(4) {
            return 0;
        }
        // SAFETY: an aligned u32 inside our page (checked), alive while `self` is.
        unsafe { core::ptr::read_volatile((self.addr + offset as u64) as *const u32) }
    }

    /// One aligned 32-bit store (dropped if misaligned or outside the page).
    pub fn write_u32(&mut self, offset: usize, value: u32) {
        if Self::inside(offset, 4) && offset.is_multiple_of(4) {
            // SAFETY: as in `read_u32`.
            unsafe { core::ptr::write_volatile((self.addr + offset as u64) as *mut u32, value) }
        }
    }

    /// Copies bytes out (zeros if the range leaves the page).
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        if !Self::inside(offset, buf.len()) {
            buf.fill(0);
            return;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: inside our page (checked above).
            *b =
                unsafe { core::ptr::read_volatile((self.addr + (offset + i) as u64) as *const u8) };
        }
    }

    /// Copies bytes in (dropped if the range leaves the page).
    pub fn write(&mut self, offset: usize, data: &[u8]) {
        if !Self::inside(offset, data.len()) {
            return;
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: inside our page (checked above).
            unsafe { core::ptr::write_volatile((self.addr + (offset + i) as u64) as *mut u8, *b) };
        }
    }
}

impl Drop for OwnPage {
    fn drop(&mut self) {
        if !self.from_heap {
            return; // a spare page stays out of the heap for good
        }
        // SAFETY: `addr` came from `alloc_zeroed` with this layout and is
        // freed once (one owner); nothing else refers to it (module invariant).
        unsafe { alloc::alloc::dealloc(self.addr as *mut u8, layout()) };
    }
}

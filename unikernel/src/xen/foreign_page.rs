//! One foreign grant mapped for the CPU's own use (a shared ring page), in
//! the [`CpuPages`] region (never the GPU-reachable window), with bounded
//! volatile accessors: the granting domain writes
//! the page concurrently, so every access is one volatile load or store, and
//! ordering between them is the caller's (`fence`).
//!
//! # Invariants
//! - A [`ForeignPage`] exists only while its grant is mapped: it is made by
//!   a successful map and consumed by [`CpuPages::unmap_page`].
//! - Every access stays inside the page (out-of-range reads give zeros,
//!   out-of-range writes are dropped).

use super::foreign::{CpuPages, MapError, MapRequest, Mapped};
use core::sync::atomic::{fence, Ordering};
use xen_abi::grant_table::GrantRef;
use xen_abi::xen::DomId;

const PAGE: usize = 4096;

/// A writable foreign page for the CPU (see the module documentation).
#[derive(Debug, PartialEq, Eq)]
pub struct ForeignPage {
    m: Mapped,
}

impl ForeignPage {
    /// Where it is mapped.
    pub fn mapped(&self) -> Mapped {
        self.m
    }

    fn addr(&self, offset: usize) -> u64 {
        (self.m.gfn << 12) + offset as u64
    }

    fn inside(offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= PAGE)
    }

    /// One aligned 32-bit load (0 if misaligned or outside the page).
    pub fn read_u32(&self, offset: usize) -> u32 {
        if !Self::inside(offset, 4) || !offset.is_multiple_of(4) {
            return 0;
        }
        // SAFETY: an aligned u32 inside a page (checked) that holds a live
        // grant mapping for as long as `self` exists (module invariant); the
        // reserved region is identity-mapped (`paging::map_gigabyte`).
        unsafe { core::ptr::read_volatile(self.addr(offset) as *const u32) }
    }

    /// One aligned 32-bit store (dropped if misaligned or outside the page).
    pub fn write_u32(&mut self, offset: usize, value: u32) {
        if Self::inside(offset, 4) && offset.is_multiple_of(4) {
            // SAFETY: as in `read_u32`; the mapping is writable (`map_page`).
            unsafe { core::ptr::write_volatile(self.addr(offset) as *mut u32, value) }
        }
    }

    /// Copies `buf.len()` bytes out of the page, each read once.
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        if !Self::inside(offset, buf.len()) {
            buf.fill(0);
            return;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: inside the mapped page (checked above).
            *b = unsafe { core::ptr::read_volatile(self.addr(offset + i) as *const u8) };
        }
    }

    /// Copies `data` into the page.
    pub fn write(&mut self, offset: usize, data: &[u8]) {
        if !Self::inside(offset, data.len()) {
            return;
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: inside the mapped, writable page (checked above).
            unsafe { core::ptr::write_volatile(self.addr(offset + i) as *mut u8, *b) };
        }
    }

    /// A full barrier (`mfence`): orders every earlier access to the page
    /// before every later one, as seen by the other domain.
    pub fn fence(&self) {
        fence(Ordering::SeqCst);
    }
}

impl CpuPages {
    /// Maps `dom`'s grant `gref` writable for the CPU.
    pub fn map_page(&mut self, dom: DomId, gref: GrantRef) -> Result<ForeignPage, MapError> {
        let mut out = [Err(MapError::WindowFull)];
        self.frames.map(&[MapRequest { dom, gref, readonly: false }], &mut out);
        out[0].map(|m| ForeignPage { m })
    }

    /// Unmaps a page from [`CpuPages::map_page`]; false if Xen refused
    /// (the GFN then stays reserved).
    pub fn unmap_page(&mut self, page: ForeignPage) -> bool {
        self.frames.unmap(&[page.m]) == 0
    }
}

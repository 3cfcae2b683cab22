//! One shared page seen by the CPU, with bounded volatile accessors:
//! [`OwnPage`], a page of our RAM that we grant to another domain (a
//! frontend's ring, directory and data pages; netfront's buffers), and
//! [`ForeignPage`], another domain's grant mapped for the CPU (a backend's
//! view of a frontend's ring), in the [`CpuPages`] region (never the
//! GPU-reachable window). Both are a [`Page`], differing only in where the
//! memory comes from ([`Origin`]) and how it goes back; both are
//! [`gpuif::SharedPage`]s. The other domain may write the page
//! concurrently, so every access is volatile, and ordering between them is
//! the caller's ([`Page::fence`]).
//!
//! # Invariants
//! - A page is 4 KiB aligned and identity-mapped, readable and writable,
//!   for as long as its [`Origin`] value lives:
//!   - [`Own`]: RAM below 4 GiB, so its GFN is its address >> 12: heap
//!     memory ([`OwnPage::alloc`]), or a spare RAM page outside the heap
//!     that the kernel handed out once ([`crate::Kernel::take_spare_page`]),
//!     never returned to the heap. Zeroed when handed out, owned by exactly
//!     one [`OwnPage`]. The owner frees it (drop) only after the grant ended
//!     (`end_grant` succeeded): a page the grantee may still map must be
//!     leaked instead (`core::mem::forget`).
//!   - [`Foreign`]: exists only while its grant is mapped writable: made by
//!     a successful [`CpuPages::map_page`] and consumed by
//!     [`CpuPages::unmap_page`].
//! - Every access stays inside the page (out-of-range reads give zeros,
//!   out-of-range writes are dropped).

use core::alloc::Layout;
use core::sync::atomic::{fence, Ordering};

use super::foreign::{CpuPages, MapError, MapRequest, Mapped};
use xen_abi::grant_table::GrantRef;
use xen_abi::xen::DomId;

const PAGE: usize = 4096;

/// Where a page's memory comes from.
///
/// # Safety
/// `base` must be the address of a 4 KiB aligned, identity-mapped page that
/// is readable and writable for as long as the value lives (see the module
/// invariants). Implemented only in this module.
pub unsafe trait Origin: private::Sealed {
    /// The page's address.
    fn base(&self) -> u64;
}

mod private {
    pub trait Sealed {}
    impl Sealed for super::Own {}
    impl Sealed for super::Foreign {}
}

/// One shared page (see the module documentation).
#[derive(Debug, PartialEq, Eq)]
pub struct Page<O: Origin> {
    origin: O,
}

/// A page of our RAM.
pub type OwnPage = Page<Own>;
/// Another domain's page, mapped for the CPU.
pub type ForeignPage = Page<Foreign>;

impl<O: Origin> Page<O> {
    fn inside(offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= PAGE)
    }

    fn addr(&self, offset: usize) -> u64 {
        self.origin.base() + offset as u64
    }

    /// One aligned 32-bit load (0 if misaligned or outside the page).
    pub fn read_u32(&self, offset: usize) -> u32 {
        if !Self::inside(offset, 4) || !offset.is_multiple_of(4) {
            return 0;
        }
        // SAFETY: an aligned u32 inside the page (checked), which is mapped
        // and readable while `self` lives (`Origin`'s contract).
        unsafe { core::ptr::read_volatile(self.addr(offset) as *const u32) }
    }

    /// One aligned 32-bit store (dropped if misaligned or outside the page).
    pub fn write_u32(&mut self, offset: usize, value: u32) {
        if Self::inside(offset, 4) && offset.is_multiple_of(4) {
            // SAFETY: as in `read_u32`; the page is writable (`Origin`).
            unsafe { core::ptr::write_volatile(self.addr(offset) as *mut u32, value) }
        }
    }

    /// Copies `buf.len()` bytes out of the page, each read once (zeros if
    /// the range leaves the page).
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        if !Self::inside(offset, buf.len()) {
            buf.fill(0);
            return;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: inside the page (checked above), mapped while `self` lives.
            *b = unsafe { core::ptr::read_volatile(self.addr(offset + i) as *const u8) };
        }
    }

    /// Copies `data` into the page (dropped if the range leaves the page).
    pub fn write(&mut self, offset: usize, data: &[u8]) {
        if !Self::inside(offset, data.len()) {
            return;
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: inside the page (checked above), mapped writable while
            // `self` lives.
            unsafe { core::ptr::write_volatile(self.addr(offset + i) as *mut u8, *b) };
        }
    }

    /// A full barrier (`mfence`): orders every earlier access to the page
    /// before every later one, as seen by the other domain.
    pub fn fence(&self) {
        fence(Ordering::SeqCst);
    }
}

impl<O: Origin> gpuif::SharedPage for Page<O> {
    fn read_u32(&self, offset: usize) -> u32 {
        Page::read_u32(self, offset)
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        Page::write_u32(self, offset, value)
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        Page::read(self, offset, buf)
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        Page::write(self, offset, data)
    }
    fn fence(&self) {
        Page::fence(self)
    }
}

/// Our own RAM: from the heap, or a spare page outside it.
#[derive(Debug, PartialEq, Eq)]
pub struct Own {
    addr: u64,
    from_heap: bool,
}

// SAFETY: `addr` is a zeroed heap allocation of one aligned page, or a
// spare page the kernel handed out once (`OwnPage::spare`'s contract); RAM
// below 4 GiB is identity-mapped; it is freed only when `Own` drops.
unsafe impl Origin for Own {
    fn base(&self) -> u64 {
        self.addr
    }
}

fn layout() -> Layout {
    // 4096 is a power of two and a multiple of itself: always valid.
    Layout::from_size_align(PAGE, PAGE).unwrap_or(Layout::new::<u8>())
}

impl Page<Own> {
    /// A zeroed page from the heap; `None` when the heap is exhausted.
    pub fn alloc() -> Option<OwnPage> {
        // SAFETY: a non-zero-sized layout; the result is checked for null.
        let p = unsafe { alloc::alloc::alloc_zeroed(layout()) };
        if p.is_null() {
            return None;
        }
        Some(Page { origin: Own { addr: p as u64, from_heap: true } })
    }

    /// The spare RAM page at `addr`, zeroed.
    ///
    /// # Safety
    /// `addr` must be a 4 KiB aligned, identity-mapped page of RAM below
    /// 4 GiB that nothing else uses or will use (not the heap, the image,
    /// boot data or another [`OwnPage`]).
    pub(crate) unsafe fn spare(addr: u64) -> OwnPage {
        let mut page = Page { origin: Own { addr, from_heap: false } };
        page.write(0, &[0u8; PAGE]);
        page
    }

    /// Its guest frame number (identity mapping: address >> 12).
    pub fn gfn(&self) -> u64 {
        self.origin.addr >> 12
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        if !self.from_heap {
            return; // a spare page stays out of the heap for good
        }
        // SAFETY: `addr` came from `alloc_zeroed` with this layout and is
        // freed once (one owner); nothing else refers to it (module invariant).
        unsafe { alloc::alloc::dealloc(self.addr as *mut u8, layout()) };
    }
}

/// A foreign grant mapped writable into the CPU pages region.
#[derive(Debug, PartialEq, Eq)]
pub struct Foreign {
    m: Mapped,
}

// SAFETY: a `Foreign` is made only by a successful writable `map_page` and
// consumed by `unmap_page`, so its frame holds the live grant mapping while
// it exists; the reserved region is identity-mapped (`paging::map_gigabyte`).
unsafe impl Origin for Foreign {
    fn base(&self) -> u64 {
        self.m.gfn << 12
    }
}

impl Page<Foreign> {
    /// Where it is mapped.
    pub fn mapped(&self) -> Mapped {
        self.origin.m
    }
}

impl CpuPages {
    /// Maps `dom`'s grant `gref` writable for the CPU.
    pub fn map_page(&mut self, dom: DomId, gref: GrantRef) -> Result<ForeignPage, MapError> {
        let mut out = [Err(MapError::WindowFull)];
        self.frames.map(&[MapRequest { dom, gref, readonly: false }], &mut out);
        out[0].map(|m| Page { origin: Foreign { m } })
    }

    /// Unmaps a page from [`CpuPages::map_page`]; false if Xen refused
    /// (the GFN then stays reserved).
    pub fn unmap_page(&mut self, page: ForeignPage) -> bool {
        self.frames.unmap(&[page.origin.m]) == 0
    }
}

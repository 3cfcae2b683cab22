//! Uncached mappings of device registers (a PCI BAR) and volatile access
//! to them.
//!
//! The boot tables map 0..4 GiB with write-back 2 MiB pages. A BAR below
//! 4 GiB is remapped here with 4 KiB pages marked `PCD | PWT` (uncacheable
//! with the default PAT), so that every register access reaches the device
//! in program order; the rest of its 2 MiB page keeps its old attributes.
//!
//! # Invariants
//! - Only addresses inside the mapped BAR are ever accessed ([`Mmio`]
//!   checks every offset; an access outside reads all-ones and writes
//!   nothing).
//! - A region is mapped at most once; RAM is never marked uncached (the
//!   caller passes a BAR, which firmware placed in the PCI hole).

use super::paging::{self, PagingError};

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const HUGE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// An uncached, identity-mapped register window.
#[derive(Debug)]
pub struct Mmio {
    base: u64,
    len: u64,
}

/// Maps `base..base + len` (page-aligned, below 4 GiB) uncached.
pub fn map_uncached(base: u64, len: u64) -> Result<Mmio, PagingError> {
    if base & 0xfff != 0 || len == 0 || base.checked_add(len).is_none_or(|e| e > 1 << 32) {
        return Err(PagingError::OutOfRange(base));
    }
    let mut addr = base;
    while addr < base + len {
        set_uncached_4k(addr)?;
        addr += 4096;
    }
    Ok(Mmio { base, len })
}

fn set_uncached_4k(addr: u64) -> Result<(), PagingError> {
    // SAFETY: the PDPT/PD entries are the boot tables (identity-mapped, in
    // .bss). A 2 MiB page is split into a PT that maps exactly the same
    // frames with the same flags; then one PTE gains PCD|PWT. Only BAR
    // pages (device memory in the PCI hole, never RAM or our image) change
    // attributes; the TLB entries are flushed after.
    unsafe {
        let pdpte = core::ptr::read_volatile(paging::pdpt().add((addr >> 30) as usize));
        if pdpte & PRESENT == 0 {
            return Err(PagingError::OutOfRange(addr));
        }
        let pd = (pdpte & ADDR_MASK) as *mut u64;
        let pde_p = pd.add(((addr >> 21) & 511) as usize);
        let pde = core::ptr::read_volatile(pde_p);
        let pt = if pde & HUGE != 0 {
            let pt = paging::alloc_table()?;
            let frame = pde & ADDR_MASK & !0x1f_ffff;
            let flags = pde & (PRESENT | WRITABLE | PWT | PCD);
            for i in 0..512u64 {
                core::ptr::write_volatile(pt.add(i as usize), (frame + (i << 12)) | flags);
            }
            core::ptr::write_volatile(pde_p, pt as u64 | PRESENT | WRITABLE);
            pt
        } else {
            (pde & ADDR_MASK) as *mut u64
        };
        core::ptr::write_volatile(
            pt.add(((addr >> 12) & 511) as usize),
            addr | PRESENT | WRITABLE | PCD | PWT,
        );
    }
    super::cpu::invlpg(addr);
    super::cpu::invlpg(addr & !0x1f_ffff);
    Ok(())
}

impl Mmio {
    /// Bus/physical address of the window.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the window is empty (never: [`map_uncached`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn inside(&self, offset: u64, size: u64) -> bool {
        offset.is_multiple_of(size) && offset.checked_add(size).is_some_and(|e| e <= self.len)
    }

    /// Reads the 32-bit register at `offset` (all-ones outside the window).
    pub fn read32(&self, offset: u64) -> u32 {
        if !self.inside(offset, 4) {
            return u32::MAX;
        }
        // SAFETY: inside the uncached window (checked), aligned.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    /// Writes the 32-bit register at `offset` (ignored outside the window).
    pub fn write32(&self, offset: u64, value: u32) {
        if self.inside(offset, 4) {
            // SAFETY: inside the uncached window (checked), aligned.
            unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
        }
    }

    /// Reads the 64-bit register at `offset` (all-ones outside the window).
    pub fn read64(&self, offset: u64) -> u64 {
        if !self.inside(offset, 8) {
            return u64::MAX;
        }
        // SAFETY: inside the uncached window (checked), aligned.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u64) }
    }

    /// Writes the 64-bit register at `offset` (ignored outside the window).
    pub fn write64(&self, offset: u64, value: u64) {
        if self.inside(offset, 8) {
            // SAFETY: inside the uncached window (checked), aligned.
            unsafe { core::ptr::write_volatile((self.base + offset) as *mut u64, value) }
        }
    }
}

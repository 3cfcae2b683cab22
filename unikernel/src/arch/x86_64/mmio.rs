//! Uncached mappings of device registers (a PCI BAR) and volatile access
//! to them.
//!
//! The boot tables map 0..4 GiB with write-back 2 MiB pages. A BAR below
//! 4 GiB is remapped here with 4 KiB pages marked `PCD | PWT` (uncacheable
//! with the default PAT), so that every register access reaches the device
//! in program order; the rest of its 2 MiB page keeps its old attributes
//! (`paging::map_4k`, with the `x86_64` crate's `PageTableFlags`).
//!
//! # Invariants
//! - Only addresses inside the mapped BAR are ever accessed ([`Mmio`]
//!   checks every offset; an access outside reads all-ones and writes
//!   nothing).
//! - A region is mapped at most once; RAM is never marked uncached (the
//!   caller passes a BAR, which firmware placed in the PCI hole).

use x86_64::structures::paging::PageTableFlags as Flags;

use super::paging::{self, PagingError};

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
        // Only BAR pages (device memory in the PCI hole, never RAM or our
        // image) change attributes; `paging` splits the 2 MiB page first.
        paging::map_4k(addr, Flags::WRITABLE | Flags::NO_CACHE | Flags::WRITE_THROUGH)?;
        addr += 4096;
    }
    Ok(Mmio { base, len })
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

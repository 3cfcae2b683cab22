//! PPGTT table pages: a fixed pool of 4 KiB pages from [`TableMemory`], the
//! scratch page and one scratch table per directory level, and the entries
//! written into them.
//!
//! # Sources
//! - Intel PRM, Skylake, Vol. 5 "Memory Views", "Per-Process GTT (PPGTT)":
//!   the 4-level 48-bit layout (PML4 → PDP → PD → PT, 512 entries each).
//! - Linux `gt/gen8_ppgtt.c` `gen8_init_scratch`: `scratch[0]` is a page whose
//!   leaf entry is uncached and read-only (`I915_CACHE_NONE`,
//!   `PTE_READ_ONLY` when the VM supports it: Gen8+ does), built with the
//!   VM's `pte_encode` (`gen8_pte_encode`, or `gen12_pte_encode` from Gen12);
//!   `scratch[i]` is a table filled with `scratch[i-1]`'s entry, and its own
//!   entry is a `gen8_pde_encode` directory entry (every generation). A fresh
//!   table of level L is filled with the scratch entry of L (`fill_px`).
//! - The layout and walk are the same on Gen12 integrated parts: i915 builds
//!   their PPGTTs with the same `gen8_ppgtt_create` (4 levels of 512 entries,
//!   `ppgtt_size = 48` in `i915_pci.c`); the entries differ only as
//!   [`crate::pte`] says.
//!
//! # Invariants
//! - Pool pages 0..4 are the scratch page and the scratch PT, PD and PDP;
//!   they are never handed out, and no write reaches them after init.
//! - A table page is handed out at most once until it is freed; each page
//!   in use has exactly one level.
//! - Every entry of a page in use holds an encoder's output or the scratch
//!   entry of its level.

extern crate alloc;

use alloc::vec::Vec;

use gtt::{BusAddr, Level};

use crate::pte::{AddrError, Entry, Format};

/// Memory for PPGTT tables: `pages()` 4 KiB pages, each at a fixed bus
/// address the GPU can reach (through the driver domain's IOMMU context),
/// read and written as 512 little-endian `u64`s.
///
/// The unikernel implements it over page-aligned memory it allocated at
/// boot (volatile accesses); the model over a `Vec`.
pub trait TableMemory {
    /// Number of pages (fixed).
    fn pages(&self) -> u32;
    /// Bus address of page `page` (4 KiB aligned).
    fn bus(&self, page: u32) -> u64;
    /// Entry `index` (0..512) of page `page`.
    fn read(&self, page: u32, index: u16) -> u64;
    /// Writes entry `index` (0..512) of page `page`.
    fn write(&mut self, page: u32, index: u16, value: u64);
    /// Makes every earlier write visible to the GPU's page walker (a store
    /// fence; a cache flush where the GPU does not snoop the CPU caches).
    fn make_visible(&mut self);
}

/// Entries per table page.
pub const ENTRIES: u16 = 512;

/// Pool index of the scratch data page.
pub const SCRATCH_PAGE: u32 = 0;
/// Pool index of the scratch PT, PD, PDP (in that order).
const SCRATCH_TABLES: [u32; 3] = [1, 2, 3];
/// First pool index handed out as a table.
pub const FIRST_TABLE: u32 = 4;

/// Why the pool could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// Fewer pages than the scratch set plus one table (the count given).
    TooFewPages(u32),
    /// A page's bus address cannot go in an entry (page, error).
    Unencodable(u32, AddrError),
}

/// The scratch entry an unset entry of a `level` table holds.
fn scratch_entry_for(
    mem: &impl TableMemory,
    format: Format,
    level: Level,
) -> Result<Entry, AddrError> {
    match level {
        Level::Pt => format.leaf(mem.bus(SCRATCH_PAGE), false, format.scratch_pat()),
        Level::Pd => format.dir(mem.bus(SCRATCH_TABLES[0])),
        Level::Pdp => format.dir(mem.bus(SCRATCH_TABLES[1])),
        Level::Pml4 => format.dir(mem.bus(SCRATCH_TABLES[2])),
    }
}

const fn level_slot(level: Level) -> usize {
    match level {
        Level::Pml4 => 0,
        Level::Pdp => 1,
        Level::Pd => 2,
        Level::Pt => 3,
    }
}

/// The pool of table pages. See the module documentation.
#[derive(Debug)]
pub struct TablePool {
    /// Scratch entry per level, indexed by `level_slot`.
    scratch: [Entry; 4],
    /// Level of each page in use; `None` when free (or scratch).
    level: Vec<Option<Level>>,
    /// Free pages, next to hand out last.
    free: Vec<u32>,
}

impl TablePool {
    /// Builds the scratch chain in pages 0..4 of `mem` with entries of
    /// `format` and puts the rest in the free list (all allocation happens here).
    pub(crate) fn new<T: TableMemory>(mem: &mut T, format: Format) -> Result<Self, PoolError> {
        let pages = mem.pages();
        if pages <= FIRST_TABLE {
            return Err(PoolError::TooFewPages(pages));
        }
        for p in 0..pages {
            if let Err(e) = format.dir(mem.bus(p)) {
                return Err(PoolError::Unencodable(p, e));
            }
        }
        let mut scratch = [Entry::NOT_PRESENT; 4];
        for level in Level::ALL {
            let e =
                scratch_entry_for(mem, format, level).map_err(|e| PoolError::Unencodable(0, e))?;
            scratch[level_slot(level)] = e;
        }
        for i in 0..ENTRIES {
            mem.write(SCRATCH_PAGE, i, 0);
        }
        // The scratch PT holds scratch leaves, the PD scratch-PT entries,
        // the PDP scratch-PD entries.
        for (page, level) in SCRATCH_TABLES.into_iter().zip([Level::Pt, Level::Pd, Level::Pdp]) {
            let e = scratch[level_slot(level)].bits();
            for i in 0..ENTRIES {
                mem.write(page, i, e);
            }
        }
        let mut level = Vec::with_capacity(pages as usize);
        level.resize(pages as usize, None);
        Ok(TablePool { scratch, level, free: (FIRST_TABLE..pages).rev().collect() })
    }

    /// The entry an unset entry of a `level` table holds.
    pub fn scratch_entry(&self, level: Level) -> Entry {
        self.scratch[level_slot(level)]
    }

    /// The bus address of the scratch data page.
    pub fn scratch_page<T: TableMemory>(&self, mem: &T) -> BusAddr {
        BusAddr(mem.bus(SCRATCH_PAGE))
    }

    /// Tables in use.
    pub fn in_use(&self) -> u32 {
        (self.level.len() - FIRST_TABLE as usize - self.free.len()) as u32
    }

    /// Hands out a page for a `level` table, filled with that level's scratch.
    pub(crate) fn alloc<T: TableMemory>(&mut self, mem: &mut T, level: Level) -> Option<u32> {
        let page = self.free.pop()?;
        let e = self.scratch_entry(level).bits();
        for i in 0..ENTRIES {
            mem.write(page, i, e);
        }
        self.level[page as usize] = Some(level);
        Some(page)
    }

    /// The level of page `page` if it is a table in use at bus address `bus`.
    pub(crate) fn live<T: TableMemory>(&self, mem: &T, page: u32, bus: BusAddr) -> Option<Level> {
        let level = (*self.level.get(page as usize)?)?;
        (mem.bus(page) == bus.0).then_some(level)
    }

    /// Returns a page in use to the free list.
    pub(crate) fn free(&mut self, page: u32) {
        self.level[page as usize] = None;
        self.free.push(page);
    }
}

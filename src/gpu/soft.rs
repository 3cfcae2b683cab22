//! The software GPU: what gpu-dom drives when it owns no Intel GPU (a PVH
//! domU has no PCI devices). Its GGTT and PPGTT tables live in gpu-dom's own
//! memory and hold exactly what the i915-lite driver will write into a real
//! GPU's: Gen8 64-bit entries (`i915_lite::pte::Gen8Pte`), a scratch page and
//! one scratch table per level for every entry that maps nothing, and
//! table pages whose bus address is their guest-physical address (the p2m is
//! what the IOMMU enforces for a PVH/HVM driver domain). `invalidate` is a
//! full fence and a counter: the software GPU has no TLB.
//!
//! Nothing walks these tables but the tests (`SoftGpu::walk`).
//!
//! # Invariants
//! - Every entry of the GGTT and of every table page holds either what `gtt`
//!   asked for, or the scratch entry of its level; never another address.
//! - Table pages are allocated once, at [`SoftGpu::new`]; a page is handed
//!   out at most once until it is freed, and the scratch pages never.
//! - Bus addresses are host addresses of the pages: gpu-dom's memory is
//!   identity-mapped, so they are guest-physical addresses (GFN << 12).
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};

use gtt::platform::{GpuCaps, GpuTables, MappingCap, TablePage};
use gtt::{Access, BusAddr, Level};
use i915_lite::pte::{Gen8Pte, Ppat};

use super::GpuStats;

/// One 4 KiB page of 512 entries, page aligned.
#[repr(C, align(4096))]
#[derive(Clone)]
pub struct Page(pub [u64; 512]);

/// Pool slots of the scratch pages: the data page, then the scratch table
/// of each level from the leaves up.
const SCRATCH_PAGE: usize = 0;
const SCRATCH_PT: usize = 1;
const SCRATCH_PD: usize = 2;
const SCRATCH_PDP: usize = 3;
const FIRST_TABLE: usize = 4;

/// The software GPU. See the module documentation.
pub struct SoftGpu {
    ggtt: Vec<u64>,
    pool: Vec<Page>,
    /// Bus address of `pool[0]`.
    bus_base: u64,
    free: Vec<u32>,
    in_use: Vec<bool>,
    stats: GpuStats,
}

impl SoftGpu {
    /// A GPU with `ggtt_entries` GGTT entries and `table_pages` PPGTT table
    /// pages (plus four scratch pages); everything is allocated here.
    pub fn new(ggtt_entries: u32, table_pages: usize) -> Self {
        Self::build(ggtt_entries, table_pages, None)
    }

    /// `new`, with the pool seen at bus address `base` (host tests: a host
    /// heap address does not fit a Gen8 entry).
    #[cfg(test)]
    fn at_bus(ggtt_entries: u32, table_pages: usize, base: u64) -> Self {
        Self::build(ggtt_entries, table_pages, Some(base))
    }

    fn build(ggtt_entries: u32, table_pages: usize, bus_base: Option<u64>) -> Self {
        let pages = FIRST_TABLE + table_pages;
        let pool = alloc::vec![Page([0; 512]); pages];
        // Identity-mapped: a page's address is its guest-physical address.
        let bus_base = bus_base.unwrap_or(pool.as_ptr() as u64);
        let mut gpu = SoftGpu {
            ggtt: Vec::with_capacity(ggtt_entries as usize),
            pool,
            bus_base,
            free: (FIRST_TABLE as u32..pages as u32).rev().collect(),
            in_use: alloc::vec![false; pages],
            stats: GpuStats::default(),
        };
        // Scratch chain, as i915's `gen8_init_scratch`: a zero page, a PT of
        // read-only uncached leaves to it, then a PD and a PDP of directory
        // entries to the level below.
        let leaf = gpu.scratch_entry(Level::Pt);
        gpu.pool[SCRATCH_PT].0 = [leaf; 512];
        let pd = gpu.scratch_entry(Level::Pd);
        gpu.pool[SCRATCH_PD].0 = [pd; 512];
        let pdp = gpu.scratch_entry(Level::Pdp);
        gpu.pool[SCRATCH_PDP].0 = [pdp; 512];
        let ggtt = gpu.ggtt_scratch();
        gpu.ggtt.resize(ggtt_entries as usize, ggtt);
        gpu
    }

    fn bus_of(&self, slot: usize) -> u64 {
        self.bus_base + (slot as u64) * 4096
    }

    #[cfg(test)]
    fn slot_of(&self, bus: u64) -> Option<usize> {
        let off = bus.checked_sub(self.bus_base)?;
        let slot = (off / 4096) as usize;
        (off % 4096 == 0 && slot < self.pool.len()).then_some(slot)
    }

    fn encode(&mut self, e: Result<Gen8Pte, i915_lite::pte::AddrError>) -> Option<u64> {
        match e {
            Ok(pte) => Some(pte.bits()),
            Err(_) => {
                self.stats.rejected += 1;
                None
            }
        }
    }

    /// The entry an unset entry of a table at `level` holds.
    fn scratch_entry(&self, level: Level) -> u64 {
        let e = match level {
            Level::Pt => Gen8Pte::leaf(self.bus_of(SCRATCH_PAGE), false, Ppat::UNCACHED),
            Level::Pd => Gen8Pte::dir(self.bus_of(SCRATCH_PT)),
            Level::Pdp => Gen8Pte::dir(self.bus_of(SCRATCH_PD)),
            Level::Pml4 => Gen8Pte::dir(self.bus_of(SCRATCH_PDP)),
        };
        e.map_or(0, Gen8Pte::bits)
    }

    fn ggtt_scratch(&self) -> u64 {
        Gen8Pte::ggtt(self.bus_of(SCRATCH_PAGE)).map_or(0, Gen8Pte::bits)
    }

    /// The pool slot of an allocated table, or `None` (counted as rejected).
    fn table_slot(&mut self, t: TablePage, index: u16) -> Option<usize> {
        let slot = t.id as usize;
        let ok = slot >= FIRST_TABLE
            && self.in_use.get(slot).copied().unwrap_or(false)
            && self.bus_of(slot) == t.bus.0
            && (index as usize) < 512;
        if !ok {
            self.stats.rejected += 1;
        }
        ok.then_some(slot)
    }

    fn write(&mut self, slot: usize, index: u16, value: u64) {
        self.pool[slot].0[index as usize] = value;
        self.stats.writes += 1;
    }

    /// Counters.
    pub fn stats(&self) -> GpuStats {
        self.stats
    }

    /// Bytes of gpu-dom memory the tables occupy.
    pub fn footprint(&self) -> usize {
        self.ggtt.len() * 8 + self.pool.len() * 4096
    }

    /// True when nothing is mapped: every GGTT entry is scratch and no
    /// table page is in use (what revoking every guest must leave).
    pub fn is_idle(&self) -> bool {
        let scratch = self.ggtt_scratch();
        self.stats.tables_in_use == 0 && self.ggtt.iter().all(|e| *e == scratch)
    }

    /// The raw GGTT entry `index`.
    #[cfg(test)]
    pub fn ggtt_entry(&self, index: u32) -> Option<Gen8Pte> {
        self.ggtt.get(index as usize).map(|b| Gen8Pte::from_bits(*b))
    }

    /// The bus address of the scratch page (what unset entries resolve to).
    #[cfg(test)]
    pub fn scratch_page(&self) -> BusAddr {
        BusAddr(self.bus_of(SCRATCH_PAGE))
    }

    /// Translates `va` through the PPGTT whose PML4 is at `root`, as the
    /// GPU's walker would: the page's bus address and whether it is
    /// writable, or `None` if the walk ends at scratch or outside the tables.
    #[cfg(test)]
    pub fn walk(&self, root: BusAddr, va: u64) -> Option<(BusAddr, bool)> {
        let mut table = self.slot_of(root.0)?;
        for level in Level::ALL {
            let pte = Gen8Pte::from_bits(self.pool[table].0[level.index(va) as usize]);
            if !pte.present() {
                return None;
            }
            if level == Level::Pt {
                let page = pte.addr();
                let writable = pte.bits() & i915_lite::pte::RW != 0;
                return (page != self.bus_of(SCRATCH_PAGE)).then_some((BusAddr(page), writable));
            }
            table = self.slot_of(pte.addr())?;
            if table < FIRST_TABLE {
                return None;
            }
        }
        None
    }
}

impl GpuTables for SoftGpu {
    fn caps(&self) -> GpuCaps {
        GpuCaps {
            ggtt_entries: self.ggtt.len() as u32,
            ggtt_read_only: false,
            ppgtt_read_only: true,
        }
    }

    fn ggtt_set(&mut self, _: &MappingCap, index: u32, page: BusAddr, _: Access) {
        // The Gen8/Gen9 GGTT has no RW bit (caps say so; gtt refuses RO).
        let Some(bits) = self.encode(Gen8Pte::ggtt(page.0)) else { return };
        match self.ggtt.get_mut(index as usize) {
            Some(e) => {
                *e = bits;
                self.stats.writes += 1;
            }
            None => self.stats.rejected += 1,
        }
    }

    fn ggtt_clear(&mut self, _: &MappingCap, index: u32) {
        let scratch = self.ggtt_scratch();
        match self.ggtt.get_mut(index as usize) {
            Some(e) => {
                *e = scratch;
                self.stats.writes += 1;
            }
            None => self.stats.rejected += 1,
        }
    }

    fn table_alloc(&mut self, _: &MappingCap, level: Level) -> Option<TablePage> {
        let slot = self.free.pop()? as usize;
        let scratch = self.scratch_entry(level);
        self.pool[slot].0 = [scratch; 512];
        self.in_use[slot] = true;
        self.stats.tables_in_use += 1;
        Some(TablePage { bus: BusAddr(self.bus_of(slot)), id: slot as u32 })
    }

    fn table_free(&mut self, _: &MappingCap, table: TablePage) {
        if let Some(slot) = self.table_slot(table, 0) {
            self.in_use[slot] = false;
            self.free.push(slot as u32);
            self.stats.tables_in_use -= 1;
        }
    }

    fn table_set_leaf(&mut self, _: &MappingCap, t: TablePage, i: u16, page: BusAddr, a: Access) {
        let Some(slot) = self.table_slot(t, i) else { return };
        let pte = Gen8Pte::leaf(page.0, a == Access::ReadWrite, Ppat::CACHED);
        if let Some(bits) = self.encode(pte) {
            self.write(slot, i, bits);
        }
    }

    fn table_set_dir(&mut self, _: &MappingCap, t: TablePage, _: Level, i: u16, child: TablePage) {
        let Some(slot) = self.table_slot(t, i) else { return };
        if let Some(bits) = self.encode(Gen8Pte::dir(child.bus.0)) {
            self.write(slot, i, bits);
        }
    }

    fn table_clear(&mut self, _: &MappingCap, t: TablePage, level: Level, i: u16) {
        let Some(slot) = self.table_slot(t, i) else { return };
        let scratch = self.scratch_entry(level);
        self.write(slot, i, scratch);
    }

    fn invalidate(&mut self, _: &MappingCap) {
        // Table writes are plain stores; make them globally visible before
        // gtt goes on to unmap grants (what a real GPU's TLB flush orders).
        fence(Ordering::SeqCst);
        self.stats.invalidations += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gtt::testing::FixedMapper;
    use gtt::{Config, DomId, Engine, GgttEntry, GrantRef, Limits, PpgttEntry};

    const GRANT_BUS: u64 = 0x50_0000_0000;

    fn bus_of_gref(g: u32) -> u64 {
        FixedMapper::new(GRANT_BUS).bus_of(g).0
    }

    const DOM: DomId = DomId(3);
    const TEST_BUS: u64 = 0x1_0000_0000;

    fn engine() -> Engine<FixedMapper, SoftGpu> {
        let cfg =
            Config { max_guests: 2, grant_slots: 256, table_pages: 32, contexts: 4, max_batch: 64 };
        let mut e =
            Engine::new(cfg, FixedMapper::new(GRANT_BUS), SoftGpu::at_bus(1024, 32, TEST_BUS));
        let limits = Limits {
            ggtt_base: 100,
            ggtt_len: 16,
            max_contexts: 2,
            max_pages: 64,
            max_table_pages: 16,
        };
        e.attach(DOM, limits).unwrap();
        e
    }

    #[test]
    fn unset_entries_point_at_scratch_and_the_caps_are_gen8s() {
        let gpu = SoftGpu::at_bus(8, 2, TEST_BUS);
        let scratch = gpu.scratch_page();
        assert_eq!(scratch.0 % 4096, 0);
        for i in 0..8 {
            let e = gpu.ggtt_entry(i).unwrap();
            assert!(e.present());
            assert_eq!(e.addr(), scratch.0);
        }
        let caps = gpu.caps();
        assert_eq!(
            (caps.ggtt_entries, caps.ggtt_read_only, caps.ppgtt_read_only),
            (8, false, true)
        );
    }

    #[test]
    fn mapped_ppgtt_entries_resolve_through_the_tables_with_their_access() {
        let mut e = engine();
        let ctx = e.context_create(DOM).unwrap();
        let root = e.context_root(DOM, ctx).unwrap();
        assert_eq!(root.0 % 4096, 0);
        let entries = [
            PpgttEntry { addr: 0x1000, gref: GrantRef(10), access: Access::ReadWrite },
            PpgttEntry { addr: 0x7f_c000_0000, gref: GrantRef(11), access: Access::ReadOnly },
        ];
        assert!(e.ppgtt_map(DOM, ctx, &entries).is_complete());
        let gpu = e.gpu();
        assert_eq!(gpu.walk(root, 0x1000), Some((BusAddr(bus_of_gref(10)), true)));
        assert_eq!(gpu.walk(root, 0x7f_c000_0000), Some((BusAddr(bus_of_gref(11)), false)));
        assert_eq!(gpu.walk(root, 0x2000), None, "an unset leaf is scratch");
        assert_eq!(gpu.walk(root, 0x40_0000_0000), None, "an unset directory is scratch");
        assert!(gpu.stats().invalidations >= 1);
        assert_eq!(gpu.stats().rejected, 0);
    }

    #[test]
    fn unmap_and_detach_return_every_entry_and_table_to_scratch() {
        let mut e = engine();
        let ctx = e.context_create(DOM).unwrap();
        let root = e.context_root(DOM, ctx).unwrap();
        let m = [PpgttEntry { addr: 0x20_0000, gref: GrantRef(5), access: Access::ReadWrite }];
        assert!(e.ppgtt_map(DOM, ctx, &m).is_complete());
        let g = [GgttEntry { index: 3, gref: GrantRef(6), access: Access::ReadWrite }];
        assert!(e.ggtt_map(DOM, &g).is_complete());
        assert_eq!(e.gpu().ggtt_entry(103).unwrap().addr(), bus_of_gref(6));
        assert!(e.ppgtt_unmap(DOM, ctx, &[0x20_0000]).is_complete());
        assert_eq!(e.gpu().walk(root, 0x20_0000), None);
        assert!(!e.gpu().is_idle());
        e.detach(DOM).unwrap();
        let gpu = e.gpu();
        assert!(gpu.is_idle());
        assert_eq!(gpu.ggtt_entry(103).unwrap().addr(), gpu.scratch_page().0);
        assert_eq!(gpu.stats().tables_in_use, 0);
        assert_eq!(gpu.stats().rejected, 0);
    }

    #[test]
    fn tables_are_allocated_once_at_init() {
        let gpu = SoftGpu::new(16, 3);
        assert_eq!(gpu.footprint(), 16 * 8 + (FIRST_TABLE + 3) * 4096);
        assert_eq!(gpu.free.len(), 3);
        assert_eq!(gpu.pool.as_ptr() as u64 % 4096, 0, "table pages are page aligned");
    }

    #[test]
    fn the_pool_runs_out_instead_of_reusing_a_live_table() {
        let mut gpu = SoftGpu::at_bus(1, 2, TEST_BUS);
        let cap = gtt::platform::testing_cap();
        let a = gpu.table_alloc(&cap, Level::Pt).unwrap();
        let b = gpu.table_alloc(&cap, Level::Pd).unwrap();
        assert_ne!(a.bus, b.bus);
        assert!(gpu.table_alloc(&cap, Level::Pt).is_none());
        gpu.table_free(&cap, a);
        gpu.table_free(&cap, a);
        assert_eq!(gpu.stats().rejected, 1, "a double free is refused");
        assert_eq!(gpu.table_alloc(&cap, Level::Pt).unwrap().bus, a.bus);
    }
}

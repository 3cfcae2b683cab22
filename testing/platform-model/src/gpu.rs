//! The model GPU's page tables, as the driver exposes them to `gtt`
//! ([`GpuTables`]): a GGTT of Gen8 PTEs, PPGTT table pages in backend RAM, a
//! scratch page and one scratch table per directory level (as i915's
//! `vm->scratch[0..4]`).
//!
//! Table pages are real bytes in backend frames: 512 little-endian `u64`
//! [`Gen8Pte`]s written with the `i915-lite` encoder, so the GPU walk in
//! [`walk`](crate::walk) reads exactly what a Gen8/Gen9 GPU would.
//!
//! # Invariants
//! - Every GGTT entry and every entry of a live table is either what `gtt`
//!   last set or the scratch entry for its level; a freshly allocated table
//!   is all scratch.
//! - PPGTT scratch leaves are read-only (i915 sets `PTE_READ_ONLY` on the
//!   scratch page when the VM supports it); directory entries are always RW.
//! - A call that breaks the [`GpuTables`] contract (unknown table, wrong
//!   level, index out of range, unencodable address, freeing a table that is
//!   not clear or still referenced) records a [`Violation`] and changes
//!   nothing, except `table_free`, which frees anyway as hardware would not
//!   notice.
//! - Writes reach table memory at once; cached translations are dropped only
//!   by `invalidate`.

use std::collections::{BTreeMap, BTreeSet};

use gtt::platform::{GpuCaps, GpuTables, MappingCap, TablePage};
use gtt::types::{Access, BusAddr, Level, ENTRIES_PER_TABLE, PAGE_SHIFT};
use i915_lite::pte::{Gen8Pte, Ppat};

use crate::memory::FrameId;
use crate::platform::{Platform, World};
use crate::trace::{Event, Location, Space, Violation};
use crate::walk::{GpuFault, Hit, Translation};

/// A PPGTT table the GPU allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TableInfo {
    pub page: TablePage,
    pub frame: FrameId,
    pub level: Level,
}

/// A cached GPU translation: the page and whether the PTEs allowed writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TlbEntry {
    pub page: BusAddr,
    pub writable: bool,
}

#[derive(Clone)]
pub(crate) struct GpuState {
    pub scratch_page: BusAddr,
    /// Scratch tables for `Level::Pt`, `Level::Pd`, `Level::Pdp`.
    pub scratch_tables: [(BusAddr, FrameId); 3],
    /// Written only through [`GpuState::put_ggtt`], which keeps `ggtt_set`.
    pub ggtt: Vec<u64>,
    /// The indexes of the GGTT entries that are not the scratch entry (so
    /// that looking at every mapped entry costs what is mapped, not the
    /// size of the GGTT).
    pub ggtt_set: BTreeSet<u32>,
    pub tables: BTreeMap<u32, TableInfo>,
    /// The id of the live table at each backend gfn (`None`: no table there).
    pub table_at_gfn: Vec<Option<u32>>,
    /// Free table-pool gfns, lowest last (popped first).
    pub pool: Vec<u64>,
    pub next_id: u32,
    pub tlb: BTreeMap<(Space, u64), TlbEntry>,
}

const fn scratch_slot(level: Level) -> Option<usize> {
    match level {
        Level::Pt => Some(0),
        Level::Pd => Some(1),
        Level::Pdp => Some(2),
        Level::Pml4 => None,
    }
}

impl GpuState {
    /// The scratch table of `level`, if that level has one (all but PML4).
    pub fn scratch_table(&self, level: Level) -> Option<BusAddr> {
        scratch_slot(level).map(|i| self.scratch_tables[i].0)
    }

    /// What an unset entry of a `level` table holds.
    pub fn scratch_entry(&self, level: Level) -> Gen8Pte {
        let r = match level {
            // Read-only and uncached, as i915's gen8_init_scratch (and the driver).
            Level::Pt => Gen8Pte::leaf(self.scratch_page.0, false, Ppat::UNCACHED),
            Level::Pd => Gen8Pte::dir(self.scratch_tables[0].0 .0),
            Level::Pdp => Gen8Pte::dir(self.scratch_tables[1].0 .0),
            Level::Pml4 => Gen8Pte::dir(self.scratch_tables[2].0 .0),
        };
        r.expect("scratch lives in backend RAM, well below 2^39")
    }

    /// The scratch GGTT entry.
    pub fn scratch_ggtt(&self) -> Gen8Pte {
        Gen8Pte::ggtt(self.scratch_page.0).expect("scratch lives in backend RAM")
    }

    /// Writes GGTT entry `index` (false, and nothing written, beyond the GGTT).
    pub fn put_ggtt(&mut self, index: u32, bits: u64) -> bool {
        let scratch = self.scratch_ggtt().bits();
        let Some(slot) = self.ggtt.get_mut(index as usize) else {
            return false;
        };
        *slot = bits;
        if bits == scratch {
            self.ggtt_set.remove(&index);
        } else {
            self.ggtt_set.insert(index);
        }
        true
    }

    /// The live table whose page is at `bus`.
    pub fn table_at_bus(&self, bus: BusAddr) -> Option<&TableInfo> {
        if !bus.0.is_multiple_of(1 << PAGE_SHIFT) {
            return None;
        }
        let id = (*self.table_at_gfn.get(usize::try_from(bus.frame()).ok()?)?)?;
        self.tables.get(&id)
    }

    /// Whether `bus` is the scratch table of the level below `level`.
    pub fn is_scratch_child(&self, level: Level, bus: BusAddr) -> bool {
        level.below().and_then(|l| self.scratch_table(l)).is_some_and(|s| s == bus)
    }
}

impl World {
    /// Builds the scratch page and tables in backend RAM gfns 1..=4 and the
    /// table pool after them.
    pub(crate) fn init_gpu(&mut self) {
        let backend = self.cfg.backend;
        let frame = |w: &World, gfn: u64| {
            w.mem
                .frame_of(backend, crate::memory::Gfn(gfn))
                .expect("backend RAM is populated before the GPU")
        };
        let at = |gfn: u64| BusAddr(gfn << PAGE_SHIFT);
        let tables = [(at(2), frame(self, 2)), (at(3), frame(self, 3)), (at(4), frame(self, 4))];
        let pool_end = 5 + u64::from(self.cfg.table_pool_pages);
        self.gpu = GpuState {
            scratch_page: at(1),
            scratch_tables: tables,
            ggtt: Vec::new(),
            ggtt_set: BTreeSet::new(),
            tables: BTreeMap::new(),
            table_at_gfn: vec![None; pool_end as usize],
            pool: (5..pool_end).rev().collect(),
            next_id: 0,
            tlb: BTreeMap::new(),
        };
        self.next_backend_page = pool_end;
        for (level, (_, f)) in [Level::Pt, Level::Pd, Level::Pdp].into_iter().zip(tables) {
            let e = self.gpu.scratch_entry(level);
            self.fill_table(f, e);
        }
        let g = self.gpu.scratch_ggtt().bits();
        self.gpu.ggtt = vec![g; self.cfg.ggtt_entries as usize];
    }

    fn fill_table(&mut self, frame: FrameId, e: Gen8Pte) {
        let page = self.mem.page_mut(frame);
        page[..8].copy_from_slice(&e.bits().to_le_bytes());
        let mut done = 8;
        while done < page.len() {
            let n = done.min(page.len() - done);
            page.copy_within(..n, done);
            done += n;
        }
    }

    /// The live table `t` if it is one and has level `level` (when given);
    /// records the violation otherwise.
    fn checked_table(&mut self, t: TablePage, level: Option<Level>) -> Option<TableInfo> {
        match self.gpu.tables.get(&t.id) {
            Some(info) if info.page == t => match level {
                Some(l) if l != info.level => {
                    self.trace.violation(Violation::LevelMismatch {
                        table: t,
                        expected: info.level,
                        actual: l,
                    });
                    None
                }
                _ => Some(*info),
            },
            _ => {
                self.trace.violation(Violation::UnknownTable { table: t });
                None
            }
        }
    }

    fn checked_index(&mut self, t: TablePage, index: u16) -> bool {
        if usize::from(index) < ENTRIES_PER_TABLE {
            return true;
        }
        self.trace.violation(Violation::TableIndexOutOfRange { table: t, index });
        false
    }

    fn encodable(
        &mut self,
        r: Result<Gen8Pte, i915_lite::pte::AddrError>,
        addr: u64,
    ) -> Option<Gen8Pte> {
        r.map_err(|_| {
            self.trace.violation(Violation::UnencodableAddress { addr });
        })
        .ok()
    }

    fn write_table(&mut self, info: &TableInfo, index: u16, e: Gen8Pte) {
        self.mem.write_u64(info.frame, index, e.bits());
        self.trace.counters.table_writes += 1;
    }

    fn write_ggtt(&mut self, index: u32, e: Gen8Pte) -> bool {
        if self.gpu.put_ggtt(index, e.bits()) {
            self.trace.counters.ggtt_writes += 1;
            true
        } else {
            self.trace.violation(Violation::GgttIndexOutOfRange { index });
            false
        }
    }

    fn table_free_inner(&mut self, table: TablePage) {
        let Some(info) = self.checked_table(table, None) else {
            return;
        };
        let scratch = self.gpu.scratch_entry(info.level).bits();
        let dirty = self.non_scratch(info.frame, scratch).first().map(|&(i, _)| i);
        if let Some(index) = dirty {
            self.trace.violation(Violation::FreedTableNotClear { table, index });
        }
        for entry in self.gpu_entry_refs(table.bus.frame()) {
            self.trace.violation(Violation::FreedTableStillReferenced { table, entry });
        }
        self.gpu.tables.remove(&table.id);
        self.gpu.table_at_gfn[table.bus.frame() as usize] = None;
        self.gpu.pool.push(table.bus.frame());
        self.trace.counters.table_frees += 1;
        self.trace.event(Event::TableFree { table });
    }
}

/// The model GPU: implements [`GpuTables`] for `gtt`, and lets tests make
/// the GPU touch memory through its tables ([`ModelGpu::gpu_read`],
/// [`ModelGpu::gpu_write`]).
pub struct ModelGpu {
    pub(crate) platform: Platform,
}

impl GpuTables for ModelGpu {
    fn caps(&self) -> GpuCaps {
        GpuCaps {
            ggtt_entries: self.platform.world().cfg.ggtt_entries,
            ggtt_read_only: false,
            ppgtt_read_only: true,
        }
    }

    fn ggtt_set(&mut self, _cap: &MappingCap, index: u32, page: BusAddr, access: Access) {
        let mut w = self.platform.world_mut();
        // The Gen8/Gen9 GGTT has no RW bit: `access` is enforced by the IOMMU only.
        let Some(e) = w.encodable(Gen8Pte::ggtt(page.0), page.0) else {
            return;
        };
        if w.write_ggtt(index, e) {
            w.trace.event(Event::GgttSet { index, page, access });
        }
    }

    fn ggtt_clear(&mut self, _cap: &MappingCap, index: u32) {
        let mut w = self.platform.world_mut();
        let e = w.gpu.scratch_ggtt();
        if w.write_ggtt(index, e) {
            w.trace.event(Event::GgttClear { index });
        }
    }

    fn table_alloc(&mut self, _cap: &MappingCap, level: Level) -> Option<TablePage> {
        let mut w = self.platform.world_mut();
        let gfn = w.gpu.pool.pop()?;
        let frame = w
            .mem
            .frame_of(w.cfg.backend, crate::memory::Gfn(gfn))
            .expect("the pool is backend RAM");
        let id = w.gpu.next_id;
        w.gpu.next_id += 1;
        let page = TablePage { bus: BusAddr(gfn << PAGE_SHIFT), id };
        let e = w.gpu.scratch_entry(level);
        w.fill_table(frame, e);
        w.gpu.tables.insert(id, TableInfo { page, frame, level });
        w.gpu.table_at_gfn[gfn as usize] = Some(id);
        w.trace.counters.table_allocs += 1;
        w.trace.event(Event::TableAlloc { table: page, level });
        Some(page)
    }

    fn table_free(&mut self, _cap: &MappingCap, table: TablePage) {
        self.platform.world_mut().table_free_inner(table);
    }

    fn table_set_leaf(
        &mut self,
        _cap: &MappingCap,
        table: TablePage,
        index: u16,
        page: BusAddr,
        access: Access,
    ) {
        let mut w = self.platform.world_mut();
        let Some(info) = w.checked_table(table, Some(Level::Pt)) else {
            return;
        };
        if !w.checked_index(table, index) {
            return;
        }
        let writable = access == Access::ReadWrite;
        let Some(e) = w.encodable(Gen8Pte::leaf(page.0, writable, Ppat::CACHED), page.0) else {
            return;
        };
        w.write_table(&info, index, e);
        w.trace.event(Event::TableSetLeaf { table, index, page, access });
    }

    fn table_set_dir(
        &mut self,
        _cap: &MappingCap,
        table: TablePage,
        level: Level,
        index: u16,
        child: TablePage,
    ) {
        let mut w = self.platform.world_mut();
        let Some(info) = w.checked_table(table, Some(level)) else {
            return;
        };
        let Some(below) = level.below() else {
            w.trace.violation(Violation::LevelMismatch {
                table,
                expected: info.level,
                actual: Level::Pt,
            });
            return;
        };
        let Some(c) = w.checked_table(child, None) else {
            return;
        };
        if c.level != below {
            w.trace.violation(Violation::ChildLevelMismatch { table, child, child_level: c.level });
            return;
        }
        if !w.checked_index(table, index) {
            return;
        }
        let Some(e) = w.encodable(Gen8Pte::dir(child.bus.0), child.bus.0) else {
            return;
        };
        w.write_table(&info, index, e);
        w.trace.event(Event::TableSetDir { table, level, index, child });
    }

    fn table_clear(&mut self, _cap: &MappingCap, table: TablePage, level: Level, index: u16) {
        let mut w = self.platform.world_mut();
        let Some(info) = w.checked_table(table, Some(level)) else {
            return;
        };
        if !w.checked_index(table, index) {
            return;
        }
        let e = w.gpu.scratch_entry(level);
        w.write_table(&info, index, e);
        w.trace.event(Event::TableClear { table, level, index });
    }

    fn invalidate(&mut self, _cap: &MappingCap) {
        let mut w = self.platform.world_mut();
        let entries = w.gpu.tlb.len();
        w.gpu.tlb.clear();
        w.trace.counters.invalidations += 1;
        w.trace.event(Event::Invalidate { entries });
    }
}

impl ModelGpu {
    /// A workload that touches everything mapped: the GPU translates every
    /// present GGTT entry and every leaf reachable from every live PML4
    /// table (read from the tables' bytes), so each translation is in the
    /// TLB. Returns how many translations it added to the TLB (0: it held
    /// them all, and nothing changed).
    pub fn touch_all(&self) -> usize {
        self.platform.touch_all()
    }

    /// Translates `va` in `space` as the GPU would (TLB first, then a walk
    /// that reads the tables through the IOMMU), without touching the page.
    pub fn gpu_translate(
        &self,
        space: Space,
        va: u64,
        write: bool,
    ) -> Result<Translation, GpuFault> {
        self.platform.world_mut().gpu_translate(space, va, write)
    }

    /// The GPU reads `len` bytes at `va` (within one page).
    pub fn gpu_read(&self, space: Space, va: u64, len: usize) -> Result<Hit<Vec<u8>>, GpuFault> {
        self.platform.world_mut().gpu_read(space, va, len)
    }

    /// The GPU writes `bytes` at `va` (within one page). Writes that land on
    /// the scratch page are dropped and reported as [`Hit::Scratch`].
    pub fn gpu_write(&self, space: Space, va: u64, bytes: &[u8]) -> Result<Hit<()>, GpuFault> {
        self.platform.world_mut().gpu_write(space, va, bytes)
    }

    /// GGTT entry `index`.
    pub fn ggtt_entry(&self, index: u32) -> Option<Gen8Pte> {
        let w = self.platform.world();
        w.gpu.ggtt.get(index as usize).map(|&b| Gen8Pte::from_bits(b))
    }

    /// Entry `index` of the live (or scratch) table at `table`, read from memory.
    pub fn table_entry(&self, table: BusAddr, index: u16) -> Option<Gen8Pte> {
        let w = self.platform.world();
        if usize::from(index) >= ENTRIES_PER_TABLE {
            return None;
        }
        let frame = w.table_frame(table)?;
        Some(Gen8Pte::from_bits(w.mem.read_u64(frame, index)))
    }

    /// Every live table and its level, in allocation order.
    pub fn live_tables(&self) -> Vec<(TablePage, Level)> {
        let w = self.platform.world();
        w.gpu.tables.values().map(|t| (t.page, t.level)).collect()
    }

    /// Live PML4 tables: the candidate context roots.
    pub fn roots(&self) -> Vec<BusAddr> {
        let w = self.platform.world();
        let roots = w.gpu.tables.values().filter(|t| t.level == Level::Pml4);
        roots.map(|t| t.page.bus).collect()
    }

    /// The scratch page every unset leaf points at.
    pub fn scratch_page(&self) -> BusAddr {
        self.platform.world().gpu.scratch_page
    }

    /// The scratch table for `level` (`None` for PML4, which has none).
    pub fn scratch_table(&self, level: Level) -> Option<BusAddr> {
        self.platform.world().gpu.scratch_table(level)
    }

    /// Cached translations in the GPU TLB.
    pub fn tlb_len(&self) -> usize {
        self.platform.world().gpu.tlb.len()
    }

    /// Whether the TLB caches a translation of page `va` of `space`.
    pub fn tlb_holds(&self, space: Space, va: u64) -> bool {
        let w = self.platform.world();
        w.gpu.tlb.contains_key(&(space, va >> PAGE_SHIFT))
    }

    /// Fault injection: writes GGTT entry `index` directly, bypassing the
    /// driver interface (returns false if out of range).
    pub fn inject_ggtt(&self, index: u32, pte: Gen8Pte) -> bool {
        let mut w = self.platform.world_mut();
        if !w.gpu.put_ggtt(index, pte.bits()) {
            return false;
        }
        w.trace.event(Event::Injected { at: Location::Ggtt { index }, bits: pte.bits() });
        true
    }

    /// Fault injection: writes entry `index` of the live or scratch table at
    /// `table` directly (returns false if there is no such table).
    pub fn inject_table_entry(&self, table: BusAddr, index: u16, pte: Gen8Pte) -> bool {
        let mut w = self.platform.world_mut();
        if usize::from(index) >= ENTRIES_PER_TABLE {
            return false;
        }
        let Some(frame) = w.table_frame(table) else {
            return false;
        };
        let level = w.table_level(table).unwrap_or(Level::Pt);
        w.mem.write_u64(frame, index, pte.bits());
        w.trace.event(Event::Injected {
            at: Location::Table { table, level, index },
            bits: pte.bits(),
        });
        true
    }
}

impl World {
    /// The frame of a live or scratch table.
    pub(crate) fn table_frame(&self, table: BusAddr) -> Option<FrameId> {
        if let Some(t) = self.gpu.table_at_bus(table) {
            return Some(t.frame);
        }
        let s = self.gpu.scratch_tables.iter().find(|(b, _)| *b == table);
        s.map(|(_, f)| *f)
    }

    /// The level of a live or scratch table.
    pub(crate) fn table_level(&self, table: BusAddr) -> Option<Level> {
        if let Some(t) = self.gpu.table_at_bus(table) {
            return Some(t.level);
        }
        [Level::Pt, Level::Pd, Level::Pdp]
            .into_iter()
            .find(|&l| self.gpu.scratch_table(l) == Some(table))
    }
}

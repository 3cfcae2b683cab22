//! [`GpuTables`] on the real driver: what `gtt` asks for, written as entries
//! of the device's [`Format`](crate::pte::Format) into the GGTT (through the
//! BAR) and the PPGTT pool.
//!
//! # How each contract line of `gtt::platform::GpuTables` is kept
//! - *Unset entries point at scratch*: [`I915::new`] clears every managed
//!   GGTT entry and the reserved one; `table_alloc` fills the page with the
//!   level's scratch entry; clears write the scratch entry.
//! - *Never an address `gtt` did not give*: entries are built only from the
//!   page or child table named in the call. A call that names something the
//!   driver does not have (index out of range, a table not in use, a wrong
//!   level) writes nothing; an address an entry cannot hold (at or above
//!   2^39) makes the entry scratch (fail closed: the old page is no longer
//!   reachable). Both count in [`Stats::rejected`](crate::Stats), as does a
//!   mapping asked for after a failed invalidation ([`I915::fault`]), which
//!   is written as scratch too.
//! - *Writes are visible at `invalidate`*: see [`I915::try_invalidate`]
//!   (`TableMemory::make_visible`, the GGTT flush of the generation, then the
//!   engines' TLB invalidation registers).
//! - *Caps*: the GGTT share is what the device has minus the reserved last
//!   entry (and the image's limit); the GGTT cannot be read-only (no RW bit
//!   on Gen8/Gen9; bit 1 means local memory on Gen12), PPGTT leaves can
//!   (bit 1 on every generation).

use gtt::platform::{GpuCaps, GpuTables, MappingCap, TablePage};
use gtt::{Access, BusAddr, Level};

use crate::driver::I915;
use crate::ppgtt::{TableMemory, ENTRIES};
use crate::pte::Entry;
use crate::regs::Mmio;

impl<M: Mmio, T: TableMemory> I915<M, T> {
    fn reject(&mut self) {
        self.stats.rejected += 1;
    }

    /// The pool page of `t` if it is a live table of `level` and `index` is
    /// in range; counts a rejection otherwise.
    fn table(&mut self, t: TablePage, level: Level, index: u16) -> Option<u32> {
        let ok = index < ENTRIES && self.pool.live(&self.mem, t.id, t.bus) == Some(level);
        if !ok {
            self.reject();
        }
        ok.then_some(t.id)
    }

    fn write_entry(&mut self, page: u32, index: u16, e: Entry) {
        self.mem.write(page, index, e.bits());
        self.stats.table_writes += 1;
        self.ppgtt_dirty = true;
    }

    fn write_ggtt(&mut self, index: u32, e: Entry) {
        self.ggtt.write(&mut self.mmio, index, e);
        self.stats.ggtt_writes += 1;
    }
}

impl<M: Mmio, T: TableMemory> GpuTables for I915<M, T> {
    fn caps(&self) -> GpuCaps {
        GpuCaps { ggtt_entries: self.ggtt.managed(), ggtt_read_only: false, ppgtt_read_only: true }
    }

    fn ggtt_set(&mut self, _: &MappingCap, index: u32, page: BusAddr, _access: Access) {
        // No read-only GGTT entry on any supported generation (caps say so;
        // gtt refuses read-only GGTT entries, and the IOMMU enforces
        // read-only grants).
        if index >= self.ggtt.managed() {
            return self.reject();
        }
        let e = match self.format.ggtt(page.0) {
            Ok(e) if self.fault.is_none() => e,
            _ => {
                self.reject();
                self.ggtt.scratch()
            }
        };
        self.write_ggtt(index, e);
    }

    fn ggtt_clear(&mut self, _: &MappingCap, index: u32) {
        if index >= self.ggtt.managed() {
            return self.reject();
        }
        let scratch = self.ggtt.scratch();
        self.write_ggtt(index, scratch);
    }

    fn table_alloc(&mut self, _: &MappingCap, level: Level) -> Option<TablePage> {
        let page = self.pool.alloc(&mut self.mem, level)?;
        Some(TablePage { bus: BusAddr(self.mem.bus(page)), id: page })
    }

    fn table_free(&mut self, _: &MappingCap, table: TablePage) {
        match self.pool.live(&self.mem, table.id, table.bus) {
            Some(_) => self.pool.free(table.id),
            None => self.reject(),
        }
    }

    fn table_set_leaf(&mut self, _: &MappingCap, t: TablePage, i: u16, page: BusAddr, a: Access) {
        let Some(p) = self.table(t, Level::Pt, i) else { return };
        let e = match self.format.leaf(page.0, a == Access::ReadWrite, self.format.leaf_pat()) {
            Ok(e) if self.fault.is_none() => e,
            _ => {
                self.reject();
                self.pool.scratch_entry(Level::Pt)
            }
        };
        self.write_entry(p, i, e);
    }

    fn table_set_dir(&mut self, _: &MappingCap, t: TablePage, level: Level, i: u16, c: TablePage) {
        let Some(below) = level.below() else { return self.reject() };
        let Some(p) = self.table(t, level, i) else { return };
        if self.pool.live(&self.mem, c.id, c.bus) != Some(below) {
            return self.reject();
        }
        // Pool pages were checked encodable at init.
        match self.format.dir(c.bus.0) {
            Ok(e) => self.write_entry(p, i, e),
            Err(_) => self.reject(),
        }
    }

    fn table_clear(&mut self, _: &MappingCap, t: TablePage, level: Level, i: u16) {
        let Some(p) = self.table(t, level, i) else { return };
        let e = self.pool.scratch_entry(level);
        self.write_entry(p, i, e);
    }

    fn invalidate(&mut self, _: &MappingCap) {
        if let Err(e) = self.try_invalidate() {
            self.fault.get_or_insert(e);
        }
    }
}

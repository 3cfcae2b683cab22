//! How the model GPU resolves a GPU address, like the hardware: the GPU TLB
//! first; on a miss, the GGTT entry or a 4-level PPGTT walk whose table reads
//! go through the backend's IOMMU; then the page itself through the IOMMU.
//!
//! # Invariants
//! - A translation is cached in the TLB when a walk succeeds and stays there,
//!   whatever is later written to the tables, until `invalidate`.
//! - The IOMMU is consulted on every access (Xen flushes the IOTLB when it
//!   unmaps a grant), so a stale GPU TLB entry to an unmapped window page
//!   faults here, and was recorded as a violation at the unmap.
//! - Permission is the AND of the RW bits on the PPGTT path (the Gen8/Gen9
//!   GGTT has none) and then the IOMMU mapping's access.
//! - An access that lands on the scratch page is reported as
//!   [`Hit::Scratch`], never as data; writes to it are dropped.

use gtt::types::{BusAddr, Level, ENTRIES_PER_TABLE, PAGE_SHIFT, PAGE_SIZE, PPGTT_VA_BITS};
use i915_lite::pte::Gen8Pte;

use crate::gpu::TlbEntry;
use crate::memory::{in_page, FrameId};
use crate::physmap::IommuFault;
use crate::platform::World;
use crate::trace::{Location, Space};

/// The outcome of a GPU access that did not fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hit<T> {
    /// A real page: the data read, or `()` for a write.
    Mapped(T),
    /// The scratch page (an unset entry): no data, writes dropped.
    Scratch,
}

/// Where a GPU address goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The page's bus address (what the GPU presents to the IOMMU).
    pub page: BusAddr,
    /// Whether the GPU's own entries allow writes (always true in the GGTT).
    pub writable: bool,
    /// Whether `page` is the scratch page.
    pub scratch: bool,
    /// Whether the TLB served it.
    pub from_tlb: bool,
}

/// Why a GPU access faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuFault {
    /// A GGTT address beyond the GGTT.
    GgttOutOfRange { va: u64 },
    /// A PPGTT address at or above 2^48.
    NonCanonical { va: u64 },
    /// The access runs past the end of its page.
    CrossesPage { va: u64, len: usize },
    /// The entry at `at` is not present.
    NotPresent { space: Space, at: Location },
    /// A write through entries that do not allow it.
    ReadOnlyEntry { space: Space, va: u64 },
    /// The walk could not read the `level` table at `table` through the IOMMU.
    TableUnreachable { space: Space, level: Level, table: BusAddr, fault: IommuFault },
    /// The IOMMU refused the access to the page.
    Iommu { space: Space, va: u64, fault: IommuFault },
}

impl World {
    fn walk_ggtt(&self, va: u64) -> Result<TlbEntry, GpuFault> {
        let index = va >> PAGE_SHIFT;
        let Some(&bits) = self.gpu.ggtt.get(index as usize) else {
            return Err(GpuFault::GgttOutOfRange { va });
        };
        let pte = Gen8Pte::from_bits(bits);
        if !pte.present() {
            let at = Location::Ggtt { index: index as u32 };
            return Err(GpuFault::NotPresent { space: Space::Ggtt, at });
        }
        Ok(TlbEntry { page: BusAddr(pte.addr()), writable: true })
    }

    fn walk_ppgtt(&self, root: BusAddr, va: u64) -> Result<TlbEntry, GpuFault> {
        let space = Space::Ppgtt { root };
        if va >> PPGTT_VA_BITS != 0 {
            return Err(GpuFault::NonCanonical { va });
        }
        let mut table = root;
        let mut writable = true;
        for level in Level::ALL {
            let frame = self
                .iommu_translate(table, false)
                .map_err(|fault| GpuFault::TableUnreachable { space, level, table, fault })?;
            let index = level.index(va);
            let pte = Gen8Pte::from_bits(self.mem.read_u64(frame, index));
            if !pte.present() {
                let at = Location::Table { table, level, index };
                return Err(GpuFault::NotPresent { space, at });
            }
            writable &= pte.writable();
            table = BusAddr(pte.addr());
        }
        Ok(TlbEntry { page: table, writable })
    }

    pub(crate) fn gpu_translate(
        &mut self,
        space: Space,
        va: u64,
        write: bool,
    ) -> Result<Translation, GpuFault> {
        self.trace.counters.gpu_accesses += 1;
        let r = self.translate_inner(space, va, write);
        if r.is_err() {
            self.trace.counters.gpu_faults += 1;
        }
        r
    }

    fn translate_inner(
        &mut self,
        space: Space,
        va: u64,
        write: bool,
    ) -> Result<Translation, GpuFault> {
        let key = (space, va >> PAGE_SHIFT);
        let (entry, from_tlb) = match self.gpu.tlb.get(&key) {
            Some(&e) => {
                self.trace.counters.tlb_hits += 1;
                (e, true)
            }
            None => {
                self.trace.counters.tlb_misses += 1;
                let e = match space {
                    Space::Ggtt => self.walk_ggtt(va)?,
                    Space::Ppgtt { root } => self.walk_ppgtt(root, va)?,
                };
                self.gpu.tlb.insert(key, e);
                (e, false)
            }
        };
        let scratch = entry.page == self.gpu.scratch_page;
        if write && !scratch && !entry.writable {
            return Err(GpuFault::ReadOnlyEntry { space, va });
        }
        Ok(Translation { page: entry.page, writable: entry.writable, scratch, from_tlb })
    }

    /// Translates and checks the page through the IOMMU.
    fn gpu_access(
        &mut self,
        space: Space,
        va: u64,
        len: usize,
        write: bool,
    ) -> Result<Hit<(FrameId, usize)>, GpuFault> {
        let offset = (va % PAGE_SIZE) as usize;
        if in_page(offset, len).is_err() {
            self.trace.counters.gpu_accesses += 1;
            self.trace.counters.gpu_faults += 1;
            return Err(GpuFault::CrossesPage { va, len });
        }
        let t = self.gpu_translate(space, va, write)?;
        if t.scratch {
            return Ok(Hit::Scratch);
        }
        match self.iommu_translate(t.page, write) {
            Ok(frame) => Ok(Hit::Mapped((frame, offset))),
            Err(fault) => {
                self.trace.counters.gpu_faults += 1;
                Err(GpuFault::Iommu { space, va, fault })
            }
        }
    }

    pub(crate) fn gpu_read(
        &mut self,
        space: Space,
        va: u64,
        len: usize,
    ) -> Result<Hit<Vec<u8>>, GpuFault> {
        Ok(match self.gpu_access(space, va, len, false)? {
            Hit::Scratch => Hit::Scratch,
            Hit::Mapped((frame, offset)) => {
                Hit::Mapped(self.mem.page(frame)[offset..offset + len].to_vec())
            }
        })
    }

    pub(crate) fn gpu_write(
        &mut self,
        space: Space,
        va: u64,
        bytes: &[u8],
    ) -> Result<Hit<()>, GpuFault> {
        Ok(match self.gpu_access(space, va, bytes.len(), true)? {
            Hit::Scratch => Hit::Scratch,
            Hit::Mapped((frame, offset)) => {
                self.mem.page_mut(frame)[offset..offset + bytes.len()].copy_from_slice(bytes);
                Hit::Mapped(())
            }
        })
    }

    /// See [`crate::ModelGpu::touch_all`].
    pub(crate) fn touch_all(&mut self) -> usize {
        let ggtt: Vec<u32> = self.gpu.ggtt_set.iter().copied().collect();
        let mut vas: Vec<(Space, u64)> =
            ggtt.into_iter().map(|i| (Space::Ggtt, u64::from(i) << PAGE_SHIFT)).collect();
        let roots: Vec<BusAddr> = self
            .gpu
            .tables
            .values()
            .filter(|t| t.level == Level::Pml4)
            .map(|t| t.page.bus)
            .collect();
        for root in roots {
            let mut seen = Vec::new();
            self.leaves(root, root, Level::Pml4, 0, &mut seen, &mut vas);
        }
        let before = self.gpu.tlb.len();
        for &(space, va) in &vas {
            let _ = self.gpu_translate(space, va, false);
        }
        self.gpu.tlb.len() - before
    }

    /// The virtual addresses of the present leaves below `table` (a live
    /// table of `level` mapping `base`), scratch aside; `seen` guards
    /// against tables reachable twice.
    fn leaves(
        &self,
        root: BusAddr,
        table: BusAddr,
        level: Level,
        base: u64,
        seen: &mut Vec<BusAddr>,
        out: &mut Vec<(Space, u64)>,
    ) {
        let Some(t) = self.gpu.table_at_bus(table).copied() else { return };
        if t.level != level || seen.contains(&table) {
            return;
        }
        seen.push(table);
        let scratch = self.gpu.scratch_entry(level).bits();
        for &(index, bits) in self.non_scratch(t.frame, scratch).iter() {
            let pte = Gen8Pte::from_bits(bits);
            if !pte.present() {
                continue;
            }
            let va = base | (u64::from(index) << level.shift());
            match level.below() {
                None => out.push((Space::Ppgtt { root }, va)),
                Some(below) => self.leaves(root, BusAddr(pte.addr()), below, va, seen, out),
            }
        }
    }

    /// TLB entries whose page is backend gfn `gfn`.
    pub(crate) fn gpu_tlb_refs(&self, gfn: u64) -> Vec<Location> {
        let hits = self.gpu.tlb.iter().filter(|(_, e)| e.page.frame() == gfn);
        hits.map(|(&(space, page), _)| Location::Tlb { space, va: page << PAGE_SHIFT }).collect()
    }

    /// Present GGTT entries and entries of live or scratch tables whose
    /// address is backend gfn `gfn`. Where the scratch entry does not point
    /// at `gfn` (always, but for the scratch pages themselves), only the
    /// entries that are not scratch are looked at.
    pub(crate) fn gpu_entry_refs(&self, gfn: u64) -> Vec<Location> {
        let points = |bits: u64| {
            let p = Gen8Pte::from_bits(bits);
            p.present() && p.addr() >> PAGE_SHIFT == gfn
        };
        let indexes: Vec<u32> = if points(self.gpu.scratch_ggtt().bits()) {
            (0..self.gpu.ggtt.len() as u32).collect()
        } else {
            self.gpu.ggtt_set.iter().copied().collect()
        };
        let mut out: Vec<Location> = indexes
            .into_iter()
            .filter(|&i| points(self.gpu.ggtt[i as usize]))
            .map(|index| Location::Ggtt { index })
            .collect();
        let live = self.gpu.tables.values().map(|t| (t.page.bus, t.frame, t.level));
        let scratch = [Level::Pt, Level::Pd, Level::Pdp]
            .into_iter()
            .zip(self.gpu.scratch_tables)
            .map(|(l, (b, f))| (b, f, l));
        for (table, frame, level) in live.chain(scratch) {
            let scratch = self.gpu.scratch_entry(level).bits();
            if points(scratch) {
                for index in 0..ENTRIES_PER_TABLE as u16 {
                    if points(self.mem.read_u64(frame, index)) {
                        out.push(Location::Table { table, level, index });
                    }
                }
            } else {
                for &(index, bits) in self.non_scratch(frame, scratch).iter() {
                    if points(bits) {
                        out.push(Location::Table { table, level, index });
                    }
                }
            }
        }
        out
    }
}

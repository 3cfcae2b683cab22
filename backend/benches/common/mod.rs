//! A platform that costs nothing but the memory writes a real one makes:
//! grants "map" to a fixed bus address per gref, table writes are Gen8 PTEs
//! stored in memory, directory pages are copied from a prepared buffer.
//! Shared by the criterion bench and the callgrind counter.

use backend::{Backend, CpuAccess};
use gpuif::wire::{Entry, Op, RequestBuilder};
use gpuif::PAGE_SIZE;
use gtt::platform::{GpuCaps, GpuTables, MappingCap, TablePage};
use gtt::{Access, BusAddr, Config, ContextId, DomId, Engine, GrantRef, Level, Limits, PpgttEntry};
use i915_lite::pte::{Gen8Pte, Ppat};

/// Grants "map" at a fixed bus address per gref.
pub type NoopMapper = gtt::testing::FixedMapper;

pub struct MemTables {
    pub ggtt: Vec<u64>,
    pub pages: Vec<[u64; 512]>,
    free: Vec<u32>,
}

impl MemTables {
    pub fn new(pages: usize) -> Self {
        MemTables {
            ggtt: vec![0; 65536],
            pages: vec![[0; 512]; pages],
            free: (0..pages as u32).rev().collect(),
        }
    }
}

impl GpuTables for MemTables {
    fn caps(&self) -> GpuCaps {
        GpuCaps {
            ggtt_entries: self.ggtt.len() as u32,
            ggtt_read_only: false,
            ppgtt_read_only: true,
        }
    }
    fn ggtt_set(&mut self, _: &MappingCap, i: u32, p: BusAddr, _: Access) {
        self.ggtt[i as usize] = Gen8Pte::ggtt(p.0).map_or(0, Gen8Pte::bits);
    }
    fn ggtt_clear(&mut self, _: &MappingCap, i: u32) {
        self.ggtt[i as usize] = 0;
    }
    fn table_alloc(&mut self, _: &MappingCap, _: Level) -> Option<TablePage> {
        let id = self.free.pop()?;
        self.pages[id as usize] = [0; 512];
        Some(TablePage { bus: BusAddr(0x8000_0000 + ((id as u64) << 12)), id })
    }
    fn table_free(&mut self, _: &MappingCap, t: TablePage) {
        self.free.push(t.id);
    }
    fn table_set_leaf(&mut self, _: &MappingCap, t: TablePage, i: u16, p: BusAddr, a: Access) {
        self.pages[t.id as usize][i as usize] =
            Gen8Pte::leaf(p.0, a == Access::ReadWrite, Ppat::CACHED).map_or(0, Gen8Pte::bits);
    }
    fn table_set_dir(&mut self, _: &MappingCap, t: TablePage, _: Level, i: u16, c: TablePage) {
        self.pages[t.id as usize][i as usize] = Gen8Pte::dir(c.bus.0).map_or(0, Gen8Pte::bits);
    }
    fn table_clear(&mut self, _: &MappingCap, t: TablePage, _: Level, i: u16) {
        self.pages[t.id as usize][i as usize] = 0;
    }
    fn invalidate(&mut self, _: &MappingCap) {}
}

/// Directory pages prepared once (gref `n` is page `n - 1`); `copy_granted`
/// copies them like GNTTABOP_copy would.
pub struct PreparedDirs(pub Vec<u8>);

impl CpuAccess for PreparedDirs {
    fn copy_granted(
        &mut self,
        _: DomId,
        grefs: &[u32],
        out: &mut [u8],
    ) -> Result<(), (usize, i16)> {
        for (g, out) in grefs.iter().zip(out.chunks_exact_mut(PAGE_SIZE)) {
            let at = (*g as usize - 1) * PAGE_SIZE;
            out.copy_from_slice(&self.0[at..at + PAGE_SIZE]);
        }
        Ok(())
    }
    fn read_bus(&mut self, _: BusAddr, _: &mut [u8; PAGE_SIZE]) -> bool {
        false
    }
}

pub const DOM: DomId = DomId(1);
pub const ENTRIES: usize = 512;

pub struct Bench {
    pub backend: Backend<NoopMapper, MemTables, PreparedDirs>,
    pub ctx: ContextId,
    pub map_slot: gpuif::Slot,
    /// The same 512 addresses unmapped, through the same directory pages.
    pub unmap_slot: gpuif::Slot,
    pub addrs: Vec<u64>,
    limits: Limits,
}

/// Where the batch lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tables {
    /// A 2 MiB-aligned region: the batch fills one new leaf table and needs
    /// a new PDP and PD too (the unmap between batches frees them again).
    Fresh,
    /// Two leaf tables kept alive by one pinned entry each: the batch writes
    /// leaves only.
    Existing,
}

/// A backend with one attached guest and one context, and the slot of a
/// 512-entry PPGTT map request whose entries sit in two directory pages.
pub fn setup(tables: Tables) -> Bench {
    let cfg =
        Config { max_guests: 4, grant_slots: 4096, table_pages: 64, contexts: 4, max_batch: 2048 };
    let mut engine = Engine::new(cfg, NoopMapper::new(0x1_0000_0000), MemTables::new(64));
    let limits = Limits {
        ggtt_base: 0,
        ggtt_len: 1024,
        max_contexts: 4,
        max_pages: 4096,
        max_table_pages: 64,
    };
    engine.attach(DOM, limits).unwrap();
    let ctx = engine.context_create(DOM).unwrap();
    let base = match tables {
        Tables::Fresh => 0x40_0000,
        Tables::Existing => {
            // Pin slot 0 of the first leaf table and slot 1 of the second.
            let pins = [0x40_0000, 0x60_1000].map(|addr| PpgttEntry {
                addr,
                gref: GrantRef(1),
                access: Access::ReadWrite,
            });
            assert!(engine.ppgtt_map(DOM, ctx, &pins).is_complete());
            0x40_1000
        }
    };
    let entries: Vec<Entry> = (0..ENTRIES as u64)
        .map(|i| Entry { addr: base + i * 4096, gref: 100 + i as u32, read_only: false })
        .collect();
    // Grefs 1 and 2: the map entries; 3 and 4: the same addresses to unmap.
    let unmaps: Vec<Entry> = entries.iter().map(|e| Entry { gref: 0, ..*e }).collect();
    let mut dirs = vec![0u8; 4 * PAGE_SIZE];
    let chunks = entries.chunks(256).chain(unmaps.chunks(256));
    for (chunk, page) in chunks.zip(dirs.chunks_exact_mut(PAGE_SIZE)) {
        RequestBuilder::dir_page(chunk, page.try_into().unwrap()).unwrap();
    }
    let map_slot =
        RequestBuilder::indirect(1, Op::PpgttMap, ctx.0, ENTRIES as u16, &[1, 2]).unwrap();
    let unmap_slot =
        RequestBuilder::indirect(2, Op::PpgttUnmap, ctx.0, ENTRIES as u16, &[3, 4]).unwrap();
    let backend = Backend::new(engine, PreparedDirs(dirs));
    let addrs = entries.iter().map(|e| e.addr).collect();
    Bench { backend, ctx, map_slot, unmap_slot, addrs, limits }
}

impl Bench {
    /// One 512-entry map request, from slot to response.
    #[inline(never)]
    pub fn map_batch(&mut self) -> gpuif::Response {
        self.backend.handle(DOM, &self.map_slot)
    }

    /// Undo it (not measured): unmap every address, which unmaps every grant.
    pub fn unmap_all(&mut self) {
        let out = self.backend.engine_mut().ppgtt_unmap(DOM, self.ctx, &self.addrs);
        assert!(out.is_complete());
    }

    /// One 512-entry unmap request, from slot to response: clear, invalidate,
    /// unmap every grant, free the tables left empty.
    #[inline(never)]
    pub fn unmap_request(&mut self) -> gpuif::Response {
        self.backend.handle(DOM, &self.unmap_slot)
    }

    /// Revokes the guest (detach: every entry cleared, invalidated, every
    /// grant unmapped, every table and context freed).
    #[inline(never)]
    pub fn revoke_guest(&mut self) -> gtt::Released {
        self.backend.disconnect(DOM)
    }

    /// Attaches the guest again with its context (not measured).
    pub fn reattach(&mut self) {
        let e = self.backend.engine_mut();
        e.attach(DOM, self.limits).unwrap();
        self.ctx = e.context_create(DOM).unwrap();
    }
}

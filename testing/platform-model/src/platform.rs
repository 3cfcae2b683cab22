//! The shared world (memory, grant tables, the backend's physmap, the GPU,
//! the trace) and the handles tests hold on it: [`Platform`] (the toolstack
//! and the backend CPU), [`Guest`] (a frontend domain), and, from
//! [`Platform::mapper`] and [`Platform::gpu`], the two `gtt` platform traits.
//!
//! All handles share one `Rc<RefCell<World>>`. Each call borrows the world for
//! its own duration only, so a test can hold every handle at once.

use std::cell::{Ref, RefCell, RefMut};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use gtt::types::{BusAddr, DomId, GrantRef, PAGE_SHIFT, PAGE_SIZE};

use crate::gpu::{GpuState, ModelGpu};
use crate::grants::abi::GNTST_bad_copy_arg;
use crate::grants::{ActiveGrant, GrantEntryV1, GrantError, GrantTable};
use crate::memory::{in_page, DomainState, FrameId, Gfn, MemError, Memory, MemorySnapshot};
use crate::physmap::{IommuFault, ModelMapper, Physmap, WindowMapping};
use crate::summary::Summaries;
use crate::trace::{Counters, Event, Trace, Violation};

/// Sizes and placement of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformConfig {
    /// The backend (gpu-dom) domain id.
    pub backend: DomId,
    /// Backend RAM frames, at gfns `0..backend_ram_pages`. Gfn 1 is the
    /// scratch page, 2..=4 the scratch tables, then the table pool; the rest
    /// is for [`Platform::alloc_backend_page`].
    pub backend_ram_pages: u32,
    /// Of that RAM, how many pages the GPU may use for PPGTT tables.
    pub table_pool_pages: u32,
    /// First gfn of the grant-mapping window (above RAM).
    pub window_base_gfn: u64,
    /// Slots in the window: how many grants can be mapped at once.
    pub window_pages: u32,
    /// GGTT entries the GPU exposes.
    pub ggtt_entries: u32,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        PlatformConfig {
            backend: DomId(1),
            backend_ram_pages: 512,
            table_pool_pages: 256,
            window_base_gfn: 0x10_0000,
            window_pages: 1024,
            ggtt_entries: 4096,
        }
    }
}

/// Why [`Platform::new`] refused a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// RAM must hold gfn 0, the scratch page, three scratch tables and the pool.
    RamTooSmall { need: u32, have: u32 },
    /// The window must start at or above the end of RAM and end below 2^27
    /// gfns (39-bit bus addresses, what a Gen8/Gen9 PTE holds).
    BadWindow { base: u64, pages: u32 },
}

pub(crate) struct World {
    /// Which platform this is (a snapshot goes back only to its own).
    pub id: u64,
    pub cfg: PlatformConfig,
    pub mem: Memory,
    pub grants: BTreeMap<DomId, GrantTable>,
    pub physmap: Physmap,
    pub gpu: GpuState,
    pub next_backend_page: u64,
    pub trace: Trace,
    /// Non-scratch entries of table pages, by write stamp (`summary`).
    pub summaries: RefCell<Summaries>,
    /// Counts the borrows that may have changed what the isolation checker
    /// reads (every mutable borrow but [`Platform::world_mut_unseen`]'s).
    pub epoch: u64,
    /// The last check: its epoch, the views it was given, its verdict.
    pub last_check: RefCell<Option<LastCheck>>,
    /// The epoch after the last `touch_all` (the TLB held everything then).
    pub last_touch: Option<u64>,
}

/// A verdict of `check_isolation`, valid while the epoch stays the same.
pub(crate) struct LastCheck {
    pub epoch: u64,
    pub guests: Vec<crate::GuestView>,
    pub verdict: Result<crate::CheckStats, crate::Problem>,
}

/// Every platform's [`World::id`].
static NEXT_WORLD: AtomicU64 = AtomicU64::new(0);

/// A whole platform's state at one moment ([`Platform::snapshot`]).
pub struct Snapshot {
    world: u64,
    mem: MemorySnapshot,
    grants: BTreeMap<DomId, GrantTable>,
    physmap: Physmap,
    gpu: GpuState,
    next_backend_page: u64,
    trace: Trace,
}

/// The whole model: domains, Xen, the backend's physmap and IOMMU, the GPU.
/// Cloning gives another handle on the same world.
#[derive(Clone)]
pub struct Platform(Rc<RefCell<World>>);

impl Default for Platform {
    /// A platform with [`PlatformConfig::default`].
    fn default() -> Self {
        Platform::new(PlatformConfig::default()).expect("the default configuration is valid")
    }
}

impl Platform {
    /// A platform with a running backend domain, its RAM, an empty window and
    /// a GPU whose GGTT and tables all point at scratch.
    pub fn new(cfg: PlatformConfig) -> Result<Platform, ConfigError> {
        let need = 5 + cfg.table_pool_pages;
        if cfg.backend_ram_pages < need {
            return Err(ConfigError::RamTooSmall { need, have: cfg.backend_ram_pages });
        }
        let end = cfg.window_base_gfn.checked_add(u64::from(cfg.window_pages));
        let fits = matches!(end, Some(e) if e <= 1 << 27);
        if cfg.window_base_gfn < u64::from(cfg.backend_ram_pages) || !fits {
            return Err(ConfigError::BadWindow {
                base: cfg.window_base_gfn,
                pages: cfg.window_pages,
            });
        }
        let mut mem = Memory::default();
        mem.create_domain(cfg.backend).expect("fresh memory");
        mem.populate(cfg.backend, cfg.backend_ram_pages).expect("just created");
        let physmap =
            Physmap::new(u64::from(cfg.backend_ram_pages), cfg.window_base_gfn, cfg.window_pages);
        let mut world = World {
            id: NEXT_WORLD.fetch_add(1, Ordering::Relaxed),
            cfg,
            mem,
            grants: BTreeMap::new(),
            physmap,
            gpu: GpuState {
                scratch_page: BusAddr(0),
                scratch_tables: [(BusAddr(0), FrameId(0)); 3],
                ggtt: Vec::new(),
                ggtt_set: Default::default(),
                tables: BTreeMap::new(),
                table_at_gfn: Vec::new(),
                pool: Vec::new(),
                next_id: 0,
                tlb: BTreeMap::new(),
            },
            next_backend_page: 0,
            trace: Trace::default(),
            summaries: RefCell::default(),
            epoch: 0,
            last_check: RefCell::default(),
            last_touch: None,
        };
        world.init_gpu();
        Ok(Platform(Rc::new(RefCell::new(world))))
    }

    pub(crate) fn world(&self) -> Ref<'_, World> {
        self.0.borrow()
    }

    /// The world, to change: a new [`World::epoch`] (whatever the caller
    /// changes, the isolation checker looks again).
    pub(crate) fn world_mut(&self) -> RefMut<'_, World> {
        let mut w = self.0.borrow_mut();
        w.epoch += 1;
        w
    }

    /// See [`ModelGpu::touch_all`]. Nothing to do if nothing changed since
    /// the last touch; a new epoch only if the TLB grew.
    pub(crate) fn touch_all(&self) -> usize {
        let mut w = self.world_mut_unseen();
        if w.last_touch == Some(w.epoch) {
            return 0;
        }
        let added = w.touch_all();
        if added > 0 {
            w.epoch += 1;
        }
        w.last_touch = Some(w.epoch);
        added
    }

    /// The world, for a change the isolation checker cannot see: bytes of
    /// guest frames (it reads only table pages, which are backend RAM, and
    /// frame owners, which never change). Keeps the epoch.
    fn world_mut_unseen(&self) -> RefMut<'_, World> {
        self.0.borrow_mut()
    }

    /// Everything the platform holds now (memory, domains, grant tables,
    /// the backend's physmap, the GPU and its TLB, the trace), to come back
    /// to with [`Platform::restore`]. Costs a copy of every frame once.
    pub fn snapshot(&self) -> Snapshot {
        let w = self.world();
        Snapshot {
            world: w.id,
            mem: w.mem.snapshot(),
            grants: w.grants.clone(),
            physmap: w.physmap.clone(),
            gpu: w.gpu.clone(),
            next_backend_page: w.next_backend_page,
            trace: w.trace.clone(),
        }
    }

    /// Puts the platform back exactly as it was at `snap` (taken from this
    /// platform; every handle stays valid). Costs the frames written since,
    /// not the whole memory: a fuzz target resets with it between inputs.
    ///
    /// # Panics
    /// If `snap` is another platform's (a test bug, not a guest's input).
    pub fn restore(&self, snap: &Snapshot) {
        let mut w = self.world_mut();
        assert_eq!(w.id, snap.world, "a snapshot of another platform");
        w.mem.restore(&snap.mem);
        w.grants.clone_from(&snap.grants);
        w.physmap.clone_from(&snap.physmap);
        w.gpu.clone_from(&snap.gpu);
        w.next_backend_page = snap.next_backend_page;
        w.trace.clone_from(&snap.trace);
    }

    /// The configuration.
    pub fn config(&self) -> PlatformConfig {
        self.world().cfg
    }

    /// The backend's domain id.
    pub fn backend(&self) -> DomId {
        self.world().cfg.backend
    }

    /// Creates a running guest with `pages` zeroed frames at gfns `0..pages`.
    pub fn create_guest(&self, dom: DomId, pages: u32) -> Result<Guest, MemError> {
        let mut w = self.world_mut();
        w.mem.create_domain(dom)?;
        w.mem.populate(dom, pages)?;
        drop(w);
        Ok(self.guest(dom))
    }

    /// A handle on domain `dom` (whether or not it exists).
    pub fn guest(&self, dom: DomId) -> Guest {
        Guest { platform: self.clone(), dom }
    }

    /// The backend's grant mapper (`impl gtt::GrantMapper`).
    pub fn mapper(&self) -> ModelMapper {
        ModelMapper { platform: self.clone() }
    }

    /// The GPU (`impl gtt::GpuTables`).
    pub fn gpu(&self) -> ModelGpu {
        ModelGpu { platform: self.clone() }
    }

    /// The toolstack destroys `dom` (`xl destroy`). Returns the new state:
    /// `Dead`, or `Dying` (a zombie) while the backend still maps its grants.
    pub fn destroy_domain(&self, dom: DomId) -> Option<DomainState> {
        self.world_mut().destroy_domain(dom)
    }

    /// The backend domain dies (a crash with `on_crash = "destroy"`, or `xl
    /// destroy`): Xen releases every grant it mapped
    /// (`gnttab_release_mappings`), and the GPU it drove is gone with it.
    /// With `keep_mappings` (a crashed domain kept by `on_crash =
    /// "preserve"`) the mappings stay until [`Platform::reap_backend`].
    /// Returns the grants released.
    pub fn kill_backend(&self, keep_mappings: bool) -> u32 {
        let mut w = self.world_mut();
        let old = w.cfg.backend;
        w.set_state_of(old, DomainState::Dying);
        if keep_mappings {
            return 0;
        }
        w.release_backend_mappings()
    }

    /// The toolstack finally destroys a backend kept by
    /// [`Platform::kill_backend`]`(true)`: its mappings go.
    pub fn reap_backend(&self) -> u32 {
        self.world_mut().release_backend_mappings()
    }

    /// A new backend domain `dom` starts (`xl create` again): fresh RAM, an
    /// empty window, a GPU whose GGTT and tables all point at scratch.
    pub fn start_backend(&self, dom: DomId) -> Result<(), MemError> {
        let mut w = self.world_mut();
        let pages = w.cfg.backend_ram_pages;
        w.mem.create_domain(dom)?;
        w.mem.populate(dom, pages)?;
        w.cfg.backend = dom;
        let (base, slots) = (w.cfg.window_base_gfn, w.cfg.window_pages);
        w.physmap = Physmap::new(u64::from(pages), base, slots);
        w.init_gpu();
        Ok(())
    }

    /// Where `dom` is in its life.
    pub fn domain_state(&self, dom: DomId) -> Option<DomainState> {
        self.world().mem.state(dom)
    }

    /// The backend's IOMMU: the frame the GPU reaches at `bus` (any offset
    /// in the page), for a read or a write.
    pub fn iommu_translate(&self, bus: BusAddr, write: bool) -> Result<FrameId, IommuFault> {
        self.world().iommu_translate(bus, write)
    }

    /// The backend CPU reads `buf.len()` bytes at `bus` (may span pages),
    /// through its p2m (the same table the IOMMU enforces).
    pub fn bus_read(&self, bus: BusAddr, buf: &mut [u8]) -> Result<(), IommuFault> {
        let w = self.world();
        for (addr, range) in Spans::new(bus.0, buf.len()) {
            let frame = w.iommu_translate(BusAddr(addr), false)?;
            let off = (addr % PAGE_SIZE) as usize;
            buf[range.clone()].copy_from_slice(&w.mem.page(frame)[off..off + range.len()]);
        }
        Ok(())
    }

    /// The backend CPU writes `bytes` at `bus` (may span pages). Nothing is
    /// written if any page refuses.
    pub fn bus_write(&self, bus: BusAddr, bytes: &[u8]) -> Result<(), IommuFault> {
        let mut w = self.world_mut_unseen();
        let mut ram = false;
        for (addr, _) in Spans::new(bus.0, bytes.len()) {
            w.iommu_translate(BusAddr(addr), true)?;
            ram |= addr >> PAGE_SHIFT < w.physmap.ram_pages;
        }
        if ram {
            // The backend's own RAM holds the page tables.
            w.epoch += 1;
        }
        for (addr, range) in Spans::new(bus.0, bytes.len()) {
            let frame = w.iommu_translate(BusAddr(addr), true)?;
            let off = (addr % PAGE_SIZE) as usize;
            w.mem.page_mut(frame)[off..off + range.len()].copy_from_slice(&bytes[range]);
        }
        Ok(())
    }

    /// `GNTTABOP_copy` by the backend, from `dom`'s granted page `gref` at
    /// `offset` into `out`: nothing is mapped, so nothing becomes reachable
    /// by the GPU. `Err` is the `GNTST_*` status.
    pub fn copy_from_grant(
        &self,
        dom: DomId,
        gref: GrantRef,
        offset: usize,
        out: &mut [u8],
    ) -> Result<(), i16> {
        let mut w = self.world_mut_unseen();
        let range = in_page(offset, out.len()).map_err(|_| GNTST_bad_copy_arg)?;
        let backend = w.cfg.backend;
        let frame = w.xen_copy_frame(backend, dom, gref, false)?;
        out.copy_from_slice(&w.mem.page(frame)[range]);
        w.trace.counters.grant_copies += 1;
        w.trace.event(Event::GrantCopied { dom, gref, into_grant: false });
        Ok(())
    }

    /// `GNTTABOP_copy` by the backend, from `data` into `dom`'s granted page
    /// `gref` at `offset` (needs a writable grant).
    pub fn copy_to_grant(
        &self,
        dom: DomId,
        gref: GrantRef,
        offset: usize,
        data: &[u8],
    ) -> Result<(), i16> {
        // Into a guest's page: bytes the checker does not read.
        let mut w = self.world_mut_unseen();
        let range = in_page(offset, data.len()).map_err(|_| GNTST_bad_copy_arg)?;
        let backend = w.cfg.backend;
        let frame = w.xen_copy_frame(backend, dom, gref, true)?;
        w.mem.page_mut(frame)[range].copy_from_slice(data);
        w.trace.counters.grant_copies += 1;
        w.trace.event(Event::GrantCopied { dom, gref, into_grant: true });
        Ok(())
    }

    /// A fresh zeroed backend RAM page outside the scratch and table pool
    /// (for a ring, a bounce page, ...), or `None` when RAM is used up.
    pub fn alloc_backend_page(&self) -> Option<BusAddr> {
        let mut w = self.world_mut();
        let gfn = w.next_backend_page;
        if gfn >= u64::from(w.cfg.backend_ram_pages) {
            return None;
        }
        w.next_backend_page += 1;
        Some(BusAddr(gfn << PAGE_SHIFT))
    }

    /// A copy of frame `frame`'s bytes.
    pub fn frame_bytes(&self, frame: FrameId) -> Option<Vec<u8>> {
        let w = self.world();
        w.mem.owner(frame)?;
        Some(w.mem.page(frame).to_vec())
    }

    /// The domain that owns `frame`.
    pub fn frame_owner(&self, frame: FrameId) -> Option<DomId> {
        self.world().mem.owner(frame)
    }

    /// Every grant currently mapped in the backend's window.
    pub fn window_mappings(&self) -> Vec<WindowMapping> {
        self.world().physmap.maptrack.values().copied().collect()
    }

    /// The mapping at window address `bus`, if one is there.
    pub fn window_mapping(&self, bus: BusAddr) -> Option<WindowMapping> {
        self.world().physmap.mapping_at(bus.frame()).copied()
    }

    /// Every event so far, in order.
    pub fn trace(&self) -> Vec<Event> {
        self.world().trace.events.clone()
    }

    /// Forgets the events so far (counters and violations stay).
    pub fn clear_trace(&self) {
        self.world_mut().trace.events.clear();
    }

    /// The running totals.
    pub fn counters(&self) -> Counters {
        self.world().trace.counters
    }

    /// Every violation detected so far, in order.
    pub fn violations(&self) -> Vec<Violation> {
        self.world().trace.violations.clone()
    }
}

/// `(page-aligned-or-not address, range in the caller's buffer)` per page
/// touched by `len` bytes at `addr`.
struct Spans {
    addr: u64,
    len: usize,
    done: usize,
}

impl Spans {
    fn new(addr: u64, len: usize) -> Spans {
        Spans { addr, len, done: 0 }
    }
}

impl Iterator for Spans {
    type Item = (u64, core::ops::Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done >= self.len {
            return None;
        }
        let a = self.addr + self.done as u64;
        let room = (PAGE_SIZE - a % PAGE_SIZE) as usize;
        let n = room.min(self.len - self.done);
        let range = self.done..self.done + n;
        self.done += n;
        Some((a, range))
    }
}

/// A guest domain, seen from inside (its memory and its grant table).
#[derive(Clone)]
pub struct Guest {
    platform: Platform,
    dom: DomId,
}

impl Guest {
    /// This guest's domain id.
    pub fn dom(&self) -> DomId {
        self.dom
    }

    /// Adds `count` zeroed pages at the next free gfns.
    pub fn alloc_pages(&self, count: u32) -> Result<Vec<Gfn>, MemError> {
        self.platform.world_mut().mem.populate(self.dom, count)
    }

    /// The frame at `gfn`.
    pub fn frame(&self, gfn: Gfn) -> Result<FrameId, MemError> {
        self.platform.world().mem.frame_of(self.dom, gfn)
    }

    /// Reads `buf.len()` bytes at `offset` of page `gfn`.
    pub fn read(&self, gfn: Gfn, offset: usize, buf: &mut [u8]) -> Result<(), MemError> {
        let w = self.platform.world();
        let f = w.mem.frame_of(self.dom, gfn)?;
        w.mem.read(f, offset, buf)
    }

    /// Writes `bytes` at `offset` of page `gfn`.
    pub fn write(&self, gfn: Gfn, offset: usize, bytes: &[u8]) -> Result<(), MemError> {
        let mut w = self.platform.world_mut_unseen();
        let f = w.mem.frame_of(self.dom, gfn)?;
        w.mem.write(f, offset, bytes)
    }

    /// Fills page `gfn` with `byte`.
    pub fn fill(&self, gfn: Gfn, byte: u8) -> Result<(), MemError> {
        self.write(gfn, 0, &[byte; PAGE_SIZE as usize])
    }

    /// Grants `to` access to page `gfn` (read-only if `readonly`), at the
    /// lowest free reference (`gnttab_grant_foreign_access`).
    pub fn grant(&self, gfn: Gfn, to: DomId, readonly: bool) -> Result<GrantRef, GrantError> {
        self.platform.world_mut().grant(self.dom, gfn, to, readonly)
    }

    /// Ends a grant (`gnttab_end_foreign_access_ref`): false, and nothing
    /// changes, while it is mapped.
    pub fn end_access(&self, gref: GrantRef) -> bool {
        self.platform.world_mut().end_access(self.dom, gref)
    }

    /// Writes a raw shared entry, as a (possibly malicious) guest can.
    pub fn set_grant_entry(&self, gref: GrantRef, entry: GrantEntryV1) -> Result<(), GrantError> {
        let mut w = self.platform.world_mut();
        w.set_grant_entry(self.dom, gref, entry)
    }

    /// The shared entry `gref` (`None` beyond the table).
    pub fn grant_entry(&self, gref: GrantRef) -> Option<GrantEntryV1> {
        self.platform.world().grant_entry(self.dom, gref)
    }

    /// Xen's pin record for `gref`, while something maps it.
    pub fn active_grant(&self, gref: GrantRef) -> Option<ActiveGrant> {
        self.platform.world().active_grant(self.dom, gref)
    }

    /// How many times `gref` is mapped now (read-only plus writable).
    pub fn map_count(&self, gref: GrantRef) -> u32 {
        self.active_grant(gref).map_or(0, |a| a.pins_ro + a.pins_rw)
    }
}

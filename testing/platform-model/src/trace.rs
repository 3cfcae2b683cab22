//! What happened, in order: events, counters, and the violations the model
//! detected as they happened (the things a test must never see).
//!
//! # Invariants
//! - Every state change made through the platform traits, the guests' grant
//!   operations and the toolstack's domain operations appends exactly one
//!   [`Event`], in program order.
//! - A [`Violation`] is recorded, never panicked on: the model keeps running so
//!   the test can inspect everything, and the checker reports the first one.

use gtt::platform::{GrantMapError, TablePage};
use gtt::types::{Access, BusAddr, DomId, GrantRef, Level};

/// An address space of the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Space {
    /// The global GTT: GPU address = GGTT index << 12.
    Ggtt,
    /// A 4-level PPGTT whose PML4 table is at `root`.
    Ppgtt {
        /// The PML4 table (what a context descriptor points at).
        root: BusAddr,
    },
}

/// Where a translation lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// A GGTT entry.
    Ggtt { index: u32 },
    /// Entry `index` of the PPGTT table at `table`, of level `level`.
    Table { table: BusAddr, level: Level, index: u16 },
    /// The leaf for GPU address `va` reached from the PML4 at `root`.
    Ppgtt { root: BusAddr, va: u64 },
    /// A GPU TLB entry for page `va` of `space`.
    Tlb { space: Space, va: u64 },
}

/// One thing that happened, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A guest granted `gref` to `to`.
    Granted { dom: DomId, gref: GrantRef, to: DomId, readonly: bool },
    /// A guest ended a grant.
    GrantEnded { dom: DomId, gref: GrantRef },
    /// A guest tried to end a grant that is still mapped; refused.
    GrantEndRefused { dom: DomId, gref: GrantRef },
    /// The backend mapped a grant into its window.
    GrantMapped { dom: DomId, gref: GrantRef, bus: BusAddr, access: Access, handle: u32 },
    /// Xen refused a map (`GrantMapError::Xen` with the `GNTST_*` status),
    /// or the window was full.
    GrantMapFailed { dom: DomId, gref: GrantRef, error: GrantMapError },
    /// The backend copied from (or into) a granted page with `GNTTABOP_copy`.
    GrantCopied { dom: DomId, gref: GrantRef, into_grant: bool },
    /// The backend unmapped a grant.
    GrantUnmapped { dom: DomId, gref: GrantRef, bus: BusAddr, handle: u32 },
    /// Xen refused an unmap (`GNTST_bad_handle` or a bus address mismatch).
    GrantUnmapFailed { bus: BusAddr, handle: u32, status: i16 },
    /// GGTT entry `index` now points at `page`.
    GgttSet { index: u32, page: BusAddr, access: Access },
    /// GGTT entry `index` now points at scratch.
    GgttClear { index: u32 },
    /// A PPGTT table was allocated.
    TableAlloc { table: TablePage, level: Level },
    /// A PPGTT table was freed.
    TableFree { table: TablePage },
    /// A leaf entry now points at `page`.
    TableSetLeaf { table: TablePage, index: u16, page: BusAddr, access: Access },
    /// A directory entry now points at `child`.
    TableSetDir { table: TablePage, level: Level, index: u16, child: TablePage },
    /// An entry now points back at scratch.
    TableClear { table: TablePage, level: Level, index: u16 },
    /// The GPU TLB was invalidated (`entries` cached translations dropped).
    Invalidate { entries: usize },
    /// A test wrote an entry directly, bypassing the driver interface.
    Injected { at: Location, bits: u64 },
    /// The toolstack destroyed a domain with `pinned` grant pins outstanding.
    DomainDestroyed { dom: DomId, pinned: u32 },
    /// A dying domain's last mapping went: it is dead.
    DomainReleased { dom: DomId },
}

/// Something the backend did that breaks an isolation rule or a trait
/// contract, detected when it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A grant was unmapped while the GPU TLB still cached a translation to
    /// it (the TLB was not invalidated after the entry was cleared).
    UnmappedWhileCached { dom: DomId, gref: GrantRef, bus: BusAddr, cached: Location },
    /// A grant was unmapped while a GPU table entry still pointed at it.
    UnmappedWhileReferenced { dom: DomId, gref: GrantRef, bus: BusAddr, entry: Location },
    /// `unmap` was given a handle the model never issued or already released,
    /// or a bus address that does not match the handle.
    BadUnmap { bus: BusAddr, handle: u32 },
    /// A GGTT index at or beyond `ggtt_entries`.
    GgttIndexOutOfRange { index: u32 },
    /// An address the Gen8 PTE format cannot hold (unaligned or > 39 bits).
    UnencodableAddress { addr: u64 },
    /// A `TablePage` the GPU did not allocate, or already freed.
    UnknownTable { table: TablePage },
    /// A table used at a level other than the one it was allocated for.
    LevelMismatch { table: TablePage, expected: Level, actual: Level },
    /// A directory entry pointed at a child of the wrong level.
    ChildLevelMismatch { table: TablePage, child: TablePage, child_level: Level },
    /// A table index at or beyond 512.
    TableIndexOutOfRange { table: TablePage, index: u16 },
    /// `table_free` on a table with an entry not yet back at scratch.
    FreedTableNotClear { table: TablePage, index: u16 },
    /// `table_free` on a table a live directory entry still points at.
    FreedTableStillReferenced { table: TablePage, entry: Location },
}

/// Running totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Successful grant maps.
    pub grant_maps: u64,
    /// Refused grant maps (Xen status or full window).
    pub grant_map_failures: u64,
    /// Successful grant unmaps.
    pub grant_unmaps: u64,
    /// Refused grant unmaps.
    pub grant_unmap_failures: u64,
    /// Successful `GNTTABOP_copy` operations.
    pub grant_copies: u64,
    /// GGTT entry writes (set and clear).
    pub ggtt_writes: u64,
    /// PPGTT entry writes (set leaf, set dir, clear).
    pub table_writes: u64,
    /// Tables allocated.
    pub table_allocs: u64,
    /// Tables freed.
    pub table_frees: u64,
    /// TLB invalidations.
    pub invalidations: u64,
    /// GPU accesses (translate, read, write).
    pub gpu_accesses: u64,
    /// GPU accesses that faulted.
    pub gpu_faults: u64,
    /// Translations served from the TLB.
    pub tlb_hits: u64,
    /// Translations that needed a walk.
    pub tlb_misses: u64,
}

#[derive(Clone, Default)]
pub(crate) struct Trace {
    pub events: Vec<Event>,
    pub violations: Vec<Violation>,
    pub counters: Counters,
}

impl Trace {
    pub fn event(&mut self, e: Event) {
        self.events.push(e);
    }

    pub fn violation(&mut self, v: Violation) {
        self.violations.push(v);
    }
}

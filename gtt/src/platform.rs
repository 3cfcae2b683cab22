//! The two things `gtt` drives but does not implement: the grant mapper (Xen's
//! grant table, seen from the backend) and the GPU table writer (the driver).
//!
//! Both traits take a [`MappingCap`]. Only this crate can construct one, so
//! only `gtt` can ask either of them to make something GPU-visible: the rest of
//! gpu-dom (ring parsing, xenbus, the driver's own code) holds the traits'
//! implementers but cannot call the mapping methods. This is the capability
//! pattern of Tock's `kernel/src/capabilities.rs`, applied to one privilege.

use crate::types::{Access, BusAddr, DomId, GrantRef, Level};

/// Proof that the caller is `gtt`. The private field keeps other crates from
/// constructing one (see the module documentation), so no code outside
/// `gtt` can call a [`GrantMapper`] or [`GpuTables`] method, and with them
/// create a GPU-visible mapping:
///
/// ```compile_fail
/// let cap = gtt::platform::MappingCap(());
/// ```
/// ```compile_fail
/// let cap = gtt::platform::MappingCap::new();
/// ```
pub struct MappingCap(());

impl MappingCap {
    pub(crate) const fn new() -> Self {
        MappingCap(())
    }
}

/// Test support only: lets a driver's or a model's own unit tests call the
/// trait methods directly. The gpu-dom image never enables this feature.
#[cfg(feature = "testing")]
pub fn testing_cap() -> MappingCap {
    MappingCap::new()
}

/// One grant to map into the backend's physmap window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantMapRequest {
    /// The granting domain.
    pub dom: DomId,
    /// Its grant reference.
    pub gref: GrantRef,
    /// `ReadOnly` maps with `GNTMAP_readonly`: the IOMMU then refuses GPU writes.
    pub access: Access,
}

/// A grant mapped into the backend's physmap window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantMapping {
    /// Where the page now is in the backend's physmap (and so for the GPU).
    pub bus: BusAddr,
    /// Xen's `grant_handle_t`, needed to unmap.
    pub handle: u32,
}

/// Why one grant could not be mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantMapError {
    /// Xen refused: the `GNTST_*` status from `grant_table.h` (negative), e.g.
    /// -3 `GNTST_bad_gntref`; -1 `GNTST_general_error` for a grant made to
    /// another domain or a writable map of a read-only grant
    /// (`xen/common/grant_table.c`).
    Xen(i16),
    /// The backend's physmap window has no free frame left.
    WindowFull,
}

/// The backend's view of Xen grant tables.
///
/// # Contract
/// - `map` fills `out[i]` with the outcome of `reqs[i]` (`out.len() >= reqs.len()`);
///   a failed entry leaves nothing mapped.
/// - `unmap` releases every mapping it is given; it returns how many Xen
///   refused to unmap (those frames stay reserved by the implementation).
pub trait GrantMapper {
    /// Maps a batch (`GNTTABOP_map_grant_ref` with `GNTMAP_host_map`).
    fn map(
        &mut self,
        cap: &MappingCap,
        reqs: &[GrantMapRequest],
        out: &mut [Result<GrantMapping, GrantMapError>],
    );
    /// Unmaps a batch (`GNTTABOP_unmap_grant_ref`).
    fn unmap(&mut self, cap: &MappingCap, mappings: &[GrantMapping]) -> usize;
}

/// A PPGTT table page allocated by the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TablePage {
    /// Where the GPU finds the page (what a parent entry or a context's root
    /// pointer holds).
    pub bus: BusAddr,
    /// The writer's own handle for the page.
    pub id: u32,
}

/// What the GPU can do, as the driver reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuCaps {
    /// Number of GGTT entries the driver lets `gtt` manage (indexes `0..ggtt_entries`).
    pub ggtt_entries: u32,
    /// Whether a GGTT entry can be read-only (false on Gen8/Gen9: no RW bit in the GGTT).
    pub ggtt_read_only: bool,
    /// Whether a PPGTT leaf entry can be read-only (true on Gen8+: bit 1 of the PTE).
    pub ppgtt_read_only: bool,
}

/// The GPU's page tables, as the driver exposes them to `gtt`.
///
/// # Contract
/// - Entries that are not set point at the driver's scratch page (leaves) or
///   scratch table (directories), never at an address `gtt` did not give.
/// - `table_alloc(level)` returns a page whose 512 entries are all scratch for
///   that level; `table_free` takes a page whose entries `gtt` already cleared.
/// - Writes may be posted; they reach the GPU's view, and stale GPU TLB
///   entries are dropped, only at `invalidate`.
pub trait GpuTables {
    /// What this GPU supports.
    fn caps(&self) -> GpuCaps;
    /// Points GGTT entry `index` at `page`.
    fn ggtt_set(&mut self, cap: &MappingCap, index: u32, page: BusAddr, access: Access);
    /// Points GGTT entry `index` back at the scratch page.
    fn ggtt_clear(&mut self, cap: &MappingCap, index: u32);
    /// Allocates a zeroed (all scratch) PPGTT table for `level`.
    fn table_alloc(&mut self, cap: &MappingCap, level: Level) -> Option<TablePage>;
    /// Returns a table page to the driver.
    fn table_free(&mut self, cap: &MappingCap, table: TablePage);
    /// Points leaf entry `index` of the `Level::Pt` table `table` at `page`.
    fn table_set_leaf(
        &mut self,
        cap: &MappingCap,
        table: TablePage,
        index: u16,
        page: BusAddr,
        access: Access,
    );
    /// Points directory entry `index` of `table` (at `level`) at `child`.
    fn table_set_dir(
        &mut self,
        cap: &MappingCap,
        table: TablePage,
        level: Level,
        index: u16,
        child: TablePage,
    );
    /// Points entry `index` of `table` (at `level`) back at scratch.
    fn table_clear(&mut self, cap: &MappingCap, table: TablePage, level: Level, index: u16);
    /// Makes every earlier write visible to the GPU and drops its cached
    /// translations (GGTT: `GFX_FLSH_CNTL`; PPGTT: TLB invalidation).
    fn invalidate(&mut self, cap: &MappingCap);
}
